#!/bin/sh
# e2e: the engine levers of issue 16 on generate, bench and serve: --weights, --kv-type,
# --attn-window, --attn-sinks. Bad values and combinations give one line naming the flag and
# exit 2 before anything runs; with the default model present, one short greedy run per
# lever answers "Paris" (f32 from Q4_1 is the same model exactly; f16, q8_0 KV and a window
# covering the prompt keep the answer) and a one-request bench records the levers in run.json.
set -u
ETOK=${ETOK_BIN:-./build/etok}
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

for cmd in "generate -p x" "bench -o $T/nowhere"; do
    # shellcheck disable=SC2086
    set -- $cmd
    expect 2 "unknown format 'q4_K'" "$@" --weights q4_K
    expect 2 "unknown format 'F32'" "$@" --weights F32
    expect 2 "kv-type: unknown type 'int4'" "$@" --kv-type int4
    expect 2 "attn-window '0'" "$@" --attn-window 0
    expect 2 "attn-window 'lots'" "$@" --attn-window lots
    expect 2 "attn-sinks '-1'" "$@" --attn-window 8 --attn-sinks -1
    expect 2 "attn-sinks needs --attn-window" "$@" --attn-sinks 4
done
if [ -e "$T/nowhere" ]; then echo "FAIL: a usage error created bench's output directory"; fail=1; fi
expect 2 "not to --endpoint" bench --endpoint http://127.0.0.1:9/v1 --kv-type q8_0
expect 2 "unknown format 'iq4_xs'" serve -m x.gguf --weights iq4_xs
expect 2 "attn-sinks needs --attn-window" serve -m x.gguf --attn-sinks 2
expect 0 "--weights FORMAT" generate --help
expect 0 "--attn-sinks S" serve --help

MODEL=${ETOK_SOURCE_DIR:-.}/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$MODEL" ]; then
    for lever in "--weights f32" "--weights f16" "--kv-type q8_0" "--kv-type f32" "--attn-window 64 --attn-sinks 4"; do
        # shellcheck disable=SC2086
        "$ETOK" generate -m "$MODEL" -p "The capital of France is" -n 3 --threads 2 $lever >"$T/out" 2>"$T/err"
        rc=$?
        if [ $rc != 0 ] || ! grep -q "Paris" "$T/out"; then
            echo "FAIL: generate $lever (rc=$rc):"; cat "$T/out" "$T/err"; fail=1
        fi
    done
    printf '{"id":"fr","prompt":"What is the capital of France? Answer briefly.","answer":"Paris","check":"contains"}\n' >"$T/e.jsonl"
    "$ETOK" bench -m "$MODEL" --evals "$T/e.jsonl" --requests 1 --warmup 0 --idle 0 --concurrency 1 --max-tokens 4 \
        --threads 2 --meter estimate --weights f16 --kv-type q8_0 --attn-window 32 --attn-sinks 4 -q -o "$T/b" >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc != 0 ] || ! python3 - "$T/b/run.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
c = r.get("config") or r.get("record", {}).get("config")
def find(o):
    if isinstance(o, dict):
        if "kv_type" in o: return o
        for v in o.values():
            f = find(v)
            if f: return f
    if isinstance(o, list):
        for v in o:
            f = find(v)
            if f: return f
c = find(r)
assert c and c["weights"] == "f16" and c["kv_type"] == "q8_0" and c["attn_window"] == 32 and c["attn_sinks"] == 4, c
assert "F16 x 211" in c["weight_types"], c["weight_types"]
PY
    then
        echo "FAIL: bench with levers (rc=$rc):"; cat "$T/err"; fail=1
    fi
else
    echo "note: $MODEL absent, lever runs not done"
fi
exit $fail
