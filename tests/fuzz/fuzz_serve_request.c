/* fuzz_serve_request.c — libFuzzer target: any bytes as the body of /v1/chat/completions and
 * /v1/completions go through etok serve's request parser (src/serve/request.c), exactly as
 * the server calls it. Checked on every input: it accepts or refuses (never crashes, leaks or
 * reads past the body); a refusal is a 4xx/500 with a code and a message; an accepted request
 * obeys the documented limits (max_tokens in range, at most 4 non-empty stop strings of at
 * most 256 bytes, roles among system/user/assistant); the stop search and hold-back stay
 * inside the text. The first byte picks chat or completions. Built with -DETOK_FUZZ=ON. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "serve/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define LIMIT 4096

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int chat = data[0] & 1;
    /* a private copy of exactly the body, so reading past it is caught by ASan */
    size_t len = size - 1;
    char *body = malloc(len ? len : 1);
    if (!body) return 0;
    if (len) memcpy(body, data + 1, len);
    etok_serve_request r;
    etok_serve_reject rej;
    int rc = etok_serve_request_parse(body, len, chat, LIMIT, &r, &rej);
    free(body);
    if (rc != 0) {
        if (rc != -1 || (rej.status != 400 && rej.status != 500) || !rej.message[0] || !rej.type[0]) abort();
        if (r.contents || r.prompt || r.roles || r.model || r.n_stop) abort();
        return 0;
    }
    if (r.max_tokens < 0 || r.max_tokens > LIMIT) abort();
    if (r.n_stop < 0 || r.n_stop > ETOK_SERVE_MAX_STOP) abort();
    size_t longest = 0;
    for (int k = 0; k < r.n_stop; k++) {
        size_t n = strlen(r.stop[k]);
        if (n == 0 || n > ETOK_SERVE_MAX_STOP_BYTES) abort();
        if (n > longest) longest = n;
    }
    if (longest != r.stop_max_len) abort();
    if (!(r.sampling.temperature >= 0 && r.sampling.temperature <= 2)) abort();
    if (!(r.sampling.top_p > 0 && r.sampling.top_p <= 1)) abort();
    const char *text;
    if (chat) {
        if (r.n_msgs < 1 || r.n_msgs > ETOK_SERVE_MAX_MESSAGES || r.prompt) abort();
        for (int i = 0; i < r.n_msgs; i++) {
            if (strcmp(r.roles[i], "system") && strcmp(r.roles[i], "user") && strcmp(r.roles[i], "assistant")) abort();
            if (!r.contents[i]) abort();
        }
        text = r.contents[r.n_msgs - 1];
    } else {
        if (!r.prompt || r.contents) abort();
        text = r.prompt;
    }
    /* the stop helpers on the request's own text: results inside it, and consistent */
    size_t n = strlen(text);
    size_t at = etok_serve_stop_find(&r, text, 0, n);
    if (at > n) abort();
    if (at < n) {
        int hit = 0;
        for (int k = 0; k < r.n_stop; k++) hit |= !strncmp(text + at, r.stop[k], strlen(r.stop[k]));
        if (!hit) abort();
    }
    size_t hold = etok_serve_stop_holdback(&r, text, at);
    if (hold > at || (r.stop_max_len && hold >= r.stop_max_len) || (!r.n_stop && hold)) abort();
    etok_serve_request_free(&r);
    return 0;
}
