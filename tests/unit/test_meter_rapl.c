/* test_meter_rapl.c — the rapl meter on fixture powercap trees: two packages with dram, nested
 * core and psys kept out of totals, intel-rapl-mmio de-duplicated, a counter that wraps during
 * the run, a reset and a stall told apart from a wrap, and the root-only energy_uj error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "test_meter_fixture.h"
#include "etok/meter.h"
#include "meter/driver.h"

#define BIG_RANGE "262143328850\n"

static void zone(const char *root, const char *id, const char *name, const char *energy, const char *range) {
    char rel[256];
    snprintf(rel, sizeof rel, "class/powercap/%s/name", id);
    assert_int_equal(fx_write(root, rel, name, 0444), 0);
    snprintf(rel, sizeof rel, "class/powercap/%s/energy_uj", id);
    assert_int_equal(fx_write(root, rel, energy, 0400), 0);
    snprintf(rel, sizeof rel, "class/powercap/%s/max_energy_range_uj", id);
    assert_int_equal(fx_write(root, rel, range, 0444), 0);
}

static const etok_trace *find_trace(const etok_record *r, const char *meter, const char *domain) {
    for (size_t i = 0; i < r->n_traces; i++)
        if (!strcmp(r->traces[i].meter, meter) && !strcmp(r->traces[i].domain, domain)) return &r->traces[i];
    return NULL;
}

static size_t count_faults(const etok_record *r, const char *kind) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_faults; i++) n += !strcmp(r->faults[i].kind, kind);
    return n;
}

static void two_packages_dram_nested_and_mmio(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_non_null(root);
    zone(root, "intel-rapl:0", "package-0\n", "1000000\n", BIG_RANGE);
    zone(root, "intel-rapl:0:0", "core\n", "400000\n", BIG_RANGE);
    zone(root, "intel-rapl:0:1", "dram\n", "200000\n", "65532610987\n");
    zone(root, "intel-rapl:1", "package-1\n", "3000000\n", BIG_RANGE);
    zone(root, "intel-rapl:1:0", "dram\n", "100000\n", "65532610987\n");
    zone(root, "intel-rapl:2", "psys\n", "9000000\n", BIG_RANGE);
    zone(root, "intel-rapl-mmio:0", "package-0\n", "1000000\n", BIG_RANGE); /* same package via MMIO */
    setenv("ETOK_SYSFS_ROOT", root, 1);

    etok_err err = {{0}, 0};
    etok_meter_set *ms = fx_open_meter("rapl", 50, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.05);
    assert_int_equal(etok_meters_stop(ms, &err), 0);

    assert_int_equal(rec.n_traces, 6); /* the mmio twin is dropped */
    struct { const char *domain; int summable; double wrap_uj; } want[] = {
        {"package-0", 1, 262143328850.0},       {"package-0/core", 0, 262143328850.0},
        {"package-0/dram", 1, 65532610987.0},   {"package-1", 1, 262143328850.0},
        {"package-1/dram", 1, 65532610987.0},   {"psys", 0, 262143328850.0},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const etok_trace *t = find_trace(&rec, "rapl", want[i].domain);
        assert_non_null(t);
        assert_int_equal(t->summable, want[i].summable);
        assert_true(t->wrap_range_raw == want[i].wrap_uj);
        assert_int_equal(t->source, ETOK_SOURCE_COUNTER);
        assert_string_equal(t->raw_unit, "uJ");
        assert_true(t->scale_to_si == 1e-6);
        assert_true(t->n_samples >= 2); /* start and stop readings at least */
    }
    assert_null(find_trace(&rec, "rapl", "package-0 (mmio)"));
    assert_true(find_trace(&rec, "rapl", "package-1")->samples[0].raw == 3000000.0);
    assert_int_equal(rec.n_faults, 0);
    etok_meters_close(ms);
    etok_record_free(&rec);

    /* the listing says the same */
    etok_meter_status st[8];
    int n = etok_meters_list(st, 8, NULL);
    assert_true(n >= 1);
    assert_string_equal(st[0].name, "rapl");
    assert_int_equal(st[0].available, 1);
    assert_non_null(strstr(st[0].domains, "package-1/dram"));
    assert_non_null(strstr(st[0].domains, "psys(nested)"));
    assert_null(strstr(st[0].domains, "mmio"));
    fx_rmrf(root);
}

static void mmio_alone_is_kept(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    zone(root, "intel-rapl-mmio:0", "package-0\n", "1000\n", BIG_RANGE);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = fx_open_meter("rapl", 10, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    etok_meters_close(ms);
    assert_int_equal(rec.n_traces, 1);
    assert_string_equal(rec.traces[0].domain, "package-0 (mmio)");
    assert_int_equal(rec.traces[0].summable, 1);
    etok_record_free(&rec);
    fx_rmrf(root);
}

static void counter_wraps_during_run(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    /* package-0 wraps at 100 J: 99.90 J -> 99.95 -> 0.05 (wrapped) -> 0.12 */
    zone(root, "intel-rapl:0", "package-0\n", "99900000\n", "100000000\n");
    zone(root, "intel-rapl:1", "package-1\n", "5000\n", BIG_RANGE);
    zone(root, "intel-rapl:1:0", "core\n", "1000\n", BIG_RANGE);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = fx_open_meter("rapl", 100, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    const char *seq[] = {"99950000\n", "50000\n", "120000\n"};
    for (int i = 0; i < 3; i++) {
        fx_sleep(0.06);
        assert_int_equal(fx_write(root, "class/powercap/intel-rapl:0/energy_uj", seq[i], 0400), 0);
        if (i == 1) assert_int_equal(fx_write(root, "class/powercap/intel-rapl:1/energy_uj", "105000\n", 0400), 0);
        if (i == 1) assert_int_equal(fx_write(root, "class/powercap/intel-rapl:1:0/energy_uj", "901000\n", 0400), 0);
    }
    fx_sleep(0.05);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    etok_energy_snapshot snap;
    assert_int_equal(etok_meters_snapshot(ms, &snap), 0);
    /* package-0: 0.05 + 0.10 (across the wrap) + 0.07 J; package-1: 0.10 J; core is nested */
    assert_true(fabs(snap.energy_j - 0.32) < 1e-9);
    assert_int_equal(snap.source, ETOK_SOURCE_COUNTER);
    assert_int_equal(snap.boundary, ETOK_BOUNDARY_DEVICE);
    assert_int_equal(count_faults(&rec, "reset"), 0);
    const etok_trace *t = find_trace(&rec, "rapl", "package-0");
    int went_down = 0;
    for (size_t i = 1; i < t->n_samples; i++) went_down |= t->samples[i].raw < t->samples[i - 1].raw;
    assert_true(went_down); /* the raw readings keep the wrap; correction is the analysis' job too */
    assert_true(t->samples[t->n_samples - 1].raw == 120000.0);
    /* a 100 J range at up to 2 kW wraps in 50 ms: the sampler must read at least every 12.5 ms.
     * Ticks (not the start and stop readings) 12.5 ms apart or closer show the rate; counting
     * them, not all samples, keeps a loaded machine that delays some ticks from failing this. */
    int close_ticks = 0;
    for (size_t i = 2; i + 1 < t->n_samples; i++) close_ticks += t->samples[i].t_s - t->samples[i - 1].t_s <= 0.0125;
    if (close_ticks < 3) fail_msg("%d of %zu sampler gaps <= 12.5 ms at 100 Hz", close_ticks, t->n_samples);
    etok_meters_close(ms);
    etok_record_free(&rec);
    fx_rmrf(root);
}

static void reset_and_stall_are_faults(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    zone(root, "intel-rapl:0", "package-0\n", "5000000\n", BIG_RANGE);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = fx_open_meter("rapl", 50, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.05);
    /* a step back of 1 J is no wrap of a 262 kJ range (that would be 262 kJ in 50 ms) */
    assert_int_equal(fx_write(root, "class/powercap/intel-rapl:0/energy_uj", "4000000\n", 0400), 0);
    fx_sleep(1.3); /* then the counter stays put for longer than its stall limit (1 s) */
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    assert_int_equal(count_faults(&rec, "reset"), 1);
    assert_int_equal(count_faults(&rec, "stall"), 1);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_true(snap.energy_j == 0.0); /* the reset step is not counted as 262 kJ */
    etok_meters_close(ms);
    etok_record_free(&rec);
    fx_rmrf(root);
}

static void unreadable_energy_is_permission_error(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    zone(root, "intel-rapl:0", "package-0\n", "5000000\n", BIG_RANGE);
    zone(root, "intel-rapl:1", "package-1\n", "5000000\n", BIG_RANGE);
    /* mode 000 models current kernels' root-only energy_uj; treated as EACCES even for root */
    char p[1024];
    snprintf(p, sizeof p, "%s/class/powercap/intel-rapl:1/energy_uj", root);
    assert_int_equal(chmod(p, 0000), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    setenv("ETOK_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);

    etok_err err = {{0}, 0};
    assert_null(fx_open_meter("rapl", 10, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_PERMISSION);
    assert_non_null(strstr(err.msg, "intel-rapl:1/energy_uj"));
    assert_non_null(strstr(err.msg, "root-only"));
    assert_non_null(strstr(err.msg, "chmod o+r"));
    assert_non_null(strstr(err.msg, "perf"));
    assert_null(strchr(err.msg, '\n'));

    /* no names: a counter that exists but cannot be read is an error, never a silent estimate */
    memset(&err, 0, sizeof err);
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    assert_null(etok_meters_open(&cfg, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_PERMISSION);

    etok_meter_status st[8];
    etok_meters_list(st, 8, NULL);
    assert_int_equal(st[0].available, 0);
    assert_int_equal(strncmp(st[0].why, "permission", 10), 0);
    unsetenv("ETOK_NVML_LIB");
    fx_rmrf(root);
}

static void counter_delta_classifies_steps(void **state) {
    (void)state;
    etok_step_kind k;
    assert_true(etok_counter_delta(100, 250, 1000, 0.1, 1e6, &k) == 150 && k == ETOK_STEP_OK);
    assert_true(etok_counter_delta(900, 100, 1000, 0.1, 1e6, &k) == 200 && k == ETOK_STEP_WRAP);
    /* a wrap that would mean 999.9 units in 0.1 s at a max of 100 units/s (1.1 s of slack): reset */
    assert_true(etok_counter_delta(500, 400, 1000, 0.1, 100, &k) == 0 && k == ETOK_STEP_RESET);
    /* no wrap range known: any step back is a reset */
    assert_true(etok_counter_delta(500, 400, 0, 0.1, 1e9, &k) == 0 && k == ETOK_STEP_RESET);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(counter_delta_classifies_steps),
        cmocka_unit_test(two_packages_dram_nested_and_mmio),
        cmocka_unit_test(mmio_alone_is_kept),
        cmocka_unit_test(counter_wraps_during_run),
        cmocka_unit_test(reset_and_stall_are_faults),
        cmocka_unit_test(unreadable_energy_is_permission_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
