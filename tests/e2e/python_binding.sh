#!/bin/sh
# python_binding.sh — the Python package (python/) in a venv this test creates: pip installs it
# offline (its build backend has no dependencies), pytest (from PyPI; the test is SKIPPED, exit
# 77, with a message when PyPI cannot be reached) runs python/tests against this build's
# libetok.so (ETOK_LIB) and etok (ETOK_BIN).
set -u
SRC=${ETOK_SOURCE_DIR:-.}
B=${ETOK_BUILD_DIR:-build}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
skip() { echo "SKIP: $*"; exit 77; }
fail() { echo "FAIL: $*"; exit 1; }
LIB="$B/libetok.so.1"
[ -f "$LIB" ] || fail "$LIB not built"
command -v python3 > /dev/null || skip "python3 not found"
python3 -m venv "$T/venv" > "$T/log" 2>&1 || skip "python3 -m venv failed (apt-get install python3-venv): $(tail -1 "$T/log")"
PY="$T/venv/bin/python"
# the package itself needs nothing from the network
"$PY" -m pip install -q --disable-pip-version-check --no-index "$SRC/python" > "$T/log" 2>&1 \
    || { cat "$T/log"; fail "pip install python/ (offline) failed"; }
"$PY" -c "import etok" || fail "import etok"
if ! "$PY" -c "import pytest" 2> /dev/null; then
    "$PY" -m pip install -q --disable-pip-version-check --timeout 20 pytest > "$T/log" 2>&1 \
        || skip "pytest could not be installed from PyPI (offline?): $(tail -1 "$T/log")"
fi
PRELOAD=""
if [ -n "${ETOK_SANITIZED:-}" ]; then
    # libetok is built with ASan: the runtime must be loaded first into python
    PRELOAD=$(clang -print-file-name=libclang_rt.asan-x86_64.so 2> /dev/null)
    [ -f "$PRELOAD" ] || skip "sanitized build: ASan runtime for python not found"
    export ASAN_OPTIONS="${ASAN_OPTIONS:-}:detect_leaks=0"  # the interpreter's own allocations
fi
cd "$T"
LD_PRELOAD="$PRELOAD" ETOK_LIB="$(cd "$(dirname "$LIB")" && pwd)/libetok.so.1" ETOK_BIN="${ETOK_BIN:-}" \
    "$PY" -m pytest -q -p no:cacheprovider "$(cd "$SRC" && pwd)/python/tests" || fail "pytest"
echo "python_binding: ok"
