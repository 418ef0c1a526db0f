/* contention.c — the built-in engine's own CPU time per token with and without one busy
 * neighbour, in interleaved rounds (docs/RECORD.md "Background load", bench/contention.md).
 *
 * Each round generates the same tokens (a P-token prompt, then N decode steps, greedy) and
 * reads, around it: wall time, the process's CPU time (getrusage: user + system, all threads),
 * the calling thread's CPU time (CLOCK_THREAD_CPUTIME_ID; the rest is the pool's workers),
 * voluntary / involuntary context switches, and the machine's busy cores from /proc/stat. A
 * "busy" round first starts `sh -c 'while :; do :; done'` (its own process, not counted as
 * ours) and kills it after the round. Rounds alternate quiet, busy, busy, quiet, ... so a
 * drift of the machine's other load falls on both alike.
 * -q 1: quiet rounds only (e.g. under `chrt -f 1`, to see the engine on an otherwise idle
 * machine when the machine is shared). -k 1: the busy loop keeps the benchmark's scheduling
 * policy (under `chrt -r 1`: etok and one busy loop round-robin over the cores, ahead of every
 * other process: an idle machine with one busy neighbour, with 100 ms time slices).
 * usage: bench_contention [-m MODEL] [-t THREADS] [-p 32] [-n 64] [-r 6] [-q 0|1] [-k 0|1] */

#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "etok/engine.h"
#ifdef ETOK_THREADPOOL_STATS
#include "engine/threadpool.h"
#endif

static double tv_s(struct timeval t) { return (double)t.tv_sec + (double)t.tv_usec / 1e6; }

static double thread_cpu_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Machine busy and total jiffies (busy excludes idle, iowait, steal, as the estimate meter). */
static int proc_stat(double *busy, double *total) {
    FILE *f = fopen("/proc/stat", "r");
    if (!f) return -1;
    unsigned long long v[10] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
                   &v[5], &v[6], &v[7], &v[8], &v[9]);
    fclose(f);
    if (n < 8) return -1;
    double t = 0;
    for (int i = 0; i < 8; i++) t += (double)v[i];
    *total = t;
    *busy = t - (double)v[3] - (double)v[4] - (double)v[7];
    return 0;
}

typedef struct {
    double wall, cpu, main_cpu, vcsw, ivcsw, machine_cores, tokens;
    double wait_main, wait_workers; /* CPU time in the pool's waits (diagnostics build), else 0 */
    double yielded, slept;          /* waits that reached sched_yield / slept, all threads */
} round_t;

static int keep_policy; /* -k 1: the busy loop keeps the parent's scheduling policy */

static pid_t start_busy(void) {
    pid_t pid = fork();
    if (pid == 0) {
        struct sched_param sp = {0}; /* not the parent's policy if it runs under chrt */
        if (!keep_policy) sched_setscheduler(0, SCHED_OTHER, &sp);
        prctl(PR_SET_PDEATHSIG, SIGKILL); /* no orphaned loop if the benchmark is killed */
        execl("/bin/sh", "sh", "-c", "while :; do :; done", (char *)NULL);
        _exit(127);
    }
    return pid;
}

static int run_round(etok_engine *e, const int32_t *prompt, int n_prompt, int n_gen, int busy, round_t *r) {
    etok_err err = {{0}, 0};
    pid_t bpid = busy ? start_busy() : 0;
    if (busy && bpid < 0) return -1;
    if (busy) usleep(200000); /* let the loop get going (and the scheduler place it) */
    struct rusage u0, u1;
    double b0, t0, b1, t1;
#ifdef ETOK_THREADPOOL_STATS
    etok_threadpool_stats sc0, sw0, sc1, sw1;
    etok_threadpool_get_stats(&sc0, &sw0);
#endif
    proc_stat(&b0, &t0);
    getrusage(RUSAGE_SELF, &u0);
    double m0 = thread_cpu_s(), w0 = etok_mono_s();
    int id = etok_engine_add(e, prompt, n_prompt, n_gen, NULL, &err);
    if (id < 0) {
        fprintf(stderr, "%s\n", err.msg);
        return -1;
    }
    etok_engine_set_ignore_eos(e, id, 1);
    for (;;) {
        etok_step_result st;
        if (etok_engine_step(e, &st, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            return -1;
        }
        if (st.n_events && st.events[0].finished) break;
    }
    etok_engine_remove(e, id);
    double w1 = etok_mono_s(), m1 = thread_cpu_s();
    getrusage(RUSAGE_SELF, &u1);
    proc_stat(&b1, &t1);
#ifdef ETOK_THREADPOOL_STATS
    etok_threadpool_get_stats(&sc1, &sw1);
    r->wait_main = sc1.wait_cpu_s - sc0.wait_cpu_s;
    r->wait_workers = sw1.wait_cpu_s - sw0.wait_cpu_s;
    r->yielded = (double)(sc1.yielded - sc0.yielded + sw1.yielded - sw0.yielded);
    r->slept = (double)(sc1.slept - sc0.slept + sw1.slept - sw0.slept);
#endif
    if (busy) {
        kill(bpid, SIGKILL);
        waitpid(bpid, NULL, 0);
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    r->wall = w1 - w0;
    r->cpu = tv_s(u1.ru_utime) + tv_s(u1.ru_stime) - tv_s(u0.ru_utime) - tv_s(u0.ru_stime);
    r->main_cpu = m1 - m0;
    r->vcsw = (double)(u1.ru_nvcsw - u0.ru_nvcsw);
    r->ivcsw = (double)(u1.ru_nivcsw - u0.ru_nivcsw);
    r->machine_cores = t1 > t0 ? (b1 - b0) / (t1 - t0) * (double)ncpu : NAN;
    r->tokens = n_gen;
    return 0;
}

static void summary(const char *name, const round_t *r, int n) {
    double s[9] = {0}, q = 0;
    for (int i = 0; i < n; i++) {
        s[0] += r[i].cpu / r[i].tokens;
        s[1] += r[i].main_cpu / r[i].tokens;
        s[2] += r[i].wall / r[i].tokens;
        s[3] += r[i].vcsw / r[i].tokens;
        s[4] += r[i].ivcsw / r[i].tokens;
        s[5] += r[i].machine_cores;
        s[6] += r[i].cpu / r[i].wall;
        s[7] += r[i].wait_main / r[i].tokens;
        s[8] += r[i].wait_workers / r[i].tokens;
    }
    for (int i = 0; i < 9; i++) s[i] /= n;
    for (int i = 0; i < n; i++) q += pow(r[i].cpu / r[i].tokens - s[0], 2);
    double se = n > 1 ? sqrt(q / (n - 1) / n) : 0;
    printf("%-5s own CPU %.2f +- %.2f ms/token (main thread %.2f, workers %.2f), wall %.2f ms/token, own %.2f cores, "
           "machine %.2f cores, switches/token %.1f voluntary %.1f involuntary (%d rounds)\n",
           name, s[0] * 1e3, se * 1e3, s[1] * 1e3, (s[0] - s[1]) * 1e3, s[2] * 1e3, s[6], s[5], s[3], s[4], n);
#ifdef ETOK_THREADPOOL_STATS
    printf("%-5s CPU in the pool's waits %.2f ms/token (main thread %.2f, workers %.2f)\n", name, (s[7] + s[8]) * 1e3,
           s[7] * 1e3, s[8] * 1e3);
#endif
}

int main(int argc, char **argv) {
    const char *model = getenv("ETOK_MODEL") ? getenv("ETOK_MODEL") : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    int threads = 2, n_prompt = 32, n_gen = 64, reps = 6, quiet_only = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "-m")) model = argv[i + 1];
        else if (!strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-p")) n_prompt = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-n")) n_gen = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-r")) reps = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-q")) quiet_only = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "-k")) keep_policy = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [-m MODEL] [-t THREADS] [-p N] [-n N] [-r ROUNDS] [-q 0|1] [-k 0|1]\n", argv[0]);
            return 2;
        }
    }
    if (reps < 1 || reps > 100 || n_prompt < 1 || n_gen < 1) return 2;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(model, &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        return 3;
    }
    const etok_model_info *in = etok_model_get_info(m);
    etok_engine_opts o = {threads, 1, n_prompt + n_gen + 8, n_prompt, 16, 0, 0};
    etok_engine *e = etok_engine_new(m, &o, &err);
    if (!e) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t *prompt = malloc((size_t)n_prompt * sizeof *prompt);
    round_t *rq = calloc((size_t)reps, sizeof *rq), *rb = calloc((size_t)reps, sizeof *rb);
    if (!prompt || !rq || !rb) return 1;
    uint64_t s = 12345;
    for (int i = 0; i < n_prompt; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        prompt[i] = 100 + (int32_t)((s >> 33) % (uint64_t)(in->vocab_size - 200));
    }
    round_t warm;
    if (run_round(e, prompt, n_prompt, n_gen, 0, &warm)) return 1;
    double la[3] = {0};
    getloadavg(la, 3);
    printf("model=%s threads=%d prompt=%d decode=%d, load average before %.2f %.2f %.2f\n", in->name, o.n_threads,
           n_prompt, n_gen, la[0], la[1], la[2]);
    for (int i = 0; i < reps; i++) {
        int busy_first = i % 2;
        for (int k = 0; k < 2 - quiet_only; k++) {
            int busy = quiet_only ? 0 : k == 0 ? busy_first : !busy_first;
            round_t *r = busy ? &rb[i] : &rq[i];
            if (run_round(e, prompt, n_prompt, n_gen, busy, r)) return 1;
            printf("round %d %-5s cpu %.3f s (main %.3f) wall %.3f s, own %.2f cores, machine %.2f cores, csw %.0f/%.0f, "
                   "wait cpu %.3f/%.3f s, yielded %.0f slept %.0f\n",
                   i, busy ? "busy" : "quiet", r->cpu, r->main_cpu, r->wall, r->cpu / r->wall, r->machine_cores, r->vcsw,
                   r->ivcsw, r->wait_main, r->wait_workers, r->yielded, r->slept);
            fflush(stdout);
        }
    }
    summary("quiet", rq, reps);
    if (quiet_only) goto done;
    summary("busy", rb, reps);
    double cq = 0, cb = 0;
    for (int i = 0; i < reps; i++) cq += rq[i].cpu, cb += rb[i].cpu;
    getloadavg(la, 3);
    printf("own CPU per token busy/quiet: %+.1f%%; load average after %.2f %.2f %.2f\n", (cb / cq - 1) * 100, la[0],
           la[1], la[2]);
done:
    free(prompt);
    free(rq);
    free(rb);
    etok_engine_free(e);
    etok_model_free(m);
    return 0;
}
