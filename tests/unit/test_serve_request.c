/* test_serve_request.c — the request-body parser of `etok serve` (src/serve/request.c) on its
 * own: accepted bodies and what they hold, every refusal with its status, code and field, and
 * the stop-string search and hold-back the server streams with. No server, no model. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve/request.h"

static int parse(const char *body, int chat, etok_serve_request *r, etok_serve_reject *rej) {
    return etok_serve_request_parse(body, strlen(body), chat, 64, r, rej);
}

static void accepted_bodies(void **state) {
    (void)state;
    etok_serve_request r;
    etok_serve_reject rej;
    const char *chat = "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":\"Be brief.\"},"
                       "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi \"},{\"type\":\"text\",\"text\":\"there\"}]}],"
                       "\"max_completion_tokens\":8,\"temperature\":0,\"top_p\":0.5,\"seed\":7,\"stream\":true,"
                       "\"stream_options\":{\"include_usage\":true},\"stop\":[\"\\n\\n\",\"END\"],\"n\":1}";
    assert_int_equal(parse(chat, 1, &r, &rej), 0);
    assert_int_equal(r.n_msgs, 2);
    assert_string_equal(r.roles[0], "system");
    assert_string_equal(r.roles[1], "user");
    assert_string_equal(r.contents[1], "Hi there");
    assert_string_equal(r.model, "m");
    assert_int_equal(r.max_tokens, 8);
    assert_true(r.sampling.temperature == 0.0f && r.sampling.top_p == 0.5f && r.sampling.seed == 7);
    assert_true(r.stream && r.include_usage);
    assert_int_equal(r.n_stop, 2);
    assert_string_equal(r.stop[0], "\n\n");
    assert_int_equal((int)r.stop_max_len, 3);
    etok_serve_request_free(&r);
    /* completions: an array of one string; max_tokens absent = 0; stop a string; nulls ignored */
    assert_int_equal(parse("{\"prompt\":[\"Once\"],\"stop\":\"x\",\"max_tokens\":null,\"model\":null,\"stop_extra\":1}", 0, &r, &rej), 0);
    assert_string_equal(r.prompt, "Once");
    assert_int_equal(r.max_tokens, 0);
    assert_null(r.model);
    assert_int_equal(r.n_stop, 1);
    assert_true(r.sampling.temperature == 1.0f);
    etok_serve_request_free(&r);
    /* the special-token text of a message is kept as text, byte for byte */
    assert_int_equal(parse("{\"messages\":[{\"role\":\"user\",\"content\":\"<|im_start|>assistant\"}]}", 1, &r, &rej), 0);
    assert_string_equal(r.contents[0], "<|im_start|>assistant");
    etok_serve_request_free(&r);
}

static void refused_bodies(void **state) {
    (void)state;
    struct {
        int chat;
        const char *body;
        const char *code, *param;
    } cases[] = {
        {1, "", "invalid_json", ""},
        {1, "{\"messages\": [", "invalid_json", ""},
        {1, "[1]", "invalid_value", ""},
        {1, "{}", "invalid_value", "messages"},
        {1, "{\"messages\":[]}", "invalid_value", "messages"},
        {1, "{\"messages\":[5]}", "invalid_value", "messages"},
        {1, "{\"messages\":[{\"content\":\"x\"}]}", "invalid_value", "messages[0].role"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"tool\",\"content\":\"x\"}]}", "invalid_value", "messages[1].role"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":7}]}", "invalid_value", "messages[0].content"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\"}]}]}", "invalid_value", "messages[0].content"},
        {1, "{\"messages\":[{\"role\":\"user\",\"content\":\"a\\u0000b\"}]}", "invalid_json", ""}, /* jansson refuses NUL */
        {0, "{\"prompt\":42}", "invalid_value", "prompt"},
        {0, "{\"prompt\":[\"a\",\"b\"]}", "invalid_value", "prompt"},
        {0, "{\"prompt\":\"a\\u0000\"}", "invalid_json", ""},
        {0, "{\"prompt\":\"a\",\"max_tokens\":0}", "invalid_value", "max_tokens"},
        {0, "{\"prompt\":\"a\",\"max_tokens\":65}", "invalid_value", "max_tokens"},
        {0, "{\"prompt\":\"a\",\"max_completion_tokens\":1.5}", "invalid_value", "max_completion_tokens"},
        {0, "{\"prompt\":\"a\",\"temperature\":3}", "invalid_value", "temperature"},
        {0, "{\"prompt\":\"a\",\"top_p\":0}", "invalid_value", "top_p"},
        {0, "{\"prompt\":\"a\",\"seed\":\"x\"}", "invalid_value", "seed"},
        {0, "{\"prompt\":\"a\",\"n\":2}", "invalid_value", "n"},
        {0, "{\"prompt\":\"a\",\"stream\":1}", "invalid_value", "stream"},
        {0, "{\"prompt\":\"a\",\"stream_options\":[]}", "invalid_value", "stream_options"},
        {0, "{\"prompt\":\"a\",\"stream_options\":{\"include_usage\":\"y\"}}", "invalid_value", "stream_options.include_usage"},
        {0, "{\"prompt\":\"a\",\"model\":5}", "invalid_value", "model"},
        {0, "{\"prompt\":\"a\",\"stop\":5}", "invalid_value", "stop"},
        {0, "{\"prompt\":\"a\",\"stop\":[\"a\",null]}", "invalid_value", "stop"},
        {0, "{\"prompt\":\"a\",\"stop\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", "invalid_value", "stop"},
        {0, "{\"prompt\":\"a\",\"stop\":\"\"}", "invalid_value", "stop"},
        {0, "{\"prompt\":\"a\",\"stop\":\"a\\u0000\"}", "invalid_json", ""},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        etok_serve_request r;
        etok_serve_reject rej;
        if (parse(cases[i].body, cases[i].chat, &r, &rej) != -1) fail_msg("case %zu accepted: %s", i, cases[i].body);
        if (rej.status != 400 || strcmp(rej.code, cases[i].code) || strcmp(rej.param, cases[i].param) ||
            strcmp(rej.type, "invalid_request_error") || !rej.message[0])
            fail_msg("case %zu (%s): %d %s param '%s': %s", i, cases[i].body, rej.status, rej.code, rej.param, rej.message);
        assert_null(r.contents);
        assert_null(r.prompt);
        assert_int_equal(r.n_stop, 0);
    }
    /* a stop string over the byte limit */
    char body[600];
    int n = snprintf(body, sizeof body, "{\"prompt\":\"a\",\"stop\":\"");
    for (int k = 0; k <= ETOK_SERVE_MAX_STOP_BYTES; k++) body[n++] = 's';
    snprintf(body + n, sizeof body - (size_t)n, "\"}");
    etok_serve_request r;
    etok_serve_reject rej;
    assert_int_equal(parse(body, 0, &r, &rej), -1);
    assert_string_equal(rej.param, "stop");
    /* the body need not be NUL-terminated: only len bytes are read */
    assert_int_equal(etok_serve_request_parse("{\"prompt\":\"a\"}xxxx", 14, 0, 64, &r, &rej), 0);
    assert_string_equal(r.prompt, "a");
    etok_serve_request_free(&r);
}

static void stop_search_and_holdback(void **state) {
    (void)state;
    etok_serve_request r;
    etok_serve_reject rej;
    assert_int_equal(parse("{\"prompt\":\"a\",\"stop\":[\"END\",\"\\n\\n\"]}", 0, &r, &rej), 0);
    const char *t = "one\ntwo EN";
    size_t n = strlen(t);
    assert_int_equal(etok_serve_stop_find(&r, t, 0, n), n);  /* none complete */
    assert_int_equal(etok_serve_stop_holdback(&r, t, n), 2); /* "EN" may become "END" */
    assert_int_equal(etok_serve_stop_holdback(&r, "one\n", 4), 1);
    assert_int_equal(etok_serve_stop_holdback(&r, "one", 3), 0);
    const char *u = "abc\n\nxEND";
    assert_int_equal(etok_serve_stop_find(&r, u, 0, strlen(u)), 3); /* the earliest of both */
    assert_int_equal(etok_serve_stop_find(&r, u, 4, strlen(u)), 6); /* from a later offset */
    assert_int_equal(etok_serve_stop_find(&r, u, 99, strlen(u)), strlen(u));
    etok_serve_request_free(&r);
    /* without stop strings nothing is held back */
    assert_int_equal(parse("{\"prompt\":\"a\"}", 0, &r, &rej), 0);
    assert_int_equal(etok_serve_stop_holdback(&r, "EN", 2), 0);
    assert_int_equal(etok_serve_stop_find(&r, "EN", 0, 2), 2);
    etok_serve_request_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(accepted_bodies),
        cmocka_unit_test(refused_bodies),
        cmocka_unit_test(stop_search_and_holdback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
