#!/bin/sh
# e2e (issue 12): `etok exporter --per-process` on a fixture node: a RAPL counter
# (ETOK_SYSFS_ROOT) at 10 W, a /proc (ETOK_PROC_ROOT) whose stat shows one of two cores busy,
# process 100 taking 3/4 of it and process 200 1/4, and a cgroup v2 tree (sys/fs/cgroup) whose
# /a holds 3/4. One python writer advances them all every 0.1 s. The page must carry the
# process and cgroup series in that ratio, the unattributed rest, and balance the books
# (series + exited + unattributed = covered); promtool checks it when installed.
set -eu
ETOK="${ETOK_BIN:-build/etok}"
T=$(mktemp -d /tmp/etok_epp_XXXXXX)
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
HZ=$(getconf CLK_TCK)
z="$T/sys/class/powercap/intel-rapl:0"
mkdir -p "$z" "$T/proc/100" "$T/proc/200" "$T/sys/fs/cgroup/a"
echo package-0 > "$z/name"
echo 1000000 > "$z/energy_uj"
echo 262143328850 > "$z/max_energy_range_uj"
python3 - "$T" "$HZ" > /dev/null 2>&1 <<'PYEOF' &
import os, sys, time
t, hz = sys.argv[1], int(sys.argv[2])
def put(path, text):
    with open(path + ".tmp", "w") as f: f.write(text)
    os.replace(path + ".tmp", path)
e = 1000000; busy = 0; total = 0; a = 0.0; b = 0.0; usage = 0.0; ua = 0.0; k = 0
while True:
    # one tick = 0.1 s: 1 J; two cores, one busy; 100 takes 3/4 of it, 200 1/4
    e += 1000000; k += 1
    busy = k * hz // 10; total = 2 * k * hz // 10
    a = k * hz * 3 // 40; b = k * hz // 40
    usage = k * 100000; ua = k * 75000
    put(t + "/proc/100/stat", "100 (engine a) S 1 100 100 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 5 0 0\n" % a)
    put(t + "/proc/200/stat", "200 (engine b) S 1 200 200 0 -1 0 0 0 0 0 %d 0 0 0 20 0 1 0 6 0 0\n" % b)
    put(t + "/proc/stat", "cpu  0 0 0 0\ncpu0 %d 0 0 %d 0 0 0 0\ncpu1 0 0 0 %d 0 0 0 0\n" % (busy, total // 2 - busy, total // 2))
    put(t + "/sys/fs/cgroup/cpu.stat", "usage_usec %d\n" % usage)
    put(t + "/sys/fs/cgroup/a/cpu.stat", "usage_usec %d\n" % ua)
    put(t + "/sys/class/powercap/intel-rapl:0/energy_uj", "%d\n" % e)
    time.sleep(0.1)
PYEOF
PIDS="$PIDS $!"
i=0
while [ ! -e "$T/proc/stat" ] || [ ! -e "$T/sys/fs/cgroup/cpu.stat" ]; do
  i=$((i + 1)); [ $i -gt 200 ] && { echo "writer did not start"; exit 1; }
  sleep 0.05
done
ETOK_SYSFS_ROOT="$T/sys" ETOK_PROC_ROOT="$T/proc" "$ETOK" exporter --port 0 --meter rapl --rate-hz 20 \
  --per-process --per-process-hz 5 > /dev/null 2> "$T/log" &
PIDS="$PIDS $!"
i=0
while ! grep -q 'listening on' "$T/log" 2>/dev/null; do
  i=$((i + 1)); [ $i -gt 600 ] && { cat "$T/log"; exit 1; }
  sleep 0.05
done
grep -q 'per-process and per-cgroup energy every 0.2 s (an attribution model' "$T/log"
P=$(sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/log" | head -1)
python3 - "$P" <<'PYEOF'
import re, sys, time, urllib.request
url = "http://127.0.0.1:%s/metrics" % sys.argv[1]
def page():
    return urllib.request.urlopen(url, timeout=10).read().decode()
def val(text, name):
    m = re.search(r"^" + re.escape(name) + r" ([0-9.e+-]+)$", text, re.M)
    return float(m.group(1)) if m else None
deadline = time.time() + 60
while True:  # wait for a few joules of attribution (a loaded machine may start slowly)
    t = page()
    cov = val(t, "etok_process_attribution_covered_energy_joules_total")
    if cov is not None and cov >= 5: break
    assert time.time() < deadline, t
    time.sleep(0.3)
p100 = val(t, 'etok_process_energy_joules_total{pid="100",comm="engine a"}')
p200 = val(t, 'etok_process_energy_joules_total{pid="200",comm="engine b"}')
assert p100 and p200, t
assert 2.2 < p100 / p200 < 4.0, (p100, p200)
un = val(t, "etok_process_unattributed_energy_joules_total")
ex = val(t, "etok_process_exited_energy_joules_total")
assert abs(p100 + p200 + un + ex - cov) < 1e-6 * cov, (p100, p200, un, ex, cov)
ca = val(t, 'etok_cgroup_energy_joules_total{cgroup="/a"}')
cr = val(t, 'etok_cgroup_energy_joules_total{cgroup="/"}')
cu = val(t, "etok_cgroup_unattributed_energy_joules_total")
assert ca and cr and 2.2 < ca / cr < 4.0, (ca, cr)
assert abs(ca + cr + cu + val(t, "etok_cgroup_removed_energy_joules_total") - cov) < 1e-6 * cov
assert "ATTRIBUTION MODEL" in t and 'etok_process_attribution_up 1' in t
assert 'etok_process_attribution_info{model="cpu-time-share",idle_power_w="0"} 1' in t

PYEOF
if command -v promtool >/dev/null 2>&1; then
  python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' \
    "http://127.0.0.1:$P/metrics" | promtool check metrics
fi
"$ETOK" exporter --idle-power 5 2> "$T/u.err" && exit 1 || [ $? = 2 ]
grep -q 'need --per-process' "$T/u.err"
echo ok
