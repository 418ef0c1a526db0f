/* test_quant_k.c — the K-quant x Q8_K path (src/engine/quant_k.c): the Q8_K quantiser on
 * hand-built blocks (scale, rounding, clamp, sums, zero block); for every K type the AVX2 dot
 * bit-equal to the scalar reference on random rows, both within a stated bound of a double
 * dot of the dequantised weights and activations; and both bit-equal to llama.cpp's own
 * ggml_vec_dot_q{2..6}_K_q8_K on 40 fixed cases (tests/fixtures/reference/kquant_dots.txt). */
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
#include "engine/quant_k.h"

static const uint32_t k_types[] = {ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q4_K, ETOK_T_Q5_K, ETOK_T_Q6_K};

static uint64_t rng_state = 99;
static float frand(void) { /* uniform in [-1, 1) */
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((rng_state >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static void test_q8k_hand_block(void **state) {
    (void)state;
    float x[ETOK_QK_K];
    for (int i = 0; i < ETOK_QK_K; i++) x[i] = 0.01f * (float)(i % 16) - 0.05f;
    x[3] = -2.0f;  /* largest magnitude: iscale = -127 / -2, it maps to -127 */
    x[100] = 2.0f; /* same magnitude later: the first one wins, this maps to +127 */
    x[7] = 1.0f;   /* -127/-2 * 1 = 63.5 -> 64 (half to even) */
    x[8] = 0.5f;   /* 31.75 -> 32 */
    etok_block_q8k b;
    etok_quantize_q8k(x, &b, ETOK_QK_K);
    const float iscale = -127.f / -2.0f;
    assert_true(b.d == 1 / iscale);
    assert_int_equal(b.qs[3], -127);
    assert_int_equal(b.qs[100], 127);
    assert_int_equal(b.qs[7], 64);
    assert_int_equal(b.qs[8], 32);
    for (int k = 0; k < 16; k++) {
        int s = 0;
        for (int l = 0; l < 16; l++) s += b.qs[16 * k + l];
        assert_int_equal(b.bsums[k], s);
    }
    /* x[0] = -0.05 -> -3.175 -> -3 */
    assert_int_equal(b.qs[0], -3);
    /* a positive maximum maps to -127 */
    for (int i = 0; i < ETOK_QK_K; i++) x[i] = 0;
    x[10] = 4.0f;
    x[11] = -1.0f;
    etok_quantize_q8k(x, &b, ETOK_QK_K);
    assert_int_equal(b.qs[10], -127);
    assert_int_equal(b.qs[11], 32); /* 31.75 */
    assert_int_equal(b.bsums[0], -127 + 32);
    /* all zero: d = 0, nothing else */
    memset(x, 0, sizeof x);
    memset(&b, 0x55, sizeof b);
    etok_quantize_q8k(x, &b, ETOK_QK_K);
    assert_true(b.d == 0);
    for (int i = 0; i < ETOK_QK_K; i++) assert_int_equal(b.qs[i], 0);
    for (int k = 0; k < 16; k++) assert_int_equal(b.bsums[k], 0);
}

/* Random rows: SIMD = scalar bit for bit, and both within 1e-5 of the sum of |terms| of a
 * double dot of the dequantised values (float lanes of exact integers: the only rounding is
 * the per-super-block d, the fma per lane and the final sums; measured under 1e-6). */
static void test_dot_simd_ref_double(void **state) {
    (void)state;
    enum { N = 1536 };
    static float x[N], w[N], wd[N];
    static uint8_t row[N];
    static etok_block_q8k y[N / ETOK_QK_K];
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
        const uint32_t t = k_types[ti];
        double worst = 0;
        for (int it = 0; it < 200; it++) {
            const float sc = powf(10.f, 3 * frand());
            for (int i = 0; i < N; i++) {
                x[i] = frand() * sc * (i % 97 == 0 ? 20.f : 1.f);
                w[i] = frand() * 0.05f;
            }
            if (it % 9 == 0)
                for (int i = 256; i < 512; i++) x[i] = 0;
            etok_quantize_row(t, w, row, N);
            etok_dequantize_row(t, row, wd, N);
            etok_quantize_q8k(x, y, N);
            const float r = etok_vec_dot_q8k_ref(t, row, y, N), s = etok_vec_dot_q8k(t, row, y, N);
            uint32_t rb, sb;
            memcpy(&rb, &r, 4);
            memcpy(&sb, &s, 4);
            if (rb != sb) fail_msg("%s it %d: simd %.9g != ref %.9g", etok_type_name(t), it, (double)s, (double)r);
            double dot = 0, mag = 0;
            for (int i = 0; i < N; i++) {
                const double a = (double)y[i / ETOK_QK_K].d * y[i / ETOK_QK_K].qs[i % ETOK_QK_K];
                dot += (double)wd[i] * a;
                mag += fabs((double)wd[i] * a);
            }
            const double e = fabs((double)r - dot) / (mag > 0 ? mag : 1);
            if (e > worst) worst = e;
        }
        if (worst > 1e-5) fail_msg("%s: relative error %.3g > 1e-5", etok_type_name(t), worst);
    }
}

static int hexval(int c) { return c <= '9' ? c - '0' : (c | 32) - 'a' + 10; }

static int read_hex(const char *s, void *out, size_t n) {
    uint8_t *b = out;
    for (size_t i = 0; i < n; i++) {
        if (!s[2 * i] || !s[2 * i + 1]) return -1;
        b[i] = (uint8_t)(hexval(s[2 * i]) << 4 | hexval(s[2 * i + 1]));
    }
    return s[2 * n] == ' ' || s[2 * n] == '\n' || s[2 * n] == 0 ? 0 : -1;
}

/* llama.cpp's results on fixed inputs: each line "type n row_hex x_hex result_bits". */
static void test_matches_llama_cpp(void **state) {
    (void)state;
    char p[1024];
    const char *root = getenv("ETOK_SOURCE_DIR");
    snprintf(p, sizeof p, "%s/tests/fixtures/reference/kquant_dots.txt", root && *root ? root : ".");
    FILE *f = fopen(p, "r");
    if (!f) fail_msg("%s: cannot open", p);
    static char line[1 << 16];
    int cases = 0, per_type[ETOK_T_COUNT] = {0};
    while (fgets(line, sizeof line, f)) {
        unsigned t;
        int n, off;
        if (sscanf(line, "%u %d %n", &t, &n, &off) != 2 || n != 512 || !etok_type_uses_q8k(t)) fail_msg("%s: bad line", p);
        uint8_t row[512];
        float x[512];
        etok_block_q8k y[2];
        const size_t rb = etok_type_row_bytes(t, n);
        const char *s = line + off;
        assert_int_equal(read_hex(s, row, rb), 0);
        s += 2 * rb + 1;
        assert_int_equal(read_hex(s, x, sizeof x), 0);
        s += 2 * sizeof x + 1;
        uint32_t want;
        if (sscanf(s, "%x", &want) != 1) fail_msg("%s: no result", p);
        etok_quantize_q8k(x, y, n);
        const float r = etok_vec_dot_q8k_ref(t, row, y, n), v = etok_vec_dot_q8k(t, row, y, n);
        uint32_t got_r, got_v;
        memcpy(&got_r, &r, 4);
        memcpy(&got_v, &v, 4);
        if (got_r != want || got_v != want)
            fail_msg("%s case %d: llama.cpp %08x, etok ref %08x simd %08x", etok_type_name(t), cases, want, got_r, got_v);
        cases++;
        per_type[t]++;
    }
    fclose(f);
    assert_int_equal(cases, 40);
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) assert_int_equal(per_type[k_types[ti]], 8);
}

/* The matmul row loop (4 tokens per pass over a row, then one by one): every (row, token)
 * equals a single scalar dot, bit for bit. */
static void test_matmul_rows(void **state) {
    (void)state;
    enum { N = 512, R = 6, T = 6 }; /* 6 tokens: one 4-token pass and 2 single ones */
    static float w[R * N], x[T * N];
    static uint8_t m[R * N];
    static etok_block_q8k y[T * N / ETOK_QK_K];
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++) {
        const uint32_t t = k_types[ti];
        const size_t rb = etok_type_row_bytes(t, N);
        for (int i = 0; i < R * N; i++) w[i] = frand();
        for (int i = 0; i < T * N; i++) x[i] = frand();
        for (int r = 0; r < R; r++) etok_quantize_row(t, w + r * N, m + r * rb, N);
        etok_quantize_q8k(x, y, T * N);
        float out[T * R];
        memset(out, 0, sizeof out);
        etok_matmul_rows_q8k(t, m, rb, 1, R, y, N, T, out, R);
        for (int j = 0; j < T; j++) {
            assert_true(out[j * R] == 0); /* row 0 not asked for */
            for (int r = 1; r < R; r++)
                assert_true(out[j * R + r] == etok_vec_dot_q8k_ref(t, m + r * rb, y + j * (N / ETOK_QK_K), N));
        }
    }
}

/* Decode (one token: quant_k.c's decode path, 2 rows per pass, the activations' shared terms
 * once per call): every row of a row range gets the bits of the scalar reference dot and of the
 * single-row AVX2 dot (etok_vec_dot_q8k), memcmp, for 1, 3, 6 (SmolLM2's ffn_down) and 16
 * super-blocks (the widest on the decode path) and 17 (wider: the single-row kernels), row
 * ranges of odd length and odd start, weights and activations of several magnitudes. */
static void test_decode_rows(void **state) {
    (void)state;
    enum { NBMAX = 17, R = 11 };
    static float w[R * NBMAX * ETOK_QK_K], x[NBMAX * ETOK_QK_K];
    static uint8_t m[R * NBMAX * ETOK_QK_K];
    static etok_block_q8k y[NBMAX];
    const int nbs[] = {1, 3, 6, 16, 17};
    const int ranges[][2] = {{1, 11}, {0, 7}, {2, 5}, {0, 8}, {3, 4}};
    for (size_t ti = 0; ti < sizeof k_types / sizeof k_types[0]; ti++)
        for (size_t a = 0; a < sizeof nbs / sizeof nbs[0]; a++) {
            const uint32_t t = k_types[ti];
            const int N = nbs[a] * ETOK_QK_K;
            const size_t rb = etok_type_row_bytes(t, N);
            for (int rep = 0; rep < 3; rep++) {
                for (int i = 0; i < R * N; i++) w[i] = frand() * (rep == 2 ? 8.0f : 1.0f);
                for (int i = 0; i < N; i++) x[i] = frand() * (rep == 1 ? 0.01f : 1.0f);
                for (int r = 0; r < R; r++) etok_quantize_row(t, w + r * N, m + r * rb, N);
                etok_quantize_q8k(x, y, N);
                for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
                    const int r0 = ranges[k][0], r1 = ranges[k][1];
                    float out[R];
                    memset(out, 0, sizeof out);
                    etok_matmul_rows_q8k(t, m, rb, r0, r1, y, N, 1, out, R);
                    for (int r = 0; r < R; r++) {
                        const float want = r < r0 || r >= r1 ? 0.0f : etok_vec_dot_q8k_ref(t, m + r * rb, y, N);
                        const float one = r < r0 || r >= r1 ? 0.0f : etok_vec_dot_q8k(t, m + r * rb, y, N);
                        if (memcmp(&out[r], &want, sizeof(float)) != 0 || memcmp(&one, &want, sizeof(float)) != 0)
                            fail_msg("%s nb %d rows [%d,%d) row %d: %a, single-row %a, scalar reference %a",
                                     etok_type_name(t), nbs[a], r0, r1, r, out[r], one, want);
                    }
                }
            }
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_q8k_hand_block),
        cmocka_unit_test(test_dot_simd_ref_double),
        cmocka_unit_test(test_matches_llama_cpp),
        cmocka_unit_test(test_matmul_rows),
        cmocka_unit_test(test_decode_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
