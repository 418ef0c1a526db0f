#!/bin/sh
# serve_load.sh — bounded load test of etok serve (bench/serve_load.c): 64 concurrent
# streaming clients for 30 s on a tiny synthetic GGUF (loads HTTP, queueing and batching), then
# 16 clients for 30 s on the real default model when it is present. Prints the figures that
# bench/serve_load.md records. Not a timed unit test: run it by hand (`sh bench/serve_load.sh`).
set -eu
BUILD="${ETOK_BUILD_DIR:-build}"
cmake --build "$BUILD" --target bench_serve_load >/dev/null
echo "== tiny synthetic model, 64 clients, 30 s"
"$BUILD/bench_serve_load" --clients 64 --seconds 30 --max-tokens 16 --max-seqs 16
MODEL=models/SmolLM2-135M-Instruct.Q4_1.gguf
if [ -r "$MODEL" ]; then
  echo "== $MODEL, 16 clients, 30 s"
  "$BUILD/bench_serve_load" --model "$MODEL" --clients 16 --seconds 30 --max-tokens 8 --max-seqs 16
fi
