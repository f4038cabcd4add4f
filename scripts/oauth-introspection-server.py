#!/usr/bin/env python3
"""A local OAuth2 token introspection endpoint (RFC 7662) for the test Dovecot's oauth2 passdb.

  oauth-introspection-server.py PORTFILE
Tokens of the form "tok-USER" are active and belong to USER; anything else is inactive. Listens on 127.0.0.1.
"""
import json, os, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

class Handler(BaseHTTPRequestHandler):
    def _token(self):
        token = ""
        auth = self.headers.get("Authorization", "")
        if auth.lower().startswith("bearer "):
            token = auth[7:].strip()
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            body = parse_qs(self.rfile.read(length).decode())
            token = body.get("token", [token])[0]
        if "token=" in self.path:
            token = parse_qs(self.path.split("?", 1)[1]).get("token", [token])[0]
        return token

    def _answer(self):
        token = self._token()
        if token.startswith("tok-"):
            reply = {"active": True, "username": token[4:]}
        else:
            reply = {"active": False}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = _answer
    do_POST = _answer

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
