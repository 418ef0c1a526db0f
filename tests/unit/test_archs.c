/* test_archs.c — the qwen2, qwen3 and phi3 architectures and llama's sliding window (Mistral)
 * on tiny synthetic GGUF files that this suite writes deterministically (synth_gguf.c: fixed
 * seeds, 2 layers, d_model 64, F32 or Q8_0 weights, the tiny byte-level vocabulary), against
 * reference logits at every position of a fixed 12-token sequence in
 * tests/fixtures/reference/arch_logits.json (its README section says how they were made):
 *  - "llama.cpp": llama.cpp (c392e5094, CPU) run on the very same files. That llama.cpp has no
 *    qwen3 and ignores llama.attention.sliding_window, so those two cases have none;
 *  - "numpy": scripts/gen_arch_reference.py, an independent float32 numpy forward pass over
 *    the files' weights (every case; it agrees with llama.cpp where both exist, checked here).
 * Each file's FNV-1a hash is in the fixture: if the writer changes, the test says so instead of
 * comparing against logits of another file.
 *
 * What is proven: etok's logits equal the reference's within the tolerances below, for the whole
 * prompt in one step and for the same tokens decoded one per step (the KV cache path); the
 * sliding window takes effect (logits identical to the windowless file up to the window, different
 * after) and matches llama.cpp's phi3 mask; Qwen2's biases and Qwen3's QK-norm are required;
 * Llama 3.1's rope_freqs factors are applied as llama.cpp does; Phi-3's LongRoPE factors are
 * refused; an unsupported architecture names itself and the
 * supported list; the Phi-3, Phi-4, ChatML (Qwen) and Llama-2/Mistral [INST] chat templates
 * render as llama.cpp's built-ins do, and a template etok cannot render says so; Qwen's
 * pre-tokenizer splits digits as llama.cpp's does.
 *
 * ETOK_ARCH_WRITE_DIR=DIR build/test_archs writes the case files into DIR and exits (how the
 * reference files were produced). ETOK_TEST_VERBOSE=1 prints the measured differences. */
#include <jansson.h>
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

#include "engine/model.h"
#include "engine/quant.h"
#include "engine/threadpool.h"
#include "engine/tokenizer.h"
#include "etok/engine.h"
#include "synth_gguf.h"

#define REF_PATH "tests/fixtures/reference/arch_logits.json"
/* Tolerances on |d logit| (logits span about -8..8 on these files); measured maxima in
 * docs/ENGINE.md ("Architectures: qwen2, qwen3, phi3, and llama's sliding window"). */
#define TOL_F32 2e-4  /* F32 weights and KV: float rounding order only (measured <= 1.01e-5) */
#define TOL_Q8 2e-2   /* Q8_0 weights, F16 KV vs llama.cpp (measured 5e-7, the fixture's rounding;
                         room for exp() approximations that may flip an 8-bit rounding) */
#define TOL_REFS 2e-4 /* numpy vs llama.cpp, F32 cases (measured 9e-6) */

static const int32_t k_tokens[] = {1, 40, 77, 31, 5, 100, 200, 150, 268, 42, 9, 260};
#define N_TOK ((int)(sizeof k_tokens / sizeof k_tokens[0]))

typedef struct {
    const char *name;
    const char *arch;
    uint32_t wtype;  /* every matrix, embedding and LM head included */
    int kv_bits;
    int key_length;  /* 0: d_model / n_heads */
    int window;      /* <arch>.attention.sliding_window, 0 = none */
    int tied;
    uint64_t seed;
    const char *extra; /* an extra tensor (synth_gguf's extra_tensor), NULL = none */
} arch_case;

static const arch_case k_cases[] = {
    {"qwen2_f32", "qwen2", ETOK_T_F32, 32, 0, 0, 1, 21, NULL},
    {"qwen2_q8_0", "qwen2", ETOK_T_Q8_0, 16, 0, 0, 1, 21, NULL},
    {"qwen3_f32", "qwen3", ETOK_T_F32, 32, 32, 0, 1, 23, NULL},
    {"phi3_f32_swa4", "phi3", ETOK_T_F32, 32, 0, 4, 0, 25, NULL},
    {"phi3_q8_0_swa4", "phi3", ETOK_T_Q8_0, 16, 0, 4, 0, 25, NULL},
    {"llama_f32_swa4", "llama", ETOK_T_F32, 32, 0, 4, 1, 27, NULL},
    {"llama_f32_ropefreqs", "llama", ETOK_T_F32, 32, 0, 0, 1, 29, "rope_freqs.weight"}, /* Llama 3.1+ */
};
#define N_CASES ((int)(sizeof k_cases / sizeof k_cases[0]))

static char tmpdir[256];
static json_t *ref;

static void case_opts(const arch_case *c, etok_tiny_gguf_opts *o) {
    etok_tiny_gguf_defaults(o);
    o->arch = c->arch;
    o->weight_type = o->embd_type = o->output_type = c->wtype;
    o->output_f32 = c->wtype == ETOK_T_F32;
    o->tied = c->tied;
    o->n_layers = 2;
    o->d_model = 64;
    o->n_heads = 4;
    o->n_kv_heads = 2;
    o->d_ff = 128;
    o->key_length = c->key_length;
    o->sliding_window = c->window;
    o->weight_scale = 0.3f;
    o->rms_eps = 1e-6f;
    o->rope_freq_base = strcmp(c->arch, "llama") == 0 ? 10000.0f : 1000000.0f;
    o->seed = c->seed;
    o->extra_tensor = c->extra;
}

static int write_case(const arch_case *c, const char *dir, const char *suffix, void (*tweak)(etok_tiny_gguf_opts *)) {
    etok_tiny_gguf_opts o;
    case_opts(c, &o);
    if (tweak) tweak(&o);
    char p[600];
    snprintf(p, sizeof p, "%s/%s%s.gguf", dir, c->name, suffix);
    return etok_test_write_tiny_gguf(p, &o);
}

static void t_no_window(etok_tiny_gguf_opts *o) { o->sliding_window = 0; }
static void t_no_extra(etok_tiny_gguf_opts *o) { o->extra_tensor = NULL; }
static void t_no_bias(etok_tiny_gguf_opts *o) { o->omit_tensor = "blk.1.attn_k.bias"; }
static void t_no_qnorm(etok_tiny_gguf_opts *o) { o->omit_tensor = "blk.0.attn_q_norm.weight"; }
static void t_mistral9(etok_tiny_gguf_opts *o) { o->arch = "mistral9"; }
static void t_longrope(etok_tiny_gguf_opts *o) { o->extra_tensor = "rope_factors_long.weight"; }
static void t_phi3_mini_4k(etok_tiny_gguf_opts *o) { /* Phi-3-mini-4k's shape: 32 layers, 4096 context, no key */
    o->n_layers = 32;
    o->ctx_len = 4096;
    o->sliding_window = 0;
}

static const char *case_path(const arch_case *c, const char *suffix) {
    static char p[2][600];
    static int k;
    k ^= 1;
    snprintf(p[k], sizeof p[k], "%s/%s%s.gguf", tmpdir, c->name, suffix);
    return p[k];
}

static const char *source_path(const char *rel) {
    static char p[1024];
    snprintf(p, sizeof p, "%s/%s", ETOK_SOURCE_DIR, rel);
    return p;
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/etok_test_archs_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    for (int i = 0; i < N_CASES; i++)
        if (write_case(&k_cases[i], tmpdir, "", NULL)) return -1;
    /* the windowed files without their window; missing-tensor and unknown-architecture files */
    if (write_case(&k_cases[5], tmpdir, "_nowin", t_no_window) || write_case(&k_cases[3], tmpdir, "_nowin", t_no_window) ||
        write_case(&k_cases[0], tmpdir, "_nobias", t_no_bias) || write_case(&k_cases[2], tmpdir, "_noqnorm", t_no_qnorm) ||
        write_case(&k_cases[0], tmpdir, "_mistral9", t_mistral9) || write_case(&k_cases[3], tmpdir, "_longrope", t_longrope) ||
        write_case(&k_cases[3], tmpdir, "_mini4k", t_phi3_mini_4k) || write_case(&k_cases[6], tmpdir, "_noff", t_no_extra))
        return -1;
    json_error_t je;
    ref = json_load_file(source_path(REF_PATH), 0, &je);
    if (!ref) fprintf(stderr, "%s: %s (line %d)\n", REF_PATH, je.text, je.line);
    return ref ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    json_decref(ref);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static uint64_t file_fnv1a64(const char *path) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    uint64_t h = 0xcbf29ce484222325ull;
    int ch;
    while ((ch = fgetc(f)) != EOF) {
        h ^= (uint64_t)(unsigned char)ch;
        h *= 0x100000001b3ull;
    }
    fclose(f);
    return h;
}

/* etok's logits at every position of k_tokens: the whole sequence in one step (batch = 1) or one
 * token per step (batch = 0). n x V floats, malloc'd. */
static float *etok_logits(const char *path, int kv_bits, int batch, int n_threads, int *V) {
    etok_err err = {0};
    etok_model *m = etok_model_load(path, &err);
    if (!m) fail_msg("%s: %s", path, err.msg);
    *V = etok_model_get_info(m)->vocab_size;
    etok_threadpool *pool = etok_threadpool_new(n_threads, &err);
    assert_non_null(pool);
    etok_kv_cache kv;
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 64, kv_bits, 0, 0, N_TOK, &err), 0);
    etok_fwd_state *st = etok_fwd_state_new(m, N_TOK, n_threads, 64, &err);
    assert_non_null(st);
    float *out = malloc((size_t)N_TOK * (size_t)*V * sizeof *out);
    assert_non_null(out);
    int pos[N_TOK], slot[N_TOK], row[N_TOK];
    for (int i = 0; i < N_TOK; i++) {
        pos[i] = i;
        slot[i] = 0;
        row[i] = batch ? i : 0;
    }
    if (batch) {
        etok_batch b = {N_TOK, k_tokens, pos, slot, row, N_TOK};
        assert_int_equal(etok_model_forward(m, pool, &kv, st, &b, 0, out, &err), 0);
    } else {
        for (int i = 0; i < N_TOK; i++) {
            etok_batch b = {1, k_tokens + i, pos + i, slot, row, 1};
            assert_int_equal(etok_model_forward(m, pool, &kv, st, &b, 0, out + (size_t)i * (size_t)*V, &err), 0);
        }
    }
    etok_fwd_state_free(st);
    etok_kv_cache_free(&kv);
    etok_threadpool_free(pool);
    etok_model_free(m);
    return out;
}

/* max |a - ref| over n positions x V; ref is a JSON array of n arrays of V numbers */
static double max_diff_json(const float *a, json_t *refl, int n, int V) {
    assert_true(json_is_array(refl) && (int)json_array_size(refl) == n);
    double mx = 0;
    for (int i = 0; i < n; i++) {
        json_t *r = json_array_get(refl, (size_t)i);
        assert_true(json_is_array(r) && (int)json_array_size(r) == V);
        for (int v = 0; v < V; v++) {
            float x = a[(size_t)i * V + v];
            assert_true(isfinite(x));
            double d = fabs((double)x - json_number_value(json_array_get(r, (size_t)v)));
            if (d > mx) mx = d;
        }
    }
    return mx;
}

static json_t *case_ref(const arch_case *c) {
    json_t *cs = json_object_get(json_object_get(ref, "cases"), c->name);
    if (!cs) fail_msg("%s: no case '%s'", REF_PATH, c->name);
    return cs;
}

/* The fixture was made from exactly these files. */
static void test_files_are_the_fixtures(void **state) {
    (void)state;
    json_t *toks = json_object_get(ref, "tokens");
    assert_int_equal((int)json_array_size(toks), N_TOK);
    for (int i = 0; i < N_TOK; i++) assert_int_equal(json_integer_value(json_array_get(toks, (size_t)i)), k_tokens[i]);
    for (int i = 0; i < N_CASES; i++) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)file_fnv1a64(case_path(&k_cases[i], "")));
        const char *want = json_string_value(json_object_get(case_ref(&k_cases[i]), "fnv1a64"));
        assert_non_null(want);
        if (strcmp(hex, want) != 0)
            fail_msg("%s: the synthetic file's FNV-1a is %s, the fixture's %s: synth_gguf.c changed what it writes; "
                     "regenerate %s (its README)", k_cases[i].name, hex, want, REF_PATH);
    }
}

static void check_against(const char *which, double tol_f32, double tol_q8) {
    const int verbose = getenv("ETOK_TEST_VERBOSE") != NULL;
    int checked = 0;
    for (int i = 0; i < N_CASES; i++) {
        const arch_case *c = &k_cases[i];
        json_t *r = json_object_get(case_ref(c), which);
        if (!r) continue;
        assert_true(c->wtype == ETOK_T_F32 || strcmp(which, "numpy") != 0);
        const double tol = c->wtype == ETOK_T_F32 ? tol_f32 : tol_q8;
        for (int batch = 1; batch >= 0; batch--) {
            int V;
            float *lg = etok_logits(case_path(c, ""), c->kv_bits, batch, batch ? 2 : 1, &V);
            double d = max_diff_json(lg, r, N_TOK, V);
            if (verbose)
                fprintf(stderr, "%-16s vs %-9s (%s): max |d logit| %.3g (tolerance %g)\n", c->name, which,
                        batch ? "one step" : "token by token", d, tol);
            if (d > tol) fail_msg("%s vs %s: max |d logit| %g > %g", c->name, which, d, tol);
            free(lg);
        }
        checked++;
    }
    assert_true(checked >= 2);
}

static void test_vs_llamacpp(void **state) {
    (void)state;
    check_against("llama.cpp", TOL_F32, TOL_Q8);
}

/* (numpy only for the F32 files: it multiplies float activations, where etok and llama.cpp
 * quantise them to 8 bits for Q8_0 weights) */
static void test_vs_numpy(void **state) {
    (void)state;
    check_against("numpy", TOL_F32, 0.0);
}

/* The two references agree where both exist (the numpy forward reads the architectures as
 * llama.cpp does), so it can stand in for qwen3 and llama's window. */
static void test_references_agree(void **state) {
    (void)state;
    int both = 0;
    for (int i = 0; i < N_CASES; i++) {
        json_t *cs = case_ref(&k_cases[i]), *a = json_object_get(cs, "llama.cpp"), *b = json_object_get(cs, "numpy");
        if (!a || !b || k_cases[i].wtype != ETOK_T_F32) continue;
        double mx = 0;
        for (size_t p = 0; p < json_array_size(a); p++)
            for (size_t v = 0; v < json_array_size(json_array_get(a, p)); v++) {
                double d = fabs(json_number_value(json_array_get(json_array_get(a, p), v)) -
                                json_number_value(json_array_get(json_array_get(b, p), v)));
                if (d > mx) mx = d;
            }
        if (getenv("ETOK_TEST_VERBOSE")) fprintf(stderr, "%s: numpy vs llama.cpp max |d logit| %.3g\n", k_cases[i].name, mx);
        assert_true(mx <= TOL_REFS);
        both++;
    }
    assert_true(both >= 2);
}

/* The window: the first `window` positions equal the windowless file's exactly, later ones not. */
static void test_window_takes_effect(void **state) {
    (void)state;
    const int idx[2] = {3, 5};
    for (int k = 0; k < 2; k++) {
        const arch_case *c = &k_cases[idx[k]];
        int V;
        float *a = etok_logits(case_path(c, ""), 32, 1, 1, &V), *b = etok_logits(case_path(c, "_nowin"), 32, 1, 1, &V);
        for (int p = 0; p < N_TOK; p++) {
            double mx = 0;
            for (int v = 0; v < V; v++) mx = fmax(mx, fabs((double)a[(size_t)p * V + v] - b[(size_t)p * V + v]));
            if (p < c->window)
                assert_true(mx == 0.0);
            else
                assert_true(mx > 1e-3);
        }
        free(a);
        free(b);
    }
}

/* rope_freqs.weight (1, 2, ..., 8 here; Llama 3.1's are 1..8): position 0 is unchanged, every
 * later position moves, and the result is llama.cpp's (test_vs_llamacpp). */
static void test_rope_freqs_take_effect(void **state) {
    (void)state;
    int V;
    float *a = etok_logits(case_path(&k_cases[6], ""), 32, 1, 1, &V), *b = etok_logits(case_path(&k_cases[6], "_noff"), 32, 1, 1, &V);
    for (int p = 0; p < N_TOK; p++) {
        double mx = 0;
        for (int v = 0; v < V; v++) mx = fmax(mx, fabs((double)a[(size_t)p * V + v] - b[(size_t)p * V + v]));
        if (p == 0)
            assert_true(mx == 0.0);
        else
            assert_true(mx > 1e-3);
    }
    free(a);
    free(b);
}

static void test_loads(void **state) {
    (void)state;
    etok_err err = {0};
    etok_model *m = etok_model_load(case_path(&k_cases[2], ""), &err);
    assert_non_null(m);
    const etok_model_info *in = etok_model_get_info(m);
    assert_string_equal(in->arch, "qwen3");
    assert_int_equal(in->head_dim, 32); /* q_dim 128 != d_model 64, as Qwen3 */
    assert_non_null(m->layers[1].q_norm);
    assert_null(m->layers[0].bq);
    assert_int_equal(m->rope_neox, 1);
    etok_model_free(m);
    m = etok_model_load(case_path(&k_cases[3], ""), &err);
    assert_non_null(m);
    assert_int_equal(m->layers[0].window, 4);
    assert_int_equal(m->layers[1].window, 4);
    assert_int_equal(etok_model_get_info(m)->tied_embeddings, 0);
    /* the fused matrices are row views: K follows Q, up follows gate */
    assert_ptr_equal(m->layers[0].wk.data, m->layers[0].wq.data + (size_t)64 * m->layers[0].wq.row_bytes);
    assert_ptr_equal(m->layers[0].w_up.data, m->layers[0].w_gate.data + (size_t)128 * m->layers[0].w_gate.row_bytes);
    etok_model_free(m);
    m = etok_model_load(case_path(&k_cases[0], ""), &err);
    assert_non_null(m);
    assert_non_null(m->layers[0].bk);
    assert_null(m->layers[0].q_norm);
    assert_int_equal(m->layers[0].window, 0);
    etok_model_free(m);
    /* a phi3 file without the window key, shaped as Phi-3-mini-4k: llama.cpp's default 2047 */
    m = etok_model_load(case_path(&k_cases[3], "_mini4k"), &err);
    assert_non_null(m);
    assert_int_equal(m->layers[31].window, 2047);
    etok_model_free(m);
}

/* --weights re-encodes the row views like any matrix (each its own buffer): the F32 phi3 file
 * as F16 stays within F16 rounding of llama.cpp's logits (a view re-encoded from the wrong rows
 * would move them by units), and the weight table counts the fused tensors as F16. */
static void test_views_reencode(void **state) {
    (void)state;
    etok_err err = {0};
    etok_model *m = etok_model_load(case_path(&k_cases[3], ""), &err);
    assert_non_null(m);
    assert_int_equal(etok_model_set_weights(m, "f16", &err), 0);
    assert_int_equal(m->layers[1].wv.type, ETOK_T_F16);
    assert_int_equal(m->layers[1].w_up.type, ETOK_T_F16);
    /* the 5 norms stay F32; embedding, LM head and 2 x (attn_qkv, attn_output, ffn_up, ffn_down) */
    assert_string_equal(etok_model_get_info(m)->weight_types, "F32 x 5, F16 x 10");
    etok_threadpool *pool = etok_threadpool_new(1, &err);
    etok_kv_cache kv;
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 64, 32, 0, 0, N_TOK, &err), 0);
    etok_fwd_state *st = etok_fwd_state_new(m, N_TOK, 1, 64, &err);
    const int V = etok_model_get_info(m)->vocab_size;
    float *lg = malloc((size_t)N_TOK * V * sizeof *lg);
    int pos[N_TOK], slot[N_TOK], row[N_TOK];
    for (int i = 0; i < N_TOK; i++) pos[i] = row[i] = i, slot[i] = 0;
    etok_batch b = {N_TOK, k_tokens, pos, slot, row, N_TOK};
    assert_int_equal(etok_model_forward(m, pool, &kv, st, &b, 0, lg, &err), 0);
    double d = max_diff_json(lg, json_object_get(case_ref(&k_cases[3]), "llama.cpp"), N_TOK, V);
    if (getenv("ETOK_TEST_VERBOSE")) fprintf(stderr, "phi3 F32 file re-encoded F16 vs llama.cpp F32: %.3g\n", d);
    assert_true(d > 0 && d < 0.05);
    free(lg);
    etok_fwd_state_free(st);
    etok_kv_cache_free(&kv);
    etok_threadpool_free(pool);
    etok_model_free(m);
}

static void test_load_errors(void **state) {
    (void)state;
    etok_err err = {0};
    assert_null(etok_model_load(case_path(&k_cases[0], "_nobias"), &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "blk.1.attn_k.bias"));
    assert_non_null(strstr(err.msg, "qwen2"));
    memset(&err, 0, sizeof err);
    assert_null(etok_model_load(case_path(&k_cases[2], "_noqnorm"), &err));
    assert_non_null(strstr(err.msg, "blk.0.attn_q_norm.weight"));
    memset(&err, 0, sizeof err);
    assert_null(etok_model_load(case_path(&k_cases[0], "_mistral9"), &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "'mistral9'"));
    assert_non_null(strstr(err.msg, "supported: llama, gemma3, qwen2, qwen3, phi3"));
    memset(&err, 0, sizeof err);
    assert_null(etok_model_load(case_path(&k_cases[3], "_longrope"), &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "LongRoPE"));
}

/* ---- chat templates ---- */

/* A byte-level vocabulary with the given marker tokens (control) and template. */
static etok_tokenizer *marker_tokenizer(const char *const *markers, int n_markers, const char *tmpl) {
    static char bytes[256][8];
    const char *tok[16 + 256];
    size_t len[16 + 256];
    int32_t type[16 + 256];
    int n = 0;
    assert_true(n_markers <= 16);
    for (int i = 0; i < n_markers; i++, n++) {
        tok[n] = markers[i];
        type[n] = 3;
    }
    for (int b = 0; b < 256; b++, n++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[n] = bytes[b];
        type[n] = 6;
    }
    float score[16 + 256];
    for (int i = 0; i < n; i++) {
        len[i] = strlen(tok[i]);
        score[i] = 0;
    }
    etok_tokenizer_spec sp;
    memset(&sp, 0, sizeof sp);
    sp.model = "llama";
    sp.pre = "default";
    sp.n_vocab = n;
    sp.tokens = tok;
    sp.token_lens = len;
    sp.scores = score;
    sp.token_types = type;
    sp.bos_id = 0;
    sp.eos_id = 1;
    sp.eot_id = sp.unk_id = sp.pad_id = -1;
    sp.add_bos = 0;
    sp.add_eos = -1;
    sp.no_space_prefix = 1;
    sp.chat_template = tmpl;
    etok_err err = {0};
    etok_tokenizer *t = etok_tokenizer_new(&sp, &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

static const char *const k_roles[3] = {"system", "user", "assistant"};
static const char *const k_contents[3] = {" Be brief. ", "Hi<|end|>", "Hello"};

/* Phi-3-mini-4k-instruct's template (as in its GGUF) and llama.cpp's built-in "phi3" render:
 * "<|role|>\n" content "<|end|>\n" per message, then "<|assistant|>\n"; contents kept as they are.
 * The markers are control tokens, a user's "<|end|>" stays text, and <|end|> ends generation. */
static void test_phi3_template(void **state) {
    (void)state;
    static const char *const mk[] = {"<s>", "</s>", "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"};
    const char *tmpl = "{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\n' + "
                       "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\n' + "
                       "message['content'] + '<|end|>\n'}}{% elif message['role'] == 'assistant' %}{{'<|assistant|>\n' "
                       "+ message['content'] + '<|end|>\n'}}{% endif %}{% endfor %}{% if add_generation_prompt %}"
                       "{{ '<|assistant|>\n' }}{% else %}{{ eos_token }}{% endif %}";
    etok_tokenizer *t = marker_tokenizer(mk, 6, tmpl);
    etok_err err = {0};
    char *s = etok_tokenizer_chat_messages(t, k_roles, k_contents, 3, &err);
    assert_non_null(s);
    assert_string_equal(s, "<|system|>\n Be brief. <|end|>\n<|user|>\nHi<|end|><|end|>\n<|assistant|>\nHello<|end|>\n"
                           "<|assistant|>\n");
    free(s);
    int32_t ids[256];
    int n = etok_tokenizer_encode_chat(t, k_roles, k_contents, 3, 0, ids, 256, &err);
    assert_true(n > 10);
    int ends = 0, asst = 0;
    for (int i = 0; i < n; i++) {
        ends += ids[i] == 5;
        asst += ids[i] == 4;
    }
    assert_int_equal(ends, 3); /* the user's "<|end|>" is 7 byte tokens, not the marker */
    assert_int_equal(asst, 2);
    assert_int_equal(ids[0], 2);
    assert_true(etok_tokenizer_is_eog(t, 5));
    etok_tokenizer_free(t);
}

/* Phi-4 (also general.architecture phi3): ChatML with <|im_sep|> after the role, no newlines. */
static void test_phi4_template(void **state) {
    (void)state;
    static const char *const mk[] = {"<|endoftext|>", "<|im_end|>", "<|im_start|>", "<|im_sep|>"};
    const char *tmpl = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '<|im_sep|>' + "
                       "message['content'] + '<|im_end|>'}}{% endfor %}{% if add_generation_prompt %}"
                       "{{ '<|im_start|>assistant<|im_sep|>' }}{% endif %}";
    etok_tokenizer *t = marker_tokenizer(mk, 4, tmpl);
    etok_err err = {0};
    char *s = etok_tokenizer_chat_messages(t, k_roles + 1, k_contents + 1, 2, &err);
    assert_non_null(s);
    assert_string_equal(s, "<|im_start|>user<|im_sep|>Hi<|end|><|im_end|><|im_start|>assistant<|im_sep|>Hello<|im_end|>"
                           "<|im_start|>assistant<|im_sep|>");
    free(s);
    etok_tokenizer_free(t);
}

/* Qwen2.5's template (ChatML, its default system prompt inside a Jinja string with "\n"
 * escapes) and Qwen3's (ChatML, no default system prompt; think tags left to the model). */
static void test_qwen_chatml(void **state) {
    (void)state;
    static const char *const mk[] = {"<|endoftext|>", "<|im_end|>", "<|im_start|>"};
    const char *qwen25 = "{%- if messages[0]['role'] == 'system' %}\n    {{- '<|im_start|>system\\n' + "
                         "messages[0]['content'] + '<|im_end|>\\n' }}\n{%- else %}\n    {{- '<|im_start|>system\\nYou "
                         "are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\\n' }}\n{%- endif %}";
    etok_tokenizer *t = marker_tokenizer(mk, 3, qwen25);
    etok_err err = {0};
    char *s = etok_tokenizer_chat(t, NULL, "Hi", &err);
    assert_non_null(s);
    assert_string_equal(s, "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
                           "assistant.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    s = etok_tokenizer_chat(t, "S", "Hi", &err);
    assert_string_equal(s, "<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    etok_tokenizer_free(t);
    const char *qwen3 = "{%- for message in messages %}{{- '<|im_start|>' + message.role + '\\n' + message.content + "
                        "'<|im_end|>' + '\\n' }}{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' "
                        "}}{%- if enable_thinking is defined and enable_thinking is false %}{{- '<think>\\n\\n</think>\\n\\n' "
                        "}}{%- endif %}{%- endif %}";
    t = marker_tokenizer(mk, 3, qwen3);
    s = etok_tokenizer_chat(t, NULL, "Hi", &err);
    assert_string_equal(s, "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
    free(s);
    etok_tokenizer_free(t);
}

/* Llama-2's [INST] family (Mistral 7B Instruct v0.1/v0.2 render as plain "llama2"): the
 * expected strings are llama.cpp c392e5094's llama_chat_apply_template output for templates
 * classified as llama2, llama2-sys, llama2-sys-bos and llama2-sys-strip, on the conversation
 * system " Be brief. ", user " Hi ", assistant "Hello", user "Again". */
static void test_llama2_templates(void **state) {
    (void)state;
    static const char *const mk[] = {"<s>", "</s>", "[INST]", "[/INST]"};
    const char *roles[4] = {"system", "user", "assistant", "user"}, *contents[4] = {" Be brief. ", " Hi ", "Hello", "Again"};
    const char *tmpl[4] = {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
                           "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ "
                           "message['content'] + eos_token + ' ' }}{% endif %}{% endfor %}",
                           "[INST] <<SYS>>\n{{ system }}\n<</SYS>>", "{{ bos_token + '[INST] ' + content }}",
                           "{{ '[INST] ' + content.strip() }}"};
    const char *want[4] = {
        "[INST]  Be brief. \n Hi  [/INST]Hello</s>[INST] Again [/INST]",
        "[INST] <<SYS>>\n Be brief. \n<</SYS>>\n\n Hi  [/INST]Hello</s>[INST] Again [/INST]",
        "[INST] <<SYS>>\n Be brief. \n<</SYS>>\n\n Hi  [/INST]Hello</s><s>[INST] Again [/INST]",
        "[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]Hello</s>[INST] Again [/INST]",
    };
    for (int k = 0; k < 4; k++) {
        etok_tokenizer *t = marker_tokenizer(mk, 4, tmpl[k]);
        etok_err err = {0};
        char *s = etok_tokenizer_chat_messages(t, roles, contents, 4, &err);
        if (!s) fail_msg("template %d: %s", k, err.msg);
        assert_string_equal(s, want[k]);
        free(s);
        if (k == 2) { /* markers as tokens: </s> (1), <s> (0) and [INST] (2) */
            int32_t ids[256];
            int n = etok_tokenizer_encode_chat(t, roles, contents, 4, 0, ids, 256, &err);
            assert_true(n > 10);
            assert_int_equal(ids[0], 2);
            int eos = 0, bos = 0, inst = 0;
            for (int i = 0; i < n; i++) eos += ids[i] == 1, bos += ids[i] == 0, inst += ids[i] == 2;
            assert_int_equal(eos, 1);
            assert_int_equal(bos, 1);
            assert_int_equal(inst, 2);
        }
        etok_tokenizer_free(t);
    }
}

/* A template etok cannot render (Mistral's v7 with [SYSTEM_PROMPT]) is refused, naming the ones
 * it can. */
static void test_unsupported_template(void **state) {
    (void)state;
    static const char *const mk[] = {"<s>", "</s>"};
    etok_tokenizer *t = marker_tokenizer(mk, 2, "{{ '[SYSTEM_PROMPT]' + system + '[/SYSTEM_PROMPT]' }}{% for m in messages %}"
                                                "[INST]{{ m['content'] }}[/INST]{% endfor %}");
    etok_err err = {0};
    assert_null(etok_tokenizer_chat(t, NULL, "Hi", &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "ChatML, Llama-2 [INST], Llama-3, Gemma, Phi-3 or Phi-4"));
    etok_tokenizer_free(t);
}

/* Qwen's pre-tokenizer (tokenizer.ggml.pre "qwen2", also Qwen3's): one digit a word, where
 * llama3's takes up to three. On a byte-level vocabulary with the merges "1 2" and "12 3",
 * "x1234 56" is [120, 49, 50, 51, 52, 32, 53, 54] with qwen2 and [120, 257, 52, 32, 53, 54] with
 * llama-bpe: the ids llama.cpp c392e5094's llama-tokenize gives on vocab-only GGUFs of the same
 * vocabulary (made once with gguf-py; the ids are the test data). */
static void test_qwen2_pretokenizer(void **state) {
    (void)state;
    static char text[258][8];
    const char *tok[258];
    size_t len[258];
    for (int b = 0, n = 0; b < 256; b++) { /* GPT-2's byte -> code point map */
        int cp = b;
        if (!((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255))) cp = 256 + n++;
        if (cp < 0x80) {
            text[b][0] = (char)cp;
            text[b][1] = 0;
        } else {
            text[b][0] = (char)(0xC0 | (cp >> 6));
            text[b][1] = (char)(0x80 | (cp & 0x3F));
            text[b][2] = 0;
        }
    }
    strcpy(text[256], "12");
    strcpy(text[257], "123");
    for (int i = 0; i < 258; i++) {
        tok[i] = text[i];
        len[i] = strlen(text[i]);
    }
    const char *merges[2] = {"1 2", "12 3"};
    const size_t merge_lens[2] = {3, 4};
    const char *pres[2] = {"qwen2", "llama-bpe"};
    const int32_t want[2][8] = {{120, 49, 50, 51, 52, 32, 53, 54}, {120, 257, 52, 32, 53, 54}};
    const int n_want[2] = {8, 6};
    for (int k = 0; k < 2; k++) {
        etok_tokenizer_spec sp;
        memset(&sp, 0, sizeof sp);
        sp.model = "gpt2";
        sp.pre = pres[k];
        sp.n_vocab = 258;
        sp.tokens = tok;
        sp.token_lens = len;
        sp.n_merges = 2;
        sp.merges = merges;
        sp.merge_lens = merge_lens;
        sp.bos_id = 0;
        sp.eos_id = 1;
        sp.eot_id = sp.unk_id = sp.pad_id = -1;
        sp.add_bos = 0;
        sp.add_eos = -1;
        etok_err err = {0};
        etok_tokenizer *t = etok_tokenizer_new(&sp, &err);
        if (!t) fail_msg("%s: %s", pres[k], err.msg);
        int32_t ids[16];
        int n = etok_tokenizer_encode(t, "x1234 56", 0, 0, ids, 16, &err);
        assert_int_equal(n, n_want[k]);
        for (int i = 0; i < n; i++) assert_int_equal(ids[i], want[k][i]);
        etok_tokenizer_free(t);
    }
}

int main(void) {
    const char *wd = getenv("ETOK_ARCH_WRITE_DIR");
    if (wd && *wd) { /* regeneration of the fixture: write the case files and stop */
        for (int i = 0; i < N_CASES; i++) {
            if (write_case(&k_cases[i], wd, "", NULL)) return 1;
            printf("%s %s %d\n", k_cases[i].name, k_cases[i].arch, k_cases[i].kv_bits);
        }
        return 0;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_files_are_the_fixtures),
        cmocka_unit_test(test_vs_llamacpp),
        cmocka_unit_test(test_vs_numpy),
        cmocka_unit_test(test_references_agree),
        cmocka_unit_test(test_window_takes_effect),
        cmocka_unit_test(test_rope_freqs_take_effect),
        cmocka_unit_test(test_loads),
        cmocka_unit_test(test_views_reencode),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_phi3_template),
        cmocka_unit_test(test_phi4_template),
        cmocka_unit_test(test_qwen_chatml),
        cmocka_unit_test(test_llama2_templates),
        cmocka_unit_test(test_unsupported_template),
        cmocka_unit_test(test_qwen2_pretokenizer),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
