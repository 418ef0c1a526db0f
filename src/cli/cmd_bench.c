/* cmd_bench.c — `etok bench`: energy-to-token evaluation of the built-in engine on an eval set,
 * with the METRICS.md §3 reporting set. Argument parsing, input checks before the run, wiring
 * (meters, engine, drive/bench.c), then analysis (analyse/metrics.c) and the reports
 * (render/report_*.c) written to OUT/run.json, OUT/report.md, OUT/report.html.
 * cmd_bench chains named stages: bench_parse (the option table etok_bench_long_options, one
 * case per option, into bench_args), bench_validate, bench_check_inputs, bench_setup,
 * bench_fill_record, bench_run, bench_write_outputs (with bench_exit_status), bench_release.
 * A new option: one entry in the table, one case in bench_parse (etok sweep derives its
 * pass-through options and grid keys from the table). */
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
#include "etok/dataset.h"
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
            "  --dataset-name NAME    evals (default: the eval set, scored), or a serving workload with\n"
            "                         vLLM's names and no reference answers (quality not measured, no q*):\n"
            "                         sharegpt, random, prefix_repetition (alias shared-prefix); docs/WORKLOADS.md\n"
            "  --dataset-path FILE    sharegpt: the ShareGPT JSON file; random/prefix_repetition: a text corpus\n"
            "                         whose words build the prompts (default: a built-in word list); evals: --evals\n"
            "  --sharegpt-output-len N  every output budget (default: the recorded answer's length)\n"
            "  --random-input-len N, --random-output-len N, --random-range-ratio R\n"
            "                         random: lengths uniform in [N*(1-R), N*(1+R)] (default 1024, 128, 0)\n"
            "  --prefix-repetition-prefix-len N, --prefix-repetition-suffix-len N,\n"
            "  --prefix-repetition-num-prefixes K, --prefix-repetition-output-len N\n"
            "                         prompts = one of K shared prefixes + a distinct suffix (256, 256, 10, 128)\n"
            "                         random and prefix_repetition ask for exact lengths (ignore_eos, min_tokens)\n"
            "                         and record whether they came back (config.dataset.length_honoured)\n"
            "  --requests N           measured requests (default: one per eval item; 100 random/prefix\n"
            "                         prompts); --num-prompts N is the same\n"
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
            "  --goodput ttft:MS [tpot:MS]  vLLM's form of --ttft-slo/--tpot-slo, in milliseconds\n"
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
            "  --no-idle-history      neither compare the idle baseline with this host's earlier quiet\n"
            "                         ones nor remember it (~/.local/state/etok; docs/RECORD.md)\n"
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

static int bench_count_tokens(const char *text, void *arg) {
    size_t cap = strlen(text) + 8;
    int32_t *t = malloc(cap * sizeof *t);
    if (!t) return 0;
    etok_err e = {0};
    int n = etok_tokenize(arg, text, 0, 0, t, (int)(cap < 1u << 30 ? cap : 1u << 30), &e);
    free(t);
    return n < 0 ? 0 : n;
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

/* ---- options: one table, one case per option ----
 * etok_bench_long_options is the one list of bench's options: getopt_long parses with it, and
 * `etok sweep` derives which options it passes through (and which may be grid keys) from it
 * (has_arg), so a new option here is known to sweep without another list to keep. */
enum {
    O_EVALS = 256, O_REQ, O_DUR, O_CONC, O_RATE, O_MAXTOK, O_THREADS, O_WARM, O_Q, O_TTFT, O_TPOT, O_PUE, O_IDLE,
    O_METER, O_TDP, O_PRICE, O_UDEP, O_SEED, O_PROFILE, O_SYSTEM, O_ENDPOINT, O_EPMODEL, O_APIKEY, O_COMPL,
    O_TIMEOUT, O_EFROM, O_SERVER_PID, O_BOUNDARY, O_WEIGHTS, O_KVTYPE, O_AWIN, O_ASINKS, O_GRID, O_REGION, O_CPUFREQ,
    O_GPUPL, O_DSET, O_GOODPUT, O_NOIDLEHIST, O_BUDGET
};

const struct option etok_bench_long_options[] = {
    {"model", required_argument, NULL, 'm'},
    {"evals", required_argument, NULL, O_EVALS},
    {"requests", required_argument, NULL, O_REQ},
    {"duration", required_argument, NULL, O_DUR},
    {"concurrency", required_argument, NULL, O_CONC},
    {"rate", required_argument, NULL, O_RATE},
    {"max-tokens", required_argument, NULL, O_MAXTOK},
    {"threads", required_argument, NULL, O_THREADS},
    {"warmup", required_argument, NULL, O_WARM},
    {"quality-target", required_argument, NULL, O_Q},
    {"ttft-slo", required_argument, NULL, O_TTFT},
    {"tpot-slo", required_argument, NULL, O_TPOT},
    {"pue", required_argument, NULL, O_PUE},
    {"idle", required_argument, NULL, O_IDLE},
    {"meter", required_argument, NULL, O_METER},
    {"cpu-tdp", required_argument, NULL, O_TDP},
    {"price-per-kwh", required_argument, NULL, O_PRICE},
    {"grid-intensity", required_argument, NULL, O_GRID},
    {"region", required_argument, NULL, O_REGION},
    {"deployment-utilization", required_argument, NULL, O_UDEP},
    {"seed", required_argument, NULL, O_SEED},
    {"profile", required_argument, NULL, O_PROFILE},
    {"system", required_argument, NULL, O_SYSTEM},
    {"endpoint", required_argument, NULL, O_ENDPOINT},
    {"endpoint-model", required_argument, NULL, O_EPMODEL},
    {"api-key", required_argument, NULL, O_APIKEY},
    {"completions", no_argument, NULL, O_COMPL},
    {"timeout", required_argument, NULL, O_TIMEOUT},
    {"energy-from", required_argument, NULL, O_EFROM},
    {"server-pid", required_argument, NULL, O_SERVER_PID},
    {"boundary", required_argument, NULL, O_BOUNDARY},
    {"no-idle-history", no_argument, NULL, O_NOIDLEHIST},
    {"weights", required_argument, NULL, O_WEIGHTS},
    {"kv-type", required_argument, NULL, O_KVTYPE},
    {"attn-window", required_argument, NULL, O_AWIN},
    {"attn-sinks", required_argument, NULL, O_ASINKS},
    {"cpu-max-freq", required_argument, NULL, O_CPUFREQ},
    {"gpu-power-limit", required_argument, NULL, O_GPUPL},
    {"budget", required_argument, NULL, O_BUDGET},
    /* serving datasets, vLLM's names (src/drive/dataset.c; docs/WORKLOADS.md) */
    {"dataset-name", required_argument, NULL, O_DSET},
    {"dataset-path", required_argument, NULL, O_DSET},
    {"sharegpt-output-len", required_argument, NULL, O_DSET},
    {"random-input-len", required_argument, NULL, O_DSET},
    {"random-output-len", required_argument, NULL, O_DSET},
    {"random-range-ratio", required_argument, NULL, O_DSET},
    {"prefix-repetition-prefix-len", required_argument, NULL, O_DSET},
    {"prefix-repetition-suffix-len", required_argument, NULL, O_DSET},
    {"prefix-repetition-num-prefixes", required_argument, NULL, O_DSET},
    {"prefix-repetition-output-len", required_argument, NULL, O_DSET},
    {"num-prompts", required_argument, NULL, O_REQ},
    {"goodput", required_argument, NULL, O_GOODPUT},
    {"output", required_argument, NULL, 'o'},
    {"quiet", no_argument, NULL, 'q'},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Every option's value after parsing (defaults as in the help). */
typedef struct {
    const char *model_path, *evals_path, *out_dir, *profile_path, *system;
    etok_cli_meters meters;
    int quiet;
    double requests, duration, conc, rate, max_tokens, threads, warm;
    double q_star, ttft_slo, tpot_slo, pue, idle, price, udep, seed;
    double cpu_idle_w, cpu_max_w, timeout;
    etok_bench_endpoint ep;
    const char *energy_from;
    double server_pid;
    int process_boundary;
    int no_idle_history; /* --no-idle-history */
    etok_budget_policy budget, *budget_p; /* --budget (etok/budget.h); budget_p NULL without it */
    etok_cli_levers levers;
    etok_hw_levers_opts hwo;
    const char *grid_text, *grid_region;
    etok_grid grid;
    etok_dataset_opts dso; /* --dataset-name and its options */
    int q_given;           /* --quality-target was given (refused with a serving dataset) */
    char mbuf[4096], ebuf[4096]; /* the resolved model path, the default eval set path */
} bench_args;

/* What a stage returns to go on; anything else is the exit code (the stage printed why). */
#define BENCH_GO (-1)

static void bench_args_init(bench_args *a) {
    memset(a, 0, sizeof *a);
    a->out_dir = "out";
    a->max_tokens = 32;
    a->warm = 2;
    a->q_star = 0.5;
    a->ttft_slo = 2.0;
    a->tpot_slo = 0.25;
    a->pue = 1;
    a->idle = 5;
    a->seed = 1;
    a->timeout = 300;
    etok_dataset_opts_init(&a->dso);
}

/* getopt_long over etok_bench_long_options, one case per option. */
static int bench_parse(int argc, char **argv, bench_args *a) {
    optind = 1;
    opterr = 0;
    int c, li = -1;
    while ((c = getopt_long(argc, argv, "m:o:qh", etok_bench_long_options, &li)) != -1) {
        int bad = 0;
        switch (c) {
        case 'm': a->model_path = optarg; break;
        case O_EVALS: a->evals_path = optarg; break;
        case O_REQ: bad = parse_num("--requests", optarg, 1, 1e6, 0, &a->requests); break;
        case O_DUR: bad = parse_num("--duration", optarg, 0, 86400, 1, &a->duration); break;
        case O_CONC: bad = parse_num("--concurrency", optarg, 1, 256, 0, &a->conc); break;
        case O_RATE: bad = parse_num("--rate", optarg, 0, 1e4, 1, &a->rate); break;
        case O_MAXTOK: bad = parse_num("--max-tokens", optarg, 1, 8192, 0, &a->max_tokens); break;
        case O_THREADS: bad = parse_num("--threads", optarg, 1, 1024, 0, &a->threads); break;
        case O_WARM: bad = parse_num("--warmup", optarg, 0, 1000, 0, &a->warm); break;
        case O_Q:
            bad = parse_num("--quality-target", optarg, 0, 1, 0, &a->q_star);
            a->q_given = 1;
            break;
        case O_DSET:
        case O_GOODPUT: {
            etok_err derr = {0};
            if (c == O_DSET) bad = etok_dataset_opt(&a->dso, etok_bench_long_options[li].name, optarg, &derr);
            else { /* vLLM form: --goodput ttft:MS tpot:MS (one or more KEY:MS words) */
                bad = etok_goodput_parse(optarg, &a->ttft_slo, &a->tpot_slo, &derr);
                while (!bad && optind < argc && argv[optind][0] != '-' && strchr(argv[optind], ':'))
                    bad = etok_goodput_parse(argv[optind++], &a->ttft_slo, &a->tpot_slo, &derr);
            }
            if (bad) fprintf(stderr, "etok bench: %s\n", derr.msg);
            break;
        }
        case O_TTFT: bad = parse_num("--ttft-slo", optarg, 0, 86400, 1, &a->ttft_slo); break;
        case O_TPOT: bad = parse_num("--tpot-slo", optarg, 0, 86400, 1, &a->tpot_slo); break;
        case O_PUE: bad = parse_num("--pue", optarg, 1, 10, 0, &a->pue); break;
        case O_IDLE: bad = parse_num("--idle", optarg, 0, 3600, 0, &a->idle); break;
        case O_PRICE: bad = parse_num("--price-per-kwh", optarg, 0, 1e6, 0, &a->price); break;
        case O_GRID: a->grid_text = optarg; break;
        case O_REGION: a->grid_region = optarg; break;
        case O_UDEP: bad = parse_num("--deployment-utilization", optarg, 0, 1, 1, &a->udep); break;
        case O_SEED: bad = parse_num("--seed", optarg, 0, 9007199254740992.0, 0, &a->seed); break;
        case O_PROFILE: a->profile_path = optarg; break;
        case O_SYSTEM: a->system = optarg; break;
        case O_METER: bad = etok_cli_meters_add("bench", &a->meters, optarg); break;
        case O_TDP: bad = etok_cli_cpu_tdp("bench", optarg, &a->cpu_idle_w, &a->cpu_max_w); break;
        case O_ENDPOINT: a->ep.url = optarg; break;
        case O_EPMODEL: a->ep.model = optarg; break;
        case O_APIKEY: a->ep.api_key = optarg; break;
        case O_COMPL: a->ep.completions_api = 1; break;
        case O_TIMEOUT: bad = parse_num("--timeout", optarg, 0, 86400, 1, &a->timeout); break;
        case O_EFROM: a->energy_from = optarg; break;
        case O_SERVER_PID: bad = parse_num("--server-pid", optarg, 1, 4194304, 0, &a->server_pid); break;
        case O_BOUNDARY:
            if (strcmp(optarg, "process") && strcmp(optarg, "device")) {
                fprintf(stderr, "etok bench: --boundary: expected \"process\" or \"device\", got '%s'\n", optarg);
                return ETOK_EXIT_USAGE;
            }
            a->process_boundary = !strcmp(optarg, "process");
            break;
        case O_NOIDLEHIST: a->no_idle_history = 1; break;
        case O_BUDGET:
            bad = etok_cli_budget_opt("bench", optarg, &a->budget) != 0;
            a->budget_p = &a->budget;
            break;
        case O_WEIGHTS: bad = etok_cli_lever_opt("bench", "weights", optarg, &a->levers) != 0; break;
        case O_KVTYPE: bad = etok_cli_lever_opt("bench", "kv-type", optarg, &a->levers) != 0; break;
        case O_AWIN: bad = etok_cli_lever_opt("bench", "attn-window", optarg, &a->levers) != 0; break;
        case O_ASINKS: bad = etok_cli_lever_opt("bench", "attn-sinks", optarg, &a->levers) != 0; break;
        case O_CPUFREQ: bad = etok_cli_hw_lever_opt("bench", "cpu-max-freq", optarg, &a->hwo); break;
        case O_GPUPL: bad = etok_cli_hw_lever_opt("bench", "gpu-power-limit", optarg, &a->hwo); break;
        case 'o': a->out_dir = optarg; break;
        case 'q': a->quiet = 1; break;
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
    return BENCH_GO;
}

/* Combinations of options, URLs, defaults that depend on other options: usage errors (2). */
static int bench_validate(bench_args *a) {
    if (etok_cli_levers_check("bench", &a->levers)) return ETOK_EXIT_USAGE;
    {
        etok_err derr = {0};
        if (etok_dataset_opts_check(&a->dso, &derr) ||
            (a->dso.kind != ETOK_DATASET_EVALS && a->q_given &&
             etok_errc(&derr, ETOK_EXIT_USAGE, "--quality-target: --dataset-name %s has no reference answers (quality "
                       "is not measured, so there is no q* gate)", etok_dataset_name(a->dso.kind)))) {
            fprintf(stderr, "etok bench: %s\n", derr.msg);
            return ETOK_EXIT_USAGE;
        }
        if (a->dso.kind == ETOK_DATASET_EVALS && a->dso.path) {
            if (a->evals_path) {
                fprintf(stderr, "etok bench: give --evals or --dataset-path, not both\n");
                return ETOK_EXIT_USAGE;
            }
            a->evals_path = a->dso.path;
        }
    }
    {
        etok_err gerr = {0};
        if (etok_grid_resolve(a->grid_text, a->grid_region, &a->grid, &gerr)) {
            fprintf(stderr, "etok bench: %s\n", gerr.msg);
            return gerr.exit_code ? gerr.exit_code : ETOK_EXIT_USAGE;
        }
    }
    if (etok_cli_budget_check("bench", a->budget_p, !!a->ep.url, &a->max_tokens)) return ETOK_EXIT_USAGE;
    if (a->budget_p && a->dso.kind != ETOK_DATASET_EVALS) {
        fprintf(stderr, "etok bench: --budget sets eval items' budgets; --dataset-name %s gives each prompt its own "
                        "output length\n", etok_dataset_name(a->dso.kind));
        return ETOK_EXIT_USAGE;
    }
    if (a->ep.url && etok_cli_levers_any(&a->levers)) {
        fprintf(stderr, "etok bench: --weights, --kv-type and --attn-window/--attn-sinks apply to the built-in engine, "
                        "not to --endpoint\n");
        return ETOK_EXIT_USAGE;
    }
    if (a->requests > 0 && a->duration > 0) {
        fprintf(stderr, "etok bench: give --requests or --duration, not both\n");
        return ETOK_EXIT_USAGE;
    }
    if (a->conc > 0 && a->rate > 0) {
        fprintf(stderr, "etok bench: give --concurrency (closed loop) or --rate (open loop), not both\n");
        return ETOK_EXIT_USAGE;
    }
    if (a->requests != floor(a->requests) || a->conc != floor(a->conc) || a->max_tokens != floor(a->max_tokens) ||
        a->threads != floor(a->threads) || a->warm != floor(a->warm)) {
        fprintf(stderr, "etok bench: --requests, --concurrency, --max-tokens, --threads and --warmup take integers\n");
        return ETOK_EXIT_USAGE;
    }
    /* URLs are checked before anything runs or is written (libcurl's URL parser) */
    {
        etok_err uerr = {0};
        if (a->energy_from && etok_endpoint_check_url("--energy-from", a->energy_from, &uerr)) {
            fprintf(stderr, "etok bench: --energy-from '%s': expected the http:// URL of an etok exporter's /metrics\n",
                    a->energy_from);
            return ETOK_EXIT_USAGE;
        }
        if (a->ep.url && etok_endpoint_check_url("--endpoint", a->ep.url, &uerr)) {
            fprintf(stderr, "etok bench: %s\n", uerr.msg);
            return ETOK_EXIT_USAGE;
        }
    }
    if (a->server_pid > 0 && !a->ep.url) {
        fprintf(stderr, "etok bench: --server-pid needs --endpoint (the built-in engine's own work is etok's)\n");
        return ETOK_EXIT_USAGE;
    }
    if (!a->evals_path) {
        snprintf(a->ebuf, sizeof a->ebuf, "%s/evals/default.jsonl", etok_data_dir());
        a->evals_path = a->ebuf;
    }
    if (a->conc == 0 && a->rate == 0) a->conc = 4;
    a->ep.request_timeout_s = a->timeout;
    return BENCH_GO;
}

/* Everything a run holds; bench_release frees what was acquired. */
typedef struct {
    etok_evalset ev;
    int have_ev;
    etok_model *model;
    etok_engine *engine;
    etok_meter_set *ms;
    etok_remote_energy *remote;
    etok_energy_source remote_src;
    etok_record remote_rec;
    etok_step_shares shares;
    int sig_fd;
    etok_record rec;
    etok_metrics met;
    etok_hw_levers *hw;
    int *budgets, budget_fallbacks; /* --budget: each eval item's max_tokens */
    etok_dataset_summary dsum; /* a serving dataset: what was built */
    etok_dataset_lengths dlen; /* and which requested lengths came back */
    /* the run's outcome */
    int drive_rc;
    etok_err drive_err;
    int outcome;
    char outcome_msg[512];
} bench_run_state;

static void bench_state_init(bench_run_state *s) {
    memset(s, 0, sizeof *s);
    etok_record_init(&s->remote_rec);
    etok_record_init(&s->rec);
    s->sig_fd = -1;
}

/* rc: the exit code so far; a machine lever that cannot be restored turns success into failure. */
static int bench_release(bench_run_state *s, int rc) {
    etok_metrics_free(&s->met);
    if (s->ms) etok_meters_close(s->ms);
    if (s->remote) etok_remote_energy_close(s->remote);
    etok_record_free(&s->remote_rec);
    etok_step_shares_free(&s->shares);
    if (s->engine) etok_engine_free(s->engine);
    if (s->model) etok_model_free(s->model);
    if (etok_hw_levers_restore(s->hw) && rc == ETOK_EXIT_OK) rc = ETOK_EXIT_FAIL;
    if (s->sig_fd >= 0) close(s->sig_fd);
    etok_record_free(&s->rec);
    if (s->have_ev) etok_evalset_free(&s->ev);
    free(s->budgets);
    return rc;
}

/* Every input checked before the run: the output directory, the eval set, the model path. */
static int bench_check_inputs(bench_args *a, bench_run_state *s) {
    etok_err err = {0};
    if (etok_mkdirs(a->out_dir, &err) || etok_check_output_dir(a->out_dir, &err)) {
        fprintf(stderr, "etok bench: output directory '%s' is not writable: %s\n", a->out_dir, err.msg);
        return ETOK_EXIT_OUTPUT;
    }
    s->have_ev = 1; /* zeroed: freeing it is safe whatever happens next */
    if (a->dso.kind == ETOK_DATASET_EVALS && etok_evalset_load(&s->ev, a->evals_path, &err)) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    if (etok_cli_budget_items("bench", a->budget_p, &s->ev, (int)a->max_tokens, !!a->ep.url, &s->budgets, &s->budget_fallbacks))
        return ETOK_EXIT_INPUT;
    if (!a->ep.url && etok_model_resolve("bench", a->model_path, a->mbuf, sizeof a->mbuf, &err) != 0) {
        fprintf(stderr, "%s\n", err.msg);
        return ETOK_EXIT_INPUT;
    }
    if (!a->ep.url) a->model_path = a->mbuf;
    return BENCH_GO;
}

/* Signals, model and engine, hardware profile, machine levers, meters, remote energy. */
static int bench_setup(bench_args *a, bench_run_state *s) {
    etok_err err = {0};
    /* SIGINT/SIGTERM arrive on a signalfd: blocked here, before any thread exists (engine
     * thread pool, meter sampler, libcurl), so every thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigprocmask(SIG_BLOCK, &sigs, NULL);
    s->sig_fd = signalfd(-1, &sigs, SFD_CLOEXEC);

    if (!a->ep.url) s->model = etok_model_load(a->model_path, &err);
    if (!a->ep.url && !s->model) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
    }
    /* the engine's prompts all go through the chat template (bench.c) */
    if (s->model) etok_cli_chat_note("bench", a->model_path, s->model);
    if (a->dso.kind != ETOK_DATASET_EVALS) { /* lengths in the model's tokens when there is a model */
        etok_dataset_opts *dso = &a->dso;
        dso->num_prompts = a->requests > 0 ? (int)a->requests : 0;
        dso->seed = (uint64_t)a->seed;
        if (s->model) {
            dso->count_tokens = bench_count_tokens;
            dso->count_arg = s->model;
            const etok_model_info *dmi = etok_model_get_info(s->model);
            int dctx = dmi->ctx_max > 0 && dmi->ctx_max < 2048 ? dmi->ctx_max : 2048; /* as drive/bench.c */
            dso->max_total_len = dctx - 64; /* the chat template's tokens */
        }
        if (etok_dataset_build(&s->ev, dso, &s->dsum, &err)) {
            fprintf(stderr, "etok bench: %s\n", err.msg);
            return err.exit_code ? err.exit_code : ETOK_EXIT_INPUT;
        }
        a->evals_path = s->ev.path;
    }
    if (s->model && etok_model_set_weights(s->model, a->levers.weights, &err)) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    etok_engine_opts eo = {.n_threads = (int)a->threads, .max_seqs = a->rate > 0 ? 8 : (int)a->conc,
                           .kv_bits = a->levers.kv_bits, .attn_window = a->levers.attn_window,
                           .attn_sinks = a->levers.attn_sinks};
    if (!a->ep.url) s->engine = etok_engine_new(s->model, &eo, &err);
    if (!a->ep.url && !s->engine) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }

    /* hardware profile: ceilings for MFU/MBU and this run's TPF */
    etok_probe_profile prof;
    int measured = 0;
    if (!a->ep.url && !a->profile_path && !a->quiet) {
        char *def = etok_probe_default_path();
        if (def && access(def, R_OK) != 0) fprintf(stderr, "etok bench: no hardware profile yet; running etok probe (a few seconds)...\n");
        free(def);
    }
    if (a->ep.url) {
        /* an endpoint's FLOPs and bytes are unknown here: no MFU/MBU */
    } else if (etok_probe_get(a->profile_path, 0, NULL, &prof, &measured, &err) == 0) {
        s->rec.hw = prof.hw;
    } else {
        fprintf(stderr, "etok bench: hardware profile unavailable (%s); MFU/MBU and ceilings will be n/a\n", err.msg);
        memset(&err, 0, sizeof err);
    }

    /* machine levers: after the profile (a cached profile must not be measured capped), restored by bench_release */
    if (!(s->hw = etok_hw_levers_apply(&a->hwo, &err))) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_USAGE;
    }
    /* the record's power limit is the one applied, not NVML's enforced limit read by the meter
     * (it follows a set ~0.1 s later on an H200); a CPU profile's RAPL limit stays */
    if (s->rec.hw.power_limit_w <= 0) s->rec.hw.power_limit_w = etok_hw_levers_gpu_limit_w(s->hw);
    etok_meter_config mc = {.names = etok_cli_meters_names(&a->meters), .n_names = a->meters.n_names,
                            .cpu_idle_w = a->cpu_idle_w, .cpu_max_w = a->cpu_max_w};
    s->ms = etok_meters_open(&mc, &err);
    if (!s->ms) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    /* background load: own work = etok (built-in engine), the server (--server-pid), or none */
    if (a->ep.url)
        (void)etok_meters_set_cpu_scope(s->ms, a->server_pid > 0 ? ETOK_CPU_SCOPE_PID : ETOK_CPU_SCOPE_NONE,
                                        (long)a->server_pid);
    if (a->energy_from) {
        s->remote = etok_remote_energy_open(a->energy_from, 5.0, &s->remote_src, &err);
        if (!s->remote) {
            fprintf(stderr, "etok bench: %s\n", err.msg);
            return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
        }
    }
    return BENCH_GO;
}

/* The record's header: kind, command line, host, q* and s*, PUE, price, grid, the config object. */
static void bench_fill_record(const bench_args *a, bench_run_state *s, int argc, char **argv) {
    etok_record *rec = &s->rec;
    snprintf(rec->kind, sizeof rec->kind, "bench");
    snprintf(rec->tool_version, sizeof rec->tool_version, "%s", ETOK_VERSION);
    {
        size_t k = 0;
        for (int i = 0; i < argc && k + 2 < sizeof rec->command; i++) {
            int w = snprintf(rec->command + k, sizeof rec->command - k, "%s%s", i ? " " : "etok ", argv[i]);
            if (w < 0) break;
            k += (size_t)w;
        }
        if (k >= sizeof rec->command) rec->command[sizeof rec->command - 1] = 0;
    }
    etok_cli_host_info(rec);
    rec->pue = a->pue;
    snprintf(rec->pue_source, sizeof rec->pue_source, "assumed");
    rec->price_per_kwh = a->price;
    rec->grid = a->grid;
    rec->quality_target = a->dso.kind == ETOK_DATASET_EVALS ? a->q_star : -1;
    rec->ttft_slo_s = a->ttft_slo;
    rec->tpot_slo_s = a->tpot_slo;
    rec->deployment_utilization = a->udep;
    rec->exit_status = -1;
    const etok_bench_endpoint *ep = &a->ep;
    const etok_model_info *mi = s->model ? etok_model_get_info(s->model) : NULL;
    json_t *cfg = json_pack("{s:s, s:s, s:s, s:f, s:s, s:i, s:i, s:f, s:i, s:f, s:i, s:i, s:i, s:f, s:f, s:s*}",
                            "model", ep->url ? (ep->model ? ep->model : "(server default)") : a->model_path,
                            "model_name", mi ? mi->name : "", "weight_types", mi ? mi->weight_types : "",
                            "weight_bytes", mi ? mi->weight_bytes : 0.0, "evals", a->evals_path,
                            "eval_items", (int)s->ev.n_items,
                            "requests", (int)a->requests, "duration_s", a->duration, "concurrency", (int)a->conc,
                            "rate_rps", a->rate, "max_tokens", (int)a->max_tokens, "threads", (int)a->threads,
                            "warmup_requests", (int)a->warm, "idle_s", a->idle, "seed", a->seed, "system", a->system);
    if (!cfg) return;
    json_t *ma = json_array();
    for (int i = 0; i < a->meters.n_names; i++) json_array_append_new(ma, json_string(a->meters.names[i]));
    json_object_set_new(cfg, "meters", ma);
    if (!ep->url) {
        json_object_set_new(cfg, "weights", json_string(a->levers.weights ? a->levers.weights : "keep"));
        json_object_set_new(cfg, "kv_type", json_string(etok_cli_kv_type_name(a->levers.kv_bits)));
        json_object_set_new(cfg, "attn_window", json_integer(a->levers.attn_window));
        json_object_set_new(cfg, "attn_sinks", json_integer(a->levers.attn_sinks));
        etok_cli_engine_config(cfg, mi);
    }
    json_object_set_new(cfg, "sampling", json_string("greedy"));
    char eh[32];
    etok_evalset_hash(&s->ev, eh, sizeof eh);
    json_object_set_new(cfg, "evals_hash", json_string(eh));
    if (ep->url) {
        json_object_set_new(cfg, "endpoint", json_string(ep->url));
        json_object_set_new(cfg, "api", json_string(ep->completions_api ? "completions" : "chat"));
    }
    if (a->energy_from) json_object_set_new(cfg, "energy_from", json_string(a->energy_from));
    etok_hw_levers_to_config(s->hw, cfg);
    (void)etok_budget_to_config(cfg, a->budget_p, &s->ev, s->budgets, (int)a->max_tokens, s->budget_fallbacks);
    rec->config_json = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
}

/* Meters on, the workload (engine or endpoint), meters off, remote traces merged, each
 * request's attributed energy; the outcome decided (bench_outcome). */
static int bench_run(const bench_args *a, bench_run_state *s) {
    etok_err err = {0};
    etok_record *rec = &s->rec;
    rec->t0_wall_s = etok_wall_s();
    if (etok_meters_start(s->ms, rec, &err)) {
        fprintf(stderr, "etok bench: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
    }
    rec->t0_wall_s = etok_wall_s() - (etok_mono_s() - etok_meters_t0_mono_s(s->ms));

    etok_bench_opts bo = {
        .requests = a->requests > 0 ? (int)a->requests : (a->duration > 0 ? 0 : (int)s->ev.n_items),
        .duration_s = a->duration,
        .concurrency = (int)a->conc,
        .rate_rps = a->rate,
        .max_slots = a->rate > 0 ? 8 : (int)a->conc,
        .max_tokens = (int)a->max_tokens,
        .item_max_tokens = s->budgets,
        .warmup_requests = (int)a->warm,
        .idle_s = a->idle,
        .seed = (uint64_t)a->seed,
        .system_prompt = a->system,
        .sig_fd = s->sig_fd,
        .progress = !a->quiet && etok_stderr_is_tty(),
        .energy_from = s->remote ? &s->remote_src : NULL,
        .remote_traces = &s->remote_rec,
        .shares = &s->shares,
        .lengths = &s->dlen,
    };
    int stop_sent = 0, stop_ran_past = 0;
    bo.stop_sent = &stop_sent;
    bo.stop_ran_past = &stop_ran_past;
    s->drive_rc = a->ep.url ? etok_bench_drive_endpoint(&a->ep, &s->ev, &bo, s->ms, rec, &s->drive_err)
                            : etok_bench_drive(s->model, s->engine, &s->ev, &bo, s->ms, rec, &s->drive_err);
    if (stop_ran_past)
        fprintf(stderr,
                "etok bench: note: %d of %d answers to items with stop strings still held one (the server ignored the "
                "request's \"stop\"): cut there for scoring; their tokens_out is the server's count, past the stop\n",
                stop_ran_past, stop_sent);
    if (a->dso.kind != ETOK_DATASET_EVALS && etok_dataset_to_config(&rec->config_json, &s->dsum, a->dso.path, &s->dlen))
        fprintf(stderr, "etok bench: out of memory recording the dataset\n");
    etok_err stop_err = {0};
    if (etok_meters_stop(s->ms, &stop_err)) fprintf(stderr, "etok bench: stopping the meters: %s\n", stop_err.msg);
    if (s->remote && etok_bench_merge_remote(rec, &s->remote_rec, &stop_err) < 0)
        fprintf(stderr, "etok bench: --energy-from: %s\n", stop_err.msg);
    if (!a->ep.url) { /* each request's attributed energy: the step energy split by token share */
        etok_attribution att;
        if (etok_attribute_request_energy(rec, s->shares.v, s->shares.n, &att, &stop_err))
            fprintf(stderr, "etok bench: %s\n", stop_err.msg);
    }
    etok_step_shares_free(&s->shares);
    if (s->drive_rc) {
        fprintf(stderr, "etok bench: %s\n", s->drive_err.msg);
        rec->partial = 1; /* still write what was observed */
        snprintf(rec->stop_reason, sizeof rec->stop_reason, "error");
    }
    s->outcome = s->drive_rc ? 0 : bench_outcome(rec, s->outcome_msg, sizeof s->outcome_msg);
    return BENCH_GO;
}

/* The exit status of a run whose outputs were written: the driver's error, else the outcome. */
static int bench_exit_status(const bench_run_state *s) {
    if (s->drive_rc) return s->drive_err.exit_code ? s->drive_err.exit_code : ETOK_EXIT_FAIL;
    return s->outcome;
}

/* Analysis and outputs: OUT/run.json, report.md, report.html and the table on stdout; returns
 * the exit code. When the analysis fails the record alone is written (as run.json). */
static int bench_write_outputs(const bench_args *a, bench_run_state *s) {
    etok_err err = {0};
    etok_record *rec = &s->rec;
    char *txt = NULL;
    etok_cli_idle_history("bench", rec, !a->no_idle_history); /* adds its warning to the record */
    if (!a->ep.url || a->server_pid > 0) { /* another process on a GPU (the engine here is CPU-only) */
        char who[400];
        long pid = a->server_pid > 0 ? (long)a->server_pid : -1;
        if (etok_nvml_gpu_processes(pid, pid, who, sizeof who) > 0)
            etok_record_add_fault(rec, rec->window_end_s + 1e-3, "gpu_processes", "", "warning",
                                  "another process holds the GPU at the end of the run (%s): device figures include its work",
                                  who);
    }
    etok_bgload_fill_record(rec); /* per-phase background load, in the record */
    etok_metrics_opts mo = {.seed = (uint64_t)a->seed, .process_boundary = a->process_boundary};
    if (etok_metrics_compute(rec, &mo, &s->met, &err)) {
        fprintf(stderr, "etok bench: analysis: %s\n", err.msg);
        char *j = etok_record_to_json_text(rec);
        write_out(a->out_dir, "run.json", j, &err);
        free(j);
        return ETOK_EXIT_FAIL;
    }
    txt = etok_report_json(rec, &s->met);
    if (write_out(a->out_dir, "run.json", txt, &err)) goto out_err;
    free(txt);
    txt = etok_report_md(rec, &s->met, 0);
    if (write_out(a->out_dir, "report.md", txt, &err)) goto out_err;
    free(txt);
    txt = etok_report_html(rec, &s->met);
    if (write_out(a->out_dir, "report.html", txt, &err)) goto out_err;
    free(txt);
    txt = NULL;
    if (!a->quiet) {
        txt = etok_report_md(rec, &s->met, 1);
        if (txt) fputs(txt, stdout);
        printf("\nwrote %s/run.json, %s/report.md, %s/report.html\n", a->out_dir, a->out_dir, a->out_dir);
        free(txt);
    }
    if (s->outcome_msg[0]) fprintf(stderr, "etok bench: %s\n", s->outcome_msg);
    return bench_exit_status(s);
out_err:
    free(txt);
    fprintf(stderr, "etok bench: %s\n", err.msg);
    return err.exit_code ? err.exit_code : ETOK_EXIT_OUTPUT;
}

int cmd_bench(int argc, char **argv) {
    bench_args a;
    bench_args_init(&a);
    int rc = bench_parse(argc, argv, &a);
    if (rc == BENCH_GO) rc = bench_validate(&a);
    if (rc != BENCH_GO) return rc;
    bench_run_state s;
    bench_state_init(&s);
    rc = bench_check_inputs(&a, &s);
    if (rc != BENCH_GO) return bench_release(&s, rc);
    rc = bench_setup(&a, &s);
    if (rc == BENCH_GO) {
        bench_fill_record(&a, &s, argc, argv);
        rc = bench_run(&a, &s);
    }
    if (rc == BENCH_GO) rc = bench_write_outputs(&a, &s);
    return bench_release(&s, rc);
}
