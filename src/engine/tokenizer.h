/* tokenizer.h — text <-> token ids from a GGUF model's metadata, and its chat template.
 * Internal to the engine: built by model.c from the GGUF arrays (tokenizer.ggml.*, read by
 * tokenizer_gguf.c), wrapped by the public etok_tokenize()/etok_detokenize()/etok_chat_format()
 * of engine.h. */
#ifndef ETOK_ENGINE_TOKENIZER_H
#define ETOK_ENGINE_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "etok/util.h"

typedef struct etok_tokenizer etok_tokenizer;

/* Everything the tokenizer needs, borrowed from the GGUF file (copied by etok_tokenizer_new). */
typedef struct {
    const char *model;              /* tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece) */
    const char *pre;                /* tokenizer.ggml.pre, e.g. "smollm", "llama-bpe", "default"; may be NULL */
    int n_vocab;
    const char *const *tokens;      /* tokenizer.ggml.tokens */
    const size_t *token_lens;
    const float *scores;            /* tokenizer.ggml.scores, may be NULL */
    const int32_t *token_types;     /* tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte), may be NULL */
    int n_merges;
    const char *const *merges;      /* tokenizer.ggml.merges ("a b"), may be NULL for llama */
    const size_t *merge_lens;
    int bos_id, eos_id, eot_id, unk_id, pad_id; /* -1 when absent */
    int add_bos, add_eos;           /* tokenizer.ggml.add_bos_token / add_eos_token, -1 when absent */
    int no_space_prefix;            /* 1: tokenizer.ggml.add_space_prefix is false (Gemma); 0: absent or true (SPM adds it) */
    const char *chat_template;      /* tokenizer.chat_template, may be NULL */
} etok_tokenizer_spec;

etok_tokenizer *etok_tokenizer_new(const etok_tokenizer_spec *spec, etok_err *err);
void etok_tokenizer_free(etok_tokenizer *t);

/* Returns the number of tokens (may exceed cap: then only cap were written and the caller
 * retries with a larger buffer), or -1 with err set. parse_special 0: the text is plain text;
 * only user-defined tokens that structure nothing are matched (never a control token, an
 * end-of-generation/BOS/EOS token or a chat-template marker). 1: any special token's text. */
int etok_tokenizer_encode(const etok_tokenizer *t, const char *text, int add_bos, int parse_special,
                          int32_t *out, int cap, etok_err *err);
const char *etok_tokenizer_piece(const etok_tokenizer *t, int32_t id, size_t *len); /* decoded bytes */
char *etok_tokenizer_decode(const etok_tokenizer *t, const int32_t *ids, int n);
int etok_tokenizer_is_eog(const etok_tokenizer *t, int32_t id);
int etok_tokenizer_n_vocab(const etok_tokenizer *t);
int etok_tokenizer_bos(const etok_tokenizer *t); /* -1 when absent or add_bos is off */
/* Chat template (ChatML as SmolLM2 and Qwen use, Llama-3, Gemma, Phi-3, Phi-4; detected from
 * chat_template text as llama.cpp does; any other template: ETOK_EXIT_INPUT naming these; when
 * absent, Gemma if the vocabulary has <start_of_turn> and <end_of_turn>, else ChatML) applied to n messages (roles "system", "user" or "assistant"; any
 * other role is an ETOK_EXIT_INPUT error naming messages[i].role), assistant turn opened.
 * ChatML inserts the template's default system prompt (SmolLM2's) when messages[0] is not a
 * system message; Llama-3 trims each content, as its template does. Gemma has no system role:
 * a system message's (trimmed) content and "\n\n" are prepended to the next turn (alone, a
 * user turn); contents are trimmed; "assistant" is the "model" turn. malloc'd. */
char *etok_tokenizer_chat_messages(const etok_tokenizer *t, const char *const *roles, const char *const *contents,
                                   int n, etok_err *err);
/* Tokenize the same conversation: each marker the template inserts ("<|im_start|>", ...) is its
 * control token; roles, the default system prompt and every message's content are plain text
 * (special-token text inside a message stays text: a user cannot forge a turn). The ids equal
 * etok_tokenizer_encode(etok_tokenizer_chat_messages(...), parse_special = 1) whenever no
 * content holds special-token text. Returns the count (may exceed cap, as encode) or -1. */
int etok_tokenizer_encode_chat(const etok_tokenizer *t, const char *const *roles, const char *const *contents, int n,
                               int add_bos, int32_t *out, int cap, etok_err *err);
/* The chat format's name ("ChatML", "Llama-3", "Gemma", "Phi-3", "Phi-4", "Llama-2 [INST]",
 * "unsupported"); *from_file (when not NULL): 1 when it was read from tokenizer.chat_template, 0
 * when the file has none and it was chosen from the vocabulary (see above). */
const char *etok_tokenizer_chat_name(const etok_tokenizer *t, int *from_file);
/* The same for one optional system message (NULL: none) and one user message. */
char *etok_tokenizer_chat(const etok_tokenizer *t, const char *system, const char *user, etok_err *err);

#endif
