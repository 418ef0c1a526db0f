/* test_meter_nvml.c — the nvml meter through the fake libnvidia-ml (build/fake_nvml.so, see
 * tests/fakes/fake_nvml.c): the energy-counter path, the power-only path (with the 1 s
 * average labelled as such), a GPU lost mid-run, an init failure, and a counter that
 * disagrees with power x time. */
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
    snprintf(g_lib, sizeof g_lib, "%s/fake_nvml.so", b && *b ? b : "build");
    if (access(g_lib, R_OK) != 0) {
        fprintf(stderr, "fake NVML not found at %s (run through ctest)\n", g_lib);
        return -1;
    }
    setenv("ETOK_NVML_LIB", g_lib, 1);
    return 0;
}

static void fake_env(const char *mode, const char *watts, const char *instant) {
    setenv("FAKE_NVML_MODE", mode, 1);
    setenv("FAKE_NVML_WATTS", watts, 1);
    setenv("FAKE_NVML_INSTANT", instant, 1);
    unsetenv("FAKE_NVML_LOST_AFTER");
    unsetenv("FAKE_NVML_ENERGY_SCALE");
}

static const etok_trace *find_trace(const etok_record *r, const char *domain) {
    for (size_t i = 0; i < r->n_traces; i++)
        if (!strcmp(r->traces[i].domain, domain)) return &r->traces[i];
    return NULL;
}

static size_t count_faults(const etok_record *r, const char *kind) {
    size_t n = 0;
    for (size_t i = 0; i < r->n_faults; i++) n += !strcmp(r->faults[i].kind, kind);
    return n;
}

static etok_meter_set *run_nvml(etok_record *rec, double seconds, etok_err *err) {
    const char *names[1] = {"nvml"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 1;
    cfg.rate_hz = 20;
    etok_meter_set *ms = etok_meters_open(&cfg, err);
    if (!ms) return NULL;
    assert_int_equal(etok_meters_start(ms, rec, err), 0);
    fx_sleep(seconds);
    assert_int_equal(etok_meters_stop(ms, err), 0);
    return ms;
}

static void energy_counter_path(void **state) {
    (void)state;
    fake_env("energy", "250", "1");
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_nvml(&rec, 0.4, &err);
    assert_non_null(ms);
    assert_int_equal(rec.n_traces, 2);
    const etok_trace *e = find_trace(&rec, "gpu0");
    const etok_trace *p = find_trace(&rec, "gpu0/power");
    assert_non_null(e);
    assert_non_null(p);
    assert_int_equal(e->source, ETOK_SOURCE_COUNTER);
    assert_string_equal(e->raw_unit, "mJ");
    assert_true(e->scale_to_si == 1e-3);
    assert_int_equal(e->summable, 1);
    assert_true(e->update_period_s > 0);
    assert_int_equal(p->source, ETOK_SOURCE_POWER);
    assert_int_equal(p->summable, 0);
    assert_string_equal(p->power_field, "instant");
    assert_true(p->samples[0].raw == 250000.0);
    assert_true(rec.hw.power_limit_w == 700.0);
    /* counter delta between first and last reading ~ 250 W x their time span */
    double span = e->samples[e->n_samples - 1].t_s - e->samples[0].t_s;
    double ej = (e->samples[e->n_samples - 1].raw - e->samples[0].raw) * 1e-3;
    assert_true(span > 0.3);
    assert_true(fabs(ej - 250.0 * span) < 0.05 * 250.0 * span + 0.01);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_true(fabs(snap.energy_j - ej) < 1e-9); /* the counter, not counter + power */
    assert_int_equal(rec.n_faults, 0);
    etok_meters_close(ms);
    etok_record_free(&rec);
}

static void power_only_path(void **state) {
    (void)state;
    fake_env("power", "80", "0");
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_nvml(&rec, 0.3, &err);
    assert_non_null(ms);
    assert_int_equal(rec.n_traces, 1);
    const etok_trace *p = find_trace(&rec, "gpu0");
    assert_non_null(p);
    assert_int_equal(p->source, ETOK_SOURCE_POWER);
    assert_int_equal(p->summable, 1);
    assert_string_equal(p->power_field, "average_1s"); /* nvmlDeviceGetPowerUsage, labelled */
    assert_true(p->update_period_s == 1.0);
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    double span = p->samples[p->n_samples - 1].t_s - p->samples[0].t_s;
    assert_true(fabs(snap.energy_j - 80.0 * span) < 1e-6);
    etok_meters_close(ms);
    etok_record_free(&rec);

    /* power-only with the instantaneous field: that one is used and recorded */
    fake_env("power", "80", "1");
    etok_record_init(&rec);
    ms = run_nvml(&rec, 0.1, &err);
    assert_non_null(ms);
    assert_string_equal(rec.traces[0].power_field, "instant");
    etok_meters_close(ms);
    etok_record_free(&rec);
}

static void device_lost_mid_run(void **state) {
    (void)state;
    fake_env("lost", "100", "1");
    setenv("FAKE_NVML_LOST_AFTER", "6", 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_nvml(&rec, 0.5, &err); /* stop still succeeds */
    assert_non_null(ms);
    assert_int_equal(count_faults(&rec, "device_lost"), 2); /* counter and power domain */
    for (size_t i = 0; i < rec.n_faults; i++)
        if (!strcmp(rec.faults[i].kind, "device_lost")) assert_non_null(strstr(rec.faults[i].message, "lost"));
    const etok_trace *e = find_trace(&rec, "gpu0");
    assert_true(e->n_samples >= 1 && e->n_samples <= 4); /* readings end when the GPU is lost */
    etok_energy_snapshot snap;
    assert_int_equal(etok_meters_snapshot(ms, &snap), 0);
    etok_meters_close(ms);
    etok_record_free(&rec);
}

static void init_failure_and_listing(void **state) {
    (void)state;
    fake_env("noinit", "100", "1");
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    assert_null(run_nvml(&rec, 0, &err));
    assert_non_null(strstr(err.msg, "nvmlInit_v2"));
    assert_true(err.exit_code != 0);
    etok_record_free(&rec);

    fake_env("energy", "100", "1");
    etok_meter_status st[8];
    etok_meters_list(st, 8, NULL);
    assert_string_equal(st[3].name, "nvml");
    assert_int_equal(st[3].available, 1);
    assert_non_null(strstr(st[3].domains, "limit 700 W"));
    assert_non_null(strstr(st[3].domains, "util 42%"));

    setenv("ETOK_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    etok_meters_list(st, 8, NULL);
    assert_int_equal(st[3].available, 0);
    assert_int_equal(strncmp(st[3].why, "missing", 7), 0);
    setenv("ETOK_NVML_LIB", g_lib, 1);
}

static void counter_disagreeing_with_power_is_flagged(void **state) {
    (void)state;
    fake_env("energy", "100", "1");
    setenv("FAKE_NVML_ENERGY_SCALE", "3", 1);
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = run_nvml(&rec, 0.6, &err);
    assert_non_null(ms);
    assert_int_equal(count_faults(&rec, "counter_mismatch"), 1);
    etok_meters_close(ms);
    etok_record_free(&rec);
    unsetenv("FAKE_NVML_ENERGY_SCALE");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(energy_counter_path),
        cmocka_unit_test(power_only_path),
        cmocka_unit_test(device_lost_mid_run),
        cmocka_unit_test(init_failure_and_listing),
        cmocka_unit_test(counter_disagreeing_with_power_is_flagged),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
