/* nvml_plimit.h — the GPU power-limit lever (etok bench --gpu-power-limit), through the same
 * dlopen'ed NVML as the nvml meter (src/meter/nvml.c): set every GPU's power-management limit,
 * remember each previous limit, put them back. Internal: used by src/drive/levers_hw.c. */
#ifndef ETOK_METER_NVML_PLIMIT_H
#define ETOK_METER_NVML_PLIMIT_H

#include "etok/util.h"

typedef struct etok_nvml_plimit etok_nvml_plimit;

/* Validate watts against every GPU's nvmlDeviceGetPowerManagementLimitConstraints, read each
 * previous limit (nvmlDeviceGetPowerManagementLimit), then set all. NULL with err (exit code
 * ETOK_EXIT_USAGE, one line) when NVML is missing, reports no permission / not supported, or
 * watts is out of range; GPUs already changed are restored before returning. Then waits until
 * the GPUs enforce the new limit (etok_nvml_plimit_enforced_s), so a run never starts uncapped. */
etok_nvml_plimit *etok_nvml_plimit_set(double watts, etok_err *err);
/* The limit applied and the previous limit of each GPU (up to cap); returns the GPU count. */
int etok_nvml_plimit_info(const etok_nvml_plimit *p, double *new_w, double *prev_w, int cap);
/* Seconds from the set until every GPU's enforced limit (nvmlDeviceGetEnforcedPowerLimit) read
 * the new limit; etok_nvml_plimit_set waits up to 2 s for it. -1 when some GPU did not within
 * that wait (a warning was printed), 0 when NVML has no enforced-limit call. */
double etok_nvml_plimit_enforced_s(const etok_nvml_plimit *p);
/* Put every previous limit back, unload NVML, free p (NULL is fine). */
void etok_nvml_plimit_restore(etok_nvml_plimit *p);

#endif
