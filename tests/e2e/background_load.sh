#!/bin/sh
# e2e (issue 17): a background busy load that starts during the window is detected, warned
# about and recorded. The machine is shared, so a real busy loop's effect on /proc/stat is not
# predictable (a saturated machine shows no change at all): the test runs `etok run` on a
# fixture /proc (ETOK_PROC_ROOT) whose stat the wrapped command itself advances, one core busy
# outside its process group, only while it runs. A control run with a still stat must not warn.
set -u
ETOK=${ETOK_BIN:-./build/etok}
T=$(mktemp -d)
trap '[ -n "${ETOK_KEEP:-}" ] && cp -r "$T" "$ETOK_KEEP"; rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
mkdir -p "$T/proc"
printf 'processor\t: 0\nmodel name\t: Fixture CPU\n' > "$T/proc/cpuinfo"
printf 'cpu  0 0 0 0\ncpu0 1000 0 0 1000 0 0 0 0\ncpu1 1000 0 0 1000 0 0 0 0\n' > "$T/proc/stat"
# the wrapped command: 30 steps, each 10 jiffies on both cores, one core busy (background)
cat > "$T/writer.sh" <<'EOS'
b=1000; i=1000; n=0
while [ $n -lt 30 ]; do
  b=$((b + 10)); n=$((n + 1))
  printf 'cpu  0 0 0 0\ncpu0 %d 0 0 %d 0 0 0 0\ncpu1 1000 0 0 %d 0 0 0 0\n' $b $i $((i + 10 * n)) > "$1/stat.tmp"
  mv "$1/stat.tmp" "$1/stat"
  sleep 0.05
done
EOS
ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 1 --tokens 10 --boundary process -o "$T/loop.json" \
    -- sh "$T/writer.sh" "$T/proc" 2> "$T/loop.err"
ck "run exit 0" "[ $? = 0 ]"
ck "warning printed" "grep -q 'background load rose' '$T/loop.err'"
ck "process figure printed beside the device figure" "grep -q 'process J/token' '$T/loop.err' && grep -q 'J/token ' '$T/loop.err'"
python3 - "$T/loop.json" <<'EOP' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))["cpu_load"]
p = c["phases"]
assert c["scope"] == "process_group", c["scope"]
assert c["background_changed"] is True, c
assert p["idle"]["valid"] and p["window"]["valid"], p
assert p["idle"]["background_busy_cores"] < 0.05, p["idle"]
assert 0.5 < p["window"]["background_busy_cores"] <= 1.01, p["window"]
assert abs(p["window"]["own_busy_cores"]) < 1e-9, p["window"]
EOP
# control: the same run with a still /proc/stat
printf 'cpu  0 0 0 0\ncpu0 1000 0 0 1000 0 0 0 0\ncpu1 1000 0 0 1000 0 0 0 0\n' > "$T/proc/stat"
ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 1 --tokens 10 -o "$T/quiet.json" -- sleep 0.5 2> "$T/quiet.err"
ck "control exit 0" "[ $? = 0 ]"
ck "control: no background warning" "! grep -q 'warning: background' '$T/quiet.err'"
python3 - "$T/quiet.json" <<'EOP' || fail=1
import json, sys
c = json.load(open(sys.argv[1]))["cpu_load"]
assert c["background_changed"] is False, c
EOP
# --json carries the background block (and the process figure with --boundary process)
ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 1 --tokens 10 --boundary process --json -o "$T/j.json" \
    -- sleep 0.5 2> "$T/j.err"
ck "json run exit 0" "[ $? = 0 ]"
python3 - "$T/j.err" <<'EOP' || fail=1
import json, sys
b = json.load(open(sys.argv[1]))["background"]
assert b["scope"] == "process_group", b
assert set(b["phases"]) == {"idle", "warmup", "window"}, b
assert b["phases"]["window"]["valid"] is True, b
assert b["changed"] is False and b["warning"] is None, b
assert "note" in b["process"] and b["process"]["source"] == "attribution-model", b["process"]
EOP
ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 0 --json -o "$T/k.json" -- true 2> "$T/k.err"
python3 - "$T/k.err" <<'EOP' || fail=1
import json, sys
b = json.load(open(sys.argv[1]))["background"]
assert "process" not in b and b["phases"]["idle"]["valid"] is False, b
EOP
"$ETOK" run --boundary nodes -- true 2> "$T/bad.err"
ck "bad --boundary -> usage" "[ $? = 2 ] && grep -q 'boundary' '$T/bad.err'"
exit $fail
