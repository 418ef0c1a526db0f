/* test_dataset.c — the serving workloads of etok bench (src/drive/dataset.c, issue 12): the
 * ShareGPT reader (first human turn, recorded answer length, skipped entries, every malformed
 * field refused with exit 3 naming the file, entry and field), random prompts (lengths in range,
 * deterministic for a seed, different for another, fitted to a tokenizer when one is given),
 * the shared-prefix workload (K prefixes, distinct suffixes), the option parser (vLLM's names,
 * another dataset's option refused) and --goodput. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/dataset.h"

static int parse(const char *json, etok_evalset *s, etok_dataset_summary *sum, const etok_dataset_opts *o,
                 etok_err *err) {
    etok_dataset_opts d = {0};
    etok_dataset_opts_init(&d);
    memset(s, 0, sizeof *s);
    memset(sum, 0, sizeof *sum);
    return etok_dataset_sharegpt_parse(s, json, strlen(json), "sg.json", o ? o : &d, sum, err);
}

static void test_sharegpt_ok(void **st) {
    (void)st;
    const char *j = "[{\"id\": \"a\", \"conversations\": [{\"from\": \"system\", \"value\": \"sys\"},"
                    " {\"from\": \"human\", \"value\": \"Hello there\"}, {\"from\": \"gpt\", \"value\": \"0123456789ab\"},"
                    " {\"from\": \"human\", \"value\": \"second\"}]},"
                    " {\"id\": 7, \"conversations\": [{\"from\": \"human\", \"value\": \"only a question\"}]},"
                    " {\"conversations\": [{\"from\": \"user\", \"value\": \"q\"}, {\"from\": \"assistant\", \"value\": \"a\"}]},"
                    " {\"id\": \"e\", \"conversations\": []}]";
    etok_evalset s;
    etok_dataset_summary sum;
    etok_err err = {0};
    assert_int_equal(parse(j, &s, &sum, NULL, &err), 0);
    assert_int_equal(s.n_items, 2);
    assert_int_equal(sum.n_entries, 4);
    assert_int_equal(sum.n_skipped, 2);
    assert_string_equal(s.items[0].id, "sharegpt:a");
    assert_string_equal(s.items[0].prompt, "Hello there");
    assert_int_equal(s.items[0].max_tokens, 3); /* 12 bytes / 4 */
    assert_true(s.items[0].unscored);
    assert_false(s.items[0].exact_len);
    assert_string_equal(s.items[1].id, "sharegpt:entry-2");
    assert_int_equal(s.items[1].max_tokens, 1);
    etok_evalset_free(&s);

    /* --sharegpt-output-len overrides the recorded length */
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    o.sharegpt_output_len = 64;
    assert_int_equal(parse(j, &s, &sum, &o, &err), 0);
    assert_int_equal(s.items[0].max_tokens, 64);
    assert_int_equal(s.items[1].max_tokens, 64);
    etok_evalset_free(&s);
}

static void test_sharegpt_malformed(void **st) {
    (void)st;
    static const struct {
        const char *json, *want;
    } bad[] = {
        {"{\"conversations\": []}", "expected a JSON array"},
        {"[1]", "entry 0: expected an object"},
        {"[{\"id\": \"x\"}]", "entry 0 (id x): field \"conversations\": missing"},
        {"[{\"id\": \"x\", \"conversations\": {}}]", "field \"conversations\": expected an array"},
        {"[{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": 3}]}]",
         "entry 0 (id x): conversations[0]: field \"value\": expected a string"},
        {"[{\"conversations\": []}, {\"id\": \"y\", \"conversations\": [{\"value\": \"v\"}]}]",
         "entry 1 (id y): conversations[0]: field \"from\": missing"},
        {"[{\"id\": [1], \"conversations\": []}]", "entry 0: field \"id\": expected a string or an integer"},
        {"[{\"id\": \"x\", \"conversations\": [\"hi\"]}]", "conversations[0]: expected an object"},
        {"[{\"id\": \"x\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}]}]", "no usable conversation"},
        {"[{\"id\": \"x\",", "not valid JSON at line 1"},
        {"[{\"id\": \"x\", \"id\": \"y\", \"conversations\": []}]", "not valid JSON"},
        /* an error after a usable entry: the built item is freed, none is left */
        {"[{\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": \"q\"}, {\"from\": \"gpt\", "
         "\"value\": \"a\"}]}, 7]",
         "entry 1: expected an object"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        etok_evalset s;
        etok_dataset_summary sum;
        etok_err err = {0};
        assert_int_equal(parse(bad[i].json, &s, &sum, NULL, &err), -1);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
        if (!strstr(err.msg, bad[i].want) || strncmp(err.msg, "sg.json: ", 9))
            fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, bad[i].want);
        assert_int_equal(s.n_items, 0);
        etok_evalset_free(&s);
    }
}

static void test_sharegpt_file(void **st) {
    (void)st;
    char dir[] = "/tmp/etok_dsXXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/sg.json", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("[{\"id\": \"a\", \"conversations\": [{\"from\": \"human\", \"value\": 5}]}]", f);
    fclose(f);
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    o.kind = ETOK_DATASET_SHAREGPT;
    o.path = path;
    etok_evalset s;
    etok_dataset_summary sum;
    etok_err err = {0};
    assert_int_equal(etok_dataset_build(&s, &o, &sum, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "field \"value\""));
    unlink(path);
    /* a missing file names it, exit 3 */
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_dataset_build(&s, &o, &sum, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, path));
    /* a directory is not a file */
    o.path = dir;
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_dataset_build(&s, &o, &sum, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    rmdir(dir);
}

static int n_words(const char *s) {
    int n = 0, in = 0;
    for (; *s; s++) {
        if (*s != ' ' && !in) n++;
        in = *s != ' ';
    }
    return n;
}

static void build(etok_dataset_opts *o, etok_evalset *s, etok_dataset_summary *sum) {
    etok_err err = {0};
    if (etok_dataset_build(s, o, sum, &err)) fail_msg("%s", err.msg);
}

static void test_random(void **st) {
    (void)st;
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    o.kind = ETOK_DATASET_RANDOM;
    o.num_prompts = 50;
    o.random_input_len = 40;
    o.random_output_len = 10;
    o.random_range_ratio = 0.5;
    o.seed = 7;
    etok_evalset a, b, c;
    etok_dataset_summary sa, sb, sc;
    build(&o, &a, &sa);
    build(&o, &b, &sb);
    o.seed = 8;
    build(&o, &c, &sc);
    assert_int_equal(a.n_items, 50);
    assert_int_equal(sa.n_items, 50);
    assert_true(sa.exact_len);
    int lmin = 1 << 30, lmax = 0, differ = 0;
    for (size_t i = 0; i < a.n_items; i++) {
        int w = n_words(a.items[i].prompt);
        lmin = w < lmin ? w : lmin;
        lmax = w > lmax ? w : lmax;
        assert_true(w >= 20 && w <= 60);
        assert_true(a.items[i].max_tokens >= 5 && a.items[i].max_tokens <= 15);
        assert_true(a.items[i].exact_len && a.items[i].unscored);
        /* the same seed gives the same prompts and lengths */
        assert_string_equal(a.items[i].prompt, b.items[i].prompt);
        assert_int_equal(a.items[i].max_tokens, b.items[i].max_tokens);
        differ += strcmp(a.items[i].prompt, c.items[i].prompt) != 0;
    }
    assert_true(lmax > lmin); /* a range, not one length */
    assert_true(differ > 40); /* another seed, other prompts */
    char ha[32], hb[32], hc[32];
    etok_evalset_hash(&a, ha, sizeof ha);
    etok_evalset_hash(&b, hb, sizeof hb);
    etok_evalset_hash(&c, hc, sizeof hc);
    assert_string_equal(ha, hb);
    assert_string_not_equal(ha, hc);
    etok_evalset_free(&a);
    etok_evalset_free(&b);
    etok_evalset_free(&c);
    /* ratio 0: every length exactly the one asked for */
    o.random_range_ratio = 0;
    build(&o, &a, &sa);
    for (size_t i = 0; i < a.n_items; i++) {
        assert_int_equal(n_words(a.items[i].prompt), 40);
        assert_int_equal(a.items[i].max_tokens, 10);
    }
    assert_true(sa.mean_input_len == 40.0);
    etok_evalset_free(&a);
}

/* A tokenizer stand-in: two tokens a word. */
static int two_per_word(const char *text, void *arg) {
    (*(int *)arg)++;
    return 2 * n_words(text);
}

static void test_random_fitted_to_tokenizer(void **st) {
    (void)st;
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    o.kind = ETOK_DATASET_RANDOM;
    o.num_prompts = 5;
    o.random_input_len = 30;
    int calls = 0;
    o.count_tokens = two_per_word;
    o.count_arg = &calls;
    etok_evalset a;
    etok_dataset_summary sa;
    build(&o, &a, &sa);
    assert_true(calls > 0);
    for (size_t i = 0; i < a.n_items; i++) assert_int_equal(n_words(a.items[i].prompt), 15);
    assert_true(sa.mean_input_len == 30.0);
    assert_string_equal(sa.length_basis, "model tokenizer");
    etok_evalset_free(&a);
}

static void test_prefix_repetition(void **st) {
    (void)st;
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    o.kind = ETOK_DATASET_PREFIX_REPETITION;
    o.num_prompts = 12;
    o.prefix_len = 50;
    o.suffix_len = 5;
    o.num_prefixes = 3;
    o.prefix_output_len = 9;
    etok_evalset a;
    etok_dataset_summary sa;
    build(&o, &a, &sa);
    assert_int_equal(a.n_items, 12);
    /* prompts i and i+3 share the first 50 words and differ after them */
    for (size_t i = 0; i + 3 < a.n_items; i++) {
        const char *p = a.items[i].prompt, *q = a.items[i + 3].prompt;
        assert_int_equal(n_words(p), 55);
        size_t k = 0, words = 0;
        while (p[k] && p[k] == q[k]) words += p[k++] == ' ';
        assert_true(words >= 50);
        assert_string_not_equal(p, q);
        assert_int_equal(a.items[i].max_tokens, 9);
        assert_true(a.items[i].exact_len);
    }
    /* and prefixes of different groups differ from the start */
    assert_true(strncmp(a.items[0].prompt, a.items[1].prompt, 40) != 0);
    assert_true(sa.mean_input_len == 55.0);
    etok_evalset_free(&a);
}

static void test_options(void **st) {
    (void)st;
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    etok_err err = {0};
    assert_int_equal(o.random_input_len, 1024);
    assert_int_equal(o.prefix_len, 256);
    assert_int_equal(etok_dataset_opt(&o, "dataset-name", "shared-prefix", &err), 0);
    assert_int_equal(o.kind, ETOK_DATASET_PREFIX_REPETITION);
    assert_int_equal(etok_dataset_opt(&o, "prefix-repetition-num-prefixes", "4", &err), 0);
    assert_int_equal(o.num_prefixes, 4);
    assert_int_equal(etok_dataset_opts_check(&o, &err), 0);
    assert_int_equal(etok_dataset_opt(&o, "random-input-len", "12x", &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "--random-input-len"));
    assert_int_equal(etok_dataset_opt(&o, "random-range-ratio", "1", &err), -1);
    assert_int_equal(etok_dataset_opt(&o, "dataset-name", "sonnet", &err), -1);
    assert_non_null(strstr(err.msg, "unknown dataset 'sonnet'"));
    assert_int_equal(etok_dataset_opt(&o, "random-output-len", "8", &err), 0);
    assert_int_equal(etok_dataset_opts_check(&o, &err), -1); /* a random option with prefix_repetition */
    assert_non_null(strstr(err.msg, "--random-* applies to --dataset-name random"));
    etok_dataset_opts_init(&o);
    assert_int_equal(etok_dataset_opt(&o, "dataset-name", "sharegpt", &err), 0);
    assert_int_equal(etok_dataset_opts_check(&o, &err), -1);
    assert_non_null(strstr(err.msg, "--dataset-path"));

    double ttft = 2, tpot = 0.25;
    assert_int_equal(etok_goodput_parse("ttft:500", &ttft, &tpot, &err), 0);
    assert_int_equal(etok_goodput_parse("tpot:40", &ttft, &tpot, &err), 0);
    assert_true(ttft == 0.5 && tpot == 0.04);
    assert_int_equal(etok_goodput_parse("e2el:1000", &ttft, &tpot, &err), -1);
    assert_non_null(strstr(err.msg, "e2el"));
    assert_int_equal(etok_goodput_parse("ttft=5", &ttft, &tpot, &err), -1);
    assert_int_equal(etok_goodput_parse("ttft:-1", &ttft, &tpot, &err), -1);
    assert_int_equal(etok_goodput_parse("itl:5", &ttft, &tpot, &err), -1);
}

static void test_config(void **st) {
    (void)st;
    etok_dataset_summary s = {.kind = ETOK_DATASET_RANDOM, .n_items = 3, .exact_len = 1, .mean_input_len = 20,
                              .mean_output_len = 5};
    snprintf(s.length_basis, sizeof s.length_basis, "model tokenizer");
    etok_dataset_lengths l = {.checked = 3, .exact = 2, .shorter = 1};
    char *cfg = strdup("{\"seed\": 1}");
    assert_int_equal(etok_dataset_to_config(&cfg, &s, NULL, &l), 0);
    assert_non_null(strstr(cfg, "\"seed\":1"));
    assert_non_null(strstr(cfg, "\"name\":\"random\""));
    assert_non_null(strstr(cfg, "\"length_honoured\":{\"checked\":3,\"exact\":2,\"shorter\":1,\"longer\":0}"));
    assert_non_null(strstr(cfg, "not measured"));
    free(cfg);
    cfg = strdup("[1]");
    assert_int_equal(etok_dataset_to_config(&cfg, &s, NULL, &l), -1);
    free(cfg);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sharegpt_ok),       cmocka_unit_test(test_sharegpt_malformed),
        cmocka_unit_test(test_sharegpt_file),     cmocka_unit_test(test_random),
        cmocka_unit_test(test_random_fitted_to_tokenizer), cmocka_unit_test(test_prefix_repetition),
        cmocka_unit_test(test_options),           cmocka_unit_test(test_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
