/* attn.h — internal to the engine: causal grouped-query attention of one step's tokens over
 * the KV cache, for one layer (attn.c). model.c's forward pass calls it between the Q/K/V
 * projections (K and V already written into the cache) and the output projection. */
#ifndef ETOK_ENGINE_ATTN_H
#define ETOK_ENGINE_ATTN_H

#include <stddef.h>

#include "engine/model.h"

/* Query heads one work unit serves at most (per-thread score rows). */
#define ETOK_ATTN_MAX_GROUP 8

typedef struct {
    const etok_kv_cache *kv;
    const etok_batch *b;
    int layer;
    int window, sinks;      /* window 0: every position; sinks: leading positions always attended */
    int n_heads, n_kv_heads, head_dim, q_dim;
    float scale;            /* softmax(q.k * scale) */
    const float *q;         /* [T][q_dim], after RoPE */
    float *att;             /* [T][q_dim] out */
    float *scores;          /* [n_threads][etok_attn_scratch_floats()] */
    size_t scores_per_thread;
} etok_attn_args;

/* Floats of score scratch one thread needs for contexts of up to ctx_len positions. */
size_t etok_attn_scratch_floats(int n_heads, int n_kv_heads, int ctx_len);

/* att = softmax(q K^T * scale) V for every token and head of the batch. Work units are
 * (token, KV head, group of its query heads), claimed by the pool's threads: each cached K/V
 * row is read and converted once per unit, not once per query head. The result does not
 * depend on the thread count or on how heads are grouped into units. */
void etok_attention(etok_threadpool *pool, const etok_attn_args *a);

#endif
