/* test_meter_extlog.c — the external power-meter log: CSV and JSON-lines parsing, malformed
 * lines named by file:line, alignment to the run by wall clock, and gaps recorded as faults
 * (never filled). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "test_meter_fixture.h"
#include "etok/meter.h"
#include "meter/driver.h"

static char *g_dir;

static int setup(void **state) {
    (void)state;
    g_dir = fx_tmpdir();
    return g_dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    fx_rmrf(g_dir);
    return 0;
}

static const char *log_path(const char *name, const char *content) {
    static char p[1024];
    assert_int_equal(fx_write(g_dir, name, content, 0644), 0);
    snprintf(p, sizeof p, "%s/%s", g_dir, name);
    return p;
}

static void parses_csv_with_and_without_header(void **state) {
    (void)state;
    double *t, *w;
    size_t n;
    etok_err err = {{0}, 0};
    const char *p = log_path("a.csv", "timestamp,watts\n1700000000.0,100.5\n1700000000.5, 101\n\n1700000001.0,99.25\r\n");
    assert_int_equal(etok_extlog_parse(p, &t, &w, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(t[1] == 1700000000.5 && w[1] == 101.0 && w[2] == 99.25);
    free(t);
    free(w);
    p = log_path("b.csv", "1700000000,50\n1700000001,60\n");
    assert_int_equal(etok_extlog_parse(p, &t, &w, &n, &err), 0);
    assert_int_equal(n, 2);
    free(t);
    free(w);
    p = log_path("c.jsonl", "{\"timestamp\": 1700000000.25, \"watts\": 42}\n{\"watts\": 43.5, \"timestamp\": 1700000000.75}\n");
    assert_int_equal(etok_extlog_parse(p, &t, &w, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(t[0] == 1700000000.25 && w[1] == 43.5);
    free(t);
    free(w);
}

static void malformed_lines_name_file_and_line(void **state) {
    (void)state;
    struct { const char *name, *content, *where; } cases[] = {
        {"m1.csv", "timestamp,watts\n1700000000,100\n1700000001,abc\n", "m1.csv:3:"},
        {"m2.csv", "1700000000,100\n1700000001\n", "m2.csv:2:"},
        {"m3.jsonl", "{\"timestamp\": 1, \"watts\": 2}\n{\"timestamp\": 2, \"watts\": \"high\"}\n", "m3.jsonl:2:"},
        {"m4.jsonl", "{\"timestamp\": 1, \"watts\": 2}\n{broken\n", "m4.jsonl:2:"},
        {"m5.csv", "1700000002,100\n1700000001,100\n", "m5.csv:2:"},  /* backwards */
        {"m6.csv", "1700000001,100\n1700000002,-5\n", "m6.csv:2:"},   /* negative power */
        {"m7.csv", "1700000001,100\nhello,world\n", "m7.csv:2:"},     /* a "header" after data */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        double *t = NULL, *w = NULL;
        size_t n = 99;
        etok_err err = {{0}, 0};
        const char *p = log_path(cases[i].name, cases[i].content);
        assert_int_equal(etok_extlog_parse(p, &t, &w, &n, &err), -1);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
        assert_non_null(strstr(err.msg, cases[i].where));
        assert_null(strchr(err.msg, '\n'));
        assert_null(t);
        assert_int_equal(n, 0);
    }
    etok_err err = {{0}, 0};
    double *t, *w;
    size_t n;
    assert_int_equal(etok_extlog_parse("/nonexistent/log.csv", &t, &w, &n, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/log.csv"));
}

static void alignment_with_a_gap(void **state) {
    (void)state;
    etok_record rec;
    etok_record_init(&rec);
    rec.t0_wall_s = 1700000100.0;
    etok_trace *tr = etok_record_add_trace(&rec);
    snprintf(tr->domain, sizeof tr->domain, "wall.csv");
    /* run window [0, 10] s; samples every second, but nothing between t=3 and t=7.5 */
    double ts[] = {1700000090.0, 1700000099.5, 1700000100.5, 1700000101.5, 1700000102.5, 1700000103.0,
                   1700000107.5, 1700000108.5, 1700000109.5, 1700000110.4, 1700000111.0, 1700000130.0};
    double w[] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};
    size_t n = sizeof ts / sizeof ts[0];
    etok_err err = {{0}, 0};
    assert_int_equal(etok_extlog_align(&rec, 0, ts, w, n, 10.0, 2.0, &err), 0);
    tr = &rec.traces[0];
    /* kept: the neighbour at -0.5 s, everything inside, the neighbour at 10.4 s; not -10 s or 30 s */
    assert_int_equal(tr->n_samples, 9);
    assert_true(fabs(tr->samples[0].t_s - (-0.5)) < 1e-6 && tr->samples[0].raw == 2);
    assert_true(fabs(tr->samples[8].t_s - 10.4) < 1e-6 && tr->samples[8].raw == 10);
    assert_int_equal(rec.n_faults, 1);
    assert_string_equal(rec.faults[0].kind, "gap");
    assert_true(fabs(rec.faults[0].t_s - 3.0) < 1e-6);
    assert_non_null(strstr(rec.faults[0].message, "4.500 s"));
    assert_non_null(strstr(rec.faults[0].message, "not filled"));
    assert_true(fabs(tr->update_period_s - 1.0) < 1e-6);
    etok_record_free(&rec);

    /* a log that does not reach the end of the run, and one that misses the run entirely */
    etok_record_init(&rec);
    rec.t0_wall_s = 1700000100.0;
    etok_record_add_trace(&rec);
    assert_int_equal(etok_extlog_align(&rec, 0, ts, w, 6, 10.0, 2.0, &err), 0);
    assert_int_equal(rec.n_faults, 1);
    assert_true(fabs(rec.faults[0].t_s - 3.0) < 1e-6); /* from t=3 to the end */
    etok_record_free(&rec);
    etok_record_init(&rec);
    rec.t0_wall_s = 1800000000.0;
    etok_record_add_trace(&rec);
    assert_int_equal(etok_extlog_align(&rec, 0, ts, w, n, 10.0, 2.0, &err), 0);
    assert_int_equal(rec.traces[0].n_samples, 0);
    assert_int_equal(rec.n_faults, 1);
    assert_non_null(strstr(rec.faults[0].message, "clock"));
    etok_record_free(&rec);
}

static void extlog_meter_in_a_run(void **state) {
    (void)state;
    const char *p = log_path("run.csv", "timestamp,watts\n");
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *names[1] = {"extlog"};
    cfg.names = names;
    cfg.n_names = 1;
    cfg.extlog_path = p;
    cfg.extlog_gap_s = 0.5;
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    /* the external logger writes during the run, on the wall clock */
    char buf[256];
    snprintf(buf, sizeof buf, "timestamp,watts\n%.3f,200\n%.3f,210\n", rec.t0_wall_s - 0.1, rec.t0_wall_s + 0.1);
    log_path("run.csv", buf);
    fx_sleep(0.2);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    assert_int_equal(rec.n_traces, 1);
    assert_string_equal(rec.traces[0].meter, "extlog");
    assert_int_equal(rec.traces[0].source, ETOK_SOURCE_EXTERNAL);
    assert_int_equal(rec.traces[0].boundary, ETOK_BOUNDARY_NODE);
    assert_int_equal(rec.traces[0].n_samples, 2);
    assert_true(fabs(rec.traces[0].samples[0].t_s + 0.1) < 1e-3);
    etok_meters_close(ms);
    etok_record_free(&rec);

    /* malformed at open: the error names the line before anything runs */
    p = log_path("bad.csv", "1,2\n3;4\n");
    cfg.extlog_path = p;
    assert_null(etok_meters_open(&cfg, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "bad.csv:2:"));
}

/* The log is a stream of bounded lines from a regular file: a device (/dev/zero), a FIFO, an
 * over-long line or a NUL byte is refused at once, naming the file (and line). */
static void bounded_input(void **state) {
    (void)state;
    double *t = NULL, *w = NULL;
    size_t n = 0;
    etok_err err = {{0}, 0};
    assert_int_equal(etok_extlog_parse("/dev/zero", &t, &w, &n, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "/dev/zero"));
    assert_non_null(strstr(err.msg, "not a regular file"));
    char fifo[1100];
    snprintf(fifo, sizeof fifo, "%s/log.fifo", g_dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    assert_int_equal(etok_extlog_parse(fifo, &t, &w, &n, &err), -1); /* returns: no writer awaited */
    assert_non_null(strstr(err.msg, "not a regular file"));
    size_t big = ETOK_LIMIT_EXTLOG_LINE + 10;
    char *longline = malloc(big + 64);
    assert_non_null(longline);
    int k = snprintf(longline, big + 64, "1700000000,1\n");
    memset(longline + k, '5', big);
    longline[k + big] = '\0';
    const char *p = log_path("long.csv", longline);
    free(longline);
    assert_int_equal(etok_extlog_parse(p, &t, &w, &n, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "long.csv:2: line longer than"));
    assert_null(t);
    /* a line of exactly the limit (newline not counted) is fine */
    char *exact = malloc(ETOK_LIMIT_EXTLOG_LINE + 2);
    assert_non_null(exact);
    memset(exact, ' ', ETOK_LIMIT_EXTLOG_LINE);
    memcpy(exact, "1700000000,1", 12);
    exact[ETOK_LIMIT_EXTLOG_LINE] = '\n';
    exact[ETOK_LIMIT_EXTLOG_LINE + 1] = '\0';
    p = log_path("exact.csv", exact);
    free(exact);
    assert_int_equal(etok_extlog_parse(p, &t, &w, &n, &err), 0);
    assert_int_equal(n, 1);
    free(t);
    free(w);
    char nul[] = "1700000000,1\n17000\0000001,2\n";
    char path[1100];
    snprintf(path, sizeof path, "%s/nul.csv", g_dir);
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(nul, 1, sizeof nul - 1, f), sizeof nul - 1);
    fclose(f);
    assert_int_equal(etok_extlog_parse(path, &t, &w, &n, &err), -1);
    assert_non_null(strstr(err.msg, "nul.csv:2: contains a NUL byte"));
}

/* A long log (many samples before and after the run) is streamed at stop and only the run
 * window's samples are kept: the trace equals what aligning the whole parsed log gives. */
static void long_log_streamed_to_the_window(void **state) {
    (void)state;
    const char *p = log_path("big.csv", "timestamp,watts\n");
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    const char *names[1] = {"extlog"};
    cfg.names = names;
    cfg.n_names = 1;
    cfg.extlog_path = p;
    cfg.extlog_gap_s = 0.5;
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(&cfg, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    size_t n_before = 100000, n_after = 5000;
    size_t cap = (n_before + n_after + 100) * 40, len = 0;
    char *buf = malloc(cap);
    assert_non_null(buf);
    len += (size_t)snprintf(buf + len, cap - len, "timestamp,watts\n");
    for (size_t i = 0; i < n_before; i++) /* ends 0.2 s before the run */
        len += (size_t)snprintf(buf + len, cap - len, "%.4f,%zu\n", rec.t0_wall_s - 0.2 - 1e-3 * (double)(n_before - i), i % 50);
    len += (size_t)snprintf(buf + len, cap - len, "%.4f,100\n%.4f,101\n%.4f,102\n", rec.t0_wall_s - 0.2, rec.t0_wall_s + 0.05,
                            rec.t0_wall_s + 0.1);
    for (size_t i = 0; i < n_after; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%.4f,7\n", rec.t0_wall_s + 30 + (double)i);
    log_path("big.csv", buf);
    free(buf);
    fx_sleep(0.2);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    etok_meters_close(ms);
    assert_int_equal(rec.n_traces, 1);
    /* the same log aligned whole */
    double *ts, *w;
    size_t n;
    assert_int_equal(etok_extlog_parse(p, &ts, &w, &n, &err), 0);
    assert_int_equal(n, n_before + 3 + n_after);
    etok_record ref;
    etok_record_init(&ref);
    ref.t0_wall_s = rec.t0_wall_s;
    etok_record_add_trace(&ref);
    /* the run lasted about 0.2 s; any end in [0.1, 29.5) s keeps the same samples */
    assert_int_equal(etok_extlog_align(&ref, 0, ts, w, n, 1.0, 0.5, &err), 0);
    free(ts);
    free(w);
    assert_int_equal(rec.traces[0].n_samples, ref.traces[0].n_samples);
    assert_int_equal(rec.traces[0].n_samples, 3); /* -0.2 s, 0.05 s, 0.1 s */
    for (size_t i = 0; i < ref.traces[0].n_samples; i++) {
        assert_true(rec.traces[0].samples[i].t_s == ref.traces[0].samples[i].t_s);
        assert_true(rec.traces[0].samples[i].raw == ref.traces[0].samples[i].raw);
    }
    assert_true(fabs(rec.traces[0].samples[0].t_s + 0.2) < 1e-3 && rec.traces[0].samples[0].raw == 100);
    etok_record_free(&ref);
    etok_record_free(&rec);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(parses_csv_with_and_without_header),
        cmocka_unit_test(malformed_lines_name_file_and_line),
        cmocka_unit_test(alignment_with_a_gap),
        cmocka_unit_test(extlog_meter_in_a_run),
        cmocka_unit_test(bounded_input),
        cmocka_unit_test(long_log_streamed_to_the_window),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
