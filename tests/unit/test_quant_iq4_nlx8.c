/* test_quant_iq4_nlx8.c — IQ4_NL repacked into the 8-row layout IQ4_NLx8
 * (src/engine/quant_iq4_nlx8.c): the rule picking matrices; packing moves bytes only (every
 * block and every dequantised row comes back as stored); the scalar reference over the packed
 * bytes equals an independent spelling of the two orders from the file's blocks (one token:
 * even and odd blocks in two 8-lane chains, lane-wise sum, hsum, an odd last block added as
 * a product then a sum; several tokens: one 8-lane chain, hsum) bit for bit; the dispatched
 * kernel (AVX2 here) equals the reference and, where SIMD is active, the file-layout kernels
 * (etok_matmul_rows: dot_iq4_nl_1tok for one token, quant_q5_0.c's tiles for several) bit for
 * bit, for 1..9 tokens, 8..64 rows, 1..65 blocks (odd and even counts; 65 takes the kernel's
 * heap buffer), row ranges starting and ending inside 8-row groups; rows outside the range
 * are not written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/quant.h"

static uint32_t rng = 4243u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static void test_rule(void **state) {
    (void)state;
    assert_true(etok_iq4nlx8_applies(ETOK_T_IQ4_NL, 576, 576));
    assert_true(etok_iq4nlx8_applies(ETOK_T_IQ4_NL, 1536, 576));
    assert_true(etok_iq4nlx8_applies(ETOK_T_IQ4_NL, 8, 32));
    assert_false(etok_iq4nlx8_applies(ETOK_T_IQ4_NL, 100, 576));
    assert_false(etok_iq4nlx8_applies(ETOK_T_IQ4_NL, 0, 576));
    assert_false(etok_iq4nlx8_applies(ETOK_T_IQ4_NL, 576, 48));
    assert_false(etok_iq4nlx8_applies(ETOK_T_Q4_0, 576, 576));
    assert_false(etok_iq4nlx8_applies(ETOK_T_Q5_0, 576, 576));
    assert_int_equal(etok_iq4nlx8_group_bytes(576), 8 * etok_type_row_bytes(ETOK_T_IQ4_NL, 576));
}

static void fill(uint8_t *m, int rows, int n, etok_block_q8a *xq, int nx, float wscale) {
    const size_t rb = etok_type_row_bytes(ETOK_T_IQ4_NL, n);
    float *w = malloc((size_t)n * sizeof *w), *x = malloc((size_t)n * sizeof *x);
    assert_true(w && x);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < n; i++) w[i] = wscale * frand();
        etok_quantize_row(ETOK_T_IQ4_NL, w, m + (size_t)r * rb, n);
    }
    for (int j = 0; j < nx; j++) {
        for (int i = 0; i < n; i++) x[i] = frand() * (1.0f + (float)(i % 5));
        if (j == 1) x[3] = 0.0f; /* a zero activation (sign(w, 0) = 0) */
        etok_quantize_q8a(x, xq + (size_t)j * (size_t)(n / 32), n);
    }
    free(w);
    free(x);
}

/* The orders, spelled out from the file's blocks (independent of the packed layout). */
static float hsum8(const float a[8]) {
    const float r0 = a[4] + a[0], r1 = a[5] + a[1], r2 = a[6] + a[2], r3 = a[7] + a[3];
    const float t0 = r0 + r2, t1 = r1 + r3;
    return t0 + t1;
}

static float spec_block(const etok_block_iq4_nl *b, const etok_block_q8a *y, int32_t s[8]) {
    int w[32];
    for (int j = 0; j < 16; j++) {
        w[j] = etok_iq4nl_values[b->qs[j] & 0xF];
        w[j + 16] = etok_iq4nl_values[b->qs[j] >> 4];
    }
    for (int l = 0; l < 8; l++) s[l] = 0;
    for (int j = 0; j < 32; j++) s[j / 4] += w[j] * y->qs[j];
    return etok_f16_to_f32(b->d) * y->d;
}

static float spec_row(const uint8_t *row, const etok_block_q8a *y, int64_t nb, int one_token) {
    const etok_block_iq4_nl *b = (const etok_block_iq4_nl *)row;
    float acc[2][8] = {{0}};
    int32_t s[8];
    if (!one_token) {
        for (int64_t i = 0; i < nb; i++) {
            const float d = spec_block(b + i, y + i, s);
            for (int l = 0; l < 8; l++) acc[0][l] = fmaf(d, (float)s[l], acc[0][l]);
        }
        return hsum8(acc[0]);
    }
    for (int64_t i = 0; i + 1 < nb; i += 2) /* the pairs: block i into chain 0, i + 1 into chain 1 */
        for (int e = 0; e < 2; e++) {
            const float d = spec_block(b + i + e, y + i + e, s);
            for (int l = 0; l < 8; l++) acc[e][l] = fmaf(d, (float)s[l], acc[e][l]);
        }
    float e[8];
    for (int l = 0; l < 8; l++) e[l] = acc[0][l] + acc[1][l];
    float sum = hsum8(e);
    if (nb % 2) {
        const float d = spec_block(b + nb - 1, y + nb - 1, s);
        int32_t t = 0;
        for (int l = 0; l < 8; l++) t += s[l];
        const float p = d * (float)t;
        sum = sum + p;
    }
    return sum;
}

static void test_pack_roundtrip(void **state) {
    (void)state;
    enum { ROWS = 24, N = 7 * 32 };
    const size_t rb = etok_type_row_bytes(ETOK_T_IQ4_NL, N);
    uint8_t *m = malloc(ROWS * rb), *p = malloc(ROWS * rb);
    static etok_block_q8a xq[N / 32];
    assert_true(m && p);
    fill(m, ROWS, N, xq, 1, 1.0f);
    memset(p, 0xA5, ROWS * rb);
    etok_iq4nlx8_pack(m, rb, ROWS, N, p);
    float a[N], b[N];
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < N / 32; i++) {
            etok_block_iq4_nl blk;
            memset(&blk, 0, sizeof blk);
            etok_iq4nlx8_get_block(p, N, r, i, &blk);
            if (memcmp(&blk, m + (size_t)r * rb + (size_t)i * sizeof blk, sizeof blk) != 0)
                fail_msg("row %d block %d differs", r, i);
        }
        etok_dequantize_row(ETOK_T_IQ4_NL, m + (size_t)r * rb, a, N);
        etok_iq4nlx8_dequantize_row(p, N, r, b);
        if (memcmp(a, b, sizeof a) != 0) fail_msg("row %d: dequantised values differ", r);
    }
    assert_true(memcmp(p + rb, m + rb, 18) != 0); /* the layout really moved bytes */
    free(m);
    free(p);
}

static void check_bits(int rows, int n, int nxmax, float wscale) {
    const size_t rb = etok_type_row_bytes(ETOK_T_IQ4_NL, n);
    const int64_t nb = n / 32;
    uint8_t *m = malloc((size_t)rows * rb), *p = malloc((size_t)rows * rb);
    etok_block_q8a *xq = malloc((size_t)nxmax * (size_t)nb * sizeof *xq);
    const size_t outn = (size_t)nxmax * (size_t)rows;
    float *o_file = malloc(outn * sizeof(float)), *o_x8 = malloc(outn * sizeof(float)), *o_ref = malloc(outn * sizeof(float));
    assert_true(m && p && xq && o_file && o_x8 && o_ref);
    fill(m, rows, n, xq, nxmax, wscale);
    etok_iq4nlx8_pack(m, rb, rows, n, p);
    const int64_t ranges[][2] = {{0, rows}, {3, rows - 5}, {8, 16}, {5, 6}, {rows - 8, rows}, {4, rows}};
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++)
        for (int nx = 1; nx <= nxmax; nx++) {
            const int64_t r0 = ranges[ri][0], r1 = ranges[ri][1];
            if (!(r0 < r1 && r1 <= rows)) continue;
            memset(o_file, 0, outn * sizeof(float));
            memset(o_x8, 0x7f, outn * sizeof(float));
            memset(o_ref, 0x7f, outn * sizeof(float));
            etok_matmul_rows(ETOK_T_IQ4_NL, m, rb, r0, r1, xq, NULL, n, nx, o_file, (size_t)rows);
            etok_matmul_iq4nlx8(p, r0, r1, xq, n, nx, o_x8, (size_t)rows);
            etok_matmul_iq4nlx8_ref(p, r0, r1, xq, n, nx, o_ref, (size_t)rows);
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
                    const float spec = spec_row(m + (size_t)r * rb, xq + (size_t)j * (size_t)nb, nb, nx == 1);
                    if (memcmp(&o_x8[at], &o_ref[at], 4) != 0 || memcmp(&o_ref[at], &spec, 4) != 0 ||
                        (etok_simd_active() && memcmp(&o_x8[at], &o_file[at], 4) != 0))
                        fail_msg("rows %d n=%d nx=%d row %d token %d: x8 %.9g ref %.9g spec %.9g file %.9g", rows, n, nx, r,
                                 j, o_x8[at], o_ref[at], spec, o_file[at]);
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
    const int widths[] = {32, 64, 96, 160, 576, 1536, 33 * 32, 65 * 32}; /* 1, 2, 3, 5, 18, 48, 33, 65 blocks */
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            check_bits(rows[ri], widths[wi], 9, 0.1f);
            check_bits(rows[ri], widths[wi], 4, 10.0f);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
