/* test_report.c — the renderers: run.json carries the record plus every §3 figure with unit,
 * source and uncertainty (and loads back as a record); report.md has the table; report.html
 * is self-contained with its four inline SVG figures. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench_fixture.h"
#include "etok/metrics.h"
#include "etok/report.h"

static const char *const SECTION3[] = {
    "joules_per_output_token", "joules_per_token", "joules_per_input_token", "joules_per_decode_token",
    "joules_per_request", "joules_per_correct_answer", "quality_conditioned_joules_per_token",
    "pue_adjusted_power_w", "utilization", "utilization_adjusted_token_rate_tps", "deployment_utilization",
    "utilization_adjusted_joules_per_token", "accuracy", "slo_attainment", "goodput_rps", "goodput_tps", "mfu",
    "mbu", "energy_cost_per_mtok", "idle_power_w", "energy_j",
};

static void test_json(void **st) {
    (void)st;
    etok_record r;
    etok_fixture_bench_record(&r, 0.5);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    char *txt = etok_report_json(&r, &m);
    assert_non_null(txt);
    json_error_t je;
    json_t *root = json_loads(txt, 0, &je);
    assert_non_null(root);
    json_t *mo = json_object_get(root, "metrics");
    assert_non_null(mo);
    for (size_t i = 0; i < sizeof SECTION3 / sizeof SECTION3[0]; i++) {
        json_t *x = json_object_get(mo, SECTION3[i]);
        if (!x) fail_msg("run.json lacks metrics.%s", SECTION3[i]);
        assert_true(json_is_number(json_object_get(x, "value")));
        assert_true(json_is_string(json_object_get(x, "unit")));
        assert_true(json_is_string(json_object_get(x, "source")));
        assert_non_null(json_object_get(x, "uncertainty"));
    }
    const char *dists[] = {"ttft_s", "tpot_s", "itl_s", "e2e_s"}, *stats[] = {"p50", "p90", "p99", "mean"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            json_t *x = json_object_get(json_object_get(mo, dists[i]), stats[k]);
            if (!x) fail_msg("run.json lacks metrics.%s.%s", dists[i], stats[k]);
            assert_true(json_is_array(json_object_get(x, "ci95")));
        }
    assert_string_equal(json_string_value(json_object_get(mo, "phase_split_method")), "serial_phases");
    assert_string_equal(json_string_value(json_object_get(mo, "binding_constraint")), "device_power_cap");
    assert_true(json_real_value(json_object_get(json_object_get(mo, "joules_per_output_token"), "value")) == 125.0);
    /* the record part loads back as a record */
    etok_record back;
    assert_int_equal(etok_record_from_json_text(&back, txt, "run.json", &err), 0);
    assert_int_equal(back.n_requests, 2);
    assert_int_equal(back.n_steps, 8);
    etok_record_free(&back);
    json_decref(root);
    free(txt);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

static void test_md_and_html(void **st) {
    (void)st;
    etok_record r;
    etok_fixture_bench_record(&r, 0.6); /* q* not met: gated */
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    char *md = etok_report_md(&r, &m, 1);
    assert_non_null(md);
    assert_non_null(strstr(md, "| J / output token | 125 | J/token | power |"));
    assert_non_null(strstr(md, "| TTFT p90 | 1.9 | s | clock | 95% CI"));
    assert_non_null(strstr(md, "q* gate: NOT met"));
    assert_non_null(strstr(md, "gated: accuracy 0.500 below q* 0.600"));
    free(md);
    md = etok_report_md(&r, &m, 0);
    assert_non_null(strstr(md, "itl_s") ? md : strstr(md, "ITL"));
    free(md);
    char *html = etok_report_html(&r, &m);
    assert_non_null(html);
    assert_true(strncmp(html, "<!DOCTYPE html>", 15) == 0);
    int n_svg = 0;
    for (const char *p = html; (p = strstr(p, "<svg")); p++) n_svg++;
    assert_int_equal(n_svg, 5); /* power, breakdown, TTFT CDF, TPOT CDF, ceilings */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "src=\"http"));
    assert_null(strstr(html, "href=\"http"));
    assert_non_null(strstr(html, "Test CPU &lt;&amp;&gt;")); /* escaped */
    assert_non_null(strstr(html, "Time since window start (s)"));
    assert_non_null(strstr(html, "TTFT SLO"));
    assert_non_null(strstr(html, "(binding)"));
    free(html);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_json), cmocka_unit_test(test_md_and_html)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
