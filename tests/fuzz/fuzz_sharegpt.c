/* fuzz_sharegpt.c — libFuzzer target: any bytes given to the ShareGPT reader either build items
 * or fail with a message naming the source; both length bases are exercised (the estimate and a
 * tokenizer stand-in, with a context limit that drops entries). Every item built has an id, a
 * prompt and an output budget in [1, 8192]. Built with -DETOK_FUZZ=ON (make fuzz). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etok/dataset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A deterministic stand-in for a tokenizer: one token per 3 bytes, at least 1. */
static int count_by_three(const char *text, void *arg) {
    (void)arg;
    size_t n = strlen(text) / 3 + 1;
    return n > 1000000 ? 1000000 : (int)n;
}

static void parse_once(const char *text, size_t size, int with_tokenizer) {
    etok_dataset_opts o;
    etok_dataset_opts_init(&o);
    o.kind = ETOK_DATASET_SHAREGPT;
    if (with_tokenizer) {
        o.count_tokens = count_by_three;
        o.max_total_len = 64;
    }
    etok_evalset s;
    etok_dataset_summary sum;
    etok_err err;
    memset(&s, 0, sizeof s);
    memset(&sum, 0, sizeof sum);
    if (etok_dataset_sharegpt_parse(&s, text, size, "fuzz", &o, &sum, &err) == 0) {
        if (s.n_items == 0 || (size_t)sum.n_entries < s.n_items) abort();
        for (size_t i = 0; i < s.n_items; i++) {
            const etok_eval_item *it = &s.items[i];
            if (!it->id || strncmp(it->id, "sharegpt:", 9) || !it->prompt || !it->prompt[0]) abort();
            if (it->max_tokens < 1 || it->max_tokens > 8192) abort();
        }
    } else if (!strstr(err.msg, "fuzz")) {
        abort(); /* every error names its source */
    }
    etok_evalset_free(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    parse_once(text, size, 0);
    parse_once(text, size, 1);
    free(text);
    return 0;
}
