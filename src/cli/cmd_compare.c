/* cmd_compare.c — `etok compare BASE CAND [CAND ...]`: argument parsing and record loading
 * only. Each arm is one or more run records (a run.json, or a directory holding one: a bench
 * output directory or a sweep point), comma-separated or globbed with --arm NAME=GLOB; the
 * figures, checks and verdicts are analyse/compare.c's, the formats render/compare_render.c's. */
#include <getopt.h>
#include <glob.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "commands.h"
#include "etok/calibrate.h"
#include "etok/compare.h"
#include "etok/lever_predict.h"
#include "etok/scenario.h"
#include "scenario/cal_io.h"
#include "etok/record.h"
#include "etok/util.h"

#define MAX_ARMS 16
#define MAX_RECORDS 256

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok compare BASE CAND [CAND ...] [--format F] [-o FILE] [--allow-mismatch]\n"
            "       etok compare --arm NAME=SPEC --arm NAME=SPEC [...] [options]\n"
            "\n"
            "Compare candidates with a baseline: for each candidate, the change in J/output-token, J/token,\n"
            "J/correct-answer, quality-conditioned J/token, accuracy, SLO attainment, goodput, mean power and\n"
            "TTFT/TPOT p50/p90, absolute and relative, each with a bootstrap 95%% CI over requests (paired by\n"
            "eval item when both arms ran the same items); the (q*, s*) gate; and one verdict line per\n"
            "candidate. The meter's systematic band is stated separately from the CI.\n"
            "\n"
            "An arm (BASE, CAND, or SPEC) is a run record (run.json of bench, serve or run) or a directory\n"
            "holding run.json (a bench -o DIR, a sweep point); several, comma-separated (A1,A2,A3) or as\n"
            "shell globs in --arm, pool repeats so that run-to-run variance enters the CI: each resample\n"
            "draws the arm's records, then requests within them, and no CI is narrower than the t-interval\n"
            "over the records. An arm of one record without per-request energy (bench --endpoint) has no\n"
            "energy CI (n/a): repeat the run. The first arm is the baseline. Arms are named A, B, C, ...\n"
            "unless --arm names them.\n"
            "\n"
            "  --arm NAME=SPEC       a named arm; SPEC is comma-separated paths or globs (replaces positional arms)\n"
            "  --format F            text (default), md, json, csv, html (with a forest plot of the deltas)\n"
            "  -o FILE               write there instead of stdout\n"
            "  --allow-mismatch      compare even when the runs differ in eval set or energy boundary\n"
            "                        (the output then carries the warning); otherwise that is exit 3\n"
            "  --iters N             bootstrap resamples (default 2000)\n"
            "  --seed S              bootstrap seed (default 1)\n"
            "  --slo-attainment F    s* is met when the SLO attainment CI reaches F (default 0.9)\n"
            "  --calibration FILE    hardware profile for the TPF prediction line (etok tpf --calibrate -o FILE);\n"
            "                        default: the baseline record's probe roofs, uncalibrated (also --profile)\n"
            "  --model NAME          catalog model for the prediction (default: matched from the records)\n"
            "  -h, --help            this help\n"
            "\n"
            "For bench runs of the built-in engine, each candidate also gets the TPF's predicted change of\n"
            "token rate and J/output-token for the setting that differs (weights, KV format, window,\n"
            "concurrency; docs/LEVERS.md) beside the measured change and its CI, or 'no prediction: why';\n"
            "for bench runs of the engine or an --endpoint that differ in --gpu-power-limit, from the\n"
            "baseline's measured GPU draw (nvml): rate x cap / draw when the cap is below it.\n"
            "\n"
            "exit codes: 0 compared, 2 usage, 3 a record cannot be read or a meaningless mismatch\n"
            "without --allow-mismatch, 5 output not writable\n");
}

typedef struct {
    char name[64];
    char *spec;
} arm_spec;

typedef struct {
    etok_record *recs;
    char **paths;
    size_t n;
} loaded;

/* A path: a record file, or a directory holding run.json. */
static int load_one(loaded *L, const char *path) {
    if (L->n >= MAX_RECORDS) {
        fprintf(stderr, "etok compare: more than %d records\n", MAX_RECORDS);
        return ETOK_EXIT_USAGE;
    }
    char file[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/run.json", path);
    else snprintf(file, sizeof file, "%s", path);
    etok_err err = {0};
    etok_record *r = &L->recs[L->n];
    if (etok_record_load(r, file, &err)) {
        fprintf(stderr, "etok compare: %s\n", err.msg);
        etok_record_free(r);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    L->paths[L->n] = strdup(file);
    if (!L->paths[L->n]) {
        etok_record_free(r);
        fprintf(stderr, "etok compare: out of memory\n");
        return ETOK_EXIT_FAIL;
    }
    L->n++;
    return 0;
}

/* Loads the comma-separated paths or globs of spec; returns 0 or an exit code. */
static int load_spec(loaded *L, const char *spec, int use_glob) {
    char *dup = strdup(spec);
    if (!dup) return ETOK_EXIT_FAIL;
    int rc = 0;
    size_t before = L->n;
    char *save = NULL;
    for (char *tok = strtok_r(dup, ",", &save); tok && !rc; tok = strtok_r(NULL, ",", &save)) {
        if (!*tok) continue;
        if (use_glob && strpbrk(tok, "*?[")) {
            glob_t g;
            int gr = glob(tok, 0, NULL, &g);
            if (gr == GLOB_NOMATCH) {
                fprintf(stderr, "etok compare: '%s' matches no file\n", tok);
                rc = ETOK_EXIT_INPUT;
            } else if (gr) {
                fprintf(stderr, "etok compare: '%s': cannot expand\n", tok);
                rc = ETOK_EXIT_INPUT;
            }
            for (size_t i = 0; !gr && !rc && i < g.gl_pathc; i++) rc = load_one(L, g.gl_pathv[i]);
            if (gr != GLOB_NOMATCH) globfree(&g);
        } else
            rc = load_one(L, tok);
    }
    free(dup);
    if (!rc && L->n == before) {
        fprintf(stderr, "etok compare: arm '%s' names no record\n", spec);
        rc = ETOK_EXIT_USAGE;
    }
    return rc;
}

static int parse_double(const char *opt, const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (!*s || *end || !isfinite(v) || v < lo || v > hi) {
        fprintf(stderr, "etok compare: %s: '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
        return -1;
    }
    *out = v;
    return 0;
}

/* The TPF's prediction for each candidate (lever_predict.h): a --gpu-power-limit difference
 * from the baseline's measured GPU draw (every record of the baseline arm; bench runs of the
 * engine or of an endpoint), else the engine levers from the first record of the baseline and
 * of the candidate. Records that are neither get no line. Returns 0. */
static int predict(etok_compare_result *res, const loaded *L, const etok_compare_arm *ca, const etok_hw_spec *cal,
                   const char *model_name) {
    static etok_cal_run base, cand;
    etok_err err = {0};
    const int have_base = L[0].n && etok_cal_run_from_record(&L[0].recs[0], L[0].paths[0], &base, &err) == 0;
    static etok_model_arch model;
    etok_err merr = {0};
    int have_model = have_base && etok_cal_find_model(&base, model_name, &model, &merr) == 0;
    static etok_hw_spec hw;
    if (cal) hw = *cal;
    else if (have_base) etok_cal_roofs(&base, &hw);
    for (size_t i = 0; i < res->n_cand; i++) {
        const loaded *C = &L[i + 1];
        etok_lever_prediction *p = &res->cand[i].pred;
        if (etok_gpu_power_lever_predict(ca[0].records, ca[0].n_records, ca[i + 1].records, ca[i + 1].n_records, &res->cand[i], p))
            continue;
        etok_err e = {0};
        if (!have_base || !C->n || etok_cal_run_from_record(&C->recs[0], C->paths[0], &cand, &e)) continue;
        if (!have_model) {
            memset(p, 0, sizeof *p);
            p->present = 1;
            snprintf(p->why, sizeof p->why, "no prediction: %.200s", merr.msg);
            continue;
        }
        if (etok_lever_predict(&base, &cand, &hw, &model, &res->cand[i], p, &e)) {
            /* the scenario the TPF cannot run (e.g. a window longer than the context) */
            memset(p, 0, sizeof *p);
            p->present = 1;
            snprintf(p->why, sizeof p->why, "no prediction: %.200s", e.msg);
        }
    }
    return 0;
}

int cmd_compare(int argc, char **argv) {
    enum { O_ARM = 256, O_FORMAT, O_ALLOW, O_ITERS, O_SEED, O_SLOA, O_CALIB, O_MODEL };
    static const struct option lopts[] = {
        {"arm", required_argument, NULL, O_ARM},       {"format", required_argument, NULL, O_FORMAT},
        {"output", required_argument, NULL, 'o'},      {"allow-mismatch", no_argument, NULL, O_ALLOW},
        {"iters", required_argument, NULL, O_ITERS},   {"seed", required_argument, NULL, O_SEED},
        {"slo-attainment", required_argument, NULL, O_SLOA}, {"help", no_argument, NULL, 'h'},
        {"calibration", required_argument, NULL, O_CALIB}, {"profile", required_argument, NULL, O_CALIB},
        {"model", required_argument, NULL, O_MODEL},
        {NULL, 0, NULL, 0}};
    arm_spec arms[MAX_ARMS];
    size_t n_arms = 0, n_named = 0;
    const char *format = "text", *out_path = NULL, *calib = NULL, *model_name = NULL;
    int allow = 0;
    double iters = 2000, seed = 1, slo_att = 0.9;
    int c;
    optind = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":o:h", lopts, NULL)) != -1) {
        switch (c) {
        case O_ARM: {
            const char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg || !eq[1] || (size_t)(eq - optarg) >= sizeof arms[0].name) {
                fprintf(stderr, "etok compare: --arm: want NAME=SPEC (a name of 1..63 characters), got '%s'\n", optarg);
                return ETOK_EXIT_USAGE;
            }
            if (n_arms >= MAX_ARMS) {
                fprintf(stderr, "etok compare: at most %d arms\n", MAX_ARMS);
                return ETOK_EXIT_USAGE;
            }
            snprintf(arms[n_arms].name, sizeof arms[n_arms].name, "%.*s", (int)(eq - optarg), optarg);
            arms[n_arms++].spec = (char *)eq + 1;
            n_named++;
            break;
        }
        case O_FORMAT: format = optarg; break;
        case 'o': out_path = optarg; break;
        case O_ALLOW: allow = 1; break;
        case O_ITERS:
            if (parse_double("--iters", optarg, 100, 1e6, &iters)) return ETOK_EXIT_USAGE;
            break;
        case O_SEED:
            if (parse_double("--seed", optarg, 0, 9e15, &seed)) return ETOK_EXIT_USAGE;
            break;
        case O_SLOA:
            if (parse_double("--slo-attainment", optarg, 0.01, 1, &slo_att)) return ETOK_EXIT_USAGE;
            break;
        case O_CALIB: calib = optarg; break;
        case O_MODEL: model_name = optarg; break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        case ':': fprintf(stderr, "etok compare: %s needs a value\n", argv[optind - 1]); return ETOK_EXIT_USAGE;
        default:
            fprintf(stderr, "etok compare: unknown option '%s' (etok compare --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
    }
    if (strcmp(format, "text") && strcmp(format, "md") && strcmp(format, "markdown") && strcmp(format, "json") &&
        strcmp(format, "csv") && strcmp(format, "html")) {
        fprintf(stderr, "etok compare: unknown format '%s' (text, md, json, csv, html)\n", format);
        return ETOK_EXIT_USAGE;
    }
    if (n_named && optind < argc) {
        fprintf(stderr, "etok compare: give the arms either as --arm NAME=SPEC or as positional arguments, not both\n");
        return ETOK_EXIT_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        if (n_arms >= MAX_ARMS) {
            fprintf(stderr, "etok compare: at most %d arms\n", MAX_ARMS);
            return ETOK_EXIT_USAGE;
        }
        snprintf(arms[n_arms].name, sizeof arms[n_arms].name, "%c", (char)('A' + n_arms));
        arms[n_arms++].spec = argv[i];
    }
    if (n_arms < 2) {
        fprintf(stderr, "etok compare: give a baseline and at least one candidate (etok compare BASE CAND)\n");
        return ETOK_EXIT_USAGE;
    }
    for (size_t i = 0; i < n_arms; i++)
        for (size_t j = 0; j < i; j++)
            if (!strcmp(arms[i].name, arms[j].name)) {
                fprintf(stderr, "etok compare: two arms are named '%s'\n", arms[i].name);
                return ETOK_EXIT_USAGE;
            }
    etok_err err = {0};
    if (out_path && etok_check_output_path(out_path, &err)) {
        fprintf(stderr, "etok compare: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_OUTPUT;
    }

    static etok_hw_spec calhw;
    if (calib && etok_catalog_hardware(calib, &calhw, &err)) {
        fprintf(stderr, "etok compare: --calibration: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    int rc = ETOK_EXIT_OK;
    loaded L[MAX_ARMS];
    memset(L, 0, sizeof L);
    etok_compare_arm ca[MAX_ARMS];
    const etok_record *rp[MAX_ARMS][MAX_RECORDS];
    etok_compare_result res;
    memset(&res, 0, sizeof res);
    char *txt = NULL;
    for (size_t i = 0; i < n_arms && !rc; i++) {
        L[i].recs = calloc(MAX_RECORDS, sizeof *L[i].recs);
        L[i].paths = calloc(MAX_RECORDS, sizeof *L[i].paths);
        if (!L[i].recs || !L[i].paths) {
            fprintf(stderr, "etok compare: out of memory\n");
            rc = ETOK_EXIT_FAIL;
            break;
        }
        rc = load_spec(&L[i], arms[i].spec, n_named > 0);
        for (size_t k = 0; k < L[i].n; k++) rp[i][k] = &L[i].recs[k];
        ca[i] = (etok_compare_arm){.name = arms[i].name, .records = rp[i], .paths = (const char *const *)L[i].paths,
                                   .n_records = L[i].n};
    }
    if (!rc) {
        etok_compare_opts o = {.iters = (int)iters, .seed = (uint64_t)seed, .slo_target = slo_att};
        if (etok_compare(&ca[0], ca + 1, n_arms - 1, &o, &res, &err)) {
            fprintf(stderr, "etok compare: %s\n", err.msg);
            rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        }
    }
    if (!rc && res.any_fatal) {
        for (size_t i = 0; i < res.n_cand; i++)
            for (size_t k = 0; k < res.cand[i].n_mismatch; k++)
                if (res.cand[i].mismatch[k].fatal)
                    fprintf(stderr, "etok compare: %s: %s\n", res.cand[i].name, res.cand[i].mismatch[k].message);
        if (!allow) {
            fprintf(stderr, "etok compare: these runs are not comparable (use --allow-mismatch to compare anyway)\n");
            rc = ETOK_EXIT_INPUT;
        } else
            fprintf(stderr, "etok compare: WARNING: comparing despite the mismatch above (--allow-mismatch); the output says so\n");
    }
    if (!rc) rc = predict(&res, L, ca, calib ? &calhw : NULL, model_name);
    if (!rc) {
        txt = etok_compare_render(&res, format);
        if (!txt) {
            fprintf(stderr, "etok compare: out of memory\n");
            rc = ETOK_EXIT_FAIL;
        } else if (etok_write_file_atomic(out_path ? out_path : "-", txt, strlen(txt), &err)) {
            fprintf(stderr, "etok compare: %s\n", err.msg);
            rc = err.exit_code ? err.exit_code : ETOK_EXIT_OUTPUT;
        }
    }
    free(txt);
    etok_compare_free(&res);
    for (size_t i = 0; i < n_arms; i++) {
        for (size_t k = 0; k < L[i].n; k++) {
            etok_record_free(&L[i].recs[k]);
            free(L[i].paths[k]);
        }
        free(L[i].recs);
        free(L[i].paths);
    }
    return rc;
}
