/* tpf_render.c — TPF output formats: text, JSON (METRICS.md §1 field names), lever
 * comparisons, sweep CSV/JSON/SVG. Owns: layout and field naming. Does not own: any figure
 * (all come from analyse/tpf.c, levers.c, sweep.c); every figure is labelled a model
 * estimate unless a run record measured it. */
#include "etok/tpf_render.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/svg.h"

static const char *MODEL_NOTE =
    "model estimate (etok tpf, docs/METRICS.md section 1), not a measurement; device power modelled as "
    "P_idle + (P_max - P_idle) * activity (docs/TPF.md); calibrated against published measurements where the "
    "hardware has a calibration (etok tpf --validate shows the error; held-out points within 25%), otherwise "
    "a plain roofline, optimistic by up to 5x in rate; ceilings are upper bounds";

const char *etok_tpf_field_label(const char *f) {
    static const struct { const char *f, *l; } L[] = {
        {"facility.power_w", "Facility power P_grid (W)"},
        {"facility.pue", "PUE (1)"},
        {"facility.cooling_w", "Cooling capacity P_cooling (W)"},
        {"facility.theta", "Accounting factor theta (1)"},
        {"hardware.count", "Devices N_dev (count)"},
        {"hardware.devices_per_replica", "Devices per replica (count)"},
        {"hardware.power_limit_w", "Device power limit (W)"},
        {"hardware.mem_usable_fraction", "Usable memory fraction (1)"},
        {"workload.input_tokens", "Input length (tokens)"},
        {"workload.output_tokens", "Output length (tokens)"},
        {"workload.batch", "Batch per replica (sequences)"},
        {"model.attention_window", "Attention window (tokens)"},
        {"utilization", "Utilization U (1)"},
        {"phi", "Phi_system (1)"},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++)
        if (!strcmp(L[i].f, f)) return L[i].l;
    return f;
}

/* ---------- helpers ---------- */

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static char *num(double v, char *buf, size_t n) {
    if (isnan(v)) snprintf(buf, n, "n/a");
    else if (isinf(v)) snprintf(buf, n, "unlimited");
    else if (v != 0 && (fabs(v) >= 1e6 || fabs(v) < 1e-3)) snprintf(buf, n, "%.4g", v);
    else snprintf(buf, n, "%.4g", v);
    return buf;
}

static char *si(double v, const char *unit, char *buf, size_t n) {
    char t[32];
    if (!isfinite(v)) return num(v, buf, n);
    etok_svg_format_si(v, t, sizeof t);
    /* "2.5k" + " W" -> "2.5 kW" */
    size_t l = strlen(t);
    if (l && strchr("kMGTP", t[l - 1])) {
        char p = t[l - 1];
        t[l - 1] = '\0';
        snprintf(buf, n, "%s %c%s", t, p, unit);
    } else {
        snprintf(buf, n, "%s %s", t, unit);
    }
    return buf;
}

static void levers_str(const etok_tpf_context *ctx, char *buf, size_t n) {
    buf[0] = '\0';
    for (size_t i = 0; ctx && i < 16 && ctx->levers[i]; i++) {
        if (i) strncat(buf, ", ", n - strlen(buf) - 1);
        strncat(buf, ctx->levers[i], n - strlen(buf) - 1);
    }
}

static void text_header(FILE *f, const etok_tpf_scenario *s, const etok_tpf_result *r, const etok_tpf_context *ctx) {
    char a[64], b[64], c[64], lv[512];
    levers_str(ctx, lv, sizeof lv);
    fprintf(f, "scenario    %s%s%s%s\n", ctx && ctx->scenario_name ? ctx->scenario_name : "(unnamed)", *lv ? "  (levers: " : "",
            lv, *lv ? ")" : "");
    fprintf(f, "hardware    %d x %s (%s), %d device(s) per replica, %d replica(s)\n", s->device_count, s->hw.name,
            *s->hw.display_name ? s->hw.display_name : s->hw.name, r->devices_per_replica, r->replicas);
    fprintf(f, "model       %s: %s weights (%s), KV %s, compute %s at %s per device, memory %s per device\n", s->model.name,
            etok_dtype_name(s->weight_dtype), si(r->stats.weight_bytes, "B", a, sizeof a), etok_dtype_name(s->kv_dtype),
            etok_dtype_name(r->compute_dtype), si(r->peak_flops, "FLOP/s", b, sizeof b), si(r->mem_bw_bps, "B/s", c, sizeof c));
    fprintf(f, "workload    %d input + %d output tokens per request, batch %d per replica (largest that fits: %d)\n",
            s->input_tokens, s->output_tokens, r->batch, r->batch_max);
    if (s->has_facility) {
        char d[64];
        fprintf(f, "facility    P_grid %s, PUE %.3g, cooling %s, theta %.3g -> P_IT %s\n", si(s->facility_power_w, "W", a, sizeof a),
                s->pue, s->cooling_w > 0 ? si(s->cooling_w, "W", b, sizeof b) : "not limited", s->theta,
                si(r->it_power_w, "W", d, sizeof d));
    } else {
        fprintf(f, "facility    none given: delivered_power and cooling are not limited\n");
    }
    if (ctx && ctx->from_run) {
        fprintf(f, "measured    from %s: joules_per_output_token %.4g J/token [measured]", ctx->from_run,
                s->measured_joules_per_output_token);
        if (s->measured_device_power_w > 0) fprintf(f, ", device power %.4g W [measured]", s->measured_device_power_w);
        fprintf(f, ", utilization %.3g [%s]; they replace the modelled values\n", s->utilization,
                s->utilization_measured ? "measured" : "scenario: the record has none");
    }
}

/* "381 gCO2e/kWh (de, location-based, 2023)" or "... (user-given)". */
static void grid_desc(const etok_grid *g, char *buf, size_t n) {
    if (g->region[0])
        snprintf(buf, n, "%.4g gCO2e/kWh (%s, %s-based, %d)", g->g_per_kwh, g->region, g->basis, g->year);
    else
        snprintf(buf, n, "%.4g gCO2e/kWh (%s)", g->g_per_kwh, g->basis);
}

char *etok_tpf_render_text(const etok_tpf_scenario *s, const etok_tpf_result *r, const etok_tpf_context *ctx) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    char a[64], b[64], c[64];
    fprintf(f, "etok tpf: Token Production Function (%s)\n\n", ctx && ctx->from_run ? "model estimate with measured inputs" : "model estimate, not a measurement");
    text_header(f, s, r, ctx);
    fprintf(f, "\nper token                      prefill        decode  per output token\n");
    fprintf(f, "  flops_per_token (FLOP)   %12.4g  %12.4g  %12.4g\n", r->flops_per_token_prefill, r->flops_per_token_decode,
            r->flops_per_output_token);
    fprintf(f, "  bytes_per_token (byte)   %12.4g  %12.4g  %12.4g\n", r->bytes_per_token_prefill, r->bytes_per_token_decode,
            r->bytes_per_output_token);
    fprintf(f, "  arithmetic intensity     %12.4g  %12.4g  %12.4g  FLOP/byte\n", r->arithmetic_intensity_prefill,
            r->arithmetic_intensity_decode, r->arithmetic_intensity);
    fprintf(f, "  KV cache: %s per token of context, %s per sequence\n", si(r->stats.kv_bytes_per_token, "B", a, sizeof a),
            si(r->kv_bytes_per_sequence, "B", b, sizeof b));

    fprintf(f, "\nceilings: each an independent upper bound on output token/s from one resource, at batch %d, before Phi and U\n",
            r->batch);
    fprintf(f, "  %-18s %14s  %9s\n", "", "token/s", "headroom");
    for (int i = 0; i < ETOK_CEIL_COUNT; i++) {
        char h[64];
        if (isfinite(r->headroom[i])) snprintf(h, sizeof h, "%8.3gx", r->headroom[i]);
        else snprintf(h, sizeof h, "%9s", "-");
        const char *why = "";
        if (i == ETOK_CEIL_DEVICE_POWER_CAP)
            why = s->power_limit_w > 0 ? "  (headroom = power_limit_w / modelled draw)" : "  (no hardware.power_limit_w set)";
        else if ((i == ETOK_CEIL_DELIVERED_POWER || i == ETOK_CEIL_COOLING) && !s->has_facility)
            why = "  (no facility given)";
        fprintf(f, "  %-18s %14s  %s%s%s\n", etok_ceiling_name((etok_ceiling)i), num(r->ceilings_tps[i], a, sizeof a), h,
                (etok_ceiling)i == r->binding ? "   <- binding" : "", why);
    }
    fprintf(f, "binding_constraint  %s (the smallest ceiling, %.4g token/s)\n", etok_ceiling_name(r->binding),
            r->ceilings_tps[r->binding]);
    fprintf(f, "modelled rate       prefill and decode in series (not a ceiling): one replica serves a batch of %d requests in\n"
               "                    %.4g s prefill (%d x %d tokens, %s-bound) + %.4g s decode (%d steps, %s-bound) = %.4g s\n"
               "                    -> %d replica(s) x %d x %d output tokens / %.4g s = %.4g token/s\n",
            r->batch, r->prefill_s_per_batch, r->batch, s->input_tokens, etok_ceiling_name(r->prefill_bound),
            r->decode_s_per_batch, s->output_tokens, etok_ceiling_name(r->decode_bound),
            r->prefill_s_per_batch + r->decode_s_per_batch, r->replicas, r->batch, s->output_tokens,
            r->prefill_s_per_batch + r->decode_s_per_batch, r->in_series_tps);
    fprintf(f, "token_rate_tps      %.4g token/s  = min(in series %.4g, binding ceiling %.4g) = %.4g%s x Phi %.3g x U %.3g%s: "
               "the modelled rate\n",
            r->token_rate_tps, r->in_series_tps, r->ceilings_tps[r->binding], r->token_rate_full_utilization_tps / s->phi_system,
            r->modelled_rate_limited ? " (limited by a ceiling)" : " (the in-series rate)", s->phi_system, s->utilization,
            s->utilization_measured ? " (U measured)" : "");
    if (r->calibrated)
        fprintf(f, "calibration         achievable %.0f%% of peak memory bandwidth and %.0f%% of peak FLOP/s at batch %d, "
                   "%d device(s) per replica (the %s calibration, %s)\n",
                100 * r->bandwidth_fraction, 100 * r->flops_fraction, r->batch, r->devices_per_replica, s->hw.name,
                !strncmp(s->hw.cal.source, "etok tpf --calibrate", 20)
                    ? "fit to this machine's bench runs: etok tpf --calibrate"
                    : "fit to published measurements: etok tpf --validate");
    else
        fprintf(f, "calibration         none: peak bandwidth and FLOP/s (a plain roofline, optimistic; etok tpf --validate)\n");
    fprintf(f, "devices             %.4g token/s at their own operating point (K_eff %s): MFU %.2f, MBU %.2f of peak; "
               "modelled draw %.4g W per device\n",
            r->device_tps, si(r->k_eff_flops, "FLOP/s", a, sizeof a), r->mfu, r->mbu, r->device_power_full_w);
    fprintf(f, "\nenergy (%s)\n", r->joules_measured ? "e_tok MEASURED by the run record" : "model estimate");
    fprintf(f, "  device power        %.4g W mean per powered device (%s), %.4g of %d devices powered, activity %.2f "
               "(%.2f while serving x U %.3g)\n",
            r->device_power_w,
            r->device_power_measured ? "measured" : "model: P_idle + (P_max - P_idle) x activity", r->devices_powered,
            s->device_count, r->activity, r->activity_busy, s->utilization);
    fprintf(f, "  joules_per_output_token  %.4g J/token at the device, %.4g J/token PUE-adjusted (/theta x PUE)%s\n",
            r->joules_per_output_token, r->joules_per_output_token_pue, r->joules_measured ? " [measured]" : "");
    fprintf(f, "  joules_per_token         %.4g J/token (input + output) at the device, %.4g PUE-adjusted\n", r->joules_per_token,
            r->joules_per_token_pue);
    fprintf(f, "  joules_per_flop          %.4g J/FLOP (e_tok / c_tok at the devices' operating point)\n", r->joules_per_flop);
    fprintf(f, "  crossover_facility_power_w  %s: below it delivered_power binds\n", si(r->crossover_facility_power_w, "W", c, sizeof c));
    if (r->energy_cost_per_mtok >= 0)
        fprintf(f, "  energy_cost_per_mtok     %.4g per million output tokens at %.4g per kWh (marginal energy only)\n",
                r->energy_cost_per_mtok, ctx ? ctx->price_per_kwh : 0);
    if (r->co2e_g_per_mtok >= 0 && ctx && ctx->grid && ctx->grid->present) {
        char gd[96];
        grid_desc(ctx->grid, gd, sizeof gd);
        fprintf(f, "  co2e_g_per_mtok          %.4g gCO2e per million output tokens at %s, PUE-adjusted (operational "
                   "only, embodied not included; docs/CARBON.md)\n",
                r->co2e_g_per_mtok, gd);
    }
    for (size_t i = 0; i < r->n_notes; i++) fprintf(f, "note: %s\n", r->notes[i]);
    if (ctx && ctx->from_run) fprintf(f, "note: measured values from %s replace the modelled ones where marked\n", ctx->from_run);
    fprintf(f, "note: %s\n", MODEL_NOTE);
    fclose(f);
    return out;
}

static json_t *ceil_obj(const double *v) {
    json_t *o = json_object();
    for (int i = 0; i < ETOK_CEIL_COUNT; i++) json_object_set_new(o, etok_ceiling_name((etok_ceiling)i), jnum(v[i]));
    return o;
}

static json_t *result_json(const etok_tpf_scenario *s, const etok_tpf_result *r, const etok_tpf_context *ctx) {
    json_t *o = json_object();
    json_t *sc = json_object();
    json_object_set_new(sc, "name", json_string(ctx && ctx->scenario_name ? ctx->scenario_name : ""));
    json_object_set_new(sc, "hardware", json_string(s->hw.name));
    json_object_set_new(sc, "device_count", json_integer(s->device_count));
    json_object_set_new(sc, "devices_per_replica", json_integer(r->devices_per_replica));
    json_object_set_new(sc, "replicas", json_integer(r->replicas));
    json_object_set_new(sc, "model", json_string(s->model.name));
    json_object_set_new(sc, "weight_dtype", json_string(etok_dtype_name(s->weight_dtype)));
    json_object_set_new(sc, "kv_dtype", json_string(etok_dtype_name(s->kv_dtype)));
    json_object_set_new(sc, "compute_dtype", json_string(etok_dtype_name(r->compute_dtype)));
    json_object_set_new(sc, "input_tokens", json_integer(s->input_tokens));
    json_object_set_new(sc, "output_tokens", json_integer(s->output_tokens));
    json_object_set_new(sc, "batch", json_integer(r->batch));
    json_object_set_new(sc, "batch_max", json_integer(r->batch_max));
    json_object_set_new(sc, "facility_power_w", s->has_facility ? json_real(s->facility_power_w) : json_null());
    json_object_set_new(sc, "pue", json_real(s->has_facility ? s->pue : 1.0));
    json_object_set_new(sc, "cooling_capacity_w", s->has_facility && s->cooling_w > 0 ? json_real(s->cooling_w) : json_null());
    json_object_set_new(sc, "theta", json_real(s->has_facility ? s->theta : 1.0));
    json_object_set_new(sc, "phi_system", json_real(s->phi_system));
    json_t *lv = json_array();
    for (size_t i = 0; ctx && i < 16 && ctx->levers[i]; i++) json_array_append_new(lv, json_string(ctx->levers[i]));
    json_object_set_new(sc, "levers", lv);
    json_object_set_new(o, "scenario", sc);
    json_object_set_new(o, "source", json_string(ctx && ctx->from_run ? "estimate+measured" : "estimate"));
    json_object_set_new(o, "from_run", ctx && ctx->from_run ? json_string(ctx->from_run) : json_null());

    json_object_set_new(o, "peak_flops", jnum(r->peak_flops));
    json_object_set_new(o, "mem_bw_bps", jnum(r->mem_bw_bps));
    json_object_set_new(o, "k_eff_flops", jnum(r->k_eff_flops));
    json_object_set_new(o, "params_total", jnum(r->stats.params_total));
    json_object_set_new(o, "params_active", jnum(r->stats.params_active));
    json_object_set_new(o, "weight_bytes", jnum(r->stats.weight_bytes));
    json_object_set_new(o, "kv_bytes_per_token", jnum(r->stats.kv_bytes_per_token));
    json_object_set_new(o, "kv_bytes_per_sequence", jnum(r->kv_bytes_per_sequence));
    json_t *ft = json_object();
    json_object_set_new(ft, "prefill", jnum(r->flops_per_token_prefill));
    json_object_set_new(ft, "decode", jnum(r->flops_per_token_decode));
    json_object_set_new(ft, "per_output_token", jnum(r->flops_per_output_token));
    json_object_set_new(o, "flops_per_token", ft);
    json_t *bt = json_object();
    json_object_set_new(bt, "prefill", jnum(r->bytes_per_token_prefill));
    json_object_set_new(bt, "decode", jnum(r->bytes_per_token_decode));
    json_object_set_new(bt, "per_output_token", jnum(r->bytes_per_output_token));
    json_object_set_new(o, "bytes_per_token", bt);
    json_t *ai = json_object();
    json_object_set_new(ai, "prefill", jnum(r->arithmetic_intensity_prefill));
    json_object_set_new(ai, "decode", jnum(r->arithmetic_intensity_decode));
    json_object_set_new(ai, "per_output_token", jnum(r->arithmetic_intensity));
    json_object_set_new(o, "arithmetic_intensity", ai);
    json_object_set_new(o, "ceilings", ceil_obj(r->ceilings_tps));
    json_object_set_new(o, "headroom", ceil_obj(r->headroom));
    json_object_set_new(o, "binding_constraint", json_string(etok_ceiling_name(r->binding)));
    json_object_set_new(o, "hardware_tps", jnum(r->hardware_tps));
    json_object_set_new(o, "device_tps", jnum(r->device_tps));
    json_t *ser = json_object();
    json_object_set_new(ser, "tps", jnum(r->in_series_tps));
    json_object_set_new(ser, "prefill_s_per_output_token", jnum(r->prefill_s_per_output_token));
    json_object_set_new(ser, "decode_s_per_output_token", jnum(r->decode_s_per_output_token));
    json_object_set_new(ser, "batch", json_integer(r->batch));
    json_object_set_new(ser, "replicas", json_integer(r->replicas));
    json_object_set_new(ser, "prefill_s_per_batch", jnum(r->prefill_s_per_batch));
    json_object_set_new(ser, "decode_s_per_batch", jnum(r->decode_s_per_batch));
    json_object_set_new(ser, "prefill_bound", json_string(etok_ceiling_name(r->prefill_bound)));
    json_object_set_new(ser, "decode_bound", json_string(etok_ceiling_name(r->decode_bound)));
    json_object_set_new(ser, "limited_by_ceiling", json_boolean(r->modelled_rate_limited));
    json_object_set_new(ser, "note", json_string("the modelled rate's derivation, not a ceiling: a replica's batch is prefilled "
                                                 "then decoded, each phase at its own roofline; token_rate_tps = "
                                                 "min(tps, every ceiling) x Phi x U"));
    json_object_set_new(o, "in_series", ser);
    json_t *calj = json_object();
    json_object_set_new(calj, "applied", json_boolean(r->calibrated));
    json_object_set_new(calj, "bandwidth_fraction", jnum(r->bandwidth_fraction));
    json_object_set_new(calj, "flops_fraction", jnum(r->flops_fraction));
    json_object_set_new(calj, "source", r->calibrated ? json_string(s->hw.cal.source) : json_null());
    json_object_set_new(o, "calibration", calj);
    json_object_set_new(o, "mfu", jnum(r->mfu));
    json_object_set_new(o, "mbu", jnum(r->mbu));
    json_object_set_new(o, "token_rate_tps", jnum(r->token_rate_tps));
    json_object_set_new(o, "token_rate_full_utilization_tps", jnum(r->token_rate_full_utilization_tps));
    /* METRICS.md §3 name: in the TPF, U already carries the idle share, so the two coincide. */
    json_object_set_new(o, "utilization_adjusted_token_rate_tps", jnum(r->token_rate_tps));
    json_object_set_new(o, "utilization", jnum(s->utilization));
    json_object_set_new(o, "utilization_source", json_string(s->utilization_measured ? "measured" : "scenario"));
    json_object_set_new(o, "it_power_w", jnum(r->it_power_w));
    json_object_set_new(o, "device_power_w", jnum(r->device_power_w));
    json_object_set_new(o, "device_power_source", json_string(r->device_power_measured ? "measured" : "model"));
    json_object_set_new(o, "devices_powered", jnum(r->devices_powered));
    json_object_set_new(o, "activity", jnum(r->activity));
    json_object_set_new(o, "activity_busy", jnum(r->activity_busy));
    json_object_set_new(o, "device_power_full_w", jnum(r->device_power_full_w));
    json_object_set_new(o, "device_power_unlimited_w", jnum(r->device_power_hw_w));
    json_object_set_new(o, "power_limit_w", s->power_limit_w > 0 ? json_real(s->power_limit_w) : json_null());
    json_object_set_new(o, "joules_per_output_token", jnum(r->joules_per_output_token));
    json_object_set_new(o, "joules_per_output_token_pue_adjusted", jnum(r->joules_per_output_token_pue));
    json_object_set_new(o, "joules_per_token", jnum(r->joules_per_token));
    json_object_set_new(o, "joules_per_token_pue_adjusted", jnum(r->joules_per_token_pue));
    json_object_set_new(o, "joules_source", json_string(r->joules_measured ? "measured" : "model"));
    json_object_set_new(o, "utilization_adjusted_joules_per_token", jnum(r->utilization_adjusted_joules_per_token));
    json_object_set_new(o, "joules_per_flop", jnum(r->joules_per_flop));
    json_object_set_new(o, "crossover_facility_power_w", jnum(r->crossover_facility_power_w));
    json_object_set_new(o, "price_per_kwh", ctx && ctx->price_per_kwh >= 0 ? json_real(ctx->price_per_kwh) : json_null());
    json_object_set_new(o, "energy_cost_per_mtok", r->energy_cost_per_mtok >= 0 ? json_real(r->energy_cost_per_mtok) : json_null());
    json_object_set_new(o, "co2e_g_per_mtok", r->co2e_g_per_mtok >= 0 ? json_real(r->co2e_g_per_mtok) : json_null());
    if (ctx && ctx->grid && ctx->grid->present) {
        const etok_grid *g = ctx->grid;
        json_object_set_new(o, "grid",
                            json_pack("{s:f, s:s?, s:s, s:i, s:s, s:b}", "g_per_kwh", g->g_per_kwh, "region",
                                      g->region[0] ? g->region : NULL, "basis", g->basis, "year", g->year, "source",
                                      g->source, "embodied_included", 0));
    }
    json_t *notes = json_array();
    for (size_t i = 0; i < r->n_notes; i++) json_array_append_new(notes, json_string(r->notes[i]));
    json_array_append_new(notes, json_string(MODEL_NOTE));
    json_object_set_new(o, "notes", notes);
    return o;
}

static char *dump(json_t *o) {
    char *t = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(o);
    if (!t) return NULL;
    size_t l = strlen(t);
    char *t2 = realloc(t, l + 2);
    if (!t2) { free(t); return NULL; }
    t2[l] = '\n';
    t2[l + 1] = '\0';
    return t2;
}

char *etok_tpf_render_json(const etok_tpf_scenario *s, const etok_tpf_result *r, const etok_tpf_context *ctx) {
    return dump(result_json(s, r, ctx));
}

/* ---------- comparisons ---------- */

char *etok_tpf_render_compare_text(const etok_tpf_scenario *sa, const etok_tpf_result *a, const etok_tpf_scenario *sb,
                                   const etok_tpf_result *b, const etok_tpf_context *ctx) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    char lv[512], x[32], y[32];
    levers_str(ctx, lv, sizeof lv);
    fprintf(f, "etok tpf: lever what-if (%s)\n\n",
            ctx && ctx->from_run ? "model estimate with measured inputs" : "model estimate, not a measurement");
    etok_tpf_context base = ctx ? *ctx : (etok_tpf_context){0};
    base.levers[0] = NULL;
    text_header(f, sa, a, &base);
    fprintf(f, "levers      %s\n", lv);
    for (size_t i = 0; ctx && i < 16 && ctx->levers[i]; i++) {
        const char *name = ctx->levers[i];
        for (size_t k = 0; k < etok_lever_count(); k++) {
            const etok_lever_info *li = etok_lever_at(k);
            size_t nl = strlen(li->name);
            if (!strncmp(name, li->name, nl) && (name[nl] == '\0' || name[nl] == '='))
                fprintf(f, "  %-22s %s [%s]\n", name, li->rationale, li->source);
        }
    }
    etok_tpf_change ch[32];
    size_t n = etok_tpf_compare(a, b, ch, 32);
    fprintf(f, "\n%-30s %14s %14s %9s\n", "quantity", "before", "after", "after/before");
    for (size_t i = 0; i < n; i++) {
        char ratio[32];
        if (isnan(ch[i].ratio)) snprintf(ratio, sizeof ratio, "%s", ch[i].moved ? "changed" : "-");
        else snprintf(ratio, sizeof ratio, "%.3gx", ch[i].ratio);
        fprintf(f, "%s %-28s %14s %14s %9s  %s\n", ch[i].moved ? "*" : " ", ch[i].field, num(ch[i].before, x, sizeof x),
                num(ch[i].after, y, sizeof y), ratio, ch[i].unit);
    }
    fprintf(f, "(* = moved)\n\n");
    if (a->binding == b->binding)
        fprintf(f, "binding_constraint  %s (unchanged)\n", etok_ceiling_name(a->binding));
    else
        fprintf(f, "binding_constraint  %s -> %s (CHANGED)\n", etok_ceiling_name(a->binding), etok_ceiling_name(b->binding));
    fprintf(f, "token_rate_tps      %.4g -> %.4g token/s (%.3gx)\n", a->token_rate_tps, b->token_rate_tps,
            b->token_rate_tps / a->token_rate_tps);
    fprintf(f, "joules_per_output_token  %.4g -> %.4g J/token (%.3gx)\n", a->joules_per_output_token,
            b->joules_per_output_token, b->joules_per_output_token / a->joules_per_output_token);
    if (a->co2e_g_per_mtok >= 0 && b->co2e_g_per_mtok >= 0 && ctx && ctx->grid && ctx->grid->present) {
        char gd[96];
        grid_desc(ctx->grid, gd, sizeof gd);
        fprintf(f, "co2e_g_per_mtok     %.4g -> %.4g gCO2e (%.3gx) at %s, PUE-adjusted, embodied not included\n",
                a->co2e_g_per_mtok, b->co2e_g_per_mtok, b->co2e_g_per_mtok / a->co2e_g_per_mtok, gd);
    }
    (void)sb;
    for (size_t i = 0; i < b->n_notes; i++) fprintf(f, "note (after): %s\n", b->notes[i]);
    fprintf(f, "note: %s\n", MODEL_NOTE);
    fclose(f);
    return out;
}

char *etok_tpf_render_compare_json(const etok_tpf_scenario *sa, const etok_tpf_result *a, const etok_tpf_scenario *sb,
                                   const etok_tpf_result *b, const etok_tpf_context *ctx) {
    json_t *o = json_object();
    etok_tpf_context base = ctx ? *ctx : (etok_tpf_context){0};
    base.levers[0] = NULL;
    json_object_set_new(o, "before", result_json(sa, a, &base));
    json_object_set_new(o, "after", result_json(sb, b, ctx));
    etok_tpf_change ch[32];
    size_t n = etok_tpf_compare(a, b, ch, 32);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *c = json_object();
        json_object_set_new(c, "field", json_string(ch[i].field));
        json_object_set_new(c, "unit", json_string(ch[i].unit));
        json_object_set_new(c, "before", jnum(ch[i].before));
        json_object_set_new(c, "after", jnum(ch[i].after));
        json_object_set_new(c, "ratio", jnum(ch[i].ratio));
        json_object_set_new(c, "moved", json_boolean(ch[i].moved));
        json_array_append_new(arr, c);
    }
    json_object_set_new(o, "changes", arr);
    json_object_set_new(o, "binding_changed", json_boolean(a->binding != b->binding));
    json_t *lv = json_array();
    for (size_t i = 0; ctx && i < 16 && ctx->levers[i]; i++) {
        json_t *l = json_object();
        json_object_set_new(l, "lever", json_string(ctx->levers[i]));
        for (size_t k = 0; k < etok_lever_count(); k++) {
            const etok_lever_info *li = etok_lever_at(k);
            size_t nl = strlen(li->name);
            if (!strncmp(ctx->levers[i], li->name, nl) && (ctx->levers[i][nl] == '\0' || ctx->levers[i][nl] == '=')) {
                json_object_set_new(l, "rationale", json_string(li->rationale));
                json_object_set_new(l, "source", json_string(li->source));
            }
        }
        json_array_append_new(lv, l);
    }
    json_object_set_new(o, "levers", lv);
    return dump(o);
}

/* ---------- sweeps ---------- */

typedef struct {
    double x;
    const etok_sweep_point *p;
    int crossover;
} row;

static int cmp_row(const void *a, const void *b) {
    double x = ((const row *)a)->x, y = ((const row *)b)->x;
    return x < y ? -1 : x > y;
}

static row *sorted_rows(const etok_sweep *sw, size_t *n) {
    *n = sw->n + sw->n_crossovers;
    row *rows = calloc(*n ? *n : 1, sizeof *rows);
    if (!rows) return NULL;
    for (size_t i = 0; i < sw->n; i++) rows[i] = (row){sw->points[i].x, &sw->points[i], 0};
    for (size_t i = 0; i < sw->n_crossovers; i++) rows[sw->n + i] = (row){sw->crossovers[i].x, &sw->crossovers[i].at, 1};
    qsort(rows, *n, sizeof *rows, cmp_row);
    return rows;
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, ",%.10g", v);
    else fprintf(f, ",%s", isnan(v) ? "" : "inf");
}

char *etok_tpf_render_sweep_csv(const etok_sweep *sw) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    fprintf(f, "%s,kind,feasible,binding_constraint,token_rate_tps", sw->spec.field);
    for (int i = 0; i < ETOK_CEIL_COUNT; i++) fprintf(f, ",ceilings.%s", etok_ceiling_name((etok_ceiling)i));
    fprintf(f, ",in_series_tps,joules_per_output_token,device_power_w,joules_per_flop,crossover_facility_power_w,error\n");
    size_t n;
    row *rows = sorted_rows(sw, &n);
    for (size_t i = 0; rows && i < n; i++) {
        const etok_sweep_point *p = rows[i].p;
        fprintf(f, "%.10g,%s,%d", rows[i].x, rows[i].crossover ? "crossover" : "grid", p->ok);
        if (p->ok) {
            fprintf(f, ",%s", etok_ceiling_name(p->r.binding));
            csv_num(f, p->r.token_rate_tps);
            for (int k = 0; k < ETOK_CEIL_COUNT; k++) csv_num(f, p->r.ceilings_tps[k]);
            csv_num(f, p->r.in_series_tps);
            csv_num(f, p->r.joules_per_output_token);
            csv_num(f, p->r.device_power_w);
            csv_num(f, p->r.joules_per_flop);
            csv_num(f, p->r.crossover_facility_power_w);
            fprintf(f, ",\n");
        } else {
            fprintf(f, ",");
            for (int k = 0; k < ETOK_CEIL_COUNT + 7; k++) fprintf(f, ",");
            /* The error as a quoted CSV field. */
            fprintf(f, "\"");
            for (const char *c = p->error; *c; c++) fprintf(f, *c == '"' ? "\"\"" : "%c", *c);
            fprintf(f, "\"\n");
        }
    }
    free(rows);
    fclose(f);
    return out;
}

char *etok_tpf_render_sweep_text(const etok_sweep *sw, const etok_tpf_context *ctx) {
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    if (!f) return NULL;
    char lv[512];
    levers_str(ctx, lv, sizeof lv);
    fprintf(f, "etok tpf sweep (model estimate, not a measurement): %s, %s from %g to %g in %d %s steps\n",
            ctx && ctx->scenario_name ? ctx->scenario_name : "", sw->spec.field, sw->spec.start, sw->spec.stop, sw->spec.steps,
            sw->spec.log ? "log" : "linear");
    if (*lv) fprintf(f, "levers applied: %s\n", lv);
    fprintf(f, "%16s  %-18s %14s %14s %14s\n", sw->spec.field, "binding", "binding_tps", "in_series_tps", "token_rate_tps");
    for (size_t i = 0; i < sw->n; i++) {
        const etok_sweep_point *p = &sw->points[i];
        if (p->ok)
            fprintf(f, "%16.6g  %-18s %14.6g %14.6g %14.6g\n", p->x, etok_ceiling_name(p->r.binding),
                    p->r.ceilings_tps[p->r.binding], p->r.in_series_tps, p->r.token_rate_tps);
        else fprintf(f, "%16.6g  infeasible: %s\n", p->x, p->error);
    }
    if (!sw->n_crossovers) fprintf(f, "no crossover in this range\n");
    for (size_t i = 0; i < sw->n_crossovers; i++)
        fprintf(f, "crossover at %s = %.6g: %s -> %s\n", sw->spec.field, sw->crossovers[i].x,
                etok_ceiling_name(sw->crossovers[i].from), etok_ceiling_name(sw->crossovers[i].to));
    fclose(f);
    return out;
}

char *etok_tpf_render_sweep_json(const etok_sweep *sw, const etok_tpf_context *ctx) {
    json_t *o = json_object();
    json_object_set_new(o, "scenario", json_string(ctx && ctx->scenario_name ? ctx->scenario_name : ""));
    json_object_set_new(o, "source", json_string("estimate"));
    json_object_set_new(o, "field", json_string(sw->spec.field));
    json_object_set_new(o, "start", json_real(sw->spec.start));
    json_object_set_new(o, "stop", json_real(sw->spec.stop));
    json_object_set_new(o, "steps", json_integer(sw->spec.steps));
    json_object_set_new(o, "log", json_boolean(sw->spec.log));
    json_t *pts = json_array();
    for (size_t i = 0; i < sw->n; i++) {
        const etok_sweep_point *p = &sw->points[i];
        json_t *q = json_object();
        json_object_set_new(q, "x", json_real(p->x));
        json_object_set_new(q, "feasible", json_boolean(p->ok));
        if (p->ok) {
            json_object_set_new(q, "binding_constraint", json_string(etok_ceiling_name(p->r.binding)));
            json_object_set_new(q, "token_rate_tps", jnum(p->r.token_rate_tps));
            json_object_set_new(q, "in_series_tps", jnum(p->r.in_series_tps));
            json_object_set_new(q, "ceilings", ceil_obj(p->r.ceilings_tps));
            json_object_set_new(q, "joules_per_output_token", jnum(p->r.joules_per_output_token));
        } else {
            json_object_set_new(q, "error", json_string(p->error));
        }
        json_array_append_new(pts, q);
    }
    json_object_set_new(o, "points", pts);
    json_t *cx = json_array();
    for (size_t i = 0; i < sw->n_crossovers; i++) {
        json_t *c = json_object();
        json_object_set_new(c, "x", json_real(sw->crossovers[i].x));
        json_object_set_new(c, "from", json_string(etok_ceiling_name(sw->crossovers[i].from)));
        json_object_set_new(c, "to", json_string(etok_ceiling_name(sw->crossovers[i].to)));
        json_array_append_new(cx, c);
    }
    json_object_set_new(o, "crossovers", cx);
    return dump(o);
}

char *etok_tpf_render_sweep_svg(const etok_sweep *sw, const etok_tpf_context *ctx) {
    char title[256];
    snprintf(title, sizeof title, "Token Production Function: %s", ctx && ctx->scenario_name ? ctx->scenario_name : "sweep");
    etok_svg_chart *c = etok_svg_chart_new(title, 800, 500);
    if (!c) return NULL;
    etok_svg_chart_x_axis(c, etok_tpf_field_label(sw->spec.field), sw->spec.log ? ETOK_SVG_LOG : ETOK_SVG_LINEAR, 0, 0);
    etok_svg_chart_y_axis(c, "Output token rate (token/s)", ETOK_SVG_LOG, 0, 0);
    etok_svg_chart_legend(c, ETOK_SVG_LEGEND_BELOW);
    size_t n = sw->n;
    double *x = calloc(n ? n : 1, sizeof *x), *y = calloc(n ? n : 1, sizeof *y);
    if (!x || !y) { free(x); free(y); etok_svg_chart_free(c); return NULL; }
    for (size_t i = 0; i < n; i++) {
        x[i] = sw->points[i].x;
        y[i] = sw->points[i].ok ? sw->points[i].r.token_rate_tps : NAN;
    }
    etok_svg_style tr = {.color = "#000000", .width_px = 3};
    etok_svg_chart_add_series(c, "modelled token_rate_tps: prefill + decode in series, <= every ceiling (x Phi x U)", x, y, n, &tr);
    /* Colours fixed per ceiling so figures are comparable. */
    for (int k = 0; k < ETOK_CEIL_COUNT; k++) {
        int any = 0;
        for (size_t i = 0; i < n; i++) {
            x[i] = sw->points[i].x;
            y[i] = sw->points[i].ok ? sw->points[i].r.ceilings_tps[k] : NAN;
            any |= isfinite(y[i]);
        }
        if (!any) continue;
        etok_svg_style st = {.color = etok_svg_palette((size_t)k), .dashed = 1, .width_px = 1.8};
        char name[64];
        snprintf(name, sizeof name, "ceiling: %s", etok_ceiling_name((etok_ceiling)k));
        etok_svg_chart_add_series(c, name, x, y, n, &st);
    }
    /* Binding regions: etok_sweep_regions, the same rule as the text (each point's smallest ceiling). */
    etok_sweep_region *reg = NULL;
    size_t nreg = etok_sweep_regions(sw, &reg);
    if (nreg == (size_t)-1) { free(x); free(y); etok_svg_chart_free(c); return NULL; }
    for (size_t k = 0; k < nreg; k++) {
        char lab[64];
        snprintf(lab, sizeof lab, "%s-bound", etok_ceiling_name(reg[k].binding));
        etok_svg_chart_add_band(c, reg[k].x0, reg[k].x1, lab, etok_svg_palette((size_t)reg[k].binding));
    }
    free(reg);
    for (size_t k = 0; k < sw->n_crossovers; k++) {
        char lab[160], v[48];
        const char *f = sw->spec.field;
        size_t fl = strlen(f);
        if (fl > 2 && !strcmp(f + fl - 2, "_w")) si(sw->crossovers[k].x, "W", v, sizeof v); /* "9.8 kW" */
        else etok_svg_format_si(sw->crossovers[k].x, v, sizeof v);
        snprintf(lab, sizeof lab, "crossover %s: %s -> %s", v, etok_ceiling_name(sw->crossovers[k].from),
                 etok_ceiling_name(sw->crossovers[k].to));
        etok_svg_chart_add_vline(c, sw->crossovers[k].x, lab, NULL);
    }
    etok_svg_chart_caption(c, "etok tpf model estimate (docs/METRICS.md section 1), not a measurement; ceilings (dashed): independent upper "
                              "bounds before Phi and U; shaded: the smallest ceiling (binding); solid: the modelled rate "
                              "(prefill and decode in series, bounded by the ceilings)");
    char *svg = etok_svg_chart_render(c);
    free(x);
    free(y);
    etok_svg_chart_free(c);
    return svg;
}
