/* matmul_float.c — F32 / F16 / BF16 matrices in llama.cpp's summation orders (matmul_float.h
 * states them), written from the peer's math, not its code.
 *
 * Where the orders come from (llama.cpp c392e5094, ggml-cpu built for AVX2+FMA+F16C without
 * AVX-512): ggml_compute_forward_mul_mat first offers the product to llamafile_sgemm, whose
 * float tinyBLAS (KN = 8 values per step, __m256 accumulators, one per output, hsum at the end)
 * takes F32 x F32, F16 x F16 and BF16 x BF16 when the batch has n >= 2 columns, m % 4 == 0
 * rows and k % 8 == 0; the activations are converted to the weight's vec_dot_type first (F16
 * with round-to-nearest-even, BF16 likewise). Otherwise every output is one
 * ggml_vec_dot_{f32,f16,bf16} call (GGML_F32_STEP 32: four __m256 accumulators; reduce as
 * GGML_F32x8_REDUCE, or for BF16 its own add / movehl / movehdup sequence).
 *
 * The AVX2 prefill kernel runs tiles of 4 rows x 3 tokens (12 accumulators, tinyBLAS' AVX2
 * shape: the fewest loads per FMA that 16 ymm registers allow, which is what limits it here)
 * over token blocks that stay in L2, the 12 sums reduced as three transposed 4-row groups (at
 * kernel level avx512, tiles of 4 rows x 8 tokens in zmm registers, the same bits); BF16
 * rows are first converted to F32 once per 4-row group and token block; the decode kernel reads one row at a time, in
 * file order, with a software prefetch a fixed distance ahead (one sequential stream). Per output the operations
 * are those of the scalar reference, so the bits do not depend on tiles, blocks or threads. */
#include "engine/matmul_float.h"

#include <math.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_simd.h"

int etok_type_is_float(uint32_t type) {
    return type == ETOK_T_F32 || type == ETOK_T_F16 || type == ETOK_T_BF16;
}

int etok_float_gemm_applies(int64_t n_out, int64_t n_in, int nx) {
    return nx >= 2 && n_out > 0 && n_out % 4 == 0 && n_in > 0 && n_in % 8 == 0;
}

void etok_float_round_act(uint32_t type, const float *x, float *out, int64_t n) {
    if (type == ETOK_T_F16) {
        if (out != x) memcpy(out, x, (size_t)n * sizeof(float));
        for (int64_t i = 0; i < n; i += 1 << 20) etok_round_f16(out + i, (int)(n - i < (1 << 20) ? n - i : (1 << 20)));
    } else if (type == ETOK_T_BF16) {
        for (int64_t i = 0; i < n; i++) out[i] = etok_bf16_to_f32(etok_f32_to_bf16(x[i]));
    } else if (out != x) {
        memcpy(out, x, (size_t)n * sizeof(float));
    }
}

/* ---- scalar reference ---- */

static float wval(uint32_t type, const uint8_t *row, int64_t i) {
    if (type == ETOK_T_F32) {
        float f;
        memcpy(&f, row + 4 * i, 4);
        return f;
    }
    uint16_t h;
    memcpy(&h, row + 2 * i, 2);
    return type == ETOK_T_F16 ? etok_f16_to_f32(h) : etok_bf16_to_f32(h);
}

/* ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)): tinyBLAS' hsum, and the BF16 vec dot's last step */
static float sum8_hsum(const float l[8]) {
    const float t0 = l[0] + l[4], t1 = l[1] + l[5], t2 = l[2] + l[6], t3 = l[3] + l[7];
    return (t0 + t2) + (t1 + t3);
}

/* ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)): GGML_F32x8_REDUCE's two hadds */
static float sum8_hadd(const float l[8]) {
    const float t0 = l[0] + l[4], t1 = l[1] + l[5], t2 = l[2] + l[6], t3 = l[3] + l[7];
    return (t0 + t1) + (t2 + t3);
}

static float dot_gemm_ref(uint32_t type, const uint8_t *row, const float *x, int64_t n) {
    float l[8] = {0};
    for (int64_t i = 0; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) l[k] = fmaf(wval(type, row, i + k), x[i + k], l[k]);
    return sum8_hsum(l);
}

static float dot_vec_ref(uint32_t type, const uint8_t *row, const float *x, int64_t n) {
    float acc[4][8] = {{0}};
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32)
        for (int j = 0; j < 4; j++)
            for (int k = 0; k < 8; k++) acc[j][k] = fmaf(wval(type, row, i + 8 * j + k), x[i + 8 * j + k], acc[j][k]);
    float a[8];
    for (int k = 0; k < 8; k++) a[k] = (acc[0][k] + acc[2][k]) + (acc[1][k] + acc[3][k]);
    if (type == ETOK_T_F32) {
        float s = sum8_hadd(a);
        for (int64_t i = np; i < n; i++) {
            const float p = wval(type, row, i) * x[i];
            s += p;
        }
        return s;
    }
    double s = type == ETOK_T_F16 ? sum8_hadd(a) : sum8_hsum(a);
    for (int64_t i = np; i < n; i++) s += (double)(wval(type, row, i) * x[i]);
    return (float)s;
}

void etok_matmul_rows_float_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                const float *xr, int64_t n, int nx, int gemm, float *out, size_t out_stride) {
    for (int j = 0; j < nx; j++)
        for (int64_t r = r0; r < r1; r++) {
            const uint8_t *row = w + (size_t)r * row_bytes;
            const float *x = xr + (size_t)j * (size_t)n;
            out[(size_t)j * out_stride + (size_t)r] = gemm ? dot_gemm_ref(type, row, x, n) : dot_vec_ref(type, row, x, n);
        }
}

/* ---- AVX2 ---- */

#if ETOK_HAVE_X86_SIMD
#define TGT ETOK_AVX2_TARGET
#define AI __attribute__((always_inline))

/* 8 weights from offset i of a row, as floats (exact) */
static inline AI TGT __m256 wload(uint32_t type, const uint8_t *row, int64_t i) {
    if (type == ETOK_T_F32) return _mm256_loadu_ps((const float *)(const void *)(row + 4 * i));
    const __m128i h = _mm_loadu_si128((const __m128i *)(const void *)(row + 2 * i));
    if (type == ETOK_T_F16) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

static inline AI TGT float hadd_sum(__m256 v) {
    const __m128 t0 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    const __m128 t1 = _mm_hadd_ps(t0, t0);
    return _mm_cvtss_f32(_mm_hadd_ps(t1, t1));
}

/* Four outputs' sums [s0 s1 s2 s3], each in etok_hsum_ps' order ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)),
 * from one transposition: the 4 rows of a token are adjacent in `out`, one store. */
static inline AI TGT __m128 hsum4(__m256 c0, __m256 c1, __m256 c2, __m256 c3) {
    /* t = lo + hi: [c0: l0+l4 l1+l5 l2+l6 l3+l7 | c1: ...], [c2 | c3] */
    const __m256 t01 = _mm256_add_ps(_mm256_permute2f128_ps(c0, c1, 0x20), _mm256_permute2f128_ps(c0, c1, 0x31));
    const __m256 t23 = _mm256_add_ps(_mm256_permute2f128_ps(c2, c3, 0x20), _mm256_permute2f128_ps(c2, c3, 0x31));
    /* u = t0+t2, v = t1+t3: [c0.u c0.v c2.u c2.v | c1.u c1.v c3.u c3.v] */
    const __m256 uv = _mm256_add_ps(_mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(1, 0, 1, 0)),
                                    _mm256_shuffle_ps(t01, t23, _MM_SHUFFLE(3, 2, 3, 2)));
    /* u+v: [s0 s2 s0 s2 | s1 s3 s1 s3] */
    const __m256 h = _mm256_hadd_ps(uv, uv);
    return _mm_unpacklo_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
}

/* RM rows (RM <= 4) x RN tokens (RN <= 3): every output one 8-lane FMA chain, then hsum. */
static inline AI TGT void tile(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r, int RM, const float *xr,
                               int64_t n, int64_t j, int RN, float *out, size_t out_stride) {
    __m256 c[4][3];
    for (int a = 0; a < RM; a++)
        for (int b = 0; b < RN; b++) c[a][b] = _mm256_setzero_ps();
    const uint8_t *rows[4];
    const float *xs[3];
    for (int a = 0; a < RM; a++) rows[a] = w + (size_t)(r + a) * row_bytes;
    for (int b = 0; b < RN; b++) xs[b] = xr + (size_t)(j + b) * (size_t)n;
    for (int64_t i = 0; i < n; i += 8) {
        __m256 xv[3];
        for (int b = 0; b < RN; b++) xv[b] = _mm256_loadu_ps(xs[b] + i);
        for (int a = 0; a < RM; a++) {
            const __m256 wv = wload(type, rows[a], i);
            for (int b = 0; b < RN; b++) c[a][b] = _mm256_fmadd_ps(wv, xv[b], c[a][b]);
        }
    }
    if (RM == 4)
        for (int b = 0; b < RN; b++)
            _mm_storeu_ps(out + (size_t)(j + b) * out_stride + (size_t)r, hsum4(c[0][b], c[1][b], c[2][b], c[3][b]));
    else
        for (int a = 0; a < RM; a++)
            for (int b = 0; b < RN; b++) out[(size_t)(j + b) * out_stride + (size_t)(r + a)] = etok_hsum_ps(c[a][b]);
}

#define TILE_CASES(TYPE)                                                                                              \
    static TGT void tiles_##TYPE(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *xr,        \
                                 int64_t n, int64_t j0, int64_t j1, float *out, size_t out_stride) {                   \
        for (int64_t r = r0; r < r1; r += 4) {                                                                         \
            const int RM = r1 - r < 4 ? (int)(r1 - r) : 4;                                                             \
            int64_t j = j0;                                                                                            \
            if (RM == 4) {                                                                                             \
                for (; j + 3 <= j1; j += 3) tile(TYPE, w, row_bytes, r, 4, xr, n, j, 3, out, out_stride);            \
                if (j1 - j == 2) tile(TYPE, w, row_bytes, r, 4, xr, n, j, 2, out, out_stride);                       \
                if (j1 - j == 1) tile(TYPE, w, row_bytes, r, 4, xr, n, j, 1, out, out_stride);                       \
            } else {                                                                                                   \
                for (; j < j1; j++) tile(TYPE, w, row_bytes, r, RM, xr, n, j, 1, out, out_stride);                   \
            }                                                                                                          \
        }                                                                                                              \
    }
TILE_CASES(ETOK_T_F32)
TILE_CASES(ETOK_T_F16)
TILE_CASES(ETOK_T_BF16)

/* Widest row whose 4-row BF16 panel is converted to F32 once per token block (32 KiB). */
#define PANEL_MAX_N 2048

/* BF16: each group of 4 rows converted to F32 (exact) once per token block, the tiles reading
 * the panel as F32 rows: the widening shuffle + shift per 8 weights then runs once per block
 * instead of once per token triple (+5-10% on the matrices, docs/ENGINE.md). Same products,
 * same order, same bits. F16 keeps the in-loop conversion: its panel measured slower. */
static TGT void tiles_bf16_panel(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *xr,
                                 int64_t n, int64_t j0, int64_t j1, float *out, size_t out_stride) {
    float panel[4 * PANEL_MAX_N] __attribute__((aligned(32)));
    const uint8_t *pw = (const uint8_t *)panel;
    const size_t pb = (size_t)n * sizeof(float);
    int64_t r = r0;
    for (; r + 4 <= r1; r += 4) {
        for (int a = 0; a < 4; a++)
            for (int64_t i = 0; i < n; i += 8)
                _mm256_store_ps(panel + a * n + i, wload(ETOK_T_BF16, w + (size_t)(r + a) * row_bytes, i));
        float *o = out + r; /* the tiles index the panel's rows from 0 */
        int64_t j = j0;
        for (; j + 3 <= j1; j += 3) tile(ETOK_T_F32, pw, pb, 0, 4, xr, n, j, 3, o, out_stride);
        if (j1 - j == 2) tile(ETOK_T_F32, pw, pb, 0, 4, xr, n, j, 2, o, out_stride);
        if (j1 - j == 1) tile(ETOK_T_F32, pw, pb, 0, 4, xr, n, j, 1, o, out_stride);
    }
    if (r < r1) tiles_ETOK_T_BF16(w, row_bytes, r, r1, xr, n, j0, j1, out, out_stride);
}

/* Kernel level avx512 and above: tiles of 4 rows x 8 tokens in zmm registers. Each zmm holds
 * one token's 8-lane accumulators of two rows (row r + 2k in lanes 0-7, r + 2k + 1 in lanes
 * 8-15), fed the two rows' 8 weights side by side and the token's 8 activations in both
 * halves: per lane the AVX2 tile's FMA chain, so every output keeps its bits; the four rows'
 * halves are reduced by the same hsum4. 16 accumulators; the activations are broadcast
 * straight from memory (a load, no shuffle). Partial tiles (fewer than 4 rows or 8 tokens) run
 * the AVX2 tiles. Xeon, SmolLM2 pp512 one thread: F16 +32%, F32 +14%, BF16 +13% (ENGINE.md). */
#define TGT512 ETOK_AVX512_TARGET
static inline AI TGT512 __m256 hi_half(__m512 v) { return _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)); }

/* two rows' 8 weights at offset i: row a in lanes 0-7, row b in lanes 8-15 */
static inline AI TGT512 __m512 wload2(uint32_t type, const uint8_t *ra, const uint8_t *rb, int64_t i) {
    if (type == ETOK_T_F16)
        return _mm512_cvtph_ps(_mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128((const __m128i *)(const void *)(ra + 2 * i))),
            _mm_loadu_si128((const __m128i *)(const void *)(rb + 2 * i)), 1));
    return _mm512_castpd_ps(_mm512_insertf64x4(_mm512_castpd256_pd512(_mm256_castps_pd(wload(type, ra, i))),
                                               _mm256_castps_pd(wload(type, rb, i)), 1));
}

static inline AI TGT512 void tile_4x8(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r, const float *xr,
                                      int64_t n, int64_t j, float *out, size_t out_stride) {
    __m512 c[2][8]; /* row pair (r, r+1) or (r+2, r+3) x token */
    for (int a = 0; a < 2; a++)
        for (int b = 0; b < 8; b++) c[a][b] = _mm512_setzero_ps();
    const uint8_t *rows[4];
    const float *xs[8];
    for (int a = 0; a < 4; a++) rows[a] = w + (size_t)(r + a) * row_bytes;
    for (int b = 0; b < 8; b++) xs[b] = xr + (size_t)(j + b) * (size_t)n;
    for (int64_t i = 0; i < n; i += 8) {
        const __m512 w01 = wload2(type, rows[0], rows[1], i), w23 = wload2(type, rows[2], rows[3], i);
        for (int b = 0; b < 8; b++) {
            const __m512 xv = _mm512_castpd_ps(_mm512_broadcast_f64x4(_mm256_castps_pd(_mm256_loadu_ps(xs[b] + i))));
            c[0][b] = _mm512_fmadd_ps(w01, xv, c[0][b]);
            c[1][b] = _mm512_fmadd_ps(w23, xv, c[1][b]);
        }
    }
    for (int b = 0; b < 8; b++)
        _mm_storeu_ps(out + (size_t)(j + b) * out_stride + (size_t)r,
                      hsum4(_mm512_castps512_ps256(c[0][b]), hi_half(c[0][b]), _mm512_castps512_ps256(c[1][b]),
                            hi_half(c[1][b])));
}

#define TILE512_CASES(TYPE)                                                                                           \
    static TGT512 void tiles512_##TYPE(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *xr,   \
                                       int64_t n, int64_t j0, int64_t j1, float *out, size_t out_stride) {             \
        int64_t r = r0;                                                                                                \
        for (; r + 4 <= r1; r += 4) {                                                                                  \
            int64_t j = j0;                                                                                            \
            for (; j + 8 <= j1; j += 8) tile_4x8(TYPE, w, row_bytes, r, xr, n, j, out, out_stride);                   \
            if (j < j1) tiles_##TYPE(w, row_bytes, r, r + 4, xr, n, j, j1, out, out_stride);                         \
        }                                                                                                              \
        if (r < r1) tiles_##TYPE(w, row_bytes, r, r1, xr, n, j0, j1, out, out_stride);                               \
    }
TILE512_CASES(ETOK_T_F32)
TILE512_CASES(ETOK_T_F16)
TILE512_CASES(ETOK_T_BF16)

/* tokens per block: the block's activations (TB * n floats) stay in L2 while the rows pass */
static int64_t token_block(int64_t n) {
    int64_t tb = (int64_t)(192 * 1024 / 4) / (n > 0 ? n : 1);
    tb = tb / 3 * 3;
    return tb < 3 ? 3 : tb;
}

/* The tiles of a token block for this type and kernel level, picked once per call. */
typedef void tiles_fn(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *xr, int64_t n,
                      int64_t j0, int64_t j1, float *out, size_t out_stride);
static tiles_fn *tiles_for(uint32_t type, int wide, int64_t n) {
    if (type == ETOK_T_F32) return wide ? tiles512_ETOK_T_F32 : tiles_ETOK_T_F32;
    if (type == ETOK_T_F16) return wide ? tiles512_ETOK_T_F16 : tiles_ETOK_T_F16;
    if (wide) return tiles512_ETOK_T_BF16;
    return n <= PANEL_MAX_N ? tiles_bf16_panel : tiles_ETOK_T_BF16;
}

static TGT void gemm_avx2(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *xr,
                          int64_t n, int nx, float *out, size_t out_stride) {
    const int wide = etok_isa_active() >= ETOK_ISA_AVX512;
    tiles_fn *tiles = tiles_for(type, wide, n);
    int64_t tb = token_block(n);
    if (wide && tb >= 24) tb = tb / 24 * 24; /* whole 8-token tiles (a block's size moves no bits) */
    for (int64_t j0 = 0; j0 < nx; j0 += tb) {
        const int64_t j1 = nx - j0 < tb ? nx : j0 + tb;
        tiles(w, row_bytes, r0, r1, xr, n, j0, j1, out, out_stride);
    }
}

/* One row's vec-order dot with its four accumulators already summed lane-wise in `a`. */
static inline AI TGT float vec_finish(uint32_t type, __m256 a, const uint8_t *row, const float *x, int64_t np,
                                      int64_t n) {
    if (type == ETOK_T_F32) {
        float s = hadd_sum(a);
        for (int64_t i = np; i < n; i++) {
            float f;
            memcpy(&f, row + 4 * i, 4);
            const float p = f * x[i];
            s += p;
        }
        return s;
    }
    double s = type == ETOK_T_F16 ? hadd_sum(a) : etok_hsum_ps(a);
    for (int64_t i = np; i < n; i++) {
        uint16_t h;
        memcpy(&h, row + 2 * i, 2);
        s += (double)((type == ETOK_T_F16 ? etok_f16_to_f32(h) : etok_bf16_to_f32(h)) * x[i]);
    }
    return (float)s;
}

/* Bytes ahead of the current position that the decode kernel prefetches. One row at a time,
 * the rows in file order, is one sequential stream; with a software prefetch 768 bytes ahead
 * (12 cache lines) it read an EPYC guest's memory 15-25% faster than the earlier two rows at a
 * time sharing the activation loads (two streams a row apart, next rows prefetched in a burst):
 * docs/ENGINE.md, "Float decode". On the AVX-512 Xeon guest, F32 (one stream, VEC_PARTS)
 * decoded SmolLM2 at 28.5-29.9 tokens/s with 3072 bytes against 25.3-27.1 with 768 (a plain
 * read loop reaches ~18.7 GB/s there, the decode read 14.8), and F16 / BF16 (four streams) at
 * 54-55 with 1536 against 51-52; multiples of 4 KiB (4096, 8192) were slower, as 4K aliasing
 * would make them. Not yet measured on an EPYC at these distances. */
#define VEC_PREFETCH(TYPE) ((TYPE) == ETOK_T_F32 ? 3072 : 1536)

/* One row against one vector in the vec order, prefetching VEC_PREFETCH(type) bytes ahead while the
 * address stays below `end` (the end of the rows this call reads). */
static inline AI TGT float vec1(uint32_t type, const uint8_t *row, const float *x, int64_t n, uintptr_t end) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const int64_t np = n & ~(int64_t)31;
    const int64_t es = type == ETOK_T_F32 ? 4 : 2;
    for (int64_t i = 0; i < np; i += 32) {
        const uintptr_t pf = (uintptr_t)(row + i * es) + VEC_PREFETCH(type);
        if (pf < end) _mm_prefetch((const char *)pf, _MM_HINT_T0);
        if (es == 4 && pf + 64 < end) _mm_prefetch((const char *)(pf + 64), _MM_HINT_T0);
        a0 = _mm256_fmadd_ps(wload(type, row, i), _mm256_loadu_ps(x + i), a0);
        a1 = _mm256_fmadd_ps(wload(type, row, i + 8), _mm256_loadu_ps(x + i + 8), a1);
        a2 = _mm256_fmadd_ps(wload(type, row, i + 16), _mm256_loadu_ps(x + i + 16), a2);
        a3 = _mm256_fmadd_ps(wload(type, row, i + 24), _mm256_loadu_ps(x + i + 24), a3);
    }
    return vec_finish(type, _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3)), row, x, np, n);
}

/* BF16 without the widening load: 16 values are loaded at once and spread to floats by
 * unpacking with zeros (unpacklo / unpackhi put values 0-3 | 8-11 and 4-7 | 12-15 of each 16
 * into the high halves of 32-bit lanes), where cvtepu16 + slli take two loads and four
 * operations. The accumulators are kept in that order too: p holds the lower halves of vec1's
 * a0 | a1, q their upper halves, so every lane adds the same products in the same order as
 * vec1 and the bits are the same (test_matmul_float). x comes in the matching order
 * (bf16_x_order, once per call). */
static inline AI TGT float vec1_bf16(const uint8_t *row, const float *x, const float *xs, int64_t n, uintptr_t end) {
    const __m256i z = _mm256_setzero_si256();
    __m256 p0 = _mm256_setzero_ps(), q0 = p0, p1 = p0, q1 = p0;
    const int64_t np = n & ~(int64_t)31;
    for (int64_t i = 0; i < np; i += 32) {
        const uintptr_t pf = (uintptr_t)(row + 2 * i) + VEC_PREFETCH(ETOK_T_BF16);
        if (pf < end) _mm_prefetch((const char *)pf, _MM_HINT_T0);
        const __m256i v0 = _mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * i)),
                      v1 = _mm256_loadu_si256((const __m256i *)(const void *)(row + 2 * i + 32));
        p0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, v0)), _mm256_loadu_ps(xs + i), p0);
        q0 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(z, v0)), _mm256_loadu_ps(xs + i + 8), q0);
        p1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpacklo_epi16(z, v1)), _mm256_loadu_ps(xs + i + 16), p1);
        q1 = _mm256_fmadd_ps(_mm256_castsi256_ps(_mm256_unpackhi_epi16(z, v1)), _mm256_loadu_ps(xs + i + 24), q1);
    }
    const __m256 a0 = _mm256_permute2f128_ps(p0, q0, 0x20), a1 = _mm256_permute2f128_ps(p0, q0, 0x31),
                 a2 = _mm256_permute2f128_ps(p1, q1, 0x20), a3 = _mm256_permute2f128_ps(p1, q1, 0x31);
    return vec_finish(ETOK_T_BF16, _mm256_add_ps(_mm256_add_ps(a0, a2), _mm256_add_ps(a1, a3)), row, x, np, n);
}

/* x's first np (a multiple of 32) values in vec1_bf16's order: of each 16, values 0-3, 8-11,
 * 4-7, 12-15. */
static void bf16_x_order(const float *x, int64_t np, float *xs) {
    for (int64_t i = 0; i < np; i += 16) {
        memcpy(xs + i, x + i, 4 * sizeof *x);
        memcpy(xs + i + 4, x + i + 8, 4 * sizeof *x);
        memcpy(xs + i + 8, x + i + 4, 4 * sizeof *x);
        memcpy(xs + i + 12, x + i + 12, 4 * sizeof *x);
    }
}

/* Rows of x this long or shorter take vec1_bf16 (its reordered x on the stack: 64 KiB);
 * longer ones vec1, with the same bits. */
#define BF16_X_MAX 16384

/* Rows read at once, from as many places in the matrix: [r0, r1) is cut into that many equal
 * parts and one row of each is taken in turn, so the memory system sees several sequential
 * streams instead of one. Each row's dot is unchanged (the same bits in any order). One pinned
 * core of this EPYC guest read a 269 MB F16 matrix set at ~18 GB/s in one stream and ~23 GB/s
 * in two to four (a standalone loop with vec1's work); in the engine's decode (with the model's
 * decode chunks, DECODE_CHUNKS_ONE_THREAD), F16 went from 57 to 72 tokens/s and BF16 from 52 to
 * 66 with 4 parts (6 and 8 were slower than 1). F32 (twice the bytes per value, two prefetches
 * per step) reads one stream: on a later EPYC host, with the weights in 2 MiB pages, one part
 * decoded SmolLM2 F32 at 22.3 tokens/s against 19.8 with two, faster in each of 6 alternating
 * rounds (docs/ENGINE.md, "Decode in parts"). */
#define VEC_PARTS(TYPE) ((TYPE) == ETOK_T_F32 ? 1 : 4)
/* The k-th row a decode call reads of [r0, r0 + nr): in etok_part_order, in parts of at least
 * 64 rows (shorter ranges: one stream, in order). */
static inline int64_t vec_row(uint32_t type, int64_t r0, int64_t nr, int64_t k) {
    return r0 + (nr >= 64 * VEC_PARTS(type) ? etok_part_order(k, nr, VEC_PARTS(type)) : k);
}
#define VEC_CASES(TYPE)                                                                                               \
    static TGT void vec_##TYPE(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *x, int64_t n, \
                               float *out) {                                                                           \
        const uintptr_t end = (uintptr_t)w + (size_t)r1 * row_bytes;                                                   \
        for (int64_t k = 0; k < r1 - r0; k++) {                                                                        \
            const int64_t r = vec_row(TYPE, r0, r1 - r0, k);                                                           \
            out[r] = vec1(TYPE, w + (size_t)r * row_bytes, x, n, end);                                                 \
        }                                                                                                              \
    }
VEC_CASES(ETOK_T_F32)
VEC_CASES(ETOK_T_F16)
VEC_CASES(ETOK_T_BF16)

/* BF16 rows through vec1_bf16, in the same row order as vec_ETOK_T_BF16. */
static TGT void vec_bf16_unpacked(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *x, int64_t n,
                                  float *out) {
    float xs[BF16_X_MAX];
    bf16_x_order(x, n & ~(int64_t)31, xs);
    const uintptr_t end = (uintptr_t)w + (size_t)r1 * row_bytes;
    for (int64_t k = 0; k < r1 - r0; k++) {
        const int64_t r = vec_row(ETOK_T_BF16, r0, r1 - r0, k);
        out[r] = vec1_bf16(w + (size_t)r * row_bytes, x, xs, n, end);
    }
}

static TGT void vec_avx2(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const float *xr,
                         int64_t n, int nx, float *out, size_t out_stride) {
    for (int j = 0; j < nx; j++) {
        const float *x = xr + (size_t)j * (size_t)n;
        float *o = out + (size_t)j * out_stride;
        if (type == ETOK_T_F32)
            vec_ETOK_T_F32(w, row_bytes, r0, r1, x, n, o);
        else if (type == ETOK_T_F16)
            vec_ETOK_T_F16(w, row_bytes, r0, r1, x, n, o);
        else if (n <= BF16_X_MAX)
            vec_bf16_unpacked(w, row_bytes, r0, r1, x, n, o);
        else
            vec_ETOK_T_BF16(w, row_bytes, r0, r1, x, n, o);
    }
}
#endif

void etok_matmul_rows_float(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                            const float *xr, int64_t n, int nx, int gemm, float *out, size_t out_stride) {
#if ETOK_HAVE_X86_SIMD
    if (etok_simd_active() && etok_type_is_float(type)) {
        if (gemm)
            gemm_avx2(type, w, row_bytes, r0, r1, xr, n, nx, out, out_stride);
        else
            vec_avx2(type, w, row_bytes, r0, r1, xr, n, nx, out, out_stride);
        return;
    }
#endif
    etok_matmul_rows_float_ref(type, w, row_bytes, r0, r1, xr, n, nx, gemm, out, out_stride);
}
