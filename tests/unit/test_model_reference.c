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
 * Tolerance: with F32 (or F16) weights and an F32 KV cache the engine computes in float32
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
    return etok_test_write_tiny_gguf(tmp_path("tied.gguf"), &o);
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

/* A tensor as doubles, from its bytes (F32 or F16 only). */
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
        } else {
            fail_msg("tensor %s: type %u is not F32/F16", name, t->type);
        }
    }
    if (n_out) *n_out = n;
    return v;
}

typedef struct {
    int L, d, nh, nkv, hd, dff, V;
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

/* o[n_out] = W x, W stored as n_out rows of n_in (GGUF ne[0] = n_in). */
static void mv(double *o, const double *w, const double *x, int n_in, int n_out) {
    for (int i = 0; i < n_out; i++) {
        double s = 0;
        for (int j = 0; j < n_in; j++) s += w[(size_t)i * n_in + j] * x[j];
        o[i] = s;
    }
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
            mv(q, r->wq[l], xn, d, d);
            mv(k, r->wk[l], xn, d, kvd);
            mv(v, r->wv[l], xn, d, kvd);
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
            mv(tmp, r->wo[l], att, d, d);
            for (int i = 0; i < d; i++) x[i] += tmp[i];
            norm(xn, x, r->fn[l], d, r->eps);
            mv(g, r->wg[l], xn, d, r->dff);
            mv(u, r->wu[l], xn, d, r->dff);
            for (int i = 0; i < r->dff; i++) g[i] = g[i] / (1.0 + exp(-g[i])) * u[i];
            mv(tmp, r->wd[l], g, r->dff, d);
            for (int i = 0; i < d; i++) x[i] += tmp[i];
        }
    }
    norm(xn, x, r->onorm, d, r->eps);
    mv(logits, r->out ? r->out : r->embd, xn, d, r->V);
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
static void check_model(const char *file) {
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path(file), &err);
    if (!m) fail_msg("%s", err.msg);
    ref_model r;
    memset(&r, 0, sizeof r);
    ref_load(&r, tmp_path(file));
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
                etok_engine_opts o = {th, 1, 64, chunk, 32, 0};
                engine_logits(m, &o, lens[li], got);
                double diff = 0;
                int at = 0;
                for (int i = 0; i < V; i++)
                    if (fabs(got[i] - want[i]) > diff) {
                        diff = fabs(got[i] - want[i]);
                        at = i;
                    }
                if (getenv("ETOK_TEST_VERBOSE"))
                    printf("%s n=%d chunk=%d threads=%d: max diff %.3g (%.2g of range %.3g)\n", file, lens[li], chunk,
                           th, diff, diff / range, range);
                if (!(diff <= TOL_OF_RANGE * range))
                    fail_msg("%s, %d tokens, chunk %d, %d threads: logit %d is %.6f, the double reference says %.6f "
                             "(max diff %.3g > %.0e of the range %.3g)",
                             file, lens[li], chunk, th, at, (double)got[at], want[at], diff, TOL_OF_RANGE, range);
            }
    }
    free(want);
    free(got);
    ref_free(&r);
    etok_model_free(m);
}

static void forward_matches_double_reference_f32(void **state) {
    (void)state;
    check_model("f32.gguf");
}

static void forward_matches_double_reference_f16(void **state) {
    (void)state;
    check_model("f16.gguf");
}

static void forward_matches_double_reference_tied_default_base(void **state) {
    (void)state;
    check_model("tied.gguf");
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
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
