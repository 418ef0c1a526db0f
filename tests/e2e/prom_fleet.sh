#!/bin/sh
# prom_fleet.sh — a real Prometheus on loopback scrapes two `etok exporter`s and the fleet PromQL
# of docs/PROMETHEUS.md returns the expected J/token.
#
# Each exporter reads a fixture RAPL tree (ETOK_SYSFS_ROOT) whose package counter this script
# advances, and a --tokens-file advanced in the same tick: node A adds 4 J and 20 output tokens
# per tick, node B 6 J and 20 tokens. Whatever the tick timing, the fleet's J/token is
# (4 + 6) / (20 + 20) = 0.25 (A alone would give 0.2, B alone 0.3; equal token rates keep the
# ratio insensitive to the two nodes' scrape phases). promtool also checks the exporter page.
# Skips (exit 0 with a note) when prometheus/promtool are not installed.
set -eu
ETOK="${ETOK_BIN:-build/etok}"
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "prom_fleet: SKIP (prometheus/promtool not installed)"
  exit 0
fi
T=$(mktemp -d /tmp/etok_prom_XXXXXX)
PIDS=""
cleanup() {
  for p in $PIDS; do kill "$p" 2>/dev/null || true; done
  for p in $PIDS; do wait "$p" 2>/dev/null || true; done
  rm -rf "$T"
}
trap cleanup EXIT INT TERM

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}
http_get() { # URL -> body on stdout
  python3 -c 'import sys,urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"
}

for n in a b; do
  z="$T/$n/sys/class/powercap/intel-rapl:0"
  mkdir -p "$z"
  echo package-0 > "$z/name"
  echo 1000000 > "$z/energy_uj"
  echo 262143328850 > "$z/max_energy_range_uj"
  echo "output 0" > "$T/$n/tokens"
done

for n in a b; do
  ETOK_SYSFS_ROOT="$T/$n/sys" "$ETOK" exporter --port 0 --meter rapl --rate-hz 20 --tokens-file "$T/$n/tokens" \
    > /dev/null 2> "$T/$n/log" &
  PIDS="$PIDS $!"
done
port_of() { # node -> port, once the exporter says it listens
  i=0
  while ! grep -q 'listening on' "$T/$1/log" 2>/dev/null; do
    i=$((i + 1))
    if [ $i -gt 600 ]; then echo "prom_fleet: exporter $1 did not start:" >&2; cat "$T/$1/log" >&2; exit 1; fi
    sleep 0.05
  done
  sed -n 's/.*127\.0\.0\.1:\([0-9]*\).*/\1/p' "$T/$1/log" | head -1
}
PA=$(port_of a)
PB=$(port_of b)

# the exporter page passes Prometheus' linter, token series included
http_get "http://127.0.0.1:$PA/metrics" > "$T/page.txt"
promtool check metrics < "$T/page.txt"
grep -q '^etok_energy_joules_total{meter="rapl",domain="package-0",boundary="device",source="counter"}' "$T/page.txt"
grep -q '^etok_tokens_total{kind="output"} 0$' "$T/page.txt"

# the nodes work: counters and token files advance together, tick by tick. One python process
# (no forks per tick), so ticks stay regular on a loaded machine: the fewer ticks a rate() window
# holds, the more one tick's skew between a node's energy and its tokens weighs.
python3 - "$T" > /dev/null 2>&1 <<'PYEOF' &
import os, sys, time
t = sys.argv[1]
def put(path, text):
    with open(path + ".tmp", "w") as f: f.write(text)
    os.replace(path + ".tmp", path)
e = {"a": 1000000, "b": 1000000}; tok = 0
while True:
    e["a"] += 4000000; e["b"] += 6000000; tok += 20
    for n in ("a", "b"):
        put("%s/%s/sys/class/powercap/intel-rapl:0/energy_uj" % (t, n), "%d\n" % e[n])
        put("%s/%s/tokens" % (t, n), "output %d\n" % tok)
    time.sleep(0.1)
PYEOF
PIDS="$PIDS $!"

# Prometheus on a free port. Another process may bind the port between free_port and
# prometheus: then it exits at once ("address already in use") and another port is tried.
start_prometheus() {
  for attempt in 1 2 3 4 5; do
    PP=$(free_port)
    cat > "$T/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: etok
    static_configs:
      - targets: ['127.0.0.1:$PA', '127.0.0.1:$PB']
EOF
    prometheus --config.file "$T/prometheus.yml" --storage.tsdb.path "$T/tsdb" \
      --web.listen-address "127.0.0.1:$PP" --log.level=warn > "$T/prom.log" 2>&1 < /dev/null &
    PROM=$!
    PIDS="$PIDS $PROM"
    i=0
    while [ $i -lt 600 ] && kill -0 "$PROM" 2>/dev/null; do # up to 60 s to become ready
      if http_get "http://127.0.0.1:$PP/-/ready" > /dev/null 2>&1; then return 0; fi
      i=$((i + 1))
      sleep 0.1
    done
    kill "$PROM" 2>/dev/null || true
    wait "$PROM" 2>/dev/null || true
    grep -q 'address already in use' "$T/prom.log" || break
  done
  echo "prom_fleet: prometheus did not start:" >&2
  cat "$T/prom.log" >&2
  exit 1
}
start_prometheus

# the fleet query of docs/PROMETHEUS.md, over a window that fits a short test
Q='sum(rate(etok_energy_joules_total[6s])) / sum(rate(etok_tokens_total{kind="output"}[6s]))'
python3 - "$PP" "$Q" <<'EOF'
import json, sys, time, urllib.parse, urllib.request
port, q = sys.argv[1], sys.argv[2]
base = "http://127.0.0.1:%s/api/v1/query?query=" % port
def query(expr, tries=1):
    for k in range(tries): # a loaded machine may answer late: retry before calling it a failure
        try:
            r = json.load(urllib.request.urlopen(base + urllib.parse.quote(expr), timeout=10))
            return r["data"]["result"]
        except Exception:
            if k == tries - 1: raise
            time.sleep(0.5)
deadline, last = time.time() + 60, "prometheus not answering"
while time.time() < deadline: # both targets up
    time.sleep(0.5)
    try:
        up = query("sum(up)")
        if up and up[0]["value"][1] == "2": break
        last = "targets up: %s" % up
    except Exception as e:
        last = "prometheus not answering yet: %s" % e
else:
    print("prom_fleet: FAIL: %s" % last); sys.exit(1)
# let the rate() window lie wholly after the exporters' start (rate() limits its extrapolation
# near a counter's zero, which would bias the first windows), then average three evaluations
time.sleep(7)
vals = []
for _ in range(3):
    res = query(q, tries=5)
    if res: vals.append(float(res[0]["value"][1]))
    time.sleep(1)
if len(vals) < 3:
    print("prom_fleet: FAIL: no result for %s" % q); sys.exit(1)
v = sum(vals) / 3
ok = abs(v - 0.25) <= 0.05 * 0.25  # window-edge effects of rate() over 6 s of 1 s scrapes
print("prom_fleet: fleet J/token %.4f (%s; expected 0.25 +-5%%; node A alone 0.2, B alone 0.3)%s"
      % (v, ", ".join("%.4f" % x for x in vals), "" if ok else " FAIL"))
sys.exit(0 if ok else 1)
EOF
