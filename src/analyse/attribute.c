/* attribute.c — per-request attributed energy from step shares, and the CPU-time attribution
 * of device energy to processes, cgroups or a run's own work (see include/etok/attribute.h).
 * Pure: reads the record's traces through energy.c and metrics.c's step-energy stage.
 * Owns: the split rules and the balancing of the books. Does not own: who took part in which
 * step (the driver records it), energy integration (energy.c). */
#include "etok/attribute.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "etok/energy.h"
#include "etok/metrics.h"

int etok_step_shares_add(etok_step_shares *s, size_t step, size_t request, double share) {
    if (s->n == s->cap) {
        size_t nc = s->cap ? s->cap * 2 : 256;
        etok_step_share *nv = realloc(s->v, nc * sizeof *nv);
        if (!nv) return -1;
        s->v = nv;
        s->cap = nc;
    }
    s->v[s->n++] = (etok_step_share){.step = step, .request = request, .share = share};
    return 0;
}

void etok_step_shares_free(etok_step_shares *s) {
    if (!s) return;
    free(s->v);
    memset(s, 0, sizeof *s);
}

static int in_window(const etok_record *r, double t) { return t >= r->window_start_s - 1e-9 && t <= r->window_end_s + 1e-9; }

int etok_attribute_request_energy(etok_record *r, const etok_step_share *sh, size_t n, etok_attribution *out,
                                  etok_err *err) {
    memset(out, 0, sizeof *out);
    for (size_t k = 0; k < n; k++)
        if (sh[k].step >= r->n_steps || sh[k].request >= r->n_requests || !(sh[k].share >= 0))
            return etok_errc(err, ETOK_EXIT_INPUT, "energy attribution: share %zu names step %zu / request %zu (of %zu / %zu)",
                             k, sh[k].step, sh[k].request, r->n_steps, r->n_requests);
    for (size_t i = 0; i < r->n_requests; i++) r->requests[i].energy_j = -1;
    etok_energy_summary es;
    if (etok_energy_summarize(r, &es)) {
        etok_energy_summary_free(&es);
        return etok_errc(err, ETOK_EXIT_INPUT, "energy attribution: invalid windows or out of memory");
    }
    int rc = -1;
    double *y = calloc(r->n_steps + 1, sizeof *y), *tot = calloc(r->n_steps + 1, sizeof *tot);
    if (!y || !tot) {
        etok_errc(err, ETOK_EXIT_FAIL, "energy attribution: out of memory");
        goto done;
    }
    if (!es.has_energy) {
        rc = 0;
        goto done;
    }
    out->has_energy = 1;
    out->window_j = es.energy_j;
    for (size_t k = 0; k < n; k++) tot[sh[k].step] += sh[k].share;
    double sum_y = 0;
    for (size_t i = 0; i < r->n_steps; i++) {
        int metered = 0;
        double e = etok_metrics_step_energy(r, &es, i, &metered);
        if (!isfinite(e) || e < 0) {
            y[i] = 0;
            continue;
        }
        y[i] = e;
        out->n_steps++;
        out->n_steps_metered += (size_t)metered;
        sum_y += e;
    }
    double scale = sum_y > 0 ? es.energy_j / sum_y : 0;
    for (size_t i = 0; i < r->n_requests; i++) {
        const etok_request *q = &r->requests[i];
        if (q->t_send_s < 0 || in_window(r, q->t_send_s)) r->requests[i].energy_j = 0;
    }
    for (size_t k = 0; k < n; k++) {
        size_t i = sh[k].step;
        if (!(tot[i] > 0) || !(y[i] > 0)) continue;
        etok_request *q = &r->requests[sh[k].request];
        if (q->energy_j < 0) q->energy_j = 0; /* a share of an in-window step makes it counted */
        double e = y[i] * scale * sh[k].share / tot[i];
        q->energy_j += e;
        out->attributed_j += e;
    }
    out->unattributed_j = sum_y > 0 ? es.energy_j - out->attributed_j : es.energy_j;
    rc = 0;
done:
    free(y);
    free(tot);
    etok_energy_summary_free(&es);
    return rc;
}

/* ---- CPU-time attribution (the one model; attribute.h) ---- */

static double idle_part(double energy_j, double dt_s, double idle_power_w) {
    double i = idle_power_w > 0 && dt_s > 0 ? idle_power_w * dt_s : 0;
    if (!(energy_j > 0)) return 0;
    return i < energy_j ? i : energy_j;
}

double etok_cpu_share_energy(double energy_j, double dt_s, double idle_power_w, double cores,
                             double machine_busy_cores, int n_cpus) {
    if (!(energy_j > 0) || !(machine_busy_cores > 1e-9) || !(cores > 0)) return 0;
    double c = cores < machine_busy_cores ? cores : machine_busy_cores;
    double i = idle_part(energy_j, dt_s, idle_power_w), dyn = energy_j - i;
    double held = n_cpus > 0 ? c / n_cpus : 0;
    if (held > 1) held = 1;
    return (c / machine_busy_cores) * dyn + held * i;
}

double etok_cpu_rest_energy(double energy_j, double dt_s, double idle_power_w, double machine_busy_cores,
                            int n_cpus) {
    if (!(energy_j > 0)) return 0;
    double i = idle_part(energy_j, dt_s, idle_power_w), dyn = energy_j - i;
    double m = machine_busy_cores > 0 ? machine_busy_cores : 0;
    double free_share = n_cpus > 0 ? (n_cpus - m) / n_cpus : (m > 1e-9 ? 0 : 1);
    if (free_share < 0) free_share = 0;
    if (free_share > 1) free_share = 1;
    return free_share * i + (m > 1e-9 ? 0 : dyn);
}
