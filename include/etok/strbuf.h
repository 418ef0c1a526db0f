/* strbuf.h — a growing string that renderers print into. An allocation failure is sticky
 * (oom), so a renderer prints on and checks once at the end. */
#ifndef ETOK_STRBUF_H
#define ETOK_STRBUF_H

#include <stddef.h>

typedef struct {
    char *s; /* NUL-terminated once anything was printed; NULL before */
    size_t n, cap;
    int oom;
} etok_strbuf;

/* printf onto the end of b. */
void etok_strbuf_printf(etok_strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The text (the caller frees it), "" when nothing was printed; NULL (b freed) after an
 * allocation failure. */
char *etok_strbuf_finish(etok_strbuf *b);

#endif
