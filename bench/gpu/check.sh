#!/usr/bin/env bash
# check.sh — the hardware check for a machine with an NVIDIA GPU (and whatever x86 CPU it has):
# what fixture trees and the fake NVML cannot show. One prepared run, a few minutes:
#
#   1. the machine: GPU power limits (nvidia-smi), CPU model and flags;
#   2. the CPU kernel levels natively: isa_probe, isa_kernels, the engine's kernel tests, and
#      bench_engine_speed at each level the CPU has (avx2, avx512, amx) on MODEL;
#   3. the nvml meter on a GPU under a known load: `etok run` around bench/gpu/matmul_load.py,
#      set beside an independent nvidia-smi power log over the same window (crosscheck.py);
#   4. the --gpu-power-limit lever: first on the matmul load (`etok run --gpu-power-limit`, J per
#      TFLOP at each limit), then on a GPU producing tokens: bench/gpu/synthetic_server.py
#      (a Llama-shaped decoder with random weights, bf16) driven by `etok sweep --grid
#      gpu-power-limit=...` with repeats, then `etok compare` of each limit against the default,
#      and a check that the limit the GPU had before is the one it has after.
#
# usage: bench/gpu/check.sh OUTDIR
# env:   BIN   directory with etok, isa_probe, isa_kernels, bench_engine_speed and test_* (build)
#        MODEL GGUF for the CPU speed runs (default: the default model)
#        LIMITS power limits in W for the sweep (default: min, the middle and the default limit)
#        REPEAT runs per sweep point (default 3); REQUESTS (8); INPUT_LEN (512); MAX_TOKENS (128):
#        the sweep's workload is bench's `random` dataset (exact lengths, no quality: no q*)
#        SERVER_ARGS extra arguments for synthetic_server.py (default: 8 layers of a 70B shape)
#        MATMUL_ARGS extra arguments for matmul_load.py
#        FORMATS weights for the CPU speed runs (default keep; e.g. "keep q8_0 q4_0 f16"),
#        LEVELS kernel levels (default "avx2 avx512 amx"), THREADS (default "1 8")
#        PEERS "NAME=DIR ..." peer (llama.cpp) builds to run beside etok on the same files, DIR
#        holding llama-bench and llama-cli; PEER_FORMATS (e.g. "Q4_0 Q8_0") with LLAMA_QUANTIZE
#        SKIP_CPU=1 / SKIP_GPU=1 to leave a part out; WORK the working folder (OUTDIR/work)
# Writes OUTDIR/log.txt (everything printed) and OUTDIR/results.tar.gz (records, sweep, logs).
set -u
OUTDIR=${1:?usage: bench/gpu/check.sh OUTDIR}
BIN=${BIN:-build}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
REPEAT=${REPEAT:-3}
REQUESTS=${REQUESTS:-8}
MAX_TOKENS=${MAX_TOKENS:-128}
INPUT_LEN=${INPUT_LEN:-512}
PY=${PYTHON:-python3}
W=${WORK:-$OUTDIR/work}
mkdir -p "$OUTDIR" "$W" || exit 5
exec > >(tee "$OUTDIR/log.txt") 2>&1
step() { echo; echo "=== $(date -u +%H:%M:%S) $*"; }
fails=0
fail() { echo "CHECK FAILED: $*"; fails=$((fails + 1)); }
pack() { tar -C "$(dirname "$W")" --exclude="*.gguf" -czf "$OUTDIR/results.tar.gz" "$(basename "$W")"; }
trap pack EXIT

step "machine"
uname -srm
lscpu | grep -E 'Model name|^CPU\(s\)|Thread|Socket|NUMA node\(s\)|L3' || true
grep -o -w -E 'avx2|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|amx_tile|amx_int8|amx_bf16' /proc/cpuinfo | sort -u | tr '\n' ' '; echo
have_gpu=0
if command -v nvidia-smi >/dev/null && nvidia-smi -L; then
    have_gpu=1
    nvidia-smi --query-gpu=name,driver_version,power.limit,power.default_limit,power.min_limit,power.max_limit,enforced.power.limit,clocks.max.sm --format=csv
    nvidia-smi -q -d POWER,CLOCK,PERFORMANCE > "$W/nvidia-smi-q.txt" 2>&1
fi

if [ "${SKIP_CPU:-0}" != 1 ]; then
    step "CPU: isa_probe"
    "$BIN/isa_probe" || fail "isa_probe"
    step "CPU: isa_kernels (every level this CPU has)"
    "$BIN/isa_kernels" || fail "isa_kernels"
    step "CPU: the engine's kernel tests at the detected level"
    for t in test_isa test_quant test_quant_q4_0 test_quant_q4_1 test_quant_q5_0 test_quant_q5_0x8 \
             test_quant_q8_0 test_quant_iq4_nlx8 test_quant_k test_quant_k_tile test_matmul_float \
             test_vmath test_archs; do
        [ -x "$BIN/$t" ] || { echo "$t: not built, skipped"; continue; }
        if ETOK_BIN=$BIN/etok ETOK_BUILD_DIR=$BIN ETOK_SOURCE_DIR=$PWD "$BIN/$t" > "$W/$t.log" 2>&1; then
            echo "$t: ok ($(grep -c '^\[       OK \]' "$W/$t.log") tests)"
        else
            fail "$t (log in results: work/$t.log)"; tail -15 "$W/$t.log"
        fi
    done
    if [ -f "$MODEL" ]; then
        step "CPU: bench_engine_speed -p 256 -n 64 -r 3 on $MODEL, weights re-encoded at load (-w), per kernel level"
        printf '%-7s %-7s %-3s %12s %12s %12s   (tokens/s, mean of 3 after a warm-up)\n' weights level t pp256 tg64 tg64@d256
        for w in ${FORMATS:-keep}; do
            for lv in ${LEVELS:-avx2 avx512 amx}; do
                # amx changes the prefill of the 32-value block formats only (quant_amx.c)
                [ "$lv" = amx ] && case $w in keep|q8_0|q4_0|q4_1|q5_0|q5_1|iq4_nl) false ;; *) true ;; esac && continue
                for th in ${THREADS:-1 8}; do
                    out=$(ETOK_ISA=$lv "$BIN/bench_engine_speed" -m "$MODEL" -w "$w" -t "$th" -p 256 -n 64 -r 3 2>&1)
                    printf '%-7s %-7s %-3s %12s %12s %12s\n' "$w" "$lv" "$th" \
                        "$(echo "$out" | awk '/^etok pp256:/ {print $3}')" "$(echo "$out" | awk '/^etok tg64:/ {print $3}')" \
                        "$(echo "$out" | awk '/^etok tg64@d256:/ {print $3}')"
                    echo "$out" >> "$W/engine_speed.log"
                    echo "$out" | grep -q 'tokens/s' || echo "$out" | head -3
                done
            done
        done
    else
        echo "no $MODEL: engine speed skipped"
    fi
fi

# The peer on this CPU (optional): PEERS="NAME=DIR ..." names builds of llama.cpp made elsewhere
# (DIR holds llama-bench and llama-cli; nothing here builds one), e.g. one with AVX-512 only and
# one with AMX as well (issue 14: the AMX build is reported to give wrong text). LLAMA_QUANTIZE
# makes the PEER_FORMATS variants of MODEL, so both programs read the same file. Two rounds,
# etok first then the peers first; a greedy continuation from each for the text check.
if [ -n "${PEERS:-}" ] && [ -f "$MODEL" ]; then
    step "CPU: etok and the peer builds ($PEERS) on the same files, -p 256 -n 64 -r 3"
    files="keep=$MODEL"
    for f in ${PEER_FORMATS:-}; do
        if [ -x "${LLAMA_QUANTIZE:-}" ] && "$LLAMA_QUANTIZE" --allow-requantize "$MODEL" "$W/model-$f.gguf" "$f" \
            > "$W/quantize-$f.log" 2>&1; then
            files="$files $f=$W/model-$f.gguf"
        else
            echo "no $f variant (LLAMA_QUANTIZE unset or failed: $W/quantize-$f.log)"
        fi
    done
    cat > "$W/csv_ts.py" <<'PYEOF'
import csv, sys
r = {int(x["n_prompt"]): float(x["avg_ts"]) for x in csv.DictReader(open(sys.argv[1]))}
print("%.2f %.2f" % (r.get(256, float("nan")), r.get(0, float("nan"))))
PYEOF
    etok_row() { # FILE THREADS LEVEL
        out=$(ETOK_ISA=$3 "$BIN/bench_engine_speed" -m "$1" -t "$2" -p 256 -n 64 -r 3 2>&1)
        echo "$out" >> "$W/peer_etok.log"
        printf '%12s %12s' "$(echo "$out" | awk '/^etok pp256:/ {print $3}')" "$(echo "$out" | awk '/^etok tg64:/ {print $3}')"
    }
    peer_row() { # DIR FILE THREADS
        "$1/llama-bench" -m "$2" -t "$3" -p 256 -n 64 -r 3 -o csv > "$W/peer.csv" 2>> "$W/peer_bench.err"
        cat "$W/peer.csv" >> "$W/peer_bench.log"
        read -r pp tg <<EOT
$($PY "$W/csv_ts.py" "$W/peer.csv" 2>/dev/null)
EOT
        printf '%12s %12s' "${pp:-?}" "${tg:-?}"
    }
    printf '%-6s %-3s %-5s %-14s %12s %12s\n' format t round program pp256 tg64
    for fv in $files; do
        f=${fv%%=*}; file=${fv#*=}
        for th in ${THREADS:-1 8}; do
            for round in 1 2; do
                # etok-amx: the AMX prefill kernel (quant_amx.c) for the 32-value block formats
                amx=""; case $f in keep|Q8_0|Q4_0|Q4_1|Q5_0|Q5_1|IQ4_NL) amx=" etok-amx" ;; esac
                progs="etok$amx"
                for p in $PEERS; do progs="$progs ${p%%=*}"; done
                if [ $round = 2 ]; then progs="$(for p in $PEERS; do printf '%s ' "${p%%=*}"; done)etok$amx"; fi
                for prog in $progs; do
                    printf '%-6s %-3s %-5s %-14s ' "$f" "$th" "$round" "$prog"
                    case $prog in
                        etok) etok_row "$file" "$th" avx2 ;;
                        etok-amx) etok_row "$file" "$th" amx ;;
                        *) for p in $PEERS; do [ "${p%%=*}" = "$prog" ] && peer_row "${p#*=}" "$file" "$th"; done ;;
                    esac
                    echo
                done
            done
        done
        prompt="The capital of France is Paris. The capital of Germany is"
        echo "greedy, 24 tokens, $f: etok: $("$BIN/etok" generate -m "$file" -p "$prompt" -n 24 --threads 8 2>/dev/null | tr '\n' ' ')"
        for p in $PEERS; do
            echo "greedy, 24 tokens, $f: ${p%%=*}: $("${p#*=}/llama-cli" -m "$file" -p "$prompt" -n 24 --temp 0 -no-cnv \
                --no-warmup --simple-io -t 8 2>/dev/null < /dev/null | tr '\n' ' ')"
        done
    done
fi

if [ "${SKIP_GPU:-0}" != 1 ] && [ $have_gpu = 1 ]; then
    step "GPU: etok meters, etok probe"
    "$BIN/etok" meters || fail "etok meters"
    "$BIN/etok" probe --profile "$W/profile.json" || fail "etok probe"

    step "GPU: nvml meter under a matmul load, beside an nvidia-smi power log"
    nvidia-smi --query-gpu=timestamp,power.draw,power.draw.instant,power.draw.average,clocks.sm,temperature.gpu \
        --format=csv,nounits -lms 100 > "$W/smi_matmul.csv" 2>/dev/null &
    smi=$!
    "$BIN/etok" run --meter nvml --idle 5 --json -o "$W/run_matmul.json" \
        --window-start '^start' --window-end '^end' -- \
        sh -c "exec $PY -u bench/gpu/matmul_load.py --seconds 15 ${MATMUL_ARGS:-} 2> '$W/matmul.err'" \
        2> "$W/run_matmul.summary.json" || { fail "etok run (matmul)"; cat "$W/matmul.err"; }
    sleep 0.5; kill $smi 2>/dev/null; wait $smi 2>/dev/null
    $PY bench/gpu/crosscheck.py "$W/run_matmul.json" "$W/run_matmul.summary.json" "$W/smi_matmul.csv" ||
        fail "crosscheck"
    grep -E '"(energy_j|mean_power_w|idle_power_w|duration_s|n_faults)"' "$W/run_matmul.summary.json" | head -8

    step "GPU: --gpu-power-limit through etok sweep on a token-producing GPU"
    before=$(nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits | head -1)
    if [ -z "${LIMITS:-}" ]; then
        read -r lo def <<< "$(nvidia-smi --query-gpu=power.min_limit,power.default_limit --format=csv,noheader,nounits | head -1 | tr -d ',')"
        lo=${lo%.*}; def=${def%.*}
        LIMITS="$lo,$(( (lo + def) / 2 )),$def"
    fi
    echo "limit before: $before W; sweep limits: $LIMITS W"

    # the compute-bound matmul load under each limit: `etok run --gpu-power-limit`, J per TFLOP
    printf '%-8s %10s %10s %12s %10s %10s\n' limit_W energy_J mean_W TFLOP J/TFLOP TFLOP/s
    for l in ${LIMITS//,/ }; do
        "$BIN/etok" run --meter nvml --idle 0 --json --gpu-power-limit "$l" -o "$W/run_matmul_$l.json" \
            --window-start '^start' --window-end '^end' -- \
            sh -c "exec $PY -u bench/gpu/matmul_load.py --seconds 10 ${MATMUL_ARGS:-} 2>> '$W/matmul.err'" \
            > "$W/matmul_$l.out" 2> "$W/run_matmul_$l.summary.json" || { fail "etok run --gpu-power-limit $l"; continue; }
        $PY - "$W/run_matmul_$l.summary.json" "$W/matmul_$l.out" "$l" <<'PYEOF'
import json, re, sys
s = json.load(open(sys.argv[1]))
m = re.search(r"tflop=([0-9.]+) rate_tflops=([0-9.]+)", open(sys.argv[2]).read())
e, w = s["energy_j"], s["mean_power_w"]
tf, rate = (float(m.group(1)), float(m.group(2))) if m else (float("nan"), float("nan"))
print(f"{sys.argv[3]:<8} {e:10.1f} {w:10.1f} {tf:12.1f} {e / tf:10.3f} {rate:10.1f}")
PYEOF
    done
    now=$(nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits | head -1)
    [ "$now" = "$before" ] || fail "power limit not restored after the matmul runs ($before -> $now)"

    $PY -u bench/gpu/synthetic_server.py --port 8765 ${SERVER_ARGS:-} > "$W/server.log" 2>&1 &
    srv=$!
    for _ in $(seq 1 120); do grep -q '^ready' "$W/server.log" 2>/dev/null && break; sleep 1; done
    cat "$W/server.log"
    if grep -q '^ready' "$W/server.log"; then
        nvidia-smi --query-gpu=timestamp,power.draw,power.draw.instant,power.limit,enforced.power.limit,clocks.sm,clocks.mem,utilization.gpu \
            --format=csv,nounits -lms 100 > "$W/smi_sweep.csv" 2>/dev/null &
        smi=$!
        "$BIN/etok" sweep --grid gpu-power-limit=$LIMITS --repeat "$REPEAT" --idle 5 --idle-probe 2 \
            -o "$W/sweep" --endpoint http://127.0.0.1:8765 --endpoint-model synthetic-random-weights \
            --dataset-name random --random-input-len "$INPUT_LEN" --random-output-len "$MAX_TOKENS" \
            --requests "$REQUESTS" --concurrency 1 --meter nvml --profile "$W/profile.json" ||
            fail "etok sweep"
        kill $smi 2>/dev/null; wait $smi 2>/dev/null
        after=$(nvidia-smi --query-gpu=power.limit --format=csv,noheader,nounits | head -1)
        echo "limit after the sweep: $after W (before: $before W)"
        [ "$after" = "$before" ] || fail "power limit not restored ($before -> $after)"
        def=${LIMITS##*,}
        base=$(ls -d "$W"/sweep/points/*-"$def"_r* "$W"/sweep/points/*-"$def" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
        for l in ${LIMITS//,/ }; do
            [ "$l" = "$def" ] && continue
            cand=$(ls -d "$W"/sweep/points/*-"$l"_r* "$W"/sweep/points/*-"$l" 2>/dev/null | tr '\n' ',' | sed 's/,$//')
            [ -n "$base" ] && [ -n "$cand" ] || { fail "no sweep points for $l W / $def W"; continue; }
            step "GPU: etok compare ${def} W (baseline) vs ${l} W"
            "$BIN/etok" compare --arm "limit${def}W=$base" --arm "limit${l}W=$cand" || fail "etok compare"
        done
    else
        fail "synthetic_server did not start"
    fi
    kill $srv 2>/dev/null; wait $srv 2>/dev/null
fi

step "done: $fails check(s) failed"
[ $fails = 0 ]
