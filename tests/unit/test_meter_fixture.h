/* test_meter_fixture.h — helpers for the meter tests: build sysfs/proc fixture trees in a
 * temporary directory at run time (clearer than committed trees: each test shows its tree). */
#ifndef TEST_METER_FIXTURE_H
#define TEST_METER_FIXTURE_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "etok/meter.h"
#include "etok/util.h"

/* A fresh temporary directory (malloc'd path). */
static inline char *fx_tmpdir(void) {
    char *p = strdup("/tmp/etok-meter-test-XXXXXX");
    if (!p || !mkdtemp(p)) {
        free(p);
        return NULL;
    }
    return p;
}

/* Write root/rel (creating directories) atomically, then chmod to mode. 0 ok. */
static inline int fx_write(const char *root, const char *rel, const char *content, mode_t mode) {
    char path[1024], dir[1024], tmp[1100];
    snprintf(path, sizeof path, "%s/%s", root, rel);
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash) {
        *slash = '\0';
        if (etok_mkdirs(dir, NULL) != 0) return -1;
    }
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    fputs(content, f);
    if (fclose(f) != 0) return -1;
    if (chmod(tmp, mode) != 0) return -1;
    return rename(tmp, path);
}

static inline int fx_writef(const char *root, const char *rel, const char *fmt, long long v) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, v);
    return fx_write(root, rel, buf, 0644);
}

static inline int fx_rm_one(const char *p, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st; (void)flag; (void)ftw;
    return remove(p);
}

static inline void fx_rmrf(char *root) {
    if (root) nftw(root, fx_rm_one, 16, FTW_DEPTH | FTW_PHYS);
    free(root);
}

static inline void fx_sleep(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

/* Open exactly one meter by name at a sampling rate (the config the meter tests share). */
static inline etok_meter_set *fx_open_meter(const char *name, double rate_hz, etok_err *err) {
    const char *names[1] = {name};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.names = names;
    cfg.n_names = 1;
    cfg.rate_hz = rate_hz;
    return etok_meters_open(&cfg, err);
}

#endif
