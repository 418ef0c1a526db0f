/* quant_q4_1.c — Q4_1 and Q5_1 matrices repacked at load into an 8-row interleaved layout
 * ("Q4_1x8", "Q5_1x8"), with kernels that give, per row, exactly the bits of the file-layout
 * AVX2 kernels (quant_avx2.c's dot_q4_1 / dot_q5_1, whose order is llama.cpp's
 * ggml_vec_dot_q4_1_q8_1 / ggml_vec_dot_q5_1_q8_1 AVX2 order).
 *
 * The order being kept, per row: 8 float lanes acc[0..7] = 0 and one scalar summ = 0; per
 * block i, lane L of the block's integer dot (L < 4: the low nibbles of quant bytes 4L..4L+3
 * times activations 4L..4L+3; L >= 4: the high nibbles of bytes 4(L-4).. times activations
 * 16+4(L-4)..; each an exact 4-product integer sum) enters acc[L] = fma(d_w * d_a, (float)sum,
 * acc[L]), and summ = summ + m_w * s_a (a product then a sum, not fused). Result:
 * ((acc0 + acc4) + (acc2 + acc6)) + ((acc1 + acc5) + (acc3 + acc7)) + summ (etok_hsum_ps).
 *
 * Why a new layout: the file-layout kernels spend most of their instructions per row and block
 * on work that is the same for 8 rows side by side (the F16 scale and min conversions, the
 * scale broadcast, the scalar min chain, the nibble unpacking of 16-byte halves). In the
 * repacked layout one 32-byte load holds 4 quant bytes of each of 8 rows, so a maddubs against
 * a broadcast 4-byte activation group and a madd give lane L of all 8 rows in one vector (one
 * 32-bit lane per row): the 8 accumulators are kept transposed (vector L, lane k = row k's
 * acc[L]), the scales of 8 rows are one F16 conversion and one multiply, the 8 min chains one
 * vector chain, and the final reduction is 7 vertical adds giving 8 rows' results in one
 * vector. Every float operation per row is the one listed above: the same bits.
 *
 * Layout of a group of 8 rows (row r in group r / 8, lane k = r % 8), nb blocks, block i at
 * i x BS (BS = 160 for Q4_1, 192 for Q5_1 = 8 x the file's block size, so the copy has the
 * matrix's size):
 *   [0, 128)   quant bytes: chunk c (0..3) at 32c, row k's bytes qs[4c .. 4c+3] at 32c + 4k
 *   Q5_1 only: [128, 160) the 5th bits: byte p = 4k + j holds, in bit c, bit 4c+j of row k's
 *              qh (the value of chunk c's low nibble at p) and, in bit 4+c, bit 16+4c+j (the
 *              value of the high nibble): chunk c's 5th bits are (H << (4-c)) & 0x10 and
 *              (H >> c) & 0x10 with 16-bit shifts
 *   then 8 F16 d (row k at 2k), then 8 F16 m.
 * Owns: which matrices take it (etok_q41x8_applies), packing, reading a row back, the scalar
 * reference (the order above spelled out from the packed bytes) and the AVX2 kernel (1 or
 * more tokens). Does not own: the activation quantisation, the thread split, which matrices are
 * repacked and when (model.c, repack at load, AVX2 level only). Tests: test_quant_q4_1.c. */
#include "engine/quant.h"

#include <math.h>
#include <string.h>

#include "engine/quant_simd.h"

int etok_q41x8_applies(uint32_t type, int64_t n_out, int64_t n_in) {
    return (type == ETOK_T_Q4_1 || type == ETOK_T_Q5_1) && n_out > 0 && n_out % 8 == 0 && n_in > 0 &&
           n_in % ETOK_QK == 0;
}

/* bytes of one block of 8 rows, and offsets inside it */
static size_t blk8(uint32_t type) { return type == ETOK_T_Q5_1 ? 8u * sizeof(etok_block_q5_1) : 8u * sizeof(etok_block_q4_1); }
static size_t off_d(uint32_t type) { return type == ETOK_T_Q5_1 ? 160u : 128u; }
#define OFF_H 128u

size_t etok_q41x8_group_bytes(uint32_t type, int64_t n_in) { return (size_t)(n_in / ETOK_QK) * blk8(type); }

/* the file's block of row k at i -> its place in the 8-row block B */
static void put_block(uint32_t type, const uint8_t *src, int k, uint8_t *B) {
    const uint8_t *qs, *d, *m, *qh = NULL;
    if (type == ETOK_T_Q5_1) {
        const etok_block_q5_1 *b = (const etok_block_q5_1 *)src;
        qs = b->qs, d = (const uint8_t *)&b->d, m = (const uint8_t *)&b->m, qh = b->qh;
    } else {
        const etok_block_q4_1 *b = (const etok_block_q4_1 *)src;
        qs = b->qs, d = (const uint8_t *)&b->d, m = (const uint8_t *)&b->m;
    }
    for (int c = 0; c < 4; c++) memcpy(B + 32 * c + 4 * k, qs + 4 * c, 4);
    memcpy(B + off_d(type) + 2 * k, d, 2);
    memcpy(B + off_d(type) + 16 + 2 * k, m, 2);
    if (qh) {
        uint32_t h;
        memcpy(&h, qh, 4);
        for (int j = 0; j < 4; j++) {
            uint8_t v = 0;
            for (int c = 0; c < 4; c++)
                v |= (uint8_t)((((h >> (4 * c + j)) & 1u) << c) | (((h >> (16 + 4 * c + j)) & 1u) << (4 + c)));
            B[OFF_H + 4 * k + j] = v;
        }
    }
}

void etok_q41x8_pack(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst) {
    const int64_t nb = n_in / ETOK_QK;
    const size_t bs = blk8(type), fb = bs / 8;
    for (int64_t g = 0; g < n_rows / 8; g++)
        for (int k = 0; k < 8; k++) {
            const uint8_t *row = w + (size_t)(8 * g + k) * row_bytes;
            for (int64_t i = 0; i < nb; i++) put_block(type, row + (size_t)i * fb, k, dst + ((size_t)g * (size_t)nb + (size_t)i) * bs);
        }
}

void etok_q41x8_get_block(uint32_t type, const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, void *out) {
    const int64_t nb = n_in / ETOK_QK;
    const size_t bs = blk8(type);
    const uint8_t *B = packed + ((size_t)(r / 8) * (size_t)nb + (size_t)i) * bs;
    const int k = (int)(r % 8);
    uint8_t *qs, *d, *m;
    if (type == ETOK_T_Q5_1) {
        etok_block_q5_1 *b = out;
        qs = b->qs, d = (uint8_t *)&b->d, m = (uint8_t *)&b->m;
        uint32_t h = 0;
        for (int j = 0; j < 4; j++)
            for (int c = 0; c < 4; c++) {
                const uint8_t v = B[OFF_H + 4 * k + j];
                h |= (uint32_t)((v >> c) & 1u) << (4 * c + j);
                h |= (uint32_t)((v >> (4 + c)) & 1u) << (16 + 4 * c + j);
            }
        memcpy(b->qh, &h, 4);
    } else {
        etok_block_q4_1 *b = out;
        qs = b->qs, d = (uint8_t *)&b->d, m = (uint8_t *)&b->m;
    }
    for (int c = 0; c < 4; c++) memcpy(qs + 4 * c, B + 32 * c + 4 * k, 4);
    memcpy(d, B + off_d(type) + 2 * k, 2);
    memcpy(m, B + off_d(type) + 16 + 2 * k, 2);
}

void etok_q41x8_dequantize_row(uint32_t type, const uint8_t *packed, int64_t n_in, int64_t r, float *out) {
    for (int64_t i = 0; i < n_in / ETOK_QK; i++) {
        etok_block_q5_1 b; /* the larger of the two */
        etok_q41x8_get_block(type, packed, n_in, r, i, &b);
        etok_dequantize_row(type, &b, out + (size_t)i * ETOK_QK, ETOK_QK);
    }
}

/* The order of the top comment for lane k of a group, read from the packed bytes. */
static float lane_ref(uint32_t type, const uint8_t *grp, int64_t nb, int k, const etok_block_q8a *y) {
    const size_t bs = blk8(type);
    float acc[8] = {0}, summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * bs;
        uint16_t dh, mh;
        memcpy(&dh, B + off_d(type) + 2 * k, 2);
        memcpy(&mh, B + off_d(type) + 16 + 2 * k, 2);
        const float scale = etok_f16_to_f32(dh) * y[i].d;
        for (int c = 0; c < 4; c++) {
            int lo = 0, hi = 0;
            for (int j = 0; j < 4; j++) {
                const uint8_t q = B[32 * c + 4 * k + j];
                int ql = q & 0xF, qh = q >> 4;
                if (type == ETOK_T_Q5_1) {
                    const uint8_t h = B[OFF_H + 4 * k + j];
                    ql |= ((h >> c) & 1) << 4;
                    qh |= ((h >> (4 + c)) & 1) << 4;
                }
                lo += ql * y[i].qs[4 * c + j];
                hi += qh * y[i].qs[16 + 4 * c + j];
            }
            acc[c] = fmaf(scale, (float)lo, acc[c]);
            acc[4 + c] = fmaf(scale, (float)hi, acc[4 + c]);
        }
        const float p = etok_f16_to_f32(mh) * y[i].s; /* (two statements: never fused) */
        summ = summ + p;
    }
    const float s0 = acc[4] + acc[0], s1 = acc[5] + acc[1], s2 = acc[6] + acc[2], s3 = acc[7] + acc[3];
    const float t0 = s0 + s2, t1 = s1 + s3;
    const float h = t0 + t1;
    return h + summ;
}

void etok_matmul_q41x8_ref(uint32_t type, const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                           int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = etok_q41x8_group_bytes(type, n);
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++)
            out[(size_t)j * out_stride + (size_t)r] =
                lane_ref(type, packed + (size_t)(r / 8) * gb, nb, (int)(r % 8), xq + (size_t)j * (size_t)nb);
}

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET
#define AI __attribute__((always_inline))

static inline AI TGT __m256i bcast4(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm256_set1_epi32(v);
}

/* One chunk c of a block: lanes c and 4 + c of 8 rows. lo / hi: the values (0..31). */
static inline AI TGT void chunk(__m256i lo, __m256i hi, const int8_t *a, int c, __m256 scale, __m256 acc[8]) {
    const __m256i one16 = _mm256_set1_epi16(1);
    const __m256i plo = _mm256_madd_epi16(_mm256_maddubs_epi16(lo, bcast4(a + 4 * c)), one16);
    const __m256i phi = _mm256_madd_epi16(_mm256_maddubs_epi16(hi, bcast4(a + 16 + 4 * c)), one16);
    acc[c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(plo), acc[c]);
    acc[4 + c] = _mm256_fmadd_ps(scale, _mm256_cvtepi32_ps(phi), acc[4 + c]);
}

/* One group of 8 rows against one activation vector: the 8 rows' results in res. Q5 is a
 * compile-time constant at each call. Integer lanes exact (maddubs pairs <= 2 x 31 x 127).
 * pf: decode, which streams each matrix once: every block asks for the lines ETOK_PF_Q41X8
 * bytes on (the groups are contiguous; quant_simd.h's table). */
static inline AI TGT void group1(const uint8_t *grp, const int Q5, const etok_block_q8a *y, int64_t nb, float res[8], const int pf) {
    const size_t bs = Q5 ? 192 : 160, od = Q5 ? 160 : 128;
    const __m256i m4 = _mm256_set1_epi8(0x0F), b5 = _mm256_set1_epi8(0x10);
    __m256 acc[8], summ = _mm256_setzero_ps();
    for (int L = 0; L < 8; L++) acc[L] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *B = grp + (size_t)i * bs;
        const int8_t *a = y[i].qs;
        if (pf)
            for (size_t o = 0; o < bs; o += 64) _mm_prefetch((const char *)(B + ETOK_PF_Q41X8 + o), _MM_HINT_T0);
        const __m256 scale = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(B + od))), _mm256_set1_ps(y[i].d));
        const __m256 mins = _mm256_mul_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(B + od + 16))), _mm256_set1_ps(y[i].s));
        summ = _mm256_add_ps(summ, mins);
        __m256i raw[4];
        for (int c = 0; c < 4; c++) raw[c] = _mm256_loadu_si256((const __m256i *)(B + 32 * c));
        if (Q5) {
            const __m256i H = _mm256_loadu_si256((const __m256i *)(B + OFF_H));
            chunk(_mm256_or_si256(_mm256_and_si256(raw[0], m4), _mm256_and_si256(_mm256_slli_epi16(H, 4), b5)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[0], 4), m4), _mm256_and_si256(H, b5)), a, 0, scale, acc);
            chunk(_mm256_or_si256(_mm256_and_si256(raw[1], m4), _mm256_and_si256(_mm256_slli_epi16(H, 3), b5)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[1], 4), m4), _mm256_and_si256(_mm256_srli_epi16(H, 1), b5)),
                  a, 1, scale, acc);
            chunk(_mm256_or_si256(_mm256_and_si256(raw[2], m4), _mm256_and_si256(_mm256_slli_epi16(H, 2), b5)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[2], 4), m4), _mm256_and_si256(_mm256_srli_epi16(H, 2), b5)),
                  a, 2, scale, acc);
            chunk(_mm256_or_si256(_mm256_and_si256(raw[3], m4), _mm256_and_si256(_mm256_slli_epi16(H, 1), b5)),
                  _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[3], 4), m4), _mm256_and_si256(_mm256_srli_epi16(H, 3), b5)),
                  a, 3, scale, acc);
        } else {
            for (int c = 0; c < 4; c++)
                chunk(_mm256_and_si256(raw[c], m4), _mm256_and_si256(_mm256_srli_epi16(raw[c], 4), m4), a, c, scale, acc);
        }
    }
    /* etok_hsum_ps of every row at once: lane k of each vector is row k */
    const __m256 s0 = _mm256_add_ps(acc[4], acc[0]), s1 = _mm256_add_ps(acc[5], acc[1]);
    const __m256 s2 = _mm256_add_ps(acc[6], acc[2]), s3 = _mm256_add_ps(acc[7], acc[3]);
    const __m256 h = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
    _mm256_storeu_ps(res, _mm256_add_ps(h, summ));
}

static inline AI TGT void matmul_x8(const uint8_t *packed, const int Q5, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                                    int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const size_t gb = (size_t)nb * (Q5 ? 192u : 160u);
    const int64_t g0 = r0 / 8, ng = (r1 + 7) / 8 - g0;
    for (int64_t k = 0; k < ng; k++) { /* decode in parts (etok_decode_order) */
        const int64_t g = g0 + (nx <= 2 ? etok_decode_order(k, ng) : k);
        const uint8_t *grp = packed + (size_t)g * gb;
        const int64_t lo = g * 8 > r0 ? g * 8 : r0, hi = g * 8 + 8 < r1 ? g * 8 + 8 : r1;
        for (int j = 0; j < nx; j++) {
            float res[8], *o = out + (size_t)j * out_stride;
            group1(grp, Q5, xq + (size_t)j * (size_t)nb, nb, res, nx <= 2);
            if (hi - lo == 8)
                _mm256_storeu_ps(o + lo, _mm256_loadu_ps(res));
            else
                for (int64_t r = lo; r < hi; r++) o[r] = res[r - g * 8];
        }
    }
}

static TGT void matmul_q4_1x8_avx2(const uint8_t *p, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                                   float *out, size_t out_stride) {
    matmul_x8(p, 0, r0, r1, xq, n, nx, out, out_stride);
}

static TGT void matmul_q5_1x8_avx2(const uint8_t *p, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                                   float *out, size_t out_stride) {
    matmul_x8(p, 1, r0, r1, xq, n, nx, out, out_stride);
}
#endif

void etok_matmul_q41x8(uint32_t type, const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                       int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(type, ETOK_AMX_Q41X8, packed, 0, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_decode_copy_avx512(ETOK_AMX_Q41X8, type, packed, r0, r1, xq, n, nx, out, out_stride)) return;
    if (etok_simd_active()) {
        if (type == ETOK_T_Q5_1) matmul_q5_1x8_avx2(packed, r0, r1, xq, n, nx, out, out_stride);
        else matmul_q4_1x8_avx2(packed, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
#endif
    etok_matmul_q41x8_ref(type, packed, r0, r1, xq, n, nx, out, out_stride);
}
