#!/bin/sh
# bench/engine.sh — the built-in engine against llama.cpp on the default model, same threads:
# prefill (512-token prompt) and decode (128 tokens) tokens/s, both programs run back to back
# in alternation (the machine may be shared: alternation spreads the noise over both), then
# the ratio etok / llama.cpp per round and overall. Also: weight bytes per decode token against
# a STREAM-like triad bandwidth, and FLOPs per token against the FMA peak (both estimates).
#
# Env: THREADS (default 2), ROUNDS (default 3), LLAMA_DIR (default /tmp/llama.cpp; built there
# from source with cmake if llama-bench is absent), ETOK_MODEL, BUILD (default build).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
LLAMA_DIR=${LLAMA_DIR:-/tmp/llama.cpp}
BUILD=${BUILD:-build}
MODEL=${ETOK_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
[ -f "$MODEL" ] || { echo "bench/engine.sh: $MODEL not found: run 'make model'" >&2; exit 3; }

LB="$LLAMA_DIR/build/bin/llama-bench"
if [ ! -x "$LB" ]; then
    if [ ! -f "$LLAMA_DIR/CMakeLists.txt" ]; then
        echo "bench/engine.sh: no llama.cpp source in $LLAMA_DIR (clone https://github.com/ggml-org/llama.cpp there)" >&2
        exit 3
    fi
    echo "building llama.cpp in $LLAMA_DIR (CPU, Release) ..." >&2
    cmake -S "$LLAMA_DIR" -B "$LLAMA_DIR/build" -DCMAKE_BUILD_TYPE=Release -DLLAMA_CURL=OFF >/dev/null
    cmake --build "$LLAMA_DIR/build" -j "$(nproc)" --target llama-bench >/dev/null
fi
[ -x "$BUILD/bench_engine_speed" ] || cmake --build "$BUILD" --target bench_engine_speed >/dev/null
[ -x "$BUILD/bench_triad" ] || cmake --build "$BUILD" --target bench_triad >/dev/null

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "model: $MODEL, threads: $THREADS, rounds: $ROUNDS (each round: etok 3 runs, llama-bench 3 runs)"
r=1
while [ "$r" -le "$ROUNDS" ]; do
    "$BUILD/bench_engine_speed" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r 3 > "$TMP/etok.$r"
    "$LB" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r 3 -o csv 2>/dev/null > "$TMP/llama.$r"
    r=$((r + 1))
done

# per round: etok pp, etok tg, llama pp, llama tg
r=1
: > "$TMP/table"
while [ "$r" -le "$ROUNDS" ]; do
    ep=$(awk '/^etok pp/{print $3}' "$TMP/etok.$r")
    et=$(awk '/^etok tg[0-9]+:/{print $3}' "$TMP/etok.$r")
    # llama-bench csv: the avg_ts column of the pp (n_prompt>0) and tg (n_gen>0) rows
    lp=$(awk -F, 'NR==1{for(i=1;i<=NF;i++){gsub(/"/,"",$i); c[$i]=i}; next} {gsub(/"/,"")} $c["n_prompt"]>0{print $c["avg_ts"]}' "$TMP/llama.$r")
    lt=$(awk -F, 'NR==1{for(i=1;i<=NF;i++){gsub(/"/,"",$i); c[$i]=i}; next} {gsub(/"/,"")} $c["n_gen"]>0{print $c["avg_ts"]}' "$TMP/llama.$r")
    echo "$ep $et $lp $lt" >> "$TMP/table"
    r=$((r + 1))
done
awk '{
    printf "round %d: prefill etok %7.1f llama.cpp %7.1f ratio %.2f | decode etok %6.1f llama.cpp %6.1f ratio %.2f\n", NR, $1, $3, $1/$3, $2, $4, $2/$4
    sp += $1; st += $2; lp += $3; lt += $4; rp[NR] = $1/$3; rt[NR] = $2/$4
} END {
    n = NR
    printf "mean:    prefill etok %7.1f llama.cpp %7.1f ratio %.2f | decode etok %6.1f llama.cpp %6.1f ratio %.2f (tokens/s, measured)\n", sp/n, lp/n, sp/lp, st/n, lt/n, st/lt
}' "$TMP/table"

# decode after the prompt (etok only: llama-bench's tg starts from an empty context)
grep '@d' "$TMP/etok.1"
# the roofs
tail -3 "$TMP/etok.1"
"$BUILD/bench_triad" -t "$THREADS" | tee "$TMP/triad"
bw=$(awk '/^triad/{print $(NF-1)}' "$TMP/triad")
pk=$(awk '/^FMA/{print $(NF-1)}' "$TMP/triad")
mb=$(awk '/bytes\/token/{print $6}' "$TMP/etok.1")
gf=$(awk '/FLOPs\/token/{print $6}' "$TMP/etok.1")
awk -v bw="$bw" -v pk="$pk" -v mb="$mb" -v gf="$gf" -v t="$(awk '{s+=$2} END{print s/NR}' "$TMP/table")" 'BEGIN {
    printf "decode roofs (estimates): bandwidth %.0f tokens/s (%.1f GB/s / %.1f MB of weights per token), compute %.0f tokens/s (%.1f GFLOP/s / %.3f GFLOP per token)\n", bw*1000/mb, bw, mb, pk/gf, pk, gf
    printf "etok decode at %.1f tokens/s = %.0f%% of the bandwidth roof, %.0f%% of the FMA roof\n", t, 100*t/(bw*1000/mb), 100*t/(pk/gf)
}'
