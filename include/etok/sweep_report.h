/* sweep_report.h — what `etok sweep` found, and its three renderings (render/sweep_report.c):
 * DIR/sweep.json (the index: plan, baselines, every run, per-point summary), DIR/sweep.csv (one
 * row per point) and DIR/sweep.html (self-contained: inline SVG and CSS, no script). The
 * renderers format; the figures are filled by the driver (cli/cmd_sweep.c) from each run's
 * record with etok_metrics_compute and summarised with analyse/pareto.c. docs/SWEEP.md. */
#ifndef ETOK_SWEEP_REPORT_H
#define ETOK_SWEEP_REPORT_H

#include <stddef.h>

#include "etok/compare.h" /* etok_lever_prediction */

#define ETOK_SWEEP_MAX_KEYS 8

/* The figures a sweep keeps per run and summarises per point (NAN = unknown). */
enum {
    ETOK_SW_J_OUT,      /* joules_per_output_token */
    ETOK_SW_TPOT_P90,   /* tpot_s p90 */
    ETOK_SW_TTFT_P90,   /* ttft_s p90 */
    ETOK_SW_TPUT,       /* output tokens / window s (utilization_adjusted_token_rate_tps) */
    ETOK_SW_ACC,        /* accuracy */
    ETOK_SW_J_CORRECT,  /* joules_per_correct_answer */
    ETOK_SW_SLO,        /* slo_attainment */
    ETOK_SW_POWER,      /* mean_power_w */
    ETOK_SW_J_DYN,      /* (energy - sweep idle power x duration) / output tokens */
    ETOK_SW_N
};
extern const char *const ETOK_SWEEP_FIELD[ETOK_SW_N]; /* JSON/CSV names */

typedef struct {
    char id[16];          /* "b1", "b2", ... */
    char reason[16];      /* "start", "age", "drift" */
    char path[64];        /* relative to DIR */
    double t_wall_s;      /* when it was taken */
    double duration_s, idle_power_w, uncertainty_w; /* NAN power = no energy meter */
    char source[16];      /* meter source of the reading */
} etok_sweep_baseline;

typedef struct {
    char name[200];       /* point name + "_rK" with --repeat > 1 */
    size_t point;         /* index into points */
    int repeat;           /* 1-based */
    char status[16];      /* "pending", "ok", "failed", "interrupted" */
    int exit_code;        /* of the bench run; -1 = not run */
    char baseline[16];    /* baseline id in force ("" = none) */
    double probe_idle_w;  /* the run's own idle window (--idle-probe) */
    int drift;            /* its probe had drifted from the baseline: re-measured after it */
    double wall_s;        /* how long the run took */
    double v[ETOK_SW_N];
    double j_out_unc;     /* meter 1-sigma of J/output-token */
    double q_star, ttft_slo_s, tpot_slo_s; /* from its record */
    char energy_source[16];
} etok_sweep_run;

typedef struct {
    char name[200];
    char keys[ETOK_SWEEP_MAX_KEYS][32], vals[ETOK_SWEEP_MAX_KEYS][256];
    size_t n_keys;
    int n_runs, n_ok;
    double mean[ETOK_SW_N], lo[ETOK_SW_N], hi[ETOK_SW_N]; /* over ok repeats; lo/hi NAN < 2 */
    double q_star, ttft_slo_s, tpot_slo_s;                 /* from its records */
    int meets_q, meets_s, on_front, best;
    /* The TPF's predicted change against the first point beside the measured one (points after
     * the first, bench runs of the built-in engine; lever_predict.h); present = 0 otherwise. */
    etok_lever_prediction pred;
} etok_sweep_point;

typedef struct {
    char command[2048];
    unsigned long long seed;
    int repeat;
    double attainment_target, drift_tol, drift_floor_w, baseline_every_s, idle_s, probe_s;
    char **passthrough;   /* bench options given to every run */
    size_t n_passthrough;
    size_t n_points, n_runs, n_baselines;
    etok_sweep_point *points;
    etok_sweep_run *runs;         /* in plan (grid) order */
    size_t *order;                /* run order: indices into runs */
    etok_sweep_baseline *baselines;
    int complete, interrupted;
    long best;                    /* best point meeting q* and s* (smallest J/output-token); -1 */
    double ratio_best_to_first;   /* its J/output-token / the first point's; NAN when unknown */
} etok_sweep_doc;

/* Renderings; malloc'd text or NULL on out of memory. */
char *etok_sweep_json(const etok_sweep_doc *d);
char *etok_sweep_csv(const etok_sweep_doc *d);
char *etok_sweep_html(const etok_sweep_doc *d);

#endif
