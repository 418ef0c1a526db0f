/* test_parse.c — the strict number parsers (src/util/parse.c): whole-string decimal numbers,
 * no spaces, hex, inf/nan or signs where none belong, overflow refused (never saturated),
 * ranges with open and closed ends, messages naming the flag and the text. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "etok/parse.h"

static void integers(void **state) {
    (void)state;
    long long v = 0;
    etok_err err = {0};
    assert_int_equal(etok_parse_i64("--n", "42", 0, 100, &v, &err), 0);
    assert_int_equal(v, 42);
    assert_int_equal(etok_parse_i64("--n", "-5", -10, 100, &v, &err), 0);
    assert_int_equal(v, -5);
    const char *bad[] = {"", " 5", "5 ", "0x10", "1e3", "5.0", "abc", "--5", "-", "nan", "inf", "5abc"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (etok_parse_i64("--n", bad[i], -100, 100, &v, &err) == 0) fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(err.msg, "--n"));
    }
    /* out of range and overflow: refused, not clamped */
    assert_int_equal(etok_parse_i64("--requests", "-5", 1, 1000000, &v, &err), -1);
    assert_non_null(strstr(err.msg, "--requests '-5': out of range"));
    assert_int_equal(etok_parse_i64("--n", "99999999999999999999999", 0, 9000000000000000000LL, &v, &err), -1);
    assert_non_null(strstr(err.msg, "out of range"));
    assert_int_equal(etok_parse_i64("--n", "9223372036854775807", 0, 9223372036854775807LL, &v, &err), 0);
    int port = 0;
    assert_int_equal(etok_parse_int("--port", "70000", 0, 65535, &port, &err), -1);
    assert_non_null(strstr(err.msg, "--port '70000'"));
    assert_int_equal(etok_parse_int("--port", "65535", 0, 65535, &port, &err), 0);
    assert_int_equal(port, 65535);
    unsigned long long u = 0;
    assert_int_equal(etok_parse_u64("count", "-1", 100, &u, &err), -1); /* strtoull would say 2^64-1 */
    assert_int_equal(etok_parse_u64("count", "18446744073709551616", ~0ULL, &u, &err), -1);
    assert_int_equal(etok_parse_u64("count", "18446744073709551615", ~0ULL, &u, &err), 0);
    assert_true(u == ~0ULL);
    /* NULL err is allowed; long text is shortened in messages */
    assert_int_equal(etok_parse_i64("--n", "x", 0, 1, &v, NULL), -1);
    char longtext[200];
    memset(longtext, '7', sizeof longtext - 1);
    longtext[sizeof longtext - 1] = '\0';
    assert_int_equal(etok_parse_i64("--n", longtext, 0, 1, &v, &err), -1);
    assert_true(strlen(err.msg) < 160);
}

static void reals(void **state) {
    (void)state;
    double d = 0;
    etok_err err = {0};
    assert_int_equal(etok_parse_double("--rate", "2.5", ETOK_RANGE_POS(1e4), &d, &err), 0);
    assert_true(d == 2.5);
    assert_int_equal(etok_parse_double("--x", ".5", ETOK_RANGE(0, 1), &d, &err), 0);
    assert_int_equal(etok_parse_double("--x", "-1e-3", ETOK_RANGE(-1, 1), &d, &err), 0);
    const char *bad[] = {"nan", "NaN", "inf", "-inf", "infinity", "0x1p3", " 1", "1 ", "", "1,5", "1e", "e5", ".", "1e999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (etok_parse_double("--rate", bad[i], ETOK_RANGE(-INFINITY, INFINITY), &d, &err) == 0) fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(err.msg, "--rate"));
    }
    /* open and closed ends */
    assert_int_equal(etok_parse_double("--rate", "0", ETOK_RANGE_POS(1000), &d, &err), -1);
    assert_non_null(strstr(err.msg, "(0, 1000]"));
    assert_int_equal(etok_parse_double("--rate", "1000", ETOK_RANGE_POS(1000), &d, &err), 0);
    assert_int_equal(etok_parse_double("--rate", "1000.0001", ETOK_RANGE_POS(1000), &d, &err), -1);
    assert_int_equal(etok_parse_double("--pue", "1", ETOK_RANGE(ETOK_PUE_MIN, ETOK_PUE_MAX), &d, &err), 0);
    assert_int_equal(etok_parse_double("--pue", "0.99", ETOK_RANGE(ETOK_PUE_MIN, ETOK_PUE_MAX), &d, &err), -1);
    /* integer ranges through the real parser */
    assert_int_equal(etok_parse_double("count", "3.5", ETOK_RANGE_INT(1, 10), &d, &err), -1);
    assert_int_equal(etok_parse_double("count", "3", ETOK_RANGE_INT(1, 10), &d, &err), 0);
    /* prefix form leaves the unit */
    const char *end = NULL;
    assert_int_equal(etok_parse_double_prefix("f", "700 W", &d, &end, &err), 0);
    assert_true(d == 700 && strcmp(end, " W") == 0);
    assert_int_equal(etok_parse_double_prefix("f", "0x10 W", &d, &end, &err), -1);
}

static void range_checks(void **state) {
    (void)state;
    etok_err err = {0};
    assert_int_equal(etok_range_check("f", NAN, ETOK_RANGE(-INFINITY, INFINITY), &err), -1);
    assert_int_equal(etok_range_check("f", INFINITY, ETOK_RANGE(0, INFINITY), &err), -1);
    assert_int_equal(etok_range_check("hardware.count", 1e9, ETOK_RANGE_INT(1, 1e7), &err), -1);
    assert_non_null(strstr(err.msg, "hardware.count: 1000000000 is out of range (expected a whole number in 1..10000000)"));
    assert_int_equal(etok_range_check("f", 0.5, ETOK_RANGE(0, 1), &err), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(integers),
        cmocka_unit_test(reals),
        cmocka_unit_test(range_checks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
