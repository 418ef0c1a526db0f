/* test_evalset.c — eval set loading (errors name file:line) and each answer check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etok/evalset.h"

static void parse_ok(etok_evalset *s, const char *text) {
    etok_err err = {0};
    int rc = etok_evalset_parse(s, text, "t.jsonl", &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
}

static void parse_err(const char *text, const char *want) {
    etok_evalset s;
    etok_err err = {0};
    assert_int_equal(etok_evalset_parse(&s, text, "t.jsonl", &err), -1);
    assert_int_equal(err.exit_code, 3);
    if (!strstr(err.msg, want)) fail_msg("error '%s' lacks '%s'", err.msg, want);
    assert_int_equal(s.n_items, 0);
}

static void test_load_all_kinds(void **st) {
    (void)st;
    etok_evalset s;
    parse_ok(&s, "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"Paris\",\"check\":\"contains\"}\n"
                 "\n"
                 "{\"id\":\"b\",\"prompt\":\"p\",\"answer\":42,\"check\":\"number\",\"tolerance\":0.5}\n"
                 "{\"id\":\"c\",\"prompt\":\"p\",\"answer\":\"no\",\"check\":\"choice\",\"choices\":[\"yes\",\"no\"]}\n"
                 "{\"id\":\"d\",\"prompt\":\"p\",\"answer\":\"^x+$\",\"check\":\"regex\",\"notes\":\"extra ok\"}\n"
                 "{\"id\":\"e\",\"prompt\":\"p\",\"answer\":\"yes\",\"check\":\"exact\"}");
    assert_int_equal(s.n_items, 5);
    assert_int_equal(s.items[1].check, ETOK_CHECK_NUMBER);
    assert_int_equal(s.items[1].line, 3);
    assert_true(s.items[1].tolerance == 0.5);
    assert_int_equal(s.items[2].n_choices, 2);
    assert_true(s.items[3].case_sensitive);
    assert_false(s.items[0].case_sensitive);
    etok_evalset_free(&s);
}

static void test_errors_name_line(void **st) {
    (void)st;
    const char *good = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"x\",\"check\":\"contains\"}\n";
    char buf[512];
    snprintf(buf, sizeof buf, "%s{\"id\":\"z\",\"prompt\":\"p\",\"answer\":\"x\",\"check\":\"exact\"}\n{not json\n", good);
    parse_err(buf, "t.jsonl:3: malformed JSON");
    snprintf(buf, sizeof buf, "%s{\"id\":\"b\",\"prompt\":\"p\",\"answer\":\"x\"}\n", good);
    parse_err(buf, "t.jsonl:2: missing field \"check\"");
    snprintf(buf, sizeof buf, "%s{\"id\":\"b\",\"prompt\":\"p\",\"answer\":\"x\",\"check\":\"fuzzy\"}\n", good);
    parse_err(buf, "t.jsonl:2: item \"b\": unknown check \"fuzzy\"");
    snprintf(buf, sizeof buf, "%s%s", good, good);
    parse_err(buf, "t.jsonl:2: duplicate id \"a\"");
    parse_err("{\"id\":\"n\",\"prompt\":\"p\",\"answer\":\"seven\",\"check\":\"number\"}", "t.jsonl:1: item \"n\": number check needs a numeric answer");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"(a\",\"check\":\"regex\"}", "bad regular expression");
    parse_err("{\"id\":\"c\",\"prompt\":\"p\",\"answer\":\"maybe\",\"check\":\"choice\",\"choices\":[\"yes\",\"no\"]}",
              "answer \"maybe\" is not one of the choices");
    parse_err("[1,2]", "t.jsonl:1: an item must be a JSON object");
    parse_err("{\"id\":\"a\",\"prompt\":\"\",\"answer\":\"x\",\"check\":\"exact\"}", "field \"prompt\" is empty");
    parse_err("\n\n", "no eval items");
}

static void test_missing_file(void **st) {
    (void)st;
    etok_evalset s;
    etok_err err = {0};
    assert_int_equal(etok_evalset_load(&s, "/nonexistent/x.jsonl", &err), -1);
    assert_int_equal(err.exit_code, 3);
    assert_non_null(strstr(err.msg, "/nonexistent/x.jsonl"));
}

static int check(const char *line, const char *out) {
    etok_evalset s;
    parse_ok(&s, line);
    int r = etok_eval_check(&s.items[0], out);
    etok_evalset_free(&s);
    return r;
}

static void test_checks(void **st) {
    (void)st;
    const char *ex = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"yes\",\"check\":\"exact\"}";
    assert_true(check(ex, "  Yes.\n"));
    assert_true(check(ex, "\"yes\""));
    assert_false(check(ex, "yes sir"));
    assert_false(check(ex, NULL));
    const char *exs = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"yes\",\"check\":\"exact\",\"case_sensitive\":true}";
    assert_false(check(exs, "Yes"));

    const char *co = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"Paris\",\"check\":\"contains\"}";
    assert_true(check(co, "The capital is paris."));
    assert_false(check(co, "Lyon"));

    const char *re = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"\\\\<CAT\\\\>\",\"check\":\"regex\"}";
    assert_true(check(re, "Here: CAT."));
    assert_false(check(re, "here: cat"));   /* regex is case-sensitive by default */
    assert_false(check(re, "CATS"));
    const char *rei = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"c,? *b\",\"check\":\"regex\",\"icase\":true}";
    assert_true(check(rei, "C, B, A"));

    const char *nu = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"42\",\"check\":\"number\"}";
    assert_true(check(nu, "6 * 7 = 42"));
    assert_true(check(nu, "The answer is 42."));
    assert_false(check(nu, "6 * 7 = 43, not 42"));
    assert_false(check(nu, "forty-two"));
    assert_false(check(nu, "4.2"));
    const char *nt = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"299792\",\"check\":\"number\",\"tolerance\":1000}";
    assert_true(check(nt, "about 299,792 km/s"));
    assert_true(check(nt, "300000"));
    assert_false(check(nt, "299,792,458 m/s"));
    const char *neg = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"-3.5\",\"check\":\"number\"}";
    assert_true(check(neg, "x = -3.5"));
    assert_false(check(neg, "x = 3.5"));

    const char *ch = "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"apple\",\"check\":\"choice\","
                     "\"choices\":[\"apple\",\"car\"]}";
    assert_true(check(ch, "The answer is Apple, not a car."));
    assert_false(check(ch, "A car, not an apple."));
    assert_false(check(ch, "carpet? pineapple!")); /* whole words only */
    assert_false(check(ch, "none"));
}

static void test_number_extraction(void **st) {
    (void)st;
    double v;
    assert_int_equal(etok_eval_extract_number("no digits", &v), 0);
    assert_int_equal(etok_eval_extract_number("12 + 30 = 42", &v), 1);
    assert_true(v == 42);
    assert_int_equal(etok_eval_extract_number("1,000,000 people", &v), 1);
    assert_true(v == 1000000);
    assert_int_equal(etok_eval_extract_number("1, 2, 3", &v), 1);
    assert_true(v == 1);
    assert_int_equal(etok_eval_extract_number("pi is 3.14159", &v), 1);
    assert_true(v > 3.14158 && v < 3.1416);
}

/* The shipped sets load without error and have the documented sizes. */
static void test_shipped_sets(void **st) {
    (void)st;
    etok_evalset s;
    etok_err err = {0};
    assert_int_equal(etok_evalset_load(&s, ETOK_SOURCE_DIR "/data/evals/default.jsonl", &err), 0);
    assert_true(s.n_items >= 50);
    etok_evalset_free(&s);
    assert_int_equal(etok_evalset_load(&s, ETOK_SOURCE_DIR "/data/evals/hard.jsonl", &err), 0);
    assert_true(s.n_items >= 20);
    etok_evalset_free(&s);
}

/* Found by fuzz_evalset: glibc's regcomp copies a repeated sub-expression per repetition, so a
 * regex answer with stacked repetitions ("1+++...+") took gigabytes, "a++++*+++++++" seconds,
 * before it returned. Costly
 * patterns are refused at load with the line named; ordinary ones still load and match. */
static void test_regex_cost_bounded(void **st) {
    (void)st;
    char pat[128], line[256];
    memset(pat, '+', sizeof pat);
    pat[0] = '1';
    pat[60] = '\0';
    snprintf(line, sizeof line, "{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"%s\",\"check\":\"regex\"}", pat);
    parse_err(line, "t.jsonl:1: item \"r\": regular expression refused: a repetition operator right after another");
    /* and one that took seconds to compile: stacked stars and pluses, nested plus over a star */
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"a++++*+++++++\",\"check\":\"regex\"}", "right after another");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"(((((((((a*)+)+)+)+)+)+)+)+)+\",\"check\":\"regex\"}",
              "too many repetitions");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"((a{99}){99}){99}\",\"check\":\"regex\"}", "too many repetitions");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"((((((((((((a+)+)+)+)+)+)+)+)+)+)+)+)+\",\"check\":\"regex\"}",
              "too many repetitions");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"a{256}\",\"check\":\"regex\"}", "over 255");
    /* found by fuzz_evalset (2.7 M executions in): glibc reads "{,n}" as "{0,n}", which the
     * bound check skipped, so "x{,6667}{6,6}" passed and regcomp took over 2 GB */
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"fuzz{6,6}76uzz{,6667}{6,6}T\",\"check\":\"regex\"}", "over 255");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"a{,9}{,9}\",\"check\":\"regex\"}", "right after another");
    parse_err("{\"id\":\"r\",\"prompt\":\"p\",\"answer\":\"(a*)*\\\\1\",\"check\":\"regex\"}", "back-references");
    etok_evalset s;
    parse_ok(&s, "{\"id\":\"a\",\"prompt\":\"p\",\"answer\":\"1[^0-9]+2[^0-9]+3[^0-9]+4[^0-9]+5\",\"check\":\"regex\"}\n"
                 "{\"id\":\"b\",\"prompt\":\"p\",\"answer\":\"c,?[[:space:]]*b,?[[:space:]]*(and[[:space:]]*)?a\",\"check\":\"regex\"}\n"
                 "{\"id\":\"c\",\"prompt\":\"p\",\"answer\":\"^[0-9]{1,3}(,[0-9]{3})*$\",\"check\":\"regex\"}\n"
                 "{\"id\":\"d\",\"prompt\":\"p\",\"answer\":\"[]a{]+x\\\\+{2}\",\"check\":\"regex\"}");
    assert_int_equal(s.n_items, 4);
    assert_true(etok_eval_check(&s.items[0], "1, 2, 3, 4, 5"));
    assert_true(etok_eval_check(&s.items[1], "c, b and a"));
    assert_true(etok_eval_check(&s.items[2], "12,345"));
    assert_false(etok_eval_check(&s.items[2], "12,34"));
    assert_true(etok_eval_check(&s.items[3], "a{x++"));
    etok_evalset_free(&s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_all_kinds), cmocka_unit_test(test_errors_name_line),
        cmocka_unit_test(test_missing_file),   cmocka_unit_test(test_checks),
        cmocka_unit_test(test_number_extraction), cmocka_unit_test(test_shipped_sets),
        cmocka_unit_test(test_regex_cost_bounded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
