/* quant_iq4_nlx8.c — IQ4_NL matrices repacked at load into an 8-row interleaved layout
 * ("IQ4_NLx8"), with kernels that give, per row, exactly the bits of the file-layout AVX2
 * kernels: for one token quant_avx2.c's dot_iq4_nl_1tok (llama.cpp's AVX2
 * ggml_vec_dot_iq4_nl_q8_0, which llama.cpp runs for a one-token batch), for several tokens
 * quant_q5_0.c's tiles / dot_iq4_nl (llama.cpp's batch order, llamafile's tinyBLAS).
 *
 * The orders being kept, per row, with isum[b][l] the exact integer dot of block b's values
 * 4l..4l+3 (value j < 16: table[low nibble of qs[j]], j >= 16: table[high nibble of qs[j-16]])
 * with the activations 4l..4l+3, and s_b = d_w(b) * d_a(b) one float product:
 *  - several tokens: acc[l] = fma(s_b, (float)isum[b][l], acc[l]) over all blocks in order,
 *    result hsum(acc) = ((acc4 + acc0) + (acc6 + acc2)) + ((acc5 + acc1) + (acc7 + acc3));
 *  - one token: two chains, even blocks into E[l], odd blocks into O[l], the same fma; over
 *    the pairs (2p, 2p+1) only; then hsum(E + O) (lane-wise sums first); an odd last block
 *    adds after it: sum + s_b * (float)(sum of its 32 products) (a product, then a sum).
 *
 * Why a new layout (for decode): the file-layout kernels spend per row and block most instructions on work
 * that 4 or 8 rows side by side can share: the F16 scale conversion and broadcast, the nibble
 * unpacking of a 16-byte half, the activation load, and the final horizontal reduction. Here
 * one 32-byte load holds 8 quant bytes of each of 4 rows; its low nibbles, looked up with one
 * byte shuffle of the 16-level table, are the values of lanes 2v and 2v+1 of those 4 rows (one
 * 32-bit slot per row and lane), and one 8-byte broadcast of the activations serves all 4 rows.
 * The sign trick is turned round: maddubs(|y|, sign(w, y)) = w * y, the same exact int16 pairs
 * as maddubs(|w|, sign(y, w)) (|w|, |y| <= 127), with |y| one broadcast shared by the rows.
 * The accumulators are kept transposed (slot (row k, lane 2v + j) of vector v), the scales of 4
 * rows are one F16 conversion and one multiply, and the reduction of 8 rows is 3 vertical adds
 * and one pairwise add. Every float operation per row is one of those listed above: the same
 * bits.
 *
 * Layout of a group of 8 rows (row r in group r / 8, k = r % 8), nb blocks, block i at i x 144
 * bytes (8 x the file's 18-byte block: the copy has the matrix's size):
 *   [64h, 64h + 64) rows 4h .. 4h+3 (h = 0, 1): at 64h + 32v + 8(k % 4), row k's quant bytes
 *                   qs[8v .. 8v+7] (v = 0, 1)
 *   [128, 144)      8 F16 d (row k at 128 + 2k).
 * Owns: which matrices take it (etok_iq4nlx8_applies), packing, reading a row back, the scalar
 * reference (the orders above spelled out from the packed bytes) and the AVX2 kernels (1 token:
 * streaming with prefetch; several: each group unpacked once per call, then Q5_0x8's 8 rows x 1
 * token prefill, etok_x8_prefill_avx2); at kernel level avx512 one token takes
 * quant_avx512.c's decode_iq4nlx8 (both halves of a group in one zmm, these bits). Does not own:
 * the activation quantisation, the thread split, which matrices are repacked and when
 * (model.c, at every SIMD level). Tests: test_quant_iq4_nlx8.c, test_iq4_nl_repack.c,
 * tests/isa/isa_check.h (avx512 against avx2). */
#include "engine/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant_simd.h"

#define BS 144u  /* bytes of one block of 8 rows */
#define OFF_D 128u

int etok_iq4nlx8_applies(uint32_t type, int64_t n_out, int64_t n_in) {
    return type == ETOK_T_IQ4_NL && n_out > 0 && n_out % 8 == 0 && n_in > 0 && n_in % ETOK_QK == 0;
}

size_t etok_iq4nlx8_group_bytes(int64_t n_in) { return (size_t)(n_in / ETOK_QK) * BS; }

/* where row k's quant bytes qs[8v .. 8v+7] are in a block of 8 rows */
static size_t off_q(int k, int v) { return 64u * (unsigned)(k / 4) + 32u * (unsigned)v + 8u * (unsigned)(k % 4); }

void etok_iq4nlx8_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst) {
    const int64_t nb = n_in / ETOK_QK;
    for (int64_t g = 0; g < n_rows / 8; g++)
        for (int k = 0; k < 8; k++) {
            const etok_block_iq4_nl *row = (const etok_block_iq4_nl *)(w + (size_t)(8 * g + k) * row_bytes);
            for (int64_t i = 0; i < nb; i++) {
                uint8_t *B = dst + ((size_t)g * (size_t)nb + (size_t)i) * BS;
                for (int v = 0; v < 2; v++) memcpy(B + off_q(k, v), row[i].qs + 8 * v, 8);
                memcpy(B + OFF_D + 2 * k, &row[i].d, 2);
            }
        }
}

void etok_iq4nlx8_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_iq4_nl *out) {
    const int64_t nb = n_in / ETOK_QK;
    const uint8_t *B = packed + ((size_t)(r / 8) * (size_t)nb + (size_t)i) * BS;
    const int k = (int)(r % 8);
    for (int v = 0; v < 2; v++) memcpy(out->qs + 8 * v, B + off_q(k, v), 8);
    memcpy(&out->d, B + OFF_D + 2 * k, 2);
}

void etok_iq4nlx8_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    for (int64_t i = 0; i < n_in / ETOK_QK; i++) {
        etok_block_iq4_nl b;
        etok_iq4nlx8_get_block(packed, n_in, r, i, &b);
        etok_dequantize_row(ETOK_T_IQ4_NL, &b, out + (size_t)i * ETOK_QK, ETOK_QK);
    }
}

/* Block i of lane k of a group: the 8 lane sums, and s_b = d_w * d_a. */
static float block_ref(const uint8_t *B, int k, const etok_block_q8a *y, int32_t isum[8]) {
    for (int l = 0; l < 8; l++) isum[l] = 0;
    for (int v = 0; v < 2; v++)
        for (int j = 0; j < 8; j++) {
            const uint8_t q = B[off_q(k, v) + (size_t)j];
            const int at = 8 * v + j; /* value at (low nibble), 16 + at (high nibble) */
            isum[at / 4] += etok_iq4nl_values[q & 0xF] * y->qs[at];
            isum[4 + at / 4] += etok_iq4nl_values[q >> 4] * y->qs[16 + at];
        }
    uint16_t dh;
    memcpy(&dh, B + OFF_D + 2 * k, 2);
    return etok_f16_to_f32(dh) * y->d;
}

static float hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    const float t0 = r0 + r2, t1 = r1 + r3;
    return t0 + t1;
}

/* The orders of the top comment for lane k of a group, read from the packed bytes. */
static float lane_ref(const uint8_t *grp, int64_t nb, int k, const etok_block_q8a *y, int one_token) {
    float acc[2][8] = {{0}};
    int32_t isum[8];
    if (!one_token) {
        for (int64_t i = 0; i < nb; i++) {
            const float s = block_ref(grp + (size_t)i * BS, k, y + i, isum);
            for (int l = 0; l < 8; l++) acc[0][l] = fmaf(s, (float)isum[l], acc[0][l]);
        }
        return hsum8(acc[0]);
    }
    int64_t i = 0;
    for (; i + 1 < nb; i += 2)
        for (int e = 0; e < 2; e++) {
            const float s = block_ref(grp + (size_t)(i + e) * BS, k, y + i + e, isum);
            for (int l = 0; l < 8; l++) acc[e][l] = fmaf(s, (float)isum[l], acc[e][l]);
        }
    float both[8];
    for (int l = 0; l < 8; l++) both[l] = acc[0][l] + acc[1][l];
    float sum = hsum8(both);
    if (i < nb) {
        const float s = block_ref(grp + (size_t)i * BS, k, y + i, isum);
        int32_t t = 0;
        for (int l = 0; l < 8; l++) t += isum[l];
        const float p = s * (float)t; /* (two statements: never fused) */
        sum = sum + p;
    }
    return sum;
}

void etok_matmul_iq4nlx8_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                             int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_iq4nlx8_group_bytes(n);
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                lane_ref(packed + (size_t)(r / 8) * gb, nb, (int)(r % 8), xq + (size_t)j * (size_t)nb, nx == 1);
}

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET
#define KI static inline __attribute__((always_inline)) TGT

KI __m256i bcast8(const void *p) {
    long long v;
    memcpy(&v, p, 8);
    return _mm256_set1_epi64x(v);
}

/* The 4 looked-up value vectors of half h of block B: w[0], w[1] the low nibbles of loads 0, 1
 * (lanes 0,1 / 2,3), w[2], w[3] the high nibbles (lanes 4,5 / 6,7). */
KI void lookup(const uint8_t *B, int h, __m256i tbl, __m256i w[4]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i r0 = _mm256_loadu_si256((const __m256i *)(B + 64 * h)), r1 = _mm256_loadu_si256((const __m256i *)(B + 64 * h + 32));
    w[0] = _mm256_shuffle_epi8(tbl, _mm256_and_si256(r0, m4));
    w[1] = _mm256_shuffle_epi8(tbl, _mm256_and_si256(r1, m4));
    w[2] = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(r0, 4), m4));
    w[3] = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(r1, 4), m4));
}

/* 4 rows' scales of half h times d_a, in slot order [d0 d0 d1 d1 d2 d2 d3 d3] */
KI __m256 scales4(const uint8_t *B, int h, float da) {
    const __m128 d = _mm_mul_ps(_mm_cvtph_ps(_mm_loadl_epi64((const __m128i *)(B + OFF_D + 8 * h))), _mm_set1_ps(da));
    return _mm256_permutevar8x32_ps(_mm256_castps128_ps256(d), _mm256_setr_epi32(0, 0, 1, 1, 2, 2, 3, 3));
}

/* the exact lane sums of one value vector against the activations: maddubs(|y|, sign(w, y)) */
KI __m256i lanes(__m256i w, __m256i y, __m256i ay) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(ay, _mm256_sign_epi8(w, y)), _mm256_set1_epi16(1));
}

/* One token, half h of a group (4 rows): the vec_dot order; E + O lane-wise into S[4]; the
 * integer sums of an odd last block into *tail (slot (k, j): half of row k's sum). */
KI void half_1tok(const uint8_t *grp, int h, const etok_block_q8a *y, int64_t nb, __m256 S[4], __m256i *tail,
                  __m256 *tail_s) {
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    __m256 E[4], O[4];
    for (int q = 0; q < 4; q++) E[q] = O[q] = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const uint8_t *B = grp + (size_t)i * BS;
        if (h == 0)
            for (size_t o = 0; o < 2 * BS; o += 64) _mm_prefetch((const char *)(B + ETOK_PF_IQ4X8 + o), _MM_HINT_T0);
        for (int e = 0; e < 2; e++) {
            const uint8_t *Bb = B + e * BS;
            const int8_t *a = y[i + e].qs;
            __m256i w[4];
            lookup(Bb, h, tbl, w);
            const __m256 s = scales4(Bb, h, y[i + e].d);
            __m256 *acc = e ? O : E;
            for (int q = 0; q < 4; q++) {
                const __m256i yy = bcast8(a + 8 * q);
                acc[q] = _mm256_fmadd_ps(s, _mm256_cvtepi32_ps(lanes(w[q], yy, _mm256_abs_epi8(yy))), acc[q]);
            }
        }
    }
    for (int q = 0; q < 4; q++) S[q] = _mm256_add_ps(E[q], O[q]);
    if (i < nb) {
        const uint8_t *B = grp + (size_t)i * BS;
        __m256i w[4];
        lookup(B, h, tbl, w);
        __m256i t = _mm256_setzero_si256();
        for (int q = 0; q < 4; q++) {
            const __m256i yy = bcast8(y[i].qs + 8 * q);
            t = _mm256_add_epi32(t, lanes(w[q], yy, _mm256_abs_epi8(yy)));
        }
        *tail = t;
        *tail_s = scales4(B, h, y[i].d);
    }
}

static TGT void group_1tok(const uint8_t *grp, const etok_block_q8a *y, int64_t nb, float res[8]) {
    __m256 A[4], C[4], sa = _mm256_setzero_ps(), sc = _mm256_setzero_ps();
    __m256i ta = _mm256_setzero_si256(), tc = _mm256_setzero_si256();
    half_1tok(grp, 0, y, nb, A, &ta, &sa);
    half_1tok(grp, 1, y, nb, C, &tc, &sc);
    __m256 r = etok_iq4x8_reduce(A, C);
    if (nb % 2) r = etok_iq4x8_tail(r, ta, tc, sa, sc); /* row sums: slots (k, 0) + (k, 1) */
    _mm256_storeu_ps(res, r);
}

/* ---- prefill (2+ tokens) ----
 * As Q5_0x8's (etok_x8_prefill_avx2, quant_simd.h): each group unpacked once per call into 8
 * value vectors of the looked-up values w and |w| (vector L: values 4L..4L+3 of the 8 rows),
 * then 8 rows x 1 token per pass. The file-layout prefill order (acc[l] over the blocks,
 * etok_hsum_ps) is that kernel's, so the bits are the file layout's. Until 2026-12-02 the rows
 * were gathered back into the file's layout per call and run through quant_q5_0.c's 4 x 2
 * tiles; on a Zen 5 EPYC this is 1.3x faster (docs/ENGINE.md, "IQ4_NL repacked at load"). */
static TGT void unpack_group(const uint8_t *grp, int64_t nb, etok_x8_unpacked *u) {
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * BS;
        for (int v = 0; v < 2; v++) {
            /* rows 4h..4h+3's bytes qs[8v .. 8v+7] (off_q): dword 2j + e of the load at 64h + 32v
             * is row 4h+j's qs[4(2v+e) .. +3] */
            __m256i raw[2];
            etok_x8_gather_lanes(B + 32 * v, B + 64 + 32 * v, raw);
            for (int e = 0; e < 2; e++) {
                const int c = 2 * v + e; /* qs[4c .. 4c+3] of rows 0..7 */
                const __m256i lo = _mm256_shuffle_epi8(tbl, _mm256_and_si256(raw[e], m4));
                const __m256i hi = _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(raw[e], 4), m4));
                _mm256_store_si256((__m256i *)(void *)u[i].w[c], lo);
                _mm256_store_si256((__m256i *)(void *)u[i].w[4 + c], hi);
                _mm256_store_si256((__m256i *)(void *)u[i].aw[c], _mm256_sign_epi8(lo, lo));
                _mm256_store_si256((__m256i *)(void *)u[i].aw[4 + c], _mm256_sign_epi8(hi, hi));
            }
        }
        _mm256_store_ps(u[i].d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(B + OFF_D))));
    }
}

static TGT int matmul_avx2(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                           float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_iq4nlx8_group_bytes(n);
    if (nx == 1) {
        for (int64_t g = r0 / 8; g * 8 < r1; g++) { /* one stream (etok_part_order: 2 parts measured no faster) */
            const int64_t lo = g * 8 > r0 ? g * 8 : r0, hi = g * 8 + 8 < r1 ? g * 8 + 8 : r1;
            float res[8];
            group_1tok(packed + (size_t)g * gb, xq, nb, res);
            if (hi - lo == 8)
                _mm256_storeu_ps(out + lo, _mm256_loadu_ps(res));
            else
                for (int64_t r = lo; r < hi; r++) out[r] = res[r - g * 8];
        }
        return 0;
    }
    return etok_x8_prefill_avx2(packed, gb, r0, r1, xq, nb, nx, out, out_stride, unpack_group);
}
#endif

void etok_matmul_iq4nlx8(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                         float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(ETOK_T_IQ4_NL, ETOK_AMX_IQ4NLX8, packed, 0, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_decode_copy_avx512(ETOK_AMX_IQ4NLX8, ETOK_T_IQ4_NL, packed, r0, r1, xq, n, nx, out, out_stride)) return;
    /* (a failed allocation, for several tokens: the scalar path) */
    if (etok_simd_active() && matmul_avx2(packed, r0, r1, xq, n, nx, out, out_stride) == 0) return;
#endif
    etok_matmul_iq4nlx8_ref(packed, r0, r1, xq, n, nx, out, out_stride);
}
