/* cmd_tpf.c — `etok tpf`: the Token Production Function for a scenario (METRICS.md §1).
 * Owns: argument parsing and wiring scenario loading -> model -> render -> files. Computes
 * nothing itself. */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "commands.h"
#include "etok/scenario.h"
#include "etok/tpf.h"
#include "etok/tpf_render.h"
#include "etok/util.h"
#include "scenario/from_run.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok tpf SCENARIO [--json] [--lever NAME ...] [--price-per-kwh X]\n"
            "                [--sweep FIELD=START:STOP:STEPS[:log] [--csv OUT.csv] [--svg OUT.svg]]\n"
            "                [--from-run RUN.json]\n"
            "       etok tpf --list hardware|models|scenarios|levers|fields\n\n"
            "The Token Production Function (docs/METRICS.md section 1) of a deployment: every ceiling as a\n"
            "token rate (compute, memory_bandwidth, memory_capacity, delivered_power, cooling,\n"
            "device_power_cap), the binding constraint, token_rate_tps, modelled device power and\n"
            "energy per token, joules_per_flop and the crossover facility power. A MODEL ESTIMATE.\n\n"
            "  SCENARIO             a scenario JSON file, or a catalog scenario name (--list scenarios)\n"
            "  --json               JSON with docs/METRICS.md field names\n"
            "  --lever NAME         apply a lever and show before/after (repeatable): fp8, int8, int4,\n"
            "                       kv-int8, kv-fp8, mla, window=N, moe-topk=K, batch=N,\n"
            "                       adaptive-reasoning=F, phi=X (levers in the file are applied too)\n"
            "  --price-per-kwh X    energy price for energy_cost_per_mtok\n"
            "  --sweep SPEC         sweep one field (--list fields), e.g. facility.power_w=1e4:1e7:60:log\n"
            "  --csv FILE           write the sweep as CSV (grid points and exact crossovers)\n"
            "  --svg FILE           write the sweep as an SVG figure\n"
            "  --from-run FILE      take e_tok, utilization and device power measured by etok run/bench\n"
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
        for (const char *const *f = etok_sweep_fields(); *f; f++) printf("%-30s %s\n", *f, etok_tpf_field_label(*f));
        return ETOK_EXIT_OK;
    }
    const char *dir = !strcmp(kind, "hardware") ? "hardware" : !strcmp(kind, "models") ? "models"
                      : !strcmp(kind, "scenarios")                                   ? "scenarios"
                                                                                     : NULL;
    if (!dir) {
        fprintf(stderr, "etok tpf: --list %s: expected hardware, models, scenarios, levers or fields\n", kind);
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

int cmd_tpf(int argc, char **argv) {
    static const struct option opts[] = {
        {"json", no_argument, 0, 'j'},          {"lever", required_argument, 0, 'l'},
        {"price-per-kwh", required_argument, 0, 'p'}, {"sweep", required_argument, 0, 's'},
        {"csv", required_argument, 0, 'c'},     {"svg", required_argument, 0, 'g'},
        {"from-run", required_argument, 0, 'r'}, {"list", required_argument, 0, 'L'},
        {"help", no_argument, 0, 'h'},          {0, 0, 0, 0}};
    int json = 0;
    const char *levers[ETOK_SCENARIO_MAX_LEVERS];
    size_t n_levers = 0;
    double price = -1;
    const char *sweep = NULL, *csv = NULL, *svg = NULL, *from_run = NULL, *list = NULL;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "hj", opts, NULL)) != -1) {
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
            char *end;
            errno = 0;
            price = strtod(optarg, &end);
            if (errno || *end || !(price >= 0) || !isfinite(price)) {
                fprintf(stderr, "etok tpf: --price-per-kwh '%s': expected a number >= 0\n", optarg);
                return ETOK_EXIT_USAGE;
            }
            break;
        }
        case 's': sweep = optarg; break;
        case 'c': csv = optarg; break;
        case 'g': svg = optarg; break;
        case 'r': from_run = optarg; break;
        case 'L': list = optarg; break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        default:
            fprintf(stderr, "etok tpf: unknown or incomplete option '%s' (etok tpf --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
    }
    if (list) return list_kind(list);
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
    size_t nl = 0;
    for (size_t i = 0; i < sf.n_levers && nl < 15; i++) ctx.levers[nl++] = sf.levers[i];
    for (size_t i = 0; i < n_levers && nl < 15; i++) ctx.levers[nl++] = levers[i];

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
    char *text;
    if (nl) {
        if (etok_tpf_evaluate(&after, price, &rb, &err)) {
            fprintf(stderr, "etok tpf: after the levers: %s\n", err.msg);
            return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        }
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
