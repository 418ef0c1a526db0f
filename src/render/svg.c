/* svg.c — the SVG plotting module (see include/etok/svg.h). Owns: chart building, axis
 * ranges and nice ticks, SI tick labels, XML escaping, the drawing itself. Does not own:
 * any metric (callers pass finished numbers), file output (callers write the string). */
#include "etok/svg.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---------- growable string buffer ---------- */

typedef struct {
    char *p;
    size_t n, cap;
    int oom;
} sbuf;

static void sb_vprintf(sbuf *b, const char *fmt, va_list ap) {
    if (b->oom) return;
    for (;;) {
        size_t room = b->cap - b->n;
        va_list aq;
        va_copy(aq, ap);
        int k = b->p ? vsnprintf(b->p + b->n, room, fmt, aq) : -2;
        va_end(aq);
        if (k >= 0 && (size_t)k < room) {
            b->n += (size_t)k;
            return;
        }
        if (k == -1) { b->oom = 1; return; }
        size_t need = b->n + (k > 0 ? (size_t)k : 0) + 1;
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < need) cap *= 2;
        char *np = realloc(b->p, cap);
        if (!np) { b->oom = 1; return; }
        b->p = np;
        b->cap = cap;
    }
}

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    sb_vprintf(b, fmt, ap);
    va_end(ap);
}

/* Appends s XML-escaped. */
static void sb_text(sbuf *b, const char *s) {
    if (!s) return;
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_printf(b, "&amp;"); break;
        case '<': sb_printf(b, "&lt;"); break;
        case '>': sb_printf(b, "&gt;"); break;
        case '"': sb_printf(b, "&quot;"); break;
        case '\'': sb_printf(b, "&apos;"); break;
        default:
            /* Control characters are not allowed in XML 1.0 text: drop them. */
            if ((unsigned char)*s < 0x20 && *s != '\t' && *s != '\n') break;
            sb_printf(b, "%c", *s);
        }
    }
}

static char *sb_finish(sbuf *b) {
    if (b->oom) { free(b->p); return NULL; }
    if (!b->p) return strdup("");
    return b->p;
}

char *etok_svg_escape(const char *s) {
    sbuf b = {0};
    sb_printf(&b, "%s", "");
    sb_text(&b, s ? s : "");
    return sb_finish(&b);
}

/* ---------- palette, numbers, ticks ---------- */

/* Okabe-Ito colour-blind-safe palette (Okabe & Ito 2008), black moved last. */
static const char *const PALETTE[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7",
                                      "#E69F00", "#56B4E9", "#F0E442", "#000000"};
#define N_PALETTE (sizeof PALETTE / sizeof PALETTE[0])

const char *etok_svg_palette(size_t i) { return PALETTE[i % N_PALETTE]; }

static char *dupstr(const char *s) { return s ? strdup(s) : NULL; }

char *etok_svg_format_si(double v, char *buf, size_t n) {
    if (!buf || n == 0) return buf;
    if (!isfinite(v)) { snprintf(buf, n, "%s", isnan(v) ? "n/a" : (v > 0 ? "inf" : "-inf")); return buf; }
    if (v == 0) { snprintf(buf, n, "0"); return buf; }
    static const struct { double f; const char *p; } SI[] = {
        {1e15, "P"}, {1e12, "T"}, {1e9, "G"}, {1e6, "M"}, {1e3, "k"}};
    double a = fabs(v);
    for (size_t i = 0; i < sizeof SI / sizeof SI[0]; i++) {
        if (a >= SI[i].f) {
            snprintf(buf, n, "%.3g%s", v / SI[i].f, SI[i].p);
            return buf;
        }
    }
    if (a >= 1e-3) snprintf(buf, n, "%.3g", v);
    else snprintf(buf, n, "%.2g", v);
    return buf;
}

static double nice_step(double raw) {
    if (!(raw > 0) || !isfinite(raw)) return 1;
    double mag = pow(10, floor(log10(raw)));
    double norm = raw / mag;
    double s = norm <= 1 ? 1 : norm <= 2 ? 2 : norm <= 5 ? 5 : 10;
    return s * mag;
}

static size_t linear_ticks(double lo, double hi, double *out, size_t max) {
    if (!(hi > lo) || max == 0) return 0;
    double step = nice_step((hi - lo) / 6.0);
    size_t k = 0;
    double eps = step * 1e-9;
    for (double t = ceil((lo - eps) / step) * step; t <= hi + eps && k < max; t += step) {
        out[k++] = fabs(t) < eps ? 0 : t;
    }
    return k;
}

size_t etok_svg_ticks(double lo, double hi, etok_svg_scale scale, double *out, size_t max) {
    if (!out || max == 0 || !(hi > lo) || !isfinite(lo) || !isfinite(hi)) return 0;
    if (scale != ETOK_SVG_LOG) return linear_ticks(lo, hi, out, max);
    if (!(lo > 0)) return 0;
    double l0 = log10(lo), l1 = log10(hi);
    int d0 = (int)ceil(l0 - 1e-9), d1 = (int)floor(l1 + 1e-9);
    int ndec = d1 - d0 + 1;
    if (ndec >= 3) {
        int every = 1;
        while ((ndec + every - 1) / every > 8) every++;
        size_t k = 0;
        for (int d = d0; d <= d1 && k < max; d += every) out[k++] = pow(10, d);
        return k;
    }
    /* Short range: 1-2-5 within decades. */
    size_t k = 0;
    static const double M[] = {1, 2, 5};
    for (int d = (int)floor(l0) - 1; d <= (int)ceil(l1) && k < max; d++)
        for (int i = 0; i < 3 && k < max; i++) {
            double t = M[i] * pow(10, d);
            if (t >= lo * (1 - 1e-9) && t <= hi * (1 + 1e-9)) out[k++] = t;
        }
    if (k >= 2) return k;
    return linear_ticks(lo, hi, out, max);
}

/* ---------- the chart ---------- */

typedef struct {
    char *name;
    double *x, *y;
    double *wy[2], *wx[2]; /* whiskers: lo, hi (NULL = none) */
    char **labels;         /* per-point labels (NULL = none) */
    size_t n;
    etok_svg_style st;
    char *color;
} series;

typedef struct {
    double x0, x1;
    char *label, *color;
} band;

typedef struct {
    double v;
    char *label, *color;
} marker;

typedef struct {
    char *label;
    etok_svg_scale scale;
    double min, max;
} axis;

struct etok_svg_chart {
    char *title, *caption;
    int w, h;
    axis x, y, y2;
    int has_y2;
    etok_svg_legend_pos legend;
    series *s;
    size_t ns;
    band *b;
    size_t nb;
    marker *v;
    size_t nv;
    marker *hl;
    size_t nh;
};

etok_svg_chart *etok_svg_chart_new(const char *title, int width_px, int height_px) {
    etok_svg_chart *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->title = dupstr(title);
    c->w = width_px > 0 ? width_px : 800;
    c->h = height_px > 0 ? height_px : 480;
    return c;
}

static void free_marks(marker *m, size_t n) {
    for (size_t i = 0; i < n; i++) { free(m[i].label); free(m[i].color); }
    free(m);
}

void etok_svg_chart_free(etok_svg_chart *c) {
    if (!c) return;
    free(c->title);
    free(c->caption);
    free(c->x.label);
    free(c->y.label);
    free(c->y2.label);
    for (size_t i = 0; i < c->ns; i++) {
        free(c->s[i].name);
        free(c->s[i].x);
        free(c->s[i].y);
        for (int k = 0; k < 2; k++) { free(c->s[i].wy[k]); free(c->s[i].wx[k]); }
        if (c->s[i].labels)
            for (size_t k = 0; k < c->s[i].n; k++) free(c->s[i].labels[k]);
        free(c->s[i].labels);
        free(c->s[i].color);
    }
    free(c->s);
    for (size_t i = 0; i < c->nb; i++) { free(c->b[i].label); free(c->b[i].color); }
    free(c->b);
    free_marks(c->v, c->nv);
    free_marks(c->hl, c->nh);
    free(c);
}

static void set_axis(axis *a, const char *label, etok_svg_scale scale, double min, double max) {
    free(a->label);
    a->label = dupstr(label);
    a->scale = scale;
    a->min = min;
    a->max = max;
}

void etok_svg_chart_x_axis(etok_svg_chart *c, const char *label, etok_svg_scale scale, double min, double max) {
    if (c) set_axis(&c->x, label, scale, min, max);
}
void etok_svg_chart_y_axis(etok_svg_chart *c, const char *label, etok_svg_scale scale, double min, double max) {
    if (c) set_axis(&c->y, label, scale, min, max);
}
void etok_svg_chart_y2_axis(etok_svg_chart *c, const char *label, etok_svg_scale scale, double min, double max) {
    if (!c) return;
    set_axis(&c->y2, label, scale, min, max);
    c->has_y2 = 1;
}
void etok_svg_chart_legend(etok_svg_chart *c, etok_svg_legend_pos pos) {
    if (c) c->legend = pos;
}
void etok_svg_chart_caption(etok_svg_chart *c, const char *caption) {
    if (!c) return;
    free(c->caption);
    c->caption = dupstr(caption);
}

int etok_svg_chart_add_series(etok_svg_chart *c, const char *name, const double *x, const double *y,
                              size_t n, const etok_svg_style *style) {
    if (!c) return -1;
    series *ns = realloc(c->s, (c->ns + 1) * sizeof *ns);
    if (!ns) return -1;
    c->s = ns;
    series *s = &c->s[c->ns];
    memset(s, 0, sizeof *s);
    s->name = dupstr(name ? name : "");
    s->x = malloc((n ? n : 1) * sizeof(double));
    s->y = malloc((n ? n : 1) * sizeof(double));
    if (!s->name || !s->x || !s->y) {
        free(s->name); free(s->x); free(s->y);
        return -1;
    }
    if (n) {
        memcpy(s->x, x, n * sizeof(double));
        memcpy(s->y, y, n * sizeof(double));
    }
    s->n = n;
    if (style) s->st = *style;
    s->color = strdup(style && style->color ? style->color : etok_svg_palette(c->ns));
    s->st.color = NULL;
    int oom = !s->color;
    const double *wsrc[4] = {style ? style->y_lo : NULL, style ? style->y_hi : NULL, style ? style->x_lo : NULL,
                             style ? style->x_hi : NULL};
    double **wdst[4] = {&s->wy[0], &s->wy[1], &s->wx[0], &s->wx[1]};
    for (int k = 0; k < 4 && !oom; k++)
        if (wsrc[k] && wsrc[k ^ 1] && n) {
            *wdst[k] = malloc(n * sizeof(double));
            if (!*wdst[k]) oom = 1;
            else memcpy(*wdst[k], wsrc[k], n * sizeof(double));
        }
    if (!oom && style && style->labels && n) {
        s->labels = calloc(n, sizeof *s->labels);
        if (!s->labels) oom = 1;
        for (size_t k = 0; k < n && !oom; k++)
            if (style->labels[k] && !(s->labels[k] = strdup(style->labels[k]))) oom = 1;
    }
    s->st.y_lo = s->st.y_hi = s->st.x_lo = s->st.x_hi = NULL;
    s->st.labels = NULL;
    if (oom) {
        free(s->name); free(s->x); free(s->y); free(s->color);
        for (int k = 0; k < 2; k++) { free(s->wy[k]); free(s->wx[k]); }
        if (s->labels)
            for (size_t k = 0; k < n; k++) free(s->labels[k]);
        free(s->labels);
        s->labels = NULL;
        return -1;
    }
    c->ns++;
    return 0;
}

int etok_svg_chart_add_band(etok_svg_chart *c, double x0, double x1, const char *label, const char *color) {
    if (!c) return -1;
    band *nb = realloc(c->b, (c->nb + 1) * sizeof *nb);
    if (!nb) return -1;
    c->b = nb;
    band *b = &c->b[c->nb++];
    b->x0 = x0 < x1 ? x0 : x1;
    b->x1 = x0 < x1 ? x1 : x0;
    b->label = dupstr(label);
    b->color = dupstr(color);
    return 0;
}

static int add_mark(marker **m, size_t *n, double v, const char *label, const char *color) {
    marker *nm = realloc(*m, (*n + 1) * sizeof *nm);
    if (!nm) return -1;
    *m = nm;
    nm[*n].v = v;
    nm[*n].label = dupstr(label);
    nm[*n].color = dupstr(color);
    (*n)++;
    return 0;
}

int etok_svg_chart_add_vline(etok_svg_chart *c, double x, const char *label, const char *color) {
    return c ? add_mark(&c->v, &c->nv, x, label, color) : -1;
}
int etok_svg_chart_add_hline(etok_svg_chart *c, double y, const char *label, const char *color) {
    return c ? add_mark(&c->hl, &c->nh, y, label, color) : -1;
}

/* ---------- ranges and mapping ---------- */

static int usable(double v, etok_svg_scale sc) { return isfinite(v) && (sc != ETOK_SVG_LOG || v > 0); }

static void widen(double *lo, double *hi, double v, etok_svg_scale sc) {
    if (!usable(v, sc)) return;
    if (v < *lo) *lo = v;
    if (v > *hi) *hi = v;
}

/* Final [lo, hi] for an axis from the collected data extent. */
static void finish_range(const axis *a, double lo, double hi, int is_y, double *out_lo, double *out_hi) {
    if (a->min < a->max && usable(a->min, a->scale) && usable(a->max, a->scale)) {
        *out_lo = a->min;
        *out_hi = a->max;
        return;
    }
    if (!(lo <= hi)) { lo = a->scale == ETOK_SVG_LOG ? 1 : 0; hi = a->scale == ETOK_SVG_LOG ? 10 : 1; }
    if (a->scale == ETOK_SVG_LOG) {
        if (hi <= lo) { lo /= 2; hi *= 2; }
        if (is_y) {
            double l0 = floor(log10(lo)), l1 = ceil(log10(hi));
            if (l1 - l0 >= 2) { lo = pow(10, l0); hi = pow(10, l1); }
            else { lo /= 1.25; hi *= 1.25; }
        }
    } else {
        if (hi <= lo) { double d = fabs(lo) > 0 ? fabs(lo) * 0.1 : 1; lo -= d; hi += d; }
        if (is_y) {
            if (lo > 0 && lo < 0.5 * hi) lo = 0;
            double step = nice_step((hi - lo) / 6.0);
            lo = floor(lo / step) * step;
            hi = ceil(hi / step) * step;
        }
    }
    *out_lo = lo;
    *out_hi = hi;
}

typedef struct {
    double lo, hi;
    etok_svg_scale sc;
    double p0, p1; /* pixel positions of lo and hi */
} mapping;

static double map(const mapping *m, double v) {
    double t;
    if (m->sc == ETOK_SVG_LOG) t = (log10(v) - log10(m->lo)) / (log10(m->hi) - log10(m->lo));
    else t = (v - m->lo) / (m->hi - m->lo);
    return m->p0 + t * (m->p1 - m->p0);
}

static const char *FONT = "font-family=\"Helvetica, Arial, sans-serif\"";

static double text_w(const char *s, double font_px) { return s ? (double)strlen(s) * font_px * 0.56 : 0; }

static void legend_swatch(sbuf *b, double x, double y, const series *s) {
    if (s->st.no_line) {
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" ", x + 13, y);
        sb_printf(b, "%s", s->st.hollow ? "fill=\"#ffffff\" stroke-width=\"1.6\" stroke=\"" : "fill=\"");
        sb_text(b, s->color);
        sb_printf(b, "\"/>\n");
        return;
    }
    const char *dash = s->st.dashed == 1 ? " stroke-dasharray=\"7 4\"" : s->st.dashed == 2 ? " stroke-dasharray=\"2 3\"" : "";
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"", x, y, x + 26, y);
    sb_text(b, s->color);
    sb_printf(b, "\" stroke-width=\"%.1f\"%s/>\n", s->st.width_px > 0 ? s->st.width_px : 2.0, dash);
    if (s->st.markers) {
        sb_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"", x + 13, y);
        sb_text(b, s->color);
        sb_printf(b, "\"/>\n");
    }
}

char *etok_svg_chart_render(const etok_svg_chart *c) {
    if (!c) return NULL;
    sbuf b = {0};
    /* Legend entries (named series) and, for a legend below the plot, its grid. */
    size_t nleg = 0;
    double maxw = 0;
    for (size_t i = 0; i < c->ns; i++) {
        if (!c->s[i].name || !*c->s[i].name) continue;
        nleg++;
        double w = text_w(c->s[i].name, 13);
        if (w > maxw) maxw = w;
    }
    const double W = c->w;
    const double ml = 84, mr = c->has_y2 ? 84 : 28, mt = c->title ? 46 : 18;
    size_t leg_cols = 1, leg_rows = 0;
    if (c->legend == ETOK_SVG_LEGEND_BELOW && nleg) {
        leg_cols = (size_t)((W - ml - mr) / (maxw + 46));
        if (leg_cols < 1) leg_cols = 1;
        if (leg_cols > 3) leg_cols = 3;
        if (leg_cols > nleg) leg_cols = nleg;
        leg_rows = (nleg + leg_cols - 1) / leg_cols;
    }
    /* A legend below grows the figure rather than shrinking the plot. */
    const double H = c->h + (double)leg_rows * 20 + (leg_rows ? 8 : 0);
    const double mb = 62 + (c->caption ? 20 : 0) + (double)leg_rows * 20 + (leg_rows ? 8 : 0);
    const double px0 = ml, px1 = W - mr, py0 = H - mb, py1 = mt; /* py0 = bottom */

    /* Data extents. */
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY, y2lo = INFINITY, y2hi = -INFINITY;
    for (size_t i = 0; i < c->ns; i++) {
        const series *s = &c->s[i];
        int on2 = s->st.y2 && c->has_y2;
        const axis *ya = on2 ? &c->y2 : &c->y;
        for (size_t k = 0; k < s->n; k++) {
            if (!usable(s->x[k], c->x.scale) || !usable(s->y[k], ya->scale)) continue;
            widen(&xlo, &xhi, s->x[k], c->x.scale);
            if (on2) widen(&y2lo, &y2hi, s->y[k], ya->scale);
            else widen(&ylo, &yhi, s->y[k], ya->scale);
            for (int e = 0; e < 2; e++) { /* whiskers count towards the range */
                if (s->wx[e] && usable(s->wx[e][k], c->x.scale)) widen(&xlo, &xhi, s->wx[e][k], c->x.scale);
                if (s->wy[e] && usable(s->wy[e][k], ya->scale)) {
                    if (on2) widen(&y2lo, &y2hi, s->wy[e][k], ya->scale);
                    else widen(&ylo, &yhi, s->wy[e][k], ya->scale);
                }
            }
        }
    }
    for (size_t i = 0; i < c->nb; i++) {
        widen(&xlo, &xhi, c->b[i].x0, c->x.scale);
        widen(&xlo, &xhi, c->b[i].x1, c->x.scale);
    }
    for (size_t i = 0; i < c->nv; i++) widen(&xlo, &xhi, c->v[i].v, c->x.scale);
    for (size_t i = 0; i < c->nh; i++) widen(&ylo, &yhi, c->hl[i].v, c->y.scale);

    mapping mx, my, my2;
    finish_range(&c->x, xlo, xhi, 0, &mx.lo, &mx.hi);
    finish_range(&c->y, ylo, yhi, 1, &my.lo, &my.hi);
    finish_range(&c->y2, y2lo, y2hi, 1, &my2.lo, &my2.hi);
    mx.sc = c->x.scale; mx.p0 = px0; mx.p1 = px1;
    my.sc = c->y.scale; my.p0 = py0; my.p1 = py1;
    my2.sc = c->y2.scale; my2.p0 = py0; my2.p1 = py1;

    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%.0f\" viewBox=\"0 0 %d %.0f\" %s>\n",
              c->w, H, c->w, H, FONT);
    sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%d\" height=\"%.0f\" fill=\"#ffffff\"/>\n", c->w, H);
    sb_printf(&b, "<defs><clipPath id=\"plot\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath></defs>\n",
              px0, py1, px1 - px0, py0 - py1);
    if (c->title) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"28\" font-size=\"17\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111\">", W / 2);
        sb_text(&b, c->title);
        sb_printf(&b, "</text>\n");
    }

    /* Bands (behind everything). */
    sb_printf(&b, "<g clip-path=\"url(#plot)\">\n");
    for (size_t i = 0; i < c->nb; i++) {
        const band *bd = &c->b[i];
        double a = usable(bd->x0, mx.sc) ? map(&mx, bd->x0) : px0;
        double z = usable(bd->x1, mx.sc) ? map(&mx, bd->x1) : px1;
        if (a < px0) a = px0;
        if (z > px1) z = px1;
        if (z <= a) continue;
        sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"", a, py1, z - a, py0 - py1);
        sb_text(&b, bd->color ? bd->color : etok_svg_palette(i));
        sb_printf(&b, "\" fill-opacity=\"0.10\"/>\n");
    }
    sb_printf(&b, "</g>\n");

    /* Grid and ticks. */
    double t[64];
    char lab[32];
    size_t nt = etok_svg_ticks(mx.lo, mx.hi, mx.sc, t, 64);
    for (size_t i = 0; i < nt; i++) {
        double X = map(&mx, t[i]);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n", X, py0, X, py1);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" stroke-width=\"1\"/>\n", X, py0, X, py0 + 5);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">", X, py0 + 20);
        sb_text(&b, etok_svg_format_si(t[i], lab, sizeof lab));
        sb_printf(&b, "</text>\n");
    }
    nt = etok_svg_ticks(my.lo, my.hi, my.sc, t, 64);
    for (size_t i = 0; i < nt; i++) {
        double Y = map(&my, t[i]);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\" stroke-width=\"1\"/>\n", px0, Y, px1, Y);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" stroke-width=\"1\"/>\n", px0 - 5, Y, px0, Y);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"end\" fill=\"#222\">", px0 - 8, Y + 4.5);
        sb_text(&b, etok_svg_format_si(t[i], lab, sizeof lab));
        sb_printf(&b, "</text>\n");
    }
    if (c->has_y2) {
        nt = etok_svg_ticks(my2.lo, my2.hi, my2.sc, t, 64);
        for (size_t i = 0; i < nt; i++) {
            double Y = map(&my2, t[i]);
            sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\" stroke-width=\"1\"/>\n", px1, Y, px1 + 5, Y);
            sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"start\" fill=\"#222\">", px1 + 8, Y + 4.5);
            sb_text(&b, etok_svg_format_si(t[i], lab, sizeof lab));
            sb_printf(&b, "</text>\n");
        }
    }

    /* Series. */
    sb_printf(&b, "<g clip-path=\"url(#plot)\" fill=\"none\" stroke-linejoin=\"round\" stroke-linecap=\"round\">\n");
    for (size_t i = 0; i < c->ns; i++) {
        const series *s = &c->s[i];
        int on2 = s->st.y2 && c->has_y2;
        const mapping *ym = on2 ? &my2 : &my;
        const char *dash = s->st.dashed == 1 ? " stroke-dasharray=\"7 4\"" : s->st.dashed == 2 ? " stroke-dasharray=\"2 3\"" : "";
        if (!s->st.no_line) {
            sb_printf(&b, "<path d=\"");
            int pen = 0;
            for (size_t k = 0; k < s->n; k++) {
                if (!usable(s->x[k], mx.sc) || !usable(s->y[k], ym->sc)) { pen = 0; continue; }
                double X = map(&mx, s->x[k]), Y = map(ym, s->y[k]);
                if (!pen) sb_printf(&b, "M%.2f %.2f", X, Y);
                else if (s->st.step) sb_printf(&b, "H%.2f V%.2f", X, Y);
                else sb_printf(&b, "L%.2f %.2f", X, Y);
                pen = 1;
            }
            sb_printf(&b, "\" stroke=\"");
            sb_text(&b, s->color);
            sb_printf(&b, "\" stroke-width=\"%.1f\"%s><title>", s->st.width_px > 0 ? s->st.width_px : 2.0, dash);
            sb_text(&b, s->name);
            sb_printf(&b, "</title></path>\n");
        }
        for (size_t k = 0; k < s->n; k++) { /* whiskers, under the markers */
            if (!usable(s->x[k], mx.sc) || !usable(s->y[k], ym->sc)) continue;
            double X = map(&mx, s->x[k]), Y = map(ym, s->y[k]);
            if (s->wy[0] && usable(s->wy[0][k], ym->sc) && usable(s->wy[1][k], ym->sc)) {
                double a = map(ym, s->wy[0][k]), z = map(ym, s->wy[1][k]);
                sb_printf(&b, "<path class=\"whisker\" d=\"M%.2f %.2fV%.2fM%.2f %.2fH%.2fM%.2f %.2fH%.2f\" stroke=\"", X, a, z,
                          X - 4, a, X + 4, X - 4, z, X + 4);
                sb_text(&b, s->color);
                sb_printf(&b, "\" stroke-width=\"1.2\"/>\n");
            }
            if (s->wx[0] && usable(s->wx[0][k], mx.sc) && usable(s->wx[1][k], mx.sc)) {
                double a = map(&mx, s->wx[0][k]), z = map(&mx, s->wx[1][k]);
                sb_printf(&b, "<path class=\"whisker\" d=\"M%.2f %.2fH%.2fM%.2f %.2fV%.2fM%.2f %.2fV%.2f\" stroke=\"", a, Y, z,
                          a, Y - 4, Y + 4, z, Y - 4, Y + 4);
                sb_text(&b, s->color);
                sb_printf(&b, "\" stroke-width=\"1.2\"/>\n");
            }
        }
        if (s->st.markers || s->st.no_line) {
            double r = s->st.marker_px > 0 ? s->st.marker_px : 3;
            for (size_t k = 0; k < s->n; k++) {
                if (!usable(s->x[k], mx.sc) || !usable(s->y[k], ym->sc)) continue;
                sb_printf(&b, "<circle cx=\"%.2f\" cy=\"%.2f\" r=\"%.1f\" ", map(&mx, s->x[k]), map(ym, s->y[k]), r);
                if (s->st.hollow) {
                    sb_printf(&b, "class=\"hollow\" fill=\"#ffffff\" stroke-width=\"1.6\" stroke=\"");
                } else
                    sb_printf(&b, "stroke=\"none\" fill=\"");
                sb_text(&b, s->color);
                sb_printf(&b, "\"/>\n");
                if (s->labels && s->labels[k]) {
                    sb_printf(&b, "<text class=\"plabel\" x=\"%.2f\" y=\"%.2f\" font-size=\"11\" fill=\"#333\" stroke=\"none\">",
                              map(&mx, s->x[k]) + r + 3, map(ym, s->y[k]) - r - 2);
                    sb_text(&b, s->labels[k]);
                    sb_printf(&b, "</text>\n");
                }
            }
        }
    }
    sb_printf(&b, "</g>\n");

    /* Reference lines and band labels. */
    for (size_t i = 0; i < c->nh; i++) {
        const marker *m = &c->hl[i];
        if (!usable(m->v, my.sc) || m->v < my.lo || m->v > my.hi) continue;
        double Y = map(&my, m->v);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"", px0, Y, px1, Y);
        sb_text(&b, m->color ? m->color : "#555");
        sb_printf(&b, "\" stroke-width=\"1.2\" stroke-dasharray=\"4 3\"/>\n");
        if (m->label) {
            sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" fill=\"#333\">", px1 - 4, Y - 4);
            sb_text(&b, m->label);
            sb_printf(&b, "</text>\n");
        }
    }
    for (size_t i = 0; i < c->nv; i++) {
        const marker *m = &c->v[i];
        if (!usable(m->v, mx.sc) || m->v < mx.lo || m->v > mx.hi) continue;
        double X = map(&mx, m->v);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"", X, py0, X, py1);
        sb_text(&b, m->color ? m->color : "#444");
        sb_printf(&b, "\" stroke-width=\"1.5\" stroke-dasharray=\"5 3\"/>\n");
        if (m->label) {
            /* Rotated along the line, reading upwards, near the top of the plot. */
            double ty = py1 + 8, tx = X + 14;
            sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" text-anchor=\"end\" fill=\"#222\" "
                          "stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\" transform=\"rotate(-90 %.1f %.1f)\">", tx, ty, tx, ty);
            sb_text(&b, m->label);
            sb_printf(&b, "</text>\n");
        }
    }
    for (size_t i = 0; i < c->nb; i++) {
        const band *bd = &c->b[i];
        if (!bd->label) continue;
        double a = usable(bd->x0, mx.sc) ? map(&mx, bd->x0) : px0;
        double z = usable(bd->x1, mx.sc) ? map(&mx, bd->x1) : px1;
        if (a < px0) a = px0;
        if (z > px1) z = px1;
        if (z - a < 8) continue;
        double fs = 12;
        if (text_w(bd->label, fs) > z - a - 4) fs = 10;
        if (text_w(bd->label, fs) > z - a - 4) continue; /* too narrow to label legibly */
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" font-style=\"italic\" text-anchor=\"middle\" fill=\"#444\">",
                  (a + z) / 2, py0 - 8, fs);
        sb_text(&b, bd->label);
        sb_printf(&b, "</text>\n");
    }

    /* Frame and axis labels. */
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\" stroke-width=\"1\"/>\n",
              px0, py1, px1 - px0, py0 - py1);
    if (c->x.label) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\" fill=\"#111\">", (px0 + px1) / 2, py0 + 44);
        sb_text(&b, c->x.label);
        sb_printf(&b, "</text>\n");
    }
    if (c->y.label) {
        double yx = 22, yy = (py0 + py1) / 2;
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\" fill=\"#111\" transform=\"rotate(-90 %.1f %.1f)\">",
                  yx, yy, yx, yy);
        sb_text(&b, c->y.label);
        sb_printf(&b, "</text>\n");
    }
    if (c->has_y2 && c->y2.label) {
        double yx = W - 20, yy = (py0 + py1) / 2;
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\" fill=\"#111\" transform=\"rotate(90 %.1f %.1f)\">",
                  yx, yy, yx, yy);
        sb_text(&b, c->y2.label);
        sb_printf(&b, "</text>\n");
    }
    if (c->caption) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" font-style=\"italic\" text-anchor=\"start\" fill=\"#555\">", px0, H - 10);
        sb_text(&b, c->caption);
        sb_printf(&b, "</text>\n");
    }

    /* Legend. */
    if (nleg && c->legend == ETOK_SVG_LEGEND_BELOW) {
        double colw = (px1 - px0) / (double)leg_cols;
        double y0 = py0 + 62;
        size_t k = 0;
        for (size_t i = 0; i < c->ns; i++) {
            const series *s = &c->s[i];
            if (!s->name || !*s->name) continue;
            double lx = px0 + colw * (double)(k % leg_cols), yy = y0 + 20.0 * (double)(k / leg_cols);
            legend_swatch(&b, lx, yy - 4.5, s);
            sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" fill=\"#111\">", lx + 34, yy);
            sb_text(&b, s->name);
            sb_printf(&b, "</text>\n");
            k++;
        }
    } else if (nleg && c->legend != ETOK_SVG_LEGEND_NONE) {
        double lw = maxw + 50, lh = 8 + 20.0 * (double)nleg;
        double lx = (c->legend == ETOK_SVG_LEGEND_TOP_LEFT || c->legend == ETOK_SVG_LEGEND_BOTTOM_LEFT) ? px0 + 10 : px1 - 10 - lw;
        double ly = (c->legend == ETOK_SVG_LEGEND_BOTTOM_LEFT || c->legend == ETOK_SVG_LEGEND_BOTTOM_RIGHT) ? py0 - 10 - lh - 16 : py1 + 10;
        sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#ffffff\" fill-opacity=\"0.88\" stroke=\"#bbb\" rx=\"3\"/>\n",
                  lx, ly, lw, lh);
        double yy = ly + 18;
        for (size_t i = 0; i < c->ns; i++) {
            const series *s = &c->s[i];
            if (!s->name || !*s->name) continue;
            legend_swatch(&b, lx + 8, yy - 4.5, s);
            sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" fill=\"#111\">", lx + 42, yy);
            sb_text(&b, s->name);
            sb_printf(&b, "</text>\n");
            yy += 20;
        }
    }
    sb_printf(&b, "</svg>\n");
    return sb_finish(&b);
}

/* ---------- horizontal bars ---------- */

char *etok_svg_bars(const char *title, const char *value_label, etok_svg_scale scale,
                    const etok_svg_bar *bars, size_t n, double ref_x, int width_px) {
    sbuf b = {0};
    const double W = width_px > 0 ? width_px : 800;
    double maxlab = 0;
    for (size_t i = 0; i < n; i++) {
        double w = text_w(bars[i].label, 13);
        if (w > maxlab) maxlab = w;
    }
    const double ml = fmin(fmax(maxlab + 20, 90), W * 0.42), mr = 110, mt = title ? 46 : 16, mb = 58;
    const double row = 28;
    const double H = mt + mb + row * (double)(n ? n : 1);
    const double px0 = ml, px1 = W - mr, py1 = mt, py0 = H - mb;

    double lo = INFINITY, hi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        widen(&lo, &hi, bars[i].value, scale);
        if (bars[i].lo < bars[i].hi) { widen(&lo, &hi, bars[i].lo, scale); widen(&lo, &hi, bars[i].hi, scale); }
    }
    widen(&lo, &hi, ref_x, scale);
    mapping mx;
    axis a = {NULL, scale, 0, 0};
    if (scale != ETOK_SVG_LOG && lo > 0) lo = 0;
    finish_range(&a, lo, hi, 1, &mx.lo, &mx.hi); /* "is_y" rounding: start bars at 0 */
    mx.sc = scale; mx.p0 = px0; mx.p1 = px1;

    sb_printf(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                  "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" viewBox=\"0 0 %.0f %.0f\" %s>\n",
              W, H, W, H, FONT);
    sb_printf(&b, "<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n", W, H);
    if (title) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"28\" font-size=\"17\" font-weight=\"bold\" text-anchor=\"middle\" fill=\"#111\">", W / 2);
        sb_text(&b, title);
        sb_printf(&b, "</text>\n");
    }
    double t[64];
    char lab[32];
    size_t nt = etok_svg_ticks(mx.lo, mx.hi, scale, t, 64);
    for (size_t i = 0; i < nt; i++) {
        double X = map(&mx, t[i]);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e3e3e3\"/>\n", X, py0, X, py1);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", X, py0, X, py0 + 5);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"middle\" fill=\"#222\">", X, py0 + 20);
        sb_text(&b, etok_svg_format_si(t[i], lab, sizeof lab));
        sb_printf(&b, "</text>\n");
    }
    double base = scale == ETOK_SVG_LOG ? px0 : map(&mx, 0 >= mx.lo && 0 <= mx.hi ? 0 : mx.lo);
    for (size_t i = 0; i < n; i++) {
        const etok_svg_bar *br = &bars[i];
        double yc = py1 + row * ((double)i + 0.5);
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" text-anchor=\"end\" fill=\"#111\">", px0 - 8, yc + 4.5);
        sb_text(&b, br->label ? br->label : "");
        sb_printf(&b, "</text>\n");
        if (!usable(br->value, scale)) {
            sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#777\">n/a</text>\n", px0 + 6, yc + 4.5);
            continue;
        }
        double X = map(&mx, br->value);
        double x0 = fmin(base, X), x1 = fmax(base, X);
        sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"", x0, yc - row * 0.32, fmax(x1 - x0, 1), row * 0.64);
        sb_text(&b, br->color ? br->color : etok_svg_palette(i));
        sb_printf(&b, "\"/>\n");
        double tx = X;
        if (br->lo < br->hi && usable(br->lo, scale) && usable(br->hi, scale)) {
            double a0 = map(&mx, br->lo), a1 = map(&mx, br->hi);
            sb_printf(&b, "<path d=\"M%.1f %.1f H%.1f M%.1f %.1f V%.1f M%.1f %.1f V%.1f\" stroke=\"#111\" stroke-width=\"1.4\" fill=\"none\"/>\n",
                      a0, yc, a1, a0, yc - 6, yc + 6, a1, yc - 6, yc + 6);
            if (a1 > tx) tx = a1;
        }
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#222\">", tx + 6, yc + 4.5);
        sb_text(&b, etok_svg_format_si(br->value, lab, sizeof lab));
        if (br->note) { sb_printf(&b, " "); sb_text(&b, br->note); }
        sb_printf(&b, "</text>\n");
    }
    if (usable(ref_x, scale) && ref_x >= mx.lo && ref_x <= mx.hi) {
        double X = map(&mx, ref_x);
        sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444\" stroke-width=\"1.3\" stroke-dasharray=\"5 3\"/>\n",
                  X, py0, X, py1);
    }
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", px0, py1, px1 - px0, py0 - py1);
    if (value_label) {
        sb_printf(&b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" text-anchor=\"middle\" fill=\"#111\">", (px0 + px1) / 2, py0 + 44);
        sb_text(&b, value_label);
        sb_printf(&b, "</text>\n");
    }
    sb_printf(&b, "</svg>\n");
    return sb_finish(&b);
}
