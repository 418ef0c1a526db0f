#!/bin/sh
# cli_help.sh — every command listed by `etok --help` has a --help (exit 0, a usage line, its
# exit codes), rejects an unknown option with exit 2 and one line naming it, and docs/CLI.md
# holds exactly that --help text (regenerate: scripts/gen_cli_md.py build/etok > docs/CLI.md).
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }

"$ETOK" --help > "$T/top" || bad "etok --help exit $?"
cmds=$(sed -n 's/^  \([a-z][a-z]*\)  .*/\1/p' "$T/top")
[ -n "$cmds" ] || bad "etok --help lists no commands"
for c in $cmds; do
    "$ETOK" "$c" --help > "$T/help" 2> "$T/err"; rc=$?
    [ $rc = 0 ] || bad "etok $c --help: exit $rc"
    grep -q "^usage: etok $c" "$T/help" || bad "etok $c --help: no 'usage: etok $c' line"
    grep -q "exit codes" "$T/help" || bad "etok $c --help: no exit codes"
    [ -s "$T/err" ] && bad "etok $c --help wrote to stderr"
    "$ETOK" "$c" --no-such-option > "$T/out" 2> "$T/err" < /dev/null; rc=$?
    [ $rc = 2 ] || bad "etok $c --no-such-option: exit $rc (want 2)"
    [ "$(wc -l < "$T/err")" = 1 ] || { bad "etok $c --no-such-option: not one line:"; cat "$T/err"; }
    grep -q "^etok $c: .*--no-such-option" "$T/err" || bad "etok $c: the error does not name the option: $(cat "$T/err")"
    grep -q "^## etok $c\$" "$SRC/docs/CLI.md" || bad "docs/CLI.md has no section for etok $c"
done
# the documented --help blocks are the binary's
if command -v python3 > /dev/null 2>&1; then
    python3 "$SRC/scripts/gen_cli_md.py" "$ETOK" > "$T/CLI.md" || bad "gen_cli_md.py failed"
    cmp -s "$T/CLI.md" "$SRC/docs/CLI.md" || { bad "docs/CLI.md is stale (scripts/gen_cli_md.py build/etok > docs/CLI.md)"; diff "$SRC/docs/CLI.md" "$T/CLI.md" | head -20; }
fi
[ $fail = 0 ] && echo "cli_help: ok"
exit $fail
