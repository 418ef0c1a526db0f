/* avx512_emu.h — the AVX-512 intrinsics the engine's AVX-512 kernels use, re-implemented in
 * plain C from their documented semantics (Intel's intrinsics guide), for the isa_kernels_emu
 * test: quant_avx512.c, quant_k.c and quant_amx.c, included after it by wrapper files, run on any AVX2
 * CPU, so the kernels' logic (lane mapping, blends, masks, the order of the float operations)
 * is checked against the AVX2 kernels by tests/isa/isa_check.h on every machine.
 *
 * What it does not check: that the hardware instructions behave as written here (that is the
 * emulator run of isa_kernels, or an AVX-512 CPU; docs/ENGINE.md "Kernel levels"). Each
 * function below follows the guide's pseudo-code; none is copied from elsewhere.
 * The kernels are compiled for AVX2 in this build (ETOK_AVX512_TARGET redefined), so the
 * 64-byte vector types are plain GCC/clang vectors held in memory (built with -Wno-psabi: the
 * ABI note about passing them without AVX-512 concerns only these inline functions). */
#ifndef ETOK_TESTS_AVX512_EMU_H
#define ETOK_TESTS_AVX512_EMU_H

#include <immintrin.h>
#include <math.h>

#include <stdint.h>
#include <string.h>

#define ETOK_AVX512_TARGET __attribute__((target("avx2,fma,f16c")))
/* the kernels' etok_avx512_emulated() / etok_quant_k_avx512_emulated() then say 1 */
#define ETOK_AVX512_EMULATED 1
/* every emulation function with the kernels' own target: a caller and a callee compiled for
 * different features pass 32- and 64-byte vectors differently when not inlined (clang -O0 and
 * ASan builds garbled them before) */
#define EMU static inline __attribute__((target("avx2,fma,f16c")))

typedef union {
    int8_t b[64];
    uint8_t ub[64];
    int16_t w[32];
    uint16_t uw[32];
    int32_t d[16];
    int64_t q[8];
    float f[16];
} emu512;

typedef union {
    int8_t b[32];
    uint8_t ub[32];
    int32_t d[8];
} emu256;

#define EMU_IN(u, v) memcpy(&(u), &(v), sizeof(u))
EMU __m512i emu_i(const emu512 *u) { __m512i v; memcpy(&v, u, 64); return v; }
EMU __m512 emu_f(const emu512 *u) { __m512 v; memcpy(&v, u, 64); return v; }
EMU __m256i emu_i256(const emu256 *u) { __m256i v; memcpy(&v, u, 32); return v; }

/* ---- construction, casts, moves ---- */
EMU __m512i emu_setzero_si512(void) { emu512 r; memset(&r, 0, 64); return emu_i(&r); }
EMU __m512 emu_setzero_ps(void) { emu512 r; memset(&r, 0, 64); return emu_f(&r); }
EMU __m512i emu_set1_epi8(char c) { emu512 r; memset(r.b, c, 64); return emu_i(&r); }
EMU __m512i emu_set1_epi16(short s) { emu512 r; for (int i = 0; i < 32; i++) r.w[i] = s; return emu_i(&r); }
EMU __m512 emu_set1_ps(float f) { emu512 r; for (int i = 0; i < 16; i++) r.f[i] = f; return emu_f(&r); }
EMU __m512i emu_set_epi16(short e31, short e30, short e29, short e28, short e27, short e26, short e25, short e24,
                                    short e23, short e22, short e21, short e20, short e19, short e18, short e17, short e16,
                                    short e15, short e14, short e13, short e12, short e11, short e10, short e9, short e8,
                                    short e7, short e6, short e5, short e4, short e3, short e2, short e1, short e0) {
    const short e[32] = {e0,  e1,  e2,  e3,  e4,  e5,  e6,  e7,  e8,  e9,  e10, e11, e12, e13, e14, e15,
                         e16, e17, e18, e19, e20, e21, e22, e23, e24, e25, e26, e27, e28, e29, e30, e31};
    emu512 r;
    for (int i = 0; i < 32; i++) r.w[i] = e[i];
    return emu_i(&r);
}
EMU __m512i emu_loadu_si512(const void *p) { emu512 r; memcpy(&r, p, 64); return emu_i(&r); }
EMU __m512 emu_load_ps(const void *p) { emu512 r; memcpy(&r, p, 64); return emu_f(&r); } /* (quant_amx.c: 64-byte aligned) */
EMU void emu_store_ps(void *p, __m512 a) { memcpy(p, &a, 64); }
EMU void emu_storeu_ps(void *p, __m512 a) { memcpy(p, &a, 64); }
EMU __m512i emu_set1_epi32(int v) { emu512 r; for (int i = 0; i < 16; i++) r.d[i] = v; return emu_i(&r); }
EMU __m512 emu_cvtph_ps(__m256i a) { /* F16 to F32: exact */
    emu512 r;
    __m128i h[2];
    memcpy(h, &a, 32);
    for (int k = 0; k < 2; k++) {
        float f[8];
        _mm256_storeu_ps(f, _mm256_cvtph_ps(h[k]));
        memcpy(&r.f[8 * k], f, 32);
    }
    return emu_f(&r);
}
EMU __m512i emu_castsi256_si512(__m256i a) { emu512 r; memset(&r, 0, 64); memcpy(&r, &a, 32); return emu_i(&r); }
EMU __m512i emu_castsi128_si512(__m128i a) { emu512 r; memset(&r, 0, 64); memcpy(&r, &a, 16); return emu_i(&r); }
EMU __m256i emu_castsi512_si256(__m512i a) { __m256i r; memcpy(&r, &a, 32); return r; }
EMU __m256 emu_castps512_ps256(__m512 a) { __m256 r; memcpy(&r, &a, 32); return r; }
EMU __m512d emu_castps_pd(__m512 a) { __m512d r; memcpy(&r, &a, 64); return r; }
EMU __m256i emu_extracti64x4_epi64(__m512i a, int imm) { __m256i r; memcpy(&r, (const char *)&a + 32 * (imm & 1), 32); return r; }
EMU __m256d emu_extractf64x4_pd(__m512d a, int imm) { __m256d r; memcpy(&r, (const char *)&a + 32 * (imm & 1), 32); return r; }
EMU __m512i emu_inserti64x4(__m512i a, __m256i b, int imm) { memcpy((char *)&a + 32 * (imm & 1), &b, 32); return a; }
EMU __m512i emu_broadcast_i64x4(__m256i a) { emu512 r; memcpy(r.b, &a, 32); memcpy(r.b + 32, &a, 32); return emu_i(&r); }
EMU __m512i emu_broadcast_i32x4(__m128i a) {
    emu512 r;
    for (int k = 0; k < 4; k++) memcpy(r.b + 16 * k, &a, 16);
    return emu_i(&r);
}
EMU __m512i emu_shuffle_i64x2(__m512i a, __m512i b, int imm) { /* dst lanes 0,1 from a; 2,3 from b */
    emu512 x, y, r;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int j = 0; j < 4; j++) memcpy(r.b + 16 * j, (j < 2 ? x.b : y.b) + 16 * ((imm >> (2 * j)) & 3), 16);
    return emu_i(&r);
}

/* ---- bytewise and wordwise ---- */
EMU __m512i emu_and_si512(__m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 8; i++) x.q[i] &= y.q[i];
    return emu_i(&x);
}
EMU __m512i emu_or_si512(__m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 8; i++) x.q[i] |= y.q[i];
    return emu_i(&x);
}
EMU __m512i emu_sub_epi8(__m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 64; i++) x.ub[i] = (uint8_t)(x.ub[i] - y.ub[i]);
    return emu_i(&x);
}
EMU __m512i emu_sub_epi16(__m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 32; i++) x.uw[i] = (uint16_t)(x.uw[i] - y.uw[i]);
    return emu_i(&x);
}
EMU __m512i emu_abs_epi8(__m512i a) {
    emu512 x;
    EMU_IN(x, a);
    for (int i = 0; i < 64; i++) x.ub[i] = (uint8_t)(x.b[i] < 0 ? -(int)x.b[i] : x.b[i]); /* -128 -> 0x80 */
    return emu_i(&x);
}
EMU __m512i emu_srli_epi16(__m512i a, unsigned n) {
    emu512 x;
    EMU_IN(x, a);
    for (int i = 0; i < 32; i++) x.uw[i] = (uint16_t)(n > 15 ? 0 : x.uw[i] >> n);
    return emu_i(&x);
}
EMU __m512i emu_slli_epi16(__m512i a, unsigned n) {
    emu512 x;
    EMU_IN(x, a);
    for (int i = 0; i < 32; i++) x.uw[i] = (uint16_t)(n > 15 ? 0 : x.uw[i] << n);
    return emu_i(&x);
}
EMU __m512i emu_shuffle_epi8(__m512i a, __m512i b) { /* within each 128-bit lane */
    emu512 x, y, r;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 64; i++) r.ub[i] = (y.ub[i] & 0x80) ? 0 : x.ub[(i & ~15) + (y.ub[i] & 15)];
    return emu_i(&r);
}
EMU __m512i emu_permutexvar_epi16(__m512i idx, __m512i a) {
    emu512 x, y, r;
    EMU_IN(x, idx);
    EMU_IN(y, a);
    for (int i = 0; i < 32; i++) r.w[i] = y.w[x.uw[i] & 31];
    return emu_i(&r);
}
EMU __m512i emu_maddubs_epi16(__m512i a, __m512i b) { /* u8 x s8 pairs, saturated to int16 */
    emu512 x, y, r;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 32; i++) {
        int s = x.ub[2 * i] * y.b[2 * i] + x.ub[2 * i + 1] * y.b[2 * i + 1];
        r.w[i] = (int16_t)(s > 32767 ? 32767 : s < -32768 ? -32768 : s);
    }
    return emu_i(&r);
}

/* ---- masks ---- */
EMU __m512i emu_maskz_mov_epi8(__mmask64 k, __m512i a) {
    emu512 x;
    EMU_IN(x, a);
    for (int i = 0; i < 64; i++)
        if (!((k >> i) & 1)) x.b[i] = 0;
    return emu_i(&x);
}
EMU __m512i emu_mask_sub_epi8(__m512i src, __mmask64 k, __m512i a, __m512i b) {
    emu512 s, x, y;
    EMU_IN(s, src);
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 64; i++)
        if ((k >> i) & 1) s.ub[i] = (uint8_t)(x.ub[i] - y.ub[i]);
    return emu_i(&s);
}
EMU __mmask64 emu_movepi8_mask(__m512i a) {
    emu512 x;
    EMU_IN(x, a);
    __mmask64 k = 0;
    for (int i = 0; i < 64; i++) k |= (__mmask64)(x.b[i] < 0) << i;
    return k;
}
EMU __m512i emu_mask_blend_epi64(__mmask8 k, __m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 8; i++)
        if ((k >> i) & 1) x.q[i] = y.q[i];
    return emu_i(&x);
}
EMU __m512 emu_mask_blend_ps(__mmask16 k, __m512 a, __m512 b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 16; i++)
        if ((k >> i) & 1) x.f[i] = y.f[i];
    return emu_f(&x);
}

/* ---- VNNI and float ---- */
EMU __m512i emu_dpbusd_epi32(__m512i src, __m512i a, __m512i b) { /* no saturation */
    emu512 s, x, y;
    EMU_IN(s, src);
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int j = 0; j < 16; j++) {
        int64_t t = s.d[j];
        for (int k = 0; k < 4; k++) t += x.ub[4 * j + k] * y.b[4 * j + k];
        s.d[j] = (int32_t)(uint32_t)t;
    }
    return emu_i(&s);
}
EMU __m512i emu_dpwssd_epi32(__m512i src, __m512i a, __m512i b) { /* no saturation */
    emu512 s, x, y;
    EMU_IN(s, src);
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int j = 0; j < 16; j++)
        s.d[j] = (int32_t)(uint32_t)((int64_t)s.d[j] + x.w[2 * j] * y.w[2 * j] + x.w[2 * j + 1] * y.w[2 * j + 1]);
    return emu_i(&s);
}
EMU __m512 emu_cvtepi32_ps(__m512i a) {
    emu512 x, r;
    EMU_IN(x, a);
    for (int i = 0; i < 16; i++) r.f[i] = (float)x.d[i]; /* round to nearest, as MXCSR's default */
    return emu_f(&r);
}
EMU __m512i emu_sub_epi32(__m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 16; i++) x.d[i] = (int32_t)((uint32_t)x.d[i] - (uint32_t)y.d[i]);
    return emu_i(&x);
}
EMU __m512i emu_add_epi32(__m512i a, __m512i b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 16; i++) x.d[i] = (int32_t)((uint32_t)x.d[i] + (uint32_t)y.d[i]);
    return emu_i(&x);
}
EMU __m512i emu_slli_epi32(__m512i a, unsigned n) {
    emu512 x;
    EMU_IN(x, a);
    for (int i = 0; i < 16; i++) x.d[i] = (int32_t)(n > 31 ? 0 : (uint32_t)x.d[i] << n);
    return emu_i(&x);
}
EMU __m512 emu_add_ps(__m512 a, __m512 b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 16; i++) x.f[i] = x.f[i] + y.f[i];
    return emu_f(&x);
}
EMU __m512 emu_mul_ps(__m512 a, __m512 b) {
    emu512 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 16; i++) x.f[i] = x.f[i] * y.f[i]; /* one rounding, as the instruction */
    return emu_f(&x);
}
EMU __m512 emu_fmadd_ps(__m512 a, __m512 b, __m512 c) {
    emu512 x, y, z;
    EMU_IN(x, a);
    EMU_IN(y, b);
    EMU_IN(z, c);
    for (int i = 0; i < 16; i++) z.f[i] = fmaf(x.f[i], y.f[i], z.f[i]);
    return emu_f(&z);
}

/* ---- the 256-bit (AVX512VL) forms ---- */
EMU __m256i emu256_maskz_mov_epi8(__mmask32 k, __m256i a) {
    emu256 x;
    EMU_IN(x, a);
    for (int i = 0; i < 32; i++)
        if (!((k >> i) & 1)) x.b[i] = 0;
    return emu_i256(&x);
}
EMU __m256i emu256_mask_sub_epi8(__m256i src, __mmask32 k, __m256i a, __m256i b) {
    emu256 s, x, y;
    EMU_IN(s, src);
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int i = 0; i < 32; i++)
        if ((k >> i) & 1) s.ub[i] = (uint8_t)(x.ub[i] - y.ub[i]);
    return emu_i256(&s);
}
EMU __mmask32 emu256_movepi8_mask(__m256i a) {
    emu256 x;
    EMU_IN(x, a);
    __mmask32 k = 0;
    for (int i = 0; i < 32; i++) k |= (__mmask32)(x.b[i] < 0) << i;
    return k;
}
EMU __mmask32 emu256_test_epi8_mask(__m256i a, __m256i b) {
    emu256 x, y;
    EMU_IN(x, a);
    EMU_IN(y, b);
    __mmask32 k = 0;
    for (int i = 0; i < 32; i++) k |= (__mmask32)((x.ub[i] & y.ub[i]) != 0) << i;
    return k;
}
EMU __m256i emu256_dpbusd_epi32(__m256i src, __m256i a, __m256i b) {
    emu256 s, x, y;
    EMU_IN(s, src);
    EMU_IN(x, a);
    EMU_IN(y, b);
    for (int j = 0; j < 8; j++) {
        int64_t t = s.d[j];
        for (int k = 0; k < 4; k++) t += x.ub[4 * j + k] * y.b[4 * j + k];
        s.d[j] = (int32_t)(uint32_t)t;
    }
    return emu_i256(&s);
}

/* the names the kernels use (some are macros in the compilers' headers) */
#undef _mm512_setzero_si512
#define _mm512_setzero_si512 emu_setzero_si512
#undef _mm512_setzero_ps
#define _mm512_setzero_ps emu_setzero_ps
#undef _mm512_set1_epi8
#define _mm512_set1_epi8 emu_set1_epi8
#undef _mm512_set1_epi16
#define _mm512_set1_epi16 emu_set1_epi16
#undef _mm512_set1_ps
#define _mm512_set1_ps emu_set1_ps
#undef _mm512_set_epi16
#define _mm512_set_epi16 emu_set_epi16
#undef _mm512_loadu_si512
#define _mm512_loadu_si512 emu_loadu_si512
#undef _mm512_castsi256_si512
#define _mm512_castsi256_si512 emu_castsi256_si512
#undef _mm512_castsi128_si512
#define _mm512_castsi128_si512 emu_castsi128_si512
#undef _mm512_castsi512_si256
#define _mm512_castsi512_si256 emu_castsi512_si256
#undef _mm512_castps512_ps256
#define _mm512_castps512_ps256 emu_castps512_ps256
#undef _mm512_castps_pd
#define _mm512_castps_pd emu_castps_pd
#undef _mm512_extracti64x4_epi64
#define _mm512_extracti64x4_epi64 emu_extracti64x4_epi64
#undef _mm512_extractf64x4_pd
#define _mm512_extractf64x4_pd emu_extractf64x4_pd
#undef _mm512_inserti64x4
#define _mm512_inserti64x4 emu_inserti64x4
#undef _mm512_broadcast_i64x4
#define _mm512_broadcast_i64x4 emu_broadcast_i64x4
#undef _mm512_broadcast_i32x4
#define _mm512_broadcast_i32x4 emu_broadcast_i32x4
#undef _mm512_shuffle_i64x2
#define _mm512_shuffle_i64x2 emu_shuffle_i64x2
#undef _mm512_and_si512
#define _mm512_and_si512 emu_and_si512
#undef _mm512_or_si512
#define _mm512_or_si512 emu_or_si512
#undef _mm512_sub_epi8
#define _mm512_sub_epi8 emu_sub_epi8
#undef _mm512_sub_epi16
#define _mm512_sub_epi16 emu_sub_epi16
#undef _mm512_abs_epi8
#define _mm512_abs_epi8 emu_abs_epi8
#undef _mm512_srli_epi16
#define _mm512_srli_epi16 emu_srli_epi16
#undef _mm512_slli_epi16
#define _mm512_slli_epi16 emu_slli_epi16
#undef _mm512_shuffle_epi8
#define _mm512_shuffle_epi8 emu_shuffle_epi8
#undef _mm512_permutexvar_epi16
#define _mm512_permutexvar_epi16 emu_permutexvar_epi16
#undef _mm512_maddubs_epi16
#define _mm512_maddubs_epi16 emu_maddubs_epi16
#undef _mm512_maskz_mov_epi8
#define _mm512_maskz_mov_epi8 emu_maskz_mov_epi8
#undef _mm512_mask_sub_epi8
#define _mm512_mask_sub_epi8 emu_mask_sub_epi8
#undef _mm512_movepi8_mask
#define _mm512_movepi8_mask emu_movepi8_mask
#undef _mm512_mask_blend_epi64
#define _mm512_mask_blend_epi64 emu_mask_blend_epi64
#undef _mm512_mask_blend_ps
#define _mm512_mask_blend_ps emu_mask_blend_ps
#undef _mm512_dpbusd_epi32
#define _mm512_dpbusd_epi32 emu_dpbusd_epi32
#undef _mm512_dpwssd_epi32
#define _mm512_dpwssd_epi32 emu_dpwssd_epi32
#undef _mm512_cvtepi32_ps
#define _mm512_cvtepi32_ps emu_cvtepi32_ps
#undef _mm512_fmadd_ps
#define _mm512_fmadd_ps emu_fmadd_ps
#undef _mm512_sub_epi32
#define _mm512_sub_epi32 emu_sub_epi32
#undef _mm512_add_epi32
#define _mm512_add_epi32 emu_add_epi32
#undef _mm512_slli_epi32
#define _mm512_slli_epi32 emu_slli_epi32
#undef _mm512_add_ps
#define _mm512_add_ps emu_add_ps
#undef _mm512_storeu_ps
#define _mm512_storeu_ps emu_storeu_ps
#undef _mm512_set1_epi32
#define _mm512_set1_epi32 emu_set1_epi32
#undef _mm512_cvtph_ps
#define _mm512_cvtph_ps emu_cvtph_ps
#undef _mm512_mul_ps
#define _mm512_mul_ps emu_mul_ps
#undef _mm512_load_ps
#define _mm512_load_ps emu_load_ps
#undef _mm512_store_ps
#define _mm512_store_ps emu_store_ps
#undef _mm256_maskz_mov_epi8
#define _mm256_maskz_mov_epi8 emu256_maskz_mov_epi8
#undef _mm256_mask_sub_epi8
#define _mm256_mask_sub_epi8 emu256_mask_sub_epi8
#undef _mm256_movepi8_mask
#define _mm256_movepi8_mask emu256_movepi8_mask
#undef _mm256_test_epi8_mask
#define _mm256_test_epi8_mask emu256_test_epi8_mask
#undef _mm256_dpbusd_epi32
#define _mm256_dpbusd_epi32 emu256_dpbusd_epi32

#endif
