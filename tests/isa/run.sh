#!/bin/sh
# tests/isa/run.sh — `make test-isa`: run static test programs under emulated CPU models.
#
# usage: tests/isa/run.sh PROBE [BINARY[:ARG]...]...   (models from $ISA_MODELS)
# For each model in ISA_MODELS (default "tigerlake sapphire_rapids"), runs the probe
# (tests/isa/isa_probe.c) with --require set to what that model must offer, then every further
# binary (its arguments follow it, each after a colon: `bin:--require:avx512`, so a make
# variable word carries them; a literal {model} is replaced by the model's name), each by scripts/isa_emulate.sh (one Linux boot per run). Prints one line per
# run with its status and wall time, and exits 1 if any run failed. Not part of `make test`:
# each boot takes minutes (docs/ISA_EMULATION.md).
set -u
[ $# -ge 1 ] || { echo "usage: tests/isa/run.sh PROBE [BINARY[:ARG]...]..." >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
emu="$here/../../scripts/isa_emulate.sh"
models=${ISA_MODELS:-tigerlake sapphire_rapids}
fails=0
summary=""
run() { # model label binary args...
    model=$1 label=$2
    shift 2
    t0=$(date +%s)
    echo "== $label on $model"
    "$emu" "$model" "$@"
    rc=$?
    t=$(($(date +%s) - t0))
    if [ $rc -eq 0 ]; then res=PASS; else res="FAIL (exit $rc)"; fails=$((fails + 1)); fi
    summary="$summary
$res  $label on $model  (${t} s wall, boot included)"
}
run_split() { # model binary "arg1:arg2:..."
    m=$1 b=$2 a=$3
    set -f
    oldifs=$IFS
    IFS=:
    # shellcheck disable=SC2086 # the arguments are colon-separated by design
    set -- $a
    IFS=$oldifs
    set +f
    run "$m" "$(basename "$b") $*" "$b" "$@"
}
for model in $models; do
    case "$model" in
    tigerlake) req=avx512f,avx512bw,avx512vl,avx512vnni ;;
    sapphire_rapids) req=avx512f,avx512bw,avx512vl,avx512vnni,avx512bf16,amxtile,amxint8,amxbf16 ;;
    corei7_skylake_x) req=avx512f,avx512bw,avx512vl ;;
    *) req=avx2 ;;
    esac
    run "$model" "isa_probe --require $req" "$1" --require "$req"
    shift_done=0
    for spec in "$@"; do
        [ $shift_done -eq 0 ] && { shift_done=1; continue; } # $1 is the probe
        bin=${spec%%:*}
        args=""
        [ "$bin" != "$spec" ] && args=${spec#*:}
        args=$(printf '%s' "$args" | sed "s/{model}/$model/g")
        run_split "$model" "$bin" "$args"

    done
done
echo "== test-isa summary:$summary"
[ $fails -eq 0 ] || { echo "test-isa: $fails run(s) failed" >&2; exit 1; }
