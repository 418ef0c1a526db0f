#!/bin/sh
# e2e: `etok meters` on fixture roots — lists every meter, says why one is unavailable, makes an
# estimate-only machine obvious, and --json is valid JSON with the same facts.
set -eu
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d /tmp/etok-e2e-meters-XXXXXX)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/sys" "$T/proc"
printf 'cpu  1 0 1 10 0 0 0 0 0 0\ncpu0 1 0 1 10 0 0 0 0 0 0\n' > "$T/proc/stat"
printf 'processor\t: 0\nmodel name\t: Test CPU\n' > "$T/proc/cpuinfo"
export ETOK_SYSFS_ROOT="$T/sys" ETOK_PROC_ROOT="$T/proc" ETOK_NVML_LIB="$T/none.so" ETOK_AMDSMI_LIB="$T/none-amd.so"

fail() { echo "FAIL: $*" >&2; exit 1; }

"$ETOK" meters --help | grep -q "usage: etok meters" || fail "--help"
out=$("$ETOK" meters) || fail "exit status $?"
for m in rapl perf hwmon nvml amdsmi extlog estimate; do
  echo "$out" | grep -q "^$m " || fail "meter $m not listed"
done
echo "$out" | grep -q "^rapl .* no .*missing" || fail "rapl should be missing"
echo "$out" | grep -q "^amdsmi .* no .*missing: cannot load ETOK_AMDSMI_LIB=$T/none-amd.so" || fail "amdsmi: the library tried"
echo "$out" | grep -q "^estimate .* yes" || fail "estimate should be available"
echo "$out" | grep -q "Only the \`estimate\` meter is available" || fail "estimate-only not made obvious"

json=$("$ETOK" meters --json)
echo "$json" | python3 -c 'import json,sys; a=json.load(sys.stdin); assert [m["name"] for m in a]==["rapl","perf","hwmon","nvml","amdsmi","extlog","estimate"]; assert a[6]["available"] and a[6]["source"]=="estimate"; assert not a[4]["available"] and a[4]["why"].startswith("missing"); assert not a[0]["available"] and a[0]["why"].startswith("missing")' \
  || fail "--json content"

# the fake amd-smi library (tests/fakes/fake_amdsmi.c): two GPUs listed with their counter
FAKE_AMD="${ETOK_BUILD_DIR:-build}/fake_amdsmi.so"
[ -f "$FAKE_AMD" ] || fail "no $FAKE_AMD (run through ctest)"
out=$(ETOK_AMDSMI_LIB="$FAKE_AMD" FAKE_AMDSMI_SOCKETS=2 "$ETOK" meters) || fail "exit status $? with the fake amd-smi"
echo "$out" | grep -q "^amdsmi .* yes .*gpu0\[0000:0c:00.0, energy counter 15.3 uJ\],gpu1\[" || fail "amdsmi with the fake library: $out"
echo "$out" | grep -q "Only the" && fail "estimate-only note with an amdsmi counter"

# a RAPL zone whose energy_uj is unreadable: listed with the permission reason. The fixture is
# what current kernels have (energy_uj mode 0400, owned by root) and etok runs as an
# unprivileged user, so open() really fails with EACCES (the suite runs as root, and root
# reads any file whatever its mode: chmod alone would test nothing). Without root there is no
# one to drop to: then the file is the runner's own with mode 000, which a non-root owner
# cannot read either.
mkdir -p "$T/sys/class/powercap/intel-rapl:0"
echo package-0 > "$T/sys/class/powercap/intel-rapl:0/name"
echo 1000 > "$T/sys/class/powercap/intel-rapl:0/energy_uj"
echo 262143328850 > "$T/sys/class/powercap/intel-rapl:0/max_energy_range_uj"
if [ "$(id -u)" -eq 0 ]; then
  command -v setpriv >/dev/null || fail "running as root, setpriv (util-linux) is needed to drop privileges"
  chmod 0755 "$T" && chmod -R a+rX "$T"
  chmod 0400 "$T/sys/class/powercap/intel-rapl:0/energy_uj"
  as_nobody() { setpriv --reuid=65534 --regid=65534 --clear-groups "$@"; }
  # the drop is real: nobody cannot read the file, root can
  as_nobody cat "$T/sys/class/powercap/intel-rapl:0/energy_uj" >/dev/null 2>&1 && fail "nobody can read a 0400 root file"
  cat "$T/sys/class/powercap/intel-rapl:0/energy_uj" >/dev/null || fail "root cannot read the fixture"
  out=$(as_nobody "$ETOK" meters) || fail "etok meters as nobody: exit status $?"
  echo "$out" | grep -q "^rapl .* no .*permission: .*root-only" || fail "permission reason (as nobody): $out"
  # and root, reading the same 0400 file, gets the counter
  "$ETOK" meters | grep -q "^rapl .* yes .*package-0" || fail "root reads the 0400 counter"
else
  chmod 000 "$T/sys/class/powercap/intel-rapl:0/energy_uj"
  "$ETOK" meters | grep -q "^rapl .* no .*permission: .*root-only" || fail "permission reason"
fi
chmod 644 "$T/sys/class/powercap/intel-rapl:0/energy_uj"
"$ETOK" meters | grep -q "^rapl .* yes .*package-0" || fail "readable rapl"
"$ETOK" meters | grep -q "Only the" && fail "estimate-only note with a real counter"

set +e
"$ETOK" meters --bogus 2>"$T/err"; rc=$?
set -e
[ "$rc" -eq 2 ] || fail "unknown option exit $rc"
grep -q "unknown option '--bogus'" "$T/err" || fail "unknown option message"
echo "ok"
