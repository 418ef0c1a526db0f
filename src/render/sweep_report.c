/* sweep_report.c — DIR/sweep.json, DIR/sweep.csv and DIR/sweep.html of `etok sweep`
 * (sweep_report.h). Formats what the driver measured and analyse/pareto.c decided; computes
 * nothing beyond plot coordinates and the table's sort order. The page is self-contained
 * (inline SVG from svg.h, inline CSS, no script, no network). */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/report.h"
#include "etok/svg.h"
#include "etok/sweep_report.h"

const char *const ETOK_SWEEP_FIELD[ETOK_SW_N] = {
    "joules_per_output_token", "tpot_p90_s", "ttft_p90_s", "output_token_rate_tps", "accuracy",
    "joules_per_correct_answer", "slo_attainment", "mean_power_w", "dynamic_joules_per_output_token"};

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* A JSON string of user-given text (paths, prompts, names): bytes that are not valid UTF-8
 * become '?', so that no entry of the index is ever dropped. */
static json_t *jstr(const char *s) {
    json_t *j = json_string(s ? s : "");
    if (j) return j;
    char *c = strdup(s);
    if (!c) return NULL;
    for (char *p = c; *p; p++)
        if ((unsigned char)*p >= 0x80) *p = '?';
    j = json_string(c);
    free(c);
    return j;
}

char *etok_sweep_json(const etok_sweep_doc *d) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "schema", json_string("etok-sweep/1"));
    json_object_set_new(o, "command", jstr(d->command));
    json_object_set_new(o, "seed", json_integer((json_int_t)d->seed));
    json_object_set_new(o, "repeat", json_integer(d->repeat));
    json_object_set_new(o, "slo_attainment_target", num(d->attainment_target));
    json_object_set_new(o, "idle_s", num(d->idle_s));
    json_object_set_new(o, "idle_probe_s", num(d->probe_s));
    json_object_set_new(o, "drift_tolerance", num(d->drift_tol));
    json_object_set_new(o, "drift_floor_w", num(d->drift_floor_w));
    json_object_set_new(o, "baseline_every_s", num(d->baseline_every_s));
    json_object_set_new(o, "complete", json_boolean(d->complete));
    json_object_set_new(o, "interrupted", json_boolean(d->interrupted));
    json_t *pt = json_array();
    for (size_t i = 0; i < d->n_passthrough; i++) json_array_append_new(pt, jstr(d->passthrough[i]));
    json_object_set_new(o, "bench_options", pt);
    json_t *ord = json_array();
    for (size_t i = 0; i < d->n_runs; i++) json_array_append_new(ord, jstr(d->runs[d->order[i]].name));
    json_object_set_new(o, "order", ord);
    json_t *bl = json_array();
    for (size_t i = 0; i < d->n_baselines; i++) {
        const etok_sweep_baseline *b = &d->baselines[i];
        json_array_append_new(bl, json_pack("{s:s, s:s, s:s, s:o, s:o, s:o, s:o, s:s}", "id", b->id, "reason", b->reason,
                                            "record", b->path, "t_wall_s", num(b->t_wall_s), "duration_s",
                                            num(b->duration_s), "idle_power_w", num(b->idle_power_w),
                                            "uncertainty_w", num(b->uncertainty_w), "source", b->source));
    }
    json_object_set_new(o, "baselines", bl);
    json_t *runs = json_array();
    for (size_t i = 0; i < d->n_runs; i++) {
        const etok_sweep_run *r = &d->runs[i];
        char rec[256];
        snprintf(rec, sizeof rec, "points/%s/run.json", r->name);
        json_t *j = json_pack("{s:o, s:o, s:i, s:s, s:i, s:o, s:s, s:o, s:b, s:o, s:o, s:s}", "name", jstr(r->name),
                              "point", jstr(d->points[r->point].name), "repeat", r->repeat, "status", r->status,
                              "exit_code", r->exit_code, "record", jstr(rec), "baseline", r->baseline, "probe_idle_w",
                              num(r->probe_idle_w), "drift", r->drift, "wall_s", num(r->wall_s),
                              "joules_per_output_token_uncertainty", num(r->j_out_unc), "energy_source",
                              r->energy_source);
        for (int k = 0; k < ETOK_SW_N; k++) json_object_set_new(j, ETOK_SWEEP_FIELD[k], num(r->v[k]));
        json_array_append_new(runs, j);
    }
    json_object_set_new(o, "runs", runs);
    json_t *pts = json_array(), *front = json_array();
    for (size_t i = 0; i < d->n_points; i++) {
        const etok_sweep_point *p = &d->points[i];
        json_t *par = json_object();
        for (size_t k = 0; k < p->n_keys; k++) json_object_set_new(par, p->keys[k], jstr(p->vals[k]));
        json_t *j = json_pack("{s:o, s:o, s:i, s:i, s:o, s:o, s:o, s:b, s:b, s:b, s:b}", "name", jstr(p->name), "options",
                              par, "runs", p->n_runs, "runs_ok", p->n_ok, "quality_target", num(p->q_star),
                              "ttft_slo_s", num(p->ttft_slo_s), "tpot_slo_s", num(p->tpot_slo_s), "meets_q", p->meets_q,
                              "meets_s", p->meets_s, "frontier", p->on_front, "best", p->best);
        for (int k = 0; k < ETOK_SW_N; k++)
            json_object_set_new(j, ETOK_SWEEP_FIELD[k],
                                json_pack("{s:o, s:o, s:o}", "mean", num(p->mean[k]), "ci_lo", num(p->lo[k]), "ci_hi",
                                          num(p->hi[k])));
        if (p->pred.present) {
            char line[1024];
            etok_lever_prediction_line(&p->pred, line, sizeof line);
            json_object_set_new(j, "tpf_prediction",
                                json_pack("{s:b, s:s, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:s}", "valid", p->pred.valid,
                                          "lever", p->pred.lever, "hardware", p->pred.hardware, "token_rate_ratio",
                                          num(p->pred.rate_ratio), "joules_per_output_token_ratio", num(p->pred.joules_ratio),
                                          "measured_token_rate_rel", num(p->pred.meas_rate_rel),
                                          "measured_joules_per_output_token_rel", num(p->pred.meas_joules_rel),
                                          "token_rate_predicted_over_measured", num(p->pred.rate_pred_over_meas),
                                          "joules_predicted_over_measured", num(p->pred.joules_pred_over_meas), "line", line));
        }
        json_array_append_new(pts, j);
        if (p->on_front) json_array_append_new(front, jstr(p->name));
    }
    json_object_set_new(o, "points", pts);
    json_object_set_new(o, "frontier", front);
    json_object_set_new(o, "best_meeting_q_and_s", d->best >= 0 ? jstr(d->points[d->best].name) : json_null());
    json_object_set_new(o, "ratio_best_to_first_point", num(d->ratio_best_to_first));
    char *t = json_dumps(o, JSON_INDENT(1) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!t) return NULL;
    size_t n = strlen(t);
    char *u = realloc(t, n + 2);
    if (!u) { free(t); return NULL; }
    u[n] = '\n';
    u[n + 1] = 0;
    return u;
}

/* ---------- a growing text buffer ---------- */
typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} tb;

static void tb_printf(tb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void tb_printf(tb *b, const char *fmt, ...) {
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t nc = (b->cap ? b->cap * 2 : 16384) + (size_t)k + 1;
        char *ns = realloc(b->s, nc);
        if (!ns) { b->oom = 1; return; }
        b->s = ns;
        b->cap = nc;
    }
}
static void tb_put(tb *b, const char *s) { tb_printf(b, "%s", s ? s : ""); }
static void tb_esc(tb *b, const char *s) {
    char *e = etok_svg_escape(s);
    if (!e) { b->oom = 1; return; }
    tb_put(b, e);
    free(e);
}
static char *tb_done(tb *b) {
    if (b->oom || !b->s) { free(b->s); return NULL; }
    return b->s;
}

static void csv_field(tb *b, const char *s) {
    int q = strpbrk(s, ",\"\n\r") != NULL;
    if (!q) { tb_put(b, s); return; }
    tb_put(b, "\"");
    for (const char *p = s; *p; p++) tb_printf(b, *p == '"' ? "\"\"" : "%c", *p);
    tb_put(b, "\"");
}
static void csv_num(tb *b, double v) {
    if (isfinite(v)) tb_printf(b, ",%.10g", v);
    else tb_put(b, ",");
}

char *etok_sweep_csv(const etok_sweep_doc *d) {
    tb b = {0};
    tb_put(&b, "point,options,runs,runs_ok,meets_q,meets_s,frontier,best");
    for (int k = 0; k < ETOK_SW_N; k++)
        tb_printf(&b, ",%s,%s_ci_lo,%s_ci_hi", ETOK_SWEEP_FIELD[k], ETOK_SWEEP_FIELD[k], ETOK_SWEEP_FIELD[k]);
    tb_put(&b, "\n");
    for (size_t i = 0; i < d->n_points; i++) {
        const etok_sweep_point *p = &d->points[i];
        char opts[2048] = "";
        size_t o = 0;
        for (size_t k = 0; k < p->n_keys && o < sizeof opts; k++) {
            int w = snprintf(opts + o, sizeof opts - o, "%s%s=%s", k ? " " : "", p->keys[k], p->vals[k]);
            if (w < 0) break;
            o += (size_t)w;
        }
        csv_field(&b, p->name);
        tb_put(&b, ",");
        csv_field(&b, opts);
        tb_printf(&b, ",%d,%d,%d,%d,%d,%d", p->n_runs, p->n_ok, p->meets_q, p->meets_s, p->on_front, p->best);
        for (int k = 0; k < ETOK_SW_N; k++) {
            csv_num(&b, p->mean[k]);
            csv_num(&b, p->lo[k]);
            csv_num(&b, p->hi[k]);
        }
        tb_put(&b, "\n");
    }
    return tb_done(&b);
}

/* ---------- the page ---------- */

/* One scatter: eligible points filled, others hollow, CI whiskers on both axes, and (fig 1)
 * the frontier as a line through its points in x order. */
static char *scatter(const etok_sweep_doc *d, const char *title, int fx, int fy, const char *xl, const char *yl,
                     int frontier, const char *caption) {
    size_t n = d->n_points;
    double *buf = calloc(12 * (n ? n : 1), sizeof(double));
    if (!buf) return NULL;
    double *x[2] = {buf, buf + n}, *y[2] = {buf + 2 * n, buf + 3 * n};
    double *xlo[2] = {buf + 4 * n, buf + 5 * n}, *xhi[2] = {buf + 6 * n, buf + 7 * n};
    double *ylo[2] = {buf + 8 * n, buf + 9 * n}, *yhi[2] = {buf + 10 * n, buf + 11 * n};
    size_t k[2] = {0, 0};
    const char **lab[2] = {calloc(n ? n : 1, sizeof(char *)), calloc(n ? n : 1, sizeof(char *))};
    if (!lab[0] || !lab[1]) { free(lab[0]); free(lab[1]); free(buf); return NULL; }
    for (size_t i = 0; i < n; i++) {
        const etok_sweep_point *p = &d->points[i];
        int g = p->meets_q && p->meets_s ? 0 : 1;
        lab[g][k[g]] = n <= 40 ? p->name : NULL; /* named in the plot while they stay legible */
        x[g][k[g]] = p->mean[fx];
        y[g][k[g]] = p->mean[fy];
        xlo[g][k[g]] = p->lo[fx];
        xhi[g][k[g]] = p->hi[fx];
        ylo[g][k[g]] = p->lo[fy];
        yhi[g][k[g]] = p->hi[fy];
        k[g]++;
    }
    etok_svg_chart *c = etok_svg_chart_new(title, 820, 460);
    if (!c) { free(buf); free(lab[0]); free(lab[1]); return NULL; }
    /* axes fitted to the points, not to the whiskers: with few repeats a t interval can be
     * many times the spread of the points, and would squeeze them into one spot (the whiskers
     * are clipped at the plot edge instead, and the table has every interval) */
    double ax[2][2];
    int fld[2] = {fx, fy};
    for (int a = 0; a < 2; a++) {
        double lo = INFINITY, hi = -INFINITY;
        for (size_t i = 0; i < n; i++) {
            double v = d->points[i].mean[fld[a]];
            if (!isfinite(v)) continue;
            if (v < lo) lo = v;
            if (v > hi) hi = v;
        }
        if (!isfinite(lo)) { ax[a][0] = ax[a][1] = 0; continue; } /* nothing to fit: automatic */
        double pad = hi > lo ? 0.12 * (hi - lo) : (lo != 0 ? 0.1 * fabs(lo) : 1);
        ax[a][0] = lo - pad;
        ax[a][1] = hi + (a == 0 ? 2.5 : 1) * pad; /* room on the right for the labels */
        if (lo >= 0 && ax[a][0] < 0) ax[a][0] = 0;
        if (fld[a] == ETOK_SW_ACC || fld[a] == ETOK_SW_SLO) { ax[a][0] = 0; ax[a][1] = 1; } /* fractions */
    }
    etok_svg_chart_x_axis(c, xl, ETOK_SVG_LINEAR, ax[0][0], ax[0][1]);
    etok_svg_chart_y_axis(c, yl, ETOK_SVG_LINEAR, ax[1][0], ax[1][1]);
    etok_svg_chart_legend(c, ETOK_SVG_LEGEND_BELOW);
    if (caption) etok_svg_chart_caption(c, caption);
    int bad = 0;
    if (frontier) {
        /* the frontier's points in x order (insertion sort: a sweep has few points) */
        double fxs[256], fys[256];
        size_t nf = 0;
        for (size_t i = 0; i < n && nf < 256; i++) {
            const etok_sweep_point *p = &d->points[i];
            if (!p->on_front) continue;
            size_t j = nf++;
            while (j > 0 && fxs[j - 1] > p->mean[fx]) { fxs[j] = fxs[j - 1]; fys[j] = fys[j - 1]; j--; }
            fxs[j] = p->mean[fx];
            fys[j] = p->mean[fy];
        }
        etok_svg_style fs = {.color = "#009E73", .dashed = 1, .width_px = 2};
        if (nf) bad |= etok_svg_chart_add_series(c, "Pareto frontier (meets q* and s*)", fxs, fys, nf, &fs);
    }
    etok_svg_style fill = {.color = "#0072B2", .no_line = 1, .marker_px = 5, .x_lo = xlo[0], .x_hi = xhi[0],
                           .y_lo = ylo[0], .y_hi = yhi[0], .labels = lab[0]};
    etok_svg_style holl = {.color = "#D55E00", .no_line = 1, .hollow = 1, .marker_px = 5, .x_lo = xlo[1],
                           .x_hi = xhi[1], .y_lo = ylo[1], .y_hi = yhi[1], .labels = lab[1]};
    if (k[0]) bad |= etok_svg_chart_add_series(c, "meets q* and s* (filled)", x[0], y[0], k[0], &fill);
    if (k[1]) bad |= etok_svg_chart_add_series(c, "misses q* or s* (hollow)", x[1], y[1], k[1], &holl);
    char *svg = bad ? NULL : etok_svg_chart_render(c);
    etok_svg_chart_free(c);
    free(buf);
    free(lab[0]);
    free(lab[1]);
    return svg;
}

static void cell(tb *b, double v, double lo, double hi) {
    char s[32], l[32], h[32];
    etok_report_fmt(v, s, sizeof s);
    tb_printf(b, "<td>%s", s);
    if (isfinite(lo) && isfinite(hi)) {
        etok_report_fmt(lo, l, sizeof l);
        etok_report_fmt(hi, h, sizeof h);
        tb_printf(b, " <span class=\"ci\">[%s, %s]</span>", l, h);
    }
    tb_put(b, "</td>");
}

char *etok_sweep_html(const etok_sweep_doc *d) {
    tb b = {0};
    tb_put(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>etok sweep</title>\n"
               "<style>body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:24px;color:#222}"
               "table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:3px 7px;"
               "text-align:right}td:first-child,th:first-child{text-align:left}.ci{color:#666;font-size:11px}"
               "tr.front td{background:#eaf6f0}figure{margin:16px 0}figcaption{font-size:12px;color:#555;"
               "max-width:820px}.meta{font-size:13px;color:#444}</style>\n</head><body>\n<h1>etok sweep</h1>\n");
    size_t n_ok = 0;
    for (size_t i = 0; i < d->n_runs; i++) n_ok += !strcmp(d->runs[i].status, "ok");
    tb_put(&b, "<p class=\"meta\"><code>");
    tb_esc(&b, d->command);
    tb_printf(&b, "</code><br>%zu points, %zu runs (%zu complete), seed %llu, %d repeat%s per point, %zu idle "
                  "baseline%s%s.</p>\n",
              d->n_points, d->n_runs, n_ok, d->seed, d->repeat, d->repeat == 1 ? "" : "s", d->n_baselines,
              d->n_baselines == 1 ? "" : "s", d->interrupted ? "; <b>interrupted: partial sweep</b>" : "");
    if (d->best >= 0) {
        char r[32];
        etok_report_fmt(d->ratio_best_to_first, r, sizeof r);
        tb_put(&b, "<p>Lowest J/output-token meeting q* and s*: <b>");
        tb_esc(&b, d->points[d->best].name);
        tb_printf(&b, "</b>; its J/output-token is %s &times; that of the first point (", r);
        tb_esc(&b, d->points[0].name);
        tb_put(&b, ").</p>\n");
    } else
        tb_put(&b, "<p>No point meets q* and s*: no frontier.</p>\n");
    const char *cap = "filled: meets q* and s*; hollow: misses one; whiskers: 95% CI over repeats (t), clipped at the edge";
    struct {
        const char *title;
        int fx, fy;
        const char *xl, *yl;
        int front;
    } figs[] = {
        {"Energy vs latency: J/output-token against p90 TPOT", ETOK_SW_TPOT_P90, ETOK_SW_J_OUT, "p90 TPOT (s)",
         "J / output token (J)", 1},
        {"Energy vs throughput", ETOK_SW_TPUT, ETOK_SW_J_OUT, "output token rate over the window (token/s)",
         "J / output token (J)", 0},
        {"Quality vs energy: accuracy against J/correct-answer", ETOK_SW_J_CORRECT, ETOK_SW_ACC,
         "J / correct answer (J)", "accuracy", 0},
    };
    for (size_t f = 0; f < sizeof figs / sizeof figs[0]; f++) {
        char *svg = scatter(d, figs[f].title, figs[f].fx, figs[f].fy, figs[f].xl, figs[f].yl, figs[f].front, cap);
        if (!svg) { b.oom = 1; break; }
        const char *body = strstr(svg, "<svg");
        tb_put(&b, "<figure>");
        tb_put(&b, body ? body : svg);
        tb_put(&b, "</figure>\n");
        free(svg);
    }
    /* the table, sorted by J/output-token (unknown last) */
    size_t n = d->n_points;
    size_t *ix = malloc((n ? n : 1) * sizeof *ix);
    if (!ix) { free(b.s); return NULL; }
    for (size_t i = 0; i < n; i++) {
        size_t j = i;
        double v = d->points[i].mean[ETOK_SW_J_OUT];
        while (j > 0) {
            double u = d->points[ix[j - 1]].mean[ETOK_SW_J_OUT];
            if (!(isfinite(v) && (!isfinite(u) || u > v))) break;
            ix[j] = ix[j - 1];
            j--;
        }
        ix[j] = i;
    }
    tb_put(&b, "<h2>Points by J/output-token</h2>\n<table><tr><th>point</th><th>frontier</th><th>J/output-token</th>"
               "<th>p90 TPOT (s)</th><th>p90 TTFT (s)</th><th>token/s</th><th>accuracy</th><th>J/correct</th>"
               "<th>SLO attainment</th><th>mean power (W)</th><th>dynamic J/output-token</th><th>q*</th><th>s*</th>"
               "<th>runs ok</th></tr>\n");
    for (size_t r = 0; r < n; r++) {
        const etok_sweep_point *p = &d->points[ix[r]];
        tb_printf(&b, "<tr%s><td>", p->on_front ? " class=\"front\"" : "");
        tb_esc(&b, p->name);
        tb_printf(&b, "</td><td>%s</td>", p->on_front ? (p->best ? "&#9733; best" : "&#9733;") : "");
        static const int cols[] = {ETOK_SW_J_OUT, ETOK_SW_TPOT_P90, ETOK_SW_TTFT_P90, ETOK_SW_TPUT, ETOK_SW_ACC,
                                   ETOK_SW_J_CORRECT, ETOK_SW_SLO, ETOK_SW_POWER, ETOK_SW_J_DYN};
        for (size_t c = 0; c < sizeof cols / sizeof cols[0]; c++) cell(&b, p->mean[cols[c]], p->lo[cols[c]], p->hi[cols[c]]);
        tb_printf(&b, "<td>%s</td><td>%s</td><td>%d/%d</td></tr>\n", p->meets_q ? "yes" : "no", p->meets_s ? "yes" : "no",
                  p->n_ok, p->n_runs);
    }
    free(ix);
    tb_put(&b, "</table>\n<p class=\"meta\">Frontier: points meeting q* and s* that no other such point beats on both "
               "J/output-token and p90 TPOT. Means over complete repeats; [CI] = Student-t 95% interval over repeats "
               "(shown with 2+ repeats). Energy figures carry each run's meter source and uncertainty in its run.json; "
               "dynamic J/output-token subtracts the sweep's idle baseline. docs/SWEEP.md.</p>\n");
    {
        int any = 0;
        for (size_t i = 0; i < d->n_points; i++) any |= d->points[i].pred.present;
        if (any) {
            tb_put(&b, "<h2>TPF prediction beside measurement (against the first point)</h2>\n<ul>\n");
            for (size_t i = 0; i < d->n_points; i++) {
                if (!d->points[i].pred.present) continue;
                char line[1024];
                etok_lever_prediction_line(&d->points[i].pred, line, sizeof line);
                tb_put(&b, "<li><b>");
                tb_esc(&b, d->points[i].name);
                tb_put(&b, "</b>: ");
                tb_esc(&b, line);
                tb_put(&b, "</li>\n");
            }
            tb_put(&b, "</ul>\n<p class=\"meta\">Predicted: etok tpf on the first point's run with the lever applied (probe "
                       "roofs, the model's catalog entry; a model estimate). Measured: ratio of the points' means; its "
                       "interval combines the two points' repeat CIs (conservative; none with one repeat). "
                       "docs/LEVERS.md.</p>\n");
        }
    }
    if (d->n_baselines) {
        tb_put(&b, "<h2>Idle baselines</h2>\n<table><tr><th>id</th><th>reason</th><th>idle power (W)</th>"
                   "<th>&plusmn; (W)</th><th>duration (s)</th><th>source</th></tr>\n");
        for (size_t i = 0; i < d->n_baselines; i++) {
            const etok_sweep_baseline *bl = &d->baselines[i];
            char w[32], u[32], s[32];
            etok_report_fmt(bl->idle_power_w, w, sizeof w);
            etok_report_fmt(bl->uncertainty_w, u, sizeof u);
            etok_report_fmt(bl->duration_s, s, sizeof s);
            tb_printf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td><td>%s</td></tr>\n", bl->id,
                      bl->reason, w, u, s, bl->source);
        }
        tb_put(&b, "</table>\n");
    }
    tb_put(&b, "</body></html>\n");
    return tb_done(&b);
}
