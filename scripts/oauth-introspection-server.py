#!/usr/bin/env python3
"""A local OAuth2 server for tests: token introspection (RFC 7662) for the test Dovecot's oauth2 passdb, and a
token endpoint (refresh_token and device_code grants, RFC 6749 / RFC 8628) plus a device authorization endpoint.

  oauth-introspection-server.py PORTFILE
Access tokens "tok-USER" (optionally followed by ".anything") are active for USER. Refresh token "refresh-USER" yields a new "tok-USER". The device flow
for client_id "client-USER" answers authorization_pending once, then issues tok-USER / refresh-USER.
Listens on 127.0.0.1 only.
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
            # "tok-USER" or "tok-USER.anything" (long tokens, for the 255-octet AUTH line rule)
            reply = {"active": True, "username": token[4:].split(".")[0]}
        else:
            reply = {"active": False}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _json(self, code, obj):
        data = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    pending = {}

    def do_POST(self):
        if self.path.startswith("/introspect"):
            return self._answer()
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        if self.path.startswith("/device"):
            user = form.get("client_id", "")[len("client-"):]
            return self._json(200, {"device_code": "dev-" + user, "user_code": "WDJB-MJHT",
                                    "verification_uri": "http://127.0.0.1/activate", "expires_in": 60, "interval": 1})
        if self.path.startswith("/token"):
            grant = form.get("grant_type", "")
            if grant == "refresh_token":
                rt = form.get("refresh_token", "")
                if rt.startswith("refresh-"):
                    return self._json(200, {"access_token": "tok-" + rt[8:], "token_type": "Bearer", "expires_in": 3600})
                return self._json(400, {"error": "invalid_grant"})
            if grant == "urn:ietf:params:oauth:grant-type:device_code":
                dc = form.get("device_code", "")
                if not dc.startswith("dev-"):
                    return self._json(400, {"error": "invalid_grant"})
                if not Handler.pending.get(dc):
                    Handler.pending[dc] = True
                    return self._json(400, {"error": "authorization_pending"})
                user = dc[4:]
                return self._json(200, {"access_token": "tok-" + user, "refresh_token": "refresh-" + user,
                                        "token_type": "Bearer", "expires_in": 3600})
            return self._json(400, {"error": "unsupported_grant_type"})
        self._json(404, {"error": "not found"})

    do_GET = _answer

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
server.serve_forever()
