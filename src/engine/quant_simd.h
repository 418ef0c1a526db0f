/* quant_simd.h — internal: the AVX2/FMA kernels of quant_avx2.c, the AVX-512 ones of
 * quant_avx512.c, and the K-quant and Q5 unpack helpers shared with quant.c. Not for use outside src/engine/quant*.c and tests. */
#ifndef ETOK_ENGINE_QUANT_SIMD_H
#define ETOK_ENGINE_QUANT_SIMD_H

#include "engine/quant.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define ETOK_HAVE_X86_SIMD 1
#else
#define ETOK_HAVE_X86_SIMD 0
#endif

void etok_k4_scales(const uint8_t scales[12], uint8_t sc[8], uint8_t mn[8]);
void etok_q4k_scales(const etok_block_q4_k *b, uint8_t sc[8], uint8_t mn[8]);
void etok_q4k_unpack(const etok_block_q4_k *b, uint8_t q[ETOK_QK_K]);
void etok_q6k_unpack(const etok_block_q6_k *b, int8_t q[ETOK_QK_K]);
void etok_q5k_unpack(const etok_block_q5_k *b, uint8_t q[ETOK_QK_K]);
void etok_q2k_unpack(const etok_block_q2_k *b, uint8_t q[ETOK_QK_K]);
void etok_q3k_unpack(const etok_block_q3_k *b, int8_t q[ETOK_QK_K]);
void etok_q3k_scales(const etok_block_q3_k *b, int8_t sc[16]);
void etok_q5_unpack(const uint8_t qh[4], const uint8_t qs[ETOK_QK / 2], uint8_t q[ETOK_QK]);

/* Decode reads each weight matrix once, and one pinned core of this EPYC guest reads memory
 * ~25% faster in several sequential streams than in one (docs/ENGINE.md, "Decode in parts"). A
 * decode kernel over n row groups therefore takes them in this order: the first parts x
 * floor(n / parts) groups cut into `parts` equal runs and taken one group of each in turn, then
 * the rest in order. etok_part_order(i, n, parts) is the group taken i-th (a permutation of
 * 0..n-1; each group's result is the same in any order). The Q4_0x8, Q4_1x8 / Q5_1x8, Q8_0x4
 * and Q5_0x8 decode kernels use 2 parts (4 measured slower); IQ4_NLx8 stays in one (2 parts
 * measured 6% slower, within the noise); the float kernels have their own (matmul_float.c). */
#define ETOK_DECODE_PARTS 2
static inline int64_t etok_part_order(int64_t i, int64_t n, int parts) {
    const int64_t h = n / parts;
    return i < parts * h ? (i % parts) * h + i / parts : i;
}
/* The decode kernels' order over n row groups: in ETOK_DECODE_PARTS parts when each part is at
 * least ETOK_DECODE_PART_MIN groups long, else in order (short parts were slower: with two
 * threads a chunk is 1/16 of a matrix, and parts of it decoded 5-15% slower than one stream). */
#define ETOK_DECODE_PART_MIN 32
static inline int64_t etok_decode_order(int64_t i, int64_t n) {
    return n >= ETOK_DECODE_PARTS * ETOK_DECODE_PART_MIN ? etok_part_order(i, n, ETOK_DECODE_PARTS) : i;
}

#if ETOK_HAVE_X86_SIMD
#include <immintrin.h>
#include <string.h>

/* What the AVX2 code of quant_avx2.c, quant_k.c, quant_q4_0.c and vmath.c is compiled for
 * (per function, so the binary still runs on any x86-64; callers check etok_simd_active). */
#define ETOK_AVX2_TARGET __attribute__((target("avx2,fma,f16c")))

/* The sum of 8 lanes in ggml's hsum_float_8 order: high half + low half, then pairs, then the
 * last two (the kernels that mirror llama.cpp depend on this order). */
static inline ETOK_AVX2_TARGET float etok_hsum_ps(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 16 bytes of nibbles -> 32 bytes: low nibbles (values 0..15) then high nibbles (16..31). */
static inline ETOK_AVX2_TARGET __m256i etok_unpack_nibbles(const uint8_t *qs) {
    __m128i b = _mm_loadu_si128((const __m128i *)(const void *)qs);
    __m256i x = _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1);
    return _mm256_and_si256(x, _mm256_set1_epi8(0x0F));
}

/* The 5th bits of a Q5_0/Q5_1 block as 32 bytes in value order: 0x10 where bit j of qh (a
 * little-endian uint32) is set, else 0. Byte j of the result takes byte j/8 of qh and tests
 * bit j%8 of it. */
static inline ETOK_AVX2_TARGET __m256i etok_q5_high_bits(const uint8_t qh[4]) {
    uint32_t h;
    memcpy(&h, qh, 4); /* x86 is little-endian, as the file */
    const __m256i sel = _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, /* lane 0: bytes 0, 1 */
                                         2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3); /* lane 1: bytes 2, 3 */
    const __m256i bit = _mm256_set1_epi64x(0x8040201008040201LL);
    __m256i v = _mm256_and_si256(_mm256_shuffle_epi8(_mm256_set1_epi32((int)h), sel), bit);
    return _mm256_and_si256(_mm256_cmpeq_epi8(v, bit), _mm256_set1_epi8(0x10));
}

void etok_quantize_q8a_avx2(const float *x, etok_block_q8a *out, int64_t n);
float etok_vec_dot_avx2(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n);
void etok_vec_dot_multi_avx2(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf,
                             int64_t n, int nx, float *out, size_t out_stride);
/* quant_q5_0.c's register-tiled Q5_0 / IQ4_NL prefill kernel (nx >= 2): 0, or -1 when its
 * buffer for rows of more than 2048 values cannot be allocated (nothing written then). */
int etok_matmul_q5_0_avx2(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                          int64_t n, int nx, float *out, size_t out_stride);
void etok_matmul_rows_avx2(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                           const etok_block_q8a *xq, const float *xf, int64_t n, int nx, float *out, size_t out_stride);
void etok_attn_scores_avx2(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                           float *out);
void etok_attn_accum_avx2(uint32_t type, const float *w, const uint8_t *v0, size_t stride, int first_pos, int n, int hd,
                          float *out);
void etok_round_f16_avx2(float *x, int n);
void etok_attn_scores_multi_avx2(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                 float *out, size_t out_stride);
void etok_attn_accum_multi_avx2(const float *w, size_t w_stride, int g, int n_seg, const uint8_t *const *v0,
                                const int *first_pos, const int *n, size_t stride, int hd, float *out);
void etok_f32_to_f16_row_avx2(const float *x, void *out, int n);
/* Prefill over an 8-row interleaved copy of a 32-value signed format (Q5_0x8, IQ4_NLx8, Q8_0x4
 * taken two 4-row groups at a time): each group of 8 rows unpacked once per call, per block, into
 * 8 value vectors (vector L: the values 4L..4L+3 of every row, row k in bytes 4k..4k+3) as signed
 * bytes w and |w|, and the rows' scales as floats; then per token 8 rows x 1 token with the sign trick (maddubs(|w|, sign(a, w))),
 * acc[L] = fma(d_w * d_a, (float)lane sum, acc[L]) over the blocks and the rows' results reduced
 * as etok_hsum_ps: the file-layout kernels' order (quant_q5_0x8.c). */
typedef struct {
    int8_t w[8][32];
    uint8_t aw[8][32];
    float d[8];
} etok_x8_unpacked;
/* The lane gather both 8-row unpackings share: lo holds dwords 0-7 of rows 0-3 (dword 2j + e is
 * row j's chunk e), hi the same of rows 4-7; lane[e] gets chunk e of rows 0..7 (row k in dword k). */
static inline ETOK_AVX2_TARGET void etok_x8_gather_lanes(const void *lo, const void *hi, __m256i lane[2]) {
    const __m256i even_odd = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i a = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)lo), even_odd);
    const __m256i b = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)hi), even_odd);
    lane[0] = _mm256_permute2x128_si256(a, b, 0x20);
    lane[1] = _mm256_permute2x128_si256(a, b, 0x31);
}
/* IQ4_NLx8's one-token finish (quant_iq4_nlx8.c's AVX2 kernel and quant_avx512.c's zmm one,
 * which hands over its two ymm halves): the transposed sums of half 0 (A, rows 0-3; vector q
 * slot (k, j) = lane 2k + j) and half 1 (C, rows 4-7) reduced in hsum order to rows 0..7. */
static inline ETOK_AVX2_TARGET __m256 etok_iq4x8_reduce(const __m256 A[4], const __m256 C[4]) {
    const __m256 ua = _mm256_add_ps(_mm256_add_ps(A[2], A[0]), _mm256_add_ps(A[3], A[1]));
    const __m256 uc = _mm256_add_ps(_mm256_add_ps(C[2], C[0]), _mm256_add_ps(C[3], C[1]));
    /* [a0 a1 c0 c1 | a2 a3 c2 c3] -> [a0 a1 a2 a3 c0 c1 c2 c3] */
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(_mm256_hadd_ps(ua, uc)), 0xD8));
}
/* ... plus an odd last block after it: r + s * (float)(row sum), its integer slot sums ta / tc
 * and its slot scales sa / sc (times d_a) per half, rows 0..7 as above. */
static inline ETOK_AVX2_TARGET __m256 etok_iq4x8_tail(__m256 r, __m256i ta, __m256i tc, __m256 sa, __m256 sc) {
    const __m256i t = _mm256_permute4x64_epi64(_mm256_hadd_epi32(ta, tc), 0xD8);
    const __m256 s = _mm256_castpd_ps(_mm256_permute4x64_pd(
        _mm256_castps_pd(_mm256_shuffle_ps(sa, sc, _MM_SHUFFLE(2, 0, 2, 0))), 0xD8));
    return _mm256_add_ps(r, _mm256_mul_ps(s, _mm256_cvtepi32_ps(t)));
}
/* Rows [r0, r1) of a copy of groups of gb bytes against nx tokens (out + t * os), unpack
 * filling one group's nb blocks: 0, or -1 when a heap buffer (rows of more than 2048 values)
 * cannot be allocated (nothing written then). */
int etok_x8_prefill_avx2(const uint8_t *packed, size_t gb, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t nb,
                         int nx, float *out, size_t os,
                         void (*unpack)(const uint8_t *grp, int64_t nb, etok_x8_unpacked *u));
void etok_vec_axpy_avx2(uint32_t type, float a, const void *row, float *y, int64_t n);

/* What the AVX-512 kernels of quant_avx512.c are compiled for (called only at kernel level
 * avx512, etok_isa_active). They return the AVX2 kernels' bits (quant_avx512.c). */
#ifndef ETOK_AVX512_TARGET /* tests/isa/avx512_emu.h defines it to test the kernels' logic on AVX2 */
#define ETOK_AVX512_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#endif
/* 1 for the types quant_avx512.c has kernels for (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL). */
int etok_avx512_handles(uint32_t type);
/* As the _avx2 functions of the same name, for the types etok_avx512_handles accepts. */
float etok_vec_dot_avx512(uint32_t type, const void *row, const etok_block_q8a *xq, int64_t n);
void etok_vec_dot_multi_avx512(uint32_t type, const void *row, const etok_block_q8a *xq, int64_t n, int nx, float *out,
                               size_t out_stride);
void etok_matmul_rows_avx512(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                             const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
/* The decode of a repacked copy at level avx512 and above (quant_avx512.c): two row groups per
 * zmm, the AVX2 kernel's bits. Runs, and returns 1, for ETOK_AMX_Q41X8 (type Q4_1 or Q5_1) with
 * 1 or 2 tokens and for ETOK_AMX_Q4_0X8, ETOK_AMX_Q8X4, ETOK_AMX_Q50X8 with 1, ETOK_AMX_IQ4NLX8
 * with 1 (one group per zmm, its two halves side by side); else returns 0
 * (the caller's AVX2 kernel). Arguments as the copy's matmul. */
int etok_decode_copy_avx512(etok_amx_layout layout, uint32_t type, const uint8_t *packed, int64_t r0, int64_t r1,
                            const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
/* The AMX-INT8 prefill kernel of quant_amx.c (level amx only, etok_amx_applies): rows [r0, r1)
 * of `type` in `layout` (the file's rows of row_bytes, or a repacked copy of n_in = n values a
 * row, row_bytes unused), arguments otherwise as etok_matmul_rows. Every layout of a matrix
 * gives the same bits: etok_matmul_rows_amx_ref's. */
void etok_matmul_amx(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                     const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
/* The dispatch every matmul entry shares: at level amx, for a product etok_amx_applies to, runs
 * etok_matmul_amx and returns 1; else 0 (the caller's own kernels run). */
int etok_amx_prefill(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                     const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
#endif

/* Decode streams each repacked matrix once: every one-token kernel prefetches (T0) the lines
 * this many bytes ahead in its stream(s). One table for the AVX2 and AVX-512 kernels of each
 * layout. Measured on the Xeon, three distances interleaved (docs/ENGINE.md, "Decode prefetch
 * distances"): 8192 for Q4_1x8, IQ4_NLx8 and Q4_0x8 (1.35x, 1.18x, 1.06x their earlier 1536,
 * 1536 and 4096), Q8_0x4 and Q5_0x8 best where they were. On the EPYC, earlier sweeps could
 * not tell 768 from 4096 bytes apart, and the new distances measured no worse there. -D
 * overrides, for sweeps. */
#ifndef ETOK_PF_Q41X8
#define ETOK_PF_Q41X8 8192 /* Q4_1x8, Q5_1x8 */
#endif
#ifndef ETOK_PF_Q40X8
#define ETOK_PF_Q40X8 8192
#endif
#ifndef ETOK_PF_Q8X4
#define ETOK_PF_Q8X4 1536
#endif
#ifndef ETOK_PF_Q50X8
#define ETOK_PF_Q50X8 4096
#endif
#ifndef ETOK_PF_IQ4X8
#define ETOK_PF_IQ4X8 8192
#endif

#endif
