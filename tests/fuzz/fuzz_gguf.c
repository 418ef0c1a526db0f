/* fuzz_gguf.c — libFuzzer target for the GGUF reader: any byte string must parse or give an
 * error, never crash or read out of bounds (ASan + UBSan). When it parses, every accessor and
 * every tensor's data range is exercised too. Built with -DETOK_FUZZ=ON (make fuzz). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine/gguf.h"
#include "engine/quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* an exact-size heap copy so ASan sees any over-read */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    etok_err err;
    memset(&err, 0, sizeof err);
    etok_gguf *g = etok_gguf_open_buffer(buf, size, &err);
    if (g) {
        volatile uint64_t sink = 0;
        for (uint64_t i = 0; i < g->n_kv; i++) {
            const etok_gguf_kv *kv = &g->kvs[i];
            const char *s;
            size_t len;
            uint32_t u;
            int64_t i64;
            float f;
            int b;
            const char **strs;
            size_t *lens;
            uint64_t n;
            float *fa;
            int32_t *ia;
            if (etok_gguf_get_str(g, kv->key, &s, &len, &err) == 1 && len) sink += (uint8_t)s[len - 1];
            etok_gguf_get_u32(g, kv->key, &u, &err);
            etok_gguf_get_i64(g, kv->key, &i64, &err);
            etok_gguf_get_f32(g, kv->key, &f, &err);
            etok_gguf_get_bool(g, kv->key, &b, &err);
            if (etok_gguf_get_str_array(g, kv->key, &strs, &lens, &n, &err) == 1) {
                for (uint64_t k = 0; k < n; k++)
                    if (lens[k]) sink += (uint8_t)strs[k][lens[k] - 1];
                free(strs);
                free(lens);
            }
            if (etok_gguf_get_f32_array(g, kv->key, &fa, &n, &err) == 1) free(fa);
            if (etok_gguf_get_i32_array(g, kv->key, &ia, &n, &err) == 1) free(ia);
        }
        for (uint64_t i = 0; i < g->n_tensors; i++) {
            const etok_gguf_tensor *t = &g->tensors[i];
            if (t->n_bytes) sink += ((const uint8_t *)t->data)[0] + ((const uint8_t *)t->data)[t->n_bytes - 1];
            /* dequantise the first row when small */
            if (t->ne[0] <= 4096) {
                float row[4096];
                etok_dequantize_row(t->type, t->data, row, (int64_t)t->ne[0]);
                sink += (uint64_t)(row[0] != row[0]);
            }
        }
        (void)sink;
        etok_gguf_close(g);
    }
    free(buf);
    return 0;
}
