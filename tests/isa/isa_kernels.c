/* isa_kernels.c — self-checking program for the kernel levels (no cmocka, no libraries but
 * libc and libm): built from the engine's quant sources alone so it links statically and runs
 * inside an emulator whose CPU model has AVX-512 (docs/ENGINE.md "Kernel levels").
 *
 * usage: isa_kernels [--require LEVEL] [--only LEVEL] [--quick]
 * Checks the level detection (a level above the detected one is refused), then every level
 * the CPU supports: the comparisons of tests/isa/isa_check.h (avx512 bit-identical to avx2,
 * each level near the scalar reference; amx: the AMX prefill kernel bit-identical to its own
 * scalar reference and near avx2). Without AVX-512 or AMX it says so and checks the rest;
 * with --require LEVEL a CPU below LEVEL is a failure (so an emulator run cannot pass by
 * skipping). --only LEVEL: check that level alone (avx512 still compares with avx2 and the
 * scalar reference); --quick: a smaller grid of shapes (for an emulator's speed). Exit 0 when
 * everything matched, 1 on any mismatch, 2 on usage errors. */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "isa_check.h"

int main(int argc, char **argv) {
    int require = ETOK_ISA_SCALAR, only = -1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--require") && i + 1 < argc && etok_isa_parse(argv[i + 1]) >= 0) {
            require = etok_isa_parse(argv[++i]);
        } else if (!strcmp(argv[i], "--only") && i + 1 < argc && etok_isa_parse(argv[i + 1]) >= 0) {
            only = etok_isa_parse(argv[++i]);
        } else if (!strcmp(argv[i], "--quick")) {
            isa_quick = 1;
        } else {
            fprintf(stderr, "usage: isa_kernels [--require scalar|avx2|avx512|amx] [--only scalar|avx2|avx512|amx] [--quick]\n");
            return 2;
        }
    }
    const int det = etok_isa_detected();
    printf("isa_kernels: detected kernel level %s (active at start: %s)\n", etok_isa_name(det),
           etok_isa_name(etok_isa_active()));
    int bad = 0;
    /* the AVX-512 kernels are the hardware's instructions here, or emulated in C in the
     * isa_kernels_emu build only: a build mix-up once shipped the emulation in libetokcore */
#ifdef ETOK_ISA_EMULATED_AVX512
    const int want_emulated = 1;
#else
    const int want_emulated = 0;
#endif
    if (etok_avx512_emulated() != want_emulated || etok_quant_k_avx512_emulated() != want_emulated) {
        printf("FAIL: AVX-512 kernels %s (quant_avx512.c %d, quant_k.c %d), want %s\n", "emulated flag mismatch",
               etok_avx512_emulated(), etok_quant_k_avx512_emulated(), want_emulated ? "emulated" : "native");
        bad = 1;
    } else {
        printf("ok: AVX-512 kernels %s\n", want_emulated ? "emulated in C (this test build only)" : "native instructions");
    }
    if (det < require) {
        printf("FAIL: --require %s, but this CPU's level is %s\n", etok_isa_name(require), etok_isa_name(det));
        bad = 1;
    }
    char err[256] = "";
    if (det < ETOK_ISA_AMX) {
        if (etok_isa_force(det + 1, err, sizeof err) == 0 || !strstr(err, etok_isa_name(det))) {
            printf("FAIL: forcing %s above the detected level was not refused as documented ('%s')\n",
                   etok_isa_name(det + 1), err);
            bad = 1;
        } else {
            printf("ok: forcing %s refused: %s\n", etok_isa_name(det + 1), err);
        }
        if (det < ETOK_ISA_AVX512)
            printf("note: no AVX-512 (F/BW/VL/VNNI with OS ZMM state) here: the avx512 comparisons are skipped\n");
        printf("note: no AMX (AMX-TILE/INT8 with OS tile state and permission) here: the amx comparisons are skipped\n");
    }
    if (only > det) {
        printf("FAIL: --only %s, but this CPU's level is %s\n", etok_isa_name(only), etok_isa_name(det));
        bad = 1;
    }
    for (int level = ETOK_ISA_SCALAR; level <= det; level++) {
        if (only >= 0 && level != only) continue;
        isa_report rep;
        memset(&rep, 0, sizeof rep);
        const clock_t c0 = clock();
        isa_check_level(level, &rep);
        const double s = (double)(clock() - c0) / CLOCKS_PER_SEC;
        printf("%s: level %s: %ld bit-for-bit comparisons (avx512 vs avx2; K-quants vs scalar), %ld near the scalar "
               "reference, %ld mismatches (%.1f s CPU)\n",
               rep.mismatches ? "FAIL" : "ok", etok_isa_name(level), rep.identical, rep.close, rep.mismatches, s);
        if (level == ETOK_ISA_AMX)
            printf("  amx vs avx2 (prefill, Q8_0 Q4_0 Q4_1 Q5_0 Q5_1 IQ4_NL Q6_K Q3_K): largest |difference| / sum|w_i x_i| = %.3g\n", isa_amx_max_rel);
        if (rep.mismatches) {
            printf("  first: %s\n", rep.first);
            bad = 1;
        }
    }
    printf("isa_kernels: %s\n", bad ? "FAILED" : "all checks passed");
    return bad;
}
