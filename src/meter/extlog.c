/* extlog.c — the `extlog` meter: an external power meter's log (a wall-socket meter, a PDU,
 * a BMC export), CSV `timestamp,watts` (unix seconds, header optional) or JSON lines
 * {"timestamp": .., "watts": ..}, aligned to the run by wall clock (rec->t0_wall_s).
 *
 * Owns: parsing (a malformed line is an error naming path:line), alignment to record time,
 * and gap faults: an interval without samples longer than the tolerance inside the run is
 * recorded as a "gap" fault and never filled. Read post hoc at stop (the log is usually
 * written by another program during the run); at open the file is parsed once to fail early.
 * The log is read as a stream, line by line (a line is at most ETOK_LIMIT_EXTLOG_LINE bytes;
 * the file must be regular): a validating pass keeps nothing, and at stop only the samples the
 * run window needs are kept, so memory follows the run, not the log's length.
 * Does not own: integration (analyse/). Assumes the logger's clock is NTP-synchronised with
 * this host's (documented in docs/MEASUREMENT.md). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "meter/driver.h"
#include "etok/parse.h"

static int parse_number(const char *s, const char *end, double *out) {
    while (s < end && (*s == ' ' || *s == '\t')) s++;
    while (end > s && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r')) end--;
    if (s == end) return -1;
    char buf[64];
    size_t n = (size_t)(end - s);
    if (n >= sizeof buf) return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *e;
    errno = 0;
    double v = strtod(buf, &e);
    if (*e || errno || !isfinite(v)) return -1;
    *out = v;
    return 0;
}

/* Where parsed samples go: everything (etok_extlog_parse), nothing (a validating pass), or
 * only what the run window [0, t_end] (record time, t = ts - t0) needs: the samples inside and
 * the nearest one beyond each edge. Memory then grows with the run, not with the log. */
typedef struct {
    int store;    /* 0: validate only */
    int windowed; /* keep only the window's samples */
    double t0, t_end;
    int have_before; /* the last sample before the window, not yet stored */
    double before_t, before_w;
    double last_t; /* the previous timestamp (backwards check), valid when seen > 0 */
    size_t seen;   /* samples in the log (read so far) */
    int done;      /* windowed: the first sample past the window is stored; stop reading */
    double *ts, *w;
    size_t n, cap;
} extlog_sink;

static int sink_push(extlog_sink *k, double t, double p) {
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 256;
        double *a = realloc(k->ts, cap * sizeof *a);
        if (!a) return -1;
        k->ts = a;
        double *b = realloc(k->w, cap * sizeof *b);
        if (!b) return -1;
        k->w = b;
        k->cap = cap;
    }
    k->ts[k->n] = t;
    k->w[k->n] = p;
    k->n++;
    return 0;
}

static int sink_add(extlog_sink *k, double t, double p) {
    if (!k->store) return 0;
    if (!k->windowed) return sink_push(k, t, p);
    double rt = t - k->t0;
    if (rt < 0) {
        k->have_before = 1;
        k->before_t = t;
        k->before_w = p;
        return 0;
    }
    if (k->have_before) {
        k->have_before = 0;
        if (sink_push(k, k->before_t, k->before_w) != 0) return -1;
    }
    if (rt > k->t_end) k->done = 1;
    return sink_push(k, t, p);
}

/* One line of at most ETOK_LIMIT_EXTLOG_LINE bytes into buf (without the newline). 1 a line,
 * 0 at the end, -1 too long, -2 a NUL byte, -3 a read error. */
static int read_line(FILE *f, char *buf, size_t cap, size_t *len) {
    size_t n = 0;
    int c;
    while ((c = getc_unlocked(f)) != EOF && c != '\n') {
        if (c == '\0') return -2;
        if (n + 1 >= cap) return -1;
        buf[n++] = (char)c;
    }
    if (c == EOF && ferror(f)) return -3;
    if (c == EOF && n == 0) return 0;
    buf[n] = '\0';
    *len = n;
    return 1;
}

static int parse_stream(const char *path, extlog_sink *k, etok_err *err) {
    int fd = etok_open_regular(path, "power-meter log", err);
    if (fd < 0) return -1;
    FILE *f = fdopen(fd, "r");
    if (!f) {
        close(fd);
        return etok_errc(err, ETOK_EXIT_FAIL, "extlog: %s: out of memory", path);
    }
    char *line = malloc(ETOK_LIMIT_EXTLOG_LINE + 1);
    if (!line) {
        fclose(f);
        return etok_errc(err, ETOK_EXIT_FAIL, "extlog: %s: out of memory", path);
    }
    size_t lineno = 0, len = 0;
    int seen_data = 0, rc = 0, got;
    while (!k->done && (got = read_line(f, line, ETOK_LIMIT_EXTLOG_LINE + 1, &len)) != 0) {
        lineno++;
        if (got < 0) {
            if (got == -1)
                rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: line longer than %zu bytes; not a power-meter log", path,
                               lineno, (size_t)ETOK_LIMIT_EXTLOG_LINE);
            else if (got == -2)
                rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: contains a NUL byte; not a power-meter log", path, lineno);
            else
                rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: read error: %s", path, lineno, strerror(errno));
            break;
        }
        char *s = line, *end = line + len;
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        if (s == end || *s == '#') continue;
        double t, p;
        if (*s == '{') {
            json_error_t je;
            json_t *o = json_loadb(s, (size_t)(end - s), 0, &je);
            json_t *jt = o ? json_object_get(o, "timestamp") : NULL;
            json_t *jw = o ? json_object_get(o, "watts") : NULL;
            int ok = o && json_is_object(o) && json_is_number(jt) && json_is_number(jw);
            if (ok) { t = json_number_value(jt); p = json_number_value(jw); }
            json_decref(o);
            if (!ok) {
                rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: malformed line: expected a JSON object with numbers \"timestamp\" and \"watts\"%s%s",
                               path, lineno, o ? "" : ": ", o ? "" : je.text);
                break;
            }
        } else {
            char *comma = memchr(s, ',', (size_t)(end - s));
            if (!comma || parse_number(s, comma, &t) != 0 || parse_number(comma + 1, end, &p) != 0) {
                if (!seen_data && lineno == 1 && comma) continue; /* a header line */
                rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: malformed line: expected `timestamp,watts` (unix seconds, watts)", path, lineno);
                break;
            }
        }
        seen_data = 1;
        if (p > ETOK_POWER_MAX_W) {
            rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: power %g W is above %g W (a unit error?)", path, lineno, p, ETOK_POWER_MAX_W);
            break;
        }
        if (p < 0) {
            rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: negative power %g W", path, lineno, p);
            break;
        }
        if (k->seen && t < k->last_t) {
            rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: timestamp %.3f goes backwards (previous %.3f)", path, lineno, t, k->last_t);
            break;
        }
        k->last_t = t;
        k->seen++;
        if (sink_add(k, t, p) != 0) {
            rc = etok_errc(err, ETOK_EXIT_FAIL, "extlog: out of memory");
            break;
        }
    }
    free(line);
    fclose(f);
    if (rc == 0 && k->windowed && k->have_before && k->n == 0) { /* only samples before the window */
        k->have_before = 0;
        if (sink_push(k, k->before_t, k->before_w) != 0) rc = etok_errc(err, ETOK_EXIT_FAIL, "extlog: out of memory");
    }
    if (rc != 0) {
        free(k->ts);
        free(k->w);
        k->ts = k->w = NULL;
        k->n = 0;
    }
    return rc;
}

int etok_extlog_parse(const char *path, double **ts_out, double **watts_out, size_t *n_out, etok_err *err) {
    extlog_sink k = {.store = 1};
    *ts_out = *watts_out = NULL;
    *n_out = 0;
    if (parse_stream(path, &k, err) != 0) return -1;
    *ts_out = k.ts;
    *watts_out = k.w;
    *n_out = k.n;
    return 0;
}

/* A validating pass: the whole log is read, nothing kept. */
static int extlog_check(const char *path, etok_err *err) {
    extlog_sink k = {.store = 0};
    return parse_stream(path, &k, err);
}

static const char *base_name(const char *p) {
    const char *s = strrchr(p, '/');
    return s ? s + 1 : p;
}

static double gap_tolerance_s(const etok_meter_config *cfg) {
    return cfg && cfg->extlog_gap_s > 0 ? cfg->extlog_gap_s : 2.0;
}

typedef struct {
    char path[512];
    double gap_s;
} extlog_state;

static void extlog_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    st->resolution_si = 0;
    if (!cfg || !cfg->extlog_path) {
        etok_meter_why(st->why, sizeof st->why, "missing: no power-meter log given (--extlog FILE)");
        return;
    }
    etok_err e = {{0}, 0};
    if (extlog_check(cfg->extlog_path, &e) != 0) {
        etok_meter_why(st->why, sizeof st->why, "no driver: %s", e.msg);
        return;
    }
    etok_meter_why(st->domains, sizeof st->domains, "%s", base_name(cfg->extlog_path));
    st->available = 1;
}

static int extlog_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    if (!cfg || !cfg->extlog_path)
        return etok_errc(err, ETOK_EXIT_USAGE, "extlog: no power-meter log given (--extlog FILE)");
    if (extlog_check(cfg->extlog_path, err) != 0) return -1;
    extlog_state *s = calloc(1, sizeof *s);
    if (!s) return etok_errc(err, ETOK_EXIT_FAIL, "extlog: out of memory");
    etok_meter_why(s->path, sizeof s->path, "%s", cfg->extlog_path);
    s->gap_s = gap_tolerance_s(cfg);
    mi->priv = s;
    mi->n_domains = 1;
    etok_meter_domain *d = &mi->dom[0];
    memset(d, 0, sizeof *d);
    d->pair = -1;
    etok_trace *tr = &d->info;
    etok_meter_why(tr->meter, sizeof tr->meter, "extlog");
    etok_meter_why(tr->domain, sizeof tr->domain, "%s", base_name(cfg->extlog_path));
    tr->source = ETOK_SOURCE_EXTERNAL;
    tr->boundary = ETOK_BOUNDARY_NODE;
    etok_meter_why(tr->raw_unit, sizeof tr->raw_unit, "W");
    tr->scale_to_si = 1.0;
    tr->resolution_si = 0; /* the logger's; unknown to etok */
    tr->summable = 1;
    etok_meter_why(d->path, sizeof d->path, "%s", cfg->extlog_path);
    return 0;
}

static int extlog_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    (void)mi; (void)d; (void)raw;
    return etok_errc(err, ETOK_EXIT_FAIL, "extlog: read post hoc, not live");
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void gap_fault(etok_record *rec, const etok_trace *tr, double a, double b, double tol) {
    etok_record_add_fault(rec, a, "extlog", tr->domain, "gap",
                          "no power samples for %.3f s between t=%.3f s and t=%.3f s (tolerance %.3g s); not filled",
                          b - a, a, b, tol);
}

/* n_log: how many samples the log holds (ts may be only the window's). */
static int align(etok_record *rec, size_t ti, const double *ts, const double *w, size_t n, size_t n_log, double t_end_s,
                 double gap_s, etok_err *err) {
    etok_trace *tr = &rec->traces[ti];
    double t0 = rec->t0_wall_s;
    /* keep the samples inside [0, t_end] and the nearest one beyond each edge (within the
     * tolerance) so the edges can be interpolated */
    size_t first = n, last = 0;
    for (size_t i = 0; i < n; i++) {
        double t = ts[i] - t0;
        if (t >= 0 && t <= t_end_s) {
            if (first == n) first = i;
            last = i;
        }
    }
    size_t lo = n, hi = 0;
    if (first < n) {
        lo = first;
        hi = last;
    } else { /* nothing inside: two samples may straddle the whole window */
        for (size_t i = 0; i + 1 < n; i++)
            if (ts[i] - t0 < 0 && ts[i + 1] - t0 > t_end_s) { lo = i; hi = i + 1; }
    }
    if (lo < n) {
        if (lo > 0 && ts[lo] - t0 > 0 && -(ts[lo - 1] - t0) <= gap_s) lo--;
        if (hi + 1 < n && ts[hi] - t0 < t_end_s && (ts[hi + 1] - t0) - t_end_s <= gap_s) hi++;
        for (size_t i = lo; i <= hi; i++)
            if (!etok_trace_add_sample(tr, ts[i] - t0, w[i])) return etok_errc(err, ETOK_EXIT_FAIL, "extlog: out of memory");
    }
    if (tr->n_samples == 0) {
        etok_record_add_fault(rec, 0, "extlog", tr->domain, "gap",
                              "no power samples inside the run window [0, %.3f] s (the log has %zu samples%s); not filled",
                              t_end_s, n_log, n_log ? "; check the logger's clock" : "");
        return 0;
    }
    double covered = 0; /* the run is covered by samples up to here */
    for (size_t i = 0; i < tr->n_samples; i++) {
        double t = tr->samples[i].t_s;
        double b = t < t_end_s ? t : t_end_s;
        if (b - covered > gap_s) gap_fault(rec, tr, covered, b, gap_s);
        if (t > covered) covered = t;
    }
    if (t_end_s - covered > gap_s) gap_fault(rec, tr, covered, t_end_s, gap_s);
    if (tr->n_samples >= 2) { /* the logger's median interval stands for its update period */
        double *dt = malloc((tr->n_samples - 1) * sizeof *dt);
        if (dt) {
            for (size_t i = 1; i < tr->n_samples; i++) dt[i - 1] = tr->samples[i].t_s - tr->samples[i - 1].t_s;
            qsort(dt, tr->n_samples - 1, sizeof *dt, cmp_double);
            tr->update_period_s = dt[(tr->n_samples - 1) / 2];
            free(dt);
        }
    }
    return 0;
}

int etok_extlog_align(etok_record *rec, size_t ti, const double *ts, const double *w, size_t n, double t_end_s,
                      double gap_s, etok_err *err) {
    return align(rec, ti, ts, w, n, n, t_end_s, gap_s, err);
}

static int extlog_collect(etok_meter_inst *mi, etok_record *rec, size_t ti, double t_end_s, etok_err *err) {
    extlog_state *s = mi->priv;
    /* streamed: only the run window's samples are kept, however long the log */
    extlog_sink k = {.store = 1, .windowed = 1, .t0 = rec->t0_wall_s, .t_end = t_end_s};
    if (parse_stream(s->path, &k, err) != 0) return -1;
    int rc = align(rec, ti, k.ts, k.w, k.n, k.seen, t_end_s, s->gap_s, err);
    free(k.ts);
    free(k.w);
    return rc;
}

static void extlog_close(etok_meter_inst *mi) {
    free(mi->priv);
    mi->priv = NULL;
}

const etok_meter_driver etok_meter_extlog = {
    .name = "extlog",
    .source = ETOK_SOURCE_EXTERNAL,
    .boundary = ETOK_BOUNDARY_NODE,
    .auto_open = 0, /* only with --extlog */
    .detect = extlog_detect,
    .open = extlog_open,
    .read = extlog_read,
    .collect = extlog_collect,
    .close = extlog_close,
};
