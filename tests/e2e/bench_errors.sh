#!/bin/sh
# e2e: `etok bench` refuses bad input before running anything — one clear line naming the
# problem and the right exit code: missing model file, malformed eval line (file:line),
# impossible SLO values, unwritable output directory, conflicting options.
set -u
ETOK=${ETOK_BIN:-./build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
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

expect 3 "model file '$T/nope.gguf' not found" -- -m "$T/nope.gguf" --evals "$T/good.jsonl" -o "$T/o1"
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

"$ETOK" bench --help | grep -q -- "--ttft-slo" || { echo "FAIL: --help"; fail=1; }
[ $fail = 0 ] && echo "bench_errors: ok"
exit $fail
