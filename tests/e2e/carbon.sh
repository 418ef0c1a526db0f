#!/bin/sh
# e2e: carbon figures (issue 12). A bench record given a grid intensity (data/grid/de.json)
# reports co2e_g_per_mtok and gCO2e per request with the intensity, its basis and source, the
# location/market-based statement and "embodied not included", in md, json and html; and
# `etok bench` refuses bad --grid-intensity/--region before running anything.
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
REC="$SRC/tests/fixtures/records/bench_hand.json"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

python3 - "$REC" "$SRC/data/grid/de.json" "$T/rec.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); g = json.load(open(sys.argv[2]))
r["grid"] = {"g_per_kwh": g["g_co2e_per_kwh"], "uncertainty_g_per_kwh": None, "region": "de",
             "basis": g["basis"], "year": g["year"], "source": g["source"]}
json.dump(r, open(sys.argv[3], "w"))
PY
"$ETOK" report "$T/rec.json" --format md > "$T/r.md"; ck "md exit" "[ $? = 0 ]"
# 125 J/token x PUE 1.5 x 1e6 / 3.6e6 kWh x 381 g = 19843.75 g; 500 J/request -> 0.079375 g
for f in "CO2e / 1M output tokens | 1.984e+04 | gCO2e | power+grid:de" "CO2e / request | 0.07938 | gCO2e" \
         "at 381 gCO2e/kWh (de location-based, 2023), PUE 1.5; operational only, embodied not included" \
         "Location-based means" "market-based" "embodied (manufacturing, construction) emissions are not included" \
         "ourworldindata.org"; do
    ck "md has '$f'" "grep -qF -- '$f' '$T/r.md'"
done
"$ETOK" report "$T/rec.json" --format json -o "$T/run.json"; ck "json exit" "[ $? = 0 ]"
ck "run.json co2e" "python3 -c \"import json,sys; d=json.load(open('$T/run.json')); m=d['metrics']['co2e_g_per_mtok']; sys.exit(0 if abs(m['value']-19843.75)<1e-6 and m['uncertainty']>0 and d['grid']['region']=='de' else 1)\""
"$ETOK" report "$T/run.json" --format md > "$T/r2.md"; ck "run.json reloads with its grid" "cmp -s '$T/r.md' '$T/r2.md'"
"$ETOK" report "$T/rec.json" --format html -o "$T/r.html"; ck "html exit" "[ $? = 0 ]"
ck "html states embodied" "grep -qF 'embodied (manufacturing' '$T/r.html'"
# without a grid: the figure is there, not computable, saying why
"$ETOK" report "$REC" --format md > "$T/n.md"
ck "no grid -> n/a with reason" "grep -qF 'CO2e / 1M output tokens | n/a | gCO2e | power | – | no --grid-intensity or --region given' '$T/n.md'"
ck "no grid -> no carbon paragraph" "! grep -qF 'Location-based means' '$T/n.md'"

# bench option errors, before any model is loaded or measurement made
"$ETOK" bench --region atlantis -o "$T/o1" > /dev/null 2> "$T/e1"; rc=$?
ck "unknown region -> 3" "[ $rc = 3 ]"
ck "unknown region lists known" "grep -qF \"unknown grid region 'atlantis'\" '$T/e1' && grep -q ' de,' '$T/e1'"
"$ETOK" bench --grid-intensity 0 -o "$T/o2" > /dev/null 2> "$T/e2"; ck "intensity 0 -> 2" "[ $? = 2 ]"
ck "names the option" "grep -qF -- '--grid-intensity' '$T/e2'"
"$ETOK" bench --grid-intensity 300 --region de -o "$T/o3" > /dev/null 2> "$T/e3"; ck "both -> 2" "[ $? = 2 ]"
ck "nothing written" "[ ! -e '$T/o1' ] && [ ! -e '$T/o2' ] && [ ! -e '$T/o3' ]"
[ $fail = 0 ] && echo "carbon: ok"
exit $fail
