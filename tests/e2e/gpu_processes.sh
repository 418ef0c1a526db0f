#!/bin/sh
# e2e (issue 17): another process holding the GPU during the idle baseline is warned about, in
# the run summary and the record (a fault gpu_processes / warning inside the baseline), from
# NVML's running compute processes — the fake NVML (ETOK_NVML_LIB) lists FAKE_NVML_PROCS on
# GPU 0. Without any, no warning. A run without NVML is unchanged (covered by every other test).
set -u
ETOK=${ETOK_BIN:-./build/etok}
FAKE=${ETOK_BUILD_DIR:-build}/fake_nvml.so
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }
export ETOK_NVML_LIB="$FAKE" XDG_STATE_HOME="$T/state"
FAKE_NVML_PROCS=4242,4343 "$ETOK" run --meter nvml --idle 0.3 --tokens 1 -o "$T/b.json" -- true 2> "$T/b.err"
ck "exit 0" "[ $? = 0 ]"
ck "warning printed" "grep -q 'another process holds the GPU during the idle baseline (gpu0 pid 4242 (1024 MiB), gpu0 pid 4343' '$T/b.err'"
python3 - "$T/b.json" <<'EOP' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
f = [x for x in r["faults"] if x["meter"] == "gpu_processes"]
assert len(f) == 1 and f[0]["kind"] == "warning" and "pid 4343" in f[0]["message"], r["faults"]
assert r["idle_start_s"] <= f[0]["t_s"] <= r["idle_end_s"], f
EOP
"$ETOK" run --meter nvml --idle 0.3 --tokens 1 -o "$T/q.json" -- true 2> "$T/q.err"
ck "quiet exit 0" "[ $? = 0 ]"
ck "quiet: no GPU warning" "! grep -q 'holds the GPU' '$T/q.err'"
python3 - "$T/q.json" <<'EOP' || fail=1
import json, sys
r = json.load(open(sys.argv[1]))
assert not [x for x in r["faults"] if x["meter"] == "gpu_processes"], r["faults"]
EOP
exit $fail
