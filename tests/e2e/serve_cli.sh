#!/bin/sh
# serve_cli.sh — the `etok serve` and `etok exporter` commands end to end on loopback: bad
# arguments fail with one line and the usage exit code, a missing model with the input exit
# code; the server answers a chat request with energy in its usage, /health, /v1/models, a 401
# for a bad key, and /metrics that promtool accepts; SIGTERM stops it cleanly (exit 0). When
# `etok bench --endpoint` exists, it drives the server at concurrency 8 and every request must
# be answered. Uses the real default model (skips the server part when it is absent).
set -eu
ETOK="${ETOK_BIN:-build/etok}"
T=$(mktemp -d /tmp/etok_serve_cli_XXXXXX)
SPID=""
cleanup() {
  if [ -n "$SPID" ]; then kill "$SPID" 2>/dev/null || true; wait "$SPID" 2>/dev/null || true; fi
  rm -rf "$T"
}
trap cleanup EXIT INT TERM

expect_rc() { # want_rc cmd...
  want=$1; shift
  set +e
  "$@" > "$T/out" 2> "$T/err"
  rc=$?
  set -e
  if [ "$rc" -ne "$want" ]; then
    echo "serve_cli: '$*' exited $rc, expected $want"; cat "$T/err"; exit 1
  fi
  if [ "$want" -ne 0 ] && [ "$(wc -l < "$T/err")" -ne 1 ]; then
    echo "serve_cli: '$*' should fail with one line:"; cat "$T/err"; exit 1
  fi
}

# without -m the default model is resolved like every command's (docs/INSTALL.md)
export ETOK_MODEL="$T/missing-env.gguf"
expect_rc 3 "$ETOK" serve --port 0
grep -q "missing-env.gguf' (from \$ETOK_MODEL)" "$T/err"
unset ETOK_MODEL
expect_rc 2 "$ETOK" serve -m x.gguf --port 70000
expect_rc 2 "$ETOK" serve -m x.gguf --bogus
expect_rc 3 "$ETOK" serve -m "$T/missing.gguf" --no-energy --port 0
grep -q "missing.gguf" "$T/err"
expect_rc 2 "$ETOK" exporter --port -1
expect_rc 2 "$ETOK" exporter --meter rapl --cpu-tdp 5:1
expect_rc 0 "$ETOK" serve --help
grep -q "energy_j" "$T/out"
expect_rc 0 "$ETOK" exporter --help
grep -q "etok_energy_joules_total" "$T/out"

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -r "$MODEL" ]; then
  echo "serve_cli: server part SKIPPED (no $MODEL; make model fetches it)"
  exit 0
fi
if [ "${ETOK_SANITIZED:-0}" = 1 ]; then
  # the real model under ASan+UBSan takes minutes per request; the sanitized suite covers the
  # server in-process on a tiny GGUF (tests/unit/test_serve.c)
  echo "serve_cli: server part SKIPPED under sanitizers (covered by test_serve)"
  exit 0
fi

expect_rc 5 "$ETOK" serve -m "$MODEL" --port 0 --no-energy -o /nonexistent-dir/run.json
"$ETOK" serve -m "$MODEL" --port 0 --api-key sekrit --max-seqs 8 --threads 2 --meter estimate \
  --max-tokens-limit 32 -o "$T/serve_run.json" > /dev/null 2> "$T/serve.log" &
SPID=$!
i=0
while ! grep -q 'listening on' "$T/serve.log" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 "$SPID" 2>/dev/null; then echo "serve_cli: server did not start"; cat "$T/serve.log"; exit 1; fi
  sleep 0.1
done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log" | head -1)
URL="http://127.0.0.1:$PORT"

python3 - "$URL" <<'EOF'
import json, sys, urllib.request, urllib.error
url = sys.argv[1]
def call(path, body=None, key="sekrit"):
    req = urllib.request.Request(url + path, data=None if body is None else json.dumps(body).encode())
    req.add_header("Content-Type", "application/json")
    if key: req.add_header("Authorization", "Bearer " + key)
    try:
        with urllib.request.urlopen(req, timeout=120) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()
st, b = call("/v1/chat/completions", {"messages": [{"role": "user", "content": "Name the capital of France."}],
                                      "max_tokens": 8, "temperature": 0})
assert st == 200, (st, b)
j = json.loads(b)
u = j["usage"]
assert u["completion_tokens"] >= 1 and u["prompt_tokens"] > 0, u
assert u["energy_j"] > 0 and u["energy_source"] == "estimate", u
assert abs(u["joules_per_token"] - u["energy_j"] / u["total_tokens"]) < 1e-9, u
assert "Paris" in j["choices"][0]["message"]["content"], j
st, b = call("/v1/chat/completions", {"messages": [{"role": "user", "content": "hi"}]}, key="wrong")
assert st == 401 and json.loads(b)["error"]["code"] == "invalid_api_key", (st, b)
st, b = call("/v1/completions", {"prompt": "hi", "max_tokens": 33})
assert st == 400 and json.loads(b)["error"]["param"] == "max_tokens", (st, b)
st, b = call("/v1/models")
assert st == 200 and json.loads(b)["data"][0]["id"], b
st, b = call("/health", key=None)
assert st == 200 and json.loads(b)["status"] == "ok", b
print("serve_cli: chat answered (%d tokens, %.3f J estimate), 401/400 shaped, models and health ok"
      % (u["completion_tokens"], u["energy_j"]))
EOF

python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())' \
  "$URL/metrics" > "$T/metrics.txt"
if command -v promtool >/dev/null 2>&1; then promtool check metrics < "$T/metrics.txt"; fi
grep -q '^etok_requests_total{status="ok"} 1$' "$T/metrics.txt"
grep -q '^etok_energy_joules_total{meter="estimate",domain="cpu",boundary="device",source="estimate"}' "$T/metrics.txt"

# etok bench --endpoint (when the bench command has it) drives the server at concurrency 8
if "$ETOK" bench --help 2>/dev/null | grep -q -- '--endpoint'; then
  set +e
  OPENAI_API_KEY=sekrit "$ETOK" bench --endpoint "$URL" --concurrency 8 --requests 8 --max-tokens 4 --idle 0 \
    -o "$T/bench" > "$T/bench.out" 2>&1
  brc=$?
  set -e
  if [ "$brc" -eq 2 ]; then
    echo "serve_cli: etok bench --endpoint rejected these options (exit 2), bench part skipped:"; tail -2 "$T/bench.out"
  elif [ "$brc" -ne 0 ]; then
    echo "serve_cli: etok bench --endpoint failed ($brc)"; cat "$T/bench.out"; exit 1
  else
    python3 - "$T/bench/run.json" <<'EOF'
import json, sys
def find(o):
    if isinstance(o, dict):
        if isinstance(o.get("requests"), list): return o["requests"]
        for v in o.values():
            r = find(v)
            if r is not None: return r
    return None
reqs = find(json.load(open(sys.argv[1])))
assert reqs is not None and len(reqs) == 8, "expected 8 requests in run.json"
assert all(q["ok"] for q in reqs), [q.get("error") for q in reqs]
assert all(q.get("token_count_source") == "usage" for q in reqs), [q.get("token_count_source") for q in reqs]
assert all(q.get("energy_j", -1) >= 0 for q in reqs), "etok serve attributes energy to every request"
print("serve_cli: etok bench --endpoint answered 8/8 at concurrency 8, token counts from usage")
EOF
  fi
fi

kill -TERM "$SPID"
set +e
wait "$SPID"
rc=$?
set -e
SPID=""
if [ "$rc" -ne 0 ]; then echo "serve_cli: server exited $rc on SIGTERM"; cat "$T/serve.log"; exit 1; fi
grep -q "stopping" "$T/serve.log"
# the run record of the session: every request with its energy, and etok report reads it
python3 - "$T/serve_run.json" <<'EOF'
import json, sys
r = json.load(open(sys.argv[1]))
assert r["kind"] == "serve", r["kind"]
reqs = r["requests"]
assert len(reqs) >= 1 and all(q["ok"] for q in reqs), [q.get("error") for q in reqs]
assert all(q["energy_j"] >= 0 and q["token_count_source"] == "engine" for q in reqs)
assert len(r["steps"]) >= 1 and len(r["traces"]) >= 1
print("serve_cli: run record: %d requests, %d steps, %.3f J attributed (estimate)"
      % (len(reqs), len(r["steps"]), sum(q["energy_j"] for q in reqs)))
EOF
"$ETOK" report "$T/serve_run.json" > "$T/report.txt"
grep -q "etok serve report" "$T/report.txt"
# a second SIGINT ends the shutdown grace at once (a 600 s grace here): the stream in flight ends
# with the error event and [DONE] and the server exits 0 within seconds
"$ETOK" serve -m "$MODEL" --port 0 --no-energy --threads 2 --shutdown-grace-s 600 > /dev/null 2> "$T/serve2.log" &
SPID=$!
i=0
while ! grep -q 'listening on' "$T/serve2.log" 2>/dev/null; do
  i=$((i + 1))
  if [ $i -gt 300 ] || ! kill -0 "$SPID" 2>/dev/null; then echo "serve_cli: server 2 did not start"; cat "$T/serve2.log"; exit 1; fi
  sleep 0.1
done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve2.log" | head -1)
python3 - "http://127.0.0.1:$PORT" "$T/stream.txt" <<'EOF' &
import json, sys, urllib.request
body = {"prompt": "Once upon a time", "max_tokens": 2000, "temperature": 0, "stream": True}
req = urllib.request.Request(sys.argv[1] + "/v1/completions", data=json.dumps(body).encode(),
                             headers={"Content-Type": "application/json"})
with urllib.request.urlopen(req, timeout=300) as r, open(sys.argv[2], "w") as out:
    for line in r:
        out.write(line.decode()); out.flush()
EOF
CPID=$!
i=0
chunks() { if [ -f "$T/stream.txt" ]; then grep -c '^data: {' "$T/stream.txt" || true; else echo 0; fi; }
while [ "$(chunks)" -lt 3 ]; do
  i=$((i + 1))
  if [ $i -gt 600 ]; then echo "serve_cli: the stream never started"; cat "$T/serve2.log"; exit 1; fi
  sleep 0.1
done
kill -INT "$SPID"
sleep 1
if ! kill -0 "$SPID" 2>/dev/null; then echo "serve_cli: the server stopped before the second signal (the stream ended early)"; tail -3 "$T/stream.txt"; exit 1; fi
t0=$(date +%s)
kill -INT "$SPID"
set +e
wait "$SPID"
rc=$?
set -e
SPID=""
took=$(( $(date +%s) - t0 ))
wait "$CPID" || true
if [ "$rc" -ne 0 ] || [ "$took" -gt 30 ]; then echo "serve_cli: after a second SIGINT: exit $rc after ${took}s"; cat "$T/serve2.log"; exit 1; fi
grep -q "second signal" "$T/serve2.log"
grep -v '^[[:space:]]*$' "$T/stream.txt" | tail -1 | grep -q '^data: \[DONE\]'
grep -q '"error"' "$T/stream.txt"
echo "serve_cli: a second SIGINT cut the 600 s grace: exit 0 ${took} s later, the stream ended with an error event and [DONE]"
echo "serve_cli: ok"
