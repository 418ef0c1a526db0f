#!/bin/sh
# e2e: scripts/isa_emulate.sh (docs/ISA_EMULATION.md) refuses bad command lines with exit 2 and
# bad inputs with exit 3 before it installs, builds or boots anything (no emulator needed):
# no arguments, an unknown option, a malformed --env, a non-numeric ETOK_ISA_TIMEOUT or
# ETOK_ISA_MEGS out of range (2); a missing file, a non-ELF file, a dynamically linked
# executable, a non-x86-64 ELF (3). --help exits 0 and documents the exit codes.
set -u
SRC=${ETOK_SOURCE_DIR:-.}
EMU="$SRC/scripts/isa_emulate.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# a cache directory that must stay empty: nothing may be set up for a refused command line
export ETOK_ISA_CACHE="$T/cache"
fail=0
expect() { # expected-status description command...
    want=$1 what=$2
    shift 2
    "$@" >"$T/out" 2>"$T/err"
    got=$?
    if [ "$got" -ne "$want" ]; then
        echo "FAIL: $what: exit $got, want $want ($(head -c 300 "$T/err"))"
        fail=1
    fi
}
expect 0 "--help" bash "$EMU" --help
grep -q 'CPU_MODEL STATIC_BINARY' "$T/out" || { echo "FAIL: --help lacks the usage line"; fail=1; }
grep -q '124 timeout' "$T/out" || { echo "FAIL: --help lacks the exit codes"; fail=1; }
expect 2 "no arguments" bash "$EMU"
expect 2 "one argument" bash "$EMU" tigerlake
expect 2 "unknown option" bash "$EMU" --bogus tigerlake /bin/sh
expect 2 "--env without =" bash "$EMU" --env NOVALUE tigerlake /bin/sh
expect 2 "--file without value" bash "$EMU" --file
expect 2 "bad ETOK_ISA_TIMEOUT" env ETOK_ISA_TIMEOUT=10s bash "$EMU" tigerlake /bin/sh
expect 2 "ETOK_ISA_MEGS too small" env ETOK_ISA_MEGS=16 bash "$EMU" tigerlake /bin/sh
expect 3 "missing binary" bash "$EMU" tigerlake "$T/nonexistent"
grep -q 'nonexistent' "$T/err" || { echo "FAIL: missing-binary message does not name the file"; fail=1; }
printf 'not an elf\n' >"$T/text"
expect 3 "non-ELF file" bash "$EMU" tigerlake "$T/text"
expect 3 "dynamically linked executable" bash "$EMU" tigerlake /bin/sh
grep -q 'static' "$T/err" || { echo "FAIL: dynamic-binary message does not ask for -static"; fail=1; }
# a 64-bit little-endian ELF header for aarch64 (e_machine 0xb7)
printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\002\000\267\000' >"$T/arm64"
expect 3 "aarch64 ELF" bash "$EMU" tigerlake "$T/arm64"
grep -q 'x86-64' "$T/err" || { echo "FAIL: wrong-machine message does not say x86-64"; fail=1; }
# an x86-64 ELF header without program headers passes the binary checks, so the --file check
# is what refuses this one
printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\002\000\076\000' >"$T/x86"
expect 3 "missing --file" bash "$EMU" --file "$T/nope" tigerlake "$T/x86"
grep -q -- "--file '$T/nope'" "$T/err" || { echo "FAIL: missing --file message does not name it"; fail=1; }
[ ! -e "$T/cache" ] || { echo "FAIL: a refused command line set up $T/cache"; fail=1; }
[ $fail -eq 0 ] && echo "isa_emulate_args: ok"
exit $fail
