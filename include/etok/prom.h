/* prom.h — Prometheus text exposition format (version 0.0.4) writer.
 *
 * A growable text buffer plus writers for metric families: `# HELP` / `# TYPE` headers,
 * samples with escaped label values, and histograms as cumulative `_bucket{le=...}`, `_sum`,
 * `_count`. Labels are given as a NULL-terminated list of name, value pairs.
 *
 * Render layer: formats numbers it is given and never measures anything. The histogram state
 * below only counts observations into fixed buckets (the exposition's own data model). */
#ifndef ETOK_PROM_H
#define ETOK_PROM_H

#include <stddef.h>

typedef struct {
    char *text;     /* NUL-terminated */
    size_t len, cap;
    int oom;        /* an allocation failed: text is incomplete */
} etok_prom_buf;

void etok_prom_init(etok_prom_buf *b);
void etok_prom_free(etok_prom_buf *b);

/* Is name a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*) / label name ([a-zA-Z_][a-zA-Z0-9_]*)? */
int etok_prom_valid_metric_name(const char *name);
int etok_prom_valid_label_name(const char *name);

/* "# HELP name help" (help escaped) and "# TYPE name type" (counter, gauge, histogram,
 * summary, untyped). Write once per family, before its samples. */
void etok_prom_family(etok_prom_buf *b, const char *name, const char *type, const char *help);
/* One sample line: name{l1="v1",...} value. labels: {"l1", "v1", ..., NULL} or NULL. Values
 * print with 15 significant digits; NaN and infinities as Prometheus spells them. */
void etok_prom_sample(etok_prom_buf *b, const char *name, const char *const *labels, double value);
/* Append escaped label value (\\, \", \n) — exposed for tests. */
void etok_prom_escape_label(etok_prom_buf *b, const char *value);

/* A histogram: fixed upper bounds (ascending, +Inf implied), per-bucket (not cumulative)
 * counts, sum and count. */
#define ETOK_PROM_MAX_BUCKETS 32
typedef struct {
    int n_bounds;
    double bounds[ETOK_PROM_MAX_BUCKETS];
    unsigned long long counts[ETOK_PROM_MAX_BUCKETS + 1]; /* last = above every bound */
    double sum;
    unsigned long long count;
} etok_prom_histogram;

/* bounds ascending, n <= ETOK_PROM_MAX_BUCKETS; returns 0 or -1 when they are not. */
int etok_prom_histogram_init(etok_prom_histogram *h, const double *bounds, int n);
void etok_prom_histogram_observe(etok_prom_histogram *h, double value);
/* Writes name_bucket{labels...,le="..."} (cumulative, ending in le="+Inf"), name_sum, name_count.
 * Call etok_prom_family(b, name, "histogram", help) first. */
void etok_prom_histogram_write(etok_prom_buf *b, const char *name, const char *const *labels,
                               const etok_prom_histogram *h);

#endif
