/* serve_load.c — a bounded load test of etok serve: C concurrent streaming clients for S
 * seconds, every request checked, the server's memory sampled every second.
 *
 * A child process runs the server (etok_server_start over this machine's meters, as
 * `etok serve` does); the parent drives it with the endpoint client (closed loop) and reads the
 * child's VmRSS from /proc once a second. Without a model argument it serves a tiny synthetic
 * GGUF (written by the test support code) so the HTTP path, queueing and batching — not the
 * forward pass — are what is loaded. Results go in bench/serve_load.md.
 *
 *   bench_serve_load [--model FILE] [--clients 64] [--seconds 30] [--max-tokens 16] [--max-seqs 16] */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etok/endpoint.h"
#include "etok/meter.h"
#include "etok/record.h"
#include "etok/serve.h"

/* the synthetic GGUF writer lives with the tests; the benchmark borrows it */
#include "../tests/unit/support/synth_gguf.c"

typedef struct {
    pid_t child;
    double next_sample;
    int n;
    double t[4096];
    long rss_kb[4096];
} sampler;

static long rss_kb(pid_t pid) {
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    long kb = -1;
    while (fgets(line, sizeof line, f))
        if (!strncmp(line, "VmRSS:", 6)) kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void on_progress(const etok_endpoint_progress *p, void *arg) {
    sampler *s = arg;
    if (p->t_s < s->next_sample || s->n >= 4096) return;
    s->t[s->n] = p->t_s;
    s->rss_kb[s->n++] = rss_kb(s->child);
    s->next_sample = p->t_s + 1.0;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int clients = 64, max_tokens = 16, max_seqs = 16;
    double seconds = 30;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--clients")) clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--seconds")) seconds = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-tokens")) max_tokens = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--max-seqs")) max_seqs = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    char tiny[64];
    if (!model) {
        snprintf(tiny, sizeof tiny, "/tmp/etok_serve_load_%d.gguf", (int)getpid());
        etok_tiny_gguf_opts go;
        etok_tiny_gguf_defaults(&go);
        go.ctx_len = 512;
        if (etok_test_write_tiny_gguf(tiny, &go) != 0) return 1;
        model = tiny;
    }
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t child = fork();
    if (child == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any server thread starts */
        close(pfd[0]);
        etok_meter_config cfg;
        memset(&cfg, 0, sizeof cfg);
        cfg.rate_hz = 50; /* as etok serve */
        cfg.live_only = 1;
        etok_serve_opts o = {.model_path = model, .port = 0, .max_seqs = max_seqs, .ctx_len = 512, .max_tokens_limit = 256};
        etok_err err = {0};
        etok_meter_source *ms = etok_meter_source_open(&cfg, &o.energy, &err);
        if (!ms) fprintf(stderr, "serve_load: no meters (%s); energy fields will be null\n", err.msg);
        etok_server *s = etok_server_start(&o, &err);
        int port = s ? etok_server_port(s) : -1;
        if (!s) fprintf(stderr, "serve_load: %s\n", err.msg);
        if (write(pfd[1], &port, sizeof port) != sizeof port) _exit(1);
        close(pfd[1]);
        if (!s) _exit(1);
        int sig;
        sigwait(&set, &sig);
        etok_server_stop(s);
        etok_meter_source_close(ms);
        _exit(0);
    }
    close(pfd[1]);
    int port = -1;
    if (read(pfd[0], &port, sizeof port) != sizeof port || port <= 0) {
        fprintf(stderr, "serve_load: server did not start\n");
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    static const char *const prompts[] = {
        "What is the capital of France?", "Count from one to five.", "Name a primary colour.", "What is 2 + 2?",
        "Say hello in Spanish.", "Spell the word cat.", "What colour is the sky?", "Name a fruit.",
    };
    sampler smp = {.child = child};
    etok_endpoint_stats st;
    etok_endpoint_opts o = {.url = url, .concurrency = clients, .duration_s = seconds, .max_tokens = max_tokens,
                            .request_timeout_s = 600, .stats = &st};
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {0};
    long rss0 = rss_kb(child);
    int rc = etok_endpoint_run(&o, prompts, 8, &rec, NULL, on_progress, &smp, &err);
    long rss_end = rss_kb(child);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    if (model == tiny) remove(tiny);
    if (rc) {
        fprintf(stderr, "serve_load: %s\n", err.msg);
        return 1;
    }
    long long tok_out = 0, tok_in = 0;
    double e_sum = 0;
    int n_e = 0;
    double *ttft = calloc(rec.n_requests + 1, sizeof *ttft);
    int n_ttft = 0;
    for (size_t i = 0; i < rec.n_requests; i++) {
        const etok_request *q = &rec.requests[i];
        if (!q->ok) {
            if (st.failed <= 5) fprintf(stderr, "failed: %s\n", q->error);
            continue;
        }
        tok_out += q->tokens_out;
        tok_in += q->tokens_in;
        if (q->energy_j >= 0) {
            e_sum += q->energy_j;
            n_e++;
        }
        if (q->t_first_token_s >= 0) ttft[n_ttft++] = q->t_first_token_s - q->t_send_s;
    }
    qsort(ttft, (size_t)n_ttft, sizeof *ttft, cmp_d);
    printf("model %s, %d clients for %.0f s (closed loop), max_tokens %d, max_seqs %d\n", model == tiny ? "tiny synthetic GGUF" : model,
           clients, seconds, max_tokens, max_seqs);
    printf("requests %d: ok %d, failed %d (http %d, timeouts %d, transport %d, truncated %d, malformed %d)\n", st.requests,
           st.ok, st.failed, st.http_errors, st.timeouts, st.transport_errors, st.truncated_streams, st.malformed_chunks);
    printf("wall %.1f s, %.1f req/s, tokens in %lld, out %lld (%.1f out tok/s)\n", st.wall_s, st.ok / st.wall_s, tok_in, tok_out,
           tok_out / st.wall_s);
    if (n_ttft) printf("TTFT p50 %.3f s, p99 %.3f s\n", ttft[n_ttft / 2], ttft[(int)(0.99 * (n_ttft - 1))]);
    if (n_e) printf("energy attributed to requests: %.1f J over %d requests (%.4f J/output token)\n", e_sum, n_e, e_sum / (double)(tok_out ? tok_out : 1));
    printf("client driver CPU %.2f s (%.1f%% of one core)\n", st.cpu_s, 100 * st.cpu_s / st.wall_s);
    printf("server RSS: start %ld kB, end %ld kB; per second:", rss0, rss_end);
    long mx = 0, mn = -1;
    for (int i = 0; i < smp.n; i++) {
        if (smp.rss_kb[i] > mx) mx = smp.rss_kb[i];
        if (mn < 0 || smp.rss_kb[i] < mn) mn = smp.rss_kb[i];
        if (i % 5 == 0) printf(" %ld", smp.rss_kb[i]);
    }
    printf("\nserver RSS min %ld kB, max %ld kB", mn, mx);
    if (smp.n >= 4) { /* growth over the second half of the run */
        int h = smp.n / 2;
        printf(", second half %ld -> %ld kB (%+.1f kB/s)", smp.rss_kb[h], smp.rss_kb[smp.n - 1],
               (smp.rss_kb[smp.n - 1] - smp.rss_kb[h]) / (smp.t[smp.n - 1] - smp.t[h]));
    }
    printf("\n");
    free(ttft);
    etok_record_free(&rec);
    return st.failed ? 3 : 0;
}
