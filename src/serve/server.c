/* server.c — `etok serve`: an OpenAI-compatible HTTP server over the built-in engine, with the
 * energy of every request (the attribution rule is documented in include/etok/serve.h).
 *
 * Owns: HTTP routing and validation (libmicrohttpd), connection limits and timeouts, the
 * request queue, the single engine thread that runs continuous batching (every
 * etok_engine_step advances all in-flight requests), per-step energy attribution, the SSE and
 * JSON response shapes, the live counters behind /metrics, and an orderly shutdown. Does not
 * own: the forward pass (engine), reading meters (the etok_energy_source given by the
 * caller), or the Prometheus text syntax (render/prom.c).
 *
 * Threads: libmicrohttpd runs an epoll event loop on a small pool of HTTP threads (no thread
 * per connection, no select() and its FD_SETSIZE cap), so thousands of idle or slow sockets
 * cost memory, not threads. An HTTP thread never blocks on generation: it parses, tokenizes,
 * enqueues and then SUSPENDS the connection (MHD_suspend_connection); the engine thread
 * RESUMES it when there is something to send (a finished request, new stream tokens). The
 * engine thread admits queued requests into free slots, steps, and publishes tokens. A watch
 * thread closes sockets that take too long to send a request (slowloris) and notices clients
 * that hung up while their connection is suspended (POLLRDHUP), cancelling their request in
 * the engine whether it streams or not. One mutex (s->mu) guards every shared field and every
 * suspend/resume (lock order: s->mu, then libmicrohttpd's own); s->cmu guards the connection
 * list. A request is freed when both sides released it. */
#include "etok/parse.h"
#include "etok/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/quant.h"
#include "etok/engine.h"
#include "etok/prom.h"
#include "etok/sse.h"
#include "serve/request.h"

#define DEFAULT_MAX_BODY (1u << 20)
#define DEFAULT_MAX_TOKENS_LIMIT 4096
#define DEFAULT_MAX_TOKENS 256
#define DEFAULT_MAX_QUEUE 1024
#define DEFAULT_MAX_SEQS 8
#define DEFAULT_WINDOW_S 60.0
#define RING_CAP 8192
#define DEFAULT_MAX_CONNECTIONS 8192
#define DEFAULT_CONN_TIMEOUT_S 15
#define DEFAULT_HEADER_TIMEOUT_S 10.0
#define DEFAULT_SHUTDOWN_GRACE_S 5.0
#define DEFAULT_HTTP_THREADS 4
#define FD_RESERVE 64        /* descriptors kept for the model, meters, logs and the -o record */
#define WATCH_PERIOD_S 0.1   /* how often the watch thread looks at sockets */
#define FLUSH_WAIT_S 2.0     /* after the engine stopped: time for final stream events to go out */

typedef enum { RQ_QUEUED, RQ_RUNNING, RQ_DONE, RQ_FAILED } rq_state;

typedef struct sreq {
    struct sreq *qnext;             /* waiting queue */
    struct sreq *aprev, *anext;     /* every live request (for shutdown) */
    int refs;
    rq_state state;
    int cancelled;                  /* the client went away */
    int chat, stream, include_usage;
    int max_tokens;
    etok_serve_request stop;        /* only its stop strings (n_stop, stop, stop_max_len) */
    etok_sampling sampling;
    int32_t *prompt;
    int n_prompt;
    int seq_id;
    /* output (engine thread writes, HTTP thread reads; under s->mu) */
    char *text;
    size_t text_len, text_cap;
    size_t stop_scan;               /* stop strings: text before this offset was searched */
    size_t *tok_end;                /* text offset after each output token */
    double *tok_t;                  /* when each output token was published (server time) */
    int n_out, tok_cap;
    char finish_reason[16];
    char error[256];
    double energy_j;
    double t_arrive_s, t_first_s, t_last_s;
    /* streaming (HTTP thread only, under s->mu) */
    int tok_emitted;
    size_t text_emitted;
    int sent_role, sent_end;
    char *out;
    size_t out_len, out_pos, out_cap;
    char id[48];
    long created;
    /* its connection: suspended while it waits for the engine (under s->mu) */
    struct MHD_Connection *conn;
    int fd;                         /* the connection's socket, polled for a hang-up while suspended */
    int suspended;
} sreq;

/* One accepted TCP connection (s->conns, under s->cmu): the watch thread closes it when a
 * whole request has not arrived within header_timeout_s of the connection opening or of the
 * previous response's end. */
typedef struct conn_track {
    struct conn_track *prev, *next;
    int fd;
    double t_wait_s;                /* since when a request is awaited (server time) */
    int busy;                       /* a request was received and is being answered */
    int killed;
} conn_track;

typedef struct {
    double t_end_s, energy_j;
    long long tokens, tokens_out;
} ring_entry;

struct etok_server {
    etok_serve_opts o;
    char host[64];
    char model_id[128];
    etok_model *model;
    etok_engine *engine;
    int ctx_len;
    struct MHD_Daemon *d;
    int port;
    pthread_t engine_thread, watch_thread;
    int engine_started, watch_started;
    int running;                    /* the engine thread runs */
    int stopping;                   /* shutdown began: new requests get 503 */
    int watching;                   /* the watch thread runs (under s->mu) */
    double t0_mono;
    int max_conn, max_per_ip;       /* effective limits */

    pthread_mutex_t cmu;            /* guards conns */
    conn_track *conns;
    int n_conns;

    pthread_mutex_t mu;
    pthread_cond_t work_cv;         /* wakes the engine thread */
    pthread_cond_t watch_cv;        /* wakes the watch thread (shutdown) */
    sreq *qhead, *qtail;
    int queued;
    sreq **active;                  /* max_seqs slots */
    int n_active;
    sreq *all;
    long next_id;

    /* metrics */
    long long tokens_in, tokens_out;
    long long req_ok, req_rejected, req_failed, req_cancelled;
    long long conn_closed_slow;     /* sockets closed for not sending a request in time */
    long long steps;
    double attributed_j, unattributed_j;
    etok_prom_histogram ttft, tpot, e2e;
    ring_entry ring[RING_CAP];
    int ring_head, ring_n;
    etok_energy_reading last;       /* last good reading */
    double engine_last_e;           /* the engine's books: energy accounted up to here (J) */
    int pending_idle;               /* the energy after engine_last_e will be booked unattributed
                                       (idle, or a request waits for the engine's fresh reading);
                                       0 while it belongs to the next or current step */
    int have_reading;
};

static double now_s(const etok_server *s) { return etok_mono_s() - s->t0_mono; }

/* ---------- suspended connections ---------- */

/* Park q's connection until the engine has something for it (under s->mu; only from the HTTP
 * thread running q->conn's handler or content reader, as libmicrohttpd requires). */
static void conn_suspend(sreq *q) {
    MHD_suspend_connection(q->conn);
    q->suspended = 1;
}

/* Hand q's connection back to its HTTP thread (under s->mu; any thread). Only a connection we
 * suspended is resumed, and libmicrohttpd never frees a suspended one, so q->conn is valid. */
static void conn_wake(sreq *q) {
    if (!q->suspended) return;
    q->suspended = 0;
    MHD_resume_connection(q->conn);
}

/* ---------- small buffers and JSON ---------- */

static int buf_add(char **b, size_t *len, size_t *cap, const char *s, size_t n) {
    if (*len + n + 1 > *cap) {
        size_t c = *cap ? *cap : 256;
        while (c < *len + n + 1) c *= 2;
        char *nb = realloc(*b, c);
        if (!nb) return -1;
        *b = nb;
        *cap = c;
    }
    memcpy(*b + *len, s, n);
    *len += n;
    (*b)[*len] = '\0';
    return 0;
}

static const char *source_label(const etok_server *s) {
    if (!s->o.energy.read || !s->have_reading) return "none";
    return etok_source_name(s->last.source);
}

/* A JSON string of bytes that may not be valid UTF-8 (a model can emit any bytes): invalid
 * bytes become U+FFFD so the response is always valid JSON. */
static json_t *json_text(const char *t, size_t n) {
    if (!t) return json_string("");
    if (etok_utf8_invalid_bytes(t, n) == 0) return json_stringn(t, n);
    char *o = malloc(n * 3 + 1);
    if (!o) return json_string("");
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t step = 1;
        unsigned char c = (unsigned char)t[i];
        if (c >= 0x80) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
            if (need > 1 && i + need <= n && etok_utf8_invalid_bytes(t + i, need) == 0) step = need;
            else {
                memcpy(o + k, "\xEF\xBF\xBD", 3);
                k += 3;
                i++;
                continue;
            }
        }
        memcpy(o + k, t + i, step);
        k += step;
        i += step;
    }
    json_t *j = json_stringn(o, k);
    free(o);
    return j ? j : json_string("");
}

/* usage object with tokens and energy */
static json_t *usage_json(const etok_server *s, const sreq *q) {
    json_t *u = json_object();
    long long total = (long long)q->n_prompt + q->n_out;
    json_object_set_new(u, "prompt_tokens", json_integer(q->n_prompt));
    json_object_set_new(u, "completion_tokens", json_integer(q->n_out));
    json_object_set_new(u, "total_tokens", json_integer(total));
    int have = s->o.energy.read && s->have_reading;
    json_object_set_new(u, "energy_j", have ? json_real(q->energy_j) : json_null());
    json_object_set_new(u, "joules_per_token", have && total > 0 ? json_real(q->energy_j / (double)total) : json_null());
    json_object_set_new(u, "joules_per_output_token", have && q->n_out > 0 ? json_real(q->energy_j / q->n_out) : json_null());
    json_object_set_new(u, "energy_source", json_string(source_label(s)));
    json_object_set_new(u, "energy_boundary", json_string(have ? etok_boundary_name(s->last.boundary) : "none"));
    json_object_set_new(u, "energy_method", json_string("per-step split by token share"));
    /* a request shorter than this sees its energy smeared with its neighbours' */
    if (have && s->o.energy_period_s > 0) json_object_set_new(u, "energy_time_resolution_s", json_real(s->o.energy_period_s));
    if (s->o.grid.present) { /* opt-in carbon (docs/CARBON.md): operational, at the meter's boundary, no PUE */
        const etok_grid *g = &s->o.grid;
        json_object_set_new(u, "co2e_g", have ? json_real(q->energy_j / 3.6e6 * g->g_per_kwh) : json_null());
        json_object_set_new(u, "grid_intensity_g_per_kwh", json_real(g->g_per_kwh));
        json_object_set_new(u, "grid_basis", json_string(g->basis));
        if (g->region[0]) json_object_set_new(u, "grid_region", json_string(g->region));
        if (g->year > 0) json_object_set_new(u, "grid_year", json_integer(g->year));
    }
    return u;
}

/* ---------- requests ---------- */

static void sreq_release(etok_server *s, sreq *q) { /* under s->mu */
    if (--q->refs > 0) return;
    if (q->aprev) q->aprev->anext = q->anext;
    else s->all = q->anext;
    if (q->anext) q->anext->aprev = q->aprev;
    etok_serve_request_free(&q->stop);
    free(q->prompt);
    free(q->text);
    free(q->tok_end);
    free(q->tok_t);
    free(q->out);
    free(q);
}

/* Keep a finished request in the run record, if one is kept (under s->mu). */
static void record_request(etok_server *s, const sreq *q) {
    etok_record *rec = s->o.record;
    if (!rec) return;
    if (rec->n_requests >= s->o.record_cap) {
        rec->partial = 1;
        return;
    }
    etok_request *r = etok_record_add_request(rec);
    if (!r) return;
    snprintf(r->id, sizeof r->id, "%s", q->id);
    r->t_send_s = q->t_arrive_s;
    r->t_first_token_s = q->t_first_s;
    r->t_done_s = q->t_last_s;
    r->tokens_in = q->n_prompt;
    r->tokens_out = q->n_out;
    r->ok = q->state == RQ_DONE;
    if (!r->ok) snprintf(r->error, sizeof r->error, "%s", q->cancelled ? "cancelled: the client went away" : q->error);
    r->energy_j = s->o.energy.read && s->have_reading ? q->energy_j : -1;
    snprintf(r->token_count_source, sizeof r->token_count_source, "engine");
    if (q->n_out > 0 && q->tok_t) { /* every token at the end of the step that made it */
        r->token_times_s = malloc((size_t)q->n_out * sizeof *r->token_times_s);
        if (r->token_times_s) {
            memcpy(r->token_times_s, q->tok_t, (size_t)q->n_out * sizeof *r->token_times_s);
            r->n_token_times = (size_t)q->n_out;
        }
    }
    rec->tokens_known = 1;
    rec->tokens_in += q->n_prompt;
    rec->tokens_out += q->n_out;
}

/* Finish a request (under s->mu): state, metrics, wake its HTTP side, drop the engine's ref. */
static void finish_request(etok_server *s, sreq *q, rq_state st, const char *reason) {
    q->state = st;
    q->t_last_s = now_s(s);
    if (st == RQ_DONE) {
        snprintf(q->finish_reason, sizeof q->finish_reason, "%s", reason);
        s->req_ok++;
        if (q->n_out > 1 && q->t_first_s >= 0) {
            etok_prom_histogram_observe(&s->tpot, (q->t_last_s - q->t_first_s) / (q->n_out - 1));
        }
        etok_prom_histogram_observe(&s->e2e, q->t_last_s - q->t_arrive_s);
    } else if (q->cancelled) {
        s->req_cancelled++;
    } else {
        snprintf(q->error, sizeof q->error, "%s", reason);
        s->req_failed++;
    }
    record_request(s, q);
    conn_wake(q);
    sreq_release(s, q);
}

static size_t utf8_complete_prefix(const char *t, size_t len) {
    /* back up over an incomplete trailing sequence (at most 3 bytes) */
    size_t i = len, back = 0;
    while (i > 0 && back < 4) {
        unsigned char c = (unsigned char)t[i - 1];
        if ((c & 0xC0) == 0x80) { i--; back++; continue; }
        if (c >= 0xC0) {
            size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : 2;
            return (len - (i - 1) >= need) ? len : i - 1;
        }
        return len;
    }
    return len;
}

static void append_token(etok_server *s, sreq *q, int32_t tok, double t) {
    size_t plen = 0;
    const char *piece = etok_token_piece(s->model, tok, &plen);
    if (piece && plen) buf_add(&q->text, &q->text_len, &q->text_cap, piece, plen);
    if (q->n_out + 1 > q->tok_cap) {
        int c = q->tok_cap ? q->tok_cap * 2 : 64;
        size_t *nt = realloc(q->tok_end, (size_t)c * sizeof *nt);
        if (!nt) return;
        q->tok_end = nt;
        double *ntt = realloc(q->tok_t, (size_t)c * sizeof *ntt);
        if (!ntt) return;
        q->tok_t = ntt;
        q->tok_cap = c;
    }
    q->tok_t[q->n_out] = t;
    q->tok_end[q->n_out++] = q->text_len;
    if (q->n_out == 1) {
        q->t_first_s = t;
        etok_prom_histogram_observe(&s->ttft, t - q->t_arrive_s);
    }
    s->tokens_out++;
}

/* A stop string in the text so far (engine thread, under s->mu)? Then the text ends where it
 * starts (the stop string and what followed it in the same token are not output) and every
 * token's end offset is clamped there. Only the new text, plus the stop length - 1 bytes before
 * it, is searched, so a stop string spanning tokens is found once its last byte arrives. */
static int stop_check(sreq *q) {
    if (q->stop.n_stop == 0 || !q->text) return 0;
    size_t at = etok_stop_scan(q->stop.stop, q->stop.n_stop, q->stop.stop_max_len, q->text, q->text_len, &q->stop_scan);
    if (at >= q->text_len) return 0;
    q->text_len = at;
    q->text[at] = '\0';
    for (int k = 0; k < q->n_out; k++)
        if (q->tok_end[k] > at) q->tok_end[k] = at;
    return 1;
}

/* ---------- energy ---------- */

static int read_energy(etok_server *s, double *total_j) { /* called without s->mu */
    if (!s->o.energy.read) return -1;
    etok_energy_reading r;
    if (s->o.energy.read(s->o.energy.arg, &r) != 0 || !isfinite(r.total_j)) return -1;
    pthread_mutex_lock(&s->mu);
    s->last = r;
    s->have_reading = 1;
    pthread_mutex_unlock(&s->mu);
    *total_j = r.total_j;
    return 0;
}

static void ring_push(etok_server *s, double t, double e, long long tokens, long long tokens_out) {
    int i = (s->ring_head + s->ring_n) % RING_CAP;
    if (s->ring_n == RING_CAP) s->ring_head = (s->ring_head + 1) % RING_CAP;
    else s->ring_n++;
    s->ring[i] = (ring_entry){t, e, tokens, tokens_out};
}

/* ---------- the engine thread ---------- */

static void admit(etok_server *s) { /* under s->mu */
    while (s->qhead && s->n_active < s->o.max_seqs) {
        sreq *q = s->qhead;
        s->qhead = q->qnext;
        if (!s->qhead) s->qtail = NULL;
        s->queued--;
        if (q->cancelled) {
            finish_request(s, q, RQ_FAILED, "cancelled");
            continue;
        }
        etok_err err = {0};
        int id = etok_engine_add(s->engine, q->prompt, q->n_prompt, q->max_tokens, &q->sampling, &err);
        if (id < 0) {
            char m[256];
            snprintf(m, sizeof m, "engine refused the request: %.200s", err.msg);
            finish_request(s, q, RQ_FAILED, m);
            continue;
        }
        q->seq_id = id;
        q->state = RQ_RUNNING;
        for (int i = 0; i < s->o.max_seqs; i++)
            if (!s->active[i]) {
                s->active[i] = q;
                break;
            }
        s->n_active++;
    }
}

static sreq *find_active(etok_server *s, int seq_id, int *slot) {
    for (int i = 0; i < s->o.max_seqs; i++)
        if (s->active[i] && s->active[i]->seq_id == seq_id) {
            *slot = i;
            return s->active[i];
        }
    return NULL;
}

static void *engine_main(void *arg) {
    etok_server *s = arg;
    /* the source counts from its own start, so everything before the engine's first reading
     * (model load, idle) is unattributed: start the books at 0 */
    double last_e = 0;
    int back_to_back = 0;
    pthread_mutex_lock(&s->mu);
    while (s->running) {
        /* drop requests whose client went away */
        for (int i = 0; i < s->o.max_seqs; i++) {
            sreq *q = s->active[i];
            if (q && q->cancelled) {
                etok_engine_remove(s->engine, q->seq_id);
                s->active[i] = NULL;
                s->n_active--;
                finish_request(s, q, RQ_FAILED, "cancelled");
            }
        }
        admit(s);
        if (s->n_active == 0) {
            back_to_back = 0;
            s->pending_idle = 1;
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000L;
            if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
            pthread_cond_timedwait(&s->work_cv, &s->mu, &ts);
            if (s->n_active == 0 && !s->qhead) { /* idle energy is nobody's */
                pthread_mutex_unlock(&s->mu);
                double e;
                int ok = read_energy(s, &e) == 0;
                pthread_mutex_lock(&s->mu);
                if (ok) {
                    if (isfinite(last_e)) s->unattributed_j += e - last_e;
                    s->engine_last_e = last_e = e;
                }
            }
            continue;
        }
        pthread_mutex_unlock(&s->mu);

        double e0 = last_e;
        if (!back_to_back || !isfinite(e0)) {
            double e;
            int ok = read_energy(s, &e) == 0;
            pthread_mutex_lock(&s->mu);
            if (ok) {
                if (isfinite(last_e)) s->unattributed_j += e - last_e;
                s->engine_last_e = e0 = last_e = e;
            }
            s->pending_idle = 0; /* from here on the energy is this step's */
            pthread_mutex_unlock(&s->mu);
        }
        etok_step_result res;
        etok_err err = {0};
        int rc = etok_engine_step(s->engine, &res, &err);
        double e1 = NAN;
        int have_e = read_energy(s, &e1) == 0 && isfinite(e0);
        double t = now_s(s);

        pthread_mutex_lock(&s->mu);
        if (rc != 0) { /* the engine failed: every request in it fails, the server goes on */
            for (int i = 0; i < s->o.max_seqs; i++)
                if (s->active[i]) {
                    etok_engine_remove(s->engine, s->active[i]->seq_id);
                    char m[256];
                    snprintf(m, sizeof m, "engine step failed: %.200s", err.msg);
                    finish_request(s, s->active[i], RQ_FAILED, m);
                    s->active[i] = NULL;
                }
            s->n_active = 0;
            back_to_back = 0;
            s->pending_idle = 1;
            if (have_e) {
                s->unattributed_j += e1 - e0;
                s->engine_last_e = last_e = e1;
            }
            continue;
        }
        s->steps++;
        double de = have_e ? e1 - e0 : 0;
        if (have_e) s->engine_last_e = last_e = e1;
        back_to_back = 1;
        long long step_tokens = 0, step_out = 0;
        /* a sequence's share = the tokens it put through this forward pass: its prompt chunk
         * when prefilling, else the one token it decodes */
        for (int k = 0; k < res.n_events; k++)
            step_tokens += res.events[k].prefill_tokens > 0 ? res.events[k].prefill_tokens : 1;
        if (step_tokens == 0 && have_e) s->unattributed_j += de;
        for (int k = 0; k < res.n_events; k++) {
            const etok_seq_event *ev = &res.events[k];
            int slot = -1;
            sreq *q = find_active(s, ev->seq_id, &slot);
            if (!q) continue;
            int share = ev->prefill_tokens > 0 ? ev->prefill_tokens : 1;
            if (step_tokens > 0 && have_e) {
                double ej = de * (double)share / (double)step_tokens;
                q->energy_j += ej;
                s->attributed_j += ej;
            }
            s->tokens_in += ev->prefill_tokens;
            int stopped = 0;
            if (ev->new_token >= 0 && !ev->finished_by_eog) {
                append_token(s, q, ev->new_token, t);
                step_out++;
                stopped = stop_check(q);
            }
            if (ev->finished || stopped) {
                etok_engine_remove(s->engine, q->seq_id);
                s->active[slot] = NULL;
                s->n_active--;
                finish_request(s, q, RQ_DONE, ev->finished_by_eog || stopped ? "stop" : "length");
            } else if (q->stream) {
                conn_wake(q); /* new tokens to send */
            }
        }
        ring_push(s, t, de, step_tokens, step_out);
        if (s->o.record) {
            if (s->o.record->n_steps >= s->o.record_cap) {
                s->o.record->partial = 1;
            } else {
                etok_step *sp = etok_record_add_step(s->o.record);
                if (sp) {
                    sp->t_start_s = res.t_start_s - s->t0_mono;
                    sp->t_end_s = res.t_end_s - s->t0_mono;
                    sp->prefill_tokens = res.prefill_tokens;
                    sp->decode_tokens = res.decode_tokens;
                    sp->flops = res.flops;
                    sp->bytes = res.bytes;
                }
            }
        }
    }
    /* shutting down: fail whatever is left */
    for (int i = 0; i < s->o.max_seqs; i++)
        if (s->active[i]) {
            etok_engine_remove(s->engine, s->active[i]->seq_id);
            finish_request(s, s->active[i], RQ_FAILED, "server shutting down");
            s->active[i] = NULL;
        }
    s->n_active = 0;
    while (s->qhead) {
        sreq *q = s->qhead;
        s->qhead = q->qnext;
        finish_request(s, q, RQ_FAILED, "server shutting down");
    }
    s->qtail = NULL;
    s->queued = 0;
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

/* ---------- HTTP helpers ---------- */

typedef struct {
    char *body;
    size_t len, cap;
    int too_big;
    sreq *q;                        /* a non-streaming request waiting for the engine (holds a ref) */
} conn_ctx;

static enum MHD_Result send_json_h(struct MHD_Connection *c, unsigned status, json_t *j, unsigned retry_after_s) {
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!text) return MHD_NO;
    size_t n = strlen(text);
    struct MHD_Response *r = MHD_create_response_from_buffer(n, text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after_s) {
        char ra[16];
        snprintf(ra, sizeof ra, "%u", retry_after_s);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j) { return send_json_h(c, status, j, 0); }

/* OpenAI's error shape: {"error":{"message","type","param","code"}}; retry_after_s > 0 adds a
 * Retry-After header (429, 503). */
static enum MHD_Result send_error_v(etok_server *s, struct MHD_Connection *c, unsigned status, unsigned retry_after_s,
                                    const char *type, const char *code, const char *param, const char *fmt, va_list ap) {
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    pthread_mutex_lock(&s->mu);
    s->req_rejected++;
    pthread_mutex_unlock(&s->mu);
    json_t *e = json_object();
    json_object_set_new(e, "message", json_string(msg));
    json_object_set_new(e, "type", json_string(type));
    json_object_set_new(e, "param", param ? json_string(param) : json_null());
    json_object_set_new(e, "code", code ? json_string(code) : json_null());
    json_t *root = json_object();
    json_object_set_new(root, "error", e);
    return send_json_h(c, status, root, retry_after_s);
}

static enum MHD_Result send_error(etok_server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static enum MHD_Result send_error(etok_server *s, struct MHD_Connection *c, unsigned status, const char *type,
                                  const char *code, const char *param, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = send_error_v(s, c, status, 0, type, code, param, fmt, ap);
    va_end(ap);
    return r;
}

static enum MHD_Result send_error_retry(etok_server *s, struct MHD_Connection *c, unsigned status, unsigned retry_after_s,
                                        const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));
static enum MHD_Result send_error_retry(etok_server *s, struct MHD_Connection *c, unsigned status, unsigned retry_after_s,
                                        const char *type, const char *code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result r = send_error_v(s, c, status, retry_after_s, type, code, NULL, fmt, ap);
    va_end(ap);
    return r;
}

static int auth_ok(const etok_server *s, struct MHD_Connection *c) {
    if (!s->o.api_key) return 1; /* an empty key is refused at start */
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    if (!h || strncmp(h, "Bearer ", 7)) return 0;
    const char *k = h + 7, *want = s->o.api_key;
    size_t a = strlen(k), b = strlen(want);
    unsigned diff = (unsigned)(a ^ b);
    for (size_t i = 0; i < b; i++) diff |= (unsigned char)want[i] ^ (unsigned char)(i < a ? k[i] : 0);
    return diff == 0;
}

/* ---------- response bodies ---------- */

static json_t *chunk_base(const etok_server *s, const sreq *q) {
    json_t *j = json_object();
    json_object_set_new(j, "id", json_string(q->id));
    json_object_set_new(j, "object", json_string(q->chat ? "chat.completion.chunk" : "text_completion"));
    json_object_set_new(j, "created", json_integer(q->created));
    json_object_set_new(j, "model", json_string(s->model_id));
    return j;
}

static void out_event(sreq *q, json_t *j) {
    char *t = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    if (!t) return;
    buf_add(&q->out, &q->out_len, &q->out_cap, "data: ", 6);
    buf_add(&q->out, &q->out_len, &q->out_cap, t, strlen(t));
    buf_add(&q->out, &q->out_len, &q->out_cap, "\n\n", 2);
    free(t);
}

static void out_choice(const etok_server *s, sreq *q, const char *text, size_t n, const char *finish, int role) {
    json_t *j = chunk_base(s, q);
    json_t *c = json_object();
    json_object_set_new(c, "index", json_integer(0));
    if (q->chat) {
        json_t *d = json_object();
        if (role) json_object_set_new(d, "role", json_string("assistant"));
        if (text) json_object_set_new(d, "content", json_text(text, n));
        json_object_set_new(c, "delta", d);
    } else {
        json_object_set_new(c, "text", json_text(text ? text : "", text ? n : 0));
    }
    json_object_set_new(c, "finish_reason", finish ? json_string(finish) : json_null());
    json_t *arr = json_array();
    json_array_append_new(arr, c);
    json_object_set_new(j, "choices", arr);
    out_event(q, j);
}

/* Produce the next SSE bytes of a stream into q->out (under s->mu). Returns 1 if produced,
 * 0 if nothing is ready yet, -1 at the end of the stream. */
static int stream_produce(etok_server *s, sreq *q) {
    q->out_len = q->out_pos = 0;
    if (q->sent_end) return -1;
    if (q->chat && !q->sent_role) {
        q->sent_role = 1;
        out_choice(s, q, "", 0, NULL, 1);
        return 1;
    }
    int done = q->state == RQ_DONE || q->state == RQ_FAILED;
    size_t ready = done ? q->text_len : utf8_complete_prefix(q->text ? q->text : "", q->text_len);
    /* bytes that may begin a stop string wait until the next token tells */
    if (!done && q->stop.n_stop > 0 && q->text) ready -= etok_serve_stop_holdback(&q->stop, q->text, ready);
    int produced = 0;
    /* one chunk per output token whose text is complete; a token whose bytes end inside a
     * UTF-8 character waits for the next and they go out together */
    while (q->tok_emitted < q->n_out && q->tok_end[q->tok_emitted] <= ready) {
        size_t end = q->tok_end[q->tok_emitted];
        q->tok_emitted++;
        if (end > q->text_emitted) {
            out_choice(s, q, q->text + q->text_emitted, end - q->text_emitted, NULL, 0);
            q->text_emitted = end;
            produced = 1;
        }
        if (q->out_len > 16384) break;
    }
    if (produced) return 1;
    if (q->state == RQ_DONE) {
        out_choice(s, q, NULL, 0, q->finish_reason, 0);
        if (q->include_usage) {
            json_t *j = chunk_base(s, q);
            json_object_set_new(j, "choices", json_array());
            json_object_set_new(j, "usage", usage_json(s, q));
            out_event(q, j);
        }
        buf_add(&q->out, &q->out_len, &q->out_cap, "data: [DONE]\n\n", 14);
        q->sent_end = 1;
        return 1;
    }
    if (q->state == RQ_FAILED) {
        json_t *e = json_object();
        json_object_set_new(e, "message", json_string(q->error[0] ? q->error : "request failed"));
        json_object_set_new(e, "type", json_string("server_error"));
        json_object_set_new(e, "param", json_null());
        json_object_set_new(e, "code", json_null());
        json_t *root = json_object();
        json_object_set_new(root, "error", e);
        out_event(q, root);
        buf_add(&q->out, &q->out_len, &q->out_cap, "data: [DONE]\n\n", 14);
        q->sent_end = 1;
        return 1;
    }
    return 0;
}

typedef struct {
    etok_server *s;
    sreq *q;
} stream_ctx;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max) {
    (void)pos;
    stream_ctx *sc = cls;
    etok_server *s = sc->s;
    sreq *q = sc->q;
    pthread_mutex_lock(&s->mu);
    if (q->cancelled) { /* the watch thread saw the client hang up */
        pthread_mutex_unlock(&s->mu);
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    for (;;) {
        if (q->out_pos < q->out_len) {
            size_t n = q->out_len - q->out_pos;
            if (n > max) n = max;
            memcpy(buf, q->out + q->out_pos, n);
            q->out_pos += n;
            pthread_mutex_unlock(&s->mu);
            return (ssize_t)n;
        }
        int r = stream_produce(s, q);
        if (r < 0) {
            pthread_mutex_unlock(&s->mu);
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (r == 0) { /* nothing yet: park the connection, the engine wakes it (conn_wake) */
            conn_suspend(q);
            pthread_mutex_unlock(&s->mu);
            return 0;
        }
    }
}

static void stream_free(void *cls) {
    stream_ctx *sc = cls;
    etok_server *s = sc->s;
    pthread_mutex_lock(&s->mu);
    if (sc->q->state == RQ_QUEUED || sc->q->state == RQ_RUNNING) {
        sc->q->cancelled = 1; /* the client went away: the engine thread drops it */
        pthread_cond_signal(&s->work_cv);
    }
    sreq_release(s, sc->q);
    pthread_mutex_unlock(&s->mu);
    free(sc);
}

/* ---------- /v1/chat/completions and /v1/completions ---------- */

static enum MHD_Result send_model_not_found(etok_server *s, struct MHD_Connection *c, const char *param, const char *id) {
    return send_error(s, c, 404, "invalid_request_error", "model_not_found", param,
                      "The model '%.200s' does not exist: this server serves '%s'", id, s->model_id);
}

/* The handler's call after the engine woke a parked non-streaming request: its answer, or
 * MHD_NO (close) when its client hung up. */
static enum MHD_Result answer_completion(etok_server *s, struct MHD_Connection *c, conn_ctx *cc) {
    sreq *q = cc->q;
    pthread_mutex_lock(&s->mu);
    if (q->cancelled) {
        pthread_mutex_unlock(&s->mu);
        return MHD_NO; /* completed() drops the ref */
    }
    if (q->state == RQ_QUEUED || q->state == RQ_RUNNING) { /* woken early: wait on */
        conn_suspend(q);
        pthread_mutex_unlock(&s->mu);
        return MHD_YES;
    }
    cc->q = NULL; /* the ref is released below */
    if (q->state == RQ_FAILED) {
        char m[256];
        snprintf(m, sizeof m, "%s", q->error);
        sreq_release(s, q);
        pthread_mutex_unlock(&s->mu);
        return send_error(s, c, 500, "server_error", NULL, NULL, "%s", m);
    }
    json_t *resp = json_object();
    json_object_set_new(resp, "id", json_string(q->id));
    json_object_set_new(resp, "object", json_string(q->chat ? "chat.completion" : "text_completion"));
    json_object_set_new(resp, "created", json_integer(q->created));
    json_object_set_new(resp, "model", json_string(s->model_id));
    json_t *ch = json_object();
    json_object_set_new(ch, "index", json_integer(0));
    json_t *txt = json_text(q->text ? q->text : "", q->text_len);
    if (q->chat) {
        json_t *msg = json_object();
        json_object_set_new(msg, "role", json_string("assistant"));
        json_object_set_new(msg, "content", txt);
        json_object_set_new(ch, "message", msg);
    } else {
        json_object_set_new(ch, "text", txt);
    }
    json_object_set_new(ch, "finish_reason", json_string(q->finish_reason));
    json_t *arr = json_array();
    json_array_append_new(arr, ch);
    json_object_set_new(resp, "choices", arr);
    json_object_set_new(resp, "usage", usage_json(s, q));
    sreq_release(s, q);
    pthread_mutex_unlock(&s->mu);
    return send_json(c, 200, resp);
}

static enum MHD_Result handle_completion(etok_server *s, struct MHD_Connection *c, conn_ctx *cc, int chat) {
    if (cc->too_big)
        return send_error(s, c, 413, "invalid_request_error", "request_too_large", NULL,
                          "request body larger than the limit of %zu bytes", s->o.max_body_bytes);
    etok_serve_request rq;
    etok_serve_reject rj;
    if (etok_serve_request_parse(cc->body, cc->len, chat, s->o.max_tokens_limit, &rq, &rj) != 0)
        return send_error(s, c, (unsigned)rj.status, rj.type, rj.code[0] ? rj.code : NULL, rj.param[0] ? rj.param : NULL,
                          "%s", rj.message);
    enum MHD_Result ret;
#define REJECT(param, ...)                                                                                   \
    do {                                                                                                     \
        ret = send_error(s, c, 400, "invalid_request_error", "invalid_value", param, __VA_ARGS__);            \
        goto out;                                                                                            \
    } while (0)
    int32_t *toks = NULL;
    const char *what = chat ? "messages" : "prompt";
    if (rq.model && !s->o.accept_any_model && strcmp(rq.model, s->model_id) != 0) {
        ret = send_model_not_found(s, c, "model", rq.model);
        goto out;
    }
    /* the prompt: chat content and completion prompts are the user's text, never control
     * tokens; only the chat template inserts those (docs/SERVE.md) */
    etok_err terr = {0};
    int n, cap;
    if (chat) {
        cap = s->ctx_len + 1;
        toks = malloc((size_t)cap * sizeof *toks);
        if (!toks) REJECT(NULL, "out of memory");
        n = etok_tokenize_chat(s->model, rq.roles, (const char *const *)rq.contents, rq.n_msgs, 1, toks, cap, &terr);
        if (n > cap) n = cap; /* the count is enough to refuse it below */
    } else {
        /* a token is at least one byte, plus BOS: this cap always holds the whole prompt, so an
         * over-long prompt is told apart from a tokenizer failure */
        cap = (int)strlen(rq.prompt) + 2;
        toks = malloc((size_t)cap * sizeof *toks);
        if (!toks) REJECT(NULL, "out of memory");
        n = etok_tokenize(s->model, rq.prompt, 1, 0, toks, cap, &terr);
    }
    if (n < 0) REJECT(what, "could not tokenize: %s", terr.msg);
    if (n == 0) REJECT(what, "the prompt is empty");
    int max_tokens = rq.max_tokens;
    if (max_tokens > 0 && n + max_tokens > s->ctx_len) {
        ret = send_error(s, c, 400, "invalid_request_error", "context_length_exceeded", what,
                         "prompt (%d%s tokens) plus max_tokens (%d) is over the context length of %d", n,
                         chat && n == cap ? " or more" : "", max_tokens, s->ctx_len);
        goto out;
    }
    if (max_tokens == 0) { /* not given: the default, within the room the prompt leaves */
        if (n >= s->ctx_len) {
            ret = send_error(s, c, 400, "invalid_request_error", "context_length_exceeded", what,
                             "prompt (%d%s tokens) leaves no room for an answer in the context length of %d", n,
                             chat && n == cap ? " or more" : "", s->ctx_len);
            goto out;
        }
        max_tokens = s->o.default_max_tokens < s->ctx_len - n ? s->o.default_max_tokens : s->ctx_len - n;
    }
    int stream = rq.stream, include_usage = rq.include_usage;
    etok_sampling sp = rq.sampling;

    sreq *q = calloc(1, sizeof *q);
    if (!q) REJECT(NULL, "out of memory");
    q->chat = chat;
    for (int k = 0; k < rq.n_stop; k++) { /* the stop strings move to the request */
        q->stop.stop[k] = rq.stop[k];
        rq.stop[k] = NULL;
    }
    q->stop.n_stop = rq.n_stop;
    q->stop.stop_max_len = rq.stop_max_len;
    rq.n_stop = 0;
    q->stream = stream;
    q->include_usage = include_usage;
    q->max_tokens = max_tokens;
    q->sampling = sp;
    q->prompt = toks;
    toks = NULL;
    q->n_prompt = n;
    q->seq_id = -1;
    q->t_first_s = -1;
    q->created = (long)time(NULL);
    q->refs = 2; /* HTTP side + engine side */
    q->conn = c;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    q->fd = ci ? ci->connect_fd : -1;

    pthread_mutex_lock(&s->mu);
    if (s->stopping || s->queued >= s->o.max_queue) {
        int shutting = s->stopping;
        pthread_mutex_unlock(&s->mu);
        etok_serve_request_free(&q->stop);
        free(q->prompt);
        free(q);
        if (shutting) ret = send_error_retry(s, c, 503, 5, "server_error", "server_shutting_down", "server is shutting down");
        else
            ret = send_error_retry(s, c, 429, 1, "requests", "rate_limit_exceeded",
                                   "too many queued requests (%d, --max-queue); retry later", s->o.max_queue);
        goto out;
    }
    snprintf(q->id, sizeof q->id, "%s-%ld", chat ? "chatcmpl" : "cmpl", ++s->next_id);
    q->t_arrive_s = now_s(s);
    q->anext = s->all;
    if (s->all) s->all->aprev = q;
    s->all = q;
    if (s->qtail) s->qtail->qnext = q;
    else s->qhead = q;
    s->qtail = q;
    s->queued++;
    pthread_cond_signal(&s->work_cv);

    if (stream) {
        pthread_mutex_unlock(&s->mu);
        stream_ctx *sc = malloc(sizeof *sc);
        struct MHD_Response *r = sc ? MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_read, sc, stream_free) : NULL;
        if (!r) {
            pthread_mutex_lock(&s->mu);
            q->cancelled = 1;
            sreq_release(s, q);
            pthread_mutex_unlock(&s->mu);
            free(sc);
            ret = MHD_NO;
            goto out;
        }
        sc->s = s;
        sc->q = q;
        MHD_add_response_header(r, "Content-Type", "text/event-stream");
        MHD_add_response_header(r, "Cache-Control", "no-cache");
        ret = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        goto out;
    }
    /* non-streaming: park the connection until the engine finished the request; the handler
     * is called again then (answer_completion) */
    cc->q = q; /* the HTTP side's ref */
    conn_suspend(q);
    pthread_mutex_unlock(&s->mu);
    ret = MHD_YES;
out:
#undef REJECT
    etok_serve_request_free(&rq);
    free(toks);
    return ret;
}

/* ---------- /metrics ---------- */

static char *metrics_text(etok_server *s) {
    double e;
    (void)read_energy(s, &e); /* refresh the reading */
    etok_prom_buf b;
    etok_prom_init(&b);
    pthread_mutex_lock(&s->mu);
    double t = now_s(s);
    if (s->have_reading) etok_prom_energy_reading(&b, &s->last);
    etok_prom_family(&b, "etok_attributed_energy_joules_total", "counter",
                     "Energy (J) split across requests by their token share of each engine step");
    etok_prom_sample(&b, "etok_attributed_energy_joules_total", NULL, s->attributed_j);
    /* while idle, the energy since the engine's last reading is idle energy too: counting it
     * here makes attributed + unattributed = the meter's total at this scrape (the engine adds
     * the same amount to its books at its next reading, so the counter stays monotone). That
     * holds until the engine's fresh reading before its first step, not merely until a request
     * arrives: testing "no request queued or active" instead let the counter drop between a
     * request's arrival and that reading. */
    double unattributed = s->unattributed_j;
    if (s->pending_idle && s->have_reading && s->last.total_j > s->engine_last_e)
        unattributed += s->last.total_j - s->engine_last_e;
    etok_prom_family(&b, "etok_unattributed_energy_joules_total", "counter",
                     "Energy (J) used while no request was in the engine (idle, model load), attributed to none");
    etok_prom_sample(&b, "etok_unattributed_energy_joules_total", NULL, unattributed);
    etok_prom_family(&b, "etok_tokens_total", "counter", "Tokens processed: input = prompt tokens prefilled, output = generated");
    const char *ki[] = {"kind", "input", NULL}, *ko[] = {"kind", "output", NULL};
    etok_prom_sample(&b, "etok_tokens_total", ki, (double)s->tokens_in);
    etok_prom_sample(&b, "etok_tokens_total", ko, (double)s->tokens_out);
    etok_prom_family(&b, "etok_requests_total", "counter",
                     "Requests by outcome: ok, rejected (4xx/429 before the engine), failed (engine or shutdown), cancelled (client left)");
    const char *st_ok[] = {"status", "ok", NULL}, *st_rj[] = {"status", "rejected", NULL}, *st_f[] = {"status", "failed", NULL},
               *st_c[] = {"status", "cancelled", NULL};
    etok_prom_sample(&b, "etok_requests_total", st_ok, (double)s->req_ok);
    etok_prom_sample(&b, "etok_requests_total", st_rj, (double)s->req_rejected);
    etok_prom_sample(&b, "etok_requests_total", st_f, (double)s->req_failed);
    etok_prom_sample(&b, "etok_requests_total", st_c, (double)s->req_cancelled);
    etok_prom_family(&b, "etok_requests_in_flight", "gauge", "Requests in the engine");
    etok_prom_sample(&b, "etok_requests_in_flight", NULL, s->n_active);
    etok_prom_family(&b, "etok_requests_queued", "gauge", "Requests waiting for an engine slot");
    etok_prom_sample(&b, "etok_requests_queued", NULL, s->queued);
    etok_prom_family(&b, "etok_engine_steps_total", "counter", "Batched engine steps (forward passes)");
    etok_prom_sample(&b, "etok_engine_steps_total", NULL, (double)s->steps);
    etok_prom_family(&b, "etok_ttft_seconds", "histogram", "Time to first token (s), from arrival");
    etok_prom_histogram_write(&b, "etok_ttft_seconds", NULL, &s->ttft);
    etok_prom_family(&b, "etok_tpot_seconds", "histogram", "Time per output token after the first (s), per request");
    etok_prom_histogram_write(&b, "etok_tpot_seconds", NULL, &s->tpot);
    etok_prom_family(&b, "etok_e2e_seconds", "histogram", "Request latency from arrival to last token (s)");
    etok_prom_histogram_write(&b, "etok_e2e_seconds", NULL, &s->e2e);
    /* sliding window */
    double we = 0;
    long long wt = 0, wo = 0;
    for (int k = 0; k < s->ring_n; k++) {
        const ring_entry *r = &s->ring[(s->ring_head + k) % RING_CAP];
        if (t - r->t_end_s > s->o.jpt_window_s) continue;
        we += r->energy_j;
        wt += r->tokens;
        wo += r->tokens_out;
    }
    char win[32];
    snprintf(win, sizeof win, "%gs", s->o.jpt_window_s);
    const char *wl[] = {"window", win, "source", source_label(s), NULL};
    etok_prom_family(&b, "etok_joules_per_token", "gauge",
                     "Attributed energy per processed token (input + output) over the sliding window; NaN without tokens");
    etok_prom_sample(&b, "etok_joules_per_token", wl, s->have_reading && wt > 0 ? we / (double)wt : NAN);
    etok_prom_family(&b, "etok_joules_per_output_token", "gauge",
                     "Attributed energy per generated token over the sliding window; NaN without tokens");
    etok_prom_sample(&b, "etok_joules_per_output_token", wl, s->have_reading && wo > 0 ? we / (double)wo : NAN);
    pthread_mutex_lock(&s->cmu);
    int n_conns = s->n_conns;
    pthread_mutex_unlock(&s->cmu);
    etok_prom_family(&b, "etok_http_connections", "gauge", "Open HTTP connections");
    etok_prom_sample(&b, "etok_http_connections", NULL, n_conns);
    etok_prom_family(&b, "etok_http_slow_connections_closed_total", "counter",
                     "Connections closed for not sending a whole request within --request-timeout (slowloris)");
    etok_prom_sample(&b, "etok_http_slow_connections_closed_total", NULL, (double)s->conn_closed_slow);
    etok_prom_family(&b, "etok_info", "gauge", "etok serve: model, version and the engine's kernel level (active, detected)");
    const char *il[] = {"model", s->model_id, "version", "0.1.0", "kernel_level", etok_isa_name(etok_isa_active()),
                        "kernel_level_detected", etok_isa_name(etok_isa_detected()), NULL};
    etok_prom_sample(&b, "etok_info", il, 1);
    pthread_mutex_unlock(&s->mu);
    if (b.oom) {
        etok_prom_free(&b);
        return NULL;
    }
    return b.text;
}

/* ---------- routing ---------- */

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)version;
    etok_server *s = cls;
    conn_ctx *cc = *con_cls;
    if (!cc) {
        cc = calloc(1, sizeof *cc);
        if (!cc) return MHD_NO;
        *con_cls = cc;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        /* libmicrohttpd answers 400 itself to a Content-Length that is not a number; one that does
         * not parse here (beyond 2^64) is too big */
        unsigned long long declared = 0;
        etok_err perr = {0};
        if (cl && (etok_parse_u64("Content-Length", cl, ULLONG_MAX, &declared, &perr) != 0 || declared > s->o.max_body_bytes))
            cc->too_big = 1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        if (!cc->too_big) {
            if (cc->len + *upload_data_size > s->o.max_body_bytes) {
                cc->too_big = 1;
                free(cc->body);
                cc->body = NULL;
                cc->len = cc->cap = 0;
            } else if (buf_add(&cc->body, &cc->len, &cc->cap, upload_data, *upload_data_size) < 0) {
                cc->too_big = 1;
            }
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (cc->q) return answer_completion(s, c, cc); /* the engine woke a parked request */
    /* the whole request is in: the header deadline no longer applies to this connection */
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *ct = ci ? ci->socket_context : NULL;
    if (ct) {
        pthread_mutex_lock(&s->cmu);
        ct->busy = 1;
        pthread_mutex_unlock(&s->cmu);
    }
    int is_get = !strcmp(method, "GET"), is_post = !strcmp(method, "POST");
    if (!strcmp(url, "/health")) {
        if (!is_get) return send_error(s, c, 405, "invalid_request_error", "method_not_allowed", NULL, "use GET");
        json_t *j = json_object();
        pthread_mutex_lock(&s->mu);
        json_object_set_new(j, "status", json_string(s->stopping ? "stopping" : "ok"));
        json_object_set_new(j, "model", json_string(s->model_id));
        json_object_set_new(j, "in_flight", json_integer(s->n_active));
        json_object_set_new(j, "queued", json_integer(s->queued));
        pthread_mutex_unlock(&s->mu);
        return send_json(c, 200, j);
    }
    if (!strcmp(url, "/metrics")) {
        if (!is_get) return send_error(s, c, 405, "invalid_request_error", "method_not_allowed", NULL, "use GET");
        char *t = metrics_text(s);
        if (!t) return MHD_NO;
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(t), t, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
        enum MHD_Result ok = MHD_queue_response(c, 200, r);
        MHD_destroy_response(r);
        return ok;
    }
    int is_chat = !strcmp(url, "/v1/chat/completions"), is_cmpl = !strcmp(url, "/v1/completions");
    int is_models = !strcmp(url, "/v1/models");
    const char *model_ref = !strncmp(url, "/v1/models/", 11) ? url + 11 : NULL; /* GET /v1/models/{id} */
    if (model_ref) is_models = 1;
    if (!is_chat && !is_cmpl && !is_models)
        return send_error(s, c, 404, "invalid_request_error", "not_found", NULL, "no such endpoint: %s %s", method, url);
    if (!auth_ok(s, c))
        return send_error(s, c, 401, "invalid_request_error", "invalid_api_key", NULL,
                          "missing or incorrect API key: send 'Authorization: Bearer <key>'");
    if (is_models) {
        if (!is_get) return send_error(s, c, 405, "invalid_request_error", "method_not_allowed", NULL, "use GET");
        if (model_ref && strcmp(model_ref, s->model_id) != 0) return send_model_not_found(s, c, NULL, model_ref);
        json_t *m = json_object();
        json_object_set_new(m, "id", json_string(s->model_id));
        json_object_set_new(m, "object", json_string("model"));
        json_object_set_new(m, "created", json_integer(0));
        json_object_set_new(m, "owned_by", json_string("etok"));
        if (model_ref) return send_json(c, 200, m);
        json_t *arr = json_array();
        json_array_append_new(arr, m);
        json_t *j = json_object();
        json_object_set_new(j, "object", json_string("list"));
        json_object_set_new(j, "data", arr);
        return send_json(c, 200, j);
    }
    if (!is_post) return send_error(s, c, 405, "invalid_request_error", "method_not_allowed", NULL, "use POST");
    return handle_completion(s, c, cc, is_chat);
}

/* A request ended (answered, or its connection closed): free its context; a parked request
 * whose connection closed is cancelled in the engine. The connection's header deadline starts
 * again (it may carry the next request). */
static void completed(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode toe) {
    (void)toe;
    etok_server *s = cls;
    conn_ctx *cc = *con_cls;
    if (cc) {
        if (cc->q) {
            pthread_mutex_lock(&s->mu);
            if (cc->q->state == RQ_QUEUED || cc->q->state == RQ_RUNNING) {
                cc->q->cancelled = 1;
                pthread_cond_signal(&s->work_cv);
            }
            sreq_release(s, cc->q);
            pthread_mutex_unlock(&s->mu);
        }
        free(cc->body);
        free(cc);
    }
    *con_cls = NULL;
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    conn_track *ct = ci ? ci->socket_context : NULL;
    if (ct) {
        pthread_mutex_lock(&s->cmu);
        ct->busy = 0;
        ct->t_wait_s = now_s(s);
        pthread_mutex_unlock(&s->cmu);
    }
}

/* Connections opened and closed: the list the watch thread walks. libmicrohttpd calls CLOSED
 * before it closes the socket, and the watch thread shuts sockets down only under s->cmu, so
 * it never touches a descriptor number that was reused. */
static void conn_notify(void *cls, struct MHD_Connection *c, void **socket_context, enum MHD_ConnectionNotificationCode toe) {
    etok_server *s = cls;
    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        conn_track *ct = calloc(1, sizeof *ct);
        *socket_context = ct;
        if (!ct) return; /* untracked: only the idle timeout applies */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        ct->fd = ci ? ci->connect_fd : -1;
        ct->t_wait_s = now_s(s);
        pthread_mutex_lock(&s->cmu);
        ct->next = s->conns;
        if (s->conns) s->conns->prev = ct;
        s->conns = ct;
        s->n_conns++;
        pthread_mutex_unlock(&s->cmu);
    } else if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        conn_track *ct = *socket_context;
        if (!ct) return;
        pthread_mutex_lock(&s->cmu);
        if (ct->prev) ct->prev->next = ct->next;
        else s->conns = ct->next;
        if (ct->next) ct->next->prev = ct->prev;
        s->n_conns--;
        pthread_mutex_unlock(&s->cmu);
        free(ct);
        *socket_context = NULL;
    }
}

/* ---------- the watch thread ---------- */

/* Every WATCH_PERIOD_S: (1) shut down sockets that have not delivered a whole request within
 * header_timeout_s (a slowloris client trickling header lines keeps libmicrohttpd's idle
 * timer fresh forever; this deadline does not move); (2) poll the sockets of suspended
 * requests for a hang-up (POLLRDHUP: the peer closed; POLLHUP/POLLERR: reset) and cancel
 * those requests, streaming or not, then wake their connection so libmicrohttpd closes it. */
static void *watch_main(void *arg) {
    etok_server *s = arg;
    struct pollfd *pf = NULL;
    sreq **pq = NULL;
    size_t cap = 0;
    pthread_mutex_lock(&s->mu);
    while (s->watching) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += (long)(WATCH_PERIOD_S * 1e9);
        if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
        pthread_cond_timedwait(&s->watch_cv, &s->mu, &ts);
        if (!s->watching) break;
        /* (2) hang-ups of parked requests */
        size_t n = 0;
        for (sreq *q = s->all; q; q = q->anext)
            if (q->suspended && q->fd >= 0) n++;
        if (n > cap) {
            struct pollfd *npf = realloc(pf, n * sizeof *npf);
            if (npf) pf = npf;
            sreq **npq = npf ? realloc(pq, n * sizeof *npq) : NULL;
            if (npq) {
                pq = npq;
                cap = n;
            }
        }
        size_t k = 0;
        for (sreq *q = s->all; q && k < cap; q = q->anext)
            if (q->suspended && q->fd >= 0) {
                pf[k] = (struct pollfd){.fd = q->fd, .events = POLLRDHUP};
                pq[k++] = q;
            }
        if (k > 0 && poll(pf, (nfds_t)k, 0) > 0) {
            for (size_t i = 0; i < k; i++) {
                if (!(pf[i].revents & (POLLRDHUP | POLLHUP | POLLERR))) continue;
                sreq *q = pq[i];
                if (q->state == RQ_QUEUED || q->state == RQ_RUNNING) q->cancelled = 1;
                conn_wake(q);
                pthread_cond_signal(&s->work_cv);
            }
        }
        /* (1) the header deadline */
        double t = now_s(s), limit = s->o.header_timeout_s;
        pthread_mutex_unlock(&s->mu);
        long long closed = 0;
        pthread_mutex_lock(&s->cmu);
        for (conn_track *ct = s->conns; ct; ct = ct->next)
            if (!ct->busy && !ct->killed && ct->fd >= 0 && t - ct->t_wait_s > limit) {
                shutdown(ct->fd, SHUT_RDWR);
                ct->killed = 1;
                closed++;
            }
        pthread_mutex_unlock(&s->cmu);
        pthread_mutex_lock(&s->mu);
        s->conn_closed_slow += closed;
    }
    pthread_mutex_unlock(&s->mu);
    free(pf);
    free(pq);
    return NULL;
}

/* ---------- lifecycle ---------- */

const etok_model *etok_server_model(const etok_server *s) { return s ? s->model : NULL; }

int etok_server_port(const etok_server *s) { return s->port; }

etok_server *etok_server_start(const etok_serve_opts *o, etok_err *err) {
    if (!o->model_path) {
        etok_errc(err, ETOK_EXIT_USAGE, "serve: no model given (-m model.gguf)");
        return NULL;
    }
    if (o->api_key && !*o->api_key) { /* an empty key would read as "no authentication" */
        etok_errc(err, ETOK_EXIT_USAGE, "serve: the API key is empty (omit it to serve without authentication)");
        return NULL;
    }
    etok_server *s = calloc(1, sizeof *s);
    if (!s) {
        etok_errf(err, "serve: out of memory");
        return NULL;
    }
    s->o = *o;
    if (s->o.max_seqs <= 0) s->o.max_seqs = DEFAULT_MAX_SEQS;
    if (!s->o.max_body_bytes) s->o.max_body_bytes = DEFAULT_MAX_BODY;
    if (s->o.max_tokens_limit <= 0) s->o.max_tokens_limit = DEFAULT_MAX_TOKENS_LIMIT;
    if (s->o.default_max_tokens <= 0) s->o.default_max_tokens = DEFAULT_MAX_TOKENS;
    if (s->o.default_max_tokens > s->o.max_tokens_limit) s->o.default_max_tokens = s->o.max_tokens_limit;
    if (s->o.max_queue <= 0) s->o.max_queue = DEFAULT_MAX_QUEUE;
    if (s->o.jpt_window_s <= 0) s->o.jpt_window_s = DEFAULT_WINDOW_S;
    snprintf(s->host, sizeof s->host, "%s", o->host ? o->host : "127.0.0.1");
    const char *base = strrchr(o->model_path, '/');
    snprintf(s->model_id, sizeof s->model_id, "%s", o->model_id ? o->model_id : base ? base + 1 : o->model_path);
    s->t0_mono = o->t0_mono > 0 ? o->t0_mono : etok_mono_s();
    if (!s->o.record_cap) s->o.record_cap = 1000000;
    if (s->o.conn_timeout_s <= 0) s->o.conn_timeout_s = DEFAULT_CONN_TIMEOUT_S;
    if (!(s->o.header_timeout_s > 0)) s->o.header_timeout_s = DEFAULT_HEADER_TIMEOUT_S;
    if (s->o.shutdown_grace_s == 0) s->o.shutdown_grace_s = DEFAULT_SHUTDOWN_GRACE_S;
    if (!(s->o.shutdown_grace_s > 0)) s->o.shutdown_grace_s = 0; /* < 0 or NaN: none */
    if (s->o.http_threads <= 0) s->o.http_threads = DEFAULT_HTTP_THREADS;
    /* every connection is a descriptor: the limit fits under RLIMIT_NOFILE (etok serve raises
     * the soft limit to the hard one first), keeping FD_RESERVE for everything else */
    s->max_conn = s->o.max_connections > 0 ? s->o.max_connections : DEFAULT_MAX_CONNECTIONS;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY) {
        long room = (long)rl.rlim_cur - FD_RESERVE;
        if (room < 16) room = 16;
        if (s->max_conn > room) s->max_conn = (int)room;
    }
    s->max_per_ip = s->o.max_conn_per_ip > 0 ? s->o.max_conn_per_ip : s->o.max_conn_per_ip < 0 ? 0 : s->max_conn / 2;
    if (s->max_per_ip > s->max_conn) s->max_per_ip = s->max_conn;
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->cmu, NULL);
    pthread_cond_init(&s->work_cv, NULL);
    pthread_cond_init(&s->watch_cv, NULL);
    static const double ttft_b[] = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};
    static const double tpot_b[] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5};
    static const double e2e_b[] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
    etok_prom_histogram_init(&s->ttft, ttft_b, (int)(sizeof ttft_b / sizeof ttft_b[0]));
    etok_prom_histogram_init(&s->tpot, tpot_b, (int)(sizeof tpot_b / sizeof tpot_b[0]));
    etok_prom_histogram_init(&s->e2e, e2e_b, (int)(sizeof e2e_b / sizeof e2e_b[0]));

    s->model = etok_model_load(o->model_path, err);
    if (!s->model) goto fail;
    if (etok_model_set_weights(s->model, o->weights, err)) goto fail;
    etok_engine_opts eo = {.n_threads = o->n_threads, .max_seqs = s->o.max_seqs, .ctx_len = o->ctx_len,
                           .kv_bits = o->kv_bits, .attn_window = o->attn_window, .attn_sinks = o->attn_sinks};
    s->engine = etok_engine_new(s->model, &eo, err);
    if (!s->engine) goto fail;
    const etok_model_info *mi = etok_model_get_info(s->model);
    s->ctx_len = o->ctx_len > 0 ? o->ctx_len : (mi->ctx_max > 0 && mi->ctx_max < 2048 ? mi->ctx_max : 2048);
    s->active = calloc((size_t)s->o.max_seqs, sizeof *s->active);
    if (!s->active) {
        etok_errf(err, "serve: out of memory");
        goto fail;
    }
    s->running = 1;
    s->pending_idle = 1; /* the books start idle */
    if (pthread_create(&s->engine_thread, NULL, engine_main, s) != 0) {
        etok_errf(err, "serve: cannot start the engine thread");
        goto fail;
    }
    s->engine_started = 1;
    s->watching = 1;
    if (pthread_create(&s->watch_thread, NULL, watch_main, s) != 0) {
        s->watching = 0;
        etok_errf(err, "serve: cannot start the watch thread");
        goto fail;
    }
    s->watch_started = 1;

    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, s->host, &addr.sin_addr) != 1) {
        etok_errc(err, ETOK_EXIT_USAGE, "serve: --host '%s' is not an IPv4 address", s->host);
        goto fail;
    }
    /* epoll on a pool of HTTP threads; connections wait for the engine suspended (see the top
     * comment); beyond the limits libmicrohttpd closes new connections at once */
    s->d = MHD_start_daemon(MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME, (uint16_t)o->port, NULL, NULL, handler,
                            s, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_NOTIFY_COMPLETED, completed, s,
                            MHD_OPTION_NOTIFY_CONNECTION, conn_notify, s, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)s->o.conn_timeout_s, MHD_OPTION_CONNECTION_LIMIT, (unsigned)s->max_conn,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)s->max_per_ip, MHD_OPTION_THREAD_POOL_SIZE,
                            (unsigned)s->o.http_threads, MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)4096, MHD_OPTION_END);
    if (!s->d) {
        etok_errf(err, "serve: cannot listen on %s:%d (port in use or not permitted)", s->host, o->port);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    s->port = info ? info->port : o->port;
    return s;
fail:
    etok_server_stop(s);
    return NULL;
}

int etok_server_max_connections(const etok_server *s, int *per_ip) {
    if (per_ip) *per_ip = s->max_per_ip;
    return s->max_conn;
}

static void sleep_s(double t) {
    struct timespec ts = {(time_t)t, (long)((t - (double)(time_t)t) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Shutdown: stop accepting; give what is queued or generating shutdown_grace_s to finish; then
 * the engine fails the rest ("server shutting down"), which ends each open stream with an
 * error event and data: [DONE] and each waiting non-streaming request with a 500; wait (at
 * most FLUSH_WAIT_S) until those last bytes went out, and only then close every connection. */
void etok_server_stop(etok_server *s) {
    if (!s) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    pthread_mutex_unlock(&s->mu);
    MHD_socket lfd = MHD_INVALID_SOCKET;
    if (s->d) {
        lfd = MHD_quiesce_daemon(s->d);
        double t_end = etok_mono_s() + s->o.shutdown_grace_s;
        for (;;) {
            pthread_mutex_lock(&s->mu);
            int busy = s->n_active > 0 || s->queued > 0;
            pthread_mutex_unlock(&s->mu);
            if (!busy || etok_mono_s() >= t_end || (s->o.cut_grace && atomic_load(s->o.cut_grace))) break;
            sleep_s(0.01);
        }
    }
    pthread_mutex_lock(&s->mu);
    s->running = 0;
    pthread_cond_broadcast(&s->work_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->engine_started) pthread_join(s->engine_thread, NULL);
    /* every request is now DONE or FAILED and its connection woken: let the answers go out */
    if (s->d) {
        double t_end = etok_mono_s() + FLUSH_WAIT_S;
        for (;;) {
            pthread_mutex_lock(&s->mu);
            int left = s->all != NULL;
            pthread_mutex_unlock(&s->mu);
            if (!left || etok_mono_s() >= t_end) break;
            sleep_s(0.01);
        }
    }
    pthread_mutex_lock(&s->mu);
    s->watching = 0;
    pthread_cond_broadcast(&s->watch_cv);
    pthread_mutex_unlock(&s->mu);
    if (s->watch_started) pthread_join(s->watch_thread, NULL);
    if (s->d) MHD_stop_daemon(s->d);
    if (lfd != MHD_INVALID_SOCKET) close(lfd);
    if (s->engine) etok_engine_free(s->engine);
    if (s->model) etok_model_free(s->model);
    free(s->active);
    pthread_cond_destroy(&s->work_cv);
    pthread_cond_destroy(&s->watch_cv);
    pthread_mutex_destroy(&s->cmu);
    pthread_mutex_destroy(&s->mu);
    free(s);
}
