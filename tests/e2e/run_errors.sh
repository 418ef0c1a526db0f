#!/bin/sh
# e2e: bad input to `etok run` / `etok report` — each a one-line error naming the problem,
# a non-zero exit code, and nothing measured or written for nothing.
set -eu
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'chmod -R u+w "$T" 2>/dev/null; rm -rf "$T"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# expect CODE PATTERN -- ARGS...: exit code, one stderr line matching PATTERN
expect() {
    code=$1; pat=$2; shift 3
    set +e
    "$ETOK" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    set -e
    [ "$rc" -eq "$code" ] || fail "etok $*: exit $rc, want $code: $(cat "$T/err")"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "etok $*: want one line, got: $(cat "$T/err")"
    grep -q -- "$pat" "$T/err" || fail "etok $*: '$(cat "$T/err")' lacks '$pat'"
}

expect 127 "cannot run 'no-such-command-etok': No such file or directory" -- \
    run --meter estimate --idle 0 -o "$T/a.json" -- no-such-command-etok arg
[ ! -e "$T/a.json" ] || fail "record written for a command that does not exist"
expect 127 "cannot run './nope': No such file or directory" -- run --idle 0 -o "$T/a.json" -- ./nope
expect 5 "run record: cannot write '$T/missing/dir/r.json'" -- \
    run --meter estimate --idle 0 -o "$T/missing/dir/r.json" -- true
expect 5 "Is a directory" -- run --meter estimate --idle 0 -o "$T" -- true
if [ "$(id -u)" -ne 0 ]; then
    mkdir "$T/ro" && chmod a-w "$T/ro"
    expect 5 "Permission denied" -- run --meter estimate --idle 0 -o "$T/ro/r.json" -- true
fi
set +e
"$ETOK" run --meter no-such-meter --idle 0 -o "$T/b.json" -- true >"$T/out" 2>"$T/err"
rc=$?
set -e
[ $rc -ne 0 ] || fail "unknown meter accepted"
[ "$(wc -l <"$T/err")" -eq 1 ] || fail "unknown meter: not one line: $(cat "$T/err")"
grep -q "no-such-meter" "$T/err" || fail "unknown meter not named: $(cat "$T/err")"
[ ! -e "$T/b.json" ] || fail "record written for an unknown meter"
expect 2 "needs exactly one capture group" -- run --tokens-regex 'tokens: [0-9]+' -- true
expect 2 "--tokens-regex" -- run --tokens-regex 'tokens: ([0-9]+' -- true
expect 2 "no command given" -- run --idle 0
expect 2 "--idle" -- run --idle -1 -- true
expect 2 "--pue" -- run --pue 0.5 -- true
expect 2 "--cpu-tdp" -- run --cpu-tdp 50 -- true
expect 2 "--tokens" -- run --tokens abc -- true
expect 2 "not both" -- run --tokens 3 --tokens-regex '([0-9]+)' -- true
expect 2 "needs --tokens-regex" -- run --tokens-pick sum -- true
expect 2 "last, first or sum" -- run --tokens-pick most --tokens-regex '([0-9]+)' -- true
expect 2 "unknown or incomplete option" -- run --frobnicate -- true

# report: missing file, broken JSON, a record from a newer etok, a bad field
expect 3 "$T/none.json: run record: cannot read" -- report "$T/none.json"
printf '{"schema_version": 1,\n' >"$T/trunc.json"
expect 3 "$T/trunc.json:2:" -- report "$T/trunc.json"
printf '{"schema_version": 99}\n' >"$T/new.json"
expect 3 "schema_version: 99 is newer than this etok understands" -- report "$T/new.json"
printf '{"schema_version": 1, "tool_version": 5}\n' >"$T/field.json"
expect 3 "tool_version: expected a string" -- report "$T/field.json"
expect 2 "unknown format" -- report "$T/new.json" --format xml
"$ETOK" run --help | grep -q -- '--tokens-regex' || fail "run --help"
"$ETOK" report --help | grep -q -- '--format' || fail "report --help"
echo ok
