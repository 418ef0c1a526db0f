/* test_command.c — drive/command.c: token regex scanning (stdout and stderr, last match,
 * thousands separators, lines without a count), exit statuses with the shell's convention,
 * a command that does not exist, and signal forwarding through a signalfd. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/signalfd.h>
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

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(regex_takes_the_last_integer_match_from_both_streams),
        cmocka_unit_test(regex_needs_one_capture_group),
        cmocka_unit_test(exit_status_follows_the_shell),
        cmocka_unit_test(missing_commands_are_errors_like_a_shell),
        cmocka_unit_test(signals_are_forwarded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
