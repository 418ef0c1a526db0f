/* prom.c — Prometheus text exposition format writer (see prom.h).
 *
 * Owns: the text format (HELP/TYPE lines, escaping, number spelling, histogram series).
 * Does not own: which metrics exist or what their values are (serve/server.c, serve/exporter.c). */
#include "etok/prom.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void etok_prom_init(etok_prom_buf *b) { memset(b, 0, sizeof *b); }

void etok_prom_free(etok_prom_buf *b) {
    free(b->text);
    memset(b, 0, sizeof *b);
}

static void put(etok_prom_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t c = b->cap ? b->cap : 1024;
        while (c < b->len + n + 1) c *= 2;
        char *t = realloc(b->text, c);
        if (!t) {
            b->oom = 1;
            return;
        }
        b->text = t;
        b->cap = c;
    }
    memcpy(b->text + b->len, s, n);
    b->len += n;
    b->text[b->len] = '\0';
}

static void puts_(etok_prom_buf *b, const char *s) { put(b, s, strlen(s)); }

static void putf(etok_prom_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void putf(etok_prom_buf *b, const char *fmt, ...) {
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    if (n < 0) return;
    put(b, tmp, (size_t)n < sizeof tmp ? (size_t)n : sizeof tmp - 1);
}

static void put_value(etok_prom_buf *b, double v) {
    if (isnan(v)) puts_(b, "NaN");
    else if (isinf(v)) puts_(b, v > 0 ? "+Inf" : "-Inf");
    else putf(b, "%.15g", v);
}

int etok_prom_valid_metric_name(const char *s) {
    if (!s || !*s) return 0;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' || (i > 0 && c >= '0' && c <= '9');
        if (!ok) return 0;
    }
    return 1;
}

int etok_prom_valid_label_name(const char *s) {
    if (!etok_prom_valid_metric_name(s) || strchr(s, ':')) return 0;
    return !(s[0] == '_' && s[1] == '_'); /* __ is reserved */
}

void etok_prom_escape_label(etok_prom_buf *b, const char *v) {
    for (; v && *v; v++) {
        if (*v == '\\') puts_(b, "\\\\");
        else if (*v == '"') puts_(b, "\\\"");
        else if (*v == '\n') puts_(b, "\\n");
        else put(b, v, 1);
    }
}

void etok_prom_family(etok_prom_buf *b, const char *name, const char *type, const char *help) {
    puts_(b, "# HELP ");
    puts_(b, name);
    puts_(b, " ");
    for (const char *h = help; h && *h; h++) { /* HELP escapes only \\ and newline */
        if (*h == '\\') puts_(b, "\\\\");
        else if (*h == '\n') puts_(b, "\\n");
        else put(b, h, 1);
    }
    puts_(b, "\n# TYPE ");
    puts_(b, name);
    puts_(b, " ");
    puts_(b, type);
    puts_(b, "\n");
}

static void put_labels(etok_prom_buf *b, const char *const *labels, const char *extra_name, const char *extra_value) {
    int any = (labels && labels[0]) || extra_name;
    if (!any) return;
    puts_(b, "{");
    int first = 1;
    for (int i = 0; labels && labels[i] && labels[i + 1]; i += 2) {
        if (!first) puts_(b, ",");
        first = 0;
        puts_(b, labels[i]);
        puts_(b, "=\"");
        etok_prom_escape_label(b, labels[i + 1]);
        puts_(b, "\"");
    }
    if (extra_name) {
        if (!first) puts_(b, ",");
        puts_(b, extra_name);
        puts_(b, "=\"");
        etok_prom_escape_label(b, extra_value);
        puts_(b, "\"");
    }
    puts_(b, "}");
}

void etok_prom_sample(etok_prom_buf *b, const char *name, const char *const *labels, double value) {
    puts_(b, name);
    put_labels(b, labels, NULL, NULL);
    puts_(b, " ");
    put_value(b, value);
    puts_(b, "\n");
}

int etok_prom_histogram_init(etok_prom_histogram *h, const double *bounds, int n) {
    memset(h, 0, sizeof *h);
    if (n < 0 || n > ETOK_PROM_MAX_BUCKETS) return -1;
    for (int i = 0; i < n; i++) {
        if (!isfinite(bounds[i]) || (i > 0 && bounds[i] <= bounds[i - 1])) return -1;
        h->bounds[i] = bounds[i];
    }
    h->n_bounds = n;
    return 0;
}

void etok_prom_histogram_observe(etok_prom_histogram *h, double v) {
    if (isnan(v)) return;
    int i = 0;
    while (i < h->n_bounds && v > h->bounds[i]) i++;
    h->counts[i]++;
    h->sum += v;
    h->count++;
}

void etok_prom_histogram_write(etok_prom_buf *b, const char *name, const char *const *labels,
                               const etok_prom_histogram *h) {
    char series[256];
    unsigned long long cum = 0;
    snprintf(series, sizeof series, "%s_bucket", name);
    for (int i = 0; i <= h->n_bounds; i++) {
        cum += h->counts[i];
        char le[64];
        if (i == h->n_bounds) snprintf(le, sizeof le, "+Inf");
        else snprintf(le, sizeof le, "%.15g", h->bounds[i]);
        puts_(b, series);
        put_labels(b, labels, "le", le);
        putf(b, " %llu\n", cum);
    }
    snprintf(series, sizeof series, "%s_sum", name);
    etok_prom_sample(b, series, labels, h->sum);
    snprintf(series, sizeof series, "%s_count", name);
    puts_(b, series);
    put_labels(b, labels, NULL, NULL);
    putf(b, " %llu\n", h->count);
}
