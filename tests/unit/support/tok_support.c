/* tok_support.c — see tok_support.h. */
#include "tok_support.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/gguf.h"

const char *tok_test_model_path(void) {
    const char *env = getenv("ETOK_MODEL");
    const char *path = (env && *env) ? env : ETOK_SOURCE_DIR "/models/SmolLM2-135M-Instruct.Q4_1.gguf";
    return access(path, R_OK) == 0 ? path : NULL;
}

static int get_id(const etok_gguf *g, const char *key, int *out, etok_err *err) {
    uint32_t v;
    int rc = etok_gguf_get_u32(g, key, &v, err);
    if (rc < 0) return -1;
    *out = rc == 1 ? (int)v : -1;
    return 0;
}

etok_tokenizer *tok_test_load(const char *path, etok_err *err) {
    etok_gguf *g = etok_gguf_open(path, err);
    if (!g) return NULL;
    etok_tokenizer *t = NULL;
    etok_tokenizer_spec spec;
    memset(&spec, 0, sizeof spec);
    char *model = NULL, *pre = NULL, *tmpl = NULL;
    const char **tokens = NULL, **merges = NULL;
    size_t *token_lens = NULL, *merge_lens = NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    uint64_t n_tok = 0, n_merges = 0, n = 0;
    if (etok_gguf_get_strdup(g, "tokenizer.ggml.model", &model, err) < 0 ||
        etok_gguf_get_strdup(g, "tokenizer.ggml.pre", &pre, err) < 0 ||
        etok_gguf_get_strdup(g, "tokenizer.chat_template", &tmpl, err) < 0 ||
        etok_gguf_get_str_array(g, "tokenizer.ggml.tokens", &tokens, &token_lens, &n_tok, err) < 0 ||
        etok_gguf_get_str_array(g, "tokenizer.ggml.merges", &merges, &merge_lens, &n_merges, err) < 0 ||
        etok_gguf_get_f32_array(g, "tokenizer.ggml.scores", &scores, &n, err) < 0 ||
        etok_gguf_get_i32_array(g, "tokenizer.ggml.token_type", &types, &n, err) < 0)
        goto done;
    spec.model = model;
    spec.pre = pre;
    spec.n_vocab = (int)n_tok;
    spec.tokens = tokens;
    spec.token_lens = token_lens;
    spec.scores = scores;
    spec.token_types = types;
    spec.n_merges = (int)n_merges;
    spec.merges = merges;
    spec.merge_lens = merge_lens;
    spec.chat_template = tmpl;
    if (get_id(g, "tokenizer.ggml.bos_token_id", &spec.bos_id, err) < 0 ||
        get_id(g, "tokenizer.ggml.eos_token_id", &spec.eos_id, err) < 0 ||
        get_id(g, "tokenizer.ggml.eot_token_id", &spec.eot_id, err) < 0 ||
        get_id(g, "tokenizer.ggml.unknown_token_id", &spec.unk_id, err) < 0 ||
        get_id(g, "tokenizer.ggml.padding_token_id", &spec.pad_id, err) < 0)
        goto done;
    int b;
    int rc = etok_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b, err);
    if (rc < 0) goto done;
    spec.add_bos = rc == 1 ? b : -1;
    rc = etok_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &b, err);
    if (rc < 0) goto done;
    spec.add_eos = rc == 1 ? b : -1;
    t = etok_tokenizer_new(&spec, err);
done:
    free(model);
    free(pre);
    free(tmpl);
    free(tokens);
    free(token_lens);
    free(merges);
    free(merge_lens);
    free(scores);
    free(types);
    etok_gguf_close(g);
    return t;
}
