/* quant_q8_0.c — Q8_0 weight rows against q8a activations, several rows and several tokens
 * per register tile (prefill: etok_matmul_rows sends Q8_0 with 2+ tokens here; one token stays
 * on quant_avx2.c's 4-row decode kernel, the same bits), and the scalar definition of those bits;
 * and the 4-row interleaved copy Q8_0x4 that model.c makes at load at the AVX2 level, with its
 * decode and prefill kernels (same bits; see "Q8_0x4" below).
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
 * Owns: etok_matmul_q8_0 (dispatch: AVX2 when active, else the reference) and its reference;
 * the Q8_0x4 layout (etok_q8x4_*: which matrices take it, packing, reading rows back, kernel
 * and reference). Does not own which matrices are repacked and when (model.c).
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

/* ---- Q8_0x4: the rows repacked at load (model.c), 4 rows interleaved ----
 *
 * Why: decode reads every weight once; the file-layout 4-row decode kernel walks 4 rows 34
 * bytes at a time in 4 separate streams and converts each row's F16 scale alone. Here a group
 * of 4 rows is one contiguous stream (consecutive groups too: a matrix is one stream that a
 * software prefetch runs ahead of), and the 4 rows' scales are one 8-byte F16 load and one
 * conversion. Layout of a group (rows 4g .. 4g+3, row k = r % 4), nb blocks, block i at
 * i x 136 (= 4 x 34, so the copy has the matrix's size):
 *   [0, 128)   quants: vector v (0..3) at 32v, row k's qs[8v .. 8v+7] at 32v + 8k
 *   [128, 136) the 4 rows' F16 d, row k at 128 + 2k.
 * In vector v the int32 lane 2k + j (j = 0, 1) is row k's lane 2v + j of the file-layout order
 * (the exact sum of qs[8v+4j .. 8v+4j+3] times the same activations, one broadcast 8-byte
 * activation group against the 4 rows): four accumulators hold the 8 lanes of 4 rows, each
 * lane's chain the reference's acc_k = fma(d_w * d_a, (float)lane_k, acc_k); the scale lanes
 * 2k, 2k+1 are d_w(k) * d_a, the same IEEE product. The final reduction is the reference's
 * (a_k + a_{k+4}) then (h0 + h2) + (h1 + h3): acc v plus acc v+2 gives h0, h1 (v = 0) and
 * h2, h3 (v = 1) of each row in lanes 2k, 2k+1; their sum gives h0 + h2, h1 + h3; one
 * horizontal add the row. Same bits for every output (test_quant_q8_0.c). */
#define X4_BS 136u /* bytes of a block of 4 rows */
#define X4_OD 128u /* offset of the scales in it */

int etok_q8x4_applies(uint32_t type, int64_t n_out, int64_t n_in) {
    return type == ETOK_T_Q8_0 && n_out > 0 && n_out % 4 == 0 && n_in > 0 && n_in % ETOK_QK == 0;
}

size_t etok_q8x4_group_bytes(int64_t n_in) { return (size_t)(n_in / ETOK_QK) * X4_BS; }

void etok_q8x4_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst) {
    const int64_t nb = n_in / ETOK_QK;
    for (int64_t g = 0; g < n_rows / 4; g++)
        for (int k = 0; k < 4; k++) {
            const etok_block_q8_0 *row = (const etok_block_q8_0 *)(const void *)(w + (size_t)(4 * g + k) * row_bytes);
            for (int64_t i = 0; i < nb; i++) {
                uint8_t *B = dst + ((size_t)g * (size_t)nb + (size_t)i) * X4_BS;
                for (int v = 0; v < 4; v++) memcpy(B + 32 * v + 8 * k, row[i].qs + 8 * v, 8);
                memcpy(B + X4_OD + 2 * k, &row[i].d, 2);
            }
        }
}

void etok_q8x4_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_q8_0 *out) {
    const int64_t nb = n_in / ETOK_QK;
    const uint8_t *B = packed + ((size_t)(r / 4) * (size_t)nb + (size_t)i) * X4_BS;
    const int k = (int)(r % 4);
    for (int v = 0; v < 4; v++) memcpy(out->qs + 8 * v, B + 32 * v + 8 * k, 8);
    memcpy(&out->d, B + X4_OD + 2 * k, 2);
}

void etok_q8x4_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    for (int64_t i = 0; i < n_in / ETOK_QK; i++) {
        etok_block_q8_0 b;
        etok_q8x4_get_block(packed, n_in, r, i, &b);
        etok_dequantize_row(ETOK_T_Q8_0, &b, out + (size_t)i * ETOK_QK, ETOK_QK);
    }
}

/* row_ref's order, read from the packed bytes (row k of the group at grp) */
static float x4_row_ref(const uint8_t *grp, int64_t nb, int k, const etok_block_q8a *y) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * X4_BS;
        uint16_t dh;
        memcpy(&dh, B + X4_OD + 2 * k, 2);
        const float scale = etok_f16_to_f32(dh) * y[i].d;
        for (int L = 0; L < 8; L++) {
            int s = 0;
            for (int j = 0; j < 4; j++) s += (int)(int8_t)B[32 * (L / 2) + 8 * k + 4 * (L % 2) + j] * (int)y[i].qs[4 * L + j];
            acc[L] = fmaf(scale, (float)s, acc[L]);
        }
    }
    float h[4];
    for (int L = 0; L < 4; L++) h[L] = acc[L + 4] + acc[L];
    return (h[0] + h[2]) + (h[1] + h[3]);
}

void etok_matmul_q8x4_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                          float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q8x4_group_bytes(n);
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                x4_row_ref(packed + (size_t)(r / 4) * gb, nb, (int)(r % 4), xq + (size_t)j * (size_t)nb);
}

#if ETOK_HAVE_X86_SIMD
/* One group of 4 rows x T tokens (y: token 0's blocks, ys blocks apart), all nb blocks; res[t]:
 * the 4 rows' results for token t. pf: decode, which streams each matrix once: every block asks
 * for the lines ETOK_PF_Q8X4 bytes on (the groups are contiguous; quant_simd.h's table). */
KI void x4_tile(const uint8_t *grp, const etok_block_q8a *y, size_t ys, int64_t nb, const int T, __m128 res[4], const int pf) {
    __m256 acc[4][4];
    for (int t = 0; t < T; t++)
        for (int v = 0; v < 4; v++) acc[t][v] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    const __m256i dup = _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * X4_BS;
        if (pf) {
            _mm_prefetch((const char *)(B + ETOK_PF_Q8X4), _MM_HINT_T0);
            _mm_prefetch((const char *)(B + ETOK_PF_Q8X4 + 64), _MM_HINT_T0);
            _mm_prefetch((const char *)(B + ETOK_PF_Q8X4 + 128), _MM_HINT_T0);
        }
        const __m256 dw = _mm256_permutevar8x32_ps(
            _mm256_castps128_ps256(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)(B + X4_OD)))), dup);
        __m256 sc[4];
        for (int t = 0; t < T; t++) sc[t] = _mm256_mul_ps(dw, _mm256_set1_ps(y[(size_t)t * ys + (size_t)i].d));
        for (int v = 0; v < 4; v++) {
            const __m256i wq = _mm256_loadu_si256((const __m256i *)(const void *)(B + 32 * v));
            const __m256i u = _mm256_sign_epi8(wq, wq);
            for (int t = 0; t < T; t++) {
                int64_t a8;
                memcpy(&a8, y[(size_t)t * ys + (size_t)i].qs + 8 * v, 8);
                const __m256i a = _mm256_set1_epi64x(a8);
                const __m256i s32 = _mm256_madd_epi16(_mm256_maddubs_epi16(u, _mm256_sign_epi8(a, wq)), ones);
                acc[t][v] = _mm256_fmadd_ps(sc[t], _mm256_cvtepi32_ps(s32), acc[t][v]);
            }
        }
    }
    for (int t = 0; t < T; t++) {
        const __m256 s = _mm256_add_ps(_mm256_add_ps(acc[t][0], acc[t][2]), _mm256_add_ps(acc[t][1], acc[t][3]));
        const __m256 h = _mm256_hadd_ps(s, s); /* rows 0, 1 in lanes 0, 1; rows 2, 3 in lanes 4, 5 */
        res[t] = _mm_castpd_ps(_mm_unpacklo_pd(_mm_castps_pd(_mm256_castps256_ps128(h)), _mm_castps_pd(_mm256_extractf128_ps(h, 1))));
    }
}

/* rows [lo, hi) of the group at row g4 from res (T tokens from token t) */
static inline TGT void x4_store(const __m128 *res, int T, int64_t g4, int64_t lo, int64_t hi, int t, float *out, size_t os) {
    for (int k = 0; k < T; k++) {
        float *o = out + (size_t)(t + k) * os;
        if (hi - lo == 4)
            _mm_storeu_ps(o + g4, res[k]);
        else {
            float tmp[4];
            _mm_storeu_ps(tmp, res[k]);
            for (int64_t r = lo; r < hi; r++) o[r] = tmp[r - g4];
        }
    }
}

/* Prefill through etok_x8_prefill_avx2 (quant_simd.h, Q5_0x8's 8 rows x 1 token loop): two
 * consecutive 4-row groups (an 8-row group of gb4 x 2 bytes) unpacked once per call. Lane L of a
 * row is its values 4L..4L+3, in vector v = L / 2 at dword 2k + L % 2 for row k of a 4-row
 * group, so each vector's even and odd dwords of the two groups make lanes 2v and 2v + 1; the
 * values are the weights themselves, |w| the sign trick's other operand. The order per row is
 * the file-layout one above: the same bits. On a Zen 5 EPYC pp512 took 7-12% less time than
 * the 4 x 3 tiles below (docs/ENGINE.md, "Q8_0x4"). */
static TGT void x8_unpack(const uint8_t *grp, int64_t nb, etok_x8_unpacked *u) {
    const size_t gb4 = (size_t)nb * X4_BS;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *A = grp + (size_t)i * X4_BS, *B = A + gb4;
        for (int v = 0; v < 4; v++) {
            __m256i w[2];
            etok_x8_gather_lanes(A + 32 * v, B + 32 * v, w);
            for (int j = 0; j < 2; j++) {
                _mm256_store_si256((__m256i *)(void *)u[i].w[2 * v + j], w[j]);
                _mm256_store_si256((__m256i *)(void *)u[i].aw[2 * v + j], _mm256_sign_epi8(w[j], w[j]));
            }
        }
        const __m128 da = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)(A + X4_OD)));
        const __m128 db = _mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(const void *)(B + X4_OD)));
        _mm_store_ps(u[i].d, da);
        _mm_store_ps(u[i].d + 4, db);
    }
}

/* Decode: each group once, prefetching ahead. Prefill: whole 8-row groups through x8_unpack's
 * loop; the rows left (a 4-row group at the end of the range) per group of ETOK_Q8_TOKENS
 * tokens, every group of rows against 3 tokens at a time (the rest 1), as the file-layout tiles. */
static TGT void matmul_x4_avx2(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                               float *out, size_t os) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q8x4_group_bytes(n), ys = (size_t)nb;
    __m128 res[4];
    if (nx == 1) {
        for (int64_t k = 0, g0 = r0 / 4, ng = (r1 + 3) / 4 - g0; k < ng; k++) { /* decode in parts (etok_decode_order) */
            const int64_t g = g0 + etok_decode_order(k, ng);
            const int64_t lo = g * 4 > r0 ? g * 4 : r0, hi = g * 4 + 4 < r1 ? g * 4 + 4 : r1;
            x4_tile(packed + (size_t)g * gb, xq, ys, nb, 1, res, 1);
            x4_store(res, 1, g * 4, lo, hi, 0, out, os);
        }
        return;
    }
    /* whole 8-row groups in [r0, r1) through the 8-row loop (a group ending past r1 may end past
     * the matrix: its rows go to the tiles below), the rest, or all on a failed allocation, tiled */
    const int64_t r8 = r1 / 8 * 8;
    if (r8 > r0 && etok_x8_prefill_avx2(packed, 2 * gb, r0, r8, xq, nb, nx, out, os, x8_unpack) == 0) r0 = r8;
    for (int t0 = 0; t0 < nx; t0 += ETOK_Q8_TOKENS) {
        const int t1 = nx - t0 < ETOK_Q8_TOKENS ? nx : t0 + ETOK_Q8_TOKENS;
        for (int64_t g = r0 / 4; g * 4 < r1; g++) {
            const int64_t lo = g * 4 > r0 ? g * 4 : r0, hi = g * 4 + 4 < r1 ? g * 4 + 4 : r1;
            const uint8_t *grp = packed + (size_t)g * gb;
            int t = t0;
            for (; t + TT <= t1; t += TT) {
                x4_tile(grp, xq + (size_t)t * ys, ys, nb, TT, res, 0);
                x4_store(res, TT, g * 4, lo, hi, t, out, os);
            }
            for (; t < t1; t++) {
                x4_tile(grp, xq + (size_t)t * ys, ys, nb, 1, res, 0);
                x4_store(res, 1, g * 4, lo, hi, t, out, os);
            }
        }
    }
}
#endif

void etok_matmul_q8x4(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                      float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(ETOK_T_Q8_0, ETOK_AMX_Q8X4, packed, 0, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_decode_copy_avx512(ETOK_AMX_Q8X4, ETOK_T_Q8_0, packed, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_simd_active()) {
        matmul_x4_avx2(packed, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
#endif
    etok_matmul_q8x4_ref(packed, r0, r1, xq, n, nx, out, out_stride);
}
