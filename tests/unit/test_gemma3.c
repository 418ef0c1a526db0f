/* test_gemma3.c — the gemma3 architecture on tiny synthetic GGUF files written by the suite
 * (synth_gguf.c with arch "gemma3": QK-norm and post-attention/FFN norm tensors, a head
 * dimension from attention.key_length that is not d_model / n_heads), and Gemma's chat
 * template and tokenizer flags on a hand-built SentencePiece vocabulary.
 *
 * What is proven: the model loads with q_dim = n_heads * key_length != d_model; the local
 * layers' sliding window takes effect (a window of 3 changes the logits once more than 3
 * positions are attended, and changes nothing before), a window at least the number of
 * positions equals full attention exactly; the layer pattern is read (pattern 1 = every layer
 * global: the window has no effect); each post-norm is applied (scaling its weights moves
 * the logits); an unsupported architecture names itself and the supported list; Gemma's
 * template (no system role: the system text opens the first user turn) and
 * tokenizer.ggml.add_space_prefix = false. The numerics against an independent forward on the
 * real model are in tests/e2e/gemma3.sh (docs/ENGINE.md). */
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
#include "engine/tokenizer.h"
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

static void gemma_opts(etok_tiny_gguf_opts *o) {
    etok_tiny_gguf_defaults(o);
    o->arch = "gemma3";
    o->weight_type = o->embd_type = ETOK_T_F32;
    o->n_layers = 2;
    o->d_model = 64;
    o->n_heads = 4;
    o->n_kv_heads = 1;
    o->key_length = 32; /* q_dim 128 != d_model 64, as Gemma 3 270M (640 vs 4 x 256) */
    o->d_ff = 128;
    o->sliding_window = 3;
    o->swa_pattern = 2; /* layer 0 local, layer 1 global */
    o->weight_scale = 0.3f;
    o->rope_freq_base = 1000000.0f;
    o->seed = 5;
}

static int write_model(const char *name, void (*tweak)(etok_tiny_gguf_opts *)) {
    etok_tiny_gguf_opts o;
    gemma_opts(&o);
    if (tweak) tweak(&o);
    return etok_test_write_tiny_gguf(tmp_path(name), &o);
}

static void t_wide_window(etok_tiny_gguf_opts *o) { o->sliding_window = 256; }
static void t_window_10(etok_tiny_gguf_opts *o) { o->sliding_window = 10; }
static void t_all_global(etok_tiny_gguf_opts *o) { o->swa_pattern = 1; }
static void t_all_global_wide(etok_tiny_gguf_opts *o) {
    o->swa_pattern = 1;
    o->sliding_window = 256;
}
static void t_post_gain(etok_tiny_gguf_opts *o) { o->post_norm_gain = 3.0f; }
static void t_post_ffw_gain(etok_tiny_gguf_opts *o) { o->post_ffw_gain = 3.0f; }
static void t_no_window(etok_tiny_gguf_opts *o) { o->sliding_window = 0; }
static void t_qwen9(etok_tiny_gguf_opts *o) { o->arch = "qwen9"; }

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/etok_test_gemma3_XXXXXX");
    if (!mkdtemp(tmpdir)) return -1;
    if (write_model("w3.gguf", NULL) || write_model("w256.gguf", t_wide_window) || write_model("w10.gguf", t_window_10) ||
        write_model("g3.gguf", t_all_global) || write_model("g256.gguf", t_all_global_wide) ||
        write_model("gain.gguf", t_post_gain) || write_model("gainf.gguf", t_post_ffw_gain) || write_model("nowin.gguf", t_no_window) ||
        write_model("qwen9.gguf", t_qwen9))
        return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Logits after the prompt ids[0..n) (F32 KV cache, one thread); malloc'd, vocab in *V. */
static float *prompt_logits(const char *name, int n, int *V) {
    etok_err err = {0};
    etok_model *m = etok_model_load(tmp_path(name), &err);
    if (!m) fail_msg("%s: %s", name, err.msg);
    *V = etok_model_get_info(m)->vocab_size;
    int32_t ids[16];
    for (int i = 0; i < n; i++) ids[i] = 3 + (i * 37) % 250; /* byte tokens */
    etok_engine_opts o = {0};
    o.n_threads = 1;
    o.kv_bits = 32;
    etok_engine *e = etok_engine_new(m, &o, &err);
    assert_non_null(e);
    etok_sampling s = {0};
    int id = etok_engine_add(e, ids, n, 1, &s, &err);
    assert_true(id >= 0);
    etok_step_result r;
    for (int guard = 0; guard < 100; guard++) {
        assert_int_equal(etok_engine_step(e, &r, &err), 0);
        if (r.n_events > 0 && r.events[0].new_token >= 0) break;
    }
    float *out = malloc((size_t)*V * sizeof *out);
    assert_non_null(out);
    memcpy(out, etok_engine_logits(e, id), (size_t)*V * sizeof *out);
    etok_engine_free(e);
    etok_model_free(m);
    return out;
}

static double max_abs_diff(const float *a, const float *b, int n) {
    double mx = 0;
    for (int i = 0; i < n; i++) {
        assert_true(isfinite(a[i]) && isfinite(b[i]));
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > mx) mx = d;
    }
    return mx;
}

static void test_loads_with_key_length_heads(void **state) {
    (void)state;
    etok_err err = {0};
    etok_model *m = etok_model_load(tmp_path("w3.gguf"), &err);
    assert_non_null(m);
    const etok_model_info *in = etok_model_get_info(m);
    assert_string_equal(in->arch, "gemma3");
    assert_int_equal(in->head_dim, 32);
    assert_int_equal(in->d_model, 64);
    assert_int_equal(in->n_kv_heads, 1);
    assert_int_equal(in->tied_embeddings, 1);
    etok_model_free(m);
}

/* The local layer's window: identical logits while every position fits the window, different
 * once it does not; a window of at least the attended positions is full attention. */
static void test_sliding_window_takes_effect(void **state) {
    (void)state;
    int V;
    for (int n = 1; n <= 3; n++) {
        float *a = prompt_logits("w3.gguf", n, &V), *b = prompt_logits("w256.gguf", n, &V);
        assert_true(max_abs_diff(a, b, V) == 0.0);
        free(a);
        free(b);
    }
    float *a = prompt_logits("w3.gguf", 10, &V), *b = prompt_logits("w256.gguf", 10, &V),
          *c = prompt_logits("w10.gguf", 10, &V);
    double d_win = max_abs_diff(a, b, V);
    if (getenv("ETOK_TEST_VERBOSE")) fprintf(stderr, "window 3 vs 256 at 10 tokens: max |d logit| %g\n", d_win);
    assert_true(d_win > 1e-3);
    assert_true(max_abs_diff(b, c, V) == 0.0); /* window 10 over 10 positions = full */
    free(a);
    free(b);
    free(c);
}

/* Logits at each of 36 positions, one token per forward step, over a KV cache sized for
 * steps of max_run tokens (a local layer holds min(64, window + max_run) rows). */
static float *forward_one_by_one(const char *name, int kv_bits, int max_run, int *V) {
    etok_err err = {0};
    etok_model *m = etok_model_load(tmp_path(name), &err);
    if (!m) fail_msg("%s: %s", name, err.msg);
    *V = etok_model_get_info(m)->vocab_size;
    etok_threadpool *pool = etok_threadpool_new(1, &err);
    assert_non_null(pool);
    etok_kv_cache kv;
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 64, kv_bits, 0, 0, max_run, &err), 0);
    etok_fwd_state *st = etok_fwd_state_new(m, 1, 1, 64, &err);
    assert_non_null(st);
    float *out = malloc(36 * (size_t)*V * sizeof *out);
    assert_non_null(out);
    for (int i = 0; i < 36; i++) {
        const int32_t tok = 3 + (i * 37) % 250;
        const int pos = i, slot = 0, row = 0;
        etok_batch b = {1, &tok, &pos, &slot, &row, 1};
        if (etok_model_forward(m, pool, &kv, st, &b, 0, out + (size_t)i * (size_t)*V, &err))
            fail_msg("position %d: %s", i, err.msg);
    }
    etok_fwd_state_free(st);
    etok_kv_cache_free(&kv);
    etok_threadpool_free(pool);
    etok_model_free(m);
    return out;
}

/* The local layers' KV cache is a ring of the window plus one step's tokens of a sequence
 * (issue 14: memory and attention stop growing past the window); global layers keep every
 * position; a run's narrower --attn-window or a window wider than the cache leaves the layer
 * as it was. And the capped ring gives the same logits, bit for bit, as the full-size cache
 * over 36 positions with a window of 3 (the ring wraps many times), F32, F16 and Q8_0. */
static void test_local_layers_kv_capped(void **state) {
    (void)state;
    etok_err err = {0};
    etok_model *m = etok_model_load(tmp_path("w3.gguf"), &err);
    assert_non_null(m);
    etok_kv_cache kv;
    assert_int_equal(etok_kv_cache_init(&kv, m, 2, 64, 32, 0, 0, 1, &err), 0);
    size_t total = 0;
    int n_local = 0;
    for (int l = 0; l < kv.n_layers; l++) {
        const int local = m->layers[l].window > 0;
        n_local += local;
        assert_int_equal(kv.layout[l].rows, local ? 3 + 1 : 64);
        assert_int_equal(kv.layout[l].sinks, 0);
        assert_int_equal((int)kv.layout[l].first_row, (int)total);
        total += (size_t)kv.layout[l].rows;
    }
    assert_true(n_local > 0);
    assert_int_equal((int)kv.slot_rows, (int)total);
    etok_kv_cache_free(&kv);
    /* a prefill chunk of 8: the ring holds 3 + 8 rows */
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 64, 16, 0, 0, 8, &err), 0);
    for (int l = 0; l < kv.n_layers; l++) assert_int_equal(kv.layout[l].rows, m->layers[l].window > 0 ? 11 : 64);
    etok_kv_cache_free(&kv);
    /* --attn-window 2 with 1 sink: narrower than the layer's own 3, the run's window and sinks rule */
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 16, 32, 1, 2, 1, &err), 0);
    for (int l = 0; l < kv.n_layers; l++) {
        assert_int_equal(kv.layout[l].rows, 16);
        assert_int_equal(kv.layout[l].sinks, 1);
    }
    etok_kv_cache_free(&kv);
    etok_model_free(m);
    m = etok_model_load(tmp_path("w256.gguf"), &err);
    assert_non_null(m);
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 64, 32, 0, 0, 1, &err), 0);
    for (int l = 0; l < kv.n_layers; l++) assert_int_equal(kv.layout[l].rows, 64); /* window >= cache */
    etok_kv_cache_free(&kv);
    etok_model_free(m);

    /* the same one-token steps over both caches (a step's token count changes the summation
     * order of an F16 cache's attention, as in llama.cpp: docs/ENGINE.md "Numerics", so the
     * two runs must step alike) */
    const int kvs[] = {32, 16, 8};
    for (int k = 0; k < 3; k++) {
        int V;
        float *a = forward_one_by_one("w3.gguf", kvs[k], 1, &V);  /* local rows 3 + 1: wraps every 4 positions */
        float *b = forward_one_by_one("w3.gguf", kvs[k], 64, &V); /* 3 + 64 >= 64 rows: the full-size cache */
        for (int step = 0; step < 36; step++)
            if (max_abs_diff(a + (size_t)step * V, b + (size_t)step * V, V) != 0.0)
                fail_msg("kv %d position %d: capped local ring differs from the full cache by %g", kvs[k], step,
                         max_abs_diff(a + (size_t)step * V, b + (size_t)step * V, V));
        free(a);
        free(b);
    }
}

/* sliding_window_pattern 1: every layer global, so the window changes nothing. */
static void test_layer_pattern_is_read(void **state) {
    (void)state;
    int V;
    float *a = prompt_logits("g3.gguf", 10, &V), *b = prompt_logits("g256.gguf", 10, &V),
          *c = prompt_logits("w3.gguf", 10, &V);
    assert_true(max_abs_diff(a, b, V) == 0.0);
    assert_true(max_abs_diff(a, c, V) > 1e-3); /* and pattern 2 (a local layer) differs */
    free(a);
    free(b);
    free(c);
}

static void test_post_norms_are_applied(void **state) {
    (void)state;
    int V;
    /* the same model but the post-attention (gain) or post-FFN (gainf) norm weights x 3 */
    float *a = prompt_logits("w3.gguf", 6, &V), *b = prompt_logits("gain.gguf", 6, &V),
          *c = prompt_logits("gainf.gguf", 6, &V);
    assert_true(max_abs_diff(a, b, V) > 1e-3);
    assert_true(max_abs_diff(a, c, V) > 1e-3);
    free(a);
    free(b);
    free(c);
}

static void test_load_errors(void **state) {
    (void)state;
    etok_err err = {0};
    assert_null(etok_model_load(tmp_path("qwen9.gguf"), &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "'qwen9'"));
    assert_non_null(strstr(err.msg, "supported: llama, gemma3"));
    memset(&err, 0, sizeof err);
    assert_null(etok_model_load(tmp_path("nowin.gguf"), &err));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "gemma3.attention.sliding_window"));
}

/* Words of gemma_tokenizer_ex's vocabulary (ids from GEMMA_WORDS0 on): each word's prefixes
 * too, so that SentencePiece's pair merges reach it; "\n" is user-defined, as in Gemma's file. */
#define GEMMA_WORDS0 (5 + 256)
static const char *const gemma_words[] = {"u", "us", "use", "user", "m", "mo", "mod", "mode", "model", "H", "Hi", "\n"};
enum { GW_USER = GEMMA_WORDS0 + 3, GW_MODEL = GEMMA_WORDS0 + 8, GW_H = GEMMA_WORDS0 + 9, GW_HI = GEMMA_WORDS0 + 10,
       GW_NL = GEMMA_WORDS0 + 11, GW_N = 12 };

/* A SentencePiece vocabulary with Gemma's markers and byte fallback (and, with words, the
 * words above); tmpl: tokenizer.chat_template (NULL: none, as in the Gemma 3 270M file). */
static etok_tokenizer *gemma_tokenizer_ex(int no_space_prefix, int words, const char *tmpl) {
    static char bytes[256][8];
    const char *tok[GEMMA_WORDS0 + GW_N];
    size_t len[GEMMA_WORDS0 + GW_N];
    int32_t type[GEMMA_WORDS0 + GW_N];
    float score[GEMMA_WORDS0 + GW_N];
    static const char *const head[5] = {"<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"};
    int n = 0;
    for (int i = 0; i < 5; i++, n++) {
        tok[n] = head[i];
        type[n] = 3;
    }
    for (int b = 0; b < 256; b++, n++) {
        snprintf(bytes[b], sizeof bytes[b], "<0x%02X>", b);
        tok[n] = bytes[b];
        type[n] = 6;
    }
    for (int i = 0; i < n; i++) {
        len[i] = strlen(tok[i]);
        score[i] = 0;
    }
    for (int w = 0; words && w < GW_N; w++, n++) {
        tok[n] = gemma_words[w];
        len[n] = strlen(tok[n]);
        type[n] = !strcmp(tok[n], "\n") ? 4 : 1;
        score[n] = (float)len[n]; /* longer pieces merge first */
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
    sp.bos_id = 2;
    sp.eos_id = 1;
    sp.eot_id = sp.unk_id = -1;
    sp.pad_id = 0;
    sp.add_bos = 1;
    sp.add_eos = -1;
    sp.no_space_prefix = no_space_prefix;
    sp.chat_template = tmpl;
    etok_err err = {0};
    etok_tokenizer *t = etok_tokenizer_new(&sp, &err);
    if (!t) fail_msg("%s", err.msg);
    return t;
}

static etok_tokenizer *gemma_tokenizer(int no_space_prefix) { return gemma_tokenizer_ex(no_space_prefix, 0, NULL); }

static void test_gemma_chat_template(void **state) {
    (void)state;
    etok_tokenizer *t = gemma_tokenizer(1);
    const char *roles[4] = {"system", "user", "assistant", "user"};
    const char *contents[4] = {" Be brief. ", "Hi\n", "Hello", "<start_of_turn>Q"};
    etok_err err = {0};
    char *s = etok_tokenizer_chat_messages(t, roles, contents, 4, &err);
    assert_non_null(s);
    assert_string_equal(s, "<start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nHello<end_of_turn>\n"
                           "<start_of_turn>user\n<start_of_turn>Q<end_of_turn>\n<start_of_turn>model\n");
    free(s);
    /* the markers are control tokens; the user's "<start_of_turn>" stays text (bytes) */
    int32_t ids[512];
    int n = etok_tokenizer_encode_chat(t, roles, contents, 4, 1, ids, 512, &err);
    assert_true(n > 10 && n < 512);
    assert_int_equal(ids[0], 2); /* <bos> */
    assert_int_equal(ids[1], 3); /* <start_of_turn> */
    int starts = 0, ends = 0;
    for (int i = 0; i < n; i++) {
        starts += ids[i] == 3;
        ends += ids[i] == 4;
    }
    assert_int_equal(starts, 4);
    assert_int_equal(ends, 3);
    assert_true(etok_tokenizer_is_eog(t, 4)); /* <end_of_turn> ends generation */
    /* system only: its own user turn */
    s = etok_tokenizer_chat(t, "sys", "u", &err);
    assert_string_equal(s, "<start_of_turn>user\nsys\n\nu<end_of_turn>\n<start_of_turn>model\n");
    free(s);
    etok_tokenizer_free(t);
}

/* The bug report "etok generate --chat on Gemma 3 270M answers '...France? mendatang'" (docs/ENGINE.md,
 * "Chat on a file without a template"): the prompt the model sees is exactly Gemma's template —
 * one <bos> (not two, by either path), the markers as control tokens, "user"/"model" and "\n" as
 * text — <end_of_turn> and <eos> end generation and <start_of_turn> does not, and a file
 * without tokenizer.chat_template is reported as such (etok's note that it is likely a base model). */
static void test_gemma_chat_ids(void **state) {
    (void)state;
    etok_err err = {0};
    etok_tokenizer *t = gemma_tokenizer_ex(1, 1, NULL);
    const char *role = "user", *content = "Hi";
    int32_t ids[64];
    int n = etok_tokenizer_encode_chat(t, &role, &content, 1, 1, ids, 64, &err);
    const int32_t want[] = {2, 3, GW_USER, GW_NL, GW_HI, 4, GW_NL, 3, GW_MODEL, GW_NL};
    assert_int_equal(n, (int)(sizeof want / sizeof *want));
    for (int i = 0; i < n; i++) assert_int_equal(ids[i], want[i]);
    /* the rendered text tokenized with special tokens (generate --chat --parse-special): same ids */
    char *s = etok_tokenizer_chat(t, NULL, "Hi", &err);
    assert_non_null(s);
    assert_string_equal(s, "<start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n"); /* no "<bos>" text */
    int32_t ids2[64];
    assert_int_equal(etok_tokenizer_encode(t, s, 1, 1, ids2, 64, &err), n);
    assert_memory_equal(ids, ids2, (size_t)n * sizeof *ids);
    free(s);
    /* without add_bos no BOS at all */
    assert_int_equal(etok_tokenizer_encode_chat(t, &role, &content, 1, 0, ids2, 64, &err), n - 1);
    assert_memory_equal(ids + 1, ids2, (size_t)(n - 1) * sizeof *ids);
    assert_true(etok_tokenizer_is_eog(t, 4));  /* <end_of_turn> */
    assert_true(etok_tokenizer_is_eog(t, 1));  /* <eos> */
    assert_false(etok_tokenizer_is_eog(t, 3)); /* <start_of_turn> */
    assert_false(etok_tokenizer_is_eog(t, 2)); /* <bos> */
    assert_false(etok_tokenizer_is_eog(t, GW_NL));
    int from_file = -1;
    assert_string_equal(etok_tokenizer_chat_name(t, &from_file), "Gemma");
    assert_int_equal(from_file, 0);
    etok_tokenizer_free(t);
    /* the same vocabulary with a template naming the markers (an instruction-tuned file) */
    t = gemma_tokenizer_ex(1, 1, "{{ bos_token }}{% for m in messages %}<start_of_turn>...{% endfor %}");
    from_file = -1;
    assert_string_equal(etok_tokenizer_chat_name(t, &from_file), "Gemma");
    assert_int_equal(from_file, 1);
    assert_int_equal(etok_tokenizer_encode_chat(t, &role, &content, 1, 1, ids2, 64, &err), n);
    assert_memory_equal(ids, ids2, (size_t)n * sizeof *ids);
    etok_tokenizer_free(t);
    assert_string_equal(etok_tokenizer_chat_name(NULL, &from_file), "none");
    assert_int_equal(from_file, 0);
}

/* tokenizer.ggml.add_space_prefix = false (Gemma): no "▁" in front of the text. */
static void test_no_space_prefix(void **state) {
    (void)state;
    etok_err err = {0};
    int32_t ids[32];
    etok_tokenizer *t = gemma_tokenizer(1);
    int n = etok_tokenizer_encode(t, "Hi", 0, 0, ids, 32, &err);
    assert_int_equal(n, 2); /* H, i */
    etok_tokenizer_free(t);
    t = gemma_tokenizer(0);
    n = etok_tokenizer_encode(t, "Hi", 0, 0, ids, 32, &err);
    assert_int_equal(n, 5); /* "▁" as its 3 UTF-8 bytes, H, i */
    etok_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loads_with_key_length_heads), cmocka_unit_test(test_sliding_window_takes_effect),
        cmocka_unit_test(test_local_layers_kv_capped),
        cmocka_unit_test(test_layer_pattern_is_read),       cmocka_unit_test(test_post_norms_are_applied),
        cmocka_unit_test(test_load_errors),                 cmocka_unit_test(test_gemma_chat_template), cmocka_unit_test(test_gemma_chat_ids),
        cmocka_unit_test(test_no_space_prefix),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
