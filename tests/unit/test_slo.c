/* test_slo.c — every SLO and the quality gate at, just below and just above its threshold
 * (METRICS.md: a request meets s* when TTFT <= ttft_slo and TPOT <= tpot_slo; the q* gate is
 * met when accuracy >= q*), and goodput counting exactly the requests meeting both.
 *
 * The times are dyadic (0.5 s, 0.25 s, ...) so TTFT and TPOT are exact in binary and "at the
 * threshold" means equal, not equal up to rounding; "just below/above" is 1e-9 s away. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etok/metrics.h"

static const etok_metric *get(const etok_metrics *m, const char *name) {
    const etok_metric *x = etok_metrics_get(m, name, "");
    if (!x) fail_msg("metric %s missing", name);
    return x;
}

static double val(const etok_metrics *m, const char *name) {
    const etok_metric *x = get(m, name);
    if (!x->valid) fail_msg("metric %s invalid: %s", name, x->note);
    return x->value;
}

/* A request sent at `send` with first token at send + ttft and n tokens tpot apart. */
static void add_req(etok_record *r, double send, double ttft, double tpot, int n, int pass) {
    etok_request *q = etok_record_add_request(r);
    snprintf(q->id, sizeof q->id, "r%zu", r->n_requests);
    q->t_send_s = send;
    q->tokens_in = 8;
    q->tokens_out = n;
    q->token_times_s = malloc((size_t)n * sizeof(double));
    for (int i = 0; i < n; i++) q->token_times_s[i] = send + ttft + i * tpot;
    q->n_token_times = (size_t)n;
    q->t_first_token_s = q->token_times_s[0];
    q->t_done_s = q->token_times_s[n - 1];
    q->ok = 1;
    q->quality_checked = 1;
    q->quality_pass = pass;
    q->energy_j = -1;
}

/* One request: TTFT 0.5 s, TPOT 0.25 s, 5 tokens, passing its check. */
static void one_request(etok_record *r, double ttft_slo, double tpot_slo) {
    etok_record_init(r);
    r->window_start_s = 0;
    r->window_end_s = 4;
    r->ttft_slo_s = ttft_slo;
    r->tpot_slo_s = tpot_slo;
    r->quality_target = -1;
    add_req(r, 1.0, 0.5, 0.25, 5, 1);
}

static double attainment(double ttft_slo, double tpot_slo, double *goodput_rps) {
    etok_record r;
    one_request(&r, ttft_slo, tpot_slo);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    const etok_metric *t = etok_metrics_get(&m, "ttft_s", "p50");
    assert_non_null(t);
    assert_true(t->value == 0.5);
    const etok_metric *p = etok_metrics_get(&m, "tpot_s", "p50");
    assert_non_null(p);
    assert_true(p->value == 0.25);
    double a = val(&m, "slo_attainment");
    if (goodput_rps) *goodput_rps = val(&m, "goodput_rps");
    etok_metrics_free(&m);
    etok_record_free(&r);
    return a;
}

static void ttft_slo_boundary(void **st) {
    (void)st;
    double g;
    assert_true(attainment(0.5, 0, &g) == 1.0); /* equal: met */
    assert_true(g == 0.25);                      /* 1 request in a 4 s window */
    assert_true(attainment(0.5 + 1e-9, 0, &g) == 1.0);
    assert_true(attainment(0.5 - 1e-9, 0, &g) == 0.0); /* just under: missed */
    assert_true(g == 0.0);
}

static void tpot_slo_boundary(void **st) {
    (void)st;
    double g;
    assert_true(attainment(0, 0.25, &g) == 1.0);
    assert_true(g == 0.25);
    assert_true(attainment(0, 0.25 + 1e-9, &g) == 1.0);
    assert_true(attainment(0, 0.25 - 1e-9, &g) == 0.0);
    assert_true(g == 0.0);
    /* both at once: each binds on its own */
    assert_true(attainment(0.5, 0.25, NULL) == 1.0);
    assert_true(attainment(0.5 - 1e-9, 0.25, NULL) == 0.0);
    assert_true(attainment(0.5, 0.25 - 1e-9, NULL) == 0.0);
}

/* Four checked answers, two pass: accuracy 0.5 exactly. */
static void gate(double q_star, int *met, double *goodput_tps) {
    etok_record r;
    etok_record_init(&r);
    r.window_start_s = 0;
    r.window_end_s = 8;
    r.quality_target = q_star;
    for (int i = 0; i < 4; i++) add_req(&r, 1.0 + i, 0.5, 0.25, 3, i % 2 == 0);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    assert_true(val(&m, "accuracy") == 0.5);
    *met = m.quality_gate_met;
    *goodput_tps = val(&m, "goodput_tps");
    etok_metrics_free(&m);
    etok_record_free(&r);
}

static void quality_gate_boundary(void **st) {
    (void)st;
    int met;
    double gt;
    gate(0.5, &met, &gt);
    assert_int_equal(met, 1); /* accuracy == q*: met */
    /* goodput: the two passing requests (3 tokens each) over the 8 s window */
    assert_true(gt == 6.0 / 8.0);
    gate(0.5 - 1e-9, &met, &gt);
    assert_int_equal(met, 1);
    gate(0.5 + 1e-9, &met, &gt);
    assert_int_equal(met, 0);
    gate(-1, &met, &gt); /* no q*: the gate is open */
    assert_int_equal(met, 1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(ttft_slo_boundary),
        cmocka_unit_test(tpot_slo_boundary),
        cmocka_unit_test(quality_gate_boundary),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
