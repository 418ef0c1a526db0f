#!/bin/sh
# tests/mutate/run.sh — mutation testing: apply one-line mutations from tests/mutate/mutants.txt
# one at a time, rebuild, run the tests, and report which mutants the suite kills.
#
#   sh tests/mutate/run.sh                 every mutant in the list (what `make mutate` runs)
#   sh tests/mutate/run.sh 3 17            only mutants 3 and 17 (numbers as printed)
#   sh tests/mutate/run.sh -g rope         only mutants whose line contains "rope"
#   MUTATE_FULL=1 sh tests/mutate/run.sh   ignore the per-mutant test filters: whole suite each time
#
# The source tree is never touched: the tracked and untracked-but-not-ignored files (and the
# `models` link, for the reference tests) are mirrored into $MUTATE_DIR (default build-mutate/,
# ignored by git), and a Release build there is reused between mutants and between runs, so each
# mutant costs one incremental rebuild (the mutated file and the relinks). A mutated file is put
# back (with a fresh mtime, so the next build recompiles it) before the next mutant, and by an
# EXIT/INT/TERM trap whatever stops the run.
#
# A mutant is "killed" when the build succeeds and at least one selected test fails (or times
# out: MUTATE_TIMEOUT seconds per test, default 300); "survived" when every test passes. A line
# whose original fragment is not found exactly once in its file, or a mutant that does not
# compile, is an error in the list (reported as "stale" / "no-build"): fix the line.
# Exit status: 0 when every mutant was killed, 1 when some survived or the list has errors,
# 2 on usage errors or when the unmutated baseline fails.
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
LIST=${MUTATE_LIST:-$ROOT/tests/mutate/mutants.txt}
WORK=${MUTATE_DIR:-$ROOT/build-mutate}
TREE=$WORK/tree
BUILD=$TREE/build
JOBS=${MUTATE_JOBS:-2}
TIMEOUT=${MUTATE_TIMEOUT:-300}
FULL=${MUTATE_FULL:-0}
TAB=$(printf '\t')

usage() { echo "usage: sh tests/mutate/run.sh [-g PATTERN] [N ...]" >&2; exit 2; }
GREP=""
SEL=""
while [ $# -gt 0 ]; do
    case $1 in
    -g) [ $# -ge 2 ] || usage; GREP=$2; shift 2 ;;
    -h|--help) sed -n '2,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    [0-9]*) SEL="$SEL $1"; shift ;;
    *) usage ;;
    esac
done
[ -r "$LIST" ] || { echo "mutate: cannot read $LIST" >&2; exit 2; }
command -v python3 >/dev/null || { echo "mutate: needs python3 (to apply a mutation literally)" >&2; exit 2; }

# ---- mirror the tree (copy only files that differ, with a fresh mtime) ----
mkdir -p "$TREE" "$WORK/logs" || exit 2
cd "$ROOT" || exit 2
git ls-files -co --exclude-standard -z | xargs -0 sh -c '
    for f; do
        [ -f "$f" ] || continue
        if ! cmp -s "$f" "'"$TREE"'/$f"; then
            mkdir -p "'"$TREE"'/$(dirname "$f")" && cp "$f" "'"$TREE"'/$f" || exit 1
        fi
    done' sh || { echo "mutate: cannot mirror the tree into $TREE" >&2; exit 2; }
if [ -L models ] || [ -d models ]; then
    rm -rf "$TREE/models" && cp -P -R models "$TREE/models"
fi

CUR_FILE=""
restore() {
    if [ -n "$CUR_FILE" ]; then
        cp "$ROOT/$CUR_FILE" "$TREE/$CUR_FILE"
        CUR_FILE=""
    fi
}
trap 'restore' EXIT
trap 'restore; echo "mutate: interrupted" >&2; exit 130' INT TERM

build() {
    if [ ! -f "$BUILD/CMakeCache.txt" ]; then
        cmake -S "$TREE" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >"$WORK/logs/cmake.log" 2>&1 || return 1
    fi
    cmake --build "$BUILD" -j "$JOBS" >"$1" 2>&1
}

run_tests() { # $1 filter ("-" = all), $2 log
    if [ "$1" = "-" ] || [ "$FULL" = 1 ]; then
        (cd "$BUILD" && ctest -j "$JOBS" --timeout "$TIMEOUT" --stop-on-failure --output-on-failure) >"$2" 2>&1
    else
        (cd "$BUILD" && ctest -j "$JOBS" --timeout "$TIMEOUT" --stop-on-failure --output-on-failure -R "$1") >"$2" 2>&1
    fi
}

echo "mutate: building the unmutated tree in $BUILD"
if ! build "$WORK/logs/baseline-build.log"; then
    echo "mutate: the unmutated tree does not build (see $WORK/logs/baseline-build.log)" >&2
    exit 2
fi

# ---- select the mutants ----
SELECTED=$WORK/selected.txt
: >"$SELECTED"
n=0
while IFS= read -r line || [ -n "$line" ]; do
    case $line in ''|'#'*) continue ;; esac
    n=$((n + 1))
    if [ -n "$SEL" ]; then
        case " $SEL " in *" $n "*) ;; *) continue ;; esac
    fi
    if [ -n "$GREP" ]; then
        case $line in *"$GREP"*) ;; *) continue ;; esac
    fi
    printf '%s\t%s\n' "$n" "$line" >>"$SELECTED"
done <"$LIST"
total=$(wc -l <"$SELECTED")
[ "$total" -gt 0 ] || { echo "mutate: no mutant selected" >&2; exit 2; }

# ---- baseline: the selected tests must pass before any mutant ----
if [ "$FULL" = 1 ] || [ -z "$SEL$GREP" ] || cut -f5 "$SELECTED" | grep -qx -- '-'; then
    filter="-"
else
    filter=$(cut -f5 "$SELECTED" | sort -u | paste -sd'|' -)
fi
echo "mutate: baseline tests (${filter})"
if ! run_tests "$filter" "$WORK/logs/baseline-test.log"; then
    echo "mutate: the unmutated tree fails its tests (see $WORK/logs/baseline-test.log)" >&2
    exit 2
fi

killed=0 survived=0 bad=0
SURVIVORS=""
while IFS="$TAB" read -r num file orig repl filter desc; do
    log=$WORK/logs/mutant-$num.log
    label="#$num $file: $desc"
    if [ ! -f "$TREE/$file" ]; then
        echo "stale     $label (no such file)"; bad=$((bad + 1)); continue
    fi
    CUR_FILE=$file
    if ! python3 - "$TREE/$file" "$orig" "$repl" <<'EOF'
import sys
def unesc(s):  # \n newline, \t tab, \\ backslash; any other backslash is literal
    out, i = [], 0
    while i < len(s):
        if s[i] == "\\" and i + 1 < len(s) and s[i + 1] in "nt\\":
            out.append({"n": "\n", "t": "\t", "\\": "\\"}[s[i + 1]])
            i += 2
        else:
            out.append(s[i])
            i += 1
    return "".join(out)
path, orig, repl = sys.argv[1], unesc(sys.argv[2]), unesc(sys.argv[3])
text = open(path, encoding="utf-8").read()
n = text.count(orig)
if n != 1:
    sys.stderr.write("fragment found %d times\n" % n)
    sys.exit(1)
open(path, "w", encoding="utf-8").write(text.replace(orig, repl))
EOF
    then
        restore
        echo "stale     $label (fragment not found exactly once: $orig)"; bad=$((bad + 1)); continue
    fi
    if ! build "$log"; then
        restore
        echo "no-build  $label (see $log)"; bad=$((bad + 1)); continue
    fi
    restore
    if run_tests "${filter:--}" "$log.test"; then
        echo "SURVIVED  $label [tests: ${filter}]"
        survived=$((survived + 1))
        SURVIVORS="$SURVIVORS $num"
    else
        failed=$(sed -n -E 's/^[[:space:]]+[0-9]+ - ([^ ]+) \(.*/\1/p' "$log.test" | sort -u | paste -sd, -)
        echo "killed    $label [by: ${failed:-?}]"
        killed=$((killed + 1))
    fi
done <"$SELECTED"

# leave the mirror's build matching the unmutated tree
build "$WORK/logs/final-build.log" || true
[ -n "$SURVIVORS" ] && echo "mutate: survivors:$SURVIVORS (add the missing test)"
[ "$bad" -gt 0 ] && echo "mutate: $bad line(s) of $LIST need fixing (stale or not building)"
echo "mutate: $killed killed, $survived survived"
[ "$survived" -eq 0 ] && [ "$bad" -eq 0 ]
