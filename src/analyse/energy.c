/* energy.c — energy attribution over a run record (METRICS.md §2). Pure: no I/O, no clock,
 * no global state; the record is only read.
 *
 * Counters: the raw readings are unwrapped into a cumulative energy (a decrease adds the
 * trace's wrap range when the corrected step is plausible, <= ETOK_ENERGY_MAX_PLAUSIBLE_W x
 * (dt + 1 s), as the sampler decides; a decrease with no wrap range, an implausible one, or a
 * step with a recorded "reset" fault is a reset: that step counts 0 J, and its share of the
 * window, at the trace's mean power, goes into the uncertainty). The cumulative energy at a window edge that
 * falls between two readings is interpolated linearly between them.
 * Power / external: the piecewise-linear power through the samples is integrated over the
 * window (trapezoid rule; the edges are interpolated the same way).
 * Neither is extrapolated beyond the first/last reading: such a trace is `incomplete`.
 *
 * Uncertainty of one trace (1-sigma-like, components combined in quadrature):
 *   resolution: counters sqrt(2) x resolution (two readings); power resolution x covered_s;
 *   edges: at each edge, mean power x max(update period or sampling interval, half the
 *          interval between the readings that bracket the edge when it is interpolated);
 *   model: error_band x energy (estimate meter).
 * A boundary total adds its traces' uncertainties linearly (errors may be correlated).
 *
 * Does not own: reading meters (meter/), rendering figures (render/). */
#include "etok/energy.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int etok_trace_is_counter(const etok_trace *t) {
    size_t n = strlen(t->raw_unit);
    return n > 0 && t->raw_unit[n - 1] == 'J';
}

static int fault_matches(const etok_fault *f, const etok_trace *t) {
    return strcmp(f->meter, t->meter) == 0 && (f->domain[0] == '\0' || strcmp(f->domain, t->domain) == 0);
}

/* A "reset" fault of this trace in (ta, tb]? */
static int reset_between(const etok_record *r, const etok_trace *t, double ta, double tb) {
    for (size_t i = 0; i < r->n_faults; i++) {
        const etok_fault *f = &r->faults[i];
        if (strcmp(f->kind, "reset") == 0 && fault_matches(f, t) && f->t_s > ta && f->t_s <= tb) return 1;
    }
    return 0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median interval between consecutive readings (0 with fewer than 2, or out of memory). */
static double median_interval(const etok_trace *t) {
    if (t->n_samples < 2) return 0;
    size_t n = t->n_samples - 1;
    double *d = malloc(n * sizeof *d);
    if (!d) return 0;
    for (size_t i = 0; i < n; i++) d[i] = t->samples[i + 1].t_s - t->samples[i].t_s;
    qsort(d, n, sizeof *d, cmp_double);
    double med = d[n / 2];
    free(d);
    return med;
}

/* Index k of the last reading with t_k <= t (or -1 when t is before all). */
static long last_at_or_before(const etok_trace *t, double x) {
    long lo = 0, hi = (long)t->n_samples - 1, ans = -1;
    while (lo <= hi) {
        long mid = (lo + hi) / 2;
        if (t->samples[mid].t_s <= x) { ans = mid; lo = mid + 1; }
        else hi = mid - 1;
    }
    return ans;
}

/* Interval between the readings bracketing x, when x falls strictly between two; else 0. */
static double bracket_gap(const etok_trace *t, double x) {
    long k = last_at_or_before(t, x);
    if (k < 0 || (size_t)k + 1 >= t->n_samples || t->samples[k].t_s == x) return 0;
    return t->samples[k + 1].t_s - t->samples[k].t_s;
}

/* Linear interpolation of y over the readings' times at x (x within [t_0, t_{n-1}]). */
static double interp(const etok_trace *t, const double *y, double x) {
    long k = last_at_or_before(t, x);
    if (k < 0) return y[0];
    if ((size_t)k + 1 >= t->n_samples) return y[t->n_samples - 1];
    double ta = t->samples[k].t_s, tb = t->samples[k + 1].t_s;
    if (tb <= ta) return y[k + 1];
    return y[k] + (y[k + 1] - y[k]) * (x - ta) / (tb - ta);
}

static int trace_energy(const etok_record *r, const etok_trace *t, double t1, double t2, etok_trace_energy *e) {
    memset(e, 0, sizeof *e);
    double dur = t2 - t1;
    e->is_counter = etok_trace_is_counter(t);
    for (size_t i = 0; i < r->n_faults; i++)
        if (fault_matches(&r->faults[i], t) && r->faults[i].t_s >= t1 && r->faults[i].t_s <= t2) e->n_faults++;
    for (size_t k = 0; k < t->n_samples; k++)
        if (t->samples[k].t_s >= t1 && t->samples[k].t_s <= t2) e->n_samples++;

    if (t->n_samples == 0) {
        snprintf(e->problem, sizeof e->problem, "no readings");
        return 0;
    }
    double first = t->samples[0].t_s, last = t->samples[t->n_samples - 1].t_s;
    double lost_s = 0; /* counters: window time inside steps lost to a reset */
    double a = t1 > first ? t1 : first, b = t2 < last ? t2 : last;

    if (e->is_counter) {
        e->period_s = t->update_period_s;
        if (t->n_samples < 2 || b < a || (b == a && dur > 0)) {
            snprintf(e->problem, sizeof e->problem, "counter readings do not cover the window");
            return 0;
        }
        double *c = malloc(t->n_samples * sizeof *c);
        if (!c) return -1;
        c[0] = 0;
        for (size_t k = 1; k < t->n_samples; k++) {
            double ta = t->samples[k - 1].t_s, tb = t->samples[k].t_s;
            double d = t->samples[k].raw - t->samples[k - 1].raw;
            double ov = (tb < t2 ? tb : t2) - (ta > t1 ? ta : t1); /* overlap with the window */
            int overlaps = tb > t1 && ta < t2;
            int reset = reset_between(r, t, ta, tb);
            if (!reset && d < 0) {
                /* a wrap only when the corrected step is plausible, as the sampler decides */
                double corrected_j = (d + t->wrap_range_raw) * t->scale_to_si;
                if (t->wrap_range_raw > 0 && corrected_j <= ETOK_ENERGY_MAX_PLAUSIBLE_W * ((tb - ta) + 1.0)) {
                    d += t->wrap_range_raw;
                    if (overlaps) e->n_wraps++;
                } else {
                    reset = 1;
                }
            }
            if (reset) {
                d = 0; /* the energy of this step is unknown: 0 J here, its time in the uncertainty */
                if (overlaps) {
                    e->n_resets++;
                    if (ov > 0) lost_s += ov;
                }
            }
            if (overlaps && t->samples[k].raw != t->samples[k - 1].raw) e->n_changes++;
            c[k] = c[k - 1] + d * t->scale_to_si;
        }
        e->energy_j = interp(t, c, b) - interp(t, c, a);
        free(c);
    } else {
        e->period_s = median_interval(t);
        if (t->update_period_s > e->period_s) e->period_s = t->update_period_s;
        if (t->n_samples == 1) {
            /* one reading: held constant over the window, and flagged */
            e->energy_j = t->samples[0].raw * t->scale_to_si * dur;
            a = t1;
            b = t2;
            e->short_window = 1;
            snprintf(e->problem, sizeof e->problem, "one power reading, held constant over the window");
        } else if (b < a || (b == a && dur > 0)) {
            snprintf(e->problem, sizeof e->problem, "power readings do not cover the window");
            return 0;
        } else {
            double *p = malloc(t->n_samples * sizeof *p);
            if (!p) return -1;
            for (size_t k = 0; k < t->n_samples; k++) p[k] = t->samples[k].raw * t->scale_to_si;
            double sum = 0, x = a, px = interp(t, p, a);
            long k = last_at_or_before(t, a);
            for (size_t j = (size_t)(k + 1); j < t->n_samples && t->samples[j].t_s < b; j++) {
                double y = t->samples[j].t_s;
                if (y <= x) continue;
                sum += 0.5 * (px + p[j]) * (y - x);
                x = y;
                px = p[j];
            }
            double pb = interp(t, p, b);
            sum += 0.5 * (px + pb) * (b - x);
            e->energy_j = sum;
            free(p);
        }
    }

    e->valid = 1;
    e->covered_s = b - a;
    if (e->covered_s < dur - 1e-9) {
        e->incomplete = 1;
        snprintf(e->problem, sizeof e->problem, "readings cover only %.3f s of the %.3f s window", e->covered_s, dur);
    }
    e->mean_power_w = e->covered_s > 0 ? e->energy_j / e->covered_s : (e->is_counter ? 0 : e->energy_j / (dur > 0 ? dur : 1));
    if (e->period_s > 0) e->expected_updates = dur / e->period_s;
    if (e->period_s > 0 && dur < ETOK_ENERGY_MIN_UPDATES * e->period_s) e->short_window = 1;
    if (e->is_counter && dur > 0 && e->n_changes == 0) {
        e->short_window = 1;
        if (!e->problem[0])
            snprintf(e->problem, sizeof e->problem, "counter did not change inside the window: energy unknown, not 0 J");
    }

    /* uncertainty */
    double pw = fabs(e->mean_power_w);
    double u_res = e->is_counter ? sqrt(2.0) * t->resolution_si : t->resolution_si * e->covered_s;
    double edge_period = e->period_s;
    double g1 = bracket_gap(t, t1) / 2, g2 = bracket_gap(t, t2) / 2;
    double u_e1 = pw * (edge_period > g1 ? edge_period : g1);
    double u_e2 = pw * (edge_period > g2 ? edge_period : g2);
    double u_model = t->error_band * fabs(e->energy_j);
    /* a reset step counted 0 J: it may have held up to the mean power of the rest */
    double kept_s = e->covered_s - lost_s;
    double u_lost = lost_s > 0 ? (kept_s > 0 ? fabs(e->energy_j) / kept_s : 0) * lost_s : 0;
    e->energy_uncertainty_j = sqrt(u_res * u_res + u_e1 * u_e1 + u_e2 * u_e2 + u_model * u_model + u_lost * u_lost);
    if (lost_s > 0 && !e->problem[0])
        snprintf(e->problem, sizeof e->problem, "counter reset: %.3f s of the window counted as 0 J (in the uncertainty)",
                 lost_s);
    return 0;
}

void etok_energy_result_free(etok_energy_result *res) {
    if (!res) return;
    free(res->traces);
    res->traces = NULL;
    res->n_traces = 0;
}

int etok_energy_window(const etok_record *r, double t1, double t2, etok_energy_result *out) {
    memset(out, 0, sizeof *out);
    if (!isfinite(t1) || !isfinite(t2) || t2 < t1) return -1;
    out->t1_s = t1;
    out->t2_s = t2;
    out->duration_s = t2 - t1;
    if (r->n_traces) {
        out->traces = calloc(r->n_traces, sizeof *out->traces);
        if (!out->traces) return -1;
        out->n_traces = r->n_traces;
    }
    for (size_t i = 0; i < r->n_faults; i++)
        if (r->faults[i].t_s >= t1 && r->faults[i].t_s <= t2) out->n_faults++;

    for (size_t i = 0; i < r->n_traces; i++) {
        const etok_trace *t = &r->traces[i];
        etok_trace_energy *e = &out->traces[i];
        if (trace_energy(r, t, t1, t2, e) != 0) { etok_energy_result_free(out); return -1; }
        if (!t->summable || !e->valid || (unsigned)t->boundary > ETOK_BOUNDARY_FACILITY) continue;
        etok_boundary_energy *be = &out->boundaries[t->boundary];
        if (!be->present || t->source > be->source) be->source = t->source;
        be->present = 1;
        be->n_traces++;
        be->energy_j += e->energy_j;
        be->energy_uncertainty_j += e->energy_uncertainty_j;
        be->short_window |= e->short_window;
        be->incomplete |= e->incomplete;
    }
    for (int b = 0; b < 3; b++) {
        etok_boundary_energy *be = &out->boundaries[b];
        if (be->present && out->duration_s > 0) be->mean_power_w = be->energy_j / out->duration_s;
    }
    for (int b = ETOK_BOUNDARY_FACILITY; b >= ETOK_BOUNDARY_DEVICE; b--) {
        if (!out->boundaries[b].present) continue;
        const etok_boundary_energy *be = &out->boundaries[b];
        out->has_energy = 1;
        out->boundary = (etok_boundary)b;
        out->energy_j = be->energy_j;
        out->energy_uncertainty_j = be->energy_uncertainty_j;
        out->mean_power_w = be->mean_power_w;
        out->source = be->source;
        out->short_window = be->short_window;
        out->incomplete = be->incomplete;
        break;
    }
    return 0;
}

void etok_energy_summary_free(etok_energy_summary *s) {
    if (!s) return;
    etok_energy_result_free(&s->window);
    etok_energy_result_free(&s->idle);
}

int etok_energy_summarize(const etok_record *r, etok_energy_summary *s) {
    memset(s, 0, sizeof *s);
    if (etok_energy_window(r, r->window_start_s, r->window_end_s, &s->window) != 0) return -1;
    double i1 = r->idle_start_s, i2 = r->idle_end_s;
    int idle_taken = isfinite(i1) && isfinite(i2) && i2 > i1;
    if (etok_energy_window(r, idle_taken ? i1 : 0, idle_taken ? i2 : 0, &s->idle) != 0) {
        etok_energy_summary_free(s);
        return -1;
    }
    const etok_energy_result *w = &s->window;
    s->has_energy = w->has_energy;
    s->boundary = w->boundary;
    s->source = w->source;
    s->duration_s = w->duration_s;
    s->energy_j = w->has_energy ? w->energy_j : NAN;
    s->energy_uncertainty_j = w->has_energy ? w->energy_uncertainty_j : NAN;
    s->mean_power_w = w->has_energy ? w->mean_power_w : NAN;
    s->mean_power_uncertainty_w = w->has_energy && w->duration_s > 0 ? w->energy_uncertainty_j / w->duration_s : NAN;
    s->short_window = w->short_window;
    s->incomplete = w->incomplete;
    s->n_faults = w->n_faults;

    s->idle_power_w = s->idle_power_uncertainty_w = NAN;
    s->dynamic_energy_j = s->dynamic_energy_uncertainty_j = NAN;
    const etok_boundary_energy *ib = &s->idle.boundaries[s->boundary];
    if (idle_taken && w->has_energy && ib->present) {
        s->has_idle = 1;
        double idur = i2 - i1;
        s->idle_power_w = ib->energy_j / idur;
        s->idle_power_uncertainty_w = ib->energy_uncertainty_j / idur;
        s->dynamic_energy_j = s->energy_j - s->idle_power_w * s->duration_s;
        double u_idle = s->idle_power_uncertainty_w * s->duration_s;
        s->dynamic_energy_uncertainty_j = sqrt(s->energy_uncertainty_j * s->energy_uncertainty_j + u_idle * u_idle);
    }

    s->tokens_known = r->tokens_known;
    s->tokens_in = r->tokens_in;
    s->tokens_out = r->tokens_out;
    s->joules_per_output_token = s->joules_per_output_token_uncertainty = s->joules_per_token = NAN;
    if (r->tokens_known && w->has_energy) {
        if (r->tokens_out > 0) {
            s->joules_per_output_token = s->energy_j / (double)r->tokens_out;
            s->joules_per_output_token_uncertainty = s->energy_uncertainty_j / (double)r->tokens_out;
        }
        if (r->tokens_in + r->tokens_out > 0) s->joules_per_token = s->energy_j / (double)(r->tokens_in + r->tokens_out);
    }

    s->pue = r->pue;
    snprintf(s->pue_source, sizeof s->pue_source, "%s", r->pue_source);
    s->pue_adjusted_power_w = s->pue_adjusted_power_uncertainty_w = NAN;
    if (w->has_energy) {
        double k = s->boundary == ETOK_BOUNDARY_FACILITY ? 1.0 : r->pue;
        s->pue_adjusted_power_w = s->mean_power_w * k;
        s->pue_adjusted_power_uncertainty_w = s->mean_power_uncertainty_w * k;
    }
    s->partial = r->partial;
    s->exit_status = r->exit_status;
    return 0;
}
