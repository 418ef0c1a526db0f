/* cmd_bench.c — `etok bench`: energy-to-token evaluation of the built-in engine on an eval set,
 * with the METRICS.md §3 reporting set. Argument parsing, input checks before the run, wiring
 * (meters, engine, drive/bench.c), then analysis (analyse/metrics.c) and the reports
 * (render/report_*.c) written to OUT/run.json, OUT/report.md, OUT/report.html. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "cli_util.h"
#include "commands.h"
#include "etok/bgload.h"
#include "etok/cpuload.h"
#include "etok/attribute.h"
#include "etok/parse.h"
#include "etok/bench.h"
#include "etok/budget.h"
#include "etok/endpoint.h"
#include "etok/engine.h"
#include "etok/evalset.h"
#include "etok/grid.h"
#include "etok/levers_hw.h"
#include "etok/meter.h"
#include "etok/metrics.h"
#include "etok/paths.h"
#include "etok/probe.h"
#include "etok/record.h"
#include "etok/report.h"
#include "etok/serve.h"
#include "etok/util.h"

#ifndef ETOK_VERSION
#define ETOK_VERSION "0.1.0"
#endif


static void usage(FILE *f) {
    fprintf(f,
            "usage: etok bench [-m MODEL.gguf] [--evals FILE] [--requests N | --duration S]\n"
            "                  [--concurrency C | --rate R] [--max-tokens N] [--threads T]\n"
            "                  [--quality-target Q] [--ttft-slo S] [--tpot-slo S] [--pue X] [--idle S]\n"
            "                  [--meter NAME ...] [--price-per-kwh X] [--grid-intensity G | --region CODE] [--seed S] [--profile FILE] [-o DIR]\n"
            "                  [--endpoint URL [--endpoint-model NAME] [--api-key KEY] [--completions] [--timeout S]]\n"
            "                  [--energy-from URL] [--weights FORMAT] [--kv-type TYPE] [--attn-window N [--attn-sinks S]]\n"
            "                  [--budget fixed:N|by-field:FIELD|adaptive]\n"
            "\n"
            "Energy-to-token evaluation of the built-in engine: run an eval set through the model's chat\n"
            "template (greedy), measure energy with an idle baseline, and report the docs/METRICS.md reporting\n"
            "set (J/output-token, J/token, prefill/decode split, J/correct-answer, quality-conditioned\n"
            "J/token, binding constraint with MFU/MBU, PUE-adjusted power, utilization, accuracy,\n"
            "TTFT/TPOT/ITL/E2E percentiles, SLO attainment, goodput, energy cost, CO2e).\n"
            "\n"
            "  -m, --model FILE       GGUF model (default: $ETOK_MODEL, else " ETOK_DEFAULT_MODEL_NAME "\n"
            "                         in ~/.cache/etok/models or ./models; docs/INSTALL.md)\n"
            "  --evals FILE           eval set, JSONL (default DATA/evals/default.jsonl, DATA the data\n"
            "                         directory: $ETOK_DATA_DIR, else ../share/etok beside etok)\n"
            "  --requests N           measured requests (default: one per eval item)\n"
            "  --duration S           instead: issue requests for S seconds\n"
            "  --concurrency C        closed loop, C requests in flight (continuous batching; default 4)\n"
            "  --rate R               instead: open loop, Poisson arrivals at R requests/s (seeded)\n"
            "  --max-tokens N         new tokens per request (default 32)\n"
            "  --threads T            engine threads (default: every online core)\n"
            "  --warmup N             warm-up requests before the window, not measured (default 2); they\n"
            "                         send etok's own warm-up prompts, never eval items\n"
            "  --quality-target Q     q*: minimum accuracy 0..1 gating quality-conditioned figures (default 0.5)\n"
            "  --ttft-slo S           s*: TTFT limit in seconds (default 2)\n"
            "  --tpot-slo S           s*: TPOT limit in seconds (default 0.25)\n"
            "  --pue X                power usage effectiveness >= 1 (default 1, 'assumed')\n"
            "  --idle S               idle baseline seconds before the run (default 5; 0 skips)\n"
            "  --meter NAME           meter to use (repeatable or comma-separated; default: every available\n"
            "                         counter/power meter)\n"
            "  --cpu-tdp IDLE:MAX     estimate meter: per-package idle and max watts\n"
            "  --price-per-kwh X      electricity price for energy_cost_per_mtok\n"
            "  --grid-intensity G     grid carbon intensity in gCO2e/kWh for co2e_g_per_mtok / per request\n"
            "  --region CODE          instead: the dated, sourced annual average of data/grid/CODE.json\n"
            "                         (location-based; an unknown CODE lists the known ones)\n"
            "  --deployment-utilization U  U_dep in (0,1] (default: derived from the trace)\n"
            "  --seed S               seed for Poisson arrivals, item order and bootstrap CIs (default 1)\n"
            "  --profile FILE         hardware profile (default: the etok probe cache; measured if absent)\n"
            "  --system TEXT          a system message for the chat template\n"
            "  --endpoint URL         drive an OpenAI-compatible server instead of the built-in engine\n"
            "                         (streaming; meters measure this machine)\n"
            "  --endpoint-model NAME  the \"model\" field sent to the server\n"
            "  --api-key KEY          bearer key (default $OPENAI_API_KEY)\n"
            "  --completions          use /v1/completions instead of /v1/chat/completions\n"
            "  --timeout S            per-request timeout for --endpoint (default 300)\n"
            "  --energy-from URL      energy from another node's `etok exporter` (its /metrics), read at\n"
            "                         every window edge and recorded as meter \"remote\" with the exporter's\n"
            "                         source and boundary; this machine's meters are kept but not counted\n"
            "  --server-pid PID       with --endpoint: the server's process on this machine, whose CPU time\n"
            "                         is the own work of the background-load figures (else none is known)\n"
            "  --boundary process     also report energy attributed to the own work by its CPU-time share\n"
            "                         (an attribution model, beside the device figure; docs/RECORD.md)\n"
            ETOK_CLI_LEVERS_HELP
            ETOK_CLI_HW_LEVERS_HELP
            ETOK_CLI_BUDGET_HELP
            "  -o, --output DIR       output directory (default out/)\n"
            "  -q, --quiet            no table on stdout\n"
            "  -h, --help             this help\n"
            "\n"
            "Writes DIR/run.json (record + metrics), DIR/report.md, DIR/report.html and prints the table.\n"
            "Ctrl-C stops the run and still writes a valid record and report, marked partial.\n"
            "Failed requests are counted in the table and kept in run.json with their error; the\n"
            "latency figures say how many requests they cover.\n"
            "exit codes: 0 ok (failed requests, if any, are reported on stderr), 1 failure, 2 usage,\n"
            "            3 bad input (model, eval set), 4 meter permission, 5 output not writable,\n"
            "            6 --endpoint: the server became unreachable or every request failed (outputs\n"
            "            written; run.json has partial and stop_reason), 130 interrupted (outputs written)\n");
}

static int parse_num(const char *opt, const char *s, double lo, double hi, int lo_open, double *out) {
    etok_err e = {0};
    if (etok_parse_double(opt, s, (etok_range){lo, hi, (unsigned char)lo_open, 0, 0}, out, &e)) {
        fprintf(stderr, "etok bench: %s\n", e.msg);
        return -1;
    }
    return 0;
}

static int write_out(const char *dir, const char *name, const char *text, etok_err *err) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (!text) return etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory rendering", path);
    if (etok_write_file_atomic(path, text, strlen(text), err)) {
        if (!err->exit_code) err->exit_code = ETOK_EXIT_OUTPUT;
        return -1;
    }
    return 0;
}

/* The exit code of a finished run and the line for stderr (msg, "" = none), decided before the
 * outputs are written so that the record carries the outcome: interrupted (130); an endpoint
 * that became unreachable, or a run where every request failed (6; stop_reason says which);
 * some failed requests (0, counted on stderr and in the table). */
static int bench_outcome(etok_record *rec, char *msg, size_t cap) {
    size_t n = 0, failed = 0;
    const char *first = NULL;
    msg[0] = '\0';
    for (size_t i = 0; i < rec->n_requests; i++) {
        const etok_request *q = &rec->requests[i];
        if (q->t_send_s >= 0 && (q->t_send_s < rec->window_start_s - 1e-9 || q->t_send_s > rec->window_end_s + 1e-9))
            continue; /* not in the window */
        n++;
        if (!q->ok) {
            failed++;
            if (!first && q->error[0]) first = q->error;
        }
    }
    if (!strcmp(rec->stop_reason, "interrupted") || (rec->partial && !rec->stop_reason[0])) {
        snprintf(msg, cap, "interrupted: partial record and report written (%zu requests, %zu failed)", n, failed);
        return ETOK_EXIT_INTERRUPTED;
    }
    if (!strcmp(rec->stop_reason, "endpoint_unreachable")) {
        snprintf(msg, cap,
                 "the endpoint became unreachable: %zu of %zu requests failed (first error: %.150s); partial record "
                 "and report written",
                 failed, n, first ? first : "?");
        return ETOK_EXIT_ENDPOINT;
    }
    if (n > 0 && failed == n) {
        /* not partial (every request was sent), but nothing was served to measure */
        snprintf(rec->stop_reason, sizeof rec->stop_reason, "all_requests_failed");
        snprintf(msg, cap, "every request failed (%zu of %zu; first error: %.150s)", failed, n, first ? first : "?");
        return ETOK_EXIT_ENDPOINT;
    }
    if (failed > 0)
        snprintf(msg, cap, "%zu of %zu requests failed (first error: %.150s); the figures cover the %zu that completed",
                 failed, n, first ? first : "?", n - failed);
    return ETOK_EXIT_OK;
}

int cmd_bench(int argc, char **argv) {
    enum {
        O_EVALS = 256, O_REQ, O_DUR, O_CONC, O_RATE, O_MAXTOK, O_THREADS, O_WARM, O_Q, O_TTFT, O_TPOT, O_PUE, O_IDLE,
        O_METER, O_TDP, O_PRICE, O_UDEP, O_SEED, O_PROFILE, O_SYSTEM, O_ENDPOINT, O_EPMODEL, O_APIKEY, O_COMPL,
        O_TIMEOUT, O_EFROM, O_SERVER_PID, O_BOUNDARY, O_WEIGHTS, O_KVTYPE, O_AWIN, O_ASINKS, O_GRID, O_REGION, O_CPUFREQ, O_GPUPL,
        O_BUDGET
    };
    static const struct option lopts[] = {
        {"model", required_argument, NULL, 'm'},      {"evals", required_argument, NULL, O_EVALS},
        {"requests", required_argument, NULL, O_REQ}, {"duration", required_argument, NULL, O_DUR},
        {"concurrency", required_argument, NULL, O_CONC}, {"rate", required_argument, NULL, O_RATE},
        {"max-tokens", required_argument, NULL, O_MAXTOK}, {"threads", required_argument, NULL, O_THREADS},
        {"warmup", required_argument, NULL, O_WARM}, {"quality-target", required_argument, NULL, O_Q},
        {"ttft-slo", required_argument, NULL, O_TTFT}, {"tpot-slo", required_argument, NULL, O_TPOT},
        {"pue", required_argument, NULL, O_PUE},      {"idle", required_argument, NULL, O_IDLE},
        {"meter", required_argument, NULL, O_METER}, {"cpu-tdp", required_argument, NULL, O_TDP},
        {"price-per-kwh", required_argument, NULL, O_PRICE},
        {"grid-intensity", required_argument, NULL, O_GRID}, {"region", required_argument, NULL, O_REGION},
        {"deployment-utilization", required_argument, NULL, O_UDEP},
        {"seed", required_argument, NULL, O_SEED},    {"profile", required_argument, NULL, O_PROFILE},
        {"system", required_argument, NULL, O_SYSTEM}, {"endpoint", required_argument, NULL, O_ENDPOINT},
        {"endpoint-model", required_argument, NULL, O_EPMODEL}, {"api-key", required_argument, NULL, O_APIKEY},
        {"completions", no_argument, NULL, O_COMPL}, {"timeout", required_argument, NULL, O_TIMEOUT},
        {"energy-from", required_argument, NULL, O_EFROM},
        {"server-pid", required_argument, NULL, O_SERVER_PID}, {"boundary", required_argument, NULL, O_BOUNDARY},
        {"weights", required_argument, NULL, O_WEIGHTS}, {"kv-type", required_argument, NULL, O_KVTYPE},
        {"attn-window", required_argument, NULL, O_AWIN}, {"attn-sinks", required_argument, NULL, O_ASINKS},
        {"cpu-max-freq", required_argument, NULL, O_CPUFREQ}, {"gpu-power-limit", required_argument, NULL, O_GPUPL},
        {"budget", required_argument, NULL, O_BUDGET},
        {"output", required_argument, NULL, 'o'},     {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},             {NULL, 0, NULL, 0},
    };
    char mbuf[4096], ebuf[4096];
    const char *model_path = NULL, *evals_path = NULL, *out_dir = "out", *profile_path = NULL, *system = NULL;
    etok_cli_meters meters = {.n_names = 0};
    int quiet = 0;
    double requests = 0, duration = 0, conc = 0, rate = 0, max_tokens = 32, threads = 0, warm = 2;
    double q_star = 0.5, ttft_slo = 2.0, tpot_slo = 0.25, pue = 1, idle = 5, price = 0, udep = 0, seed = 1;
    double cpu_idle_w = 0, cpu_max_w = 0, timeout = 300;
    etok_bench_endpoint ep = {0};
    const char *energy_from = NULL;
    double server_pid = 0;
    int process_boundary = 0;
    etok_cli_levers levers = {0};
    etok_hw_levers_opts hwo = {0};
    const char *grid_text = NULL, *grid_region = NULL;
    etok_grid grid = {0};
    etok_budget_policy budget, *budget_p = NULL; /* --budget (etok/budget.h) */
    int *budgets = NULL, budget_fallbacks = 0;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "m:o:qh", lopts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': model_path = optarg; break;
        case O_EVALS: evals_path = optarg; break;
        case O_REQ: bad = parse_num("--requests", optarg, 1, 1e6, 0, &requests); break;
        case O_DUR: bad = parse_num("--duration", optarg, 0, 86400, 1, &duration); break;
        case O_CONC: bad = parse_num("--concurrency", optarg, 1, 256, 0, &conc); break;
        case O_RATE: bad = parse_num("--rate", optarg, 0, 1e4, 1, &rate); break;
        case O_MAXTOK: bad = parse_num("--max-tokens", optarg, 1, 8192, 0, &max_tokens); break;
        case O_THREADS: bad = parse_num("--threads", optarg, 1, 1024, 0, &threads); break;
        case O_WARM: bad = parse_num("--warmup", optarg, 0, 1000, 0, &warm); break;
        case O_Q: bad = parse_num("--quality-target", optarg, 0, 1, 0, &q_star); break;
        case O_TTFT: bad = parse_num("--ttft-slo", optarg, 0, 86400, 1, &ttft_slo); break;
        case O_TPOT: bad = parse_num("--tpot-slo", optarg, 0, 86400, 1, &tpot_slo); break;
        case O_PUE: bad = parse_num("--pue", optarg, 1, 10, 0, &pue); break;
        case O_IDLE: bad = parse_num("--idle", optarg, 0, 3600, 0, &idle); break;
        case O_PRICE: bad = parse_num("--price-per-kwh", optarg, 0, 1e6, 0, &price); break;
        case O_GRID: grid_text = optarg; break;
        case O_REGION: grid_region = optarg; break;
        case O_UDEP: bad = parse_num("--deployment-utilization", optarg, 0, 1, 1, &udep); break;
        case O_SEED: bad = parse_num("--seed", optarg, 0, 9007199254740992.0, 0, &seed); break;
        case O_PROFILE: profile_path = optarg; break;
        case O_SYSTEM: system = optarg; break;
        case O_METER: bad = etok_cli_meters_add("bench", &meters, optarg); break;
        case O_TDP: bad = etok_cli_cpu_tdp("bench", optarg, &cpu_idle_w, &cpu_max_w); break;
        case O_ENDPOINT: ep.url = optarg; break;
        case O_EPMODEL: ep.model = optarg; break;
        case O_APIKEY: ep.api_key = optarg; break;
        case O_COMPL: ep.completions_api = 1; break;
        case O_TIMEOUT: bad = parse_num("--timeout", optarg, 0, 86400, 1, &timeout); break;
        case O_EFROM: energy_from = optarg; break;
        case O_SERVER_PID: bad = parse_num("--server-pid", optarg, 1, 4194304, 0, &server_pid); break;
        case O_BOUNDARY:
            if (strcmp(optarg, "process") && strcmp(optarg, "device")) {
                fprintf(stderr, "etok bench: --boundary: expected \"process\" or \"device\", got '%s'\n", optarg);
                return ETOK_EXIT_USAGE;
            }
            process_boundary = !strcmp(optarg, "process");
            break;
        case O_WEIGHTS: bad = etok_cli_lever_opt("bench", "weights", optarg, &levers) != 0; break;
        case O_KVTYPE: bad = etok_cli_lever_opt("bench", "kv-type", optarg, &levers) != 0; break;
        case O_AWIN: bad = etok_cli_lever_opt("bench", "attn-window", optarg, &levers) != 0; break;
        case O_ASINKS: bad = etok_cli_lever_opt("bench", "attn-sinks", optarg, &levers) != 0; break;
        case O_CPUFREQ: bad = etok_cli_hw_lever_opt("bench", "cpu-max-freq", optarg, &hwo); break;
        case O_GPUPL: bad = etok_cli_hw_lever_opt("bench", "gpu-power-limit", optarg, &hwo); break;
        case O_BUDGET: bad = etok_cli_budget_opt("bench", optarg, &budget) != 0, budget_p = &budget; break;
        case 'o': out_dir = optarg; break;
        case 'q': quiet = 1; break;
        case 'h': usage(stdout); return ETOK_EXIT_OK;
        default:
            fprintf(stderr, "etok bench: unknown or incomplete option '%s' (etok bench --help)\n", argv[optind - 1]);
            return ETOK_EXIT_USAGE;
        }
        if (bad) return ETOK_EXIT_USAGE;
    }
    if (optind < argc) {
        fprintf(stderr, "etok bench: unexpected argument '%s' (etok bench --help)\n", argv[optind]);
        return ETOK_EXIT_USAGE;
    }
    if (etok_cli_levers_check("bench", &levers)) return ETOK_EXIT_USAGE;
    {
        etok_err gerr = {0};
        if (etok_grid_resolve(grid_text, grid_region, &grid, &gerr)) {
            fprintf(stderr, "etok bench: %s\n", gerr.msg);
            return gerr.exit_code ? gerr.exit_code : ETOK_EXIT_USAGE;
        }
    }
    if (etok_cli_budget_check("bench", budget_p, !!ep.url, &max_tokens)) return ETOK_EXIT_USAGE;
    if (ep.url && etok_cli_levers_any(&levers)) {
        fprintf(stderr, "etok bench: --weights, --kv-type and --attn-window/--attn-sinks apply to the built-in engine, "
                        "not to --endpoint\n");
        return ETOK_EXIT_USAGE;
    }
    if (requests > 0 && duration > 0) {
        fprintf(stderr, "etok bench: give --requests or --duration, not both\n");
        return ETOK_EXIT_USAGE;
    }
    if (conc > 0 && rate > 0) {
        fprintf(stderr, "etok bench: give --concurrency (closed loop) or --rate (open loop), not both\n");
        return ETOK_EXIT_USAGE;
    }
    if (requests != floor(requests) || conc != floor(conc) || max_tokens != floor(max_tokens) ||
        threads != floor(threads) || warm != floor(warm)) {
        fprintf(stderr, "etok bench: --requests, --concurrency, --max-tokens, --threads and --warmup take integers\n");
        return ETOK_EXIT_USAGE;
    }
    /* URLs are checked before anything runs or is written (libcurl's URL parser) */
    {
        etok_err uerr = {0};
        if (energy_from && etok_endpoint_check_url("--energy-from", energy_from, &uerr)) {
            fprintf(stderr, "etok bench: --energy-from '%s': expected the http:// URL of an etok exporter's /metrics\n",
                    energy_from);
            return ETOK_EXIT_USAGE;
        }
        if (ep.url && etok_endpoint_check_url("--endpoint", ep.url, &uerr)) {
            fprintf(stderr, "etok bench: %s\n", uerr.msg);
            return ETOK_EXIT_USAGE;
        }
    }
    if (server_pid > 0 && !ep.url) {
        fprintf(stderr, "etok bench: --server-pid needs --endpoint (the built-in engine's own work is etok's)\n");
        return ETOK_EXIT_USAGE;
    }
    if (!evals_path) {
        snprintf(ebuf, sizeof ebuf, "%s/evals/default.jsonl", etok_data_dir());
        evals_path = ebuf;
    }
    if (conc == 0 && rate == 0) conc = 4;

    /* ---- every input checked before the run ---- */
    etok_err err = {0};
    if (etok_mkdirs(out_dir, &err) || etok_check_output_dir(out_dir, &err)) {
        fprintf(stderr, "etok bench: output directory '%s' is not writable: %s\n", out_dir, err.msg);
        return ETOK_EXIT_OUTPUT;
    }
    etok_evalset ev;
    if (etok_evalset_load(&ev, evals_path, &err)) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    if (etok_cli_budget_items("bench", budget_p, &ev, (int)max_tokens, !!ep.url, &budgets, &budget_fallbacks)) {
        etok_evalset_free(&ev);
        return ETOK_EXIT_INPUT;
    }
    ep.request_timeout_s = timeout;
    if (!ep.url && etok_model_resolve("bench", model_path, mbuf, sizeof mbuf, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        etok_evalset_free(&ev);
        return ETOK_EXIT_INPUT;
    }
    if (!ep.url) model_path = mbuf;
    int rc = ETOK_EXIT_FAIL;
    etok_model *model = NULL;
    etok_engine *engine = NULL;
    etok_meter_set *ms = NULL;
    etok_remote_energy *remote = NULL;
    etok_energy_source remote_src = {0};
    etok_record remote_rec;
    etok_record_init(&remote_rec);
    etok_step_shares shares = {0};
    int sig_fd = -1;
    etok_record rec;
    etok_record_init(&rec);
    etok_metrics met;
    memset(&met, 0, sizeof met);
    char *txt = NULL;
    etok_hw_levers *hw = NULL;

    /* SIGINT/SIGTERM arrive on a signalfd: blocked here, before any thread exists (engine
     * thread pool, meter sampler, libcurl), so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);

    if (!ep.url) model = etok_model_load(model_path, &err);
    if (!ep.url && !model) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
        goto done;
    }
    if (model && etok_model_set_weights(model, levers.weights, &err)) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        goto done;
    }
    int slots = rate > 0 ? 8 : (int)conc;
    etok_engine_opts eo = {.n_threads = (int)threads, .max_seqs = slots, .kv_bits = levers.kv_bits,
                           .attn_window = levers.attn_window, .attn_sinks = levers.attn_sinks};
    if (!ep.url) engine = etok_engine_new(model, &eo, &err);
    if (!ep.url && !engine) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        goto done;
    }

    /* hardware profile: ceilings for MFU/MBU and this run's TPF */
    etok_probe_profile prof;
    int measured = 0;
    if (!ep.url && !profile_path && !quiet) {
        char *def = etok_probe_default_path();
        if (def && access(def, R_OK) != 0) fprintf(stderr, "etok bench: no hardware profile yet; running etok probe (a few seconds)...\n");
        free(def);
    }
    if (ep.url) {
        /* an endpoint's FLOPs and bytes are unknown here: no MFU/MBU */
    } else if (etok_probe_get(profile_path, 0, NULL, &prof, &measured, &err) == 0) {
        rec.hw = prof.hw;
    } else {
        fprintf(stderr, "etok bench: hardware profile unavailable (%s); MFU/MBU and ceilings will be n/a\n", err.msg);
        memset(&err, 0, sizeof err);
    }

    /* machine levers: after the profile (a cached profile must not be measured capped), restored at done */
    if (!(hw = etok_hw_levers_apply(&hwo, &err))) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_USAGE;
        goto done;
    }
    etok_meter_config mc = {.names = etok_cli_meters_names(&meters), .n_names = meters.n_names, .cpu_idle_w = cpu_idle_w,
                            .cpu_max_w = cpu_max_w};
    ms = etok_meters_open(&mc, &err);
    if (!ms) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        goto done;
    }
    /* background load: own work = etok (built-in engine), the server (--server-pid), or none */
    if (ep.url)
        (void)etok_meters_set_cpu_scope(ms, server_pid > 0 ? ETOK_CPU_SCOPE_PID : ETOK_CPU_SCOPE_NONE, (long)server_pid);
    if (energy_from) {
        remote = etok_remote_energy_open(energy_from, 5.0, &remote_src, &err);
        if (!remote) {
            fprintf(stderr, "etok bench: %s\n", err.msg);
            rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
            goto done;
        }
    }
    snprintf(rec.kind, sizeof rec.kind, "bench");
    snprintf(rec.tool_version, sizeof rec.tool_version, "%s", ETOK_VERSION);
    {
        size_t k = 0;
        for (int i = 0; i < argc && k + 2 < sizeof rec.command; i++) {
            int w = snprintf(rec.command + k, sizeof rec.command - k, "%s%s", i ? " " : "etok ", argv[i]);
            if (w < 0) break;
            k += (size_t)w;
        }
        if (k >= sizeof rec.command) rec.command[sizeof rec.command - 1] = 0;
    }
    etok_cli_host_info(&rec);
    rec.pue = pue;
    snprintf(rec.pue_source, sizeof rec.pue_source, "assumed");
    rec.price_per_kwh = price;
    rec.grid = grid;
    rec.quality_target = q_star;
    rec.ttft_slo_s = ttft_slo;
    rec.tpot_slo_s = tpot_slo;
    rec.deployment_utilization = udep;
    rec.exit_status = -1;
    {
        const etok_model_info *mi = model ? etok_model_get_info(model) : NULL;
        json_t *cfg = json_pack("{s:s, s:s, s:s, s:f, s:s, s:i, s:i, s:f, s:i, s:f, s:i, s:i, s:i, s:f, s:f, s:s*}",
                                "model", ep.url ? (ep.model ? ep.model : "(server default)") : model_path,
                                "model_name", mi ? mi->name : "", "weight_types", mi ? mi->weight_types : "",
                                "weight_bytes", mi ? mi->weight_bytes : 0.0, "evals", evals_path,
                                "eval_items", (int)ev.n_items,
                                "requests", (int)requests, "duration_s", duration, "concurrency", (int)conc,
                                "rate_rps", rate, "max_tokens", (int)max_tokens, "threads", (int)threads,
                                "warmup_requests", (int)warm, "idle_s", idle, "seed", seed, "system", system);
        if (cfg) {
            json_t *ma = json_array();
            for (int i = 0; i < meters.n_names; i++) json_array_append_new(ma, json_string(meters.names[i]));
            json_object_set_new(cfg, "meters", ma);
            if (!ep.url) {
                json_object_set_new(cfg, "weights", json_string(levers.weights ? levers.weights : "keep"));
                json_object_set_new(cfg, "kv_type", json_string(etok_cli_kv_type_name(levers.kv_bits)));
                json_object_set_new(cfg, "attn_window", json_integer(levers.attn_window));
                json_object_set_new(cfg, "attn_sinks", json_integer(levers.attn_sinks));
            }
            json_object_set_new(cfg, "sampling", json_string("greedy"));
            char eh[32];
            etok_evalset_hash(&ev, eh, sizeof eh);
            json_object_set_new(cfg, "evals_hash", json_string(eh));
            if (ep.url) {
                json_object_set_new(cfg, "endpoint", json_string(ep.url));
                json_object_set_new(cfg, "api", json_string(ep.completions_api ? "completions" : "chat"));
            }
            if (energy_from) json_object_set_new(cfg, "energy_from", json_string(energy_from));
            etok_hw_levers_to_config(hw, cfg);
            (void)etok_budget_to_config(cfg, budget_p, &ev, budgets, (int)max_tokens, budget_fallbacks);
            rec.config_json = json_dumps(cfg, JSON_COMPACT);
            json_decref(cfg);
        }
    }
    rec.t0_wall_s = etok_wall_s();
    if (etok_meters_start(ms, &rec, &err)) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        goto done;
    }
    rec.t0_wall_s = etok_wall_s() - (etok_mono_s() - etok_meters_t0_mono_s(ms));

    etok_bench_opts bo = {
        .requests = requests > 0 ? (int)requests : (duration > 0 ? 0 : (int)ev.n_items),
        .duration_s = duration,
        .concurrency = (int)conc,
        .rate_rps = rate,
        .max_slots = slots,
        .max_tokens = (int)max_tokens,
        .item_max_tokens = budgets,
        .warmup_requests = (int)warm,
        .idle_s = idle,
        .seed = (uint64_t)seed,
        .system_prompt = system,
        .sig_fd = sig_fd,
        .progress = !quiet && etok_stderr_is_tty(),
        .energy_from = remote ? &remote_src : NULL,
        .remote_traces = &remote_rec,
        .shares = &shares,
    };
    int drive_rc = ep.url ? etok_bench_drive_endpoint(&ep, &ev, &bo, ms, &rec, &err)
                          : etok_bench_drive(model, engine, &ev, &bo, ms, &rec, &err);
    etok_err stop_err = {0};
    if (etok_meters_stop(ms, &stop_err)) fprintf(stderr, "etok bench: stopping the meters: %s\n", stop_err.msg);
    if (remote && etok_bench_merge_remote(&rec, &remote_rec, &stop_err) < 0)
        fprintf(stderr, "etok bench: --energy-from: %s\n", stop_err.msg);
    if (!ep.url) { /* each request's attributed energy: the step energy split by token share */
        etok_attribution att;
        if (etok_attribute_request_energy(&rec, shares.v, shares.n, &att, &stop_err))
            fprintf(stderr, "etok bench: %s\n", stop_err.msg);
    }
    etok_step_shares_free(&shares);
    if (drive_rc) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        rec.partial = 1; /* still write what was observed */
        snprintf(rec.stop_reason, sizeof rec.stop_reason, "error");
    }
    char outcome_msg[512] = "";
    int outcome = drive_rc ? 0 : bench_outcome(&rec, outcome_msg, sizeof outcome_msg);

    etok_bgload_fill_record(&rec); /* per-phase background load, in the record */
    etok_metrics_opts mo = {.seed = (uint64_t)seed, .process_boundary = process_boundary};
    if (etok_metrics_compute(&rec, &mo, &met, &err)) {
        fprintf(stderr, "etok bench: analysis: %s\n", err.msg);
        char *j = etok_record_to_json_text(&rec);
        write_out(out_dir, "run.json", j, &err);
        free(j);
        goto done;
    }
    txt = etok_report_json(&rec, &met);
    if (write_out(out_dir, "run.json", txt, &err)) goto out_err;
    free(txt);
    txt = etok_report_md(&rec, &met, 0);
    if (write_out(out_dir, "report.md", txt, &err)) goto out_err;
    free(txt);
    txt = etok_report_html(&rec, &met);
    if (write_out(out_dir, "report.html", txt, &err)) goto out_err;
    free(txt);
    txt = NULL;
    if (!quiet) {
        txt = etok_report_md(&rec, &met, 1);
        if (txt) fputs(txt, stdout);
        printf("\nwrote %s/run.json, %s/report.md, %s/report.html\n", out_dir, out_dir, out_dir);
    }
    rc = drive_rc ? (err.exit_code ? err.exit_code : ETOK_EXIT_FAIL) : outcome;
    if (outcome_msg[0]) fprintf(stderr, "etok bench: %s\n", outcome_msg);
    goto done;
out_err:
    fprintf(stderr, "etok bench: %s\n", err.msg);
    rc = err.exit_code ? err.exit_code : ETOK_EXIT_OUTPUT;
done:
    free(txt);
    etok_metrics_free(&met);
    if (ms) etok_meters_close(ms);
    if (remote) etok_remote_energy_close(remote);
    etok_record_free(&remote_rec);
    etok_step_shares_free(&shares);
    if (engine) etok_engine_free(engine);
    if (model) etok_model_free(model);
    if (etok_hw_levers_restore(hw) && rc == ETOK_EXIT_OK) rc = ETOK_EXIT_FAIL;
    if (sig_fd >= 0) close(sig_fd);
    etok_record_free(&rec);
    etok_evalset_free(&ev);
    free(budgets);
    return rc;
}
