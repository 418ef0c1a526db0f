/* estimate.c — the `estimate` meter: a model, not a measurement. CPU busy time from
 * $ETOK_PROC_ROOT/stat (per-core jiffies deltas) times a linear power model
 *     P = P_idle + (P_max - P_idle) * busy_fraction
 * with P_idle/P_max per package from --cpu-tdp (cfg cpu_idle_w/cpu_max_w), else per logical
 * CPU from a small catalog keyed by /proc/cpuinfo's model name, else a generic default. Each
 * figure carries a stated relative error band (trace.error_band) and source `estimate`; it is
 * opened only when asked for by name or when no meter exists at all (meter set's rule).
 * Owns: the busy-fraction computation, the catalog, the model. Sampled like a power meter. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/driver.h"

/* Per logical CPU. max = the vendor TDP / hardware threads; idle = 25% of that (assumed:
 * package idle power is typically 20-30% of TDP on server parts). Sources: vendor spec pages
 * (AMD EPYC 7763 280 W/128 threads, EPYC 9654 360 W/192, Xeon Platinum 8480+ 350 W/112,
 * Xeon Platinum 8380 270 W/80, Core i9-13900K 253 W/32). Matched by substring, first wins. */
typedef struct {
    const char *match;
    double idle_w_per_cpu, max_w_per_cpu;
    double error_band;
} cpu_model;

static const cpu_model CATALOG[] = {
    {"EPYC 7763", 0.55, 2.19, 0.4},
    {"EPYC 9654", 0.47, 1.88, 0.4},
    {"Platinum 8480", 0.78, 3.13, 0.4},
    {"Platinum 8380", 0.84, 3.38, 0.4},
    {"i9-13900K", 1.98, 7.91, 0.4},
    {"AMD EPYC", 0.60, 2.40, 0.5},       /* a virtualised EPYC whose exact part is hidden */
    {"Intel(R) Xeon(R)", 0.80, 3.20, 0.5}, /* any Xeon not matched above */
};
#define GENERIC_IDLE_W_PER_CPU 1.0
#define GENERIC_MAX_W_PER_CPU 4.0
#define GENERIC_ERROR_BAND 0.5
#define USER_TDP_ERROR_BAND 0.3

double etok_estimate_power_w(double idle_w, double max_w, double busy_fraction) {
    if (busy_fraction < 0) busy_fraction = 0;
    if (busy_fraction > 1) busy_fraction = 1;
    return idle_w + (max_w - idle_w) * busy_fraction;
}

/* Sum busy and total jiffies over the per-core lines ("cpuN ..."). */
static int stat_sums(const char *text, unsigned long long *busy, unsigned long long *total, int *n_cores) {
    *busy = *total = 0;
    int n = 0;
    for (const char *l = text; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (strncmp(l, "cpu", 3) || l[3] < '0' || l[3] > '9') continue;
        unsigned long long v[8] = {0};
        int id;
        int got = sscanf(l, "cpu%d %llu %llu %llu %llu %llu %llu %llu %llu", &id, &v[0], &v[1], &v[2], &v[3], &v[4],
                         &v[5], &v[6], &v[7]);
        if (got < 5) return -1;
        /* user nice system idle iowait irq softirq steal: busy excludes idle, iowait and the
         * hypervisor's steal (time this guest's CPU was not running) */
        unsigned long long b = v[0] + v[1] + v[2] + v[5] + v[6];
        *busy += b;
        *total += b + v[3] + v[4] + v[7];
        n++;
    }
    if (n_cores) *n_cores = n;
    return n ? 0 : -1;
}

int etok_stat_jiffies(const char *text, unsigned long long *busy, unsigned long long *total, int *n_cores) {
    return stat_sums(text, busy, total, n_cores);
}

double etok_estimate_busy_fraction(const char *before, const char *after, int *n_cores) {
    unsigned long long b0, t0, b1, t1;
    int n0, n1;
    if (!before || !after || stat_sums(before, &b0, &t0, &n0) || stat_sums(after, &b1, &t1, &n1)) return -1;
    if (n_cores) *n_cores = n1;
    if (n0 != n1 || t1 <= t0 || b1 < b0) return -1;
    double f = (double)(b1 - b0) / (double)(t1 - t0);
    return f > 1 ? 1 : f;
}

typedef struct {
    char stat_path[512];
    char *prev;          /* previous /proc/stat text */
    double idle_w, max_w;/* totals for this machine */
    double last_w;
} est_state;

/* The model for this machine: totals idle_w/max_w, error band, and a provenance label. */
static int model(const etok_meter_config *cfg, double *idle_w, double *max_w, double *band, char *label,
                 size_t cap, int *n_cpus_out) {
    char p[512];
    etok_meter_why(p, sizeof p, "%s/stat", etok_proc_root());
    char *st = etok_read_file(p, NULL);
    unsigned long long b, t;
    int n_cpus = 0;
    if (!st || stat_sums(st, &b, &t, &n_cpus) != 0) {
        free(st);
        return -1;
    }
    free(st);
    etok_meter_why(p, sizeof p, "%s/cpuinfo", etok_proc_root());
    char *ci = etok_read_file(p, NULL);
    char model_name[128] = "";
    int pkg_ids[64], n_pkg = 0;
    for (const char *l = ci; l && *l; l = strchr(l, '\n'), l = l ? l + 1 : NULL) {
        if (!strncmp(l, "model name", 10) && !model_name[0]) {
            const char *c = strchr(l, ':');
            if (c) {
                c++;
                while (*c == ' ') c++;
                size_t n = strcspn(c, "\n");
                if (n >= sizeof model_name) n = sizeof model_name - 1;
                memcpy(model_name, c, n);
                model_name[n] = '\0';
            }
        } else if (!strncmp(l, "physical id", 11)) {
            const char *c = strchr(l, ':');
            int id = c ? atoi(c + 1) : 0, seen = 0;
            for (int i = 0; i < n_pkg; i++) seen |= pkg_ids[i] == id;
            if (!seen && n_pkg < 64) pkg_ids[n_pkg++] = id;
        }
    }
    free(ci);
    if (n_pkg == 0) n_pkg = 1;
    *n_cpus_out = n_cpus;
    if (cfg && cfg->cpu_max_w > 0) {
        double idle = cfg->cpu_idle_w > 0 ? cfg->cpu_idle_w : 0.25 * cfg->cpu_max_w;
        *idle_w = idle * n_pkg;
        *max_w = cfg->cpu_max_w * n_pkg;
        *band = USER_TDP_ERROR_BAND;
        char tmp[128];
        etok_meter_why(tmp, sizeof tmp, "model:--cpu-tdp %g-%gW x%d pkg", idle, cfg->cpu_max_w, n_pkg);
        size_t l = strlen(tmp) < cap - 1 ? strlen(tmp) : cap - 1;
        memcpy(label, tmp, l);
        label[l] = '\0';
        return 0;
    }
    for (size_t i = 0; i < sizeof CATALOG / sizeof CATALOG[0]; i++)
        if (strstr(model_name, CATALOG[i].match)) {
            *idle_w = CATALOG[i].idle_w_per_cpu * n_cpus;
            *max_w = CATALOG[i].max_w_per_cpu * n_cpus;
            *band = CATALOG[i].error_band;
            etok_meter_why(label, cap, "model:catalog %.20s x%d cpu", CATALOG[i].match, n_cpus);
            return 0;
        }
    *idle_w = GENERIC_IDLE_W_PER_CPU * n_cpus;
    *max_w = GENERIC_MAX_W_PER_CPU * n_cpus;
    *band = GENERIC_ERROR_BAND;
    etok_meter_why(label, cap, "model:generic %g-%gW x%d cpu", GENERIC_IDLE_W_PER_CPU, GENERIC_MAX_W_PER_CPU, n_cpus);
    return 0;
}

static void estimate_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    double idle, max, band;
    char label[48];
    int n;
    if (model(cfg, &idle, &max, &band, label, sizeof label, &n) != 0) {
        etok_meter_why(st->why, sizeof st->why, "no driver: cannot read per-core lines of %s/stat", etok_proc_root());
        return;
    }
    etok_meter_why(st->domains, sizeof st->domains, "cpu[%s, %.1f-%.1f W, error band +-%.0f%%]", label + 6, idle, max, band * 100);
    st->resolution_si = 0;
    st->available = 1;
}

static int estimate_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    est_state *s = calloc(1, sizeof *s);
    if (!s) return etok_errc(err, ETOK_EXIT_FAIL, "estimate: out of memory");
    etok_meter_domain *d = &mi->dom[0];
    memset(d, 0, sizeof *d);
    d->pair = -1;
    etok_trace *t = &d->info;
    int n_cpus;
    if (model(cfg, &s->idle_w, &s->max_w, &t->error_band, t->power_field, sizeof t->power_field, &n_cpus) != 0) {
        free(s);
        return etok_errc(err, ETOK_EXIT_FAIL, "estimate: cannot read per-core lines of %s/stat", etok_proc_root());
    }
    etok_meter_why(s->stat_path, sizeof s->stat_path, "%s/stat", etok_proc_root());
    s->prev = etok_read_file(s->stat_path, NULL);
    s->last_w = s->idle_w;
    mi->priv = s;
    mi->n_domains = 1;
    etok_meter_why(t->meter, sizeof t->meter, "estimate");
    etok_meter_why(t->domain, sizeof t->domain, "cpu");
    t->source = ETOK_SOURCE_ESTIMATE;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    etok_meter_why(t->raw_unit, sizeof t->raw_unit, "W");
    t->scale_to_si = 1.0;
    double rate = cfg && cfg->rate_hz > 0 ? cfg->rate_hz : 10.0;
    /* one jiffy (10 ms at USER_HZ 100) of busy time out of a sampling interval on all CPUs */
    t->resolution_si = (s->max_w - s->idle_w) / (100.0 / rate * (n_cpus > 0 ? n_cpus : 1));
    t->update_period_s = 0.01;
    t->summable = 1;
    return 0;
}

static int estimate_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    (void)d;
    est_state *s = mi->priv;
    char *now = etok_read_file(s->stat_path, NULL);
    if (!now) return etok_errc(err, ETOK_EXIT_FAIL, "estimate: cannot read %s: %s", s->stat_path, strerror(errno));
    double f = s->prev ? etok_estimate_busy_fraction(s->prev, now, NULL) : -1;
    if (!s->prev) {
        s->prev = now;
    } else if (f >= 0) { /* else: no jiffy passed since the last read; repeat the last figure */
        s->last_w = etok_estimate_power_w(s->idle_w, s->max_w, f);
        free(s->prev);
        s->prev = now;
    } else {
        free(now);
    }
    *raw = s->last_w;
    return ETOK_READ_OK;
}

static void estimate_close(etok_meter_inst *mi) {
    est_state *s = mi->priv;
    if (!s) return;
    free(s->prev);
    free(s);
    mi->priv = NULL;
}

const etok_meter_driver etok_meter_estimate = {
    .name = "estimate",
    .source = ETOK_SOURCE_ESTIMATE,
    .boundary = ETOK_BOUNDARY_DEVICE,
    .auto_open = 0, /* only by name, or when no meter exists at all */
    .detect = estimate_detect,
    .open = estimate_open,
    .read = estimate_read,
    .collect = NULL,
    .close = estimate_close,
};
