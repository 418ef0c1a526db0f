/* threadpool.c — see threadpool.h. One task at a time; a generation counter announces it,
 * workers spin a little then sleep on a condition variable; the caller spins a little until
 * every worker reported done, then sleeps until the last one wakes it (tasks are short, a few
 * microseconds to milliseconds). */
#include "engine/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Waiting (workers for the next task, the caller for the workers): PAUSE-spin for up to
 * `spin` rounds, then sched_yield() up to spin / YIELD_DIV times (the core goes to whoever is
 * runnable), then sleep on a condition variable (an idle engine uses no CPU).
 *
 * `spin` adapts, per waiting thread, between SPIN_MIN and SPIN_MAX (4000 PAUSEs, about 0.1 ms
 * on the development VM; with the yields about 0.2 ms): halved after a wait that outlasted the
 * spinning and yielding, doubled after one that spinning ended. On a quiet machine the waits
 * inside a forward pass end within microseconds, so `spin` stays at SPIN_MAX and no thread
 * sleeps between tasks. On an oversubscribed machine (a busy neighbour, more runnable threads
 * than cores) the peer a thread waits for is often preempted for a whole time slice: spinning
 * then burns CPU time that is charged to etok (and taken from the neighbour and the peer)
 * without making the wait shorter, so `spin` falls and waiting threads sleep almost at once.
 * Measured in bench/contention.md. */
#define SPIN_MAX 4000
#define SPIN_MIN 16
#define YIELD_DIV 20

static int spin_adapt(int spin, int outlasted) {
    if (outlasted) return spin / 2 > SPIN_MIN ? spin / 2 : SPIN_MIN;
    return spin * 2 < SPIN_MAX ? spin * 2 : SPIN_MAX;
}

/* Diagnostics (build with -DETOK_THREADPOOL_STATS; bench/contention.c reads them): each
 * thread's CPU time inside its waits and how the waits ended. One pool at a time; a thread
 * writes only its own slot, readers take a racy snapshot between tasks. */
#ifdef ETOK_THREADPOOL_STATS
#include <time.h>
static etok_threadpool_stats g_thr[256];
static double tcpu(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}
void etok_threadpool_get_stats(etok_threadpool_stats *caller, etok_threadpool_stats *workers) {
    *caller = g_thr[0];
    memset(workers, 0, sizeof *workers);
    for (int i = 1; i < 256; i++) {
        workers->wait_cpu_s += g_thr[i].wait_cpu_s;
        workers->waits += g_thr[i].waits;
        workers->yielded += g_thr[i].yielded;
        workers->slept += g_thr[i].slept;
    }
}
#define ST_T0() double st_t0_ = tcpu()
#define ST_WAIT_END(ith, spins)                                                              \
    do {                                                                                     \
        g_thr[ith].wait_cpu_s += tcpu() - st_t0_;                                            \
        g_thr[ith].waits++;                                                                  \
        g_thr[ith].yielded += (spins) > 0;                                                   \
    } while (0)
#define ST_SLEPT(ith) (g_thr[ith].slept++)
#else
#define ST_T0() ((void)0)
#define ST_WAIT_END(ith, spins) ((void)0)
#define ST_SLEPT(ith) ((void)0)
#endif

typedef struct {
    struct etok_threadpool *pool;
    int ith;
} worker_arg;

struct etok_threadpool {
    int n;
    pthread_t *threads;
    worker_arg *args;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_uint gen;
    atomic_int n_done;
    atomic_int n_sleeping;
    atomic_int caller_sleeping;
    pthread_cond_t done_cv; /* the caller sleeps on it; the worker that finishes last signals */
    int caller_spin;        /* the caller's adaptive spin (only the caller touches it) */
    atomic_int stop;
    etok_task_fn fn;
    void *ctx;
};

static void *worker_main(void *argp) {
    worker_arg *a = argp;
    struct etok_threadpool *p = a->pool;
    unsigned seen = 0;
    int spin = SPIN_MAX;
    for (;;) {
        int spins = 0, outlasted = 0;
        ST_T0();
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
            if (++spins < spin) {
                CPU_RELAX();
                continue;
            }
            outlasted = 1;
            if (spins < spin + spin / YIELD_DIV) {
                sched_yield();
                continue;
            }
            ST_SLEPT(a->ith);
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        ST_WAIT_END(a->ith, outlasted);
        spin = spin_adapt(spin, outlasted);
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load(&p->gen);
        p->fn(p->ctx, a->ith, p->n);
        /* seq_cst: the caller sets caller_sleeping then reads n_done; one of us sees the other */
        if (atomic_fetch_add(&p->n_done, 1) + 1 == p->n - 1 && atomic_load(&p->caller_sleeping)) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

etok_threadpool *etok_threadpool_new(int n_threads, etok_err *err) {
    if (n_threads <= 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n_threads = c > 0 ? (int)c : 1;
    }
    if (n_threads > 256) n_threads = 256;
    struct etok_threadpool *p = calloc(1, sizeof *p);
    if (!p) {
        etok_errf(err, "thread pool: out of memory");
        return NULL;
    }
    p->n = n_threads;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    p->caller_spin = SPIN_MAX;
    atomic_init(&p->caller_sleeping, 0);
    atomic_init(&p->gen, 0);
    atomic_init(&p->n_done, 0);
    atomic_init(&p->n_sleeping, 0);
    atomic_init(&p->stop, 0);
    p->threads = calloc((size_t)n_threads, sizeof *p->threads);
    p->args = calloc((size_t)n_threads, sizeof *p->args);
    if (!p->threads || !p->args) {
        etok_threadpool_free(p);
        etok_errf(err, "thread pool: out of memory");
        return NULL;
    }
    for (int i = 1; i < n_threads; i++) {
        p->args[i].pool = p;
        p->args[i].ith = i;
        if (pthread_create(&p->threads[i], NULL, worker_main, &p->args[i]) != 0) {
            p->n = i; /* threads 1..i-1 exist */
            etok_threadpool_free(p);
            etok_errf(err, "thread pool: cannot create thread %d of %d", i, n_threads);
            return NULL;
        }
    }
    return p;
}

void etok_threadpool_free(etok_threadpool *p) {
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, 1);
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 1; i < p->n; i++)
        if (p->threads) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    pthread_cond_destroy(&p->done_cv);
    free(p->threads);
    free(p->args);
    free(p);
}

int etok_threadpool_size(const etok_threadpool *p) { return p->n; }

void etok_threadpool_run(etok_threadpool *p, etok_task_fn fn, void *ctx) {
    if (p->n == 1) {
        fn(ctx, 0, 1);
        return;
    }
    p->fn = fn;
    p->ctx = ctx;
    atomic_store(&p->n_done, 0);
    atomic_fetch_add(&p->gen, 1); /* seq_cst: pairs with the sleeper's n_sleeping++ then gen check */
    if (atomic_load(&p->n_sleeping) > 0) {
        pthread_mutex_lock(&p->mu);
        pthread_cond_broadcast(&p->cv);
        pthread_mutex_unlock(&p->mu);
    }
    fn(ctx, 0, p->n);
    ST_T0();
    int spins = 0, outlasted = 0, spin = p->caller_spin;
    while (atomic_load(&p->n_done) < p->n - 1) {
        if (++spins < spin) {
            CPU_RELAX();
            continue;
        }
        outlasted = 1;
        if (spins < spin + spin / YIELD_DIV) {
            sched_yield();
            continue;
        }
        ST_SLEPT(0);
        pthread_mutex_lock(&p->mu);
        atomic_store(&p->caller_sleeping, 1);
        while (atomic_load(&p->n_done) < p->n - 1) pthread_cond_wait(&p->done_cv, &p->mu);
        atomic_store(&p->caller_sleeping, 0);
        pthread_mutex_unlock(&p->mu);
    }
    ST_WAIT_END(0, outlasted);
    p->caller_spin = spin_adapt(spin, outlasted);
}
