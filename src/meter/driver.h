/* driver.h — the internal interface every energy meter implements (src/meter/<name>.c),
 * and the small pure helpers the sampler and the tests share.
 *
 * A driver states, per domain, what it measures: source (counter / power / external /
 * estimate), boundary, raw unit and scale, resolution, wrap range, update period, and whether
 * the domain may be summed into its boundary's total (no nesting, no duplicates). It owns the
 * hardware access; it does not own timing, integration or the record (sampler.c does).
 * Not a public header: only src/meter/ and the meter unit tests include it. */
#ifndef ETOK_METER_DRIVER_H
#define ETOK_METER_DRIVER_H

#include <stdint.h>

#include "etok/meter.h"
#include "etok/record.h"
#include "etok/util.h"

#define ETOK_METER_MAX_DOMAINS 64

/* One domain of one meter instance: the description part of a trace (no samples) plus the
 * driver's private per-domain data. */
typedef struct {
    etok_trace info;    /* meter, domain, source, boundary, raw_unit, scale_to_si, wrap_range_raw,
                           resolution_si, update_period_s, error_band, summable, power_field */
    int pair;           /* index (in the same instance) of a power domain measuring the same
                           thing as this counter, for the start-up cross-check; -1 = none */
    char path[512];     /* sysfs file (rapl, hwmon) or other locator; driver-private */
    int ival;           /* driver-private (fd, device index, ...) */
    void *ptr;          /* driver-private */
} etok_meter_domain;

typedef struct etok_meter_driver etok_meter_driver;

typedef struct {
    const etok_meter_driver *drv;
    int n_domains;
    etok_meter_domain dom[ETOK_METER_MAX_DOMAINS];
    void *priv;          /* driver-private state */
} etok_meter_inst;

/* Return values of read(). */
enum {
    ETOK_READ_OK = 0,
    ETOK_READ_ERROR = -1, /* transient or permanent failure; err says why */
    ETOK_READ_LOST = -2   /* the device is gone (GPU fell off the bus); stop reading it */
};

struct etok_meter_driver {
    const char *name;           /* "rapl", "perf", "hwmon", "nvml", "amdsmi", "extlog", "estimate" */
    etok_source source;         /* the main source of its domains (for the listing) */
    etok_boundary boundary;
    int auto_open;              /* opened when no names are given and it is available */
    /* Fill st (name, source, boundary, domains, resolution, wrap) and say whether it is
     * available here and, if not, why. Never fails. */
    void (*detect)(const etok_meter_config *cfg, etok_meter_status *st);
    /* Fill mi->dom / n_domains and open the hardware. -1 with err (exit code set) on failure. */
    int (*open)(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err);
    /* Read one domain now: raw counter value or power, in the domain's raw unit. */
    int (*read)(etok_meter_inst *mi, int d, double *raw, etok_err *err);
    /* Post-hoc meters (extlog): fill trace tr of rec for the run [0, t_end_s] at stop and
     * record faults; NULL for live meters. */
    int (*collect)(etok_meter_inst *mi, etok_record *rec, size_t trace_index, double t_end_s, etok_err *err);
    void (*close)(etok_meter_inst *mi);
};

extern const etok_meter_driver etok_meter_rapl;
extern const etok_meter_driver etok_meter_perf;
extern const etok_meter_driver etok_meter_hwmon;
extern const etok_meter_driver etok_meter_nvml;
extern const etok_meter_driver etok_meter_amdsmi;
extern const etok_meter_driver etok_meter_extlog;
extern const etok_meter_driver etok_meter_estimate;

/* All known drivers in listing order; returns how many. */
int etok_meter_drivers(const etok_meter_driver *const **out);
const etok_meter_driver *etok_meter_driver_find(const char *name);

/* ---- helpers shared by drivers (meter_util.c) ---- */

/* Read an integer sysfs attribute. A file whose mode has no read bit at all is treated as
 * permission denied even for root (so fixtures can model the root-only energy_uj of current
 * kernels, where the real file is 0400 root); errno = EACCES then. 0 ok, -1 with errno. */
int etok_meter_read_u64(const char *path, uint64_t *out);
/* Read a one-line text attribute, newline stripped. 0 ok, -1 with errno. */
int etok_meter_read_line(const char *path, char *buf, size_t cap);
/* vsnprintf into a status/why buffer (truncates quietly). */
void etok_meter_why(char *buf, size_t cap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Does path exist (any type)? */
int etok_meter_exists(const char *path);

/* Counter step classification (sampler.c): given the previous and current raw readings, the
 * wrap range (raw units, 0 = none), the time between them and the largest plausible rate
 * (raw units per second), return the corrected delta in raw units and its kind. */
typedef enum { ETOK_STEP_OK, ETOK_STEP_WRAP, ETOK_STEP_RESET } etok_step_kind;
double etok_counter_delta(double prev_raw, double cur_raw, double wrap_range_raw, double dt_s,
                          double max_rate_raw_per_s, etok_step_kind *kind);

/* The most power one domain is assumed able to draw (W): bounds wrap plausibility and sets
 * how often counters are read (wrap period / 4). */
#define ETOK_METER_MAX_PLAUSIBLE_W 2000.0

/* extlog (extlog.c), exposed for tests and `etok report`: parse a CSV `timestamp,watts` or a
 * JSON-lines power log into parallel arrays (malloc'd), read as a stream from a regular file
 * (lines of at most ETOK_LIMIT_EXTLOG_LINE bytes). Malformed line -> -1, err names path:line
 * (ETOK_EXIT_INPUT). The meter itself keeps only the run window's samples. */
int etok_extlog_parse(const char *path, double **ts_out, double **watts_out, size_t *n_out, etok_err *err);

/* Align parsed samples (unix seconds, W) to record time (rec->t0_wall_s) into trace ti for
 * the run [0, t_end_s]; samples beyond the edges are kept only as the nearest neighbour
 * within gap_s. Intervals without samples longer than gap_s become "gap" faults (not filled). */
int etok_extlog_align(etok_record *rec, size_t ti, const double *ts, const double *w, size_t n, double t_end_s,
                      double gap_s, etok_err *err);

/* estimate (estimate.c), exposed for tests: CPU busy fraction between two /proc/stat texts
 * (per-core lines "cpuN"), averaged over cores; -1 when it cannot be computed. */
/* The busy and total jiffies summed over the per-core lines of a /proc/stat text (busy
 * excludes idle, iowait and steal: the estimate meter's rule, shared with cpuload.c). */
int etok_stat_jiffies(const char *text, unsigned long long *busy, unsigned long long *total, int *n_cores);
double etok_estimate_busy_fraction(const char *stat_before, const char *stat_after, int *n_cores);
/* Model power (W) for a busy fraction: P_idle + (P_max - P_idle) * busy. */
double etok_estimate_power_w(double idle_w, double max_w, double busy_fraction);

/* perf (perf.c), exposed for tests: parse the power PMU's sysfs description. */
typedef struct {
    char name[48];      /* "energy-pkg" */
    uint64_t config;    /* event code */
    double scale;       /* J per count */
    char unit[16];      /* "Joules" */
} etok_perf_event;
int etok_perf_parse(const char *sysfs_root, int *pmu_type, etok_perf_event *ev, int cap, int *n_ev,
                    int *cpus, int cpu_cap, int *n_cpus, char *why, size_t why_cap);

/* nvml (nvml.c): sum of the enforced power limits (W) of an open instance; 0 = unknown. */
double etok_nvml_power_limit_w(etok_meter_inst *mi);

#endif
