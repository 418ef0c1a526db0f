#!/bin/bash
# calibrate.sh — the runs behind bench/calibrate.md and the measured table of docs/LEVERS.md:
# every arm twice, the two rounds interleaved in time (the same order each round), then
# `etok tpf --calibrate` (leave-one-out) and `etok compare` with pooled repeats.
# usage: bench/calibrate.sh OUTDIR [--refit]   (the runs take 7 min on a quiet 2-core VM, 20-40 loaded)
# --refit: no runs; the fit, leave-one-out and tables again from the records already in OUTDIR
# (a pure function of the records: a changed model is checked on the same evidence).
set -u
BENCH=$(cd "$(dirname "$0")" && pwd)
E=${ETOK_BIN:-$BENCH/../build/etok}
OUT=${1:?usage: bench/calibrate.sh OUTDIR [--refit]}
REFIT=${2:-}
mkdir -p "$OUT" && cd "$OUT" || exit 1
COMMON="--meter estimate --requests 16 --warmup 1 --idle 2 --max-tokens 32 --seed 1 --quiet"
ARMS="c1 c2 c4 c8 c16 f32 f16 q8 kvq8 t1 win"
[ "$REFIT" = --refit ] || for rep in 1 2; do
  for arm in $ARMS; do
    case $arm in
      c1) A="--concurrency 1 --threads 2";; c2) A="--concurrency 2 --threads 2";;
      c4) A="--concurrency 4 --threads 2";; c8) A="--concurrency 8 --threads 2";;
      c16) A="--concurrency 16 --threads 2";;
      f32) A="--concurrency 4 --threads 2 --weights f32";; f16) A="--concurrency 4 --threads 2 --weights f16";;
      q8) A="--concurrency 4 --threads 2 --weights q8_0";; kvq8) A="--concurrency 4 --threads 2 --kv-type q8_0";;
      t1) A="--concurrency 4 --threads 1";; win) A="--concurrency 4 --threads 2 --attn-window 32 --attn-sinks 4";;
    esac
    echo "$(date -u +%T) $arm r$rep start" >> log.txt
    # shellcheck disable=SC2086
    "$E" bench $COMMON $A -o $arm.r$rep > $arm.r$rep.out 2>&1
    echo "$(date -u +%T) $arm r$rep rc=$? load=$(cut -d' ' -f1 /proc/loadavg)" >> log.txt
  done
done
# leave-one-out over every run; the profile from all of them
"$E" tpf --calibrate ./*.r[12] -o profile.json > calibrate.txt
# the lever table: baseline concurrency 4 (two repeats pooled) against each arm
arms=(--arm base=c4.r1,c4.r2)
for a in f32 f16 q8 kvq8 win t1 c1 c2 c8 c16; do arms+=(--arm "$a=$a.r1,$a.r2"); done
"$E" compare "${arms[@]}" --format json > compare.json
"$E" compare "${arms[@]}" > compare.txt
"$E" compare "${arms[@]}" --calibration profile.json --format json > compare_calibrated.json
python3 "$BENCH/levers_table.py" < compare.json > table.md
python3 "$BENCH/levers_table.py" < compare_calibrated.json > table_calibrated.md
