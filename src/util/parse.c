/* parse.c — strict number parsing and range checks for every value that enters from outside
 * (include/etok/parse.h). strtol/strtod alone accept leading spaces, "0x1f", "inf", "nan",
 * and saturate on overflow; these helpers accept only a whole decimal number and say what was
 * wrong with the text, naming the flag or field. Owns no state. */
#include "etok/parse.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Printable excerpt of user text for a message (at most 40 bytes, control bytes as '?'). */
static const char *shown(const char *s, char *buf, size_t n) {
    size_t k = 0;
    for (; s[k] && k + 4 < n && k < 40; k++) buf[k] = (unsigned char)s[k] < 0x20 || s[k] == 0x7f ? '?' : s[k];
    buf[k] = '\0';
    if (s[k] && k + 4 <= n) snprintf(buf + k, n - k, "...");
    return buf;
}

/* s starts, after an optional sign, with a decimal digit (or ".digit" when frac). */
static int starts_decimal(const char *s, int allow_minus, int frac) {
    if (*s == '-' ? allow_minus : *s == '+') s++;
    if (isdigit((unsigned char)s[0])) return !(s[0] == '0' && (s[1] == 'x' || s[1] == 'X'));
    return frac && s[0] == '.' && isdigit((unsigned char)s[1]);
}

const char *etok_range_text(etok_range r, char *buf, size_t n) {
    if (r.integer) snprintf(buf, n, "a whole number in %.15g..%.15g", r.lo_open ? r.lo + 1 : r.lo, r.hi_open ? r.hi - 1 : r.hi);
    else if (isinf(r.hi)) snprintf(buf, n, "a number %s %.15g", r.lo_open ? ">" : ">=", r.lo);
    else snprintf(buf, n, "a number in %c%.15g, %.15g%c", r.lo_open ? '(' : '[', r.lo, r.hi, r.hi_open ? ')' : ']');
    return buf;
}

int etok_range_check(const char *what, double v, etok_range r, etok_err *err) {
    char rt[96];
    int ok = isfinite(v) && (r.lo_open ? v > r.lo : v >= r.lo) && (r.hi_open ? v < r.hi : v <= r.hi) &&
             (!r.integer || v == floor(v));
    if (ok) return 0;
    return etok_errc(err, ETOK_EXIT_USAGE, "%s: %.17g is out of range (expected %s)", what, v, etok_range_text(r, rt, sizeof rt));
}

int etok_parse_i64(const char *what, const char *s, long long lo, long long hi, long long *out, etok_err *err) {
    char sb[48];
    if (!s || !starts_decimal(s, 1, 0))
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected an integer in %lld..%lld", what, s ? shown(s, sb, sizeof sb) : "",
                         lo, hi);
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (*end)
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected an integer in %lld..%lld", what, shown(s, sb, sizeof sb), lo, hi);
    if (errno == ERANGE || v < lo || v > hi)
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': out of range (expected an integer in %lld..%lld)", what,
                         shown(s, sb, sizeof sb), lo, hi);
    *out = v;
    return 0;
}

int etok_parse_u64(const char *what, const char *s, unsigned long long hi, unsigned long long *out, etok_err *err) {
    char sb[48];
    /* strtoull would take "-1" as 2^64 - 1: no sign at all here. */
    if (!s || !starts_decimal(s, 0, 0) || *s == '+')
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected an integer in 0..%llu", what, s ? shown(s, sb, sizeof sb) : "", hi);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end) return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected an integer in 0..%llu", what, shown(s, sb, sizeof sb), hi);
    if (errno == ERANGE || v > hi)
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': out of range (expected an integer in 0..%llu)", what,
                         shown(s, sb, sizeof sb), hi);
    *out = v;
    return 0;
}

int etok_parse_int(const char *what, const char *s, int lo, int hi, int *out, etok_err *err) {
    long long v = 0;
    if (etok_parse_i64(what, s, lo, hi, &v, err)) return -1;
    *out = (int)v;
    return 0;
}

int etok_parse_double_prefix(const char *what, const char *s, double *out, const char **end, etok_err *err) {
    char sb[48];
    if (!s || !starts_decimal(s, 1, 1))
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected a decimal number", what, s ? shown(s, sb, sizeof sb) : "");
    char *e;
    errno = 0;
    double v = strtod(s, &e);
    if (errno == ERANGE && (v == HUGE_VAL || v == -HUGE_VAL))
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': number too large", what, shown(s, sb, sizeof sb));
    if (!isfinite(v)) return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected a finite number", what, shown(s, sb, sizeof sb));
    *out = v;
    *end = e;
    return 0;
}

int etok_parse_double(const char *what, const char *s, etok_range r, double *out, etok_err *err) {
    char sb[48], rt[96];
    double v = 0;
    const char *end = NULL;
    if (etok_parse_double_prefix(what, s, &v, &end, err) || *end) {
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': expected %s", what, s ? shown(s, sb, sizeof sb) : "",
                         etok_range_text(r, rt, sizeof rt));
    }
    if (etok_range_check(what, v, r, NULL))
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': out of range (expected %s)", what, shown(s, sb, sizeof sb),
                         etok_range_text(r, rt, sizeof rt));
    *out = v;
    return 0;
}
