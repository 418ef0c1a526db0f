/* test_command.c — drive/command.c: token regex scanning (stdout and stderr, last match,
 * thousands separators, lines without a count), exit statuses with the shell's convention,
 * a command that does not exist, signal forwarding through a signalfd to the command's process
 * group, SIGKILL of the group after the grace period, and no process of the group outliving
 * the run (issue 9 §9), window edges on output lines (--window-start/--window-end). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etok/command.h"

static etok_command_result run_sh(const char *script, const char *re, int sig_fd) {
    char *argv[] = {"sh", "-c", (char *)script, NULL};
    etok_command_opts o = {.tokens_regex = re, .signal_fd = sig_fd};
    etok_command_result res;
    etok_err err = {0};
    int rc = etok_command_run(argv, &o, &res, &err);
    if (rc != 0) fail_msg("%s", err.msg);
    return res;
}

static void regex_takes_the_last_integer_match_from_both_streams(void **state) {
    (void)state;
    etok_command_result r = run_sh("echo 'eval: 12 tokens'; sleep 0.2; echo 'eval: 1,234 tokens' >&2; sleep 0.2; echo 'eval: many tokens'",
                                   "eval: ([0-9,a-z]+) tokens", -1);
    assert_int_equal(r.exit_status, 0);
    assert_true(r.tokens_found);
    assert_int_equal(r.tokens, 1234); /* "many" is not a count and does not override */
    assert_int_equal(r.tokens_matches, 2);
    assert_string_equal(r.tokens_line, "eval: 1,234 tokens");

    /* a final line without a newline is still scanned */
    r = run_sh("printf 'n_decode = 77'", "n_decode = ([0-9]+)", -1);
    assert_true(r.tokens_found);
    assert_int_equal(r.tokens, 77);

    /* no match: not found, count untouched */
    r = run_sh("echo nothing here", "tokens: ([0-9]+)", -1);
    assert_false(r.tokens_found);
    assert_int_equal(r.tokens, 0);

    /* a lot of output, with the match in the middle of a long stream */
    r = run_sh("i=0; while [ $i -lt 2000 ]; do echo \"line $i padding padding padding\"; i=$((i+1)); done; "
               "echo 'total tokens: 5000'; i=0; while [ $i -lt 500 ]; do echo x; i=$((i+1)); done",
               "total tokens: ([0-9]+)", -1);
    assert_int_equal(r.tokens, 5000);
}

static void regex_needs_one_capture_group(void **state) {
    (void)state;
    etok_err err = {0};
    assert_int_equal(etok_command_check_regex("tokens: ([0-9]+)", &err), 0);
    assert_int_equal(etok_command_check_regex("tokens: [0-9]+", &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    assert_int_equal(etok_command_check_regex("(a)(b)", &err), -1);
    assert_int_equal(etok_command_check_regex("(unclosed", &err), -1);
}

static void exit_status_follows_the_shell(void **state) {
    (void)state;
    assert_int_equal(run_sh("exit 0", NULL, -1).exit_status, 0);
    assert_int_equal(run_sh("exit 42", NULL, -1).exit_status, 42);
    assert_int_equal(run_sh("kill -TERM $$", NULL, -1).exit_status, 128 + SIGTERM);
}

static void missing_commands_are_errors_like_a_shell(void **state) {
    (void)state;
    etok_err err = {0};
    assert_int_equal(etok_command_resolve("sh", &err), 0);
    assert_int_equal(etok_command_resolve("no-such-command-etok", &err), -1);
    assert_int_equal(err.exit_code, 127);
    assert_string_equal(err.msg, "cannot run 'no-such-command-etok': No such file or directory");
    assert_int_equal(etok_command_resolve("/", &err), -1);
    assert_int_equal(err.exit_code, 126);

    char *argv[] = {"no-such-command-etok", NULL};
    etok_command_result res;
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_command_run(argv, NULL, &res, &err), -1);
    assert_int_equal(err.exit_code, 127);
    assert_non_null(strstr(err.msg, "No such file or directory"));
}

static void signals_are_forwarded(void **state) {
    (void)state;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    assert_true(fd >= 0);
    /* the signal is already pending: forwarded as soon as the loop sees it; the child
     * (default SIGUSR1 action) dies of it */
    kill(getpid(), SIGUSR1);
    etok_command_result r = run_sh("sleep 5", NULL, fd);
    assert_true(r.interrupted);
    assert_int_equal(r.exit_status, 128 + SIGUSR1);
    close(fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

/* The pid the script wrote to path (its background child). */
static pid_t read_pid(const char *path) {
    FILE *f = fopen(path, "r");
    if (!f) fail_msg("%s: not written", path);
    long p = 0;
    if (fscanf(f, "%ld", &p) != 1) p = 0;
    fclose(f);
    unlink(path);
    assert_true(p > 1);
    return (pid_t)p;
}

/* kill(pid, 0) fails with ESRCH: gone and reaped (etok is the orphans' subreaper) */
static void assert_gone(pid_t pid) {
    if (kill(pid, 0) == 0 || errno != ESRCH) {
        kill(pid, SIGKILL);
        fail_msg("process %d outlived the run", (int)pid);
    }
}

static void the_group_is_killed_after_the_grace_period(void **state) {
    (void)state;
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigprocmask(SIG_BLOCK, &set, &old);
    int fd = signalfd(-1, &set, SFD_CLOEXEC);
    assert_true(fd >= 0);
    char pidfile[64], script[256];
    snprintf(pidfile, sizeof pidfile, "/tmp/etok-test-cmd-%d.pid", (int)getpid());
    /* the shell and its child ignore the signal: only the grace period's SIGKILL ends them */
    snprintf(script, sizeof script, "trap '' USR1; sleep 30 & echo $! > %s.tmp; mv %s.tmp %s; wait", pidfile, pidfile,
             pidfile);
    char *argv[] = {"sh", "-c", script, NULL};
    etok_command_opts o = {.signal_fd = fd, .kill_grace_s = 0.3};
    etok_command_result r;
    etok_err err = {0};
    /* send the signal once the child exists: a helper process waits for the pid file */
    pid_t helper = fork();
    assert_true(helper >= 0);
    if (helper == 0) {
        for (int i = 0; i < 3000 && access(pidfile, F_OK) != 0; i++) usleep(10000);
        kill(getppid(), SIGUSR1);
        _exit(0);
    }
    assert_int_equal(etok_command_run(argv, &o, &r, &err), 0);
    while (waitpid(helper, NULL, 0) < 0 && errno == EINTR) {}
    assert_true(r.interrupted);
    assert_true(r.grace_expired);
    assert_int_equal(r.exit_status, 128 + SIGKILL);
    assert_gone(read_pid(pidfile));
    close(fd);
    sigprocmask(SIG_SETMASK, &old, NULL);
}

static void nothing_of_the_group_outlives_a_normal_exit(void **state) {
    (void)state;
    char pidfile[64], script[256];
    snprintf(pidfile, sizeof pidfile, "/tmp/etok-test-cmd-%d.left", (int)getpid());
    /* the command exits at once, leaving a child that even ignores SIGTERM */
    snprintf(script, sizeof script, "(trap '' TERM; exec sleep 30) & echo $! > %s; exit 4", pidfile);
    etok_command_result r = run_sh(script, NULL, -1);
    assert_int_equal(r.exit_status, 4);
    assert_true(r.leftover);
    assert_false(r.interrupted);
    assert_gone(read_pid(pidfile));
    /* and a command that leaves nothing behind is not reported */
    r = run_sh("sleep 0.1 & wait", NULL, -1);
    assert_false(r.leftover);
}

/* --window-start/--window-end: the first start line opens, the first LATER end line closes
 * (an end line before the start does not count; a line matching both only opens), each edge
 * reported once, in order, and the lines kept. */
typedef struct {
    int edges[4];
    int n;
} edge_log;

static void log_edge(void *ctx, int edge) {
    edge_log *l = ctx;
    if (l->n < 4) l->edges[l->n] = edge;
    l->n++;
}

static void window_edges_follow_output_lines(void **state) {
    (void)state;
    char *argv[] = {"sh", "-c", "echo 'done early'; echo 'ready done'; echo 'work'; echo 'ready again'; echo 'all done'; echo 'done twice'", NULL};
    edge_log l = {{0}, 0};
    etok_command_opts o = {.signal_fd = -1, .window_start_regex = "^ready", .window_end_regex = "done",
                           .on_window_edge = log_edge, .on_window_ctx = &l};
    etok_command_result r;
    etok_err err = {0};
    assert_int_equal(etok_command_run(argv, &o, &r, &err), 0);
    assert_int_equal(l.n, 2);
    assert_int_equal(l.edges[0], 0);
    assert_int_equal(l.edges[1], 1);
    assert_true(r.window_opened && r.window_closed);
    assert_string_equal(r.window_start_line, "ready done");
    assert_string_equal(r.window_end_line, "all done");
    /* no match: no edge, nothing set */
    l.n = 0;
    o.window_start_regex = "^never$";
    assert_int_equal(etok_command_run(argv, &o, &r, &err), 0);
    assert_int_equal(l.n, 0);
    assert_false(r.window_opened || r.window_closed);
    /* an end regex alone closes at its first line */
    o.window_start_regex = NULL;
    assert_int_equal(etok_command_run(argv, &o, &r, &err), 0);
    assert_int_equal(l.n, 1);
    assert_int_equal(l.edges[0], 1);
    assert_string_equal(r.window_end_line, "done early");
    assert_int_equal(etok_command_check_window_regex("--window-start", "(", &err), -1);
    assert_non_null(strstr(err.msg, "--window-start '('"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(regex_takes_the_last_integer_match_from_both_streams),
        cmocka_unit_test(regex_needs_one_capture_group),
        cmocka_unit_test(exit_status_follows_the_shell),
        cmocka_unit_test(missing_commands_are_errors_like_a_shell),
        cmocka_unit_test(signals_are_forwarded),
        cmocka_unit_test(the_group_is_killed_after_the_grace_period),
        cmocka_unit_test(nothing_of_the_group_outlives_a_normal_exit),
        cmocka_unit_test(window_edges_follow_output_lines),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
