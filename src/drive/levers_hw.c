/* levers_hw.c — the machine levers (levers_hw.h): cpufreq scaling_max_freq of every online CPU
 * under etok_sysfs_root(), and the NVML power limit of every GPU (src/meter/nvml.c does the
 * NVML calls). Everything is checked before anything is changed; whatever was changed is
 * remembered in the handle and put back by etok_hw_levers_restore(). No process-wide state
 * (ARCHITECTURE.md): the caller restores on every path.
 * Owns: frequency parsing, the CPU enumeration, the sysfs writes and their undo. */
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etok/levers_hw.h"
#include "meter/nvml_plimit.h"

#define HW_MAX_CPUS 4096

typedef struct {
    int cpu;
    long prev_khz;
    int written;
} cpu_saved;

struct etok_hw_levers {
    long cpu_khz;
    cpu_saved *cpus;
    int n_cpus;
    double gpu_w;
    etok_nvml_plimit *gpu;
};

int etok_parse_cpu_freq(const char *s, long *khz, etok_err *err) {
    char *end = NULL;
    errno = 0;
    double v = s && *s ? strtod(s, &end) : NAN;
    double mult = 1;
    if (end && *end) {
        if (!strcasecmp(end, "ghz"))
            mult = 1e6;
        else if (!strcasecmp(end, "mhz"))
            mult = 1e3;
        else if (!strcasecmp(end, "khz"))
            mult = 1;
        else
            mult = NAN;
    }
    if (!end || errno || !isfinite(v) || isnan(mult) || v <= 0 || v * mult > 1e9 || v * mult < 1)
        return etok_errc(err, ETOK_EXIT_USAGE,
                         "--cpu-max-freq: expected a frequency such as 2.0GHz, 1800MHz or 1800000 (kHz), got '%.40s'",
                         s ? s : "");
    *khz = lround(v * mult);
    return 0;
}

/* One decimal integer from a sysfs file; -1 if absent or not a number. */
static int read_long(const char *path, long *out) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char buf[64] = "";
    char *ok = fgets(buf, sizeof buf, f);
    fclose(f);
    if (!ok) return -1;
    char *end;
    errno = 0;
    long v = strtol(buf, &end, 10);
    if (errno || end == buf || (*end && !isspace((unsigned char)*end)) || v < 0) return -1;
    *out = v;
    return 0;
}

static int write_long(const char *path, long v, int *err_no) {
    int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
    if (fd < 0) {
        *err_no = errno;
        return -1;
    }
    char buf[32];
    int n = snprintf(buf, sizeof buf, "%ld\n", v);
    ssize_t w = write(fd, buf, (size_t)n);
    int e = errno;
    if (close(fd) != 0 && w == n) {
        w = -1;
        e = errno;
    }
    if (w != n) {
        *err_no = w < 0 ? e : EIO;
        return -1;
    }
    return 0;
}

static int cmp_int(const void *a, const void *b) {
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Online CPU numbers under ROOT/devices/system/cpu, sorted; -1 with err if none. */
static int online_cpus(const char *base, int **out, int *n, etok_err *err) {
    DIR *d = opendir(base);
    if (!d)
        return etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: not available on this machine: cannot read %s: %s",
                         base, strerror(errno));
    int cap = 64, k = 0;
    int *v = malloc(sizeof *v * (size_t)cap);
    struct dirent *e;
    while (v && (e = readdir(d))) {
        const char *nm = e->d_name;
        if (strncmp(nm, "cpu", 3) || !nm[3] || strspn(nm + 3, "0123456789") != strlen(nm + 3)) continue;
        int cpu = atoi(nm + 3);
        char p[4096];
        long on = 1;
        snprintf(p, sizeof p, "%s/%s/online", base, nm);
        if (read_long(p, &on) == 0 && on == 0) continue; /* offline (cpu0 often has no file) */
        if (k == cap) {
            int *nv = cap < HW_MAX_CPUS ? realloc(v, sizeof *v * (size_t)(cap *= 2)) : NULL;
            if (!nv) {
                free(v);
                v = NULL;
                break;
            }
            v = nv;
        }
        v[k++] = cpu;
    }
    closedir(d);
    if (!v) return etok_errc(err, ETOK_EXIT_FAIL, "--cpu-max-freq: out of memory listing %s", base);
    if (k == 0) {
        free(v);
        return etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: not available on this machine: no online CPU under %s",
                         base);
    }
    qsort(v, (size_t)k, sizeof *v, cmp_int);
    *out = v;
    *n = k;
    return 0;
}

static void cpu_undo(etok_hw_levers *h, const char *base, int *failed) {
    for (int i = h->n_cpus - 1; i >= 0; i--) {
        cpu_saved *c = &h->cpus[i];
        if (!c->written) continue;
        char p[4096];
        int en = 0;
        snprintf(p, sizeof p, "%s/cpu%d/cpufreq/scaling_max_freq", base, c->cpu);
        if (write_long(p, c->prev_khz, &en)) {
            fprintf(stderr, "etok: could not restore %s to %ld kHz: %s\n", p, c->prev_khz, strerror(en));
            if (failed) *failed = 1;
        }
        c->written = 0;
    }
}

static int cpu_apply(etok_hw_levers *h, long khz, etok_err *err) {
    char base[2048];
    snprintf(base, sizeof base, "%s/devices/system/cpu", etok_sysfs_root());
    int *cpus = NULL, n = 0;
    if (online_cpus(base, &cpus, &n, err)) return -1;
    h->cpus = calloc((size_t)n, sizeof *h->cpus);
    if (!h->cpus) {
        free(cpus);
        return etok_errc(err, ETOK_EXIT_FAIL, "--cpu-max-freq: out of memory");
    }
    h->n_cpus = n;
    h->cpu_khz = khz;
    char p[4096];
    /* every CPU checked before any is written */
    for (int i = 0; i < n; i++) {
        int cpu = cpus[i];
        long lo, hi, cur, smin;
        struct stat st;
        h->cpus[i].cpu = cpu;
        snprintf(p, sizeof p, "%s/cpu%d/cpufreq", base, cpu);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) {
            etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: not available on this machine: no %s (no cpufreq driver)", p);
            goto fail;
        }
        snprintf(p, sizeof p, "%s/cpu%d/cpufreq/cpuinfo_min_freq", base, cpu);
        int bad = read_long(p, &lo);
        if (!bad) snprintf(p, sizeof p, "%s/cpu%d/cpufreq/cpuinfo_max_freq", base, cpu);
        if (!bad) bad = read_long(p, &hi);
        if (!bad) snprintf(p, sizeof p, "%s/cpu%d/cpufreq/scaling_max_freq", base, cpu);
        if (!bad) bad = read_long(p, &cur);
        if (bad) {
            etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: not available on this machine: cannot read %s", p);
            goto fail;
        }
        h->cpus[i].prev_khz = cur;
        if (khz < lo || khz > hi) {
            etok_errc(err, ETOK_EXIT_USAGE,
                      "--cpu-max-freq: %ld kHz is outside cpu%d's range %ld..%ld kHz (cpuinfo_min_freq..cpuinfo_max_freq)",
                      khz, cpu, lo, hi);
            goto fail;
        }
        snprintf(p, sizeof p, "%s/cpu%d/cpufreq/scaling_min_freq", base, cpu);
        if (read_long(p, &smin) == 0 && khz < smin) {
            etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: %ld kHz is below cpu%d's scaling_min_freq %ld kHz", khz, cpu,
                      smin);
            goto fail;
        }
        /* read-only: a sysfs attribute without a store is mode 0444 even for root */
        snprintf(p, sizeof p, "%s/cpu%d/cpufreq/scaling_max_freq", base, cpu);
        int fd = (stat(p, &st) == 0 && (st.st_mode & 0222)) ? open(p, O_WRONLY | O_CLOEXEC) : -1;
        if (fd < 0) {
            etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: not available on this machine: %s is not writable%s", p,
                      geteuid() != 0 ? " (needs root)" : "");
            goto fail;
        }
        close(fd);
    }
    for (int i = 0; i < n; i++) {
        int en = 0;
        long back = -1;
        snprintf(p, sizeof p, "%s/cpu%d/cpufreq/scaling_max_freq", base, cpus[i]);
        if (write_long(p, khz, &en)) {
            etok_errc(err, ETOK_EXIT_USAGE, "--cpu-max-freq: not available on this machine: writing %s: %s", p,
                      strerror(en));
            goto fail;
        }
        h->cpus[i].written = 1;
        if (read_long(p, &back) == 0 && back != khz)
            fprintf(stderr, "etok: %s reads %ld kHz after writing %ld (the driver rounded or capped it)\n", p, back, khz);
    }
    free(cpus);
    return 0;
fail:
    cpu_undo(h, base, NULL);
    free(cpus);
    return -1;
}

etok_hw_levers *etok_hw_levers_apply(const etok_hw_levers_opts *o, etok_err *err) {
    etok_hw_levers *h = calloc(1, sizeof *h);
    if (!h) {
        etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
        return NULL;
    }
    if (o && o->cpu_max_khz > 0 && cpu_apply(h, o->cpu_max_khz, err)) goto fail;
    if (o && o->gpu_power_limit_w > 0) {
        h->gpu_w = o->gpu_power_limit_w;
        h->gpu = etok_nvml_plimit_set(o->gpu_power_limit_w, err);
        if (!h->gpu) goto fail;
    }
    return h;
fail:
    (void)etok_hw_levers_restore(h);
    return NULL;
}

void etok_hw_levers_to_config(const etok_hw_levers *h, json_t *cfg) {
    if (!h || !cfg) return;
    if (h->cpu_khz > 0) {
        json_t *prev = json_array();
        for (int i = 0; i < h->n_cpus; i++) json_array_append_new(prev, json_integer(h->cpus[i].prev_khz));
        json_object_set_new(cfg, "cpu_max_freq_khz", json_integer(h->cpu_khz));
        json_object_set_new(cfg, "cpu_max_freq_cpus", json_integer(h->n_cpus));
        json_object_set_new(cfg, "cpu_max_freq_prev_khz", prev);
    }
    if (h->gpu) {
        double now = 0, prevw[16];
        int n = etok_nvml_plimit_info(h->gpu, &now, prevw, 16);
        json_t *prev = json_array();
        for (int i = 0; i < n && i < 16; i++) json_array_append_new(prev, json_real(prevw[i]));
        json_object_set_new(cfg, "gpu_power_limit_w", json_real(now));
        json_object_set_new(cfg, "gpu_power_limit_prev_w", prev);
        const double es = etok_nvml_plimit_enforced_s(h->gpu);
        json_object_set_new(cfg, "gpu_power_limit_enforced_s", es >= 0 ? json_real(es) : json_null());
    }
}

double etok_hw_levers_gpu_limit_w(const etok_hw_levers *h) {
    if (!h || !h->gpu) return 0;
    double now = 0, prevw[16];
    const int n = etok_nvml_plimit_info(h->gpu, &now, prevw, 16);
    return n > 0 ? now * n : 0;
}

int etok_hw_levers_restore(etok_hw_levers *h) {
    if (!h) return 0;
    int failed = 0;
    etok_nvml_plimit_restore(h->gpu);
    if (h->cpus) {
        char base[2048];
        snprintf(base, sizeof base, "%s/devices/system/cpu", etok_sysfs_root());
        cpu_undo(h, base, &failed);
    }
    free(h->cpus);
    free(h);
    return failed ? -1 : 0;
}
