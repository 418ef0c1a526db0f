/* test_vmath.c — exp() as llama.cpp's CPU softmax and SiLU evaluate it, and the one-token
 * attention sums (src/engine/vmath.c):
 *  - SiLU and softmax equal, bit for bit, llama.cpp's own outputs on the same inputs
 *    (tests/fixtures/reference/vexp.json: ggml_silu over 96 values, ggml_soft_max over 4 rows
 *    of 24, computed by llama.cpp c392e5094's CPU backend, AVX2 build; see the README there),
 *    and libm's expf would NOT give all of them (the fixture can tell the two apart);
 *  - etok_vexpf is within 2 ulp of exp() over the float range, exact at 0, 0 / inf beyond;
 *  - the one-token attention kernels: AVX2 = scalar reference bit for bit, both within 1e-5
 *    (relative to the sum of |terms|) of a double-precision sum;
 *  - the AVX2 softmax exp and SiLU = their scalar references bit for bit, any length; the AVX2
 *    max (the softmax's) = the reference scan's value, with NaNs, infinities and zeros;
 *  - the Q8_0 V sum: AVX2 = scalar reference bit for bit, the reference near a double sum;
 *  - the Q8_0 K.q scores: AVX2 = their scalar definition bit for bit, the dispatched function =
 *    the per-position dots it replaced bit for bit, the definition near a double dot. */
#include <jansson.h>
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
#include "engine/vmath.h"

static float fbits(json_t *a, size_t i) {
    uint32_t u = (uint32_t)json_integer_value(json_array_get(a, i));
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t ubits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static json_t *load_fixture(void) {
    char p[1024];
    const char *root = getenv("ETOK_SOURCE_DIR");
    snprintf(p, sizeof p, "%s/tests/fixtures/reference/vexp.json", root && *root ? root : ".");
    json_error_t e;
    json_t *j = json_load_file(p, 0, &e);
    if (!j) fail_msg("%s: %s", p, e.text);
    return j;
}

static void test_silu_matches_llama_cpp(void **state) {
    (void)state;
    json_t *j = load_fixture();
    json_t *xs = json_object_get(j, "silu_x"), *ys = json_object_get(j, "silu_y");
    const int n = (int)json_array_size(xs);
    assert_int_equal(n, 96);
    float g[96], up[96], x[96];
    int libm_differs = 0;
    for (int i = 0; i < n; i++) {
        x[i] = g[i] = fbits(xs, (size_t)i);
        up[i] = 1.0f;
    }
    float g2[96];
    memcpy(g2, g, sizeof g2);
    etok_silu_mul(g, up, n);      /* the dispatch (AVX2 where the CPU has it) */
    etok_silu_mul_ref(g2, up, n); /* the scalar reference */
    for (int i = 0; i < n; i++) {
        float want = fbits(ys, (size_t)i);
        if (ubits(g[i]) != ubits(want) || ubits(g2[i]) != ubits(want))
            fail_msg("silu(%a) = %a (scalar %a), llama.cpp %a (value %d)", (double)x[i], (double)g[i], (double)g2[i],
                     (double)want, i);
        libm_differs += ubits(x[i] / (1.0f + expf(-x[i]))) != ubits(want);
    }
    printf("silu: 96 of 96 equal llama.cpp's; with libm expf %d would differ\n", libm_differs);
    assert_true(libm_differs > 0);
    json_decref(j);
}

static void test_softmax_matches_llama_cpp(void **state) {
    (void)state;
    json_t *j = load_fixture();
    json_t *xs = json_object_get(j, "softmax_x"), *ys = json_object_get(j, "softmax_y");
    const int c = (int)json_integer_value(json_object_get(j, "softmax_cols"));
    const int rows = (int)json_array_size(xs) / c;
    assert_int_equal(c, 24);
    assert_int_equal(rows, 4);
    int libm_differs = 0;
    for (int r = 0; r < rows; r++) {
        float x[24], y[24], mx = -INFINITY;
        for (int i = 0; i < c; i++) {
            x[i] = fbits(xs, (size_t)(r * c + i));
            mx = x[i] > mx ? x[i] : mx;
        }
        float y2[24];
        const float inv = (float)(1.0 / etok_softmax_exp(y, x, c, mx)),
                    inv2 = (float)(1.0 / etok_softmax_exp_ref(y2, x, c, mx));
        double lsum = 0;
        for (int i = 0; i < c; i++) lsum += expf(x[i] - mx);
        for (int i = 0; i < c; i++) {
            float want = fbits(ys, (size_t)(r * c + i));
            if (ubits(y[i] * inv) != ubits(want) || ubits(y2[i] * inv2) != ubits(want))
                fail_msg("softmax row %d [%d] = %a (scalar %a), llama.cpp %a", r, i, (double)(y[i] * inv),
                         (double)(y2[i] * inv2), (double)want);
            libm_differs += ubits(expf(x[i] - mx) * (float)(1.0 / lsum)) != ubits(want);
        }
    }
    printf("softmax: 96 of 96 equal llama.cpp's; with libm expf %d would differ\n", libm_differs);
    assert_true(libm_differs > 0);
    json_decref(j);
}

static void test_vexpf_accuracy(void **state) {
    (void)state;
    assert_true(etok_vexpf(0.0f) == 1.0f);
    assert_true(etok_vexpf(-INFINITY) == 0.0f);
    assert_true(isinf(etok_vexpf(INFINITY)) && etok_vexpf(INFINITY) > 0);
    assert_true(etok_vexpf(-200.0f) == 0.0f);
    assert_true(isinf(etok_vexpf(200.0f)));
    assert_true(isnan(etok_vexpf(NAN)));
    double worst = 0;
    for (int i = 0; i <= 200000; i++) {
        const float x = -87.0f + 175.0f * (float)i / 200000.0f;
        const double want = exp((double)x), got = etok_vexpf(x);
        const double ulp = ldexp(1.0, ilogb(want) - 23);
        const double e = fabs(got - want) / ulp;
        if (e > worst) worst = e;
    }
    printf("etok_vexpf on [-87, 88]: worst error %.3f ulp\n", worst);
    assert_true(worst < 2.0); /* the algorithm's stated bound: 1.45 + 0.5 ulp */
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static void test_attn_1tok_simd_equals_scalar(void **state) {
    (void)state;
    const int n = 77, stride_vals = 192, hds[3] = {64, 48, 128};
    etok_f16 *kv = malloc((size_t)n * stride_vals * sizeof *kv);
    assert_non_null(kv);
    for (int s = 0; s < n * stride_vals; s++) kv[s] = etok_f32_to_f16(frand() * 3.0f);
    for (int t = 0; t < 3; t++) {
        const int hd = hds[t];
        float q[128], w[77], s_ref[77], s_simd[77], o_ref[128], o_simd[128];
        for (int i = 0; i < hd; i++) q[i] = etok_f16_to_f32(etok_f32_to_f16(frand()));
        for (int s = 0; s < n; s++) w[s] = etok_f16_to_f32(etok_f32_to_f16(0.5f + 0.5f * frand()));
        const size_t stride = (size_t)stride_vals * sizeof(etok_f16);
        etok_attn_scores_1tok_ref(q, (const uint8_t *)kv, stride, n, hd, 0.125f, s_ref);
        const uint8_t *v_one[1] = {(const uint8_t *)kv};
        const int fp_one[1] = {5}, n_one[1] = {n};
        etok_attn_accum_1tok_ref(w, 1, v_one, fp_one, n_one, stride, hd, o_ref);
        /* the same positions as two runs (a ring that wraps after 30 rows) sum into the same
         * accumulators: the same bits */
        {
            float o_two[128];
            const uint8_t *v_two[2] = {(const uint8_t *)kv, (const uint8_t *)kv + 30 * stride};
            const int fp_two[2] = {5, 35}, n_two[2] = {30, n - 30};
            etok_attn_accum_1tok_ref(w, 2, v_two, fp_two, n_two, stride, hd, o_two);
            for (int i = 0; i < hd; i++)
                if (ubits(o_two[i]) != ubits(o_ref[i])) fail_msg("hd %d out %d: two runs %a, one %a", hd, i, (double)o_two[i], (double)o_ref[i]);
        }
        for (int s = 0; s < n; s++) { /* scalar reference against a double sum */
            double d = 0, mag = 0;
            for (int i = 0; i < hd; i++) {
                d += (double)etok_f16_to_f32(kv[(size_t)s * stride_vals + i]) * q[i];
                mag += fabs((double)etok_f16_to_f32(kv[(size_t)s * stride_vals + i]) * q[i]);
            }
            assert_true(fabs(s_ref[s] - d * 0.125) <= 1e-5 * mag * 0.125 + 1e-30);
        }
        for (int i = 0; i < hd; i++) {
            double d = 0, mag = 0;
            for (int s = 0; s < n; s++) {
                d += (double)w[s] * etok_f16_to_f32(kv[(size_t)s * stride_vals + i]);
                mag += fabs((double)w[s] * etok_f16_to_f32(kv[(size_t)s * stride_vals + i]));
            }
            assert_true(fabs(o_ref[i] - d) <= 1e-5 * mag + 1e-30);
        }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
        if (!etok_simd_active()) continue;
        etok_attn_scores_1tok_avx2(q, (const uint8_t *)kv, stride, n, hd, 0.125f, s_simd);
        etok_attn_accum_1tok_avx2(w, 1, v_one, fp_one, n_one, stride, hd, o_simd);
        for (int s = 0; s < n; s++)
            if (ubits(s_simd[s]) != ubits(s_ref[s])) fail_msg("hd %d score %d: AVX2 %a, scalar %a", hd, s, (double)s_simd[s], (double)s_ref[s]);
        for (int i = 0; i < hd; i++)
            if (ubits(o_simd[i]) != ubits(o_ref[i])) fail_msg("hd %d out %d: AVX2 %a, scalar %a", hd, i, (double)o_simd[i], (double)o_ref[i]);
#endif
    }
    free(kv);
}

/* The grouped one-token kernels (a KV head's query heads at once) give, head for head, the
 * per-head kernels' bits: scalar reference and AVX2 against etok_attn_*_1tok_ref, group
 * sizes 1..8, head sizes 64, 48, 128, 24, lengths not a multiple of 8 or 32, one run and a
 * wrapped ring's three runs (sinks, then two pieces of the window). */
static void test_attn_1tok_multi_equals_per_head(void **state) {
    (void)state;
    enum { N = 83, SV = 8 * 128, MAXG = ETOK_VM_MAX_GROUP };
    const int hds[4] = {64, 48, 128, 24}, lens[3] = {83, 37, 5};
    etok_f16 *kv = malloc((size_t)N * SV * sizeof *kv);
    float *q = malloc(MAXG * 128 * sizeof *q), *w = malloc(MAXG * 96 * sizeof *w);
    float *s_ref = malloc(MAXG * 96 * sizeof *s_ref), *s_got = malloc(MAXG * 96 * sizeof *s_got);
    float *o_ref = malloc(MAXG * 128 * sizeof *o_ref), *o_got = malloc(MAXG * 128 * sizeof *o_got);
    assert_true(kv && q && w && s_ref && s_got && o_ref && o_got);
    for (int rep = 0; rep < 3; rep++) {
        for (int s = 0; s < N * SV; s++) kv[s] = etok_f32_to_f16(frand() * 3.0f);
        for (int t = 0; t < 4; t++)
            for (int li = 0; li < 3; li++)
                for (int g = 1; g <= MAXG; g++) {
                    const int hd = hds[t], n = lens[li];
                    const size_t stride = (size_t)SV * sizeof(etok_f16), cap = 96;
                    const uint8_t *base = (const uint8_t *)kv + (size_t)rep * 2 * hd; /* a KV head's offset */
                    for (int i = 0; i < g * hd; i++) q[i] = etok_f16_to_f32(etok_f32_to_f16(frand()));
                    for (int i = 0; i < g * (int)cap; i++) w[i] = etok_f16_to_f32(etok_f32_to_f16(0.5f + 0.5f * frand()));
                    /* one run; three runs (4 sinks at positions 0..3, then the window from
                     * position 40 wrapping after 20 rows) */
                    const int s1 = n > 8 ? 4 : 1, s2 = n > 8 ? 20 : 2;
                    const uint8_t *v1[1] = {base}, *v3[3] = {base, base + 50 * stride, base + 4 * stride};
                    const int fp1[1] = {7}, n1[1] = {n}, fp3[3] = {0, 40, 40 + s2}, n3[3] = {s1, s2, n - s1 - s2};
                    for (int runs = 1; runs <= 3; runs += 2) {
                        const uint8_t *const *v0 = runs == 1 ? v1 : v3;
                        const int *fp = runs == 1 ? fp1 : fp3, *nn = runs == 1 ? n1 : n3;
                        for (int h = 0; h < g; h++) {
                            etok_attn_scores_1tok_ref(q + h * hd, base, stride, n, hd, 0.125f, s_ref + h * cap);
                            etok_attn_accum_1tok_ref(w + h * cap, runs, v0, fp, nn, stride, hd, o_ref + h * hd);
                        }
                        for (int impl = 0; impl < 2; impl++) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
                            if (impl == 1 && !etok_simd_active()) continue;
#else
                            if (impl == 1) continue;
#endif
                            memset(s_got, 0xff, MAXG * 96 * sizeof *s_got);
                            memset(o_got, 0xff, MAXG * 128 * sizeof *o_got);
                            if (impl == 0) {
                                etok_attn_scores_1tok_multi_ref(q, g, base, stride, n, hd, 0.125f, s_got, cap, v0[0]);
                                etok_attn_accum_1tok_multi_ref(w, cap, g, runs, v0, fp, nn, stride, hd, o_got);
                            }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
                            else {
                                etok_attn_scores_1tok_multi_avx2(q, g, base, stride, n, hd, 0.125f, s_got, cap, v0[0]);
                                etok_attn_accum_1tok_multi_avx2(w, cap, g, runs, v0, fp, nn, stride, hd, o_got);
                            }
#endif
                            for (int h = 0; h < g; h++) {
                                if (memcmp(s_got + h * cap, s_ref + h * cap, (size_t)n * sizeof(float)))
                                    fail_msg("scores impl %d hd %d n %d g %d head %d differ", impl, hd, n, g, h);
                                if (memcmp(o_got + h * hd, o_ref + h * hd, (size_t)hd * sizeof(float)))
                                    fail_msg("accum impl %d hd %d n %d g %d runs %d head %d differ", impl, hd, n, g, runs, h);
                            }
                            /* nothing written past a head's n scores */
                            for (int h = 0; h < g; h++)
                                for (int s = n; s < (int)cap; s++) assert_int_equal(ubits(s_got[h * cap + s]), 0xffffffffu);
                        }
                        /* the dispatching entry point, too */
                        etok_attn_scores_1tok_multi(q, g, base, stride, n, hd, 0.125f, s_got, cap, v0[0]);
                        etok_attn_accum_1tok_multi(w, cap, g, runs, v0, fp, nn, stride, hd, o_got);
                        for (int h = 0; h < g; h++) {
                            assert_memory_equal(s_got + h * cap, s_ref + h * cap, (size_t)n * sizeof(float));
                            assert_memory_equal(o_got + h * hd, o_ref + h * hd, (size_t)hd * sizeof(float));
                        }
                    }
                }
    }
    free(kv);
    free(q);
    free(w);
    free(s_ref);
    free(s_got);
    free(o_ref);
    free(o_got);
}

/* The AVX2 exp paths give the scalar reference's bits on random inputs over the whole range
 * (including overflow / underflow lanes mixed with ordinary ones) and any row length. */
/* The Q8_0 V sum: the reference within 1e-5 (of the sum of |terms|) of a double sum of the
 * dequantised values; the reference = its definition written out here (x = d * q, then
 * acc = fmaf(x, w, acc): a reference that adds the rounded product instead, or folds d into
 * w, fails it); the ring's two runs = one run bit for
 * bit; and AVX2 = reference bit for bit, for 1..7 heads (more than the kernel's 3 in
 * registers, and group sizes that leave 1 or 2 over), head sizes 32..128, lengths that are not
 * a multiple of anything. */
static void test_attn_accum_q8_0(void **state) {
    (void)state;
    enum { N = 71, MAXH = 7, ROWB = 8 * 34 }; /* rows of up to 256 values: 8 blocks */
    uint8_t *rows = calloc((size_t)N, ROWB);
    assert_non_null(rows);
    for (int j = 0; j < N; j++)
        for (int b = 0; b < 8; b++) {
            etok_block_q8_0 *blk = (etok_block_q8_0 *)(rows + (size_t)j * ROWB + (size_t)b * 34);
            blk->d = etok_f32_to_f16(0.01f + 0.02f * (frand() + 1.0f));
            for (int i = 0; i < 32; i++) blk->qs[i] = (int8_t)(frand() * 127.0f);
        }
    const int hds[4] = {32, 64, 96, 128}, lens[3] = {71, 33, 3};
    static float w[MAXH * N], o_ref[MAXH * 128], o_two[MAXH * 128], o_simd[MAXH * 128];
    for (int i = 0; i < MAXH * N; i++) w[i] = 0.5f + 0.5f * frand();
    for (int t = 0; t < 4; t++)
        for (int l = 0; l < 3; l++)
            for (int g = 1; g <= MAXH; g++) {
                const int hd = hds[t], n = lens[l];
                const uint8_t *v_one[1] = {rows};
                const int n_one[1] = {n};
                etok_attn_accum_q8_0_ref(w, N, g, 1, v_one, n_one, ROWB, hd, o_ref);
                const int cut = n / 2;
                const uint8_t *v_two[2] = {rows, rows + (size_t)cut * ROWB};
                const int n_two[2] = {cut, n - cut};
                etok_attn_accum_q8_0_ref(w, N, g, 2, v_two, n_two, ROWB, hd, o_two);
                assert_memory_equal(o_two, o_ref, (size_t)g * (size_t)hd * sizeof(float));
                for (int h = 0; h < g; h++)
                    for (int i = 0; i < hd; i++) {
                        float def = 0.0f;
                        for (int j = 0; j < n; j++) {
                            const etok_block_q8_0 *blk =
                                (const etok_block_q8_0 *)(rows + (size_t)j * ROWB + (size_t)(i / 32) * 34);
                            def = fmaf(etok_f16_to_f32(blk->d) * (float)blk->qs[i % 32], w[h * N + j], def);
                        }
                        if (ubits(def) != ubits(o_ref[h * hd + i]))
                            fail_msg("hd %d n %d g %d out %d: reference %a, definition %a", hd, n, g, h * hd + i,
                                     (double)o_ref[h * hd + i], (double)def);
                    }
                for (int h = 0; h < g; h++)
                    for (int i = 0; i < hd; i++) {
                        double d = 0, mag = 0;
                        for (int j = 0; j < n; j++) {
                            const etok_block_q8_0 *blk =
                                (const etok_block_q8_0 *)(rows + (size_t)j * ROWB + (size_t)(i / 32) * 34);
                            const double x = (double)w[h * N + j] * etok_f16_to_f32(blk->d) * blk->qs[i % 32];
                            d += x;
                            mag += fabs(x);
                        }
                        assert_true(fabs(o_ref[h * hd + i] - d) <= 1e-5 * mag + 1e-30);
                    }
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
                if (!etok_simd_active()) continue;
                etok_attn_accum_q8_0_avx2(w, N, g, 2, v_two, n_two, ROWB, hd, o_simd);
                for (int i = 0; i < g * hd; i++)
                    if (ubits(o_simd[i]) != ubits(o_ref[i]))
                        fail_msg("hd %d n %d g %d out %d: AVX2 %a, scalar %a", hd, n, g, i, (double)o_simd[i], (double)o_ref[i]);
#endif
            }
    free(rows);
}

/* The Q8_0 cache's quantiser (etok_quantize_kv_q8_0) = llama.cpp's CPU from_float, which
 * etok's activation quantiser etok_quantize_q8a already reproduces: the same q bytes and the
 * same F16 scale on random blocks of mixed magnitudes and a crafted one; on that one the file
 * quantiser (x * (1 / d), etok_quantize_row) gives other bytes, so a quantiser with 1 / d
 * fails this test. */
static void test_quantize_kv_q8_0(void **state) {
    (void)state;
    enum { NB = 4096 };
    float *x = malloc((size_t)NB * 32 * sizeof *x);
    etok_block_q8_0 *kv = malloc((size_t)NB * sizeof *kv), *file = malloc((size_t)NB * sizeof *file);
    etok_block_q8a *act = malloc((size_t)NB * sizeof *act);
    assert_true(x && kv && file && act);
    for (int b = 0; b < NB; b++) {
        const float mag = powf(2.0f, (float)(b % 17) - 8.0f) * (1.0f + frand() * 0.5f);
        for (int i = 0; i < 32; i++) x[b * 32 + i] = mag * frand();
    }
    for (int i = 0; i < 32; i++) x[i] = 0.0f; /* an all-zero block: d 0, q 0 */
    /* a block where the two multipliers round v * id to different integers (6.5 - 2^-20 or so:
     * llama.cpp's 7, the file quantiser's 6); on random blocks that happens about once in 10^5
     * values */
    for (int i = 0; i < 32; i++) x[32 + i] = 0.0f;
    x[32] = 0x1.000078p+0f;
    x[33] = 0x1.a34754p-5f;
    etok_quantize_kv_q8_0(x, kv, (int64_t)NB * 32);
    etok_quantize_q8a(x, act, (int64_t)NB * 32);
    etok_quantize_row(ETOK_T_Q8_0, x, file, (int64_t)NB * 32);
    int differ_file = 0;
    for (int b = 0; b < NB; b++) {
        if (ubits(etok_f16_to_f32(kv[b].d)) != ubits(act[b].d))
            fail_msg("block %d: scale %a, llama.cpp's %a", b, (double)etok_f16_to_f32(kv[b].d), (double)act[b].d);
        if (memcmp(kv[b].qs, act[b].qs, 32)) fail_msg("block %d: q bytes differ from llama.cpp's quantiser", b);
        differ_file += memcmp(kv[b].qs, file[b].qs, 32) != 0;
    }
    assert_true(differ_file > 0);
    free(x);
    free(kv);
    free(file);
    free(act);
}

/* The Q8_0 K.q scores (etok_attn_scores_q8_0): the scalar definition within 1e-5 (of the sum
 * of |terms|) of a double-precision dot; the AVX2 kernel = that definition bit for bit; and the
 * dispatched function = one etok_vec_dot_multi per position times the scale, bit for bit (the
 * engine's scores before the grouped kernel, llama.cpp's ggml_vec_dot_q8_0_q8_0 order at
 * level avx2), for 1..8 heads, head sizes 32..256, run lengths around the kernel's groups of 8
 * positions, K bytes over the whole int8 range (-128 included), scores written only at
 * positions < n of each head's row. */
static void test_attn_scores_q8_0(void **state) {
    (void)state;
    enum { N = 75, MAXG = 8, MAXHD = 256, ROWB = MAXHD / 32 * 34 + 6, CAP = N + 5 };
    uint8_t *rows = calloc((size_t)N, ROWB);
    assert_non_null(rows);
    for (int j = 0; j < N; j++)
        for (int b = 0; b < MAXHD / 32; b++) {
            etok_block_q8_0 *blk = (etok_block_q8_0 *)(rows + (size_t)j * ROWB + (size_t)b * 34);
            blk->d = etok_f32_to_f16(0.001f + 0.03f * (frand() + 1.0f));
            for (int i = 0; i < 32; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                blk->qs[i] = (int8_t)(uint8_t)(rng >> 56);
            }
        }
    static float qf[MAXG * MAXHD], o_ref[MAXG * CAP], o_simd[MAXG * CAP], o_disp[MAXG * CAP], o_old[MAXG * CAP];
    static etok_block_q8a qa[MAXG * MAXHD / 32];
    for (int i = 0; i < MAXG * MAXHD; i++) qf[i] = frand() * (i % 5 == 0 ? 4.0f : 0.7f);
    const int hds[4] = {32, 64, 96, 256}, lens[5] = {75, 8, 13, 1, 16};
    const float scale = 0.125f;
    for (int t = 0; t < 4; t++) {
        const int hd = hds[t], nb = hd / 32;
        for (int h = 0; h < MAXG; h++) etok_quantize_q8a_ref(qf + (size_t)h * hd, qa + (size_t)h * nb, hd);
        for (int l = 0; l < 5; l++)
            for (int g = 1; g <= MAXG; g++) {
                const int n = lens[l];
                for (int i = 0; i < MAXG * CAP; i++) o_ref[i] = o_simd[i] = o_disp[i] = o_old[i] = -7.0f;
                etok_attn_scores_q8_0_ref(qa, g, rows, ROWB, n, hd, scale, o_ref, CAP, NULL);
                for (int h = 0; h < g; h++) {
                    for (int s = n; s < CAP; s++) assert_true(o_ref[h * CAP + s] == -7.0f);
                    for (int s = 0; s < n; s++) {
                        double d = 0, mag = 0;
                        for (int b = 0; b < nb; b++) {
                            const etok_block_q8_0 *blk = (const etok_block_q8_0 *)(rows + (size_t)s * ROWB + (size_t)b * 34);
                            const etok_block_q8a *y = qa + (size_t)h * nb + b;
                            for (int i = 0; i < 32; i++) {
                                const double x = (double)etok_f16_to_f32(blk->d) * y->d * blk->qs[i] * y->qs[i];
                                d += x;
                                mag += fabs(x);
                            }
                        }
                        if (!(fabs(o_ref[h * CAP + s] - d * scale) <= 1e-5 * mag * scale + 1e-30))
                            fail_msg("hd %d n %d g %d head %d pos %d: reference %a, double %a", hd, n, g, h, s,
                                     (double)o_ref[h * CAP + s], d * scale);
                    }
                }
                /* the dispatched function against what the engine did before: a dispatched dot
                 * per position for the group, then the scale */
                etok_attn_scores_q8_0(qa, g, rows, ROWB, n, hd, scale, o_disp, CAP, rows);
                for (int s = 0; s < n; s++) {
                    etok_vec_dot_multi(ETOK_T_Q8_0, rows + (size_t)s * ROWB, qa, NULL, hd, g, o_old + s, CAP);
                    for (int h = 0; h < g; h++) o_old[h * CAP + s] *= scale;
                }
                for (int i = 0; i < g * CAP; i++)
                    if (ubits(o_disp[i]) != ubits(o_old[i]))
                        fail_msg("hd %d n %d g %d out %d: grouped %a, per position %a", hd, n, g, i, (double)o_disp[i],
                                 (double)o_old[i]);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
                if (!etok_simd_active()) continue;
                etok_attn_scores_q8_0_avx2(qa, g, rows, ROWB, n, hd, scale, o_simd, CAP, l % 2 ? rows : NULL);
                for (int i = 0; i < g * CAP; i++)
                    if (ubits(o_simd[i]) != ubits(o_ref[i]))
                        fail_msg("hd %d n %d g %d out %d: AVX2 %a, scalar %a", hd, n, g, i, (double)o_simd[i], (double)o_ref[i]);
#endif
            }
    }
    free(rows);
}

static void test_exp_simd_equals_scalar(void **state) {
    (void)state;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!etok_simd_active()) skip();
    enum { N = 1003 };
    static float x[N], a[N], b[N], up[N];
    for (int i = 0; i < N; i++) {
        x[i] = frand() * (i % 7 == 0 ? 230.0f : 20.0f);
        up[i] = frand();
    }
    for (int n = 1; n <= N; n += n < 40 ? 1 : 97) {
        const float mx = 3.0f;
        const double sa = etok_softmax_exp_avx2(a, x, n, mx), sb = etok_softmax_exp_ref(b, x, n, mx);
        assert_true(sa == sb);
        for (int i = 0; i < n; i++)
            if (ubits(a[i]) != ubits(b[i])) fail_msg("softmax n=%d [%d]: AVX2 %a, scalar %a", n, i, (double)a[i], (double)b[i]);
        memcpy(a, x, sizeof a);
        memcpy(b, x, sizeof b);
        etok_silu_mul_avx2(a, up, n);
        etok_silu_mul_ref(b, up, n);
        for (int i = 0; i < n; i++)
            if (ubits(a[i]) != ubits(b[i])) fail_msg("silu n=%d [%d]: AVX2 %a, scalar %a", n, i, (double)a[i], (double)b[i]);
    }
#else
    skip();
#endif
}

/* etok_max: the AVX2 version returns the reference scan's value for any length, with NaNs
 * (skipped), infinities and signed zeros among the values; the bits too unless the largest
 * value is a zero (then +0 or -0) */
static void test_max_simd_equals_scalar(void **state) {
    (void)state;
    assert_true(etok_max_ref(NULL, 0) == -INFINITY);
    assert_true(etok_max(NULL, 0) == -INFINITY);
    const float nan = nanf("");
    const float all_nan[3] = {nan, nan, nan};
    assert_true(etok_max_ref(all_nan, 3) == -INFINITY);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (!etok_simd_active()) skip();
    assert_true(etok_max_avx2(all_nan, 3) == -INFINITY);
    enum { N = 1003 };
    static float x[N];
    for (int kind = 0; kind < 4; kind++)
        for (int n = 0; n <= N; n += n < 70 ? 1 : 89) {
            for (int i = 0; i < n; i++) {
                x[i] = frand() * 50.0f - 60.0f;
                if (kind == 1 && i % 5 == 2) x[i] = nan;
                if (kind == 2) x[i] = i % 3 == 0 ? -0.0f : i % 3 == 1 ? 0.0f : -INFINITY;
                if (kind == 3 && i == n / 2) x[i] = i % 2 ? INFINITY : nan;
            }
            const float a = etok_max_avx2(x, n), b = etok_max_ref(x, n);
            if (!(a == b) || (b != 0.0f && ubits(a) != ubits(b)))
                fail_msg("max kind %d n=%d: AVX2 %a, scalar %a", kind, n, (double)a, (double)b);
            assert_true(etok_max(x, n) == b);
        }
#else
    skip();
#endif
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_simd_equals_scalar),
        cmocka_unit_test(test_silu_matches_llama_cpp),
        cmocka_unit_test(test_softmax_matches_llama_cpp),
        cmocka_unit_test(test_vexpf_accuracy),
        cmocka_unit_test(test_attn_1tok_simd_equals_scalar),
        cmocka_unit_test(test_attn_1tok_multi_equals_per_head),
        cmocka_unit_test(test_exp_simd_equals_scalar),
        cmocka_unit_test(test_attn_accum_q8_0),
        cmocka_unit_test(test_quantize_kv_q8_0),
        cmocka_unit_test(test_attn_scores_q8_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
