/* stats.c — percentiles (R type 7), means, splitmix64 RNG and percentile-bootstrap CIs, one
 * arm or two (differences and ratios between arms, paired or not, two-stage over runs, and the
 * runs' Student-t intervals: etok compare).
 * Owns: the statistical definitions every reported percentile and CI uses.
 * Does not own: which figures get them (metrics.c). */
#include "etok/stats.h"

#include "etok/pareto.h"

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
    if (paired && n_a != n_b) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    const size_t sa[2] = {0, n_a}, sb[2] = {0, n_b};
    return etok_bootstrap_delta_ratio_clustered(num_a, den_a, sa, 1, num_b, den_b, sb, 1, paired, iters, seed, out);
}

/* n_cl cluster indices into cl (none drawn for one cluster: it is always itself). */
static void draw_clusters(etok_rng *rng, size_t n_cl, size_t *cl) {
    for (size_t c = 0; c < n_cl; c++) cl[c] = n_cl > 1 ? (size_t)(etok_rng_u64(rng) % n_cl) : 0;
}

/* Stage 2 of an unpaired arm: the units of each drawn cluster, resampled within it. */
static double clustered_ratio(etok_rng *rng, const double *num, const double *den, const size_t *start,
                              const size_t *cl, size_t n_cl) {
    double sn = 0, sd = 0;
    for (size_t c = 0; c < n_cl; c++) {
        size_t s0 = start[cl[c]], m = start[cl[c] + 1] - s0;
        for (size_t i = 0; i < m; i++) {
            size_t j = s0 + (m > 1 ? (size_t)(etok_rng_u64(rng) % m) : 0);
            sn += num[j];
            sd += den ? den[j] : 1.0;
        }
    }
    return sd != 0 ? sn / sd : NAN;
}

/* Paired: the item draw `it` (n_items) in every drawn cluster. */
static double crossed_ratio(const double *num, const double *den, const size_t *cl, size_t n_cl, const size_t *it,
                            size_t n_items) {
    double sn = 0, sd = 0;
    for (size_t c = 0; c < n_cl; c++)
        for (size_t i = 0; i < n_items; i++) {
            size_t j = cl[c] * n_items + it[i];
            sn += num[j];
            sd += den ? den[j] : 1.0;
        }
    return sd != 0 ? sn / sd : NAN;
}

int etok_bootstrap_delta_ratio_clustered(const double *num_a, const double *den_a, const size_t *start_a,
                                         size_t n_cl_a, const double *num_b, const double *den_b,
                                         const size_t *start_b, size_t n_cl_b, int paired, int iters, uint64_t seed,
                                         etok_delta_ci *out) {
    memset(out, 0, sizeof *out);
    size_t n_a = n_cl_a ? start_a[n_cl_a] : 0, n_b = n_cl_b ? start_b[n_cl_b] : 0;
    size_t n_items = 0;
    if (paired) {
        if (!n_cl_a || !n_cl_b) return -1;
        n_items = start_a[1] - start_a[0];
        for (size_t c = 0; c <= n_cl_a; c++)
            if (start_a[c] != c * n_items) return -1;
        for (size_t c = 0; c <= n_cl_b; c++)
            if (start_b[c] != c * n_items) return -1;
    }
    iters = bounded_iters(iters, n_a + n_b);
    out->a = n_a ? ratio_of_sums(num_a, den_a, NULL, n_a) : NAN;
    out->b = n_b ? ratio_of_sums(num_b, den_b, NULL, n_b) : NAN;
    double *sa = malloc((size_t)iters * 2 * sizeof *sa);
    size_t *cla = malloc((n_cl_a + n_cl_b + n_items + 1) * sizeof *cla);
    if (!sa || !cla) {
        free(sa);
        free(cla);
        return -1;
    }
    double *sb = sa + iters;
    size_t *clb = cla + n_cl_a, *it = clb + n_cl_b;
    etok_rng rng;
    etok_rng_seed(&rng, seed);
    for (int k = 0; k < iters; k++) {
        if (paired) {
            draw_clusters(&rng, n_cl_a, cla);
            draw_clusters(&rng, n_cl_b, clb);
            for (size_t i = 0; i < n_items; i++) it[i] = n_items > 1 ? (size_t)(etok_rng_u64(&rng) % n_items) : 0;
            sa[k] = crossed_ratio(num_a, den_a, cla, n_cl_a, it, n_items);
            sb[k] = crossed_ratio(num_b, den_b, clb, n_cl_b, it, n_items);
        } else {
            draw_clusters(&rng, n_cl_a, cla);
            sa[k] = n_a ? clustered_ratio(&rng, num_a, den_a, start_a, cla, n_cl_a) : NAN;
            draw_clusters(&rng, n_cl_b, clb);
            sb[k] = n_b ? clustered_ratio(&rng, num_b, den_b, start_b, clb, n_cl_b) : NAN;
        }
    }
    int rc = delta_finish(sa, sb, iters, out);
    free(sa);
    free(cla);
    return rc;
}

int etok_bootstrap_delta_percentile(const double *a, size_t n_a, const double *b, size_t n_b, double p, int iters,
                                    uint64_t seed, etok_delta_ci *out) {
    const size_t sa[2] = {0, n_a}, sb[2] = {0, n_b};
    return etok_bootstrap_delta_percentile_clustered(a, sa, 1, b, sb, 1, p, iters, seed, out);
}

/* An arm's finite values sorted within each cluster into f, their cluster starts into fs
 * (n_cl + 1), and all of them sorted into all; returns the count. */
static size_t sorted_clusters(const double *x, const size_t *start, size_t n_cl, double *f, size_t *fs, double *all) {
    size_t k = 0;
    for (size_t c = 0; c < n_cl; c++) {
        fs[c] = k;
        k += etok_sorted_finite(x + start[c], start[c + 1] - start[c], f + k);
    }
    fs[n_cl] = k;
    memcpy(all, f, k * sizeof *all);
    qsort(all, k, sizeof *all, cmp_double);
    return k;
}

/* One arm's resampled percentile: clusters, then values within each drawn one. */
static double clustered_pct(etok_rng *rng, const double *f, const size_t *fs, size_t n_cl, size_t *cl, double *res,
                            double p) {
    draw_clusters(rng, n_cl, cl);
    size_t m = 0;
    for (size_t c = 0; c < n_cl; c++) {
        size_t s0 = fs[cl[c]], kc = fs[cl[c] + 1] - s0;
        for (size_t i = 0; i < kc; i++) res[m++] = f[s0 + (size_t)(etok_rng_u64(rng) % kc)];
    }
    qsort(res, m, sizeof *res, cmp_double);
    return etok_percentile_sorted(res, m, p); /* NAN when m == 0 */
}

static size_t max_cluster(const size_t *fs, size_t n_cl) {
    size_t m = 0;
    for (size_t c = 0; c < n_cl; c++)
        if (fs[c + 1] - fs[c] > m) m = fs[c + 1] - fs[c];
    return m;
}

int etok_bootstrap_delta_percentile_clustered(const double *a, const size_t *start_a, size_t n_cl_a, const double *b,
                                              const size_t *start_b, size_t n_cl_b, double p, int iters,
                                              uint64_t seed, etok_delta_ci *out) {
    memset(out, 0, sizeof *out);
    size_t n_a = n_cl_a ? start_a[n_cl_a] : 0, n_b = n_cl_b ? start_b[n_cl_b] : 0;
    iters = bounded_iters(iters, n_a + n_b);
    double *fa = malloc((2 * n_a + 1) * sizeof *fa), *fb = malloc((2 * n_b + 1) * sizeof *fb);
    size_t *fs = malloc((2 * (n_cl_a + n_cl_b) + 2) * sizeof *fs);
    double *sa = malloc((size_t)iters * 2 * sizeof *sa);
    double *res = NULL;
    int rc = -1;
    if (!fa || !fb || !fs || !sa) goto done;
    size_t *fsa = fs, *fsb = fs + n_cl_a + 1, *cla = fsb + n_cl_b + 1, *clb = cla + n_cl_a;
    size_t ka = sorted_clusters(a, start_a, n_cl_a, fa, fsa, fa + n_a);
    size_t kb = sorted_clusters(b, start_b, n_cl_b, fb, fsb, fb + n_b);
    out->a = etok_percentile_sorted(fa + n_a, ka, p);
    out->b = etok_percentile_sorted(fb + n_b, kb, p);
    size_t ma = n_cl_a * max_cluster(fsa, n_cl_a), mb = n_cl_b * max_cluster(fsb, n_cl_b);
    res = malloc(((ma > mb ? ma : mb) + 1) * sizeof *res);
    if (!res) goto done;
    double *sb = sa + iters;
    etok_rng rng;
    etok_rng_seed(&rng, seed);
    for (int k = 0; k < iters; k++) {
        sa[k] = clustered_pct(&rng, fa, fsa, n_cl_a, cla, res, p);
        sb[k] = clustered_pct(&rng, fb, fsb, n_cl_b, clb, res, p);
    }
    rc = delta_finish(sa, sb, iters, out);
done:
    free(fa);
    free(fb);
    free(fs);
    free(sa);
    free(res);
    return rc;
}

/* One arm's ratio of sums over runs and its linearised standard error (NAN below 2 runs). */
static void runs_ratio_se(const double *num, const double *den, size_t n, double *r, double *se) {
    *r = n ? ratio_of_sums(num, den, NULL, n) : NAN;
    *se = NAN;
    if (n < 2 || !isfinite(*r)) return;
    double sd = 0, ss = 0;
    for (size_t k = 0; k < n; k++) sd += den ? den[k] : 1.0;
    double dbar = sd / (double)n;
    for (size_t k = 0; k < n; k++) {
        double u = (num[k] - *r * (den ? den[k] : 1.0)) / dbar;
        ss += u * u;
    }
    *se = sqrt(ss / ((double)n * (double)(n - 1)));
}

static double t975_real(double df) {
    if (!(df >= 1)) df = 1;
    return etok_t975(df > 1e6 ? 1000000 : (size_t)floor(df));
}

int etok_runs_t_delta(const double *num_a, const double *den_a, size_t n_a, const double *num_b, const double *den_b,
                      size_t n_b, etok_delta_ci *out) {
    memset(out, 0, sizeof *out);
    double sea, seb;
    runs_ratio_se(num_a, den_a, n_a, &out->a, &sea);
    runs_ratio_se(num_b, den_b, n_b, &out->b, &seb);
    out->a_lo = out->a_hi = out->b_lo = out->b_hi = NAN;
    out->diff_lo = out->diff_hi = out->rel_lo = out->rel_hi = NAN;
    out->diff = out->b - out->a;
    out->rel = out->a != 0 && isfinite(out->a) ? out->b / out->a - 1.0 : NAN;
    if (isfinite(sea)) {
        out->a_lo = out->a - etok_t975(n_a - 1) * sea;
        out->a_hi = out->a + etok_t975(n_a - 1) * sea;
    }
    if (isfinite(seb)) {
        out->b_lo = out->b - etok_t975(n_b - 1) * seb;
        out->b_hi = out->b + etok_t975(n_b - 1) * seb;
    }
    if (!isfinite(sea) || !isfinite(seb)) return 0;
    double va = sea * sea, vb = seb * seb;
    double den = va * va / (double)(n_a - 1) + vb * vb / (double)(n_b - 1);
    double df = den > 0 ? (va + vb) * (va + vb) / den : (double)(n_a + n_b - 2);
    double t = t975_real(df), h = t * sqrt(va + vb);
    out->diff_lo = out->diff - h;
    out->diff_hi = out->diff + h;
    if (out->a > 0 && out->b > 0) {
        double sl = sqrt(va / (out->a * out->a) + vb / (out->b * out->b)), l = log(out->b / out->a);
        out->rel_lo = exp(l - t * sl) - 1.0;
        out->rel_hi = exp(l + t * sl) - 1.0;
    }
    return 0;
}
