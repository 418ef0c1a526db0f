/* test_metrics.c — the §3 reporting set on hand-built records, against hand-computed values:
 * both phase-split methods, SLO attainment and goodput, quality gating, percentiles, ratios. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etok/metrics.h"
#include "etok/stats.h"

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

static double val(const etok_metrics *m, const char *name, const char *stat) {
    const etok_metric *x = etok_metrics_get(m, name, stat);
    if (!x) fail_msg("metric %s %s missing", name, stat);
    if (!x->valid) fail_msg("metric %s %s invalid: %s", name, stat, x->note);
    return x->value;
}

static int valid(const etok_metrics *m, const char *name) {
    const etok_metric *x = etok_metrics_get(m, name, "");
    assert_non_null(x);
    return x->valid;
}

/* A node power meter: `w_idle` W on [0, 4.5], `w_run` W from 5 s on, samples every 0.5 s. */
static void add_power(etok_record *r, double w_idle, double w_run, double t_end) {
    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "test");
    snprintf(t->domain, sizeof t->domain, "node");
    t->source = ETOK_SOURCE_POWER;
    t->boundary = ETOK_BOUNDARY_NODE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "W");
    t->scale_to_si = 1;
    t->resolution_si = 0.001;
    t->update_period_s = 0.5;
    t->summable = 1;
    for (double s = 0; s <= t_end + 1e-9; s += 0.5) etok_trace_add_sample(t, s, s < 4.75 ? w_idle : w_run);
}

static etok_request *add_req(etok_record *r, const char *id, double send, int tin, const double *times, int n, int pass) {
    etok_request *q = etok_record_add_request(r);
    snprintf(q->id, sizeof q->id, "%s", id);
    q->t_send_s = send;
    q->tokens_in = tin;
    q->tokens_out = n;
    q->token_times_s = malloc((size_t)n * sizeof(double));
    memcpy(q->token_times_s, times, (size_t)n * sizeof(double));
    q->n_token_times = (size_t)n;
    q->t_first_token_s = times[0];
    q->t_done_s = times[n - 1];
    q->ok = 1;
    q->quality_checked = 1;
    q->quality_pass = pass;
    q->energy_j = -1;
    return q;
}

static void add_step(etok_record *r, double t0, double t1, int p, int d) {
    etok_step *s = etok_record_add_step(r);
    s->t_start_s = t0;
    s->t_end_s = t1;
    s->prefill_tokens = p;
    s->decode_tokens = d;
    s->flops = 1e6 * (p + d);
    s->bytes = 1e7;
}

/* Two serial requests in a 10 s window at 100 W (idle 40 W); see the file for the arithmetic. */
static void serial_record(etok_record *r, double q_star) {
    etok_record_init(r);
    snprintf(r->kind, sizeof r->kind, "bench");
    r->idle_start_s = 0;
    r->idle_end_s = 4;
    r->window_start_s = 5;
    r->window_end_s = 15;
    r->pue = 1.5;
    r->price_per_kwh = 0.2;
    r->quality_target = q_star;
    r->ttft_slo_s = 1.5;
    r->tpot_slo_s = 0.6;
    r->hw.peak_flops = 1e9;
    r->hw.mem_bw_bps = 1e8;
    r->hw.power_limit_w = 200;
    snprintf(r->hw.source, sizeof r->hw.source, "probe");
    add_power(r, 40, 100, 16);
    static const double t1[] = {6.0, 6.5, 7.0, 7.5, 8.0}, t2[] = {11.0, 11.5, 12.5};
    add_req(r, "r1", 5.0, 10, t1, 5, 1);  /* TTFT 1.0, TPOT 0.5: meets s*, passes */
    add_req(r, "r2", 9.0, 20, t2, 3, 0);  /* TTFT 2.0, TPOT 0.75: misses s*, fails */
    add_step(r, 5.0, 6.0, 10, 1);
    for (int i = 0; i < 4; i++) add_step(r, 6.0 + 0.5 * i, 6.5 + 0.5 * i, 0, 1);
    add_step(r, 9.0, 11.0, 20, 1);
    add_step(r, 11.0, 11.5, 0, 1);
    add_step(r, 11.5, 12.5, 0, 1);
}

static void test_serial_run(void **st) {
    (void)st;
    etok_record r;
    serial_record(&r, 0.5);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    NEAR(val(&m, "energy_j", ""), 1000, 1e-6);
    NEAR(val(&m, "idle_power_w", ""), 40, 1e-6);
    NEAR(val(&m, "joules_per_output_token", ""), 125, 1e-6);
    NEAR(val(&m, "joules_per_token", ""), 1000.0 / 38, 1e-6);
    NEAR(val(&m, "joules_per_request", ""), 500, 1e-6);
    NEAR(val(&m, "joules_per_correct_answer", ""), 1000, 1e-6);
    assert_string_equal(m.phase_split_method, "serial_phases");
    /* prefill time 3 s of 6.5 s step time: E_p = 1000*3/6.5 over 30 prompt tokens */
    NEAR(val(&m, "joules_per_input_token", ""), 1000.0 * 3 / 6.5 / 30, 1e-6);
    NEAR(val(&m, "joules_per_decode_token", ""), 1000.0 * 3.5 / 6.5 / 6, 1e-6);
    NEAR(val(&m, "accuracy", ""), 0.5, 1e-12);
    assert_true(m.quality_gate_met);
    NEAR(val(&m, "quality_conditioned_joules_per_token", ""), 200, 1e-6); /* only r1's 5 tokens */
    NEAR(val(&m, "slo_attainment", ""), 0.5, 1e-12);
    NEAR(val(&m, "goodput_rps", ""), 0.1, 1e-12);
    NEAR(val(&m, "goodput_tps", ""), 0.5, 1e-12);
    NEAR(val(&m, "ttft_s", "p50"), 1.5, 1e-12);
    NEAR(val(&m, "ttft_s", "p90"), 1.9, 1e-12);
    NEAR(val(&m, "ttft_s", "p99"), 1.99, 1e-12);
    NEAR(val(&m, "ttft_s", "mean"), 1.5, 1e-12);
    NEAR(val(&m, "tpot_s", "p50"), 0.625, 1e-12);
    NEAR(val(&m, "itl_s", "p50"), 0.5, 1e-12);
    NEAR(val(&m, "itl_s", "p90"), 0.75, 1e-12);
    NEAR(val(&m, "itl_s", "mean"), 3.5 / 6, 1e-12);
    NEAR(val(&m, "e2e_s", "mean"), 3.25, 1e-12);
    NEAR(val(&m, "busy_s", ""), 6.5, 1e-12);
    NEAR(val(&m, "token_rate_tps", ""), 8 / 6.5, 1e-12);
    NEAR(val(&m, "utilization_adjusted_token_rate_tps", ""), 0.8, 1e-12);
    NEAR(val(&m, "deployment_utilization", ""), 0.65, 1e-12);
    NEAR(val(&m, "utilization_adjusted_joules_per_token", ""), 142.5, 1e-6);
    NEAR(val(&m, "pue_adjusted_power_w", ""), 150, 1e-6);
    NEAR(val(&m, "energy_cost_per_mtok", ""), 125 * 1e6 / 3.6e6 * 0.2 * 1.5, 1e-6);
    NEAR(val(&m, "mfu", ""), 38e6 / 10 / 1e9, 1e-12);
    NEAR(val(&m, "mbu", ""), 8e7 / 10 / 1e8, 1e-12);
    NEAR(val(&m, "power_limit_ratio", ""), 0.5, 1e-9);
    assert_string_equal(m.binding_constraint, "device_power_cap");
    NEAR(val(&m, "ceiling_compute_tps", ""), 1e9 * 8 / 38e6, 1e-6);
    NEAR(val(&m, "ceiling_memory_bandwidth_tps", ""), 10, 1e-9);
    NEAR(val(&m, "ceiling_device_power_cap_tps", ""), 1.6, 1e-9);
    assert_string_equal(m.tpf_binding_ceiling, "device_power_cap");
    NEAR(val(&m, "utilization", ""), 0.5, 1e-9);
    /* every energy figure carries the meter's source and an uncertainty */
    const etok_metric *j = etok_metrics_get(&m, "joules_per_output_token", "");
    assert_string_equal(j->source, "power");
    assert_true(isfinite(j->uncertainty) && j->uncertainty >= 0);
    /* breakdown sums to the window energy: idle 40 W x 10 s, the rest split 3 : 3.5 */
    NEAR(m.breakdown_idle_j, 400, 1e-6);
    NEAR(m.breakdown_prefill_j + m.breakdown_decode_j, 600, 1e-6);
    NEAR(m.breakdown_prefill_j, 600 * 3 / 6.5, 1e-6);
    assert_true(m.n_series > 0);
    NEAR(m.series[0].power_w, 100, 1e-6);
    assert_int_equal(m.n_prefill, 2);
    assert_int_equal(m.n_ttft, 2);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

/* --endpoint: a server's usage counts one more token than it streamed (the end token): the
 * tokens_out figure uses the usage and its note shows both counts and the difference. */
static void test_usage_vs_chunks(void **st) {
    (void)st;
    etok_record r;
    serial_record(&r, 0.5);
    etok_metrics m;
    etok_err err = {0};
    /* engine-counted (no usage): no note */
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    assert_null(strstr(etok_metrics_get(&m, "tokens_out", "")->note, "usage"));
    etok_metrics_free(&m);
    for (size_t i = 0; i < r.n_requests; i++) snprintf(r.requests[i].token_count_source, sizeof r.requests[i].token_count_source, "usage");
    r.requests[0].tokens_out = 6; /* 5 chunks */
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    NEAR(val(&m, "tokens_out", ""), 9, 0);
    assert_non_null(strstr(etok_metrics_get(&m, "tokens_out", "")->note, "carried 8 of its 9 tokens (+1: usage exceeded the chunks in 1 requests"));
    etok_metrics_free(&m);
    etok_record_free(&r);
}

static void test_quality_gate(void **st) {
    (void)st;
    etok_record r;
    serial_record(&r, 0.6); /* accuracy 0.5 < q* 0.6 */
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    assert_false(m.quality_gate_met);
    assert_false(valid(&m, "quality_conditioned_joules_per_token"));
    assert_non_null(strstr(etok_metrics_get(&m, "quality_conditioned_joules_per_token", "")->note, "gated"));
    /* per-request goodput is not gated: r1 still meets q* and s* */
    NEAR(val(&m, "goodput_rps", ""), 0.1, 1e-12);
    etok_metrics_free(&m);
    /* tighter SLO: nobody meets TTFT 0.9 s */
    r.quality_target = -1;
    r.ttft_slo_s = 0.9;
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    NEAR(val(&m, "slo_attainment", ""), 0, 1e-12);
    NEAR(val(&m, "goodput_rps", ""), 0, 1e-12);
    assert_false(valid(&m, "quality_conditioned_joules_per_token")); /* no tokens meet both */
    etok_metrics_free(&m);
    /* a failed request counts against attainment and accuracy stays over checked ones */
    r.ttft_slo_s = 1.5;
    r.requests[0].ok = 0;
    snprintf(r.requests[0].error, sizeof r.requests[0].error, "connect failed: refused");
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    NEAR(val(&m, "slo_attainment", ""), 0, 1e-12);
    NEAR(val(&m, "requests_ok", ""), 1, 0);
    /* the failed one is counted, with its error, and the latency figures say what they cover */
    NEAR(val(&m, "requests_failed", ""), 1, 0);
    assert_non_null(strstr(etok_metrics_get(&m, "requests_failed", "")->note, "of 2 requests; first error: connect failed"));
    assert_string_equal(etok_metrics_get(&m, "ttft_s", "p50")->note, "over 1 ok of 2 requests");
    etok_metrics_free(&m);
    etok_record_free(&r);
}

/* Two overlapping requests; step durations are 0.01 s per prompt token + 0.1 s per decode
 * token at a constant 100 W, so the least-squares fit is exact: a = 1 J, b = 10 J per token,
 * scaled by window energy 100 J / fitted 95 J. */
static void test_regression_split(void **st) {
    (void)st;
    etok_record r;
    etok_record_init(&r);
    r.window_start_s = 5;
    r.window_end_s = 6;
    add_power(&r, 100, 100, 7);
    static const double ta[] = {5.1, 5.5, 5.9}, tb[] = {5.3, 5.6, 5.95};
    add_req(&r, "a", 5.0, 15, ta, 3, 1);
    add_req(&r, "b", 5.1, 20, tb, 3, 1);
    static const int P[] = {10, 0, 5, 0, 20}, D[] = {0, 2, 1, 2, 1};
    double t = 5.0;
    for (int i = 0; i < 5; i++) {
        double d = 0.01 * P[i] + 0.1 * D[i];
        add_step(&r, t, t + d, P[i], D[i]);
        t += d;
    }
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    assert_string_equal(m.phase_split_method, "regression");
    NEAR(val(&m, "energy_j", ""), 100, 1e-6);
    NEAR(val(&m, "joules_per_input_token", ""), 100.0 / 95, 1e-6);
    NEAR(val(&m, "joules_per_decode_token", ""), 1000.0 / 95, 1e-6);
    /* exact fit: the regression adds nothing to the meter's relative uncertainty */
    const etok_metric *jin = etok_metrics_get(&m, "joules_per_input_token", "");
    const etok_metric *ej = etok_metrics_get(&m, "energy_j", "");
    NEAR(jin->uncertainty / jin->value, ej->uncertainty / ej->value, 1e-6);
    assert_false(valid(&m, "idle_power_w"));
    assert_false(valid(&m, "energy_cost_per_mtok"));
    assert_string_equal(m.binding_constraint, "unknown"); /* no hardware profile */
    etok_metrics_free(&m);
    etok_record_free(&r);
}

static void test_no_energy_no_steps(void **st) {
    (void)st;
    etok_record r;
    etok_record_init(&r);
    r.window_start_s = 0;
    r.window_end_s = 2;
    static const double ta[] = {0.5, 1.0};
    add_req(&r, "a", 0.0, 4, ta, 2, 1);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    assert_false(valid(&m, "joules_per_output_token"));
    assert_false(valid(&m, "joules_per_input_token"));
    assert_string_equal(m.phase_split_method, "none");
    NEAR(val(&m, "ttft_s", "p50"), 0.5, 1e-12);
    NEAR(val(&m, "busy_s", ""), 1.0, 1e-12); /* union of request intervals */
    NEAR(val(&m, "accuracy", ""), 1, 0);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

static void test_percentiles_and_bootstrap(void **st) {
    (void)st;
    double x[] = {4, 1, 3, 2, NAN};
    NEAR(etok_percentile(x, 5, 50), 2.5, 1e-12);
    NEAR(etok_percentile(x, 5, 0), 1, 1e-12);
    NEAR(etok_percentile(x, 5, 100), 4, 1e-12);
    NEAR(etok_percentile(x, 5, 25), 1.75, 1e-12);
    NEAR(etok_mean(x, 5), 2.5, 1e-12);
    assert_true(isnan(etok_percentile(x, 0, 50)));
    double y[200];
    etok_rng g;
    etok_rng_seed(&g, 7);
    for (int i = 0; i < 200; i++) y[i] = etok_rng_uniform(&g);
    double lo1, hi1, lo2, hi2;
    assert_int_equal(etok_bootstrap_ci(y, 200, ETOK_STAT_MEAN, 500, 42, &lo1, &hi1), 0);
    assert_int_equal(etok_bootstrap_ci(y, 200, ETOK_STAT_MEAN, 500, 42, &lo2, &hi2), 0);
    assert_true(lo1 == lo2 && hi1 == hi2); /* seeded: reproducible */
    double mu = etok_mean(y, 200);
    assert_true(lo1 < mu && mu < hi1);
    /* a uniform mean's standard error is 0.289/sqrt(200) = 0.0204: CI width about 0.08 */
    assert_true(hi1 - lo1 > 0.05 && hi1 - lo1 < 0.11);
    /* several statistics from the same resamples: each CI holds its statistic, ordered p50 <= p99 */
    etok_stat_kind kinds[] = {ETOK_STAT_P50, ETOK_STAT_P90, ETOK_STAT_P99, ETOK_STAT_MEAN};
    double lo[4], hi[4];
    assert_int_equal(etok_bootstrap_ci_multi(y, 200, kinds, 4, 500, 42, lo, hi), 0);
    for (int k = 0; k < 4; k++) {
        double v = etok_stat_compute(kinds[k], y, 200);
        assert_true(lo[k] <= v && v <= hi[k]);
    }
    assert_true(lo[0] < lo[1] && lo[1] <= lo[2]);
    NEAR(lo[3], lo1, 0.02); /* same statistic, different resamples: close */
    double e = 0;
    for (int i = 0; i < 10000; i++) e += etok_rng_exponential(&g, 4.0);
    NEAR(e / 10000, 0.25, 0.01);
}

/* Carbon (issue 12): CO2e = J x PUE x g/kWh; the uncertainty carries the energy figure's and
 * the intensity's in quadrature; no intensity -> not computable, with the reason. */
static void test_carbon(void **st) {
    (void)st;
    etok_record r;
    serial_record(&r, 0.5);
    etok_metrics m;
    etok_err err = {0};
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    const etok_metric *x = etok_metrics_get(&m, "co2e_g_per_mtok", "");
    assert_non_null(x);
    assert_false(x->valid);
    assert_non_null(strstr(x->note, "--grid-intensity"));
    etok_metrics_free(&m);

    r.grid.present = 1;
    r.grid.g_per_kwh = 400;
    r.grid.uncertainty_g_per_kwh = NAN;
    snprintf(r.grid.region, sizeof r.grid.region, "xx");
    snprintf(r.grid.basis, sizeof r.grid.basis, "location");
    r.grid.year = 2023;
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    NEAR(val(&m, "co2e_g_per_mtok", ""), 125 * 1e6 / 3.6e6 * 400 * 1.5, 1e-6);
    NEAR(val(&m, "co2e_g_per_request", ""), 500 * 1.5 / 3.6e6 * 400, 1e-9);
    const etok_metric *j = etok_metrics_get(&m, "joules_per_output_token", "");
    x = etok_metrics_get(&m, "co2e_g_per_mtok", "");
    double re = j->uncertainty / j->value;
    NEAR(x->uncertainty, x->value * re, 1e-9 * x->value);
    assert_non_null(strstr(x->note, "embodied not included"));
    assert_non_null(strstr(x->note, "location-based"));
    assert_non_null(strstr(x->source, "grid:xx"));
    etok_metrics_free(&m);

    r.grid.uncertainty_g_per_kwh = 40; /* 10 % */
    assert_int_equal(etok_metrics_compute(&r, NULL, &m, &err), 0);
    x = etok_metrics_get(&m, "co2e_g_per_mtok", "");
    NEAR(x->uncertainty, x->value * sqrt(re * re + 0.01), 1e-9 * x->value);
    assert_true(x->uncertainty >= 0.1 * x->value);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_run),          cmocka_unit_test(test_carbon),
        cmocka_unit_test(test_quality_gate),        cmocka_unit_test(test_usage_vs_chunks),
        cmocka_unit_test(test_regression_split),    cmocka_unit_test(test_no_energy_no_steps),
        cmocka_unit_test(test_percentiles_and_bootstrap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
