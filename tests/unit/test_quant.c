/* test_quant.c — block formats and kernels: sizes, F16/BF16 conversions, quantise ->
 * dequantise round trips within each format's error bound, every dot kernel (the run-time
 * pick, AVX2 on these machines) equal to the scalar reference, and the integer dot products
 * close to the float dot product of the dequantised values. Q2_K/Q3_K/Q5_K/IQ4_NL: hand-built
 * blocks against hand-computed values, random bytes against decoders in ggml's loop order,
 * unit-activation dots through the scalar and the SIMD kernels, a matvec via the dispatch. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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
                                     ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_Q4_K, ETOK_T_Q6_K,
                                     ETOK_T_IQ4_NL, ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q5_K};
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
    /* ggml's sizes: block_q2_K 84, block_q3_K 110, block_q5_K 176, block_iq4_nl 18 */
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q2_K), 84);
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q3_K), 110);
    assert_int_equal(etok_type_block_bytes(ETOK_T_Q5_K), 176);
    assert_int_equal(etok_type_block_bytes(ETOK_T_IQ4_NL), 18);
    assert_int_equal(etok_type_block_elems(ETOK_T_Q2_K), 256);
    assert_int_equal(etok_type_block_elems(ETOK_T_Q3_K), 256);
    assert_int_equal(etok_type_block_elems(ETOK_T_Q5_K), 256);
    assert_int_equal(etok_type_block_elems(ETOK_T_IQ4_NL), 32);
    assert_string_equal(etok_type_name(20), "IQ4_NL");
    assert_string_equal(etok_type_name(10), "Q2_K");
    assert_string_equal(etok_type_name(11), "Q3_K");
    assert_string_equal(etok_type_name(13), "Q5_K");
    assert_int_equal(etok_type_block_elems(23), 0); /* IQ4_XS: unsupported */
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
    /* Q2_K: half a step of a 16-value range / 3 (1/3 here), the 4-bit scale rounded up (+1/15)
     * and the 4-bit min rounded (half a step of dmin) */
    case ETOK_T_Q2_K: return 0.42f;
    /* Q3_K as Q4_0 with -4..3: the largest |x| maps to -4 steps, +max clamps to +3 (one step,
     * 1/4) plus the 6-bit scale's rounding */
    case ETOK_T_Q3_K: return 0.3f;
    /* Q5_K: half a step of range/31 plus the 6-bit scale and min rounding */
    case ETOK_T_Q5_K: return 0.06f;
    /* IQ4_NL: half the widest gap of the table (89..113: 12 units) where max|x| is 113
     * units (a positive maximum), 12/113 = 0.106 */
    case ETOK_T_IQ4_NL: return 0.11f;
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
        if (getenv("ETOK_TEST_VERBOSE")) printf("%s round trip max error %g (bound %g)\n", etok_type_name(t), maxerr, roundtrip_bound(t));
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
 * exactly what one etok_vec_dot per (row, vector) gives; except an IQ4_NL one-vector matmul
 * with the AVX2 kernels, which sums in llama.cpp's one-token order (two accumulators,
 * docs/ENGINE.md "Numerics"): there only float rounding may differ. */
static void test_matmul_rows(void **state) {
    (void)state;
    enum { N = 512, ROWS = 11, NX = 9 }; /* two K super-blocks; 4 + 4 + 1 vectors (x4 kernels and the rest) */
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
        for (int nx = 1; nx <= NX; nx += 4) {
            memset(out, 0, sizeof out);
            etok_matmul_rows(t, m, rb, 1, ROWS, xq, x, N, nx, out, ROWS); /* rows 1..10: a group of 4 and a rest */
            for (int j = 0; j < nx; j++) {
                assert_float_equal(out[j * ROWS], 0.0f, 0.0f); /* row 0 not asked for */
                for (int r = 1; r < ROWS; r++) {
                    const float want = etok_vec_dot(t, m + r * rb, xq + j * (N / 32), x + j * N, N);
                    const float tol = t == ETOK_T_IQ4_NL && nx == 1 && etok_simd_active() ? 1e-5f * (fabsf(want) + 1.0f) : 0.0f;
                    assert_float_equal(out[j * ROWS + r], want, tol);
                }
            }
        }
    }
}


/* Decode (one activation vector): the 4-row kernels (Q4_1, Q8_0, Q5_0, Q5_1) give
 * the bits of the single-row kernel, which etok_matmul_rows uses for the rows left over after
 * the groups of 4: each row alone (r1 = r0 + 1) must equal the same row in a group, memcmp,
 * for an odd block count (13; IQ4_NL: its odd last block), row ranges not multiples of 4 and not
 * starting at 0, F16-rounded scales of both signs. And for every type but IQ4_NL (whose
 * one-token order differs from etok_vec_dot's on purpose) the single-row kernel is etok_vec_dot. */
static void test_decode_4rows(void **state) {
    (void)state;
    enum { N = 13 * 32, ROWS = 11 };
    static float w[ROWS * N], x[N], grp[ROWS], one[ROWS];
    static uint8_t m[ROWS * N * 4];
    static etok_block_q8a xq[N / 32];
    const int ranges[][2] = {{1, 11}, {0, 7}, {2, 5}, {0, 8}};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        const uint32_t t = all_types[ti];
        if (etok_type_block_elems(t) != 32) continue; /* K types: 256-value blocks, test_quant_k */
        const size_t rb = etok_type_row_bytes(t, N);
        for (int rep = 0; rep < 3; rep++) {
            for (int i = 0; i < ROWS * N; i++) w[i] = frand() * (rep == 2 ? 4.0f : 0.1f);
            for (int i = 0; i < N; i++) x[i] = frand() * (rep == 1 ? 30.0f : 1.0f);
            for (int r = 0; r < ROWS; r++) etok_quantize_row(t, w + r * N, m + r * rb, N);
            etok_quantize_q8a(x, xq, N);
            for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
                const int r0 = ranges[k][0], r1 = ranges[k][1];
                memset(grp, 0, sizeof grp);
                etok_matmul_rows(t, m, rb, r0, r1, xq, x, N, 1, grp, ROWS);
                for (int r = 0; r < ROWS; r++) {
                    if (r < r0 || r >= r1) {
                        assert_true(grp[r] == 0.0f); /* not asked for */
                        continue;
                    }
                    etok_matmul_rows(t, m, rb, r, r + 1, xq, x, N, 1, one, ROWS);
                    if (memcmp(&grp[r], &one[r], sizeof(float)) != 0)
                        fail_msg("%s rows [%d,%d) row %d: %a in a group, %a alone", etok_type_name(t), r0, r1, r, grp[r],
                                 one[r]);
                    if (t != ETOK_T_IQ4_NL) {
                        const float v = etok_vec_dot(t, m + r * rb, xq, x, N);
                        if (memcmp(&v, &one[r], sizeof(float)) != 0)
                            fail_msg("%s row %d: %a alone, %a from etok_vec_dot", etok_type_name(t), r, one[r], v);
                    }
                }
            }
        }
    }
}

/* Grouped (GQA) attention kernels: g heads at once equal g single-head calls bit for bit, in
 * the dispatched (SIMD here) and the scalar versions, for F32 and F16 caches, head sizes with
 * and without the 8-value SIMD unit, group sizes around the 4-head chunk; and the V sum over a
 * span in several runs equals the same positions in one run (lanes by absolute position). */
static void test_attn_multi(void **state) {
    (void)state;
    enum { MAXHD = 72, N = 45, G = 9 };
    static float q[G * MAXHD], vals[N * MAXHD], sc1[N], scg[G * N], w[G * N], o1[MAXHD], og[G * MAXHD], os[G * MAXHD];
    static uint8_t rows[N * MAXHD * 4];
    const uint32_t types[] = {ETOK_T_F32, ETOK_T_F16};
    const int hds[] = {64, 72, 36};
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t hi = 0; hi < 3; hi++) {
            const uint32_t t = types[ti];
            const int hd = hds[hi];
            const size_t rb = etok_type_row_bytes(t, hd);
            for (int i = 0; i < N * hd; i++) vals[i] = frand();
            for (int s = 0; s < N; s++) etok_quantize_row(t, vals + s * hd, rows + s * rb, hd);
            for (int i = 0; i < G * hd; i++) q[i] = frand();
            if (t == ETOK_T_F16) etok_round_f16(q, G * hd);
            for (int i = 0; i < G * N; i++) w[i] = (frand() + 1.0f) / N;
            for (int g = 1; g <= G; g++)
                for (int scalar = 0; scalar < 2; scalar++) {
                    if (scalar)
                        etok_attn_scores_multi_ref(t, q, g, rows, rb, N, hd, 0.125f, scg, N);
                    else
                        etok_attn_scores_multi(t, q, g, rows, rb, N, hd, 0.125f, scg, N);
                    for (int h = 0; h < g; h++) {
                        if (scalar)
                            etok_attn_scores_ref(t, q + h * hd, rows, rb, N, hd, 0.125f, sc1);
                        else
                            etok_attn_scores(t, q + h * hd, rows, rb, N, hd, 0.125f, sc1);
                        if (memcmp(sc1, scg + h * N, sizeof sc1) != 0)
                            fail_msg("%s hd %d g %d head %d: grouped scores differ (scalar %d)", etok_type_name(t), hd, g, h, scalar);
                    }
                    const uint8_t *v0 = rows;
                    const int fp = 5, n = N;
                    if (scalar)
                        etok_attn_accum_multi_ref(t, w, N, g, 1, &v0, &fp, &n, rb, hd, og);
                    else
                        etok_attn_accum_multi(t, w, N, g, 1, &v0, &fp, &n, rb, hd, og);
                    /* the same positions in three runs (as sinks + a wrapped window) */
                    const uint8_t *v3[3] = {rows, rows + 7 * rb, rows + 30 * rb};
                    const int fp3[3] = {5, 12, 35}, n3[3] = {7, 23, 15};
                    if (scalar)
                        etok_attn_accum_multi_ref(t, w, N, g, 3, v3, fp3, n3, rb, hd, os);
                    else
                        etok_attn_accum_multi(t, w, N, g, 3, v3, fp3, n3, rb, hd, os);
                    assert_memory_equal(og, os, (size_t)g * hd * sizeof(float));
                    for (int h = 0; h < g; h++) {
                        if (scalar)
                            etok_attn_accum_ref(t, w + h * N, rows, rb, 5, N, hd, o1);
                        else
                            etok_attn_accum(t, w + h * N, rows, rb, 5, N, hd, o1);
                        if (memcmp(o1, og + h * hd, (size_t)hd * sizeof(float)) != 0)
                            fail_msg("%s hd %d g %d head %d: grouped V sum differs (scalar %d)", etok_type_name(t), hd, g, h, scalar);
                        /* scalar and SIMD agree up to summation order */
                        float ref[MAXHD];
                        etok_attn_accum_ref(t, w + h * N, rows, rb, 5, N, hd, ref);
                        for (int i = 0; i < hd; i++) assert_float_equal(ref[i], o1[i], 1e-5f);
                    }
                }
        }
}

/* ---- Q2_K, Q3_K, Q5_K, IQ4_NL layouts (issue 14) ---- */

static float h16(etok_f16 h) { return etok_f16_to_f32(h); }

/* Independent decoders in the loop order of ggml's dequantize_row_* (values written one after
 * the other), to check quant.c's index formulas on random bytes. */
static void ggml_order_q2_k(const etok_block_q2_k *b, float *y) {
    const float d = h16(b->d), mn = h16(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                uint8_t sc = b->scales[is++];
                for (int l = 0; l < 16; l++) *y++ = d * (sc & 0xF) * ((q[l + 16 * half] >> shift) & 3) - mn * (sc >> 4);
            }
        }
        q += 32;
    }
}

static void ggml_order_q3_k(const etok_block_q3_k *b, float *y) {
    int8_t sc[16]; /* the 12 bytes as four little-endian words, rearranged as ggml does */
    uint32_t aux[4];
    memcpy(aux, b->scales, 12);
    uint32_t tmp = aux[2];
    aux[2] = ((aux[0] >> 4) & 0x0f0f0f0f) | (((tmp >> 4) & 0x03030303) << 4);
    aux[3] = ((aux[1] >> 4) & 0x0f0f0f0f) | (((tmp >> 6) & 0x03030303) << 4);
    aux[0] = (aux[0] & 0x0f0f0f0f) | (((tmp >> 0) & 0x03030303) << 4);
    aux[1] = (aux[1] & 0x0f0f0f0f) | (((tmp >> 2) & 0x03030303) << 4);
    memcpy(sc, aux, 16);
    const float d = h16(b->d);
    const uint8_t *q = b->qs;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < 256; n += 128) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                float dl = d * (sc[is++] - 32);
                for (int l = 16 * half; l < 16 * half + 16; l++)
                    *y++ = dl * (((q[l] >> shift) & 3) - ((b->hmask[l] & m) ? 0 : 4));
            }
            m = (uint8_t)(m << 1);
        }
        q += 32;
    }
}

static void k4_scale_min(int j, const uint8_t *q, int *d, int *m) {
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

static void ggml_order_q5_k(const etok_block_q5_k *b, float *y) {
    const float d = h16(b->d), mn = h16(b->dmin);
    const uint8_t *ql = b->qs;
    uint8_t u1 = 1, u2 = 2;
    for (int is = 0; is < 8; is += 2) {
        int sc, m;
        k4_scale_min(is, b->scales, &sc, &m);
        for (int l = 0; l < 32; l++) *y++ = d * sc * ((ql[l] & 0xF) + (b->qh[l] & u1 ? 16 : 0)) - mn * m;
        k4_scale_min(is + 1, b->scales, &sc, &m);
        for (int l = 0; l < 32; l++) *y++ = d * sc * ((ql[l] >> 4) + (b->qh[l] & u2 ? 16 : 0)) - mn * m;
        ql += 32;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void ggml_order_iq4_nl(const etok_block_iq4_nl *b, float *y) {
    static const int8_t lv[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
    for (int j = 0; j < 16; j++) {
        y[j] = h16(b->d) * lv[b->qs[j] & 0xF];
        y[j + 16] = h16(b->d) * lv[b->qs[j] >> 4];
    }
}

/* Dot products with a unit activation at each position pick out that value: the SIMD and
 * the scalar kernels read the layout as the dequantiser does. */
static void check_unit_dots(uint32_t t, const void *blk, const float *y, int n) {
    float amax = 0;
    for (int j = 0; j < n; j++) amax = fmaxf(amax, fabsf(y[j]));
    for (int j = 0; j < n; j++) {
        float e[256] = {0};
        etok_block_q8a xq[8];
        e[j] = 1.0f;
        etok_quantize_q8a(e, xq, n);
        const float scale = 127.0f * xq[j / 32].d, tol = 2e-3f * amax * scale + 1e-6f;
        float ref = etok_vec_dot_ref(t, blk, xq, NULL, n), fast = etok_vec_dot(t, blk, xq, NULL, n);
        if (fabsf(ref - y[j] * scale) > tol) fail_msg("%s value %d: scalar dot %g, dequantised %g", etok_type_name(t), j, ref / scale, y[j]);
        if (fabsf(fast - y[j] * scale) > tol) fail_msg("%s value %d: SIMD dot %g, dequantised %g", etok_type_name(t), j, fast / scale, y[j]);
    }
}

static void random_bytes(void *p, size_t n) {
    uint8_t *b = p;
    for (size_t i = 0; i < n; i++) b[i] = (uint8_t)((frand() + 1.0f) * 128.0f);
}

static void test_kquant_layouts(void **state) {
    (void)state;
    float y[256], want[256];

    /* IQ4_NL by hand: d = 0.5, nibble 8 (level 1) everywhere except value 0 (nibble 0: -127),
     * value 16 (nibble 15: 113), value 5 (nibble 9: 13), value 21 (nibble 7: -10) */
    etok_block_iq4_nl nl;
    nl.d = etok_f32_to_f16(0.5f);
    memset(nl.qs, 0x88, sizeof nl.qs);
    nl.qs[0] = 0xF0;
    nl.qs[5] = 0x79;
    etok_dequantize_row(ETOK_T_IQ4_NL, &nl, y, 32);
    assert_float_equal(y[0], -63.5f, 0.0f);
    assert_float_equal(y[16], 56.5f, 0.0f);
    assert_float_equal(y[5], 6.5f, 0.0f);
    assert_float_equal(y[21], -5.0f, 0.0f);
    assert_float_equal(y[1], 0.5f, 0.0f);
    check_unit_dots(ETOK_T_IQ4_NL, &nl, y, 32);

    /* Q2_K by hand: d = 1, dmin = 0.5; every sub-block scale 1, min 0, except sub-block 0
     * (scale 3, min 2) and 15 (scale 5, min 3); qs[0] = 11 10 01 00 gives values 0, 32, 64, 96
     * the 2-bit values 0, 1, 2, 3; qs[49] = 10 00 00 00 gives value 128 + 96 + 17 = 241 q = 2 */
    etok_block_q2_k b2;
    memset(&b2, 0, sizeof b2);
    b2.d = etok_f32_to_f16(1.0f);
    b2.dmin = etok_f32_to_f16(0.5f);
    memset(b2.scales, 0x01, sizeof b2.scales);
    b2.scales[0] = 0x23;
    b2.scales[15] = 0x35;
    b2.qs[0] = 0xE4;
    b2.qs[49] = 0x80;
    etok_dequantize_row(ETOK_T_Q2_K, &b2, y, 256);
    assert_float_equal(y[0], -1.0f, 0.0f); /* 3*0 - 0.5*2 */
    assert_float_equal(y[1], -1.0f, 0.0f);
    assert_float_equal(y[32], 1.0f, 0.0f);
    assert_float_equal(y[64], 2.0f, 0.0f);
    assert_float_equal(y[96], 3.0f, 0.0f);
    assert_float_equal(y[241], 8.5f, 0.0f); /* 5*2 - 0.5*3 */
    assert_float_equal(y[240], -1.5f, 0.0f);
    assert_float_equal(y[225], 0.0f, 0.0f);
    check_unit_dots(ETOK_T_Q2_K, &b2, y, 256);

    /* Q3_K by hand: d = 0.25; every 6-bit scale 33 (scale 1: low nibbles 1, high bits 2 = 0xAA)
     * except sub-block 9 (6-bit 5: scale -27, low nibble in scales[1] >> 4, high bits 0 at bits
     * 4..5 of scales[9]); hmask all set (no -4) except bit 1 of hmask[0] (value 32) and bit 4
     * of hmask[22] (value 128 + 22 = 150); qs[0] = 00 01 10 11: values 0, 32, 64, 96 have low
     * bits 3, 2, 1, 0; qs[54] = 2: value 150 has low bits 2 */
    etok_block_q3_k b3;
    memset(&b3, 0, sizeof b3);
    b3.d = etok_f32_to_f16(0.25f);
    memset(b3.scales, 0x11, 8);
    memset(b3.scales + 8, 0xAA, 4);
    b3.scales[1] = 0x51;
    b3.scales[9] = 0x8A;
    memset(b3.hmask, 0xFF, sizeof b3.hmask);
    b3.hmask[0] = 0xFD;
    b3.hmask[22] = 0xEF;
    b3.qs[0] = 0x1B;
    b3.qs[54] = 0x02;
    etok_dequantize_row(ETOK_T_Q3_K, &b3, y, 256);
    assert_float_equal(y[0], 0.75f, 0.0f);
    assert_float_equal(y[32], -0.5f, 0.0f); /* (2 - 4) * 0.25 */
    assert_float_equal(y[64], 0.25f, 0.0f);
    assert_float_equal(y[96], 0.0f, 0.0f);
    assert_float_equal(y[150], 13.5f, 0.0f); /* 0.25 * -27 * (2 - 4) */
    assert_float_equal(y[151], 0.0f, 0.0f);
    check_unit_dots(ETOK_T_Q3_K, &b3, y, 256);

    /* Q5_K by hand: d = dmin = 1; scales 1 and mins 0 except sub-block 5 (scale 35 = low 3 in
     * scales[9], high 2 at the top of scales[1]; min 18 = low 2 in scales[9] >> 4, high 1 at the
     * top of scales[5]); value 0: nibble 7 + bit 0 of qh[0] = 23; value 163 (sub-block 5 = high
     * nibbles of qs[64..95], bit 5 of qh): 10 + 16 = 26; value 255: 15 + 16 = 31 */
    etok_block_q5_k b5;
    memset(&b5, 0, sizeof b5);
    b5.d = b5.dmin = etok_f32_to_f16(1.0f);
    const uint8_t sc5[12] = {1, 0x81, 1, 1, 0, 0x40, 0, 0, 1, 0x23, 1, 1};
    memcpy(b5.scales, sc5, 12);
    b5.qs[0] = 0x07;
    b5.qh[0] = 0x01;
    b5.qs[67] = 0xA0;
    b5.qh[3] = 0x20;
    b5.qs[127] = 0xF0;
    b5.qh[31] = 0x80;
    etok_dequantize_row(ETOK_T_Q5_K, &b5, y, 256);
    assert_float_equal(y[0], 23.0f, 0.0f);
    assert_float_equal(y[32], 0.0f, 0.0f);
    assert_float_equal(y[163], 35.0f * 26 - 18, 0.0f);
    assert_float_equal(y[160], -18.0f, 0.0f);
    assert_float_equal(y[255], 31.0f, 0.0f);
    check_unit_dots(ETOK_T_Q5_K, &b5, y, 256);

    /* random bytes (finite scales) against the ggml-order decoders, and the unit dots */
    for (int rep = 0; rep < 20; rep++) {
        const etok_f16 dd = etok_f32_to_f16(0.01f + 0.01f * (float)rep), dm = etok_f32_to_f16(0.005f * (float)rep);
        etok_block_q2_k r2;
        random_bytes(&r2, sizeof r2);
        r2.d = dd;
        r2.dmin = dm;
        etok_dequantize_row(ETOK_T_Q2_K, &r2, y, 256);
        ggml_order_q2_k(&r2, want);
        assert_memory_equal(y, want, sizeof y);
        etok_block_q3_k r3;
        random_bytes(&r3, sizeof r3);
        r3.d = dd;
        etok_dequantize_row(ETOK_T_Q3_K, &r3, y, 256);
        ggml_order_q3_k(&r3, want);
        assert_memory_equal(y, want, sizeof y);
        etok_block_q5_k r5;
        random_bytes(&r5, sizeof r5);
        r5.d = dd;
        r5.dmin = dm;
        etok_dequantize_row(ETOK_T_Q5_K, &r5, y, 256);
        ggml_order_q5_k(&r5, want);
        assert_memory_equal(y, want, sizeof y);
        etok_block_iq4_nl r4;
        random_bytes(&r4, sizeof r4);
        r4.d = dd;
        etok_dequantize_row(ETOK_T_IQ4_NL, &r4, y, 32);
        ggml_order_iq4_nl(&r4, want);
        assert_memory_equal(y, want, 32 * sizeof(float));
        if (rep % 5 == 0) {
            ggml_order_q2_k(&r2, want);
            check_unit_dots(ETOK_T_Q2_K, &r2, want, 256);
            ggml_order_q3_k(&r3, want);
            check_unit_dots(ETOK_T_Q3_K, &r3, want, 256);
            ggml_order_q5_k(&r5, want);
            check_unit_dots(ETOK_T_Q5_K, &r5, want, 256);
            ggml_order_iq4_nl(&r4, want);
            check_unit_dots(ETOK_T_IQ4_NL, &r4, want, 32);
        }
    }
}

/* A matrix-vector product through the dispatch (AVX2 here when the CPU has it) against the
 * scalar reference row by row, for the new formats, rows of 1024 values: equal up to float
 * summation order (relative 1e-4 of the sum of |terms|). */
static void test_matvec_new_formats(void **state) {
    (void)state;
    enum { N = 1024, ROWS = 9 };
    static float w[ROWS * N], x[N], out[ROWS];
    static uint8_t m[ROWS * N];
    static etok_block_q8a xq[N / 32];
    const uint32_t types[] = {ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q5_K, ETOK_T_IQ4_NL};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        const size_t rb = etok_type_row_bytes(t, N);
        for (int i = 0; i < ROWS * N; i++) w[i] = frand() * 0.1f;
        for (int i = 0; i < N; i++) x[i] = frand();
        for (int r = 0; r < ROWS; r++) etok_quantize_row(t, w + r * N, m + r * rb, N);
        etok_quantize_q8a(x, xq, N);
        etok_matmul_rows(t, m, rb, 0, ROWS, xq, NULL, N, 1, out, ROWS);
        for (int r = 0; r < ROWS; r++) {
            float wd[N];
            etok_dequantize_row(t, m + r * rb, wd, N);
            double mag = 0;
            for (int i = 0; i < N; i++) mag += fabs((double)wd[i] * x[i]);
            float ref = etok_vec_dot_ref(t, m + r * rb, xq, NULL, N);
            if (fabsf(out[r] - ref) > 1e-4f * (float)mag + 1e-5f)
                fail_msg("%s row %d: matvec %g, scalar %g", etok_type_name(t), r, out[r], ref);
        }
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),       cmocka_unit_test(test_half),        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_q5_layout), cmocka_unit_test(test_kquant_layouts), cmocka_unit_test(test_matvec_new_formats),
        cmocka_unit_test(test_q8a),         cmocka_unit_test(test_dot_kernels), cmocka_unit_test(test_axpy), cmocka_unit_test(test_matmul_rows),
        cmocka_unit_test(test_decode_4rows),
        cmocka_unit_test(test_attn_multi),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
