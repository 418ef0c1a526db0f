/* tokenizer_gguf.h — the tokenizer spec of a GGUF file: its tokenizer.ggml.* and
 * tokenizer.chat_template metadata gathered into an etok_tokenizer_spec.
 * Used by model.c to build the engine's tokenizer and by the tokenizer tests (which derive
 * variant vocabularies from the same spec). Does not own tokenizing (tokenizer.c) or parsing
 * the file (gguf.c). */
#ifndef ETOK_ENGINE_TOKENIZER_GGUF_H
#define ETOK_ENGINE_TOKENIZER_GGUF_H

#include <stdint.h>

#include "engine/gguf.h"
#include "engine/tokenizer.h"

/* The spec and the buffers it points into. Token and merge texts point into the GGUF's mapping,
 * so the file must stay open while spec is used (etok_tokenizer_new copies what it keeps). */
typedef struct {
    etok_tokenizer_spec spec;
    char *model, *pre, *chat_template;
    const char **tokens, **merges;
    size_t *token_lens, *merge_lens;
    float *scores;
    int32_t *token_types;
} etok_gguf_tokenizer_spec;

/* Read and check the metadata (token arrays agree on the vocabulary size, special ids inside
 * it). 0, or -1 with err set (ETOK_EXIT_INPUT naming the key); *out is released either way on
 * failure, and must be released with etok_gguf_tokenizer_spec_free on success. */
int etok_gguf_tokenizer_spec_read(const etok_gguf *g, etok_gguf_tokenizer_spec *out, etok_err *err);
void etok_gguf_tokenizer_spec_free(etok_gguf_tokenizer_spec *s);

#endif
