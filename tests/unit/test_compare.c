/* test_compare.c — etok compare's statistics and logic on hand-built records, against
 * hand-computed cases: the two-arm bootstrap (paired vs unpaired), the two-stage bootstrap over
 * runs and the runs' t-interval (run-to-run variance; no CI from one token-share record),
 * per-request energy attribution (books balance), pairing by eval item, the (q*, s*) gate,
 * comparability checks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etok/attribute.h"
#include "etok/compare.h"
#include "etok/stats.h"

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

/* Two units per arm. A = {1, 3}, B = {2, 3}: mean A 2, mean B 2.5. Paired resamples draw the
 * same index pair in both arms: {0,0} diff 1 (p 1/4), {1,1} diff 0 (1/4), mixed 0.5 (1/2), so
 * the 95% CI is [0, 1]. Unpaired: mean A in {1, 2, 3} w.p. {1/4, 1/2, 1/4}, mean B in
 * {2, 2.5, 3}; diff -1 and +2 each have probability 1/16 > 2.5%, so the CI is [-1, 2]. */
static void test_delta_paired_vs_unpaired(void **st) {
    (void)st;
    const double a[] = {1, 3}, b[] = {2, 3};
    etok_delta_ci d;
    assert_int_equal(etok_bootstrap_delta_ratio_of_sums(a, NULL, 2, b, NULL, 2, 1, 2000, 7, &d), 0);
    NEAR(d.a, 2, 1e-12);
    NEAR(d.b, 2.5, 1e-12);
    NEAR(d.diff, 0.5, 1e-12);
    NEAR(d.rel, 0.25, 1e-12);
    NEAR(d.diff_lo, 0, 1e-12);
    NEAR(d.diff_hi, 1, 1e-12);
    NEAR(d.a_lo, 1, 1e-12);
    NEAR(d.a_hi, 3, 1e-12);
    assert_int_equal(etok_bootstrap_delta_ratio_of_sums(a, NULL, 2, b, NULL, 2, 0, 2000, 7, &d), 0);
    NEAR(d.diff, 0.5, 1e-12);
    NEAR(d.diff_lo, -1, 1e-12);
    NEAR(d.diff_hi, 2, 1e-12);
    /* paired needs equal lengths */
    assert_int_equal(etok_bootstrap_delta_ratio_of_sums(a, NULL, 2, b, NULL, 1, 1, 100, 7, &d), -1);
}

/* B spends exactly twice A's energy per token on every item: paired, the ratio is +100% in
 * every resample (CI [1, 1]); unpaired the item mix differs between arms and the CI widens. */
static void test_delta_ratio_paired_cancels(void **st) {
    (void)st;
    const double ea[] = {1, 5, 2, 8, 3}, ta[] = {10, 20, 5, 40, 10};
    double eb[5];
    for (int i = 0; i < 5; i++) eb[i] = 2 * ea[i];
    etok_delta_ci d;
    assert_int_equal(etok_bootstrap_delta_ratio_of_sums(ea, ta, 5, eb, ta, 5, 1, 1000, 3, &d), 0);
    NEAR(d.a, 19.0 / 85.0, 1e-12);
    NEAR(d.rel, 1.0, 1e-12);
    NEAR(d.rel_lo, 1.0, 1e-9);
    NEAR(d.rel_hi, 1.0, 1e-9);
    assert_int_equal(etok_bootstrap_delta_ratio_of_sums(ea, ta, 5, eb, ta, 5, 0, 1000, 3, &d), 0);
    assert_true(d.rel_lo < 0.9 && d.rel_hi > 1.1);
}

static void test_delta_percentile(void **st) {
    (void)st;
    const double a[] = {1, 1, 1, NAN}, b[] = {2, 2, 2};
    etok_delta_ci d;
    assert_int_equal(etok_bootstrap_delta_percentile(a, 4, b, 3, 90, 500, 1, &d), 0);
    NEAR(d.diff, 1, 1e-12);
    NEAR(d.diff_lo, 1, 1e-12);
    NEAR(d.diff_hi, 1, 1e-12);
    NEAR(d.rel, 1, 1e-12);
    /* an empty arm: no statistic, no CI */
    assert_int_equal(etok_bootstrap_delta_percentile(a, 0, b, 3, 50, 200, 1, &d), 0);
    assert_true(isnan(d.a) && isnan(d.diff_lo));
}

/* Two runs (clusters) of two items in A: run 0 costs 1 per item, run 1 costs 3; B one run at 2.
 * Paired (items crossed with runs), two-stage: A's runs drawn {0,0} (p 1/4) -> mean 1, {1,1}
 * (1/4) -> 3, mixed (1/2) -> 2, whatever the item draw (each run is flat over items); B is 2.
 * So A's CI is [1, 3] and the difference's [-1, +1]. Summing each item over the runs (the old
 * paired units, 4 per item) gave A = 2 in every resample: CI [2, 2], difference [0, 0]. */
static void test_delta_clustered_runs(void **st) {
    (void)st;
    const double a[] = {1, 1, 3, 3}, b[] = {2, 2};
    const size_t sa[] = {0, 2, 4}, sb[] = {0, 2};
    etok_delta_ci d;
    assert_int_equal(etok_bootstrap_delta_ratio_clustered(a, NULL, sa, 2, b, NULL, sb, 1, 1, 2000, 7, &d), 0);
    NEAR(d.a, 2, 1e-12);
    NEAR(d.a_lo, 1, 1e-12);
    NEAR(d.a_hi, 3, 1e-12);
    NEAR(d.diff_lo, -1, 1e-12);
    NEAR(d.diff_hi, 1, 1e-12);
    /* unpaired: the same (requests within a flat run do not vary) */
    assert_int_equal(etok_bootstrap_delta_ratio_clustered(a, NULL, sa, 2, b, NULL, sb, 1, 0, 2000, 7, &d), 0);
    NEAR(d.a_lo, 1, 1e-12);
    NEAR(d.a_hi, 3, 1e-12);
    /* paired needs every cluster of both arms to hold the same items */
    const size_t bad[] = {0, 1, 4};
    assert_int_equal(etok_bootstrap_delta_ratio_clustered(a, NULL, bad, 2, b, NULL, sb, 1, 1, 100, 7, &d), -1);
    /* one cluster per arm: exactly the unclustered bootstrap (the same draws) */
    const double x[] = {1, 5, 2, 8, 3}, y[] = {10, 20, 5, 40, 10}, z[] = {2, 4, 4, 9, 1};
    const size_t s5[] = {0, 5};
    etok_delta_ci d1, d2;
    for (int paired = 0; paired < 2; paired++) {
        assert_int_equal(etok_bootstrap_delta_ratio_of_sums(x, y, 5, z, y, 5, paired, 500, 3, &d1), 0);
        assert_int_equal(etok_bootstrap_delta_ratio_clustered(x, y, s5, 1, z, y, s5, 1, paired, 500, 3, &d2), 0);
        assert_memory_equal(&d1, &d2, sizeof d1);
    }
    /* percentiles: A's runs {1,1,1} and {5,5,5}: p50 over drawn runs is 1, 3 or 5 */
    const double pa[] = {1, 1, 1, 5, 5, 5}, pb[] = {2, 2, 2};
    const size_t spa[] = {0, 3, 6}, spb[] = {0, 3};
    assert_int_equal(etok_bootstrap_delta_percentile_clustered(pa, spa, 2, pb, spb, 1, 50, 2000, 9, &d), 0);
    NEAR(d.a, 3, 1e-12);
    NEAR(d.a_lo, 1, 1e-12);
    NEAR(d.a_hi, 5, 1e-12);
    NEAR(d.diff_lo, -3, 1e-12);
    NEAR(d.diff_hi, 1, 1e-12);
}

/* t-intervals over runs, equal denominators (so the runs' own values): A = {1, 2, 3}, B = {2,
 * 3, 4}. Each: mean +- t(2) s / sqrt(3), s = 1: A [2 - 4.303/sqrt(3), 2 + 4.303/sqrt(3)]. The
 * difference: se^2 = 1/3 + 1/3, Welch df = (2/3)^2 / (2 (1/3)^2 / 2) = 4, t(4) = 2.776: 1 +-
 * 2.776 sqrt(2/3). The ratio: exp(log 1.5 +- 2.776 sqrt(1/12 + 1/27)) - 1. One run: no bounds. */
static void test_runs_t_delta(void **st) {
    (void)st;
    const double a[] = {1, 2, 3}, b[] = {2, 3, 4};
    etok_delta_ci d;
    assert_int_equal(etok_runs_t_delta(a, NULL, 3, b, NULL, 3, &d), 0);
    NEAR(d.a, 2, 1e-12);
    NEAR(d.a_lo, 2 - 4.303 / sqrt(3), 1e-9);
    NEAR(d.a_hi, 2 + 4.303 / sqrt(3), 1e-9);
    NEAR(d.diff, 1, 1e-12);
    NEAR(d.diff_lo, -1.2665945087, 1e-9);
    NEAR(d.diff_hi, 3.2665945087, 1e-9);
    NEAR(d.rel_lo, -0.4274483681, 1e-9);
    NEAR(d.rel_hi, 2.9297765910, 1e-9);
    assert_int_equal(etok_runs_t_delta(a, NULL, 3, b, NULL, 1, &d), 0);
    assert_true(isfinite(d.a_lo) && isnan(d.b_lo) && isnan(d.diff_lo) && isnan(d.rel_hi));
}

/* A node power meter at `w` W from t = 0 to t_end, sampled every 0.5 s. */
static void add_power(etok_record *r, double w, double t_end, etok_boundary b) {
    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "test");
    snprintf(t->domain, sizeof t->domain, "node");
    t->source = ETOK_SOURCE_POWER;
    t->boundary = b;
    snprintf(t->raw_unit, sizeof t->raw_unit, "W");
    t->scale_to_si = 1;
    t->resolution_si = 0.001;
    t->update_period_s = 0.5;
    t->summable = 1;
    for (double s = 0; s <= t_end + 1e-9; s += 0.5) etok_trace_add_sample(t, s, w);
}

static etok_request *add_req(etok_record *r, const char *id, double send, int tin, int tout, int pass, double e) {
    etok_request *q = etok_record_add_request(r);
    snprintf(q->id, sizeof q->id, "%s", id);
    q->t_send_s = send;
    q->t_first_token_s = send + 0.5;
    q->t_done_s = send + 0.5 + 0.1 * (tout - 1);
    q->tokens_in = tin;
    q->tokens_out = tout;
    q->ok = 1;
    q->quality_checked = 1;
    q->quality_pass = pass;
    q->energy_j = e;
    return q;
}

/* 100 W over [0, 10]: window energy 1000 J (power trace, trapezoid of a constant). Steps [1, 2]
 * (request 0: 3 tokens, request 1: 1 token) and [2, 4] (request 0 alone). Constant power, so
 * step energies are 100 J and 200 J, scaled by 1000 / 300 to balance the books:
 * request 0 = (100 * 3/4 + 200) * 10/3 = 916.67 J, request 1 = 100 * 1/4 * 10/3 = 83.33 J. */
static void test_attribution_balances(void **st) {
    (void)st;
    etok_record r;
    etok_record_init(&r);
    snprintf(r.kind, sizeof r.kind, "bench");
    r.window_start_s = 0;
    r.window_end_s = 10;
    add_power(&r, 100, 10, ETOK_BOUNDARY_NODE);
    add_req(&r, "x#0", 0.5, 3, 2, 1, -1);
    add_req(&r, "y#1", 0.5, 1, 1, 1, -1);
    etok_step *s = etok_record_add_step(&r);
    s->t_start_s = 1;
    s->t_end_s = 2;
    s = etok_record_add_step(&r);
    s->t_start_s = 2;
    s->t_end_s = 4;
    etok_step_shares sh = {0};
    assert_int_equal(etok_step_shares_add(&sh, 0, 0, 3), 0);
    assert_int_equal(etok_step_shares_add(&sh, 0, 1, 1), 0);
    assert_int_equal(etok_step_shares_add(&sh, 1, 0, 1), 0);
    etok_attribution at;
    etok_err err = {0};
    assert_int_equal(etok_attribute_request_energy(&r, sh.v, sh.n, &at, &err), 0);
    NEAR(at.window_j, 1000, 1e-6);
    NEAR(r.requests[0].energy_j, 2750.0 / 3.0, 1e-6);
    NEAR(r.requests[1].energy_j, 250.0 / 3.0, 1e-6);
    NEAR(at.attributed_j, 1000, 1e-6);
    NEAR(at.unattributed_j, 0, 1e-6);
    assert_int_equal(at.n_steps, 2);
    /* a share naming a step that does not exist is refused, naming it */
    assert_int_equal(etok_step_shares_add(&sh, 9, 0, 1), 0);
    assert_int_equal(etok_attribute_request_energy(&r, sh.v, sh.n, &at, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "step 9"));
    etok_step_shares_free(&sh);
    etok_record_free(&r);
}

/* A bench record: `n` requests on items q0..q{n-1} (ids "qI#I"), window [0, 10] at `w` W, so
 * 10 w J, split evenly over the requests; each 4 tokens in, `tout` out; passes[i]. */
static void make_rec(etok_record *r, double w, int n, int tout, const int *passes, const char *id_prefix,
                     const char *evals_hash, etok_boundary b) {
    etok_record_init(r);
    snprintf(r->kind, sizeof r->kind, "bench");
    snprintf(r->host, sizeof r->host, "h1");
    r->window_start_s = 0;
    r->window_end_s = 10;
    r->quality_target = 0.5;
    r->ttft_slo_s = 1.0;
    r->tpot_slo_s = 0.5;
    add_power(r, w, 10, b);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"evals\":\"e.jsonl\",\"eval_items\":%d,\"evals_hash\":\"%s\"}", n, evals_hash);
    r->config_json = strdup(cfg);
    for (int i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s%d#%d", id_prefix, i, i);
        add_req(r, id, 0.2 * i, 4, tout, passes[i], 10 * w / n);
    }
}

static const etok_compare_delta *get(const etok_compare_cand *c, const char *name, const char *stat) {
    for (size_t i = 0; i < c->n_deltas; i++)
        if (!strcmp(c->deltas[i].name, name) && !strcmp(c->deltas[i].stat, stat)) return &c->deltas[i];
    fail_msg("no delta %s %s", name, stat);
    return NULL;
}

static int run_compare(etok_record *ra, etok_record *rb, etok_compare_result *res) {
    const etok_record *pa[] = {ra}, *pb[] = {rb};
    const char *na[] = {"a.json"}, *nb[] = {"b.json"};
    etok_compare_arm A = {.name = "A", .records = pa, .paths = na, .n_records = 1};
    etok_compare_arm B = {.name = "B", .records = pb, .paths = nb, .n_records = 1};
    etok_compare_opts o = {.iters = 1000, .seed = 5};
    etok_err err = {0};
    int rc = etok_compare(&A, &B, 1, &o, res, &err);
    if (rc) fail_msg("compare: %s", err.msg);
    return rc;
}

/* A: 100 W x 10 s = 1000 J over 8 requests x 10 output tokens = 12.5 J/token. B: 80 W ->
 * 10 J/token, the same items: paired, -20% exactly in every resample (every item's energy
 * scales by 0.8). Accuracy 6/8 both; verdict: -20% at equal quality and within s*. */
static void test_compare_paired_verdict(void **st) {
    (void)st;
    const int pass[] = {1, 1, 0, 1, 1, 0, 1, 1};
    etok_record ra, rb;
    make_rec(&ra, 100, 8, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    make_rec(&rb, 80, 8, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    etok_compare_result res;
    assert_int_equal(run_compare(&ra, &rb, &res), 0);
    const etok_compare_cand *c = &res.cand[0];
    assert_true(c->paired);
    assert_int_equal(c->n_units_base, 8);
    assert_false(c->fatal);
    const etok_compare_delta *j = get(c, "joules_per_output_token", "");
    NEAR(j->d.a, 12.5, 1e-9);
    NEAR(j->d.b, 10, 1e-9);
    NEAR(j->d.rel, -0.2, 1e-9);
    NEAR(j->d.rel_lo, -0.2, 1e-9);
    NEAR(j->d.rel_hi, -0.2, 1e-9);
    NEAR(get(c, "joules_per_token", "")->d.a, 1000.0 / 112.0, 1e-9);
    NEAR(get(c, "joules_per_correct_answer", "")->d.b, 800.0 / 6.0, 1e-9);
    NEAR(get(c, "accuracy", "")->d.diff, 0, 1e-12);
    NEAR(get(c, "mean_power_w", "")->d.a, 100, 1e-9);
    assert_int_equal(c->gate_q_cand, 1);
    assert_int_equal(c->gate_s_cand, 1);
    assert_true(c->comparable);
    assert_non_null(strstr(c->verdict, "B: -20% J/output-token [-20%, -20%] at equal quality"));
    assert_non_null(strstr(c->verdict, "within s*"));
    char *txt = etok_compare_render(&res, "json");
    assert_non_null(txt);
    assert_non_null(strstr(txt, "\"paired\": true"));
    free(txt);
    etok_compare_free(&res);
    etok_record_free(&ra);
    etok_record_free(&rb);
}

/* Different items in B: unpaired; the energy change is the same but its CI comes from two
 * independent resamples. B's answers all fail: accuracy CI [0, 0] lies below q* = 0.5, so no
 * energy verdict. */
static void test_compare_unpaired_and_gate(void **st) {
    (void)st;
    const int pass[] = {1, 1, 0, 1, 1, 0, 1, 1}, fail8[] = {0, 0, 0, 0, 0, 0, 0, 0};
    etok_record ra, rb;
    make_rec(&ra, 100, 8, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    make_rec(&rb, 80, 8, 10, fail8, "other", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    etok_compare_result res;
    assert_int_equal(run_compare(&ra, &rb, &res), 0);
    const etok_compare_cand *c = &res.cand[0];
    assert_false(c->paired);
    const etok_compare_delta *acc = get(c, "accuracy", "");
    NEAR(acc->d.b, 0, 1e-12);
    NEAR(acc->d.b_hi, 0, 1e-12);
    assert_int_equal(c->gate_q_cand, 0);
    assert_int_equal(c->gate_q_base, 1);
    assert_false(c->comparable);
    assert_non_null(strstr(c->verdict, "not comparable at (q*=0.50"));
    assert_non_null(strstr(c->verdict, "no energy verdict"));
    assert_null(strstr(c->verdict, "J/output-token ["));
    /* no good tokens in B: its quality-conditioned figure is not computable */
    assert_false(get(c, "quality_conditioned_joules_per_token", "")->valid);
    etok_compare_free(&res);
    etok_record_free(&ra);
    etok_record_free(&rb);
}

/* A different eval set and boundary are fatal mismatches; a different host is a note and the
 * systematic error is then said not to cancel. */
static void test_compare_mismatches(void **st) {
    (void)st;
    const int pass[] = {1, 1, 1, 1};
    etok_record ra, rb;
    make_rec(&ra, 100, 4, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    make_rec(&rb, 100, 4, 10, pass, "q", "fnv1a64:2", ETOK_BOUNDARY_DEVICE);
    snprintf(rb.host, sizeof rb.host, "h2");
    etok_compare_result res;
    assert_int_equal(run_compare(&ra, &rb, &res), 0);
    const etok_compare_cand *c = &res.cand[0];
    assert_true(res.any_fatal);
    int eval = 0, bnd = 0, host = 0;
    for (size_t i = 0; i < c->n_mismatch; i++) {
        if (!strcmp(c->mismatch[i].what, "eval_set")) eval = c->mismatch[i].fatal;
        if (!strcmp(c->mismatch[i].what, "boundary")) bnd = c->mismatch[i].fatal;
        if (!strcmp(c->mismatch[i].what, "host")) host = 1 + c->mismatch[i].fatal;
    }
    assert_int_equal(eval, 1);
    assert_int_equal(bnd, 1);
    assert_int_equal(host, 1);
    assert_false(c->systematic_cancels);
    etok_compare_free(&res);
    etok_record_free(&rb);
    /* the same but the host: not fatal */
    make_rec(&rb, 100, 4, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    assert_int_equal(run_compare(&ra, &rb, &res), 0);
    assert_false(res.any_fatal);
    assert_int_equal(res.cand[0].n_mismatch, 0);
    assert_true(res.cand[0].systematic_cancels);
    etok_compare_free(&res);
    etok_record_free(&ra);
    etok_record_free(&rb);
}

/* Repeats pool: two baseline records (100 W and 120 W) vs one candidate; units add up. A record
 * without per-request energy gets its window energy split by token share, and says so. */
static void test_compare_pooled_and_fallback(void **st) {
    (void)st;
    const int pass[] = {1, 1, 1, 1};
    etok_record a1, a2, b;
    make_rec(&a1, 100, 4, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    make_rec(&a2, 120, 4, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    make_rec(&b, 100, 4, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
    for (size_t i = 0; i < b.n_requests; i++) b.requests[i].energy_j = -1;
    const etok_record *pa[] = {&a1, &a2}, *pb[] = {&b};
    etok_compare_arm A = {.name = "base", .records = pa, .n_records = 2};
    etok_compare_arm B = {.name = "cand", .records = pb, .n_records = 1};
    etok_compare_result res;
    etok_err err = {0};
    assert_int_equal(etok_compare(&A, &B, 1, NULL, &res, &err), 0);
    const etok_compare_cand *c = &res.cand[0];
    assert_int_equal(c->n_requests_base, 8);
    assert_true(c->paired); /* same 4 items in both arms (the baseline has each twice) */
    NEAR(get(c, "joules_per_output_token", "")->d.a, 2200.0 / 80.0, 1e-9);
    NEAR(get(c, "joules_per_output_token", "")->d.b, 1000.0 / 40.0, 1e-9);
    assert_non_null(strstr(c->energy_note, "window energy split by token share"));
    /* the candidate's single token-share record: no energy CI (its run-to-run variance is unknown) */
    assert_true(isnan(get(c, "joules_per_output_token", "")->d.rel_lo));
    assert_true(isfinite(get(c, "joules_per_output_token", "")->d.a_lo));
    /* an arm without records is an error */
    B.n_records = 0;
    etok_compare_result r2;
    assert_int_equal(etok_compare(&A, &B, 1, NULL, &r2, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    etok_compare_free(&res);
    etok_record_free(&a1);
    etok_record_free(&a2);
    etok_record_free(&b);
}

/* Per-second figures take their time from runs. Both arms give every item the same 10 output
 * tokens (greedy runs of one model), three runs each, whose windows differ: A 8, 9, 10 s, B 5,
 * 6, 7 s (80 output tokens a run). Resampling items left the token-rate ratio at its value in
 * every resample (a zero-width interval although the runs' times vary); resampling runs shows
 * their spread. Token rate: A 240 / 27 s, B 240 / 18 s, +50%. With one run per arm the rate
 * stands without an interval (its run-to-run variation is unknown), and says why. */
static void test_compare_rate_ci_from_runs(void **st) {
    (void)st;
    const int pass[] = {1, 1, 1, 1, 1, 1, 1, 1};
    etok_record ra[3], rb[3];
    for (int i = 0; i < 3; i++) {
        make_rec(&ra[i], 100, 8, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
        make_rec(&rb[i], 100, 8, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
        ra[i].window_end_s = 8 + i;
        rb[i].window_end_s = 5 + i;
        for (size_t k = 0; k < ra[i].n_requests; k++) ra[i].requests[k].energy_j = 100.0 * (8 + i) / 8;
        for (size_t k = 0; k < rb[i].n_requests; k++) rb[i].requests[k].energy_j = 100.0 * (5 + i) / 8;
    }
    const etok_record *pa[] = {&ra[0], &ra[1], &ra[2]}, *pb[] = {&rb[0], &rb[1], &rb[2]};
    etok_compare_arm A = {.name = "A", .records = pa, .n_records = 3};
    etok_compare_arm B = {.name = "B", .records = pb, .n_records = 3};
    etok_compare_opts o = {.iters = 2000, .seed = 5};
    etok_compare_result res;
    etok_err err = {0};
    assert_int_equal(etok_compare(&A, &B, 1, &o, &res, &err), 0);
    const etok_compare_cand *c = &res.cand[0];
    assert_true(c->paired); /* the J figures stay paired by item */
    const etok_compare_delta *r = get(c, "token_rate_tps", "");
    assert_true(r->valid);
    NEAR(r->d.a, 240.0 / 27.0, 1e-9);
    NEAR(r->d.b, 240.0 / 18.0, 1e-9);
    NEAR(r->d.rel, 0.5, 1e-9);
    if (!(r->d.rel_hi - r->d.rel_lo > 0.05))
        fail_msg("token rate CI [%+.4f, %+.4f]: zero width although the runs' windows differ", r->d.rel_lo, r->d.rel_hi);
    assert_true(r->d.rel_lo <= 0.5 && r->d.rel_hi >= 0.5);
    /* The baseline's own interval: the bootstrap over 3 runs reaches only their spread (80/10 ..
     * 80/8 token/s); the t-interval over the runs is wider and is the floor. Linearised: R =
     * 240/27, u_k = (80 - R d_k) / 9 = (8/9, 0, -8/9) x 10/9, se = sqrt(sum u^2 / (3 x 2)) =
     * 0.570222, t(2) = 4.303: [6.43522, 11.34256]. */
    NEAR(r->d.a_lo, 240.0 / 27.0 - 4.303 * 0.570222488, 1e-6);
    NEAR(r->d.a_hi, 240.0 / 27.0 + 4.303 * 0.570222488, 1e-6);
    assert_false(r->paired);
    assert_non_null(strstr(r->note, "runs resampled"));
    assert_non_null(strstr(r->note, "widened to the runs' t-interval"));
    const etok_compare_delta *g = get(c, "goodput_tps", "");
    NEAR(g->d.rel, 0.5, 1e-9);
    assert_true(g->d.rel_hi - g->d.rel_lo > 0.05);
    etok_compare_free(&res);

    /* one run per arm: the value, no interval, and the reason */
    assert_int_equal(run_compare(&ra[0], &rb[0], &res), 0);
    r = get(&res.cand[0], "token_rate_tps", "");
    assert_true(r->valid);
    NEAR(r->d.rel, 8.0 / 5.0 - 1, 1e-9);
    if (!isnan(r->d.rel_lo) || !isnan(r->d.rel_hi) || !isnan(r->d.a_lo))
        fail_msg("one run per arm: token rate CI [%+.4f, %+.4f] claims a run-to-run spread never measured", r->d.rel_lo,
                 r->d.rel_hi);
    assert_non_null(strstr(r->note, "one run in the baseline"));
    assert_true(isnan(get(&res.cand[0], "mean_power_w", "")->d.rel_lo));
    /* the energy figures keep their paired interval */
    assert_true(isfinite(get(&res.cand[0], "joules_per_output_token", "")->d.rel_lo));
    char *txt = etok_compare_render(&res, "json");
    assert_non_null(txt);
    free(txt);
    etok_compare_free(&res);
    for (int i = 0; i < 3; i++) {
        etok_record_free(&ra[i]);
        etok_record_free(&rb[i]);
    }
}

/* Arm of n runs, each a bench record of 8 items x (4 in, 10 out) tokens over 10 s at w[k] W:
 * J/output-token of run k = 10 w[k] / 80. per_request: the requests carry energies (the
 * built-in engine's attribution) that sum to the window's; else none (bench --endpoint: the
 * window energy is split by token share). */
static void runs_arm(etok_record *r, const double *w, int n, int per_request) {
    const int pass[] = {1, 1, 1, 1, 1, 1, 1, 1};
    for (int k = 0; k < n; k++) {
        make_rec(&r[k], w[k], 8, 10, pass, "q", "fnv1a64:1", ETOK_BOUNDARY_NODE);
        if (!per_request)
            for (size_t i = 0; i < r[k].n_requests; i++) r[k].requests[i].energy_j = -1;
    }
}

static void compare_arms(etok_record *ra, int na, etok_record *rb, int nb, etok_compare_result *res) {
    const etok_record *pa[8], *pb[8];
    for (int k = 0; k < na; k++) pa[k] = &ra[k];
    for (int k = 0; k < nb; k++) pb[k] = &rb[k];
    etok_compare_arm A = {.name = "A", .records = pa, .n_records = (size_t)na};
    etok_compare_arm B = {.name = "B", .records = pb, .n_records = (size_t)nb};
    etok_compare_opts o = {.iters = 2000, .seed = 5};
    etok_err err = {0};
    if (etok_compare(&A, &B, 1, &o, res, &err)) fail_msg("compare: %s", err.msg);
}

/* The H200 power-limit sweep's defect: three runs per arm, energy per run only (token share),
 * so every request of a run has its run's J/token and the old bootstrap over items (each item
 * summed over the arm's runs) saw no run-to-run variance: a CI of zero width ([-3.5%, -3.5%])
 * for a difference its runs contradict. A runs at 100, 104, 96 W (12.5, 13.0, 12.0
 * J/output-token), B at 90, 106, 98 W (11.25, 13.25, 12.25): the arms' runs overlap, so each
 * arm's CI must hold all its runs' values and the difference's CI must hold 0. The same with
 * per-request energy (the built-in engine's attribution): pooled runs were as blind. A clear
 * change (B at 80, 81, 79 W: -20%) stays significant. */
static void test_compare_runs_variance(void **st) {
    (void)st;
    const double wa[] = {100, 104, 96}, wb[] = {90, 106, 98}, wc[] = {80, 81, 79};
    for (int per_request = 0; per_request < 2; per_request++) {
        etok_record ra[3], rb[3];
        runs_arm(ra, wa, 3, per_request);
        runs_arm(rb, wb, 3, per_request);
        etok_compare_result res;
        compare_arms(ra, 3, rb, 3, &res);
        const etok_compare_cand *c = &res.cand[0];
        assert_true(c->paired);
        const etok_compare_delta *j = get(c, "joules_per_output_token", "");
        NEAR(j->d.a, 12.5, 1e-9);
        NEAR(j->d.b, 12.25, 1e-9);
        if (!(j->d.a_lo <= 12.0 && j->d.a_hi >= 13.0 && j->d.b_lo <= 11.25 && j->d.b_hi >= 13.25))
            fail_msg("%s: arm CIs A [%.4f, %.4f], B [%.4f, %.4f] do not hold their own runs (A 12.0..13.0, B "
                     "11.25..13.25): run-to-run variance left out",
                     per_request ? "per-request energy" : "token share", j->d.a_lo, j->d.a_hi, j->d.b_lo, j->d.b_hi);
        if (!(j->d.rel_lo < 0 && j->d.rel_hi > 0))
            fail_msg("%s: J/output-token %+.4f [%+.4f, %+.4f] excludes 0 although the arms' runs overlap",
                     per_request ? "per-request energy" : "token share", j->d.rel, j->d.rel_lo, j->d.rel_hi);
        /* three runs: the bootstrap reaches only their spread; the floor is the t-interval over
         * the runs (equal token counts: 12.5 +- t(2) x 0.5 / sqrt(3)) */
        NEAR(j->d.a_lo, 12.5 - 4.303 * 0.5 / sqrt(3), 1e-9);
        NEAR(j->d.a_hi, 12.5 + 4.303 * 0.5 / sqrt(3), 1e-9);
        assert_non_null(strstr(j->note, "runs resampled"));
        assert_non_null(strstr(j->note, "widened to the runs' t-interval"));
        assert_non_null(strstr(c->verdict, "no significant change in J/output-token"));
        etok_compare_free(&res);
        for (int k = 0; k < 3; k++) etok_record_free(&rb[k]);
        runs_arm(rb, wc, 3, per_request);
        compare_arms(ra, 3, rb, 3, &res);
        j = get(&res.cand[0], "joules_per_output_token", "");
        NEAR(j->d.rel, 10.0 / 12.5 - 1, 1e-9);
        if (!(j->d.rel_hi < 0 && j->d.rel_lo <= -0.2)) fail_msg("clear change: [%+.4f, %+.4f]", j->d.rel_lo, j->d.rel_hi);
        assert_non_null(strstr(res.cand[0].verdict, "B: -20% J/output-token ["));
        etok_compare_free(&res);
        for (int k = 0; k < 3; k++) {
            etok_record_free(&ra[k]);
            etok_record_free(&rb[k]);
        }
    }
}

/* Latency percentiles over pooled runs: three runs per arm whose requests all have the run's
 * TTFT (A: 0.5, 0.6, 0.4 s; B: 0.45, 0.65, 0.5 s). Resampling three runs reaches only values
 * between them ([0.4, 0.6] for A's p50); the floor is the Student-t interval over the runs'
 * own p50s: 0.5 +- t(2) x 0.1 / sqrt(3) for A. */
static void test_compare_percentile_runs_floor(void **st) {
    (void)st;
    const double wa[] = {100, 100, 100}, ta[] = {0.5, 0.6, 0.4}, tb[] = {0.45, 0.65, 0.5};
    etok_record ra[3], rb[3];
    runs_arm(ra, wa, 3, 1);
    runs_arm(rb, wa, 3, 1);
    for (int k = 0; k < 3; k++)
        for (size_t i = 0; i < 8; i++) {
            ra[k].requests[i].t_first_token_s = ra[k].requests[i].t_send_s + ta[k];
            rb[k].requests[i].t_first_token_s = rb[k].requests[i].t_send_s + tb[k];
        }
    etok_compare_result res;
    compare_arms(ra, 3, rb, 3, &res);
    const etok_compare_delta *p = get(&res.cand[0], "ttft_s", "p50");
    NEAR(p->d.a_lo, 0.5 - 4.303 * 0.1 / sqrt(3), 1e-9);
    NEAR(p->d.a_hi, 0.5 + 4.303 * 0.1 / sqrt(3), 1e-9);
    /* B's runs: mean 0.5333, sd 0.1041 */
    const double mb = (0.45 + 0.65 + 0.5) / 3, sb = sqrt((pow(0.45 - mb, 2) + pow(0.65 - mb, 2) + pow(0.5 - mb, 2)) / 2);
    NEAR(p->d.b_lo, mb - 4.303 * sb / sqrt(3), 1e-9);
    NEAR(p->d.b_hi, mb + 4.303 * sb / sqrt(3), 1e-9);
    if (!(p->d.diff_lo < 0 && p->d.diff_hi > 0))
        fail_msg("p50 TTFT difference [%+.4f, %+.4f] excludes 0 although the runs overlap", p->d.diff_lo, p->d.diff_hi);
    assert_non_null(strstr(p->note, "widened to the t-interval of the runs' own percentiles"));
    etok_compare_free(&res);
    for (int k = 0; k < 3; k++) {
        etok_record_free(&ra[k]);
        etok_record_free(&rb[k]);
    }
}

/* One record per arm without per-request energy: each request's J/token is its record's, so
 * resampling requests only varies the token mix; the old output was "-20% J/output-token
 * [-20%, -20%]". Now there is no CI (n/a, the note says why) and the verdict claims nothing.
 * With per-request energy (one record each) the request bootstrap stands as before. */
static void test_compare_one_record_token_share(void **st) {
    (void)st;
    const double wa[] = {100}, wb[] = {80};
    etok_record ra[1], rb[1];
    runs_arm(ra, wa, 1, 0);
    runs_arm(rb, wb, 1, 0);
    etok_compare_result res;
    compare_arms(ra, 1, rb, 1, &res);
    const etok_compare_cand *c = &res.cand[0];
    const etok_compare_delta *j = get(c, "joules_per_output_token", "");
    assert_true(j->valid);
    NEAR(j->d.rel, -0.2, 1e-9);
    if (!isnan(j->d.rel_lo) || !isnan(j->d.rel_hi) || !isnan(j->d.diff_lo) || !isnan(j->d.a_lo) || !isnan(j->d.b_hi))
        fail_msg("one token-share record per arm: CI [%+.4f, %+.4f] claims a precision never measured", j->d.rel_lo,
                 j->d.rel_hi);
    assert_non_null(strstr(j->note, "CI n/a: one record in each arm and no per-request energy"));
    assert_true(isnan(get(c, "joules_per_token", "")->d.rel_lo));
    assert_true(isnan(get(c, "joules_per_correct_answer", "")->d.rel_lo));
    /* per-request figures keep their interval */
    assert_true(isfinite(get(c, "accuracy", "")->d.diff_lo));
    assert_true(c->comparable);
    assert_non_null(strstr(c->verdict, "J/output-token -20%, no claim of a change (CI n/a: one record in each arm"));
    assert_null(strstr(c->verdict, "significant"));
    assert_null(strstr(c->verdict, "J/output-token ["));
    char *txt = etok_compare_render(&res, "text");
    assert_non_null(txt);
    assert_non_null(strstr(txt, "CI n/a: one record in each arm"));
    free(txt);
    etok_compare_free(&res);
    etok_record_free(&rb[0]);
    /* only the candidate lacks per-request energy: the baseline keeps its own CI */
    runs_arm(rb, wb, 1, 0);
    for (size_t i = 0; i < ra[0].n_requests; i++) ra[0].requests[i].energy_j = 1000.0 / 8;
    compare_arms(ra, 1, rb, 1, &res);
    j = get(&res.cand[0], "joules_per_output_token", "");
    assert_true(isfinite(j->d.a_lo) && isnan(j->d.b_lo) && isnan(j->d.rel_lo));
    assert_non_null(strstr(j->note, "one record in the candidate"));
    etok_compare_free(&res);
    etok_record_free(&ra[0]);
    etok_record_free(&rb[0]);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delta_paired_vs_unpaired), cmocka_unit_test(test_delta_ratio_paired_cancels),
        cmocka_unit_test(test_delta_percentile),         cmocka_unit_test(test_attribution_balances),
        cmocka_unit_test(test_compare_paired_verdict),   cmocka_unit_test(test_compare_unpaired_and_gate),
        cmocka_unit_test(test_compare_mismatches),       cmocka_unit_test(test_compare_pooled_and_fallback),
        cmocka_unit_test(test_compare_rate_ci_from_runs),
        cmocka_unit_test(test_delta_clustered_runs),     cmocka_unit_test(test_runs_t_delta),
        cmocka_unit_test(test_compare_runs_variance),
        cmocka_unit_test(test_compare_percentile_runs_floor),
        cmocka_unit_test(test_compare_one_record_token_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
