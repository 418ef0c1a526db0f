/* test_run_summary.c — render/run_summary.c: every energy figure carries boundary, source and
 * uncertainty; estimates are labelled as such; unknown figures are "unknown"/empty/null, never
 * 0; JSON uses the METRICS.md names; CSV has one total row and one row per trace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/run_summary.h"

static void build(etok_record *r, etok_source src, int idle, int tokens) {
    etok_record_init(r);
    snprintf(r->kind, sizeof r->kind, "run");
    snprintf(r->command, sizeof r->command, "sleep 1");
    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "estimate");
    snprintf(t->domain, sizeof t->domain, "cpu");
    t->source = src;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "J");
    t->scale_to_si = 1;
    t->summable = 1;
    t->error_band = src == ETOK_SOURCE_ESTIMATE ? 0.5 : 0;
    t->resolution_si = 0.001;
    etok_trace_add_sample(t, 0, 0);
    etok_trace_add_sample(t, 2, 20);
    etok_trace_add_sample(t, 4, 60);
    etok_trace *psys = etok_record_add_trace(r); /* may move the array: copy from it anew */
    *psys = r->traces[0];
    psys->samples = NULL;
    psys->n_samples = 0;
    snprintf(psys->domain, sizeof psys->domain, "psys");
    psys->summable = 0;
    etok_trace_add_sample(psys, 0, 0);
    etok_trace_add_sample(psys, 4, 100);
    if (idle) { r->idle_start_s = 0; r->idle_end_s = 2; }
    r->window_start_s = 2;
    r->window_end_s = 4;
    if (tokens) { r->tokens_known = 1; r->tokens_out = 8; }
    r->pue = 1.5;
}

static char *render(void (*fn)(FILE *, const etok_record *, const etok_energy_summary *), const etok_record *r,
                    const etok_energy_summary *s) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fn(f, r, s);
    fclose(f);
    return buf;
}

static void text_fn(FILE *f, const etok_record *r, const etok_energy_summary *s) { etok_run_summary_text(f, r, s, "x.json"); }

static void estimates_are_labelled_and_figures_carry_uncertainty(void **state) {
    (void)state;
    etok_record r;
    build(&r, ETOK_SOURCE_ESTIMATE, 1, 1);
    etok_energy_summary s;
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    char *t = render(text_fn, &r, &s);
    assert_non_null(strstr(t, "energy          40 ± 20 J   [device boundary, ESTIMATE (model, not a measurement)]"));
    assert_non_null(strstr(t, "idle power      10.0 ± 5.0 W"));
    assert_non_null(strstr(t, "dynamic energy  20 ± 22 J"));
    assert_non_null(strstr(t, "J/token         5.0 ± 2.5 J per output token"));
    assert_non_null(strstr(t, "PUE-adjusted    30 ± 15 W"));
    assert_non_null(strstr(t, "not summed")); /* psys */
    assert_non_null(strstr(t, "record          x.json"));
    free(t);
    char *md = render(etok_run_summary_markdown, &r, &s);
    assert_non_null(strstr(md, "| energy_j | 40.000 | 20.000 | J |"));
    assert_non_null(strstr(md, "ESTIMATE (model, not a measurement)"));
    free(md);
    etok_energy_summary_free(&s);
    etok_record_free(&r);

    /* a counter is not called an estimate */
    build(&r, ETOK_SOURCE_COUNTER, 1, 1);
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    t = render(text_fn, &r, &s);
    assert_null(strstr(t, "ESTIMATE"));
    assert_non_null(strstr(t, "[device boundary, counter]"));
    free(t);
    etok_energy_summary_free(&s);
    etok_record_free(&r);
}

static void unknown_is_never_zero(void **state) {
    (void)state;
    etok_record r;
    build(&r, ETOK_SOURCE_COUNTER, 0, 0);
    etok_energy_summary s;
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    char *t = render(text_fn, &r, &s);
    assert_non_null(strstr(t, "idle power      unknown"));
    assert_non_null(strstr(t, "tokens          unknown"));
    assert_null(strstr(t, "dynamic energy"));
    free(t);
    json_t *j = etok_run_summary_json(&r, &s);
    assert_true(json_is_null(json_object_get(j, "idle_power_w")));
    assert_true(json_is_null(json_object_get(j, "dynamic_energy_j")));
    assert_true(json_is_null(json_object_get(j, "joules_per_output_token")));
    assert_true(json_number_value(json_object_get(j, "energy_j")) == 40.0);
    assert_string_equal(json_string_value(json_object_get(j, "source")), "counter");
    assert_string_equal(json_string_value(json_object_get(j, "boundary")), "device");
    assert_int_equal(json_array_size(json_object_get(j, "traces")), 2);
    json_decref(j);
    char *csv = render(etok_run_summary_csv, &r, &s);
    /* header + total + 2 traces */
    int lines = 0;
    for (char *p = csv; *p; p++) lines += *p == '\n';
    assert_int_equal(lines, 4);
    assert_non_null(strstr(csv, "\ntotal,,,device,counter,,2,40,"));
    /* idle power, dynamic energy and J/token are empty, not 0: after mean power (20 W) */
    assert_non_null(strstr(csv, ",20,,,,30,0,0,"));
    free(csv);
    etok_energy_summary_free(&s);
    etok_record_free(&r);

    /* no traces at all */
    etok_record_init(&r);
    r.window_end_s = 1;
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    t = render(text_fn, &r, &s);
    assert_non_null(strstr(t, "energy          unknown"));
    free(t);
    etok_energy_summary_free(&s);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(estimates_are_labelled_and_figures_carry_uncertainty),
        cmocka_unit_test(unknown_is_never_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
