/* test_procenergy.c — issue 12 per-process and per-cgroup energy on a fixture /proc
 * (ETOK_PROC_ROOT) and cgroup v2 tree (ETOK_SYSFS_ROOT/fs/cgroup): the split by CPU-time
 * share, the books balancing (series + exited + unattributed = covered), cores scaled when
 * they add up to more than the machine's busy cores, a reused PID, cgroup own usage, the
 * idle power's free cores, and the exporter's families. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/procenergy.h"
#include "etok/serve.h"

static char root[256];
static double hz;

static void put(const char *rel, const char *fmt, ...) {
    char p[512], d[600];
    snprintf(p, sizeof p, "%s/%s", root, rel);
    snprintf(d, sizeof d, "mkdir -p \"$(dirname '%s')\"", p);
    assert_int_equal(system(d), 0);
    FILE *f = fopen(p, "w");
    assert_non_null(f);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(f, fmt, ap);
    va_end(ap);
    fclose(f);
}

static void rm(const char *rel) {
    char c[600];
    snprintf(c, sizeof c, "rm -rf '%s/%s'", root, rel);
    assert_int_equal(system(c), 0);
}

/* 4 cores; busy jiffies per core, total per core */
static void put_stat(unsigned long long busy, unsigned long long total) {
    put("proc/stat", "cpu  0 0 0 0\ncpu0 %llu 0 0 %llu 0 0 0 0\ncpu1 %llu 0 0 %llu 0 0 0 0\ncpu2 %llu 0 0 %llu 0 0 0 0\n"
                     "cpu3 %llu 0 0 %llu 0 0 0 0\n",
        busy, total - busy, busy, total - busy, busy, total - busy, busy, total - busy);
}

static void put_pid(long pid, const char *comm, unsigned long long ticks, unsigned long long start) {
    char rel[64];
    snprintf(rel, sizeof rel, "proc/%ld/stat", pid);
    /* utime + stime = ticks; cutime large: reaped children must not count */
    put(rel, "%ld (%s) S 1 %ld %ld 0 -1 0 0 0 0 0 %llu %llu 99999 99999 20 0 1 0 %llu 0 0\n", pid, comm, pid, pid,
        ticks - ticks / 4, ticks / 4, start);
}

static void put_cg(const char *rel, double usage_s) {
    char p[300];
    snprintf(p, sizeof p, "sys/fs/cgroup%s/cpu.stat", rel);
    put(p, "usage_usec %.0f\nuser_usec 0\nsystem_usec 0\n", usage_s * 1e6);
}

static int setup(void **state) {
    (void)state;
    snprintf(root, sizeof root, "/tmp/etok_procenergy_%d", (int)getpid());
    rm("");
    mkdir(root, 0755);
    char p[300];
    snprintf(p, sizeof p, "%s/proc", root);
    setenv("ETOK_PROC_ROOT", p, 1);
    snprintf(p, sizeof p, "%s/sys", root);
    setenv("ETOK_SYSFS_ROOT", p, 1);
    hz = (double)sysconf(_SC_CLK_TCK);
    return 0;
}

static int teardown(void **state) {
    (void)state;
    rm("");
    unsetenv("ETOK_PROC_ROOT");
    unsetenv("ETOK_SYSFS_ROOT");
    return 0;
}

static const etok_proc_energy *find_pid(const etok_procenergy_view *v, long pid) {
    for (size_t i = 0; i < v->n_procs; i++)
        if (v->procs[i].pid == pid) return &v->procs[i];
    return NULL;
}

static const etok_cgroup_energy *find_cg(const etok_procenergy_view *v, const char *path) {
    for (size_t i = 0; i < v->n_cgroups; i++)
        if (!strcmp(v->cgroups[i].path, path)) return &v->cgroups[i];
    return NULL;
}

static double proc_sum(const etok_procenergy_view *v) {
    double s = 0;
    for (size_t i = 0; i < v->n_procs; i++) s += v->procs[i].energy_j;
    return s;
}

static double cg_sum(const etok_procenergy_view *v) {
    double s = 0;
    for (size_t i = 0; i < v->n_cgroups; i++) s += v->cgroups[i].energy_j;
    return s;
}

#define NEAR(a, b) assert_true(fabs((double)(a) - (double)(b)) < 1e-6 * (1 + fabs((double)(b))))

static void test_split_and_books(void **state) {
    (void)state;
    unsigned long long H = (unsigned long long)hz; /* jiffies per second */
    put_stat(0, 0);
    put_pid(100, "a (b) \"c\"", 0, 5);
    put_pid(200, "worker", 0, 6);
    put_pid(300, "short", 10, 7);
    put_cg("", 0);
    put_cg("/a", 0);
    put_cg("/a/x", 0);
    put_cg("/a/y", 0);
    put_cg("/b", 0);
    etok_err err = {0};
    etok_procenergy *pe = etok_procenergy_open(1, 0, &err);
    assert_non_null(pe);
    assert_int_equal(etok_procenergy_update(pe, 100, &err), 0); /* primes: nothing attributed */
    etok_procenergy_view v;
    etok_procenergy_view_get(pe, &v);
    assert_int_equal(v.n_updates, 0);
    assert_true(v.cgroups_available);
    /* 1 s: machine 2 of 4 cores busy; 100 ran 1 core, 200 half a core, 300 exited, 400 was
     * born and ran 0.2 core; 10 J */
    put_stat(H / 2, H);
    put_pid(100, "a (b) \"c\"", H, 5);
    put_pid(200, "worker", H / 2, 6);
    rm("proc/300");
    put_pid(400, "new", H / 5, 9);
    put_cg("", 2.0);
    put_cg("/a", 1.5);
    put_cg("/a/x", 1.0);
    put_cg("/a/y", 0.2);
    put_cg("/b", 0.3);
    assert_int_equal(etok_procenergy_update(pe, 110, &err), 0);
    etok_procenergy_view_get(pe, &v);
    assert_int_equal(v.n_updates, 1);
    NEAR(v.covered_j, 10);
    NEAR(v.last_machine_busy_cores, 2);
    NEAR(find_pid(&v, 100)->energy_j, 10 * 1.0 / 2);
    NEAR(find_pid(&v, 200)->energy_j, 10 * 0.5 / 2);
    NEAR(find_pid(&v, 400)->energy_j, 10 * 0.2 / 2);
    assert_null(find_pid(&v, 300));
    assert_string_equal(find_pid(&v, 100)->comm, "a (b) _c_"); /* safe as a label */
    NEAR(v.proc_unattributed_j, 10 * 0.3 / 2);
    NEAR(proc_sum(&v) + v.proc_exited_j + v.proc_unattributed_j, v.covered_j);
    /* cgroups: own usage = growth less the children's: / 0.2, /a 0.3, /a/x 1.0, /a/y 0.2, /b 0.3 */
    NEAR(find_cg(&v, "/")->energy_j, 10 * 0.2 / 2);
    NEAR(find_cg(&v, "/a")->energy_j, 10 * 0.3 / 2);
    NEAR(find_cg(&v, "/a/x")->energy_j, 10 * 1.0 / 2);
    NEAR(find_cg(&v, "/b")->energy_j, 10 * 0.3 / 2);
    NEAR(cg_sum(&v) + v.cgroup_removed_j + v.cgroup_unattributed_j, v.covered_j);
    NEAR(v.cgroup_unattributed_j, 0);
    /* 1 s more: the processes claim 3 cores of the machine's 2 (tick accounting differs):
     * scaled, never more than the energy; 200's PID was reused by another process (new start
     * time): a new series, the old one's energy goes to exited; /a/y removed */
    put_stat(H, 2 * H);
    put_pid(100, "a (b) \"c\"", 3 * H, 5);
    put_pid(200, "reused", H, 50);
    put_pid(400, "new", H / 5, 9);
    rm("sys/fs/cgroup/a/y");
    put_cg("", 4.0);
    put_cg("/a", 3.0);
    put_cg("/a/x", 2.5);
    put_cg("/b", 0.8);
    assert_int_equal(etok_procenergy_update(pe, 130, &err), 0);
    etok_procenergy_view_get(pe, &v);
    NEAR(v.covered_j, 30);
    NEAR(find_pid(&v, 100)->energy_j, 5 + 20 * (2.0 / 3));
    NEAR(find_pid(&v, 200)->energy_j, 20 * (1.0 / 3));
    assert_string_equal(find_pid(&v, 200)->comm, "reused");
    NEAR(v.proc_exited_j, 2.5);
    NEAR(proc_sum(&v) + v.proc_exited_j + v.proc_unattributed_j, v.covered_j);
    NEAR(v.cgroup_removed_j, 1.0);
    NEAR(find_cg(&v, "/a/x")->energy_j, 5 + 20 * 1.5 / 2);
    NEAR(cg_sum(&v) + v.cgroup_removed_j + v.cgroup_unattributed_j, v.covered_j);
    /* the exporter's families */
    etok_prom_buf b;
    etok_prom_init(&b);
    etok_prom_procenergy(&b, &v, 0);
    assert_false(b.oom);
    assert_non_null(strstr(b.text, "# TYPE etok_process_energy_joules_total counter"));
    assert_non_null(strstr(b.text, "ATTRIBUTION MODEL"));
    assert_non_null(strstr(b.text, "etok_process_energy_joules_total{pid=\"100\",comm=\"a (b) _c_\"} 18.33"));
    assert_non_null(strstr(b.text, "etok_process_exited_energy_joules_total 2.5"));
    assert_non_null(strstr(b.text, "etok_process_unattributed_energy_joules_total "));
    assert_non_null(strstr(b.text, "etok_cgroup_energy_joules_total{cgroup=\"/a/x\"} 20"));
    assert_non_null(strstr(b.text, "etok_cgroup_removed_energy_joules_total 1"));
    assert_null(strstr(b.text, "pid=\"300\"")); /* exited: no series */
    etok_prom_free(&b);
    /* a counter that went backwards (meter reset): nothing attributed, books kept */
    put_stat(H + H / 2, 3 * H);
    assert_int_equal(etok_procenergy_update(pe, 5, &err), 0);
    etok_procenergy_view_get(pe, &v);
    NEAR(v.covered_j, 30);
    NEAR(find_pid(&v, 100)->energy_j, 5 + 20 * (2.0 / 3));
    /* no /proc/stat: an error naming it, the books unchanged */
    rm("proc/stat");
    assert_int_equal(etok_procenergy_update(pe, 200, &err), -1);
    assert_non_null(strstr(err.msg, "/proc/stat"));
    etok_procenergy_view_get(pe, &v);
    NEAR(v.covered_j, 30);
    etok_procenergy_close(pe);
}

static void test_idle_power_and_no_cgroups(void **state) {
    (void)state;
    unsigned long long H = (unsigned long long)hz;
    put_stat(0, 0);
    put_pid(100, "one", 0, 5);
    etok_err err = {0};
    /* 4 cores, idle 4 W; one process on 1 core for 1 s of 10 J: dynamic 6 J all its, the idle
     * of its core (1 J) too; the 3 free cores' idle (3 J) stays unattributed */
    etok_procenergy *pe = etok_procenergy_open(0, 4, &err);
    assert_non_null(pe);
    assert_int_equal(etok_procenergy_update(pe, 0, &err), 0);
    put_stat(H / 4, H);
    put_pid(100, "one", H, 5);
    assert_int_equal(etok_procenergy_update(pe, 10, &err), 0);
    etok_procenergy_view v;
    etok_procenergy_view_get(pe, &v);
    NEAR(find_pid(&v, 100)->energy_j, 7);
    NEAR(v.proc_unattributed_j, 3);
    assert_false(v.cgroups_available);
    assert_int_equal(v.n_cgroups, 0);
    etok_prom_buf b;
    etok_prom_init(&b);
    etok_prom_procenergy(&b, &v, 4);
    assert_null(strstr(b.text, "etok_cgroup_energy_joules_total"));
    assert_non_null(strstr(b.text, "idle_power_w=\"4\""));
    etok_prom_free(&b);
    /* nobody busy: all unattributed */
    put_stat(H / 4, 2 * H);
    assert_int_equal(etok_procenergy_update(pe, 14, &err), 0);
    etok_procenergy_view_get(pe, &v);
    NEAR(v.proc_unattributed_j, 7);
    NEAR(find_pid(&v, 100)->energy_j, 7);
    etok_procenergy_close(pe);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_split_and_books, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_power_and_no_cgroups, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
