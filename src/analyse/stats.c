/* stats.c — percentiles (R type 7), means, splitmix64 RNG and percentile-bootstrap CIs, one
 * arm or two (differences and ratios between arms, paired or not: etok compare).
 * Owns: the statistical definitions every reported percentile and CI uses.
 * Does not own: which figures get them (metrics.c). */
#include "etok/stats.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

void etok_rng_seed(etok_rng *r, uint64_t seed) { r->s = seed ^ 0x9E3779B97F4A7C15ull; }

uint64_t etok_rng_u64(etok_rng *r) {
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

double etok_rng_uniform(etok_rng *r) { return (double)(etok_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0); }

double etok_rng_exponential(etok_rng *r, double rate) {
    double u = etok_rng_uniform(r);
    return -log1p(-u) / rate;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

size_t etok_sorted_finite(const double *x, size_t n, double *out) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) out[k++] = x[i];
    qsort(out, k, sizeof *out, cmp_double);
    return k;
}

double etok_percentile_sorted(const double *s, size_t n, double p) {
    if (n == 0) return NAN;
    if (p <= 0) return s[0];
    if (p >= 100) return s[n - 1];
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)floor(h);
    if (lo + 1 >= n) return s[n - 1];
    return s[lo] + (h - (double)lo) * (s[lo + 1] - s[lo]);
}

double etok_percentile(const double *x, size_t n, double p) {
    if (n == 0) return NAN;
    double *tmp = malloc(n * sizeof *tmp);
    if (!tmp) return NAN;
    size_t k = etok_sorted_finite(x, n, tmp);
    double v = etok_percentile_sorted(tmp, k, p);
    free(tmp);
    return v;
}

double etok_mean(const double *x, size_t n) {
    double sum = 0;
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (isfinite(x[i])) {
            sum += x[i];
            k++;
        }
    return k ? sum / (double)k : NAN;
}

double etok_stat_compute(etok_stat_kind kind, const double *x, size_t n) {
    switch (kind) {
    case ETOK_STAT_MEAN: return etok_mean(x, n);
    case ETOK_STAT_P50: return etok_percentile(x, n, 50);
    case ETOK_STAT_P90: return etok_percentile(x, n, 90);
    case ETOK_STAT_P99: return etok_percentile(x, n, 99);
    }
    return NAN;
}

int etok_bootstrap_ci(const double *x, size_t n, etok_stat_kind kind, int iters, uint64_t seed, double *lo,
                      double *hi) {
    if (iters <= 0) iters = 1000;
    /* Bound the work (iters x n resampled values): large samples have narrow intervals and
     * 100 resamples still place the 2.5/97.5 percentiles; see stats.h. */
    if (n > 0 && (double)iters * (double)n > 2e6) iters = (int)fmax(100.0, 2e6 / (double)n);
    if (n < 2) {
        *lo = *hi = n ? etok_stat_compute(kind, x, n) : NAN;
        return 0;
    }
    double *res = malloc(n * sizeof *res), *stats = malloc((size_t)iters * sizeof *stats);
    if (!res || !stats) {
        free(res);
        free(stats);
        return -1;
    }
    etok_rng rng;
    etok_rng_seed(&rng, seed);
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++) res[i] = x[etok_rng_u64(&rng) % n];
        stats[it] = etok_stat_compute(kind, res, n);
    }
    *lo = etok_percentile(stats, (size_t)iters, 2.5);
    *hi = etok_percentile(stats, (size_t)iters, 97.5);
    free(res);
    free(stats);
    return 0;
}

int etok_bootstrap_ci_multi(const double *x, size_t n, const etok_stat_kind *kinds, int n_kinds, int iters,
                            uint64_t seed, double *lo, double *hi) {
    if (iters <= 0) iters = 1000;
    if (n > 0 && (double)iters * (double)n > 1e6) iters = (int)fmax(100.0, 1e6 / (double)n);
    if (n < 2) {
        for (int k = 0; k < n_kinds; k++) lo[k] = hi[k] = n ? etok_stat_compute(kinds[k], x, n) : NAN;
        return 0;
    }
    double *res = malloc(n * sizeof *res), *stats = malloc((size_t)iters * (size_t)n_kinds * sizeof *stats);
    if (!res || !stats) {
        free(res);
        free(stats);
        return -1;
    }
    etok_rng rng;
    etok_rng_seed(&rng, seed);
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < n; i++) res[i] = x[etok_rng_u64(&rng) % n];
        qsort(res, n, sizeof *res, cmp_double); /* one sort serves every statistic */
        for (int k = 0; k < n_kinds; k++) {
            double v;
            switch (kinds[k]) {
            case ETOK_STAT_P50: v = etok_percentile_sorted(res, n, 50); break;
            case ETOK_STAT_P90: v = etok_percentile_sorted(res, n, 90); break;
            case ETOK_STAT_P99: v = etok_percentile_sorted(res, n, 99); break;
            default: v = etok_mean(res, n); break;
            }
            stats[(size_t)k * (size_t)iters + (size_t)it] = v;
        }
    }
    for (int k = 0; k < n_kinds; k++) {
        lo[k] = etok_percentile(stats + (size_t)k * (size_t)iters, (size_t)iters, 2.5);
        hi[k] = etok_percentile(stats + (size_t)k * (size_t)iters, (size_t)iters, 97.5);
    }
    free(res);
    free(stats);
    return 0;
}

/* ---- two arms (stats.h): differences and ratios ----------------------------------------- */

static double ratio_of_sums(const double *num, const double *den, const size_t *idx, size_t n) {
    double sn = 0, sd = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = idx ? idx[i] : i;
        sn += num[j];
        sd += den ? den[j] : 1.0;
    }
    return sd != 0 ? sn / sd : NAN;
}

/* [P2.5, P97.5] of v[0..n-1] (NAN entries dropped); NAN when fewer than half are finite. */
static void pct_ci(const double *v, size_t n, double *lo, double *hi) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += isfinite(v[i]) != 0;
    if (n == 0 || 2 * k < n) {
        *lo = *hi = NAN;
        return;
    }
    *lo = etok_percentile(v, n, 2.5);
    *hi = etok_percentile(v, n, 97.5);
}

static int delta_finish(double *sa, double *sb, int iters, etok_delta_ci *o) {
    double *d = malloc((size_t)iters * 2 * sizeof *d);
    if (!d) return -1;
    double *r = d + iters;
    for (int i = 0; i < iters; i++) {
        d[i] = sb[i] - sa[i];
        r[i] = sa[i] != 0 ? sb[i] / sa[i] - 1.0 : NAN;
    }
    pct_ci(sa, (size_t)iters, &o->a_lo, &o->a_hi);
    pct_ci(sb, (size_t)iters, &o->b_lo, &o->b_hi);
    pct_ci(d, (size_t)iters, &o->diff_lo, &o->diff_hi);
    pct_ci(r, (size_t)iters, &o->rel_lo, &o->rel_hi);
    o->diff = o->b - o->a;
    o->rel = o->a != 0 && isfinite(o->a) ? o->b / o->a - 1.0 : NAN;
    o->iters = iters;
    free(d);
    return 0;
}

static int bounded_iters(int iters, size_t n) {
    if (iters <= 0) iters = 1000;
    if (n > 0 && (double)iters * (double)n > 4e6) iters = (int)fmax(200.0, 4e6 / (double)n);
    return iters;
}

int etok_bootstrap_delta_ratio_of_sums(const double *num_a, const double *den_a, size_t n_a, const double *num_b,
                                       const double *den_b, size_t n_b, int paired, int iters, uint64_t seed,
                                       etok_delta_ci *out) {
    memset(out, 0, sizeof *out);
    if (paired && n_a != n_b) return -1;
    iters = bounded_iters(iters, n_a + n_b);
    out->a = n_a ? ratio_of_sums(num_a, den_a, NULL, n_a) : NAN;
    out->b = n_b ? ratio_of_sums(num_b, den_b, NULL, n_b) : NAN;
    double *sa = malloc((size_t)iters * 2 * sizeof *sa);
    size_t *ia = malloc((n_a + n_b + 1) * sizeof *ia);
    if (!sa || !ia) {
        free(sa);
        free(ia);
        return -1;
    }
    double *sb = sa + iters;
    size_t *ib = ia + n_a;
    etok_rng rng;
    etok_rng_seed(&rng, seed);
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < n_a; i++) ia[i] = n_a > 1 ? etok_rng_u64(&rng) % n_a : 0;
        if (paired) memcpy(ib, ia, n_a * sizeof *ia);
        else
            for (size_t i = 0; i < n_b; i++) ib[i] = n_b > 1 ? etok_rng_u64(&rng) % n_b : 0;
        sa[it] = n_a ? ratio_of_sums(num_a, den_a, ia, n_a) : NAN;
        sb[it] = n_b ? ratio_of_sums(num_b, den_b, ib, n_b) : NAN;
    }
    int rc = delta_finish(sa, sb, iters, out);
    free(sa);
    free(ia);
    return rc;
}

int etok_bootstrap_delta_percentile(const double *a, size_t n_a, const double *b, size_t n_b, double p, int iters,
                                    uint64_t seed, etok_delta_ci *out) {
    memset(out, 0, sizeof *out);
    iters = bounded_iters(iters, n_a + n_b);
    double *fa = malloc((n_a + 1) * sizeof *fa), *fb = malloc((n_b + 1) * sizeof *fb);
    double *res = malloc((n_a + n_b + 1) * sizeof *res);
    double *sa = malloc((size_t)iters * 2 * sizeof *sa);
    if (!fa || !fb || !res || !sa) {
        free(fa);
        free(fb);
        free(res);
        free(sa);
        return -1;
    }
    double *sb = sa + iters;
    size_t ka = etok_sorted_finite(a, n_a, fa), kb = etok_sorted_finite(b, n_b, fb);
    out->a = etok_percentile_sorted(fa, ka, p);
    out->b = etok_percentile_sorted(fb, kb, p);
    etok_rng rng;
    etok_rng_seed(&rng, seed);
    for (int it = 0; it < iters; it++) {
        for (size_t i = 0; i < ka; i++) res[i] = fa[etok_rng_u64(&rng) % ka];
        qsort(res, ka, sizeof *res, cmp_double);
        sa[it] = etok_percentile_sorted(res, ka, p); /* NAN when ka == 0 */
        for (size_t i = 0; i < kb; i++) res[i] = fb[etok_rng_u64(&rng) % kb];
        qsort(res, kb, sizeof *res, cmp_double);
        sb[it] = etok_percentile_sorted(res, kb, p);
    }
    int rc = delta_finish(sa, sb, iters, out);
    free(fa);
    free(fb);
    free(res);
    free(sa);
    return rc;
}
