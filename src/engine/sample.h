/* sample.h — choosing the next token from logits: greedy (temperature 0) or
 * temperature / top-k / top-p sampling with a per-sequence seeded RNG.
 * Owns the sampling maths only; the engine owns the logits and the RNG state's storage. */
#ifndef ETOK_ENGINE_SAMPLE_H
#define ETOK_ENGINE_SAMPLE_H

#include <stdint.h>

#include "etok/engine.h"

/* Scratch for sampling over n_vocab entries (malloc'd by the caller: n_vocab of these). */
typedef struct {
    float p;
    int32_t id;
} etok_prob_id;

/* splitmix64 step: the RNG of a sequence, seeded from etok_sampling.seed. */
uint64_t etok_sample_rng_next(uint64_t *state);
/* Uniform float in [0, 1). */
float etok_sample_rng_uniform(uint64_t *state);

int32_t etok_sample_greedy(const float *logits, int n_vocab);
/* Greedy when s->temperature <= 0. scratch holds n_vocab entries. */
int32_t etok_sample(const float *logits, int n_vocab, const etok_sampling *s, uint64_t *rng, etok_prob_id *scratch);

#endif
