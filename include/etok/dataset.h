/* dataset.h — serving workloads for `etok bench` beside the eval sets, with vLLM's names
 * (`vllm bench serve --dataset-name ...`; docs/WORKLOADS.md):
 *
 *   evals              etok's eval sets (evalset.h), scored: the default
 *   sharegpt           a ShareGPT-format JSON file [{"id", "conversations": [{"from", "value"}]}]:
 *                      the first human turn is the prompt; the output budget is the recorded
 *                      answer's length (or --sharegpt-output-len)
 *   random             prompts of --random-input-len tokens (uniform in [len*(1-r), len*(1+r)],
 *                      r = --random-range-ratio) built from a word corpus, --random-output-len
 *                      tokens each, the exact length requested (ignore_eos, min_tokens)
 *   prefix_repetition  (alias shared-prefix) --prefix-repetition-num-prefixes prefixes of
 *                      --prefix-repetition-prefix-len tokens, each prompt one of them followed by a
 *                      distinct suffix of --prefix-repetition-suffix-len tokens: prefix caching's
 *                      effect
 *
 * Every dataset becomes an etok_evalset whose items are unscored (quality is not measured: no
 * reference answers) and carry their own output budget (max_tokens) and whether the exact
 * length is asked for (exact_len). Lengths are in tokens of the model's tokenizer when the
 * caller gives one (count_tokens: the built-in engine), else estimated (a corpus word ~ one
 * token; 4 bytes of recorded answer ~ one token), which the summary states.
 * Deterministic for a seed. Not here: sending the requests (bench.c, endpoint.c). */
#ifndef ETOK_DATASET_H
#define ETOK_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "etok/evalset.h"
#include "etok/util.h"

typedef enum {
    ETOK_DATASET_EVALS = 0,
    ETOK_DATASET_SHAREGPT,
    ETOK_DATASET_RANDOM,
    ETOK_DATASET_PREFIX_REPETITION
} etok_dataset_kind;

/* "evals", "sharegpt", "random", "prefix_repetition" (also "shared-prefix"): 0, or -1 with err
 * (ETOK_EXIT_USAGE) listing the names. */
int etok_dataset_parse_name(const char *s, etok_dataset_kind *out, etok_err *err);
const char *etok_dataset_name(etok_dataset_kind k);


typedef struct {
    etok_dataset_kind kind;
    const char *path;            /* sharegpt: the file (required); random/prefix: a text corpus
                                    whose whitespace-separated words are drawn (NULL = built-in) */
    int num_prompts;             /* random/prefix: prompts built (default 100) */
    uint64_t seed;
    int sharegpt_output_len;     /* > 0: every output budget (vLLM --sharegpt-output-len) */
    int max_total_len;           /* > 0 (the engine's context less a template margin): sharegpt
                                    items whose prompt + output exceed it are dropped, counted */
    int random_input_len, random_output_len; /* defaults 1024, 128 (vLLM's) */
    double random_range_ratio;   /* [0, 1) */
    int prefix_len, suffix_len, num_prefixes, prefix_output_len; /* 0 = 256, -, 10, 128; suffix_len
                                    as given (0: none; etok bench defaults it to 256) */
    /* Token count of a text in the model's tokenizer; NULL: estimated. */
    int (*count_tokens)(const char *text, void *arg);
    void *count_arg;
    unsigned given;              /* etok_dataset_opt: which options were given (bit per option) */
} etok_dataset_opts;

/* What was built, for the record (config.dataset) and the report. */
typedef struct {
    etok_dataset_kind kind;
    int n_items;
    int n_entries;               /* sharegpt: entries in the file */
    int n_skipped;               /* sharegpt: entries without a human turn followed by an answer */
    int n_too_long;              /* sharegpt: dropped over max_total_len */
    int exact_len;               /* 1: ignore_eos/min_tokens asked for */
    double mean_input_len, mean_output_len; /* requested, in length_basis units */
    char length_basis[96];       /* "model tokenizer" or how it was estimated */
    char corpus[64];             /* "built-in word list" or "file" */
} etok_dataset_summary;

/* etok bench's dataset options, by long name (vLLM's): dataset-name, dataset-path,
 * sharegpt-output-len, random-input-len, random-output-len, random-range-ratio,
 * prefix-repetition-prefix-len, -suffix-len, -num-prefixes, -output-len. Values are parsed
 * strictly; 0, or -1 with err (ETOK_EXIT_USAGE) naming the option. etok_dataset_opts_init sets
 * vLLM's defaults; etok_dataset_opts_check refuses an option of another dataset than the one
 * chosen (vLLM ignores it silently). */
void etok_dataset_opts_init(etok_dataset_opts *o);
int etok_dataset_opt(etok_dataset_opts *o, const char *name, const char *val, etok_err *err);
int etok_dataset_opts_check(const etok_dataset_opts *o, etok_err *err);

/* vLLM's --goodput KEY:MS (ttft, tpot; e2el is refused: etok has no end-to-end SLO) into
 * seconds; 0, or -1 with err (ETOK_EXIT_USAGE). Only the keys given are set. */
int etok_goodput_parse(const char *s, double *ttft_s, double *tpot_s, etok_err *err);

/* Whether the requested exact lengths were honoured: ok requests in the window whose item asked
 * for an exact length (exact_len), by tokens_out against the budget (the server's usage count,
 * else its content chunks). Filled by the bench drivers. */
typedef struct {
    int checked, exact, shorter, longer;
} etok_dataset_lengths;

/* Add config.dataset {name, path, items, ..., lengths} to a record's config JSON text (replaced
 * in place; NULL text starts an object). 0, or -1 out of memory / not a JSON object. */
int etok_dataset_to_config(char **config_json, const etok_dataset_summary *s, const char *path,
                           const etok_dataset_lengths *l);

/* Build the items of a non-eval dataset (kind != EVALS). 0, or -1 with err: a bad file is
 * ETOK_EXIT_INPUT naming the file, the entry and the field; bad options ETOK_EXIT_USAGE. */
int etok_dataset_build(etok_evalset *out, const etok_dataset_opts *o, etok_dataset_summary *sum, etok_err *err);
/* The ShareGPT parser on text (what names it in errors); on failure out holds no items. */
int etok_dataset_sharegpt_parse(etok_evalset *out, const char *text, size_t len, const char *what,
                                const etok_dataset_opts *o, etok_dataset_summary *sum, etok_err *err);

#endif
