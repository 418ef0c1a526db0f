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
 * The process boundary (`--boundary process`) — an attribution model, not a measurement:
 * for each CPU-load interval i of the window, with E_i the device-boundary energy, P0 the
 * idle baseline power, o_i / m_i own / machine busy cores, b_i background cores, n cores:
 *     E_own,i = (o_i / m_i) x max(0, E_i - P0 dt_i) + (1 - b_i / n) x P0 dt_i
 * i.e. etok's work takes its CPU-time share of the dynamic energy and the idle power of every
 * core the background does not hold. Assumptions: power follows CPU busy time across
 * processes alike (a busy core costs the same whoever runs on it); the idle baseline is the
 * device's idle (a background steady through baseline and window biases the result by
 * k b^2 (1/(o+b) - 1/n), k = W per busy core; zero when the machine is saturated); GPU and
 * other non-CPU energy are split by the same CPU share. Interval energies are scaled so they
 * sum to the window's device energy. etok_process_interval_energy is the one place the rule
 * lives (a per-process exporter series must call it too). */
#ifndef ETOK_BGLOAD_H
#define ETOK_BGLOAD_H

#include "etok/energy.h"
#include "etok/record.h"

#define ETOK_BG_THRESHOLD_CORES 0.05
#define ETOK_BG_NOISE_K 3.0

typedef struct {
    int present;               /* the record has cpu_load readings */
    etok_cpuload_phase phase[ETOK_PHASE_COUNT];
    int changed;               /* -1: not known (no baseline, or own work not known) */
    double change_cores;       /* window - baseline background; NAN when not known */
    double change_limit_cores; /* what counted as a change */
    int above_threshold;       /* some phase's background > ETOK_BG_THRESHOLD_CORES */
    char warning[448];         /* "" when nothing to say */
} etok_bgload;

/* Always returns 0; out->present = 0 when the record has no cpu_load. */
int etok_bgload_analyse(const etok_record *r, etok_bgload *out);
/* Write the analysis into r->cpuload.phase[] and background_changed (before saving). */
void etok_bgload_fill_record(etok_record *r);

/* The model for one interval (see above). own/machine cores >= 0; a machine that was not
 * busy gives etok the whole dynamic energy. Returns joules. */
double etok_process_interval_energy(double energy_j, double dt_s, double idle_power_w, double own_cores,
                                    double machine_busy_cores, double background_cores, int n_cpus);

typedef struct {
    int valid;
    double energy_j;                 /* attributed to the own work over the window */
    double joules_per_output_token;  /* NAN when tokens are unknown */
    double share_of_device;          /* energy_j / the device-boundary window energy */
    double own_cpu_share;            /* own / machine busy CPU time over the window */
    double idle_power_w;
    size_t n_intervals;
    char note[256];                  /* the model and its assumptions, or why not valid */
} etok_process_energy;

/* Returns 0 (out->valid says whether there is a figure), -1 out of memory. */
int etok_process_energy_compute(const etok_record *r, const etok_energy_summary *es, etok_process_energy *out);

#endif
