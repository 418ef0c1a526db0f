/* repack_check.h — what the repacked-at-load tests (test_q4_0_repack.c, test_q4_1_repack.c,
 * test_q5_0_repack.c, test_iq4_nl_repack.c) share: tiny models in a per-test temporary folder, the matrices the forward pass multiplies
 * by, a model put back to the file's layout, and the logits of a prefill and decode steps
 * compared bit for bit. Included by one test file each (static functions). The including file
 * defines REPACK_TMP_PREFIX before including, e.g. "/tmp/etok_q4_0_repack". */
#ifndef ETOK_TEST_REPACK_CHECK_H
#define ETOK_TEST_REPACK_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "engine/model.h"
#include "engine/quant.h"
#include "etok/engine.h"

static char repack_tmpdir[256];

static int repack_tmpdir_make(void) {
    snprintf(repack_tmpdir, sizeof repack_tmpdir, "%s_%d", REPACK_TMP_PREFIX, (int)getpid());
    return mkdir(repack_tmpdir, 0700) != 0 && errno != EEXIST ? -1 : 0;
}

static const char *tmp_path(const char *name) {
    static char p[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", repack_tmpdir, name);
    return p[k];
}

static void repack_tmpdir_remove(const char *const *names, size_t n) {
    for (size_t i = 0; i < n; i++) unlink(tmp_path(names[i]));
    rmdir(repack_tmpdir);
}

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

static int mat_repacked(const etok_mat *M) { return M->layout != ETOK_LAYOUT_FILE; }

static void mat_to_file_layout(etok_mat *M) {
    if (!mat_repacked(M)) return;
    M->data = M->src;
    M->layout = ETOK_LAYOUT_FILE;
}

/* Back to the file's layout (the pages re-read from the file): the model the repacked one
 * must equal. */
static void unpack(etok_model *m) {
    etok_mat *mats[64];
    const int n = model_mats(m, mats);
    for (int i = 0; i < n; i++) mat_to_file_layout(mats[i]);
    mat_to_file_layout(&m->tok_embd);
}

/* Every matrix of m repacked into `layout`, each row read back as the file's row, the bytes
 * counted as packed and (mostly) released. Fails the test with `what`. */
static void check_rows_read_back(etok_model *m, const char *what, etok_layout layout) {
    etok_mat *mats[64];
    const int n = model_mats(m, mats);
    double bytes = 0;
    float *a = malloc((size_t)m->info.d_ff * 2 * sizeof *a), *b = malloc((size_t)m->info.d_ff * 2 * sizeof *b);
    assert_true(a && b);
    for (int i = 0; i < n; i++) {
        const etok_mat *M = mats[i];
        if (M->layout != layout)
            fail_msg("%s: matrix %d (%lld x %lld) not repacked", what, i, (long long)M->n_out, (long long)M->n_in);
        assert_true(M->data != M->src);
        bytes += (double)M->n_out * (double)M->row_bytes;
        for (int64_t r = 0; r < M->n_out; r++) {
            etok_mat_dequantize_row(M, r, a);
            etok_dequantize_row(M->type, M->src + (size_t)r * M->row_bytes, b, M->n_in);
            if (memcmp(a, b, (size_t)M->n_in * sizeof *a) != 0)
                fail_msg("%s: matrix %d row %lld differs", what, i, (long long)r);
        }
    }
    assert_true(m->packed_bytes == bytes);
    /* the interiors of the repacked tensors' pages: at least half of their bytes here */
    if (!(m->released_bytes >= 0.5 * bytes && m->released_bytes <= bytes))
        fail_msg("%s: %.0f bytes of pages released for %.0f repacked", what, m->released_bytes, bytes);
    free(a);
    free(b);
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

/* The three models a repack test writes (tied.gguf, phi3.gguf, untied.gguf): every matrix in
 * `layout` with its rows read back; the tied table is the LM head's copy, an untied one stays
 * in the file. */
static void check_packed_at_load(etok_layout layout) {
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        etok_model *m = load(names[f]);
        check_rows_read_back(m, names[f], layout);
        if (f == 2) {
            assert_false(m->tok_embd.layout == layout);
            assert_true(m->tok_embd.data == m->tok_embd.src);
        } else {
            assert_true(m->tok_embd.layout == layout);
            assert_true(m->tok_embd.data == m->output.data);
        }
        etok_model_free(m);
    }
}

/* The repacked layouts load at every SIMD level (model.c, repack_at_load). */
static int repack_applies(void) { return etok_simd_active(); }

/* check_packed_at_load where the repacking applies; elsewhere a note that FORMATS stay in the
 * file's layout. */
static void check_packed_at_load_where_it_applies(etok_layout to, const char *formats) {
    if (!repack_applies()) {
        printf("skip: no SIMD kernel level here, %s stay(s) in the file's layout\n", formats);
        return;
    }
    check_packed_at_load(to);
}

/* The same three models: the logits of the repacked model equal the file layout's bit for bit. */
static void check_logits_equal_file_layout(void) {
    const char *names[] = {"tied.gguf", "phi3.gguf", "untied.gguf"};
    for (size_t f = 0; f < sizeof names / sizeof names[0]; f++) {
        etok_model *packed = load(names[f]), *file = load(names[f]);
        unpack(file);
        compare_runs(packed, file, names[f]);
        etok_model_free(packed);
        etok_model_free(file);
    }
}

/* One 32-value block of row r of a repacked matrix, back in the file's bytes. */
static void packed_get_block(const etok_mat *M, int64_t r, int64_t i, void *out) {
    switch (M->layout) {
    case ETOK_LAYOUT_Q4_0X8: etok_q4_0x8_get_block(M->data, M->n_in, r, i, out); break;
    case ETOK_LAYOUT_Q41X8: etok_q41x8_get_block(M->type, M->data, M->n_in, r, i, out); break;
    case ETOK_LAYOUT_Q8X4: etok_q8x4_get_block(M->data, M->n_in, r, i, out); break;
    case ETOK_LAYOUT_Q50X8: etok_q50x8_get_block(M->data, M->n_in, r, i, out); break;
    case ETOK_LAYOUT_IQ4NLX8: etok_iq4nlx8_get_block(M->data, M->n_in, r, i, out); break;
    case ETOK_LAYOUT_FILE: fail_msg("packed_get_block: a file-layout matrix");
    }
}

/* A re-encoded model's repacked matrices back in the file's layout: their re-encoded buffers
 * were released for the copies, so the rows are rebuilt from the copies (owned by the model). */
static void rebuild_file_rows(etok_model *m) {
    etok_mat *mats[64];
    const int n = model_mats(m, mats);
    for (int i = 0; i < n; i++) {
        etok_mat *M = mats[i];
        if (!mat_repacked(M)) continue;
        const int64_t nb = M->n_in / 32;
        const size_t bb = M->row_bytes / (size_t)nb;
        uint8_t *rows = malloc((size_t)M->n_out * M->row_bytes);
        assert_non_null(rows);
        for (int64_t r = 0; r < M->n_out; r++)
            for (int64_t k = 0; k < nb; k++) packed_get_block(M, r, k, rows + (size_t)r * M->row_bytes + (size_t)k * bb);
        int slot = 0;
        while (slot < m->n_owned && m->owned[slot]) slot++; /* a slot the repacking emptied */
        assert_true(slot < m->n_owned);
        m->owned[slot] = rows;
        M->data = rows;
        M->layout = ETOK_LAYOUT_FILE;
    }
    m->tok_embd = m->output;
}

/* --weights out of a repacked model: `file`'s rows re-encoded into q8_0 read the copies, and
 * give the logits of the same model re-encoded from the file's layout. */
static void check_reencode_out_of(const char *file, etok_layout layout) {
    etok_err err = {{0}, 0};
    etok_model *a = load(file), *b = load(file);
    unpack(b);
    assert_int_equal(etok_model_set_weights(a, "q8_0", &err), 0);
    assert_int_equal(etok_model_set_weights(b, "q8_0", &err), 0);
    assert_false(a->output.layout == layout);
    assert_false(a->tok_embd.layout == layout);
    assert_false(a->layers[0].wq.layout == layout);
    assert_string_equal(a->info.weight_types, b->info.weight_types);
    compare_runs(a, b, file);
    etok_model_free(a);
    etok_model_free(b);
}

/* --weights into a repacked format: `file` (tied) re-encoded into `format` (`type`) is repacked
 * into `layout` where `packs` (every re-encoded buffer replaced by its copy), and its logits
 * equal those of the same re-encoding read in the file's layout. */
static void check_reencode_into(const char *file, const char *format, uint32_t type, etok_layout layout, int packs) {
    etok_err err = {{0}, 0};
    etok_model *a = load(file), *b = load(file);
    assert_int_equal(etok_model_set_weights(a, format, &err), 0);
    assert_int_equal(etok_model_set_weights(b, format, &err), 0);
    assert_int_equal(a->layers[0].wq.type, type);
    if (packs) {
        assert_true(a->layers[0].wq.layout == layout && a->layers[0].w_down.layout == layout);
        assert_true(a->output.layout == layout && a->tok_embd.layout == layout);
        int freed = 0;
        for (int i = 0; i < a->n_owned; i++) freed += a->owned[i] == NULL;
        assert_int_equal(freed, 7 * a->info.n_layers + 1);
    }
    rebuild_file_rows(b);
    assert_string_equal(a->info.weight_types, b->info.weight_types);
    compare_runs(a, b, format);
    etok_model_free(a);
    etok_model_free(b);
}

#endif
