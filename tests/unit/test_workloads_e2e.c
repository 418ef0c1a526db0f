/* test_workloads_e2e.c — `etok bench --dataset-name` on the built-in engine, end to end on a
 * tiny synthetic GGUF (fast): random and prefix_repetition ask for exact lengths and the
 * engine gives them (ignore_eos: every request's tokens_out is its budget, length_honoured
 * all exact); sharegpt sends the first human turn with the recorded answer's length (in the
 * model's tokens) as budget; every serving dataset's record says quality is not measured
 * (no answer checked, no q*) and the report says so; a malformed ShareGPT file is exit 3
 * naming the field before anything runs. Runs the real binary ($ETOK_BIN). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "synth_gguf.h"

static char dir[64], model[128], prof[128], sg[128], badsg[128];

static const char *etok_bin(void) {
    const char *b = getenv("ETOK_BIN");
    return b ? b : "./build/etok";
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int setup(void **st) {
    (void)st;
    snprintf(dir, sizeof dir, "/tmp/etok-workloads-XXXXXX");
    if (!mkdtemp(dir)) return -1;
    snprintf(model, sizeof model, "%s/tiny.gguf", dir);
    snprintf(prof, sizeof prof, "%s/profile.json", dir);
    snprintf(sg, sizeof sg, "%s/sg.json", dir);
    snprintf(badsg, sizeof badsg, "%s/bad.json", dir);
    if (etok_test_write_tiny_gguf(model, NULL)) return -1;
    if (write_text(prof, "{\"peak_flops\": 2e11, \"mem_bw_bps\": 2e10, \"power_limit_w\": 50, \"source\": \"probe\", "
                         "\"name\": \"test\"}\n"))
        return -1;
    /* written for etok: two usable conversations, one without an answer (skipped) */
    if (write_text(sg, "[{\"id\": \"q1\", \"conversations\": [{\"from\": \"human\", \"value\": \"Name a colour.\"},"
                       " {\"from\": \"gpt\", \"value\": \"Blue is a colour.\"}]},"
                       " {\"id\": \"q2\", \"conversations\": [{\"from\": \"human\", \"value\": \"Count to three.\"},"
                       " {\"from\": \"gpt\", \"value\": \"one two three\"}]},"
                       " {\"id\": \"q3\", \"conversations\": [{\"from\": \"human\", \"value\": \"alone\"}]}]\n"))
        return -1;
    if (write_text(badsg, "[{\"id\": \"q1\", \"conversations\": [{\"from\": \"human\", \"value\": 12}]}]\n")) return -1;
    return 0;
}

static int teardown(void **st) {
    (void)st;
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static int run_bench(const char *out, const char *const *extra, int n_extra) {
    const char *base[] = {etok_bin(), "bench", "-m", model, "--profile", prof, "--meter", "estimate", "--idle", "0",
                          "--warmup", "1", "--threads", "1", "-q", "-o", out};
    size_t nb = sizeof base / sizeof base[0];
    char **argv = calloc(nb + (size_t)n_extra + 1, sizeof *argv);
    for (size_t i = 0; i < nb; i++) argv[i] = (char *)base[i];
    for (int i = 0; i < n_extra; i++) argv[nb + (size_t)i] = (char *)extra[i];
    char errp[256];
    snprintf(errp, sizeof errp, "%s.err", out);
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", O_WRONLY), ef = open(errp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (null >= 0) dup2(null, 1);
        if (ef >= 0) dup2(ef, 2);
        execv(argv[0], argv);
        _exit(127);
    }
    free(argv);
    int status = 0;
    waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static json_t *load_run(const char *out) {
    char p[256];
    snprintf(p, sizeof p, "%s/run.json", out);
    json_error_t je;
    json_t *j = json_load_file(p, 0, &je);
    if (!j) fail_msg("%s: %s", p, je.text);
    return j;
}

static char *slurp(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) return NULL;
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return buf;
}

/* Every serving dataset: no answer checked, no q*, the record and the report say so. */
static void check_unscored(json_t *run, const char *out, const char *name) {
    json_t *m = json_object_get(run, "metrics");
    json_t *acc = json_object_get(m, "accuracy");
    assert_true(json_is_null(json_object_get(acc, "value")) || !json_object_get(acc, "value"));
    assert_non_null(strstr(json_string_value(json_object_get(acc, "note")), "quality not measured"));
    json_t *rq = json_object_get(run, "requests");
    for (size_t i = 0; i < json_array_size(rq); i++)
        assert_false(json_is_true(json_object_get(json_array_get(rq, i), "quality_checked")));
    json_t *d = json_object_get(json_object_get(run, "config"), "dataset");
    assert_string_equal(json_string_value(json_object_get(d, "name")), name);
    assert_string_equal(json_string_value(json_object_get(d, "length_basis")), "model tokenizer");
    char p[256];
    snprintf(p, sizeof p, "%s/report.md", out);
    const char *md = slurp(p);
    assert_non_null(md);
    assert_non_null(strstr(md, "q* gate: none"));
    assert_non_null(strstr(md, "quality not measured (no reference answers)"));
}

/* Requests with an exact length got it: tokens_out = the item's budget. */
static void check_exact(json_t *run, int want_requests) {
    json_t *d = json_object_get(json_object_get(run, "config"), "dataset");
    json_t *h = json_object_get(d, "length_honoured");
    assert_non_null(h);
    assert_int_equal(json_integer_value(json_object_get(h, "checked")), want_requests);
    assert_int_equal(json_integer_value(json_object_get(h, "exact")), want_requests);
    json_t *rq = json_object_get(run, "requests");
    assert_int_equal(json_array_size(rq), want_requests);
}

static void test_random_engine(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/random", dir);
    const char *a[] = {"--dataset-name", "random", "--random-input-len", "24", "--random-output-len", "7",
                       "--random-range-ratio", "0.25", "--num-prompts", "4", "--seed", "3"};
    int rc = run_bench(out, a, 12);
    if (rc) fail_msg("exit %d: %s", rc, slurp(strcat(strcpy((char[160]){0}, out), ".err")));
    json_t *run = load_run(out);
    check_unscored(run, out, "random");
    check_exact(run, 4);
    json_t *rq = json_object_get(run, "requests");
    for (size_t i = 0; i < json_array_size(rq); i++) {
        json_int_t n = json_integer_value(json_object_get(json_array_get(rq, i), "tokens_out"));
        assert_true(n >= 5 && n <= 9); /* 7 * (1 -+ 0.25), rounded outwards */
    }
    json_decref(run);
}

static void test_prefix_engine(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/prefix", dir);
    const char *a[] = {"--dataset-name", "shared-prefix", "--prefix-repetition-prefix-len", "40",
                       "--prefix-repetition-suffix-len", "6", "--prefix-repetition-num-prefixes", "2",
                       "--prefix-repetition-output-len", "5", "--requests", "4", "--concurrency", "2"};
    int rc = run_bench(out, a, 14);
    if (rc) fail_msg("exit %d: %s", rc, slurp(strcat(strcpy((char[160]){0}, out), ".err")));
    json_t *run = load_run(out);
    check_unscored(run, out, "prefix_repetition");
    check_exact(run, 4);
    json_t *rq = json_object_get(run, "requests");
    for (size_t i = 0; i < json_array_size(rq); i++) {
        json_t *q = json_array_get(rq, i);
        assert_int_equal(json_integer_value(json_object_get(q, "tokens_out")), 5);
        assert_non_null(strstr(json_string_value(json_object_get(q, "id")), "prefix"));
    }
    json_decref(run);
}

static void test_sharegpt_engine(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/sharegpt", dir);
    const char *a[] = {"--dataset-name", "sharegpt", "--dataset-path", sg};
    int rc = run_bench(out, a, 4);
    if (rc) fail_msg("exit %d: %s", rc, slurp(strcat(strcpy((char[160]){0}, out), ".err")));
    json_t *run = load_run(out);
    check_unscored(run, out, "sharegpt");
    json_t *d = json_object_get(json_object_get(run, "config"), "dataset");
    assert_int_equal(json_integer_value(json_object_get(d, "items")), 2);
    assert_int_equal(json_integer_value(json_object_get(d, "entries")), 3);
    assert_int_equal(json_integer_value(json_object_get(d, "skipped_no_answer")), 1);
    assert_null(json_object_get(d, "length_honoured")); /* natural answers: no exact length asked */
    json_t *rq = json_object_get(run, "requests");
    assert_int_equal(json_array_size(rq), 2); /* one request per usable conversation by default */
    for (size_t i = 0; i < json_array_size(rq); i++) {
        json_t *q = json_array_get(rq, i);
        const char *id = json_string_value(json_object_get(q, "id"));
        assert_true(!strncmp(id, "sharegpt:q1#", 12) || !strncmp(id, "sharegpt:q2#", 12));
        /* the budget is the recorded answer's length in the model's tokens (byte-level: > 5) */
        json_int_t n = json_integer_value(json_object_get(q, "tokens_out"));
        assert_true(n >= 1 && n <= 20);
    }
    json_decref(run);
}

static void test_errors(void **st) {
    (void)st;
    char out[128];
    snprintf(out, sizeof out, "%s/bad", dir);
    const char *a[] = {"--dataset-name", "sharegpt", "--dataset-path", badsg};
    assert_int_equal(run_bench(out, a, 4), 3);
    const char *e = slurp(strcat(strcpy((char[160]){0}, out), ".err"));
    assert_non_null(strstr(e, badsg));
    assert_non_null(strstr(e, "conversations[0]: field \"value\": expected a string"));
    char rj[160];
    snprintf(rj, sizeof rj, "%s/run.json", out);
    assert_int_not_equal(access(rj, F_OK), 0); /* nothing measured or written */
    const char *b[] = {"--dataset-name", "random", "--quality-target", "0.5"};
    assert_int_equal(run_bench(out, b, 4), 2);
    assert_non_null(strstr(slurp(strcat(strcpy((char[160]){0}, out), ".err")), "no reference answers"));
    const char *c[] = {"--dataset-name", "sharegpt", "--random-input-len", "5", "--dataset-path", sg};
    assert_int_equal(run_bench(out, c, 6), 2);
    const char *g[] = {"--goodput", "e2el:100"};
    assert_int_equal(run_bench(out, g, 2), 2);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_engine),   cmocka_unit_test(test_prefix_engine),
        cmocka_unit_test(test_sharegpt_engine), cmocka_unit_test(test_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
