/* triad.c — the machine's two roofs for the decode analysis in bench/engine.sh:
 *  - a STREAM-like triad a[i] = b[i] + s*c[i] over 3 x 64 MiB arrays with T threads (best of
 *    5; bytes counted as 3 x 8 per element, no write-allocate credit): memory bandwidth;
 *  - an FMA peak: T threads each running 8 independent AVX2 FMA chains (16 FLOP per FMA
 *    instruction on 8 floats), best of 5.
 * Both are measured on this machine now; the machine may be shared, so they are lower
 * bounds of the hardware's roofs. usage: bench_triad [-t THREADS] */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/util.h"

#define N_ELEMS (8u << 20) /* doubles per array: 64 MiB */

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
    int t = 2;
    if (argc == 3 && !strcmp(argv[1], "-t")) t = atoi(argv[2]);
    if (t < 1 || t > 64) return 2;
    double *a = malloc(N_ELEMS * sizeof(double)), *b = malloc(N_ELEMS * sizeof(double)),
           *c = malloc(N_ELEMS * sizeof(double));
    if (!a || !b || !c) return 1;
    for (size_t i = 0; i < N_ELEMS; i++) {
        a[i] = 0;
        b[i] = 1;
        c[i] = 2;
    }
    job jobs[64];
    double best = 1e30, best_fma = 1e30;
    for (int i = 0; i < t; i++) {
        jobs[i] = (job){a, b, c, N_ELEMS * (size_t)i / (size_t)t, N_ELEMS * (size_t)(i + 1) / (size_t)t, 0, 0};
    }
    for (int r = 0; r < 5; r++) {
        double s = timed(jobs, t);
        if (s < best) best = s;
    }
    for (int i = 0; i < t; i++) jobs[i].mode = 1;
    for (int r = 0; r < 5; r++) {
        double s = timed(jobs, t);
        if (s < best_fma) best_fma = s;
    }
    double bw = 3.0 * 8.0 * N_ELEMS / best, peak = FMA_FLOPS * t / best_fma;
    printf("triad bandwidth (measured, %d threads, best of 5): %.1f GB/s\n", t, bw / 1e9);
    printf("FMA peak F32 (measured, %d threads, best of 5): %.1f GFLOP/s\n", t, peak / 1e9);
    printf("(check %g)\n", (double)jobs[0].fma_out + a[N_ELEMS / 2]);
    free(a);
    free(b);
    free(c);
    return 0;
}
