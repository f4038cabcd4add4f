#!/usr/bin/env python3
"""A scripted IMAP server for what a real one cannot be made to do on demand (test kit only).

  scripted-imap.py PORTFILE OUTDIR MODE
    MODE accept: a well-behaved server (LITERAL+, SASL-IR, UIDPLUS, AUTH=PLAIN): every APPEND is stored.
    MODE drop-mid-literal: the first connection is dropped in the middle of the first APPEND's literal (nothing is
      stored); later connections behave as accept.
    MODE drop-after-literal: the first connection stores the first APPENDed message, then is dropped before the
      tagged OK (the client cannot know it arrived); later connections behave as accept.
    MODE stall-after-literal: the first connection stores the first APPENDed message and never answers; later
      connections behave as accept.
    MODE garbage-after-literal: the first APPEND is stored and answered with a line outside the grammar; later
      connections behave as accept.
    MODE no-literal-plus: as accept, but without LITERAL+: every literal waits for "+".
    MODE drop-after-literal-refuse-rest: as drop-after-literal, but every later connection is closed at once.
    MODE drop-after-literal-search-no: as drop-after-literal, but every later UID SEARCH is answered NO [UNAVAILABLE].
    MODE store-late: the first APPEND is never answered, and its message is stored 8 s after it arrived (a server
      that is slow to store); later connections behave as accept.
    MODE ok-before-continuation: without LITERAL+; every APPEND is answered OK at once, before its literal (a
      server that would make the client believe a message it never sent was stored).
A file OUTDIR/mode, when present, replaces MODE for the connections that follow (a server that recovers).
Listens on 127.0.0.1 (a free port, written to PORTFILE). Stored messages are OUTDIR/msg.UID (bytes as received);
UID SEARCH HEADER X-Popfetch-ID looks at them. OUTDIR/connections counts connections; OUTDIR/commands logs every
command line (AUTHENTICATE and LOGIN masked). Exits after 120 s.
"""
import os, re, socket, sys, threading, time

portfile, outdir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
srv.settimeout(120)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
lock = threading.Lock()
state = {"connections": 0, "next_uid": 1, "faulted": False}
# A server started again on the same OUTDIR goes on from the messages stored there.
for _name in os.listdir(outdir):
    if _name.startswith("msg."):
        state["next_uid"] = max(state["next_uid"], int(_name[4:]) + 1)
VALIDITY = 1234


def log(line):
    with lock, open(os.path.join(outdir, "commands"), "a") as f:
        f.write(line + "\n")


def stored():
    out = []
    for name in sorted(os.listdir(outdir)):
        if name.startswith("msg."):
            with open(os.path.join(outdir, name), "rb") as f:
                out.append((int(name[4:]), f.read()))
    return out


def store(data):
    with lock:
        uid = state["next_uid"]
        state["next_uid"] += 1
    with open(os.path.join(outdir, "msg.%d" % uid), "wb") as f:
        f.write(data)
    return uid


def serve(conn, number):
    global mode
    try:
        with open(os.path.join(outdir, "mode")) as m:
            mode = m.read().strip()
    except OSError:
        pass
    f = conn.makefile("rb")
    literal_plus = mode not in ("no-literal-plus", "ok-before-continuation")
    if mode == "drop-after-literal-refuse-rest" and number > 1:
        conn.close()
        return
    caps = "IMAP4rev1 SASL-IR UIDPLUS AUTH=PLAIN" + (" LITERAL+" if literal_plus else "")
    first = number == 1

    def send(text):
        conn.sendall(text.encode() + b"\r\n")

    send("* OK [CAPABILITY %s] scripted IMAP ready" % caps)
    while True:
        line = f.readline()
        if not line:
            return
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        parts = text.split(" ", 2)
        if len(parts) < 2:
            send("* BAD what")
            continue
        tag, cmd = parts[0], parts[1].upper()
        rest = parts[2] if len(parts) > 2 else ""
        log(text if cmd not in ("LOGIN", "AUTHENTICATE") else "%s %s ********" % (tag, cmd))
        if cmd == "CAPABILITY":
            send("* CAPABILITY " + caps)
            send(tag + " OK done")
        elif cmd in ("LOGIN", "AUTHENTICATE"):
            send(tag + " OK [CAPABILITY %s] logged in" % caps)
        elif cmd in ("NOOP",):
            send(tag + " OK done")
        elif cmd in ("SELECT", "EXAMINE"):
            send("* %d EXISTS" % len(stored()))
            send("* OK [UIDVALIDITY %d] UIDs valid" % VALIDITY)
            send("* OK [UIDNEXT %d] next" % state["next_uid"])
            send(tag + " OK [READ-ONLY] done")
        elif cmd == "UID" and rest.upper().startswith("SEARCH") and mode == "drop-after-literal-search-no":
            send(tag + " NO [UNAVAILABLE] search is unavailable right now")
        elif cmd == "UID" and rest.upper().startswith("SEARCH"):
            m = re.search(r'HEADER X-Popfetch-ID "?([0-9a-f]+)"?', rest, re.I)
            low = re.search(r"UID (\d+):\*", rest)
            found = []
            for uid, data in stored():
                if low and uid < int(low.group(1)):
                    continue
                if m and (b"X-Popfetch-ID: " + m.group(1).encode()) in data.split(b"\r\n\r\n", 1)[0]:
                    found.append(str(uid))
            send("* SEARCH" + "".join(" " + u for u in found))
            send(tag + " OK search done")
        elif cmd == "APPEND":
            m = re.search(r"\{(\d+)(\+?)\}$", text)
            if not m:
                send(tag + " BAD no literal")
                continue
            size = int(m.group(1))
            if mode == "ok-before-continuation":
                send(tag + " OK [APPENDUID %d %d] stored (not really)" % (VALIDITY, state["next_uid"]))
                continue
            if not m.group(2):
                send("+ go ahead")
            with lock:
                fault = first and not state["faulted"] and mode not in ("accept", "no-literal-plus")
                if fault:
                    state["faulted"] = True
            if fault and mode == "drop-mid-literal":
                f.read(size // 2)
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            data = f.read(size)
            f.readline()  # the CRLF that ends the command
            if len(data) < size:
                return
            if fault and mode == "store-late":
                threading.Timer(8.0, store, args=(data,)).start()
                f.read()
                return
            uid = store(data)
            if fault and mode.startswith("drop-after-literal"):
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            if fault and mode == "stall-after-literal":
                f.read()
                return
            if fault and mode == "garbage-after-literal":
                conn.sendall(b"\x00\x01 what is this\r\n")
                continue
            send("%s OK [APPENDUID %d %d] stored" % (tag, VALIDITY, uid))
        elif cmd == "LOGOUT":
            send("* BYE bye")
            send(tag + " OK bye")
            conn.close()
            return
        else:
            send(tag + " BAD unknown command")


deadline = time.time() + 120
while time.time() < deadline:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    with lock:
        state["connections"] += 1
        n = state["connections"]
    with open(os.path.join(outdir, "connections"), "w") as out:
        out.write(str(n))
    threading.Thread(target=serve, args=(conn, n), daemon=True).start()
