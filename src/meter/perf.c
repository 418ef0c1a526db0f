/* perf.c — the `perf` meter: the kernel's `power` PMU (energy-pkg, energy-ram, energy-psys,
 * ...) through perf_event_open. The non-root path to RAPL: governed by
 * /proc/sys/kernel/perf_event_paranoid or CAP_PERFMON, and the kernel folds the 32-bit
 * hardware overflow into a 64-bit count itself.
 *
 * Owns: parsing $ETOK_SYSFS_ROOT/bus/event_source/devices/power/{type,cpumask,events/energy-NAME}
 * (event code, .scale, .unit), one counter per event per package (cpumask), reading them.
 * Does not own: timing or integration (sampler.c). */
#include <errno.h>
#include <dirent.h>
#include <linux/perf_event.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "meter/driver.h"

static int parse_cpumask(const char *s, int *cpus, int cap) {
    int n = 0;
    while (*s && n < cap) {
        char *end;
        long a = strtol(s, &end, 10);
        if (end == s) break;
        long b = a;
        if (*end == '-') b = strtol(end + 1, &end, 10);
        for (long c = a; c <= b && n < cap; c++) cpus[n++] = (int)c;
        s = *end == ',' ? end + 1 : end;
        if (*end != ',') break;
    }
    return n;
}

int etok_perf_parse(const char *sysfs_root, int *pmu_type, etok_perf_event *ev, int cap, int *n_ev,
                    int *cpus, int cpu_cap, int *n_cpus, char *why, size_t why_cap) {
    char dir[512], p[700], line[256];
    etok_meter_why(dir, sizeof dir, "%s/bus/event_source/devices/power", sysfs_root);
    *n_ev = 0;
    *n_cpus = 0;
    etok_meter_why(p, sizeof p, "%s/type", dir);
    uint64_t type;
    if (etok_meter_read_u64(p, &type) != 0) {
        etok_meter_why(why, why_cap, "missing: no power PMU at %s (KVM guests and some CPUs have none)", dir);
        return -1;
    }
    *pmu_type = (int)type;
    etok_meter_why(p, sizeof p, "%s/cpumask", dir);
    if (etok_meter_read_line(p, line, sizeof line) == 0) *n_cpus = parse_cpumask(line, cpus, cpu_cap);
    if (*n_cpus == 0) { cpus[0] = 0; *n_cpus = 1; }
    etok_meter_why(p, sizeof p, "%s/events", dir);
    DIR *d = opendir(p);
    if (!d) {
        etok_meter_why(why, why_cap, "missing: power PMU has no events directory (%s)", p);
        return -1;
    }
    struct dirent *e;
    while ((e = readdir(d)) && *n_ev < cap) {
        if (strncmp(e->d_name, "energy-", 7) || strchr(e->d_name, '.')) continue;
        etok_perf_event *x = &ev[*n_ev];
        memset(x, 0, sizeof *x);
        etok_meter_why(x->name, sizeof x->name, "%s", e->d_name);
        char q[800];
        etok_meter_why(q, sizeof q, "%s/events/%s", dir, e->d_name);
        if (etok_meter_read_line(q, line, sizeof line) != 0) continue;
        const char *ev_at = strstr(line, "event=");
        if (!ev_at) continue;
        x->config = strtoull(ev_at + 6, NULL, 0);
        etok_meter_why(q, sizeof q, "%s/events/%s.scale", dir, e->d_name);
        x->scale = 0;
        if (etok_meter_read_line(q, line, sizeof line) == 0) x->scale = strtod(line, NULL);
        etok_meter_why(q, sizeof q, "%s/events/%s.unit", dir, e->d_name);
        if (etok_meter_read_line(q, line, sizeof line) != 0) etok_meter_why(line, sizeof line, "?");
        etok_meter_why(x->unit, sizeof x->unit, "%s", line);
        if (!(x->scale > 0) || strcmp(x->unit, "Joules")) continue; /* unusable without a scale in J */
        (*n_ev)++;
    }
    closedir(d);
    /* stable order: by name */
    for (int i = 1; i < *n_ev; i++)
        for (int j = i; j > 0 && strcmp(ev[j - 1].name, ev[j].name) > 0; j--) {
            etok_perf_event t = ev[j]; ev[j] = ev[j - 1]; ev[j - 1] = t;
        }
    if (*n_ev == 0) {
        etok_meter_why(why, why_cap, "missing: power PMU has no energy-* events with a Joules scale under %s/events", dir);
        return -1;
    }
    return 0;
}

static int describe(const etok_perf_event *ev, int n_ev, int n_cpus, etok_meter_domain *dom, int cap) {
    int any_pkg = 0, n = 0;
    for (int i = 0; i < n_ev; i++) any_pkg |= !strcmp(ev[i].name, "energy-pkg");
    for (int i = 0; i < n_ev; i++)
        for (int c = 0; c < n_cpus && n < cap; c++) {
            etok_meter_domain *d = &dom[n++];
            memset(d, 0, sizeof *d);
            d->pair = -1;
            etok_trace *t = &d->info;
            etok_meter_why(t->meter, sizeof t->meter, "perf");
            etok_meter_why(t->domain, sizeof t->domain, "%s-%d", ev[i].name + 7, c); /* "pkg-0", "ram-1" */
            t->source = ETOK_SOURCE_COUNTER;
            t->boundary = ETOK_BOUNDARY_DEVICE;
            etok_meter_why(t->raw_unit, sizeof t->raw_unit, "J");
            t->scale_to_si = 1.0;
            t->wrap_range_raw = 0; /* the kernel keeps a 64-bit count */
            t->resolution_si = 61.0e-6;
            t->update_period_s = 0.001;
            const char *k = ev[i].name + 7;
            t->summable = !strcmp(k, "pkg") || !strcmp(k, "ram") || (!strcmp(k, "psys") && !any_pkg);
            d->ival = -1;
        }
    return n;
}

typedef struct {
    int n_ev, n_cpus, type;
    etok_perf_event ev[16];
    int cpus[16];
} perf_state;

static void perf_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    (void)cfg;
    perf_state s;
    if (etok_perf_parse(etok_sysfs_root(), &s.type, s.ev, 16, &s.n_ev, s.cpus, 16, &s.n_cpus, st->why, sizeof st->why) != 0)
        return;
    etok_meter_domain *dom = calloc(ETOK_METER_MAX_DOMAINS, sizeof *dom);
    if (!dom) { etok_meter_why(st->why, sizeof st->why, "no driver: out of memory"); return; }
    int n = describe(s.ev, s.n_ev, s.n_cpus, dom, ETOK_METER_MAX_DOMAINS);
    for (int i = 0; i < n; i++) {
        size_t l = strlen(st->domains);
        etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s%s", l ? "," : "", dom[i].info.domain,
                 dom[i].info.summable ? "" : "(nested)");
    }
    st->resolution_si = 61.0e-6;
    free(dom);
    /* try one event for real: this is where perf_event_paranoid bites */
    struct perf_event_attr a;
    memset(&a, 0, sizeof a);
    a.size = sizeof a;
    a.type = (unsigned)s.type;
    a.config = s.ev[0].config;
    long fd = syscall(SYS_perf_event_open, &a, -1, s.cpus[0], -1, 0);
    if (fd < 0) {
        etok_meter_why(st->why, sizeof st->why, "%s: perf_event_open(power/%s) failed: %s (needs CAP_PERFMON or perf_event_paranoid <= 0)",
                 errno == EACCES || errno == EPERM ? "permission" : "no driver", s.ev[0].name, strerror(errno));
        return;
    }
    close((int)fd);
    st->available = 1;
}

static int perf_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    (void)cfg;
    perf_state *s = calloc(1, sizeof *s);
    if (!s) return etok_errc(err, ETOK_EXIT_FAIL, "perf: out of memory");
    char why[256];
    if (etok_perf_parse(etok_sysfs_root(), &s->type, s->ev, 16, &s->n_ev, s->cpus, 16, &s->n_cpus, why, sizeof why) != 0) {
        free(s);
        return etok_errc(err, ETOK_EXIT_FAIL, "perf: %s", why);
    }
    mi->priv = s;
    mi->n_domains = describe(s->ev, s->n_ev, s->n_cpus, mi->dom, ETOK_METER_MAX_DOMAINS);
    for (int i = 0; i < mi->n_domains; i++) {
        const etok_perf_event *e = &s->ev[i / s->n_cpus];
        struct perf_event_attr a;
        memset(&a, 0, sizeof a);
        a.size = sizeof a;
        a.type = (unsigned)s->type;
        a.config = e->config;
        long fd = syscall(SYS_perf_event_open, &a, -1, s->cpus[i % s->n_cpus], -1, 0);
        if (fd < 0) {
            int perm = errno == EACCES || errno == EPERM;
            return etok_errc(err, perm ? ETOK_EXIT_PERMISSION : ETOK_EXIT_FAIL,
                             "perf: perf_event_open(power/%s on cpu %d) failed: %s%s", e->name, s->cpus[i % s->n_cpus],
                             strerror(errno),
                             perm ? "; allow it with `sudo sysctl kernel.perf_event_paranoid=0` or CAP_PERFMON, or use the rapl meter" : "");
        }
        mi->dom[i].ival = (int)fd;
        mi->dom[i].info.scale_to_si = 1.0;
        mi->dom[i].ptr = &s->ev[i / s->n_cpus];
    }
    return 0;
}

static int perf_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    uint64_t count;
    const etok_perf_event *e = mi->dom[d].ptr;
    if (read(mi->dom[d].ival, &count, sizeof count) != (ssize_t)sizeof count)
        return etok_errc(err, ETOK_EXIT_FAIL, "perf: read power/%s: %s", e->name, strerror(errno));
    *raw = (double)count * e->scale;
    return ETOK_READ_OK;
}

static void perf_close(etok_meter_inst *mi) {
    for (int i = 0; i < mi->n_domains; i++)
        if (mi->dom[i].ival >= 0) close(mi->dom[i].ival);
    free(mi->priv);
    mi->priv = NULL;
}

const etok_meter_driver etok_meter_perf = {
    .name = "perf",
    .source = ETOK_SOURCE_COUNTER,
    .boundary = ETOK_BOUNDARY_DEVICE,
    .auto_open = 1,
    .detect = perf_detect,
    .open = perf_open,
    .read = perf_read,
    .collect = NULL,
    .close = perf_close,
};
