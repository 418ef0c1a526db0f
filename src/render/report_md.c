/* report_md.c — the reporting set as a Markdown table (stdout and report.md).
 * Formats metrics.h figures; computes nothing. */
#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/report.h"
#include "etok/strbuf.h"


void etok_report_fmt(double v, char *buf, size_t n) {
    if (!isfinite(v)) snprintf(buf, n, "n/a");
    else if (v != 0 && (fabs(v) >= 1e6 || fabs(v) < 1e-3)) snprintf(buf, n, "%.3e", v);
    else snprintf(buf, n, "%.4g", v);
}

void etok_report_carbon_text(const etok_record *r, char *buf, size_t n) {
    buf[0] = '\0';
    if (!r->grid.present) return;
    char u[48] = "the source states no uncertainty";
    if (isfinite(r->grid.uncertainty_g_per_kwh)) snprintf(u, sizeof u, "± %.3g (1-sigma)", r->grid.uncertainty_g_per_kwh);
    char when[64] = "";
    if (r->grid.region[0]) snprintf(when, sizeof when, "region %s, %d annual average, ", r->grid.region, r->grid.year);
    snprintf(buf, n,
             "Carbon: CO2e figures = energy x PUE x %.4g gCO2e/kWh (%s%s-based; %s); source: %s. "
             "Location-based means the average of the grid where the electricity is used, not a supplier "
             "contract or certificates (market-based, GHG Protocol Scope 2). Operational emissions only: "
             "embodied (manufacturing, construction) emissions are not included. The uncertainty carries the "
             "energy figure's and, where stated, the intensity's.",
             r->grid.g_per_kwh, when, r->grid.basis, u, r->grid.source);
}

/* The serving workload line (config.dataset, etok bench --dataset-name; docs/WORKLOADS.md), or "". */
static void dataset_text(const etok_record *r, char *buf, size_t n) {
    buf[0] = '\0';
    json_t *cfg = r->config_json ? json_loads(r->config_json, 0, NULL) : NULL;
    json_t *d = json_object_get(cfg, "dataset");
    const char *name = json_string_value(json_object_get(d, "name"));
    if (name) {
        char hon[160] = "";
        json_t *h = json_object_get(d, "length_honoured");
        if (h)
            snprintf(hon, sizeof hon, "; exact output length asked (ignore_eos, min_tokens): %lld of %lld ok requests "
                     "got it, %lld shorter, %lld longer",
                     (long long)json_integer_value(json_object_get(h, "exact")),
                     (long long)json_integer_value(json_object_get(h, "checked")),
                     (long long)json_integer_value(json_object_get(h, "shorter")),
                     (long long)json_integer_value(json_object_get(h, "longer")));
        snprintf(buf, n,
                 "workload: dataset %.40s, %lld prompts, mean requested input %.1f / output %.1f tokens (%.100s)%s; "
                 "quality not measured (no reference answers)",
                 name, (long long)json_integer_value(json_object_get(d, "items")),
                 json_number_value(json_object_get(d, "mean_input_len")),
                 json_number_value(json_object_get(d, "mean_output_len")),
                 json_string_value(json_object_get(d, "length_basis")) ? json_string_value(json_object_get(d, "length_basis")) : "?",
                 hon);
    }
    json_decref(cfg);
}

/* Human labels for the field names. */
static const char *label(const char *name) {
    static const char *const L[][2] = {
        {"joules_per_output_token", "J / output token"},
        {"joules_per_token", "J / token (in+out)"},
        {"joules_per_input_token", "J / input token (prefill)"},
        {"joules_per_decode_token", "J / decode token"},
        {"joules_per_request", "J / request"},
        {"joules_per_correct_answer", "J / correct answer"},
        {"quality_conditioned_joules_per_token", "quality-conditioned J / token"},
        {"utilization_adjusted_joules_per_token", "utilization-adjusted J / token"},
        {"energy_j", "energy in window"},
        {"dynamic_energy_j", "dynamic energy (minus idle)"},
        {"mean_power_w", "mean power"},
        {"idle_power_w", "idle power"},
        {"pue_adjusted_power_w", "PUE-adjusted power"},
        {"energy_cost_per_mtok", "energy cost / 1M output tokens"},
        {"co2e_g_per_mtok", "CO2e / 1M output tokens"},
        {"co2e_g_per_request", "CO2e / request"},
        {"mfu", "MFU (compute)"},
        {"mbu", "MBU (memory bandwidth)"},
        {"power_limit_ratio", "power / device limit"},
        {"utilization", "utilization (vs this run's ceiling)"},
        {"utilization_adjusted_token_rate_tps", "utilization-adjusted output rate"},
        {"token_rate_tps", "output rate while busy"},
        {"deployment_utilization", "deployment utilization U_dep"},
        {"accuracy", "accuracy"},
        {"slo_attainment", "SLO attainment"},
        {"goodput_rps", "goodput (requests)"},
        {"goodput_tps", "goodput (tokens)"},
        {"ttft_s", "TTFT"},
        {"tpot_s", "TPOT"},
        {"itl_s", "ITL"},
        {"e2e_s", "E2E latency"},
        {"requests_failed", "failed requests"},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
        if (!strcmp(L[i][0], name)) return L[i][1];
    return name;
}

void etok_report_fmt_uncertainty(const etok_metric *x, const char *pm, char *buf, size_t n) {
    buf[0] = '\0';
    if (!x->valid) return;
    if (isfinite(x->ci_lo) && isfinite(x->ci_hi)) {
        char lo[24], hi[24];
        etok_report_fmt(x->ci_lo, lo, sizeof lo);
        etok_report_fmt(x->ci_hi, hi, sizeof hi);
        snprintf(buf, n, "95%% CI [%s, %s]", lo, hi);
    } else if (isfinite(x->uncertainty)) {
        char e[24];
        etok_report_fmt(x->uncertainty, e, sizeof e);
        snprintf(buf, n, "%s %s", pm, e);
    }
}

static void row(etok_strbuf *b, const etok_metric *x) {
    char v[48], u[96], name[96];
    if (x->stat[0]) snprintf(name, sizeof name, "%s %s", label(x->name), x->stat);
    else snprintf(name, sizeof name, "%s", label(x->name));
    if (x->valid) etok_report_fmt(x->value, v, sizeof v);
    else snprintf(v, sizeof v, "n/a");
    etok_report_fmt_uncertainty(x, "±", u, sizeof u);
    etok_strbuf_printf(b, "| %s | %s | %s | %s | %s | %s |\n", name, v, x->unit, x->source, u[0] ? u : "–", x->note);
}

/* The measured binding constraint with every ratio it was chosen from. */
static void binding_row(etok_strbuf *b, const etok_metrics *m) {
    const char *names[3] = {"mfu", "mbu", "power_limit_ratio"}, *labels[3] = {"MFU", "MBU", "power/limit"};
    char ratios[160] = "";
    size_t k = 0;
    for (int i = 0; i < 3; i++) {
        const etok_metric *x = etok_metrics_get(m, names[i], "");
        char v[32] = "n/a";
        if (x && x->valid) etok_report_fmt(x->value, v, sizeof v);
        k += (size_t)snprintf(ratios + k, k < sizeof ratios ? sizeof ratios - k : 0, "%s%s %s", i ? ", " : "",
                              labels[i], v);
        if (k >= sizeof ratios) break;
    }
    etok_strbuf_printf(b, "| measured binding constraint | %s | – | engine+probe | – | highest of %s |\n", m->binding_constraint,
              ratios);
}

static const char *const COMPACT[][2] = {
    {"joules_per_output_token", ""}, {"joules_per_token", ""},
    {"joules_per_input_token", ""}, {"joules_per_decode_token", ""},
    {"joules_per_correct_answer", ""}, {"quality_conditioned_joules_per_token", ""},
    {"mfu", ""}, {"mbu", ""}, {"power_limit_ratio", ""},
    {"mean_power_w", ""}, {"idle_power_w", ""}, {"pue_adjusted_power_w", ""},
    {"utilization", ""}, {"utilization_adjusted_token_rate_tps", ""},
    {"requests_failed", ""}, {"accuracy", ""}, {"ttft_s", "p50"}, {"ttft_s", "p90"}, {"ttft_s", "p99"},
    {"tpot_s", "p50"}, {"tpot_s", "p90"}, {"tpot_s", "p99"}, {"slo_attainment", ""},
    {"goodput_rps", ""}, {"goodput_tps", ""}, {"energy_cost_per_mtok", ""},
    {"co2e_g_per_mtok", ""}, {"co2e_g_per_request", ""},
};

char *etok_report_md(const etok_record *r, const etok_metrics *m, int compact) {
    etok_strbuf b = {0};
    const etok_metric *req = etok_metrics_get(m, "requests", ""), *dur = etok_metrics_get(m, "duration_s", "");
    const etok_metric *rok = etok_metrics_get(m, "requests_ok", "");
    const etok_metric *tin = etok_metrics_get(m, "tokens_in", ""), *tout = etok_metrics_get(m, "tokens_out", "");
    double n_req = req && req->valid ? req->value : 0, n_ok = rok && rok->valid ? rok->value : n_req;
    char partial[96] = "";
    if (r->partial)
        snprintf(partial, sizeof partial, "  **PARTIAL RUN (%s)**",
                 !strcmp(r->stop_reason, "endpoint_unreachable") ? "the endpoint became unreachable"
                 : r->stop_reason[0] && strcmp(r->stop_reason, "interrupted") ? r->stop_reason
                                                                               : "interrupted");
    if (!compact) etok_strbuf_printf(&b, "# etok %s report\n\n", r->kind[0] ? r->kind : "run");
    etok_strbuf_printf(&b, "%s%s\n", compact ? "" : "- ", r->command[0] ? r->command : "(no command recorded)");
    etok_strbuf_printf(&b, "%shost %s, %s, %d CPUs%s\n", compact ? "" : "- ", r->host[0] ? r->host : "?",
              r->cpu_model[0] ? r->cpu_model : "?", r->cpu_count, partial);
    etok_strbuf_printf(&b, "%swindow %.2f s, %.0f requests (%.0f ok, %.0f failed), %.0f input + %.0f output tokens; energy: %s at the %s boundary%s\n",
              compact ? "" : "- ", dur && dur->valid ? dur->value : NAN, n_req, n_ok, n_req - n_ok,
              tin && tin->valid ? tin->value : 0, tout && tout->valid ? tout->value : 0, m->energy_source,
              m->energy_boundary,
              !strcmp(m->energy_source, "estimate") ? " (a MODEL ESTIMATE, not a measurement)" : "");
    etok_strbuf_printf(&b, "%sphase split: %s; measured binding constraint: %s; smallest TPF ceiling: %s; q* gate: %s\n\n",
              compact ? "" : "- ", m->phase_split_method, m->binding_constraint, m->tpf_binding_ceiling,
              !(r->quality_target >= 0) ? "none (no q* given, or quality not measured)"
              : m->quality_gate_met ? "met" : "NOT met (quality-conditioned figures withheld)");
    {
        char dsl[512];
        dataset_text(r, dsl, sizeof dsl);
        if (dsl[0]) etok_strbuf_printf(&b, "%s%s\n\n", compact ? "" : "- ", dsl);
    }
    if (m->energy_warning[0]) etok_strbuf_printf(&b, "**energy warning:** %s\n\n", m->energy_warning);
    if (m->background_warning[0]) etok_strbuf_printf(&b, "**background load warning:** %s\n\n", m->background_warning);
    etok_strbuf_printf(&b, "| figure | value | unit | source | uncertainty | note |\n|---|---:|---|---|---|---|\n");
    if (compact) {
        for (size_t i = 0; i < sizeof COMPACT / sizeof COMPACT[0]; i++) {
            const etok_metric *x = etok_metrics_get(m, COMPACT[i][0], COMPACT[i][1]);
            if (!strcmp(COMPACT[i][0], "mfu")) binding_row(&b, m);
            if (x) row(&b, x);
        }
    } else {
        for (size_t i = 0; i < m->n; i++) {
            if (!strcmp(m->m[i].name, "mfu")) binding_row(&b, m);
            row(&b, &m->m[i]);
        }
        etok_strbuf_printf(&b, "\nSources: counter = hardware energy accumulator; power = sampled power integrated; "
                      "external = power-meter log; estimate = a model, never a measurement; clock = etok's "
                      "monotonic timestamps; eval = answer checks; engine = the engine's own FLOP/byte counts; "
                      "probe = `etok probe` ceilings. Uncertainty: ± is 1-sigma; CIs are bootstrap 95%% over "
                      "requests. Field definitions: docs/METRICS.md §3 (how etok computes them: docs/REPORT.md).\n");
    }
    {
        char carbon[1024];
        etok_report_carbon_text(r, carbon, sizeof carbon);
        if (carbon[0]) etok_strbuf_printf(&b, "\n%s\n", carbon);
    }
    if (b.oom) {
        free(b.s);
        return NULL;
    }
    if (!b.s) return calloc(1, 1);
    return b.s;
}
