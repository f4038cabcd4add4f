#!/usr/bin/env python3
"""A scripted POP3 mailbox with injectable faults (test kit only).

  fault-pop3.py PORTFILE LOGFILE SCENARIO.json

The scenario is read again at the start of every session, so a test can change the mailbox between polls. It is a
JSON object:
  "messages": [{"uid": "a1", "body": "...text with CRLF...", "list_size": N (optional, default the real size),
                "retr": "ok" | "err" | "drop" | "drop-before" | "unstuffed-dot" | "trickle" | "silent"}]
                                     (silent: no reply at all, as if the command were lost)
  "capa": ["USER", "UIDL", ...]      (default USER UIDL RESP-CODES PIPELINING)
  "uidl": "ok" | "empty" | "err" | "slow"  (default ok; "empty" lists no messages at all, like a hiccup; "slow"
                                     sends +OK, logs "(listing held)", and the entries 2 s later; "stall": the same,
                                     then nothing for 8 s, and the session goes on without the entries)
  "quit": "ok" | "err" | "err-commit" (default ok; err-commit deletes, then answers -ERR)
  "uidl_raw": the whole UIDL reply, verbatim (e.g. one message number listed twice)
  "noop": "ok" | "drop" | "garbage"  (default ok)
  "uidl_n": "ok" | "err" | "err-refused"  how `UIDL n` is answered (err-refused: -ERR for messages whose RETR is -ERR)
  "ignore_dele": true                a server that answers +OK to DELE and QUIT but keeps every message
  per message: "list_omit": true     left out of LIST
               "after": "text"       sent verbatim right after the message's terminating dot line
               "before": "text"      sent verbatim right before the message's RETR reply (with "retr": "ok")
  "delay": seconds before each reply (default 0)
  "peek_ahead": true                 at each RETR, waits 0.2 s, then logs "AHEAD n k": k more RETRs had already
                                     arrived (sent ahead, before the client read message n)
  "state": path of a JSON file holding the uids deleted so far (DELE takes effect only at QUIT +OK, as in RFC 1939)
Bodies are sent dot-stuffed, except with "unstuffed-dot", which sends them raw (a "." line ends the message early).
Everything the client sends is appended to LOGFILE. Serves connections one at a time until killed (or 10 minutes).
"""
import json, os, socket, sys, time

portfile, logfile, scenario_path = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
srv.settimeout(600)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)


def stuffed(body):
    out = []
    for line in body.split(b"\r\n"):
        out.append(b"." + line if line.startswith(b".") else line)
    return b"\r\n".join(out)


def session(conn):
    sc = json.load(open(scenario_path))
    state_path = sc.get("state")
    deleted_before = set(json.load(open(state_path))) if state_path and os.path.exists(state_path) else set()
    msgs = [m for m in sc.get("messages", []) if m.get("id", m["uid"]) not in deleted_before]
    if sc.get("uidl") == "empty":
        msgs = []
    delay = sc.get("delay", 0)
    f = conn.makefile("rb")
    log = open(logfile, "ab")
    marked = set()

    def send(b):
        if delay:
            time.sleep(delay)
        conn.sendall(b)

    send(b"+OK fault-pop3 ready\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        log.write(line)
        log.flush()
        parts = line.strip().split(b" ")
        cmd = parts[0].upper()
        arg = int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else None
        if cmd == b"CAPA":
            caps = sc.get("capa", ["USER", "UIDL", "RESP-CODES", "PIPELINING"])
            send(b"+OK\r\n" + b"".join(c.encode() + b"\r\n" for c in caps) + b".\r\n")
        elif cmd == b"NOOP" and sc.get("noop") == "drop":
            conn.shutdown(socket.SHUT_RDWR)
            return
        elif cmd == b"NOOP" and sc.get("noop") == "garbage":
            send(b"garbage instead of a status line\r\n")
        elif cmd in (b"USER", b"PASS", b"NOOP", b"RSET"):
            send(b"+OK\r\n")
        elif cmd == b"UIDL" and arg is not None:
            mode = sc.get("uidl_n", "ok")
            if mode == "err" or (mode == "err-refused" and 1 <= arg <= len(msgs) and msgs[arg - 1].get("retr") == "err"):
                send(b"-ERR no such message\r\n")
            elif 1 <= arg <= len(msgs):
                send(b"+OK %d %s\r\n" % (arg, msgs[arg - 1]["uid"].encode("latin-1")))
            else:
                send(b"-ERR no such message\r\n")
        elif cmd == b"UIDL":
            if sc.get("uidl") == "err":
                send(b"-ERR no UIDL\r\n")
                continue
            if "uidl_raw" in sc:
                send(sc["uidl_raw"].encode("latin-1"))
                continue
            body = b"".join(b"%d %s\r\n" % (i + 1, m["uid"].encode("latin-1")) for i, m in enumerate(msgs))
            if sc.get("uidl") == "stall":
                send(b"+OK\r\n")
                log.write(b"(listing held)\n")
                log.flush()
                time.sleep(8)
                continue
            if sc.get("uidl") == "slow":
                send(b"+OK\r\n")
                log.write(b"(listing held)\n")
                log.flush()
                time.sleep(2)
                send(body + b".\r\n")
                continue
            send(b"+OK\r\n" + body + b".\r\n")
        elif cmd == b"LIST":
            body = b"".join(
                b"%d %d\r\n" % (i + 1, m.get("list_size", len(m["body"].encode("latin-1"))))
                for i, m in enumerate(msgs) if not m.get("list_omit"))
            send(b"+OK\r\n" + body + b".\r\n")
        elif cmd == b"RETR" and arg and 1 <= arg <= len(msgs):
            if sc.get("peek_ahead"):
                time.sleep(0.2)
                timeout = conn.gettimeout()
                conn.settimeout(0.0)
                try:
                    waiting = f.peek(65536) or b""
                except (BlockingIOError, OSError):
                    waiting = b""
                finally:
                    conn.settimeout(timeout)
                log.write(b"AHEAD %d %d\r\n" % (arg, waiting.count(b"RETR ")))
                log.flush()
            m = msgs[arg - 1]
            body = m["body"].encode("latin-1")
            mode = m.get("retr", "ok")
            if mode == "err":
                send(b"-ERR message unavailable\r\n")
            elif mode == "silent":
                pass
            elif mode == "drop-before":
                conn.shutdown(socket.SHUT_RDWR)
                return
            elif mode == "drop":
                send(b"+OK\r\n" + body[: len(body) // 2])
                conn.shutdown(socket.SHUT_RDWR)
                return
            elif mode == "unstuffed-dot":
                send(b"+OK\r\n" + body + b".\r\n")
            elif mode == "trickle":
                conn.sendall(b"+OK\r\n")
                data = stuffed(body) + b".\r\n"
                for i in range(len(data)):
                    conn.sendall(data[i:i + 1])
                    time.sleep(m.get("trickle", 1.0))
            else:
                send(m.get("before", "").encode("latin-1") + b"+OK\r\n" + stuffed(body) + b".\r\n"
                     + m.get("after", "").encode("latin-1"))
        elif cmd == b"DELE" and arg and 1 <= arg <= len(msgs):
            marked.add(arg)
            send(b"+OK marked\r\n")
        elif cmd == b"QUIT":
            if sc.get("quit") == "err":
                send(b"-ERR some deleted messages not removed\r\n")
                return
            if state_path and not sc.get("ignore_dele"):
                gone = deleted_before | {msgs[i - 1].get("id", msgs[i - 1]["uid"]) for i in marked}
                with open(state_path + ".tmp", "w") as s:
                    json.dump(sorted(gone), s)
                os.rename(state_path + ".tmp", state_path)
            if sc.get("quit") == "err-commit":
                send(b"-ERR some deleted messages not removed\r\n")
                return
            if sc.get("quit") == "slow":
                time.sleep(3)
            send(b"+OK bye\r\n")
            return
        else:
            send(b"-ERR unknown command\r\n")


deadline = time.time() + 600
while time.time() < deadline:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    try:
        session(conn)
    except Exception as e:
        sys.stderr.write("session: %r\n" % (e,))
    finally:
        conn.close()
