/* triad.c — the machine's two roofs for the decode analysis in bench/engine.sh:
 *  - a STREAM-like triad a[i] = b[i] + s*c[i] with T threads (best of 5; bytes counted as
 *    3 x 8 per element, no write-allocate credit): memory bandwidth. The three arrays
 *    together are at least 4x the last-level cache, read at run time (the larger of the
 *    sysfs size of the highest-level cache of cpu0 times the number of such caches, and
 *    getconf LEVEL3_CACHE_SIZE: a VM's sysfs may show less than the host's CPUID), and at
 *    least 192 MiB; the size used and where it came from are printed, and beside it cpu0's own
 *    last-level cache from sysfs (what one core can keep data in: bench/engine.sh's note);
 *  - an FMA peak: T threads each running 8 independent AVX2 FMA chains (16 FLOP per FMA
 *    instruction on 8 floats), best of 5 (skipped with -b).
 * Both are measured on this machine now; the machine may be shared, so they are lower
 * bounds of the hardware's roofs.
 * usage: bench_triad [-t THREADS] [-b] [-l LLC_BYTES]  (-b: bandwidth only; -l: override the LLC) */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "etok/util.h"

/* Bytes of one cache as sysfs writes it ("32768K", "1M", "512"); 0 when unreadable. */
static size_t sysfs_size(const char *dir) {
    char path[256], buf[64];
    snprintf(path, sizeof path, "%s/size", dir);
    FILE *f = fopen(path, "r");
    if (!f) return 0;
    size_t v = 0;
    if (fgets(buf, sizeof buf, f)) {
        char *end;
        unsigned long long n = strtoull(buf, &end, 10);
        if (*end == 'K') n <<= 10;
        else if (*end == 'M') n <<= 20;
        else if (*end == 'G') n <<= 30;
        v = (size_t)n;
    }
    fclose(f);
    return v;
}

static int read_int_file(const char *path) {
    FILE *f = fopen(path, "r");
    int v = -1;
    if (f) {
        if (fscanf(f, "%d", &v) != 1) v = -1;
        fclose(f);
    }
    return v;
}

/* The last-level cache in bytes: sysfs (highest level of cpu0 x number of instances: online
 * CPUs / CPUs sharing it) and getconf, the larger; *src says which. *own: the sysfs size of
 * cpu0's own highest-level cache, the part one core can hold data in (0 if sysfs has none): on
 * an AMD EPYC guest getconf gave the host's 256 MiB of L3 over all its CCDs, while a core
 * reaches only its CCD's 32 MiB. */
static size_t llc_bytes(const char **src, size_t *own) {
    size_t best = 0;
    int best_level = 0;
    *own = 0;
    char dir[128];
    for (int i = 0; i < 16; i++) {
        snprintf(dir, sizeof dir, "/sys/devices/system/cpu/cpu0/cache/index%d", i);
        char lp[160];
        snprintf(lp, sizeof lp, "%s/level", dir);
        int level = read_int_file(lp);
        if (level < 0) break;
        size_t sz = sysfs_size(dir);
        if (level > best_level && sz) {
            best_level = level;
            *own = sz;
            /* instances: online CPUs / CPUs in this cache's shared_cpu_list */
            char sp[160], list[4096];
            snprintf(sp, sizeof sp, "%s/shared_cpu_list", dir);
            long sharing = 0;
            FILE *f = fopen(sp, "r");
            if (f && fgets(list, sizeof list, f)) {
                char *p = list;
                while (*p && *p != '\n') {
                    long a = strtol(p, &p, 10), b = a;
                    if (*p == '-') b = strtol(p + 1, &p, 10);
                    sharing += b - a + 1;
                    if (*p == ',') p++;
                    else break;
                }
            }
            if (f) fclose(f);
            long online = sysconf(_SC_NPROCESSORS_ONLN);
            long inst = sharing > 0 && online > sharing ? (online + sharing - 1) / sharing : 1;
            best = sz * (size_t)inst;
        }
    }
    *src = "sysfs";
    long gc = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    gc = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    if (gc > 0 && (size_t)gc > best) {
        best = (size_t)gc;
        *src = "getconf LEVEL3_CACHE_SIZE";
    }
    if (!best) {
        best = (size_t)32 << 20;
        *src = "unknown, assumed";
    }
    return best;
}

typedef struct {
    double *a, *b, *c;
    size_t lo, hi;
    float fma_out;
    int mode;
} job;

#if defined(__x86_64__)
#include <immintrin.h>
__attribute__((target("avx2,fma"))) static float fma_loop(void) {
    __m256 acc[8];
    for (int k = 0; k < 8; k++) acc[k] = _mm256_set1_ps((float)k * 1e-3f);
    const __m256 m = _mm256_set1_ps(0.999999f), add = _mm256_set1_ps(1e-7f);
    for (long i = 0; i < 20000000L; i++)
        for (int k = 0; k < 8; k++) acc[k] = _mm256_fmadd_ps(acc[k], m, add);
    float s = 0, out[8];
    for (int k = 0; k < 8; k++) {
        _mm256_storeu_ps(out, acc[k]);
        s += out[0];
    }
    return s;
}
#define FMA_FLOPS (20000000.0 * 8 * 16)
#else
static float fma_loop(void) { return 0; }
#define FMA_FLOPS 0.0
#endif

static void *run(void *p) {
    job *j = p;
    if (j->mode == 0)
        for (size_t i = j->lo; i < j->hi; i++) j->a[i] = j->b[i] + 3.0 * j->c[i];
    else
        j->fma_out = fma_loop();
    return NULL;
}

static double timed(job *jobs, int t) {
    pthread_t th[64];
    double t0 = etok_mono_s();
    for (int i = 1; i < t; i++) pthread_create(&th[i], NULL, run, &jobs[i]);
    run(&jobs[0]);
    for (int i = 1; i < t; i++) pthread_join(th[i], NULL);
    return etok_mono_s() - t0;
}

int main(int argc, char **argv) {
    int t = 2, bw_only = 0;
    size_t llc = 0, own_llc = 0;
    const char *llc_src = "-l";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-t") && i + 1 < argc) t = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-b")) bw_only = 1;
        else if (!strcmp(argv[i], "-l") && i + 1 < argc) llc = (size_t)strtoull(argv[++i], NULL, 10);
        else {
            fprintf(stderr, "usage: bench_triad [-t THREADS] [-b] [-l LLC_BYTES]\n");
            return 2;
        }
    }
    if (t < 1 || t > 64) return 2;
    if (!llc) llc = llc_bytes(&llc_src, &own_llc);
    size_t total = llc * 4;
    if (total < ((size_t)192 << 20)) total = (size_t)192 << 20;
    const size_t n_elems = total / 3 / sizeof(double);
    double *a = malloc(n_elems * sizeof(double)), *b = malloc(n_elems * sizeof(double)),
           *c = malloc(n_elems * sizeof(double));
    if (!a || !b || !c) {
        fprintf(stderr, "bench_triad: cannot allocate 3 x %zu MiB\n", n_elems * sizeof(double) >> 20);
        free(a);
        free(b);
        free(c);
        return 1;
    }
    for (size_t i = 0; i < n_elems; i++) {
        a[i] = 0;
        b[i] = 1;
        c[i] = 2;
    }
    job jobs[64];
    double best = 1e30, best_fma = 1e30;
    for (int i = 0; i < t; i++) {
        jobs[i] = (job){a, b, c, n_elems * (size_t)i / (size_t)t, n_elems * (size_t)(i + 1) / (size_t)t, 0, 0};
    }
    for (int r = 0; r < 5; r++) {
        double s = timed(jobs, t);
        if (s < best) best = s;
    }
    double bw = 3.0 * 8.0 * (double)n_elems / best;
    printf("triad bandwidth (measured, %d threads, best of 5, arrays 3 x %zu MiB = %.1fx the %zu MiB LLC from %s): %.1f GB/s\n",
           t, n_elems * sizeof(double) >> 20, 3.0 * (double)(n_elems * sizeof(double)) / (double)llc, llc >> 20,
           llc_src, bw / 1e9);
    if (own_llc) printf("last-level cache of one core (sysfs, cpu0): %zu MiB\n", own_llc >> 20);
    if (!bw_only) {
        for (int i = 0; i < t; i++) jobs[i].mode = 1;
        for (int r = 0; r < 5; r++) {
            double s = timed(jobs, t);
            if (s < best_fma) best_fma = s;
        }
        printf("FMA peak F32 (measured, %d threads, best of 5): %.1f GFLOP/s\n", t, FMA_FLOPS * t / best_fma / 1e9);
    }
    printf("(check %g)\n", (double)jobs[0].fma_out + a[n_elems / 2]);
    free(a);
    free(b);
    free(c);
    return 0;
}
