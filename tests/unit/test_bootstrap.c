/* test_bootstrap.c — the seeded percentile bootstrap (src/analyse/stats.c) and the CIs the
 * reporting set carries: the seed decides the resamples (same seed, identical intervals;
 * different seeds, different intervals — a seed that is ignored or fixed fails), the interval
 * is ordered and holds its statistic, and every CI etok_metrics_compute produces satisfies
 * lo <= value <= hi. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bench_fixture.h"
#include "etok/metrics.h"
#include "etok/stats.h"

static void sample(double *y, int n, uint64_t seed) {
    etok_rng g;
    etok_rng_seed(&g, seed);
    for (int i = 0; i < n; i++) y[i] = etok_rng_uniform(&g);
}

static void rng_seed_matters(void **st) {
    (void)st;
    etok_rng a, b, c;
    etok_rng_seed(&a, 1);
    etok_rng_seed(&b, 1);
    etok_rng_seed(&c, 2);
    int same_ab = 0, same_ac = 0;
    for (int i = 0; i < 100; i++) {
        uint64_t x = etok_rng_u64(&a), y = etok_rng_u64(&b), z = etok_rng_u64(&c);
        same_ab += x == y;
        same_ac += x == z;
    }
    assert_int_equal(same_ab, 100);
    assert_int_equal(same_ac, 0);
}

static void bootstrap_ci_seeds(void **st) {
    (void)st;
    double y[200];
    sample(y, 200, 7);
    const double mu = etok_mean(y, 200);
    double lo[8], hi[8];
    for (int s = 0; s < 8; s++) {
        assert_int_equal(etok_bootstrap_ci(y, 200, ETOK_STAT_MEAN, 500, 100 + (uint64_t)s, &lo[s], &hi[s]), 0);
        assert_true(lo[s] < mu && mu < hi[s]);
    }
    double l2, h2;
    assert_int_equal(etok_bootstrap_ci(y, 200, ETOK_STAT_MEAN, 500, 100, &l2, &h2), 0);
    assert_true(l2 == lo[0] && h2 == hi[0]); /* same seed, same interval */
    /* different seeds: different resamples, so (almost surely) different end points; all 8
     * pairwise distinct (a percentile of 500 resampled means of 200 doubles repeating exactly
     * across seeds would mean the same resamples) */
    for (int i = 0; i < 8; i++)
        for (int j = i + 1; j < 8; j++)
            if (lo[i] == lo[j] && hi[i] == hi[j]) fail_msg("seeds %d and %d give the same interval", 100 + i, 100 + j);
    /* ... but close: the seed moves the end points by Monte-Carlo noise, not the interval */
    for (int i = 1; i < 8; i++) assert_true(fabs(lo[i] - lo[0]) < 0.02 && fabs(hi[i] - hi[0]) < 0.02);
    /* and it is the 2.5 / 97.5 percentile interval: the mean of 200 values is close to normal,
     * so each end lies 1.96 standard errors from the mean (500 resamples place a 2.5% point
     * within ~0.2 SE); a 25th or 90th percentile end would be 0.67 or 1.28 SE away */
    double sd = 0;
    for (int i = 0; i < 200; i++) sd += (y[i] - mu) * (y[i] - mu);
    const double se = sqrt(sd / 199) / sqrt(200.0);
    for (int s = 0; s < 8; s++) {
        const double zl = (mu - lo[s]) / se, zh = (hi[s] - mu) / se;
        if (!(zl > 1.6 && zl < 2.35 && zh > 1.6 && zh < 2.35))
            fail_msg("seed %d: CI ends %.2f and %.2f standard errors from the mean, want ~1.96", 100 + s, zl, zh);
    }
}

static void bootstrap_multi_seeds(void **st) {
    (void)st;
    double y[150];
    sample(y, 150, 9);
    etok_stat_kind kinds[] = {ETOK_STAT_P50, ETOK_STAT_P90, ETOK_STAT_P99, ETOK_STAT_MEAN};
    double lo1[4], hi1[4], lo2[4], hi2[4], lo3[4], hi3[4];
    assert_int_equal(etok_bootstrap_ci_multi(y, 150, kinds, 4, 400, 5, lo1, hi1), 0);
    assert_int_equal(etok_bootstrap_ci_multi(y, 150, kinds, 4, 400, 5, lo2, hi2), 0);
    assert_int_equal(etok_bootstrap_ci_multi(y, 150, kinds, 4, 400, 6, lo3, hi3), 0);
    assert_memory_equal(lo1, lo2, sizeof lo1);
    assert_memory_equal(hi1, hi2, sizeof hi1);
    int differ = 0;
    for (int k = 0; k < 4; k++) {
        differ += lo1[k] != lo3[k] || hi1[k] != hi3[k];
        double v = etok_stat_compute(kinds[k], y, 150);
        assert_true(lo1[k] <= v && v <= hi1[k]);
        assert_true(lo1[k] < hi1[k]);
    }
    assert_true(differ >= 3);
}

/* Every CI of the reporting set is ordered and holds its figure, and the --seed reaches it. */
static void metrics_cis_hold_their_value_and_follow_the_seed(void **st) {
    (void)st;
    etok_record r;
    etok_fixture_bench_record(&r, 0.5);
    /* more requests than the fixture's two, so intervals have width */
    for (int i = 0; i < 30; i++) {
        etok_request *q = etok_record_add_request(&r);
        snprintf(q->id, sizeof q->id, "x%d", i);
        q->t_send_s = r.window_start_s + 0.1 + 0.01 * i;
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
    etok_metrics m1, m2;
    etok_err err = {0};
    etok_metrics_opts o1 = {.seed = 1}, o2 = {.seed = 2};
    assert_int_equal(etok_metrics_compute(&r, &o1, &m1, &err), 0);
    assert_int_equal(etok_metrics_compute(&r, &o2, &m2, &err), 0);
    int n_ci = 0, n_differ = 0;
    for (size_t i = 0; i < m1.n; i++) {
        const etok_metric *x = &m1.m[i], *y = &m2.m[i];
        if (!x->valid || !isfinite(x->ci_lo)) continue;
        n_ci++;
        if (!(x->ci_lo <= x->value && x->value <= x->ci_hi))
            fail_msg("%s %s: value %g outside its CI [%g, %g]", x->name, x->stat, x->value, x->ci_lo, x->ci_hi);
        n_differ += x->ci_lo != y->ci_lo || x->ci_hi != y->ci_hi;
    }
    assert_true(n_ci >= 17); /* accuracy + 4 distributions x 4 statistics */
    if (n_differ < n_ci / 2) fail_msg("seed 1 and seed 2 give the same CI for %d of %d figures", n_ci - n_differ, n_ci);
    etok_metrics_free(&m1);
    etok_metrics_free(&m2);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(rng_seed_matters),
        cmocka_unit_test(bootstrap_ci_seeds),
        cmocka_unit_test(bootstrap_multi_seeds),
        cmocka_unit_test(metrics_cis_hold_their_value_and_follow_the_seed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
