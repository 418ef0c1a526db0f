#!/bin/sh
# e2e: `etok report` renders the full reporting set of a bench record (hand-built fixture,
# values hand-computed in tests/unit/test_metrics.c) as Markdown, run.json and a
# self-contained HTML page; when Debian's chromium is installed, the page is rendered
# headless to a PNG (a real browser accepts it; look at it with any image viewer).
set -u
ETOK=${ETOK_BIN:-./build/etok}
SRC=${ETOK_SOURCE_DIR:-.}
REC="$SRC/tests/fixtures/records/bench_hand.json"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
fail=0
ck() { if ! eval "$2"; then echo "FAIL: $1"; fail=1; fi; }

"$ETOK" report "$REC" --format md > "$T/r.md"; ck "md exit" "[ $? = 0 ]"
for f in "J / output token | 125 | J/token | power" "J / input token (prefill) | 15.38" \
         "J / decode token | 89.74" "quality-conditioned J / token | 200" "TTFT p90 | 1.9 | s | clock" \
         "SLO attainment | 0.5" "goodput (requests) | 0.1" "energy cost / 1M output tokens | 10.42" \
         "phase split: serial_phases" "measured binding constraint: device_power_cap" \
         "measured binding constraint | device_power_cap | – | engine+probe | – | highest of MFU 0.0038, MBU 0.08, power/limit 0.5"; do
    ck "md has '$f'" "grep -qF -- '$f' '$T/r.md'"
done
"$ETOK" report "$REC" --format json -o "$T/run.json"; ck "json exit" "[ $? = 0 ]"
ck "run.json has metrics" "grep -q '\"metrics\"' '$T/run.json'"
ck "run.json has goodput_tps" "grep -q '\"goodput_tps\"' '$T/run.json'"
# run.json is itself a record: it reports again identically
"$ETOK" report "$T/run.json" --format md > "$T/r2.md"; ck "run.json reloads" "[ $? = 0 ]"
ck "same table from run.json" "cmp -s '$T/r.md' '$T/r2.md'"
"$ETOK" report "$REC" --format html -o "$T/report.html"; ck "html exit" "[ $? = 0 ]"
ck "html has 5 svg" "[ \$(grep -o '<svg' '$T/report.html' | wc -l) = 5 ]"
ck "html has no script" "! grep -q '<script' '$T/report.html'"
ck "html has no remote refs" "! grep -Eq '(src|href)=\"https?:' '$T/report.html'"
"$ETOK" report "$REC" --format pdf > /dev/null 2>&1; ck "bad format -> usage" "[ $? = 2 ]"

for b in chromium chromium-browser; do
    if command -v "$b" > /dev/null 2>&1; then
        timeout 60 "$b" --headless --no-sandbox --disable-gpu --hide-scrollbars --window-size=1400,2200 \
            --screenshot="$T/report.png" "file://$T/report.html" > /dev/null 2>&1
        ck "chromium screenshot" "[ -s '$T/report.png' ] && [ \$(wc -c < '$T/report.png') -gt 20000 ]"
        [ -n "${ETOK_KEEP_SCREENSHOT:-}" ] && cp "$T/report.png" "$ETOK_KEEP_SCREENSHOT"
        break
    fi
done
[ $fail = 0 ] && echo "report_bench: ok"
exit $fail
