/* cmd_tpf.c — `etok tpf`: the Token Production Function for a scenario (METRICS.md §1).
 * Owns: argument parsing and wiring scenario loading -> model -> render -> files. Computes
 * nothing itself. */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "etok/grid.h"
#include "etok/parse.h"
#include "etok/scenario.h"
#include "etok/tpf.h"
#include "etok/tpf_render.h"
#include "etok/util.h"
#include "scenario/from_run.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok tpf SCENARIO [--json] [--lever NAME ...] [--price-per-kwh X]\n"
            "                [--grid-intensity G | --region CODE]\n"
            "                [--sweep FIELD=START:STOP:STEPS[:log] [--csv OUT.csv] [--svg OUT.svg]]\n"
            "                [--from-run RUN.json] [--uncalibrated]\n"
            "       etok tpf --validate [MEASUREMENTS] [--json]\n"
            "       etok tpf --calibrate RUN... [-o PROFILE.json] [--model NAME] [--json]\n"
            "       etok tpf --list hardware|models|scenarios|measurements|levers|fields\n\n"
            "The Token Production Function (docs/METRICS.md section 1) of a deployment: every ceiling as a\n"
            "token rate (compute, memory_bandwidth, memory_capacity, delivered_power, cooling,\n"
            "device_power_cap), each an independent upper bound at the scenario's batch; the binding\n"
            "constraint (the smallest); token_rate_tps, the modelled rate: prefill then decode of a batch\n"
            "in series, each at its roof, bounded by every ceiling, times Phi and U (docs/TPF.md); modelled\n"
            "device power and energy per token at that rate,\n"
            "joules_per_flop and the crossover facility power. A MODEL ESTIMATE, calibrated against\n"
            "published measurements where the hardware catalog has a calibration.\n\n"
            "  SCENARIO             a scenario JSON file, or a catalog scenario name (--list scenarios)\n"
            "  --json               JSON with docs/METRICS.md field names\n"
            "  --lever NAME         apply a lever and show before/after (repeatable): fp8, int8, int4,\n"
            "                       kv-int8, kv-fp8, mla, window=N, moe-topk=K, batch=N,\n"
            "                       adaptive-reasoning=F, phi=X (levers in the file are applied too)\n"
            "  --price-per-kwh X    energy price for energy_cost_per_mtok\n"
            "  --grid-intensity G   grid carbon intensity in gCO2e/kWh for co2e_g_per_mtok (PUE-adjusted,\n"
            "                       operational only: embodied emissions not included)\n"
            "  --region CODE        instead: the dated, sourced annual average of data/grid/CODE.json\n"
            "                       (location-based; docs/CARBON.md)\n"
            "  --sweep SPEC         sweep one field (--list fields), e.g. facility.power_w=1e4:1e7:60:log\n"
            "  --csv FILE           write the sweep as CSV (grid points and exact crossovers)\n"
            "  --svg FILE           write the sweep as an SVG figure\n"
            "  --from-run FILE      take e_tok, utilization and device power measured by etok run/bench\n"
            "  --uncalibrated       ignore the hardware calibration (the plain roofline)\n"
            "  --validate           run the model on every published measurement in data/measurements (or\n"
            "                       the file MEASUREMENTS) and print predicted vs published J/output-token\n"
            "                       and token rate with their ratios, before and after calibration, at each\n"
            "                       point's energy boundary (GPU, or system = GPUs + the rest of the system),\n"
            "                       and the errors on held-out points per hardware\n"
            "  --calibrate RUN...   fit this machine's calibration from its own bench runs (bench -o DIRs or\n"
            "                       run.json): the achieved compute per weight format and thread count\n"
            "                       (prefill), the decode bandwidth, the decode efficiency per batch\n"
            "                       (--concurrency) and the power curve; prints each run's leave-one-out\n"
            "                       error of decode token rate and J/output-token (by run, and by setting:\n"
            "                       a run with nothing fitted for it is reported not predictable); -o FILE\n"
            "                       writes the profile (\"hardware\": \"FILE\" in a scenario); --model NAME\n"
            "                       the catalog model (default: from the runs)\n"
            "  --list KIND          list catalog entries\n"
            "Catalogs: the data directory's hardware/, models/, scenarios/ ($ETOK_DATA_DIR, else\n"
            "../share/etok beside etok, else the source tree's data/; docs/INSTALL.md), here: %s\n"
            "exit codes: 0 ok, 1 failure, 2 usage, 3 bad or infeasible scenario, bad catalog or record,\n"
            "            5 --csv/--svg not writable\n",
            etok_data_dir());
}

static int list_kind(const char *kind) {
    if (!strcmp(kind, "levers")) {
        for (size_t i = 0; i < etok_lever_count(); i++) {
            const etok_lever_info *l = etok_lever_at(i);
            char nm[64];
            snprintf(nm, sizeof nm, "%s%s", l->name, l->takes_arg ? "=N" : "");
            printf("%-22s %s [%s]\n", nm, l->rationale, l->source);
        }
        return ETOK_EXIT_OK;
    }
    if (!strcmp(kind, "fields")) {
        for (const char *const *f = etok_sweep_fields(); *f; f++) {
            const etok_field_limit *l = etok_tpf_field_limit(*f);
            char rt[96] = "";
            if (l) etok_range_text(l->range, rt, sizeof rt);
            printf("%-30s %-40s %s\n", *f, etok_tpf_field_label(*f), rt);
        }
        return ETOK_EXIT_OK;
    }
    const char *dir = !strcmp(kind, "hardware") ? "hardware" : !strcmp(kind, "models") ? "models"
                      : !strcmp(kind, "scenarios")                                   ? "scenarios"
                      : !strcmp(kind, "measurements")                                ? "measurements"
                                                                                     : NULL;
    if (!dir) {
        fprintf(stderr, "etok tpf: --list %s: expected hardware, models, scenarios, measurements, levers or fields\n", kind);
        return ETOK_EXIT_USAGE;
    }
    char **names;
    size_t n;
    etok_err err = {0};
    if (etok_catalog_names(dir, &names, &n, &err)) {
        fprintf(stderr, "etok tpf: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    int rc = ETOK_EXIT_OK;
    for (size_t i = 0; i < n; i++) {
        etok_err e = {0};
        if (!strcmp(dir, "hardware")) {
            etok_hw_spec h;
            if (etok_catalog_hardware(names[i], &h, &e) == 0)
                printf("%-16s %-40s bf16 %7.4g TFLOP/s  %6.4g TB/s  %5.0f GB  %5.0f W\n", names[i], h.display_name,
                       h.peak_flops_bf16 / 1e12, h.mem_bw_bps / 1e12, h.mem_bytes / 1e9, h.max_power_w);
        } else if (!strcmp(dir, "models")) {
            etok_model_arch m;
            etok_tpf_model_stats st;
            if (etok_catalog_model(names[i], &m, &e) == 0 &&
                etok_tpf_model_stats_compute(&m, m.default_weight_dtype, m.default_kv_dtype, &st) == 0)
                printf("%-16s %-40s %8.4gB params, %7.4gB active, %s%s\n", names[i], m.display_name, st.params_total / 1e9,
                       st.params_active / 1e9, m.n_experts ? "MoE " : "dense ", m.kv_lora_rank ? "MLA" : "GQA");
        } else if (!strcmp(dir, "measurements")) {
            etok_measurement_set ms;
            if (etok_measurements_load(names[i], &ms, &e) == 0) {
                printf("%-32s %zu points: %s\n", names[i], ms.n, ms.description);
                etok_measurement_set_free(&ms);
            }
        } else {
            etok_scenario_file sf;
            char path[4096];
            snprintf(path, sizeof path, "%s/scenarios/%s.json", etok_data_dir(), names[i]);
            if (etok_scenario_load(path, &sf, &e) == 0) printf("%-24s %s\n", names[i], sf.description);
        }
        if (e.msg[0]) {
            fprintf(stderr, "etok tpf: %s\n", e.msg);
            rc = ETOK_EXIT_INPUT;
        }
    }
    etok_catalog_names_free(names, n);
    return rc;
}

static int write_out(const char *path, const char *text) {
    etok_err err = {0};
    if (!text) { fprintf(stderr, "etok tpf: out of memory\n"); return ETOK_EXIT_FAIL; }
    if (etok_write_file_atomic(path, text, strlen(text), &err)) {
        fprintf(stderr, "etok tpf: %s\n", err.msg);
        return ETOK_EXIT_OUTPUT;
    }
    return 0;
}

static int fail(const etok_err *err) {
    fprintf(stderr, "etok tpf: %s\n", err->msg);
    return err->exit_code ? err->exit_code : ETOK_EXIT_FAIL;
}

/* ---------- --validate ---------- */

#define VAL_MAX_POINTS 2048
typedef struct {
    int n;
    double err[2][2][VAL_MAX_POINTS]; /* [calibrated?][0 energy, 1 rate] |ratio - 1| */
} err_list;

/* The same errors per hardware (the calibration is per hardware: each reports its own table). */
#define VAL_MAX_HW 16
typedef struct {
    char name[64];
    err_list held, used;
} hw_errs;

static void err_add(err_list *el, const double re[2], const double rr[2]) {
    if (el->n >= VAL_MAX_POINTS) return;
    for (int c = 0; c < 2; c++) {
        el->err[c][0][el->n] = fabs(re[c] - 1);
        el->err[c][1][el->n] = fabs(rr[c] - 1);
    }
    el->n++;
}

/* worst calibrated held-out error over J/output-token and token rate (0 without points) */
static double held_worst(err_list *held);

static double pct(double *v, int n, double q) {
    if (n == 0) return NAN;
    for (int i = 1; i < n; i++) /* insertion sort: n is small */
        for (int j = i; j > 0 && v[j] < v[j - 1]; j--) { double t = v[j]; v[j] = v[j - 1]; v[j - 1] = t; }
    int k = (int)floor(q * (n - 1) + 0.5);
    return v[k];
}

static void summary(FILE *f, const char *what, err_list *e) {
    if (!e->n) { fprintf(f, "  %s: none\n", what); return; }
    const char *q[2] = {"J/output-token", "token rate"};
    for (int k = 0; k < 2; k++)
        fprintf(f, "  %s (%d points), %s error: roofline median %.0f%% max %.0f%% -> calibrated median %.0f%% max %.0f%%\n",
                what, e->n, q[k], 100 * pct(e->err[0][k], e->n, 0.5), 100 * pct(e->err[0][k], e->n, 1.0),
                100 * pct(e->err[1][k], e->n, 0.5), 100 * pct(e->err[1][k], e->n, 1.0));
}

static double held_worst(err_list *held) {
    double worst = 0;
    for (int k = 0; k < 2; k++) worst = fmax(worst, held->n ? pct(held->err[1][k], held->n, 1.0) : 0);
    return worst;
}

static json_t *jnv(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static int validate(const char *only, int json) {
    char **names = NULL;
    size_t n = 0;
    etok_err err = {0};
    if (only) {
        names = calloc(1, sizeof *names);
        if (!names || !(names[0] = strdup(only))) { free(names); fprintf(stderr, "etok tpf: out of memory\n"); return ETOK_EXIT_FAIL; }
        n = 1;
    } else if (etok_catalog_names("measurements", &names, &n, &err)) {
        return fail(&err);
    }
    if (!n) {
        fprintf(stderr, "etok tpf: --validate: no measurement files in %s/measurements\n", etok_data_dir());
        etok_catalog_names_free(names, n);
        return ETOK_EXIT_INPUT;
    }
    static err_list held, used;
    static hw_errs per_hw[VAL_MAX_HW];
    int n_hw = 0;
    held.n = used.n = 0;
    int skipped = 0;
    json_t *jroot = json_object(), *jsets = json_array();
    char *out = NULL;
    size_t outlen = 0;
    FILE *f = open_memstream(&out, &outlen);
    if (!f || !jroot || !jsets) {
        if (f) fclose(f);
        free(out);
        json_decref(jroot);
        json_decref(jsets);
        etok_catalog_names_free(names, n);
        fprintf(stderr, "etok tpf: out of memory\n");
        return ETOK_EXIT_FAIL;
    }
    fprintf(f, "etok tpf --validate: the model (an estimate) against published measurements; ratio = predicted / published\n");
    int rc = ETOK_EXIT_OK;
    for (size_t i = 0; i < n && rc == ETOK_EXIT_OK; i++) {
        etok_measurement_set ms;
        if (etok_measurements_load(names[i], &ms, &err)) { rc = fail(&err); break; }
        fprintf(f, "\n%s: %s\n  source: %s <%s>\n  energy boundary: %s\n", ms.name, ms.description, ms.source_title,
                ms.source_url, ms.energy_boundary);
        fprintf(f, "  %-28s %-4s %9s %18s %18s %9s %17s %17s\n", "point", "use", "J/tok pub", "roofline (ratio)",
                "calibrated (ratio)", "tok/s pub", "roofline (ratio)", "calibrated (ratio)");
        json_t *js = json_object(), *jp = json_array();
        json_object_set_new(js, "name", json_string(ms.name));
        json_object_set_new(js, "source_title", json_string(ms.source_title));
        json_object_set_new(js, "source_url", json_string(ms.source_url));
        json_object_set_new(js, "energy_boundary", json_string(ms.energy_boundary));
        for (size_t k = 0; k < ms.n; k++) {
            const etok_measurement *m = &ms.points[k];
            etok_tpf_scenario sc;
            static etok_tpf_result r[2];
            etok_err e = {0};
            json_t *q = json_object();
            json_object_set_new(q, "id", json_string(m->id));
            json_object_set_new(q, "calibrate", json_boolean(m->calibrate));
            json_object_set_new(q, "published_joules_per_output_token", json_real(m->joules_per_output_token));
            json_object_set_new(q, "published_output_tps", json_real(m->output_tps));
            json_object_set_new(q, "published_power_w", m->power_w > 0 ? json_real(m->power_w) : json_null());
            int ok = etok_measurement_scenario(m, &sc, &e) == 0;
            for (int c = 0; ok && c < 2; c++) {
                sc.uncalibrated = !c;
                ok = etok_tpf_evaluate(&sc, -1, &r[c], &e) == 0;
            }
            if (!ok) {
                /* A point the model cannot run (e.g. a batch whose full-length KV cache does not
                 * fit: the model reserves every sequence's whole context, a paged engine does not). */
                if (e.exit_code && e.exit_code != ETOK_EXIT_INPUT) { json_decref(q); rc = fail(&e); break; }
                fprintf(f, "  %-28s %-4s not modelled: %s\n", m->id, m->calibrate ? "cal" : "held", e.msg);
                json_object_set_new(q, "modelled", json_false());
                json_object_set_new(q, "error", json_string(e.msg));
                json_array_append_new(jp, q);
                skipped++;
                continue;
            }
            err_list *el = m->calibrate ? &used : &held;
            hw_errs *hwe = NULL;
            for (int h = 0; h < n_hw && !hwe; h++)
                if (!strcmp(per_hw[h].name, m->hardware)) hwe = &per_hw[h];
            if (!hwe && n_hw < VAL_MAX_HW) {
                hwe = &per_hw[n_hw++];
                snprintf(hwe->name, sizeof hwe->name, "%s", m->hardware);
                hwe->held.n = hwe->used.n = 0;
            }
            double re[2], rr[2], pj[2], pw[2], plo[2], phi[2];
            for (int c = 0; c < 2; c++) {
                /* the model at the published figure's energy boundary (gpu, or system = + host) */
                etok_measurement_at_boundary(m, &r[c], &pj[c], &pw[c], &plo[c], &phi[c]);
                re[c] = pj[c] / m->joules_per_output_token;
                rr[c] = r[c].token_rate_tps / m->output_tps;
            }
            err_add(el, re, rr);
            if (hwe) err_add(m->calibrate ? &hwe->used : &hwe->held, re, rr);
            fprintf(f, "  %-28s %-4s %9.4g %9.4g (%5.2fx) %9.4g (%5.2fx) %9.5g %8.5g (%5.2fx) %8.5g (%5.2fx)%s\n", m->id,
                    m->calibrate ? "cal" : "held", m->joules_per_output_token, pj[0], re[0], pj[1], re[1], m->output_tps,
                    r[0].token_rate_tps, rr[0], r[1].token_rate_tps, rr[1],
                    m->boundary == ETOK_BOUNDARY_SYSTEM ? "  system" : "");
            if (m->boundary == ETOK_BOUNDARY_SYSTEM)
                fprintf(f, "  %-33s system = %d devices' modelled %.0f W / PSU %.2f + rest of system %.0f +- %.0f W (%s):"
                           " calibrated %.0f W, J/token %.4g..%.4g\n",
                        "", m->devices, r[1].joules_per_output_token * r[1].token_rate_tps, m->psu_efficiency,
                        m->host_power_w, m->host_power_uncertainty_w, m->host_power_source, pw[1], plo[1], phi[1]);
            json_object_set_new(q, "modelled", json_true());
            const char *key[2] = {"roofline", "calibrated"};
            for (int c = 0; c < 2; c++) {
                json_t *pr = json_object();
                json_object_set_new(pr, "joules_per_output_token", jnv(pj[c]));
                json_object_set_new(pr, "joules_per_output_token_range", json_pack("[oo]", jnv(plo[c]), jnv(phi[c])));
                json_object_set_new(pr, "power_w_at_boundary", jnv(pw[c]));
                json_object_set_new(pr, "joules_ratio", jnv(re[c]));
                json_object_set_new(pr, "token_rate_tps", jnv(r[c].token_rate_tps));
                json_object_set_new(pr, "rate_ratio", jnv(rr[c]));
                json_object_set_new(pr, "device_power_w", jnv(r[c].device_power_w));
                json_object_set_new(pr, "binding_constraint", json_string(etok_ceiling_name(r[c].binding)));
                json_object_set_new(pr, "calibration_applied", json_boolean(r[c].calibrated));
                json_object_set_new(q, key[c], pr);
            }
            /* What a calibration fit needs: the per-token costs and peaks. */
            json_object_set_new(q, "hardware", json_string(m->hardware));
            json_object_set_new(q, "devices", json_integer(m->devices));
            json_object_set_new(q, "devices_per_replica", json_integer(m->devices_per_replica));
            json_object_set_new(q, "power_limit_w", m->power_limit_w > 0 ? json_real(m->power_limit_w) : json_null());
            json_object_set_new(q, "energy_boundary", json_string(m->boundary == ETOK_BOUNDARY_SYSTEM ? "system" : "gpu"));
            if (m->boundary == ETOK_BOUNDARY_SYSTEM) {
                json_object_set_new(q, "host_power_w", json_real(m->host_power_w));
                json_object_set_new(q, "host_power_uncertainty_w", json_real(m->host_power_uncertainty_w));
                json_object_set_new(q, "psu_efficiency", json_real(m->psu_efficiency));
                json_object_set_new(q, "host_power_source", json_string(m->host_power_source));
            }
            json_object_set_new(q, "batch", json_integer(m->batch));
            json_object_set_new(q, "flops_per_output_token", jnv(r[0].flops_per_output_token));
            json_object_set_new(q, "bytes_per_output_token", jnv(r[0].bytes_per_output_token));
            json_object_set_new(q, "peak_flops", jnv(r[0].peak_flops));
            json_object_set_new(q, "mem_bw_bps", jnv(r[0].mem_bw_bps));
            json_object_set_new(q, "max_power_w", jnv(sc.hw.max_power_w));
            json_object_set_new(q, "idle_power_w", jnv(sc.hw.idle_power_w));
            json_array_append_new(jp, q);
        }
        json_object_set_new(js, "points", jp);
        json_array_append_new(jsets, js);
        etok_measurement_set_free(&ms);
    }
    etok_catalog_names_free(names, n);
    if (rc != ETOK_EXIT_OK) {
        fclose(f);
        free(out);
        json_decref(jroot);
        json_decref(jsets);
        return rc;
    }
    fprintf(f, "\nsummary (|predicted / published - 1|; roofline = no calibration):\n");
    summary(f, "held-out points", &held);
    summary(f, "calibration points", &used);
    if (skipped) fprintf(f, "  not modelled: %d point(s), listed above with the reason\n", skipped);
    double worst = held_worst(&held);
    json_t *jhw = json_array();
    for (int h = 0; h < n_hw; h++) {
        char what[128];
        fprintf(f, "per hardware: %s\n", per_hw[h].name);
        snprintf(what, sizeof what, "%s held-out", per_hw[h].name);
        summary(f, what, &per_hw[h].held);
        snprintf(what, sizeof what, "%s calibration", per_hw[h].name);
        summary(f, what, &per_hw[h].used);
        double w = held_worst(&per_hw[h].held);
        fprintf(f, "  %s target (calibrated within 25%% on held-out points): %s (worst %.0f%%)\n", per_hw[h].name,
                per_hw[h].held.n ? (w <= 0.25 ? "met" : "NOT met") : "no held-out points", 100 * w);
        json_t *o = json_object();
        json_object_set_new(o, "hardware", json_string(per_hw[h].name));
        json_object_set_new(o, "held_out_points", json_integer(per_hw[h].held.n));
        json_object_set_new(o, "calibration_points", json_integer(per_hw[h].used.n));
        json_object_set_new(o, "held_out_worst_error", per_hw[h].held.n ? json_real(w) : json_null());
        json_array_append_new(jhw, o);
    }
    fprintf(f, "target: calibrated within 25%% on held-out points: %s (worst %.0f%%)\n",
            held.n ? (worst <= 0.25 ? "met" : "NOT met") : "no held-out points", 100 * worst);
    fclose(f);
    if (json) {
        json_object_set_new(jroot, "sets", jsets);
        json_object_set_new(jroot, "held_out_points", json_integer(held.n));
        json_object_set_new(jroot, "calibration_points", json_integer(used.n));
        json_object_set_new(jroot, "not_modelled", json_integer(skipped));
        json_object_set_new(jroot, "held_out_worst_error", held.n ? json_real(worst) : json_null());
        json_object_set_new(jroot, "per_hardware", jhw);
        json_object_set_new(jroot, "source", json_string("estimate vs published measurement"));
        char *t = json_dumps(jroot, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
        json_decref(jroot);
        free(out);
        if (!t) { fprintf(stderr, "etok tpf: out of memory\n"); return ETOK_EXIT_FAIL; }
        printf("%s\n", t);
        free(t);
    } else {
        json_decref(jroot);
        json_decref(jsets);
        json_decref(jhw);
        fputs(out, stdout);
        free(out);
    }
    return ETOK_EXIT_OK;
}

int cmd_tpf(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},          {"lever", required_argument, 0, 'l'},
        {"price-per-kwh", required_argument, 0, 'p'}, {"sweep", required_argument, 0, 's'},
        {"csv", required_argument, 0, 'c'},     {"svg", required_argument, 0, 'g'},
        {"from-run", required_argument, 0, 'r'}, {"list", required_argument, 0, 'L'},
        {"validate", no_argument, 0, 'V'},      {"uncalibrated", no_argument, 0, 'U'},
        {"grid-intensity", required_argument, 0, 'G'}, {"region", required_argument, 0, 'R'},
        {"help", no_argument, 0, 'h'},          {"calibrate", no_argument, 0, 'K'},
        {"model", required_argument, 0, 'M'},   {"output", required_argument, 0, 'o'},
        {0, 0, 0, 0}};
    int validate_mode = 0, uncalibrated = 0, calibrate_mode = 0;
    const char *cal_out = NULL, *cal_model = NULL;
    int json = 0;
    const char *levers[ETOK_SCENARIO_MAX_LEVERS];
    size_t n_levers = 0;
    double price = -1;
    const char *sweep = NULL, *csv = NULL, *svg = NULL, *from_run = NULL, *list = NULL;
    const char *grid_text = NULL, *grid_region = NULL;
    static etok_grid grid;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hjo:", opts, NULL)) != -1) {
        switch (c) {
        case 'j': json = 1; break;
        case 'l':
            if (n_levers >= ETOK_SCENARIO_MAX_LEVERS) {
                fprintf(stderr, "etok tpf: at most %d levers\n", ETOK_SCENARIO_MAX_LEVERS);
                return ETOK_EXIT_USAGE;
            }
            levers[n_levers++] = optarg;
            break;
        case 'p': {
            etok_err pe = {0};
            if (etok_parse_double("--price-per-kwh", optarg, etok_tpf_field_limit("price_per_kwh")->range, &price, &pe)) {
                fprintf(stderr, "etok tpf: %s\n", pe.msg);
                return ETOK_EXIT_USAGE;
            }
            break;
        }
        case 's': sweep = optarg; break;
        case 'c': csv = optarg; break;
        case 'g': svg = optarg; break;
        case 'r': from_run = optarg; break;
        case 'L': list = optarg; break;
        case 'V': validate_mode = 1; break;
        case 'U': uncalibrated = 1; break;
        case 'G': grid_text = optarg; break;
        case 'R': grid_region = optarg; break;
        case 'K': calibrate_mode = 1; break;
        case 'M': cal_model = optarg; break;
        case 'o': cal_out = optarg; break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        default:
            fprintf(stderr, "etok tpf: unknown or incomplete option '%s' (etok tpf --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
    }
    if (list) return list_kind(list);
    if (calibrate_mode) {
        if (validate_mode || n_levers || sweep || csv || svg || from_run || uncalibrated || price >= 0 || grid_text ||
            grid_region) {
            fprintf(stderr, "etok tpf: --calibrate takes RUN... and -o, --model, --json only\n");
            return ETOK_EXIT_USAGE;
        }
        return cmd_tpf_calibrate(argc - optind, argv + optind, cal_out, cal_model, json);
    }
    if (cal_out || cal_model) {
        fprintf(stderr, "etok tpf: -o and --model go with --calibrate\n");
        return ETOK_EXIT_USAGE;
    }
    {
        etok_err gerr = {0};
        if (etok_grid_resolve(grid_text, grid_region, &grid, &gerr)) {
            fprintf(stderr, "etok tpf: %s\n", gerr.msg);
            return gerr.exit_code ? gerr.exit_code : ETOK_EXIT_USAGE;
        }
        if (grid.present && (validate_mode || sweep)) {
            fprintf(stderr, "etok tpf: --grid-intensity/--region apply to one scenario (and its levers), not to "
                            "--validate or --sweep\n");
            return ETOK_EXIT_USAGE;
        }
    }
    if (validate_mode) {
        if (optind < argc - 1 || n_levers || sweep || csv || svg || from_run || uncalibrated || price >= 0) {
            fprintf(stderr, "etok tpf: --validate takes at most one MEASUREMENTS file and --json\n");
            return ETOK_EXIT_USAGE;
        }
        return validate(optind < argc ? argv[optind] : NULL, json);
    }
    if (optind != argc - 1) {
        fprintf(stderr, "etok tpf: expected one SCENARIO (a file or catalog name); etok tpf --help\n");
        return ETOK_EXIT_USAGE;
    }
    if ((csv || svg) && !sweep) {
        fprintf(stderr, "etok tpf: --csv and --svg need --sweep\n");
        return ETOK_EXIT_USAGE;
    }
    const char *path = argv[optind];
    etok_err err = {0};
    static etok_scenario_file sf; /* large; one per process */
    if (etok_scenario_load(path, &sf, &err)) return fail(&err);
    if (price < 0) price = sf.price_per_kwh;

    etok_tpf_context ctx = {0};
    ctx.scenario_name = *sf.name ? sf.name : path;
    ctx.price_per_kwh = price;
    ctx.grid = &grid;
    size_t nl = 0;
    for (size_t i = 0; i < sf.n_levers && nl < 15; i++) ctx.levers[nl++] = sf.levers[i];
    for (size_t i = 0; i < n_levers && nl < 15; i++) ctx.levers[nl++] = levers[i];

    sf.s.uncalibrated = uncalibrated;
    etok_tpf_scenario before = sf.s, after = sf.s;
    for (size_t i = 0; i < nl; i++)
        if (etok_lever_apply(&after, ctx.levers[i], &err)) return fail(&err);

    if (from_run) {
        if (etok_tpf_apply_run(from_run, &before, &err) || etok_tpf_apply_run(from_run, &after, &err)) return fail(&err);
        ctx.from_run = from_run;
    }

    if (sweep) {
        etok_sweep_spec spec;
        etok_sweep sw;
        if (etok_sweep_parse(sweep, &spec, &err)) return fail(&err);
        if (etok_sweep_run(&after, &spec, price, &sw, &err)) return fail(&err);
        int rc = 0;
        char *text = json ? etok_tpf_render_sweep_json(&sw, &ctx) : etok_tpf_render_sweep_text(&sw, &ctx);
        if (text) fputs(text, stdout);
        free(text);
        if (csv) {
            char *t = etok_tpf_render_sweep_csv(&sw);
            rc = write_out(csv, t);
            free(t);
        }
        if (!rc && svg) {
            char *t = etok_tpf_render_sweep_svg(&sw, &ctx);
            rc = write_out(svg, t);
            free(t);
        }
        etok_sweep_free(&sw);
        return rc;
    }

    static etok_tpf_result ra, rb;
    if (etok_tpf_evaluate(&before, price, &ra, &err)) return fail(&err);
    etok_tpf_apply_grid(&ra, grid.present ? grid.g_per_kwh : 0);
    char *text;
    if (nl) {
        if (etok_tpf_evaluate(&after, price, &rb, &err)) {
            fprintf(stderr, "etok tpf: after the levers: %s\n", err.msg);
            return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        }
        etok_tpf_apply_grid(&rb, grid.present ? grid.g_per_kwh : 0);
        text = json ? etok_tpf_render_compare_json(&before, &ra, &after, &rb, &ctx)
                    : etok_tpf_render_compare_text(&before, &ra, &after, &rb, &ctx);
    } else {
        text = json ? etok_tpf_render_json(&before, &ra, &ctx) : etok_tpf_render_text(&before, &ra, &ctx);
    }
    if (!text) { fprintf(stderr, "etok tpf: out of memory\n"); return ETOK_EXIT_FAIL; }
    fputs(text, stdout);
    free(text);
    return ETOK_EXIT_OK;
}
