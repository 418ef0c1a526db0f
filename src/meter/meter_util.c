/* meter_util.c — the driver table and small sysfs helpers shared by the meter drivers.
 * Owns no state; knows nothing about any one meter. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "meter/driver.h"

static const etok_meter_driver *const DRIVERS[] = {
    &etok_meter_rapl, &etok_meter_perf, &etok_meter_hwmon,
    &etok_meter_nvml, &etok_meter_amdsmi, &etok_meter_extlog, &etok_meter_estimate,
};

int etok_meter_drivers(const etok_meter_driver *const **out) {
    *out = DRIVERS;
    return (int)(sizeof DRIVERS / sizeof DRIVERS[0]);
}

const etok_meter_driver *etok_meter_driver_find(const char *name) {
    for (size_t i = 0; i < sizeof DRIVERS / sizeof DRIVERS[0]; i++)
        if (name && !strcmp(DRIVERS[i]->name, name)) return DRIVERS[i];
    return NULL;
}

static int readable_mode(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) return -1;
    if (S_ISREG(st.st_mode) && (st.st_mode & 0444) == 0) {
        errno = EACCES;
        return -1;
    }
    return 0;
}

int etok_meter_read_u64(const char *path, uint64_t *out) {
    if (readable_mode(path) != 0) return -1;
    return etok_read_u64(path, out);
}

int etok_meter_read_line(const char *path, char *buf, size_t cap) {
    if (readable_mode(path) != 0) return -1;
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    if (!fgets(buf, (int)cap, f)) {
        int e = ferror(f) ? (errno ? errno : EIO) : ENODATA;
        fclose(f);
        errno = e;
        return -1;
    }
    fclose(f);
    buf[strcspn(buf, "\r\n")] = '\0';
    return 0;
}

int etok_meter_exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

void etok_meter_why(char *buf, size_t cap, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, cap, fmt, ap);
    va_end(ap);
}
