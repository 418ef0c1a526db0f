#!/bin/sh
# e2e: `etok bench` refuses bad input before running anything — one clear line naming the
# problem and the right exit code: missing model file, malformed eval line (file:line),
# impossible SLO values, unwritable output directory, conflicting options, a bad --endpoint URL;
# and a failed endpoint run says so (no listener, a server killed mid-run: exit 6, partial).
set -u
ETOK=${ETOK_BIN:-./build/etok}
ETOK_SOURCE_DIR=${ETOK_SOURCE_DIR:-.}
T=$(mktemp -d)
stub=""
trap '[ -n "$stub" ] && kill -KILL $stub 2>/dev/null; rm -rf "$T"' EXIT
fail=0

# expect CODE PATTERN -- ARGS...: run etok bench ARGS, check exit code and a stderr pattern.
expect() {
    code=$1; pat=$2; shift 3
    "$ETOK" bench --idle 0 -q "$@" >"$T/out" 2>"$T/err"
    rc=$?
    if [ "$rc" != "$code" ] || ! grep -q -- "$pat" "$T/err"; then
        echo "FAIL: etok bench $* -> rc=$rc (want $code), stderr:"; cat "$T/err"
        fail=1
    elif [ "$(wc -l < "$T/err")" -gt 2 ]; then
        echo "FAIL: etok bench $*: more than a short error:"; cat "$T/err"
        fail=1
    fi
}

printf '{"id":"a","prompt":"p","answer":"x","check":"contains"}\n' > "$T/good.jsonl"
printf '{"id":"a","prompt":"p","answer":"x","check":"contains"}\n{"id":"b","prompt":"p",\n' > "$T/bad.jsonl"
printf '{"id":"a","prompt":"p","answer":"x","check":"fuzzy"}\n' > "$T/badcheck.jsonl"
: > "$T/model.gguf"

expect 3 "model file '$T/nope.gguf' (given with -m) not found" -- -m "$T/nope.gguf" --evals "$T/good.jsonl" -o "$T/o1"
expect 3 "bad.jsonl:2: malformed JSON" -- -m "$T/model.gguf" --evals "$T/bad.jsonl" -o "$T/o2"
expect 3 'badcheck.jsonl:1: item "a": unknown check "fuzzy"' -- -m "$T/model.gguf" --evals "$T/badcheck.jsonl" -o "$T/o3"
expect 3 "none.jsonl: eval set: cannot read" -- -m "$T/model.gguf" --evals "$T/none.jsonl" -o "$T/o4"
expect 2 "ttft-slo '0'" -- -m "$T/model.gguf" --evals "$T/good.jsonl" --ttft-slo 0
expect 2 "tpot-slo '-1'" -- -m "$T/model.gguf" --evals "$T/good.jsonl" --tpot-slo -1
expect 2 "ttft-slo 'nan'" -- -m "$T/model.gguf" --evals "$T/good.jsonl" --ttft-slo nan
expect 2 "quality-target '1.5'" -- -m "$T/model.gguf" --evals "$T/good.jsonl" --quality-target 1.5
expect 2 "pue '0.5'" -- -m "$T/model.gguf" --evals "$T/good.jsonl" --pue 0.5
expect 2 "not both" -- --requests 3 --duration 2
expect 2 "not both" -- --concurrency 2 --rate 1
expect 2 "unknown or incomplete option" -- --frobnicate
expect 2 "energy-from 'ftp://x': expected the http:// URL" -- --energy-from ftp://x
# unwritable output directory (a path under a regular file can never be created, even as root)
touch "$T/file"
expect 5 "output directory '$T/file/out' is not writable" -- -m "$T/model.gguf" --evals "$T/good.jsonl" -o "$T/file/out"
# a truncated GGUF is a clear input error from the model loader, not a crash
expect 3 "" -- -m "$T/model.gguf" --evals "$T/good.jsonl" -o "$T/o5"

# --- issue 9 §8: a failed endpoint run says so -------------------------------------------
# a URL that is not one: exit 2 before anything runs, no output written
for u in notaurl 'http://' 'ftp://x'; do
    expect 2 "--endpoint '$u'" -- --endpoint "$u" --evals "$T/good.jsonl" -o "$T/badurl"
    [ ! -e "$T/badurl" ] || { echo "FAIL: --endpoint $u left $T/badurl behind"; fail=1; }
done

# a port with no listener: every request fails -> exit 6, the count in the table and the record
DEAD=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])' 2>/dev/null || echo 9)
"$ETOK" bench --idle 0 --warmup 0 --meter estimate --cpu-tdp 5:20 --endpoint "http://127.0.0.1:$DEAD" \
    --evals "$T/good.jsonl" --requests 40 --concurrency 4 -o "$T/dead" >"$T/out" 2>"$T/err"
rc=$?
if [ $rc != 6 ] || ! grep -q "endpoint became unreachable" "$T/err" || ! grep -q '| failed requests | [1-9]' "$T/out" ||
   ! grep -q '(0 ok, [1-9][0-9]* failed)' "$T/out" || ! grep -q '"stop_reason": "endpoint_unreachable"' "$T/dead/run.json" ||
   ! grep -q '"partial": true' "$T/dead/run.json"; then
    echo "FAIL: no listener: rc=$rc (want 6)"; cat "$T/err" "$T/out"; fail=1
fi

# the server is killed (SIGKILL) mid-run: exit 6, partial record naming the reason, failures shown
if command -v python3 >/dev/null 2>&1; then
    python3 "$ETOK_SOURCE_DIR/tests/e2e/sse_stub.py" "$T/port" 5 0.1 &
    stub=$!
    i=0; while [ ! -s "$T/port" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    "$ETOK" bench --idle 0 --warmup 0 --meter estimate --cpu-tdp 5:20 --endpoint "http://127.0.0.1:$(cat "$T/port")" \
        --evals "$T/good.jsonl" --requests 40 --concurrency 4 -o "$T/killed" >"$T/out" 2>"$T/err" &
    bench=$!
    # kill once the run is surely under way (8 requests received), long before its 40 are done
    i=0; while [ "$(wc -l < "$T/port.log" 2>/dev/null || echo 0)" -lt 8 ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    kill -KILL $stub
    wait $bench
    rc=$?
    n_ok=$(grep -c '"ok": true' "$T/killed/run.json" 2>/dev/null || echo 0)
    if [ $rc != 6 ] || ! grep -q "endpoint became unreachable: [1-9][0-9]* of [1-9][0-9]* requests failed" "$T/err" ||
       ! grep -q '"partial": true' "$T/killed/run.json" ||
       ! grep -q '"stop_reason": "endpoint_unreachable"' "$T/killed/run.json" ||
       ! grep -q '| failed requests | [1-9]' "$T/out" || ! grep -q "PARTIAL RUN (the endpoint became unreachable)" "$T/out" ||
       [ "$n_ok" -lt 4 ] || ! grep -q "| TTFT p50 | .* | over $n_ok ok of [0-9]* requests |" "$T/out"; then
        echo "FAIL: server killed mid-run: rc=$rc (want 6), $n_ok ok"; cat "$T/err" "$T/out"; fail=1
    fi
else
    echo "bench_errors: python3 missing: the killed-server case is skipped"
fi

"$ETOK" bench --help | grep -q -- "--ttft-slo" || { echo "FAIL: --help"; fail=1; }
[ $fail = 0 ] && echo "bench_errors: ok"
exit $fail
