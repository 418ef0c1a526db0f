#!/bin/sh
# e2e: scripts/isa_emulate.sh's run loop against a fake Bochs (ETOK_ISA_BOCHS) and a fake
# kernel (ETOK_ISA_KERNEL), so no emulator is needed (docs/ISA_EMULATION.md):
#  - the exit marker arrives a character at a time (like a UART): a partial
#    "ETOK_ISA_EXIT=13" of status 134 must not be taken for 13 (a defect seen under Bochs);
#    the program's lines are printed without CRs, markers, or the marker's leading blank line;
#  - a guest kernel panic on the kernel's serial port ends the run with exit 125;
#  - a guest that never reports ends with exit 124 at ETOK_ISA_TIMEOUT.
# Skips (saying so) when the packages the script needs to build an image are missing.
set -u
SRC=${ETOK_SOURCE_DIR:-.}
EMU="$SRC/scripts/isa_emulate.sh"
for need in xorriso cpio cc readelf flock; do
    command -v "$need" >/dev/null 2>&1 || { echo "isa_emulate_fake: skipped ($need missing)"; exit 0; }
done
for f in /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 /usr/share/bochs/BIOS-bochs-latest \
    /usr/share/vgabios/vgabios.bin /usr/lib/x86_64-linux-gnu/libc.a; do
    [ -e "$f" ] || { echo "isa_emulate_fake: skipped ($f missing)"; exit 0; }
done
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
export ETOK_ISA_CACHE="$T/cache" ETOK_ISA_KERNEL="$T/vmlinuz-fake" ETOK_ISA_BOCHS="$T/bochs" ETOK_ISA_QUIET=1
printf 'not a kernel\n' >"$ETOK_ISA_KERNEL"
# a static x86-64 ELF header is all the script checks of the program before booting
printf '\177ELF\002\001\001\000\000\000\000\000\000\000\000\000\002\000\076\000' >"$T/prog"
cat >"$T/bochs" <<'FAKE'
#!/bin/sh
# fake Bochs: lists one model; otherwise writes to the files bochsrc names for com1/com2
if [ "$1" = "-help" ]; then printf 'Supported CPU models:\n\ntigerlake\n\n'; exit 0; fi
rc=$3
com1=$(sed -n 's/^com1: .*dev=//p' "$rc")
com2=$(sed -n 's/^com2: .*dev=//p' "$rc")
case "$FAKE_MODE" in
marker)
    printf 'ETOK_ISA_START\r\nline one\r\nline two\r\n\r\nETOK_ISA_EXIT=13' >>"$com1"
    sleep 3
    printf '4\r\n' >>"$com1"
    ;;
panic) printf '[    0.1] Kernel panic - not syncing: fake\r\n' >>"$com2" ;;
silent) ;;
esac
while :; do sleep 1; done
FAKE
chmod +x "$T/bochs"

out=$(FAKE_MODE=marker bash "$EMU" tigerlake "$T/prog" 2>"$T/err")
rc=$?
[ "$rc" -eq 134 ] || { echo "FAIL: partial marker: exit $rc, want 134 ($(cat "$T/err"))"; fail=1; }
[ "$out" = "line one
line two" ] || { echo "FAIL: program output was <$out>"; fail=1; }

FAKE_MODE=panic bash "$EMU" tigerlake "$T/prog" >/dev/null 2>"$T/err"
rc=$?
[ "$rc" -eq 125 ] || { echo "FAIL: guest panic: exit $rc, want 125"; fail=1; }
grep -q 'guest kernel panic' "$T/err" || { echo "FAIL: panic not reported ($(cat "$T/err"))"; fail=1; }

FAKE_MODE=silent ETOK_ISA_TIMEOUT=3 bash "$EMU" tigerlake "$T/prog" >/dev/null 2>"$T/err"
rc=$?
[ "$rc" -eq 124 ] || { echo "FAIL: timeout: exit $rc, want 124"; fail=1; }
grep -q 'timeout after 3s' "$T/err" || { echo "FAIL: timeout not reported ($(cat "$T/err"))"; fail=1; }
# no fake Bochs may survive its run
sleep 1
if ps -eo args 2>/dev/null | grep -F "$T/bochs" | grep -v grep >/dev/null; then
    echo "FAIL: a fake Bochs is still running"
    fail=1
fi
[ $fail -eq 0 ] && echo "isa_emulate_fake: ok"
exit $fail
