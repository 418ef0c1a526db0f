#!/bin/sh
# install.sh — `make install` as a user gets it: cmake --install into a staged prefix (DESTDIR +
# PREFIX), the layout (bin, libetok.so with its SONAME and only the API exported, libetok.a, the
# one public header, etok.pc, share/etok data, man pages for every command, bash completion,
# docs), then from another directory, with the installed tree moved away from where it was
# installed: the installed `etok tpf`, `etok bench --requests 2` (when the default model is
# available; otherwise that line is skipped with a message), `man -l` on every page, the example
# programs compiled against the installed header via pkg-config (shared and static) and run,
# completion, and the manifest-driven uninstall.
set -u
SRC=$(cd "${ETOK_SOURCE_DIR:-.}" && pwd)
B=$(cd "${ETOK_BUILD_DIR:-build}" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
bad() { echo "FAIL: $*"; fail=1; }
die() { echo "FAIL: $*"; exit 1; }
CC=${CC:-cc}
SAN=""
if [ -n "${ETOK_SANITIZED:-}" ]; then CC=clang; SAN="-fsanitize=address,undefined"; fi

DESTDIR="$T/stage" cmake --install "$B" --prefix /opt/etok > "$T/install.log" 2>&1 || { cat "$T/install.log"; die "cmake --install"; }
P0="$T/stage/opt/etok"
[ -s "$B/install_manifest.txt" ] || bad "no install manifest"

# ---- layout ----
for f in bin/etok lib/libetok.a include/etok/etok.h lib/pkgconfig/etok.pc share/etok/hardware/h100-sxm.json \
         share/etok/scenarios/h100x8-llama31-8b-kv-int8.json share/etok/evals/default.jsonl \
         share/etok/models/default-model.sha256 share/etok/scripts/fetch_model.sh share/man/man1/etok.1 \
         share/bash-completion/completions/etok share/doc/etok/METRICS.md share/doc/etok/API.md \
         share/doc/etok/examples/measure_loop.c; do
    [ -f "$P0/$f" ] || bad "not installed: $f"
done
[ "$(ls "$P0/include/etok")" = "etok.h" ] || bad "internal headers installed: $(ls "$P0/include/etok" | tr '\n' ' ')"
[ "$(readlink "$P0/lib/libetok.so")" = libetok.so.1 ] || bad "lib/libetok.so -> $(readlink "$P0/lib/libetok.so")"
[ "$(readlink "$P0/lib/libetok.so.1")" = libetok.so.1.0.0 ] || bad "lib/libetok.so.1 -> $(readlink "$P0/lib/libetok.so.1")"
soname=$(objdump -p "$P0/lib/libetok.so.1.0.0" | awk '/SONAME/ {print $2}')
[ "$soname" = libetok.so.1 ] || bad "SONAME '$soname'"
# exactly the API is exported
nm -D --defined-only "$P0/lib/libetok.so.1.0.0" | awk '$2 == "T" {print $3}' | sed 's/@.*//' | sort > "$T/exported"
grep -o '^ETOK_API [^(]*(' "$SRC/include/etok/etok.h" | sed 's/.*[ *]\([a-z_]*\)($/\1/' | sort > "$T/api"
cmp -s "$T/exported" "$T/api" || { bad "libetok.so exports other than the API:"; diff "$T/api" "$T/exported" | head; }
# a man page per command
"$P0/bin/etok" --help > "$T/help" || bad "etok --help"
cmds=$(sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p' "$T/help")
for c in $cmds; do [ -f "$P0/share/man/man1/etok-$c.1" ] || bad "no man page for etok $c"; done

# ---- the installed tree moved elsewhere; run from another directory ----
P="$T/moved/etok"
mkdir -p "$T/moved" "$T/elsewhere" && cp -a "$P0" "$P" || die "copy"
cd "$T/elsewhere"
unset ETOK_DATA_DIR ETOK_MODEL
export HOME="$T/home" XDG_CACHE_HOME="$T/cache"
"$P/bin/etok" tpf --help | grep -q "here: $P/share/etok\$" || bad "installed etok does not use its own share/etok: $("$P/bin/etok" tpf --help | grep 'here:')"
"$P/bin/etok" tpf h100x8-llama31-8b-kv-int8 > "$T/tpf.txt" 2> "$T/tpf.err" || bad "installed etok tpf: $(cat "$T/tpf.err")"
grep -qi "binding" "$T/tpf.txt" || bad "etok tpf output: $(head -5 "$T/tpf.txt")"
"$P/bin/etok" tpf --list scenarios | grep -q h100x8-llama31-8b-kv-int8 || bad "tpf --list scenarios"

MODEL="$SRC/models/SmolLM2-135M-Instruct.Q4_1.gguf"
if [ -f "$MODEL" ]; then
    # found through the documented cache directory ($XDG_CACHE_HOME/etok/models)
    mkdir -p "$XDG_CACHE_HOME/etok/models" && ln -s "$(readlink -f "$MODEL")" "$XDG_CACHE_HOME/etok/models/"
    "$P/bin/etok" bench --requests 2 --warmup 0 --idle 0 --max-tokens 4 --meter estimate -q -o "$T/bench" \
        > "$T/bench.out" 2> "$T/bench.err" || bad "installed etok bench --requests 2: $(tail -3 "$T/bench.err")"
    [ -s "$T/bench/run.json" ] && [ -s "$T/bench/report.md" ] || bad "bench outputs missing"
    "$P/bin/etok" report "$T/bench/run.json" > /dev/null || bad "etok report on the bench record"
    rm "$XDG_CACHE_HOME/etok/models/SmolLM2-135M-Instruct.Q4_1.gguf"
else
    echo "SKIP (line): installed etok bench --requests 2: the default model is not available (make model)"
fi
"$P/bin/etok" generate -m "$T/none.gguf" -p hi > /dev/null 2> "$T/gen.err"; rc=$?
[ $rc = 3 ] && grep -q "none.gguf' (given with -m)" "$T/gen.err" || bad "generate -m missing: rc $rc $(cat "$T/gen.err")"

# ---- man pages ----
if command -v man > /dev/null 2>&1; then
    for page in "$P"/share/man/man1/*.1; do
        MANPAGER=cat MANWIDTH=100 man -l "$page" > "$T/man.txt" 2> "$T/man.err" || bad "man -l $page: $(cat "$T/man.err")"
        n=$(basename "$page" .1)
        grep -q "^NAME" "$T/man.txt" || bad "$n: no NAME section"
        case $n in etok) grep -q "usage: etok COMMAND" "$T/man.txt" || bad "etok.1 has no usage" ;;
                   *) grep -q "usage: etok ${n#etok-}" "$T/man.txt" || bad "$n.1 has no usage line" ;; esac
    done
else
    bad "man not found (scripts/deps.sh installs man-db)"
fi

# ---- examples against the installed header and library, via pkg-config ----
export PKG_CONFIG_PATH="$P/lib/pkgconfig"
[ "$(pkg-config --modversion etok)" = "$("$P/bin/etok" --version | awk '{print $2}')" ] || bad "etok.pc version"
cp "$P/share/doc/etok/examples/"*.c "$T/elsewhere/"
$CC $SAN -Wall -Wextra -Werror measure_loop.c $(pkg-config --cflags --libs etok) -lm -o ml 2> "$T/cc.err" \
    || bad "measure_loop.c against the installed etok: $(cat "$T/cc.err")"
ldd ./ml | grep -q "libetok.so.1 => $P/lib/libetok.so.1" 2>/dev/null || LD_LIBRARY_PATH="$P/lib" ldd ./ml | grep -q "$P/lib/libetok.so.1" \
    || bad "ml does not load the installed libetok: $(LD_LIBRARY_PATH="$P/lib" ldd ./ml | grep etok)"
LD_LIBRARY_PATH="$P/lib" ./ml estimate ml.json > ml.out 2> ml.err || bad "measure_loop: $(cat ml.err)"
grep -q "^loop .* J ± .*(estimate, device boundary)" ml.out || bad "measure_loop output: $(cat ml.out)"
"$P/bin/etok" report ml.json --format json > ml.rep || bad "etok report on the example's record"
grep -q '"kind": *"api"' ml.rep || bad "the example's record is not kind api"
# static: libetok.a, no libetok.so at run time
$CC $SAN measure_loop.c $(pkg-config --cflags etok) "$P/lib/libetok.a" $(pkg-config --libs jansson libcurl libmicrohttpd) \
    -lpthread -ldl -lm -o ml_static 2> "$T/cc.err" || bad "static link: $(cat "$T/cc.err")"
ldd ./ml_static | grep -q libetok && bad "ml_static still needs libetok.so"
./ml_static estimate > /dev/null 2> ml.err || bad "static measure_loop: $(cat ml.err)"
$CC $SAN -Wall -Wextra -Werror generate_loop.c $(pkg-config --cflags --libs etok) -o gl 2> "$T/cc.err" \
    || bad "generate_loop.c: $(cat "$T/cc.err")"
if [ -f "$MODEL" ]; then
    LD_LIBRARY_PATH="$P/lib" ./gl "$MODEL" estimate 4 > gl.out 2> gl.err || bad "generate_loop: $(cat gl.err)"
    grep -q "J/output-token (estimate, device boundary)" gl.out || bad "generate_loop output: $(cat gl.out)"
else
    echo "SKIP (line): generate_loop: the default model is not available"
fi

# ---- bash completion ----
if command -v bash > /dev/null 2>&1; then
    out=$(bash -c '. "$1"; COMP_WORDS=("$2" tp); COMP_CWORD=1; _etok; echo "${COMPREPLY[*]}"' _ \
          "$P/share/bash-completion/completions/etok" "$P/bin/etok")
    [ "$out" = tpf ] || bad "completion of 'etok tp': '$out'"
    out=$(bash -c '. "$1"; COMP_WORDS=("$2" tpf h100x8); COMP_CWORD=2; _etok; echo "${COMPREPLY[*]}"' _ \
          "$P/share/bash-completion/completions/etok" "$P/bin/etok")
    echo "$out" | grep -q h100x8-llama31-8b-kv-int8 || bad "completion of a scenario: '$out'"
    out=$(bash -c '. "$1"; COMP_WORDS=("$2" bench --max-t); COMP_CWORD=2; _etok; echo "${COMPREPLY[*]}"' _ \
          "$P/share/bash-completion/completions/etok" "$P/bin/etok")
    [ "$out" = --max-tokens ] || bad "completion of 'etok bench --max-t': '$out'"
fi

# ---- uninstall: exactly the manifest ----
DESTDIR="$T/stage" sh "$SRC/scripts/uninstall.sh" "$B/install_manifest.txt" 2> "$T/un.err" || bad "uninstall: $(cat "$T/un.err")"
left=$(find "$P0" -type f -o -type l | head -5)
[ -z "$left" ] || bad "left after uninstall: $left"
[ $fail = 0 ] && echo "install: ok"
exit $fail
