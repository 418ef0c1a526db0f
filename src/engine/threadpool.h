/* threadpool.h — a fixed pool of worker threads for the engine's parallel loops.
 *
 * Owns: the threads and the hand-off of one task at a time: etok_threadpool_run(fn, ctx)
 * calls fn(ctx, ith, nth) on every thread (the caller is thread 0) and returns when all are
 * done. Workers spin briefly for the next task (a forward pass issues hundreds of tasks in
 * quick succession) and then sleep on a condition variable, so an idle pool burns no CPU.
 * Does not own: how work is split (the task function does that from ith/nth). */
#ifndef ETOK_ENGINE_THREADPOOL_H
#define ETOK_ENGINE_THREADPOOL_H

#include "etok/util.h"

typedef struct etok_threadpool etok_threadpool;
typedef void (*etok_task_fn)(void *ctx, int ith, int nth);

/* n_threads <= 0: the number of online cores. */
etok_threadpool *etok_threadpool_new(int n_threads, etok_err *err);
void etok_threadpool_free(etok_threadpool *p);
int etok_threadpool_size(const etok_threadpool *p);
void etok_threadpool_run(etok_threadpool *p, etok_task_fn fn, void *ctx);

#ifdef ETOK_THREADPOOL_STATS
/* Diagnostics build only: CPU time spent waiting, cumulative since the process started. */
typedef struct {
    double wait_cpu_s;
    long waits, yielded, slept; /* waits; of them, those that reached sched_yield / slept */
} etok_threadpool_stats;
void etok_threadpool_get_stats(etok_threadpool_stats *caller, etok_threadpool_stats *workers);
#endif

#endif
