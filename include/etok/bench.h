/* bench.h — the `etok bench` driver over the built-in engine: it produces tokens from an
 * eval set under a closed-loop (concurrency C, continuous batching) or open-loop (Poisson
 * rate R, seeded) load, timestamps every request and token, records every engine step,
 * scores answers, and runs the meters with an idle baseline. An item's stop strings (evalset.h)
 * end its generation where one appears, across token boundaries (etok/stopseq.h, the search
 * `etok serve` uses); its output is cut before the stop string. It fills a run record and
 * nothing else: metrics (analyse/metrics.c) and reports (render/report_*.c) come after.
 * Warm-up requests run before the window opens and are not recorded. */
#ifndef ETOK_BENCH_H
#define ETOK_BENCH_H

#include <stdint.h>

#include "etok/attribute.h"
#include "etok/dataset.h"
#include "etok/engine.h"
#include "etok/evalset.h"
#include "etok/record.h"
#include "etok/serve.h"
#include "etok/util.h"

typedef struct {
    int requests;          /* requests in the window (0 with duration_s > 0: until the deadline) */
    double duration_s;     /* > 0: issue requests until this many seconds have passed */
    int concurrency;       /* closed loop: requests in flight (engine batch slots) */
    double rate_rps;       /* > 0: open loop, Poisson arrivals at this rate (seeded) */
    int max_slots;         /* open loop: engine batch slots (0 = 8) */
    int max_tokens;        /* per request */
    /* --budget (etok/budget.h): max_tokens of each eval item, indexed like evals->items; NULL =
     * max_tokens for every item. Built-in engine only (warm-up requests use max_tokens). */
    const int *item_max_tokens;
    int warmup_requests;   /* before the window, not recorded */
    double idle_s;         /* idle baseline before the run (0 skips) */
    uint64_t seed;         /* Poisson arrivals and the order of eval items */
    const char *system_prompt; /* NULL = none */
    int sig_fd;            /* signalfd to watch for SIGINT/SIGTERM (-1 = none) */
    int progress;          /* draw a progress line on stderr */
    /* --energy-from URL: another node's etok exporter, read at every window edge (after the
     * local meters' mark). Its readings go to remote_traces (meter "remote", one counter trace
     * in J per exporter series, the exporter's source and boundary), a record of their own
     * because the sampler owns rec->traces while it runs: the caller moves them into rec after
     * etok_meters_stop with etok_bench_merge_remote. NULL = none. */
    const etok_energy_source *energy_from;
    etok_record *remote_traces;
    /* Out (built-in engine only): who took part in which recorded step and with how many
     * tokens, for etok_attribute_request_energy (attribute.h) once the meters stopped.
     * NULL = not collected. The caller frees it. */
    etok_step_shares *shares;
    /* Out: items asking for an exact length (serving datasets, dataset.h) against what came
     * back. NULL = not counted. */
    etok_dataset_lengths *lengths;
    /* Out (--endpoint): eval items' stop strings are sent as the request's "stop" and etok still
     * looks for them in each answer (the check). stop_sent: answers (ok requests) to items with
     * stop strings; stop_ran_past: those that still held one (a server that ignored "stop": the
     * output is cut there for scoring, tokens_out stays the server's count). NULL = not counted. */
    int *stop_sent, *stop_ran_past;
} etok_bench_opts;

/* Runs the load on an open engine; meters must be started on rec by the caller (the
 * sampler already running), and `now` converts etok_mono_s() to record time via t0_mono.
 * Fills rec: idle and window times, requests, steps, token totals, partial (on a signal).
 * Returns 0 (also when interrupted: rec->partial = 1), or -1 with err set. */
typedef struct etok_meter_set etok_meter_set;
int etok_bench_drive(etok_model *model, etok_engine *engine, const etok_evalset *evals, const etok_bench_opts *o,
                     etok_meter_set *meters, etok_record *rec, etok_err *err);

/* The same workload against an OpenAI-compatible server (etok bench --endpoint URL): idle
 * baseline, warm-up requests (not recorded), then the window; prompts are the eval items'
 * user messages (the server applies its own chat template); every answer is scored.
 * ep carries url/model/api key/timeout; load and token settings come from o. */
typedef struct {
    const char *url, *model, *api_key;
    int completions_api;     /* 1: /v1/completions instead of chat */
    double request_timeout_s;
} etok_bench_endpoint;
int etok_bench_drive_endpoint(const etok_bench_endpoint *ep, const etok_evalset *evals, const etok_bench_opts *o,
                              etok_meter_set *meters, etok_record *rec, etok_err *err);

/* The k-th warm-up prompt (k >= 0; a fixed cycle of ETOK_BENCH_WARMUP_PROMPTS). Warm-up
 * requests in both modes (engine and --endpoint) send these, never eval items: an eval prompt
 * sent in the warm-up would hit the server's prompt cache when measured (too low a TTFT), and
 * both modes with the same seed measure the same prompts in the same order (the window starts
 * at the first item of the seeded shuffle). They share no text with eval items beyond the chat
 * template (each starts "etok warm-up request"). */
#define ETOK_BENCH_WARMUP_PROMPTS 4
const char *etok_bench_warmup_prompt(int k);

/* Moves the remote traces and faults into rec (after the meters stopped). When any remote trace
 * has a reading, the local traces stay in the record but are no longer summable: the energy
 * reported is the remote node's, never the two machines added together. Returns how many
 * remote traces were moved, or -1 (out of memory) with err set. */
int etok_bench_merge_remote(etok_record *rec, etok_record *remote, etok_err *err);

#endif
