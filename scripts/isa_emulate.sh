#!/usr/bin/env bash
# isa_emulate.sh — run one static x86-64 Linux program on an emulated CPU (Bochs), so code paths
# for instruction sets the host lacks (AVX-512 VNNI/BF16, AMX) can be TESTED for correctness.
#
# Boots Debian's own kernel with a tiny initramfs in the Bochs x86 emulator (headless, no GUI):
# /init (tests/isa/isa_init.c) runs the program as its only process with the given arguments,
# prints an exit-status marker on the serial port and powers off. This script prints the
# program's output (stdout and stderr share the emulated serial port) and exits with its status.
# Emulated time says nothing about speed: use it for correctness only. docs/ISA_EMULATION.md
# explains models, timings, limits and versions.
#
# Everything it needs is installed or built once into a cache directory (Debian packages via
# apt-get when run as root, else it names them and stops; Bochs 3.0 is built from Debian's
# source tarball, sha256 pinned, with one fix of its AMX-INT8 signedness (patch_bochs), because
# Debian 12's Bochs 2.7 reports an inconsistent XSAVE layout for AVX-512 that makes Linux
# switch XSAVE, and so AVX, off).
set -u

usage() {
    cat <<'EOF'
usage: scripts/isa_emulate.sh [OPTIONS] CPU_MODEL STATIC_BINARY [ARGS...]
       scripts/isa_emulate.sh --setup | --list-models | --help

Boots a minimal Linux in the Bochs x86 emulator with CPU_MODEL, runs STATIC_BINARY (a static
x86-64 Linux executable) with ARGS as the only process, prints its output (stdout and stderr
together, from the emulated serial port) and exits with its exit status. For correctness tests
of AVX-512 / AMX code on hosts without them; emulated timings mean nothing.

CPU models (Bochs 3.0): tigerlake (AVX-512 incl. VNNI, no BF16), sapphire_rapids (AVX-512 VNNI
and BF16, AMX-TILE/INT8/BF16 — see docs/ISA_EMULATION.md for what Linux does with AMX there),
corei7_skylake_x (AVX-512 F/CD/BW/DQ/VL), corei7_icelake_u, ...; --list-models lists all.

Options:
  --file HOST[:GUEST]  also copy file HOST into the guest (at /GUEST, default /basename); repeatable
  --env KEY=VALUE      set an environment variable for the program; repeatable
  --amx-xcr0           load the test-only module tests/isa/etok_amx_xcr0.c that sets XCR0's AMX
                       tile bits, which Linux leaves clear because Bochs lacks XFD; the program
                       then sees ETOK_ISA_AMX_XCR0=1 (default for sapphire_rapids)
  --no-amx-xcr0        do not load it (AMX instructions then fault with SIGILL)
  --log DIR            keep the serial logs (program, kernel) and the Bochs log in DIR
  --setup              install/build everything needed (packages, Bochs, kernel), run nothing
  --list-models        print the CPU models Bochs knows
  -h, --help           this text

Environment:
  ETOK_ISA_TIMEOUT  wall-clock limit of one run in seconds (default 1800)
  ETOK_ISA_CACHE    cache directory (default ${XDG_CACHE_HOME:-$HOME/.cache}/etok-isa)
  ETOK_ISA_MEGS     guest memory in MiB (default 1024)
  ETOK_ISA_BOCHS    a Bochs binary to use instead of the cached build
  ETOK_ISA_KERNEL   a bzImage to boot instead of Debian's cloud kernel (the AMX module is
                    built for the cached Debian kernel only)
  ETOK_ISA_KERNEL_ARGS  extra guest kernel command-line arguments
  ETOK_ISA_QUIET=1  do not print the setup steps and the timing line on stderr

Exit status: the program's own status (0..255; 128+N when killed by signal N); 2 usage;
3 bad input (binary missing, not a static x86-64 ELF, unknown CPU model); 124 timeout;
125 the emulator or the guest failed before the program reported (logs named on stderr);
4 a dependency is missing and cannot be installed (not root), or Bochs failed to build.
EOF
}

EX_USAGE=2
EX_INPUT=3
EX_ENV=4
EX_TIMEOUT=124
EX_HARNESS=125

BOCHS_VERSION=3.0
BOCHS_TARBALL="bochs_3.0+dfsg.orig.tar.xz"
BOCHS_URL="http://deb.debian.org/debian/pool/main/b/bochs/$BOCHS_TARBALL"
BOCHS_SHA256=78f6c73d4a6472d5130a87ab9dc306d02c7c71ed8e25b3a8ef642e2a7acd282b
KERNEL_META=linux-image-cloud-amd64 # the cloud flavour: LZ4-compressed, fewer drivers, boots faster

CACHE=${ETOK_ISA_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/etok-isa}
TIMEOUT=${ETOK_ISA_TIMEOUT:-1800}
MEGS=${ETOK_ISA_MEGS:-1024}
QUIET=${ETOK_ISA_QUIET:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/.." && pwd)
INIT_SRC="$REPO/tests/isa/isa_init.c"
MODULE_SRC="$REPO/tests/isa/etok_amx_xcr0.c"
AMX_MODELS="sapphire_rapids" # models that claim AMX; --amx-xcr0 is their default

say() { [ "$QUIET" = 1 ] || printf 'isa_emulate: %s\n' "$*" >&2; }
die() {
    code=$1
    shift
    printf 'isa_emulate: %s\n' "$*" >&2
    exit "$code"
}

case "$TIMEOUT" in '' | *[!0-9]*) die $EX_USAGE "ETOK_ISA_TIMEOUT must be a whole number of seconds, got '$TIMEOUT'" ;; esac
case "$MEGS" in '' | *[!0-9]*) die $EX_USAGE "ETOK_ISA_MEGS must be a whole number of MiB, got '$MEGS'" ;; esac
[ "$TIMEOUT" -ge 1 ] || die $EX_USAGE "ETOK_ISA_TIMEOUT must be at least 1"
{ [ "$MEGS" -ge 128 ] && [ "$MEGS" -le 8192 ]; } || die $EX_USAGE "ETOK_ISA_MEGS must be within 128..8192, got $MEGS"

# ---------- dependencies ----------
# command-or-file:package pairs
DEPS="xorriso:xorriso cpio:cpio wget:wget xz:xz-utils make:make g++:g++ cc:gcc readelf:binutils
flock:util-linux dpkg-deb:dpkg apt-get:apt /usr/lib/x86_64-linux-gnu/libc.a:libc6-dev
/usr/lib/ISOLINUX/isolinux.bin:isolinux /usr/lib/syslinux/modules/bios/ldlinux.c32:syslinux-common
/usr/share/bochs/BIOS-bochs-latest:bochsbios /usr/share/vgabios/vgabios.bin:vgabios"

ensure_deps() {
    missing=""
    for pair in $DEPS; do
        what=${pair%%:*}
        pkg=${pair#*:}
        case "$what" in
        /*) [ -e "$what" ] || missing="$missing $pkg" ;;
        *) command -v "$what" >/dev/null 2>&1 || missing="$missing $pkg" ;;
        esac
    done
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing Debian packages:$missing"
        DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >"$CACHE/apt.log" 2>&1 ||
            { DEBIAN_FRONTEND=noninteractive apt-get update >>"$CACHE/apt.log" 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing >>"$CACHE/apt.log" 2>&1; } ||
            die $EX_ENV "apt-get install$missing failed (see $CACHE/apt.log)"
    else
        die $EX_ENV "missing Debian packages:$missing (install them as root: apt-get install$missing)"
    fi
}

# ---------- Bochs 3.0, built once from Debian's source tarball ----------
bochs_bin() {
    if [ -n "${ETOK_ISA_BOCHS:-}" ]; then
        [ -x "$ETOK_ISA_BOCHS" ] || die $EX_INPUT "ETOK_ISA_BOCHS='$ETOK_ISA_BOCHS' is not an executable"
        printf '%s\n' "$ETOK_ISA_BOCHS"
        return
    fi
    printf '%s\n' "$CACHE/bochs-$BOCHS_VERSION/bin/bochs"
}

# Bochs 3.0's AMX-INT8 dot products read every byte as unsigned (cpu/avx/amx.cc DPBDSS, DPBDSU,
# DPBDUS widen a Bit8u), so TDPBSSD, TDPBSUD and TDPBUSD all compute TDPBUUD. This fix, applied
# to the unpacked source before building, reads the bytes the instruction calls signed as Bit8s.
# BOCHS_PATCH names the source state a cached build must have (else it is rebuilt).
BOCHS_PATCH=amx-int8-signed-1
patch_bochs() { # $1 = unpacked source tree; idempotent
    sed -i -e 's/Bit32s(xbyte\[/Bit32s((Bit8s) xbyte[/g' -e 's/Bit32s(ybyte\[/Bit32s((Bit8s) ybyte[/g' \
        "$1/cpu/avx/amx.cc" && grep -q 'Bit32s((Bit8s) xbyte\[0\]) \* Bit32s((Bit8s) ybyte\[0\])' "$1/cpu/avx/amx.cc"
}

build_bochs() {
    [ -n "${ETOK_ISA_BOCHS:-}" ] && return 0
    bin="$CACHE/bochs-$BOCHS_VERSION/bin/bochs"
    stamp="$CACHE/bochs-$BOCHS_VERSION/etok-patch"
    [ -x "$bin" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$BOCHS_PATCH" ] && return 0
    src="$CACHE/src"
    if [ -x "$bin" ] && [ -f "$src/bochs-$BOCHS_VERSION/config.h" ]; then
        say "rebuilding Bochs $BOCHS_VERSION with the fix $BOCHS_PATCH (incremental)"
        patch_bochs "$src/bochs-$BOCHS_VERSION" || die $EX_ENV "cannot apply $BOCHS_PATCH to $src/bochs-$BOCHS_VERSION"
        (cd "$src/bochs-$BOCHS_VERSION" && make -j"$(nproc 2>/dev/null || echo 2)" >"$src/make.log" 2>&1 &&
            make install >"$src/install.log" 2>&1) || die $EX_ENV "Bochs build failed (see $src/make.log, $src/install.log)"
        echo "$BOCHS_PATCH" >"$stamp"
        return 0
    fi
    mkdir -p "$src" || die $EX_ENV "cannot create $src"
    if ! echo "$BOCHS_SHA256  $src/$BOCHS_TARBALL" | sha256sum -c - >/dev/null 2>&1; then
        say "downloading $BOCHS_URL"
        wget -q -O "$src/$BOCHS_TARBALL.part" "$BOCHS_URL" || die $EX_ENV "download of $BOCHS_URL failed"
        mv "$src/$BOCHS_TARBALL.part" "$src/$BOCHS_TARBALL"
        echo "$BOCHS_SHA256  $src/$BOCHS_TARBALL" | sha256sum -c - >/dev/null 2>&1 ||
            die $EX_ENV "$src/$BOCHS_TARBALL: sha256 differs from the pinned $BOCHS_SHA256"
    fi
    say "building Bochs $BOCHS_VERSION into $CACHE/bochs-$BOCHS_VERSION (once; about 15-40 min on 2 cores)"
    start=$(date +%s)
    rm -rf "$src/bochs-$BOCHS_VERSION"
    (cd "$src" && tar xf "$BOCHS_TARBALL") || die $EX_ENV "cannot unpack $src/$BOCHS_TARBALL"
    patch_bochs "$src/bochs-$BOCHS_VERSION" || die $EX_ENV "cannot apply $BOCHS_PATCH to $src/bochs-$BOCHS_VERSION"
    # Minimal: x86-64 with AVX, EVEX (AVX-512) and AMX; no GUI, sound, network, USB, debugger.
    (cd "$src/bochs-$BOCHS_VERSION" &&
        ./configure --prefix="$CACHE/bochs-$BOCHS_VERSION" --enable-x86-64 --enable-cpu-level=6 \
            --enable-avx --enable-evex --enable-amx --enable-all-optimizations --enable-repeat-speedups \
            --with-nogui --disable-docbook --enable-pci --enable-cdrom --disable-plugins >"$src/configure.log" 2>&1) ||
        die $EX_ENV "Bochs configure failed (see $src/configure.log)"
    (cd "$src/bochs-$BOCHS_VERSION" && make -j"$(nproc 2>/dev/null || echo 2)" >"$src/make.log" 2>&1 &&
        make install >"$src/install.log" 2>&1) || die $EX_ENV "Bochs build failed (see $src/make.log, $src/install.log)"
    echo "$BOCHS_PATCH" >"$stamp"
    say "Bochs built in $(($(date +%s) - start)) s"
}

# ---------- Debian's kernel ----------
kernel_path() {
    if [ -n "${ETOK_ISA_KERNEL:-}" ]; then
        printf '%s\n' "$ETOK_ISA_KERNEL"
        return
    fi
    ls "$CACHE"/kernel/vmlinuz-* 2>/dev/null | head -n 1
}

fetch_kernel() {
    if [ -n "${ETOK_ISA_KERNEL:-}" ]; then
        [ -f "$ETOK_ISA_KERNEL" ] || die $EX_INPUT "ETOK_ISA_KERNEL='$ETOK_ISA_KERNEL' is not a file"
        return 0
    fi
    [ -n "$(kernel_path)" ] && return 0
    pkg=$(apt-cache depends "$KERNEL_META" 2>/dev/null | awk '/Depends: linux-image-/ {print $2; exit}')
    [ -n "$pkg" ] || die $EX_ENV "apt-cache cannot resolve $KERNEL_META (is apt's package list present? run apt-get update)"
    say "downloading kernel package $pkg"
    tmp=$(mktemp -d) || die $EX_ENV "mktemp failed"
    (cd "$tmp" && apt-get download "$pkg" >download.log 2>&1) || {
        cat "$tmp/download.log" >&2
        rm -rf "$tmp"
        die $EX_ENV "apt-get download $pkg failed"
    }
    dpkg-deb -x "$tmp"/*.deb "$tmp/x" || die $EX_ENV "dpkg-deb -x of $pkg failed"
    mkdir -p "$CACHE/kernel" && cp "$tmp"/x/boot/vmlinuz-* "$CACHE/kernel/" || die $EX_ENV "no vmlinuz in $pkg"
    rm -rf "$tmp"
}

# ---------- the guest's /init, compiled once per source version ----------
init_path() {
    [ -r "$INIT_SRC" ] || die $EX_ENV "missing $INIT_SRC"
    sum=$(sha256sum "$INIT_SRC" | cut -c1-16)
    out="$CACHE/isa_init-$sum"
    if [ ! -x "$out" ]; then
        cc -O2 -static -o "$out.tmp" "$INIT_SRC" >&2 || die $EX_ENV "cannot compile $INIT_SRC statically (libc6-dev has libc.a)"
        mv "$out.tmp" "$out"
    fi
    printf '%s\n' "$out"
}

# ---------- the test-only AMX module, built against the same kernel's headers ----------
kernel_release() { basename "$(kernel_path)" | sed 's/^vmlinuz-//'; }

module_path() {
    rel=$(kernel_release)
    sum=$(sha256sum "$MODULE_SRC" | cut -c1-16)
    out="$CACHE/modules/$rel/etok_amx_xcr0-$sum.ko"
    if [ ! -f "$out" ]; then
        hdr="$CACHE/headers/$rel"
        if [ ! -f "$hdr/usr/src/linux-headers-$rel/Makefile" ]; then
            pkgs="linux-headers-$rel $(apt-cache depends "linux-headers-$rel" 2>/dev/null | awk '/Depends: linux-(headers|kbuild)-/ {print $2}')"
            say "downloading kernel headers: $pkgs"
            tmp=$(mktemp -d) || die $EX_ENV "mktemp failed"
            (cd "$tmp" && apt-get download $pkgs >download.log 2>&1) || {
                cat "$tmp/download.log" >&2
                die $EX_ENV "apt-get download $pkgs failed"
            }
            rm -rf "$hdr" && mkdir -p "$hdr" || die $EX_ENV "cannot create $hdr"
            for d in "$tmp"/*.deb; do dpkg-deb -x "$d" "$hdr" || die $EX_ENV "dpkg-deb -x $d failed"; done
            rm -rf "$tmp"
            # Debian's per-flavour Makefile includes the common one by absolute path.
            sed -i "s|include /usr/src/|include $hdr/usr/src/|" "$hdr/usr/src/linux-headers-$rel/Makefile"
        fi
        kcc=$(sed -n 's/^CC = .*)gcc-\([0-9]*\).*/gcc-\1/p' "$hdr/usr/src/linux-headers-$rel/.kernelvariables")
        command -v "${kcc:-gcc}" >/dev/null 2>&1 || DEPS="${kcc}:${kcc}" ensure_deps
        b=$(mktemp -d) || die $EX_ENV "mktemp failed"
        cp "$MODULE_SRC" "$b/" && echo 'obj-m := etok_amx_xcr0.o' >"$b/Kbuild"
        make -C "$hdr/usr/src/linux-headers-$rel" M="$b" modules >"$b/build.log" 2>&1 || {
            cat "$b/build.log" >&2
            die $EX_ENV "building the AMX module against linux-headers-$rel failed"
        }
        mkdir -p "$(dirname "$out")" && cp "$b/etok_amx_xcr0.ko" "$out" || die $EX_ENV "cannot write $out"
        rm -rf "$b"
    fi
    printf '%s\n' "$out"
}

setup() {
    mkdir -p "$CACHE" || die $EX_ENV "cannot create cache directory $CACHE"
    exec 9>"$CACHE/.lock"
    flock 9 # one setup at a time; runs themselves do not need the lock
    ensure_deps
    build_bochs
    fetch_kernel
    init_path >/dev/null
    flock -u 9
}

list_models() {
    "$(bochs_bin)" -help cpu 2>&1 | awk '/Supported CPU models:/ {on=1; next} on && /^[a-z0-9_]+$/ {print $1} on && /quit_sim|^=+$/ {exit}'
}

# ---------- arguments ----------
FILES=()
ENVS=()
LOGDIR=""
AMX_XCR0=auto
while [ $# -gt 0 ]; do
    case "$1" in
    -h | --help) usage; exit 0 ;;
    --setup) setup; say "ready: $(bochs_bin), $(kernel_path)"; exit 0 ;;
    --list-models) setup; list_models; exit 0 ;;
    --file)
        [ $# -ge 2 ] || die $EX_USAGE "--file needs HOST[:GUEST]"
        FILES+=("$2")
        shift 2
        ;;
    --env)
        [ $# -ge 2 ] || die $EX_USAGE "--env needs KEY=VALUE"
        case "$2" in [A-Za-z_]*=*) ;; *) die $EX_USAGE "--env '$2': expected KEY=VALUE" ;; esac
        case "$2" in *"
"*) die $EX_USAGE "--env: the value may not contain a newline" ;; esac
        ENVS+=("$2")
        shift 2
        ;;
    --amx-xcr0) AMX_XCR0=1; shift ;;
    --no-amx-xcr0) AMX_XCR0=0; shift ;;
    --log)
        [ $# -ge 2 ] || die $EX_USAGE "--log needs a directory"
        LOGDIR=$2
        shift 2
        ;;
    --) shift; break ;;
    -*) usage >&2; die $EX_USAGE "unknown option '$1'" ;;
    *) break ;;
    esac
done
[ $# -ge 2 ] || { usage >&2; die $EX_USAGE "need CPU_MODEL and STATIC_BINARY"; }
MODEL=$1
PROG=$2
shift 2

# The program: a readable static x86-64 ELF executable (no program interpreter).
[ -f "$PROG" ] && [ -r "$PROG" ] || die $EX_INPUT "'$PROG': no such readable file"
magic=$(od -An -tx1 -N20 "$PROG" 2>/dev/null | tr -d ' \n')
case "$magic" in
7f454c460201*) ;;
*) die $EX_INPUT "'$PROG': not a 64-bit little-endian ELF file" ;;
esac
[ "${magic:36:4}" = 3e00 ] || die $EX_INPUT "'$PROG': not an x86-64 ELF (e_machine 0x${magic:38:2}${magic:36:2})"
if readelf -lW "$PROG" 2>/dev/null | grep -q 'INTERP'; then
    die $EX_INPUT "'$PROG': dynamically linked; build it with -static"
fi
for f in "${FILES[@]+"${FILES[@]}"}"; do
    host=${f%%:*}
    [ -f "$host" ] && [ -r "$host" ] || die $EX_INPUT "--file '$host': no such readable file"
done

setup
BOCHS=$(bochs_bin) || exit $?
KERNEL=$(kernel_path)
INIT=$(init_path) || exit $?
list_models | grep -qx -- "$MODEL" || die $EX_INPUT "unknown CPU model '$MODEL' (--list-models lists them)"
if [ "$AMX_XCR0" = auto ]; then
    AMX_XCR0=0
    for m in $AMX_MODELS; do [ "$m" = "$MODEL" ] && AMX_XCR0=1; done
fi
MODULE=""
if [ "$AMX_XCR0" = 1 ]; then MODULE=$(module_path) || exit $?; fi

# ---------- the boot image ----------
WORK=$(mktemp -d "${TMPDIR:-/tmp}/etok-isa.XXXXXX") || die $EX_ENV "mktemp failed"
BOCHS_PID=""
cleanup() {
    [ -n "$BOCHS_PID" ] && kill "$BOCHS_PID" 2>/dev/null
    if [ -n "$LOGDIR" ]; then
        mkdir -p "$LOGDIR" && cp "$WORK"/out.log "$WORK"/kern.log "$WORK"/bochs.log "$WORK"/bochsrc "$LOGDIR"/ 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$WORK/root/dev" "$WORK/root/proc" "$WORK/iso/isolinux"
cp "$INIT" "$WORK/root/init" && cp "$PROG" "$WORK/root/prog" && chmod 755 "$WORK/root/init" "$WORK/root/prog" ||
    die $EX_ENV "cannot stage the program in $WORK"
: >"$WORK/root/args"
: >"$WORK/root/env"
for e in "${ENVS[@]+"${ENVS[@]}"}"; do printf '%s\n' "$e" >>"$WORK/root/env"; done
if [ -n "$MODULE" ]; then
    cp "$MODULE" "$WORK/root/etok_amx_xcr0.ko" && echo /etok_amx_xcr0.ko >"$WORK/root/modules" || die $EX_ENV "cannot stage $MODULE"
    echo ETOK_ISA_AMX_XCR0=1 >>"$WORK/root/env"
fi
for a in "$@"; do printf '%s\0' "$a" >>"$WORK/root/args"; done
for f in "${FILES[@]+"${FILES[@]}"}"; do
    host=${f%%:*}
    guest=${f#*:}
    [ "$guest" = "$f" ] && guest=$(basename "$host")
    mkdir -p "$WORK/root/$(dirname "$guest")" && cp "$host" "$WORK/root/$guest" || die $EX_ENV "cannot stage --file $f"
done
(cd "$WORK/root" && find . | cpio -o -H newc --quiet >"$WORK/iso/initrd.img") || die $EX_ENV "cpio failed"
cp /usr/lib/ISOLINUX/isolinux.bin /usr/lib/syslinux/modules/bios/ldlinux.c32 "$WORK/iso/isolinux/"
cp "$KERNEL" "$WORK/iso/vmlinuz"
# Kernel messages go to the second serial port (kern.log), the program's to the first (out.log).
# clearcpuid= hides features from the guest KERNEL only (user space still sees every CPUID bit):
# with rdpid, waitpkg, fsrm, movdiri, movdir64b, gfni, vaes, vpclmulqdq visible (534 517 580 539
# 540 520 521 522) Linux 6.1 stalls on Bochs' tigerlake / icelake models right after "LSM:
# Security Framework initializing" (bisected: fsrm alone is the trigger; the rest stay hidden
# because all runs were validated with them hidden); amx_bf16, amx_tile, amx_int8 (598 600 601) must go because
# without XFD Linux writes XCR0 with XTILECFG but not XTILEDATA, which #GPs. acpi=off: enabling
# ACPI raises an SMI, and Bochs' return from SMM panics on sapphire_rapids' CR4 (5-level paging,
# CR4.LA57); the guest then cannot power itself off, so this script stops Bochs when the
# program's exit marker arrives (docs/ISA_EMULATION.md).
KARGS="clearcpuid=534,517,580,539,540,520,521,522,598,600,601 split_lock_detect=off acpi=off"
cat >"$WORK/iso/isolinux/isolinux.cfg" <<EOF
DEFAULT linux
PROMPT 0
TIMEOUT 0
LABEL linux
  KERNEL /vmlinuz
  APPEND initrd=/initrd.img console=ttyS1,115200 rdinit=/init mitigations=off tsc=reliable no_timer_check random.trust_cpu=on audit=0 nowatchdog $KARGS ${ETOK_ISA_KERNEL_ARGS:-}
EOF
xorriso -as mkisofs -quiet -o "$WORK/boot.iso" -b isolinux/isolinux.bin -c isolinux/boot.cat -no-emul-boot \
    -boot-load-size 4 -boot-info-table "$WORK/iso" >"$WORK/xorriso.log" 2>&1 || die $EX_ENV "xorriso failed: $(cat "$WORK/xorriso.log")"

cat >"$WORK/bochsrc" <<EOF
memory: guest=$MEGS, host=$MEGS
cpu: model=$MODEL, count=1, ips=200000000, mwait_is_nop=1
romimage: file=/usr/share/bochs/BIOS-bochs-latest
vgaromimage: file=/usr/share/vgabios/vgabios.bin
ata0-master: type=cdrom, path=$WORK/boot.iso, status=inserted
boot: cdrom
com1: enabled=1, mode=file, dev=$WORK/out.log
com2: enabled=1, mode=file, dev=$WORK/kern.log
display_library: nogui
log: $WORK/bochs.log
panic: action=fatal
error: action=report
info: action=ignore
debug: action=ignore
clock: sync=none, time0=local
EOF

# ---------- run, streaming the program's output ----------
say "booting $(basename "$KERNEL") on Bochs $MODEL (timeout ${TIMEOUT}s)"
T0=$(date +%s)
(cd "$WORK" && exec "$BOCHS" -q -f "$WORK/bochsrc" </dev/null >"$WORK/bochs.stdout" 2>&1) &
BOCHS_PID=$!
printed=0 status="" why="" blank=0 polls=0 lastcpu=""
emit() { # print complete new lines of the program's output (without CRs and the two markers)
    [ -f "$WORK/out.log" ] || return 0
    total=$(tr -d '\r' <"$WORK/out.log" | wc -l)
    [ "$total" -gt "$printed" ] || return 0
    # Empty lines are held back: /init starts its marker with a newline (the program's last line
    # may lack one), so one empty line right before the marker is not the program's.
    while IFS= read -r line; do
        case "$line" in
        ETOK_ISA_START) ;;
        ETOK_ISA_EXIT=*) [ "$blank" -gt 0 ] && blank=$((blank - 1)) ;;
        '') blank=$((blank + 1)) ;;
        *)
            while [ "$blank" -gt 0 ]; do echo; blank=$((blank - 1)); done
            printf '%s\n' "$line"
            ;;
        esac
    done < <(tr -d '\r' <"$WORK/out.log" | sed -n "$((printed + 1)),${total}p")
    printed=$total
}
while :; do
    emit
    if [ -f "$WORK/out.log" ]; then
        # complete lines only: the UART delivers a character at a time, and a partial
        # "ETOK_ISA_EXIT=13" of a status 134 must not be read as 13
        st=$(tr -d '\r' <"$WORK/out.log" | head -n "$printed" | sed -n 's/^ETOK_ISA_EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
        [ -n "$st" ] && { status=$st; break; }
    fi
    if ! kill -0 "$BOCHS_PID" 2>/dev/null; then why="Bochs exited before the program reported"; break; fi
    if [ -f "$WORK/kern.log" ] && grep -q 'Kernel panic' "$WORK/kern.log"; then why="guest kernel panic"; break; fi
    if [ $(($(date +%s) - T0)) -ge "$TIMEOUT" ]; then why="timeout after ${TIMEOUT}s"; break; fi
    # A Bochs that used no CPU for 60 s is stuck (seen once: a self-deadlock on a lock, blocked
    # in futex(); logging from its SIGALRM handler is the likely cause, hence info: ignore).
    polls=$((polls + 1))
    if [ $((polls % 60)) -eq 0 ] && [ -r "/proc/$BOCHS_PID/stat" ]; then
        cpu=$(awk '{print $14 + $15}' "/proc/$BOCHS_PID/stat" 2>/dev/null)
        if [ -n "$cpu" ] && [ "$cpu" = "$lastcpu" ]; then why="Bochs stopped running (no CPU time for 60 s)"; break; fi
        lastcpu=$cpu
    fi
    sleep 1
done
emit
if [ -z "$status" ] && [ -f "$WORK/out.log" ]; then # the marker may have come with Bochs' exit
    status=$(tr -d '\r' <"$WORK/out.log" | head -n "$printed" | sed -n 's/^ETOK_ISA_EXIT=\([0-9][0-9]*\)$/\1/p' | tail -n 1)
fi
while [ "$blank" -gt 0 ]; do echo; blank=$((blank - 1)); done
T1=$(date +%s)
kill "$BOCHS_PID" 2>/dev/null
wait "$BOCHS_PID" 2>/dev/null
BOCHS_PID=""
if [ -n "$status" ]; then
    say "done in $((T1 - T0)) s wall (boot + run, emulated; not a speed figure), exit status $status"
    exit "$status"
fi
printf 'isa_emulate: %s (model %s, %s)\n' "$why" "$MODEL" "$(basename "$KERNEL")" >&2
printf 'isa_emulate: last kernel messages:\n' >&2
tr -d '\r' <"$WORK/kern.log" 2>/dev/null | tail -n 15 | sed 's/^/  /' >&2
grep -E '\]p\[|PANIC|>>' "$WORK/bochs.log" 2>/dev/null | tail -n 5 | sed 's/^/  bochs: /' >&2
tail -n 5 "$WORK/bochs.stdout" 2>/dev/null | sed 's/^/  bochs: /' >&2
[ -z "$LOGDIR" ] && printf 'isa_emulate: rerun with --log DIR to keep the logs\n' >&2
case "$why" in timeout*) exit $EX_TIMEOUT ;; esac
exit $EX_HARNESS
