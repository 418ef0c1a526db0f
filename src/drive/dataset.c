/* dataset.c — serving workloads (sharegpt, random, prefix_repetition) as unscored eval items
 * (include/etok/dataset.h; docs/WORKLOADS.md). Owns: the ShareGPT reader (bounded, every field
 * checked, errors naming file, entry and field), the word-corpus prompt builder fitted to a
 * token length, and the summary that the record carries. Not here: sending the requests. */
#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/dataset.h"
#include "etok/parse.h"
#include "etok/stats.h"

/* Common short English words, each a single token (with its leading space) in the usual BPE
 * vocabularies; written for etok. */
static const char *const k_words[] = {
    "the", "of", "and", "to", "in", "is", "was", "for", "on", "are", "as", "with", "his", "they", "at", "be",
    "this", "have", "from", "or", "one", "had", "by", "word", "but", "not", "what", "all", "were", "we", "when",
    "your", "can", "said", "there", "use", "an", "each", "which", "she", "do", "how", "their", "if", "will", "up",
    "other", "about", "out", "many", "then", "them", "these", "so", "some", "her", "would", "make", "like", "him",
    "into", "time", "has", "look", "two", "more", "write", "go", "see", "number", "no", "way", "could", "people",
    "my", "than", "first", "water", "been", "call", "who", "its", "now", "find", "long", "down", "day", "did",
    "get", "come", "made", "may", "part", "over", "new", "sound", "take", "only", "little", "work", "know",
    "place", "year", "live", "me", "back", "give", "most", "very", "after", "thing", "our", "just", "name", "good",
    "sentence", "man", "think", "say", "great", "where", "help", "through", "much", "before", "line", "right",
    "too", "mean", "old", "any", "same", "tell", "boy", "follow", "came", "want", "show", "also", "around", "form",
    "three", "small", "set", "put", "end", "does", "another", "well", "large", "must", "big", "even", "such",
    "because", "turn", "here", "why", "ask", "went", "men", "read", "need", "land", "different", "home", "us",
    "move", "try", "kind", "hand", "picture", "again", "change", "off", "play", "spell", "air", "away", "animal",
    "house", "point", "page", "letter", "mother", "answer", "found", "study", "still", "learn", "should", "world",
};
#define N_WORDS (sizeof k_words / sizeof k_words[0])

const char *etok_dataset_name(etok_dataset_kind k) {
    switch (k) {
    case ETOK_DATASET_EVALS: return "evals";
    case ETOK_DATASET_SHAREGPT: return "sharegpt";
    case ETOK_DATASET_RANDOM: return "random";
    case ETOK_DATASET_PREFIX_REPETITION: return "prefix_repetition";
    }
    return "?";
}

int etok_dataset_parse_name(const char *s, etok_dataset_kind *out, etok_err *err) {
    static const struct { const char *n; etok_dataset_kind k; } t[] = {
        {"evals", ETOK_DATASET_EVALS},       {"sharegpt", ETOK_DATASET_SHAREGPT},
        {"random", ETOK_DATASET_RANDOM},     {"prefix_repetition", ETOK_DATASET_PREFIX_REPETITION},
        {"shared-prefix", ETOK_DATASET_PREFIX_REPETITION},
    };
    for (size_t i = 0; s && i < sizeof t / sizeof t[0]; i++)
        if (!strcmp(s, t[i].n)) {
            *out = t[i].k;
            return 0;
        }
    return etok_errc(err, ETOK_EXIT_USAGE,
                     "--dataset-name: unknown dataset '%s' (evals, sharegpt, random, prefix_repetition or "
                     "shared-prefix)", s ? s : "");
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* ---- word corpus ---- */
typedef struct {
    const char **w;
    size_t n;
    char *text; /* owns the words of a file corpus */
} corpus;

static int corpus_load(corpus *c, const char *path, etok_err *err) {
    memset(c, 0, sizeof *c);
    if (!path) {
        c->w = (const char **)k_words;
        c->n = N_WORDS;
        return 0;
    }
    size_t len = 0;
    c->text = etok_read_file_bounded(path, "word corpus", ETOK_LIMIT_CORPUS, &len, err);
    if (!c->text) return -1;
    size_t cap = 0;
    for (char *p = c->text; *p;) {
        while (*p && isspace((unsigned char)*p)) p++;
        if (!*p) break;
        char *b = p;
        while (*p && !isspace((unsigned char)*p)) p++;
        if (*p) *p++ = '\0';
        if (c->n == cap) {
            cap = cap ? cap * 2 : 1024;
            const char **nw = realloc(c->w, cap * sizeof *nw);
            if (!nw) {
                free(c->w);
                free(c->text);
                memset(c, 0, sizeof *c);
                return etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory", path);
            }
            c->w = nw;
        }
        c->w[c->n++] = b;
    }
    if (c->n == 0) {
        free(c->text);
        memset(c, 0, sizeof *c);
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: word corpus has no words", path);
    }
    return 0;
}

static void corpus_free(corpus *c) {
    if (c->text) {
        free(c->w);
        free(c->text);
    }
    memset(c, 0, sizeof *c);
}

/* The first n words of idx joined by spaces (malloc'd). */
static char *join_words(const corpus *c, const uint32_t *idx, int n) {
    size_t len = 1;
    for (int i = 0; i < n; i++) len += strlen(c->w[idx[i]]) + 1;
    char *s = malloc(len), *p = s;
    if (!s) return NULL;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(c->w[idx[i]]);
        if (i) *p++ = ' ';
        memcpy(p, c->w[idx[i]], l);
        p += l;
    }
    *p = '\0';
    return s;
}

/* A text of about target tokens: random words, fitted with the model's tokenizer when there is
 * one (a few rounds, then the closest), else one word a token. *got: its length (tokens or words). */
static char *fit_text(const corpus *c, etok_rng *rng, int target, const etok_dataset_opts *o, int *got) {
    if (target <= 0) {
        *got = 0;
        return dup_str("");
    }
    int cap = 2 * target + 64;
    uint32_t *idx = malloc((size_t)cap * sizeof *idx);
    if (!idx) return NULL;
    for (int i = 0; i < cap; i++) idx[i] = (uint32_t)(etok_rng_u64(rng) % c->n);
    int n = target;
    char *s = join_words(c, idx, n);
    *got = n;
    if (s && o->count_tokens) {
        int best_n = n, best_d = -1;
        for (int round = 0; s && round < 12; round++) {
            int t = o->count_tokens(s, o->count_arg);
            int d = abs(t - target);
            if (best_d < 0 || d < best_d) {
                best_d = d;
                best_n = n;
                *got = t;
            }
            if (t == target) break;
            int step = (target - t) / 2;
            if (step == 0) step = t < target ? 1 : -1;
            n += step;
            if (n < 1) n = 1;
            if (n > cap) n = cap;
            free(s);
            s = join_words(c, idx, n);
        }
        if (s && n != best_n) {
            free(s);
            s = join_words(c, idx, best_n);
        }
    }
    free(idx);
    return s;
}

static int add_item(etok_evalset *out, size_t *cap, char *id, char *prompt, int max_tokens, int exact, etok_err *err) {
    if (!id || !prompt) goto oom;
    if (out->n_items == *cap) {
        size_t nc = *cap ? *cap * 2 : 64;
        etok_eval_item *ni = realloc(out->items, nc * sizeof *ni);
        if (!ni) goto oom;
        out->items = ni;
        *cap = nc;
    }
    etok_eval_item *it = &out->items[out->n_items++];
    memset(it, 0, sizeof *it);
    it->id = id;
    it->prompt = prompt;
    it->unscored = 1;
    it->max_tokens = max_tokens;
    it->exact_len = exact;
    it->line = (int)out->n_items;
    return 0;
oom:
    free(id);
    free(prompt);
    return etok_errc(err, ETOK_EXIT_FAIL, "dataset: out of memory");
}

static char *fmt_id(const char *fmt, int a, int b) {
    char buf[64];
    snprintf(buf, sizeof buf, fmt, a, b);
    return dup_str(buf);
}

static int build_random(etok_evalset *out, const etok_dataset_opts *o, etok_dataset_summary *sum, etok_err *err) {
    corpus c;
    if (corpus_load(&c, o->path, err)) return -1;
    etok_rng rng;
    etok_rng_seed(&rng, o->seed ^ 0x72616e646f6dULL);
    int n = o->num_prompts > 0 ? o->num_prompts : 100;
    int in_len = o->random_input_len > 0 ? o->random_input_len : 1024;
    int out_len = o->random_output_len > 0 ? o->random_output_len : 128;
    double r = o->random_range_ratio;
    size_t cap = 0;
    double sin = 0, sout = 0;
    for (int i = 0; i < n; i++) {
        /* vLLM: uniform integers in [len*(1-r), len*(1+r)], at least 1 */
        int ilo = (int)floor(in_len * (1 - r)), ihi = (int)ceil(in_len * (1 + r));
        int olo = (int)floor(out_len * (1 - r)), ohi = (int)ceil(out_len * (1 + r));
        if (ilo < 1) ilo = 1;
        if (olo < 1) olo = 1;
        int il = ilo + (int)(etok_rng_u64(&rng) % (uint64_t)(ihi - ilo + 1));
        int ol = olo + (int)(etok_rng_u64(&rng) % (uint64_t)(ohi - olo + 1));
        int got = 0;
        char *p = fit_text(&c, &rng, il, o, &got);
        if (add_item(out, &cap, fmt_id("random-%d", i, 0), p, ol, 1, err)) {
            corpus_free(&c);
            return -1;
        }
        sin += got;
        sout += ol;
    }
    sum->mean_input_len = sin / n;
    sum->mean_output_len = sout / n;
    sum->exact_len = 1;
    snprintf(sum->corpus, sizeof sum->corpus, "%s", o->path ? "file" : "built-in word list");
    corpus_free(&c);
    return 0;
}

static int build_prefix(etok_evalset *out, const etok_dataset_opts *o, etok_dataset_summary *sum, etok_err *err) {
    corpus c;
    if (corpus_load(&c, o->path, err)) return -1;
    etok_rng rng;
    etok_rng_seed(&rng, o->seed ^ 0x707265666978ULL);
    int n = o->num_prompts > 0 ? o->num_prompts : 100;
    int plen = o->prefix_len > 0 ? o->prefix_len : 256, slen = o->suffix_len >= 0 ? o->suffix_len : 256;
    int np = o->num_prefixes > 0 ? o->num_prefixes : 10, ol = o->prefix_output_len > 0 ? o->prefix_output_len : 128;
    if (np > n) np = n;
    char **pre = calloc((size_t)np, sizeof *pre);
    int *pgot = calloc((size_t)np, sizeof *pgot);
    int rc = -1;
    size_t cap = 0;
    double sin = 0;
    if (!pre || !pgot) {
        etok_errc(err, ETOK_EXIT_FAIL, "dataset: out of memory");
        goto out;
    }
    for (int k = 0; k < np; k++)
        if (!(pre[k] = fit_text(&c, &rng, plen, o, &pgot[k]))) {
            etok_errc(err, ETOK_EXIT_FAIL, "dataset: out of memory");
            goto out;
        }
    for (int i = 0; i < n; i++) {
        int k = i % np, sgot = 0; /* prompts spread evenly over the prefixes (the drive shuffles) */
        char *suf = fit_text(&c, &rng, slen, o, &sgot);
        char *p = suf ? malloc(strlen(pre[k]) + strlen(suf) + 2) : NULL;
        if (p) sprintf(p, "%s%s%s", pre[k], suf[0] ? " " : "", suf);
        free(suf);
        if (add_item(out, &cap, fmt_id("prefix%d-%d", k, i), p, ol, 1, err)) goto out;
        sin += pgot[k] + sgot;
    }
    sum->mean_input_len = sin / n;
    sum->mean_output_len = ol;
    sum->exact_len = 1;
    snprintf(sum->corpus, sizeof sum->corpus, "%s", o->path ? "file" : "built-in word list");
    rc = 0;
out:
    for (int k = 0; pre && k < np; k++) free(pre[k]);
    free(pre);
    free(pgot);
    corpus_free(&c);
    return rc;
}

/* ---- ShareGPT ---- */
static const char *turn_from(json_t *turn) { return json_string_value(json_object_get(turn, "from")); }
static int is_human(const char *f) { return f && (!strcmp(f, "human") || !strcmp(f, "user")); }

int etok_dataset_sharegpt_parse(etok_evalset *out, const char *text, size_t len, const char *what,
                                const etok_dataset_opts *o, etok_dataset_summary *sum, etok_err *err) {
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: not valid JSON at line %d column %d: %s", what, je.line,
                         je.column, je.text);
    int rc = -1;
    size_t cap = 0;
    double sin = 0, sout = 0;
    if (!json_is_array(root)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: expected a JSON array of conversations [{\"id\", \"conversations\"}]",
                  what);
        goto out;
    }
    sum->n_entries = (int)json_array_size(root);
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *e = json_array_get(root, i), *id = NULL, *conv = NULL;
        if (!json_is_object(e)) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: entry %zu: expected an object", what, i);
            goto out;
        }
        char idbuf[64];
        id = json_object_get(e, "id");
        if (json_is_string(id))
            snprintf(idbuf, sizeof idbuf, "%.40s", json_string_value(id));
        else if (json_is_integer(id))
            snprintf(idbuf, sizeof idbuf, "%lld", (long long)json_integer_value(id));
        else if (!id || json_is_null(id))
            snprintf(idbuf, sizeof idbuf, "entry-%zu", i);
        else {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: entry %zu: field \"id\": expected a string or an integer", what, i);
            goto out;
        }
        conv = json_object_get(e, "conversations");
        if (!json_is_array(conv)) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: entry %zu (id %s): field \"conversations\": %s", what, i, idbuf,
                      conv ? "expected an array of {\"from\", \"value\"}" : "missing");
            goto out;
        }
        for (size_t j = 0; j < json_array_size(conv); j++) {
            json_t *t = json_array_get(conv, j);
            if (!json_is_object(t)) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: entry %zu (id %s): conversations[%zu]: expected an object", what,
                          i, idbuf, j);
                goto out;
            }
            const char *fields[2] = {"from", "value"};
            for (int f = 0; f < 2; f++)
                if (!json_is_string(json_object_get(t, fields[f]))) {
                    etok_errc(err, ETOK_EXIT_INPUT, "%s: entry %zu (id %s): conversations[%zu]: field \"%s\": %s", what,
                              i, idbuf, j, fields[f], json_object_get(t, fields[f]) ? "expected a string" : "missing");
                    goto out;
                }
        }
        /* the first human turn with an answer after it */
        size_t h = 0;
        while (h < json_array_size(conv) && !is_human(turn_from(json_array_get(conv, h)))) h++;
        if (h + 1 >= json_array_size(conv) || is_human(turn_from(json_array_get(conv, h + 1)))) {
            sum->n_skipped++;
            continue;
        }
        const char *prompt = json_string_value(json_object_get(json_array_get(conv, h), "value"));
        const char *answer = json_string_value(json_object_get(json_array_get(conv, h + 1), "value"));
        if (!prompt[0]) {
            sum->n_skipped++;
            continue;
        }
        int ol = o->sharegpt_output_len;
        if (ol <= 0) {
            size_t al = strlen(answer);
            ol = o->count_tokens ? o->count_tokens(answer, o->count_arg) : (int)((al + 3) / 4 < 100000 ? (al + 3) / 4 : 100000);
            if (ol < 1) ol = 1;
            if (ol > 8192) ol = 8192;
        }
        int il = o->count_tokens ? o->count_tokens(prompt, o->count_arg) : (int)((strlen(prompt) + 3) / 4);
        if (o->max_total_len > 0 && o->count_tokens && il + ol > o->max_total_len) {
            sum->n_too_long++;
            continue;
        }
        char *pid = malloc(strlen(idbuf) + 10);
        if (pid) sprintf(pid, "sharegpt:%s", idbuf);
        if (add_item(out, &cap, pid, dup_str(prompt), ol, 0, err)) goto out;
        sin += il;
        sout += ol;
    }
    if (out->n_items == 0) {
        etok_errc(err, ETOK_EXIT_INPUT,
                  "%s: no usable conversation (%d entries: %d without a human turn followed by an answer, %d longer "
                  "than the model's context)",
                  what, sum->n_entries, sum->n_skipped, sum->n_too_long);
        goto out;
    }
    sum->mean_input_len = sin / (double)out->n_items;
    sum->mean_output_len = sout / (double)out->n_items;
    rc = 0;
out:
    if (rc) etok_evalset_free(out); /* a failed parse leaves no partial set */
    json_decref(root);
    return rc;
}

int etok_dataset_build(etok_evalset *out, const etok_dataset_opts *o, etok_dataset_summary *sum, etok_err *err) {
    memset(out, 0, sizeof *out);
    memset(sum, 0, sizeof *sum);
    sum->kind = o->kind;
    snprintf(sum->length_basis, sizeof sum->length_basis, "%s",
             o->count_tokens ? "model tokenizer"
             : o->kind == ETOK_DATASET_SHAREGPT ? "estimated: 4 bytes a token (no tokenizer for --endpoint)"
                                                : "estimated: one corpus word a token (no tokenizer for --endpoint)");
    int rc;
    if (o->random_range_ratio < 0 || !(o->random_range_ratio < 1))
        return etok_errc(err, ETOK_EXIT_USAGE, "--random-range-ratio: %g is outside [0, 1)", o->random_range_ratio);
    switch (o->kind) {
    case ETOK_DATASET_SHAREGPT: {
        if (!o->path) return etok_errc(err, ETOK_EXIT_USAGE, "--dataset-name sharegpt needs --dataset-path FILE");
        size_t len = 0;
        char *text = etok_read_file_bounded(o->path, "ShareGPT file", ETOK_LIMIT_SHAREGPT, &len, err);
        if (!text) return -1;
        rc = etok_dataset_sharegpt_parse(out, text, len, o->path, o, sum, err);
        free(text);
        snprintf(out->path, sizeof out->path, "%s", o->path);
        break;
    }
    case ETOK_DATASET_RANDOM:
        rc = build_random(out, o, sum, err);
        snprintf(out->path, sizeof out->path, "random");
        break;
    case ETOK_DATASET_PREFIX_REPETITION:
        rc = build_prefix(out, o, sum, err);
        snprintf(out->path, sizeof out->path, "prefix_repetition");
        break;
    default: return etok_errc(err, ETOK_EXIT_USAGE, "dataset: the eval sets load through evalset.h");
    }
    if (rc) {
        etok_evalset_free(out);
        return -1;
    }
    sum->n_items = (int)out->n_items;
    return 0;
}

int etok_dataset_to_config(char **config_json, const etok_dataset_summary *s, const char *path,
                           const etok_dataset_lengths *l) {
    json_t *cfg = *config_json ? json_loads(*config_json, 0, NULL) : json_object();
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return -1;
    }
    json_t *d = json_pack("{s:s, s:s?, s:i, s:s, s:s, s:f, s:f, s:b}", "name", etok_dataset_name(s->kind), "path", path,
                          "items", s->n_items, "quality", "not measured (no reference answers)", "length_basis",
                          s->length_basis, "mean_input_len", s->mean_input_len, "mean_output_len", s->mean_output_len,
                          "exact_len_requested", s->exact_len);
    if (!d) {
        json_decref(cfg);
        return -1;
    }
    if (s->kind == ETOK_DATASET_SHAREGPT) {
        json_object_set_new(d, "entries", json_integer(s->n_entries));
        json_object_set_new(d, "skipped_no_answer", json_integer(s->n_skipped));
        json_object_set_new(d, "dropped_too_long", json_integer(s->n_too_long));
    } else
        json_object_set_new(d, "corpus", json_string(s->corpus));
    if (s->exact_len && l)
        json_object_set_new(d, "length_honoured",
                            json_pack("{s:i, s:i, s:i, s:i}", "checked", l->checked, "exact", l->exact, "shorter",
                                      l->shorter, "longer", l->longer));
    json_object_set_new(cfg, "dataset", d);
    char *t = json_dumps(cfg, JSON_COMPACT);
    json_decref(cfg);
    if (!t) return -1;
    free(*config_json);
    *config_json = t;
    return 0;
}

/* ---- options ---- */
enum { G_PATH = 1, G_SHAREGPT = 2, G_RANDOM = 4, G_PREFIX = 8 };

void etok_dataset_opts_init(etok_dataset_opts *o) {
    memset(o, 0, sizeof *o);
    o->random_input_len = 1024;
    o->random_output_len = 128;
    o->prefix_len = 256;
    o->suffix_len = 256;
    o->num_prefixes = 10;
    o->prefix_output_len = 128;
}

int etok_dataset_opt(etok_dataset_opts *o, const char *name, const char *val, etok_err *err) {
    static const struct {
        const char *name;
        size_t off;
        int lo, hi;
        unsigned group;
    } ints[] = {
        {"sharegpt-output-len", offsetof(etok_dataset_opts, sharegpt_output_len), 1, 8192, G_SHAREGPT},
        {"random-input-len", offsetof(etok_dataset_opts, random_input_len), 1, 1 << 20, G_RANDOM},
        {"random-output-len", offsetof(etok_dataset_opts, random_output_len), 1, 8192, G_RANDOM},
        {"prefix-repetition-prefix-len", offsetof(etok_dataset_opts, prefix_len), 1, 1 << 20, G_PREFIX},
        {"prefix-repetition-suffix-len", offsetof(etok_dataset_opts, suffix_len), 0, 1 << 20, G_PREFIX},
        {"prefix-repetition-num-prefixes", offsetof(etok_dataset_opts, num_prefixes), 1, 100000, G_PREFIX},
        {"prefix-repetition-output-len", offsetof(etok_dataset_opts, prefix_output_len), 1, 8192, G_PREFIX},
    };
    char what[64];
    snprintf(what, sizeof what, "--%s", name);
    if (!strcmp(name, "dataset-name")) return etok_dataset_parse_name(val, &o->kind, err);
    if (!strcmp(name, "dataset-path")) {
        if (!val[0]) return etok_errc(err, ETOK_EXIT_USAGE, "--dataset-path: empty");
        o->path = val;
        o->given |= G_PATH;
        return 0;
    }
    if (!strcmp(name, "random-range-ratio")) {
        if (etok_parse_double(what, val, (etok_range){0, 1, 0, 1, 0}, &o->random_range_ratio, err)) return -1;
        o->given |= G_RANDOM;
        return 0;
    }
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++)
        if (!strcmp(name, ints[i].name)) {
            if (etok_parse_int(what, val, ints[i].lo, ints[i].hi, (int *)((char *)o + ints[i].off), err)) return -1;
            o->given |= ints[i].group;
            return 0;
        }
    return etok_errc(err, ETOK_EXIT_USAGE, "%s: not a dataset option", what);
}

int etok_dataset_opts_check(const etok_dataset_opts *o, etok_err *err) {
    static const struct {
        unsigned g;
        etok_dataset_kind k;
        const char *opts;
    } own[] = {{G_SHAREGPT, ETOK_DATASET_SHAREGPT, "--sharegpt-output-len"},
               {G_RANDOM, ETOK_DATASET_RANDOM, "--random-*"},
               {G_PREFIX, ETOK_DATASET_PREFIX_REPETITION, "--prefix-repetition-*"}};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++)
        if ((o->given & own[i].g) && o->kind != own[i].k)
            return etok_errc(err, ETOK_EXIT_USAGE, "%s applies to --dataset-name %s, not %s", own[i].opts,
                             etok_dataset_name(own[i].k), etok_dataset_name(o->kind));
    if (o->kind == ETOK_DATASET_SHAREGPT && !o->path)
        return etok_errc(err, ETOK_EXIT_USAGE, "--dataset-name sharegpt needs --dataset-path FILE (a ShareGPT JSON file)");
    return 0;
}

int etok_goodput_parse(const char *s, double *ttft_s, double *tpot_s, etok_err *err) {
    const char *colon = strchr(s, ':');
    if (!colon)
        return etok_errc(err, ETOK_EXIT_USAGE, "--goodput: expected KEY:MS (ttft:MS, tpot:MS), got '%s'", s);
    size_t kl = (size_t)(colon - s);
    double ms = 0;
    if (etok_parse_double("--goodput", colon + 1, (etok_range){0, 86400e3, 1, 0, 0}, &ms, err)) return -1;
    if (kl == 4 && !strncmp(s, "ttft", 4)) *ttft_s = ms / 1e3;
    else if (kl == 4 && !strncmp(s, "tpot", 4)) *tpot_s = ms / 1e3;
    else if (kl == 4 && !strncmp(s, "e2el", 4))
        return etok_errc(err, ETOK_EXIT_USAGE, "--goodput e2el: etok has no end-to-end latency SLO (ttft and tpot only)");
    else
        return etok_errc(err, ETOK_EXIT_USAGE, "--goodput: unknown key '%.*s' (ttft, tpot)", (int)kl, s);
    return 0;
}
