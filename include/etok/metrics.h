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
    int bootstrap_iters;  /* 0 = 1000 */
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

/* ---- Named stages of the reporting set (each pure; etok_metrics_compute chains them, and
 * etok compare / etok sweep reuse them per request set and per arm) ---- */

/* Stage "request view": one in-window request (warm-up excluded) as the figures see it. */
typedef struct {
    const etok_request *q;    /* the record's request */
    double ttft_s, tpot_s, e2e_s; /* NAN when not defined (failed; one output token: no TPOT) */
    int ok, checked, pass;    /* completed; answer checked; and passed */
    int meets_q, meets_s;     /* the header's q* and s* definitions */
    int tokens_in, tokens_out;
} etok_request_view;

/* Fills out[0..n-1] (out holds r->n_requests entries) with the window's requests, in record
 * order; returns n. */
size_t etok_metrics_request_view(const etok_record *r, etok_request_view *out);

/* Stage "step energy": the energy of in-window step i given the run's energy summary: the
 * meter's reading over the step when it resolves it (ETOK_ENERGY_MIN_UPDATES updates of the
 * slowest summed trace, same boundary; *metered = 1), else step duration x mean power
 * (*metered = 0). NAN when the step is outside the window or the run has no energy. */
double etok_metrics_step_energy(const etok_record *r, const etok_energy_summary *es, size_t i, int *metered);

#endif
