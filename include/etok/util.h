/* util.h — the few things every module shares: error messages, exit codes, clocks,
 * small file helpers. No global state lives here. */
#ifndef ETOK_UTIL_H
#define ETOK_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* Process exit codes used by every command (documented in docs/CLI.md). */
enum {
    ETOK_EXIT_OK = 0,
    ETOK_EXIT_FAIL = 1,        /* the work itself failed (a meter fault, a command not found) */
    ETOK_EXIT_USAGE = 2,       /* bad command line */
    ETOK_EXIT_INPUT = 3,       /* a bad input file: GGUF, scenario, eval set, record, log */
    ETOK_EXIT_PERMISSION = 4,  /* a counter exists but may not be read */
    ETOK_EXIT_OUTPUT = 5,      /* an output path cannot be written */
    ETOK_EXIT_ENDPOINT = 6,    /* bench --endpoint: the server became unreachable or every request
                                  failed (outputs written; the record says why) */
    ETOK_EXIT_INTERRUPTED = 130
};

/* An error message filled in by the function that failed. Functions that can fail return
 * int (0 ok, -1 error) or NULL, and take `etok_err *err` last. */
typedef struct {
    char msg[1024];
    int exit_code; /* one of ETOK_EXIT_*; 0 means "not set" (callers treat as FAIL) */
} etok_err;

/* printf into err->msg; returns -1 so callers can `return etok_errf(err, ...)`. NULL-safe. */
int etok_errf(etok_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Same, with an exit code. */
int etok_errc(etok_err *err, int exit_code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Monotonic seconds (CLOCK_MONOTONIC) and wall-clock seconds since the Unix epoch. */
double etok_mono_s(void);
double etok_wall_s(void);
/* Sleep for seconds (restarts on EINTR unless *stop becomes non-zero; stop may be NULL). */
void etok_sleep_s(double seconds, volatile int *stop);
/* Wait up to seconds, returning 1 early when a signal arrives on sig_fd (a signalfd; it is
 * consumed), else 0. sig_fd < 0: a plain sleep. (Added by integrate: run and bench shared it.) */
int etok_wait_or_signal(int sig_fd, double seconds);

/* Read a whole small file (sysfs attribute, JSON file) into a malloc'd NUL-terminated buffer.
 * Returns NULL with errno set on failure. len may be NULL. */
char *etok_read_file(const char *path, size_t *len);
/* Read a sysfs-style file holding one integer; returns 0 ok, -1 with errno set. */
int etok_read_u64(const char *path, uint64_t *out);
/* Write a whole buffer to path atomically (path.tmp then rename). 0 ok, -1 with err set. */
int etok_write_file_atomic(const char *path, const char *data, size_t len, etok_err *err);
/* mkdir -p. 0 ok, -1 with err set. */
int etok_mkdirs(const char *path, etok_err *err);

/* Environment-configurable roots so tests can point at fixture trees. */
const char *etok_sysfs_root(void); /* ETOK_SYSFS_ROOT, default "/sys"  */
const char *etok_proc_root(void);  /* ETOK_PROC_ROOT,  default "/proc" */

/* Is stderr a terminal (progress bars only then)? */
int etok_stderr_is_tty(void);

#endif
