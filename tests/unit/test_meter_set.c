/* test_meter_set.c — the meter set API: unknown meter names, the listing of every known
 * meter, the perf PMU's sysfs description, the sampler's rate and clock accessors. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "test_meter_fixture.h"
#include "etok/meter.h"
#include "meter/driver.h"

static void unknown_meter_name_lists_known_ones(void **state) {
    (void)state;
    const char *names[2] = {"rapl", "joulemeter"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 2;
    etok_err err = {{0}, 0};
    assert_null(etok_meters_open(&cfg, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "'joulemeter'"));
    assert_non_null(strstr(err.msg, "rapl, perf, hwmon, nvml, amdsmi, extlog, estimate"));
}

static void listing_covers_every_meter_with_reasons(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    setenv("ETOK_SYSFS_ROOT", root, 1);
    setenv("ETOK_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    setenv("ETOK_AMDSMI_LIB", "/nonexistent/libamd_smi.so", 1);
    etok_meter_status st[16];
    int n = etok_meters_list(st, 16, NULL);
    assert_int_equal(n, 7);
    const char *want[] = {"rapl", "perf", "hwmon", "nvml", "amdsmi", "extlog", "estimate"};
    for (int i = 0; i < 6; i++) {
        assert_string_equal(st[i].name, want[i]);
        assert_int_equal(st[i].available, 0);
        assert_int_equal(strncmp(st[i].why, "missing", 7), 0);
    }
    assert_string_equal(st[6].name, "estimate");
    assert_int_equal(st[6].source, ETOK_SOURCE_ESTIMATE);
    assert_int_equal(st[1].source, ETOK_SOURCE_COUNTER);
    assert_int_equal(st[4].source, ETOK_SOURCE_COUNTER);
    assert_int_equal(st[4].boundary, ETOK_BOUNDARY_DEVICE);
    assert_int_equal(st[5].source, ETOK_SOURCE_EXTERNAL);
    assert_int_equal(st[5].boundary, ETOK_BOUNDARY_NODE);
    assert_int_equal(etok_meters_list(st, 2, NULL), 2); /* respects cap */
    unsetenv("ETOK_NVML_LIB");
    unsetenv("ETOK_AMDSMI_LIB");
    fx_rmrf(root);
}

static void perf_pmu_sysfs_parsing(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    const char *d = "bus/event_source/devices/power";
    char rel[256];
#define W(file, text) do { snprintf(rel, sizeof rel, "%s/%s", d, file); assert_int_equal(fx_write(root, rel, text, 0444), 0); } while (0)
    W("type", "23\n");
    W("cpumask", "0,8\n");
    W("events/energy-pkg", "event=0x02\n");
    W("events/energy-pkg.scale", "2.3283064365386962890625e-10\n");
    W("events/energy-pkg.unit", "Joules\n");
    W("events/energy-ram", "event=0x03\n");
    W("events/energy-ram.scale", "6.103515625e-05\n");
    W("events/energy-ram.unit", "Joules\n");
    W("events/energy-cores", "event=0x01\n");
    W("events/energy-cores.scale", "2.3283064365386962890625e-10\n");
    W("events/energy-cores.unit", "Joules\n");
    W("events/energy-bogus", "event=0x09\n"); /* no scale: unusable, skipped */
#undef W
    int type, n_ev, n_cpus, cpus[8];
    etok_perf_event ev[8];
    char why[256];
    assert_int_equal(etok_perf_parse(root, &type, ev, 8, &n_ev, cpus, 8, &n_cpus, why, sizeof why), 0);
    assert_int_equal(type, 23);
    assert_int_equal(n_ev, 3);
    assert_int_equal(n_cpus, 2);
    assert_int_equal(cpus[1], 8);
    assert_string_equal(ev[0].name, "energy-cores");
    assert_string_equal(ev[1].name, "energy-pkg");
    assert_true(ev[1].config == 2);
    assert_true(ev[1].scale == 2.3283064365386962890625e-10);
    assert_true(ev[2].scale == 6.103515625e-05);
    /* the listing shows its domains; opening fails here (no such PMU type in this kernel) with
     * a reason other than "missing" */
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_meter_status st[8];
    etok_meters_list(st, 8, NULL);
    assert_string_equal(st[1].name, "perf");
    assert_non_null(strstr(st[1].domains, "pkg-0,pkg-1"));
    assert_non_null(strstr(st[1].domains, "cores-0(nested)"));
    if (!st[1].available) assert_true(strncmp(st[1].why, "missing", 7) != 0);
    fx_rmrf(root);
    root = fx_tmpdir();
    assert_int_equal(etok_perf_parse(root, &type, ev, 8, &n_ev, cpus, 8, &n_cpus, why, sizeof why), -1);
    assert_non_null(strstr(why, "no power PMU"));
    fx_rmrf(root);
}

static void sampler_rate_and_clock(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/name", "psu\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/power1_input", "2000000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    const char *names[1] = {"hwmon"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 1; /* rate 0 = the default 10 Hz */
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_energy_snapshot snap;
    assert_int_equal(etok_meters_snapshot(ms, &snap), -1); /* not started */
    etok_record rec;
    etok_record_init(&rec);
    double before = etok_wall_s();
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    assert_true(rec.t0_wall_s >= before && rec.t0_wall_s - before < 1.0);
    double t0 = etok_meters_t0_mono_s(ms);
    /* the set's clock is the monotonic clock from t0: bracketed, so a preemption between the
     * reads cannot fail it */
    double lo_s = etok_mono_s() - t0, now_s = etok_meters_now(ms), hi_s = etok_mono_s() - t0;
    assert_true(now_s >= lo_s - 1e-9 && now_s <= hi_s + 1e-9);
    fx_sleep(1.0);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    double elapsed_s = etok_mono_s() - t0; /* >= 1 s; more when this thread was held up */
    /* 10 Hz: start + ~10 ticks + stop; a loaded machine may skip ticks (never adds any), and
     * this thread may wake late from its sleep: bound by the time that really passed */
    size_t n = rec.traces[0].n_samples;
    if (n < 4 || n > 10 * elapsed_s * 1.25 + 3) fail_msg("%zu samples in %.3f s at 10 Hz", n, elapsed_s);
    for (size_t i = 1; i < rec.traces[0].n_samples; i++)
        assert_true(rec.traces[0].samples[i].t_s >= rec.traces[0].samples[i - 1].t_s);
    assert_int_equal(etok_meters_stop(ms, &err), 0); /* idempotent */
    etok_meters_close(ms);
    etok_record_free(&rec);
    etok_meters_close(NULL);
    fx_rmrf(root);
}

/* etok_meters_mark: a reading of every trace between the call and its return, far from the
 * sampler's own ticks (0.1 Hz here); -1 before start, a no-op after stop. */
static void mark_reads_every_meter_now(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_int_equal(fx_write(root, "class/powercap/intel-rapl:0/name", "package-0\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/powercap/intel-rapl:0/energy_uj", "1000000\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/name", "psu\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/power1_input", "2000000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    const char *names[2] = {"rapl", "hwmon"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 2;
    cfg.rate_hz = 0.1; /* the sampler's own ticks are 10 s apart: every new sample is a mark's */
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    assert_int_equal(etok_meters_mark(ms, &err), -1); /* not started */
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    assert_true(rec.n_traces >= 2);
    size_t before_n[16];
    for (size_t i = 0; i < rec.n_traces && i < 16; i++) before_n[i] = rec.traces[i].n_samples;
    fx_sleep(0.3);
    for (int k = 0; k < 3; k++) { /* three marks in a row, each with its own readings */
        double t1 = etok_meters_now(ms);
        assert_int_equal(etok_meters_mark(ms, &err), 0);
        double t2 = etok_meters_now(ms);
        for (size_t i = 0; i < rec.n_traces; i++) {
            const etok_trace *t = &rec.traces[i];
            assert_true(t->n_samples >= 1);
            double ts = t->samples[t->n_samples - 1].t_s;
            assert_true(ts >= t1 && ts <= t2);
        }
    }
    for (size_t i = 0; i < rec.n_traces && i < 16; i++) assert_true(rec.traces[i].n_samples == before_n[i] + 3);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    assert_int_equal(etok_meters_mark(ms, &err), 0); /* after stop: nothing to do */
    etok_meters_close(ms);
    etok_record_free(&rec);
    fx_rmrf(root);
}

/* what the meters write survives the record's JSON round trip (record_io.c) */
static void meter_record_round_trips(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/name", "xpu\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/energy1_input", "1000\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/power1_input", "2000000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    const char *names[2] = {"hwmon", "estimate"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 2;
    cfg.rate_hz = 50;
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_record rec, back;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.1);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    etok_meters_close(ms);
    char *text = etok_record_to_json_text(&rec);
    assert_non_null(text);
    etok_record_init(&back);
    assert_int_equal(etok_record_from_json_text(&back, text, "meters", &err), 0);
    assert_int_equal(back.n_traces, 3);
    for (size_t i = 0; i < rec.n_traces; i++) {
        assert_string_equal(back.traces[i].domain, rec.traces[i].domain);
        assert_string_equal(back.traces[i].power_field, rec.traces[i].power_field);
        assert_int_equal(back.traces[i].source, rec.traces[i].source);
        assert_int_equal(back.traces[i].summable, rec.traces[i].summable);
        assert_true(back.traces[i].error_band == rec.traces[i].error_band);
        assert_int_equal(back.traces[i].n_samples, rec.traces[i].n_samples);
    }
    assert_true(back.t0_wall_s == rec.t0_wall_s);
    free(text);
    etok_record_free(&rec);
    etok_record_free(&back);
    fx_rmrf(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(unknown_meter_name_lists_known_ones),
        cmocka_unit_test(listing_covers_every_meter_with_reasons),
        cmocka_unit_test(perf_pmu_sysfs_parsing),
        cmocka_unit_test(sampler_rate_and_clock),
        cmocka_unit_test(mark_reads_every_meter_now),
        cmocka_unit_test(meter_record_round_trips),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
