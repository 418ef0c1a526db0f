/* test_energy.c — energy attribution on hand-built records with hand-computed energies:
 * counter wrap and reset, two packages + dram (+ nested/duplicate domains never summed),
 * power trapezoid with interpolated edges, boundaries kept apart, idle subtraction,
 * J/token, PUE, the uncertainty model, short windows and incomplete coverage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "etok/energy.h"

static void near(double a, double b, int line) {
    if (!(fabs(a - b) <= 1e-9 * (1 + fabs(b)))) fail_msg("line %d: %.17g != %.17g", line, a, b);
}
#define NEAR(a, b) near((a), (b), __LINE__)

static etok_trace *add_trace(etok_record *r, const char *meter, const char *domain, etok_source src, etok_boundary b,
                             const char *unit, double scale, int summable) {
    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "%s", meter);
    snprintf(t->domain, sizeof t->domain, "%s", domain);
    t->source = src;
    t->boundary = b;
    snprintf(t->raw_unit, sizeof t->raw_unit, "%s", unit);
    t->scale_to_si = scale;
    t->summable = summable;
    return t;
}

static void counter_wrap_is_corrected(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    etok_trace *t = add_trace(&r, "rapl", "package-0", ETOK_SOURCE_COUNTER, ETOK_BOUNDARY_DEVICE, "uJ", 1e-6, 1);
    t->wrap_range_raw = 1000000; /* 1 J */
    etok_trace_add_sample(t, 0, 900000);
    etok_trace_add_sample(t, 1, 100000); /* wrapped: +0.2 J */
    etok_trace_add_sample(t, 2, 600000); /* +0.5 J */
    r.window_start_s = 0;
    r.window_end_s = 2;
    etok_energy_result res;
    assert_int_equal(etok_energy_window(&r, 0, 2, &res), 0);
    NEAR(res.traces[0].energy_j, 0.7);
    assert_int_equal(res.traces[0].n_wraps, 1);
    assert_int_equal(res.traces[0].n_resets, 0);
    NEAR(res.energy_j, 0.7);
    NEAR(res.mean_power_w, 0.35);
    assert_int_equal(res.boundary, ETOK_BOUNDARY_DEVICE);
    assert_int_equal(res.source, ETOK_SOURCE_COUNTER);
    etok_energy_result_free(&res);

    /* the second half only: the wrap lies outside, interpolated edge at 1.5 s: 0.25 J */
    assert_int_equal(etok_energy_window(&r, 1.5, 2, &res), 0);
    NEAR(res.traces[0].energy_j, 0.25);
    assert_int_equal(res.traces[0].n_wraps, 0);
    etok_energy_result_free(&res);

    /* without a wrap range, a decrease is a reset: that step counts 0 J, and its second of
     * the window goes into the uncertainty at the mean power of the rest (0.5 J/s) */
    t->wrap_range_raw = 0;
    assert_int_equal(etok_energy_window(&r, 0, 2, &res), 0);
    NEAR(res.traces[0].energy_j, 0.5);
    assert_int_equal(res.traces[0].n_resets, 1);
    NEAR(res.traces[0].energy_uncertainty_j, 0.5);
    assert_non_null(strstr(res.traces[0].problem, "counter reset"));
    etok_energy_result_free(&res);

    /* a wrap range so large that the corrected step would mean > 2 kW: a reset, not a wrap */
    t->wrap_range_raw = 1e13; /* 10 MJ */
    assert_int_equal(etok_energy_window(&r, 0, 2, &res), 0);
    NEAR(res.traces[0].energy_j, 0.5);
    assert_int_equal(res.traces[0].n_resets, 1);
    assert_int_equal(res.traces[0].n_wraps, 0);
    etok_energy_result_free(&res);

    /* with a plausible wrap range but a recorded reset fault there, the fault wins */
    t->wrap_range_raw = 1000000;
    etok_record_add_fault(&r, 1.0, "rapl", "package-0", "reset", "counter stepped back");
    assert_int_equal(etok_energy_window(&r, 0, 2, &res), 0);
    NEAR(res.traces[0].energy_j, 0.5);
    assert_int_equal(res.traces[0].n_resets, 1);
    assert_int_equal(res.traces[0].n_wraps, 0);
    assert_int_equal(res.traces[0].n_faults, 1);
    assert_int_equal(res.n_faults, 1);
    etok_energy_result_free(&res);
    etok_record_free(&r);
}

static void two_packages_and_dram_never_double_counted(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    const char *dom[] = {"package-0", "package-1", "dram-0", "psys", "core-0"};
    const double joules[] = {10, 6, 2, 30, 7};
    const int summable[] = {1, 1, 1, 0, 0}; /* psys contains packages; core is inside package-0 */
    for (int i = 0; i < 5; i++) {
        etok_trace *t = add_trace(&r, "rapl", dom[i], ETOK_SOURCE_COUNTER, ETOK_BOUNDARY_DEVICE, "uJ", 1e-6, summable[i]);
        t->wrap_range_raw = 262143328850.0;
        etok_trace_add_sample(t, 0, 5e6);
        etok_trace_add_sample(t, 1, 5e6 + joules[i] * 0.5e6);
        etok_trace_add_sample(t, 2, 5e6 + joules[i] * 1e6);
    }
    etok_energy_result res;
    assert_int_equal(etok_energy_window(&r, 0, 2, &res), 0);
    for (int i = 0; i < 5; i++) NEAR(res.traces[i].energy_j, joules[i]);
    NEAR(res.energy_j, 18);
    NEAR(res.mean_power_w, 9);
    assert_int_equal(res.boundaries[ETOK_BOUNDARY_DEVICE].n_traces, 3);
    assert_false(res.boundaries[ETOK_BOUNDARY_NODE].present);
    etok_energy_result_free(&res);
    etok_record_free(&r);
}

static void power_trapezoid_with_interpolated_edges(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    etok_trace *t = add_trace(&r, "hwmon", "amdgpu/power1", ETOK_SOURCE_POWER, ETOK_BOUNDARY_DEVICE, "uW", 1e-6, 1);
    etok_trace_add_sample(t, 0, 10e6);
    etok_trace_add_sample(t, 1, 20e6);
    etok_trace_add_sample(t, 2, 10e6);
    etok_energy_result res;
    assert_int_equal(etok_energy_window(&r, 0, 2, &res), 0);
    NEAR(res.energy_j, 30); /* (10+20)/2 + (20+10)/2 */
    NEAR(res.traces[0].period_s, 1);
    etok_energy_result_free(&res);
    assert_int_equal(etok_energy_window(&r, 0.5, 1.5, &res), 0);
    NEAR(res.energy_j, 17.5); /* P(0.5)=15, P(1.5)=15: (15+20)/2*0.5 * 2 */
    etok_energy_result_free(&res);
    assert_int_equal(etok_energy_window(&r, 0.25, 0.75, &res), 0);
    NEAR(res.energy_j, 0.5 * (12.5 + 17.5) * 0.5); /* inside one interval */
    etok_energy_result_free(&res);
    etok_record_free(&r);
}

static void boundaries_are_kept_apart_and_the_widest_is_primary(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    etok_trace *dev = add_trace(&r, "rapl", "package-0", ETOK_SOURCE_COUNTER, ETOK_BOUNDARY_DEVICE, "J", 1, 1);
    etok_trace_add_sample(dev, 0, 0);
    etok_trace_add_sample(dev, 4, 40);
    etok_trace *wall = add_trace(&r, "extlog", "wall", ETOK_SOURCE_EXTERNAL, ETOK_BOUNDARY_NODE, "W", 1, 1);
    for (int i = 0; i <= 8; i++) etok_trace_add_sample(wall, i * 0.5, 25);
    etok_trace *est = add_trace(&r, "estimate", "cpu", ETOK_SOURCE_ESTIMATE, ETOK_BOUNDARY_DEVICE, "J", 1, 1);
    etok_trace_add_sample(est, 0, 0);
    etok_trace_add_sample(est, 4, 8);
    etok_energy_result res;
    assert_int_equal(etok_energy_window(&r, 0, 4, &res), 0);
    NEAR(res.boundaries[ETOK_BOUNDARY_DEVICE].energy_j, 48);
    /* the estimate makes the device total an estimate */
    assert_int_equal(res.boundaries[ETOK_BOUNDARY_DEVICE].source, ETOK_SOURCE_ESTIMATE);
    NEAR(res.boundaries[ETOK_BOUNDARY_NODE].energy_j, 100);
    assert_int_equal(res.boundary, ETOK_BOUNDARY_NODE);
    NEAR(res.energy_j, 100); /* never 148 */
    assert_int_equal(res.source, ETOK_SOURCE_EXTERNAL);
    etok_energy_result_free(&res);
    etok_record_free(&r);
}

static void idle_subtraction_tokens_and_pue(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    etok_trace *t = add_trace(&r, "rapl", "package-0", ETOK_SOURCE_COUNTER, ETOK_BOUNDARY_DEVICE, "mJ", 1e-3, 1);
    etok_trace_add_sample(t, 0, 0);
    etok_trace_add_sample(t, 5, 50000);   /* idle: 50 J in 5 s = 10 W */
    etok_trace_add_sample(t, 15, 350000); /* run: 300 J in 10 s */
    r.idle_start_s = 0;
    r.idle_end_s = 5;
    r.window_start_s = 5;
    r.window_end_s = 15;
    r.tokens_known = 1;
    r.tokens_in = 50;
    r.tokens_out = 100;
    r.pue = 1.5;
    etok_energy_summary s;
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    assert_true(s.has_energy && s.has_idle);
    NEAR(s.duration_s, 10);
    NEAR(s.energy_j, 300);
    NEAR(s.mean_power_w, 30);
    NEAR(s.idle_power_w, 10);
    NEAR(s.dynamic_energy_j, 200);
    NEAR(s.joules_per_output_token, 3);
    NEAR(s.joules_per_token, 2);
    NEAR(s.pue_adjusted_power_w, 45);
    NEAR(s.mean_power_uncertainty_w, s.energy_uncertainty_j / 10);
    NEAR(s.pue_adjusted_power_uncertainty_w, 1.5 * s.energy_uncertainty_j / 10);
    assert_string_equal(s.pue_source, "assumed");
    etok_energy_summary_free(&s);

    /* no idle baseline: idle and dynamic unknown (NAN), never 0; no tokens: J/token unknown */
    r.idle_end_s = 0;
    r.tokens_known = 0;
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    assert_false(s.has_idle);
    assert_true(isnan(s.idle_power_w) && isnan(s.dynamic_energy_j));
    assert_true(isnan(s.joules_per_output_token) && isnan(s.joules_per_token));
    NEAR(s.energy_j, 300);
    etok_energy_summary_free(&s);

    /* a record with no traces at all: no energy, no crash */
    etok_record empty;
    etok_record_init(&empty);
    empty.window_end_s = 1;
    assert_int_equal(etok_energy_summarize(&empty, &s), 0);
    assert_false(s.has_energy);
    assert_true(isnan(s.energy_j));
    etok_energy_summary_free(&s);
    etok_record_free(&r);
}

static void uncertainty_model(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    etok_trace *t = add_trace(&r, "hwmon", "energy1", ETOK_SOURCE_COUNTER, ETOK_BOUNDARY_DEVICE, "J", 1, 1);
    t->resolution_si = 0.5;
    for (int i = 0; i <= 10; i++) etok_trace_add_sample(&r.traces[0], i, 10.0 * i); /* 10 W */
    etok_energy_result res;
    /* edges on readings, period unknown: resolution only, sqrt(2) x 0.5 */
    assert_int_equal(etok_energy_window(&r, 0, 10, &res), 0);
    NEAR(res.energy_j, 100);
    NEAR(res.traces[0].energy_uncertainty_j, sqrt(2.0) * 0.5);
    etok_energy_result_free(&res);
    /* update period 0.1 s at 10 W: 1 J per edge, in quadrature with resolution */
    r.traces[0].update_period_s = 0.1;
    assert_int_equal(etok_energy_window(&r, 0, 10, &res), 0);
    NEAR(res.traces[0].energy_uncertainty_j, sqrt(0.5 + 1 + 1));
    NEAR(res.traces[0].expected_updates, 100);
    etok_energy_result_free(&res);
    /* an interpolated edge (between readings 1 s apart) widens that edge to half the gap */
    assert_int_equal(etok_energy_window(&r, 0.5, 10, &res), 0);
    NEAR(res.traces[0].energy_uncertainty_j, sqrt(0.5 + 5 * 5 + 1));
    etok_energy_result_free(&res);
    /* an estimate carries its error band: 20 % of 100 J */
    r.traces[0].source = ETOK_SOURCE_ESTIMATE;
    r.traces[0].error_band = 0.2;
    assert_int_equal(etok_energy_window(&r, 0, 10, &res), 0);
    NEAR(res.traces[0].energy_uncertainty_j, sqrt(0.5 + 1 + 1 + 400));
    etok_energy_result_free(&res);
    /* power samples: sampling interval 1 s, 10 W -> 10 J per edge, resolution 0.01 W x 10 s */
    etok_record p;
    etok_record_init(&p);
    etok_trace *pt = add_trace(&p, "nvml", "gpu0", ETOK_SOURCE_POWER, ETOK_BOUNDARY_DEVICE, "W", 1, 1);
    pt->resolution_si = 0.01;
    for (int i = 0; i <= 10; i++) etok_trace_add_sample(pt, i, 10);
    assert_int_equal(etok_energy_window(&p, 0, 10, &res), 0);
    NEAR(res.energy_j, 100);
    NEAR(res.traces[0].energy_uncertainty_j, sqrt(0.1 * 0.1 + 100 + 100));
    etok_energy_result_free(&res);
    /* two traces at one boundary: uncertainties add linearly */
    etok_trace *pt2 = add_trace(&p, "nvml", "gpu1", ETOK_SOURCE_POWER, ETOK_BOUNDARY_DEVICE, "W", 1, 1);
    for (int i = 0; i <= 10; i++) etok_trace_add_sample(pt2, i, 10);
    assert_int_equal(etok_energy_window(&p, 0, 10, &res), 0);
    NEAR(res.energy_j, 200);
    NEAR(res.energy_uncertainty_j, res.traces[0].energy_uncertainty_j + res.traces[1].energy_uncertainty_j);
    etok_energy_result_free(&res);
    etok_record_free(&p);

    /* dynamic energy: idle uncertainty scaled to the window, in quadrature */
    r.traces[0].source = ETOK_SOURCE_COUNTER;
    r.traces[0].error_band = 0;
    r.traces[0].update_period_s = 0;
    r.idle_start_s = 0;
    r.idle_end_s = 2;
    r.window_start_s = 2;
    r.window_end_s = 10;
    etok_energy_summary s;
    assert_int_equal(etok_energy_summarize(&r, &s), 0);
    double u_e = sqrt(2.0) * 0.5, u_idle_w = sqrt(2.0) * 0.5 / 2;
    NEAR(s.energy_uncertainty_j, u_e);
    NEAR(s.idle_power_uncertainty_w, u_idle_w);
    NEAR(s.dynamic_energy_uncertainty_j, sqrt(u_e * u_e + (u_idle_w * 8) * (u_idle_w * 8)));
    NEAR(s.dynamic_energy_j, 0); /* constant 10 W: all of it is idle */
    etok_energy_summary_free(&s);
    etok_record_free(&r);
}

static void short_windows_are_flagged_never_silent_zero(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    /* NVML-like energy counter, updated every 100 ms */
    etok_trace *t = add_trace(&r, "nvml", "gpu0", ETOK_SOURCE_COUNTER, ETOK_BOUNDARY_DEVICE, "mJ", 1e-3, 1);
    t->update_period_s = 0.1;
    etok_trace_add_sample(t, 0.00, 1000);
    etok_trace_add_sample(t, 0.15, 1000); /* the counter has not moved yet */
    etok_energy_result res;
    assert_int_equal(etok_energy_window(&r, 0, 0.15, &res), 0);
    assert_true(res.traces[0].short_window);
    assert_true(res.short_window);
    assert_non_null(strstr(res.traces[0].problem, "not 0 J"));
    NEAR(res.traces[0].expected_updates, 1.5);
    etok_energy_result_free(&res);

    /* a long enough window with movement is not short */
    etok_trace_add_sample(t, 1.0, 61000);
    assert_int_equal(etok_energy_window(&r, 0, 1.0, &res), 0);
    assert_false(res.traces[0].short_window);
    NEAR(res.energy_j, 60);
    assert_int_equal(res.traces[0].n_changes, 1);
    etok_energy_result_free(&res);

    /* a window the readings only partly cover: incomplete, not extrapolated */
    assert_int_equal(etok_energy_window(&r, 0, 2.0, &res), 0);
    assert_true(res.traces[0].incomplete && res.incomplete);
    NEAR(res.traces[0].covered_s, 1.0);
    NEAR(res.energy_j, 60);
    etok_energy_result_free(&res);

    /* a window outside every reading: no energy at all */
    assert_int_equal(etok_energy_window(&r, 5, 6, &res), 0);
    assert_false(res.traces[0].valid);
    assert_false(res.has_energy);
    etok_energy_result_free(&res);

    /* invalid windows are refused */
    assert_int_equal(etok_energy_window(&r, 2, 1, &res), -1);
    assert_int_equal(etok_energy_window(&r, NAN, 1, &res), -1);
    etok_energy_result_free(&res);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_wrap_is_corrected),
        cmocka_unit_test(two_packages_and_dram_never_double_counted),
        cmocka_unit_test(power_trapezoid_with_interpolated_edges),
        cmocka_unit_test(boundaries_are_kept_apart_and_the_widest_is_primary),
        cmocka_unit_test(idle_subtraction_tokens_and_pue),
        cmocka_unit_test(uncertainty_model),
        cmocka_unit_test(short_windows_are_flagged_never_silent_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
