/* bgload.h — background load and the process-boundary attribution model (issue 17): pure
 * functions of the run record (no I/O, no clock), docs/RECORD.md "Background load".
 *
 * Per phase (idle baseline, warm-up, window) from the record's cpu_load readings:
 *   machine busy cores = d(busy_s) / dt, own busy cores = d(own_s) / dt,
 *   background = max(0, machine - own), where dt = d(total_s) / n_cpus (the CPU clock of
 *   /proc/stat itself; the record clock when that did not move). Its noise is the standard
 *   error of the phase mean over the sampling intervals (std / sqrt(n)).
 * Warnings: background above ETOK_BG_THRESHOLD_CORES in any phase; background changed
 * between baseline and window by more than max(ETOK_BG_THRESHOLD_CORES, ETOK_BG_NOISE_K x the
 * baseline's noise) — a background that starts or stops mid-run invalidates idle subtraction.
 *
 * The process boundary (`--boundary process`) — an attribution model, not a measurement
 * (docs/RECORD.md "Process boundary"): power P = P_idle + k x machine busy cores. The idle
 * baseline P0 includes the background that ran during it, so k is fitted over the record
 * (weighted least squares over ~1 s bins, baseline start to window end) and
 * P_idle = P0 - k x baseline busy cores (P0 kept when busy cores did not spread enough to fit).
 * Then for each CPU-load interval i of the window, with E_i the device-boundary energy,
 * I_i = min(E_i, P_idle dt_i), o_i / m_i own / machine busy cores, b_i background, n cores:
 *     E_own,i = (o_i / m_i) x (E_i - I_i) + (1 - b_i / n) x I_i
 * i.e. etok's work takes its CPU-time share of the dynamic energy and the idle power of every
 * core the background does not hold — attribute.h's share(own) + rest, the one CPU-time model
 * (the per-process exporter series use the same functions). Assumptions: a busy core costs
 * the same whoever runs on it; GPU and other non-CPU energy are split by the same CPU share.
 * Interval energies are scaled so they sum to the window's device energy. */
#ifndef ETOK_BGLOAD_H
#define ETOK_BGLOAD_H

#include "etok/energy.h"
#include "etok/record.h"

#define ETOK_BG_THRESHOLD_CORES 0.05
#define ETOK_BG_NOISE_K 3.0
/* The idle-baseline correction: watts per busy core fitted over bins of this length ... */
#define ETOK_BG_FIT_BIN_S 1.0
/* ... only when the machine's busy cores spread at least this much (weighted SD over bins) */
#define ETOK_BG_FIT_MIN_SPREAD_CORES 0.2
/* CPU-load intervals used per figure at most (readings skipped evenly beyond that) */
#define ETOK_BG_MAX_INTERVALS 4000

typedef struct {
    int present;               /* the record has cpu_load readings */
    etok_cpuload_phase phase[ETOK_PHASE_COUNT];
    int changed;               /* -1: not known (no baseline, or own work not known) */
    double change_cores;       /* window - baseline background; NAN when not known */
    double change_limit_cores; /* what counted as a change */
    int above_threshold;       /* some phase's background > ETOK_BG_THRESHOLD_CORES */
    char warning[768];         /* "" when nothing to say */
} etok_bgload;

/* Always returns 0; out->present = 0 when the record has no cpu_load. */
int etok_bgload_analyse(const etok_record *r, etok_bgload *out);
/* Write the analysis into r->cpuload.phase[] and background_changed (before saving). */
void etok_bgload_fill_record(etok_record *r);

/* The model for one interval (see above): etok_cpu_share_energy(own) + etok_cpu_rest_energy
 * (attribute.h, the one CPU-time attribution model). own/machine cores >= 0; a machine that
 * was not busy gives etok the whole dynamic energy. Returns joules. */
double etok_process_interval_energy(double energy_j, double dt_s, double idle_power_w, double own_cores,
                                    double machine_busy_cores, int n_cpus);

typedef struct {
    int valid;
    double energy_j;                 /* attributed to the own work over the window */
    double joules_per_output_token;  /* NAN when tokens are unknown */
    double share_of_device;          /* energy_j / the device-boundary window energy */
    double own_cpu_share;            /* own / machine busy CPU time over the window */
    double idle_power_w;             /* the device's idle used: the baseline less the background's share */
    double baseline_power_w;         /* the idle baseline as measured (P0) */
    double baseline_busy_cores;      /* machine busy cores during the baseline; NAN if unknown */
    double watts_per_core;           /* fitted k; NAN when not fitted */
    int fitted;                      /* 1: idle_power_w = P0 - k x baseline_busy_cores */
    size_t n_intervals;
    char note[256];                  /* the model and its assumptions, or why not valid */
} etok_process_energy;

/* Returns 0 (out->valid says whether there is a figure), -1 out of memory. */
int etok_process_energy_compute(const etok_record *r, const etok_energy_summary *es, etok_process_energy *out);

#endif
