/* pareto.h — the pure analysis of a sweep (etok sweep): the energy–latency Pareto frontier,
 * the (q*, s*) gate of a point, the repeat summary with its 95% CI, idle-baseline drift and the
 * seeded run order. No I/O, no clock; tests/unit/test_pareto.c checks hand-computed cases.
 *
 * Frontier (docs/SWEEP.md): over points (x, y) both minimised — x = J/output-token, y = p90
 * TPOT. A point is on the frontier when it is eligible (meets q* and s*), both coordinates are
 * finite, and no other eligible finite point dominates it (x' <= x and y' <= y, one strictly).
 * Equal points do not dominate each other: duplicates are both on the frontier. */
#ifndef ETOK_PARETO_H
#define ETOK_PARETO_H

#include <stddef.h>
#include <stdint.h>

/* on_front[i] = 1 for frontier points, else 0. eligible may be NULL (every point eligible).
 * Returns the number of frontier points. */
size_t etok_pareto_frontier(const double *x, const double *y, const int *eligible, size_t n, int *on_front);

/* Index of the eligible point with the smallest finite x (ties: the smaller y, then the lower
 * index); -1 when there is none. eligible may be NULL. */
long etok_pareto_best(const double *x, const double *y, const int *eligible, size_t n);

/* The gate of one point. meets q*: no q* (q_star < 0 or NAN), or accuracy >= q_star
 * (NAN accuracy — no answer checked — does not meet a given q*). meets s*: no SLO given
 * (has_slo 0), or slo_attainment >= attainment_target (NAN does not meet it). */
void etok_sweep_gate(double accuracy, double q_star, double slo_attainment, int has_slo, double attainment_target,
                     int *meets_q, int *meets_s);

/* Mean of the finite values of v and a Student-t 95% CI of that mean (n-1 degrees of
 * freedom). Returns the count of finite values; with fewer than 2, lo = hi = NAN (no CI from
 * repeats), and with none the mean is NAN too. */
size_t etok_repeat_ci(const double *v, size_t n, double *mean, double *lo, double *hi);

/* The two-sided 97.5% quantile of Student's t with df degrees of freedom (df >= 1;
 * 1.96 beyond 30). */
double etok_t975(size_t df);

/* Idle drift: 1 when the probe's idle power differs from the baseline's by more than
 * max(rel_tol x baseline, abs_floor_w), or either is not finite; else 0. The meters'
 * uncertainties are not used: their systematic part is common to both readings. */
int etok_idle_drifted(double baseline_w, double probe_w, double rel_tol, double abs_floor_w);

/* order[0..n) = a permutation of 0..n-1, Fisher-Yates with etok_rng seeded by seed. */
void etok_shuffle_order(size_t *order, size_t n, uint64_t seed);

#endif
