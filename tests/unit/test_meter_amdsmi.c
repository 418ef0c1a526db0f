/* test_meter_amdsmi.c — the amdsmi meter through the fake libamd_smi (build/fake_amdsmi.so,
 * see tests/fakes/fake_amdsmi.c): the energy counter scaled by its stated resolution, a 64-bit
 * wrap (corrected) and a counter reset (a fault, not energy), several GPUs over several
 * sockets, a GPU without the counter, the library absent, init failures, and a GPU lost
 * mid-run. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "test_meter_fixture.h"
#include "etok/meter.h"
#include "meter/driver.h"

static char g_lib[1024];

static int setup(void **state) {
    (void)state;
    const char *b = getenv("ETOK_BUILD_DIR");
    snprintf(g_lib, sizeof g_lib, "%s/fake_amdsmi.so", b && *b ? b : "build");
    if (access(g_lib, R_OK) != 0) {
        fprintf(stderr, "fake amd-smi not found at %s (run through ctest)\n", g_lib);
        return -1;
    }
    return 0;
}

static void fake_env(const char *mode, const char *watts) {
    setenv("ETOK_AMDSMI_LIB", g_lib, 1);
    setenv("FAKE_AMDSMI_MODE", mode, 1);
    setenv("FAKE_AMDSMI_WATTS", watts, 1);
    static const char *const vars[] = {"FAKE_AMDSMI_SOCKETS",   "FAKE_AMDSMI_GPUS_PER_SOCKET", "FAKE_AMDSMI_RESOLUTION",
                                       "FAKE_AMDSMI_START",     "FAKE_AMDSMI_NOCOUNTER",       "FAKE_AMDSMI_LOST_GPU",
                                       "FAKE_AMDSMI_LOST_AFTER", "FAKE_AMDSMI_RESET_AFTER"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++) unsetenv(vars[i]);
}

static const etok_trace *find_trace(const etok_record *r, const char *domain) {
    for (size_t i = 0; i < r->n_traces; i++)
        if (!strcmp(r->traces[i].meter, "amdsmi") && !strcmp(r->traces[i].domain, domain)) return &r->traces[i];
    return NULL;
}

static size_t count_faults(const etok_record *r, const char *kind) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_faults; i++) n += !strcmp(r->faults[i].kind, kind);
    return n;
}

/* The listing entry of the amdsmi meter (by name: its position is not part of the contract). */
static etok_meter_status list_amdsmi(void) {
    etok_meter_status st[16];
    int n = etok_meters_list(st, 16, NULL);
    for (int i = 0; i < n; i++)
        if (!strcmp(st[i].name, "amdsmi")) return st[i];
    fail_msg("amdsmi not listed by etok_meters_list");
    return st[0];
}

static etok_meter_set *open_amdsmi(etok_err *err) {
    const char *names[1] = {"amdsmi"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 1;
    cfg.rate_hz = 20;
    return etok_meters_open(&cfg, err);
}

static etok_meter_set *run_amdsmi(etok_record *rec, double seconds, etok_err *err) {
    etok_meter_set *ms = open_amdsmi(err);
    if (!ms) return NULL;
    assert_int_equal(etok_meters_start(ms, rec, err), 0);
    fx_sleep(seconds);
    assert_int_equal(etok_meters_stop(ms, err), 0);
    return ms;
}

/* Energy between the trace's first and last sample, corrected for a 2^64 wrap between
 * neighbours (J), and the time it spans. */
static double trace_energy(const etok_trace *t, double *span) {
    double e = 0;
    for (size_t i = 1; i < t->n_samples; i++) {
        double d = t->samples[i].raw - t->samples[i - 1].raw;
        if (d < 0) d += t->wrap_range_raw;
        e += d * t->scale_to_si;
    }
    *span = t->samples[t->n_samples - 1].t_s - t->samples[0].t_s;
    return e;
}

static void check_counter(const char *resolution, double watts) {
    fake_env("energy", "250");
    setenv("FAKE_AMDSMI_RESOLUTION", resolution, 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_amdsmi(&rec, 0.4, &err);
    assert_non_null(ms);
    assert_int_equal(rec.n_traces, 1);
    const etok_trace *e = find_trace(&rec, "gpu0");
    assert_non_null(e);
    assert_int_equal(e->source, ETOK_SOURCE_COUNTER);
    assert_int_equal(e->boundary, ETOK_BOUNDARY_DEVICE);
    assert_string_equal(e->raw_unit, "count");
    double res_j = (double)(float)atof(resolution) * 1e-6;
    assert_true(fabs(e->scale_to_si - res_j) < 1e-15);
    assert_true(fabs(e->resolution_si - res_j) < 1e-15);
    assert_true(e->wrap_range_raw == 18446744073709551616.0);
    assert_int_equal(e->summable, 1);
    assert_true(e->n_samples >= 3);
    double span, ej = trace_energy(e, &span);
    assert_true(span > 0.3);
    assert_true(fabs(ej - watts * span) < 0.05 * watts * span + 0.01);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_true(fabs(snap.energy_j - ej) < 1e-6 * ej + 1e-9);
    assert_int_equal(rec.n_faults, 0);
    etok_meters_close(ms);
    etok_record_free(&rec);
}

/* The same power through two resolutions gives the same joules: the count is scaled by the
 * resolution the library states, not by a constant. */
static void energy_with_resolution(void **state) {
    (void)state;
    check_counter("15.3", 250);
    check_counter("1", 250);

    fake_env("energy", "250");
    etok_meter_status st = list_amdsmi();
    assert_int_equal(st.available, 1);
    assert_int_equal(st.source, ETOK_SOURCE_COUNTER);
    assert_non_null(strstr(st.domains, "gpu0[0000:0c:00.0, energy counter 15.3 uJ]"));
    assert_true(fabs(st.resolution_si - (double)15.3f * 1e-6) < 1e-15);
}

/* The accumulator passes 2^64 during the run: corrected as a wrap, no fault, energy right. */
static void wrap_at_2_64(void **state) {
    (void)state;
    fake_env("energy", "250");
    setenv("FAKE_AMDSMI_START", "18446744073707551616", 1); /* 2^64 - 2e6 counts = 30.6 J before the wrap */
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_amdsmi(&rec, 0.5, &err);
    assert_non_null(ms);
    const etok_trace *e = find_trace(&rec, "gpu0");
    assert_non_null(e);
    assert_true(e->samples[0].raw > 1.8e19);                    /* started just below 2^64 */
    assert_true(e->samples[e->n_samples - 1].raw < 1e10);       /* ended past the wrap */
    assert_int_equal(count_faults(&rec, "reset"), 0);
    double span, ej = trace_energy(e, &span);
    assert_true(span > 0.3);
    /* doubles near 2^64 are 4096 counts (63 mJ) apart: allow that twice */
    assert_true(fabs(ej - 250 * span) < 0.05 * 250 * span + 0.13);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_true(fabs(snap.energy_j - 250 * span) < 0.05 * 250 * span + 0.13);
    etok_meters_close(ms);
    etok_record_free(&rec);
}

/* The counter restarts (driver reload): a reset fault, and the step back is not energy. */
static void counter_reset_is_a_fault(void **state) {
    (void)state;
    fake_env("energy", "100");
    setenv("FAKE_AMDSMI_RESET_AFTER", "4", 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_amdsmi(&rec, 0.5, &err);
    assert_non_null(ms);
    assert_int_equal(count_faults(&rec, "reset"), 1);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    const etok_trace *e = find_trace(&rec, "gpu0");
    double span = e->samples[e->n_samples - 1].t_s - e->samples[0].t_s;
    assert_true(snap.energy_j >= 0 && snap.energy_j < 100 * span * 1.1 + 0.01);
    etok_meters_close(ms);
    etok_record_free(&rec);
}

/* Two sockets x two GPUs: four domains numbered in enumeration order, each with its own power,
 * summed into the device total. */
static void multiple_gpus(void **state) {
    (void)state;
    fake_env("energy", "100,200,300,400");
    setenv("FAKE_AMDSMI_SOCKETS", "2", 1);
    setenv("FAKE_AMDSMI_GPUS_PER_SOCKET", "2", 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_amdsmi(&rec, 0.4, &err);
    assert_non_null(ms);
    assert_int_equal(rec.n_traces, 4);
    double total = 0;
    for (int g = 0; g < 4; g++) {
        char dom[16];
        snprintf(dom, sizeof dom, "gpu%d", g);
        const etok_trace *t = find_trace(&rec, dom);
        assert_non_null(t);
        assert_int_equal(t->summable, 1);
        double span, ej = trace_energy(t, &span);
        double w = 100.0 * (g + 1);
        assert_true(fabs(ej - w * span) < 0.05 * w * span + 0.01);
        total += ej;
    }
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_true(fabs(snap.energy_j - total) < 1e-6 * total + 1e-9);
    etok_meters_close(ms);
    etok_record_free(&rec);

    etok_meter_status st = list_amdsmi();
    assert_int_equal(st.available, 1);
    assert_non_null(strstr(st.domains, "gpu3[0000:0f:00.0"));
}

/* A GPU without the counter is not metered and the listing says why; with none at all the
 * meter is unavailable and cannot be opened. */
static void gpu_without_counter(void **state) {
    (void)state;
    fake_env("energy", "100");
    setenv("FAKE_AMDSMI_SOCKETS", "2", 1);
    setenv("FAKE_AMDSMI_NOCOUNTER", "1", 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_amdsmi(&rec, 0.1, &err);
    assert_non_null(ms);
    assert_int_equal(rec.n_traces, 1);
    assert_non_null(find_trace(&rec, "gpu0"));
    etok_meters_close(ms);
    etok_record_free(&rec);
    etok_meter_status st = list_amdsmi();
    assert_int_equal(st.available, 1);
    assert_non_null(strstr(st.domains, "gpu1[0000:0d:00.0, no energy counter: AMDSMI_STATUS_NOT_SUPPORTED"));

    setenv("FAKE_AMDSMI_SOCKETS", "1", 1);
    setenv("FAKE_AMDSMI_NOCOUNTER", "0", 1);
    st = list_amdsmi();
    assert_int_equal(st.available, 0);
    assert_int_equal(strncmp(st.why, "missing: no AMD GPU here has an energy counter", 46), 0);
    assert_null(open_amdsmi(&err));
    assert_non_null(strstr(err.msg, "no energy counter"));
}

/* No library: the listing says which library was tried and how to point etok at it; opening
 * the meter by name fails with the same reason. */
static void library_absent(void **state) {
    (void)state;
    fake_env("energy", "100");
    setenv("ETOK_AMDSMI_LIB", "/nonexistent/libamd_smi.so", 1);
    etok_meter_status st = list_amdsmi();
    assert_int_equal(st.available, 0);
    const char *want = "missing: cannot load ETOK_AMDSMI_LIB=/nonexistent/libamd_smi.so ";
    assert_int_equal(strncmp(st.why, want, strlen(want)), 0);
    etok_err err = {{0}, 0};
    assert_null(open_amdsmi(&err));
    assert_true(err.exit_code != 0);
    assert_non_null(strstr(err.msg, "/nonexistent/libamd_smi.so"));

    /* a library that is not amd-smi (the fake NVML): it lacks the entry points */
    char other[1100];
    snprintf(other, sizeof other, "%s", g_lib);
    char *slash = strrchr(other, '/');
    snprintf(slash ? slash + 1 : other, sizeof other - (size_t)(slash ? slash + 1 - other : 0), "fake_nvml.so");
    if (access(other, R_OK) == 0) {
        setenv("ETOK_AMDSMI_LIB", other, 1);
        st = list_amdsmi();
        assert_int_equal(st.available, 0);
        assert_int_equal(strncmp(st.why, "no driver:", 10), 0);
        assert_non_null(strstr(st.why, "amdsmi_get_energy_count"));
    }

    /* without the override both default paths are named (when this host has no ROCm) */
    unsetenv("ETOK_AMDSMI_LIB");
    st = list_amdsmi();
    if (!st.available && !strncmp(st.why, "missing: cannot load", 20)) {
        assert_non_null(strstr(st.why, "libamd_smi.so"));
        assert_non_null(strstr(st.why, "/opt/rocm/lib/libamd_smi.so"));
        assert_non_null(strstr(st.why, "ETOK_AMDSMI_LIB"));
    }
    setenv("ETOK_AMDSMI_LIB", g_lib, 1);
}

static void init_failure(void **state) {
    (void)state;
    fake_env("noinit", "100");
    etok_err err = {{0}, 0};
    assert_null(open_amdsmi(&err));
    assert_non_null(strstr(err.msg, "amdsmi_init"));
    assert_non_null(strstr(err.msg, "AMDSMI_STATUS_INIT_ERROR"));
    assert_int_equal(err.exit_code, ETOK_EXIT_FAIL);
    etok_meter_status st = list_amdsmi();
    assert_int_equal(st.available, 0);
    assert_int_equal(strncmp(st.why, "no driver: amdsmi_init", 22), 0);

    fake_env("noperm", "100");
    err.msg[0] = '\0';
    assert_null(open_amdsmi(&err));
    assert_int_equal(err.exit_code, ETOK_EXIT_PERMISSION);
    st = list_amdsmi();
    assert_int_equal(strncmp(st.why, "permission: amdsmi_init", 23), 0);

    /* a machine with the library but no AMD GPU */
    fake_env("energy", "100");
    setenv("FAKE_AMDSMI_SOCKETS", "0", 1);
    st = list_amdsmi();
    assert_int_equal(st.available, 0);
    assert_non_null(strstr(st.why, "reports no AMD GPU"));
}

/* gpu1 falls off the bus after 6 reads: one device_lost fault for it, gpu0 keeps counting. */
static void gpu_lost_mid_run(void **state) {
    (void)state;
    fake_env("energy", "100,200");
    setenv("FAKE_AMDSMI_SOCKETS", "2", 1);
    setenv("FAKE_AMDSMI_LOST_GPU", "1", 1);
    setenv("FAKE_AMDSMI_LOST_AFTER", "6", 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_amdsmi(&rec, 0.6, &err); /* stop still succeeds */
    assert_non_null(ms);
    assert_int_equal(count_faults(&rec, "device_lost"), 1);
    for (size_t i = 0; i < rec.n_faults; i++)
        if (!strcmp(rec.faults[i].kind, "device_lost")) {
            assert_string_equal(rec.faults[i].domain, "gpu1");
            assert_non_null(strstr(rec.faults[i].message, "GPU lost"));
        }
    const etok_trace *g0 = find_trace(&rec, "gpu0");
    const etok_trace *g1 = find_trace(&rec, "gpu1");
    assert_non_null(g0);
    assert_non_null(g1);
    /* 6 reads: detect's probe is another library instance; open's probe + up to 5 samples */
    assert_true(g1->n_samples >= 1 && g1->n_samples <= 5);
    assert_true(g0->n_samples > g1->n_samples);
    etok_energy_snapshot snap;
    assert_int_equal(etok_meters_snapshot(ms, &snap), 0);
    etok_meters_close(ms);
    etok_record_free(&rec);
}

/* amdgpu's hwmon power and the amdsmi counter measure the same GPU: with both open only the
 * counter is summed (no double counting); the hwmon trace is kept. */
static void hwmon_amdgpu_not_double_counted(void **state) {
    (void)state;
    fake_env("energy", "150");
    char *root = fx_tmpdir();
    assert_non_null(root);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon3/name", "amdgpu\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon3/power1_average", "150000000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    const char *names[2] = {"hwmon", "amdsmi"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 2;
    cfg.rate_hz = 20;
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.3);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    const etok_trace *hw = NULL;
    for (size_t i = 0; i < rec.n_traces; i++)
        if (!strcmp(rec.traces[i].meter, "hwmon")) hw = &rec.traces[i];
    assert_non_null(hw);
    assert_int_equal(hw->summable, 0);
    const etok_trace *g = find_trace(&rec, "gpu0");
    assert_non_null(g);
    assert_int_equal(g->summable, 1);
    double span, ej = trace_energy(g, &span);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_true(fabs(snap.energy_j - ej) < 1e-6 * ej + 1e-9); /* the counter alone */
    etok_meters_close(ms);
    etok_record_free(&rec);
    unsetenv("ETOK_SYSFS_ROOT");
    fx_rmrf(root); /* frees root */
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(energy_with_resolution),
        cmocka_unit_test(wrap_at_2_64),
        cmocka_unit_test(counter_reset_is_a_fault),
        cmocka_unit_test(multiple_gpus),
        cmocka_unit_test(gpu_without_counter),
        cmocka_unit_test(library_absent),
        cmocka_unit_test(init_failure),
        cmocka_unit_test(gpu_lost_mid_run),
        cmocka_unit_test(hwmon_amdgpu_not_double_counted),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
