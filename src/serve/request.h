/* request.h — the body of an OpenAI-style completion request, parsed and validated (pure: no
 * server, no model). `etok serve` (server.c) calls it for /v1/chat/completions and
 * /v1/completions; tests/unit/test_serve_request.c and tests/fuzz/fuzz_serve_request.c call it
 * directly. What it checks and what it leaves to the server (the model name, tokens, the
 * context) is in docs/SERVE.md. */
#ifndef ETOK_SERVE_REQUEST_H
#define ETOK_SERVE_REQUEST_H

#include <stddef.h>

#include "etok/engine.h"
#include "etok/stopseq.h"

#define ETOK_SERVE_MAX_STOP ETOK_STOP_MAX             /* stop: a string or up to 4 (OpenAI's limit) */
#define ETOK_SERVE_MAX_STOP_BYTES ETOK_STOP_MAX_BYTES /* each stop string, bytes */
#define ETOK_SERVE_MAX_MESSAGES 4096

typedef struct {
    int chat;                  /* 1: messages (chat), 0: prompt (completions) */
    int stream, include_usage;
    int max_tokens;            /* max_completion_tokens or max_tokens; 0 = not given */
    etok_sampling sampling;    /* temperature 1, top_p 1, seed 0 unless given */
    char *model;               /* NULL = not given */
    int n_msgs;
    const char **roles;        /* static strings: "system" (also for "developer"), "user", "assistant" */
    char **contents;           /* each message's text (text parts joined) */
    char *prompt;              /* completions: the prompt (a string or an array of one string) */
    int n_stop;
    char *stop[ETOK_SERVE_MAX_STOP]; /* non-empty, at most ETOK_SERVE_MAX_STOP_BYTES each */
    size_t stop_max_len;       /* longest stop string, 0 without */
} etok_serve_request;

/* Why a body was refused, in OpenAI's error terms. */
typedef struct {
    int status;                /* 400, or 500 when out of memory */
    char type[32];             /* "invalid_request_error" or "server_error" */
    char code[32];             /* "invalid_json", "invalid_value" */
    char param[64];            /* the offending field, e.g. "stop" or "messages[2].role"; "" = none */
    char message[512];
} etok_serve_reject;

/* Parse body[0, len) (need not be NUL-terminated). max_tokens_limit: a larger max_tokens is
 * refused. Returns 0 with *out filled (free with etok_serve_request_free), or -1 with *rej
 * filled and *out empty. Never reads past len; any bytes are safe. */
int etok_serve_request_parse(const char *body, size_t len, int chat, int max_tokens_limit, etok_serve_request *out,
                             etok_serve_reject *rej);
void etok_serve_request_free(etok_serve_request *r);

/* etok_stop_find / etok_stop_holdback (etok/stopseq.h) over the request's stop strings.
 * Where in text[0, len) the earliest stop string that starts at or after `from` starts, or len
 * when none does. */
size_t etok_serve_stop_find(const etok_serve_request *r, const char *text, size_t from, size_t len);
/* How many trailing bytes of text[0, len) could begin a stop string that more text would
 * complete (a stream holds them back); 0 without stop strings. */
size_t etok_serve_stop_holdback(const etok_serve_request *r, const char *text, size_t len);

#endif
