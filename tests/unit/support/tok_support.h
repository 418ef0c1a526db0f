/* tok_support.h — test-side helpers for the tokenizer tests: build an etok_tokenizer from a
 * GGUF file's tokenizer.ggml.* metadata (read by tokenizer_gguf.c, as model.c does for the
 * engine), and locate the default model. */
#ifndef ETOK_TEST_TOK_SUPPORT_H
#define ETOK_TEST_TOK_SUPPORT_H

#include "engine/tokenizer.h"

/* Path of the default model if the file exists (ETOK_MODEL overrides), else NULL. */
const char *tok_test_model_path(void);
/* Load the tokenizer of a GGUF file; NULL with err set. */
etok_tokenizer *tok_test_load(const char *path, etok_err *err);
/* A tokenizer derived from the file's vocabulary exactly as scripts/gen_variant_reference.py
 * derives its vocab-only GGUFs: variant "llama-bpe" or "gpt-2" (same vocabulary and merges,
 * another pre-tokenizer, no BOS) or "spm" (a SentencePiece vocabulary: <unk> <s> </s>, 256
 * <0xNN> byte tokens, then the normal tokens with "Ġ" replaced by "▁", score -index). */
etok_tokenizer *tok_test_load_variant(const char *path, const char *variant, etok_err *err);

#endif
