/* fuzz_sse.c — libFuzzer target: any bytes, split at any points, give the SSE parser the same
 * events as one feed, within its limits; every event's data goes through the OpenAI chunk
 * reader and the Prometheus energy-page reader without a crash. Built with -DETOK_FUZZ=ON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etok/serve.h"
#include "etok/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    size_t n;
    uint64_t hash;
} acc;

static int on_event(void *arg, const char *type, const char *d, size_t len) {
    acc *a = arg;
    a->n++;
    for (size_t i = 0; i < len; i++) a->hash = (a->hash ^ (unsigned char)d[i]) * 0x100000001B3ull;
    for (const char *t = type; *t; t++) a->hash = (a->hash ^ (unsigned char)*t) * 0x100000001B3ull;
    etok_openai_chunk c;
    etok_openai_chunk_parse(d, len, &c);
    if (c.has_content && (!c.content || c.content_len == 0)) abort();
    etok_openai_chunk_free(&c);
    return 0;
}

static acc run(const uint8_t *data, size_t size, size_t step) {
    acc a = {0, 1469598103934665603ull};
    etok_sse_parser p;
    etok_sse_init(&p, on_event, &a);
    p.max_line_bytes = 256;
    p.max_event_bytes = 1024;
    for (size_t i = 0; i < size; i += step) etok_sse_feed(&p, (const char *)data + i, size - i < step ? size - i : step);
    etok_sse_finish(&p);
    if (p.line_cap > 2 * 256 + 64 || p.data_cap > 2 * 1024 + 64) abort(); /* bounded memory */
    etok_sse_free(&p);
    return a;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    acc whole = run(data, size, size ? size : 1);
    size_t step = size ? (size_t)data[0] % 7 + 1 : 1;
    acc split = run(data, size, step);
    if (whole.n != split.n || whole.hash != split.hash) abort(); /* splitting never changes events */
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    etok_energy_reading r;
    etok_err err;
    etok_remote_energy_parse(text, &r, &err);
    free(text);
    return 0;
}
