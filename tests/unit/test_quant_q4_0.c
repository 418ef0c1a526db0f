/* test_quant_q4_0.c — Q4_0 in llama.cpp's 8-row interleaved order (src/engine/quant_q4_0.c):
 * the scalar reference is the stated chain acc = fmaf((float)isum_b, d_w * d_a, acc) over the
 * blocks (computed here independently from dequantised integers), the dispatched kernel (AVX2
 * where the CPU has it) equals the reference bit for bit for every row range and token count,
 * and the rule picking matrices is llama.cpp's (row count a multiple of 8). The repacked
 * Q4_0x8 layout: packing keeps every block (read back bytewise and as floats), and its kernels
 * (dispatched and scalar) equal the file-layout kernels bytewise for 1..9 tokens, 8..64 rows,
 * odd block counts, row ranges inside groups, and the token chunks of wide rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <math.h>

#include <cmocka.h>

#include "engine/quant.h"

static uint32_t rng = 12345u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

/* The specification, spelled out: signed nibbles, exact integer sum, one fmaf per block. */
static float spec_row(const etok_block_q4_0 *b, const etok_block_q8a *y, int64_t nb) {
    float acc = 0.0f;
    for (int64_t i = 0; i < nb; i++) {
        long s = 0;
        for (int j = 0; j < 32; j++) {
            const int q = j < 16 ? (b[i].qs[j] & 0xF) : (b[i].qs[j - 16] >> 4);
            s += (long)(q - 8) * y[i].qs[j];
        }
        acc = fmaf((float)s, etok_f16_to_f32(b[i].d) * y[i].d, acc);
    }
    return acc;
}

static void test_rule(void **state) {
    (void)state;
    assert_true(etok_q4_0_8x8_applies(ETOK_T_Q4_0, 576, 576));
    assert_true(etok_q4_0_8x8_applies(ETOK_T_Q4_0, 192, 576));
    assert_true(etok_q4_0_8x8_applies(ETOK_T_Q4_0, 49152, 576)); /* the tied LM head: repacked by the peer too */
    assert_false(etok_q4_0_8x8_applies(ETOK_T_Q4_0, 100, 576));
    assert_false(etok_q4_0_8x8_applies(ETOK_T_Q4_0, 0, 576));
    assert_false(etok_q4_0_8x8_applies(ETOK_T_Q4_1, 576, 576));
    assert_false(etok_q4_0_8x8_applies(ETOK_T_Q8_0, 576, 576));
}

/* Dispatched == reference, memcmp, for row ranges that start and end inside 8-row groups,
 * 1..9 tokens (the 4-token groups and their rest), several widths; reference == spec. */
static void test_kernel_bits(void **state) {
    (void)state;
    enum { ROWS = 27, NXMAX = 9, NMAX = 18 * 32 };
    static float w[ROWS * NMAX], x[NXMAX * NMAX];
    static uint8_t m[ROWS * NMAX];
    static etok_block_q8a xq[NXMAX * NMAX / 32];
    static float fast[NXMAX * ROWS], ref[NXMAX * ROWS];
    const int widths[] = {32, 160, NMAX};
    for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
        const int n = widths[wi];
        const size_t rb = etok_type_row_bytes(ETOK_T_Q4_0, n);
        for (int rep = 0; rep < 3; rep++) {
            for (int i = 0; i < ROWS * n; i++) w[i] = frand() * (rep == 2 ? 10.0f : 0.1f) * (1.0f + (float)(i % 7));
            for (int i = 0; i < NXMAX * n; i++) x[i] = frand() * (1.0f + (float)(i % 5));
            for (int r = 0; r < ROWS; r++) etok_quantize_row(ETOK_T_Q4_0, w + r * n, m + r * rb, n);
            for (int j = 0; j < NXMAX; j++) etok_quantize_q8a(x + j * n, xq + j * (n / 32), n);
            const int64_t ranges[][2] = {{0, ROWS}, {3, 21}, {8, 16}, {5, 6}};
            for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++)
                for (int nx = 1; nx <= NXMAX; nx++) {
                    memset(fast, 0, sizeof fast);
                    memset(ref, 0, sizeof ref);
                    etok_matmul_rows_q4_0_8x8(m, rb, ranges[ri][0], ranges[ri][1], xq, n, nx, fast, ROWS);
                    etok_matmul_rows_q4_0_8x8_ref(m, rb, ranges[ri][0], ranges[ri][1], xq, n, nx, ref, ROWS);
                    if (memcmp(fast, ref, sizeof fast) != 0)
                        fail_msg("n=%d rows [%lld,%lld) nx=%d: dispatched != reference", n, (long long)ranges[ri][0],
                                 (long long)ranges[ri][1], nx);
                    for (int j = 0; j < nx; j++)
                        for (int r = 0; r < ROWS; r++) {
                            const int in = r >= ranges[ri][0] && r < ranges[ri][1];
                            const float want = in ? spec_row((const etok_block_q4_0 *)(m + r * rb), xq + j * (n / 32), n / 32) : 0.0f;
                            if (memcmp(&ref[j * ROWS + r], &want, sizeof want) != 0)
                                fail_msg("n=%d row %d token %d: %.9g, spec %.9g", n, r, j, ref[j * ROWS + r], want);
                        }
                }
        }
    }
}

/* The order matters: blocks whose products cancel except for a small term lost in the
 * running sum. Row: block 0 gives +2^24 d, block 1 +1 d, block 2 -2^24 d (exact products);
 * the chain gives ((2^24 + 1) rounded to 2^24) - 2^24 = 0, a sum that pairs blocks 0 and 2
 * first gives 1. Weights and activations are built by hand. */
static void test_chain_order(void **state) {
    (void)state;
    etok_block_q4_0 b[3];
    etok_block_q8a y[3];
    memset(b, 0, sizeof b);
    memset(y, 0, sizeof y);
        for (int i = 0; i < 3; i++) {
        for (int j = 0; j < 16; j++) b[i].qs[j] = 0x88; /* all nibbles 8: q - 8 = 0 */
        y[i].d = 1.0f;
    }
    /* block 0: 8 values q - 8 = 4 (nibble 12) against y = 32 -> isum 1024; d_w = 2^14 -> 2^24 */
    for (int j = 0; j < 8; j++) {
        b[0].qs[j] = 0x8C;
        y[0].qs[j] = 32;
        b[2].qs[j] = 0x84; /* block 2: q - 8 = -4 -> -2^24 */
        y[2].qs[j] = 32;
    }
    b[0].d = b[2].d = etok_f32_to_f16(16384.0f);
    /* block 1: isum 1 (q - 8 = 1 against y = 1), d_w = 1 */
    b[1].qs[0] = 0x89;
    y[1].qs[0] = 1;
    b[1].d = etok_f32_to_f16(1.0f);
    float rows_out[8], ref_out[8];
    uint8_t mat[8 * sizeof b];
    for (int r = 0; r < 8; r++) memcpy(mat + r * sizeof b, b, sizeof b);
    etok_matmul_rows_q4_0_8x8(mat, sizeof b, 0, 8, y, 96, 1, rows_out, 8);
    etok_matmul_rows_q4_0_8x8_ref(mat, sizeof b, 0, 8, y, 96, 1, ref_out, 8);
    for (int r = 0; r < 8; r++) {
        if (!(rows_out[r] == 0.0f && ref_out[r] == 0.0f)) /* NaN-safe: == fails on NaN */
            fail_msg("row %d: dispatched %g, reference %g, want 0", r, rows_out[r], ref_out[r]);
    }
    /* a sum that pairs the cancelling blocks first keeps the 1: the order is what is tested */
    const float paired = (2.0f * 8388608.0f - 2.0f * 8388608.0f) + 1.0f;
    assert_true(paired == 1.0f);
}


/* Random Q4_0 rows (every nibble and a spread of scales) and q8a activations. */
static void fill(uint8_t *m, int rows, int n, etok_block_q8a *xq, int nx, float wscale) {
    const size_t rb = etok_type_row_bytes(ETOK_T_Q4_0, n);
    float *w = malloc((size_t)n * sizeof *w);
    assert_non_null(w);
    for (int r = 0; r < rows; r++) {
        for (int i = 0; i < n; i++) w[i] = frand() * wscale * (1.0f + (float)((i + r) % 7));
        etok_quantize_row(ETOK_T_Q4_0, w, m + (size_t)r * rb, n);
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

/* Packing moves bytes only: every block comes back as stored, every row as the same floats. */
static void test_x8_pack_roundtrip(void **state) {
    (void)state;
    enum { ROWS = 24, N = 7 * 32 };
    const size_t rb = etok_type_row_bytes(ETOK_T_Q4_0, N);
    static uint8_t m[ROWS * (N / 32) * 18], p[ROWS * (N / 32) * 18];
    static etok_block_q8a xq[N / 32];
    fill(m, ROWS, N, xq, 1, 1.0f);
    assert_int_equal(etok_q4_0x8_group_bytes(N), 8 * rb);
    memset(p, 0xA5, sizeof p);
    etok_q4_0x8_pack(m, rb, ROWS, N, p);
    float a[N], b[N];
    for (int r = 0; r < ROWS; r++) {
        for (int i = 0; i < N / 32; i++) {
            etok_block_q4_0 blk;
            etok_q4_0x8_get_block(p, N, r, i, &blk);
            if (memcmp(&blk, m + (size_t)r * rb + (size_t)i * 18, 18) != 0) fail_msg("row %d block %d differs", r, i);
        }
        etok_dequantize_row(ETOK_T_Q4_0, m + (size_t)r * rb, a, N);
        etok_q4_0x8_dequantize_row(p, N, r, b);
        if (memcmp(a, b, sizeof a) != 0) fail_msg("row %d: dequantised values differ", r);
    }
    /* not the identity: the layout really moved bytes (row 1's first block is not at rb) */
    assert_true(memcmp(p + rb, m + rb, 18) != 0);
}

/* Repacked (dispatched and scalar) == the file-layout 8-row kernels, bytewise. */
static void check_x8(int rows, int n, int nxmax, float wscale) {
    const size_t rb = etok_type_row_bytes(ETOK_T_Q4_0, n);
    uint8_t *m = malloc((size_t)rows * rb), *p = malloc((size_t)rows * rb);
    etok_block_q8a *xq = malloc((size_t)nxmax * (size_t)(n / 32) * sizeof *xq);
    const size_t outn = (size_t)nxmax * (size_t)rows;
    float *o_file = malloc(outn * sizeof(float)), *o_x8 = malloc(outn * sizeof(float));
    float *o_fref = malloc(outn * sizeof(float)), *o_x8ref = malloc(outn * sizeof(float));
    assert_true(m && p && xq && o_file && o_x8 && o_fref && o_x8ref);
    fill(m, rows, n, xq, nxmax, wscale);
    etok_q4_0x8_pack(m, rb, rows, n, p);
    const int64_t ranges[][2] = {{0, rows}, {3, rows - 5}, {8, 16}, {5, 6}, {rows - 8, rows}};
    for (size_t ri = 0; ri < sizeof ranges / sizeof ranges[0]; ri++)
        for (int nx = 1; nx <= nxmax; nx++) {
            const int64_t r0 = ranges[ri][0], r1 = ranges[ri][1];
            if (!(r0 < r1 && r1 <= rows)) continue; /* (a range for more rows) */
            memset(o_file, 0, outn * sizeof(float));
            memset(o_x8, 0x7f, outn * sizeof(float));
            memset(o_fref, 0, outn * sizeof(float));
            memset(o_x8ref, 0x7f, outn * sizeof(float));
            etok_matmul_rows_q4_0_8x8(m, rb, r0, r1, xq, n, nx, o_file, (size_t)rows);
            etok_matmul_q4_0x8(p, r0, r1, xq, n, nx, o_x8, (size_t)rows);
            etok_matmul_rows_q4_0_8x8_ref(m, rb, r0, r1, xq, n, nx, o_fref, (size_t)rows);
            etok_matmul_q4_0x8_ref(p, r0, r1, xq, n, nx, o_x8ref, (size_t)rows);
            for (int j = 0; j < nx; j++)
                for (int r = 0; r < rows; r++) {
                    const size_t at = (size_t)j * (size_t)rows + (size_t)r;
                    const int in = r >= r0 && r < r1;
                    if (!in) { /* rows outside the range are not written */
                        uint32_t u;
                        memcpy(&u, &o_x8[at], 4);
                        if (u != 0x7f7f7f7fu) fail_msg("rows %d n=%d nx=%d: row %d outside [%lld,%lld) written", rows, n, nx,
                                                     r, (long long)r0, (long long)r1);
                        continue;
                    }
                    if (memcmp(&o_x8[at], &o_file[at], 4) != 0 || memcmp(&o_x8ref[at], &o_fref[at], 4) != 0 ||
                        memcmp(&o_x8[at], &o_fref[at], 4) != 0)
                        fail_msg("rows %d n=%d nx=%d row %d token %d: x8 %.9g x8-ref %.9g file %.9g file-ref %.9g", rows, n,
                                 nx, r, j, o_x8[at], o_x8ref[at], o_file[at], o_fref[at]);
                }
        }
    free(m);
    free(p);
    free(xq);
    free(o_file);
    free(o_x8);
    free(o_fref);
    free(o_x8ref);
}

static void test_x8_bits(void **state) {
    (void)state;
    const int rows[] = {8, 16, 24, 64};
    const int widths[] = {32, 96, 160, 576, 33 * 32}; /* 1, 3, 5, 18, 33 blocks */
    for (size_t ri = 0; ri < sizeof rows / sizeof rows[0]; ri++)
        for (size_t wi = 0; wi < sizeof widths / sizeof widths[0]; wi++) {
            check_x8(rows[ri], widths[wi], 9, 0.1f);
            check_x8(rows[ri], widths[wi], 5, 10.0f);
        }
}

/* Wide rows: 600 blocks put 4 or 6 vectors in a chunk of stack sums (9 vectors: three
 * chunks), 1100 blocks take the heap buffer of 4 vectors' sums. */
static void test_x8_wide_rows(void **state) {
    (void)state;
    check_x8(16, 600 * 32, 9, 0.1f);
    check_x8(8, 1100 * 32, 6, 0.1f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_kernel_bits),
        cmocka_unit_test(test_chain_order),
        cmocka_unit_test(test_x8_pack_roundtrip),
        cmocka_unit_test(test_x8_bits),
        cmocka_unit_test(test_x8_wide_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
