/* compare_render.c — `etok compare` output: text table, Markdown, JSON, CSV and a
 * self-contained HTML page with a forest plot of the relative deltas and their 95% CIs
 * (svg.c). Formats the result of analyse/compare.c; computes nothing. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/compare.h"
#include "etok/lever_predict.h"
#include "etok/report.h"
#include "etok/strbuf.h"
#include "etok/svg.h"


static void sb_esc(etok_strbuf *b, const char *s) {
    char *e = etok_svg_escape(s);
    if (!e) {
        b->oom = 1;
        return;
    }
    etok_strbuf_printf(b, "%s", e);
    free(e);
}

static char *sb_done(etok_strbuf *b) {
    if (b->oom || !b->s) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

static const char *label(const etok_compare_delta *d, char *buf, size_t n) {
    if (d->stat[0]) snprintf(buf, n, "%s %s", d->name, d->stat);
    else snprintf(buf, n, "%s", d->name);
    return buf;
}

static void fmt(double v, char *buf, size_t n) { etok_report_fmt(v, buf, n); }

static void fmt_pct(double v, char *buf, size_t n) {
    if (isfinite(v)) snprintf(buf, n, "%+.1f%%", 100 * v);
    else snprintf(buf, n, "n/a");
}

static void fmt_signed(double v, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "n/a");
    else {
        if (n < 2) return;
        buf[0] = v < 0 ? '-' : '+';
        etok_report_fmt(fabs(v), buf + 1, n - 1);
    }
}

/* The TPF's predicted change beside the measured one (lever_predict.h), one line. */
void etok_lever_prediction_line(const etok_lever_prediction *p, char *buf, size_t n) {
    if (!p->present) { snprintf(buf, n, "TPF prediction: none (not two bench runs of the built-in engine)"); return; }
    if (!p->valid) { snprintf(buf, n, "TPF prediction: %s", p->why); return; }
    char pr[32], pj[32], mr[32], mrl[32], mrh[32], mj[32], mjl[32], mjh[32];
    fmt_pct(p->rate_ratio - 1, pr, sizeof pr);
    fmt_pct(p->joules_ratio - 1, pj, sizeof pj);
    fmt_pct(p->meas_rate_rel, mr, sizeof mr);
    fmt_pct(p->meas_rate_lo, mrl, sizeof mrl);
    fmt_pct(p->meas_rate_hi, mrh, sizeof mrh);
    fmt_pct(p->meas_joules_rel, mj, sizeof mj);
    fmt_pct(p->meas_joules_lo, mjl, sizeof mjl);
    fmt_pct(p->meas_joules_hi, mjh, sizeof mjh);
    snprintf(buf, n,
             "TPF prediction (etok tpf lever %s; %s; a model estimate): token rate %s predicted vs %s [%s, %s] measured "
             "(predicted/measured %.2f); J/output-token %s predicted vs %s [%s, %s] measured (predicted/measured %.2f); %s",
             p->lever, p->hardware, pr, mr, mrl, mrh, p->rate_pred_over_meas, pj, mj, mjl, mjh, p->joules_pred_over_meas,
             p->why);
}

static const char *gate_word(int g) { return g == 1 ? "pass" : g == 0 ? "FAIL" : "n/a"; }

static void covers(etok_strbuf *b, const etok_compare_result *r, const char *pre) {
    etok_strbuf_printf(b,
              "%sThe 95%% CIs are percentile bootstraps (%d resamples, seed %llu) over requests; when an arm pools "
              "several records (runs), each resample draws its runs first, then requests (or eval items) within them, and "
              "no interval is narrower than the Student-t interval over the runs, so run-to-run variance enters; paired by "
              "eval item where both arms ran the same items. An energy figure from one record without per-request energy "
              "has no CI (n/a). They do not include the meter's systematic error, stated per candidate: the same meter on "
              "the same machine cancels much of it in a ratio, different meters or boundaries do not.\n",
              pre, r->iters, (unsigned long long)r->seed);
}

static void systematic(etok_strbuf *b, const etok_compare_cand *c, const char *pre) {
    etok_strbuf_printf(b, "%smeter systematic band (1 sigma, relative): baseline %.1f%%, candidate %.1f%%; %s\n", pre,
              100 * c->systematic_base, 100 * c->systematic_cand,
              c->systematic_cancels ? "same meters, boundary and host: largely cancels in the relative deltas"
                                    : "meters, boundary or host differ: does NOT cancel, add it to the CIs");
}

static char *render_text(const etok_compare_result *r, int md) {
    etok_strbuf b = {0};
    const char *pre = md ? "" : "";
    if (md) etok_strbuf_printf(&b, "# etok compare\n\n");
    char q[32], sl[128];
    if (r->quality_target >= 0) snprintf(q, sizeof q, "accuracy >= %.3f", r->quality_target);
    else snprintf(q, sizeof q, "none");
    if (r->ttft_slo_s > 0 || r->tpot_slo_s > 0)
        snprintf(sl, sizeof sl, "TTFT <= %g s and TPOT <= %g s for %.0f%% of requests", r->ttft_slo_s, r->tpot_slo_s,
                 100 * r->slo_target);
    else
        snprintf(sl, sizeof sl, "none");
    etok_strbuf_printf(&b, "%sbaseline %s (%zu record%s); gate: q*: %s; s*: %s\n", pre, r->base_name, r->n_base_records,
              r->n_base_records == 1 ? "" : "s", q, sl);
    for (size_t i = 0; i < r->n_cand; i++) {
        const etok_compare_cand *c = &r->cand[i];
        etok_strbuf_printf(&b, md ? "\n## %s vs %s\n\n" : "\n== %s vs %s ==\n", c->name, r->base_name);
        for (size_t k = 0; k < c->n_mismatch; k++)
            etok_strbuf_printf(&b, "%s%s: %s\n", md ? "- " : "", c->mismatch[k].fatal ? "WARNING: MISMATCH (meaningless)" : "note: mismatch",
                      c->mismatch[k].message);
        etok_strbuf_printf(&b, "%s%s; units: %zu vs %zu (%zu vs %zu requests); energy: %s\n", md ? "\n" : "",
                  c->paired ? "paired by eval item" : "unpaired", c->n_units_base, c->n_units_cand, c->n_requests_base,
                  c->n_requests_cand, c->energy_note);
        if (md)
            etok_strbuf_printf(&b, "\n| figure | unit | %s | %s | delta | 95%% CI | relative | 95%% CI |\n|---|---|---|---|---|---|---|---|\n",
                      r->base_name, c->name);
        else
            etok_strbuf_printf(&b, "%-44s %-8s %11s %11s %11s %25s %9s %21s\n", "figure", "unit", "base", "cand", "delta",
                      "95% CI", "rel", "95% CI");
        for (size_t k = 0; k < c->n_deltas; k++) {
            const etok_compare_delta *d = &c->deltas[k];
            char l[64], a[32], bb[32], df[32], dlo[32], dhi[32], rl[32], rlo[32], rhi[32], ci1[80], ci2[80];
            label(d, l, sizeof l);
            fmt(d->d.a, a, sizeof a);
            fmt(d->d.b, bb, sizeof bb);
            fmt_signed(d->d.diff, df, sizeof df);
            fmt_signed(d->d.diff_lo, dlo, sizeof dlo);
            fmt_signed(d->d.diff_hi, dhi, sizeof dhi);
            fmt_pct(d->d.rel, rl, sizeof rl);
            fmt_pct(d->d.rel_lo, rlo, sizeof rlo);
            fmt_pct(d->d.rel_hi, rhi, sizeof rhi);
            snprintf(ci1, sizeof ci1, "[%s, %s]", dlo, dhi);
            snprintf(ci2, sizeof ci2, "[%s, %s]", rlo, rhi);
            int ci_na = d->valid && !(isfinite(d->d.diff_lo) && isfinite(d->d.diff_hi)); /* the note says why */
            if (!d->valid) {
                if (md) etok_strbuf_printf(&b, "| %s | %s | %s | %s | n/a | %s | | |\n", l, d->unit, a, bb, d->note);
                else etok_strbuf_printf(&b, "%-44s %-8s %11s %11s %11s  %s\n", l, d->unit, a, bb, "n/a", d->note);
            } else if (md)
                etok_strbuf_printf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s |\n", l, d->unit, a, bb, df, ci_na ? "n/a" : ci1,
                                   rl, ci_na ? d->note : ci2);
            else
                etok_strbuf_printf(&b, "%-44s %-8s %11s %11s %11s %25s %9s %21s%s%s\n", l, d->unit, a, bb, df, ci1, rl, ci2,
                                   ci_na ? "  " : "", ci_na ? d->note : "");
        }
        etok_strbuf_printf(&b, "%sgate: q* baseline %s, candidate %s; s* baseline %s, candidate %s\n", md ? "\n" : "",
                  gate_word(c->gate_q_base), gate_word(c->gate_q_cand), gate_word(c->gate_s_base), gate_word(c->gate_s_cand));
        systematic(&b, c, md ? "\n" : "");
        etok_strbuf_printf(&b, md ? "\n**verdict** %s\n" : "verdict: %s\n", c->verdict);
        if (c->pred.present) {
            char pl[1024];
            etok_lever_prediction_line(&c->pred, pl, sizeof pl);
            etok_strbuf_printf(&b, md ? "\n%s\n" : "%s\n", pl);
        }
    }
    etok_strbuf_printf(&b, "\n");
    covers(&b, r, "");
    return sb_done(&b);
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *pair(double lo, double hi) {
    if (!isfinite(lo) || !isfinite(hi)) return json_null();
    return json_pack("[f,f]", lo, hi);
}

static json_t *gate_json(int g) { return g < 0 ? json_null() : json_boolean(g); }

static char *render_json(const etok_compare_result *r) {
    json_t *root = json_object();
    if (!root) return NULL;
    json_object_set_new(root, "baseline", json_string(r->base_name));
    json_object_set_new(root, "baseline_records", json_integer((json_int_t)r->n_base_records));
    json_object_set_new(root, "quality_target", r->quality_target >= 0 ? json_real(r->quality_target) : json_null());
    json_object_set_new(root, "ttft_slo_s", r->ttft_slo_s > 0 ? json_real(r->ttft_slo_s) : json_null());
    json_object_set_new(root, "tpot_slo_s", r->tpot_slo_s > 0 ? json_real(r->tpot_slo_s) : json_null());
    json_object_set_new(root, "slo_attainment_target", json_real(r->slo_target));
    json_object_set_new(root, "bootstrap_iters", json_integer(r->iters));
    json_object_set_new(root, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(root, "mismatch_fatal", json_boolean(r->any_fatal));
    json_object_set_new(root, "ci_covers",
                        json_string("sampling between requests (and runs, when an arm pools repeats); not the meter's "
                                    "systematic error (see systematic)"));
    json_t *ca = json_array();
    json_object_set_new(root, "candidates", ca);
    for (size_t i = 0; i < r->n_cand; i++) {
        const etok_compare_cand *c = &r->cand[i];
        json_t *o = json_object();
        json_array_append_new(ca, o);
        json_object_set_new(o, "name", json_string(c->name));
        json_object_set_new(o, "paired", json_boolean(c->paired));
        json_object_set_new(o, "units", json_pack("[I,I]", (json_int_t)c->n_units_base, (json_int_t)c->n_units_cand));
        json_object_set_new(o, "requests", json_pack("[I,I]", (json_int_t)c->n_requests_base, (json_int_t)c->n_requests_cand));
        json_object_set_new(o, "energy", json_string(c->energy_note));
        json_t *mma = json_array();
        for (size_t k = 0; k < c->n_mismatch; k++)
            json_array_append_new(mma, json_pack("{s:s,s:b,s:s}", "what", c->mismatch[k].what, "fatal", c->mismatch[k].fatal,
                                                 "message", c->mismatch[k].message));
        json_object_set_new(o, "mismatches", mma);
        json_t *da = json_array();
        for (size_t k = 0; k < c->n_deltas; k++) {
            const etok_compare_delta *d = &c->deltas[k];
            json_t *x = json_object();
            json_object_set_new(x, "name", json_string(d->name));
            json_object_set_new(x, "stat", json_string(d->stat));
            json_object_set_new(x, "unit", json_string(d->unit));
            json_object_set_new(x, "valid", json_boolean(d->valid));
            json_object_set_new(x, "paired", json_boolean(d->paired));
            json_object_set_new(x, "baseline", num(d->d.a));
            json_object_set_new(x, "baseline_ci95", pair(d->d.a_lo, d->d.a_hi));
            json_object_set_new(x, "candidate", num(d->d.b));
            json_object_set_new(x, "candidate_ci95", pair(d->d.b_lo, d->d.b_hi));
            json_object_set_new(x, "delta", d->valid ? num(d->d.diff) : json_null());
            json_object_set_new(x, "delta_ci95", d->valid ? pair(d->d.diff_lo, d->d.diff_hi) : json_null());
            json_object_set_new(x, "relative", d->valid ? num(d->d.rel) : json_null());
            json_object_set_new(x, "relative_ci95", d->valid ? pair(d->d.rel_lo, d->d.rel_hi) : json_null());
            json_object_set_new(x, "note", json_string(d->note));
            json_array_append_new(da, x);
        }
        json_object_set_new(o, "deltas", da);
        json_object_set_new(o, "gate", json_pack("{s:o,s:o,s:o,s:o}", "q_baseline", gate_json(c->gate_q_base), "q_candidate",
                                                 gate_json(c->gate_q_cand), "s_baseline", gate_json(c->gate_s_base),
                                                 "s_candidate", gate_json(c->gate_s_cand)));
        json_object_set_new(o, "comparable", json_boolean(c->comparable));
        json_object_set_new(o, "systematic", json_pack("{s:o,s:o,s:b}", "baseline_rel", num(c->systematic_base),
                                                       "candidate_rel", num(c->systematic_cand), "cancels",
                                                       c->systematic_cancels));
        json_object_set_new(o, "verdict", json_string(c->verdict));
        if (c->pred.present) {
            const etok_lever_prediction *p = &c->pred;
            json_t *jp = json_object();
            json_object_set_new(jp, "valid", json_boolean(p->valid));
            json_object_set_new(jp, "lever", json_string(p->lever));
            json_object_set_new(jp, "hardware", json_string(p->hardware));
            json_object_set_new(jp, "note", json_string(p->why));
            json_object_set_new(jp, "power_curve", json_boolean(p->power_curve));
            json_object_set_new(jp, "token_rate_ratio", num(p->rate_ratio));
            json_object_set_new(jp, "decode_rate_ratio", num(p->decode_ratio));
            json_object_set_new(jp, "joules_per_output_token_ratio", num(p->joules_ratio));
            json_object_set_new(jp, "measured_token_rate_rel", num(p->meas_rate_rel));
            json_object_set_new(jp, "measured_token_rate_rel_ci", pair(p->meas_rate_lo, p->meas_rate_hi));
            json_object_set_new(jp, "measured_joules_per_output_token_rel", num(p->meas_joules_rel));
            json_object_set_new(jp, "measured_joules_per_output_token_rel_ci", pair(p->meas_joules_lo, p->meas_joules_hi));
            json_object_set_new(jp, "token_rate_predicted_over_measured", num(p->rate_pred_over_meas));
            json_object_set_new(jp, "joules_predicted_over_measured", num(p->joules_pred_over_meas));
            json_object_set_new(jp, "source", json_string("estimate (etok tpf) vs measured"));
            json_object_set_new(o, "tpf_prediction", jp);
        }
    }
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!s) return NULL;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return NULL;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    return t;
}

static void csv_str(etok_strbuf *b, const char *s) {
    etok_strbuf_printf(b, "\"");
    for (; *s; s++) etok_strbuf_printf(b, *s == '"' ? "\"\"" : "%c", *s);
    etok_strbuf_printf(b, "\"");
}

static void csv_num(etok_strbuf *b, double v) {
    if (isfinite(v)) etok_strbuf_printf(b, ",%.10g", v);
    else etok_strbuf_printf(b, ",");
}

static char *render_csv(const etok_compare_result *r) {
    etok_strbuf b = {0};
    etok_strbuf_printf(&b, "baseline,candidate,figure,stat,unit,paired,baseline_value,candidate_value,delta,delta_lo,delta_hi,"
                  "relative,relative_lo,relative_hi,comparable,note\n");
    for (size_t i = 0; i < r->n_cand; i++) {
        const etok_compare_cand *c = &r->cand[i];
        for (size_t k = 0; k < c->n_deltas; k++) {
            const etok_compare_delta *d = &c->deltas[k];
            csv_str(&b, r->base_name);
            etok_strbuf_printf(&b, ",");
            csv_str(&b, c->name);
            etok_strbuf_printf(&b, ",%s,%s,%s,%d", d->name, d->stat, d->unit, d->paired);
            csv_num(&b, d->d.a);
            csv_num(&b, d->d.b);
            double v[6] = {d->d.diff, d->d.diff_lo, d->d.diff_hi, d->d.rel, d->d.rel_lo, d->d.rel_hi};
            for (int j = 0; j < 6; j++) csv_num(&b, d->valid ? v[j] : NAN);
            etok_strbuf_printf(&b, ",%d,", c->comparable);
            csv_str(&b, d->note);
            etok_strbuf_printf(&b, "\n");
        }
    }
    return sb_done(&b);
}

/* Forest plot: one row per figure, the relative delta (%) with its 95% CI, a line at 0. */
static char *forest(const etok_compare_cand *c) {
    size_t n = 0;
    for (size_t k = 0; k < c->n_deltas; k++) n += c->deltas[k].valid && isfinite(c->deltas[k].d.rel);
    char title[160];
    snprintf(title, sizeof title, "%s vs baseline: relative change with 95%% CI (row = figure, see table)", c->name);
    etok_svg_chart *ch = etok_svg_chart_new(title, 900, (int)(120 + 26 * (n ? n : 1)));
    if (!ch) return NULL;
    etok_svg_chart_x_axis(ch, "relative change, candidate / baseline - 1 (%)", ETOK_SVG_LINEAR, 0, 0);
    etok_svg_chart_y_axis(ch, "figure (row number in the table)", ETOK_SVG_LINEAR, 0, (double)n + 1);
    etok_svg_chart_legend(ch, ETOK_SVG_LEGEND_BELOW);
    etok_svg_chart_caption(ch, "whiskers: bootstrap 95% CI (sampling only; the meter's systematic band is stated separately)");
    etok_svg_chart_add_vline(ch, 0, "no change", NULL);
    size_t row = 0;
    int rc = 0;
    for (size_t k = 0; k < c->n_deltas && rc == 0; k++) {
        const etok_compare_delta *d = &c->deltas[k];
        if (!d->valid || !isfinite(d->d.rel)) continue;
        row++;
        double y = (double)(n + 1 - row);
        char l[64], nm[96];
        label(d, l, sizeof l);
        snprintf(nm, sizeof nm, "%zu %s", row, l);
        double xs[2] = {100 * d->d.rel_lo, 100 * d->d.rel_hi}, ys[2] = {y, y};
        double px = 100 * d->d.rel;
        etok_svg_style st = {.color = etok_svg_palette(row - 1), .width_px = 3};
        if (isfinite(xs[0]) && isfinite(xs[1])) rc |= etok_svg_chart_add_series(ch, nm, xs, ys, 2, &st);
        etok_svg_style mk = {.color = etok_svg_palette(row - 1), .no_line = 1, .markers = 1};
        rc |= etok_svg_chart_add_series(ch, isfinite(xs[0]) ? NULL : nm, &px, &y, 1, &mk);
    }
    char *svg = rc ? NULL : etok_svg_chart_render(ch);
    etok_svg_chart_free(ch);
    return svg;
}

static char *render_html(const etok_compare_result *r) {
    char *t = render_text(r, 0);
    if (!t) return NULL;
    etok_strbuf b = {0};
    etok_strbuf_printf(&b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n<title>etok compare</title>\n"
                  "<style>body{font-family:system-ui,sans-serif;margin:24px;max-width:1100px}"
                  "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}"
                  "td:first-child{text-align:left}.verdict{font-weight:bold;font-size:1.1em}.warn{color:#b00}"
                  "</style></head><body>\n<h1>etok compare: baseline ");
    sb_esc(&b, r->base_name);
    etok_strbuf_printf(&b, "</h1>\n");
    for (size_t i = 0; i < r->n_cand; i++) {
        const etok_compare_cand *c = &r->cand[i];
        etok_strbuf_printf(&b, "<h2>");
        sb_esc(&b, c->name);
        etok_strbuf_printf(&b, "</h2>\n<p class=\"verdict\">");
        sb_esc(&b, c->verdict);
        etok_strbuf_printf(&b, "</p>\n");
        if (c->pred.present) {
            char pl[1024];
            etok_lever_prediction_line(&c->pred, pl, sizeof pl);
            etok_strbuf_printf(&b, "<p class=\"note\">");
            sb_esc(&b, pl);
            etok_strbuf_printf(&b, "</p>\n");
        }
        for (size_t k = 0; k < c->n_mismatch; k++) {
            etok_strbuf_printf(&b, "<p class=\"%s\">%s: ", c->mismatch[k].fatal ? "warn" : "note",
                      c->mismatch[k].fatal ? "WARNING: mismatch that makes the numbers meaningless" : "mismatch");
            sb_esc(&b, c->mismatch[k].message);
            etok_strbuf_printf(&b, "</p>\n");
        }
        char *svg = forest(c);
        if (!svg) b.oom = 1;
        else {
            etok_strbuf_printf(&b, "<figure>%s</figure>\n", svg);
            free(svg);
        }
        etok_strbuf_printf(&b, "<table><tr><th>#</th><th>figure</th><th>unit</th><th>baseline</th><th>candidate</th><th>delta [95%% CI]</th>"
                      "<th>relative [95%% CI]</th><th>note</th></tr>\n");
        size_t row = 0;
        for (size_t k = 0; k < c->n_deltas; k++) {
            const etok_compare_delta *d = &c->deltas[k];
            char l[64], a[32], bb[32], df[32], dlo[32], dhi[32], rl[32], rlo[32], rhi[32];
            label(d, l, sizeof l);
            fmt(d->d.a, a, sizeof a);
            fmt(d->d.b, bb, sizeof bb);
            fmt_signed(d->d.diff, df, sizeof df);
            fmt_signed(d->d.diff_lo, dlo, sizeof dlo);
            fmt_signed(d->d.diff_hi, dhi, sizeof dhi);
            fmt_pct(d->d.rel, rl, sizeof rl);
            fmt_pct(d->d.rel_lo, rlo, sizeof rlo);
            fmt_pct(d->d.rel_hi, rhi, sizeof rhi);
            int plotted = d->valid && isfinite(d->d.rel);
            if (plotted) row++;
            if (plotted) etok_strbuf_printf(&b, "<tr><td>%zu</td><td>%s</td><td>", row, l);
            else etok_strbuf_printf(&b, "<tr><td></td><td>%s</td><td>", l);
            sb_esc(&b, d->unit);
            if (d->valid)
                etok_strbuf_printf(&b, "</td><td>%s</td><td>%s</td><td>%s [%s, %s]</td><td>%s [%s, %s]</td><td>", a, bb, df, dlo, dhi,
                          rl, rlo, rhi);
            else
                etok_strbuf_printf(&b, "</td><td>%s</td><td>%s</td><td>n/a</td><td>n/a</td><td>", a, bb);
            sb_esc(&b, d->note);
            etok_strbuf_printf(&b, "</td></tr>\n");
        }
        etok_strbuf_printf(&b, "</table>\n");
    }
    etok_strbuf_printf(&b, "<h2>Full text</h2>\n<pre>");
    sb_esc(&b, t);
    etok_strbuf_printf(&b, "</pre>\n</body></html>\n");
    free(t);
    return sb_done(&b);
}

char *etok_compare_render(const etok_compare_result *r, const char *format) {
    if (!strcmp(format, "md") || !strcmp(format, "markdown")) return render_text(r, 1);
    if (!strcmp(format, "json")) return render_json(r);
    if (!strcmp(format, "csv")) return render_csv(r);
    if (!strcmp(format, "html")) return render_html(r);
    return render_text(r, 0);
}
