/* cli_util.h — what several subcommands parse or fill the same way: the meter options
 * (--meter, --cpu-tdp) with the same one-line errors, and the host description of a record.
 * Argument parsing stays in src/cli/; each helper prints its error as "etok CMD: ..." and the
 * caller returns ETOK_EXIT_USAGE. */
#ifndef ETOK_CLI_UTIL_H
#define ETOK_CLI_UTIL_H

#include "etok/record.h"

#define ETOK_CLI_MAX_METERS 16

/* Meter names from repeated --meter options, each one name or a comma-separated list. */
typedef struct {
    const char *names[ETOK_CLI_MAX_METERS];
    int n_names;
    char buf[512];
} etok_cli_meters;

/* Adds the names in arg ("rapl" or "rapl,nvml"); -1 after printing why (too many). */
int etok_cli_meters_add(const char *cmd, etok_cli_meters *m, const char *arg);
/* The names for etok_meter_config.names (NULL when none were given: every available meter). */
const char *const *etok_cli_meters_names(const etok_cli_meters *m);

/* --cpu-tdp IDLE_W:MAX_W for the estimate meter; -1 after printing why. */
int etok_cli_cpu_tdp(const char *cmd, const char *arg, double *idle_w, double *max_w);

/* Host name, kernel, online CPUs and CPU model (from ETOK_PROC_ROOT/cpuinfo) into the record. */
void etok_cli_host_info(etok_record *r);

#endif
