/* fuzz_scenario.c — libFuzzer target for the scenario loader (etok_scenario_from_json_text, the
 * parser behind `etok tpf SCENARIO` minus the file read): any bytes either load or fail with an
 * input error that names the source; a scenario that loads is evaluated by the TPF model, with
 * each of its levers applied on a copy, and compared (no crash, no non-finite headline figure
 * on a feasible scenario). The same bytes also go through the quantity ("2 MW") and sweep
 * ("facility.power_w=1e5:1e7:50:log") string parsers. Built with -DETOK_FUZZ=ON (make fuzz). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/scenario.h"
#include "etok/tpf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_err(const etok_err *err, const char *what) {
    if (!err->msg[0] || !strstr(err->msg, what)) {
        fprintf(stderr, "error without its source: '%s'\n", err->msg);
        abort();
    }
    if (err->exit_code != ETOK_EXIT_INPUT) {
        fprintf(stderr, "bad input gave exit code %d: %s\n", err->exit_code, err->msg);
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    etok_scenario_file *f = malloc(sizeof *f);
    etok_tpf_result *a = malloc(sizeof *a), *b = malloc(sizeof *b);
    etok_err err;
    memset(&err, 0, sizeof err);
    if (etok_scenario_from_json_text(text, "fuzz-scenario", f, &err) == 0) {
        memset(&err, 0, sizeof err);
        if (etok_tpf_evaluate(&f->s, f->price_per_kwh, a, &err) == 0) {
            for (size_t i = 0; i < f->n_levers; i++) {
                etok_tpf_scenario s = f->s;
                etok_err le;
                memset(&le, 0, sizeof le);
                if (etok_lever_apply(&s, f->levers[i], &le) != 0) abort(); /* checked at load */
                if (etok_tpf_evaluate(&s, f->price_per_kwh, b, &le) == 0) {
                    etok_tpf_change ch[64];
                    etok_tpf_compare(a, b, ch, 64);
                }
            }
        } else if (!err.msg[0]) {
            abort(); /* an infeasible scenario says why */
        }
    } else {
        check_err(&err, "fuzz-scenario");
    }
    /* the CLI's string parsers, over the same bytes */
    static const char dims[] = {'P', 'M', 'B', 'F', '1'};
    for (size_t i = 0; i < sizeof dims; i++) {
        double v;
        memset(&err, 0, sizeof err);
        if (etok_quantity_parse(text, dims[i], "fuzz-field", &v, &err) == 0) {
            if (!isfinite(v)) abort();
        } else if (!strstr(err.msg, "fuzz-field")) {
            fprintf(stderr, "quantity error without its field: '%s'\n", err.msg);
            abort();
        }
    }
    etok_sweep_spec sp;
    memset(&err, 0, sizeof err);
    if (etok_sweep_parse(text, &sp, &err) != 0 && !err.msg[0]) abort();
    free(a);
    free(b);
    free(f);
    free(text);
    return 0;
}
