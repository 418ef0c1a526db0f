/* tokenizer_gguf.c — see tokenizer_gguf.h. Owns which GGUF keys make up a tokenizer and their
 * checks; not the tokenizer itself (tokenizer.c). */
#include "engine/tokenizer_gguf.h"

#include <stdlib.h>
#include <string.h>

void etok_gguf_tokenizer_spec_free(etok_gguf_tokenizer_spec *s) {
    if (!s) return;
    free(s->model);
    free(s->pre);
    free(s->chat_template);
    free(s->tokens);
    free(s->token_lens);
    free(s->merges);
    free(s->merge_lens);
    free(s->scores);
    free(s->token_types);
    memset(s, 0, sizeof *s);
}

int etok_gguf_tokenizer_spec_read(const etok_gguf *g, etok_gguf_tokenizer_spec *out, etok_err *err) {
    memset(out, 0, sizeof *out);
    etok_tokenizer_spec *sp = &out->spec;
    uint64_t n_tok = 0, n_merge = 0, n_scores = 0, n_types = 0;
    if (etok_gguf_get_strdup(g, "tokenizer.ggml.model", &out->model, err) < 0) goto fail;
    if (!out->model) {
        etok_errc(err, ETOK_EXIT_INPUT, "GGUF: key 'tokenizer.ggml.model' is missing");
        goto fail;
    }
    if (etok_gguf_get_strdup(g, "tokenizer.ggml.pre", &out->pre, err) < 0) goto fail;
    if (etok_gguf_get_strdup(g, "tokenizer.chat_template", &out->chat_template, err) < 0) goto fail;
    if (etok_gguf_get_str_array(g, "tokenizer.ggml.tokens", &out->tokens, &out->token_lens, &n_tok, err) <= 0) {
        if (!out->tokens)
            etok_errc(err, ETOK_EXIT_INPUT, "GGUF: array 'tokenizer.ggml.tokens' is missing or invalid");
        goto fail;
    }
    if (etok_gguf_get_str_array(g, "tokenizer.ggml.merges", &out->merges, &out->merge_lens, &n_merge, err) < 0)
        goto fail;
    if (etok_gguf_get_f32_array(g, "tokenizer.ggml.scores", &out->scores, &n_scores, err) < 0) goto fail;
    if (etok_gguf_get_i32_array(g, "tokenizer.ggml.token_type", &out->token_types, &n_types, err) < 0) goto fail;
    if ((out->scores && n_scores != n_tok) || (out->token_types && n_types != n_tok)) {
        etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tokenizer arrays disagree on the vocabulary size (%llu tokens)",
                  (unsigned long long)n_tok);
        goto fail;
    }
    if (n_tok > (1u << 24) || n_merge > (1u << 24)) {
        etok_errc(err, ETOK_EXIT_INPUT, "GGUF: tokenizer vocabulary too large");
        goto fail;
    }
    sp->model = out->model;
    sp->pre = out->pre;
    sp->n_vocab = (int)n_tok;
    sp->tokens = out->tokens;
    sp->token_lens = out->token_lens;
    sp->scores = out->scores;
    sp->token_types = out->token_types;
    sp->n_merges = (int)n_merge;
    sp->merges = out->merges;
    sp->merge_lens = out->merge_lens;
    sp->chat_template = out->chat_template;
    struct {
        const char *key;
        int *dst;
    } ids[] = {{"tokenizer.ggml.bos_token_id", &sp->bos_id},     {"tokenizer.ggml.eos_token_id", &sp->eos_id},
               {"tokenizer.ggml.eot_token_id", &sp->eot_id},     {"tokenizer.ggml.unknown_token_id", &sp->unk_id},
               {"tokenizer.ggml.padding_token_id", &sp->pad_id}};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        uint32_t v;
        int r = etok_gguf_get_u32(g, ids[i].key, &v, err);
        if (r < 0) goto fail;
        *ids[i].dst = -1;
        if (r == 1) {
            if (v >= n_tok) {
                etok_errc(err, ETOK_EXIT_INPUT, "GGUF: %s = %u is outside the vocabulary (%llu)", ids[i].key, v,
                          (unsigned long long)n_tok);
                goto fail;
            }
            *ids[i].dst = (int)v;
        }
    }
    int r;
    if ((r = etok_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &sp->add_bos, err)) < 0) goto fail;
    if (r == 0) sp->add_bos = -1;
    if ((r = etok_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", &sp->add_eos, err)) < 0) goto fail;
    if (r == 0) sp->add_eos = -1;
    int asp = 1;
    if (etok_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &asp, err) < 0) goto fail;
    sp->no_space_prefix = !asp;
    return 0;
fail:
    etok_gguf_tokenizer_spec_free(out);
    return -1;
}
