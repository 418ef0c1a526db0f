#!/bin/sh
# e2e: issue 9 §1, §2, §10 — an output path never destroys what it points at (a character
# device stays a device, a symlink stays a link and its target is written, a FIFO is written
# through, a failed write leaves the old file), user-given inputs are bounded (/dev/zero as a
# scenario, record, eval set or power-meter log: exit 3 naming it, small memory), and lost
# output is exit 5 with a message (> /dev/full, -o /dev/full).
set -u
ETOK=${ETOK_BIN:-build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }

# run_etok CODE PATTERN ARGS...: exit code, and stderr holds PATTERN (stdout to $T/out)
run_etok() {
    want=$1; pat=$2; shift 2
    "$ETOK" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ "$rc" -eq "$want" ] || fail "etok $*: exit $rc, want $want: $(cat "$T/err")"
    [ -z "$pat" ] || grep -q -- "$pat" "$T/err" || fail "etok $*: stderr lacks '$pat': $(cat "$T/err")"
}
is_record() { grep -q '"traces"' "$1" 2>/dev/null; }

# ---- §1 output paths -------------------------------------------------------------------
# a character device (mknod as root; else a symlink to /dev/null shows the same)
if [ "$(id -u)" -eq 0 ] && mknod "$T/n" c 1 3 2>/dev/null; then
    run_etok 0 "" run --meter estimate --idle 0 -o "$T/n" -- true
    [ -c "$T/n" ] || fail "run -o: the character device became $(stat -c %F "$T/n")"
    run_etok 0 "" tpf "$SRC/data/scenarios/h100x8-llama8b-kv-int8.json" --sweep facility.power_w=1e3:1e6:5 --csv "$T/n" --svg "$T/n"
    [ -c "$T/n" ] || fail "tpf --csv/--svg: the character device became $(stat -c %F "$T/n")"
    run_etok 0 "" report "$SRC/tests/fixtures/records/bench_hand.json" --format json -o "$T/n"
    [ -c "$T/n" ] || fail "report -o: the character device became $(stat -c %F "$T/n")"
else
    echo "note: not root or mknod refused; the device case is covered through a symlink to /dev/null"
fi
ln -s /dev/null "$T/null-link"
run_etok 0 "" run --meter estimate --idle 0 -o "$T/null-link" -- true
[ -L "$T/null-link" ] || fail "run -o: the link to /dev/null was replaced"
[ -c /dev/null ] || fail "/dev/null is no longer a character device"

# a symlink: the link stays, its target gets the record (dangling: created)
ln -s target.json "$T/link.json"
run_etok 0 "" run --meter estimate --idle 0 -o "$T/link.json" -- true
[ -L "$T/link.json" ] || fail "run -o: the symlink was replaced by a $(stat -c %F "$T/link.json")"
is_record "$T/target.json" || fail "run -o link: target.json holds no record"
echo old > "$T/t2.svg" && chmod 600 "$T/t2.svg" && ln -s t2.svg "$T/l2.svg"
run_etok 0 "" tpf "$SRC/data/scenarios/h100x8-llama8b-kv-int8.json" --sweep facility.power_w=1e3:1e6:5 --svg "$T/l2.svg"
[ -L "$T/l2.svg" ] || fail "tpf --svg: the symlink was replaced"
grep -q "</svg>" "$T/t2.svg" || fail "tpf --svg link: target not written"
[ "$(stat -c %a "$T/t2.svg")" = 600 ] || fail "tpf --svg link: target mode $(stat -c %a "$T/t2.svg"), want 600"

# a FIFO: written straight through, stays a FIFO
mkfifo "$T/fifo"
cat "$T/fifo" > "$T/from-fifo" &
reader=$!
run_etok 0 "" run --meter estimate --idle 0 -o "$T/fifo" -- true
if [ -p "$T/fifo" ]; then
    wait "$reader"
else
    fail "run -o fifo: no longer a FIFO"
    kill "$reader" 2>/dev/null
fi
is_record "$T/from-fifo" || fail "run -o fifo: the reader got no record"

# a directory is refused before anything runs
run_etok 5 "Is a directory" run --meter estimate --idle 0 -o "$T" -- true

# a write that fails half-way (a file size limit stands in for a full disk): exit 5, the old
# report intact, no temporary file left
printf '{"old": true}\n' > "$T/keep.json"
( trap '' XFSZ; ulimit -f 8; exec "$ETOK" report "$SRC/tests/fixtures/records/bench_hand.json" --format json -o "$T/keep.json" ) \
    >"$T/out" 2>"$T/err"
rc=$?
[ $rc -eq 5 ] || fail "report -o under a full disk: exit $rc, want 5: $(cat "$T/err")"
[ "$(cat "$T/keep.json")" = '{"old": true}' ] || fail "report -o under a full disk: the old file changed"
ls -a "$T" | grep -q 'etok-tmp' && fail "a temporary file was left: $(ls -a "$T")"

# ---- §10 write errors: exit 5 with a message --------------------------------------------
for fmt in md json html; do
    run_etok 5 "/dev/full" report "$SRC/tests/fixtures/records/bench_hand.json" --format $fmt -o /dev/full
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "report --format $fmt -o /dev/full: want one line: $(cat "$T/err")"
done
for args in "tpf $SRC/data/scenarios/h100x8-llama8b-kv-int8.json --json" "tpf $SRC/data/scenarios/h100x8-llama8b-kv-int8.json" \
            "meters" "report $SRC/tests/fixtures/records/bench_hand.json --format md" "--help" "tpf --help"; do
    # shellcheck disable=SC2086
    "$ETOK" $args >/dev/full 2>"$T/err"
    rc=$?
    [ $rc -eq 5 ] || fail "etok $args > /dev/full: exit $rc, want 5"
    grep -q "cannot write to standard output" "$T/err" || fail "etok $args > /dev/full: no message: $(cat "$T/err")"
    [ "$(wc -l <"$T/err")" -eq 1 ] || fail "etok $args > /dev/full: want one line: $(cat "$T/err")"
done

# ---- §2 bounded inputs: exit 3 naming the file, small memory ------------------------------
TIME=
[ -x /usr/bin/time ] && TIME="/usr/bin/time -f %M -o $T/rss"
check_bad_input() { # PATTERN ARGS...
    pat=$1; shift
    # shellcheck disable=SC2086
    timeout 120 $TIME "$ETOK" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    [ $rc -eq 3 ] || fail "etok $*: exit $rc, want 3: $(cat "$T/err")"
    grep -q -- "$pat" "$T/err" || fail "etok $*: stderr lacks '$pat': $(cat "$T/err")"
    if [ -n "$TIME" ]; then
        kb=$(tail -n 1 "$T/rss")
        [ "$kb" -lt 262144 ] || fail "etok $*: peak RSS $kb KB"
        echo "etok $*: exit $rc, peak RSS $kb KB"
    fi
}
check_bad_input "/dev/zero: scenario: not a regular file" tpf /dev/zero
check_bad_input "/dev/zero: run record: not a regular file" report /dev/zero
check_bad_input "/dev/zero: run record: not a regular file" tpf --from-run /dev/zero h100x8-llama8b-kv-int8
check_bad_input "/dev/zero: eval set: not a regular file" bench --evals /dev/zero -o "$T/bench-out"
check_bad_input "/dev/zero: power-meter log: not a regular file" run --meter extlog --extlog /dev/zero -- true
mkfifo "$T/in.fifo"
check_bad_input "in.fifo: scenario: not a regular file" tpf "$T/in.fifo"
truncate -s 20G "$T/huge.json"
check_bad_input "huge.json: run record: 21474836480 bytes, over the limit of 256 MiB" report "$T/huge.json"
check_bad_input "huge.json: scenario: 21474836480 bytes, over the limit of 4 MiB" tpf "$T/huge.json"
check_bad_input "huge.json:1: contains a NUL byte" run --meter extlog --extlog "$T/huge.json" -- true

[ $failed -eq 0 ] || exit 1
echo "io_paths: ok"
