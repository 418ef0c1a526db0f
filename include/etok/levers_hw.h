/* levers_hw.h — the machine levers of issue 16 (etok bench --cpu-max-freq, --gpu-power-limit):
 * cap every online CPU's cpufreq scaling_max_freq and set every NVIDIA GPU's power-management
 * limit for the length of a run, and put the previous values back afterwards.
 *
 * One restore handle holds what was changed; etok_hw_levers_restore() undoes it, and the caller
 * calls it on every path (success, error, interrupt). Callers block SIGINT/SIGTERM (bench does, on its signalfd) so an interrupt ends the run
 * through the normal path, which restores. A SIGKILL cannot be handled: the values stay. */
#ifndef ETOK_LEVERS_HW_H
#define ETOK_LEVERS_HW_H

#include <jansson.h>

#include "etok/util.h"

typedef struct {
    long cpu_max_khz;         /* 0 = leave cpufreq alone */
    double gpu_power_limit_w; /* 0 = leave the GPUs alone */
} etok_hw_levers_opts;

typedef struct etok_hw_levers etok_hw_levers;

/* "2.0GHz", "1800MHz", "1800000kHz" or a bare number of kHz (cpufreq's unit); units are
 * case-insensitive. 0 ok; -1 with err (ETOK_EXIT_USAGE, naming --cpu-max-freq). */
int etok_parse_cpu_freq(const char *s, long *khz, etok_err *err);

/* Apply the levers. cpufreq: under etok_sysfs_root()/devices/system/cpu/cpuN/cpufreq/ of every
 * online CPU, khz is checked against cpuinfo_min_freq..cpuinfo_max_freq and the file's
 * writability for all CPUs before any is written; scaling_max_freq is then written and read
 * back. A NULL return (nothing left changed) with err, exit code ETOK_EXIT_USAGE and one line,
 * when the machine does not allow it (no cpufreq, read-only, NVML missing, no permission, not
 * supported) or the value is out of range. With nothing asked, returns an empty handle. */
etok_hw_levers *etok_hw_levers_apply(const etok_hw_levers_opts *o, etok_err *err);

/* Add what was applied to a record's config: cpu_max_freq_khz + cpu_max_freq_cpus +
 * cpu_max_freq_prev_khz (array), gpu_power_limit_w + gpu_power_limit_prev_w (array) +
 * gpu_power_limit_enforced_s (seconds until the GPUs enforced it; null if not within 2 s). Nothing
 * when the lever was not asked. */
void etok_hw_levers_to_config(const etok_hw_levers *h, json_t *cfg);

/* The GPU power limit applied, summed over the GPUs set (W; 0 when the lever was not asked):
 * what a record's hw.power_limit_w should say. NVML's enforced limit, which the nvml meter
 * reads otherwise, follows a set ~0.1 s later on an H200 (docs/LEVERS.md). */
double etok_hw_levers_gpu_limit_w(const etok_hw_levers *h);

/* Put every changed value back (in reverse order) and free h; NULL is fine. Returns 0, or -1
 * after printing one line per value that could not be restored to stderr. */
int etok_hw_levers_restore(etok_hw_levers *h);

#endif
