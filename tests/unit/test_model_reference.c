/* test_model_reference.c — the forward pass against an independent double-precision reference.
 *
 * A tiny synthetic Llama (2 layers, d 64, 4 query heads over 2 KV heads, d_ff 128, untied LM
 * head) is written with F32 weights, and again with F16 weights. This file recomputes its
 * logits from the raw tensor bytes in plain double-precision C, written from the Llama
 * equations and sharing no code with the engine (its own F16 decoder, matvec, RMSNorm, RoPE,
 * softmax, SwiGLU):
 *   x = embd[tok]; per layer: h = x + Wo.attn(rope(Wq.n(x)), rope(Wk.n(x)), Wv.n(x)),
 *   x = h + Wd.(silu(Wg.n(h)) * Wu.n(h)); logits = Wout.n(x),
 *   n(x) = x / sqrt(mean(x^2) + eps) * w   (eps INSIDE the square root),
 *   RoPE on adjacent pairs (x[2i], x[2i+1]) by pos * base^(-2i/head_dim),
 *   query head h reads KV head h / (n_heads / n_kv_heads), scores scaled by 1/sqrt(head_dim).
 *
 * The model is chosen so every piece of that maths moves the logits far more than the
 * tolerance: eps = 0.02 (against a mean square of ~0.08, so eps outside the root changes the
 * norm by ~4%), weights of scale 0.3 (peaked attention, so position and head grouping
 * matter), rope base 500 (so all frequencies turn within the 19-token prompt).
 *
 * Activations into an F16 (BF16) matrix are rounded to F16 (BF16) first, as llama.cpp does
 * (engine/matmul_float.h); the reference does the same with its own rounding (round_act).
 * Tolerance: with F32 weights and an F32 KV cache the engine computes in float32
 * throughout (no activation quantisation: only block-quantised types use the 8-bit q8a
 * path), so the only difference from the double reference is float rounding: dot products of
 * at most 128 terms (relative error ~1e-6), exp/cos/sin in float and the angle as a running
 * float product (~1e-6 relative at these positions). Observed: 1e-7 to 3e-7 of the logit
 * range (printed with ETOK_TEST_VERBOSE=1); the tolerance, 1e-4 of the range, is ~300x that
 * and far below what any of the mutations listed in tests/mutate/mutants.txt for model.c
 * produce (eps outside the root alone moves the logits by several percent of the range). */
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
#include "engine/quant.h"
#include "etok/engine.h"
#include "synth_gguf.h"

#define TOL_OF_RANGE 1e-4

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", tmpdir, name);
    return p[k];
}

static void model_opts(etok_tiny_gguf_opts *o, uint32_t type) {
    etok_tiny_gguf_defaults(o);
    o->weight_type = o->embd_type = type;
    o->output_type = ETOK_T_F16; /* (F32 is type 0, which the writer reads as "its default") */
    o->tied = 0;
    o->weight_scale = 0.3f;
    o->rms_eps = 0.02f;
    o->rope_freq_base = 500.0f;
    o->seed = 11;
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/etok_test_modelref_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    etok_tiny_gguf_opts o;
    model_opts(&o, ETOK_T_F32);
    if (etok_test_write_tiny_gguf(tmp_path("f32.gguf"), &o)) return -1;
    model_opts(&o, ETOK_T_F16);
    o.seed = 12;
    if (etok_test_write_tiny_gguf(tmp_path("f16.gguf"), &o)) return -1;
    model_opts(&o, ETOK_T_F32); /* tied head, the GGUF default rope base (key absent), small eps */
    o.tied = 1;
    o.rope_freq_base = 0;
    o.rms_eps = 0;
    o.seed = 13;
    if (etok_test_write_tiny_gguf(tmp_path("tied.gguf"), &o)) return -1;
    model_opts(&o, ETOK_T_Q5_0);
    o.seed = 15;
    if (etok_test_write_tiny_gguf(tmp_path("q5_0.gguf"), &o)) return -1;
    model_opts(&o, ETOK_T_Q5_1);
    o.seed = 16;
    if (etok_test_write_tiny_gguf(tmp_path("q5_1.gguf"), &o)) return -1;
    model_opts(&o, ETOK_T_F16); /* rows of 256: whole K-format blocks, for --weights q*_k */
    o.d_model = 256;
    o.d_ff = 256;
    o.seed = 17;
    if (etok_test_write_tiny_gguf(tmp_path("wide.gguf"), &o)) return -1;
    model_opts(&o, ETOK_T_Q4_1); /* the default model's format, for the --weights lever */
    o.seed = 14;
    return etok_test_write_tiny_gguf(tmp_path("q4_1.gguf"), &o);
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ------------------------------------------------------------------ the reference */

/* IEEE half -> double, written out (not the engine's converter). */
static double half_to_double(uint16_t h) {
    int sign = h >> 15, ex = (h >> 10) & 31, man = h & 1023;
    double v;
    if (ex == 0)
        v = ldexp(man, -24);
    else if (ex == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexp(1024 + man, ex - 25);
    return sign ? -v : v;
}

/* A tensor as doubles, from its bytes (F32, F16, or Q4_1: blocks of 32 as d, m (F16) and 16
 * bytes of nibbles, low nibbles values 0..15, high nibbles 16..31, x = d*q + m; Q5_0 and
 * Q5_1 as ggml's block_q5_0 {d, qh[4], qs[16]} and block_q5_1 {d, m, qh[4], qs[16]}: the
 * nibbles as in Q4_1, the 5th bit of value j is bit j of qh (little-endian), x = d*(q-16) and
 * x = d*q + m). */
static double *tensor(const etok_gguf *g, const char *name, size_t *n_out) {
    const etok_gguf_tensor *t = etok_gguf_find_tensor(g, name);
    if (!t) fail_msg("tensor %s missing", name);
    size_t n = (size_t)t->n_elems;
    double *v = malloc(n * sizeof *v);
    assert_non_null(v);
    const uint8_t *p = t->data;
    for (size_t i = 0; i < n; i++) {
        if (t->type == ETOK_T_F32) {
            float f;
            memcpy(&f, p + 4 * i, 4);
            v[i] = f;
        } else if (t->type == ETOK_T_F16) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            v[i] = half_to_double(h);
        } else if (t->type == ETOK_T_Q4_1) {
            const uint8_t *b = p + 20 * (i / 32);
            const size_t j = i % 32;
            uint16_t hd, hm;
            memcpy(&hd, b, 2);
            memcpy(&hm, b + 2, 2);
            const int q = j < 16 ? b[4 + j] & 15 : b[4 + j - 16] >> 4;
            v[i] = half_to_double(hd) * q + half_to_double(hm);
        } else if (t->type == ETOK_T_Q5_0 || t->type == ETOK_T_Q5_1) {
            const int q51 = t->type == ETOK_T_Q5_1;
            const uint8_t *b = p + (q51 ? 24 : 22) * (i / 32);
            const size_t j = i % 32;
            uint16_t hd, hm = 0;
            memcpy(&hd, b, 2);
            if (q51) memcpy(&hm, b + 2, 2);
            const uint8_t *qh = b + (q51 ? 4 : 2), *qs = qh + 4;
            const int lo = j < 16 ? qs[j] & 15 : qs[j - 16] >> 4, hi = (qh[j / 8] >> (j % 8)) & 1;
            const int q = lo + 16 * hi;
            v[i] = q51 ? half_to_double(hd) * q + half_to_double(hm) : half_to_double(hd) * (q - 16);
        } else {
            fail_msg("tensor %s: type %u is not F32/F16/Q4_1/Q5_0/Q5_1", name, t->type);
        }
    }
    if (n_out) *n_out = n;
    return v;
}

typedef struct {
    int L, d, nh, nkv, hd, dff, V;
    /* the type the activations are rounded to before a layer matrix / the LM head (F16 or
     * BF16 for matrices of that type, as llama.cpp converts them to its vec_dot_type; else
     * F32 = not rounded): from the file's types, or from the --weights lever */
    uint32_t act_layer, act_out;
    double eps, base;
    double *embd, *out, *onorm;
    double *wq[4], *wk[4], *wv[4], *wo[4], *wg[4], *wu[4], *wd[4], *an[4], *fn[4];
} ref_model;

static uint32_t key_u32(const etok_gguf *g, const char *k, uint32_t dflt) {
    etok_err err = {{0}, 0};
    uint32_t v;
    return etok_gguf_get_u32(g, k, &v, &err) == 1 ? v : dflt;
}

static void ref_load(ref_model *r, const char *path) {
    etok_err err = {{0}, 0};
    etok_gguf *g = etok_gguf_open(path, &err);
    if (!g) fail_msg("%s", err.msg);
    r->L = (int)key_u32(g, "llama.block_count", 0);
    r->d = (int)key_u32(g, "llama.embedding_length", 0);
    r->nh = (int)key_u32(g, "llama.attention.head_count", 0);
    r->nkv = (int)key_u32(g, "llama.attention.head_count_kv", 0);
    r->dff = (int)key_u32(g, "llama.feed_forward_length", 0);
    assert_true(r->L > 0 && r->L <= 4);
    r->hd = r->d / r->nh;
    r->V = etok_tiny_gguf_vocab_size();
    float f;
    r->base = etok_gguf_get_f32(g, "llama.rope.freq_base", &f, &err) == 1 ? f : 10000.0;
    r->eps = etok_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f, &err) == 1 ? f : 1e-5;
    r->embd = tensor(g, "token_embd.weight", NULL);
    r->out = etok_gguf_find_tensor(g, "output.weight") ? tensor(g, "output.weight", NULL) : NULL;
    r->onorm = tensor(g, "output_norm.weight", NULL);
    const etok_gguf_tensor *tl = etok_gguf_find_tensor(g, "blk.0.attn_q.weight"),
                           *to = etok_gguf_find_tensor(g, r->out ? "output.weight" : "token_embd.weight");
    r->act_layer = tl && (tl->type == ETOK_T_F16 || tl->type == ETOK_T_BF16) ? tl->type : ETOK_T_F32;
    r->act_out = to && (to->type == ETOK_T_F16 || to->type == ETOK_T_BF16) ? to->type : ETOK_T_F32;
    double **fields[9] = {r->wq, r->wk, r->wv, r->wo, r->wg, r->wu, r->wd, r->an, r->fn};
    const char *names[9] = {"attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down", "attn_norm", "ffn_norm"};
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < r->L; l++) {
            char nm[64];
            snprintf(nm, sizeof nm, "blk.%d.%s.weight", l, names[k]);
            fields[k][l] = tensor(g, nm, NULL);
        }
    etok_gguf_close(g);
}

static void ref_free(ref_model *r) {
    double **fields[9] = {r->wq, r->wk, r->wv, r->wo, r->wg, r->wu, r->wd, r->an, r->fn};
    for (int k = 0; k < 9; k++)
        for (int l = 0; l < r->L; l++) free(fields[k][l]);
    free(r->embd);
    free(r->out);
    free(r->onorm);
}

/* x as the engine holds it (a float), then to the nearest F16 (10 fraction bits, smallest
 * exponent -14) or BF16 (7 fraction bits) value, ties to even (nearbyint in the default
 * rounding mode); F32: the float. */
static double round_act(double x, uint32_t type) {
    const double f = (float)x;
    if (type == ETOK_T_F32 || f == 0) return f;
    int e = ilogb(f);
    if (type == ETOK_T_F16 && e < -14) e = -14;
    const double step = ldexp(1.0, e - (type == ETOK_T_F16 ? 10 : 7));
    return nearbyint(f / step) * step;
}

/* o[n_out] = W x, W stored as n_out rows of n_in (GGUF ne[0] = n_in), x rounded to `act`
 * first (see ref_model). */
static void mv(double *o, const double *w, const double *x0, int n_in, int n_out, uint32_t act) {
    double *x = malloc((size_t)n_in * sizeof *x);
    assert_non_null(x);
    for (int j = 0; j < n_in; j++) x[j] = act == ETOK_T_F32 ? x0[j] : round_act(x0[j], act);
    for (int i = 0; i < n_out; i++) {
        double s = 0;
        for (int j = 0; j < n_in; j++) s += w[(size_t)i * n_in + j] * x[j];
        o[i] = s;
    }
    free(x);
}

static void norm(double *o, const double *x, const double *w, int n, double eps) {
    double ms = 0;
    for (int i = 0; i < n; i++) ms += x[i] * x[i];
    ms /= n;
    const double r = 1.0 / sqrt(ms + eps);
    for (int i = 0; i < n; i++) o[i] = x[i] * r * w[i];
}

static void rope_head(double *v, int hd, int pos, double base) {
    for (int i = 0; i < hd / 2; i++) {
        const double th = pos * pow(base, -2.0 * i / hd), c = cos(th), s = sin(th);
        const double a = v[2 * i], b = v[2 * i + 1];
        v[2 * i] = a * c - b * s;
        v[2 * i + 1] = a * s + b * c;
    }
}

/* Logits (double) after the last of n tokens. */
static void ref_forward(const ref_model *r, const int32_t *toks, int n, double *logits) {
    const int d = r->d, kvd = r->nkv * r->hd, hd = r->hd;
    double *K = calloc((size_t)r->L * n * kvd, sizeof *K), *Vc = calloc((size_t)r->L * n * kvd, sizeof *Vc);
    double *x = malloc(d * sizeof *x), *xn = malloc(d * sizeof *xn), *q = malloc(d * sizeof *q),
           *att = malloc(d * sizeof *att), *tmp = malloc(d * sizeof *tmp), *g = malloc(r->dff * sizeof *g),
           *u = malloc(r->dff * sizeof *u), *w = malloc(n * sizeof *w);
    for (int p = 0; p < n; p++) {
        memcpy(x, r->embd + (size_t)toks[p] * d, d * sizeof *x);
        for (int l = 0; l < r->L; l++) {
            double *k = K + ((size_t)l * n + p) * kvd, *v = Vc + ((size_t)l * n + p) * kvd;
            norm(xn, x, r->an[l], d, r->eps);
            mv(q, r->wq[l], xn, d, d, r->act_layer);
            mv(k, r->wk[l], xn, d, kvd, r->act_layer);
            mv(v, r->wv[l], xn, d, kvd, r->act_layer);
            for (int h = 0; h < r->nh; h++) rope_head(q + h * hd, hd, p, r->base);
            for (int h = 0; h < r->nkv; h++) rope_head(k + h * hd, hd, p, r->base);
            for (int h = 0; h < r->nh; h++) {
                const int kh = h / (r->nh / r->nkv);
                double mx = -INFINITY, sum = 0;
                for (int s = 0; s <= p; s++) {
                    double dot = 0;
                    for (int i = 0; i < hd; i++) dot += q[h * hd + i] * K[((size_t)l * n + s) * kvd + kh * hd + i];
                    w[s] = dot / sqrt((double)hd);
                    mx = fmax(mx, w[s]);
                }
                for (int s = 0; s <= p; s++) sum += (w[s] = exp(w[s] - mx));
                for (int i = 0; i < hd; i++) {
                    double o = 0;
                    for (int s = 0; s <= p; s++) o += w[s] / sum * Vc[((size_t)l * n + s) * kvd + kh * hd + i];
                    att[h * hd + i] = o;
                }
            }
            mv(tmp, r->wo[l], att, d, d, r->act_layer);
            for (int i = 0; i < d; i++) x[i] += tmp[i];
            norm(xn, x, r->fn[l], d, r->eps);
            mv(g, r->wg[l], xn, d, r->dff, r->act_layer);
            mv(u, r->wu[l], xn, d, r->dff, r->act_layer);
            for (int i = 0; i < r->dff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            mv(tmp, r->wd[l], g, r->dff, d, r->act_layer);
            for (int i = 0; i < d; i++) x[i] += tmp[i];
        }
    }
    norm(xn, x, r->onorm, d, r->eps);
    mv(logits, r->out ? r->out : r->embd, xn, d, r->V, r->act_out);
    free(K);
    free(Vc);
    free(x);
    free(xn);
    free(q);
    free(att);
    free(tmp);
    free(g);
    free(u);
    free(w);
}

/* ------------------------------------------------------------------ the engine side */

static const int32_t prompt[] = {100, 3, 250, 17, 17, 17, 201, 8, 66, 67, 68, 69, 70, 71, 72, 73, 74, 75, 76};
#define N_PROMPT (int)(sizeof prompt / sizeof prompt[0])

static void engine_logits(etok_model *m, const etok_engine_opts *o, int n, float *out) {
    etok_err err = {{0}, 0};
    etok_engine *e = etok_engine_new(m, o, &err);
    if (!e) fail_msg("%s", err.msg);
    int id = etok_engine_add(e, prompt, n, 0, NULL, &err);
    assert_true(id >= 0);
    etok_step_result res;
    int finished = 0;
    while (!finished) {
        assert_int_equal(etok_engine_step(e, &res, &err), 0);
        for (int k = 0; k < res.n_events; k++) finished |= res.events[k].finished;
    }
    const float *l = etok_engine_logits(e, id);
    assert_non_null(l);
    memcpy(out, l, (size_t)etok_model_get_info(m)->vocab_size * sizeof(float));
    etok_engine_free(e);
}

/* Compare at prompt lengths 1 (no attention context), 2 and the whole prompt, prefilled in one
 * step (the multi-token paths) and token by token (the single-token paths), 1 and 2 threads. */
static double check_model_as(const char *file, const char *weights, double tol_of_range) {
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path(file), &err);
    if (!m) fail_msg("%s", err.msg);
    if (etok_model_set_weights(m, weights, &err)) fail_msg("%s", err.msg);
    double worst = 0;
    ref_model r;
    memset(&r, 0, sizeof r);
    ref_load(&r, tmp_path(file));
    if (weights) { /* the lever re-encodes every matrix: f16 / bf16 round the activations too */
        const uint32_t act = !strcmp(weights, "f16") ? ETOK_T_F16 : !strcmp(weights, "bf16") ? ETOK_T_BF16 : ETOK_T_F32;
        r.act_layer = r.act_out = act;
    }
    assert_int_equal(etok_model_get_info(m)->vocab_size, r.V);
    const int V = r.V;
    double *want = malloc(V * sizeof *want);
    float *got = malloc(V * sizeof *got);
    const int lens[3] = {1, 2, N_PROMPT};
    for (int li = 0; li < 3; li++) {
        ref_forward(&r, prompt, lens[li], want);
        double lo = want[0], hi = want[0];
        for (int i = 1; i < V; i++) {
            lo = fmin(lo, want[i]);
            hi = fmax(hi, want[i]);
        }
        const double range = hi - lo;
        assert_true(range > 1.0); /* logits that say something */
        for (int chunk = 0; chunk <= 1; chunk++)
            for (int th = 1; th <= 2; th++) {
                etok_engine_opts o = {th, 1, 64, chunk, 32, 0, 0};
                engine_logits(m, &o, lens[li], got);
                double diff = 0;
                int at = 0;
                for (int i = 0; i < V; i++)
                    if (fabs(got[i] - want[i]) > diff) {
                        diff = fabs(got[i] - want[i]);
                        at = i;
                    }
                if (getenv("ETOK_TEST_VERBOSE"))
                    printf("%s --weights %s n=%d chunk=%d threads=%d: max diff %.3g (%.2g of range %.3g)\n", file,
                           weights ? weights : "keep", lens[li], chunk, th, diff, diff / range, range);
                worst = fmax(worst, diff / range);
                if (!(diff <= tol_of_range * range))
                    fail_msg("%s --weights %s, %d tokens, chunk %d, %d threads: logit %d is %.6f, the double reference "
                             "says %.6f (max diff %.3g > %.0e of the range %.3g)",
                             file, weights ? weights : "keep", lens[li], chunk, th, at, (double)got[at], want[at], diff,
                             tol_of_range, range);
            }
    }
    free(want);
    free(got);
    ref_free(&r);
    etok_model_free(m);
    return worst;
}

static void check_model(const char *file) { (void)check_model_as(file, NULL, TOL_OF_RANGE); }

static void forward_matches_double_reference_f32(void **state) {
    (void)state;
    check_model("f32.gguf");
}

/* F16 matrices in every layer: an activation within float rounding of a midpoint between two
 * F16 values can round one way in the engine and the other in the reference (a step of 2^-11
 * relative), and the peaked attention carries that on: observed 1.5e-4 of the range at 19
 * tokens (1e-7 without the F16 rounding of activations on both sides). Tolerance 1e-3. */
static void forward_matches_double_reference_f16(void **state) {
    (void)state;
    (void)check_model_as("f16.gguf", NULL, 1e-3);
}

static void forward_matches_double_reference_tied_default_base(void **state) {
    (void)state;
    check_model("tied.gguf");
}

/* The --weights lever on a Q4_1 model (the default model's format). The reference reads the
 * Q4_1 blocks exactly (x = d*q + m in double).
 *  - --weights f32: dequantising Q4_1 into floats is exact (an F16 d times a 4-bit q, plus an
 *    F16 m, fits a float's 24-bit mantissa up to one rounding of the sum, ~6e-8 relative), and
 *    F32 matrices take float activations, so the engine must match the reference as tightly
 *    as for a file stored in F32: TOL_OF_RANGE.
 *  - --weights f16: one rounding of each dequantised value to F16 (relative 2^-11 = 4.9e-4 per
 *    weight, independent signs, so a 64..128-term dot moves by ~5e-4 / sqrt(terms) relative;
 *    through 2 layers and this model's peaked attention (weight scale 0.3) the logits moved by
 *    at most 7.7e-4 of their range). Tolerance 4e-3 of the range.
 *  - keep (Q4_1 kernels): activations are quantised to 8 bits per block of 32 (step = block
 *    max / 127, so each activation is off by up to 0.4% of its block's largest value); that is
 *    the Q4_1 path's error against the exact-weight reference, observed 1.0e-2 of the range.
 *    Tolerance 5e-2 of the range, and it must be far larger than the f32 path's error (the
 *    8-bit activations are really what separates them: if the two agreed to 1e-4, the lever
 *    would not be changing the kernels). */
#define TOL_F16_WEIGHTS 4e-3
#define TOL_Q8_ACTIVATIONS 5e-2
#define TOL_Q5_FROM_Q4_1 2e-1

static void weights_f32_from_q4_1_is_exact(void **state) {
    (void)state;
    const double e32 = check_model_as("q4_1.gguf", "f32", TOL_OF_RANGE);
    const double e16 = check_model_as("q4_1.gguf", "f16", TOL_F16_WEIGHTS);
    const double eq = check_model_as("q4_1.gguf", "keep", TOL_Q8_ACTIVATIONS);
    /* Q8_0 from Q4_1: weight rounding of ~0.55% RMS (measured on the real model's matrices)
     * plus the 8-bit activations; observed 2.0e-2 of the range here */
    const double e8 = check_model_as("q4_1.gguf", "q8_0", TOL_Q8_ACTIVATIONS);
    if (getenv("ETOK_TEST_VERBOSE")) printf("q8_0 %.2g\n", e8);
    /* Q5_0 / Q5_1 from Q4_1: one more rounding of each weight (a step of max|w|/16 for Q5_0,
     * range/31 for Q5_1, against Q4_1's range/15) plus the 8-bit activations; observed
     * 9.3e-2 and 9.2e-2 of the range here; tolerance 2e-1 */
    const double e50 = check_model_as("q4_1.gguf", "q5_0", TOL_Q5_FROM_Q4_1);
    const double e51 = check_model_as("q4_1.gguf", "q5_1", TOL_Q5_FROM_Q4_1);
    if (getenv("ETOK_TEST_VERBOSE")) printf("q5_0 %.2g, q5_1 %.2g\n", e50, e51);
    if (getenv("ETOK_TEST_VERBOSE")) printf("worst of range: f32 %.2g, f16 %.2g, q4_1 %.2g\n", e32, e16, eq);
    assert_true(e32 < e16 || e16 == 0);
    assert_true(eq > 10 * e32);
}

/* Q5_0 and Q5_1 files (every matrix, the embedding too) against the reference reading the
 * 5-bit blocks itself: --weights f32 dequantises exactly (Q5_0: an F16 d times an integer of
 * 5 bits; Q5_1: plus one rounding of "+ m"), so TOL_OF_RANGE; the Q5 kernels themselves
 * (8-bit activations) within TOL_Q8_ACTIVATIONS, as Q4_1's. A misplaced 5th bit moves each
 * affected weight by 16 steps, which no tolerance here absorbs. */
static void q5_blocks_match_double_reference(void **state) {
    (void)state;
    const char *files[2] = {"q5_0.gguf", "q5_1.gguf"};
    for (int k = 0; k < 2; k++) {
        const double e32 = check_model_as(files[k], "f32", TOL_OF_RANGE);
        const double eq = check_model_as(files[k], "keep", TOL_Q8_ACTIVATIONS);
        if (getenv("ETOK_TEST_VERBOSE")) printf("%s worst of range: f32 %.2g, keep %.2g\n", files[k], e32, eq);
        assert_true(eq > 10 * e32);
    }
    /* the lever names map to the 5-bit types */
    const char *fmt[2] = {"q5_0", "q5_1"}, *tn[2] = {"Q5_0 x", "Q5_1 x"};
    for (int k = 0; k < 2; k++) {
        etok_err err = {{0}, 0};
        etok_model *m = etok_model_load(tmp_path("q4_1.gguf"), &err);
        if (!m) fail_msg("%s", err.msg);
        assert_int_equal(etok_model_set_weights(m, fmt[k], &err), 0);
        if (!strstr(etok_model_get_info(m)->weight_types, tn[k]))
            fail_msg("--weights %s: types %s", fmt[k], etok_model_get_info(m)->weight_types);
        etok_model_free(m);
    }
}

/* --weights offers every format the engine quantises (issue 14). On rows of 256 values (a
 * d_model 256 file in F16) each K format is used as asked; on rows of 64 (the Q4_1 file) a K
 * format takes llama-quantize's fallback. Each re-encoded model runs against the double
 * reference (peaked weights, logits over a range of 15: sensitive) within about 1.6x the
 * worst-of-range error measured here (ETOK_TEST_VERBOSE): bf16 0.034 (weights and, as in
 * llama.cpp, activations rounded to BF16; 0.015 with float activations), q6_k 0.11, q5_k 0.20,
 * q4_k 0.28, iq4_nl 0.28, q3_k 0.49, q2_k 0.60; a wrong kernel or layout is off by the whole
 * range. And fewer bits, larger error: bf16 < q6_k < q4_k < q2_k. */
static void weights_lever_every_format(void **state) {
    (void)state;
    static const struct {
        const char *fmt, *wide_type, *narrow_type;
        double tol;
    } f[] = {{"bf16", "BF16 x", "BF16 x", 0.06},  {"iq4_nl", "IQ4_NL x", "IQ4_NL x", 0.45},
             {"q6_k", "Q6_K x", "Q8_0 x", 0.2},   {"q5_k", "Q5_K x", "Q5_1 x", 0.35},
             {"q4_k", "Q4_K x", "Q5_0 x", 0.45},  {"q3_k", "Q3_K x", "IQ4_NL x", 0.8},
             {"q2_k", "Q2_K x", "IQ4_NL x", 0.9}};
    double err_of[7];
    for (size_t k = 0; k < sizeof f / sizeof f[0]; k++) {
        etok_err e2 = {{0}, 0};
        assert_int_equal(etok_weights_format_check(f[k].fmt, &e2), 0);
        err_of[k] = check_model_as("wide.gguf", f[k].fmt, f[k].tol);
        if (getenv("ETOK_TEST_VERBOSE")) printf("--weights %s on rows of 256: worst of range %.2g\n", f[k].fmt, err_of[k]);
        const char *files[2] = {"wide.gguf", "q4_1.gguf"}, *want[2] = {f[k].wide_type, f[k].narrow_type};
        for (int w = 0; w < 2; w++) {
            etok_err err = {{0}, 0};
            etok_model *m = etok_model_load(tmp_path(files[w]), &err);
            if (!m) fail_msg("%s", err.msg);
            assert_int_equal(etok_model_set_weights(m, f[k].fmt, &err), 0);
            if (!strstr(etok_model_get_info(m)->weight_types, want[w]))
                fail_msg("--weights %s on %s: types %s, expected %s", f[k].fmt, files[w],
                         etok_model_get_info(m)->weight_types, want[w]);
            etok_model_free(m);
        }
    }
    assert_true(err_of[0] < err_of[2] && err_of[2] < err_of[4] && err_of[4] < err_of[6]);
}

/* What the lever changes in the model's description: types, bytes, the step's bytes. */
static void weights_lever_rewrites_types_and_bytes(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("q4_1.gguf"), &err);
    if (!m) fail_msg("%s", err.msg);
    const etok_model_info in0 = *etok_model_get_info(m);
    const double step0 = etok_model_weight_bytes(m);
    assert_non_null(strstr(in0.weight_types, "Q4_1"));
    assert_int_equal(etok_model_set_weights(m, "f32", &err), 0);
    const etok_model_info *in = etok_model_get_info(m);
    assert_null(strstr(in->weight_types, "Q4_1"));
    assert_non_null(strstr(in->weight_types, "F32"));
    /* matrices: the embedding and 7 per layer in Q4_1 (20 bytes per 32 values -> 4 bytes per
     * value), the untied head in F16 (2 -> 4 bytes per value); the F32 norm vectors stay */
    const double embd = (double)in->vocab_size * in->d_model, head = embd,
                 layers = in->n_layers * (2.0 * in->d_model * in->d_model +
                                          2.0 * in->d_model * in->n_kv_heads * in->head_dim +
                                          3.0 * in->d_model * in->d_ff);
    const double q41_growth = 4.0 - 20.0 / 32, f16_growth = 4.0 - 2.0;
    assert_true(fabs((in->weight_bytes - in0.weight_bytes) - ((embd + layers) * q41_growth + head * f16_growth)) < 0.5);
    /* a step streams all but the (untied) embedding table */
    assert_true(fabs((etok_model_weight_bytes(m) - step0) - (layers * q41_growth + head * f16_growth)) < 0.5);
    /* a second call is refused; the model stays usable */
    assert_int_equal(etok_model_set_weights(m, "f16", &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    etok_model_free(m);
    /* unknown formats: usage error naming the flag and the value */
    const char *bad[] = {"q4_K", "F32", "", "f32 ", "q8_1", "iq4_xs"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        etok_err e2 = {{0}, 0};
        assert_int_equal(etok_weights_format_check(bad[i], &e2), -1);
        assert_int_equal(e2.exit_code, ETOK_EXIT_USAGE);
        assert_non_null(strstr(e2.msg, "--weights"));
    }
    const char *good[] = {"keep", "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                          "iq4_nl", "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        etok_err e2 = {{0}, 0};
        assert_int_equal(etok_weights_format_check(good[i], &e2), 0);
    }
}

/* The reference itself must be sensitive: moving eps out of the root, or pairing RoPE halves
 * instead of neighbours, changes its logits by far more than the tolerance. (This guards the
 * test's premise; the engine-side mutations are in tests/mutate/mutants.txt.) */
static void reference_is_sensitive_to_eps(void **state) {
    (void)state;
    ref_model r;
    memset(&r, 0, sizeof r);
    ref_load(&r, tmp_path("f32.gguf"));
    const int V = r.V;
    double *a = malloc(V * sizeof *a), *b = malloc(V * sizeof *b);
    ref_forward(&r, prompt, N_PROMPT, a);
    r.eps = 0; /* the smallest change an eps misplacement could make: none at all */
    ref_forward(&r, prompt, N_PROMPT, b);
    double lo = a[0], hi = a[0], diff = 0;
    for (int i = 0; i < V; i++) {
        lo = fmin(lo, a[i]);
        hi = fmax(hi, a[i]);
        diff = fmax(diff, fabs(a[i] - b[i]));
    }
    if (getenv("ETOK_TEST_VERBOSE")) printf("eps 0.02 vs 0: %.3g of the range\n", diff / (hi - lo));
    assert_true(diff > 10 * TOL_OF_RANGE * (hi - lo));
    free(a);
    free(b);
    ref_free(&r);
}

/* The head and the byte accounting follow from the file: untied (output.weight present) means
 * the LM head is its own matrix, and a step streams every tensor but the embedding table (of
 * which only the step's rows are read); tied means the embedding is the head and is streamed
 * whole. Bytes from the tensor table, independently of the engine. */
static void head_and_step_bytes_follow_the_file(void **state) {
    (void)state;
    const char *files[2] = {"f32.gguf", "tied.gguf"};
    for (int k = 0; k < 2; k++) {
        etok_err err = {{0}, 0};
        etok_gguf *g = etok_gguf_open(tmp_path(files[k]), &err);
        if (!g) fail_msg("%s", err.msg);
        double all = 0;
        for (uint64_t i = 0; i < g->n_tensors; i++) all += (double)g->tensors[i].n_bytes;
        const int untied = etok_gguf_find_tensor(g, "output.weight") != NULL;
        const double embd = (double)etok_gguf_find_tensor(g, "token_embd.weight")->n_bytes;
        etok_gguf_close(g);
        etok_model *m = etok_model_load(tmp_path(files[k]), &err);
        if (!m) fail_msg("%s", err.msg);
        assert_int_equal(untied, k == 0);
        assert_int_equal(etok_model_get_info(m)->tied_embeddings, !untied);
        assert_true(etok_model_get_info(m)->weight_bytes == all);
        const double want = untied ? all - embd : all;
        if (etok_model_weight_bytes(m) != want)
            fail_msg("%s: step streams %.0f bytes, the tensor table says %.0f", files[k], etok_model_weight_bytes(m), want);
        etok_model_free(m);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(head_and_step_bytes_follow_the_file),
        cmocka_unit_test(forward_matches_double_reference_f32),
        cmocka_unit_test(forward_matches_double_reference_f16),
        cmocka_unit_test(forward_matches_double_reference_tied_default_base),
        cmocka_unit_test(reference_is_sensitive_to_eps),
        cmocka_unit_test(weights_f32_from_q4_1_is_exact),
        cmocka_unit_test(weights_lever_rewrites_types_and_bytes),
        cmocka_unit_test(weights_lever_every_format),
        cmocka_unit_test(q5_blocks_match_double_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
