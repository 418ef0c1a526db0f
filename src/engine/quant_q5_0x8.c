/* quant_q5_0x8.c — Q5_0 matrices repacked at load into an 8-row interleaved layout ("Q5_0x8"),
 * with a decode kernel (one token, streaming the copy) and a prefill kernel (several tokens)
 * that give, per row, exactly the bits of the file-layout AVX2 kernels (quant_avx2.c's dot_q5_0
 * and dot_q5_0_4rows, quant_q5_0.c's tiles: llama.cpp's ggml_vec_dot_q5_0_q8_0 AVX2 order).
 *
 * The order being kept, per row: 8 float lanes acc[0..7] = 0; per block i, lane L of the
 * block's integer dot (the values 4L..4L+3 minus 16, times activations 4L..4L+3: value j < 16
 * is the low nibble of qs[j], j >= 16 the high nibble of qs[j-16], the 5th bit bit j of qh; an
 * exact 4-product sum) enters acc[L] = fma(d_w * d_a, (float)sum, acc[L]); the result is
 * ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)) (etok_hsum_ps).
 *
 * Why a new layout: the file-layout decode kernel spends most of its instructions per row and
 * block on work that is the same for 8 rows side by side (the F16 scale conversion and its
 * broadcast, the nibble unpacking of a 16-byte half, spreading qh's 32 bits into 32 bytes). In
 * the repacked layout one 32-byte load holds 4 quant bytes of each of 8 rows, so a maddubs
 * against a broadcast 4-byte activation group and a madd give lane L of all 8 rows in one
 * vector (one 32-bit lane per row): the 8 accumulators are kept transposed (vector L, lane k =
 * row k's acc[L]), the 8 rows' scales are one F16 conversion and one multiply, and the final
 * reduction is 7 vertical adds giving 8 rows' results in one vector (as quant_q4_1.c does for
 * Q4_1 / Q5_1). Every float operation per row is the one listed above: the same bits.
 *
 * The sign: Q5_0's values are q - 16 with q = 0..31. maddubs takes its first operand unsigned,
 * so the decode kernel multiplies the unsigned q and subtracts 16 x the activations' pair sums
 * in int16 (maddubs(q, a) - maddubs(16, a): |31 x 127 x 2| and |16 x 127 x 2| fit), then madd
 * by 1: the exact int32 lanes of (q - 16) x a. The 8 subtrahends of an activation block (int16
 * pairs, lane L's in dword L) are computed once per call (act16 below). The prefill kernel
 * unpacks a group once per call into the signed values w and |w| and uses the sign trick
 * (|w| x sign(a, w), pairs |.| <= 2 x 16 x 127), the same exact lanes; activations are in
 * -127..127 (etok_quantize_q8a), so sign() never negates -128.
 *
 * Layout of a group of 8 rows (row r in group r / 8, lane k = r % 8), nb blocks, block i at
 * i x 176 (= 8 x the file's 22-byte block, so the copy has the matrix's size):
 *   [0, 128)   quant bytes: chunk c (0..3) at 32c, row k's bytes qs[4c .. 4c+3] at 32c + 4k
 *   [128, 160) the 5th bits: byte p = 4k + j holds, in bit c, bit 4c+j of row k's qh (the
 *              value of chunk c's low nibble at p) and, in bit 4+c, bit 16+4c+j (the value of
 *              the high nibble): chunk c's 5th bits are (H << (4-c)) & 0x10 and (H >> c) & 0x10
 *              with 16-bit shifts (quant_q4_1.c's Q5_1x8 arrangement)
 *   [160, 176) the 8 rows' F16 d, row k at 160 + 2k.
 * Owns: which matrices take it (etok_q50x8_applies), packing, reading a row back, the scalar
 * reference (the order above spelled out from the packed bytes) and the AVX2 kernels (1 token,
 * 2+ tokens). Does not own: the activation quantisation, the thread split, which matrices are
 * repacked and when (model.c, repack at load, AVX2 level only). Tests: test_quant_q5_0x8.c,
 * test_q5_0_repack.c. */
#include "engine/quant.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant_simd.h"

#define BS 176u  /* bytes of one block of 8 rows */
#define OFF_H 128u
#define OFF_D 160u

int etok_q50x8_applies(uint32_t type, int64_t n_out, int64_t n_in) {
    return type == ETOK_T_Q5_0 && n_out > 0 && n_out % 8 == 0 && n_in > 0 && n_in % ETOK_QK == 0;
}

size_t etok_q50x8_group_bytes(int64_t n_in) { return (size_t)(n_in / ETOK_QK) * BS; }

/* the file's block b of row k -> its place in the 8-row block B */
static void put_block(const etok_block_q5_0 *b, int k, uint8_t *B) {
    for (int c = 0; c < 4; c++) memcpy(B + 32 * c + 4 * k, b->qs + 4 * c, 4);
    memcpy(B + OFF_D + 2 * k, &b->d, 2);
    uint32_t h;
    memcpy(&h, b->qh, 4);
    for (int j = 0; j < 4; j++) {
        uint8_t v = 0;
        for (int c = 0; c < 4; c++)
            v |= (uint8_t)((((h >> (4 * c + j)) & 1u) << c) | (((h >> (16 + 4 * c + j)) & 1u) << (4 + c)));
        B[OFF_H + 4 * k + j] = v;
    }
}

void etok_q50x8_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst) {
    const int64_t nb = n_in / ETOK_QK;
    for (int64_t g = 0; g < n_rows / 8; g++)
        for (int k = 0; k < 8; k++) {
            const etok_block_q5_0 *row = (const etok_block_q5_0 *)(const void *)(w + (size_t)(8 * g + k) * row_bytes);
            for (int64_t i = 0; i < nb; i++) put_block(row + i, k, dst + ((size_t)g * (size_t)nb + (size_t)i) * BS);
        }
}

void etok_q50x8_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_q5_0 *out) {
    const int64_t nb = n_in / ETOK_QK;
    const uint8_t *B = packed + ((size_t)(r / 8) * (size_t)nb + (size_t)i) * BS;
    const int k = (int)(r % 8);
    uint32_t h = 0;
    for (int j = 0; j < 4; j++)
        for (int c = 0; c < 4; c++) {
            const uint8_t v = B[OFF_H + 4 * k + j];
            h |= (uint32_t)((v >> c) & 1u) << (4 * c + j);
            h |= (uint32_t)((v >> (4 + c)) & 1u) << (16 + 4 * c + j);
        }
    memcpy(out->qh, &h, 4);
    for (int c = 0; c < 4; c++) memcpy(out->qs + 4 * c, B + 32 * c + 4 * k, 4);
    memcpy(&out->d, B + OFF_D + 2 * k, 2);
}

void etok_q50x8_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    for (int64_t i = 0; i < n_in / ETOK_QK; i++) {
        etok_block_q5_0 b;
        etok_q50x8_get_block(packed, n_in, r, i, &b);
        etok_dequantize_row(ETOK_T_Q5_0, &b, out + (size_t)i * ETOK_QK, ETOK_QK);
    }
}

/* The order of the top comment for lane k of a group, read from the packed bytes. */
static float lane_ref(const uint8_t *grp, int64_t nb, int k, const etok_block_q8a *y) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * BS;
        uint16_t dh;
        memcpy(&dh, B + OFF_D + 2 * k, 2);
        const float scale = etok_f16_to_f32(dh) * y[i].d;
        for (int c = 0; c < 4; c++) {
            int lo = 0, hi = 0;
            for (int j = 0; j < 4; j++) {
                const uint8_t q = B[32 * c + 4 * k + j], h = B[OFF_H + 4 * k + j];
                const int wl = ((q & 0xF) | (((h >> c) & 1) << 4)) - 16, wh = ((q >> 4) | (((h >> (4 + c)) & 1) << 4)) - 16;
                lo += wl * y[i].qs[4 * c + j];
                hi += wh * y[i].qs[16 + 4 * c + j];
            }
            acc[c] = fmaf(scale, (float)lo, acc[c]);
            acc[4 + c] = fmaf(scale, (float)hi, acc[4 + c]);
        }
    }
    const float s0 = acc[4] + acc[0], s1 = acc[5] + acc[1], s2 = acc[6] + acc[2], s3 = acc[7] + acc[3];
    const float t0 = s0 + s2, t1 = s1 + s3;
    return t0 + t1;
}

void etok_matmul_q50x8_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                           float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q50x8_group_bytes(n);
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                lane_ref(packed + (size_t)(r / 8) * gb, nb, (int)(r % 8), xq + (size_t)j * (size_t)nb);
}

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET
#define KI static inline __attribute__((always_inline)) TGT

static inline __attribute__((always_inline)) TGT __m256i bcast4(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* the 8 rows' results (lane k = row k) from the transposed accumulators, etok_hsum_ps's order */
KI __m256 reduce8(const __m256 acc[8]) {
    const __m256 s0 = _mm256_add_ps(acc[4], acc[0]), s1 = _mm256_add_ps(acc[5], acc[1]);
    const __m256 s2 = _mm256_add_ps(acc[6], acc[2]), s3 = _mm256_add_ps(acc[7], acc[3]);
    return _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
}

/* rows [lo, hi) of the group starting at row g8 from res into o */
KI void store8(__m256 res, int64_t g8, int64_t lo, int64_t hi, float *o) {
    if (hi - lo == 8)
        _mm256_storeu_ps(o + g8, res);
    else {
        float tmp[8];
        _mm256_storeu_ps(tmp, res);
        for (int64_t r = lo; r < hi; r++) o[r] = tmp[r - g8];
    }
}

/* ---- decode (one token) ----
 * act16[i]: the activation block's int16 pair sums times 16 (dword L: the subtrahend of lane L). */
static TGT void act16_of(const etok_block_q8a *y, int64_t nb, __m256i *act16) {
    const __m256i sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++)
        _mm256_store_si256(act16 + i, _mm256_maddubs_epi16(sixteen, _mm256_loadu_si256((const __m256i *)(const void *)y[i].qs)));
}

/* One chunk c of a block: lanes c and 4 + c of 8 rows (lo, hi: the values 0..31). */
KI void dchunk(__m256i lo, __m256i hi, const int8_t *a, const int32_t *s16, int c, __m256 scale, __m256 acc[8]) {
    const __m256i one16 = _mm256_set1_epi16(1);
    const __m256i plo = _mm256_madd_epi16(
        _mm256_sub_epi16(_mm256_maddubs_epi16(lo, bcast4(a + 4 * c)), _mm256_set1_epi32(s16[c])), one16);
    const __m256i phi = _mm256_madd_epi16(
        _mm256_sub_epi16(_mm256_maddubs_epi16(hi, bcast4(a + 16 + 4 * c)), _mm256_set1_epi32(s16[4 + c])), one16);
    acc[c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(plo), acc[c]);
    acc[4 + c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(phi), acc[4 + c]);
}

/* One group of 8 rows against one token. Decode streams each matrix once: every block asks for
 * the lines ETOK_PF_Q50X8 bytes on (the groups are contiguous; quant_simd.h's table). */
KI __m256 group_dec(const uint8_t *grp, const etok_block_q8a *y, const __m256i *act16, int64_t nb) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b5 = _mm256_set1_epi8(0x10);
    __m256 acc[8];
    for (int L = 0; L < 8; L++) acc[L] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * BS;
        const int8_t *a = y[i].qs;
        const int32_t *s16 = (const int32_t *)(const void *)(act16 + i);
        _mm_prefetch((const char *)(B + ETOK_PF_Q50X8), _MM_HINT_T0);
        _mm_prefetch((const char *)(B + ETOK_PF_Q50X8 + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(B + ETOK_PF_Q50X8 + 128), _MM_HINT_T0);
        const __m256 scale =
            _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(B + OFF_D))), _mm256_set1_ps(y[i].d));
        const __m256i H = _mm256_loadu_si256((const __m256i *)(const void *)(B + OFF_H));
        __m256i raw[4];
        for (int c = 0; c < 4; c++) raw[c] = _mm256_loadu_si256((const __m256i *)(const void *)(B + 32 * c));
        dchunk(_mm256_or_si256(_mm256_and_si256(raw[0], m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), b5)),
               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[0], 4), m4), _mm256_and_si256(H, b5)), a, s16, 0, scale,
               acc);
        dchunk(_mm256_or_si256(_mm256_and_si256(raw[1], m4), _mm256_and_si256(_mm256_slli_epi16(H, 3), b5)),
               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[1], 4), m4), _mm256_and_si256(_mm256_srli_epi16(H, 1), b5)),
               a, s16, 1, scale, acc);
        dchunk(_mm256_or_si256(_mm256_and_si256(raw[2], m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), b5)),
               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[2], 4), m4), _mm256_and_si256(_mm256_srli_epi16(H, 2), b5)),
               a, s16, 2, scale, acc);
        dchunk(_mm256_or_si256(_mm256_and_si256(raw[3], m4), _mm256_and_si256(_mm256_slli_epi16(H, 1), b5)),
               _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[3], 4), m4), _mm256_and_si256(_mm256_srli_epi16(H, 3), b5)),
               a, s16, 3, scale, acc);
    }
    return reduce8(acc);
}

/* ---- prefill (2+ tokens) ----
 * A group unpacked once per call (etok_x8_unpacked, quant_simd.h): per block, vector L (lane L
 * of the 8 rows: chunk L's low nibbles for L < 4, chunk L-4's high nibbles after) as the signed
 * values w = q - 16 and |w|, and the 8 rows' scales as floats. */
static TGT void unpack_group(const uint8_t *grp, int64_t nb, etok_x8_unpacked *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), b5 = _mm256_set1_epi8(0x10), sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * BS;
        const __m256i H = _mm256_loadu_si256((const __m256i *)(const void *)(B + OFF_H));
        for (int c = 0; c < 4; c++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(const void *)(B + 32 * c));
            /* (H << (4-c)) and (H >> c) as 16-bit shifts by a run-time count */
            const __m256i hl = _mm256_sll_epi16(H, _mm_cvtsi32_si128(4 - c)), hh = _mm256_srl_epi16(H, _mm_cvtsi32_si128(c));
            const __m256i lo = _mm256_sub_epi8(_mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(hl, b5)), sixteen);
            const __m256i hi = _mm256_sub_epi8(
                _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4), _mm256_and_si256(hh, b5)), sixteen);
            _mm256_store_si256((__m256i *)(void *)u[i].w[c], lo);
            _mm256_store_si256((__m256i *)(void *)u[i].w[4 + c], hi);
            _mm256_store_si256((__m256i *)(void *)u[i].aw[c], _mm256_sign_epi8(lo, lo));
            _mm256_store_si256((__m256i *)(void *)u[i].aw[4 + c], _mm256_sign_epi8(hi, hi));
        }
        _mm256_store_ps(u[i].d, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(const void *)(B + OFF_D))));
    }
}

/* The unpacked group against one token: the 8 rows' results. */
KI __m256 group_pre(const etok_x8_unpacked *u, const etok_block_q8a *y, int64_t nb) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256 acc[8];
    for (int L = 0; L < 8; L++) acc[L] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256 scale = _mm256_mul_ps(_mm256_load_ps(u[i].d), _mm256_set1_ps(y[i].d));
        for (int L = 0; L < 8; L++) {
            const __m256i w = _mm256_load_si256((const __m256i *)(const void *)u[i].w[L]);
            const __m256i p = _mm256_madd_epi16(
                _mm256_maddubs_epi16(_mm256_load_si256((const __m256i *)(const void *)u[i].aw[L]),
                                     _mm256_sign_epi8(bcast4(y[i].qs + 4 * L), w)),
                ones);
            acc[L] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(p), acc[L]);
        }
    }
    return reduce8(acc);
}

/* Blocks of the stack buffers; longer rows take the heap. */
#define STACK_BLOCKS 64

/* 0, or -1 when a heap buffer (rows of more than 2048 values with 2+ tokens, 8192 with one)
 * cannot be allocated (nothing written then). */
static TGT int matmul_x8_avx2(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                              float *out, size_t os) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q50x8_group_bytes(n);
    if (nx == 1) {
        __m256i stack[4 * STACK_BLOCKS], *act16 = stack;
        if (nb > 4 * STACK_BLOCKS && !(act16 = aligned_alloc(32, (size_t)nb * sizeof *act16))) return -1;
        act16_of(xq, nb, act16);
        for (int64_t k = 0, g0 = r0 / 8, ng = (r1 + 7) / 8 - g0; k < ng; k++) { /* decode in parts (etok_decode_order) */
            const int64_t g = g0 + etok_decode_order(k, ng);
            const int64_t lo = g * 8 > r0 ? g * 8 : r0, hi = g * 8 + 8 < r1 ? g * 8 + 8 : r1;
            store8(group_dec(packed + (size_t)g * gb, xq, act16, nb), g * 8, lo, hi, out);
        }
        if (act16 != stack) free(act16);
        return 0;
    }
    return etok_x8_prefill_avx2(packed, gb, r0, r1, xq, nb, nx, out, os, unpack_group);
}

TGT int etok_x8_prefill_avx2(const uint8_t *packed, size_t gb, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                             int64_t nb, int nx, float *out, size_t os,
                             void (*unpack)(const uint8_t *grp, int64_t nb, etok_x8_unpacked *u)) {
    etok_x8_unpacked stack_u[STACK_BLOCKS] __attribute__((aligned(32)));
    etok_x8_unpacked *u = stack_u;
    if (nb > STACK_BLOCKS && !(u = aligned_alloc(32, (size_t)nb * sizeof *u))) return -1;
    for (int64_t g = r0 / 8; g * 8 < r1; g++) {
        const int64_t lo = g * 8 > r0 ? g * 8 : r0, hi = g * 8 + 8 < r1 ? g * 8 + 8 : r1;
        unpack(packed + (size_t)g * gb, nb, u);
        for (int t = 0; t < nx; t++)
            store8(group_pre(u, xq + (size_t)t * (size_t)nb, nb), g * 8, lo, hi, out + (size_t)t * os);
    }
    if (u != stack_u) free(u);
    return 0;
}
#endif

void etok_matmul_q50x8(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                       float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(ETOK_T_Q5_0, ETOK_AMX_Q50X8, packed, 0, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_decode_copy_avx512(ETOK_AMX_Q50X8, ETOK_T_Q5_0, packed, r0, r1, xq, n, nx, out, out_stride)) return;
    /* (a failed allocation, for long rows: the scalar path, the same bits) */
    if (etok_simd_active() && matmul_x8_avx2(packed, r0, r1, xq, n, nx, out, out_stride) == 0) return;
#endif
    etok_matmul_q50x8_ref(packed, r0, r1, xq, n, nx, out, out_stride);
}
