#!/bin/sh
# e2e (issue 12): `etok run --per-process` lists the processes of the command's tree with the
# energy attributed to each by CPU-time share (an attribution model): in the text summary and
# in --json "processes" and in the record's config.per_process; never more in all than the
# window's energy. Real /proc, estimate meter.
set -u
ETOK=${ETOK_BIN:-./build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
export XDG_STATE_HOME="$T/state"
# two busy loops of ~2 s: long enough that a sampler starved under a parallel suite still
# sees them (300000 iterations, ~0.5 s, gave an empty list twice in full suites)
CMD='i=0; while [ $i -lt 1000000 ]; do i=$((i+1)); done & j=0; while [ $j -lt 1000000 ]; do j=$((j+1)); done; wait'
"$ETOK" run --meter estimate --idle 0 --tokens 1 --per-process --json -o "$T/r.json" -- sh -c "$CMD" 2> "$T/j.err"
ck "json exit 0" "[ $? = 0 ]"
python3 - "$T/j.err" <<'EOP' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
p = d["processes"]
assert len(p) >= 1 and all(x["comm"] == "sh" and x["energy_j"] >= 0 for x in p), p
assert sum(x["energy_j"] for x in p) <= d["energy_j"] * 1.02 + 1e-6, (p, d["energy_j"])
assert all(x["exited"] for x in p), p  # the command has ended by the report
EOP
# the record keeps the same split (config.per_process), not only the summary
python3 - "$T/j.err" "$T/r.json" <<'EOP' || fail=1
import json, sys
d = json.load(open(sys.argv[1]))
r = json.load(open(sys.argv[2]))
c = r["config"]
assert "per_process" in c, "the record has no config.per_process"
pp = c["per_process"]
assert pp["model"] == "cpu_time_share", pp
key = lambda x: (x["pid"], x["comm"])
assert sorted(map(key, pp["processes"])) == sorted(map(key, d["processes"])), (pp["processes"], d["processes"])
for a in pp["processes"]:
    b = [x for x in d["processes"] if key(x) == key(a)][0]
    assert abs(a["energy_j"] - b["energy_j"]) <= 1e-9 * max(1.0, b["energy_j"]) and a["exited"] == b["exited"], (a, b)
assert abs(pp["processes_j"] - sum(x["energy_j"] for x in pp["processes"])) <= 1e-9 * max(1.0, pp["processes_j"]), pp
assert pp["intervals"] >= 1 and pp["covered_j"] >= pp["processes_j"] - 1e-9 and pp["rest_j"] >= 0, pp
assert pp["unlisted_j"] == 0, pp
assert abs(pp["processes_j"] + pp["unlisted_j"] + pp["rest_j"] - pp["covered_j"]) <= 1e-6 * pp["covered_j"] + 1e-9, pp
EOP
"$ETOK" run --meter estimate --idle 0 --tokens 1 --per-process -o "$T/r2.json" -- sh -c "$CMD" 2> "$T/t.err"
ck "text exit 0" "[ $? = 0 ]"
ck "text: the model is named" "grep -q 'per process .*attribution model' '$T/t.err'"
ck "text: a process line" "grep -Eq 'pid [0-9]+ +sh ' '$T/t.err'"
"$ETOK" run --meter estimate --idle 0 --tokens 1 -o "$T/r3.json" -- true 2> "$T/n.err"
ck "without --per-process: no list" "! grep -q 'per process' '$T/n.err'"
ck "without --per-process: nothing in the record" "! grep -q per_process '$T/r3.json'"
exit $fail
