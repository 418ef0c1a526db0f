/* rapl.c — the `rapl` meter: Linux powercap energy counters (intel-rapl, intel-rapl-mmio,
 * amd-rapl) under $ETOK_SYSFS_ROOT/class/powercap.
 *
 * Owns: zone discovery (every package, nested core/uncore/dram subzones, psys), the summable
 * flags that keep nested or duplicate zones out of totals, intel-rapl-mmio de-duplication,
 * wrap ranges from max_energy_range_uj, and the permission error of root-only energy_uj.
 * Does not own: wrap correction or timing (sampler.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/driver.h"

#define RAPL_MAX_ZONES 64

typedef struct {
    char id[64];       /* "intel-rapl:0:1" */
    char prefix[32];   /* "intel-rapl", "intel-rapl-mmio", "amd-rapl" */
    int pkg, sub;      /* numbers after the prefix; sub = -1 for a top-level zone */
    char name[64];     /* contents of `name` */
    char dir[512];
    double max_range_uj;
    int skip;          /* duplicate (mmio twin of an MSR zone) */
} rapl_zone;

static int parse_zone_id(const char *ent, rapl_zone *z) {
    const char *c = strchr(ent, ':');
    if (!c) return -1;
    size_t plen = (size_t)(c - ent);
    if (plen >= sizeof z->prefix) return -1;
    memcpy(z->prefix, ent, plen);
    z->prefix[plen] = '\0';
    if (strcmp(z->prefix, "intel-rapl") && strcmp(z->prefix, "intel-rapl-mmio") && strcmp(z->prefix, "amd-rapl"))
        return -1;
    int a = -1, b = -1, n = 0;
    if (sscanf(c + 1, "%d%n", &a, &n) != 1 || a < 0) return -1;
    const char *rest = c + 1 + n;
    if (*rest == ':') {
        int m = 0;
        if (sscanf(rest + 1, "%d%n", &b, &m) != 1 || b < 0 || rest[1 + m] != '\0') return -1;
    } else if (*rest != '\0') {
        return -1;
    }
    z->pkg = a;
    z->sub = b;
    etok_meter_why(z->id, sizeof z->id, "%s", ent);
    return 0;
}

static void add_zone(rapl_zone *zones, int *n, const char *dir, const char *ent) {
    rapl_zone z;
    memset(&z, 0, sizeof z);
    if (parse_zone_id(ent, &z) != 0) return;
    for (int i = 0; i < *n; i++)
        if (!strcmp(zones[i].id, z.id)) return; /* seen (flat symlink and nested dir) */
    if (*n >= RAPL_MAX_ZONES) return;
    etok_meter_why(z.dir, sizeof z.dir, "%s/%s", dir, ent);
    char p[600];
    etok_meter_why(p, sizeof p, "%s/energy_uj", z.dir);
    if (!etok_meter_exists(p)) return;
    etok_meter_why(p, sizeof p, "%s/name", z.dir);
    if (etok_meter_read_line(p, z.name, sizeof z.name) != 0 || !z.name[0])
        etok_meter_why(z.name, sizeof z.name, "%s", z.id);
    uint64_t r = 0;
    etok_meter_why(p, sizeof p, "%s/max_energy_range_uj", z.dir);
    z.max_range_uj = etok_meter_read_u64(p, &r) == 0 ? (double)r : 0.0;
    zones[(*n)++] = z;
    /* nested subzones inside a zone directory (the real tree also lists them flat) */
    DIR *d = opendir(z.dir);
    if (!d) return;
    struct dirent *e;
    char sub[512];
    etok_meter_why(sub, sizeof sub, "%s", z.dir);
    while ((e = readdir(d)))
        if (!strncmp(e->d_name, z.id, strlen(z.id)) && e->d_name[strlen(z.id)] == ':')
            add_zone(zones, n, sub, e->d_name);
    closedir(d);
}

static int cmp_zone(const void *a, const void *b) {
    const rapl_zone *x = a, *y = b;
    int c = strcmp(x->prefix, y->prefix);
    if (c) return c;
    if (x->pkg != y->pkg) return x->pkg - y->pkg;
    return x->sub - y->sub;
}

static const rapl_zone *parent_of(const rapl_zone *zones, int n, const rapl_zone *z) {
    for (int i = 0; i < n; i++)
        if (zones[i].sub < 0 && zones[i].pkg == z->pkg && !strcmp(zones[i].prefix, z->prefix)) return &zones[i];
    return NULL;
}

/* Discover zones, mark mmio duplicates. Returns the count. */
static int discover(rapl_zone *zones, char *root_out, size_t root_cap) {
    etok_meter_why(root_out, root_cap, "%s/class/powercap", etok_sysfs_root());
    int n = 0;
    DIR *d = opendir(root_out);
    if (!d) return 0;
    struct dirent *e;
    while ((e = readdir(d))) add_zone(zones, &n, root_out, e->d_name);
    closedir(d);
    qsort(zones, (size_t)n, sizeof *zones, cmp_zone);
    /* intel-rapl-mmio exposes the same package counter as the MSR interface on recent
     * Intel client parts: keep the MSR zone, drop the mmio twin (and its subzones). */
    for (int i = 0; i < n; i++) {
        if (strcmp(zones[i].prefix, "intel-rapl-mmio")) continue;
        const rapl_zone *top = zones[i].sub < 0 ? &zones[i] : parent_of(zones, n, &zones[i]);
        const char *pname = top ? top->name : zones[i].name;
        for (int j = 0; j < n; j++)
            if (!strcmp(zones[j].prefix, "intel-rapl") && zones[j].sub < 0 && !strcmp(zones[j].name, pname))
                zones[i].skip = 1;
    }
    return n;
}

static int is_package(const rapl_zone *z) { return z->sub < 0 && !strncmp(z->name, "package", 7); }

/* Fill domain descriptions for the kept zones. */
static int describe(const rapl_zone *zones, int n, etok_meter_domain *dom, int cap) {
    int any_package = 0, nd = 0;
    for (int i = 0; i < n; i++)
        if (!zones[i].skip && is_package(&zones[i])) any_package = 1;
    for (int i = 0; i < n && nd < cap; i++) {
        const rapl_zone *z = &zones[i];
        if (z->skip) continue;
        etok_meter_domain *d = &dom[nd];
        memset(d, 0, sizeof *d);
        d->pair = -1;
        etok_trace *t = &d->info;
        etok_meter_why(t->meter, sizeof t->meter, "rapl");
        const char *mmio = strcmp(z->prefix, "intel-rapl-mmio") ? "" : " (mmio)";
        if (z->sub < 0) {
            etok_meter_why(t->domain, sizeof t->domain, "%s%s", z->name, mmio);
        } else {
            const rapl_zone *p = parent_of(zones, n, z);
            char pn[64];
            if (p) etok_meter_why(pn, sizeof pn, "%s", p->name);
            else etok_meter_why(pn, sizeof pn, "package-%d", z->pkg);
            etok_meter_why(t->domain, sizeof t->domain, "%s/%s%s", pn, z->name, mmio);
        }
        for (int j = 0; j < nd; j++) /* unique names even on odd firmware */
            if (!strcmp(dom[j].info.domain, t->domain)) {
                size_t l = strlen(t->domain);
                etok_meter_why(t->domain + l, sizeof t->domain - l, "@%s", z->id);
            }
        t->source = ETOK_SOURCE_COUNTER;
        t->boundary = ETOK_BOUNDARY_DEVICE;
        etok_meter_why(t->raw_unit, sizeof t->raw_unit, "uJ");
        t->scale_to_si = 1e-6;
        t->wrap_range_raw = z->max_range_uj;
        /* powercap reports uJ, but the hardware energy unit is 2^-14 J (61 uJ) on most
         * Intel parts (15.3 uJ on some and on AMD): state the coarser one. */
        t->resolution_si = 61.0e-6;
        t->update_period_s = 0.001; /* RAPL counters refresh about every 1 ms */
        if (z->sub < 0) {
            if (is_package(z)) t->summable = 1;
            else if (!strcmp(z->name, "psys")) t->summable = !any_package; /* psys contains the packages */
            else t->summable = !strcmp(z->name, "dram");
        } else {
            /* core (PP0) and uncore (PP1) are inside their package; dram is beside it */
            t->summable = !strcmp(z->name, "dram");
        }
        etok_meter_why(d->path, sizeof d->path, "%s/energy_uj", z->dir);
        nd++;
    }
    return nd;
}

static void permission_message(char *buf, size_t cap, const char *path) {
    etok_meter_why(buf, cap,
             "rapl: cannot read %s: permission denied; energy_uj is root-only on current kernels "
             "(since Linux 5.10, CVE-2020-8694). Grant read access with `sudo chmod o+r %s/class/powercap/*/energy_uj` "
             "(until reboot) or a udev rule (SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod o+r /sys%%p/energy_uj\"), "
             "or use `--meter perf` (power PMU, governed by perf_event_paranoid)",
             path, etok_sysfs_root());
}

static void rapl_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    (void)cfg;
    rapl_zone zones[RAPL_MAX_ZONES];
    char root[512];
    int n = discover(zones, root, sizeof root);
    etok_meter_domain dom[ETOK_METER_MAX_DOMAINS];
    int nd = describe(zones, n, dom, ETOK_METER_MAX_DOMAINS);
    if (nd == 0) {
        etok_meter_why(st->why, sizeof st->why, "missing: no RAPL zones under %s (KVM guests and non-x86 machines have none)", root);
        return;
    }
    st->wrap_range_j = 0;
    for (int i = 0; i < nd; i++) {
        size_t l = strlen(st->domains);
        etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s%s", l ? "," : "", dom[i].info.domain,
                 dom[i].info.summable ? "" : "(nested)");
        double w = dom[i].info.wrap_range_raw * 1e-6;
        if (w > 0 && (st->wrap_range_j == 0 || w < st->wrap_range_j)) st->wrap_range_j = w;
    }
    st->resolution_si = dom[0].info.resolution_si;
    for (int i = 0; i < nd; i++) {
        uint64_t v;
        if (etok_meter_read_u64(dom[i].path, &v) != 0) {
            if (errno == EACCES || errno == EPERM)
                etok_meter_why(st->why, sizeof st->why,
                         "permission: %s is root-only on current kernels; `sudo chmod o+r %s/class/powercap/*/energy_uj`, a udev rule, or use perf",
                         dom[i].path, etok_sysfs_root());
            else
                etok_meter_why(st->why, sizeof st->why, "no driver: cannot read %s: %s", dom[i].path, strerror(errno));
            return;
        }
    }
    st->available = 1;
}

static int rapl_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    (void)cfg;
    rapl_zone zones[RAPL_MAX_ZONES];
    char root[512];
    int n = discover(zones, root, sizeof root);
    mi->n_domains = describe(zones, n, mi->dom, ETOK_METER_MAX_DOMAINS);
    if (mi->n_domains == 0)
        return etok_errc(err, ETOK_EXIT_FAIL, "rapl: no RAPL zones under %s (KVM guests and non-x86 machines have none)", root);
    for (int i = 0; i < mi->n_domains; i++) {
        uint64_t v;
        if (etok_meter_read_u64(mi->dom[i].path, &v) != 0) {
            if (errno == EACCES || errno == EPERM) {
                char m[sizeof err->msg];
                permission_message(m, sizeof m, mi->dom[i].path);
                return etok_errc(err, ETOK_EXIT_PERMISSION, "%s", m);
            }
            return etok_errc(err, ETOK_EXIT_FAIL, "rapl: cannot read %s: %s", mi->dom[i].path, strerror(errno));
        }
    }
    return 0;
}

static int rapl_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    uint64_t v;
    if (etok_meter_read_u64(mi->dom[d].path, &v) != 0)
        return etok_errc(err, ETOK_EXIT_FAIL, "rapl: cannot read %s: %s", mi->dom[d].path, strerror(errno));
    *raw = (double)v;
    return ETOK_READ_OK;
}

static void rapl_close(etok_meter_inst *mi) { (void)mi; }

const etok_meter_driver etok_meter_rapl = {
    .name = "rapl",
    .source = ETOK_SOURCE_COUNTER,
    .boundary = ETOK_BOUNDARY_DEVICE,
    .auto_open = 1,
    .detect = rapl_detect,
    .open = rapl_open,
    .read = rapl_read,
    .collect = NULL,
    .close = rapl_close,
};
