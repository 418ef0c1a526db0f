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
 * Owns: the rule which Q4_0 matrices use this order (etok_q4_0_8x8_applies), two weight
 * layouts and their kernels, all bit-equal (tests/unit/test_quant_q4_0.c):
 *  - the file's rows: a scalar reference and an AVX2 kernel that reads 8 rows' blocks side
 *    by side (8-lane integer sums gathered by horizontal adds);
 *  - "Q4_0x8", etok's repacked layout (made at load by model.c, docs/ENGINE.md): per group of
 *    8 rows, nb blocks of 128 quant bytes, then nb x 8 F16 scales. Block i's 128 bytes are 4
 *    chunks of 32; chunk c holds, for row k = 0..7, bytes qs[4c .. 4c+3] of that row's block at
 *    offset 4k. One 32-byte load and a mask/shift give values 4c..4c+3 (low nibbles) and
 *    16+4c..16+4c+3 (high nibbles) of all 8 rows, one 32-bit lane per row, so the products
 *    against a broadcast 4-byte activation group land in the row's own lane: no horizontal
 *    add. The nibbles stay unsigned (0..15); the "- 8" is subtracted as 8 sum(y) per block.
 *    A group is exactly 8 rows' bytes (8 x 18 x nb), so row r's group starts at (r / 8) x
 *    8 x row_bytes and the matrix keeps its size. A scalar reference and an AVX2 gemv/gemm.
 * Does not own: the activation quantisation (quant.c / quant_avx2.c), the row split across
 * threads, or which matrices are repacked (model.c). */
#include "engine/quant.h"

#include <math.h>
#include <stdlib.h>
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


/* ---- the repacked layout Q4_0x8 ---- */

/* byte offsets within a group of 8 rows of nb blocks */
#define X8_QS(i) ((size_t)(i) * 128u)
#define X8_D(nb, i) ((size_t)(nb) * 128u + (size_t)(i) * 16u)

size_t etok_q4_0x8_group_bytes(int64_t n_in) { return (size_t)(n_in / ETOK_QK) * 8u * sizeof(etok_block_q4_0); }

void etok_q4_0x8_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst) {
    const int64_t nb = n_in / ETOK_QK;
    const size_t gb = etok_q4_0x8_group_bytes(n_in);
    for (int64_t g = 0; g < n_rows / 8; g++) {
        uint8_t *o = dst + (size_t)g * gb;
        for (int k = 0; k < 8; k++) {
            const etok_block_q4_0 *b = (const etok_block_q4_0 *)(w + (size_t)(8 * g + k) * row_bytes);
            for (int64_t i = 0; i < nb; i++) {
                for (int c = 0; c < 4; c++) memcpy(o + X8_QS(i) + 32u * (size_t)c + 4u * (size_t)k, b[i].qs + 4 * c, 4);
                memcpy(o + X8_D(nb, i) + 2u * (size_t)k, &b[i].d, 2);
            }
        }
    }
}

void etok_q4_0x8_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_q4_0 *out) {
    const int64_t nb = n_in / ETOK_QK;
    const uint8_t *o = packed + (size_t)(r / 8) * etok_q4_0x8_group_bytes(n_in);
    const int k = (int)(r % 8);
    for (int c = 0; c < 4; c++) memcpy(out->qs + 4 * c, o + X8_QS(i) + 32u * (size_t)c + 4u * (size_t)k, 4);
    memcpy(&out->d, o + X8_D(nb, i) + 2u * (size_t)k, 2);
}

void etok_q4_0x8_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    for (int64_t i = 0; i < n_in / ETOK_QK; i++) {
        etok_block_q4_0 b;
        etok_q4_0x8_get_block(packed, n_in, r, i, &b);
        etok_dequantize_row(ETOK_T_Q4_0, &b, out + (size_t)i * ETOK_QK, ETOK_QK);
    }
}

/* The chain of row_ref for lane k of a group, read from the packed bytes (the same
 * integer sum and the same fmaf per block: the same bits). */
static float lane_ref(const uint8_t *grp, int64_t nb, int k, const etok_block_q8a *y) {
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        int s = 0;
        for (int c = 0; c < 4; c++)
            for (int j = 0; j < 4; j++) {
                const uint8_t q = grp[X8_QS(i) + 32u * (size_t)c + 4u * (size_t)k + (size_t)j];
                s += ((q & 0xF) - 8) * y[i].qs[4 * c + j] + ((q >> 4) - 8) * y[i].qs[16 + 4 * c + j];
            }
        uint16_t dh;
        memcpy(&dh, grp + X8_D(nb, i) + 2u * (size_t)k, 2);
        acc = fmaf((float)s, etok_f16_to_f32(dh) * y[i].d, acc);
    }
    return acc;
}

void etok_matmul_q4_0x8_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                            float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q4_0x8_group_bytes(n);
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                lane_ref(packed + (size_t)(r / 8) * gb, nb, (int)(r % 8), xq + (size_t)j * (size_t)nb);
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

/* ---- Q4_0x8 (repacked), AVX2 ---- */

/* 8 * sum(y) of every block of nx activation vectors (nb blocks each): the "- 8" of the
 * nibbles, subtracted once per block and row group (exact integers). */
static TGT void x8_sums(const etok_block_q8a *xq, int64_t nb, int nx, int32_t *sy8) {
    const __m256i one8 = _mm256_set1_epi8(1), one16 = _mm256_set1_epi16(1);
    for (int64_t b = 0; b < (int64_t)nx * nb; b++) {
        const __m256i s = _mm256_madd_epi16(_mm256_maddubs_epi16(one8, _mm256_loadu_si256((const __m256i *)xq[b].qs)), one16);
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        h = _mm_add_epi32(h, _mm_unpackhi_epi64(h, h));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 1));
        sy8[b] = 8 * _mm_cvtsi128_si32(h);
    }
}

static inline __attribute__((always_inline)) TGT __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* One group of 8 rows (lane k = row k) times T <= 4 activation vectors y[t] (sy8[t]: their
 * 8 sum(y) per block). Per block and vector: 8 maddubs of unsigned nibbles (0..15) against a
 * broadcast 4-byte group of activations, summed in 16 bits (each maddubs lane <= 2 x 15 x 128
 * = 3840 in size, eight of them <= 30720: exact), one madd to 32 bits per row, minus 8 sum(y):
 * the exact integer isum of row_ref; then the same fmadd(isum, d_w * d_a, acc) per lane.
 * The 16-bit sums use the saturating add, which never saturates here (bound above): with the
 * plain add GCC reassociates the chain, computes all 32 products of a 4-vector block first and
 * spills them to the stack (25-30% slower gemm). */
static inline __attribute__((always_inline)) TGT void x8_group(const uint8_t *grp, const etok_block_q8a *const y[4],
                                                               const int32_t *const sy8[4], const int T, int64_t nb,
                                                               float res[4][8]) {
    __m256 acc[4];
    for (int t = 0; t < T; t++) acc[t] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), one16 = _mm256_set1_epi16(1);
    const uint8_t *dptr = grp + X8_D(nb, 0);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *q = grp + X8_QS(i);
        if (T == 1) { /* decode streams the matrix once: ETOK_PF_Q40X8 bytes ahead of this block's 128 */
            _mm_prefetch((const char *)(q + ETOK_PF_Q40X8), _MM_HINT_T0);
            _mm_prefetch((const char *)(q + ETOK_PF_Q40X8 + 64), _MM_HINT_T0);
        }
        __m256i s16[4];
        for (int c = 0; c < 4; c++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(q + 32 * c));
            const __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            for (int t = 0; t < T; t++) {
                const int8_t *a = y[t][i].qs;
                const __m256i p = _mm256_adds_epi16(_mm256_maddubs_epi16(lo, bcast4(a + 4 * c)),
                                                    _mm256_maddubs_epi16(hi, bcast4(a + 16 + 4 * c)));
                s16[t] = c == 0 ? p : _mm256_adds_epi16(s16[t], p);
            }
        }
        const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(dptr + 16 * i)));
        for (int t = 0; t < T; t++) {
            const __m256i isum = _mm256_sub_epi32(_mm256_madd_epi16(s16[t], one16), _mm256_set1_epi32(sy8[t][i]));
            acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_mul_ps(dw, _mm256_set1_ps(y[t][i].d)), acc[t]);
        }
    }
    for (int t = 0; t < T; t++) _mm256_storeu_ps(res[t], acc[t]);
}

/* The activation sums of up to X8_SUMS values live on the stack: tokens go in chunks of
 * X8_SUMS / nb (a multiple of 4), each chunk over every row group of [r0, r1); rows of more
 * than X8_SUMS / 4 blocks take a heap buffer of 4 vectors' sums. */
#define X8_SUMS 4096

static TGT void x8_chunk(const uint8_t *packed, size_t gb, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t nb,
                         int nx, const int32_t *sy8, float *out, size_t out_stride) {
    for (int64_t k = 0, g0 = r0 / 8, ng = (r1 + 7) / 8 - g0; k < ng; k++) { /* decode in parts (etok_decode_order) */
        const int64_t g = g0 + (nx == 1 ? etok_decode_order(k, ng) : k);
        const uint8_t *grp = packed + (size_t)g * gb;
        const int64_t lo = g * 8 > r0 ? g * 8 : r0, hi = g * 8 + 8 < r1 ? g * 8 + 8 : r1;
        /* decode streams the matrix once: ask for the next group ahead of the prefetcher */
        if (nx == 2 && (g + 2) * 8 <= r1)
            for (size_t off = 0; off < gb; off += 64) _mm_prefetch((const char *)(grp + gb + off), _MM_HINT_T0);
        for (int j = 0; j < nx; j += 4) {
            const int T = nx - j < 4 ? nx - j : 4;
            const etok_block_q8a *y[4];
            const int32_t *s[4];
            for (int t = 0; t < 4; t++) {
                const int jt = j + (t < T ? t : 0);
                y[t] = xq + (size_t)jt * (size_t)nb;
                s[t] = sy8 + (size_t)jt * (size_t)nb;
            }
            float res[4][8];
            switch (T) {
            case 1: x8_group(grp, y, s, 1, nb, res); break;
            case 2: x8_group(grp, y, s, 2, nb, res); break;
            case 3: x8_group(grp, y, s, 3, nb, res); break;
            default: x8_group(grp, y, s, 4, nb, res); break;
            }
            for (int t = 0; t < T; t++) {
                float *o = out + (size_t)(j + t) * out_stride;
                if (hi - lo == 8)
                    _mm256_storeu_ps(o + lo, _mm256_loadu_ps(res[t]));
                else
                    for (int64_t r = lo; r < hi; r++) o[r] = res[t][r - g * 8];
            }
        }
    }
}

static TGT int matmul_q4_0x8_avx2(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                                  int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q4_0x8_group_bytes(n);
    int32_t stack[X8_SUMS], *sy8 = stack;
    int chunk = nb > X8_SUMS / 4 ? 4 : (int)(X8_SUMS / nb) / 4 * 4;
    if (nb > X8_SUMS / 4 && !(sy8 = malloc((size_t)4 * (size_t)nb * sizeof *sy8))) return -1;
    for (int j = 0; j < nx; j += chunk) {
        const int c = nx - j < chunk ? nx - j : chunk;
        x8_sums(xq + (size_t)j * (size_t)nb, nb, c, sy8);
        x8_chunk(packed, gb, r0, r1, xq + (size_t)j * (size_t)nb, nb, c, sy8, out + (size_t)j * out_stride, out_stride);
    }
    if (sy8 != stack) free(sy8);
    return 0;
}
#endif

void etok_matmul_rows_q4_0_8x8(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                               int64_t n, int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(ETOK_T_Q4_0, ETOK_AMX_FILE, w, row_bytes, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_simd_active()) {
        matmul_q4_0_8x8_avx2(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
#endif
    etok_matmul_rows_q4_0_8x8_ref(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
}

void etok_matmul_q4_0x8(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                        float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(ETOK_T_Q4_0, ETOK_AMX_Q4_0X8, packed, 0, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_decode_copy_avx512(ETOK_AMX_Q4_0X8, ETOK_T_Q4_0, packed, r0, r1, xq, n, nx, out, out_stride)) return;
    /* (a failed allocation of the sums, for rows of more than 32768 values: the scalar path) */
    if (etok_simd_active() && matmul_q4_0x8_avx2(packed, r0, r1, xq, n, nx, out, out_stride) == 0) return;
#endif
    etok_matmul_q4_0x8_ref(packed, r0, r1, xq, n, nx, out, out_stride);
}
