#!/bin/sh
# e2e: `etok compare` on hand-built bench records (tests/fixtures/records/bench_hand.json and
# copies made here): the verdict line, every format, directories as arms, pooled repeats with
# --arm NAME=GLOB, exit 3 on a meaningless mismatch (different boundary, different eval set)
# unless --allow-mismatch (and then the output carries the warning), usage errors exit 2.
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
REC="$SRC/tests/fixtures/records/bench_hand.json"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

# cand: the same run at 80% of the power (every figure in J scales by 0.8); dev: measured at
# the device boundary; evals: another eval set (hash in config). The fixture's requests carry no
# per-request energy (its window energy is split by token share): with one record per arm the
# energy figures have no CI and the verdict claims nothing. att/: the same with per-request
# energies (the built-in engine's attribution): the request bootstrap gives the exact -20%.
python3 - "$REC" "$T" <<'PY' || { echo "FAIL: python"; exit 1; }
import json, sys, os
src, out = sys.argv[1], sys.argv[2]
base = json.load(open(src))
def save(d, name):
    os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
    json.dump(d, open(os.path.join(out, name), "w"))
def variant(scale=1.0, boundary=None, evals=None, attributed=False):
    d = json.loads(json.dumps(base))
    if attributed:
        for q in d["requests"]: q["energy_j"] = 1.0  # rescaled to the window energy by compare
    for t in d["traces"]:
        t["samples"] = [[s[0], s[1] * scale] for s in t["samples"]]
        if boundary: t["boundary"] = boundary
    d["config"] = {"evals": "e.jsonl", "eval_items": 2, "evals_hash": evals or "fnv1a64:0000000000000001"}
    return d
save(variant(), "base.json")
save(variant(), "rep/r1/run.json")
save(variant(1.1), "rep/r2/run.json")
save(variant(0.8), "candir/run.json")
save(variant(attributed=True), "att/base.json")
save(variant(0.8, attributed=True), "att/cand.json")
save(variant(1.0, boundary="device"), "dev.json")
save(variant(1.0, evals="fnv1a64:00000000000000ff"), "evals.json")
PY

"$ETOK" compare "$T/base.json" "$T/candir" > "$T/out.txt" 2> "$T/err.txt"; rc=$?
ck "text exit 0 (got $rc: $(cat "$T/err.txt"))" "[ $rc = 0 ]"
ck "verdict: no claim from one token-share record per arm" "grep -qF 'verdict: B: J/output-token -20%, no claim of a change (CI n/a: one record in each arm and no per-request energy' '$T/out.txt'"
ck "J/output-token CI n/a, with the reason" "grep -Eq '^joules_per_output_token .*\\[n/a, n/a\\] +CI n/a: one record in each arm' '$T/out.txt'"
"$ETOK" compare "$T/att/base.json" "$T/att/cand.json" > "$T/att.txt" 2>&1; rc=$?
ck "per-request energy: exit 0" "[ $rc = 0 ]"
ck "per-request energy: verdict -20% [-20%, -20%]" "grep -qF 'verdict: B: -20% J/output-token [-20%, -20%] at equal quality' '$T/att.txt'"
ck "paired" "grep -qF 'paired by eval item' '$T/out.txt'"
ck "systematic band stated" "grep -qF 'meter systematic band' '$T/out.txt'"
ck "what the CI covers" "grep -qF 'do not include the meter' '$T/out.txt'"
ck "J/output-token row" "grep -Eq '^joules_per_output_token +J/token +125 +100 ' '$T/out.txt'"

for f in md json csv html; do
    "$ETOK" compare "$T/base.json" "$T/candir" --format $f -o "$T/out.$f"; rc=$?
    ck "$f exit 0" "[ $rc = 0 ]"
done
ck "md table" "grep -qF '| figure | unit | A | B |' '$T/out.md'"
ck "md verdict" "grep -qF '**verdict** B: J/output-token -20%, no claim' '$T/out.md'"
ck "json parses, verdict" "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); c=d[\"candidates\"][0]; assert c[\"paired\"] and c[\"comparable\"] and c[\"verdict\"].startswith(\"B: J/output-token -20%, no claim\") and c[\"deltas\"][0][\"relative_ci95\"] is None, c' '$T/out.json'"
ck "csv header + 13 rows (12 figures and token_rate_tps)" "[ \$(wc -l < '$T/out.csv') = 14 ] && head -1 '$T/out.csv' | grep -q '^baseline,candidate,figure'"
ck "html with forest plot" "grep -q '<!DOCTYPE html>' '$T/out.html' && grep -q '<svg' '$T/out.html' && grep -qF 'relative change' '$T/out.html'"

# pooled repeats, named arms, globs
"$ETOK" compare --arm "base=$T/rep/*" --arm "half=$T/candir" > "$T/pool.txt" 2>&1; rc=$?
ck "pooled exit 0 ($(cat "$T/pool.txt" | tail -2))" "[ $rc = 0 ]"
ck "pooled: 2 records" "grep -qF 'baseline base (2 records)' '$T/pool.txt'"
ck "pooled: named verdict" "grep -qF 'verdict: half:' '$T/pool.txt'"

# meaningless mismatches: exit 3, nothing on stdout; --allow-mismatch: warning in the output
"$ETOK" compare "$T/base.json" "$T/dev.json" > "$T/mm.txt" 2> "$T/mm.err"; rc=$?
ck "boundary mismatch exit 3 (got $rc)" "[ $rc = 3 ]"
ck "boundary named" "grep -qF 'energy boundary differs' '$T/mm.err'"
ck "nothing printed on refusal" "[ ! -s '$T/mm.txt' ]"
"$ETOK" compare "$T/base.json" "$T/evals.json" -o "$T/mm2.txt" 2> "$T/mm2.err"; rc=$?
ck "eval-set mismatch exit 3 (got $rc)" "[ $rc = 3 ]"
ck "eval set named" "grep -qF 'eval set differs' '$T/mm2.err'"
ck "no output file on refusal" "[ ! -e '$T/mm2.txt' ]"
"$ETOK" compare "$T/base.json" "$T/dev.json" --allow-mismatch > "$T/al.txt" 2> "$T/al.err"; rc=$?
ck "--allow-mismatch exit 0" "[ $rc = 0 ]"
ck "--allow-mismatch warns on stderr" "grep -qF 'WARNING' '$T/al.err'"
ck "--allow-mismatch output carries the warning" "grep -qF 'WARNING: MISMATCH' '$T/al.txt'"
"$ETOK" compare "$T/base.json" "$T/dev.json" --allow-mismatch --format json > "$T/al.json"; rc=$?
ck "json says mismatch_fatal" "python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d[\"mismatch_fatal\"] is True' '$T/al.json'"

# usage and input errors
"$ETOK" compare "$T/base.json" > /dev/null 2>&1; ck "one arm: exit 2" "[ $? = 2 ]"
"$ETOK" compare "$T/base.json" "$T/candir" --format pdf > /dev/null 2>&1; ck "bad format: exit 2" "[ $? = 2 ]"
"$ETOK" compare "$T/base.json" "$T/nope.json" > /dev/null 2> "$T/e.txt"; rc=$?
ck "missing record: exit 3" "[ $rc = 3 ] && grep -qF 'nope.json' '$T/e.txt'"
"$ETOK" compare --arm "x=$T/none-*" --arm "y=$T/base.json" > /dev/null 2> "$T/e.txt"; rc=$?
ck "glob without match: exit 3" "[ $rc = 3 ] && grep -qF 'matches no file' '$T/e.txt'"
"$ETOK" compare --arm "x=$T/base.json" "$T/candir" > /dev/null 2>&1; ck "--arm with positional: exit 2" "[ $? = 2 ]"
"$ETOK" compare "$T/base.json" "$T/candir" -o /dev/full > /dev/null 2>&1; ck "unwritable output: exit 5" "[ $? = 5 ]"
exit $fail
