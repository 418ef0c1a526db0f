/* synth_gguf.h — writes tiny synthetic Llama GGUF files for tests: random weights (seeded),
 * a few layers, a tiny GPT-2-style byte-level vocabulary (256 byte tokens, a few merges,
 * <|endoftext|> <|im_start|> <|im_end|>, ChatML template) that the tokenizer loads, and any
 * tensor types. Used by the engine, bench and serve tests so unit tests never need the real
 * model. Also a small helper to build GGUF byte buffers by hand for malformed-file tests. */
#ifndef ETOK_TEST_SYNTH_GGUF_H
#define ETOK_TEST_SYNTH_GGUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int n_layers;          /* default 2 */
    int d_model;           /* default 64 (use a multiple of 256 with K-quant types) */
    int n_heads;           /* default 4 */
    int n_kv_heads;        /* default 2 */
    int d_ff;              /* default 128 */
    int ctx_len;           /* llama.context_length, default 256 */
    uint32_t weight_type;  /* layer matrices, default Q4_1 (ETOK_T_*) */
    uint32_t embd_type;    /* token_embd, default Q8_0 */
    uint32_t output_type;  /* output.weight when not tied, default Q6_K if d_model % 256 == 0 else Q8_0 */
    int output_f32;        /* 1: output.weight in F32 (ETOK_T_F32 is 0, which output_type reads as the default) */
    int tied;              /* 1 (default): no output.weight, the embedding is the LM head */
    int mixed_types;       /* 1: cycle the layer matrices through every supported type (needs
                              d_model and d_ff multiples of 256) */
    const uint32_t *type_cycle; /* when set (and not mixed_types): the layer matrices take these
                              types in turn, in the order attn_q, attn_k, attn_v, attn_output,
                              ffn_gate, ffn_up, ffn_down of layer 0, then layer 1, ... (a
                              llama-quantize mix such as Q4_K_M) */
    int n_type_cycle;
    float rope_freq_base;  /* default 10000; <= 0 leaves the key out (unless raw_hparams) */
    float rms_eps;         /* llama.attention.layer_norm_rms_epsilon, default 1e-5 */
    int raw_hparams;       /* 1: write rope_freq_base even when <= 0 or NaN (validation tests) */
    uint32_t vocab_size_key; /* llama.vocab_size written; 0 (default) = the real vocabulary size */
    int pad_vocab;         /* extra control tokens <|pad_0|>, ... after the vocabulary (an embedding
                              table of a chosen row count, e.g. a multiple of 8); default 0 */
    float weight_scale;    /* std-ish of random weights, default 0.08 */
    uint64_t seed;         /* default 1 */
    uint32_t alignment;    /* 0 = default 32 (key omitted); else written as general.alignment */
    /* other architectures: keys are "<arch>.*" */
    const char *arch;      /* general.architecture, NULL = "llama"; "gemma3" adds Gemma 3's tensors
                              (attn_q_norm, attn_k_norm, post_attention_norm, post_ffw_norm);
                              "qwen2" the Q/K/V biases (attn_q.bias, ...); "qwen3" attn_q_norm and
                              attn_k_norm; "phi3" writes attn_qkv (Q|K|V rows) and ffn_up of
                              2 d_ff rows (gate|up) instead of attn_q/k/v and ffn_gate/ffn_up */
    int key_length;        /* <arch>.attention.key_length (head dim), 0 = key omitted (d / heads) */
    int sliding_window;    /* <arch>.attention.sliding_window, 0 = key omitted */
    int swa_pattern;       /* <arch>.attention.sliding_window_pattern, 0 = key omitted */
    float post_norm_gain;  /* gemma3: post-attention norm weights x this, 0 = 1 */
    float post_ffw_gain;   /* gemma3: post-FFN norm weights x this, 0 = 1 */
    const char *omit_tensor; /* a tensor name not to write (missing-tensor tests), NULL = none */
    const char *extra_tensor; /* an F32 vector 1, 2, ..., head_dim / 2 written after the others
                                 (rope_freqs.weight, rope_factors_long.weight), NULL = none */
} etok_tiny_gguf_opts;

/* Defaults as documented above. */
void etok_tiny_gguf_defaults(etok_tiny_gguf_opts *o);

/* Number of tokens in the tiny vocabulary (ids: 0 <|endoftext|>, 1 <|im_start|>,
 * 2 <|im_end|> = EOS, then 256 byte tokens, then merged tokens). */
int etok_tiny_gguf_vocab_size(void);

/* Write the file; opts NULL = defaults. Returns 0, or -1 (errno set / message on stderr). */
int etok_test_write_tiny_gguf(const char *path, const etok_tiny_gguf_opts *opts);

/* A growable byte buffer with GGUF primitive writers (for hand-built malformed files). */
typedef struct {
    uint8_t *p;
    size_t n, cap;
} etok_gbuf;
void etok_gbuf_u32(etok_gbuf *b, uint32_t v);
void etok_gbuf_u64(etok_gbuf *b, uint64_t v);
void etok_gbuf_bytes(etok_gbuf *b, const void *p, size_t n);
void etok_gbuf_str(etok_gbuf *b, const char *s);
void etok_gbuf_pad(etok_gbuf *b, size_t align);
void etok_gbuf_free(etok_gbuf *b);

#endif
