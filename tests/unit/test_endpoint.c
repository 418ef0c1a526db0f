/* test_endpoint.c — the endpoint driver against a tiny libmicrohttpd server on loopback that
 * serves canned OpenAI streams: good ones, and every way a server can misbehave. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "etok/endpoint.h"
#include "etok/record.h"

/* ---- the canned server ---- */

typedef struct {
    char *data;
    size_t len;
    size_t piece;       /* bytes per read */
    int delay_us;       /* between reads */
    size_t fail_at;     /* close the connection abruptly at this offset (0 = never) */
    double sleep_first_s;
} canned;

static ssize_t canned_read(void *cls, uint64_t pos, char *buf, size_t max) {
    canned *c = cls;
    if (pos == 0 && c->sleep_first_s > 0) usleep((useconds_t)(c->sleep_first_s * 1e6));
    if (c->fail_at && pos >= c->fail_at) return MHD_CONTENT_READER_END_WITH_ERROR;
    if (pos >= c->len) return MHD_CONTENT_READER_END_OF_STREAM;
    size_t n = c->len - (size_t)pos;
    if (n > max) n = max;
    if (c->piece && n > c->piece) n = c->piece;
    if (c->fail_at && pos + n > c->fail_at) n = c->fail_at - (size_t)pos;
    if (c->delay_us) usleep((useconds_t)c->delay_us);
    memcpy(buf, c->data + pos, n);
    return (ssize_t)n;
}

static void canned_free(void *cls) {
    canned *c = cls;
    free(c->data);
    free(c);
}

static void add(char **s, size_t *len, const char *piece) {
    size_t n = strlen(piece);
    *s = realloc(*s, *len + n + 1);
    memcpy(*s + *len, piece, n + 1);
    *len += n;
}

/* A chat stream: role chunk, n content chunks "t0".."t{n-1}", optional usage, optional [DONE]. */
static char *chat_stream(int n, int usage_out, int done, int completions, size_t *len) {
    char *s = NULL;
    *len = 0;
    add(&s, len, ": comment \xff\xfe not utf-8\n");
    if (!completions) add(&s, len, "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\"}}]}\n\n");
    for (int i = 0; i < n; i++) {
        char line[256];
        if (completions)
            snprintf(line, sizeof line, "data: {\"choices\":[{\"index\":0,\"text\":\"t%d \",\"finish_reason\":%s}]}\r\n\r\n", i,
                     i == n - 1 ? "\"length\"" : "null");
        else
            snprintf(line, sizeof line, "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"t%d \"},\"finish_reason\":%s}]}\n\n",
                     i, i == n - 1 ? "\"stop\"" : "null");
        add(&s, len, line);
    }
    if (usage_out >= 0) {
        char line[256];
        snprintf(line, sizeof line, "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":%d}}\n\n", usage_out);
        add(&s, len, line);
    }
    if (done) add(&s, len, "data: [DONE]\n\n");
    return s;
}

typedef struct {
    char body[8192];
    size_t len;
} upload;

static enum MHD_Result handler(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)cls;
    (void)version;
    if (!*con_cls) {
        *con_cls = calloc(1, sizeof(upload));
        return MHD_YES;
    }
    upload *up = *con_cls;
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        if (up->len + n < sizeof up->body) {
            memcpy(up->body + up->len, upload_data, n);
            up->len += n;
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    int status = 200;
    canned *c = calloc(1, sizeof *c);
    const char *ctype = "text/event-stream";
    if (!strcmp(method, "GET") && strstr(url, "/v1/models")) {
        ctype = "application/json";
        c->data = strdup("{\"object\":\"list\",\"data\":[{\"id\":\"canned-model\",\"object\":\"model\"}]}");
    } else if (strcmp(method, "POST")) {
        status = 405;
        c->data = strdup("{\"error\":{\"message\":\"POST only\"}}");
    } else if (strncmp(url, "/plain/", 7) != 0 && strncmp(url, "/nostream/", 10) != 0 && !strstr(up->body, "\"stream_options\":{\"include_usage\":true}")) {
        status = 400; /* every streamed request must ask for usage */
        c->data = strdup("{\"error\":{\"message\":\"no include_usage\"}}");
    } else if (!strncmp(url, "/ok/", 4) || !strncmp(url, "/auth/", 6) || !strncmp(url, "/split/", 7)) {
        const char *auth = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization");
        if (!strncmp(url, "/auth/", 6) && (!auth || strcmp(auth, "Bearer sekrit"))) {
            status = 401;
            c->data = strdup("{\"error\":{\"message\":\"Invalid API key\",\"type\":\"invalid_request_error\"}}");
        } else if (!strstr(url, "/v1/chat/completions") || !strstr(up->body, "\"messages\":[{\"role\":\"user\"")) {
            status = 404;
            c->data = strdup("{\"error\":{\"message\":\"wrong path or body\"}}");
        } else {
            c->data = chat_stream(5, 5, 1, 0, &c->len);
            if (!strncmp(url, "/split/", 7)) {
                c->piece = 3;
                c->delay_us = 200;
            }
        }
    } else if (!strncmp(url, "/cmpl/", 6)) {
        if (!strstr(url, "/v1/completions") || !strstr(up->body, "\"prompt\":")) status = 404;
        c->data = chat_stream(4, 4, 1, 1, &c->len);
    } else if (!strncmp(url, "/needmodel/", 11)) {
        if (!strstr(up->body, "\"model\":\"canned-model\"")) {
            status = 400;
            c->data = strdup("{\"error\":{\"message\":\"model is required\"}}");
        } else {
            c->data = chat_stream(2, 2, 1, 0, &c->len);
        }
    } else if (!strncmp(url, "/nousage/", 9)) {
        c->data = chat_stream(6, -1, 1, 0, &c->len);
    } else if (!strncmp(url, "/packed/", 8)) {
        c->data = chat_stream(3, 6, 1, 0, &c->len);
    } else if (!strncmp(url, "/http500/", 9)) {
        status = 500;
        c->data = strdup("{\"error\":{\"message\":\"engine exploded\",\"type\":\"server_error\"}}");
    } else if (!strncmp(url, "/truncated/", 11)) {
        c->data = chat_stream(5, 5, 1, 0, &c->len);
        c->fail_at = c->len / 2; /* the server dies mid-stream */
    } else if (!strncmp(url, "/nodone/", 8)) {
        c->data = chat_stream(5, 5, 0, 0, &c->len);
    } else if (!strncmp(url, "/cut/", 5)) {
        c->data = chat_stream(5, 5, 0, 0, &c->len);
        add(&c->data, &c->len, "data: {\"choices\":[{\"delta\":{\"content\":\"x\"}}]}"); /* ends mid-event */
    } else if (!strncmp(url, "/malformed/", 11)) {
        c->data = chat_stream(2, 2, 0, 0, &c->len);
        add(&c->data, &c->len, "data: {not json\n\ndata: {\"foo\":1}\n\ndata: [DONE]\n\n");
    } else if (!strncmp(url, "/streamerror/", 13)) {
        c->data = chat_stream(1, -1, 0, 0, &c->len);
        add(&c->data, &c->len, "data: {\"error\":{\"message\":\"KV cache full\"}}\n\n");
    } else if (!strncmp(url, "/hold/", 6)) {
        /* prompt "quick": at once; any other prompt: dribbled over ~4 s (3 bytes per 20 ms), so
         * it is surely still in flight when a quick one has finished */
        c->data = chat_stream(5, 5, 1, 0, &c->len);
        if (!strstr(up->body, "\"content\":\"quick\"")) {
            c->piece = 3;
            c->delay_us = 20000;
        }
    } else if (!strncmp(url, "/slow/", 6)) {
        c->data = chat_stream(5, 5, 1, 0, &c->len);
        c->sleep_first_s = 1.0;
    } else if (!strncmp(url, "/plain/", 7) || !strncmp(url, "/nostream/", 10)) {
        ctype = "application/json";
        c->data = strdup("{\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Paris\"}}],"
                         "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":2}}");
    } else {
        status = 404;
        c->data = strdup("not found");
    }
    if (!c->len) c->len = strlen(c->data);
    if (status != 200) ctype = "application/json";
    struct MHD_Response *resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, canned_read, c, canned_free);
    MHD_add_response_header(resp, "Content-Type", ctype);
    enum MHD_Result r = MHD_queue_response(conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    return r;
}

static void completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)cls;
    (void)conn;
    (void)toe;
    free(*con_cls);
    *con_cls = NULL;
}

typedef struct {
    struct MHD_Daemon *d;
    int port;
    char base[64];
} server;

static int setup(void **state) {
    server *s = calloc(1, sizeof *s);
    s->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_ERROR_LOG, 0, NULL,
                            NULL, handler, NULL, MHD_OPTION_NOTIFY_COMPLETED, completed, NULL, MHD_OPTION_END);
    assert_non_null(s->d);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info->port;
    snprintf(s->base, sizeof s->base, "http://127.0.0.1:%d", s->port);
    *state = s;
    return 0;
}

static int teardown(void **state) {
    server *s = *state;
    MHD_stop_daemon(s->d);
    free(s);
    return 0;
}

/* Run n requests at concurrency c against base+prefix; returns the run's rc. */
static int drive(server *s, const char *prefix, int n, int c, etok_record *rec, etok_endpoint_stats *st,
                 etok_endpoint_opts *extra) {
    char url[128];
    snprintf(url, sizeof url, "%s%s", s->base, prefix);
    etok_endpoint_opts o = {0};
    if (extra) o = *extra;
    o.url = url;
    o.n_requests = n;
    o.concurrency = c;
    o.model = "test-model";
    o.keep_output = 1;
    if (!o.request_timeout_s) o.request_timeout_s = 10;
    o.stats = st;
    const char *prompts[] = {"What is the capital of France?", "2+2="};
    etok_err err = {0};
    etok_record_init(rec);
    int rc = etok_endpoint_run(&o, prompts, 2, rec, NULL, NULL, NULL, &err);
    if (rc) fprintf(stderr, "error: %s\n", err.msg);
    return rc;
}

static void good_streams_are_timed_and_counted(void **state) {
    server *s = *state;
    etok_record rec;
    etok_endpoint_stats st;
    assert_int_equal(drive(s, "/ok", 12, 4, &rec, &st, NULL), 0);
    assert_int_equal(rec.n_requests, 12);
    assert_int_equal(st.ok, 12);
    assert_int_equal(st.failed, 0);
    assert_int_equal(st.invalid_utf8_bytes, 12 * 2); /* the comment's two bad bytes, tolerated */
    for (size_t i = 0; i < rec.n_requests; i++) {
        etok_request *q = &rec.requests[i];
        assert_true(q->ok);
        assert_string_equal(q->error, "");
        assert_int_equal(q->tokens_out, 5);
        assert_int_equal(q->tokens_in, 7);
        assert_string_equal(q->token_count_source, "usage");
        assert_int_equal(q->n_token_times, 5);
        assert_string_equal(q->output, "t0 t1 t2 t3 t4 ");
        assert_true(q->t_send_s >= 0 && q->t_send_s <= q->t_first_token_s);
        assert_true(q->t_first_token_s == q->token_times_s[0]);
        for (size_t k = 1; k < q->n_token_times; k++) assert_true(q->token_times_s[k] >= q->token_times_s[k - 1]);
        assert_true(q->token_times_s[4] <= q->t_done_s);
    }
    etok_record_free(&rec);
}

static void split_reads_and_auth(void **state) {
    server *s = *state;
    etok_record rec;
    etok_endpoint_stats st;
    assert_int_equal(drive(s, "/split/v1", 3, 3, &rec, &st, NULL), 0); /* base ending in /v1 */
    assert_int_equal(st.ok, 3);
    for (size_t i = 0; i < rec.n_requests; i++) assert_string_equal(rec.requests[i].output, "t0 t1 t2 t3 t4 ");
    etok_record_free(&rec);

    etok_endpoint_opts o = {.api_key = "sekrit"};
    assert_int_equal(drive(s, "/auth", 2, 2, &rec, &st, &o), 0);
    assert_int_equal(st.ok, 2);
    etok_record_free(&rec);
    o.api_key = "wrong";
    assert_int_equal(drive(s, "/auth", 2, 2, &rec, &st, &o), 0);
    assert_int_equal(st.failed, 2);
    assert_int_equal(st.http_errors, 2);
    assert_non_null(strstr(rec.requests[0].error, "HTTP 401: Invalid API key"));
    etok_record_free(&rec);
}

static void completions_api_and_plain_json(void **state) {
    server *s = *state;
    etok_record rec;
    etok_endpoint_stats st;
    etok_endpoint_opts o = {.api = ETOK_API_COMPLETIONS};
    assert_int_equal(drive(s, "/cmpl", 2, 1, &rec, &st, &o), 0);
    assert_int_equal(st.ok, 2);
    assert_int_equal(rec.requests[1].tokens_out, 4);
    assert_string_equal(rec.requests[1].output, "t0 t1 t2 t3 ");
    etok_record_free(&rec);

    etok_endpoint_opts p = {.no_stream = 1};
    assert_int_equal(drive(s, "/plain", 2, 2, &rec, &st, &p), 0);
    assert_int_equal(st.ok, 2);
    assert_string_equal(rec.requests[0].output, "Paris");
    assert_int_equal(rec.requests[0].tokens_out, 2);
    assert_true(rec.requests[0].t_first_token_s < 0); /* unknown without streaming */
    etok_record_free(&rec);

    /* a server that ignores stream: true and answers with one JSON body */
    assert_int_equal(drive(s, "/nostream", 2, 2, &rec, &st, NULL), 0);
    assert_int_equal(st.ok, 2);
    assert_int_equal(st.not_streamed, 2);
    assert_string_equal(rec.requests[1].output, "Paris");
    assert_int_equal(rec.requests[1].tokens_out, 2);
    assert_int_equal(rec.requests[1].n_token_times, 0);
    etok_record_free(&rec);
}

static void token_counts_from_chunks_or_usage(void **state) {
    server *s = *state;
    etok_record rec;
    etok_endpoint_stats st;
    assert_int_equal(drive(s, "/nousage", 3, 3, &rec, &st, NULL), 0);
    assert_int_equal(st.ok, 3);
    assert_int_equal(st.usage_missing, 3);
    assert_int_equal(rec.requests[0].tokens_out, 6);
    assert_string_equal(rec.requests[0].token_count_source, "chunks");
    etok_record_free(&rec);

    assert_int_equal(drive(s, "/packed", 2, 2, &rec, &st, NULL), 0);
    assert_int_equal(st.ok, 2);
    assert_int_equal(st.usage_exceeds_chunks, 2);
    assert_int_equal(rec.requests[0].tokens_out, 6);
    assert_int_equal(rec.requests[0].n_token_times, 3);
    etok_record_free(&rec);
}

/* Every failure kind: counted, kept in the record with its reason, never a crash. */
static void failures_are_recorded(void **state) {
    server *s = *state;
    struct {
        const char *prefix;
        const char *error_has;
    } cases[] = {
        {"/http500", "HTTP 500: engine exploded"},
        {"/truncated", "transport error"},
        {"/nodone", "without [DONE]"},
        {"/cut", "mid-event"},
        {"/malformed", "malformed SSE: 2 chunk(s)"},
        {"/streamerror", "KV cache full"},
        {"/nowhere", "HTTP 404"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        etok_record rec;
        etok_endpoint_stats st;
        assert_int_equal(drive(s, cases[i].prefix, 3, 2, &rec, &st, NULL), 0);
        assert_int_equal(rec.n_requests, 3);
        assert_int_equal(st.failed, 3);
        for (size_t k = 0; k < rec.n_requests; k++) {
            assert_false(rec.requests[k].ok);
            if (!strstr(rec.requests[k].error, cases[i].error_has))
                fail_msg("%s: error '%s' lacks '%s'", cases[i].prefix, rec.requests[k].error, cases[i].error_has);
            assert_true(rec.requests[k].t_done_s >= rec.requests[k].t_send_s);
        }
        etok_record_free(&rec);
    }
}

static void timeouts_and_dead_servers(void **state) {
    server *s = *state;
    etok_record rec;
    etok_endpoint_stats st;
    etok_endpoint_opts o = {.request_timeout_s = 0.3};
    assert_int_equal(drive(s, "/slow", 2, 2, &rec, &st, &o), 0);
    assert_int_equal(st.timeouts, 2);
    assert_non_null(strstr(rec.requests[0].error, "timeout"));
    etok_record_free(&rec);

    /* a port nobody listens on: start and stop a daemon to find one */
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, 0, NULL, NULL, handler, NULL, MHD_OPTION_END);
    int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
    MHD_stop_daemon(d);
    server dead = {.port = port};
    snprintf(dead.base, sizeof dead.base, "http://127.0.0.1:%d", port);
    etok_endpoint_opts dur = {.duration_s = 30}; /* would spin for 30 s without the unreachable stop */
    double t = (double)time(NULL);
    assert_int_equal(drive(&dead, "", 0, 4, &rec, &st, &dur), 0);
    assert_true((double)time(NULL) - t < 10);
    assert_true(st.connect_errors >= 8);
    assert_int_equal(st.ok, 0);
    assert_true(st.stopped_unreachable);
    assert_non_null(strstr(rec.requests[0].error, "connect failed"));
    /* the run says so: partial, with the reason */
    assert_true(st.unreachable);
    assert_true(rec.partial);
    assert_string_equal(rec.stop_reason, "endpoint_unreachable");
    etok_record_free(&rec);

    /* fewer requests than the stop threshold: all sent, all refused, still unreachable */
    assert_int_equal(drive(&dead, "", 3, 2, &rec, &st, NULL), 0);
    assert_int_equal(rec.n_requests, 3);
    assert_int_equal(st.failed, 3);
    assert_false(st.stopped_unreachable);
    assert_true(st.unreachable);
    assert_true(rec.partial);
    assert_string_equal(rec.stop_reason, "endpoint_unreachable");
    etok_record_free(&rec);

    /* failures that are not about reaching the server do not mark the run unreachable */
    assert_int_equal(drive(s, "/http500", 3, 2, &rec, &st, NULL), 0);
    assert_int_equal(st.failed, 3);
    assert_false(st.unreachable);
    assert_false(rec.partial);
    assert_string_equal(rec.stop_reason, "");
    etok_record_free(&rec);
}

/* The URL is checked before anything runs: scheme and host, with libcurl's parser. */
static void urls_are_checked_up_front(void **state) {
    (void)state;
    etok_err err = {0};
    assert_int_equal(etok_endpoint_check_url("--endpoint", "http://127.0.0.1:8080", &err), 0);
    assert_int_equal(etok_endpoint_check_url("--endpoint", "https://api.example.com/v1", &err), 0);
    assert_int_equal(etok_endpoint_check_url("--endpoint", "HTTP://h", &err), -1); /* the driver wants lower case */
    const char *bad[] = {"notaurl", "ftp://x", "", "http://", "http:// spaces in host/", "https://[::1"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(&err, 0, sizeof err);
        if (etok_endpoint_check_url("--endpoint", bad[i], &err) != -1) fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(err.msg, "--endpoint"));
    }
    assert_int_equal(etok_endpoint_check_url("--endpoint", NULL, &err), -1);
}

static void poisson_schedule(void **state) {
    (void)state;
    uint64_t a = 42, b = 42;
    double sum = 0;
    for (int i = 0; i < 20000; i++) {
        double g = etok_endpoint_exp_gap_s(&a, 10.0);
        assert_true(g > 0);
        assert_true(g == etok_endpoint_exp_gap_s(&b, 10.0)); /* seeded: reproducible */
        sum += g;
    }
    assert_true(fabs(sum / 20000 - 0.1) < 0.005); /* mean gap 1/rate */

    server *s = *state;
    etok_record rec;
    etok_endpoint_stats st;
    etok_endpoint_opts o = {.rate_rps = 40, .seed = 7};
    assert_int_equal(drive(s, "/ok", 10, 0, &rec, &st, &o), 0);
    assert_int_equal(st.ok, 10);
    double span = rec.requests[9].t_send_s - rec.requests[0].t_send_s;
    assert_true(span > 0.02 && span < 2.0); /* 9 gaps at 40/s: 0.225 s expected */
    etok_record_free(&rec);
}

static void stop_cb(const etok_endpoint_progress *p, void *arg) {
    if (p->done >= 1) *(volatile int *)arg = 1;
}

/* Request 0 answers at once, 1 and 2 are held: when the stop comes (after the first is done)
 * two requests are surely in flight, however the threads are scheduled. */
static void stop_flag_makes_a_partial_record(void **state) {
    server *s = *state;
    char url[128];
    snprintf(url, sizeof url, "%s/hold", s->base);
    etok_endpoint_opts o = {.url = url, .n_requests = 50, .concurrency = 3};
    const char *prompts[] = {"quick", "held", "held"};
    etok_record rec;
    etok_record_init(&rec);
    volatile int stop = 0;
    etok_err err = {0};
    assert_int_equal(etok_endpoint_run(&o, prompts, 3, &rec, &stop, stop_cb, (void *)&stop, &err), 0);
    assert_true(rec.partial);
    assert_int_equal(rec.n_requests, 3); /* nothing issued after the stop */
    assert_true(rec.requests[0].ok);
    int cancelled = 0;
    for (size_t i = 0; i < rec.n_requests; i++) cancelled += strstr(rec.requests[i].error, "cancelled") != NULL;
    assert_int_equal(cancelled, 2);
    assert_string_equal(rec.stop_reason, "interrupted");
    etok_record_free(&rec);
}

static void bad_configuration(void **state) {
    (void)state;
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {0};
    const char *prompts[] = {"x"};
    etok_endpoint_opts o = {.url = "ftp://x"};
    assert_int_equal(etok_endpoint_run(&o, prompts, 1, &rec, NULL, NULL, NULL, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    o.url = "http://127.0.0.1:1";
    assert_int_equal(etok_endpoint_run(&o, prompts, 0, &rec, NULL, NULL, NULL, &err), -1);
    etok_record_free(&rec);

    char *u = etok_endpoint_url("http://h:1/", ETOK_API_CHAT);
    assert_string_equal(u, "http://h:1/v1/chat/completions");
    free(u);
    u = etok_endpoint_url("http://h:1/v1", ETOK_API_COMPLETIONS);
    assert_string_equal(u, "http://h:1/v1/completions");
    free(u);
    u = etok_endpoint_url("http://h:1/x/v1/chat/completions", ETOK_API_COMPLETIONS);
    assert_string_equal(u, "http://h:1/x/v1/chat/completions");
    free(u);
}

static void model_is_discovered_when_not_given(void **state) {
    server *s = *state;
    char url[160], model[64];
    etok_err err = {0};
    snprintf(url, sizeof url, "%s/needmodel", s->base);
    assert_int_equal(etok_endpoint_discover_model(url, NULL, 5, model, sizeof model, &err), 0);
    assert_string_equal(model, "canned-model");
    snprintf(url, sizeof url, "%s/needmodel/v1/chat/completions", s->base);
    assert_int_equal(etok_endpoint_discover_model(url, NULL, 5, model, sizeof model, &err), 0);
    assert_string_equal(model, "canned-model");
    etok_endpoint_opts o = {.url = url, .n_requests = 2, .concurrency = 2};
    const char *prompts[] = {"x"};
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_endpoint_run(&o, prompts, 1, &rec, NULL, NULL, NULL, &err), 0);
    assert_true(rec.requests[0].ok && rec.requests[1].ok);
    etok_record_free(&rec);
    snprintf(url, sizeof url, "http://127.0.0.1:1");
    assert_int_equal(etok_endpoint_discover_model(url, NULL, 2, model, sizeof model, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(good_streams_are_timed_and_counted),
        cmocka_unit_test(split_reads_and_auth),
        cmocka_unit_test(completions_api_and_plain_json),
        cmocka_unit_test(token_counts_from_chunks_or_usage),
        cmocka_unit_test(failures_are_recorded),
        cmocka_unit_test(timeouts_and_dead_servers),
        cmocka_unit_test(poisson_schedule),
        cmocka_unit_test(stop_flag_makes_a_partial_record),
        cmocka_unit_test(bad_configuration),
        cmocka_unit_test(urls_are_checked_up_front),
        cmocka_unit_test(model_is_discovered_when_not_given),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
