/* quant_kernels.c — speed of the weight x activation dot kernels per block format: the scalar
 * reference (etok_vec_dot_ref, one row at a time) against the run-time pick
 * (etok_matmul_rows with one activation vector, the decode matvec: the detected kernel level,
 * AVX2 or AVX-512, or the one given with -I).
 *
 * For each format a ROWS x N matrix of random weights (quantised with etok_quantize_row) is
 * multiplied by one random activation vector (quantised to q8a once, outside the timing).
 * Each round times enough repetitions to take >= 0.2 s of this thread's CPU time (not wall
 * time, so a loaded machine's waiting is left out); the median over the rounds is
 * reported with the min..max spread, as weight GB/s (bytes of the stored rows read per second)
 * and rows/s. The default matrix (1024 x 4096) is a few MB per format, so mostly cache
 * resident: this measures the kernels' compute rate, not memory bandwidth. One thread.
 * The load average at the start and end is printed: on a shared machine the numbers are
 * lower bounds of what the kernels do alone.
 * -x NX: NX activation vectors per call (a prefill step's tokens: the dispatch then uses the
 * one-row-times-4-vectors kernels), GB/s = the rows' bytes per call / time, and rows/s counts
 * row x vector dots.
 * --q8k: the K-quant formats through the engine's path for them (quant_k.c: Q8_K activations,
 * llama.cpp's kernels; scalar = etok_vec_dot_q8k_ref, dispatch = etok_matmul_rows_q8k); the
 * other formats as without it.
 * -I LEVEL: the kernel level of the dispatch column (scalar, avx2, avx512; default the detected
 * level, or ETOK_ISA's): forced with etok_isa_force, refused (exit 2) above the detected level.
 * Measure avx2 against avx512 on an AVX-512 machine by running both (the results are the same
 * bits; only the time differs). An emulator's timing means nothing: measure on hardware.
 * usage: bench_quant_kernels [-n 4096] [-r 1024] [-R 5] [-x 1] [-f Q2_K,Q3_K] [-I avx2] [--scalar-only] [--q8k] [--q4_0-file]
 * [--q5_0-file] [--iq4_nl-file]
 * (-f: only these formats, by name). Q4_0 with a row count that is a multiple of 8 goes through
 * llama.cpp's 8-row order as in the engine: the matrix repacked into etok's Q4_0x8 layout
 * (outside the timing; etok_matmul_q4_0x8), or with --q4_0-file the file's layout
 * (etok_matmul_rows_q4_0_8x8, the kernel before the repacking); an -r that is not a multiple
 * of 8 measures the general Q4_0 kernel instead. Q5_0 and IQ4_NL likewise at every SIMD level
 * (as model.c repacks them): repacked into etok's Q5_0x8 / IQ4_NLx8 layouts (etok_matmul_q50x8
 * / etok_matmul_iq4nlx8), or with --q5_0-file / --iq4_nl-file the file's layout
 * (etok_matmul_rows). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant.h"
#include "engine/quant_k.h"

/* This thread's CPU time: the machine may be shared (other processes only lengthen the wall
 * time; cache and memory contention still lower these rates). */
static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void loadavg(char *buf, size_t n) {
    FILE *f = fopen("/proc/loadavg", "r");
    snprintf(buf, n, "unknown");
    if (!f) return;
    if (fgets(buf, (int)n, f)) buf[strcspn(buf, "\n")] = 0;
    fclose(f);
}

static volatile float sink;
static const etok_block_q8k *g_xk; /* non-NULL with --q8k */
static const uint8_t *g_x8;        /* the Q4_0 matrix repacked (Q4_0x8); NULL with --q4_0-file */
static const uint8_t *g_q50x8;     /* the Q5_0 matrix repacked (Q5_0x8); NULL with --q5_0-file */

/* One timed round: seconds per matvec. */
static double round_time(int simd, uint32_t t, const uint8_t *w, size_t rb, int rows, const etok_block_q8a *xq,
                         const float *xf, int n, int nx, float *out) {
    int reps = 1;
    for (;;) {
        double t0 = now_s();
        for (int k = 0; k < reps; k++) {
            if (simd && t == ETOK_T_IQ4_NL && g_x8) { /* repacked at load, as the engine does (model.c) */
                etok_matmul_iq4nlx8(g_x8, 0, rows, xq, n, nx, out, (size_t)rows);
            } else if (simd && etok_q4_0_8x8_applies(t, rows, n)) { /* as the engine picks (model.c) */
                if (g_x8)
                    etok_matmul_q4_0x8(g_x8, 0, rows, xq, n, nx, out, (size_t)rows);
                else
                    etok_matmul_rows_q4_0_8x8(w, rb, 0, rows, xq, n, nx, out, (size_t)rows);
            } else if (simd && g_q50x8) {
                etok_matmul_q50x8(g_q50x8, 0, rows, xq, n, nx, out, (size_t)rows);
            } else if (g_xk && etok_type_uses_q8k(t)) {
                if (simd)
                    etok_matmul_rows_q8k(t, w, rb, 0, rows, g_xk, n, nx, out, (size_t)rows);
                else
                    for (int j = 0; j < nx; j++)
                        for (int r = 0; r < rows; r++)
                            out[(size_t)j * rows + r] =
                                etok_vec_dot_q8k_ref(t, w + (size_t)r * rb, g_xk + (size_t)j * (n / 256), n);
            } else if (simd)
                etok_matmul_rows(t, w, rb, 0, rows, xq, xf, n, nx, out, (size_t)rows);
            else
                for (int j = 0; j < nx; j++)
                    for (int r = 0; r < rows; r++)
                        out[(size_t)j * rows + r] = etok_vec_dot_ref(t, w + (size_t)r * rb, xq + (size_t)j * (n / 32),
                                                                     xf + (size_t)j * n, n);
            sink = out[k % (rows * nx)];
        }
        double dt = now_s() - t0;
        if (dt >= 0.2 || reps >= (1 << 20)) return dt / reps;
        reps = dt > 0.01 ? (int)(reps * 0.25 / dt) + 1 : reps * 8;
    }
}

int main(int argc, char **argv) {
    int n = 4096, rows = 1024, rounds = 5, scalar_only = 0, nx = 1, q8k = 0, q4_0_file = 0, q5_0_file = 0, iq4_file = 0;
    const char *only = NULL, *level_name = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-n") && i + 1 < argc) n = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-r") && i + 1 < argc) rows = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-R") && i + 1 < argc) rounds = atoi(argv[++i]);
        else if (!strcmp(argv[i], "-f") && i + 1 < argc) only = argv[++i];
        else if (!strcmp(argv[i], "-x") && i + 1 < argc) nx = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--scalar-only")) scalar_only = 1;
        else if (!strcmp(argv[i], "--q8k")) q8k = 1;
        else if (!strcmp(argv[i], "--q4_0-file")) q4_0_file = 1;
        else if (!strcmp(argv[i], "--q5_0-file")) q5_0_file = 1;
        else if (!strcmp(argv[i], "--iq4_nl-file")) iq4_file = 1;
        else if (!strcmp(argv[i], "-I") && i + 1 < argc) level_name = argv[++i];
        else {
            fprintf(stderr, "usage: %s [-n COLS (multiple of 256)] [-r ROWS] [-R ROUNDS] [-x NX] [-f FMT,FMT...] "
                            "[-I scalar|avx2|avx512|amx] [--scalar-only] [--q8k] [--q4_0-file] [--q5_0-file] [--iq4_nl-file]\n", argv[0]);
            return 2;
        }
    }
    char err[256];
    if (etok_isa_from_env(err, sizeof err)) {
        fprintf(stderr, "%s: %s\n", argv[0], err);
        return 3;
    }
    if (level_name) {
        const int level = etok_isa_parse(level_name);
        if (level < 0) {
            fprintf(stderr, "%s: -I '%s': unknown kernel level (scalar, avx2, avx512 or amx)\n", argv[0], level_name);
            return 2;
        }
        if (etok_isa_force(level, err, sizeof err)) {
            fprintf(stderr, "%s: -I %s: %s\n", argv[0], level_name, err);
            return 2;
        }
    }
    if (n < 256 || n % 256 || rows < 1 || rounds < 1 || rounds > 101 || nx < 1 || nx > 64) {
        fprintf(stderr, "%s: -n must be a positive multiple of 256, -r >= 1, 1 <= -R <= 101, 1 <= -x <= 64\n", argv[0]);
        return 2;
    }
    const uint32_t types[] = {ETOK_T_Q8_0, ETOK_T_Q4_0, ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_IQ4_NL,
                              ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q4_K, ETOK_T_Q5_K, ETOK_T_Q6_K, ETOK_T_F16,
                              ETOK_T_BF16, ETOK_T_F32};
    float *wf = malloc((size_t)n * sizeof *wf), *x = malloc((size_t)nx * (size_t)n * sizeof *x),
          *out = malloc((size_t)nx * (size_t)rows * sizeof *out);
    uint8_t *w = malloc((size_t)rows * (size_t)n * 4), *x8 = malloc((size_t)rows * (size_t)n * 4);
    etok_block_q8a *xq = malloc((size_t)nx * (size_t)(n / 32) * sizeof *xq);
    double *ts = malloc((size_t)rounds * sizeof *ts);
    if (!wf || !x || !out || !w || !x8 || !xq || !ts) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    uint64_t s = 7;
#define RND() (s = s * 6364136223846793005ull + 1442695040888963407ull, (float)((s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f)
    for (int i = 0; i < nx * n; i++) x[i] = RND();
    for (int j = 0; j < nx; j++) etok_quantize_q8a(x + (size_t)j * n, xq + (size_t)j * (n / 32), n);
    etok_block_q8k *xk = NULL;
    if (q8k) {
        xk = malloc((size_t)nx * (size_t)(n / 256) * sizeof *xk);
        if (!xk) {
            fprintf(stderr, "%s: out of memory\n", argv[0]);
            return 1;
        }
        etok_quantize_q8k(x, xk, (int64_t)nx * n);
        g_xk = xk;
    }
    char la0[128], la1[128];
    loadavg(la0, sizeof la0);
    printf("# bench_quant_kernels: %d x %d matrix x %d vector(s), 1 thread, thread CPU time, median of %d rounds (>= 0.2 s "
           "each) [min..max]\n", rows, n, nx, rounds);
    const int q50x8 = !q5_0_file && etok_simd_active() && etok_q50x8_applies(ETOK_T_Q5_0, rows, n);
    printf("# dispatch kernel level: %s (detected on this CPU: %s%s); Q4_0 8k rows: %s; Q5_0: %s; load average at start: %s\n",
           etok_isa_name(etok_isa_active()), etok_isa_name(etok_isa_detected()),
           level_name ? ", forced with -I" : getenv("ETOK_ISA") ? ", forced with ETOK_ISA" : "",
           q4_0_file ? "file layout (etok_matmul_rows_q4_0_8x8)" : "repacked Q4_0x8 (etok_matmul_q4_0x8)",
           q50x8 ? "repacked Q5_0x8 (etok_matmul_q50x8)" : "file layout (etok_matmul_rows)", la0);
    printf("# IQ4_NL 8k rows: %s\n",
           iq4_file ? "file layout (etok_matmul_rows)" : "repacked IQ4_NLx8 (etok_matmul_iq4nlx8)");
    printf("%-7s %7s | %-34s | %-34s | %s\n", "format", "MB", "scalar GB/s [min..max] (rows/s)", "dispatch GB/s [min..max] (rows/s)",
           "speed-up");
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        if (only) { /* exact name in the comma-separated list */
            const char *nm = etok_type_name(t), *p = strstr(only, nm);
            size_t ln = strlen(nm);
            while (p && !((p == only || p[-1] == ',') && (p[ln] == 0 || p[ln] == ','))) p = strstr(p + 1, nm);
            if (!p) continue;
        }
        const size_t rb = etok_type_row_bytes(t, n);
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < n; i++) wf[i] = RND() * 0.1f;
            etok_quantize_row(t, wf, w + (size_t)r * rb, n);
        }
        g_x8 = g_q50x8 = NULL;
        if (t == ETOK_T_Q4_0 && !q4_0_file && etok_q4_0_8x8_applies(t, rows, n)) {
            etok_q4_0x8_pack(w, rb, rows, n, x8);
            g_x8 = x8;
        }
        if (t == ETOK_T_Q5_0 && q50x8) {
            etok_q50x8_pack(w, rb, rows, n, x8);
            g_q50x8 = x8;
        }
        if (t == ETOK_T_IQ4_NL && !iq4_file && etok_simd_active() && etok_iq4nlx8_applies(t, rows, n)) {
            etok_iq4nlx8_pack(w, rb, rows, n, x8);
            g_x8 = x8;
        }
        const double mb = (double)rb * rows / 1e6;
        double med[2] = {0, 0}, lo[2] = {0, 0}, hi[2] = {0, 0};
        for (int simd = 0; simd < 2; simd++) {
            if (simd && scalar_only) break;
            for (int k = 0; k < rounds; k++) ts[k] = round_time(simd, t, w, rb, rows, xq, x, n, nx, out);
            qsort(ts, (size_t)rounds, sizeof *ts, cmp_d);
            med[simd] = ts[rounds / 2];
            lo[simd] = ts[0];
            hi[simd] = ts[rounds - 1];
        }
        char c0[64], c1[64];
        snprintf(c0, sizeof c0, "%6.2f [%5.2f..%5.2f] (%8.3g)", mb / 1e3 / med[0], mb / 1e3 / hi[0], mb / 1e3 / lo[0],
                 (double)rows * nx / med[0]);
        if (scalar_only)
            snprintf(c1, sizeof c1, "-");
        else
            snprintf(c1, sizeof c1, "%6.2f [%5.2f..%5.2f] (%8.3g)", mb / 1e3 / med[1], mb / 1e3 / hi[1], mb / 1e3 / lo[1],
                     (double)rows * nx / med[1]);
        char sp[32];
        if (scalar_only)
            snprintf(sp, sizeof sp, "-");
        else
            snprintf(sp, sizeof sp, "%.1fx", med[0] / med[1]);
        printf("%-7s %7.2f | %-34s | %-34s | %s\n", etok_type_name(t), mb, c0, c1, sp);
    }
    loadavg(la1, sizeof la1);
    printf("# load average at end: %s\n", la1);
    free(wf);
    free(x);
    free(out);
    free(w);
    free(x8);
    free(xq);
    free(xk);
    free(ts);
    return 0;
}
