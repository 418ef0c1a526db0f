/* extlog.c — the `extlog` meter: an external power meter's log (a wall-socket meter, a PDU,
 * a BMC export), CSV `timestamp,watts` (unix seconds, header optional) or JSON lines
 * {"timestamp": .., "watts": ..}, aligned to the run by wall clock (rec->t0_wall_s).
 *
 * Owns: parsing (a malformed line is an error naming path:line), alignment to record time,
 * and gap faults: an interval without samples longer than the tolerance inside the run is
 * recorded as a "gap" fault and never filled. Read post hoc at stop (the log is usually
 * written by another program during the run); at open the file is parsed once to fail early.
 * Does not own: integration (analyse/). Assumes the logger's clock is NTP-synchronised with
 * this host's (documented in docs/MEASUREMENT.md). */
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

int etok_extlog_parse(const char *path, double **ts_out, double **watts_out, size_t *n_out, etok_err *err) {
    *ts_out = *watts_out = NULL;
    *n_out = 0;
    size_t len;
    char *text = etok_read_file(path, &len);
    if (!text) return etok_errc(err, ETOK_EXIT_INPUT, "extlog: cannot read %s: %s", path, strerror(errno));
    size_t cap = 0, n = 0;
    double *ts = NULL, *w = NULL;
    size_t lineno = 0;
    int seen_data = 0;
    char *line = text;
    int rc = 0;
    while (line && *line) {
        char *nl = strchr(line, '\n');
        char *end = nl ? nl : line + strlen(line);
        lineno++;
        char *s = line;
        while (s < end && (*s == ' ' || *s == '\t' || *s == '\r')) s++;
        if (s == end || *s == '#') goto next;
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
                if (!seen_data && !n && lineno == 1 && comma) goto next; /* a header line */
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
        if (n && t < ts[n - 1]) {
            rc = etok_errc(err, ETOK_EXIT_INPUT, "%s:%zu: timestamp %.3f goes backwards (previous %.3f)", path, lineno, t, ts[n - 1]);
            break;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 256;
            double *a = realloc(ts, cap * sizeof *a);
            if (!a) { rc = etok_errc(err, ETOK_EXIT_FAIL, "extlog: out of memory"); break; }
            ts = a;
            double *b = realloc(w, cap * sizeof *b);
            if (!b) { rc = etok_errc(err, ETOK_EXIT_FAIL, "extlog: out of memory"); break; }
            w = b;
        }
        ts[n] = t;
        w[n] = p;
        n++;
    next:
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    if (rc != 0) {
        free(ts);
        free(w);
        return -1;
    }
    *ts_out = ts;
    *watts_out = w;
    *n_out = n;
    return 0;
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
    double *t, *w;
    size_t n;
    etok_err e = {{0}, 0};
    if (etok_extlog_parse(cfg->extlog_path, &t, &w, &n, &e) != 0) {
        etok_meter_why(st->why, sizeof st->why, "no driver: %s", e.msg);
        return;
    }
    free(t);
    free(w);
    etok_meter_why(st->domains, sizeof st->domains, "%s", base_name(cfg->extlog_path));
    st->available = 1;
}

static int extlog_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    if (!cfg || !cfg->extlog_path)
        return etok_errc(err, ETOK_EXIT_USAGE, "extlog: no power-meter log given (--extlog FILE)");
    double *t, *w;
    size_t n;
    if (etok_extlog_parse(cfg->extlog_path, &t, &w, &n, err) != 0) return -1;
    free(t);
    free(w);
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

int etok_extlog_align(etok_record *rec, size_t ti, const double *ts, const double *w, size_t n, double t_end_s,
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
                              t_end_s, n, n ? "; check the logger's clock" : "");
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

static int extlog_collect(etok_meter_inst *mi, etok_record *rec, size_t ti, double t_end_s, etok_err *err) {
    extlog_state *s = mi->priv;
    double *ts, *w;
    size_t n;
    if (etok_extlog_parse(s->path, &ts, &w, &n, err) != 0) return -1;
    int rc = etok_extlog_align(rec, ti, ts, w, n, t_end_s, s->gap_s, err);
    free(ts);
    free(w);
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
