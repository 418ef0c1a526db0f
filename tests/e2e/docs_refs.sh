#!/bin/sh
# docs_refs.sh — the repository stands alone: no file refers to a file outside it (such as the
# old metric contract in a sibling directory), docs/METRICS.md exists and defines the reporting set, and every
# docs/NAME.md that the binary's --help texts, the report footers or the sources name exists.
set -u
SRC=${ETOK_SOURCE_DIR:-.}
ETOK=${ETOK_BIN:-./build/etok}
fail=0
bad() { echo "FAIL: $*"; fail=1; }
outside="../sha""red"
if command -v git > /dev/null 2>&1 && git -C "$SRC" rev-parse > /dev/null 2>&1; then
    hits=$(git -C "$SRC" grep -l -F "$outside" -- . 2>/dev/null)
else
    hits=$(grep -rlF "$outside" "$SRC/src" "$SRC/include" "$SRC/docs" "$SRC/README.md" "$SRC/scripts" "$SRC/tests" 2>/dev/null)
fi
[ -z "$hits" ] || bad "files refer outside the repository ($outside): $hits"
[ -s "$SRC/docs/METRICS.md" ] || bad "docs/METRICS.md missing"
for f in joules_per_output_token energy_uncertainty_j binding_constraint pue_adjusted_power_w goodput_tps energy_cost_per_mtok; do
    grep -q "\`$f\`" "$SRC/docs/METRICS.md" || bad "docs/METRICS.md does not define $f"
done
grep -q "](docs/METRICS.md)" "$SRC/README.md" || bad "README.md does not link docs/METRICS.md"
# every docs/X.md named by a --help text or in the sources exists
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$ETOK" --help > "$T/help"
for c in $(sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' "$T/help"); do "$ETOK" "$c" --help >> "$T/help" 2>&1; done
cat "$SRC"/src/*/*.c "$SRC"/include/etok/*.h >> "$T/help"
for d in $(grep -o 'docs/[A-Za-z_]*\.md' "$T/help" | sort -u); do
    [ -f "$SRC/$d" ] || bad "$d is named but does not exist"
done
# help texts and report footers cite docs/METRICS.md, never a bare METRICS.md
sed -e 's:/\*.*$::' -e 's:^ *\*.*$::' "$T/help" | grep 'METRICS\.md' | grep '"' | grep -v 'docs/METRICS\.md' \
    && bad "a string names METRICS.md without docs/"
[ $fail = 0 ] && echo "docs_refs: ok"
exit $fail
