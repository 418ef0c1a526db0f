#!/bin/sh
# uninstall.sh MANIFEST — `make uninstall [DESTDIR=...]`: remove exactly the files cmake --install
# listed in its manifest (build/install_manifest.txt: paths under the prefix, without DESTDIR,
# which is taken from the environment as at install time), then the directories etok owns
# (.../etok) when they are left empty. Nothing else is touched.
set -eu
M=${1:?usage: uninstall.sh build/install_manifest.txt}
[ -f "$M" ] || { echo "etok: $M not found: nothing was installed from this build (make install first)" >&2; exit 1; }
n=0
while IFS= read -r f || [ -n "$f" ]; do  # the manifest has no final newline
    [ -n "$f" ] || continue
    f="${DESTDIR:-}$f"
    if [ -e "$f" ] || [ -L "$f" ]; then rm -f "$f" && n=$((n + 1)); fi
done < "$M"
# empty etok-owned directories, deepest first
sed -n 's|^\(.*/etok\)/.*|\1|p' "$M" | sort -u | while IFS= read -r top; do
    top="${DESTDIR:-}$top"
    [ -d "$top" ] && find "$top" -depth -type d -empty -delete 2>/dev/null || true
done
echo "etok: removed $n files listed in $M" >&2
