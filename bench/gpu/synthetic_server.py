#!/usr/bin/env python3
"""synthetic_server.py — an OpenAI-compatible streaming server whose tokens come from a
Llama-shaped decoder with RANDOM weights, run by PyTorch on a GPU (or the CPU, for a smoke test).

Why: `etok bench --endpoint` and its GPU levers (--gpu-power-limit) need a real GPU producing
tokens under load. This server does exactly the work of a dense decoder of the given shape
(bf16 matrices, grouped-query attention over a KV cache, greedy sampling), so its power draw
and time per token are those of such a model on that GPU — and nothing else: the weights are
random, so the TEXT IS MEANINGLESS and no quality figure may be taken from it. Stdlib HTTP,
one generation at a time (requests queue on a lock), every token its own SSE chunk, `usage` at
the end when the client asks (stream_options.include_usage), then `data: [DONE]`.

    python3 bench/gpu/synthetic_server.py --port 8765 --layers 8 --hidden 8192 --ffn 28672
    python3 bench/gpu/synthetic_server.py --device cpu --layers 2 --hidden 64 --ffn 128 --vocab 512

Prints "ready <port>" on stdout once the weights are on the device and one warm-up generation
has run. Token ids are bytes of the prompt's UTF-8 (the prompt length in tokens is its length
in bytes); a generated token's text is " t<id>".
"""
import argparse
import json
import math
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
import torch.nn.functional as F


class Decoder:
    """Pre-norm decoder: RMSNorm, GQA attention with RoPE, SwiGLU FFN, tied-free LM head."""

    def __init__(self, a):
        self.dev = torch.device(a.device)
        self.dt = torch.bfloat16 if a.device != "cpu" else torch.float32
        self.L, self.d, self.ff, self.V = a.layers, a.hidden, a.ffn, a.vocab
        self.hd = a.head_dim
        self.nh, self.nkv = a.hidden // a.head_dim, a.kv_heads
        self.max_len = a.max_len
        g = torch.Generator(device=self.dev).manual_seed(a.seed)

        def w(*shape, fan_in):
            t = torch.empty(*shape, device=self.dev, dtype=self.dt)
            return t.normal_(0.0, 1.0 / math.sqrt(fan_in), generator=g)

        d, hd = self.d, self.hd
        self.emb = w(self.V, d, fan_in=1)
        self.layers = []
        for _ in range(self.L):
            self.layers.append(dict(
                wq=w(self.nh * hd, d, fan_in=d), wk=w(self.nkv * hd, d, fan_in=d),
                wv=w(self.nkv * hd, d, fan_in=d), wo=w(d, self.nh * hd, fan_in=self.nh * hd),
                w1=w(self.ff, d, fan_in=d), w3=w(self.ff, d, fan_in=d), w2=w(d, self.ff, fan_in=self.ff)))
        self.head = w(self.V, d, fan_in=d)
        inv = 1.0 / (10000.0 ** (torch.arange(0, hd, 2, device=self.dev, dtype=torch.float32) / hd))
        ang = torch.outer(torch.arange(self.max_len, device=self.dev, dtype=torch.float32), inv)
        self.cos, self.sin = ang.cos().to(self.dt), ang.sin().to(self.dt)
        self.params = sum(t.numel() for t in [self.emb, self.head]) + sum(
            t.numel() for l in self.layers for t in l.values())

    @staticmethod
    def rms(x):
        return x * torch.rsqrt(x.float().pow(2).mean(-1, keepdim=True) + 1e-6).to(x.dtype)

    def rope(self, x, pos):  # x: [heads, n, hd]
        c, s = self.cos[pos], self.sin[pos]
        x1, x2 = x[..., 0::2], x[..., 1::2]
        return torch.stack((x1 * c - x2 * s, x1 * s + x2 * c), dim=-1).flatten(-2)

    def new_cache(self):
        shape = (self.L, 2, self.nkv, self.max_len, self.hd)
        return torch.empty(shape, device=self.dev, dtype=self.dt)

    @torch.inference_mode()
    def forward(self, ids, start, cache):
        """ids: 1-D token ids at positions start..start+n-1; returns the last position's logits."""
        n = ids.shape[0]
        pos = torch.arange(start, start + n, device=self.dev)
        x = self.emb[ids]
        rep = self.nh // self.nkv
        for i, l in enumerate(self.layers):
            h = self.rms(x)
            q = F.linear(h, l["wq"]).view(n, self.nh, self.hd).transpose(0, 1)
            k = F.linear(h, l["wk"]).view(n, self.nkv, self.hd).transpose(0, 1)
            v = F.linear(h, l["wv"]).view(n, self.nkv, self.hd).transpose(0, 1)
            q, k = self.rope(q, pos), self.rope(k, pos)
            cache[i, 0, :, start:start + n] = k
            cache[i, 1, :, start:start + n] = v
            kk = cache[i, 0, :, :start + n].repeat_interleave(rep, dim=0)
            vv = cache[i, 1, :, :start + n].repeat_interleave(rep, dim=0)
            if n > 1:
                mask = torch.ones(n, start + n, device=self.dev, dtype=torch.bool).tril(start)
                o = F.scaled_dot_product_attention(q, kk, vv, attn_mask=mask)
            else:
                o = F.scaled_dot_product_attention(q, kk, vv)
            x = x + F.linear(o.transpose(0, 1).reshape(n, self.nh * self.hd), l["wo"])
            h = self.rms(x)
            x = x + F.linear(F.silu(F.linear(h, l["w1"])) * F.linear(h, l["w3"]), l["w2"])
        return F.linear(self.rms(x[-1]), self.head).float()

    def generate(self, prompt_ids, max_tokens):
        """Yields generated token ids one at a time (greedy), max_tokens of them."""
        cache = self.new_cache()
        ids = torch.tensor(prompt_ids[: self.max_len - max_tokens - 1] or [0], device=self.dev)
        logits = self.forward(ids, 0, cache)
        p = ids.shape[0]
        for _ in range(max_tokens):
            t = int(torch.argmax(logits))  # waits for the GPU: a token exists when it is read
            yield t
            logits = self.forward(torch.tensor([t], device=self.dev), p, cache)
            p += 1


def make_handler(model, a, lock):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, fmt, *args):  # keep stdout for the ready line and errors
            pass

        def send_json(self, code, obj):
            body = json.dumps(obj).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            if self.path.rstrip("/") in ("/v1/models", "/models"):
                self.send_json(200, {"object": "list", "data": [{"id": a.model_id, "object": "model"}]})
            elif self.path == "/health":
                self.send_json(200, {"status": "ok"})
            else:
                self.send_json(404, {"error": {"message": "not found"}})

        def do_POST(self):
            chat = self.path.endswith("/chat/completions")
            if not (chat or self.path.endswith("/completions")):
                return self.send_json(404, {"error": {"message": "not found"}})
            try:
                req = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                if chat:
                    text = "".join(str(m.get("content", "")) for m in req["messages"])
                else:
                    text = str(req["prompt"])
                max_tokens = int(req.get("max_tokens") or 16)
                if not 1 <= max_tokens <= a.max_len // 2:
                    raise ValueError(f"max_tokens must be 1..{a.max_len // 2}")
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                return self.send_json(400, {"error": {"message": f"bad request: {e}"}})
            prompt = list(text.encode("utf-8"))
            usage = bool((req.get("stream_options") or {}).get("include_usage"))
            obj = "chat.completion.chunk" if chat else "text_completion"
            rid = f"synthetic-{time.monotonic_ns()}"
            with lock:
                if not req.get("stream"):
                    toks = list(model.generate(prompt, max_tokens))
                    out = "".join(f" t{t}" for t in toks)
                    choice = {"index": 0, "finish_reason": "length"}
                    choice.update({"message": {"role": "assistant", "content": out}} if chat else {"text": out})
                    return self.send_json(200, {"id": rid, "object": obj.replace(".chunk", ""), "choices": [choice],
                                                "usage": {"prompt_tokens": len(prompt), "completion_tokens": len(toks),
                                                          "total_tokens": len(prompt) + len(toks)}})
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()

                def chunk(payload):
                    self.wfile.write(b"data: " + json.dumps(payload).encode() + b"\n\n")
                    self.wfile.flush()

                n = 0
                try:
                    for t in model.generate(prompt, max_tokens):
                        n += 1
                        piece = f" t{t}"
                        fin = "length" if n == max_tokens else None
                        ch = {"index": 0, "finish_reason": fin}
                        ch.update({"delta": {"content": piece}} if chat else {"text": piece})
                        chunk({"id": rid, "object": obj, "model": a.model_id, "choices": [ch]})
                    if usage:
                        chunk({"id": rid, "object": obj, "model": a.model_id, "choices": [],
                               "usage": {"prompt_tokens": len(prompt), "completion_tokens": n,
                                         "total_tokens": len(prompt) + n}})
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client went away: stop generating for it

    return Handler


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--port", type=int, default=8765)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--device", default="cuda")
    p.add_argument("--layers", type=int, default=8)
    p.add_argument("--hidden", type=int, default=8192)
    p.add_argument("--ffn", type=int, default=28672)
    p.add_argument("--head-dim", type=int, default=128)
    p.add_argument("--kv-heads", type=int, default=8)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--max-len", type=int, default=4096)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--model-id", default="synthetic-random-weights")
    a = p.parse_args()
    if a.hidden % a.head_dim or (a.hidden // a.head_dim) % a.kv_heads:
        p.error("--hidden must be a multiple of --head-dim, and the head count of --kv-heads")
    if a.device.startswith("cuda") and not torch.cuda.is_available():
        print("synthetic_server: no CUDA device (use --device cpu for a smoke test)", file=sys.stderr)
        sys.exit(1)
    model = Decoder(a)
    for _ in model.generate(list(b"warm-up"), 4):
        pass
    gib = model.params * (2 if model.dt == torch.bfloat16 else 4) / 2**30
    print(f"synthetic_server: {model.params / 1e9:.2f} G random parameters ({gib:.1f} GiB, {model.dt}) "
          f"on {a.device}: {a.layers} layers, hidden {a.hidden}, ffn {a.ffn}, heads {model.nh}/{model.nkv}",
          file=sys.stderr, flush=True)
    srv = ThreadingHTTPServer((a.host, a.port), make_handler(model, a, threading.Lock()))
    print(f"ready {a.port}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
