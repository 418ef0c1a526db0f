/* test_quant_q5_0x8.c — Q5_0 repacked into the 8-row layout Q5_0x8 (src/engine/quant_q5_0x8.c):
 * the rule picking matrices; packing moves bytes only (every block and every dequantised row
 * comes back as stored); the scalar reference over the packed bytes equals an independent
 * spelling of the order from the file's blocks (8 lanes of exact 4-product integer sums of
 * (q - 16) x a, one fma per lane and block, etok_hsum_ps's reduction) bit for bit; the
 * dispatched kernel (AVX2 here: the one-token decode kernel and the several-token prefill
 * kernel) equals the reference and, where SIMD is active, the file-layout kernels
 * (etok_matmul_rows: the 4-row decode kernel and quant_q5_0.c's prefill tiles, and etok_vec_dot
 * row by row) bit for bit, for 1..9 tokens, 8..64 rows, 1..33 blocks (odd counts included),
 * rows longer than the kernels' stack buffers, row ranges starting and ending inside 8-row
 * groups; rows outside the range are not written. Weights at the extremes (q = 0 and 31,
 * activations +-127) check that the integer lanes stay exact. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/quant.h"

static uint32_t rng = 5050u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static void test_rule(void **state) {
    (void)state;
    assert_true(etok_q50x8_applies(ETOK_T_Q5_0, 576, 576));
    assert_true(etok_q50x8_applies(ETOK_T_Q5_0, 49152, 576));
    assert_true(etok_q50x8_applies(ETOK_T_Q5_0, 8, 32));
    assert_false(etok_q50x8_applies(ETOK_T_Q5_0, 100, 576));
    assert_false(etok_q50x8_applies(ETOK_T_Q5_0, 0, 576));
    assert_false(etok_q50x8_applies(ETOK_T_Q5_0, 576, 48));
    assert_false(etok_q50x8_applies(ETOK_T_Q5_0, 576, 0));
    assert_false(etok_q50x8_applies(ETOK_T_Q4_0, 576, 576));
    assert_false(etok_q50x8_applies(ETOK_T_Q5_1, 576, 576));
    assert_false(etok_q50x8_applies(ETOK_T_IQ4_NL, 576, 576));
    assert_int_equal(etok_q50x8_group_bytes(576), 8 * etok_type_row_bytes(ETOK_T_Q5_0, 576));
}

/* rows of random weights (scaled by wscale) and nx activation vectors; extreme: every weight
 * block at q = 0 or 31 and activations at +-127 */
static void fill(uint8_t *m, int rows, int n, etok_block_q8a *xq, int nx, float wscale, int extreme) {
    const size_t rb = etok_type_row_bytes(ETOK_T_Q5_0, n);
    float *w = malloc((size_t)n * sizeof *w);
    assert_non_null(w);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < n; i++) w[i] = wscale * frand();
        etok_quantize_row(ETOK_T_Q5_0, w, m + (size_t)r * rb, n);
        if (extreme)
            for (int i = 0; i < n / 32; i++) {
                etok_block_q5_0 *b = (etok_block_q5_0 *)(void *)(m + (size_t)r * rb) + i;
                const int hi = (r + i) % 2; /* all 31, or all 0 */
                memset(b->qs, hi ? 0xFF : 0x00, sizeof b->qs);
                memset(b->qh, hi ? 0xFF : 0x00, sizeof b->qh);
            }
    }
    free(w);
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int j = 0; j < nx; j++) {
        for (int i = 0; i < n; i++) x[i] = extreme ? ((i + j) % 3 ? 1.0f : -1.0f) : frand() * (1.0f + (float)(i % 5));
        etok_quantize_q8a(x, xq + (size_t)j * (size_t)(n / 32), n);
    }
    free(x);
}

/* The order, spelled out from the file's blocks (independent of the packed layout). */
static float spec_row(const uint8_t *row, const etok_block_q8a *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const etok_block_q5_0 *b = (const etok_block_q5_0 *)(const void *)row + i;
        uint32_t qh;
        memcpy(&qh, b->qh, 4);
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (b->qs[j] & 0xF) | (int)(((qh >> j) & 1u) << 4);
            q[j + 16] = (b->qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        }
        const float scale = etok_f16_to_f32(b->d) * y[i].d;
        for (int L = 0; L < 8; L++) {
            int s = 0;
            for (int j = 0; j < 4; j++) s += (q[4 * L + j] - 16) * y[i].qs[4 * L + j];
            acc[L] = fmaf(scale, (float)s, acc[L]);
        }
    }
    const float s0 = acc[4] + acc[0], s1 = acc[5] + acc[1], s2 = acc[6] + acc[2], s3 = acc[7] + acc[3];
    const float t0 = s0 + s2, t1 = s1 + s3;
    return t0 + t1;
}

static void test_pack_roundtrip(void **state) {
    (void)state;
    enum { ROWS = 24, N = 7 * 32 };
    const size_t rb = etok_type_row_bytes(ETOK_T_Q5_0, N);
    uint8_t *m = malloc(ROWS * rb), *p = malloc(ROWS * rb);
    static etok_block_q8a xq[N / 32];
    assert_true(m && p);
    fill(m, ROWS, N, xq, 1, 1.0f, 0);
    memset(p, 0xA5, ROWS * rb);
    etok_q50x8_pack(m, rb, ROWS, N, p);
    float a[N], b[N];
    const size_t bs = sizeof(etok_block_q5_0);
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < N / 32; i++) {
            etok_block_q5_0 blk;
            memset(&blk, 0, sizeof blk);
            etok_q50x8_get_block(p, N, r, i, &blk);
            if (memcmp(&blk, m + (size_t)r * rb + (size_t)i * bs, bs) != 0) fail_msg("row %d block %d differs", r, i);
        }
        etok_dequantize_row(ETOK_T_Q5_0, m + (size_t)r * rb, a, N);
        etok_q50x8_dequantize_row(p, N, r, b);
        if (memcmp(a, b, sizeof a) != 0) fail_msg("row %d: dequantised values differ", r);
    }
    assert_true(memcmp(p + rb, m + rb, bs) != 0); /* the layout really moved bytes */
    free(m);
    free(p);
}

static void check_bits(int rows, int n, int nxmax, float wscale, int extreme) {
    const size_t rb = etok_type_row_bytes(ETOK_T_Q5_0, n);
    const int64_t nb = n / 32;
    uint8_t *m = malloc((size_t)rows * rb), *p = malloc((size_t)rows * rb);
    etok_block_q8a *xq = malloc((size_t)nxmax * (size_t)nb * sizeof *xq);
    const size_t outn = (size_t)nxmax * (size_t)rows;
    float *o_file = malloc(outn * sizeof(float)), *o_x8 = malloc(outn * sizeof(float)), *o_ref = malloc(outn * sizeof(float));
    assert_true(m && p && xq && o_file && o_x8 && o_ref);
    fill(m, rows, n, xq, nxmax, wscale, extreme);
    etok_q50x8_pack(m, rb, rows, n, p);
    const int64_t ranges[][2] = {{0, rows}, {3, rows - 5}, {8, 16}, {5, 6}, {rows - 8, rows}, {4, rows}};
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++)
        for (int nx = 1; nx <= nxmax; nx++) {
            const int64_t r0 = ranges[ri][0], r1 = ranges[ri][1];
            if (!(r0 < r1 && r1 <= rows)) continue;
            memset(o_file, 0, outn * sizeof(float));
            memset(o_x8, 0x7f, outn * sizeof(float));
            memset(o_ref, 0x7f, outn * sizeof(float));
            etok_matmul_rows(ETOK_T_Q5_0, m, rb, r0, r1, xq, NULL, n, nx, o_file, (size_t)rows);
            etok_matmul_q50x8(p, r0, r1, xq, n, nx, o_x8, (size_t)rows);
            etok_matmul_q50x8_ref(p, r0, r1, xq, n, nx, o_ref, (size_t)rows);
            for (int j = 0; j < nx; j++)
                for (int r = 0; r < rows; r++) {
                    const size_t at = (size_t)j * (size_t)rows + (size_t)r;
                    if (!(r >= r0 && r < r1)) {
                        uint32_t u, v;
                        memcpy(&u, &o_x8[at], 4);
                        memcpy(&v, &o_ref[at], 4);
                        if (u != 0x7f7f7f7fu || v != 0x7f7f7f7fu)
                            fail_msg("rows %d n=%d nx=%d: row %d outside [%lld,%lld) written", rows, n, nx, r, (long long)r0,
                                     (long long)r1);
                        continue;
                    }
                    const etok_block_q8a *y = xq + (size_t)j * (size_t)nb;
                    const float spec = spec_row(m + (size_t)r * rb, y, nb);
                    const float one = etok_vec_dot(ETOK_T_Q5_0, m + (size_t)r * rb, y, NULL, n);
                    if (memcmp(&o_x8[at], &o_ref[at], 4) != 0 || memcmp(&o_ref[at], &spec, 4) != 0 ||
                        (etok_simd_active() && (memcmp(&o_x8[at], &o_file[at], 4) != 0 || memcmp(&o_x8[at], &one, 4) != 0)))
                        fail_msg("rows %d n=%d nx=%d row %d token %d: x8 %.9g ref %.9g spec %.9g file %.9g vec_dot %.9g",
                                 rows, n, nx, r, j, o_x8[at], o_ref[at], spec, o_file[at], one);
                }
        }
    free(m);
    free(p);
    free(xq);
    free(o_file);
    free(o_x8);
    free(o_ref);
}

static void test_bits(void **state) {
    (void)state;
    const int rows[] = {8, 16, 24, 64};
    const int widths[] = {32, 96, 160, 576, 33 * 32}; /* 1, 3, 5, 18, 33 blocks */
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            check_bits(rows[ri], widths[wi], 9, 0.1f, 0);
            check_bits(rows[ri], widths[wi], 5, 10.0f, 0);
        }
}

/* q = 0 and 31 against +-127: the lanes' extremes (|sum| = 4 x 16 x 127) stay exact */
static void test_extremes(void **state) {
    (void)state;
    check_bits(16, 576, 4, 1.0f, 1);
    check_bits(8, 33 * 32, 3, 1.0f, 1);
}

/* rows longer than the kernels' stack buffers (65 blocks: the prefill kernel's heap buffer;
 * 257: the decode kernel's) */
static void test_long_rows(void **state) {
    (void)state;
    check_bits(16, 65 * 32, 3, 0.5f, 0);
    check_bits(8, 257 * 32, 2, 0.5f, 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_bits),
        cmocka_unit_test(test_extremes),
        cmocka_unit_test(test_long_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
