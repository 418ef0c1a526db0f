/* record.c — building a run record in memory: defaults, appenders, freeing.
 * Saving and loading (JSON) live in record_io.c. */
#include "etok/record.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const SOURCE_NAMES[] = {"counter", "power", "external", "estimate"};
static const char *const BOUNDARY_NAMES[] = {"device", "node", "facility"};

const char *etok_source_name(etok_source s) {
    return (unsigned)s < 4 ? SOURCE_NAMES[s] : "unknown";
}

const char *etok_boundary_name(etok_boundary b) {
    return (unsigned)b < 3 ? BOUNDARY_NAMES[b] : "unknown";
}

int etok_source_parse(const char *s, etok_source *out) {
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, SOURCE_NAMES[i]) == 0) { *out = (etok_source)i; return 0; }
    return -1;
}

int etok_boundary_parse(const char *s, etok_boundary *out) {
    for (int i = 0; i < 3; i++)
        if (s && strcmp(s, BOUNDARY_NAMES[i]) == 0) { *out = (etok_boundary)i; return 0; }
    return -1;
}

void etok_record_init(etok_record *r) {
    memset(r, 0, sizeof *r);
    r->schema_version = ETOK_RECORD_SCHEMA_VERSION;
    r->exit_status = -1;
    r->pue = 1.0;
    snprintf(r->pue_source, sizeof r->pue_source, "assumed");
    r->quality_target = -1.0;
}

void etok_record_free(etok_record *r) {
    for (size_t i = 0; i < r->n_traces; i++) free(r->traces[i].samples);
    for (size_t i = 0; i < r->n_requests; i++) {
        free(r->requests[i].token_times_s);
        free(r->requests[i].output);
    }
    free(r->traces);
    free(r->faults);
    free(r->steps);
    free(r->requests);
    free(r->config_json);
    free(r->cpuload.samples);
    memset(r, 0, sizeof *r);
}

/* Grow *arr (of n elements of size sz) by one zeroed element. The capacity is implicit: the
 * array is reallocated whenever n is 0 or a power of two, doubling it. */
static void *grow(void **arr, size_t *n, size_t sz) {
    if ((*n & (*n - 1)) == 0) {
        size_t ncap = *n ? *n * 2 : 1;
        void *na = realloc(*arr, ncap * sz);
        if (!na) return NULL;
        *arr = na;
    }
    void *el = (char *)*arr + (*n) * sz;
    memset(el, 0, sz);
    (*n)++;
    return el;
}

etok_trace *etok_record_add_trace(etok_record *r) {
    return grow((void **)&r->traces, &r->n_traces, sizeof(etok_trace));
}

etok_sample *etok_trace_add_sample(etok_trace *t, double t_s, double raw) {
    etok_sample *s = grow((void **)&t->samples, &t->n_samples, sizeof(etok_sample));
    if (s) { s->t_s = t_s; s->raw = raw; }
    return s;
}

etok_fault *etok_record_add_fault(etok_record *r, double t_s, const char *meter, const char *domain,
                                  const char *kind, const char *fmt, ...) {
    etok_fault *f = grow((void **)&r->faults, &r->n_faults, sizeof(etok_fault));
    if (!f) return NULL;
    f->t_s = t_s;
    snprintf(f->meter, sizeof f->meter, "%s", meter ? meter : "");
    snprintf(f->domain, sizeof f->domain, "%s", domain ? domain : "");
    snprintf(f->kind, sizeof f->kind, "%s", kind ? kind : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(f->message, sizeof f->message, fmt, ap);
    va_end(ap);
    return f;
}

etok_step *etok_record_add_step(etok_record *r) {
    return grow((void **)&r->steps, &r->n_steps, sizeof(etok_step));
}

etok_request *etok_record_add_request(etok_record *r) {
    etok_request *q = grow((void **)&r->requests, &r->n_requests, sizeof(etok_request));
    if (q) {
        q->t_send_s = q->t_first_token_s = q->t_done_s = -1.0;
        q->energy_j = -1.0;
    }
    return q;
}

etok_cpu_sample *etok_record_add_cpu_sample(etok_record *r) {
    return grow((void **)&r->cpuload.samples, &r->cpuload.n_samples, sizeof(etok_cpu_sample));
}
