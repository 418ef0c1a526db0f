#!/bin/sh
# e2e: carbon in `etok tpf` and `etok serve` (issue 12; docs/CARBON.md). tpf --region/--grid-intensity
# prints co2e_g_per_mtok = J/output-token (PUE-adjusted) x 1e6 / 3.6e6 x intensity, with the
# intensity, basis and year and "embodied not included", in text, JSON and the lever what-if;
# bad values are refused. serve --region adds co2e_g = energy_j / 3.6e6 x intensity to every
# usage (opt-in: absent without it). The serve part uses the real default model (skipped when
# absent or under sanitizers, like serve_cli).
set -u
ETOK=${ETOK_BIN:-./build/etok}
T=$(mktemp -d)
SPID=
trap '[ -n "$SPID" ] && kill $SPID 2>/dev/null; rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

"$ETOK" tpf power-capped-site --region de > "$T/t.txt"; ck "tpf exit" "[ $? = 0 ]"
ck "tpf text line" "grep -q 'co2e_g_per_mtok .* gCO2e per million output tokens at 381 gCO2e/kWh (de, location-based, 2023), PUE-adjusted (operational only, embodied not included' '$T/t.txt'"
"$ETOK" tpf power-capped-site --region de --json > "$T/t.json"
ck "tpf json = J/tok(PUE) x 1e6/3.6e6 x 381" "python3 -c \"import json,sys; d=json.load(open('$T/t.json')); v=d['co2e_g_per_mtok']; e=d['joules_per_output_token_pue_adjusted']; sys.exit(0 if abs(v - e*1e6/3.6e6*381) < 1e-9*v and d['grid']['region']=='de' and d['grid']['basis']=='location' and d['grid']['embodied_included'] is False else 1)\""
"$ETOK" tpf power-capped-site --json > "$T/n.json"
ck "tpf without grid: null" "python3 -c \"import json,sys; d=json.load(open('$T/n.json')); sys.exit(0 if d['co2e_g_per_mtok'] is None and 'grid' not in d else 1)\""
ck "tpf text without grid: no line" "! \"$ETOK\" tpf power-capped-site | grep -q co2e"
"$ETOK" tpf power-capped-site --grid-intensity 200 --lever fp8 > "$T/l.txt"
ck "tpf lever what-if" "grep -q 'co2e_g_per_mtok .* -> .* gCO2e (.*x) at 200 gCO2e/kWh (user-given)' '$T/l.txt'"
"$ETOK" tpf power-capped-site --region zz > /dev/null 2> "$T/e"; ck "tpf unknown region -> 3" "[ $? = 3 ] && grep -qF \"unknown grid region 'zz'\" '$T/e'"
"$ETOK" tpf power-capped-site --grid-intensity -5 > /dev/null 2> "$T/e"; ck "tpf bad intensity -> 2" "[ $? = 2 ]"
"$ETOK" tpf power-capped-site --region de --sweep facility.power_w=1e4:1e6:3 > /dev/null 2> "$T/e"; ck "tpf sweep + grid -> 2" "[ $? = 2 ]"
"$ETOK" serve -m x.gguf --grid-intensity 100 --region de > /dev/null 2> "$T/e"; ck "serve both -> 2" "[ $? = 2 ]"
"$ETOK" serve -m x.gguf --region de --no-energy > /dev/null 2> "$T/e"; ck "serve grid without energy -> 2" "[ $? = 2 ]"

MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ ! -r "$MODEL" ] || [ "${ETOK_SANITIZED:-0}" = 1 ]; then
    echo "carbon_tpf_serve: serve part SKIPPED (no $MODEL, or sanitized build)"
    [ $fail = 0 ] && echo "carbon_tpf_serve: ok"
    exit $fail
fi
"$ETOK" serve -m "$MODEL" --port 0 --threads 2 --meter estimate --cpu-tdp 5:20 --region de > /dev/null 2> "$T/serve.log" &
SPID=$!
i=0
while ! grep -q 'listening on' "$T/serve.log" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 600 ] || ! kill -0 "$SPID" 2>/dev/null; then echo "FAIL: server did not start"; cat "$T/serve.log"; exit 1; fi
    sleep 0.1
done
PORT=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/serve.log" | head -1)
python3 - "http://127.0.0.1:$PORT" <<'PY' || fail=1
import json, sys, urllib.request
req = urllib.request.Request(sys.argv[1] + "/v1/chat/completions", data=json.dumps(
    {"messages": [{"role": "user", "content": "Name a colour."}], "max_tokens": 6, "temperature": 0}).encode())
req.add_header("Content-Type", "application/json")
u = json.loads(urllib.request.urlopen(req, timeout=300).read())["usage"]
ok = (u["energy_j"] is not None and u["energy_j"] >= 0 and abs(u["co2e_g"] - u["energy_j"] / 3.6e6 * 381) <= 1e-12 + 1e-9 * u["co2e_g"]
      and u["grid_intensity_g_per_kwh"] == 381 and u["grid_region"] == "de" and u["grid_basis"] == "location"
      and u["grid_year"] == 2023)
if not ok:
    print("FAIL: serve usage carbon:", u)
    sys.exit(1)
PY
kill $SPID; wait $SPID; SPID=
[ $fail = 0 ] && echo "carbon_tpf_serve: ok"
exit $fail
