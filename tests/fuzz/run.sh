#!/bin/sh
# tests/fuzz/run.sh BUILD_DIR [TARGET...] — run the libFuzzer targets built in BUILD_DIR (all of
# them, or the named ones: fuzz_record ...) one after another, single job, FUZZ_SECONDS (default
# 30) each. Each starts from its seed corpus tests/fuzz/corpus/<target>/, copied to a scratch
# directory so the tree is never modified, with its dictionary tests/fuzz/dict/<target>.dict.
# FUZZ_KEEP=DIR keeps each grown corpus in DIR/<target>/ and its log in DIR/<target>.log (to minimise into the tree with
# `fuzz_x -merge=1 tests/fuzz/corpus/fuzz_x DIR/fuzz_x`). Stops at the first crash, leak or
# timeout, exit 1; the reproducer is left in the working directory (crash-*, leak-*, timeout-*).
set -eu
BUILD=${1:-build-fuzz}
[ $# -gt 0 ] && shift
SECS=${FUZZ_SECONDS:-30}
cd "$(dirname "$0")/../.."
targets=$*
[ -n "$targets" ] || for f in "$BUILD"/fuzz_*; do [ -x "$f" ] && targets="$targets $(basename "$f")"; done
[ -n "$targets" ] || { echo "no fuzz targets in $BUILD (configure with -DETOK_FUZZ=ON)" >&2; exit 1; }
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
for name in $targets; do
    f="$BUILD/$name"
    [ -x "$f" ] || { echo "$f: not built" >&2; exit 1; }
    corpus="$scratch/$name"
    mkdir -p "$corpus"
    [ -d "tests/fuzz/corpus/$name" ] && cp "tests/fuzz/corpus/$name/"* "$corpus/" 2>/dev/null || true
    dict=
    [ -f "tests/fuzz/dict/$name.dict" ] && dict="-dict=tests/fuzz/dict/$name.dict"
    echo "== $name: ${SECS}s"
    rc=0
    # shellcheck disable=SC2086
    "$f" $dict -max_total_time="$SECS" -max_len=65536 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
        "$corpus" >"$scratch/$name.log" 2>&1 || rc=$?
    grep -E '^#[0-9]+[[:space:]]+(INITED|DONE)|stat::number_of_executed_units|stat::peak_rss_mb|ERROR|SUMMARY' "$scratch/$name.log" | tail -6
    echo "   corpus: $(ls "$corpus" | wc -l) files"
    if [ -n "${FUZZ_KEEP:-}" ]; then
        mkdir -p "$FUZZ_KEEP/$name" && cp "$corpus/"* "$FUZZ_KEEP/$name/" && cp "$scratch/$name.log" "$FUZZ_KEEP/$name.log"
    fi
    if [ "$rc" != 0 ]; then
        tail -40 "$scratch/$name.log" >&2
        echo "$name: FAILED (exit $rc)" >&2
        exit 1
    fi
done
