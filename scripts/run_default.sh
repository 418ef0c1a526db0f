#!/bin/sh
# `make run`: the main job on the embedded default model.
set -eu
cd "$(dirname "$0")/.."
./build/etok meters
