/* sse.h — an incremental Server-Sent-Events parser, and the reading of one OpenAI stream chunk.
 *
 * The parser takes bytes as they arrive, split anywhere (inside a line, inside a CRLF pair,
 * inside a UTF-8 sequence), and calls back once per complete event with its `data` (multi-line
 * data fields joined by "\n", as the SSE spec says). Lines end in LF, CRLF or CR; lines that
 * start with ':' are comments; `event:` names the event type; `id:` and `retry:` are accepted
 * and ignored. Hard limits bound memory: a line longer than max_line_bytes or an event larger
 * than max_event_bytes is dropped (the whole event), counted, and parsing goes on at the next
 * event. Bytes that are not valid UTF-8 are tolerated, passed through and counted.
 *
 * What it does not do: network I/O (endpoint.c feeds it), or interpret the JSON inside
 * (etok_openai_chunk_parse below does that, separately, so both can be tested alone). */
#ifndef ETOK_SSE_H
#define ETOK_SSE_H

#include <stddef.h>

/* Called once per dispatched event. data is NUL-terminated (data_len excludes the NUL);
 * event_type is "message" when the stream named none. Return non-zero to stop parsing
 * (etok_sse_feed then returns 1). */
typedef int (*etok_sse_event_fn)(void *arg, const char *event_type, const char *data, size_t data_len);

typedef struct {
    /* limits (0 = defaults: 1 MiB line, 4 MiB event) */
    size_t max_line_bytes;
    size_t max_event_bytes;

    etok_sse_event_fn on_event;
    void *arg;

    /* counters, read them any time */
    size_t events;            /* events dispatched */
    size_t comments;          /* comment lines (":...", keep-alives) */
    size_t oversized_lines;   /* lines over max_line_bytes (their event is dropped) */
    size_t oversized_events;  /* events over max_event_bytes (dropped) */
    size_t dropped_events;    /* events dropped for either reason */
    size_t invalid_utf8_bytes;/* bytes that were not part of a valid UTF-8 sequence */
    size_t unknown_fields;    /* lines whose field name is not data/event/id/retry */
    size_t bytes_in;          /* total bytes fed */

    /* internal state */
    char *line;               /* the current (incomplete) line */
    size_t line_len, line_cap;
    int line_overflow;        /* the current line went over the limit: skipping to its end */
    int last_was_cr;          /* previous byte was CR (a following LF belongs to it) */
    char *data;               /* the current event's data */
    size_t data_len, data_cap;
    int has_data;             /* at least one data field in the current event */
    int event_poisoned;       /* the current event went over a limit: drop it */
    char event_type[64];
    int stopped;
} etok_sse_parser;

void etok_sse_init(etok_sse_parser *p, etok_sse_event_fn on_event, void *arg);
void etok_sse_free(etok_sse_parser *p);
/* Feed bytes. Returns 0, 1 when the callback asked to stop, -1 on out of memory. */
int etok_sse_feed(etok_sse_parser *p, const char *buf, size_t len);
/* End of stream. An unterminated line is processed as if terminated, but an event that was
 * never closed by a blank line is NOT dispatched (the SSE spec discards it). Returns 1 when
 * the stream ended mid-line or mid-event (truncated), else 0. */
int etok_sse_finish(etok_sse_parser *p);

/* Count the bytes of buf that are not part of a valid UTF-8 sequence (overlongs, surrogates,
 * code points above U+10FFFF and stray continuation bytes are invalid). */
size_t etok_utf8_invalid_bytes(const char *buf, size_t len);

/* One `data:` payload of an OpenAI-compatible stream (/v1/chat/completions or /v1/completions). */
typedef enum {
    ETOK_CHUNK_DATA = 0,   /* a chunk: content (maybe empty), finish_reason, usage */
    ETOK_CHUNK_DONE,       /* the literal [DONE] */
    ETOK_CHUNK_ERROR,      /* {"error": {...}} sent inside the stream */
    ETOK_CHUNK_NOT_CHUNK,  /* valid JSON that is not an OpenAI chunk */
    ETOK_CHUNK_BAD_JSON    /* not JSON at all */
} etok_chunk_kind;

typedef struct {
    etok_chunk_kind kind;
    char *content;          /* malloc'd text of choices[0].delta.content or choices[0].text; NULL if none */
    size_t content_len;
    int has_content;        /* content present and non-empty: one token arrival */
    char finish_reason[32]; /* "" when none */
    int has_usage;          /* usage object with integer fields present */
    long long prompt_tokens, completion_tokens;
    int has_energy;         /* usage.energy_j (etok serve's per-request energy) is a number */
    double energy_j;
    char message[256];      /* why NOT_CHUNK / BAD_JSON / ERROR (the server's message) */
} etok_openai_chunk;

/* Parse one data payload. Always fills out (never fails); free with etok_openai_chunk_free. */
void etok_openai_chunk_parse(const char *data, size_t len, etok_openai_chunk *out);
void etok_openai_chunk_free(etok_openai_chunk *c);

#endif
