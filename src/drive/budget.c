/* budget.c — output budget policies (see include/etok/budget.h): parsing, the per-item
 * assignment and its record entry. Owns the adaptive table. */
#include "etok/budget.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/parse.h"

/* easy, medium, hard: a short factual answer needs half the default budget, a multi-step one
 * twice it (docs/LEVERS.md "Output budget") */
static const double ADAPTIVE_FACTOR[4] = {1.0, 0.5, 1.0, 2.0};

double etok_budget_adaptive_factor(int difficulty) {
    return difficulty >= 1 && difficulty <= 3 ? ADAPTIVE_FACTOR[difficulty] : 1.0;
}

int etok_budget_parse(const char *spec, etok_budget_policy *p, etok_err *err) {
    memset(p, 0, sizeof *p);
    if (!spec) spec = "";
    if (!strcmp(spec, "adaptive")) {
        p->kind = ETOK_BUDGET_ADAPTIVE;
        return 0;
    }
    if (!strncmp(spec, "fixed:", 6)) {
        p->kind = ETOK_BUDGET_FIXED;
        etok_err e = {0};
        if (etok_parse_int("--budget fixed:N", spec + 6, 1, ETOK_BUDGET_MAX_TOKENS, &p->fixed, &e))
            return etok_errc(err, ETOK_EXIT_USAGE, "--budget '%s': N must be an integer 1..%d", spec, ETOK_BUDGET_MAX_TOKENS);
        return 0;
    }
    if (!strncmp(spec, "by-field:", 9)) {
        const char *f = spec + 9;
        size_t n = strlen(f);
        int ok = n > 0 && n < sizeof p->field;
        for (size_t i = 0; ok && i < n; i++) ok = (unsigned char)f[i] > 0x20 && (unsigned char)f[i] < 0x7f;
        if (!ok)
            return etok_errc(err, ETOK_EXIT_USAGE, "--budget '%s': FIELD must be a field name (1..%zu printable ASCII characters)",
                             spec, sizeof p->field - 1);
        p->kind = ETOK_BUDGET_BY_FIELD;
        memcpy(p->field, f, n + 1);
        return 0;
    }
    return etok_errc(err, ETOK_EXIT_USAGE, "--budget '%s': expected fixed:N, by-field:FIELD or adaptive", spec);
}

void etok_budget_name(const etok_budget_policy *p, char *buf, size_t n) {
    switch (p->kind) {
    case ETOK_BUDGET_FIXED: snprintf(buf, n, "fixed:%d", p->fixed); break;
    case ETOK_BUDGET_BY_FIELD: snprintf(buf, n, "by-field:%s", p->field); break;
    default: snprintf(buf, n, "adaptive"); break;
    }
}

int etok_budget_assign(const etok_budget_policy *p, const etok_evalset *ev, int fallback, int *out, int *n_fallback,
                       etok_err *err) {
    int nf = 0;
    for (size_t i = 0; i < ev->n_items; i++) {
        const etok_eval_item *it = &ev->items[i];
        double v;
        switch (p->kind) {
        case ETOK_BUDGET_FIXED: out[i] = p->fixed; break;
        case ETOK_BUDGET_BY_FIELD:
            if (!etok_eval_item_number(it, p->field, &v)) {
                out[i] = fallback;
                nf++;
            } else if (v != floor(v) || v < 1 || v > ETOK_BUDGET_MAX_TOKENS) {
                return etok_errc(err, ETOK_EXIT_INPUT,
                                 "%s:%d: item \"%s\": \"%s\" is %g; --budget by-field:%s needs an integer 1..%d", ev->path,
                                 it->line, it->id, p->field, v, p->field, ETOK_BUDGET_MAX_TOKENS);
            } else {
                out[i] = (int)v;
            }
            break;
        default: {
            if (!it->difficulty) nf++;
            double b = floor(etok_budget_adaptive_factor(it->difficulty) * fallback + 0.5);
            out[i] = b < 1 ? 1 : b > ETOK_BUDGET_MAX_TOKENS ? ETOK_BUDGET_MAX_TOKENS : (int)b;
            break;
        }
        }
    }
    if (n_fallback) *n_fallback = nf;
    return 0;
}

int etok_budget_to_config(void *cfgp, const etok_budget_policy *p, const etok_evalset *ev, const int *budgets,
                          int fallback, int n_fallback) {
    json_t *cfg = cfgp;
    int n_stop = 0;
    for (size_t i = 0; i < ev->n_items; i++) n_stop += ev->items[i].n_stop > 0;
    if (n_stop && json_object_set_new(cfg, "stop_items", json_integer(n_stop))) return -1;
    if (!p) return 0;
    char name[96];
    etok_budget_name(p, name, sizeof name);
    json_t *b = json_object(), *by = json_object();
    double sum = 0;
    int bad = !b || !by;
    for (size_t i = 0; !bad && i < ev->n_items; i++) {
        sum += budgets[i];
        bad = json_object_set_new(by, ev->items[i].id, json_integer(budgets[i])) != 0;
    }
    if (!bad)
        bad = json_object_set_new(b, "policy", json_string(name)) ||
              json_object_set_new(b, "fallback_max_tokens", json_integer(fallback)) ||
              json_object_set_new(b, "fallback_items", json_integer(n_fallback)) ||
              json_object_set_new(b, "mean_max_tokens", json_real(ev->n_items ? sum / (double)ev->n_items : 0)) ||
              json_object_set(b, "max_tokens_by_item", by) || json_object_set(cfg, "budget", b);
    json_decref(by);
    json_decref(b);
    return bad ? -1 : 0;
}
