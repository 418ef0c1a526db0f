/* fuzz_report.c — libFuzzer target: a run record that loads (from any bytes; see fuzz_record
 * for the loader itself) goes through what `etok report --format md|json|html` does: the §3
 * metrics (bootstrap CIs, series, phase split) and the Markdown, JSON and HTML reports (inline
 * SVG, escaped strings), without a crash, leak or sanitizer report. The bootstrap runs 20
 * iterations instead of 1000: the same code paths, faster. Built with -DETOK_FUZZ=ON (make
 * fuzz); replayed over its seed corpus by ctest fuzz_replay_report in the ordinary builds. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/metrics.h"
#include "etok/record.h"
#include "etok/report.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    etok_record r;
    etok_err err;
    memset(&err, 0, sizeof err);
    if (etok_record_from_json_text(&r, text, "fuzz", &err) == 0) {
        etok_metrics m;
        memset(&m, 0, sizeof m);
        etok_metrics_opts o = {.seed = 1, .bootstrap_iters = 20};
        if (etok_metrics_compute(&r, &o, &m, &err) == 0) {
            free(etok_report_md(&r, &m, 1));
            free(etok_report_md(&r, &m, 0));
            free(etok_report_json(&r, &m));
            free(etok_report_html(&r, &m));
        } else if (!err.msg[0]) {
            abort(); /* a record the metrics refuse says why */
        }
        etok_metrics_free(&m);
    }
    etok_record_free(&r);
    free(text);
    return 0;
}
