/* logprobs.c — teacher-forced per-step top-k log-probabilities of the built-in engine, for
 * comparing its numerics with another engine's on the same GGUF file (bench/numerics.sh).
 *
 * Reads JSON on stdin: {"n_top": 10, "sequences": [{"prompt_ids": [...], "tokens": [...]}]}.
 * For each sequence the prompt runs as one forward pass (as a server's prompt evaluation
 * does) and then every forced token as its own single-token step (as decoding does), so
 * step k's logits are those after prompt + tokens[0..k-1], i.e. the distribution tokens[k]
 * was drawn from. Writes on stdout:
 *   {"model": ..., "kv_bits": 16, "sequences": [{"steps": [{"top": [[id, logprob], ...]}]}]}
 * Log-probabilities are computed the way llama.cpp's server computes its n_probs output
 * (examples/server/utils.hpp, get_token_probabilities at llama.cpp c392e5094): logits sorted
 * descending, p_i = expf(l_i - l_max) summed in float in that order, p_i / sum, then log. So
 * the two sides' figures differ only by their logits, not by how they are reported.
 * usage: bench_logprobs [-m MODEL] [-t THREADS] [--kv 16|32|8] < in.json > out.json */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model.h"
#include "engine/threadpool.h"
#include "etok/engine.h"

typedef struct {
    float l;
    int id;
} tok_logit;

static int by_logit_desc(const void *a, const void *b) {
    const tok_logit *x = a, *y = b;
    if (x->l != y->l) return x->l > y->l ? -1 : 1;
    return x->id - y->id;
}

/* top n_top of one step as [[id, logprob], ...] (llama.cpp server's arithmetic, see above) */
static json_t *top_logprobs(const float *logits, int n_vocab, int n_top, tok_logit *buf) {
    for (int i = 0; i < n_vocab; i++) buf[i] = (tok_logit){logits[i], i};
    qsort(buf, (size_t)n_vocab, sizeof *buf, by_logit_desc);
    const float mx = buf[0].l;
    float sum = 0.0f;
    for (int i = 0; i < n_vocab; i++) sum += expf(buf[i].l - mx);
    json_t *top = json_array();
    for (int i = 0; i < n_top && i < n_vocab; i++) {
        float p = expf(buf[i].l - mx) / sum;
        json_array_append_new(top, json_pack("[i, f]", buf[i].id, p > 0 ? (double)logf(p) : -INFINITY));
    }
    return top;
}

static int read_ids(json_t *arr, const char *what, int32_t **out, int *n) {
    if (!json_is_array(arr)) {
        fprintf(stderr, "input: '%s' must be an array of token ids\n", what);
        return -1;
    }
    *n = (int)json_array_size(arr);
    *out = malloc(((size_t)*n + 1) * sizeof **out);
    if (!*out) return -1;
    for (int i = 0; i < *n; i++) {
        json_t *v = json_array_get(arr, (size_t)i);
        if (!json_is_integer(v)) {
            fprintf(stderr, "input: '%s'[%d] is not an integer\n", what, i);
            return -1;
        }
        (*out)[i] = (int32_t)json_integer_value(v);
    }
    return 0;
}

int main(int argc, char **argv) {
    const char *model = getenv("ETOK_MODEL") ? getenv("ETOK_MODEL") : "models/SmolLM2-135M-Instruct.Q4_1.gguf";
    int threads = 2, kv_bits = 16;
    for (int i = 1; i < argc; i += 2) {
        if (i + 1 < argc && !strcmp(argv[i], "-m")) model = argv[i + 1];
        else if (i + 1 < argc && !strcmp(argv[i], "-t")) threads = atoi(argv[i + 1]);
        else if (i + 1 < argc && !strcmp(argv[i], "--kv")) kv_bits = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: %s [-m MODEL] [-t THREADS] [--kv 16|32|8] < in.json > out.json\n", argv[0]);
            return 2;
        }
    }
    if (threads < 1 || threads > 256) {
        fprintf(stderr, "-t: 1..256 threads\n");
        return 2;
    }
    json_error_t jerr;
    json_t *in = json_loadf(stdin, 0, &jerr);
    if (!in) {
        fprintf(stderr, "stdin: JSON error at line %d: %s\n", jerr.line, jerr.text);
        return 3;
    }
    json_t *seqs = json_object_get(in, "sequences");
    int n_top = json_is_integer(json_object_get(in, "n_top")) ? (int)json_integer_value(json_object_get(in, "n_top")) : 10;
    if (!json_is_array(seqs) || n_top < 1 || n_top > 1000) {
        fprintf(stderr, "stdin: need {\"n_top\": 1..1000, \"sequences\": [...]}\n");
        json_decref(in);
        return 3;
    }
    etok_err err = {{0}, 0};
    etok_model *m = etok_model_load(model, &err);
    if (!m) {
        fprintf(stderr, "%s\n", err.msg);
        json_decref(in);
        return 3;
    }
    const int n_vocab = m->info.vocab_size;
    etok_threadpool *pool = etok_threadpool_new(threads, &err);
    float *logits = malloc((size_t)n_vocab * sizeof *logits);
    tok_logit *buf = malloc((size_t)n_vocab * sizeof *buf);
    json_t *out = json_pack("{s:s, s:i, s:[]}", "model", model, "kv_bits", kv_bits, "sequences");
    int rc = 0;
    if (!pool || !logits || !buf || !out) {
        fprintf(stderr, "%s\n", pool ? "out of memory" : err.msg);
        rc = 1;
    }
    for (size_t si = 0; rc == 0 && si < json_array_size(seqs); si++) {
        json_t *s = json_array_get(seqs, si);
        int32_t *prompt = NULL, *toks = NULL;
        int np = 0, nt = 0;
        etok_kv_cache kv;
        memset(&kv, 0, sizeof kv);
        etok_fwd_state *st = NULL;
        int *pos = NULL, *slot = NULL, *lrow = NULL;
        if (read_ids(json_object_get(s, "prompt_ids"), "prompt_ids", &prompt, &np) ||
            read_ids(json_object_get(s, "tokens"), "tokens", &toks, &nt) || np < 1) {
            fprintf(stderr, "stdin: sequence %zu: needs a non-empty prompt_ids and tokens\n", si);
            rc = 3;
            goto next;
        }
        const int rows = np + nt;
        pos = calloc((size_t)np, sizeof *pos);
        slot = calloc((size_t)np, sizeof *slot);
        lrow = malloc((size_t)np * sizeof *lrow);
        st = etok_fwd_state_new(m, np, threads, rows, &err);
        if (!pos || !slot || !lrow || !st || etok_kv_cache_init(&kv, m, 1, rows, kv_bits, 0, 0, np, &err) < 0) {
            fprintf(stderr, "%s\n", err.msg[0] ? err.msg : "out of memory");
            rc = err.exit_code ? err.exit_code : 1;
            goto next;
        }
        for (int i = 0; i < np; i++) {
            pos[i] = i;
            lrow[i] = i == np - 1 ? 0 : -1;
        }
        json_t *steps = json_array();
        json_array_append_new(json_object_get(out, "sequences"), json_pack("{s:o}", "steps", steps));
        etok_batch b = {np, prompt, pos, slot, lrow, 1};
        for (int k = 0; k < nt; k++) {
            if (etok_model_forward(m, pool, &kv, st, &b, 0, logits, &err) < 0) {
                fprintf(stderr, "%s\n", err.msg);
                rc = err.exit_code ? err.exit_code : 1;
                goto next;
            }
            json_array_append_new(steps, json_pack("{s:o}", "top", top_logprobs(logits, n_vocab, n_top, buf)));
            /* next: the forced token alone at its position */
            pos[0] = np + k;
            lrow[0] = 0;
            b = (etok_batch){1, &toks[k], pos, slot, lrow, 1};
        }
    next:
        etok_kv_cache_free(&kv);
        etok_fwd_state_free(st);
        free(pos);
        free(slot);
        free(lrow);
        free(prompt);
        free(toks);
    }
    if (rc == 0 && json_dumpf(out, stdout, JSON_COMPACT) != 0) {
        fprintf(stderr, "stdout: write failed\n");
        rc = 5;
    }
    if (rc == 0) putchar('\n');
    json_decref(out);
    json_decref(in);
    free(buf);
    free(logits);
    etok_threadpool_free(pool);
    etok_model_free(m);
    return rc;
}
