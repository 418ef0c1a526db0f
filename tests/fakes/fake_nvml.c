/* fake_nvml.c — a stand-in libnvidia-ml for the tests (built as build/fake_nvml.so and loaded
 * through ETOK_NVML_LIB). Implements only the NVML entry points etok's nvml meter uses, with
 * the real ABI, driven by environment variables read at nvmlInit_v2:
 *   FAKE_NVML_MODE        energy (default: total-energy counter + power) | power (no counter)
 *                         | lost (the GPU falls off the bus after FAKE_NVML_LOST_AFTER reads)
 *                         | noinit (nvmlInit_v2 fails)
 *   FAKE_NVML_WATTS       constant power drawn (default 100)
 *   FAKE_NVML_COUNT       number of GPUs (default 1)
 *   FAKE_NVML_INSTANT     1 (default): the NVML_FI_DEV_POWER_INSTANT field exists; 0: it does not
 *   FAKE_NVML_LOST_AFTER  reads before the GPU is lost (default 5)
 *   FAKE_NVML_ENERGY_SCALE  multiply the energy counter (default 1; !=1 models a bad counter)
 *   FAKE_NVML_LIMIT_W     every GPU's initial power-management limit in W (default 700)
 *   FAKE_NVML_LIMIT_RANGE MIN:MAX W of nvmlDeviceGetPowerManagementLimitConstraints (default 100:700)
 *   FAKE_NVML_SET_ERR     NVML return code of nvmlDeviceSetPowerManagementLimit (default 0; 4 = no
 *                         permission, 3 = not supported)
 *   FAKE_NVML_SET_ERR_FROM  with FAKE_NVML_SET_ERR: only GPUs with this index or higher fail (default 0)
 *   FAKE_NVML_PROCS       comma-separated PIDs running on GPU 0 (nvmlDeviceGetComputeRunningProcesses;
 *                         default none), each shown using 1 GiB
 *   FAKE_NVML_ENFORCED_STALE  1: nvmlDeviceGetEnforcedPowerLimit keeps returning the initial limit
 *                         after a set (never follows)
 *   FAKE_NVML_ENFORCED_LAG_MS  the enforced limit follows a set this many ms later, returning the
 *                         previous limit until then (an H200's followed ~100 ms later; default 0)
 *   FAKE_NVML_LIMIT_LOG   file: every successful set appends "set GPU MW\n", so a test reads back
 *                         what was set and that the previous limit was restored
 * Init is reference-counted as in the real library (the meter and the power-limit lever each
 * init and shut down); the state is set up at the first init only.
 * The energy counter is watts x monotonic time since nvmlInit_v2, in mJ, from an arbitrary
 * non-zero start. Test code: process-wide state is fine here. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meter/nvml_abi.h"

/* The fake's device handle: the opaque NVML device struct, defined here. */
struct nvmlDevice_st { int index; };
typedef struct nvmlDevice_st fake_dev;

#define FAKE_MAX 8
static fake_dev g_devs[FAKE_MAX];
static int g_count = 1, g_mode_energy = 1, g_lost = 0, g_lost_after = 5, g_instant = 1, g_inited = 0;
static double g_watts = 100, g_scale = 1, g_t0 = 0;
static int g_reads = 0;
static unsigned int g_limit_mw[FAKE_MAX], g_limit0_mw, g_lim_lo = 100000, g_lim_hi = 700000;
static int g_enforced_stale;
static double g_enforced_lag_s, g_set_t[FAKE_MAX];
static unsigned int g_before_mw[FAKE_MAX];
static int g_set_err = 0, g_set_err_from = 0;

static double mono(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static const char *env(const char *k, const char *d) {
    const char *v = getenv(k);
    return v && *v ? v : d;
}

int nvmlInit_v2(void) {
    const char *mode = env("FAKE_NVML_MODE", "energy");
    if (!strcmp(mode, "noinit")) return 9; /* NVML_ERROR_DRIVER_NOT_LOADED */
    if (g_inited++ > 0) return 0;
    g_mode_energy = strcmp(mode, "power") != 0;
    g_lost = !strcmp(mode, "lost");
    g_watts = atof(env("FAKE_NVML_WATTS", "100"));
    g_count = atoi(env("FAKE_NVML_COUNT", "1"));
    if (g_count < 0) g_count = 0;
    if (g_count > FAKE_MAX) g_count = FAKE_MAX;
    g_instant = atoi(env("FAKE_NVML_INSTANT", "1"));
    g_lost_after = atoi(env("FAKE_NVML_LOST_AFTER", "5"));
    g_scale = atof(env("FAKE_NVML_ENERGY_SCALE", "1"));
    for (int i = 0; i < FAKE_MAX; i++) g_devs[i].index = i;
    g_t0 = mono();
    g_reads = 0;
    double lw = atof(env("FAKE_NVML_LIMIT_W", "700")), llo = 100, lhi = 700;
    if (sscanf(env("FAKE_NVML_LIMIT_RANGE", "100:700"), "%lf:%lf", &llo, &lhi) != 2) llo = 100, lhi = 700;
    g_lim_lo = (unsigned int)(llo * 1000.0);
    g_lim_hi = (unsigned int)(lhi * 1000.0);
    for (int i = 0; i < FAKE_MAX; i++) g_limit_mw[i] = (unsigned int)(lw * 1000.0);
    g_limit0_mw = (unsigned int)(lw * 1000.0);
    g_enforced_stale = atoi(env("FAKE_NVML_ENFORCED_STALE", "0"));
    g_enforced_lag_s = atof(env("FAKE_NVML_ENFORCED_LAG_MS", "0")) / 1000.0;
    g_set_err = atoi(env("FAKE_NVML_SET_ERR", "0"));
    g_set_err_from = atoi(env("FAKE_NVML_SET_ERR_FROM", "0"));
    return 0;
}

int nvmlShutdown(void) {
    if (g_inited > 0) g_inited--;
    return 0;
}

const char *nvmlErrorString(int r) {
    switch (r) {
    case 0: return "Success";
    case 3: return "Not Supported";
    case 4: return "Insufficient Permissions";
    case 15: return "GPU is lost";
    default: return "Unknown Error";
    }
}

int nvmlDeviceGetCount_v2(unsigned int *n) {
    if (!g_inited) return 1;
    *n = (unsigned)g_count;
    return 0;
}

int nvmlDeviceGetHandleByIndex_v2(unsigned int i, fake_dev **d) {
    if (!g_inited) return 1;
    if ((int)i >= g_count) return 2;
    *d = &g_devs[i];
    return 0;
}

int nvmlDeviceGetName(fake_dev *d, char *name, unsigned int len) {
    (void)d;
    strncpy(name, "Fake GPU 80GB", len);
    if (len) name[len - 1] = '\0';
    return 0;
}

/* Each reading call counts towards FAKE_NVML_LOST_AFTER in lost mode. */
static int read_gate(void) {
    if (!g_inited) return 1;
    g_reads++;
    if (g_lost && g_reads > g_lost_after) return NVML_ERROR_GPU_IS_LOST;
    return 0;
}

int nvmlDeviceGetTotalEnergyConsumption(fake_dev *d, unsigned long long *mj) {
    (void)d;
    if (!g_mode_energy) return NVML_ERROR_NOT_SUPPORTED; /* the power-only path */
    int r = read_gate();
    if (r) return r;
    *mj = 1000000000ULL + (unsigned long long)(g_scale * g_watts * 1000.0 * (mono() - g_t0));
    return 0;
}

int nvmlDeviceGetPowerUsage(fake_dev *d, unsigned int *mw) {
    (void)d;
    int r = read_gate();
    if (r) return r;
    *mw = (unsigned int)(g_watts * 1000.0);
    return 0;
}

int nvmlDeviceGetFieldValues(fake_dev *d, int n, nvmlFieldValue_t *v) {
    (void)d;
    for (int i = 0; i < n; i++) {
        if (v[i].fieldId != 186 || !g_instant) {
            v[i].nvmlReturn = NVML_ERROR_NOT_SUPPORTED;
            continue;
        }
        int r = read_gate();
        v[i].nvmlReturn = r;
        v[i].valueType = 1;
        v[i].value.uiVal = (unsigned int)(g_watts * 1000.0);
    }
    return 0;
}

int nvmlDeviceGetEnforcedPowerLimit(fake_dev *d, unsigned int *mw) {
    if (g_enforced_stale)
        *mw = g_limit0_mw;
    else if (g_set_t[d->index] > 0 && mono() - g_set_t[d->index] < g_enforced_lag_s)
        *mw = g_before_mw[d->index];
    else
        *mw = g_limit_mw[d->index];
    return 0;
}

int nvmlDeviceGetPowerManagementLimit(fake_dev *d, unsigned int *mw) {
    if (!g_inited) return 1;
    *mw = g_limit_mw[d->index];
    return 0;
}

int nvmlDeviceGetPowerManagementLimitConstraints(fake_dev *d, unsigned int *lo, unsigned int *hi) {
    (void)d;
    if (!g_inited) return 1;
    *lo = g_lim_lo;
    *hi = g_lim_hi;
    return 0;
}

int nvmlDeviceSetPowerManagementLimit(fake_dev *d, unsigned int mw) {
    if (!g_inited) return 1;
    if (g_set_err && d->index >= g_set_err_from) return g_set_err;
    if (mw < g_lim_lo || mw > g_lim_hi) return 2; /* NVML_ERROR_INVALID_ARGUMENT */
    g_before_mw[d->index] = g_limit_mw[d->index];
    g_set_t[d->index] = mono();
    g_limit_mw[d->index] = mw;
    const char *log = getenv("FAKE_NVML_LIMIT_LOG");
    if (log && *log) {
        FILE *f = fopen(log, "a");
        if (f) {
            fprintf(f, "set %d %u\n", d->index, mw);
            fclose(f);
        }
    }
    return 0;
}

int nvmlDeviceGetUtilizationRates(fake_dev *d, nvmlUtilization_t *u) {
    (void)d;
    u->gpu = 42;
    u->memory = 17;
    return 0;
}

int nvmlDeviceGetComputeRunningProcesses(fake_dev *d, unsigned int *count, nvmlProcessInfo_v1_t *infos) {
    if (!d || !count) return 2;
    unsigned int n = 0, cap = *count;
    int status = 0;
    const char *p = d->index == 0 ? env("FAKE_NVML_PROCS", "") : "";
    while (*p) {
        unsigned int pid = (unsigned int)strtoul(p, (char **)&p, 10);
        if (pid) {
            if (n < cap && infos) infos[n] = (nvmlProcessInfo_v1_t){pid, 1ULL << 30};
            else status = NVML_ERROR_INSUFFICIENT_SIZE;
            n++;
        }
        if (*p == ',') p++;
        else if (*p) break;
    }
    *count = n;
    return status;
}
