/* vmath.c — the exp() approximation of llama.cpp's CPU softmax and SiLU (see vmath.h), and
 * the attention kernels declared there (one-token F16 sums, the Q8_0 cache's K.q and V sum).
 *
 * Algorithm (Arm optimized-routines' single-precision exp, in the variant ggml's AVX2 code
 * uses; written from the math, not copied): with the "shifter" S = 1.5 * 2^23,
 *   z = fma(x, 1/ln2, S)        z's low mantissa bits now hold n = round(x / ln2)
 *   n = z - S
 *   b = fma(-n, L2lo, fma(-n, L2hi, x))          b = x - n ln2 in two parts, |b| <= ln2/2
 *   p(b) = fma(fma(fma(c5, b, c4), b*b, fma(c3, b, c2)), b*b, c1 * b)  ~ e^b - 1
 *   k = 2^n, built in the exponent field: bits(z) << 23 plus bits(1.0f)
 *   e^x = fma(p, k, k)                                               when |n| <= 126
 * and for |n| > 126 (2^n not representable as a float) the scale is split into two factors
 * s1 * s2 with s1 = 2^127 or 2^-125 (by the sign of n): e^x = fma(s2, p, s2) * s1; for
 * |n| > 192 the result is s1 * s1 (overflow to inf or underflow to 0). Every step is an IEEE
 * single operation (fmaf is one rounding), so this scalar code gives the same bits as the
 * vector version in every lane. Constants are the reference's, as hexadecimal floats. */
#include "engine/vmath.h"
#include "engine/quant_simd.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

float etok_vexpf(float x) {
    const float shift = 0x1.8p23f, inv_ln2 = 0x1.715476p+0f, ln2_hi = 0x1.62e4p-1f, ln2_lo = 0x1.7f7d1cp-20f;
    const float c1 = 0x1.ffffecp-1f, c2 = 0x1.fffdb6p-2f, c3 = 0x1.555e66p-3f, c4 = 0x1.573e2ep-5f,
                c5 = 0x1.0e4020p-7f;
    const float z = fmaf(x, inv_ln2, shift);
    const float n = z - shift;
    const float b = fmaf(-n, ln2_lo, fmaf(-n, ln2_hi, x));
    const uint32_t e = f2u(z) << 23;
    const float k = u2f(e + f2u(1.0f));
    const float u = b * b;
    const float j = fmaf(fmaf(fmaf(c5, b, c4), u, fmaf(c3, b, c2)), u, c1 * b);
    const float an = fabsf(n);
    if (!(an > 126.0f)) return fmaf(k, j, k);
    const uint32_t g = n <= 0.0f ? 0x82000000u : 0u;
    const float s1 = u2f(g + 0x7f000000u), s2 = u2f(e - g);
    if (an > 192.0f) return s1 * s1;
    return fmaf(s2, j, s2) * s1;
}

float etok_max_ref(const float *x, int n) {
    float mx = -INFINITY;
    for (int i = 0; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

double etok_softmax_exp_ref(float *y, const float *x, int n, float max) {
    double sum = 0;
    for (int i = 0; i < n; i += 8) {
        /* the reference's row runs over the whole padded KV range, the positions not attended
         * masked to -inf (exp 0): a short last block sums as if padded with zeros */
        float v[8] = {0};
        const int m = n - i < 8 ? n - i : 8;
        for (int l = 0; l < m; l++) v[l] = y[i + l] = etok_vexpf(x[i + l] - max);
        const float a0 = v[4] + v[0], a1 = v[5] + v[1], a2 = v[6] + v[2], a3 = v[7] + v[3];
        sum += (double)((a0 + a2) + (a1 + a3));
    }
    return sum;
}

void etok_silu_mul_ref(float *gate, const float *up, int n) {
    const int nv = n - n % 8;
    for (int i = 0; i < n; i++) {
        const float x = gate[i], ex = i < nv ? etok_vexpf(0.0f - x) : expf(-x);
        gate[i] = x / (1.0f + ex) * up[i];
    }
}

/* ------------------------------------------------------------------ attention, one token */

static float h2f(const uint8_t *p) {
    etok_f16 h;
    memcpy(&h, p, sizeof h);
    return etok_f16_to_f32(h);
}

/* the reference's reduction of four 8-lane accumulators a[j][l] (see vmath.h) */
static float reduce_4x8(const float a[4][8]) {
    float z[8];
    for (int l = 0; l < 8; l++) z[l] = (a[0][l] + a[2][l]) + (a[1][l] + a[3][l]);
    const float t0 = z[0] + z[4], t1 = z[1] + z[5], t2 = z[2] + z[6], t3 = z[3] + z[7];
    return (t0 + t1) + (t2 + t3);
}

void etok_attn_scores_1tok_ref(const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                 float *out) {
    const int np = hd & ~31;
    for (int s = 0; s < n; s++) {
        const uint8_t *k = k0 + (size_t)s * stride;
        float a[4][8] = {{0}};
        for (int i = 0; i < np; i += 32)
            for (int j = 0; j < 4; j++)
                for (int l = 0; l < 8; l++) {
                    const int c = i + 8 * j + l;
                    a[j][l] = fmaf(h2f(k + 2 * c), q[c], a[j][l]);
                }
        double sum = reduce_4x8(a);
        for (int c = np; c < hd; c++) sum += (double)(h2f(k + 2 * c) * q[c]);
        out[s] = (float)sum * scale;
    }
}

void etok_attn_accum_1tok_ref(const float *w, int n_runs, const uint8_t *const *v0, const int *first_pos,
                              const int *n, size_t stride, int hd, float *out) {
    float acc[32][512];
    for (int k = 0; k < 32; k++) memset(acc[k], 0, (size_t)hd * sizeof(float));
    for (int r = 0; r < n_runs; r++)
        for (int s = 0; s < n[r]; s++, w++) {
            const uint8_t *v = v0[r] + (size_t)s * stride;
            float *a = acc[(first_pos[r] + s) % 32];
            for (int i = 0; i < hd; i++) a[i] = fmaf(h2f(v + 2 * i), *w, a[i]);
        }
    for (int i = 0; i < hd; i++) {
        float a[4][8];
        for (int j = 0; j < 4; j++)
            for (int l = 0; l < 8; l++) a[j][l] = acc[8 * j + l][i];
        out[i] = reduce_4x8(a);
    }
}

/* the grouped functions' reference: head by head (this defines their bits) */
void etok_attn_scores_1tok_multi_ref(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                     float scale, float *out, size_t out_stride, const uint8_t *v_pf) {
    (void)v_pf;
    for (int h = 0; h < g; h++)
        etok_attn_scores_1tok_ref(q + (size_t)h * (size_t)hd, k0, stride, n, hd, scale, out + (size_t)h * out_stride);
}

void etok_attn_accum_1tok_multi_ref(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                    const int *first_pos, const int *n, size_t stride, int hd, float *out) {
    for (int h = 0; h < g; h++)
        etok_attn_accum_1tok_ref(w + (size_t)h * w_stride, n_runs, v0, first_pos, n, stride, hd, out + (size_t)h * (size_t)hd);
}

/* The sum over a Q8_0 V cache: the definition of its bits (vmath.h). Each V row dequantised
 * as d * q (exact in float: an 11-bit F16 scale times an 8-bit integer), then per head and
 * value one fused multiply-add of it and the weight, in position order from 0 (the term
 * arithmetic of llama.cpp's flash attention, ggml_vec_mad_f32: y = fma(v, w, y)). */
void etok_attn_accum_q8_0_ref(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                              const int *n, size_t stride, int hd, float *out) {
    memset(out, 0, (size_t)g * (size_t)hd * sizeof(float));
    float row[512];
    int k = 0;
    for (int r = 0; r < n_runs; r++)
        for (int j = 0; j < n[r]; j++, k++) {
            etok_dequantize_row(ETOK_T_Q8_0, v0[r] + (size_t)j * stride, row, hd);
            for (int h = 0; h < g; h++) {
                const float wj = w[(size_t)h * w_stride + (size_t)k];
                float *oh = out + (size_t)h * (size_t)hd;
                for (int i = 0; i < hd; i++) oh[i] = fmaf(row[i], wj, oh[i]);
            }
        }
}

void etok_quantize_kv_q8_0(const float *x, void *row, int64_t n) {
    etok_block_q8_0 *b = row;
    for (int64_t i = 0; i < n / ETOK_QK; i++) {
        const float *v = x + i * ETOK_QK;
        float amax = 0;
        for (int j = 0; j < ETOK_QK; j++) amax = fmaxf(amax, fabsf(v[j]));
        const float id = amax != 0.0f ? 127.0f / amax : 0.0f;
        b[i].d = etok_f32_to_f16(amax / 127.0f);
        for (int j = 0; j < ETOK_QK; j++) {
            const long q = lrintf(v[j] * id); /* the current rounding mode: to nearest, ties even */
            b[i].qs[j] = (int8_t)(q > 127 ? 127 : q < -128 ? -128 : q);
        }
    }
}

/* K.q over a Q8_0 cache in the AVX2 kernel's order (vmath.h): lane l of a block holds the
 * integer sum of bytes 4l..4l+3, the lanes' FMA chains run over the blocks from 0, and the
 * eight lanes are reduced as etok_hsum_ps (hsum_float_8) does */
void etok_attn_scores_q8_0_ref(const etok_block_q8a *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                               float scale, float *out, size_t out_stride, const uint8_t *v_pf) {
    (void)v_pf;
    const int nb = hd / ETOK_QK;
    for (int s = 0; s < n; s++) {
        const etok_block_q8_0 *k = (const etok_block_q8_0 *)(k0 + (size_t)s * stride);
        for (int h = 0; h < g; h++) {
            const etok_block_q8a *y = q + (size_t)h * (size_t)nb;
            float a[8] = {0};
            for (int b = 0; b < nb; b++) {
                const float d = etok_f16_to_f32(k[b].d) * y[b].d;
                for (int l = 0; l < 8; l++) {
                    int isum = 0;
                    for (int i = 4 * l; i < 4 * l + 4; i++) isum += k[b].qs[i] * y[b].qs[i];
                    a[l] = fmaf(d, (float)isum, a[l]);
                }
            }
            const float t0 = a[0] + a[4], t1 = a[1] + a[5], t2 = a[2] + a[6], t3 = a[3] + a[7];
            out[(size_t)h * out_stride + (size_t)s] = ((t0 + t2) + (t1 + t3)) * scale;
        }
    }
}

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET

/* etok_vexpf on 8 lanes: the same operations, so the same bits in every lane */
static inline TGT __m256 vexpf8(__m256 x) {
    const __m256 shift = _mm256_set1_ps(0x1.8p23f);
    const __m256 z = _mm256_fmadd_ps(x, _mm256_set1_ps(0x1.715476p+0f), shift);
    const __m256 n = _mm256_sub_ps(z, shift);
    const __m256 nn = _mm256_sub_ps(_mm256_setzero_ps(), n);
    const __m256 b = _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.7f7d1cp-20f), _mm256_fmadd_ps(nn, _mm256_set1_ps(0x1.62e4p-1f), x));
    const __m256i e = _mm256_slli_epi32(_mm256_castps_si256(z), 23);
    const __m256 k = _mm256_castsi256_ps(_mm256_add_epi32(e, _mm256_set1_epi32(0x3f800000)));
    const __m256 u = _mm256_mul_ps(b, b);
    const __m256 j = _mm256_fmadd_ps(
        _mm256_fmadd_ps(_mm256_fmadd_ps(_mm256_set1_ps(0x1.0e4020p-7f), b, _mm256_set1_ps(0x1.573e2ep-5f)), u,
                        _mm256_fmadd_ps(_mm256_set1_ps(0x1.555e66p-3f), b, _mm256_set1_ps(0x1.fffdb6p-2f))),
        u, _mm256_mul_ps(_mm256_set1_ps(0x1.ffffecp-1f), b));
    const __m256 an = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), n);
    const __m256 big = _mm256_cmp_ps(an, _mm256_set1_ps(126.0f), _CMP_GT_OQ);
    const __m256 fast = _mm256_fmadd_ps(k, j, k);
    if (!_mm256_movemask_ps(big)) return fast;
    const __m256i g = _mm256_and_si256(_mm256_castps_si256(_mm256_cmp_ps(n, _mm256_setzero_ps(), _CMP_LE_OQ)),
                                       _mm256_set1_epi32((int)0x82000000u));
    const __m256 s1 = _mm256_castsi256_ps(_mm256_add_epi32(g, _mm256_set1_epi32(0x7f000000)));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_sub_epi32(e, g));
    const __m256 huge = _mm256_cmp_ps(an, _mm256_set1_ps(192.0f), _CMP_GT_OQ);
    const __m256 scaled = _mm256_mul_ps(_mm256_fmadd_ps(s2, j, s2), s1);
    return _mm256_blendv_ps(_mm256_blendv_ps(fast, scaled, big), _mm256_mul_ps(s1, s1), huge);
}

/* maxps(v, m) is v > m ? v : m lane by lane (m when either is NaN or they are equal), the
 * reference's step */
TGT float etok_max_avx2(const float *x, int n) {
    __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0, m2 = m0, m3 = m0;
    int i = 0;
    for (; i + 32 <= n; i += 32) {
        m0 = _mm256_max_ps(_mm256_loadu_ps(x + i), m0);
        m1 = _mm256_max_ps(_mm256_loadu_ps(x + i + 8), m1);
        m2 = _mm256_max_ps(_mm256_loadu_ps(x + i + 16), m2);
        m3 = _mm256_max_ps(_mm256_loadu_ps(x + i + 24), m3);
    }
    float lanes[8];
    _mm256_storeu_ps(lanes, _mm256_max_ps(_mm256_max_ps(m0, m1), _mm256_max_ps(m2, m3)));
    float mx = etok_max_ref(lanes, 8);
    for (; i < n; i++) mx = x[i] > mx ? x[i] : mx;
    return mx;
}

TGT double etok_softmax_exp_avx2(float *y, const float *x, int n, float max) {
    double sum = 0;
    const __m256 mx = _mm256_set1_ps(max);
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 v = vexpf8(_mm256_sub_ps(_mm256_loadu_ps(x + i), mx));
        _mm256_storeu_ps(y + i, v);
        sum += (double)etok_hsum_ps(v);
    }
    if (i < n) sum += etok_softmax_exp_ref(y + i, x + i, n - i, max); /* the zero-padded last block */
    return sum;
}

TGT void etok_silu_mul_avx2(float *gate, const float *up, int n) {
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 x = _mm256_loadu_ps(gate + i);
        const __m256 ex = vexpf8(_mm256_sub_ps(_mm256_setzero_ps(), x));
        const __m256 s = _mm256_div_ps(x, _mm256_add_ps(_mm256_set1_ps(1.0f), ex));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(s, _mm256_loadu_ps(up + i)));
    }
    for (; i < n; i++) gate[i] = gate[i] / (1.0f + expf(-gate[i])) * up[i];
}

TGT void etok_attn_scores_1tok_avx2(const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                      float *out) {
    const int np = hd & ~31;
    for (int s = 0; s < n; s++) {
        const uint8_t *k = k0 + (size_t)s * stride;
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        for (int i = 0; i < np; i += 32) {
            a0 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 2 * i))), _mm256_loadu_ps(q + i), a0);
            a1 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 2 * i + 16))),
                                 _mm256_loadu_ps(q + i + 8), a1);
            a2 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 2 * i + 32))),
                                 _mm256_loadu_ps(q + i + 16), a2);
            a3 = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(k + 2 * i + 48))),
                                 _mm256_loadu_ps(q + i + 24), a3);
        }
        const __m256 z = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
        const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(z), _mm256_extractf128_ps(z, 1));
        const __m128 t1 = _mm_hadd_ps(t0, t0);
        double sum = _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
        for (int c = np; c < hd; c++) sum += (double)(h2f(k + 2 * c) * q[c]);
        out[s] = (float)sum * scale;
    }
}

TGT void etok_attn_accum_1tok_avx2(const float *w, int n_runs, const uint8_t *const *v0, const int *first_pos,
                                   const int *n, size_t stride, int hd, float *out) {
    __m256 acc[32][64];
    const int nv = hd / 8;
    for (int k = 0; k < 32; k++)
        for (int i = 0; i < nv; i++) acc[k][i] = _mm256_setzero_ps();
    for (int r = 0; r < n_runs; r++)
        for (int s = 0; s < n[r]; s++, w++) {
            const uint8_t *v = v0[r] + (size_t)s * stride;
            __m256 *a = acc[(first_pos[r] + s) % 32];
            const __m256 ws = _mm256_set1_ps(*w);
            for (int i = 0; i < nv; i++)
                a[i] = _mm256_fmadd_ps(_mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(v + 16 * i))), ws, a[i]);
        }
    /* per dimension (8 at a time): z[l] = (a[l] + a[16+l]) + (a[8+l] + a[24+l]), then
     * ((z0+z4) + (z1+z5)) + ((z2+z6) + (z3+z7)) */
    for (int i = 0; i < nv; i++) {
        __m256 z[8];
        for (int l = 0; l < 8; l++)
            z[l] = _mm256_add_ps(_mm256_add_ps(acc[l][i], acc[16 + l][i]), _mm256_add_ps(acc[8 + l][i], acc[24 + l][i]));
        const __m256 t0 = _mm256_add_ps(z[0], z[4]), t1 = _mm256_add_ps(z[1], z[5]), t2 = _mm256_add_ps(z[2], z[6]),
                     t3 = _mm256_add_ps(z[3], z[7]);
        _mm256_storeu_ps(out + 8 * i, _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3)));
    }
}

/* Eight positions' score reductions at once: z[p] is position p's (a0 + a2) + (a1 + a3);
 * lane p of the result is ((t0 + t1) + (t2 + t3)) with t_l = z[p][l] + z[p][l + 4], the same
 * additions as the per-position reduction above (halves added, then two horizontal adds). */
static inline TGT __m256 hsum8_1tok(const __m256 *z) {
    const __m256 u0 = _mm256_add_ps(_mm256_permute2f128_ps(z[0], z[4], 0x20), _mm256_permute2f128_ps(z[0], z[4], 0x31));
    const __m256 u1 = _mm256_add_ps(_mm256_permute2f128_ps(z[1], z[5], 0x20), _mm256_permute2f128_ps(z[1], z[5], 0x31));
    const __m256 u2 = _mm256_add_ps(_mm256_permute2f128_ps(z[2], z[6], 0x20), _mm256_permute2f128_ps(z[2], z[6], 0x31));
    const __m256 u3 = _mm256_add_ps(_mm256_permute2f128_ps(z[3], z[7], 0x20), _mm256_permute2f128_ps(z[3], z[7], 0x31));
    return _mm256_hadd_ps(_mm256_hadd_ps(u0, u1), _mm256_hadd_ps(u2, u3));
}

#define CVT(p) _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p)))

/* Grouped K.q: per position the row's 32-value blocks are converted once; every head keeps
 * its own four accumulators, fed in block order as etok_attn_scores_1tok_avx2 does. hd == 64
 * (two blocks, the row in eight registers) has its own path. K itself gets no software
 * prefetch: the hardware prefetcher follows a KV head's contiguous rows (a non-temporal one 8
 * positions ahead measured slower on the Xeon and no faster on a later EPYC guest; an ordinary
 * one 16 ahead gained no more than the Xeon's noise: docs/ENGINE.md, "Decode at depth"). */
TGT void etok_attn_scores_1tok_multi_avx2(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                          float scale, float *out, size_t out_stride, const uint8_t *v_pf) {
    const int np = hd & ~31;
    const __m256 zero = _mm256_setzero_ps(), vs = _mm256_set1_ps(scale);
    __m256 zb[ETOK_VM_MAX_GROUP][8];
    for (int s0 = 0; s0 < n; s0 += 8) {
        const int m = n - s0 < 8 ? n - s0 : 8;
        for (int j = 0; j < m; j++) {
            const uint8_t *k = k0 + (size_t)(s0 + j) * stride;
            if (v_pf) /* the same row of V, for the weighted sum that reads V slot by slot */
                for (int c = 0; c < 2 * hd; c += 64) _mm_prefetch((const char *)(v_pf + (size_t)(s0 + j) * stride + c), _MM_HINT_T1);
            if (np == 64) {
                const __m256 x0 = CVT(k), x1 = CVT(k + 16), x2 = CVT(k + 32), x3 = CVT(k + 48), x4 = CVT(k + 64),
                             x5 = CVT(k + 80), x6 = CVT(k + 96), x7 = CVT(k + 112);
                for (int h = 0; h < g; h++) {
                    const float *qh = q + (size_t)h * (size_t)hd;
                    __m256 a0 = _mm256_fmadd_ps(x0, _mm256_loadu_ps(qh), zero);
                    __m256 a1 = _mm256_fmadd_ps(x1, _mm256_loadu_ps(qh + 8), zero);
                    __m256 a2 = _mm256_fmadd_ps(x2, _mm256_loadu_ps(qh + 16), zero);
                    __m256 a3 = _mm256_fmadd_ps(x3, _mm256_loadu_ps(qh + 24), zero);
                    a0 = _mm256_fmadd_ps(x4, _mm256_loadu_ps(qh + 32), a0);
                    a1 = _mm256_fmadd_ps(x5, _mm256_loadu_ps(qh + 40), a1);
                    a2 = _mm256_fmadd_ps(x6, _mm256_loadu_ps(qh + 48), a2);
                    a3 = _mm256_fmadd_ps(x7, _mm256_loadu_ps(qh + 56), a3);
                    zb[h][j] = _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3));
                }
            } else {
                __m256 acc[ETOK_VM_MAX_GROUP][4];
                for (int h = 0; h < g; h++) acc[h][0] = acc[h][1] = acc[h][2] = acc[h][3] = zero;
                for (int i = 0; i < np; i += 32) {
                    const __m256 x0 = CVT(k + 2 * i), x1 = CVT(k + 2 * i + 16), x2 = CVT(k + 2 * i + 32),
                                 x3 = CVT(k + 2 * i + 48);
                    for (int h = 0; h < g; h++) {
                        const float *qh = q + (size_t)h * (size_t)hd + i;
                        acc[h][0] = _mm256_fmadd_ps(x0, _mm256_loadu_ps(qh), acc[h][0]);
                        acc[h][1] = _mm256_fmadd_ps(x1, _mm256_loadu_ps(qh + 8), acc[h][1]);
                        acc[h][2] = _mm256_fmadd_ps(x2, _mm256_loadu_ps(qh + 16), acc[h][2]);
                        acc[h][3] = _mm256_fmadd_ps(x3, _mm256_loadu_ps(qh + 24), acc[h][3]);
                    }
                }
                for (int h = 0; h < g; h++)
                    zb[h][j] = _mm256_add_ps(_mm256_add_ps(acc[h][0], acc[h][2]), _mm256_add_ps(acc[h][1], acc[h][3]));
            }
        }
        for (int j = m; j < 8; j++)
            for (int h = 0; h < g; h++) zb[h][j] = zero;
        for (int h = 0; h < g; h++) {
            float *o = out + (size_t)h * out_stride + s0;
            const __m256 r = hsum8_1tok(zb[h]);
            if (np == hd && m == 8) {
                _mm256_storeu_ps(o, _mm256_mul_ps(r, vs));
                continue;
            }
            float t[8];
            _mm256_storeu_ps(t, r);
            const float *qh = q + (size_t)h * (size_t)hd;
            for (int j = 0; j < m; j++) {
                const uint8_t *k = k0 + (size_t)(s0 + j) * stride;
                double sum = t[j];
                for (int c = np; c < hd; c++) sum += (double)(h2f(k + 2 * c) * qh[c]);
                o[j] = (float)sum * scale;
            }
        }
    }
}

/* One position slot's sum for HB heads over NV (1, 2 or 4) vectors of 8 values starting at
 * value 8 * d: the slot's positions in the reference's order (run by run, then position), the
 * HB x NV accumulators in registers (at most 12: with NV = 4, HB <= 3 leaves the 16 ymm
 * registers for the weights and one converted vector); stored to sl[h][kslot][vi..]. */
static inline __attribute__((always_inline)) TGT void accum_slot(int HB, int NV, const float *w, size_t w_stride,
                                                                 int n_runs, const uint8_t *const *v0,
                                                                 const int *first_pos, const int *n, const int *woff,
                                                                 size_t stride, int kslot, int d, int vi,
                                                                 __m256 (*sl)[32][4]) {
    __m256 a[4][4];
    for (int h = 0; h < HB; h++)
        for (int j = 0; j < NV; j++) a[h][j] = _mm256_setzero_ps();
    for (int r = 0; r < n_runs; r++) {
        int s = (kslot - first_pos[r]) % 32;
        if (s < 0) s += 32;
        for (; s < n[r]; s += 32) {
            const uint8_t *v = v0[r] + (size_t)s * stride + 16 * (size_t)d;
            const float *ws = w + woff[r] + s;
            __m256 wb[4];
            for (int h = 0; h < HB; h++) wb[h] = _mm256_broadcast_ss(ws + (size_t)h * w_stride);
            for (int j = 0; j < NV; j++) {
                const __m256 x = CVT(v + 16 * j);
                for (int h = 0; h < HB; h++) a[h][j] = _mm256_fmadd_ps(x, wb[h], a[h][j]);
            }
        }
    }
    for (int h = 0; h < HB; h++)
        for (int j = 0; j < NV; j++) sl[h][kslot][vi + j] = a[h][j];
}

/* Grouped w.V: instead of position by position into 32 slot accumulators in memory (the
 * per-head kernel), slot by slot: each slot's accumulator is summed over its positions in
 * the same order, in registers, for 32 values (one cache line of each V row) of up to 3 heads
 * at a time, or 16 values of up to 4; the V rows of a 32-value block are read once for all
 * heads. Then the slots are reduced as before. */
TGT void etok_attn_accum_1tok_multi_avx2(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                         const int *first_pos, const int *n, size_t stride, int hd, float *out) {
    __m256 sl[ETOK_VM_MAX_GROUP][32][4];
    int woff[8];
    for (int r = 0, o = 0; r < n_runs; r++) {
        woff[r] = o;
        o += n[r];
    }
    const int nv = hd / 8;
    for (int d = 0; d < nv; d += 4) {
        const int nvd = nv - d < 4 ? nv - d : 4;
        for (int k = 0; k < 32; k++) {
#define ACC(HB, NV, VI) accum_slot(HB, NV, wh, w_stride, n_runs, v0, first_pos, n, woff, stride, k, d + (VI), VI, slh)
            if (nvd == 4) /* a whole 64-byte line of each row, 3 heads at a time */
                for (int h0 = 0; h0 < g; h0 += 3) {
                    const int hb = g - h0 < 3 ? g - h0 : 3;
                    const float *wh = w + (size_t)h0 * w_stride;
                    __m256(*slh)[32][4] = sl + h0;
                    if (hb == 3) ACC(3, 4, 0);
                    else if (hb == 2) ACC(2, 4, 0);
                    else ACC(1, 4, 0);
                }
            else
                for (int vi = 0; vi < nvd; vi += 2) {
                    const int two = nvd - vi >= 2;
                    for (int h0 = 0; h0 < g; h0 += 4) {
                        const int hb = g - h0 < 4 ? g - h0 : 4;
                        const float *wh = w + (size_t)h0 * w_stride;
                        __m256(*slh)[32][4] = sl + h0;
                        if (two) {
                            if (hb == 4) ACC(4, 2, vi);
                            else if (hb == 3) ACC(3, 2, vi);
                            else if (hb == 2) ACC(2, 2, vi);
                            else ACC(1, 2, vi);
                        } else {
                            if (hb == 4) ACC(4, 1, vi);
                            else if (hb == 3) ACC(3, 1, vi);
                            else if (hb == 2) ACC(2, 1, vi);
                            else ACC(1, 1, vi);
                        }
                    }
                }
#undef ACC
        }
        /* per value vector: z[l] = (a[l] + a[16+l]) + (a[8+l] + a[24+l]), then
         * ((z0+z4) + (z1+z5)) + ((z2+z6) + (z3+z7)), as etok_attn_accum_1tok_avx2 */
        for (int h = 0; h < g; h++)
            for (int vi = 0; vi < nvd; vi++) {
                __m256 z[8];
                for (int l = 0; l < 8; l++)
                    z[l] = _mm256_add_ps(_mm256_add_ps(sl[h][l][vi], sl[h][16 + l][vi]),
                                         _mm256_add_ps(sl[h][8 + l][vi], sl[h][24 + l][vi]));
                const __m256 t0 = _mm256_add_ps(z[0], z[4]), t1 = _mm256_add_ps(z[1], z[5]),
                             t2 = _mm256_add_ps(z[2], z[6]), t3 = _mm256_add_ps(z[3], z[7]);
                _mm256_storeu_ps(out + (size_t)h * (size_t)hd + 8 * (size_t)(d + vi),
                                 _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3)));
            }
    }
}
/* Q8_0 V sum: one 32-value block of the row at a time for G (<= 3, a constant where
 * inlined) heads, every position of every run in order. Per position each of the block's
 * four 8-value vectors is converted once, x = d * q (exact in float), and taken by every
 * head: acc = fma(x, w, acc), the reference's operations element for element. (Folding d into
 * the weight instead, wd = w * d and fma(q, wd, acc), saves a register and one multiply per
 * vector, 0.36 against 0.45 ms per step in bench_attn_kernels -q 2, but rounds w * d: it
 * agreed less well with the peer's q8_0 run, docs/ENGINE.md.) */
static inline __attribute__((always_inline)) TGT void accum_q8_0_heads(int G, const float *w, size_t w_stride,
                                                                      int n_runs, const uint8_t *const *v0,
                                                                      const int *n, size_t stride, int hd,
                                                                      float *out) {
    for (int c = 0; c < hd; c += ETOK_QK) {
        __m256 acc[3][4];
        for (int h = 0; h < G; h++)
            for (int v = 0; v < 4; v++) acc[h][v] = _mm256_setzero_ps();
        const size_t boff = (size_t)(c / ETOK_QK) * sizeof(etok_block_q8_0);
        int k = 0;
        for (int r = 0; r < n_runs; r++) {
            const uint8_t *p = v0[r] + boff;
            for (int j = 0; j < n[r]; j++, k++, p += stride) {
                const etok_block_q8_0 *b = (const etok_block_q8_0 *)p;
                const __m256 d = _mm256_cvtph_ps(_mm_set1_epi16((short)b->d));
                for (int v = 0; v < 4; v++) {
                    const __m256 x = _mm256_mul_ps(
                        d, _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(b->qs + 8 * v)))));
                    for (int h = 0; h < G; h++)
                        acc[h][v] = _mm256_fmadd_ps(x, _mm256_broadcast_ss(w + (size_t)h * w_stride + (size_t)k), acc[h][v]);
                }
            }
        }
        for (int h = 0; h < G; h++)
            for (int v = 0; v < 4; v++) _mm256_storeu_ps(out + (size_t)h * (size_t)hd + (size_t)c + 8 * v, acc[h][v]);
    }
}

void TGT etok_attn_accum_q8_0_avx2(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                   const int *n, size_t stride, int hd, float *out) {
    for (int h0 = 0; h0 < g; h0 += 3) {
        const float *wh = w + (size_t)h0 * w_stride;
        float *oh = out + (size_t)h0 * (size_t)hd;
        switch (g - h0 < 3 ? g - h0 : 3) {
        case 1: accum_q8_0_heads(1, wh, w_stride, n_runs, v0, n, stride, hd, oh); break;
        case 2: accum_q8_0_heads(2, wh, w_stride, n_runs, v0, n, stride, hd, oh); break;
        default: accum_q8_0_heads(3, wh, w_stride, n_runs, v0, n, stride, hd, oh); break;
        }
    }
}

/* Eight positions' Q8_0 score reductions at once: lane p of the result is position p's
 * etok_hsum_ps(z[p]) = ((z0 + z4) + (z2 + z6)) + ((z1 + z5) + (z3 + z7)). The halves are
 * added as there (t_l = z_l + z_(l+4), positions p and p + 4 in one register), the lanes put
 * in the order t0 t2 t1 t3 so that the two horizontal adds pair t0 with t2 and t1 with t3. */
static inline TGT __m256 hsum8_q8(const __m256 *z) {
    __m256 u[4];
    for (int p = 0; p < 4; p++)
        u[p] = _mm256_permute_ps(_mm256_add_ps(_mm256_permute2f128_ps(z[p], z[p + 4], 0x20),
                                               _mm256_permute2f128_ps(z[p], z[p + 4], 0x31)),
                                 _MM_SHUFFLE(3, 1, 2, 0));
    return _mm256_hadd_ps(_mm256_hadd_ps(u[0], u[1]), _mm256_hadd_ps(u[2], u[3]));
}

/* Positions s0 .. s0 + m - 1 (m <= 8) of the grouped Q8_0 K.q for G heads of NB blocks
 * (constants where inlined, so the accumulators stay in registers): zb[h][j] gets position
 * s0 + j's 8-lane FMA chain for head h, dot_q8_0's (quant_avx2.c): per block the int32 sums
 * of the sign-trick products, then acc = fma(d_k * d_q, (float)sums, acc). d_k * d_q is one
 * float multiply either way (here 8 equal lanes of it). */
static inline __attribute__((always_inline)) TGT void scores_q8_rows(int G, int NB, const etok_block_q8a *q,
                                                                    const __m256 *yd, const uint8_t *k0,
                                                                    size_t stride, int s0, int m, int n,
                                                                    const uint8_t *v_pf, __m256 (*zb)[8]) {
    const __m256i ones = _mm256_set1_epi16(1);
    for (int j = 0; j < m; j++) {
        const uint8_t *row = k0 + (size_t)(s0 + j) * stride;
        if (s0 + j + 16 < n) /* the row 16 positions on (hardware prefetch misses strided rows under load) */
            for (int c = 0; c < NB * 34; c += 64) _mm_prefetch((const char *)row + 16 * stride + c, _MM_HINT_T0);
        if (v_pf) /* the same position's V row, for the sum over V */
            for (int c = 0; c < NB * 34; c += 64) _mm_prefetch((const char *)v_pf + (size_t)(s0 + j) * stride + c, _MM_HINT_T1);
        const etok_block_q8_0 *k = (const etok_block_q8_0 *)row;
        __m256 acc[ETOK_VM_MAX_GROUP];
        for (int h = 0; h < G; h++) acc[h] = _mm256_setzero_ps();
        for (int b = 0; b < NB; b++) {
            const __m256i w = _mm256_loadu_si256((const __m256i *)k[b].qs), aw = _mm256_sign_epi8(w, w);
            const __m256 dk = _mm256_cvtph_ps(_mm_set1_epi16((short)k[b].d));
            for (int h = 0; h < G; h++) {
                const etok_block_q8a *y = q + (size_t)h * (size_t)NB + b;
                const __m256i p = _mm256_madd_epi16(
                    _mm256_maddubs_epi16(aw, _mm256_sign_epi8(_mm256_loadu_si256((const __m256i *)y->qs), w)), ones);
                acc[h] = _mm256_fmadd_ps(_mm256_mul_ps(dk, yd[h * NB + b]), _mm256_cvtepi32_ps(p), acc[h]);
            }
        }
        for (int h = 0; h < G; h++) zb[h][j] = acc[h];
    }
}

/* Grouped Q8_0 K.q: per position each K block is loaded (and its sign-trick |w| made) once
 * for every head; each head's chain is dot_q8_0's, eight positions reduced together. */
TGT void etok_attn_scores_q8_0_avx2(const etok_block_q8a *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                    float scale, float *out, size_t out_stride, const uint8_t *v_pf) {
    const int nb = hd / ETOK_QK;
    const __m256 zero = _mm256_setzero_ps(), vs = _mm256_set1_ps(scale);
    __m256 zb[ETOK_VM_MAX_GROUP][8], yd[ETOK_VM_MAX_GROUP * 512 / ETOK_QK];
    for (int i = 0; i < g * nb; i++) yd[i] = _mm256_set1_ps(q[i].d);
    for (int s0 = 0; s0 < n; s0 += 8) {
        const int m = n - s0 < 8 ? n - s0 : 8;
#define ROWS(G, NB) scores_q8_rows(G, NB, q, yd, k0, stride, s0, m, n, v_pf, zb)
        if (nb == 2) {
            switch (g) {
            case 1: ROWS(1, 2); break;
            case 2: ROWS(2, 2); break;
            case 3: ROWS(3, 2); break;
            case 4: ROWS(4, 2); break;
            default: ROWS(g, 2); break;
            }
        } else {
            switch (g) {
            case 1: ROWS(1, nb); break;
            case 2: ROWS(2, nb); break;
            case 3: ROWS(3, nb); break;
            case 4: ROWS(4, nb); break;
            default: ROWS(g, nb); break;
            }
        }
#undef ROWS
        for (int j = m; j < 8; j++)
            for (int h = 0; h < g; h++) zb[h][j] = zero;
        for (int h = 0; h < g; h++) {
            float *o = out + (size_t)h * out_stride + (size_t)s0;
            const __m256 r = _mm256_mul_ps(hsum8_q8(zb[h]), vs);
            if (m == 8) {
                _mm256_storeu_ps(o, r);
            } else {
                float t[8];
                _mm256_storeu_ps(t, r);
                memcpy(o, t, (size_t)m * sizeof(float));
            }
        }
    }
}

#undef CVT
#endif

void etok_attn_scores_1tok(const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                           float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        etok_attn_scores_1tok_avx2(q, k0, stride, n, hd, scale, out);
        return;
    }
#endif
    etok_attn_scores_1tok_ref(q, k0, stride, n, hd, scale, out);
}

void etok_attn_accum_1tok(const float *w, int n_runs, const uint8_t *const *v0, const int *first_pos, const int *n,
                          size_t stride, int hd, float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && hd % 8 == 0) {
        etok_attn_accum_1tok_avx2(w, n_runs, v0, first_pos, n, stride, hd, out);
        return;
    }
#endif
    etok_attn_accum_1tok_ref(w, n_runs, v0, first_pos, n, stride, hd, out);
}

void etok_attn_scores_1tok_multi(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                 float *out, size_t out_stride, const uint8_t *v_pf) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && g <= ETOK_VM_MAX_GROUP) {
        etok_attn_scores_1tok_multi_avx2(q, g, k0, stride, n, hd, scale, out, out_stride, v_pf);
        return;
    }
#endif
    etok_attn_scores_1tok_multi_ref(q, g, k0, stride, n, hd, scale, out, out_stride, v_pf);
}

void etok_attn_accum_1tok_multi(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                const int *first_pos, const int *n, size_t stride, int hd, float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && hd % 8 == 0 && g <= ETOK_VM_MAX_GROUP && n_runs <= 8) {
        etok_attn_accum_1tok_multi_avx2(w, w_stride, g, n_runs, v0, first_pos, n, stride, hd, out);
        return;
    }
#endif
    etok_attn_accum_1tok_multi_ref(w, w_stride, g, n_runs, v0, first_pos, n, stride, hd, out);
}

void etok_attn_accum_q8_0(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0, const int *n,
                          size_t stride, int hd, float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && hd % ETOK_QK == 0) {
        etok_attn_accum_q8_0_avx2(w, w_stride, g, n_runs, v0, n, stride, hd, out);
        return;
    }
#endif
    etok_attn_accum_q8_0_ref(w, w_stride, g, n_runs, v0, n, stride, hd, out);
}

void etok_attn_scores_q8_0(const etok_block_q8a *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                           float scale, float *out, size_t out_stride, const uint8_t *v_pf) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && g <= ETOK_VM_MAX_GROUP && hd % ETOK_QK == 0) {
        etok_attn_scores_q8_0_avx2(q, g, k0, stride, n, hd, scale, out, out_stride, v_pf);
        return;
    }
#endif
    /* kernel level scalar: one dispatched dot per head and position, etok_vec_dot's order */
    (void)v_pf;
    for (int j = 0; j < n; j++) {
        float *o = out + j;
        etok_vec_dot_multi(ETOK_T_Q8_0, k0 + (size_t)j * stride, q, NULL, hd, g, o, out_stride);
        for (int h = 0; h < g; h++) o[(size_t)h * out_stride] *= scale;
    }
}

float etok_max(const float *x, int n) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) return etok_max_avx2(x, n);
#endif
    return etok_max_ref(x, n);
}

double etok_softmax_exp(float *y, const float *x, int n, float max) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) return etok_softmax_exp_avx2(y, x, n, max);
#endif
    return etok_softmax_exp_ref(y, x, n, max);
}

void etok_silu_mul(float *gate, const float *up, int n) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        etok_silu_mul_avx2(gate, up, n);
        return;
    }
#endif
    etok_silu_mul_ref(gate, up, n);
}
