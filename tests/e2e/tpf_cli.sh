#!/bin/sh
# tpf_cli.sh — `etok tpf` end to end: text, JSON, levers, lists, errors with exit codes.
set -u
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

"$ETOK" tpf --help | grep -q "Token Production Function" || fail "--help"

# Text output of the issue's example names every ceiling and says it is a model.
"$ETOK" tpf h100x8-llama8b-kv-int8 > "$T/out.txt" || fail "h100x8-llama8b-kv-int8 rc"
for w in compute memory_bandwidth memory_capacity delivered_power cooling device_power_cap \
         binding_constraint token_rate_tps joules_per_output_token crossover_facility_power_w "not a measurement"; do
  grep -q "$w" "$T/out.txt" || fail "text lacks $w"
done

# JSON, without levers: METRICS.md names, parseable.
cat > "$T/s.json" <<'J'
{"hardware": {"name": "h100-sxm", "count": 1}, "model": "llama-3.1-8b",
 "workload": {"input_tokens": 0, "output_tokens": 128, "batch": 1}}
J
"$ETOK" tpf "$T/s.json" --json --price-per-kwh 0.15 > "$T/out.json" || fail "json rc"
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
P

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
echo ok
