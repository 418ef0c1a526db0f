/* test_levers_hw.c — the machine levers (etok/levers_hw.h): frequency parsing; cpufreq on a
 * fixture tree under ETOK_SYSFS_ROOT (written, recorded, restored; out of range and below
 * scaling_min_freq refused with nothing written); the GPU power limit on the fake NVML
 * (build/fake_nvml.so): set on every GPU and restored, and when the second GPU refuses, the
 * first is put back before the error (FAKE_NVML_LIMIT_LOG shows each set). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/levers_hw.h"

static char g_dir[256], g_lib[1024], g_log[512];

static void put(const char *rel, const char *text) {
    char p[1024], d[1024];
    snprintf(p, sizeof p, "%s/%s", g_dir, rel);
    snprintf(d, sizeof d, "%s", p);
    for (char *s = d + strlen(g_dir) + 1; *s; s++)
        if (*s == '/') {
            *s = 0;
            mkdir(d, 0755);
            *s = '/';
        }
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static long get(int cpu) {
    char p[1024];
    snprintf(p, sizeof p, "%s/devices/system/cpu/cpu%d/cpufreq/scaling_max_freq", g_dir, cpu);
    FILE *f = fopen(p, "r");
    assert_non_null(f);
    long v = -1;
    assert_int_equal(fscanf(f, "%ld", &v), 1);
    fclose(f);
    return v;
}

static void fixture(void) {
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'/devices", g_dir);
    assert_int_equal(system(cmd), 0);
    for (int c = 0; c < 3; c++) {
        char r[128];
#define F(name, v)                                                                                                      \
    snprintf(r, sizeof r, "devices/system/cpu/cpu%d/cpufreq/" name, c);                                                  \
    put(r, v)
        F("cpuinfo_min_freq", "400000\n");
        F("cpuinfo_max_freq", "3600000\n");
        F("scaling_min_freq", c == 2 ? "1200000\n" : "400000\n");
        F("scaling_max_freq", "3600000\n");
#undef F
    }
    put("devices/system/cpu/cpu3/online", "0\n"); /* offline: skipped, though it has no cpufreq */
}

static int setup(void **st) {
    (void)st;
    snprintf(g_dir, sizeof g_dir, "/tmp/etok_levers_hw_%d", (int)getpid());
    mkdir(g_dir, 0755);
    setenv("ETOK_SYSFS_ROOT", g_dir, 1);
    const char *b = getenv("ETOK_BUILD_DIR");
    snprintf(g_lib, sizeof g_lib, "%s/fake_nvml.so", b && *b ? b : "build");
    setenv("ETOK_NVML_LIB", g_lib, 1);
    snprintf(g_log, sizeof g_log, "%s/nvml.log", g_dir);
    setenv("FAKE_NVML_LIMIT_LOG", g_log, 1);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void test_parse(void **st) {
    (void)st;
    etok_err e = {0};
    long k = 0;
    assert_int_equal(etok_parse_cpu_freq("2.0GHz", &k, &e), 0);
    assert_int_equal(k, 2000000);
    assert_int_equal(etok_parse_cpu_freq("1800MHz", &k, &e), 0);
    assert_int_equal(k, 1800000);
    assert_int_equal(etok_parse_cpu_freq("2.1ghz", &k, &e), 0);
    assert_int_equal(k, 2100000);
    assert_int_equal(etok_parse_cpu_freq("1800000", &k, &e), 0);
    assert_int_equal(k, 1800000);
    assert_int_equal(etok_parse_cpu_freq("1500000kHz", &k, &e), 0);
    assert_int_equal(k, 1500000);
    const char *bad[] = {"", "x", "2GHzz", "2 GHz", "0", "-1", "inf", "nan", "1e12", "0.0001kHz", "2THz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&e, 0, sizeof e);
        assert_int_equal(etok_parse_cpu_freq(bad[i], &k, &e), -1);
        assert_int_equal(e.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(e.msg, "--cpu-max-freq"));
    }
}

static void test_cpufreq(void **st) {
    (void)st;
    fixture();
    etok_err e = {0};
    etok_hw_levers_opts o = {.cpu_max_khz = 2000000};
    /* cpu2's scaling_min_freq is 1.2 GHz: 1 GHz refused, nothing written */
    o.cpu_max_khz = 1000000;
    assert_null(etok_hw_levers_apply(&o, &e));
    assert_int_equal(e.exit_code, ETOK_EXIT_USAGE);
    assert_non_null(strstr(e.msg, "below cpu2's scaling_min_freq 1200000"));
    assert_int_equal(get(0), 3600000);
    /* out of range */
    memset(&e, 0, sizeof e);
    o.cpu_max_khz = 4000000;
    assert_null(etok_hw_levers_apply(&o, &e));
    assert_non_null(strstr(e.msg, "outside cpu0's range 400000..3600000 kHz"));
    /* applied, recorded, restored */
    memset(&e, 0, sizeof e);
    o.cpu_max_khz = 2000000;
    etok_hw_levers *h = etok_hw_levers_apply(&o, &e);
    assert_non_null(h);
    for (int c = 0; c < 3; c++) assert_int_equal(get(c), 2000000);
    json_t *cfg = json_object();
    etok_hw_levers_to_config(h, cfg);
    assert_int_equal(json_integer_value(json_object_get(cfg, "cpu_max_freq_khz")), 2000000);
    assert_int_equal(json_integer_value(json_object_get(cfg, "cpu_max_freq_cpus")), 3);
    assert_int_equal(json_array_size(json_object_get(cfg, "cpu_max_freq_prev_khz")), 3);
    assert_null(json_object_get(cfg, "gpu_power_limit_w"));
    json_decref(cfg);
    assert_int_equal(etok_hw_levers_restore(h), 0);
    for (int c = 0; c < 3; c++) assert_int_equal(get(c), 3600000);
    /* nothing asked: an empty handle that changes and records nothing */
    etok_hw_levers_opts none = {0};
    h = etok_hw_levers_apply(&none, &e);
    assert_non_null(h);
    cfg = json_object();
    etok_hw_levers_to_config(h, cfg);
    assert_int_equal(json_object_size(cfg), 0);
    json_decref(cfg);
    assert_int_equal(etok_hw_levers_restore(h), 0);
    assert_int_equal(etok_hw_levers_restore(NULL), 0);
}

static char *slurp(const char *p) {
    static char buf[4096];
    buf[0] = 0;
    FILE *f = fopen(p, "r");
    if (!f) return buf;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

static void test_gpu(void **st) {
    (void)st;
    setenv("FAKE_NVML_COUNT", "2", 1);
    setenv("FAKE_NVML_LIMIT_W", "600", 1);
    unsetenv("FAKE_NVML_SET_ERR");
    unlink(g_log);
    etok_err e = {0};
    etok_hw_levers_opts o = {.gpu_power_limit_w = 350};
    etok_hw_levers *h = etok_hw_levers_apply(&o, &e);
    assert_non_null(h);
    json_t *cfg = json_object();
    etok_hw_levers_to_config(h, cfg);
    assert_true(json_real_value(json_object_get(cfg, "gpu_power_limit_w")) == 350.0);
    json_t *prev = json_object_get(cfg, "gpu_power_limit_prev_w");
    assert_int_equal(json_array_size(prev), 2);
    assert_true(json_real_value(json_array_get(prev, 1)) == 600.0);
    json_decref(cfg);
    assert_int_equal(etok_hw_levers_restore(h), 0);
    assert_string_equal(slurp(g_log), "set 0 350000\nset 1 350000\nset 1 600000\nset 0 600000\n");
    /* the second GPU refuses: the first is put back, one usage error naming GPU 1 */
    unlink(g_log);
    setenv("FAKE_NVML_SET_ERR", "4", 1);
    setenv("FAKE_NVML_SET_ERR_FROM", "1", 1);
    assert_null(etok_hw_levers_apply(&o, &e));
    assert_int_equal(e.exit_code, ETOK_EXIT_USAGE);
    assert_non_null(strstr(e.msg, "setting GPU 1: Insufficient Permissions"));
    assert_string_equal(slurp(g_log), "set 0 350000\nset 0 600000\n");
    unsetenv("FAKE_NVML_SET_ERR");
    unsetenv("FAKE_NVML_SET_ERR_FROM");
    unsetenv("FAKE_NVML_COUNT");
    unsetenv("FAKE_NVML_LIMIT_W");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_cpufreq),
        cmocka_unit_test(test_gpu),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
