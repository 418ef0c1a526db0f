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

/* Read a whole small file (sysfs attribute, /proc file, a file etok wrote) into a malloc'd
 * NUL-terminated buffer. At most ETOK_LIMIT_SMALL_FILE bytes (else errno EFBIG). Returns NULL
 * with errno set on failure. len may be NULL. Not for user-given inputs: see below. */
char *etok_read_file(const char *path, size_t *len);
/* Read a sysfs-style file holding one integer; returns 0 ok, -1 with errno set. */
int etok_read_u64(const char *path, uint64_t *out);

/* ---- user-given inputs: bounded ----
 * Every file a user names is read through these: it must be a regular file (a FIFO, a device
 * like /dev/zero or a directory is refused before anything is read) and at most the limit of
 * its kind (refused from its size, and again while reading: a growing file is cut off at the
 * limit + 1 byte). Errors are one line naming the file, with exit code ETOK_EXIT_INPUT. The
 * limits are documented in docs/CLI.md ("Input limits"). */
#define ETOK_LIMIT_SMALL_FILE ((size_t)16 << 20)  /* etok_read_file: sysfs, /proc, own files */
#define ETOK_LIMIT_SCENARIO ((size_t)4 << 20)     /* a TPF scenario (JSON) */
#define ETOK_LIMIT_CATALOG ((size_t)4 << 20)      /* a data/hardware or data/models entry */
#define ETOK_LIMIT_PROFILE ((size_t)1 << 20)      /* a hardware profile (etok probe) */
#define ETOK_LIMIT_RECORD ((size_t)256 << 20)     /* a run record: ~19 h of 10 domains at 10 Hz */
#define ETOK_LIMIT_EVALSET ((size_t)64 << 20)     /* an eval set (JSON lines) */
#define ETOK_LIMIT_SHAREGPT ((size_t)1 << 30)     /* a ShareGPT file (the public V3 split is ~650 MB) */
#define ETOK_LIMIT_CORPUS ((size_t)64 << 20)      /* a word corpus (bench --dataset-path, random) */
#define ETOK_LIMIT_TOKENS_FILE ((size_t)64 << 10) /* the exporter's tokens file */
#define ETOK_LIMIT_EXTLOG_LINE ((size_t)4096)     /* one line of an extlog (read as a stream) */

/* Opens path for reading after checking it is a regular file (without blocking on a FIFO).
 * kind names the input in messages ("scenario"). Returns the fd, or -1 with err set (exit 3). */
int etok_open_regular(const char *path, const char *kind, etok_err *err);
/* Reads a whole regular file of at most max_bytes into a malloc'd NUL-terminated buffer;
 * NULL with err set (exit 3 naming the file and the limit; exit 1 for out of memory). */
char *etok_read_file_bounded(const char *path, const char *kind, size_t max_bytes, size_t *len, etok_err *err);

/* ---- output paths: never destroy what they point at ----
 * Write a whole buffer to an output path, by what the path is:
 *  - "-": standard output (written and flushed);
 *  - a regular file, or nothing yet: a temporary file next to it (same directory), written,
 *    fsync'd and renamed over it; an existing file's mode (and owner, where allowed) is kept.
 *    A failed write leaves the old file intact and no temporary file behind;
 *  - a symlink: followed (hop by hop, also when dangling) and its target replaced as above;
 *    the link itself stays;
 *  - a FIFO or character device (/dev/null, /dev/stdout as a pipe or tty): opened without
 *    O_CREAT/O_TRUNC and written straight through;
 *  - anything else (a directory, a block device, a socket): refused.
 * 0 ok, -1 with err set: one line "cannot write 'PATH': why", exit code ETOK_EXIT_OUTPUT.
 * Every output file of every command goes through this one function. */
int etok_write_file_atomic(const char *path, const char *data, size_t len, etok_err *err);
/* Whether etok_write_file_atomic(path) can be expected to succeed, checked before any work and
 * without changing anything at path (a probe file is created and removed next to a regular
 * file). 0 ok, -1 with err set (exit 5). */
int etok_check_output_path(const char *path, etok_err *err);
/* Whether files can be created in directory dir (a uniquely named probe file, created with
 * O_EXCL and removed). 0 ok, -1 with err set (exit 5). */
int etok_check_output_dir(const char *dir, etok_err *err);
/* mkdir -p. 0 ok, -1 with err set. */
int etok_mkdirs(const char *path, etok_err *err);

/* Environment-configurable roots so tests can point at fixture trees. */
const char *etok_sysfs_root(void); /* ETOK_SYSFS_ROOT, default "/sys"  */
const char *etok_proc_root(void);  /* ETOK_PROC_ROOT,  default "/proc" */

/* Is stderr a terminal (progress bars only then)? */
int etok_stderr_is_tty(void);

#endif
