/* quant_q8_0.c — Q8_0 weight rows against q8a activations, several rows and several tokens
 * per register tile (prefill: etok_matmul_rows sends Q8_0 with 2+ tokens here; one token stays
 * on quant_avx2.c's 4-row decode kernel, the same bits), and the scalar definition of those bits.
 *
 * Why: the general AVX2 path (quant_avx2.c) takes one weight row against 4 activation vectors
 * at a time, so every activation block is re-read from L2 for every row (perf: most of the
 * prefill time went to those loads). Here an R x T tile (R rows, T tokens) loads each weight
 * block once for T tokens and each activation block once for R rows, and the rows of a chunk
 * are walked for a bounded group of tokens at a time, so the group's activations stay in
 * L1/L2 while the chunk's weights stay in L2. Measured (bench/engine_peer.md): 4 x 3 tiles
 * take about 20% less time per (row, token, block) than 1 x 4 and prefill gains 20-35%; a
 * decode version (4 x 1, prefetching ahead) was not measurably faster than the existing one.
 *
 * The bits: each output is what llama.cpp c392e5094 computes for Q8_0 x Q8_0 on AVX2 (tinyBLAS
 * for a batch, ggml_vec_dot_q8_0_q8_0 for one token; both the same order) and what etok's
 * dot_q8_0 computes: 8 int32 lanes per block, lane k the exact sum of the products of values
 * 4k..4k+3; per block acc_k = fma(d_w * d_a, (float)lane_k, acc_k) from 0, blocks in order;
 * then the 8 lanes summed as etok_hsum_ps ((a_k + a_{k+4}) pairwise, ggml's hsum_float_8).
 * The tiling changes which outputs are computed together, never an output's operations, so
 * any tile shape, row range and token count gives the same bits (tests/unit/test_quant_q8_0.c
 * against etok_matmul_q8_0_ref, the scalar definition). The scale d_w * d_a is formed for 4
 * rows at once by one vector multiply (each lane the same IEEE product as the scalar one).
 *
 * Owns: etok_matmul_q8_0 (dispatch: AVX2 when active, else the reference) and its reference.
 * Does not own: the Q8_0 block layout or the activation quantiser (quant.c, quant_avx2.c), the
 * row split across threads (model.c). */
#include "engine/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant_simd.h"

/* The bits of one output: 8 lanes of 4-product integer sums, a float chain per lane. */
static float row_ref(const etok_block_q8_0 *b, const etok_block_q8a *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const float scale = etok_f16_to_f32(b[i].d) * y[i].d;
        for (int k = 0; k < 8; k++) {
            int s = 0;
            for (int j = 4 * k; j < 4 * k + 4; j++) s += (int)b[i].qs[j] * (int)y[i].qs[j];
            acc[k] = fmaf(scale, (float)s, acc[k]);
        }
    }
    float h[4];
    for (int k = 0; k < 4; k++) h[k] = acc[k + 4] + acc[k];
    return (h[0] + h[2]) + (h[1] + h[3]);
}

void etok_matmul_q8_0_ref(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                          int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                row_ref((const etok_block_q8_0 *)(const void *)(w + (size_t)r * row_bytes), xq + (size_t)j * (size_t)nb, nb);
}

#if ETOK_HAVE_X86_SIMD

#define TGT ETOK_AVX2_TARGET
#define KI static inline __attribute__((always_inline)) TGT

/* R rows (R <= 4) x T tokens, all nb blocks. p: row 0's first byte; y: token 0's blocks,
 * ys blocks apart. The signed products by the sign trick: |w| (u8) times a with w's sign
 * (s8), maddubs to int16 pairs (|128 * 127 * 2| fits), madd by 1 to the int32 lanes: the exact
 * 4-product sums of lane k. */
KI void tile(const uint8_t *p, size_t rb, const float *dwf, const etok_block_q8a *y, size_t ys, int64_t nb, const int R,
             const int T, float *out, size_t out_stride) {
    __m256 acc[4][4];
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) acc[r][t] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; i++) {
        const size_t off = (size_t)i * sizeof(etok_block_q8_0);
        const __m128 dw = _mm_loadu_ps(dwf + 4 * i); /* d_w of the R rows (lanes past R unused) */
        __m256i a[4];
        float sc[4][4];
        for (int t = 0; t < T; t++) {
            const etok_block_q8a *yt = y + (size_t)t * ys + i;
            a[t] = _mm256_loadu_si256((const __m256i *)(const void *)yt->qs);
            _mm_storeu_ps(sc[t], _mm_mul_ps(dw, _mm_set1_ps(yt->d)));
        }
        for (int r = 0; r < R; r++) {
            const __m256i wq = _mm256_loadu_si256((const __m256i *)(const void *)(p + (size_t)r * rb + off + 2));
            const __m256i u = _mm256_sign_epi8(wq, wq);
            for (int t = 0; t < T; t++) {
                const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(a[t], wq)), ones);
                acc[r][t] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[t][r]), _mm256_cvtepi32_ps(s32), acc[r][t]);
            }
        }
    }
    for (int r = 0; r < R; r++)
        for (int t = 0; t < T; t++) out[(size_t)t * out_stride + (size_t)r] = etok_hsum_ps(acc[r][t]);
}

/* The F16 scales of rows p .. p + (R-1) rb, blocks [0, nb), as floats: dwf[4 i + r]. */
static TGT void scales4(const uint8_t *p, size_t rb, int R, int64_t nb, float *dwf) {
    for (int64_t i = 0; i < nb; i++)
        for (int r = 0; r < 4; r++) {
            etok_f16 h;
            memcpy(&h, p + (size_t)(r < R ? r : 0) * rb + (size_t)i * sizeof(etok_block_q8_0), 2);
            dwf[4 * i + r] = _cvtsh_ss(h);
        }
}

/* Tokens per group: the group's activations (ETOK_Q8_TOKENS x n/32 blocks of 40 bytes: 46 kB
 * for n = 576, 123 kB for n = 1536) are re-read from L2 for every 4 rows of the chunk. */
#define ETOK_Q8_TOKENS 64
#define TR 4 /* rows per tile */
#define TT 3 /* tokens per tile */

/* For each group of tokens, every 4 rows of [r0, r1): their scales converted once (dwf), then
 * 4 x 3 tiles over the group's tokens, the rest in 4 x 1; rows past the last 4 in 1 x 4 and
 * 1 x 1. Without memory for dwf (nb x 16 bytes) the scalar reference gives the same bits. */
static TGT void matmul_avx2(const uint8_t *w, size_t rb, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                            int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t ys = (size_t)nb;
    float *dwf = malloc((size_t)nb * 4 * sizeof(float));
    if (!dwf) { etok_matmul_q8_0_ref(w, rb, r0, r1, xq, n, nx, out, out_stride); return; }
    for (int t0 = 0; t0 < nx; t0 += ETOK_Q8_TOKENS) {
        const int t1 = nx - t0 < ETOK_Q8_TOKENS ? nx : t0 + ETOK_Q8_TOKENS;
        int64_t r = r0;
        for (; r + TR <= r1; r += TR) {
            const uint8_t *p = w + (size_t)r * rb;
            scales4(p, rb, TR, nb, dwf);
            int t = t0;
            for (; t + TT <= t1; t += TT)
                tile(p, rb, dwf, xq + (size_t)t * ys, ys, nb, TR, TT, out + (size_t)t * out_stride + (size_t)r, out_stride);
            for (; t < t1; t++)
                tile(p, rb, dwf, xq + (size_t)t * ys, ys, nb, TR, 1, out + (size_t)t * out_stride + (size_t)r, out_stride);
        }
        for (; r < r1; r++) {
            const uint8_t *p = w + (size_t)r * rb;
            scales4(p, rb, 1, nb, dwf);
            int t = t0;
            for (; t + 4 <= t1; t += 4)
                tile(p, rb, dwf, xq + (size_t)t * ys, ys, nb, 1, 4, out + (size_t)t * out_stride + (size_t)r, out_stride);
            for (; t < t1; t++)
                tile(p, rb, dwf, xq + (size_t)t * ys, ys, nb, 1, 1, out + (size_t)t * out_stride + (size_t)r, out_stride);
        }
    }
    free(dwf);
}
#endif

void etok_matmul_q8_0(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                      int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        matmul_avx2(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
#endif
    etok_matmul_q8_0_ref(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
}
