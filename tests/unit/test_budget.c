/* test_budget.c — output budget policies (etok/budget.h: --budget parsing, per-item assignment,
 * the adaptive table, the record entry), the eval items' stop/difficulty/budget fields
 * (evalset.c) and the incremental stop-string search bench and serve share (util/stopseq.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "etok/budget.h"
#include "etok/evalset.h"
#include "etok/stopseq.h"

#define ITEM(id, extra) "{\"id\":\"" id "\",\"prompt\":\"p\",\"answer\":\"x\",\"check\":\"contains\"" extra "}\n"

static void parse_ok(etok_evalset *s, const char *text) {
    etok_err err = {0};
    int rc = etok_evalset_parse(s, text, "t.jsonl", &err);
    if (rc) fail_msg("%s", err.msg);
}

static void parse_err(const char *text, const char *want) {
    etok_evalset s;
    etok_err err = {0};
    assert_int_equal(etok_evalset_parse(&s, text, "t.jsonl", &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    if (!strstr(err.msg, want)) fail_msg("error '%s' lacks '%s'", err.msg, want);
    assert_int_equal(s.n_items, 0);
}

static void test_policy_parse(void **st) {
    (void)st;
    etok_budget_policy p;
    etok_err e = {0};
    char name[96];
    assert_int_equal(etok_budget_parse("fixed:48", &p, &e), 0);
    assert_int_equal(p.kind, ETOK_BUDGET_FIXED);
    assert_int_equal(p.fixed, 48);
    etok_budget_name(&p, name, sizeof name);
    assert_string_equal(name, "fixed:48");
    assert_int_equal(etok_budget_parse("by-field:budget", &p, &e), 0);
    assert_int_equal(p.kind, ETOK_BUDGET_BY_FIELD);
    assert_string_equal(p.field, "budget");
    etok_budget_name(&p, name, sizeof name);
    assert_string_equal(name, "by-field:budget");
    assert_int_equal(etok_budget_parse("adaptive", &p, &e), 0);
    assert_int_equal(p.kind, ETOK_BUDGET_ADAPTIVE);
    etok_budget_name(&p, name, sizeof name);
    assert_string_equal(name, "adaptive");
    static const char *const bad[] = {"", "fixed", "fixed:", "fixed:0", "fixed:8193", "fixed:1.5", "fixed:12x",
                                      "fixed:-3", "by-field:", "by-field:a b", "by-field:\xc3\xa9", "Adaptive",
                                      "adaptive:2", "auto", NULL};
    for (int i = 0; bad[i]; i++) {
        memset(&e, 0, sizeof e);
        if (etok_budget_parse(bad[i], &p, &e) != -1) fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(e.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(e.msg, "--budget"));
    }
    char longf[80];
    memset(longf, 'f', sizeof longf);
    memcpy(longf, "by-field:", 9);
    longf[sizeof longf - 1] = 0; /* a 70-character field name: over 63 */
    assert_int_equal(etok_budget_parse(longf, &p, &e), -1);
    assert_int_equal(etok_budget_parse(NULL, &p, &e), -1);
}

static void test_assign(void **st) {
    (void)st;
    etok_evalset s;
    parse_ok(&s, ITEM("e", ",\"difficulty\":\"easy\",\"budget\":7") ITEM("m", ",\"difficulty\":\"medium\"")
                     ITEM("h", ",\"difficulty\":\"hard\",\"maxlen\":100") ITEM("n", ""));
    int out[4], nf = -1;
    etok_budget_policy p;
    etok_err e = {0};

    assert_int_equal(etok_budget_parse("fixed:12", &p, &e), 0);
    assert_int_equal(etok_budget_assign(&p, &s, 32, out, &nf, &e), 0);
    for (int i = 0; i < 4; i++) assert_int_equal(out[i], 12);
    assert_int_equal(nf, 0);

    assert_int_equal(etok_budget_parse("adaptive", &p, &e), 0);
    assert_int_equal(etok_budget_assign(&p, &s, 32, out, &nf, &e), 0);
    assert_int_equal(out[0], 16); /* easy 0.5x */
    assert_int_equal(out[1], 32); /* medium 1x */
    assert_int_equal(out[2], 64); /* hard 2x */
    assert_int_equal(out[3], 32); /* none: the fallback */
    assert_int_equal(nf, 1);
    assert_int_equal(etok_budget_assign(&p, &s, 5, out, &nf, &e), 0);
    assert_int_equal(out[0], 3); /* 2.5 rounds to 3 */
    assert_int_equal(out[2], 10);
    assert_int_equal(etok_budget_assign(&p, &s, 1, out, NULL, &e), 0);
    assert_int_equal(out[0], 1); /* at least 1 */
    assert_int_equal(etok_budget_assign(&p, &s, 8192, out, NULL, &e), 0);
    assert_int_equal(out[2], ETOK_BUDGET_MAX_TOKENS); /* at most 8192 */
    assert_true(etok_budget_adaptive_factor(0) == 1.0 && etok_budget_adaptive_factor(4) == 1.0);

    assert_int_equal(etok_budget_parse("by-field:budget", &p, &e), 0);
    assert_int_equal(etok_budget_assign(&p, &s, 32, out, &nf, &e), 0);
    assert_int_equal(out[0], 7);
    assert_int_equal(out[1], 32);
    assert_int_equal(out[3], 32);
    assert_int_equal(nf, 3);
    assert_int_equal(etok_budget_parse("by-field:maxlen", &p, &e), 0); /* any numeric field */
    assert_int_equal(etok_budget_assign(&p, &s, 20, out, &nf, &e), 0);
    assert_int_equal(out[2], 100);
    assert_int_equal(out[0], 20);
    assert_int_equal(nf, 3);
    assert_int_equal(etok_budget_parse("by-field:tolerance", &p, &e), 0); /* a check's field, not kept */
    assert_int_equal(etok_budget_assign(&p, &s, 20, out, &nf, &e), 0);
    assert_int_equal(nf, 4);
    etok_evalset_free(&s);

    /* a by-field value that is no budget: bad input naming file:line, item and field */
    static const char *const badv[] = {ITEM("a", ",\"n\":0"), ITEM("a", ",\"n\":2.5"), ITEM("a", ",\"n\":9000"),
                                       ITEM("a", ",\"n\":-4"), NULL};
    for (int i = 0; badv[i]; i++) {
        parse_ok(&s, badv[i]);
        assert_int_equal(etok_budget_parse("by-field:n", &p, &e), 0);
        memset(&e, 0, sizeof e);
        assert_int_equal(etok_budget_assign(&p, &s, 32, out, &nf, &e), -1);
        assert_int_equal(e.exit_code, ETOK_EXIT_INPUT);
        if (!strstr(e.msg, "t.jsonl:1: item \"a\": \"n\"")) fail_msg("%s", e.msg);
        etok_evalset_free(&s);
    }
}

static void test_config(void **st) {
    (void)st;
    etok_evalset s;
    parse_ok(&s, ITEM("e", ",\"difficulty\":\"easy\",\"stop\":\"\\n\"") ITEM("h", ",\"difficulty\":\"hard\"")
                     ITEM("n", ""));
    etok_budget_policy p;
    etok_err e = {0};
    int out[3], nf;
    assert_int_equal(etok_budget_parse("adaptive", &p, &e), 0);
    assert_int_equal(etok_budget_assign(&p, &s, 32, out, &nf, &e), 0);
    json_t *cfg = json_object();
    assert_int_equal(etok_budget_to_config(cfg, &p, &s, out, 32, nf), 0);
    json_t *b = json_object_get(cfg, "budget");
    assert_non_null(b);
    assert_string_equal(json_string_value(json_object_get(b, "policy")), "adaptive");
    assert_int_equal(json_integer_value(json_object_get(b, "fallback_max_tokens")), 32);
    assert_int_equal(json_integer_value(json_object_get(b, "fallback_items")), 1);
    assert_true(json_real_value(json_object_get(b, "mean_max_tokens")) > 37.33 &&
                json_real_value(json_object_get(b, "mean_max_tokens")) < 37.34); /* (16+64+32)/3 */
    json_t *by = json_object_get(b, "max_tokens_by_item");
    assert_int_equal(json_integer_value(json_object_get(by, "e")), 16);
    assert_int_equal(json_integer_value(json_object_get(by, "h")), 64);
    assert_int_equal(json_integer_value(json_object_get(by, "n")), 32);
    assert_int_equal(json_integer_value(json_object_get(cfg, "stop_items")), 1);
    json_decref(cfg);
    cfg = json_object(); /* no --budget: only the stop count */
    assert_int_equal(etok_budget_to_config(cfg, NULL, &s, NULL, 32, 0), 0);
    assert_null(json_object_get(cfg, "budget"));
    assert_int_equal(json_integer_value(json_object_get(cfg, "stop_items")), 1);
    json_decref(cfg);
    etok_evalset_free(&s);
}

static void test_item_fields(void **st) {
    (void)st;
    etok_evalset s;
    parse_ok(&s, ITEM("a", ",\"stop\":\"END\",\"difficulty\":\"hard\"") ITEM("b", ",\"stop\":[\"\\n\\n\",\"Q:\",\"###\",\"x\"]")
                     ITEM("c", ",\"stop\":null,\"budget\":64"));
    assert_int_equal(s.items[0].n_stop, 1);
    assert_string_equal(s.items[0].stop[0], "END");
    assert_int_equal(s.items[0].stop_max_len, 3);
    assert_int_equal(s.items[0].difficulty, 3);
    assert_string_equal(etok_difficulty_name(s.items[0].difficulty), "hard");
    assert_int_equal(s.items[1].n_stop, 4);
    assert_string_equal(s.items[1].stop[0], "\n\n");
    assert_int_equal(s.items[1].stop_max_len, 3);
    assert_int_equal(s.items[2].n_stop, 0);
    double v = 0;
    assert_int_equal(etok_eval_item_number(&s.items[2], "budget", &v), 1);
    assert_true(v == 64);
    assert_int_equal(etok_eval_item_number(&s.items[0], "budget", &v), 0);
    assert_string_equal(etok_difficulty_name(0), "");
    etok_evalset_free(&s);

    parse_err(ITEM("a", ",\"stop\":\"\""), "t.jsonl:1: item \"a\": \"stop\": stop strings must not be empty");
    parse_err(ITEM("a", ",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]"), "array of up to 4 strings");
    parse_err(ITEM("a", ",\"stop\":[\"a\",3]"), "stop[1] must be a string");
    parse_err(ITEM("a", ",\"stop\":7"), "\"stop\" must be a string");
    parse_err(ITEM("a", ",\"stop\":\"a\\u0000b\""), "NUL");
    parse_err(ITEM("a", ",\"difficulty\":\"extreme\""), "\"difficulty\" must be \"easy\", \"medium\" or \"hard\"");
    parse_err(ITEM("a", ",\"difficulty\":2"), "\"difficulty\" must be");
    parse_err(ITEM("a", ",\"budget\":0"), "\"budget\" must be an integer 1..8192");
    parse_err(ITEM("a", ",\"budget\":1.5"), "\"budget\" must be an integer");
    parse_err(ITEM("a", ",\"budget\":\"10\""), "\"budget\" must be an integer");
    char big[400], line[600];
    memset(big, 'z', 257);
    big[257] = 0;
    snprintf(line, sizeof line, ITEM("a", ",\"stop\":\"%s\""), big);
    parse_err(line, "over the limit of 256 bytes");
    big[256] = 0; /* exactly 256 bytes is allowed */
    snprintf(line, sizeof line, ITEM("a", ",\"stop\":\"%s\""), big);
    parse_ok(&s, line);
    etok_evalset_free(&s);
}

static void test_hash(void **st) {
    (void)st;
    etok_evalset s;
    char h0[32], h1[32], h2[32], h3[32];
    parse_ok(&s, ITEM("a", ""));
    etok_evalset_hash(&s, h0, sizeof h0);
    etok_evalset_free(&s);
    parse_ok(&s, ITEM("a", ",\"difficulty\":\"easy\",\"budget\":9"));
    etok_evalset_hash(&s, h1, sizeof h1);
    etok_evalset_free(&s);
    parse_ok(&s, ITEM("a", ",\"stop\":\"x\""));
    etok_evalset_hash(&s, h2, sizeof h2);
    etok_evalset_free(&s);
    parse_ok(&s, ITEM("a", ",\"stop\":[\"y\"]"));
    etok_evalset_hash(&s, h3, sizeof h3);
    etok_evalset_free(&s);
    assert_string_equal(h0, h1);  /* difficulty and budget: not in the hash */
    assert_string_not_equal(h0, h2); /* stop strings change the output: in the hash */
    assert_string_not_equal(h2, h3);
}

/* The text arrives in pieces as tokens do; the stop string spans them. */
static void test_stop_scan(void **st) {
    (void)st;
    char *stops[] = {"END", "\n\n"};
    const char *pieces[] = {"Hel", "lo E", "N", "D and more"};
    char text[64] = "";
    size_t len = 0, scan = 0, at = 0;
    int k;
    for (k = 0; k < 4; k++) {
        strcat(text, pieces[k]);
        len = strlen(text);
        at = etok_stop_scan(stops, 2, 3, text, len, &scan);
        if (at < len) break;
        assert_true(scan <= len && len - scan <= 2); /* only the last max_len-1 bytes searched again */
    }
    assert_int_equal(k, 3); /* found once its last byte arrived */
    assert_int_equal(at, 6);  /* "Hello " kept */
    /* the earliest of several */
    assert_int_equal(etok_stop_find(stops, 2, "a\n\nb END", 0, 8), 1);
    assert_int_equal(etok_stop_find(stops, 2, "a END\n\n", 0, 7), 2);
    assert_int_equal(etok_stop_find(stops, 2, "nothing", 0, 7), 7);
    assert_int_equal(etok_stop_find(stops, 2, "END", 1, 3), 3); /* starts before from */
    size_t s2 = 0;
    assert_int_equal(etok_stop_scan(stops, 0, 0, "END", 3, &s2), 3); /* no stop strings */
    assert_int_equal(etok_stop_holdback(stops, 2, "abc EN", 6), 2);
    assert_int_equal(etok_stop_holdback(stops, 2, "abc\n", 4), 1);
    assert_int_equal(etok_stop_holdback(stops, 2, "abc", 3), 0);
    assert_null(etok_stop_refused("x", 1));
    assert_non_null(etok_stop_refused("", 0));
    assert_non_null(etok_stop_refused("a\0b", 3));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_policy_parse), cmocka_unit_test(test_assign),    cmocka_unit_test(test_config),
        cmocka_unit_test(test_item_fields),  cmocka_unit_test(test_hash),      cmocka_unit_test(test_stop_scan),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
