/* endpoint.h — drive an OpenAI-compatible server (vLLM, SGLang, TGI, llama.cpp, Ollama, etok
 * serve) and record what it did, request by request.
 *
 * One thread drives every stream through libcurl's multi interface. Requests are streamed
 * (SSE, with stream_options.include_usage) so every content chunk is timestamped on the
 * caller's clock (record time, so it lines up with the meters). Load is closed-loop (keep C
 * requests in flight) or open-loop (Poisson arrivals at a rate, seeded).
 *
 * Every request becomes one etok_request in the record, failed ones included with their
 * error: HTTP errors, timeouts, refused connections, a server that dies mid-stream, truncated
 * or malformed SSE. None of these is fatal to the run; etok_endpoint_run returns -1 only for a
 * bad configuration (URL, options) or when libcurl cannot start.
 *
 * Token counts: from the server's `usage` when it sends one (token_count_source "usage"),
 * else the number of non-empty content chunks ("chunks", tokens_in then 0 = unknown); a
 * non-streamed response without usage has unknown counts ("none", 0).
 * token_times_s has one entry per content chunk; when usage reports more output tokens than
 * chunks (servers that pack several tokens into one chunk, or count the end token that no chunk
 * carries: llama-server), stats.usage_exceeds_chunks says so; the record keeps both counts
 * (tokens_out and one token_times_s entry per chunk) and the tokens_out metric's note shows the
 * difference (docs/REPORT.md).
 * When the usage carries etok serve's per-request `energy_j`, it lands in the request's
 * energy_j (else that stays < 0, not attributed). */
#ifndef ETOK_ENDPOINT_H
#define ETOK_ENDPOINT_H

#include <stddef.h>
#include <stdint.h>

#include "etok/record.h"
#include "etok/stopseq.h"
#include "etok/util.h"

typedef enum { ETOK_API_CHAT = 0, ETOK_API_COMPLETIONS = 1 } etok_endpoint_api;

/* What happened, in counts (every failed request is also in the record with its error). */
typedef struct {
    int requests, ok, failed;
    int http_errors;          /* status >= 400 (or any non-2xx) */
    int timeouts;             /* request timeout reached */
    int connect_errors;       /* could not connect (server down) */
    int transport_errors;     /* connection dropped mid-response, other curl errors */
    int truncated_streams;    /* stream ended without [DONE] or mid-event */
    int malformed_chunks;     /* SSE data that was not an OpenAI chunk / not JSON */
    int stream_errors;        /* {"error": ...} sent inside a stream */
    int cancelled;            /* in flight when *stop was set */
    long long invalid_utf8_bytes;
    int oversized_sse;        /* SSE lines or events over the parser limits */
    int usage_missing;        /* ok requests whose token counts came from chunks */
    int usage_exceeds_chunks; /* ok requests with usage.completion_tokens > content chunks */
    int not_streamed;         /* asked to stream, answered with one JSON body (no token times) */
    int stopped_unreachable;  /* issuing stopped: the server refused every connection */
    int unreachable;          /* stopped_unreachable, or the last request(s) to finish could not
                                 connect: rec->partial is set, stop_reason "endpoint_unreachable" */
    double cpu_s;             /* CPU time of the driving thread during the run */
    double wall_s;
} etok_endpoint_stats;

/* The stop strings of one prompt (etok_endpoint_opts.prompt_stop). */
typedef struct {
    const char *s[ETOK_STOP_MAX];
    int n;
} etok_endpoint_stop;

typedef struct {
    const char *url;          /* base ("http://127.0.0.1:8080", ".../v1") or a full .../completions URL */
    etok_endpoint_api api;    /* chat (default) or completions; ignored for a full URL */
    const char *model;        /* "model" field; NULL = the first id of GET /v1/models (omitted if none) */
    const char *api_key;      /* bearer key; NULL = $OPENAI_API_KEY when set */
    int concurrency;          /* closed loop: requests in flight (default 1); open loop: cap (0 = 1024) */
    double rate_rps;          /* > 0: open loop, Poisson arrivals at this mean rate */
    uint64_t seed;            /* arrival schedule seed */
    int n_requests;           /* requests to send; 0 = one per prompt (unless duration_s) */
    double duration_s;        /* > 0: keep issuing until this much time has passed */
    double request_timeout_s; /* whole request; 0 = 300 s */
    int max_tokens;           /* 0 = 128 */
    const int *prompt_max_tokens; /* optional, one per prompt: that prompt's max_tokens (> 0) */
    /* optional, one per prompt: that prompt's stop strings, sent as the request's "stop" (an
     * array of n, 1..ETOK_STOP_MAX = OpenAI's limit of 4; n 0 sends no "stop"). A server that
     * does not know "stop" ignores it: the caller still cuts the output (bench.c). */
    const etok_endpoint_stop *prompt_stop;
    int ignore_eos;           /* 1: ask for exactly max_tokens: "ignore_eos": true (vLLM, SGLang,
                                 llama.cpp) and "min_tokens": max_tokens (vLLM); servers that do not
                                 know them ignore them, so the caller checks tokens_out */
    double temperature;       /* 0 = greedy */
    int no_stream;            /* 1: plain JSON responses (no per-token times) */
    int keep_output;          /* 1: store the generated text in each request (bench checks answers) */
    /* Record time: seconds on the record's clock. NULL = etok_mono_s() - (time at start). */
    double (*clock)(void *arg);
    void *clock_arg;
    size_t max_sse_line_bytes;  /* 0 = 1 MiB */
    size_t max_response_bytes;  /* per request; 0 = 16 MiB */
    etok_endpoint_stats *stats; /* optional out */
} etok_endpoint_opts;

typedef struct {
    double t_s;               /* record time */
    int issued, done, ok, failed, in_flight;
    long long tokens_out;
} etok_endpoint_progress;
typedef void (*etok_endpoint_progress_fn)(const etok_endpoint_progress *p, void *arg);

/* Run the workload: request i sends prompts[i % n_prompts]. Appends one etok_request per request
 * to rec (id "req-<i>"). Stops issuing when *stop becomes non-zero (stop may be NULL); requests
 * then in flight are cancelled, kept with error "cancelled", and rec->partial is set with
 * stop_reason "interrupted". After max(8, concurrency) connection failures in a row issuing
 * stops; then, or when the last request(s) to finish could not connect, the server is
 * unreachable: rec->partial = 1, stop_reason "endpoint_unreachable" (stats.unreachable).
 * cb (may be NULL) is called after every completion and about 4 times a second. */
int etok_endpoint_run(const etok_endpoint_opts *o, const char *const *prompts, int n_prompts,
                      etok_record *rec, volatile int *stop, etok_endpoint_progress_fn cb, void *cb_arg,
                      etok_err *err);

/* A URL etok can send requests to: http:// or https:// with a host (libcurl's URL parser).
 * 0, or -1 with err (ETOK_EXIT_USAGE) "WHAT 'URL': ...". Checked before anything runs. */
int etok_endpoint_check_url(const char *what, const char *url, etok_err *err);
/* The full request URL for a base URL and API (malloc'd), e.g. ".../v1/chat/completions". */
char *etok_endpoint_url(const char *base, etok_endpoint_api api);
/* GET /v1/models of the server at url (base or full URL) and copy the first model id into out.
 * 0, or -1 with err. */
int etok_endpoint_discover_model(const char *url, const char *api_key, double timeout_s, char *out, size_t cap,
                                 etok_err *err);
/* Poisson arrivals: the next exponential gap (s) at rate_rps from a splitmix64 state. */
double etok_endpoint_exp_gap_s(uint64_t *state, double rate_rps);

#endif
