/* parse.h — strict parsing of numbers that come from outside (command-line flags, small text
 * files, levers, sweep specs) and the range checks shared by every place a value can enter.
 *
 * Strict means: the whole string is the number (no leading/trailing space, no empty string),
 * decimal only (no "0x", no octal), no "inf"/"nan", and no silent saturation: a value that
 * overflows the type is an error, never LONG_MAX or 9.22e18. Each failure fills err with a
 * one-line message naming `what` (a flag like "--port" or a field like "hardware.count") and
 * the offending text, and the exit code ETOK_EXIT_USAGE; callers reading a file set
 * err->exit_code = ETOK_EXIT_INPUT (etok_parse_* never guess where the text came from).
 *
 * Physical limits that several inputs share (a PUE from --pue, a record or a scenario) are
 * defined once here so every entry point applies the same range. */
#ifndef ETOK_PARSE_H
#define ETOK_PARSE_H

#include "etok/util.h"

/* A closed or half-open interval [lo, hi] / (lo, hi]; integer: the value must be whole. */
typedef struct {
    double lo, hi;
    unsigned char lo_open, hi_open; /* 1: the bound itself is excluded */
    unsigned char integer;          /* 1: a whole number */
} etok_range;

#define ETOK_RANGE(lo, hi) ((etok_range){(lo), (hi), 0, 0, 0})
#define ETOK_RANGE_POS(hi) ((etok_range){0, (hi), 1, 0, 0}) /* (0, hi] */
#define ETOK_RANGE_INT(lo, hi) ((etok_range){(lo), (hi), 0, 0, 1})

/* Limits shared by the CLI, the run record loader and the scenario loader. */
#define ETOK_PUE_MIN 1.0
#define ETOK_PUE_MAX 10.0
#define ETOK_PRICE_PER_KWH_MAX 1e6
/* The most power any single trace, device or facility may report: 10 GW (no data centre
 * draws more; a larger figure is a unit error or corruption). */
#define ETOK_POWER_MAX_W 1e10
/* A counter reading never exceeds a 64-bit register (2^64 raw units). */
#define ETOK_COUNTER_MAX_RAW 18446744073709551616.0

/* Whole numbers. Base 10, optional leading '-' (and '+'); lo..hi inclusive. */
int etok_parse_i64(const char *what, const char *s, long long lo, long long hi, long long *out, etok_err *err);
int etok_parse_u64(const char *what, const char *s, unsigned long long hi, unsigned long long *out, etok_err *err);
/* Convenience for int-sized options (lo..hi within int). */
int etok_parse_int(const char *what, const char *s, int lo, int hi, int *out, etok_err *err);

/* A finite decimal number ("1.5", "-2", "3e7") in range r. */
int etok_parse_double(const char *what, const char *s, etok_range r, double *out, etok_err *err);
/* The number at the start of s (strict about what it accepts: decimal, finite, no leading
 * space); *end points past it, so callers can read a unit or a separator after it. Returns
 * 0, or -1 with err set when s does not start with a number or it overflows. */
int etok_parse_double_prefix(const char *what, const char *s, double *out, const char **end, etok_err *err);

/* Is v (already a number) finite and inside r? -1 with "WHAT: V is out of range ..." set. */
int etok_range_check(const char *what, double v, etok_range r, etok_err *err);
/* "[1, 1e+07]", "(0, 1]", "whole number in 1..10000000" into buf, for messages and docs. */
const char *etok_range_text(etok_range r, char *buf, size_t n);

#endif
