/* engine.c — the continuously batched engine of include/etok/engine.h.
 *
 * Owns: sequence slots (each with its KV-cache slot, prompt, sampling state and logits), the
 * per-step schedule and the step report. A step gathers one token from every decoding
 * sequence plus prompt chunks of prefilling sequences (up to prefill_chunk tokens each,
 * within a step budget of max_seqs + prefill_chunk tokens), runs ONE forward pass over all
 * of them (model.c: each weight matrix read once per step), then samples for every sequence
 * whose last prompt token or decode token was in the step. Sequences join (etok_engine_add)
 * and leave (etok_engine_remove) between steps. Does not own the maths (model.c) nor the
 * sampling rules (sample.c). */
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/sample.h"

typedef struct {
    int in_use;        /* slot holds a sequence (possibly finished) */
    int id;
    int32_t *prompt;
    int n_prompt;
    int n_consumed;    /* prompt tokens already in the cache */
    int n_past;        /* tokens in the KV cache */
    int max_new;
    int n_generated;
    int32_t last_token;/* last sampled token, fed next step */
    int finished;
    etok_sampling sampling;
    int ignore_eos;    /* etok_engine_set_ignore_eos */
    uint64_t rng;
    float *logits;     /* vocab_size, last computed */
    int has_logits;
} seq_slot;

struct etok_engine {
    etok_model *m;
    etok_engine_opts opts;
    etok_threadpool *pool;
    etok_kv_cache kv;
    etok_fwd_state *st;
    seq_slot *seqs;
    int next_id;
    int step_cap;      /* max tokens per step */
    /* per-step scratch */
    int32_t *b_tokens;
    int *b_pos, *b_slot, *b_logit_row, *row_slot;
    float *logits;     /* [max_seqs][vocab] */
    etok_prob_id *scratch;
    etok_seq_event *events;
};

void etok_engine_free(etok_engine *e) {
    if (!e) return;
    if (e->seqs)
        for (int i = 0; i < e->opts.max_seqs; i++) {
            free(e->seqs[i].prompt);
            free(e->seqs[i].logits);
        }
    free(e->seqs);
    etok_threadpool_free(e->pool);
    etok_kv_cache_free(&e->kv);
    etok_fwd_state_free(e->st);
    free(e->b_tokens);
    free(e->b_pos);
    free(e->b_slot);
    free(e->b_logit_row);
    free(e->row_slot);
    free(e->logits);
    free(e->scratch);
    free(e->events);
    free(e);
}

etok_engine *etok_engine_new(etok_model *m, const etok_engine_opts *opts, etok_err *err) {
    etok_engine *e = calloc(1, sizeof *e);
    if (!e) {
        etok_errf(err, "out of memory");
        return NULL;
    }
    e->m = m;
    if (opts) e->opts = *opts;
    etok_engine_opts *o = &e->opts;
    if (o->max_seqs <= 0) o->max_seqs = 1;
    if (o->max_seqs > 1024) {
        etok_errc(err, ETOK_EXIT_USAGE, "engine: max_seqs %d is too large (at most 1024)", o->max_seqs);
        goto fail;
    }
    if (o->ctx_len <= 0) o->ctx_len = m->info.ctx_max < 2048 ? m->info.ctx_max : 2048;
    if (o->ctx_len > m->info.ctx_max) o->ctx_len = m->info.ctx_max;
    if (o->prefill_chunk <= 0) o->prefill_chunk = 256;
    if (o->kv_bits == 0) o->kv_bits = 16; /* F16 like llama.cpp's default */
    if (o->attn_window < 0) o->attn_window = 0;
    if (o->attn_sinks < 0 || (o->attn_sinks > 0 && o->attn_window == 0)) {
        etok_errc(err, ETOK_EXIT_USAGE, "engine: %d attention sinks need a sliding window (--attn-window N)",
                  o->attn_sinks);
        goto fail;
    }
    if (o->attn_window > 0 && o->attn_sinks + o->attn_window >= o->ctx_len) {
        o->attn_window = 0; /* window and sinks cover the whole context: full attention */
        o->attn_sinks = 0;
    }
    /* KV rows per sequence: the context, or with a window the sinks, the window and one prompt
     * chunk (a chunk's tokens are all written before any of them attends) */
    int rows = o->ctx_len;
    if (o->attn_window > 0 && o->attn_sinks + o->attn_window + o->prefill_chunk < rows)
        rows = o->attn_sinks + o->attn_window + o->prefill_chunk;
    e->step_cap = o->max_seqs + o->prefill_chunk;
    if (!(e->pool = etok_threadpool_new(o->n_threads, err))) goto fail;
    o->n_threads = etok_threadpool_size(e->pool);
    if (etok_kv_cache_init(&e->kv, m, o->max_seqs, rows, o->kv_bits, o->attn_sinks, o->attn_window, o->prefill_chunk,
                           err))
        goto fail;
    if (!(e->st = etok_fwd_state_new(m, e->step_cap, o->n_threads, o->ctx_len, err))) goto fail;
    const size_t V = (size_t)m->info.vocab_size, S = (size_t)o->max_seqs, C = (size_t)e->step_cap;
    e->seqs = calloc(S, sizeof *e->seqs);
    e->b_tokens = malloc(C * sizeof *e->b_tokens);
    e->b_pos = malloc(C * sizeof *e->b_pos);
    e->b_slot = malloc(C * sizeof *e->b_slot);
    e->b_logit_row = malloc(C * sizeof *e->b_logit_row);
    e->row_slot = malloc(S * sizeof *e->row_slot);
    e->logits = malloc(S * V * sizeof *e->logits);
    e->scratch = malloc(V * sizeof *e->scratch);
    e->events = calloc(S, sizeof *e->events);
    if (!e->seqs || !e->b_tokens || !e->b_pos || !e->b_slot || !e->b_logit_row || !e->row_slot || !e->logits ||
        !e->scratch || !e->events) {
        etok_errf(err, "engine: out of memory");
        goto fail;
    }
    return e;
fail:
    etok_engine_free(e);
    return NULL;
}

int etok_engine_add(etok_engine *e, const int32_t *prompt, int n_prompt, int max_new_tokens,
                    const etok_sampling *sampling, etok_err *err) {
    if (n_prompt <= 0) return etok_errc(err, ETOK_EXIT_USAGE, "engine: empty prompt");
    if (n_prompt >= e->opts.ctx_len)
        return etok_errc(err, ETOK_EXIT_USAGE, "engine: prompt of %d tokens does not fit the context of %d", n_prompt,
                         e->opts.ctx_len);
    for (int i = 0; i < n_prompt; i++)
        if (prompt[i] < 0 || prompt[i] >= e->m->info.vocab_size)
            return etok_errc(err, ETOK_EXIT_USAGE, "engine: prompt token %d is outside the vocabulary", prompt[i]);
    int slot = -1;
    for (int i = 0; i < e->opts.max_seqs; i++)
        if (!e->seqs[i].in_use) {
            slot = i;
            break;
        }
    if (slot < 0) return etok_errf(err, "engine: all %d sequence slots are busy", e->opts.max_seqs);
    seq_slot *s = &e->seqs[slot];
    free(s->prompt);
    s->prompt = malloc((size_t)n_prompt * sizeof *s->prompt);
    if (!s->logits) s->logits = malloc((size_t)e->m->info.vocab_size * sizeof *s->logits);
    if (!s->prompt || !s->logits) return etok_errf(err, "engine: out of memory");
    memcpy(s->prompt, prompt, (size_t)n_prompt * sizeof *prompt);
    s->n_prompt = n_prompt;
    s->n_consumed = 0;
    s->n_past = 0;
    s->max_new = max_new_tokens;
    s->n_generated = 0;
    s->last_token = -1;
    s->finished = 0;
    s->has_logits = 0;
    s->ignore_eos = 0;
    if (sampling)
        s->sampling = *sampling;
    else
        memset(&s->sampling, 0, sizeof s->sampling);
    s->rng = s->sampling.seed ^ 0x5DEECE66Dull;
    s->id = e->next_id++;
    if (e->next_id < 0) e->next_id = 0;
    s->in_use = 1;
    return s->id;
}

static seq_slot *find_seq(const etok_engine *e, int seq_id) {
    for (int i = 0; i < e->opts.max_seqs; i++)
        if (e->seqs[i].in_use && e->seqs[i].id == seq_id) return &e->seqs[i];
    return NULL;
}

void etok_engine_remove(etok_engine *e, int seq_id) {
    seq_slot *s = find_seq(e, seq_id);
    if (s) s->in_use = 0; /* buffers are reused by the next sequence in this slot */
}

void etok_engine_set_ignore_eos(etok_engine *e, int seq_id, int on) {
    seq_slot *s = find_seq(e, seq_id);
    if (s) s->ignore_eos = on != 0;
}

int etok_engine_active(const etok_engine *e) {
    int n = 0;
    for (int i = 0; i < e->opts.max_seqs; i++) n += e->seqs[i].in_use;
    return n;
}

int etok_engine_kv_rows(const etok_engine *e) { return e->kv.rows; }

const float *etok_engine_logits(const etok_engine *e, int seq_id) {
    seq_slot *s = find_seq(e, seq_id);
    return s && s->has_logits ? s->logits : NULL;
}

int etok_engine_step(etok_engine *e, etok_step_result *out, etok_err *err) {
    const etok_model_info *in = &e->m->info;
    memset(out, 0, sizeof *out);
    out->t_start_s = etok_mono_s();
    out->events = e->events;
    int T = 0, n_rows = 0;
    /* decode tokens first (one per decoding sequence), then prompt chunks in slot order */
    for (int pass = 0; pass < 2; pass++) {
        for (int i = 0; i < e->opts.max_seqs; i++) {
            seq_slot *s = &e->seqs[i];
            if (!s->in_use || s->finished) continue;
            int prefilling = s->n_consumed < s->n_prompt;
            if (pass == 0 && !prefilling) {
                e->b_tokens[T] = s->last_token;
                e->b_pos[T] = s->n_past;
                e->b_slot[T] = i;
                e->b_logit_row[T] = n_rows;
                e->row_slot[n_rows++] = i;
                T++;
                out->decode_tokens++;
                etok_seq_event *ev = &e->events[out->n_events++];
                memset(ev, 0, sizeof *ev);
                ev->seq_id = s->id;
                ev->new_token = -1;
            } else if (pass == 1 && prefilling) {
                int n = s->n_prompt - s->n_consumed;
                if (n > e->opts.prefill_chunk) n = e->opts.prefill_chunk;
                if (n > e->step_cap - T) n = e->step_cap - T;
                if (n <= 0) continue;
                for (int j = 0; j < n; j++) {
                    e->b_tokens[T] = s->prompt[s->n_consumed + j];
                    e->b_pos[T] = s->n_past + j;
                    e->b_slot[T] = i;
                    e->b_logit_row[T] = -1;
                    T++;
                }
                int last = s->n_consumed + n == s->n_prompt;
                if (last) {
                    e->b_logit_row[T - 1] = n_rows;
                    e->row_slot[n_rows++] = i;
                }
                out->prefill_tokens += n;
                etok_seq_event *ev = &e->events[out->n_events++];
                memset(ev, 0, sizeof *ev);
                ev->seq_id = s->id;
                ev->prefill_tokens = n;
                ev->new_token = -1;
            }
        }
    }
    if (T == 0) {
        out->t_end_s = etok_mono_s();
        return 0;
    }
    etok_batch b = {T, e->b_tokens, e->b_pos, e->b_slot, e->b_logit_row, n_rows};
    if (etok_model_forward(e->m, e->pool, &e->kv, e->st, &b, e->opts.attn_window, e->logits, err)) return -1;

    /* accounting from the shapes (METRICS.md s.1): weights once per step; per token the
     * matmuls, attention over t_eff positions, KV read t_eff rows and write one */
    const double kv_tok = etok_model_kv_bytes_per_token(e->m, e->opts.kv_bits);
    out->bytes = etok_model_weight_bytes(e->m);
    for (int t = 0; t < T; t++) {
        int t_eff = e->b_pos[t] + 1;
        if (e->opts.attn_window > 0 && t_eff > e->opts.attn_window + e->opts.attn_sinks)
            t_eff = e->opts.attn_window + e->opts.attn_sinks;
        /* summed over layers: a layer with its own window (Gemma 3's local ones) attends to fewer */
        const double pos_sum = etok_model_attended_positions(e->m, t_eff);
        out->flops += 2.0 * e->m->matmul_params + 4.0 * in->n_heads * in->head_dim * pos_sum;
        out->bytes += kv_tok / in->n_layers * pos_sum + kv_tok;
    }
    out->flops += 2.0 * (double)in->d_model * in->vocab_size * n_rows;

    /* advance every sequence in the step, sample where logits were computed */
    for (int t = 0; t < T; t++) {
        seq_slot *s = &e->seqs[e->b_slot[t]];
        s->n_past++;
        if (s->n_consumed < s->n_prompt) s->n_consumed++;
    }
    for (int r = 0; r < n_rows; r++) {
        seq_slot *s = &e->seqs[e->row_slot[r]];
        etok_seq_event *ev = NULL;
        for (int k = 0; k < out->n_events; k++)
            if (e->events[k].seq_id == s->id) ev = &e->events[k];
        memcpy(s->logits, e->logits + (size_t)r * in->vocab_size, (size_t)in->vocab_size * sizeof(float));
        s->has_logits = 1;
        if (s->max_new <= 0) { /* prompt only */
            s->finished = 1;
            ev->finished = 1;
            continue;
        }
        int32_t tok = etok_sample(s->logits, in->vocab_size, &s->sampling, &s->rng, e->scratch);
        if (!s->ignore_eos && etok_token_is_eog(e->m, tok)) {
            s->finished = 1;
            ev->finished = 1;
            ev->finished_by_eog = 1;
            continue;
        }
        s->last_token = tok;
        s->n_generated++;
        ev->new_token = tok;
        if (s->n_generated >= s->max_new || s->n_past >= e->opts.ctx_len) {
            s->finished = 1;
            ev->finished = 1;
        }
    }
    out->t_end_s = etok_mono_s();
    return 0;
}
