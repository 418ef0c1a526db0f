/* test_engine.c — the forward pass and the batched engine on tiny synthetic models.
 *
 * The engine's logits are checked against a naive float forward pass written here from the
 * Llama equations (weights dequantised, exact attention), so a wrong RoPE variant, head
 * grouping, norm or FFN shows up; the same reference with NeoX-style RoPE must NOT match.
 * Tolerance: the engine quantises activations to 8 bits per 32 values before each quantised
 * matmul (as llama.cpp does), about 0.5% relative error per matmul, so logits agree within
 * 2% of the logit range (observed 0.15-1%); the NeoX variant differs by 3x to 60x more. Then: batched decode equals
 * decoding alone, prefill chunking changes nothing, sliding window, sampling, slots and
 * errors, FLOP/byte accounting against hand-computed values. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/gguf.h"
#include "engine/model.h"
#include "engine/threadpool.h"
#include "engine/quant.h"
#include "etok/engine.h"
#include "synth_gguf.h"

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/etok_test_engine_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    etok_tiny_gguf_opts o;
    etok_tiny_gguf_defaults(&o);
    if (etok_test_write_tiny_gguf(tmp_path("tiny.gguf"), &o)) return -1;
    o.weight_scale = 0.3f; /* larger Q/K weights: peaked attention, so position (RoPE) matters */
    o.seed = 3;
    if (etok_test_write_tiny_gguf(tmp_path("sharp.gguf"), &o)) return -1;
    {   /* float weights: float activations carry an attention result's last bit to the logits */
        etok_tiny_gguf_opts f;
        etok_tiny_gguf_defaults(&f);
        f.weight_type = f.embd_type = f.output_type = ETOK_T_F32;
        f.seed = 11;
        if (etok_test_write_tiny_gguf(tmp_path("f32.gguf"), &f)) return -1;
    }
    o.weight_scale = 0.08f;
    o.d_model = 256;
    o.d_ff = 256;
    o.n_heads = 4;
    o.n_kv_heads = 2;
    o.mixed_types = 1;
    o.tied = 0;
    o.embd_type = ETOK_T_Q4_K;
    o.seed = 7;
    if (etok_test_write_tiny_gguf(tmp_path("mixed.gguf"), &o)) return -1;
    /* llama-quantize's mixes (issue 14): per layer attn_q, attn_k, attn_v, attn_output, ffn_gate,
     * ffn_up, ffn_down. Q4_K_M: Q4_K with Q6_K for attn_v/ffn_down, and (layer 1) Q5_0 where
     * llama.cpp falls back for rows that are not a multiple of 256; Q5_K_M: Q5_K with Q6_K;
     * Q6_K: all Q6_K; a low-bit mix: Q2_K/Q3_K/IQ4_NL (Q2_K-like). */
    static const uint32_t q4km[] = {ETOK_T_Q4_K, ETOK_T_Q4_K, ETOK_T_Q6_K, ETOK_T_Q4_K, ETOK_T_Q4_K, ETOK_T_Q4_K, ETOK_T_Q6_K,
                                    ETOK_T_Q4_K, ETOK_T_Q4_K, ETOK_T_Q5_0, ETOK_T_Q4_K, ETOK_T_Q4_K, ETOK_T_Q4_K, ETOK_T_Q5_0};
    static const uint32_t q5km[] = {ETOK_T_Q5_K, ETOK_T_Q5_K, ETOK_T_Q6_K, ETOK_T_Q5_K, ETOK_T_Q5_K, ETOK_T_Q5_K, ETOK_T_Q6_K};
    static const uint32_t q6k[] = {ETOK_T_Q6_K};
    static const uint32_t q2k[] = {ETOK_T_Q2_K, ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q3_K, ETOK_T_Q2_K, ETOK_T_Q2_K, ETOK_T_IQ4_NL};
    static const struct {
        const char *file;
        const uint32_t *cycle;
        int n;
        uint32_t embd;
    } mixes[] = {{"q4km.gguf", q4km, 14, ETOK_T_Q4_K},
                 {"q5km.gguf", q5km, 7, ETOK_T_Q5_K},
                 {"q6k.gguf", q6k, 1, ETOK_T_Q6_K},
                 {"q2k.gguf", q2k, 7, ETOK_T_Q2_K}};
    o.mixed_types = 0;
    o.output_type = ETOK_T_Q6_K;
    for (size_t i = 0; i < sizeof mixes / sizeof mixes[0]; i++) {
        o.type_cycle = mixes[i].cycle;
        o.n_type_cycle = mixes[i].n;
        o.embd_type = mixes[i].embd;
        o.seed = 11 + i;
        if (etok_test_write_tiny_gguf(tmp_path(mixes[i].file), &o)) return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ naive reference */

typedef struct {
    int L, d, nh, nkv, hd, dff, V;
    float eps, base;
    float *embd, *out, *onorm;
    float **wq, **wk, **wv, **wo, **wg, **wu, **wd, **an, **fn;
} ref_model;

static float *deq(const etok_gguf *g, const char *name) {
    const etok_gguf_tensor *t = etok_gguf_find_tensor(g, name);
    if (!t) fail_msg("tensor %s missing", name);
    float *v = malloc(t->n_elems * sizeof(float));
    size_t rb = etok_type_row_bytes(t->type, (int64_t)t->ne[0]);
    for (uint64_t r = 0; r < t->n_elems / t->ne[0]; r++)
        etok_dequantize_row(t->type, (const uint8_t *)t->data + r * rb, v + r * t->ne[0], (int64_t)t->ne[0]);
    return v;
}

static void ref_load(ref_model *r, const char *path) {
    etok_err err = {{0}, 0};
    etok_gguf *g = etok_gguf_open(path, &err);
    assert_non_null(g);
    uint32_t u;
    etok_gguf_get_u32(g, "llama.block_count", &u, &err);
    r->L = (int)u;
    etok_gguf_get_u32(g, "llama.embedding_length", &u, &err);
    r->d = (int)u;
    etok_gguf_get_u32(g, "llama.attention.head_count", &u, &err);
    r->nh = (int)u;
    etok_gguf_get_u32(g, "llama.attention.head_count_kv", &u, &err);
    r->nkv = (int)u;
    etok_gguf_get_u32(g, "llama.feed_forward_length", &u, &err);
    r->dff = (int)u;
    r->hd = r->d / r->nh;
    r->V = etok_tiny_gguf_vocab_size();
    r->base = 10000.0f;
    etok_gguf_get_f32(g, "llama.rope.freq_base", &r->base, &err);
    r->eps = 1e-5f;
    r->embd = deq(g, "token_embd.weight");
    r->out = etok_gguf_find_tensor(g, "output.weight") ? deq(g, "output.weight") : r->embd;
    r->onorm = deq(g, "output_norm.weight");
    float ***fields[9] = {&r->wq, &r->wk, &r->wv, &r->wo, &r->wg, &r->wu, &r->wd, &r->an, &r->fn};
    const char *names[9] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm"};
    for (int f = 0; f < 9; f++) {
        *fields[f] = calloc((size_t)r->L, sizeof(float *));
        for (int l = 0; l < r->L; l++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[f]);
            (*fields[f])[l] = deq(g, nm);
        }
    }
    etok_gguf_close(g);
}

static void ref_free(ref_model *r) {
    float **fields[9] = {r->wq, r->wk, r->wv, r->wo, r->wg, r->wu, r->wd, r->an, r->fn};
    for (int f = 0; f < 9; f++) {
        for (int l = 0; l < r->L; l++) free(fields[f][l]);
        free(fields[f]);
    }
    if (r->out != r->embd) free(r->out);
    free(r->embd);
    free(r->onorm);
}

static void matvec(float *o, const float *w, const float *x, int n_in, int n_out) {
    for (int i = 0; i < n_out; i++) {
        double s = 0;
        for (int j = 0; j < n_in; j++) s += (double)w[(size_t)i * n_in + j] * x[j];
        o[i] = (float)s;
    }
}

static void rmsnorm(float *o, const float *x, const float *w, int n, float eps) {
    double ss = 0;
    for (int i = 0; i < n; i++) ss += (double)x[i] * x[i];
    float r = (float)(1.0 / sqrt(ss / n + eps));
    for (int i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}

/* neox = 0: adjacent pairs (llama.cpp "normal", what Llama GGUFs need); 1: halves. */
static void rope(float *v, int hd, int pos, float base, int neox) {
    for (int i = 0; i < hd / 2; i++) {
        double th = pos * pow(base, -2.0 * i / hd);
        int a = neox ? i : 2 * i, b = neox ? i + hd / 2 : 2 * i + 1;
        float x0 = v[a], x1 = v[b];
        v[a] = (float)(x0 * cos(th) - x1 * sin(th));
        v[b] = (float)(x0 * sin(th) + x1 * cos(th));
    }
}

/* Logits after the last of n tokens. */
static void ref_forward(const ref_model *r, const int32_t *toks, int n, int neox, int window, float *logits) {
    const int d = r->d, kvd = r->nkv * r->hd;
    float *K = calloc((size_t)r->L * n * kvd, sizeof(float)), *Vc = calloc((size_t)r->L * n * kvd, sizeof(float));
    float *x = malloc(d * sizeof(float)), *xb = malloc(d * sizeof(float)), *q = malloc(d * sizeof(float)),
          *att = malloc(d * sizeof(float)), *tmp = malloc(d * sizeof(float)), *g = malloc(r->dff * sizeof(float)),
          *u = malloc(r->dff * sizeof(float)), *sc = malloc(n * sizeof(float));
    for (int p = 0; p < n; p++) {
        memcpy(x, r->embd + (size_t)toks[p] * d, d * sizeof(float));
        for (int l = 0; l < r->L; l++) {
            float *k = K + ((size_t)l * n + p) * kvd, *v = Vc + ((size_t)l * n + p) * kvd;
            rmsnorm(xb, x, r->an[l], d, r->eps);
            matvec(q, r->wq[l], xb, d, d);
            matvec(k, r->wk[l], xb, d, kvd);
            matvec(v, r->wv[l], xb, d, kvd);
            for (int h = 0; h < r->nh; h++) rope(q + h * r->hd, r->hd, p, r->base, neox);
            for (int h = 0; h < r->nkv; h++) rope(k + h * r->hd, r->hd, p, r->base, neox);
            for (int h = 0; h < r->nh; h++) {
                int kh = h / (r->nh / r->nkv), s0 = window > 0 && p + 1 > window ? p + 1 - window : 0;
                double mx = -1e30, sum = 0;
                for (int s = s0; s <= p; s++) {
                    double dot = 0;
                    const float *ks = K + ((size_t)l * n + s) * kvd + kh * r->hd;
                    for (int i = 0; i < r->hd; i++) dot += (double)q[h * r->hd + i] * ks[i];
                    sc[s] = (float)(dot / sqrt((double)r->hd));
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int s = s0; s <= p; s++) sum += exp(sc[s] - mx);
                for (int i = 0; i < r->hd; i++) {
                    double o = 0;
                    for (int s = s0; s <= p; s++) o += exp(sc[s] - mx) / sum * Vc[((size_t)l * n + s) * kvd + kh * r->hd + i];
                    att[h * r->hd + i] = (float)o;
                }
            }
            matvec(tmp, r->wo[l], att, d, d);
            for (int i = 0; i < d; i++) x[i] += tmp[i];
            rmsnorm(xb, x, r->fn[l], d, r->eps);
            matvec(g, r->wg[l], xb, d, r->dff);
            matvec(u, r->wu[l], xb, d, r->dff);
            for (int i = 0; i < r->dff; i++) g[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
            matvec(tmp, r->wd[l], g, r->dff, d);
            for (int i = 0; i < d; i++) x[i] += tmp[i];
        }
    }
    rmsnorm(xb, x, r->onorm, d, r->eps);
    matvec(logits, r->out, xb, d, r->V);
    free(K);
    free(Vc);
    free(x);
    free(xb);
    free(q);
    free(att);
    free(tmp);
    free(g);
    free(u);
    free(sc);
}

/* ------------------------------------------------------------------ helpers */

static const int32_t prompt_a[] = {5, 77, 120, 33, 200, 9, 14, 150, 42, 99, 260, 3};
static const int32_t prompt_b[] = {40, 41, 42, 43, 44, 45, 46};
static const int32_t prompt_c[] = {100, 3, 250, 17, 17, 17, 201, 8, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76};
#define N_OF(a) (int)(sizeof a / sizeof a[0])

/* Prefill a prompt (max_new = 0) and copy the final logits. */
static void engine_logits(etok_model *m, const etok_engine_opts *o, const int32_t *p, int n, float *out) {
    etok_err err = {{0}, 0};
    etok_engine *e = etok_engine_new(m, o, &err);
    if (!e) fail_msg("%s", err.msg);
    int id = etok_engine_add(e, p, n, 0, NULL, &err);
    assert_true(id >= 0);
    etok_step_result r;
    int finished = 0;
    while (!finished) {
        assert_int_equal(etok_engine_step(e, &r, &err), 0);
        for (int k = 0; k < r.n_events; k++) finished |= r.events[k].finished;
    }
    const float *l = etok_engine_logits(e, id);
    assert_non_null(l);
    memcpy(out, l, (size_t)etok_model_get_info(m)->vocab_size * sizeof(float));
    etok_engine_free(e);
}

static float max_abs_diff(const float *a, const float *b, int n) {
    float m = 0;
    for (int i = 0; i < n; i++) m = fmaxf(m, fabsf(a[i] - b[i]));
    return m;
}

static float range_of(const float *a, int n) {
    float lo = a[0], hi = a[0];
    for (int i = 1; i < n; i++) {
        lo = fminf(lo, a[i]);
        hi = fmaxf(hi, a[i]);
    }
    return hi - lo;
}

static void check_against_reference(const char *file, int kv_bits, int window, float neox_ratio) {
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path(file), &err);
    if (!m) fail_msg("%s", err.msg);
    ref_model r;
    ref_load(&r, tmp_path(file));
    const int V = r.V;
    float *want = malloc(V * sizeof(float)), *neox = malloc(V * sizeof(float)), *got = malloc(V * sizeof(float));
    ref_forward(&r, prompt_c, N_OF(prompt_c), 0, window, want);
    ref_forward(&r, prompt_c, N_OF(prompt_c), 1, window, neox);
    etok_engine_opts o = {2, 1, 64, 5, kv_bits, window, 0};
    engine_logits(m, &o, prompt_c, N_OF(prompt_c), got);
    float range = range_of(want, V), diff = max_abs_diff(got, want, V), dneox = max_abs_diff(got, neox, V);
    if (getenv("ETOK_TEST_VERBOSE")) printf("%s kv%d w%d: diff %g neox %g range %g\n", file, kv_bits, window, diff, dneox, range);
    if (diff > 0.02f * range)
        fail_msg("%s kv%d window %d: logits differ from the reference by %g (range %g)", file, kv_bits, window, diff, range);
    if (dneox < neox_ratio * diff)
        fail_msg("%s: NeoX-style RoPE gives logits %g away, normal RoPE %g: want a ratio >= %g", file, dneox, diff, neox_ratio);
    free(want);
    free(neox);
    free(got);
    ref_free(&r);
    etok_model_free(m);
}

/* ------------------------------------------------------------------ tests */

static void test_forward_reference(void **state) {
    (void)state;
    check_against_reference("tiny.gguf", 32, 0, 3.0f);
    check_against_reference("tiny.gguf", 16, 0, 3.0f);
    check_against_reference("tiny.gguf", 32, 4, 3.0f); /* sliding window */
    check_against_reference("mixed.gguf", 32, 0, 3.0f); /* every tensor type, untied Q6_K head */
    /* a Q8_0 KV cache (head size 64, groups of 2): K.q and the V sum of etok_attn_*_q8_0, full
     * attention and a window of 4 */
    check_against_reference("mixed.gguf", 8, 0, 3.0f);
    check_against_reference("mixed.gguf", 8, 4, 3.0f);
    /* llama-quantize's K-quant mixes load and run (issue 14) */
    check_against_reference("q4km.gguf", 32, 0, 3.0f);
    check_against_reference("q5km.gguf", 16, 0, 3.0f);
    check_against_reference("q6k.gguf", 32, 0, 3.0f);
    check_against_reference("q2k.gguf", 32, 0, 3.0f);
    {
        etok_err err = {{0}, 0};
        etok_model *m = etok_model_load(tmp_path("q4km.gguf"), &err);
        if (!m) fail_msg("%s", err.msg);
        const char *wt = etok_model_get_info(m)->weight_types;
        if (!strstr(wt, "Q5_0 x 2") || !strstr(wt, "Q4_K x 11") || !strstr(wt, "Q6_K x 3"))
            fail_msg("q4km.gguf weight types: %s", wt);
        etok_model_free(m);
    }
    /* the RoPE variant check proper: peaked attention, the wrong pairing is far off */
    check_against_reference("sharp.gguf", 16, 0, 20.0f);
}

static void test_window_changes_result(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    const int V = etok_model_get_info(m)->vocab_size;
    float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
    etok_engine_opts o = {1, 1, 64, 0, 32, 0, 0};
    engine_logits(m, &o, prompt_c, N_OF(prompt_c), a);
    o.attn_window = 4;
    engine_logits(m, &o, prompt_c, N_OF(prompt_c), b);
    assert_true(max_abs_diff(a, b, V) > 1e-3f);
    /* a window longer than the prompt is the same as none */
    o.attn_window = 64;
    engine_logits(m, &o, prompt_c, N_OF(prompt_c), b);
    assert_true(max_abs_diff(a, b, V) == 0.0f);
    free(a);
    free(b);
    etok_model_free(m);
}

/* Logits of prompt_c[0..n) fed one token per forward step over a KV cache whose window ring
 * holds window + max_run rows after the sinks (the ring's size decides where it wraps). */
static void forward_one_by_one(etok_model *m, int kv_bits, int window, int sinks, int max_run, int n, float *out) {
    etok_err err = {{0}, 0};
    etok_threadpool *pool = etok_threadpool_new(1, &err);
    assert_non_null(pool);
    etok_kv_cache kv;
    if (etok_kv_cache_init(&kv, m, 1, 64, kv_bits, sinks, window, max_run, &err)) fail_msg("%s", err.msg);
    etok_fwd_state *st = etok_fwd_state_new(m, 1, 1, 64, &err);
    assert_non_null(st);
    for (int i = 0; i < n; i++) {
        const int pos = i, slot = 0, row = 0;
        etok_batch b = {1, prompt_c + i, &pos, &slot, &row, 1};
        if (etok_model_forward(m, pool, &kv, st, &b, window, out, &err)) fail_msg("position %d: %s", i, err.msg);
    }
    etok_fwd_state_free(st);
    etok_kv_cache_free(&kv);
    etok_threadpool_free(pool);
}

/* A sliding window with sinks over a ring that wraps: the V sum runs over the sinks and the
 * window's runs in one set of position lanes, so where the ring wraps (which depends on the
 * prefill chunk, through the ring's size) does not change a bit of the result. (Before, each
 * run was summed and reduced on its own and the runs added: chunk 1 and chunk 3 differed.)
 * Through the engine with an F32 cache, the whole prompt in one step against chunks of 2..4
 * (the ring's size follows the chunk); a chunking that leaves a one-token step is skipped: a
 * one-token step sums float matrices in another order than a batch (llama.cpp's vec_dot
 * against its tinyBLAS: engine/matmul_float.h), as does the attention with an F16 cache
 * (docs/ENGINE.md "Numerics"), so there the steps are kept alike (one token each) and only
 * the ring's size changes. */
static void test_window_ring_independent_of_chunk(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("f32.gguf"), &err);
    assert_non_null(m);
    const int V = etok_model_get_info(m)->vocab_size;
    float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
    const int kvs[] = {32};
    int compared = 0, skipped = 0;
    for (int win = 5; win <= 8; win += 3)
        for (int n = 10; n <= N_OF(prompt_c); n++) {
            forward_one_by_one(m, 16, win, 2, 1, n, a); /* a ring of win + 1 rows */
            const int runs[] = {2, 3, 100};
            for (int r = 0; r < 3; r++) {
                forward_one_by_one(m, 16, win, 2, runs[r], n, b);
                compared++;
                if (max_abs_diff(a, b, V) != 0.0f)
                    fail_msg("kv 16 window %d sinks 2, %d tokens: a ring of %d + %d rows differs from %d + 1 by %g",
                             win, n, win, runs[r], win, max_abs_diff(a, b, V));
            }
        }
    for (int k = 0; k < 1; k++)
        for (int win = 5; win <= 8; win += 3)
            for (int n = 10; n <= N_OF(prompt_c); n++) {
                etok_engine_opts o = {1, 1, 64, 100, kvs[k], win, 2};
                engine_logits(m, &o, prompt_c, n, a); /* one step: a ring of win + n rows after 2 sinks */
                int chunks[] = {2, 3, 4};
                for (int c = 0; c < 3; c++) {
                    if (n % chunks[c] == 1) { /* a one-token step: the vec_dot order */
                        skipped++;
                        continue;
                    }
                    o.prefill_chunk = chunks[c];
                    o.n_threads = 1 + c % 2;
                    engine_logits(m, &o, prompt_c, n, b);
                    compared++;
                    if (max_abs_diff(a, b, V) != 0.0f)
                        fail_msg("kv %d window %d sinks 2, %d tokens: chunk %d differs from one step by %g", kvs[k], win, n,
                                 chunks[c], max_abs_diff(a, b, V));
                }
            }
    assert_int_equal(compared + skipped, 2 * 2 * (N_OF(prompt_c) - 9) * 3);
    assert_true(skipped < compared / 4);
    free(a);
    free(b);
    etok_model_free(m);
}

/* Prefill in chunks of 1, 3 and all at once, with 1 and 2 threads: the same numbers. */
static void test_chunking_and_threads(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    const int V = etok_model_get_info(m)->vocab_size;
    float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
    etok_engine_opts o = {1, 1, 64, 0, 16, 0, 0};
    engine_logits(m, &o, prompt_a, N_OF(prompt_a), a);
    int chunks[] = {1, 3, 100};
    for (int c = 0; c < 3; c++)
        for (int t = 1; t <= 2; t++) {
            etok_engine_opts o2 = {t, 1, 64, chunks[c], 16, 0, 0};
            engine_logits(m, &o2, prompt_a, N_OF(prompt_a), b);
            if (max_abs_diff(a, b, V) != 0.0f) fail_msg("chunk %d threads %d: logits differ by %g", chunks[c], t, max_abs_diff(a, b, V));
        }
    free(a);
    free(b);
    etok_model_free(m);
}

/* Greedy-decode a prompt alone; return tokens. */
static int decode_alone(etok_model *m, const int32_t *p, int n, int max_new, int32_t *out) {
    etok_err err = {{0}, 0};
    etok_engine_opts o = {2, 1, 128, 0, 16, 0, 0};
    etok_engine *e = etok_engine_new(m, &o, &err);
    assert_non_null(e);
    int id = etok_engine_add(e, p, n, max_new, NULL, &err);
    assert_true(id >= 0);
    int k = 0, done = 0;
    while (!done) {
        etok_step_result r;
        assert_int_equal(etok_engine_step(e, &r, &err), 0);
        for (int i = 0; i < r.n_events; i++) {
            if (r.events[i].new_token >= 0) out[k++] = r.events[i].new_token;
            done |= r.events[i].finished;
        }
    }
    etok_engine_free(e);
    return k;
}

/* Three sequences in one engine, joining at different steps, with a small prefill chunk so
 * prefill and decode tokens share steps: each gets exactly the tokens it gets alone. */
static void test_batched_equals_alone(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    const int32_t *prompts[3] = {prompt_a, prompt_b, prompt_c};
    const int lens[3] = {N_OF(prompt_a), N_OF(prompt_b), N_OF(prompt_c)};
    const int max_new = 12;
    int32_t alone[3][64], together[3][64];
    int n_alone[3], n_together[3] = {0, 0, 0};
    for (int s = 0; s < 3; s++) n_alone[s] = decode_alone(m, prompts[s], lens[s], max_new, alone[s]);

    etok_engine_opts o = {2, 3, 128, 4, 16, 0, 0};
    etok_engine *e = etok_engine_new(m, &o, &err);
    assert_non_null(e);
    int ids[3] = {-1, -1, -1}, finished = 0, step = 0, saw_mixed = 0;
    while (finished < 3) {
        if (step == 0) ids[0] = etok_engine_add(e, prompts[0], lens[0], max_new, NULL, &err);
        if (step == 2) ids[1] = etok_engine_add(e, prompts[1], lens[1], max_new, NULL, &err);
        if (step == 5) ids[2] = etok_engine_add(e, prompts[2], lens[2], max_new, NULL, &err);
        etok_step_result r;
        assert_int_equal(etok_engine_step(e, &r, &err), 0);
        assert_true(r.t_end_s >= r.t_start_s);
        if (r.prefill_tokens > 0 && r.decode_tokens > 0) saw_mixed = 1;
        assert_true(r.flops > 0 && r.bytes > 0);
        for (int i = 0; i < r.n_events; i++) {
            int s = r.events[i].seq_id == ids[0] ? 0 : r.events[i].seq_id == ids[1] ? 1 : 2;
            if (r.events[i].new_token >= 0) together[s][n_together[s]++] = r.events[i].new_token;
            if (r.events[i].finished) {
                finished++;
                etok_engine_remove(e, r.events[i].seq_id);
            }
        }
        step++;
        assert_true(step < 200);
    }
    assert_true(saw_mixed);
    assert_int_equal(etok_engine_active(e), 0);
    for (int s = 0; s < 3; s++) {
        assert_int_equal(n_alone[s], n_together[s]);
        assert_memory_equal(alone[s], together[s], (size_t)n_alone[s] * sizeof(int32_t));
    }
    etok_engine_free(e);
    etok_model_free(m);
}

static void test_slots_and_errors(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    etok_engine_opts o = {1, 2, 16, 0, 0, 0, 0};
    etok_engine *e = etok_engine_new(m, &o, &err);
    assert_non_null(e);
    etok_step_result r;
    assert_int_equal(etok_engine_step(e, &r, &err), 0); /* nothing to do */
    assert_int_equal(r.n_events, 0);
    int32_t long_prompt[16] = {0};
    assert_int_equal(etok_engine_add(e, long_prompt, 16, 4, NULL, &err), -1); /* does not fit ctx 16 */
    assert_non_null(strstr(err.msg, "context"));
    int32_t bad = 100000;
    assert_int_equal(etok_engine_add(e, &bad, 1, 4, NULL, &err), -1);
    assert_int_equal(etok_engine_add(e, prompt_b, 0, 4, NULL, &err), -1);
    int a = etok_engine_add(e, prompt_b, 5, 3, NULL, &err);
    int b = etok_engine_add(e, prompt_b, 5, 100, NULL, &err);
    assert_true(a >= 0 && b >= 0 && a != b);
    assert_int_equal(etok_engine_add(e, prompt_b, 5, 3, NULL, &err), -1); /* slots full */
    assert_int_equal(etok_engine_active(e), 2);
    /* a: exactly 3 tokens; b: stops when the context (16) is full */
    int na = 0, nb = 0, fa = 0, fb = 0;
    for (int step = 0; step < 40 && !(fa && fb); step++) {
        assert_int_equal(etok_engine_step(e, &r, &err), 0);
        for (int i = 0; i < r.n_events; i++) {
            const etok_seq_event *ev = &r.events[i];
            if (ev->seq_id == a) {
                na += ev->new_token >= 0;
                fa |= ev->finished;
            } else {
                nb += ev->new_token >= 0;
                fb |= ev->finished;
            }
        }
    }
    assert_true(fa && fb);
    assert_int_equal(na, 3);
    assert_true(nb <= 16 - 5 + 1 && nb >= 1);
    etok_engine_remove(e, a);
    assert_int_equal(etok_engine_active(e), 1);
    assert_null(etok_engine_logits(e, a));
    assert_non_null(etok_engine_logits(e, b));
    assert_true(etok_engine_add(e, prompt_b, 5, 3, NULL, &err) >= 0); /* slot reused */
    etok_engine_free(e);
    etok_model_free(m);
}

static void test_sampling(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    const int V = etok_model_get_info(m)->vocab_size;
    int32_t greedy[16], runs[3][16];
    int n_g = decode_alone(m, prompt_a, N_OF(prompt_a), 8, greedy);
    etok_sampling s[3] = {{1.5f, 0, 1.0f, 42}, {1.5f, 0, 1.0f, 42}, {5.0f, 1, 1.0f, 9}};
    for (int k = 0; k < 3; k++) {
        etok_engine_opts o = {1, 1, 64, 0, 0, 0, 0};
        etok_engine *e = etok_engine_new(m, &o, &err);
        int id = etok_engine_add(e, prompt_a, N_OF(prompt_a), 8, &s[k], &err);
        assert_true(id >= 0);
        int n = 0, done = 0;
        while (!done) {
            etok_step_result r;
            assert_int_equal(etok_engine_step(e, &r, &err), 0);
            for (int i = 0; i < r.n_events; i++) {
                if (r.events[i].new_token >= 0) {
                    assert_true(r.events[i].new_token < V);
                    runs[k][n++] = r.events[i].new_token;
                }
                done |= r.events[i].finished;
            }
        }
        if (k == 2) { /* top-k 1 is greedy whatever the temperature */
            assert_int_equal(n, n_g);
            assert_memory_equal(runs[k], greedy, (size_t)n * sizeof(int32_t));
        }
        etok_engine_free(e);
    }
    assert_memory_equal(runs[0], runs[1], 8 * sizeof(int32_t)); /* same seed, same tokens */
    etok_model_free(m);
}

static void test_accounting(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    /* L=2, d=64, n_kv*hd=32, d_ff=128, V: matmul params per layer 2*64*64 + 2*64*32 + 3*64*128 */
    const double V = etok_tiny_gguf_vocab_size();
    const double per_layer = 2.0 * 64 * 64 + 2.0 * 64 * 32 + 3.0 * 64 * 128;
    const double f10 = 2.0 * (2 * per_layer + 64 * V) + 4.0 * 2 * 4 * 16 * 11;
    assert_float_equal(etok_model_flops_per_token(m, 10), f10, 1e-6 * f10);
    /* KV bytes per token of context: 2 * L * n_kv * d_h * bytes */
    assert_float_equal(etok_model_kv_bytes_per_token(m, 16), 2.0 * 2 * 2 * 16 * 2, 0);
    assert_float_equal(etok_model_kv_bytes_per_token(m, 32), 2.0 * 2 * 2 * 16 * 4, 0);
    /* tied: every tensor is streamed per step: Q4_1 14 x (rows*20/32 bytes), Q8_0 embedding, F32 norms */
    double q41 = 2 * (64.0 * 64 * 2 + 64.0 * 32 * 2 + 64.0 * 128 * 3) * 20 / 32, q80 = 64.0 * V * 34 / 32, f32 = 5 * 64 * 4.0;
    assert_float_equal(etok_model_weight_bytes(m), q41 + q80 + f32, 0.5);
    assert_float_equal(etok_model_get_info(m)->weight_bytes, q41 + q80 + f32, 0.5);
    /* one step of a 5-token prompt: sum over positions 0..4 plus one LM head */
    etok_engine_opts o = {1, 1, 64, 0, 16, 0, 0};
    etok_engine *e = etok_engine_new(m, &o, &err);
    etok_engine_add(e, prompt_b, 5, 1, NULL, &err);
    etok_step_result r;
    assert_int_equal(etok_engine_step(e, &r, &err), 0);
    assert_int_equal(r.prefill_tokens, 5);
    assert_int_equal(r.decode_tokens, 0);
    double want = 0, bytes = q41 + q80 + f32;
    for (int p = 0; p < 5; p++) {
        want += 2.0 * 2 * per_layer + 4.0 * 2 * 4 * 16 * (p + 1);
        bytes += 2.0 * 2 * 2 * 16 * 2 * (p + 2);
    }
    want += 2.0 * 64 * V;
    assert_float_equal(r.flops, want, 1e-6 * want);
    assert_float_equal(r.bytes, bytes, 1e-6 * bytes);
    etok_engine_free(e);
    etok_model_free(m);
}

/* One model's logits after a prompt, loaded with ETOK_HUGEPAGES set to `hp` and, when `weights`
 * is given, re-encoded into that format. */
static void logits_with(const char *file, const char *hp, const char *weights, float *out) {
    setenv(ETOK_HUGEMEM_ENV, hp, 1);
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path(file), &err);
    if (!m) fail_msg("%s", err.msg);
    if (weights && etok_model_set_weights(m, weights, &err)) fail_msg("%s", err.msg);
    etok_engine_opts o = {2, 1, 64, 5, 16, 0, 0};
    engine_logits(m, &o, prompt_c, N_OF(prompt_c), out);
    etok_model_free(m);
    unsetenv(ETOK_HUGEMEM_ENV);
}

/* Every matrix a step streams lies in the model's placed buffer, in the order a step reads them,
 * each on a cache line; the embedding table is the LM head's copy when tied and stays out of it
 * when not. */
static void check_placed(const etok_model *m, const char *what) {
    const etok_hugemem *h = &m->weights_mem;
    if (!h->base) fail_msg("%s: no placed weights", what);
    if ((uintptr_t)h->base % ETOK_HUGE_PAGE) fail_msg("%s: placed weights not 2 MiB aligned", what);
    const uint8_t *prev = h->base, *end = h->base + h->bytes;
    double sum = 0;
    for (int l = 0; l <= m->info.n_layers; l++) {
        const etok_layer *L = l < m->info.n_layers ? &m->layers[l] : NULL;
        const etok_mat *lm[7] = {L ? &L->wq : &m->output, L ? &L->wk : NULL, L ? &L->wv : NULL, L ? &L->wo : NULL,
                                 L ? &L->w_gate : NULL, L ? &L->w_up : NULL, L ? &L->w_down : NULL};
        for (int k = 0; k < (L ? 7 : 1); k++) {
            const size_t n = (size_t)lm[k]->n_out * lm[k]->row_bytes;
            if (lm[k]->data < prev || lm[k]->data + n > end || (uintptr_t)lm[k]->data % 64)
                fail_msg("%s: layer %d matrix %d at %p is not next in the placed weights [%p, %p)", what, l, k,
                         (const void *)lm[k]->data, (const void *)prev, (const void *)end);
            prev = lm[k]->data + n;
            sum += (double)((n + 63) / 64 * 64);
        }
    }
    assert_float_equal(m->info.weight_placed_bytes, sum, 0);
    assert_true(m->info.weight_huge_bytes >= 0 && m->info.weight_huge_bytes <= (double)h->mapped);
    if (m->info.tied_embeddings) assert_ptr_equal(m->tok_embd.data, m->output.data);
    else if (m->tok_embd.data >= h->base && m->tok_embd.data < end)
        fail_msg("%s: the untied embedding table was placed", what); /* a step reads one row of it a token */
}

/* The weights copied at load into one buffer (hugemem.h, "Weights in 2 MiB pages" in
 * docs/ENGINE.md): placed as check_placed says, again after --weights, and the logits bit for bit
 * those of the weights left where they were (ETOK_HUGEPAGES=0). */
static void test_weights_placed(void **state) {
    (void)state;
    const char *files[] = {"tiny.gguf", "mixed.gguf", "q4km.gguf"}, *formats[] = {NULL, "q8_0", "q4_0"};
    for (size_t f = 0; f < N_OF(files); f++)
        for (size_t w = 0; w < N_OF(formats); w++) {
            etok_err err = {{0}, 0};
            etok_model *m = etok_model_load(tmp_path(files[f]), &err);
            if (!m) fail_msg("%s", err.msg);
            check_placed(m, files[f]);
            if (formats[w]) {
                if (etok_model_set_weights(m, formats[w], &err)) fail_msg("%s", err.msg);
                check_placed(m, formats[w]);
            }
            etok_model_free(m);
            setenv(ETOK_HUGEMEM_ENV, "0", 1);
            m = etok_model_load(tmp_path(files[f]), &err);
            if (!m) fail_msg("%s", err.msg);
            assert_null(m->weights_mem.base);
            assert_float_equal(m->info.weight_placed_bytes, 0, 0);
            assert_ptr_equal(m->layers[0].wq.layout == ETOK_LAYOUT_FILE ? m->layers[0].wq.data : m->layers[0].wq.src,
                             m->layers[0].wq.src);
            etok_model_free(m);
            setenv(ETOK_HUGEMEM_ENV, "no", 1); /* neither 0 nor 1: refused, not taken as either */
            assert_null(etok_model_load(tmp_path(files[f]), &err));
            assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
            assert_non_null(strstr(err.msg, "ETOK_HUGEPAGES='no'"));
            unsetenv(ETOK_HUGEMEM_ENV);
            const int V = etok_tiny_gguf_vocab_size();
            float *a = malloc(V * sizeof(float)), *b = malloc(V * sizeof(float));
            logits_with(files[f], "1", formats[w], a);
            logits_with(files[f], "0", formats[w], b);
            if (memcmp(a, b, V * sizeof(float)))
                fail_msg("%s %s: placed weights change the logits", files[f], formats[w] ? formats[w] : "keep");
            free(a);
            free(b);
        }
}

static void test_tokenizer_wrappers(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("tiny.gguf"), &err);
    assert_non_null(m);
    int32_t ids[64];
    int n = etok_tokenize(m, "the thin", 1, 1, ids, 64, &err);
    assert_true(n > 0);
    char *back = etok_detokenize(m, ids, n);
    assert_string_equal(back, "the thin");
    free(back);
    assert_true(etok_token_is_eog(m, 2));
    assert_false(etok_token_is_eog(m, 100));
    size_t len;
    const char *piece = etok_token_piece(m, 3 + 'a', &len);
    assert_int_equal(len, 1);
    assert_int_equal(piece[0], 'a');
    char *chat = etok_chat_format(m, NULL, "hi", &err);
    assert_non_null(chat);
    assert_non_null(strstr(chat, "<|im_start|>user\nhi<|im_end|>"));
    n = etok_tokenize(m, chat, 1, 1, ids, 64, &err);
    assert_true(n > 3);
    assert_int_equal(ids[0], 1); /* <|im_start|> parsed as a special token */
    free(chat);
    assert_int_equal(etok_tokenize(m, "a long text here", 1, 1, ids, 2, &err), -1);
    etok_model_free(m);
}

/* Hyperparameters are validated at load (issue 9 §10): a NaN or 0 RoPE base or RMS epsilon
 * used to load and then produce NaN logits and empty output. Each bad value is refused with
 * exit 3 and the key named; the good file still loads. */
static void test_bad_hparams_refused(void **state) {
    (void)state;
    const struct {
        float rope, eps;
        int ctx;
        uint32_t vocab_key;
        const char *key;
    } cases[] = {
        {NAN, 1e-5f, 256, 0, "llama.rope.freq_base"},
        {0.0f, 1e-5f, 256, 0, "llama.rope.freq_base"},
        {-10000.0f, 1e-5f, 256, 0, "llama.rope.freq_base"},
        {INFINITY, 1e-5f, 256, 0, "llama.rope.freq_base"},
        {10000.0f, NAN, 256, 0, "llama.attention.layer_norm_rms_epsilon"},
        {10000.0f, 0.0f, 256, 0, "llama.attention.layer_norm_rms_epsilon"},
        {10000.0f, 1.0f, 256, 0, "llama.attention.layer_norm_rms_epsilon"},
        {10000.0f, -1e-5f, 256, 0, "llama.attention.layer_norm_rms_epsilon"},
        {10000.0f, 1e-5f, 0, 0, "llama.context_length"},
        {10000.0f, 1e-5f, 256, 7, "llama.vocab_size"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        etok_tiny_gguf_opts o;
        etok_tiny_gguf_defaults(&o);
        o.raw_hparams = 1;
        o.rope_freq_base = cases[i].rope;
        o.rms_eps = cases[i].eps;
        o.ctx_len = cases[i].ctx;
        o.vocab_size_key = cases[i].vocab_key;
        assert_int_equal(etok_test_write_tiny_gguf(tmp_path("bad_hparams.gguf"), &o), 0);
        etok_err err = {0};
        etok_model *m = etok_model_load(tmp_path("bad_hparams.gguf"), &err);
        if (m) fail_msg("case %zu (%s) was accepted", i, cases[i].key);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
        if (!strstr(err.msg, cases[i].key)) fail_msg("case %zu: '%s' does not name %s", i, err.msg, cases[i].key);
    }
    /* the same writer with sane values loads */
    etok_tiny_gguf_opts o;
    etok_tiny_gguf_defaults(&o);
    o.raw_hparams = 1;
    assert_int_equal(etok_test_write_tiny_gguf(tmp_path("bad_hparams.gguf"), &o), 0);
    etok_err err = {0};
    etok_model *m = etok_model_load(tmp_path("bad_hparams.gguf"), &err);
    if (!m) fail_msg("sane file refused: %s", err.msg);
    etok_model_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_hparams_refused),
        cmocka_unit_test(test_forward_reference), cmocka_unit_test(test_window_changes_result),
        cmocka_unit_test(test_window_ring_independent_of_chunk),
        cmocka_unit_test(test_chunking_and_threads), cmocka_unit_test(test_batched_equals_alone),
        cmocka_unit_test(test_slots_and_errors),  cmocka_unit_test(test_sampling),
        cmocka_unit_test(test_accounting),        cmocka_unit_test(test_tokenizer_wrappers),
        cmocka_unit_test(test_weights_placed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
