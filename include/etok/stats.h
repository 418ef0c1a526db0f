/* stats.h — small descriptive statistics: percentiles, mean, seeded bootstrap CIs.
 * Pure functions, no global state (the RNG state is the caller's).
 *
 * Percentile definition (the "linear" / R type 7 / numpy default): for n sorted values
 * x[0..n-1] and p in [0, 100], h = (n - 1) * p / 100, and
 *     P(p) = x[floor(h)] + (h - floor(h)) * (x[floor(h) + 1] - x[floor(h)]).
 * So P(0) = min, P(100) = max, P(50) of an even count is the mean of the middle two. */
#ifndef ETOK_STATS_H
#define ETOK_STATS_H

#include <stddef.h>
#include <stdint.h>

/* A splitmix64 generator: deterministic for a seed, state owned by the caller. */
typedef struct {
    uint64_t s;
} etok_rng;
void etok_rng_seed(etok_rng *r, uint64_t seed);
uint64_t etok_rng_u64(etok_rng *r);
double etok_rng_uniform(etok_rng *r);      /* [0, 1) */
double etok_rng_exponential(etok_rng *r, double rate); /* mean 1/rate */

/* Sort a copy ascending (qsort, NaNs excluded). Returns the number of finite values kept. */
size_t etok_sorted_finite(const double *x, size_t n, double *out);

/* Percentile of ascending-sorted values (see above); NAN when n == 0. */
double etok_percentile_sorted(const double *sorted, size_t n, double p);
/* Percentile of unsorted values (copies and sorts; NAN values ignored). */
double etok_percentile(const double *x, size_t n, double p);
double etok_mean(const double *x, size_t n);   /* NAN when n == 0 (NAN values ignored) */

/* Statistic used by the bootstrap: computed on a resample of n values. */
typedef enum { ETOK_STAT_MEAN, ETOK_STAT_P50, ETOK_STAT_P90, ETOK_STAT_P99 } etok_stat_kind;
double etok_stat_compute(etok_stat_kind k, const double *x, size_t n);

/* Percentile bootstrap 95% confidence interval of a statistic over n values: `iters`
 * resamples with replacement (0 = 1000; reduced to max(100, 2e6 / n) for large n, which
 * bounds the work) drawn from etok_rng seeded with `seed`. The
 * interval is [P2.5, P97.5] of the resampled statistics. n < 2: lo = hi = the statistic
 * (or NAN for n == 0). Returns 0, -1 on out of memory. */
int etok_bootstrap_ci(const double *x, size_t n, etok_stat_kind k, int iters, uint64_t seed, double *lo,
                      double *hi);

/* Several statistics of the same resamples at once (one sort per resample), work bounded at
 * max(100, 1e6 / n) resamples. x must hold finite values. lo/hi: n_kinds each. */
int etok_bootstrap_ci_multi(const double *x, size_t n, const etok_stat_kind *kinds, int n_kinds, int iters,
                            uint64_t seed, double *lo, double *hi);

/* No ratio CI here: the lever comparison METRICS.md asks for (figure of run A / figure of run
 * B with a bootstrap 95% CI over requests) resamples two independent request sets, one per
 * run, and takes the ratio of their statistics; a paired ratio-of-sums over one set (what an
 * earlier, never-called etok_bootstrap_ratio_ci did) is not that interval. It is to be written
 * with the comparison command that needs it (docs/REPORT.md, "Confidence intervals"). */

/* ---- Two arms: differences and ratios with bootstrap CIs (etok compare) -------------------
 *
 * A "ratio of sums" statistic R = sum(num) / sum(den) over units (den NULL: every den is 1,
 * so R is the mean). J/output-token (energy / output tokens), accuracy (passes / checked),
 * mean power (energy / seconds) are all such ratios; aggregating units (summing num and den
 * over the requests of one eval item) does not change R, which is how pairing by item works.
 *
 * Unpaired: each resample draws n_a units of arm A and, independently, n_b of arm B.
 * Paired: n_a == n_b and unit i of A belongs with unit i of B (the same eval item); each
 * resample draws indices once and uses them in both arms, so whatever the pair shares
 * (item difficulty, prompt length) cancels in the difference.
 *
 * Every interval is the percentile bootstrap [P2.5, P97.5] of the resampled statistic
 * (resamples whose statistic is not finite, e.g. a zero denominator, are dropped; when fewer
 * than half are finite the interval is NAN). n of an arm < 2: that arm does not vary. */
typedef struct {
    double a, b;              /* the statistic over all units of each arm */
    double a_lo, a_hi;        /* 95% CI of each arm's statistic (from the same resamples) */
    double b_lo, b_hi;
    double diff, diff_lo, diff_hi;  /* b - a */
    double rel, rel_lo, rel_hi;     /* b / a - 1 (NAN when a == 0) */
    int iters;                /* resamples drawn */
} etok_delta_ci;

/* Returns 0, -1 on out of memory or when paired with n_a != n_b. num arrays must be finite. */
int etok_bootstrap_delta_ratio_of_sums(const double *num_a, const double *den_a, size_t n_a, const double *num_b,
                                       const double *den_b, size_t n_b, int paired, int iters, uint64_t seed,
                                       etok_delta_ci *out);

/* The same for a percentile p (0..100) of each arm's values (unpaired: latency percentiles
 * are a property of the arm's whole distribution, not of one item). NAN values ignored. */
int etok_bootstrap_delta_percentile(const double *a, size_t n_a, const double *b, size_t n_b, double p, int iters,
                                    uint64_t seed, etok_delta_ci *out);

/* ---- Two arms of clustered units: runs (records) of requests or items -------------------
 *
 * An arm that pools several runs has two levels of variation: between requests (or items)
 * and between runs (a run that drew more power, or a record whose energy is one window
 * total split by token share: every request of it then has the run's J/token). Resampling
 * the pooled units alone misses the second level, and when units are items summed over all
 * runs it cannot see it at all (each item holds every run in full in every resample).
 *
 * Arm X's units are grouped in n_cl_x clusters: cluster c holds units [start_x[c],
 * start_x[c + 1]) (start_x has n_cl_x + 1 entries, start_x[0] = 0). Two-stage bootstrap: each
 * resample draws n_cl_x clusters with replacement, then, in each drawn cluster, as many of its
 * units as it holds, with replacement. Unpaired: arm A's draws, then arm B's. Paired: every
 * cluster of both arms holds the same n_items items in the same order (start_x[c] = c *
 * n_items, else -1): items are crossed with runs (each run ran the same eval items), so one
 * draw of n_items item indices per resample serves every drawn cluster of both arms (after
 * both arms' cluster draws) and what an item costs cancels in the difference; the runs of the
 * two arms are independent repeats, drawn independently. With one cluster per arm the draws
 * are exactly those of etok_bootstrap_delta_ratio_of_sums (which calls this).
 * A cluster without units contributes nothing when drawn. */
int etok_bootstrap_delta_ratio_clustered(const double *num_a, const double *den_a, const size_t *start_a,
                                         size_t n_cl_a, const double *num_b, const double *den_b,
                                         const size_t *start_b, size_t n_cl_b, int paired, int iters, uint64_t seed,
                                         etok_delta_ci *out);

/* The same for a percentile (unpaired; NAN values ignored): clusters drawn, then values within
 * each drawn cluster. One cluster per arm: the draws of etok_bootstrap_delta_percentile. */
int etok_bootstrap_delta_percentile_clustered(const double *a, const size_t *start_a, size_t n_cl_a, const double *b,
                                              const size_t *start_b, size_t n_cl_b, double p, int iters,
                                              uint64_t seed, etok_delta_ci *out);

/* Student-t intervals over runs for a ratio of sums, from each run's totals (num_x[k],
 * den_x[k] of run k; den NULL = 1): R_x = sum num / sum den, its standard error by
 * linearisation, se^2 = sum_k (num_k - R den_k)^2 / (mean den)^2 / (n (n - 1)) (with equal
 * denominators: the t-interval of the runs' own ratios, what etok sweep gives per point), each
 * arm's CI R_x +- t(n_x - 1) se_x, the difference's b - a +- t(df) sqrt(se_a^2 + se_b^2) and the
 * ratio's exp(log(b/a) +- t(df) sqrt((se_a/a)^2 + (se_b/b)^2)) - 1, df by Welch-Satterthwaite
 * (rounded down, at least 1). An arm with fewer than 2 runs has NAN bounds, and so have the
 * difference and ratio. The bootstrap cannot reach beyond the runs it has (three runs: their
 * own spread), so etok compare reports no interval narrower than this one. Returns 0. */
int etok_runs_t_delta(const double *num_a, const double *den_a, size_t n_a, const double *num_b, const double *den_b,
                      size_t n_b, etok_delta_ci *out);

#endif
