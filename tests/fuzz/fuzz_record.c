/* fuzz_record.c — libFuzzer target: any bytes given to the run record loader either load or
 * fail with an input error that names the source; a record that loads goes through the energy
 * summary and the run summaries `etok report` prints (text, Markdown, CSV, JSON) without a
 * crash, and survives a save/load round trip. The §3 metrics and the Markdown / JSON / HTML
 * reports of the same records are fuzzed by fuzz_report (slower per input, so apart). Built with -DETOK_FUZZ=ON (make fuzz); replayed over its seed corpus
 * (tests/fuzz/corpus/fuzz_record/) by ctest fuzz_replay_record in the ordinary builds. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/energy.h"
#include "etok/record.h"
#include "etok/run_summary.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void render(const etok_record *r) {
    static FILE *sink;
    if (!sink && !(sink = fopen("/dev/null", "w"))) abort();
    etok_energy_summary s;
    etok_energy_summarize(r, &s);
    etok_run_summary_text(sink, r, &s, "fuzz.json");
    etok_run_summary_markdown(sink, r, &s);
    etok_run_summary_csv(sink, r, &s);
    json_t *j = etok_run_summary_json(r, &s);
    char *t = j ? json_dumps(j, JSON_REAL_PRECISION(17)) : NULL;
    free(t);
    json_decref(j);
    etok_energy_summary_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    etok_record r;
    etok_err err;
    memset(&err, 0, sizeof err);
    if (etok_record_from_json_text(&r, text, "fuzz", &err) == 0) {
        render(&r);
        char *again = etok_record_to_json_text(&r);
        if (again) {
            etok_record r2;
            if (etok_record_from_json_text(&r2, again, "fuzz-again", &err) != 0) {
                fprintf(stderr, "a saved record does not load again: %s\n", err.msg);
                abort();
            }
            etok_record_free(&r2);
            free(again);
        }
    } else if (!strstr(err.msg, "fuzz") || err.exit_code != ETOK_EXIT_INPUT) {
        fprintf(stderr, "record error without its source or with code %d: '%s'\n", err.exit_code, err.msg);
        abort();
    }
    etok_record_free(&r);
    free(text);
    return 0;
}
