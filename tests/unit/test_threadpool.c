/* test_threadpool.c — the engine's thread pool: every thread runs every task once and its
 * writes are visible when etok_threadpool_run returns, no lost wake-up when threads sleep,
 * and a thread that waits for a delayed peer (preempted on a shared machine) sleeps instead
 * of burning CPU time (charged to etok by the process boundary, docs/RECORD.md). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "engine/threadpool.h"

static double cpu_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void sleep_s(double s) {
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0) {
    }
}

typedef struct {
    int n;
    long ran[8];      /* per thread: tasks run (each thread writes only its own slot) */
    int seen_nth[8];  /* nth each thread was given */
    double delay_s;   /* thread `slow` sleeps this long in each task */
    int slow;
    unsigned rng;     /* stress: which thread sleeps, and how long (set by the caller) */
    int stress;
} count_task;

static void count_fn(void *ctxp, int ith, int nth) {
    count_task *t = ctxp;
    t->ran[ith]++;
    t->seen_nth[ith] = nth;
    if (t->stress) {
        unsigned r = t->rng;
        if ((int)(r % (unsigned)nth) == ith && (r >> 8) % 3 == 0) sleep_s((double)((r >> 12) % 2000) * 1e-6);
    } else if (ith == t->slow && t->delay_s > 0) {
        sleep_s(t->delay_s);
    }
}

static void on_alarm(int sig) {
    (void)sig;
    static const char msg[] = "test_threadpool: watchdog expired (a lost wake-up?)\n";
    ssize_t w = write(2, msg, sizeof msg - 1);
    (void)w;
    _exit(1);
}

static void test_every_thread_every_task(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_threadpool *p = etok_threadpool_new(4, &err);
    assert_non_null(p);
    assert_int_equal(etok_threadpool_size(p), 4);
    count_task t;
    memset(&t, 0, sizeof t);
    for (int k = 0; k < 3000; k++) {
        etok_threadpool_run(p, count_fn, &t);
        for (int i = 0; i < 4; i++) assert_int_equal(t.ran[i], k + 1); /* visible on return */
        if (k % 500 == 0) sleep_s(0.005);                              /* workers go to sleep */
    }
    for (int i = 0; i < 4; i++) assert_int_equal(t.seen_nth[i], 4);
    etok_threadpool_free(p);
}

/* Random sleeps in random threads: the caller and the workers take every waiting path
 * (spin, yield, sleep; the caller woken by the last worker). A lost wake-up hangs: the
 * watchdog fails the test. */
static void test_no_lost_wakeup(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_threadpool *p = etok_threadpool_new(3, &err);
    assert_non_null(p);
    count_task t;
    memset(&t, 0, sizeof t);
    t.stress = 1;
    unsigned s = 12345;
    for (int k = 0; k < 1500; k++) {
        s = s * 1103515245u + 12345u;
        t.rng = s >> 1;
        etok_threadpool_run(p, count_fn, &t);
        for (int i = 0; i < 3; i++) assert_int_equal(t.ran[i], k + 1);
        if (((s >> 20) & 63) == 0) sleep_s(0.001);
    }
    etok_threadpool_free(p);
}

/* The defect: the caller spun and sched_yield()ed without end while a worker was delayed (on
 * a shared machine: preempted by a busy neighbour), so etok's own CPU time per token grew with
 * the neighbour. Now it sleeps: its CPU time stays a small part of the time it waited. */
static void test_caller_sleeps_for_delayed_worker(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_threadpool *p = etok_threadpool_new(2, &err);
    assert_non_null(p);
    count_task t;
    memset(&t, 0, sizeof t);
    t.slow = 1;
    t.delay_s = 0.02;
    etok_threadpool_run(p, count_fn, &t); /* the first wait adapts the spin down */
    double c0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    const int n = 15;
    for (int k = 0; k < n; k++) etok_threadpool_run(p, count_fn, &t);
    double used = cpu_s(CLOCK_THREAD_CPUTIME_ID) - c0, waited = n * t.delay_s;
    printf("caller: %.4f s CPU while waiting %.2f s for a delayed worker\n", used, waited);
    assert_true(used < 0.2 * waited); /* spinning throughout would be about 1 x */
    assert_int_equal(t.ran[1], n + 1);
    etok_threadpool_free(p);
}

/* Three threads, thread 1 slow: worker 2 waits for the next task (which comes only when
 * worker 1 is done) and the caller for worker 1; neither burns CPU through the wait. */
static void test_worker_sleeps_between_tasks(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_threadpool *p = etok_threadpool_new(3, &err);
    assert_non_null(p);
    count_task t;
    memset(&t, 0, sizeof t);
    t.slow = 1;
    t.delay_s = 0.02;
    etok_threadpool_run(p, count_fn, &t);
    double pc0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID), tc0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    const int n = 15;
    for (int k = 0; k < n; k++) etok_threadpool_run(p, count_fn, &t);
    double caller = cpu_s(CLOCK_THREAD_CPUTIME_ID) - tc0;
    double workers = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - pc0 - caller, waited = n * t.delay_s;
    printf("workers: %.4f s CPU, caller %.4f s, over %.2f s of a delayed worker\n", workers, caller, waited);
    /* worker 2 waits about `waited` per run for the next task; 1 x if it spun throughout */
    assert_true(workers < 0.2 * waited);
    assert_true(caller < 0.2 * waited);
    etok_threadpool_free(p);
}

int main(void) {
    signal(SIGALRM, on_alarm);
    alarm(300);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_thread_every_task),
        cmocka_unit_test(test_no_lost_wakeup),
        cmocka_unit_test(test_caller_sleeps_for_delayed_worker),
        cmocka_unit_test(test_worker_sleeps_between_tasks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
