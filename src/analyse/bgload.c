/* bgload.c — background load per phase and the process-boundary attribution model (see
 * include/etok/bgload.h for every rule). Pure: reads the record's cpu_load readings and, for
 * the attribution, the window energies of analyse/energy.c.
 * Owns: the phase figures, the warnings' thresholds, the attribution rule. */
#include "etok/bgload.h"

#include "etok/attribute.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const PHASE_LABEL[ETOK_PHASE_COUNT] = {"idle baseline", "warm-up", "window"};

/* Cumulative readings at record time t, linearly interpolated (clamped to the readings). */
static etok_cpu_sample at(const etok_cpuload *cl, double t) {
    const etok_cpu_sample *s = cl->samples;
    size_t n = cl->n_samples;
    if (t <= s[0].t_s) return s[0];
    if (t >= s[n - 1].t_s) return s[n - 1];
    size_t lo = 0, hi = n - 1;
    while (hi - lo > 1) {
        size_t mid = (lo + hi) / 2;
        if (s[mid].t_s <= t) lo = mid;
        else hi = mid;
    }
    double span = s[hi].t_s - s[lo].t_s, f = span > 0 ? (t - s[lo].t_s) / span : 1;
    etok_cpu_sample c = {t, s[lo].busy_s + f * (s[hi].busy_s - s[lo].busy_s),
                         s[lo].total_s + f * (s[hi].total_s - s[lo].total_s), s[lo].own_s + f * (s[hi].own_s - s[lo].own_s)};
    if (s[lo].own_s < 0 || s[hi].own_s < 0) c.own_s = -1;
    return c;
}

/* Machine, own and background cores between two readings; own/background -1 when unknown. */
static void cores(const etok_cpuload *cl, const etok_cpu_sample *a, const etok_cpu_sample *b, double *machine,
                  double *own, double *bg) {
    double dt = cl->n_cpus > 0 ? (b->total_s - a->total_s) / cl->n_cpus : 0;
    if (!(dt > 1e-9)) dt = b->t_s - a->t_s;
    if (!(dt > 1e-9)) {
        *machine = 0;
        *own = *bg = a->own_s < 0 ? -1 : 0;
        return;
    }
    *machine = (b->busy_s - a->busy_s) / dt;
    if (*machine < 0) *machine = 0;
    if (a->own_s < 0 || b->own_s < 0) {
        *own = *bg = -1;
        return;
    }
    *own = (b->own_s - a->own_s) / dt;
    if (*own < 0) *own = 0;
    *bg = *machine - *own > 0 ? *machine - *own : 0;
}

static void phase_figures(const etok_cpuload *cl, double t1, double t2, etok_cpuload_phase *p) {
    memset(p, 0, sizeof *p);
    p->t_start_s = t1;
    p->t_end_s = t2;
    p->own_busy_cores = p->background_busy_cores = -1;
    if (!(t2 - t1 >= 0.05) || cl->n_samples < 2 || t1 < cl->samples[0].t_s - 0.5 ||
        t2 > cl->samples[cl->n_samples - 1].t_s + 0.5)
        return;
    etok_cpu_sample a = at(cl, t1), b = at(cl, t2);
    if (b.total_s <= a.total_s && b.busy_s <= a.busy_s && !(b.t_s > a.t_s)) return;
    p->valid = 1;
    cores(cl, &a, &b, &p->machine_busy_cores, &p->own_busy_cores, &p->background_busy_cores);
    /* noise: the standard error of the mean background over the sampling intervals inside */
    double sum = 0, sum2 = 0;
    int n = 0;
    for (size_t k = 0; k + 1 < cl->n_samples; k++) {
        const etok_cpu_sample *x = &cl->samples[k], *y = &cl->samples[k + 1];
        if (x->t_s < t1 - 1e-9 || y->t_s > t2 + 1e-9) continue;
        double m, o, g;
        cores(cl, x, y, &m, &o, &g);
        if (g < 0) continue;
        sum += g;
        sum2 += g * g;
        n++;
    }
    if (n >= 2) {
        double mean = sum / n, var = (sum2 - n * mean * mean) / (n - 1);
        p->background_noise_cores = var > 0 ? sqrt(var / n) : 0;
    }
}

int etok_bgload_analyse(const etok_record *r, etok_bgload *out) {
    memset(out, 0, sizeof *out);
    out->changed = -1;
    out->change_cores = NAN;
    const etok_cpuload *cl = &r->cpuload;
    if (!cl->present || cl->n_samples < 2) return 0;
    out->present = 1;
    int has_idle = r->idle_end_s > r->idle_start_s;
    double warm_start = has_idle ? r->idle_end_s : 0;
    phase_figures(cl, r->idle_start_s, has_idle ? r->idle_end_s : r->idle_start_s, &out->phase[ETOK_PHASE_IDLE]);
    phase_figures(cl, warm_start, r->window_start_s, &out->phase[ETOK_PHASE_WARMUP]);
    phase_figures(cl, r->window_start_s, r->window_end_s, &out->phase[ETOK_PHASE_WINDOW]);
    const etok_cpuload_phase *pi = &out->phase[ETOK_PHASE_IDLE], *pw = &out->phase[ETOK_PHASE_WINDOW];
    for (int k = 0; k < ETOK_PHASE_COUNT; k++) {
        const etok_cpuload_phase *p = &out->phase[k];
        if (p->valid && p->background_busy_cores > ETOK_BG_THRESHOLD_CORES) out->above_threshold = 1;
    }
    if (pi->valid && pw->valid && pi->background_busy_cores >= 0 && pw->background_busy_cores >= 0) {
        out->change_cores = pw->background_busy_cores - pi->background_busy_cores;
        double lim = ETOK_BG_NOISE_K * pi->background_noise_cores;
        out->change_limit_cores = lim > ETOK_BG_THRESHOLD_CORES ? lim : ETOK_BG_THRESHOLD_CORES;
        out->changed = fabs(out->change_cores) > out->change_limit_cores;
    }
    if (out->above_threshold) {
        size_t len = strlen(out->warning);
        snprintf(out->warning + len, sizeof out->warning - len, "background CPU load above %.2f cores (", ETOK_BG_THRESHOLD_CORES);
        int first = 1;
        for (int k = 0; k < ETOK_PHASE_COUNT; k++) {
            const etok_cpuload_phase *p = &out->phase[k];
            if (!p->valid || p->background_busy_cores < 0) continue;
            len = strlen(out->warning);
            snprintf(out->warning + len, sizeof out->warning - len, "%s%s %.2f", first ? "" : ", ", PHASE_LABEL[k],
                     p->background_busy_cores);
            first = 0;
        }
        len = strlen(out->warning);
        snprintf(out->warning + len, sizeof out->warning - len,
                 "): device-boundary figures include other processes' work%s",
                 pi->valid && pi->background_busy_cores > ETOK_BG_THRESHOLD_CORES ? ", and so does the idle baseline" : "");
    }
    for (size_t i = 0; i < r->n_faults; i++) /* the idle history's verdict, another process on the GPU */
        if (!strcmp(r->faults[i].kind, "warning") &&
            (!strcmp(r->faults[i].meter, "idle_history") || !strcmp(r->faults[i].meter, "gpu_processes"))) {
            size_t len = strlen(out->warning);
            snprintf(out->warning + len, sizeof out->warning - len, "%s%s", len ? "; " : "", r->faults[i].message);
        }
    if (out->changed == 1) {
        size_t len = strlen(out->warning);
        snprintf(out->warning + len, sizeof out->warning - len,
                 "%sbackground load %s by %.2f cores between the idle baseline and the window (more than %.2f): "
                 "idle subtraction is not valid",
                 len ? "; " : "", out->change_cores > 0 ? "rose" : "fell", fabs(out->change_cores), out->change_limit_cores);
    }
    return 0;
}

void etok_bgload_fill_record(etok_record *r) {
    etok_bgload b;
    etok_bgload_analyse(r, &b);
    if (!b.present) return;
    memcpy(r->cpuload.phase, b.phase, sizeof b.phase);
    r->cpuload.background_changed = b.changed;
}

double etok_process_interval_energy(double energy_j, double dt_s, double idle_power_w, double own_cores,
                                    double machine_busy_cores, int n_cpus) {
    return etok_cpu_share_energy(energy_j, dt_s, idle_power_w, own_cores, machine_busy_cores, n_cpus) +
           etok_cpu_rest_energy(energy_j, dt_s, idle_power_w, machine_busy_cores, n_cpus);
}

/* One CPU-load interval: record-time span, device energy at the summary's boundary, cores. */
typedef struct {
    double t1, t2, e, m, o;
} span;

/* Intervals between the cpu_load readings inside [t1, t2] (the edges included), at most
 * ETOK_BG_MAX_INTERVALS (readings skipped evenly beyond that). Returns the count, -1 on OOM. */
static long spans(const etok_record *r, const etok_energy_summary *es, double t1, double t2, span **out) {
    const etok_cpuload *cl = &r->cpuload;
    size_t inside = 0;
    for (size_t k = 0; k < cl->n_samples; k++)
        if (cl->samples[k].t_s > t1 + 1e-6 && cl->samples[k].t_s < t2 - 1e-6) inside++;
    size_t stride = inside / ETOK_BG_MAX_INTERVALS + 1;
    double *bp = malloc((inside / stride + 3) * sizeof *bp);
    span *v = malloc((inside / stride + 3) * sizeof *v);
    if (!bp || !v) {
        free(bp);
        free(v);
        return -1;
    }
    size_t nb = 0, seen = 0;
    bp[nb++] = t1;
    for (size_t k = 0; k < cl->n_samples; k++)
        if (cl->samples[k].t_s > t1 + 1e-6 && cl->samples[k].t_s < t2 - 1e-6 && seen++ % stride == 0)
            bp[nb++] = cl->samples[k].t_s;
    bp[nb++] = t2;
    long n = 0;
    for (size_t k = 0; k + 1 < nb; k++) {
        double a = bp[k], b = bp[k + 1];
        if (!(b - a > 1e-6)) continue;
        etok_energy_result res;
        if (etok_energy_window(r, a, b, &res) != 0) {
            etok_energy_result_free(&res);
            free(bp);
            free(v);
            return -1;
        }
        const etok_boundary_energy *be = &res.boundaries[es->boundary];
        double e = be->present && isfinite(be->mean_power_w) ? be->mean_power_w * (b - a) : NAN;
        etok_energy_result_free(&res);
        etok_cpu_sample x = at(cl, a), y = at(cl, b);
        double m, o, g;
        cores(cl, &x, &y, &m, &o, &g);
        v[n++] = (span){a, b, e, m, o};
    }
    free(bp);
    *out = v;
    return n;
}

/* Watts per busy core: weighted least squares of power on machine busy cores over ~1 s bins
 * of [t1, t2] (bins smooth the half-interval lag of a sampled power meter). 0 with *k, *a,
 * *spread, *nbins set; -1 when it cannot be fitted (too few bins, busy cores not spread). */
static int fit_watts_per_core(const span *v, long n, double *k, double *a, double *spread, int *nbins) {
    double sw = 0, sx = 0, sy = 0, sxx = 0, sxy = 0;
    int nb = 0;
    double bt = 0, be = 0, bm = 0;
    for (long i = 0; i <= n; i++) {
        if (i < n) {
            if (!isfinite(v[i].e)) continue;
            double dt = v[i].t2 - v[i].t1;
            bt += dt;
            be += v[i].e;
            bm += v[i].m * dt;
            if (bt < ETOK_BG_FIT_BIN_S) continue;
        }
        if (bt > 1e-6) { /* a full bin, or what is left at the end */
            double p = be / bt, x = bm / bt;
            sw += bt;
            sx += bt * x;
            sy += bt * p;
            sxx += bt * x * x;
            sxy += bt * x * p;
            nb++;
        }
        bt = be = bm = 0;
    }
    *nbins = nb;
    *k = *a = NAN;
    *spread = 0;
    if (nb < 3 || !(sw > 0)) return -1;
    double mx = sx / sw, my = sy / sw, vx = sxx / sw - mx * mx;
    *spread = vx > 0 ? sqrt(vx) : 0;
    if (*spread < ETOK_BG_FIT_MIN_SPREAD_CORES) return -1;
    *k = (sxy / sw - mx * my) / vx;
    *a = my - *k * mx;
    return 0;
}

int etok_process_energy_compute(const etok_record *r, const etok_energy_summary *es, etok_process_energy *out) {
    memset(out, 0, sizeof *out);
    out->energy_j = out->joules_per_output_token = out->share_of_device = out->own_cpu_share = NAN;
    out->idle_power_w = out->baseline_power_w = out->watts_per_core = out->baseline_busy_cores = NAN;
    const etok_cpuload *cl = &r->cpuload;
    const char *why = NULL;
    if (!cl->present || cl->n_samples < 2) why = "no CPU-load readings in the record";
    else if (!strcmp(cl->scope, "none")) why = "own work not known locally (--endpoint without --server-pid)";
    else if (!es->has_energy) why = "no window energy";
    else if (!es->has_idle || !isfinite(es->idle_power_w)) why = "needs an idle baseline (the device's idle power)";
    if (why) {
        snprintf(out->note, sizeof out->note, "not available: %s", why);
        return 0;
    }
    double ws = r->window_start_s, we = r->window_end_s, P0 = es->idle_power_w;
    out->baseline_power_w = P0;
    /* the idle baseline without the background's share: P_idle = P0 - k x m_idle, k fitted */
    etok_bgload bg;
    etok_bgload_analyse(r, &bg);
    const etok_cpuload_phase *pi = &bg.phase[ETOK_PHASE_IDLE];
    double P_idle = P0;
    char corr[160] = "";
    if (pi->valid) {
        out->baseline_busy_cores = pi->machine_busy_cores;
        span *all = NULL;
        long na = spans(r, es, r->idle_start_s, we, &all);
        if (na < 0) return -1;
        double k, a, spread;
        int nbins;
        int fitted = fit_watts_per_core(all, na, &k, &a, &spread, &nbins) == 0 && k >= 0;
        free(all);
        if (fitted) {
            out->watts_per_core = k;
            out->fitted = 1;
            P_idle = P0 - k * pi->machine_busy_cores;
            if (P_idle < 0) P_idle = 0;
            snprintf(corr, sizeof corr, "; idle %.3g W = baseline %.3g W - %.3g W/busy core (fitted, %d bins) x %.2f cores",
                     P_idle, P0, k, nbins, pi->machine_busy_cores);
        } else if (pi->machine_busy_cores > ETOK_BG_THRESHOLD_CORES) {
            snprintf(corr, sizeof corr,
                     "; baseline held %.2f busy cores, W/core not fitted (busy cores spread %.2f < %.2f): idle not corrected",
                     pi->machine_busy_cores, spread, ETOK_BG_FIT_MIN_SPREAD_CORES);
        }
    }
    span *v = NULL;
    long ni = spans(r, es, ws, we, &v);
    if (ni < 0) return -1;
    double sum_e = 0, sum_att_raw = 0, own_cpu = 0, busy_cpu = 0;
    for (long i = 0; i < ni; i++) {
        if (v[i].o < 0) {
            snprintf(out->note, sizeof out->note, "not available: own CPU time unknown in part of the window");
            free(v);
            return 0;
        }
        if (!isfinite(v[i].e)) v[i].e = 0;
        sum_e += v[i].e;
        own_cpu += v[i].o * (v[i].t2 - v[i].t1);
        busy_cpu += v[i].m * (v[i].t2 - v[i].t1);
    }
    if (!ni || !(sum_e > 0)) {
        snprintf(out->note, sizeof out->note, "not available: the window has no energy in its CPU-load intervals");
        free(v);
        return 0;
    }
    double scale = es->energy_j / sum_e; /* interval energies sum to the window's device energy */
    for (long i = 0; i < ni; i++)
        sum_att_raw += etok_process_interval_energy(v[i].e * scale, v[i].t2 - v[i].t1, P_idle, v[i].o, v[i].m, cl->n_cpus);
    free(v);
    out->valid = 1;
    out->n_intervals = (size_t)ni;
    out->energy_j = sum_att_raw;
    out->idle_power_w = P_idle;
    out->share_of_device = es->energy_j > 0 ? sum_att_raw / es->energy_j : NAN;
    out->own_cpu_share = busy_cpu > 0 ? own_cpu / busy_cpu : NAN;
    if (es->tokens_known && es->tokens_out > 0) out->joules_per_output_token = sum_att_raw / (double)es->tokens_out;
    snprintf(out->note, sizeof out->note,
             "attribution model (not a measurement): CPU-time share (%s) of dynamic energy + idle of cores "
             "not held by background; %ld intervals%s; device figure unchanged",
             cl->scope, ni, corr);
    return 0;
}
