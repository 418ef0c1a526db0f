/* util.c — error messages, clocks, file helpers: bounded readers of user-given inputs and the
 * one writer of output paths (util.h says what each kind of path gets). Owns no state beyond a
 * counter that names temporary files. */
#include "etok/util.h"

#include <errno.h>
#include <fcntl.h>
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
            if (cap > ETOK_LIMIT_SMALL_FILE) { free(buf); fclose(f); errno = EFBIG; return NULL; }
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

static const char *human_bytes(size_t n, char *buf, size_t cap) {
    if (n >= ((size_t)1 << 20) && n % ((size_t)1 << 20) == 0) snprintf(buf, cap, "%zu MiB", n >> 20);
    else if (n >= 1024 && n % 1024 == 0) snprintf(buf, cap, "%zu KiB", n >> 10);
    else snprintf(buf, cap, "%zu bytes", n);
    return buf;
}

int etok_open_regular(const char *path, const char *kind, etok_err *err) {
    /* O_NONBLOCK: opening a FIFO must not wait for a writer before we can refuse it */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: cannot read: %s", path, kind, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: not a regular file (a FIFO, device or directory is not read)", path, kind);
    }
    int fl = fcntl(fd, F_GETFL);
    if (fl >= 0) fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
    return fd;
}

char *etok_read_file_bounded(const char *path, const char *kind, size_t max_bytes, size_t *len, etok_err *err) {
    char lim[32];
    int fd = etok_open_regular(path, kind, err);
    if (fd < 0) return NULL;
    struct stat st;
    if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > (uint64_t)max_bytes) {
        close(fd);
        etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: %lld bytes, over the limit of %s", path, kind, (long long)st.st_size,
                  human_bytes(max_bytes, lim, sizeof lim));
        return NULL;
    }
    /* the size may change while we read (a log being written): read at most max_bytes + 1 */
    size_t cap = st.st_size > 0 ? (size_t)st.st_size + 1 : 4096, n = 0;
    if (cap > max_bytes + 1) cap = max_bytes + 1;
    char *buf = malloc(cap + 1);
    if (!buf) {
        close(fd);
        etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory reading %s", path, kind);
        return NULL;
    }
    for (;;) {
        if (n == cap) {
            if (cap > max_bytes) {
                free(buf);
                close(fd);
                etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: over the limit of %s", path, kind, human_bytes(max_bytes, lim, sizeof lim));
                return NULL;
            }
            size_t nc = cap * 2 > max_bytes + 1 ? max_bytes + 1 : cap * 2;
            char *nb = realloc(buf, nc + 1);
            if (!nb) {
                free(buf);
                close(fd);
                etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory reading %s", path, kind);
                return NULL;
            }
            buf = nb;
            cap = nc;
        }
        ssize_t got = read(fd, buf + n, cap - n);
        if (got < 0 && errno == EINTR) continue;
        if (got < 0) {
            int e = errno;
            free(buf);
            close(fd);
            etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: cannot read: %s", path, kind, strerror(e));
            return NULL;
        }
        if (got == 0) break;
        n += (size_t)got;
    }
    close(fd);
    if (n > max_bytes) {
        free(buf);
        etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: over the limit of %s", path, kind, human_bytes(max_bytes, lim, sizeof lim));
        return NULL;
    }
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

/* ---- output paths ------------------------------------------------------------------ */

static int write_all(int fd, const char *data, size_t len) {
    while (len) {
        ssize_t w = write(fd, data, len);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) return -1;
        if (w == 0) { errno = EIO; return -1; }
        data += w;
        len -= (size_t)w;
    }
    return 0;
}

static int directory_of(const char *final, char *dir, size_t cap) {
    const char *slash = strrchr(final, '/');
    if (!slash) return snprintf(dir, cap, ".") >= (int)cap ? -1 : 0;
    if (slash == final) return snprintf(dir, cap, "/") >= (int)cap ? -1 : 0;
    return snprintf(dir, cap, "%.*s", (int)(slash - final), final) >= (int)cap ? -1 : 0;
}

/* The kernel's fs.protected_symlinks rule, which following links by hand would bypass: in a
 * sticky world-writable directory (/tmp) a symlink is followed only when it belongs to us or to
 * the directory's owner, so nobody can point our output (say $TMPDIR/etok-run-PID.json) at a
 * file of ours. */
static int link_may_be_followed(const char *link, const struct stat *lst) {
    if (lst->st_uid == geteuid()) return 1;
    char dir[4096];
    struct stat dst;
    if (directory_of(link, dir, sizeof dir) != 0 || stat(dir, &dst) != 0) return 0;
    if (!((dst.st_mode & S_ISVTX) && (dst.st_mode & S_IWOTH))) return 1;
    return lst->st_uid == dst.st_uid;
}

/* Follows symlinks one by one (at most 40) to the path that will really be written: *exists
 * says whether it exists (st then holds its lstat), else it is a file to create. A malloc'd
 * path, or NULL with err set. */
static char *resolve_output(const char *path, struct stat *st, int *exists, etok_err *err) {
    char *cur = strdup(path);
    if (!cur) { etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': out of memory", path); return NULL; }
    for (int hops = 0;; hops++) {
        if (lstat(cur, st) != 0) {
            if (errno == ENOENT) { *exists = 0; return cur; }
            etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
            free(cur);
            return NULL;
        }
        if (!S_ISLNK(st->st_mode)) { *exists = 1; return cur; }
        if (!link_may_be_followed(cur, st)) {
            etok_errc(err, ETOK_EXIT_OUTPUT,
                      "cannot write '%s': refusing to follow '%s', another user's symlink in a sticky world-writable "
                      "directory", path, cur);
            free(cur);
            return NULL;
        }
        if (hops >= 40) {
            etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(ELOOP));
            free(cur);
            return NULL;
        }
        size_t cap = (size_t)(st->st_size > 0 ? st->st_size : 255) + 1;
        char *target = malloc(cap);
        ssize_t n = target ? readlink(cur, target, cap) : -1;
        if (n < 0 || (size_t)n >= cap) { /* gone or grew between lstat and readlink */
            free(target);
            etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': the symlink changed while it was resolved", path);
            free(cur);
            return NULL;
        }
        target[n] = '\0';
        char *next;
        const char *slash = strrchr(cur, '/');
        if (target[0] == '/' || !slash) {
            next = target;
        } else { /* relative to the link's directory */
            size_t dl = (size_t)(slash - cur) + 1;
            next = malloc(dl + (size_t)n + 1);
            if (next) {
                memcpy(next, cur, dl);
                memcpy(next + dl, target, (size_t)n + 1);
            }
            free(target);
        }
        free(cur);
        if (!next) { etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': out of memory", path); return NULL; }
        cur = next;
    }
}

static const char *kind_of(mode_t m) {
    return S_ISDIR(m) ? "Is a directory" : S_ISBLK(m) ? "is a block device" : S_ISSOCK(m) ? "is a socket" : "is not a regular file";
}

/* Creates a uniquely named temporary file next to final (same directory, so rename is atomic).
 * Returns its fd and fills tmp, or -1 with errno set. */
static int open_tmp_next_to(const char *final, char *tmp, size_t cap, mode_t mode) {
    static unsigned counter; /* uniqueness within the process; O_EXCL guarantees it anyway */
    for (int tries = 0; tries < 100; tries++) {
        unsigned c = __atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED);
        if (snprintf(tmp, cap, "%s.etok-tmp-%d-%u", final, (int)getpid(), c) >= (int)cap) { errno = ENAMETOOLONG; return -1; }
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
        if (fd >= 0 || errno != EEXIST) return fd;
    }
    errno = EEXIST;
    return -1;
}

int etok_write_file_atomic(const char *path, const char *data, size_t len, etok_err *err) {
    if (!strcmp(path, "-")) {
        if (fwrite(data, 1, len, stdout) != len || fflush(stdout) != 0)
            return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write to standard output: %s", strerror(errno ? errno : EIO));
        return 0;
    }
    struct stat st;
    int exists = 0;
    char *final = resolve_output(path, &st, &exists, err);
    if (!final) return -1;
    int rc = 0;
    if (exists && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        /* a pipe or a device: write straight through; replacing it would destroy it */
        int fd = open(final, O_WRONLY | O_NOCTTY | O_CLOEXEC);
        if (fd < 0 || write_all(fd, data, len) != 0) {
            int e = errno;
            if (fd >= 0) close(fd);
            rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(e));
        } else if (close(fd) != 0) {
            rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
        }
    } else if (exists && !S_ISREG(st.st_mode)) {
        rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s'%s%s%s: %s; refusing to replace it", path,
                       strcmp(path, final) ? " (a symlink to '" : "", strcmp(path, final) ? final : "",
                       strcmp(path, final) ? "')" : "", kind_of(st.st_mode));
    } else { /* a regular file or a new one: temporary file, fsync, rename over it */
        size_t cap = strlen(final) + 48;
        char *tmp = malloc(cap);
        int fd = tmp ? open_tmp_next_to(final, tmp, cap, exists ? 0600 : 0666) : -1;
        int e = tmp ? errno : ENOMEM;
        if (fd >= 0) {
            if (exists) { /* keep the replaced file's mode and (when we may) its owner */
                if (fchown(fd, st.st_uid, st.st_gid) != 0) { /* not ours to give away: keep ours */ }
                (void)fchmod(fd, st.st_mode & 07777);
            }
            int bad = write_all(fd, data, len) != 0 || fsync(fd) != 0;
            e = errno;
            if (close(fd) != 0 && !bad) { bad = 1; e = errno; }
            if (!bad && rename(tmp, final) != 0) { bad = 1; e = errno; }
            if (bad) {
                unlink(tmp);
                rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(e));
            } else {
                char dir[4096]; /* make the rename durable; best effort */
                if (directory_of(final, dir, sizeof dir) == 0) {
                    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                    if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
                }
            }
        } else {
            rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(e));
        }
        free(tmp);
    }
    free(final);
    return rc;
}

int etok_check_output_dir(const char *dir, etok_err *err) {
    struct stat st;
    if (stat(dir, &st) != 0) return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write in '%s': %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write in '%s': %s", dir, strerror(ENOTDIR));
    size_t cap = strlen(dir) + 64;
    char *probe = malloc(cap);
    if (!probe) return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write in '%s': out of memory", dir);
    char base[4096 + 16];
    snprintf(base, sizeof base, "%s/.etok-write-test", dir);
    int fd = open_tmp_next_to(base, probe, cap, 0600);
    if (fd < 0) {
        int e = errno;
        free(probe);
        return etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write in '%s': %s", dir, strerror(e));
    }
    close(fd);
    unlink(probe);
    free(probe);
    return 0;
}

int etok_check_output_path(const char *path, etok_err *err) {
    if (!strcmp(path, "-")) return 0;
    struct stat st;
    int exists = 0;
    char *final = resolve_output(path, &st, &exists, err);
    if (!final) return -1;
    int rc = 0;
    if (exists && (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode))) {
        if (access(final, W_OK) != 0) rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s", path, strerror(errno));
    } else if (exists && !S_ISREG(st.st_mode)) {
        rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': %s; refusing to replace it", path, kind_of(st.st_mode));
    } else {
        char dir[4096];
        etok_err e = {{0}, 0};
        if (directory_of(final, dir, sizeof dir) != 0) rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s': path too long", path);
        else if (etok_check_output_dir(dir, &e) != 0) {
            const char *why = strrchr(e.msg, ':');
            rc = etok_errc(err, ETOK_EXIT_OUTPUT, "cannot write '%s'%s", path, why ? why : ": directory not writable");
        }
    }
    free(final);
    return rc;
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
