/* test_pareto.c — sweep analysis (analyse/pareto.c) against hand-computed cases: the frontier
 * over (J/output-token, p90 TPOT) with ties, duplicates, NaNs and ineligible points; the best
 * eligible point; the (q*, s*) gate; the repeat CI (Student t); idle drift; the seeded order. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>

#include "etok/pareto.h"
#include "etok/sweep_report.h"

static void frontier_hand_case(void **st) {
    (void)st;
    /* A(1,5) B(2,3) C(3,4) D(4,1) E(2.5,3):
     * C is dominated by B (2<=3, 3<=4); E by B (2<2.5, 3<=3); A, B, D are not dominated. */
    double x[] = {1, 2, 3, 4, 2.5}, y[] = {5, 3, 4, 1, 3};
    int f[5];
    assert_int_equal(etok_pareto_frontier(x, y, NULL, 5, f), 3);
    int want[] = {1, 1, 0, 1, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(f[i], want[i]);
}

static void frontier_ties_and_duplicates(void **st) {
    (void)st;
    /* equal x: the smaller y dominates (2,1) over (2,2); duplicates (1,3),(1,3) both stay */
    double x[] = {2, 2, 1, 1}, y[] = {2, 1, 3, 3};
    int f[4];
    assert_int_equal(etok_pareto_frontier(x, y, NULL, 4, f), 3);
    assert_int_equal(f[0], 0);
    assert_int_equal(f[1], 1);
    assert_int_equal(f[2], 1);
    assert_int_equal(f[3], 1);
    /* equal y: the smaller x dominates */
    double x2[] = {3, 1}, y2[] = {2, 2};
    int f2[2];
    assert_int_equal(etok_pareto_frontier(x2, y2, NULL, 2, f2), 1);
    assert_int_equal(f2[0], 0);
    assert_int_equal(f2[1], 1);
}

static void frontier_nan_and_ineligible(void **st) {
    (void)st;
    /* the NaN point would dominate everything if it counted; the ineligible (0.5, 0.5) too:
     * neither is on the frontier nor removes anyone from it */
    double x[] = {NAN, 0.5, 2, 3, 1}, y[] = {0.1, 0.5, 2, 1, INFINITY};
    int el[] = {1, 0, 1, 1, 1};
    int f[5];
    assert_int_equal(etok_pareto_frontier(x, y, el, 5, f), 2);
    int want[] = {0, 0, 1, 1, 0};
    for (int i = 0; i < 5; i++) assert_int_equal(f[i], want[i]);
    /* nothing eligible: empty frontier */
    int none[] = {0, 0, 0, 0, 0};
    assert_int_equal(etok_pareto_frontier(x, y, none, 5, f), 0);
    assert_int_equal(etok_pareto_frontier(x, y, NULL, 0, f), 0);
}

static void best_point(void **st) {
    (void)st;
    double x[] = {0.5, 2, 1, 1, NAN}, y[] = {0.1, 1, 3, 2, 0};
    int el[] = {0, 1, 1, 1, 1};
    /* 0.5 is ineligible; x = 1 twice: the smaller y (index 3) */
    assert_int_equal(etok_pareto_best(x, y, el, 5), 3);
    assert_int_equal(etok_pareto_best(x, y, NULL, 5), 0);
    int none[] = {0, 0, 0, 0, 0};
    assert_int_equal(etok_pareto_best(x, y, none, 5), -1);
}

static void gate(void **st) {
    (void)st;
    int q, s;
    etok_sweep_gate(0.6, 0.5, 0.95, 1, 0.9, &q, &s);
    assert_true(q && s);
    etok_sweep_gate(0.5, 0.5, 0.9, 1, 0.9, &q, &s); /* equality meets both */
    assert_true(q && s);
    etok_sweep_gate(0.49, 0.5, 0.89, 1, 0.9, &q, &s);
    assert_true(!q && !s);
    etok_sweep_gate(NAN, 0.5, NAN, 1, 0.9, &q, &s); /* unknown does not meet a given target */
    assert_true(!q && !s);
    etok_sweep_gate(NAN, -1, NAN, 0, 0.9, &q, &s); /* no q*, no SLO: both met */
    assert_true(q && s);
}

static void repeat_ci(void **st) {
    (void)st;
    double m, lo, hi;
    /* 1, 2, 3: mean 2, sd 1, se 1/sqrt(3), t(2) = 4.303 -> half-width 2.48433 */
    double v[] = {1, NAN, 2, 3};
    assert_int_equal(etok_repeat_ci(v, 4, &m, &lo, &hi), 3);
    assert_true(fabs(m - 2) < 1e-12);
    assert_true(fabs(hi - (2 + 4.303 / sqrt(3.0))) < 1e-9);
    assert_true(fabs(lo - (2 - 4.303 / sqrt(3.0))) < 1e-9);
    double one[] = {5};
    assert_int_equal(etok_repeat_ci(one, 1, &m, &lo, &hi), 1);
    assert_true(m == 5 && isnan(lo) && isnan(hi));
    double nn[] = {NAN};
    assert_int_equal(etok_repeat_ci(nn, 1, &m, &lo, &hi), 0);
    assert_true(isnan(m));
    assert_true(fabs(etok_t975(1) - 12.706) < 1e-9 && etok_t975(100) == 1.96 && isnan(etok_t975(0)));
}

static void drift(void **st) {
    (void)st;
    /* 5% of 20 W = 1 W > the 0.2 W floor */
    assert_int_equal(etok_idle_drifted(20, 20.9, 0.05, 0.2), 0);
    assert_int_equal(etok_idle_drifted(20, 21.1, 0.05, 0.2), 1);
    assert_int_equal(etok_idle_drifted(20, 18.9, 0.05, 0.2), 1);
    /* 5% of 2 W = 0.1 W < the floor: 0.2 W applies */
    assert_int_equal(etok_idle_drifted(2, 2.15, 0.05, 0.2), 0);
    assert_int_equal(etok_idle_drifted(2, 2.25, 0.05, 0.2), 1);
    assert_int_equal(etok_idle_drifted(NAN, 2, 0.05, 0.2), 1);
    assert_int_equal(etok_idle_drifted(2, NAN, 0.05, 0.2), 1);
}

static void order(void **st) {
    (void)st;
    size_t a[10], b[10], c[10];
    etok_shuffle_order(a, 10, 7);
    etok_shuffle_order(b, 10, 7);
    etok_shuffle_order(c, 10, 8);
    assert_memory_equal(a, b, sizeof a);
    int seen[10] = {0}, same = 1, ident = 1;
    for (size_t i = 0; i < 10; i++) {
        assert_true(a[i] < 10);
        seen[a[i]]++;
        if (a[i] != c[i]) same = 0;
        if (a[i] != i) ident = 0;
    }
    for (int i = 0; i < 10; i++) assert_int_equal(seen[i], 1);
    assert_false(same);  /* another seed, another order */
    assert_false(ident); /* actually shuffled */
    size_t z[1];
    etok_shuffle_order(z, 1, 3);
    assert_int_equal(z[0], 0);
}

/* the index keeps every run and point even when a value is not UTF-8 (a path, a prompt) */
static void sweep_json_invalid_utf8(void **st) {
    (void)st;
    etok_sweep_point pt;
    memset(&pt, 0, sizeof pt);
    snprintf(pt.name, sizeof pt.name, "p\xff");
    snprintf(pt.keys[0], sizeof pt.keys[0], "system");
    snprintf(pt.vals[0], sizeof pt.vals[0], "caf\xe9");
    pt.n_keys = 1;
    for (int k = 0; k < ETOK_SW_N; k++) pt.mean[k] = pt.lo[k] = pt.hi[k] = NAN;
    pt.mean[ETOK_SW_J_OUT] = 0.5;
    etok_sweep_run ru;
    memset(&ru, 0, sizeof ru);
    snprintf(ru.name, sizeof ru.name, "p\xff");
    snprintf(ru.status, sizeof ru.status, "ok");
    for (int k = 0; k < ETOK_SW_N; k++) ru.v[k] = NAN;
    size_t order = 0;
    char *pass[] = {"--system", "\xfe"};
    etok_sweep_doc d = {.repeat = 1, .n_points = 1, .n_runs = 1, .points = &pt, .runs = &ru, .order = &order,
                        .passthrough = pass, .n_passthrough = 2, .best = 0, .ratio_best_to_first = 1};
    snprintf(d.command, sizeof d.command, "etok sweep \xff");
    char *t = etok_sweep_json(&d);
    assert_non_null(t);
    json_error_t je;
    json_t *j = json_loads(t, 0, &je);
    assert_non_null(j);
    assert_int_equal(json_array_size(json_object_get(j, "runs")), 1);
    assert_int_equal(json_array_size(json_object_get(j, "points")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "command")), "etok sweep ?");
    assert_string_equal(json_string_value(json_object_get(j, "best_meeting_q_and_s")), "p?");
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(json_object_get(j, "points"), 0), "options"),
                                          "system")),
        "caf?");
    json_decref(j);
    free(t);
    char *h = etok_sweep_html(&d), *c = etok_sweep_csv(&d);
    assert_non_null(h);
    assert_non_null(c);
    free(h);
    free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frontier_hand_case), cmocka_unit_test(frontier_ties_and_duplicates),
        cmocka_unit_test(frontier_nan_and_ineligible), cmocka_unit_test(best_point),
        cmocka_unit_test(gate), cmocka_unit_test(repeat_ci), cmocka_unit_test(drift), cmocka_unit_test(order),
        cmocka_unit_test(sweep_json_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
