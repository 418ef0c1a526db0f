/* engine.h — the built-in CPU inference engine for GGUF models (llama and gemma3 architectures).
 *
 * What the drivers (etok generate, etok bench, etok serve) see: load a model, tokenize and
 * apply its chat template, then run a continuously-batched engine: sequences join with a
 * prompt, every etok_engine_step() advances all active sequences by one forward pass
 * (prompt chunks for new sequences, one token for decoding ones), and sequences leave when
 * done. Each step reports its timestamps, token counts, FLOPs and bytes moved, for the
 * energy split. Internals (GGUF reader, block formats, kernels, tokenizer, forward pass)
 * have their own headers under src/engine/. */
#ifndef ETOK_ENGINE_H
#define ETOK_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "etok/util.h"

typedef struct etok_model etok_model;
typedef struct etok_engine etok_engine;

/* Shapes and provenance of a loaded model (for reports and FLOP/byte accounting). */
typedef struct {
    char name[128];          /* general.name */
    char arch[32];           /* general.architecture: "llama" or "gemma3" */
    /* head_dim: the key length (Gemma 3: attention.key_length, not d_model / n_heads) */
    int n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab_size, ctx_max;
    int tied_embeddings;
    double rope_freq_base;
    double n_params;         /* total parameters */
    double weight_bytes;     /* bytes of all weight tensors as stored (the real formats) */
    char weight_types[128];  /* e.g. "Q4_1 x 210, Q8_0 x 1, F32 x 61" */
    int bos_id, eos_id, eot_id; /* -1 when absent */
    /* the weights a forward step streams, copied at load into one buffer (bytes; 0 with
     * ETOK_HUGEPAGES=0), and how many of those bytes the kernel backed with 2 MiB pages */
    double weight_placed_bytes, weight_huge_bytes;
} etok_model_info;

/* Load and validate a GGUF file (mmap). A malformed file gives one clear error naming
 * what is wrong (ETOK_EXIT_INPUT); never a crash. */
etok_model *etok_model_load(const char *path, etok_err *err);
void etok_model_free(etok_model *m);
const etok_model_info *etok_model_get_info(const etok_model *m);

/* Weight format lever (--weights keep|f32|f16|q8_0|q4_0|q4_1|q5_0|q5_1): re-encode every weight matrix in
 * memory (dequantise each row, quantise into the format), so the bytes streamed per token
 * change while the model is otherwise the same. "keep" (or NULL) leaves the file's formats; a
 * matrix already in the asked format stays as stored; norm vectors are F32 either way. Call
 * once, right after loading; info (weight_bytes, weight_types) and the byte accounting follow.
 * Unknown format or rows not made of whole blocks: ETOK_EXIT_USAGE. */
int etok_weights_format_check(const char *format, etok_err *err);
int etok_model_set_weights(etok_model *m, const char *format, etok_err *err);

/* Tokenizer. Returns the number of tokens written (<= cap), or -1 with err set.
 * add_bos: prepend BOS when the model's metadata asks for it. parse_special: recognise
 * special-token text such as "<|im_start|>" — only for trusted text; user text (prompts,
 * messages) is tokenized with 0, which never yields a control token. */
int etok_tokenize(const etok_model *m, const char *text, int add_bos, int parse_special,
                  int32_t *out, int cap, etok_err *err);
/* The text piece of one token (bytes, not necessarily valid UTF-8 on its own). */
const char *etok_token_piece(const etok_model *m, int32_t token, size_t *len);
/* Detokenize a whole sequence into a malloc'd NUL-terminated string. */
char *etok_detokenize(const etok_model *m, const int32_t *tokens, int n);
/* Is this token an end-of-generation token (EOS, EOT, <|im_end|>, <|eot_id|>)? */
int etok_token_is_eog(const etok_model *m, int32_t token);
/* Apply the model's chat template (ChatML, Llama-3, ...) to one user message (optional
 * system message may be NULL), with the assistant turn opened. malloc'd string. */
char *etok_chat_format(const etok_model *m, const char *system, const char *user, etok_err *err);
/* The same for a conversation: n messages, roles[i] "system", "user" or "assistant" (any other
 * role: NULL with err naming messages[i].role), the assistant turn opened at the end. A ChatML
 * template's default system prompt (SmolLM2's) is inserted when messages[0] is not a system one. */
char *etok_chat_format_messages(const etok_model *m, const char *const *roles, const char *const *contents, int n,
                                etok_err *err);

/* Which chat format the two calls above and etok_tokenize_chat use ("ChatML", "Llama-3", "Gemma",
 * "Phi-3", "Phi-4", "Llama-2 [INST]", "unsupported"), and in *from_file (may be NULL) whether
 * the GGUF carries tokenizer.chat_template (1) or has none (0: the format was chosen from the
 * vocabulary; such a file is usually a base model, not an instruction-tuned one, and may not
 * answer in turns: docs/ENGINE.md, "Chat on a file without a template"). */
const char *etok_chat_template_name(const etok_model *m, int *from_file);

/* Tokenize a conversation through the chat template (roles/contents as for
 * etok_chat_format_messages): only the template's markers become control tokens, every
 * message's content is plain text (a "<|im_start|>assistant" typed by a user stays text).
 * Returns the number of tokens, which may exceed cap (then only cap were written: the
 * prompt does not fit), or -1 with err set. */
int etok_tokenize_chat(const etok_model *m, const char *const *roles, const char *const *contents, int n, int add_bos,
                       int32_t *out, int cap, etok_err *err);

/* Sampling: temperature 0 = greedy. */
typedef struct {
    float temperature;
    int top_k;        /* 0 = off */
    float top_p;      /* 1 = off */
    uint64_t seed;
} etok_sampling;

typedef struct {
    int n_threads;        /* 0 = number of online cores */
    int max_seqs;         /* concurrent sequences (batch slots), default 1 */
    int ctx_len;          /* KV cache length per sequence, 0 = min(model ctx, 2048) */
    int prefill_chunk;    /* prompt tokens per step per sequence, 0 = default (256) */
    int kv_bits;          /* KV cache format (--kv-type): 32 F32, 16 F16, 8 Q8_0 (8-bit blocks of 32
                             with an F16 scale, 8.5 bits a value; needs head_dim % 32 == 0);
                             0 = default (16) */
    int attn_window;      /* sliding attention window in tokens (--attn-window), 0 = full: a token
                             at position p attends to [p + 1 - attn_window, p] and the sinks */
    int attn_sinks;       /* the first attn_sinks positions stay attended (StreamingLLM sinks;
                             needs attn_window). With a window the KV cache holds sinks + window
                             + prefill_chunk rows per sequence and stops growing; a window and
                             sinks covering ctx_len are full attention. RoPE keeps absolute
                             positions (no re-indexing inside the cache). */
} etok_engine_opts;

etok_engine *etok_engine_new(etok_model *m, const etok_engine_opts *opts, etok_err *err);
void etok_engine_free(etok_engine *e);

/* Add a sequence with its prompt; returns a sequence id >= 0, or -1 (no free slot, prompt
 * longer than the context) with err set. max_new_tokens: stop after that many tokens;
 * generation also stops at an end-of-generation token. */
int etok_engine_add(etok_engine *e, const int32_t *prompt, int n_prompt, int max_new_tokens,
                    const etok_sampling *sampling, etok_err *err);
/* Let a sequence run past end-of-generation tokens (they are output like any token): exactly
 * max_new_tokens, as vLLM's ignore_eos (etok bench's random and prefix_repetition workloads). */
void etok_engine_set_ignore_eos(etok_engine *e, int seq_id, int on);
/* Remove a sequence (finished or cancelled) and free its slot. */
void etok_engine_remove(etok_engine *e, int seq_id);
int etok_engine_active(const etok_engine *e); /* number of sequences in the engine */

/* What one step did for one sequence. */
typedef struct {
    int seq_id;
    int prefill_tokens;   /* prompt tokens consumed by this step for this sequence */
    int new_token;        /* token generated this step, or -1 (still prefilling) */
    int finished;         /* 1: hit EOG or max_new_tokens; the new_token (if any) is its last */
    int finished_by_eog;  /* the stop was an end-of-generation token (which is not output) */
} etok_seq_event;

/* What one step did as a whole. */
typedef struct {
    double t_start_s, t_end_s; /* etok_mono_s() */
    int prefill_tokens, decode_tokens;
    double flops, bytes;       /* from the model's shapes, this step */
    int n_events;
    etok_seq_event *events;    /* owned by the engine, valid until the next step */
} etok_step_result;

/* Run one forward pass over every active sequence. Returns 0, or -1 with err set.
 * With no active sequence it returns 0 with n_events = 0 immediately. */
int etok_engine_step(etok_engine *e, etok_step_result *out, etok_err *err);

/* KV cache rows held per sequence (ctx_len, or less with a sliding window). */
int etok_engine_kv_rows(const etok_engine *e);

/* Logits of the last forward pass for a sequence (vocab_size floats), for tests. */
const float *etok_engine_logits(const etok_engine *e, int seq_id);

/* Modelled work per token at a context position (for MFU/MBU): FLOPs and weight+KV bytes. */
double etok_model_flops_per_token(const etok_model *m, int position);
double etok_model_weight_bytes(const etok_model *m);
double etok_model_kv_bytes_per_token(const etok_model *m, int kv_bits);

#endif
