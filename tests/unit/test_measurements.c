/* test_measurements.c — published measurements (data/measurements format, docs/TPF.md
 * "Validation"): strict parsing of the deployment fields (devices_per_replica, power_limit_w) and
 * of the per-point energy boundary (gpu | system with the rest of the system as data), errors that
 * name the file and field, the scenario a point becomes, and the model's figures at a system
 * boundary (devices' power / PSU efficiency + host power). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "etok/scenario.h"
#include "etok/tpf.h"
#include "etok/util.h"

#define assert_close(a, b, rel)                                                                          \
    do {                                                                                                 \
        double _a = (a), _b = (b);                                                                       \
        if (!(fabs(_a - _b) <= (rel) * fabs(_b))) fail_msg("%s = %.10g, expected %.10g", #a, _a, _b); \
    } while (0)

static char g_path[256];

/* A one-point measurement set; `extra` is spliced into the point object (",\"k\": v" ...). */
static const char *write_set(const char *extra) {
    snprintf(g_path, sizeof g_path, "/tmp/etok_test_meas_%ld.json", (long)getpid());
    FILE *f = fopen(g_path, "w");
    assert_non_null(f);
    fprintf(f,
            "{\"name\": \"t\", \"description\": \"test\",\n"
            " \"source\": {\"title\": \"a test\", \"url\": \"https://example.org\"},\n"
            " \"conditions\": {\"energy_boundary\": \"per point\"},\n"
            " \"points\": [{\"id\": \"p\", \"hardware\": \"h200\", \"devices\": 8, \"model\": \"llama-3.1-70b\",\n"
            "   \"weight_dtype\": \"fp8\", \"kv_dtype\": \"fp8\", \"batch\": 64, \"input_tokens\": 300,\n"
            "   \"output_tokens\": 265, \"joules_per_output_token\": 0.25, \"output_tokens_per_s\": 25000,\n"
            "   \"calibrate\": false%s}]}\n",
            extra);
    fclose(f);
    return g_path;
}

/* Loading must fail with exit 3 and a message naming the file and `field`. */
static void expect_error(const char *extra, const char *field) {
    etok_measurement_set ms;
    etok_err err = {0};
    const char *p = write_set(extra);
    int rc = etok_measurements_load(p, &ms, &err);
    unlink(p);
    if (rc == 0) {
        etok_measurement_set_free(&ms);
        fail_msg("accepted: %s", extra);
    }
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    if (!strstr(err.msg, p) || !strstr(err.msg, field)) fail_msg("error '%s' does not name %s and %s", err.msg, p, field);
}

static void load_ok(const char *extra, etok_measurement_set *ms) {
    etok_err err = {0};
    const char *p = write_set(extra);
    int rc = etok_measurements_load(p, ms, &err);
    unlink(p);
    if (rc) fail_msg("rejected (%s): %s", extra, err.msg);
    assert_int_equal(ms->n, 1);
}

static void defaults_are_one_replica_gpu_boundary(void **st) {
    (void)st;
    etok_measurement_set ms;
    load_ok("", &ms);
    const etok_measurement *m = &ms.points[0];
    assert_int_equal(m->devices_per_replica, 8);
    assert_true(m->power_limit_w == 0);
    assert_int_equal(m->boundary, ETOK_BOUNDARY_GPU);
    assert_true(m->psu_efficiency == 1);
    etok_measurement_set_free(&ms);
}

static void system_point_parses(void **st) {
    (void)st;
    etok_measurement_set ms;
    load_ok(", \"devices_per_replica\": 1, \"power_limit_w\": \"500 W\", \"energy_boundary\": \"system\","
            " \"host_power_w\": 1850, \"host_power_uncertainty_w\": 400, \"psu_efficiency\": 0.94,"
            " \"host_power_source\": \"assumption: test\"",
            &ms);
    const etok_measurement *m = &ms.points[0];
    assert_int_equal(m->devices_per_replica, 1);
    assert_close(m->power_limit_w, 500, 1e-12);
    assert_int_equal(m->boundary, ETOK_BOUNDARY_SYSTEM);
    assert_close(m->host_power_w, 1850, 1e-12);
    assert_close(m->host_power_uncertainty_w, 400, 1e-12);
    assert_close(m->psu_efficiency, 0.94, 1e-12);
    assert_string_equal(m->host_power_source, "assumption: test");
    /* the scenario: 8 devices in replicas of 1, the limit on each */
    etok_tpf_scenario sc;
    etok_err err = {0};
    if (etok_measurement_scenario(m, &sc, &err)) fail_msg("%s", err.msg);
    assert_int_equal(sc.device_count, 8);
    assert_int_equal(sc.devices_per_replica, 1);
    assert_close(sc.power_limit_w, 500, 1e-12);
    etok_measurement_set_free(&ms);
}

static void bad_fields_are_named(void **st) {
    (void)st;
    expect_error(", \"energy_boundary\": \"wall\"", "points[0].energy_boundary");
    expect_error(", \"energy_boundary\": \"system\", \"host_power_source\": \"x\"", "points[0].host_power_w");
    expect_error(", \"energy_boundary\": \"system\", \"host_power_w\": 100", "points[0].host_power_source");
    expect_error(", \"host_power_w\": 100", "points[0].host_power_w");      /* only with a system boundary */
    expect_error(", \"psu_efficiency\": 0.9", "points[0].psu_efficiency");  /* likewise */
    expect_error(", \"energy_boundary\": \"system\", \"host_power_w\": 100, \"host_power_source\": \"x\","
                 " \"psu_efficiency\": 1.5",
                 "points[0].psu_efficiency");
    expect_error(", \"energy_boundary\": \"system\", \"host_power_w\": 100, \"host_power_source\": \"x\","
                 " \"host_power_uncertainty_w\": 101",
                 "points[0].host_power_uncertainty_w");
    expect_error(", \"energy_boundary\": \"system\", \"host_power_w\": \"3 TB/s\", \"host_power_source\": \"x\"",
                 "points[0].host_power_w");
    expect_error(", \"devices_per_replica\": 3", "points[0].devices_per_replica");
    expect_error(", \"devices_per_replica\": 16", "points[0].devices_per_replica");
    expect_error(", \"power_limit_w\": 0", "points[0].power_limit_w");
    expect_error(", \"power_limit_w\": \"80 GB\"", "points[0].power_limit_w");
    expect_error(", \"host_power\": 1", "host_power"); /* unknown key */
}

static void system_boundary_adds_the_host(void **st) {
    (void)st;
    etok_measurement m = {0};
    etok_tpf_result r;
    memset(&r, 0, sizeof r);
    r.token_rate_tps = 1000;
    r.joules_per_output_token = 2; /* devices draw 2000 W */
    double j, p, lo, hi;
    m.boundary = ETOK_BOUNDARY_GPU;
    etok_measurement_at_boundary(&m, &r, &j, &p, &lo, &hi);
    assert_close(j, 2, 1e-12);
    assert_close(p, 2000, 1e-12);
    assert_close(lo, 2, 1e-12);
    m.boundary = ETOK_BOUNDARY_SYSTEM;
    m.host_power_w = 1000;
    m.host_power_uncertainty_w = 200;
    m.psu_efficiency = 0.8;
    etok_measurement_at_boundary(&m, &r, &j, &p, &lo, &hi);
    assert_close(p, 2000 / 0.8 + 1000, 1e-12);
    assert_close(j, 3.5, 1e-12);
    assert_close(lo, 3.3, 1e-12);
    assert_close(hi, 3.7, 1e-12);
}

/* A power limit far below what the devices would draw binds (device_power_cap), and the
 * system-boundary energy of that point is above the device-boundary one by host / rate. */
static void power_limit_binds_and_system_energy_is_higher(void **st) {
    (void)st;
    etok_measurement_set ms;
    load_ok(", \"devices_per_replica\": 1, \"power_limit_w\": 200, \"energy_boundary\": \"system\","
            " \"host_power_w\": 1800, \"host_power_source\": \"assumption: test\"",
            &ms);
    etok_tpf_scenario sc;
    etok_tpf_result r, free_r;
    etok_err err = {0};
    if (etok_measurement_scenario(&ms.points[0], &sc, &err) || etok_tpf_evaluate(&sc, -1, &r, &err)) fail_msg("%s", err.msg);
    assert_int_equal(r.binding, ETOK_CEIL_DEVICE_POWER_CAP);
    sc.power_limit_w = 0;
    if (etok_tpf_evaluate(&sc, -1, &free_r, &err)) fail_msg("%s", err.msg);
    assert_true(r.token_rate_tps < free_r.token_rate_tps);
    double j, p;
    etok_measurement_at_boundary(&ms.points[0], &r, &j, &p, NULL, NULL);
    assert_close(j, r.joules_per_output_token + 1800 / r.token_rate_tps, 1e-9);
    assert_true(p <= 8 * 200 + 1800 + 1e-6); /* the limit holds at the devices */
    etok_measurement_set_free(&ms);
}

/* A calibration row with its own power curve is used at exactly its tensor-parallel degree. */
static void row_power_curve_takes_precedence(void **st) {
    (void)st;
    etok_tpf_scenario sc;
    etok_err err = {0};
    etok_measurement m = {0};
    snprintf(m.id, sizeof m.id, "x");
    snprintf(m.hardware, sizeof m.hardware, "h100-sxm");
    snprintf(m.model, sizeof m.model, "llama-3.1-8b");
    m.devices = m.devices_per_replica = 1;
    m.weight_dtype = m.kv_dtype = ETOK_DT_BF16;
    m.batch = 64;
    m.input_tokens = 224;
    m.output_tokens = 400;
    if (etok_measurement_scenario(&m, &sc, &err)) fail_msg("%s", err.msg);
    etok_hw_calibration *cal = &sc.hw.cal;
    assert_true(cal->present && cal->n_rows >= 1 && cal->rows[0].devices_per_replica == 1);
    etok_tpf_result a, b;
    cal->rows[0].has_power = 1;
    cal->rows[0].activity_floor = 0.9;
    cal->rows[0].activity_per_mfu = cal->rows[0].activity_per_mbu = 0;
    if (etok_tpf_evaluate(&sc, -1, &a, &err)) fail_msg("%s", err.msg);
    assert_close(a.device_power_w, sc.hw.idle_power_w + 0.9 * (sc.hw.max_power_w - sc.hw.idle_power_w), 1e-9);
    cal->rows[0].has_power = 0; /* the hardware-wide curve */
    cal->has_power = 1;
    cal->activity_floor = 0.2;
    cal->activity_per_mfu = cal->activity_per_mbu = 0;
    if (etok_tpf_evaluate(&sc, -1, &b, &err)) fail_msg("%s", err.msg);
    assert_close(b.device_power_w, sc.hw.idle_power_w + 0.2 * (sc.hw.max_power_w - sc.hw.idle_power_w), 1e-9);
    assert_close(a.token_rate_tps, b.token_rate_tps, 1e-12); /* power only */
}

/* A row's power curve is parsed as strictly as the hardware-wide one, errors naming the field. */
static void row_power_curve_parse_errors(void **st) {
    (void)st;
    char path[256];
    snprintf(path, sizeof path, "/tmp/etok_test_hw_%ld.json", (long)getpid());
    const char *bad[] = {"{\"activity_floor\": 0.5, \"activity_per_mfu\": 1}",
                         "{\"activity_floor\": 1.5, \"activity_per_mfu\": 1, \"activity_per_mbu\": 0}",
                         "{\"activity_floor\": 0.5, \"activity_per_mfu\": -1, \"activity_per_mbu\": 0}",
                         "{\"activity_floor\": 0.5, \"activity_per_mfu\": 1, \"activity_per_mbu\": 0, \"x\": 1}", "3"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f,
                "{\"name\": \"t\", \"display_name\": \"t\", \"peak_flops\": {\"bf16\": 1e15}, \"mem_bw_bps\": 3e12,\n"
                " \"mem_bytes\": 80e9, \"max_power_w\": 700, \"idle_power_w\": 70,\n"
                " \"source\": {\"peak_flops\": \"t\", \"mem_bw_bps\": \"t\", \"mem_bytes\": \"t\", \"max_power_w\": \"t\",\n"
                "            \"idle_power_w\": \"t\"},\n"
                " \"calibration\": {\"source\": \"t\", \"achievable\": [{\"devices_per_replica\": 1, \"batch\": [16],\n"
                "   \"bandwidth_fraction\": [0.5], \"flops_fraction\": [0.5], \"power\": %s}]}}\n",
                bad[i]);
        fclose(f);
        etok_hw_spec hw;
        etok_err err = {0};
        int rc = etok_catalog_hardware(path, &hw, &err);
        if (rc == 0) fail_msg("accepted row power %s", bad[i]);
        if (!strstr(err.msg, "calibration.achievable[0].power")) fail_msg("error '%s' does not name the row's power", err.msg);
    }
    unlink(path);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_one_replica_gpu_boundary),
        cmocka_unit_test(system_point_parses),
        cmocka_unit_test(bad_fields_are_named),
        cmocka_unit_test(system_boundary_adds_the_host),
        cmocka_unit_test(power_limit_binds_and_system_energy_is_higher),
        cmocka_unit_test(row_power_curve_takes_precedence),
        cmocka_unit_test(row_power_curve_parse_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
