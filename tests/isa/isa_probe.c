/* isa_probe.c — what the x86 CPU claims, what the OS enabled, and whether it computes right.
 *
 * A plain C program (no test framework), built -static by `make test-isa` and run on the host
 * or under the Bochs emulator by scripts/isa_emulate.sh (docs/ISA_EMULATION.md). It reports:
 *   - CPUID bits: avx2, avx512f/bw/vl/vnni/bf16, amx-tile/int8/bf16, and XFD
 *     (CPUID.(EAX=0DH,ECX=1):EAX[4], which Linux needs before it enables AMX);
 *   - XCR0 (xgetbv 0): which register states the OS enabled (AVX, AVX-512, AMX tiles);
 *   - for AMX, the answer of arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) (refused under
 *     the Bochs harness, which has no XFD: there ETOK_ISA_AMX_XCR0=1 says the harness set XCR0's
 *     tile bits itself; docs/ISA_EMULATION.md "AMX");
 * then, for each feature both claimed and enabled, runs one computation on fixed inputs and
 * compares with a scalar computation: VPDPBUSD zmm (AVX512_VNNI), VDPBF16PS zmm (AVX512_BF16),
 * TDPBUSD and TDPBSSD (AMX-INT8), TDPBF16PS (AMX-BF16).
 *
 * Exit status: 0 when every feature the CPU claims and the OS enabled computed right and every
 * feature named in --require is usable; 1 otherwise (a mismatch, or a required feature missing);
 * 2 usage. Features: avx2 avx512f avx512bw avx512vl avx512vnni avx512bf16 amxtile amxint8 amxbf16.
 * Each kernel is compiled with __attribute__((target(...))) so the file builds with default flags.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <cpuid.h>
#include <errno.h>
#include <immintrin.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define ARCH_GET_XCOMP_PERM 0x1022
#define ARCH_REQ_XCOMP_PERM 0x1023
#define XFEATURE_XTILEDATA 18

enum { F_AVX2, F_AVX512F, F_AVX512BW, F_AVX512VL, F_AVX512VNNI, F_AVX512BF16, F_AMXTILE, F_AMXINT8, F_AMXBF16, F_COUNT };
static const char *const feat_name[F_COUNT] = {"avx2",       "avx512f",    "avx512bw", "avx512vl", "avx512vnni",
                                               "avx512bf16", "amxtile",    "amxint8",  "amxbf16"};

static int claimed[F_COUNT]; /* CPUID says the CPU has it */
static int usable[F_COUNT];  /* and the OS enabled its register state (and, for AMX, granted permission) */
static int failures;

static void cpuid2(unsigned leaf, unsigned sub, unsigned r[4])
{
    r[0] = r[1] = r[2] = r[3] = 0;
    if ((unsigned)__get_cpuid_max(0, NULL) >= leaf)
        __cpuid_count(leaf, sub, r[0], r[1], r[2], r[3]);
}

static uint64_t xgetbv0(void)
{
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

/* ---- AVX512_VNNI: VPDPBUSD zmm, 16 lanes of (int32 + 4 x u8*s8) ---- */
__attribute__((target("avx512f,avx512vnni"))) static void vnni_simd(const uint8_t *a, const int8_t *b, const int32_t *acc,
                                                                   int32_t *out)
{
    __m512i va = _mm512_loadu_si512(a), vb = _mm512_loadu_si512(b), vc = _mm512_loadu_si512(acc);
    _mm512_storeu_si512(out, _mm512_dpbusd_epi32(vc, va, vb));
}

static int test_vnni(void)
{
    uint8_t a[64];
    int8_t b[64];
    int32_t acc[16], got[16], want[16];
    for (int i = 0; i < 64; i++) {
        a[i] = (uint8_t)(i * 37 + 11);           /* covers 0..255 incl. values >= 128 */
        b[i] = (int8_t)((i * 53 + 7) % 256 - 128); /* negative and positive */
    }
    for (int l = 0; l < 16; l++) {
        acc[l] = (l - 8) * 100003;
        want[l] = acc[l];
        for (int k = 0; k < 4; k++)
            want[l] += (int32_t)a[4 * l + k] * (int32_t)b[4 * l + k];
    }
    vnni_simd(a, b, acc, got);
    int bad = memcmp(got, want, sizeof got) != 0;
    printf("avx512vnni: VPDPBUSD zmm %s (lane 0: %d, want %d)\n", bad ? "MISMATCH" : "ok", (int)got[0], (int)want[0]);
    return bad;
}

/* bf16 helpers: truncation of exactly representable values, so the scalar side is exact. */
static uint16_t f2bf(float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    return (uint16_t)(u >> 16);
}

static float bf2f(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* ---- AVX512_BF16: VDPBF16PS zmm, 16 lanes of (f32 + 2 x bf16*bf16) ---- */
__attribute__((target("avx512f,avx512bf16"))) static void bf16_simd(const uint16_t *a, const uint16_t *b, const float *acc,
                                                                   float *out)
{
    __m512bh va = (__m512bh)_mm512_loadu_si512(a), vb = (__m512bh)_mm512_loadu_si512(b);
    _mm512_storeu_ps(out, _mm512_dpbf16_ps(_mm512_loadu_ps(acc), va, vb));
}

static int test_avx512bf16(void)
{
    uint16_t a[32], b[32];
    float acc[16], got[16], want[16];
    for (int i = 0; i < 32; i++) {
        a[i] = f2bf((float)(i % 7 - 3) * 0.5f); /* small integers and halves: products exact in f32 */
        b[i] = f2bf((float)(i % 5 - 2) * 0.25f);
    }
    for (int l = 0; l < 16; l++) {
        acc[l] = (float)l;
        want[l] = acc[l] + bf2f(a[2 * l]) * bf2f(b[2 * l]) + bf2f(a[2 * l + 1]) * bf2f(b[2 * l + 1]);
    }
    bf16_simd(a, b, acc, got);
    int bad = memcmp(got, want, sizeof got) != 0;
    printf("avx512bf16: VDPBF16PS zmm %s (lane 1: %g, want %g)\n", bad ? "MISMATCH" : "ok", (double)got[1], (double)want[1]);
    return bad;
}

/* ---- AMX: one 16x16 int32 tile C += A(16x64 u8) * B(16 rows of 16x4 s8), and the bf16 analogue ---- */
struct tilecfg {
    uint8_t palette;
    uint8_t start_row;
    uint8_t reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
};

static void tile_config(struct tilecfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = 1;
    for (int t = 0; t < 3; t++) {
        cfg->rows[t] = 16;
        cfg->colsb[t] = 64;
    }
}

/* signed_a = 0: TDPBUSD (A unsigned, B signed); 1: TDPBSSD (both signed) */
__attribute__((target("amx-tile,amx-int8"))) static void amx_int8_simd(int signed_a, const void *a, const int8_t *b,
                                                                       int32_t *c)
{
    struct tilecfg cfg;
    tile_config(&cfg);
    _tile_loadconfig(&cfg);
    _tile_loadd(0, c, 64);
    _tile_loadd(1, a, 64);
    _tile_loadd(2, b, 64);
    if (signed_a)
        _tile_dpbssd(0, 1, 2);
    else
        _tile_dpbusd(0, 1, 2);
    _tile_stored(0, c, 64);
    _tile_release();
}

static int test_amx_int8_one(int signed_a)
{
    static uint8_t a[16 * 64];
    static int8_t b[16 * 64];
    static int32_t c[16 * 16], want[16 * 16];
    for (int i = 0; i < 16 * 64; i++) {
        a[i] = (uint8_t)(i * 29 + 3); /* values >= 128 too: read as negative by TDPBSSD */
        b[i] = (int8_t)((i * 61 + 5) % 256 - 128);
    }
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            int32_t s = m * 1000 - n;
            c[m * 16 + n] = s;
            for (int k = 0; k < 16; k++) /* B row k holds 4 consecutive K values of each column n */
                for (int i = 0; i < 4; i++) {
                    uint8_t av = a[m * 64 + 4 * k + i];
                    int32_t ai = signed_a ? (int32_t)(int8_t)av : (int32_t)av;
                    s += ai * (int32_t)b[k * 64 + 4 * n + i];
                }
            want[m * 16 + n] = s;
        }
    amx_int8_simd(signed_a, a, b, c);
    int bad = memcmp(c, want, sizeof c) != 0;
    printf("amxint8: %s 16x16x64 %s (c[5][7]: %d, want %d)\n", signed_a ? "TDPBSSD" : "TDPBUSD", bad ? "MISMATCH" : "ok",
           (int)c[5 * 16 + 7], (int)want[5 * 16 + 7]);
    return bad;
}

static int test_amx_int8(void)
{
    return test_amx_int8_one(0) + test_amx_int8_one(1);
}

__attribute__((target("amx-tile,amx-bf16"))) static void amx_bf16_simd(const uint16_t *a, const uint16_t *b, float *c)
{
    struct tilecfg cfg;
    tile_config(&cfg);
    _tile_loadconfig(&cfg);
    _tile_loadd(0, c, 64);
    _tile_loadd(1, a, 64);
    _tile_loadd(2, b, 64);
    _tile_dpbf16ps(0, 1, 2);
    _tile_stored(0, c, 64);
    _tile_release();
}

static int test_amx_bf16(void)
{
    static uint16_t a[16 * 32], b[16 * 32];
    static float c[16 * 16], want[16 * 16];
    for (int i = 0; i < 16 * 32; i++) {
        a[i] = f2bf((float)(i % 9 - 4));
        b[i] = f2bf((float)(i % 7 - 3) * 0.5f);
    }
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float s = (float)(m - n);
            c[m * 16 + n] = s;
            for (int k = 0; k < 16; k++)
                for (int i = 0; i < 2; i++)
                    s += bf2f(a[m * 32 + 2 * k + i]) * bf2f(b[k * 32 + 2 * n + i]); /* exact: small integers/halves */
            want[m * 16 + n] = s;
        }
    amx_bf16_simd(a, b, c);
    int bad = memcmp(c, want, sizeof c) != 0;
    printf("amxbf16: TDPBF16PS 16x16x32 %s (c[3][4]: %g, want %g)\n", bad ? "MISMATCH" : "ok", (double)c[3 * 16 + 4],
           (double)want[3 * 16 + 4]);
    return bad;
}

static int feature_index(const char *name, size_t len)
{
    for (int f = 0; f < F_COUNT; f++)
        if (strlen(feat_name[f]) == len && strncmp(feat_name[f], name, len) == 0)
            return f;
    return -1;
}

static void usage(FILE *to)
{
    fprintf(to, "usage: isa_probe [--require FEATURE[,FEATURE...]]\n"
                "Reports x86 CPUID bits, OS-enabled register state (XCR0) and AMX permission, runs one\n"
                "VPDPBUSD / VDPBF16PS / TDPBUSD / TDPBSSD / TDPBF16PS computation for each usable feature and\n"
                "compares it with a scalar computation. Exit 0: all usable features compute right and\n"
                "all required ones are usable; 1: a mismatch or a required feature missing; 2: usage.\n"
                "Features:");
    for (int f = 0; f < F_COUNT; f++)
        fprintf(to, " %s", feat_name[f]);
    fprintf(to, "\n");
}

int main(int argc, char **argv)
{
    int required[F_COUNT] = {0};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        }
        if (strcmp(argv[i], "--require") == 0 && i + 1 < argc) {
            const char *p = argv[++i];
            while (*p) {
                size_t len = strcspn(p, ",");
                int f = feature_index(p, len);
                if (f < 0) {
                    fprintf(stderr, "isa_probe: --require: unknown feature '%.*s'\n", (int)len, p);
                    usage(stderr);
                    return 2;
                }
                required[f] = 1;
                p += len;
                if (*p == ',')
                    p++;
            }
            continue;
        }
        fprintf(stderr, "isa_probe: unknown argument '%s'\n", argv[i]);
        usage(stderr);
        return 2;
    }

    unsigned l1[4], l7[4], l71[4], ld1[4];
    cpuid2(1, 0, l1);
    cpuid2(7, 0, l7);
    cpuid2(7, 1, l71);
    cpuid2(0xd, 1, ld1);
    char vendor[13] = {0};
    unsigned l0[4];
    cpuid2(0, 0, l0);
    memcpy(vendor, &l0[1], 4);
    memcpy(vendor + 4, &l0[3], 4);
    memcpy(vendor + 8, &l0[2], 4);
    int osxsave = (l1[2] >> 27) & 1;
    claimed[F_AVX2] = (l7[1] >> 5) & 1;
    claimed[F_AVX512F] = (l7[1] >> 16) & 1;
    claimed[F_AVX512BW] = (l7[1] >> 30) & 1;
    claimed[F_AVX512VL] = (l7[1] >> 31) & 1;
    claimed[F_AVX512VNNI] = (l7[2] >> 11) & 1;
    claimed[F_AVX512BF16] = (l71[0] >> 5) & 1;
    claimed[F_AMXBF16] = (l7[3] >> 22) & 1;
    claimed[F_AMXTILE] = (l7[3] >> 24) & 1;
    claimed[F_AMXINT8] = (l7[3] >> 25) & 1;
    int xfd = (ld1[0] >> 4) & 1;
    uint64_t xcr0 = osxsave ? xgetbv0() : 0;
    int os_avx = (xcr0 & 0x6) == 0x6;
    int os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
    int os_tiles_xcr0 = (xcr0 & 0x60000) == 0x60000;

    printf("cpu: vendor %s family/model/stepping 0x%x\n", vendor, l1[0]);
    printf("cpuid:");
    for (int f = 0; f < F_COUNT; f++)
        printf(" %s=%d", feat_name[f], claimed[f]);
    printf(" xfd=%d\n", xfd);
    printf("xcr0: 0x%llx (osxsave=%d avx-state=%d avx512-state=%d amx-tile-state=%d)\n", (unsigned long long)xcr0, osxsave,
           os_avx, os_avx512, os_tiles_xcr0);

    int os_amx = 0;
    if (claimed[F_AMXTILE]) {
        long r = syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA);
        int err = r ? errno : 0;
        unsigned long long perm = 0;
        long g = syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM, &perm);
        printf("amx: arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA) = %ld%s%s; ARCH_GET_XCOMP_PERM = %s0x%llx\n", r,
               r ? " errno " : "", r ? strerror(err) : "", g ? "(failed) " : "", perm);
        /* Linux grants the permission only when it enabled the tile states in XCR0 (which needs XFD).
         * Under scripts/isa_emulate.sh (Bochs has no XFD) a test-only module sets the XCR0 bits
         * instead and /init says so in ETOK_ISA_AMX_XCR0=1: accept that there, and only there. */
        const char *emu = getenv("ETOK_ISA_AMX_XCR0");
        int emulated = emu && strcmp(emu, "1") == 0;
        os_amx = os_tiles_xcr0 && (r == 0 || emulated);
        if (os_amx && r != 0)
            printf("amx: permission refused, but ETOK_ISA_AMX_XCR0=1 and XCR0 has the tile states: "
                   "emulator harness, testing AMX anyway\n");
        if (!os_amx)
            printf("amx: the CPU claims AMX but the OS did not enable it (%s)\n",
                   !os_tiles_xcr0 ? (xfd ? "tile state not in XCR0" : "tile state not in XCR0; CPU lacks XFD, which Linux requires")
                                  : "permission refused");
    }
    usable[F_AVX2] = claimed[F_AVX2] && os_avx;
    for (int f = F_AVX512F; f <= F_AVX512BF16; f++)
        usable[f] = claimed[f] && claimed[F_AVX512F] && os_avx512;
    for (int f = F_AMXTILE; f <= F_AMXBF16; f++)
        usable[f] = claimed[f] && claimed[F_AMXTILE] && os_amx;
    printf("usable:");
    for (int f = 0; f < F_COUNT; f++)
        printf(" %s=%d", feat_name[f], usable[f]);
    printf("\n");
    fflush(stdout);

    if (usable[F_AVX512VNNI])
        failures += test_vnni();
    if (usable[F_AVX512BF16])
        failures += test_avx512bf16();
    if (usable[F_AMXINT8])
        failures += test_amx_int8();
    if (usable[F_AMXBF16])
        failures += test_amx_bf16();
    for (int f = 0; f < F_COUNT; f++)
        if (required[f] && !usable[f]) {
            printf("required feature %s is not usable\n", feat_name[f]);
            failures++;
        }
    printf("isa_probe: %s\n", failures ? "FAIL" : "PASS");
    return failures ? 1 : 0;
}
