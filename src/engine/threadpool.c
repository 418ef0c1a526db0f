/* threadpool.c — see threadpool.h. One task at a time; a generation counter announces it,
 * workers spin a little then sleep on a condition variable; the caller spins until every
 * worker reported done (tasks are short, a few microseconds to milliseconds). */
#include "engine/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define CPU_RELAX() _mm_pause()
#else
#define CPU_RELAX() ((void)0)
#endif

/* Waiting: PAUSE-spin for SPIN_ITERS rounds (tens of microseconds: the gap between two tasks
 * of one forward pass), then sched_yield() so a waiting thread gives its core to whoever is
 * runnable (the machine may be shared), and a worker that waited YIELD_ITERS yields sleeps
 * on the condition variable (idle engine: no CPU). */
#define SPIN_ITERS 4000
#define YIELD_ITERS 200

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
    atomic_int stop;
    etok_task_fn fn;
    void *ctx;
};

static void *worker_main(void *argp) {
    worker_arg *a = argp;
    struct etok_threadpool *p = a->pool;
    unsigned seen = 0;
    for (;;) {
        int spins = 0;
        while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) {
            if (++spins < SPIN_ITERS) {
                CPU_RELAX();
                continue;
            }
            if (spins < SPIN_ITERS + YIELD_ITERS) {
                sched_yield();
                continue;
            }
            pthread_mutex_lock(&p->mu);
            atomic_fetch_add(&p->n_sleeping, 1);
            while (atomic_load(&p->gen) == seen && !atomic_load(&p->stop)) pthread_cond_wait(&p->cv, &p->mu);
            atomic_fetch_sub(&p->n_sleeping, 1);
            pthread_mutex_unlock(&p->mu);
        }
        if (atomic_load(&p->stop)) return NULL;
        seen = atomic_load(&p->gen);
        p->fn(p->ctx, a->ith, p->n);
        atomic_fetch_add(&p->n_done, 1);
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
    for (int spins = 0; atomic_load(&p->n_done) < p->n - 1; spins++) {
        if (spins < SPIN_ITERS)
            CPU_RELAX();
        else
            sched_yield();
    }
}
