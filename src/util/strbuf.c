/* strbuf.c — the growing string of strbuf.h. Owns no state. */
#include "etok/strbuf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

void etok_strbuf_printf(etok_strbuf *b, const char *fmt, ...) {
    if (b->oom) return;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (k < 0) return;
    if (b->n + (size_t)k + 1 > b->cap) {
        size_t nc = (b->cap ? b->cap * 2 : 4096) + (size_t)k;
        char *ns = realloc(b->s, nc);
        if (!ns) {
            b->oom = 1;
            return;
        }
        b->s = ns;
        b->cap = nc;
    }
    va_start(ap, fmt);
    vsnprintf(b->s + b->n, b->cap - b->n, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

char *etok_strbuf_finish(etok_strbuf *b) {
    if (b->oom) {
        free(b->s);
        b->s = NULL;
        return NULL;
    }
    return b->s ? b->s : calloc(1, 1);
}
