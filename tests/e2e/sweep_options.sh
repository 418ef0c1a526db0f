#!/bin/sh
# sweep_options.sh — every bench option that takes a value (as `etok bench --help` lists them)
# is accepted by `etok sweep --grid` (or refused as one the sweep owns), so the sweep's list of
# bench options cannot fall behind bench.
set -u
ETOK=${ETOK_BIN:-build/etok}
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
opts=$("$ETOK" bench --help | grep -E '^  (-[a-z], )?--[a-z-]+ [A-Z]' | sed -E 's/^  (-[a-z], )?--([a-z-]+) .*/\2/')
[ -n "$opts" ] || { echo "FAIL: no options parsed from etok bench --help"; exit 1; }
n=0
for o in $opts; do
  case $o in output|seed|idle) continue ;; esac # the sweep sets these itself
  n=$((n + 1))
  if "$ETOK" sweep --grid "$o=1,2" --dry-run -o "$T/s" > "$T/out" 2>&1; then continue; fi
  if grep -q "is not a bench option" "$T/out"; then
    echo "FAIL: etok sweep does not know bench option --$o:"; cat "$T/out"; exit 1
  fi
done
echo "sweep_options: $n bench options accepted by sweep --grid"
