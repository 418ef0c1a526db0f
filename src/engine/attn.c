/* attn.c — causal grouped-query attention over the KV cache (attn.h).
 *
 * Owns: which cached positions a token attends to (its span: sinks, then the window, split
 * where the ring wraps), the scores, the softmax and the weighted sum over V, for all query
 * heads of one KV head at once (GQA: the group's cached rows are read and converted once).
 * Does not own the cache layout (model.h: etok_kv_row) nor the kernels (quant.c, quant_avx2.c).
 * Numerics are those of the one-head-at-a-time loop it replaced, bit for bit: with an F16
 * cache q is rounded to F16 and the softmax weights too (as llama.cpp), the softmax's exp()
 * and sum are llama.cpp's (vmath.h), V is summed in 8 position lanes reduced pairwise
 * (tinyBLAS's 8-wide FMA order) for a batch, and a one-token step with an F16 cache sums K.q
 * and w.V as ggml_vec_dot_f16 does (vmath.h; the group's rows converted once, each head's
 * accumulators in the per-head order). A Q8_0 cache: q quantised to 8-bit blocks and each
 * score with the bits of llama.cpp's ggml_vec_dot_q8_0_q8_0 (AVX2), the group's scores in one
 * kernel (vmath.h: etok_attn_scores_q8_0); V summed with one FMA per value and head, x = d q
 * exact, acc = fma(x, w, acc) (etok_attn_accum_q8_0: the peer's term arithmetic, not its
 * online-softmax order); K and V written as the peer writes its q8_0 cache (model.c,
 * etok_quantize_kv_q8_0).
 * A span in several runs (sinks, a wrapped ring) sums into the same lanes, so its result does
 * not depend on where the ring wraps (before, each run was reduced and the runs added). */
#include "engine/attn.h"
#include "engine/vmath.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

size_t etok_attn_scratch_floats(int n_heads, int n_kv_heads, int ctx_len) {
    int g = n_heads / n_kv_heads;
    if (g > ETOK_ATTN_MAX_GROUP) g = ETOK_ATTN_MAX_GROUP;
    return (size_t)g * (size_t)ctx_len;
}

/* The cached positions one token attends to, as at most three runs of consecutive rows: the
 * sinks, then the window, split where it wraps around the ring. */
typedef struct {
    int n_seg;
    int first_pos[3], n[3];
} attn_span;

static void attn_span_of(const etok_kv_cache *kv, int layer, int window, int sinks, int pos, attn_span *sp) {
    sp->n_seg = 0;
    if (window <= 0 || pos + 1 <= sinks + window) {
        /* every position 0..pos, in rows 0..pos (pos < sinks + ring: nothing has wrapped) */
        sp->first_pos[0] = 0;
        sp->n[sp->n_seg++] = pos + 1;
        return;
    }
    if (sinks > 0) {
        sp->first_pos[0] = 0;
        sp->n[sp->n_seg++] = sinks;
    }
    const etok_kv_layout *ly = &kv->layout[layer];
    int p0 = pos + 1 - window, left = window;
    while (left > 0) {
        int run = ly->sinks + ly->ring - etok_kv_row_of(kv, layer, p0);
        if (run > left) run = left;
        sp->first_pos[sp->n_seg] = p0;
        sp->n[sp->n_seg++] = run;
        p0 += run;
        left -= run;
    }
}

typedef struct {
    const etok_attn_args *a;
    int group, per_unit, units_per_kvh, n_units;
    atomic_int next;
} attn_task;

/* One unit: token t, query heads [h0, h0 + g) of KV head kvh. */
static void attn_unit(const etok_attn_args *a, float *sc, size_t cap, int t, int kvh, int h0, int g) {
    const etok_kv_cache *kv = a->kv;
    const int hd = a->head_dim;
    const uint32_t kv_type = kv->type;
    const int pos = a->b->pos[t], slot = a->b->slot[t];
    attn_span sp;
    attn_span_of(kv, a->layer, a->window, a->sinks, pos, &sp);
    float q[ETOK_ATTN_MAX_GROUP * 512];
    etok_block_q8a qa[ETOK_ATTN_MAX_GROUP * 512 / ETOK_QK];
    memcpy(q, a->q + (size_t)t * (size_t)a->q_dim + (size_t)h0 * (size_t)hd, (size_t)g * (size_t)hd * sizeof(float));
    /* With an F16 cache the products run at F16 input precision (as llama.cpp does: q is
     * rounded to F16 for K.q, and the softmax weights for the sum over V). A Q8_0 cache: q
     * quantised to 8-bit blocks (as llama.cpp does for a quantised K cache), each score an
     * integer block dot. */
    if (kv_type == ETOK_T_F16) etok_round_f16(q, g * hd);
    if (kv_type == ETOK_T_Q8_0)
        for (int h = 0; h < g; h++) etok_quantize_q8a(q + (size_t)h * hd, qa + (size_t)h * (hd / ETOK_QK), hd);
    const size_t stride = kv->head_bytes; /* the KV head's rows are one run (model.h) */
    /* An F16 cache and a one-token step: llama.cpp's CPU backend sums K.q and w.V with
     * ggml_vec_dot_f16 (four accumulators) there, not tinyBLAS's one, and so do we, for the
     * group at once with each head's bits as head by head (engine/vmath.h) */
    const int one_tok = kv_type == ETOK_T_F16 && a->b->n_tokens == 1;
    int n = 0;
    for (int s = 0; s < sp.n_seg; s++) {
        const uint8_t *k0 = etok_kv_row(kv, kv->k, slot, a->layer, sp.first_pos[s], kvh);
        if (one_tok) {
            etok_attn_scores_1tok_multi(q, g, k0, stride, sp.n[s], hd, a->scale, sc + n, cap,
                                        etok_kv_row(kv, kv->v, slot, a->layer, sp.first_pos[s], kvh));
        } else if (kv_type == ETOK_T_Q8_0) {
            /* the group's scores, each K block read once for all heads (vmath.h) */
            etok_attn_scores_q8_0(qa, g, k0, stride, sp.n[s], hd, a->scale, sc + n, cap,
                                  etok_kv_row(kv, kv->v, slot, a->layer, sp.first_pos[s], kvh));
        } else {
            etok_attn_scores_multi(kv_type, q, g, k0, stride, sp.n[s], hd, a->scale, sc + n, cap);
        }
        n += sp.n[s];
    }
    /* softmax per head: exp() and the sum as llama.cpp's (engine/vmath.h), one reciprocal */
    for (int h = 0; h < g; h++) {
        float *w = sc + (size_t)h * cap;
        const float mx = etok_max(w, n); /* one scalar max chain was 87% of this function at depth 512 */
        const double sum = etok_softmax_exp(w, w, n, mx);
        const float inv = (float)(1.0 / sum);
        for (int s = 0; s < n; s++) w[s] *= inv;
        if (kv_type == ETOK_T_F16) etok_round_f16(w, n);
    }
    /* weighted sum over V, the span's runs into the same position lanes (a wrapped ring sums
     * as one run would); a Q8_0 row is dequantised once and summed in float into every head's
     * output, in position order */
    float *out = a->att + (size_t)t * (size_t)a->q_dim + (size_t)h0 * (size_t)hd;
    const uint8_t *v0[3];
    for (int s = 0; s < sp.n_seg; s++) v0[s] = etok_kv_row(kv, kv->v, slot, a->layer, sp.first_pos[s], kvh);
    if (one_tok) {
        /* the group at once, each head as head by head would: every run into the same
         * position-slot accumulators */
        etok_attn_accum_1tok_multi(sc, cap, g, sp.n_seg, v0, sp.first_pos, sp.n, stride, hd, out);
    } else if (kv_type == ETOK_T_Q8_0) {
        /* each row's blocks summed into every head's output, in position order */
        etok_attn_accum_q8_0(sc, cap, g, sp.n_seg, v0, sp.n, stride, hd, out);
    } else {
        etok_attn_accum_multi(kv_type, sc, cap, g, sp.n_seg, v0, sp.first_pos, sp.n, stride, hd, out);
    }
}

static void attn_worker(void *ctxp, int ith, int nth) {
    attn_task *t = ctxp;
    const etok_attn_args *a = t->a;
    (void)nth;
    float *sc = a->scores + (size_t)ith * a->scores_per_thread;
    const size_t cap = a->scores_per_thread / (size_t)t->per_unit;
    for (;;) {
        const int u = atomic_fetch_add(&t->next, 1);
        if (u >= t->n_units) break;
        const int per_tok = a->n_kv_heads * t->units_per_kvh;
        const int tok = u / per_tok, r = u % per_tok, kvh = r / t->units_per_kvh, sub = r % t->units_per_kvh;
        const int h0 = kvh * t->group + sub * t->per_unit;
        const int g = t->group - sub * t->per_unit < t->per_unit ? t->group - sub * t->per_unit : t->per_unit;
        attn_unit(a, sc, cap, tok, kvh, h0, g);
    }
}

void etok_attention(etok_threadpool *pool, const etok_attn_args *a) {
    attn_task t;
    memset(&t, 0, sizeof t);
    t.a = a;
    t.group = a->n_heads / a->n_kv_heads;
    /* a unit serves the whole group when there are enough units to keep every thread busy;
     * else (decode with few KV heads) the group is split so that threads can share it */
    const int nth = etok_threadpool_size(pool), T = a->b->n_tokens;
    int split = 1;
    if (T * a->n_kv_heads < 2 * nth) split = (2 * nth + T * a->n_kv_heads - 1) / (T * a->n_kv_heads);
    if (split > t.group) split = t.group;
    t.per_unit = (t.group + split - 1) / split;
    if (t.per_unit > ETOK_ATTN_MAX_GROUP) t.per_unit = ETOK_ATTN_MAX_GROUP;
    t.units_per_kvh = (t.group + t.per_unit - 1) / t.per_unit;
    t.n_units = T * a->n_kv_heads * t.units_per_kvh;
    atomic_init(&t.next, 0);
    etok_threadpool_run(pool, attn_worker, &t);
}
