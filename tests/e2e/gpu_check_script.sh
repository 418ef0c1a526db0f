#!/bin/sh
# e2e: bench/gpu/check.sh (the prepared hardware check for a lent GPU machine) still runs its
# CPU part here with every kernel test passing and no GPU (the GPU part needs nvidia-smi), and
# bench/gpu/crosscheck.py integrates a power log over a record's window correctly (trapezoids
# between 100 ms samples: 100 W until 1010.9 s, 300 W from 1011.0 s, window 1010-1012 s:
# 0.9 s x 100 W + 0.1 s x 200 W + 1 s x 300 W = 410 J).
set -u
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
BUILD=${ETOK_BUILD_DIR:-build}
if BIN=$BUILD MODEL=/nonexistent SKIP_GPU=1 WORK="$T/work" bash bench/gpu/check.sh "$T/out" >"$T/log" 2>&1; then
    grep -q "isa_kernels: all checks passed" "$T/log" || { echo "FAIL: isa_kernels did not pass:"; cat "$T/log"; fail=1; }
    grep -q "done: 0 check(s) failed" "$T/log" || { echo "FAIL: no summary line:"; tail -5 "$T/log"; fail=1; }
    [ -s "$T/out/results.tar.gz" ] || { echo "FAIL: no results.tar.gz"; fail=1; }
else
    echo "FAIL: check.sh (CPU part) failed:"; tail -30 "$T/log"; fail=1
fi

# crosscheck.py on a synthetic record, summary and log
cat >"$T/run.json" <<'J'
{"t0_wall_s": 1000.0, "window_start_s": 10.0, "window_end_s": 12.0}
J
cat >"$T/sum.json" <<'J'
{"traces": [{"meter": "nvml", "domain": "gpu0", "energy_j": 400.0, "energy_uncertainty_j": 4.0, "source": "counter",
  "power_field": null, "mean_power_w": 200.0, "n_samples": 20, "n_changes": 20}]}
J
python3 - "$T/smi.csv" <<'P'
import datetime, sys
with open(sys.argv[1], "w") as f:
    f.write("timestamp, power.draw [W], power.draw.instant [W]\n")
    for i in range(0, 41):  # 1009.0 .. 1013.0 s every 0.1 s, whole milliseconds
        ms = 1009000 + 100 * i
        ts = datetime.datetime.fromtimestamp(ms // 1000).strftime("%Y/%m/%d %H:%M:%S") + ".%03d" % (ms % 1000)
        w = 100.0 if ms < 1011000 else 300.0
        f.write(f"{ts}, {w:.2f}, {w:.2f}\n")
P
python3 bench/gpu/crosscheck.py "$T/run.json" "$T/sum.json" "$T/smi.csv" >"$T/cc" 2>&1 ||
    { echo "FAIL: crosscheck.py failed:"; cat "$T/cc"; fail=1; }
grep -q "power.draw.instant \[W\]: 410.0 J over the window (19 samples inside)" "$T/cc" || { echo "FAIL: crosscheck integral:"; cat "$T/cc"; fail=1; }
grep -q "etok nvml/gpu0: 400.0" "$T/cc" || { echo "FAIL: crosscheck did not print etok's energy:"; cat "$T/cc"; fail=1; }
exit $fail
