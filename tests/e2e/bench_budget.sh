#!/bin/sh
# e2e: `etok bench --budget` and eval items' stop strings (issue 16). Errors first (exit 2 for a
# bad policy, before anything is written; exit 3 for bad item fields, naming file:line); sweep
# passes --budget through to bench; then, with the default model present, short greedy runs:
# --budget adaptive gives each request its item's budget (recorded in config.budget), a stop
# string ends generation early and is cut from the output, by-field:budget caps tokens_out,
# and one request of the long-prompt set (data/evals/long.jsonl) has 1000+ prompt tokens.
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

expect() { # CODE PATTERN CMD ARGS...
    code=$1; pat=$2; shift 2
    "$ETOK" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" != "$code" ] || ! grep -q -- "$pat" "$T/err" "$T/out"; then
        echo "FAIL: etok $* -> rc=$rc (want $code, pattern '$pat'):"; cat "$T/err"
        fail=1
    fi
}

expect 2 "expected fixed:N, by-field:FIELD or adaptive" bench -o "$T/nowhere" --budget sometimes
expect 2 "N must be an integer 1..8192" bench -o "$T/nowhere" --budget fixed:0
expect 2 "FIELD must be a field name" bench -o "$T/nowhere" --budget by-field:
expect 2 "not to --endpoint" bench -o "$T/nowhere" --endpoint http://127.0.0.1:9/v1 --budget adaptive
if [ -e "$T/nowhere" ]; then echo "FAIL: a usage error created bench's output directory"; fail=1; fi
expect 0 "--budget POLICY" bench --help

printf '{"id":"a","prompt":"p","answer":"x","check":"contains","budget":2.5}\n' >"$T/badb.jsonl"
expect 3 "badb.jsonl:1: item \"a\": \"budget\" must be an integer" bench -o "$T/o1" --evals "$T/badb.jsonl" --budget by-field:budget
printf '{"id":"a","prompt":"p","answer":"x","check":"contains","n":0}\n' >"$T/badn.jsonl"
expect 3 "badn.jsonl:1: item \"a\": \"n\" is 0" bench -o "$T/o2" --evals "$T/badn.jsonl" --budget by-field:n
printf '{"id":"a","prompt":"p","answer":"x","check":"contains"}\n{"id":"b","prompt":"p","answer":"x","check":"contains","stop":["1","2","3","4","5"]}\n' >"$T/bads.jsonl"
expect 3 "bads.jsonl:2: item \"b\": \"stop\" must be a string or an array of up to 4" bench -o "$T/o3" --evals "$T/bads.jsonl"
printf '{"id":"a","prompt":"p","answer":"x","check":"contains","difficulty":"trivial"}\n' >"$T/badd.jsonl"
expect 3 "badd.jsonl:1: item \"a\": \"difficulty\" must be" bench -o "$T/o4" --evals "$T/badd.jsonl" --budget adaptive

# sweep passes --budget to every bench run
expect 0 "--budget adaptive" sweep --dry-run -o "$T/sw" --grid concurrency=1,2 --budget adaptive

MODEL=$SRC/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -f "$MODEL" ]; then
    echo "note: $MODEL absent, bench runs not done"
    exit $fail
fi
cat >"$T/e.jsonl" <<'J'
{"id":"fr","prompt":"What is the capital of France? Answer briefly.","answer":"Paris","check":"contains","difficulty":"easy","stop":"."}
{"id":"jp","prompt":"What is the capital of Japan? Answer briefly.","answer":"Tokyo","check":"contains","difficulty":"hard","budget":3}
{"id":"it","prompt":"What is the capital of Italy? Answer briefly.","answer":"Rome","check":"contains"}
J
bench() { # OUT ARGS...
    o=$1; shift
    "$ETOK" bench -m "$MODEL" --evals "$T/e.jsonl" --warmup 0 --idle 0 --concurrency 3 --threads 2 --meter estimate \
        -q -o "$T/$o" "$@" >"$T/out" 2>"$T/err" || { echo "FAIL: bench $* (rc=$?):"; cat "$T/err"; fail=1; }
}
check() { # OUT PYTHON (r = run.json, reqs = {item id: request}, b = config.budget)
    python3 - "$T/$1/run.json" "$2" <<'PY' || { echo "FAIL: check on $1"; fail=1; }
import json, sys
r = json.load(open(sys.argv[1]))
reqs = {q["id"].split("#")[0]: q for q in r["requests"]}
b = r["config"].get("budget")
exec(sys.argv[2])
PY
}
bench ad --max-tokens 16 --budget adaptive
check ad '
assert b["policy"] == "adaptive" and b["fallback_max_tokens"] == 16 and b["fallback_items"] == 1, b
assert b["max_tokens_by_item"] == {"fr": 8, "jp": 32, "it": 16}, b
assert r["config"]["stop_items"] == 1
fr = reqs["fr"]
assert fr["ok"] and "Paris" in fr["output"] and "." not in fr["output"], fr["output"]
assert fr["tokens_out"] < 8, fr  # stopped at the period, before its budget
for k, q in reqs.items(): assert q["tokens_out"] <= b["max_tokens_by_item"][k], (k, q["tokens_out"])
'
bench bf --max-tokens 16 --budget by-field:budget
check bf '
assert b["policy"] == "by-field:budget" and b["fallback_items"] == 2, b
assert reqs["jp"]["tokens_out"] == 3, reqs["jp"]  # the greedy answer is longer than 3 tokens
assert reqs["it"]["tokens_out"] > 3, reqs["it"]
'
bench fx --max-tokens 16 --budget fixed:5
check fx '
assert r["config"]["max_tokens"] == 5 and b["policy"] == "fixed:5" and b["mean_max_tokens"] == 5, b
assert all(q["tokens_out"] <= 5 for q in reqs.values())
'
# the long-prompt set: one request, 1000+ prompt tokens, the planted fact retrieved by full attention
"$ETOK" bench -m "$MODEL" --evals "$SRC/data/evals/long.jsonl" --requests 1 --warmup 0 --idle 0 --concurrency 1 \
    --threads 2 --meter estimate --max-tokens 20 -q -o "$T/long" >"$T/out" 2>"$T/err" || { echo "FAIL: long bench"; cat "$T/err"; fail=1; }
check long '
q = r["requests"][0]
assert q["ok"] and q["tokens_in"] > 1000, q["tokens_in"]
assert q["quality_pass"], q["output"]
'
[ $fail = 0 ] && echo "bench_budget: ok"
exit $fail
