/* command.h — run any command as the workload of `etok run` (src/drive/command.c).
 *
 * The command's stdout and stderr pass through to ours unchanged while both are scanned,
 * line by line, for a token count (POSIX extended regex with one capture group). The command
 * runs in a process group of its own. Signals that arrive on a signalfd are forwarded to that
 * whole group; the second one, or kill_grace_s after the first, kills the group (SIGKILL).
 * When the command exits, whatever it left running in its group gets SIGTERM, then SIGKILL
 * 2 s later (at once after an interrupt): no process of the group outlives the run. When our
 * stdin is a terminal in whose foreground we are, the group gets the terminal while it runs.
 * Its exit status is returned with the shell's convention (code, or 128 + N for signal N). */
#ifndef ETOK_COMMAND_H
#define ETOK_COMMAND_H

#include "etok/util.h"

#define ETOK_EXIT_NOT_FOUND 127 /* like a shell: the command does not exist */
#define ETOK_EXIT_NOT_EXECUTABLE 126

enum { ETOK_TOKENS_LAST = 0, ETOK_TOKENS_FIRST = 1, ETOK_TOKENS_SUM = 2 };

typedef struct {
    const char *tokens_regex; /* ERE with exactly one capture group; NULL = do not scan */
    int tokens_pick;          /* which matches make the count: ETOK_TOKENS_LAST (0, default),
                                 ETOK_TOKENS_FIRST or ETOK_TOKENS_SUM (all matches added) */
    int signal_fd;            /* signalfd of the signals to forward (SIGINT, SIGTERM); -1 = none */
    double kill_grace_s;      /* after a forwarded signal, SIGKILL the group; 0 = 10 s */
    /* Called once the command's process group exists (pgid = its pid), before its output is
     * read: etok run points the background-load readings at the group (issue 17). May be NULL. */
    void (*on_group)(void *ctx, long pgid);
    void *on_group_ctx;
    /* The measured window on output lines (etok run --window-start/--window-end, POSIX ERE):
     * on_window_edge(ctx, 0) at the first line matching window_start_regex, then (ctx, 1) at the
     * first later line matching window_end_regex. A line opens the window or closes it, never
     * both. NULL regexes: no edge is reported. The edge is when etok reads the line: as late as
     * the command's output buffering makes it (line-buffer it: stdbuf -oL, or flush). */
    const char *window_start_regex, *window_end_regex;
    void (*on_window_edge)(void *ctx, int edge);
    void *on_window_ctx;
} etok_command_opts;

typedef struct {
    int exit_status;          /* 0..255, or 128 + signal number */
    int interrupted;          /* a signal arrived on signal_fd and was forwarded */
    int grace_expired;        /* the group was killed because kill_grace_s ran out */
    int leftover;             /* processes of its group were still running when it exited: ended */
    int tokens_found;         /* the regex matched with an integer capture */
    long long tokens;         /* the count per tokens_pick: the last, the first or the sum of the
                                 matches' captures (a sum past 9e18 stays at 9e18, tokens_capped) */
    int tokens_capped;
    int tokens_matches;       /* how many lines matched with an integer capture */
    char tokens_line[256];    /* the matching line taken (last; first for FIRST; the last for SUM) */
    int window_opened, window_closed;      /* the window regexes matched */
    char window_start_line[256], window_end_line[256];
} etok_command_result;

/* The regex compiles and has exactly one capture group. 0, or -1 (ETOK_EXIT_USAGE). */
int etok_command_check_regex(const char *re, etok_err *err);
/* A window regex (OPT names the option in the message) compiles. 0, or -1 (ETOK_EXIT_USAGE). */
int etok_command_check_window_regex(const char *opt, const char *re, etok_err *err);

/* Can `name` be executed (PATH search like execvp)? 0, or -1 with
 * "cannot run 'NAME': No such file or directory" and exit code 127 (126: not executable). */
int etok_command_resolve(const char *name, etok_err *err);

/* Run argv (argv[0] searched in PATH) to completion. Returns 0 when the command ran (its
 * status is in res, whatever it is), -1 when it could not be started (err says why, with
 * exit code 127/126 like a shell, or ETOK_EXIT_FAIL). */
int etok_command_run(char *const argv[], const etok_command_opts *o, etok_command_result *res, etok_err *err);

#endif
