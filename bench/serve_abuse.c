/* serve_abuse.c — etok serve under many clients and slow ones (issue 9 §3): while /health is
 * polled every 20 ms on a fresh connection (its latency must stay under 100 ms),
 *   phase 1: N clients (default 2000) connect at once and each sends one non-streaming
 *            completion; every outcome is classified: 200, 429 (must carry Retry-After and the
 *            OpenAI error shape), another status, or a reset / close without an answer;
 *   phase 2: M slowloris sockets (default 1000) each send a request line and then one header
 *            line every 5 s, never finishing; it counts how many the server closed and when.
 * The server runs in a child process exactly as `etok serve` does (etok_server_start with its
 * defaults: 8 engine slots, a queue of 1024, 15 s idle timeout, 10 s request deadline), on the
 * tiny synthetic GGUF, without meters (the HTTP path is what is loaded). The child's VmRSS is
 * read from /proc before, at the peak of, and after each phase. 127.0.0.1 only. Results go in
 * bench/serve_load.md.
 *
 * --rounds R repeats phase 1 (RSS after each round shows whether memory keeps growing).
 *
 *   bench_serve_abuse [--clients 2000] [--rounds 1] [--slowloris 1000] [--slow-seconds 30] [--model FILE] */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "etok/serve.h"
#include "etok/util.h"

/* the synthetic GGUF writer lives with the tests; the benchmark borrows it */
#include "../tests/unit/support/synth_gguf.c"

static int g_port;
static pid_t g_child;

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

static int tcp_socket(int nonblock) {
    int fd = socket(AF_INET, SOCK_STREAM | (nonblock ? SOCK_NONBLOCK : 0), 0);
    if (fd < 0) return -1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)g_port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {
        close(fd);
        return -1;
    }
    return fd;
}

/* ---------- the /health poller ---------- */

typedef struct {
    _Atomic int stop;
    double *lat;
    int n, cap;
    int failed;
    long rss_peak_kb;
} poller;

static void poller_reset(poller *p) {
    p->n = 0;
    p->failed = 0;
    p->rss_peak_kb = 0;
}

/* one GET /health on a fresh connection: seconds, or -1 (no complete 200 within 5 s) */
static double health_once(void) {
    double t0 = etok_mono_s();
    int fd = tcp_socket(0);
    if (fd < 0) return -1;
    struct timeval tv = {5, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    const char *req = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char buf[2048];
    size_t n = 0;
    if (send(fd, req, strlen(req), MSG_NOSIGNAL) != (ssize_t)strlen(req)) goto fail;
    for (;;) {
        ssize_t r = recv(fd, buf + n, sizeof buf - 1 - n, 0);
        if (r < 0) goto fail;
        if (r == 0) break;
        n += (size_t)r;
        if (n >= sizeof buf - 1) break;
    }
    buf[n] = '\0';
    close(fd);
    if (strncmp(buf, "HTTP/1.1 200", 12) || !strstr(buf, "\"status\":")) return -1;
    return etok_mono_s() - t0;
fail:
    close(fd);
    return -1;
}

static void *poller_main(void *arg) {
    poller *p = arg;
    while (!atomic_load(&p->stop)) {
        double l = health_once();
        if (l < 0) p->failed++;
        else if (p->n < p->cap) p->lat[p->n++] = l;
        long r = rss_kb(g_child);
        if (r > p->rss_peak_kb) p->rss_peak_kb = r;
        usleep(20000);
    }
    return NULL;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static void poller_print(poller *p) {
    qsort(p->lat, (size_t)p->n, sizeof *p->lat, cmp_d);
    int over = 0;
    for (int i = 0; i < p->n; i++) over += p->lat[i] > 0.1;
    if (p->n)
        printf("  /health: %d polls answered, %d failed; latency p50 %.1f ms, p99 %.1f ms, max %.1f ms; %d over 100 ms\n", p->n,
               p->failed, 1e3 * p->lat[p->n / 2], 1e3 * p->lat[(int)(0.99 * (p->n - 1))], 1e3 * p->lat[p->n - 1], over);
    else
        printf("  /health: no poll answered, %d failed\n", p->failed);
}

/* ---------- phase 1: many clients at once ---------- */

typedef struct {
    int fd;
    size_t sent;
    char *resp;
    size_t n, cap;
    int state; /* 0 connecting/sending, 1 reading, 2 done */
    int err;   /* errno of a failure */
} client;

static void phase_many(int n_clients) {
    static const char body[] = "{\"prompt\":\"Once upon a time\",\"max_tokens\":8}";
    char req[512];
    int req_n = snprintf(req, sizeof req,
                         "POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
                         strlen(body), body);
    client *c = calloc((size_t)n_clients, sizeof *c);
    int ep = epoll_create1(0);
    int connect_failed = 0;
    double t0 = etok_mono_s();
    for (int i = 0; i < n_clients; i++) {
        c[i].fd = tcp_socket(1);
        if (c[i].fd < 0) {
            connect_failed++;
            c[i].state = 2;
            c[i].err = -1;
            continue;
        }
        struct epoll_event ev = {.events = EPOLLOUT | EPOLLIN | EPOLLRDHUP, .data.u32 = (uint32_t)i};
        epoll_ctl(ep, EPOLL_CTL_ADD, c[i].fd, &ev);
    }
    double t_connected = etok_mono_s() - t0;
    int left = n_clients - connect_failed;
    struct epoll_event evs[256];
    while (left > 0 && etok_mono_s() - t0 < 300) {
        int k = epoll_wait(ep, evs, 256, 1000);
        for (int e = 0; e < k; e++) {
            client *x = &c[evs[e].data.u32];
            if (x->state == 2) continue;
            if (x->state == 0 && (evs[e].events & EPOLLOUT)) {
                ssize_t w = send(x->fd, req + x->sent, (size_t)req_n - x->sent, MSG_NOSIGNAL);
                if (w > 0) x->sent += (size_t)w;
                else if (w < 0 && errno != EAGAIN) {
                    x->err = errno;
                    x->state = 2;
                }
                if (x->state == 0 && x->sent == (size_t)req_n) {
                    x->state = 1;
                    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = evs[e].data.u32};
                    epoll_ctl(ep, EPOLL_CTL_MOD, x->fd, &ev);
                }
            }
            if (x->state != 2 && (evs[e].events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))) {
                for (;;) {
                    if (x->n + 4096 > x->cap) {
                        x->cap = x->cap ? x->cap * 2 : 8192;
                        x->resp = realloc(x->resp, x->cap);
                    }
                    ssize_t r = recv(x->fd, x->resp + x->n, x->cap - x->n - 1, 0);
                    if (r > 0) {
                        x->n += (size_t)r;
                        continue;
                    }
                    if (r < 0 && errno == EAGAIN) break;
                    if (r < 0) x->err = errno;
                    x->state = 2;
                    break;
                }
            }
            if (x->state == 2) {
                epoll_ctl(ep, EPOLL_CTL_DEL, x->fd, NULL);
                close(x->fd);
                x->fd = -1;
                left--;
            }
        }
    }
    double wall = etok_mono_s() - t0;
    int ok = 0, tooMany = 0, tooManyGood = 0, other = 0, reset = 0, unfinished = 0;
    for (int i = 0; i < n_clients; i++) {
        client *x = &c[i];
        if (x->resp) x->resp[x->n] = '\0';
        if (x->state != 2) {
            unfinished++;
            if (x->fd >= 0) close(x->fd);
        } else if (x->err == -1) {
            continue; /* counted in connect_failed */
        } else if (x->n >= 12 && !strncmp(x->resp, "HTTP/1.1 200", 12) && strstr(x->resp, "\"text_completion\"")) {
            ok++;
        } else if (x->n >= 12 && !strncmp(x->resp, "HTTP/1.1 429", 12)) {
            tooMany++;
            if (strstr(x->resp, "Retry-After: ") && strstr(x->resp, "{\"error\":{\"message\":\"") &&
                strstr(x->resp, "\"code\":\"rate_limit_exceeded\""))
                tooManyGood++;
        } else if (x->n > 0) {
            other++;
            if (other <= 3) printf("  other answer: %.120s\n", x->resp);
        } else {
            reset++; /* closed or reset with no answer */
        }
        free(x->resp);
    }
    close(ep);
    free(c);
    printf("  %d clients connected in %.2f s (%d connects failed), all done in %.1f s\n", n_clients, t_connected, connect_failed,
           wall);
    printf("  answers: 200 %d, 429 %d (%d with Retry-After and the OpenAI error shape), other status %d, "
           "reset or closed without an answer %d, unfinished %d\n",
           ok, tooMany, tooManyGood, other, reset, unfinished);
}

/* ---------- phase 2: slowloris ---------- */

static void phase_slowloris(int n, double seconds) {
    int *fd = malloc((size_t)n * sizeof *fd);
    double *closed_at = malloc((size_t)n * sizeof *closed_at);
    int open_fail = 0;
    double t0 = etok_mono_s();
    for (int i = 0; i < n; i++) {
        closed_at[i] = -1;
        fd[i] = tcp_socket(0);
        if (fd[i] < 0) {
            open_fail++;
            continue;
        }
        const char *l = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n";
        if (send(fd[i], l, strlen(l), MSG_NOSIGNAL) < 0) closed_at[i] = etok_mono_s() - t0;
    }
    double next_line = t0 + 5;
    while (etok_mono_s() - t0 < seconds) {
        usleep(100000);
        double now = etok_mono_s();
        for (int i = 0; i < n; i++) { /* has the server closed it? */
            if (fd[i] < 0 || closed_at[i] >= 0) continue;
            char b[256];
            ssize_t r = recv(fd[i], b, sizeof b, MSG_DONTWAIT);
            if (r == 0 || (r < 0 && errno != EAGAIN)) closed_at[i] = now - t0;
        }
        if (now >= next_line) { /* one more header line on every open one */
            next_line += 5;
            for (int i = 0; i < n; i++)
                if (fd[i] >= 0 && closed_at[i] < 0 && send(fd[i], "X-Slow: 1\r\n", 11, MSG_NOSIGNAL) < 0)
                    closed_at[i] = now - t0;
        }
    }
    int closed = 0;
    double *ct = malloc((size_t)n * sizeof *ct);
    for (int i = 0; i < n; i++) {
        if (closed_at[i] >= 0) ct[closed++] = closed_at[i];
        if (fd[i] >= 0) close(fd[i]);
    }
    qsort(ct, (size_t)closed, sizeof *ct, cmp_d);
    printf("  %d slowloris sockets opened (%d failed), a header line every 5 s for %.0f s\n", n - open_fail, open_fail, seconds);
    if (closed)
        printf("  the server closed %d of them, after %.1f s (first) / %.1f s (median) / %.1f s (last); %d still open at the end\n",
               closed, ct[0], ct[closed / 2], ct[closed - 1], n - open_fail - closed);
    else
        printf("  the server closed none of them\n");
    free(ct);
    free(fd);
    free(closed_at);
}

int main(int argc, char **argv) {
    const char *model = NULL;
    int n_clients = 2000, n_slow = 1000, rounds = 1;
    double slow_s = 30;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--model")) model = argv[i + 1];
        else if (!strcmp(argv[i], "--clients")) n_clients = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--slowloris")) n_slow = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--rounds")) rounds = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--slow-seconds")) slow_s = atof(argv[i + 1]);
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    /* every socket is a descriptor, on both sides (the child inherits the raised limit) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (rl.rlim_cur != RLIM_INFINITY && (long)rl.rlim_cur < n_clients + 256) {
        fprintf(stderr, "serve_abuse: open-file limit %ld is too low for %d clients\n", (long)rl.rlim_cur, n_clients);
        return 1;
    }
    char tiny[64];
    if (!model) {
        snprintf(tiny, sizeof tiny, "/tmp/etok_serve_abuse_%d.gguf", (int)getpid());
        etok_tiny_gguf_opts go;
        etok_tiny_gguf_defaults(&go);
        go.ctx_len = 512;
        if (etok_test_write_tiny_gguf(tiny, &go) != 0) return 1;
        model = tiny;
    }
    signal(SIGPIPE, SIG_IGN);
    int pfd[2];
    if (pipe(pfd)) return 1;
    pid_t child = fork();
    if (child == 0) {
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        pthread_sigmask(SIG_BLOCK, &set, NULL); /* before any server thread starts */
        close(pfd[0]);
        etok_serve_opts o = {.model_path = model, .port = 0, .ctx_len = 512, .n_threads = 1};
        etok_err err = {0};
        etok_server *s = etok_server_start(&o, &err);
        int port = s ? etok_server_port(s) : -1;
        if (!s) fprintf(stderr, "serve_abuse: %s\n", err.msg);
        if (write(pfd[1], &port, sizeof port) != sizeof port) _exit(1);
        close(pfd[1]);
        if (!s) _exit(1);
        int per_ip = 0, mc = etok_server_max_connections(s, &per_ip);
        fprintf(stderr, "serve_abuse: server up to %d connections, %d per address\n", mc, per_ip);
        int sig;
        sigwait(&set, &sig);
        etok_server_stop(s);
        _exit(0);
    }
    g_child = child;
    close(pfd[1]);
    if (read(pfd[0], &g_port, sizeof g_port) != sizeof g_port || g_port <= 0) {
        fprintf(stderr, "serve_abuse: server did not start\n");
        return 1;
    }
    poller p = {.cap = 1 << 16};
    p.lat = malloc((size_t)p.cap * sizeof *p.lat);
    pthread_t th;
    printf("model %s, server defaults (8 slots, queue 1024, idle timeout 15 s, request deadline 10 s), 127.0.0.1\n",
           model == tiny ? "tiny synthetic GGUF" : model);

    for (int step = 0; step < rounds + 1; step++) {
        int phase = step < rounds ? 1 : 2;
        if ((phase == 1 && n_clients <= 0) || (phase == 2 && n_slow <= 0)) continue;
        sleep(1);
        long rss0 = rss_kb(child);
        poller_reset(&p);
        atomic_store(&p.stop, 0);
        pthread_create(&th, NULL, poller_main, &p);
        usleep(200000);
        if (phase == 1) {
            printf("== phase 1 (round %d): %d concurrent clients, one non-streaming completion each (max_tokens 8)\n", step + 1,
                   n_clients);
            phase_many(n_clients);
        } else {
            printf("== phase 2: %d slowloris sockets\n", n_slow);
            phase_slowloris(n_slow, slow_s);
        }
        atomic_store(&p.stop, 1);
        pthread_join(th, NULL);
        poller_print(&p);
        sleep(2); /* closed connections cleaned up */
        long rss1 = rss_kb(child);
        printf("  server RSS: before %ld kB, peak %ld kB, after %ld kB\n", rss0, p.rss_peak_kb, rss1);
    }
    kill(child, SIGTERM);
    waitpid(child, NULL, 0);
    if (model == tiny) remove(tiny);
    free(p.lat);
    return 0;
}
