/* endpoint.c — drive an OpenAI-compatible server with libcurl's multi interface (see endpoint.h).
 *
 * Owns: request bodies, the closed/open-loop schedule, one curl easy handle per in-flight
 * request, feeding response bytes to the SSE parser, timestamping chunks on the caller's clock,
 * and classifying every failure into the request's error. Does not own: SSE syntax (sse.c),
 * meters, or any analysis of the timestamps (analyse/). */
#include "etok/endpoint.h"

#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <time.h>
#include <unistd.h>

#include "etok/sse.h"

#define DEFAULT_TIMEOUT_S 300.0
#define DEFAULT_MAX_TOKENS 128
#define DEFAULT_MAX_RESPONSE (16u << 20)
#define OPEN_LOOP_DEFAULT_CAP 1024
#define ERROR_BODY_CAP 4096

typedef struct run_ctx run_ctx;

typedef struct {
    run_ctx *run;
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    size_t rec_index;          /* index into rec->requests (the array may move) */
    int index;                 /* request number */
    etok_sse_parser sse;
    double *times;             /* token arrival times */
    size_t n_times, cap_times;
    char *text;                /* generated text */
    size_t text_len, text_cap;
    char *raw;                 /* non-2xx body or non-streamed body, bounded */
    size_t raw_len, raw_cap;
    size_t bytes_total;
    int saw_done;
    int has_usage;
    long long usage_in, usage_out;
    int has_energy;
    double energy_j;
    int malformed;             /* chunks that were not OpenAI chunks */
    char malformed_msg[160];
    int stream_error;
    char stream_error_msg[200];
    int too_big;               /* response over max_response_bytes: aborted */
    int plain;                 /* the answer is one JSON body (asked for, or a server that
                                  ignored stream: true) */
    int plain_checked;
    double t_first;
} req_ctx;

struct run_ctx {
    const etok_endpoint_opts *o;
    etok_record *rec;
    double t_start_mono;
    etok_endpoint_stats st;
    size_t max_response;
    int ep;                    /* epoll set of curl's sockets */
    double timer_deadline;     /* etok_mono_s() when curl wants its timeout action; < 0 none */
};

/* libcurl's socket interface: curl says which sockets to watch, epoll says which are ready,
 * and only those transfers are driven — the cost per wake-up does not grow with the number
 * of streams (curl_multi_perform would visit every handle). */
static int on_socket(CURL *easy, curl_socket_t sock, int what, void *userp, void *socketp) {
    (void)easy;
    (void)socketp;
    run_ctx *r = userp;
    if (what == CURL_POLL_REMOVE) {
        epoll_ctl(r->ep, EPOLL_CTL_DEL, sock, NULL);
        return 0;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.data.fd = sock;
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    if (epoll_ctl(r->ep, EPOLL_CTL_MOD, sock, &ev) != 0) epoll_ctl(r->ep, EPOLL_CTL_ADD, sock, &ev);
    return 0;
}

static int on_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    run_ctx *r = userp;
    r->timer_deadline = timeout_ms < 0 ? -1 : etok_mono_s() + timeout_ms / 1000.0;
    return 0;
}

static double rec_now(const run_ctx *r) {
    if (r->o->clock) return r->o->clock(r->o->clock_arg);
    return etok_mono_s() - r->t_start_mono;
}

static double thread_cpu_s(void) {
    struct timespec ts;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts) != 0) return 0;
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

int etok_endpoint_check_url(const char *what, const char *url, etok_err *err) {
    if (!url || !*url) return etok_errc(err, ETOK_EXIT_USAGE, "%s: no URL given", what);
    if (strncmp(url, "http://", 7) && strncmp(url, "https://", 8))
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected an http:// or https:// URL", what, url);
    CURLU *u = curl_url();
    if (!u) return etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory", what);
    CURLUcode uc = curl_url_set(u, CURLUPART_URL, url, 0);
    char *host = NULL;
    if (uc == CURLUE_OK) uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
    int bad = uc != CURLUE_OK || !host || !*host;
    char why[160];
#if LIBCURL_VERSION_NUM >= 0x075000
    snprintf(why, sizeof why, "%s", uc != CURLUE_OK ? curl_url_strerror(uc) : "no host");
#else
    if (uc != CURLUE_OK) snprintf(why, sizeof why, "libcurl URL error %d", (int)uc);
    else snprintf(why, sizeof why, "no host");
#endif
    curl_free(host);
    curl_url_cleanup(u);
    if (bad) return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': not a valid URL (%s)", what, url, why);
    return 0;
}

char *etok_endpoint_url(const char *base, etok_endpoint_api api) {
    size_t n = strlen(base);
    while (n > 0 && base[n - 1] == '/') n--;
    const char *tail;
    if (n >= 12 && !memcmp(base + n - 12, "/completions", 12)) tail = "";
    else if (n >= 3 && !memcmp(base + n - 3, "/v1", 3)) tail = api == ETOK_API_CHAT ? "/chat/completions" : "/completions";
    else tail = api == ETOK_API_CHAT ? "/v1/chat/completions" : "/v1/completions";
    size_t tl = strlen(tail);
    char *u = malloc(n + tl + 1);
    if (!u) return NULL;
    memcpy(u, base, n);
    memcpy(u + n, tail, tl + 1);
    return u;
}

double etok_endpoint_exp_gap_s(uint64_t *state, double rate_rps) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    double u = ((double)(z >> 11) + 0.5) * (1.0 / 9007199254740992.0); /* (0, 1) */
    return -log(u) / rate_rps;
}

static int grow(void **buf, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) c *= 2;
    void *nb = realloc(*buf, c * elem);
    if (!nb) return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

static void append_bytes(char **buf, size_t *len, size_t *cap, const char *s, size_t n, size_t limit) {
    if (*len + n > limit) n = *len < limit ? limit - *len : 0;
    if (n == 0) return;
    if (grow((void **)buf, cap, *len + n + 1, 1) < 0) return;
    memcpy(*buf + *len, s, n);
    *len += n;
    (*buf)[*len] = '\0';
}

static void take_chunk(req_ctx *q, const etok_openai_chunk *c) {
    switch (c->kind) {
    case ETOK_CHUNK_DONE: q->saw_done = 1; break;
    case ETOK_CHUNK_ERROR:
        if (!q->stream_error) snprintf(q->stream_error_msg, sizeof q->stream_error_msg, "%.190s", c->message);
        q->stream_error++;
        break;
    case ETOK_CHUNK_NOT_CHUNK:
    case ETOK_CHUNK_BAD_JSON:
        if (!q->malformed) snprintf(q->malformed_msg, sizeof q->malformed_msg, "%.150s", c->message);
        q->malformed++;
        break;
    case ETOK_CHUNK_DATA:
        if (c->has_content) {
            double t = rec_now(q->run);
            if (q->n_times == 0) q->t_first = t;
            if (grow((void **)&q->times, &q->cap_times, q->n_times + 1, sizeof(double)) == 0) q->times[q->n_times++] = t;
            append_bytes(&q->text, &q->text_len, &q->text_cap, c->content, c->content_len, q->run->max_response);
        }
        if (c->has_usage) {
            q->has_usage = 1;
            q->usage_in = c->prompt_tokens;
            q->usage_out = c->completion_tokens;
        }
        if (c->has_energy) {
            q->has_energy = 1;
            q->energy_j = c->energy_j;
        }
        break;
    }
}

static int on_sse_event(void *arg, const char *type, const char *data, size_t len) {
    req_ctx *q = arg;
    if (strcmp(type, "message") && strcmp(type, "error")) return 0; /* other event types: not ours */
    etok_openai_chunk c;
    etok_openai_chunk_parse(data, len, &c);
    if (!strcmp(type, "error") && c.kind != ETOK_CHUNK_ERROR) {
        c.kind = ETOK_CHUNK_ERROR;
        snprintf(c.message, sizeof c.message, "server error event: %.200s", data);
    }
    take_chunk(q, &c);
    etok_openai_chunk_free(&c);
    return 0;
}

static size_t on_write(char *ptr, size_t size, size_t nmemb, void *arg) {
    req_ctx *q = arg;
    size_t n = size * nmemb;
    q->bytes_total += n;
    if (q->bytes_total > q->run->max_response) {
        q->too_big = 1;
        return 0; /* abort the transfer */
    }
    long status = 0;
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
    if (!q->plain_checked && status >= 200 && status < 300) {
        q->plain_checked = 1;
        const char *ct = NULL;
        curl_easy_getinfo(q->easy, CURLINFO_CONTENT_TYPE, &ct);
        /* a server that ignores stream: true answers with one JSON body */
        q->plain = q->run->o->no_stream || (ct && strstr(ct, "application/json"));
    }
    if (status >= 200 && status < 300 && !q->plain) {
        if (etok_sse_feed(&q->sse, ptr, n) < 0) return 0;
    } else {
        append_bytes(&q->raw, &q->raw_len, &q->raw_cap, ptr, n,
                     status >= 200 && status < 300 ? q->run->max_response : ERROR_BODY_CAP);
    }
    return n;
}

static char *build_body(const etok_endpoint_opts *o, const char *prompt, int max_tokens, const etok_endpoint_stop *stop) {
    json_t *b = json_object();
    if (o->model) json_object_set_new(b, "model", json_string(o->model));
    if (o->api == ETOK_API_CHAT) {
        json_t *msgs = json_array(), *m = json_object();
        json_object_set_new(m, "role", json_string("user"));
        json_object_set_new(m, "content", json_string(prompt));
        json_array_append_new(msgs, m);
        json_object_set_new(b, "messages", msgs);
    } else {
        json_object_set_new(b, "prompt", json_string(prompt));
    }
    json_object_set_new(b, "max_tokens", json_integer(max_tokens));
    if (o->ignore_eos) { /* exact output length: servers that do not know these ignore them */
        json_object_set_new(b, "ignore_eos", json_true());
        json_object_set_new(b, "min_tokens", json_integer(max_tokens));
    }
    json_object_set_new(b, "temperature", json_real(o->temperature));
    if (stop && stop->n > 0) { /* OpenAI "stop": up to 4 strings (more are never passed in: evalset.c refuses them) */
        json_t *sa = json_array();
        if (!sa) {
            json_decref(b);
            return NULL;
        }
        for (int i = 0; i < stop->n && i < ETOK_STOP_MAX; i++) json_array_append_new(sa, json_string(stop->s[i]));
        json_object_set_new(b, "stop", sa);
    }
    if (!o->no_stream) {
        json_object_set_new(b, "stream", json_true());
        json_t *so = json_object();
        json_object_set_new(so, "include_usage", json_true());
        json_object_set_new(b, "stream_options", so);
    } else {
        json_object_set_new(b, "stream", json_false());
    }
    char *s = json_dumps(b, JSON_COMPACT);
    json_decref(b);
    return s;
}

static void req_free(req_ctx *q) {
    if (!q) return;
    if (q->easy) curl_easy_cleanup(q->easy);
    curl_slist_free_all(q->headers);
    free(q->body);
    etok_sse_free(&q->sse);
    free(q->times);
    free(q->text);
    free(q->raw);
    free(q);
}

static req_ctx *req_start(run_ctx *r, CURLM *multi, const char *url, const char *auth_header, const char *prompt,
                          int max_tokens, const etok_endpoint_stop *stop, int index, etok_err *err) {
    etok_request *rq = etok_record_add_request(r->rec);
    if (!rq) {
        etok_errf(err, "endpoint: out of memory");
        return NULL;
    }
    snprintf(rq->id, sizeof rq->id, "req-%d", index);
    rq->t_send_s = rec_now(r);
    rq->tokens_in = rq->tokens_out = 0;
    req_ctx *q = calloc(1, sizeof *q);
    if (!q) {
        snprintf(rq->error, sizeof rq->error, "out of memory");
        return NULL;
    }
    q->run = r;
    q->rec_index = r->rec->n_requests - 1;
    q->index = index;
    q->t_first = -1;
    etok_sse_init(&q->sse, on_sse_event, q);
    q->sse.max_line_bytes = r->o->max_sse_line_bytes;
    q->body = build_body(r->o, prompt, max_tokens, stop);
    q->easy = curl_easy_init();
    q->headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (q->headers) q->headers = curl_slist_append(q->headers, r->o->no_stream ? "Accept: application/json" : "Accept: text/event-stream");
    if (q->headers && auth_header) q->headers = curl_slist_append(q->headers, auth_header);
    if (!q->body || !q->easy || !q->headers) {
        snprintf(r->rec->requests[q->rec_index].error, sizeof rq->error, "could not set up the request (out of memory)");
        req_free(q);
        return NULL;
    }
    double timeout_s = r->o->request_timeout_s > 0 ? r->o->request_timeout_s : DEFAULT_TIMEOUT_S;
    curl_easy_setopt(q->easy, CURLOPT_URL, url);
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, q->body);
    curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, q->headers);
    curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(q->easy, CURLOPT_WRITEDATA, q);
    curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, (long)(timeout_s * 1000));
    curl_easy_setopt(q->easy, CURLOPT_CONNECTTIMEOUT_MS, (long)(timeout_s < 30 ? timeout_s * 1000 : 30000));
    curl_easy_setopt(q->easy, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(q->easy, CURLOPT_USERAGENT, "etok-endpoint");
    if (curl_multi_add_handle(multi, q->easy) != CURLM_OK) {
        snprintf(r->rec->requests[q->rec_index].error, sizeof rq->error, "libcurl refused the request handle");
        req_free(q);
        return NULL;
    }
    return q;
}

/* The message of an OpenAI-shaped error body, or its first bytes. */
static void error_body_message(const char *raw, size_t len, char *out, size_t cap) {
    out[0] = '\0';
    if (!raw || !len) return;
    json_t *j = json_loadb(raw, len, 0, NULL);
    if (j) {
        json_t *e = json_object_get(j, "error");
        const char *m = json_is_object(e) ? json_string_value(json_object_get(e, "message")) : json_string_value(e);
        if (!m) m = json_string_value(json_object_get(j, "detail"));
        if (!m) m = json_string_value(json_object_get(j, "message"));
        if (m) snprintf(out, cap, "%s", m);
        json_decref(j);
        if (out[0]) return;
    }
    size_t n = len < cap - 1 ? len : cap - 1;
    for (size_t i = 0; i < n; i++) out[i] = (raw[i] == '\n' || raw[i] == '\r') ? ' ' : raw[i];
    out[n] = '\0';
}

/* The request is over (result from curl, or cancelled): fill its record entry. */
static void req_finish(run_ctx *r, req_ctx *q, CURLcode res, int cancelled) {
    etok_request *rq = &r->rec->requests[q->rec_index];
    etok_endpoint_stats *st = &r->st;
    rq->t_done_s = rec_now(r);
    long status = 0;
    curl_easy_getinfo(q->easy, CURLINFO_RESPONSE_CODE, &status);
    int sse_truncated = q->plain ? 0 : etok_sse_finish(&q->sse);
    st->invalid_utf8_bytes += (long long)q->sse.invalid_utf8_bytes + (long long)etok_utf8_invalid_bytes(q->raw, q->raw_len);
    if (q->sse.oversized_lines || q->sse.oversized_events) st->oversized_sse++;

    if (q->plain && !r->o->no_stream) st->not_streamed++;
    if (q->plain && status >= 200 && status < 300 && res == CURLE_OK) {
        etok_openai_chunk c;
        etok_openai_chunk_parse(q->raw ? q->raw : "", q->raw_len, &c);
        take_chunk(q, &c);
        etok_openai_chunk_free(&c);
        q->saw_done = 1;
        q->n_times = 0; /* one body is not a token arrival: no per-token times without streaming */
        q->t_first = -1;
    }

    char msg[256] = "";
    if (cancelled) {
        snprintf(msg, sizeof msg, "cancelled: run interrupted while in flight");
        st->cancelled++;
    } else if (q->too_big) {
        snprintf(msg, sizeof msg, "response larger than %zu bytes: aborted", r->max_response);
        st->transport_errors++;
    } else if (res == CURLE_OPERATION_TIMEDOUT) {
        snprintf(msg, sizeof msg, "timeout: no complete response within %.3g s (%zu bytes, %zu chunks received)",
                 r->o->request_timeout_s > 0 ? r->o->request_timeout_s : DEFAULT_TIMEOUT_S, q->bytes_total, q->n_times);
        st->timeouts++;
    } else if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST) {
        snprintf(msg, sizeof msg, "connect failed: %s", curl_easy_strerror(res));
        st->connect_errors++;
    } else if (res != CURLE_OK) {
        snprintf(msg, sizeof msg, "transport error after %zu bytes, %zu chunks (server died mid-response?): %s",
                 q->bytes_total, q->n_times, curl_easy_strerror(res));
        st->transport_errors++;
    } else if (status < 200 || status >= 300) {
        char m[200];
        error_body_message(q->raw, q->raw_len, m, sizeof m);
        snprintf(msg, sizeof msg, "HTTP %ld: %s", status, m[0] ? m : "(empty body)");
        st->http_errors++;
    } else if (q->stream_error) {
        snprintf(msg, sizeof msg, "%s", q->stream_error_msg);
        st->stream_errors++;
    } else if (q->malformed) {
        snprintf(msg, sizeof msg, "malformed SSE: %d chunk(s) not OpenAI chunks, first: %s", q->malformed, q->malformed_msg);
        st->malformed_chunks += q->malformed;
    } else if (sse_truncated || !q->saw_done) {
        snprintf(msg, sizeof msg, "truncated stream: ended %s after %zu chunks", sse_truncated ? "mid-event" : "without [DONE]",
                 q->n_times);
        st->truncated_streams++;
    }
    if (q->malformed && msg[0] && !strstr(msg, "malformed")) st->malformed_chunks += q->malformed;

    rq->ok = msg[0] == '\0';
    snprintf(rq->error, sizeof rq->error, "%s", msg);
    rq->t_first_token_s = q->t_first;
    if (q->n_times > 0) {
        rq->token_times_s = q->times; /* the record takes ownership */
        rq->n_token_times = q->n_times;
        q->times = NULL;
        q->n_times = 0;
    }
    size_t chunks = rq->n_token_times;
    if (q->has_usage) {
        rq->tokens_in = (int)q->usage_in;
        rq->tokens_out = (int)q->usage_out;
        snprintf(rq->token_count_source, sizeof rq->token_count_source, "usage");
        if (rq->ok && q->usage_out > (long long)chunks && !q->plain) st->usage_exceeds_chunks++;
    } else if (q->plain) {
        rq->tokens_in = rq->tokens_out = 0; /* a plain response without usage: unknown */
        snprintf(rq->token_count_source, sizeof rq->token_count_source, "none");
        if (rq->ok) st->usage_missing++;
    } else {
        rq->tokens_in = 0;
        rq->tokens_out = (int)chunks;
        snprintf(rq->token_count_source, sizeof rq->token_count_source, "chunks");
        if (rq->ok) st->usage_missing++;
    }
    if (q->has_energy) rq->energy_j = q->energy_j; /* the server attributed it (etok serve) */
    if (r->o->keep_output && q->text) {
        rq->output = q->text;
        q->text = NULL;
    }
    st->requests++;
    if (rq->ok) st->ok++;
    else st->failed++;
}

typedef struct {
    char *p;
    size_t n;
} small_body;

static size_t small_sink(char *d, size_t s, size_t n, void *arg) {
    small_body *b = arg;
    size_t k = s * n;
    if (b->n + k > (1u << 20)) return 0;
    char *np = realloc(b->p, b->n + k + 1);
    if (!np) return 0;
    b->p = np;
    memcpy(b->p + b->n, d, k);
    b->n += k;
    b->p[b->n] = '\0';
    return k;
}

int etok_endpoint_discover_model(const char *url, const char *api_key, double timeout_s, char *out, size_t cap,
                                 etok_err *err) {
    size_t n = strlen(url);
    while (n > 0 && url[n - 1] == '/') n--;
    if (n >= 17 && !memcmp(url + n - 17, "/chat/completions", 17)) n -= 17;
    else if (n >= 12 && !memcmp(url + n - 12, "/completions", 12)) n -= 12;
    int has_v1 = n >= 3 && !memcmp(url + n - 3, "/v1", 3);
    char models[1200];
    snprintf(models, sizeof models, "%.*s%s", (int)(n > 1000 ? 1000 : n), url, has_v1 ? "/models" : "/v1/models");
    const char *key = api_key ? api_key : getenv("OPENAI_API_KEY");
    char auth[1100];
    struct curl_slist *h = NULL;
    if (key && *key && strlen(key) < 1000) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
        h = curl_slist_append(NULL, auth);
    }
    small_body b = {0};
    CURL *c = curl_easy_init();
    if (!c) {
        curl_slist_free_all(h);
        return etok_errf(err, "endpoint: libcurl could not start");
    }
    curl_easy_setopt(c, CURLOPT_URL, models);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, small_sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)((timeout_s > 0 ? timeout_s : 10) * 1000));
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    int ret = -1;
    if (rc != CURLE_OK) etok_errf(err, "endpoint: GET %s: %s", models, curl_easy_strerror(rc));
    else if (status != 200) etok_errf(err, "endpoint: GET %s: HTTP %ld", models, status);
    else {
        json_t *j = b.p ? json_loads(b.p, 0, NULL) : NULL;
        const char *id = json_string_value(json_object_get(json_array_get(json_object_get(j, "data"), 0), "id"));
        if (!id) etok_errf(err, "endpoint: GET %s: no data[0].id in the answer", models);
        else {
            snprintf(out, cap, "%s", id);
            ret = 0;
        }
        json_decref(j);
    }
    free(b.p);
    return ret;
}

int etok_endpoint_run(const etok_endpoint_opts *o, const char *const *prompts, int n_prompts,
                      etok_record *rec, volatile int *stop, etok_endpoint_progress_fn cb, void *cb_arg,
                      etok_err *err) {
    if (!o) return etok_errc(err, ETOK_EXIT_USAGE, "endpoint: no URL given");
    if (etok_endpoint_check_url("endpoint: URL", o->url, err)) return -1;
    if (!prompts || n_prompts <= 0) return etok_errc(err, ETOK_EXIT_USAGE, "endpoint: no prompts to send");
    if (o->rate_rps < 0 || !isfinite(o->rate_rps)) return etok_errc(err, ETOK_EXIT_USAGE, "endpoint: rate must be >= 0");
    if (o->concurrency < 0) return etok_errc(err, ETOK_EXIT_USAGE, "endpoint: concurrency must be >= 0");
    if (o->n_requests < 0 || o->duration_s < 0) return etok_errc(err, ETOK_EXIT_USAGE, "endpoint: requests and duration must be >= 0");

    /* servers such as vLLM require "model": ask the server when the caller did not say */
    etok_endpoint_opts o_local = *o;
    char found_model[256];
    if (!o->model) {
        etok_err derr = {0};
        if (etok_endpoint_discover_model(o->url, o->api_key, o->request_timeout_s > 0 && o->request_timeout_s < 10 ? o->request_timeout_s : 10,
                                         found_model, sizeof found_model, &derr) == 0)
            o_local.model = found_model;
    }
    o = &o_local;
    run_ctx r = {.o = o, .rec = rec, .t_start_mono = etok_mono_s()};
    r.max_response = o->max_response_bytes ? o->max_response_bytes : DEFAULT_MAX_RESPONSE;
    char *url = etok_endpoint_url(o->url, o->api);
    const char *key = o->api_key ? o->api_key : getenv("OPENAI_API_KEY");
    char auth[1024] = "";
    if (key && *key) {
        if (strlen(key) > sizeof auth - 32) {
            free(url);
            return etok_errc(err, ETOK_EXIT_USAGE, "endpoint: API key is longer than %zu bytes", sizeof auth - 32);
        }
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    }
    CURLM *multi = curl_multi_init();
    if (!url || !multi) {
        free(url);
        if (multi) curl_multi_cleanup(multi);
        return etok_errf(err, "endpoint: libcurl could not start (curl_multi_init failed)");
    }
    int open_loop = o->rate_rps > 0;
    int cap = open_loop ? (o->concurrency > 0 ? o->concurrency : OPEN_LOOP_DEFAULT_CAP) : (o->concurrency > 0 ? o->concurrency : 1);
    int total = o->n_requests > 0 ? o->n_requests : (o->duration_s > 0 ? 0 : n_prompts); /* 0 = until duration */
    r.timer_deadline = -1;
    r.ep = epoll_create1(EPOLL_CLOEXEC);
    if (r.ep < 0) {
        free(url);
        curl_multi_cleanup(multi);
        return etok_errf(err, "endpoint: epoll_create1 failed");
    }
    curl_multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, on_socket);
    curl_multi_setopt(multi, CURLMOPT_SOCKETDATA, &r);
    curl_multi_setopt(multi, CURLMOPT_TIMERFUNCTION, on_timer);
    curl_multi_setopt(multi, CURLMOPT_TIMERDATA, &r);
    curl_multi_setopt(multi, CURLMOPT_MAXCONNECTS, (long)cap + 16);
    curl_multi_setopt(multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, (long)cap);

    req_ctx **live = calloc((size_t)cap, sizeof *live);
    if (!live) {
        free(url);
        curl_multi_cleanup(multi);
        close(r.ep);
        return etok_errf(err, "endpoint: out of memory");
    }
    double cpu0 = thread_cpu_s();
    uint64_t rng = o->seed;
    double t0 = rec_now(&r);
    double next_arrival = t0 + (open_loop ? etok_endpoint_exp_gap_s(&rng, o->rate_rps) : 0);
    int issued = 0, in_flight = 0, consecutive_connect_fail = 0, issuing = 1;
    double last_cb = -1;
    long long tokens_out = 0;
    int rc = 0;

    for (;;) {
        double now = rec_now(&r);
        if (stop && *stop) issuing = 0;
        if (total > 0 && issued >= total) issuing = 0;
        if (o->duration_s > 0 && now - t0 >= o->duration_s) issuing = 0;
        if (consecutive_connect_fail >= (cap > 8 ? cap : 8)) {
            if (issuing) r.st.stopped_unreachable = 1;
            issuing = 0;
        }
        /* issue */
        while (issuing && in_flight < cap && (!open_loop || now >= next_arrival)) {
            if (total > 0 && issued >= total) break;
            int slot = 0;
            while (live[slot]) slot++;
            int mt = o->max_tokens > 0 ? o->max_tokens : DEFAULT_MAX_TOKENS;
            if (o->prompt_max_tokens && o->prompt_max_tokens[issued % n_prompts] > 0)
                mt = o->prompt_max_tokens[issued % n_prompts];
            const etok_endpoint_stop *ps = o->prompt_stop ? &o->prompt_stop[issued % n_prompts] : NULL;
            req_ctx *q = req_start(&r, multi, url, auth[0] ? auth : NULL, prompts[issued % n_prompts], mt, ps, issued, err);
            issued++;
            if (!q) {
                if (r.rec->n_requests == 0 || r.rec->requests[r.rec->n_requests - 1].error[0] == '\0') {
                    rc = -1; /* could not even record it */
                    goto out;
                }
                r.st.requests++;
                r.st.failed++;
                r.rec->requests[r.rec->n_requests - 1].t_done_s = rec_now(&r);
            } else {
                live[slot] = q;
                in_flight++;
            }
            if (open_loop) next_arrival += etok_endpoint_exp_gap_s(&rng, o->rate_rps);
        }
        if (!issuing && in_flight == 0) break;
        if (stop && *stop && in_flight > 0) {
            for (int i = 0; i < cap; i++)
                if (live[i]) {
                    curl_multi_remove_handle(multi, live[i]->easy);
                    req_finish(&r, live[i], CURLE_OK, 1);
                    req_free(live[i]);
                    live[i] = NULL;
                    in_flight--;
                }
            break;
        }
        int running = 0;
        {
            int wait_ms = 50;
            if (open_loop && issuing) {
                double dt = next_arrival - rec_now(&r);
                int ms = dt <= 0 ? 0 : (int)(dt * 1000) + 1;
                if (ms < wait_ms) wait_ms = ms;
            }
            if (r.timer_deadline >= 0) {
                double dt = r.timer_deadline - etok_mono_s();
                int ms = dt <= 0 ? 0 : (int)(dt * 1000) + 1;
                if (ms < wait_ms) wait_ms = ms;
            }
            struct epoll_event evs[256];
            int nev = 0;
            if (in_flight > 0) nev = epoll_wait(r.ep, evs, 256, wait_ms);
            else if (issuing && wait_ms > 0) etok_sleep_s(wait_ms / 1000.0, stop);
            for (int k = 0; k < nev; k++) {
                int flags = ((evs[k].events & EPOLLIN) ? CURL_CSELECT_IN : 0) | ((evs[k].events & EPOLLOUT) ? CURL_CSELECT_OUT : 0) |
                            ((evs[k].events & (EPOLLERR | EPOLLHUP)) ? CURL_CSELECT_ERR : 0);
                curl_multi_socket_action(multi, evs[k].data.fd, flags, &running);
            }
            if (r.timer_deadline >= 0 && etok_mono_s() >= r.timer_deadline) {
                r.timer_deadline = -1;
                curl_multi_socket_action(multi, CURL_SOCKET_TIMEOUT, 0, &running);
            }
        }
        CURLMsg *m;
        int left;
        while ((m = curl_multi_info_read(multi, &left))) {
            if (m->msg != CURLMSG_DONE) continue;
            req_ctx *q = NULL;
            curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&q);
            CURLcode res = m->data.result;
            curl_multi_remove_handle(multi, m->easy_handle);
            if (!q) continue;
            req_finish(&r, q, res, 0);
            const etok_request *rq = &rec->requests[q->rec_index];
            tokens_out += rq->tokens_out;
            if (res == CURLE_COULDNT_CONNECT || res == CURLE_COULDNT_RESOLVE_HOST) consecutive_connect_fail++;
            else consecutive_connect_fail = 0;
            for (int i = 0; i < cap; i++)
                if (live[i] == q) live[i] = NULL;
            req_free(q);
            in_flight--;
            if (cb) {
                etok_endpoint_progress p = {rec_now(&r), issued, r.st.requests, r.st.ok, r.st.failed, in_flight, tokens_out};
                cb(&p, cb_arg);
                last_cb = p.t_s;
            }
        }
        now = rec_now(&r);
        if (cb && now - last_cb >= 0.25) {
            etok_endpoint_progress p = {now, issued, r.st.requests, r.st.ok, r.st.failed, in_flight, tokens_out};
            cb(&p, cb_arg);
            last_cb = now;
        }
    }
    if (stop && *stop) {
        rec->partial = 1;
        if (!rec->stop_reason[0]) snprintf(rec->stop_reason, sizeof rec->stop_reason, "interrupted");
    }
    /* The server refused connections until the end: issuing stopped early, or the last
     * request(s) to finish could not connect. Either way the run did not do what was asked. */
    if (r.st.stopped_unreachable || consecutive_connect_fail > 0) {
        r.st.unreachable = 1;
        rec->partial = 1;
        if (!rec->stop_reason[0]) snprintf(rec->stop_reason, sizeof rec->stop_reason, "endpoint_unreachable");
    }
out:
    for (int i = 0; i < cap; i++)
        if (live[i]) {
            curl_multi_remove_handle(multi, live[i]->easy);
            req_free(live[i]);
        }
    free(live);
    curl_multi_cleanup(multi);
    close(r.ep);
    free(url);
    r.st.cpu_s = thread_cpu_s() - cpu0;
    r.st.wall_s = rec_now(&r) - t0;
    if (o->stats) *o->stats = r.st;
    return rc;
}
