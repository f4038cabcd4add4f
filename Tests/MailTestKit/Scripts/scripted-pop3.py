#!/usr/bin/env python3
"""A scripted POP3 server for what a real server cannot be made to do (test kit only).

  scripted-pop3.py PORTFILE LOGFILE MODE
MODEs: stls-err (STLS offered, answered -ERR), login-delay, sys-temp, drop-mid-retr, garbage, long-line,
strict-255 (SASL XOAUTH2 offered; an AUTH line over 255 octets is refused, as Office 365 does),
huge-login-delay (CAPA LOGIN-DELAY 100000000000), uidl-8bit (three messages, the second with an 8-bit UIDL),
cram-fallback (SASL CRAM-MD5 offered, refused without a code, USER/PASS works: Courier), auth-code (CRAM-MD5
refused with [AUTH]), apop-fallback (APOP timestamp, APOP refused, USER/PASS works: solid-pop3d), sys-perm (PASS
answered -ERR [SYS/PERM]), utf8 (CAPA offers UTF8), echo-pass (PASS answered -ERR [SYS/TEMP] quoting the password,
as sent and in base64), echo-retr (RETR answered -ERR quoting the password).
Everything the client sends is appended to LOGFILE. One connection at a time; exits after 60 s.
"""
import socket, sys, time

portfile, logfile, mode = sys.argv[1], sys.argv[2], sys.argv[3]
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen(4)
srv.settimeout(60)
with open(portfile + ".tmp", "w") as f:
    f.write(str(srv.getsockname()[1]))
import os
os.rename(portfile + ".tmp", portfile)
MESSAGE = b"From: a@b.test\r\nSubject: scripted\r\n\r\n" + b"line of the message body\r\n" * 2000
UIDLS = [b"scripted-uid-1"]
SECRET = [b""]
if mode == "uidl-8bit":
    UIDLS = [b"first-uid", b"caf\xe9-\xff", b"third-uid"]

def session(conn):
    f = conn.makefile("rb")
    log = open(logfile, "ab")
    def send(b):
        conn.sendall(b)
    if mode == "garbage":
        send(b"HELLO THIS IS NOT POP3\r\n")
        return
    if mode == "long-line":
        send(b"+OK " + b"x" * 20000)
        time.sleep(2)
        return
    send(b"+OK scripted ready <1234.5678@scripted.test>\r\n" if mode == "apop-fallback" else b"+OK scripted ready\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        log.write(line)
        log.flush()
        cmd = line.strip().split(b" ")[0].upper()
        if cmd == b"CAPA":
            send(b"+OK\r\nUSER\r\nUIDL\r\nRESP-CODES\r\n" + (b"STLS\r\n" if mode == "stls-err" else b"")
                 + (b"SASL XOAUTH2\r\n" if mode == "strict-255" else b"")
                 + (b"SASL CRAM-MD5\r\n" if mode in ("cram-fallback", "auth-code") else b"")
                 + (b"LOGIN-DELAY 100000000000\r\n" if mode == "huge-login-delay" else b"")
                 + (b"UTF8\r\n" if mode == "utf8" else b"") + b".\r\n")
        elif cmd == b"AUTH" and mode in ("cram-fallback", "auth-code"):
            send(b"+ PDEyMzQuNTY3OEBzY3JpcHRlZC50ZXN0Pg==\r\n")
            response = f.readline()
            log.write(response)
            send(b"-ERR authentication failed\r\n" if mode == "cram-fallback" else b"-ERR [AUTH] bad password\r\n")
        elif cmd == b"APOP":
            send(b"-ERR no APOP secret for this user\r\n")
        elif cmd == b"UTF8":
            send(b"+OK UTF8 enabled\r\n")
        elif cmd == b"AUTH":
            if len(line) > 255:
                send(b"-ERR command line too long\r\n")
                continue
            send(b"+ \r\n")
            response = f.readline()
            log.write(response)
            send(b"+OK logged in\r\n" if len(response) > 255 else b"-ERR [AUTH] bad\r\n")
        elif cmd == b"STLS":
            send(b"-ERR TLS not available right now\r\n")
        elif cmd == b"USER":
            send(b"+OK\r\n")
        elif cmd == b"PASS":
            if mode == "login-delay":
                send(b"-ERR [LOGIN-DELAY] you logged in too recently\r\n")
            elif mode == "sys-temp":
                send(b"-ERR [SYS/TEMP] mail store temporarily unavailable\r\n")
            elif mode == "sys-perm":
                send(b"-ERR [SYS/PERM] mailbox is damaged\r\n")
            elif mode == "echo-retr":
                SECRET[0] = line.strip()[5:]
                send(b"+OK logged in\r\n")
            elif mode == "echo-pass":
                import base64
                secret = line.strip()[5:]
                send(b"-ERR [SYS/TEMP] you sent PASS " + secret + b" (" + base64.b64encode(secret) + b")\r\n")
            else:
                send(b"+OK logged in\r\n")
        elif cmd == b"UIDL":
            send(b"+OK\r\n" + b"".join(b"%d %s\r\n" % (i + 1, u) for i, u in enumerate(UIDLS)) + b".\r\n")
        elif cmd == b"LIST":
            send(b"+OK\r\n" + b"".join(b"%d %d\r\n" % (i + 1, len(MESSAGE)) for i in range(len(UIDLS))) + b".\r\n")
        elif cmd == b"RETR" and mode == "echo-retr":
            send(b"-ERR cannot open the mailbox of a user whose password is " + SECRET[0] + b"\r\n")
        elif cmd == b"RETR":
            if mode == "drop-mid-retr":
                send(b"+OK\r\n" + MESSAGE[: len(MESSAGE) // 2])
                conn.shutdown(socket.SHUT_RDWR)
                return
            send(b"+OK\r\n" + MESSAGE + b".\r\n")
        elif cmd == b"DELE":
            send(b"+OK marked\r\n")
        elif cmd == b"QUIT":
            send(b"+OK bye\r\n")
            return
        else:
            send(b"-ERR unknown\r\n")

deadline = time.time() + 60
while time.time() < deadline:
    try:
        conn, _ = srv.accept()
    except socket.timeout:
        break
    try:
        session(conn)
    except Exception:
        pass
    finally:
        conn.close()
