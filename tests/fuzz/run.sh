#!/bin/sh
# tests/fuzz/run.sh BUILD_DIR — run every libFuzzer target built there for FUZZ_SECONDS
# (default 30) each, seeded from tests/fuzz/corpus/<name>/ when present (plus, for the GGUF
# reader, a synthetic model written by the test suite's writer if one is around). Exits non-zero
# on the first crash; the reproducer is left in the working directory (crash-*).
set -eu
BUILD=${1:-build-fuzz}
SECS=${FUZZ_SECONDS:-30}
cd "$(dirname "$0")/../.."
found=0
for f in "$BUILD"/fuzz_*; do
    [ -x "$f" ] || continue
    found=1
    name=$(basename "$f")
    corpus=$(mktemp -d)
    [ -d "tests/fuzz/corpus/$name" ] && cp -r "tests/fuzz/corpus/$name/." "$corpus/"
    if [ "$name" = fuzz_gguf ]; then
        # small real GGUF inputs to start from: the synthetic models of the unit tests
        for g in /tmp/etok_fuzz_seed_*.gguf; do [ -f "$g" ] && cp "$g" "$corpus/"; done
    fi
    echo "== $name: ${SECS}s"
    "$f" -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 "$corpus" 2>&1 | tail -3
    rm -rf "$corpus"
done
[ "$found" = 1 ] || { echo "no fuzz targets in $BUILD (configure with -DETOK_FUZZ=ON)" >&2; exit 1; }
