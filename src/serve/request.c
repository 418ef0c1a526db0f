/* request.c — parse and validate the JSON body of /v1/chat/completions and /v1/completions
 * (request.h). Pure: no server state, no model, no I/O; every refusal names its field in
 * OpenAI's error terms. Owns the field rules (types, ranges, stop strings, message shapes) and
 * the stop-string search the server uses while generating. */
#include "serve/request.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int reject(etok_serve_reject *rej, int status, const char *code, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static int reject(etok_serve_reject *rej, int status, const char *code, const char *param, const char *fmt, ...) {
    memset(rej, 0, sizeof *rej);
    rej->status = status;
    snprintf(rej->type, sizeof rej->type, "%s", status >= 500 ? "server_error" : "invalid_request_error");
    snprintf(rej->code, sizeof rej->code, "%s", code ? code : "");
    snprintf(rej->param, sizeof rej->param, "%s", param ? param : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rej->message, sizeof rej->message, fmt, ap);
    va_end(ap);
    return -1;
}

static const char *json_type_name(const json_t *j) {
    switch (json_typeof(j)) {
    case JSON_OBJECT: return "object";
    case JSON_ARRAY: return "array";
    case JSON_STRING: return "string";
    case JSON_INTEGER: return "integer";
    case JSON_REAL: return "number";
    case JSON_TRUE:
    case JSON_FALSE: return "boolean";
    default: return "null";
    }
}

/* text of a message "content": a string, or an array of {"type":"text","text":...} parts.
 * NULL with *why: 1 wrong shape, 2 out of memory, 3 a NUL character (the template wants C
 * strings; JSON allows "\u0000"). */
static char *content_text(json_t *c, int *why) {
    size_t n_parts = 1, total = 0, i;
    *why = 1;
    if (json_is_array(c)) n_parts = json_array_size(c);
    else if (!json_is_string(c)) return NULL;
    for (i = 0; i < n_parts; i++) {
        json_t *t = c;
        if (json_is_array(c)) {
            json_t *part = json_array_get(c, i);
            const char *ty = json_string_value(json_object_get(part, "type"));
            t = json_object_get(part, "text");
            if (!json_is_string(t) || !ty || strcmp(ty, "text")) return NULL;
        }
        if (memchr(json_string_value(t), '\0', json_string_length(t))) {
            *why = 3;
            return NULL;
        }
        total += json_string_length(t);
    }
    char *out = malloc(total + 1);
    if (!out) {
        *why = 2;
        return NULL;
    }
    size_t at = 0;
    for (i = 0; i < n_parts; i++) {
        json_t *t = json_is_array(c) ? json_object_get(json_array_get(c, i), "text") : c;
        memcpy(out + at, json_string_value(t), json_string_length(t));
        at += json_string_length(t);
    }
    out[at] = '\0';
    *why = 0;
    return out;
}

/* A string field holding no NUL byte (the engine's text is NUL-terminated), copied. */
static int text_field(json_t *v, char **out, int *has_nul) {
    size_t n = json_string_length(v);
    *has_nul = memchr(json_string_value(v), '\0', n) != NULL;
    if (*has_nul) return -1;
    *out = malloc(n + 1);
    if (!*out) return -1;
    memcpy(*out, json_string_value(v), n + 1);
    return 0;
}

void etok_serve_request_free(etok_serve_request *r) {
    if (!r) return;
    for (int i = 0; r->contents && i < r->n_msgs; i++) free(r->contents[i]);
    free(r->contents);
    free(r->roles);
    free(r->prompt);
    free(r->model);
    for (int i = 0; i < r->n_stop; i++) free(r->stop[i]);
    memset(r, 0, sizeof *r);
}

static int parse_stop(json_t *v, etok_serve_request *r, etok_serve_reject *rej) {
    size_t n = 1;
    if (json_is_array(v)) {
        n = json_array_size(v);
        if (n > ETOK_SERVE_MAX_STOP)
            return reject(rej, 400, "invalid_value", "stop", "stop has %zu strings, over the limit of %d", n, ETOK_SERVE_MAX_STOP);
    } else if (!json_is_string(v)) {
        return reject(rej, 400, "invalid_value", "stop", "stop must be a string or an array of up to %d strings, not %s",
                      ETOK_SERVE_MAX_STOP, json_type_name(v));
    }
    for (size_t i = 0; i < n; i++) {
        json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
        if (!json_is_string(s))
            return reject(rej, 400, "invalid_value", "stop", "stop[%zu] must be a string, not %s", i, json_type_name(s));
        size_t len = json_string_length(s);
        const char *why = etok_stop_refused(json_string_value(s), len); /* the rules bench's eval items share */
        if (why && len > ETOK_SERVE_MAX_STOP_BYTES)
            return reject(rej, 400, "invalid_value", "stop", "a stop string has %zu bytes, over the limit of %d", len,
                          ETOK_SERVE_MAX_STOP_BYTES);
        if (why) return reject(rej, 400, "invalid_value", "stop", "%s", why);
        int nul = 0;
        if (text_field(s, &r->stop[r->n_stop], &nul) != 0)
            return nul ? reject(rej, 400, "invalid_value", "stop", "stop strings must not hold a NUL character")
                       : reject(rej, 500, NULL, NULL, "out of memory");
        r->n_stop++;
        if (len > r->stop_max_len) r->stop_max_len = len;
    }
    return 0;
}

static int parse_messages(json_t *msgs, etok_serve_request *r, etok_serve_reject *rej) {
    if (!json_is_array(msgs) || json_array_size(msgs) == 0)
        return reject(rej, 400, "invalid_value", "messages", "messages must be a non-empty array");
    if (json_array_size(msgs) > ETOK_SERVE_MAX_MESSAGES)
        return reject(rej, 400, "invalid_value", "messages", "messages has %zu entries, over the limit of %d",
                      json_array_size(msgs), ETOK_SERVE_MAX_MESSAGES);
    size_t n = json_array_size(msgs);
    r->roles = calloc(n, sizeof *r->roles);
    r->contents = calloc(n, sizeof *r->contents);
    if (!r->roles || !r->contents) return reject(rej, 500, NULL, NULL, "out of memory");
    r->n_msgs = (int)n;
    size_t i;
    json_t *m;
    json_array_foreach(msgs, i, m) {
        char pname[48];
        snprintf(pname, sizeof pname, "messages[%zu].role", i);
        if (!json_is_object(m))
            return reject(rej, 400, "invalid_value", "messages", "messages[%zu] must be an object, not %s", i, json_type_name(m));
        const char *role = json_string_value(json_object_get(m, "role"));
        if (!role) return reject(rej, 400, "invalid_value", pname, "messages[%zu].role must be a string", i);
        /* "developer" is OpenAI's newer name for the system role */
        if (!strcmp(role, "system") || !strcmp(role, "developer")) r->roles[i] = "system";
        else if (!strcmp(role, "user")) r->roles[i] = "user";
        else if (!strcmp(role, "assistant")) r->roles[i] = "assistant";
        else
            return reject(rej, 400, "invalid_value", pname,
                          "messages[%zu].role '%.32s' is not supported (system, developer, user or assistant)", i, role);
        int why = 0;
        r->contents[i] = content_text(json_object_get(m, "content"), &why);
        snprintf(pname, sizeof pname, "messages[%zu].content", i);
        if (why == 2) return reject(rej, 500, NULL, NULL, "out of memory");
        if (why == 3) return reject(rej, 400, "invalid_value", pname, "messages[%zu].content must not hold a NUL character", i);
        if (!r->contents[i])
            return reject(rej, 400, "invalid_value", pname, "messages[%zu].content must be a string or an array of text parts", i);
    }
    return 0;
}

int etok_serve_request_parse(const char *body, size_t len, int chat, int max_tokens_limit, etok_serve_request *out,
                             etok_serve_reject *rej) {
    memset(out, 0, sizeof *out);
    json_error_t jerr;
    json_t *root = len ? json_loadb(body, len, 0, &jerr) : NULL;
    if (!root)
        return reject(rej, 400, "invalid_json", NULL, "request body is not valid JSON: %s", len ? jerr.text : "empty body");
    etok_serve_request *r = out;
    r->chat = chat;
    r->sampling = (etok_sampling){.temperature = 1.0f, .top_k = 0, .top_p = 1.0f, .seed = 0};
    int rc = -1;
    json_t *v;
#define FAIL(param, ...)                                          \
    do {                                                          \
        reject(rej, 400, "invalid_value", param, __VA_ARGS__);    \
        goto out;                                                 \
    } while (0)
    if (!json_is_object(root)) FAIL(NULL, "request body must be a JSON object, not %s", json_type_name(root));

    const char *mt_name = "max_completion_tokens";
    json_t *mt = json_object_get(root, mt_name);
    if (!mt || json_is_null(mt)) {
        mt_name = "max_tokens";
        mt = json_object_get(root, mt_name);
    }
    if (mt && !json_is_null(mt)) {
        if (!json_is_integer(mt) || json_integer_value(mt) < 1) FAIL(mt_name, "%s must be a positive integer", mt_name);
        if (json_integer_value(mt) > max_tokens_limit)
            FAIL(mt_name, "%s %lld is over this server's limit of %d", mt_name, (long long)json_integer_value(mt), max_tokens_limit);
        r->max_tokens = (int)json_integer_value(mt);
    }
    if ((v = json_object_get(root, "temperature")) && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) >= 0 && json_number_value(v) <= 2))
            FAIL("temperature", "temperature must be a number in [0, 2]");
        r->sampling.temperature = (float)json_number_value(v);
    }
    if ((v = json_object_get(root, "top_p")) && !json_is_null(v)) {
        if (!json_is_number(v) || !(json_number_value(v) > 0 && json_number_value(v) <= 1))
            FAIL("top_p", "top_p must be a number in (0, 1]");
        r->sampling.top_p = (float)json_number_value(v);
    }
    if ((v = json_object_get(root, "seed")) && !json_is_null(v)) {
        if (!json_is_integer(v)) FAIL("seed", "seed must be an integer");
        r->sampling.seed = (uint64_t)json_integer_value(v);
    }
    if ((v = json_object_get(root, "n")) && !json_is_null(v) && !(json_is_integer(v) && json_integer_value(v) == 1))
        FAIL("n", "only n = 1 is supported");
    if ((v = json_object_get(root, "stream")) && !json_is_null(v)) {
        if (!json_is_boolean(v)) FAIL("stream", "stream must be a boolean");
        r->stream = json_is_true(v);
    }
    if ((v = json_object_get(root, "stream_options")) && !json_is_null(v)) {
        if (!json_is_object(v)) FAIL("stream_options", "stream_options must be an object");
        json_t *iu = json_object_get(v, "include_usage");
        if (iu && !json_is_null(iu) && !json_is_boolean(iu))
            FAIL("stream_options.include_usage", "include_usage must be a boolean");
        r->include_usage = json_is_true(iu);
    }
    if ((v = json_object_get(root, "model")) && !json_is_null(v)) {
        int nul = 0;
        if (!json_is_string(v)) FAIL("model", "model must be a string, not %s", json_type_name(v));
        if (text_field(v, &r->model, &nul) != 0) {
            if (nul) FAIL("model", "model must not hold a NUL character");
            reject(rej, 500, NULL, NULL, "out of memory");
            goto out;
        }
    }
    if ((v = json_object_get(root, "stop")) && !json_is_null(v) && parse_stop(v, r, rej) != 0) goto out;

    if (chat) {
        if (parse_messages(json_object_get(root, "messages"), r, rej) != 0) goto out;
    } else {
        json_t *p = json_object_get(root, "prompt");
        if (json_is_array(p) && json_array_size(p) == 1) p = json_array_get(p, 0);
        if (!json_is_string(p)) FAIL("prompt", "prompt must be a string (or an array of one string)");
        int nul = 0;
        if (text_field(p, &r->prompt, &nul) != 0) {
            if (nul) FAIL("prompt", "prompt must not hold a NUL character");
            reject(rej, 500, NULL, NULL, "out of memory");
            goto out;
        }
    }
    rc = 0;
#undef FAIL
out:
    json_decref(root);
    if (rc != 0) etok_serve_request_free(r);
    return rc;
}

size_t etok_serve_stop_find(const etok_serve_request *r, const char *text, size_t from, size_t len) {
    return etok_stop_find(r->stop, r->n_stop, text, from, len);
}

size_t etok_serve_stop_holdback(const etok_serve_request *r, const char *text, size_t len) {
    return etok_stop_holdback(r->stop, r->n_stop, text, len);
}
