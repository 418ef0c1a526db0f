#!/bin/sh
# bench/engine.sh — the built-in engine against a peer's llama-bench on the default model, same
# file and threads: prefill (pp512), decode from an empty context (tg128) and decode at depth
# 512 (tg128 after a 512-token context), tokens/s. Each round runs both programs back to back
# and alternates which runs first (odd rounds etok first, even rounds the peer first: the
# machine may be shared, alternation spreads drift and noise over both), then measures the
# triad bandwidth beside the runs (bench_triad -b: arrays 4x the last-level cache read at run
# time). Prints the ratio etok / peer per round and overall, and weight bytes per decode token
# against each round's triad bandwidth, FLOPs per token against the FMA peak (estimates).
#
# The peer is never built or fetched here: give its binary in LLAMA_BENCH
# (LLAMA_BENCH=/path/to/llama-bench); unset, the peer comparison is skipped with a note.
#
# A llama-bench without -d (older builds, such as c392e5094) cannot run at depth; then the
# peer's decode at depth 512 comes from its llama-batched-bench when LLAMA_BATCHED_BENCH names
# it: -npp 512 -ntg 128 -npl 1 times the 128 one-token decodes after a 512-token prompt, the
# same work as llama-bench -d 512 -n 128 (S_TG, the mean of 3 runs, each a fresh process).
# Neither set: the peer's depth column is n/a, with a note.
#
# Env: THREADS (default 2), ROUNDS (default 3), LLAMA_BENCH, LLAMA_BATCHED_BENCH, ETOK_MODEL,
# BUILD (default build).
set -eu
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
ROUNDS=${ROUNDS:-3}
BUILD=${BUILD:-build}
MODEL=${ETOK_MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
LB=${LLAMA_BENCH:-}
LBB=${LLAMA_BATCHED_BENCH:-}
[ -f "$MODEL" ] || { echo "bench/engine.sh: $MODEL not found: run 'make model'" >&2; exit 3; }
if [ -z "$LB" ]; then
    echo "bench/engine.sh: LLAMA_BENCH not set: peer comparison skipped (etok only)"
elif [ ! -x "$LB" ]; then
    echo "bench/engine.sh: LLAMA_BENCH=$LB is not an executable file" >&2
    exit 3
fi
if [ -n "$LBB" ] && [ ! -x "$LBB" ]; then
    echo "bench/engine.sh: LLAMA_BATCHED_BENCH=$LBB is not an executable file" >&2
    exit 3
fi
# always brought up to date: a benchmark binary older than the sources measures old code
cmake --build "$BUILD" --target bench_engine_speed bench_triad >/dev/null ||
    { echo "bench/engine.sh: cannot build bench_engine_speed and bench_triad in $BUILD" >&2; exit 1; }

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
echo "model: $MODEL, threads: $THREADS, rounds: $ROUNDS (each round: etok 3 runs, peer 3 runs, order alternating; triad beside)"
# what a saved sweep needs to be read later: the CPU (its kind changes between hosts), the
# etok revision measured and the kernel level asked for
CPU=$(awk -F': *' '/^model name/ && !m {m = $2} /^cpu family/ && !f {f = $2} /^model[ \t]*:/ && !o {o = $2}
    END {if (m != "") printf "%s (family %s, model %s)", m, f, o; else printf "unknown"}' /proc/cpuinfo 2>/dev/null || echo unknown)
if REV=$(git rev-parse --short HEAD 2>/dev/null); then
    git diff --quiet HEAD -- 2>/dev/null || REV="$REV with uncommitted changes"
else
    REV="not a git checkout"
fi
echo "host: $CPU, $(getconf _NPROCESSORS_ONLN) CPUs online; etok: $REV; ETOK_ISA=${ETOK_ISA:-unset (the default level)}"

run_etok() { "$BUILD/bench_engine_speed" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r 3 > "$TMP/etok.$1"; }
run_peer() {
    [ -n "$LB" ] || return 0
    # pp512 + tg128 from an empty context, then tg128 at depth 512 (-d; a peer without -d: n/a)
    "$LB" -m "$MODEL" -t "$THREADS" -p 512 -n 128 -r 3 -o csv 2>/dev/null > "$TMP/llama.$1"
    "$LB" -m "$MODEL" -t "$THREADS" -p 0 -n 128 -d 512 -r 3 -o csv 2>/dev/null > "$TMP/llamad.$1" || : > "$TMP/llamad.$1"
    : > "$TMP/llamabb.$1"
    if [ ! -s "$TMP/llamad.$1" ] && [ -n "$LBB" ]; then
        for i in 1 2 3; do
            "$LBB" -m "$MODEL" -t "$THREADS" -c 1024 -npp 512 -ntg 128 -npl 1 --output-format jsonl 2>/dev/null |
                sed -n 's/.*"speed_tg": *\([0-9.eE+-]*\).*/\1/p' >> "$TMP/llamabb.$1"
        done
    fi
}
# the peer's depth rate of a round: llama-bench -d, else the mean of the batched-bench runs
peer_depth() {
    ld=$(csv_ts "$TMP/llamad.$1" n_depth)
    if [ "$ld" = nan ] && [ -s "$TMP/llamabb.$1" ]; then
        got=$(wc -l < "$TMP/llamabb.$1")
        [ "$got" -eq 3 ] || { echo "bench/engine.sh: $LBB gave $got of 3 S_TG values in round $1" >&2; exit 1; }
        ld=$(awk '{s+=$1} END{printf "%.2f", s/NR}' "$TMP/llamabb.$1")
    fi
    echo "$ld"
}
r=1
while [ "$r" -le "$ROUNDS" ]; do
    if [ $((r % 2)) -eq 1 ]; then run_etok "$r"; run_peer "$r"; first=etok; else run_peer "$r"; run_etok "$r"; first=peer; fi
    "$BUILD/bench_triad" -t "$THREADS" -b > "$TMP/triad.$r"
    echo "$first" > "$TMP/first.$r"
    r=$((r + 1))
done

# the avg_ts of a llama-bench csv's rows with column $2 > 0 (n/a when absent)
csv_ts() {
    [ -s "$1" ] || { echo nan; return; }
    awk -F, -v col="$2" 'NR==1{for(i=1;i<=NF;i++){gsub(/"/,"",$i); c[$i]=i}; next} {gsub(/"/,"")} (col in c) && $c[col]>0{print $c["avg_ts"]; f=1; exit} END{if(!f)print "nan"}' "$1"
}
# per round: etok pp, tg, tg@d512, peer pp, tg, tg@d512, triad GB/s, who ran first
r=1
: > "$TMP/table"
while [ "$r" -le "$ROUNDS" ]; do
    ep=$(awk '/^etok pp/{print $3}' "$TMP/etok.$r")
    et=$(awk '/^etok tg[0-9]+:/{print $3}' "$TMP/etok.$r")
    ed=$(awk '/^etok tg[0-9]+@d/{print $3}' "$TMP/etok.$r")
    if [ -n "$LB" ]; then
        lp=$(csv_ts "$TMP/llama.$r" n_prompt); lt=$(csv_ts "$TMP/llama.$r" n_gen); ld=$(peer_depth "$r")
    else
        lp=nan; lt=nan; ld=nan
    fi
    bw=$(awk '/^triad/{print $(NF-1)}' "$TMP/triad.$r")
    echo "$ep $et $ed $lp $lt $ld $bw $(cat "$TMP/first.$r")" >> "$TMP/table"
    r=$((r + 1))
done
awk -v peer="${LB:+1}" 'function rt(a, b) { return (b == "nan" || b + 0 == 0) ? "  n/a" : sprintf("%5.2f", a / b) }
function v(x) { return x == "nan" ? "    n/a" : sprintf("%7.1f", x) }
{
    printf "round %d (%s first): prefill etok %7.1f peer %s ratio %s | decode etok %6.1f peer %s ratio %s | decode@d512 etok %6.1f peer %s ratio %s | triad %.1f GB/s\n",
        NR, $8, $1, v($4), rt($1, $4), $2, v($5), rt($2, $5), $3, v($6), rt($3, $6), $7
    for (k = 1; k <= 7; k++) s[k] += $k
    if ($6 == "nan") nod = 1
} END {
    n = NR
    printf "mean:             prefill etok %7.1f peer %s ratio %s | decode etok %6.1f peer %s ratio %s | decode@d512 etok %6.1f peer %s ratio %s | triad %.1f GB/s (tokens/s, measured)\n",
        s[1]/n, peer ? v(s[4]/n) : v("nan"), peer ? rt(s[1], s[4]) : rt(0, "nan"), s[2]/n, peer ? v(s[5]/n) : v("nan"), peer ? rt(s[2], s[5]) : rt(0, "nan"),
        s[3]/n, (peer && !nod) ? v(s[6]/n) : v("nan"), (peer && !nod) ? rt(s[3], s[6]) : rt(0, "nan"), s[7]/n
    printf "etok decode at depth 512 = %.0f%% of its empty-context rate", 100*s[3]/s[2]
    if (peer && !nod) printf "; peer %.0f%%", 100*s[6]/s[5]
    printf "\n"
}' "$TMP/table"

if [ -n "$LB" ]; then
    if [ -s "$TMP/llamad.1" ]; then echo "peer decode@d512: llama-bench -d 512 -n 128"
    elif [ -s "$TMP/llamabb.1" ]; then echo "peer decode@d512: llama-batched-bench -npp 512 -ntg 128 -npl 1 (S_TG, mean of 3 runs; this llama-bench has no -d)"
    else echo "peer decode@d512: n/a (this llama-bench has no -d and LLAMA_BATCHED_BENCH is not set)"; fi
fi

# which kernel level etok ran (ETOK_ISA, else its default), then the roofs: the etok shape
# estimates, the mean triad of the rounds, the FMA peak once
head -1 "$TMP/etok.1"
tail -3 "$TMP/etok.1"
"$BUILD/bench_triad" -t "$THREADS" | tee "$TMP/triad"
bw=$(awk '{s+=$7} END{print s/NR}' "$TMP/table")
pk=$(awk '/^FMA/{print $(NF-1)}' "$TMP/triad")
mb=$(awk '/bytes\/token/{print $6}' "$TMP/etok.1")
gf=$(awk '/FLOPs\/token/{print $6}' "$TMP/etok.1")
awk -v bw="$bw" -v pk="$pk" -v mb="$mb" -v gf="$gf" -v t="$(awk '{s+=$2} END{print s/NR}' "$TMP/table")" 'BEGIN {
    printf "decode roofs (estimates): bandwidth %.0f tokens/s (%.1f GB/s mean triad of the rounds / %.1f MB of weights per token), compute %.0f tokens/s (%.1f GFLOP/s / %.3f GFLOP per token)\n", bw*1000/mb, bw, mb, pk/gf, pk, gf
    printf "etok decode at %.1f tokens/s = %.0f%% of the bandwidth roof, %.0f%% of the FMA roof\n", t, 100*t/(bw*1000/mb), 100*t/(pk/gf)
}'
# the triad streams arrays 4x the last-level cache from memory; weights that fit in the cache
# one core can use (cpu0's own, from sysfs: not the host-wide figure that sized the arrays) can
# be read faster than it, and then its roof bounds nothing (say so rather than print >100%)
llc=$(sed -n 's/^last-level cache of one core (sysfs, cpu0): \([0-9][0-9]*\) MiB.*/\1/p' "$TMP/triad.1" | head -1)
if [ -n "$llc" ]; then
    awk -v mb="$mb" -v llc="$llc" 'BEGIN { if (mb < llc * 1.048576)
        printf "note: the %.1f MB of weights fit in the %d MiB last-level cache of one core: decode can beat the triad (memory) roof, which then bounds nothing\n", mb, llc }'
fi
