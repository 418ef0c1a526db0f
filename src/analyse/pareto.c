/* pareto.c — pure analysis of a sweep: the Pareto frontier over (J/output-token, p90 TPOT),
 * the (q*, s*) gate, repeat CIs, idle drift and the seeded run order (pareto.h). Owns no I/O.
 * Does not own: running points or baselines (cli/cmd_sweep.c), rendering (render/sweep_report.c). */
#include <math.h>

#include "etok/pareto.h"
#include "etok/stats.h"

static int ok_pt(const double *x, const double *y, const int *el, size_t i) {
    return (!el || el[i]) && isfinite(x[i]) && isfinite(y[i]);
}

size_t etok_pareto_frontier(const double *x, const double *y, const int *eligible, size_t n, int *on_front) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        on_front[i] = 0;
        if (!ok_pt(x, y, eligible, i)) continue;
        int dominated = 0;
        for (size_t j = 0; j < n && !dominated; j++) {
            if (j == i || !ok_pt(x, y, eligible, j)) continue;
            if (x[j] <= x[i] && y[j] <= y[i] && (x[j] < x[i] || y[j] < y[i])) dominated = 1;
        }
        if (!dominated) {
            on_front[i] = 1;
            k++;
        }
    }
    return k;
}

long etok_pareto_best(const double *x, const double *y, const int *eligible, size_t n) {
    long best = -1;
    for (size_t i = 0; i < n; i++) {
        if ((eligible && !eligible[i]) || !isfinite(x[i])) continue;
        if (best < 0) { best = (long)i; continue; }
        double bx = x[best], by = y[best], yi = y[i];
        if (x[i] < bx) best = (long)i;
        else if (x[i] == bx && isfinite(yi) && (!isfinite(by) || yi < by)) best = (long)i;
    }
    return best;
}

void etok_sweep_gate(double accuracy, double q_star, double slo_attainment, int has_slo, double attainment_target,
                     int *meets_q, int *meets_s) {
    *meets_q = !(q_star >= 0) || (isfinite(accuracy) && accuracy >= q_star);
    *meets_s = !has_slo || (isfinite(slo_attainment) && slo_attainment >= attainment_target);
}

double etok_t975(size_t df) {
    static const double T[31] = {NAN,   12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
                                 2.201, 2.179,  2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080,
                                 2.074, 2.069,  2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042};
    if (df == 0) return NAN;
    return df <= 30 ? T[df] : 1.96;
}

size_t etok_repeat_ci(const double *v, size_t n, double *mean, double *lo, double *hi) {
    size_t k = 0;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) { s += v[i]; k++; }
    *mean = k ? s / (double)k : NAN;
    *lo = *hi = NAN;
    if (k < 2) return k;
    double ss = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(v[i])) ss += (v[i] - *mean) * (v[i] - *mean);
    double se = sqrt(ss / (double)(k - 1) / (double)k);
    double h = etok_t975(k - 1) * se;
    *lo = *mean - h;
    *hi = *mean + h;
    return k;
}

int etok_idle_drifted(double baseline_w, double probe_w, double rel_tol, double abs_floor_w) {
    if (!isfinite(baseline_w) || !isfinite(probe_w)) return 1;
    double lim = fabs(baseline_w) * rel_tol;
    if (lim < abs_floor_w) lim = abs_floor_w;
    return fabs(probe_w - baseline_w) > lim;
}

void etok_shuffle_order(size_t *order, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) order[i] = i;
    etok_rng r;
    etok_rng_seed(&r, seed);
    for (size_t i = n; i > 1; i--) {
        size_t j = (size_t)(etok_rng_u64(&r) % i);
        size_t t = order[i - 1];
        order[i - 1] = order[j];
        order[j] = t;
    }
}
