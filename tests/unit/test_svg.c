/* test_svg.c — the SVG plotting module: ticks, SI labels, escaping, well-formed output. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "etok/svg.h"

static size_t count(const char *hay, const char *needle) {
    size_t n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

static void linear_ticks_are_nice(void **state) {
    (void)state;
    double t[32];
    size_t n = etok_svg_ticks(0, 10, ETOK_SVG_LINEAR, t, 32);
    /* range 10 / 6 = 1.67 -> step 2: 0 2 4 6 8 10 */
    assert_int_equal(n, 6);
    for (size_t i = 0; i < n; i++) assert_true(fabs(t[i] - 2.0 * (double)i) < 1e-12);
    n = etok_svg_ticks(0.13, 0.91, ETOK_SVG_LINEAR, t, 32);
    /* 0.78 / 6 = 0.13 -> step 0.2: 0.2 0.4 0.6 0.8 */
    assert_int_equal(n, 4);
    assert_true(fabs(t[0] - 0.2) < 1e-12 && fabs(t[3] - 0.8) < 1e-12);
}

static void log_ticks_are_decades(void **state) {
    (void)state;
    double t[32];
    size_t n = etok_svg_ticks(1e3, 1e7, ETOK_SVG_LOG, t, 32);
    assert_int_equal(n, 5);
    assert_true(t[0] == 1e3 && fabs(t[4] - 1e7) < 1e-3);
    /* Short range: 1-2-5 steps inside the decade. */
    n = etok_svg_ticks(1.5, 9, ETOK_SVG_LOG, t, 32);
    assert_int_equal(n, 2); /* 2, 5 */
    assert_true(t[0] == 2 && t[1] == 5);
    /* Log axis with a non-positive bound has no ticks. */
    assert_int_equal(etok_svg_ticks(0, 10, ETOK_SVG_LOG, t, 32), 0);
}

static void si_format(void **state) {
    (void)state;
    char b[32];
    assert_string_equal(etok_svg_format_si(2.5e3, b, sizeof b), "2.5k");
    assert_string_equal(etok_svg_format_si(3.35e12, b, sizeof b), "3.35T");
    assert_string_equal(etok_svg_format_si(1e6, b, sizeof b), "1M");
    assert_string_equal(etok_svg_format_si(0.25, b, sizeof b), "0.25");
    assert_string_equal(etok_svg_format_si(0, b, sizeof b), "0");
    assert_string_equal(etok_svg_format_si(-2e3, b, sizeof b), "-2k");
}

static void escaping(void **state) {
    (void)state;
    char *e = etok_svg_escape("a<b & \"c\" 'd'>");
    assert_string_equal(e, "a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;");
    free(e);
    etok_svg_chart *c = etok_svg_chart_new("Ceilings <&> \"test\"", 800, 480);
    double x[] = {1, 2, 3}, y[] = {1, 4, 9};
    assert_int_equal(etok_svg_chart_add_series(c, "a<b", x, y, 3, NULL), 0);
    char *svg = etok_svg_chart_render(c);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "Ceilings &lt;&amp;&gt; &quot;test&quot;"));
    assert_non_null(strstr(svg, "a&lt;b"));
    assert_null(strstr(svg, "a<b"));
    free(svg);
    etok_svg_chart_free(c);
}

static void chart_has_every_element(void **state) {
    (void)state;
    etok_svg_chart *c = etok_svg_chart_new("Token rate vs facility power", 800, 480);
    etok_svg_chart_x_axis(c, "Facility power (W)", ETOK_SVG_LOG, 0, 0);
    etok_svg_chart_y_axis(c, "Token rate (token/s)", ETOK_SVG_LOG, 0, 0);
    etok_svg_chart_y2_axis(c, "Energy per token (J/token)", ETOK_SVG_LINEAR, 0, 0);
    double x[50], y1[50], y2[50], y3[50];
    for (int i = 0; i < 50; i++) {
        x[i] = pow(10, 3 + 4.0 * i / 49);
        y1[i] = 2e4;
        y2[i] = x[i] / 10;
        y3[i] = 1.0 + i * 0.01;
    }
    etok_svg_style dashed = {.dashed = 1};
    etok_svg_style right = {.y2 = 1, .dashed = 2};
    assert_int_equal(etok_svg_chart_add_series(c, "compute", x, y1, 50, NULL), 0);
    assert_int_equal(etok_svg_chart_add_series(c, "delivered power", x, y2, 50, &dashed), 0);
    assert_int_equal(etok_svg_chart_add_series(c, "J/token", x, y3, 50, &right), 0);
    assert_int_equal(etok_svg_chart_add_band(c, 1e3, 2e5, "delivered_power", NULL), 0);
    assert_int_equal(etok_svg_chart_add_band(c, 2e5, 1e7, "compute", NULL), 0);
    assert_int_equal(etok_svg_chart_add_vline(c, 2e5, "crossover 200 kW", NULL), 0);
    etok_svg_chart_caption(c, "model estimate (etok tpf), not a measurement");
    char *svg = etok_svg_chart_render(c);
    assert_non_null(svg);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\""));
    assert_non_null(strstr(svg, "</svg>"));
    assert_int_equal(count(svg, "<path d=\"M"), 3);          /* one path per series */
    assert_non_null(strstr(svg, "Facility power (W)"));
    assert_non_null(strstr(svg, ">1M</text>"));              /* decade tick label with SI prefix */
    assert_non_null(strstr(svg, "crossover 200 kW"));
    assert_non_null(strstr(svg, "fill-opacity=\"0.10\""));   /* shaded band */
    assert_int_equal(count(svg, "<svg"), 1);
    /* Balanced elements: every <text> is closed. */
    assert_int_equal(count(svg, "<text"), count(svg, "</text>"));
    FILE *f = getenv("ETOK_SVG_DEMO") ? fopen(getenv("ETOK_SVG_DEMO"), "w") : NULL;
    if (f) { fputs(svg, f); fclose(f); }
    free(svg);
    etok_svg_chart_free(c);
}

static void gaps_break_lines(void **state) {
    (void)state;
    etok_svg_chart *c = etok_svg_chart_new(NULL, 0, 0);
    etok_svg_chart_y_axis(c, "y", ETOK_SVG_LOG, 0, 0);
    double x[] = {1, 2, 3, 4, 5}, y[] = {1, 2, NAN, 4, -1};
    etok_svg_chart_add_series(c, "s", x, y, 5, NULL);
    char *svg = etok_svg_chart_render(c);
    /* The NaN breaks the line: two sub-paths (M ... M ...); the negative y is skipped on log. */
    const char *p = strstr(svg, "<path d=\"");
    assert_non_null(p);
    const char *end = strchr(p + 9, '"');
    size_t moves = 0;
    for (const char *q = p + 9; q < end; q++) moves += *q == 'M';
    assert_int_equal(moves, 2);
    free(svg);
    etok_svg_chart_free(c);
}

static void step_cdf_and_scatter(void **state) {
    (void)state;
    etok_svg_chart *c = etok_svg_chart_new("TTFT distribution", 0, 0);
    etok_svg_chart_x_axis(c, "TTFT (s)", ETOK_SVG_LINEAR, 0, 0);
    etok_svg_chart_y_axis(c, "Fraction of requests (1)", ETOK_SVG_LINEAR, 0, 1);
    double x[] = {0.1, 0.2, 0.35, 0.5}, y[] = {0.25, 0.5, 0.75, 1.0};
    etok_svg_style step = {.step = 1};
    etok_svg_style dots = {.no_line = 1};
    assert_int_equal(etok_svg_chart_add_series(c, "cdf", x, y, 4, &step), 0);
    assert_int_equal(etok_svg_chart_add_series(c, "samples", x, y, 4, &dots), 0);
    etok_svg_chart_legend(c, ETOK_SVG_LEGEND_BELOW);
    char *svg = etok_svg_chart_render(c);
    assert_non_null(svg);
    /* a step path uses H/V moves; the scatter series has no path, only circles */
    assert_int_equal(count(svg, "<path d=\"M"), 1);
    assert_non_null(strstr(svg, " V"));
    assert_int_equal(count(svg, "<circle"), 4 + 1); /* 4 points + legend swatch */
    /* a legend below the plot makes the figure taller than asked */
    assert_non_null(strstr(svg, "height=\"508\""));
    FILE *f = getenv("ETOK_SVG_DEMO_CDF") ? fopen(getenv("ETOK_SVG_DEMO_CDF"), "w") : NULL;
    if (f) { fputs(svg, f); fclose(f); }
    free(svg);
    etok_svg_chart_free(c);
}

static void bars_with_ci(void **state) {
    (void)state;
    etok_svg_bar bars[] = {
        {"fp8 vs bf16", 0.62, 0.58, 0.66, NULL, "95% CI"},
        {"kv-int8 vs bf16", 0.91, 0.85, 0.97, NULL, NULL},
        {"batch=64 vs batch=1", 0.08, 0, 0, NULL, NULL},
    };
    char *svg = etok_svg_bars("Energy per token ratio", "ratio (1)", ETOK_SVG_LINEAR, bars, 3, 1.0, 800);
    assert_non_null(svg);
    assert_int_equal(count(svg, "<rect"), 2 + 3 + 0); /* background, frame, 3 bars */
    assert_int_equal(count(svg, "stroke-width=\"1.4\""), 2); /* two error bars */
    assert_non_null(strstr(svg, "kv-int8 vs bf16"));
    FILE *f = getenv("ETOK_SVG_DEMO_BARS") ? fopen(getenv("ETOK_SVG_DEMO_BARS"), "w") : NULL;
    if (f) { fputs(svg, f); fclose(f); }
    free(svg);
}

/* hollow scatter markers and CI whiskers (etok sweep): drawn, counted, and they widen the range */
static void hollow_markers_and_whiskers(void **state) {
    (void)state;
    etok_svg_chart *c = etok_svg_chart_new("w", 400, 300);
    double x[] = {1, 2, 3}, y[] = {10, 20, 30}, lo[] = {5, NAN, 25}, hi[] = {15, 22, 100};
    const char *lab[] = {"a<1", NULL, "c"};
    etok_svg_style st = {.no_line = 1, .hollow = 1, .marker_px = 5, .y_lo = lo, .y_hi = hi, .labels = lab};
    assert_int_equal(etok_svg_chart_add_series(c, "pts", x, y, 3, &st), 0);
    char *svg = etok_svg_chart_render(c);
    assert_non_null(svg);
    size_t hollow = 0, whisk = 0;
    for (const char *p = svg; (p = strstr(p, "class=\"hollow\"")); p++) hollow++;
    for (const char *p = svg; (p = strstr(p, "class=\"whisker\"")); p++) whisk++;
    assert_int_equal(hollow, 3);
    assert_int_equal(whisk, 2);      /* the NAN low end skips the middle point's whisker */
    assert_non_null(strstr(svg, "r=\"5.0\""));
    assert_non_null(strstr(svg, ">100<")); /* the whisker's top (100) widened the y axis */
    assert_non_null(strstr(svg, ">a&lt;1</text>")); /* labels, escaped; none for a NULL label */
    assert_non_null(strstr(svg, ">c</text>"));
    size_t nl = 0;
    for (const char *p = svg; (p = strstr(p, "class=\"plabel\"")); p++) nl++;
    assert_int_equal(nl, 2);
    free(svg);
    etok_svg_chart_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(linear_ticks_are_nice), cmocka_unit_test(log_ticks_are_decades),
        cmocka_unit_test(si_format),             cmocka_unit_test(escaping),
        cmocka_unit_test(chart_has_every_element), cmocka_unit_test(gaps_break_lines),
        cmocka_unit_test(step_cdf_and_scatter),  cmocka_unit_test(bars_with_ci), cmocka_unit_test(hollow_markers_and_whiskers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
