#!/bin/sh
# e2e: `etok compare` predicts the --gpu-power-limit lever (lever_predict.h "GPU power limit",
# docs/LEVERS.md) on two real bench --endpoint records of an NVIDIA H200 (trimmed copies of the
# sweep of bench/gpu/README.md: tests/fixtures/records/h200_gpu_power_limit_{700,200}W.json).
# The 200 W candidate's predicted token-rate change is 200 / P0 - 1, P0 the baseline's mean nvml
# power in its window, computed here independently from the counter samples; J/output-token is
# predicted unchanged. Every format carries it; a cap above the draw predicts no change; a
# baseline without nvml, a candidate differing in another setting, or one raising the cap get
# 'no prediction: why'; a pooled baseline arm gives the pooled P0.
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
B="$SRC/tests/fixtures/records/h200_gpu_power_limit_700W.json"
C="$SRC/tests/fixtures/records/h200_gpu_power_limit_200W.json"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0

# P0 from the counter (linear between readings, over [window_start, window_end]) and the expected
# figures; variants of the records.
python3 - "$B" "$C" "$T" <<'PY' || { echo "FAIL: python"; exit 1; }
import json, sys, os
b, c, out = sys.argv[1], sys.argv[2], sys.argv[3]
base = json.load(open(b))
def at(s, t):
    for (t0, v0), (t1, v1) in zip(s, s[1:]):
        if t0 <= t <= t1:
            return v0 + (v1 - v0) * (t - t0) / (t1 - t0) if t1 > t0 else v1
    raise SystemExit("window outside the trace")
def p0(r):
    tr = [t for t in r["traces"] if t["meter"] == "nvml" and t["summable"]]
    assert len(tr) == 1
    s = tr[0]["samples"]
    w0, w1 = r["window_start_s"], r["window_end_s"]
    return (at(s, w1) - at(s, w0)) * tr[0]["scale_to_si"] / (w1 - w0)
P = p0(base)
open(os.path.join(out, "expect"), "w").write("%.4f %.4f\n" % (P, 200 / P))
def save(d, name):
    p = os.path.join(out, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    json.dump(d, open(p, "w"))
def copy(d):
    return json.loads(json.dumps(d))
x = copy(base); x["config"]["gpu_power_limit_w"] = 450.0; save(x, "c450.json")
x = copy(base)
for t in x["traces"]:
    if t["meter"] == "nvml": t["meter"] = "hwmon"
x["config"]["meters"] = ["hwmon"]; save(x, "nonvml.json")
x = json.load(open(c)); x["config"]["concurrency"] = 2; save(x, "conc2.json")
# a second baseline run drawing 20% more: the pooled P0 is their mean (the same window)
x = copy(base)
for t in x["traces"]:
    if t["meter"] == "nvml": t["samples"] = [[s[0], s[1] * 1.2] for s in t["samples"]]
save(x, "pool/r2/run.json")
save(base, "pool/r1/run.json")
open(os.path.join(out, "expect_pool"), "w").write("%.4f\n" % (200 / (P * 1.1)))
PY
read P RATIO < "$T/expect"
read RPOOL < "$T/expect_pool"
pct() { python3 -c "import sys; print('%+.1f%%' % (100 * (float(sys.argv[1]) - 1)))" "$1"; }
PR=$(pct "$RATIO")
P0=$(python3 -c "import sys; print('%.1f' % float(sys.argv[1]))" "$P")

"$ETOK" compare "$B" "$C" > "$T/out" 2> "$T/err" || { echo "FAIL: compare exit $?"; cat "$T/err"; fail=1; }
grep -q "TPF prediction (etok tpf lever hardware.power_limit_w=200; measured baseline draw P0 = $P0 W (nvml, 1 GPU, 1 run); a model estimate): token rate $PR predicted vs " "$T/out" ||
    { echo "FAIL: text: no prediction $PR from P0 = $P0 W"; cat "$T/out"; fail=1; }
grep -q "J/output-token +0.0% predicted vs .*cap 200 W < P0: power-bound; the TPF's power branch Qdot = P / e_tok with e_tok held (no DVFS or efficiency curve for a GPU)" "$T/out" ||
    { echo "FAIL: text: J/output-token not predicted unchanged with the reason"; cat "$T/out"; fail=1; }

"$ETOK" compare "$B" "$C" --format json > "$T/out.json" || { echo "FAIL: json exit"; fail=1; }
python3 - "$T/out.json" "$RATIO" <<'PY' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
p = d["candidates"][0]["tpf_prediction"]
want = float(sys.argv[2])
ok = p["valid"] and abs(p["token_rate_ratio"] / want - 1) < 1e-3 and p["joules_per_output_token_ratio"] == 1.0 \
    and p["lever"] == "hardware.power_limit_w=200" and p["measured_token_rate_rel"] < -0.4
if not ok:
    print("FAIL: json tpf_prediction", p, "want token_rate_ratio", want)
    sys.exit(1)
PY
for f in md html; do
    "$ETOK" compare "$B" "$C" --format $f > "$T/out.$f" || { echo "FAIL: $f exit"; fail=1; }
    grep -q "token rate $PR predicted" "$T/out.$f" || { echo "FAIL: $f has no prediction line"; fail=1; }
done

# the same run as candidate at a 450 W cap (above the draw): no change predicted, none measured
"$ETOK" compare "$B" "$T/c450.json" > "$T/out" 2>&1
grep -q "lever hardware.power_limit_w=450;.*token rate +0.0% predicted vs +0.0% .*cap 450 W >= P0: does not bind" "$T/out" ||
    { echo "FAIL: a cap above the draw"; cat "$T/out"; fail=1; }

# no nvml in the baseline (another meter: a mismatch, compared anyway)
"$ETOK" compare "$T/nonvml.json" "$C" --allow-mismatch > "$T/out" 2>/dev/null
grep -q "TPF prediction: no prediction: the baseline's GPU draw is unknown: run 1 has no NVIDIA GPU power measurement" "$T/out" ||
    { echo "FAIL: no nvml in the baseline"; cat "$T/out"; fail=1; }

# another setting differs too
"$ETOK" compare "$B" "$T/conc2.json" > "$T/out" 2>/dev/null
grep -q "TPF prediction: no prediction: more than the power limit differs (config.concurrency)" "$T/out" ||
    { echo "FAIL: concurrency differs too"; cat "$T/out"; fail=1; }

# the candidate raises the baseline's cap
"$ETOK" compare "$C" "$B" > "$T/out" 2>/dev/null
grep -q "TPF prediction: no prediction: the candidate raises the baseline's limit 200 -> 700 W" "$T/out" ||
    { echo "FAIL: raising the cap"; cat "$T/out"; fail=1; }

# a pooled baseline arm: P0 pools both runs
PP=$(pct "$RPOOL")
"$ETOK" compare --arm "b=$T/pool/r*" --arm "c=$C" > "$T/out" 2>/dev/null
grep -q "(nvml, 1 GPU, 2 runs); a model estimate): token rate $PP predicted" "$T/out" ||
    { echo "FAIL: pooled baseline: want $PP"; cat "$T/out"; fail=1; }

[ $fail -eq 0 ] && echo "compare_gpu_power: ok (P0 $P0 W, predicted $PR)"
exit $fail
