/* quant_avx2.c — AVX2/FMA/F16C versions of the dot kernels and the activation quantiser.
 *
 * Each function is compiled for avx2+fma+f16c with a target attribute, so the binary still
 * runs on any x86-64: quant.c calls these only after __builtin_cpu_supports said yes.
 * Integer dot products use maddubs (u8 x s8 -> s16 pairs) then madd (-> s32), as the 4-bit
 * weights are non-negative nibbles and activations are 8-bit. Each kernel must equal the
 * scalar reference in quant.c up to float summation order (tests/unit/test_quant.c). */
#include "engine/quant_simd.h"

#if ETOK_HAVE_X86_SIMD

#include <string.h>

#define TGT ETOK_AVX2_TARGET
#define hsum_ps etok_hsum_ps

static inline TGT float h2f(etok_f16 h) { return _cvtsh_ss(h); }

/* s + a * b, the product rounded then added: never fused. GCC in ISO C mode never contracts;
 * clang (-ffp-contract=on) fuses a * b + c written as one expression, which would round the
 * Q4_1 / Q5_1 min terms differently from llama.cpp and from quant_q4_1.c's repacked kernels.
 * Separate statements are not fused. */
static inline TGT float add_prod(float s, float a, float b) {
    const float p = a * b;
    return s + p;
}

/* Sum of u8*s8 products of 32 bytes as 8 int32 lanes. */
static inline TGT __m256i dot_us8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* Signed x signed via the sign trick. */
static inline TGT __m256i dot_ss8(__m256i a, __m256i b) {
    return dot_us8(_mm256_sign_epi8(a, a), _mm256_sign_epi8(b, a));
}

void TGT etok_quantize_q8a_avx2(const float *x, etok_block_q8a *out, int64_t n) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t i = 0; i < n / ETOK_QK; i++) {
        const float *v = x + i * ETOK_QK;
        __m256 v0 = _mm256_loadu_ps(v), v1 = _mm256_loadu_ps(v + 8), v2 = _mm256_loadu_ps(v + 16),
               v3 = _mm256_loadu_ps(v + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4);
        float d = amax / 127.0f, id = d ? 127.0f / amax : 0.0f;
        __m256 mul = _mm256_set1_ps(id);
        __m256i i0 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v0, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i1 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v1, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i2 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v2, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i i3 = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v3, mul), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        __m256i s = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        int sum = _mm_cvtsi128_si32(s4);
        __m256i p01 = _mm256_packs_epi32(i0, i1), p23 = _mm256_packs_epi32(i2, i3);
        __m256i p = _mm256_packs_epi16(p01, p23);
        p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256((__m256i *)out[i].qs, p);
        out[i].d = _cvtsh_ss(_cvtss_sh(d, 0));
        out[i].s = _cvtsh_ss(_cvtss_sh(d * (float)sum, 0));
    }
}

/* One accumulator, blocks in order, the "+ m*s" terms summed separately: the same float
 * operation order as llama.cpp's AVX2 path, so both engines round identically. */
static TGT float dot_q4_1(const etok_block_q4_1 *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int64_t i = 0; i < nb; i++) {
        summ = add_prod(summ, h2f(b[i].m), y[i].s);
        __m256i p = dot_us8(etok_unpack_nibbles(b[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * y[i].d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc) + summ;
}

static TGT float dot_q4_0(const etok_block_q4_0 *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float corr = 0;
    for (int64_t i = 0; i < nb; i++) {
        float dw = h2f(b[i].d);
        __m256i p = dot_us8(etok_unpack_nibbles(b[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * y[i].d), _mm256_cvtepi32_ps(p), acc);
        corr += dw * 8.0f * y[i].s;
    }
    return hsum_ps(acc) - corr;
}

/* Q5_0: the weights are made signed (q - 16, -16..15) so the integer dot is exact and needs
 * no block-sum correction (the activation sum is stored rounded to F16). */
static TGT float dot_q5_0(const etok_block_q5_0 *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i off = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++) {
        __m256i q = _mm256_sub_epi8(_mm256_or_si256(etok_unpack_nibbles(b[i].qs), etok_q5_high_bits(b[i].qh)), off);
        __m256i p = dot_ss8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * y[i].d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc);
}

/* Q5_1: as Q4_1 with the 5th bit or-ed in (values 0..31, unsigned x signed). */
static TGT float dot_q5_1(const etok_block_q5_1 *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    for (int64_t i = 0; i < nb; i++) {
        summ = add_prod(summ, h2f(b[i].m), y[i].s);
        __m256i q = _mm256_or_si256(etok_unpack_nibbles(b[i].qs), etok_q5_high_bits(b[i].qh));
        __m256i p = dot_us8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * y[i].d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc) + summ;
}

static TGT float dot_q8_0(const etok_block_q8_0 *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i p = dot_ss8(_mm256_loadu_si256((const __m256i *)b[i].qs), _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * y[i].d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc);
}

static TGT float dot_q4_k(const etok_block_q4_k *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        etok_q4k_scales(&b[i], sc, mn);
        float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        const etok_block_q8a *a = y + i * 8;
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * g));
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            __m256i p0 = dot_us8(lo, _mm256_loadu_si256((const __m256i *)a[2 * g].qs));
            __m256i p1 = dot_us8(hi, _mm256_loadu_si256((const __m256i *)a[2 * g + 1].qs));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * g] * a[2 * g].d), _mm256_cvtepi32_ps(p0), acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * g + 1] * a[2 * g + 1].d), _mm256_cvtepi32_ps(p1), acc);
            summ += dmin * (mn[2 * g] * a[2 * g].s + mn[2 * g + 1] * a[2 * g + 1].s);
        }
    }
    return hsum_ps(acc) - summ;
}

static TGT float dot_q6_k(const etok_block_q6_k *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < nb; i++) {
        float d = h2f(b[i].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hh = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                int s = h * 4 + k; /* 32-value sub-block index in the super-block */
                const etok_block_q8a *a = y + i * 8 + s;
                __m256i qs = _mm256_sub_epi8(q[k], off);
                __m256i yy = _mm256_loadu_si256((const __m256i *)a->qs);
                __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(qs, qs), _mm256_sign_epi8(yy, qs));
                __m256i scv = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(b[i].scales[2 * s])),
                                                      _mm_set1_epi16(b[i].scales[2 * s + 1]), 1);
                __m256i p32 = _mm256_madd_epi16(p16, scv);
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(p32), acc);
            }
        }
    }
    return hsum_ps(acc);
}

/* IQ4_NL: the nibbles index the 16-level table with one byte shuffle, then a signed dot. One
 * accumulator, blocks in order: llama.cpp's order for a batch (llamafile's tinyBLAS). */
static TGT float dot_iq4_nl(const etok_block_iq4_nl *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    for (int64_t i = 0; i < nb; i++) {
        __m256i q = _mm256_shuffle_epi8(tbl, etok_unpack_nibbles(b[i].qs));
        __m256i p = dot_ss8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i].d) * y[i].d), _mm256_cvtepi32_ps(p), acc);
    }
    return hsum_ps(acc);
}

/* IQ4_NL for a one-token matmul, in the order of llama.cpp's AVX2 ggml_vec_dot_iq4_nl_q8_0
 * (which it uses when a batch has one token): two accumulators, even and odd blocks, added
 * before the reduction; an odd last block added after it as d * (integer dot). */
static TGT float dot_iq4_nl_1tok(const etok_block_iq4_nl *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    int64_t i = 0;
    for (; i + 1 < nb; i += 2)
        for (int k = 0; k < 2; k++) {
            __m256i q = _mm256_shuffle_epi8(tbl, etok_unpack_nibbles(b[i + k].qs));
            __m256i p = dot_ss8(q, _mm256_loadu_si256((const __m256i *)y[i + k].qs));
            acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[i + k].d) * y[i + k].d), _mm256_cvtepi32_ps(p), acc[k]);
        }
    float sum = hsum_ps(_mm256_add_ps(acc[0], acc[1]));
    if (i < nb) {
        __m256i q = _mm256_shuffle_epi8(tbl, etok_unpack_nibbles(b[i].qs));
        __m256i p = dot_ss8(q, _mm256_loadu_si256((const __m256i *)y[i].qs));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        sum += h2f(b[i].d) * y[i].d * (float)_mm_cvtsi128_si32(s4);
    }
    return sum;
}

/* From 16 int16 scales (one per 16-value sub-block of a super-block), the pair of the 32-value
 * block s as madd operand: scale 2s in the low 128 bits, 2s+1 in the high 128 bits (the two
 * int16 share dword s: broadcast it, then pick its low or high half per lane). */
static inline TGT __m256i pair_i16(__m256i sc16, int s) {
    const __m256i pick = _mm256_setr_epi8(0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 2, 3, 2, 3, 2, 3, 2, 3, 2, 3, 2,
                                          3, 2, 3, 2, 3);
    return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(sc16, _mm256_set1_epi32(s)), pick);
}

/* Q3_K's 16 6-bit scales minus 32, as int8 in a 128-bit vector: the 12 bytes read as three
 * little-endian words a, b, c; scales 0..3 are the low nibbles of a with bits 0-1 of each byte
 * of c on top, 4..7 the low nibbles of b with bits 2-3 of c, 8..11 the high nibbles of a with
 * bits 4-5 of c, 12..15 the high nibbles of b with bits 6-7 of c. */
static inline TGT __m128i q3k_scales16(const uint8_t scales[12]) {
    uint32_t w[3];
    memcpy(w, scales, 12);
    const uint32_t lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    const uint32_t s0 = (w[0] & lo4) | ((w[2] & lo2) << 4), s1 = (w[1] & lo4) | (((w[2] >> 2) & lo2) << 4),
                   s2 = ((w[0] >> 4) & lo4) | (((w[2] >> 4) & lo2) << 4), s3 = ((w[1] >> 4) & lo4) | (((w[2] >> 6) & lo2) << 4);
    return _mm_sub_epi8(_mm_setr_epi32((int)s0, (int)s1, (int)s2, (int)s3), _mm_set1_epi8(32));
}

/* 32 bytes with 0xFF where bit `bit` of the byte is set. */
static inline TGT __m256i bit_set(__m256i v, int bit) {
    const __m256i m = _mm256_set1_epi8((char)(1 << bit));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, m), m);
}

/* Q2_K: per 32-value activation block, the 2-bit values of two 16-value sub-blocks times the
 * activations (maddubs), weighted by their 4-bit scales (madd); the mins likewise against
 * the activations' 16-value sums. Same integers as the reference, summed in float per block. */
static TGT float dot_q2_k(const etok_block_q2_k *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps(), accm = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        const __m128i scm = _mm_loadu_si128((const __m128i *)b[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(scm, _mm_set1_epi8(0x0F)));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scm, 4), _mm_set1_epi8(0x0F)));
        for (int n = 0; n < 2; n++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                const int s = 4 * n + j; /* 32-value block in the super-block */
                const etok_block_q8a *a = y + i * 8 + s;
                const __m256i yq = _mm256_loadu_si256((const __m256i *)a->qs);
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
                __m256i pq = _mm256_madd_epi16(_mm256_maddubs_epi16(q, yq), pair_i16(sc16, s));
                __m256i pm = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, yq), pair_i16(mn16, s));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(pq), acc);
                accm = _mm256_fmadd_ps(_mm256_set1_ps(dmin * a->d), _mm256_cvtepi32_ps(pm), accm);
            }
        }
    }
    return hsum_ps(acc) - hsum_ps(accm);
}

/* Q3_K: low 2 bits as Q2_K, the third bit from hmask (set: +4), minus 4 -> -4..3; a signed
 * dot with the activations, weighted by the signed 6-bit scales (as Q6_K). */
static TGT float dot_q3_k(const etok_block_q3_k *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales16(b[i].scales));
        const float d = h2f(b[i].d);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)b[i].hmask);
        for (int n = 0; n < 2; n++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                const int s = 4 * n + j;
                const etok_block_q8a *a = y + i * 8 + s;
                const __m256i yq = _mm256_loadu_si256((const __m256i *)a->qs);
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
                q = _mm256_sub_epi8(_mm256_or_si256(q, _mm256_and_si256(bit_set(hm, s), four)), four);
                __m256i p16 = _mm256_maddubs_epi16(_mm256_sign_epi8(q, q), _mm256_sign_epi8(yq, q));
                __m256i p32 = _mm256_madd_epi16(p16, pair_i16(sc16, s));
                acc = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(p32), acc);
            }
        }
    }
    return hsum_ps(acc);
}

/* Q5_K: as Q4_K with the 5th bit (bit s of qh[l] for 32-value block s) or-ed in as 16. */
static TGT float dot_q5_k(const etok_block_q5_k *b, const etok_block_q8a *y, int64_t nb) {
    __m256 acc = _mm256_setzero_ps();
    float summ = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        etok_k4_scales(b[i].scales, sc, mn);
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        const etok_block_q8a *a = y + i * 8;
        const __m256i hh = _mm256_loadu_si256((const __m256i *)b[i].qh);
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * g));
            __m256i lo = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(bit_set(hh, 2 * g), sixteen));
            __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                         _mm256_and_si256(bit_set(hh, 2 * g + 1), sixteen));
            __m256i p0 = dot_us8(lo, _mm256_loadu_si256((const __m256i *)a[2 * g].qs));
            __m256i p1 = dot_us8(hi, _mm256_loadu_si256((const __m256i *)a[2 * g + 1].qs));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * g] * a[2 * g].d), _mm256_cvtepi32_ps(p0), acc);
            acc = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * g + 1] * a[2 * g + 1].d), _mm256_cvtepi32_ps(p1), acc);
            summ += dmin * (mn[2 * g] * a[2 * g].s + mn[2 * g + 1] * a[2 * g + 1].s);
        }
    }
    return hsum_ps(acc) - summ;
}

static TGT float dot_f32(const float *w, const float *x, int64_t n) {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
    }
    for (; i + 8 <= n; i += 8) acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(x + i), acc0);
    float s = hsum_ps(_mm256_add_ps(acc0, acc1));
    for (; i < n; i++) s += w[i] * x[i];
    return s;
}

static TGT float dot_f16(const uint8_t *w, const float *x, int64_t n, int bf16) {
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * i));
        __m256 wf = bf16 ? _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16)) : _mm256_cvtph_ps(h);
        acc = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), acc);
    }
    float s = hsum_ps(acc);
    for (; i < n; i++) {
        uint16_t h;
        memcpy(&h, w + 2 * i, 2);
        s += (bf16 ? etok_bf16_to_f32(h) : h2f(h)) * x[i];
    }
    return s;
}

float TGT etok_vec_dot_avx2(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n) {
    switch (type) {
    case ETOK_T_Q4_1: return dot_q4_1(row, xq, n / ETOK_QK);
    case ETOK_T_Q4_0: return dot_q4_0(row, xq, n / ETOK_QK);
    case ETOK_T_Q5_0: return dot_q5_0(row, xq, n / ETOK_QK);
    case ETOK_T_Q5_1: return dot_q5_1(row, xq, n / ETOK_QK);
    case ETOK_T_Q8_0: return dot_q8_0(row, xq, n / ETOK_QK);
    case ETOK_T_Q4_K: return dot_q4_k(row, xq, n / ETOK_QK_K);
    case ETOK_T_Q6_K: return dot_q6_k(row, xq, n / ETOK_QK_K);
    case ETOK_T_IQ4_NL: return dot_iq4_nl(row, xq, n / ETOK_QK);
    case ETOK_T_Q2_K: return dot_q2_k(row, xq, n / ETOK_QK_K);
    case ETOK_T_Q3_K: return dot_q3_k(row, xq, n / ETOK_QK_K);
    case ETOK_T_Q5_K: return dot_q5_k(row, xq, n / ETOK_QK_K);
    case ETOK_T_F32: return dot_f32(row, xf, n);
    case ETOK_T_F16: return dot_f16(row, xf, n, 0);
    case ETOK_T_BF16: return dot_f16(row, xf, n, 1);
    default: return 0;
    }
}

void TGT etok_vec_axpy_avx2(uint32_t type, float a, const void *row, float *y, int64_t n) {
    __m256 av = _mm256_set1_ps(a);
    int64_t i = 0;
    if (type == ETOK_T_F32) {
        const float *r = row;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_loadu_ps(r + i), _mm256_loadu_ps(y + i)));
        for (; i < n; i++) y[i] += a * r[i];
    } else if (type == ETOK_T_F16) {
        const uint8_t *p = row;
        for (; i + 8 <= n; i += 8)
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(av, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * i))),
                                                    _mm256_loadu_ps(y + i)));
        for (; i < n; i++) {
            etok_f16 h;
            memcpy(&h, p + 2 * i, 2);
            y[i] += a * h2f(h);
        }
    }
}

/* One Q4_1 row against 4 activation vectors: each block is unpacked once and used 4 times.
 * Per (row, vector) the float operations are those of dot_q4_1, in the same order, so the
 * results are bit-identical to 4 separate calls. */
static TGT void dot_q4_1_x4(const etok_block_q4_1 *b, const etok_block_q8a *y0, const etok_block_q8a *y1,
                            const etok_block_q8a *y2, const etok_block_q8a *y3, int64_t nb, float out[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        const __m256i q = etok_unpack_nibbles(b[i].qs);
        s0 = add_prod(s0, m, y0[i].s);
        s1 = add_prod(s1, m, y1[i].s);
        s2 = add_prod(s2, m, y2[i].s);
        s3 = add_prod(s3, m, y3[i].s);
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(d * y0[i].d), _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y0[i].qs))), a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(d * y1[i].d), _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y1[i].qs))), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(d * y2[i].d), _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y2[i].qs))), a2);
        a3 = _mm256_fmadd_ps(_mm256_set1_ps(d * y3[i].d), _mm256_cvtepi32_ps(dot_us8(q, _mm256_loadu_si256((const __m256i *)y3[i].qs))), a3);
    }
    out[0] = hsum_ps(a0) + s0;
    out[1] = hsum_ps(a1) + s1;
    out[2] = hsum_ps(a2) + s2;
    out[3] = hsum_ps(a3) + s3;
}

/* Q8_0 likewise (the sign trick's abs of the weights is shared). */
static TGT void dot_q8_0_x4(const etok_block_q8_0 *b, const etok_block_q8a *y0, const etok_block_q8a *y1,
                            const etok_block_q8a *y2, const etok_block_q8a *y3, int64_t nb, float out[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        const __m256i w = _mm256_loadu_si256((const __m256i *)b[i].qs), aw = _mm256_sign_epi8(w, w);
#define Q8STEP(acc, y)                                                                                                 \
    acc = _mm256_fmadd_ps(_mm256_set1_ps(d * (y)[i].d),                                                                \
                          _mm256_cvtepi32_ps(dot_us8(aw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)(y)[i].qs), w))), acc)
        Q8STEP(a0, y0);
        Q8STEP(a1, y1);
        Q8STEP(a2, y2);
        Q8STEP(a3, y3);
#undef Q8STEP
    }
    out[0] = hsum_ps(a0);
    out[1] = hsum_ps(a1);
    out[2] = hsum_ps(a2);
    out[3] = hsum_ps(a3);
}

/* One row against 4 activation vectors for the other q8a formats (prefill): each weight block
 * (super-block for the K formats) is unpacked once and used for the 4 vectors. Per (row,
 * vector) the float operations are those of the single-vector kernel above, in the same
 * order, so the results are bit-identical to 4 separate calls (test_quant: matmul rows). */
#define X4 4
static TGT void dot_q4_0_x4(const etok_block_q4_0 *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    float corr[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps(), corr[v] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const float dw = h2f(b[i].d);
        const __m256i q = etok_unpack_nibbles(b[i].qs);
        for (int v = 0; v < X4; v++) {
            const etok_block_q8a *a = y[v] + i;
            __m256i p = dot_us8(q, _mm256_loadu_si256((const __m256i *)a->qs));
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a->d), _mm256_cvtepi32_ps(p), acc[v]);
            corr[v] += dw * 8.0f * a->s;
        }
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]) - corr[v];
}

/* Q5_0 and IQ4_NL: signed weights (the sign trick's |w| computed once per block). */
static inline TGT void signed32_x4(__m256i q, float dw, const etok_block_q8a *const y[X4], int64_t i, __m256 acc[X4]) {
    const __m256i aq = _mm256_sign_epi8(q, q);
    for (int v = 0; v < X4; v++) {
        const etok_block_q8a *a = y[v] + i;
        __m256i p = dot_us8(aq, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)a->qs), q));
        acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(dw * a->d), _mm256_cvtepi32_ps(p), acc[v]);
    }
}

static TGT void dot_q5_0_x4(const etok_block_q5_0 *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps();
    const __m256i off = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++)
        signed32_x4(_mm256_sub_epi8(_mm256_or_si256(etok_unpack_nibbles(b[i].qs), etok_q5_high_bits(b[i].qh)), off), h2f(b[i].d), y,
                    i, acc);
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]);
}

static TGT void dot_iq4_nl_x4(const etok_block_iq4_nl *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps();
    const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    for (int64_t i = 0; i < nb; i++) signed32_x4(_mm256_shuffle_epi8(tbl, etok_unpack_nibbles(b[i].qs)), h2f(b[i].d), y, i, acc);
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]);
}

static TGT void dot_q5_1_x4(const etok_block_q5_1 *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    float summ[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps(), summ[v] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), m = h2f(b[i].m);
        const __m256i q = _mm256_or_si256(etok_unpack_nibbles(b[i].qs), etok_q5_high_bits(b[i].qh));
        for (int v = 0; v < X4; v++) {
            const etok_block_q8a *a = y[v] + i;
            summ[v] = add_prod(summ[v], m, a->s);
            __m256i p = dot_us8(q, _mm256_loadu_si256((const __m256i *)a->qs));
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(p), acc[v]);
        }
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]) + summ[v];
}

/* Q4_K and Q5_K: 8 unsigned 32-value groups per super-block, scales and mins per group. */
static inline TGT void k4_x4(const __m256i q[8], const uint8_t sc[8], const uint8_t mn[8], float d, float dmin,
                             const etok_block_q8a *const y[X4], int64_t i, __m256 acc[X4], float summ[X4]) {
    for (int v = 0; v < X4; v++) {
        const etok_block_q8a *a = y[v] + i * 8;
        for (int g = 0; g < 4; g++) {
            __m256i p0 = dot_us8(q[2 * g], _mm256_loadu_si256((const __m256i *)a[2 * g].qs));
            __m256i p1 = dot_us8(q[2 * g + 1], _mm256_loadu_si256((const __m256i *)a[2 * g + 1].qs));
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * g] * a[2 * g].d), _mm256_cvtepi32_ps(p0), acc[v]);
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * sc[2 * g + 1] * a[2 * g + 1].d), _mm256_cvtepi32_ps(p1), acc[v]);
            summ[v] += dmin * (mn[2 * g] * a[2 * g].s + mn[2 * g + 1] * a[2 * g + 1].s);
        }
    }
}

static TGT void dot_q4_k_x4(const etok_block_q4_k *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    float summ[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps(), summ[v] = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        etok_q4k_scales(&b[i], sc, mn);
        __m256i q[8];
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * g));
            q[2 * g] = _mm256_and_si256(raw, m4);
            q[2 * g + 1] = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
        }
        k4_x4(q, sc, mn, h2f(b[i].d), h2f(b[i].dmin), y, i, acc, summ);
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]) - summ[v];
}

static TGT void dot_q5_k_x4(const etok_block_q5_k *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    float summ[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps(), summ[v] = 0;
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    for (int64_t i = 0; i < nb; i++) {
        uint8_t sc[8], mn[8];
        etok_k4_scales(b[i].scales, sc, mn);
        const __m256i hh = _mm256_loadu_si256((const __m256i *)b[i].qh);
        __m256i q[8];
        for (int g = 0; g < 4; g++) {
            __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * g));
            q[2 * g] = _mm256_or_si256(_mm256_and_si256(raw, m4), _mm256_and_si256(bit_set(hh, 2 * g), sixteen));
            q[2 * g + 1] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 4), m4),
                                           _mm256_and_si256(bit_set(hh, 2 * g + 1), sixteen));
        }
        k4_x4(q, sc, mn, h2f(b[i].d), h2f(b[i].dmin), y, i, acc, summ);
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]) - summ[v];
}

/* Q6_K and Q3_K: signed values, int16 scales applied by madd (per 32-value block s). */
static inline TGT void signed_k_x4(__m256i qs, __m256i scv, float d, const etok_block_q8a *const y[X4], int64_t i, int s,
                                   __m256 acc[X4]) {
    const __m256i aq = _mm256_sign_epi8(qs, qs);
    for (int v = 0; v < X4; v++) {
        const etok_block_q8a *a = y[v] + i * 8 + s;
        __m256i yy = _mm256_loadu_si256((const __m256i *)a->qs);
        __m256i p32 = _mm256_madd_epi16(_mm256_maddubs_epi16(aq, _mm256_sign_epi8(yy, qs)), scv);
        acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(p32), acc[v]);
    }
}

static TGT void dot_q6_k_x4(const etok_block_q6_k *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps();
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), off = _mm256_set1_epi8(32);
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d);
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = b[i].ql + 64 * h, *qh = b[i].qh + 32 * h;
            __m256i l0 = _mm256_loadu_si256((const __m256i *)ql), l1 = _mm256_loadu_si256((const __m256i *)(ql + 32));
            __m256i hh = _mm256_loadu_si256((const __m256i *)qh);
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                const int s = h * 4 + k;
                __m256i scv = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(b[i].scales[2 * s])),
                                                      _mm_set1_epi16(b[i].scales[2 * s + 1]), 1);
                signed_k_x4(_mm256_sub_epi8(q[k], off), scv, d, y, i, s, acc);
            }
        }
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]);
}

static TGT void dot_q3_k_x4(const etok_block_q3_k *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    for (int64_t i = 0; i < nb; i++) {
        const __m256i sc16 = _mm256_cvtepi8_epi16(q3k_scales16(b[i].scales));
        const float d = h2f(b[i].d);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)b[i].hmask);
        for (int n = 0; n < 2; n++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                const int s = 4 * n + j;
                __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
                q = _mm256_sub_epi8(_mm256_or_si256(q, _mm256_and_si256(bit_set(hm, s), four)), four);
                signed_k_x4(q, pair_i16(sc16, s), d, y, i, s, acc);
            }
        }
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]);
}

static TGT void dot_q2_k_x4(const etok_block_q2_k *b, const etok_block_q8a *const y[X4], int64_t nb, float out[X4]) {
    __m256 acc[X4], accm[X4];
    for (int v = 0; v < X4; v++) acc[v] = _mm256_setzero_ps(), accm[v] = _mm256_setzero_ps();
    const __m256i m3 = _mm256_set1_epi8(3), ones = _mm256_set1_epi8(1);
    for (int64_t i = 0; i < nb; i++) {
        const float d = h2f(b[i].d), dmin = h2f(b[i].dmin);
        const __m128i scm = _mm_loadu_si128((const __m128i *)b[i].scales);
        const __m256i sc16 = _mm256_cvtepu8_epi16(_mm_and_si128(scm, _mm_set1_epi8(0x0F)));
        const __m256i mn16 = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scm, 4), _mm_set1_epi8(0x0F)));
        for (int n = 0; n < 2; n++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(b[i].qs + 32 * n));
            for (int j = 0; j < 4; j++) {
                const int s = 4 * n + j;
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
                const __m256i scp = pair_i16(sc16, s), mnp = pair_i16(mn16, s);
                for (int v = 0; v < X4; v++) {
                    const etok_block_q8a *a = y[v] + i * 8 + s;
                    const __m256i yq = _mm256_loadu_si256((const __m256i *)a->qs);
                    __m256i pq = _mm256_madd_epi16(_mm256_maddubs_epi16(q, yq), scp);
                    __m256i pm = _mm256_madd_epi16(_mm256_maddubs_epi16(ones, yq), mnp);
                    acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), _mm256_cvtepi32_ps(pq), acc[v]);
                    accm[v] = _mm256_fmadd_ps(_mm256_set1_ps(dmin * a->d), _mm256_cvtepi32_ps(pm), accm[v]);
                }
            }
        }
    }
    for (int v = 0; v < X4; v++) out[v] = hsum_ps(acc[v]) - hsum_ps(accm[v]);
}

void TGT etok_vec_dot_multi_avx2(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf,
                                 int64_t n, int nx, float *out, size_t out_stride) {
    const size_t nbq = (size_t)(n / ETOK_QK);
    int j = 0;
    if (etok_type_uses_q8a(type)) {
        const int64_t nb = n / ETOK_QK, nbk = n / ETOK_QK_K;
        for (; j + 4 <= nx; j += 4) {
            float o4[4];
            const etok_block_q8a *y = xq + (size_t)j * nbq;
            const etok_block_q8a *const yv[X4] = {y, y + nbq, y + 2 * nbq, y + 3 * nbq};
            switch (type) {
            case ETOK_T_Q4_1: dot_q4_1_x4(row, yv[0], yv[1], yv[2], yv[3], nb, o4); break;
            case ETOK_T_Q8_0: dot_q8_0_x4(row, yv[0], yv[1], yv[2], yv[3], nb, o4); break;
            case ETOK_T_Q4_0: dot_q4_0_x4(row, yv, nb, o4); break;
            case ETOK_T_Q5_0: dot_q5_0_x4(row, yv, nb, o4); break;
            case ETOK_T_Q5_1: dot_q5_1_x4(row, yv, nb, o4); break;
            case ETOK_T_IQ4_NL: dot_iq4_nl_x4(row, yv, nb, o4); break;
            case ETOK_T_Q4_K: dot_q4_k_x4(row, yv, nbk, o4); break;
            case ETOK_T_Q5_K: dot_q5_k_x4(row, yv, nbk, o4); break;
            case ETOK_T_Q6_K: dot_q6_k_x4(row, yv, nbk, o4); break;
            case ETOK_T_Q3_K: dot_q3_k_x4(row, yv, nbk, o4); break;
            case ETOK_T_Q2_K: dot_q2_k_x4(row, yv, nbk, o4); break;
            default: for (int k = 0; k < 4; k++) o4[k] = etok_vec_dot_avx2(type, row, yv[k], NULL, n); break;
            }
            for (int k = 0; k < 4; k++) out[(size_t)(j + k) * out_stride] = o4[k];
        }
    }
    for (; j < nx; j++)
        out[(size_t)j * out_stride] = etok_vec_dot_avx2(type, row, xq ? xq + (size_t)j * nbq : NULL,
                                                        xf ? xf + (size_t)j * (size_t)n : NULL, n);
}

/* Four Q4_1 rows against one activation vector (decode): four independent accumulation
 * chains hide the FMA latency and the activation block is loaded once. Per row the float
 * operations are exactly those of dot_q4_1, in the same order. */
static TGT void dot_q4_1_4rows(const etok_block_q4_1 *b0, const etok_block_q4_1 *b1, const etok_block_q4_1 *b2,
                               const etok_block_q4_1 *b3, const etok_block_q8a *y, int64_t nb, float out[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (int64_t i = 0; i < nb; i++) {
        const __m256i yq = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const float yd = y[i].d, ys = y[i].s;
        s0 = add_prod(s0, h2f(b0[i].m), ys);
        s1 = add_prod(s1, h2f(b1[i].m), ys);
        s2 = add_prod(s2, h2f(b2[i].m), ys);
        s3 = add_prod(s3, h2f(b3[i].m), ys);
        a0 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b0[i].d) * yd), _mm256_cvtepi32_ps(dot_us8(etok_unpack_nibbles(b0[i].qs), yq)), a0);
        a1 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b1[i].d) * yd), _mm256_cvtepi32_ps(dot_us8(etok_unpack_nibbles(b1[i].qs), yq)), a1);
        a2 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b2[i].d) * yd), _mm256_cvtepi32_ps(dot_us8(etok_unpack_nibbles(b2[i].qs), yq)), a2);
        a3 = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b3[i].d) * yd), _mm256_cvtepi32_ps(dot_us8(etok_unpack_nibbles(b3[i].qs), yq)), a3);
    }
    out[0] = hsum_ps(a0) + s0;
    out[1] = hsum_ps(a1) + s1;
    out[2] = hsum_ps(a2) + s2;
    out[3] = hsum_ps(a3) + s3;
}

static TGT void dot_q8_0_4rows(const etok_block_q8_0 *b0, const etok_block_q8_0 *b1, const etok_block_q8_0 *b2,
                               const etok_block_q8_0 *b3, const etok_block_q8a *y, int64_t nb, float out[4]) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m256i yq = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const float yd = y[i].d;
#define Q8ROW(acc, b)                                                                                                  \
    do {                                                                                                               \
        const __m256i w = _mm256_loadu_si256((const __m256i *)(b)[i].qs);                                              \
        acc = _mm256_fmadd_ps(_mm256_set1_ps(h2f((b)[i].d) * yd),                                                      \
                              _mm256_cvtepi32_ps(dot_us8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(yq, w))), acc);     \
    } while (0)
        Q8ROW(a0, b0);
        Q8ROW(a1, b1);
        Q8ROW(a2, b2);
        Q8ROW(a3, b3);
#undef Q8ROW
    }
    out[0] = hsum_ps(a0);
    out[1] = hsum_ps(a1);
    out[2] = hsum_ps(a2);
    out[3] = hsum_ps(a3);
}

/* Four Q5_0 / Q5_1 rows against one activation vector (decode). The activation
 * block is loaded once for the 4 rows and each row has its own accumulation chain(s). The
 * integer lanes are exact, so they may come from other instructions than the single-row
 * kernel's; the float operations per row are exactly those of dot_q5_0 / dot_q5_1, in the
 * same order, so the results are bit-identical (test_quant: test_decode_4rows). Measured
 * (bench/engine_speed.md): with the next 4 rows prefetched this takes 10-30% less CPU time per
 * decoded token for Q5_0 and Q5_1 models; the same for IQ4_NL and for the Q8_K K-quant
 * kernels was slower than one row at a time, so those stay single-row. */
#define Q5_ROWS 4

/* Q5_0: the unsigned values 0..31 times the activations minus 16 times the activations' pair
 * sums, in int16 (|31 * 127 * 2| and |16 * 127 * 2| fit), then the pairs of pairs: the same
 * int32 lanes as the sign trick on q - 16 (each lane the exact sum of 4 products). */
static TGT void dot_q5_0_4rows(const uint8_t *p, size_t rb, const etok_block_q8a *y, int64_t nb, float out[4]) {
    const etok_block_q5_0 *b[Q5_ROWS];
    __m256 acc[Q5_ROWS];
    for (int r = 0; r < Q5_ROWS; r++) b[r] = (const etok_block_q5_0 *)(p + (size_t)r * rb), acc[r] = _mm256_setzero_ps();
    const __m256i sixteen = _mm256_set1_epi8(16), ones = _mm256_set1_epi16(1);
    for (int64_t i = 0; i < nb; i++) {
        const __m256i yq = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const __m256i y16 = _mm256_maddubs_epi16(sixteen, yq);
        const float yd = y[i].d;
        for (int r = 0; r < Q5_ROWS; r++) {
            const __m256i q = _mm256_or_si256(etok_unpack_nibbles(b[r][i].qs), etok_q5_high_bits(b[r][i].qh));
            const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, yq), y16);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[r][i].d) * yd), _mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)),
                                     acc[r]);
        }
    }
    for (int r = 0; r < Q5_ROWS; r++) out[r] = hsum_ps(acc[r]);
}

static TGT void dot_q5_1_4rows(const uint8_t *p, size_t rb, const etok_block_q8a *y, int64_t nb, float out[4]) {
    const etok_block_q5_1 *b[Q5_ROWS];
    __m256 acc[Q5_ROWS];
    float summ[Q5_ROWS];
    for (int r = 0; r < Q5_ROWS; r++)
        b[r] = (const etok_block_q5_1 *)(p + (size_t)r * rb), acc[r] = _mm256_setzero_ps(), summ[r] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const __m256i yq = _mm256_loadu_si256((const __m256i *)y[i].qs);
        const float yd = y[i].d, ys = y[i].s;
        for (int r = 0; r < Q5_ROWS; r++) {
            summ[r] = add_prod(summ[r], h2f(b[r][i].m), ys);
            const __m256i q = _mm256_or_si256(etok_unpack_nibbles(b[r][i].qs), etok_q5_high_bits(b[r][i].qh));
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(h2f(b[r][i].d) * yd), _mm256_cvtepi32_ps(dot_us8(q, yq)), acc[r]);
        }
    }
    for (int r = 0; r < Q5_ROWS; r++) out[r] = hsum_ps(acc[r]) + summ[r];
}

void TGT etok_attn_scores_avx2(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd,
                               float scale, float *out) {
    (void)type; /* F16 only (checked by the caller) */
    for (int s = 0; s < n; s++) out[s] = dot_f16(k0 + (size_t)s * stride, q, hd, 0) * scale;
}

void TGT etok_attn_accum_avx2(uint32_t type, const float *w, const uint8_t *v0, size_t stride, int first_pos, int n,
                              int hd, float *out) {
    (void)type; /* F16, hd % 8 == 0, hd <= 512 (checked by the caller) */
    __m256 lanes[8][64];
    const int nv = hd / 8;
    for (int k = 0; k < 8; k++)
        for (int i = 0; i < nv; i++) lanes[k][i] = _mm256_setzero_ps();
    for (int s = 0; s < n; s++) {
        const uint8_t *v = v0 + (size_t)s * stride;
        __m256 *l = lanes[(first_pos + s) % 8];
        const __m256 ws = _mm256_set1_ps(w[s]);
        for (int i = 0; i < nv; i++)
            l[i] = _mm256_fmadd_ps(ws, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 16 * i))), l[i]);
    }
    for (int i = 0; i < nv; i++) {
        __m256 t0 = _mm256_add_ps(lanes[4][i], lanes[0][i]), t1 = _mm256_add_ps(lanes[5][i], lanes[1][i]),
               t2 = _mm256_add_ps(lanes[6][i], lanes[2][i]), t3 = _mm256_add_ps(lanes[7][i], lanes[3][i]);
        _mm256_storeu_ps(out + 8 * i, _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3)));
    }
}

/* Grouped (GQA) F16 attention: G <= 4 query heads against each cached row, the row's F16
 * values converted once per 8 and used by every head. Per head the operations are those of
 * dot_f16 / etok_attn_accum_avx2, in the same order (bit-identical); the G independent
 * accumulation chains also hide the FMA latency that one head's single chain exposes. */
/* hsum_ps of 8 vectors at once, lane k of the result = hsum_ps(v[k]) bit for bit: hsum_ps adds
 * x_j = v_j + v_{j+4} and then (x0 + x2) + (x1 + x3); here the high and low halves are added
 * for two vectors per instruction, each half reordered to x0 x2 x1 x3 and two horizontal adds
 * form (x0 + x2) and (x1 + x3), then their sum, for four vectors per instruction. */
static inline TGT __m256 hsum8_ps(const __m256 v[8]) {
    __m256 u[4];
    for (int k = 0; k < 4; k++) {
        const __m256 a = v[2 * k], b = v[2 * k + 1];
        u[k] = _mm256_add_ps(_mm256_permute2f128_ps(a, b, 0x20), _mm256_permute2f128_ps(a, b, 0x31));
        u[k] = _mm256_permute_ps(u[k], _MM_SHUFFLE(3, 1, 2, 0));
    }
    const __m256 h1 = _mm256_hadd_ps(u[0], u[1]), h2 = _mm256_hadd_ps(u[2], u[3]);
    return _mm256_permutevar8x32_ps(_mm256_hadd_ps(h1, h2), _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static inline __attribute__((always_inline)) TGT void scores_f16_g(const float *q, const int G, const uint8_t *k0,
                                                                    size_t stride, int n, int hd, float scale,
                                                                    float *out, size_t out_stride) {
    const int nv = hd / 8;
    const __m256 sv = _mm256_set1_ps(scale);
    int s = 0;
    /* 8 positions at a time, one reduction for all 8 */
    for (; s + 8 <= n; s += 8) {
        __m256 part[4][8];
        /* P positions per pass: G <= 3 heads keep their G query chunks and G x 4 chains in
         * registers (7 loads per 12 FMAs at G = 3); 4 heads take 2 positions */
        const int P = G <= 3 ? 4 : 2;
        for (int p = 0; p < 8; p += P) {
            const uint8_t *kp = k0 + (size_t)(s + p) * stride;
            __m256 acc[4][4];
            for (int h = 0; h < G; h++)
                for (int e = 0; e < P; e++) acc[h][e] = _mm256_setzero_ps();
            for (int i = 0; i < nv; i++) {
                __m256 qv[4];
                for (int h = 0; h < G; h++) qv[h] = _mm256_loadu_ps(q + (size_t)h * (size_t)hd + 8 * (size_t)i);
                for (int e = 0; e < P; e++) {
                    const __m256 f = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(kp + (size_t)e * stride + 16 * i)));
                    for (int h = 0; h < G; h++) acc[h][e] = _mm256_fmadd_ps(f, qv[h], acc[h][e]);
                }
            }
            for (int h = 0; h < G; h++)
                for (int e = 0; e < P; e++) part[h][p + e] = acc[h][e];
        }
        for (int h = 0; h < G; h++)
            _mm256_storeu_ps(out + (size_t)h * out_stride + (size_t)s, _mm256_mul_ps(hsum8_ps(part[h]), sv));
    }
    for (; s < n; s++) {
        const uint8_t *k = k0 + (size_t)s * stride;
        __m256 acc[4];
        for (int h = 0; h < G; h++) acc[h] = _mm256_setzero_ps();
        for (int i = 0; i < nv; i++) {
            const __m256 kf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 16 * i)));
            for (int h = 0; h < G; h++)
                acc[h] = _mm256_fmadd_ps(kf, _mm256_loadu_ps(q + (size_t)h * (size_t)hd + 8 * (size_t)i), acc[h]);
        }
        for (int h = 0; h < G; h++) out[(size_t)h * out_stride + (size_t)s] = hsum_ps(acc[h]) * scale;
    }
}

void TGT etok_attn_scores_multi_avx2(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                     float *out, size_t out_stride) {
    for (int h0 = 0; h0 < g; h0 += 4) {
        const float *qh = q + (size_t)h0 * (size_t)hd;
        float *o = out + (size_t)h0 * out_stride;
        switch (g - h0 < 4 ? g - h0 : 4) {
        case 1: scores_f16_g(qh, 1, k0, stride, n, hd, scale, o, out_stride); break;
        case 2: scores_f16_g(qh, 2, k0, stride, n, hd, scale, o, out_stride); break;
        case 3: scores_f16_g(qh, 3, k0, stride, n, hd, scale, o, out_stride); break;
        default: scores_f16_g(qh, 4, k0, stride, n, hd, scale, o, out_stride); break;
        }
    }
}

/* The V sum of G heads over dims [8*i0, 8*(i0+NI)) for the positions whose lane
 * (absolute position % 8) is `lane`, in position order: G x NI accumulators in registers
 * (<= 12), each V chunk converted once for the G heads. Every accumulator gets the FMAs the
 * one-pass loop (all lanes at once, accumulators in memory) gave it, in the same order. */
static inline __attribute__((always_inline)) TGT void accum_f16_lane(const float *w, size_t w_stride, const int G,
                                                                      const int NI, int n_seg,
                                                                      const uint8_t *const *v0, const int *first_pos,
                                                                      const int *n, size_t stride, int lane, int i0,
                                                                      __m256 lanes[4][8][64]) {
    __m256 acc[4][4];
    for (int h = 0; h < G; h++)
        for (int i = 0; i < NI; i++) acc[h][i] = _mm256_setzero_ps();
    for (int j = 0, w0 = 0; j < n_seg; w0 += n[j], j++)
        for (int s = ((lane - first_pos[j] % 8) % 8 + 8) % 8; s < n[j]; s += 8) {
            const uint8_t *v = v0[j] + (size_t)s * stride + 16 * (size_t)i0;
            __m256 ws[4];
            for (int h = 0; h < G; h++) ws[h] = _mm256_broadcast_ss(w + (size_t)h * w_stride + (size_t)(w0 + s));
            for (int i = 0; i < NI; i++) {
                const __m256 vf = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 16 * i)));
                for (int h = 0; h < G; h++) acc[h][i] = _mm256_fmadd_ps(ws[h], vf, acc[h][i]);
            }
        }
    for (int h = 0; h < G; h++)
        for (int i = 0; i < NI; i++) lanes[h][lane][i0 + i] = acc[h][i];
}

/* GQA V sum in llama.cpp's order (lane = absolute position % 8, see etok_attn_accum): one pass
 * per lane and group of dims, its accumulators in registers (was: one pass over the positions
 * with all 8 x G x hd/8 accumulators in memory, a load and a store per FMA; 15% of an F16
 * pp512 step, docs/ENGINE.md "Float decode and prefill"). */
static inline __attribute__((always_inline)) TGT void accum_f16_g(const float *w, size_t w_stride, const int G,
                                                                   int n_seg, const uint8_t *const *v0,
                                                                   const int *first_pos, const int *n, size_t stride,
                                                                   int hd, float *out) {
    __m256 lanes[4][8][64];
    const int nv = hd / 8, NI = G >= 4 ? 2 : 4;
    for (int lane = 0; lane < 8; lane++) {
        int i0 = 0;
        for (; i0 + NI <= nv; i0 += NI) accum_f16_lane(w, w_stride, G, NI, n_seg, v0, first_pos, n, stride, lane, i0, lanes);
        for (; i0 < nv; i0++) accum_f16_lane(w, w_stride, G, 1, n_seg, v0, first_pos, n, stride, lane, i0, lanes);
    }
    for (int h = 0; h < G; h++)
        for (int i = 0; i < nv; i++) {
            __m256 t0 = _mm256_add_ps(lanes[h][4][i], lanes[h][0][i]), t1 = _mm256_add_ps(lanes[h][5][i], lanes[h][1][i]),
                   t2 = _mm256_add_ps(lanes[h][6][i], lanes[h][2][i]), t3 = _mm256_add_ps(lanes[h][7][i], lanes[h][3][i]);
            _mm256_storeu_ps(out + (size_t)h * (size_t)hd + 8 * (size_t)i,
                             _mm256_add_ps(_mm256_add_ps(t0, t2), _mm256_add_ps(t1, t3)));
        }
}

void TGT etok_attn_accum_multi_avx2(const float *w, size_t w_stride, int g, int n_seg, const uint8_t *const *v0,
                                    const int *first_pos, const int *n, size_t stride, int hd, float *out) {
    for (int h0 = 0; h0 < g; h0 += 4) {
        const float *wh = w + (size_t)h0 * w_stride;
        float *o = out + (size_t)h0 * (size_t)hd;
        switch (g - h0 < 4 ? g - h0 : 4) {
        case 1: accum_f16_g(wh, w_stride, 1, n_seg, v0, first_pos, n, stride, hd, o); break;
        case 2: accum_f16_g(wh, w_stride, 2, n_seg, v0, first_pos, n, stride, hd, o); break;
        case 3: accum_f16_g(wh, w_stride, 3, n_seg, v0, first_pos, n, stride, hd, o); break;
        default: accum_f16_g(wh, w_stride, 4, n_seg, v0, first_pos, n, stride, hd, o); break;
        }
    }
}

void TGT etok_round_f16_avx2(float *x, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(_mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT)));
    for (; i < n; i++) x[i] = _cvtsh_ss(_cvtss_sh(x[i], 0));
}

void TGT etok_f32_to_f16_row_avx2(const float *x, void *out, int n) {
    uint8_t *o = out;
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm_storeu_si128((__m128i *)(o + 2 * i), _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT));
    for (; i < n; i++) {
        uint16_t h = _cvtss_sh(x[i], 0);
        memcpy(o + 2 * i, &h, 2);
    }
}

void TGT etok_matmul_rows_avx2(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                               const etok_block_q8a *xq, const float *xf, int64_t n, int nx, float *out,
                               size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    if (nx == 1 && type == ETOK_T_Q4_1) { /* decode: the hot loop */
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = w + (size_t)r * row_bytes;
            /* the next group of rows, a few lines at a time: more misses in flight than the
             * hardware prefetcher alone keeps */
            if (r + 8 <= r1)
                for (size_t off = 0; off < 4 * row_bytes; off += 64) _mm_prefetch((const char *)(p + 4 * row_bytes + off), _MM_HINT_T0);
            dot_q4_1_4rows((const etok_block_q4_1 *)p, (const etok_block_q4_1 *)(p + row_bytes),
                           (const etok_block_q4_1 *)(p + 2 * row_bytes), (const etok_block_q4_1 *)(p + 3 * row_bytes), xq,
                           nb, out + r);
        }
        for (; r < r1; r++) out[r] = dot_q4_1((const etok_block_q4_1 *)(w + (size_t)r * row_bytes), xq, nb);
        return;
    }
    if (nx == 1 && type == ETOK_T_Q8_0) {
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = w + (size_t)r * row_bytes;
            if (r + 8 <= r1)
                for (size_t off = 0; off < 4 * row_bytes; off += 64) _mm_prefetch((const char *)(p + 4 * row_bytes + off), _MM_HINT_T0);
            dot_q8_0_4rows((const etok_block_q8_0 *)p, (const etok_block_q8_0 *)(p + row_bytes),
                           (const etok_block_q8_0 *)(p + 2 * row_bytes), (const etok_block_q8_0 *)(p + 3 * row_bytes), xq,
                           nb, out + r);
        }
        for (; r < r1; r++) out[r] = dot_q8_0((const etok_block_q8_0 *)(w + (size_t)r * row_bytes), xq, nb);
        return;
    }
    if (nx == 1 && (type == ETOK_T_Q5_0 || type == ETOK_T_Q5_1)) {
        int64_t r = r0;
        for (; r + 4 <= r1; r += 4) {
            const uint8_t *p = w + (size_t)r * row_bytes;
            if (r + 8 <= r1)
                for (size_t off = 0; off < 4 * row_bytes; off += 64) _mm_prefetch((const char *)(p + 4 * row_bytes + off), _MM_HINT_T0);
            if (type == ETOK_T_Q5_0) dot_q5_0_4rows(p, row_bytes, xq, nb, out + r);
            else dot_q5_1_4rows(p, row_bytes, xq, nb, out + r);
        }
        for (; r < r1; r++) {
            const uint8_t *p = w + (size_t)r * row_bytes;
            out[r] = type == ETOK_T_Q5_0 ? dot_q5_0((const etok_block_q5_0 *)p, xq, nb) : dot_q5_1((const etok_block_q5_1 *)p, xq, nb);
        }
        return;
    }
    /* prefill: Q5_0 / IQ4_NL rows 4 at a time, unpacked once, 4 x 2 outputs per tile
     * (quant_q5_0.c; the same bits as etok_vec_dot) */
    if (etok_q5_0_tiled_applies(type, nx) && etok_matmul_q5_0_avx2(type, w, row_bytes, r0, r1, xq, n, nx, out, out_stride) == 0)
        return;
    if (nx == 1 && type == ETOK_T_IQ4_NL) { /* one token: llama.cpp's vec_dot order (see dot_iq4_nl_1tok) */
        for (int64_t r = r0; r < r1; r++) out[r] = dot_iq4_nl_1tok((const etok_block_iq4_nl *)(w + (size_t)r * row_bytes), xq, nb);
        return;
    }
    for (int64_t r = r0; r < r1; r++) etok_vec_dot_multi_avx2(type, w + (size_t)r * row_bytes, xq, xf, n, nx, out + r, out_stride);
}

#endif
