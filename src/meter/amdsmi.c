/* amdsmi.c — the `amdsmi` meter: AMD GPUs (Instinct MI200/MI300, Radeon) through ROCm's
 * amd-smi library, dlopen'ed at run time ($ETOK_AMDSMI_LIB, else "libamd_smi.so", then
 * "/opt/rocm/lib/libamd_smi.so"); no link-time dependency and no amdsmi.h.
 *
 * amdsmi_init(AMDSMI_INIT_AMD_GPUS), then every processor of every socket
 * (amdsmi_get_socket_handles / amdsmi_get_processor_handles) is one GPU, numbered gpu0.. in
 * that order. Per GPU: the energy accumulator of amdsmi_get_energy_count, a 64-bit count whose
 * unit is counter_resolution µJ (15.3 µJ on current parts), read at open and stated as the
 * domain's scale and resolution. A GPU without the counter is listed by `etok meters` with
 * the reason and not metered: there is no power fallback, because the only power entry point
 * (amdsmi_get_power_info) takes a struct whose layout changed between ROCm releases.
 * Lost GPUs: amd-smi has no GPU_IS_LOST status; NOT_FOUND, FILE_ERROR and FILE_NOT_FOUND on a
 * GPU that was read before mean its sysfs node is gone (unbound / fell off the bus) and read
 * as ETOK_READ_LOST; the sampler records a "device_lost" fault and the run continues.
 * Owns: library loading, per-GPU domains. ABI subset: src/meter/amdsmi_abi.h. */
#include <dlfcn.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/driver.h"

#include "meter/amdsmi_abi.h"

#define AMDSMI_MAX_GPUS 32
#define AMDSMI_DEFAULT_LIB "libamd_smi.so"
#define AMDSMI_ROCM_LIB "/opt/rocm/lib/libamd_smi.so"

typedef struct {
    void *lib;
    char path[256]; /* the library that was loaded */
    amdsmi_status_t (*init)(uint64_t);
    amdsmi_status_t (*shutdown)(void);
    amdsmi_status_t (*errstr)(amdsmi_status_t, const char **);
    amdsmi_status_t (*sockets)(uint32_t *, amdsmi_socket_handle *);
    amdsmi_status_t (*procs)(amdsmi_socket_handle, uint32_t *, amdsmi_processor_handle *);
    amdsmi_status_t (*energy)(amdsmi_processor_handle, uint64_t *, float *, uint64_t *);
    amdsmi_status_t (*bdf)(amdsmi_processor_handle, uint64_t *);
    int inited;
    unsigned n_gpus;
    amdsmi_processor_handle dev[AMDSMI_MAX_GPUS];
} amdsmi_lib;

static const char *estr(const amdsmi_lib *L, amdsmi_status_t r) {
    if (L->errstr) {
        const char *s = NULL;
        if (L->errstr(r, &s) == AMDSMI_STATUS_SUCCESS && s) return s;
    }
    switch (r) {
    case AMDSMI_STATUS_SUCCESS: return "success";
    case AMDSMI_STATUS_INVAL: return "invalid parameters";
    case AMDSMI_STATUS_NOT_SUPPORTED: return "not supported";
    case AMDSMI_STATUS_NO_PERM: return "permission denied";
    case AMDSMI_STATUS_FILE_ERROR: return "problem accessing a file";
    case AMDSMI_STATUS_INIT_ERROR: return "initialization error";
    case AMDSMI_STATUS_NOT_FOUND: return "device not found";
    case AMDSMI_STATUS_NOT_INIT: return "device not initialized";
    case AMDSMI_STATUS_DRIVER_NOT_LOADED: return "driver not loaded";
    case AMDSMI_STATUS_FILE_NOT_FOUND: return "file or directory not found";
    default: return "unknown amd-smi error";
    }
}

/* The GPU is gone (see the top comment). */
static int status_lost(amdsmi_status_t r) {
    return r == AMDSMI_STATUS_NOT_FOUND || r == AMDSMI_STATUS_FILE_ERROR || r == AMDSMI_STATUS_FILE_NOT_FOUND;
}

/* dlopen the first candidate that loads; why names every path tried. */
static int lib_open(amdsmi_lib *L, char *why, size_t cap) {
    const char *env = getenv("ETOK_AMDSMI_LIB");
    const char *cand[2];
    int n = 0;
    if (env && *env) {
        cand[n++] = env;
    } else {
        cand[n++] = AMDSMI_DEFAULT_LIB;
        cand[n++] = AMDSMI_ROCM_LIB;
    }
    const char *last = "";
    for (int i = 0; i < n; i++) {
        L->lib = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
        if (L->lib) {
            etok_meter_why(L->path, sizeof L->path, "%s", cand[i]);
            return 0;
        }
        const char *e = dlerror();
        last = e ? e : "";
    }
    if (env && *env)
        etok_meter_why(why, cap, "missing: cannot load ETOK_AMDSMI_LIB=%s (no ROCm amd-smi library there): %s", env, last);
    else
        etok_meter_why(why, cap,
                       "missing: cannot load " AMDSMI_DEFAULT_LIB " or " AMDSMI_ROCM_LIB
                       " (no ROCm amd-smi here; install amd-smi-lib or set ETOK_AMDSMI_LIB to libamd_smi.so): %s",
                       last);
    return -1;
}

/* Load, initialise and enumerate. -1 with why (prefixed "missing:"/"no driver:"/"permission:"). */
static int lib_load(amdsmi_lib *L, char *why, size_t cap) {
    memset(L, 0, sizeof *L);
    if (lib_open(L, why, cap) != 0) return -1;
#define SYM(field, nm) *(void **)(&L->field) = dlsym(L->lib, nm)
    SYM(init, "amdsmi_init");
    SYM(shutdown, "amdsmi_shut_down");
    SYM(errstr, "amdsmi_status_code_to_string");
    SYM(sockets, "amdsmi_get_socket_handles");
    SYM(procs, "amdsmi_get_processor_handles");
    SYM(energy, "amdsmi_get_energy_count");
    SYM(bdf, "amdsmi_get_gpu_bdf_id");
#undef SYM
    if (!L->init || !L->shutdown || !L->sockets || !L->procs || !L->energy) {
        etok_meter_why(why, cap,
                       "no driver: %s lacks amdsmi_init/amdsmi_get_socket_handles/amdsmi_get_processor_handles/"
                       "amdsmi_get_energy_count (amd-smi too old?)",
                       L->path);
        return -1;
    }
    amdsmi_status_t r = L->init(AMDSMI_INIT_AMD_GPUS);
    if (r != AMDSMI_STATUS_SUCCESS) {
        etok_meter_why(why, cap, "%s: amdsmi_init(AMDSMI_INIT_AMD_GPUS) failed: %s (%u)",
                       r == AMDSMI_STATUS_NO_PERM ? "permission" : "no driver", estr(L, r), r);
        return -1;
    }
    L->inited = 1;
    uint32_t ns = 0;
    r = L->sockets(&ns, NULL);
    if (r != AMDSMI_STATUS_SUCCESS) {
        etok_meter_why(why, cap, "no driver: amdsmi_get_socket_handles: %s", estr(L, r));
        return -1;
    }
    if (ns > AMDSMI_MAX_GPUS) ns = AMDSMI_MAX_GPUS;
    amdsmi_socket_handle sock[AMDSMI_MAX_GPUS];
    if (ns > 0 && (r = L->sockets(&ns, sock)) != AMDSMI_STATUS_SUCCESS) {
        etok_meter_why(why, cap, "no driver: amdsmi_get_socket_handles: %s", estr(L, r));
        return -1;
    }
    if (ns > AMDSMI_MAX_GPUS) ns = AMDSMI_MAX_GPUS;
    for (uint32_t s = 0; s < ns && L->n_gpus < AMDSMI_MAX_GPUS; s++) {
        uint32_t room = AMDSMI_MAX_GPUS - L->n_gpus;
        uint32_t np = 0;
        r = L->procs(sock[s], &np, NULL);
        if (r != AMDSMI_STATUS_SUCCESS) {
            etok_meter_why(why, cap, "no driver: amdsmi_get_processor_handles(socket %u): %s", s, estr(L, r));
            return -1;
        }
        if (np == 0) continue;
        /* ask for all of them (the library fills at most np), keep what fits */
        amdsmi_processor_handle h[AMDSMI_MAX_GPUS];
        if (np > AMDSMI_MAX_GPUS) np = AMDSMI_MAX_GPUS;
        r = L->procs(sock[s], &np, h);
        if (r != AMDSMI_STATUS_SUCCESS) {
            etok_meter_why(why, cap, "no driver: amdsmi_get_processor_handles(socket %u): %s", s, estr(L, r));
            return -1;
        }
        if (np > AMDSMI_MAX_GPUS) np = AMDSMI_MAX_GPUS;
        for (uint32_t p = 0; p < np && p < room; p++) L->dev[L->n_gpus++] = h[p];
    }
    if (L->n_gpus == 0) {
        etok_meter_why(why, cap, "missing: amd-smi (%s) reports no AMD GPU", L->path);
        return -1;
    }
    return 0;
}

static void lib_unload(amdsmi_lib *L) {
    if (L->inited && L->shutdown) L->shutdown();
    if (L->lib) dlclose(L->lib);
    memset(L, 0, sizeof *L);
}

/* ival of a domain: the GPU index. */
typedef struct {
    amdsmi_lib L;
    float resolution_uj[AMDSMI_MAX_GPUS]; /* as read at open */
} amdsmi_state;

/* One GPU's counter: 0 and its resolution (µJ per count), or -1 with why. */
static int probe_gpu(amdsmi_lib *L, unsigned g, float *res_uj, char *why, size_t cap) {
    uint64_t acc = 0, ts = 0;
    float res = 0;
    amdsmi_status_t r = L->energy(L->dev[g], &acc, &res, &ts);
    if (r != AMDSMI_STATUS_SUCCESS) {
        etok_meter_why(why, cap, "no energy counter: %s", estr(L, r));
        return -1;
    }
    if (!(res > 0) || !isfinite(res)) {
        etok_meter_why(why, cap, "no energy counter: counter_resolution %g uJ is not usable", (double)res);
        return -1;
    }
    *res_uj = res;
    return 0;
}

static void gpu_label(amdsmi_lib *L, unsigned g, char *buf, size_t cap) {
    uint64_t b = 0;
    if (L->bdf && L->bdf(L->dev[g], &b) == AMDSMI_STATUS_SUCCESS)
        etok_meter_why(buf, cap, "%04x:%02x:%02x.%x", (unsigned)(b >> 32), (unsigned)((b >> 8) & 0xff),
                       (unsigned)((b >> 3) & 0x1f), (unsigned)(b & 0x7));
    else
        etok_meter_why(buf, cap, "AMD GPU %u", g);
}

/* Fill dom with one counter domain per GPU that has one; skipped GPUs are described in
 * skipped (may be NULL). */
static int describe(amdsmi_state *S, etok_meter_domain *dom, int cap, char *skipped, size_t skipped_cap) {
    amdsmi_lib *L = &S->L;
    int n = 0;
    for (unsigned g = 0; g < L->n_gpus && n < cap; g++) {
        char label[64], why[160];
        gpu_label(L, g, label, sizeof label);
        float res;
        if (probe_gpu(L, g, &res, why, sizeof why) != 0) {
            if (skipped) {
                size_t l = strlen(skipped);
                etok_meter_why(skipped + l, skipped_cap - l, "%sgpu%u[%s, %s]", l ? "," : "", g, label, why);
            }
            continue;
        }
        S->resolution_uj[g] = res;
        etok_meter_domain *d = &dom[n++];
        memset(d, 0, sizeof *d);
        d->pair = -1;
        etok_trace *t = &d->info;
        etok_meter_why(t->meter, sizeof t->meter, "amdsmi");
        etok_meter_why(t->domain, sizeof t->domain, "gpu%u", g);
        t->source = ETOK_SOURCE_COUNTER;
        t->boundary = ETOK_BOUNDARY_DEVICE;
        etok_meter_why(t->raw_unit, sizeof t->raw_unit, "count");
        t->scale_to_si = (double)res * 1e-6;
        t->resolution_si = (double)res * 1e-6;
        /* 64-bit accumulator: at 15.3 µJ a count it wraps after 2.8e14 J (centuries); a
         * step back is therefore a reset (driver reload, GPU reset) unless it fits a wrap */
        t->wrap_range_raw = 18446744073709551616.0; /* 2^64 */
        t->update_period_s = 0.01; /* SMU metrics table refresh: ~1 ms on MI300, up to 10 ms */
        t->summable = 1;
        d->ival = (int)g;
        etok_meter_why(d->path, sizeof d->path, "%s", label);
    }
    return n;
}

static void amdsmi_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    (void)cfg;
    amdsmi_state *S = calloc(1, sizeof *S);
    etok_meter_domain *dom = calloc(ETOK_METER_MAX_DOMAINS, sizeof *dom);
    if (!S || !dom) {
        free(S);
        free(dom);
        etok_meter_why(st->why, sizeof st->why, "no driver: out of memory");
        return;
    }
    if (lib_load(&S->L, st->why, sizeof st->why) != 0) {
        lib_unload(&S->L);
        free(S);
        free(dom);
        return;
    }
    char skipped[sizeof st->domains];
    skipped[0] = '\0';
    int n = describe(S, dom, ETOK_METER_MAX_DOMAINS, skipped, sizeof skipped);
    double res_max = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(st->domains);
        const etok_trace *t = &dom[i].info;
        if (t->resolution_si > res_max) res_max = t->resolution_si;
        etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s[%s, energy counter %.3g uJ]", l ? "," : "",
                       t->domain, dom[i].path, t->resolution_si * 1e6);
    }
    if (skipped[0]) {
        size_t l = strlen(st->domains);
        etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s", l ? "," : "", skipped);
    }
    st->source = ETOK_SOURCE_COUNTER;
    st->resolution_si = res_max;
    st->wrap_range_j = n ? 18446744073709551616.0 * res_max : 0;
    st->available = n > 0;
    if (!n)
        etok_meter_why(st->why, sizeof st->why,
                       "missing: no AMD GPU here has an energy counter (%s); etok does not read amd-smi power", skipped);
    lib_unload(&S->L);
    free(S);
    free(dom);
}

static int amdsmi_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    (void)cfg;
    amdsmi_state *S = calloc(1, sizeof *S);
    if (!S) return etok_errc(err, ETOK_EXIT_FAIL, "amdsmi: out of memory");
    char why[512];
    if (lib_load(&S->L, why, sizeof why) != 0) {
        lib_unload(&S->L);
        free(S);
        return etok_errc(err, !strncmp(why, "permission", 10) ? ETOK_EXIT_PERMISSION : ETOK_EXIT_FAIL, "amdsmi: %s", why);
    }
    char skipped[512] = "";
    int n = describe(S, mi->dom, ETOK_METER_MAX_DOMAINS, skipped, sizeof skipped);
    if (n == 0) {
        lib_unload(&S->L);
        free(S);
        return etok_errc(err, ETOK_EXIT_FAIL, "amdsmi: no AMD GPU here has an energy counter (%s)", skipped);
    }
    mi->n_domains = n;
    mi->priv = S;
    return 0;
}

static int amdsmi_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    amdsmi_state *S = mi->priv;
    amdsmi_lib *L = &S->L;
    unsigned g = (unsigned)mi->dom[d].ival;
    uint64_t acc = 0, ts = 0;
    float res = 0;
    amdsmi_status_t r = L->energy(L->dev[g], &acc, &res, &ts);
    if (r != AMDSMI_STATUS_SUCCESS) {
        etok_errc(err, ETOK_EXIT_FAIL, "amdsmi: gpu%u: amdsmi_get_energy_count: %s%s", g, estr(L, r),
                  status_lost(r) ? " (GPU lost: its device node is gone)" : "");
        return status_lost(r) ? ETOK_READ_LOST : ETOK_READ_ERROR;
    }
    /* the unit of every reading must be the one the domain states */
    if (fabs((double)res - (double)S->resolution_uj[g]) > 1e-6 * (double)S->resolution_uj[g]) {
        etok_errc(err, ETOK_EXIT_FAIL, "amdsmi: gpu%u: counter_resolution changed from %g to %g uJ; reading dropped", g,
                  (double)S->resolution_uj[g], (double)res);
        return ETOK_READ_ERROR;
    }
    *raw = (double)acc; /* exact below 2^53 counts (1.4e11 J at 15.3 uJ) */
    return ETOK_READ_OK;
}

static void amdsmi_close(etok_meter_inst *mi) {
    amdsmi_state *S = mi->priv;
    if (!S) return;
    lib_unload(&S->L);
    free(S);
    mi->priv = NULL;
}

const etok_meter_driver etok_meter_amdsmi = {
    .name = "amdsmi",
    .source = ETOK_SOURCE_COUNTER,
    .boundary = ETOK_BOUNDARY_DEVICE,
    .auto_open = 1,
    .detect = amdsmi_detect,
    .open = amdsmi_open,
    .read = amdsmi_read,
    .collect = NULL,
    .close = amdsmi_close,
};
