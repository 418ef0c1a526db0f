/* test_sample.c — the sampling maths (src/engine/sample.c) as distributions over many draws
 * on fixed logits: temperature divides the logits (T -> 0 concentrates on the argmax, a high T
 * flattens toward uniform at the rate exp(l/T) says), every frequency agrees with
 * softmax(l / T) renormalised over what top-k / top-p keep, top-k and top-p never draw
 * outside the k best / the nucleus, the seed decides the draws (same seed same draws,
 * different seeds different draws), greedy picks the lowest id among equal maxima.
 *
 * Statistics: N draws per case; a category of probability p is counted N p +- 5 sqrt(N p (1-p))
 * (5 sigma: a false failure about once in 3 million per category, and the draws are seeded, so
 * a run is reproducible anyway). Every mutation this file is meant to catch (logits times T,
 * top-p or top-k ignored, the nucleus one token short or long, the seed ignored) moves some
 * category by 20 sigma or more at these N. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/sample.h"

#define NV 8
/* distinct logits, deliberately not sorted by id */
static const float LOGITS[NV] = {0.5f, 2.0f, -1.0f, 1.0f, -2.0f, 1.5f, 0.0f, -0.5f};
/* ids by decreasing logit */
static const int ORDER[NV] = {1, 5, 3, 0, 6, 7, 2, 4};

/* softmax(l / T) over the ids kept (keep[i] != 0). */
static void expected(double T, const int *keep, double *p) {
    double sum = 0;
    for (int i = 0; i < NV; i++) {
        p[i] = keep[i] ? exp(LOGITS[i] / T) : 0;
        sum += p[i];
    }
    for (int i = 0; i < NV; i++) p[i] /= sum;
}

static void draw(const etok_sampling *s, int n, long *count) {
    etok_prob_id sc[NV];
    uint64_t rng = s->seed;
    memset(count, 0, NV * sizeof *count);
    for (int k = 0; k < n; k++) {
        int32_t id = etok_sample(LOGITS, NV, s, &rng, sc);
        assert_true(id >= 0 && id < NV);
        count[id]++;
    }
}

static void check_counts(const char *what, const long *count, const double *p, int n) {
    for (int i = 0; i < NV; i++) {
        double mean = n * p[i], sd = sqrt(n * p[i] * (1 - p[i]));
        if (p[i] == 0) {
            if (count[i] != 0) fail_msg("%s: id %d drawn %ld times, it has probability 0", what, i, count[i]);
            continue;
        }
        if (fabs((double)count[i] - mean) > 5 * sd + 1)
            fail_msg("%s: id %d drawn %ld times in %d, expected %.1f +- %.1f (p %.5f)", what, i, count[i], n, mean, 5 * sd,
                     p[i]);
    }
}

static const int ALL[NV] = {1, 1, 1, 1, 1, 1, 1, 1};

static void temperature_divides_the_logits(void **state) {
    (void)state;
    const float temps[] = {0.3f, 0.7f, 2.0f, 5.0f};
    for (size_t t = 0; t < sizeof temps / sizeof temps[0]; t++) {
        etok_sampling s = {temps[t], 0, 1.0f, 1000 + t};
        long c[NV];
        double p[NV];
        const int n = 40000;
        draw(&s, n, c);
        expected(temps[t], ALL, p);
        char what[64];
        snprintf(what, sizeof what, "temperature %.1f", temps[t]);
        check_counts(what, c, p, n);
    }
}

static void low_temperature_concentrates_on_the_argmax(void **state) {
    (void)state;
    /* T 0.05: the runner-up (0.5 below) has probability e^-10 ~ 4.5e-5 */
    etok_sampling s = {0.05f, 0, 1.0f, 7};
    long c[NV];
    draw(&s, 5000, c);
    assert_true(c[ORDER[0]] >= 4990);
    /* temperature 0 (and below) is greedy */
    etok_prob_id sc[NV];
    uint64_t rng = 1;
    etok_sampling z = {0.0f, 0, 1.0f, 1};
    for (int k = 0; k < 100; k++) assert_int_equal(etok_sample(LOGITS, NV, &z, &rng, sc), ORDER[0]);
    z.temperature = -1.0f;
    assert_int_equal(etok_sample(LOGITS, NV, &z, &rng, sc), ORDER[0]);
    assert_int_equal(etok_sample(LOGITS, NV, NULL, &rng, sc), ORDER[0]);
}

/* At T = 50 the most and least likely differ by exp(4/50) = 1.083: close to uniform, and
 * at exactly that rate (not flatter, not steeper). */
static void high_temperature_flattens_at_the_expected_rate(void **state) {
    (void)state;
    etok_sampling s = {50.0f, 0, 1.0f, 99};
    long c[NV];
    double p[NV];
    const int n = 400000;
    draw(&s, n, c);
    expected(50.0, ALL, p);
    check_counts("temperature 50", c, p, n);
    double ratio = (double)c[ORDER[0]] / (double)c[ORDER[NV - 1]];
    /* each count is ~50000 +- 1.1% (5 sigma), so the ratio is within ~2.5% of 1.083 */
    if (fabs(ratio - exp(4.0 / 50.0)) > 0.03) fail_msg("top/bottom frequency ratio %.4f, expected %.4f", ratio, exp(0.08));
    assert_true(ratio > 1.04);
}

static void top_k_keeps_the_k_best(void **state) {
    (void)state;
    for (int k = 1; k <= 4; k++) {
        etok_sampling s = {1.3f, k, 1.0f, 50 + k};
        int keep[NV] = {0};
        for (int i = 0; i < k; i++) keep[ORDER[i]] = 1;
        long c[NV];
        double p[NV];
        const int n = 30000;
        draw(&s, n, c);
        expected(1.3, keep, p);
        char what[64];
        snprintf(what, sizeof what, "top-k %d", k);
        check_counts(what, c, p, n);
    }
    /* k >= vocabulary: no restriction */
    etok_sampling s = {1.3f, NV, 1.0f, 3};
    long c[NV];
    double p[NV];
    draw(&s, 30000, c);
    expected(1.3, ALL, p);
    check_counts("top-k = n", c, p, 30000);
}

/* The nucleus: the smallest prefix (by probability) whose mass reaches top_p. */
static int nucleus(double T, double top_p, int *keep) {
    double p[NV], cum = 0;
    expected(T, ALL, p);
    memset(keep, 0, NV * sizeof *keep);
    for (int i = 0; i < NV; i++) {
        keep[ORDER[i]] = 1;
        cum += p[ORDER[i]];
        if (cum >= top_p) return i + 1;
    }
    return NV;
}

static void top_p_never_draws_outside_the_nucleus(void **state) {
    (void)state;
    /* T 1: cumulative masses in order 0.4027 0.6470 0.7952 0.8850 0.9395 0.9726 0.9926 1;
     * the top_p values sit between them, so the nucleus is unambiguous */
    const float tps[] = {0.3f, 0.5f, 0.7f, 0.85f, 0.92f};
    const int sizes[] = {1, 2, 3, 4, 5};
    for (size_t t = 0; t < sizeof tps / sizeof tps[0]; t++) {
        int keep[NV];
        assert_int_equal(nucleus(1.0, tps[t], keep), sizes[t]);
        etok_sampling s = {1.0f, 0, tps[t], 200 + t};
        long c[NV];
        double p[NV];
        const int n = 30000;
        draw(&s, n, c);
        expected(1.0, keep, p);
        char what[64];
        snprintf(what, sizeof what, "top-p %.2f", tps[t]);
        check_counts(what, c, p, n);
    }
    /* at T 2 the same top_p keeps more tokens: the nucleus is over the tempered distribution */
    int keep[NV];
    int size = nucleus(2.0, 0.7, keep);
    assert_true(size > 3);
    etok_sampling s = {2.0f, 0, 0.7f, 5};
    long c[NV];
    double p[NV];
    draw(&s, 30000, c);
    expected(2.0, keep, p);
    check_counts("top-p 0.7 at T 2", c, p, 30000);
}

static void top_k_and_top_p_together(void **state) {
    (void)state;
    /* top-p 0.95 alone keeps 6; top-k 3 cuts it to 3 */
    int keep[NV] = {0};
    for (int i = 0; i < 3; i++) keep[ORDER[i]] = 1;
    etok_sampling s = {1.0f, 3, 0.95f, 17};
    long c[NV];
    double p[NV];
    draw(&s, 30000, c);
    expected(1.0, keep, p);
    check_counts("top-k 3 + top-p 0.95", c, p, 30000);
    /* top-k 4 with top-p 0.5: the nucleus (2) is the tighter */
    memset(keep, 0, sizeof keep);
    keep[ORDER[0]] = keep[ORDER[1]] = 1;
    etok_sampling s2 = {1.0f, 4, 0.5f, 18};
    draw(&s2, 30000, c);
    expected(1.0, keep, p);
    check_counts("top-k 4 + top-p 0.5", c, p, 30000);
}

static void seed_decides_the_draws(void **state) {
    (void)state;
    etok_prob_id sc[NV];
    int32_t a[64], b[64], c[64];
    etok_sampling s = {1.0f, 0, 1.0f, 0};
    uint64_t ra = 1, rb = 1, rc = 2;
    for (int i = 0; i < 64; i++) {
        a[i] = etok_sample(LOGITS, NV, &s, &ra, sc);
        b[i] = etok_sample(LOGITS, NV, &s, &rb, sc);
        c[i] = etok_sample(LOGITS, NV, &s, &rc, sc);
    }
    assert_memory_equal(a, b, sizeof a);
    /* two seeds agree on a draw with probability sum p^2 ~ 0.26: 64 identical draws ~ 1e-37 */
    assert_memory_not_equal(a, c, sizeof a);
    /* the generator: uniform in [0, 1), successive values differ, mean 1/2 */
    uint64_t st = 12345;
    double sum = 0;
    float prev = -1;
    int repeats = 0;
    for (int i = 0; i < 100000; i++) {
        float u = etok_sample_rng_uniform(&st);
        assert_true(u >= 0.0f && u < 1.0f);
        repeats += u == prev;
        prev = u;
        sum += u;
    }
    assert_true(repeats < 5);
    /* mean of 1e5 uniforms: sd 0.0009 */
    assert_true(fabs(sum / 100000 - 0.5) < 0.005);
}

static void greedy_takes_the_lowest_id_among_equal_maxima(void **state) {
    (void)state;
    const float l[6] = {0.1f, 3.0f, -1.0f, 3.0f, 2.9f, 3.0f};
    assert_int_equal(etok_sample_greedy(l, 6), 1);
    const float m[4] = {-5.0f, -4.0f, -3.0f, -2.5f};
    assert_int_equal(etok_sample_greedy(m, 4), 3);
    const float one[1] = {7.0f};
    assert_int_equal(etok_sample_greedy(one, 1), 0);
    /* the scan's rules: a NaN at id 0 stays, later NaNs are skipped, +0 and -0 tie */
    const float nan0[3] = {nanf(""), 5.0f, 6.0f}, nan1[4] = {1.0f, nanf(""), 2.0f, nanf("")};
    assert_int_equal(etok_sample_greedy(nan0, 3), 0);
    assert_int_equal(etok_sample_greedy(nan1, 4), 2);
    const float zeros[4] = {-1.0f, -0.0f, 0.0f, -INFINITY};
    assert_int_equal(etok_sample_greedy(zeros, 4), 1);
    /* a vocabulary-sized row (the vectorised max): the first of equal maxima, anywhere */
    enum { V = 49152 + 7 };
    static float big[V];
    for (int at = 0; at < V; at += 4099) {
        for (int i = 0; i < V; i++) big[i] = (float)((i * 7919) % 1000) * 0.01f;
        big[at] = 20.0f;
        big[V - 1 - at / 2] = 20.0f;
        const int first = at < V - 1 - at / 2 ? at : V - 1 - at / 2;
        assert_int_equal(etok_sample_greedy(big, V), first);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(temperature_divides_the_logits),
        cmocka_unit_test(low_temperature_concentrates_on_the_argmax),
        cmocka_unit_test(high_temperature_flattens_at_the_expected_rate),
        cmocka_unit_test(top_k_keeps_the_k_best),
        cmocka_unit_test(top_p_never_draws_outside_the_nucleus),
        cmocka_unit_test(top_k_and_top_p_together),
        cmocka_unit_test(seed_decides_the_draws),
        cmocka_unit_test(greedy_takes_the_lowest_id_among_equal_maxima),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
