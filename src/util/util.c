/* util.c — error messages, clocks, file helpers. Owns no state. */
#include "etok/util.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static int vset(etok_err *err, int code, const char *fmt, va_list ap) {
    if (err) {
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        err->exit_code = code;
    }
    return -1;
}

int etok_errf(etok_err *err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(err, ETOK_EXIT_FAIL, fmt, ap);
    va_end(ap);
    return -1;
}

int etok_errc(etok_err *err, int exit_code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vset(err, exit_code, fmt, ap);
    va_end(ap);
    return -1;
}

double etok_mono_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double etok_wall_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void etok_sleep_s(double seconds, volatile int *stop) {
    if (seconds <= 0) return;
    struct timespec req = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
    struct timespec rem;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR) {
        if (stop && *stop) return;
        req = rem;
    }
}

int etok_wait_or_signal(int sig_fd, double seconds) {
    double end = etok_mono_s() + seconds;
    for (;;) {
        double left = end - etok_mono_s();
        if (left <= 0) return 0;
        if (sig_fd < 0) {
            etok_sleep_s(left, NULL);
            return 0;
        }
        struct pollfd pf = {.fd = sig_fd, .events = POLLIN};
        if (poll(&pf, 1, (int)(left * 1000) + 1) > 0) {
            struct signalfd_siginfo si;
            if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si) return 1;
        }
    }
}

char *etok_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    if (!buf) { fclose(f); errno = ENOMEM; return NULL; }
    for (;;) {
        if (n + 1 >= cap) {
            char *nb = realloc(buf, cap * 2);
            if (!nb) { free(buf); fclose(f); errno = ENOMEM; return NULL; }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0) {
            if (ferror(f)) { int e = errno ? errno : EIO; free(buf); fclose(f); errno = e; return NULL; }
            break;
        }
    }
    fclose(f);
    buf[n] = '\0';
    if (len) *len = n;
    return buf;
}

int etok_read_u64(const char *path, uint64_t *out) {
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    char line[64];
    if (!fgets(line, sizeof line, f)) { int e = errno ? errno : EIO; fclose(f); errno = e; return -1; }
    fclose(f);
    char *end;
    errno = 0;
    unsigned long long v = strtoull(line, &end, 10);
    if (end == line || errno) { errno = EINVAL; return -1; }
    *out = (uint64_t)v;
    return 0;
}

int etok_write_file_atomic(const char *path, const char *data, size_t len, etok_err *err) {
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) return etok_errc(err, ETOK_EXIT_OUTPUT, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp%d", path, (int)getpid());
    FILE *f = fopen(tmp, "wb");
    if (!f) {
        int e = errno;
        free(tmp);
        return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write %s: %s", path, strerror(e));
    }
    int bad = fwrite(data, 1, len, f) != len;
    bad |= fflush(f) != 0;
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write %s: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}

int etok_mkdirs(const char *path, etok_err *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return etok_errc(err, ETOK_EXIT_OUTPUT, "path too long: %s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot create directory %s: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot create directory %s: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return etok_errc(err, ETOK_EXIT_OUTPUT, "%s exists and is not a directory", buf);
    return 0;
}

const char *etok_sysfs_root(void) {
    const char *r = getenv("ETOK_SYSFS_ROOT");
    return (r && *r) ? r : "/sys";
}

const char *etok_proc_root(void) {
    const char *r = getenv("ETOK_PROC_ROOT");
    return (r && *r) ? r : "/proc";
}

int etok_stderr_is_tty(void) { return isatty(STDERR_FILENO); }
