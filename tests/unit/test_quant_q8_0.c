/* test_quant_q8_0.c — the register-tiled Q8_0 kernels (src/engine/quant_q8_0.c): the scalar
 * reference is a dot product (against double arithmetic, within rounding), it is the bits of
 * the single-row kernel behind etok_vec_dot (the engine's Q8_0 order, llama.cpp's), and the
 * dispatched tiles (AVX2 where the CPU has it) equal the reference bit for bit for every row
 * range (inside and across 4-row tiles), token count (1 = decode, 2-token tiles and their
 * rest, more than one 64-token group), block count, extreme quants (-128, +-127) and scales of
 * both signs; and etok_matmul_rows, which dispatches Q8_0 to them, gives the same bits; and the
 * repacked layout Q8_0x4 (pack, read back, its kernel and reference) gives the same bits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/quant.h"

static uint32_t rng = 4242u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

enum { ROWS = 23, NXMAX = 70, NBMAX = 18 };

static float w[ROWS * NBMAX * 32], x[NXMAX * NBMAX * 32];
static uint8_t m[ROWS * NBMAX * 34];
static etok_block_q8a xq[NXMAX * NBMAX];
static float fast[NXMAX * ROWS], ref[NXMAX * ROWS], viarows[NXMAX * ROWS];

/* rows of nb blocks (variant: 0 plain, 1 with -128/+127 quants and negative scales forced in,
 * 2 large activations), nx token vectors */
static void fill(int nb, int nx, int variant) {
    const int n = nb * 32;
    const size_t rb = etok_type_row_bytes(ETOK_T_Q8_0, n);
    for (int i = 0; i < ROWS * n; i++) w[i] = frand() * 0.1f;
    for (int i = 0; i < nx * n; i++) x[i] = frand() * (variant == 2 ? 40.0f : 1.0f);
    for (int r = 0; r < ROWS; r++) etok_quantize_row(ETOK_T_Q8_0, w + r * n, m + r * rb, n);
    if (variant == 1)
        for (int r = 0; r < ROWS; r++) {
            etok_block_q8_0 *b = (etok_block_q8_0 *)(void *)(m + r * rb);
            for (int i = 0; i < nb; i++) {
                b[i].qs[(r + i) % 32] = -128; /* not written by the quantiser, legal in a file */
                b[i].qs[(r + 3 * i + 7) % 32] = 127;
                if ((r + i) % 3 == 0) b[i].d ^= 0x8000; /* negative scale */
            }
        }
    for (int j = 0; j < nx; j++) etok_quantize_q8a(x + j * n, xq + j * nb, n);
}

/* The reference computes the dot product: within a few float roundings of double. */
static void test_ref_is_dot(void **state) {
    (void)state;
    for (int variant = 0; variant < 3; variant++) {
        const int nb = 13, n = nb * 32, nx = 3;
        fill(nb, nx, variant);
        const size_t rb = etok_type_row_bytes(ETOK_T_Q8_0, n);
        etok_matmul_q8_0_ref(m, rb, 0, ROWS, xq, n, nx, ref, ROWS);
        for (int j = 0; j < nx; j++)
            for (int r = 0; r < ROWS; r++) {
                const etok_block_q8_0 *b = (const etok_block_q8_0 *)(const void *)(m + r * rb);
                double s = 0, mag = 0;
                for (int i = 0; i < nb; i++)
                    for (int k = 0; k < 32; k++) {
                        const double t = (double)etok_f16_to_f32(b[i].d) * xq[j * nb + i].d * b[i].qs[k] * xq[j * nb + i].qs[k];
                        s += t;
                        mag += fabs(t);
                    }
                if (fabs(ref[j * ROWS + r] - s) > 1e-5 * mag + 1e-7)
                    fail_msg("variant %d token %d row %d: ref %g, double %g", variant, j, r, ref[j * ROWS + r], s);
            }
    }
}

/* Dispatched == reference == the single-row kernel (etok_vec_dot), memcmp. */
static void test_kernel_bits(void **state) {
    (void)state;
    const int nbs[] = {1, 13, 18};
    const int nxs[] = {1, 2, 3, 5, 9, 64, 67, NXMAX};
    const int ranges[][2] = {{0, ROWS}, {1, 11}, {3, 8}, {0, 4}, {5, 6}, {2, 21}};
    for (int variant = 0; variant < 3; variant++)
        for (size_t bi = 0; bi < sizeof nbs / sizeof nbs[0]; bi++) {
            const int nb = nbs[bi], n = nb * 32;
            const size_t rb = etok_type_row_bytes(ETOK_T_Q8_0, n);
            fill(nb, NXMAX, variant);
            for (size_t xi = 0; xi < sizeof nxs / sizeof nxs[0]; xi++) {
                const int nx = nxs[xi];
                for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
                    const int r0 = ranges[k][0], r1 = ranges[k][1];
                    memset(fast, 0, sizeof fast);
                    memset(viarows, 0, sizeof viarows);
                    etok_matmul_q8_0(m, rb, r0, r1, xq, n, nx, fast, ROWS);
                    etok_matmul_q8_0_ref(m, rb, r0, r1, xq, n, nx, ref, ROWS);
                    etok_matmul_rows(ETOK_T_Q8_0, m, rb, r0, r1, xq, NULL, n, nx, viarows, ROWS);
                    for (int j = 0; j < nx; j++)
                        for (int r = 0; r < ROWS; r++) {
                            const float got = fast[j * ROWS + r];
                            if (r < r0 || r >= r1) {
                                assert_true(got == 0.0f && viarows[j * ROWS + r] == 0.0f); /* not asked for */
                                continue;
                            }
                            if (memcmp(&got, &ref[j * ROWS + r], sizeof got) != 0)
                                fail_msg("variant %d nb %d nx %d rows [%d,%d) token %d row %d: kernel %a, ref %a", variant,
                                         nb, nx, r0, r1, j, r, got, ref[j * ROWS + r]);
                            if (memcmp(&got, &viarows[j * ROWS + r], sizeof got) != 0)
                                fail_msg("nb %d nx %d token %d row %d: kernel %a, etok_matmul_rows %a", nb, nx, j, r, got,
                                         viarows[j * ROWS + r]);
                            if (k == 0) { /* once per (row, token): the single-row kernel */
                                const float one = etok_vec_dot(ETOK_T_Q8_0, m + r * rb, xq + j * nb, NULL, n);
                                if (memcmp(&got, &one, sizeof got) != 0)
                                    fail_msg("nb %d nx %d token %d row %d: kernel %a, etok_vec_dot %a", nb, nx, j, r, got, one);
                            }
                        }
                }
            }
        }
}

/* The order is observable: over many outputs a plain block-by-block float sum (one chain, no
 * lanes) differs from the reference somewhere, so the bit checks above can fail. */
static void test_order_matters(void **state) {
    (void)state;
    const int nb = 18, n = nb * 32, nx = 8;
    const size_t rb = etok_type_row_bytes(ETOK_T_Q8_0, n);
    fill(nb, nx, 2);
    etok_matmul_q8_0_ref(m, rb, 0, ROWS, xq, n, nx, ref, ROWS);
    int differ = 0;
    for (int j = 0; j < nx; j++)
        for (int r = 0; r < ROWS; r++) {
            const etok_block_q8_0 *b = (const etok_block_q8_0 *)(const void *)(m + r * rb);
            float acc = 0;
            for (int i = 0; i < nb; i++) {
                int s = 0;
                for (int k = 0; k < 32; k++) s += b[i].qs[k] * xq[j * nb + i].qs[k];
                acc = fmaf(etok_f16_to_f32(b[i].d) * xq[j * nb + i].d, (float)s, acc);
            }
            differ += memcmp(&acc, &ref[j * ROWS + r], sizeof acc) != 0;
        }
    assert_true(differ > 0);
}

/* The repacked layout Q8_0x4 (etok_q8x4_*): every block reads back as the file's; the
 * dispatched kernel (AVX2 where the CPU has it) and the packed reference equal the file-layout
 * reference bit for bit for every row range (inside, across and at the ends of 4-row groups),
 * token count (decode, 3-token tiles and their rest, several 64-token groups), block count and
 * extreme value. Rows outside the range are not written. */
static uint8_t packed[ROWS * NBMAX * 34 + 64];
static float fast2[NXMAX * ROWS];

static void test_x4_bits(void **state) {
    (void)state;
    const int nbs[] = {1, 2, 13, 18};
    const int nxs[] = {1, 2, 3, 4, 5, 7, 64, 67, NXMAX};
    const int R = ROWS / 4 * 4; /* 20 rows: 5 groups */
    const int ranges[][2] = {{0, 20}, {1, 11}, {3, 8}, {0, 4}, {5, 6}, {2, 19}, {16, 20}, {4, 12}};
    assert_false(etok_q8x4_applies(ETOK_T_Q8_0, 22, 64));
    assert_false(etok_q8x4_applies(ETOK_T_Q8_0, 20, 48));
    assert_false(etok_q8x4_applies(ETOK_T_Q4_1, 20, 64));
    assert_true(etok_q8x4_applies(ETOK_T_Q8_0, 20, 64));
    for (int variant = 0; variant < 3; variant++)
        for (size_t bi = 0; bi < sizeof nbs / sizeof nbs[0]; bi++) {
            const int nb = nbs[bi], n = nb * 32;
            const size_t rb = etok_type_row_bytes(ETOK_T_Q8_0, n);
            fill(nb, NXMAX, variant);
            assert_int_equal(etok_q8x4_group_bytes(n), 4 * rb);
            memset(packed, 0xA5, sizeof packed);
            etok_q8x4_pack(m, rb, R, n, packed);
            assert_int_equal(packed[(size_t)R * rb], 0xA5); /* the copy has the matrix's size */
            for (int r = 0; r < R; r++)
                for (int i = 0; i < nb; i++) {
                    etok_block_q8_0 b;
                    etok_q8x4_get_block(packed, n, r, i, &b);
                    if (memcmp(&b, m + (size_t)r * rb + (size_t)i * 34, 34) != 0) fail_msg("nb %d row %d block %d", nb, r, i);
                }
            float d1[NBMAX * 32], d2[NBMAX * 32];
            etok_q8x4_dequantize_row(packed, n, R - 1, d1);
            etok_dequantize_row(ETOK_T_Q8_0, m + (size_t)(R - 1) * rb, d2, n);
            assert_memory_equal(d1, d2, (size_t)n * sizeof(float));
            for (size_t xi = 0; xi < sizeof nxs / sizeof nxs[0]; xi++) {
                const int nx = nxs[xi];
                etok_matmul_q8_0_ref(m, rb, 0, R, xq, n, nx, ref, ROWS);
                for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
                    const int r0 = ranges[k][0], r1 = ranges[k][1];
                    memset(fast, 0, sizeof fast);
                    memset(fast2, 0, sizeof fast2);
                    etok_matmul_q8x4(packed, r0, r1, xq, n, nx, fast, ROWS);
                    etok_matmul_q8x4_ref(packed, r0, r1, xq, n, nx, fast2, ROWS);
                    for (int j = 0; j < nx; j++)
                        for (int r = 0; r < ROWS; r++) {
                            const float got = fast[j * ROWS + r], got2 = fast2[j * ROWS + r];
                            if (r < r0 || r >= r1) {
                                assert_true(got == 0.0f && got2 == 0.0f); /* not asked for */
                                continue;
                            }
                            if (memcmp(&got, &ref[j * ROWS + r], sizeof got) != 0)
                                fail_msg("x4 variant %d nb %d nx %d rows [%d,%d) token %d row %d: kernel %a, ref %a", variant,
                                         nb, nx, r0, r1, j, r, got, ref[j * ROWS + r]);
                            if (memcmp(&got2, &ref[j * ROWS + r], sizeof got) != 0)
                                fail_msg("x4 ref variant %d nb %d nx %d token %d row %d: %a, file-layout ref %a", variant,
                                         nb, nx, j, r, got2, ref[j * ROWS + r]);
                        }
                }
            }
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ref_is_dot),
        cmocka_unit_test(test_kernel_bits),
        cmocka_unit_test(test_order_matters),
        cmocka_unit_test(test_x4_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
