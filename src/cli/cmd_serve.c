/* cmd_serve.c — `etok serve`: argument parsing and lifetime of the OpenAI-compatible server
 * (src/serve/server.c) over this machine's meters (src/serve/meter_source.c). */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include <jansson.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/bgload.h"
#include "etok/grid.h"
#include "etok/parse.h"
#include "etok/meter.h"
#include "etok/paths.h"
#include "etok/serve.h"
#include "etok/util.h"

static void usage(FILE *f) {
    fprintf(f,
            "usage: etok serve [-m model.gguf] [--host 127.0.0.1] [--port 8080] [--api-key KEY]\n"
            "                  [--max-seqs N] [--threads T] [--ctx N] [--meter NAME ...] [--cpu-tdp I:M]\n"
            "                  [--max-body BYTES] [--max-tokens-limit N] [--default-max-tokens N]\n"
            "                  [--model-id NAME] [--accept-any-model] [--window S] [--meter-rate-hz HZ]\n"
            "                  [--no-energy] [--grid-intensity G | --region CODE] [-o RUN.json]\n"
            "                  [--weights FORMAT] [--kv-type TYPE] [--attn-window N [--attn-sinks S]]\n"
            "                  [--max-queue N] [--max-connections N] [--max-connections-per-ip N]\n"
            "                  [--idle-timeout S] [--request-timeout S] [--shutdown-grace-s S]\n\n"
            "OpenAI-compatible server over etok's engine with continuous batching, and the energy of\n"
            "every request in its usage (energy_j, joules_per_token, energy_source).\n"
            "  POST /v1/chat/completions, /v1/completions   (stream true/false, stream_options.include_usage,\n"
            "                                               stop: a string or up to 4)\n"
            "  GET  /v1/models, /v1/models/ID, /health, /metrics  (/metrics: Prometheus text, docs/PROMETHEUS.md)\n"
            "Message contents and prompts are plain text: special-token text in them (\"<|im_start|>\")\n"
            "stays text; only the chat template inserts control tokens.\n"
            "  -m, --model FILE       GGUF model (default: $ETOK_MODEL, else the default model in\n"
            "                         ~/.cache/etok/models or ./models; docs/INSTALL.md)\n"
            "  --host ADDR            IPv4 address to bind (default 127.0.0.1: loopback only)\n"
            "  --port N               TCP port (default 8080; 0 = any free port, printed on stderr)\n"
            "  --api-key KEY          require 'Authorization: Bearer KEY' on /v1/ (default: none; an empty\n"
            "                         KEY is refused)\n"
            "  --max-seqs N           requests batched together in the engine (default 8)\n"
            "  --threads T            engine threads (default: all cores)\n"
            "  --ctx N                context length per request (default min(model, 2048))\n"
            ETOK_CLI_LEVERS_HELP
            "  --meter NAME           meter to read (repeatable or comma-separated; default: every available meter)\n"
            "  --cpu-tdp I:M          idle and max watts per package for the estimate meter\n"
            "  --meter-rate-hz HZ     meter sampling rate (default 50: per-request energy resolves 20 ms)\n"
            "  --no-energy            do not open meters (usage energy fields are null, source none)\n"
            "  --grid-intensity G     opt-in carbon: add co2e_g (gCO2e = energy_j / 3.6e6 x G, at the meter's\n"
            "                         boundary, no PUE, embodied not included) to every usage\n"
            "  --region CODE          instead: the annual average of data/grid/CODE.json (location-based)\n"
            "  --max-body BYTES       largest request body (default 1048576; larger: 413)\n"
            "  --max-tokens-limit N   largest max_tokens accepted (default 4096; larger: 400)\n"
            "  --default-max-tokens N max_tokens when a request gives none (default 256), lowered to the\n"
            "                         room the prompt leaves in the context\n"
            "  --model-id NAME        model id reported by /v1/models (default: the file name)\n"
            "  --accept-any-model     serve requests naming any \"model\" (default: another id than the\n"
            "                         served one gets 404 model_not_found)\n"
            "  --window S             sliding window of etok_joules_per_token (default 60 s)\n"
            "  --max-queue N          requests waiting for an engine slot before 429 + Retry-After (default 1024)\n"
            "  --max-connections N    open connections; more are closed at once (default 8192, capped to the\n"
            "                         open-file limit, which serve raises to its hard limit)\n"
            "  --max-connections-per-ip N  per client address (default half of --max-connections; 0 = no limit)\n"
            "  --idle-timeout S       close a connection with no byte in or out for S seconds (default 15)\n"
            "  --request-timeout S    a whole request (headers and body) must arrive within S seconds of the\n"
            "                         connection opening or the previous response (default 10; slowloris)\n"
            "  --shutdown-grace-s S   on SIGINT/SIGTERM, stop accepting and give queued and running requests\n"
            "                         S seconds to finish (a second signal ends them at once); the rest end with\n"
            "                         an error event and [DONE] (default 5)\n"
            "  -o RUN.json            on exit (SIGINT/SIGTERM), write the run record: meter traces, every\n"
            "                         engine step and request with its energy (etok report RUN.json);\n"
            "                         keeps every meter sample in memory (~0.8 kB/s per domain at 50 Hz)\n"
            "Per-request energy: each engine step's energy (meter deltas) is split across the requests\n"
            "in the step by their share of the step's tokens; idle energy is attributed to none\n"
            "(see include/etok/serve.h). Its source is the meter's: counter, power, or estimate.\n"
            "SIGINT/SIGTERM stop it cleanly (streams finish or end with an error event, then the -o record).\n"
            "exit codes: 0 ok (stopped by a signal), 1 failure (cannot bind), 2 usage, 3 bad model file,\n"
            "            4 meter permission, 5 -o not writable\n");
}

static int parse_int(const char *opt, const char *s, long lo, long hi, long *out) {
    etok_err e = {0};
    long long v;
    if (etok_parse_i64(opt, s, lo, hi, &v, &e)) {
        fprintf(stderr, "etok serve: %s\n", e.msg);
        return -1;
    }
    *out = (long)v;
    return 0;
}

static int parse_real(const char *opt, const char *s, etok_range r, double *out) {
    etok_err e = {0};
    if (etok_parse_double(opt, s, r, out, &e) == 0) return 0;
    fprintf(stderr, "etok serve: %s\n", e.msg);
    return -1;
}

/* After the first SIGINT/SIGTERM: a second one ends the grace period at once (in-flight requests
 * end with an error now); cmd_serve wakes this thread with pthread_kill once the stop is done. */
typedef struct {
    sigset_t *set;
    atomic_int *cut_grace, *stopped;
} second_signal_watch;

static void *watch_second_signal(void *arg) {
    second_signal_watch *w = arg;
    int sig = 0;
    if (sigwait(w->set, &sig) == 0 && !atomic_load(w->stopped)) {
        atomic_store(w->cut_grace, 1);
        fprintf(stderr, "etok serve: second signal, ending the requests in flight now\n");
    }
    return NULL;
}

/* The record's config (docs/RECORD.md): the engine's settings as `etok bench` records them,
 * its kernel level among them (quant.h: active, and what this CPU would take; ETOK_ISA forces
 * the active one). Taken while the server runs: the model is its. */
static char *serve_config(const etok_serve_opts *o, const etok_cli_levers *lv, const etok_server *s) {
    const etok_model *m = etok_server_model(s);
    const etok_model_info *mi = m ? etok_model_get_info(m) : NULL;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    json_t *c = json_object();
    if (!c) return NULL;
    json_object_set_new(c, "model", json_string(o->model_path ? o->model_path : ""));
    json_object_set_new(c, "model_name", json_string(mi ? mi->name : ""));
    json_object_set_new(c, "weight_types", json_string(mi ? mi->weight_types : ""));
    json_object_set_new(c, "max_seqs", json_integer(o->max_seqs > 0 ? o->max_seqs : 8));
    /* 0 = all cores, at most 256 (as the engine's thread pool resolves it) */
    long threads = o->n_threads > 0 ? o->n_threads : cores > 0 ? cores : 1;
    json_object_set_new(c, "threads", json_integer(threads > 256 ? 256 : threads));
    json_object_set_new(c, "weights", json_string(lv->weights ? lv->weights : "keep"));
    json_object_set_new(c, "kv_type", json_string(etok_cli_kv_type_name(lv->kv_bits)));
    json_object_set_new(c, "attn_window", json_integer(lv->attn_window));
    json_object_set_new(c, "attn_sinks", json_integer(lv->attn_sinks));
    etok_cli_engine_config(c, mi);
    char *txt = json_dumps(c, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(c);
    return txt;
}

int cmd_serve(int argc, char **argv) {
    etok_serve_opts o = {.port = 8080};
    etok_meter_config cfg;
    memset(&cfg, 0, sizeof cfg);
    etok_cli_meters meters = {.n_names = 0};
    int no_energy = 0;
    const char *grid_text = NULL, *grid_region = NULL;
    const char *out_path = NULL;
    etok_cli_levers levers = {0};
    int lr;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int has = i + 1 < argc;
        long v;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return ETOK_EXIT_OK;
        } else if ((!strcmp(a, "-m") || !strcmp(a, "--model")) && has) {
            o.model_path = argv[++i];
        } else if (!strcmp(a, "--host") && has) {
            o.host = argv[++i];
        } else if (!strcmp(a, "--port") && has) {
            if (parse_int(a, argv[++i], 0, 65535, &v)) return ETOK_EXIT_USAGE;
            o.port = (int)v;
        } else if (!strcmp(a, "--api-key") && has) {
            o.api_key = argv[++i];
            if (!*o.api_key) {
                fprintf(stderr, "etok serve: --api-key is empty: give a key, or omit --api-key to serve without "
                                "authentication\n");
                return ETOK_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--accept-any-model")) {
            o.accept_any_model = 1;
        } else if (!strcmp(a, "--max-seqs") && has) {
            if (parse_int(a, argv[++i], 1, 1024, &v)) return ETOK_EXIT_USAGE;
            o.max_seqs = (int)v;
        } else if (!strcmp(a, "--threads") && has) {
            if (parse_int(a, argv[++i], 1, 1024, &v)) return ETOK_EXIT_USAGE;
            o.n_threads = (int)v;
        } else if (!strncmp(a, "--", 2) && has && (lr = etok_cli_lever_opt("serve", a + 2, argv[i + 1], &levers)) != 1) {
            if (lr < 0) return ETOK_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--ctx") && has) {
            if (parse_int(a, argv[++i], 16, 1 << 20, &v)) return ETOK_EXIT_USAGE;
            o.ctx_len = (int)v;
        } else if (!strcmp(a, "--max-body") && has) {
            if (parse_int(a, argv[++i], 64, 1L << 30, &v)) return ETOK_EXIT_USAGE;
            o.max_body_bytes = (size_t)v;
        } else if (!strcmp(a, "--max-tokens-limit") && has) {
            if (parse_int(a, argv[++i], 1, 1 << 20, &v)) return ETOK_EXIT_USAGE;
            o.max_tokens_limit = (int)v;
        } else if (!strcmp(a, "--default-max-tokens") && has) {
            if (parse_int(a, argv[++i], 1, 1 << 20, &v)) return ETOK_EXIT_USAGE;
            o.default_max_tokens = (int)v;
        } else if (!strcmp(a, "--model-id") && has) {
            o.model_id = argv[++i];
        } else if (!strcmp(a, "--max-queue") && has) {
            if (parse_int(a, argv[++i], 1, 1 << 20, &v)) return ETOK_EXIT_USAGE;
            o.max_queue = (int)v;
        } else if (!strcmp(a, "--max-connections") && has) {
            if (parse_int(a, argv[++i], 1, 1 << 20, &v)) return ETOK_EXIT_USAGE;
            o.max_connections = (int)v;
        } else if (!strcmp(a, "--max-connections-per-ip") && has) {
            if (parse_int(a, argv[++i], 0, 1 << 20, &v)) return ETOK_EXIT_USAGE;
            o.max_conn_per_ip = v ? (int)v : -1;
        } else if (!strcmp(a, "--idle-timeout") && has) {
            if (parse_int(a, argv[++i], 1, 86400, &v)) return ETOK_EXIT_USAGE;
            o.conn_timeout_s = (int)v;
        } else if ((!strcmp(a, "--request-timeout") || !strcmp(a, "--shutdown-grace-s")) && has) {
            char *end;
            double d = strtod(argv[++i], &end);
            int grace = !strcmp(a, "--shutdown-grace-s");
            if (!*argv[i] || *end || !(d >= (grace ? 0 : 0.1)) || d > 86400) {
                fprintf(stderr, "etok serve: %s '%s': expected seconds in [%s, 86400]\n", a, argv[i], grace ? "0" : "0.1");
                return ETOK_EXIT_USAGE;
            }
            if (grace) o.shutdown_grace_s = d > 0 ? d : -1;
            else o.header_timeout_s = d;
        } else if (!strcmp(a, "--window") && has) {
            if (parse_real(a, argv[++i], ETOK_RANGE_POS(86400), &o.jpt_window_s)) return ETOK_EXIT_USAGE;
        } else if (!strcmp(a, "--meter") && has) {
            if (etok_cli_meters_add("serve", &meters, argv[++i]) != 0) return ETOK_EXIT_USAGE;
        } else if (!strcmp(a, "--cpu-tdp") && has) {
            if (etok_cli_cpu_tdp("serve", argv[++i], &cfg.cpu_idle_w, &cfg.cpu_max_w) != 0) return ETOK_EXIT_USAGE;
        } else if (!strcmp(a, "--meter-rate-hz") && has) {
            if (parse_real(a, argv[++i], ETOK_RANGE_POS(1000), &cfg.rate_hz)) return ETOK_EXIT_USAGE;
        } else if (!strcmp(a, "-o") && has) {
            out_path = argv[++i];
        } else if (!strcmp(a, "--no-energy")) {
            no_energy = 1;
        } else if (!strcmp(a, "--grid-intensity") && has) {
            grid_text = argv[++i];
        } else if (!strcmp(a, "--region") && has) {
            grid_region = argv[++i];
        } else {
            fprintf(stderr, "etok serve: unknown option or missing value '%s' (etok serve --help)\n", a);
            return ETOK_EXIT_USAGE;
        }
    }
    if (etok_cli_levers_check("serve", &levers)) return ETOK_EXIT_USAGE;
    {
        etok_err gerr = {0};
        if (etok_grid_resolve(grid_text, grid_region, &o.grid, &gerr)) {
            fprintf(stderr, "etok serve: %s\n", gerr.msg);
            return gerr.exit_code ? gerr.exit_code : ETOK_EXIT_USAGE;
        }
        if (o.grid.present && no_energy) {
            fprintf(stderr, "etok serve: --grid-intensity/--region need energy (not --no-energy)\n");
            return ETOK_EXIT_USAGE;
        }
    }
    o.weights = levers.weights;
    o.kv_bits = levers.kv_bits;
    o.attn_window = levers.attn_window;
    o.attn_sinks = levers.attn_sinks;
    char mbuf[4096];
    {
        etok_err merr = {0};
        if (etok_model_resolve("serve", o.model_path, mbuf, sizeof mbuf, &merr) != 0) {
            fprintf(stderr, "%s\n", merr.msg);
            return ETOK_EXIT_INPUT;
        }
        o.model_path = mbuf;
    }
    cfg.names = etok_cli_meters_names(&meters);
    cfg.n_names = meters.n_names;
    if (cfg.rate_hz <= 0) cfg.rate_hz = 50; /* per-step energy wants a finer clock than bench's 10 Hz */
    cfg.live_only = out_path == NULL; /* without a record to write, keep no samples: flat memory */
    o.energy_period_s = 1.0 / cfg.rate_hz;

    sigset_t set; /* SIGINT/SIGTERM are taken with sigwait: no handler, no global state */
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    /* every connection is a descriptor: raise the soft limit to the hard one (the server caps
     * --max-connections to what is there) */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }

    etok_err err = {0};
    if (out_path) { /* an unwritable output path fails now, not after hours of serving */
        if (etok_check_output_path(out_path, &err) != 0) { /* changes nothing at out_path */
            fprintf(stderr, "etok serve: -o: %s\n", err.msg);
            return ETOK_EXIT_OUTPUT;
        }
    }
    etok_meter_source *ms = NULL;
    etok_record own_rec; /* the record when no meters are open */
    etok_record_init(&own_rec);
    etok_record *rec = &own_rec;
    if (!no_energy) {
        ms = etok_meter_source_open(&cfg, &o.energy, &err);
        if (!ms) {
            fprintf(stderr, "etok serve: %s\n", err.msg);
            return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        }
        rec = etok_meter_source_record(ms);
        o.t0_mono = etok_meter_source_t0_mono(ms);
    } else {
        o.t0_mono = etok_mono_s();
        own_rec.t0_wall_s = etok_wall_s();
    }
    if (out_path) o.record = rec;
    atomic_int cut_grace = 0;
    o.cut_grace = &cut_grace;
    etok_server *s = etok_server_start(&o, &err);
    if (!s) {
        fprintf(stderr, "etok serve: %s\n", err.msg);
        etok_meter_source_close(ms);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    fprintf(stderr, "etok serve: listening on http://%s:%d (model %s)\n", o.host ? o.host : "127.0.0.1", etok_server_port(s),
            o.model_path);
    etok_cli_chat_note("serve", o.model_path, etok_server_model(s));
    fprintf(stderr, "etok serve: energy from %s\n", ms ? etok_meter_source_describe(ms) : "nothing (--no-energy)");
    int per_ip = 0, max_conn = etok_server_max_connections(s, &per_ip);
    if (per_ip)
        fprintf(stderr, "etok serve: up to %d connections, %d per client address\n", max_conn, per_ip);
    else
        fprintf(stderr, "etok serve: up to %d connections, no per-address limit\n", max_conn);
    fflush(stderr);
    char *config = out_path ? serve_config(&o, &levers, s) : NULL;
    double t_ready = etok_mono_s() - o.t0_mono;
    int sig = 0;
    sigwait(&set, &sig);
    fprintf(stderr, "etok serve: %s, stopping (requests in flight get up to %g s to finish)\n",
            sig == SIGINT ? "interrupted" : "terminated", o.shutdown_grace_s < 0 ? 0 : o.shutdown_grace_s > 0 ? o.shutdown_grace_s : 5.0);
    atomic_int stopped = 0;
    second_signal_watch watch = {&set, &cut_grace, &stopped};
    pthread_t watcher;
    int watching = pthread_create(&watcher, NULL, watch_second_signal, &watch) == 0;
    etok_server_stop(s);
    if (watching) { /* wake the watcher (the signal is blocked, so it stays pending for sigwait) */
        atomic_store(&stopped, 1);
        pthread_kill(watcher, SIGTERM);
        pthread_join(watcher, NULL);
    }
    double t_end = etok_mono_s() - o.t0_mono;
    int rc = ETOK_EXIT_OK;
    if (ms && etok_meter_source_stop(ms, &err) != 0) fprintf(stderr, "etok serve: meters: %s\n", err.msg);
    if (out_path) {
        snprintf(rec->kind, sizeof rec->kind, "serve");
        snprintf(rec->tool_version, sizeof rec->tool_version, "0.1.0");
        size_t cl = 0;
        for (int i = 0; i < argc && cl + 2 < sizeof rec->command; i++) {
            int n = snprintf(rec->command + cl, sizeof rec->command - cl, "%s%s", i ? " " : "etok ", argv[i]);
            if (n < 0) break;
            cl += (size_t)n < sizeof rec->command - cl ? (size_t)n : sizeof rec->command - cl - 1;
        }
        etok_cli_host_info(rec);
        rec->window_start_s = t_ready; /* serving: from ready to stop, idle time included */
        rec->window_end_s = t_end;
        rec->exit_status = -1;
        free(rec->config_json);
        rec->config_json = config; /* the record owns it now */
        config = NULL;
        etok_bgload_fill_record(rec); /* background load per phase (own work: this process) */
        if (etok_record_save(rec, out_path, &err) != 0) {
            fprintf(stderr, "etok serve: %s\n", err.msg);
            rc = err.exit_code ? err.exit_code : ETOK_EXIT_OUTPUT;
        } else {
            fprintf(stderr, "etok serve: run record with %zu requests and %zu steps written to %s\n", rec->n_requests,
                    rec->n_steps, out_path);
        }
    }
    free(config);
    etok_meter_source_close(ms);
    etok_record_free(&own_rec);
    return rc;
}
