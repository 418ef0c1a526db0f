#!/bin/sh
# e2e: the engine's kernel level override ETOK_ISA (docs/ENGINE.md "Kernel levels"): an unknown
# value, or a level this CPU lacks, stops any command with exit 3 and a line naming the
# variable and the detected level (no silent fallback); with the default model present, a
# forced scalar level still generates the reference continuation, and avx2 gives the same
# text as the default level (avx2 and avx512 kernels return the same bits); avx512 and amx are
# refused the same way where absent; unset, the level is the detected one capped at avx512 (amx
# is opt-in: never active unless asked for); a bench record, and a
# serve record and its /metrics etok_info, name the level that ran (kernel_level) and the
# detected one.
set -u
ETOK=${ETOK_BIN:-./build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

check() { # CODE PATTERN VALUE -- ARGS
    code=$1; pat=$2; val=$3; shift 4
    ETOK_ISA=$val "$ETOK" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" != "$code" ] || ! grep -q -- "$pat" "$T/err"; then
        echo "FAIL: ETOK_ISA='$val' etok $* -> rc=$rc (want $code, pattern '$pat'):"; cat "$T/err"
        fail=1
    fi
}

check 3 "etok meters: ETOK_ISA='bogus': unknown kernel level (scalar, avx2, avx512 or amx; detected here: " bogus -- meters
check 3 "ETOK_ISA='AVX2': unknown kernel level" AVX2 -- meters
check 3 "ETOK_ISA='': unknown kernel level" "" -- meters
check 3 "ETOK_ISA='avx512 ': unknown" "avx512 " -- generate -p hi
ETOK_ISA=avx512 "$ETOK" meters >"$T/out" 2>"$T/err"
rc=$?
if [ $rc = 3 ]; then
    grep -q "etok meters: ETOK_ISA=avx512: this CPU does not support it (detected kernel level: " "$T/err" ||
        { echo "FAIL: ETOK_ISA=avx512 refused without the documented message:"; cat "$T/err"; fail=1; }
elif [ $rc != 0 ]; then
    echo "FAIL: ETOK_ISA=avx512 etok meters -> rc=$rc"; cat "$T/err"; fail=1
fi
ETOK_ISA=amx "$ETOK" meters >"$T/out" 2>"$T/err"
rc=$?
if [ $rc = 3 ]; then
    grep -q "etok meters: ETOK_ISA=amx: this CPU does not support it (detected kernel level: " "$T/err" ||
        { echo "FAIL: ETOK_ISA=amx refused without the documented message:"; cat "$T/err"; fail=1; }
elif [ $rc != 0 ]; then
    echo "FAIL: ETOK_ISA=amx etok meters -> rc=$rc"; cat "$T/err"; fail=1
fi
# unset, the active level is the detected one capped at avx512 (amx is opt-in; etok probe:
# "engine kernel level ACTIVE (detected on this CPU: DETECTED; ETOK_ISA unset)")
env -u ETOK_ISA "$ETOK" probe >"$T/out" 2>"$T/err"
levels=$(sed -n 's/.*engine kernel level *\([a-z0-9]*\) *(detected on this CPU: \([a-z0-9]*\); ETOK_ISA unset).*/\1 \2/p' "$T/out")
case "$levels" in
"scalar scalar" | "avx2 avx2" | "avx512 avx512" | "avx512 amx") ;;
*) echo "FAIL: unset ETOK_ISA: active / detected level '$levels', want the detected one capped at avx512:"
   grep "kernel level" "$T/out"; fail=1 ;;
esac
ETOK_ISA=scalar "$ETOK" meters >"$T/out" 2>"$T/err" || { echo "FAIL: ETOK_ISA=scalar refused"; cat "$T/err"; fail=1; }

MODEL=${ETOK_SOURCE_DIR:-.}/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$MODEL" ]; then
    gen() { # VALUE ("" = unset) -> $T/gen.VALUE
        if [ -n "$1" ]; then
            ETOK_ISA=$1 "$ETOK" generate -m "$MODEL" -p "The capital of France is" -n 8 --threads 2 >"$T/gen.$1" 2>"$T/err"
        else
            env -u ETOK_ISA "$ETOK" generate -m "$MODEL" -p "The capital of France is" -n 8 --threads 2 >"$T/gen." 2>"$T/err"
        fi || { echo "FAIL: generate with ETOK_ISA='$1'"; cat "$T/err"; fail=1; }
    }
    gen scalar
    grep -q "Paris" "$T/gen.scalar" || { echo "FAIL: scalar kernels did not continue with Paris:"; cat "$T/gen.scalar"; fail=1; }
    gen ""
    if ETOK_ISA=avx2 "$ETOK" meters >/dev/null 2>&1; then
        gen avx2
        cmp -s "$T/gen." "$T/gen.avx2" || { echo "FAIL: avx2 text differs from the detected level's:"; cat "$T/gen." "$T/gen.avx2"; fail=1; }
    fi
    # a bench record names the kernel level that ran and the detected one
    printf '{"id":"fr","prompt":"What is the capital of France?","answer":"Paris","check":"contains"}\n' >"$T/e.jsonl"
    ETOK_ISA=scalar "$ETOK" bench -m "$MODEL" --evals "$T/e.jsonl" --requests 1 --warmup 0 --idle 0 --concurrency 1 \
        --max-tokens 2 --threads 2 --meter estimate -q -o "$T/b" >"$T/out" 2>"$T/err"
    rc=$?
    if [ $rc != 0 ] || ! python3 - "$T/b/run.json" >"$T/detected" <<'PY'
import json, sys
def find(o):
    if isinstance(o, dict):
        if "kernel_level" in o: return o
        for v in o.values():
            f = find(v)
            if f: return f
    if isinstance(o, list):
        for v in o:
            f = find(v)
            if f: return f
c = find(json.load(open(sys.argv[1])))
assert c and c["kernel_level"] == "scalar", c
assert c["kernel_level_detected"] in ("scalar", "avx2", "avx512", "amx"), c
print(c["kernel_level_detected"])
PY
    then
        echo "FAIL: bench record's kernel level (rc=$rc):"; cat "$T/err"; fail=1
    else # the recorded detected level is one this CPU accepts
        ETOK_ISA=$(cat "$T/detected") "$ETOK" meters >/dev/null 2>"$T/err" ||
            { echo "FAIL: recorded detected level $(cat "$T/detected") refused:"; cat "$T/err"; fail=1; }
    fi
    # etok serve names them too: the -o record's config and /metrics' etok_info (as bench does)
    ETOK_ISA=scalar "$ETOK" serve -m "$MODEL" --port 0 --no-energy --threads 2 -o "$T/serve.json" \
        >/dev/null 2>"$T/serve.log" &
    spid=$!
    i=0
    while ! grep -q 'listening on' "$T/serve.log" 2>/dev/null && kill -0 "$spid" 2>/dev/null && [ $i -lt 600 ]; do
        i=$((i + 1)); sleep 0.1
    done
    port=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log" | head -1)
    python3 - "$port" >"$T/metrics" 2>&1 <<'PY' || { echo "FAIL: serve /metrics:"; cat "$T/metrics" "$T/serve.log"; fail=1; }
import sys, urllib.request
print(urllib.request.urlopen("http://127.0.0.1:%s/metrics" % sys.argv[1], timeout=60).read().decode())
PY
    kill -TERM "$spid" 2>/dev/null
    wait "$spid" || { echo "FAIL: serve exited $?:"; cat "$T/serve.log"; fail=1; }
    grep -q '^etok_info{.*,kernel_level="scalar",kernel_level_detected="'"$(cat "$T/detected")"'"} 1$' "$T/metrics" ||
        { echo "FAIL: serve /metrics etok_info has no kernel level scalar / $(cat "$T/detected"):"; grep etok_info "$T/metrics"; fail=1; }
    python3 - "$T/serve.json" "$(cat "$T/detected")" <<'PY' || { echo "FAIL: serve record's kernel level"; fail=1; }
import json, sys
c = json.load(open(sys.argv[1])).get("config") or {}
assert c.get("kernel_level") == "scalar" and c.get("kernel_level_detected") == sys.argv[2], c
PY
else
    echo "note: $MODEL absent (make model): the generation checks were skipped"
fi
exit $fail
