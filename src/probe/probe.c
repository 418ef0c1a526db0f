/* probe.c — measure this machine's peak FLOP/s (f32 FMA, int8 dot) and memory bandwidth
 * (triad), and cache the profile as JSON. Owns the kernels and the cache format
 * (include/etok/probe.h). Does not own: MFU/MBU (analyse/metrics.c), the TPF (tpf.c). */
#include "etok/probe.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define ETOK_PROBE_X86 1
#endif

/* ---- compute kernels: each runs `iters` rounds and returns the operation count ---- */

#define NACC 12

static double fma_scalar(long iters, float seed) {
    float acc[NACC * 8];
    for (int i = 0; i < NACC * 8; i++) acc[i] = seed + (float)i * 1e-3f;
    const float a = 0.999999f, b = 1e-7f;
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC * 8; i++) acc[i] = acc[i] * a + b;
    float s = 0;
    for (int i = 0; i < NACC * 8; i++) s += acc[i];
    return s == 12345.f ? 0 : 2.0 * NACC * 8 * (double)iters;
}

static double int8_scalar(long iters, int seed) {
    int8_t x[64];
    uint8_t y[64];
    for (int i = 0; i < 64; i++) {
        x[i] = (int8_t)(i + seed);
        y[i] = (uint8_t)(3 * i + 1);
    }
    int32_t acc[64] = {0};
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < 64; i++) acc[i] += (int32_t)x[i] * y[i];
    int64_t s = 0;
    for (int i = 0; i < 64; i++) s += acc[i];
    return s == 12345 ? 0 : 2.0 * 64 * (double)iters;
}

#ifdef ETOK_PROBE_X86
__attribute__((target("avx2,fma"))) static double fma_avx2(long iters, float seed) {
    __m256 acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = _mm256_set1_ps(seed + (float)i * 1e-3f);
    const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
    __m256 s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm256_add_ps(s, acc[i]);
    float out[8];
    _mm256_storeu_ps(out, s);
    return out[0] == 12345.f ? 0 : 2.0 * NACC * 8 * (double)iters;
}

/* u8 x s8 pairs -> s16 (maddubs), pairs of s16 -> s32 (madd), accumulate: 32 MACs per step. */
__attribute__((target("avx2,fma"))) static double int8_avx2(long iters, int seed) {
    __m256i acc[NACC];
    for (int i = 0; i < NACC; i++) acc[i] = _mm256_set1_epi32(seed + i);
    const __m256i x = _mm256_set1_epi8(3), y = _mm256_set1_epi8(-2), ones = _mm256_set1_epi16(1);
    for (long it = 0; it < iters; it++)
        for (int i = 0; i < NACC; i++) {
            __m256i p = _mm256_maddubs_epi16(x, _mm256_xor_si256(y, acc[i]));
            acc[i] = _mm256_add_epi32(acc[i], _mm256_madd_epi16(p, ones));
        }
    __m256i s = acc[0];
    for (int i = 1; i < NACC; i++) s = _mm256_add_epi32(s, acc[i]);
    int32_t out[8];
    _mm256_storeu_si256((__m256i *)out, s);
    return out[0] == 12345 ? 0 : 2.0 * 32 * NACC * (double)iters;
}
#endif

static int have_avx2(void) {
#ifdef ETOK_PROBE_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

typedef struct {
    int kind; /* 0 fma, 1 int8, 2 triad */
    int avx2;
    double kernel_s;
    double ops, seconds;
    /* triad */
    double *a, *b, *c;
    size_t n;
    double t_start_s, t_end_s; /* this worker's triad, etok_mono_s() clock */
    pthread_barrier_t *bar;
} worker;

static double kernel_once(const worker *w, long iters) {
    double ops = 0;
#ifdef ETOK_PROBE_X86
    if (w->avx2) return w->kind == 0 ? fma_avx2(iters, 1.0f) : int8_avx2(iters, 1);
#endif
    ops = w->kind == 0 ? fma_scalar(iters, 1.0f) : int8_scalar(iters, 1);
    return ops;
}

static double run_compute(worker *w) {
    /* calibrate on a short run (>= 10 ms), then one timed run of about kernel_s */
    long iters = 1000;
    double t = 0;
    for (;;) {
        double t0 = etok_mono_s();
        w->ops = kernel_once(w, iters); /* kept so the call is not optimised away */
        t = etok_mono_s() - t0;
        if (t >= 0.01 || iters > (1L << 34)) break;
        iters *= 4;
    }
    double scaled = (double)iters * w->kernel_s / (t > 1e-3 ? t : 1e-3);
    iters = scaled > (double)(1L << 40) ? (1L << 40) : (long)scaled + 1;
    double t0 = etok_mono_s();
    w->ops = kernel_once(w, iters);
    w->seconds = etok_mono_s() - t0;
    return w->seconds > 0 ? w->ops / w->seconds : 0;
}

static void *worker_main(void *arg) {
    worker *w = arg;
    if (w->kind == 2) {
        pthread_barrier_wait(w->bar);
        w->t_start_s = etok_mono_s();
        const double s = 3.0;
        for (size_t i = 0; i < w->n; i++) w->a[i] = w->b[i] + s * w->c[i];
        w->t_end_s = etok_mono_s();
        w->seconds = w->t_end_s - w->t_start_s;
        pthread_barrier_wait(w->bar);
    } else {
        pthread_barrier_wait(w->bar);
        run_compute(w);
    }
    return NULL;
}

/* Run `threads` workers of a compute kind; returns total ops/s (sum over threads). */
static double parallel_compute(int kind, int threads, int avx2, double kernel_s) {
    worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    pthread_barrier_t bar;
    double total = 0;
    if (!w || !th || pthread_barrier_init(&bar, NULL, (unsigned)threads)) goto out;
    int started = 0;
    for (int i = 0; i < threads; i++) {
        w[i].kind = kind;
        w[i].avx2 = avx2;
        w[i].kernel_s = kernel_s;
        w[i].bar = &bar;
        if (pthread_create(&th[i], NULL, worker_main, &w[i])) break;
        started++;
    }
    if (started < threads) { /* could not start all: the barrier would never open; run inline */
        for (int i = 0; i < started; i++) pthread_cancel(th[i]);
        total = 0;
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < started; i++)
        if (w[i].seconds > 0) total += w[i].ops / w[i].seconds;
    pthread_barrier_destroy(&bar);
out:
    free(w);
    free(th);
    return total;
}

static double parallel_triad(int threads, double *a, double *b, double *c, size_t n) {
    worker *w = calloc((size_t)threads, sizeof *w);
    pthread_t *th = calloc((size_t)threads, sizeof *th);
    pthread_barrier_t bar;
    double bw = 0;
    if (!w || !th || pthread_barrier_init(&bar, NULL, (unsigned)threads + 1)) goto out;
    size_t per = n / (size_t)threads;
    for (int i = 0; i < threads; i++) {
        w[i].kind = 2;
        w[i].bar = &bar;
        w[i].a = a + per * (size_t)i;
        w[i].b = b + per * (size_t)i;
        w[i].c = c + per * (size_t)i;
        w[i].n = i == threads - 1 ? n - per * (size_t)i : per;
        if (pthread_create(&th[i], NULL, worker_main, &w[i])) {
            /* release the ones already waiting, and give up */
            threads = i;
            break;
        }
    }
    pthread_barrier_wait(&bar);
    pthread_barrier_wait(&bar);
    for (int i = 0; i < threads; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&bar);
    /* the span from the first worker's start to the last one's end, each read by the worker
     * itself: a clock read by this thread after the start barrier came late whenever this thread
     * was descheduled there (the workers already running), which made t too short and the
     * bandwidth absurdly high (seen: > 10 TB/s on a loaded machine) */
    double t_first = INFINITY, t_last = -INFINITY;
    for (int i = 0; i < threads; i++) {
        t_first = fmin(t_first, w[i].t_start_s);
        t_last = fmax(t_last, w[i].t_end_s);
    }
    double t = threads > 0 ? t_last - t_first : 0;
    if (t > 0) bw = 24.0 * (double)n / t;
out:
    free(w);
    free(th);
    return bw;
}

/* Large arrays through mmap, asking for transparent huge pages: far fewer page faults
 * (which on some VMs cost more than the triad itself). */
static double *big_alloc(size_t n) {
    void *p = mmap(NULL, n * sizeof(double), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return NULL;
#ifdef MADV_HUGEPAGE
    madvise(p, n * sizeof(double), MADV_HUGEPAGE);
#endif
    return p;
}

static void big_free(double *p, size_t n) {
    if (p) munmap(p, n * sizeof(double));
}

static size_t llc_bytes(void) {
    long v = -1;
#ifdef _SC_LEVEL3_CACHE_SIZE
    v = sysconf(_SC_LEVEL3_CACHE_SIZE);
#endif
    return v > 0 ? (size_t)v : (size_t)32 << 20;
}

static void first_line(const char *path, const char *key, char *out, size_t cap) {
    FILE *f = fopen(path, "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, key, strlen(key))) {
            char *c = strchr(line, ':');
            if (!c) continue;
            c++;
            while (*c == ' ' || *c == '\t') c++;
            c[strcspn(c, "\n")] = 0;
            snprintf(out, cap, "%s", c);
            break;
        }
    fclose(f);
}

int etok_probe_measure(const etok_probe_opts *opts_in, etok_probe_profile *p, etok_err *err) {
    etok_probe_opts o = {0};
    if (opts_in) o = *opts_in;
    memset(p, 0, sizeof *p);
    double t_begin = etok_mono_s();
    int threads = o.threads > 0 ? o.threads : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads < 1) threads = 1;
    if (threads > 1024) threads = 1024;
    double ks = o.kernel_s > 0 ? o.kernel_s : 0.25;
    int reps = o.repeats > 0 ? o.repeats : 2;
    int avx2 = have_avx2();
    p->threads = threads;
    snprintf(p->isa, sizeof p->isa, "%s", avx2 ? "avx2+fma" : "scalar");

    for (int r = 0; r < reps; r++) {
        p->peak_flops_f32 = fmax(p->peak_flops_f32, parallel_compute(0, threads, avx2, ks));
        p->peak_ops_int8 = fmax(p->peak_ops_int8, parallel_compute(1, threads, avx2, ks));
    }
    size_t bytes = o.triad_bytes ? o.triad_bytes : llc_bytes() * 4;
    if (!o.triad_bytes && bytes < ((size_t)128 << 20)) bytes = (size_t)128 << 20;
    size_t n = bytes / 3 / sizeof(double);
    if (n < 1024) n = 1024;
    double *a = big_alloc(n), *b = big_alloc(n), *c = big_alloc(n);
    if (!a || !b || !c) {
        big_free(a, n);
        big_free(b, n);
        big_free(c, n);
        return etok_errc(err, ETOK_EXIT_FAIL, "probe: cannot allocate %zu MiB for the bandwidth test", bytes >> 20);
    }
    for (size_t i = 0; i < n; i++) {
        a[i] = 0;
        b[i] = 1.0;
        c[i] = 2.0;
    }
    for (int r = 0; r < reps + 2; r++) p->hw.mem_bw_bps = fmax(p->hw.mem_bw_bps, parallel_triad(threads, a, b, c, n));
    int ok = a[n / 2] == 7.0;
    big_free(a, n);
    big_free(b, n);
    big_free(c, n);
    if (!ok) return etok_errc(err, ETOK_EXIT_FAIL, "probe: triad produced a wrong result");
    if (!(p->peak_flops_f32 > 0) || !(p->peak_ops_int8 > 0) || !(p->hw.mem_bw_bps > 0))
        return etok_errc(err, ETOK_EXIT_FAIL, "probe: could not run the kernels on %d threads", threads);

    p->hw.peak_flops = p->peak_ops_int8;
    /* A RAPL package power limit when the platform exposes one (0 = unknown). */
    char path[512];
    uint64_t uw = 0;
    snprintf(path, sizeof path, "%s/class/powercap/intel-rapl:0/constraint_0_power_limit_uw", etok_sysfs_root());
    if (etok_read_u64(path, &uw) == 0 && uw > 0) p->hw.power_limit_w = (double)uw * 1e-6;
    gethostname(p->host, sizeof p->host - 1);
    char cpu[128] = "unknown CPU";
    char cpuinfo[512];
    snprintf(cpuinfo, sizeof cpuinfo, "%s/cpuinfo", etok_proc_root());
    first_line(cpuinfo, "model name", cpu, sizeof cpu);
    snprintf(p->cpu_model, sizeof p->cpu_model, "%s", cpu);
    snprintf(p->hw.name, sizeof p->hw.name, "%.40s x%d", cpu, threads);
    snprintf(p->hw.source, sizeof p->hw.source, "probe");
    p->measured_at_wall_s = etok_wall_s();
    p->probe_duration_s = etok_mono_s() - t_begin;
    return 0;
}

char *etok_probe_default_path(void) {
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char host[128] = "localhost";
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = 0;
    for (char *c = host; *c; c++)
        if (*c == '/') *c = '_';
    char buf[1024];
    if (xdg && xdg[0] == '/')
        snprintf(buf, sizeof buf, "%s/etok/profile-%s.json", xdg, host);
    else if (home && home[0])
        snprintf(buf, sizeof buf, "%s/.cache/etok/profile-%s.json", home, host);
    else
        return NULL;
    return strdup(buf);
}

int etok_probe_save(const etok_probe_profile *p, const char *path, etok_err *err) {
    json_t *o = json_pack("{s:i, s:s, s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:s, s:i, s:s, s:f, s:f}", "version", 1,
                          "name", p->hw.name, "host", p->host, "cpu_model", p->cpu_model, "peak_flops", p->hw.peak_flops,
                          "peak_flops_f32", p->peak_flops_f32, "peak_ops_int8", p->peak_ops_int8, "mem_bw_bps",
                          p->hw.mem_bw_bps, "power_limit_w", p->hw.power_limit_w, "source", p->hw.source, "threads",
                          p->threads, "isa", p->isa, "measured_at_wall_s", p->measured_at_wall_s, "probe_duration_s",
                          p->probe_duration_s);
    if (!o) return etok_errc(err, ETOK_EXIT_FAIL, "probe: out of memory");
    char *text = json_dumps(o, JSON_INDENT(2));
    json_decref(o);
    if (!text) return etok_errc(err, ETOK_EXIT_FAIL, "probe: out of memory");
    /* make the directory */
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    int rc = 0;
    if (slash && slash != dir) {
        *slash = 0;
        rc = etok_mkdirs(dir, err);
    }
    if (!rc) rc = etok_write_file_atomic(path, text, strlen(text), err);
    free(text);
    if (rc && err && !err->exit_code) err->exit_code = ETOK_EXIT_OUTPUT;
    return rc;
}

static int num_field(json_t *o, const char *k, double *out, int required, const char *path, etok_err *err) {
    json_t *v = json_object_get(o, k);
    if (!v) {
        if (required) return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field \"%s\"", path, k);
        *out = 0;
        return 0;
    }
    if (!json_is_number(v) || json_number_value(v) < 0 || !isfinite(json_number_value(v)))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: field \"%s\" must be a number >= 0", path, k);
    *out = json_number_value(v);
    return 0;
}

int etok_probe_load(etok_probe_profile *p, const char *path, etok_err *err) {
    memset(p, 0, sizeof *p);
    json_error_t je;
    struct stat st;
    if (stat(path, &st) != 0 && errno == ENOENT)
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: no hardware profile (run etok probe)", path);
    size_t len = 0;
    char *text = etok_read_file_bounded(path, "hardware profile", ETOK_LIMIT_PROFILE, &len, err);
    if (!text) return -1;
    json_t *o = json_loadb(text, len, 0, &je);
    free(text);
    if (!o) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: %s", path, je.line, je.text);
    int rc = -1;
    double th = 0;
    if (!json_is_object(o)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: a hardware profile must be a JSON object", path);
        goto out;
    }
    if (num_field(o, "peak_flops", &p->hw.peak_flops, 1, path, err) ||
        num_field(o, "mem_bw_bps", &p->hw.mem_bw_bps, 1, path, err) ||
        num_field(o, "power_limit_w", &p->hw.power_limit_w, 0, path, err) ||
        num_field(o, "peak_flops_f32", &p->peak_flops_f32, 0, path, err) ||
        num_field(o, "peak_ops_int8", &p->peak_ops_int8, 0, path, err) ||
        num_field(o, "threads", &th, 0, path, err) ||
        num_field(o, "measured_at_wall_s", &p->measured_at_wall_s, 0, path, err) ||
        num_field(o, "probe_duration_s", &p->probe_duration_s, 0, path, err))
        goto out;
    p->threads = (int)th;
    if (!(p->hw.peak_flops > 0) || !(p->hw.mem_bw_bps > 0)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: peak_flops and mem_bw_bps must be > 0", path);
        goto out;
    }
    const char *s;
    if ((s = json_string_value(json_object_get(o, "name")))) snprintf(p->hw.name, sizeof p->hw.name, "%s", s);
    if ((s = json_string_value(json_object_get(o, "host")))) snprintf(p->host, sizeof p->host, "%s", s);
    if ((s = json_string_value(json_object_get(o, "cpu_model")))) snprintf(p->cpu_model, sizeof p->cpu_model, "%s", s);
    if ((s = json_string_value(json_object_get(o, "isa")))) snprintf(p->isa, sizeof p->isa, "%s", s);
    s = json_string_value(json_object_get(o, "source"));
    snprintf(p->hw.source, sizeof p->hw.source, "%s", s ? s : "profile");
    rc = 0;
out:
    json_decref(o);
    return rc;
}

int etok_probe_get(const char *path, int force, const etok_probe_opts *opts, etok_probe_profile *out, int *measured,
                   etok_err *err) {
    char *def = NULL;
    if (!path) {
        def = etok_probe_default_path();
        if (!def) return etok_errc(err, ETOK_EXIT_USAGE, "probe: neither XDG_CACHE_HOME nor HOME is set; pass --profile FILE");
        path = def;
    }
    int rc;
    if (measured) *measured = 0;
    if (!force && access(path, F_OK) == 0) {
        rc = etok_probe_load(out, path, err);
    } else {
        rc = etok_probe_measure(opts, out, err);
        if (!rc) rc = etok_probe_save(out, path, err);
        if (!rc && measured) *measured = 1;
    }
    free(def);
    return rc;
}
