/* test_exporter.c — the exporter's page (with a synthetic energy source), its tokens file, its
 * HTTP endpoint on loopback, and promtool's verdict on the page. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "etok/serve.h"

typedef struct {
    int calls;
    int fail;
} fake;

/* 2 domains; package grows 10 J per read, dram 1 J per read */
static int fake_read(void *arg, etok_energy_reading *r) {
    fake *f = arg;
    if (f->fail) return -1;
    f->calls++;
    memset(r, 0, sizeof *r);
    r->t_s = f->calls;
    r->n_domains = 2;
    snprintf(r->domains[0].meter, sizeof r->domains[0].meter, "rapl");
    snprintf(r->domains[0].domain, sizeof r->domains[0].domain, "package-0");
    r->domains[0].energy_j = 10.0 * f->calls;
    snprintf(r->domains[1].meter, sizeof r->domains[1].meter, "rapl");
    snprintf(r->domains[1].domain, sizeof r->domains[1].domain, "dram \"0\"");
    r->domains[1].energy_j = 1.0 * f->calls;
    r->domains[0].summable = r->domains[1].summable = 1;
    r->n_domains = 3; /* a nested domain: exported apart, never in the summed series */
    snprintf(r->domains[2].meter, sizeof r->domains[2].meter, "rapl");
    snprintf(r->domains[2].domain, sizeof r->domains[2].domain, "core");
    r->domains[2].energy_j = 4.0 * f->calls;
    r->domains[2].summable = 0;
    r->total_j = 11.0 * f->calls;
    r->power_w = 11;
    r->source = ETOK_SOURCE_COUNTER;
    r->boundary = ETOK_BOUNDARY_DEVICE;
    return 0;
}

static void tokens_file_formats(void **state) {
    (void)state;
    long long in, out;
    int hi, ho;
    etok_err err = {0};
    assert_int_equal(etok_tokens_file_parse("12345\n", "t", &in, &out, &hi, &ho, &err), 0);
    assert_true(ho && !hi);
    assert_int_equal(out, 12345);
    assert_int_equal(etok_tokens_file_parse("# counts\ninput 10\noutput 20 # gen\n\n", "t", &in, &out, &hi, &ho, &err), 0);
    assert_true(hi && ho);
    assert_int_equal(in, 10);
    assert_int_equal(out, 20);
    assert_int_equal(etok_tokens_file_parse("output ten\n", "tok.txt", &in, &out, &hi, &ho, &err), -1);
    assert_non_null(strstr(err.msg, "tok.txt:1"));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_int_equal(etok_tokens_file_parse("input 1\n-5\n", "t", &in, &out, &hi, &ho, &err), -1);
    assert_non_null(strstr(err.msg, "t:2"));
    assert_int_equal(etok_tokens_file_parse("bogus 5\n", "t", &in, &out, &hi, &ho, &err), -1);
    assert_int_equal(etok_tokens_file_parse("", "t", &in, &out, &hi, &ho, &err), 0);
    assert_true(!hi && !ho);
    /* issue 9 §10: an overflowing count used to saturate to 9.22e18; strict now */
    assert_int_equal(etok_tokens_file_parse("99999999999999999999999\n", "tok.txt", &in, &out, &hi, &ho, &err), -1);
    assert_non_null(strstr(err.msg, "tok.txt:1"));
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_int_equal(etok_tokens_file_parse("output 9007199254740993\n", "t", &in, &out, &hi, &ho, &err), -1); /* 2^53 + 1 */
    assert_int_equal(etok_tokens_file_parse("output 9007199254740992\n", "t", &in, &out, &hi, &ho, &err), 0);
    assert_true(out == 9007199254740992LL);
    const char *bad[] = {"0x10\n", "1e3\n", "12.5\n", "+5\n", "input -0\n", "output 5 6\n", "input\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (etok_tokens_file_parse(bad[i], "t", &in, &out, &hi, &ho, &err) == 0) fail_msg("'%s' was accepted", bad[i]);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    }
}

static void page_has_every_series(void **state) {
    (void)state;
    fake f = {0};
    char path[] = "/tmp/etok_tokens_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "input 7\noutput 42\n", 18), 18);
    close(fd);
    etok_exporter_opts o = {.tokens_file = path, .energy = {.read = fake_read, .arg = &f}};
    char *t = etok_exporter_metrics_text(&o);
    assert_non_null(t);
    assert_non_null(strstr(t, "etok_energy_joules_total{meter=\"rapl\",domain=\"package-0\",boundary=\"device\",source=\"counter\"} 10\n"));
    assert_non_null(strstr(t, "domain=\"dram \\\"0\\\"\""));
    assert_non_null(strstr(t, "etok_tokens_total{kind=\"output\"} 42\n"));
    assert_non_null(strstr(t, "etok_tokens_total{kind=\"input\"} 7\n"));
    assert_non_null(strstr(t, "etok_tokens_file_up 1\n"));
    assert_non_null(strstr(t, "etok_energy_nested_joules_total{meter=\"rapl\",domain=\"core\""));
    assert_null(strstr(t, "etok_energy_joules_total{meter=\"rapl\",domain=\"core\""));
    assert_non_null(strstr(t, "etok_meter_up 1\n"));
    if (system("command -v promtool >/dev/null 2>&1") == 0) {
        char mpath[] = "/tmp/etok_metrics_XXXXXX";
        int mfd = mkstemp(mpath);
        assert_int_equal(write(mfd, t, strlen(t)), (ssize_t)strlen(t));
        close(mfd);
        char cmd[128];
        snprintf(cmd, sizeof cmd, "promtool check metrics < %s", mpath);
        assert_int_equal(system(cmd), 0);
        remove(mpath);
    }
    free(t);

    /* a broken tokens file and a failing meter: no invented numbers */
    FILE *fp = fopen(path, "w");
    fputs("output lots\n", fp);
    fclose(fp);
    f.fail = 1;
    t = etok_exporter_metrics_text(&o);
    assert_non_null(strstr(t, "etok_tokens_file_up 0\n"));
    assert_non_null(strstr(t, "etok_meter_up 0\n"));
    assert_null(strstr(t, "etok_tokens_total{"));
    assert_null(strstr(t, "etok_energy_joules_total{"));
    free(t);
    remove(path);
    t = etok_exporter_metrics_text(&o); /* the file vanished */
    assert_non_null(strstr(t, "etok_tokens_file_up 0\n"));
    free(t);
}

static size_t sink(char *p, size_t s, size_t n, void *arg) {
    char *buf = arg;
    size_t have = strlen(buf), add = s * n;
    if (have + add < 8192) {
        memcpy(buf + have, p, add);
        buf[have + add] = '\0';
    }
    return s * n;
}

static long get(int port, const char *path, char *body) {
    char url[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d%s", port, path);
    body[0] = '\0';
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 5L);
    long status = 0;
    if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void serves_http_on_loopback(void **state) {
    (void)state;
    fake f = {0};
    etok_exporter_opts o = {.port = 0, .energy = {.read = fake_read, .arg = &f}};
    etok_err err = {0};
    etok_exporter *x = etok_exporter_start(&o, &err);
    assert_non_null(x);
    int port = etok_exporter_port(x);
    assert_true(port > 0);
    char body[8192];
    assert_int_equal(get(port, "/metrics", body), 200);
    assert_non_null(strstr(body, "etok_energy_joules_total{meter=\"rapl\",domain=\"package-0\""));
    assert_null(strstr(body, "etok_tokens_total")); /* no tokens file: no token series */
    assert_int_equal(get(port, "/metrics", body), 200);
    assert_non_null(strstr(body, "package-0\",boundary=\"device\",source=\"counter\"} 20\n")); /* counter grew */
    assert_int_equal(get(port, "/nope", body), 404);
    /* the port is taken now: a second exporter on it fails with a clear message */
    etok_exporter_opts o2 = o;
    o2.port = port;
    assert_null(etok_exporter_start(&o2, &err));
    assert_non_null(strstr(err.msg, "cannot listen"));
    o2.port = 0;
    o2.host = "not-an-ip";
    assert_null(etok_exporter_start(&o2, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    etok_exporter_stop(x);
}

/* --energy-from: another node's exporter page read back as an energy reading */
static void remote_energy_reads_an_exporter(void **state) {
    (void)state;
    etok_energy_reading r;
    etok_err err = {0};
    const char *page = "# HELP x\n"
                       "etok_energy_joules_total{meter=\"rapl\",domain=\"package-0\",boundary=\"device\",source=\"counter\"} 100.5\n"
                       "etok_energy_joules_total{meter=\"nvml\",domain=\"gpu0\",boundary=\"device\",source=\"power\"} 20\n"
                       "etok_power_watts{boundary=\"device\",source=\"power\"} 55\n"
                       "etok_tokens_total{kind=\"output\"} 9\n";
    assert_int_equal(etok_remote_energy_parse(page, &r, &err), 0);
    assert_int_equal(r.n_domains, 2);
    assert_true(r.total_j == 120.5);
    assert_true(r.power_w == 55);
    assert_int_equal(r.source, ETOK_SOURCE_POWER); /* the weakest of the two */
    assert_string_equal(r.domains[1].domain, "gpu0");
    assert_int_equal(etok_remote_energy_parse("etok_tokens_total 5\n", &r, &err), -1);
    assert_non_null(strstr(err.msg, "no etok_energy_joules_total"));
    assert_int_equal(etok_remote_energy_parse("etok_energy_joules_total{meter=\"a\"} abc\n", &r, &err), -1);
    assert_int_equal(etok_remote_energy_parse("etok_energy_joules_total{boundary=\"node\"} 1\n"
                                              "etok_energy_joules_total{boundary=\"device\"} 1\n", &r, &err), -1);
    assert_non_null(strstr(err.msg, "boundaries"));

    fake f = {0};
    etok_exporter_opts o = {.port = 0, .energy = {.read = fake_read, .arg = &f}};
    etok_exporter *x = etok_exporter_start(&o, &err);
    assert_non_null(x);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", etok_exporter_port(x)); /* /metrics is implied */
    etok_energy_source src = {0};
    etok_remote_energy *re = etok_remote_energy_open(url, 5, &src, &err);
    assert_non_null(re);
    assert_int_equal(src.read(src.arg, &r), 0);
    assert_true(r.total_j == 11.0 * f.calls); /* what the node's meters said at that scrape */
    assert_int_equal(r.source, ETOK_SOURCE_COUNTER);
    etok_remote_energy_close(re);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/nope", etok_exporter_port(x));
    assert_null(etok_remote_energy_open(url, 5, &src, &err));
    assert_non_null(strstr(err.msg, "HTTP 404"));
    etok_exporter_stop(x);
    assert_null(etok_remote_energy_open("ftp://x", 5, &src, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
}

static void put(const char *root, const char *rel, const char *text) {
    char path[512], cmd[600];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\"", path);
    assert_int_equal(system(cmd), 0);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* The meter-set source on a fixture RAPL tree: one domain per zone, the nested core zone kept
 * out of the total, and the total what the summed domains add up to. */
static void meter_source_reports_every_domain(void **state) {
    (void)state;
    char root[] = "/tmp/etok_msrc_XXXXXX";
    assert_non_null(mkdtemp(root));
    put(root, "class/powercap/intel-rapl:0/name", "package-0\n");
    put(root, "class/powercap/intel-rapl:0/energy_uj", "1000000\n");
    put(root, "class/powercap/intel-rapl:0/max_energy_range_uj", "262143328850\n");
    put(root, "class/powercap/intel-rapl:0:0/name", "core\n");
    put(root, "class/powercap/intel-rapl:0:0/energy_uj", "500000\n");
    put(root, "class/powercap/intel-rapl:0:0/max_energy_range_uj", "262143328850\n");
    put(root, "class/powercap/intel-rapl:0:1/name", "dram\n");
    put(root, "class/powercap/intel-rapl:0:1/energy_uj", "200000\n");
    put(root, "class/powercap/intel-rapl:0:1/max_energy_range_uj", "262143328850\n");
    setenv("ETOK_SYSFS_ROOT", root, 1);
    const char *names[] = {"rapl"};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 1;
    cfg.rate_hz = 50;
    etok_energy_source src = {0};
    etok_err err = {0};
    etok_meter_source *m = etok_meter_source_open(&cfg, &src, &err);
    if (!m) fail_msg("%s", err.msg);
    /* the package uses 3 J, core 1 J (inside it), dram 0.5 J */
    put(root, "class/powercap/intel-rapl:0/energy_uj", "4000000\n");
    put(root, "class/powercap/intel-rapl:0:0/energy_uj", "1500000\n");
    put(root, "class/powercap/intel-rapl:0:1/energy_uj", "700000\n");
    etok_energy_reading r;
    for (int i = 0; i < 600; i++) { /* until the sampler has read them (up to 30 s) */
        usleep(50000);
        assert_int_equal(src.read(src.arg, &r), 0);
        if (fabs(r.total_j - 3.5) < 1e-9) break;
    }
    assert_true(fabs(r.total_j - 3.5) < 1e-9);
    assert_int_equal(r.n_domains, 3);
    double summed = 0;
    int saw_core = 0;
    for (int i = 0; i < r.n_domains; i++) {
        assert_string_equal(r.domains[i].meter, "rapl");
        if (strstr(r.domains[i].domain, "core")) {
            saw_core = 1;
            assert_false(r.domains[i].summable);
            assert_true(fabs(r.domains[i].energy_j - 1.0) < 1e-9);
        }
        if (r.domains[i].summable) summed += r.domains[i].energy_j;
    }
    assert_true(saw_core);
    assert_true(fabs(summed - r.total_j) < 1e-9);
    assert_int_equal(r.source, ETOK_SOURCE_COUNTER);
    assert_non_null(strstr(etok_meter_source_describe(m), "package-0"));
    assert_true(etok_meter_source_record(m)->traces[0].n_samples >= 2); /* a record is being kept */
    etok_meter_source_close(m);

    /* a daemon keeps no samples (flat memory) but the live energy still advances */
    cfg.live_only = 1;
    m = etok_meter_source_open(&cfg, &src, &err);
    assert_non_null(m);
    put(root, "class/powercap/intel-rapl:0/energy_uj", "5000000\n");
    for (int i = 0; i < 600; i++) {
        usleep(50000);
        assert_int_equal(src.read(src.arg, &r), 0);
        if (fabs(r.total_j - 1.0) < 1e-9) break;
    }
    assert_true(fabs(r.total_j - 1.0) < 1e-9);
    etok_record *rec = etok_meter_source_record(m);
    for (size_t i = 0; i < rec->n_traces; i++) assert_int_equal(rec->traces[i].n_samples, 0);
    etok_meter_source_close(m);
    unsetenv("ETOK_SYSFS_ROOT");
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", root);
    assert_int_equal(system(cmd), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(tokens_file_formats),
        cmocka_unit_test(page_has_every_series),
        cmocka_unit_test(serves_http_on_loopback),
        cmocka_unit_test(remote_energy_reads_an_exporter),
        cmocka_unit_test(meter_source_reports_every_domain),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
