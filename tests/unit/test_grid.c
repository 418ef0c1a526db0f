/* test_grid.c — the grid carbon-intensity catalog data/grid/ and --grid-intensity/--region
 * (issue 12): every shipped entry loads with a value, year, basis and source; lookups are
 * case-insensitive; bad entries and bad options are refused naming the file/field or option;
 * the CO2e conversion and its uncertainty; the record keeps the grid; the report states the
 * basis and that embodied emissions are not included. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/grid.h"
#include "etok/report.h"
#include "etok/scenario.h"

static void test_catalog_entries_all_load(void **st) {
    (void)st;
    char **names;
    size_t n;
    etok_err err = {0};
    assert_int_equal(etok_catalog_names("grid", &names, &n, &err), 0);
    assert_true(n >= 20);
    for (size_t i = 0; i < n; i++) {
        etok_grid g;
        if (etok_grid_lookup(names[i], &g, &err)) fail_msg("%s: %s", names[i], err.msg);
        assert_true(g.present);
        assert_true(g.g_per_kwh > 0 && g.g_per_kwh < 1200);
        assert_true(g.year >= 2015);
        assert_string_equal(g.basis, "location");
        assert_non_null(strstr(g.source, "http"));
        assert_string_equal(g.region, names[i]);
    }
    etok_catalog_names_free(names, n);
}

static void test_lookup(void **st) {
    (void)st;
    etok_grid g;
    etok_err err = {0};
    assert_int_equal(etok_grid_lookup("DE", &g, &err), 0);
    assert_true(g.g_per_kwh == 381);
    assert_int_equal(g.year, 2023);
    assert_true(isnan(g.uncertainty_g_per_kwh));
    assert_string_equal(g.region, "de");
    assert_int_equal(etok_grid_lookup("fr", &g, &err), 0);
    assert_true(g.g_per_kwh == 56);
    assert_int_equal(etok_grid_lookup("atlantis", &g, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "unknown grid region 'atlantis'"));
    assert_non_null(strstr(err.msg, "de"));
    assert_false(g.present);
    assert_int_equal(etok_grid_lookup("../hardware/h100-sxm", &g, &err), -1);
    assert_int_equal(etok_grid_lookup("", &g, &err), -1);
}

static void test_resolve(void **st) {
    (void)st;
    etok_grid g;
    etok_err err = {0};
    assert_int_equal(etok_grid_resolve(NULL, NULL, &g, &err), 0);
    assert_false(g.present);
    assert_int_equal(etok_grid_resolve("250", NULL, &g, &err), 0);
    assert_true(g.present && g.g_per_kwh == 250);
    assert_string_equal(g.basis, "user-given");
    assert_string_equal(g.region, "");
    assert_non_null(strstr(g.source, "--grid-intensity"));
    const char *bad[] = {"0", "-3", "abc", "1e9", "nan", "250g", ""};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        if (etok_grid_resolve(bad[i], NULL, &g, &err) == 0) fail_msg("--grid-intensity '%s' accepted", bad[i]);
        assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(err.msg, "--grid-intensity"));
        assert_false(g.present);
    }
    assert_int_equal(etok_grid_resolve("250", "de", &g, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "exclusive"));
    assert_int_equal(etok_grid_resolve(NULL, "no", &g, &err), 0);
    assert_true(g.g_per_kwh == 30);
}

static void test_co2e(void **st) {
    (void)st;
    etok_grid g = {.present = 1, .g_per_kwh = 400, .uncertainty_g_per_kwh = NAN};
    double u;
    assert_true(fabs(etok_grid_co2e_g(&g, 3.6e6, 3.6e5, &u) - 400) < 1e-9);
    assert_true(fabs(u - 40) < 1e-9);
    etok_grid_co2e_g(&g, 3.6e6, NAN, &u);
    assert_true(isnan(u));
    g.uncertainty_g_per_kwh = 30;
    etok_grid_co2e_g(&g, 3.6e6, 3.6e5, &u);
    assert_true(fabs(u - 400 * sqrt(0.01 + 0.075 * 0.075)) < 1e-9);
    assert_true(fabs(etok_grid_co2e_g(&g, 0, 0, &u)) < 1e-12);
    assert_true(fabs(u) < 1e-12);
}

/* A private catalog with broken entries: each is refused naming the file and field. */
static void write_entry(const char *dir, const char *name, const char *json) {
    char p[512];
    snprintf(p, sizeof p, "%s/grid/%s.json", dir, name);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    fputs(json, f);
    fclose(f);
}

static void test_bad_entries(void **st) {
    (void)st;
    char dir[] = "/tmp/etok_grid_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char sub[300];
    snprintf(sub, sizeof sub, "%s/grid", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    const char *ok = "{\"g_co2e_per_kwh\": 100, \"year\": 2022, \"basis\": \"location\", \"source\": \"s\"}";
    write_entry(dir, "ok", ok);
    write_entry(dir, "noyear", "{\"g_co2e_per_kwh\": 100, \"basis\": \"location\", \"source\": \"s\"}");
    write_entry(dir, "nosrc", "{\"g_co2e_per_kwh\": 100, \"year\": 2022, \"basis\": \"location\"}");
    write_entry(dir, "zero", "{\"g_co2e_per_kwh\": 0, \"year\": 2022, \"basis\": \"location\", \"source\": \"s\"}");
    write_entry(dir, "basis", "{\"g_co2e_per_kwh\": 9, \"year\": 2022, \"basis\": \"guess\", \"source\": \"s\"}");
    write_entry(dir, "extra", "{\"g_co2e_per_kwh\": 9, \"year\": 2022, \"basis\": \"location\", \"source\": \"s\", \"x\": 1}");
    write_entry(dir, "unc", "{\"g_co2e_per_kwh\": 9, \"uncertainty_g_co2e_per_kwh\": 10, \"year\": 2022, \"basis\": \"location\", \"source\": \"s\"}");
    write_entry(dir, "notjson", "{");
    setenv("ETOK_DATA_DIR", dir, 1);
    etok_grid g;
    etok_err err = {0};
    assert_int_equal(etok_grid_lookup("ok", &g, &err), 0);
    assert_true(g.g_per_kwh == 100);
    struct { const char *name, *field; } bad[] = {{"noyear", "year"}, {"nosrc", "source"}, {"zero", "g_co2e_per_kwh"},
                                                 {"basis", "basis"}, {"extra", "x"}, {"unc", "uncertainty"},
                                                 {"notjson", "notjson.json"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        if (etok_grid_lookup(bad[i].name, &g, &err) == 0) fail_msg("%s accepted", bad[i].name);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
        if (!strstr(err.msg, bad[i].field)) fail_msg("%s: '%s' does not name %s", bad[i].name, err.msg, bad[i].field);
        assert_false(g.present);
    }
    unsetenv("ETOK_DATA_DIR");
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

/* The record keeps the grid (and older records without one still load); the report text. */
static void test_record_and_report(void **st) {
    (void)st;
    etok_record r;
    etok_record_init(&r);
    etok_err err = {0};
    assert_int_equal(etok_grid_lookup("de", &r.grid, &err), 0);
    char *text = etok_record_to_json_text(&r);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"grid\""));
    etok_record back;
    if (etok_record_from_json_text(&back, text, "test", &err)) fail_msg("%s", err.msg);
    assert_true(back.grid.present);
    assert_true(back.grid.g_per_kwh == 381);
    assert_true(isnan(back.grid.uncertainty_g_per_kwh));
    assert_string_equal(back.grid.source, r.grid.source);
    assert_int_equal(back.grid.year, 2023);
    char buf[1024];
    etok_report_carbon_text(&back, buf, sizeof buf);
    assert_non_null(strstr(buf, "location-based"));
    assert_non_null(strstr(buf, "market-based"));
    assert_non_null(strstr(buf, "embodied"));
    assert_non_null(strstr(buf, "381"));
    etok_record_free(&back);
    /* a grid with a bad value is refused on load, naming the field */
    char *p = strstr(text, "\"g_per_kwh\"");
    assert_non_null(p);
    char *bad = malloc(strlen(text) + 16);
    assert_non_null(bad);
    size_t k = (size_t)(p - text);
    memcpy(bad, text, k);
    sprintf(bad + k, "\"g_per_kwh\": -1, \"x_\"%s", p + strlen("\"g_per_kwh\""));
    assert_int_equal(etok_record_from_json_text(&back, bad, "test", &err), -1);
    free(bad);
    free(text);
    /* without a grid: no "grid" key, no paragraph */
    etok_record_free(&r);
    etok_record_init(&r);
    text = etok_record_to_json_text(&r);
    assert_non_null(text);
    assert_null(strstr(text, "\"grid\""));
    assert_int_equal(etok_record_from_json_text(&back, text, "test", &err), 0);
    assert_false(back.grid.present);
    etok_report_carbon_text(&back, buf, sizeof buf);
    assert_string_equal(buf, "");
    free(text);
    etok_record_free(&back);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_catalog_entries_all_load), cmocka_unit_test(test_lookup),
        cmocka_unit_test(test_resolve),                  cmocka_unit_test(test_co2e),
        cmocka_unit_test(test_bad_entries),              cmocka_unit_test(test_record_and_report),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
