/* test_prom.c — Prometheus text exposition: escaping, families, histograms, and promtool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "etok/prom.h"

static void label_values_are_escaped(void **state) {
    (void)state;
    etok_prom_buf b;
    etok_prom_init(&b);
    const char *labels[] = {"domain", "pkg \"0\"\\x\nnext", "meter", "rapl", NULL};
    etok_prom_sample(&b, "etok_energy_joules_total", labels, 12.5);
    assert_string_equal(b.text, "etok_energy_joules_total{domain=\"pkg \\\"0\\\"\\\\x\\nnext\",meter=\"rapl\"} 12.5\n");
    etok_prom_free(&b);
}

static void family_and_special_values(void **state) {
    (void)state;
    etok_prom_buf b;
    etok_prom_init(&b);
    etok_prom_family(&b, "etok_power_watts", "gauge", "Mean power\nover 1 s \\ W");
    etok_prom_sample(&b, "etok_power_watts", NULL, NAN);
    etok_prom_sample(&b, "etok_power_watts", NULL, INFINITY);
    etok_prom_sample(&b, "etok_power_watts", NULL, 0.1 + 0.2);
    assert_string_equal(b.text,
                        "# HELP etok_power_watts Mean power\\nover 1 s \\\\ W\n"
                        "# TYPE etok_power_watts gauge\n"
                        "etok_power_watts NaN\n"
                        "etok_power_watts +Inf\n"
                        "etok_power_watts 0.3\n");
    etok_prom_free(&b);
}

static void names_are_validated(void **state) {
    (void)state;
    assert_true(etok_prom_valid_metric_name("etok_tokens_total"));
    assert_true(etok_prom_valid_metric_name("a:b_c9"));
    assert_false(etok_prom_valid_metric_name("9abc"));
    assert_false(etok_prom_valid_metric_name("a-b"));
    assert_false(etok_prom_valid_metric_name(""));
    assert_true(etok_prom_valid_label_name("le"));
    assert_false(etok_prom_valid_label_name("a:b"));
    assert_false(etok_prom_valid_label_name("__name__"));
}

static void histogram_is_cumulative(void **state) {
    (void)state;
    etok_prom_histogram h;
    const double bad[] = {0.1, 0.1};
    assert_int_equal(etok_prom_histogram_init(&h, bad, 2), -1);
    const double bounds[] = {0.01, 0.1, 1};
    assert_int_equal(etok_prom_histogram_init(&h, bounds, 3), 0);
    const double obs[] = {0.005, 0.01, 0.05, 0.5, 0.7, 3.0, NAN};
    for (size_t i = 0; i < sizeof obs / sizeof obs[0]; i++) etok_prom_histogram_observe(&h, obs[i]);
    etok_prom_buf b;
    etok_prom_init(&b);
    const char *labels[] = {"kind", "ttft", NULL};
    etok_prom_histogram_write(&b, "etok_x_seconds", labels, &h);
    assert_string_equal(b.text,
                        "etok_x_seconds_bucket{kind=\"ttft\",le=\"0.01\"} 2\n"
                        "etok_x_seconds_bucket{kind=\"ttft\",le=\"0.1\"} 3\n"
                        "etok_x_seconds_bucket{kind=\"ttft\",le=\"1\"} 5\n"
                        "etok_x_seconds_bucket{kind=\"ttft\",le=\"+Inf\"} 6\n"
                        "etok_x_seconds_sum{kind=\"ttft\"} 4.265\n"
                        "etok_x_seconds_count{kind=\"ttft\"} 6\n");
    etok_prom_free(&b);
}

/* The output of every writer together passes Prometheus' own linter, when it is installed. */
static void promtool_accepts(void **state) {
    (void)state;
    if (system("command -v promtool >/dev/null 2>&1") != 0) {
        skip();
        return;
    }
    etok_prom_buf b;
    etok_prom_init(&b);
    etok_prom_family(&b, "etok_energy_joules_total", "counter", "Cumulative energy (J) per meter domain");
    const char *l1[] = {"meter", "rapl", "domain", "package-0", "boundary", "device", "source", "counter", NULL};
    etok_prom_sample(&b, "etok_energy_joules_total", l1, 1234.5);
    etok_prom_family(&b, "etok_ttft_seconds", "histogram", "Time to first token (s)");
    etok_prom_histogram h;
    const double bounds[] = {0.05, 0.1, 0.5};
    etok_prom_histogram_init(&h, bounds, 3);
    etok_prom_histogram_observe(&h, 0.07);
    etok_prom_histogram_write(&b, "etok_ttft_seconds", NULL, &h);
    char path[] = "/tmp/etok_prom_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(b.text, f);
    fclose(f);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "promtool check metrics < %s", path);
    int rc = system(cmd);
    remove(path);
    assert_int_equal(rc, 0);
    etok_prom_free(&b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(label_values_are_escaped),
        cmocka_unit_test(family_and_special_values),
        cmocka_unit_test(names_are_validated),
        cmocka_unit_test(histogram_is_cumulative),
        cmocka_unit_test(promtool_accepts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
