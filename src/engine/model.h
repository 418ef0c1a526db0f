/* model.h — internal to the engine: the loaded model (weights over the GGUF mapping,
 * hyper-parameters, tokenizer), the KV cache, the per-step scratch state, and the batched
 * forward pass. The public face is include/etok/engine.h.
 * Owns the transformer maths (model.c); does not own scheduling or sampling (engine.c,
 * sample.c) nor the kernels (quant.c). */
#ifndef ETOK_ENGINE_MODEL_H
#define ETOK_ENGINE_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/gguf.h"
#include "engine/quant.h"
#include "engine/threadpool.h"
#include "engine/hugemem.h"
#include "engine/tokenizer.h"
#include "etok/engine.h"

/* Where a matrix's rows are: in the file's layout (row r at r * row_bytes), or repacked at
 * load into one of etok's interleaved layouts (row r's bytes are not at r * row_bytes; read rows
 * through etok_mat_dequantize_row). Each repacked layout gives the file-layout kernels' bits. */
typedef enum {
    ETOK_LAYOUT_FILE = 0,
    ETOK_LAYOUT_Q4_0X8, /* Q4_0, 8 rows interleaved (quant_q4_0.c), llama.cpp's 8-row order */
    ETOK_LAYOUT_Q41X8,  /* Q4_1 / Q5_1, 8 rows interleaved (quant_q4_1.c) */
    ETOK_LAYOUT_Q8X4,   /* Q8_0, 4 rows interleaved (quant_q8_0.c) */
    ETOK_LAYOUT_Q50X8,  /* Q5_0, 8 rows interleaved (quant_q5_0x8.c) */
    ETOK_LAYOUT_IQ4NLX8, /* IQ4_NL, 8 rows interleaved (quant_iq4_nlx8.c) */
} etok_layout;

/* A weight matrix of n_out rows of n_in values (GGUF ne[0] = n_in, ne[1] = n_out). data holds
 * the rows in `layout`. src: where the rows are in the file's mapping (an identity for the
 * accounting; its pages may have been released). */
typedef struct {
    uint32_t type;
    int64_t n_in, n_out;
    size_t row_bytes;
    const uint8_t *data;
    const uint8_t *src;
    etok_layout layout;
} etok_mat;

/* Row r of a matrix as floats, whatever its layout. */
void etok_mat_dequantize_row(const etok_mat *m, int64_t r, float *out);

typedef struct {
    float *attn_norm, *ffn_norm; /* owned F32 copies (whatever the stored type) */
    /* Gemma 3 only (NULL otherwise): per-head RMSNorm of Q and K (head_dim values), and the
     * RMSNorms of the attention and FFN outputs before each residual add (d_model values) */
    float *q_norm, *k_norm, *post_attn_norm, *post_ffn_norm;
    /* biases added after the Q, K, V and output projections (Qwen2's QKV bias; NULL = none) */
    float *bq, *bk, *bv, *bo;
    /* Phi-3 stores Q|K|V as one attn_qkv matrix and gate|up as one ffn_up of 2 d_ff rows:
     * wq/wk/wv and w_gate/w_up are then row ranges (views) of those tensors */
    etok_mat wq, wk, wv, wo, w_gate, w_up, w_down;
    int window;                  /* the model's own sliding window for this layer; 0 = global */
    int rope_local;              /* 1: RoPE with the local base (rope_theta_scale_local) */
} etok_layer;

typedef enum { ETOK_ARCH_LLAMA, ETOK_ARCH_GEMMA3, ETOK_ARCH_QWEN2, ETOK_ARCH_QWEN3, ETOK_ARCH_PHI3 } etok_arch;
/* general.architecture values the engine runs (docs/ENGINE.md, "Architectures") */
#define ETOK_SUPPORTED_ARCHS "llama, gemma3, qwen2, qwen3, phi3"

struct etok_model {
    etok_gguf *gguf;
    etok_model_info info;
    float rms_eps;
    int rope_dims;
    etok_arch arch;
    float rope_theta_scale;     /* base^(-2/rope_dims) */
    float rope_theta_scale_local; /* Gemma 3's local layers: 10000^(-2/rope_dims) */
    float rope_freq_scale;      /* positions x this on global layers (linear RoPE scaling; 1 = none) */
    float *rope_ff;             /* rope_freqs.weight (Llama 3.1+): angle i / rope_ff[i], rope_dims/2 values; NULL = none */
    int rope_neox;              /* 1: rotate (x[i], x[i + rope_dims/2]) (NeoX); 0: adjacent pairs */
    int q_dim;                  /* n_heads * head_dim (= d_model for Llama; not for Gemma 3) */
    float embd_scale;           /* embedding rows x this (Gemma: sqrt(d_model); else 1) */
    float attn_scale;           /* softmax(q.k * attn_scale): 1/sqrt(key length) */
    float logit_softcap;        /* logits = c * tanh(logits / c) when > 0 */
    int ffn_gelu;               /* 1: GeGLU (gelu-tanh gate); 0: SwiGLU */
    int swa_window, swa_period; /* Gemma 3: window of the local layers; every swa_period-th layer is global.
                                   llama (Mistral) and phi3: every layer has the window (swa_period 0) */
    etok_mat tok_embd, output;  /* output aliases tok_embd when tied */
    float *output_norm;
    etok_layer *layers;
    etok_tokenizer *tok;
    double step_weight_bytes;   /* bytes of weights streamed by one forward step */
    uint8_t **owned;            /* re-encoded weight buffers (--weights), freed with the model */
    int n_owned;
    uint8_t **packed;           /* repacked copies (etok_mat.layout), freed with the model; NULL slots freed early */
    int n_packed, cap_packed;
    double packed_bytes;        /* bytes of matrices in a repacked layout (wherever the copies lie) */
    double released_bytes;
    etok_hugemem weights_mem;   /* every matrix a forward step streams, in the order it reads them
                                   (place_weights); empty with ETOK_HUGEPAGES=0 */
    double matmul_params;       /* parameters in per-token matmuls excluding the LM head */
};

/* KV cache: per slot, per layer, rows of kv_dim values, F32, F16 or Q8_0 (kv_bits 32, 16, 8).
 * Within a slot's layer the rows are stored KV head by KV head: head h's `rows` rows of
 * head_dim values (head_bytes each) follow head h-1's, so the attention of one KV head reads
 * one contiguous run of memory. (Interleaved, [position][KV head], a KV head's pass read 2 of
 * every 6 lines of SmolLM2's cache, and a decode step at depth 512 with the cache out of the
 * caches waited ~0.5 ms longer: docs/ENGINE.md, "Attention".)
 * Each layer has its own row count (layout[l]): position p lives in row p when p < sinks,
 * else in row sinks + (p - sinks) % ring (ring = rows - sinks). With rows >= the context every
 * position has its own row; with a sliding window (attn_window) the rows after the sinks are a
 * ring and the cache stops growing. A layer that attends through its own, narrower window
 * (Gemma 3's local layers) holds only that window plus one step's tokens of a sequence, as a
 * ring without sinks. */
typedef struct {
    int rows, sinks, ring;
    size_t first_row; /* the layer's first row within a slot */
} etok_kv_layout;

typedef struct {
    int n_slots, rows, kv_bits, n_layers, kv_dim;
    int sinks, ring;        /* the run's --attn-sinks and the ring of a full-size layer */
    uint32_t type;          /* ETOK_T_F32, ETOK_T_F16 or ETOK_T_Q8_0 */
    size_t row_bytes;       /* all KV heads of one position: n_kv_heads x head_bytes */
    size_t head_bytes;      /* one KV head's head_dim values */
    size_t slot_rows;       /* rows of one slot over all layers */
    etok_kv_layout *layout; /* [n_layers] */
    uint8_t *k, *v;         /* each `bytes` long: k_mem.base, v_mem.base */
    size_t bytes;
    etok_hugemem k_mem, v_mem; /* 2 MiB pages where granted (hugemem.h) */
} etok_kv_cache;

static inline int etok_kv_row_of(const etok_kv_cache *kv, int layer, int pos) {
    const etok_kv_layout *ly = &kv->layout[layer];
    return pos < ly->sinks ? pos : ly->sinks + (pos - ly->sinks) % ly->ring;
}

/* KV head kvh's head_dim values of position pos; the next row of the same head (the next
 * position, until the ring wraps) is head_bytes further. */
static inline uint8_t *etok_kv_row(const etok_kv_cache *kv, uint8_t *base, int slot, int layer, int pos, int kvh) {
    const etok_kv_layout *ly = &kv->layout[layer];
    const size_t region = ((size_t)slot * kv->slot_rows + ly->first_row) * kv->row_bytes;
    return base + region + ((size_t)kvh * (size_t)ly->rows + (size_t)etok_kv_row_of(kv, layer, pos)) * kv->head_bytes;
}

/* The window and sinks layer l attends with in a run with --attn-window attn_window and
 * --attn-sinks sinks (0: full): the layer's own window (Gemma 3's local layers) when it is
 * narrower than the run's, without sinks; else the run's. */
void etok_layer_attn_window(const etok_model *m, int layer, int attn_window, int sinks, int *win, int *win_sinks);

/* Positions attended by one token, summed over the layers, when it attends to t_eff positions
 * (its position + 1, or the run's window + sinks): layers with their own window (Gemma 3's
 * local ones) attend to at most that window. For the FLOP/byte accounting. */
double etok_model_attended_positions(const etok_model *m, int t_eff);

/* kv_bits 32, 16 or 8 (Q8_0: head_dim a multiple of 32); sinks < rows. attn_window and sinks
 * as etok_model_forward will be given; max_run: the most tokens of one sequence in a step
 * (a layer with its own window W holds min(rows, W + max_run) rows). */
int etok_kv_cache_init(etok_kv_cache *kv, const etok_model *m, int n_slots, int rows, int kv_bits, int sinks,
                       int attn_window, int max_run, etok_err *err);
void etok_kv_cache_free(etok_kv_cache *kv);

/* One forward step: n_tokens tokens, each with its sequence's KV slot and position. Tokens
 * of one slot must appear in position order and their positions must follow what is in the
 * cache. logit_row[i] >= 0 asks for token i's logits in row logit_row[i] of the output. */
typedef struct {
    int n_tokens;
    const int32_t *tokens;
    const int *pos;
    const int *slot;
    const int *logit_row;
    int n_logit_rows;
} etok_batch;

typedef struct etok_fwd_state etok_fwd_state;
etok_fwd_state *etok_fwd_state_new(const etok_model *m, int max_tokens, int n_threads, int ctx_len, etok_err *err);
void etok_fwd_state_free(etok_fwd_state *s);

/* Run the batch; writes n_logit_rows x vocab_size floats into logits. attn_window 0 = full;
 * else a token at position p attends to the positions [p + 1 - attn_window, p] and to the
 * sinks [0, kv->sinks) (every position while p < sinks + attn_window). The cache's ring must
 * hold attn_window + (tokens of one slot in the batch) - 1 rows. */
int etok_model_forward(const etok_model *m, etok_threadpool *pool, etok_kv_cache *kv, etok_fwd_state *st,
                       const etok_batch *b, int attn_window, float *logits, etok_err *err);

#endif
