/* metrics.c — the METRICS.md §3 reporting set of one run (see include/etok/metrics.h for
 * every definition), as named stages (request view, energy totals, per-token energies,
 * latency, SLO and goodput, utilization and ceilings, cost and carbon), each a pure function
 * that etok compare and etok sweep reuse; etok_metrics_compute chains them and appends their
 * figures in the report's order. Pure: reads the record and energy.c's results, no I/O, no clock.
 * Owns: latency, SLO, goodput, quality gating, phase split, MFU/MBU and this run's ceilings
 * (values from tpf.c's ceiling functions: the formulas live there),
 * and the plot series. Does not own: energy integration (energy.c), statistics (stats.c),
 * formatting (render/). */
#include "etok/metrics.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/bgload.h"
#include "etok/grid.h"
#include "etok/stats.h"
#include "etok/tpf.h"

/* A figure with its identity and no value yet (NAN, not valid). */
static etok_metric *fig(etok_metric *x, const char *name, const char *stat, const char *unit, const char *source) {
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "%s", name);
    snprintf(x->stat, sizeof x->stat, "%s", stat ? stat : "");
    snprintf(x->unit, sizeof x->unit, "%s", unit);
    snprintf(x->source, sizeof x->source, "%s", source);
    x->value = x->uncertainty = x->ci_lo = x->ci_hi = NAN;
    return x;
}

static etok_metric *add(etok_metrics *m, const char *name, const char *stat, const char *unit, const char *source) {
    if (m->n >= ETOK_METRICS_MAX) return NULL;
    return fig(&m->m[m->n++], name, stat, unit, source);
}

/* Appends a stage's figure (dropped when the set is full, as add). */
static void push(etok_metrics *m, const etok_metric *x) {
    if (m->n < ETOK_METRICS_MAX) m->m[m->n++] = *x;
}

static void setv(etok_metric *x, double v, double unc) {
    if (!x) return;
    x->value = v;
    x->uncertainty = unc;
    x->valid = isfinite(v);
    if (!x->valid && !x->note[0]) snprintf(x->note, sizeof x->note, "not computable");
}

static void note(etok_metric *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(etok_metric *x, const char *fmt, ...) {
    if (!x) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(x->note, sizeof x->note, fmt, ap);
    va_end(ap);
}

const etok_metric *etok_metrics_get(const etok_metrics *m, const char *name, const char *stat) {
    for (size_t i = 0; i < m->n; i++)
        if (!strcmp(m->m[i].name, name) && !strcmp(m->m[i].stat, stat ? stat : "")) return &m->m[i];
    return NULL;
}

void etok_metrics_free(etok_metrics *m) {
    if (!m) return;
    free(m->series);
    free(m->prefill);
    free(m->ttft_sorted_s);
    free(m->tpot_sorted_s);
    m->series = NULL;
    m->prefill = NULL;
    m->ttft_sorted_s = m->tpot_sorted_s = NULL;
    m->n_series = m->n_prefill = m->n_ttft = m->n_tpot = 0;
}

/* An energy figure E / count with propagated uncertainty. */
static void energy_per(etok_metric *x, const etok_energy_summary *es, double count, const char *what) {
    if (!x) return;
    if (!es->has_energy) {
        note(x, "no energy measured in the window");
        return;
    }
    if (!(count > 0)) {
        note(x, "no %s", what);
        return;
    }
    setv(x, es->energy_j / count, es->energy_uncertainty_j / count);
}

static int in_window(const etok_record *r, double t) { return t >= r->window_start_s - 1e-9 && t <= r->window_end_s + 1e-9; }

/* Why no answer was checked: a serving dataset (config.dataset, etok bench --dataset-name) has no
 * reference answers; anything else had no eval set. */
static void no_check_reason(const etok_record *r, char *buf, size_t n) {
    snprintf(buf, n, "no answer was checked (no eval set)");
    json_t *cfg = r->config_json ? json_loads(r->config_json, 0, NULL) : NULL;
    const char *ds = json_string_value(json_object_get(json_object_get(cfg, "dataset"), "name"));
    if (ds) snprintf(buf, n, "quality not measured: dataset %.40s has no reference answers", ds);
    json_decref(cfg);
}

/* ---- stage: request view ---- */
size_t etok_metrics_request_view(const etok_record *r, etok_request_view *out) {
    size_t n = 0;
    double ttft_slo = r->ttft_slo_s, tpot_slo = r->tpot_slo_s;
    for (size_t i = 0; i < r->n_requests; i++) {
        const etok_request *q = &r->requests[i];
        if (q->t_send_s >= 0 && !in_window(r, q->t_send_s)) continue; /* warm-up */
        etok_request_view *v = &out[n++];
        memset(v, 0, sizeof *v);
        v->q = q;
        v->ttft_s = v->tpot_s = v->e2e_s = NAN;
        v->ok = q->ok;
        v->tokens_in = q->tokens_in;
        v->tokens_out = q->tokens_out;
        if (q->quality_checked) {
            v->checked = 1;
            v->pass = q->quality_pass != 0;
        }
        if (q->ok && q->t_first_token_s >= 0 && q->t_send_s >= 0) v->ttft_s = q->t_first_token_s - q->t_send_s;
        if (q->ok && q->t_done_s >= 0 && q->t_send_s >= 0) v->e2e_s = q->t_done_s - q->t_send_s;
        if (q->ok && q->tokens_out >= 2 && q->t_first_token_s >= 0) {
            double t_last = q->n_token_times ? q->token_times_s[q->n_token_times - 1] : q->t_done_s;
            /* intervals between the first and the last timed token: tokens_out - 1, except when the
             * count has exactly one token more than the chunks: the end token that no chunk carries
             * (llama-server's usage), generated after the last chunk, so not inside [first, last] */
            long long intervals = q->tokens_out - 1;
            if (q->n_token_times > 0 && q->tokens_out == (long long)q->n_token_times + 1) intervals = (long long)q->n_token_times - 1;
            if (intervals > 0 && t_last >= q->t_first_token_s) v->tpot_s = (t_last - q->t_first_token_s) / (double)intervals;
        }
        v->meets_q = v->ok && (!v->checked || v->pass);
        v->meets_s = v->ok && (!(ttft_slo > 0) || (isfinite(v->ttft_s) && v->ttft_s <= ttft_slo)) &&
                     (!(tpot_slo > 0) || !isfinite(v->tpot_s) || v->tpot_s <= tpot_slo);
        v->good_tokens = v->meets_q && v->meets_s ? v->tokens_out : 0;
    }
    return n;
}

/* ---- step energy (stage 3's regression input) ---- */
static double meter_period(const etok_record *r, const etok_energy_summary *es) {
    /* the slowest update period among the traces summed at the primary boundary */
    double p = 0;
    for (size_t i = 0; i < es->window.n_traces && i < r->n_traces; i++)
        if (r->traces[i].summable && r->traces[i].boundary == es->boundary && es->window.traces[i].valid)
            p = fmax(p, es->window.traces[i].period_s);
    return p;
}

static double step_energy(const etok_record *r, const etok_energy_summary *es, double period, size_t i, int *metered) {
    const etok_step *s = &r->steps[i];
    if (metered) *metered = 0;
    if (!es->has_energy || !in_window(r, s->t_start_s) || !in_window(r, s->t_end_s) || s->t_end_s < s->t_start_s)
        return NAN;
    double d = s->t_end_s - s->t_start_s;
    double y = d * es->mean_power_w;
    if (d >= ETOK_ENERGY_MIN_UPDATES * period) { /* else the meter cannot resolve the step */
        etok_energy_result er;
        if (etok_energy_window(r, s->t_start_s, s->t_end_s, &er) == 0 && er.has_energy && !er.short_window &&
            er.boundary == es->boundary) {
            y = er.energy_j;
            if (metered) *metered = 1;
        }
        etok_energy_result_free(&er);
    }
    return y;
}

double etok_metrics_step_energy(const etok_record *r, const etok_energy_summary *es, size_t i, int *metered) {
    if (metered) *metered = 0;
    if (i >= r->n_steps) return NAN;
    return step_energy(r, es, meter_period(r, es), i, metered);
}


static int step_in_window(const etok_record *r, const etok_step *s) {
    return in_window(r, s->t_start_s) && in_window(r, s->t_end_s) && s->t_end_s >= s->t_start_s;
}

/* ---- stage 1: request set (counts over the view, steps, busy time) ---- */

/* The union of the view's [send, done] intervals (done: the window's end when missing); 0 when
 * out of memory. */
static double request_union_s(const etok_record *r, const etok_request_view *rv, size_t n) {
    double busy_s = 0;
    double *iv = malloc((2 * n + 1) * sizeof *iv);
    if (!iv) return 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        const etok_request *q = rv[i].q;
        if (q->t_send_s < 0) continue;
        iv[2 * k] = q->t_send_s;
        iv[2 * k + 1] = q->t_done_s >= 0 ? q->t_done_s : r->window_end_s;
        k++;
    }
    /* insertion sort of k intervals by start */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0 && iv[2 * (j - 1)] > iv[2 * j]; j--) {
            double t0 = iv[2 * j], t1 = iv[2 * j + 1];
            iv[2 * j] = iv[2 * (j - 1)];
            iv[2 * j + 1] = iv[2 * (j - 1) + 1];
            iv[2 * (j - 1)] = t0;
            iv[2 * (j - 1) + 1] = t1;
        }
    double cur_s = 0, cur_e = -1;
    for (size_t i = 0; i < k; i++) {
        if (iv[2 * i] > cur_e) {
            if (cur_e > cur_s) busy_s += cur_e - cur_s;
            cur_s = iv[2 * i];
            cur_e = iv[2 * i + 1];
        } else if (iv[2 * i + 1] > cur_e)
            cur_e = iv[2 * i + 1];
    }
    if (cur_e > cur_s) busy_s += cur_e - cur_s;
    free(iv);
    return busy_s;
}

/* Serial when no two of the record's requests overlap in time. */
static int requests_serial(const etok_record *r) {
    size_t nr = r->n_requests;
    for (size_t i = 0; i < nr; i++)
        for (size_t j = i + 1; j < nr; j++) {
            const etok_request *a = &r->requests[i], *b = &r->requests[j];
            if (a->t_send_s < 0 || b->t_send_s < 0) continue;
            double ae = a->t_done_s >= 0 ? a->t_done_s : r->window_end_s;
            double be = b->t_done_s >= 0 ? b->t_done_s : r->window_end_s;
            if (a->t_send_s < be && b->t_send_s < ae) return 0;
        }
    return 1;
}

void etok_metrics_request_set(const etok_record *r, const etok_request_view *rv, size_t n, etok_request_set *s) {
    memset(s, 0, sizeof *s);
    long long req_tin = 0, req_tout = 0;
    s->n_requests = n;
    for (size_t i = 0; i < n; i++) {
        const etok_request_view *v = &rv[i];
        const etok_request *q = v->q;
        req_tin += q->tokens_in;
        req_tout += q->tokens_out;
        if (q->ok) s->n_ok++;
        else if (!s->first_error) s->first_error = q->error;
        if (q->ok && q->n_token_times > 0 && !strcmp(q->token_count_source, "usage")) {
            /* the server's usage against the content chunks it streamed (--endpoint) */
            s->usage_tokens += q->tokens_out;
            s->usage_chunks += (long long)q->n_token_times;
            if ((size_t)q->tokens_out > q->n_token_times) s->usage_exceed++;
        }
        if (v->checked) {
            s->n_checked++;
            s->n_pass += (size_t)v->pass;
        }
        s->n_meets_s += (size_t)v->meets_s;
        if (v->meets_q && v->meets_s) {
            s->n_good++;
            s->good_tokens += v->good_tokens;
        }
    }
    s->tokens_in = r->tokens_known ? r->tokens_in : req_tin;
    s->tokens_out = r->tokens_known ? r->tokens_out : req_tout;
    s->tokens_known = r->tokens_known || n > 0;
    for (size_t i = 0; i < r->n_steps; i++) {
        const etok_step *st = &r->steps[i];
        if (!step_in_window(r, st)) continue;
        s->busy_s += st->t_end_s - st->t_start_s;
        s->sum_flops += st->flops;
        s->sum_bytes += st->bytes;
        s->n_steps++;
    }
    if (s->n_steps == 0) s->busy_s = request_union_s(r, rv, n);
    s->serial = requests_serial(r);

    etok_metric *x = fig(&s->fig.tokens_in, "tokens_in", "", "token", "engine");
    if (s->tokens_known) setv(x, (double)s->tokens_in, 0);
    else note(x, "token count not known");
    x = fig(&s->fig.tokens_out, "tokens_out", "", "token", "engine");
    if (s->tokens_known) setv(x, (double)s->tokens_out, 0);
    else note(x, "token count not known");
    if (s->tokens_known && s->usage_exceed > 0)
        note(x, "from the server's usage; its content chunks carried %lld of its %lld tokens (+%lld: usage exceeded "
                "the chunks in %zu requests, e.g. the end token no chunk carries)",
             s->usage_chunks, s->usage_tokens, s->usage_tokens - s->usage_chunks, s->usage_exceed);
    setv(fig(&s->fig.requests, "requests", "", "1", "clock"), (double)n, 0);
    setv(fig(&s->fig.requests_ok, "requests_ok", "", "1", "clock"), (double)s->n_ok, 0);
    /* failed requests are counted, never dropped: the first error says what went wrong */
    x = fig(&s->fig.requests_failed, "requests_failed", "", "1", "clock");
    setv(x, (double)(n - s->n_ok), 0);
    if (n == s->n_ok) note(x, "of %zu requests", n);
    else
        note(x, "of %zu requests; first error: %.120s", n,
             s->first_error && *s->first_error ? s->first_error : "(none given)");
}

/* ---- stage 2: energy totals ---- */
void etok_metrics_energy_totals(const etok_energy_summary *es, etok_energy_totals *t) {
    memset(t, 0, sizeof *t);
    const char *esrc = es->has_energy ? etok_source_name(es->source) : "none";
    double dur = es->duration_s;
    t->has_energy = es->has_energy;
    snprintf(t->source, sizeof t->source, "%s", esrc);
    snprintf(t->boundary, sizeof t->boundary, "%s", es->has_energy ? etok_boundary_name(es->boundary) : "none");
    size_t k = 0;
    if (es->short_window)
        k += (size_t)snprintf(t->warning + k, sizeof t->warning - k,
                              "window shorter than %d meter updates (energy less certain); ", ETOK_ENERGY_MIN_UPDATES);
    if (es->incomplete && k < sizeof t->warning)
        k += (size_t)snprintf(t->warning + k, sizeof t->warning - k, "meter readings cover only part of the window; ");
    if (es->n_faults > 0 && k < sizeof t->warning)
        k += (size_t)snprintf(t->warning + k, sizeof t->warning - k,
                              "%d meter fault(s) in the window (see the record's faults); ", es->n_faults);
    if (k >= 2 && k < sizeof t->warning) t->warning[k - 2] = 0;

    setv(fig(&t->fig.duration_s, "duration_s", "", "s", "clock"), dur, NAN);
    etok_metric *x = fig(&t->fig.energy_j, "energy_j", "", "J", esrc);
    if (es->has_energy) setv(x, es->energy_j, es->energy_uncertainty_j);
    else note(x, "no meter reading covers the window");
    x = fig(&t->fig.mean_power_w, "mean_power_w", "", "W", esrc);
    if (es->has_energy) setv(x, es->mean_power_w, dur > 0 ? es->energy_uncertainty_j / dur : NAN);
    else note(x, "no energy");
    x = fig(&t->fig.idle_power_w, "idle_power_w", "", "W", esrc);
    if (es->has_idle) setv(x, es->idle_power_w, es->idle_power_uncertainty_w);
    else note(x, "no idle baseline measured (--idle 0?)");
    x = fig(&t->fig.dynamic_energy_j, "dynamic_energy_j", "", "J", esrc);
    if (es->has_idle && es->has_energy) setv(x, es->dynamic_energy_j, es->dynamic_energy_uncertainty_j);
    else note(x, "needs the idle baseline");
}

/* ---- stage 3: per-token energies and the phase split ---- */

/* J/input-token and J/decode-token by the phase split (the header comment's definitions). */
static int phase_split(const etok_record *r, const etok_energy_summary *es, const etok_request_set *s,
                       etok_token_energies *te, etok_err *err) {
    etok_metric *jin = &te->fig.per_input_token, *jdec = &te->fig.per_decode_token;
    double Tp = 0, Td = 0, Sp = 0, Sd_dec = 0;
    double spp = 0, sdd = 0, spd = 0, spy = 0, sdy = 0, sum_p = 0, sum_d = 0;
    size_t n_steps = 0, n_step_energy = 0;
    double meter_period_s = meter_period(r, es);
    double *ys = malloc((r->n_steps + 1) * sizeof *ys);
    if (!ys) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
    for (size_t i = 0; i < r->n_steps; i++) {
        const etok_step *st = &r->steps[i];
        if (!step_in_window(r, st)) continue;
        double d = st->t_end_s - st->t_start_s;
        if (st->prefill_tokens > 0) {
            Tp += d;
            Sp += st->prefill_tokens;
        } else if (st->decode_tokens > 0) {
            Td += d;
            Sd_dec += st->decode_tokens;
        }
        int metered = 0;
        double y = es->has_energy ? step_energy(r, es, meter_period_s, i, &metered) : d * es->mean_power_w;
        n_step_energy += (size_t)metered;
        ys[n_steps] = y;
        double p = st->prefill_tokens, dd = st->decode_tokens;
        spp += p * p;
        sdd += dd * dd;
        spd += p * dd;
        spy += p * y;
        sdy += dd * y;
        sum_p += p;
        sum_d += dd;
        n_steps++;
    }
    double E_p = NAN, E_d = NAN;
    snprintf(te->phase_split_method, sizeof te->phase_split_method, "none");
    if (!es->has_energy) {
        note(jin, "no energy");
        note(jdec, "no energy");
    } else if (n_steps == 0) {
        note(jin, "no engine steps recorded: the driver does not separate phases");
        note(jdec, "no engine steps recorded: the driver does not separate phases");
    } else if (s->serial) {
        snprintf(te->phase_split_method, sizeof te->phase_split_method, "serial_phases");
        if (Tp + Td > 0) {
            E_p = es->energy_j * Tp / (Tp + Td);
            E_d = es->energy_j - E_p;
        }
        double rel = es->energy_j > 0 ? es->energy_uncertainty_j / es->energy_j : NAN;
        if (Sp > 0) setv(jin, E_p / Sp, E_p / Sp * rel);
        else note(jin, "no prompt tokens in the window");
        if (Sd_dec > 0) setv(jdec, E_d / Sd_dec, E_d / Sd_dec * rel);
        else note(jdec, "no decode-only steps in the window");
        note(jin, "serial_phases: time split; prefill steps %.3f s of %.3f s", Tp, Tp + Td);
        note(jdec, "serial_phases: time split; decode tokens exclude the first token of each prefill");
    } else {
        snprintf(te->phase_split_method, sizeof te->phase_split_method, "regression");
        double det = spp * sdd - spd * spd;
        if (n_steps < 3 || !(fabs(det) > 1e-12 * (spp * sdd + 1e-300))) {
            note(jin, "regression: steps do not separate prefill from decode (singular fit)");
            note(jdec, "regression: steps do not separate prefill from decode (singular fit)");
        } else {
            double a = (spy * sdd - sdy * spd) / det, b = (sdy * spp - spy * spd) / det;
            /* residuals for the coefficients' standard errors */
            double rss = 0;
            size_t k = 0;
            for (size_t i = 0; i < r->n_steps; i++) {
                const etok_step *st = &r->steps[i];
                if (!step_in_window(r, st)) continue;
                double y = ys[k++];
                double e = y - a * st->prefill_tokens - b * st->decode_tokens;
                rss += e * e;
            }
            double s2 = rss / (double)(n_steps - 2);
            double se_a = sqrt(s2 * sdd / det), se_b = sqrt(s2 * spp / det);
            double raw_p = a * sum_p, raw_d = b * sum_d;
            if (a < 0 || b < 0 || !(raw_p + raw_d > 0)) {
                note(jin, "regression: a negative per-token coefficient (a=%.3g, b=%.3g); split unreliable", a, b);
                note(jdec, "regression: a negative per-token coefficient (a=%.3g, b=%.3g); split unreliable", a, b);
            } else {
                double scale = es->energy_j / (raw_p + raw_d);
                E_p = raw_p * scale;
                E_d = raw_d * scale;
                double rel = es->energy_j > 0 ? es->energy_uncertainty_j / es->energy_j : 0;
                double ra = a > 0 ? se_a / a : 0, rb = b > 0 ? se_b / b : 0;
                if (sum_p > 0) setv(jin, E_p / sum_p, E_p / sum_p * sqrt(rel * rel + ra * ra));
                if (sum_d > 0) setv(jdec, E_d / sum_d, E_d / sum_d * sqrt(rel * rel + rb * rb));
                const char *ysrc = n_step_energy == n_steps ? "step energy from the meter"
                                                            : "step energy ~ step duration x mean power";
                note(jin, "regression over %zu steps (%s)", n_steps, ysrc);
                note(jdec, "regression over %zu steps (%s)", n_steps, ysrc);
            }
        }
    }
    free(ys);
    te->prefill_j = E_p;
    te->decode_j = E_d;
    return 0;
}

int etok_metrics_token_energies(const etok_record *r, const etok_energy_summary *es, const etok_request_set *s,
                                etok_token_energies *te, etok_err *err) {
    memset(te, 0, sizeof *te);
    te->prefill_j = te->decode_j = NAN;
    const char *esrc = es->has_energy ? etok_source_name(es->source) : "none";
    energy_per(fig(&te->fig.per_output_token, "joules_per_output_token", "", "J/token", esrc), es,
               s->tokens_known ? (double)s->tokens_out : 0, "output tokens");
    energy_per(fig(&te->fig.per_token, "joules_per_token", "", "J/token", esrc), es,
               s->tokens_known ? (double)(s->tokens_in + s->tokens_out) : 0, "tokens");
    fig(&te->fig.per_input_token, "joules_per_input_token", "", "J/token", esrc);
    fig(&te->fig.per_decode_token, "joules_per_decode_token", "", "J/token", esrc);
    energy_per(fig(&te->fig.per_request, "joules_per_request", "", "J", esrc), es, (double)s->n_requests, "requests");
    etok_metric *jca = fig(&te->fig.per_correct_answer, "joules_per_correct_answer", "", "J", esrc);
    char unchecked_why[96];
    if (s->n_checked == 0) {
        no_check_reason(r, unchecked_why, sizeof unchecked_why);
        note(jca, "%s", unchecked_why);
    }
    else energy_per(jca, es, (double)s->n_pass, "correct answers");
    return phase_split(r, es, s, te, err);
}

double etok_metrics_dynamic_joules_per_output_token(double j_out, double mean_power_w, double idle_power_w) {
    if (!isfinite(j_out) || !isfinite(idle_power_w) || !isfinite(mean_power_w) || !(mean_power_w > 0)) return NAN;
    return j_out * (1 - idle_power_w / mean_power_w);
}

/* ---- stage 4: latency ---- */
int etok_metrics_latency(const etok_request_view *rv, size_t n, etok_latency *l, etok_err *err) {
    memset(l, 0, sizeof *l);
    size_t n_itl = 0;
    for (size_t i = 0; i < n; i++)
        if (rv[i].q->n_token_times > 1) n_itl += rv[i].q->n_token_times - 1;
    l->n_requests = n;
    l->ttft_s = malloc((n + 1) * sizeof *l->ttft_s);
    l->tpot_s = malloc((n + 1) * sizeof *l->tpot_s);
    l->e2e_s = malloc((n + 1) * sizeof *l->e2e_s);
    l->itl_s = malloc((n_itl + 1) * sizeof *l->itl_s);
    if (!l->ttft_s || !l->tpot_s || !l->e2e_s || !l->itl_s) {
        etok_metrics_latency_free(l);
        return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const etok_request_view *v = &rv[i];
        const etok_request *q = v->q;
        for (size_t k = 1; k < q->n_token_times; k++) { /* a null (unknown) time in the record is NaN: no gap */
            double gap = q->token_times_s[k] - q->token_times_s[k - 1];
            if (isfinite(gap)) l->itl_s[l->n_itl++] = gap;
        }
        if (isfinite(v->ttft_s)) l->ttft_s[l->n_ttft++] = v->ttft_s;
        if (isfinite(v->tpot_s)) l->tpot_s[l->n_tpot++] = v->tpot_s;
        if (isfinite(v->e2e_s)) l->e2e_s[l->n_e2e++] = v->e2e_s;
    }
    return 0;
}

void etok_metrics_latency_free(etok_latency *l) {
    if (!l) return;
    free(l->ttft_s);
    free(l->tpot_s);
    free(l->itl_s);
    free(l->e2e_s);
    memset(l, 0, sizeof *l);
}

/* p50/p90/p99/mean of x[0..n-1] into out[0..3], with bootstrap CIs when iters > 0. */
static void dist(etok_metric *out, const char *name, const double *x, size_t n, int iters, uint64_t seed,
                 const char *why_empty, const char *covers) {
    static const char *const stats[] = {"p50", "p90", "p99", "mean"};
    static const etok_stat_kind kinds[] = {ETOK_STAT_P50, ETOK_STAT_P90, ETOK_STAT_P99, ETOK_STAT_MEAN};
    double lo[4], hi[4];
    int have_ci = iters > 0 && n > 0 && etok_bootstrap_ci_multi(x, n, kinds, 4, iters, seed, lo, hi) == 0;
    for (int k = 0; k < 4; k++) {
        etok_metric *e = fig(&out[k], name, stats[k], "s", "clock");
        if (n == 0) {
            note(e, "%s", why_empty);
            continue;
        }
        setv(e, etok_stat_compute(kinds[k], x, n), NAN);
        if (covers && *covers) note(e, "%s", covers);
        if (have_ci) {
            e->ci_lo = lo[k];
            e->ci_hi = hi[k];
        }
    }
}

void etok_metrics_latency_figures(const etok_latency *l, int ci_iters, uint64_t seed,
                                  etok_metric out[ETOK_LATENCY_FIGURES]) {
    /* every latency figure says how many requests it covers (failed ones have none) */
    char cov[4][96];
    size_t n_req = l->n_requests;
    snprintf(cov[0], sizeof cov[0], "over %zu ok of %zu requests", l->n_ttft, n_req);
    snprintf(cov[1], sizeof cov[1], "over %zu ok of %zu requests (2+ output tokens)", l->n_tpot, n_req);
    snprintf(cov[2], sizeof cov[2], "over %zu token gaps of %zu requests", l->n_itl, n_req);
    snprintf(cov[3], sizeof cov[3], "over %zu ok of %zu requests", l->n_e2e, n_req);
    dist(out, "ttft_s", l->ttft_s, l->n_ttft, ci_iters, seed, "no request produced a first token", cov[0]);
    dist(out + 4, "tpot_s", l->tpot_s, l->n_tpot, ci_iters, seed, "no request produced two or more tokens", cov[1]);
    dist(out + 8, "itl_s", l->itl_s, l->n_itl, ci_iters, seed, "no per-token timestamps", cov[2]);
    dist(out + 12, "e2e_s", l->e2e_s, l->n_e2e, ci_iters, seed, "no request completed", cov[3]);
}

/* ---- stage 5: SLO and goodput (with quality and the q* gate) ---- */
int etok_metrics_slo_goodput(const etok_record *r, const etok_energy_summary *es, const etok_request_view *rv,
                             size_t n, const etok_request_set *s, int ci_iters, uint64_t seed, etok_slo_goodput *g,
                             etok_err *err) {
    memset(g, 0, sizeof *g);
    const char *esrc = es->has_energy ? etok_source_name(es->source) : "none";
    double dur = es->duration_s;
    double accuracy = s->n_checked ? (double)s->n_pass / (double)s->n_checked : NAN;
    g->accuracy = accuracy;
    char unchecked_why[96];
    no_check_reason(r, unchecked_why, sizeof unchecked_why);
    etok_metric *x = fig(&g->fig.accuracy, "accuracy", "", "1", "eval");
    if (s->n_checked) {
        setv(x, accuracy, sqrt(accuracy * (1 - accuracy) / (double)s->n_checked));
        if (ci_iters > 0) {
            double *passv = malloc((s->n_checked + 1) * sizeof *passv);
            if (!passv) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
            size_t k = 0;
            for (size_t i = 0; i < n; i++)
                if (rv[i].checked) passv[k++] = rv[i].pass;
            double lo, hi;
            if (etok_bootstrap_ci(passv, k, ETOK_STAT_MEAN, ci_iters, seed + 11, &lo, &hi) == 0) {
                x->ci_lo = lo;
                x->ci_hi = hi;
            }
            free(passv);
        }
        note(x, "%zu of %zu answers passed their check", s->n_pass, s->n_checked);
    } else
        note(x, "%s", unchecked_why);
    x = fig(&g->fig.quality_target, "quality_target", "", "1", "config");
    if (r->quality_target >= 0) setv(x, r->quality_target, 0);
    else note(x, "no q* given");
    g->quality_gate_met = !(r->quality_target >= 0) || (s->n_checked && accuracy >= r->quality_target);

    x = fig(&g->fig.quality_conditioned_joules_per_token, "quality_conditioned_joules_per_token", "", "J/token", esrc);
    if (s->n_checked == 0) note(x, "%s", unchecked_why);
    else if (!g->quality_gate_met)
        note(x, "gated: accuracy %.3f below q* %.3f", accuracy, r->quality_target);
    else {
        energy_per(x, es, (double)s->good_tokens, "output tokens from requests meeting q* and s*");
        if (x->valid) note(x, "%zu requests meet q* and s*", s->n_good);
    }

    double ttft_slo = r->ttft_slo_s, tpot_slo = r->tpot_slo_s;
    int has_slo = ttft_slo > 0 || tpot_slo > 0;
    x = fig(&g->fig.ttft_slo_s, "ttft_slo_s", "", "s", "config");
    if (ttft_slo > 0) setv(x, ttft_slo, 0);
    else note(x, "no TTFT SLO given");
    x = fig(&g->fig.tpot_slo_s, "tpot_slo_s", "", "s", "config");
    if (tpot_slo > 0) setv(x, tpot_slo, 0);
    else note(x, "no TPOT SLO given");
    size_t n_req = s->n_requests;
    x = fig(&g->fig.slo_attainment, "slo_attainment", "", "1", "clock");
    if (n_req) {
        double a = (double)s->n_meets_s / (double)n_req;
        setv(x, a, sqrt(a * (1 - a) / (double)n_req));
        if (!has_slo) note(x, "no SLO given: fraction of requests completed");
    } else
        note(x, "no requests");
    x = fig(&g->fig.goodput_rps, "goodput_rps", "", "1/s", "clock");
    if (dur > 0 && n_req) setv(x, (double)s->n_good / dur, NAN);
    else note(x, "no requests in a non-empty window");
    x = fig(&g->fig.goodput_tps, "goodput_tps", "", "token/s", "clock");
    if (dur > 0 && n_req) setv(x, (double)s->good_tokens / dur, NAN);
    else note(x, "no requests in a non-empty window");
    return 0;
}

/* ---- stage 6: utilization and ceilings ---- */
/* Stage 6's second half: MFU, MBU, power ratio, binding constraint, this run's ceilings and
 * the utilization against the smallest. */
static void ceilings(const etok_record *r, const etok_energy_summary *es, const etok_request_set *s,
                     const etok_metric *jout, double rate_window, const char *esrc, etok_utilization *u) {
    double dur = es->duration_s;
    size_t n_steps = s->n_steps;
    long long tout = s->tokens_out;
    etok_metric *x;
    const char *hw_src = r->hw.source[0] ? r->hw.source : "none";
    char ratio_src[80];
    snprintf(ratio_src, sizeof ratio_src, "engine+%s", r->hw.source[0] ? r->hw.source : "no-profile");
    double sum_flops = s->sum_flops, sum_bytes = s->sum_bytes;
    double ach_flops = dur > 0 ? sum_flops / dur : NAN, ach_bps = dur > 0 ? sum_bytes / dur : NAN;
    x = fig(&u->fig.achieved_flops, "achieved_flops", "", "FLOP/s", "engine");
    if (n_steps) setv(x, ach_flops, NAN);
    else note(x, "no engine steps");
    x = fig(&u->fig.achieved_bytes_per_s, "achieved_bytes_per_s", "", "byte/s", "engine");
    if (n_steps) setv(x, ach_bps, NAN);
    else note(x, "no engine steps");
    x = fig(&u->fig.peak_flops, "peak_flops", "", "FLOP/s", hw_src);
    if (r->hw.peak_flops > 0) setv(x, r->hw.peak_flops, NAN);
    else note(x, "no hardware profile (etok probe)");
    x = fig(&u->fig.mem_bw_bps, "mem_bw_bps", "", "byte/s", hw_src);
    if (r->hw.mem_bw_bps > 0) setv(x, r->hw.mem_bw_bps, NAN);
    else note(x, "no hardware profile (etok probe)");
    double mfu = NAN, mbu = NAN, pr = NAN;
    x = fig(&u->fig.mfu, "mfu", "", "1", ratio_src);
    if (n_steps && r->hw.peak_flops > 0) setv(x, mfu = ach_flops / r->hw.peak_flops, NAN);
    else note(x, n_steps ? "no peak FLOP/s in the hardware profile" : "no engine steps (FLOPs unknown)");
    x = fig(&u->fig.mbu, "mbu", "", "1", ratio_src);
    if (n_steps && r->hw.mem_bw_bps > 0) setv(x, mbu = ach_bps / r->hw.mem_bw_bps, NAN);
    else note(x, n_steps ? "no memory bandwidth in the hardware profile" : "no engine steps (bytes unknown)");
    x = fig(&u->fig.power_limit_ratio, "power_limit_ratio", "", "1", esrc);
    if (es->has_energy && r->hw.power_limit_w > 0) setv(x, pr = es->mean_power_w / r->hw.power_limit_w, NAN);
    else note(x, "device power limit unknown");
    snprintf(u->binding_constraint, sizeof u->binding_constraint, "unknown");
    double best = -1;
    if (isfinite(mfu) && mfu > best) {
        best = mfu;
        snprintf(u->binding_constraint, sizeof u->binding_constraint, "compute");
    }
    if (isfinite(mbu) && mbu > best) {
        best = mbu;
        snprintf(u->binding_constraint, sizeof u->binding_constraint, "memory_bandwidth");
    }
    if (isfinite(pr) && pr > best) {
        best = pr;
        snprintf(u->binding_constraint, sizeof u->binding_constraint, "device_power_cap");
    }
    /* This run's ceilings: the TPF ceiling functions (tpf.c) fed with the measured FLOPs, bytes
     * and joules per output token and the probe profile's peaks (one device). */
    double ceil_tps[ETOK_CEIL_COUNT];
    for (int i = 0; i < ETOK_CEIL_COUNT; i++) ceil_tps[i] = NAN;
    if (tout > 0) {
        ceil_tps[ETOK_CEIL_COMPUTE] = etok_tpf_ceiling_compute_tps(r->hw.peak_flops, sum_flops / (double)tout);
        ceil_tps[ETOK_CEIL_MEMORY_BANDWIDTH] = etok_tpf_ceiling_memory_bandwidth_tps(r->hw.mem_bw_bps, sum_bytes / (double)tout);
    }
    if (jout->valid) ceil_tps[ETOK_CEIL_DEVICE_POWER_CAP] = etok_tpf_ceiling_power_tps(r->hw.power_limit_w, jout->value);
    x = fig(&u->fig.ceiling_compute_tps, "ceiling_compute_tps", "", "token/s", ratio_src);
    setv(x, ceil_tps[ETOK_CEIL_COMPUTE], NAN);
    if (!x->valid) note(x, "needs engine FLOPs and a peak FLOP/s");
    x = fig(&u->fig.ceiling_memory_bandwidth_tps, "ceiling_memory_bandwidth_tps", "", "token/s", ratio_src);
    setv(x, ceil_tps[ETOK_CEIL_MEMORY_BANDWIDTH], NAN);
    if (!x->valid) note(x, "needs engine bytes and a memory bandwidth");
    x = fig(&u->fig.ceiling_device_power_cap_tps, "ceiling_device_power_cap_tps", "", "token/s", esrc);
    setv(x, ceil_tps[ETOK_CEIL_DEVICE_POWER_CAP], NAN);
    if (!x->valid) note(x, "device power limit unknown");
    int bind = etok_tpf_smallest_ceiling(ceil_tps);
    double cmin = bind >= 0 ? ceil_tps[bind] : INFINITY;
    snprintf(u->tpf_binding_ceiling, sizeof u->tpf_binding_ceiling, "%s",
             bind >= 0 ? etok_ceiling_name((etok_ceiling)bind) : "unknown");
    x = fig(&u->fig.utilization, "utilization", "", "1", ratio_src);
    if (isfinite(cmin) && rate_window >= 0) {
        setv(x, rate_window / cmin, NAN);
        note(x, "window token rate / smallest ceiling (%s)", u->tpf_binding_ceiling);
    } else
        note(x, "no ceiling known (run etok probe; engine steps needed)");
}

void etok_metrics_utilization(const etok_record *r, const etok_energy_summary *es, const etok_request_set *s,
                              const etok_token_energies *te, etok_utilization *u) {
    memset(u, 0, sizeof *u);
    const char *esrc = es->has_energy ? etok_source_name(es->source) : "none";
    double dur = es->duration_s, busy_s = s->busy_s;
    size_t n_steps = s->n_steps;
    long long tout = s->tokens_out;
    double rate_busy = busy_s > 0 && s->tokens_known ? (double)tout / busy_s : NAN;
    double rate_window = dur > 0 && s->tokens_known ? (double)tout / dur : NAN;
    u->rate_busy_tps = rate_busy;
    u->rate_window_tps = rate_window;
    etok_metric *x = fig(&u->fig.busy_s, "busy_s", "", "s", n_steps ? "engine" : "clock");
    setv(x, busy_s, NAN);
    x = fig(&u->fig.token_rate_tps, "token_rate_tps", "", "token/s", "clock");
    setv(x, rate_busy, NAN);
    note(x, "output tokens per busy second");
    x = fig(&u->fig.utilization_adjusted_token_rate_tps, "utilization_adjusted_token_rate_tps", "", "token/s", "clock");
    setv(x, rate_window, NAN);
    note(x, "output tokens per second of the whole window, idle gaps included");
    double U = NAN;
    x = fig(&u->fig.deployment_utilization, "deployment_utilization", "", "1",
            r->deployment_utilization > 0 ? "config" : "trace");
    if (r->deployment_utilization > 0) U = r->deployment_utilization;
    else if (dur > 0 && busy_s > 0) {
        U = fmin(1.0, busy_s / dur);
        note(x, "trace-derived: busy %.3f s / window %.3f s", busy_s, dur);
    }
    setv(x, U, NAN);
    const etok_metric *jout = &te->fig.per_output_token;
    x = fig(&u->fig.utilization_adjusted_joules_per_token, "utilization_adjusted_joules_per_token", "", "J/token", esrc);
    if (jout->valid && es->has_idle && U > 0 && rate_busy > 0)
        setv(x, jout->value + es->idle_power_w * (1 - U) / (U * rate_busy), jout->uncertainty);
    else
        note(x, "needs J/output-token, the idle baseline and a busy token rate");
    x = fig(&u->fig.pue, "pue", "", "1", r->pue_source[0] ? r->pue_source : "assumed");
    setv(x, es->pue, NAN);
    x = fig(&u->fig.pue_adjusted_power_w, "pue_adjusted_power_w", "", "W", esrc);
    if (es->has_energy) setv(x, es->pue_adjusted_power_w, dur > 0 ? es->energy_uncertainty_j / dur * es->pue : NAN);
    else note(x, "no energy");

    ceilings(r, es, s, jout, rate_window, esrc, u);
}

/* ---- stage 7: cost and carbon (issue 12, docs/CARBON.md): energy x PUE x price or grid intensity ---- */
void etok_metrics_cost_carbon(const etok_record *r, const etok_energy_summary *es, const etok_token_energies *te,
                              etok_cost_carbon *c) {
    memset(c, 0, sizeof *c);
    const char *esrc = es->has_energy ? etok_source_name(es->source) : "none";
    const etok_metric *jout = &te->fig.per_output_token;
    etok_metric *x = fig(&c->fig.energy_cost_per_mtok, "energy_cost_per_mtok", "", "currency", esrc);
    if (!(r->price_per_kwh > 0)) note(x, "no --price-per-kwh given");
    else if (!jout->valid) note(x, "no J/output-token");
    else {
        double f = 1e6 / 3.6e6 * r->price_per_kwh * es->pue;
        setv(x, jout->value * f, jout->uncertainty * f);
        note(x, "at %.4g per kWh, PUE %.3g", r->price_per_kwh, es->pue);
    }
    char csrc[80];
    snprintf(csrc, sizeof csrc, "%.50s+grid:%s", esrc, r->grid.region[0] ? r->grid.region : "user");
    const char *per[2][2] = {{"co2e_g_per_mtok", "J/output-token"}, {"co2e_g_per_request", "J/request"}};
    etok_metric *outs[2] = {&c->fig.co2e_g_per_mtok, &c->fig.co2e_g_per_request};
    const etok_metric *ins[2] = {jout, &te->fig.per_request};
    for (int k = 0; k < 2; k++) {
        x = fig(outs[k], per[k][0], "", "gCO2e", r->grid.present ? csrc : esrc);
        const etok_metric *e = ins[k];
        if (!r->grid.present) note(x, "no --grid-intensity or --region given");
        else if (!e->valid) note(x, "no %s", per[k][1]);
        else {
            double unc, j = e->value * es->pue * (k == 0 ? 1e6 : 1);
            double v = etok_grid_co2e_g(&r->grid, j, e->uncertainty * es->pue * (k == 0 ? 1e6 : 1), &unc);
            setv(x, v, unc);
            if (r->grid.year)
                note(x, "at %.4g gCO2e/kWh (%s %s-based, %d), PUE %.3g; operational only, embodied not included",
                     r->grid.g_per_kwh, r->grid.region, r->grid.basis, r->grid.year, es->pue);
            else
                note(x, "at %.4g gCO2e/kWh (%s), PUE %.3g; operational only, embodied not included", r->grid.g_per_kwh,
                     r->grid.basis, es->pue);
        }
    }
}

/* ---- not a stage: background-load figures (bgload.h) and the process boundary ---- */
static void add_background(etok_metrics *m, const etok_record *r, const etok_energy_summary *es, int process_boundary) {
    etok_bgload bg;
    etok_bgload_analyse(r, &bg);
    snprintf(m->background_warning, sizeof m->background_warning, "%s", bg.warning);
    static const char *const stats[ETOK_PHASE_COUNT] = {"idle", "warmup", "window"};
    for (int k = 0; bg.present && k < ETOK_PHASE_COUNT; k++) {
        const etok_cpuload_phase *p = &bg.phase[k];
        if (!p->valid || k == ETOK_PHASE_WARMUP) continue;
        etok_metric *x = add(m, "background_busy_cores", stats[k], "cores", "/proc");
        if (!x) break;
        if (p->background_busy_cores < 0) {
            note(x, "own CPU time not known (scope %s)", r->cpuload.scope);
            continue;
        }
        setv(x, p->background_busy_cores, p->background_noise_cores);
        note(x, "machine %.2f - own %.2f busy cores (%s)", p->machine_busy_cores, p->own_busy_cores, r->cpuload.scope);
    }
    if (process_boundary) {
        etok_process_energy pe;
        if (etok_process_energy_compute(r, es, &pe) != 0) snprintf(pe.note, sizeof pe.note, "not available: out of memory");
        etok_metric *x = add(m, "process_joules_per_output_token", "", "J/token", "attribution-model");
        if (x) {
            if (pe.valid && isfinite(pe.joules_per_output_token)) setv(x, pe.joules_per_output_token, NAN);
            note(x, "%s", pe.note);
        }
        x = add(m, "process_energy", "", "J", "attribution-model");
        if (x) {
            if (pe.valid) setv(x, pe.energy_j, NAN);
            if (pe.valid) note(x, "%.0f%% of the device-boundary window energy; own CPU share %.2f", 100 * pe.share_of_device,
                               pe.own_cpu_share);
            else note(x, "%s", pe.note);
        }
    }
}

/* ---- not a stage: the plot series, prefill intervals, sorted latencies, energy breakdown ---- */
static int add_plot_data(etok_metrics *m, const etok_record *r, const etok_energy_summary *es, const etok_latency *l,
                         const etok_token_energies *te, const etok_metrics_opts *o, etok_err *err) {
    double dur = es->duration_s;
    if (dur > 0 && isfinite(dur)) {
        double bin = o->series_bin_s > 0 ? o->series_bin_s : fmax(dur / 60.0, 0.1);
        double nbd = ceil(dur / bin - 1e-9); /* a double: a huge window must not overflow size_t */
        size_t nb = nbd < 1 ? 1 : nbd > 100000 ? 100000 : (size_t)nbd;
        if (nbd > 100000) bin = dur / (double)nb; /* bins too fine for this window: widen them */
        m->series = calloc(nb, sizeof *m->series);
        if (!m->series) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
        m->n_series = nb;
        m->series_bin_s = bin;
        for (size_t b = 0; b < nb; b++) {
            double t1 = r->window_start_s + bin * (double)b, t2 = fmin(t1 + bin, r->window_end_s);
            etok_series_point *pt = &m->series[b];
            pt->t_s = t1 - r->window_start_s;
            pt->power_w = NAN;
            if (es->has_energy && t2 > t1) {
                etok_energy_result er;
                if (etok_energy_window(r, t1, t2, &er) == 0 && er.has_energy && er.boundary == es->boundary)
                    pt->power_w = er.energy_j / (t2 - t1);
                etok_energy_result_free(&er);
            }
            pt->token_rate_tps = 0;
        }
        for (size_t i = 0; i < r->n_requests; i++) {
            const etok_request *q = &r->requests[i];
            for (size_t k = 0; k < q->n_token_times; k++) {
                double t = q->token_times_s[k] - r->window_start_s;
                if (!(t >= 0 && t <= dur)) continue; /* NaN too */
                double at = t / bin;
                size_t b = at >= (double)nb ? nb - 1 : (size_t)at;
                m->series[b].token_rate_tps += 1.0;
            }
        }
        for (size_t b = 0; b < nb; b++) {
            double w = fmin(bin, dur - bin * (double)b);
            m->series[b].token_rate_tps = w > 0 ? m->series[b].token_rate_tps / w : 0;
        }
    }
    for (size_t i = 0; i < r->n_steps; i++) {
        const etok_step *s = &r->steps[i];
        if (s->prefill_tokens <= 0 || !in_window(r, s->t_start_s)) continue;
        if (m->n_prefill && s->t_start_s - m->prefill[m->n_prefill - 1].t_end_s < 1e-3) {
            m->prefill[m->n_prefill - 1].t_end_s = s->t_end_s;
            continue;
        }
        etok_interval *ni = realloc(m->prefill, (m->n_prefill + 1) * sizeof *ni);
        if (!ni) break;
        m->prefill = ni;
        m->prefill[m->n_prefill].t_start_s = s->t_start_s - r->window_start_s;
        m->prefill[m->n_prefill].t_end_s = s->t_end_s - r->window_start_s;
        m->n_prefill++;
    }
    m->ttft_sorted_s = malloc((l->n_ttft + 1) * sizeof(double));
    m->tpot_sorted_s = malloc((l->n_tpot + 1) * sizeof(double));
    if (m->ttft_sorted_s) m->n_ttft = etok_sorted_finite(l->ttft_s, l->n_ttft, m->ttft_sorted_s);
    if (m->tpot_sorted_s) m->n_tpot = etok_sorted_finite(l->tpot_s, l->n_tpot, m->tpot_sorted_s);
    m->breakdown_idle_j = m->breakdown_prefill_j = m->breakdown_decode_j = NAN;
    if (es->has_energy) {
        double idle = es->has_idle ? fmin(es->idle_power_w * dur, es->energy_j) : 0;
        double dyn = es->energy_j - idle;
        if (es->has_idle) m->breakdown_idle_j = idle;
        if (isfinite(te->prefill_j) && es->energy_j > 0) {
            m->breakdown_prefill_j = dyn * te->prefill_j / es->energy_j;
            m->breakdown_decode_j = dyn * te->decode_j / es->energy_j;
        } else
            m->breakdown_decode_j = dyn; /* no split: all dynamic energy shown as one block */
    }
    return 0;
}

/* ---- the chain ---- */
int etok_metrics_compute(const etok_record *r, const etok_metrics_opts *opts_in, etok_metrics *m, etok_err *err) {
    memset(m, 0, sizeof *m);
    etok_metrics_opts o = {0};
    if (opts_in) o = *opts_in;
    if (!o.seed) o.seed = 1;
    if (!o.bootstrap_iters) o.bootstrap_iters = 1000;

    etok_energy_summary es;
    if (etok_energy_summarize(r, &es)) {
        etok_energy_summary_free(&es);
        return etok_errc(err, ETOK_EXIT_INPUT, "record: invalid windows or out of memory in energy analysis");
    }
    int rc = -1;
    etok_latency lat;
    memset(&lat, 0, sizeof lat);
    etok_request_view *rv = calloc(r->n_requests + 1, sizeof *rv);
    if (!rv) {
        etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
        goto done;
    }
    etok_energy_totals et;
    etok_request_set rs;
    etok_token_energies te;
    etok_slo_goodput sg;
    etok_utilization ut;
    etok_cost_carbon cc;
    /* the stages, in order */
    size_t n_req = etok_metrics_request_view(r, rv);
    etok_metrics_request_set(r, rv, n_req, &rs);
    etok_metrics_energy_totals(&es, &et);
    if (etok_metrics_token_energies(r, &es, &rs, &te, err)) goto done;
    if (etok_metrics_latency(rv, n_req, &lat, err)) goto done;
    etok_metric lf[ETOK_LATENCY_FIGURES];
    etok_metrics_latency_figures(&lat, o.bootstrap_iters, o.seed, lf);
    if (etok_metrics_slo_goodput(r, &es, rv, n_req, &rs, o.bootstrap_iters, o.seed, &sg, err)) goto done;
    etok_metrics_utilization(r, &es, &rs, &te, &ut);
    etok_metrics_cost_carbon(r, &es, &te, &cc);

    /* the set's header */
    m->has_energy = et.has_energy;
    snprintf(m->energy_source, sizeof m->energy_source, "%s", et.source);
    snprintf(m->energy_boundary, sizeof m->energy_boundary, "%s", et.boundary);
    snprintf(m->energy_warning, sizeof m->energy_warning, "%s", et.warning);
    snprintf(m->phase_split_method, sizeof m->phase_split_method, "%s", te.phase_split_method);
    snprintf(m->binding_constraint, sizeof m->binding_constraint, "%s", ut.binding_constraint);
    snprintf(m->tpf_binding_ceiling, sizeof m->tpf_binding_ceiling, "%s", ut.tpf_binding_ceiling);
    m->quality_gate_met = sg.quality_gate_met;

    /* the figures, in the report's order */
    add_background(m, r, &es, o.process_boundary);
    const etok_metric *const order[] = {
        &et.fig.duration_s, &et.fig.energy_j, &et.fig.mean_power_w, &et.fig.idle_power_w, &et.fig.dynamic_energy_j,
        &rs.fig.tokens_in, &rs.fig.tokens_out, &rs.fig.requests, &rs.fig.requests_ok, &rs.fig.requests_failed,
        &te.fig.per_output_token, &te.fig.per_token, &te.fig.per_input_token, &te.fig.per_decode_token,
        &te.fig.per_request, &te.fig.per_correct_answer,
        &sg.fig.accuracy, &sg.fig.quality_target, &sg.fig.quality_conditioned_joules_per_token,
    };
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++) push(m, order[i]);
    for (size_t i = 0; i < ETOK_LATENCY_FIGURES; i++) push(m, &lf[i]);
    const etok_metric *const order2[] = {
        &sg.fig.ttft_slo_s, &sg.fig.tpot_slo_s, &sg.fig.slo_attainment, &sg.fig.goodput_rps, &sg.fig.goodput_tps,
        &ut.fig.busy_s, &ut.fig.token_rate_tps, &ut.fig.utilization_adjusted_token_rate_tps,
        &ut.fig.deployment_utilization, &ut.fig.utilization_adjusted_joules_per_token, &ut.fig.pue,
        &ut.fig.pue_adjusted_power_w,
        &cc.fig.energy_cost_per_mtok, &cc.fig.co2e_g_per_mtok, &cc.fig.co2e_g_per_request,
        &ut.fig.achieved_flops, &ut.fig.achieved_bytes_per_s, &ut.fig.peak_flops, &ut.fig.mem_bw_bps, &ut.fig.mfu,
        &ut.fig.mbu, &ut.fig.power_limit_ratio, &ut.fig.ceiling_compute_tps, &ut.fig.ceiling_memory_bandwidth_tps,
        &ut.fig.ceiling_device_power_cap_tps, &ut.fig.utilization,
    };
    for (size_t i = 0; i < sizeof order2 / sizeof order2[0]; i++) push(m, order2[i]);

    if (add_plot_data(m, r, &es, &lat, &te, &o, err)) goto done;
    rc = 0;
done:
    etok_metrics_latency_free(&lat);
    free(rv);
    etok_energy_summary_free(&es);
    if (rc) etok_metrics_free(m);
    return rc;
}
