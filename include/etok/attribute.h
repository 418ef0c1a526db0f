/* attribute.h — each request's attributed energy: the energy of every engine step split
 * among the requests in it by token share (a request's prompt chunk when it prefills, else
 * the one token it decodes), the way `etok serve` attributes live (src/serve/server.c).
 *
 * Pure (analyse/): the driver records who took part in which step (etok_step_shares, filled
 * by drive/bench.c while it runs); after the meters stopped, etok_attribute_request_energy
 * reads the record's traces and writes requests[i].energy_j. The books balance: the step
 * energies (the meter's reading over the step when it resolves it, else duration x mean
 * power; analyse/metrics.c's "step energy" stage) are scaled so that they sum to the window's
 * energy — the time between steps (scheduling, tokenising, scoring) is spread over the steps
 * pro rata — so the attributed energies sum to the window energy, minus the energy of steps
 * no recorded request took part in (reported as unattributed). etok compare resamples
 * requests with these energies. */
#ifndef ETOK_ATTRIBUTE_H
#define ETOK_ATTRIBUTE_H

#include <stddef.h>

#include "etok/record.h"
#include "etok/util.h"

typedef struct {
    size_t step;     /* index into record->steps */
    size_t request;  /* index into record->requests */
    double share;    /* tokens this request put through the step (prefill chunk, or 1) */
} etok_step_share;

typedef struct {
    size_t n, cap;
    etok_step_share *v;
} etok_step_shares;

/* Appends one share; 0, or -1 on out of memory. */
int etok_step_shares_add(etok_step_shares *s, size_t step, size_t request, double share);
void etok_step_shares_free(etok_step_shares *s);

typedef struct {
    int has_energy;          /* the window has an energy reading; else nothing was attributed */
    double window_j;         /* the window's energy (energy.c) */
    double attributed_j;     /* sum over requests */
    double unattributed_j;   /* steps without a recorded request; window_j - attributed_j */
    size_t n_steps, n_steps_metered; /* in-window steps; of which the meter resolved */
} etok_attribution;

/* Sets energy_j of every in-window request (0 for one that took part in no step) and -1 for
 * the others; all -1 when the window has no energy. Shares naming a step or request out of
 * range are an error (ETOK_EXIT_INPUT). Returns 0, or -1 with err set (also on OOM). */
int etok_attribute_request_energy(etok_record *r, const etok_step_share *sh, size_t n, etok_attribution *out,
                                  etok_err *err);

/* ---- CPU-time attribution of device energy: the one model (issue 17's --boundary process,
 * issue 12's per-process and per-cgroup exporter series; docs/RECORD.md "Process boundary",
 * docs/PROMETHEUS.md "Per-process energy"). An attribution model, never a measurement.
 * One interval of dt_s seconds: E the device energy, I = idle_power_w x dt_s the device's idle
 * share of it (idle_power_w <= 0: none known, I = 0), m machine busy cores, n cores, c the
 * cores a consumer (process, cgroup, etok's own work) used (clamped to [0, m]):
 *     share(c) = (c / m) x max(0, E - I) + (c / n) x min(E, I)
 * i.e. the dynamic energy by CPU-time share and the idle power of the cores the consumer held.
 * What no consumer holds is the rest:
 *     rest = (max(0, n - m) / n) x min(E, I)        (+ max(0, E - I) when m is 0)
 * the idle of free cores, and the dynamic energy of an interval no CPU time explains. For
 * consumers that do not overlap, sum share(c_k) + share(m - sum c_k) + rest = E: no double
 * counting. --boundary process gives the measured work share(own) + rest (a quiet machine's
 * figure charges the free cores' idle to the work); the exporter reports rest unattributed. */
double etok_cpu_share_energy(double energy_j, double dt_s, double idle_power_w, double cores,
                             double machine_busy_cores, int n_cpus);
double etok_cpu_rest_energy(double energy_j, double dt_s, double idle_power_w, double machine_busy_cores,
                            int n_cpus);

#endif
