/* exporter.c — `etok exporter`: this node's energy meters (and, optionally, a token counter)
 * as a Prometheus /metrics page, for nodes that run another inference engine.
 *
 * Owns: the HTTP endpoint (libmicrohttpd, one polling thread), the exporter's metric set, and
 * the tokens file format. Does not own: reading meters (the etok_energy_source), the text
 * syntax (render/prom.c), or any aggregation across nodes — that is PromQL's job
 * (docs/PROMETHEUS.md).
 *
 * Tokens: Prometheus can only divide energy by tokens if something counts tokens on the node.
 * The node's engine usually exports its own counter (vLLM: vllm:generation_tokens_total); when
 * it does not, --tokens-file names a file the engine (or a log tailer) rewrites with cumulative
 * counts, and the exporter republishes it as etok_tokens_total{kind}. The exporter never
 * invents a token count: with no file, or an unreadable one, the series is absent and
 * etok_tokens_file_up says 0.
 *
 * --per-process (procenergy.h): a thread updates the per-process and per-cgroup books every
 * period from the energy source's cumulative total; a scrape renders them under the same
 * mutex. The families state the model in their HELP text (docs/PROMETHEUS.md). */
#include "etok/serve.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etok/parse.h"
#include "etok/prom.h"

/* The largest count a tokens file may hold: 2^53, exact as a Prometheus (double) sample. */
#define ETOK_TOKENS_FILE_MAX 9007199254740992LL

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop, started;
    pthread_t th;
    etok_procenergy *pe;
    etok_energy_source energy;
    double period_s;
    int failed;               /* the last update failed (etok_process_attribution_up 0) */
    char last_error[1024];
} pp_state;

struct etok_exporter {
    etok_exporter_opts o;
    pp_state pp;
    char host[64];
    char tokens_file[1024];
    struct MHD_Daemon *d;
    int port;
};

int etok_tokens_file_parse(const char *text, const char *path, long long *input, long long *output, int *has_input,
                           int *has_output, etok_err *err) {
    *has_input = *has_output = 0;
    *input = *output = 0;
    int line_no = 0;
    const char *p = text;
    while (*p) {
        line_no++;
        const char *e = strchr(p, '\n');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        char line[256];
        if (n >= sizeof line) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: line too long", path, line_no);
        memcpy(line, p, n);
        line[n] = '\0';
        p = e ? e + 1 : p + n;
        char *hash = strchr(line, '#');
        if (hash) *hash = '\0';
        /* Up to three words: "N", or "input N" / "output N" (a third word is an error). */
        char *words[3] = {0}, *save = NULL;
        int nw = 0;
        for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
            if (nw == 3) break;
            words[nw++] = w;
        }
        if (nw == 0) continue; /* blank */
        const char *kind = nw == 2 ? words[0] : "output";
        if (nw > 2 || (nw == 2 && strcmp(kind, "input") && strcmp(kind, "output")))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: expected 'input N', 'output N' or a single count, got '%.60s'", path,
                             line_no, words[0]);
        /* Strict: no sign, no overflow to 9.22e18; at most 2^53 so the Prometheus double is exact. */
        char what[64];
        snprintf(what, sizeof what, "%s:%d: %s token count", path, line_no, kind);
        unsigned long long uv;
        if (etok_parse_u64(what, words[nw - 1], ETOK_TOKENS_FILE_MAX, &uv, err)) {
            if (err) err->exit_code = ETOK_EXIT_INPUT;
            return -1;
        }
        long long v = (long long)uv;
        if (!strcmp(kind, "input")) {
            *input = v;
            *has_input = 1;
        } else {
            *output = v;
            *has_output = 1;
        }
    }
    return 0;
}

char *etok_exporter_metrics_text(const etok_exporter_opts *o) {
    etok_prom_buf b;
    etok_prom_init(&b);
    etok_energy_reading r;
    /* a scrape is a window edge for whoever reads it (etok bench --energy-from): the meters are
     * read now, not at the sampler's last period, which a starved sampler thread left seconds
     * old (test_bench_e2e read 1.7-36 W for 50 W under a loaded CI) */
    if (o->energy.mark) (void)o->energy.mark(o->energy.arg);
    int have = o->energy.read && o->energy.read(o->energy.arg, &r) == 0;
    etok_prom_family(&b, "etok_meter_up", "gauge", "1 when etok could read this node's meters at this scrape");
    etok_prom_sample(&b, "etok_meter_up", NULL, have ? 1 : 0);
    if (have) etok_prom_energy_reading(&b, &r);
    if (o->tokens_file) {
        size_t len = 0;
        etok_err err = {0};
        char *text = etok_read_file_bounded(o->tokens_file, "tokens file", ETOK_LIMIT_TOKENS_FILE, &len, &err);
        long long in = 0, out = 0;
        int hi = 0, ho = 0;
        int ok = text && etok_tokens_file_parse(text, o->tokens_file, &in, &out, &hi, &ho, &err) == 0;
        free(text);
        etok_prom_family(&b, "etok_tokens_file_up", "gauge", "1 when the tokens file was read and parsed at this scrape");
        etok_prom_sample(&b, "etok_tokens_file_up", NULL, ok ? 1 : 0);
        if (ok && (hi || ho)) {
            etok_prom_family(&b, "etok_tokens_total", "counter", "Cumulative tokens reported by this node's engine (tokens file)");
            const char *ki[] = {"kind", "input", NULL}, *ko[] = {"kind", "output", NULL};
            if (hi) etok_prom_sample(&b, "etok_tokens_total", ki, (double)in);
            if (ho) etok_prom_sample(&b, "etok_tokens_total", ko, (double)out);
        }
    }
    pp_state *pp = o->per_process ? o->per_process_state : NULL;
    if (pp) {
        pthread_mutex_lock(&pp->mu);
        etok_procenergy_view v;
        etok_procenergy_view_get(pp->pe, &v);
        etok_prom_family(&b, "etok_process_attribution_up", "gauge",
                         "1 when the last per-process update read /proc (and the meters) at its interval");
        etok_prom_sample(&b, "etok_process_attribution_up", NULL, pp->failed ? 0 : 1);
        etok_prom_procenergy(&b, &v, o->idle_power_w);
        pthread_mutex_unlock(&pp->mu);
    }
    etok_prom_family(&b, "etok_exporter_info", "gauge", "etok exporter version");
    const char *il[] = {"version", "0.1.0", NULL};
    etok_prom_sample(&b, "etok_exporter_info", il, 1);
    if (b.oom) {
        etok_prom_free(&b);
        return NULL;
    }
    return b.text;
}

/* The energy families of one reading (serve.h): summable domains, nested ones apart, power and
 * uncertainty. The exporter's and the server's /metrics both write them here. */
void etok_prom_energy_reading(etok_prom_buf *b, const etok_energy_reading *r) {
    int nested = 0;
    etok_prom_family(b, "etok_energy_joules_total", "counter",
                     "Cumulative energy (J) since start per meter domain; the series add up to the node's total "
                     "at its primary boundary (sum() over them never double counts)");
    for (int i = 0; i < r->n_domains; i++) {
        const etok_energy_domain *d = &r->domains[i];
        if (!d->summable) {
            nested++;
            continue;
        }
        const char *l[] = {"meter", d->meter, "domain", d->domain, "boundary", etok_boundary_name(d->boundary),
                           "source", etok_source_name(d->source), NULL};
        etok_prom_sample(b, "etok_energy_joules_total", l, d->energy_j);
    }
    if (nested) {
        etok_prom_family(b, "etok_energy_nested_joules_total", "counter",
                         "Cumulative energy (J) of domains nested in or duplicating the summed ones (e.g. core "
                         "inside package, psys, another boundary): informative, never add to etok_energy_joules_total");
        for (int i = 0; i < r->n_domains; i++) {
            const etok_energy_domain *d = &r->domains[i];
            if (d->summable) continue;
            const char *l[] = {"meter", d->meter, "domain", d->domain, "boundary", etok_boundary_name(d->boundary),
                               "source", etok_source_name(d->source), NULL};
            etok_prom_sample(b, "etok_energy_nested_joules_total", l, d->energy_j);
        }
    }
    const char *pl[] = {"boundary", etok_boundary_name(r->boundary), "source", etok_source_name(r->source), NULL};
    etok_prom_family(b, "etok_power_watts", "gauge", "Mean power (W) over about the last second, summable domains");
    etok_prom_sample(b, "etok_power_watts", pl, r->power_w);
    etok_prom_family(b, "etok_energy_uncertainty_joules", "gauge", "Uncertainty (J) of the cumulative energy");
    etok_prom_sample(b, "etok_energy_uncertainty_joules", pl, r->uncertainty_j);
}

void etok_prom_procenergy(etok_prom_buf *b, const etok_procenergy_view *v, double idle_power_w) {
    char pid[32], idle[32];
    etok_prom_family(b, "etok_process_energy_joules_total", "counter",
                     "ATTRIBUTION MODEL, not a measurement: device energy (J) split over processes by their share of the "
                     "machine's busy CPU time in each interval (utime+stime of /proc/PID/stat vs /proc/stat); assumes a busy "
                     "core costs the same for every process and non-CPU energy follows CPU time. Live processes only; "
                     "sum() + exited + unattributed = covered, never double counted");
    for (size_t i = 0; i < v->n_procs; i++) {
        if (!(v->procs[i].energy_j > 0)) continue;
        snprintf(pid, sizeof pid, "%ld", v->procs[i].pid);
        const char *l[] = {"pid", pid, "comm", v->procs[i].comm, NULL};
        etok_prom_sample(b, "etok_process_energy_joules_total", l, v->procs[i].energy_j);
    }
    etok_prom_family(b, "etok_process_exited_energy_joules_total", "counter",
                     "Attributed energy (J) of processes that have exited (their series are gone)");
    etok_prom_sample(b, "etok_process_exited_energy_joules_total", NULL, v->proc_exited_j);
    etok_prom_family(b, "etok_process_unattributed_energy_joules_total", "counter",
                     "Energy (J) no process took: busy time no process accounts for, idle intervals, and the idle power "
                     "of free cores when an idle power is given");
    etok_prom_sample(b, "etok_process_unattributed_energy_joules_total", NULL, v->proc_unattributed_j);
    etok_prom_family(b, "etok_process_attribution_covered_energy_joules_total", "counter",
                     "Device energy (J) over the intervals attributed (per-process and per-cgroup views each add up to it)");
    etok_prom_sample(b, "etok_process_attribution_covered_energy_joules_total", NULL, v->covered_j);
    if (v->cgroups_available) {
        etok_prom_family(b, "etok_cgroup_energy_joules_total", "counter",
                         "ATTRIBUTION MODEL, not a measurement: device energy (J) split over cgroup v2 cgroups by their own "
                         "CPU usage (cpu.stat usage_usec less their children's) in each interval, the model of "
                         "etok_process_energy_joules_total; a separate view: never add it to the process series");
        for (size_t i = 0; i < v->n_cgroups; i++) {
            if (!(v->cgroups[i].energy_j > 0)) continue;
            const char *l[] = {"cgroup", v->cgroups[i].path, NULL};
            etok_prom_sample(b, "etok_cgroup_energy_joules_total", l, v->cgroups[i].energy_j);
        }
        etok_prom_family(b, "etok_cgroup_removed_energy_joules_total", "counter",
                         "Attributed energy (J) of cgroups that have been removed");
        etok_prom_sample(b, "etok_cgroup_removed_energy_joules_total", NULL, v->cgroup_removed_j);
        etok_prom_family(b, "etok_cgroup_unattributed_energy_joules_total", "counter",
                         "Energy (J) no cgroup took (as etok_process_unattributed_energy_joules_total)");
        etok_prom_sample(b, "etok_cgroup_unattributed_energy_joules_total", NULL, v->cgroup_unattributed_j);
    }
    snprintf(idle, sizeof idle, "%g", idle_power_w > 0 ? idle_power_w : 0);
    etok_prom_family(b, "etok_process_attribution_info", "gauge",
                     "The attribution model: share of busy CPU time per interval; idle_power_w 0 = the whole energy split "
                     "by CPU time");
    const char *il[] = {"model", "cpu-time-share", "idle_power_w", idle, NULL};
    etok_prom_sample(b, "etok_process_attribution_info", il, 1);
}

static void *pp_thread(void *arg) {
    pp_state *pp = arg;
    pthread_mutex_lock(&pp->mu);
    while (!pp->stop) {
        pthread_mutex_unlock(&pp->mu);
        etok_energy_reading r;
        int have = pp->energy.read && pp->energy.read(pp->energy.arg, &r) == 0;
        pthread_mutex_lock(&pp->mu);
        if (have) {
            etok_err e = {0};
            pp->failed = etok_procenergy_update(pp->pe, r.total_j, &e) != 0;
            if (pp->failed) snprintf(pp->last_error, sizeof pp->last_error, "%s", e.msg);
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        double s = (double)ts.tv_sec + ts.tv_nsec * 1e-9 + pp->period_s;
        ts.tv_sec = (time_t)s;
        ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
        while (!pp->stop && pthread_cond_timedwait(&pp->cv, &pp->mu, &ts) == 0) {
        }
    }
    pthread_mutex_unlock(&pp->mu);
    return NULL;
}

static int pp_start(etok_exporter *x, etok_err *err) {
    pp_state *pp = &x->pp;
    pp->period_s = x->o.per_process_period_s > 0 ? x->o.per_process_period_s : 1.0;
    pp->energy = x->o.energy;
    pp->pe = etok_procenergy_open(x->o.per_process_cgroups, x->o.idle_power_w, err);
    if (!pp->pe) return -1;
    etok_energy_reading r;
    if (pp->energy.read && pp->energy.read(pp->energy.arg, &r) == 0 && etok_procenergy_update(pp->pe, r.total_j, err) != 0) {
        etok_procenergy_close(pp->pe);
        pp->pe = NULL;
        return -1;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&pp->mu, NULL);
    pthread_cond_init(&pp->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (pthread_create(&pp->th, NULL, pp_thread, pp) != 0) {
        pthread_mutex_destroy(&pp->mu);
        pthread_cond_destroy(&pp->cv);
        etok_procenergy_close(pp->pe);
        pp->pe = NULL;
        return etok_errf(err, "exporter: cannot start the per-process thread");
    }
    pp->started = 1;
    x->o.per_process_state = pp;
    return 0;
}

static void pp_stop(etok_exporter *x) {
    pp_state *pp = &x->pp;
    if (!pp->started) return;
    pthread_mutex_lock(&pp->mu);
    pp->stop = 1;
    pthread_cond_signal(&pp->cv);
    pthread_mutex_unlock(&pp->mu);
    pthread_join(pp->th, NULL);
    pthread_mutex_destroy(&pp->mu);
    pthread_cond_destroy(&pp->cv);
    etok_procenergy_close(pp->pe);
    pp->started = 0;
}

static enum MHD_Result reply(struct MHD_Connection *c, unsigned status, const char *ctype, char *text) {
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    if (!r) {
        free(text);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ctype);
    enum MHD_Result ok = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ok;
}

static enum MHD_Result handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                               const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls) {
    (void)version;
    (void)upload_data;
    etok_exporter *x = cls;
    if (!*con_cls) {
        *con_cls = (void *)1;
        return MHD_YES;
    }
    if (*upload_data_size) {
        *upload_data_size = 0; /* ignore any body */
        return MHD_YES;
    }
    if (strcmp(method, "GET") && strcmp(method, "HEAD")) return reply(c, 405, "text/plain", strdup("use GET\n"));
    if (!strcmp(url, "/metrics")) {
        char *t = etok_exporter_metrics_text(&x->o);
        if (!t) return MHD_NO;
        return reply(c, 200, "text/plain; version=0.0.4; charset=utf-8", t);
    }
    if (!strcmp(url, "/") || !strcmp(url, "/health"))
        return reply(c, 200, "text/plain", strdup("etok exporter: metrics at /metrics\n"));
    return reply(c, 404, "text/plain", strdup("not found: metrics are at /metrics\n"));
}

etok_exporter *etok_exporter_start(const etok_exporter_opts *o, etok_err *err) {
    etok_exporter *x = calloc(1, sizeof *x);
    if (!x) {
        etok_errf(err, "exporter: out of memory");
        return NULL;
    }
    x->o = *o;
    snprintf(x->host, sizeof x->host, "%s", o->host ? o->host : "127.0.0.1");
    if (o->tokens_file) {
        snprintf(x->tokens_file, sizeof x->tokens_file, "%s", o->tokens_file);
        x->o.tokens_file = x->tokens_file;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)o->port);
    if (inet_pton(AF_INET, x->host, &addr.sin_addr) != 1) {
        etok_errc(err, ETOK_EXIT_USAGE, "exporter: --host '%s' is not an IPv4 address", x->host);
        free(x);
        return NULL;
    }
    x->o.per_process_state = NULL;
    if (o->per_process && pp_start(x, err) != 0) {
        free(x);
        return NULL;
    }
    x->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD, (uint16_t)o->port, NULL, NULL, handler, x,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&addr, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                            MHD_OPTION_END);
    if (!x->d) {
        etok_errf(err, "exporter: cannot listen on %s:%d (port in use or not permitted)", x->host, o->port);
        pp_stop(x);
        free(x);
        return NULL;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(x->d, MHD_DAEMON_INFO_BIND_PORT);
    x->port = info ? info->port : o->port;
    return x;
}

int etok_exporter_port(const etok_exporter *x) { return x->port; }

void etok_exporter_stop(etok_exporter *x) {
    if (!x) return;
    if (x->d) MHD_stop_daemon(x->d);
    pp_stop(x);
    free(x);
}
