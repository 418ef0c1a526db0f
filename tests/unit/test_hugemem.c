/* test_hugemem.c — the engine's large buffers (engine/hugemem.h): 2 MiB aligned, zeroed, the
 * whole length writable, huge pages asked for unless ETOK_HUGEPAGES=0 (any value but 0 or 1
 * refused); the smaps reader on
 * fixture text (the mapping that holds an address, a missing field, no such mapping); the
 * kernel's THP mode from a fixture sysfs tree; and on this process's real smaps, the huge bytes
 * of a buffer are whole 2 MiB pages within the buffer, none when not asked for. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine/hugemem.h"
#include "etok/util.h"

static void test_alloc_aligned_zeroed_writable(void **state) {
    (void)state;
    const size_t sizes[] = {1, 4095, 4096, 3 * ETOK_HUGE_PAGE + 12345};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        etok_hugemem h;
        assert_int_equal(etok_hugemem_alloc(&h, sizes[i]), 0);
        assert_non_null(h.base);
        assert_int_equal((uintptr_t)h.base % ETOK_HUGE_PAGE, 0);
        assert_int_equal(h.bytes, sizes[i]);
        assert_true(h.mapped > sizes[i]); /* the guard page after the buffer */
        for (size_t k = 0; k < sizes[i]; k += 997) assert_int_equal(h.base[k], 0);
        assert_int_equal(h.base[sizes[i] - 1], 0);
        memset(h.base, 0xa5, sizes[i]);
        assert_int_equal(h.base[sizes[i] - 1], 0xa5);
        etok_hugemem_free(&h);
        assert_null(h.base);
        assert_int_equal(h.mapped, 0);
    }
    etok_hugemem h;
    assert_int_equal(etok_hugemem_alloc(&h, 0), -1);
    assert_null(h.base);
    assert_int_equal(etok_hugemem_alloc(&h, SIZE_MAX), -1); /* the size with its slack would wrap */
    assert_null(h.base);
    assert_int_equal(etok_hugemem_alloc(&h, SIZE_MAX - ETOK_HUGE_PAGE), -1);
    assert_null(h.base);
    assert_float_equal(etok_hugemem_huge_bytes(&h), 0, 0); /* empty */
    etok_hugemem_free(&h);                             /* harmless */
}

/* Asked for unless ETOK_HUGEPAGES is "0"; whatever was granted is whole huge pages within the
 * buffer (this machine's kernel may grant none). */
static void test_asked_and_granted(void **state) {
    (void)state;
    const size_t n = 6 * ETOK_HUGE_PAGE;
    unsetenv(ETOK_HUGEMEM_ENV);
    assert_true(etok_hugemem_wanted());
    setenv(ETOK_HUGEMEM_ENV, "1", 1);
    assert_true(etok_hugemem_wanted());
    etok_hugemem h;
    assert_int_equal(etok_hugemem_alloc(&h, n), 0);
    char mode[32];
    etok_thp_mode(mode, sizeof mode);
    if (strcmp(mode, "never") != 0 && strcmp(mode, "unknown") != 0) assert_int_equal(h.huge, 1);
    memset(h.base, 1, n);
    const double hb = etok_hugemem_huge_bytes(&h);
    assert_true(hb >= 0 && hb <= (double)n);
    assert_float_equal(fmod(hb, (double)ETOK_HUGE_PAGE), 0, 0);
    printf("THP mode %s: %.0f of %zu bytes in huge pages\n", mode, hb, n);
    etok_hugemem_free(&h);

    setenv(ETOK_HUGEMEM_ENV, "0", 1);
    assert_false(etok_hugemem_wanted());
    assert_int_equal(etok_hugemem_alloc(&h, n), 0);
    assert_int_equal(h.huge, 0);
    memset(h.base, 1, n);
    if (strcmp(mode, "always") != 0) assert_float_equal(etok_hugemem_huge_bytes(&h), 0, 0);
    etok_hugemem_free(&h);
    unsetenv(ETOK_HUGEMEM_ENV);
}

/* Only unset, "0" and "1" pass; anything else is refused with the variable named. */
static void test_env_check(void **state) {
    (void)state;
    char err[256] = "";
    const char *good[] = {"0", "1"}, *bad[] = {"yes", "", "2", " 1", "on"};
    unsetenv(ETOK_HUGEMEM_ENV);
    assert_int_equal(etok_hugemem_env_check(err, sizeof err), 0);
    for (size_t i = 0; i < 2; i++) {
        setenv(ETOK_HUGEMEM_ENV, good[i], 1);
        assert_int_equal(etok_hugemem_env_check(err, sizeof err), 0);
    }
    for (size_t i = 0; i < 5; i++) {
        setenv(ETOK_HUGEMEM_ENV, bad[i], 1);
        assert_int_equal(etok_hugemem_env_check(err, sizeof err), -1);
        char want[64];
        snprintf(want, sizeof want, "ETOK_HUGEPAGES='%s': expected 0", bad[i]);
        if (!strstr(err, want)) fail_msg("'%s' does not say %s", err, want);
    }
    unsetenv(ETOK_HUGEMEM_ENV);
}

static FILE *text(const char *s) {
    FILE *f = tmpfile();
    assert_non_null(f);
    fputs(s, f);
    rewind(f);
    return f;
}

static void test_smaps_reader(void **state) {
    (void)state;
    static const char smaps[] =
        "55d0a0000000-55d0a0021000 r--p 00000000 fe:01 1234    /usr/bin/etok\n"
        "Size:                132 kB\n"
        "AnonHugePages:         0 kB\n"
        "7f0000000000-7f0000a00000 rw-p 00000000 00:00 0 \n"
        "Size:              10240 kB\n"
        "Rss:               10240 kB\n"
        "AnonHugePages:      8192 kB\n"
        "THPeligible:    1\n"
        "7f0000a00000-7f0000a01000 ---p 00000000 00:00 0 \n"
        "Size:                  4 kB\n"
        "7fff00000000-7fff00021000 rw-p 00000000 00:00 0                          [stack]\n"
        "AnonHugePages:         0 kB\n";
    FILE *f = text(smaps);
    assert_float_equal(etok_smaps_anon_huge(f, 0x7f0000000000u), 8192.0 * 1024, 0); /* the mapping's start */
    rewind(f);
    assert_float_equal(etok_smaps_anon_huge(f, 0x7f00009fffffu), 8192.0 * 1024, 0); /* its last byte */
    rewind(f);
    assert_float_equal(etok_smaps_anon_huge(f, 0x55d0a0000100u), 0, 0);
    rewind(f);
    assert_float_equal(etok_smaps_anon_huge(f, 0x7f0000a00000u), -1, 0); /* the guard: no such field */
    rewind(f);
    assert_float_equal(etok_smaps_anon_huge(f, 0x1000u), -1, 0); /* no mapping holds it */
    fclose(f);
    f = text("garbage\n-\n\n");
    assert_float_equal(etok_smaps_anon_huge(f, 0x1000u), -1, 0);
    fclose(f);
}

/* The THP mode from a fixture sysfs tree (ETOK_SYSFS_ROOT), written with etok's own mkdir -p
 * and file writer. */
static void test_thp_mode(void **state) {
    (void)state;
    char dir[] = "/tmp/etok-thp-XXXXXX", thp[256], path[300], mode[32];
    etok_err err = {{0}, 0};
    assert_non_null(mkdtemp(dir));
    setenv("ETOK_SYSFS_ROOT", dir, 1);
    assert_string_equal(etok_thp_mode(mode, sizeof mode), "unknown"); /* no such file */
    snprintf(thp, sizeof thp, "%s/kernel/mm/transparent_hugepage", dir);
    assert_int_equal(etok_mkdirs(thp, &err), 0);
    snprintf(path, sizeof path, "%s/enabled", thp);
    static const struct {
        const char *text, *mode;
    } cases[] = {{"always [madvise] never\n", "madvise"},
                 {"[always] madvise never\n", "always"},
                 {"always madvise [never]\n", "never"},
                 {"always madvise never\n", "unknown"}}; /* no bracket */
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(etok_write_file_atomic(path, cases[i].text, strlen(cases[i].text), &err), 0);
        assert_string_equal(etok_thp_mode(mode, sizeof mode), cases[i].mode);
    }
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
    unsetenv("ETOK_SYSFS_ROOT");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_alloc_aligned_zeroed_writable),
        cmocka_unit_test(test_asked_and_granted),
        cmocka_unit_test(test_env_check),
        cmocka_unit_test(test_smaps_reader),
        cmocka_unit_test(test_thp_mode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
