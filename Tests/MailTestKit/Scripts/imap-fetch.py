#!/usr/bin/env python3
"""Reads a folder back over IMAP (test kit only): imap-fetch.py PORT USER PASSWORD [FOLDER]

Prints one JSON object per message: {"uid", "flags", "internaldate" (seconds since 1970), "body" (base64 of
BODY.PEEK[], CRLF as the server sends it)}. Exits 1 if the login or the folder fails.
"""
import base64, imaplib, json, re, sys

port, user, password = int(sys.argv[1]), sys.argv[2], sys.argv[3]
folder = sys.argv[4] if len(sys.argv) > 4 else "INBOX"
m = imaplib.IMAP4("127.0.0.1", port)
m.login(user, password)
typ, _ = m.select('"%s"' % folder, readonly=True)
if typ != "OK":
    sys.exit(1)
typ, data = m.uid("SEARCH", None, "ALL")
for uid in data[0].split():
    typ, parts = m.uid("FETCH", uid, "(FLAGS INTERNALDATE BODY.PEEK[])")
    head, body = parts[0][0].decode(), parts[0][1]
    flags = re.search(r"FLAGS \(([^)]*)\)", head).group(1).split()
    date = imaplib.Internaldate2tuple(parts[0][0])
    import time
    print(json.dumps({"uid": int(uid), "flags": flags, "internaldate": int(time.mktime(date)),
                      "body": base64.b64encode(body).decode()}))
m.logout()
