/* test_bgload.c — issue 17: background load readings on a fixture /proc (ETOK_PROC_ROOT),
 * per-phase figures, warnings and the process-boundary attribution model on hand-built records,
 * and the record's optional cpu_load section round-tripping. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/attribute.h"
#include "etok/bgload.h"
#include "etok/cpuload.h"
#include "etok/energy.h"
#include "etok/record.h"

static char root[256];

static void put(const char *rel, const char *fmt, ...) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void mk(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    mkdir(p, 0755);
}

/* two cores; busy/idle jiffies per core */
static void put_stat(unsigned long long busy_per_core, unsigned long long idle_per_core) {
    put("stat", "cpu  0 0 0 0 0 0 0 0\ncpu0 %llu 0 0 %llu 0 0 0 0\ncpu1 %llu 0 0 %llu 0 0 0 0\n", busy_per_core,
        idle_per_core, busy_per_core, idle_per_core);
}

static void put_pid(const char *pid, long pgrp, unsigned long long ut, unsigned long long st, long long cut) {
    char d[64], f[80];
    snprintf(d, sizeof d, "%s", pid);
    mk(d);
    snprintf(f, sizeof f, "%s/stat", pid);
    put(f, "%s (a (weird) name) S 1 %ld %ld 0 -1 0 0 0 0 0 %llu %llu %lld 0 20 0 1 0\n", pid, pgrp, pgrp, ut, st, cut);
}

static int setup_root(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/etok_bgload_%d", (int)getpid());
    mkdir(root, 0755);
    setenv("ETOK_PROC_ROOT", root, 1);
    return 0;
}

static int teardown_root(void **state) {
    (void)state;
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    assert_int_equal(system(cmd), 0);
    unsetenv("ETOK_PROC_ROOT");
    return 0;
}

static void test_reader_process_group(void **state) {
    (void)state;
    double hz = (double)sysconf(_SC_CLK_TCK);
    put_stat(100, 100);
    put_pid("500", 500, 10, 5, 0);   /* leader */
    put_pid("501", 500, 3, 2, 0);    /* member */
    put_pid("600", 600, 1000, 0, 0); /* someone else: background */
    etok_err err = {0};
    etok_cpuload_reader *cr = etok_cpuload_open(ETOK_CPU_SCOPE_GROUP, 500, &err);
    assert_non_null(cr);
    etok_cpu_sample s;
    int n = 0;
    assert_int_equal(etok_cpuload_read(cr, 1.0, &s, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(fabs(s.busy_s - 200 / hz) < 1e-9);
    assert_true(fabs(s.total_s - 400 / hz) < 1e-9);
    assert_true(fabs(s.own_s - 20 / hz) < 1e-9); /* members count from 0: they started in the run */
    /* the member exits (its time stays), the leader reaps a child (cutime) */
    char p[512];
    snprintf(p, sizeof p, "rm -rf '%s/501'", root);
    assert_int_equal(system(p), 0);
    put_pid("500", 500, 20, 5, 7);
    put_stat(150, 150);
    assert_int_equal(etok_cpuload_read(cr, 2.0, &s, &n, &err), 0);
    assert_true(fabs(s.own_s - (20 + 10 + 7) / hz) < 1e-9);
    /* scope none: own unknown */
    etok_cpuload_set_scope(cr, ETOK_CPU_SCOPE_NONE, 0);
    etok_cpuload_close(cr);
    cr = etok_cpuload_open(ETOK_CPU_SCOPE_NONE, 0, &err);
    assert_int_equal(etok_cpuload_read(cr, 3.0, &s, &n, &err), 0);
    assert_true(s.own_s < 0);
    etok_cpuload_close(cr);
    /* a pid scope counts from its first reading */
    cr = etok_cpuload_open(ETOK_CPU_SCOPE_PID, 600, &err);
    assert_int_equal(etok_cpuload_read(cr, 1.0, &s, &n, &err), 0);
    assert_true(fabs(s.own_s) < 1e-12);
    put_pid("600", 600, 1100, 0, 0);
    assert_int_equal(etok_cpuload_read(cr, 2.0, &s, &n, &err), 0);
    assert_true(fabs(s.own_s - 100 / hz) < 1e-9);
    etok_cpuload_close(cr);
    /* no stat file: an error naming it */
    snprintf(p, sizeof p, "%s/stat", root);
    unlink(p);
    cr = etok_cpuload_open(ETOK_CPU_SCOPE_PROCESS, 0, &err);
    assert_int_equal(etok_cpuload_read(cr, 1.0, &s, &n, &err), -1);
    assert_non_null(strstr(err.msg, "/stat"));
    etok_cpuload_close(cr);
}

/* A record whose readings every 0.1 s give own and background cores per phase (2 cores). */
static void build(etok_record *r, double bg_idle, double bg_win, double own_win, int own_known) {
    etok_record_init(r);
    r->idle_start_s = 0;
    r->idle_end_s = 2;
    r->window_start_s = 2;
    r->window_end_s = 4;
    etok_cpuload *cl = &r->cpuload;
    cl->present = 1;
    cl->n_cpus = 2;
    snprintf(cl->scope, sizeof cl->scope, "%s", own_known ? "process" : "none");
    double busy = 0, own = 0;
    for (int k = 0; k <= 40; k++) {
        double t = k * 0.1;
        etok_cpu_sample *s = etok_record_add_cpu_sample(r);
        assert_non_null(s);
        *s = (etok_cpu_sample){t, busy, 2 * t, own_known ? own : -1};
        int win = t >= 2 - 1e-9;
        busy += 0.1 * ((win ? bg_win + own_win : bg_idle) + (k % 2 ? 0.02 : 0)); /* a little noise */
        own += 0.1 * (win ? own_win : 0);
    }
}

static void test_phases_and_warnings(void **state) {
    (void)state;
    etok_record r;
    etok_bgload b;
    /* quiet: no warning */
    build(&r, 0.02, 0.02, 1.0, 1);
    etok_bgload_analyse(&r, &b);
    assert_true(b.present);
    assert_true(b.phase[ETOK_PHASE_IDLE].valid && b.phase[ETOK_PHASE_WINDOW].valid);
    assert_false(b.phase[ETOK_PHASE_WARMUP].valid); /* zero length */
    assert_true(fabs(b.phase[ETOK_PHASE_WINDOW].own_busy_cores - 1.0) < 0.02);
    assert_true(fabs(b.phase[ETOK_PHASE_WINDOW].background_busy_cores - 0.02) < 0.02);
    assert_int_equal(b.changed, 0);
    assert_string_equal(b.warning, "");
    etok_record_free(&r);
    /* a busy loop started during the window */
    build(&r, 0.02, 1.0, 1.0, 1);
    etok_bgload_analyse(&r, &b);
    assert_int_equal(b.changed, 1);
    assert_true(b.change_cores > 0.9);
    assert_non_null(strstr(b.warning, "rose"));
    assert_non_null(strstr(b.warning, "window 1.0"));
    etok_bgload_fill_record(&r);
    assert_int_equal(r.cpuload.background_changed, 1);
    assert_true(r.cpuload.phase[ETOK_PHASE_WINDOW].background_busy_cores > 0.9);
    etok_record_free(&r);
    /* one during the baseline only */
    build(&r, 1.0, 0.0, 1.0, 1);
    etok_bgload_analyse(&r, &b);
    assert_int_equal(b.changed, 1);
    assert_non_null(strstr(b.warning, "fell"));
    assert_non_null(strstr(b.warning, "idle baseline 1.0"));
    etok_record_free(&r);
    /* steady background: above threshold but not changed */
    build(&r, 0.5, 0.5, 1.0, 1);
    etok_bgload_analyse(&r, &b);
    assert_int_equal(b.changed, 0);
    assert_true(b.above_threshold);
    assert_null(strstr(b.warning, "idle subtraction"));
    etok_record_free(&r);
    /* own unknown (--endpoint): no background figure, no change verdict */
    build(&r, 0.5, 1.5, 0, 0);
    etok_bgload_analyse(&r, &b);
    assert_int_equal(b.changed, -1);
    assert_true(b.phase[ETOK_PHASE_WINDOW].background_busy_cores < 0);
    assert_true(fabs(b.phase[ETOK_PHASE_WINDOW].machine_busy_cores - 1.5) < 0.02);
    etok_record_free(&r);
    /* no readings at all (an old record) */
    etok_record_init(&r);
    etok_bgload_analyse(&r, &b);
    assert_false(b.present);
    etok_record_free(&r);
}

static void test_interval_rule(void **state) {
    (void)state;
    /* all dynamic, all idle when alone */
    assert_true(fabs(etok_process_interval_energy(10, 1, 2, 1, 1, 2) - 10) < 1e-12);
    /* half the busy time, one of two cores held by background: 0.5*8 + 0.5*2 */
    assert_true(fabs(etok_process_interval_energy(10, 1, 2, 1, 2, 2) - 5) < 1e-12);
    /* energy below idle (noise): no negative dynamic, never more than the device's energy */
    assert_true(fabs(etok_process_interval_energy(1, 1, 2, 1, 1, 2) - 1) < 1e-12);
    /* nobody busy: the whole interval is ours (rest = idle + unexplained dynamic) */
    assert_true(fabs(etok_process_interval_energy(3, 1, 2, 0, 0, 2) - 3) < 1e-12);
    /* own cores above machine busy (rounding): clamped to all of it */
    assert_true(fabs(etok_process_interval_energy(10, 1, 2, 1.5, 1, 2) - 10) < 1e-12);
    /* the shared split: consumers that do not overlap plus the rest add up to the energy */
    double E = 17, I = 4, c[3] = {0.5, 1.25, 0.75}, sum = 0; /* 4 cores, 2.5 busy */
    for (int k = 0; k < 3; k++) sum += etok_cpu_share_energy(E, 2, I / 2, c[k], 2.5, 4);
    double rest = etok_cpu_rest_energy(E, 2, I / 2, 2.5, 4);
    assert_true(fabs(sum + rest - E) < 1e-12);
    assert_true(fabs(rest - 1.5 / 4 * I) < 1e-12); /* the idle of 1.5 free cores */
    assert_true(fabs(etok_cpu_share_energy(E, 2, I / 2, 0.5, 2.5, 4) - (0.2 * 13 + 0.5 / 4 * 4)) < 1e-12);
    /* no idle known (the exporter by default): a pure CPU-time share; nobody busy: all rest */
    assert_true(fabs(etok_cpu_share_energy(E, 2, 0, 0.5, 2.5, 4) - 0.2 * E) < 1e-12);
    assert_true(fabs(etok_cpu_rest_energy(E, 2, 0, 0, 4) - E) < 1e-12);
    assert_true(etok_cpu_share_energy(E, 2, 0, 1, 0, 4) == 0);
    assert_true(etok_cpu_share_energy(-1, 2, 0, 1, 1, 4) == 0 && etok_cpu_rest_energy(-1, 2, 0, 1, 4) == 0);
}

/* A run on an n-core device whose power is P = n x 1 W + 3 W x busy cores (the estimate
 * meter's generic model), as a power trace (estimate) or a counter in uJ (RAPL-like). The
 * workload needs W = 20 core-seconds for 100 output tokens and runs on `own_demand` cores when
 * alone. A busy loop wants one core: during the baseline (bg_idle) and/or the window (bg_win);
 * when demand exceeds the cores, the scheduler shares them in proportion (the work slows). */
typedef struct {
    int n;
    double own_demand, bg_idle, bg_win;
} scenario;

static void device_run(etok_record *r, int counter, scenario sc) {
    etok_record_init(r);
    double n = sc.n, own = sc.own_demand, bg = sc.bg_win;
    if (own + bg > n) {
        own = n * sc.own_demand / (sc.own_demand + sc.bg_win);
        bg = n * sc.bg_win / (sc.own_demand + sc.bg_win);
    }
    double T = 20 / own;
    r->idle_start_s = 0;
    r->idle_end_s = 5;
    r->window_start_s = 5;
    r->window_end_s = 5 + T;
    r->tokens_known = 1;
    r->tokens_out = 100;
    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, counter ? "rapl" : "estimate");
    snprintf(t->domain, sizeof t->domain, "package-0");
    t->source = counter ? ETOK_SOURCE_COUNTER : ETOK_SOURCE_ESTIMATE;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, counter ? "uJ" : "W");
    t->scale_to_si = counter ? 1e-6 : 1;
    t->wrap_range_raw = counter ? 262143328850.0 : 0;
    t->resolution_si = counter ? 1e-6 : 0.01;
    t->update_period_s = counter ? 0.001 : 0.1;
    t->summable = 1;
    etok_cpuload *cl = &r->cpuload;
    cl->present = 1;
    cl->n_cpus = sc.n;
    snprintf(cl->scope, sizeof cl->scope, "process");
    double e = 0, busy = 0, o = 0;
    for (int k = 0; k * 0.1 <= r->window_end_s + 1e-9; k++) {
        double ts = k * 0.1;
        int win = ts >= 5 - 1e-9;
        double b = win ? own + bg : sc.bg_idle, p = n + 3 * b;
        /* an estimate reading at ts is the power over the interval that ends there */
        assert_non_null(etok_trace_add_sample(t, ts, counter ? e * 1e6 : (k ? p : n)));
        etok_cpu_sample *s = etok_record_add_cpu_sample(r);
        *s = (etok_cpu_sample){ts, busy, n * ts, o};
        e += p * 0.1;
        busy += b * 0.1;
        o += (win ? own : 0) * 0.1;
    }
}

static double process_jpt(int counter, scenario sc, double *device_jpt, etok_process_energy *pe_out) {
    etok_record r;
    device_run(&r, counter, sc);
    etok_bgload_fill_record(&r);
    etok_energy_summary es;
    assert_int_equal(etok_energy_summarize(&r, &es), 0);
    assert_true(es.has_idle);
    etok_process_energy pe;
    assert_int_equal(etok_process_energy_compute(&r, &es, &pe), 0);
    assert_true(pe.valid);
    assert_non_null(strstr(pe.note, "attribution model"));
    if (device_jpt) *device_jpt = es.joules_per_output_token;
    if (pe_out) *pe_out = pe;
    etok_energy_summary_free(&es);
    etok_record_free(&r);
    return pe.joules_per_output_token;
}

static void test_process_figure_within_15pct(void **state) {
    (void)state;
    for (int counter = 0; counter < 2; counter++) {
        /* the built-in engine takes every core when alone (bench's default --threads) */
        for (int n = 2; n <= 8; n *= 2) {
            double quiet_dev, dev;
            etok_process_energy pe;
            double quiet = process_jpt(counter, (scenario){n, n, 0, 0}, &quiet_dev, &pe);
            assert_true(fabs(quiet - quiet_dev) < 0.02 * quiet_dev); /* quiet: all ours */
            /* one busy loop through baseline and window, only in the window, only in the baseline */
            const scenario nb[3] = {{n, n, 1, 1}, {n, n, 0, 1}, {n, n, 1, 0}};
            for (int i = 0; i < 3; i++) {
                double jpt = process_jpt(counter, nb[i], &dev, &pe);
                if (nb[i].bg_win > 0) assert_true(dev > 1.05 * quiet_dev); /* the device figure is inflated */
                if (fabs(jpt - quiet) > 0.15 * quiet)
                    fprintf(stderr, "counter %d n %d case %d: %g vs quiet %g\n", counter, n, i, jpt, quiet);
                assert_true(fabs(jpt - quiet) <= 0.15 * quiet);
                if (nb[i].bg_idle > 0) { /* the baseline held a core: its share comes off the idle */
                    assert_true(pe.fitted);
                    assert_true(fabs(pe.watts_per_core - 3) < 0.15);
                    assert_true(fabs(pe.idle_power_w - n) < 0.1 * n);
                    assert_true(pe.baseline_power_w > n + 2.5);
                    assert_non_null(strstr(pe.note, "W/busy core (fitted"));
                }
            }
        }
    }
    /* An engine that leaves cores free (--threads 2 on 4 cores) beside a loop through baseline
     * and window: the fitted idle removes the bias k b^2 (1/(o+b) - 1/n) of the contaminated
     * baseline; what is left is the idle of the core the loop holds (b/n of idle), by the rule. */
    for (int counter = 0; counter < 2; counter++) {
        etok_process_energy pe;
        double quiet = process_jpt(counter, (scenario){4, 2, 0, 0}, NULL, NULL);
        double jpt = process_jpt(counter, (scenario){4, 2, 1, 1}, NULL, &pe);
        assert_true(pe.fitted);
        /* own: 3 W x 2 cores + 3/4 of the 4 W idle, per 10 s for 100 tokens */
        assert_true(fabs(jpt - (6 + 3) * 10 / 100.0) < 0.03 * jpt);
        assert_true(fabs(jpt - quiet) <= 0.15 * quiet);
    }
    /* A machine saturated throughout (busy cores do not move): nothing to fit, and nothing
     * needed (the figure is own CPU share x device energy whatever the idle); it says so */
    {
        etok_process_energy pe;
        (void)process_jpt(0, (scenario){2, 1, 2, 1}, NULL, &pe);
        assert_false(pe.fitted);
        assert_non_null(strstr(pe.note, "not fitted"));
    }
    /* without an idle baseline there is no process figure, and it says why */
    etok_record r;
    device_run(&r, 0, (scenario){2, 2, 1, 1});
    r.idle_end_s = r.idle_start_s = 0;
    etok_energy_summary es;
    assert_int_equal(etok_energy_summarize(&r, &es), 0);
    etok_process_energy pe;
    assert_int_equal(etok_process_energy_compute(&r, &es, &pe), 0);
    assert_false(pe.valid);
    assert_non_null(strstr(pe.note, "idle baseline"));
    etok_energy_summary_free(&es);
    etok_record_free(&r);
}

static void test_record_roundtrip(void **state) {
    (void)state;
    etok_record r, back;
    build(&r, 0.02, 1.0, 1.0, 1);
    etok_bgload_fill_record(&r);
    char *txt = etok_record_to_json_text(&r);
    assert_non_null(txt);
    etok_err err = {0};
    assert_int_equal(etok_record_from_json_text(&back, txt, "t.json", &err), 0);
    assert_true(back.cpuload.present);
    assert_int_equal(back.cpuload.n_samples, r.cpuload.n_samples);
    assert_string_equal(back.cpuload.scope, "process");
    assert_int_equal(back.cpuload.background_changed, 1);
    assert_true(fabs(back.cpuload.phase[ETOK_PHASE_WINDOW].background_busy_cores -
                     r.cpuload.phase[ETOK_PHASE_WINDOW].background_busy_cores) < 1e-12);
    etok_record_free(&back);
    /* a bad sample is named */
    etok_record_free(&r);
    free(txt);
    build(&r, 0, 0, 1, 1);
    r.cpuload.samples[3].busy_s = 1e6; /* busy above total */
    txt = etok_record_to_json_text(&r);
    assert_int_equal(etok_record_from_json_text(&back, txt, "t.json", &err), -1);
    if (!strstr(err.msg, "cpu_load.samples[3]")) fprintf(stderr, "%s\n", err.msg);
    assert_non_null(strstr(err.msg, "cpu_load.samples[3]"));
    etok_record_free(&back);
    free(txt);
    /* an old record (no cpu_load) loads with present = 0 */
    r.cpuload.present = 0;
    txt = etok_record_to_json_text(&r);
    assert_null(strstr(txt, "cpu_load"));
    assert_int_equal(etok_record_from_json_text(&back, txt, "t.json", &err), 0);
    assert_false(back.cpuload.present);
    etok_record_free(&back);
    free(txt);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_reader_process_group, setup_root, teardown_root),
        cmocka_unit_test(test_phases_and_warnings),
        cmocka_unit_test(test_interval_rule),
        cmocka_unit_test(test_process_figure_within_15pct),
        cmocka_unit_test(test_record_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
