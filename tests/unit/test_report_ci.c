/* test_report_ci.c — every confidence interval, wherever it is rendered, is [lo, hi] with
 * lo <= value <= hi (zero-width intervals occur — many equal latencies — so at least 10
 * intervals with width are required, where a swapped [hi, lo] shows): run.json's `ci95` arrays (against the computed figures too), and the
 * Markdown and HTML tables, whose "95% CI [lo, hi]" cells are parsed as numbers next to the
 * row's value (not prefix-matched). CSV outputs carry no CI (etok run's summary CSV has
 * energy figures with a propagated uncertainty only; the TPF sweep CSV is a model): nothing
 * to check there, and the tests below would not notice a CI added to them, so add one here
 * if that changes. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "bench_fixture.h"
#include "etok/metrics.h"
#include "etok/report.h"

/* The fixture's bench record plus 30 requests of varied latency, so every CI has width. */
static void record_with_spread(etok_record *r) {
    etok_fixture_bench_record(r, 0.5);
    for (int i = 0; i < 30; i++) {
        etok_request *q = etok_record_add_request(r);
        snprintf(q->id, sizeof q->id, "x%d", i);
        q->t_send_s = r->window_start_s + 0.1 + 0.01 * i;
        q->tokens_in = 10;
        q->tokens_out = 4;
        q->token_times_s = malloc(4 * sizeof(double));
        for (int k = 0; k < 4; k++) q->token_times_s[k] = q->t_send_s + 0.2 + 0.03 * ((i * 7) % 11) + 0.1 * k * (1 + i % 3);
        q->n_token_times = 4;
        q->t_first_token_s = q->token_times_s[0];
        q->t_done_s = q->token_times_s[3];
        q->ok = 1;
        q->quality_checked = 1;
        q->quality_pass = i % 3 != 0;
        q->energy_j = -1;
    }
}

static int count_cis(const etok_metrics *m) {
    int n = 0;
    for (size_t i = 0; i < m->n; i++) n += m->m[i].valid && isfinite(m->m[i].ci_lo) && isfinite(m->m[i].ci_hi);
    return n;
}

static void json_ci_is_lo_hi(void **st) {
    (void)st;
    etok_record r;
    record_with_spread(&r);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    assert_true(count_cis(&m) >= 17);
    char *txt = etok_report_json(&r, &m);
    assert_non_null(txt);
    json_error_t je;
    json_t *root = json_loads(txt, 0, &je), *mo = json_object_get(root, "metrics");
    assert_non_null(mo);
    int seen = 0, wide = 0;
    for (size_t i = 0; i < m.n; i++) {
        const etok_metric *x = &m.m[i];
        json_t *o = json_object_get(mo, x->name);
        if (x->stat[0]) o = json_object_get(o, x->stat);
        if (!o) fail_msg("run.json lacks metrics.%s %s", x->name, x->stat);
        json_t *ci = json_object_get(o, "ci95");
        assert_non_null(ci);
        if (!(x->valid && isfinite(x->ci_lo))) {
            assert_true(json_is_null(ci));
            continue;
        }
        seen++;
        assert_true(json_is_array(ci) && json_array_size(ci) == 2);
        double lo = json_number_value(json_array_get(ci, 0)), hi = json_number_value(json_array_get(ci, 1));
        double v = json_number_value(json_object_get(o, "value"));
        wide += lo < hi;
        if (!(lo <= v && v <= hi))
            fail_msg("run.json metrics.%s %s: value %g, ci95 [%g, %g]", x->name, x->stat, v, lo, hi);
        assert_true(fabs(lo - x->ci_lo) <= 1e-9 * (1 + fabs(lo)) && fabs(hi - x->ci_hi) <= 1e-9 * (1 + fabs(hi)));
    }
    assert_int_equal(seen, count_cis(&m));
    assert_true(wide >= 10); /* intervals with width: where [hi, lo] would show */
    json_decref(root);
    free(txt);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

/* A table row's cells between '|' (Markdown) or <td>..</td> (HTML): value cell and
 * uncertainty cell parsed as numbers. */
static int check_ci_text(const char *what, const char *row, const char *value_cell, const char *ci_cell) {
    double v, lo, hi;
    if (sscanf(value_cell, " %lf", &v) != 1) fail_msg("%s: value cell '%.40s' is not a number in: %.200s", what, value_cell, row);
    if (sscanf(ci_cell, " 95%% CI [%lf, %lf]", &lo, &hi) != 2) fail_msg("%s: CI cell '%.60s' does not parse in: %.200s", what, ci_cell, row);
    if (!(lo <= v && v <= hi)) fail_msg("%s: value %g outside its CI [%g, %g]: %.200s", what, v, lo, hi, row);
    return lo < hi;
}

static void markdown_ci_is_lo_hi(void **st) {
    (void)st;
    etok_record r;
    record_with_spread(&r);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    char *md = etok_report_md(&r, &m, 0);
    assert_non_null(md);
    int rows = 0, wide = 0;
    for (char *line = strtok(md, "\n"); line; line = strtok(NULL, "\n")) {
        if (!strstr(line, "95% CI [")) continue;
        /* | name | value | unit | source | uncertainty | note | */
        char copy[1024];
        snprintf(copy, sizeof copy, "%s", line);
        char *cells[8] = {0};
        int nc = 0;
        for (char *p = copy; *p && nc < 8;) {
            char *bar = strchr(p, '|');
            if (!bar) break;
            *bar = 0;
            cells[nc++] = bar + 1;
            p = bar + 1;
        }
        assert_true(nc >= 6);
        wide += check_ci_text("report.md", line, cells[1], cells[4]);
        rows++;
    }
    assert_int_equal(rows, count_cis(&m));
    assert_true(wide >= 10);
    free(md);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

static void html_ci_is_lo_hi(void **st) {
    (void)st;
    etok_record r;
    record_with_spread(&r);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    char *html = etok_report_html(&r, &m);
    assert_non_null(html);
    int rows = 0, wide = 0;
    for (char *tr = html; (tr = strstr(tr, "<tr><td>")); tr++) {
        char *end = strstr(tr, "</tr>");
        assert_non_null(end);
        char row[1024];
        snprintf(row, sizeof row, "%.*s", (int)(end - tr), tr);
        if (!strstr(row, "95% CI [")) continue;
        /* figure, stat, value, unit, source, uncertainty, note */
        char *cells[8] = {0};
        int nc = 0;
        for (char *p = row; nc < 8 && (p = strstr(p, "<td")); ) {
            p = strchr(p, '>') + 1;
            cells[nc++] = p;
        }
        assert_true(nc >= 6);
        wide += check_ci_text("report.html", row, cells[2], cells[5]);
        rows++;
    }
    assert_int_equal(rows, count_cis(&m));
    assert_true(wide >= 10);
    free(html);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(json_ci_is_lo_hi),
        cmocka_unit_test(markdown_ci_is_lo_hi),
        cmocka_unit_test(html_ci_is_lo_hi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
