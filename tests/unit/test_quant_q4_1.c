/* test_quant_q4_1.c — Q4_1 and Q5_1 repacked into the 8-row layouts Q4_1x8 / Q5_1x8
 * (src/engine/quant_q4_1.c): the rule picking matrices; packing moves bytes only (every block
 * and every dequantised row comes back as stored); the scalar reference over the packed bytes
 * equals an independent spelling of the order (8 lanes of 4-product integer sums, one fma per
 * lane and block, the min terms as a product then a sum, etok_hsum_ps's reduction) bit for
 * bit; the dispatched kernel (AVX2 here) equals the reference and, where SIMD is active, the
 * file-layout kernels (etok_matmul_rows: 4-row decode and 4-token prefill kernels) bit for
 * bit, for 1..9 tokens, 8..64 rows, 1..33 blocks, row ranges starting and ending inside
 * 8-row groups; rows outside the range are not written. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/quant.h"
#include "engine/quant_simd.h"

static uint32_t rng = 4242u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

static void test_rule(void **state) {
    (void)state;
    assert_true(etok_q41x8_applies(ETOK_T_Q4_1, 576, 576));
    assert_true(etok_q41x8_applies(ETOK_T_Q5_1, 49152, 576));
    assert_true(etok_q41x8_applies(ETOK_T_Q4_1, 8, 32));
    assert_false(etok_q41x8_applies(ETOK_T_Q4_1, 100, 576));
    assert_false(etok_q41x8_applies(ETOK_T_Q5_1, 0, 576));
    assert_false(etok_q41x8_applies(ETOK_T_Q4_1, 576, 48));
    assert_false(etok_q41x8_applies(ETOK_T_Q4_0, 576, 576));
    assert_false(etok_q41x8_applies(ETOK_T_Q5_0, 576, 576));
    assert_false(etok_q41x8_applies(ETOK_T_Q8_0, 576, 576));
    assert_int_equal(etok_q41x8_group_bytes(ETOK_T_Q4_1, 576), 8 * etok_type_row_bytes(ETOK_T_Q4_1, 576));
    assert_int_equal(etok_q41x8_group_bytes(ETOK_T_Q5_1, 576), 8 * etok_type_row_bytes(ETOK_T_Q5_1, 576));
}

/* rows of random weights (scaled by wscale, with an offset so the mins vary in sign) and nx
 * activation vectors */
static void fill(uint32_t type, uint8_t *m, int rows, int n, etok_block_q8a *xq, int nx, float wscale) {
    const size_t rb = etok_type_row_bytes(type, n);
    float *w = malloc((size_t)n * sizeof *w);
    assert_non_null(w);
    for (int r = 0; r < rows; r++) {
        const float off = 0.3f * frand();
        for (int i = 0; i < n; i++) w[i] = wscale * (frand() + off);
        etok_quantize_row(type, w, m + (size_t)r * rb, n);
    }
    free(w);
    float *x = malloc((size_t)n * sizeof *x);
    assert_non_null(x);
    for (int j = 0; j < nx; j++) {
        for (int i = 0; i < n; i++) x[i] = frand() * (1.0f + (float)(i % 5));
        etok_quantize_q8a(x, xq + (size_t)j * (size_t)(n / 32), n);
    }
    free(x);
}

/* The order, spelled out from the file's blocks (independent of the packed layout). */
static float spec_row(uint32_t type, const uint8_t *row, const etok_block_q8a *y, int64_t nb) {
    const size_t bs = (size_t)etok_type_row_bytes(type, 32);
    float acc[8] = {0}, summ = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        const uint8_t *b = row + (size_t)i * bs;
        uint16_t d, mm;
        uint32_t qh = 0;
        const uint8_t *qs;
        memcpy(&d, b, 2);
        memcpy(&mm, b + 2, 2);
        if (type == ETOK_T_Q5_1) {
            memcpy(&qh, b + 4, 4);
            qs = b + 8;
        } else {
            qs = b + 4;
        }
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (qs[j] & 0xF) | (int)(((qh >> j) & 1u) << 4);
            q[j + 16] = (qs[j] >> 4) | (int)(((qh >> (j + 16)) & 1u) << 4);
        }
        const float scale = etok_f16_to_f32(d) * y[i].d;
        for (int L = 0; L < 8; L++) {
            int s = 0;
            for (int j = 0; j < 4; j++) s += q[4 * L + j] * y[i].qs[4 * L + j];
            acc[L] = fmaf(scale, (float)s, acc[L]);
        }
        const float p = etok_f16_to_f32(mm) * y[i].s;
        summ = summ + p;
    }
    const float s0 = acc[4] + acc[0], s1 = acc[5] + acc[1], s2 = acc[6] + acc[2], s3 = acc[7] + acc[3];
    const float t0 = s0 + s2, t1 = s1 + s3;
    const float h = t0 + t1;
    return h + summ;
}

static void check_pack(uint32_t type) {
    enum { ROWS = 24, N = 7 * 32 };
    const size_t rb = etok_type_row_bytes(type, N);
    uint8_t *m = malloc(ROWS * rb), *p = malloc(ROWS * rb);
    static etok_block_q8a xq[N / 32];
    assert_true(m && p);
    fill(type, m, ROWS, N, xq, 1, 1.0f);
    memset(p, 0xA5, ROWS * rb);
    etok_q41x8_pack(type, m, rb, ROWS, N, p);
    float a[N], b[N];
    const size_t bs = rb / (N / 32);
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < N / 32; i++) {
            etok_block_q5_1 blk;
            memset(&blk, 0, sizeof blk);
            etok_q41x8_get_block(type, p, N, r, i, &blk);
            if (memcmp(&blk, m + (size_t)r * rb + (size_t)i * bs, bs) != 0) fail_msg("%s row %d block %d differs", etok_type_name(type), r, i);
        }
        etok_dequantize_row(type, m + (size_t)r * rb, a, N);
        etok_q41x8_dequantize_row(type, p, N, r, b);
        if (memcmp(a, b, sizeof a) != 0) fail_msg("%s row %d: dequantised values differ", etok_type_name(type), r);
    }
    assert_true(memcmp(p + rb, m + rb, bs) != 0); /* the layout really moved bytes */
    free(m);
    free(p);
}

static void test_pack_roundtrip(void **state) {
    (void)state;
    check_pack(ETOK_T_Q4_1);
    check_pack(ETOK_T_Q5_1);
}

static void check_bits(uint32_t type, int rows, int n, int nxmax, float wscale) {
    const size_t rb = etok_type_row_bytes(type, n);
    const int64_t nb = n / 32;
    uint8_t *m = malloc((size_t)rows * rb), *p = malloc((size_t)rows * rb);
    etok_block_q8a *xq = malloc((size_t)nxmax * (size_t)nb * sizeof *xq);
    const size_t outn = (size_t)nxmax * (size_t)rows;
    float *o_file = malloc(outn * sizeof(float)), *o_x8 = malloc(outn * sizeof(float)), *o_ref = malloc(outn * sizeof(float));
    assert_true(m && p && xq && o_file && o_x8 && o_ref);
    fill(type, m, rows, n, xq, nxmax, wscale);
    etok_q41x8_pack(type, m, rb, rows, n, p);
    const int64_t ranges[][2] = {{0, rows}, {3, rows - 5}, {8, 16}, {5, 6}, {rows - 8, rows}, {4, rows}};
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++)
        for (int nx = 1; nx <= nxmax; nx++) {
            const int64_t r0 = ranges[ri][0], r1 = ranges[ri][1];
            if (!(r0 < r1 && r1 <= rows)) continue;
            memset(o_file, 0, outn * sizeof(float));
            memset(o_x8, 0x7f, outn * sizeof(float));
            memset(o_ref, 0x7f, outn * sizeof(float));
            etok_matmul_rows(type, m, rb, r0, r1, xq, NULL, n, nx, o_file, (size_t)rows);
            etok_matmul_q41x8(type, p, r0, r1, xq, n, nx, o_x8, (size_t)rows);
            etok_matmul_q41x8_ref(type, p, r0, r1, xq, n, nx, o_ref, (size_t)rows);
            for (int j = 0; j < nx; j++)
                for (int r = 0; r < rows; r++) {
                    const size_t at = (size_t)j * (size_t)rows + (size_t)r;
                    if (!(r >= r0 && r < r1)) {
                        uint32_t u, v;
                        memcpy(&u, &o_x8[at], 4);
                        memcpy(&v, &o_ref[at], 4);
                        if (u != 0x7f7f7f7fu || v != 0x7f7f7f7fu)
                            fail_msg("%s rows %d n=%d nx=%d: row %d outside [%lld,%lld) written", etok_type_name(type), rows,
                                     n, nx, r, (long long)r0, (long long)r1);
                        continue;
                    }
                    const float spec = spec_row(type, m + (size_t)r * rb, xq + (size_t)j * (size_t)nb, nb);
                    if (memcmp(&o_x8[at], &o_ref[at], 4) != 0 || memcmp(&o_ref[at], &spec, 4) != 0 ||
                        (etok_simd_active() && memcmp(&o_x8[at], &o_file[at], 4) != 0))
                        fail_msg("%s rows %d n=%d nx=%d row %d token %d: x8 %.9g ref %.9g spec %.9g file %.9g",
                                 etok_type_name(type), rows, n, nx, r, j, o_x8[at], o_ref[at], spec, o_file[at]);
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
    const uint32_t types[] = {ETOK_T_Q4_1, ETOK_T_Q5_1};
    const int rows[] = {8, 16, 24, 64};
    const int widths[] = {32, 96, 160, 576, 33 * 32}; /* 1, 3, 5, 18, 33 blocks */
    for (size_t ti = 0; ti < 2; ti++)
        for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
            for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
                check_bits(types[ti], rows[ri], widths[wi], 9, 0.1f);
                check_bits(types[ti], rows[ri], widths[wi], 5, 10.0f);
            }
}

/* The min terms are a product then a sum, never fused (as llama.cpp compiled by GCC): block 0
 * has m = -(1 + 2^-10), block 1 m = 1 + 2^-10, both against s = 1 + 2^-14, zero scales. The
 * product rounds (1 + 2^-10 + 2^-14 + 2^-24 -> 1 + 2^-10 + 2^-14), so summ is exactly 0 when
 * unfused and 2^-24 when the second step is fused. Checks the repacked kernels and, where SIMD
 * is active, the file-layout ones (a compiler contracting "summ += m * s" fails here). */
static void test_min_not_fused(void **state) {
    (void)state;
    enum { N = 64 };
    const uint32_t types[] = {ETOK_T_Q4_1, ETOK_T_Q5_1};
    for (size_t ti = 0; ti < 2; ti++) {
        const uint32_t type = types[ti];
        const size_t rb = etok_type_row_bytes(type, N), bs = rb / 2;
        uint8_t m[8 * 2 * 24], p[8 * 2 * 24];
        memset(m, 0, sizeof m);
        etok_block_q8a y[2];
        memset(y, 0, sizeof y);
        y[0].s = y[1].s = 1.0f + 0x1p-14f;
        y[0].d = y[1].d = 1.0f;
        for (int r = 0; r < 8; r++) {
            const uint16_t neg = 0xBC01, pos = 0x3C01;
            memcpy(m + (size_t)r * rb + 2, &neg, 2);
            memcpy(m + (size_t)r * rb + bs + 2, &pos, 2);
        }
        etok_q41x8_pack(type, m, rb, 8, N, p);
        float o[8], o_ref[8], o_file[8];
        etok_matmul_q41x8(type, p, 0, 8, y, N, 1, o, 8);
        etok_matmul_q41x8_ref(type, p, 0, 8, y, N, 1, o_ref, 8);
        etok_matmul_rows(type, m, rb, 0, 8, y, NULL, N, 1, o_file, 8);
        for (int r = 0; r < 8; r++)
            if (o[r] != 0.0f || o_ref[r] != 0.0f || (etok_simd_active() && o_file[r] != 0.0f))
                fail_msg("%s row %d: %.9g / ref %.9g / file %.9g, want 0 (product, then sum)", etok_type_name(type), r,
                         o[r], o_ref[r], o_file[r]);
    }
}

/* The order the decode kernels take row groups in (etok_part_order): a permutation of 0..n-1;
 * the first `parts` groups are the starts of `parts` equal runs; each run is taken in
 * ascending order; the groups after parts x floor(n / parts) come last, in order. */
static void test_part_order(void **state) {
    (void)state;
    for (int parts = 1; parts <= 5; parts++)
        for (int64_t n = 0; n <= 41; n++) {
            unsigned char seen[41] = {0};
            const int64_t h = n / parts;
            int64_t last[5] = {-1, -1, -1, -1, -1};
            for (int64_t i = 0; i < n; i++) {
                const int64_t g = etok_part_order(i, n, parts);
                assert_true(g >= 0 && g < n);
                assert_false(seen[g]);
                seen[g] = 1;
                if (i < parts * h) {
                    const int p = (int)(g / h);
                    assert_int_equal(p, (int)(i % parts)); /* runs taken in turn */
                    assert_true(g > last[p]);              /* each run in order */
                    last[p] = g;
                } else {
                    assert_int_equal(g, i); /* the rest in order */
                }
            }
            if (n >= parts)
                for (int p = 0; p < parts; p++) assert_int_equal(etok_part_order(p, n, parts), p * h);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_part_order),
        cmocka_unit_test(test_pack_roundtrip),
        cmocka_unit_test(test_bits),
        cmocka_unit_test(test_min_not_fused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
