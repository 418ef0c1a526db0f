/* test_q4_0_repack.c — Q4_0 matrices repacked at load into etok's Q4_0x8 layout (model.c,
 * quant_q4_0.c; docs/ENGINE.md "Q4_0 repacked at load"), on tiny synthetic GGUF files.
 *
 * What is proven (on a CPU with AVX2, where the repacking applies; elsewhere the test says it
 * skips): every Q4_0 matrix of 8k rows is repacked at load (the layer matrices, Phi-3's Q/K/V
 * and gate/up row views one by one, the LM head, and a tied embedding table with it), every
 * row reads back as the file's row, the file's pages of the repacked tensors are released;
 * the logits of a prefill and of decode steps on 2 threads equal bit for bit those of the
 * same model made to read the file's layout (the embedding lookup from the copy included);
 * --weights re-encoding reads a repacked matrix's rows correctly, and a matrix re-encoded
 * into Q4_0 is repacked (its re-encoded buffer freed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "synth_gguf.h"
#define REPACK_TMP_PREFIX "/tmp/etok_q4_0_repack"
#include "repack_check.h"

static void base_opts(etok_tiny_gguf_opts *o) {
    etok_tiny_gguf_defaults(o);
    o->weight_type = o->embd_type = ETOK_T_Q4_0;
    o->d_model = 256; /* 256 rows x 8 blocks x 18 bytes: tensors of several pages */
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
    if (etok_test_write_tiny_gguf(tmp_path("phi3.gguf"), &o)) return -1;
    base_opts(&o);
    o.tied = 0;
    o.output_type = ETOK_T_Q4_0; /* the embedding table (lookup only) stays in the file's layout */
    if (etok_test_write_tiny_gguf(tmp_path("untied.gguf"), &o)) return -1;
    base_opts(&o);
    o.weight_type = ETOK_T_Q4_1; /* for --weights q4_0 */
    o.embd_type = ETOK_T_Q8_0;
    if (etok_test_write_tiny_gguf(tmp_path("q4_1.gguf"), &o)) return -1;
    return 0;
}

static int teardown(void **state) {
    (void)state;
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf", "q4_1.gguf"};
    repack_tmpdir_remove(names, sizeof names / sizeof names[0]);
    return 0;
}

static void test_packed_at_load(void **state) {
    (void)state;
    check_packed_at_load_where_it_applies(ETOK_LAYOUT_Q4_0X8, "Q4_0");
}

static void test_logits_equal_file_layout(void **state) {
    (void)state;
    check_logits_equal_file_layout();
}

/* --weights: rows of a repacked matrix re-encoded (q8_0), and matrices re-encoded into Q4_0
 * repacked (q4_0 from a Q4_1 file), give the logits of the file-layout model. */
static void test_reencode(void **state) {
    (void)state;
    check_reencode_out_of("tied.gguf", ETOK_LAYOUT_Q4_0X8);
    check_reencode_into("q4_1.gguf", "q4_0", ETOK_T_Q4_0, ETOK_LAYOUT_Q4_0X8, repack_applies());
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_at_load),
        cmocka_unit_test(test_logits_equal_file_layout),
        cmocka_unit_test(test_reencode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
