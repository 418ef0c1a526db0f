#!/bin/sh
# e2e: `etok run --meter rapl` on a sysfs fixture tree (ETOK_SYSFS_ROOT): two packages, dram,
# a nested core zone, and package-0 wrapping during the run. The command itself advances the
# counters, so the expected joules are known exactly: the record's analysis (etok report) must
# sum package-0 across the wrap + package-1 + dram, never the nested core, and call it a
# device-boundary counter figure.
set -eu
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
R="$T/sys"
P="$R/class/powercap"
zone() { # id name energy_uj range_uj
    mkdir -p "$P/$1"
    printf '%s\n' "$2" >"$P/$1/name"
    printf '%s\n' "$3" >"$P/$1/energy_uj"
    printf '%s\n' "$4" >"$P/$1/max_energy_range_uj"
}
BIG=262143328850
zone intel-rapl:0 package-0 99900000 100000000 # wraps at 100 J
zone intel-rapl:0:0 dram 7000000 $BIG
zone intel-rapl:1 package-1 5000 $BIG
zone intel-rapl:1:0 core 1000 $BIG

# the workload: advance the counters (atomically, like the kernel) with pauses between
cat >"$T/work.sh" <<'SH'
w() { printf '%s\n' "$2" >"$P/$1/energy_uj.new" && mv "$P/$1/energy_uj.new" "$P/$1/energy_uj"; }
sleep 0.1; w intel-rapl:0 99950000
sleep 0.1; w intel-rapl:0 50000; w intel-rapl:1 105000; w intel-rapl:1:0 901000; w intel-rapl:0:0 8500000
sleep 0.1; w intel-rapl:0 120000
sleep 0.1; echo "generated 4 tokens"
SH
P="$P" ETOK_SYSFS_ROOT="$R" "$ETOK" run --meter rapl --rate 100 --idle 0 -o "$T/run.json" \
    --tokens-regex 'generated ([0-9]+) tokens' -- env P="$P" sh "$T/work.sh" >"$T/out" 2>"$T/err" \
    || fail "etok run: $(cat "$T/err")"
grep -q 'device boundary, counter' "$T/err" || fail "summary: $(cat "$T/err")"

"$ETOK" report "$T/run.json" --format json >"$T/rep.json" || fail "report"
python3 - "$T/rep.json" <<'PY' || fail "figures: $(cat "$T/rep.json")"
import json, sys
r = json.load(open(sys.argv[1]))
tr = {t["domain"]: t for t in r["traces"]}
def near(a, b): return abs(a - b) < 1e-6
# package-0: 99.90 -> 99.95 -> (wrap at 100 J) 0.05 -> 0.12 = 0.22 J; package-1 0.10 J; dram 1.5 J
pk0 = [t for d, t in tr.items() if d.startswith("package-0")][0]
assert near(pk0["energy_j"], 0.22), pk0
assert pk0["n_wraps"] == 1, pk0
assert r["boundary"] == "device" and r["source"] == "counter", r
assert near(r["energy_j"], 0.22 + 0.10 + 1.5), r["energy_j"]
assert r["tokens_out"] == 4 and near(r["joules_per_output_token"], 1.82 / 4), r
core = [t for d, t in tr.items() if "core" in d]
assert core and not core[0]["summable"], ("the nested core zone must not be summed", list(tr))
assert r["energy_uncertainty_j"] > 0
PY
echo ok
