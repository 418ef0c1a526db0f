/* procenergy.h — per-process and per-cgroup energy on shared nodes (issue 12; `etok exporter
 * --per-process`, docs/PROMETHEUS.md "Per-process energy"). An attribution model, never a
 * measurement: at every update the device energy used since the previous one is split over
 * the processes ($ETOK_PROC_ROOT/PID/stat utime + stime) and, separately, over the cgroups
 * (cgroup v2 cpu.stat usage_usec under $ETOK_SYSFS_ROOT/fs/cgroup; a cgroup's own usage in an
 * interval = its usage's growth less its children's; a cgroup new in the interval counts from
 * the next one) by their share of the machine's busy CPU time
 * ($ETOK_PROC_ROOT/stat) in that interval, with etok_cpu_share_energy / etok_cpu_rest_energy
 * (attribute.h) — the model of `--boundary process`. Assumptions: a busy core costs the same
 * whoever runs on it; device energy that is not CPU (GPU) follows the same CPU share.
 *
 * No double counting: within one view (processes, or cgroups) the consumers' cores are
 * scaled down when they add up to more than the machine's busy cores (tick accounting of
 * /proc/PID/stat and /proc/stat differ slightly), so sum(series) + exited + unattributed =
 * the energy covered since the first update. Unattributed: busy time no process (cgroup)
 * accounts for (a process that exits loses its last partial interval; interrupts), the idle
 * of free cores when an idle power is given, and intervals nobody was busy in. Children's
 * reaped time (cutime) is not used: the child was counted while it ran. A PID reused by a
 * new process (another start time) is a new series. Not thread-safe: callers serialise. */
#ifndef ETOK_PROCENERGY_H
#define ETOK_PROCENERGY_H

#include <stddef.h>

#include "etok/util.h"

typedef struct {
    long pid, pgrp;
    unsigned long long start_ticks; /* starttime: tells a reused PID apart */
    unsigned long long ticks;       /* utime + stime at the last update */
    char comm[32];
    double energy_j;                /* attributed since first seen */
    int exited;                     /* kept after exit (etok_procenergy_keep_exited) */
    int fd;                         /* internal: its stat file kept open (re-read with pread), or -1 */
} etok_proc_energy;

typedef struct {
    char path[256];                 /* relative to the cgroup root, "/" for the root itself */
    double usage_s;                 /* usage_usec / 1e6 at the last update (hierarchical) */
    double energy_j;
} etok_cgroup_energy;

typedef struct {
    const etok_proc_energy *procs;  /* sorted by pid */
    size_t n_procs;
    const etok_cgroup_energy *cgroups; /* sorted by path */
    size_t n_cgroups;
    int cgroups_available;          /* a cgroup v2 hierarchy with cpu.stat was found */
    size_t n_updates;               /* intervals attributed (the first read only primes) */
    double covered_j;               /* device energy over those intervals */
    double proc_exited_j;           /* attributed to processes that have exited since */
    double proc_unattributed_j;
    double cgroup_removed_j;        /* attributed to cgroups that have been removed since */
    double cgroup_unattributed_j;
    double last_machine_busy_cores, last_interval_s;
} etok_procenergy_view;

typedef struct etok_procenergy etok_procenergy;

/* cgroups: also the cgroup view. idle_power_w > 0: the device's idle power, whose free cores'
 * share stays unattributed (attribute.h); <= 0: none known, the whole energy is split by busy
 * CPU time. */
etok_procenergy *etok_procenergy_open(int cgroups, double idle_power_w, etok_err *err);
/* One reading: energy_j the device's cumulative energy (any origin). The first call primes;
 * later ones attribute the energy since the previous call. -1 with err when
 * $ETOK_PROC_ROOT/stat cannot be read (nothing changes then). */
int etok_procenergy_update(etok_procenergy *pe, double energy_j, etok_err *err);
void etok_procenergy_view_get(const etok_procenergy *pe, etok_procenergy_view *v);
/* Count only the members of process group pgrp (`etok run --per-process`: the command's tree;
 * -1: none yet); others' time goes to the unattributed rest. 0: every process (default). */
void etok_procenergy_set_pgrp(etok_procenergy *pe, long pgrp);
/* Keep processes that exit in the list (exited = 1, energy frozen) instead of moving their
 * energy to proc_exited_j: a run's report lists every process of its tree. */
void etok_procenergy_keep_exited(etok_procenergy *pe, int keep);
void etok_procenergy_close(etok_procenergy *pe);

#endif
