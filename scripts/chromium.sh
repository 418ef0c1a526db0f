#!/bin/sh
# Ensure Debian's chromium is installed (headless checks of etok's HTML pages, e.g. the sweep
# e2e test). Idempotent: does nothing when a chromium binary is already on PATH. Not part of
# scripts/deps.sh because the package is large (about 80 MB download, 290 MB installed).
# Prints the binary's name on success; exit 1 when it cannot be installed.
set -u
for b in chromium chromium-browser; do
  if command -v "$b" > /dev/null 2>&1; then echo "$b"; exit 0; fi
done
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  if sudo -n true 2> /dev/null; then SUDO="sudo -n"; else echo "chromium.sh: chromium missing and no root/sudo to install it" >&2; exit 1; fi
fi
export DEBIAN_FRONTEND=noninteractive
echo "etok: installing Debian's chromium (once) for the headless page checks" >&2
# one installer at a time (parallel tests): apt's own lock, waited for
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium > /dev/null 2>&1 || {
  $SUDO apt-get update -qq > /dev/null 2>&1
  $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends chromium > /dev/null 2>&1
} || { echo "chromium.sh: apt-get install chromium failed" >&2; exit 1; }
command -v chromium > /dev/null 2>&1 && { echo chromium; exit 0; }
exit 1
