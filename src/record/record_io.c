/* record_io.c — the run record as JSON (jansson): save, load, to/from text.
 *
 * Owns the on-disk format described in docs/RECORD.md and docs/record.schema.json: one JSON
 * object, every field of etok_record under the name of its struct member, `schema_version`
 * first. Samples are stored compactly as [t_s, raw] pairs. Doubles keep full precision
 * (JSON_REAL_PRECISION(17)); a non-finite double (unknown) is written as null and read back
 * as NAN; samples must be finite.
 *
 * Loading validates every field (type, range, string length) and names the first bad one,
 * e.g. "run.json: traces[2].samples[5]: expected [t_s, raw] numbers", with ETOK_EXIT_INPUT.
 * A record from a newer etok (schema_version > ETOK_RECORD_SCHEMA_VERSION) is refused.
 * Unknown extra fields are ignored (a later minor addition must not break old readers).
 *
 * Does not own: building a record (record.c), analysing it (analyse/). */
#include "etok/record.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/parse.h"
#include "etok/util.h"

/* ---- field tables: one per struct, used by both directions ---------------------------- */

typedef enum { F_STR, F_INT, F_LL, F_BOOL, F_DBL, F_SOURCE, F_BOUNDARY } ftype;

typedef struct {
    const char *key;
    ftype type;
    size_t off;
    size_t size; /* F_STR: buffer size */
    double min, max;
    int required; /* F_DBL: null (unknown) is refused; analysis needs the number */
} field;

#define FSTR(st, m) {#m, F_STR, offsetof(st, m), sizeof(((st *)0)->m), 0, 0, 0}
#define FINT(st, m, lo, hi) {#m, F_INT, offsetof(st, m), 0, lo, hi, 0}
#define FLL(st, m, lo, hi) {#m, F_LL, offsetof(st, m), 0, lo, hi, 0}
#define FBOOL(st, m) {#m, F_BOOL, offsetof(st, m), 0, 0, 1, 0}
#define FDBL(st, m, lo, hi) {#m, F_DBL, offsetof(st, m), 0, lo, hi, 0}
/* A number analysis uses directly: must be present and finite (null is refused). */
#define FNUM(st, m, lo, hi) {#m, F_DBL, offsetof(st, m), 0, lo, hi, 1}

/* Record-wide limits (docs/RECORD.md "Validation on load"); PUE and price are the same as
 * the command-line flags and scenario files (etok/parse.h). */
#define T_MAX 1e9 /* seconds on the record clock: ~31 years */

static const field RECORD_FIELDS[] = {
    FSTR(etok_record, tool_version),
    FSTR(etok_record, kind),
    FSTR(etok_record, command),
    FSTR(etok_record, host),
    FSTR(etok_record, kernel),
    FSTR(etok_record, cpu_model),
    FINT(etok_record, cpu_count, 0, 1e7),
    FDBL(etok_record, t0_wall_s, 0, INFINITY),
    FNUM(etok_record, idle_start_s, -T_MAX, T_MAX),
    FNUM(etok_record, idle_end_s, -T_MAX, T_MAX),
    FNUM(etok_record, window_start_s, -T_MAX, T_MAX),
    FNUM(etok_record, window_end_s, -T_MAX, T_MAX),
    FBOOL(etok_record, partial),
    FINT(etok_record, exit_status, -1, 1e6),
    FNUM(etok_record, pue, ETOK_PUE_MIN, ETOK_PUE_MAX),
    FSTR(etok_record, pue_source),
    FDBL(etok_record, price_per_kwh, 0, ETOK_PRICE_PER_KWH_MAX),
    FDBL(etok_record, quality_target, -INFINITY, 1),
    FDBL(etok_record, ttft_slo_s, -INFINITY, INFINITY),
    FDBL(etok_record, tpot_slo_s, -INFINITY, INFINITY),
    FDBL(etok_record, deployment_utilization, -INFINITY, 1),
    FBOOL(etok_record, tokens_known),
    FLL(etok_record, tokens_in, 0, 9e18),
    FLL(etok_record, tokens_out, 0, 9e18),
};

static const field HW_FIELDS[] = {
    FSTR(etok_hw_profile, name),
    FDBL(etok_hw_profile, peak_flops, 0, INFINITY),
    FDBL(etok_hw_profile, mem_bw_bps, 0, INFINITY),
    FDBL(etok_hw_profile, power_limit_w, 0, ETOK_POWER_MAX_W),
    FSTR(etok_hw_profile, source),
};

static const field TRACE_FIELDS[] = {
    FSTR(etok_trace, meter),
    FSTR(etok_trace, domain),
    {"source", F_SOURCE, offsetof(etok_trace, source), 0, 0, 0, 0},
    {"boundary", F_BOUNDARY, offsetof(etok_trace, boundary), 0, 0, 0, 0},
    FSTR(etok_trace, raw_unit),
    FNUM(etok_trace, scale_to_si, 0, 1e6),
    FNUM(etok_trace, wrap_range_raw, 0, ETOK_COUNTER_MAX_RAW),
    FNUM(etok_trace, resolution_si, 0, 1e6),
    FNUM(etok_trace, update_period_s, 0, 86400),
    FNUM(etok_trace, error_band, 0, 10),
    FBOOL(etok_trace, summable),
    FSTR(etok_trace, power_field),
};

static const field FAULT_FIELDS[] = {
    FDBL(etok_fault, t_s, -INFINITY, INFINITY),
    FSTR(etok_fault, meter),
    FSTR(etok_fault, domain),
    FSTR(etok_fault, kind),
    FSTR(etok_fault, message),
};

static const field STEP_FIELDS[] = {
    FNUM(etok_step, t_start_s, -T_MAX, T_MAX),
    FNUM(etok_step, t_end_s, -T_MAX, T_MAX),
    FINT(etok_step, prefill_tokens, 0, 2147483647.0),
    FINT(etok_step, decode_tokens, 0, 2147483647.0),
    FNUM(etok_step, flops, 0, 1e30),
    FNUM(etok_step, bytes, 0, 1e30),
};

static const field REQUEST_FIELDS[] = {
    FSTR(etok_request, id),
    FNUM(etok_request, t_send_s, -T_MAX, T_MAX),
    FNUM(etok_request, t_first_token_s, -T_MAX, T_MAX),
    FNUM(etok_request, t_done_s, -T_MAX, T_MAX),
    FINT(etok_request, tokens_in, 0, 2147483647.0),
    FINT(etok_request, tokens_out, 0, 2147483647.0),
    FBOOL(etok_request, ok),
    FSTR(etok_request, error),
    FBOOL(etok_request, quality_checked),
    FBOOL(etok_request, quality_pass),
    FDBL(etok_request, energy_j, -INFINITY, INFINITY),
    FSTR(etok_request, token_count_source),
};

static const field PHASE_FIELDS[] = {
    FBOOL(etok_cpuload_phase, valid),
    FDBL(etok_cpuload_phase, t_start_s, -T_MAX, T_MAX),
    FDBL(etok_cpuload_phase, t_end_s, -T_MAX, T_MAX),
    FDBL(etok_cpuload_phase, machine_busy_cores, 0, 1e7),
    FDBL(etok_cpuload_phase, own_busy_cores, -1, 1e7),
    FDBL(etok_cpuload_phase, background_busy_cores, -1, 1e7),
    FDBL(etok_cpuload_phase, background_noise_cores, 0, 1e7),
};
/* "grid" (optional, issue 12): the carbon intensity the CO2e figures use. */
static const field GRID_FIELDS[] = {
    FDBL(etok_grid, g_per_kwh, 1e-9, 2000),
    FDBL(etok_grid, uncertainty_g_per_kwh, 0, 2000),
    FSTR(etok_grid, region),
    FSTR(etok_grid, basis),
    FINT(etok_grid, year, 0, 2100),
    FSTR(etok_grid, source),
};
static const char *const PHASE_NAMES[ETOK_PHASE_COUNT] = {"idle", "warmup", "window"};

#define NFIELDS(a) (sizeof(a) / sizeof((a)[0]))

/* ---- saving ------------------------------------------------------------------------------ */

static json_t *jdouble(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* Add the table's fields of the struct at base to obj. 0 ok, -1 OOM. */
static int put_fields(json_t *obj, const void *base, const field *fs, size_t n) {
    for (size_t i = 0; i < n; i++) {
        const char *p = (const char *)base + fs[i].off;
        json_t *v = NULL;
        switch (fs[i].type) {
        case F_STR: {
            /* Strings from the outside (a command line, a device name) may not be UTF-8,
             * which JSON cannot hold: such bytes are written as '?'. */
            size_t len = strnlen(p, fs[i].size);
            v = json_stringn(p, len);
            if (!v) {
                char tmp[1024];
                if (len >= sizeof tmp) len = sizeof tmp - 1;
                for (size_t k = 0; k < len; k++) tmp[k] = (p[k] & 0x80) ? '?' : p[k];
                v = json_stringn(tmp, len);
            }
            break;
        }
        case F_INT: v = json_integer(*(const int *)p); break;
        case F_LL: v = json_integer(*(const long long *)p); break;
        case F_BOOL: v = json_boolean(*(const int *)p); break;
        case F_DBL: v = jdouble(*(const double *)p); break;
        case F_SOURCE: v = json_string(etok_source_name(*(const etok_source *)p)); break;
        case F_BOUNDARY: v = json_string(etok_boundary_name(*(const etok_boundary *)p)); break;
        }
        if (!v || json_object_set_new(obj, fs[i].key, v) != 0) return -1;
    }
    return 0;
}

/* Samples are written by hand, one [t_s, raw] pair a line, rather than through jansson's
 * indenter (four lines a pair and a node per number: a one-hour 10 Hz record would be ~40%
 * larger and much slower). The tree gets a placeholder string per trace, "\u0001S<i>" once
 * dumped, which the splice below replaces. It is found as `"samples": "\u0001S<i>"` after the
 * top-level `"traces"` key: trace objects have only fixed keys, and a string value cannot
 * contain an unescaped quote, so user text (command, domain names, config) cannot forge it. */
#define SAMPLES_PLACEHOLDER "\001S"

typedef struct {
    char *buf;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_put(sbuf *b, const char *s, size_t len) {
    if (b->oom) return;
    if (b->n + len + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->n + len + 1) ncap *= 2;
        char *nb = realloc(b->buf, ncap);
        if (!nb) { b->oom = 1; return; }
        b->buf = nb;
        b->cap = ncap;
    }
    memcpy(b->buf + b->n, s, len);
    b->n += len;
    b->buf[b->n] = '\0';
}

static void sb_samples(sbuf *b, const etok_trace *t) {
    sb_put(b, "[", 1);
    for (size_t k = 0; k < t->n_samples; k++) {
        char pair[96];
        int len = snprintf(pair, sizeof pair, "%s\n    [%.17g, %.17g]", k ? "," : "", t->samples[k].t_s, t->samples[k].raw);
        sb_put(b, pair, (size_t)len);
    }
    if (t->n_samples) sb_put(b, "\n   ", 4);
    sb_put(b, "]", 1);
}

static json_t *record_to_json(const etok_record *r) {
    json_t *o = json_object();
    if (!o) return NULL;
    if (json_object_set_new(o, "schema_version", json_integer(ETOK_RECORD_SCHEMA_VERSION)) != 0) goto oom;
    if (put_fields(o, r, RECORD_FIELDS, NFIELDS(RECORD_FIELDS)) != 0) goto oom;
    /* optional: only a run that ended early or failed has one (older records have none) */
    if (r->stop_reason[0] && json_object_set_new(o, "stop_reason", json_string(r->stop_reason)) != 0) goto oom;

    json_t *cfg = NULL;
    if (r->config_json && *r->config_json) {
        cfg = json_loads(r->config_json, JSON_DECODE_ANY, NULL);
        if (!cfg) cfg = json_string(r->config_json); /* keep it, even if not JSON */
    } else {
        cfg = json_null();
    }
    if (!cfg || json_object_set_new(o, "config", cfg) != 0) goto oom;

    json_t *hw = json_object();
    if (!hw || json_object_set_new(o, "hw", hw) != 0 || put_fields(hw, &r->hw, HW_FIELDS, NFIELDS(HW_FIELDS)) != 0)
        goto oom;

    json_t *traces = json_array();
    if (!traces || json_object_set_new(o, "traces", traces) != 0) goto oom;
    for (size_t i = 0; i < r->n_traces; i++) {
        const etok_trace *t = &r->traces[i];
        json_t *jt = json_object();
        if (!jt || json_array_append_new(traces, jt) != 0) goto oom;
        if (put_fields(jt, t, TRACE_FIELDS, NFIELDS(TRACE_FIELDS)) != 0) goto oom;
        /* A placeholder; etok_record_to_json_text splices the samples in (one pair a line). */
        char ph[32];
        snprintf(ph, sizeof ph, "%s%zu", SAMPLES_PLACEHOLDER, i);
        if (json_object_set_new(jt, "samples", json_string(ph)) != 0) goto oom;
    }

    json_t *faults = json_array();
    if (!faults || json_object_set_new(o, "faults", faults) != 0) goto oom;
    for (size_t i = 0; i < r->n_faults; i++) {
        json_t *jf = json_object();
        if (!jf || json_array_append_new(faults, jf) != 0) goto oom;
        if (put_fields(jf, &r->faults[i], FAULT_FIELDS, NFIELDS(FAULT_FIELDS)) != 0) goto oom;
    }

    json_t *steps = json_array();
    if (!steps || json_object_set_new(o, "steps", steps) != 0) goto oom;
    for (size_t i = 0; i < r->n_steps; i++) {
        json_t *js = json_object();
        if (!js || json_array_append_new(steps, js) != 0) goto oom;
        if (put_fields(js, &r->steps[i], STEP_FIELDS, NFIELDS(STEP_FIELDS)) != 0) goto oom;
    }

    if (r->grid.present) { /* optional (issue 12): older records have none */
        json_t *jg = json_object();
        if (!jg || json_object_set_new(o, "grid", jg) != 0) goto oom;
        if (put_fields(jg, &r->grid, GRID_FIELDS, NFIELDS(GRID_FIELDS)) != 0) goto oom;
    }

    if (r->cpuload.present) { /* optional (issue 17): older records have none */
        const etok_cpuload *cl = &r->cpuload;
        json_t *jc = json_object(), *js = json_array(), *jp = json_object();
        if (!jc || json_object_set_new(o, "cpu_load", jc) != 0) {
            json_decref(js);
            json_decref(jp);
            goto oom;
        }
        if (!js || json_object_set_new(jc, "samples", js) != 0) {
            json_decref(jp);
            goto oom;
        }
        if (!jp || json_object_set_new(jc, "phases", jp) != 0) goto oom;
        if (json_object_set_new(jc, "scope", json_string(cl->scope)) != 0 ||
            json_object_set_new(jc, "pid", json_integer(cl->pid)) != 0 ||
            json_object_set_new(jc, "n_cpus", json_integer(cl->n_cpus)) != 0 ||
            json_object_set_new(jc, "background_changed",
                                cl->background_changed < 0 ? json_null() : json_boolean(cl->background_changed)) != 0)
            goto oom;
        for (size_t k = 0; k < cl->n_samples; k++) {
            const etok_cpu_sample *c = &cl->samples[k];
            json_t *row = json_pack("[ffff]", c->t_s, c->busy_s, c->total_s, c->own_s);
            if (!row || json_array_append_new(js, row) != 0) goto oom;
        }
        for (int k = 0; k < ETOK_PHASE_COUNT; k++) {
            json_t *ph = json_object();
            if (!ph || json_object_set_new(jp, PHASE_NAMES[k], ph) != 0 ||
                put_fields(ph, &cl->phase[k], PHASE_FIELDS, NFIELDS(PHASE_FIELDS)) != 0)
                goto oom;
        }
    }

    json_t *reqs = json_array();
    if (!reqs || json_object_set_new(o, "requests", reqs) != 0) goto oom;
    for (size_t i = 0; i < r->n_requests; i++) {
        const etok_request *q = &r->requests[i];
        json_t *jq = json_object();
        if (!jq || json_array_append_new(reqs, jq) != 0) goto oom;
        if (put_fields(jq, q, REQUEST_FIELDS, NFIELDS(REQUEST_FIELDS)) != 0) goto oom;
        json_t *tt = json_array();
        if (!tt || json_object_set_new(jq, "token_times_s", tt) != 0) goto oom;
        for (size_t k = 0; k < q->n_token_times; k++)
            if (json_array_append_new(tt, jdouble(q->token_times_s[k])) != 0) goto oom;
        json_t *out = q->output ? json_string(q->output) : json_null();
        if (!out) {
            /* not valid UTF-8: keep what can be kept */
            size_t len = strlen(q->output);
            char *tmp = malloc(len + 1);
            if (!tmp) goto oom;
            for (size_t k = 0; k < len; k++) tmp[k] = (q->output[k] & 0x80) ? '?' : q->output[k];
            tmp[len] = '\0';
            out = json_string(tmp);
            free(tmp);
        }
        if (!out || json_object_set_new(jq, "output", out) != 0) goto oom;
    }
    return o;
oom:
    json_decref(o);
    return NULL;
}

/* Samples must be finite: a NaN would not survive the round trip and means a driver bug. */
static int check_finite_samples(const etok_record *r, etok_err *err) {
    for (size_t i = 0; i < r->n_traces; i++)
        for (size_t k = 0; k < r->traces[i].n_samples; k++)
            if (!isfinite(r->traces[i].samples[k].t_s) || !isfinite(r->traces[i].samples[k].raw))
                return etok_errc(err, ETOK_EXIT_FAIL, "record: traces[%zu].samples[%zu] is not a finite number", i, k);
    return 0;
}

char *etok_record_to_json_text(const etok_record *r) {
    if (check_finite_samples(r, NULL) != 0) return NULL;
    json_t *o = record_to_json(r);
    if (!o) return NULL;
    char *text = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(o);
    if (!text) return NULL;
    const char *cur = strstr(text, "\n \"traces\": [");
    if (!cur) { free(text); return NULL; }
    sbuf b = {0};
    sb_put(&b, text, (size_t)(cur - text));
    for (size_t i = 0; i < r->n_traces; i++) {
        char key[64];
        snprintf(key, sizeof key, "\"samples\": \"\\u0001S%zu\"", i);
        const char *at = strstr(cur, key);
        if (!at) { free(text); free(b.buf); return NULL; }
        sb_put(&b, cur, (size_t)(at - cur));
        sb_put(&b, "\"samples\": ", 11);
        sb_samples(&b, &r->traces[i]);
        cur = at + strlen(key);
    }
    sb_put(&b, cur, strlen(cur));
    free(text);
    if (b.oom) { free(b.buf); return NULL; }
    return b.buf;
}

int etok_record_save(const etok_record *r, const char *path, etok_err *err) {
    if (check_finite_samples(r, err) != 0) return -1;
    char *text = etok_record_to_json_text(r);
    if (!text) return etok_errc(err, ETOK_EXIT_FAIL, "%s: cannot encode the record (out of memory)", path);
    size_t len = strlen(text);
    /* newline at the end, for the shell */
    char *nl = realloc(text, len + 2);
    if (!nl) { free(text); return etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory", path); }
    nl[len] = '\n';
    nl[len + 1] = '\0';
    int rc = etok_write_file_atomic(path, nl, len + 1, err);
    free(nl);
    return rc;
}

/* ---- loading ----------------------------------------------------------------------------- */

typedef struct {
    const char *what; /* file name, for messages */
    etok_err *err;
} ctx;

static int bad(const ctx *c, const char *path, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(const ctx *c, const char *path, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return etok_errc(c->err, ETOK_EXIT_INPUT, "%s: %s: %s", c->what, path, msg);
}

static void subpath(char *out, size_t cap, const char *prefix, const char *key) {
    if (prefix && *prefix) snprintf(out, cap, "%s.%s", prefix, key);
    else snprintf(out, cap, "%s", key);
}

static int get_fields(const ctx *c, const char *prefix, json_t *obj, void *base, const field *fs, size_t n) {
    char path[256];
    for (size_t i = 0; i < n; i++) {
        subpath(path, sizeof path, prefix, fs[i].key);
        json_t *v = json_object_get(obj, fs[i].key);
        if (!v) return bad(c, path, "missing");
        char *p = (char *)base + fs[i].off;
        switch (fs[i].type) {
        case F_STR: {
            if (!json_is_string(v)) return bad(c, path, "expected a string");
            size_t len = json_string_length(v);
            const char *s = json_string_value(v);
            if (len >= fs[i].size) return bad(c, path, "string too long (%zu bytes, at most %zu)", len, fs[i].size - 1);
            if (memchr(s, '\0', len)) return bad(c, path, "string contains a NUL byte");
            memcpy(p, s, len);
            p[len] = '\0';
            break;
        }
        case F_INT:
        case F_LL: {
            if (!json_is_integer(v)) return bad(c, path, "expected an integer");
            json_int_t x = json_integer_value(v);
            if ((double)x < fs[i].min || (double)x > fs[i].max)
                return bad(c, path, "%lld out of range [%.0f, %.0f]", (long long)x, fs[i].min, fs[i].max);
            if (fs[i].type == F_INT) *(int *)p = (int)x;
            else *(long long *)p = (long long)x;
            break;
        }
        case F_BOOL:
            if (!json_is_boolean(v)) return bad(c, path, "expected true or false");
            *(int *)p = json_is_true(v) ? 1 : 0;
            break;
        case F_DBL: {
            double x;
            if (json_is_null(v) && fs[i].required) return bad(c, path, "must be a number (null is not allowed here)");
            if (json_is_null(v)) x = NAN;
            else if (json_is_number(v)) x = json_number_value(v);
            else return bad(c, path, "expected a number or null");
            if (!isnan(x) && (x < fs[i].min || x > fs[i].max))
                return bad(c, path, "%.17g out of range [%g, %g]", x, fs[i].min, fs[i].max);
            *(double *)p = x;
            break;
        }
        case F_SOURCE:
            if (!json_is_string(v) || etok_source_parse(json_string_value(v), (etok_source *)p) != 0)
                return bad(c, path, "expected one of \"counter\", \"power\", \"external\", \"estimate\"");
            break;
        case F_BOUNDARY:
            if (!json_is_string(v) || etok_boundary_parse(json_string_value(v), (etok_boundary *)p) != 0)
                return bad(c, path, "expected one of \"device\", \"node\", \"facility\"");
            break;
        }
    }
    return 0;
}

static json_t *get_array(const ctx *c, json_t *obj, const char *key, const char *path) {
    json_t *a = json_object_get(obj, key);
    if (!a) { bad(c, path, "missing"); return NULL; }
    if (!json_is_array(a)) { bad(c, path, "expected an array"); return NULL; }
    return a;
}

/* "cpu_load" (optional): scope, pid, n_cpus, samples [[t_s, busy_s, total_s, own_s]...],
 * phases {idle, warmup, window}, background_changed (true/false/null). */
static int load_cpuload(const ctx *c, json_t *jc, etok_record *r) {
    etok_cpuload *cl = &r->cpuload;
    if (!json_is_object(jc)) return bad(c, "cpu_load", "expected an object");
    json_t *v = json_object_get(jc, "scope");
    if (!json_is_string(v) || json_string_length(v) >= sizeof cl->scope)
        return bad(c, "cpu_load.scope", "expected a short string");
    snprintf(cl->scope, sizeof cl->scope, "%s", json_string_value(v));
    if (strcmp(cl->scope, "process") && strcmp(cl->scope, "process_group") && strcmp(cl->scope, "pid") &&
        strcmp(cl->scope, "none"))
        return bad(c, "cpu_load.scope", "expected \"process\", \"process_group\", \"pid\" or \"none\"");
    v = json_object_get(jc, "pid");
    if (v && (!json_is_integer(v) || json_integer_value(v) < 0)) return bad(c, "cpu_load.pid", "expected an integer >= 0");
    cl->pid = v ? (long)json_integer_value(v) : 0;
    v = json_object_get(jc, "n_cpus");
    if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 10000000)
        return bad(c, "cpu_load.n_cpus", "expected an integer in [1, 10000000]");
    cl->n_cpus = (int)json_integer_value(v);
    v = json_object_get(jc, "background_changed");
    if (v && !json_is_null(v) && !json_is_boolean(v)) return bad(c, "cpu_load.background_changed", "expected true, false or null");
    cl->background_changed = v && json_is_boolean(v) ? json_is_true(v) : -1;
    json_t *arr = get_array(c, jc, "samples", "cpu_load.samples"), *el;
    if (!arr) return -1;
    size_t i;
    char path[64];
    json_array_foreach(arr, i, el) {
        snprintf(path, sizeof path, "cpu_load.samples[%zu]", i);
        double x[4];
        if (!json_is_array(el) || json_array_size(el) != 4) return bad(c, path, "expected [t_s, busy_s, total_s, own_s]");
        for (size_t k = 0; k < 4; k++) {
            json_t *n = json_array_get(el, k);
            if (!json_is_number(n) || !isfinite(x[k] = json_number_value(n)))
                return bad(c, path, "expected [t_s, busy_s, total_s, own_s] numbers");
        }
        if (x[1] < 0 || x[2] < x[1]) return bad(c, path, "busy_s must be in [0, total_s]");
        if (i && (x[0] < cl->samples[i - 1].t_s || x[1] < cl->samples[i - 1].busy_s || x[2] < cl->samples[i - 1].total_s))
            return bad(c, path, "time and CPU seconds must not decrease");
        etok_cpu_sample *s = etok_record_add_cpu_sample(r);
        if (!s) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
        *s = (etok_cpu_sample){x[0], x[1], x[2], x[3]};
    }
    json_t *jp = json_object_get(jc, "phases");
    if (jp && !json_is_object(jp)) return bad(c, "cpu_load.phases", "expected an object");
    for (int k = 0; jp && k < ETOK_PHASE_COUNT; k++) {
        json_t *ph = json_object_get(jp, PHASE_NAMES[k]);
        if (!ph) continue;
        snprintf(path, sizeof path, "cpu_load.phases.%s", PHASE_NAMES[k]);
        if (!json_is_object(ph)) return bad(c, path, "expected an object");
        if (get_fields(c, path, ph, &cl->phase[k], PHASE_FIELDS, NFIELDS(PHASE_FIELDS)) != 0) return -1;
    }
    cl->present = 1;
    return 0;
}

static int load_trace(const ctx *c, json_t *jt, size_t i, etok_record *r) {
    char path[256];
    snprintf(path, sizeof path, "traces[%zu]", i);
    if (!json_is_object(jt)) return bad(c, path, "expected an object");
    etok_trace *t = etok_record_add_trace(r);
    if (!t) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
    if (get_fields(c, path, jt, t, TRACE_FIELDS, NFIELDS(TRACE_FIELDS)) != 0) return -1;
    if (!(t->scale_to_si > 0)) return bad(c, strcat(path, ".scale_to_si"), "must be > 0");
    /* The unit decides how analysis reads the samples (J: an accumulator, W: power). */
    static const char *const UNITS[] = {"uJ", "mJ", "J", "uW", "mW", "W"};
    int unit_ok = 0;
    for (size_t u = 0; u < sizeof UNITS / sizeof UNITS[0]; u++) unit_ok |= !strcmp(t->raw_unit, UNITS[u]);
    if (!unit_ok) {
        char up[300];
        snprintf(up, sizeof up, "%s.raw_unit", path);
        return bad(c, up, "\"%s\" is not one of uJ, mJ, J (counters) or uW, mW, W (power)", t->raw_unit);
    }
    int is_counter = t->raw_unit[strlen(t->raw_unit) - 1] == 'J';
    char spath[300];
    snprintf(spath, sizeof spath, "%s.samples", path);
    json_t *ss = get_array(c, jt, "samples", spath);
    if (!ss) return -1;
    size_t k;
    json_t *pair;
    double prev_t = -INFINITY;
    json_array_foreach(ss, k, pair) {
        snprintf(spath, sizeof spath, "%s.samples[%zu]", path, k);
        if (!json_is_array(pair) || json_array_size(pair) != 2 || !json_is_number(json_array_get(pair, 0)) ||
            !json_is_number(json_array_get(pair, 1)))
            return bad(c, spath, "expected [t_s, raw] numbers");
        double ts = json_number_value(json_array_get(pair, 0));
        double raw = json_number_value(json_array_get(pair, 1));
        if (ts < prev_t) return bad(c, spath, "t_s %.17g is before the previous sample (%.17g)", ts, prev_t);
        if (fabs(ts) > T_MAX) return bad(c, spath, "t_s %.17g is beyond %g s of the record's t = 0", ts, T_MAX);
        /* Physically impossible readings would give negative or absurd energy with exit 0. */
        if (is_counter) {
            if (raw < 0) return bad(c, spath, "counter reading %.17g %s is negative", raw, t->raw_unit);
            double top = t->wrap_range_raw > 0 ? t->wrap_range_raw : ETOK_COUNTER_MAX_RAW;
            if (raw > top)
                return bad(c, spath, "counter reading %.17g %s is beyond its %s (%.17g %s)", raw, t->raw_unit,
                           t->wrap_range_raw > 0 ? "wrap range wrap_range_raw" : "64-bit range", top, t->raw_unit);
        } else {
            if (raw < 0) return bad(c, spath, "power %.17g %s is negative", raw, t->raw_unit);
            if (raw * t->scale_to_si > ETOK_POWER_MAX_W)
                return bad(c, spath, "power %.17g %s (%g W) is above the %g W limit", raw, t->raw_unit, raw * t->scale_to_si,
                           ETOK_POWER_MAX_W);
        }
        prev_t = ts;
        if (!etok_trace_add_sample(t, ts, raw)) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
    }
    return 0;
}

static int load_request(const ctx *c, json_t *jq, size_t i, etok_record *r) {
    char path[256], sub[300];
    snprintf(path, sizeof path, "requests[%zu]", i);
    if (!json_is_object(jq)) return bad(c, path, "expected an object");
    etok_request *q = etok_record_add_request(r);
    if (!q) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
    if (get_fields(c, path, jq, q, REQUEST_FIELDS, NFIELDS(REQUEST_FIELDS)) != 0) return -1;
    /* Times run forwards: sent <= first token <= done (a negative time means "never"). */
    if (q->t_send_s >= 0 && q->t_first_token_s >= 0 && q->t_first_token_s < q->t_send_s)
        return bad(c, strcat(path, ".t_first_token_s"), "%.17g is before t_send_s %.17g", q->t_first_token_s, q->t_send_s);
    if (q->t_send_s >= 0 && q->t_done_s >= 0 && q->t_done_s < q->t_send_s)
        return bad(c, strcat(path, ".t_done_s"), "%.17g is before t_send_s %.17g", q->t_done_s, q->t_send_s);
    if (q->t_first_token_s >= 0 && q->t_done_s >= 0 && q->t_done_s < q->t_first_token_s)
        return bad(c, strcat(path, ".t_done_s"), "%.17g is before t_first_token_s %.17g", q->t_done_s, q->t_first_token_s);
    snprintf(sub, sizeof sub, "%s.token_times_s", path);
    json_t *tt = get_array(c, jq, "token_times_s", sub);
    if (!tt) return -1;
    size_t n = json_array_size(tt);
    if (n) {
        q->token_times_s = malloc(n * sizeof(double));
        if (!q->token_times_s) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
    }
    double prev_tok = NAN;
    for (size_t k = 0; k < n; k++) {
        json_t *v = json_array_get(tt, k);
        snprintf(sub, sizeof sub, "%s.token_times_s[%zu]", path, k);
        if (json_is_null(v)) q->token_times_s[k] = NAN;
        else if (json_is_number(v)) q->token_times_s[k] = json_number_value(v);
        else return bad(c, sub, "expected a number");
        double x = q->token_times_s[k];
        if (!isnan(x)) {
            if (fabs(x) > T_MAX) return bad(c, sub, "%.17g is beyond %g s of the record's t = 0", x, T_MAX);
            if (!isnan(prev_tok) && x < prev_tok) return bad(c, sub, "%.17g is before the previous token (%.17g)", x, prev_tok);
            prev_tok = x;
        }
        q->n_token_times = k + 1;
    }
    snprintf(sub, sizeof sub, "%s.output", path);
    json_t *out = json_object_get(jq, "output");
    if (!out) return bad(c, sub, "missing");
    if (json_is_string(out)) {
        q->output = strdup(json_string_value(out));
        if (!q->output) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
    } else if (!json_is_null(out)) {
        return bad(c, sub, "expected a string or null");
    }
    return 0;
}

static int record_from_json(etok_record *r, json_t *o, const ctx *c) {
    if (!json_is_object(o)) return bad(c, "(top level)", "expected a JSON object");
    json_t *ver = json_object_get(o, "schema_version");
    if (!ver) return bad(c, "schema_version", "missing (is this an etok run record?)");
    if (!json_is_integer(ver)) return bad(c, "schema_version", "expected an integer");
    json_int_t v = json_integer_value(ver);
    if (v > ETOK_RECORD_SCHEMA_VERSION)
        return bad(c, "schema_version", "%lld is newer than this etok understands (%d); upgrade etok", (long long)v,
                   ETOK_RECORD_SCHEMA_VERSION);
    if (v < 1) return bad(c, "schema_version", "%lld is not a valid version", (long long)v);
    r->schema_version = (int)v;

    if (get_fields(c, "", o, r, RECORD_FIELDS, NFIELDS(RECORD_FIELDS)) != 0) return -1;
    {
        json_t *sr = json_object_get(o, "stop_reason");
        if (sr && !json_is_null(sr)) {
            if (!json_is_string(sr)) return bad(c, "stop_reason", "expected a string");
            const char *v = json_string_value(sr);
            if (json_string_length(sr) >= sizeof r->stop_reason || strlen(v) != json_string_length(sr))
                return bad(c, "stop_reason", "expected a short string (at most %zu bytes)", sizeof r->stop_reason - 1);
            snprintf(r->stop_reason, sizeof r->stop_reason, "%s", v);
        }
    }
    if (strcmp(r->pue_source, "assumed") != 0 && strcmp(r->pue_source, "measured") != 0)
        return bad(c, "pue_source", "expected \"assumed\" or \"measured\"");
    if (r->idle_end_s < r->idle_start_s) return bad(c, "idle_end_s", "before idle_start_s");
    if (r->window_end_s < r->window_start_s) return bad(c, "window_end_s", "before window_start_s");

    json_t *cfg = json_object_get(o, "config");
    if (!cfg) return bad(c, "config", "missing");
    if (!json_is_null(cfg)) {
        if (json_is_string(cfg)) r->config_json = strdup(json_string_value(cfg));
        else r->config_json = json_dumps(cfg, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(17));
        if (!r->config_json) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
    }

    json_t *hw = json_object_get(o, "hw");
    if (!hw) return bad(c, "hw", "missing");
    if (!json_is_object(hw)) return bad(c, "hw", "expected an object");
    if (get_fields(c, "hw", hw, &r->hw, HW_FIELDS, NFIELDS(HW_FIELDS)) != 0) return -1;

    size_t i;
    json_t *el, *arr;
    char path[64];
    if (!(arr = get_array(c, o, "traces", "traces"))) return -1;
    json_array_foreach(arr, i, el) if (load_trace(c, el, i, r) != 0) return -1;

    if (!(arr = get_array(c, o, "faults", "faults"))) return -1;
    json_array_foreach(arr, i, el) {
        snprintf(path, sizeof path, "faults[%zu]", i);
        if (!json_is_object(el)) return bad(c, path, "expected an object");
        etok_fault *f = etok_record_add_fault(r, 0, "", "", "", "%s", "");
        if (!f) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
        if (get_fields(c, path, el, f, FAULT_FIELDS, NFIELDS(FAULT_FIELDS)) != 0) return -1;
    }

    if (!(arr = get_array(c, o, "steps", "steps"))) return -1;
    json_array_foreach(arr, i, el) {
        snprintf(path, sizeof path, "steps[%zu]", i);
        if (!json_is_object(el)) return bad(c, path, "expected an object");
        etok_step *s = etok_record_add_step(r);
        if (!s) return etok_errc(c->err, ETOK_EXIT_FAIL, "%s: out of memory", c->what);
        if (get_fields(c, path, el, s, STEP_FIELDS, NFIELDS(STEP_FIELDS)) != 0) return -1;
        if (s->t_end_s < s->t_start_s) return bad(c, strcat(path, ".t_end_s"), "before t_start_s");
    }

    if (!(arr = get_array(c, o, "requests", "requests"))) return -1;
    json_array_foreach(arr, i, el) if (load_request(c, el, i, r) != 0) return -1;

    json_t *jg = json_object_get(o, "grid");
    if (jg && !json_is_null(jg)) {
        if (!json_is_object(jg)) return bad(c, "grid", "expected an object");
        if (get_fields(c, "grid", jg, &r->grid, GRID_FIELDS, NFIELDS(GRID_FIELDS)) != 0) return -1;
        if (!(r->grid.g_per_kwh > 0)) return bad(c, "grid.g_per_kwh", "must be a number > 0");
        r->grid.present = 1;
    }
    json_t *jc = json_object_get(o, "cpu_load");
    if (jc && !json_is_null(jc) && load_cpuload(c, jc, r) != 0) return -1;
    return 0;
}

int etok_record_from_json_text(etok_record *r, const char *text, const char *what, etok_err *err) {
    ctx c = {what ? what : "record", err};
    etok_record_init(r);
    json_error_t je;
    json_t *o = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!o) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s:%d:%d: not valid JSON: %s", c.what, je.line, je.column, je.text);
        return -1;
    }
    int rc = record_from_json(r, o, &c);
    json_decref(o);
    if (rc != 0) etok_record_free(r);
    if (rc != 0) etok_record_init(r);
    return rc;
}

int etok_record_load(etok_record *r, const char *path, etok_err *err) {
    size_t len = 0;
    char *text = etok_read_file_bounded(path, "run record", ETOK_LIMIT_RECORD, &len, err);
    if (!text) {
        etok_record_init(r);
        return -1;
    }
    if (strlen(text) != len) {
        free(text);
        etok_record_init(r);
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: contains a NUL byte; not a run record", path);
    }
    int rc = etok_record_from_json_text(r, text, path, err);
    free(text);
    return rc;
}
