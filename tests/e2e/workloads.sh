#!/bin/sh
# e2e: `etok bench --endpoint` with the serving datasets (issue 12; docs/WORKLOADS.md) against
# tests/e2e/workload_stub.py, which logs every request body: sharegpt sends each first human
# turn with the recorded answer's estimated length as max_tokens and no exact-length fields;
# random and prefix_repetition send ignore_eos and min_tokens = max_tokens, and the record says
# whether the server honoured them (a stub that ignores them: every request shorter);
# prefix_repetition prompts share their prefix; --goodput ttft:MS tpot:MS sets the SLOs;
# quality is not measured (no q*, said in the report). Files here are written for etok.
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
command -v python3 >/dev/null 2>&1 || { echo "workloads: python3 missing: skipped"; exit 0; }
T=$(mktemp -d)
stub=
trap '[ -n "$stub" ] && kill $stub 2>/dev/null; rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
start_stub() { # MODE
    rm -f "$T/port" "$T/port.log"
    python3 "$SRC/tests/e2e/workload_stub.py" "$T/port" "$1" &
    stub=$!
    i=0; while [ ! -s "$T/port" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
    URL="http://127.0.0.1:$(cat "$T/port")"
}
stop_stub() { kill $stub 2>/dev/null; wait $stub 2>/dev/null; stub=; }
bench() { "$ETOK" bench --idle 0 --warmup 0 --meter estimate --cpu-tdp 5:20 --endpoint "$URL" -q "$@"; }
# py EXPR: python over the log lines L (request bodies, in order) and run.json R of $OUT
py() { python3 -c "import json,sys; L=[json.loads(x) for x in open('$T/port.log')]; R=json.load(open('$OUT/run.json')); sys.exit(0 if ($1) else 1)"; }

cat > "$T/sg.json" <<'J'
[{"id": "a1", "conversations": [{"from": "human", "value": "What is the capital of France?"},
  {"from": "gpt", "value": "The capital of France is Paris, a large city."}]},
 {"id": 2, "conversations": [{"from": "system", "value": "Be brief."}, {"from": "user", "value": "Say hi"},
  {"from": "assistant", "value": "Hi!"}]},
 {"id": "c3", "conversations": [{"from": "human", "value": "no answer here"}]}]
J

start_stub honour
OUT="$T/sg"; bench --dataset-name sharegpt --dataset-path "$T/sg.json" -o "$OUT" > /dev/null 2> "$T/e"
ck "sharegpt exit 0" "[ $? = 0 ]"
ck "sharegpt prompts: first human turns" "py \"sorted(b['messages'][0]['content'] for b in L) == ['Say hi', 'What is the capital of France?']\""
ck "sharegpt budget: recorded answer length (bytes/4)" "py \"sorted(b['max_tokens'] for b in L) == [1, 12]\""
ck "sharegpt: no exact length asked" "py \"all('ignore_eos' not in b and 'min_tokens' not in b for b in L)\""
ck "sharegpt record" "py \"R['config']['dataset']['name'] == 'sharegpt' and R['config']['dataset']['skipped_no_answer'] == 1 and 'estimated' in R['config']['dataset']['length_basis']\""
ck "sharegpt: no answer checked" "py \"not any(q.get('quality_checked') for q in R['requests']) and R['metrics']['accuracy'].get('value') is None\""
ck "report: quality not measured" "grep -qF 'quality not measured (no reference answers)' '$OUT/report.md' && grep -qF 'q* gate: none' '$OUT/report.md'"
OUT="$T/sg2"; bench --dataset-name sharegpt --dataset-path "$T/sg.json" --sharegpt-output-len 9 --requests 4 -o "$OUT" > /dev/null 2>&1
ck "--sharegpt-output-len" "py \"[b['max_tokens'] for b in L[-4:]] == [9, 9, 9, 9]\""

: > "$T/port.log"
OUT="$T/rnd"; bench --dataset-name random --random-input-len 30 --random-output-len 6 --num-prompts 5 --seed 4 \
    --goodput ttft:500 tpot:50 -o "$OUT" > /dev/null 2>&1
ck "random exit 0" "[ $? = 0 ]"
ck "random: 5 requests, ignore_eos + min_tokens" "py \"len(L) == 5 and all(b['ignore_eos'] is True and b['min_tokens'] == b['max_tokens'] == 6 for b in L)\""
ck "random: 30-word prompts" "py \"all(len(b['messages'][0]['content'].split()) == 30 for b in L)\""
ck "random: honoured 5 of 5" "py \"R['config']['dataset']['length_honoured'] == {'checked': 5, 'exact': 5, 'shorter': 0, 'longer': 0}\""
ck "--goodput sets the SLOs" "py \"R['ttft_slo_s'] == 0.5 and abs(R['tpot_slo_s'] - 0.05) < 1e-12\""
ck "report: honoured" "grep -qF '5 of 5 ok requests got it' '$OUT/report.md'"
cp "$T/port.log" "$T/rnd.log"
: > "$T/port.log"
OUT="$T/rnd2"; bench --dataset-name random --random-input-len 30 --random-output-len 6 --num-prompts 5 --seed 4 -o "$OUT" > /dev/null 2>&1
ck "random: same seed, same prompts" "[ \"\$(sort '$T/port.log')\" = \"\$(sort '$T/rnd.log')\" ]"

: > "$T/port.log"
OUT="$T/pre"; bench --dataset-name prefix_repetition --prefix-repetition-prefix-len 20 --prefix-repetition-suffix-len 4 \
    --prefix-repetition-num-prefixes 2 --prefix-repetition-output-len 3 --num-prompts 6 -o "$OUT" > /dev/null 2>&1
ck "prefix exit 0" "[ $? = 0 ]"
ck "prefix: 2 distinct 20-word prefixes, 6 distinct prompts" "py \"len(L) == 6 and len({' '.join(b['messages'][0]['content'].split()[:20]) for b in L}) == 2 and len({b['messages'][0]['content'] for b in L}) == 6\""
stop_stub

# a server that ignores ignore_eos: every request came back short, and the record says so
start_stub deaf
OUT="$T/deaf"; bench --dataset-name random --random-input-len 10 --random-output-len 8 --num-prompts 3 -o "$OUT" > /dev/null 2>&1
ck "deaf: exit 0" "[ $? = 0 ]"
ck "deaf: 3 shorter" "py \"R['config']['dataset']['length_honoured'] == {'checked': 3, 'exact': 0, 'shorter': 3, 'longer': 0}\""
ck "deaf report" "grep -qF '0 of 3 ok requests got it, 3 shorter' '$OUT/report.md'"

# errors, before anything runs: named file and field (3), bad options (2)
printf '[{"id": "x", "conversations": [{"from": "human"}]}]' > "$T/bad.json"
OUT="$T/e1"; bench --dataset-name sharegpt --dataset-path "$T/bad.json" -o "$OUT" > /dev/null 2> "$T/e"; rc=$?
ck "malformed sharegpt -> 3" "[ $rc = 3 ]"
ck "names file and field" "grep -qF \"$T/bad.json: entry 0 (id x): conversations[0]: field \\\"value\\\": missing\" '$T/e'"
ck "nothing written" "[ ! -e '$OUT/run.json' ]"
bench --dataset-name sharegpt -o "$T/e2" > /dev/null 2> "$T/e"; ck "sharegpt without path -> 2" "[ $? = 2 ]"
bench --dataset-name sonnet -o "$T/e3" > /dev/null 2> "$T/e"; ck "unknown dataset -> 2" "[ $? = 2 ] && grep -qF \"unknown dataset 'sonnet'\" '$T/e'"
bench --dataset-name random --quality-target 0.9 -o "$T/e4" > /dev/null 2> "$T/e"; ck "q* with random -> 2" "[ $? = 2 ]"
bench --dataset-name random --prefix-repetition-prefix-len 9 -o "$T/e5" > /dev/null 2> "$T/e"; ck "other dataset's option -> 2" "[ $? = 2 ]"
bench --dataset-name random --random-range-ratio 1.5 -o "$T/e6" > /dev/null 2> "$T/e"; ck "range ratio -> 2" "[ $? = 2 ] && grep -qF -- '--random-range-ratio' '$T/e'"
bench --goodput ttft:abc -o "$T/e7" > /dev/null 2> "$T/e"; ck "goodput value -> 2" "[ $? = 2 ]"
bench --goodput e2el:100 -o "$T/e8" > /dev/null 2> "$T/e"; ck "goodput e2el -> 2" "[ $? = 2 ] && grep -qF 'e2el' '$T/e'"
bench --dataset-name random --random-input-len 1x -o "$T/e9" > /dev/null 2> "$T/e"; ck "strict number -> 2" "[ $? = 2 ]"
[ $fail = 0 ] && echo "workloads: ok"
exit $fail
