#!/bin/sh
# e2e: `etok bench --endpoint` sends each eval item's stop strings as the request's OpenAI
# "stop" (an array, only for items that have them) and still looks for them in every answer:
# against tests/e2e/sse_stub.py (chunks "t0 ", "t1 ", ...), once ignoring "stop" (the answer is
# cut at the stop string for scoring, a note says how many ran past, tokens_out stays the
# server's) and once honouring it (STUB_HONOUR_STOP=1: the server ends the stream, no note).
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
T=$(mktemp -d)
STUB=""
cleanup() {
    [ -n "$STUB" ] && kill -KILL "$STUB" 2>/dev/null
    rm -rf "$T"
}
trap cleanup EXIT
fail=0
command -v python3 >/dev/null 2>&1 || { echo "endpoint_stop: python3 missing: skipped"; exit 0; }

{
    printf '{"id":"a","prompt":"pa","answer":"t4","check":"contains","stop":"t2"}\n'
    printf '{"id":"b","prompt":"pb","answer":"t1","check":"contains","stop":["t3","zz"]}\n'
    printf '{"id":"c","prompt":"pc","answer":"t4","check":"contains"}\n'
} >"$T/e.jsonl"

run() { # NAME [env...]: start the stub (5 chunks), run bench against it, stop the stub
    name=$1; shift
    rm -f "$T/port" "$T/port.bodies" "$T/port.log"
    env "$@" python3 "$SRC/tests/e2e/sse_stub.py" "$T/port" 5 0.01 &
    STUB=$!
    i=0; while [ ! -s "$T/port" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
    "$ETOK" bench --endpoint "http://127.0.0.1:$(cat "$T/port")" --model stub --evals "$T/e.jsonl" --requests 3 \
        --concurrency 1 --idle 0 --warmup 0 --meter estimate --cpu-tdp 5:20 -q -o "$T/$name" >"$T/$name.out" 2>"$T/$name.err"
    rc=$?
    kill -KILL "$STUB" 2>/dev/null
    wait "$STUB" 2>/dev/null
    STUB=""
    cp "$T/port.bodies" "$T/$name.bodies" 2>/dev/null
    [ $rc = 0 ] || { echo "FAIL: bench ($name): rc=$rc"; cat "$T/$name.err"; fail=1; }
}

check() { # NAME HONOURED(0|1)
    python3 - "$T/$1" "$2" <<'PY' || { echo "FAIL: $1:"; cat "$T/$1.err"; fail=1; }
import json, sys
d, honoured = sys.argv[1], sys.argv[2] == "1"
stops = {}
for line in open(d + ".bodies"):
    b = json.loads(line)
    stops[b["messages"][0]["content"]] = b.get("stop")
# sent: an array for items with stop strings, nothing for the item without
assert stops == {"pa": ["t2"], "pb": ["t3", "zz"], "pc": None}, stops
rec = json.load(open(d + "/run.json"))
req = {q["id"].split("#")[0]: q for q in rec["requests"]}
a, b, c = req["a"], req["b"], req["c"]
# etok's own check: the answers end before the stop string whether or not the server stopped
assert a["output"] == "t0 t1 " and not a["quality_pass"], a
assert b["output"] == "t0 t1 t2 " and b["quality_pass"], b
assert c["output"] == "t0 t1 t2 t3 t4 " and c["quality_pass"], c
# tokens_out is the server's count: past the stop when it ignored "stop"
assert (a["tokens_out"], b["tokens_out"]) == ((2, 3) if honoured else (5, 5)), (a["tokens_out"], b["tokens_out"])
assert c["tokens_out"] == 5, c
PY
}

run ignored
check ignored 0
grep -q "note: 2 of 2 answers to items with stop strings still held one (the server ignored the request's \"stop\")" \
    "$T/ignored.err" || { echo "FAIL: no ran-past note:"; cat "$T/ignored.err"; fail=1; }

run honoured STUB_HONOUR_STOP=1
check honoured 1
if grep -q "still held one" "$T/honoured.err"; then echo "FAIL: a note although the server honoured stop"; fail=1; fi

# more than 4 stop strings (OpenAI's limit) never reach a request: the eval set is refused
printf '{"id":"x","prompt":"px","answer":"t0","check":"contains","stop":["1","2","3","4","5"]}\n' >"$T/five.jsonl"
"$ETOK" bench --endpoint http://127.0.0.1:9 --evals "$T/five.jsonl" --idle 0 --warmup 0 --meter estimate -q \
    -o "$T/five" >"$T/five.out" 2>"$T/five.err"
rc=$?
if [ $rc != 3 ] || ! grep -q 'five.jsonl:1: item "x": "stop" must be a string or an array of up to 4 strings' "$T/five.err"; then
    echo "FAIL: 5 stop strings: rc=$rc (want 3)"; cat "$T/five.err"; fail=1
fi
[ $fail = 0 ] && echo "endpoint_stop: ok"
exit $fail
