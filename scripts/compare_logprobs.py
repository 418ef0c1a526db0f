#!/usr/bin/env python3
"""compare_logprobs.py - numerical agreement of etok's engine with llama.cpp on one GGUF file.

For 5 fixed prompts the peer (llama.cpp's llama-server, given as LLAMA_SERVER=/path/to/llama-server;
nothing here builds or fetches it) generates N greedy tokens (temperature 0, ignore_eos) and
reports the top-10 log-probabilities of every step (/completion with n_probs: the softmax of the
raw logits, post_sampling_probs off). The same token sequence is then teacher-forced through
etok's engine (bench_logprobs: the prompt in one pass, then one token per step, as the peer
decodes), which reports its own top-10 computed the way the peer's server does. Per step the
log-probabilities of the tokens in both top-10 lists are compared.

Prints per prompt and overall: median and max |delta log-prob| over shared top-10 tokens, the
mean number of shared tokens, and greedy agreement (steps where etok's most likely token is the
token the peer chose). Unset LLAMA_SERVER: prints a one-line note and exits 0, unless
--peer-json gives saved peer output (--save-peer writes it), so etok changes can be measured
again without the peer.

--cache-type picks the KV cache of both: f16 (default; the peer's default, etok --kv 16) or q8_0
(etok --kv 8; the peer with -fa -ctk q8_0 -ctv q8_0, since llama.cpp needs flash attention for a
quantised V cache). Saved peer output records its cache type; a mismatch is refused.

usage: LLAMA_SERVER=... scripts/compare_logprobs.py [-m MODEL] [--bench build/bench_logprobs]
       [-n 64] [-t 2] [--cache-type f16|q8_0] [--kv BITS] [--port 18089] [--save-peer F]
       [--peer-json F] [--json OUT]
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request

IM = "<|im_start|>{role}\n{text}<|im_end|>\n"

# Fixed prompts: three chat-formatted (ChatML, the default model's template) and two plain.
PROMPTS = [
    ("chat_sky", IM.format(role="user", text="Explain in two sentences why the sky is blue.") + "<|im_start|>assistant\n"),
    ("chat_poem", IM.format(role="user", text="Write a short poem about a lighthouse keeper.") + "<|im_start|>assistant\n"),
    ("chat_copper", IM.format(role="system", text="You are a concise assistant.")
     + IM.format(role="user", text="Name three uses of copper and why it suits each.") + "<|im_start|>assistant\n"),
    ("plain_code", "def fibonacci(n):\n    \"\"\"Return the n-th Fibonacci number.\"\"\"\n"),
    ("plain_history", "The history of the printing press begins in"),
]


def post(port, path, body, timeout=600):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return json.loads(r.read())


PEER_CACHE_ARGS = {"f16": [], "q8_0": ["-fa", "-ctk", "q8_0", "-ctv", "q8_0"]}
ETOK_KV_BITS = {"f16": 16, "q8_0": 8}


def run_peer(server, model, n, threads, port, cache_type):
    log = open(os.devnull, "w")
    proc = subprocess.Popen([server, "-m", model, "-t", str(threads), "-c", "2048", "-np", "1",
                             "--port", str(port), "--host", "127.0.0.1"] + PEER_CACHE_ARGS[cache_type],
                            stdout=log, stderr=log)
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None:
                sys.exit(f"compare_logprobs: {server} exited with {proc.returncode} before it was ready")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.time() > deadline:
                sys.exit("compare_logprobs: the peer server was not ready within 300 s")
            time.sleep(0.5)
        props = {}
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/props", timeout=30) as r:
                props = json.loads(r.read())
        except (urllib.error.URLError, OSError, ValueError):
            pass
        out = []
        for name, text in PROMPTS:
            ids = post(port, "/tokenize", {"content": text, "add_special": True})["tokens"]
            r = post(port, "/completion", {"prompt": ids, "n_predict": n, "temperature": 0, "n_probs": 10,
                                           "ignore_eos": True, "cache_prompt": False, "seed": 1})
            steps = r["completion_probabilities"]
            out.append({"name": name, "prompt_ids": ids, "tokens": [s["id"] for s in steps],
                        "top": [[[t["id"], t["logprob"]] for t in s["top_logprobs"]] for s in steps]})
        return {"peer": server, "peer_build": props.get("build_info", ""), "model": model, "cache_type": cache_type,
                "peer_args": PEER_CACHE_ARGS[cache_type], "prompts": out}
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_etok(bench, model, peer, threads, kv):
    inp = {"n_top": 10, "sequences": [{"prompt_ids": p["prompt_ids"], "tokens": p["tokens"]} for p in peer["prompts"]]}
    r = subprocess.run([bench, "-m", model, "-t", str(threads), "--kv", str(kv)], input=json.dumps(inp).encode(),
                       stdout=subprocess.PIPE, check=False)
    if r.returncode != 0:
        sys.exit(f"compare_logprobs: {bench} failed with exit {r.returncode}")
    return json.loads(r.stdout)["sequences"]


def compare(peer, mine):
    rows, all_d = [], []
    for p, m in zip(peer["prompts"], mine):
        d, shared, agree = [], [], 0
        for k, (ptop, step) in enumerate(zip(p["top"], m["steps"])):
            pe = {t: lp for t, lp in ptop}
            me = {t: lp for t, lp in step["top"]}
            common = set(pe) & set(me)
            shared.append(len(common))
            d.extend(abs(pe[t] - me[t]) for t in common)
            agree += step["top"][0][0] == p["tokens"][k]
        all_d.extend(d)
        rows.append({"name": p["name"], "steps": len(p["tokens"]), "median": statistics.median(d), "max": max(d),
                     "shared": sum(shared) / len(shared), "greedy": agree})
    return rows, {"median": statistics.median(all_d), "max": max(all_d), "n": len(all_d),
                  "greedy": sum(r["greedy"] for r in rows), "steps": sum(r["steps"] for r in rows),
                  "shared": sum(r["shared"] * r["steps"] for r in rows) / sum(r["steps"] for r in rows)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("-m", "--model", default="models/SmolLM2-135M-Instruct.Q4_1.gguf")
    ap.add_argument("--bench", default="build/bench_logprobs", help="etok's bench_logprobs (cmake --build build --target bench_logprobs)")
    ap.add_argument("-n", type=int, default=64, help="greedy tokens per prompt")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("--cache-type", choices=sorted(PEER_CACHE_ARGS), default="f16",
                    help="KV cache of both: f16 (the peer's default) or q8_0 (the peer with -fa -ctk q8_0 -ctv q8_0)")
    ap.add_argument("--kv", type=int, help="etok KV cache bits (default: those of --cache-type, 16 or 8)")
    ap.add_argument("--port", type=int, default=18089)
    ap.add_argument("--save-peer", help="write the peer's output here")
    ap.add_argument("--peer-json", help="use saved peer output instead of running the peer")
    ap.add_argument("--json", help="write the comparison here")
    a = ap.parse_args()
    if a.kv is None:
        a.kv = ETOK_KV_BITS[a.cache_type]
    if a.peer_json:
        with open(a.peer_json) as f:
            peer = json.load(f)
        saved = peer.get("cache_type", "f16")  # output saved before the option: the peer's default cache
        if saved != a.cache_type:
            sys.exit(f"compare_logprobs: {a.peer_json} was saved with the peer's {saved} cache, not {a.cache_type}")
    else:
        server = os.environ.get("LLAMA_SERVER")
        if not server:
            print("compare_logprobs: LLAMA_SERVER is unset (path to llama.cpp's llama-server); peer comparison skipped")
            return 0
        peer = run_peer(server, a.model, a.n, a.threads, a.port, a.cache_type)
        if a.save_peer:
            with open(a.save_peer, "w") as f:
                json.dump(peer, f)
    mine = run_etok(a.bench, a.model, peer, a.threads, a.kv)
    rows, tot = compare(peer, mine)
    print(f"model {a.model}; peer {peer.get('peer', '?')} {peer.get('peer_build', '')} {a.cache_type} cache "
          f"{' '.join(peer.get('peer_args', []))}; etok KV {a.kv}-bit")
    print(f"{'prompt':<14} {'steps':>5} {'median|dlp|':>11} {'max|dlp|':>9} {'shared/10':>9} {'greedy':>7}")
    for r in rows:
        print(f"{r['name']:<14} {r['steps']:>5} {r['median']:>11.4f} {r['max']:>9.4f} {r['shared']:>9.2f} "
              f"{r['greedy']:>4}/{r['steps']}")
    print(f"{'all':<14} {tot['steps']:>5} {tot['median']:>11.4f} {tot['max']:>9.4f} {tot['shared']:>9.2f} "
          f"{tot['greedy']:>4}/{tot['steps']}   ({tot['n']} shared log-probs)")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"model": a.model, "peer": peer.get("peer"), "peer_build": peer.get("peer_build"),
                       "cache_type": a.cache_type, "etok_kv_bits": a.kv,
                       "prompts": rows, "all": tot}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
