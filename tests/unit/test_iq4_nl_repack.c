/* test_iq4_nl_repack.c — IQ4_NL matrices repacked at load into etok's IQ4_NLx8 layout
 * (model.c repack_at_load, quant_iq4_nlx8.c; docs/ENGINE.md "IQ4_NL repacked at load"), on tiny
 * synthetic GGUF files.
 *
 * What is proven (at the AVX2 kernel level, where the repacking applies; elsewhere the test
 * says it skips): every IQ4_NL matrix of 8k rows is repacked at load (the layer matrices,
 * Phi-3's Q/K/V and gate/up row views one by one, the LM head, and a tied embedding table with
 * it; an untied table stays in the file), every row reads back as the file's row, the file's
 * pages of the repacked tensors are released; the logits of a 7-token prefill and of decode
 * steps on 2 threads equal bit for bit those of the same model made to read the file's layout
 * (the embedding lookup from the copy included); --weights iq4_nl repacks the re-encoded
 * matrices, and a model re-encoded from a repacked one reads the copy's rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "synth_gguf.h"
#define REPACK_TMP_PREFIX "/tmp/etok_iq4_nl_repack"
#include "repack_check.h"

static void base_opts(etok_tiny_gguf_opts *o) {
    etok_tiny_gguf_defaults(o);
    o->weight_type = o->embd_type = ETOK_T_IQ4_NL;
    o->d_model = 288; /* 9 blocks per row (an odd count: the one-token kernel's last block) */
    o->d_ff = 512;    /* 16 blocks */
    o->n_heads = 4;
    o->n_kv_heads = 2;
    o->pad_vocab = 3; /* 272 tokens: a tied LM head of 8k rows */
    o->weight_scale = 0.3f;
    o->seed = 11;
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
    o.output_type = ETOK_T_IQ4_NL; /* the embedding table (lookup only) stays in the file's layout */
    if (etok_test_write_tiny_gguf(tmp_path("untied.gguf"), &o)) return -1;
    base_opts(&o);
    o.weight_type = o.embd_type = ETOK_T_Q8_0; /* for --weights iq4_nl */
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
    check_packed_at_load_where_it_applies(ETOK_LAYOUT_IQ4NLX8, "IQ4_NL");
}

static void test_logits_equal_file_layout(void **state) {
    (void)state;
    check_logits_equal_file_layout();
}

/* --weights: matrices re-encoded into IQ4_NL are repacked and give the logits of the same
 * re-encoding read in the file's layout; re-encoding a repacked model (q8_0) reads the copy's
 * rows: the logits of the file-layout model re-encoded alike. */
static void test_reencode(void **state) {
    (void)state;
    check_reencode_into("q8_0.gguf", "iq4_nl", ETOK_T_IQ4_NL, ETOK_LAYOUT_IQ4NLX8, repack_applies());
    check_reencode_out_of("tied.gguf", ETOK_LAYOUT_IQ4NLX8);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_packed_at_load),
        cmocka_unit_test(test_logits_equal_file_layout),
        cmocka_unit_test(test_reencode),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
