/* fuzz_evalset.c — libFuzzer target: any bytes given to the eval-set parser either load or fail
 * with a file:line message; every item of a set that loads is scored against the input
 * itself (checks never crash on any output text). Built with -DETOK_FUZZ=ON (make fuzz). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etok/evalset.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    etok_evalset s;
    etok_err err;
    if (etok_evalset_parse(&s, text, "fuzz", &err) == 0) {
        for (size_t i = 0; i < s.n_items; i++) {
            etok_eval_check(&s.items[i], text);
            etok_eval_check(&s.items[i], s.items[i].answer);
        }
        etok_evalset_free(&s);
    } else if (!strstr(err.msg, "fuzz")) {
        abort(); /* every error names its source */
    }
    double v;
    etok_eval_extract_number(text, &v);
    free(text);
    return 0;
}
