#!/bin/sh
# `make run`: the main job — energy-to-token evaluation of the built-in engine on the default
# model and eval set (etok bench with defaults; about a minute on 2 cores).
set -eu
cd "$(dirname "$0")/.."
# The meters etok bench will use: every available one except the estimate, which is used only
# when nothing else exists (and is then labelled `estimate` everywhere).
avail=$(./build/etok meters | awk 'NR > 1 && $2 == "yes" { print $1 " (" $3 ", " $4 ")" }')
real=$(printf '%s\n' "$avail" | grep -v '^estimate' || true)
if [ -n "$real" ]; then
    echo "etok bench: meter in use: $(printf '%s' "$real" | tr '\n' ';' | sed 's/;$//; s/;/, /g')"
else
    echo "etok bench: meter in use: ${avail:-none} — no energy counter on this machine, energy is a MODEL ESTIMATE"
fi
exec ./build/etok bench "$@"
