#!/bin/sh
# bench/budget.sh — issue 16 measurements on the built-in engine, as short `etok bench` runs:
#   budget: J/correct-answer of fixed output budgets against --budget adaptive on
#           data/evals/default.jsonl and hard.jsonl (table in bench/budget.md)
#   long:   accuracy and J/token of --kv-type f16|q8_0 and --attn-window N --attn-sinks S on the
#           long-prompt set data/evals/long.jsonl (scripts/gen_long_evals.py; bench/long_context.md)
# Every run: greedy, --concurrency 2 --threads 2, 1 warm-up request, 3 s idle baseline,
# --boundary process (energy also attributed to etok by its CPU-time share: the machine is shared), the
# meter in METER (default estimate: a model of CPU power from utilization, not a counter; its
# uncertainty is in every figure). Prints one Markdown row per run (summarize below).
#
#   bench/budget.sh [budget|budget-default|budget-hard|long|long-kv|long-window|all]
#   Env: ETOK (default build/etok), ETOK_MODEL, OUT, METER, LONG_REQUESTS (default 8),
#        DEFAULT_POLICIES (default "fixed:16 fixed:32 adaptive"), HARD_POLICIES ("fixed:32 adaptive fixed:64")
set -eu
cd "$(dirname "$0")/.."
ETOK=${ETOK:-build/etok}
MODEL=${ETOK_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
OUT=${OUT:-/tmp/etok-budget}
METER=${METER:-estimate}
WHAT=${1:-all}
[ -f "$MODEL" ] || { echo "bench/budget.sh: $MODEL not found: run 'make model'" >&2; exit 3; }
mkdir -p "$OUT"

row() { # NAME: one Markdown row from OUT/NAME/run.json
    python3 - "$OUT/$1/run.json" "$1" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); m = r["metrics"]; c = r["config"]
def v(k, f="%.3g"):
    x = m.get(k) or {}
    if x.get("value") is None: return "n/a"
    u = x.get("uncertainty")
    return (f % x["value"]) + ((" ± " + f % u) if u else "")
reqs = r["requests"]; ok = sum(1 for q in reqs if q.get("quality_pass"))
b = c.get("budget", {})
pk = sorted(k for k in m if "process" in k)
print("| %s | %s | %s | %d/%d | %d | %s | %s | %s | %s | %s | %s |" % (
    sys.argv[2], b.get("policy", "fixed:%d" % c["max_tokens"]),
    ("%.1f" % b["mean_max_tokens"]) if b else str(c["max_tokens"]),
    ok, len(reqs), r["tokens_out"], "%.0f" % (r["tokens_in"] / max(1, len(reqs))),
    v("energy_j"), v("joules_per_output_token"), v("joules_per_token", "%.3f"), v("joules_per_correct_answer"),
    "%.0f s" % m["duration_s"]["value"]))
for k in pk: print("<!-- %s %s: %s -->" % (sys.argv[2], k, json.dumps(m[k])[:300]))
PY
}

run() { # NAME ARGS...: one bench run, then its row
    name=$1; shift
    "$ETOK" bench -m "$MODEL" --concurrency 2 --threads 2 --warmup 1 --idle 3 --meter "$METER" --boundary process \
        -q -o "$OUT/$name" "$@" \
        >"$OUT/$name.log" 2>&1 || { echo "bench/budget.sh: $name failed:"; cat "$OUT/$name.log"; return 1; }
    row "$name"
}

echo "| run | policy | mean budget | correct | output tokens | prompt tokens/request | energy J | J/output-token | J/token | J/correct-answer | window |"
echo "|---|---|---|---|---|---|---|---|---|---|---|"
# the first LONG_REQUESTS items of the seeded shuffle of long.jsonl (default 8 of 12)
LONG_REQUESTS=${LONG_REQUESTS:-8}
# budget-default, budget-hard: one set (to run the two in parallel on a slow machine)
case $WHAT in budget | budget-default | all)
    for pol in ${DEFAULT_POLICIES:-fixed:16 fixed:32 adaptive}; do
        run "default-$(echo "$pol" | tr : -)" --evals data/evals/default.jsonl --budget "$pol"
    done ;;
esac
case $WHAT in budget | budget-hard | all)
    for pol in ${HARD_POLICIES:-fixed:32 adaptive fixed:64}; do
        run "hard-$(echo "$pol" | tr : -)" --evals data/evals/hard.jsonl --budget "$pol"
    done ;;
esac
L="--evals data/evals/long.jsonl --requests $LONG_REQUESTS --max-tokens 24"
# shellcheck disable=SC2086
case $WHAT in long | long-kv | all)
    run long-kv-f16 $L --kv-type f16
    run long-kv-q8_0 $L --kv-type q8_0 ;;
esac
# shellcheck disable=SC2086
case $WHAT in long | long-window | all)
    run long-window-256-sinks-4 $L --attn-window 256 --attn-sinks 4 ;;
esac
