/* test_quant.c — block formats and kernels: sizes, F16/BF16 conversions, quantise ->
 * dequantise round trips within each format's error bound, every dot kernel (the run-time
 * pick, AVX2 on these machines) equal to the scalar reference, and the integer dot products
 * close to the float dot product of the dequantised values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/quant.h"

static uint64_t rng_state = 42;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static const uint32_t all_types[] = {ETOK_T_F32,  ETOK_T_F16,  ETOK_T_BF16, ETOK_T_Q8_0, ETOK_T_Q4_0,
                                     ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_Q4_K, ETOK_T_Q6_K};
#define N_TYPES (sizeof all_types / sizeof all_types[0])

static void test_sizes(void **state) {
    (void)state;
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q4_1), 20);
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q8_0), 34);
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q4_K), 144);
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q6_K), 210);
    assert_int_equal(etok_type_block_elems(ETOK_T_Q6_K), 256);
    assert_int_equal(etok_type_row_bytes(ETOK_T_Q4_1, 576), 360);
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q5_0), 22); /* ggml: d, qh[4], qs[16] */
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q5_1), 24); /* ggml: d, m, qh[4], qs[16] */
    assert_int_equal(etok_type_block_elems(ETOK_T_Q5_1), 32);
    assert_int_equal(etok_type_row_bytes(ETOK_T_Q5_0, 576), 396);
    assert_string_equal(etok_type_name(ETOK_T_Q5_0), "Q5_0");
    assert_int_equal(etok_type_block_elems(9), 0); /* Q8_1: unsupported */
    assert_string_equal(etok_type_name(ETOK_T_Q4_K), "Q4_K");
}

static void test_half(void **state) {
    (void)state;
    const float vals[] = {0.0f, 1.0f, -2.5f, 65504.0f, 6.1035156e-05f, 5.9604645e-08f, 0.333251953125f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        assert_float_equal(etok_f16_to_f32(etok_f32_to_f16(vals[i])), vals[i], 0.0f);
        assert_float_equal(etok_bf16_to_f32(etok_f32_to_bf16(vals[i])), vals[i], fabsf(vals[i]) / 128.0f);
    }
    assert_int_equal(etok_f32_to_f16(1.0f), 0x3c00);
    assert_int_equal(etok_f32_to_f16(-2.0f), 0xc000);
    assert_true(isinf(etok_f16_to_f32(etok_f32_to_f16(1e6f))));
    /* round to nearest even: 1 + 2^-11 is halfway between 1 and 1 + 2^-10 */
    assert_int_equal(etok_f32_to_f16(1.0f + 1.0f / 2048.0f), 0x3c00);
    for (uint32_t h = 0; h < 0x7c00; h += 7) /* every finite positive half survives f32 and back */
        assert_int_equal(etok_f32_to_f16(etok_f16_to_f32((etok_f16)h)), h);
}

/* Round trip error bounds relative to the row's max |x| (1 here). */
static float roundtrip_bound(uint32_t t) {
    switch (t) {
    case ETOK_T_F32: return 0.0f;
    case ETOK_T_F16: return 1e-3f;
    case ETOK_T_BF16: return 8e-3f;
    case ETOK_T_Q8_0: return 1.0f / 127.0f;
    case ETOK_T_Q6_K: return 0.05f;
    /* Q5_0 as Q4_0: the largest |x| maps to -16 steps, so +max clamps to +15 steps: one step
     * (1/16) plus scale rounding; Q5_1: half a step of 2/31 plus scale rounding */
    case ETOK_T_Q5_0: return 0.07f;
    case ETOK_T_Q5_1: return 0.04f;
    default: return 0.15f; /* 4-bit: half a step of range/15 plus scale rounding */
    }
}

static void test_roundtrip(void **state) {
    (void)state;
    enum { N = 512 };
    float x[N], y[N];
    uint8_t row[N * 4];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        for (int i = 0; i < N; i++) x[i] = frand();
        etok_quantize_row(t, x, row, N);
        etok_dequantize_row(t, row, y, N);
        float maxerr = 0;
        for (int i = 0; i < N; i++) maxerr = fmaxf(maxerr, fabsf(x[i] - y[i]));
        if (maxerr > roundtrip_bound(t)) fail_msg("%s round trip error %g > %g", etok_type_name(t), maxerr, roundtrip_bound(t));
    }
}

/* The Q5 layouts bit by bit, as ggml's dequantize_row_q5_0/q5_1 read them: value j < 16 is
 * the low nibble of qs[j], value j >= 16 the high nibble of qs[j - 16]; its 5th bit is bit j
 * of qh as a little-endian uint32 (so value 31's is the top bit of qh[3]). A block built by
 * hand, dequantised by both the scalar code and (through dot products with unit vectors)
 * the SIMD kernels. */
static void test_q5_layout(void **state) {
    (void)state;
    etok_block_q5_0 b0;
    etok_block_q5_1 b1;
    memset(&b0, 0, sizeof b0);
    memset(&b1, 0, sizeof b1);
    b0.d = b1.d = etok_f32_to_f16(0.5f);
    b1.m = etok_f32_to_f16(-1.0f);
    /* q[0] = 1 | 16 = 17, q[16] = 2, q[15] = 0 | 16 = 16, q[31] = 15 | 16 = 31, q[9] = 7, q[25] = 16 */
    const uint8_t qh[4] = {0x01, 0x80, 0x00, 0x82}; /* bits 0, 15, 25, 31 */
    const uint8_t qs_set[][2] = {{0, 0x21}, {15, 0xF0}, {9, 0x07}};
    for (size_t k = 0; k < sizeof qs_set / sizeof qs_set[0]; k++) b0.qs[qs_set[k][0]] = b1.qs[qs_set[k][0]] = qs_set[k][1];
    memcpy(b0.qh, qh, 4);
    memcpy(b1.qh, qh, 4);
    int want[32];
    for (int j = 0; j < 32; j++) want[j] = 0;
    want[0] = 17;
    want[16] = 2;
    want[15] = 16;
    want[31] = 31;
    want[9] = 7;
    want[25] = 16;
    float y0[32], y1[32];
    etok_dequantize_row(ETOK_T_Q5_0, &b0, y0, 32);
    etok_dequantize_row(ETOK_T_Q5_1, &b1, y1, 32);
    for (int j = 0; j < 32; j++) {
        if (y0[j] != 0.5f * (want[j] - 16)) fail_msg("Q5_0 value %d: %g, want %g", j, y0[j], 0.5 * (want[j] - 16));
        if (y1[j] != 0.5f * want[j] - 1.0f) fail_msg("Q5_1 value %d: %g, want %g", j, y1[j], 0.5 * want[j] - 1.0);
        /* a unit activation at j (q8a: qs[j] = 127, d = F16(1/127), s = F16(d * 127)): the dot
         * products pick value j out, d*q times the activation plus m times its sum */
        float e[32] = {0};
        e[j] = 1.0f;
        etok_block_q8a xq;
        etok_quantize_q8a(e, &xq, 32);
        assert_int_equal(xq.qs[j], 127);
        const double a0 = 0.5 * (want[j] - 16) * 127 * xq.d, a1 = 0.5 * want[j] * 127 * xq.d - xq.s;
        assert_float_equal(etok_vec_dot(ETOK_T_Q5_0, &b0, &xq, NULL, 32), a0, 1e-5);
        assert_float_equal(etok_vec_dot_ref(ETOK_T_Q5_0, &b0, &xq, NULL, 32), a0, 1e-5);
        assert_float_equal(etok_vec_dot(ETOK_T_Q5_1, &b1, &xq, NULL, 32), a1, 1e-5);
        assert_float_equal(etok_vec_dot_ref(ETOK_T_Q5_1, &b1, &xq, NULL, 32), a1, 1e-5);
    }
    /* quantise -> bytes: the writer puts the 5th bits where the reader takes them */
    float x[32];
    for (int j = 0; j < 32; j++) x[j] = 0.5f * (want[j] - 16);
    x[0] = -8.0f; /* largest magnitude: d = 8 / 16 = 0.5, q = 0 */
    etok_block_q5_0 r0;
    etok_quantize_row(ETOK_T_Q5_0, x, &r0, 32);
    assert_int_equal(r0.d, etok_f32_to_f16(0.5f));
    assert_int_equal(r0.qs[0] & 0xF, 0);
    assert_int_equal(r0.qh[0] & 1, 0);
    assert_int_equal(r0.qs[15] >> 4, 15);
    assert_int_equal(r0.qh[3] >> 7, 1);
    assert_int_equal(r0.qs[9], 0x07);
    assert_int_equal(r0.qh[3] & 0x02, 0x02);
}

static void test_q8a(void **state) {
    (void)state;
    enum { N = 256 };
    float x[N];
    etok_block_q8a a[N / 32], b[N / 32];
    for (int rep = 0; rep < 20; rep++) {
        for (int i = 0; i < N; i++) x[i] = frand() * (float)(rep + 1);
        if (rep == 3) memset(x, 0, sizeof x); /* all-zero block: d = 0, no NaN */
        etok_quantize_q8a_ref(x, a, N);
        etok_quantize_q8a(x, b, N);
        for (int k = 0; k < N / 32; k++) {
            assert_memory_equal(a[k].qs, b[k].qs, 32);
            assert_float_equal(a[k].d, b[k].d, 0.0f);
            assert_float_equal(a[k].s, b[k].s, fabsf(a[k].s) * 1e-6f);
            int sum = 0;
            for (int j = 0; j < 32; j++) {
                sum += a[k].qs[j];
                /* q = round(x / d) with the exact d; d is then stored rounded to F16 (rel. 2^-11) */
                assert_float_equal(a[k].qs[j] * a[k].d, x[k * 32 + j], a[k].d * (0.5f + 127.0f / 2048.0f) + 1e-6f);
            }
            assert_float_equal(a[k].s, a[k].d * sum, fabsf(a[k].s) * 2e-3f + 1e-5f); /* F16-rounded */
        }
    }
}

/* Every kernel: dispatch (SIMD where available) == scalar reference; and the integer dot is
 * close to the float dot of the dequantised weights (activation quantisation error only). */
static void test_dot_kernels(void **state) {
    (void)state;
    enum { N = 1024, NX = 6 }; /* 6: the 4-vector kernels and the remainder path */
    static float w[N], x[NX * N], wd[N];
    static uint8_t row[N * 4];
    static etok_block_q8a xq[NX * N / 32];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        for (int rep = 0; rep < 10; rep++) {
            for (int i = 0; i < N; i++) w[i] = frand() * 0.1f + (rep == 5 ? 0.05f : 0.0f);
            for (int i = 0; i < NX * N; i++) x[i] = frand();
            etok_quantize_row(t, w, row, N);
            etok_dequantize_row(t, row, wd, N);
            for (int j = 0; j < NX; j++) etok_quantize_q8a(x + j * N, xq + j * (N / 32), N);
            double exact = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                exact += (double)wd[i] * x[i];
                mag += fabs((double)wd[i] * x[i]);
            }
            float ref = etok_vec_dot_ref(t, row, xq, x, N);
            float fast = etok_vec_dot(t, row, xq, x, N);
            if (fabsf(ref - fast) > 1e-4f * (float)mag + 1e-5f)
                fail_msg("%s: SIMD %g != scalar %g", etok_type_name(t), fast, ref);
            float tol = etok_type_uses_q8a(t) ? 0.02f * (float)mag : 1e-4f * (float)mag;
            if (fabs(ref - exact) > tol + 1e-5) fail_msg("%s: dot %g vs exact %g (tol %g)", etok_type_name(t), ref, exact, tol);
            float multi[NX * 2];
            etok_vec_dot_multi(t, row, xq, x, N, NX, multi, 2);
            for (int j = 0; j < NX; j++) {
                float rj = etok_vec_dot_ref(t, row, xq + j * (N / 32), x + j * N, N);
                assert_true(fabsf(multi[2 * j] - rj) <= 1e-4f * (float)mag + 1e-5f);
                /* the multi-vector kernels do the same float operations in the same order */
                assert_float_equal(multi[2 * j], etok_vec_dot(t, row, xq + j * (N / 32), x + j * N, N), 0.0f);
            }
        }
    }
}

static void test_axpy(void **state) {
    (void)state;
    enum { N = 77 };
    float x[N], y1[N], y2[N];
    uint8_t h[2 * N];
    for (int i = 0; i < N; i++) {
        x[i] = frand();
        y1[i] = y2[i] = frand();
    }
    etok_quantize_row(ETOK_T_F16, x, h, N);
    etok_vec_axpy(ETOK_T_F16, 0.75f, h, y1, N);
    etok_vec_axpy_ref(ETOK_T_F16, 0.75f, h, y2, N);
    for (int i = 0; i < N; i++) assert_float_equal(y1[i], y2[i], 1e-6f);
    etok_vec_axpy(ETOK_T_F32, -2.0f, x, y1, N);
    etok_vec_axpy_ref(ETOK_T_F32, -2.0f, x, y2, N);
    for (int i = 0; i < N; i++) assert_float_equal(y1[i], y2[i], 1e-6f);
}

/* etok_matmul_rows (rows in groups of 4 for decode, vectors in groups of 4 for prefill) gives
 * exactly what one etok_vec_dot per (row, vector) gives. */
static void test_matmul_rows(void **state) {
    (void)state;
    enum { N = 256, ROWS = 11, NX = 5 };
    static float w[ROWS * N], x[NX * N], out[NX * ROWS];
    static uint8_t m[ROWS * N * 4];
    static etok_block_q8a xq[NX * N / 32];
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        uint32_t t = all_types[ti];
        size_t rb = etok_type_row_bytes(t, N);
        for (int i = 0; i < ROWS * N; i++) w[i] = frand() * 0.1f;
        for (int i = 0; i < NX * N; i++) x[i] = frand();
        for (int r = 0; r < ROWS; r++) etok_quantize_row(t, w + r * N, m + r * rb, N);
        for (int j = 0; j < NX; j++) etok_quantize_q8a(x + j * N, xq + j * (N / 32), N);
        for (int nx = 1; nx <= NX; nx += NX - 1) {
            memset(out, 0, sizeof out);
            etok_matmul_rows(t, m, rb, 1, ROWS, xq, x, N, nx, out, ROWS); /* rows 1..10: a group of 4 and a rest */
            for (int j = 0; j < nx; j++) {
                assert_float_equal(out[j * ROWS], 0.0f, 0.0f); /* row 0 not asked for */
                for (int r = 1; r < ROWS; r++)
                    assert_float_equal(out[j * ROWS + r], etok_vec_dot(t, m + r * rb, xq + j * (N / 32), x + j * N, N), 0.0f);
            }
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),       cmocka_unit_test(test_half),        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_q5_layout),
        cmocka_unit_test(test_q8a),         cmocka_unit_test(test_dot_kernels), cmocka_unit_test(test_axpy), cmocka_unit_test(test_matmul_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
