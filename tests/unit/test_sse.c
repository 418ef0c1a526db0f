/* test_sse.c — the SSE parser on every malformed case we know of, and OpenAI chunk reading. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "etok/sse.h"

#define MAXEV 64
typedef struct {
    int n;
    char *data[MAXEV];
    char type[MAXEV][64];
    int stop_after; /* stop when n reaches this (0 = never) */
} events;

static int collect(void *arg, const char *type, const char *data, size_t len) {
    events *e = arg;
    assert_int_equal(strlen(data), len); /* NUL-terminated at data_len */
    if (e->n < MAXEV) {
        e->data[e->n] = strdup(data);
        snprintf(e->type[e->n], sizeof e->type[0], "%s", type);
    }
    e->n++;
    return e->stop_after && e->n >= e->stop_after;
}

static void events_free(events *e) {
    for (int i = 0; i < e->n && i < MAXEV; i++) free(e->data[i]);
    memset(e, 0, sizeof *e);
}

static const char STREAM[] =
    ": keep-alive comment\r\n"
    "data: {\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}\r\n"
    "\r\n"
    "event: custom\n"
    "data: line one\n"
    "data:line two\n"
    "id: 7\n"
    "\n"
    "data: caf\xc3\xa9 \xe2\x82\xac\r"
    "\r"
    "data: [DONE]\n"
    "\n";

static void check_stream_events(const events *e) {
    assert_int_equal(e->n, 4);
    assert_string_equal(e->data[0], "{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}");
    assert_string_equal(e->type[0], "message");
    assert_string_equal(e->data[1], "line one\nline two");
    assert_string_equal(e->type[1], "custom");
    assert_string_equal(e->data[2], "caf\xc3\xa9 \xe2\x82\xac");
    assert_string_equal(e->type[2], "message");
    assert_string_equal(e->data[3], "[DONE]");
}

static void whole_stream_parses(void **state) {
    (void)state;
    events e = {0};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    assert_int_equal(etok_sse_feed(&p, STREAM, sizeof STREAM - 1), 0);
    assert_int_equal(etok_sse_finish(&p), 0);
    check_stream_events(&e);
    assert_int_equal(p.comments, 1);
    assert_int_equal(p.invalid_utf8_bytes, 0);
    assert_int_equal(p.events, 4);
    etok_sse_free(&p);
    events_free(&e);
}

/* A chunk boundary at every byte position (including inside CRLF and inside UTF-8), in two
 * and in three pieces, and one byte at a time: always the same events. */
static void split_at_every_byte(void **state) {
    (void)state;
    size_t n = sizeof STREAM - 1;
    for (size_t cut = 0; cut <= n; cut++) {
        events e = {0};
        etok_sse_parser p;
        etok_sse_init(&p, collect, &e);
        assert_int_equal(etok_sse_feed(&p, STREAM, cut), 0);
        assert_int_equal(etok_sse_feed(&p, STREAM + cut, n - cut), 0);
        assert_int_equal(etok_sse_finish(&p), 0);
        check_stream_events(&e);
        assert_int_equal(p.invalid_utf8_bytes, 0);
        etok_sse_free(&p);
        events_free(&e);
    }
    for (size_t c1 = 0; c1 <= n; c1 += 3)
        for (size_t c2 = c1; c2 <= n; c2 += 5) {
            events e = {0};
            etok_sse_parser p;
            etok_sse_init(&p, collect, &e);
            etok_sse_feed(&p, STREAM, c1);
            etok_sse_feed(&p, STREAM + c1, c2 - c1);
            etok_sse_feed(&p, STREAM + c2, n - c2);
            assert_int_equal(etok_sse_finish(&p), 0);
            check_stream_events(&e);
            etok_sse_free(&p);
            events_free(&e);
        }
    events e = {0};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    for (size_t i = 0; i < n; i++) assert_int_equal(etok_sse_feed(&p, STREAM + i, 1), 0);
    assert_int_equal(etok_sse_finish(&p), 0);
    check_stream_events(&e);
    etok_sse_free(&p);
    events_free(&e);
}

/* A stream cut at every position: never a crash, only complete events are dispatched, and
 * finish() reports truncation exactly when the cut is not at an event boundary. */
static void truncated_stream_everywhere(void **state) {
    (void)state;
    size_t n = sizeof STREAM - 1;
    for (size_t cut = 0; cut < n; cut++) {
        events e = {0};
        etok_sse_parser p;
        etok_sse_init(&p, collect, &e);
        etok_sse_feed(&p, STREAM, cut);
        int truncated = etok_sse_finish(&p);
        assert_true(e.n <= 4);
        /* an event is dispatched only when its blank line arrived: its data is whole */
        if (e.n >= 1) assert_string_equal(e.data[0], "{\"choices\":[{\"delta\":{\"content\":\"Hel\"}}]}");
        if (e.n >= 2) assert_string_equal(e.data[1], "line one\nline two");
        /* a cut that ends with a complete line of a complete event, or a comment, is clean */
        int clean = cut == 0 || STREAM[cut - 1] == '\n' || STREAM[cut - 1] == '\r';
        if (!clean) assert_int_equal(truncated, 1);
        etok_sse_free(&p);
        events_free(&e);
    }
    /* the classic: the last event has its data line but never the blank line */
    events e = {0};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    const char *s = "data: a\n\ndata: b\n";
    etok_sse_feed(&p, s, strlen(s));
    assert_int_equal(etok_sse_finish(&p), 1);
    assert_int_equal(e.n, 1);
    assert_string_equal(e.data[0], "a");
    etok_sse_free(&p);
    events_free(&e);
}

static void oversized_line_and_event_are_dropped(void **state) {
    (void)state;
    events e = {0};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    p.max_line_bytes = 32;
    p.max_event_bytes = 40;
    char big[200];
    memset(big, 'x', sizeof big);
    etok_sse_feed(&p, "data: ok1\n\ndata: ", 17);
    etok_sse_feed(&p, big, sizeof big); /* a 206-byte line, fed in pieces */
    etok_sse_feed(&p, big, 10);
    etok_sse_feed(&p, "\ndata: tail\n\n", 13);
    /* an event built of lines each under the line limit but over the event limit together */
    etok_sse_feed(&p, "data: 0123456789abcdef\ndata: 0123456789abcdef\ndata: 0123456789\n\n", 64);
    etok_sse_feed(&p, "data: ok2\n\n", 11);
    assert_int_equal(etok_sse_finish(&p), 0);
    assert_int_equal(e.n, 2);
    assert_string_equal(e.data[0], "ok1");
    assert_string_equal(e.data[1], "ok2");
    assert_int_equal(p.oversized_lines, 1);
    assert_int_equal(p.oversized_events, 1);
    assert_int_equal(p.dropped_events, 2);
    assert_true(p.line_cap <= 64); /* memory stayed bounded by the limit */
    etok_sse_free(&p);
    events_free(&e);
}

static void invalid_utf8_is_tolerated_and_counted(void **state) {
    (void)state;
    events e = {0};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    /* \xff (never valid), \xc0\xaf (overlong), lone continuation \x80, truncated \xe2\x82,
     * surrogate \xed\xa0\x80 (3 bad: lead then two stray continuations) */
    const char s[] = "data: a\xff" "b\xc0\xaf" "c\x80" "d\xe2\x82" "e\xed\xa0\x80\n\n";
    for (size_t i = 0; i < sizeof s - 1; i++) etok_sse_feed(&p, s + i, 1);
    assert_int_equal(etok_sse_finish(&p), 0);
    assert_int_equal(e.n, 1);
    assert_int_equal(strlen(e.data[0]), sizeof s - 1 - 6 - 2); /* bytes passed through */
    assert_int_equal(p.invalid_utf8_bytes, 1 + 2 + 1 + 2 + 3);
    etok_sse_free(&p);
    events_free(&e);

    assert_int_equal(etok_utf8_invalid_bytes("plain ascii", 11), 0);
    assert_int_equal(etok_utf8_invalid_bytes("\xf0\x9f\x98\x80", 4), 0); /* emoji */
    assert_int_equal(etok_utf8_invalid_bytes("\xf4\x90\x80\x80", 4), 4);  /* > U+10FFFF */
    assert_int_equal(etok_utf8_invalid_bytes("\xe0\x80\x80", 3), 3);      /* overlong */
}

static void garbage_never_crashes(void **state) {
    (void)state;
    uint64_t x = 0x9E3779B97F4A7C15ull;
    for (int round = 0; round < 200; round++) {
        events e = {0};
        etok_sse_parser p;
        etok_sse_init(&p, collect, &e);
        p.max_line_bytes = 64;
        p.max_event_bytes = 128;
        size_t fed = 0;
        for (int k = 0; k < 50; k++) {
            char buf[97];
            size_t n = (size_t)(x % sizeof buf);
            for (size_t i = 0; i < n; i++) {
                x ^= x << 13; x ^= x >> 7; x ^= x << 17;
                /* bias towards the characters that matter */
                static const char alpha[] = "\n\r:data event\xff\xc3 ";
                buf[i] = (x & 1) ? alpha[(x >> 8) % (sizeof alpha - 1)] : (char)(x >> 16);
            }
            assert_int_not_equal(etok_sse_feed(&p, buf, n), -1);
            fed += n;
        }
        etok_sse_finish(&p);
        assert_int_equal(p.bytes_in, fed);
        assert_true(p.line_cap <= 2 * 64 + 256);
        assert_int_equal(p.events, (size_t)e.n);
        etok_sse_free(&p);
        events_free(&e);
    }
}

static void callback_can_stop(void **state) {
    (void)state;
    events e = {.stop_after = 1};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    assert_int_equal(etok_sse_feed(&p, "data: 1\n\ndata: 2\n\n", 18), 1);
    assert_int_equal(e.n, 1);
    assert_int_equal(etok_sse_feed(&p, "data: 3\n\n", 9), 1);
    assert_int_equal(e.n, 1);
    etok_sse_free(&p);
    events_free(&e);
}

static void empty_data_and_field_forms(void **state) {
    (void)state;
    events e = {0};
    etok_sse_parser p;
    etok_sse_init(&p, collect, &e);
    const char *s = "data\n\ndata:\n\nevent: only-type\n\nretry: 10\nweird: x\ndata:  two spaces\n\n";
    etok_sse_feed(&p, s, strlen(s));
    assert_int_equal(etok_sse_finish(&p), 0);
    assert_int_equal(e.n, 3);
    assert_string_equal(e.data[0], "");
    assert_string_equal(e.data[1], "");
    assert_string_equal(e.data[2], " two spaces"); /* only one space is stripped */
    assert_int_equal(p.unknown_fields, 1);
    etok_sse_free(&p);
    events_free(&e);
}

/* ---- OpenAI chunks ---- */

static etok_openai_chunk parse(const char *s) {
    etok_openai_chunk c;
    etok_openai_chunk_parse(s, strlen(s), &c);
    return c;
}

static void chunk_kinds(void **state) {
    (void)state;
    etok_openai_chunk c = parse("{\"id\":\"x\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"},\"finish_reason\":null}]}");
    assert_int_equal(c.kind, ETOK_CHUNK_DATA);
    assert_true(c.has_content);
    assert_string_equal(c.content, "Hi");
    assert_string_equal(c.finish_reason, "");
    etok_openai_chunk_free(&c);

    c = parse("{\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}"); /* role-only first chunk */
    assert_int_equal(c.kind, ETOK_CHUNK_DATA);
    assert_false(c.has_content);
    etok_openai_chunk_free(&c);

    c = parse("{\"choices\":[{\"text\":\" world\",\"finish_reason\":\"length\"}],\"usage\":null}");
    assert_int_equal(c.kind, ETOK_CHUNK_DATA);
    assert_string_equal(c.content, " world");
    assert_string_equal(c.finish_reason, "length");
    assert_false(c.has_usage);
    etok_openai_chunk_free(&c);

    c = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":34,\"total_tokens\":46}}");
    assert_int_equal(c.kind, ETOK_CHUNK_DATA);
    assert_true(c.has_usage);
    assert_int_equal(c.prompt_tokens, 12);
    assert_int_equal(c.completion_tokens, 34);
    assert_false(c.has_content);
    etok_openai_chunk_free(&c);

    c = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"energy_j\":1.25,\"energy_source\":\"counter\"}}");
    assert_true(c.has_usage && c.has_energy);
    assert_true(c.energy_j == 1.25);
    etok_openai_chunk_free(&c);
    c = parse("{\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":4,\"energy_j\":null}}");
    assert_false(c.has_energy);
    etok_openai_chunk_free(&c);

    c = parse(" [DONE] ");
    assert_int_equal(c.kind, ETOK_CHUNK_DONE);
    etok_openai_chunk_free(&c);

    c = parse("{\"error\":{\"message\":\"out of memory\",\"type\":\"server_error\"}}");
    assert_int_equal(c.kind, ETOK_CHUNK_ERROR);
    assert_non_null(strstr(c.message, "out of memory"));
    etok_openai_chunk_free(&c);
}

static void chunks_that_are_not_openai(void **state) {
    (void)state;
    const char *not_chunks[] = {
        "[1,2,3]", "\"string\"", "42", "{}", "{\"choices\":{}}", "{\"choices\":[1]}",
        "{\"choices\":[{\"index\":0}]}", "{\"choices\":[{\"delta\":{\"content\":5}}]}",
        "{\"choices\":[],\"usage\":\"many\"}",
    };
    for (size_t i = 0; i < sizeof not_chunks / sizeof not_chunks[0]; i++) {
        etok_openai_chunk c = parse(not_chunks[i]);
        assert_int_equal(c.kind, ETOK_CHUNK_NOT_CHUNK);
        assert_true(c.message[0] != '\0');
        assert_false(c.has_content);
        etok_openai_chunk_free(&c);
    }
    const char *bad[] = {"", "{", "{\"choices\":[}", "DONE", "\xff\xfe", "{\"a\":1,\"a\":2}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        etok_openai_chunk c = parse(bad[i]);
        assert_int_equal(c.kind, ETOK_CHUNK_BAD_JSON);
        etok_openai_chunk_free(&c);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(whole_stream_parses),
        cmocka_unit_test(split_at_every_byte),
        cmocka_unit_test(truncated_stream_everywhere),
        cmocka_unit_test(oversized_line_and_event_are_dropped),
        cmocka_unit_test(invalid_utf8_is_tolerated_and_counted),
        cmocka_unit_test(garbage_never_crashes),
        cmocka_unit_test(callback_can_stop),
        cmocka_unit_test(empty_data_and_field_forms),
        cmocka_unit_test(chunk_kinds),
        cmocka_unit_test(chunks_that_are_not_openai),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
