/* sampler_overhead.c — CPU overhead of the meter sampler thread at 10 Hz (the bound:
 * below 0.5% of one core). The main thread sleeps while the sampler runs, so the process' CPU
 * time (getrusage) over the window is the sampler's; reported as % of one core and per tick.
 *
 * usage: bench_sampler_overhead [SECONDS] [RATE_HZ]   (default 20 s, 10 Hz)
 * Two configurations: (a) the meters this machine has (auto selection; on a KVM guest that is
 * the estimate meter reading /proc/stat), (b) a fixture tree with 6 RAPL zones, 2 hwmon
 * channels and the estimate meter together (9 domains per tick). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "etok/meter.h"
#include "etok/record.h"
#include "etok/util.h"

static double cpu_s(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec * 1e-6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec * 1e-6;
}

static int put(const char *root, const char *rel, const char *text) {
    char p[1024];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    char d[1024];
    snprintf(d, sizeof d, "%s", p);
    *strrchr(d, '/') = '\0';
    if (etok_mkdirs(d, NULL) != 0) return -1;
    FILE *f = fopen(p, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

static int measure(const char *label, const etok_meter_config *cfg, double seconds) {
    etok_err err = {{0}, 0};
    etok_meter_set *ms = etok_meters_open(cfg, &err);
    if (!ms) {
        fprintf(stderr, "%s: %s\n", label, err.msg);
        return 1;
    }
    etok_record rec;
    etok_record_init(&rec);
    double c0 = cpu_s(), w0 = etok_mono_s();
    if (etok_meters_start(ms, &rec, &err) != 0) {
        fprintf(stderr, "%s: %s\n", label, err.msg);
        return 1;
    }
    etok_sleep_s(seconds, NULL);
    etok_meters_stop(ms, &err);
    double c1 = cpu_s(), w1 = etok_mono_s();
    size_t samples = 0, domains = rec.n_traces;
    for (size_t i = 0; i < rec.n_traces; i++) samples += rec.traces[i].n_samples;
    double ticks = domains ? (double)samples / (double)domains : 0;
    double pct = 100.0 * (c1 - c0) / (w1 - w0);
    printf("%-42s domains %2zu  ticks %5.0f  wall %6.2f s  cpu %7.4f s  = %.4f%% of one core  (%.1f us/tick)\n", label,
           domains, ticks, w1 - w0, c1 - c0, pct, ticks > 0 ? 1e6 * (c1 - c0) / ticks : 0.0);
    etok_meters_close(ms);
    etok_record_free(&rec);
    return pct < 0.5 ? 0 : 2;
}

int main(int argc, char **argv) {
    double seconds = argc > 1 ? atof(argv[1]) : 20.0;
    double rate = argc > 2 ? atof(argv[2]) : 10.0;
    if (seconds <= 0 || rate <= 0) {
        fprintf(stderr, "usage: %s [SECONDS] [RATE_HZ]\n", argv[0]);
        return 2;
    }
    int rc = 0;
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.rate_hz = rate;
    rc |= measure("(a) this machine, auto selection", &cfg, seconds);

    char root[] = "/tmp/etok-bench-sysfs-XXXXXX";
    if (!mkdtemp(root)) return 1;
    const char *zones[][2] = {{"intel-rapl:0", "package-0"}, {"intel-rapl:0:0", "core"}, {"intel-rapl:0:1", "dram"},
                              {"intel-rapl:1", "package-1"}, {"intel-rapl:1:0", "core"}, {"intel-rapl:1:1", "dram"}};
    char rel[256];
    for (int i = 0; i < 6; i++) {
        snprintf(rel, sizeof rel, "class/powercap/%s/name", zones[i][0]);
        put(root, rel, zones[i][1]);
        snprintf(rel, sizeof rel, "class/powercap/%s/energy_uj", zones[i][0]);
        put(root, rel, "123456789\n");
        snprintf(rel, sizeof rel, "class/powercap/%s/max_energy_range_uj", zones[i][0]);
        put(root, rel, "262143328850\n");
    }
    put(root, "class/hwmon/hwmon0/name", "amdgpu\n");
    put(root, "class/hwmon/hwmon0/power1_average", "150000000\n");
    put(root, "class/hwmon/hwmon1/name", "xpu\n");
    put(root, "class/hwmon/hwmon1/energy1_input", "5000000\n");
    setenv("ETOK_SYSFS_ROOT", root, 1);
    const char *names[3] = {"rapl", "hwmon", "estimate"};
    cfg.names = names;
    cfg.n_names = 3;
    rc |= measure("(b) fixture: 6 rapl + 2 hwmon + estimate", &cfg, seconds);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", root);
    return rc;
}
