/* meter.h — energy meters, and the sampler that reads them during a run.
 *
 * Two levels:
 *  - a meter driver per energy source (src/meter/<name>.c: rapl, perf, hwmon, nvml, extlog,
 *    estimate) behind one small interface: detect, open, read, close (src/meter/driver.h);
 *  - a meter set: the meters of one run, read by a background sampler thread (power at
 *    rate_hz, counters at window edges and often enough never to miss a wrap) that appends
 *    raw readings to the run record's traces. Callers never sleep or poll for it.
 *
 * Zeus-like use:
 *     etok_meter_set *ms = etok_meters_open(&cfg, &err);
 *     etok_meters_start(ms, &record, &err);      // sampler running, traces filling
 *     etok_meters_mark(ms, &err);                // a reading of every meter at a window edge
 *     ... idle baseline, workload ...
 *     etok_meters_snapshot(ms, &snap);           // live cumulative energy (progress, serve)
 *     etok_meters_stop(ms, &err);                // final readings, traces complete
 *     etok_meters_close(ms);
 *
 * No silent fallback: with no names given, every available counter/power meter is opened;
 * the estimate meter is used only when asked for by name or when no meter exists at all, and
 * is then labelled `estimate` everywhere. A meter that exists but cannot be read is an error
 * saying why and how to fix it (ETOK_EXIT_PERMISSION for permissions). */
#ifndef ETOK_METER_H
#define ETOK_METER_H

#include "etok/record.h"
#include "etok/util.h"

typedef struct {
    const char *const *names; /* meters to open ("rapl", "nvml", ...); NULL/0 = auto */
    int n_names;
    double rate_hz;           /* power sampling rate; 0 = 10 Hz */
    double cpu_idle_w;        /* estimate meter: per-package idle and max power (--cpu-tdp); */
    double cpu_max_w;         /* 0 = from the CPU catalog / defaults */
    const char *extlog_path;  /* extlog meter: the power-meter log file */
    double extlog_gap_s;      /* extlog: gaps longer than this are faults; 0 = 2 s */
    int live_only;            /* daemons (exporter, serve without -o): keep no samples in the
                                 record's traces, only the live energy (memory stays flat) */
} etok_meter_config;

/* `etok meters`: what etok knows and whether it is available here. */
typedef struct {
    char name[32];
    int available;
    char why[256];           /* when not available: "missing", "permission: ...", "no driver: ..." */
    etok_source source;
    etok_boundary boundary;
    char domains[512];       /* comma-separated domain names */
    double resolution_si;    /* J or W */
    double wrap_range_j;     /* counters; 0 = none/unknown */
} etok_meter_status;

/* Fill up to cap statuses (one per known meter); returns how many. Never fails. */
int etok_meters_list(etok_meter_status *out, int cap, const etok_meter_config *cfg);

typedef struct etok_meter_set etok_meter_set;

etok_meter_set *etok_meters_open(const etok_meter_config *cfg, etok_err *err);
/* Start the sampler: it adds one trace per domain to rec and appends samples to them.
 * rec must stay alive until etok_meters_stop; only the sampler touches rec->traces and
 * rec->faults in between (other fields are the caller's). */
int etok_meters_start(etok_meter_set *ms, etok_record *rec, etok_err *err);

/* Live view, thread-safe: cumulative energy since start per boundary, and the mean power of
 * the last second. Figures of estimate meters are flagged. */
typedef struct {
    double t_s;                 /* relative to the record's t = 0 */
    double energy_j;            /* summable domains, the record's primary boundary */
    double energy_uncertainty_j;
    double power_w;             /* over about the last second */
    etok_source source;         /* the weakest source among the summed domains */
    etok_boundary boundary;
} etok_energy_snapshot;
int etok_meters_snapshot(etok_meter_set *ms, etok_energy_snapshot *out);

/* Live per-domain view, thread-safe (added for serve/exporter: Prometheus series per meter
 * domain): cumulative energy since start of every live domain, with its labels and whether it
 * counts towards its boundary's total. Fills up to cap; returns how many, or -1 when the set
 * has not started. */
typedef struct {
    char meter[32];
    char domain[96];
    etok_source source;
    etok_boundary boundary;
    int summable;            /* counts towards the total of its boundary (no nesting/duplicate) */
    int primary;             /* its boundary is the set's primary boundary (the snapshot's) */
    double energy_j;
    double uncertainty_j;
} etok_domain_energy;
int etok_meters_snapshot_domains(etok_meter_set *ms, etok_domain_energy *out, int cap);

/* Window edge (added by integrate): read every counter/power meter NOW (the sampler thread is
 * woken, reads each live domain once and appends the samples) and return when they are in the
 * record, so that a window starting or ending here has a reading at its edge rather than up to
 * one sampling period away. Thread-safe. 0 ok (also after stop: nothing to do); -1 before start. */
int etok_meters_mark(etok_meter_set *ms, etok_err *err);

/* Background load (issue 17, etok/cpuload.h): whose CPU time is "own" in the record's
 * cpu_load readings, which the sampler takes with the meters (not with live_only). scope is an
 * etok_cpu_scope; the default is ETOK_CPU_SCOPE_PROCESS (etok itself). Before start it sets
 * the initial scope; after, it takes effect at the next reading (etok run: once the command's
 * process group exists). Thread-safe. 0, or -1 for a bad scope. */
int etok_meters_set_cpu_scope(etok_meter_set *ms, int scope, long pid);
/* Take final readings and stop the thread; the record's traces are then complete. */
int etok_meters_stop(etok_meter_set *ms, etok_err *err);
void etok_meters_close(etok_meter_set *ms);

/* The record's t = 0 is the monotonic time given to the set at start (set by the caller in
 * rec->t0_wall_s for wall time). Convert etok_mono_s() to record time: */
double etok_meters_now(const etok_meter_set *ms);
/* The etok_mono_s() value at the record's t = 0 (record time = mono - t0). */
double etok_meters_t0_mono_s(const etok_meter_set *ms);

/* Another process holding an NVIDIA GPU (issue 17): NVML's running compute processes on every
 * GPU, leaving out exclude_pid and the members of process group exclude_pgrp (> 0; read from
 * $ETOK_PROC_ROOT/PID/stat). Writes "gpuN pid P (M MiB), ..." into out. Returns how many, or
 * -1 when NVML (or its process list) is not available here. */
int etok_nvml_gpu_processes(long exclude_pid, long exclude_pgrp, char *out, size_t cap);

#endif
