/* test_isa.c — kernel levels (quant.h "kernel level dispatch"): names, the CPUID/XCR0 decision,
 * forcing a level with etok_isa_force and ETOK_ISA (a level above the detected one, or an
 * unknown name, refused with a message naming the variable and the detected level), and the
 * kernels at every level this CPU has: AVX-512 results bit-identical to AVX2, every level near
 * the scalar reference (tests/isa/isa_check.h, shared with the plain-C tests/isa/isa_kernels.c
 * that runs under an emulator). The AVX-512 comparisons print a note and are skipped on a CPU
 * without AVX-512. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../isa/isa_check.h"

static void test_names(void **state) {
    (void)state;
    assert_string_equal(etok_isa_name(ETOK_ISA_SCALAR), "scalar");
    assert_string_equal(etok_isa_name(ETOK_ISA_AVX2), "avx2");
    assert_string_equal(etok_isa_name(ETOK_ISA_AVX512), "avx512");
    assert_string_equal(etok_isa_name(ETOK_ISA_AMX), "amx");
    assert_string_equal(etok_isa_name(4), "?");
    assert_int_equal(etok_isa_parse("scalar"), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_parse("avx2"), ETOK_ISA_AVX2);
    assert_int_equal(etok_isa_parse("avx512"), ETOK_ISA_AVX512);
    assert_int_equal(etok_isa_parse("amx"), ETOK_ISA_AMX);
    const char *bad[] = {"", "AVX2", "avx-512", "avx512 ", "avx", "AMX", "amx-int8", "avx5120"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) assert_int_equal(etok_isa_parse(bad[i]), -1);
    assert_int_equal(etok_isa_parse(NULL), -1);
}

/* CPUID bits: leaf 1 ECX 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C; leaf 7 EBX 5 AVX2, 16 F, 30 BW,
 * 31 VL; ECX 11 VNNI; XCR0 1, 2 (YMM), 5, 6, 7 (opmask, ZMM) */
static void test_cpuid_decision(void **state) {
    (void)state;
    const uint32_t ecx1 = 1u << 12 | 1u << 27 | 1u << 28 | 1u << 29, ebx7 = 1u << 5 | 1u << 16 | 1u << 30 | 1u << 31,
                   ecx7 = 1u << 11;
    const uint64_t xcr0 = 0xE7; /* x87, SSE, AVX, opmask, ZMM_Hi256, Hi16_ZMM */
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7, ecx7, xcr0), ETOK_ISA_AVX512);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7, ecx7, xcr0 | 1u << 17 | 1u << 18), ETOK_ISA_AVX512); /* + AMX */
    /* the OS does not save ZMM state: AVX2 only, whatever CPUID says */
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7, ecx7, 0x07), ETOK_ISA_AVX2);
    for (int bit = 5; bit <= 7; bit++)
        assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7, ecx7, xcr0 & ~(1u << bit)), ETOK_ISA_AVX2);
    /* each AVX-512 feature is required */
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7, 0, xcr0), ETOK_ISA_AVX2);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7 & ~(1u << 16), ecx7, xcr0), ETOK_ISA_AVX2);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7 & ~(1u << 30), ecx7, xcr0), ETOK_ISA_AVX2);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7 & ~(1u << 31), ecx7, xcr0), ETOK_ISA_AVX2);
    /* AVX2 needs FMA, F16C, AVX, OSXSAVE, the AVX2 bit and YMM state */
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, 1u << 5, 0, 0x07), ETOK_ISA_AVX2);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1 & ~(1u << 12), ebx7, ecx7, xcr0), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1 & ~(1u << 29), ebx7, ecx7, xcr0), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1 & ~(1u << 28), ebx7, ecx7, xcr0), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1 & ~(1u << 27), ebx7, ecx7, xcr0), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7 & ~(1u << 5), ecx7, xcr0), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_level_from_cpuid(ecx1, ebx7, ecx7, 0x03), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_level_from_cpuid(0, 0, 0, 0), ETOK_ISA_SCALAR);
}

/* AMX: leaf 7 EDX 24 AMX-TILE, 25 AMX-INT8; XCR0 17, 18 (tile config, tile data); the OS
 * permission (arch_prctl result), or, only where it is refused, the emulator's ETOK_ISA_AMX_XCR0=1 */
static void test_amx_decision(void **state) {
    (void)state;
    const uint32_t edx7 = 1u << 24 | 1u << 25;
    const uint64_t xcr0 = 0xE7 | 1u << 17 | 1u << 18;
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0, 0, NULL), 1);
    assert_int_equal(etok_isa_amx_usable(edx7 | 1u << 22, xcr0, 0, "0"), 1);
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0, -1, NULL), 0); /* permission refused */
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0, -1, "0"), 0);
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0, -1, "yes"), 0);
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0, -1, "1"), 1); /* the emulator harness */
    assert_int_equal(etok_isa_amx_usable(edx7 & ~(1u << 24), xcr0, 0, "1"), 0);
    assert_int_equal(etok_isa_amx_usable(edx7 & ~(1u << 25), xcr0, 0, "1"), 0);
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0 & ~(1ull << 17), 0, "1"), 0); /* tile state not enabled */
    assert_int_equal(etok_isa_amx_usable(edx7, xcr0 & ~(1ull << 18), 0, "1"), 0);
    assert_int_equal(etok_isa_amx_usable(0, 0, 0, NULL), 0);
}

/* The amx level's summation order (etok_matmul_rows_amx_ref, runs anywhere) against the
 * dispatched kernel at the best non-amx level, for every format the AMX kernel takes: within
 * (nb + 8) * 2^-23 * mag (mag = sum over values of (|w_i - m| + |m|) |x_i|, m the block's
 * minimum or 0), and not bit-identical everywhere (else the documented difference would be
 * wrong), except Q4_0 against the engine's 8-row Q4_0 kernel: identical (the same chain). */
static void test_amx_ref_near_avx2(void **state) {
    (void)state;
    enum { NB = 96, ROWS = 24, NX = 20 };
    static float f[NB * 32 * NX];
    static uint8_t w[ROWS * NB * 34];
    static etok_block_q8a xq[NB * NX];
    static float a[NX * ROWS], b[NX * ROWS];
    const uint32_t types[] = {ETOK_T_Q8_0, ETOK_T_Q4_0, ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_IQ4_NL};
    const int n = NB * 32;
    char err[256];
    const int det = etok_isa_detected(), lvl = det > ETOK_ISA_AVX512 ? ETOK_ISA_AVX512 : det;
    int differ = 0;
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++) {
        const uint32_t t = types[ti];
        const int has_min = t == ETOK_T_Q4_1 || t == ETOK_T_Q5_1;
        assert_true(etok_amx_applies(t, ETOK_AMX_MIN_TOKENS));
        assert_false(etok_amx_applies(t, ETOK_AMX_MIN_TOKENS - 1));
        const size_t rb = etok_type_row_bytes(t, n);
        for (int r = 0; r < ROWS; r++) {
            for (int i = 0; i < n; i++) f[i] = isa_frand() * 0.1f + (has_min ? 0.03f : 0.0f);
            etok_quantize_row(t, f, w + (size_t)r * rb, n);
        }
        for (int i = 0; i < n * NX; i++) f[i] = isa_frand();
        etok_quantize_q8a(f, xq, (int64_t)n * NX);
        assert_int_equal(etok_isa_force(lvl, err, sizeof err), 0);
        if (t == ETOK_T_Q4_0) /* the engine's Q4_0 kernel: llama.cpp's 8-row order */
            etok_matmul_rows_q4_0_8x8(w, rb, 0, ROWS, xq, n, NX, a, ROWS);
        else
            etok_matmul_rows(t, w, rb, 0, ROWS, xq, NULL, n, NX, a, ROWS);
        etok_matmul_rows_amx_ref(t, w, rb, 0, ROWS, xq, n, NX, b, ROWS);
        double worst = 0;
        int differ_t = 0;
        for (int j = 0; j < NX; j++)
            for (int r = 0; r < ROWS; r++) {
                const double mag = isa_amx_mag(t, w + (size_t)r * rb, xq + (size_t)j * NB, n);
                const double d = fabs((double)a[j * ROWS + r] - b[j * ROWS + r]);
                if (d / mag > worst) worst = d / mag;
                differ_t += memcmp(&a[j * ROWS + r], &b[j * ROWS + r], sizeof(float)) != 0;
                assert_true(d <= (NB + 8) * ldexp(1.0, -23) * mag);
            }
        printf("amx order vs %s, %s: %d of %d results differ in bits, largest |difference| / mag = %.3g\n",
               etok_isa_name(lvl), etok_type_name(t), differ_t, NX * ROWS, worst);
        if (t == ETOK_T_Q4_0) assert_int_equal(differ_t, 0); /* its per-block chain is the amx level's */
        differ += differ_t;
    }
    if (lvl >= ETOK_ISA_AVX2) assert_true(differ > 0);
    assert_int_equal(etok_isa_force(det, err, sizeof err), 0);
}

static void test_force(void **state) {
    (void)state;
    const int det = etok_isa_detected();
    char err[256];
    assert_int_equal(etok_isa_force(ETOK_ISA_SCALAR, err, sizeof err), 0);
    assert_int_equal(etok_isa_active(), ETOK_ISA_SCALAR);
    assert_false(etok_simd_active());
    /* at scalar the dispatched dot is the reference, bit for bit */
    static float x[64 * 4];
    static uint8_t row[64 * 4];
    static etok_block_q8a xq[2];
    for (int i = 0; i < 64; i++) x[i] = isa_frand();
    etok_quantize_row(ETOK_T_Q4_1, x, row, 64);
    etok_quantize_q8a(x, xq, 64);
    const float a = etok_vec_dot(ETOK_T_Q4_1, row, xq, NULL, 64), b = etok_vec_dot_ref(ETOK_T_Q4_1, row, xq, NULL, 64);
    assert_memory_equal(&a, &b, sizeof a);
    if (det >= ETOK_ISA_AVX2) {
        assert_int_equal(etok_isa_force(ETOK_ISA_AVX2, err, sizeof err), 0);
        assert_int_equal(etok_isa_active(), ETOK_ISA_AVX2);
        assert_true(etok_simd_active());
    }
    assert_int_equal(etok_isa_force(det, err, sizeof err), 0);
    assert_int_equal(etok_isa_active(), det);
    /* unknown levels: refused, nothing changed */
    assert_int_equal(etok_isa_force(-1, err, sizeof err), -1);
    assert_int_equal(etok_isa_force(4, err, sizeof err), -1);
    assert_non_null(strstr(err, "unknown kernel level 4"));
    assert_int_equal(etok_isa_active(), det);
    if (det < ETOK_ISA_AMX) { /* a level the CPU lacks: refused, naming the detected level */
        assert_int_equal(etok_isa_force(det + 1, err, sizeof err), -1);
        assert_non_null(strstr(err, etok_isa_name(det + 1)));
        assert_non_null(strstr(err, etok_isa_name(det)));
        assert_non_null(strstr(err, "not available"));
        assert_int_equal(etok_isa_active(), det);
    } else {
        printf("note: this CPU has AMX: forcing a level it lacks cannot be tried here\n");
    }
}

static void test_env(void **state) {
    (void)state;
    const int det = etok_isa_detected();
    char err[256] = "";
    unsetenv(ETOK_ISA_ENV);
    assert_int_equal(etok_isa_from_env(err, sizeof err), 0);
    assert_int_equal(etok_isa_active(), det);
    setenv(ETOK_ISA_ENV, "avx", 1);
    assert_int_equal(etok_isa_from_env(err, sizeof err), -1);
    assert_non_null(strstr(err, "ETOK_ISA='avx'"));
    assert_non_null(strstr(err, "scalar, avx2, avx512 or amx"));
    assert_non_null(strstr(err, etok_isa_name(det)));
    assert_int_equal(etok_isa_active(), det); /* nothing changed */
    setenv(ETOK_ISA_ENV, "scalar", 1);
    assert_int_equal(etok_isa_from_env(err, sizeof err), 0);
    assert_int_equal(etok_isa_active(), ETOK_ISA_SCALAR);
    if (det < ETOK_ISA_AVX512) {
        setenv(ETOK_ISA_ENV, "avx512", 1);
        assert_int_equal(etok_isa_from_env(err, sizeof err), -1);
        assert_non_null(strstr(err, "ETOK_ISA=avx512"));
        char want[64];
        snprintf(want, sizeof want, "detected kernel level: %s", etok_isa_name(det));
        assert_non_null(strstr(err, want));
        assert_int_equal(etok_isa_active(), ETOK_ISA_SCALAR);
    }
    if (det < ETOK_ISA_AMX) { /* ETOK_ISA=amx without AMX: the same clear refusal */
        setenv(ETOK_ISA_ENV, "amx", 1);
        assert_int_equal(etok_isa_from_env(err, sizeof err), -1);
        assert_non_null(strstr(err, "ETOK_ISA=amx: this CPU does not support it"));
        assert_int_equal(etok_isa_active(), ETOK_ISA_SCALAR);
    }
    unsetenv(ETOK_ISA_ENV);
    assert_int_equal(etok_isa_force(det, err, sizeof err), 0);
}

static void check_level(int level) {
    isa_report rep;
    memset(&rep, 0, sizeof rep);
    isa_check_level(level, &rep);
    printf("level %s: %ld bit-for-bit comparisons, %ld near the scalar reference, %ld mismatches\n", etok_isa_name(level),
           rep.identical, rep.close, rep.mismatches);
    if (rep.mismatches) fail_msg("level %s: %ld mismatches; first: %s", etok_isa_name(level), rep.mismatches, rep.first);
    assert_true(rep.close > 1000);
    if (level == ETOK_ISA_AVX512) assert_true(rep.identical > 10000);
    char err[256];
    assert_int_equal(etok_isa_force(etok_isa_detected(), err, sizeof err), 0);
}

static void test_kernels_scalar(void **state) {
    (void)state;
    check_level(ETOK_ISA_SCALAR);
}

static void test_kernels_avx2(void **state) {
    (void)state;
    if (etok_isa_detected() < ETOK_ISA_AVX2) {
        printf("note: no AVX2 on this CPU: skipped\n");
        skip();
    }
    check_level(ETOK_ISA_AVX2);
}

/* The library's AVX-512 kernels are the hardware's instructions, not tests/isa/avx512_emu.h's C
 * emulation: a CMake source property meant for isa_kernels_emu once compiled the emulation into
 * libetokcore, and every AVX-512 CPU ran the avx512 level (its default) ~25x slower than avx2. */
static void test_avx512_kernels_native(void **state) {
    (void)state;
    assert_int_equal(etok_avx512_emulated(), 0);
    assert_int_equal(etok_quant_k_avx512_emulated(), 0);
}

/* Unset ETOK_ISA: the detected level capped at avx512 (amx is opt-in: its prefill sums are
 * not avx2's bits), scalar without AVX2. */
static void test_default_level(void **state) {
    (void)state;
    assert_int_equal(etok_isa_default(ETOK_ISA_SCALAR), ETOK_ISA_SCALAR);
    assert_int_equal(etok_isa_default(ETOK_ISA_AVX2), ETOK_ISA_AVX2);
    assert_int_equal(etok_isa_default(ETOK_ISA_AVX512), ETOK_ISA_AVX512);
    assert_int_equal(etok_isa_default(ETOK_ISA_AMX), ETOK_ISA_AVX512);
}

static void test_kernels_avx512(void **state) {
    (void)state;
    if (etok_isa_detected() < ETOK_ISA_AVX512) {
        printf("note: no AVX-512 (F/BW/VL/VNNI with OS ZMM state) on this CPU (detected: %s): the AVX-512 kernels are not "
               "compared here; tests/isa/isa_kernels runs the same comparisons under an emulator\n",
               etok_isa_name(etok_isa_detected()));
        skip();
    }
    check_level(ETOK_ISA_AVX512);
}

static void test_kernels_amx(void **state) {
    (void)state;
    if (etok_isa_detected() < ETOK_ISA_AMX) {
        printf("note: no AMX (AMX-TILE/INT8 with OS tile state and permission) on this CPU (detected: %s): the AMX "
               "prefill kernel is not run here; tests/isa/isa_kernels runs it under an emulator, isa_kernels_emu with "
               "the tile operations in C\n",
               etok_isa_name(etok_isa_detected()));
        skip();
    }
    isa_amx_max_rel = 0;
    check_level(ETOK_ISA_AMX);
    printf("amx vs avx2: largest |difference| / sum|w_i x_i| = %.3g\n", isa_amx_max_rel);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names),          cmocka_unit_test(test_cpuid_decision), cmocka_unit_test(test_force),
        cmocka_unit_test(test_env),            cmocka_unit_test(test_kernels_scalar), cmocka_unit_test(test_kernels_avx2),
        cmocka_unit_test(test_kernels_avx512), cmocka_unit_test(test_amx_decision),
        cmocka_unit_test(test_amx_ref_near_avx2), cmocka_unit_test(test_kernels_amx),
        cmocka_unit_test(test_avx512_kernels_native), cmocka_unit_test(test_default_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
