#!/usr/bin/env python3
"""A minimal OpenAI-compatible streaming server for e2e tests (standard library only).

POST .../chat/completions or .../completions answers with an SSE stream of N content chunks
(one every DELAY seconds), a usage chunk and [DONE]; GET .../models lists one model. It binds
127.0.0.1 on a free port and writes that port to the file named by its first argument, so a
test can start it, point `etok bench --endpoint` at it and kill it mid-run (PORTFILE.log gets
one line per request received, so the test knows the run is under way).

Each request body is appended, one JSON line, to PORTFILE.bodies (what etok sent). With
STUB_HONOUR_STOP=1 in the environment the stub honours the request's "stop" as OpenAI does: the
stream ends before the chunk whose text would complete a stop string (the stop string itself is
not sent) and usage counts the chunks sent; by default it ignores "stop", like a server without it.

usage: sse_stub.py PORTFILE [CHUNKS] [DELAY_S]
"""
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHUNKS = int(sys.argv[2]) if len(sys.argv) > 2 else 5
DELAY = float(sys.argv[3]) if len(sys.argv) > 3 else 0.05


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
        n = int(self.headers.get("Content-Length", "0"))
        raw = self.rfile.read(n)
        with open(sys.argv[1] + ".bodies", "a") as log:
            log.write(raw.decode("utf-8", "replace").replace("\n", " ") + "\n")
        stop = []
        if os.environ.get("STUB_HONOUR_STOP") == "1":
            try:
                st = json.loads(raw).get("stop") or []
                stop = [st] if isinstance(st, str) else list(st)
            except (ValueError, AttributeError):
                stop = []
        with open(sys.argv[1] + ".log", "a") as log:  # one line per request, for the test to wait on
            log.write("POST\n")
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            text, sent = "", 0
            for i in range(CHUNKS):
                time.sleep(DELAY)
                piece = "t%d " % i
                if any(s and s in text + piece for s in stop):
                    break
                text += piece
                sent += 1
                c = {"choices": [{"index": 0, "delta": {"content": piece}, "finish_reason": None}]}
                self.wfile.write(b"data: " + json.dumps(c).encode() + b"\n\n")
                self.wfile.flush()
            u = {"choices": [], "usage": {"prompt_tokens": 3, "completion_tokens": sent}}
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
