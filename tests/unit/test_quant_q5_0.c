/* test_quant_q5_0.c — the register-tiled Q5_0 and IQ4_NL prefill kernel (src/engine/
 * quant_q5_0.c): its scalar reference is llama.cpp's batch order for them spelled out here independently (8 int32
 * lanes, value j in lane j / 4, one fmaf per lane and block, hsum_float_8 at the end); the
 * dispatched kernel (AVX2 where the CPU has it), reached both directly and through
 * etok_matmul_rows, equals that reference and etok_vec_dot (what decode and the old prefill
 * path give) bit for bit, for row ranges that start and end inside 4-row groups, 1..9 tokens
 * (the 2-token tiles and an odd rest), odd block counts, F16 scales of both signs, extreme
 * values (Q5_0 weights all 0 or 31, IQ4_NL all -127 or 113, activations +-127: the int16 bounds),
 * and rows wider than the kernel's stack buffer (its heap path). */
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
static uint32_t urand(void) {
    rng = rng * 1664525u + 1013904223u;
    return rng >> 8;
}
static float frand(void) { return (float)(urand() & 0xFFFFFF) / 8388608.0f - 1.0f; }

static const int iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/* The specification: Q5_0's 5-bit values from the file's bits minus 16, or IQ4_NL's table
 * levels; exact lane sums, fmaf per lane and block with the float product d_w * d_a, then
 * ((a4+a0)+(a6+a2)) + ((a5+a1)+(a7+a3)). */
static float spec_row(uint32_t type, const uint8_t *row, const etok_block_q8a *y, int64_t nb) {
    float acc[8] = {0};
    for (int64_t i = 0; i < nb; i++) {
        const int q5 = type == ETOK_T_Q5_0;
        const etok_block_q5_0 *b5 = q5 ? (const etok_block_q5_0 *)row + i : NULL;
        const etok_block_iq4_nl *b4 = q5 ? NULL : (const etok_block_iq4_nl *)row + i;
        const uint8_t *qs = q5 ? b5->qs : b4->qs;
        uint32_t qh = 0;
        if (q5) memcpy(&qh, b5->qh, 4);
        long s[8] = {0};
        for (int j = 0; j < 32; j++) {
            const int lo = j < 16 ? (qs[j] & 0xF) : (qs[j - 16] >> 4);
            const int w = q5 ? (lo | (int)((qh >> j) & 1u) << 4) - 16 : iq4_levels[lo];
            s[j / 4] += (long)w * y[i].qs[j];
        }
        const float d = etok_f16_to_f32(q5 ? b5->d : b4->d) * y[i].d;
        for (int l = 0; l < 8; l++) acc[l] = fmaf(d, (float)s[l], acc[l]);
    }
    return ((acc[4] + acc[0]) + (acc[6] + acc[2])) + ((acc[5] + acc[1]) + (acc[7] + acc[3]));
}

static void test_rule(void **state) {
    (void)state;
    assert_true(etok_q5_0_tiled_applies(ETOK_T_Q5_0, 2));
    assert_true(etok_q5_0_tiled_applies(ETOK_T_Q5_0, 512));
    assert_false(etok_q5_0_tiled_applies(ETOK_T_Q5_0, 1)); /* decode: the 4-row kernel */
    assert_true(etok_q5_0_tiled_applies(ETOK_T_IQ4_NL, 2));
    assert_false(etok_q5_0_tiled_applies(ETOK_T_IQ4_NL, 1)); /* llama.cpp's one-token order */
    assert_false(etok_q5_0_tiled_applies(ETOK_T_Q5_1, 512));
    assert_false(etok_q5_0_tiled_applies(ETOK_T_Q4_0, 512));
}

#define ROWS 11
#define NXMAX 9

/* Fill ROWS rows of nb blocks and NXMAX activation vectors; mode 0: random, 1: large scales
 * (both signs), 2: extreme values (weights 0 or 31, activations +-127). */
static void fill(uint32_t type, uint8_t *m, etok_block_q8a *xq, float *w, float *x, int64_t nb, int mode) {
    const int64_t n = nb * 32;
    for (int64_t i = 0; i < ROWS * n; i++) w[i] = frand() * (mode == 1 ? 40.0f : 0.1f);
    for (int64_t i = 0; i < NXMAX * n; i++) x[i] = frand() * (mode == 1 ? 30.0f : 1.0f);
    const size_t rb = etok_type_row_bytes(type, n);
    for (int r = 0; r < ROWS; r++) etok_quantize_row(type, w + r * n, m + (size_t)r * rb, n);
    for (int j = 0; j < NXMAX; j++) etok_quantize_q8a(x + j * n, xq + j * nb, n);
    if (mode == 2) {
        for (int r = 0; r < ROWS; r++) {
            for (int64_t i = 0; i < nb; i++) {
                const int hi = (int)((r + i) % 3); /* all 31 / 113, all 0 / -127, or random */
                const int byte = hi == 0 ? 0xFF : hi == 1 ? 0x00 : (int)(urand() & 0xFF);
                const etok_f16 d = etok_f32_to_f16((i & 1) ? -0.75f : 1.5f);
                if (type == ETOK_T_Q5_0) {
                    etok_block_q5_0 *b = (etok_block_q5_0 *)(m + (size_t)r * rb) + i;
                    memset(b->qs, byte, 16);
                    memset(b->qh, hi == 2 ? (int)(urand() & 0xFF) : byte, 4);
                    b->d = d;
                } else {
                    etok_block_iq4_nl *b = (etok_block_iq4_nl *)(m + (size_t)r * rb) + i;
                    memset(b->qs, byte, 16);
                    b->d = d;
                }
            }
        }
        for (int64_t b = 0; b < NXMAX * nb; b++)
            for (int k = 0; k < 32; k++) xq[b].qs[k] = (int8_t)(((b + k) & 1) ? 127 : -127);
    }
}

static void check(uint32_t type, const uint8_t *m, const etok_block_q8a *xq, int64_t nb, const char *what) {
    const int64_t n = nb * 32;
    const size_t rb = etok_type_row_bytes(type, n);
    float fast[NXMAX * ROWS], via[NXMAX * ROWS], ref[NXMAX * ROWS];
    const int ranges[][2] = {{0, ROWS}, {1, 11}, {2, 5}, {3, 4}, {0, 8}};
    for (size_t k = 0; k < sizeof ranges / sizeof ranges[0]; k++) {
        const int r0 = ranges[k][0], r1 = ranges[k][1];
        for (int nx = 1; nx <= NXMAX; nx++) {
            memset(fast, 0, sizeof fast);
            memset(via, 0, sizeof via);
            memset(ref, 0, sizeof ref);
            etok_matmul_q5_0(type, m, rb, r0, r1, xq, n, nx, fast, ROWS);
            etok_matmul_rows(type, m, rb, r0, r1, xq, NULL, n, nx, via, ROWS);
            etok_matmul_q5_0_ref(type, m, rb, r0, r1, xq, n, nx, ref, ROWS);
            for (int j = 0; j < NXMAX; j++)
                for (int r = 0; r < ROWS; r++) {
                    const size_t o = (size_t)j * ROWS + (size_t)r;
                    if (j >= nx || r < r0 || r >= r1) { /* not asked for: untouched */
                        assert_true(fast[o] == 0.0f && via[o] == 0.0f && ref[o] == 0.0f);
                        continue;
                    }
                    const uint8_t *row = m + (size_t)r * rb;
                    const float spec = spec_row(type, row, xq + j * nb, nb);
                    if (memcmp(&ref[o], &spec, 4) != 0)
                        fail_msg("%s nb %lld: reference %a != spec %a (row %d, token %d)", what, (long long)nb, ref[o], spec, r, j);
                    if (memcmp(&fast[o], &spec, 4) != 0)
                        fail_msg("%s %s nb %lld rows [%d,%d) nx %d: kernel %a != spec %a (row %d, token %d)", etok_type_name(type), what, (long long)nb,
                                 r0, r1, nx, fast[o], spec, r, j);
                    if (nx >= 2 && memcmp(&via[o], &spec, 4) != 0) /* nx 1: the decode kernels (test_quant) */
                        fail_msg("%s nb %lld: etok_matmul_rows %a != spec %a (row %d, token %d)", what, (long long)nb, via[o],
                                 spec, r, j);
                    if (etok_simd_active()) { /* the AVX2 single-row kernel (decode's bits) */
                        const float v = etok_vec_dot(type, row, xq + j * nb, NULL, n);
                        if (memcmp(&v, &spec, 4) != 0)
                            fail_msg("%s: etok_vec_dot %a != spec %a (row %d, token %d)", what, v, spec, r, j);
                    }
                }
        }
    }
}

static void test_kernel_bits(void **state) {
    (void)state;
    const int64_t nbs[] = {1, 13, 18, 48, 65, 200}; /* 65, 200: more than the stack buffer's 64 blocks */
    const uint32_t types[] = {ETOK_T_Q5_0, ETOK_T_IQ4_NL};
    for (size_t ty = 0; ty < sizeof types / sizeof types[0]; ty++) {
        for (size_t a = 0; a < sizeof nbs / sizeof nbs[0]; a++) {
            const uint32_t type = types[ty];
            const int64_t nb = nbs[a], n = nb * 32;
            uint8_t *m = malloc((size_t)ROWS * etok_type_row_bytes(type, n));
            etok_block_q8a *xq = malloc((size_t)NXMAX * (size_t)nb * sizeof *xq);
            float *w = malloc((size_t)ROWS * (size_t)n * sizeof *w), *x = malloc((size_t)NXMAX * (size_t)n * sizeof *x);
            assert_non_null(m);
            assert_non_null(xq);
            assert_non_null(w);
            assert_non_null(x);
            for (int mode = 0; mode < 3; mode++) {
                fill(type, m, xq, w, x, nb, mode);
                check(type, m, xq, nb, mode == 0 ? "random" : mode == 1 ? "large" : "extreme");
            }
            free(m);
            free(xq);
            free(w);
            free(x);
        }
    }
}

/* The scalar level takes the scalar reference kernels (no tiled kernel): etok_matmul_q5_0
 * still gives the specified bits there. */
static void test_scalar_level(void **state) {
    (void)state;
    char err[256];
    const int was = etok_isa_active();
    assert_int_equal(etok_isa_force(ETOK_ISA_SCALAR, err, sizeof err), 0);
    enum { NB = 5 };
    static uint8_t m[ROWS * NB * 22];
    static etok_block_q8a xq[NXMAX * NB];
    static float w[ROWS * NB * 32], x[NXMAX * NB * 32];
    fill(ETOK_T_Q5_0, m, xq, w, x, NB, 0);
    float out[NXMAX * ROWS];
    etok_matmul_q5_0(ETOK_T_Q5_0, m, NB * 22, 0, ROWS, xq, NB * 32, NXMAX, out, ROWS);
    for (int j = 0; j < NXMAX; j++)
        for (int r = 0; r < ROWS; r++) {
            const float spec = spec_row(ETOK_T_Q5_0, m + r * NB * 22, xq + j * NB, NB);
            assert_memory_equal(&out[j * ROWS + r], &spec, 4);
        }
    assert_int_equal(etok_isa_force(was, err, sizeof err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rule),
        cmocka_unit_test(test_kernel_bits),
        cmocka_unit_test(test_scalar_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
