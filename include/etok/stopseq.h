/* stopseq.h — stop strings (OpenAI "stop"): the rules for one stop string and the search in
 * generated text, shared by `etok serve` (src/serve/request.c, server.c) and `etok bench`'s eval
 * items (src/drive/evalset.c, bench.c), so that both cut text the same way. Pure string
 * functions, no allocation. A stop string may span tokens: the caller appends each token's text
 * and scans incrementally; the text ends where the earliest stop string starts (the stop string
 * and whatever followed it in the same token are not output). */
#ifndef ETOK_STOPSEQ_H
#define ETOK_STOPSEQ_H

#include <stddef.h>

#define ETOK_STOP_MAX 4         /* a string or up to 4 (OpenAI's limit) */
#define ETOK_STOP_MAX_BYTES 256 /* each stop string, bytes */

/* Why the stop string s[0, len) is refused (empty, over ETOK_STOP_MAX_BYTES, holds a NUL), or
 * NULL when it is fine. */
const char *etok_stop_refused(const char *s, size_t len);

/* Where in text[0, len) the earliest of the n stop strings that starts at or after `from`
 * starts, or len when none does. */
size_t etok_stop_find(char *const *stop, int n, const char *text, size_t from, size_t len);

/* How many trailing bytes of text[0, len) could begin a stop string that more text would
 * complete (a stream holds them back); 0 without stop strings. */
size_t etok_stop_holdback(char *const *stop, int n, const char *text, size_t len);

/* Incremental search after new text was appended: searches text[*scan, len) (the caller starts
 * *scan at 0) and moves *scan to len - (max_len - 1), so that each byte is searched about once and
 * a stop string spanning tokens is found once its last byte arrives. max_len: the longest stop
 * string's length. Returns where the text must end (the earliest stop string's start), or len. */
size_t etok_stop_scan(char *const *stop, int n, size_t max_len, const char *text, size_t len, size_t *scan);

#endif
