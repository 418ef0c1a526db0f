/* attn_kernels.c — the attention kernels over an F16 KV cache at one decode step: one query
 * head at a time (etok_attn_scores + etok_attn_accum per head, each cached row converted once
 * per query head: the engine before issue 14) against a KV head's group at once
 * (etok_attn_scores_multi + etok_attn_accum_multi: each row converted once per KV head).
 * Shapes default to SmolLM2-135M (30 layers, 9 query heads over 3 KV heads of 64) at depth
 * 512: the cache is 30 layers of 512 rows, 11.8 MB of K and V, read once per "token" as a
 * decode step does. Each layer's cache is laid out as the engine's (model.h): a KV head's rows
 * one after another, so a kernel reads one contiguous run per KV head. Rounds alternate the two ways; each round times >= 0.2 s of this thread's
 * CPU time (a loaded machine's waiting is left out; cache and memory contention are not). The
 * softmax between the two halves is not timed (it is the same code either way). One thread.
 * With -1 1 the one-token kernels instead (a decode step's: ggml_vec_dot_f16's order, vmath.h):
 * etok_attn_scores_1tok + etok_attn_accum_1tok per query head against their _multi versions;
 * with -1 2 the two halves of the grouped one-token kernels apart: etok_attn_scores_1tok_multi
 * alone against etok_attn_accum_1tok_multi alone.
 * With -X MB every step first reads an MB-sized buffer (as a decode step streams the weights,
 * which evicts the cache from the caches); both ways include that same time.
 * With -q 1 a Q8_0 cache instead: K.q as one dispatched dot (etok_vec_dot_multi) per position
 * for the group (the engine before the grouped kernel) against etok_attn_scores_q8_0 (each K
 * block read once for the group, eight positions reduced at once); the V sum is
 * etok_attn_accum_q8_0 both ways. With -q 2 the two halves of the grouped Q8_0 kernels apart:
 * etok_attn_scores_q8_0 alone against etok_attn_accum_q8_0 alone (no softmax between).
 * usage: bench_attn_kernels [-d 512] [-L 30] [-H 9] [-K 3] [-D 64] [-R 7] [-1 0|1|2] [-X 0] [-q 0|1|2] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/quant.h"
#include "engine/vmath.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static volatile float sink;

int main(int argc, char **argv) {
    int depth = 512, L = 30, H = 9, K = 3, D = 64, rounds = 7, one = 0, evict_mb = 0, q8 = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        int v = atoi(argv[i + 1]);
        if (!strcmp(argv[i], "-d")) depth = v;
        else if (!strcmp(argv[i], "-L")) L = v;
        else if (!strcmp(argv[i], "-H")) H = v;
        else if (!strcmp(argv[i], "-K")) K = v;
        else if (!strcmp(argv[i], "-D")) D = v;
        else if (!strcmp(argv[i], "-R")) rounds = v;
        else if (!strcmp(argv[i], "-1")) one = v;
        else if (!strcmp(argv[i], "-X")) evict_mb = v;
        else if (!strcmp(argv[i], "-q")) q8 = v;
        else {
            fprintf(stderr, "usage: %s [-d DEPTH] [-L LAYERS] [-H HEADS] [-K KV_HEADS] [-D HEAD_DIM] [-R ROUNDS] [-1 0|1|2] [-X MB] [-q 0|1|2]\n", argv[0]);
            return 2;
        }
    }
    if (depth < 1 || L < 1 || K < 1 || H < K || H % K || D < 8 || D > 512 || D % 8 || rounds < 1 || rounds > 101 ||
        (q8 && (D % 32 || one))) {
        fprintf(stderr, "%s: bad shape\n", argv[0]);
        return 2;
    }
    const int G = H / K;
    const size_t kvd = (size_t)K * D, rb = q8 ? kvd / 32 * sizeof(etok_block_q8_0) : kvd * 2,
                 hb = q8 ? (size_t)D / 32 * sizeof(etok_block_q8_0) : (size_t)D * 2, layer_bytes = (size_t)depth * rb;
    etok_block_q8a *qa = malloc((size_t)H * D / 32 * sizeof *qa);
    uint8_t *kc = malloc((size_t)L * layer_bytes), *vc = malloc((size_t)L * layer_bytes);
    float *q = malloc((size_t)H * D * sizeof *q), *sc = malloc((size_t)H * depth * sizeof *sc),
          *out = malloc((size_t)H * D * sizeof *out), *row = malloc(kvd * sizeof *row);
    double *t[2] = {malloc((size_t)rounds * sizeof(double)), malloc((size_t)rounds * sizeof(double))};
    if (!kc || !vc || !q || !sc || !out || !row || !t[0] || !t[1] || !qa) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    uint64_t s = 5;
#define RND() (s = s * 6364136223846793005ull + 1442695040888963407ull, (float)((s >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f)
    for (size_t r = 0; r < (size_t)L * depth; r++) {
        for (size_t i = 0; i < kvd; i++) row[i] = RND();
        if (q8) etok_quantize_row(ETOK_T_Q8_0, row, kc + r * rb, (int64_t)kvd);
        else etok_f32_to_f16_row(row, kc + r * rb, (int)kvd);
        for (size_t i = 0; i < kvd; i++) row[i] = RND();
        if (q8) etok_quantize_row(ETOK_T_Q8_0, row, vc + r * rb, (int64_t)kvd);
        else etok_f32_to_f16_row(row, vc + r * rb, (int)kvd);
    }
    for (int i = 0; i < H * D; i++) q[i] = RND();
    etok_round_f16(q, H * D);
    etok_quantize_q8a(q, qa, (int64_t)H * D);
    for (int i = 0; i < H * depth; i++) sc[i] = 1.0f / (float)depth;
    const size_t ev_n = (size_t)(evict_mb < 0 ? 0 : evict_mb) * 1048576 / sizeof(float);
    float *ev = ev_n ? malloc(ev_n * sizeof *ev) : NULL;
    if (ev_n && !ev) {
        fprintf(stderr, "%s: out of memory\n", argv[0]);
        return 1;
    }
    for (size_t i = 0; i < ev_n; i++) ev[i] = (float)(i & 255);
    int reps = 1;
    for (int k = 0; k < rounds; k++)
        for (int way = 0; way < 2; way++) {
            const int w = (k % 2) ? 1 - way : way; /* alternate which way runs first */
            for (;;) {
                double t0 = now_s();
                for (int rep = 0; rep < reps; rep++) {
                    float e = 0;
                    for (size_t i = 0; i < ev_n; i += 16) e += ev[i];
                    sink = e;
                    for (int l = 0; l < L; l++)
                        for (int kh = 0; kh < K; kh++) {
                            const uint8_t *k0 = kc + (size_t)l * layer_bytes + (size_t)kh * (size_t)depth * hb,
                                          *v0 = vc + (size_t)l * layer_bytes + (size_t)kh * (size_t)depth * hb;
                            const float *qg = q + (size_t)kh * G * D;
                            float *og = out + (size_t)kh * G * D;
                            const int fp = 0;
                            if (q8) {
                                const etok_block_q8a *qg8 = qa + (size_t)kh * G * D / 32;
                                if (q8 == 2) { /* the two halves apart: K.q (way 0) or the V sum (way 1) */
                                    if (w == 0) etok_attn_scores_q8_0(qg8, G, k0, hb, depth, D, 0.125f, sc, (size_t)depth, v0);
                                    else etok_attn_accum_q8_0(sc, (size_t)depth, G, 1, &v0, &depth, hb, D, og);
                                    continue;
                                }
                                if (w == 0) {
                                    for (int j = 0; j < depth; j++) {
                                        float *o = sc + j;
                                        etok_vec_dot_multi(ETOK_T_Q8_0, k0 + (size_t)j * hb, qg8, NULL, D, G, o, (size_t)depth);
                                        for (int h = 0; h < G; h++) o[(size_t)h * depth] *= 0.125f;
                                    }
                                } else {
                                    etok_attn_scores_q8_0(qg8, G, k0, hb, depth, D, 0.125f, sc, (size_t)depth, v0);
                                }
                                for (int h = 0; h < G * depth; h++) sc[h] = 1.0f / (float)depth; /* the softmax's place */
                                etok_attn_accum_q8_0(sc, (size_t)depth, G, 1, &v0, &depth, hb, D, og);
                            } else if (one == 2) { /* the two halves apart: K.q (way 0) or the V sum (way 1) */
                                if (w == 0) etok_attn_scores_1tok_multi(qg, G, k0, hb, depth, D, 0.125f, sc, (size_t)depth, v0);
                                else etok_attn_accum_1tok_multi(sc, (size_t)depth, G, 1, &v0, &fp, &depth, hb, D, og);
                                continue;
                            } else if (one && w == 0) {
                                for (int h = 0; h < G; h++) {
                                    etok_attn_scores_1tok(qg + (size_t)h * D, k0, hb, depth, D, 0.125f, sc + (size_t)h * depth);
                                    etok_attn_accum_1tok(sc + (size_t)h * depth, 1, &v0, &fp, &depth, hb, D, og + (size_t)h * D);
                                }
                            } else if (one) {
                                etok_attn_scores_1tok_multi(qg, G, k0, hb, depth, D, 0.125f, sc, (size_t)depth, v0);
                                etok_attn_accum_1tok_multi(sc, (size_t)depth, G, 1, &v0, &fp, &depth, hb, D, og);
                            } else if (w == 0) {
                                for (int h = 0; h < G; h++) {
                                    etok_attn_scores(ETOK_T_F16, qg + (size_t)h * D, k0, hb, depth, D, 0.125f, sc + (size_t)h * depth);
                                    etok_attn_accum(ETOK_T_F16, sc + (size_t)h * depth, v0, hb, 0, depth, D, og + (size_t)h * D);
                                }
                            } else {
                                etok_attn_scores_multi(ETOK_T_F16, qg, G, k0, hb, depth, D, 0.125f, sc, (size_t)depth);
                                etok_attn_accum_multi(ETOK_T_F16, sc, (size_t)depth, G, 1, &v0, &fp, &depth, hb, D, og);
                            }
                            for (int h = 0; h < G * depth; h++) sc[h] = 1.0f / (float)depth; /* not timed apart: cheap */
                        }
                }
                double dt = now_s() - t0;
                sink = out[0];
                if (dt >= 0.2) {
                    t[w][k] = dt / reps;
                    break;
                }
                reps = dt > 0.01 ? (int)(reps * 0.25 / dt) + 1 : reps * 8;
            }
        }
    qsort(t[0], (size_t)rounds, sizeof(double), cmp_d);
    qsort(t[1], (size_t)rounds, sizeof(double), cmp_d);
    printf("# bench_attn_kernels: %s cache, %d layers x %d KV heads (groups of %d query heads) x depth %d x head %d "
           "(%.1f MB K+V), %s kernels, %s, 1 thread, %d MB read before each step, thread CPU time per decode step, median [min..max] of %d rounds\n",
           q8 ? "Q8_0" : "F16", L, K, G, depth, D, 2.0 * L * layer_bytes / 1e6, q8 ? "Q8_0 scores" : one ? "one-token" : "batch", etok_simd_active() ? "AVX2" : "scalar", evict_mb, rounds);
    if (one == 2) {
        printf("K.q (etok_attn_scores_1tok_multi):   %.3f ms [%.3f..%.3f]\n", t[0][rounds / 2] * 1e3, t[0][0] * 1e3, t[0][rounds - 1] * 1e3);
        printf("V sum (etok_attn_accum_1tok_multi): %.3f ms [%.3f..%.3f]\n", t[1][rounds / 2] * 1e3, t[1][0] * 1e3, t[1][rounds - 1] * 1e3);
        goto done;
    }
    if (q8 == 2) {
        printf("K.q (etok_attn_scores_q8_0):   %.3f ms [%.3f..%.3f]\n", t[0][rounds / 2] * 1e3, t[0][0] * 1e3, t[0][rounds - 1] * 1e3);
        printf("V sum (etok_attn_accum_q8_0): %.3f ms [%.3f..%.3f]\n", t[1][rounds / 2] * 1e3, t[1][0] * 1e3, t[1][rounds - 1] * 1e3);
        goto done;
    }
    printf(q8 ? "per position (dispatched dot per pos):  %.3f ms [%.3f..%.3f]\n" : "per query head (row converted per head): %.3f ms [%.3f..%.3f]\n", t[0][rounds / 2] * 1e3, t[0][0] * 1e3,
           t[0][rounds - 1] * 1e3);
    printf(q8 ? "grouped (8 positions per reduction):     %.3f ms [%.3f..%.3f]\n" : "per KV head (row converted once):        %.3f ms [%.3f..%.3f]\n", t[1][rounds / 2] * 1e3, t[1][0] * 1e3,
           t[1][rounds - 1] * 1e3);
    printf("speed-up: %.2fx\n", t[0][rounds / 2] / t[1][rounds / 2]);
done:
    free(kc);
    free(vc);
    free(q);
    free(sc);
    free(out);
    free(row);
    free(qa);
    free(ev);
    free(t[0]);
    free(t[1]);
    return 0;
}
