#!/usr/bin/env bash
# pack.sh — everything bench/gpu/check.sh needs on a lent machine that has no build tools or
# libraries of ours and takes at most 64 MiB per call, in one archive: etok, the benches and
# kernel tests from BUILD (stripped, with their non-glibc shared libraries beside them and an
# RPATH of $ORIGIN/lib, so nothing on the other machine is needed but glibc >= this one's), a
# cut-down model (cut_model.py), and optionally peer builds made elsewhere (PEERS). Prints the
# command to run there.
#
# usage: bench/gpu/pack.sh [ARCHIVE]   (default .devpack/dev.tar.xz; add /.devpack/ to
#                                        .git/info/exclude and name .devpack in the call's carry)
# env:   BUILD  build directory (default build)
#        MODEL  model to cut (default models/SmolLM2-135M-Instruct.Q4_1.gguf); LAYERS (6);
#               EMBD token-embedding format of the cut (q4_1)
#        PEERS  "NAME=DIR ..." peer builds (DIR holding llama-bench, llama-cli), copied as NAME/;
#               LLAMA_QUANTIZE one llama-quantize to copy (for check.sh's PEER_FORMATS)
# Needs: patchelf, xz, python3 with gguf (pip install gguf). Exit 4 naming what is missing.
set -u
ARCHIVE=${1:-.devpack/dev.tar.xz}
BUILD=${BUILD:-build}
MODEL=${MODEL:-models/SmolLM2-135M-Instruct.Q4_1.gguf}
LAYERS=${LAYERS:-6}
EMBD=${EMBD:-q4_1}
for t in patchelf xz strip; do
    command -v $t >/dev/null || { echo "pack.sh: $t not found (apt-get install patchelf xz-utils binutils)" >&2; exit 4; }
done
python3 -c 'import gguf' 2>/dev/null || { echo "pack.sh: python3 cannot import gguf (pip install gguf)" >&2; exit 4; }
[ -f "$MODEL" ] || { echo "pack.sh: no model $MODEL (make model, or MODEL=...)" >&2; exit 3; }
cmake --build "$BUILD" --target benches -j2 >/dev/null || { echo "pack.sh: building the benches in $BUILD failed" >&2; exit 1; }

S=$(mktemp -d)
trap 'rm -rf "$S"' EXIT
D=$S/.dev
mkdir -p "$D/lib" "$(dirname "$ARCHIVE")" || exit 5
# glibc's own libraries stay the other machine's
copy_libs() { # BINARY... -> their non-glibc libraries into $2-less dir given first
    local dest=$1; shift
    ldd "$@" 2>/dev/null | awk '/=> \// {print $3}' | sort -u |
        grep -v -E '/(libc|libm|libpthread|libdl|librt|libresolv|ld-linux[^/]*)\.so' | xargs -r -I{} cp -L {} "$dest/"
}
bins="etok bench_engine_speed isa_probe isa_kernels test_isa test_quant test_quant_q4_0 test_quant_q4_1 test_quant_q5_0
      test_quant_q5_0x8 test_quant_q8_0 test_quant_iq4_nlx8 test_quant_k test_quant_k_tile test_matmul_float test_vmath
      test_archs"
for b in $bins; do
    [ -x "$BUILD/$b" ] || { echo "pack.sh: $BUILD/$b not built" >&2; exit 1; }
    cp "$BUILD/$b" "$D/"
done
(cd "$D" && copy_libs lib $bins && strip $bins && for b in $bins; do patchelf --force-rpath --set-rpath '$ORIGIN/lib' "$b"; done) ||
    { echo "pack.sh: staging the binaries failed" >&2; exit 1; }
python3 bench/gpu/cut_model.py "$MODEL" "$D/model.gguf" "$LAYERS" --embd "$EMBD" || exit 3
peers=""
for p in ${PEERS:-}; do
    name=${p%%=*}; dir=${p#*=}
    mkdir -p "$D/$name" "$D/peerlib"
    for b in llama-bench llama-cli; do
        [ -x "$dir/$b" ] || { echo "pack.sh: $dir/$b missing" >&2; exit 3; }
        cp "$dir/$b" "$D/$name/"
    done
    (cd "$D/$name" && copy_libs ../peerlib llama-bench llama-cli && strip llama-bench llama-cli &&
        patchelf --force-rpath --set-rpath '$ORIGIN/../peerlib' llama-bench llama-cli) || exit 1
    peers="$peers $name=/tmp/x/.dev/$name"
done
if [ -n "${LLAMA_QUANTIZE:-}" ]; then
    mkdir -p "$D/peerlib" && cp "$LLAMA_QUANTIZE" "$D/llama-quantize" &&
        (cd "$D" && copy_libs peerlib llama-quantize && strip llama-quantize &&
            patchelf --force-rpath --set-rpath '$ORIGIN/peerlib' llama-quantize) || exit 1
fi
tar -C "$S" -cf - .dev | xz -T2 -6 > "$ARCHIVE" || exit 5
size=$(stat -c %s "$ARCHIVE")
echo "pack.sh: $ARCHIVE, $((size / 1048576)) MiB (the call's limit is 64 MiB with the working tree)"
[ "$size" -lt $((56 * 1048576)) ] || echo "pack.sh: warning: leaves under 8 MiB for the working tree" >&2
q=""; [ -n "${LLAMA_QUANTIZE:-}" ] && q=" LLAMA_QUANTIZE=/tmp/x/.dev/llama-quantize PEER_FORMATS=\"Q4_0 Q8_0\""
echo "run there (carry: [\"$(dirname "$ARCHIVE")\"]):"
echo "  mkdir -p /tmp/x && python3 -c \"import tarfile; tarfile.open('$ARCHIVE').extractall('/tmp/x')\" && D=/tmp/x/.dev && BIN=\$D MODEL=\$D/model.gguf${peers:+ PEERS=\"${peers# }\"}$q WORK=/tmp/chkwork bash bench/gpu/check.sh \$OUT"
