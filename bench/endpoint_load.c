/* endpoint_load.c — how much CPU etok's endpoint driver burns at many concurrent streams.
 *
 * A child process runs a fast OpenAI-style streaming server on loopback (libmicrohttpd, one
 * thread per connection): every request streams N_TOKENS content chunks, one every GAP_MS, then
 * usage and [DONE]. The parent drives it with etok_endpoint_run at a given concurrency and
 * reports the CPU time of the driving thread (CLOCK_THREAD_CPUTIME_ID), so the server's own
 * CPU is not counted. Results go in bench/endpoint_load.md.
 *
 *   bench_endpoint_load [CONCURRENCY=256] [REQUESTS=1024] [TOKENS=64] [GAP_MS=10] */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etok/endpoint.h"
#include "etok/record.h"

typedef struct {
    int tokens, gap_ms;
} server_cfg;

typedef struct {
    const server_cfg *cfg;
    int sent;      /* content chunks sent */
    int phase;     /* 0 content, 1 tail, 2 end */
    char buf[512];
    size_t len, pos;
} stream;

static ssize_t reader(void *cls, uint64_t pos, char *out, size_t max) {
    (void)pos;
    stream *s = cls;
    if (s->pos >= s->len) {
        s->pos = s->len = 0;
        if (s->phase == 0) {
            if (s->sent > 0 && s->cfg->gap_ms > 0) usleep((useconds_t)s->cfg->gap_ms * 1000);
            s->len = (size_t)snprintf(s->buf, sizeof s->buf,
                                      "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"choices\":[{\"index\":0,"
                                      "\"delta\":{\"content\":\" tok%d\"},\"finish_reason\":null}]}\n\n",
                                      s->sent);
            if (++s->sent >= s->cfg->tokens) s->phase = 1;
        } else if (s->phase == 1) {
            s->len = (size_t)snprintf(s->buf, sizeof s->buf,
                                      "data: {\"id\":\"x\",\"choices\":[],\"usage\":{\"prompt_tokens\":10,"
                                      "\"completion_tokens\":%d}}\n\ndata: [DONE]\n\n",
                                      s->cfg->tokens);
            s->phase = 2;
        } else {
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    size_t n = s->len - s->pos;
    if (n > max) n = max;
    memcpy(out, s->buf + s->pos, n);
    s->pos += n;
    return (ssize_t)n;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)url;
    (void)method;
    (void)version;
    (void)upload_data;
    if (!*con_cls) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    stream *s = calloc(1, sizeof *s);
    s->cfg = cls;
    struct MHD_Response *r = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 4096, reader, s, free);
    MHD_add_response_header(r, "Content-Type", "text/event-stream");
    enum MHD_Result ok = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ok;
}

int main(int argc, char **argv) {
    int conc = argc > 1 ? atoi(argv[1]) : 256;
    int n_req = argc > 2 ? atoi(argv[2]) : 1024;
    server_cfg cfg = {argc > 3 ? atoi(argv[3]) : 64, argc > 4 ? atoi(argv[4]) : 10};
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t child = fork();
    if (child == 0) {
        close(pfd[0]);
        struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL, NULL,
                                                handler, &cfg, MHD_OPTION_CONNECTION_LIMIT, (unsigned)4096,
                                                MHD_OPTION_LISTEN_BACKLOG_SIZE, (unsigned)1024, MHD_OPTION_END);
        if (!d) _exit(1);
        int port = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT)->port;
        if (write(pfd[1], &port, sizeof port) != sizeof port) _exit(1);
        close(pfd[1]);
        pause();
        _exit(0);
    }
    close(pfd[1]);
    int port = 0;
    if (read(pfd[0], &port, sizeof port) != sizeof port) {
        fprintf(stderr, "server did not start\n");
        return 1;
    }
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d", port);
    etok_endpoint_stats st;
    etok_endpoint_opts o = {.url = url, .concurrency = conc, .n_requests = n_req, .max_tokens = cfg.tokens,
                            .request_timeout_s = 120, .stats = &st};
    const char *prompts[] = {"hello"};
    etok_record rec;
    etok_record_init(&rec);
    etok_err err = {0};
    struct rusage ru0, ru1;
    getrusage(RUSAGE_SELF, &ru0);
    int rc = etok_endpoint_run(&o, prompts, 1, &rec, NULL, NULL, NULL, &err);
    getrusage(RUSAGE_SELF, &ru1);
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    if (rc) {
        fprintf(stderr, "endpoint: %s\n", err.msg);
        return 1;
    }
    long long chunks = 0;
    for (size_t i = 0; i < rec.n_requests; i++) chunks += (long long)rec.requests[i].n_token_times;
    double proc_cpu = (double)(ru1.ru_utime.tv_sec - ru0.ru_utime.tv_sec) + (ru1.ru_utime.tv_usec - ru0.ru_utime.tv_usec) * 1e-6 +
                      (double)(ru1.ru_stime.tv_sec - ru0.ru_stime.tv_sec) + (ru1.ru_stime.tv_usec - ru0.ru_stime.tv_usec) * 1e-6;
    printf("concurrency %d, requests %d (ok %d, failed %d), %d tokens/request at %d ms gaps\n", conc, st.requests, st.ok,
           st.failed, cfg.tokens, cfg.gap_ms);
    printf("wall %.2f s, chunks %lld (%.0f chunks/s)\n", st.wall_s, chunks, chunks / st.wall_s);
    printf("driver thread CPU %.3f s = %.1f%% of one core; process CPU (user+sys) %.3f s = %.1f%%\n", st.cpu_s,
           100 * st.cpu_s / st.wall_s, proc_cpu, 100 * proc_cpu / st.wall_s);
    printf("CPU per chunk %.1f us\n", 1e6 * st.cpu_s / (double)(chunks ? chunks : 1));
    etok_record_free(&rec);
    return st.failed ? 2 : 0;
}
