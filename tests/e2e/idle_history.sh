#!/bin/sh
# e2e (issue 17): the per-host history of quiet idle baselines. Three quiet runs on a fixture
# /proc (ETOK_PROC_ROOT, still stat: the estimate model's idle, 2 W) are remembered under
# $XDG_STATE_HOME; a fourth whose baseline has both cores busy (a writer outside the run
# advances the fixture stat: 8 W) is warned about, in the summary and the record, and not
# remembered; --no-idle-history neither warns nor writes.
set -u
ETOK=${ETOK_BIN:-./build/etok}
T=$(mktemp -d)
W=""
trap '[ -n "$W" ] && kill "$W" 2>/dev/null; rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
export XDG_STATE_HOME="$T/state"
mkdir -p "$T/proc"
printf 'processor\t: 0\nmodel name\t: Fixture CPU\n' > "$T/proc/cpuinfo"
printf 'cpu  0 0 0 0\ncpu0 1000 0 0 1000 0 0 0 0\ncpu1 1000 0 0 1000 0 0 0 0\n' > "$T/proc/stat"
for i in 1 2 3; do
  ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 0.5 --tokens 1 -o "$T/q$i.json" -- true 2> "$T/q$i.err"
  ck "quiet run $i exit 0" "[ $? = 0 ]"
done
H=$(ls "$T"/state/etok/idle-history-*.tsv 2>/dev/null | head -1)
ck "history file written" "[ -n '$H' ] && [ \$(wc -l < '$H') = 3 ]"
ck "no history warning while quiet" "! grep -q 'earlier quiet baselines' '$T/q3.err'"
# both cores busy from now on (outside the run's process group: background)
cat > "$T/writer.sh" <<'EOS'
b=1000
while :; do
  b=$((b + 5))
  printf 'cpu  0 0 0 0\ncpu0 %d 0 0 1000 0 0 0 0\ncpu1 %d 0 0 1000 0 0 0 0\n' $b $b > "$1/stat.tmp"
  mv "$1/stat.tmp" "$1/stat"
  sleep 0.05
done
EOS
sh "$T/writer.sh" "$T/proc" &
W=$!
sleep 0.3
ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 1 --tokens 1 -o "$T/busy.json" -- true 2> "$T/busy.err"
ck "busy run exit 0" "[ $? = 0 ]"
ck "history warning in the summary" "grep -q 'far above this host.s earlier quiet baselines' '$T/busy.err'"
python3 - "$T/busy.json" <<'EOP' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
f = [x for x in r["faults"] if x["meter"] == "idle_history"]
assert len(f) == 1 and f[0]["kind"] == "warning" and "median 2 W" in f[0]["message"], r["faults"]
assert r["idle_start_s"] <= f[0]["t_s"] <= r["idle_end_s"], f
EOP
ck "busy baseline not remembered" "[ \$(wc -l < '$H') = 3 ]"
ETOK_PROC_ROOT="$T/proc" "$ETOK" run --meter estimate --idle 1 --tokens 1 --no-idle-history -o "$T/off.json" -- true 2> "$T/off.err"
ck "--no-idle-history exit 0" "[ $? = 0 ]"
ck "--no-idle-history: no history warning" "! grep -q 'earlier quiet baselines' '$T/off.err'"
ck "--no-idle-history: file untouched" "[ \$(wc -l < '$H') = 3 ]"
exit $fail
