/* test_util_io.c — output paths never destroy what they point at, and user-given inputs are
 * bounded (include/etok/util.h): a regular file is replaced whole (mode kept, no temporary left,
 * the old file intact when the write fails), a symlink's target is written and the link stays, a
 * FIFO or character device is written straight through and stays what it is, a directory is
 * refused; a bounded read refuses devices, FIFOs and oversized files without reading them. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "test_meter_fixture.h"
#include "etok/util.h"

static char *g_dir;

static int setup(void **state) {
    (void)state;
    g_dir = fx_tmpdir();
    return g_dir ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    fx_rmrf(g_dir);
    return 0;
}

static const char *at(const char *name) {
    static char p[4][1024];
    static int i;
    i = (i + 1) % 4;
    snprintf(p[i], sizeof p[i], "%s/%s", g_dir, name);
    return p[i];
}

static char *slurp(const char *path) {
    char *t = etok_read_file(path, NULL);
    assert_non_null(t);
    return t;
}

static void assert_content(const char *path, const char *want) {
    char *t = slurp(path);
    assert_string_equal(t, want);
    free(t);
}

/* no "*.etok-tmp-*" file is left in g_dir */
static void assert_no_tmp(void) {
    DIR *d = opendir(g_dir);
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d)))
        if (strstr(e->d_name, ".etok-tmp-") || strstr(e->d_name, ".etok-write-test")) fail_msg("left behind: %s", e->d_name);
    closedir(d);
}

static void regular_file_replaced_whole_mode_kept(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    const char *p = at("r.json");
    assert_int_equal(etok_write_file_atomic(p, "new file\n", 9, &err), 0);
    assert_content(p, "new file\n");
    assert_int_equal(fx_write(g_dir, "old.json", "old content that is longer\n", 0640), 0);
    assert_int_equal(chmod(at("old.json"), 0640), 0);
    assert_int_equal(etok_write_file_atomic(at("old.json"), "short\n", 6, &err), 0);
    assert_content(at("old.json"), "short\n");
    struct stat st;
    assert_int_equal(stat(at("old.json"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0640);
    assert_true(S_ISREG(st.st_mode));
    assert_no_tmp();
}

static void symlink_target_written_link_kept(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    assert_int_equal(fx_write(g_dir, "target.json", "old\n", 0600), 0);
    assert_int_equal(chmod(at("target.json"), 0600), 0);
    assert_int_equal(symlink("target.json", at("link.json")), 0);
    assert_int_equal(etok_write_file_atomic(at("link.json"), "via link\n", 9, &err), 0);
    struct stat st;
    assert_int_equal(lstat(at("link.json"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_content(at("target.json"), "via link\n");
    assert_int_equal(stat(at("target.json"), &st), 0);
    assert_int_equal(st.st_mode & 07777, 0600);
    /* a dangling link: its target is created, the link stays */
    assert_int_equal(symlink("fresh.json", at("dangling.json")), 0);
    assert_int_equal(etok_write_file_atomic(at("dangling.json"), "fresh\n", 6, &err), 0);
    assert_int_equal(lstat(at("dangling.json"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    assert_content(at("fresh.json"), "fresh\n");
    /* a chain of relative links into a subdirectory */
    assert_int_equal(mkdir(at("sub"), 0755), 0);
    assert_int_equal(fx_write(g_dir, "sub/deep.json", "x", 0644), 0);
    assert_int_equal(symlink("sub/deep.json", at("l1")), 0);
    assert_int_equal(symlink("l1", at("l2")), 0);
    assert_int_equal(etok_write_file_atomic(at("l2"), "deep\n", 5, &err), 0);
    assert_content(at("sub/deep.json"), "deep\n");
    assert_int_equal(lstat(at("l1"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* a loop is refused */
    assert_int_equal(symlink("loop2", at("loop1")), 0);
    assert_int_equal(symlink("loop1", at("loop2")), 0);
    assert_int_equal(etok_write_file_atomic(at("loop1"), "x", 1, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_OUTPUT);
    assert_no_tmp();
}

static void fifo_written_through(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    assert_int_equal(mkfifo(at("fifo"), 0600), 0);
    int rd = open(at("fifo"), O_RDONLY | O_NONBLOCK); /* a reader, so the writer's open returns */
    assert_true(rd >= 0);
    assert_int_equal(etok_check_output_path(at("fifo"), &err), 0);
    assert_int_equal(etok_write_file_atomic(at("fifo"), "through the pipe\n", 17, &err), 0);
    char buf[64] = {0};
    assert_int_equal(read(rd, buf, sizeof buf - 1), 17);
    assert_string_equal(buf, "through the pipe\n");
    close(rd);
    struct stat st;
    assert_int_equal(lstat(at("fifo"), &st), 0);
    assert_true(S_ISFIFO(st.st_mode));
    assert_no_tmp();
}

static void char_device_stays_a_device(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    assert_int_equal(etok_check_output_path("/dev/null", &err), 0);
    assert_int_equal(etok_write_file_atomic("/dev/null", "gone\n", 5, &err), 0);
    struct stat st;
    assert_int_equal(lstat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    /* through a symlink in our directory */
    assert_int_equal(symlink("/dev/null", at("null-link")), 0);
    assert_int_equal(etok_write_file_atomic(at("null-link"), "gone\n", 5, &err), 0);
    assert_int_equal(lstat("/dev/null", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
    assert_int_equal(lstat(at("null-link"), &st), 0);
    assert_true(S_ISLNK(st.st_mode));
    /* a device that fails the write: exit 5, named, one line */
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_write_file_atomic("/dev/full", "x", 1, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_OUTPUT);
    assert_non_null(strstr(err.msg, "/dev/full"));
    assert_non_null(strstr(err.msg, strerror(ENOSPC)));
    assert_null(strchr(err.msg, '\n'));
    assert_int_equal(lstat("/dev/full", &st), 0);
    assert_true(S_ISCHR(st.st_mode));
}

static void directory_refused_untouched(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    assert_int_equal(mkdir(at("d"), 0755), 0);
    assert_int_equal(etok_write_file_atomic(at("d"), "x", 1, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_OUTPUT);
    assert_non_null(strstr(err.msg, "Is a directory"));
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_check_output_path(at("d"), &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_OUTPUT);
    struct stat st;
    assert_int_equal(stat(at("d"), &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    /* a missing directory: refused by the check, nothing created */
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_check_output_path(at("no/such/r.json"), &err), -1);
    assert_non_null(strstr(err.msg, "no/such/r.json"));
    assert_int_equal(stat(at("no"), &st), -1);
    /* the check on a regular file changes nothing */
    assert_int_equal(fx_write(g_dir, "keep.json", "keep\n", 0644), 0);
    assert_int_equal(etok_check_output_path(at("keep.json"), &err), 0);
    assert_content(at("keep.json"), "keep\n");
    assert_no_tmp();
}

/* A write that fails half-way (RLIMIT_FSIZE stands in for a full disk) leaves the old file as
 * it was and no temporary file; run in a child so the limit stays there. */
static void failed_write_keeps_old_file(void **state) {
    (void)state;
    assert_int_equal(fx_write(g_dir, "full.json", "{\"old\": true}\n", 0644), 0);
    size_t big = 256 * 1024;
    char *data = malloc(big);
    assert_non_null(data);
    memset(data, 'x', big);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {16 * 1024, 16 * 1024};
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0) _exit(10);
        etok_err err = {{0}, 0};
        int rc = etok_write_file_atomic(at("full.json"), data, big, &err);
        _exit(rc == -1 && err.exit_code == ETOK_EXIT_OUTPUT && strstr(err.msg, "full.json") ? 0 : 11);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    free(data);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_content(at("full.json"), "{\"old\": true}\n");
    assert_no_tmp();
}

/* Another user's symlink in a sticky world-writable directory (like /tmp) is not followed
 * (the kernel's protected_symlinks rule; following by hand must not bypass it). Needs root to
 * give the link away. */
static void foreign_link_in_sticky_dir_refused(void **state) {
    (void)state;
    if (geteuid() != 0) {
        skip();
        return;
    }
    assert_int_equal(mkdir(at("sticky"), 0755), 0);
    assert_int_equal(chmod(at("sticky"), 01777), 0);
    assert_int_equal(fx_write(g_dir, "victim.json", "mine\n", 0644), 0);
    assert_int_equal(symlink(at("victim.json"), at("sticky/out.json")), 0);
    assert_int_equal(lchown(at("sticky/out.json"), 12345, 12345), 0);
    etok_err err = {{0}, 0};
    assert_int_equal(etok_write_file_atomic(at("sticky/out.json"), "forged\n", 7, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_OUTPUT);
    assert_non_null(strstr(err.msg, "symlink"));
    assert_content(at("victim.json"), "mine\n");
    /* our own link there is followed */
    assert_int_equal(symlink(at("victim.json"), at("sticky/own.json")), 0);
    assert_int_equal(etok_write_file_atomic(at("sticky/own.json"), "ours\n", 5, &err), 0);
    assert_content(at("victim.json"), "ours\n");
}

static void bounded_read_refuses_devices_fifos_and_big_files(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    size_t len = 0;
    assert_int_equal(fx_write(g_dir, "ok.json", "{\"a\": 1}\n", 0644), 0);
    char *t = etok_read_file_bounded(at("ok.json"), "scenario", 100, &len, &err);
    assert_non_null(t);
    assert_int_equal(len, 9);
    assert_string_equal(t, "{\"a\": 1}\n");
    free(t);
    /* exactly at the limit is fine, one byte over is not */
    assert_non_null((t = etok_read_file_bounded(at("ok.json"), "scenario", 9, &len, &err)));
    free(t);
    assert_null(etok_read_file_bounded(at("ok.json"), "scenario", 8, &len, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "ok.json: scenario"));
    assert_non_null(strstr(err.msg, "limit"));
    /* a huge sparse file: refused from its size, nothing read */
    int fd = open(at("sparse"), O_WRONLY | O_CREAT, 0644);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)1 << 34), 0);
    close(fd);
    memset(&err, 0, sizeof err);
    assert_null(etok_read_file_bounded(at("sparse"), "run record", ETOK_LIMIT_RECORD, &len, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "17179869184 bytes"));
    /* /dev/zero and a FIFO without a writer: refused at once (the FIFO open must not block) */
    memset(&err, 0, sizeof err);
    assert_null(etok_read_file_bounded("/dev/zero", "eval set", ETOK_LIMIT_EVALSET, &len, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "/dev/zero: eval set: not a regular file"));
    assert_int_equal(mkfifo(at("in.fifo"), 0600), 0);
    memset(&err, 0, sizeof err);
    assert_null(etok_read_file_bounded(at("in.fifo"), "scenario", ETOK_LIMIT_SCENARIO, &len, &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
    memset(&err, 0, sizeof err);
    assert_null(etok_read_file_bounded(g_dir, "scenario", ETOK_LIMIT_SCENARIO, &len, &err));
    assert_non_null(strstr(err.msg, "not a regular file"));
    memset(&err, 0, sizeof err);
    assert_null(etok_read_file_bounded(at("missing.json"), "scenario", ETOK_LIMIT_SCENARIO, &len, &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "missing.json: scenario: cannot read"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(regular_file_replaced_whole_mode_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(symlink_target_written_link_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(fifo_written_through, setup, teardown),
        cmocka_unit_test_setup_teardown(char_device_stays_a_device, setup, teardown),
        cmocka_unit_test_setup_teardown(directory_refused_untouched, setup, teardown),
        cmocka_unit_test_setup_teardown(failed_write_keeps_old_file, setup, teardown),
        cmocka_unit_test_setup_teardown(foreign_link_in_sticky_dir_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(bounded_read_refuses_devices_fifos_and_big_files, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
