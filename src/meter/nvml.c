/* nvml.c — the `nvml` meter: NVIDIA GPUs through libnvidia-ml, dlopen'ed at run time
 * ($ETOK_NVML_LIB or "libnvidia-ml.so.1"); no link-time dependency and no nvml.h.
 *
 * Per GPU: the total-energy counter (mJ) where the device has it, else sampled power (mW).
 * Power comes from the instantaneous field NVML_FI_DEV_POWER_INSTANT where the driver has it,
 * else nvmlDeviceGetPowerUsage (a ~1 s average on recent GPUs); trace.power_field says which.
 * When the counter exists the power trace is kept too (not summed) for the cross-check.
 * A GPU that falls off the bus (NVML_ERROR_GPU_IS_LOST) reads as ETOK_READ_LOST; the sampler
 * records a "device_lost" fault and the run continues.
 * Owns: the few NVML declarations it needs, library loading, per-GPU domains. */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "meter/driver.h"

#include "meter/nvml_abi.h"
#include "meter/nvml_plimit.h"

#define NVML_MAX_GPUS 16

typedef struct {
    void *lib;
    nvmlReturn_t (*init)(void);
    nvmlReturn_t (*shutdown)(void);
    nvmlReturn_t (*count)(unsigned int *);
    nvmlReturn_t (*handle)(unsigned int, nvmlDevice_t *);
    nvmlReturn_t (*name)(nvmlDevice_t, char *, unsigned int);
    nvmlReturn_t (*energy)(nvmlDevice_t, unsigned long long *);
    nvmlReturn_t (*power)(nvmlDevice_t, unsigned int *);
    nvmlReturn_t (*fields)(nvmlDevice_t, int, nvmlFieldValue_t *);
    nvmlReturn_t (*limit)(nvmlDevice_t, unsigned int *);
    nvmlReturn_t (*util)(nvmlDevice_t, nvmlUtilization_t *);
    nvmlReturn_t (*pm_get)(nvmlDevice_t, unsigned int *);                 /* the power-limit lever */
    nvmlReturn_t (*pm_set)(nvmlDevice_t, unsigned int);
    nvmlReturn_t (*pm_range)(nvmlDevice_t, unsigned int *, unsigned int *);
    nvmlReturn_t (*procs)(nvmlDevice_t, unsigned int *, nvmlProcessInfo_v1_t *); /* running compute processes */
    const char *(*errstr)(nvmlReturn_t);
    int inited;
    unsigned int n_gpus;
    nvmlDevice_t dev[NVML_MAX_GPUS];
} nvml_lib;

static const char *lib_path(void) {
    const char *p = getenv("ETOK_NVML_LIB");
    return (p && *p) ? p : "libnvidia-ml.so.1";
}

static const char *estr(const nvml_lib *L, nvmlReturn_t r) {
    static const char *const names[] = {"success", "uninitialized", "invalid argument", "not supported",
                                        "no permission", "already initialized", "not found",
                                        "insufficient size", "insufficient power", "driver not loaded",
                                        "timeout", "irq issue", "library not found", "function not found",
                                        "corrupted inforom", "GPU is lost"};
    if (L->errstr) {
        const char *s = L->errstr(r);
        if (s) return s;
    }
    return r >= 0 && r < (int)(sizeof names / sizeof names[0]) ? names[r] : "unknown NVML error";
}

/* Load and initialise. -1 with why (prefixed "missing:"/"no driver:"/"permission:"). */
static int lib_load(nvml_lib *L, char *why, size_t cap) {
    memset(L, 0, sizeof *L);
    L->lib = dlopen(lib_path(), RTLD_NOW | RTLD_LOCAL);
    if (!L->lib) {
        etok_meter_why(why, cap, "missing: cannot load %s (no NVIDIA driver here): %s", lib_path(), dlerror());
        return -1;
    }
#define SYM(field, nm) *(void **)(&L->field) = dlsym(L->lib, nm)
    SYM(init, "nvmlInit_v2");
    SYM(shutdown, "nvmlShutdown");
    SYM(count, "nvmlDeviceGetCount_v2");
    SYM(handle, "nvmlDeviceGetHandleByIndex_v2");
    SYM(name, "nvmlDeviceGetName");
    SYM(energy, "nvmlDeviceGetTotalEnergyConsumption");
    SYM(power, "nvmlDeviceGetPowerUsage");
    SYM(fields, "nvmlDeviceGetFieldValues");
    SYM(limit, "nvmlDeviceGetEnforcedPowerLimit");
    SYM(util, "nvmlDeviceGetUtilizationRates");
    SYM(errstr, "nvmlErrorString");
    SYM(pm_get, "nvmlDeviceGetPowerManagementLimit");
    SYM(pm_set, "nvmlDeviceSetPowerManagementLimit");
    SYM(pm_range, "nvmlDeviceGetPowerManagementLimitConstraints");
    SYM(procs, "nvmlDeviceGetComputeRunningProcesses");
#undef SYM
    if (!L->init || !L->shutdown || !L->count || !L->handle || !L->power) {
        etok_meter_why(why, cap, "no driver: %s lacks nvmlInit_v2/nvmlDeviceGetCount_v2/nvmlDeviceGetPowerUsage (driver too old?)", lib_path());
        dlclose(L->lib);
        L->lib = NULL;
        return -1;
    }
    nvmlReturn_t r = L->init();
    if (r != NVML_SUCCESS) {
        etok_meter_why(why, cap, "%s: nvmlInit_v2 failed: %s", r == NVML_ERROR_NO_PERMISSION ? "permission" : "no driver", estr(L, r));
        dlclose(L->lib);
        L->lib = NULL;
        return -1;
    }
    L->inited = 1;
    unsigned int n = 0;
    r = L->count(&n);
    if (r != NVML_SUCCESS || n == 0) {
        etok_meter_why(why, cap, "missing: NVML reports no GPU (%s)", r == NVML_SUCCESS ? "count 0" : estr(L, r));
        return -1;
    }
    if (n > NVML_MAX_GPUS) n = NVML_MAX_GPUS;
    for (unsigned int i = 0; i < n; i++) {
        r = L->handle(i, &L->dev[i]);
        if (r != NVML_SUCCESS) {
            etok_meter_why(why, cap, "no driver: nvmlDeviceGetHandleByIndex_v2(%u): %s", i, estr(L, r));
            return -1;
        }
    }
    L->n_gpus = n;
    return 0;
}

static void lib_unload(nvml_lib *L) {
    if (L->inited && L->shutdown) L->shutdown();
    if (L->lib) dlclose(L->lib);
    memset(L, 0, sizeof *L);
}

/* Instantaneous power in mW from the field API; -1 if the driver does not have it. */
static int instant_mw(nvml_lib *L, nvmlDevice_t dev, double *mw, nvmlReturn_t *ret) {
    *ret = NVML_ERROR_NOT_SUPPORTED;
    if (!L->fields) return -1;
    nvmlFieldValue_t fv;
    memset(&fv, 0, sizeof fv);
    fv.fieldId = NVML_FI_DEV_POWER_INSTANT;
    nvmlReturn_t r = L->fields(dev, 1, &fv);
    *ret = r != NVML_SUCCESS ? r : fv.nvmlReturn;
    if (*ret != NVML_SUCCESS) return -1;
    switch (fv.valueType) {
    case 0: *mw = fv.value.dVal; break;
    case 1: *mw = fv.value.uiVal; break;
    case 2: *mw = (double)fv.value.ulVal; break;
    case 3: *mw = (double)fv.value.ullVal; break;
    case 4: *mw = (double)fv.value.sllVal; break;
    case 5: *mw = fv.value.siVal; break;
    default: return -1;
    }
    return 0;
}

/* ival of a domain: gpu index * 2 + (0 energy counter, 1 power). ptr: "instant" flag. */
typedef struct {
    nvml_lib L;
    int instant[NVML_MAX_GPUS];
} nvml_state;

static int describe(nvml_state *S, etok_meter_domain *dom, int cap, double *limit_w_total) {
    nvml_lib *L = &S->L;
    int n = 0;
    *limit_w_total = 0;
    for (unsigned int g = 0; g < L->n_gpus && n + 2 <= cap; g++) {
        char name[96] = "";
        if (L->name) L->name(L->dev[g], name, sizeof name);
        unsigned long long mj;
        int has_energy = L->energy && L->energy(L->dev[g], &mj) == NVML_SUCCESS;
        double mw;
        nvmlReturn_t fr;
        S->instant[g] = instant_mw(L, L->dev[g], &mw, &fr) == 0;
        unsigned int lim = 0;
        if (L->limit && L->limit(L->dev[g], &lim) == NVML_SUCCESS) *limit_w_total += lim / 1000.0;
        int energy_idx = -1;
        if (has_energy) {
            etok_meter_domain *d = &dom[n];
            memset(d, 0, sizeof *d);
            energy_idx = n++;
            etok_trace *t = &d->info;
            etok_meter_why(t->meter, sizeof t->meter, "nvml");
            etok_meter_why(t->domain, sizeof t->domain, "gpu%u", g);
            t->source = ETOK_SOURCE_COUNTER;
            t->boundary = ETOK_BOUNDARY_DEVICE;
            etok_meter_why(t->raw_unit, sizeof t->raw_unit, "mJ");
            t->scale_to_si = 1e-3;
            t->wrap_range_raw = 0; /* 64-bit mJ since driver load */
            t->resolution_si = 1e-3;
            t->update_period_s = 0.1; /* the energy counter refreshes about every 100 ms */
            t->summable = 1;
            d->ival = (int)g * 2;
            etok_meter_why(d->path, sizeof d->path, "%s", name);
        }
        etok_meter_domain *d = &dom[n];
        memset(d, 0, sizeof *d);
        d->pair = -1;
        etok_trace *t = &d->info;
        etok_meter_why(t->meter, sizeof t->meter, "nvml");
        etok_meter_why(t->domain, sizeof t->domain, has_energy ? "gpu%u/power" : "gpu%u", g);
        t->source = ETOK_SOURCE_POWER;
        t->boundary = ETOK_BOUNDARY_DEVICE;
        etok_meter_why(t->raw_unit, sizeof t->raw_unit, "mW");
        t->scale_to_si = 1e-3;
        t->resolution_si = 1e-3;
        /* instant: refreshed about every 20-100 ms; average: a 1 s moving average */
        t->update_period_s = S->instant[g] ? 0.1 : 1.0;
        etok_meter_why(t->power_field, sizeof t->power_field, "%s", S->instant[g] ? "instant" : "average_1s");
        t->summable = !has_energy;
        d->ival = (int)g * 2 + 1;
        etok_meter_why(d->path, sizeof d->path, "%s", name);
        if (energy_idx >= 0) dom[energy_idx].pair = n;
        else d->pair = -1;
        n++;
    }
    return n;
}

static void nvml_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    (void)cfg;
    nvml_state *S = calloc(1, sizeof *S);
    etok_meter_domain *dom = calloc(ETOK_METER_MAX_DOMAINS, sizeof *dom);
    if (!S || !dom) { free(S); free(dom); etok_meter_why(st->why, sizeof st->why, "no driver: out of memory"); return; }
    if (lib_load(&S->L, st->why, sizeof st->why) != 0) {
        lib_unload(&S->L);
        free(S); free(dom);
        return;
    }
    double limit_w;
    int n = describe(S, dom, ETOK_METER_MAX_DOMAINS, &limit_w);
    int counters = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(st->domains);
        const etok_trace *t = &dom[i].info;
        counters += t->source == ETOK_SOURCE_COUNTER;
        if (t->source == ETOK_SOURCE_COUNTER) {
            etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s[%s, energy counter]", l ? "," : "", t->domain, dom[i].path);
        } else {
            unsigned g = (unsigned)dom[i].ival / 2;
            nvmlUtilization_t u = {0, 0};
            unsigned int lim = 0;
            int hu = S->L.util && S->L.util(S->L.dev[g], &u) == NVML_SUCCESS;
            int hl = S->L.limit && S->L.limit(S->L.dev[g], &lim) == NVML_SUCCESS;
            char extra[96] = "";
            if (hl) etok_meter_why(extra, sizeof extra, ", limit %.0f W", lim / 1000.0);
            if (hu) etok_meter_why(extra + strlen(extra), sizeof extra - strlen(extra), ", util %u%%", u.gpu);
            etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s[power %s%s]", l ? "," : "", t->domain,
                     t->power_field, extra);
        }
    }
    st->source = counters ? ETOK_SOURCE_COUNTER : ETOK_SOURCE_POWER;
    st->resolution_si = 1e-3;
    st->available = n > 0;
    if (!n) etok_meter_why(st->why, sizeof st->why, "missing: no GPU");
    lib_unload(&S->L);
    free(S);
    free(dom);
}

static int nvml_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    (void)cfg;
    nvml_state *S = calloc(1, sizeof *S);
    if (!S) return etok_errc(err, ETOK_EXIT_FAIL, "nvml: out of memory");
    char why[256];
    if (lib_load(&S->L, why, sizeof why) != 0) {
        lib_unload(&S->L);
        free(S);
        return etok_errc(err, !strncmp(why, "permission", 10) ? ETOK_EXIT_PERMISSION : ETOK_EXIT_FAIL, "nvml: %s", why);
    }
    double limit_w;
    mi->n_domains = describe(S, mi->dom, ETOK_METER_MAX_DOMAINS, &limit_w);
    mi->priv = S;
    return 0;
}

static int nvml_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    nvml_state *S = mi->priv;
    nvml_lib *L = &S->L;
    unsigned g = (unsigned)mi->dom[d].ival / 2;
    int is_power = mi->dom[d].ival % 2;
    nvmlReturn_t r;
    if (!is_power) {
        unsigned long long mj = 0;
        r = L->energy(L->dev[g], &mj);
        if (r == NVML_SUCCESS) { *raw = (double)mj; return ETOK_READ_OK; }
    } else if (S->instant[g]) {
        double mw;
        if (instant_mw(L, L->dev[g], &mw, &r) == 0) { *raw = mw; return ETOK_READ_OK; }
    } else {
        unsigned int mw = 0;
        r = L->power(L->dev[g], &mw);
        if (r == NVML_SUCCESS) { *raw = mw; return ETOK_READ_OK; }
    }
    etok_errc(err, ETOK_EXIT_FAIL, "nvml: gpu%u: %s", g, estr(L, r));
    return r == NVML_ERROR_GPU_IS_LOST ? ETOK_READ_LOST : ETOK_READ_ERROR;
}

static void nvml_close(etok_meter_inst *mi) {
    nvml_state *S = mi->priv;
    if (!S) return;
    lib_unload(&S->L);
    free(S);
    mi->priv = NULL;
}

double etok_nvml_power_limit_w(etok_meter_inst *mi) {
    nvml_state *S = mi->priv;
    if (!S || !S->L.limit) return 0;
    double w = 0;
    for (unsigned g = 0; g < S->L.n_gpus; g++) {
        unsigned int lim = 0;
        if (S->L.limit(S->L.dev[g], &lim) == NVML_SUCCESS) w += lim / 1000.0;
    }
    return w;
}

const etok_meter_driver etok_meter_nvml = {
    .name = "nvml",
    .source = ETOK_SOURCE_COUNTER,
    .boundary = ETOK_BOUNDARY_DEVICE,
    .auto_open = 1,
    .detect = nvml_detect,
    .open = nvml_open,
    .read = nvml_read,
    .collect = NULL,
    .close = nvml_close,
};

/* ---- other processes on the GPUs (issue 17; meter.h) ---- */

int etok_nvml_gpu_processes(long exclude_pid, long exclude_pgrp, char *out, size_t cap) {
    if (cap) out[0] = '\0';
    nvml_lib L;
    char why[256];
    if (lib_load(&L, why, sizeof why) != 0 || !L.procs) {
        lib_unload(&L);
        return -1;
    }
    int n = 0;
    size_t k = 0;
    for (unsigned g = 0; g < L.n_gpus; g++) {
        nvmlProcessInfo_v1_t info[64];
        unsigned int cnt = 64;
        nvmlReturn_t r = L.procs(L.dev[g], &cnt, info);
        if (r != NVML_SUCCESS && r != NVML_ERROR_INSUFFICIENT_SIZE) continue;
        if (cnt > 64) cnt = 64;
        for (unsigned i = 0; i < cnt; i++) {
            long pid = (long)info[i].pid;
            if (pid == exclude_pid) continue;
            if (exclude_pgrp > 0) { /* the measured command's own processes are not "another" */
                char path[64], *t;
                snprintf(path, sizeof path, "%s/%ld/stat", etok_proc_root(), pid);
                if ((t = etok_read_file(path, NULL)) != NULL) {
                    const char *p = strrchr(t, ')');
                    long pg = -1;
                    int own = p && sscanf(p + 1, " %*c %*d %ld", &pg) == 1 && pg == exclude_pgrp;
                    free(t);
                    if (own) continue;
                }
            }
            n++;
            if (k < cap)
                k += (size_t)snprintf(out + k, cap - k, "%sgpu%u pid %ld (%.0f MiB)", k ? ", " : "", g, pid,
                                      info[i].usedGpuMemory / 1048576.0);
        }
    }
    lib_unload(&L);
    return n;
}

/* ---- the GPU power-limit lever (nvml_plimit.h) ---- */

struct etok_nvml_plimit {
    nvml_lib L;
    unsigned int prev_mw[NVML_MAX_GPUS];
    int set[NVML_MAX_GPUS]; /* 1 = this GPU's limit was changed and must be restored */
    unsigned int new_mw;
    double enforced_s; /* seconds from the set until every GPU enforced it; -1 = not within the wait */
};

/* How long etok_nvml_plimit_set waits for the enforced limit to follow the set. An H200 took
 * ~0.1 s (docs/LEVERS.md); a run started before that would run its first moments uncapped. */
#define PLIMIT_ENFORCE_WAIT_S 2.0
#define PLIMIT_POLL_NS 5000000L

/* Poll nvmlDeviceGetEnforcedPowerLimit until every GPU reads the limit just set. Returns the
 * seconds it took, or -1 after PLIMIT_ENFORCE_WAIT_S with one stderr line per GPU that still
 * reads another limit (the enforced limit may also be lowered by something else, e.g. a
 * board power brake: the run goes on, and says so). 0 when NVML has no enforced-limit call. */
static double plimit_wait_enforced(etok_nvml_plimit *p, double t_set) {
    if (!p->L.limit) return 0;
    unsigned int mw[NVML_MAX_GPUS] = {0};
    for (;;) {
        int all = 1;
        for (unsigned int i = 0; i < p->L.n_gpus; i++)
            if (p->L.limit(p->L.dev[i], &mw[i]) != NVML_SUCCESS || mw[i] != p->new_mw) all = 0;
        const double t = etok_mono_s() - t_set;
        if (all) return t;
        if (t >= PLIMIT_ENFORCE_WAIT_S) break;
        nanosleep(&(struct timespec){0, PLIMIT_POLL_NS}, NULL);
    }
    for (unsigned int i = 0; i < p->L.n_gpus; i++)
        if (mw[i] != p->new_mw)
            fprintf(stderr,
                    "etok: warning: GPU %u still enforces %.1f W %.1f s after its limit was set to %.1f W; the run "
                    "starts anyway (recorded as gpu_power_limit_enforced_s: null)\n",
                    i, mw[i] / 1000.0, PLIMIT_ENFORCE_WAIT_S, p->new_mw / 1000.0);
    return -1;
}

static void plimit_undo(etok_nvml_plimit *p) {
    for (int i = (int)p->L.n_gpus - 1; i >= 0; i--)
        if (p->set[i]) {
            (void)p->L.pm_set(p->L.dev[i], p->prev_mw[i]);
            p->set[i] = 0;
        }
}

etok_nvml_plimit *etok_nvml_plimit_set(double watts, etok_err *err) {
    etok_nvml_plimit *p = calloc(1, sizeof *p);
    if (!p) {
        etok_errc(err, ETOK_EXIT_FAIL, "--gpu-power-limit: out of memory");
        return NULL;
    }
    char why[512];
    if (lib_load(&p->L, why, sizeof why)) {
        etok_errc(err, ETOK_EXIT_USAGE, "--gpu-power-limit: not available on this machine: %s", why);
        goto fail;
    }
    if (!p->L.pm_get || !p->L.pm_set || !p->L.pm_range) {
        etok_errc(err, ETOK_EXIT_USAGE,
                  "--gpu-power-limit: not available on this machine: %s lacks nvmlDevice{Get,Set}PowerManagementLimit",
                  lib_path());
        goto fail;
    }
    p->new_mw = (unsigned int)(watts * 1000.0 + 0.5);
    /* every GPU checked before any is changed */
    for (unsigned int i = 0; i < p->L.n_gpus; i++) {
        unsigned int lo = 0, hi = 0;
        nvmlReturn_t r = p->L.pm_range(p->L.dev[i], &lo, &hi);
        if (r == NVML_SUCCESS) r = p->L.pm_get(p->L.dev[i], &p->prev_mw[i]);
        if (r != NVML_SUCCESS) {
            etok_errc(err, ETOK_EXIT_USAGE, "--gpu-power-limit: not available on this machine: GPU %u: %s", i,
                      estr(&p->L, r));
            goto fail;
        }
        if (p->new_mw < lo || p->new_mw > hi) {
            etok_errc(err, ETOK_EXIT_USAGE, "--gpu-power-limit: %g W is outside GPU %u's range %.0f..%.0f W", watts, i,
                      lo / 1000.0, hi / 1000.0);
            goto fail;
        }
    }
    const double t_set = etok_mono_s();
    for (unsigned int i = 0; i < p->L.n_gpus; i++) {
        nvmlReturn_t r = p->L.pm_set(p->L.dev[i], p->new_mw);
        if (r != NVML_SUCCESS) {
            plimit_undo(p);
            etok_errc(err, ETOK_EXIT_USAGE, "--gpu-power-limit: not available on this machine: setting GPU %u: %s%s", i,
                      estr(&p->L, r), r == NVML_ERROR_NO_PERMISSION ? " (needs root)" : "");
            goto fail;
        }
        p->set[i] = 1;
    }
    p->enforced_s = plimit_wait_enforced(p, t_set);
    return p;
fail:
    lib_unload(&p->L);
    free(p);
    return NULL;
}

int etok_nvml_plimit_info(const etok_nvml_plimit *p, double *new_w, double *prev_w, int cap) {
    if (!p) return 0;
    if (new_w) *new_w = p->new_mw / 1000.0;
    for (int i = 0; prev_w && i < (int)p->L.n_gpus && i < cap; i++) prev_w[i] = p->prev_mw[i] / 1000.0;
    return (int)p->L.n_gpus;
}

double etok_nvml_plimit_enforced_s(const etok_nvml_plimit *p) { return p ? p->enforced_s : -1; }

void etok_nvml_plimit_restore(etok_nvml_plimit *p) {
    if (!p) return;
    plimit_undo(p);
    lib_unload(&p->L);
    free(p);
}
