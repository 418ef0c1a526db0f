#!/bin/sh
# e2e: the TPF held against measurement (issue 16). Usage errors of `etok tpf --calibrate`;
# with the default model present: three short bench runs (concurrency 1, 2, and threads 1),
# `etok compare` shows the TPF prediction line for the batch lever (predicted vs measured with
# the ratio) and "no prediction: threads ..." for the lever the TPF has no term for;
# `etok tpf --calibrate` prints the leave-one-out table and writes a profile that a scenario
# ("hardware": "FILE.json") and `etok compare --calibration FILE` load; a two-point sweep puts
# the prediction of its second point (batch=2) in sweep.json and sweep.html.
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
        echo "FAIL: etok $* -> rc=$rc (want $code, pattern '$pat'):"; cat "$T/out" "$T/err"
        fail=1
    fi
}

expect 2 "at least two bench runs" tpf --calibrate "$T/x"
expect 2 "go with --calibrate" tpf h100x8-llama31-8b-kv-int8 -o "$T/p.json"
expect 2 "takes RUN... and -o" tpf --calibrate --lever int8 a b
expect 3 "cannot read" tpf --calibrate "$T/none1" "$T/none2"
expect 3 "cannot read the hardware profile" compare --calibration "$T/nope.json" a b
expect 0 "--calibrate RUN" tpf --help
expect 0 "--calibration FILE" compare --help

MODEL=${ETOK_SOURCE_DIR:-.}/models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -f "$MODEL" ]; then
    printf '{"id":"fr","prompt":"What is the capital of France? Answer briefly.","answer":"Paris","check":"contains"}\n{"id":"it","prompt":"What is the capital of Italy? Answer briefly.","answer":"Rome","check":"contains"}\n' >"$T/e.jsonl"
    for arm in "a --concurrency 1 --threads 2" "b --concurrency 2 --threads 2" "c --concurrency 1 --threads 1"; do
        # shellcheck disable=SC2086
        set -- $arm
        d=$1; shift
        if ! "$ETOK" bench -m "$MODEL" --evals "$T/e.jsonl" --requests 2 --warmup 0 --idle 0 --max-tokens 6 \
            --meter estimate -q -o "$T/$d" "$@" >"$T/out" 2>"$T/err"; then
            echo "FAIL: bench $arm:"; cat "$T/err"; fail=1
        fi
    done
    expect 0 "TPF prediction (etok tpf lever batch=2; probe roofs (uncalibrated); a model estimate): token rate" \
        compare "$T/a" "$T/b" "$T/c" --iters 200
    grep -q "predicted vs .* measured (predicted/measured [0-9.]*); J/output-token" "$T/out" ||
        { echo "FAIL: compare: no predicted/measured ratio"; cat "$T/out"; fail=1; }
    grep -q "TPF prediction: no prediction: threads 2 -> 1" "$T/out" ||
        { echo "FAIL: compare: threads gave no 'no prediction' line"; cat "$T/out"; fail=1; }
    expect 0 '"tpf_prediction"' compare "$T/a" "$T/b" --iters 200 --format json
    python3 - "$T/out" <<'PY' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))["candidates"][0]["tpf_prediction"]
assert c["valid"] and c["lever"] == "batch=2", c
assert c["token_rate_ratio"] > 1 and 0 < c["joules_per_output_token_ratio"] < 1, c
assert abs(c["token_rate_predicted_over_measured"] * (1 + c["measured_token_rate_rel"]) - c["token_rate_ratio"]) < 1e-9, c
PY
    expect 0 "leave-one-out" tpf --calibrate "$T/a" "$T/b" "$T/c" -o "$T/prof.json"
    grep -q "estimate meter" "$T/out" || { echo "FAIL: calibrate does not say the power fit is the estimate meter's"; fail=1; }
    grep -q "^target (every run predictable and within 25%): NOT met" "$T/out" || { echo "FAIL: calibrate: no target line"; cat "$T/out"; fail=1; }
    # run c is the only 1-thread run: nothing else fits its kernel, so it is reported, not predicted
    grep -q "/c .*not predictable: no kernel fitted for q4_1 weights at threads=1" "$T/out" ||
        { echo "FAIL: calibrate: the 1-thread run is not reported as not predictable"; cat "$T/out"; fail=1; }
    grep -q "^  predictable: 2 of 3 runs" "$T/out" || { echo "FAIL: calibrate: predictable count"; cat "$T/out"; fail=1; }
    python3 - "$T/prof.json" "$T" <<'PY' || fail=1
import json, sys
k = json.load(open(sys.argv[1]))["calibration"]["kernels"]
t = sys.argv[2]
assert [(x["weight_dtype"], x["threads"]) for x in k] == [("q4_1", 2), ("q4_1", 1)], k
assert k[0]["fitted_from"] == [t + "/a", t + "/b"] and k[1]["fitted_from"] == [t + "/c"], k
assert all(0 < x["flops_fraction"] <= 1 for x in k), k
PY
    printf '{"hardware": "%s", "model": {"name": "smollm2-135m", "weight_dtype": "q4_1", "kv_dtype": "fp16"}, "workload": {"input_tokens": 40, "output_tokens": 6, "batch": 2}}\n' \
        "$T/prof.json" >"$T/sc.json"
    expect 0 "fit to this machine.s bench runs: etok tpf --calibrate" tpf "$T/sc.json"
    expect 0 "TPF prediction (etok tpf lever batch=2; calibrated-" compare "$T/a" "$T/b" --iters 200 --calibration "$T/prof.json"
    expect 0 '"batch_in_fit"' tpf --calibrate "$T/a" "$T/b" --json
    # one setting only (the same run twice): by run each predicts the other exactly; by setting
    # nothing is left to fit from, and it says so
    expect 0 "not predictable: no other run to fit from" tpf --calibrate "$T/a" "$T/a"
    grep -q "^  decode token rate: median 0%, max 0%, within 25%: 2 of 2" "$T/out" ||
        { echo "FAIL: calibrate of one run twice:"; cat "$T/out"; fail=1; }
    expect 3 "no-such-model" tpf --calibrate "$T/a" "$T/b" --model no-such-model
    # sweep: the second point carries the prediction against the first (sweep.json and the page)
    if ! "$ETOK" sweep --grid concurrency=1,2 -m "$MODEL" --evals "$T/e.jsonl" --requests 2 --warmup 0 --max-tokens 4 \
        --idle 0 --idle-probe 0 --meter estimate -q -o "$T/sw" >"$T/out" 2>"$T/err"; then
        echo "FAIL: sweep:"; cat "$T/err"; fail=1
    fi
    python3 - "$T/sw/sweep.json" <<'PY' || fail=1
import json, sys
pts = json.load(open(sys.argv[1]))["points"]
assert "tpf_prediction" not in pts[0], pts[0]
p = pts[1]["tpf_prediction"]
assert p["valid"] and p["lever"] == "batch=2" and p["token_rate_ratio"] > 1, p
assert "predicted/measured" in p["line"], p
PY
    grep -q "TPF prediction beside measurement" "$T/sw/sweep.html" || { echo "FAIL: sweep.html has no prediction section"; fail=1; }
else
    echo "note: $MODEL absent, runs not done"
fi
exit $fail
