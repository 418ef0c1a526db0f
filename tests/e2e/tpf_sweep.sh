#!/bin/sh
# tpf_sweep.sh — `etok tpf --sweep`: CSV with the crossover where P_grid* = PUE N P_max / theta
# says, and an SVG figure that is well-formed and labelled.
set -u
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

cat > "$T/s.json" <<'J'
{"hardware": {"name": "h100-sxm", "count": 8}, "model": "llama-3.1-8b",
 "workload": {"input_tokens": 0, "output_tokens": 128, "batch": 1},
 "facility": {"power_w": "1 MW", "pue": 1.4, "theta": 0.8}}
J
"$ETOK" tpf "$T/s.json" --uncalibrated --sweep facility.power_w=1e3:1e6:40:log --csv "$T/s.csv" --svg "$T/s.svg" > "$T/out.txt" \
  || fail "sweep rc"
# P* = 1.4 * 8 * 700 / 0.8 = 9800 W
grep -q "crossover at facility.power_w = 9800: delivered_power -> memory_bandwidth" "$T/out.txt" || fail "crossover text: $(tail -2 "$T/out.txt")"
python3 - "$T/s.csv" <<'P' || fail "csv"
import csv, sys
rows = list(csv.DictReader(open(sys.argv[1])))
assert len(rows) == 41, len(rows)
cx = [r for r in rows if r["kind"] == "crossover"]
assert len(cx) == 1 and abs(float(cx[0]["facility.power_w"]) / 9800 - 1) < 1e-6, cx
for r in rows:
    if r["kind"] != "grid": continue
    x = float(r["facility.power_w"])
    want = "delivered_power" if x < 9800 else "memory_bandwidth"
    assert r["binding_constraint"] == want, (x, r["binding_constraint"])
    # the labelled binding constraint is the smallest ceiling, and the modelled rate is the
    # in-series rate bounded by it (Phi = U = 1)
    c = {k[9:]: float(v) for k, v in r.items() if k.startswith("ceilings.") and v not in ("", "inf")}
    assert r["binding_constraint"] == min(c, key=c.get), (x, c)
    m = min(float(r["in_series_tps"]), c[r["binding_constraint"]])
    assert abs(float(r["token_rate_tps"]) / m - 1) < 1e-9, (x, r["token_rate_tps"], m)
P
grep -q "<svg" "$T/s.svg" && grep -q "</svg>" "$T/s.svg" || fail "svg shape"
grep -q "Facility power P_grid (W)" "$T/s.svg" || fail "svg x label"
grep -q "Output token rate (token/s)" "$T/s.svg" || fail "svg y label"
grep -q "crossover 9.8 kW" "$T/s.svg" || fail "svg crossover marker"
if command -v xmllint >/dev/null 2>&1; then xmllint --noout "$T/s.svg" || fail "svg not well-formed"; fi
if command -v rsvg-convert >/dev/null 2>&1; then rsvg-convert "$T/s.svg" -o "$T/s.png" || fail "svg does not render"; fi

# JSON sweep, integer field, infeasible points named.
"$ETOK" tpf "$T/s.json" --uncalibrated --sweep workload.batch=1:8192:12:log --json > "$T/b.json" || fail "batch sweep rc"
python3 -c "
import json; d=json.load(open('$T/b.json'))
assert d['crossovers'][0]['from']=='memory_bandwidth' and d['crossovers'][0]['to']=='compute', d['crossovers']
bad=[p for p in d['points'] if not p['feasible']]
assert bad and 'workload.batch' in bad[-1]['error']" || fail "batch sweep content"
"$ETOK" tpf "$T/s.json" --sweep nonsense=1:2:3 2> "$T/e"; [ $? -eq 2 ] || fail "bad field rc"
grep -q "not a sweepable field" "$T/e" || fail "bad field msg"
"$ETOK" tpf "$T/s.json" --sweep facility.power_w=1:2:3 --csv /nonexistent-dir/x.csv > /dev/null 2> "$T/e"; [ $? -eq 5 ] || fail "unwritable csv rc"
echo ok
