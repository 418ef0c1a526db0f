/* sample.c — see sample.h. Temperature scales the logits, top-k keeps the k largest,
 * top-p keeps the smallest prefix (by probability) whose mass reaches p, then one draw from
 * the renormalised distribution. Deterministic for a given seed. */
#include "engine/sample.h"
#include "engine/vmath.h"

#include <math.h>
#include <stdlib.h>

uint64_t etok_sample_rng_next(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float etok_sample_rng_uniform(uint64_t *state) { return (float)(etok_sample_rng_next(state) >> 40) / 16777216.0f; }

/* The lowest id whose logit is the largest, as llama.cpp's argmax (the scan "best = i when
 * logits[i] > logits[best]" from id 0). Its one compare-and-select chain over the vocabulary
 * (49152 ids for SmolLM2) cost ~1% of a decode step; now the largest value comes from etok_max
 * (vectorised) and one search finds its first id. NaNs: the scan keeps id 0 when its logit
 * is NaN (nothing compares greater) and skips later ones, as etok_max does. */
int32_t etok_sample_greedy(const float *logits, int n) {
    if (n <= 0 || isnan(logits[0])) return 0;
    const float mx = etok_max(logits, n);
    for (int i = 0; i < n; i++)
        if (logits[i] == mx) return i; /* +0 and -0 compare equal, as in the scan */
    return 0;
}

static int cmp_desc(const void *a, const void *b) {
    const etok_prob_id *x = a, *y = b;
    if (x->p != y->p) return x->p < y->p ? 1 : -1;
    return x->id < y->id ? -1 : x->id > y->id;
}

int32_t etok_sample(const float *logits, int n, const etok_sampling *s, uint64_t *rng, etok_prob_id *sc) {
    if (!s || s->temperature <= 0.0f) return etok_sample_greedy(logits, n);
    float mx = logits[etok_sample_greedy(logits, n)];
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sc[i].id = i;
        sc[i].p = expf((logits[i] - mx) / s->temperature);
        sum += sc[i].p;
    }
    int k = n;
    if ((s->top_k > 0 && s->top_k < n) || (s->top_p > 0.0f && s->top_p < 1.0f)) {
        /* keep candidates above a small fraction of the max first, then sort those */
        int m = 0;
        float cut = 1e-7f;
        for (int i = 0; i < n; i++)
            if (sc[i].p >= cut) sc[m++] = sc[i];
        if (m == 0) m = 1;
        qsort(sc, (size_t)m, sizeof *sc, cmp_desc);
        k = m;
        if (s->top_k > 0 && s->top_k < k) k = s->top_k;
        if (s->top_p > 0.0f && s->top_p < 1.0f) {
            double cum = 0, target = s->top_p * sum;
            for (int i = 0; i < k; i++) {
                cum += sc[i].p;
                if (cum >= target) {
                    k = i + 1;
                    break;
                }
            }
        }
        sum = 0;
        for (int i = 0; i < k; i++) sum += sc[i].p;
    }
    double r = (double)etok_sample_rng_uniform(rng) * sum, acc = 0;
    for (int i = 0; i < k; i++) {
        acc += sc[i].p;
        if (r < acc) return sc[i].id;
    }
    return sc[k - 1].id;
}
