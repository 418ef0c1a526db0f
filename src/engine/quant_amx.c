/* quant_amx.c — the AMX-INT8 prefill kernel (kernel level amx, docs/ENGINE.md "Kernel levels"):
 * weight rows of the 32-value block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL), in the
 * file's layout or a repacked copy, against q8a activations for many tokens at once, and its
 * scalar reference.
 *
 * Every block of those formats is 32 integers v_k that fit in a signed byte, a scale d and, for
 * Q4_1 / Q5_1, a minimum m: w_k = d * v_k + m (Q8_0: v = q; Q4_0: q - 8; Q5_0: q - 16; Q4_1 /
 * Q5_1: q itself, 0..15 / 0..31; IQ4_NL: the table's value, -127..113). Per 16 rows x 16
 * tokens, each block is one TDPBSSD (signed x signed) of a 16x32-byte activation tile (A: token
 * rows, straight from the q8a blocks) with an 8x64-byte weight tile (B: the block's 16 rows'
 * integers, four bytes per column), giving every (token, row, block) integer sum exactly. Then,
 * in float, for each (token, row), blocks in ascending order:
 *     acc = 0;  acc = fma(d_w[b] * d_a[b], (float)isum[b], acc)   (d_w: the F16 scale, exact)
 *               acc = fma(m_w[b], s_a[b], acc)    (Q4_1 / Q5_1 only; s_a = d_a * sum(a): q8a's s)
 * and out = acc. etok_matmul_rows_amx_ref computes exactly this order (fmaf), so the kernel
 * equals it bit for bit. For Q4_0 that is the engine's AVX2 Q4_0 chain too (llama.cpp's 8-row
 * order, quant_q4_0.c), so Q4_0 keeps its bits at this level; for the others it is not the AVX2
 * kernels' order (8 lane partial sums per block, then
 * a final reduction): the two agree within a tolerance relative to the sum of |terms|
 * (tests/isa/isa_check.h isa_check_amx; the measured figure is in docs/ENGINE.md).
 * Rows and tokens outside a full 16-group are padded (zero weights / zero activations, their
 * results dropped), so every row of every call takes this path and the bits do not depend on
 * how the matmul rows are split between threads. The kernel runs only at level amx (forced:
 * ETOK_ISA=amx) for those formats with at least ETOK_AMX_MIN_TOKENS tokens (etok_amx_applies).
 *
 * Owns: the AMX tile layout and the amx numerics. Does not own the dispatch (quant.c), the
 * detection or the OS permission (quant.c, etok_isa_detected). With ETOK_AMX_EMULATED (the
 * isa_kernels_emu test build only) the three tile operations are done in C, to test the
 * kernel's logic on a CPU without AMX; the float part is AVX2 either way. */
#include <math.h>
#include <string.h>

#include "engine/quant_simd.h"

#define AMX_BLOCK_CHUNK 64 /* weight blocks repacked at a time (32 KiB of B tiles on the stack) */

/* Q4_1 and Q5_1 carry a minimum per block (w = d v + m); the others do not. */
static int has_min(uint32_t type) { return type == ETOK_T_Q4_1 || type == ETOK_T_Q5_1; }

int etok_amx_applies(uint32_t type, int nx) {
    return nx >= ETOK_AMX_MIN_TOKENS && (type == ETOK_T_Q8_0 || type == ETOK_T_Q4_0 || type == ETOK_T_Q4_1 ||
                                         type == ETOK_T_Q5_0 || type == ETOK_T_Q5_1 || type == ETOK_T_IQ4_NL);
}

/* Block i of row r as its 32 integers, its scale (returned) and minimum (*m; 0 for the formats
 * without one), read from the file's layout or from a repacked copy through its get_block. */
static float block_ints(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes, int64_t n,
                        int64_t r, int64_t i, int8_t v[ETOK_QK], float *m) {
    union {
        etok_block_q8_0 q8_0;
        etok_block_q4_0 q4_0;
        etok_block_q4_1 q4_1;
        etok_block_q5_0 q5_0;
        etok_block_q5_1 q5_1;
        etok_block_iq4_nl iq4;
    } u;
    const void *blk = &u;
    switch (layout) {
    case ETOK_AMX_Q8X4: etok_q8x4_get_block(w, n, r, i, &u.q8_0); break;
    case ETOK_AMX_Q4_0X8: etok_q4_0x8_get_block(w, n, r, i, &u.q4_0); break;
    case ETOK_AMX_Q41X8: etok_q41x8_get_block(type, w, n, r, i, &u); break;
    case ETOK_AMX_Q50X8: etok_q50x8_get_block(w, n, r, i, &u.q5_0); break;
    case ETOK_AMX_IQ4NLX8: etok_iq4nlx8_get_block(w, n, r, i, &u.iq4); break;
    default: blk = w + (size_t)r * row_bytes + (size_t)i * (size_t)etok_type_block_bytes(type); break;
    }
    *m = 0.0f;
    etok_f16 d;
    memcpy(&d, blk, 2);
    const uint8_t *qs = NULL;
    uint32_t qh = 0;
    int off = 0; /* subtracted from the 4- or 5-bit quant */
    switch (type) {
    case ETOK_T_Q8_0: memcpy(v, ((const etok_block_q8_0 *)blk)->qs, ETOK_QK); return etok_f16_to_f32(d);
    case ETOK_T_Q4_0: qs = ((const etok_block_q4_0 *)blk)->qs, off = 8; break;
    case ETOK_T_IQ4_NL: qs = ((const etok_block_iq4_nl *)blk)->qs; break;
    case ETOK_T_Q4_1: qs = ((const etok_block_q4_1 *)blk)->qs; break;
    case ETOK_T_Q5_0:
        qs = ((const etok_block_q5_0 *)blk)->qs, off = 16;
        memcpy(&qh, ((const etok_block_q5_0 *)blk)->qh, 4);
        break;
    default: /* Q5_1 */
        qs = ((const etok_block_q5_1 *)blk)->qs;
        memcpy(&qh, ((const etok_block_q5_1 *)blk)->qh, 4);
        break;
    }
    if (has_min(type)) {
        etok_f16 mh;
        memcpy(&mh, (const uint8_t *)blk + 2, 2);
        *m = etok_f16_to_f32(mh);
    }
    for (int k = 0; k < ETOK_QK; k++) {
        const int nib = k < ETOK_QK / 2 ? qs[k] & 0x0F : qs[k - ETOK_QK / 2] >> 4;
        const int q = nib | (int)((qh >> k) & 1u) << 4;
        v[k] = (int8_t)(type == ETOK_T_IQ4_NL ? etok_iq4nl_values[nib] : q - off);
    }
    return etok_f16_to_f32(d);
}

void etok_matmul_rows_amx_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                              const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++) {
            const etok_block_q8a *x = xq + (size_t)j * (size_t)nb;
            float acc = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int8_t v[ETOK_QK];
                float m;
                const float d = block_ints(type, ETOK_AMX_FILE, w, row_bytes, n, r, i, v, &m);
                int32_t s = 0;
                for (int k = 0; k < ETOK_QK; k++) s += (int32_t)v[k] * (int32_t)x[i].qs[k];
                acc = fmaf(d * x[i].d, (float)s, acc);
                if (has_min(type)) acc = fmaf(m, x[i].s, acc);
            }
            out[(size_t)j * out_stride + (size_t)r] = acc;
        }
}

#if ETOK_HAVE_X86_SIMD

#ifdef ETOK_AMX_EMULATED
#define ETOK_AMX_TARGET ETOK_AVX2_TARGET
#else
#define ETOK_AMX_TARGET __attribute__((target("avx2,fma,f16c,amx-tile,amx-int8")))
#endif

/* The 64-byte tile configuration (palette 1): tile 0 = C (16 x 16 int32), 1 = A (16 tokens x
 * 32 bytes), 2 = B (8 rows x 64 bytes: 4 consecutive K values of each of 16 weight rows). */
typedef struct {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} amx_tilecfg;

/* c[t][r] = sum_k a[t][k] * w_r[k] over one block (k < 32), exactly, signed x signed. */
static ETOK_AMX_TARGET void amx_block(const int8_t *a, size_t a_stride, const int8_t *bt, int32_t c[16][16]) {
#ifdef ETOK_AMX_EMULATED
    for (int t = 0; t < 16; t++)
        for (int r = 0; r < 16; r++) {
            int32_t s = 0;
            for (int k = 0; k < ETOK_QK; k++) s += (int32_t)a[(size_t)t * a_stride + (size_t)k] * (int32_t)bt[(k / 4) * 64 + r * 4 + k % 4];
            c[t][r] = s;
        }
#else
    _tile_zero(0);
    _tile_loadd(1, a, a_stride);
    _tile_loadd(2, bt, 64);
    _tile_dpbssd(0, 1, 2);
    _tile_stored(0, c, 64);
#endif
}

static ETOK_AMX_TARGET void amx_config(void) {
#ifndef ETOK_AMX_EMULATED
    amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    cfg.rows[0] = 16, cfg.colsb[0] = 64;
    cfg.rows[1] = 16, cfg.colsb[1] = ETOK_QK;
    cfg.rows[2] = ETOK_QK / 4, cfg.colsb[2] = 64;
    _tile_loadconfig(&cfg);
#endif
}

static ETOK_AMX_TARGET void amx_release(void) {
#ifndef ETOK_AMX_EMULATED
    _tile_release();
#endif
}

/* Weight row r's block i as the kernel gathers it: the F16 scale and the quants 4k..4k+3 for
 * k < 8. x4 = 0: the file layout (rows of row_bytes); x4 = 1: the Q8_0x4 copy (quant_q8_0.c:
 * per 4 rows and block, 8 bytes of each row per 32-byte chunk, the scales at byte 128). */
static inline const uint8_t *q8_block(const uint8_t *w, size_t row_bytes, int x4, int64_t nb, int64_t r, int64_t i,
                                      const uint8_t *q4[8]) {
    if (!x4) {
        const uint8_t *b = w + (size_t)r * row_bytes + (size_t)i * sizeof(etok_block_q8_0);
        for (int k4 = 0; k4 < 8; k4++) q4[k4] = b + 2 + 4 * k4;
        return b; /* the scale */
    }
    const uint8_t *B = w + ((size_t)(r / 4) * (size_t)nb + (size_t)i) * 136u;
    const int k = (int)(r % 4);
    for (int k4 = 0; k4 < 8; k4++) q4[k4] = B + 32 * (k4 / 2) + 8 * k + 4 * (k4 % 2);
    return B + 128 + 2 * k;
}

ETOK_AMX_TARGET void etok_matmul_amx(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes,
                                     int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx, float *out,
                                     size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const int x4 = layout == ETOK_AMX_Q8X4, min = has_min(type);
    _Alignas(64) int8_t bt[AMX_BLOCK_CHUNK][8 * 64]; /* B tiles of one row group, a chunk of blocks */
    _Alignas(64) float dw[AMX_BLOCK_CHUNK][16];      /* their weight scales (0 for padding rows) */
    _Alignas(64) float mw[AMX_BLOCK_CHUNK][16];      /* their minima (Q4_1 / Q5_1; 0 for padding rows) */
    _Alignas(64) int8_t apad[16][ETOK_QK];           /* A tile of a partial token group */
    _Alignas(64) int32_t c[16][16];
    _Alignas(64) float acc[16][16]; /* [token][row] */
    amx_config();
    for (int64_t g0 = r0; g0 < r1; g0 += 16) {
        const int vr = r1 - g0 < 16 ? (int)(r1 - g0) : 16;
        for (int64_t c0 = 0; c0 < nb; c0 += AMX_BLOCK_CHUNK) {
            const int nc = nb - c0 < AMX_BLOCK_CHUNK ? (int)(nb - c0) : AMX_BLOCK_CHUNK;
            /* repack: bt[b][k/4][r*4 + k%4] = row r's quant k of block c0+b */
            for (int b = 0; b < nc; b++) {
                for (int r = 0; r < 16; r++) {
                    if (r >= vr) {
                        dw[b][r] = mw[b][r] = 0.0f;
                        for (int k = 0; k < ETOK_QK; k++) bt[b][(k / 4) * 64 + r * 4 + k % 4] = 0;
                        continue;
                    }
                    if (type != ETOK_T_Q8_0) { /* the other formats' integers, unpacked */
                        int8_t v[ETOK_QK];
                        dw[b][r] = block_ints(type, layout, w, row_bytes, n, g0 + r, c0 + b, v, &mw[b][r]);
                        for (int k4 = 0; k4 < ETOK_QK / 4; k4++) memcpy(&bt[b][k4 * 64 + r * 4], v + 4 * k4, 4);
                        continue;
                    }
                    mw[b][r] = 0.0f;
                    const uint8_t *q4[8];
                    etok_f16 d;
                    memcpy(&d, q8_block(w, row_bytes, x4, nb, g0 + r, c0 + b, q4), 2);
                    dw[b][r] = etok_f16_to_f32(d);
                    for (int k4 = 0; k4 < ETOK_QK / 4; k4++) memcpy(&bt[b][k4 * 64 + r * 4], q4[k4], 4);
                }
            }
            for (int t0 = 0; t0 < nx; t0 += 16) {
                const int vt = nx - t0 < 16 ? nx - t0 : 16;
                for (int t = 0; t < 16; t++)
                    for (int r = 0; r < 16; r++)
                        acc[t][r] = (c0 == 0 || t >= vt || r >= vr) ? 0.0f : out[(size_t)(t0 + t) * out_stride + (size_t)(g0 + r)];
                for (int b = 0; b < nc; b++) {
                    const etok_block_q8a *x0 = xq + (size_t)t0 * (size_t)nb + (size_t)(c0 + b);
                    if (vt == 16) {
                        amx_block(x0->qs, (size_t)nb * sizeof(etok_block_q8a), bt[b], c);
                    } else {
                        memset(apad, 0, sizeof apad);
                        for (int t = 0; t < vt; t++) memcpy(apad[t], x0[(size_t)t * (size_t)nb].qs, ETOK_QK);
                        amx_block(&apad[0][0], ETOK_QK, bt[b], c);
                    }
                    const __m256 dlo = _mm256_load_ps(&dw[b][0]), dhi = _mm256_load_ps(&dw[b][8]);
                    for (int t = 0; t < vt; t++) {
                        const __m256 da = _mm256_set1_ps(x0[(size_t)t * (size_t)nb].d);
                        const __m256 slo = _mm256_mul_ps(dlo, da), shi = _mm256_mul_ps(dhi, da);
                        const __m256 ilo = _mm256_cvtepi32_ps(_mm256_load_si256((const __m256i *)(const void *)&c[t][0]));
                        const __m256 ihi = _mm256_cvtepi32_ps(_mm256_load_si256((const __m256i *)(const void *)&c[t][8]));
                        __m256 alo = _mm256_fmadd_ps(slo, ilo, _mm256_load_ps(&acc[t][0]));
                        __m256 ahi = _mm256_fmadd_ps(shi, ihi, _mm256_load_ps(&acc[t][8]));
                        if (min) {
                            const __m256 sa = _mm256_set1_ps(x0[(size_t)t * (size_t)nb].s);
                            alo = _mm256_fmadd_ps(_mm256_load_ps(&mw[b][0]), sa, alo);
                            ahi = _mm256_fmadd_ps(_mm256_load_ps(&mw[b][8]), sa, ahi);
                        }
                        _mm256_store_ps(&acc[t][0], alo);
                        _mm256_store_ps(&acc[t][8], ahi);
                    }
                }
                for (int t = 0; t < vt; t++)
                    memcpy(out + (size_t)(t0 + t) * out_stride + (size_t)g0, acc[t], (size_t)vr * sizeof(float));
            }
        }
    }
    amx_release();
}

int etok_amx_prefill(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                     const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    if (etok_isa_active() < ETOK_ISA_AMX || !etok_amx_applies(type, nx)) return 0;
    etok_matmul_amx(type, layout, w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
    return 1;
}

#endif
