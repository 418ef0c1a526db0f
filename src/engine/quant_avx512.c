/* quant_avx512.c — AVX-512 (F, BW, VL, VNNI) versions of the 32-value q8a dot kernels:
 * Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and IQ4_NL, single row, four rows (decode) and four or eight
 * activation vectors per row (prefill).
 *
 * Rule: every result is bit-identical to the AVX2 kernel of quant_avx2.c that the same call
 * takes at kernel level avx2 (tests/unit/test_isa.c, tests/isa/isa_kernels.c), so logits do
 * not depend on the CPU. How:
 * - integers: VPDPBUSD sums the four u8 x s8 products of bytes 4k..4k+3 into int32 lane k,
 *   the lane maddubs + madd(ones) fill; no int16 saturation occurs on the AVX2 side (the
 *   unsigned operand is a nibble, a 5-bit value, or |w| <= 128 from the sign trick against an
 *   int8, so a pair is within [-32768, 32512]), hence the int32 lanes are equal. The sign trick
 *   is done with abs and a masked negation (AVX-512 has no vpsignb): the same bytes, as the
 *   product with |w| = 0 is 0 whatever the other byte holds;
 * - floats: the int32 lanes of two blocks (one zmm) are converted as AVX2 converts each block,
 *   then each block's FMA into the 8-lane accumulator is done in the AVX2 order. Where the
 *   AVX2 kernel keeps independent accumulators (four rows, or four vectors), two of them share
 *   a zmm (lanes 0-7 and 8-15) and one 16-lane FMA does both: per lane the same operation.
 *   The scalar "+ m * s" / "- 8 d s" terms and the final reductions are written as in AVX2.
 * Compiled per function for AVX-512 (ETOK_AVX512_TARGET); quant.c calls these only at kernel
 * level avx512 (etok_isa_active). */
#include "engine/quant_simd.h"

int etok_avx512_emulated(void) {
#ifdef ETOK_AVX512_EMULATED
    return 1;
#else
    return 0;
#endif
}

int etok_avx512_handles(uint32_t t) {
    return t == ETOK_T_Q4_0 || t == ETOK_T_Q4_1 || t == ETOK_T_Q5_0 || t == ETOK_T_Q5_1 || t == ETOK_T_Q8_0 ||
           t == ETOK_T_IQ4_NL;
}

#if ETOK_HAVE_X86_SIMD

#include <string.h>

#define TGT ETOK_AVX512_TARGET
/* Specialised per type at each call (T is a constant there): the switches fold away. */
#define KI static inline __attribute__((always_inline)) TGT

KI float h2f(etok_f16 h) { return _cvtsh_ss(h); }

/* ---- block geometry (ggml layouts, quant.h) ---- */

KI size_t bsz(const uint32_t T) {
    switch (T) {
    case ETOK_T_Q4_0: return sizeof(etok_block_q4_0);
    case ETOK_T_Q4_1: return sizeof(etok_block_q4_1);
    case ETOK_T_Q5_0: return sizeof(etok_block_q5_0);
    case ETOK_T_Q5_1: return sizeof(etok_block_q5_1);
    case ETOK_T_Q8_0: return sizeof(etok_block_q8_0);
    default: return sizeof(etok_block_iq4_nl);
    }
}

KI const uint8_t *qs_of(const uint32_t T, const uint8_t *b) {
    switch (T) {
    case ETOK_T_Q4_1: return b + 4;
    case ETOK_T_Q5_0: return b + 6;
    case ETOK_T_Q5_1: return b + 8;
    default: return b + 2; /* Q4_0, Q8_0, IQ4_NL */
    }
}

KI etok_f16 f16_at(const uint8_t *p) {
    etok_f16 h;
    memcpy(&h, p, 2);
    return h;
}

KI float d_of(const uint8_t *b) { return h2f(f16_at(b)); }
KI float m_of(const uint8_t *b) { return h2f(f16_at(b + 2)); } /* Q4_1, Q5_1 */

KI uint32_t qh_of(const uint32_t T, const uint8_t *b) {
    uint32_t h;
    memcpy(&h, b + (T == ETOK_T_Q5_0 ? 2 : 4), 4);
    return h;
}

KI int is_signed(const uint32_t T) { return T == ETOK_T_Q8_0 || T == ETOK_T_Q5_0 || T == ETOK_T_IQ4_NL; }

/* ---- weights of one block (32 bytes) or two blocks (64 bytes), values in order ---- */

/* low nibbles (values 0..15) then high nibbles (16..31), as quant_avx2.c's unpack_nibbles */
KI __m256i nib1(const uint8_t *qs) {
    const __m128i b = _mm_loadu_si128((const __m128i *)qs);
    const __m256i x = _mm256_inserti128_si256(_mm256_castsi128_si256(b), _mm_srli_epi16(b, 4), 1);
    return _mm256_and_si256(x, _mm256_set1_epi8(0x0F));
}

/* [block a values 0..31 | block b values 0..31] */
KI __m512i nib2(const uint8_t *qa, const uint8_t *qb) {
    const __m256i ab = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)qa)),
                                               _mm_loadu_si128((const __m128i *)qb), 1);
    __m512i x = _mm512_inserti64x4(_mm512_castsi256_si512(ab), _mm256_srli_epi16(ab, 4), 1); /* a b a>>4 b>>4 */
    x = _mm512_shuffle_i64x2(x, x, _MM_SHUFFLE(3, 1, 2, 0));                                   /* a a>>4 b b>>4 */
    return _mm512_and_si512(x, _mm512_set1_epi8(0x0F));
}

/* The weight bytes for the integer dot: unsigned values (Q4_0, Q4_1: 0..15; Q5_1: 0..31) or
 * signed ones (Q8_0 as stored; Q5_0: q - 16; IQ4_NL: the table level), as quant_avx2.c forms
 * them. The 5th bit of value j is bit j of qh: a byte mask, no shuffles. */
KI __m256i w1(const uint32_t T, const uint8_t *b) {
    const uint8_t *qs = qs_of(T, b);
    switch (T) {
    case ETOK_T_Q8_0: return _mm256_loadu_si256((const __m256i *)qs);
    case ETOK_T_Q4_0: case ETOK_T_Q4_1: return nib1(qs);
    case ETOK_T_Q5_0: case ETOK_T_Q5_1: {
        const __m256i q = _mm256_or_si256(nib1(qs), _mm256_maskz_mov_epi8((__mmask32)qh_of(T, b), _mm256_set1_epi8(0x10)));
        return T == ETOK_T_Q5_0 ? _mm256_sub_epi8(q, _mm256_set1_epi8(16)) : q;
    }
    default: {
        const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
        return _mm256_shuffle_epi8(tbl, nib1(qs));
    }
    }
}

KI __m512i w2(const uint32_t T, const uint8_t *ba, const uint8_t *bb) {
    const uint8_t *qa = qs_of(T, ba), *qb = qs_of(T, bb);
    switch (T) {
    case ETOK_T_Q8_0:
        return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)qa)),
                                  _mm256_loadu_si256((const __m256i *)qb), 1);
    case ETOK_T_Q4_0: case ETOK_T_Q4_1: return nib2(qa, qb);
    case ETOK_T_Q5_0: case ETOK_T_Q5_1: {
        const __mmask64 hm = (__mmask64)qh_of(T, ba) | (__mmask64)qh_of(T, bb) << 32;
        const __m512i q = _mm512_or_si512(nib2(qa, qb), _mm512_maskz_mov_epi8(hm, _mm512_set1_epi8(0x10)));
        return T == ETOK_T_Q5_0 ? _mm512_sub_epi8(q, _mm512_set1_epi8(16)) : q;
    }
    default: {
        const __m512i tbl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
        return _mm512_shuffle_epi8(tbl, nib2(qa, qb));
    }
    }
}

/* ---- integer dots: int32 lane k = sum of the products of bytes 4k..4k+3 ---- */

/* unsigned weights: u8 x s8 directly; signed: |w| x (y negated where w < 0), quant_avx2.c's
 * sign trick (a byte -128 negates to itself there and here) */
KI __m256i idot1(const uint32_t T, __m256i w, __m256i y) {
    if (!is_signed(T)) return _mm256_dpbusd_epi32(_mm256_setzero_si256(), w, y);
    const __m256i s = _mm256_mask_sub_epi8(y, _mm256_movepi8_mask(w), _mm256_setzero_si256(), y);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_abs_epi8(w), s);
}

KI __m512i idot2(const uint32_t T, __m512i w, __m512i y) {
    if (!is_signed(T)) return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, y);
    const __m512i s = _mm512_mask_sub_epi8(y, _mm512_movepi8_mask(w), _mm512_setzero_si512(), y);
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), _mm512_abs_epi8(w), s);
}

KI __m256i ld32(const int8_t *p) { return _mm256_loadu_si256((const __m256i *)p); }
KI __m512i ld32x2(const int8_t *a, const int8_t *b) { return _mm512_inserti64x4(_mm512_castsi256_si512(ld32(a)), ld32(b), 1); }
KI __m256 lo8(__m512 v) { return _mm512_castps512_ps256(v); }
KI __m256 hi8(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

/* ---- the float operations of one block, in quant_avx2.c's order ---- */

/* acc (8 lanes) += scale * p; the scalar term of Q4_1/Q5_1 (+ m * s) or Q4_0 (8 d s). */
KI void step1(const uint32_t T, const uint8_t *b, const etok_block_q8a *a, __m256 p, __m256 *acc, float *sc) {
    const float d = d_of(b);
    if (T == ETOK_T_Q4_1 || T == ETOK_T_Q5_1) *sc += m_of(b) * a->s;
    *acc = _mm256_fmadd_ps(_mm256_set1_ps(d * a->d), p, *acc);
    if (T == ETOK_T_Q4_0) *sc += d * 8.0f * a->s;
}

/* Two independent accumulators in one zmm (lanes 0-7: block ba with activations aa into the
 * sum sa; lanes 8-15: bb, ab, sb): per lane the operation step1 does. */
KI void step2(const uint32_t T, const uint8_t *ba, const uint8_t *bb, const etok_block_q8a *aa, const etok_block_q8a *ab,
              __m512 p, __m512 *acc, float *sa, float *sb) {
    const float da = d_of(ba), db = d_of(bb);
    if (T == ETOK_T_Q4_1 || T == ETOK_T_Q5_1) {
        *sa += m_of(ba) * aa->s;
        *sb += m_of(bb) * ab->s;
    }
    const __m512 scale = _mm512_mask_blend_ps((__mmask16)0xFF00, _mm512_set1_ps(da * aa->d), _mm512_set1_ps(db * ab->d));
    *acc = _mm512_fmadd_ps(scale, p, *acc);
    if (T == ETOK_T_Q4_0) {
        *sa += da * 8.0f * aa->s;
        *sb += db * 8.0f * ab->s;
    }
}

KI float fin(const uint32_t T, __m256 acc, float sc) {
    if (T == ETOK_T_Q4_1 || T == ETOK_T_Q5_1) return etok_hsum_ps(acc) + sc;
    if (T == ETOK_T_Q4_0) return etok_hsum_ps(acc) - sc;
    return etok_hsum_ps(acc);
}

/* ---- kernels ---- */

/* One row, one vector: the AVX2 dot_<type> (one accumulator, blocks in order); two blocks'
 * integers per zmm, then their two FMAs in order. */
KI float dot1(const uint32_t T, const uint8_t *row, const etok_block_q8a *y, int64_t nb) {
    const size_t bs = bsz(T);
    __m256 acc = _mm256_setzero_ps();
    float sc = 0;
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        const uint8_t *b0 = row + (size_t)i * bs, *b1 = b0 + bs;
        const __m512 p = _mm512_cvtepi32_ps(idot2(T, w2(T, b0, b1), ld32x2(y[i].qs, y[i + 1].qs)));
        step1(T, b0, &y[i], lo8(p), &acc, &sc);
        step1(T, b1, &y[i + 1], hi8(p), &acc, &sc);
    }
    if (i < nb) {
        const uint8_t *b0 = row + (size_t)i * bs;
        step1(T, b0, &y[i], _mm256_cvtepi32_ps(idot1(T, w1(T, b0), ld32(y[i].qs))), &acc, &sc);
    }
    return fin(T, acc, sc);
}

/* IQ4_NL, one token: quant_avx2.c's dot_iq4_nl_1tok (llama.cpp's vec_dot order): even blocks
 * into one accumulator (lanes 0-7 here), odd into another (8-15), added before the reduction;
 * an odd last block added after it as d * (integer sum). */
static TGT float dot_iq4_nl_1tok(const uint8_t *row, const etok_block_q8a *y, int64_t nb) {
    const uint32_t T = ETOK_T_IQ4_NL;
    const size_t bs = bsz(T);
    __m512 acc = _mm512_setzero_ps();
    float unused0 = 0, unused1 = 0;
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const uint8_t *b0 = row + (size_t)i * bs, *b1 = b0 + bs;
        const __m512 p = _mm512_cvtepi32_ps(idot2(T, w2(T, b0, b1), ld32x2(y[i].qs, y[i + 1].qs)));
        step2(T, b0, b1, &y[i], &y[i + 1], p, &acc, &unused0, &unused1);
    }
    float sum = etok_hsum_ps(_mm256_add_ps(lo8(acc), hi8(acc)));
    if (i < nb) {
        const uint8_t *b = row + (size_t)i * bs;
        const __m256i p = idot1(T, w1(T, b), ld32(y[i].qs));
        __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(p), _mm256_extracti128_si256(p, 1));
        s4 = _mm_hadd_epi32(s4, s4);
        s4 = _mm_hadd_epi32(s4, s4);
        sum += d_of(b) * y[i].d * (float)_mm_cvtsi128_si32(s4);
    }
    return sum;
}

/* Four rows, one vector (decode): rows 0 and 1 share a zmm accumulator, rows 2 and 3 another;
 * per row the operations of dot1 / the AVX2 single-row kernel in order (the AVX2 4-row
 * kernels of Q4_1 and Q8_0 do the same per row). */
KI void dot_4rows(const uint32_t T, const uint8_t *p, size_t row_bytes, const etok_block_q8a *y, int64_t nb,
                  float out[4]) {
    const size_t bs = bsz(T);
    __m512 a01 = _mm512_setzero_ps(), a23 = _mm512_setzero_ps();
    float s[4] = {0, 0, 0, 0};
    const uint8_t *r0 = p, *r1 = p + row_bytes, *r2 = p + 2 * row_bytes, *r3 = p + 3 * row_bytes;
    for (int64_t i = 0; i < nb; i++) {
        const size_t o = (size_t)i * bs;
        const __m512i yy = _mm512_broadcast_i64x4(ld32(y[i].qs));
        const __m512 p01 = _mm512_cvtepi32_ps(idot2(T, w2(T, r0 + o, r1 + o), yy));
        const __m512 p23 = _mm512_cvtepi32_ps(idot2(T, w2(T, r2 + o, r3 + o), yy));
        step2(T, r0 + o, r1 + o, &y[i], &y[i], p01, &a01, &s[0], &s[1]);
        step2(T, r2 + o, r3 + o, &y[i], &y[i], p23, &a23, &s[2], &s[3]);
    }
    out[0] = fin(T, lo8(a01), s[0]);
    out[1] = fin(T, hi8(a01), s[1]);
    out[2] = fin(T, lo8(a23), s[2]);
    out[3] = fin(T, hi8(a23), s[3]);
}

/* One row, NV (4 or 8) vectors (prefill): each block's weights formed once; vectors v and
 * v + 1 share a zmm (their activations side by side, the weights broadcast); per vector the
 * operations of dot1 in order (the AVX2 x4 kernels do the same per vector). */
KI void dot_xn(const uint32_t T, const int NV, const uint8_t *row, const etok_block_q8a *const *y, int64_t nb, float *out) {
    const size_t bs = bsz(T);
    __m512 acc[4];
    float sc[8];
    for (int v = 0; v < NV / 2; v++) acc[v] = _mm512_setzero_ps();
    for (int v = 0; v < NV; v++) sc[v] = 0;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = row + (size_t)i * bs;
        const __m512i w = _mm512_broadcast_i64x4(w1(T, b));
        __m512i u = w;
        __mmask64 neg = 0;
        if (is_signed(T)) {
            u = _mm512_abs_epi8(w);
            neg = _mm512_movepi8_mask(w);
        }
        for (int v = 0; v < NV; v += 2) {
            __m512i yy = ld32x2(y[v][i].qs, y[v + 1][i].qs);
            if (is_signed(T)) yy = _mm512_mask_sub_epi8(yy, neg, _mm512_setzero_si512(), yy);
            const __m512 p = _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), u, yy));
            step2(T, b, b, &y[v][i], &y[v + 1][i], p, &acc[v / 2], &sc[v], &sc[v + 1]);
        }
    }
    for (int v = 0; v < NV; v += 2) {
        out[v] = fin(T, lo8(acc[v / 2]), sc[v]);
        out[v + 1] = fin(T, hi8(acc[v / 2]), sc[v + 1]);
    }
}

/* ---- entry points: one switch per call, the kernels specialised per type ---- */

#define PER_TYPE(type, CALL)                                                                                           \
    switch (type) {                                                                                                    \
    case ETOK_T_Q4_0: { const uint32_t T_ = ETOK_T_Q4_0; CALL; } break;                                               \
    case ETOK_T_Q4_1: { const uint32_t T_ = ETOK_T_Q4_1; CALL; } break;                                               \
    case ETOK_T_Q5_0: { const uint32_t T_ = ETOK_T_Q5_0; CALL; } break;                                               \
    case ETOK_T_Q5_1: { const uint32_t T_ = ETOK_T_Q5_1; CALL; } break;                                               \
    case ETOK_T_Q8_0: { const uint32_t T_ = ETOK_T_Q8_0; CALL; } break;                                               \
    case ETOK_T_IQ4_NL: { const uint32_t T_ = ETOK_T_IQ4_NL; CALL; } break;                                           \
    default: break;                                                                                                    \
    }

float TGT etok_vec_dot_avx512(uint32_t type, const void *row, const etok_block_q8a *xq, int64_t n) {
    float r = 0;
    PER_TYPE(type, r = dot1(T_, row, xq, n / ETOK_QK))
    return r;
}

void TGT etok_vec_dot_multi_avx512(uint32_t type, const void *row, const etok_block_q8a *xq, int64_t n, int nx,
                                   float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    int j = 0;
    for (; j + 4 <= nx; j += j + 8 <= nx ? 8 : 4) {
        const int nv = j + 8 <= nx ? 8 : 4;
        const etok_block_q8a *yv[8];
        float o[8];
        for (int v = 0; v < nv; v++) yv[v] = xq + (size_t)(j + v) * (size_t)nb;
        if (nv == 8) {
            PER_TYPE(type, dot_xn(T_, 8, row, yv, nb, o))
        } else {
            PER_TYPE(type, dot_xn(T_, 4, row, yv, nb, o))
        }
        for (int v = 0; v < nv; v++) out[(size_t)(j + v) * out_stride] = o[v];
    }
    for (; j < nx; j++) out[(size_t)j * out_stride] = etok_vec_dot_avx512(type, row, xq + (size_t)j * (size_t)nb, n);
}

static TGT void rows_1tok(const uint32_t T, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                          const etok_block_q8a *xq, int64_t nb, float *out) {
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        const uint8_t *p = w + (size_t)r * row_bytes;
        /* the next group of rows, as quant_avx2.c: more misses in flight than the prefetcher keeps */
        if (r + 8 <= r1)
            for (size_t off = 0; off < 4 * row_bytes; off += 64) _mm_prefetch((const char *)(p + 4 * row_bytes + off), _MM_HINT_T0);
        PER_TYPE(T, dot_4rows(T_, p, row_bytes, xq, nb, out + r))
    }
    for (; r < r1; r++) PER_TYPE(T, out[r] = dot1(T_, w + (size_t)r * row_bytes, xq, nb))
}

void TGT etok_matmul_rows_avx512(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                 const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    if (nx == 1 && type == ETOK_T_IQ4_NL) { /* one token: llama.cpp's vec_dot order, as quant_avx2.c */
        for (int64_t r = r0; r < r1; r++) out[r] = dot_iq4_nl_1tok(w + (size_t)r * row_bytes, xq, nb);
        return;
    }
    if (nx == 1) {
        rows_1tok(type, w, row_bytes, r0, r1, xq, nb, out);
        return;
    }
    for (int64_t r = r0; r < r1; r++)
        etok_vec_dot_multi_avx512(type, w + (size_t)r * row_bytes, xq, n, nx, out + r, out_stride);
}


/* ---- the decode of the repacked copies at avx512: two row groups per zmm ----
 * A pair kernel computes two groups of gs rows (ga in the low lanes, gb in the high) against one
 * token's blocks: res[0 .. gs) for ga, res[gs .. 2 gs) for gb. */
typedef void (*pair_kernel)(const uint8_t *ga, const uint8_t *gb, const etok_block_q8a *y, int64_t nb, float *res);

/* Rows [r0, r1) of a copy in groups of gs rows (gbytes each) for nx tokens: the groups in the
 * AVX2 decode's order (etok_decode_order), two at a time; an odd last group is paired with
 * itself and its second half dropped. Only the rows of [r0, r1) are written. */
static TGT void decode_pairs(const uint8_t *packed, size_t gbytes, int gs, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                             int64_t nb, int nx, float *out, size_t out_stride, pair_kernel kern) {
    const int64_t g0 = r0 / gs, ng = (r1 + gs - 1) / gs - g0;
    for (int64_t k = 0; k < ng; k += 2) {
        const int64_t ga = g0 + etok_decode_order(k, ng);
        const int64_t g[2] = {ga, k + 1 < ng ? g0 + etok_decode_order(k + 1, ng) : ga};
        for (int j = 0; j < nx; j++) {
            float res[16], *o = out + (size_t)j * out_stride;
            kern(packed + (size_t)g[0] * gbytes, packed + (size_t)g[1] * gbytes, xq + (size_t)j * (size_t)nb, nb, res);
            for (int h = 0; h < (k + 1 < ng ? 2 : 1); h++) {
                const int64_t lo = g[h] * gs > r0 ? g[h] * gs : r0, hi = g[h] * gs + gs < r1 ? g[h] * gs + gs : r1;
                for (int64_t r = lo; r < hi; r++) o[r] = res[gs * h + (r - g[h] * gs)];
            }
        }
    }
}

/* ---- Q4_1x8 / Q5_1x8 (quant_q4_1.c's 8-row copies), one or two tokens ----
 * Two 8-row groups at once, group a in lanes 0-7 and group b in lanes 8-15 of each zmm: per
 * lane exactly quant_q4_1.c's group1 (its bits): lane L of a block's integer dot by VPDPBUSD
 * (= maddubs + madd(ones), exact: pairs <= 2 x 31 x 127), acc[L] = fma(d_w * d_a, (float)sum,
 * acc[L]), summ = summ + m_w * s_a (a product, then a sum), then group1's reduction. A group
 * without a partner is paired with itself (lanes 8-15 dropped). */
KI void group2_x8(const uint8_t *ga, const uint8_t *gb, const int Q5, const etok_block_q8a *y, int64_t nb, float *res) {
    const size_t bs = Q5 ? 192 : 160, od = Q5 ? 160 : 128;
    const __m512i m4 = _mm512_set1_epi8(0x0F), b5 = _mm512_set1_epi8(0x10), z = _mm512_setzero_si512();
    __m512 acc[8], summ = _mm512_setzero_ps();
    for (int L = 0; L < 8; L++) acc[L] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *A = ga + (size_t)i * bs, *B = gb + (size_t)i * bs;
        const int8_t *a = y[i].qs;
        for (size_t o = 0; o < bs; o += 64) { /* decode streams the copy once: group1's prefetch */
            _mm_prefetch((const char *)(A + ETOK_PF_Q41X8 + o), _MM_HINT_T0);
            _mm_prefetch((const char *)(B + ETOK_PF_Q41X8 + o), _MM_HINT_T0);
        }
        const __m256i dh = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(B + od)), _mm_loadu_si128((const __m128i *)(A + od)));
        const __m256i mh = _mm256_set_m128i(_mm_loadu_si128((const __m128i *)(B + od + 16)), _mm_loadu_si128((const __m128i *)(A + od + 16)));
        const __m512 scale = _mm512_mul_ps(_mm512_cvtph_ps(dh), _mm512_set1_ps(y[i].d));
        const __m512 mins = _mm512_mul_ps(_mm512_cvtph_ps(mh), _mm512_set1_ps(y[i].s));
        summ = _mm512_add_ps(summ, mins);
        __m512i H = z;
        if (Q5) H = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(A + 128))),
                                       _mm256_loadu_si256((const __m256i *)(B + 128)), 1);
        for (int c = 0; c < 4; c++) {
            const __m512i raw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(A + 32 * c))),
                                                   _mm256_loadu_si256((const __m256i *)(B + 32 * c)), 1);
            __m512i lo = _mm512_and_si512(raw, m4), hi = _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4);
            if (Q5) {
                lo = _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi16(H, 4 - c), b5));
                hi = _mm512_or_si512(hi, _mm512_and_si512(_mm512_srli_epi16(H, c), b5));
            }
            int32_t alo, ahi;
            memcpy(&alo, a + 4 * c, 4);
            memcpy(&ahi, a + 16 + 4 * c, 4);
            const __m512i plo = _mm512_dpbusd_epi32(z, lo, _mm512_set1_epi32(alo));
            const __m512i phi = _mm512_dpbusd_epi32(z, hi, _mm512_set1_epi32(ahi));
            acc[c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(plo), acc[c]);
            acc[4 + c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(phi), acc[4 + c]);
        }
    }
    const __m512 s0 = _mm512_add_ps(acc[4], acc[0]), s1 = _mm512_add_ps(acc[5], acc[1]);
    const __m512 s2 = _mm512_add_ps(acc[6], acc[2]), s3 = _mm512_add_ps(acc[7], acc[3]);
    const __m512 h = _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3));
    _mm512_storeu_ps(res, _mm512_add_ps(h, summ));
}

static TGT void pair_q4_1x8(const uint8_t *ga, const uint8_t *gb, const etok_block_q8a *y, int64_t nb, float *res) {
    group2_x8(ga, gb, 0, y, nb, res);
}
static TGT void pair_q5_1x8(const uint8_t *ga, const uint8_t *gb, const etok_block_q8a *y, int64_t nb, float *res) {
    group2_x8(ga, gb, 1, y, nb, res);
}


/* ---- Q4_0x8 (quant_q4_0.c's 8-row copy), one token ----
 * Two 8-row groups per zmm as above, per lane exactly quant_q4_0.c's x8_group for one vector:
 * the exact integer sum of (nibble) x a over the block by VPDPBUSD (x8_group: maddubs, 16-bit
 * adds that never saturate, madd), minus 8 sum(a), then acc = fma((float)isum, d_w * d_a, acc). */
KI int32_t sum32_i8(const int8_t *a) { /* sum of 32 signed bytes: |a| sums via (a ^ 0x80) - 128 */
    const __m256i s = _mm256_sad_epu8(_mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(const void *)a), _mm256_set1_epi8((char)0x80)),
                                      _mm256_setzero_si256());
    const __m128i h = _mm_add_epi64(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
    return (int32_t)(_mm_cvtsi128_si64(h) + _mm_extract_epi64(h, 1)) - 32 * 128;
}

static TGT void group2_q4_0x8(const uint8_t *ga, const uint8_t *gb, const etok_block_q8a *y, int64_t nb, float *res) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m512 acc = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *A = ga + (size_t)i * 128u, *B = gb + (size_t)i * 128u;
        const int8_t *a = y[i].qs;
        _mm_prefetch((const char *)(A + ETOK_PF_Q40X8), _MM_HINT_T0);
        _mm_prefetch((const char *)(A + ETOK_PF_Q40X8 + 64), _MM_HINT_T0);
        _mm_prefetch((const char *)(B + ETOK_PF_Q40X8), _MM_HINT_T0);
        _mm_prefetch((const char *)(B + ETOK_PF_Q40X8 + 64), _MM_HINT_T0);
        __m512i s32 = _mm512_setzero_si512();
        for (int c = 0; c < 4; c++) {
            const __m512i raw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(A + 32 * c))),
                                                   _mm256_loadu_si256((const __m256i *)(B + 32 * c)), 1);
            int32_t alo, ahi;
            memcpy(&alo, a + 4 * c, 4);
            memcpy(&ahi, a + 16 + 4 * c, 4);
            s32 = _mm512_dpbusd_epi32(s32, _mm512_and_si512(raw, m4), _mm512_set1_epi32(alo));
            s32 = _mm512_dpbusd_epi32(s32, _mm512_and_si512(_mm512_srli_epi16(raw, 4), m4), _mm512_set1_epi32(ahi));
        }
        const __m512i isum = _mm512_sub_epi32(s32, _mm512_set1_epi32(8 * sum32_i8(a)));
        const __m512 dw = _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)(gb + (size_t)nb * 128u + 16u * (size_t)i)),
                                                           _mm_loadu_si128((const __m128i *)(ga + (size_t)nb * 128u + 16u * (size_t)i))));
        acc = _mm512_fmadd_ps(_mm512_cvtepi32_ps(isum), _mm512_mul_ps(dw, _mm512_set1_ps(y[i].d)), acc);
    }
    _mm512_storeu_ps(res, acc);
}


/* ---- Q8_0x4 (quant_q8_0.c's 4-row copy), one token ----
 * Two 4-row groups per zmm (group a in lanes 0-7, b in 8-15, each as x4_tile's ymm: lane 2k + e
 * = row k's bytes 8v + 4e .. of chunk v): per lane x4_tile's operations in its order, the sign
 * trick's exact int32 sums by VPDPBUSD (idot2), acc[v] = fma(d_w * d_a, (float)sum, acc[v]),
 * then ((acc0 + acc2) + (acc1 + acc3)) and the pair sum of lanes 2k, 2k+1 (hadd). */
static TGT void group2_q8x4(const uint8_t *ga, const uint8_t *gb, const etok_block_q8a *y, int64_t nb, float *res) {
    __m512 acc[4];
    for (int v = 0; v < 4; v++) acc[v] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *A = ga + (size_t)i * 136u, *B = gb + (size_t)i * 136u;
        for (int o = 0; o < 192; o += 64) {
            _mm_prefetch((const char *)(A + ETOK_PF_Q8X4 + o), _MM_HINT_T0);
            _mm_prefetch((const char *)(B + ETOK_PF_Q8X4 + o), _MM_HINT_T0);
        }
        int64_t da, db;
        memcpy(&da, A + 128, 8);
        memcpy(&db, B + 128, 8);
        const __m128i h = _mm_set_epi64x(db, da); /* the 8 rows' F16 scales */
        const __m512 dw = _mm512_cvtph_ps(_mm256_set_m128i(_mm_unpackhi_epi16(h, h), _mm_unpacklo_epi16(h, h)));
        const __m512 sc = _mm512_mul_ps(dw, _mm512_set1_ps(y[i].d));
        for (int v = 0; v < 4; v++) {
            int64_t a8;
            memcpy(&a8, y[i].qs + 8 * v, 8);
            const __m256i a4 = _mm256_set1_epi64x(a8);
            const __m512i s32 = idot2(ETOK_T_Q8_0, ld32x2((const int8_t *)(A + 32 * v), (const int8_t *)(B + 32 * v)),
                                      _mm512_inserti64x4(_mm512_castsi256_si512(a4), a4, 1));
            acc[v] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(s32), acc[v]);
        }
    }
    float sv[16];
    _mm512_storeu_ps(sv, _mm512_add_ps(_mm512_add_ps(acc[0], acc[2]), _mm512_add_ps(acc[1], acc[3])));
    for (int k = 0; k < 8; k++) res[k] = sv[2 * k] + sv[2 * k + 1];
}


/* ---- Q5_0x8 (quant_q5_0x8.c's 8-row copy), one token ----
 * Two 8-row groups per zmm as the Q4_1x8 kernel, per lane exactly quant_q5_0x8.c's group_dec:
 * lane L's exact integer sum of (q - 16) x a over 4 values, here VPDPBUSD of q (0..31) minus 16
 * times the 4 activations' sum (group_dec: maddubs minus 16 x the pair sums, then madd; no
 * int16 overflow there), then acc[L] = fma(d_w * d_a, (float)sum, acc[L]) and reduce8. */
static TGT void group2_q50x8(const uint8_t *ga, const uint8_t *gb, const etok_block_q8a *y, int64_t nb, float *res) {
    const __m512i m4 = _mm512_set1_epi8(0x0F), b5 = _mm512_set1_epi8(0x10), z = _mm512_setzero_si512();
    __m512 acc[8];
    for (int L = 0; L < 8; L++) acc[L] = _mm512_setzero_ps();
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *A = ga + (size_t)i * 176u, *B = gb + (size_t)i * 176u;
        const int8_t *a = y[i].qs;
        for (int o = 0; o < 192; o += 64) {
            _mm_prefetch((const char *)(A + ETOK_PF_Q50X8 + o), _MM_HINT_T0);
            _mm_prefetch((const char *)(B + ETOK_PF_Q50X8 + o), _MM_HINT_T0);
        }
        /* 16 x the sum of activations 4L..4L+3 (L < 4) and 16 + 4(L-4).. (L >= 4): dword L of a */
        _Alignas(32) int32_t s16[8];
        _mm256_store_si256((__m256i *)(void *)s16,
                           _mm256_madd_epi16(_mm256_maddubs_epi16(_mm256_set1_epi8(16), _mm256_loadu_si256((const __m256i *)(const void *)a)),
                                             _mm256_set1_epi16(1)));
        const __m512 scale = _mm512_mul_ps(
            _mm512_cvtph_ps(_mm256_set_m128i(_mm_loadu_si128((const __m128i *)(B + 160)), _mm_loadu_si128((const __m128i *)(A + 160)))),
            _mm512_set1_ps(y[i].d));
        const __m512i H = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(A + 128))),
                                             _mm256_loadu_si256((const __m256i *)(B + 128)), 1);
        for (int c = 0; c < 4; c++) {
            const __m512i raw = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)(A + 32 * c))),
                                                   _mm256_loadu_si256((const __m256i *)(B + 32 * c)), 1);
            const __m512i lo = _mm512_or_si512(_mm512_and_si512(raw, m4), _mm512_and_si512(_mm512_slli_epi16(H, 4 - c), b5));
            const __m512i hi =
                _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(raw, 4), m4), _mm512_and_si512(_mm512_srli_epi16(H, c), b5));
            int32_t alo, ahi;
            memcpy(&alo, a + 4 * c, 4);
            memcpy(&ahi, a + 16 + 4 * c, 4);
            const __m512i plo = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, lo, _mm512_set1_epi32(alo)), _mm512_set1_epi32(s16[c]));
            const __m512i phi = _mm512_sub_epi32(_mm512_dpbusd_epi32(z, hi, _mm512_set1_epi32(ahi)), _mm512_set1_epi32(s16[4 + c]));
            acc[c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(plo), acc[c]);
            acc[4 + c] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(phi), acc[4 + c]);
        }
    }
    const __m512 s0 = _mm512_add_ps(acc[4], acc[0]), s1 = _mm512_add_ps(acc[5], acc[1]);
    const __m512 s2 = _mm512_add_ps(acc[6], acc[2]), s3 = _mm512_add_ps(acc[7], acc[3]);
    _mm512_storeu_ps(res, _mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
}


/* ---- IQ4_NLx8 (quant_iq4_nlx8.c's 8-row copy), one token ----
 * One group per call, both halves in one zmm: lanes 0-7 are the AVX2 kernel's half 0 (rows
 * 0-3, slot (k, j) = lane 2k + j), lanes 8-15 its half 1 (rows 4-7). Per lane the AVX2 order
 * exactly: the even blocks into E[q], the odd into O[q], acc = fma(d_w * d_a, (float)isum, acc)
 * with isum the exact lane sum (VPDPBUSD of |y| and the sign-adjusted looked-up values, as
 * maddubs + madd there), an odd last block's integer sums added after the chains; then the
 * AVX2 kernel's reduction on the two ymm halves (etok_iq4x8_reduce / _tail, quant_simd.h).
 * Block layout: quant_iq4_nlx8.c. */
#define IQ4X8_BS 144u
#define IQ4X8_OFF_D 128u

/* the exact lane sums of one value vector w against the broadcast activations y (|y| = ay,
 * mneg the bytes where y < 0): w * y = |y| * (y < 0 ? -w : w) */
KI __m512i iq4x8_lanes(__m512i w, __m512i ay, __mmask64 mneg) {
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), ay, _mm512_mask_sub_epi8(w, mneg, _mm512_setzero_si512(), w));
}

/* the 8 rows' scales times d_a, slot order [d0 d0 d1 d1 d2 d2 d3 d3 | d4 d4 .. d7 d7] */
KI __m512 iq4x8_scales(const uint8_t *B, float da) {
    const __m128i d = _mm_loadu_si128((const __m128i *)(const void *)(B + IQ4X8_OFF_D));
    const __m256i dd = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_unpacklo_epi16(d, d)), _mm_unpackhi_epi16(d, d), 1);
    return _mm512_mul_ps(_mm512_cvtph_ps(dd), _mm512_set1_ps(da));
}

/* w[0], w[1]: the low nibbles of each half's loads 0, 1 looked up (values 0-7, 8-15 of each
 * row); w[2], w[3] the high nibbles (16-23, 24-31) */
KI void iq4x8_lookup(const uint8_t *B, __m512i tbl, __m512i w[4]) {
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const __m512i h0 = _mm512_loadu_si512((const void *)B), h1 = _mm512_loadu_si512((const void *)(B + 64));
    const __m512i r0 = _mm512_shuffle_i64x2(h0, h1, 0x44), r1 = _mm512_shuffle_i64x2(h0, h1, 0xEE);
    w[0] = _mm512_shuffle_epi8(tbl, _mm512_and_si512(r0, m4));
    w[1] = _mm512_shuffle_epi8(tbl, _mm512_and_si512(r1, m4));
    w[2] = _mm512_shuffle_epi8(tbl, _mm512_and_si512(_mm512_srli_epi16(r0, 4), m4));
    w[3] = _mm512_shuffle_epi8(tbl, _mm512_and_si512(_mm512_srli_epi16(r1, 4), m4));
}

KI __m256 lo256(__m512 v) { return _mm512_castps512_ps256(v); }
KI __m256 hi256(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

static TGT void group_iq4nlx8(const uint8_t *grp, const etok_block_q8a *y, int64_t nb, float res[8]) {
    const __m512i tbl = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)etok_iq4nl_values));
    __m512 E[4], O[4];
    for (int q = 0; q < 4; q++) E[q] = O[q] = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const uint8_t *B = grp + (size_t)i * IQ4X8_BS;
        for (size_t o = 0; o < 2 * IQ4X8_BS; o += 64) _mm_prefetch((const char *)(B + ETOK_PF_IQ4X8 + o), _MM_HINT_T0);
        for (int e = 0; e < 2; e++) {
            const uint8_t *Bb = B + e * IQ4X8_BS;
            const int8_t *a = y[i + e].qs;
            __m512i w[4];
            iq4x8_lookup(Bb, tbl, w);
            const __m512 s = iq4x8_scales(Bb, y[i + e].d);
            __m512 *acc = e ? O : E;
            for (int q = 0; q < 4; q++) {
                long long v;
                memcpy(&v, a + 8 * q, 8);
                const __m512i yy = _mm512_broadcast_i32x4(_mm_set1_epi64x(v));
                const __m512i l = iq4x8_lanes(w[q], _mm512_abs_epi8(yy), _mm512_movepi8_mask(yy));
                acc[q] = _mm512_fmadd_ps(s, _mm512_cvtepi32_ps(l), acc[q]);
            }
        }
    }
    __m256 A[4], C[4];
    for (int q = 0; q < 4; q++) {
        const __m512 S = _mm512_add_ps(E[q], O[q]);
        A[q] = lo256(S);
        C[q] = hi256(S);
    }
    __m256 r = etok_iq4x8_reduce(A, C);
    if (i < nb) { /* the odd last block: its integer sums, added after the chains */
        const uint8_t *B = grp + (size_t)i * IQ4X8_BS;
        __m512i w[4], t = _mm512_setzero_si512();
        iq4x8_lookup(B, tbl, w);
        for (int q = 0; q < 4; q++) {
            long long v;
            memcpy(&v, y[i].qs + 8 * q, 8);
            const __m512i yy = _mm512_broadcast_i32x4(_mm_set1_epi64x(v));
            t = _mm512_add_epi32(t, iq4x8_lanes(w[q], _mm512_abs_epi8(yy), _mm512_movepi8_mask(yy)));
        }
        const __m512 s = iq4x8_scales(B, y[i].d);
        r = etok_iq4x8_tail(r, _mm512_castsi512_si256(t), _mm512_extracti64x4_epi64(t, 1), lo256(s), hi256(s));
    }
    _mm256_storeu_ps(res, r);
}

/* the groups of [r0, r1) in order, one stream, as the AVX2 kernel's decode */
static TGT void decode_iq4nlx8(const uint8_t *packed, size_t gb, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                               int64_t nb, float *out) {
    for (int64_t g = r0 / 8; g * 8 < r1; g++) {
        const int64_t lo = g * 8 > r0 ? g * 8 : r0, hi = g * 8 + 8 < r1 ? g * 8 + 8 : r1;
        float res[8];
        group_iq4nlx8(packed + (size_t)g * gb, xq, nb, res);
        for (int64_t r = lo; r < hi; r++) out[r] = res[r - g * 8];
    }
}

int etok_decode_copy_avx512(etok_amx_layout layout, uint32_t type, const uint8_t *packed, int64_t r0, int64_t r1,
                            const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    if (etok_isa_active() < ETOK_ISA_AVX512 || nx > (layout == ETOK_AMX_Q41X8 ? 2 : 1)) return 0;
    const int64_t nb = n / ETOK_QK;
    switch (layout) {
    case ETOK_AMX_Q41X8:
        decode_pairs(packed, etok_q41x8_group_bytes(type, n), 8, r0, r1, xq, nb, nx, out, out_stride,
                     type == ETOK_T_Q5_1 ? pair_q5_1x8 : pair_q4_1x8);
        return 1;
    case ETOK_AMX_Q4_0X8: decode_pairs(packed, etok_q4_0x8_group_bytes(n), 8, r0, r1, xq, nb, 1, out, out_stride, group2_q4_0x8); return 1;
    case ETOK_AMX_Q8X4: decode_pairs(packed, etok_q8x4_group_bytes(n), 4, r0, r1, xq, nb, 1, out, out_stride, group2_q8x4); return 1;
    case ETOK_AMX_Q50X8: decode_pairs(packed, etok_q50x8_group_bytes(n), 8, r0, r1, xq, nb, 1, out, out_stride, group2_q50x8); return 1;
    case ETOK_AMX_IQ4NLX8: decode_iq4nlx8(packed, etok_iq4nlx8_group_bytes(n), r0, r1, xq, nb, out); return 1;
    default: return 0; /* the file's rows: no kernel here */
    }
}

#endif
