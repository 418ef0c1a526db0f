#!/bin/sh
# procenergy_overhead.sh — CPU cost of `etok exporter --per-process` (issue 12: < 1% of a core
# at 1 Hz with 500 processes). Starts N sleeping processes (default 500), then two exporters
# side by side for S seconds (default 60) on the same meters: one with --per-process (1 Hz,
# cgroups walked when a cgroup v2 tree is there), one without; scrapes each once a second like
# Prometheus would; reads each exporter's utime+stime from /proc/PID/stat at the start and the
# end. The difference is the per-process attribution's own cost. Prints the figures that
# bench/procenergy_overhead.md records. Run by hand: `sh bench/procenergy_overhead.sh [N] [S]`.
set -eu
ETOK="${ETOK_BIN:-build/etok}"
N="${1:-500}"
S="${2:-60}"
T=$(mktemp -d /tmp/etok_ppo_XXXXXX)
SLEEPERS=""
EXP=""
cleanup() {
  for p in $EXP; do kill "$p" 2>/dev/null || true; done
  for p in $SLEEPERS; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$T"
}
trap cleanup EXIT INT TERM
i=0
while [ $i -lt "$N" ]; do
  sleep 100000 &
  SLEEPERS="$SLEEPERS $!"
  i=$((i + 1))
done
METER="${ETOK_BENCH_METER:-estimate}"
"$ETOK" exporter --port 0 --meter "$METER" --per-process > /dev/null 2> "$T/pp.log" &
PP=$!
"$ETOK" exporter --port 0 --meter "$METER" > /dev/null 2> "$T/base.log" &
BASE=$!
EXP="$PP $BASE"
port_of() {
  k=0
  while ! grep -q 'listening on' "$1" 2>/dev/null; do
    k=$((k + 1)); [ $k -gt 600 ] && { cat "$1" >&2; exit 1; }
    sleep 0.05
  done
  sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$1" | head -1
}
PPP=$(port_of "$T/pp.log")
PB=$(port_of "$T/base.log")
ticks() { awk '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); print f[12] + f[13] }' "/proc/$1/stat"; }
NPROC=$(ls -d /proc/[0-9]* | wc -l)
a_pp=$(ticks $PP); a_b=$(ticks $BASE)
python3 - "$PPP" "$PB" "$S" "$T/page.txt" <<'PYEOF'
import sys, time, urllib.request
pp, pb, s, out = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4]
end = time.time() + s
while time.time() < end:
    for p in (pp, pb):
        page = urllib.request.urlopen("http://127.0.0.1:%s/metrics" % p, timeout=10).read().decode()
        if p == pp: open(out, "w").write(page)
    time.sleep(1)
PYEOF
z_pp=$(ticks $PP); z_b=$(ticks $BASE)
HZ=$(getconf CLK_TCK)
SERIES=$(grep -c '^etok_process_energy_joules_total{' "$T/page.txt" || true)
CG=$(grep -c '^etok_cgroup_energy_joules_total{' "$T/page.txt" || true)
python3 - "$a_pp" "$z_pp" "$a_b" "$z_b" "$HZ" "$S" "$NPROC" "$SERIES" "$CG" <<'PYEOF'
import sys
a_pp, z_pp, a_b, z_b, hz, s, nproc, series, cg = sys.argv[1:]
hz, s = float(hz), float(s)
pp = (float(z_pp) - float(a_pp)) / hz / s
b = (float(z_b) - float(a_b)) / hz / s
print("processes on the machine: %s; process series on the last page: %s; cgroup series: %s" % (nproc, series, cg))
print("exporter --per-process: %.3f%% of a core; without: %.3f%%; per-process attribution: %.3f%% of a core"
      % (100 * pp, 100 * b, 100 * (pp - b)))
print("(CPU time from utime+stime of /proc/PID/stat over %.0f s, %d ticks/s: resolution %.3f%% of a core)"
      % (s, hz, 100 / hz / s))
PYEOF
