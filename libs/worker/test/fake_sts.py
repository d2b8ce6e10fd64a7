#!/usr/bin/env python3
# A stand-in for STS AssumeRole on 127.0.0.1 (port 0; prints "listening on port N"): each POST is
# written to <dir>/request-<n>.json (headers and the decoded form), and answered with AWS's
# documented XML holding the given keys and the session token "token-for-<RoleSessionName>".
# Usage: fake_sts.py <dir> <access key> <secret key>
import datetime
import http.server
import sys
import urllib.parse

from recording import record

directory, access_key, secret_key = sys.argv[1:4]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
        form = dict(urllib.parse.parse_qsl(body, keep_blank_values=True))
        record(directory, {"path": self.path,
                           "headers": {k.lower(): v for k, v in self.headers.items()},
                           "form": form})
        expires = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(
            seconds=int(form.get("DurationSeconds", "3600")))
        answer = f"""<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::123456789012:assumed-role/build/{form.get("RoleSessionName", "")}</Arn>
      <AssumedRoleId>AROA3XFRBF535PLBIFPI4:{form.get("RoleSessionName", "")}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{access_key}</AccessKeyId>
      <SecretAccessKey>{secret_key}</SecretAccessKey>
      <SessionToken>token-for-{form.get("RoleSessionName", "")}</SessionToken>
      <Expiration>{expires.strftime("%Y-%m-%dT%H:%M:%SZ")}</Expiration>
    </Credentials>
    <PackedPolicySize>6</PackedPolicySize>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>c6104cbe-af31-11e0-8154-cbc7ccf896c7</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>""".encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
print(f"listening on port {server.server_address[1]}", flush=True)
server.serve_forever()
