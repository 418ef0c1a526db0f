/* test_api.c — libetok's public API (include/etok/etok.h) on a fixture RAPL tree whose counters
 * the test advances itself, so every window's energy is known exactly: live readings, nested and
 * overlapping windows, tokens and request ids, the saved record (kind "api", one request per
 * window) read back and re-analysed, final readings, the estimate meter labelled, and every
 * misuse refused with a message (a name open twice, end of an unknown window, save with a window
 * open, begin after save, a meter that does not exist). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "etok/energy.h"
#include "etok/etok.h"
#include "etok/record.h"
#include "test_meter_fixture.h"

#define BIG_RANGE "262143328850\n"

static void zone(const char *root, const char *id, const char *name, const char *energy) {
    char rel[256];
    snprintf(rel, sizeof rel, "class/powercap/%s/name", id);
    assert_int_equal(fx_write(root, rel, name, 0444), 0);
    snprintf(rel, sizeof rel, "class/powercap/%s/energy_uj", id);
    assert_int_equal(fx_write(root, rel, energy, 0444), 0);
    snprintf(rel, sizeof rel, "class/powercap/%s/max_energy_range_uj", id);
    assert_int_equal(fx_write(root, rel, BIG_RANGE, 0444), 0);
}

static void set_uj(const char *root, long long uj);

/* The counter moves well inside the windows around it: three sampler periods (50 Hz) of flat
 * counter before and after each step, so the saved record's edge terms do not depend on where
 * a loaded machine puts the sampler's ticks. */
static void counter_step(const char *root, long long uj) {
    usleep(60000);
    set_uj(root, uj);
    usleep(60000);
}

static void set_uj(const char *root, long long uj) {
    assert_int_equal(fx_writef(root, "class/powercap/intel-rapl:0/energy_uj", "%lld\n", uj), 0);
}

static void windows_on_rapl_fixture(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_non_null(root);
    zone(root, "intel-rapl:0", "package-0\n", "1000000\n");
    setenv("ETOK_SYSFS_ROOT", root, 1);

    assert_int_equal(etok_api_version(), ETOK_API_VERSION);
    char err[1024];
    etok_meter_options o = {.meters = "rapl", .rate_hz = 50};
    etok_meter *m = etok_meter_open(&o, err, sizeof err);
    assert_non_null(m);
    assert_string_equal(etok_meter_source(m), "counter");
    assert_string_equal(etok_meter_boundary(m), "device");

    /* outer: 1.0 J -> 4.0 J; inner (nested): 2.0 -> 3.5 J; overlap: 3.5 -> 6.0 J */
    assert_int_equal(etok_meter_begin(m, "outer"), 0);
    assert_int_equal(etok_meter_begin(m, "outer"), -1);
    assert_non_null(strstr(etok_meter_error(m), "already open"));
    counter_step(root, 2000000);
    assert_int_equal(etok_meter_begin(m, "inner"), 0);
    counter_step(root, 3500000);
    etok_reading r;
    assert_int_equal(etok_meter_end(m, "inner", &r), 0);
    assert_int_equal(etok_meter_begin(m, "overlap"), 0);
    counter_step(root, 4000000);
    assert_int_equal(etok_meter_end(m, "outer", &r), 0);
    assert_string_equal(r.name, "outer");
    assert_true(r.has_energy);
    assert_true(fabs(r.energy_j - 3.0) < 1e-9);
    assert_string_equal(r.source, "counter");
    assert_string_equal(r.boundary, "device");
    assert_true(r.energy_uncertainty_j > 0 && r.energy_uncertainty_j < 0.01);
    assert_true(r.duration_s > 0 && r.t_end_s > r.t_begin_s);
    assert_true(isnan(r.joules_per_output_token));
    assert_true(r.tokens_out == -1 && !r.final);
    counter_step(root, 6000000);
    assert_int_equal(etok_meter_end(m, "overlap", &r), 0);
    assert_true(fabs(r.energy_j - 2.5) < 1e-9);
    assert_int_equal(etok_meter_reading(m, "inner", &r), 0);
    assert_true(fabs(r.energy_j - 1.5) < 1e-9);

    /* tokens and request ids, attached after the end */
    assert_int_equal(etok_meter_set_tokens(m, "outer", 10, 30), 0);
    assert_int_equal(etok_meter_set_request_id(m, "outer", "req-7"), 0);
    assert_int_equal(etok_meter_reading(m, "outer", &r), 0);
    assert_true(fabs(r.joules_per_output_token - 0.1) < 1e-9);
    assert_string_equal(r.request_id, "req-7");
    assert_int_equal(etok_meter_set_tokens(m, "nope", 1, 1), -1);
    assert_int_equal(etok_meter_set_tokens(m, "outer", -1, 1), -1);
    assert_int_equal(etok_meter_end(m, "nope", NULL), -1);
    assert_non_null(strstr(etok_meter_error(m), "no open window"));
    assert_int_equal(etok_meter_begin(m, ""), -1);

    /* save: refused while a window is open; then the record */
    char path[1100];
    snprintf(path, sizeof path, "%s/api.json", root);
    assert_int_equal(etok_meter_begin(m, "left-open"), 0);
    assert_int_equal(etok_meter_save(m, path), -1);
    assert_non_null(strstr(etok_meter_error(m), "still open"));
    assert_int_equal(etok_meter_end(m, "left-open", NULL), 0);
    assert_int_equal(etok_meter_save(m, path), 0);
    assert_int_equal(etok_meter_begin(m, "late"), -1);
    assert_non_null(strstr(etok_meter_error(m), "saved"));
    assert_int_equal(etok_meter_reading(m, "outer", &r), 0);
    assert_true(r.final);
    /* the record's analysis places the window edges between readings and pro-rates the
     * straddling intervals (docs/RECORD.md): the same energy within its stated uncertainty */
    assert_true(fabs(r.energy_j - 3.0) <= r.energy_uncertainty_j + 1e-9);
    assert_true(r.energy_uncertainty_j < 3.0);

    etok_record rec;
    etok_err e = {{0}, 0};
    assert_int_equal(etok_record_load(&rec, path, &e), 0);
    assert_string_equal(rec.kind, "api");
    assert_int_equal(rec.n_requests, 4);
    assert_string_equal(rec.requests[0].id, "req-7");
    assert_int_equal(rec.requests[0].tokens_out, 30);
    assert_true(fabs(rec.requests[0].energy_j - r.energy_j) < 1e-9);
    assert_string_equal(rec.requests[1].id, "inner");
    assert_true(rec.tokens_known);
    assert_int_equal(rec.tokens_out, 30);
    etok_energy_result res;
    assert_int_equal(etok_energy_window(&rec, rec.requests[2].t_send_s, rec.requests[2].t_done_s, &res), 0);
    assert_true(res.has_energy && fabs(res.energy_j - 2.5) <= res.energy_uncertainty_j + 1e-9);
    etok_energy_result_free(&res);
    etok_record_free(&rec);
    etok_meter_close(m);
    unsetenv("ETOK_SYSFS_ROOT");
    fx_rmrf(root);
}

static void estimate_is_labelled_and_unknown_meter_refused(void **state) {
    (void)state;
    char err[1024];
    etok_meter_options o = {.meters = "estimate", .cpu_idle_w = 10, .cpu_max_w = 50};
    etok_meter *m = etok_meter_open(&o, err, sizeof err);
    assert_non_null(m);
    assert_int_equal(etok_meter_begin(m, "w"), 0);
    fx_sleep(0.05);
    etok_reading r;
    assert_int_equal(etok_meter_end(m, "w", &r), 0);
    assert_string_equal(r.source, "estimate");
    assert_true(r.has_energy && r.energy_j > 0 && r.energy_uncertainty_j > 0);
    assert_string_equal(etok_meter_source(m), "estimate");
    etok_meter_close(m);

    o.meters = "no-such-meter";
    assert_null(etok_meter_open(&o, err, sizeof err));
    assert_non_null(strstr(err, "no-such-meter"));
    o.meters = "estimate";
    o.cpu_max_w = 5; /* max below idle */
    assert_null(etok_meter_open(&o, err, sizeof err));
    assert_true(err[0] != '\0');
    etok_meter_close(NULL);
    assert_int_equal(etok_meter_begin(NULL, "x"), -1);
}

static void generator_without_model_names_the_places(void **state) {
    (void)state;
    char err[1024];
    setenv("ETOK_MODEL", "/nonexistent/model.gguf", 1);
    assert_null(etok_generator_open(NULL, 0, err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/model.gguf"));
    assert_non_null(strstr(err, "ETOK_MODEL"));
    unsetenv("ETOK_MODEL");
    setenv("XDG_CACHE_HOME", "/nonexistent-cache", 1);
    char cwd[1024];
    assert_non_null(getcwd(cwd, sizeof cwd));
    assert_int_equal(chdir("/"), 0);
    etok_generator *g = etok_generator_open(NULL, 0, err, sizeof err);
    if (!g) { /* no default model in the source tree either: the message lists every place */
        assert_non_null(strstr(err, "/nonexistent-cache/etok/models/SmolLM2-135M-Instruct.Q4_1.gguf"));
        assert_non_null(strstr(err, "./models/"));
        assert_non_null(strstr(err, "fetch_model.sh"));
    } else {
        etok_generator_close(g);
    }
    assert_int_equal(chdir(cwd), 0);
    unsetenv("XDG_CACHE_HOME");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(windows_on_rapl_fixture),
        cmocka_unit_test(estimate_is_labelled_and_unknown_meter_refused),
        cmocka_unit_test(generator_without_model_names_the_places),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
