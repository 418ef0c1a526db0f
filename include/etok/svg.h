/* svg.h — a small, reusable SVG plotting module (render stage: it draws what it is given and
 * computes no metric). Two figure kinds:
 *
 *   - line charts (etok_svg_chart): several named series on linear or log axes with "nice"
 *     ticks, axis labels with units, a legend, shaded x-ranges (binding regions, phases),
 *     labelled vertical marker lines, step/CDF series, and an optional secondary y axis;
 *   - horizontal bar charts (etok_svg_bars), with optional error bars (e.g. 95% CIs).
 *
 * Every function returns a malloc'd, self-contained SVG document (free() it) or NULL on
 * out-of-memory. Text is XML-escaped. Figures are sized for 800 px wide by default and use
 * a colour-blind-safe palette (Okabe-Ito). The builder copies all data it is given, so the
 * caller may free its arrays right after adding them. */
#ifndef ETOK_SVG_H
#define ETOK_SVG_H

#include <stddef.h>

typedef enum { ETOK_SVG_LINEAR = 0, ETOK_SVG_LOG = 1 } etok_svg_scale;

typedef enum {
    ETOK_SVG_LEGEND_TOP_RIGHT = 0,
    ETOK_SVG_LEGEND_TOP_LEFT,
    ETOK_SVG_LEGEND_BOTTOM_RIGHT,
    ETOK_SVG_LEGEND_BOTTOM_LEFT,
    ETOK_SVG_LEGEND_NONE,
    ETOK_SVG_LEGEND_BELOW       /* under the x axis, in columns: never hides data */
} etok_svg_legend_pos;

/* Per-series style. Zero-initialised = solid line in the next palette colour, left y axis. */
typedef struct {
    const char *color;   /* CSS colour ("#0072B2"); NULL = next palette colour */
    int dashed;          /* 1 = dashed line, 2 = dotted line */
    int step;            /* draw as a step function (post-step: value holds until next x) — CDFs */
    int markers;         /* draw a small circle at each point */
    int y2;              /* plot against the secondary (right) y axis */
    double width_px;     /* stroke width; 0 = 2 */
    int no_line;         /* scatter: markers only (implies markers) */
    int hollow;          /* markers drawn as rings (white fill, coloured edge) */
    double marker_px;    /* marker radius; 0 = 3 */
    const double *y_lo, *y_hi; /* per-point vertical whiskers (e.g. 95% CI); NULL = none; */
    const double *x_lo, *x_hi; /* horizontal ones; a NAN end skips that point's whisker */
    const char *const *labels; /* per-point text beside each marker; NULL = none */
} etok_svg_style;

typedef struct etok_svg_chart etok_svg_chart;

/* A new chart; width/height in px (<= 0: 800 x 480). title may be NULL. */
etok_svg_chart *etok_svg_chart_new(const char *title, int width_px, int height_px);
void etok_svg_chart_free(etok_svg_chart *c);

/* Axes. label should carry the unit, e.g. "Facility power (W)". min/max: fixed range when
 * min < max, else automatic from the data (and bands/markers). */
void etok_svg_chart_x_axis(etok_svg_chart *c, const char *label, etok_svg_scale scale, double min, double max);
void etok_svg_chart_y_axis(etok_svg_chart *c, const char *label, etok_svg_scale scale, double min, double max);
/* Enables the secondary y axis (right side) for series with style.y2 set. */
void etok_svg_chart_y2_axis(etok_svg_chart *c, const char *label, etok_svg_scale scale, double min, double max);
void etok_svg_chart_legend(etok_svg_chart *c, etok_svg_legend_pos pos);
/* A one-line note under the plot (e.g. "model estimate, not a measurement"). */
void etok_svg_chart_caption(etok_svg_chart *c, const char *caption);

/* Adds a series of n points (x[i], y[i]). Non-finite points (and <= 0 on a log axis) are
 * skipped and break the line. style may be NULL. Returns 0, or -1 on OOM. */
int etok_svg_chart_add_series(etok_svg_chart *c, const char *name, const double *x, const double *y,
                              size_t n, const etok_svg_style *style);
/* Shades the x-range [x0, x1] across the plot, with an optional label at its top.
 * color NULL = a light tint of the palette colour at `palette_index`. */
int etok_svg_chart_add_band(etok_svg_chart *c, double x0, double x1, const char *label, const char *color);
/* A vertical dashed marker line at x with an optional label. color NULL = dark grey. */
int etok_svg_chart_add_vline(etok_svg_chart *c, double x, const char *label, const char *color);
/* A horizontal reference line on the left y axis. */
int etok_svg_chart_add_hline(etok_svg_chart *c, double y, const char *label, const char *color);

/* Renders the chart. Returns malloc'd SVG text, or NULL on OOM. */
char *etok_svg_chart_render(const etok_svg_chart *c);

/* One horizontal bar. lo/hi: an error bar when lo <= value <= hi and lo < hi (set both to 0
 * for none). color NULL = palette by index. note: a short text printed after the value
 * (e.g. "±3%", "n=40"), may be NULL. */
typedef struct {
    const char *label;
    double value;
    double lo, hi;
    const char *color;
    const char *note;
} etok_svg_bar;

/* Horizontal bar chart: one bar per row, value axis along x (label with unit). scale LOG
 * requires positive values. ref_x: a vertical reference line (e.g. ratio 1.0) when finite;
 * pass NAN for none. width_px <= 0: 800; the height follows the number of bars. */
char *etok_svg_bars(const char *title, const char *value_label, etok_svg_scale scale,
                    const etok_svg_bar *bars, size_t n, double ref_x, int width_px);

/* The palette colour i (wraps around). */
const char *etok_svg_palette(size_t i);

/* Nice tick positions for [lo, hi] (linear: 1/2/5 x 10^k steps; log: decades, or 1-2-5
 * within decades when the range is short). Writes up to max_ticks values into out and
 * returns the count. Exposed for tests and for renderers that draw their own axes. */
size_t etok_svg_ticks(double lo, double hi, etok_svg_scale scale, double *out, size_t max_ticks);

/* Formats a tick value compactly with SI prefixes ("2.5k", "1M", "0.01", "3.35T").
 * Writes into buf (size n) and returns buf. */
char *etok_svg_format_si(double v, char *buf, size_t n);

/* XML-escapes s (&, <, >, ", ') into a malloc'd string. NULL -> "". */
char *etok_svg_escape(const char *s);

#endif
