/* cmd_sweep.c — `etok sweep`: a grid of bench runs (--grid KEY=v1,v2 or --sweep-file JSON),
 * repeats, one idle baseline per sweep re-measured on drift or age, a seeded shuffled run order,
 * DIR/points/NAME/run.json per run (each a full `etok bench`, called in-process through
 * cmd_bench with -q), --resume, and the index DIR/sweep.json + sweep.csv + sweep.html rewritten
 * atomically after every run (so SIGINT leaves every finished run and a valid index).
 * Owns: argument parsing, the plan, baselines and drift, the driver loop. Figures come from
 * each run's record through etok_metrics_compute; the frontier, gate, repeat CIs, drift test
 * and order from analyse/pareto.c; rendering from render/sweep_report.c. docs/SWEEP.md. */
#include <jansson.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/parse.h"
#include "etok/energy.h"
#include "etok/meter.h"
#include "etok/metrics.h"
#include "etok/pareto.h"
#include "etok/record.h"
#include "etok/report.h"
#include "etok/sweep_report.h"
#include "etok/util.h"

#define MAX_POINTS 4096
#define MAX_VALUES 256

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok sweep (--grid KEY=V1,V2,... [--grid ...] | --sweep-file FILE) [--repeat N] [--seed S]\n"
            "                  [--idle S] [--idle-probe S] [--drift-tol X] [--drift-floor W] [--baseline-every MIN]\n"
            "                  [--slo-attainment A] [--resume] [--dry-run] [-q] -o DIR [BENCH OPTIONS]\n"
            "\n"
            "Runs `etok bench` at every point of a grid of bench options and finds the energy-latency\n"
            "Pareto frontier over (J/output-token, p90 TPOT) among the points that meet q* and s*.\n"
            "\n"
            "  --grid KEY=V1,V2,...   a bench option and its values (repeatable: the grid is the product,\n"
            "                         first key outermost); KEY is any bench option taking a value, e.g.\n"
            "                         concurrency, rate, max-tokens, threads, model, endpoint, system\n"
            "  --sweep-file FILE      JSON: {\"grid\": {KEY: [V, ...], ...}, \"points\": [{\"name\": N, KEY: V, ...}]}\n"
            "                         (both optional; points are added after the grid)\n"
            "  --repeat N             runs per point (default 1; 2+ gives 95%% CIs over repeats)\n"
            "  --seed S               run order shuffle and every run's --seed (default 1)\n"
            "  --idle S               the sweep's idle baseline in seconds (default 10; 0: none)\n"
            "  --idle-probe S         each run's own idle window (its bench --idle), compared with the\n"
            "                         baseline to detect drift (default 2; 0: no drift detection)\n"
            "  --drift-tol X          drift when |probe - baseline| > max(X * baseline, floor) (default 0.05)\n"
            "  --drift-floor W        that floor in watts (default 0.5)\n"
            "  --baseline-every MIN   re-measure the baseline at least every MIN minutes (default 10)\n"
            "  --slo-attainment A     a point meets s* when its SLO attainment >= A (default 0.9)\n"
            "  --resume               continue DIR: runs whose run.json is complete are kept\n"
            "  --dry-run              print the plan (run order and bench options) and run nothing\n"
            "  -o, --output DIR       output directory (required)\n"
            "  -q, --quiet            no progress lines\n"
            "  -h, --help             this help\n"
            "\n"
            "Every other option is passed to every run of etok bench (etok bench --help), e.g.\n"
            "--requests 8 --meter rapl --quality-target 0.5 --tpot-slo 0.1. The sweep owns -o, --seed\n"
            "and --idle of each run. Writes DIR/points/NAME/run.json (NAME_rK with --repeat), the\n"
            "baselines DIR/baselines/bN.json, DIR/sweep.json (index and per-point summary), DIR/sweep.csv\n"
            "and DIR/sweep.html, rewritten after every run. Ctrl-C stops after the run in progress\n"
            "(its record is kept, marked partial) with a valid index; --resume continues.\n"
            "exit codes: 0 ok (runs that failed are listed), 1 failure, 2 usage, 3 bad sweep file,\n"
            "            5 output not writable, 130 interrupted (index written)\n");
}

/* The options of etok bench (cmd_bench.c) that take a value: pass-through and grid keys. */
static const char *const BENCH_ARG_OPTS[] = {
    "model", "evals", "requests", "duration", "concurrency", "rate", "max-tokens", "threads", "warmup",
    "quality-target", "ttft-slo", "tpot-slo", "pue", "meter", "cpu-tdp", "price-per-kwh", "grid-intensity", "region", "deployment-utilization",
    "profile", "system", "endpoint", "endpoint-model", "api-key", "timeout", "energy-from", "server-pid",
    "boundary", "weights", "kv-type", "attn-window", "attn-sinks", "cpu-max-freq", "gpu-power-limit", "budget", NULL};
static const char *const BENCH_FLAG_OPTS[] = {"completions", NULL};
static const char *const SWEEP_OWNED[] = {"output", "seed", "idle", "quiet", "help", NULL};

static int in_list(const char *const *l, const char *s) {
    for (; *l; l++)
        if (!strcmp(*l, s)) return 1;
    return 0;
}

typedef struct {
    char key[32];
    size_t n;
    char *vals[MAX_VALUES];
} grid_axis;

typedef struct {
    /* options */
    const char *out_dir, *sweep_file;
    int repeat, resume, dry_run, quiet;
    unsigned long long seed;
    double idle_s, probe_s, drift_tol, drift_floor_w, every_min, attain;
    grid_axis axes[ETOK_SWEEP_MAX_KEYS];
    size_t n_axes;
    char **pass;
    size_t n_pass;
    etok_cli_meters meters;
    double cpu_idle_w, cpu_max_w;
    /* state */
    etok_sweep_doc d;
    int sig_fd;
    double last_baseline_mono;
    size_t cur_baseline; /* index + 1; 0 = none */
    json_t *file_json;   /* the sweep file (owns the value strings of its points) */
} sweep;

static int parse_d(const char *opt, const char *s, double lo, double hi, double *out) {
    etok_err e = {0};
    if (etok_parse_double(opt, s, ETOK_RANGE(lo, hi), out, &e) == 0) return 0;
    fprintf(stderr, "etok sweep: %s\n", e.msg);
    return -1;
}

static grid_axis *axis_for(sweep *S, const char *key) {
    if (!in_list(BENCH_ARG_OPTS, key) || in_list(SWEEP_OWNED, key)) {
        fprintf(stderr, "etok sweep: grid key '%s' is not a bench option that takes a value (etok sweep --help)\n", key);
        return NULL;
    }
    for (size_t i = 0; i < S->n_axes; i++)
        if (!strcmp(S->axes[i].key, key)) {
            fprintf(stderr, "etok sweep: grid key '%s' given twice\n", key);
            return NULL;
        }
    if (S->n_axes >= ETOK_SWEEP_MAX_KEYS) {
        fprintf(stderr, "etok sweep: at most %d grid keys\n", ETOK_SWEEP_MAX_KEYS);
        return NULL;
    }
    grid_axis *a = &S->axes[S->n_axes++];
    memset(a, 0, sizeof *a);
    snprintf(a->key, sizeof a->key, "%s", key);
    return a;
}

/* --grid KEY=V1,V2: the values point into arg (argv outlives the sweep). */
static int add_grid(sweep *S, char *arg) {
    char *eq = strchr(arg, '=');
    if (!eq || eq == arg || !eq[1]) {
        fprintf(stderr, "etok sweep: --grid '%s': expected KEY=V1,V2,...\n", arg);
        return -1;
    }
    *eq = 0;
    grid_axis *a = axis_for(S, arg);
    if (!a) return -1;
    for (char *v = eq + 1;;) {
        char *comma = strchr(v, ',');
        if (comma) *comma = 0;
        if (!*v || a->n >= MAX_VALUES) {
            fprintf(stderr, "etok sweep: --grid %s: %s\n", a->key, *v ? "too many values" : "empty value");
            return -1;
        }
        a->vals[a->n++] = v;
        if (!comma) break;
        v = comma + 1;
    }
    return 0;
}

/* A JSON scalar as an option value (strings as they are, numbers without trailing zeros). */
static char *json_value_text(json_t *v) {
    char b[64];
    if (json_is_string(v)) return strdup(json_string_value(v));
    if (json_is_integer(v)) snprintf(b, sizeof b, "%lld", (long long)json_integer_value(v));
    else if (json_is_real(v)) snprintf(b, sizeof b, "%.17g", json_real_value(v));
    else return NULL;
    return strdup(b);
}

/* Owned strings for values read from the sweep file, freed at the end. */
typedef struct {
    char **s;
    size_t n;
} strpool;
static char *pool_add(strpool *p, char *s) {
    if (!s) return NULL;
    char **ns = realloc(p->s, (p->n + 1) * sizeof *ns);
    if (!ns) { free(s); return NULL; }
    p->s = ns;
    p->s[p->n++] = s;
    return s;
}

/* A point name: KEY-VALUE joined by '_', values reduced to [A-Za-z0-9.+-] (a model path to its
 * file name without .gguf). */
static void point_name(const etok_sweep_point *p, char *out, size_t cap) {
    size_t o = 0;
    out[0] = 0;
    for (size_t k = 0; k < p->n_keys && o + 2 < cap; k++) {
        const char *v = p->vals[k];
        char vb[256];
        if (!strcmp(p->keys[k], "model") || !strcmp(p->keys[k], "evals") || !strcmp(p->keys[k], "profile")) {
            const char *sl = strrchr(v, '/');
            snprintf(vb, sizeof vb, "%s", sl ? sl + 1 : v);
            char *dot = strrchr(vb, '.');
            if (dot && dot != vb) *dot = 0;
        } else
            snprintf(vb, sizeof vb, "%s", v);
        int w = snprintf(out + o, cap - o, "%s%s-", k ? "_" : "", p->keys[k]);
        if (w < 0 || (size_t)w >= cap - o) break;
        o += (size_t)w;
        for (const char *c = vb; *c && o + 1 < cap && o < 150; c++) {
            char ch = *c;
            int okc = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') || ch == '.' ||
                      ch == '+' || ch == '-';
            out[o++] = okc ? ch : '-';
        }
        out[o] = 0;
    }
    if (!out[0]) snprintf(out, cap, "default");
}

static int add_point(sweep *S, const char *const *keys, const char *const *vals, size_t nk, const char *name) {
    if (S->d.n_points >= MAX_POINTS) {
        fprintf(stderr, "etok sweep: more than %d points\n", MAX_POINTS);
        return -1;
    }
    etok_sweep_point *np = realloc(S->d.points, (S->d.n_points + 1) * sizeof *np);
    if (!np) return -1;
    S->d.points = np;
    etok_sweep_point *p = &np[S->d.n_points];
    memset(p, 0, sizeof *p);
    for (size_t k = 0; k < nk; k++) {
        snprintf(p->keys[k], sizeof p->keys[k], "%s", keys[k]);
        if (snprintf(p->vals[k], sizeof p->vals[k], "%s", vals[k]) >= (int)sizeof p->vals[k]) {
            fprintf(stderr, "etok sweep: %s: value too long (%zu bytes)\n", keys[k], strlen(vals[k]));
            return -1;
        }
    }
    p->n_keys = nk;
    if (name) {
        for (const char *c = name; *c; c++)
            if (*c == '/' || *c == '\\' || (unsigned char)*c < 32) {
                fprintf(stderr, "etok sweep: point name '%s': no slashes or control characters\n", name);
                return -1;
            }
        if (!*name || !strcmp(name, ".") || !strcmp(name, "..") || strlen(name) > 150) {
            fprintf(stderr, "etok sweep: point name '%s' is not usable as a directory name\n", name);
            return -1;
        }
        snprintf(p->name, sizeof p->name, "%s", name);
    } else
        point_name(p, p->name, sizeof p->name);
    /* names are directories: unique */
    for (size_t i = 0; i < S->d.n_points; i++)
        if (!strcmp(S->d.points[i].name, p->name)) {
            if (name) {
                fprintf(stderr, "etok sweep: point name '%s' used twice\n", name);
                return -1;
            }
            size_t l = strlen(p->name);
            snprintf(p->name + (l > 180 ? 180 : l), sizeof p->name - (l > 180 ? 180 : l), "~%zu", S->d.n_points + 1);
            i = (size_t)-1; /* check again */
        }
    S->d.n_points++;
    return 0;
}

static int expand_grid(sweep *S) {
    if (!S->n_axes) return 0;
    size_t idx[ETOK_SWEEP_MAX_KEYS] = {0};
    const char *keys[ETOK_SWEEP_MAX_KEYS], *vals[ETOK_SWEEP_MAX_KEYS];
    for (size_t k = 0; k < S->n_axes; k++) keys[k] = S->axes[k].key;
    for (;;) {
        for (size_t k = 0; k < S->n_axes; k++) vals[k] = S->axes[k].vals[idx[k]];
        if (add_point(S, keys, vals, S->n_axes, NULL)) return -1;
        size_t k = S->n_axes;
        while (k > 0) { /* the last key varies fastest */
            k--;
            if (++idx[k] < S->axes[k].n) break;
            idx[k] = 0;
            if (k == 0) return 0;
        }
    }
}

static int load_sweep_file(sweep *S, strpool *pool) {
    etok_err err = {0};
    size_t len = 0;
    char *text = etok_read_file_bounded(S->sweep_file, "sweep file", 4u << 20, &len, &err);
    if (!text) {
        fprintf(stderr, "etok sweep: %s\n", err.msg);
        return ETOK_EXIT_INPUT;
    }
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!json_is_object(root)) {
        fprintf(stderr, "etok sweep: %s:%d: %s\n", S->sweep_file, root ? 1 : je.line,
                root ? "expected a JSON object" : je.text);
        json_decref(root);
        return ETOK_EXIT_INPUT;
    }
    S->file_json = root;
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        if (strcmp(k, "grid") && strcmp(k, "points")) {
            fprintf(stderr, "etok sweep: %s: unknown field '%s' (grid, points)\n", S->sweep_file, k);
            return ETOK_EXIT_INPUT;
        }
    }
    json_t *g = json_object_get(root, "grid");
    if (g && !json_is_object(g)) {
        fprintf(stderr, "etok sweep: %s: grid: expected an object {KEY: [values]}\n", S->sweep_file);
        return ETOK_EXIT_INPUT;
    }
    json_object_foreach(g, k, v) {
        if (!json_is_array(v) || json_array_size(v) == 0 || json_array_size(v) > MAX_VALUES) {
            fprintf(stderr, "etok sweep: %s: grid.%s: expected an array of 1 to %d values\n", S->sweep_file, k,
                    MAX_VALUES);
            return ETOK_EXIT_INPUT;
        }
        grid_axis *a = axis_for(S, k);
        if (!a) return ETOK_EXIT_INPUT;
        size_t i;
        json_t *e;
        json_array_foreach(v, i, e) {
            char *s = pool_add(pool, json_value_text(e));
            if (!s || !*s) {
                fprintf(stderr, "etok sweep: %s: grid.%s[%zu]: expected a non-empty string or a number\n",
                        S->sweep_file, k, i);
                return ETOK_EXIT_INPUT;
            }
            a->vals[a->n++] = s;
        }
    }
    if (expand_grid(S)) return ETOK_EXIT_INPUT;
    S->n_axes = 0; /* consumed: --grid on the command line would be a second product */
    json_t *pts = json_object_get(root, "points");
    if (pts && !json_is_array(pts)) {
        fprintf(stderr, "etok sweep: %s: points: expected an array of objects\n", S->sweep_file);
        return ETOK_EXIT_INPUT;
    }
    size_t i;
    json_t *p;
    json_array_foreach(pts, i, p) {
        if (!json_is_object(p)) {
            fprintf(stderr, "etok sweep: %s: points[%zu]: expected an object\n", S->sweep_file, i);
            return ETOK_EXIT_INPUT;
        }
        const char *keys[ETOK_SWEEP_MAX_KEYS], *vals[ETOK_SWEEP_MAX_KEYS], *name = NULL;
        size_t nk = 0;
        json_object_foreach(p, k, v) {
            if (!strcmp(k, "name")) {
                if (!json_is_string(v)) {
                    fprintf(stderr, "etok sweep: %s: points[%zu].name: expected a string\n", S->sweep_file, i);
                    return ETOK_EXIT_INPUT;
                }
                name = json_string_value(v);
                continue;
            }
            if (!in_list(BENCH_ARG_OPTS, k) || in_list(SWEEP_OWNED, k) || nk >= ETOK_SWEEP_MAX_KEYS) {
                fprintf(stderr, "etok sweep: %s: points[%zu].%s: not a bench option that takes a value%s\n",
                        S->sweep_file, i, k, nk >= ETOK_SWEEP_MAX_KEYS ? " (or too many keys)" : "");
                return ETOK_EXIT_INPUT;
            }
            char *s = pool_add(pool, json_value_text(v));
            if (!s || !*s) {
                fprintf(stderr, "etok sweep: %s: points[%zu].%s: expected a non-empty string or a number\n",
                        S->sweep_file, i, k);
                return ETOK_EXIT_INPUT;
            }
            keys[nk] = k;
            vals[nk++] = s;
        }
        if (add_point(S, keys, vals, nk, name)) return ETOK_EXIT_INPUT;
    }
    return 0;
}

/* ---------- outputs ---------- */

static int write_outputs(sweep *S) {
    static const char *const names[] = {"sweep.json", "sweep.csv", "sweep.html"};
    char *(*fn[])(const etok_sweep_doc *) = {etok_sweep_json, etok_sweep_csv, etok_sweep_html};
    for (int i = 0; i < 3; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", S->out_dir, names[i]);
        char *t = fn[i](&S->d);
        etok_err err = {0};
        if (!t) {
            fprintf(stderr, "etok sweep: %s: out of memory rendering\n", path);
            return ETOK_EXIT_FAIL;
        }
        int bad = etok_write_file_atomic(path, t, strlen(t), &err);
        free(t);
        if (bad) {
            fprintf(stderr, "etok sweep: %s\n", err.msg);
            return ETOK_EXIT_OUTPUT;
        }
    }
    return 0;
}

/* Per-point summary, gate, frontier and best point from the runs' figures. */
static int summarise(sweep *S) {
    etok_sweep_doc *d = &S->d;
    size_t n = d->n_points, nn = n ? n : 1;
    double *x = calloc(nn, sizeof *x), *y = calloc(nn, sizeof *y), *v = calloc((size_t)d->repeat + 1, sizeof *v);
    int *el = calloc(nn, sizeof *el), *fr = calloc(nn, sizeof *fr);
    int rc = -1;
    if (!x || !y || !v || !el || !fr) goto out;
    for (size_t i = 0; i < n; i++) {
        etok_sweep_point *p = &d->points[i];
        p->n_runs = p->n_ok = 0;
        p->q_star = p->ttft_slo_s = p->tpot_slo_s = NAN;
        for (size_t r = 0; r < d->n_runs; r++) {
            const etok_sweep_run *ru = &d->runs[r];
            if (ru->point != i) continue;
            p->n_runs++;
            if (strcmp(ru->status, "ok")) continue;
            if (!p->n_ok++) { /* q* and s* are bench options: the same in every repeat */
                p->q_star = ru->q_star;
                p->ttft_slo_s = ru->ttft_slo_s;
                p->tpot_slo_s = ru->tpot_slo_s;
            }
        }
        for (int f = 0; f < ETOK_SW_N; f++) {
            size_t k = 0;
            for (size_t r = 0; r < d->n_runs; r++)
                if (d->runs[r].point == i && !strcmp(d->runs[r].status, "ok")) v[k++] = d->runs[r].v[f];
            etok_repeat_ci(v, k, &p->mean[f], &p->lo[f], &p->hi[f]);
        }
        int has_slo = p->ttft_slo_s > 0 || p->tpot_slo_s > 0;
        etok_sweep_gate(p->mean[ETOK_SW_ACC], p->q_star, p->mean[ETOK_SW_SLO], has_slo, d->attainment_target,
                        &p->meets_q, &p->meets_s);
        if (!p->n_ok) p->meets_q = p->meets_s = 0;
        x[i] = p->mean[ETOK_SW_J_OUT];
        y[i] = p->mean[ETOK_SW_TPOT_P90];
        el[i] = p->meets_q && p->meets_s;
    }
    etok_pareto_frontier(x, y, el, n, fr);
    d->best = etok_pareto_best(x, y, el, n);
    for (size_t i = 0; i < n; i++) {
        d->points[i].on_front = fr[i];
        d->points[i].best = (long)i == d->best;
    }
    d->ratio_best_to_first = d->best >= 0 && n ? x[d->best] / x[0] : NAN;
    rc = 0;
out:
    free(x); free(y); free(v); free(el); free(fr);
    return rc;
}

/* ---------- figures of one run, from its record ---------- */

static double mval(const etok_metrics *m, const char *name, const char *stat) {
    const etok_metric *x = etok_metrics_get(m, name, stat);
    return x && x->valid ? x->value : NAN;
}

/* Loads DIR/points/NAME/run.json and fills the run's figures. Returns 1 when the record is
 * complete (not partial), 0 when partial, -1 when missing or unreadable (err says why). */
static int run_figures(sweep *S, etok_sweep_run *ru, etok_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/points/%s/run.json", S->out_dir, ru->name);
    for (int k = 0; k < ETOK_SW_N; k++) ru->v[k] = NAN;
    ru->probe_idle_w = ru->j_out_unc = NAN;
    ru->q_star = ru->ttft_slo_s = ru->tpot_slo_s = NAN;
    if (access(path, F_OK) != 0) return etok_errc(err, ETOK_EXIT_INPUT, "%s: no record", path);
    etok_record rec;
    etok_record_init(&rec);
    if (etok_record_load(&rec, path, err)) {
        etok_record_free(&rec);
        return -1;
    }
    etok_metrics m;
    memset(&m, 0, sizeof m);
    etok_metrics_opts mo = {.seed = S->d.seed ? S->d.seed : 1};
    int rc = -1;
    if (etok_metrics_compute(&rec, &mo, &m, err) == 0) {
        ru->v[ETOK_SW_J_OUT] = mval(&m, "joules_per_output_token", "");
        const etok_metric *je = etok_metrics_get(&m, "joules_per_output_token", "");
        ru->j_out_unc = je && je->valid ? je->uncertainty : NAN;
        ru->v[ETOK_SW_TPOT_P90] = mval(&m, "tpot_s", "p90");
        ru->v[ETOK_SW_TTFT_P90] = mval(&m, "ttft_s", "p90");
        ru->v[ETOK_SW_TPUT] = mval(&m, "utilization_adjusted_token_rate_tps", "");
        ru->v[ETOK_SW_ACC] = mval(&m, "accuracy", "");
        ru->v[ETOK_SW_J_CORRECT] = mval(&m, "joules_per_correct_answer", "");
        ru->v[ETOK_SW_SLO] = mval(&m, "slo_attainment", "");
        ru->v[ETOK_SW_POWER] = mval(&m, "mean_power_w", "");
        ru->probe_idle_w = mval(&m, "idle_power_w", "");
        snprintf(ru->energy_source, sizeof ru->energy_source, "%s", m.energy_source);
        ru->q_star = rec.quality_target >= 0 ? rec.quality_target : NAN;
        ru->ttft_slo_s = rec.ttft_slo_s;
        ru->tpot_slo_s = rec.tpot_slo_s;
        rc = rec.partial ? 0 : 1;
    }
    etok_metrics_free(&m);
    etok_record_free(&rec);
    return rc;
}

/* Dynamic J/output-token of a run against the baseline in force. */
static void run_dynamic(sweep *S, etok_sweep_run *ru) {
    ru->v[ETOK_SW_J_DYN] = NAN;
    const etok_sweep_baseline *b = NULL;
    for (size_t i = 0; i < S->d.n_baselines; i++)
        if (!strcmp(S->d.baselines[i].id, ru->baseline)) b = &S->d.baselines[i];
    if (!b || !isfinite(b->idle_power_w) || !isfinite(ru->v[ETOK_SW_J_OUT])) return;
    /* J/out = E / N and mean power = E / T, so E - P_idle T = E (1 - P_idle / P_mean) */
    double p = ru->v[ETOK_SW_POWER];
    if (isfinite(p) && p > 0) ru->v[ETOK_SW_J_DYN] = ru->v[ETOK_SW_J_OUT] * (1 - b->idle_power_w / p);
}

/* ---------- the idle baseline ---------- */

/* Meters on, nothing running, for S->idle_s seconds: DIR/baselines/bN.json and its mean power.
 * Returns 0, 1 when interrupted, or an exit code > 1 after printing why. */
static int take_baseline(sweep *S, const char *reason) {
    etok_err err = {0};
    etok_sweep_doc *d = &S->d;
    etok_sweep_baseline *nb = realloc(d->baselines, (d->n_baselines + 1) * sizeof *nb);
    if (!nb) return ETOK_EXIT_FAIL;
    d->baselines = nb;
    etok_sweep_baseline *b = &nb[d->n_baselines];
    memset(b, 0, sizeof *b);
    snprintf(b->id, sizeof b->id, "b%zu", d->n_baselines + 1);
    snprintf(b->reason, sizeof b->reason, "%s", reason);
    snprintf(b->path, sizeof b->path, "baselines/%s.json", b->id);
    b->idle_power_w = b->uncertainty_w = NAN;
    etok_meter_config mc = {.names = etok_cli_meters_names(&S->meters), .n_names = S->meters.n_names,
                            .cpu_idle_w = S->cpu_idle_w, .cpu_max_w = S->cpu_max_w};
    etok_meter_set *ms = etok_meters_open(&mc, &err);
    if (!ms) {
        fprintf(stderr, "etok sweep: idle baseline: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    etok_record rec;
    etok_record_init(&rec);
    snprintf(rec.kind, sizeof rec.kind, "run");
    snprintf(rec.command, sizeof rec.command, "etok sweep: idle baseline %s (%s), %g s", b->id, reason, S->idle_s);
    etok_cli_host_info(&rec);
    rec.exit_status = 0;
    int rc = 0;
    if (!S->quiet) fprintf(stderr, "etok sweep: idle baseline %s (%s): %g s\n", b->id, reason, S->idle_s);
    rec.t0_wall_s = etok_wall_s();
    if (etok_meters_start(ms, &rec, &err)) {
        fprintf(stderr, "etok sweep: idle baseline: %s\n", err.msg);
        etok_meters_close(ms);
        etok_record_free(&rec);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    rec.t0_wall_s = etok_wall_s() - (etok_mono_s() - etok_meters_t0_mono_s(ms));
    (void)etok_meters_mark(ms, NULL);
    rec.window_start_s = etok_meters_now(ms);
    int intr = etok_wait_or_signal(S->sig_fd, S->idle_s);
    (void)etok_meters_mark(ms, NULL);
    rec.window_end_s = etok_meters_now(ms);
    etok_err se = {0};
    if (etok_meters_stop(ms, &se)) fprintf(stderr, "etok sweep: idle baseline: stopping the meters: %s\n", se.msg);
    etok_meters_close(ms);
    b->t_wall_s = etok_wall_s();
    if (intr) {
        rec.partial = 1;
        snprintf(rec.stop_reason, sizeof rec.stop_reason, "interrupted");
        rc = 1;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", S->out_dir, b->path);
    if (etok_record_save(&rec, path, &err)) {
        fprintf(stderr, "etok sweep: %s\n", err.msg);
        etok_record_free(&rec);
        return ETOK_EXIT_OUTPUT;
    }
    etok_energy_summary es;
    memset(&es, 0, sizeof es);
    if (!intr && etok_energy_summarize(&rec, &es) == 0 && es.has_energy) {
        b->duration_s = es.duration_s;
        b->idle_power_w = es.mean_power_w;
        b->uncertainty_w = es.mean_power_uncertainty_w;
        snprintf(b->source, sizeof b->source, "%s", etok_source_name(es.source));
    }
    etok_energy_summary_free(&es);
    etok_record_free(&rec);
    if (rc) return rc; /* an interrupted baseline is kept on disk but not listed */
    d->n_baselines++;
    S->cur_baseline = d->n_baselines;
    S->last_baseline_mono = etok_mono_s();
    return 0;
}

/* ---------- --resume: the previous index ---------- */

/* Baselines and each run's baseline/drift from DIR/sweep.json; the plan must be the same. */
static int load_previous(sweep *S, const char *path) {
    etok_err err = {0};
    size_t len = 0;
    char *text = etok_read_file_bounded(path, "sweep index", 64u << 20, &len, &err);
    if (!text) {
        fprintf(stderr, "etok sweep: --resume: %s\n", err.msg);
        return ETOK_EXIT_INPUT;
    }
    json_error_t je;
    json_t *o = json_loadb(text, len, 0, &je);
    free(text);
    int rc = ETOK_EXIT_INPUT;
    json_t *ord = json_object_get(o, "order"), *opts = json_object_get(o, "bench_options");
    if (!json_is_object(o) || !json_is_array(ord) || !json_is_array(opts)) {
        fprintf(stderr, "etok sweep: --resume: %s: not a sweep index (%s)\n", path, o ? "fields missing" : je.text);
        goto out;
    }
    int same = json_array_size(ord) == S->d.n_runs && json_array_size(opts) == S->n_pass;
    for (size_t i = 0; same && i < S->d.n_runs; i++) {
        const char *s = json_string_value(json_array_get(ord, i));
        same = s && !strcmp(s, S->d.runs[S->d.order[i]].name);
    }
    for (size_t i = 0; same && i < S->n_pass; i++) {
        const char *s = json_string_value(json_array_get(opts, i));
        same = s && !strcmp(s, S->pass[i]);
    }
    if (!same) {
        fprintf(stderr,
                "etok sweep: --resume: %s was made by another plan (grid, repeat, seed or bench options differ); "
                "give the same options, or another -o\n",
                path);
        rc = ETOK_EXIT_USAGE;
        goto out;
    }
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(o, "baselines"), i, e) {
        etok_sweep_baseline *nb = realloc(S->d.baselines, (S->d.n_baselines + 1) * sizeof *nb);
        if (!nb) goto out;
        S->d.baselines = nb;
        etok_sweep_baseline *b = &nb[S->d.n_baselines++];
        memset(b, 0, sizeof *b);
        const char *id = json_string_value(json_object_get(e, "id"));
        const char *rs = json_string_value(json_object_get(e, "reason"));
        const char *src = json_string_value(json_object_get(e, "source"));
        snprintf(b->id, sizeof b->id, "%s", id ? id : "?");
        snprintf(b->reason, sizeof b->reason, "%s", rs ? rs : "?");
        snprintf(b->source, sizeof b->source, "%s", src ? src : "");
        snprintf(b->path, sizeof b->path, "baselines/%s.json", b->id);
        json_t *w = json_object_get(e, "idle_power_w"), *u = json_object_get(e, "uncertainty_w");
        json_t *du = json_object_get(e, "duration_s"), *tw = json_object_get(e, "t_wall_s");
        b->idle_power_w = json_is_number(w) ? json_number_value(w) : NAN;
        b->uncertainty_w = json_is_number(u) ? json_number_value(u) : NAN;
        b->duration_s = json_is_number(du) ? json_number_value(du) : NAN;
        b->t_wall_s = json_is_number(tw) ? json_number_value(tw) : NAN;
    }
    json_array_foreach(json_object_get(o, "runs"), i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *bl = json_string_value(json_object_get(e, "baseline"));
        for (size_t r = 0; name && r < S->d.n_runs; r++)
            if (!strcmp(S->d.runs[r].name, name)) {
                snprintf(S->d.runs[r].baseline, sizeof S->d.runs[r].baseline, "%s", bl ? bl : "");
                S->d.runs[r].drift = json_is_true(json_object_get(e, "drift"));
            }
    }
    rc = 0;
out:
    json_decref(o);
    return rc;
}

/* ---------- the driver ---------- */

static int interrupted_now(int fd) {
    struct pollfd pf = {.fd = fd, .events = POLLIN};
    if (fd < 0 || poll(&pf, 1, 0) <= 0) return 0;
    struct signalfd_siginfo si;
    return read(fd, &si, sizeof si) == (ssize_t)sizeof si;
}

/* The bench argv of one run (strings owned by a (malloc'd) block freed by the caller). */
static char **run_argv(const sweep *S, const etok_sweep_run *ru, int *argc_out, char **block) {
    const etok_sweep_point *p = &S->d.points[ru->point];
    size_t cap = 16 + S->n_pass + 2 * p->n_keys;
    /* room for every string built here: "--output=DIR/points/NAME", "--seed=N", "--idle=X" and
     * "--KEY" per grid key (keys are shorter than 32 bytes) */
    size_t bcap = strlen(S->out_dir) + strlen(ru->name) + 128 + 40 * (p->n_keys + 1);
    char **av = calloc(cap, sizeof *av);
    char *blk = malloc(bcap);
    if (!av || !blk) {
        free(av);
        free(blk);
        return NULL;
    }
    int n = 0;
    size_t o = 0;
    av[n++] = "bench";
    av[n++] = "-q";
    av[n++] = blk + o;
    o += (size_t)snprintf(blk + o, bcap - o, "--output=%s/points/%s", S->out_dir, ru->name) + 1;
    av[n++] = blk + o;
    o += (size_t)snprintf(blk + o, bcap - o, "--seed=%llu", S->d.seed) + 1;
    av[n++] = blk + o;
    o += (size_t)snprintf(blk + o, bcap - o, "--idle=%g", S->probe_s) + 1;
    for (size_t i = 0; i < S->n_pass; i++) av[n++] = S->pass[i];
    for (size_t k = 0; k < p->n_keys; k++) {
        av[n++] = blk + o;
        o += (size_t)snprintf(blk + o, bcap - o, "--%s", p->keys[k]) + 1;
        av[n++] = (char *)p->vals[k];
    }
    av[n] = NULL;
    *argc_out = n;
    *block = blk;
    return av;
}

static void fmt_dur(double s, char *b, size_t n) {
    if (!isfinite(s) || s < 0) snprintf(b, n, "?");
    else if (s < 90) snprintf(b, n, "%.0fs", s);
    else if (s < 5400) snprintf(b, n, "%.0fm%02.0fs", floor(s / 60), fmod(s, 60));
    else snprintf(b, n, "%.0fh%02.0fm", floor(s / 3600), floor(fmod(s, 3600) / 60));
}

static int drive(sweep *S) {
    etok_sweep_doc *d = &S->d;
    size_t todo = 0, done_now = 0;
    for (size_t i = 0; i < d->n_runs; i++) todo += strcmp(d->runs[i].status, "ok") && strcmp(d->runs[i].status, "failed");
    double t_runs = 0;
    int rc = 0;
    for (size_t oi = 0; oi < d->n_runs; oi++) {
        etok_sweep_run *ru = &d->runs[d->order[oi]];
        if (!strcmp(ru->status, "ok") || !strcmp(ru->status, "failed")) continue; /* complete */
        if (interrupted_now(S->sig_fd)) { rc = ETOK_EXIT_INTERRUPTED; break; }
        /* the baseline: at the start, then at least every --baseline-every minutes */
        if (S->idle_s > 0) {
            const char *why = !S->cur_baseline ? "start"
                              : etok_mono_s() - S->last_baseline_mono > S->every_min * 60 ? "age" : NULL;
            if (why) {
                int b = take_baseline(S, why);
                if (b == 1) { rc = ETOK_EXIT_INTERRUPTED; break; }
                if (b) { rc = b; break; }
            }
            snprintf(ru->baseline, sizeof ru->baseline, "%s", d->baselines[S->cur_baseline - 1].id);
        }
        int argc = 0;
        char *blk = NULL;
        char **av = run_argv(S, ru, &argc, &blk);
        if (!av) { rc = ETOK_EXIT_FAIL; break; }
        double t0 = etok_mono_s();
        int brc = cmd_bench(argc, av);
        free(av);
        free(blk);
        ru->wall_s = etok_mono_s() - t0;
        ru->exit_code = brc;
        t_runs += ru->wall_s;
        done_now++;
        etok_err err = {0};
        int fig = run_figures(S, ru, &err);
        if (brc == ETOK_EXIT_INTERRUPTED) snprintf(ru->status, sizeof ru->status, "interrupted");
        else if (fig == 1 && brc == ETOK_EXIT_OK) snprintf(ru->status, sizeof ru->status, "ok");
        else snprintf(ru->status, sizeof ru->status, "failed");
        /* drift: this run's own idle window against the baseline in force; the baseline is then
         * re-measured and this run is charged to the new one (it is nearer in time to the change) */
        if (S->idle_s > 0 && S->probe_s > 0 && fig >= 0 && brc != ETOK_EXIT_INTERRUPTED) {
            const etok_sweep_baseline *b = &d->baselines[S->cur_baseline - 1];
            if (etok_idle_drifted(b->idle_power_w, ru->probe_idle_w, S->drift_tol, S->drift_floor_w)) {
                ru->drift = 1;
                if (!S->quiet)
                    fprintf(stderr, "etok sweep: idle drift: %s's idle window %.3g W vs baseline %s %.3g W\n", ru->name,
                            ru->probe_idle_w, b->id, b->idle_power_w);
                int br = take_baseline(S, "drift");
                if (br == 0) snprintf(ru->baseline, sizeof ru->baseline, "%s", d->baselines[S->cur_baseline - 1].id);
                else if (br == 1) brc = ETOK_EXIT_INTERRUPTED;
                else rc = br;
            }
        }
        run_dynamic(S, ru);
        if (summarise(S)) { rc = ETOK_EXIT_FAIL; break; }
        int w = write_outputs(S);
        if (w) { rc = w; break; }
        if (!S->quiet) {
            char eta[32], jo[32], tp[32];
            fmt_dur(t_runs / (double)done_now * (double)(todo - done_now), eta, sizeof eta);
            etok_report_fmt(ru->v[ETOK_SW_J_OUT], jo, sizeof jo);
            etok_report_fmt(ru->v[ETOK_SW_TPOT_P90], tp, sizeof tp);
            fprintf(stderr, "etok sweep: [%zu/%zu] %s: %s in %.1f s, %s J/output-token, p90 TPOT %s s; ETA %s\n",
                    done_now, todo, ru->name, ru->status, ru->wall_s, jo, tp, eta);
        }
        if (brc == ETOK_EXIT_INTERRUPTED) { rc = ETOK_EXIT_INTERRUPTED; break; }
        if (brc == ETOK_EXIT_USAGE) {
            fprintf(stderr, "etok sweep: bench refused the options of %s (above); stopping\n", ru->name);
            rc = ETOK_EXIT_USAGE;
            break;
        }
        if (rc) break;
    }
    return rc;
}

/* ---------- the command ---------- */

static void sweep_free(sweep *S, strpool *pool) {
    free(S->d.points);
    free(S->d.runs);
    free(S->d.order);
    free(S->d.baselines);
    free(S->pass);
    json_decref(S->file_json);
    for (size_t i = 0; i < pool->n; i++) free(pool->s[i]);
    free(pool->s);
}

/* "--name=value" or "--name value": the option name (without dashes) and its value. */
static int split_opt(const char *opt, int argc, char **argv, int *i, char *name, size_t cap, const char **val,
                     int takes) {
    const char *a = opt + 2;
    const char *eq = strchr(a, '=');
    size_t l = eq ? (size_t)(eq - a) : strlen(a);
    if (l >= cap) l = cap - 1;
    memcpy(name, a, l);
    name[l] = 0;
    *val = NULL;
    if (!takes) return eq ? -1 : 0;
    if (eq) *val = eq + 1;
    else if (*i + 1 < argc) *val = argv[++*i];
    else return -1;
    return 0;
}

int cmd_sweep(int argc, char **argv) {
    sweep S;
    memset(&S, 0, sizeof S);
    strpool pool = {0};
    S.repeat = 1;
    S.seed = 1;
    S.idle_s = 10;
    S.probe_s = 2;
    S.drift_tol = 0.05;
    S.drift_floor_w = 0.5;
    S.every_min = 10;
    S.attain = 0.9;
    S.sig_fd = -1;
    int rc = ETOK_EXIT_USAGE;
    S.pass = calloc((size_t)argc + 1, sizeof *S.pass);
    if (!S.pass) return ETOK_EXIT_FAIL;
    { /* the command line as given (before --grid values are split in place) */
        size_t o = 0;
        for (int i = 0; i < argc && o + 2 < sizeof S.d.command; i++) {
            int w = snprintf(S.d.command + o, sizeof S.d.command - o, "%s%s", i ? " " : "etok ", argv[i]);
            if (w < 0) break;
            o += (size_t)w;
        }
    }
    static const char *const SWEEP_ARG[] = {"grid", "sweep-file", "repeat", "seed", "output", "idle", "idle-probe",
                                            "drift-tol", "drift-floor", "baseline-every", "slo-attainment", NULL};
    static const char *const SWEEP_FLAG[] = {"resume", "dry-run", "quiet", "help", NULL};
    for (int i = 1; i < argc; i++) {
        char *a = argv[i];
        char name[64];
        const char *val = NULL;
        if (!strcmp(a, "-h")) a = "--help";
        else if (!strcmp(a, "-q")) a = "--quiet";
        if (!strcmp(a, "-o") || !strcmp(a, "-m")) {
            if (i + 1 >= argc) {
                fprintf(stderr, "etok sweep: %s needs a value\n", a);
                goto out;
            }
            if (a[1] == 'o') S.out_dir = argv[++i];
            else {
                S.pass[S.n_pass++] = a;
                S.pass[S.n_pass++] = argv[++i];
            }
            continue;
        }
        if (strncmp(a, "--", 2) || !a[2]) {
            fprintf(stderr, "etok sweep: unexpected argument '%s' (etok sweep --help)\n", a);
            goto out;
        }
        const char *nm = a + 2;
        size_t l = strcspn(nm, "=");
        snprintf(name, sizeof name, "%.*s", (int)(l < 63 ? l : 63), nm);
        int sweep_arg = in_list(SWEEP_ARG, name), sweep_flag = in_list(SWEEP_FLAG, name);
        int bench_arg = in_list(BENCH_ARG_OPTS, name), bench_flag = in_list(BENCH_FLAG_OPTS, name);
        if (!sweep_arg && !sweep_flag && !bench_arg && !bench_flag) {
            fprintf(stderr, "etok sweep: unknown option '%s' (etok sweep --help, etok bench --help)\n", a);
            goto out;
        }
        if (split_opt(a, argc, argv, &i, name, sizeof name, &val, sweep_arg || bench_arg)) {
            fprintf(stderr, "etok sweep: option '%s' %s\n", a, sweep_arg || bench_arg ? "needs a value" : "takes no value");
            goto out;
        }
        if (bench_arg || bench_flag) {
            for (size_t k = 0; k < S.n_axes; k++)
                if (!strcmp(S.axes[k].key, name)) {
                    fprintf(stderr, "etok sweep: --%s is both a grid key and a fixed option\n", name);
                    goto out;
                }
            S.pass[S.n_pass++] = argv[i - (val && !strchr(a, '=') ? 1 : 0)];
            if (val && !strchr(a, '=')) S.pass[S.n_pass++] = argv[i];
            if (!strcmp(name, "meter") && etok_cli_meters_add("sweep", &S.meters, val)) goto out;
            if (!strcmp(name, "cpu-tdp") && etok_cli_cpu_tdp("sweep", val, &S.cpu_idle_w, &S.cpu_max_w)) goto out;
            continue;
        }
        double v = 0;
        if (!strcmp(name, "help")) {
            usage(stdout);
            rc = ETOK_EXIT_OK;
            goto out;
        } else if (!strcmp(name, "resume")) S.resume = 1;
        else if (!strcmp(name, "dry-run")) S.dry_run = 1;
        else if (!strcmp(name, "quiet")) S.quiet = 1;
        else if (!strcmp(name, "grid")) {
            if (add_grid(&S, (char *)val)) goto out;
        } else if (!strcmp(name, "sweep-file")) S.sweep_file = val;
        else if (!strcmp(name, "output")) S.out_dir = val;
        else if (!strcmp(name, "repeat")) {
            if (parse_d("--repeat", val, 1, 100, &v) || v != floor(v)) {
                if (v != floor(v)) fprintf(stderr, "etok sweep: --repeat takes an integer\n");
                goto out;
            }
            S.repeat = (int)v;
        } else if (!strcmp(name, "seed")) {
            if (parse_d("--seed", val, 0, 9007199254740992.0, &v) || v != floor(v)) {
                if (v != floor(v)) fprintf(stderr, "etok sweep: --seed takes an integer\n");
                goto out;
            }
            S.seed = (unsigned long long)v;
        } else if (!strcmp(name, "idle")) { if (parse_d("--idle", val, 0, 3600, &S.idle_s)) goto out; }
        else if (!strcmp(name, "idle-probe")) { if (parse_d("--idle-probe", val, 0, 3600, &S.probe_s)) goto out; }
        else if (!strcmp(name, "drift-tol")) { if (parse_d("--drift-tol", val, 0, 10, &S.drift_tol)) goto out; }
        else if (!strcmp(name, "drift-floor")) { if (parse_d("--drift-floor", val, 0, 1e5, &S.drift_floor_w)) goto out; }
        else if (!strcmp(name, "baseline-every")) { if (parse_d("--baseline-every", val, 0.01, 1e6, &S.every_min)) goto out; }
        else if (!strcmp(name, "slo-attainment")) { if (parse_d("--slo-attainment", val, 0, 1, &S.attain)) goto out; }
    }
    if (!S.out_dir) {
        fprintf(stderr, "etok sweep: give -o DIR (etok sweep --help)\n");
        goto out;
    }
    if (!S.n_axes && !S.sweep_file) {
        fprintf(stderr, "etok sweep: give --grid KEY=V1,V2,... or --sweep-file FILE (etok sweep --help)\n");
        goto out;
    }
    /* a grid key given as a fixed option too (in either order) */
    for (size_t k = 0; k < S.n_axes; k++)
        for (size_t i = 0; i < S.n_pass; i++) {
            const char *p = S.pass[i];
            size_t kl = strlen(S.axes[k].key);
            if ((!strncmp(p, "--", 2) && !strncmp(p + 2, S.axes[k].key, kl) && (p[2 + kl] == 0 || p[2 + kl] == '=')) ||
                (!strcmp(p, "-m") && !strcmp(S.axes[k].key, "model"))) {
                fprintf(stderr, "etok sweep: --%s is both a grid key and a fixed option\n", S.axes[k].key);
                goto out;
            }
        }
    if (S.sweep_file) {
        grid_axis cli[ETOK_SWEEP_MAX_KEYS];
        size_t ncli = S.n_axes;
        memcpy(cli, S.axes, sizeof cli);
        S.n_axes = 0;
        int fr = load_sweep_file(&S, &pool);
        if (fr) { rc = fr; goto out; }
        if (ncli) { /* --grid with a sweep file: its product is added after the file's points */
            memcpy(S.axes, cli, sizeof cli);
            S.n_axes = ncli;
        }
    }
    if (expand_grid(&S)) goto out;
    if (!S.d.n_points) {
        fprintf(stderr, "etok sweep: %s: no points\n", S.sweep_file ? S.sweep_file : "the grid");
        rc = S.sweep_file ? ETOK_EXIT_INPUT : ETOK_EXIT_USAGE;
        goto out;
    }

    /* the plan: every point x repeat, in a seeded shuffled order */
    etok_sweep_doc *d = &S.d;
    d->seed = S.seed;
    d->repeat = S.repeat;
    d->attainment_target = S.attain;
    d->drift_tol = S.drift_tol;
    d->drift_floor_w = S.drift_floor_w;
    d->baseline_every_s = S.every_min * 60;
    d->idle_s = S.idle_s;
    d->probe_s = S.probe_s;
    d->passthrough = S.pass;
    d->n_passthrough = S.n_pass;
    d->best = -1;
    d->ratio_best_to_first = NAN;
    d->n_runs = d->n_points * (size_t)S.repeat;
    d->runs = calloc(d->n_runs, sizeof *d->runs);
    d->order = calloc(d->n_runs, sizeof *d->order);
    if (!d->runs || !d->order) { rc = ETOK_EXIT_FAIL; goto out; }
    for (size_t p = 0; p < d->n_points; p++)
        for (int r = 0; r < S.repeat; r++) {
            etok_sweep_run *ru = &d->runs[p * (size_t)S.repeat + (size_t)r];
            ru->point = p;
            ru->repeat = r + 1;
            ru->exit_code = -1;
            if (S.repeat > 1) snprintf(ru->name, sizeof ru->name, "%.180s_r%d", d->points[p].name, r + 1);
            else snprintf(ru->name, sizeof ru->name, "%s", d->points[p].name);
            snprintf(ru->status, sizeof ru->status, "pending");
            for (int k = 0; k < ETOK_SW_N; k++) ru->v[k] = NAN;
            ru->probe_idle_w = ru->j_out_unc = NAN;
            ru->q_star = ru->ttft_slo_s = ru->tpot_slo_s = NAN;
        }
    etok_shuffle_order(d->order, d->n_runs, S.seed);

    if (S.dry_run) {
        for (size_t i = 0; i < d->n_runs; i++) {
            etok_sweep_run *ru = &d->runs[d->order[i]];
            int ac = 0;
            char *blk = NULL;
            char **av = run_argv(&S, ru, &ac, &blk);
            if (!av) { rc = ETOK_EXIT_FAIL; goto out; }
            printf("%zu %s: etok", i + 1, ru->name);
            for (int k = 0; k < ac; k++) printf(" %s", av[k]);
            printf("\n");
            free(av);
            free(blk);
        }
        rc = ETOK_EXIT_OK;
        goto out;
    }

    /* the output directory; an existing index is continued only with --resume */
    etok_err err = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/sweep.json", S.out_dir);
    int have_index = access(path, F_OK) == 0;
    if (have_index && !S.resume) {
        fprintf(stderr, "etok sweep: %s already holds a sweep (--resume continues it, or give another -o)\n", S.out_dir);
        goto out;
    }
    char sub[4096];
    snprintf(sub, sizeof sub, "%s/baselines", S.out_dir);
    if (etok_mkdirs(S.out_dir, &err) || etok_check_output_dir(S.out_dir, &err) || etok_mkdirs(sub, &err)) {
        fprintf(stderr, "etok sweep: output directory '%s' is not writable: %s\n", S.out_dir, err.msg);
        rc = ETOK_EXIT_OUTPUT;
        goto out;
    }
    if (S.resume) {
        if (have_index && (rc = load_previous(&S, path)) != 0) goto out;
        size_t kept = 0;
        for (size_t i = 0; i < d->n_runs; i++) {
            etok_sweep_run *ru = &d->runs[i];
            etok_err e2 = {0};
            int fig = run_figures(&S, ru, &e2);
            if (fig == 1) {
                snprintf(ru->status, sizeof ru->status, "ok");
                ru->exit_code = 0;
                run_dynamic(&S, ru);
                kept++;
            } else {
                ru->baseline[0] = 0;
                ru->drift = 0;
            }
        }
        if (!S.quiet) fprintf(stderr, "etok sweep: --resume: %zu of %zu runs complete, kept\n", kept, d->n_runs);
    }
    if (summarise(&S) || (rc = write_outputs(&S)) != 0) {
        if (!rc) rc = ETOK_EXIT_FAIL;
        goto out;
    }

    /* SIGINT/SIGTERM on a signalfd; each run of bench reads its own (same mask) */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    S.sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);

    rc = drive(&S);
    d->interrupted = rc == ETOK_EXIT_INTERRUPTED;
    d->complete = 1;
    for (size_t i = 0; i < d->n_runs; i++)
        if (strcmp(d->runs[i].status, "ok") && strcmp(d->runs[i].status, "failed")) d->complete = 0;
    if (summarise(&S) == 0) {
        int w = write_outputs(&S);
        if (w && !rc) rc = w;
    }
    size_t n_failed = 0;
    for (size_t i = 0; i < d->n_runs; i++)
        if (!strcmp(d->runs[i].status, "failed")) {
            n_failed++;
            fprintf(stderr, "etok sweep: %s failed (bench exit %d; %s/points/%s)\n", d->runs[i].name,
                    d->runs[i].exit_code, S.out_dir, d->runs[i].name);
        }
    if (!S.quiet) {
        if (d->best >= 0) {
            char r[32], j[32];
            etok_report_fmt(d->ratio_best_to_first, r, sizeof r);
            etok_report_fmt(d->points[d->best].mean[ETOK_SW_J_OUT], j, sizeof j);
            printf("best point meeting q* and s*: %s (%s J/output-token, %s x the first point %s)\nfrontier:",
                   d->points[d->best].name, j, r, d->points[0].name);
            for (size_t i = 0; i < d->n_points; i++)
                if (d->points[i].on_front) printf(" %s", d->points[i].name);
            printf("\n");
        } else
            printf("no point meets q* and s*\n");
        printf("wrote %s/sweep.json, %s/sweep.csv, %s/sweep.html%s\n", S.out_dir, S.out_dir, S.out_dir,
               d->interrupted ? " (interrupted: --resume continues)" : "");
    }
    if (!rc && n_failed) rc = ETOK_EXIT_OK;
out:
    if (S.sig_fd >= 0) close(S.sig_fd);
    sweep_free(&S, &pool);
    return rc;
}
