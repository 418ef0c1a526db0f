/* fuzz_record.c — libFuzzer target: any bytes given to the run record loader either load or
 * fail with a message; a record that loads is analysed (no crash on any window or trace
 * shape) and survives a save/load round trip. Built with -DETOK_FUZZ=ON (make fuzz). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "etok/energy.h"
#include "etok/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    etok_record r;
    etok_err err;
    if (etok_record_from_json_text(&r, text, "fuzz", &err) == 0) {
        etok_energy_summary s;
        etok_energy_summarize(&r, &s);
        etok_energy_summary_free(&s);
        char *again = etok_record_to_json_text(&r);
        if (again) {
            etok_record r2;
            if (etok_record_from_json_text(&r2, again, "fuzz-again", &err) != 0) abort();
            etok_record_free(&r2);
            free(again);
        }
    }
    etok_record_free(&r);
    free(text);
    return 0;
}
