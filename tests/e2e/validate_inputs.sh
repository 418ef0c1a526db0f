#!/bin/sh
# validate_inputs.sh — issue 9 §10: values are validated where they enter, with the same limits
# everywhere. Reproducers: a record with a negative power sample (was: negative J/token, exit
# 0), `tpf --sweep hardware.count=1:1e9:5` (was: past the loader's 1e7 limit), and numeric
# flags given NaN, hex, overflowing or out-of-range text (was: accepted or saturated; the
# exporter with --rate-hz nan spun forever).
set -u
ETOK=${ETOK_BIN:-build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

# expect RC PATTERN CMD...: exit status RC and PATTERN on stderr (one line), nothing hangs
expect() {
    want=$1 pat=$2
    shift 2
    timeout 60 "$@" > "$T/out" 2> "$T/err"
    rc=$?
    [ "$rc" = "$want" ] || fail "$* -> rc=$rc (want $want): $(head -c 300 "$T/err")"
    grep -q -- "$pat" "$T/err" || fail "$* -> stderr lacks '$pat': $(head -c 300 "$T/err")"
}

# --- run records: physically impossible values are refused, naming the JSON path ---
python3 - "$SRC/tests/fixtures/records/bench_hand.json" "$T" <<'P' || fail "making records"
import json, sys
src, out = sys.argv[1], sys.argv[2]
r = json.load(open(src))
def save(name, mod):
    x = json.loads(json.dumps(r)); mod(x); json.dump(x, open(f"{out}/{name}.json", "w"))
save("good", lambda x: None)
save("negpower", lambda x: x["traces"][0]["samples"][12].__setitem__(1, -40.0))
save("nullpue", lambda x: x.__setitem__("pue", None))
save("negtokens", lambda x: x["requests"][0].__setitem__("tokens_out", -3))
P
"$ETOK" report "$T/good.json" > /dev/null 2>&1 || fail "the untouched fixture must load"
expect 3 "negpower.json: traces\[0\].samples\[12\]: power -40 W is negative" "$ETOK" report "$T/negpower.json"
expect 3 "nullpue.json: pue: must be a number" "$ETOK" report "$T/nullpue.json"
expect 3 "requests\[0\].tokens_out: -3 out of range" "$ETOK" report "$T/negtokens.json"
expect 3 "traces\[0\].samples\[12\]: power -40 W is negative" "$ETOK" tpf h100x8-llama31-8b-kv-int8 --from-run "$T/negpower.json"

# --- one table of scenario limits: sweeps cannot reach what the loader refuses ---
expect 2 "STOP 1000000000 is outside the limits of hardware.count (expected a whole number in 1..10000000)" \
    "$ETOK" tpf h100x8-llama31-8b-kv-int8 --sweep hardware.count=1:1e9:5
expect 2 "START 0.5 is outside the limits of facility.pue" "$ETOK" tpf h100x8-llama31-8b-kv-int8 --sweep facility.pue=0.5:2:5
cat > "$T/s.json" <<'J'
{"hardware": {"name": "h100-sxm", "count": 1000000000}, "model": "llama-3.1-8b"}
J
expect 3 "hardware.count: 1000000000 is out of range (expected a whole number in 1..10000000)" "$ETOK" tpf "$T/s.json"
"$ETOK" tpf --list fields | grep -q "hardware.count .*a whole number in 1..10000000" || fail "--list fields shows no limits"

# --- numeric flags: strict, ranged, the flag named ---
expect 2 "--requests '-5': out of range" "$ETOK" bench --requests -5
expect 2 "--rate 'nan'" "$ETOK" bench --rate nan
expect 2 "--concurrency '0x10'" "$ETOK" bench --concurrency 0x10
expect 2 "--port '70000': out of range" "$ETOK" serve --port 70000 -m x.gguf
expect 2 "--window 'inf'" "$ETOK" serve --window inf -m x.gguf
expect 2 "--port ' 80'" "$ETOK" serve --port " 80" -m x.gguf
expect 2 "--rate-hz 'nan'" "$ETOK" exporter --rate-hz nan
expect 2 "--port '99999999999999999999': out of range" "$ETOK" exporter --port 99999999999999999999
expect 2 "--tokens '99999999999999999999': out of range" "$ETOK" run --tokens 99999999999999999999 -- true
expect 2 "--pue '11': out of range" "$ETOK" run --pue 11 -- true
expect 2 "--top-p 'nan'" "$ETOK" generate --top-p nan
expect 2 "--threads '0x4'" "$ETOK" probe --threads 0x4
expect 2 "--price-per-kwh 'inf'" "$ETOK" tpf h100x8-llama31-8b-kv-int8 --price-per-kwh inf
expect 2 "--cpu-tdp '5:inf'" "$ETOK" run --cpu-tdp 5:inf -- true
echo "ok"
