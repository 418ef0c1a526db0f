/* quant_q4_0.c — Q4_0 matrix products in the arithmetic order of llama.cpp's 8-row
 * interleaved Q4_0 path ("Q4_0_8x8": ggml_gemv/gemm_q4_0_8x8_q8_0), written from its math.
 *
 * Why: on an AVX2 CPU llama.cpp (c392e5094) repacks, at load, every Q4_0 weight matrix whose
 * row count is a multiple of 8 (the tied token embedding used as LM head included: it is a
 * separate copy in the repacked buffer) into blocks of 8 interleaved rows, and computes each
 * output element as a scalar chain over the blocks in order:
 *     acc = 0; for each block b: acc = fma((float)isum_b, d_w(b) * d_a(b), acc)
 * where isum_b is the exact integer dot of the signed nibbles (q - 8) with the 8-bit
 * activations, d_w the block's F16 scale, d_a the activation block's F16-rounded scale. One
 * token (gemv) and four tokens at a time (gemm) do the same per-element operations, so the
 * result does not depend on how many tokens a step has. etok's general Q4_0 kernel sums
 * 8-lane partial products instead, which rounds differently (bench/numerics.md).
 *
 * Owns: the rule which Q4_0 matrices use this order (etok_q4_0_8x8_applies), the scalar
 * reference and the AVX2 kernel, bit-equal to each other (tests/unit/test_quant_q4_0.c).
 * The weights stay in the file's layout (no repacked copy): the AVX2 kernel reads 8 rows'
 * blocks side by side, which gives the same numbers. Does not own: the activation
 * quantisation (quant.c / quant_avx2.c) or the row split across threads (model.c). */
#include "engine/quant.h"

#include <math.h>
#include <string.h>

#include "engine/quant_simd.h"

int etok_q4_0_8x8_applies(uint32_t type, int64_t n_out, int64_t n_in) {
    return type == ETOK_T_Q4_0 && n_out > 0 && n_out % 8 == 0 && n_in % ETOK_QK == 0;
}

static float row_ref(const etok_block_q4_0 *b, const etok_block_q8a *y, int64_t nb) {
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int s = 0;
        for (int j = 0; j < ETOK_QK / 2; j++)
            s += ((b[i].qs[j] & 0xF) - 8) * y[i].qs[j] + ((b[i].qs[j] >> 4) - 8) * y[i].qs[j + ETOK_QK / 2];
        const float scale = etok_f16_to_f32(b[i].d) * y[i].d;
        acc = fmaf((float)s, scale, acc);
    }
    return acc;
}

void etok_matmul_rows_q4_0_8x8_ref(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                   const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                row_ref((const etok_block_q4_0 *)(w + (size_t)r * row_bytes), xq + (size_t)j * (size_t)nb, nb);
}

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET

/* 8 rows (lane k = rows[k]) times T <= 4 activation vectors. Per block: the 8 rows' nibbles
 * unpacked once (values 0..15), for each vector the exact integer sums sum(q y) of the 8 rows
 * gathered into one vector of 8 lanes by a tree of horizontal adds (integers within range:
 * any order is exact), minus 8 sum(y), then one FMA per lane: the scalar chain of row_ref in
 * every lane. */
static inline __attribute__((always_inline)) TGT void rows8(const uint8_t *const rows[8], const etok_block_q8a *const y[4],
                                                             const int T, int64_t nb, float res[4][8]) {
    __m256 acc[4];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; i++) {
        __m256i q[8];
        uint16_t dh[8];
        for (int k = 0; k < 8; k++) {
            const etok_block_q4_0 *b = (const etok_block_q4_0 *)rows[k] + i;
            const __m128i raw = _mm_loadu_si128((const __m128i *)b->qs);
            q[k] = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), m4);
            memcpy(&dh[k], &b->d, 2);
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)dh));
        for (int t = 0; t < T; t++) {
            const etok_block_q8a *a = y[t] + i;
            const __m256i yq = _mm256_loadu_si256((const __m256i *)a->qs);
            /* maddubs: 16 sums of 2 products per row (|.| <= 2*15*127); three rounds of
             * horizontal 16-bit adds sum 16 products per row and 128-bit half (|.| <= 30720, no
             * wrap) and leave rows 0..7 in order in each half */
            __m256i p[8];
            for (int k = 0; k < 8; k++) p[k] = _mm256_maddubs_epi16(q[k], yq);
            const __m256i h01 = _mm256_hadd_epi16(p[0], p[1]), h23 = _mm256_hadd_epi16(p[2], p[3]);
            const __m256i h45 = _mm256_hadd_epi16(p[4], p[5]), h67 = _mm256_hadd_epi16(p[6], p[7]);
            const __m256i h07 = _mm256_hadd_epi16(_mm256_hadd_epi16(h01, h23), _mm256_hadd_epi16(h45, h67));
            __m256i isum = _mm256_add_epi32(_mm256_cvtepi16_epi32(_mm256_castsi256_si128(h07)),
                                            _mm256_cvtepi16_epi32(_mm256_extracti128_si256(h07, 1)));
            __m256i sy = _mm256_madd_epi16(_mm256_maddubs_epi16(one8, yq), one16);
            sy = _mm256_hadd_epi32(sy, sy);
            sy = _mm256_hadd_epi32(sy, sy);
            sy = _mm256_add_epi32(sy, _mm256_permute2x128_si256(sy, sy, 0x01)); /* every lane: sum(y) */
            isum = _mm256_sub_epi32(isum, _mm256_slli_epi32(sy, 3));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(a->d)), acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm256_storeu_ps(res[t], acc[t]);
}

static TGT void rows8_tokens(const uint8_t *const rows[8], int nrow, const etok_block_q8a *xq, int64_t nb, int nx,
                             float *out, size_t out_stride) {
    for (int j = 0; j < nx; j += 4) {
        const int T = nx - j < 4 ? nx - j : 4;
        const etok_block_q8a *y[4];
        for (int t = 0; t < 4; t++) y[t] = xq + (size_t)(j + (t < T ? t : 0)) * (size_t)nb;
        float res[4][8];
        switch (T) {
        case 1: rows8(rows, y, 1, nb, res); break;
        case 2: rows8(rows, y, 2, nb, res); break;
        case 3: rows8(rows, y, 3, nb, res); break;
        default: rows8(rows, y, 4, nb, res); break;
        }
        for (int t = 0; t < T; t++)
            for (int k = 0; k < nrow; k++) out[(size_t)(j + t) * out_stride + (size_t)k] = res[t][k];
    }
}

static TGT void matmul_q4_0_8x8_avx2(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                     const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    for (int64_t r = r0; r < r1; r += 8) {
        const int nrow = r1 - r < 8 ? (int)(r1 - r) : 8;
        const uint8_t *rows[8];
        /* a short group repeats its last row in the unused lanes (lanes are independent) */
        for (int k = 0; k < 8; k++) rows[k] = w + (size_t)(r + (k < nrow ? k : nrow - 1)) * row_bytes;
        /* decode streams the matrix once: ask for the next group's lines ahead of the
         * hardware prefetcher (as the Q4_1 / Q8_0 4-row kernels do) */
        if (nx <= 2 && r + 16 <= r1)
            for (size_t off = 0; off < 8 * row_bytes; off += 64) _mm_prefetch((const char *)(rows[0] + 8 * row_bytes + off), _MM_HINT_T0);
        rows8_tokens(rows, nrow, xq, nb, nx, out + r, out_stride);
    }
}
#endif

void etok_matmul_rows_q4_0_8x8(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                               int64_t n, int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        matmul_q4_0_8x8_avx2(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
#endif
    etok_matmul_rows_q4_0_8x8_ref(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
}
