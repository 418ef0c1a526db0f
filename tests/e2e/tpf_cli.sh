#!/bin/sh
# tpf_cli.sh — `etok tpf` end to end: text, JSON, levers, lists, errors with exit codes.
set -u
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$ETOK" tpf --help | grep -q "Token Production Function" || fail "--help"

# Text output of the issue's example names every ceiling and says it is a model.
"$ETOK" tpf h100x8-llama31-8b-kv-int8 > "$T/out.txt" || fail "h100x8-llama31-8b-kv-int8 rc"
"$ETOK" tpf --list scenarios | grep -q "^h100x8-llama31-8b-kv-int8 .*KV-int8 what-if" || fail "renamed scenario listed"
if grep -rqi "issue" "${ETOK_SOURCE_DIR:-.}/data/scenarios"; then fail "a catalog scenario names a process"; fi
for w in compute memory_bandwidth memory_capacity delivered_power cooling device_power_cap \
         binding_constraint token_rate_tps joules_per_output_token crossover_facility_power_w "not a measurement"; do
  grep -q "$w" "$T/out.txt" || fail "text lacks $w"
done

# JSON, without levers: METRICS.md names, parseable.
cat > "$T/s.json" <<'J'
{"hardware": {"name": "h100-sxm", "count": 1}, "model": "llama-3.1-8b",
 "workload": {"input_tokens": 0, "output_tokens": 128, "batch": 1}}
J
"$ETOK" tpf "$T/s.json" --json --price-per-kwh 0.15 --uncalibrated > "$T/out.json" || fail "json rc"
python3 - "$T/out.json" <<'P' || fail "json content"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["binding_constraint"] == "memory_bandwidth", d["binding_constraint"]
assert abs(d["token_rate_tps"] / 209 - 1) < 0.01, d["token_rate_tps"]
for k in ["compute", "memory_bandwidth", "memory_capacity", "delivered_power", "cooling", "device_power_cap"]:
    assert k in d["ceilings"] and k in d["headroom"], k
assert d["ceilings"]["delivered_power"] is None           # no facility: unlimited
assert d["source"] == "estimate"
assert d["energy_cost_per_mtok"] > 0 and d["price_per_kwh"] == 0.15
assert d["flops_per_token"]["decode"] > 1.5e10
assert d["calibration"]["applied"] is False
# no power limit set: device_power_cap does not limit and has no headroom
assert d["ceilings"]["device_power_cap"] is None and d["headroom"]["device_power_cap"] is None
P

# Calibrated (the h100-sxm catalog entry has a calibration): slower than the roofline, and says so;
# every ceiling is an upper bound on the rate and the binding one is the smallest.
"$ETOK" tpf "$T/s.json" --json > "$T/cal.json" || fail "calibrated json rc"
python3 - "$T/cal.json" "$T/out.json" <<'P' || fail "calibrated json content"
import json, sys
d = json.load(open(sys.argv[1])); u = json.load(open(sys.argv[2]))
assert d["calibration"]["applied"] is True and 0 < d["calibration"]["bandwidth_fraction"] < 1
assert d["token_rate_tps"] < u["token_rate_tps"]
c = {k: v for k, v in d["ceilings"].items() if v is not None}
assert d["binding_constraint"] == min(c, key=c.get), (d["binding_constraint"], c)
# the modelled rate: prefill and decode in series, bounded by every ceiling (Phi = U = 1 here)
m = min(d["in_series"]["tps"], c[d["binding_constraint"]])
assert abs(d["token_rate_tps"] - m) < 1e-6 * d["token_rate_tps"], (d["token_rate_tps"], m)
assert all(d["token_rate_tps"] <= v * (1 + 1e-9) for v in c.values())
assert 0 < d["activity"] <= 1 and d["device_power_full_w"] < 700
P

# A device power limit binds only below the modelled draw; headroom = limit / draw.
for lim in 300 690; do
  printf '{"hardware": {"name": "h100-sxm", "count": 1, "power_limit_w": %s}, "model": "llama-3.1-8b", "workload": {"input_tokens": 0, "output_tokens": 128, "batch": 64}}' "$lim" > "$T/lim.json"
  "$ETOK" tpf "$T/lim.json" --json > "$T/lim.out" || fail "limit $lim rc"
  python3 - "$T/lim.out" "$lim" <<'P' || fail "limit $lim content"
import json, sys
d = json.load(open(sys.argv[1])); lim = float(sys.argv[2])
h = d["headroom"]["device_power_cap"]; draw = d["device_power_unlimited_w"]
assert abs(h - lim / draw) < 1e-9, (h, lim, draw)
assert (d["binding_constraint"] == "device_power_cap") == (h < 1), (lim, d["binding_constraint"], h)
assert (lim == 300) == (h < 1), (lim, draw)   # the calibrated draw at batch 64 is between 300 and 690 W
if h < 1: assert abs(d["device_power_full_w"] - lim) < 1e-6 * lim   # capped devices draw the limit
c = {k: v for k, v in d["ceilings"].items() if v is not None}
assert d["binding_constraint"] == min(c, key=c.get)
P
done

# Levers: before/after side by side, binding change reported.
"$ETOK" tpf "$T/s.json" --lever fp8 --lever batch=1024 > "$T/lev.txt" || fail "lever rc"
grep -q "memory_bandwidth -> compute (CHANGED)" "$T/lev.txt" || fail "lever binding change"
grep -q "arXiv:2209.05433" "$T/lev.txt" || fail "lever source"
"$ETOK" tpf "$T/s.json" --lever kv-int8 --json > "$T/lev.json" || fail "lever json rc"
python3 -c "
import json,sys; d=json.load(open('$T/lev.json'))
c={x['field']:x for x in d['changes']}
assert c['kv_bytes_per_token']['ratio']==0.5 and c['kv_bytes_per_token']['moved']
assert not c['weight_bytes']['moved']
assert d['binding_changed'] is False" || fail "lever json content"

# Lists.
"$ETOK" tpf --list hardware | grep -q "^h100-sxm" || fail "list hardware"
"$ETOK" tpf --list models | grep -q "^deepseek-v3 .*MoE MLA" || fail "list models"
"$ETOK" tpf --list scenarios | grep -q "^power-capped-site" || fail "list scenarios"
"$ETOK" tpf --list levers | grep -q "^adaptive-reasoning=N" || fail "list levers"

# Errors: one line naming the field, with the documented exit codes.
"$ETOK" tpf "$T/nope.json" 2> "$T/e"; [ $? -eq 3 ] || fail "missing file rc"
printf '{"hardware": "h100", "model": "llama-3.1-8b"}' > "$T/bad1.json"
"$ETOK" tpf "$T/bad1.json" 2> "$T/e"; [ $? -eq 3 ] || fail "unknown hw rc"
grep -q "unknown hardware 'h100' (known: .*h100-sxm" "$T/e" || fail "unknown hw msg: $(cat "$T/e")"
printf '{"hardware": "h100-sxm", "model": "llama-3.1-8b", "facility": {"power_w": "3 TB/s"}}' > "$T/bad2.json"
"$ETOK" tpf "$T/bad2.json" 2> "$T/e"; [ $? -eq 3 ] || fail "dimension rc"
grep -q "facility.power_w: '3 TB/s' is a bandwidth" "$T/e" || fail "dimension msg: $(cat "$T/e")"
printf '{"hardware": "h100-sxm", "model": "llama-3.1-405b"}' > "$T/bad3.json"
"$ETOK" tpf "$T/bad3.json" 2> "$T/e"; [ $? -eq 3 ] || fail "no-fit rc"
grep -q "does not fit" "$T/e" || fail "no-fit msg"
[ "$(wc -l < "$T/e")" -eq 1 ] || fail "error is not one line"
"$ETOK" tpf "$T/s.json" --lever warp-drive 2> "$T/e"; [ $? -eq 2 ] || fail "bad lever rc"
grep -q "unknown lever 'warp-drive'" "$T/e" || fail "bad lever msg"
"$ETOK" tpf 2> /dev/null; [ $? -eq 2 ] || fail "no args rc"
"$ETOK" tpf "$T/s.json" --csv x.csv 2> /dev/null; [ $? -eq 2 ] || fail "--csv without --sweep"
# --from-run: the measured e_tok (1 J/token in the fixture) replaces the modelled one, and says so.
REC=${ETOK_SOURCE_DIR:-.}/tests/fixtures/tpf/run_100w_1000tok.json
"$ETOK" tpf "$T/s.json" --from-run "$REC" > "$T/run.txt" || fail "from-run rc"
grep -q "e_tok MEASURED" "$T/run.txt" || fail "from-run not announced"
grep -q "joules_per_output_token  1 J/token at the device.*\[measured\]" "$T/run.txt" || fail "from-run e_tok: $(grep joules_per_output "$T/run.txt")"
"$ETOK" tpf "$T/s.json" --from-run "$REC" --json > "$T/run.json" || fail "from-run json rc"
python3 -c "
import json; d=json.load(open('$T/run.json'))
assert d['joules_source']=='measured' and abs(d['joules_per_output_token']-1)<1e-6, d['joules_per_output_token']
assert d['device_power_source']=='measured' and d['source']=='estimate+measured'" || fail "from-run json"
"$ETOK" tpf "$T/s.json" --from-run "$T/none.json" 2> "$T/e"; [ $? -eq 3 ] || fail "from-run missing rc"
# --validate: every published point with predicted vs published J/output-token and token rate,
# ratios before and after calibration, which points calibrated, and the 25% target on the rest.
"$ETOK" tpf --validate > "$T/val.txt" || fail "validate rc"
grep -q "llama-3.1-70b/h100x4/b96 *held" "$T/val.txt" || fail "validate lists held-out points"
grep -q "ml.energy/leaderboard" "$T/val.txt" || fail "validate names the source"
grep -q "llama-3.1-70b/b200x2/b32 *held" "$T/val.txt" || fail "validate lists B200 held-out points"
grep -q "target: calibrated within 25% on held-out points: met" "$T/val.txt" || fail "validate target: $(tail -3 "$T/val.txt")"
for hw in h100-sxm b200; do
  grep -q "^  $hw target (calibrated within 25% on held-out points): met" "$T/val.txt" || fail "validate per-hardware target $hw"
done
"$ETOK" tpf --validate --json > "$T/val.json" || fail "validate json rc"
python3 - "$T/val.json" <<'P' || fail "validate json"
import json, sys
d = json.load(open(sys.argv[1]))
pts = [p for s in d["sets"] for p in s["points"] if p["modelled"]]
held = [p for p in pts if not p["calibrate"]]
assert len(held) >= 8 and d["held_out_worst_error"] <= 0.25
for p in held:
    for k in ("joules_ratio", "rate_ratio"):
        assert abs(p["calibrated"][k] - 1) <= 0.25, (p["id"], k, p["calibrated"][k])
        r = p["calibrated"][k]
    assert abs(p["calibrated"]["joules_ratio"] - p["calibrated"]["joules_per_output_token"] / p["published_joules_per_output_token"]) < 1e-6
# before calibration the roofline is optimistic: faster and cheaper than published
assert all(p["roofline"]["rate_ratio"] > 1.2 for p in pts)
hw = {h["hardware"]: h for h in d["per_hardware"]}
assert set(hw) >= {"h100-sxm", "b200"}, hw
assert all(h["held_out_points"] >= 8 and h["held_out_worst_error"] <= 0.25 for h in hw.values()), hw
assert all(p["energy_boundary"] == "gpu" for p in pts)
P
# A system-boundary point (MLPerf-style wall power): the model adds the rest of the system
# (host power / PSU efficiency) and a per-GPU power limit; the JSON says how.
cat > "$T/sys.json" <<'J'
{"name": "sys", "description": "system boundary test", "source": {"title": "test", "url": "https://example.org"},
 "conditions": {"energy_boundary": "system (AC wall)"},
 "points": [{"id": "s", "hardware": "h200", "devices": 8, "devices_per_replica": 1, "power_limit_w": 500,
   "model": "llama-3.1-70b", "weight_dtype": "fp8", "kv_dtype": "fp8", "batch": 64, "input_tokens": 300,
   "output_tokens": 265, "joules_per_output_token": 0.25, "output_tokens_per_s": 25000, "power_w": 6200,
   "calibrate": false, "energy_boundary": "system", "host_power_w": 1800, "host_power_uncertainty_w": 300,
   "psu_efficiency": 0.95, "host_power_source": "assumption: test"}]}
J
"$ETOK" tpf --validate "$T/sys.json" > "$T/sys.txt" || fail "validate system rc"
grep -q "rest of system 1800 +- 300 W (assumption: test)" "$T/sys.txt" || fail "validate system line: $(cat "$T/sys.txt")"
"$ETOK" tpf --validate "$T/sys.json" --json > "$T/sys.out" || fail "validate system json rc"
python3 - "$T/sys.out" <<'P' || fail "validate system json"
import json, sys
p = json.load(open(sys.argv[1]))["sets"][0]["points"][0]
assert p["energy_boundary"] == "system" and p["host_power_w"] == 1800 and p["power_limit_w"] == 500
assert p["devices_per_replica"] == 1
for k in ("roofline", "calibrated"):
    c = p[k]
    dev_w = c["device_power_w"] * 8
    assert abs(c["power_w_at_boundary"] - (dev_w / 0.95 + 1800)) < 1e-6 * c["power_w_at_boundary"], c
    assert abs(c["joules_per_output_token"] / (c["power_w_at_boundary"] / c["token_rate_tps"]) - 1) < 1e-6, c
    lo, hi = c["joules_per_output_token_range"]
    assert abs((hi - lo) * c["token_rate_tps"] / 600 - 1) < 1e-6, c
    assert c["device_power_w"] <= 500 + 1e-9, c
P
sed 's/"host_power_w": 1800, //' "$T/sys.json" > "$T/sys2.json"
"$ETOK" tpf --validate "$T/sys2.json" 2> "$T/e"; [ $? -eq 3 ] || fail "validate system without host power rc"
grep -q "points\[0\].host_power_w" "$T/e" || fail "validate names host_power_w: $(cat "$T/e")"
"$ETOK" tpf --validate "$T/nope.json" 2> "$T/e"; [ $? -eq 3 ] || fail "validate missing file rc"
printf '{"name": "x", "description": "x", "source": {"title": "t", "url": "u"}, "conditions": {}, "points": []}' > "$T/m.json"
"$ETOK" tpf --validate "$T/m.json" 2> "$T/e"; [ $? -eq 3 ] || fail "validate bad file rc"
grep -q "energy_boundary" "$T/e" || fail "validate names the missing field: $(cat "$T/e")"
"$ETOK" tpf --validate --lever fp8 2> /dev/null; [ $? -eq 2 ] || fail "validate with a lever rc"
# One story (issue 13): for the catalog scenario, text, JSON, CSV and SVG agree. The binding
# constraint is the smallest ceiling everywhere; the modelled rate is the in-series rate (its
# derivation printed) bounded by the ceilings, x Phi x U; the figure's regions are the CSV's.
python3 -c "
import json; d = json.load(open('${ETOK_SOURCE_DIR:-.}/data/scenarios/h100x8-llama31-8b-kv-int8.json'))
d.pop('levers', None); d.pop('description', None); json.dump(d, open('$T/story.json', 'w'))"
"$ETOK" tpf "$T/story.json" > "$T/story.txt" || fail "story text rc"
"$ETOK" tpf "$T/story.json" --json > "$T/story.out" || fail "story json rc"
"$ETOK" tpf "$T/story.json" --sweep facility.power_w=1e3:1e6:9:log --csv "$T/story.csv" --svg "$T/story.svg" > /dev/null \
  || fail "story sweep rc"
python3 - "$T/story.txt" "$T/story.out" "$T/story.csv" "$T/story.svg" <<'P' || fail "text, JSON, CSV and SVG tell different stories"
import csv, json, re, sys
txt = open(sys.argv[1]).read(); d = json.load(open(sys.argv[2]))
c = {k: v for k, v in d["ceilings"].items() if v is not None}
b = min(c, key=c.get)
assert d["binding_constraint"] == b, (d["binding_constraint"], c)
assert re.search(r"^binding_constraint\s+%s " % b, txt, re.M), "text names another binding constraint"
ser = d["in_series"]
# the derivation: time per replica batch = prefill + decode, from the resources named
assert abs(ser["replicas"] * ser["batch"] * 256 / (ser["prefill_s_per_batch"] + ser["decode_s_per_batch"]) / ser["tps"] - 1) < 1e-9
assert ser["prefill_bound"] == "compute" and ser["decode_bound"] == "memory_bandwidth", ser
assert "prefill (32 x 1024 tokens, compute-bound)" in txt and "decode (256 steps, memory_bandwidth-bound)" in txt, txt
m = min(ser["tps"], c[b]) * d["scenario"]["phi_system"] * d["utilization"]
assert abs(d["token_rate_tps"] / m - 1) < 1e-9, (d["token_rate_tps"], m)
assert all(d["token_rate_tps"] <= v * d["scenario"]["phi_system"] * d["utilization"] * (1 + 1e-9) for v in c.values())
tr = float(re.search(r"^token_rate_tps\s+(\S+) token/s", txt, re.M).group(1))
assert abs(tr / d["token_rate_tps"] - 1) < 1e-3, (tr, d["token_rate_tps"])
rows = [r for r in csv.DictReader(open(sys.argv[3])) if r["kind"] == "grid"]
bands = re.findall(r">([a-z_]+)-bound<", open(sys.argv[4]).read())
runs = [r["binding_constraint"] for i, r in enumerate(rows) if i == 0 or r["binding_constraint"] != rows[i - 1]["binding_constraint"]]
assert bands == runs, (bands, runs)
for r in rows:
    cc = {k[9:]: float(v) for k, v in r.items() if k.startswith("ceilings.") and v not in ("", "inf")}
    assert r["binding_constraint"] == min(cc, key=cc.get)
    assert float(r["token_rate_tps"]) <= min(cc.values()) * d["utilization"] * (1 + 1e-9)
P
echo ok
