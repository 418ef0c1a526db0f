/* test_matmul_float.c — float-weight matrices (F32, F16, BF16) in llama.cpp's orders
 * (src/engine/matmul_float.c): the rule picking the gemm order, the activation rounding, the
 * two summation orders pinned on values where the order decides the result, and the
 * dispatched kernels (AVX2 where the CPU has it) equal to the scalar reference bit for bit
 * over row ranges, token counts 1..9 and widths with and without a 32-value remainder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/matmul_float.h"
#include "engine/quant.h"

static uint32_t rng = 777u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static void test_rule(void **state) {
    (void)state;
    assert_true(etok_type_is_float(ETOK_T_F32));
    assert_true(etok_type_is_float(ETOK_T_F16));
    assert_true(etok_type_is_float(ETOK_T_BF16));
    assert_false(etok_type_is_float(ETOK_T_Q8_0));
    assert_true(etok_float_gemm_applies(576, 576, 2));
    assert_true(etok_float_gemm_applies(49152, 576, 512));
    assert_false(etok_float_gemm_applies(576, 576, 1)); /* one token: vec_dot */
    assert_false(etok_float_gemm_applies(574, 576, 8)); /* rows not a multiple of 4 */
    assert_false(etok_float_gemm_applies(576, 580, 8)); /* width not a multiple of 8 */
}

static void test_round(void **state) {
    (void)state;
    /* F16: 1 + 2^-11 is the tie between 1 and 1 + 2^-10: to even (1) */
    float x[4] = {1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f, 65504.0f, -0.0f}, o[4];
    etok_float_round_act(ETOK_T_F16, x, o, 4);
    assert_true(o[0] == 1.0f);
    assert_true(o[1] == 1.0f + 0x1p-9f);
    assert_true(o[2] == 65504.0f);
    /* BF16: 1 + 2^-8 ties between 1 and 1 + 2^-7: to even; 1 + 3*2^-8 up */
    float b[3] = {1.0f + 0x1p-8f, 1.0f + 3 * 0x1p-8f, 3.0f}, ob[3];
    etok_float_round_act(ETOK_T_BF16, b, ob, 3);
    assert_true(ob[0] == 1.0f);
    assert_true(ob[1] == 1.0f + 0x1p-6f);
    assert_true(ob[2] == 3.0f);
    /* F32: unchanged, in place */
    float f[2] = {1.0f + 0x1p-20f, 0.1f};
    etok_float_round_act(ETOK_T_F32, f, f, 2);
    assert_true(f[0] == 1.0f + 0x1p-20f && f[1] == 0.1f);
}

/* A row whose 8 leading values are big/small lanes: the sum depends on which lanes are added
 * first. Lanes {B, 1, -B, 1, 0, 0, 0, 0} with B = 2^30 (exact in F32 and BF16):
 * gemm/hsum order ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)) = (B - B) + 2 = 2;
 * hadd order ((l0+l4)+(l1+l5)) + ((l2+l6)+(l3+l7)) = (B + 1) + (1 - B) = 0 in float. */
static void order_row(uint32_t type, uint8_t *row, int n) {
    float v[64] = {0};
    v[0] = 0x1p30f, v[1] = 1.0f, v[2] = -0x1p30f, v[3] = 1.0f;
    etok_quantize_row(type, v, row, n);
}

static void test_orders(void **state) {
    (void)state;
    enum { N = 32 };
    uint8_t row[4 * 64];
    float x[2 * N], out[2];
    for (int i = 0; i < 2 * N; i++) x[i] = 1.0f;
    const uint32_t types[] = {ETOK_T_F32, ETOK_T_BF16};
    for (int ti = 0; ti < 2; ti++) {
        order_row(types[ti], row, N);
        for (int fast = 0; fast < 2; fast++) {
            void (*mm)(uint32_t, const uint8_t *, size_t, int64_t, int64_t, const float *, int64_t, int, int, float *,
                       size_t) = fast ? etok_matmul_rows_float : etok_matmul_rows_float_ref;
            mm(types[ti], row, 0, 0, 1, x, N, 2, 1, out, 1);
            assert_true(out[0] == 2.0f && out[1] == 2.0f);
            mm(types[ti], row, 0, 0, 1, x, N, 1, 0, out, 1);
            /* vec order: F32 reduces with hadds (0), BF16 with the hsum sequence (2) */
            assert_true(out[0] == (types[ti] == ETOK_T_F32 ? 0.0f : 2.0f));
        }
    }
    /* F16 (largest value 65504): B = 2^15 against 2^-14 (ratio 2^29: B + 2^-14 rounds to B) */
    float v[N] = {0};
    v[0] = 32768.0f, v[1] = 0x1p-14f, v[2] = -32768.0f, v[3] = 0x1p-14f;
    etok_quantize_row(ETOK_T_F16, v, row, N);
    etok_matmul_rows_float(ETOK_T_F16, row, 0, 0, 1, x, N, 2, 1, out, 1);
    assert_true(out[0] == 0x1p-13f);
    etok_matmul_rows_float(ETOK_T_F16, row, 0, 0, 1, x, N, 1, 0, out, 1);
    assert_true(out[0] == 0.0f);
    etok_matmul_rows_float_ref(ETOK_T_F16, row, 0, 0, 1, x, N, 1, 0, out, 1);
    assert_true(out[0] == 0.0f);
}

/* Dispatched == reference (memcmp) for every type, widths with and without a remainder of
 * 32, odd row ranges, 1..9 tokens, both orders; and gemm outputs equal single-token gemm
 * outputs (the tile does not change bits). */
static void kernel_bits(void) {
    enum { ROWS = 13, NXMAX = 9, NMAX = 584 };
    static float wf[ROWS * NMAX], x[NXMAX * NMAX], xr[NXMAX * NMAX];
    static uint8_t m[ROWS * NMAX * 4];
    static float fast[NXMAX * ROWS], ref[NXMAX * ROWS], one[ROWS];
    const int widths[] = {8, 40, 64, 104, 576, 584};
    const uint32_t types[] = {ETOK_T_F32, ETOK_T_F16, ETOK_T_BF16};
    for (int i = 0; i < ROWS * NMAX; i++) wf[i] = frand() * 2.0f;
    for (int i = 0; i < NXMAX * NMAX; i++) x[i] = frand() * 3.0f;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            const uint32_t type = types[ti];
            const int n = widths[wi];
            const size_t rb = etok_type_row_bytes(type, n);
            for (int r = 0; r < ROWS; r++) etok_quantize_row(type, wf + (size_t)r * n, m + (size_t)r * rb, n);
            etok_float_round_act(type, x, xr, (int64_t)NXMAX * n);
            const int ranges[][2] = {{0, ROWS}, {1, 12}, {3, 4}, {5, 13}, {0, 8}};
            for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++)
                for (int nx = 1; nx <= NXMAX; nx++)
                    for (int gemm = 0; gemm < 2; gemm++) {
                        const int r0 = ranges[ri][0], r1 = ranges[ri][1];
                        memset(fast, 0x5a, sizeof fast);
                        memset(ref, 0x5a, sizeof ref);
                        etok_matmul_rows_float(type, m, rb, r0, r1, xr, n, nx, gemm, fast, ROWS);
                        etok_matmul_rows_float_ref(type, m, rb, r0, r1, xr, n, nx, gemm, ref, ROWS);
                        if (memcmp(fast, ref, sizeof fast) != 0)
                            fail_msg("type %u n %d rows [%d,%d) nx %d gemm %d: kernel != reference", type, n, r0, r1, nx,
                                     gemm);
                        /* each token's outputs as a call of that token alone */
                        for (int j = 0; j < nx; j++) {
                            etok_matmul_rows_float(type, m, rb, r0, r1, xr + (size_t)j * n, n, 1, gemm, one, 1);
                            assert_memory_equal(one + r0, fast + (size_t)j * ROWS + r0, (size_t)(r1 - r0) * sizeof(float));
                        }
                        /* sanity against a double-precision dot */
                        for (int j = 0; j < nx; j++)
                            for (int r = r0; r < r1; r++) {
                                double d = 0;
                                float row[NMAX];
                                etok_dequantize_row(type, m + (size_t)r * rb, row, n);
                                for (int i = 0; i < n; i++) d += (double)row[i] * xr[(size_t)j * n + i];
                                assert_true(fabs(ref[(size_t)j * ROWS + r] - d) <= 1e-4 * (1.0 + fabs(d)) * sqrt((double)n));
                            }
                    }
        }
}

/* Prefill shapes that span several token blocks (a block is ~192 KiB of activations: 32
 * tokens at 1536 columns, 23 at 2056), ragged at the end, row ranges ending in a partial
 * group of 4, and a width past the BF16 converted-panel limit (2048): every output equal to the
 * reference bit for bit, rows outside the range untouched. */
static void kernel_blocks(void) {
    enum { ROWS = 10, NX = 70, NMAX = 2056 };
    static float wf[ROWS * NMAX], x[NX * NMAX], xr[NX * NMAX], fast[NX * ROWS], ref[NX * ROWS];
    static uint8_t m[ROWS * NMAX * 4];
    const int widths[] = {1536, 2056, 8};
    const int nxs[] = {70, 50, 67};
    const uint32_t types[] = {ETOK_T_F32, ETOK_T_F16, ETOK_T_BF16};
    for (int i = 0; i < ROWS * NMAX; i++) wf[i] = frand() * 2.0f;
    for (int i = 0; i < NX * NMAX; i++) x[i] = frand() * 3.0f;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t wi = 0; wi < 3; wi++) {
            const uint32_t type = types[ti];
            const int n = widths[wi], nx = nxs[wi];
            const size_t rb = etok_type_row_bytes(type, n);
            for (int r = 0; r < ROWS; r++) etok_quantize_row(type, wf + (size_t)r * n, m + (size_t)r * rb, n);
            etok_float_round_act(type, x, xr, (int64_t)nx * n);
            const int ranges[][2] = {{0, ROWS}, {1, 7}, {4, 8}};
            for (size_t ri = 0; ri < 3; ri++) {
                memset(fast, 0x5a, sizeof fast);
                memset(ref, 0x5a, sizeof ref);
                etok_matmul_rows_float(type, m, rb, ranges[ri][0], ranges[ri][1], xr, n, nx, 1, fast, ROWS);
                etok_matmul_rows_float_ref(type, m, rb, ranges[ri][0], ranges[ri][1], xr, n, nx, 1, ref, ROWS);
                if (memcmp(fast, ref, sizeof fast) != 0)
                    fail_msg("type %u n %d nx %d rows [%d,%d): prefill kernel != reference", type, n, nx, ranges[ri][0],
                             ranges[ri][1]);
            }
        }
}

/* Both at every kernel level this CPU has: the avx512 level's prefill runs 4-row x 8-token zmm
 * tiles (matmul_float.c), which must keep every output's bits; a CPU without AVX-512 says so. */
static void at_every_level(void (*body)(void)) {
    const int detected = etok_isa_detected(), was = etok_isa_active();
    char err[160];
    for (int level = ETOK_ISA_SCALAR; level <= detected; level++) {
        assert_int_equal(etok_isa_force(level, err, sizeof err), 0);
        body();
    }
    assert_int_equal(etok_isa_force(was, err, sizeof err), 0);
    if (detected < ETOK_ISA_AVX512) print_message("note: no AVX-512 here: the avx512 level's float tiles are not run\n");
}

static void test_kernel_bits(void **state) {
    (void)state;
    at_every_level(kernel_bits);
}

static void test_kernel_blocks(void **state) {
    (void)state;
    at_every_level(kernel_blocks);
}

/* The decode kernel, one row at a time with a prefetch running ahead across row boundaries up
 * to the end of the range, over: a tall matrix; ranges of >= 256 rows (F16 / BF16 read them in
 * 4 interleaved parts, F32 in one stream); and rows longer than the BF16 kernel's reordered-x
 * buffer (BF16_X_MAX, 16384: those take the widening kernel) and exactly that long. Every row
 * equal to the reference, rows outside the range untouched. */
static void test_vec_tall(void **state) {
    (void)state;
    enum { MAXROWS = 300, MAXN = 16384 + 40, MAXW = 3 * MAXN };
    static const struct {
        int rows, n, ranges[3][2], n_ranges;
    } shapes[] = {{70, 584, {{0, 70}, {13, 57}, {69, 70}}, 3},
                  {300, 104, {{0, 300}, {7, 297}}, 2},
                  {3, MAXN, {{0, 3}, {1, 3}}, 2},
                  {3, 16384, {{0, 3}, {1, 3}}, 2}};
    static float wf[MAXW], x[MAXN], xr[MAXN], fast[MAXROWS], ref[MAXROWS];
    static uint8_t m[MAXW * 4];
    const uint32_t types[] = {ETOK_T_F32, ETOK_T_F16, ETOK_T_BF16};
    for (int i = 0; i < MAXW; i++) wf[i] = frand();
    for (int i = 0; i < MAXN; i++) x[i] = frand() * 2.0f;
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
            const int rows = shapes[si].rows, n = shapes[si].n;
            const size_t rb = etok_type_row_bytes(types[ti], n);
            for (int r = 0; r < rows; r++) etok_quantize_row(types[ti], wf + (size_t)r * n, m + (size_t)r * rb, n);
            etok_float_round_act(types[ti], x, xr, n);
            for (int ri = 0; ri < shapes[si].n_ranges; ri++) {
                const int r0 = shapes[si].ranges[ri][0], r1 = shapes[si].ranges[ri][1];
                memset(fast, 0x5a, sizeof fast);
                memset(ref, 0x5a, sizeof ref);
                etok_matmul_rows_float(types[ti], m, rb, r0, r1, xr, n, 1, 0, fast, MAXROWS);
                etok_matmul_rows_float_ref(types[ti], m, rb, r0, r1, xr, n, 1, 0, ref, MAXROWS);
                if (memcmp(fast, ref, sizeof fast) != 0)
                    fail_msg("type %u %d x %d rows [%d,%d): decode kernel != reference", types[ti], rows, n, r0, r1);
            }
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_round),
        cmocka_unit_test(test_orders),
        cmocka_unit_test(test_kernel_bits),
        cmocka_unit_test(test_kernel_blocks),
        cmocka_unit_test(test_vec_tall),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
