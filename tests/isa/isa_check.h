/* isa_check.h — the kernel-level comparisons shared by the cmocka test (tests/unit/test_isa.c)
 * and the plain-C self-checking program (tests/isa/isa_kernels.c, which runs statically linked
 * under an emulator with an AVX-512 CPU model).
 *
 * isa_check_level(L) forces kernel level L and avx2 in turn (etok_isa_force) and requires:
 * - L = avx512: every dispatched 32-value q8a kernel result (etok_vec_dot, etok_vec_dot_multi,
 *   etok_matmul_rows: single rows, 4-row groups and rests, 4- and 8-vector groups and rests,
 *   odd block counts, a first row > 0) memcmp-equal to the avx2 result, on quantised random
 *   data and on raw random bytes (every weight byte, every activation byte but -128); and the
 *   K-quant Q8_K kernels (etok_vec_dot_q8k, etok_matmul_rows_q8k) likewise;
 * - any L: each result within 1e-4 of the sum of |w_i x_i| of the scalar reference
 *   (etok_vec_dot_ref: float summation order, and the SIMD kernels' use of the F16-rounded
 *   activation block sums, differ), on the quantised data.
 * Header-only (static functions) so both programs compile it without a library of their own;
 * it uses only the engine's quant API. Leaves the level forced to L. */
#ifndef ETOK_TESTS_ISA_CHECK_H
#define ETOK_TESTS_ISA_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "engine/quant.h"
#include "engine/quant_k.h"

typedef struct {
    long identical; /* results compared bit for bit (level vs avx2) */
    long close;     /* results compared with the scalar reference */
    long mismatches;
    char first[320]; /* the first mismatch, described */
} isa_report;

static int isa_quick; /* 1: a smaller grid of shapes (isa_check_q8a) */
static uint64_t isa_rng = 0x9E3779B97F4A7C15ull;
static uint32_t isa_u32(void) {
    isa_rng ^= isa_rng << 13;
    isa_rng ^= isa_rng >> 7;
    isa_rng ^= isa_rng << 17;
    return (uint32_t)(isa_rng >> 11);
}
static float isa_frand(void) { return (float)(isa_u32() & 0xFFFFFF) / 8388608.0f - 1.0f; } /* [-1, 1) */

static void isa_fail(isa_report *r, const char *what, uint32_t type, int nb, int rows, int nx, int row, int vec, float a,
                     float b) {
    if (!r->mismatches)
        snprintf(r->first, sizeof r->first, "%s: %s, %d blocks, %d rows, %d vectors: row %d vector %d: %.9g vs %.9g", what,
                 etok_type_name(type), nb, rows, nx, row, vec, (double)a, (double)b);
    r->mismatches++;
}

static void isa_same(isa_report *r, const char *what, uint32_t type, int nb, int rows, int nx, int row, int vec, float a,
                     float b) {
    r->identical++;
    if (memcmp(&a, &b, sizeof a) != 0) isa_fail(r, what, type, nb, rows, nx, row, vec, a, b);
}

/* |got - ref| <= 1e-4 mag + 1e-5, mag = the sum of |w_i x_i| (as tests/unit/test_quant.c: the
 * SIMD kernels use the activations' F16-rounded block sums where the reference may not) */
static void isa_near(isa_report *r, const char *what, uint32_t type, int nb, int rows, int nx, int row, int vec, float got,
                     float ref, double mag) {
    r->close++;
    if (!(fabs((double)got - ref) <= 1e-4 * mag + 1e-5)) isa_fail(r, what, type, nb, rows, nx, row, vec, got, ref);
}

static double isa_mag(uint32_t t, const uint8_t *row, const etok_block_q8a *x, int n) {
    static float wd[19 * 32];
    etok_dequantize_row(t, row, wd, n);
    double m = 0;
    for (int i = 0; i < n; i++) m += fabs((double)wd[i] * x[i / 32].d * x[i / 32].qs[i % 32]);
    /* Q4_0 (8 d s) and Q4_1/Q5_1 (m s) use s = d * sum(qs) rounded to F16 (relative error up
     * to 2^-11): 1e-4 * 10 covers it */
    const int bb = etok_type_block_bytes(t);
    for (int b = 0; b < n / 32; b++) {
        etok_f16 h;
        memcpy(&h, row + (size_t)b * (size_t)bb + (t == ETOK_T_Q4_0 ? 0 : 2), 2);
        const double c = t == ETOK_T_Q4_0 ? 8.0 * etok_f16_to_f32(h) : t == ETOK_T_Q4_1 || t == ETOK_T_Q5_1 ? etok_f16_to_f32(h) : 0;
        m += 10.0 * fabs(c * x[b].s);
    }
    return m;
}

enum { ISA_MAXNB = 19, ISA_MAXROWS = 10, ISA_MAXNX = 13, ISA_QK = 32 };

/* out[j * rows + r] for rows [r0, rows) through the three dispatched entry points */
static void isa_run(uint32_t t, const uint8_t *w, size_t rb, int r0, int rows, const etok_block_q8a *xq, int n, int nx,
                    float *mm, float *multi, float *single) {
    const size_t nbq = (size_t)(n / ISA_QK);
    for (int i = 0; i < rows * nx; i++) mm[i] = multi[i] = single[i] = 0;
    etok_matmul_rows(t, w, rb, r0, rows, xq, NULL, n, nx, mm, (size_t)rows);
    for (int r = r0; r < rows; r++) {
        etok_vec_dot_multi(t, w + (size_t)r * rb, xq, NULL, n, nx, multi + r, (size_t)rows);
        for (int j = 0; j < nx; j++) single[j * rows + r] = etok_vec_dot(t, w + (size_t)r * rb, xq + (size_t)j * nbq, NULL, n);
    }
}

/* Random weight rows: quantised from floats (raw = 0) or random bytes with a finite scale
 * (raw = 1); activations likewise (raw: any qs byte but -128, which the q8a quantiser never writes; finite d
 * and s). */
static void isa_fill(uint32_t t, int raw, int n, int rows, int nx, uint8_t *w, etok_block_q8a *xq) {
    static float f[ISA_MAXNB * ISA_QK * ISA_MAXNX];
    const size_t rb = etok_type_row_bytes(t, n);
    const int bb = etok_type_block_bytes(t), nb = n / ISA_QK;
    if (!raw) {
        for (int r = 0; r < rows; r++) {
            for (int i = 0; i < n; i++) f[i] = isa_frand() * 0.1f;
            etok_quantize_row(t, f, w + (size_t)r * rb, n);
        }
        for (int i = 0; i < n * nx; i++) f[i] = isa_frand();
        etok_quantize_q8a(f, xq, (int64_t)n * nx);
        return;
    }
    for (size_t i = 0; i < rb * (size_t)rows; i++) w[i] = (uint8_t)isa_u32();
    for (int b = 0; b < nb * rows; b++) { /* the f16 scale (and min) fields: small finite values */
        uint8_t *blk = w + (size_t)b * (size_t)bb;
        const etok_f16 d = etok_f32_to_f16(isa_frand() * 0.01f), m = etok_f32_to_f16(isa_frand() * 0.01f);
        memcpy(blk, &d, 2);
        if (t == ETOK_T_Q4_1 || t == ETOK_T_Q5_1) memcpy(blk + 2, &m, 2);
    }
    for (int b = 0; b < nb * nx; b++) {
        xq[b].d = isa_frand() * 0.05f;
        xq[b].s = isa_frand();
        /* -127..127: the q8a quantiser's range (round(x * 127 / amax)); at -128 the sign
         * trick of llama.cpp's kernels overflows, and kernels that form the same lanes another
         * way (the 4-row Q5_0 decode kernel) rightly differ there */
        for (int k = 0; k < ISA_QK; k++) {
            int8_t v = (int8_t)isa_u32();
            xq[b].qs[k] = v == -128 ? -127 : v;
        }
    }
}

static const uint32_t isa_q8a_types[] = {ETOK_T_Q4_0, ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_Q8_0, ETOK_T_IQ4_NL};
static const uint32_t isa_q8k_types[] = {ETOK_T_Q4_K, ETOK_T_Q6_K, ETOK_T_Q5_K, ETOK_T_Q3_K, ETOK_T_Q2_K};

static int isa_force(int level, isa_report *rep) {
    char err[256];
    if (etok_isa_force(level, err, sizeof err) == 0) return 0;
    if (!rep->mismatches) snprintf(rep->first, sizeof rep->first, "etok_isa_force: %s", err);
    rep->mismatches++;
    return -1;
}

static void isa_check_q8a(int level, isa_report *rep) {
    static uint8_t w[ISA_MAXROWS * ISA_MAXNB * 34];
    static etok_block_q8a xq[ISA_MAXNB * ISA_MAXNX];
    static float a_mm[ISA_MAXROWS * ISA_MAXNX], a_mu[ISA_MAXROWS * ISA_MAXNX], a_si[ISA_MAXROWS * ISA_MAXNX];
    static float b_mm[ISA_MAXROWS * ISA_MAXNX], b_mu[ISA_MAXROWS * ISA_MAXNX], b_si[ISA_MAXROWS * ISA_MAXNX];
    const int nbs[] = {1, 3, 19, 2, 5, 8, 18}, rowss[] = {1, 5, 10, 3, 4, 8}, nxs[] = {1, 4, 9, 13, 2, 3, 5, 7, 8, 12};
    /* isa_quick (an emulator's time): the first entries only, still odd block counts, 4-row
     * groups with rests, 8- and 4-vector groups with rests */
    const size_t n_nb = isa_quick ? 3 : sizeof nbs / sizeof nbs[0], n_rows = isa_quick ? 3 : sizeof rowss / sizeof rowss[0],
                 n_nx = isa_quick ? 4 : sizeof nxs / sizeof nxs[0];
    for (size_t ti = 0; ti < sizeof isa_q8a_types / sizeof isa_q8a_types[0]; ti++)
        for (int raw = 0; raw < 2; raw++)
            for (size_t a = 0; a < n_nb; a++)
                for (size_t b = 0; b < n_rows; b++)
                    for (size_t c = 0; c < n_nx; c++) {
                        const uint32_t t = isa_q8a_types[ti];
                        const int nb = nbs[a], rows = rowss[b], nx = nxs[c], n = nb * ISA_QK;
                        const int r0 = rows > 4 ? 1 : 0; /* a first row > 0 in some cases */
                        const size_t rb = etok_type_row_bytes(t, n), nbq = (size_t)nb;
                        isa_fill(t, raw, n, rows, nx, w, xq);
                        if (level > ETOK_ISA_AVX2) {
                            if (isa_force(ETOK_ISA_AVX2, rep)) return;
                            isa_run(t, w, rb, r0, rows, xq, n, nx, a_mm, a_mu, a_si);
                        }
                        if (isa_force(level, rep)) return;
                        isa_run(t, w, rb, r0, rows, xq, n, nx, b_mm, b_mu, b_si);
                        for (int j = 0; j < nx; j++)
                            for (int r = r0; r < rows; r++) {
                                const int k = j * rows + r;
                                if (level > ETOK_ISA_AVX2) {
                                    isa_same(rep, "matmul_rows vs avx2", t, nb, rows, nx, r, j, b_mm[k], a_mm[k]);
                                    isa_same(rep, "vec_dot_multi vs avx2", t, nb, rows, nx, r, j, b_mu[k], a_mu[k]);
                                    isa_same(rep, "vec_dot vs avx2", t, nb, rows, nx, r, j, b_si[k], a_si[k]);
                                }
                                if (!raw) {
                                    const uint8_t *wr = w + (size_t)r * rb;
                                    const etok_block_q8a *xj = xq + (size_t)j * nbq;
                                    const float ref = etok_vec_dot_ref(t, wr, xj, NULL, n);
                                    const double mag = isa_mag(t, wr, xj, n);
                                    isa_near(rep, "matmul_rows vs scalar", t, nb, rows, nx, r, j, b_mm[k], ref, mag);
                                    isa_near(rep, "vec_dot vs scalar", t, nb, rows, nx, r, j, b_si[k], ref, mag);
                                }
                            }
                    }
}

/* K-quants on Q8_K activations (quant_k.c): the dispatched dot and matmul at `level` against
 * avx2 bit for bit, and against the scalar reference (itself bit-equal to AVX2 by design). */
static void isa_check_q8k(int level, isa_report *rep) {
    enum { KMAXNB = 3, KROWS = 5, KNX = 9 };
    static uint8_t w[KROWS * KMAXNB * 210];
    static float f[KMAXNB * 256 * KNX];
    static etok_block_q8k y[KMAXNB * KNX];
    static float a_mm[KROWS * KNX], b_mm[KROWS * KNX];
    for (size_t ti = 0; ti < sizeof isa_q8k_types / sizeof isa_q8k_types[0]; ti++)
        for (int nb = 1; nb <= KMAXNB; nb++)
            for (int nx = 1; nx <= KNX; nx += 3) {
                const uint32_t t = isa_q8k_types[ti];
                const int n = nb * 256;
                const size_t rb = etok_type_row_bytes(t, n);
                for (int r = 0; r < KROWS; r++) {
                    for (int i = 0; i < n; i++) f[i] = isa_frand() * 0.1f;
                    etok_quantize_row(t, f, w + (size_t)r * rb, n);
                }
                for (int i = 0; i < n * nx; i++) f[i] = isa_frand();
                etok_quantize_q8k(f, y, (int64_t)n * nx);
                if (level > ETOK_ISA_AVX2) {
                    if (isa_force(ETOK_ISA_AVX2, rep)) return;
                    etok_matmul_rows_q8k(t, w, rb, 0, KROWS, y, n, nx, a_mm, KROWS);
                }
                if (isa_force(level, rep)) return;
                etok_matmul_rows_q8k(t, w, rb, 0, KROWS, y, n, nx, b_mm, KROWS);
                for (int j = 0; j < nx; j++)
                    for (int r = 0; r < KROWS; r++) {
                        const int k = j * KROWS + r;
                        const float ref = etok_vec_dot_q8k_ref(t, w + (size_t)r * rb, y + (size_t)j * (size_t)nb, n);
                        const float one = etok_vec_dot_q8k(t, w + (size_t)r * rb, y + (size_t)j * (size_t)nb, n);
                        if (level > ETOK_ISA_AVX2) isa_same(rep, "q8k matmul vs avx2", t, nb, KROWS, nx, r, j, b_mm[k], a_mm[k]);
                        isa_same(rep, "q8k matmul vs scalar", t, nb, KROWS, nx, r, j, b_mm[k], ref);
                        isa_same(rep, "q8k vec_dot vs scalar", t, nb, KROWS, nx, r, j, one, ref);
                    }
            }
}

/* Level amx: the AMX prefill kernel (the 32-value block formats, >= ETOK_AMX_MIN_TOKENS tokens,
 * quant_amx.c), for Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and IQ4_NL through etok_matmul_rows, on quantised
 * and raw data, rows in partial 16-groups at both ends, tokens in partial 16-groups, block
 * counts across the kernel's 64-block repack chunks, an output stride wider than the rows:
 * - bit for bit equal to etok_matmul_rows_amx_ref (the amx level's summation order);
 * - Q4_0: bit for bit equal to the avx2 8-row kernel (llama.cpp's Q4_0 order, which the engine
 *   uses for Q4_0: etok_matmul_rows_q4_0_8x8), whose per-block chain is the amx level's;
 * - the others, without -128 quants, within (nb + 8) * 2^-23 * mag of the avx2 kernel (mag = sum over
 *   values of (|w_i - m| + |m|) |x_i|, m the block's minimum or 0: the error bound of each
 *   summation order, twice), the largest |amx - avx2| / mag kept in isa_amx_max_rel;
 * - output columns outside [r0, r1) untouched; below 16 tokens the avx2 bits (kernel unused);
 * - the repacked copy the engine loads the format into (Q8_0x4, Q4_0x8, Q4_1x8 / Q5_1x8,
 *   Q5_0x8, IQ4_NLx8) through its own matmul, bit for bit equal to the file layout's result
 *   (for Q4_0: through etok_matmul_rows_q4_0_8x8, the engine's entry for Q4_0 rows in the file's
 *   layout, and from 16 tokens through etok_matmul_rows as well), columns outside included. */
static double isa_amx_max_rel;

/* One amx prefill result (row r, vector j), the checks every format shares: a column outside
 * [r0, r1) untouched (-7, as filled); below ETOK_AMX_MIN_TOKENS the avx2 bits; else the amx
 * reference's bits. Returns 1 when the result is also to be held to avx2's tolerance. */
static int isa_amx_result(isa_report *rep, uint32_t t, int nb, int r0, int r1, int nx, int r, int j, float got, float avx2,
                          float ref) {
    if (r < r0 || r >= r1) {
        isa_same(rep, "amx: column outside [r0, r1) untouched", t, nb, r1, nx, r, j, got, -7.0f);
        return 0;
    }
    if (nx < ETOK_AMX_MIN_TOKENS) {
        isa_same(rep, "amx level below 16 tokens vs avx2", t, nb, r1, nx, r, j, got, avx2);
        return 0;
    }
    isa_same(rep, "amx matmul vs its scalar reference", t, nb, r1, nx, r, j, got, ref);
    return 1;
}

/* |amx - avx2| <= (nb + 8) 2^-23 mag (mag: the sum of |terms|), the largest ratio kept */
static void isa_amx_close(isa_report *rep, uint32_t t, int nb, int r1, int nx, int r, int j, float got, float avx2, double mag) {
    const double diff = fabs((double)got - avx2);
    if (mag > 0 && diff / mag > isa_amx_max_rel) isa_amx_max_rel = diff / mag;
    rep->close++;
    if (!(diff <= (nb + 8) * ldexp(1.0, -23) * mag))
        isa_fail(rep, "amx matmul vs avx2 (tolerance (nb+8)*2^-23*mag)", t, nb, r1, nx, r, j, got, avx2);
}

/* The sum of |terms| of a row's product in either order: over values, (|w_i - m| + |m|) |x_i|,
 * m the value's block minimum (Q4_1 / Q5_1; else 0), x_i = d_a q_i (n <= 130 x 32 values). */
static double isa_amx_mag(uint32_t t, const uint8_t *row, const etok_block_q8a *x, int n) {
    static float wd[130 * 32];
    const int has_min = t == ETOK_T_Q4_1 || t == ETOK_T_Q5_1, bb = etok_type_block_bytes(t);
    etok_dequantize_row(t, row, wd, n);
    double mag = 0;
    for (int i = 0; i < n; i++) {
        double m = 0;
        if (has_min) {
            etok_f16 mh;
            memcpy(&mh, row + (size_t)(i / 32) * (size_t)bb + 2, 2);
            m = etok_f16_to_f32(mh);
        }
        mag += (fabs(wd[i] - m) + fabs(m)) * fabs((double)x[i / 32].d * x[i / 32].qs[i % 32]);
    }
    return mag;
}

/* the layout's matmul over the copy of rows [0, rows8) (packed in `dst`) */
static void isa_amx_packed(uint32_t t, const uint8_t *w, size_t rb, int64_t rows8, int64_t n, uint8_t *dst, int64_t r0,
                           int64_t r1, const etok_block_q8a *xq, int nx, float *out, size_t stride) {
    switch (t) {
    case ETOK_T_Q8_0:
        etok_q8x4_pack(w, rb, rows8, n, dst);
        etok_matmul_q8x4(dst, r0, r1, xq, n, nx, out, stride);
        break;
    case ETOK_T_Q4_0:
        etok_q4_0x8_pack(w, rb, rows8, n, dst);
        etok_matmul_q4_0x8(dst, r0, r1, xq, n, nx, out, stride);
        break;
    case ETOK_T_Q5_0:
        etok_q50x8_pack(w, rb, rows8, n, dst);
        etok_matmul_q50x8(dst, r0, r1, xq, n, nx, out, stride);
        break;
    case ETOK_T_IQ4_NL:
        etok_iq4nlx8_pack(w, rb, rows8, n, dst);
        etok_matmul_iq4nlx8(dst, r0, r1, xq, n, nx, out, stride);
        break;
    default: /* Q4_1, Q5_1 */
        etok_q41x8_pack(t, w, rb, rows8, n, dst);
        etok_matmul_q41x8(t, dst, r0, r1, xq, n, nx, out, stride);
        break;
    }
}

static void isa_check_amx(isa_report *rep) {
    enum { AMAXNB = 130, AMAXROWS = 40, AMAXNX = 35, PAD = 3 };
    static uint8_t w[AMAXROWS * AMAXNB * 34];
    static etok_block_q8a xq[AMAXNB * AMAXNX];
    static float f[AMAXNB * 32 * AMAXNX];
    static float o_a[AMAXNX * (AMAXROWS + PAD)], o_b[AMAXNX * (AMAXROWS + PAD)], o_r[AMAXNX * (AMAXROWS + PAD)];
    static uint8_t wx[AMAXROWS * AMAXNB * 34]; /* the repacked copy: same size as the rows */
    static float o_x[AMAXNX * (AMAXROWS + PAD)];
    const int nbs[] = {1, 3, 66, 130, 2}, r0s[] = {0, 3, 0, 17, 8, 0}, r1s[] = {16, 40, 5, 33, 40, 36}, nxs[] = {16, 17, 35, 15, 32};
    const uint32_t types[] = {ETOK_T_Q8_0, ETOK_T_Q4_0, ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_IQ4_NL};
    const size_t n_nb = isa_quick ? 3 : sizeof nbs / sizeof nbs[0], n_rr = sizeof r0s / sizeof r0s[0],
                 n_nx = isa_quick ? 4 : sizeof nxs / sizeof nxs[0];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        const int has_min = t == ETOK_T_Q4_1 || t == ETOK_T_Q5_1, bb = etok_type_block_bytes(t);
        /* raw 1: any weight byte and (Q8_0 only) -128 activations; raw 2 (Q8_0 only): -127..127 */
        for (int raw = 0; raw < (t == ETOK_T_Q8_0 ? 3 : 2); raw++)
            for (size_t a = 0; a < n_nb; a++)
                for (size_t b = 0; b < n_rr; b++)
                    for (size_t c = 0; c < n_nx; c++) {
                        const int nb = nbs[a], r0 = r0s[b], r1 = r1s[b], nx = nxs[c], n = nb * 32;
                        const int64_t rows8 = (r1 + 7) / 8 * 8; /* whole 8-row groups (<= AMAXROWS) */
                        const size_t rb = etok_type_row_bytes(t, n), stride = (size_t)(r1 + PAD);
                        if (!raw) {
                            for (int r = 0; r < rows8; r++) {
                                for (int i = 0; i < n; i++) f[i] = isa_frand() * 0.1f + (has_min ? 0.03f : 0.0f);
                                etok_quantize_row(t, f, w + (size_t)r * rb, n);
                            }
                            for (int i = 0; i < n * nx; i++) f[i] = isa_frand();
                            etok_quantize_q8a(f, xq, (int64_t)n * nx);
                        } else { /* random bytes; small finite scales (and minima) */
                            for (size_t i = 0; i < rb * (size_t)rows8; i++) {
                                w[i] = (uint8_t)isa_u32();
                                if (raw == 2 && w[i] == 0x80) w[i] = 0x81;
                            }
                            for (int k = 0; k < nb * rows8; k++) {
                                const etok_f16 d = etok_f32_to_f16(isa_frand() * 0.01f), m = etok_f32_to_f16(isa_frand() * 0.05f);
                                memcpy(w + (size_t)k * (size_t)bb, &d, 2);
                                if (has_min) memcpy(w + (size_t)k * (size_t)bb + 2, &m, 2);
                            }
                            for (int k = 0; k < nb * nx; k++) {
                                xq[k].d = isa_frand() * 0.05f;
                                int sum = 0;
                                for (int q = 0; q < 32; q++) {
                                    xq[k].qs[q] = (int8_t)isa_u32();
                                    /* -128 (never written by the q8a quantisation) only for Q8_0 raw 1 */
                                    if ((raw == 2 || t != ETOK_T_Q8_0) && xq[k].qs[q] == -128) xq[k].qs[q] = -127;
                                    sum += xq[k].qs[q];
                                }
                                xq[k].s = xq[k].d * (float)sum;
                            }
                        }
                        for (size_t i = 0; i < (size_t)nx * stride; i++) o_a[i] = o_b[i] = o_r[i] = o_x[i] = -7.0f;
                        if (isa_force(ETOK_ISA_AVX2, rep)) return;
                        if (t == ETOK_T_Q4_0) /* the engine's Q4_0 order (llama.cpp's 8-row one): the amx level's */
                            etok_matmul_rows_q4_0_8x8(w, rb, r0, r1, xq, n, nx, o_a, stride);
                        else
                            etok_matmul_rows(t, w, rb, r0, r1, xq, NULL, n, nx, o_a, stride);
                        if (isa_force(ETOK_ISA_AMX, rep)) return;
                        if (t == ETOK_T_Q4_0) /* the engine's entry for Q4_0 rows in the file's layout */
                            etok_matmul_rows_q4_0_8x8(w, rb, r0, r1, xq, n, nx, o_b, stride);
                        else
                            etok_matmul_rows(t, w, rb, r0, r1, xq, NULL, n, nx, o_b, stride);
                        etok_matmul_rows_amx_ref(t, w, rb, r0, r1, xq, n, nx, o_r, stride);
                        isa_amx_packed(t, w, rb, rows8, n, wx, r0, r1, xq, nx, o_x, stride);
                        for (int j = 0; j < nx; j++)
                            for (int r = 0; r < (int)stride; r++) {
                                const size_t k = (size_t)j * stride + (size_t)r;
                                isa_same(rep, "amx over the repacked copy vs the file layout", t, nb, r1, nx, r, j, o_x[k], o_b[k]);
                            }
                        if (t == ETOK_T_Q4_0 && nx >= ETOK_AMX_MIN_TOKENS) { /* etok_matmul_rows takes AMX too */
                            for (size_t i = 0; i < (size_t)nx * stride; i++) o_x[i] = -7.0f;
                            etok_matmul_rows(t, w, rb, r0, r1, xq, NULL, n, nx, o_x, stride);
                            for (int j = 0; j < nx; j++)
                                for (int r = 0; r < (int)stride; r++) {
                                    const size_t k = (size_t)j * stride + (size_t)r;
                                    isa_same(rep, "amx through etok_matmul_rows vs the Q4_0 8-row entry", t, nb, r1, nx, r, j,
                                             o_x[k], o_b[k]);
                                }
                        }
                        for (int j = 0; j < nx; j++)
                            for (int r = 0; r < (int)stride; r++) {
                                const size_t k = (size_t)j * stride + (size_t)r;
                                if (!isa_amx_result(rep, t, nb, r0, r1, nx, r, j, o_b[k], o_a[k], o_r[k])) continue;
                                if (t == ETOK_T_Q4_0) {
                                    isa_same(rep, "amx matmul vs the avx2 8-row Q4_0 kernel", t, nb, r1, nx, r, j, o_b[k], o_a[k]);
                                    continue;
                                }
                                /* -128 quants (Q8_0 raw 1; never written by Q8_0 quantisation, whose quants
                                 * are -127..127) overflow the avx2 kernel's u8 x s8 sign trick (as
                                 * llama.cpp's); AMX and its reference take them exactly: no avx2
                                 * comparison there */
                                if (t == ETOK_T_Q8_0 && raw == 1) continue;
                                isa_amx_close(rep, t, nb, r1, nx, r, j, o_b[k], o_a[k],
                                              isa_amx_mag(t, w + (size_t)r * rb, xq + (size_t)j * (size_t)nb, n));
                            }
                    }
    }
}

/* Level amx, Q6_K and Q3_K (quant_amx.c's super-block kernel, >= ETOK_AMX_MIN_TOKENS tokens)
 * through etok_matmul_rows_q8k, on quantised rows and on raw bytes (every value and scale
 * byte, Q6_K's -128 included), rows in partial 16-groups at both ends, tokens in partial 16-groups, super-block
 * counts across the kernel's 4-block chunks, an output stride wider than the rows:
 * - bit for bit equal to etok_matmul_rows_amx_k_ref;
 * - within (nb + 8) * 2^-23 * mag of the avx2 kernel (mag = sum over values of |w_i| |x_i|), the
 *   largest |amx - avx2| / mag kept in isa_amx_max_rel;
 * - output columns outside [r0, r1) untouched; below 16 tokens the avx2 bits. */
static void isa_check_amx_k(isa_report *rep) {
    enum { QMAXNB = 9, QMAXROWS = 40, QMAXNX = 35, PAD = 3 };
    static uint8_t w[QMAXROWS * QMAXNB * 210]; /* the larger block (Q6_K) */
    static etok_block_q8k y[QMAXNB * QMAXNX];
    static float f[QMAXNB * 256 * QMAXNX], wd[QMAXNB * 256];
    static float o_a[QMAXNX * (QMAXROWS + PAD)], o_b[QMAXNX * (QMAXROWS + PAD)], o_r[QMAXNX * (QMAXROWS + PAD)];
    const uint32_t types[] = {ETOK_T_Q6_K, ETOK_T_Q3_K};
    const int nbs[] = {1, 6, 9, 4}, r0s[] = {0, 3, 0, 17, 8}, r1s[] = {16, 40, 5, 33, 40}, nxs[] = {16, 17, 35, 15, 32};
    const size_t n_nb = isa_quick ? 2 : sizeof nbs / sizeof nbs[0], n_nx = isa_quick ? 4 : sizeof nxs / sizeof nxs[0];
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
    for (int raw = 0; raw < 2; raw++)
        for (size_t a = 0; a < n_nb; a++)
            for (size_t b = 0; b < sizeof r0s / sizeof r0s[0]; b++)
                for (size_t c = 0; c < n_nx; c++) {
                    const uint32_t t = types[ti];
                    const int nb = nbs[a], r0 = r0s[b], r1 = r1s[b], nx = nxs[c], n = nb * 256, bb = etok_type_block_bytes(t);
                    const size_t rb = etok_type_row_bytes(t, n), stride = (size_t)(r1 + PAD);
                    for (int r = 0; r < r1; r++) {
                        if (!raw) {
                            for (int i = 0; i < n; i++) f[i] = isa_frand() * 0.1f;
                            etok_quantize_row(t, f, w + (size_t)r * rb, n);
                            continue;
                        }
                        for (size_t i = 0; i < rb; i++) w[(size_t)r * rb + i] = (uint8_t)isa_u32();
                        for (int i = 0; i < nb; i++) { /* a small finite super-block scale */
                            const etok_f16 d = etok_f32_to_f16(isa_frand() * 0.001f);
                            memcpy(w + (size_t)r * rb + (size_t)i * (size_t)bb + (size_t)bb - 2, &d, 2); /* d: the last field */
                        }
                    }
                    for (int i = 0; i < n * nx; i++) f[i] = isa_frand();
                    etok_quantize_q8k(f, y, (int64_t)n * nx);
                    for (size_t i = 0; i < (size_t)nx * stride; i++) o_a[i] = o_b[i] = o_r[i] = -7.0f;
                    if (isa_force(ETOK_ISA_AVX2, rep)) return;
                    etok_matmul_rows_q8k(t, w, rb, r0, r1, y, n, nx, o_a, stride);
                    if (isa_force(ETOK_ISA_AMX, rep)) return;
                    etok_matmul_rows_q8k(t, w, rb, r0, r1, y, n, nx, o_b, stride);
                    etok_matmul_rows_amx_k_ref(t, w, rb, r0, r1, y, n, nx, o_r, stride);
                    for (int j = 0; j < nx; j++)
                        for (int r = 0; r < (int)stride; r++) {
                            const size_t k = (size_t)j * stride + (size_t)r;
                            if (!isa_amx_result(rep, t, nb, r0, r1, nx, r, j, o_b[k], o_a[k], o_r[k])) continue;
                            etok_dequantize_row(t, w + (size_t)r * rb, wd, n);
                            double mag = 0;
                            for (int i = 0; i < n; i++)
                                mag += fabs((double)wd[i]) * fabs((double)y[(size_t)j * (size_t)nb + (size_t)(i / 256)].d *
                                                                  y[(size_t)j * (size_t)nb + (size_t)(i / 256)].qs[i % 256]);
                            isa_amx_close(rep, t, nb, r1, nx, r, j, o_b[k], o_a[k], mag);
                        }
                }
}

/* The Q4_1x8 / Q5_1x8 copies for one and two tokens, the Q4_0x8, Q8_0x4, Q5_0x8, IQ4_NLx8
 * copies for one (decode: quant_avx512.c's two-group kernels, IQ4_NLx8's one-group kernel, at
 * avx512 and amx) against the avx2 kernels bit for bit: even and odd block counts (IQ4_NLx8's
 * odd last block), odd group counts (a group paired with itself; [4, 16): three 4-row
 * groups), partial groups at both ends, and 67 groups (decode in parts, etok_decode_order);
 * rows outside [r0, r1) untouched. */
static void isa_check_x8(int level, isa_report *rep) {
    enum { XMAXROWS = 536, XMAXNB = 19, XMAXNX = 2, XPAD = 3 };
    static uint8_t w[XMAXROWS * XMAXNB * 34], dst[XMAXROWS * XMAXNB * 34];
    static etok_block_q8a xq[XMAXNB * XMAXNX];
    static float f[XMAXNB * 32 * XMAXNX], o_a[XMAXNX * (XMAXROWS + XPAD)], o_b[XMAXNX * (XMAXROWS + XPAD)];
    const int nbs[] = {1, 2, 3, 19}, r0s[] = {0, 0, 3, 8, 0, 4}, r1s[] = {8, 24, 37, 40, 536, 16};
    const uint32_t types[] = {ETOK_T_Q4_1, ETOK_T_Q5_1, ETOK_T_Q4_0, ETOK_T_Q8_0, ETOK_T_Q5_0, ETOK_T_IQ4_NL};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t a = 0; a < sizeof nbs / sizeof nbs[0]; a++)
            for (size_t b = 0; b < sizeof r0s / sizeof r0s[0]; b++)
                for (int nx = 1; nx <= XMAXNX; nx++) {
                    const uint32_t t = types[ti];
                    const int nb = nbs[a], n = nb * 32, r0 = r0s[b], r1 = r1s[b], rows8 = (r1 + 7) / 8 * 8;
                    if ((isa_quick && (nb == 19 || r1 == 536)) || (t != ETOK_T_Q4_1 && t != ETOK_T_Q5_1 && nx > 1)) continue;
                    const size_t rb = etok_type_row_bytes(t, n), stride = (size_t)(r1 + XPAD);
                    for (int r = 0; r < rows8; r++) {
                        for (int i = 0; i < n; i++) f[i] = isa_frand() * 0.1f + 0.03f;
                        etok_quantize_row(t, f, w + (size_t)r * rb, n);
                    }
                    for (int i = 0; i < n * nx; i++) f[i] = isa_frand();
                    etok_quantize_q8a(f, xq, (int64_t)n * nx);
                    if (t == ETOK_T_Q4_0) etok_q4_0x8_pack(w, rb, rows8, n, dst);
                    else if (t == ETOK_T_Q8_0) etok_q8x4_pack(w, rb, rows8, n, dst);
                    else if (t == ETOK_T_Q5_0) etok_q50x8_pack(w, rb, rows8, n, dst);
                    else if (t == ETOK_T_IQ4_NL) etok_iq4nlx8_pack(w, rb, rows8, n, dst);
                    else etok_q41x8_pack(t, w, rb, rows8, n, dst);
                    for (size_t i = 0; i < sizeof o_a / sizeof o_a[0]; i++) o_a[i] = o_b[i] = -7.0f;
                    if (isa_force(ETOK_ISA_AVX2, rep)) return;
                    if (t == ETOK_T_Q4_0) etok_matmul_q4_0x8(dst, r0, r1, xq, n, nx, o_a, stride);
                    else if (t == ETOK_T_Q8_0) etok_matmul_q8x4(dst, r0, r1, xq, n, nx, o_a, stride);
                    else if (t == ETOK_T_Q5_0) etok_matmul_q50x8(dst, r0, r1, xq, n, nx, o_a, stride);
                    else if (t == ETOK_T_IQ4_NL) etok_matmul_iq4nlx8(dst, r0, r1, xq, n, nx, o_a, stride);
                    else etok_matmul_q41x8(t, dst, r0, r1, xq, n, nx, o_a, stride);
                    if (isa_force(level, rep)) return;
                    if (t == ETOK_T_Q4_0) etok_matmul_q4_0x8(dst, r0, r1, xq, n, nx, o_b, stride);
                    else if (t == ETOK_T_Q8_0) etok_matmul_q8x4(dst, r0, r1, xq, n, nx, o_b, stride);
                    else if (t == ETOK_T_Q5_0) etok_matmul_q50x8(dst, r0, r1, xq, n, nx, o_b, stride);
                    else if (t == ETOK_T_IQ4_NL) etok_matmul_iq4nlx8(dst, r0, r1, xq, n, nx, o_b, stride);
                    else etok_matmul_q41x8(t, dst, r0, r1, xq, n, nx, o_b, stride);
                    for (int j = 0; j < nx; j++)
                        for (size_t r = 0; r < stride; r++) {
                            const size_t k = (size_t)j * stride + r;
                            isa_same(rep, "x8 decode vs avx2", t, nb, r1 - r0, nx, (int)r, j, o_b[k], o_a[k]);
                            if ((int)r < r0 || (int)r >= r1) isa_same(rep, "x8 decode: rows outside untouched", t, nb, r1 - r0, nx, (int)r, j, o_b[k], -7.0f);
                        }
                }
}

/* All comparisons at `level` (which must not exceed the detected level). */
static void isa_check_level(int level, isa_report *rep) {
    isa_check_q8a(level, rep);
    isa_check_q8k(level, rep);
    if (level > ETOK_ISA_AVX2) isa_check_x8(level, rep);
    if (level == ETOK_ISA_AMX) {
        isa_check_amx(rep);
        isa_check_amx_k(rep);
    }
}

#endif
