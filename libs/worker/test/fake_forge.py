#!/usr/bin/env python3
# A stand-in for a forge's commit status API on 127.0.0.1 (port 0; prints "listening on port N"):
# each request is written to <dir>/request-<n>.json (method, path, headers, the JSON body) and
# answered 201 with the documented shape's essentials, as GitHub, GitLab and Gitea do.
# Usage: fake_forge.py <dir>
import http.server
import json
import sys

from recording import record

directory = sys.argv[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        n = record(directory, {"method": self.command, "path": self.path,
                               "headers": {k.lower(): v for k, v in self.headers.items()},
                               "body": json.loads(raw or "null")})
        answer = json.dumps({"id": n}).encode()
        self.send_response(201)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on port {server.server_address[1]}", flush=True)
server.serve_forever()
