/* metrics.h — the METRICS.md §3 reporting set of one run, as a pure function of the record.
 *
 * etok_metrics_compute(record) -> every §3 figure, each with its unit, its source and its
 * uncertainty; plus the series the HTML report plots (power and token rate over time, phase
 * intervals, the energy breakdown, latency samples, this run's ceilings). No I/O, no clock:
 * tests feed hand-built records. Energy comes from analyse/energy.c (energy.h); nothing here
 * re-integrates a meter.
 *
 * Definitions beyond METRICS.md (also in docs/REPORT.md):
 *  - busy time: the summed duration of the engine steps inside the window (steps never
 *    overlap); without steps, the union of the requests' [send, done] intervals.
 *  - token_rate_tps = tokens_out / busy time; utilization_adjusted_token_rate_tps =
 *    tokens_out / window duration; trace-derived deployment_utilization = busy / window.
 *  - phase split: `serial_phases` when no two requests overlap in time (a step that consumes
 *    prompt tokens is prefill time, including the first output token it yields; the rest is
 *    decode time; energy split by time), else `regression`: least squares without intercept
 *    of step energy on the step's prefill and decode token counts, scaled so the phases sum
 *    to the window energy. Step energy is the energy of the step's window when the meter
 *    resolves it, else step duration x mean power (the note says which).
 *  - MFU, MBU over the window: sum of step FLOPs (bytes) / window duration / ceiling.
 *  - this run's ceilings (token/s of output): compute = F_peak * tokens_out / sum FLOPs,
 *    memory_bandwidth = B_mem * tokens_out / sum bytes, device_power_cap = P_limit / e_tok.
 *    utilization = token_rate over the window / the smallest ceiling.
 *  - a request meets q* when its answer check passed; it meets s* when TTFT <= ttft_slo and
 *    TPOT <= tpot_slo (a request with one output token has no TPOT and meets that part).
 *    Failed requests meet neither. Quality-conditioned figures are reported only when the
 *    run's accuracy reaches q* (the gate); otherwise invalid with the reason. */
#ifndef ETOK_METRICS_H
#define ETOK_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "etok/energy.h"
#include "etok/record.h"

typedef struct {
    char name[48];        /* METRICS.md field name: "joules_per_output_token", "ttft_s", ... */
    char stat[8];         /* "" for a scalar; "p50", "p90", "p99", "mean" for distributions */
    char unit[16];        /* "J/token", "s", "1", "W", "token/s", "currency/Mtok", ... */
    char source[80];      /* energy figures: counter/power/external/estimate; else "clock",
                             "eval", "engine+probe", "config", "trace", "engine" */
    int valid;            /* value is meaningful; else note says why */
    double value;
    double uncertainty;   /* absolute 1-sigma; NAN when not stated */
    double ci_lo, ci_hi;  /* bootstrap 95% CI over requests; NAN when none */
    char note[192];
} etok_metric;

#define ETOK_METRICS_MAX 96

typedef struct {
    double t_s, power_w, token_rate_tps;
} etok_series_point;

typedef struct {
    double t_start_s, t_end_s;
} etok_interval;

typedef struct {
    size_t n;
    etok_metric m[ETOK_METRICS_MAX];

    char phase_split_method[16];   /* "serial_phases", "regression", "none" */
    char binding_constraint[24];   /* measured: "compute", "memory_bandwidth", "device_power_cap", "unknown" */
    char tpf_binding_ceiling[24];  /* the smallest of this run's ceilings */
    char energy_source[16];        /* of the window energy */
    char energy_boundary[16];
    int quality_gate_met;          /* accuracy >= q* (1 when no q* was given) */
    int has_energy;
    char energy_warning[256];      /* short window / partial coverage / meter faults; "" if none */
    char background_warning[768];  /* background CPU load (analyse/bgload.c); "" if none */

    /* Plot series (owned; free with etok_metrics_free). */
    size_t n_series;     etok_series_point *series;   /* bins over the window */
    double series_bin_s;
    size_t n_prefill;    etok_interval *prefill;      /* merged prefill-step intervals */
    size_t n_ttft;       double *ttft_sorted_s;
    size_t n_tpot;       double *tpot_sorted_s;
    double breakdown_idle_j, breakdown_prefill_j, breakdown_decode_j; /* NAN when unknown */
} etok_metrics;

typedef struct {
    uint64_t seed;        /* bootstrap RNG seed (0 = 1) */
    int bootstrap_iters;  /* 0 = 1000; < 0: no bootstrap CIs (values only, e.g. etok sweep) */
    double series_bin_s;  /* 0 = window / 60, at least 0.1 s */
    int process_boundary; /* --boundary process: add the attribution-model figures
                             (process_joules_per_output_token, process_energy; bgload.h) */
} etok_metrics_opts;

/* Compute everything. Returns 0, or -1 with err set (record windows invalid, out of memory).
 * opts may be NULL. */
int etok_metrics_compute(const etok_record *r, const etok_metrics_opts *opts, etok_metrics *out, etok_err *err);
void etok_metrics_free(etok_metrics *m);

/* Look one figure up by name and stat ("" for scalars); NULL when absent. */
const etok_metric *etok_metrics_get(const etok_metrics *m, const char *name, const char *stat);

/* ---- Named stages of the reporting set ----
 * Each stage is a pure function of the record (and of the energy summary and the earlier
 * stages' results); etok_metrics_compute chains them in this order and appends their figures,
 * and etok compare / etok sweep call them per request set and per arm instead of deriving a
 * figure their own way (docs/ARCHITECTURE.md, "Reporting-set stages"):
 *   1. request view      which requests and engine steps are in the window, counts, busy time
 *   2. energy totals     window duration, energy, mean and idle power, dynamic energy
 *   3. per-token energies J/output-token, J/token, J/input-token and J/decode-token (phase split),
 *                        J/request, J/correct-answer
 *   4. latency           TTFT, TPOT, ITL, E2E samples and their p50/p90/p99/mean
 *   5. SLO and goodput   accuracy and the q* gate, quality-conditioned J/token, SLO attainment,
 *                        goodput
 *   6. utilization and ceilings  busy and window token rates, deployment utilization, PUE,
 *                        MFU/MBU, power ratio, binding constraint, this run's ceilings
 *   (7. cost and carbon: energy cost and CO2e per Mtok and per request, from stage 3.)
 * A stage's figures are etok_metric values (name, unit, source, valid, value, uncertainty,
 * note), the same entries etok_metrics_compute reports. */

/* Stage 1, "request view": one in-window request (warm-up excluded) as the figures see it. */
typedef struct {
    const etok_request *q;    /* the record's request */
    double ttft_s, tpot_s, e2e_s; /* NAN when not defined (failed; one output token: no TPOT) */
    int ok, checked, pass;    /* completed; answer checked; and passed */
    int meets_q, meets_s;     /* the header's q* and s* definitions */
    int tokens_in, tokens_out;
    int good_tokens;          /* tokens_out when the request meets q* and s*, else 0 (goodput) */
} etok_request_view;

/* Fills out[0..n-1] (out holds r->n_requests entries) with the window's requests, in record
 * order; returns n. */
size_t etok_metrics_request_view(const etok_record *r, etok_request_view *out);

/* Stage 1, counts over the request view and the window's engine steps. */
typedef struct {
    size_t n_requests, n_ok, n_checked, n_pass, n_meets_s;
    size_t n_good;            /* requests meeting q* and s* */
    long long good_tokens;    /* their output tokens */
    int tokens_known;         /* the record's totals, or at least one request */
    long long tokens_in, tokens_out; /* the record's totals when known, else summed over the view */
    long long usage_tokens, usage_chunks; /* --endpoint: the server's usage vs its content chunks */
    size_t usage_exceed;      /* requests whose usage exceeded their chunks */
    const char *first_error;  /* of the first failed request in the view; NULL when none */
    size_t n_steps;           /* engine steps inside the window */
    double sum_flops, sum_bytes;
    double busy_s;            /* the steps' summed duration, else the union of [send, done] */
    int serial;               /* no two requests overlap in time (the phase-split method) */
    struct {
        etok_metric tokens_in, tokens_out, requests, requests_ok, requests_failed;
    } fig;
} etok_request_set;

void etok_metrics_request_set(const etok_record *r, const etok_request_view *rv, size_t n, etok_request_set *out);

/* Stage 2, "energy totals" of the window (energy.c's summary as figures). */
typedef struct {
    int has_energy;
    char source[16], boundary[16]; /* "none" without energy */
    char warning[256];             /* short window, partial coverage, meter faults; "" if none */
    struct {
        etok_metric duration_s, energy_j, mean_power_w, idle_power_w, dynamic_energy_j;
    } fig;
} etok_energy_totals;

void etok_metrics_energy_totals(const etok_energy_summary *es, etok_energy_totals *out);

/* Stage 3, "per-token energies": the window energy per unit of work, and the prefill/decode
 * split (serial_phases or regression, see the header comment). */
typedef struct {
    char phase_split_method[16];   /* "serial_phases", "regression", "none" */
    double prefill_j, decode_j;    /* the window energy split between the phases; NAN when none */
    struct {
        etok_metric per_output_token, per_token, per_input_token, per_decode_token, per_request, per_correct_answer;
    } fig;
} etok_token_energies;

/* Returns 0, or -1 with err set (out of memory). */
int etok_metrics_token_energies(const etok_record *r, const etok_energy_summary *es, const etok_request_set *s,
                                etok_token_energies *out, etok_err *err);

/* Dynamic J/output-token against an idle power measured elsewhere (etok sweep's baseline):
 * (E - P_idle T) / N written with J/output-token = E / N and mean power = E / T as
 * j_out (1 - P_idle / P_mean). NAN when an input is unknown or the mean power is not > 0. */
double etok_metrics_dynamic_joules_per_output_token(double j_out, double mean_power_w, double idle_power_w);

/* Stage 4, "latency": the samples of the request view (owned; free with
 * etok_metrics_latency_free) and their distribution figures. */
typedef struct {
    size_t n_requests;
    size_t n_ttft, n_tpot, n_itl, n_e2e;
    double *ttft_s, *tpot_s, *itl_s, *e2e_s; /* in request order (itl: every token gap) */
} etok_latency;

int etok_metrics_latency(const etok_request_view *rv, size_t n, etok_latency *out, etok_err *err);
void etok_metrics_latency_free(etok_latency *l);

#define ETOK_LATENCY_FIGURES 16
/* ttft_s, tpot_s, itl_s, e2e_s, each p50, p90, p99, mean, in that order; with bootstrap 95%
 * CIs (ci_iters resamples, seed) when ci_iters > 0. */
void etok_metrics_latency_figures(const etok_latency *l, int ci_iters, uint64_t seed,
                                  etok_metric out[ETOK_LATENCY_FIGURES]);

/* Stage 5, "SLO and goodput": quality, the q* gate, s* attainment and goodput. */
typedef struct {
    double accuracy;          /* NAN when no answer was checked */
    int quality_gate_met;     /* accuracy >= q* (1 when no q* was given) */
    struct {
        etok_metric accuracy, quality_target, quality_conditioned_joules_per_token, ttft_slo_s, tpot_slo_s,
            slo_attainment, goodput_rps, goodput_tps;
    } fig;
} etok_slo_goodput;

/* The accuracy's bootstrap CI uses ci_iters resamples (0: none) and seed + 11. Returns 0, or
 * -1 with err set (out of memory). */
int etok_metrics_slo_goodput(const etok_record *r, const etok_energy_summary *es, const etok_request_view *rv,
                             size_t n, const etok_request_set *s, int ci_iters, uint64_t seed, etok_slo_goodput *out,
                             etok_err *err);

/* Stage 6, "utilization and ceilings". */
typedef struct {
    double rate_busy_tps, rate_window_tps; /* output tokens per busy / window second; NAN unknown */
    char binding_constraint[24];   /* measured: the largest of MFU, MBU, power ratio */
    char tpf_binding_ceiling[24];  /* the smallest of this run's ceilings */
    struct {
        etok_metric busy_s, token_rate_tps, utilization_adjusted_token_rate_tps, deployment_utilization,
            utilization_adjusted_joules_per_token, pue, pue_adjusted_power_w, achieved_flops, achieved_bytes_per_s,
            peak_flops, mem_bw_bps, mfu, mbu, power_limit_ratio, ceiling_compute_tps, ceiling_memory_bandwidth_tps,
            ceiling_device_power_cap_tps, utilization;
    } fig;
} etok_utilization;

void etok_metrics_utilization(const etok_record *r, const etok_energy_summary *es, const etok_request_set *s,
                              const etok_token_energies *te, etok_utilization *out);

/* Stage 7, "cost and carbon": energy cost per Mtok (--price-per-kwh) and operational CO2e
 * per Mtok and per request (docs/CARBON.md), from stage 3's J/output-token and J/request. */
typedef struct {
    struct {
        etok_metric energy_cost_per_mtok, co2e_g_per_mtok, co2e_g_per_request;
    } fig;
} etok_cost_carbon;

void etok_metrics_cost_carbon(const etok_record *r, const etok_energy_summary *es, const etok_token_energies *te,
                              etok_cost_carbon *out);

/* The energy of in-window step i given the run's energy summary (used by stage 3): the
 * meter's reading over the step when it resolves it (ETOK_ENERGY_MIN_UPDATES updates of the
 * slowest summed trace, same boundary; *metered = 1), else step duration x mean power
 * (*metered = 0). NAN when the step is outside the window or the run has no energy. */
double etok_metrics_step_energy(const etok_record *r, const etok_energy_summary *es, size_t i, int *metered);

#endif
