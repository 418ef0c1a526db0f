/* tok_support.c — see tok_support.h. */
#include "tok_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/tokenizer_gguf.h"

const char *tok_test_model_path(void) {
    const char *env = getenv("ETOK_MODEL");
    const char *path = (env && *env) ? env : ETOK_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    return access(path, R_OK) == 0 ? path : NULL;
}

static etok_tokenizer *spm_variant(const etok_tokenizer_spec *src, etok_err *err) {
    size_t cap = (size_t)src->n_vocab + 259;
    char **tok = calloc(cap, sizeof *tok);
    size_t *len = calloc(cap, sizeof *len);
    float *score = calloc(cap, sizeof *score);
    int32_t *type = calloc(cap, sizeof *type);
    etok_tokenizer *t = NULL;
    size_t n = 0;
    if (!tok || !len || !score || !type) goto done;
    static const char *const head[3] = {"<unk>", "<s>", "</s>"};
    for (int i = 0; i < 3; i++) {
        tok[n] = strdup(head[i]);
        type[n++] = i == 0 ? 2 : 3;
    }
    for (int b = 0; b < 256; b++) {
        tok[n] = malloc(8);
        if (tok[n]) snprintf(tok[n], 8, "<0x%02X>", b);
        type[n++] = 6;
    }
    for (int i = 0; i < src->n_vocab; i++) {
        if (src->token_types && src->token_types[i] != 1) continue;
        const char *s = src->tokens[i];
        size_t sl = src->token_lens[i];
        char *o = malloc(sl * 2 + 1);
        if (!o) goto done;
        size_t k = 0;
        for (size_t j = 0; j < sl; j++) {
            if (j + 1 < sl && (unsigned char)s[j] == 0xC4 && (unsigned char)s[j + 1] == 0xA0) { /* "Ġ" */
                memcpy(o + k, "\xE2\x96\x81", 3);                                               /* "▁" */
                k += 3;
                j++;
            } else {
                o[k++] = s[j];
            }
        }
        o[k] = '\0';
        tok[n] = o;
        len[n] = k;
        type[n++] = 1;
    }
    for (size_t i = 0; i < n; i++) {
        if (!tok[i]) goto done;
        if (i < 259) len[i] = strlen(tok[i]);
        score[i] = -(float)i;
    }
    etok_tokenizer_spec spec;
    memset(&spec, 0, sizeof spec);
    spec.model = "llama";
    spec.n_vocab = (int)n;
    spec.tokens = (const char *const *)tok;
    spec.token_lens = len;
    spec.scores = score;
    spec.token_types = type;
    spec.bos_id = 1;
    spec.eos_id = 2;
    spec.unk_id = 0;
    spec.eot_id = spec.pad_id = -1;
    spec.add_bos = spec.add_eos = -1;
    t = etok_tokenizer_new(&spec, err);
done:
    if (!t && !err->msg[0]) etok_errf(err, "spm variant: out of memory");
    for (size_t i = 0; tok && i < n; i++) free(tok[i]);
    free(tok);
    free(len);
    free(score);
    free(type);
    return t;
}

/* variant: NULL for the file as it is. */
static etok_tokenizer *load(const char *path, const char *variant, etok_err *err) {
    etok_gguf *g = etok_gguf_open(path, err);
    if (!g) return NULL;
    etok_tokenizer *t = NULL;
    etok_gguf_tokenizer_spec gs;
    if (etok_gguf_tokenizer_spec_read(g, &gs, err) == 0) {
        etok_tokenizer_spec spec = gs.spec;
        if (!variant) {
            t = etok_tokenizer_new(&spec, err);
        } else if (strcmp(variant, "spm") != 0) {
            spec.pre = variant;
            spec.add_bos = 0;
            spec.eot_id = spec.unk_id = spec.pad_id = -1;
            spec.chat_template = NULL;
            t = etok_tokenizer_new(&spec, err);
        } else {
            t = spm_variant(&spec, err);
        }
        etok_gguf_tokenizer_spec_free(&gs);
    }
    etok_gguf_close(g);
    return t;
}

etok_tokenizer *tok_test_load(const char *path, etok_err *err) { return load(path, NULL, err); }

etok_tokenizer *tok_test_load_variant(const char *path, const char *variant, etok_err *err) {
    return load(path, variant, err);
}
