/* quant_k.c — K-quant weights times Q8_K activations with llama.cpp's arithmetic (quant_k.h).
 *
 * What makes the result llama.cpp's (AVX2 build, commit c392e5094), written from the
 * algorithm of ggml's kernels (ggml-cpu-quants.c), not copied:
 * - per super-block the integer products land in 8 int32 lanes: the 32-byte vector of values
 *   32c .. 32c+31 is multiplied byte-wise (maddubs: adjacent pairs -> int16), weighted by the
 *   sub-block scale (madd: adjacent int16 pairs -> int32), so value i always adds into lane
 *   (i % 32) / 4. Integer sums are exact, so any order inside a lane gives the same integer;
 * - each lane is then accumulated in float as acc[l] = fma(d, (float)sumi[l], acc[l]) with
 *   d = y.d * x.d (float product), super-blocks in order, and reduced at the end as
 *   hsum_float_8: ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3));
 * - the "- dmin * min" terms of Q2_K / Q4_K / Q5_K go through the activations' 16-value sums
 *   (bsums) in each kernel's own way (see the kernels).
 * The scalar reference computes the lanes with plain loops; the AVX2 version with ggml's
 * instruction sequence; both do the same float operations in the same order (bit-equal).
 * At kernel level avx512 (quant.h) Q4_K, Q5_K and Q6_K take AVX-512 VNNI versions of the AVX2
 * kernels with the same integer lanes and float operations (bit-equal too; see there).
 * At kernel level avx2, a matmul of two or more tokens takes the prefill tiles (4 rows unpacked
 * once per call, 4 rows x 2 tokens per tile; "AVX2 prefill" below), again the same bits; one
 * token takes the decode kernels ("AVX2 decode" below: the activations' shared terms once per
 * call, one row per pass), the same bits too. */
#include "engine/quant_k.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant_simd.h"

int etok_quant_k_avx512_emulated(void) {
#ifdef ETOK_AVX512_EMULATED
    return 1;
#else
    return 0;
#endif
}

#define F16(h) etok_f16_to_f32(h)

int etok_type_uses_q8k(uint32_t t) {
    return t == ETOK_T_Q2_K || t == ETOK_T_Q3_K || t == ETOK_T_Q4_K || t == ETOK_T_Q5_K || t == ETOK_T_Q6_K;
}

/* ggml's quantize_row_q8_K_ref (ggml-quants.c), which its x86 quantize_row_q8_K calls.
 * ggml-base is compiled without FMA, so iscale * x is rounded to float before the
 * round-half-even (its nearest_int adds 1.5 * 2^23; lrintf in the default mode is the same
 * for |v| < 2^22, and a call keeps the compiler from fusing the product into it). */
void etok_quantize_q8k(const float *x, etok_block_q8k *out, int64_t n) {
    for (int64_t i = 0; i < n / ETOK_QK_K; i++, x += ETOK_QK_K) {
        etok_block_q8k *y = &out[i];
        float max = 0, amax = 0;
        for (int j = 0; j < ETOK_QK_K; j++) {
            const float ax = fabsf(x[j]);
            if (ax > amax) {
                amax = ax;
                max = x[j];
            }
        }
        if (amax == 0) {
            y->d = 0;
            memset(y->qs, 0, sizeof y->qs);
            memset(y->bsums, 0, sizeof y->bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < ETOK_QK_K; j++) {
            const float p = iscale * x[j];
            const long v = lrintf(p);
            y->qs[j] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int k = 0; k < ETOK_QK_K / 16; k++) {
            int s = 0;
            for (int l = 0; l < 16; l++) s += y->qs[16 * k + l];
            y->bsums[k] = (int16_t)s;
        }
        y->d = 1 / iscale;
    }
}

/* ---- scalar reference ---- */

static float hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    return (r0 + r2) + (r1 + r3);
}

/* The 8 int32 lanes of one super-block: value i (signed weight w[i], sub-block scale
 * sc16[i/16]) adds sc16 * w * q8 into lane (i % 32) / 4. */
static void k_lanes(const int8_t w[ETOK_QK_K], const int sc16[16], const int8_t *q8, int32_t sumi[8]) {
    for (int l = 0; l < 8; l++) sumi[l] = 0;
    for (int i = 0; i < ETOK_QK_K; i++) sumi[(i % 32) / 4] += sc16[i / 16] * w[i] * q8[i];
}

static void lanes_fma(float acc[8], float d, const int32_t sumi[8]) {
    for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)sumi[l], acc[l]);
}

/* mirrors ggml_vec_dot_q6_K_q8_K (AVX2 branch) */
static float ref_q6_k(const etok_block_q6_k *x, const etok_block_q8k *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int8_t w[ETOK_QK_K];
        int sc16[16];
        int32_t sumi[8];
        etok_q6k_unpack(&x[i], w); /* q - 32 */
        for (int s = 0; s < 16; s++) sc16[s] = x[i].scales[s];
        k_lanes(w, sc16, y[i].qs, sumi);
        lanes_fma(acc, y[i].d * F16(x[i].d), sumi);
    }
    return hsum8(acc);
}

/* mirrors ggml_vec_dot_q3_K_q8_K (AVX2 branch) */
static float ref_q3_k(const etok_block_q3_k *x, const etok_block_q8k *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        int8_t w[ETOK_QK_K], sc[16];
        int sc16[16];
        int32_t sumi[8];
        etok_q3k_unpack(&x[i], w);
        etok_q3k_scales(&x[i], sc);
        for (int s = 0; s < 16; s++) sc16[s] = sc[s];
        k_lanes(w, sc16, y[i].qs, sumi);
        lanes_fma(acc, y[i].d * F16(x[i].d), sumi);
    }
    return hsum8(acc);
}

/* mirrors ggml_vec_dot_q2_K_q8_K (AVX2 branch): per super-block first the mins into the same
 * 8 lanes (lane k: min[2k]*bsums[2k] + min[2k+1]*bsums[2k+1], times -y.d*dmin), then the
 * scaled values. */
static float ref_q2_k(const etok_block_q2_k *x, const etok_block_q8k *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[ETOK_QK_K];
        int8_t w[ETOK_QK_K];
        int sc16[16];
        int32_t sumi[8], prod[8];
        const float d = y[i].d * F16(x[i].d), dmin = -y[i].d * F16(x[i].dmin);
        for (int k = 0; k < 8; k++)
            prod[k] = (x[i].scales[2 * k] >> 4) * y[i].bsums[2 * k] + (x[i].scales[2 * k + 1] >> 4) * y[i].bsums[2 * k + 1];
        lanes_fma(acc, dmin, prod);
        etok_q2k_unpack(&x[i], q);
        for (int j = 0; j < ETOK_QK_K; j++) w[j] = (int8_t)q[j];
        for (int s = 0; s < 16; s++) sc16[s] = x[i].scales[s] & 0xF;
        k_lanes(w, sc16, y[i].qs, sumi);
        lanes_fma(acc, d, sumi);
    }
    return hsum8(acc);
}

/* The "- dmin * min" integer of Q4_K/Q5_K per pair of 32-value sub-blocks: the activations'
 * 32-value sums S[s] = bsums[2s] + bsums[2s+1]; prod[k] = mn[2k] S[2k] + mn[2k+1] S[2k+1]. */
static void k4_min_prod(const uint8_t mn[8], const int16_t bsums[16], int32_t prod[4]) {
    for (int k = 0; k < 4; k++) {
        const int s0 = bsums[4 * k] + bsums[4 * k + 1], s1 = bsums[4 * k + 2] + bsums[4 * k + 3];
        prod[k] = mn[2 * k] * s0 + mn[2 * k + 1] * s1;
    }
}

/* mirrors ggml_vec_dot_q4_K_q8_K (AVX2 branch): the min terms in a second 4-lane float
 * accumulator (fma per super-block), reduced (m0+m2)+(m1+m3) and added after hsum_float_8. */
static float ref_q4_k(const etok_block_q4_k *x, const etok_block_q8k *y, int64_t nb) {
    float acc[8] = {0}, accm[4] = {0};
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[ETOK_QK_K], sc[8], mn[8];
        int8_t w[ETOK_QK_K];
        int sc16[16];
        int32_t sumi[8], prod[4];
        const float d = y[i].d * F16(x[i].d), dmin = -y[i].d * F16(x[i].dmin);
        etok_k4_scales(x[i].scales, sc, mn);
        k4_min_prod(mn, y[i].bsums, prod);
        for (int k = 0; k < 4; k++) accm[k] = fmaf(dmin, (float)prod[k], accm[k]);
        etok_q4k_unpack(&x[i], q);
        for (int j = 0; j < ETOK_QK_K; j++) w[j] = (int8_t)q[j];
        for (int s = 0; s < 16; s++) sc16[s] = sc[s / 2];
        k_lanes(w, sc16, y[i].qs, sumi);
        lanes_fma(acc, d, sumi);
    }
    return hsum8(acc) + ((accm[0] + accm[2]) + (accm[1] + accm[3]));
}

/* mirrors ggml_vec_dot_q5_K_q8_K (AVX2 branch): the min terms summed as one integer per
 * super-block, added to a scalar float `summs` (the reference's compiled code fuses
 * summs + dmin * (float)isum into one fma) and added after hsum_float_8. */
static float ref_q5_k(const etok_block_q5_k *x, const etok_block_q8k *y, int64_t nb) {
    float acc[8] = {0}, summs = 0;
    for (int64_t i = 0; i < nb; i++) {
        uint8_t q[ETOK_QK_K], sc[8], mn[8];
        int8_t w[ETOK_QK_K];
        int sc16[16];
        int32_t sumi[8], prod[4];
        const float d = y[i].d * F16(x[i].d), dmin = -y[i].d * F16(x[i].dmin);
        etok_k4_scales(x[i].scales, sc, mn);
        k4_min_prod(mn, y[i].bsums, prod);
        summs = fmaf(dmin, (float)(prod[0] + prod[1] + prod[2] + prod[3]), summs);
        etok_q5k_unpack(&x[i], q);
        for (int j = 0; j < ETOK_QK_K; j++) w[j] = (int8_t)q[j];
        for (int s = 0; s < 16; s++) sc16[s] = sc[s / 2];
        k_lanes(w, sc16, y[i].qs, sumi);
        lanes_fma(acc, d, sumi);
    }
    return hsum8(acc) + summs;
}

float etok_vec_dot_q8k_ref(uint32_t type, const void *row, const etok_block_q8k *y, int64_t n) {
    const int64_t nb = n / ETOK_QK_K;
    switch (type) {
    case ETOK_T_Q6_K: return ref_q6_k(row, y, nb);
    case ETOK_T_Q4_K: return ref_q4_k(row, y, nb);
    case ETOK_T_Q5_K: return ref_q5_k(row, y, nb);
    case ETOK_T_Q3_K: return ref_q3_k(row, y, nb);
    case ETOK_T_Q2_K: return ref_q2_k(row, y, nb);
    default: return 0;
    }
}

/* ---- AVX2 ---- */

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET

/* int16 scale a for bytes 0..15 (16-bit lanes 0..7), b for bytes 16..31 */
static inline TGT __m256i k_sc2(int a, int b) {
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16((short)a)), _mm_set1_epi16((short)b), 1);
}

/* 0xFF where bit `bit` of the byte is set */
static inline TGT __m256i k_bit(__m256i v, int bit) {
    const __m256i m = _mm256_set1_epi8((char)(1 << bit));
    return _mm256_cmpeq_epi8(_mm256_and_si256(v, m), m);
}

static inline TGT __m256i ld(const void *p) { return _mm256_loadu_si256((const __m256i *)p); }

/* Each kernel takes NY activation vectors (1, or 4 for a prefill step's tokens): the weight
 * super-block is unpacked once for all of them; per vector the integer lanes and float
 * operations are the single-vector ones, so the results are bit-identical to NY single calls. */
#define KI static inline __attribute__((always_inline)) TGT

/* Scale words by byte shuffles instead of scalar broadcasts: W holds the 8 int16 scales of 8
 * consecutive 16-value sub-blocks in both 128-bit lanes; sc_pair(W, j) is [word 2j x 8 | word
 * 2j+1 x 8] (the two sub-blocks of 32-byte chunk j of those 128 values), sc_one(W, j) word j in
 * all 16 words. The same int16 values as k_sc2 / set1 (a shuffle copies them). */
KI __m256i sc_words(__m128i w8) { return _mm256_broadcastsi128_si256(w8); }
KI __m256i sc_pair(__m256i W, const int j) {
    const __m256i m = _mm256_setr_epi8((char)(4 * j), (char)(4 * j + 1), (char)(4 * j), (char)(4 * j + 1), (char)(4 * j),
                                       (char)(4 * j + 1), (char)(4 * j), (char)(4 * j + 1), (char)(4 * j), (char)(4 * j + 1),
                                       (char)(4 * j), (char)(4 * j + 1), (char)(4 * j), (char)(4 * j + 1), (char)(4 * j),
                                       (char)(4 * j + 1), (char)(4 * j + 2), (char)(4 * j + 3), (char)(4 * j + 2),
                                       (char)(4 * j + 3), (char)(4 * j + 2), (char)(4 * j + 3), (char)(4 * j + 2),
                                       (char)(4 * j + 3), (char)(4 * j + 2), (char)(4 * j + 3), (char)(4 * j + 2),
                                       (char)(4 * j + 3), (char)(4 * j + 2), (char)(4 * j + 3), (char)(4 * j + 2),
                                       (char)(4 * j + 3));
    return _mm256_shuffle_epi8(W, m);
}
KI __m256i sc_one(__m256i W, const int j) { return _mm256_shuffle_epi8(W, _mm256_set1_epi16((short)((2 * j + 1) << 8 | 2 * j))); }

/* Q3_K's 16 signed 6-bit scales (etok_q3k_scales) with word operations, as 16 bytes */
KI __m128i q3k_scales16(const uint8_t *scales) {
    uint32_t a0, a1, a2;
    memcpy(&a0, scales, 4);
    memcpy(&a1, scales + 4, 4);
    memcpy(&a2, scales + 8, 4);
    const uint32_t k1 = 0x03030303u, k2 = 0x0f0f0f0fu;
    const uint32_t u3 = ((a1 >> 4) & k2) | (((a2 >> 6) & k1) << 4), u2 = ((a0 >> 4) & k2) | (((a2 >> 4) & k1) << 4);
    const uint32_t u1 = (a1 & k2) | (((a2 >> 2) & k1) << 4), u0 = (a0 & k2) | ((a2 & k1) << 4);
    return _mm_sub_epi8(_mm_set_epi64x((long long)((uint64_t)u3 << 32 | u2), (long long)((uint64_t)u1 << 32 | u0)),
                        _mm_set1_epi8(32));
}

KI void avx_q6_k(const etok_block_q6_k *x, const etok_block_q8k *const *y, const int NY, int64_t nb, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3), m32 = _mm256_set1_epi8(32);
    __m256 acc[4];
    for (int v = 0; v < NY; v++) acc[v] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi[4];
        for (int v = 0; v < NY; v++) sumi[v] = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const __m256i l0 = ld(ql), l1 = ld(ql + 32), hh = ld(qh);
            const __m256i W = sc_words(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(x[i].scales + 8 * h))));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                const __m256i scv = sc_pair(W, k); /* sub-blocks 8h+2k, 8h+2k+1 */
                for (int v = 0; v < NY; v++) {
                    const __m256i a = ld(y[v][i].qs + 128 * h + 32 * k);
                    /* (q - 32) * a as q * a - 32 * a, both in int16 pairs (no overflow) */
                    const __m256i p16 =
                        _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], a), _mm256_maddubs_epi16(m32, a));
                    sumi[v] = _mm256_add_epi32(sumi[v], _mm256_madd_epi16(scv, p16));
                }
            }
        }
        const float xd = _cvtsh_ss(x[i].d);
        for (int v = 0; v < NY; v++)
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(y[v][i].d * xd), _mm256_cvtepi32_ps(sumi[v]), acc[v]);
    }
    for (int v = 0; v < NY; v++) out[v] = etok_hsum_ps(acc[v]);
}

KI void avx_q3_k(const etok_block_q3_k *x, const etok_block_q8k *const *y, const int NY, int64_t nb, float *out) {
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc[4];
    for (int v = 0; v < NY; v++) acc[v] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const __m128i sc = q3k_scales16(x[i].scales);
        const __m256i hm = ld(x[i].hmask);
        __m256i sumi[4];
        for (int v = 0; v < NY; v++) sumi[v] = _mm256_setzero_si256();
        for (int n = 0; n < 2; n++) {
            const __m256i raw = ld(x[i].qs + 32 * n);
            const __m256i W = sc_words(_mm_cvtepi8_epi16(n ? _mm_unpackhi_epi64(sc, sc) : sc));
            for (int j = 0; j < 4; j++) {
                const int b = 4 * n + j;
                const __m256i lo = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
                const __m256i off = _mm256_andnot_si256(k_bit(hm, b), four); /* 4 where the bit is clear */
                const __m256i scv = sc_pair(W, j);                            /* sub-blocks 2b, 2b+1 */
                for (int v = 0; v < NY; v++) {
                    const __m256i a = ld(y[v][i].qs + 32 * b);
                    const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(lo, a), _mm256_maddubs_epi16(off, a));
                    sumi[v] = _mm256_add_epi32(sumi[v], _mm256_madd_epi16(scv, p16));
                }
            }
        }
        const float xd = _cvtsh_ss(x[i].d);
        for (int v = 0; v < NY; v++)
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(y[v][i].d * xd), _mm256_cvtepi32_ps(sumi[v]), acc[v]);
    }
    for (int v = 0; v < NY; v++) out[v] = etok_hsum_ps(acc[v]);
}

KI void avx_q2_k(const etok_block_q2_k *x, const etok_block_q8k *const *y, const int NY, int64_t nb, float *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    __m256 acc[4];
    for (int v = 0; v < NY; v++) acc[v] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float xd = _cvtsh_ss(x[i].d), xdmin = _cvtsh_ss(x[i].dmin);
        const __m128i scm = _mm_loadu_si128((const __m128i *)x[i].scales), m4 = _mm_set1_epi8(0x0F);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scm, 4), m4));
        const __m128i sc4 = _mm_and_si128(scm, m4);
        __m256i sumi[4];
        for (int v = 0; v < NY; v++) {
            const __m256i prod = _mm256_madd_epi16(mins, ld(y[v][i].bsums));
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(-y[v][i].d * xdmin), _mm256_cvtepi32_ps(prod), acc[v]);
            sumi[v] = _mm256_setzero_si256();
        }
        for (int n = 0; n < 2; n++) {
            const __m256i raw = ld(x[i].qs + 32 * n);
            const __m256i W = sc_words(_mm_cvtepu8_epi16(n ? _mm_unpackhi_epi64(sc4, sc4) : sc4));
            for (int j = 0; j < 4; j++) {
                const int b = 4 * n + j;
                const __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3);
                const __m256i scv = sc_pair(W, j); /* sub-blocks 2b, 2b+1 */
                for (int v = 0; v < NY; v++)
                    sumi[v] = _mm256_add_epi32(sumi[v],
                                               _mm256_madd_epi16(scv, _mm256_maddubs_epi16(q, ld(y[v][i].qs + 32 * b))));
            }
        }
        for (int v = 0; v < NY; v++)
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(y[v][i].d * xd), _mm256_cvtepi32_ps(sumi[v]), acc[v]);
    }
    for (int v = 0; v < NY; v++) out[v] = etok_hsum_ps(acc[v]);
}

/* the min integers of Q4_K/Q5_K: 4 int32 lanes as k4_min_prod */
static inline TGT __m128i k4_min_prod_avx(__m128i m, const int16_t bsums[16]) {
    const __m128i s = _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)bsums), _mm_loadu_si128((const __m128i *)(bsums + 8)));
    return _mm_madd_epi16(m, s);
}

/* Q4_K/Q5_K's 8 6-bit scales (bytes 0..7) and 8 mins (bytes 8..15) from the 12 packed bytes,
 * with word operations in registers (a copy through a stack array made the vector loads of it
 * wait for the word stores: a store-forwarding stall per super-block) */
static inline TGT __m128i k4_scale_mins(const uint8_t *scales) {
    uint32_t a0, a1, a2;
    memcpy(&a0, scales, 4);
    memcpy(&a1, scales + 4, 4);
    memcpy(&a2, scales + 8, 4);
    const uint32_t lo6 = 0x3f3f3f3fu, lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    const uint32_t u3 = ((a2 >> 4) & lo4) | (((a1 >> 6) & lo2) << 4), u2 = a1 & lo6;
    const uint32_t u1 = (a2 & lo4) | (((a0 >> 6) & lo2) << 4), u0 = a0 & lo6;
    /* two 64-bit inserts (vmovq + vpinsrq) rather than four 32-bit ones */
    return _mm_set_epi64x((long long)((uint64_t)u3 << 32 | u2), (long long)((uint64_t)u1 << 32 | u0));
}

/* Q4_K / Q5_K super-block i's header, shared by the AVX2 and AVX-512 kernels: the 8 six-bit
 * scales (bytes 0..7 of *scm) and mins (8..15), and each vector's min term (-d_y * dmin *
 * sum(min_j * bsums_j)) added, Q4_K into the 4-lane accumulator accm[v], Q5_K as one integer
 * into the scalar summs[v] (the reference's fused fma). Returns the block's F16 scale d as a
 * float. */
KI float k4_block_head(const uint8_t *blk, int five, const etok_block_q8k *const *y, const int NY, int64_t i,
                       __m128i *scm, __m128 *accm, float *summs) {
    etok_f16 hd, hdmin;
    memcpy(&hd, blk, 2);
    memcpy(&hdmin, blk + 2, 2);
    const float xd = _cvtsh_ss(hd), xdmin = _cvtsh_ss(hdmin);
    *scm = k4_scale_mins(blk + 4);
    const __m128i mn16 = _mm_cvtepu8_epi16(_mm_unpackhi_epi64(*scm, *scm));
    for (int v = 0; v < NY; v++) {
        const float dmin = -y[v][i].d * xdmin;
        const __m128i prod = k4_min_prod_avx(mn16, y[v][i].bsums);
        if (five) {
            int32_t p[4];
            _mm_storeu_si128((__m128i *)p, prod);
            summs[v] = fmaf(dmin, (float)(p[0] + p[1] + p[2] + p[3]), summs[v]);
        } else {
            accm[v] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), accm[v]);
        }
    }
    return xd;
}

/* Q4_K (qh NULL) and Q5_K: values 64g + l (low nibble) and 64g + 32 + l (high nibble). The
 * min terms: Q4_K in a 4-lane float accumulator (fma per super-block), reduced (m0+m2)+(m1+m3);
 * Q5_K as one integer per super-block into a scalar float (the reference's compiled code fuses
 * summs + dmin * (float)isum into one fma). Both added after hsum_float_8. */
KI void avx_k4(const uint8_t *base, size_t bstride, int five, const etok_block_q8k *const *y, const int NY, int64_t nb,
               float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    __m256 acc[4];
    __m128 accm[4];
    float summs[4];
    for (int v = 0; v < NY; v++) {
        acc[v] = _mm256_setzero_ps();
        accm[v] = _mm_setzero_ps();
        summs[v] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = base + (size_t)i * bstride;
        const uint8_t *qh = five ? blk + 16 : NULL, *qs = five ? blk + 48 : blk + 16;
        __m128i scm;
        const float xd = k4_block_head(blk, five, y, NY, i, &scm, accm, summs);
        __m256i sumi[4];
        for (int v = 0; v < NY; v++) sumi[v] = _mm256_setzero_si256();
        const __m256i hh = five ? ld(qh) : _mm256_setzero_si256();
        const __m256i W = sc_words(_mm_cvtepu8_epi16(scm));
        for (int g = 0; g < 4; g++) {
            const __m256i raw = ld(qs + 32 * g);
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (five) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(k_bit(hh, 2 * g), sixteen));
                hi = _mm256_or_si256(hi, _mm256_and_si256(k_bit(hh, 2 * g + 1), sixteen));
            }
            const __m256i sl = sc_one(W, 2 * g), sh = sc_one(W, 2 * g + 1);
            for (int v = 0; v < NY; v++) {
                const __m256i pl = _mm256_madd_epi16(sl, _mm256_maddubs_epi16(lo, ld(y[v][i].qs + 64 * g)));
                const __m256i ph = _mm256_madd_epi16(sh, _mm256_maddubs_epi16(hi, ld(y[v][i].qs + 64 * g + 32)));
                sumi[v] = _mm256_add_epi32(sumi[v], _mm256_add_epi32(pl, ph));
            }
        }
        for (int v = 0; v < NY; v++)
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(y[v][i].d * xd), _mm256_cvtepi32_ps(sumi[v]), acc[v]);
    }
    for (int v = 0; v < NY; v++) {
        if (five) {
            out[v] = etok_hsum_ps(acc[v]) + summs[v];
        } else {
            __m128 m = _mm_add_ps(accm[v], _mm_movehl_ps(accm[v], accm[v]));
            m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[v] = etok_hsum_ps(acc[v]) + _mm_cvtss_f32(m);
        }
    }
}

KI void avx_dot_n(uint32_t type, const void *row, const etok_block_q8k *const *y, const int NY, int64_t n, float *out) {
    const int64_t nb = n / ETOK_QK_K;
    switch (type) {
    case ETOK_T_Q6_K: avx_q6_k(row, y, NY, nb, out); return;
    case ETOK_T_Q4_K: avx_k4(row, sizeof(etok_block_q4_k), 0, y, NY, nb, out); return;
    case ETOK_T_Q5_K: avx_k4(row, sizeof(etok_block_q5_k), 1, y, NY, nb, out); return;
    case ETOK_T_Q3_K: avx_q3_k(row, y, NY, nb, out); return;
    case ETOK_T_Q2_K: avx_q2_k(row, y, NY, nb, out); return;
    default:
        for (int v = 0; v < NY; v++) out[v] = 0;
        return;
    }
}

static TGT float avx_dot(uint32_t type, const void *row, const etok_block_q8k *y, int64_t n) {
    float o;
    avx_dot_n(type, row, &y, 1, n, &o);
    return o;
}

static TGT void avx_dot4(uint32_t type, const void *row, const etok_block_q8k *const *y, int64_t n, float *out) {
    avx_dot_n(type, row, y, 4, n, out);
}

/* ---- AVX2 prefill: 4 rows x 2 tokens per tile ----
 * avx_dot4 above unpacks a row's super-block once per 4 tokens. Here a group of 4 rows is
 * unpacked once per call (for all its tokens) into a canonical form, and 4 rows x 2 tokens are
 * computed together: per 32-value chunk c (values 32c .. 32c+31, against activation bytes
 * 32c ..) the unsigned values q (0..63), their int16 scale words (16-value sub-blocks: low and
 * high 128-bit half) and an offset o per format (Q6_K 32; Q3_K 4, its values made unsigned as
 * lo + 4 x bit: lo - 4 x (bit clear) = (lo + 4 x bit) - 4; else 0), so each lane gets
 * madd(scale, maddubs(q, a) - maddubs(o, a)): exactly avx_q*_k's int32 lanes (integer sums,
 * no int16 overflow: |63 x 128 x 2| < 2^15), the maddubs(o, a) once per chunk and token for
 * the 4 rows. Per (row, token) the float operations are avx_q*_k's, in their order (the min
 * terms of Q2_K before the super-block's FMA, Q4_K's 4-lane and Q5_K's scalar min sums), so
 * the bits are avx_dot's (tests/unit/test_quant_k_tile.c). */
#define KR 4
typedef struct {
    uint8_t q[8][32];  /* chunk c: the 32 values, unsigned */
    int16_t sc[8][16]; /* chunk c: scale words (0..7: bytes 0..15, 8..15: bytes 16..31) */
    int16_t mins[16];  /* Q2_K: the 16 mins; Q4_K / Q5_K: the 8 mins in words 0..7 */
    float d, dmin;
    float pad[6];
} ksb;

KI void st(void *p, __m256i v) { _mm256_storeu_si256((__m256i *)p, v); }

KI void unpack_sb(uint32_t type, const uint8_t *blk, ksb *u) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    if (type == ETOK_T_Q6_K) {
        const etok_block_q6_k *x = (const etok_block_q6_k *)blk;
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x->ql + 64 * h, *qh = x->qh + 32 * h;
            const __m256i l0 = ld(ql), l1 = ld(ql + 32), hh = ld(qh);
            st(u->q[4 * h], _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4)));
            st(u->q[4 * h + 1], _mm256_or_si256(_mm256_and_si256(l1, m4),
                                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4)));
            st(u->q[4 * h + 2], _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4)));
            st(u->q[4 * h + 3], _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                                _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4)));
            for (int k = 0; k < 4; k++) st(u->sc[4 * h + k], k_sc2(x->scales[8 * h + 2 * k], x->scales[8 * h + 2 * k + 1]));
        }
        u->d = _cvtsh_ss(x->d);
    } else if (type == ETOK_T_Q3_K) {
        const etok_block_q3_k *x = (const etok_block_q3_k *)blk;
        int8_t sc[16];
        etok_q3k_scales(x, sc);
        const __m256i hm = ld(x->hmask), four = _mm256_set1_epi8(4);
        for (int n = 0; n < 2; n++) {
            const __m256i raw = ld(x->qs + 32 * n);
            for (int j = 0; j < 4; j++) {
                const int b = 4 * n + j;
                st(u->q[b], _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3),
                                            _mm256_and_si256(k_bit(hm, b), four)));
                st(u->sc[b], k_sc2(sc[2 * b], sc[2 * b + 1]));
            }
        }
        u->d = _cvtsh_ss(x->d);
    } else if (type == ETOK_T_Q2_K) {
        const etok_block_q2_k *x = (const etok_block_q2_k *)blk;
        for (int n = 0; n < 2; n++) {
            const __m256i raw = ld(x->qs + 32 * n);
            for (int j = 0; j < 4; j++) {
                const int b = 4 * n + j;
                st(u->q[b], _mm256_and_si256(_mm256_srli_epi16(raw, 2 * j), m3));
                st(u->sc[b], k_sc2(x->scales[2 * b] & 0xF, x->scales[2 * b + 1] & 0xF));
            }
        }
        const __m128i scm = _mm_loadu_si128((const __m128i *)x->scales);
        st(u->mins, _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scm, 4), _mm_set1_epi8(0x0F))));
        u->d = _cvtsh_ss(x->d);
        u->dmin = _cvtsh_ss(x->dmin);
    } else { /* Q4_K, Q5_K */
        const int five = type == ETOK_T_Q5_K;
        etok_f16 hd, hdmin;
        memcpy(&hd, blk, 2);
        memcpy(&hdmin, blk + 2, 2);
        const uint8_t *qh = five ? blk + 16 : NULL, *qs = five ? blk + 48 : blk + 16;
        const __m128i scm = k4_scale_mins(blk + 4);
        uint8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, scm);
        _mm_storeu_si128((__m128i *)u->mins, _mm_cvtepu8_epi16(_mm_unpackhi_epi64(scm, scm)));
        const __m256i hh = five ? ld(qh) : _mm256_setzero_si256(), sixteen = _mm256_set1_epi8(16);
        for (int g = 0; g < 4; g++) {
            const __m256i raw = ld(qs + 32 * g);
            __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
            if (five) {
                lo = _mm256_or_si256(lo, _mm256_and_si256(k_bit(hh, 2 * g), sixteen));
                hi = _mm256_or_si256(hi, _mm256_and_si256(k_bit(hh, 2 * g + 1), sixteen));
            }
            st(u->q[2 * g], lo);
            st(u->q[2 * g + 1], hi);
            st(u->sc[2 * g], _mm256_set1_epi16(sc[2 * g]));
            st(u->sc[2 * g + 1], _mm256_set1_epi16(sc[2 * g + 1]));
        }
        u->d = _cvtsh_ss(hd);
        u->dmin = _cvtsh_ss(hdmin);
    }
}

/* 4 unpacked rows (u[i * KR + k]: super-block i of row k) x T tokens: res[t][k] */
KI void k_tile(const uint32_t type, const ksb *u, const etok_block_q8k *const y[2], const int T, int64_t nb,
               float res[2][KR]) {
    const int off = type == ETOK_T_Q6_K ? 32 : type == ETOK_T_Q3_K ? 4 : 0;
    const __m256i offv = _mm256_set1_epi8((char)off);
    __m256 acc[2][KR];
    __m128 accm[2][KR];
    float summs[2][KR];
    for (int t = 0; t < T; t++)
        for (int k = 0; k < KR; k++) {
            acc[t][k] = _mm256_setzero_ps();
            accm[t][k] = _mm_setzero_ps();
            summs[t][k] = 0;
        }
    for (int64_t i = 0; i < nb; i++) {
        const ksb *g = u + i * KR;
        __m256i sumi[2][KR];
        for (int t = 0; t < T; t++)
            for (int k = 0; k < KR; k++) sumi[t][k] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            __m256i yo[2];
            if (off)
                for (int t = 0; t < T; t++) yo[t] = _mm256_maddubs_epi16(offv, ld(y[t][i].qs + 32 * c));
            for (int k = 0; k < KR; k++) {
                const __m256i q = ld(g[k].q[c]), s = ld(g[k].sc[c]);
                for (int t = 0; t < T; t++) {
                    __m256i p = _mm256_maddubs_epi16(q, ld(y[t][i].qs + 32 * c));
                    if (off) p = _mm256_sub_epi16(p, yo[t]);
                    sumi[t][k] = _mm256_add_epi32(sumi[t][k], _mm256_madd_epi16(s, p));
                }
            }
        }
        for (int t = 0; t < T; t++) {
            const float yd = y[t][i].d;
            for (int k = 0; k < KR; k++) {
                if (type == ETOK_T_Q2_K) {
                    const __m256i prod = _mm256_madd_epi16(ld(g[k].mins), ld(y[t][i].bsums));
                    acc[t][k] = _mm256_fmadd_ps(_mm256_set1_ps(-yd * g[k].dmin), _mm256_cvtepi32_ps(prod), acc[t][k]);
                } else if (type == ETOK_T_Q4_K || type == ETOK_T_Q5_K) {
                    const float dmin = -yd * g[k].dmin;
                    const __m128i prod = k4_min_prod_avx(_mm_loadu_si128((const __m128i *)g[k].mins), y[t][i].bsums);
                    if (type == ETOK_T_Q5_K) {
                        int32_t p[4];
                        _mm_storeu_si128((__m128i *)p, prod);
                        summs[t][k] = fmaf(dmin, (float)(p[0] + p[1] + p[2] + p[3]), summs[t][k]);
                    } else {
                        accm[t][k] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), accm[t][k]);
                    }
                }
                acc[t][k] = _mm256_fmadd_ps(_mm256_set1_ps(yd * g[k].d), _mm256_cvtepi32_ps(sumi[t][k]), acc[t][k]);
            }
        }
    }
    for (int t = 0; t < T; t++)
        for (int k = 0; k < KR; k++) {
            if (type == ETOK_T_Q5_K) {
                res[t][k] = etok_hsum_ps(acc[t][k]) + summs[t][k];
            } else if (type == ETOK_T_Q4_K) {
                __m128 m = _mm_add_ps(accm[t][k], _mm_movehl_ps(accm[t][k], accm[t][k]));
                m = _mm_add_ss(m, _mm_movehdup_ps(m));
                res[t][k] = etok_hsum_ps(acc[t][k]) + _mm_cvtss_f32(m);
            } else {
                res[t][k] = etok_hsum_ps(acc[t][k]);
            }
        }
}

static TGT void k_tile_tokens(uint32_t type, const ksb *u, const etok_block_q8k *y, int64_t nb, int nx, int nrow,
                              float *out, size_t out_stride) {
    for (int j = 0; j < nx; j += 2) {
        const int T = nx - j < 2 ? 1 : 2;
        const etok_block_q8k *yy[2] = {y + (size_t)j * (size_t)nb, y + (size_t)(j + T - 1) * (size_t)nb};
        float res[2][KR];
#define KT_CASE(TY)                                                                                                    \
    case TY:                                                                                                           \
        if (T == 2)                                                                                                    \
            k_tile(TY, u, yy, 2, nb, res);                                                                             \
        else                                                                                                           \
            k_tile(TY, u, yy, 1, nb, res);                                                                             \
        break;
        switch (type) {
            KT_CASE(ETOK_T_Q6_K)
            KT_CASE(ETOK_T_Q3_K)
            KT_CASE(ETOK_T_Q2_K)
            KT_CASE(ETOK_T_Q4_K)
            KT_CASE(ETOK_T_Q5_K)
        default: return;
        }
#undef KT_CASE
        for (int t = 0; t < T; t++)
            for (int k = 0; k < nrow; k++) out[(size_t)(j + t) * out_stride + (size_t)k] = res[t][k];
    }
}


/* Super-blocks per row whose unpacked group fits the stack buffer (rows up to 4096 values); also
 * the decode scratch's size (kdy). */
#define K_STACK_SB 16

/* 0, or -1 when the buffer for wider rows cannot be allocated (nothing written). */
static TGT int k_matmul_tiled(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                              const etok_block_q8k *y, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK_K;
    const size_t bb = (size_t)etok_type_block_bytes(type);
    ksb stack[K_STACK_SB * KR] __attribute__((aligned(32))), *u = stack;
    if (nb > K_STACK_SB && !(u = aligned_alloc(32, (size_t)nb * KR * sizeof *u))) return -1;
    for (int64_t r = r0; r < r1; r += KR) {
        const int nrow = r1 - r < KR ? (int)(r1 - r) : KR;
        for (int k = 0; k < KR; k++) { /* a short group repeats its last row (rows are independent) */
            const uint8_t *row = w + (size_t)(r + (k < nrow ? k : nrow - 1)) * row_bytes;
            for (int64_t i = 0; i < nb; i++) unpack_sb(type, row + (size_t)i * bb, &u[i * KR + k]);
        }
        k_tile_tokens(type, u, y, nb, nx, nrow, out + r, out_stride);
    }
    if (u != stack) free(u);
    return 0;
}

/* ---- AVX2 decode (one token): KDR rows per pass, the activations' shared terms once per call ----
 * A matvec (nx = 1, kernel level avx2) computes per call, once for all rows, what the
 * single-row kernels above recompute per row: Q3_K's maddubs(4, a) and Q6_K's maddubs(32, a)
 * per 32-value chunk (int16 pair sums, kdy.off) and Q4_K/Q5_K's 32-value activation sums (the hadd
 * of bsums, kdy.s32). Rows go KDR at a time (per chunk the activation vector loaded once for
 * the KDR rows, each row with its own integer lanes and float accumulators); KDR is 1: 2 rows
 * per pass measured no faster with the matrix in cache and up to 1.8x slower streaming it from
 * memory (two interleaved row streams; docs/ENGINE.md), so k_decode passes one row at a time;
 * the kernels keep a row count R (<= KDR, their array bound) in which that was measured.
 * Q3_K's values are taken unsigned as lo + 4 x bit (lo - 4 x (bit clear) = (lo + 4 x bit) - 4,
 * as the prefill tiles do), so each int16 word is maddubs(q, a) - maddubs(4, a): the same exact
 * int16 values as avx_q3_k's maddubs(lo, a) - maddubs(off, a) (|7 x 128 x 2| < 2^15, no
 * saturation), hence the same int32 lanes. Per row the float operations and their order are the
 * single-row kernel's (Q2_K's min FMA before the super-block's FMA; Q4_K's 4-lane min
 * accumulator), so every row's bits are avx_dot's, which are llama.cpp's
 * (tests/unit/test_quant_k.c, test_decode_rows). Rows wider than K_STACK_SB super-blocks take
 * the single-row kernels. */
#define KDR 1 /* rows per pass: 2 measured as fast in cache and slower streaming from memory */
typedef struct {
    int16_t off[K_STACK_SB][8][16]; /* Q3_K / Q6_K: maddubs(4 or 32, a) of chunk c of block i */
    int16_t s32[K_STACK_SB][8];     /* Q4_K, Q5_K: bsums[2k] + bsums[2k+1] as _mm_hadd_epi16 gives them */
} kdy;

/* v shifted so that bit b of each byte lands on bit 4 of that byte (other bits arbitrary) */
KI __m256i k_to_bit4(__m256i v, const int b) {
    return b < 4 ? _mm256_slli_epi16(v, 4 - b) : b > 4 ? _mm256_srli_epi16(v, b - 4) : v;
}

/* the two consecutive F16 values at p (a K block's d, dmin) as floats in lanes 0 and 1: one conversion */
KI __m128 k_f16x2(const void *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(v));
}

static TGT void kdy_prep(uint32_t type, const etok_block_q8k *y, int64_t nb, kdy *p) {
    if (type == ETOK_T_Q3_K || type == ETOK_T_Q6_K) {
        const __m256i o = _mm256_set1_epi8((char)(type == ETOK_T_Q3_K ? 4 : 32));
        for (int64_t i = 0; i < nb; i++)
            for (int c = 0; c < 8; c++) st(p->off[i][c], _mm256_maddubs_epi16(o, ld(y[i].qs + 32 * c)));
    } else if (type == ETOK_T_Q4_K || type == ETOK_T_Q5_K) {
        for (int64_t i = 0; i < nb; i++)
            _mm_storeu_si128((__m128i *)p->s32[i], _mm_hadd_epi16(_mm_loadu_si128((const __m128i *)y[i].bsums),
                                                                  _mm_loadu_si128((const __m128i *)(y[i].bsums + 8))));
    }
}

KI void dec_q2_k(const uint8_t *const *rw, const etok_block_q8k *y, const int R, int64_t nb, float *out) {
    const __m256i m3 = _mm256_set1_epi8(3);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    __m256 acc[KDR];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const float yd = y[i].d;
        const __m256i bs = ld(y[i].bsums);
        __m256i sumi[KDR];
        __m128i sc4[KDR];
        float d[KDR];
        for (int r = 0; r < R; r++) {
            const etok_block_q2_k *x = (const etok_block_q2_k *)rw[r] + i;
            const __m128i scm = _mm_loadu_si128((const __m128i *)x->scales);
            const __m256i prod = _mm256_madd_epi16(_mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(scm, 4), m4)), bs);
            const __m128 dd = k_f16x2(&x->d); /* d, dmin */
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(-yd * _mm_cvtss_f32(_mm_movehdup_ps(dd))), _mm256_cvtepi32_ps(prod),
                                     acc[r]);
            sc4[r] = _mm_and_si128(scm, m4);
            d[r] = yd * _mm_cvtss_f32(dd);
            sumi[r] = _mm256_setzero_si256();
        }
        for (int n = 0; n < 2; n++) {
            __m256i W[KDR], raw[KDR];
            for (int r = 0; r < R; r++) {
                W[r] = sc_words(_mm_cvtepu8_epi16(n ? _mm_unpackhi_epi64(sc4[r], sc4[r]) : sc4[r]));
                raw[r] = ld(((const etok_block_q2_k *)rw[r] + i)->qs + 32 * n);
            }
            for (int j = 0; j < 4; j++) {
                const __m256i a = ld(y[i].qs + 32 * (4 * n + j));
                for (int r = 0; r < R; r++) {
                    const __m256i q = _mm256_and_si256(_mm256_srli_epi16(raw[r], 2 * j), m3);
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(sc_pair(W[r], j), _mm256_maddubs_epi16(q, a)));
                }
            }
        }
        for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d[r]), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
    for (int r = 0; r < R; r++) out[r] = etok_hsum_ps(acc[r]);
}

KI void dec_q3_k(const uint8_t *const *rw, const etok_block_q8k *y, const kdy *p, const int R, int64_t nb, float *out) {
    const __m256i m3 = _mm256_set1_epi8(3), four = _mm256_set1_epi8(4);
    __m256 acc[KDR];
    for (int r = 0; r < R; r++) acc[r] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi[KDR];
        __m128i sc[KDR];
        for (int r = 0; r < R; r++) {
            sc[r] = q3k_scales16(((const etok_block_q3_k *)rw[r] + i)->scales);
            sumi[r] = _mm256_setzero_si256();
        }
        for (int n = 0; n < 2; n++) {
            __m256i W[KDR], raw[KDR];
            for (int r = 0; r < R; r++) {
                W[r] = sc_words(_mm_cvtepi8_epi16(n ? _mm_unpackhi_epi64(sc[r], sc[r]) : sc[r]));
                raw[r] = ld(((const etok_block_q3_k *)rw[r] + i)->qs + 32 * n);
            }
            for (int j = 0; j < 4; j++) {
                const int b = 4 * n + j;
                const __m256i a = ld(y[i].qs + 32 * b), yo = ld(p->off[i][b]);
                for (int r = 0; r < R; r++) {
                    /* bit b of each hmask byte moved to bit 2 of the same byte (16-bit shifts: the bits
                     * that cross into the byte land above bit 2, and 4 keeps only bit 2) */
                    const __m256i hm = ld(((const etok_block_q3_k *)rw[r] + i)->hmask);
                    const __m256i hb = _mm256_and_si256(b <= 2 ? _mm256_slli_epi16(hm, 2 - b) : _mm256_srli_epi16(hm, b - 2), four);
                    const __m256i q = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(raw[r], 2 * j), m3), hb);
                    const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q, a), yo);
                    sumi[r] = _mm256_add_epi32(sumi[r], _mm256_madd_epi16(sc_pair(W[r], j), p16));
                }
            }
        }
        const float yd = y[i].d;
        for (int r = 0; r < R; r++) {
            const float xd = _cvtsh_ss(((const etok_block_q3_k *)rw[r] + i)->d);
            acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(yd * xd), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
        }
    }
    for (int r = 0; r < R; r++) out[r] = etok_hsum_ps(acc[r]);
}

/* Q4_K (five = 0) and Q5_K (five = 1, the 5th bits from qh as avx_k4; its min terms as one
 * integer per super-block into the scalar summs, the reference's fused fma) */
KI void dec_k4(const uint8_t *const *rw, const int five, const etok_block_q8k *y, const kdy *p, const int R, int64_t nb,
               float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), sixteen = _mm256_set1_epi8(16);
    const size_t bstride = five ? sizeof(etok_block_q5_k) : sizeof(etok_block_q4_k), qoff = five ? 48 : 16;
    __m256 acc[KDR];
    __m128 accm[KDR];
    float summs[KDR];
    for (int r = 0; r < R; r++) {
        acc[r] = _mm256_setzero_ps();
        accm[r] = _mm_setzero_ps();
        summs[r] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        const float yd = y[i].d;
        const __m128i q8s = _mm_loadu_si128((const __m128i *)p->s32[i]);
        __m256i sumi[KDR], W[KDR];
        float d[KDR];
        for (int r = 0; r < R; r++) {
            const uint8_t *blk = rw[r] + (size_t)i * bstride;
            const __m128 dd = k_f16x2(blk); /* d, dmin (exact conversions) */
            const __m128i scm = k4_scale_mins(blk + 4);
            const __m128i prod = _mm_madd_epi16(_mm_cvtepu8_epi16(_mm_unpackhi_epi64(scm, scm)), q8s);
            const float dmin = -yd * _mm_cvtss_f32(_mm_movehdup_ps(dd));
            if (five) {
                int32_t pr[4];
                _mm_storeu_si128((__m128i *)pr, prod);
                summs[r] = fmaf(dmin, (float)(pr[0] + pr[1] + pr[2] + pr[3]), summs[r]);
            } else {
                accm[r] = _mm_fmadd_ps(_mm_set1_ps(dmin), _mm_cvtepi32_ps(prod), accm[r]);
            }
            W[r] = sc_words(_mm_cvtepu8_epi16(scm));
            d[r] = yd * _mm_cvtss_f32(dd);
            sumi[r] = _mm256_setzero_si256();
        }
        for (int g = 0; g < 4; g++) {
            const __m256i al = ld(y[i].qs + 64 * g), ah = ld(y[i].qs + 64 * g + 32);
            for (int r = 0; r < R; r++) {
                const uint8_t *blk = rw[r] + (size_t)i * bstride;
                const __m256i raw = ld(blk + qoff + 32 * g);
                __m256i lo = _mm256_and_si256(raw, m4), hi = _mm256_and_si256(_mm256_srli_epi16(raw, 4), m4);
                if (five) { /* bit b of each qh byte moved to bit 4 of the same byte (16-bit shifts:
                             * the bits crossing into the byte land away from bit 4) */
                    const __m256i hh = ld(blk + 16);
                    lo = _mm256_or_si256(lo, _mm256_and_si256(k_to_bit4(hh, 2 * g), sixteen));
                    hi = _mm256_or_si256(hi, _mm256_and_si256(k_to_bit4(hh, 2 * g + 1), sixteen));
                }
                const __m256i pl = _mm256_madd_epi16(sc_one(W[r], 2 * g), _mm256_maddubs_epi16(lo, al));
                const __m256i ph = _mm256_madd_epi16(sc_one(W[r], 2 * g + 1), _mm256_maddubs_epi16(hi, ah));
                sumi[r] = _mm256_add_epi32(sumi[r], _mm256_add_epi32(pl, ph));
            }
        }
        for (int r = 0; r < R; r++) acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(d[r]), _mm256_cvtepi32_ps(sumi[r]), acc[r]);
    }
    for (int r = 0; r < R; r++) {
        if (five) {
            out[r] = etok_hsum_ps(acc[r]) + summs[r];
        } else {
            __m128 m = _mm_add_ps(accm[r], _mm_movehl_ps(accm[r], accm[r]));
            m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[r] = etok_hsum_ps(acc[r]) + _mm_cvtss_f32(m);
        }
    }
}

/* Q6_K one row at a time (its 4 unpacked chunks per half leave no registers for a second row),
 * with the shared maddubs(32, a) */
KI void dec_q6_k(const etok_block_q6_k *x, const etok_block_q8k *y, const kdy *p, int64_t nb, float *out) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m3 = _mm256_set1_epi8(3);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m256i sumi = _mm256_setzero_si256();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            const __m256i l0 = ld(ql), l1 = ld(ql + 32), hh = ld(qh);
            const __m256i W = sc_words(_mm_cvtepi8_epi16(_mm_loadl_epi64((const __m128i *)(x[i].scales + 8 * h))));
            __m256i q[4];
            q[0] = _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hh, m3), 4));
            q[1] = _mm256_or_si256(_mm256_and_si256(l1, m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 2), m3), 4));
            q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 4), m3), 4));
            q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), m4),
                                   _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hh, 6), m3), 4));
            for (int k = 0; k < 4; k++) {
                const __m256i a = ld(y[i].qs + 128 * h + 32 * k);
                const __m256i p16 = _mm256_sub_epi16(_mm256_maddubs_epi16(q[k], a), ld(p->off[i][4 * h + k]));
                sumi = _mm256_add_epi32(sumi, _mm256_madd_epi16(sc_pair(W, k), p16));
            }
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(y[i].d * _cvtsh_ss(x[i].d)), _mm256_cvtepi32_ps(sumi), acc);
    }
    *out = etok_hsum_ps(acc);
}

#define KD_GROUP(R)                                                                                                    \
    do {                                                                                                               \
        if (type == ETOK_T_Q2_K)                                                                                       \
            dec_q2_k(rw, y, R, nb, o);                                                                                 \
        else if (type == ETOK_T_Q3_K)                                                                                  \
            dec_q3_k(rw, y, p, R, nb, o);                                                                              \
        else if (type == ETOK_T_Q4_K)                                                                                  \
            dec_k4(rw, 0, y, p, R, nb, o);                                                                             \
        else                                                                                                           \
            dec_k4(rw, 1, y, p, R, nb, o);                                                                             \
    } while (0)

/* Rows [r0, r1) times one activation vector (Q2_K .. Q6_K; nb <= K_STACK_SB) */
static TGT void k_decode(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                         const etok_block_q8k *y, int64_t nb, float *out) {
    kdy prep __attribute__((aligned(32)));
    kdy *p = &prep;
    kdy_prep(type, y, nb, p);
    if (type == ETOK_T_Q6_K) {
        for (int64_t r = r0; r < r1; r++)
            dec_q6_k((const etok_block_q6_k *)(w + (size_t)r * row_bytes), y, p, nb, out + r);
        return;
    }
    for (int64_t r = r0; r < r1; r++) { /* one row per pass (KDR) */
        const uint8_t *rw[1] = {w + (size_t)r * row_bytes};
        float *o = out + r;
        KD_GROUP(1);
    }
}
#undef KD_GROUP

static int k_decode_applies(uint32_t type, int64_t nb) {
    return nb <= K_STACK_SB && etok_type_uses_q8k(type); /* Q2_K .. Q6_K */
}

/* ---- AVX-512 (F, BW, VL, VNNI): Q4_K, Q5_K, Q6_K ----
 * The same integers and float operations as the AVX2 kernels above, hence the same bits: two
 * 32-byte chunks per zmm through the same maddubs (no saturation: as AVX2), the scale applied
 * and added by VPDPWSSD (= madd + add, exact in int32), the two halves of the zmm sum added at
 * the end of the super-block (integer addition: any order gives the same lanes, value i still
 * in lane (i % 32) / 4), then the AVX2 float FMA per super-block and vector, in order. */
#define T512 ETOK_AVX512_TARGET
#define KI512 static inline __attribute__((always_inline)) T512

KI512 __m512i ld64(const void *p) { return _mm512_loadu_si512(p); }
KI512 __m256i sum_halves(__m512i v) {
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* int16 scales for the four 128-bit lanes of a zmm: the 8 words of lane j all sc[j] (sc: 4
 * signed bytes; the 16-value sub-blocks of two 32-byte chunks) */
KI512 __m512i sc4_lanes(const int8_t *sc) {
    int32_t w;
    memcpy(&w, sc, 4);
    const __m512i idx = _mm512_set_epi16(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0,
                                         0, 0, 0, 0);
    return _mm512_permutexvar_epi16(idx, _mm512_castsi128_si512(_mm_cvtepi8_epi16(_mm_cvtsi32_si128(w))));
}

KI512 void avx512_q6_k(const etok_block_q6_k *x, const etok_block_q8k *const *y, const int NY, int64_t nb, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), m3 = _mm512_set1_epi8(3), m32 = _mm512_set1_epi8(32);
    __m256 acc[4];
    for (int v = 0; v < NY; v++) acc[v] = _mm256_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        __m512i sumi[4];
        for (int v = 0; v < NY; v++) sumi[v] = _mm512_setzero_si512();
        for (int h = 0; h < 2; h++) {
            const uint8_t *ql = x[i].ql + 64 * h, *qh = x[i].qh + 32 * h;
            /* lanes [l0 | l1] and [hh | hh]: chunk pair (0, 1) then (2, 3) of quant_avx2's q[k] */
            const __m512i l01 = ld64(ql);
            const __m512i hh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qh));
            /* q[0] | q[1]: low nibbles, high bits (hh >> 0) and (hh >> 2) */
            const __m512i hsh01 = _mm512_mask_blend_epi64(0xF0, hh, _mm512_srli_epi16(hh, 2));
            const __m512i hsh23 = _mm512_mask_blend_epi64(0xF0, _mm512_srli_epi16(hh, 4), _mm512_srli_epi16(hh, 6));
            __m512i q[2];
            q[0] = _mm512_or_si512(_mm512_and_si512(l01, m4), _mm512_slli_epi16(_mm512_and_si512(hsh01, m3), 4));
            q[1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(l01, 4), m4),
                                   _mm512_slli_epi16(_mm512_and_si512(hsh23, m3), 4));
            for (int k = 0; k < 2; k++) { /* chunks 2k and 2k+1: 16-value sub-blocks 8h+4k .. +3 */
                const __m512i scv = sc4_lanes(x[i].scales + 8 * h + 4 * k);
                for (int v = 0; v < NY; v++) {
                    const __m512i a = ld64(y[v][i].qs + 128 * h + 64 * k);
                    const __m512i p16 = _mm512_sub_epi16(_mm512_maddubs_epi16(q[k], a), _mm512_maddubs_epi16(m32, a));
                    sumi[v] = _mm512_dpwssd_epi32(sumi[v], scv, p16);
                }
            }
        }
        const float xd = _cvtsh_ss(x[i].d);
        for (int v = 0; v < NY; v++)
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(y[v][i].d * xd), _mm256_cvtepi32_ps(sum_halves(sumi[v])), acc[v]);
    }
    for (int v = 0; v < NY; v++) out[v] = etok_hsum_ps(acc[v]);
}

/* Q4_K / Q5_K as avx_k4: per 64-value group g the zmm [low nibbles | high nibbles] of the 32
 * bytes against the group's 64 activations, scales sc[2g] (lanes 0-15) and sc[2g+1] (16-31) */
KI512 void avx512_k4(const uint8_t *base, size_t bstride, int five, const etok_block_q8k *const *y, const int NY,
                     int64_t nb, float *out) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), sixteen = _mm512_set1_epi8(16);
    __m256 acc[4];
    __m128 accm[4];
    float summs[4];
    for (int v = 0; v < NY; v++) {
        acc[v] = _mm256_setzero_ps();
        accm[v] = _mm_setzero_ps();
        summs[v] = 0;
    }
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *blk = base + (size_t)i * bstride;
        const uint8_t *qh = five ? blk + 16 : NULL, *qs = five ? blk + 48 : blk + 16;
        __m128i scm;
        const float xd = k4_block_head(blk, five, y, NY, i, &scm, accm, summs);
        uint8_t sc[16];
        _mm_storeu_si128((__m128i *)sc, scm);
        __m512i sumi[4];
        for (int v = 0; v < NY; v++) sumi[v] = _mm512_setzero_si512();
        uint32_t hbits[8] = {0};
        if (five) { /* bit s of qh[l] (s = 0..7): the 5th bit of value 32 s + l, as 32-bit masks */
            const __m256i hh = _mm256_loadu_si256((const __m256i *)qh);
            for (int b = 0; b < 8; b++) hbits[b] = _mm256_test_epi8_mask(hh, _mm256_set1_epi8((char)(1 << b)));
        }
        for (int g = 0; g < 4; g++) {
            const __m256i raw = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m512i w = _mm512_and_si512(_mm512_inserti64x4(_mm512_castsi256_si512(raw), _mm256_srli_epi16(raw, 4), 1), m4);
            if (five)
                w = _mm512_or_si512(w, _mm512_maskz_mov_epi8((__mmask64)hbits[2 * g] | (__mmask64)hbits[2 * g + 1] << 32,
                                                             sixteen));
            const __m512i scv = _mm512_mask_blend_epi64(0xF0, _mm512_set1_epi16(sc[2 * g]), _mm512_set1_epi16(sc[2 * g + 1]));
            for (int v = 0; v < NY; v++)
                sumi[v] = _mm512_dpwssd_epi32(sumi[v], scv, _mm512_maddubs_epi16(w, ld64(y[v][i].qs + 64 * g)));
        }
        for (int v = 0; v < NY; v++)
            acc[v] = _mm256_fmadd_ps(_mm256_set1_ps(y[v][i].d * xd), _mm256_cvtepi32_ps(sum_halves(sumi[v])), acc[v]);
    }
    for (int v = 0; v < NY; v++) {
        if (five) {
            out[v] = etok_hsum_ps(acc[v]) + summs[v];
        } else {
            __m128 m = _mm_add_ps(accm[v], _mm_movehl_ps(accm[v], accm[v]));
            m = _mm_add_ss(m, _mm_movehdup_ps(m));
            out[v] = etok_hsum_ps(acc[v]) + _mm_cvtss_f32(m);
        }
    }
}

static int avx512_k(uint32_t type) {
    return (type == ETOK_T_Q4_K || type == ETOK_T_Q5_K || type == ETOK_T_Q6_K) && etok_isa_active() >= ETOK_ISA_AVX512;
}

KI512 void avx512_dot_n(uint32_t type, const void *row, const etok_block_q8k *const *y, const int NY, int64_t n,
                        float *out) {
    const int64_t nb = n / ETOK_QK_K;
    switch (type) {
    case ETOK_T_Q6_K: avx512_q6_k(row, y, NY, nb, out); return;
    case ETOK_T_Q4_K: avx512_k4(row, sizeof(etok_block_q4_k), 0, y, NY, nb, out); return;
    default: avx512_k4(row, sizeof(etok_block_q5_k), 1, y, NY, nb, out); return; /* Q5_K (avx512_k) */
    }
}

static T512 float avx512_dot(uint32_t type, const void *row, const etok_block_q8k *y, int64_t n) {
    float o;
    avx512_dot_n(type, row, &y, 1, n, &o);
    return o;
}

static T512 void avx512_dot4(uint32_t type, const void *row, const etok_block_q8k *const *y, int64_t n, float *out) {
    avx512_dot_n(type, row, y, 4, n, out);
}
#endif

float etok_vec_dot_q8k(uint32_t type, const void *row, const etok_block_q8k *y, int64_t n) {
#if ETOK_HAVE_X86_SIMD
    if (avx512_k(type)) return avx512_dot(type, row, y, n);
    if (etok_simd_active()) return avx_dot(type, row, y, n);
#endif
    return etok_vec_dot_q8k_ref(type, row, y, n);
}

void etok_matmul_rows_q8k(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                          const etok_block_q8k *y, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK_K;
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill_q8k(type, w, row_bytes, r0, r1, y, n, nx, out, out_stride)) return; /* quant_amx.c */
    if (etok_simd_active()) {
        const int wide = avx512_k(type);
        if (!wide && nx >= 2 && k_matmul_tiled(type, w, row_bytes, r0, r1, y, n, nx, out, out_stride) == 0) return;
        if (!wide && nx == 1 && k_decode_applies(type, nb)) {
            k_decode(type, w, row_bytes, r0, r1, y, nb, out);
            return;
        }
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            int j = 0;
            for (; j + 4 <= nx; j += 4) { /* 4 tokens per pass over the row */
                const etok_block_q8k *yy[4] = {y + (size_t)j * (size_t)nb, y + (size_t)(j + 1) * (size_t)nb,
                                               y + (size_t)(j + 2) * (size_t)nb, y + (size_t)(j + 3) * (size_t)nb};
                float o[4];
                if (wide)
                    avx512_dot4(type, row, yy, n, o);
                else
                    avx_dot4(type, row, yy, n, o);
                for (int v = 0; v < 4; v++) out[(size_t)(j + v) * out_stride + (size_t)r] = o[v];
            }
            for (; j < nx; j++)
                out[(size_t)j * out_stride + (size_t)r] =
                    wide ? avx512_dot(type, row, y + (size_t)j * (size_t)nb, n) : avx_dot(type, row, y + (size_t)j * (size_t)nb, n);
        }
        return;
    }
#endif
    for (int64_t r = r0; r < r1; r++)
        for (int j = 0; j < nx; j++)
            out[(size_t)j * out_stride + (size_t)r] =
                etok_vec_dot_q8k_ref(type, w + (size_t)r * row_bytes, y + (size_t)j * (size_t)nb, n);
}
