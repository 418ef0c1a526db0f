/* bgload.c — background load per phase and the process-boundary attribution model (see
 * include/etok/bgload.h for every rule). Pure: reads the record's cpu_load readings and, for
 * the attribution, the window energies of analyse/energy.c.
 * Owns: the phase figures, the warnings' thresholds, the attribution rule. */
#include "etok/bgload.h"

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
                                    double machine_busy_cores, double background_cores, int n_cpus) {
    double idle_j = idle_power_w > 0 && dt_s > 0 ? idle_power_w * dt_s : 0;
    double dyn = energy_j - idle_j;
    if (dyn < 0) dyn = 0;
    double share = machine_busy_cores > 1e-9 ? own_cores / machine_busy_cores : 1;
    if (share < 0) share = 0;
    if (share > 1) share = 1;
    double idle_share = n_cpus > 0 ? 1 - background_cores / n_cpus : 1;
    if (idle_share < 0) idle_share = 0;
    if (idle_share > 1) idle_share = 1;
    return share * dyn + idle_share * idle_j;
}

int etok_process_energy_compute(const etok_record *r, const etok_energy_summary *es, etok_process_energy *out) {
    memset(out, 0, sizeof *out);
    out->energy_j = out->joules_per_output_token = out->share_of_device = out->own_cpu_share = NAN;
    out->idle_power_w = NAN;
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
    /* breakpoints: the window edges and every reading inside */
    size_t nb = 0, cap = cl->n_samples + 2;
    double *buf = malloc(6 * cap * sizeof *buf);
    if (!buf) return -1;
    double *bp = buf, *e_i = buf + cap, *dt_i = buf + 2 * cap, *o_i = buf + 3 * cap, *m_i = buf + 4 * cap,
           *b_i = buf + 5 * cap;
    bp[nb++] = ws;
    for (size_t k = 0; k < cl->n_samples; k++)
        if (cl->samples[k].t_s > ws + 1e-6 && cl->samples[k].t_s < we - 1e-6) bp[nb++] = cl->samples[k].t_s;
    bp[nb++] = we;
    double sum_e = 0, sum_att_raw = 0;
    double own_cpu = 0, busy_cpu = 0;
    size_t ni = 0;
    for (size_t k = 0; k + 1 < nb; k++) {
        double a = bp[k], b = bp[k + 1];
        if (!(b - a > 1e-6)) continue;
        etok_energy_result res;
        if (etok_energy_window(r, a, b, &res) != 0) {
            etok_energy_result_free(&res);
            free(buf);
            return -1;
        }
        const etok_boundary_energy *be = &res.boundaries[es->boundary];
        double e = be->present && isfinite(be->mean_power_w) ? be->mean_power_w * (b - a) : 0;
        etok_energy_result_free(&res);
        etok_cpu_sample x = at(cl, a), y = at(cl, b);
        double m, o, g;
        cores(cl, &x, &y, &m, &o, &g);
        if (o < 0) {
            snprintf(out->note, sizeof out->note, "not available: own CPU time unknown in part of the window");
            free(buf);
            return 0;
        }
        e_i[ni] = e;
        dt_i[ni] = b - a;
        o_i[ni] = o;
        m_i[ni] = m;
        b_i[ni] = g;
        sum_e += e;
        own_cpu += o * (b - a);
        busy_cpu += m * (b - a);
        ni++;
    }
    if (!ni || !(sum_e > 0)) {
        snprintf(out->note, sizeof out->note, "not available: the window has no energy in its CPU-load intervals");
        free(buf);
        return 0;
    }
    double scale = es->energy_j / sum_e; /* interval energies sum to the window's device energy */
    for (size_t k = 0; k < ni; k++)
        sum_att_raw += etok_process_interval_energy(e_i[k] * scale, dt_i[k], P0, o_i[k], m_i[k], b_i[k], cl->n_cpus);
    free(buf);
    out->valid = 1;
    out->n_intervals = ni;
    out->energy_j = sum_att_raw;
    out->idle_power_w = P0;
    out->share_of_device = es->energy_j > 0 ? sum_att_raw / es->energy_j : NAN;
    out->own_cpu_share = busy_cpu > 0 ? own_cpu / busy_cpu : NAN;
    if (es->tokens_known && es->tokens_out > 0) out->joules_per_output_token = sum_att_raw / (double)es->tokens_out;
    snprintf(out->note, sizeof out->note,
             "attribution model (not a measurement): CPU-time share (%s) of dynamic energy + idle of cores "
             "not held by background; %zu intervals; device figure unchanged",
             cl->scope, ni);
    return 0;
}
