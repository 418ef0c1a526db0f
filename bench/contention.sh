#!/bin/sh
# bench/contention.sh — issue 17: the process-boundary J/output-token of `etok bench` on the
# estimate meter, quiet against one busy neighbour (`sh -c 'while :; do :; done'`, started
# before the run and killed after it, so it runs through the idle baseline and the window), in
# interleaved pairs whose order alternates (quiet-busy, busy-quiet, ...) so that a drift of
# the machine's other load falls on both alike. With several binaries in ETOKS (e.g. the
# thread pool before and after a change) each pair runs for each binary in turn.
# Prints one Markdown row per run and a summary per binary (bench/contention.md).
#
#   bench/contention.sh [ROUNDS]     (default 3 pairs per binary)
#   Env: ETOKS ("name=path ...", default "etok=build/etok"), ETOK_MODEL, OUT, REQUESTS (8),
#        METER (estimate), PREFIX (default none: a command prefix for etok and the neighbour
#        both, e.g. "nice -n -19" or, as root, "chrt -r 1": on a machine shared with other
#        work SCHED_RR gives the two of them the cores ahead of every other process, so
#        "quiet" is etok alone and "busy" etok against one equal busy loop, with 100 ms time
#        slices instead of CFS's few ms; the others get 5% meanwhile, keep such runs short)
set -eu
cd "$(dirname "$0")/.."
ETOKS=${ETOKS:-etok=build/etok}
MODEL=${ETOK_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${OUT:-/tmp/etok-contention}
METER=${METER:-estimate}
REQUESTS=${REQUESTS:-8}
PREFIX=${PREFIX:-}
ROUNDS=${1:-3}
[ -f "$MODEL" ] || { echo "bench/contention.sh: $MODEL not found: run 'make model'" >&2; exit 3; }
mkdir -p "$OUT"
BUSY=
trap '[ -n "$BUSY" ] && kill "$BUSY" 2>/dev/null' EXIT

one() { # BIN NAME quiet|busy
    if [ "$3" = busy ]; then
        $PREFIX sh -c 'while :; do :; done' &
        BUSY=$!
    fi
    la=$(cut -d' ' -f1 /proc/loadavg)
    $PREFIX "$2" bench -m "$MODEL" --requests "$REQUESTS" --meter "$METER" --boundary process -q -o "$OUT/$1" \
        >"$OUT/$1.log" 2>&1 || { echo "bench/contention.sh: $1 failed:"; cat "$OUT/$1.log"; exit 1; }
    if [ -n "$BUSY" ]; then kill "$BUSY"; wait "$BUSY" 2>/dev/null || true; BUSY=; fi
    python3 - "$OUT/$1/run.json" "$1" "$3" "$la" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]; ph = r["cpu_load"]["phases"]
w = r["window_end_s"] - r["window_start_s"]
v = lambda k: (m.get(k) or {}).get("value")
own = ph["window"]["own_busy_cores"] * w
print("| %s | %s | %s | %.4f | %.3f | %d | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f |" % (
    sys.argv[2], sys.argv[3], sys.argv[4], v("process_joules_per_output_token"), v("joules_per_output_token"),
    r["tokens_out"], w, own, 1e3 * own / r["tokens_out"], ph["idle"]["machine_busy_cores"],
    ph["window"]["machine_busy_cores"], ph["window"]["background_busy_cores"]))
PY
}

: >"$OUT/rows.md"
echo "| run | neighbour | load avg (1 min) | process J/out-token | device J/out-token | output tokens | window s | own CPU core-s | own CPU ms/token | machine busy cores, baseline | machine busy cores, window | background cores, window |"
echo "|---|---|---|---|---|---|---|---|---|---|---|---|"
i=0
while [ $i -lt "$ROUNDS" ]; do
    for nb in $ETOKS; do
        name=${nb%%=*} bin=${nb#*=}
        if [ $((i % 2)) = 0 ]; then order="quiet busy"; else order="busy quiet"; fi
        for c in $order; do
            one "$name-$i-$c" "$bin" "$c" >"$OUT/row"
            cat "$OUT/row" >>"$OUT/rows.md"
            cat "$OUT/row"
        done
    done
    i=$((i + 1))
done
python3 - "$OUT/rows.md" <<'PY'
import collections, statistics, sys
rows = [l.split("|")[1:-1] for l in open(sys.argv[1]) if l.startswith("|")]
g = collections.defaultdict(lambda: collections.defaultdict(list))
for r in rows:
    name = r[0].strip().rsplit("-", 2)[0]
    g[name][r[1].strip()].append((float(r[3]), float(r[8])))
for name, d in g.items():
    q, b = d.get("quiet", []), d.get("busy", [])
    if not q or not b: continue
    mq, mb = statistics.mean(x[0] for x in q), statistics.mean(x[0] for x in b)
    cq, cb = statistics.mean(x[1] for x in q), statistics.mean(x[1] for x in b)
    print("%s: process J/out-token quiet %.4f, busy %.4f (%+.1f%%); own CPU %.1f -> %.1f ms/token (%+.1f%%); %d pairs"
          % (name, mq, mb, 100 * (mb / mq - 1), cq, cb, 100 * (cb / cq - 1), min(len(q), len(b))))
PY
