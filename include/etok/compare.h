/* compare.h — `etok compare`: a candidate against a baseline, each an arm of one or more run
 * records (repeats pooled), as deltas with bootstrap 95% CIs, a (q*, s*) gate and a verdict.
 * Pure (analyse/compare.c): records in, figures out; loading is cli/cmd_compare.c's, the
 * formats are render/compare_render.c's.
 *
 * Units. Every figure is computed from the arm's in-window requests (metrics.c's request
 * view, pooled over the arm's records) with each request's attributed energy (attribute.h;
 * a record without it gets its window energy split by token share, and says so). A record
 * without requests (etok run) is one unit with its window energy and tokens.
 *
 * Pairing. When both arms ran exactly the same eval items (request ids "ITEM#k", the item
 * being the part before '#'), units are items — each item's requests summed — and every
 * resample draws the same items in both arms, so item difficulty cancels. Otherwise the arms
 * are resampled independently (unpaired). Latency percentiles are always unpaired.
 *
 * Figures (all ratios of sums over units, see stats.h, except the percentiles):
 *   joules_per_output_token  energy / output tokens
 *   joules_per_token         energy / (input + output tokens)
 *   joules_per_correct_answer energy / passed answers
 *   quality_conditioned_joules_per_token  energy / output tokens of requests meeting q* and s*
 *   accuracy                 passed / checked
 *   slo_attainment           requests meeting s* / requests
 *   goodput_tps              output tokens of requests meeting q* and s* / seconds
 *   mean_power_w             energy / seconds
 *   token_rate_tps           output tokens / seconds
 *   ttft_s, tpot_s           p50 and p90
 * where "seconds" is a run's window: the per-second figures are ratios of sums over runs
 * (records), their CI resamples each arm's runs (unpaired), and with one run in an arm they
 * have no CI (NAN; the note says so): time is measured per run, and resampling requests or
 * items only varied token counts (a zero-width interval for the same outputs in both arms).
 *
 * The CI covers sampling between requests and, when an arm pools repeats, between runs: each
 * resample draws the arm's records, then requests (paired: one item draw for every drawn record
 * of both arms, items being crossed with runs) within them, and no bound is narrower than the
 * Student-t interval over the records (etok_runs_t_delta; three runs bootstrapped show only
 * their own spread). An arm of one record without per-request energy (token-share split, or no
 * requests) has no CI for the energy figures (NAN; the note says why, the verdict claims no
 * change): its requests share one window energy, so resampling them varies only the token mix
 * (found on an H200 power-limit sweep: CI [+0.5%, +0.5%]). It does not cover the meter's
 * systematic error, stated separately (systematic_*): the same meter on the same machine
 * cancels much of it in a ratio; different meters or boundaries do not. docs/COMPARE.md.
 *
 * Gate at (q*, s*) (q* and s* from the baseline's records): an arm fails q* when its accuracy
 * CI lies entirely below q* (upper bound < q*), and fails s* when s* is set and its SLO
 * attainment CI lies entirely below the attainment target (opts, default 0.9). A candidate is
 * comparable when both arms pass; only then does it get an energy verdict.
 *
 * Comparability checks (candidate's records and the baseline's): eval set (content hash,
 * else path and item count) and energy boundary are fatal ("meaningless"); meter source,
 * meters, host, CPU model, hardware profile, q*, s*, PUE, record kind are warnings. */
#ifndef ETOK_COMPARE_H
#define ETOK_COMPARE_H

#include <stddef.h>
#include <stdint.h>

#include "etok/record.h"
#include "etok/stats.h"
#include "etok/util.h"

typedef struct {
    const char *name;                   /* "A", "B", or the --arm NAME */
    const etok_record *const *records;  /* borrowed */
    const char *const *paths;           /* where each came from (messages); may be NULL */
    size_t n_records;
} etok_compare_arm;

typedef struct {
    int iters;                 /* bootstrap resamples (0 = 2000) */
    uint64_t seed;             /* 0 = 1 */
    double slo_target;         /* SLO attainment an arm must be able to reach (0 = 0.9) */
} etok_compare_opts;

#define ETOK_COMPARE_MAX_DELTAS 16
#define ETOK_COMPARE_MAX_MISMATCH 24

typedef struct {
    char name[48];       /* METRICS.md name */
    char stat[8];        /* "" or "p50"/"p90" */
    char unit[16];
    int lower_is_better; /* 1 energy and latency, 0 accuracy/goodput/attainment, -1 neither (power) */
    int valid;           /* both arms have the figure */
    int paired;          /* this figure's CI came from the paired bootstrap */
    char note[160];
    etok_delta_ci d;
} etok_compare_delta;

typedef struct {
    char what[24];       /* "eval_set", "boundary", "meter_source", "host", ... */
    int fatal;           /* makes the comparison meaningless */
    char message[320];
} etok_compare_mismatch;

/* The TPF's predicted change beside the measured one (lever_predict.h fills it; etok_compare
 * leaves it zero: present = 0). */
typedef struct {
    int present;            /* a prediction was attempted (both arms had runs to map) */
    int valid;              /* 1: mapped and predicted; 0: why says why not */
    char lever[160];        /* "weights=fp32 batch=8", in `etok tpf` terms */
    char why[256];          /* "no prediction: ..." reason, or a caveat */
    char hardware[96];      /* "probe roofs (uncalibrated)" or the profile's name */
    int power_curve;        /* 1: J from the calibrated power curve; 0: power held at the baseline's */
    double rate_ratio;      /* predicted token rate after / before */
    double joules_ratio;    /* predicted J/output-token after / before */
    double decode_ratio;    /* predicted decode token rate after / before */
    /* measured (from the compare deltas): relative change and 95% CI, NAN when absent */
    double meas_rate_rel, meas_rate_lo, meas_rate_hi;
    double meas_joules_rel, meas_joules_lo, meas_joules_hi;
    /* predicted / measured, as ratios of (1 + change) */
    double rate_pred_over_meas, joules_pred_over_meas;
} etok_lever_prediction;

typedef struct {
    char name[64];
    int paired;                  /* units are eval items common to both arms */
    size_t n_units_base, n_units_cand, n_requests_base, n_requests_cand;
    size_t n_deltas;
    etok_compare_delta deltas[ETOK_COMPARE_MAX_DELTAS];
    size_t n_mismatch;
    etok_compare_mismatch mismatch[ETOK_COMPARE_MAX_MISMATCH];
    int fatal;                   /* some mismatch is fatal */
    int gate_q_base, gate_q_cand;   /* 1 passes, 0 fails, -1 not applicable (no q* or no checks) */
    int gate_s_base, gate_s_cand;
    int comparable;              /* gates passed: an energy verdict was given */
    double systematic_base, systematic_cand; /* the meter's relative 1-sigma (NAN unknown) */
    int systematic_cancels;      /* same meter source, meters, boundary and host */
    char energy_note[256];       /* how per-request energy was obtained */
    char verdict[512];           /* the one line */
    etok_lever_prediction pred;  /* filled by the caller (cmd_compare, sweep) when it can predict */
} etok_compare_cand;

typedef struct {
    char base_name[64];
    size_t n_base_records;
    double quality_target, ttft_slo_s, tpot_slo_s, slo_target; /* the gate's (q*, s*) */
    int iters;
    uint64_t seed;
    size_t n_cand;
    etok_compare_cand *cand;     /* owned */
    int any_fatal;
    size_t n_base_mismatch;      /* between the baseline's own repeats (in cand[] lists too) */
} etok_compare_result;

/* Compares every candidate arm with the baseline. Returns 0 (mismatches are reported in the
 * result, never an error here), or -1 with err set: an arm without records, a record whose
 * windows are invalid, out of memory. */
int etok_compare(const etok_compare_arm *base, const etok_compare_arm *cands, size_t n_cand,
                 const etok_compare_opts *opts, etok_compare_result *out, etok_err *err);
void etok_compare_free(etok_compare_result *r);

/* Renderers (render/compare_render.c); malloc'd text or NULL on out of memory. format is
 * "text", "md", "json", "csv" or "html". */
char *etok_compare_render(const etok_compare_result *r, const char *format);

/* One line (render/compare_render.c): "TPF prediction (...): token rate X predicted vs Y [lo, hi]
 * measured (predicted/measured R); J/output-token ...", or "TPF prediction: no prediction: WHY". */
void etok_lever_prediction_line(const etok_lever_prediction *p, char *buf, size_t n);

/* For the sweep driver (scenario/sweep_predict.c), which cannot see the TPF's types: the prediction
 * for the run record in cand_dir against the one in base_dir (each a directory holding
 * run.json), with the measured relative changes meas_rate[3] and meas_joules[3] (value, CI low,
 * high; NAN unknown). Fills *out: a --gpu-power-limit difference (engine or --endpoint runs; P0
 * from base_dir's run), else the engine levers (present = 0 when either is not a bench run of
 * the engine). */
void etok_sweep_lever_prediction(const char *base_dir, const char *cand_dir, const double meas_rate[3],
                                 const double meas_joules[3], etok_lever_prediction *out);

#endif
