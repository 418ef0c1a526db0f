/* report_html.c — report.html: one self-contained file (inline SVG, inline CSS, no script,
 * no network): the headline table and four figures drawn with svg.h. Formats metrics.h
 * results; computes nothing beyond plot coordinates. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/report.h"
#include "etok/svg.h"

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} hbuf;

static void hb_put(hbuf *b, const char *s) {
    if (b->oom || !s) return;
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 16384) + k;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static void hb_printf(hbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void hb_printf(hbuf *b, const char *fmt, ...) {
    char tmp[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    hb_put(b, tmp);
}

static void hb_esc(hbuf *b, const char *s) {
    char *e = etok_svg_escape(s);
    if (!e) {
        b->oom = 1;
        return;
    }
    hb_put(b, e);
    free(e);
}

static void figure(hbuf *b, char *svg, const char *caption) {
    hb_put(b, "<figure>");
    if (svg) hb_put(b, svg);
    else hb_put(b, "<p>(figure could not be drawn)</p>");
    hb_put(b, "<figcaption>");
    hb_esc(b, caption);
    hb_put(b, "</figcaption></figure>\n");
    free(svg);
}

static char *power_chart(const etok_metrics *m) {
    etok_svg_chart *c = etok_svg_chart_new("Power and output token rate over the run", 900, 420);
    if (!c) return NULL;
    size_t n = m->n_series;
    double *t = malloc((n + 1) * sizeof *t), *p = malloc((n + 1) * sizeof *p), *tr = malloc((n + 1) * sizeof *tr);
    char *svg = NULL;
    if (t && p && tr) {
        for (size_t i = 0; i < n; i++) {
            t[i] = m->series[i].t_s + m->series_bin_s / 2;
            p[i] = m->series[i].power_w;
            tr[i] = m->series[i].token_rate_tps;
        }
        char ylab[64];
        snprintf(ylab, sizeof ylab, "Power, %s boundary (W)", m->energy_boundary);
        etok_svg_chart_x_axis(c, "Time since window start (s)", ETOK_SVG_LINEAR, 0, 0);
        double pmax = 0, rmax = 0; /* axes from zero so levels compare honestly */
        for (size_t i = 0; i < n; i++) {
            if (isfinite(p[i]) && p[i] > pmax) pmax = p[i];
            if (tr[i] > rmax) rmax = tr[i];
        }
        etok_svg_chart_y_axis(c, ylab, ETOK_SVG_LINEAR, 0, pmax > 0 ? pmax * 1.15 : 1);
        etok_svg_chart_y2_axis(c, "Output token rate (token/s)", ETOK_SVG_LINEAR, 0, rmax > 0 ? rmax * 1.15 : 1);
        for (size_t i = 0; i < m->n_prefill; i++)
            etok_svg_chart_add_band(c, m->prefill[i].t_start_s, m->prefill[i].t_end_s, i == 0 ? "prefill" : NULL,
                                    "#E69F00");
        etok_svg_style ps = {.color = "#D55E00", .markers = n < 40};
        etok_svg_chart_add_series(c, "power (W)", t, p, n, &ps);
        etok_svg_style ts = {.color = "#0072B2", .y2 = 1, .step = 1, .dashed = 0, .width_px = 1.5};
        etok_svg_chart_add_series(c, "output tokens/s", t, tr, n, &ts);
        etok_svg_chart_legend(c, ETOK_SVG_LEGEND_TOP_RIGHT);
        if (!strcmp(m->energy_source, "estimate"))
            etok_svg_chart_caption(c, "Power is a MODEL ESTIMATE (no energy counter on this machine), not a measurement");
        svg = etok_svg_chart_render(c);
    }
    free(t);
    free(p);
    free(tr);
    etok_svg_chart_free(c);
    return svg;
}

static char *cdf_chart(const char *title, const char *xlab, const double *sorted, size_t n, double slo,
                       const char *slo_label) {
    etok_svg_chart *c = etok_svg_chart_new(title, 440, 340);
    if (!c) return NULL;
    double *y = malloc((n + 1) * sizeof *y);
    char *svg = NULL;
    if (y) {
        for (size_t i = 0; i < n; i++) y[i] = (double)(i + 1) / (double)n;
        etok_svg_chart_x_axis(c, xlab, ETOK_SVG_LINEAR, 0, 0);
        etok_svg_chart_y_axis(c, "Fraction of requests (1)", ETOK_SVG_LINEAR, 0, 1);
        etok_svg_style st = {.step = 1, .color = "#0072B2"};
        etok_svg_chart_add_series(c, "CDF", sorted, y, n, &st);
        if (slo > 0) etok_svg_chart_add_vline(c, slo, slo_label, "#D55E00");
        etok_svg_chart_legend(c, ETOK_SVG_LEGEND_NONE);
        if (n == 0) etok_svg_chart_caption(c, "no samples");
        svg = etok_svg_chart_render(c);
    }
    free(y);
    etok_svg_chart_free(c);
    return svg;
}

static double mval(const etok_metrics *m, const char *name) {
    const etok_metric *x = etok_metrics_get(m, name, "");
    return x && x->valid ? x->value : NAN;
}

char *etok_report_html(const etok_record *r, const etok_metrics *m) {
    hbuf b = {0};
    hb_put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>etok ");
    hb_esc(&b, r->kind[0] ? r->kind : "run");
    hb_put(&b, " report</title>\n<style>body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;"
               "color:#222;max-width:1400px}h1{font-size:22px}h2{font-size:17px;margin-top:28px}"
               "table{border-collapse:collapse;font-size:13px}td,th{border-bottom:1px solid #ddd;padding:3px 8px;"
               "text-align:left}td.v{text-align:right;font-variant-numeric:tabular-nums}"
               ".warn{background:#fff3cd;padding:6px 10px;border-left:4px solid #E69F00}"
               "figure{display:inline-block;margin:8px 16px 8px 0;vertical-align:top}"
               "figcaption{font-size:12px;color:#555;max-width:900px}.meta{font-size:13px;color:#444}</style>\n"
               "</head><body>\n<h1>etok ");
    hb_esc(&b, r->kind[0] ? r->kind : "run");
    hb_put(&b, " report</h1>\n<p class=\"meta\">");
    hb_esc(&b, r->command);
    hb_put(&b, "<br>host ");
    hb_esc(&b, r->host);
    hb_put(&b, ", ");
    hb_esc(&b, r->cpu_model);
    hb_printf(&b, ", %d CPUs; energy source <b>%s</b> at the <b>%s</b> boundary; phase split %s; "
                  "measured binding constraint <b>%s</b></p>\n",
              r->cpu_count, m->energy_source, m->energy_boundary, m->phase_split_method, m->binding_constraint);
    if (r->partial)
        hb_put(&b, !strcmp(r->stop_reason, "endpoint_unreachable")
                       ? "<p class=\"warn\">Partial run: the endpoint became unreachable; figures cover what was observed.</p>\n"
                       : "<p class=\"warn\">Partial run: interrupted; figures cover what was observed.</p>\n");
    if (!strcmp(m->energy_source, "estimate"))
        hb_put(&b, "<p class=\"warn\">Energy is a <b>model estimate</b> (CPU busy time x a per-core power model): "
                   "no energy counter exists on this machine. Not a measurement.</p>\n");
    if (m->energy_warning[0]) {
        hb_put(&b, "<p class=\"warn\">Energy warning: ");
        hb_esc(&b, m->energy_warning);
        hb_put(&b, "</p>\n");
    }
    if (m->background_warning[0]) {
        hb_put(&b, "<p class=\"warn\">Background load warning: ");
        hb_esc(&b, m->background_warning);
        hb_put(&b, "</p>\n");
    }
    if (!m->quality_gate_met)
        hb_put(&b, "<p class=\"warn\">Accuracy is below the quality target q*: quality-conditioned figures are "
                   "withheld.</p>\n");

    /* figures */
    hb_put(&b, "<h2>Figures</h2>\n");
    figure(&b, power_chart(m),
           "Power over the measurement window (left axis) with the output token rate (right axis); "
           "shaded: engine steps that processed prompt tokens (prefill).");
    {
        etok_svg_bar bars[3];
        size_t nb = 0;
        const char *names[3] = {"idle (baseline power x window)", "prefill (dynamic)", "decode (dynamic)"};
        double vals[3] = {m->breakdown_idle_j, m->breakdown_prefill_j, m->breakdown_decode_j};
        const char *cols[3] = {"#999999", "#E69F00", "#0072B2"};
        for (int i = 0; i < 3; i++)
            if (isfinite(vals[i])) bars[nb++] = (etok_svg_bar){names[i], vals[i], 0, 0, cols[i], NULL};
        char *svg = nb ? etok_svg_bars("Energy breakdown of the window", "Energy (J)", ETOK_SVG_LINEAR, bars, nb,
                                       NAN, 900)
                       : NULL;
        figure(&b, svg, "Window energy split into the idle baseline and the dynamic energy of prefill and decode "
                        "(phase split as stated above).");
    }
    const etok_metric *ts = etok_metrics_get(m, "ttft_slo_s", ""), *ps = etok_metrics_get(m, "tpot_slo_s", "");
    figure(&b, cdf_chart("TTFT distribution", "Time to first token (s)", m->ttft_sorted_s, m->n_ttft,
                         ts && ts->valid ? ts->value : 0, "TTFT SLO"),
           "Cumulative distribution of TTFT; the vertical line is the SLO.");
    figure(&b, cdf_chart("TPOT distribution", "Time per output token (s)", m->tpot_sorted_s, m->n_tpot,
                         ps && ps->valid ? ps->value : 0, "TPOT SLO"),
           "Cumulative distribution of TPOT; the vertical line is the SLO.");
    {
        const char *cn[3] = {"compute", "memory_bandwidth", "device_power_cap"};
        const char *mn[3] = {"ceiling_compute_tps", "ceiling_memory_bandwidth_tps", "ceiling_device_power_cap_tps"};
        etok_svg_bar bars[4];
        char labels[4][64];
        size_t nb = 0;
        for (int i = 0; i < 3; i++) {
            double v = mval(m, mn[i]);
            if (!(v > 0)) continue;
            int binding = !strcmp(m->tpf_binding_ceiling, cn[i]);
            snprintf(labels[nb], sizeof labels[nb], "%s ceiling%s", cn[i], binding ? " (binding)" : "");
            bars[nb] = (etok_svg_bar){labels[nb], v, 0, 0, binding ? "#D55E00" : "#56B4E9", binding ? "binding" : NULL};
            nb++;
        }
        double ach = mval(m, "utilization_adjusted_token_rate_tps");
        if (ach > 0) {
            snprintf(labels[nb], sizeof labels[nb], "achieved (this run)");
            bars[nb] = (etok_svg_bar){labels[nb], ach, 0, 0, "#009E73", NULL};
            nb++;
        }
        char *svg = nb >= 2 ? etok_svg_bars("TPF ceilings of this run (output token rate)", "Output token rate (token/s)",
                                            ETOK_SVG_LOG, bars, nb, NAN, 900)
                            : NULL;
        figure(&b, svg, "Each ceiling of the Token Production Function at this run's FLOPs and bytes per output "
                        "token, from the etok probe profile; the smallest (binding) one is marked.");
    }

    /* the table */
    hb_put(&b, "<h2>Reporting set</h2>\n<table><tr><th>figure</th><th>stat</th><th>value</th><th>unit</th>"
               "<th>source</th><th>uncertainty</th><th>note</th></tr>\n");
    for (size_t i = 0; i < m->n; i++) {
        const etok_metric *x = &m->m[i];
        char v[48] = "n/a", u[96];
        if (x->valid) etok_report_fmt(x->value, v, sizeof v);
        etok_report_fmt_uncertainty(x, "&plusmn;", u, sizeof u);
        hb_printf(&b, "<tr><td>%s</td><td>%s</td><td class=\"v\">%s</td><td>", x->name, x->stat, v);
        hb_esc(&b, x->unit);
        hb_put(&b, "</td><td>");
        hb_esc(&b, x->source);
        hb_printf(&b, "</td><td>%s</td><td>", u);
        hb_esc(&b, x->note);
        hb_put(&b, "</td></tr>\n");
    }
    hb_put(&b, "</table>\n");
    {
        char carbon[1024];
        etok_report_carbon_text(r, carbon, sizeof carbon);
        if (carbon[0]) {
            hb_put(&b, "<p class=\"meta\">");
            hb_esc(&b, carbon);
            hb_put(&b, "</p>\n");
        }
    }
    hb_put(&b, "<p class=\"meta\">Field definitions: docs/REPORT.md and docs/METRICS.md §3. Sources: counter, "
               "power, external, estimate (a model, never a measurement), clock, eval, engine, probe.</p>\n"
               "</body></html>\n");
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    return b.s;
}
