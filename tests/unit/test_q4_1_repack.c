/* test_q4_1_repack.c — Q4_1 and Q5_1 matrices repacked at load into etok's Q4_1x8 / Q5_1x8
 * layouts (model.c repack_q4_0, quant_q4_1.c; docs/ENGINE.md "Q4_1 and Q5_1 repacked at
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
#include <sys/stat.h>
#include <errno.h>
#include <unistd.h>

#include <cmocka.h>

#include "engine/model.h"
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
    snprintf(tmpdir, sizeof tmpdir, "/tmp/etok_q4_1_repack_%d", (int)getpid());
    if (mkdir(tmpdir, 0700) != 0 && errno != EEXIST) return -1;
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
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) unlink(tmp_path(names[i]));
    rmdir(tmpdir);
    return 0;
}

/* the repacking applies at the AVX2 level only */
static int applies(void) { return etok_isa_active() == ETOK_ISA_AVX2; }

static etok_model *load(const char *name) {
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(tmp_path(name), &err);
    if (!m) fail_msg("%s: %s", name, err.msg);
    return m;
}

/* The matrices the forward pass multiplies by, the LM head first. */
static int model_mats(etok_model *m, etok_mat **out) {
    int n = 0;
    out[n++] = &m->output;
    for (int l = 0; l < m->info.n_layers; l++) {
        etok_layer *L = &m->layers[l];
        etok_mat *lm[7] = {&L->wq, &L->wk, &L->wv, &L->wo, &L->w_gate, &L->w_up, &L->w_down};
        for (int k = 0; k < 7; k++) out[n++] = lm[k];
    }
    return n;
}

/* Back to the file's layout (the pages re-read from the file): the model the repacked one
 * must equal. */
static void unpack(etok_model *m) {
    etok_mat *mats[64];
    const int n = model_mats(m, mats);
    for (int i = 0; i < n; i++)
        if (mats[i]->q41x8 || mats[i]->q8x4) {
            mats[i]->data = mats[i]->src;
            mats[i]->q41x8 = mats[i]->q8x4 = 0;
        }
    if (m->tok_embd.q41x8 || m->tok_embd.q8x4) {
        m->tok_embd.data = m->tok_embd.src;
        m->tok_embd.q41x8 = m->tok_embd.q8x4 = 0;
    }
}

/* Logits of a 7-token prefill (every row) and 3 decode steps, 2 threads. */
static float *run(etok_model *m, int *n_rows) {
    etok_err err = {{0}, 0};
    const int V = m->info.vocab_size, P = 7, D = 3;
    etok_threadpool *pool = etok_threadpool_new(2, &err);
    assert_non_null(pool);
    etok_kv_cache kv;
    assert_int_equal(etok_kv_cache_init(&kv, m, 1, 32, 16, 0, 0, P, &err), 0);
    etok_fwd_state *st = etok_fwd_state_new(m, P, 2, 32, &err);
    assert_non_null(st);
    float *out = malloc((size_t)(P + D) * (size_t)V * sizeof *out);
    assert_non_null(out);
    int32_t tok[7];
    int pos[7], slot[7], row[7];
    for (int i = 0; i < P; i++) {
        tok[i] = 3 + (i * 37) % 250;
        pos[i] = i;
        slot[i] = 0;
        row[i] = i;
    }
    tok[P - 1] = V - 1; /* a padding token's embedding row: the last group of the table */
    etok_batch b = {P, tok, pos, slot, row, P};
    if (etok_model_forward(m, pool, &kv, st, &b, 0, out, &err)) fail_msg("prefill: %s", err.msg);
    for (int k = 0; k < D; k++) {
        const int32_t t1 = 10 + 61 * k;
        const int p1 = P + k, s1 = 0, r1 = 0;
        etok_batch b1 = {1, &t1, &p1, &s1, &r1, 1};
        if (etok_model_forward(m, pool, &kv, st, &b1, 0, out + (size_t)(P + k) * (size_t)V, &err))
            fail_msg("decode %d: %s", k, err.msg);
    }
    etok_fwd_state_free(st);
    etok_kv_cache_free(&kv);
    etok_threadpool_free(pool);
    *n_rows = P + D;
    return out;
}

static void compare_runs(etok_model *a, etok_model *b, const char *what) {
    int na, nb;
    float *la = run(a, &na), *lb = run(b, &nb);
    assert_int_equal(na, nb);
    const size_t n = (size_t)na * (size_t)a->info.vocab_size;
    for (size_t i = 0; i < n; i++)
        if (memcmp(&la[i], &lb[i], sizeof la[i]) != 0)
            fail_msg("%s: logit %zu (row %zu): repacked %.9g, file layout %.9g", what, i,
                     i / (size_t)a->info.vocab_size, la[i], lb[i]);
    free(la);
    free(lb);
}

static void test_packed_at_load(void **state) {
    (void)state;
    if (!applies()) {
        printf("skip: kernel level not avx2, Q4_1 / Q5_1 stay in the file's layout\n");
        return;
    }
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        etok_model *m = load(names[f]);
        etok_mat *mats[64];
        const int n = model_mats(m, mats);
        double bytes = 0;
        float *a = malloc((size_t)m->info.d_ff * 2 * sizeof *a), *b = malloc((size_t)m->info.d_ff * 2 * sizeof *b);
        assert_true(a && b);
        for (int i = 0; i < n; i++) {
            const etok_mat *M = mats[i];
            if (!M->q41x8) fail_msg("%s: matrix %d (%lld x %lld) not repacked", names[f], i, (long long)M->n_out,
                                     (long long)M->n_in);
            assert_true(M->data != M->src);
            bytes += (double)M->n_out * (double)M->row_bytes;
            for (int64_t r = 0; r < M->n_out; r++) {
                etok_mat_dequantize_row(M, r, a);
                etok_dequantize_row(M->type, M->src + (size_t)r * M->row_bytes, b, M->n_in);
                if (memcmp(a, b, (size_t)M->n_in * sizeof *a) != 0) fail_msg("%s: matrix %d row %lld differs", names[f], i, (long long)r);
            }
        }
        /* the tied table is the LM head's copy; an untied one stays in the file */
        if (f == 2) {
            assert_false(m->tok_embd.q41x8);
            assert_true(m->tok_embd.data == m->tok_embd.src);
        } else {
            assert_true(m->tok_embd.q41x8);
            assert_true(m->tok_embd.data == m->output.data);
        }
        assert_true(m->packed_bytes == bytes);
        /* the interiors of the repacked tensors' pages: at least half of their bytes here */
        if (!(m->released_bytes >= 0.5 * bytes && m->released_bytes <= bytes))
            fail_msg("%s: %.0f bytes of pages released for %.0f repacked", names[f], m->released_bytes, bytes);
        free(a);
        free(b);
        etok_model_free(m);
    }
}

static void test_logits_equal_file_layout(void **state) {
    (void)state;
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        etok_model *packed = load(names[f]), *file = load(names[f]);
        unpack(file);
        compare_runs(packed, file, names[f]);
        etok_model_free(packed);
        etok_model_free(file);
    }
}

/* --weights: rows of a repacked matrix re-encoded (q8_0), and matrices re-encoded into Q5_1
 * repacked (q5_1 from a Q8_0 file), give the logits of the file-layout model. */
static void test_reencode(void **state) {
    (void)state;
    etok_err err = {{0}, 0};
    etok_model *a = load("phi3.gguf"), *b = load("phi3.gguf");
    unpack(b);
    assert_int_equal(etok_model_set_weights(a, "q8_0", &err), 0);
    assert_int_equal(etok_model_set_weights(b, "q8_0", &err), 0);
    assert_false(a->output.q41x8);
    assert_false(a->tok_embd.q41x8);
    assert_false(a->layers[0].wq.q41x8);
    assert_string_equal(a->info.weight_types, b->info.weight_types);
    compare_runs(a, b, "q5_1 file -> --weights q8_0");
    etok_model_free(a);
    etok_model_free(b);

    a = load("q8_0.gguf");
    b = load("q8_0.gguf");
    assert_int_equal(etok_model_set_weights(a, "q5_1", &err), 0);
    assert_int_equal(etok_model_set_weights(b, "q5_1", &err), 0);
    assert_int_equal(a->layers[0].wq.type, ETOK_T_Q5_1);
    if (applies()) {
        assert_true(a->layers[0].wq.q41x8 && a->layers[0].w_down.q41x8);
        assert_true(a->output.q41x8 && a->tok_embd.q41x8);
        int freed = 0;
        for (int i = 0; i < a->n_owned; i++) freed += a->owned[i] == NULL;
        assert_int_equal(freed, 7 * a->info.n_layers + 1); /* every re-encoded buffer replaced by its copy */
    }
    /* b: the re-encoded rows back in the file's layout, rebuilt from the copies */
    etok_mat *mats[64];
    const int n = model_mats(b, mats);
    for (int i = 0; i < n; i++)
        if (mats[i]->q41x8) {
            uint8_t *rows = malloc((size_t)mats[i]->n_out * mats[i]->row_bytes);
            assert_non_null(rows);
            for (int64_t r = 0; r < mats[i]->n_out; r++)
                for (int64_t k = 0; k < mats[i]->n_in / 32; k++)
                    etok_q41x8_get_block(mats[i]->type, mats[i]->data, mats[i]->n_in, r, k,
                                         (etok_block_q5_1 *)(rows + (size_t)r * mats[i]->row_bytes) + k);
            b->owned[i] = rows; /* (freed with the model; the slots were emptied by the repacking) */
            mats[i]->data = rows;
            mats[i]->q41x8 = 0;
        }
    b->tok_embd = b->output;
    assert_string_equal(a->info.weight_types, b->info.weight_types);
    compare_runs(a, b, "q8_0 file -> --weights q5_1");
    etok_model_free(a);
    etok_model_free(b);
}

/* Q8_0 likewise, into the 4-row layout Q8_0x4 (quant_q8_0.c): every matrix repacked (the tied
 * table with the LM head), rows read back, the file's pages released, the logits those of the
 * file-layout model bit for bit. */
static void test_q8_0_packed(void **state) {
    (void)state;
    if (!applies()) {
        printf("skip: kernel level not avx2, Q8_0 stays in the file's layout\n");
        return;
    }
    etok_model *m = load("q8_0.gguf");
    etok_mat *mats[64];
    const int n = model_mats(m, mats);
    double bytes = 0;
    float *a = malloc((size_t)m->info.d_ff * 2 * sizeof *a), *b = malloc((size_t)m->info.d_ff * 2 * sizeof *b);
    assert_true(a && b);
    for (int i = 0; i < n; i++) {
        const etok_mat *M = mats[i];
        if (!M->q8x4 || M->q41x8) fail_msg("q8_0.gguf: matrix %d not repacked into Q8_0x4", i);
        assert_true(M->data != M->src);
        bytes += (double)M->n_out * (double)M->row_bytes;
        for (int64_t r = 0; r < M->n_out; r++) {
            etok_mat_dequantize_row(M, r, a);
            etok_dequantize_row(M->type, M->src + (size_t)r * M->row_bytes, b, M->n_in);
            if (memcmp(a, b, (size_t)M->n_in * sizeof *a) != 0) fail_msg("q8_0.gguf: matrix %d row %lld differs", i, (long long)r);
        }
    }
    assert_true(m->tok_embd.q8x4 && m->tok_embd.data == m->output.data);
    assert_true(m->packed_bytes == bytes);
    if (!(m->released_bytes >= 0.5 * bytes && m->released_bytes <= bytes))
        fail_msg("q8_0.gguf: %.0f bytes of pages released for %.0f repacked", m->released_bytes, bytes);
    free(a);
    free(b);
    etok_model *file = load("q8_0.gguf");
    unpack(file);
    assert_false(file->output.q8x4);
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
