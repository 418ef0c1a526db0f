#!/usr/bin/env python3
"""An OpenAI-compatible streaming server for the workload e2e test (standard library only).

Every POST body is appended to PORTFILE.log (one JSON line), so the test can check what etok
sent (prompts, max_tokens, ignore_eos, min_tokens). The answer has max_tokens content chunks
when the request asks for an exact length (ignore_eos) and MODE is "honour", else
min(max_tokens, 3) chunks (a model that stops early; MODE "deaf" never honours ignore_eos),
then a usage chunk and [DONE]. It binds 127.0.0.1 on a free port written to PORTFILE.

usage: workload_stub.py PORTFILE [honour|deaf]
"""
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

MODE = sys.argv[2] if len(sys.argv) > 2 else "honour"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = json.dumps({"object": "list", "data": [{"id": "stub", "object": "model"}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        req = json.loads(raw)
        with open(sys.argv[1] + ".log", "a") as log:
            log.write(json.dumps(req) + "\n")
        mt = int(req.get("max_tokens", 16))
        n = mt if (req.get("ignore_eos") and MODE == "honour") else min(mt, 3)
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            for i in range(n):
                c = {"choices": [{"index": 0, "delta": {"content": "w%d " % i}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
            u = {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": n}}
            self.wfile.write(b"data: " + json.dumps(u).encode() + b"\n\ndata: [DONE]\n\n")
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            pass
        self.close_connection = True


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
srv.daemon_threads = True
with open(sys.argv[1] + ".tmp", "w") as f:
    f.write(str(srv.server_address[1]))
os.rename(sys.argv[1] + ".tmp", sys.argv[1])
srv.serve_forever()
