/* compare.c — a candidate against a baseline (see include/etok/compare.h for every definition).
 * Pure: records in, deltas out; no I/O. Reuses metrics.c's stages (the request view: q*, s*,
 * latencies, goodput tokens; the request set's token totals for a run without requests),
 * energy.c's window energy and stats.c's two-arm bootstrap (two-stage over runs when an arm pools
 * records, never narrower than the runs' t-interval); derives no figure its own way.
 * Owns: units and pairing, the comparability checks, the (q*, s*) gate, the verdict line.
 * Does not own: loading records (cli/cmd_compare.c), formats (render/compare_render.c). */
#include "etok/compare.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/energy.h"
#include "etok/metrics.h"

/* One unit: a request, or (paired) the sum over an item's requests. */
typedef struct {
    char item[64];
    double e, tin, tout, tok, pass, checked, good, meets_s, one, secs;
    double ttft, tpot;
} unit;

enum { F_E, F_TOUT, F_TOK, F_PASS, F_CHECKED, F_GOOD, F_MEETS_S, F_ONE, F_SECS };

static double fld(const unit *u, int f) {
    switch (f) {
    case F_E: return u->e;
    case F_TOUT: return u->tout;
    case F_TOK: return u->tok;
    case F_PASS: return u->pass;
    case F_CHECKED: return u->checked;
    case F_GOOD: return u->good;
    case F_MEETS_S: return u->meets_s;
    case F_ONE: return u->one;
    default: return u->secs;
    }
}

typedef struct {
    unit *u;
    size_t n;
    unit *runs; /* one per record: its units summed, secs = its window (measured time lives here) */
    size_t n_runs;
    size_t *run_start; /* run k's units are u[run_start[k] .. run_start[k + 1]) (n_runs + 1 entries) */
    size_t n_checked;
    int n_fallback, n_rescaled, n_runs_as_unit;
    double books_worst; /* worst |sum attributed - window| / window over records that had attribution */
    double systematic;  /* mean relative 1-sigma of the records' window energy */
} arm_data;

static void arm_free(arm_data *a) {
    free(a->u);
    free(a->runs);
    free(a->run_start);
    memset(a, 0, sizeof *a);
}

static const char *rec_path(const etok_compare_arm *a, size_t i) {
    return a->paths && a->paths[i] ? a->paths[i] : a->name;
}

static int build_arm(const etok_compare_arm *a, arm_data *out, etok_err *err) {
    memset(out, 0, sizeof *out);
    size_t cap = 0;
    for (size_t k = 0; k < a->n_records; k++) cap += a->records[k]->n_requests ? a->records[k]->n_requests : 1;
    out->u = calloc(cap + 1, sizeof *out->u);
    out->runs = calloc(a->n_records + 1, sizeof *out->runs);
    out->run_start = calloc(a->n_records + 1, sizeof *out->run_start);
    if (!out->u || !out->runs || !out->run_start) {
        arm_free(out);
        return etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
    }
    double sys_sum = 0;
    size_t sys_n = 0;
    for (size_t k = 0; k < a->n_records; k++) {
        const etok_record *r = a->records[k];
        etok_energy_summary es;
        if (etok_energy_summarize(r, &es)) {
            etok_energy_summary_free(&es);
            arm_free(out);
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: invalid windows in the record", rec_path(a, k));
        }
        int has = es.has_energy;
        double E = es.energy_j, dur = es.duration_s;
        if (has && E > 0 && isfinite(es.energy_uncertainty_j)) {
            sys_sum += es.energy_uncertainty_j / E;
            sys_n++;
        }
        etok_energy_summary_free(&es);
        if (!has) {
            arm_free(out);
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: no energy measured in the record's window", rec_path(a, k));
        }
        etok_request_view *rv = calloc(r->n_requests + 1, sizeof *rv);
        if (!rv) {
            arm_free(out);
            return etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
        }
        size_t n = etok_metrics_request_view(r, rv);
        unit *run = &out->runs[out->n_runs++];
        run->secs = dur;
        size_t first = out->n;
        out->run_start[out->n_runs - 1] = first;
        out->run_start[out->n_runs] = first; /* grows below */
        if (n == 0) { /* etok run: the run is one unit, with the request set's token totals */
            etok_request_set rs;
            etok_metrics_request_set(r, rv, 0, &rs);
            unit *u = &out->u[out->n++];
            u->e = E;
            u->tin = rs.tokens_known ? (double)rs.tokens_in : 0;
            u->tout = rs.tokens_known ? (double)rs.tokens_out : 0;
            u->tok = u->tin + u->tout;
            u->meets_s = u->one = 1;
            u->secs = dur;
            u->ttft = u->tpot = NAN;
            out->n_runs_as_unit++;
            free(rv);
            run->e = u->e;
            run->tout = u->tout;
            out->run_start[out->n_runs] = out->n;
            continue;
        }
        int attributed = 1;
        double sum_att = 0, sum_tok = 0;
        for (size_t i = 0; i < n; i++) {
            if (!(rv[i].q->energy_j >= 0)) attributed = 0;
            else sum_att += rv[i].q->energy_j;
            sum_tok += rv[i].tokens_in + rv[i].tokens_out;
        }
        double scale = 1;
        if (attributed && sum_att > 0) {
            double off = fabs(sum_att - E) / E;
            if (off > out->books_worst) out->books_worst = off;
            if (off > 1e-6) out->n_rescaled++;
            scale = E / sum_att;
        } else {
            attributed = 0;
            out->n_fallback++;
        }
        for (size_t i = 0; i < n; i++) {
            const etok_request_view *v = &rv[i];
            unit *u = &out->u[out->n++];
            const char *id = v->q->id, *h = strchr(id, '#');
            size_t len = h ? (size_t)(h - id) : strlen(id);
            if (len >= sizeof u->item) len = sizeof u->item - 1;
            memcpy(u->item, id, len);
            u->item[len] = 0;
            double tok = v->tokens_in + v->tokens_out;
            u->e = attributed ? v->q->energy_j * scale : (sum_tok > 0 ? E * tok / sum_tok : E / (double)n);
            u->tin = v->tokens_in;
            u->tout = v->tokens_out;
            u->tok = tok;
            u->checked = v->checked;
            u->pass = v->checked && v->pass;
            out->n_checked += (size_t)v->checked;
            u->meets_s = v->meets_s;
            u->good = v->good_tokens;
            u->one = 1;
            u->secs = dur / (double)n;
            u->ttft = v->ttft_s;
            u->tpot = v->tpot_s;
        }
        for (size_t i = first; i < out->n; i++) {
            run->e += out->u[i].e;
            run->tout += out->u[i].tout;
            run->good += out->u[i].good;
        }
        out->run_start[out->n_runs] = out->n;
        free(rv);
    }
    out->systematic = sys_n ? sys_sum / (double)sys_n : NAN;
    return 0;
}

static int cmp_unit_item(const void *a, const void *b) { return strcmp(((const unit *)a)->item, ((const unit *)b)->item); }

/* Units summed per item, sorted by item (n_out set). */
static unit *by_item(const arm_data *a, size_t *n_out) {
    unit *s = malloc((a->n + 1) * sizeof *s);
    if (!s) return NULL;
    memcpy(s, a->u, a->n * sizeof *s);
    qsort(s, a->n, sizeof *s, cmp_unit_item);
    size_t k = 0;
    for (size_t i = 0; i < a->n; i++) {
        if (k && !strcmp(s[k - 1].item, s[i].item)) {
            unit *d = &s[k - 1];
            d->e += s[i].e;
            d->tin += s[i].tin;
            d->tout += s[i].tout;
            d->tok += s[i].tok;
            d->pass += s[i].pass;
            d->checked += s[i].checked;
            d->good += s[i].good;
            d->meets_s += s[i].meets_s;
            d->one += s[i].one;
            d->secs += s[i].secs;
        } else
            s[k++] = s[i];
    }
    *n_out = k;
    return s;
}

/* Paired when both arms hold the same set of (named) items, at least two. */
static int same_items(const unit *a, size_t na, const unit *b, size_t nb) {
    if (na != nb || na < 2) return 0;
    for (size_t i = 0; i < na; i++)
        if (!a[i].item[0] || strcmp(a[i].item, b[i].item)) return 0;
    return 1;
}

static void mm(etok_compare_cand *c, const char *what, int fatal, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static void mm(etok_compare_cand *c, const char *what, int fatal, const char *fmt, ...) {
    char msg[320];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    for (size_t i = 0; i < c->n_mismatch; i++)
        if (!strcmp(c->mismatch[i].what, what) && !strcmp(c->mismatch[i].message, msg)) return;
    if (c->n_mismatch >= ETOK_COMPARE_MAX_MISMATCH) return;
    etok_compare_mismatch *m = &c->mismatch[c->n_mismatch++];
    snprintf(m->what, sizeof m->what, "%s", what);
    snprintf(m->message, sizeof m->message, "%s", msg);
    m->fatal = fatal;
    if (fatal) c->fatal = 1;
}

static void cfg_str(const etok_record *r, const char *key, char *buf, size_t n) {
    buf[0] = 0;
    if (!r->config_json) return;
    json_t *j = json_loads(r->config_json, 0, NULL);
    if (!j) return;
    json_t *v = json_object_get(j, key);
    if (json_is_string(v)) snprintf(buf, n, "%s", json_string_value(v));
    else if (json_is_integer(v)) snprintf(buf, n, "%lld", (long long)json_integer_value(v));
    json_decref(j);
}

/* The summed meters, as "estimate" or "rapl+nvml" (sorted unique). */
static void meters_of(const etok_record *r, char *buf, size_t n) {
    buf[0] = 0;
    const char *names[32];
    size_t k = 0;
    for (size_t i = 0; i < r->n_traces && k < 32; i++) {
        if (!r->traces[i].summable) continue;
        size_t j = 0;
        while (j < k && strcmp(names[j], r->traces[i].meter)) j++;
        if (j == k) names[k++] = r->traces[i].meter;
    }
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    size_t off = 0;
    for (size_t i = 0; i < k && off < n; i++) off += (size_t)snprintf(buf + off, n - off, "%s%s", i ? "+" : "", names[i]);
}

static int energy_of(const etok_record *r, etok_source *src, etok_boundary *b) {
    etok_energy_summary es;
    int ok = etok_energy_summarize(r, &es) == 0 && es.has_energy;
    if (ok) {
        *src = es.source;
        *b = es.boundary;
    }
    etok_energy_summary_free(&es);
    return ok;
}

static int differs(double a, double b) { return !(a == b) && !(isnan(a) && isnan(b)) && fabs(a - b) > 1e-9 * fmax(fabs(a), fabs(b)); }

/* Record x (from `xpath`) against the reference record r0. Returns whether the systematic
 * error can be expected to cancel (same meters, source, boundary, host). */
static int check_pair(etok_compare_cand *c, const etok_record *r0, const char *p0, const etok_record *x, const char *xp) {
    int cancels = 1;
    char h0[64], h1[64], e0[512], e1[512], n0[32], n1[32];
    cfg_str(r0, "evals_hash", h0, sizeof h0);
    cfg_str(x, "evals_hash", h1, sizeof h1);
    cfg_str(r0, "evals", e0, sizeof e0);
    cfg_str(x, "evals", e1, sizeof e1);
    cfg_str(r0, "eval_items", n0, sizeof n0);
    cfg_str(x, "eval_items", n1, sizeof n1);
    if (h0[0] && h1[0]) {
        if (strcmp(h0, h1)) mm(c, "eval_set", 1, "eval set differs: %s has %s, %s has %s", p0, h0, xp, h1);
    } else if (e0[0] || e1[0]) {
        if (strcmp(e0, e1) || strcmp(n0, n1))
            mm(c, "eval_set", 1, "eval set differs: %s ran '%s' (%s items), %s ran '%s' (%s items)", p0, e0,
               n0[0] ? n0 : "?", xp, e1, n1[0] ? n1 : "?");
        else
            mm(c, "eval_set", 0, "no eval-set hash in %s: compared by path and item count only", h0[0] ? xp : p0);
    }
    etok_source s0 = ETOK_SOURCE_ESTIMATE, s1 = ETOK_SOURCE_ESTIMATE;
    etok_boundary b0 = ETOK_BOUNDARY_NODE, b1 = ETOK_BOUNDARY_NODE;
    if (energy_of(r0, &s0, &b0) && energy_of(x, &s1, &b1)) {
        if (b0 != b1) {
            mm(c, "boundary", 1, "energy boundary differs: %s measured at the %s, %s at the %s", p0,
               etok_boundary_name(b0), xp, etok_boundary_name(b1));
            cancels = 0;
        }
        if (s0 != s1) {
            mm(c, "meter_source", 0, "meter source differs: %s %s, %s %s (the systematic error does not cancel)", p0,
               etok_source_name(s0), xp, etok_source_name(s1));
            cancels = 0;
        }
    }
    char m0[256], m1[256];
    meters_of(r0, m0, sizeof m0);
    meters_of(x, m1, sizeof m1);
    if (strcmp(m0, m1)) {
        mm(c, "meters", 0, "meters differ: %s used %s, %s used %s", p0, m0[0] ? m0 : "none", xp, m1[0] ? m1 : "none");
        cancels = 0;
    }
    if (strcmp(r0->host, x->host)) {
        mm(c, "host", 0, "host differs: %s ran on '%s', %s on '%s'", p0, r0->host, xp, x->host);
        cancels = 0;
    }
    if (strcmp(r0->cpu_model, x->cpu_model))
        mm(c, "cpu_model", 0, "CPU model differs: '%s' vs '%s'", r0->cpu_model, x->cpu_model);
    if (strcmp(r0->hw.name, x->hw.name) || strcmp(r0->hw.source, x->hw.source))
        mm(c, "hw_profile", 0, "hardware profile differs: '%s' (%s) vs '%s' (%s)", r0->hw.name,
           r0->hw.source[0] ? r0->hw.source : "none", x->hw.name, x->hw.source[0] ? x->hw.source : "none");
    if (differs(r0->quality_target, x->quality_target))
        mm(c, "quality_target", 0, "q* differs: %g in %s, %g in %s (the baseline's is used)", r0->quality_target, p0,
           x->quality_target, xp);
    if (differs(r0->ttft_slo_s, x->ttft_slo_s) || differs(r0->tpot_slo_s, x->tpot_slo_s))
        mm(c, "slo", 0, "s* differs: TTFT %g s / TPOT %g s in %s, %g / %g in %s (the baseline's is used)",
           r0->ttft_slo_s, r0->tpot_slo_s, p0, x->ttft_slo_s, x->tpot_slo_s, xp);
    if (differs(r0->pue, x->pue)) mm(c, "pue", 0, "PUE differs: %g in %s, %g in %s", r0->pue, p0, x->pue, xp);
    if (strcmp(r0->kind, x->kind)) mm(c, "kind", 0, "record kind differs: %s is '%s', %s is '%s'", p0, r0->kind, xp, x->kind);
    return cancels;
}

typedef struct {
    const char *name, *stat, *unit;
    int lower, num, den; /* ratio fields; num < 0: a percentile of ttft (den 0) / tpot (den 1) */
    double p;
    int needs_checks;
} figure;

static const figure FIGS[] = {
    {"joules_per_output_token", "", "J/token", 1, F_E, F_TOUT, 0, 0},
    {"joules_per_token", "", "J/token", 1, F_E, F_TOK, 0, 0},
    {"joules_per_correct_answer", "", "J", 1, F_E, F_PASS, 0, 1},
    {"quality_conditioned_joules_per_token", "", "J/token", 1, F_E, F_GOOD, 0, 1},
    {"accuracy", "", "1", 0, F_PASS, F_CHECKED, 0, 1},
    {"slo_attainment", "", "1", 0, F_MEETS_S, F_ONE, 0, 0},
    {"goodput_tps", "", "token/s", 0, F_GOOD, F_SECS, 0, 0},
    {"token_rate_tps", "", "token/s", 0, F_TOUT, F_SECS, 0, 0}, /* what the TPF predicts (lever_predict.h) */
    {"mean_power_w", "", "W", -1, F_E, F_SECS, 0, 0},
    {"ttft_s", "p50", "s", 1, -1, 0, 50, 0},
    {"ttft_s", "p90", "s", 1, -1, 0, 90, 0},
    {"tpot_s", "p50", "s", 1, -1, 1, 50, 0},
    {"tpot_s", "p90", "s", 1, -1, 1, 90, 0},
};
#define N_FIGS (sizeof FIGS / sizeof FIGS[0])

static int fill_fields(const unit *u, size_t n, int f, double *out) {
    for (size_t i = 0; i < n; i++) out[i] = fld(&u[i], f);
    return 0;
}

/* Paired units: one cell per (run, item), cell k * n_items + j holding run k's requests of item
 * j summed (zero when the run has none of it), items in the order of `items` (the arm's
 * by_item list, sorted). Runs are crossed with items: every run ran the same eval items. */
static unit *cells_by_run(const arm_data *a, const unit *items, size_t n_items) {
    unit *c = calloc(a->n_runs * n_items + 1, sizeof *c);
    if (!c) return NULL;
    for (size_t k = 0; k < a->n_runs; k++) {
        for (size_t j = 0; j < n_items; j++) memcpy(c[k * n_items + j].item, items[j].item, sizeof c->item);
        for (size_t i = a->run_start[k]; i < a->run_start[k + 1]; i++) {
            const unit *u = &a->u[i];
            const unit *it = bsearch(u, items, n_items, sizeof *items, cmp_unit_item);
            if (!it) continue; /* cannot happen: items is this arm's own list */
            unit *d = &c[k * n_items + (size_t)(it - items)];
            d->e += u->e;
            d->tin += u->tin;
            d->tout += u->tout;
            d->tok += u->tok;
            d->pass += u->pass;
            d->checked += u->checked;
            d->good += u->good;
            d->meets_s += u->meets_s;
            d->one += u->one;
            d->secs += u->secs;
        }
    }
    return c;
}

/* Each run's totals of fields fn / fd (the run's units summed). */
static void run_totals(const arm_data *x, int fn, int fd, double *num, double *den) {
    for (size_t k = 0; k < x->n_runs; k++) {
        num[k] = den[k] = 0;
        for (size_t i = x->run_start[k]; i < x->run_start[k + 1]; i++) {
            num[k] += fld(&x->u[i], fn);
            den[k] += fld(&x->u[i], fd);
        }
    }
}

/* An arm whose energy figures can have no CI: a single record, and it has no per-request
 * energy (its window energy split by token share, or a record without requests). Its
 * requests then share one measured quantity: resampling them varies only the token mix (the
 * H200 power-limit sweep: CI [+0.5%, +0.5%]), never the energy. */
static int energy_ci_unknown(const arm_data *x) { return x->n_runs < 2 && (x->n_fallback || x->n_runs_as_unit); }

static void widen1(double *lo, double *hi, double tlo, double thi) {
    if (isfinite(tlo) && isfinite(*lo) && tlo < *lo) *lo = tlo;
    if (isfinite(thi) && isfinite(*hi) && thi > *hi) *hi = thi;
}

/* Every bound at least as wide as the runs' t-interval's (etok_runs_t_delta): the bootstrap
 * cannot reach beyond the runs it has. Returns whether any bound moved. */
static int widen(etok_delta_ci *d, const etok_delta_ci *t) {
    etok_delta_ci o = *d;
    widen1(&d->a_lo, &d->a_hi, t->a_lo, t->a_hi);
    widen1(&d->b_lo, &d->b_hi, t->b_lo, t->b_hi);
    widen1(&d->diff_lo, &d->diff_hi, t->diff_lo, t->diff_hi);
    widen1(&d->rel_lo, &d->rel_hi, t->rel_lo, t->rel_hi);
    return memcmp(&o, d, sizeof o) != 0;
}

/* Both arms' cluster starts: paired cells (k * n_items) or the runs' request ranges. */
static void starts(const arm_data *x, int paired, size_t n_items, size_t *st) {
    for (size_t k = 0; k <= x->n_runs; k++) st[k] = paired ? k * n_items : x->run_start[k];
}

static int deltas(etok_compare_cand *c, const arm_data *A, const arm_data *B, const unit *ca, const unit *cb,
                  size_t n_items, int iters, uint64_t seed, etok_err *err) {
    size_t nmax = A->n > B->n ? A->n : B->n;
    if (A->n_runs * n_items > nmax) nmax = A->n_runs * n_items;
    if (B->n_runs * n_items > nmax) nmax = B->n_runs * n_items;
    if (A->n_runs > nmax) nmax = A->n_runs;
    if (B->n_runs > nmax) nmax = B->n_runs;
    double *buf = malloc((4 * nmax + 4) * sizeof *buf);
    size_t *sta = malloc((A->n_runs + B->n_runs + 2) * sizeof *sta);
    if (!buf || !sta) {
        free(buf);
        free(sta);
        return etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
    }
    size_t *stb = sta + A->n_runs + 1;
    double *na = buf, *da = buf + nmax + 1, *nb = buf + 2 * nmax + 2, *db = buf + 3 * nmax + 3;
    int many = A->n_runs > 1 || B->n_runs > 1; /* some arm pools runs: two-stage resampling */
    for (size_t k = 0; k < N_FIGS; k++) {
        const figure *f = &FIGS[k];
        etok_compare_delta *d = &c->deltas[c->n_deltas++];
        memset(d, 0, sizeof *d);
        snprintf(d->name, sizeof d->name, "%s", f->name);
        snprintf(d->stat, sizeof d->stat, "%s", f->stat);
        snprintf(d->unit, sizeof d->unit, "%s", f->unit);
        d->lower_is_better = f->lower;
        int rc;
        if (f->num < 0) {
            /* Latency percentiles describe the arm's whole distribution under its load: unpaired,
             * each arm's runs drawn, then requests within the drawn runs. */
            for (size_t i = 0; i < A->n; i++) na[i] = f->den ? A->u[i].tpot : A->u[i].ttft;
            for (size_t i = 0; i < B->n; i++) nb[i] = f->den ? B->u[i].tpot : B->u[i].ttft;
            starts(A, 0, 0, sta);
            starts(B, 0, 0, stb);
            rc = etok_bootstrap_delta_percentile_clustered(na, sta, A->n_runs, nb, stb, B->n_runs, f->p, iters,
                                                           seed + 101 * (k + 1), &d->d);
            /* No narrower than the Student-t interval over the runs' own percentiles: three
             * runs bootstrapped show only their own spread, as for the ratio figures. (The t
             * interval is about the mean of the runs' percentiles, not the pooled one; it
             * serves as a floor on the width, docs/COMPARE.md.) */
            int w = 0;
            if (rc == 0 && A->n_runs >= 2 && B->n_runs >= 2) {
                double *pa = da, *pb = db; /* the ratio buffers are free here */
                for (size_t r = 0; r < A->n_runs; r++) pa[r] = etok_percentile(na + sta[r], sta[r + 1] - sta[r], f->p);
                for (size_t r = 0; r < B->n_runs; r++) pb[r] = etok_percentile(nb + stb[r], stb[r + 1] - stb[r], f->p);
                etok_delta_ci t;
                etok_runs_t_delta(pa, NULL, A->n_runs, pb, NULL, B->n_runs, &t);
                w = widen(&d->d, &t);
            }
            snprintf(d->note, sizeof d->note, "%s%s",
                     many ? "unpaired: each arm's runs resampled, then requests within them"
                          : "unpaired: requests resampled within each arm",
                     w ? "; widened to the t-interval of the runs' own percentiles" : "");
        } else {
            if (f->needs_checks && (!A->n_checked || !B->n_checked)) {
                snprintf(d->note, sizeof d->note, "no answer was checked in %s", !A->n_checked ? "the baseline" : "the candidate");
                d->d.a = d->d.b = NAN;
                continue;
            }
            if (f->den == F_SECS) {
                /* Per second: time is measured per run (its window), a request's share of it is
                 * bookkeeping, so the unit is the run. Resampling requests or items instead
                 * varied only the token counts: with the same outputs in both arms (greedy
                 * runs) the interval had zero width whatever the runs' times did. Runs are
                 * independent repeats (unpaired); an arm with a single run has no run-to-run
                 * variation to show: the value stands, without an interval. */
                fill_fields(A->runs, A->n_runs, f->num, na);
                fill_fields(A->runs, A->n_runs, f->den, da);
                fill_fields(B->runs, B->n_runs, f->num, nb);
                fill_fields(B->runs, B->n_runs, f->den, db);
                d->paired = 0;
                /* one seed for the per-second figures too: one set of run resamples */
                rc = etok_bootstrap_delta_ratio_of_sums(na, da, A->n_runs, nb, db, B->n_runs, 0, iters, seed + 7919, &d->d);
                if (A->n_runs < 2 || B->n_runs < 2) {
                    d->d.a_lo = d->d.a_hi = d->d.b_lo = d->d.b_hi = NAN;
                    d->d.diff_lo = d->d.diff_hi = d->d.rel_lo = d->d.rel_hi = NAN;
                    snprintf(d->note, sizeof d->note, "one run in %s: its time's run-to-run variation is unknown, no CI "
                             "(repeat the run)", A->n_runs < 2 ? "the baseline" : "the candidate");
                } else {
                    etok_delta_ci t;
                    etok_runs_t_delta(na, da, A->n_runs, nb, db, B->n_runs, &t);
                    int w = rc == 0 && widen(&d->d, &t);
                    snprintf(d->note, sizeof d->note, "unpaired: runs resampled within each arm (time is measured per "
                             "run)%s", w ? "; widened to the runs' t-interval" : "");
                }
            } else {
                /* Runs are clusters: each resample draws each arm's runs, then (paired) one draw of
                 * the eval items used in every drawn run of both arms, or (unpaired) each drawn
                 * run's requests. With one run per arm: the request/item bootstrap as before. */
                const unit *ua = c->paired ? ca : A->u, *ub = c->paired ? cb : B->u;
                size_t nua = c->paired ? A->n_runs * n_items : A->n, nub = c->paired ? B->n_runs * n_items : B->n;
                fill_fields(ua, nua, f->num, na);
                fill_fields(ua, nua, f->den, da);
                fill_fields(ub, nub, f->num, nb);
                fill_fields(ub, nub, f->den, db);
                starts(A, c->paired, n_items, sta);
                starts(B, c->paired, n_items, stb);
                d->paired = c->paired;
                /* the same seed for every ratio figure: one set of resamples, coherent figures */
                rc = etok_bootstrap_delta_ratio_clustered(na, da, sta, A->n_runs, nb, db, stb, B->n_runs, c->paired, iters,
                                                          seed, &d->d);
                int w = 0;
                if (rc == 0 && many) {
                    etok_delta_ci t;
                    run_totals(A, f->num, f->den, na, da);
                    run_totals(B, f->num, f->den, nb, db);
                    etok_runs_t_delta(na, da, A->n_runs, nb, db, B->n_runs, &t);
                    w = widen(&d->d, &t);
                }
                const char *how = c->paired ? (many ? "paired by eval item within runs; each arm's runs resampled first"
                                                    : "paired by eval item")
                                            : (many ? "unpaired: each arm's runs resampled, then requests within them"
                                                    : "unpaired: requests resampled within each arm");
                snprintf(d->note, sizeof d->note, "%s%s", how, w ? "; widened to the runs' t-interval" : "");
                int ua_unknown = energy_ci_unknown(A), ub_unknown = energy_ci_unknown(B);
                if (f->num == F_E && (ua_unknown || ub_unknown)) {
                    if (ua_unknown) d->d.a_lo = d->d.a_hi = NAN;
                    if (ub_unknown) d->d.b_lo = d->d.b_hi = NAN;
                    d->d.diff_lo = d->d.diff_hi = d->d.rel_lo = d->d.rel_hi = NAN;
                    snprintf(d->note, sizeof d->note, "CI n/a: one record in %s and no per-request energy; repeat runs "
                             "(etok sweep --repeat, or several records per arm) for a CI",
                             ua_unknown && ub_unknown ? "each arm" : ua_unknown ? "the baseline" : "the candidate");
                }
            }
        }
        if (rc) {
            free(buf);
            free(sta);
            return etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
        }
        d->valid = isfinite(d->d.a) && isfinite(d->d.b);
        if (!d->valid) snprintf(d->note, sizeof d->note, "not computable in %s", !isfinite(d->d.a) ? "the baseline" : "the candidate");
    }
    free(buf);
    free(sta);
    return 0;
}

static const etok_compare_delta *find(const etok_compare_cand *c, const char *name, const char *stat) {
    for (size_t i = 0; i < c->n_deltas; i++)
        if (!strcmp(c->deltas[i].name, name) && !strcmp(c->deltas[i].stat, stat)) return &c->deltas[i];
    return NULL;
}

static double ci_hi_or_value(double hi, double v) { return isfinite(hi) ? hi : v; }

static void gate_and_verdict(etok_compare_cand *c, const etok_compare_result *res) {
    const etok_compare_delta *acc = find(c, "accuracy", ""), *slo = find(c, "slo_attainment", "");
    const etok_compare_delta *j = find(c, "joules_per_output_token", "");
    double q = res->quality_target;
    int has_s = res->ttft_slo_s > 0 || res->tpot_slo_s > 0;
    c->gate_q_base = c->gate_q_cand = -1;
    c->gate_s_base = c->gate_s_cand = -1;
    if (q >= 0 && acc && acc->valid) {
        c->gate_q_base = ci_hi_or_value(acc->d.a_hi, acc->d.a) >= q;
        c->gate_q_cand = ci_hi_or_value(acc->d.b_hi, acc->d.b) >= q;
    }
    if (has_s && slo && slo->valid) {
        c->gate_s_base = ci_hi_or_value(slo->d.a_hi, slo->d.a) >= res->slo_target;
        c->gate_s_cand = ci_hi_or_value(slo->d.b_hi, slo->d.b) >= res->slo_target;
    }
    char gate[128];
    if (has_s)
        snprintf(gate, sizeof gate, "(q*=%.2f, s*=TTFT<=%gs TPOT<=%gs for %.0f%%)", q, res->ttft_slo_s, res->tpot_slo_s,
                 100 * res->slo_target);
    else
        snprintf(gate, sizeof gate, "(q*=%.2f, no s*)", q);
    if (q < 0) snprintf(gate, sizeof gate, "%s", has_s ? "(no q*, s* given)" : "(no q*, no s*)");
    const char *why = NULL;
    char whyb[256];
    if (c->gate_q_cand == 0) {
        snprintf(whyb, sizeof whyb, "accuracy %.2f [%.2f, %.2f] below q*", acc->d.b, acc->d.b_lo, acc->d.b_hi);
        why = whyb;
    } else if (c->gate_s_cand == 0) {
        snprintf(whyb, sizeof whyb, "SLO attainment %.2f [%.2f, %.2f] misses s*", slo->d.b, slo->d.b_lo, slo->d.b_hi);
        why = whyb;
    } else if (c->gate_q_base == 0) {
        snprintf(whyb, sizeof whyb, "the baseline's accuracy %.2f [%.2f, %.2f] is below q*", acc->d.a, acc->d.a_lo, acc->d.a_hi);
        why = whyb;
    } else if (c->gate_s_base == 0) {
        snprintf(whyb, sizeof whyb, "the baseline's SLO attainment %.2f misses s*", slo->d.a);
        why = whyb;
    } else if (!j || !j->valid) {
        why = "J/output-token not computable";
    }
    if (why) {
        c->comparable = 0;
        snprintf(c->verdict, sizeof c->verdict, "%s: not comparable at %s: %s; no energy verdict", c->name, gate, why);
        return;
    }
    c->comparable = 1;
    char qual[160], s_part[64], head[200];
    if (acc && acc->valid) {
        const char *how = acc->d.diff_lo > 0 ? "higher" : acc->d.diff_hi < 0 ? "lower" : "equal";
        snprintf(qual, sizeof qual, "at %s quality (\xce\x94" "acc %+.2f [%+.2f, %+.2f])", how, acc->d.diff, acc->d.diff_lo,
                 acc->d.diff_hi);
    } else
        snprintf(qual, sizeof qual, "(quality not compared: no answers checked)");
    snprintf(s_part, sizeof s_part, "%s", c->gate_s_cand == 1 ? " and within s*" : has_s ? "" : ", no s* given");
    int sig = j->d.rel_lo > 0 || j->d.rel_hi < 0;
    if (!isfinite(j->d.rel_lo) || !isfinite(j->d.rel_hi))
        /* no interval (one record without per-request energy in an arm): no claim either way */
        snprintf(head, sizeof head, "J/output-token %+.0f%%, no claim of a change (CI n/a: %.130s)", 100 * j->d.rel,
                 j->note[0] && !strncmp(j->note, "CI n/a: ", 8) ? j->note + 8 : "no interval");
    else if (sig)
        snprintf(head, sizeof head, "%+.0f%% J/output-token [%+.0f%%, %+.0f%%]", 100 * j->d.rel, 100 * j->d.rel_lo,
                 100 * j->d.rel_hi);
    else
        snprintf(head, sizeof head, "no significant change in J/output-token: %+.0f%% [%+.0f%%, %+.0f%%]", 100 * j->d.rel,
                 100 * j->d.rel_lo, 100 * j->d.rel_hi);
    snprintf(c->verdict, sizeof c->verdict, "%s: %s %s%s", c->name, head, qual, s_part);
}

int etok_compare(const etok_compare_arm *base, const etok_compare_arm *cands, size_t n_cand,
                 const etok_compare_opts *opts, etok_compare_result *out, etok_err *err) {
    memset(out, 0, sizeof *out);
    etok_compare_opts o = {0};
    if (opts) o = *opts;
    if (o.iters <= 0) o.iters = 2000;
    if (!o.seed) o.seed = 1;
    if (!(o.slo_target > 0)) o.slo_target = 0.9;
    if (!base || base->n_records == 0) return etok_errc(err, ETOK_EXIT_USAGE, "compare: the baseline has no records");
    for (size_t i = 0; i < n_cand; i++)
        if (cands[i].n_records == 0)
            return etok_errc(err, ETOK_EXIT_USAGE, "compare: candidate %s has no records", cands[i].name);
    const etok_record *r0 = base->records[0];
    snprintf(out->base_name, sizeof out->base_name, "%s", base->name);
    out->n_base_records = base->n_records;
    out->quality_target = r0->quality_target;
    out->ttft_slo_s = r0->ttft_slo_s;
    out->tpot_slo_s = r0->tpot_slo_s;
    out->slo_target = o.slo_target;
    out->iters = o.iters;
    out->seed = o.seed;
    out->cand = calloc(n_cand + 1, sizeof *out->cand);
    if (!out->cand) return etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
    out->n_cand = n_cand;
    arm_data A;
    if (build_arm(base, &A, err)) {
        etok_compare_free(out);
        return -1;
    }
    size_t nia = 0;
    unit *ia = by_item(&A, &nia);
    if (!ia) {
        arm_free(&A);
        etok_compare_free(out);
        return etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
    }
    int rc = 0;
    for (size_t ci = 0; ci < n_cand && rc == 0; ci++) {
        const etok_compare_arm *cb = &cands[ci];
        etok_compare_cand *c = &out->cand[ci];
        snprintf(c->name, sizeof c->name, "%s", cb->name);
        int cancels = 1;
        for (size_t k = 1; k < base->n_records; k++)
            cancels &= check_pair(c, r0, rec_path(base, 0), base->records[k], rec_path(base, k));
        for (size_t k = 0; k < cb->n_records; k++)
            cancels &= check_pair(c, r0, rec_path(base, 0), cb->records[k], rec_path(cb, k));
        for (size_t k = 1; k < cb->n_records; k++)
            cancels &= check_pair(c, cb->records[0], rec_path(cb, 0), cb->records[k], rec_path(cb, k));
        c->systematic_cancels = cancels;
        if (c->fatal) out->any_fatal = 1;
        arm_data B;
        if (build_arm(cb, &B, err)) {
            rc = -1;
            break;
        }
        size_t nib = 0;
        unit *ib = by_item(&B, &nib);
        if (!ib) {
            arm_free(&B);
            rc = etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
            break;
        }
        c->paired = same_items(ia, nia, ib, nib);
        c->n_units_base = c->paired ? nia : A.n;
        c->n_units_cand = c->paired ? nib : B.n;
        c->n_requests_base = A.n;
        c->n_requests_cand = B.n;
        c->systematic_base = A.systematic;
        c->systematic_cand = B.systematic;
        {
            size_t k = 0;
            const arm_data *arms[2] = {&A, &B};
            const char *nm[2] = {base->name, cb->name};
            for (int a = 0; a < 2 && k < sizeof c->energy_note; a++) {
                const arm_data *x = arms[a];
                if (x->n_fallback)
                    k += (size_t)snprintf(c->energy_note + k, sizeof c->energy_note - k,
                                          "%s: %d record(s) without per-request energy, window energy split by token share; ",
                                          nm[a], x->n_fallback);
                if (x->n_rescaled && k < sizeof c->energy_note)
                    k += (size_t)snprintf(c->energy_note + k, sizeof c->energy_note - k,
                                          "%s: attributed energies rescaled to the window energy (off by up to %.1f%%); ",
                                          nm[a], 100 * x->books_worst);
                if (x->n_runs_as_unit && k < sizeof c->energy_note)
                    k += (size_t)snprintf(c->energy_note + k, sizeof c->energy_note - k,
                                          "%s: %d record(s) without requests, each one unit; ", nm[a], x->n_runs_as_unit);
            }
            if (k >= 2 && k < sizeof c->energy_note) c->energy_note[k - 2] = 0;
            if (!k) snprintf(c->energy_note, sizeof c->energy_note, "per-request attributed energy (step energy by token share)");
        }
        unit *cells_a = NULL, *cells_b = NULL;
        if (c->paired) {
            cells_a = cells_by_run(&A, ia, nia);
            cells_b = cells_by_run(&B, ib, nib);
        }
        if (c->paired && (!cells_a || !cells_b))
            rc = etok_errc(err, ETOK_EXIT_FAIL, "compare: out of memory");
        else
            rc = deltas(c, &A, &B, cells_a, cells_b, nia, o.iters, o.seed, err);
        if (rc == 0) gate_and_verdict(c, out);
        free(cells_a);
        free(cells_b);
        free(ib);
        arm_free(&B);
    }
    free(ia);
    arm_free(&A);
    if (rc) etok_compare_free(out);
    return rc;
}

void etok_compare_free(etok_compare_result *r) {
    if (!r) return;
    free(r->cand);
    r->cand = NULL;
    r->n_cand = 0;
}
