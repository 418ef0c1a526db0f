/* sse.c — incremental Server-Sent-Events parsing and the reading of one OpenAI stream chunk.
 *
 * Owns: splitting bytes into lines (LF / CRLF / CR, split anywhere across feeds), fields into
 * events per the WHATWG SSE rules, the hard size limits, UTF-8 validity counting, and turning
 * one `data:` payload into an etok_openai_chunk (jansson). Does not own: sockets, timing, or
 * what a request does with a chunk (endpoint.c). */
#include "etok/sse.h"

#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SSE_DEFAULT_MAX_LINE (1u << 20)
#define SSE_DEFAULT_MAX_EVENT (4u << 20)

void etok_sse_init(etok_sse_parser *p, etok_sse_event_fn on_event, void *arg) {
    memset(p, 0, sizeof *p);
    p->on_event = on_event;
    p->arg = arg;
}

void etok_sse_free(etok_sse_parser *p) {
    free(p->line);
    free(p->data);
    p->line = p->data = NULL;
    p->line_len = p->line_cap = p->data_len = p->data_cap = 0;
}

static size_t max_line(const etok_sse_parser *p) { return p->max_line_bytes ? p->max_line_bytes : SSE_DEFAULT_MAX_LINE; }
static size_t max_event(const etok_sse_parser *p) { return p->max_event_bytes ? p->max_event_bytes : SSE_DEFAULT_MAX_EVENT; }

/* Make room for need more bytes (+1 for a NUL) in a growable buffer. 0 ok, -1 OOM. */
static int reserve(char **buf, size_t *cap, size_t len, size_t need) {
    if (len + need + 1 <= *cap) return 0;
    size_t c = *cap ? *cap : 64;
    while (c < len + need + 1) c *= 2;
    char *nb = realloc(*buf, c);
    if (!nb) return -1;
    *buf = nb;
    *cap = c;
    return 0;
}

static void reset_event(etok_sse_parser *p) {
    p->data_len = 0;
    p->has_data = 0;
    p->event_poisoned = 0;
    p->event_type[0] = '\0';
}

static void poison_event(etok_sse_parser *p, int oversized_event) {
    if (oversized_event && !p->event_poisoned) p->oversized_events++;
    p->event_poisoned = 1;
}

static void dispatch(etok_sse_parser *p) {
    if (p->event_poisoned) {
        p->dropped_events++;
        reset_event(p);
        return;
    }
    if (!p->has_data) {
        reset_event(p);
        return;
    }
    if (p->data_len > 0 && p->data[p->data_len - 1] == '\n') p->data_len--;
    if (!p->data) { /* "data:" with an empty value and nothing else: an empty event */
        if (reserve(&p->data, &p->data_cap, 0, 0) < 0) { reset_event(p); return; }
    }
    p->data[p->data_len] = '\0';
    p->events++;
    const char *type = p->event_type[0] ? p->event_type : "message";
    if (p->on_event && p->on_event(p->arg, type, p->data, p->data_len)) p->stopped = 1;
    reset_event(p);
}

/* Process one complete line (without its terminator). Returns 0 or -1 on OOM. */
static int process_line(etok_sse_parser *p, const char *line, size_t len) {
    p->invalid_utf8_bytes += etok_utf8_invalid_bytes(line, len);
    if (len == 0) {
        dispatch(p);
        return 0;
    }
    if (line[0] == ':') {
        p->comments++;
        return 0;
    }
    const char *colon = memchr(line, ':', len);
    size_t flen = colon ? (size_t)(colon - line) : len;
    const char *value = colon ? colon + 1 : line + len;
    size_t vlen = colon ? len - flen - 1 : 0;
    if (vlen > 0 && value[0] == ' ') {
        value++;
        vlen--;
    }
    if (flen == 4 && !memcmp(line, "data", 4)) {
        p->has_data = 1;
        if (p->event_poisoned) return 0;
        if (p->data_len + vlen + 1 > max_event(p)) {
            poison_event(p, 1);
            return 0;
        }
        if (reserve(&p->data, &p->data_cap, p->data_len, vlen + 1) < 0) return -1;
        memcpy(p->data + p->data_len, value, vlen);
        p->data_len += vlen;
        p->data[p->data_len++] = '\n';
    } else if (flen == 5 && !memcmp(line, "event", 5)) {
        size_t n = vlen < sizeof p->event_type - 1 ? vlen : sizeof p->event_type - 1;
        memcpy(p->event_type, value, n);
        p->event_type[n] = '\0';
    } else if ((flen == 2 && !memcmp(line, "id", 2)) || (flen == 5 && !memcmp(line, "retry", 5))) {
        /* accepted, not used */
    } else {
        p->unknown_fields++;
    }
    return 0;
}

static int end_line(etok_sse_parser *p) {
    if (p->line_overflow) {
        p->line_overflow = 0;
        p->line_len = 0;
        return 0;
    }
    int rc = process_line(p, p->line ? p->line : "", p->line_len);
    p->line_len = 0;
    return rc;
}

int etok_sse_feed(etok_sse_parser *p, const char *buf, size_t len) {
    if (p->stopped) return 1;
    p->bytes_in += len;
    size_t i = 0;
    while (i < len) {
        if (p->last_was_cr) {
            p->last_was_cr = 0;
            if (buf[i] == '\n') {
                i++;
                continue;
            }
        }
        /* the run of ordinary bytes up to the next line terminator */
        size_t j = i;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        size_t run = j - i;
        if (run > 0 && !p->line_overflow) {
            if (p->line_len + run > max_line(p)) {
                p->line_overflow = 1;
                p->oversized_lines++;
                poison_event(p, 0);
            } else {
                if (reserve(&p->line, &p->line_cap, p->line_len, run) < 0) return -1;
                memcpy(p->line + p->line_len, buf + i, run);
                p->line_len += run;
            }
        }
        i = j;
        if (i < len) {
            if (buf[i] == '\r') p->last_was_cr = 1;
            i++;
            if (end_line(p) < 0) return -1;
            if (p->stopped) return 1;
        }
    }
    return 0;
}

int etok_sse_finish(etok_sse_parser *p) {
    int truncated = 0;
    if (p->line_len > 0 || p->line_overflow) {
        truncated = 1;
        if (!p->stopped) (void)end_line(p);
    }
    if (p->has_data || p->event_poisoned) {
        truncated = 1;
        if (p->event_poisoned) p->dropped_events++;
    }
    reset_event(p);
    p->line_len = 0;
    p->line_overflow = 0;
    p->last_was_cr = 0;
    return truncated;
}

size_t etok_utf8_invalid_bytes(const char *buf, size_t len) {
    const unsigned char *s = (const unsigned char *)buf;
    size_t bad = 0, i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t need;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { need = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { need = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { need = 3; cp = c & 0x07; min = 0x10000; }
        else { bad++; i++; continue; } /* stray continuation, C0/C1 overlong lead, F5..FF */
        size_t k = 1;
        for (; k <= need && i + k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80) break;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if (k <= need || cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            bad++; /* the lead byte is bad; resync on the next byte */
            i++;
            continue;
        }
        i += need + 1;
    }
    return bad;
}

void etok_openai_chunk_free(etok_openai_chunk *c) {
    free(c->content);
    c->content = NULL;
    c->content_len = 0;
}

static void set_msg(etok_openai_chunk *c, etok_chunk_kind kind, const char *fmt, const char *arg) {
    c->kind = kind;
    snprintf(c->message, sizeof c->message, fmt, arg ? arg : "");
}

void etok_openai_chunk_parse(const char *data, size_t len, etok_openai_chunk *out) {
    memset(out, 0, sizeof *out);
    size_t a = 0, b = len;
    while (a < b && (data[a] == ' ' || data[a] == '\t' || data[a] == '\n' || data[a] == '\r')) a++;
    while (b > a && (data[b - 1] == ' ' || data[b - 1] == '\t' || data[b - 1] == '\n' || data[b - 1] == '\r')) b--;
    if (b - a == 6 && !memcmp(data + a, "[DONE]", 6)) {
        out->kind = ETOK_CHUNK_DONE;
        return;
    }
    json_error_t jerr;
    json_t *root = json_loadb(data, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if (!root) {
        set_msg(out, ETOK_CHUNK_BAD_JSON, "not JSON: %s", jerr.text);
        return;
    }
    if (!json_is_object(root)) {
        set_msg(out, ETOK_CHUNK_NOT_CHUNK, "JSON is not an object%s", NULL);
        goto done;
    }
    json_t *error = json_object_get(root, "error");
    if (error && !json_is_null(error)) {
        const char *m = NULL;
        if (json_is_object(error)) m = json_string_value(json_object_get(error, "message"));
        else m = json_string_value(error);
        set_msg(out, ETOK_CHUNK_ERROR, "server error in stream: %s", m ? m : "(no message)");
        goto done;
    }
    json_t *usage = json_object_get(root, "usage");
    if (usage && json_is_object(usage)) {
        json_t *pt = json_object_get(usage, "prompt_tokens"), *ct = json_object_get(usage, "completion_tokens");
        if (json_is_integer(pt) && json_is_integer(ct) && json_integer_value(pt) >= 0 && json_integer_value(ct) >= 0) {
            out->has_usage = 1;
            out->prompt_tokens = json_integer_value(pt);
            out->completion_tokens = json_integer_value(ct);
        }
        json_t *ej = json_object_get(usage, "energy_j");
        if (json_is_number(ej) && json_number_value(ej) >= 0) {
            out->has_energy = 1;
            out->energy_j = json_number_value(ej);
        }
    } else if (usage && !json_is_null(usage)) {
        set_msg(out, ETOK_CHUNK_NOT_CHUNK, "\"usage\" is not an object%s", NULL);
        goto done;
    }
    json_t *choices = json_object_get(root, "choices");
    if (!json_is_array(choices)) {
        if (out->has_usage && !choices) goto ok; /* a usage-only chunk */
        set_msg(out, ETOK_CHUNK_NOT_CHUNK, "no \"choices\" array%s", NULL);
        goto done;
    }
    if (json_array_size(choices) > 0) {
        json_t *c0 = json_array_get(choices, 0);
        if (!json_is_object(c0)) {
            set_msg(out, ETOK_CHUNK_NOT_CHUNK, "choices[0] is not an object%s", NULL);
            goto done;
        }
        json_t *text = NULL;
        json_t *delta = json_object_get(c0, "delta");
        json_t *message = json_object_get(c0, "message");
        if (json_is_object(delta)) text = json_object_get(delta, "content");
        else if (json_is_object(message)) text = json_object_get(message, "content");
        else if (json_object_get(c0, "text")) text = json_object_get(c0, "text");
        else {
            set_msg(out, ETOK_CHUNK_NOT_CHUNK, "choices[0] has no delta, message or text%s", NULL);
            goto done;
        }
        if (text && !json_is_null(text)) {
            if (!json_is_string(text)) {
                set_msg(out, ETOK_CHUNK_NOT_CHUNK, "choices[0] content is not a string%s", NULL);
                goto done;
            }
            size_t n = json_string_length(text);
            out->content = malloc(n + 1);
            if (out->content) {
                memcpy(out->content, json_string_value(text), n);
                out->content[n] = '\0';
                out->content_len = n;
                out->has_content = n > 0;
            }
        }
        const char *fr = json_string_value(json_object_get(c0, "finish_reason"));
        if (fr) snprintf(out->finish_reason, sizeof out->finish_reason, "%s", fr);
    }
ok:
    out->kind = ETOK_CHUNK_DATA;
done:
    json_decref(root);
}
