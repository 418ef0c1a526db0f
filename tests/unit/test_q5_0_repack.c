/* test_q5_0_repack.c — Q5_0 matrices repacked at load into etok's Q5_0x8 layout (model.c
 * repack_at_load, quant_q5_0x8.c; docs/ENGINE.md "Q5_0 repacked at load"), on tiny synthetic
 * GGUF files.
 *
 * What is proven (at the AVX2 kernel level, where the repacking applies; elsewhere the test
 * says it skips): every Q5_0 matrix of 8k rows is repacked at load (the layer matrices, Phi-3's
 * Q/K/V and gate/up row views one by one, the LM head, and a tied embedding table with it; an
 * untied table stays in the file), every row reads back as the file's row, the file's pages of
 * the repacked tensors are released; the logits of a prefill and of decode steps on 2 threads
 * equal bit for bit those of the same model made to read the file's layout (the embedding
 * lookup from the copy included); in a Q4_K-file-like mix (Q5_0 beside Q4_K ffn_down, as
 * llama-quantize writes for 576-column rows) the Q5_0 matrices are repacked and the K-quant
 * stays in the file, with the same logits; --weights re-encoding reads a repacked matrix's
 * rows, and matrices re-encoded into Q5_0 are repacked. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "synth_gguf.h"
#define REPACK_TMP_PREFIX "/tmp/etok_q5_0_repack"
#include "repack_check.h"

static void base_opts(etok_tiny_gguf_opts *o) {
    etok_tiny_gguf_defaults(o);
    o->weight_type = o->embd_type = ETOK_T_Q5_0;
    o->d_model = 256; /* 256 rows x 8 blocks x 22 bytes: tensors of several pages */
    o->d_ff = 512;
    o->n_heads = 4;
    o->n_kv_heads = 2;
    o->pad_vocab = 3; /* 272 tokens: a tied LM head of 8k rows */
    o->weight_scale = 0.3f;
    o->seed = 11;
}

/* llama-quantize's Q4_K choice for 576-column rows, in small: Q5_0 everywhere but ffn_down */
static const uint32_t k4_mix[7] = {ETOK_T_Q5_0, ETOK_T_Q5_0, ETOK_T_Q5_0, ETOK_T_Q5_0,
                                   ETOK_T_Q5_0, ETOK_T_Q5_0, ETOK_T_Q4_K};

static int setup(void **state) {
    (void)state;
    if (repack_tmpdir_make()) return -1;
    etok_tiny_gguf_opts o;
    base_opts(&o);
    if (etok_test_write_tiny_gguf(tmp_path("tied.gguf"), &o)) return -1;
    base_opts(&o);
    o.arch = "phi3";
    if (etok_test_write_tiny_gguf(tmp_path("phi3.gguf"), &o)) return -1;
    base_opts(&o);
    o.tied = 0;
    o.output_type = ETOK_T_Q5_0; /* the embedding table (lookup only) stays in the file's layout */
    if (etok_test_write_tiny_gguf(tmp_path("untied.gguf"), &o)) return -1;
    base_opts(&o);
    o.type_cycle = k4_mix;
    o.n_type_cycle = 7;
    o.embd_type = ETOK_T_Q8_0;
    if (etok_test_write_tiny_gguf(tmp_path("k4mix.gguf"), &o)) return -1;
    base_opts(&o);
    o.weight_type = ETOK_T_Q8_0; /* for --weights q5_0 */
    o.embd_type = ETOK_T_Q8_0;
    if (etok_test_write_tiny_gguf(tmp_path("q8_0.gguf"), &o)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf", "k4mix.gguf", "q8_0.gguf"};
    repack_tmpdir_remove(names, sizeof names / sizeof names[0]);
    return 0;
}

static void test_packed_at_load(void **state) {
    (void)state;
    check_packed_at_load_where_it_applies(ETOK_LAYOUT_Q50X8, "Q5_0");
}

static void test_logits_equal_file_layout(void **state) {
    (void)state;
    check_logits_equal_file_layout();
}

/* The Q4_K-file-like mix: the Q5_0 matrices repacked and read back, ffn_down (Q4_K) and the
 * Q8_0 table stay in the file's layout; logits equal the file layout's. */
static void test_k4_mix(void **state) {
    (void)state;
    etok_model *m = load("k4mix.gguf");
    if (repack_applies()) {
        float *a = malloc((size_t)m->info.d_ff * sizeof *a), *b = malloc((size_t)m->info.d_ff * sizeof *b);
        assert_true(a && b);
        etok_mat *mats[64];
        const int n = model_mats(m, mats);
        int packed = 0;
        for (int i = 0; i < n; i++) {
            const etok_mat *M = mats[i];
            if (M->type != ETOK_T_Q5_0) {
                assert_true(M->layout == ETOK_LAYOUT_FILE || M->type == ETOK_T_Q8_0);
                continue;
            }
            if (M->layout != ETOK_LAYOUT_Q50X8) fail_msg("matrix %d (Q5_0) not repacked", i);
            packed++;
            for (int64_t r = 0; r < M->n_out; r++) {
                etok_mat_dequantize_row(M, r, a);
                etok_dequantize_row(M->type, M->src + (size_t)r * M->row_bytes, b, M->n_in);
                if (memcmp(a, b, (size_t)M->n_in * sizeof *a) != 0) fail_msg("matrix %d row %lld differs", i, (long long)r);
            }
        }
        assert_int_equal(packed, 6 * m->info.n_layers);
        assert_int_equal(m->layers[0].w_down.type, ETOK_T_Q4_K);
        assert_true(m->layers[0].w_down.layout == ETOK_LAYOUT_FILE);
        free(a);
        free(b);
    }
    etok_model *file = load("k4mix.gguf");
    unpack(file);
    compare_runs(m, file, "k4mix.gguf");
    etok_model_free(m);
    etok_model_free(file);
}

/* --weights: rows of a repacked matrix re-encoded (q8_0), and matrices re-encoded into Q5_0
 * repacked (q5_0 from a Q8_0 file), give the logits of the file-layout model. */
static void test_reencode(void **state) {
    (void)state;
    check_reencode_out_of("phi3.gguf", ETOK_LAYOUT_Q50X8);
    check_reencode_into("q8_0.gguf", "q5_0", ETOK_T_Q5_0, ETOK_LAYOUT_Q50X8, repack_applies());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_at_load),
        cmocka_unit_test(test_logits_equal_file_layout),
        cmocka_unit_test(test_k4_mix),
        cmocka_unit_test(test_reencode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
