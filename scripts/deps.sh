#!/bin/sh
# Install the Debian packages etok needs to build and test, only those missing.
# Idempotent and quick when everything is present (one dpkg-query call).
set -eu
PKGS="build-essential cmake pkg-config clang libclang-rt-14-dev python3 python3-pip python3-venv time \
libjansson-dev libcmocka-dev libcurl4-openssl-dev libmicrohttpd-dev \
prometheus librsvg2-bin man-db python3-venv"
missing=""
for p in $PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $p"
  fi
done
[ -z "$missing" ] && exit 0
echo "etok: installing missing Debian packages:$missing" >&2
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq || true
# prometheus pulls a systemd service; we never start it as a service, tests run it on loopback.
$SUDO apt-get install -y -qq --no-install-recommends $missing
