/* quant.c — block formats: sizes, conversions, (de)quantisation and the scalar reference
 * dot kernels; the kernel level (scalar, avx2, avx512, amx: detection, ETOK_ISA, etok_isa_force)
 * and run-time dispatch to the AVX2/FMA kernels of quant_avx2.c, the AVX-512 VNNI ones of
 * quant_avx512.c, the AMX-INT8 prefill kernel of quant_amx.c and the Q8_0 prefill tiles of
 * quant_q8_0.c.
 *
 * Owns: the numeric meaning of each block format (see quant.h for the layouts). Does not own
 * the matmul loops or threading (model.c, threadpool.c). */
#include "engine/quant.h"

#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/quant_simd.h"
#if ETOK_HAVE_X86_SIMD
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

int etok_type_block_elems(uint32_t t) {
    switch (t) {
    case ETOK_T_F32: case ETOK_T_F16: case ETOK_T_BF16: return 1;
    case ETOK_T_Q4_0: case ETOK_T_Q4_1: case ETOK_T_Q5_0: case ETOK_T_Q5_1: case ETOK_T_Q8_0: case ETOK_T_IQ4_NL:
        return ETOK_QK;
    case ETOK_T_Q2_K: case ETOK_T_Q3_K: case ETOK_T_Q4_K: case ETOK_T_Q5_K: case ETOK_T_Q6_K: return ETOK_QK_K;
    default: return 0;
    }
}

int etok_type_block_bytes(uint32_t t) {
    switch (t) {
    case ETOK_T_F32: return 4;
    case ETOK_T_F16: case ETOK_T_BF16: return 2;
    case ETOK_T_Q4_0: return (int)sizeof(etok_block_q4_0);
    case ETOK_T_Q4_1: return (int)sizeof(etok_block_q4_1);
    case ETOK_T_Q5_0: return (int)sizeof(etok_block_q5_0);
    case ETOK_T_Q5_1: return (int)sizeof(etok_block_q5_1);
    case ETOK_T_Q8_0: return (int)sizeof(etok_block_q8_0);
    case ETOK_T_IQ4_NL: return (int)sizeof(etok_block_iq4_nl);
    case ETOK_T_Q2_K: return (int)sizeof(etok_block_q2_k);
    case ETOK_T_Q3_K: return (int)sizeof(etok_block_q3_k);
    case ETOK_T_Q4_K: return (int)sizeof(etok_block_q4_k);
    case ETOK_T_Q5_K: return (int)sizeof(etok_block_q5_k);
    case ETOK_T_Q6_K: return (int)sizeof(etok_block_q6_k);
    default: return 0;
    }
}

const char *etok_type_name(uint32_t t) {
    switch (t) {
    case ETOK_T_F32: return "F32";
    case ETOK_T_F16: return "F16";
    case ETOK_T_BF16: return "BF16";
    case ETOK_T_Q4_0: return "Q4_0";
    case ETOK_T_Q4_1: return "Q4_1";
    case ETOK_T_Q5_0: return "Q5_0";
    case ETOK_T_Q5_1: return "Q5_1";
    case ETOK_T_Q8_0: return "Q8_0";
    case ETOK_T_IQ4_NL: return "IQ4_NL";
    case ETOK_T_Q2_K: return "Q2_K";
    case ETOK_T_Q3_K: return "Q3_K";
    case ETOK_T_Q4_K: return "Q4_K";
    case ETOK_T_Q5_K: return "Q5_K";
    case ETOK_T_Q6_K: return "Q6_K";
    default: return "unknown";
    }
}

size_t etok_type_row_bytes(uint32_t t, int64_t n) {
    int be = etok_type_block_elems(t);
    return be ? (size_t)(n / be) * (size_t)etok_type_block_bytes(t) : 0;
}

int etok_type_uses_q8a(uint32_t t) {
    return t == ETOK_T_Q4_0 || t == ETOK_T_Q4_1 || t == ETOK_T_Q5_0 || t == ETOK_T_Q5_1 || t == ETOK_T_Q8_0 ||
           t == ETOK_T_IQ4_NL || t == ETOK_T_Q2_K || t == ETOK_T_Q3_K || t == ETOK_T_Q4_K || t == ETOK_T_Q5_K ||
           t == ETOK_T_Q6_K;
}

/* ggml's kvalues_iq4nl: the 16 levels of IQ4_NL, denser near zero. */
const int8_t etok_iq4nl_values[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* ---- half / bfloat ---- */

float etok_f16_to_f32(etok_f16 h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0) {
        if (mant == 0) {
            bits = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while (!(mant & 0x400));
            bits = sign | ((uint32_t)(127 - 15 - e) << 23) | ((mant & 0x3ff) << 13);
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);
    } else {
        bits = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

etok_f16 etok_f32_to_f16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    uint32_t sign = (x >> 16) & 0x8000;
    int32_t exp = (int32_t)((x >> 23) & 0xff) - 127 + 15;
    uint32_t mant = x & 0x7fffff;
    if (((x >> 23) & 0xff) == 0xff) return (etok_f16)(sign | 0x7c00 | (mant ? 0x200 : 0));
    if (exp >= 31) return (etok_f16)(sign | 0x7c00);
    if (exp <= 0) {
        if (exp < -10) return (etok_f16)sign;
        mant |= 0x800000;
        uint32_t shift = (uint32_t)(14 - exp);
        uint32_t h = mant >> shift, rem = mant & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (h & 1))) h++;
        return (etok_f16)(sign | h);
    }
    uint32_t h = ((uint32_t)exp << 10) | (mant >> 13), rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++; /* may carry into the exponent: correct */
    return (etok_f16)(sign | h);
}

float etok_bf16_to_f32(uint16_t b) {
    uint32_t bits = (uint32_t)b << 16;
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

uint16_t etok_f32_to_bf16(float f) {
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffff) > 0x7f800000) return (uint16_t)((x >> 16) | 64); /* quiet NaN */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

#define F16(h) etok_f16_to_f32(h)

/* ---- K-quant scale unpacking ---- */

static inline void q4k_scale_min(int j, const uint8_t *q, uint8_t *d, uint8_t *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

void etok_k4_scales(const uint8_t scales[12], uint8_t sc[8], uint8_t mn[8]) {
    for (int j = 0; j < 8; j++) q4k_scale_min(j, scales, &sc[j], &mn[j]);
}

void etok_q4k_scales(const etok_block_q4_k *b, uint8_t sc[8], uint8_t mn[8]) { etok_k4_scales(b->scales, sc, mn); }

/* The inverse for Q4_K/Q5_K: 8 scales and 8 mins of 6 bits into 12 bytes. */
static void k4_pack_scales(const uint8_t sc[8], const uint8_t mq[8], uint8_t scales[12]) {
    for (int j = 0; j < 4; j++) {
        scales[j] = (uint8_t)(sc[j] | ((sc[j + 4] >> 4) << 6));
        scales[j + 4] = (uint8_t)(mq[j] | ((mq[j + 4] >> 4) << 6));
        scales[j + 8] = (uint8_t)((sc[j + 4] & 0xF) | ((mq[j + 4] & 0xF) << 4));
    }
}

/* The 256 5-bit values of a Q5_K block in order (0..31): Q4_K's nibbles, bit i/32 of qh[i%32]. */
void etok_q5k_unpack(const etok_block_q5_k *b, uint8_t q[ETOK_QK_K]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            q[g * 64 + l] = (uint8_t)((b->qs[g * 32 + l] & 0xF) | ((b->qh[l] >> (2 * g)) & 1) << 4);
            q[g * 64 + 32 + l] = (uint8_t)((b->qs[g * 32 + l] >> 4) | ((b->qh[l] >> (2 * g + 1)) & 1) << 4);
        }
}

/* The 256 2-bit values of a Q2_K block in order (0..3). */
void etok_q2k_unpack(const etok_block_q2_k *b, uint8_t q[ETOK_QK_K]) {
    for (int i = 0; i < ETOK_QK_K; i++) q[i] = (uint8_t)((b->qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3);
}

/* The 256 signed 3-bit values of a Q3_K block in order (-4..3). */
void etok_q3k_unpack(const etok_block_q3_k *b, int8_t q[ETOK_QK_K]) {
    for (int i = 0; i < ETOK_QK_K; i++) {
        int lo = (b->qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
        int hi = (b->hmask[i % 32] >> (i / 32)) & 1;
        q[i] = (int8_t)(lo - (hi ? 0 : 4));
    }
}

/* The 16 signed 6-bit scales of a Q3_K block (-32..31). */
void etok_q3k_scales(const etok_block_q3_k *b, int8_t sc[16]) {
    for (int s = 0; s < 16; s++) {
        int lo = s < 8 ? b->scales[s] & 0xF : b->scales[s - 8] >> 4;
        int hi = (b->scales[8 + s % 4] >> (2 * (s / 4))) & 3;
        sc[s] = (int8_t)((lo | hi << 4) - 32);
    }
}

/* The 256 4-bit values of a Q4_K block in order (0..15). */
void etok_q4k_unpack(const etok_block_q4_k *b, uint8_t q[ETOK_QK_K]) {
    for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++) {
            q[g * 64 + l] = b->qs[g * 32 + l] & 0xF;
            q[g * 64 + 32 + l] = b->qs[g * 32 + l] >> 4;
        }
}

/* The 256 6-bit values of a Q6_K block in order, minus 32 (-32..31). */
void etok_q6k_unpack(const etok_block_q6_k *b, int8_t q[ETOK_QK_K]) {
    for (int n = 0; n < 2; n++) {
        const uint8_t *ql = b->ql + 64 * n, *qh = b->qh + 32 * n;
        int8_t *y = q + 128 * n;
        for (int l = 0; l < 32; l++) {
            y[l] = (int8_t)(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
            y[l + 32] = (int8_t)(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
            y[l + 64] = (int8_t)(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
            y[l + 96] = (int8_t)(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
    }
}

/* The 32 5-bit values (0..31) of a Q5_0/Q5_1 block in order: low 4 bits from the nibbles
 * (as Q4_0), 5th bit of value j = bit j of qh as a little-endian uint32. */
void etok_q5_unpack(const uint8_t qh[4], const uint8_t qs[ETOK_QK / 2], uint8_t q[ETOK_QK]) {
    const uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
    for (int j = 0; j < 16; j++) {
        q[j] = (uint8_t)((qs[j] & 0xF) | ((h >> j) & 1) << 4);
        q[j + 16] = (uint8_t)((qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
    }
}

/* The inverse: 32 values 0..31 into qh and qs. */
static void q5_pack(const uint8_t q[ETOK_QK], uint8_t qh[4], uint8_t qs[ETOK_QK / 2]) {
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
        h |= (uint32_t)(q[j] >> 4) << j | (uint32_t)(q[j + 16] >> 4) << (j + 16);
    }
    for (int k = 0; k < 4; k++) qh[k] = (uint8_t)(h >> (8 * k));
}

/* ---- dequantisation ---- */

void etok_dequantize_row(uint32_t type, const void *row, float *y, int64_t n) {
    switch (type) {
    case ETOK_T_F32: memcpy(y, row, (size_t)n * 4); return;
    case ETOK_T_F16: {
        const uint8_t *p = row;
        for (int64_t i = 0; i < n; i++) {
            etok_f16 h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = F16(h);
        }
        return;
    }
    case ETOK_T_BF16: {
        const uint8_t *p = row;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            y[i] = etok_bf16_to_f32(h);
        }
        return;
    }
    case ETOK_T_Q8_0: {
        const etok_block_q8_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            float d = F16(b[i].d);
            for (int j = 0; j < ETOK_QK; j++) y[i * ETOK_QK + j] = d * b[i].qs[j];
        }
        return;
    }
    case ETOK_T_Q4_0: {
        const etok_block_q4_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            float d = F16(b[i].d);
            for (int j = 0; j < 16; j++) {
                y[i * ETOK_QK + j] = d * ((b[i].qs[j] & 0xF) - 8);
                y[i * ETOK_QK + j + 16] = d * ((b[i].qs[j] >> 4) - 8);
            }
        }
        return;
    }
    case ETOK_T_Q4_1: {
        const etok_block_q4_1 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            float d = F16(b[i].d), m = F16(b[i].m);
            for (int j = 0; j < 16; j++) {
                y[i * ETOK_QK + j] = d * (b[i].qs[j] & 0xF) + m;
                y[i * ETOK_QK + j + 16] = d * (b[i].qs[j] >> 4) + m;
            }
        }
        return;
    }
    case ETOK_T_Q5_0: {
        const etok_block_q5_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            uint8_t q[ETOK_QK];
            etok_q5_unpack(b[i].qh, b[i].qs, q);
            float d = F16(b[i].d);
            for (int j = 0; j < ETOK_QK; j++) y[i * ETOK_QK + j] = d * (q[j] - 16);
        }
        return;
    }
    case ETOK_T_Q5_1: {
        const etok_block_q5_1 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            uint8_t q[ETOK_QK];
            etok_q5_unpack(b[i].qh, b[i].qs, q);
            float d = F16(b[i].d), m = F16(b[i].m);
            for (int j = 0; j < ETOK_QK; j++) y[i * ETOK_QK + j] = d * q[j] + m;
        }
        return;
    }
    case ETOK_T_Q4_K: {
        const etok_block_q4_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            uint8_t q[ETOK_QK_K], sc[8], mn[8];
            etok_q4k_unpack(&b[i], q);
            etok_q4k_scales(&b[i], sc, mn);
            float d = F16(b[i].d), dmin = F16(b[i].dmin);
            for (int j = 0; j < ETOK_QK_K; j++) y[i * ETOK_QK_K + j] = d * sc[j / 32] * q[j] - dmin * mn[j / 32];
        }
        return;
    }
    case ETOK_T_Q6_K: {
        const etok_block_q6_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            int8_t q[ETOK_QK_K];
            etok_q6k_unpack(&b[i], q);
            float d = F16(b[i].d);
            for (int j = 0; j < ETOK_QK_K; j++) y[i * ETOK_QK_K + j] = d * b[i].scales[j / 16] * q[j];
        }
        return;
    }
    case ETOK_T_IQ4_NL: {
        const etok_block_iq4_nl *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            float d = F16(b[i].d);
            for (int j = 0; j < 16; j++) {
                y[i * ETOK_QK + j] = d * etok_iq4nl_values[b[i].qs[j] & 0xF];
                y[i * ETOK_QK + j + 16] = d * etok_iq4nl_values[b[i].qs[j] >> 4];
            }
        }
        return;
    }
    case ETOK_T_Q2_K: {
        const etok_block_q2_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            uint8_t q[ETOK_QK_K];
            etok_q2k_unpack(&b[i], q);
            float d = F16(b[i].d), dmin = F16(b[i].dmin);
            for (int j = 0; j < ETOK_QK_K; j++)
                y[i * ETOK_QK_K + j] = d * (b[i].scales[j / 16] & 0xF) * q[j] - dmin * (b[i].scales[j / 16] >> 4);
        }
        return;
    }
    case ETOK_T_Q3_K: {
        const etok_block_q3_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            int8_t q[ETOK_QK_K], sc[16];
            etok_q3k_unpack(&b[i], q);
            etok_q3k_scales(&b[i], sc);
            float d = F16(b[i].d);
            for (int j = 0; j < ETOK_QK_K; j++) y[i * ETOK_QK_K + j] = d * sc[j / 16] * q[j];
        }
        return;
    }
    case ETOK_T_Q5_K: {
        const etok_block_q5_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            uint8_t q[ETOK_QK_K], sc[8], mn[8];
            etok_q5k_unpack(&b[i], q);
            etok_k4_scales(b[i].scales, sc, mn);
            float d = F16(b[i].d), dmin = F16(b[i].dmin);
            for (int j = 0; j < ETOK_QK_K; j++) y[i * ETOK_QK_K + j] = d * sc[j / 32] * q[j] - dmin * mn[j / 32];
        }
        return;
    }
    default: memset(y, 0, (size_t)n * sizeof *y); return;
    }
}

/* The value of largest magnitude in a block of ETOK_QK, with its sign (the first one on a tie):
 * the symmetric formats map it to their most negative step. */
static float block_signed_absmax(const float *v) {
    float amax = 0, mx = 0;
    for (int j = 0; j < ETOK_QK; j++)
        if (fabsf(v[j]) > amax) {
            amax = fabsf(v[j]);
            mx = v[j];
        }
    return mx;
}

/* Smallest and largest value in a block of ETOK_QK: the range of the formats with an offset. */
static void block_min_max(const float *v, float *mn, float *mx) {
    *mn = *mx = v[0];
    for (int j = 1; j < ETOK_QK; j++) {
        *mn = fminf(*mn, v[j]);
        *mx = fmaxf(*mx, v[j]);
    }
}

/* ---- quantisation (reference quality; used for the synthetic model and tests) ---- */

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Q4_K / Q5_K: each 32-value sub-block's scale (range / qmax) and min (-lowest, the lowest
 * clamped to <= 0 so the stored min is >= 0), both quantised to 6 bits against the block's
 * largest (d_dmin: d and dmin as F16) and packed; then every value as 0..qmax in q. The caller
 * packs q into its format's bits. */
static void k_block_quantize(const float *v, int qmax_i, etok_f16 d_dmin[2], uint8_t scales[12], uint8_t q[ETOK_QK_K]) {
    float qmax = (float)qmax_i;
    uint8_t sc[8], mq[8];
    float scale[8], minv[8], max_scale = 0, max_min = 0;
    for (int s = 0; s < 8; s++) {
        float lo = 0, hi = 0;
        for (int j = 0; j < 32; j++) {
            lo = fminf(lo, v[s * 32 + j]);
            hi = fmaxf(hi, v[s * 32 + j]);
        }
        scale[s] = (hi - lo) / qmax;
        minv[s] = -lo;
        max_scale = fmaxf(max_scale, scale[s]);
        max_min = fmaxf(max_min, minv[s]);
    }
    float d = max_scale / 63.0f, dmin = max_min / 63.0f;
    for (int s = 0; s < 8; s++) {
        sc[s] = (uint8_t)clampi(d ? (int)lrintf(scale[s] / d) : 0, 0, 63);
        mq[s] = (uint8_t)clampi(dmin ? (int)lrintf(minv[s] / dmin) : 0, 0, 63);
    }
    d_dmin[0] = etok_f32_to_f16(d);
    d_dmin[1] = etok_f32_to_f16(dmin);
    k4_pack_scales(sc, mq, scales);
    float dr = etok_f16_to_f32(d_dmin[0]), dmr = etok_f16_to_f32(d_dmin[1]);
    for (int s = 0; s < 8; s++) {
        float ds = dr * sc[s], ms = dmr * mq[s];
        for (int j = 0; j < 32; j++)
            q[s * 32 + j] = (uint8_t)clampi(ds ? (int)lrintf((v[s * 32 + j] + ms) / ds) : 0, 0, qmax_i);
    }
}

void etok_quantize_row(uint32_t type, const float *x, void *row, int64_t n) {
    switch (type) {
    case ETOK_T_F32: memcpy(row, x, (size_t)n * 4); return;
    case ETOK_T_F16: {
        uint8_t *p = row;
        for (int64_t i = 0; i < n; i++) {
            etok_f16 h = etok_f32_to_f16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return;
    }
    case ETOK_T_BF16: {
        uint8_t *p = row;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = etok_f32_to_bf16(x[i]);
            memcpy(p + 2 * i, &h, 2);
        }
        return;
    }
    case ETOK_T_Q8_0: {
        etok_block_q8_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            const float *v = x + i * ETOK_QK;
            float amax = 0;
            for (int j = 0; j < ETOK_QK; j++) amax = fmaxf(amax, fabsf(v[j]));
            float d = amax / 127.0f, id = d ? 1.0f / d : 0.0f;
            b[i].d = etok_f32_to_f16(d);
            for (int j = 0; j < ETOK_QK; j++) b[i].qs[j] = (int8_t)clampi((int)lrintf(v[j] * id), -127, 127);
        }
        return;
    }
    case ETOK_T_Q4_0: {
        etok_block_q4_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            const float *v = x + i * ETOK_QK;
            float mx = block_signed_absmax(v);
            float d = mx / -8.0f, id = d ? 1.0f / d : 0.0f;
            b[i].d = etok_f32_to_f16(d);
            for (int j = 0; j < 16; j++) {
                int a = clampi((int)lrintf(v[j] * id) + 8, 0, 15), c = clampi((int)lrintf(v[j + 16] * id) + 8, 0, 15);
                b[i].qs[j] = (uint8_t)(a | (c << 4));
            }
        }
        return;
    }
    case ETOK_T_Q4_1: {
        etok_block_q4_1 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            const float *v = x + i * ETOK_QK;
            float mn, mx;
            block_min_max(v, &mn, &mx);
            float d = (mx - mn) / 15.0f, id = d ? 1.0f / d : 0.0f;
            b[i].d = etok_f32_to_f16(d);
            b[i].m = etok_f32_to_f16(mn);
            for (int j = 0; j < 16; j++) {
                int a = clampi((int)lrintf((v[j] - mn) * id), 0, 15), c = clampi((int)lrintf((v[j + 16] - mn) * id), 0, 15);
                b[i].qs[j] = (uint8_t)(a | (c << 4));
            }
        }
        return;
    }
    case ETOK_T_Q5_0: {
        etok_block_q5_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            const float *v = x + i * ETOK_QK;
            float mx = block_signed_absmax(v);
            /* as Q4_0: the value of largest magnitude maps to q = 0 (-16 steps) */
            float d = mx / -16.0f, id = d ? 1.0f / d : 0.0f;
            b[i].d = etok_f32_to_f16(d);
            uint8_t q[ETOK_QK];
            for (int j = 0; j < ETOK_QK; j++) q[j] = (uint8_t)clampi((int)lrintf(v[j] * id) + 16, 0, 31);
            q5_pack(q, b[i].qh, b[i].qs);
        }
        return;
    }
    case ETOK_T_Q5_1: {
        etok_block_q5_1 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            const float *v = x + i * ETOK_QK;
            float mn, mx;
            block_min_max(v, &mn, &mx);
            float d = (mx - mn) / 31.0f, id = d ? 1.0f / d : 0.0f;
            b[i].d = etok_f32_to_f16(d);
            b[i].m = etok_f32_to_f16(mn);
            uint8_t q[ETOK_QK];
            for (int j = 0; j < ETOK_QK; j++) q[j] = (uint8_t)clampi((int)lrintf((v[j] - mn) * id), 0, 31);
            q5_pack(q, b[i].qh, b[i].qs);
        }
        return;
    }
    case ETOK_T_Q4_K: {
        etok_block_q4_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            etok_f16 dd[2];
            uint8_t q[ETOK_QK_K];
            k_block_quantize(x + i * ETOK_QK_K, 15, dd, b[i].scales, q);
            b[i].d = dd[0];
            b[i].dmin = dd[1];
            for (int g = 0; g < 4; g++)
                for (int l = 0; l < 32; l++)
                    b[i].qs[g * 32 + l] = (uint8_t)(q[g * 64 + l] | (q[g * 64 + 32 + l] << 4));
        }
        return;
    }
    case ETOK_T_Q6_K: {
        etok_block_q6_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            const float *v = x + i * ETOK_QK_K;
            float sub[16], max_sub = 0;
            for (int s = 0; s < 16; s++) {
                float amax = 0;
                for (int j = 0; j < 16; j++) amax = fmaxf(amax, fabsf(v[s * 16 + j]));
                sub[s] = amax / 31.0f;
                max_sub = fmaxf(max_sub, sub[s]);
            }
            float d = max_sub / 127.0f;
            b[i].d = etok_f32_to_f16(d);
            float dr = F16(b[i].d);
            int8_t q[ETOK_QK_K];
            for (int s = 0; s < 16; s++) {
                b[i].scales[s] = (int8_t)clampi(d ? (int)lrintf(sub[s] / d) : 0, -128, 127);
                float ds = dr * b[i].scales[s];
                for (int j = 0; j < 16; j++)
                    q[s * 16 + j] = (int8_t)clampi(ds ? (int)lrintf(v[s * 16 + j] / ds) : 0, -32, 31);
            }
            memset(b[i].ql, 0, sizeof b[i].ql);
            memset(b[i].qh, 0, sizeof b[i].qh);
            for (int nn = 0; nn < 2; nn++) {
                uint8_t *ql = b[i].ql + 64 * nn, *qh = b[i].qh + 32 * nn;
                const int8_t *y = q + 128 * nn;
                for (int l = 0; l < 32; l++) {
                    int q1 = y[l] + 32, q2 = y[l + 32] + 32, q3 = y[l + 64] + 32, q4 = y[l + 96] + 32;
                    ql[l] = (uint8_t)((q1 & 0xF) | ((q3 & 0xF) << 4));
                    ql[l + 32] = (uint8_t)((q2 & 0xF) | ((q4 & 0xF) << 4));
                    qh[l] = (uint8_t)((q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6));
                }
            }
        }
        return;
    }
    case ETOK_T_IQ4_NL: {
        etok_block_iq4_nl *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            const float *v = x + i * ETOK_QK;
            /* the value of largest magnitude maps to the table's end of the same sign */
            float mx = block_signed_absmax(v);
            float d = mx < 0 ? mx / -127.0f : mx / 113.0f;
            b[i].d = etok_f32_to_f16(d);
            float dr = F16(b[i].d);
            uint8_t q[ETOK_QK];
            for (int j = 0; j < ETOK_QK; j++) {
                int best = 8; /* the level nearest to v/d (1: near zero when d is 0) */
                if (dr != 0) {
                    float t = v[j] / dr, err = INFINITY;
                    for (int k = 0; k < 16; k++)
                        if (fabsf(t - etok_iq4nl_values[k]) < err) {
                            err = fabsf(t - etok_iq4nl_values[k]);
                            best = k;
                        }
                }
                q[j] = (uint8_t)best;
            }
            for (int j = 0; j < 16; j++) b[i].qs[j] = (uint8_t)(q[j] | q[j + 16] << 4);
        }
        return;
    }
    case ETOK_T_Q2_K: {
        etok_block_q2_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            const float *v = x + i * ETOK_QK_K;
            float scale[16], minv[16], max_scale = 0, max_min = 0;
            for (int s = 0; s < 16; s++) {
                float lo = 0, hi = 0; /* as Q4_K: min clamped to <= 0 */
                for (int j = 0; j < 16; j++) {
                    lo = fminf(lo, v[s * 16 + j]);
                    hi = fmaxf(hi, v[s * 16 + j]);
                }
                scale[s] = (hi - lo) / 3.0f;
                minv[s] = -lo;
                max_scale = fmaxf(max_scale, scale[s]);
                max_min = fmaxf(max_min, minv[s]);
            }
            float d = max_scale / 15.0f, dmin = max_min / 15.0f;
            b[i].d = etok_f32_to_f16(d);
            b[i].dmin = etok_f32_to_f16(dmin);
            float dr = F16(b[i].d), dmr = F16(b[i].dmin);
            uint8_t q[ETOK_QK_K];
            for (int s = 0; s < 16; s++) {
                /* round the scale up so the largest value stays within 3 steps */
                int sc = clampi(dr ? (int)ceilf(scale[s] / dr - 1e-3f) : 0, 0, 15);
                int mq = clampi(dmr ? (int)lrintf(minv[s] / dmr) : 0, 0, 15);
                b[i].scales[s] = (uint8_t)(sc | mq << 4);
                float ds = dr * sc, ms = dmr * mq;
                for (int j = 0; j < 16; j++)
                    q[s * 16 + j] = (uint8_t)clampi(ds ? (int)lrintf((v[s * 16 + j] + ms) / ds) : 0, 0, 3);
            }
            memset(b[i].qs, 0, sizeof b[i].qs);
            for (int k = 0; k < ETOK_QK_K; k++) b[i].qs[32 * (k / 128) + k % 32] |= (uint8_t)(q[k] << (2 * ((k / 32) % 4)));
        }
        return;
    }
    case ETOK_T_Q3_K: {
        etok_block_q3_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            const float *v = x + i * ETOK_QK_K;
            float sub[16], max_abs = 0;
            for (int s = 0; s < 16; s++) {
                /* as Q4_0: the value of largest magnitude maps to -4 steps */
                float amax = 0, mx = 0;
                for (int j = 0; j < 16; j++)
                    if (fabsf(v[s * 16 + j]) > amax) {
                        amax = fabsf(v[s * 16 + j]);
                        mx = v[s * 16 + j];
                    }
                sub[s] = mx / -4.0f;
                max_abs = fmaxf(max_abs, fabsf(sub[s]));
            }
            float d = max_abs / 31.0f;
            b[i].d = etok_f32_to_f16(d);
            float dr = F16(b[i].d);
            memset(b[i].scales, 0, sizeof b[i].scales);
            memset(b[i].hmask, 0, sizeof b[i].hmask);
            memset(b[i].qs, 0, sizeof b[i].qs);
            for (int s = 0; s < 16; s++) {
                int sc = clampi(dr ? (int)lrintf(sub[s] / dr) : 0, -32, 31);
                int u = sc + 32; /* 6 bits */
                b[i].scales[s % 8] |= (uint8_t)((u & 0xF) << (s < 8 ? 0 : 4));
                b[i].scales[8 + s % 4] |= (uint8_t)((u >> 4) << (2 * (s / 4)));
                float ds = dr * sc;
                for (int j = 0; j < 16; j++) {
                    int k = s * 16 + j;
                    int qv = clampi(ds ? (int)lrintf(v[k] / ds) : 0, -4, 3) + 4; /* 0..7 */
                    b[i].qs[32 * (k / 128) + k % 32] |= (uint8_t)((qv & 3) << (2 * ((k / 32) % 4)));
                    b[i].hmask[k % 32] |= (uint8_t)((qv >> 2) << (k / 32));
                }
            }
        }
        return;
    }
    case ETOK_T_Q5_K: {
        etok_block_q5_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            etok_f16 dd[2];
            uint8_t q[ETOK_QK_K];
            k_block_quantize(x + i * ETOK_QK_K, 31, dd, b[i].scales, q);
            b[i].d = dd[0];
            b[i].dmin = dd[1];
            memset(b[i].qh, 0, sizeof b[i].qh);
            for (int s = 0; s < 8; s++) {
                for (int j = 0; j < 32; j++) {
                    int qv = q[s * 32 + j];
                    uint8_t *p = &b[i].qs[(s / 2) * 32 + j];
                    if (s % 2 == 0)
                        *p = (uint8_t)(qv & 0xF);
                    else
                        *p |= (uint8_t)((qv & 0xF) << 4);
                    b[i].qh[j] |= (uint8_t)((qv >> 4) << s);
                }
            }
        }
        return;
    }
    default: return;
    }
}

/* ---- activation quantisation ---- */

void etok_quantize_q8a_ref(const float *x, etok_block_q8a *out, int64_t n) {
    for (int64_t i = 0; i < n / ETOK_QK; i++) {
        const float *v = x + i * ETOK_QK;
        float amax = 0;
        for (int j = 0; j < ETOK_QK; j++) amax = fmaxf(amax, fabsf(v[j]));
        float d = amax / 127.0f, id = d ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int j = 0; j < ETOK_QK; j++) {
            int q = (int)lrintf(v[j] * id);
            out[i].qs[j] = (int8_t)q;
            sum += q;
        }
        /* scale and sum rounded to F16 as llama.cpp's Q8_0/Q8_1 blocks store them, so both
         * engines see the same activation quantisation */
        out[i].d = etok_f16_to_f32(etok_f32_to_f16(d));
        out[i].s = etok_f16_to_f32(etok_f32_to_f16(d * (float)sum));
    }
}

/* ---- scalar reference dot kernels ---- */

float etok_vec_dot_ref(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n) {
    float sum = 0;
    switch (type) {
    case ETOK_T_F32: {
        const float *w = row;
        for (int64_t i = 0; i < n; i++) sum += w[i] * xf[i];
        return sum;
    }
    case ETOK_T_F16: case ETOK_T_BF16: {
        const uint8_t *p = row;
        for (int64_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            sum += (type == ETOK_T_F16 ? F16(h) : etok_bf16_to_f32(h)) * xf[i];
        }
        return sum;
    }
    case ETOK_T_Q8_0: {
        const etok_block_q8_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            int s = 0;
            for (int j = 0; j < ETOK_QK; j++) s += b[i].qs[j] * xq[i].qs[j];
            sum += F16(b[i].d) * xq[i].d * (float)s;
        }
        return sum;
    }
    case ETOK_T_Q4_0: {
        const etok_block_q4_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += ((b[i].qs[j] & 0xF) - 8) * xq[i].qs[j] + ((b[i].qs[j] >> 4) - 8) * xq[i].qs[j + 16];
            sum += F16(b[i].d) * xq[i].d * (float)s;
        }
        return sum;
    }
    case ETOK_T_Q4_1: {
        const etok_block_q4_1 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            int s = 0;
            for (int j = 0; j < 16; j++) s += (b[i].qs[j] & 0xF) * xq[i].qs[j] + (b[i].qs[j] >> 4) * xq[i].qs[j + 16];
            sum += F16(b[i].d) * xq[i].d * (float)s + F16(b[i].m) * xq[i].s;
        }
        return sum;
    }
    case ETOK_T_Q5_0: {
        const etok_block_q5_0 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            uint8_t q[ETOK_QK];
            etok_q5_unpack(b[i].qh, b[i].qs, q);
            int s = 0;
            for (int j = 0; j < ETOK_QK; j++) s += (q[j] - 16) * xq[i].qs[j];
            sum += F16(b[i].d) * xq[i].d * (float)s;
        }
        return sum;
    }
    case ETOK_T_Q5_1: {
        const etok_block_q5_1 *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            uint8_t q[ETOK_QK];
            etok_q5_unpack(b[i].qh, b[i].qs, q);
            int s = 0;
            for (int j = 0; j < ETOK_QK; j++) s += q[j] * xq[i].qs[j];
            sum += F16(b[i].d) * xq[i].d * (float)s + F16(b[i].m) * xq[i].s;
        }
        return sum;
    }
    case ETOK_T_Q4_K: {
        const etok_block_q4_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            uint8_t q[ETOK_QK_K], sc[8], mn[8];
            etok_q4k_unpack(&b[i], q);
            etok_q4k_scales(&b[i], sc, mn);
            float d = F16(b[i].d), dmin = F16(b[i].dmin);
            for (int s = 0; s < 8; s++) {
                const etok_block_q8a *a = &xq[i * 8 + s];
                int acc = 0;
                for (int j = 0; j < 32; j++) acc += q[s * 32 + j] * a->qs[j];
                sum += d * sc[s] * a->d * (float)acc - dmin * mn[s] * a->s;
            }
        }
        return sum;
    }
    case ETOK_T_Q6_K: {
        const etok_block_q6_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            int8_t q[ETOK_QK_K];
            etok_q6k_unpack(&b[i], q);
            float d = F16(b[i].d);
            for (int s = 0; s < 8; s++) {
                const etok_block_q8a *a = &xq[i * 8 + s];
                int acc0 = 0, acc1 = 0;
                for (int j = 0; j < 16; j++) {
                    acc0 += q[s * 32 + j] * a->qs[j];
                    acc1 += q[s * 32 + 16 + j] * a->qs[16 + j];
                }
                sum += d * a->d * (float)(b[i].scales[2 * s] * acc0 + b[i].scales[2 * s + 1] * acc1);
            }
        }
        return sum;
    }
    case ETOK_T_IQ4_NL: {
        const etok_block_iq4_nl *b = row;
        for (int64_t i = 0; i < n / ETOK_QK; i++) {
            int s = 0;
            for (int j = 0; j < 16; j++)
                s += etok_iq4nl_values[b[i].qs[j] & 0xF] * xq[i].qs[j] + etok_iq4nl_values[b[i].qs[j] >> 4] * xq[i].qs[j + 16];
            sum += F16(b[i].d) * xq[i].d * (float)s;
        }
        return sum;
    }
    case ETOK_T_Q2_K: {
        /* per 32-value activation block: the two 16-value sub-blocks' integer sums of scale*q*a
         * and min*a, then d and dmin */
        const etok_block_q2_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            uint8_t q[ETOK_QK_K];
            etok_q2k_unpack(&b[i], q);
            float d = F16(b[i].d), dmin = F16(b[i].dmin);
            for (int s = 0; s < 8; s++) {
                const etok_block_q8a *a = &xq[i * 8 + s];
                int isum = 0, msum = 0;
                for (int h = 0; h < 2; h++) {
                    int qa = 0, as = 0;
                    for (int j = 0; j < 16; j++) {
                        qa += q[s * 32 + h * 16 + j] * a->qs[h * 16 + j];
                        as += a->qs[h * 16 + j];
                    }
                    uint8_t scm = b[i].scales[2 * s + h];
                    isum += (scm & 0xF) * qa;
                    msum += (scm >> 4) * as;
                }
                sum += d * a->d * (float)isum - dmin * a->d * (float)msum;
            }
        }
        return sum;
    }
    case ETOK_T_Q3_K: {
        const etok_block_q3_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            int8_t q[ETOK_QK_K], sc[16];
            etok_q3k_unpack(&b[i], q);
            etok_q3k_scales(&b[i], sc);
            float d = F16(b[i].d);
            for (int s = 0; s < 8; s++) {
                const etok_block_q8a *a = &xq[i * 8 + s];
                int acc0 = 0, acc1 = 0;
                for (int j = 0; j < 16; j++) {
                    acc0 += q[s * 32 + j] * a->qs[j];
                    acc1 += q[s * 32 + 16 + j] * a->qs[16 + j];
                }
                sum += d * a->d * (float)(sc[2 * s] * acc0 + sc[2 * s + 1] * acc1);
            }
        }
        return sum;
    }
    case ETOK_T_Q5_K: {
        const etok_block_q5_k *b = row;
        for (int64_t i = 0; i < n / ETOK_QK_K; i++) {
            uint8_t q[ETOK_QK_K], sc[8], mn[8];
            etok_q5k_unpack(&b[i], q);
            etok_k4_scales(b[i].scales, sc, mn);
            float d = F16(b[i].d), dmin = F16(b[i].dmin);
            for (int s = 0; s < 8; s++) {
                const etok_block_q8a *a = &xq[i * 8 + s];
                int acc = 0;
                for (int j = 0; j < 32; j++) acc += q[s * 32 + j] * a->qs[j];
                sum += d * sc[s] * a->d * (float)acc - dmin * mn[s] * a->s;
            }
        }
        return sum;
    }
    default: return 0;
    }
}

/* ---- run-time dispatch ---- */

const char *etok_isa_name(int level) {
    switch (level) {
    case ETOK_ISA_SCALAR: return "scalar";
    case ETOK_ISA_AVX2: return "avx2";
    case ETOK_ISA_AVX512: return "avx512";
    case ETOK_ISA_AMX: return "amx";
    default: return "?";
    }
}

int etok_isa_parse(const char *name) {
    if (!name) return -1;
    for (int l = ETOK_ISA_SCALAR; l <= ETOK_ISA_AMX; l++)
        if (!strcmp(name, etok_isa_name(l))) return l;
    return -1;
}

static int etok_isa_detected_hw(void);

int etok_isa_level_from_cpuid(uint32_t ecx1, uint32_t ebx7, uint32_t ecx7, uint64_t xcr0) {
    /* leaf 1 ECX: 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C; leaf 7 EBX: 5 AVX2, 16 AVX512F,
     * 30 AVX512BW, 31 AVX512VL; leaf 7 ECX: 11 AVX512_VNNI. XCR0: 1 SSE, 2 AVX (YMM high
     * halves), 5 opmask, 6 ZMM0-15 high halves, 7 ZMM16-31. */
    const int osxsave = (ecx1 >> 27) & 1;
    const uint64_t ymm = (1u << 1) | (1u << 2), zmm = ymm | (1u << 5) | (1u << 6) | (1u << 7);
    const int avx2 = osxsave && (xcr0 & ymm) == ymm && ((ecx1 >> 12) & 1) && ((ecx1 >> 28) & 1) &&
                     ((ecx1 >> 29) & 1) && ((ebx7 >> 5) & 1);
    if (!avx2) return ETOK_ISA_SCALAR;
    const int avx512 = (xcr0 & zmm) == zmm && ((ebx7 >> 16) & 1) && ((ebx7 >> 30) & 1) && ((ebx7 >> 31) & 1) &&
                       ((ecx7 >> 11) & 1);
    return avx512 ? ETOK_ISA_AVX512 : ETOK_ISA_AVX2;
}

int etok_isa_amx_usable(uint32_t edx7, uint64_t xcr0, long perm_rc, const char *emu_env) {
    const uint64_t tiles = (1ull << 17) | (1ull << 18); /* XTILECFG, XTILEDATA */
    if (!((edx7 >> 24) & 1) || !((edx7 >> 25) & 1) || (xcr0 & tiles) != tiles) return 0;
    return perm_rc == 0 || (emu_env && !strcmp(emu_env, "1"));
}

int etok_isa_detected(void) {
#if defined(ETOK_ISA_EMULATED_AMX) && ETOK_HAVE_X86_SIMD
    /* the isa_kernels_emu test build only: tile operations done in C (quant_amx.c) */
    if (etok_isa_detected_hw() >= ETOK_ISA_AVX2) return ETOK_ISA_AMX;
#endif
#if defined(ETOK_ISA_EMULATED_AVX512) && ETOK_HAVE_X86_SIMD
    /* the isa_kernels_emu test build only: AVX-512 intrinsics emulated in C on an AVX2 CPU */
    if (etok_isa_detected_hw() >= ETOK_ISA_AVX2) return ETOK_ISA_AVX512;
#endif
    return etok_isa_detected_hw();
}

static int etok_isa_detected_hw(void) {
#if ETOK_HAVE_X86_SIMD
    /* A cached hardware fact (write-once, idempotent), not program state. */
    static _Atomic int cached = -1;
    int c = atomic_load_explicit(&cached, memory_order_relaxed);
    if (c < 0) {
        unsigned a = 0, b = 0, ecx1 = 0, d = 0, ebx7 = 0, ecx7 = 0;
        uint64_t xcr0 = 0;
        if (__get_cpuid(1, &a, &b, &ecx1, &d) && __get_cpuid_max(0, NULL) >= 7) __cpuid_count(7, 0, a, ebx7, ecx7, d);
        else d = 0; /* leaf 7 EDX: AMX bits */
        if ((ecx1 >> 27) & 1) { /* OSXSAVE: XGETBV is allowed */
            uint32_t lo, hi;
            __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
            xcr0 = (uint64_t)hi << 32 | lo;
        }
        c = etok_isa_level_from_cpuid(ecx1, ebx7, ecx7, xcr0);
        if (c == ETOK_ISA_AVX512 && ((d >> 24) & 1) && ((d >> 25) & 1)) {
            /* AMX: ask Linux for the tile data state (ARCH_REQ_XCOMP_PERM = 0x1023, XTILEDATA = 18) */
            const long rc = syscall(SYS_arch_prctl, 0x1023, 18);
            if (etok_isa_amx_usable(d, xcr0, rc, getenv("ETOK_ISA_AMX_XCR0"))) c = ETOK_ISA_AMX;
        }
        atomic_store_explicit(&cached, c, memory_order_relaxed);
    }
    return c;
#else
    return ETOK_ISA_SCALAR;
#endif
}

/* The active level: -1 until first use (then the detected level, or ETOK_ISA's). */
static _Atomic int isa_active = -1;

int etok_isa_force(int level, char *err, size_t errlen) {
    const int det = etok_isa_detected();
    if (level < ETOK_ISA_SCALAR || level > ETOK_ISA_AMX) {
        if (err && errlen) snprintf(err, errlen, "unknown kernel level %d (scalar, avx2, avx512 or amx)", level);
        return -1;
    }
    if (level > det) {
        if (err && errlen)
            snprintf(err, errlen, "kernel level %s is not available on this CPU (detected: %s)", etok_isa_name(level),
                     etok_isa_name(det));
        return -1;
    }
    atomic_store_explicit(&isa_active, level, memory_order_relaxed);
    return 0;
}

int etok_isa_from_env(char *err, size_t errlen) {
    const char *v = getenv(ETOK_ISA_ENV);
    if (!v) return 0;
    const int det = etok_isa_detected(), level = etok_isa_parse(v);
    if (level < 0) {
        if (err && errlen)
            snprintf(err, errlen, "%s='%.40s': unknown kernel level (scalar, avx2, avx512 or amx; detected here: %s)",
                     ETOK_ISA_ENV, v, etok_isa_name(det));
        return -1;
    }
    if (level > det) {
        if (err && errlen)
            snprintf(err, errlen, "%s=%s: this CPU does not support it (detected kernel level: %s)", ETOK_ISA_ENV, v,
                     etok_isa_name(det));
        return -1;
    }
    return etok_isa_force(level, err, errlen);
}

int etok_isa_active(void) {
    int a = atomic_load_explicit(&isa_active, memory_order_relaxed);
    if (a >= 0) return a;
    char err[256];
    if (etok_isa_from_env(err, sizeof err)) {
        fprintf(stderr, "etok: %s\n", err);
        exit(3); /* ETOK_EXIT_INPUT: a bad setting is never replaced by another level silently */
    }
    /* unset ETOK_ISA: etok_isa_default; a concurrent first call stores the same */
    int expected = -1;
    atomic_compare_exchange_strong(&isa_active, &expected, etok_isa_default(etok_isa_detected()));
    return atomic_load_explicit(&isa_active, memory_order_relaxed);
}

/* The detected level, capped at avx512: amx stays opt-in (ETOK_ISA=amx) because its prefill
 * sums are not the avx2 bits (quant_amx.c); avx512 gives avx2's bits. avx512 was opt-in until
 * a third AVX-512 CPU was measured (docs/ENGINE.md "Kernel levels"): on all three (two Xeons,
 * a Zen 5 EPYC) its zmm float prefill tiles prefilled F16 / BF16 / F32 13-44% faster, and its
 * decode kernels were faster (Q5_1 1.2-1.7x), or within each host's noise. */
int etok_isa_default(int detected) { return detected > ETOK_ISA_AVX512 ? ETOK_ISA_AVX512 : detected; }

int etok_simd_active(void) { return etok_isa_active() >= ETOK_ISA_AVX2; }

#if ETOK_HAVE_X86_SIMD
static int avx512_active(void) { return etok_isa_active() >= ETOK_ISA_AVX512; }
#endif

void etok_quantize_q8a(const float *x, etok_block_q8a *out, int64_t n) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        etok_quantize_q8a_avx2(x, out, n);
        return;
    }
#endif
    etok_quantize_q8a_ref(x, out, n);
}

float etok_vec_dot(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n) {
#if ETOK_HAVE_X86_SIMD
    if (avx512_active() && etok_avx512_handles(type)) return etok_vec_dot_avx512(type, row, xq, n);
    if (etok_simd_active()) return etok_vec_dot_avx2(type, row, xq, xf, n);
#endif
    return etok_vec_dot_ref(type, row, xq, xf, n);
}

void etok_vec_dot_multi(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n,
                        int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (avx512_active() && etok_avx512_handles(type)) {
        etok_vec_dot_multi_avx512(type, row, xq, n, nx, out, out_stride);
        return;
    }
    if (etok_simd_active()) {
        etok_vec_dot_multi_avx2(type, row, xq, xf, n, nx, out, out_stride);
        return;
    }
#endif
    for (int j = 0; j < nx; j++)
        out[(size_t)j * out_stride] =
            etok_vec_dot_ref(type, row, xq ? xq + (size_t)j * (size_t)(n / ETOK_QK) : NULL, xf ? xf + (size_t)j * (size_t)n : NULL, n);
}

void etok_vec_axpy_ref(uint32_t type, float a, const void *row, float *y, int64_t n) {
    if (type == ETOK_T_F32) {
        const float *r = row;
        for (int64_t i = 0; i < n; i++) y[i] += a * r[i];
    } else if (type == ETOK_T_F16) {
        const uint8_t *p = row;
        for (int64_t i = 0; i < n; i++) {
            etok_f16 h;
            memcpy(&h, p + 2 * i, 2);
            y[i] += a * F16(h);
        }
    }
}

void etok_vec_axpy(uint32_t type, float a, const void *row, float *y, int64_t n) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        etok_vec_axpy_avx2(type, a, row, y, n);
        return;
    }
#endif
    etok_vec_axpy_ref(type, a, row, y, n);
}

void etok_matmul_rows(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                      const etok_block_q8a *xq, const float *xf, int64_t n, int nx, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_amx_prefill(type, ETOK_AMX_FILE, w, row_bytes, r0, r1, xq, n, nx, out, out_stride)) return; /* quant_amx.c */
    if (avx512_active() && etok_avx512_handles(type)) {
        etok_matmul_rows_avx512(type, w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
    if (etok_simd_active() && type == ETOK_T_Q8_0 && nx > 1) { /* prefill: rows x tokens tiles (quant_q8_0.c) */
        etok_matmul_q8_0(w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
        return;
    }
    if (etok_simd_active()) {
        etok_matmul_rows_avx2(type, w, row_bytes, r0, r1, xq, xf, n, nx, out, out_stride);
        return;
    }
#endif
    for (int64_t r = r0; r < r1; r++)
        etok_vec_dot_multi(type, w + (size_t)r * row_bytes, xq, xf, n, nx, out + r, out_stride);
}

/* The single-head fallbacks: every position through the dispatched dot / axpy (SIMD where
 * active), accumulated in 8 lanes by absolute position and reduced pairwise. */
static void attn_scores_each(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd,
                             float scale, float *out) {
    for (int s = 0; s < n; s++) out[s] = etok_vec_dot(type, k0 + (size_t)s * stride, NULL, q, hd) * scale;
}

static void lanes_reduce(float lanes[8][512], int hd, float *out) {
    for (int i = 0; i < hd; i++) {
        float t0 = lanes[4][i] + lanes[0][i], t1 = lanes[5][i] + lanes[1][i], t2 = lanes[6][i] + lanes[2][i],
              t3 = lanes[7][i] + lanes[3][i];
        out[i] = (t0 + t2) + (t1 + t3);
    }
}

static void attn_accum_each(uint32_t type, const float *w, int n_seg, const uint8_t *const *v0, const int *first_pos,
                            const int *n, size_t stride, int hd, float *out,
                            void (*axpy)(uint32_t, float, const void *, float *, int64_t)) {
    float lanes[8][512];
    for (int k = 0; k < 8; k++) memset(lanes[k], 0, (size_t)hd * sizeof(float));
    for (int j = 0; j < n_seg; w += n[j], j++)
        for (int s = 0; s < n[j]; s++) axpy(type, w[s], v0[j] + (size_t)s * stride, lanes[(first_pos[j] + s) % 8], hd);
    lanes_reduce(lanes, hd, out);
}

void etok_attn_scores_ref(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                          float *out) {
    for (int s = 0; s < n; s++) out[s] = etok_vec_dot_ref(type, k0 + (size_t)s * stride, NULL, q, hd) * scale;
}

void etok_attn_accum_ref(uint32_t type, const float *w, const uint8_t *v0, size_t stride, int first_pos, int n, int hd,
                         float *out) {
    attn_accum_each(type, w, 1, &v0, &first_pos, &n, stride, hd, out, etok_vec_axpy_ref);
}

/* One cached row as floats (F16 converted exactly; F32 copied). */
static void kv_row_f32(uint32_t type, const uint8_t *row, float *buf, int hd) {
    if (type == ETOK_T_F16)
        etok_dequantize_row(ETOK_T_F16, row, buf, hd);
    else
        memcpy(buf, row, (size_t)hd * sizeof(float));
}

/* Scalar grouped scores: the row converted once, then per head the sum of etok_vec_dot_ref
 * (sum += value * q[i] in order: an F16 value converts to float exactly, so converting first
 * changes nothing). */
void etok_attn_scores_multi_ref(uint32_t type, const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                float scale, float *out, size_t out_stride) {
    float buf[512];
    for (int s = 0; s < n; s++) {
        kv_row_f32(type, k0 + (size_t)s * stride, buf, hd);
        for (int h = 0; h < g; h++) {
            const float *qh = q + (size_t)h * (size_t)hd;
            float sum = 0;
            for (int i = 0; i < hd; i++) sum += buf[i] * qh[i];
            out[(size_t)h * out_stride + (size_t)s] = sum * scale;
        }
    }
}

/* Scalar grouped accumulation, heads four at a time: per position the row is converted once
 * and added into each head's lane (y[i] += a * value, as etok_vec_axpy_ref). */
void etok_attn_accum_multi_ref(uint32_t type, const float *w, size_t w_stride, int g, int n_seg,
                               const uint8_t *const *v0, const int *first_pos, const int *n, size_t stride, int hd,
                               float *out) {
    enum { G = 4 };
    float buf[512];
    float lanes[G][8][512];
    for (int h0 = 0; h0 < g; h0 += G) {
        const int gc = g - h0 < G ? g - h0 : G;
        for (int h = 0; h < gc; h++)
            for (int k = 0; k < 8; k++) memset(lanes[h][k], 0, (size_t)hd * sizeof(float));
        for (int j = 0, w0 = 0; j < n_seg; w0 += n[j], j++)
            for (int s = 0; s < n[j]; s++) {
                kv_row_f32(type, v0[j] + (size_t)s * stride, buf, hd);
                const int lane = (first_pos[j] + s) % 8;
                for (int h = 0; h < gc; h++) {
                    const float a = w[(size_t)(h0 + h) * w_stride + (size_t)(w0 + s)];
                    float *y = lanes[h][lane];
                    for (int i = 0; i < hd; i++) y[i] += a * buf[i];
                }
            }
        for (int h = 0; h < gc; h++) lanes_reduce(lanes[h], hd, out + (size_t)(h0 + h) * (size_t)hd);
    }
}

void etok_attn_scores(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                      float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && type == ETOK_T_F16 && hd % 8 == 0) {
        etok_attn_scores_avx2(type, q, k0, stride, n, hd, scale, out);
        return;
    }
#endif
    attn_scores_each(type, q, k0, stride, n, hd, scale, out);
}

void etok_attn_accum(uint32_t type, const float *w, const uint8_t *v0, size_t stride, int first_pos, int n, int hd,
                     float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && type == ETOK_T_F16 && hd % 8 == 0 && hd <= 512) {
        etok_attn_accum_avx2(type, w, v0, stride, first_pos, n, hd, out);
        return;
    }
#endif
    attn_accum_each(type, w, 1, &v0, &first_pos, &n, stride, hd, out, etok_vec_axpy);
}

void etok_attn_scores_multi(uint32_t type, const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                            float scale, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        if (type == ETOK_T_F16 && hd % 8 == 0) {
            etok_attn_scores_multi_avx2(q, g, k0, stride, n, hd, scale, out, out_stride);
        } else { /* what etok_attn_scores does for each head, position-major (the row stays in L1) */
            for (int s = 0; s < n; s++)
                for (int h = 0; h < g; h++)
                    out[(size_t)h * out_stride + (size_t)s] =
                        etok_vec_dot(type, k0 + (size_t)s * stride, NULL, q + (size_t)h * (size_t)hd, hd) * scale;
        }
        return;
    }
#endif
    etok_attn_scores_multi_ref(type, q, g, k0, stride, n, hd, scale, out, out_stride);
}

void etok_attn_accum_multi(uint32_t type, const float *w, size_t w_stride, int g, int n_seg, const uint8_t *const *v0,
                           const int *first_pos, const int *n, size_t stride, int hd, float *out) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        if (type == ETOK_T_F16 && hd % 8 == 0 && hd <= 512)
            etok_attn_accum_multi_avx2(w, w_stride, g, n_seg, v0, first_pos, n, stride, hd, out);
        else
            for (int h = 0; h < g; h++)
                attn_accum_each(type, w + (size_t)h * w_stride, n_seg, v0, first_pos, n, stride, hd,
                                out + (size_t)h * (size_t)hd, etok_vec_axpy);
        return;
    }
#endif
    etok_attn_accum_multi_ref(type, w, w_stride, g, n_seg, v0, first_pos, n, stride, hd, out);
}

void etok_round_f16(float *x, int n) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        etok_round_f16_avx2(x, n);
        return;
    }
#endif
    for (int i = 0; i < n; i++) x[i] = etok_f16_to_f32(etok_f32_to_f16(x[i]));
}

void etok_f32_to_f16_row(const float *x, void *out, int n) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active()) {
        etok_f32_to_f16_row_avx2(x, out, n);
        return;
    }
#endif
    etok_quantize_row(ETOK_T_F16, x, out, n);
}
