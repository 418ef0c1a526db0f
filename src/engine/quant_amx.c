/* quant_amx.c — the AMX-INT8 prefill kernels (kernel level amx, docs/ENGINE.md "Kernel levels"):
 * weight rows of the 32-value block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL), in the
 * file's layout or a repacked copy, against q8a activations for many tokens at once, and Q6_K /
 * Q3_K rows against Q8_K activations ("Q6_K and Q3_K" below); each with its scalar reference.
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
 * Where the time goes besides TDPBSSD (16 cycles per tile): unpacking a block's 16 rows into a B
 * tile happens once per row group and block chunk and is reused by every 16-token group; it is
 * AVX2, straight from the 8-row repacked copies the engine keeps (unpack8_x8) or through
 * block_vec for the file's rows. The float step runs per block for every token group: AVX-512,
 * one zmm per token (16 rows), the 16 accumulators in registers across a chunk's blocks.
 *
 * Owns: the AMX tile layout and the amx numerics. Does not own the dispatch (quant.c), the
 * detection or the OS permission (quant.c, etok_isa_detected). With ETOK_AMX_EMULATED (the
 * isa_kernels_emu test build only, through tests/isa/quant_amx_emu.c) the three tile operations
 * are done in C and the AVX-512 float step by tests/isa/avx512_emu.h, to test the kernel's
 * logic on a CPU without AMX or AVX-512. */
#include <math.h>
#include <string.h>

#include "engine/quant_k.h"
#include "engine/quant_simd.h"

#define AMX_BLOCK_CHUNK 32 /* weight blocks unpacked at a time (16 KiB of B tiles and 16 KiB of partial A tiles on the stack) */

/* Q4_1 and Q5_1 carry a minimum per block (w = d v + m); the others do not. */
static int has_min(uint32_t type) { return type == ETOK_T_Q4_1 || type == ETOK_T_Q5_1; }

int etok_amx_k_applies(uint32_t type, int nx) {
    return nx >= ETOK_AMX_MIN_TOKENS && (type == ETOK_T_Q6_K || type == ETOK_T_Q3_K);
}

int etok_amx_applies(uint32_t type, int nx) {
    return nx >= ETOK_AMX_MIN_TOKENS && (type == ETOK_T_Q8_0 || type == ETOK_T_Q4_0 || type == ETOK_T_Q4_1 ||
                                         type == ETOK_T_Q5_0 || type == ETOK_T_Q5_1 || type == ETOK_T_IQ4_NL);
}

/* Block i of row r in the file's block format: a pointer into the file's rows, or *u filled
 * from a repacked copy through its get_block. */
typedef union {
    etok_block_q8_0 q8_0;
    etok_block_q4_0 q4_0;
    etok_block_q4_1 q4_1;
    etok_block_q5_0 q5_0;
    etok_block_q5_1 q5_1;
    etok_block_iq4_nl iq4;
} amx_any_block;

static inline const uint8_t *block_at(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes,
                                      int64_t n, int64_t r, int64_t i, amx_any_block *u) {
    switch (layout) {
    case ETOK_AMX_Q8X4: etok_q8x4_get_block(w, n, r, i, &u->q8_0); return (const uint8_t *)u;
    case ETOK_AMX_Q4_0X8: etok_q4_0x8_get_block(w, n, r, i, &u->q4_0); return (const uint8_t *)u;
    case ETOK_AMX_Q41X8: etok_q41x8_get_block(type, w, n, r, i, u); return (const uint8_t *)u;
    case ETOK_AMX_Q50X8: etok_q50x8_get_block(w, n, r, i, &u->q5_0); return (const uint8_t *)u;
    case ETOK_AMX_IQ4NLX8: etok_iq4nlx8_get_block(w, n, r, i, &u->iq4); return (const uint8_t *)u;
    default: return w + (size_t)r * row_bytes + (size_t)i * (size_t)etok_type_block_bytes(type);
    }
}

/* A block's F16 scale and (Q4_1 / Q5_1; else 0) minimum as floats */
static inline float block_scale(const uint8_t *blk) {
    etok_f16 d;
    memcpy(&d, blk, 2);
    return etok_f16_to_f32(d);
}
static inline float block_min(uint32_t type, const uint8_t *blk) {
    if (!has_min(type)) return 0.0f;
    etok_f16 m;
    memcpy(&m, blk + 2, 2);
    return etok_f16_to_f32(m);
}

/* The block's 32 integers, one at a time from their definition (the reference's unpacking;
 * the kernel's is the AVX2 block_vec, which the tests hold to this). */
static void block_ints(uint32_t type, const uint8_t *blk, int8_t v[ETOK_QK]) {
    const uint8_t *qs = NULL;
    uint32_t qh = 0;
    int off = 0; /* subtracted from the 4- or 5-bit quant */
    switch (type) {
    case ETOK_T_Q8_0: memcpy(v, ((const etok_block_q8_0 *)blk)->qs, ETOK_QK); return;
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
    for (int k = 0; k < ETOK_QK; k++) {
        const int nib = k < ETOK_QK / 2 ? qs[k] & 0x0F : qs[k - ETOK_QK / 2] >> 4;
        const int q = nib | (int)((qh >> k) & 1u) << 4;
        v[k] = (int8_t)(type == ETOK_T_IQ4_NL ? etok_iq4nl_values[nib] : q - off);
    }
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
                amx_any_block u;
                const uint8_t *blk = block_at(type, ETOK_AMX_FILE, w, row_bytes, n, r, i, &u);
                block_ints(type, blk, v);
                const float d = block_scale(blk), m = block_min(type, blk);
                int32_t s = 0;
                for (int k = 0; k < ETOK_QK; k++) s += (int32_t)v[k] * (int32_t)x[i].qs[k];
                acc = fmaf(d * x[i].d, (float)s, acc);
                if (has_min(type)) acc = fmaf(m, x[i].s, acc);
            }
            out[(size_t)j * out_stride + (size_t)r] = acc;
        }
}

/* A Q6_K or Q3_K super-block's 256 signed values (Q6_K: q - 32, -32..31; Q3_K: -4..3), its 16
 * signed sub-block scales and its F16 scale d: w_k = d sc[k/16] v_k. */
static float k_block_parts(uint32_t type, const uint8_t *blk, int8_t v[ETOK_QK_K], int8_t sc[16]) {
    if (type == ETOK_T_Q6_K) {
        const etok_block_q6_k *b = (const etok_block_q6_k *)(const void *)blk;
        etok_q6k_unpack(b, v);
        memcpy(sc, b->scales, 16);
        return etok_f16_to_f32(b->d);
    }
    const etok_block_q3_k *b = (const etok_block_q3_k *)(const void *)blk;
    etok_q3k_unpack(b, v);
    etok_q3k_scales(b, sc);
    return etok_f16_to_f32(b->d);
}

/* Q6_K / Q3_K at level amx, in the kernel's order: per super-block the exact integer sum
 * isum = sum_k sc[k/16] v_k a_k, then acc = fma(d_w * d_a, (float)isum, acc), super-blocks in
 * ascending order. */
void etok_matmul_rows_amx_k_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                const etok_block_q8k *y, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK_K;
    const size_t bb = (size_t)etok_type_block_bytes(type);
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++) {
            const etok_block_q8k *a = y + (size_t)j * (size_t)nb;
            float acc = 0.0f;
            for (int64_t i = 0; i < nb; i++) {
                int8_t v[ETOK_QK_K], sc[16];
                const float d = k_block_parts(type, w + (size_t)r * row_bytes + (size_t)i * bb, v, sc);
                int32_t s = 0;
                for (int k = 0; k < ETOK_QK_K; k++) s += (int32_t)sc[k / 16] * v[k] * a[i].qs[k];
                acc = fmaf(d * a[i].d, (float)s, acc);
            }
            out[(size_t)j * out_stride + (size_t)r] = acc;
        }
}

#if ETOK_HAVE_X86_SIMD

#ifdef ETOK_AMX_EMULATED
#define ETOK_AMX_TARGET ETOK_AVX2_TARGET /* with tests/isa/avx512_emu.h's AVX-512 in C */
#else
/* every CPU with AMX that etok uses has AVX-512 F/BW/VL (etok_isa_detected: amx only on top of avx512) */
#define ETOK_AMX_TARGET __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,amx-tile,amx-int8")))
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

/* The block's 32 integers as bytes (block_ints' values, in AVX2, through quant_simd.h's
 * nibble and 5th-bit helpers). */
static inline ETOK_AMX_TARGET __m256i block_vec(uint32_t type, const uint8_t *blk) {
    switch (type) {
    case ETOK_T_Q8_0: return _mm256_loadu_si256((const __m256i *)(const void *)((const etok_block_q8_0 *)blk)->qs);
    case ETOK_T_Q4_0: return _mm256_sub_epi8(etok_unpack_nibbles(((const etok_block_q4_0 *)blk)->qs), _mm256_set1_epi8(8));
    case ETOK_T_Q4_1: return etok_unpack_nibbles(((const etok_block_q4_1 *)blk)->qs);
    case ETOK_T_Q5_0: {
        const etok_block_q5_0 *q = (const etok_block_q5_0 *)blk;
        return _mm256_sub_epi8(_mm256_or_si256(etok_unpack_nibbles(q->qs), etok_q5_high_bits(q->qh)), _mm256_set1_epi8(16));
    }
    case ETOK_T_Q5_1: {
        const etok_block_q5_1 *q = (const etok_block_q5_1 *)blk;
        return _mm256_or_si256(etok_unpack_nibbles(q->qs), etok_q5_high_bits(q->qh));
    }
    default: /* IQ4_NL: the table's values */
        return _mm256_shuffle_epi8(_mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)etok_iq4nl_values)),
                                   etok_unpack_nibbles(((const etok_block_iq4_nl *)blk)->qs));
    }
}

/* Eight rows' integers (v[j]: row j's 32 bytes = 8 groups of 4) into the B tile, whose row k4
 * holds group k4 of each weight row side by side: an 8 x 8 transpose of 32-bit elements, then
 * one 32-byte store per group at that tile row's bytes 32 h .. 32 h + 31 (h: which 8 rows). */
static inline ETOK_AMX_TARGET void tile_put8(int8_t *bt, int h, const __m256i v[8]) {
    __m256i t[8], u[8];
    for (int j = 0; j < 8; j += 2) {
        t[j] = _mm256_unpacklo_epi32(v[j], v[j + 1]);     /* groups 0,1 | 4,5 of rows j, j+1 */
        t[j + 1] = _mm256_unpackhi_epi32(v[j], v[j + 1]); /* groups 2,3 | 6,7 */
    }
    for (int j = 0; j < 8; j += 4) {
        u[j] = _mm256_unpacklo_epi64(t[j], t[j + 2]);         /* group 0 | 4 of rows j..j+3 */
        u[j + 1] = _mm256_unpackhi_epi64(t[j], t[j + 2]);     /* 1 | 5 */
        u[j + 2] = _mm256_unpacklo_epi64(t[j + 1], t[j + 3]); /* 2 | 6 */
        u[j + 3] = _mm256_unpackhi_epi64(t[j + 1], t[j + 3]); /* 3 | 7 */
    }
    for (int g = 0; g < 4; g++) {
        _mm256_store_si256((__m256i *)(void *)(bt + g * 64 + 32 * h), _mm256_permute2x128_si256(u[g], u[g + 4], 0x20));
        _mm256_store_si256((__m256i *)(void *)(bt + (g + 4) * 64 + 32 * h), _mm256_permute2x128_si256(u[g], u[g + 4], 0x31));
    }
}

/* Bytes of one row group of a repacked copy (each copy's own etok_*_group_bytes; 0: the file's rows) */
static size_t copy_group_bytes(uint32_t type, etok_amx_layout layout, int64_t n) {
    switch (layout) {
    case ETOK_AMX_Q8X4: return etok_q8x4_group_bytes(n);
    case ETOK_AMX_Q4_0X8: return etok_q4_0x8_group_bytes(n);
    case ETOK_AMX_Q41X8: return etok_q41x8_group_bytes(type, n);
    case ETOK_AMX_Q50X8: return etok_q50x8_group_bytes(n);
    case ETOK_AMX_IQ4NLX8: return etok_iq4nlx8_group_bytes(n);
    default: return 0;
    }
}

/* Two 32-byte regions that each hold 8 bytes of 4 rows (rows 0-3 at p0, rows 4-7 at p1; row k's
 * at 8 (k % 4)) as two vectors of 8 rows: lo = the rows' bytes 0..3, hi = bytes 4..7. */
static inline ETOK_AMX_TARGET void rows4x2(const uint8_t *p0, const uint8_t *p1, __m256i *lo, __m256i *hi) {
    const __m256i idx = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i x0 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p0), idx);
    const __m256i x1 = _mm256_permutevar8x32_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p1), idx);
    *lo = _mm256_permute2x128_si256(x0, x1, 0x20);
    *hi = _mm256_permute2x128_si256(x0, x1, 0x31);
}

/* Eight rows (one 8-row group, all inside the matrix) of a repacked copy straight into the B
 * tile, whose row k4 holds integers 4k4..4k4+3 of each weight row. Q4_0x8, Q4_1x8 / Q5_1x8 and
 * Q5_0x8 hold quant bytes 4c..4c+3 of the 8 rows in chunk c (32 bytes); IQ4_NLx8 holds 8 bytes
 * of 4 rows per 32 bytes (rows4x2 regroups them). Quant dword c's low nibbles are integers
 * 4c..4c+3 (tile row c) and its high nibbles 16+4c.. (tile row c + 4), block_vec's order; the
 * 5th bits come from the copies' arrangement ((H << (4-c)) & 0x10 and (H >> c) & 0x10,
 * quant_q4_1.c). Q8_0x4 holds 8 bytes of 4 rows per chunk: chunk j is tile rows 2j and 2j+1.
 * The 8 F16 scales (and minima) are copied as they are. Returns 0 for the file's layout. */
static inline ETOK_AMX_TARGET int unpack8_x8(uint32_t type, etok_amx_layout layout, const uint8_t *w, int64_t n, size_t gb,
                                             int64_t row, int64_t i, int8_t *bt, int h, etok_f16 *dh, etok_f16 *mh) {
    const int64_t nb = n / ETOK_QK, grp = row / 8;
    const size_t bb = gb / (size_t)nb; /* a block of the group (all but Q4_0x8, whose scales follow its quants) */
    const uint8_t *Q, *D, *M = NULL, *H = NULL;
    int off = 0;
    if (layout == ETOK_AMX_Q4_0X8) {
        const uint8_t *o = w + (size_t)grp * gb;
        Q = o + (size_t)i * 128u, D = o + (size_t)nb * 128u + (size_t)i * 16u, off = 8;
    } else if (layout == ETOK_AMX_Q41X8) {
        const int q5 = type == ETOK_T_Q5_1;
        const uint8_t *B = w + (size_t)grp * gb + (size_t)i * bb;
        Q = B, H = q5 ? B + 128 : NULL, D = B + (q5 ? 160 : 128), M = D + 16;
    } else if (layout == ETOK_AMX_Q50X8) {
        const uint8_t *B = w + (size_t)grp * gb + (size_t)i * bb;
        Q = B, H = B + 128, D = B + 160, off = 16;
    } else if (layout == ETOK_AMX_Q8X4) {
        const uint8_t *B0 = w + (size_t)(2 * grp) * gb + (size_t)i * bb, *B1 = B0 + gb; /* two 4-row groups */
        for (int j = 0; j < 4; j++) {
            __m256i lo, hi;
            rows4x2(B0 + 32 * j, B1 + 32 * j, &lo, &hi);
            _mm256_store_si256((__m256i *)(void *)(bt + (2 * j) * 64 + 32 * h), lo);
            _mm256_store_si256((__m256i *)(void *)(bt + (2 * j + 1) * 64 + 32 * h), hi);
        }
        memcpy(dh, B0 + 128, 8);
        memcpy(dh + 4, B1 + 128, 8);
        return 1;
    } else if (layout == ETOK_AMX_IQ4NLX8) {
        const uint8_t *B = w + (size_t)grp * gb + (size_t)i * bb;
        const __m256i m4 = _mm256_set1_epi8(0x0F);
        const __m256i tbl = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)etok_iq4nl_values));
        for (int v = 0; v < 2; v++) {
            __m256i q[2];
            rows4x2(B + 32 * v, B + 64 + 32 * v, &q[0], &q[1]); /* quant dwords 2v, 2v + 1 */
            for (int e = 0; e < 2; e++) {
                const int c = 2 * v + e;
                _mm256_store_si256((__m256i *)(void *)(bt + c * 64 + 32 * h), _mm256_shuffle_epi8(tbl, _mm256_and_si256(q[e], m4)));
                _mm256_store_si256((__m256i *)(void *)(bt + (c + 4) * 64 + 32 * h),
                                   _mm256_shuffle_epi8(tbl, _mm256_and_si256(_mm256_srli_epi16(q[e], 4), m4)));
            }
        }
        memcpy(dh, B + 128, 16);
        return 1;
    } else {
        return 0;
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), b5 = _mm256_set1_epi8(0x10), o = _mm256_set1_epi8((char)off);
    const __m256i Hv = H ? _mm256_loadu_si256((const __m256i *)(const void *)H) : _mm256_setzero_si256();
    for (int c = 0; c < 4; c++) {
        const __m256i q = _mm256_loadu_si256((const __m256i *)(const void *)(Q + 32 * c));
        __m256i lo = _mm256_and_si256(q, m4), hi = _mm256_and_si256(_mm256_srli_epi16(q, 4), m4);
        if (H) {
            lo = _mm256_or_si256(lo, _mm256_and_si256(_mm256_slli_epi16(Hv, 4 - c), b5));
            hi = _mm256_or_si256(hi, _mm256_and_si256(_mm256_srli_epi16(Hv, c), b5));
        }
        _mm256_store_si256((__m256i *)(void *)(bt + c * 64 + 32 * h), _mm256_sub_epi8(lo, o));
        _mm256_store_si256((__m256i *)(void *)(bt + (c + 4) * 64 + 32 * h), _mm256_sub_epi8(hi, o));
    }
    memcpy(dh, D, 16);
    if (M) memcpy(mh, M, 16);
    return 1;
}

/* One 16-row group's blocks c0 .. c0+nc-1 as B tiles bt[b] (bt[b][k/4][r*4 + k%4] = row r's
 * integer k of block c0+b) with their scales dw[b][r] and minima mw[b][r]; rows r >= vr are
 * zero (padding, results dropped). */
static ETOK_AMX_TARGET void unpack_group(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes,
                                         int64_t n, int64_t g0, int vr, int64_t c0, int nc, int8_t (*bt)[8 * 64],
                                         float (*dw)[16], float (*mw)[16]) {
    const int min = has_min(type);
    const size_t gb = copy_group_bytes(type, layout, n);
    for (int b = 0; b < nc; b++) {
        _Alignas(32) etok_f16 dh[16] = {0}, mh[16] = {0}; /* F16 scales and minima (0: padding) */
        for (int h = 0; h < 2; h++) {
            if ((g0 + 8 * h) % 8 == 0 && 8 * h + 8 <= vr &&
                unpack8_x8(type, layout, w, n, gb, g0 + 8 * h, c0 + b, bt[b], h, &dh[8 * h], &mh[8 * h]))
                continue;
            __m256i v[8];
            for (int j = 0; j < 8; j++) {
                const int r = 8 * h + j;
                if (r >= vr) {
                    v[j] = _mm256_setzero_si256();
                    continue;
                }
                amx_any_block u;
                const uint8_t *blk = block_at(type, layout, w, row_bytes, n, g0 + r, c0 + b, &u);
                v[j] = block_vec(type, blk);
                memcpy(&dh[r], blk, 2);
                if (min) memcpy(&mh[r], blk + 2, 2);
            }
            tile_put8(bt[b], h, v);
        }
        /* F16 to F32 is exact, so F16C gives block_scale's and block_min's values */
        for (int h = 0; h < 2; h++) {
            _mm256_store_ps(&dw[b][8 * h], _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(const void *)&dh[8 * h])));
            _mm256_store_ps(&mw[b][8 * h], _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(const void *)&mh[8 * h])));
        }
    }
}

static const etok_block_q8a amx_zero_blocks[AMX_BLOCK_CHUNK]; /* a padding token's (all zero) */

/* Both drivers' 16-token-group plumbing, whatever the activation block (q8a or Q8_K). */

/* The accumulators [token][row] of tokens t0.., rows g0..: 0 on the first chunk and for padding
 * tokens / rows, else the partial sums the last chunk left in out. */
static inline void acc_in(float accm[16][16], const float *out, size_t out_stride, int64_t t0, int64_t g0, int vt, int vr,
                          int first) {
    for (int t = 0; t < 16; t++)
        for (int r = 0; r < 16; r++)
            accm[t][r] = (first || t >= vt || r >= vr) ? 0.0f : out[(size_t)(t0 + t) * out_stride + (size_t)(g0 + r)];
}

static inline void acc_out(const float accm[16][16], float *out, size_t out_stride, int64_t t0, int64_t g0, int vt, int vr) {
    for (int t = 0; t < vt; t++) memcpy(out + (size_t)(t0 + t) * out_stride + (size_t)g0, accm[t], (size_t)vr * sizeof(float));
}

/* The A tiles of a group of vt tokens over a chunk of nc blocks: token t's block b has its kb
 * quant bytes at qs0 + t tstride + b bb. A full group is read in place (token rows tstride
 * apart, block b at + b bb); a partial one is copied above zero rows into pad ([nc][16][kb]).
 * Returns block 0's tile, with *a_stride and *a_step. */
static inline const int8_t *a_tiles(const int8_t *qs0, size_t tstride, size_t bb, size_t kb, int nc, int vt, int8_t *pad,
                                    size_t *a_stride, size_t *a_step) {
    if (vt == 16) {
        *a_stride = tstride, *a_step = bb;
        return qs0;
    }
    memset(pad, 0, (size_t)nc * 16 * kb);
    for (int b = 0; b < nc; b++)
        for (int t = 0; t < vt; t++) memcpy(pad + ((size_t)b * 16 + (size_t)t) * kb, qs0 + (size_t)t * tstride + (size_t)b * bb, kb);
    *a_stride = kb, *a_step = 16 * kb;
    return pad;
}

/* The token indices 0..15, for the sixteen accumulators below (named, so that they are
 * registers: an array of vectors carried across the block loop was kept in memory by gcc). */
#define AMX_T16(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

/* One 16-token group against one row group's chunk of nc blocks: per block one tile product,
 * then per (token t, row lane) acc = fma(d_w * d_a, (float)isum, acc) and, with a minimum (MIN),
 * acc = fma(m_w, s_a, acc): the reference's operations in its order, 16 rows per zmm, token t's
 * accumulator a<t> in a register for the whole chunk. xs[t]: token t's q8a blocks from the
 * chunk's first (zero blocks for padding tokens); a: block 0's A tile (16 token rows, a_stride
 * apart; block b at a + b a_step); accm: the accumulators in and out ([token][row]). */
static inline __attribute__((always_inline)) ETOK_AMX_TARGET void
amx_token_group(const int MIN, int nc, const int8_t (*bt)[8 * 64], const float (*dw)[16], const float (*mw)[16],
                const etok_block_q8a *const xs[16], const int8_t *a, size_t a_stride, size_t a_step,
                float accm[16][16]) {
    _Alignas(64) int32_t c[16][16];
#define AMX_LOAD(t) __m512 a##t = _mm512_load_ps(accm[t]);
    AMX_T16(AMX_LOAD)
#undef AMX_LOAD
    for (int b = 0; b < nc; b++) {
        amx_block(a + (size_t)b * a_step, a_stride, bt[b], c);
        const __m512 dwv = _mm512_load_ps(dw[b]);
#define AMX_STEP(t)                                                                                                    \
    a##t = _mm512_fmadd_ps(_mm512_mul_ps(dwv, _mm512_set1_ps(xs[t][b].d)),                                             \
                           _mm512_cvtepi32_ps(_mm512_loadu_si512((const void *)c[t])), a##t);
        AMX_T16(AMX_STEP)
#undef AMX_STEP
        if (MIN) {
            const __m512 mwv = _mm512_load_ps(mw[b]);
#define AMX_MIN(t) a##t = _mm512_fmadd_ps(mwv, _mm512_set1_ps(xs[t][b].s), a##t);
            AMX_T16(AMX_MIN)
#undef AMX_MIN
        }
    }
#define AMX_STORE(t) _mm512_store_ps(accm[t], a##t);
    AMX_T16(AMX_STORE)
#undef AMX_STORE
}

ETOK_AMX_TARGET void etok_matmul_amx(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes,
                                     int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx, float *out,
                                     size_t out_stride) {
    const int64_t nb = n / ETOK_QK;
    const int min = has_min(type);
    _Alignas(64) int8_t bt[AMX_BLOCK_CHUNK][8 * 64]; /* B tiles of one row group, a chunk of blocks */
    _Alignas(64) float dw[AMX_BLOCK_CHUNK][16];      /* their weight scales (0 for padding rows) */
    _Alignas(64) float mw[AMX_BLOCK_CHUNK][16];      /* their minima (Q4_1 / Q5_1; 0 for padding rows) */
    _Alignas(64) int8_t apad[AMX_BLOCK_CHUNK][16][ETOK_QK]; /* A tiles of a partial token group */
    _Alignas(64) float accm[16][16]; /* [token][row]: the accumulators between chunks */
    amx_config();
    for (int64_t g0 = r0; g0 < r1; g0 += 16) {
        const int vr = r1 - g0 < 16 ? (int)(r1 - g0) : 16;
        for (int64_t c0 = 0; c0 < nb; c0 += AMX_BLOCK_CHUNK) {
            const int nc = nb - c0 < AMX_BLOCK_CHUNK ? (int)(nb - c0) : AMX_BLOCK_CHUNK;
            unpack_group(type, layout, w, row_bytes, n, g0, vr, c0, nc, bt, dw, mw);
            for (int t0 = 0; t0 < nx; t0 += 16) {
                const int vt = nx - t0 < 16 ? nx - t0 : 16;
                const etok_block_q8a *xs[16]; /* token t's blocks from c0 (padding: zero blocks, scale 0) */
                for (int t = 0; t < 16; t++) xs[t] = t < vt ? xq + (size_t)(t0 + t) * (size_t)nb + (size_t)c0 : amx_zero_blocks;
                acc_in(accm, out, out_stride, t0, g0, vt, vr, c0 == 0);
                size_t a_stride, a_step;
                const int8_t *a = a_tiles(xq[(size_t)t0 * (size_t)nb + (size_t)c0].qs, (size_t)nb * sizeof(etok_block_q8a),
                                          sizeof(etok_block_q8a), ETOK_QK, nc, vt, &apad[0][0][0], &a_stride, &a_step);
                if (min)
                    amx_token_group(1, nc, (const int8_t(*)[8 * 64])bt, (const float(*)[16])dw, (const float(*)[16])mw, xs, a,
                                    a_stride, a_step, accm);
                else
                    amx_token_group(0, nc, (const int8_t(*)[8 * 64])bt, (const float(*)[16])dw, (const float(*)[16])mw, xs, a,
                                    a_stride, a_step, accm);
                acc_out(accm, out, out_stride, t0, g0, vt, vr);
            }
        }
    }
    amx_release();
}

/* ---- Q6_K and Q3_K ----
 * A super-block's 16 sub-blocks of 16 values each have their own signed scale sc (Q6_K: a
 * byte; Q3_K: 6 bits), so a tile product over 64 values cannot apply them afterwards. Instead
 * each weight's integer v is scaled first, w' = sc v (Q6_K: v = q - 32, w' in -4064..4096; Q3_K:
 * v in -4..3, w' in -124..128: both need more than a byte), and split as w' = 128 hi + lo with
 * hi = w' >> 7 (-32..32) and lo = w' & 127 (0..127): two B tiles of signed bytes. Per 16 rows x
 * 16 tokens a super-block is 4 x 2 TDPBSSD (A: 64 activation bytes, straight from the Q8_K
 * blocks), and isum = 128 C_hi + C_lo = sum_k sc[k/16] v_k a_k exactly (|isum| <= 256 x 4096 x
 * 127 < 2^27). Then acc = fma(d_w * d_a, (float)isum, acc) per (token, row), the reference's
 * order (etok_matmul_rows_amx_k_ref). The scaling and split cost one pass over the weights per
 * row group and chunk, reused by every 16-token group. */
#define AMX_K_CHUNK 4 /* super-blocks unpacked at a time: 32 KiB of B tiles */

typedef struct {
    _Alignas(64) int8_t hi[4][16 * 64]; /* K tiles of 64 values: [k/4][r*4 + k%4] */
    _Alignas(64) int8_t lo[4][16 * 64];
} amx_k_tiles;

/* 32 signed values (values 32c .. 32c + 31 of a super-block) times their two sub-block scales
 * s0, s1, split into hi (w' >> 7) and lo (w' & 127) at hi + 32c, lo + 32c */
static inline ETOK_AMX_TARGET void split_store(__m256i q, int s0, int s1, int8_t *hi, int8_t *lo) {
    const __m256i m127 = _mm256_set1_epi16(127);
    const __m256i w0 = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_castsi256_si128(q)), _mm256_set1_epi16((short)s0));
    const __m256i w1 = _mm256_mullo_epi16(_mm256_cvtepi8_epi16(_mm256_extracti128_si256(q, 1)), _mm256_set1_epi16((short)s1));
    /* packs works per 128-bit lane: [w0 0-7, w1 0-7 | w0 8-15, w1 8-15], reordered by 0xD8 */
    const __m256i vh = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_srai_epi16(w0, 7), _mm256_srai_epi16(w1, 7)), 0xD8);
    const __m256i vl = _mm256_permute4x64_epi64(_mm256_packs_epi16(_mm256_and_si256(w0, m127), _mm256_and_si256(w1, m127)), 0xD8);
    _mm256_storeu_si256((__m256i *)(void *)hi, vh);
    _mm256_storeu_si256((__m256i *)(void *)lo, vl);
}

/* One Q6_K super-block's w' = sc (q - 32), split into hi and lo, in value order
 * (etok_q6k_unpack's); returns d. */
static inline ETOK_AMX_TARGET float q6k_split(const etok_block_q6_k *b, int8_t hi[ETOK_QK_K], int8_t lo[ETOK_QK_K]) {
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30), m32 = _mm256_set1_epi8(32);
    for (int h = 0; h < 2; h++) {
        const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(const void *)(b->ql + 64 * h));
        const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(const void *)(b->ql + 64 * h + 32));
        const __m256i qh = _mm256_loadu_si256((const __m256i *)(const void *)(b->qh + 32 * h));
        __m256i c[4]; /* values 128 h + 32 k .. + 31: low or high nibbles, two high bits each */
        c[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
        c[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
        c[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
        c[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4), _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
        for (int k = 0; k < 4; k++) {
            const int v0 = 128 * h + 32 * k; /* sub-blocks v0 / 16 and v0 / 16 + 1 */
            split_store(_mm256_sub_epi8(c[k], m32), b->scales[v0 / 16], b->scales[v0 / 16 + 1], hi + v0, lo + v0);
        }
    }
    return etok_f16_to_f32(b->d);
}

/* The same for Q3_K: value 32 j + l is ((qs[32 (j / 4) + l] >> 2 (j % 4)) & 3) - 4 + 4 * (bit j
 * of hmask[l]) (etok_q3k_unpack's), times its 6-bit signed scale (etok_q3k_scales). The 16-bit
 * shifts move bits across the bytes of a lane only above the bits kept. */
static inline ETOK_AMX_TARGET float q3k_split(const etok_block_q3_k *b, int8_t hi[ETOK_QK_K], int8_t lo[ETOK_QK_K]) {
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1), four = _mm256_set1_epi8(4);
    const __m256i hm = _mm256_loadu_si256((const __m256i *)(const void *)b->hmask);
    int8_t sc[16];
    etok_q3k_scales(b, sc);
    for (int j = 0; j < 8; j++) {
        const __m256i raw = _mm256_loadu_si256((const __m256i *)(const void *)(b->qs + 32 * (j / 4)));
        const __m256i v = _mm256_and_si256(_mm256_srli_epi16(raw, 2 * (j % 4)), m3);
        const __m256i h = _mm256_and_si256(_mm256_srli_epi16(hm, j), one);
        const __m256i q = _mm256_sub_epi8(_mm256_add_epi8(v, _mm256_slli_epi16(h, 2)), four);
        split_store(q, sc[2 * j], sc[2 * j + 1], hi + 32 * j, lo + 32 * j);
    }
    return etok_f16_to_f32(b->d);
}

/* One 16-row group's super-block i as B tiles, and the rows' scales d_w (rows r >= vr: zero) */
static ETOK_AMX_TARGET void k_unpack_group(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t g0, int vr,
                                           int64_t i, amx_k_tiles *t, float dw[16]) {
    _Alignas(32) int8_t hi[16][ETOK_QK_K], lo[16][ETOK_QK_K];
    for (int r = 0; r < 16; r++) {
        if (r >= vr) {
            memset(hi[r], 0, sizeof hi[r]), memset(lo[r], 0, sizeof lo[r]);
            dw[r] = 0.0f;
            continue;
        }
        const uint8_t *blk = w + (size_t)(g0 + r) * row_bytes + (size_t)i * (size_t)etok_type_block_bytes(type);
        dw[r] = type == ETOK_T_Q6_K ? q6k_split((const etok_block_q6_k *)(const void *)blk, hi[r], lo[r])
                                    : q3k_split((const etok_block_q3_k *)(const void *)blk, hi[r], lo[r]);
    }
    for (int kt = 0; kt < 4; kt++)     /* K tile: values 64 kt .. 64 kt + 63 */
        for (int m = 0; m < 2; m++)    /* its half: tile rows 8 m .. 8 m + 7 */
            for (int h = 0; h < 2; h++) { /* weight rows 8 h .. 8 h + 7 */
                __m256i vh[8], vl[8];
                for (int j = 0; j < 8; j++) {
                    vh[j] = _mm256_load_si256((const __m256i *)(const void *)(hi[8 * h + j] + 64 * kt + 32 * m));
                    vl[j] = _mm256_load_si256((const __m256i *)(const void *)(lo[8 * h + j] + 64 * kt + 32 * m));
                }
                tile_put8(t->hi[kt] + 8 * 64 * m, h, vh);
                tile_put8(t->lo[kt] + 8 * 64 * m, h, vl);
            }
}

/* c_hi[t][r] = sum_k a[t][k] hi_r[k], c_lo likewise, over one super-block (k < 256). */
static ETOK_AMX_TARGET void amx_k_block(const int8_t *a, size_t a_stride, const amx_k_tiles *bt, int32_t chi[16][16],
                                          int32_t clo[16][16]) {
#ifdef ETOK_AMX_EMULATED
    for (int t = 0; t < 16; t++)
        for (int r = 0; r < 16; r++) {
            int32_t sh = 0, sl = 0;
            for (int k = 0; k < ETOK_QK_K; k++) {
                const int32_t x = a[(size_t)t * a_stride + (size_t)k];
                const int e = (k % 64 / 4) * 64 + r * 4 + k % 4;
                sh += x * bt->hi[k / 64][e], sl += x * bt->lo[k / 64][e];
            }
            chi[t][r] = sh, clo[t][r] = sl;
        }
#else
    _tile_zero(0);
    _tile_zero(1);
    for (int kt = 0; kt < 4; kt++) {
        _tile_loadd(2, a + 64 * kt, a_stride);
        _tile_loadd(3, bt->hi[kt], 64);
        _tile_loadd(4, bt->lo[kt], 64);
        _tile_dpbssd(0, 2, 3);
        _tile_dpbssd(1, 2, 4);
    }
    _tile_stored(0, chi, 64);
    _tile_stored(1, clo, 64);
#endif
}

static ETOK_AMX_TARGET void amx_k_config(void) {
#ifndef ETOK_AMX_EMULATED
    amx_tilecfg cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.palette = 1;
    for (int k = 0; k < 5; k++) cfg.rows[k] = 16, cfg.colsb[k] = 64; /* C hi, C lo, A, B hi, B lo */
    _tile_loadconfig(&cfg);
#endif
}

static const etok_block_q8k amx_zero_q8k[AMX_K_CHUNK]; /* a padding token's (all zero) */

/* One 16-token group against a row group's chunk of nc super-blocks (amx_token_group's scheme) */
static inline __attribute__((always_inline)) ETOK_AMX_TARGET void
amx_k_token_group(int nc, const amx_k_tiles *bt, const float (*dw)[16], const etok_block_q8k *const xs[16],
                    const int8_t *a, size_t a_stride, size_t a_step, float accm[16][16]) {
    _Alignas(64) int32_t chi[16][16], clo[16][16];
#define AMX_LOAD(t) __m512 a##t = _mm512_load_ps(accm[t]);
    AMX_T16(AMX_LOAD)
#undef AMX_LOAD
    for (int b = 0; b < nc; b++) {
        amx_k_block(a + (size_t)b * a_step, a_stride, &bt[b], chi, clo);
        const __m512 dwv = _mm512_load_ps(dw[b]);
#define AMX_STEP(t)                                                                                                    \
    a##t = _mm512_fmadd_ps(_mm512_mul_ps(dwv, _mm512_set1_ps(xs[t][b].d)),                                             \
                           _mm512_cvtepi32_ps(_mm512_add_epi32(_mm512_slli_epi32(_mm512_loadu_si512((const void *)chi[t]), 7), \
                                                               _mm512_loadu_si512((const void *)clo[t]))),             \
                           a##t);
        AMX_T16(AMX_STEP)
#undef AMX_STEP
    }
#define AMX_STORE(t) _mm512_store_ps(accm[t], a##t);
    AMX_T16(AMX_STORE)
#undef AMX_STORE
}
#undef AMX_T16

static ETOK_AMX_TARGET void matmul_amx_k(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                         const etok_block_q8k *xq, int64_t n, int nx, float *out, size_t out_stride) {
    const int64_t nb = n / ETOK_QK_K;
    amx_k_tiles bt[AMX_K_CHUNK];
    _Alignas(64) float dw[AMX_K_CHUNK][16];
    _Alignas(64) int8_t apad[AMX_K_CHUNK][16][ETOK_QK_K]; /* A rows of a partial token group */
    _Alignas(64) float accm[16][16];
    amx_k_config();
    for (int64_t g0 = r0; g0 < r1; g0 += 16) {
        const int vr = r1 - g0 < 16 ? (int)(r1 - g0) : 16;
        for (int64_t c0 = 0; c0 < nb; c0 += AMX_K_CHUNK) {
            const int nc = nb - c0 < AMX_K_CHUNK ? (int)(nb - c0) : AMX_K_CHUNK;
            for (int b = 0; b < nc; b++) k_unpack_group(type, w, row_bytes, g0, vr, c0 + b, &bt[b], dw[b]);
            for (int t0 = 0; t0 < nx; t0 += 16) {
                const int vt = nx - t0 < 16 ? nx - t0 : 16;
                const etok_block_q8k *xs[16]; /* token t's super-blocks from c0 (padding: zero blocks) */
                for (int t = 0; t < 16; t++) xs[t] = t < vt ? xq + (size_t)(t0 + t) * (size_t)nb + (size_t)c0 : amx_zero_q8k;
                acc_in(accm, out, out_stride, t0, g0, vt, vr, c0 == 0);
                size_t a_stride, a_step;
                const int8_t *a = a_tiles(xq[(size_t)t0 * (size_t)nb + (size_t)c0].qs, (size_t)nb * sizeof(etok_block_q8k),
                                          sizeof(etok_block_q8k), ETOK_QK_K, nc, vt, &apad[0][0][0], &a_stride, &a_step);
                amx_k_token_group(nc, bt, (const float(*)[16])dw, xs, a, a_stride, a_step, accm);
                acc_out(accm, out, out_stride, t0, g0, vt, vr);
            }
        }
    }
    amx_release();
}

int etok_amx_prefill_q8k(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                         const etok_block_q8k *xq, int64_t n, int nx, float *out, size_t out_stride) {
    if (etok_isa_active() < ETOK_ISA_AMX || !etok_amx_k_applies(type, nx)) return 0;
    matmul_amx_k(type, w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
    return 1;
}

int etok_amx_prefill(uint32_t type, etok_amx_layout layout, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                     const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride) {
    if (etok_isa_active() < ETOK_ISA_AMX || !etok_amx_applies(type, nx)) return 0;
    etok_matmul_amx(type, layout, w, row_bytes, r0, r1, xq, n, nx, out, out_stride);
    return 1;
}

#endif
