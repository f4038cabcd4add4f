#!/usr/bin/env python3
"""A scripted POP3 server for what a real server cannot be made to do (test kit only).

  scripted-pop3.py PORTFILE LOGFILE MODE
MODEs: stls-err (STLS offered, answered -ERR), login-delay, sys-temp, drop-mid-retr, garbage, long-line,
strict-255 (SASL XOAUTH2 offered; an AUTH line over 255 octets is refused, as Office 365 does).
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
    send(b"+OK scripted ready\r\n")
    while True:
        line = f.readline()
        if not line:
            return
        log.write(line)
        log.flush()
        cmd = line.strip().split(b" ")[0].upper()
        if cmd == b"CAPA":
            send(b"+OK\r\nUSER\r\nUIDL\r\nRESP-CODES\r\n" + (b"STLS\r\n" if mode == "stls-err" else b"")
                 + (b"SASL XOAUTH2\r\n" if mode == "strict-255" else b"") + b".\r\n")
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
            else:
                send(b"+OK logged in\r\n")
        elif cmd == b"UIDL":
            send(b"+OK\r\n1 scripted-uid-1\r\n.\r\n")
        elif cmd == b"LIST":
            send(b"+OK\r\n1 %d\r\n.\r\n" % len(MESSAGE))
        elif cmd == b"RETR":
            if mode == "drop-mid-retr":
                send(b"+OK\r\n" + MESSAGE[: len(MESSAGE) // 2])
                conn.shutdown(socket.SHUT_RDWR)
                return
            send(b"+OK\r\n" + MESSAGE + b".\r\n")
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
