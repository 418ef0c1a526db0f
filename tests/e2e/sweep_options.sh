#!/bin/sh
# sweep_options.sh — every bench option that takes a value (as `etok bench --help` lists them)
# is accepted by `etok sweep --grid` (or refused as one the sweep owns), so the sweep's list of
# bench options cannot fall behind bench. The sweep derives them from bench's option table
# (etok_bench_long_options); this checks the derivation against what bench --help documents:
# options with a value are grid keys and pass through, flags pass through and are no grid keys.
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
# flags (no value): passed through to every run, refused as grid keys
flags=$("$ETOK" bench --help | grep -E '^  (-[a-z], )?--[a-z-]+(  |$)' | sed -E 's/^  (-[a-z], )?--([a-z-]+).*/\2/')
nf=0
for o in $flags; do
  case $o in quiet|help) continue ;; esac # the sweep's own
  nf=$((nf + 1))
  if ! "$ETOK" sweep --dry-run --grid concurrency=1,2 "--$o" -o "$T/s" > "$T/out" 2>&1; then
    echo "FAIL: etok sweep refuses bench flag --$o:"; cat "$T/out"; exit 1
  fi
  grep -q -- "--$o" "$T/out" || { echo "FAIL: bench flag --$o not passed to the runs:"; cat "$T/out"; exit 1; }
  if "$ETOK" sweep --grid "$o=1,2" --dry-run -o "$T/s" > "$T/out" 2>&1; then
    echo "FAIL: bench flag --$o accepted as a grid key"; exit 1
  fi
done
[ "$nf" -ge 1 ] || { echo "FAIL: no bench flags parsed from etok bench --help"; exit 1; }
# the options the sweep owns are not passed through: --seed is the sweep's, given to each run once
"$ETOK" sweep --grid concurrency=1,2 --seed 7 --dry-run -o "$T/s" > "$T/out" 2>&1 || { cat "$T/out"; exit 1; }
[ "$(grep -c -- '--seed=7' "$T/out")" = 2 ] && ! grep -q -- '--seed 7' "$T/out" ||
  { echo "FAIL: --seed should be the sweep's, not passed through:"; cat "$T/out"; exit 1; }
echo "sweep_options: $n bench options accepted by sweep --grid, $nf bench flags passed through"
