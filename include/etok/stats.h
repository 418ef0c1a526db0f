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

#endif
