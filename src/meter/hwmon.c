/* hwmon.c — the `hwmon` meter: $ETOK_SYSFS_ROOT/class/hwmon/hwmonN/ energy*_input (uJ
 * counters) and power*_input / power*_average (uW power), named by each device's `name`
 * (amdgpu, acpi_power_meter, ...).
 *
 * Owns: channel discovery, units, boundary (acpi_power_meter is the node's wall power), and
 * which channels may be summed: a device's power channels are not summed when the same device
 * has an energy counter (they are kept for the counter cross-check), and CPU energy drivers
 * that mirror RAPL (amd_energy, zenergy, zenpower) are not summed when rapl is open.
 * Does not own: integration or timing (sampler.c). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "meter/driver.h"

typedef struct {
    int num;          /* hwmonN */
    char name[64];
    char dir[512];
} hwmon_dev;

static int cmp_dev(const void *a, const void *b) {
    return ((const hwmon_dev *)a)->num - ((const hwmon_dev *)b)->num;
}

static int list_devs(hwmon_dev *devs, int cap, char *root, size_t root_cap) {
    etok_meter_why(root, root_cap, "%s/class/hwmon", etok_sysfs_root());
    DIR *d = opendir(root);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) && n < cap) {
        int num;
        char tail;
        if (sscanf(e->d_name, "hwmon%d%c", &num, &tail) != 1) continue;
        hwmon_dev *h = &devs[n];
        h->num = num;
        etok_meter_why(h->dir, sizeof h->dir, "%s/%s", root, e->d_name);
        char p[600];
        etok_meter_why(p, sizeof p, "%s/name", h->dir);
        if (etok_meter_read_line(p, h->name, sizeof h->name) != 0 || !h->name[0])
            etok_meter_why(h->name, sizeof h->name, "hwmon%d", num);
        n++;
    }
    closedir(d);
    qsort(devs, (size_t)n, sizeof *devs, cmp_dev);
    return n;
}

static int mirrors_rapl(const char *name) {
    return !strcmp(name, "amd_energy") || !strcmp(name, "zenergy") || !strcmp(name, "zenpower");
}

/* Channels of one device of one kind, sorted by channel number. */
static int channels(const char *dir, const char *prefix, const char *suffix, int *nums, int cap) {
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0;
    struct dirent *e;
    size_t pl = strlen(prefix);
    while ((e = readdir(d)) && n < cap) {
        if (strncmp(e->d_name, prefix, pl)) continue;
        char *end;
        long ch = strtol(e->d_name + pl, &end, 10);
        if (end == e->d_name + pl || strcmp(end, suffix)) continue;
        nums[n++] = (int)ch;
    }
    closedir(d);
    for (int i = 1; i < n; i++) /* insertion sort: a handful of channels */
        for (int j = i; j > 0 && nums[j - 1] > nums[j]; j--) {
            int t = nums[j]; nums[j] = nums[j - 1]; nums[j - 1] = t;
        }
    return n;
}

static int describe(const etok_meter_config *cfg, etok_meter_domain *dom, int cap, char *root, size_t root_cap) {
    hwmon_dev devs[64];
    int nd = list_devs(devs, 64, root, root_cap);
    int rapl_named = 0;
    for (int i = 0; cfg && i < cfg->n_names; i++)
        if (cfg->names[i] && !strcmp(cfg->names[i], "rapl")) rapl_named = 1;
    int n = 0;
    for (int i = 0; i < nd; i++) {
        int same_name = 0;
        for (int j = 0; j < nd; j++) same_name += !strcmp(devs[i].name, devs[j].name);
        char devname[80];
        if (same_name > 1) etok_meter_why(devname, sizeof devname, "%s.%d", devs[i].name, devs[i].num);
        else etok_meter_why(devname, sizeof devname, "%s", devs[i].name);
        etok_boundary b = !strcmp(devs[i].name, "acpi_power_meter") ? ETOK_BOUNDARY_NODE : ETOK_BOUNDARY_DEVICE;
        int ech[16], nech = channels(devs[i].dir, "energy", "_input", ech, 16);
        int first_energy = n;
        for (int c = 0; c < nech && n < cap; c++) {
            etok_meter_domain *d = &dom[n++];
            memset(d, 0, sizeof *d);
            d->pair = -1;
            etok_trace *t = &d->info;
            etok_meter_why(t->meter, sizeof t->meter, "hwmon");
            etok_meter_why(t->domain, sizeof t->domain, "%s/energy%d", devname, ech[c]);
            t->source = ETOK_SOURCE_COUNTER;
            t->boundary = b;
            etok_meter_why(t->raw_unit, sizeof t->raw_unit, "uJ");
            t->scale_to_si = 1e-6;
            t->wrap_range_raw = 0; /* 64-bit uJ counters: no wrap in practice */
            t->resolution_si = 1e-6;
            t->update_period_s = 0; /* driver-specific; unknown */
            t->summable = !(mirrors_rapl(devs[i].name) && rapl_named);
            d->ival = ech[c];
            etok_meter_why(d->path, sizeof d->path, "%s/energy%d_input", devs[i].dir, ech[c]);
        }
        const char *kinds[2] = {"_input", "_average"};
        for (int k = 0; k < 2; k++) {
            int pch[16], npch = channels(devs[i].dir, "power", kinds[k], pch, 16);
            for (int c = 0; c < npch && n < cap; c++) {
                /* a channel with both _input and _average: take _input (the newer reading) */
                if (k == 1) {
                    char p[600];
                    etok_meter_why(p, sizeof p, "%s/power%d_input", devs[i].dir, pch[c]);
                    if (etok_meter_exists(p)) continue;
                }
                etok_meter_domain *d = &dom[n++];
                memset(d, 0, sizeof *d);
                d->pair = -1;
                etok_trace *t = &d->info;
                etok_meter_why(t->meter, sizeof t->meter, "hwmon");
                etok_meter_why(t->domain, sizeof t->domain, "%s/power%d", devname, pch[c]);
                t->source = ETOK_SOURCE_POWER;
                t->boundary = b;
                etok_meter_why(t->raw_unit, sizeof t->raw_unit, "uW");
                t->scale_to_si = 1e-6;
                t->resolution_si = 1e-6;
                etok_meter_why(t->power_field, sizeof t->power_field, "%s", k == 0 ? "input" : "average");
                char p[600];
                uint64_t ms = 0;
                etok_meter_why(p, sizeof p, "%s/power%d_average_interval", devs[i].dir, pch[c]);
                if (etok_meter_read_u64(p, &ms) != 0) {
                    etok_meter_why(p, sizeof p, "%s/update_interval", devs[i].dir);
                    if (etok_meter_read_u64(p, &ms) != 0) ms = 0;
                }
                t->update_period_s = (double)ms / 1000.0;
                /* the device's energy counter is the reading; its power only cross-checks it */
                t->summable = nech == 0 && !(mirrors_rapl(devs[i].name) && rapl_named);
                d->ival = pch[c];
                etok_meter_why(d->path, sizeof d->path, "%s/power%d%s", devs[i].dir, pch[c], kinds[k]);
                for (int e = first_energy; e < first_energy + nech; e++)
                    if (dom[e].ival == pch[c] || (nech == 1 && dom[e].pair < 0)) dom[e].pair = n - 1;
            }
        }
    }
    return n;
}

static void hwmon_detect(const etok_meter_config *cfg, etok_meter_status *st) {
    etok_meter_domain *dom = calloc(ETOK_METER_MAX_DOMAINS, sizeof *dom);
    if (!dom) { etok_meter_why(st->why, sizeof st->why, "no driver: out of memory"); return; }
    char root[512];
    int n = describe(cfg, dom, ETOK_METER_MAX_DOMAINS, root, sizeof root);
    if (n == 0) {
        etok_meter_why(st->why, sizeof st->why, "missing: no hwmon device with energy*_input or power*_input/_average under %s", root);
        free(dom);
        return;
    }
    int counters = 0;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(st->domains);
        etok_meter_why(st->domains + l, sizeof st->domains - l, "%s%s", l ? "," : "", dom[i].info.domain);
        counters += dom[i].info.source == ETOK_SOURCE_COUNTER;
    }
    st->source = counters ? ETOK_SOURCE_COUNTER : ETOK_SOURCE_POWER;
    st->resolution_si = 1e-6;
    for (int i = 0; i < n; i++) {
        char buf[64];
        if (etok_meter_read_line(dom[i].path, buf, sizeof buf) != 0) {
            etok_meter_why(st->why, sizeof st->why, "%s: cannot read %s: %s",
                     errno == EACCES || errno == EPERM ? "permission" : "no driver", dom[i].path, strerror(errno));
            free(dom);
            return;
        }
    }
    st->available = 1;
    free(dom);
}

static int hwmon_open(etok_meter_inst *mi, const etok_meter_config *cfg, etok_err *err) {
    char root[512];
    mi->n_domains = describe(cfg, mi->dom, ETOK_METER_MAX_DOMAINS, root, sizeof root);
    if (mi->n_domains == 0)
        return etok_errc(err, ETOK_EXIT_FAIL, "hwmon: no hwmon device with energy*_input or power*_input/_average under %s", root);
    for (int i = 0; i < mi->n_domains; i++) {
        uint64_t v;
        if (etok_meter_read_u64(mi->dom[i].path, &v) != 0) {
            int perm = errno == EACCES || errno == EPERM;
            return etok_errc(err, perm ? ETOK_EXIT_PERMISSION : ETOK_EXIT_FAIL, "hwmon: cannot read %s: %s%s",
                             mi->dom[i].path, strerror(errno),
                             perm ? " (grant read access with `sudo chmod o+r` on it or a udev rule)" : "");
        }
    }
    return 0;
}

static int hwmon_read(etok_meter_inst *mi, int d, double *raw, etok_err *err) {
    uint64_t v;
    if (etok_meter_read_u64(mi->dom[d].path, &v) != 0)
        return etok_errc(err, ETOK_EXIT_FAIL, "hwmon: cannot read %s: %s", mi->dom[d].path, strerror(errno));
    *raw = (double)v;
    return ETOK_READ_OK;
}

static void hwmon_close(etok_meter_inst *mi) { (void)mi; }

const etok_meter_driver etok_meter_hwmon = {
    .name = "hwmon",
    .source = ETOK_SOURCE_COUNTER,
    .boundary = ETOK_BOUNDARY_DEVICE,
    .auto_open = 1,
    .detect = hwmon_detect,
    .open = hwmon_open,
    .read = hwmon_read,
    .collect = NULL,
    .close = hwmon_close,
};
