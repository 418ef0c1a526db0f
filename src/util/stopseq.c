/* stopseq.c — stop strings: validity and search (see include/etok/stopseq.h). */
#include "etok/stopseq.h"

#include <string.h>

const char *etok_stop_refused(const char *s, size_t len) {
    if (len == 0) return "stop strings must not be empty";
    if (len > ETOK_STOP_MAX_BYTES) return "a stop string is over the limit of 256 bytes";
    if (memchr(s, '\0', len)) return "stop strings must not hold a NUL character";
    return NULL;
}

size_t etok_stop_find(char *const *stop, int n, const char *text, size_t from, size_t len) {
    size_t best = len;
    if (from >= len) return len;
    for (int k = 0; k < n; k++) {
        size_t m = strlen(stop[k]);
        const char *hit = memmem(text + from, len - from, stop[k], m);
        if (hit && (size_t)(hit - text) < best) best = (size_t)(hit - text);
    }
    return best;
}

size_t etok_stop_holdback(char *const *stop, int n, const char *text, size_t len) {
    size_t hold = 0;
    for (int k = 0; k < n; k++) {
        size_t m = strlen(stop[k]);
        /* the longest proper prefix of the stop string that the text ends with */
        for (size_t p = m - 1 < len ? m - 1 : len; p > hold; p--)
            if (!memcmp(text + len - p, stop[k], p)) {
                hold = p;
                break;
            }
    }
    return hold;
}

size_t etok_stop_scan(char *const *stop, int n, size_t max_len, const char *text, size_t len, size_t *scan) {
    if (n <= 0 || !text) return len;
    size_t at = etok_stop_find(stop, n, text, *scan, len);
    size_t keep = max_len > 0 ? max_len - 1 : 0;
    *scan = len > keep ? len - keep : 0;
    return at;
}
