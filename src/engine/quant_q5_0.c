/* quant_q5_0.c — Q5_0 weights times several q8a activation vectors (prefill), register-tiled,
 * in the arithmetic order of llama.cpp's Q5_0 vec_dot (AVX2 build, c392e5094), which its
 * matmul runs once per (row, token) for a Q5_0 matrix.
 *
 * That order, per output (row r, token t): the 32 products of block b land in 8 int32 lanes,
 * value j in lane j / 4 (the 32-byte vector of values 0..31 through maddubs then madd), each
 * lane exact; acc[l] = fma(d_w(b) * d_a(b), (float)isum[b][l], acc[l]) over the blocks in
 * order, d_w * d_a one float product (d_a: the activation block's F16-rounded scale); then the
 * 8 lanes reduced as hsum_float_8 (etok_hsum_ps). quant_avx2.c's dot_q5_0 does exactly that,
 * so this file's outputs equal etok_vec_dot's bit for bit (tests/unit/test_quant_q5_0.c).
 *
 * Why a separate kernel: the general prefill path (one row against 4 vectors, quant_avx2.c)
 * unpacks each block's 5-bit values for every 4 tokens and spends per (row, block, token)
 * the sign trick, a scalar product and a broadcast for the scale. Here
 *  - a group of 4 rows is unpacked once per call into a small buffer (values 0..31 as bytes,
 *    the scales as floats), not once per 4 tokens;
 *  - the "- 16" of the weights is taken from the activations: maddubs(q, y) - maddubs(16, y)
 *    in int16 (|31 x 127 x 2| + |16 x 127 x 2| < 2^15: exact), the second term once per
 *    (block, token) for the 4 rows; after madd the same exact int32 lanes as the sign trick;
 *  - 4 rows x 2 tokens = 8 accumulators stay in registers for the whole row, and the 8 scale
 *    products of a block are one vector multiply ([d_w0..3, d_w0..3] x [d_a0 x4, d_a1 x4]),
 *    each then broadcast from memory (a load, no shuffle).
 * A scalar reference in the same lane order (etok_matmul_q5_0_ref) pins the bits.
 *
 * Owns: the rule when this kernel is taken (etok_q5_0_tiled_applies) and the kernels. Does not
 * own the activation quantisation, the row split across threads, or the decode (one token)
 * kernels (quant_avx2.c). */
#include "engine/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant_simd.h"

int etok_q5_0_tiled_applies(uint32_t type, int nx) { return (type == ETOK_T_Q5_0 || type == ETOK_T_IQ4_NL) && nx >= 2; }

/* the hsum_float_8 order of etok_hsum_ps */
static float hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

static float row_ref(uint32_t type, const uint8_t *row, const etok_block_q8a *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int w[ETOK_QK];
        etok_f16 dh;
        if (type == ETOK_T_IQ4_NL) {
            const etok_block_iq4_nl *b = (const etok_block_iq4_nl *)row + i;
            for (int j = 0; j < ETOK_QK; j++) w[j] = etok_iq4nl_values[j < 16 ? b->qs[j] & 0xF : b->qs[j - 16] >> 4];
            dh = b->d;
        } else {
            const etok_block_q5_0 *b = (const etok_block_q5_0 *)row + i;
            uint8_t q[ETOK_QK];
            etok_q5_unpack(b->qh, b->qs, q);
            for (int j = 0; j < ETOK_QK; j++) w[j] = (int)q[j] - 16;
            dh = b->d;
        }
        int32_t s[8] = {0};
        for (int j = 0; j < ETOK_QK; j++) s[j / 4] += w[j] * y[i].qs[j];
        const float d = etok_f16_to_f32(dh) * y[i].d;
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)s[l], acc[l]);
    }
    return hsum8(acc);
}

void etok_matmul_q5_0_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                          const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] = row_ref(type, w + (size_t)r * row_bytes, xq + (size_t)j * (size_t)nb, nb);
}

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET
#define KI static inline __attribute__((always_inline)) TGT

/* Rows per group and the unpacked group: per block 4 x 32 value bytes, then 4 float scales. */
#define Q5R 4
typedef struct {
    uint8_t q[Q5R][ETOK_QK];
    float d[Q5R];
} q5_grp_block;

/* The 32 values 0..31 of a block in value order (low nibbles, then high nibbles; the 5th bit
 * from qh): as quant_avx2.c's unpack_nibbles | q5_high_bits. */
KI __m256i unpack_q5(const etok_block_q5_0 *b) {
    const __m128i raw = _mm_loadu_si128((const __m128i *)b->qs);
    const __m256i lo = _mm256_and_si256(_mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1),
                                        _mm256_set1_epi8(0x0F));
    uint32_t h;
    memcpy(&h, b->qh, 4);
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3,
                                         3, 3, 3, 3, 3);
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    const __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sel), bit);
    return _mm256_or_si256(lo, _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10)));
}

static TGT void unpack_group(const uint8_t *const rows[Q5R], int64_t nb, q5_grp_block *g) {
    for (int64_t i = 0; i < nb; i++)
        for (int k = 0; k < Q5R; k++) {
            const etok_block_q5_0 *b = (const etok_block_q5_0 *)rows[k] + i;
            _mm256_storeu_si256((__m256i *)g[i].q[k], unpack_q5(b));
            g[i].d[k] = _cvtsh_ss(b->d);
        }
}

/* Block i's scale products d_w(k) * d_a(t) of the 4 rows and T tokens, lane 4t + k. */
KI void tile_scales(const float dw4[Q5R], const etok_block_q8a *const y[2], const int T, int64_t i, float sc[8]) {
    const __m256 dw = _mm256_broadcast_ps((const __m128 *)dw4);
    const __m256 da = _mm256_insertf128_ps(_mm256_castps128_ps256(_mm_broadcast_ss(&y[0][i].d)),
                                           _mm_broadcast_ss(&y[T - 1][i].d), 1);
    _mm256_store_ps(sc, _mm256_mul_ps(dw, da));
}

/* 4 rows (the group g) x T (1 or 2) tokens y[0], y[1]: res[t][k]. */
KI void tile(const q5_grp_block *g, const etok_block_q8a *const y[2], const int T, int64_t nb, float res[2][Q5R]) {
    __m256 acc[2][Q5R];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < Q5R; k++) acc[t][k] = _mm256_setzero_ps();
    const __m256i sixteen = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1);
    float sc[8] __attribute__((aligned(32)));
    for (int64_t i = 0; i < nb; i++) {
        tile_scales(g[i].d, y, T, i, sc);
        __m256i y16[2];
        for (int t = 0; t < T; t++) y16[t] = _mm256_maddubs_epi16(sixteen, _mm256_loadu_si256((const __m256i *)y[t][i].qs));
        for (int k = 0; k < Q5R; k++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)g[i].q[k]);
            for (int t = 0; t < T; t++) {
                const __m256i p16 =
                    _mm256_sub_epi16(_mm256_maddubs_epi16(q, _mm256_loadu_si256((const __m256i *)y[t][i].qs)), y16[t]);
                acc[t][k] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[4 * t + k]), _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)),
                                            acc[t][k]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < Q5R; k++) res[t][k] = etok_hsum_ps(acc[t][k]);
}

/* IQ4_NL: the signed table levels w (-127..113) and |w| per row and block (the sign trick of
 * quant_avx2.c's dot_iq4_nl: |w| x sign(y, w), pairs |.| <= 2 x 127 x 127 < 2^15), then the same
 * madd, FMA and reduction as Q5_0; each row's bits are dot_iq4_nl's (the batch order). */
typedef struct {
    int8_t w[Q5R][ETOK_QK];
    uint8_t aw[Q5R][ETOK_QK];
    float d[Q5R];
} iq4_grp_block;

static TGT void unpack_group_iq4(const uint8_t *const rows[Q5R], int64_t nb, iq4_grp_block *g) {
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    for (int64_t i = 0; i < nb; i++)
        for (int k = 0; k < Q5R; k++) {
            const etok_block_iq4_nl *b = (const etok_block_iq4_nl *)rows[k] + i;
            const __m128i raw = _mm_loadu_si128((const __m128i *)b->qs);
            const __m256i nib = _mm256_and_si256(
                _mm256_inserti128_si256(_mm256_castsi128_si256(raw), _mm_srli_epi16(raw, 4), 1), _mm256_set1_epi8(0x0F));
            const __m256i w = _mm256_shuffle_epi8(tbl, nib);
            _mm256_storeu_si256((__m256i *)g[i].w[k], w);
            _mm256_storeu_si256((__m256i *)g[i].aw[k], _mm256_sign_epi8(w, w));
            g[i].d[k] = _cvtsh_ss(b->d);
        }
}

KI void tile_iq4(const iq4_grp_block *g, const etok_block_q8a *const y[2], const int T, int64_t nb, float res[2][Q5R]) {
    __m256 acc[2][Q5R];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < Q5R; k++) acc[t][k] = _mm256_setzero_ps();
    const __m256i ones = _mm256_set1_epi16(1);
    float sc[8] __attribute__((aligned(32)));
    for (int64_t i = 0; i < nb; i++) {
        tile_scales(g[i].d, y, T, i, sc);
        __m256i yq[2];
        for (int t = 0; t < T; t++) yq[t] = _mm256_loadu_si256((const __m256i *)y[t][i].qs);
        for (int k = 0; k < Q5R; k++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)g[i].w[k]);
            const __m256i aw = _mm256_loadu_si256((const __m256i *)g[i].aw[k]);
            for (int t = 0; t < T; t++) {
                const __m256i p = _mm256_madd_epi16(_mm256_maddubs_epi16(aw, _mm256_sign_epi8(yq[t], w)), ones);
                acc[t][k] = _mm256_fmadd_ps(_mm256_broadcast_ss(&sc[4 * t + k]), _mm256_cvtepi32_ps(p), acc[t][k]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < Q5R; k++) res[t][k] = etok_hsum_ps(acc[t][k]);
}

/* Rows of more than STACK_BLOCKS blocks take a heap buffer for the unpacked group. */
#define STACK_BLOCKS 64
typedef union {
    q5_grp_block q5[STACK_BLOCKS];
    iq4_grp_block iq4[STACK_BLOCKS];
} grp_buf;

int TGT etok_matmul_q5_0_avx2(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                              const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const int iq4 = type == ETOK_T_IQ4_NL;
    grp_buf stack __attribute__((aligned(32)));
    void *buf = &stack;
    const size_t per = iq4 ? sizeof(iq4_grp_block) : sizeof(q5_grp_block);
    if (nb > STACK_BLOCKS && !(buf = aligned_alloc(32, ((size_t)nb * per + 31) / 32 * 32))) return -1;
    for (int64_t r = r0; r < r1; r += Q5R) {
        const int nrow = r1 - r < Q5R ? (int)(r1 - r) : Q5R;
        const uint8_t *rows[Q5R];
        /* a short group repeats its last row in the unused slots (rows are independent) */
        for (int k = 0; k < Q5R; k++) rows[k] = w + (size_t)(r + (k < nrow ? k : nrow - 1)) * row_bytes;
        if (iq4)
            unpack_group_iq4(rows, nb, buf);
        else
            unpack_group(rows, nb, buf);
        for (int j = 0; j < nx; j += 2) {
            const int T = nx - j < 2 ? 1 : 2;
            const etok_block_q8a *y[2] = {xq + (size_t)j * (size_t)nb, xq + (size_t)(j + T - 1) * (size_t)nb};
            float res[2][Q5R];
            if (iq4) {
                if (T == 2)
                    tile_iq4(buf, y, 2, nb, res);
                else
                    tile_iq4(buf, y, 1, nb, res);
            } else {
                if (T == 2)
                    tile(buf, y, 2, nb, res);
                else
                    tile(buf, y, 1, nb, res);
            }
            for (int t = 0; t < T; t++)
                for (int k = 0; k < nrow; k++) out[(size_t)(j + t) * out_stride + (size_t)(r + k)] = res[t][k];
        }
    }
    if (buf != &stack) free(buf);
    return 0;
}
#endif

void etok_matmul_q5_0(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                      const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    /* (a failed allocation, for rows of more than 2048 values: the scalar path) */
    if (etok_simd_active() && etok_matmul_q5_0_avx2(type, w, row_bytes, r0, r1, xq, n, nx, out, out_stride) == 0) return;
#endif
    etok_matmul_q5_0_ref(type, w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
}
