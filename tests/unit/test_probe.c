/* test_probe.c — etok probe finds positive, plausible ceilings; the cached profile is reused
 * (a second call does not measure); --force measures again; XDG_CACHE_HOME is respected. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/probe.h"

/* Short kernels keep the test fast; the figures are still real measurements. */
static const etok_probe_opts QUICK = {.threads = 0, .kernel_s = 0.03, .repeats = 1, .triad_bytes = 24u << 20};

static void test_measure_plausible(void **st) {
    (void)st;
    etok_probe_profile p;
    etok_err err = {0};
    assert_int_equal(etok_probe_measure(&QUICK, &p, &err), 0);
    /* any CPU of the last 20 years: 1 GFLOP/s .. 1 PFLOP/s, 100 MB/s .. 10 TB/s. Under the
     * sanitizers (make test-asan: -O0, every access checked) the kernels run ~1000x slower. */
    double lo = getenv("ETOK_SANITIZED") ? 1e6 : 1e9;
    assert_true(p.peak_flops_f32 > lo && p.peak_flops_f32 < 1e15);
    assert_true(p.peak_ops_int8 > lo && p.peak_ops_int8 < 1e15);
    assert_true(p.hw.peak_flops == p.peak_ops_int8);
    assert_true(p.hw.mem_bw_bps > lo / 10 && p.hw.mem_bw_bps < 1e13);
    assert_true(p.threads >= 1);
    assert_string_equal(p.hw.source, "probe");
}

static void test_cache_reused(void **st) {
    (void)st;
    char dir[] = "/tmp/etok-probe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    setenv("XDG_CACHE_HOME", dir, 1);
    char *def = etok_probe_default_path();
    assert_non_null(def);
    assert_true(strncmp(def, dir, strlen(dir)) == 0);
    assert_non_null(strstr(def, "/etok/profile-"));

    etok_probe_profile a, b, c;
    etok_err err = {0};
    int measured = -1;
    assert_int_equal(etok_probe_get(NULL, 0, &QUICK, &a, &measured, &err), 0);
    assert_int_equal(measured, 1);
    assert_int_equal(access(def, R_OK), 0);
    assert_int_equal(etok_probe_get(NULL, 0, &QUICK, &b, &measured, &err), 0);
    assert_int_equal(measured, 0); /* reused, not re-measured */
    assert_true(a.hw.peak_flops == b.hw.peak_flops && a.hw.mem_bw_bps == b.hw.mem_bw_bps);
    assert_true(a.measured_at_wall_s == b.measured_at_wall_s);
    assert_int_equal(etok_probe_get(NULL, 1, &QUICK, &c, &measured, &err), 0);
    assert_int_equal(measured, 1); /* forced */
    assert_true(c.measured_at_wall_s >= a.measured_at_wall_s);

    /* a corrupt profile is an error naming the file, not a silent re-measure */
    FILE *f = fopen(def, "w");
    fputs("{\"peak_flops\": -1, \"mem_bw_bps\": 1}", f);
    fclose(f);
    assert_int_equal(etok_probe_get(NULL, 0, &QUICK, &c, &measured, &err), -1);
    assert_non_null(strstr(err.msg, def));
    assert_int_equal(err.exit_code, 3);
    unlink(def);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/etok", dir);
    rmdir(sub);
    rmdir(dir);
    free(def);
}

int main(void) {
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_measure_plausible), cmocka_unit_test(test_cache_reused)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
