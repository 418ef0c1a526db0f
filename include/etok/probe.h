/* probe.h — `etok probe`: this machine's own ceilings, measured and cached.
 *
 * Peak compute: an FMA kernel (independent f32 multiply-add chains, AVX2/FMA when the CPU
 * has it) on every online core, and the 8-bit integer dot path (u8 x s8 -> s32 multiply-
 * accumulate, the scheme the engine's quantised kernels use; 2 ops per MAC). Memory
 * bandwidth: a STREAM-like triad a = b + s*c over arrays much larger than the last-level
 * cache, on every core, counting 24 bytes per element (STREAM convention). Each figure is the
 * best of a few repeats. The engine's matmuls run on the int8 path, so the profile's
 * `peak_flops` (what MFU divides by) is the int8 rate; the f32 rate is kept beside it.
 *
 * The profile is cached as JSON at $XDG_CACHE_HOME/etok/profile-<host>.json (default
 * ~/.cache/etok/) and reused when present unless forced. Not here: the TPF (tpf.c). */
#ifndef ETOK_PROBE_H
#define ETOK_PROBE_H

#include "etok/record.h"
#include "etok/util.h"

typedef struct {
    etok_hw_profile hw;        /* name = host/CPU, peak_flops = int8 rate, mem_bw_bps, limit */
    double peak_flops_f32;     /* FLOP/s */
    double peak_ops_int8;      /* op/s (2 per 8-bit MAC) */
    int threads;
    char isa[16];              /* "avx2+fma" or "scalar" */
    char host[128], cpu_model[128];
    double measured_at_wall_s;
    double probe_duration_s;
} etok_probe_profile;

typedef struct {
    int threads;          /* 0 = online cores */
    double kernel_s;      /* seconds per compute repeat; 0 = 0.25 */
    int repeats;          /* 0 = 2 */
    size_t triad_bytes;   /* total bytes of the three arrays; 0 = max(4 x LLC, 128 MiB) */
} etok_probe_opts;

/* Measure now (takes a few seconds with defaults). */
int etok_probe_measure(const etok_probe_opts *opts, etok_probe_profile *out, etok_err *err);

/* The default cache path (malloc'd): $XDG_CACHE_HOME/etok/profile-<host>.json, else
 * $HOME/.cache/etok/profile-<host>.json. NULL when neither variable is set. */
char *etok_probe_default_path(void);

int etok_probe_save(const etok_probe_profile *p, const char *path, etok_err *err);
int etok_probe_load(etok_probe_profile *p, const char *path, etok_err *err);

/* Load the profile at path (NULL = default path) or, when it is absent or force is set,
 * measure and save it there. *measured says which happened. */
int etok_probe_get(const char *path, int force, const etok_probe_opts *opts, etok_probe_profile *out,
                   int *measured, etok_err *err);

#endif
