/* command.c — drive: run any command as the workload (`etok run -- CMD`).
 *
 * Owns: starting the command (fork + execvp, with an exec-error pipe so a missing command is
 * an error, not a silent exit 127) in a process group of its own, copying its stdout/stderr
 * through to ours while scanning every line for the token regex, forwarding signals from a
 * signalfd to that group (escalating to SIGKILL), ending whatever the command left running in
 * its group, handing the terminal to the group and back, and its exit status.
 * Does not own: meters, timing windows or the record (cli/cmd_run.c does that).
 *
 * Process group: the child calls setpgid(0, 0) and so does the parent (setpgid(pid, pid)), so
 * the group exists before either side goes on, whoever runs first. Every signal goes to the
 * whole group (killpg), so a shell's children are reached too. When our stdin is a terminal
 * whose foreground group is ours, the command's group is made the foreground group
 * (tcsetpgrp, SIGTTOU blocked) so it can read the terminal and gets the terminal's Ctrl-C
 * itself, as without etok; the terminal is handed back when it ends. A stop (Ctrl-Z) of the
 * command stops etok's own job too and continues the command on resume.
 * etok is a child subreaper (PR_SET_CHILD_SUBREAPER) while the command runs, so the group's
 * orphans are ours to reap: a zombie of the group is not mistaken for a live process.
 *
 * Output lines longer than the scan buffer are scanned in pieces (a match across the cut is
 * missed); the count taken is, per o->tokens_pick, the last matching line's capture (the
 * default: summary lines come last), the first, or the sum of every match (a program that
 * prints one count per request). */
#include "etok/command.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "etok/parse.h"

#define LINE_CAP 4096
#define DEFAULT_KILL_GRACE_S 10.0 /* after a forwarded signal, SIGKILL the group */
#define LEFTOVER_GRACE_S 2.0      /* after the command exits: SIGTERM its group, then SIGKILL */

int etok_command_check_regex(const char *re, etok_err *err) {
    regex_t rx;
    int rc = regcomp(&rx, re, REG_EXTENDED);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &rx, msg, sizeof msg);
        return etok_errc(err, ETOK_EXIT_USAGE, "--tokens-regex '%s': %s", re, msg);
    }
    size_t n = rx.re_nsub;
    regfree(&rx);
    if (n != 1)
        return etok_errc(err, ETOK_EXIT_USAGE,
                         "--tokens-regex '%s': needs exactly one capture group around the count, has %zu", re, n);
    return 0;
}

int etok_command_check_window_regex(const char *opt, const char *re, etok_err *err) {
    regex_t rx;
    int rc = regcomp(&rx, re, REG_EXTENDED | REG_NOSUB);
    if (rc != 0) {
        char msg[256];
        regerror(rc, &rx, msg, sizeof msg);
        return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': %s", opt, re, msg);
    }
    regfree(&rx);
    return 0;
}

int etok_command_resolve(const char *name, etok_err *err) {
    if (!name || !*name) return etok_errc(err, ETOK_EXIT_NOT_FOUND, "cannot run '': No such file or directory");
    struct stat st;
    if (strchr(name, '/')) {
        if (stat(name, &st) != 0) return etok_errc(err, ETOK_EXIT_NOT_FOUND, "cannot run '%s': %s", name, strerror(errno));
        if (S_ISDIR(st.st_mode) || access(name, X_OK) != 0)
            return etok_errc(err, ETOK_EXIT_NOT_EXECUTABLE, "cannot run '%s': %s", name,
                             S_ISDIR(st.st_mode) ? "Is a directory" : strerror(EACCES));
        return 0;
    }
    const char *path = getenv("PATH");
    if (!path || !*path) path = "/usr/local/bin:/usr/bin:/bin";
    int denied = 0;
    const char *p = path;
    for (;;) {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        char full[4096];
        if (len == 0) snprintf(full, sizeof full, "%s", name);
        else snprintf(full, sizeof full, "%.*s/%s", (int)len, p, name);
        if (stat(full, &st) == 0 && !S_ISDIR(st.st_mode)) {
            if (access(full, X_OK) == 0) return 0;
            denied = 1;
        }
        if (!colon) break;
        p = colon + 1;
    }
    if (denied) return etok_errc(err, ETOK_EXIT_NOT_EXECUTABLE, "cannot run '%s': %s", name, strerror(EACCES));
    return etok_errc(err, ETOK_EXIT_NOT_FOUND, "cannot run '%s': %s", name, strerror(ENOENT));
}

/* One output stream of the child: where it goes and its partial line. */
typedef struct {
    int fd_in;   /* read end of the pipe; -1 at EOF */
    int fd_out;  /* ours: 1 or 2 */
    int out_ok;  /* 0 after our side failed (EPIPE): keep draining, stop writing */
    char line[LINE_CAP];
    size_t n;
} stream;

typedef struct {
    regex_t rx;
    int have_rx;
    int pick; /* ETOK_TOKENS_LAST / FIRST / SUM */
    regex_t win_rx[2]; /* window start, end */
    int have_win[2];
    const etok_command_opts *o;
    etok_command_result *res;
} scanner;

static void scanner_free(scanner *sc) {
    if (sc->have_rx) regfree(&sc->rx);
    for (int i = 0; i < 2; i++)
        if (sc->have_win[i]) regfree(&sc->win_rx[i]);
}

/* The window edges: the first line matching the start, then the first later one matching the end. */
static void scan_window(scanner *sc, const char *line) {
    etok_command_result *r = sc->res;
    int edge = !r->window_opened && sc->have_win[0] ? 0 : !r->window_closed && sc->have_win[1] ? 1 : -1;
    if (edge < 0 || regexec(&sc->win_rx[edge], line, 0, NULL, 0) != 0) return;
    if (edge == 0) {
        r->window_opened = 1;
        snprintf(r->window_start_line, sizeof r->window_start_line, "%s", line);
    } else {
        r->window_closed = 1;
        snprintf(r->window_end_line, sizeof r->window_end_line, "%s", line);
    }
    if (sc->o->on_window_edge) sc->o->on_window_edge(sc->o->on_window_ctx, edge);
}

static void scan_line(scanner *sc, const char *line) {
    if (sc->have_win[0] || sc->have_win[1]) scan_window(sc, line);
    if (!sc->have_rx) return;
    regmatch_t m[2];
    if (regexec(&sc->rx, line, 2, m, 0) != 0 || m[1].rm_so < 0) return;
    char num[64];
    size_t k = 0;
    for (regoff_t i = m[1].rm_so; i < m[1].rm_eo && k + 1 < sizeof num; i++) {
        char c = line[i];
        if (c == ',' || c == '_' || c == ' ') continue; /* 1,234 and 1_234 */
        num[k++] = c;
    }
    num[k] = '\0';
    long long v;
    /* a whole count the run record can hold (0..9e18, docs/RECORD.md); anything else is not a count */
    if (k == 0 || etok_parse_i64("--tokens-regex", num, 0, 9000000000000000000LL, &v, NULL)) return;
    etok_command_result *r = sc->res;
    int first = !r->tokens_found;
    r->tokens_found = 1;
    r->tokens_matches++;
    if (sc->pick == ETOK_TOKENS_FIRST && !first) return;
    if (sc->pick == ETOK_TOKENS_SUM && !first) {
        const long long cap = 9000000000000000000LL;
        if (v > cap - r->tokens) {
            r->tokens = cap;
            r->tokens_capped = 1;
        } else {
            r->tokens += v;
        }
    } else {
        r->tokens = v;
    }
    snprintf(r->tokens_line, sizeof r->tokens_line, "%s", line);
}

static void write_all(stream *s, const char *buf, size_t len) {
    while (s->out_ok && len > 0) {
        ssize_t w = write(s->fd_out, buf, len);
        if (w < 0) {
            if (errno == EINTR) continue;
            s->out_ok = 0; /* our stdout went away: keep the child running, drop its output */
            return;
        }
        buf += w;
        len -= (size_t)w;
    }
}

static void consume(stream *s, scanner *sc, const char *buf, size_t len) {
    write_all(s, buf, len);
    for (size_t i = 0; i < len; i++) {
        char c = buf[i];
        if (c == '\n' || c == '\r' || s->n + 1 >= LINE_CAP) {
            s->line[s->n] = '\0';
            if (s->n) scan_line(sc, s->line);
            s->n = 0;
            if (c == '\n' || c == '\r') continue;
        }
        s->line[s->n++] = c == '\0' ? ' ' : c;
    }
}

/* Read what is there; returns 0 on EOF (and closes), 1 otherwise. */
static int pump(stream *s, scanner *sc) {
    char buf[8192];
    for (;;) {
        ssize_t r = read(s->fd_in, buf, sizeof buf);
        if (r > 0) {
            consume(s, sc, buf, (size_t)r);
            if ((size_t)r < sizeof buf) return 1;
            continue;
        }
        if (r < 0 && errno == EINTR) continue;
        if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return 1;
        /* EOF or error */
        s->line[s->n] = '\0';
        if (s->n) scan_line(sc, s->line);
        s->n = 0;
        close(s->fd_in);
        s->fd_in = -1;
        return 0;
    }
}

static int status_code(int st) {
    if (WIFEXITED(st)) return WEXITSTATUS(st);
    if (WIFSIGNALED(st)) return 128 + WTERMSIG(st);
    return ETOK_EXIT_FAIL;
}

/* Terminal hand-off: make pgrp the foreground group of fd (SIGTTOU blocked in this thread,
 * since we may be in the background when we call it). */
static void give_tty(int fd, pid_t pgrp) {
    sigset_t ttou, old;
    sigemptyset(&ttou);
    sigaddset(&ttou, SIGTTOU);
    pthread_sigmask(SIG_BLOCK, &ttou, &old);
    (void)tcsetpgrp(fd, pgrp);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

/* Does any process of group pgrp still run? Its orphans are our children (subreaper): reap
 * those that exited first, so that only live ones count. */
static int group_alive(pid_t pgrp) {
    while (waitpid(-pgrp, NULL, WNOHANG) > 0) {}
    return killpg(pgrp, 0) == 0 || errno == EPERM;
}

int etok_command_run(char *const argv[], const etok_command_opts *o, etok_command_result *res, etok_err *err) {
    memset(res, 0, sizeof *res);
    if (!argv || !argv[0]) return etok_errc(err, ETOK_EXIT_USAGE, "no command given");
    scanner sc = {.res = res, .pick = o ? o->tokens_pick : ETOK_TOKENS_LAST};
    if (o && o->tokens_regex) {
        if (etok_command_check_regex(o->tokens_regex, err) != 0) return -1;
        if (regcomp(&sc.rx, o->tokens_regex, REG_EXTENDED) != 0) return etok_errc(err, ETOK_EXIT_USAGE, "bad regex");
        sc.have_rx = 1;
    }
    sc.o = o;
    const char *win[2] = {o ? o->window_start_regex : NULL, o ? o->window_end_regex : NULL};
    for (int i = 0; i < 2; i++) {
        if (!win[i]) continue;
        if (regcomp(&sc.win_rx[i], win[i], REG_EXTENDED | REG_NOSUB) != 0) {
            scanner_free(&sc);
            return etok_errc(err, ETOK_EXIT_USAGE, "%s '%s': bad regex", i ? "--window-end" : "--window-start", win[i]);
        }
        sc.have_win[i] = 1;
    }
    int sig_fd = o ? o->signal_fd : -1;
    double kill_grace_s = o && o->kill_grace_s > 0 ? o->kill_grace_s : DEFAULT_KILL_GRACE_S;
    int po[2] = {-1, -1}, pe[2] = {-1, -1}, px[2] = {-1, -1};
    if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 || pipe2(px, O_CLOEXEC) != 0) {
        int e = errno;
        for (int i = 0; i < 2; i++) {
            if (po[i] >= 0) close(po[i]);
            if (pe[i] >= 0) close(pe[i]);
            if (px[i] >= 0) close(px[i]);
        }
        scanner_free(&sc);
        return etok_errc(err, ETOK_EXIT_FAIL, "cannot run '%s': pipe: %s", argv[0], strerror(e));
    }
    /* the terminal goes to the command only when it is ours to give: stdin is a terminal and
     * our group is in its foreground */
    int fg_tty = isatty(STDIN_FILENO) && tcgetpgrp(STDIN_FILENO) == getpgrp();
    (void)prctl(PR_SET_CHILD_SUBREAPER, 1L, 0L, 0L, 0L);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(po[0]); close(po[1]); close(pe[0]); close(pe[1]); close(px[0]); close(px[1]);
        scanner_free(&sc);
        return etok_errc(err, ETOK_EXIT_FAIL, "cannot run '%s': fork: %s", argv[0], strerror(e));
    }
    if (pid == 0) {
        /* child: a process group of its own (and the terminal, when ours), then default signal
         * handling and an empty mask, as if started by a shell */
        (void)setpgid(0, 0);
        if (fg_tty) give_tty(STDIN_FILENO, getpid());
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGPIPE, SIG_DFL);
        signal(SIGTTOU, SIG_DFL);
        signal(SIGTTIN, SIG_DFL);
        signal(SIGTSTP, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        if (dup2(po[1], STDOUT_FILENO) < 0 || dup2(pe[1], STDERR_FILENO) < 0) _exit(ETOK_EXIT_NOT_FOUND);
        execvp(argv[0], argv);
        int e = errno;
        ssize_t w = write(px[1], &e, sizeof e);
        (void)w;
        _exit(e == ENOENT ? ETOK_EXIT_NOT_FOUND : ETOK_EXIT_NOT_EXECUTABLE);
    }
    /* the same in the parent, so the group exists whichever side runs first (EACCES once the
     * child has exec'd: it did it itself) */
    (void)setpgid(pid, pid);
    if (o && o->on_group) o->on_group(o->on_group_ctx, (long)pid);
    if (fg_tty) give_tty(STDIN_FILENO, pid);
    close(po[1]);
    close(pe[1]);
    close(px[1]);

    /* exec succeeded when the CLOEXEC pipe closes without data */
    int exec_errno = 0;
    ssize_t got;
    do got = read(px[0], &exec_errno, sizeof exec_errno);
    while (got < 0 && errno == EINTR);
    close(px[0]);
    if (got == (ssize_t)sizeof exec_errno) {
        int st;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
        if (fg_tty) give_tty(STDIN_FILENO, getpgrp());
        close(po[0]);
        close(pe[0]);
        scanner_free(&sc);
        return etok_errc(err, exec_errno == ENOENT ? ETOK_EXIT_NOT_FOUND : ETOK_EXIT_NOT_EXECUTABLE,
                         "cannot run '%s': %s", argv[0], strerror(exec_errno));
    }

    stream out = {.fd_in = po[0], .fd_out = STDOUT_FILENO, .out_ok = 1};
    stream errs = {.fd_in = pe[0], .fd_out = STDERR_FILENO, .out_ok = 1};
    fcntl(out.fd_in, F_SETFL, fcntl(out.fd_in, F_GETFL) | O_NONBLOCK);
    fcntl(errs.fd_in, F_SETFL, fcntl(errs.fd_in, F_GETFL) | O_NONBLOCK);

    int exited = 0, status = 0, forwarded = 0, killed = 0;
    double drain_until = 0, kill_at = 0, leftover_kill_at = 0;
    for (;;) {
        struct pollfd pf[3];
        int n = 0, io = -1, ie = -1, is = -1;
        if (out.fd_in >= 0) { io = n; pf[n++] = (struct pollfd){.fd = out.fd_in, .events = POLLIN}; }
        if (errs.fd_in >= 0) { ie = n; pf[n++] = (struct pollfd){.fd = errs.fd_in, .events = POLLIN}; }
        if (sig_fd >= 0) { is = n; pf[n++] = (struct pollfd){.fd = sig_fd, .events = POLLIN}; }
        int pr = poll(pf, (nfds_t)n, exited ? 0 : 100);
        if (pr < 0 && errno != EINTR) break;
        if (pr > 0) {
            if (io >= 0 && pf[io].revents) pump(&out, &sc);
            if (ie >= 0 && pf[ie].revents) pump(&errs, &sc);
            if (is >= 0 && (pf[is].revents & POLLIN)) {
                struct signalfd_siginfo si;
                if (read(sig_fd, &si, sizeof si) == (ssize_t)sizeof si && !exited) {
                    res->interrupted = 1;
                    /* The command has a group of its own: the signal goes to all of it (a
                     * terminal's Ctrl-C reached only us). The second one, or the grace period
                     * running out, kills the whole group. */
                    if (forwarded) {
                        killpg(pid, SIGKILL);
                        killed = 1;
                    } else {
                        killpg(pid, (int)si.ssi_signo);
                        kill_at = etok_mono_s() + kill_grace_s;
                    }
                    forwarded++;
                }
            }
        }
        if (!exited && forwarded && !killed && etok_mono_s() >= kill_at) {
            killpg(pid, SIGKILL);
            killed = 1;
            res->grace_expired = 1;
        }
        if (!exited) {
            pid_t w = waitpid(pid, &status, WNOHANG | (fg_tty ? WUNTRACED : 0));
            if (w == pid && WIFSTOPPED(status)) {
                /* Ctrl-Z (or a read from the terminal in the background): stop our own job
                 * too, so the shell gets the terminal back; on resume continue the command */
                give_tty(STDIN_FILENO, getpgrp());
                kill(0, SIGTSTP);
                if (tcgetpgrp(STDIN_FILENO) == getpgrp()) give_tty(STDIN_FILENO, pid);
                killpg(pid, SIGCONT);
                status = 0;
            } else if (w == pid) {
                exited = 1;
                drain_until = etok_mono_s() + 1.0;
                if (fg_tty) give_tty(STDIN_FILENO, getpgrp());
                /* nothing of the command outlives it: what it left running in its group is
                 * ended (SIGTERM, SIGKILL after a grace period; at once after an interrupt) */
                if (group_alive(pid)) {
                    res->leftover = 1;
                    killpg(pid, forwarded ? SIGKILL : SIGTERM);
                    leftover_kill_at = etok_mono_s() + (forwarded ? 0 : LEFTOVER_GRACE_S);
                }
            }
        }
        if (exited) {
            /* drain what is already buffered, without waiting for descendants that
             * inherited the pipes */
            if (out.fd_in >= 0) pump(&out, &sc);
            if (errs.fd_in >= 0) pump(&errs, &sc);
            if (pr <= 0 || (out.fd_in < 0 && errs.fd_in < 0) || etok_mono_s() > drain_until) break;
        }
    }
    if (!exited) {
        killpg(pid, SIGKILL);
        kill(pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
        if (fg_tty) give_tty(STDIN_FILENO, getpgrp());
    }
    /* the leftovers' grace period, then SIGKILL; we wait (a bounded time) until the group is
     * gone, reaping those that were reparented to us, so none outlives etok */
    if (res->leftover) {
        struct timespec tick = {0, 20 * 1000 * 1000};
        while (group_alive(pid) && etok_mono_s() < leftover_kill_at) nanosleep(&tick, NULL);
        if (group_alive(pid)) {
            killpg(pid, SIGKILL);
            double until = etok_mono_s() + 5.0;
            while (group_alive(pid) && etok_mono_s() < until) nanosleep(&tick, NULL);
        }
    }
    /* flush a last partial line into the scanner */
    if (out.fd_in >= 0) { out.line[out.n] = '\0'; if (out.n) scan_line(&sc, out.line); close(out.fd_in); }
    if (errs.fd_in >= 0) { errs.line[errs.n] = '\0'; if (errs.n) scan_line(&sc, errs.line); close(errs.fd_in); }
    res->exit_status = status_code(status);
    /* with the terminal, its Ctrl-C went to the command only: a death by SIGINT is ours too */
    if (fg_tty && WIFSIGNALED(status) && (WTERMSIG(status) == SIGINT || WTERMSIG(status) == SIGQUIT)) res->interrupted = 1;
    scanner_free(&sc);
    return 0;
}
