#!/usr/bin/env python3
"""A scripted SMTP server for what a real MTA cannot be made to do on demand (test kit only).

  scripted-smtp.py PORTFILE OUTDIR MODE
    MODE drop-mid-data: the first connection is dropped in the middle of DATA; later ones accept the message.
    MODE stall-after-dot: the reply after the final dot comes 3 s late (a slow MTA).
    MODE stop-reading: after 354 the server never reads again (a wedged MTA); popfetch's write must time out.
    MODE refuse-first-transaction: the first transaction's RCPTs are all refused (550), yet its DATA gets 354 (RFC
      2920 §3.1 allows it); an empty DATA is answered 554 and counted in OUTDIR/empty-data. Later ones are accepted.
    MODE data-250: DATA is answered 250 instead of 354 (a broken MTA).
    MODE rcpt-552: RCPT is answered 552 ("too many recipients", temporary per RFC 5321 §4.5.3.1.10).
    MODE lmtp-drop-after-first: (LMTP) after the final dot, the first recipient's "250" is sent, then the connection
      is dropped before the other recipients' replies (an LMTP delivery process that crashed on the second mailbox).
      Every such message is saved (it reached the first recipient). Only on the first connection: later ones, and a
      transaction with one recipient, go through.
    MODE stall-after-dot-long: the reply after the final dot comes 30 s late (the message is saved then).
    MODE early-250: the first transaction's 354 comes in one write with a premature "250" (before any of the body
      was sent); after its final dot that transaction is refused 554 and nothing is saved. Later ones are accepted.
    MODE early-250-in-body: in the first transaction a premature "250" is sent after the first line of the body
      (the client's writes are all in the kernel's buffers by then); after the final dot it is refused 554 and nothing
      is saved. Later transactions are accepted.
    MODE store-then-drop: every message is saved after its final dot, and the connection dropped without a reply.
    MODE early-250-then-accept: as early-250-in-body, but the first transaction is then accepted and saved (so one
      reply too many is in the stream: it shifts the next transaction's replies by one).
    Any RCPT whose address contains "refuse" (any case) is refused 550.
    MODE extra-reply: every message is saved and answered "250", then an extra "554" follows that nobody asked for.
    MODE no-greeting: connections are accepted and never greeted (a wedged MTA); each is held until the peer closes.
    MODE reject-then-no-greeting: the first connection's first message is refused 554 after its final dot, the NOOP
      behind it answered, and the connection closed; later connections are never greeted (as no-greeting).
    MODE drop-then-busy-once: the first connection is dropped in the middle of DATA, the second is greeted "421"
      and closed (an MTA restarting); later ones accept every message.
Listens on 127.0.0.1 (a free port, written to PORTFILE); every accepted message is saved in OUTDIR (CRLF -> LF,
dot-unstuffed); OUTDIR/connections counts connections; OUTDIR/rcpts lists the RCPT commands accepted. Exits after 60 s.
"""
import os, socket, sys, threading, time

portfile, outdir, mode = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(8)
srv.settimeout(60)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
os.rename(portfile + ".tmp", portfile)
connections = 0
saved = 0
transactions = 0
empty = 0
deadline = time.time() + 60

def serve(conn, number):
    global saved, transactions, empty
    f = conn.makefile("rb")
    def send(line):
        conn.sendall(line.encode() + b"\r\n")
    if mode == "no-greeting" or (mode == "reject-then-no-greeting" and number > 1):
        f.read()
        return
    if mode == "drop-then-busy-once" and number == 2:
        send("421 4.3.2 restarting, try again")
        conn.close()
        return
    send("220 scripted ESMTP")
    accepted = 0
    lmtp = False
    refusing = False
    while True:
        line = f.readline()
        if not line:
            return
        cmd = line.strip().upper()
        if cmd.startswith(b"EHLO") or cmd.startswith(b"LHLO"):
            lmtp = cmd.startswith(b"LHLO")
            conn.sendall(b"250-scripted\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 0\r\n")
        elif cmd.startswith(b"MAIL"):
            transactions += 1
            accepted = 0
            refusing = mode == "refuse-first-transaction" and transactions == 1
            send("250 ok")
        elif cmd.startswith(b"RCPT") and b"REFUSE" in cmd:
            send("550 5.1.1 no such user")
        elif cmd.startswith(b"RCPT") and (refusing or mode == "rcpt-552"):
            send("550 5.1.1 no such user" if refusing else "552 5.5.3 too many recipients")
        elif cmd.startswith(b"RCPT"):
            accepted += 1
            with open(os.path.join(outdir, "rcpts"), "a") as log:
                log.write(cmd.decode("utf-8", "replace") + "\n")
            send("250 ok")
        elif cmd.startswith(b"RSET") or cmd.startswith(b"NOOP"):
            send("250 ok")
        elif cmd == b"DATA" and mode == "data-250":
            send("250 2.0.0 ok")
        elif cmd == b"DATA" and accepted == 0 and mode != "refuse-first-transaction":
            send("554 5.5.1 no valid recipients")
        elif cmd == b"DATA":
            if mode == "early-250" and transactions == 1:
                conn.sendall(b"354 go ahead\r\n250 2.0.0 premature, before the body\r\n")
            else:
                send("354 go ahead")
            if mode == "stop-reading":
                time.sleep(55)
                return
            data = bytearray()
            early = mode in ("early-250-in-body", "early-250-then-accept") and transactions == 1
            while True:
                l = f.readline()
                if not l:
                    return
                if early:
                    send("250 2.0.0 premature, after the first line of the body")
                    early = False
                if mode in ("drop-mid-data", "drop-then-busy-once") and number == 1 and len(data) > 200:
                    conn.shutdown(socket.SHUT_RDWR)
                    conn.close()
                    return
                if l == b".\r\n":
                    break
                if l.startswith(b".."):
                    l = l[1:]
                data += l.replace(b"\r\n", b"\n")
            if accepted == 0:
                empty += 1
                with open(os.path.join(outdir, "empty-data"), "w") as out:
                    out.write(str(empty))
                send("554 5.5.1 no valid recipients")
                continue
            if mode == "store-then-drop":
                saved += 1
                with open(os.path.join(outdir, "msg.%d" % saved), "wb") as out:
                    out.write(data)
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            if mode == "lmtp-drop-after-first" and accepted > 1 and number == 1:
                saved += 1
                with open(os.path.join(outdir, "msg.%d" % saved), "wb") as out:
                    out.write(data)
                send("250 2.0.0 first recipient ok")
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            if mode in ("early-250", "early-250-in-body") and transactions == 1:
                send("554 5.7.1 refused after the dot")
                continue
            if mode == "reject-then-no-greeting":
                send("554 5.6.0 content refused")
                # The NOOP behind the dot is answered (it proves the refusal in step), then the connection closes.
                if f.readline().strip().upper().startswith(b"NOOP"):
                    send("250 ok")
                conn.shutdown(socket.SHUT_RDWR)
                conn.close()
                return
            if mode == "stall-after-dot":
                time.sleep(3)
            if mode == "stall-after-dot-long":
                time.sleep(30)
            saved += 1
            with open(os.path.join(outdir, "msg.%d" % saved), "wb") as out:
                out.write(data)
            # LMTP (RFC 2033 §4.2): one reply per accepted recipient.
            for _ in range(accepted if lmtp else 1):
                send("250 saved")
            if mode == "extra-reply":
                send("554 5.7.1 an extra reply nobody asked for")
        elif cmd == b"QUIT":
            send("221 bye")
            return
        else:
            send("502 unknown")

while time.time() < deadline:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    connections += 1
    with open(os.path.join(outdir, "connections"), "w") as c:
        c.write(str(connections))
    threading.Thread(target=serve, args=(conn, connections), daemon=True).start()
