#!/usr/bin/env python3
"""A stand-in for EGI's ARGO Messaging Service (AMS), for the sender tests.

Only what cannot run here is replaced; the API follows the public AMS
v1 API as argo-ams-library uses it:

* POST /v1/projects/{project}/topics/{topic}:publish on the API port
  (TLS): needs `x-api-key: <token>` (else 401) and a JSON body
  {"messages": [{"attributes": {...}, "data": "<base64>"}]}; answers 200
  {"messageIds": ["<n>", ...]}.
* GET /v1/service-types/ams/hosts/{host}:authx509 on the authentication
  port (TLS with a required client certificate from the test CA): answers
  200 {"token": "<token>"}.

Each published message's data is base64-decoded and checked with
`openssl smime -verify -CAfile <ca>`; what it stores per message (GET
/_published) says whether it verified and holds the verified content.
GET /_requests lists every request (method, path, headers, body). POST
/_fail {"statuses": [503, 503]} makes the next publishes answer those
statuses first (200 in the list: that publish goes through).

Usage: fake_ams.py --cert server.pem --key server.key --ca ca.pem
       --token TOKEN [--port 0] [--auth-port 0]
Prints "READY <port> <auth_port>" once both listen on 127.0.0.1.
"""

import argparse
import base64
import json
import os
import re
import ssl
import subprocess
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PUBLISH = re.compile(r"^/v1/projects/([^/]+)/topics/([^/:]+):publish$")
AUTHX509 = re.compile(r"^/v1/service-types/ams/hosts/([^/:]+):authx509$")

lock = threading.Lock()
published = []
requests = []
fail_next = []
counter = [0]


def verify(data, ca):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(data)
        name = f.name
    try:
        p = subprocess.run(
            ["openssl", "smime", "-verify", "-CAfile", ca, "-in", name],
            capture_output=True,
        )
        return p.returncode == 0, p.stdout.decode("latin-1"), p.stderr.decode("latin-1")
    finally:
        os.unlink(name)


def error(code, message, status):
    return code, {"error": {"code": code, "message": message, "status": status}}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fake-ams"

    def log_message(self, *args):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def record(self, body):
        with lock:
            requests.append({
                "method": self.command,
                "path": self.path,
                "port": self.server.server_address[1],
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
                "client_cert": bool(self.connection.getpeercert()),
            })

    def do_GET(self):
        self.record(b"")
        opts = self.server.opts
        if self.path == "/_published":
            with lock:
                return self.reply(200, published)
        if self.path == "/_requests":
            with lock:
                return self.reply(200, requests)
        m = AUTHX509.match(self.path)
        if m and self.server.auth:
            if not self.connection.getpeercert():
                return self.reply(*error(401, "No certificate provided.", "UNAUTHORIZED"))
            return self.reply(200, {"token": opts.token})
        return self.reply(*error(404, "Not Found", "NOT_FOUND"))

    def do_POST(self):
        body = self.body()
        self.record(body)
        opts = self.server.opts
        if self.path == "/_fail":
            with lock:
                fail_next.extend(json.loads(body)["statuses"])
            return self.reply(200, {})
        m = PUBLISH.match(self.path)
        if not m or self.server.auth:
            return self.reply(*error(404, "Not Found", "NOT_FOUND"))
        if self.headers.get("x-api-key") != opts.token:
            return self.reply(*error(401, "Unauthorized", "UNAUTHORIZED"))
        with lock:
            status = fail_next.pop(0) if fail_next else None
        if status == 413:
            return self.reply(*error(413, "Message size too large", "INVALID_ARGUMENT"))
        if status is not None and status != 200:
            return self.reply(*error(status, "injected failure", "INTERNAL"))
        try:
            msgs = json.loads(body)["messages"]
            assert isinstance(msgs, list) and msgs
        except Exception:
            return self.reply(*error(400, "Invalid Message Arguments", "INVALID_ARGUMENT"))
        ids = []
        for msg in msgs:
            data = base64.b64decode(msg["data"], validate=True)
            ok, content, err = verify(data, opts.ca)
            with lock:
                counter[0] += 1
                ids.append(str(counter[0]))
                published.append({
                    "id": ids[-1],
                    "project": m.group(1),
                    "topic": m.group(2),
                    "attributes": msg.get("attributes", {}),
                    "keys": sorted(msg.keys()),
                    "data": msg["data"],
                    "verified": ok,
                    "content": content,
                    "verify_error": err,
                })
        return self.reply(200, {"messageIds": ids})


def serve(opts, port, auth):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(opts.cert, opts.key)
    if auth:
        ctx.load_verify_locations(opts.ca)
        ctx.verify_mode = ssl.CERT_REQUIRED
    srv = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    srv.opts = opts
    srv.auth = auth
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv.server_address[1]


def main():
    ap = argparse.ArgumentParser()
    for a in ("--cert", "--key", "--ca", "--token"):
        ap.add_argument(a, required=True)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--auth-port", type=int, default=0)
    opts = ap.parse_args()
    p = serve(opts, opts.port, False)
    a = serve(opts, opts.auth_port, True)
    print("READY", p, a, flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
