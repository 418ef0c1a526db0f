/* test_gguf.c — the GGUF reader on a synthetic model (metadata of each kind, tensor infos,
 * every tensor type) and on malformed files: every truncation point, bad magic/version,
 * impossible counts, huge string lengths, unknown value and tensor types, overlapping and
 * misaligned offsets, bad alignment, duplicate keys, bad dimensions. Each must be one clear
 * error (ETOK_EXIT_INPUT), never a crash (the ASan build runs this too). */
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

static char tmpdir[256];

static const char *tmp_path(const char *name) {
    static char p[512];
    snprintf(p, sizeof p, "%s/%s", tmpdir, name);
    return p;
}

static int setup(void **state) {
    (void)state;
    snprintf(tmpdir, sizeof tmpdir, "/tmp/etok_test_gguf_XXXXXX");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

static uint8_t *slurp(const char *path, size_t *n) {
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *n = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *b = malloc(*n ? *n : 1);
    assert_int_equal(fread(b, 1, *n, f), *n);
    fclose(f);
    return b;
}

static void test_read_tiny(void **state) {
    (void)state;
    etok_tiny_gguf_opts o;
    etok_tiny_gguf_defaults(&o);
    o.d_model = 256;
    o.d_ff = 256;
    o.mixed_types = 1;
    o.tied = 0;
    o.alignment = 64;
    const char *path = tmp_path("mixed.gguf");
    assert_int_equal(etok_test_write_tiny_gguf(path, &o), 0);
    etok_err err = {{0}, 0};
    etok_gguf *g = etok_gguf_open(path, &err);
    if (!g) fail_msg("%s", err.msg);
    assert_int_equal(g->version, 3);
    assert_int_equal(g->alignment, 64);
    assert_int_equal(g->data_offset % 64, 0);
    assert_int_equal(g->n_tensors, 3 + 9 * 2);

    const char *s;
    size_t len;
    assert_int_equal(etok_gguf_get_str(g, "general.architecture", &s, &len, &err), 1);
    assert_int_equal(len, 5);
    assert_memory_equal(s, "llama", 5);
    uint32_t u;
    assert_int_equal(etok_gguf_get_u32(g, "llama.embedding_length", &u, &err), 1);
    assert_int_equal(u, 256);
    float f;
    assert_int_equal(etok_gguf_get_f32(g, "llama.rope.freq_base", &f, &err), 1);
    assert_float_equal(f, 10000.0f, 0.0f);
    int bval = -1;
    assert_int_equal(etok_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &bval, &err), 1);
    assert_int_equal(bval, 0);
    assert_int_equal(etok_gguf_get_u32(g, "no.such.key", &u, &err), 0);
    /* wrong type: a string asked as an integer */
    assert_int_equal(etok_gguf_get_u32(g, "general.architecture", &u, &err), -1);
    assert_non_null(strstr(err.msg, "general.architecture"));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);

    const char **strs;
    size_t *lens;
    uint64_t n;
    assert_int_equal(etok_gguf_get_str_array(g, "tokenizer.ggml.tokens", &strs, &lens, &n, &err), 1);
    assert_int_equal(n, (uint64_t)etok_tiny_gguf_vocab_size());
    assert_int_equal(lens[2], strlen("<|im_end|>"));
    assert_memory_equal(strs[2], "<|im_end|>", lens[2]);
    free(strs);
    free(lens);
    int32_t *ti;
    assert_int_equal(etok_gguf_get_i32_array(g, "tokenizer.ggml.token_type", &ti, &n, &err), 1);
    assert_int_equal(ti[0], 3);
    assert_int_equal(ti[100], 1);
    free(ti);
    float *fa;
    assert_int_equal(etok_gguf_get_f32_array(g, "tokenizer.ggml.token_type", &fa, &n, &err), 1);
    assert_float_equal(fa[1], 3.0f, 0.0f);
    free(fa);
    assert_int_equal(etok_gguf_get_i32_array(g, "tokenizer.ggml.tokens", &ti, &n, &err), -1);

    /* every supported tensor type appears, data lies inside the file at aligned offsets */
    int seen[ETOK_T_COUNT] = {0};
    for (uint64_t i = 0; i < g->n_tensors; i++) {
        const etok_gguf_tensor *t = &g->tensors[i];
        seen[t->type] = 1;
        assert_true((const uint8_t *)t->data >= g->base + g->data_offset);
        assert_true((const uint8_t *)t->data + t->n_bytes <= g->base + g->size);
        assert_int_equal(t->offset % 64, 0);
        assert_int_equal(t->n_bytes, etok_type_row_bytes(t->type, (int64_t)t->ne[0]) * t->ne[1]);
    }
    const uint32_t want[] = {ETOK_T_F32,  ETOK_T_F16,  ETOK_T_BF16, ETOK_T_Q8_0, ETOK_T_Q4_0,
                             ETOK_T_Q4_1, ETOK_T_Q5_0, ETOK_T_Q5_1, ETOK_T_Q4_K, ETOK_T_Q6_K,
                             ETOK_T_IQ4_NL, ETOK_T_Q2_K, ETOK_T_Q3_K, ETOK_T_Q5_K};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (!seen[want[i]]) fail_msg("type %s missing from the mixed model", etok_type_name(want[i]));
    const etok_gguf_tensor *t = etok_gguf_find_tensor(g, "blk.1.ffn_down.weight");
    assert_non_null(t);
    assert_int_equal(t->ne[0], 256);
    assert_null(etok_gguf_find_tensor(g, "blk.2.ffn_down.weight"));
    etok_gguf_close(g);
}

/* Every prefix of a valid file (header and metadata byte by byte, data section sampled)
 * fails cleanly. */
static void test_truncated(void **state) {
    (void)state;
    const char *path = tmp_path("tiny.gguf");
    assert_int_equal(etok_test_write_tiny_gguf(path, NULL), 0);
    size_t n;
    uint8_t *full = slurp(path, &n);
    etok_err err = {{0}, 0};
    etok_gguf *g = etok_gguf_open_buffer(full, n, &err);
    assert_non_null(g);
    size_t data_off = (size_t)g->data_offset;
    etok_gguf_close(g);
    for (size_t cut = 0; cut < n; cut += cut < data_off + 64 ? 1 : 997) {
        uint8_t *b = malloc(cut ? cut : 1); /* exact-size buffer: ASan catches any over-read */
        memcpy(b, full, cut);
        memset(&err, 0, sizeof err);
        g = etok_gguf_open_buffer(b, cut, &err);
        if (g) fail_msg("a file cut at %zu of %zu bytes was accepted", cut, n);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
        assert_true(strlen(err.msg) > 10);
        free(b);
    }
    /* and the file on disk, truncated: same through etok_model_load */
    FILE *f = fopen(tmp_path("cut.gguf"), "wb");
    fwrite(full, 1, n - 100, f);
    fclose(f);
    memset(&err, 0, sizeof err);
    etok_model *m = etok_model_load(tmp_path("cut.gguf"), &err);
    assert_null(m);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "cut.gguf"));
    assert_non_null(strstr(err.msg, "past the end"));
    free(full);
}

/* A hand-built header: magic, version, counts. */
static void header(etok_gbuf *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv) {
    etok_gbuf_bytes(b, "GGUF", 4);
    etok_gbuf_u32(b, version);
    etok_gbuf_u64(b, n_tensors);
    etok_gbuf_u64(b, n_kv);
}

static void expect_error(etok_gbuf *b, const char *needle) {
    etok_err err = {{0}, 0};
    uint8_t *copy = malloc(b->n ? b->n : 1);
    memcpy(copy, b->p, b->n);
    etok_gguf *g = etok_gguf_open_buffer(copy, b->n, &err);
    if (g) fail_msg("malformed file accepted (expected an error with '%s')", needle);
    if (!strstr(err.msg, needle)) fail_msg("error '%s' does not mention '%s'", err.msg, needle);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    free(copy);
    etok_gbuf_free(b);
}

static void tensor_info(etok_gbuf *b, const char *name, uint32_t nd, const uint64_t *ne, uint32_t type, uint64_t off) {
    etok_gbuf_str(b, name);
    etok_gbuf_u32(b, nd);
    for (uint32_t i = 0; i < nd; i++) etok_gbuf_u64(b, ne[i]);
    etok_gbuf_u32(b, type);
    etok_gbuf_u64(b, off);
}

static void test_malformed(void **state) {
    (void)state;
    etok_gbuf b = {0};
    static const uint8_t zeros[4096] = {0};
    const uint64_t ne32[1] = {32};

    etok_gbuf_bytes(&b, "GGUX", 4);
    etok_gbuf_u32(&b, 3);
    etok_gbuf_u64(&b, 0);
    etok_gbuf_u64(&b, 0);
    expect_error(&b, "magic");

    header(&b, 7, 0, 0);
    expect_error(&b, "version");

    header(&b, 3, 0, 1ull << 60);
    expect_error(&b, "metadata count");

    header(&b, 3, 1ull << 40, 0);
    expect_error(&b, "tensor count");

    header(&b, 3, 0, 1); /* key with a huge length */
    etok_gbuf_u64(&b, 1ull << 62);
    etok_gbuf_bytes(&b, zeros, 64);
    expect_error(&b, "string length");

    header(&b, 3, 0, 1); /* string value with a huge length */
    etok_gbuf_str(&b, "general.name");
    etok_gbuf_u32(&b, ETOK_GGUF_STRING);
    etok_gbuf_u64(&b, UINT64_MAX - 3);
    etok_gbuf_bytes(&b, zeros, 64);
    expect_error(&b, "string length");

    header(&b, 3, 0, 1); /* unknown value type */
    etok_gbuf_str(&b, "x.y");
    etok_gbuf_u32(&b, 77);
    etok_gbuf_bytes(&b, zeros, 16);
    expect_error(&b, "unknown value type");

    header(&b, 3, 0, 1); /* array with an impossible count */
    etok_gbuf_str(&b, "x.arr");
    etok_gbuf_u32(&b, ETOK_GGUF_ARRAY);
    etok_gbuf_u32(&b, ETOK_GGUF_U64);
    etok_gbuf_u64(&b, 1ull << 61);
    etok_gbuf_bytes(&b, zeros, 64);
    expect_error(&b, "exceeds the file");

    header(&b, 3, 0, 1); /* array of unknown element type */
    etok_gbuf_str(&b, "x.arr");
    etok_gbuf_u32(&b, ETOK_GGUF_ARRAY);
    etok_gbuf_u32(&b, 99);
    etok_gbuf_u64(&b, 1);
    etok_gbuf_bytes(&b, zeros, 64);
    expect_error(&b, "unknown array element type");

    header(&b, 3, 0, 1); /* bool that is not 0/1 */
    etok_gbuf_str(&b, "x.b");
    etok_gbuf_u32(&b, ETOK_GGUF_BOOL);
    etok_gbuf_bytes(&b, "\x05", 1);
    expect_error(&b, "bool");

    header(&b, 3, 0, 2); /* duplicate key */
    for (int i = 0; i < 2; i++) {
        etok_gbuf_str(&b, "dup.key");
        etok_gbuf_u32(&b, ETOK_GGUF_U32);
        etok_gbuf_u32(&b, 1);
    }
    expect_error(&b, "duplicate metadata key");

    header(&b, 3, 0, 1); /* alignment not a power of two */
    etok_gbuf_str(&b, "general.alignment");
    etok_gbuf_u32(&b, ETOK_GGUF_U32);
    etok_gbuf_u32(&b, 48);
    expect_error(&b, "power of two");

    header(&b, 3, 0, 1); /* alignment of the wrong type */
    etok_gbuf_str(&b, "general.alignment");
    etok_gbuf_u32(&b, ETOK_GGUF_U64);
    etok_gbuf_u64(&b, 32);
    expect_error(&b, "alignment");

    header(&b, 3, 1, 0); /* unknown tensor type */
    tensor_info(&b, "w", 1, ne32, 23, 0);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 256);
    expect_error(&b, "tensor type");

    header(&b, 3, 1, 0); /* too many dimensions */
    {
        const uint64_t ne5[5] = {32, 1, 1, 1, 1};
        tensor_info(&b, "w", 5, ne5, ETOK_T_F32, 0);
    }
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 256);
    expect_error(&b, "dimensions");

    header(&b, 3, 1, 0); /* zero dimension */
    {
        const uint64_t ne2[2] = {32, 0};
        tensor_info(&b, "w", 2, ne2, ETOK_T_F32, 0);
    }
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 256);
    expect_error(&b, "zero or too large");

    header(&b, 3, 1, 0); /* element count that would overflow */
    {
        const uint64_t ne4[4] = {1ull << 40, 1ull << 40, 1ull << 40, 2};
        tensor_info(&b, "w", 4, ne4, ETOK_T_F32, 0);
    }
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 256);
    expect_error(&b, "too large");

    header(&b, 3, 1, 0); /* row not a whole number of blocks */
    {
        const uint64_t ne1[1] = {33};
        tensor_info(&b, "w", 1, ne1, ETOK_T_Q4_1, 0);
    }
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 256);
    expect_error(&b, "multiple of the Q4_1 block");

    header(&b, 3, 2, 0); /* overlapping tensors: 128 bytes of F32 each, 32 bytes apart */
    tensor_info(&b, "a", 1, ne32, ETOK_T_F32, 0);
    tensor_info(&b, "b", 1, ne32, ETOK_T_F32, 32);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 512);
    expect_error(&b, "overlap");

    header(&b, 3, 1, 0); /* misaligned offset */
    tensor_info(&b, "a", 1, ne32, ETOK_T_F32, 8);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 512);
    expect_error(&b, "alignment");

    header(&b, 3, 1, 0); /* offset far past the end */
    tensor_info(&b, "a", 1, ne32, ETOK_T_F32, 1ull << 50);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 512);
    expect_error(&b, "past the end");

    header(&b, 3, 1, 0); /* a type etok does not read: named, with the supported list */
    tensor_info(&b, "a", 1, ne32, 23 /* IQ4_XS */, 0);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 512);
    expect_error(&b, "tensor type 23 (IQ4_XS) is not supported; supported: F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, "
                     "Q8_0, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K");

    header(&b, 3, 1, 0); /* an id GGML does not define */
    tensor_info(&b, "a", 1, ne32, 250, 0);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 512);
    expect_error(&b, "tensor type 250 (unknown to etok) is not supported");

    header(&b, 3, 2, 0); /* duplicate tensor names */
    tensor_info(&b, "a", 1, ne32, ETOK_T_F32, 0);
    tensor_info(&b, "a", 1, ne32, ETOK_T_F32, 128);
    etok_gbuf_pad(&b, 32);
    etok_gbuf_bytes(&b, zeros, 512);
    expect_error(&b, "duplicate tensor name");

    /* a minimal valid file: no tensors, one key */
    header(&b, 3, 0, 1);
    etok_gbuf_str(&b, "general.architecture");
    etok_gbuf_u32(&b, ETOK_GGUF_STRING);
    etok_gbuf_str(&b, "llama");
    etok_err err = {{0}, 0};
    etok_gguf *g = etok_gguf_open_buffer(b.p, b.n, &err);
    assert_non_null(g);
    assert_int_equal(g->n_kv, 1);
    etok_gguf_close(g);
    etok_gbuf_free(&b);
}

/* Model-level validation: a GGUF that parses but is not a usable Llama model. */
static void test_model_errors(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path("does-not-exist.gguf"), &err);
    assert_null(m);
    assert_non_null(strstr(err.msg, "does-not-exist.gguf"));

    /* a valid model loads, with the shapes and types it was written with */
    etok_tiny_gguf_opts o;
    etok_tiny_gguf_defaults(&o);
    o.rope_freq_base = 0; /* key absent: the engine uses the GGUF default 10000 */
    assert_int_equal(etok_test_write_tiny_gguf(tmp_path("ok.gguf"), &o), 0);
    m = etok_model_load(tmp_path("ok.gguf"), &err);
    if (!m) fail_msg("%s", err.msg);
    const etok_model_info *in = etok_model_get_info(m);
    assert_int_equal(in->n_layers, 2);
    assert_int_equal(in->d_model, 64);
    assert_int_equal(in->head_dim, 16);
    assert_int_equal(in->n_kv_heads, 2);
    assert_int_equal(in->vocab_size, etok_tiny_gguf_vocab_size());
    assert_int_equal(in->tied_embeddings, 1);
    assert_float_equal(in->rope_freq_base, 10000.0, 0.0);
    assert_int_equal(in->eos_id, 2);
    assert_non_null(strstr(in->weight_types, "Q4_1 x 14"));
    assert_non_null(strstr(in->weight_types, "Q8_0 x 1"));
    assert_non_null(strstr(in->weight_types, "F32 x 5"));
    etok_model_free(m);

    o.rope_freq_base = 12345.0f;
    assert_int_equal(etok_test_write_tiny_gguf(tmp_path("rope.gguf"), &o), 0);
    m = etok_model_load(tmp_path("rope.gguf"), &err);
    assert_non_null(m);
    assert_float_equal(etok_model_get_info(m)->rope_freq_base, 12345.0, 0.0);
    etok_model_free(m);

    /* heads that do not divide the model dimension */
    etok_tiny_gguf_defaults(&o);
    o.n_heads = 4;
    o.n_kv_heads = 3;
    assert_int_equal(etok_test_write_tiny_gguf(tmp_path("heads.gguf"), &o), 0);
    m = etok_model_load(tmp_path("heads.gguf"), &err);
    assert_null(m);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_read_tiny),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_model_errors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
