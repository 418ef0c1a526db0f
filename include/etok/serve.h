/* serve.h — `etok serve` (an OpenAI-compatible server over the built-in engine, with the
 * energy of every request) and `etok exporter` (this node's energy meters for Prometheus).
 *
 * Both read energy through etok_energy_source, a small callback the CLI wires to a meter set
 * (etok_meters_snapshot) and tests wire to a synthetic source, so the server never depends
 * on which meters exist.
 *
 * Per-request energy (serve): the engine thread reads cumulative energy before and after each
 * batched step (etok_engine_step). The step's energy — from the end of the previous step when
 * the engine ran back to back, else from the start of this step — is split across the requests
 * in the step in proportion to the tokens each put through the forward pass (its prompt chunk
 * when prefilling, else the one token it decodes). Energy used while no request is in the engine is not attributed to any
 * request; it is exported as etok_unattributed_energy_joules_total. So, at any scrape while
 * the engine is idle, attributed + unattributed = the meter's energy since it started, and over
 * a window between two such scrapes sum(request energy_j) = the attributed energy. A single request's figure is as
 * good as the meter's time resolution: a counter that refreshes every ~1 ms (RAPL) splits
 * steps cleanly; a coarse or estimated meter smears energy between neighbouring steps (sums
 * stay exact). The figure's source is the meter's (`energy_source` in every usage). */
#ifndef ETOK_SERVE_H
#define ETOK_SERVE_H

#include <stdatomic.h>
#include <stddef.h>

#include "etok/meter.h"
#include "etok/procenergy.h"
#include "etok/prom.h"
#include "etok/engine.h"
#include "etok/record.h"
#include "etok/util.h"

#define ETOK_ENERGY_MAX_DOMAINS 32

typedef struct {
    char meter[32];
    char domain[96];
    etok_source source;
    etok_boundary boundary;
    int summable;              /* counts towards total_j; others (nested, other boundary) are
                                  exported apart so that sums over series never double count */
    double energy_j;           /* cumulative since the source started */
} etok_energy_domain;

typedef struct {
    double t_s;                /* when read (source's clock, seconds) */
    double total_j;            /* cumulative energy of the summable domains */
    double uncertainty_j;
    double power_w;            /* recent mean power (about the last second) */
    etok_source source;        /* weakest source among the summed domains */
    etok_boundary boundary;
    int n_domains;
    etok_energy_domain domains[ETOK_ENERGY_MAX_DOMAINS];
} etok_energy_reading;

/* read: fill out; 0 ok, -1 failure (the caller keeps the last good reading). Thread-safe.
 * mark (optional, NULL = none): take a reading of every meter now, so that the next read
 * reports this moment rather than the sampler's last period; a scrape of `etok exporter` is a
 * window edge for its consumer (etok bench --energy-from). Blocks until the reading is in. */
typedef struct {
    int (*read)(void *arg, etok_energy_reading *out);
    void *arg;
    int (*mark)(void *arg);
} etok_energy_source;

/* An energy source over a meter set (meter.h): opens the meters, starts their sampler on a
 * private record, and reports the set's live snapshot: the total of the summable domains at
 * the primary boundary, and every live domain (summable = part of that total). */
typedef struct etok_meter_source etok_meter_source;
etok_meter_source *etok_meter_source_open(const etok_meter_config *cfg, etok_energy_source *out, etok_err *err);
/* Comma-separated "meter/domain (source, boundary)" of the summed domains, for logs. */
const char *etok_meter_source_describe(const etok_meter_source *m);
/* The private run record the meters fill (traces, faults); serve adds its steps and requests
 * to it when asked to keep one (etok_serve_opts.record). Record time t = 0 is
 * etok_meter_source_t0_mono(). */
etok_record *etok_meter_source_record(etok_meter_source *m);
double etok_meter_source_t0_mono(const etok_meter_source *m);
/* Take the final readings and stop the sampler (the record's traces are then complete). */
int etok_meter_source_stop(etok_meter_source *m, etok_err *err);
void etok_meter_source_close(etok_meter_source *m);

/* Remote energy (`etok bench --energy-from URL`): the /metrics page of an `etok exporter` (or
 * `etok serve`) on the server's node, read over HTTP at each read() — counters at window edges.
 * The reading sums every etok_energy_joules_total series on the page (the exporter exposes only
 * summable, non-overlapping series), takes etok_power_watts, and the weakest source label. */
typedef struct etok_remote_energy etok_remote_energy;
etok_remote_energy *etok_remote_energy_open(const char *metrics_url, double timeout_s, etok_energy_source *out,
                                            etok_err *err);
void etok_remote_energy_close(etok_remote_energy *r);
/* Parse a Prometheus page into a reading (exposed for tests). 0, or -1 with err when the page
 * has no etok_energy_joules_total series or a malformed one. */
int etok_remote_energy_parse(const char *text, etok_energy_reading *out, etok_err *err);

/* The Prometheus families of one reading (etok_energy_joules_total per summable domain,
 * etok_energy_nested_joules_total, etok_power_watts, etok_energy_uncertainty_joules): what the
 * exporter's and the server's /metrics share (src/serve/exporter.c). */
void etok_prom_energy_reading(etok_prom_buf *b, const etok_energy_reading *r);

/* ---- etok serve ---- */

typedef struct {
    const char *model_path;
    const char *model_id;      /* id in /v1/models and responses; NULL = file name */
    const char *host;          /* NULL = 127.0.0.1 */
    int port;                  /* 0 = any free port (see bound_port) */
    const char *api_key;       /* NULL = no auth; else /v1/ needs "Authorization: Bearer KEY"; "" is refused */
    int accept_any_model;      /* 1: serve a request whatever its "model"; 0: another id than model_id gets
                                  404 model_not_found (a request without "model" is served) */
    int max_seqs;              /* continuous-batching slots, default 8 */
    int n_threads;             /* engine threads, 0 = all cores */
    int ctx_len;               /* per sequence, 0 = engine default */
    size_t max_body_bytes;     /* 0 = 1 MiB; larger bodies get 413 */
    int max_tokens_limit;      /* 0 = 4096; larger max_tokens gets 400 */
    int default_max_tokens;    /* when the request gives none; 0 = 256 (capped by the limit and by the
                                  room the prompt leaves in the context) */
    int max_queue;             /* waiting requests before 429; 0 = 1024 */
    double jpt_window_s;       /* sliding window of etok_joules_per_token; 0 = 60 s */
    etok_energy_source energy; /* read may be NULL: then energy fields say source "none" */
    etok_grid grid;            /* --grid-intensity / --region (opt-in): co2e_g in each usage's energy
                                  fields (energy_j / 3.6e6 x g_per_kwh, no PUE); !present: none */
    double energy_period_s;    /* how often the source's cumulative energy advances (the meter
                                  sampling period); reported with every usage; 0 = unknown */
    /* Optional run record (`etok serve -o`): every engine step and finished request is appended
     * (times relative to t0_mono), up to record_cap of each (then the record is marked partial).
     * The server only touches rec->steps, rec->requests and the token totals, under its lock. */
    etok_record *record;
    double t0_mono;            /* record time 0 (etok_mono_s() clock); 0 = the server's start */
    size_t record_cap;         /* 0 = 1,000,000 */
    /* Connections (src/serve/server.c): beyond the limits new connections are closed at once;
     * a full queue (max_queue) answers 429 with Retry-After. */
    int max_connections;       /* open connections; 0 = 8192; capped to RLIMIT_NOFILE - 64 */
    int max_conn_per_ip;       /* per client address; 0 = half of max_connections; < 0 = no limit */
    int conn_timeout_s;        /* close a connection idle this long (no byte in or out); 0 = 15 */
    double header_timeout_s;   /* a whole request (headers and body) must arrive within this of the
                                  connection opening or the previous response; 0 = 10 */
    double shutdown_grace_s;   /* at stop, time for queued and running requests to finish before
                                  they are ended with an error; 0 = 5; < 0 = none */
    atomic_int *cut_grace;     /* optional, owned by the caller: set nonzero from any thread to end
                                  the grace period at once (a second SIGINT) */
    int http_threads;          /* libmicrohttpd's epoll thread pool; 0 = 4 */
    /* Engine levers (engine.h): weight format at load (NULL = keep), KV format, sliding window */
    const char *weights;
    int kv_bits, attn_window, attn_sinks;
} etok_serve_opts;

typedef struct etok_server etok_server;

/* Load the model, start the engine thread and the HTTP server. NULL with err on failure
 * (missing/bad model: ETOK_EXIT_INPUT; port in use: ETOK_EXIT_FAIL). */
etok_server *etok_server_start(const etok_serve_opts *o, etok_err *err);
int etok_server_port(const etok_server *s);
/* The model it serves (owned by the server). */
const etok_model *etok_server_model(const etok_server *s);
/* The effective connection limits (after RLIMIT_NOFILE); *per_ip 0 = none. */
int etok_server_max_connections(const etok_server *s, int *per_ip);
/* Stop accepting; give queued and running requests shutdown_grace_s to finish; end the rest
 * (streams with an SSE error event and data: [DONE], others with a 500); wait until those
 * answers are sent (at most 2 s); close every connection, join threads, free. */
void etok_server_stop(etok_server *s);

/* ---- etok exporter ---- */

typedef struct {
    const char *host;          /* NULL = 127.0.0.1 */
    int port;                  /* 0 = any free port */
    const char *tokens_file;   /* optional: cumulative token counts written by the node's engine */
    etok_energy_source energy;
    /* --per-process: energy split over processes and cgroups by CPU time (procenergy.h), an
     * attribution model updated every per_process_period_s by a thread of the exporter */
    int per_process;
    int per_process_cgroups;       /* also the cgroup view (default on with --per-process) */
    double per_process_period_s;   /* <= 0: 1 s */
    double idle_power_w;           /* the device's idle power for the model; <= 0: not known */
    void *per_process_state;       /* internal: set by etok_exporter_start */
} etok_exporter_opts;

typedef struct etok_exporter etok_exporter;
etok_exporter *etok_exporter_start(const etok_exporter_opts *o, etok_err *err);
int etok_exporter_port(const etok_exporter *x);
void etok_exporter_stop(etok_exporter *x);

/* The exporter's page (exposed for tests): malloc'd Prometheus text. */
char *etok_exporter_metrics_text(const etok_exporter_opts *o);
/* The per-process and per-cgroup families of one view (exposed for tests). */
void etok_prom_procenergy(etok_prom_buf *b, const etok_procenergy_view *v, double idle_power_w);

/* Parse a tokens file: one integer (output tokens) or lines "input N" / "output N" (either
 * may be missing). Counts are decimal whole numbers 0..2^53 (exact as a Prometheus sample);
 * a sign, a fraction or an overflowing count is refused, never saturated. Returns 0, or -1
 * with err naming the file and line (ETOK_EXIT_INPUT). */
int etok_tokens_file_parse(const char *text, const char *path, long long *input, long long *output,
                           int *has_input, int *has_output, etok_err *err);

#endif
