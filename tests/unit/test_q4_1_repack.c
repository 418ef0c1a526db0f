/* test_q4_1_repack.c — Q4_1 and Q5_1 matrices repacked at load into etok's Q4_1x8 / Q5_1x8
 * layouts (model.c repack_at_load, quant_q4_1.c; docs/ENGINE.md "Q4_1 and Q5_1 repacked at
 * load"), on tiny synthetic GGUF files.
 *
 * What is proven (at the AVX2 kernel level, where the repacking applies; elsewhere the test
 * says it skips): every Q4_1 / Q5_1 matrix of 8k rows is repacked at load (the layer matrices,
 * Phi-3's Q/K/V and gate/up row views one by one, the LM head, and a tied embedding table with
 * it; an untied table stays in the file), every row reads back as the file's row, the file's
 * pages of the repacked tensors are released; the logits of a prefill and of decode steps on 2
 * threads equal bit for bit those of the same model made to read the file's layout (the
 * embedding lookup from the copy included); --weights re-encoding reads a repacked matrix's
 * rows, and matrices re-encoded into Q4_1 / Q5_1 are repacked. Q8_0 matrices, repacked into
 * quant_q8_0.c's Q8_0x4 layout, likewise (test_q8_0_packed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "synth_gguf.h"
#define REPACK_TMP_PREFIX "/tmp/etok_q4_1_repack"
#include "repack_check.h"

static void base_opts(etok_tiny_gguf_opts *o) {
    etok_tiny_gguf_defaults(o);
    o->weight_type = o->embd_type = ETOK_T_Q4_1;
    o->d_model = 256; /* 256 rows x 8 blocks x 20 bytes: tensors of several pages */
    o->d_ff = 512;
    o->n_heads = 4;
    o->n_kv_heads = 2;
    o->pad_vocab = 3; /* 272 tokens: a tied LM head of 8k rows */
    o->weight_scale = 0.3f;
    o->seed = 9;
}

static int setup(void **state) {
    (void)state;
    if (repack_tmpdir_make()) return -1;
    etok_tiny_gguf_opts o;
    base_opts(&o);
    if (etok_test_write_tiny_gguf(tmp_path("tied.gguf"), &o)) return -1;
    base_opts(&o);
    o.arch = "phi3";
    o.weight_type = o.embd_type = ETOK_T_Q5_1;
    if (etok_test_write_tiny_gguf(tmp_path("phi3.gguf"), &o)) return -1;
    base_opts(&o);
    o.tied = 0;
    o.output_type = ETOK_T_Q5_1; /* the embedding table (lookup only) stays in the file's layout */
    if (etok_test_write_tiny_gguf(tmp_path("untied.gguf"), &o)) return -1;
    base_opts(&o);
    o.weight_type = ETOK_T_Q8_0; /* for --weights q5_1 */
    o.embd_type = ETOK_T_Q8_0;
    if (etok_test_write_tiny_gguf(tmp_path("q8_0.gguf"), &o)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf", "q8_0.gguf"};
    repack_tmpdir_remove(names, sizeof names / sizeof names[0]);
    return 0;
}

static void test_packed_at_load(void **state) {
    (void)state;
    check_packed_at_load_where_it_applies(ETOK_LAYOUT_Q41X8, "Q4_1 / Q5_1");
}

static void test_logits_equal_file_layout(void **state) {
    (void)state;
    check_logits_equal_file_layout();
}

/* --weights: rows of a repacked matrix re-encoded (q8_0), and matrices re-encoded into Q5_1
 * repacked (q5_1 from a Q8_0 file), give the logits of the file-layout model. */
static void test_reencode(void **state) {
    (void)state;
    check_reencode_out_of("phi3.gguf", ETOK_LAYOUT_Q41X8);
    check_reencode_into("q8_0.gguf", "q5_1", ETOK_T_Q5_1, ETOK_LAYOUT_Q41X8, repack_applies());
}

/* Q8_0 likewise, into the 4-row layout Q8_0x4 (quant_q8_0.c): every matrix repacked (the tied
 * table with the LM head), rows read back, the file's pages released, the logits those of the
 * file-layout model bit for bit. */
static void test_q8_0_packed(void **state) {
    (void)state;
    if (!repack_applies()) {
        printf("skip: no SIMD kernel level here, Q8_0 stays in the file's layout\n");
        return;
    }
    etok_model *m = load("q8_0.gguf");
    check_rows_read_back(m, "q8_0.gguf", ETOK_LAYOUT_Q8X4);
    assert_true((m->tok_embd.layout == ETOK_LAYOUT_Q8X4) && m->tok_embd.data == m->output.data);
    etok_model *file = load("q8_0.gguf");
    unpack(file);
    assert_false(file->output.layout == ETOK_LAYOUT_Q8X4);
    compare_runs(m, file, "q8_0.gguf");
    etok_model_free(m);
    etok_model_free(file);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_at_load),
        cmocka_unit_test(test_logits_equal_file_layout),
        cmocka_unit_test(test_reencode),
        cmocka_unit_test(test_q8_0_packed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
