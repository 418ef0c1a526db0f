/* evalset.h — eval sets for quality scoring: JSONL loading and answer checks.
 *
 * One item per line: {"id", "prompt", "answer", "check"} plus optional fields:
 *   "tolerance"      number check: allowed absolute difference (default 0)
 *   "choices"        choice check: the options; "answer" must be one of them
 *   "case_sensitive" exact/contains/choice compare case-insensitively unless true;
 *                    regex is case-sensitive unless false (or "icase": true)
 *   "stop"           a stop string or an array of up to 4 (the rules of etok/stopseq.h, as
 *                    `etok serve`): the built-in engine stops generating when one appears and
 *                    the output ends before it (bench.c); --endpoint sends them as the
 *                    request's "stop" and cuts the answer the same way
 *   "difficulty"     "easy", "medium" or "hard": read by --budget adaptive (etok/budget.h)
 *   "budget"         an integer 1..8192: the item's max_tokens under --budget by-field:budget
 * Other fields whose value is a number are kept by name (etok_eval_item_number) for
 * --budget by-field:FIELD; other extra fields (notes, source) are ignored. Blank lines are skipped; any other line
 * that is not a valid item is an error naming file:line — nothing is dropped silently.
 *
 * Checks (etok_eval_check, a pure function of the item and the output text):
 *   exact    the output, trimmed of surrounding whitespace, quotes and one trailing '.', '!'
 *            equals the answer
 *   contains the answer occurs in the output
 *   regex    the answer is a POSIX extended regular expression (glibc: \< \> word edges,
 *            [[:space:]]) that must match somewhere in the output
 *   number   the first number in the output (after the last '=' when there is one; digit
 *            groups "1,000" allowed) is within tolerance of the answer
 *   choice   of the choices, the one whose first whole-word occurrence comes earliest in
 *            the output is the answer
 * Not here: running the model (drive/bench.c), accuracy figures (analyse/metrics.c). */
#ifndef ETOK_EVALSET_H
#define ETOK_EVALSET_H

#include <stddef.h>

#include "etok/stopseq.h"
#include "etok/util.h"

typedef enum {
    ETOK_CHECK_EXACT,
    ETOK_CHECK_CONTAINS,
    ETOK_CHECK_REGEX,
    ETOK_CHECK_NUMBER,
    ETOK_CHECK_CHOICE
} etok_check_kind;

const char *etok_check_name(etok_check_kind k);
int etok_check_parse(const char *s, etok_check_kind *out);

typedef struct {
    char *id, *prompt, *answer;
    etok_check_kind check;
    double tolerance;
    int case_sensitive;
    char **choices;
    int n_choices;
    int line;            /* 1-based line in the file */
    /* Serving datasets (dataset.h) only; 0 in eval sets: */
    int unscored;        /* 1: no reference answer, never checked (quality not measured) */
    int max_tokens;      /* > 0: this item's output budget (else the run's --max-tokens) */
    int exact_len;       /* 1: ask for exactly max_tokens (ignore_eos, min_tokens) */
    char *stop[ETOK_STOP_MAX];
    int n_stop;
    size_t stop_max_len; /* longest stop string, 0 without */
    int difficulty;      /* 0 = not given, 1 easy, 2 medium, 3 hard */
    int n_numbers;       /* the item's numeric fields besides "tolerance" ("budget" among them) */
    char **number_names;
    double *number_values;
} etok_eval_item;

/* "easy", "medium", "hard" for 1..3; "" for 0. */
const char *etok_difficulty_name(int d);

/* The item's numeric field `name` ("budget", or any other numeric field): 1 and *out set, or 0
 * when the item has none by that name. */
int etok_eval_item_number(const etok_eval_item *it, const char *name, double *out);

typedef struct {
    char path[512];
    size_t n_items;
    etok_eval_item *items;
} etok_evalset;

/* Load a JSONL eval set. On error nothing is kept and err names file:line and the problem
 * (ETOK_EXIT_INPUT; a missing file too). An empty set is an error. */
int etok_evalset_load(etok_evalset *s, const char *path, etok_err *err);
/* Parse from text (what names the source in errors). */
int etok_evalset_parse(etok_evalset *s, const char *text, const char *what, etok_err *err);
void etok_evalset_free(etok_evalset *s);

/* The content hash of the set, "fnv1a64:<16 hex>" over every item's id, prompt, answer, check,
 * tolerance, case flag and choices in order, and the stop strings of items that have them (they
 * change the output) — not the file's bytes (comments, blank lines and key order do not change
 * it), nor difficulty or budget fields (the budget each request got is in the record's config). Records carry it (config.evals_hash) so that etok compare can
 * tell whether two runs answered the same questions. buf: at least 25 bytes. */
void etok_evalset_hash(const etok_evalset *s, char *buf, size_t n);

/* Score one output: 1 pass, 0 fail. output may be NULL (fails). */
int etok_eval_check(const etok_eval_item *it, const char *output);

/* The number a `number` check reads from text; 0 when none found, 1 and *out set. */
int etok_eval_extract_number(const char *text, double *out);

#endif
