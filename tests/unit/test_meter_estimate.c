/* test_meter_estimate.c — the estimate meter on fixture /proc trees: busy fraction from
 * per-core jiffies deltas, the linear power model, --cpu-tdp vs catalog vs generic default,
 * the error band, and that the estimate is used only by name or when no meter exists. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "test_meter_fixture.h"
#include "etok/meter.h"
#include "meter/driver.h"

/* user nice system idle iowait irq softirq steal */
static const char *STAT0 =
    "cpu  300 0 100 1600 0 0 0 0 0 0\n"
    "cpu0 100 0 50 850 0 0 0 0 0 0\n"
    "cpu1 200 0 50 750 0 0 0 0 0 0\n"
    "intr 1 2 3\nctxt 100\n";
/* cpu0: +60 busy (user 40, system 10, irq 5, softirq 5), +40 idle;  cpu1: +10 busy, +80 idle,
 * +10 steal (not ours, not busy) -> busy 70 of 200 = 0.35 */
static const char *STAT1 =
    "cpu  350 0 160 1720 0 5 5 10 0 0\n"
    "cpu0 140 0 60 890 0 5 5 0 0 0\n"
    "cpu1 210 0 50 830 0 0 0 10 0 0\n"
    "intr 1 2 3\nctxt 200\n";

static void busy_fraction_and_model(void **state) {
    (void)state;
    int n = 0;
    double f = etok_estimate_busy_fraction(STAT0, STAT1, &n);
    assert_int_equal(n, 2);
    assert_true(fabs(f - 0.35) < 1e-12);
    assert_true(etok_estimate_busy_fraction(STAT0, STAT0, NULL) < 0); /* no time passed */
    assert_true(etok_estimate_busy_fraction(STAT1, STAT0, NULL) < 0); /* went backwards */
    assert_true(etok_estimate_busy_fraction("garbage\n", STAT1, NULL) < 0);
    assert_true(fabs(etok_estimate_power_w(10, 50, 0.35) - 24.0) < 1e-12);
    assert_true(etok_estimate_power_w(10, 50, 1.5) == 50.0);
    assert_true(etok_estimate_power_w(10, 50, -1) == 10.0);
}

static char *proc_tree(const char *model) {
    char *root = fx_tmpdir();
    assert_non_null(root);
    assert_int_equal(fx_write(root, "stat", STAT0, 0444), 0);
    char ci[512];
    snprintf(ci, sizeof ci,
             "processor\t: 0\nmodel name\t: %s\nphysical id\t: 0\n\nprocessor\t: 1\nmodel name\t: %s\nphysical id\t: 0\n\n",
             model, model);
    assert_int_equal(fx_write(root, "cpuinfo", ci, 0444), 0);
    setenv("ETOK_PROC_ROOT", root, 1);
    return root;
}

static void estimate_meter_with_cpu_tdp(void **state) {
    (void)state;
    char *root = proc_tree("Some CPU");
    const char *names[1] = {"estimate"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 1;
    cfg.rate_hz = 50;
    cfg.cpu_idle_w = 10;
    cfg.cpu_max_w = 50;
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.05);
    assert_int_equal(fx_write(root, "stat", STAT1, 0444), 0);
    fx_sleep(0.1);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    assert_int_equal(rec.n_traces, 1);
    const etok_trace *t = &rec.traces[0];
    assert_string_equal(t->meter, "estimate");
    assert_int_equal(t->source, ETOK_SOURCE_ESTIMATE);
    assert_int_equal(t->boundary, ETOK_BOUNDARY_DEVICE);
    assert_true(t->error_band == 0.3);
    assert_non_null(strstr(t->power_field, "cpu-tdp"));
    /* one package: 10 + 40 * 0.35 = 24 W once the change was seen, 10 W (idle) before */
    assert_true(t->samples[t->n_samples - 1].raw == 24.0);
    for (size_t i = 0; i < t->n_samples; i++) assert_true(t->samples[i].raw == 10.0 || t->samples[i].raw == 24.0);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_int_equal(snap.source, ETOK_SOURCE_ESTIMATE); /* flagged as an estimate */
    assert_true(snap.energy_uncertainty_j >= 0.3 * snap.energy_j);
    etok_meters_close(ms);
    etok_record_free(&rec);
    fx_rmrf(root);
}

static void catalog_and_generic_default(void **state) {
    (void)state;
    char *root = proc_tree("AMD EPYC 7763 64-Core Processor");
    etok_meter_status st[8];
    int n = etok_meters_list(st, 8, NULL);
    assert_int_equal(n, 7); /* rapl perf hwmon nvml amdsmi extlog estimate */
    const int e = n - 1;  /* estimate is listed last */
    assert_string_equal(st[e].name, "estimate");
    assert_int_equal(st[e].available, 1);
    assert_int_equal(st[e].source, ETOK_SOURCE_ESTIMATE);
    assert_non_null(strstr(st[e].domains, "EPYC 7763"));
    assert_non_null(strstr(st[e].domains, "1.1-4.4 W")); /* 2 CPUs x 0.55..2.19 W */
    fx_rmrf(root);
    root = proc_tree("Mystery Processor 9000");
    etok_meters_list(st, 8, NULL);
    assert_non_null(strstr(st[e].domains, "generic"));
    assert_non_null(strstr(st[e].domains, "2.0-8.0 W"));
    assert_non_null(strstr(st[e].domains, "50%"));
    fx_rmrf(root);
    setenv("ETOK_PROC_ROOT", "/nonexistent", 1);
    etok_meters_list(st, 8, NULL);
    assert_int_equal(st[e].available, 0);
    unsetenv("ETOK_PROC_ROOT");
}

static void estimate_only_when_nothing_else(void **state) {
    (void)state;
    char *proc = proc_tree("Some CPU");
    char *sys = fx_tmpdir();
    setenv("ETOK_SYSFS_ROOT", sys, 1);
    setenv("ETOK_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err); /* no meter at all: the estimate, labelled */
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    etok_meters_close(ms);
    assert_int_equal(rec.n_traces, 1);
    assert_int_equal(rec.traces[0].source, ETOK_SOURCE_ESTIMATE);
    etok_record_free(&rec);

    /* a real counter exists: auto mode uses it and never adds the estimate */
    assert_int_equal(fx_write(sys, "class/hwmon/hwmon0/name", "amdgpu\n", 0444), 0);
    assert_int_equal(fx_write(sys, "class/hwmon/hwmon0/power1_average", "1000000\n", 0444), 0);
    ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    etok_meters_close(ms);
    for (size_t i = 0; i < rec.n_traces; i++) assert_true(rec.traces[i].source != ETOK_SOURCE_ESTIMATE);
    assert_true(rec.n_traces == 1);
    etok_record_free(&rec);
    unsetenv("ETOK_NVML_LIB");
    fx_rmrf(sys);
    fx_rmrf(proc);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(busy_fraction_and_model),
        cmocka_unit_test(estimate_meter_with_cpu_tdp),
        cmocka_unit_test(catalog_and_generic_default),
        cmocka_unit_test(estimate_only_when_nothing_else),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
