/* energy.h — energy attribution over a run record: pure functions, no I/O, no clock.
 *
 * Everything METRICS.md §2 defines for one run is computed here and nowhere else:
 * per-trace energy in a window (counters: unwrapped raw deltas; power/external: trapezoidal
 * integration), per-boundary totals over `summable` traces only (boundaries are never mixed),
 * idle power, dynamic energy, uncertainty, J/token and PUE-adjusted power. docs/RECORD.md
 * ("Analysis") states every rule, including the uncertainty model.
 *
 * Later metrics (the bench reporting set) build on etok_energy_window() for sub-windows
 * (phases, requests) and on etok_energy_summarize() for the run as a whole. */
#ifndef ETOK_ENERGY_H
#define ETOK_ENERGY_H

#include <stddef.h>

#include "etok/record.h"

/* A window shorter than this many counter updates (or power sampling intervals) is flagged
 * `short_window`: its energy is reported, but with that warning, never as a silent 0 J. */
#define ETOK_ENERGY_MIN_UPDATES 3

/* The largest power one domain is assumed able to draw: a counter decrease whose wrap-corrected
 * step would mean more is a reset, not a wrap (the sampler's ETOK_METER_MAX_PLAUSIBLE_W). */
#define ETOK_ENERGY_MAX_PLAUSIBLE_W 2000.0

/* One trace (one domain of one meter) over one window. Index i matches record->traces[i]. */
typedef struct {
    int is_counter;            /* raw is an accumulator (unit ends in J); else power samples */
    int valid;                 /* energy_j is meaningful (readings cover some of the window) */
    int incomplete;            /* readings cover only part of the window (covered_s < duration) */
    char problem[192];         /* why not valid / what to know ("" when nothing to say) */
    double covered_s;          /* seconds of the window the readings cover */
    double energy_j;           /* over the covered part */
    double energy_uncertainty_j;
    double mean_power_w;       /* energy_j / covered_s */
    double period_s;           /* counter update period, or power sampling interval used */
    double expected_updates;   /* duration / period_s (0 when the period is unknown) */
    int n_samples;             /* readings with t in [t1, t2] */
    int n_changes;             /* counters: consecutive readings overlapping the window that differ */
    int n_wraps, n_resets;     /* counter wraps corrected / resets (step counted 0 J) in the window */
    int short_window;          /* see ETOK_ENERGY_MIN_UPDATES; also a counter that never moved */
    int n_faults;              /* record faults of this trace's meter/domain inside the window */
} etok_trace_energy;

/* The total of one boundary: the sum over its summable, valid traces. */
typedef struct {
    int present;               /* at least one summable valid trace */
    int n_traces;
    double energy_j;
    double energy_uncertainty_j; /* linear sum of the traces' uncertainties (worst case) */
    double mean_power_w;       /* energy_j / duration */
    etok_source source;        /* the weakest source among the summed traces */
    int short_window, incomplete;
} etok_boundary_energy;

typedef struct {
    double t1_s, t2_s, duration_s;
    size_t n_traces;
    etok_trace_energy *traces;          /* n_traces, same order as the record's */
    etok_boundary_energy boundaries[3]; /* indexed by etok_boundary */
    /* The primary boundary: the widest one present (facility > node > device). Its figures: */
    int has_energy;
    etok_boundary boundary;
    double energy_j, energy_uncertainty_j, mean_power_w;
    etok_source source;
    int short_window, incomplete;
    int n_faults;                       /* all record faults with t in [t1, t2] */
} etok_energy_result;

/* Energy of every trace between record times t1 and t2 (t1 <= t2). Returns 0, or -1 when
 * the window is invalid (t2 < t1, not finite) or memory runs out. Free with
 * etok_energy_result_free (also safe after a failure). */
int etok_energy_window(const etok_record *r, double t1, double t2, etok_energy_result *out);
void etok_energy_result_free(etok_energy_result *res);

/* The run as a whole: window [window_start_s, window_end_s], idle baseline, J/token, PUE.
 * Unknown figures are NAN (idle not measured, tokens not known); the flags say why. */
typedef struct {
    etok_energy_result window;
    etok_energy_result idle;      /* zero-length when no idle baseline was taken */
    int has_idle;                 /* idle baseline measured and present at `boundary` */

    int has_energy;               /* window.has_energy */
    etok_boundary boundary;       /* primary boundary (of the window), used for idle too */
    etok_source source;           /* weakest source summed at that boundary */
    double duration_s;
    double energy_j, energy_uncertainty_j;
    double mean_power_w, mean_power_uncertainty_w;
    double idle_power_w, idle_power_uncertainty_w;          /* NAN without idle */
    double dynamic_energy_j, dynamic_energy_uncertainty_j;  /* NAN without idle */

    int tokens_known;
    long long tokens_in, tokens_out;
    double joules_per_output_token, joules_per_output_token_uncertainty; /* NAN if unknown */
    double joules_per_token;                                             /* NAN if unknown */

    double pue;
    char pue_source[16];
    double pue_adjusted_power_w;  /* mean_power_w x pue (x 1 when the boundary is facility) */
    double pue_adjusted_power_uncertainty_w;

    int short_window, incomplete, partial, exit_status;
    int n_faults;                 /* faults inside the run window */
} etok_energy_summary;

/* Returns 0, or -1 (invalid windows in the record, out of memory). Free with
 * etok_energy_summary_free (also safe after a failure). */
int etok_energy_summarize(const etok_record *r, etok_energy_summary *out);
void etok_energy_summary_free(etok_energy_summary *s);

/* Is this trace an accumulator (raw unit ends in "J") rather than power samples? */
int etok_trace_is_counter(const etok_trace *t);

#endif
