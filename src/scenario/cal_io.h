/* cal_io.h — the I/O beside analyse/calibrate.c: a run record (file or bench -o directory)
 * read into an etok_cal_run, the catalog model a run used, and a calibrated hardware profile
 * written in the data/hardware format (loadable by name-as-path: `etok tpf` scenarios take
 * "hardware": "PROFILE.json", `etok compare --calibration PROFILE.json`). */
#ifndef ETOK_SCENARIO_CAL_IO_H
#define ETOK_SCENARIO_CAL_IO_H

#include <stddef.h>

#include "etok/calibrate.h"
#include "etok/record.h"

/* path: a record file, or a directory holding run.json. */
int etok_cal_load_run(const char *path, etok_cal_run *out, char *host, size_t host_n, etok_err *err);
/* The catalog model of a run: `name` when given, else the catalog entry whose name (letters
 * and digits only, lower case) is the longest found in the run's model name or file name. */
int etok_cal_find_model(const etok_cal_run *run, const char *name, etok_model_arch *m, etok_err *err);
/* Writes fit->hw as a hardware catalog entry (with "calibration" and a source per number):
 * used_points = the labels of runs[i] with use[i] (use NULL = all); each kernel's
 * "fitted_from" = the runs whose role (etok_cal_fit's, NULL = none listed) has
 * ETOK_CAL_ROLE_KERNEL and whose format and threads are that kernel's. */
int etok_cal_write_profile(const etok_cal_fit_result *fit, const etok_cal_run *runs, const int *use, const int *role,
                           size_t n, const char *path, etok_err *err);

#endif
