#!/bin/sh
# e2e: `etok run` on real commands with the estimate meter (works on any Linux, no counters
# needed): token count from the command's output, exit status passed through, output passed
# through untouched, the record re-analysed by `etok report` in every format.
set -eu
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# 1. tokens from the output through --tokens-regex; stdout of the command is its own
"$ETOK" run --meter estimate --cpu-tdp 5:20 --idle 0.3 -o "$T/run.json" \
    --tokens-regex 'tokens: ([0-9]+)' -- sh -c 'echo "tokens: 7"; sleep 0.3; echo "tokens: 42"' \
    >"$T/out" 2>"$T/err" || fail "run exited $?: $(cat "$T/err")"
[ "$(cat "$T/out")" = "$(printf 'tokens: 7\ntokens: 42')" ] || fail "command stdout changed: $(cat "$T/out")"
grep -q 'ESTIMATE (model, not a measurement)' "$T/err" || fail "estimate not labelled: $(cat "$T/err")"
grep -q '42 output' "$T/err" || fail "last regex match not taken: $(cat "$T/err")"
grep -q 'J/token' "$T/err" || fail "no J/token in summary"
grep -q '±' "$T/err" || fail "no uncertainty in summary"
[ -s "$T/run.json" ] || fail "no record"

# 1b. --tokens-pick: first and sum of the same output, recorded in the config
for pk in first:7 sum:49; do
    "$ETOK" run --meter estimate --cpu-tdp 5:20 --idle 0 -o "$T/pick.json" --tokens-pick "${pk%%:*}" \
        --tokens-regex 'tokens: ([0-9]+)' -- sh -c 'echo "tokens: 7"; echo "tokens: 42"' \
        >/dev/null 2>"$T/perr" || fail "run --tokens-pick ${pk%%:*} exited $?: $(cat "$T/perr")"
    grep -q "\"tokens_out\": ${pk#*:}," "$T/pick.json" || fail "--tokens-pick ${pk%%:*}: not ${pk#*:}: $(grep tokens_out "$T/pick.json")"
    grep -q "\"tokens_pick\": \"${pk%%:*}\"" "$T/pick.json" || fail "--tokens-pick ${pk%%:*} not in the config"
done

"$ETOK" report "$T/run.json" --format json >"$T/rep.json" || fail "report json"
grep -q '"tokens_out": 42' "$T/rep.json" || fail "tokens_out not 42"
grep -q '"source": "estimate"' "$T/rep.json" || fail "source not estimate"
grep -q '"partial": false' "$T/rep.json" || fail "partial not false"
grep -q '"exit_status": 0' "$T/rep.json" || fail "exit status"
grep -Eq '"energy_j": [0-9]' "$T/rep.json" || fail "no energy: $(cat "$T/rep.json")"
grep -Eq '"idle_power_w": [0-9]' "$T/rep.json" || fail "no idle power"
"$ETOK" report "$T/run.json" --format md | grep -q '^| energy_j |' || fail "report md"
"$ETOK" report "$T/run.json" --format csv | head -1 | grep -q '^scope,meter,domain' || fail "report csv"
"$ETOK" report "$T/run.json" | grep -q 'duration' || fail "report text"

# 2. --tokens, --idle 0, exit status of the command passed through, --json summary
set +e
"$ETOK" run --meter estimate --cpu-tdp 5:20 --idle 0 --tokens 10 --pue 1.5 --json -o "$T/run2.json" -- sh -c 'exit 3' 2>"$T/err2"
rc=$?
set -e
[ $rc -eq 3 ] || fail "exit status not passed through: $rc"
grep -q '"tokens_out": 10' "$T/err2" || fail "--json summary: $(cat "$T/err2")"
grep -q '"pue": 1.5' "$T/err2" || fail "pue"
grep -q '"idle_power_w": null' "$T/err2" || fail "idle must be unknown (null) with --idle 0, never 0"

# 3. the saved record matches docs/record.schema.json (when python3-jsonschema is there;
#    the unit test test_record_io checks the schema in C in every case)
if python3 -c 'import jsonschema' 2>/dev/null; then
    python3 - "$ETOK_SOURCE_DIR/docs/record.schema.json" "$T/run.json" "$T/run2.json" <<'PY' || fail "schema"
import json, sys, jsonschema
schema = json.load(open(sys.argv[1]))
for p in sys.argv[2:]:
    jsonschema.Draft202012Validator(schema).validate(json.load(open(p)))
PY
fi
# 4. --window-start/--window-end: the window is the 1 s between two output lines of a 3 s command
"$ETOK" run --meter estimate --idle 0 --window-start '^START$' --window-end '^END$' -o "$T/win.json" \
    -- sh -c 'sleep 1; echo START; sleep 1; echo END; sleep 1' > "$T/win.out" 2> "$T/win.err" || fail "window run"
python3 - "$T/win.json" <<'PY' || fail "window edges: $(cat "$T/win.err")"
import json, sys
r = json.load(open(sys.argv[1]))
w = r["window_end_s"] - r["window_start_s"]
assert 0.8 < w < 2.0, ("window", w)   # 1 s between the lines, never the 3 s command
assert r["window_start_s"] > 0.8, r["window_start_s"]
c = r["config"]
assert (c["window_start"], c["window_end"]) == ("output line", "output line"), c
assert (c["window_start_line"], c["window_end_line"]) == ("START", "END"), c
PY
"$ETOK" run --meter estimate --idle 0 --window-start 'NEVER' -o "$T/win2.json" -- true 2> "$T/win2.err" || fail "window run 2"
grep -q "warning: --window-start 'NEVER' matched no output line" "$T/win2.err" || fail "no warning: $(cat "$T/win2.err")"
grep -q '"window_start": "command start"' "$T/win2.json" || fail "window_start in the record"
set +e
"$ETOK" run --window-end '(' -- true 2> "$T/win3.err"; rc=$?
set -e
[ "$rc" -eq 2 ] && [ "$(wc -l < "$T/win3.err")" -eq 1 ] || fail "bad --window-end regex: exit $rc, $(cat "$T/win3.err")"
echo ok
