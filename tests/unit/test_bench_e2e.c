/* test_bench_e2e.c — `etok bench` end to end on a tiny synthetic GGUF made here (fast):
 * every reporting-set field present with unit, source and uncertainty, for the closed loop
 * (both phase-split methods) and the open loop; Ctrl-C mid-run gives a valid partial record
 * and report (exit 130); `etok report` re-renders the run. Runs the real binary ($ETOK_BIN). */
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <signal.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/energy.h"
#include "etok/record.h"
#include "synth_gguf.h"

static char dir[64];
static char model[128], evals[128], prof[128];

static const char *etok_bin(void) {
    const char *b = getenv("ETOK_BIN");
    return b ? b : "./build/etok";
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/etok-bench-e2e-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(model, sizeof model, "%s/tiny.gguf", dir);
    snprintf(evals, sizeof evals, "%s/evals.jsonl", dir);
    snprintf(prof, sizeof prof, "%s/profile.json", dir);
    if (etok_test_write_tiny_gguf(model, NULL)) return -1;
    FILE *f = fopen(evals, "w");
    if (!f) return -1;
    /* a random-weight model answers gibberish: one check that any text passes, others not */
    fputs("{\"id\":\"any\",\"prompt\":\"Say anything.\",\"answer\":\".\",\"check\":\"regex\"}\n"
          "{\"id\":\"paris\",\"prompt\":\"What is the capital of France?\",\"answer\":\"Paris\",\"check\":\"contains\"}\n"
          "{\"id\":\"num\",\"prompt\":\"What is 2 + 3?\",\"answer\":\"5\",\"check\":\"number\"}\n",
          f);
    fclose(f);
    f = fopen(prof, "w");
    if (!f) return -1;
    fputs("{\"peak_flops\": 2e11, \"mem_bw_bps\": 2e10, \"power_limit_w\": 50, \"source\": \"probe\", "
          "\"name\": \"test\"}\n",
          f);
    fclose(f);
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Run etok bench with extra args; returns the child pid (not waited) or the exit status. */
static pid_t spawn_bench(const char *out, const char *const *extra, int n_extra) {
    const char *base[] = {etok_bin(), "bench", "-m", model, "--evals", evals, "--profile", prof, "--meter",
                          "estimate", "--idle", "0.3", "--warmup", "1", "--max-tokens", "6", "-q", "-o", out};
    size_t nb = sizeof base / sizeof base[0];
    char **argv = calloc(nb + (size_t)n_extra + 1, sizeof *argv);
    for (size_t i = 0; i < nb; i++) argv[i] = (char *)base[i];
    for (int i = 0; i < n_extra; i++) argv[nb + (size_t)i] = (char *)extra[i];
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        if (null >= 0) dup2(null, 1);
        execv(argv[0], argv);
        _exit(127);
    }
    free(argv);
    return pid;
}

static int run_bench(const char *out, const char *const *extra, int n_extra) {
    pid_t pid = spawn_bench(out, extra, n_extra);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static json_t *load_json(const char *out, const char *name) {
    char p[256];
    snprintf(p, sizeof p, "%s/%s", out, name);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) fail_msg("%s: %s", p, je.text);
    return j;
}

static const char *const ALL_FIELDS[] = {
    "energy_j", "idle_power_w", "mean_power_w", "dynamic_energy_j", "joules_per_output_token",
    "joules_per_token", "joules_per_input_token", "joules_per_decode_token", "joules_per_request",
    "joules_per_correct_answer", "quality_conditioned_joules_per_token", "pue_adjusted_power_w",
    "utilization", "utilization_adjusted_token_rate_tps", "deployment_utilization",
    "utilization_adjusted_joules_per_token", "accuracy", "slo_attainment", "goodput_rps", "goodput_tps",
    "mfu", "mbu", "power_limit_ratio", "energy_cost_per_mtok", "ceiling_compute_tps",
    "ceiling_memory_bandwidth_tps", "ceiling_device_power_cap_tps", "token_rate_tps",
};

static void check_full(json_t *run, int n_requests, const char *split) {
    json_t *m = json_object_get(run, "metrics");
    assert_non_null(m);
    for (size_t i = 0; i < sizeof ALL_FIELDS / sizeof ALL_FIELDS[0]; i++) {
        json_t *x = json_object_get(m, ALL_FIELDS[i]);
        if (!x) fail_msg("metrics.%s missing", ALL_FIELDS[i]);
        json_t *v = json_object_get(x, "value");
        if (!json_is_number(v))
            fail_msg("metrics.%s has no value: %s", ALL_FIELDS[i], json_string_value(json_object_get(x, "note")));
        assert_non_null(json_string_value(json_object_get(x, "unit")));
        assert_non_null(json_string_value(json_object_get(x, "source")));
    }
    /* estimate energy is labelled as such */
    assert_string_equal(json_string_value(json_object_get(json_object_get(m, "joules_per_output_token"), "source")),
                        "estimate");
    const char *d[] = {"ttft_s", "tpot_s", "itl_s", "e2e_s"}, *s[] = {"p50", "p90", "p99", "mean"};
    for (int i = 0; i < 4; i++)
        for (int k = 0; k < 4; k++) {
            json_t *x = json_object_get(json_object_get(m, d[i]), s[k]);
            if (!x || !json_is_number(json_object_get(x, "value"))) fail_msg("metrics.%s.%s missing", d[i], s[k]);
        }
    assert_string_equal(json_string_value(json_object_get(m, "phase_split_method")), split);
    assert_int_equal((int)json_array_size(json_object_get(run, "requests")), n_requests);
    assert_true(json_array_size(json_object_get(run, "steps")) > 0);
    assert_true(json_is_false(json_object_get(run, "partial")));
    assert_string_equal(json_string_value(json_object_get(run, "kind")), "bench");
    double acc = json_number_value(json_object_get(json_object_get(m, "accuracy"), "value"));
    assert_true(acc > 0 && acc < 1); /* "any" passes, "paris" cannot */
}

static void test_closed_loop(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/closed", dir);
    const char *extra[] = {"--requests", "6", "--concurrency", "2", "--pue", "1.2", "--price-per-kwh", "0.3",
                           "--quality-target", "0.1", "--ttft-slo", "30", "--tpot-slo", "30"};
    assert_int_equal(run_bench(out, extra, (int)(sizeof extra / sizeof extra[0])), 0);
    json_t *run = load_json(out, "run.json");
    check_full(run, 6, "regression");
    json_decref(run);
    /* the record part of run.json loads as a record */
    char p[256];
    snprintf(p, sizeof p, "%s/run.json", out);
    etok_record r;
    etok_err err = {0};
    assert_int_equal(etok_record_load(&r, p, &err), 0);
    assert_true(r.tokens_out > 0);
    assert_true(r.hw.peak_flops == 2e11);
    /* every request carries its attributed energy, and the books balance with the window */
    {
        etok_energy_summary es;
        assert_int_equal(etok_energy_summarize(&r, &es), 0);
        assert_true(es.has_energy);
        double sum = 0;
        for (size_t i = 0; i < r.n_requests; i++) {
            assert_true(r.requests[i].energy_j > 0);
            sum += r.requests[i].energy_j;
        }
        assert_true(fabs(sum - es.energy_j) <= 1e-6 * es.energy_j);
        etok_energy_summary_free(&es);
    }
    /* the eval set's content hash, for etok compare */
    assert_non_null(r.config_json);
    assert_non_null(strstr(r.config_json, "\"evals_hash\":\"fnv1a64:"));
    etok_record_free(&r);
    snprintf(p, sizeof p, "%s/report.html", out);
    struct stat sb;
    assert_int_equal(stat(p, &sb), 0);
    assert_true(sb.st_size > 10000);
}

static void test_serial_and_open_loop(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/serial", dir);
    const char *e1[] = {"--requests", "3", "--concurrency", "1", "--price-per-kwh", "0.3", "--quality-target", "0.1",
                        "--ttft-slo", "30", "--tpot-slo", "30"};
    assert_int_equal(run_bench(out, e1, (int)(sizeof e1 / sizeof e1[0])), 0);
    json_t *run = load_json(out, "run.json");
    check_full(run, 3, "serial_phases");
    json_decref(run);
    snprintf(out, sizeof out, "%s/open", dir);
    const char *e2[] = {"--requests", "5", "--rate", "20", "--seed", "7", "--price-per-kwh", "0.3",
                        "--quality-target", "0.1", "--ttft-slo", "30", "--tpot-slo", "30"};
    assert_int_equal(run_bench(out, e2, (int)(sizeof e2 / sizeof e2[0])), 0);
    run = load_json(out, "run.json");
    assert_int_equal((int)json_array_size(json_object_get(run, "requests")), 5);
    json_t *m = json_object_get(run, "metrics");
    assert_true(json_is_number(json_object_get(json_object_get(m, "goodput_rps"), "value")));
    json_decref(run);
}

static void test_sigint_partial(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/sigint", dir);
    const char *extra[] = {"--requests", "100000", "--concurrency", "2", "--max-tokens", "64"};
    pid_t pid = spawn_bench(out, extra, (int)(sizeof extra / sizeof extra[0]));
    usleep(1500 * 1000); /* idle 0.3 s + warm-up, then well inside the window */
    kill(pid, SIGINT);
    int status = 0;
    waitpid(pid, &status, 0);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 130);
    char p[256];
    snprintf(p, sizeof p, "%s/run.json", out);
    etok_record r;
    etok_err err = {0};
    if (etok_record_load(&r, p, &err)) fail_msg("partial record does not load: %s", err.msg);
    assert_true(r.partial);
    assert_true(r.window_end_s >= r.window_start_s);
    assert_true(r.n_requests < 100000);
    etok_record_free(&r);
    json_t *run = load_json(out, "run.json");
    assert_non_null(json_object_get(run, "metrics"));
    json_decref(run);
    snprintf(p, sizeof p, "%s/report.md", out);
    char *md = etok_read_file(p, NULL);
    assert_non_null(md);
    assert_non_null(strstr(md, "PARTIAL RUN"));
    free(md);
    /* etok report re-renders the partial run */
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' report '%s/run.json' --format md > /dev/null", etok_bin(), out);
    assert_int_equal(system(cmd), 0);
}

/* etok serve on the tiny model, driven by etok bench --endpoint (loopback only). */

/* Start `etok ARGS...` (listening on --port 0: the kernel picks a free port, so no other
 * process can hold it) with stdout silenced and stderr in log (sysfs_root: ETOK_SYSFS_ROOT for
 * it, or NULL); wait up to 60 s for its "listening on http://127.0.0.1:PORT" line. Returns its
 * pid with *port set, or -1 (killed) when it exited or never listened. */
static pid_t spawn_listener(const char *sysfs_root, const char *const *args, const char *log, int *port) {
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY);
        int err = open(log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        if (null >= 0) dup2(null, 1);
        if (err >= 0) dup2(err, 2);
        if (sysfs_root) setenv("ETOK_SYSFS_ROOT", sysfs_root, 1);
        execv(etok_bin(), (char *const *)args);
        _exit(127);
    }
    for (int i = 0; i < 600; i++) {
        usleep(100 * 1000);
        char *text = etok_read_file(log, NULL);
        const char *at = text ? strstr(text, "listening on http://127.0.0.1:") : NULL;
        *port = at ? atoi(at + strlen("listening on http://127.0.0.1:")) : 0;
        free(text);
        if (*port > 0) return pid;
        if (waitpid(pid, NULL, WNOHANG) == pid) return -1;
    }
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
}

static void test_endpoint_against_serve(void **st) {
    (void)st;
    int port = 0;
    char log[128];
    snprintf(log, sizeof log, "%s/serve.log", dir);
    const char *args[] = {etok_bin(), "serve", "-m", model, "--port", "0", "--meter", "estimate", NULL};
    pid_t srv = spawn_listener(NULL, args, log, &port);
    if (srv < 0) fail_msg("etok serve did not start: %s", etok_read_file(log, NULL));
    char url[64], out[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    snprintf(out, sizeof out, "%s/endpoint", dir);
    const char *extra[] = {"--endpoint", url, "--requests", "8", "--concurrency", "4", "--quality-target", "0.1",
                           "--ttft-slo", "30", "--tpot-slo", "30"};
    int rc = run_bench(out, extra, (int)(sizeof extra / sizeof extra[0]));
    /* the same seed measures the same items in the same order in both modes: warm-up sends its
     * own prompts (never the first measured items, which would then hit a prompt cache) */
    char out_e[128], out_m[128];
    snprintf(out_e, sizeof out_e, "%s/order_endpoint", dir);
    snprintf(out_m, sizeof out_m, "%s/order_engine", dir);
    const char *ex_e[] = {"--endpoint", url, "--requests", "3", "--concurrency", "1", "--seed", "7", "--warmup", "2"};
    const char *ex_m[] = {"--requests", "3", "--concurrency", "1", "--seed", "7", "--warmup", "2"};
    int rc_e = run_bench(out_e, ex_e, (int)(sizeof ex_e / sizeof ex_e[0]));
    int rc_m = run_bench(out_m, ex_m, (int)(sizeof ex_m / sizeof ex_m[0]));
    kill(srv, SIGTERM);
    waitpid(srv, NULL, 0);
    assert_int_equal(rc, 0);
    assert_int_equal(rc_e, 0);
    assert_int_equal(rc_m, 0);
    json_t *re = load_json(out_e, "run.json"), *rm = load_json(out_m, "run.json");
    json_t *qe = json_object_get(re, "requests"), *qm = json_object_get(rm, "requests");
    assert_int_equal((int)json_array_size(qe), 3);
    assert_int_equal((int)json_array_size(qm), 3);
    for (size_t i = 0; i < 3; i++)
        assert_string_equal(json_string_value(json_object_get(json_array_get(qe, i), "id")),
                            json_string_value(json_object_get(json_array_get(qm, i), "id")));
    json_decref(re);
    json_decref(rm);
    json_t *run = load_json(out, "run.json");
    json_t *reqs = json_object_get(run, "requests");
    assert_int_equal((int)json_array_size(reqs), 8);
    for (size_t i = 0; i < json_array_size(reqs); i++) {
        json_t *q = json_array_get(reqs, i);
        assert_true(json_is_true(json_object_get(q, "ok")));
        assert_true(json_integer_value(json_object_get(q, "tokens_out")) > 0);
    }
    json_t *m = json_object_get(run, "metrics");
    assert_true(json_is_number(json_object_get(json_object_get(m, "joules_per_output_token"), "value")));
    assert_true(json_is_number(json_object_get(json_object_get(m, "accuracy"), "value")));
    assert_true(json_is_number(json_object_get(json_object_get(json_object_get(m, "ttft_s"), "p50"), "value")));
    assert_string_equal(json_string_value(json_object_get(m, "phase_split_method")), "none");
    json_decref(run);
}

/* --energy-from: an `etok exporter` on loopback reads a fixture RAPL tree whose package counter
 * a child process advances at exactly 50 W (counter = 50 J per second of its clock); bench reads
 * the exporter at its window edges. The record has "remote" counter traces with the exporter's
 * source and boundary, the local (estimate) traces are kept but not counted, and the reported
 * mean power is the remote node's 50 W. */
static double mono_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static void write_file(const char *path, const char *text) {
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return;
    fputs(text, f);
    fclose(f);
    rename(tmp, path);
}

/* Every thread of process `pid` at real-time priority where allowed (root, as in CI), else
 * nothing: the exporter's sampler then reads the counter when it is due, not after the bench's
 * threads (a late end sample and an on-time start one read as less power: 36.5 W in a CI run). */
static void realtime_threads(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", (int)pid);
    DIR *d = opendir(path);
    if (!d) return;
    const struct sched_param sp = {.sched_priority = 1};
    for (struct dirent *e; (e = readdir(d));)
        if (e->d_name[0] != '.') (void)sched_setscheduler((pid_t)atoi(e->d_name), SCHED_FIFO, &sp);
    closedir(d);
}

static void test_energy_from_exporter(void **st) {
    (void)st;
    char zone[256], p[320], sysroot[128];
    snprintf(sysroot, sizeof sysroot, "%s/sys", dir);
    snprintf(zone, sizeof zone, "%s/class/powercap/intel-rapl:0", sysroot);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s'", zone);
    assert_int_equal(system(cmd), 0);
    snprintf(p, sizeof p, "%s/name", zone);
    write_file(p, "package-0\n");
    snprintf(p, sizeof p, "%s/max_energy_range_uj", zone);
    write_file(p, "262143328850\n");
    snprintf(p, sizeof p, "%s/energy_uj", zone);
    write_file(p, "1000000\n");
    char gap_path[340]; /* the writer's longest gap between counter updates (s) */
    snprintf(gap_path, sizeof gap_path, "%s/writer_gap", dir);
    pid_t writer = fork();
    if (writer == 0) { /* 50 W: the counter follows this process's clock */
        /* a counter this writer has not updated reads as less power (it flaked at 30-35 W with
         * the suite's other tests beside a 2-thread bench on 2 cores): real-time priority where
         * allowed (root, as in CI), else as before */
        struct sched_param sp = {.sched_priority = 1};
        (void)sched_setscheduler(0, SCHED_FIFO, &sp);
        double t0 = mono_now(), last = t0, worst = 0;
        for (;;) {
            char v[64];
            const double now = mono_now();
            snprintf(v, sizeof v, "%.0f\n", 1e6 + 50e6 * (now - t0));
            write_file(p, v);
            if (now - last > worst) { /* the longest the counter went without an update */
                worst = now - last;
                snprintf(v, sizeof v, "%.6f\n", worst);
                write_file(gap_path, v);
            }
            last = now;
            usleep(5000);
        }
    }
    int port = 0;
    char log[128];
    snprintf(log, sizeof log, "%s/exporter.log", dir);
    const char *args[] = {etok_bin(), "exporter", "--port", "0", "--meter", "rapl", "--rate-hz", "100", NULL};
    pid_t exp = spawn_listener(sysroot, args, log, &port);
    if (exp < 0) {
        kill(writer, SIGKILL);
        waitpid(writer, NULL, 0);
        fail_msg("etok exporter did not start: %s", etok_read_file(log, NULL));
    }
    realtime_threads(exp);
    char url[80], out[128];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/metrics", port);
    snprintf(out, sizeof out, "%s/remote", dir);
    const char *extra[] = {"--energy-from", url, "--duration", "2", "--concurrency", "2"};
    int rc = run_bench(out, extra, (int)(sizeof extra / sizeof extra[0]));
    kill(exp, SIGTERM);
    kill(writer, SIGKILL);
    waitpid(exp, NULL, 0);
    waitpid(writer, NULL, 0);
    assert_int_equal(rc, 0);
    json_t *run = load_json(out, "run.json");
    json_t *traces = json_object_get(run, "traces");
    int n_remote = 0, n_local_counted = 0;
    const double w0 = json_number_value(json_object_get(run, "window_start_s")),
                 w1 = json_number_value(json_object_get(run, "window_end_s"));
    double e0 = NAN, e1 = NAN; /* the remote counter (J) at the window's edges */
    for (size_t i = 0; i < json_array_size(traces); i++) {
        json_t *t = json_array_get(traces, i);
        const char *meter = json_string_value(json_object_get(t, "meter"));
        if (meter && !strcmp(meter, "remote")) {
            n_remote++;
            json_t *smp = json_object_get(t, "samples");
            for (size_t k = 0; k < json_array_size(smp); k++) { /* edges are stamped at the edge times */
                const double ts = json_number_value(json_array_get(json_array_get(smp, k), 0)),
                             v = json_number_value(json_array_get(json_array_get(smp, k), 1));
                if (fabs(ts - w0) < 1e-9) e0 = v;
                if (fabs(ts - w1) < 1e-9) e1 = v;
            }
            assert_string_equal(json_string_value(json_object_get(t, "domain")), "rapl/package-0");
            assert_string_equal(json_string_value(json_object_get(t, "source")), "counter");
            assert_true(json_is_true(json_object_get(t, "summable")));
            /* idle start, idle end, window start (after warm-up), window end */
            assert_true(json_array_size(json_object_get(t, "samples")) >= 4);
        } else if (json_is_true(json_object_get(t, "summable"))) {
            n_local_counted++;
        }
    }
    assert_int_equal(n_remote, 1);
    assert_int_equal(n_local_counted, 0);
    json_t *m = json_object_get(run, "metrics");
    json_t *pw = json_object_get(m, "mean_power_w");
    assert_string_equal(json_string_value(json_object_get(pw, "source")), "counter");
    double w = json_number_value(json_object_get(pw, "value"));
    /* etok's mean power is the remote counter's energy over the window: exactly what the
     * exporter's edge readings say. The fixture's counter follows its writer's clock at 50 W,
     * but a writer the scheduler held back leaves it behind (CI read 23.8 W with the suite
     * running beside it): then the counter's own edge-to-edge power is what etok must report,
     * and the 50 W is held only while the writer kept the counter current (it logs its longest
     * gap between updates). */
    if (!isfinite(e0) || !isfinite(e1) || !(w1 > w0)) fail_msg("no remote readings at the window edges");
    const double counter_w = (e1 - e0) / (w1 - w0);
    if (!(fabs(w - counter_w) <= 0.02 * counter_w + 0.01))
        fail_msg("remote mean power %.3f W, the remote counter's edges give %.3f W", w, counter_w);
    char *gap_text = etok_read_file(gap_path, NULL);
    const double gap = gap_text ? atof(gap_text) : 0;
    free(gap_text);
    if (gap <= 0.1) { /* the fixture kept its counter current: 50 W it is (a stale exporter fails here) */
        if (w < 40 || w > 60) fail_msg("remote mean power %.2f W, want 50 W (the writer's longest gap %.3f s)", w, gap);
    } else {
        printf("note: the counter writer went %.3f s without an update: remote mean power %.2f W, its counter's own "
               "%.2f W (not held to 50 W)\n", gap, w, counter_w);
        if (!(w > 1 && w < 60)) fail_msg("remote mean power %.2f W: outside (1, 60) W of a 50 W fixture", w);
    }
    assert_string_equal(json_string_value(json_object_get(json_object_get(run, "config"), "energy_from")), url);
    json_decref(run);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_closed_loop),
        cmocka_unit_test(test_serial_and_open_loop),
        cmocka_unit_test(test_sigint_partial),
        cmocka_unit_test(test_endpoint_against_serve),
        cmocka_unit_test(test_energy_from_exporter),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
