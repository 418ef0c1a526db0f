/* budget.h — output budget policies for `etok bench --budget` (issue 16): each eval item's
 * max_tokens from a policy instead of one --max-tokens for all.
 *
 *   fixed:N         every item gets N (1..8192); the same as --max-tokens N
 *   by-field:FIELD  the item's numeric field FIELD (e.g. "budget"), an integer 1..8192; items
 *                   without it get --max-tokens (counted as fallback items in the record)
 *   adaptive        by the item's "difficulty": easy 0.5x, medium 1x, hard 2x --max-tokens
 *                   (rounded to nearest, at least 1, at most 8192); items without a difficulty
 *                   get --max-tokens (fallback items). With the default --max-tokens 32: 16/32/64.
 *
 * Pure: no engine, no I/O. Stop strings (the items' "stop") are not a budget and live in
 * evalset.h / stopseq.h; the policy and every item's budget go into the record's config
 * (etok_budget_to_config). docs/LEVERS.md "Output budget". */
#ifndef ETOK_BUDGET_H
#define ETOK_BUDGET_H

#include <stddef.h>

#include "etok/evalset.h"
#include "etok/util.h"

#define ETOK_BUDGET_MAX_TOKENS 8192

typedef enum { ETOK_BUDGET_FIXED, ETOK_BUDGET_BY_FIELD, ETOK_BUDGET_ADAPTIVE } etok_budget_kind;

typedef struct {
    etok_budget_kind kind;
    int fixed;       /* fixed:N */
    char field[64];  /* by-field:FIELD */
} etok_budget_policy;

/* The adaptive table: max_tokens = round(factor x fallback) for difficulty 1..3. */
double etok_budget_adaptive_factor(int difficulty);

/* Parse "fixed:N", "by-field:FIELD" or "adaptive". -1 with err (ETOK_EXIT_USAGE) naming the
 * value and the accepted forms. */
int etok_budget_parse(const char *spec, etok_budget_policy *p, etok_err *err);

/* The policy as written ("fixed:32", "by-field:budget", "adaptive"). */
void etok_budget_name(const etok_budget_policy *p, char *buf, size_t n);

/* Each item's max_tokens into out[ev->n_items]; fallback = --max-tokens. *n_fallback (may be
 * NULL): items that got the fallback because they lack the field or the difficulty. -1 with err
 * (ETOK_EXIT_INPUT, naming file:line, item and field) when a by-field value is not an integer
 * 1..8192. */
int etok_budget_assign(const etok_budget_policy *p, const etok_evalset *ev, int fallback, int *out, int *n_fallback,
                       etok_err *err);

/* config.budget of a bench record: {"policy", "fallback_max_tokens", "fallback_items",
 * "mean_max_tokens", "max_tokens_by_item": {id: n}} (p NULL: no --budget, nothing added) and
 * config.stop_items (items with stop strings; only when > 0). cfg is a jansson json_t *;
 * returns 0, or -1 when out of memory. */
int etok_budget_to_config(void *cfg, const etok_budget_policy *p, const etok_evalset *ev, const int *budgets,
                          int fallback, int n_fallback);

#endif
