/* test_quant_k_tile.c — the K-quant prefill tiles of quant_k.c (4 rows unpacked once per call,
 * 4 rows x 2 tokens per tile; AVX2 level): every (row, token) of etok_matmul_rows_q8k equals
 * the scalar reference dot (etok_vec_dot_q8k_ref, llama.cpp's AVX2 order, pinned by
 * test_quant_k) bit for bit, for Q2_K, Q3_K, Q4_K, Q5_K and Q6_K; row ranges that start and end
 * inside 4-row groups, 1..9 tokens (2-token tiles and an odd rest; 1 token: the decode path,
 * 2 rows per pass and an odd last row), 1, 3, 6 (SmolLM2's ffn_down), 16 and 17 super-blocks
 * (17: wider than the stack buffer, the heap path; for decode the single-row kernels), weights
 * of several magnitudes, and
 * saturated blocks (every quant and scale byte 0xFF: the largest values, scales and mins)
 * against activations of +-127. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/quant.h"
#include "engine/quant_k.h"

static uint32_t rng = 777u;
static float frand(void) {
    rng = rng * 1664525u + 1013904223u;
    return (float)((rng >> 8) & 0xFFFFFF) / 8388608.0f - 1.0f;
}

#define ROWS 11
#define NXMAX 9

/* every byte 0xFF but the super-block scales (F16 fields), which get moderate values */
static void saturate(uint32_t t, uint8_t *blk) {
    const etok_f16 d = etok_f32_to_f16(0.013f), dmin = etok_f32_to_f16(-0.021f);
    switch (t) {
    case ETOK_T_Q2_K: {
        etok_block_q2_k *b = (etok_block_q2_k *)blk;
        memset(b, 0xFF, sizeof *b);
        b->d = d;
        b->dmin = dmin;
        break;
    }
    case ETOK_T_Q3_K: {
        etok_block_q3_k *b = (etok_block_q3_k *)blk;
        memset(b, 0xFF, sizeof *b);
        b->d = d;
        break;
    }
    case ETOK_T_Q4_K: {
        etok_block_q4_k *b = (etok_block_q4_k *)blk;
        memset(b, 0xFF, sizeof *b);
        b->d = d;
        b->dmin = dmin;
        break;
    }
    case ETOK_T_Q5_K: {
        etok_block_q5_k *b = (etok_block_q5_k *)blk;
        memset(b, 0xFF, sizeof *b);
        b->d = d;
        b->dmin = dmin;
        break;
    }
    default: {
        etok_block_q6_k *b = (etok_block_q6_k *)blk;
        memset(b, 0xFF, sizeof *b);
        for (int s = 0; s < 16; s++) b->scales[s] = (int8_t)(s & 1 ? 127 : -128);
        b->d = d;
        break;
    }
    }
}

static void test_tiles_bits(void **state) {
    (void)state;
    const uint32_t types[] = {ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q4_K, ETOK_T_Q5_K, ETOK_T_Q6_K};
    const int64_t nbs[] = {1, 3, 6, 16, 17};
    const int ranges[][2] = {{0, ROWS}, {1, 11}, {2, 5}, {3, 4}, {0, 8}};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t a = 0; a < sizeof nbs / sizeof nbs[0]; a++) {
            const uint32_t t = types[ti];
            const int64_t nb = nbs[a], n = nb * ETOK_QK_K;
            const size_t rb = etok_type_row_bytes(t, n), bb = (size_t)etok_type_block_bytes(t);
            uint8_t *m = malloc(ROWS * rb);
            float *w = malloc((size_t)ROWS * (size_t)n * sizeof *w), *x = malloc((size_t)NXMAX * (size_t)n * sizeof *x);
            etok_block_q8k *y = malloc((size_t)NXMAX * (size_t)nb * sizeof *y);
            assert_non_null(m);
            assert_non_null(w);
            assert_non_null(x);
            assert_non_null(y);
            for (int mode = 0; mode < 3; mode++) {
                for (int64_t i = 0; i < ROWS * n; i++) w[i] = frand() * (mode == 1 ? 30.0f : 0.1f);
                for (int64_t i = 0; i < NXMAX * n; i++) x[i] = mode == 2 ? ((i & 1) ? 3.0f : -3.0f) : frand();
                for (int r = 0; r < ROWS; r++) etok_quantize_row(t, w + r * n, m + r * rb, n);
                if (mode == 2)
                    for (int r = 0; r < ROWS; r += 2)
                        for (int64_t i = 0; i < nb; i++) saturate(t, m + r * rb + (size_t)i * bb);
                for (int j = 0; j < NXMAX; j++) etok_quantize_q8k(x + j * n, y + j * nb, n);
                for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
                    const int r0 = ranges[k][0], r1 = ranges[k][1];
                    for (int nx = 1; nx <= NXMAX; nx++) {
                        float out[NXMAX * ROWS];
                        memset(out, 0, sizeof out);
                        etok_matmul_rows_q8k(t, m, rb, r0, r1, y, n, nx, out, ROWS);
                        for (int j = 0; j < NXMAX; j++)
                            for (int r = 0; r < ROWS; r++) {
                                const float got = out[j * ROWS + r];
                                if (j >= nx || r < r0 || r >= r1) {
                                    assert_true(got == 0.0f); /* not asked for: untouched */
                                    continue;
                                }
                                const float want = etok_vec_dot_q8k_ref(t, m + r * rb, y + j * nb, n);
                                if (memcmp(&got, &want, 4) != 0)
                                    fail_msg("%s nb %lld mode %d rows [%d,%d) nx %d: row %d token %d: %a, reference %a",
                                             etok_type_name(t), (long long)nb, mode, r0, r1, nx, r, j, got, want);
                            }
                    }
                }
            }
            free(m);
            free(w);
            free(x);
            free(y);
        }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tiles_bits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
