/* api.c — libetok's public API (include/etok/etok.h, docs/API.md): named measurement windows
 * over a meter set, saved as a normal run record; and a small generation loop over the engine.
 * Owns: window bookkeeping, live window energy from the meter set's per-domain snapshots, the
 * record of kind "api". Does not own: reading meters (meter/), energy analysis of a record
 * (analyse/energy.c, used for final readings), the engine (engine/).
 *
 * Live readings (before save) are differences of the sampler's cumulative per-domain energies
 * taken right after a fresh reading of every meter (etok_meters_mark) at each edge: for a counter
 * domain the uncertainty is its 2-reading resolution, for power and estimate domains the growth
 * of their integration (and error band) uncertainty over the window. Final readings (after save)
 * are etok_energy_window over the complete record, as `etok report` computes them. */
#include "etok/etok.h"

#include <math.h>
#include <stdarg.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "etok/energy.h"
#include "etok/engine.h"
#include "etok/meter.h"
#include "etok/paths.h"
#include "etok/record.h"
#include "etok/util.h"

#ifndef ETOK_VERSION
#define ETOK_VERSION "0.1.0"
#endif

#define API_MAX_DOMAINS 512
#define API_MAX_METERS 16

int etok_api_version(void) { return ETOK_API_VERSION; }
const char *etok_version(void) { return ETOK_VERSION; }

typedef struct {
    char name[64];
    char request_id[64];
    int state;              /* 1 opening, 2 open, 3 closing, 4 ended */
    double t1, t2;
    int n_dom;
    double *e1, *u1;        /* per domain at the start edge (live readings) */
    int has_energy;
    double energy_j, unc_j;
    etok_source source;
    etok_boundary boundary;
    long long tokens_in, tokens_out;
} api_window;

struct etok_meter {
    pthread_mutex_t mu;
    etok_meter_set *ms;
    etok_record rec;
    int stopped;
    char names_buf[512];
    const char *names[API_MAX_METERS];
    char err[1024];
    api_window *w;
    size_t n_w, cap_w;
    etok_source source;
    etok_boundary boundary;
};

static void put_err(char *buf, size_t len, const char *msg) {
    if (buf && len) snprintf(buf, len, "%s", msg);
}

static int fail(etok_meter *m, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(etok_meter *m, const char *fmt, ...) {
    char tmp[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&m->mu);
    snprintf(m->err, sizeof m->err, "%s", tmp);
    pthread_mutex_unlock(&m->mu);
    return -1;
}

static void host_info(etok_record *r) {
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(r->host, sizeof r->host, "%s", u.nodename);
        snprintf(r->kernel, sizeof r->kernel, "%.40s %.80s", u.sysname, u.release);
    }
    r->cpu_count = (int)sysconf(_SC_NPROCESSORS_ONLN);
    char *info = etok_read_file("/proc/cpuinfo", NULL);
    if (info) {
        char *p = strstr(info, "model name");
        if (p && (p = strchr(p, ':'))) {
            p++;
            while (*p == ' ' || *p == '\t') p++;
            size_t n = strcspn(p, "\n");
            snprintf(r->cpu_model, sizeof r->cpu_model, "%.*s", (int)(n < 127 ? n : 127), p);
        }
        free(info);
    }
}

etok_meter *etok_meter_open(const etok_meter_options *opts, char *errbuf, size_t errlen) {
    put_err(errbuf, errlen, "");
    etok_meter *m = calloc(1, sizeof *m);
    if (!m) {
        put_err(errbuf, errlen, "etok_meter_open: out of memory");
        return NULL;
    }
    if (pthread_mutex_init(&m->mu, NULL) != 0) {
        free(m);
        put_err(errbuf, errlen, "etok_meter_open: mutex init failed");
        return NULL;
    }
    etok_meter_config cfg = {0};
    int n = 0;
    if (opts && opts->meters && *opts->meters) {
        if (strlen(opts->meters) >= sizeof m->names_buf) {
            put_err(errbuf, errlen, "etok_meter_open: meters: list too long");
            goto bad;
        }
        snprintf(m->names_buf, sizeof m->names_buf, "%s", opts->meters);
        char *save = NULL;
        for (char *t = strtok_r(m->names_buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (n == API_MAX_METERS) {
                put_err(errbuf, errlen, "etok_meter_open: meters: too many names (at most 16)");
                goto bad;
            }
            m->names[n++] = t;
        }
    }
    if (opts && (!(opts->rate_hz >= 0 && opts->rate_hz <= 1000) || !(opts->cpu_idle_w >= 0) || !(opts->cpu_max_w >= 0) ||
                 (opts->cpu_max_w > 0 && opts->cpu_max_w <= opts->cpu_idle_w))) {
        put_err(errbuf, errlen,
                "etok_meter_open: options: rate_hz must be in [0, 1000], cpu_idle_w >= 0 and cpu_max_w 0 or > cpu_idle_w");
        goto bad;
    }
    cfg.names = n ? m->names : NULL;
    cfg.n_names = n;
    if (opts) {
        cfg.rate_hz = opts->rate_hz;
        cfg.cpu_idle_w = opts->cpu_idle_w;
        cfg.cpu_max_w = opts->cpu_max_w;
        cfg.extlog_path = opts->extlog_path;
    }
    etok_err err = {{0}, 0};
    if (!(m->ms = etok_meters_open(&cfg, &err))) {
        put_err(errbuf, errlen, err.msg);
        goto bad;
    }
    etok_record_init(&m->rec);
    snprintf(m->rec.kind, sizeof m->rec.kind, "api");
    snprintf(m->rec.tool_version, sizeof m->rec.tool_version, "%s", ETOK_VERSION);
    char comm[64] = "";
    char *c = etok_read_file("/proc/self/comm", NULL);
    if (c) {
        snprintf(comm, sizeof comm, "%.*s", (int)strcspn(c, "\n"), c);
        free(c);
    }
    snprintf(m->rec.command, sizeof m->rec.command, "libetok windows in %s (pid %ld)", comm[0] ? comm : "a program",
             (long)getpid());
    host_info(&m->rec);
    m->rec.t0_wall_s = etok_wall_s();
    if (etok_meters_start(m->ms, &m->rec, &err) != 0) {
        put_err(errbuf, errlen, err.msg);
        etok_meters_close(m->ms);
        etok_record_free(&m->rec);
        goto bad;
    }
    m->rec.t0_wall_s = etok_wall_s() - (etok_mono_s() - etok_meters_t0_mono_s(m->ms));
    etok_energy_snapshot snap;
    if (etok_meters_snapshot(m->ms, &snap) == 0) {
        m->source = snap.source;
        m->boundary = snap.boundary;
    }
    return m;
bad:
    pthread_mutex_destroy(&m->mu);
    free(m);
    return NULL;
}

static int valid_name(const char *name) { return name && *name && strlen(name) < 64; }

/* Index of the window name in one of the given states, searching from the newest; -1 if none. */
static long find_locked(const etok_meter *m, const char *name, int state_lo, int state_hi) {
    for (size_t i = m->n_w; i-- > 0;)
        if (m->w[i].state >= state_lo && m->w[i].state <= state_hi && !strcmp(m->w[i].name, name)) return (long)i;
    return -1;
}

/* The per-domain energies right after a fresh reading of every meter, and the edge's time. */
static int edge(etok_meter *m, double *t, double **e, double **u, int *n) {
    etok_err err = {{0}, 0};
    *e = *u = NULL;
    *n = 0;
    if (etok_meters_mark(m->ms, &err) != 0) return fail(m, "reading the meters: %s", err.msg);
    etok_domain_energy *d = malloc(API_MAX_DOMAINS * sizeof *d);
    if (!d) return fail(m, "out of memory");
    int k = etok_meters_snapshot_domains(m->ms, d, API_MAX_DOMAINS);
    *t = etok_meters_now(m->ms);
    if (k < 0) {
        free(d);
        return fail(m, "the meters are not running");
    }
    *e = malloc(((size_t)k + 1) * sizeof **e);
    *u = malloc(((size_t)k + 1) * sizeof **u);
    if (!*e || !*u) {
        free(d);
        free(*e);
        free(*u);
        *e = *u = NULL;
        return fail(m, "out of memory");
    }
    for (int i = 0; i < k; i++) {
        (*e)[i] = d[i].energy_j;
        (*u)[i] = d[i].uncertainty_j;
    }
    *n = k;
    free(d);
    return 0;
}

int etok_meter_begin(etok_meter *m, const char *name) {
    if (!m) return -1;
    if (!valid_name(name)) return fail(m, "etok_meter_begin: a window name is 1 to 63 bytes");
    pthread_mutex_lock(&m->mu);
    if (m->stopped) {
        pthread_mutex_unlock(&m->mu);
        return fail(m, "etok_meter_begin '%s': the session was saved; open a new one", name);
    }
    if (find_locked(m, name, 1, 3) >= 0) {
        pthread_mutex_unlock(&m->mu);
        return fail(m, "etok_meter_begin '%s': a window of that name is already open", name);
    }
    if (m->n_w == m->cap_w) {
        size_t cap = m->cap_w ? m->cap_w * 2 : 16;
        api_window *nw = realloc(m->w, cap * sizeof *nw);
        if (!nw) {
            pthread_mutex_unlock(&m->mu);
            return fail(m, "etok_meter_begin '%s': out of memory", name);
        }
        m->w = nw;
        m->cap_w = cap;
    }
    size_t idx = m->n_w++;
    api_window *w = &m->w[idx];
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    w->state = 1;
    w->tokens_in = w->tokens_out = -1;
    pthread_mutex_unlock(&m->mu);

    double t, *e, *u;
    int n;
    int rc = edge(m, &t, &e, &u, &n);
    pthread_mutex_lock(&m->mu);
    w = &m->w[idx];
    if (rc != 0) {
        w->state = 0; /* never opened: ignored by lookups and the record */
        w->name[0] = '\0';
    } else {
        w->t1 = t;
        w->e1 = e;
        w->u1 = u;
        w->n_dom = n;
        w->state = 2;
    }
    pthread_mutex_unlock(&m->mu);
    return rc;
}

static void fill_reading(const etok_meter *m, const api_window *w, const etok_energy_result *fin, etok_reading *out) {
    memset(out, 0, sizeof *out);
    snprintf(out->name, sizeof out->name, "%s", w->name);
    snprintf(out->request_id, sizeof out->request_id, "%s", w->request_id);
    out->t_begin_s = w->t1;
    out->t_end_s = w->t2;
    out->duration_s = w->t2 - w->t1;
    out->tokens_in = w->tokens_in;
    out->tokens_out = w->tokens_out;
    etok_source src = w->source;
    etok_boundary bnd = w->boundary;
    if (fin) {
        out->final = 1;
        out->has_energy = fin->has_energy;
        out->energy_j = fin->energy_j;
        out->energy_uncertainty_j = fin->energy_uncertainty_j;
        src = fin->source;
        bnd = fin->boundary;
    } else {
        out->has_energy = w->has_energy;
        out->energy_j = w->energy_j;
        out->energy_uncertainty_j = w->unc_j;
    }
    if (!out->has_energy) {
        out->energy_j = out->energy_uncertainty_j = NAN;
        src = m->source;
        bnd = m->boundary;
    }
    snprintf(out->source, sizeof out->source, "%s", etok_source_name(src));
    snprintf(out->boundary, sizeof out->boundary, "%s", etok_boundary_name(bnd));
    out->mean_power_w = out->has_energy && out->duration_s > 0 ? out->energy_j / out->duration_s : NAN;
    out->joules_per_output_token = out->joules_per_output_token_uncertainty = NAN;
    if (out->has_energy && w->tokens_out > 0) {
        out->joules_per_output_token = out->energy_j / (double)w->tokens_out;
        out->joules_per_output_token_uncertainty = out->energy_uncertainty_j / (double)w->tokens_out;
    }
}

int etok_meter_end(etok_meter *m, const char *name, etok_reading *out) {
    if (!m) return -1;
    if (!valid_name(name)) return fail(m, "etok_meter_end: a window name is 1 to 63 bytes");
    pthread_mutex_lock(&m->mu);
    long idx = find_locked(m, name, 2, 2);
    if (idx < 0) {
        int opening = find_locked(m, name, 1, 1) >= 0;
        pthread_mutex_unlock(&m->mu);
        return fail(m, "etok_meter_end '%s': no open window of that name%s", name,
                    opening ? " (its begin has not returned yet)" : "");
    }
    m->w[idx].state = 3;
    pthread_mutex_unlock(&m->mu);

    double t, *e, *u;
    int n;
    int rc = edge(m, &t, &e, &u, &n);
    /* the domains, for their labels (same order as the snapshot's) */
    etok_domain_energy *d = rc == 0 ? malloc(API_MAX_DOMAINS * sizeof *d) : NULL;
    int nd = d ? etok_meters_snapshot_domains(m->ms, d, API_MAX_DOMAINS) : -1;
    pthread_mutex_lock(&m->mu);
    api_window *w = &m->w[idx];
    if (rc != 0 || nd < 0) {
        w->state = 2; /* still open: the caller may try again */
        pthread_mutex_unlock(&m->mu);
        free(e);
        free(u);
        free(d);
        return rc != 0 ? rc : fail(m, "etok_meter_end '%s': out of memory", name);
    }
    w->t2 = t;
    w->has_energy = 0;
    w->energy_j = w->unc_j = 0;
    w->source = ETOK_SOURCE_COUNTER;
    int k = n < w->n_dom ? n : w->n_dom;
    if (nd < k) k = nd;
    for (int i = 0; i < k; i++) {
        if (!d[i].summable || !d[i].primary) continue;
        w->has_energy = 1;
        w->boundary = d[i].boundary;
        if (d[i].source > w->source) w->source = d[i].source;
        w->energy_j += e[i] - w->e1[i];
        w->unc_j += d[i].source == ETOK_SOURCE_COUNTER ? u[i] : u[i] - w->u1[i];
    }
    if (w->has_energy) {
        m->source = w->source;
        m->boundary = w->boundary;
    }
    free(w->e1);
    free(w->u1);
    w->e1 = w->u1 = NULL;
    w->state = 4;
    if (out) fill_reading(m, w, NULL, out);
    pthread_mutex_unlock(&m->mu);
    free(e);
    free(u);
    free(d);
    return 0;
}

int etok_meter_set_tokens(etok_meter *m, const char *name, long long tokens_in, long long tokens_out) {
    if (!m) return -1;
    if (!valid_name(name)) return fail(m, "etok_meter_set_tokens: a window name is 1 to 63 bytes");
    if (tokens_in < 0 || tokens_out < 0 || tokens_in > 2147483647LL || tokens_out > 2147483647LL)
        return fail(m, "etok_meter_set_tokens '%s': token counts must be 0..2147483647", name);
    pthread_mutex_lock(&m->mu);
    long idx = find_locked(m, name, 2, 3);
    if (idx < 0) idx = find_locked(m, name, 4, 4);
    if (idx >= 0) {
        m->w[idx].tokens_in = tokens_in;
        m->w[idx].tokens_out = tokens_out;
    }
    pthread_mutex_unlock(&m->mu);
    return idx >= 0 ? 0 : fail(m, "etok_meter_set_tokens '%s': no window of that name", name);
}

int etok_meter_set_request_id(etok_meter *m, const char *name, const char *request_id) {
    if (!m) return -1;
    if (!valid_name(name)) return fail(m, "etok_meter_set_request_id: a window name is 1 to 63 bytes");
    if (!request_id || strlen(request_id) >= 64)
        return fail(m, "etok_meter_set_request_id '%s': a request id is 0 to 63 bytes", name);
    pthread_mutex_lock(&m->mu);
    long idx = find_locked(m, name, 2, 3);
    if (idx < 0) idx = find_locked(m, name, 4, 4);
    if (idx >= 0) snprintf(m->w[idx].request_id, sizeof m->w[idx].request_id, "%s", request_id);
    pthread_mutex_unlock(&m->mu);
    return idx >= 0 ? 0 : fail(m, "etok_meter_set_request_id '%s': no window of that name", name);
}

int etok_meter_reading(etok_meter *m, const char *name, etok_reading *out) {
    if (!m || !out) return m ? fail(m, "etok_meter_reading: out is NULL") : -1;
    if (!valid_name(name)) return fail(m, "etok_meter_reading: a window name is 1 to 63 bytes");
    pthread_mutex_lock(&m->mu);
    long idx = find_locked(m, name, 4, 4);
    if (idx < 0) {
        pthread_mutex_unlock(&m->mu);
        return fail(m, "etok_meter_reading '%s': no ended window of that name", name);
    }
    int rc = 0;
    if (m->stopped) {
        etok_energy_result res;
        if (etok_energy_window(&m->rec, m->w[idx].t1, m->w[idx].t2, &res) == 0)
            fill_reading(m, &m->w[idx], &res, out);
        else
            rc = -1;
        etok_energy_result_free(&res);
    } else {
        fill_reading(m, &m->w[idx], NULL, out);
    }
    pthread_mutex_unlock(&m->mu);
    return rc ? fail(m, "etok_meter_reading '%s': cannot analyse the window", name) : 0;
}

const char *etok_meter_source(etok_meter *m) {
    if (!m) return "estimate";
    pthread_mutex_lock(&m->mu);
    const char *s = etok_source_name(m->source);
    pthread_mutex_unlock(&m->mu);
    return s;
}

const char *etok_meter_boundary(etok_meter *m) {
    if (!m) return "device";
    pthread_mutex_lock(&m->mu);
    const char *s = etok_boundary_name(m->boundary);
    pthread_mutex_unlock(&m->mu);
    return s;
}

/* Fill the record's windows, requests and token totals from the ended windows (locked). */
static int fill_record_locked(etok_meter *m) {
    etok_record *r = &m->rec;
    for (size_t i = 0; i < r->n_requests; i++) free(r->requests[i].token_times_s), free(r->requests[i].output);
    free(r->requests);
    r->requests = NULL;
    r->n_requests = 0;
    double lo = INFINITY, hi = -INFINITY;
    long long tin = 0, tout = 0;
    int known = 0;
    for (size_t i = 0; i < m->n_w; i++) {
        const api_window *w = &m->w[i];
        if (w->state != 4) continue;
        if (w->t1 < lo) lo = w->t1;
        if (w->t2 > hi) hi = w->t2;
        etok_request *q = etok_record_add_request(r);
        if (!q) return -1;
        snprintf(q->id, sizeof q->id, "%s", w->request_id[0] ? w->request_id : w->name);
        q->t_send_s = w->t1;
        q->t_first_token_s = -1;
        q->t_done_s = w->t2;
        q->tokens_in = w->tokens_in > 0 ? (int)w->tokens_in : 0;
        q->tokens_out = w->tokens_out > 0 ? (int)w->tokens_out : 0;
        q->ok = 1;
        q->energy_j = -1;
        snprintf(q->token_count_source, sizeof q->token_count_source, "%s", w->tokens_out >= 0 ? "api" : "");
        if (w->tokens_out >= 0 || w->tokens_in >= 0) {
            known = 1;
            tin += w->tokens_in > 0 ? w->tokens_in : 0;
            tout += w->tokens_out > 0 ? w->tokens_out : 0;
        }
    }
    if (hi < lo) lo = hi = etok_meters_now(m->ms);
    r->window_start_s = lo;
    r->window_end_s = hi;
    r->tokens_known = known;
    r->tokens_in = tin;
    r->tokens_out = tout;
    /* each window's energy from the complete record, as etok report computes it */
    for (size_t i = 0, k = 0; i < m->n_w; i++) {
        if (m->w[i].state != 4) continue;
        etok_energy_result res;
        if (etok_energy_window(r, m->w[i].t1, m->w[i].t2, &res) == 0 && res.has_energy)
            r->requests[k].energy_j = res.energy_j;
        etok_energy_result_free(&res);
        k++;
    }
    return 0;
}

int etok_meter_save(etok_meter *m, const char *path) {
    if (!m) return -1;
    if (!path || !*path) return fail(m, "etok_meter_save: no path");
    pthread_mutex_lock(&m->mu);
    for (size_t i = 0; i < m->n_w; i++)
        if (m->w[i].state >= 1 && m->w[i].state <= 3) {
            char name[64];
            snprintf(name, sizeof name, "%s", m->w[i].name);
            pthread_mutex_unlock(&m->mu);
            return fail(m, "etok_meter_save %s: window '%s' is still open (etok_meter_end it first)", path, name);
        }
    int first = !m->stopped;
    m->stopped = 1;
    pthread_mutex_unlock(&m->mu);
    etok_err err = {{0}, 0};
    if (first && etok_meters_stop(m->ms, &err) != 0) return fail(m, "etok_meter_save %s: stopping the meters: %s", path, err.msg);
    pthread_mutex_lock(&m->mu);
    int rc = fill_record_locked(m);
    pthread_mutex_unlock(&m->mu);
    if (rc != 0) return fail(m, "etok_meter_save %s: out of memory", path);
    if (etok_record_save(&m->rec, path, &err) != 0) return fail(m, "%s", err.msg);
    return 0;
}

const char *etok_meter_error(etok_meter *m) {
    static _Thread_local char copy[1024];
    if (!m) return "etok: no meter (etok_meter_open failed)";
    pthread_mutex_lock(&m->mu);
    snprintf(copy, sizeof copy, "%s", m->err);
    pthread_mutex_unlock(&m->mu);
    return copy;
}

void etok_meter_close(etok_meter *m) {
    if (!m) return;
    if (!m->stopped) {
        etok_err err = {{0}, 0};
        etok_meters_stop(m->ms, &err);
    }
    etok_meters_close(m->ms);
    etok_record_free(&m->rec);
    for (size_t i = 0; i < m->n_w; i++) {
        free(m->w[i].e1);
        free(m->w[i].u1);
    }
    free(m->w);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

/* ------------------------------------------------------------------ generator */

struct etok_generator {
    etok_model *model;
    etok_engine *engine;
    int32_t *toks;
    int ctx_len;
    int seq;                /* -1 = none */
    int done;
    int n_in, n_out;
    char err[1024];
};

etok_generator *etok_generator_open(const char *model_path, int threads, char *errbuf, size_t errlen) {
    put_err(errbuf, errlen, "");
    etok_err err = {{0}, 0};
    char path[4096];
    if (threads < 0 || threads > 1024) {
        put_err(errbuf, errlen, "etok_generator_open: threads must be 0..1024");
        return NULL;
    }
    if (etok_model_resolve("(libetok)", model_path, path, sizeof path, &err) != 0) {
        put_err(errbuf, errlen, err.msg);
        return NULL;
    }
    etok_generator *g = calloc(1, sizeof *g);
    if (!g) {
        put_err(errbuf, errlen, "etok_generator_open: out of memory");
        return NULL;
    }
    g->seq = -1;
    if (!(g->model = etok_model_load(path, &err))) goto bad;
    const etok_model_info *mi = etok_model_get_info(g->model);
    g->ctx_len = mi->ctx_max < 2048 ? mi->ctx_max : 2048;
    etok_engine_opts eo = {.n_threads = threads, .max_seqs = 1, .ctx_len = g->ctx_len};
    if (!(g->engine = etok_engine_new(g->model, &eo, &err))) goto bad;
    if (!(g->toks = malloc((size_t)g->ctx_len * sizeof *g->toks))) {
        etok_errf(&err, "out of memory");
        goto bad;
    }
    return g;
bad:
    put_err(errbuf, errlen, err.msg);
    etok_generator_close(g);
    return NULL;
}

static int gfail(etok_generator *g, const char *msg) {
    snprintf(g->err, sizeof g->err, "%s", msg);
    return -1;
}

int etok_generator_start(etok_generator *g, const char *prompt, int chat, int max_tokens) {
    if (!g) return -1;
    if (!prompt) return gfail(g, "etok_generator_start: no prompt");
    if (max_tokens < 1 || max_tokens > (1 << 20)) return gfail(g, "etok_generator_start: max_tokens must be 1..1048576");
    if (g->seq >= 0) {
        etok_engine_remove(g->engine, g->seq);
        g->seq = -1;
    }
    etok_err err = {{0}, 0};
    int n;
    if (chat) {
        const char *role = "user";
        n = etok_tokenize_chat(g->model, &role, &prompt, 1, 1, g->toks, g->ctx_len, &err);
    } else {
        n = etok_tokenize(g->model, prompt, 1, 0, g->toks, g->ctx_len, &err);
    }
    if (n < 0) return gfail(g, err.msg);
    if (n == 0) return gfail(g, "etok_generator_start: the prompt is empty after tokenization");
    if (n > g->ctx_len) return gfail(g, "etok_generator_start: the prompt is longer than the context");
    etok_sampling samp = {0.0f, 0, 1.0f, 1};
    int id = etok_engine_add(g->engine, g->toks, n, max_tokens, &samp, &err);
    if (id < 0) return gfail(g, err.msg);
    g->seq = id;
    g->done = 0;
    g->n_in = n;
    g->n_out = 0;
    return n;
}

int etok_generator_next(etok_generator *g, char *piece, size_t cap) {
    if (!g) return -1;
    if (piece && cap) piece[0] = '\0';
    if (g->seq < 0 || g->done) return 0;
    etok_err err = {{0}, 0};
    for (;;) {
        etok_step_result r;
        if (etok_engine_step(g->engine, &r, &err) != 0) return gfail(g, err.msg);
        if (r.n_events == 0) {
            g->done = 1;
            return 0;
        }
        int tok = -1, fin = 0;
        for (int k = 0; k < r.n_events; k++) {
            if (r.events[k].seq_id != g->seq) continue;
            tok = r.events[k].new_token;
            fin = r.events[k].finished;
        }
        if (fin) {
            g->done = 1;
            etok_engine_remove(g->engine, g->seq);
            g->seq = -1;
        }
        if (tok >= 0) {
            g->n_out++;
            size_t len = 0;
            const char *p = etok_token_piece(g->model, tok, &len);
            if (piece && cap) {
                size_t k = len < cap - 1 ? len : cap - 1;
                if (p) memcpy(piece, p, k);
                piece[k] = '\0';
            }
            return 1;
        }
        if (fin) return 0;
    }
}

int etok_generator_tokens_in(const etok_generator *g) { return g ? g->n_in : 0; }
int etok_generator_tokens_out(const etok_generator *g) { return g ? g->n_out : 0; }
const char *etok_generator_error(const etok_generator *g) { return g ? g->err : "no generator"; }

void etok_generator_close(etok_generator *g) {
    if (!g) return;
    if (g->seq >= 0 && g->engine) etok_engine_remove(g->engine, g->seq);
    etok_engine_free(g->engine);
    etok_model_free(g->model);
    free(g->toks);
    free(g);
}
