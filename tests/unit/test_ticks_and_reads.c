/* test_ticks_and_reads.c — two small helpers the mutation pass (tests/mutate) found unpinned:
 * linear axis ticks use the 1-2-5 steps (each step size, and where ticks start and stop),
 * and etok_read_u64 (every sysfs counter read goes through it) refuses what is not a number
 * instead of reading 0. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/svg.h"
#include "etok/util.h"

static void expect_ticks(double lo, double hi, const double *want, size_t n_want) {
    double t[64];
    size_t n = etok_svg_ticks(lo, hi, ETOK_SVG_LINEAR, t, 64);
    if (n != n_want) fail_msg("ticks over [%g, %g]: %zu, want %zu (first %g, second %g)", lo, hi, n, n_want, n ? t[0] : NAN, n > 1 ? t[1] : NAN);
    for (size_t i = 0; i < n; i++)
        if (fabs(t[i] - want[i]) > 1e-9 * (1 + fabs(want[i]))) fail_msg("ticks over [%g, %g]: tick %zu is %g, want %g", lo, hi, i, t[i], want[i]);
}

/* range / 6 rounded up to 1, 2 or 5 x 10^k */
static void linear_steps_are_1_2_5(void **state) {
    (void)state;
    const double five[] = {0, 5, 10, 15, 20, 25, 30};
    expect_ticks(0, 30, five, 7); /* raw step 5 -> 5 */
    const double two[] = {0, 2, 4, 6, 8, 10, 12};
    expect_ticks(0, 12, two, 7); /* raw 2 -> 2 */
    const double fifty[] = {0, 50, 100, 150, 200};
    expect_ticks(0, 200, fifty, 5); /* raw 33.3 -> 50 */
    const double one[] = {3, 4, 5, 6, 7, 8, 9};
    expect_ticks(3, 9, one, 7); /* raw 1 -> 1 */
    const double ten[] = {-20, -10, 0, 10, 20, 30, 40};
    expect_ticks(-20, 40, ten, 7); /* raw 10 -> 10; 0 is exactly 0 */
    const double fifth[] = {0.2, 0.4, 0.6, 0.8, 1.0};
    expect_ticks(0.13, 1.05, fifth, 5); /* raw 0.153 -> 0.2, first tick at or above lo */
}

static void write_file(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static void read_u64_refuses_non_numbers(void **state) {
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "/tmp/etok_read_u64_%d", (int)getpid());
    uint64_t v = 7;
    write_file(path, "123456789012\n");
    assert_int_equal(etok_read_u64(path, &v), 0);
    assert_true(v == 123456789012ull);
    write_file(path, "18446744073709551615\n"); /* the largest counter value */
    assert_int_equal(etok_read_u64(path, &v), 0);
    assert_true(v == UINT64_MAX);
    const char *bad[] = {"abc\n", "\n", "-\n", "x12\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i]);
        v = 7;
        errno = 0;
        if (etok_read_u64(path, &v) != -1) fail_msg("'%s' read as %llu", bad[i], (unsigned long long)v);
        assert_int_equal(errno, EINVAL);
        assert_true(v == 7); /* untouched */
    }
    write_file(path, ""); /* empty: nothing to read */
    assert_int_equal(etok_read_u64(path, &v), -1);
    remove(path);
    assert_int_equal(etok_read_u64(path, &v), -1); /* missing */
    assert_int_equal(errno, ENOENT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_steps_are_1_2_5),
        cmocka_unit_test(read_u64_refuses_non_numbers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
