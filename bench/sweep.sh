#!/bin/sh
# bench/sweep.sh — the measurements of bench/sweep.md: a concurrency sweep 1..16 of the default
# model (where the frontier is; the J/output-token ratio of the best point meeting q* and s* to
# concurrency 1) and a max-tokens sweep at concurrency 4, each point repeated for CIs. Meters:
# whatever `etok meters` finds (the estimate meter on machines without counters; labelled).
# The same commands run unchanged on RAPL/NVML machines (add --meter rapl / --meter nvml).
#
# Env: OUT (default out/bench-sweep), REPEAT (default 2), REQUESTS (default 16), BUILD (default build).
set -eu
cd "$(dirname "$0")/.."
OUT=${OUT:-out/bench-sweep}
REPEAT=${REPEAT:-2}
REQUESTS=${REQUESTS:-16}
BUILD=${BUILD:-build}
[ -f models/SmolLM2-135M-Instruct.Q4_1.gguf ] || { echo "bench/sweep.sh: run 'make model' first" >&2; exit 3; }
"$BUILD/etok" sweep --grid concurrency=1,2,4,8,16 --repeat "$REPEAT" --requests "$REQUESTS" --max-tokens 32 \
    --seed 1 -o "$OUT/concurrency" ${RESUME:+--resume}
"$BUILD/etok" sweep --grid max-tokens=16,32,64 --concurrency 4 --repeat "$REPEAT" --requests "$REQUESTS" \
    --seed 1 -o "$OUT/max-tokens" ${RESUME:+--resume}
