/* evalset.c — eval set loading (JSONL through jansson) and the answer checks.
 * Owns: the item format and the five checks (see include/etok/evalset.h).
 * Does not own: running prompts, accuracy or any metric (analyse/metrics.c). */
#include "etok/evalset.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <regex.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

static const char *const CHECK_NAMES[] = {"exact", "contains", "regex", "number", "choice"};

/* glibc's regcomp copies a repeated sub-expression once per repetition ("x+" is "xx*", "x{5}"
 * five copies) and computes epsilon closures over the copies, so stacked or nested repetitions
 * grow exponentially: "1++++...+" (50 '+') took gigabytes, "a++++*+++++++" seconds, before
 * regcomp returned. An answer pattern is bounded before it is compiled: no repetition operator
 * right after another (undefined in POSIX EREs), the size of the expanded pattern (each atom 1,
 * a group the sum of its items, '*' '+' '?' x2, {m,n} x max(m,n)) at most REGEX_MAX_COST,
 * bounds at most 255 (RE_DUP_MAX), and no back-references (they make matching exponential on
 * the model's output). Worst accepted shape: ~0.05 s to compile. Returns NULL when fine, else
 * why not. */
#define REGEX_MAX_COST 256.0
static const char *regex_too_costly(const char *re) {
    enum { MAX_DEPTH = 64 };
    double sum[MAX_DEPTH], last[MAX_DEPTH];
    int depth = 0, after_rep = 0;
    sum[0] = last[0] = 0;
    for (const char *p = re; *p;) {
        double f = 0; /* > 0: a repetition of the last item by f */
        if (*p == '(') {
            if (++depth >= MAX_DEPTH) return "groups nested too deep";
            sum[depth] = last[depth] = 0;
            after_rep = 0;
            p++;
            continue;
        }
        if (*p == ')' && depth > 0) {
            double g = sum[depth--];
            last[depth] = g > 1 ? g : 1;
            sum[depth] += last[depth];
            p++;
        } else if (*p == '|') {
            last[depth] = 0;
            p++;
        } else if (*p == '*' || *p == '?' || *p == '+') {
            f = 2;
            p++;
        } else if (*p == '{' && ((p[1] >= '0' && p[1] <= '9') || p[1] == ',')) { /* {,n} is {0,n} to glibc */
            char *end;
            unsigned long m = strtoul(p + 1, &end, 10), n = m;
            if (*end == ',') n = end[1] >= '0' && end[1] <= '9' ? strtoul(end + 1, &end, 10) : (end++, m + 1);
            if (*end != '}') return NULL; /* regcomp reports a malformed bound */
            if (m > 255 || n > 255) return "a repetition bound over 255";
            f = (double)(n > m ? n : m);
            if (f < 1) f = 1;
            p = end + 1;
        } else if (*p == '\\' && p[1]) {
            if (p[1] >= '1' && p[1] <= '9') return "back-references are not supported";
            last[depth] = 1;
            sum[depth] += 1;
            p += 2;
        } else if (*p == '[') { /* a bracket expression is one atom: skip to its closing ']' */
            const char *q = p + 1;
            if (*q == '^') q++;
            if (*q == ']') q++;
            while (*q && *q != ']') {
                if (*q == '[' && (q[1] == ':' || q[1] == '.' || q[1] == '=')) {
                    const char *c = strchr(q + 2, q[1]);
                    while (c && c[1] != ']') c = strchr(c + 1, q[1]);
                    q = c ? c + 2 : q + 1;
                } else {
                    q++;
                }
            }
            last[depth] = 1;
            sum[depth] += 1;
            p = *q ? q + 1 : q;
        } else {
            last[depth] = 1;
            sum[depth] += 1;
            p++;
        }
        if (f > 0) {
            if (after_rep) return "a repetition operator right after another";
            sum[depth] += last[depth] * (f - 1);
            last[depth] *= f;
        }
        after_rep = f > 0;
        if (sum[depth] > REGEX_MAX_COST) return "too many repetitions (at most 256 atoms once expanded)";
    }
    return NULL;
}

const char *etok_check_name(etok_check_kind k) {
    if ((unsigned)k < sizeof CHECK_NAMES / sizeof CHECK_NAMES[0]) return CHECK_NAMES[k];
    return "?";
}

int etok_check_parse(const char *s, etok_check_kind *out) {
    for (size_t i = 0; i < sizeof CHECK_NAMES / sizeof CHECK_NAMES[0]; i++)
        if (s && !strcmp(s, CHECK_NAMES[i])) {
            *out = (etok_check_kind)i;
            return 0;
        }
    return -1;
}

static void item_free(etok_eval_item *it) {
    free(it->id);
    free(it->prompt);
    free(it->answer);
    for (int i = 0; i < it->n_choices; i++) free(it->choices[i]);
    free(it->choices);
    for (int i = 0; i < it->n_stop; i++) free(it->stop[i]);
    for (int i = 0; i < it->n_numbers; i++) free(it->number_names[i]);
    free(it->number_names);
    free(it->number_values);
    memset(it, 0, sizeof *it);
}

void etok_evalset_free(etok_evalset *s) {
    if (!s) return;
    for (size_t i = 0; i < s->n_items; i++) item_free(&s->items[i]);
    free(s->items);
    s->items = NULL;
    s->n_items = 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* Required non-empty string field. */
static int get_str(json_t *o, const char *key, char **out, const char *what, int line, etok_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: missing field \"%s\"", what, line, key);
    if (!json_is_string(v))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: field \"%s\" must be a string", what, line, key);
    if (!json_string_value(v)[0])
        return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: field \"%s\" is empty", what, line, key);
    *out = dup_str(json_string_value(v));
    if (!*out) return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
    return 0;
}

static const char *const DIFFICULTY_NAMES[] = {"", "easy", "medium", "hard"};

const char *etok_difficulty_name(int d) { return d >= 1 && d <= 3 ? DIFFICULTY_NAMES[d] : ""; }

int etok_eval_item_number(const etok_eval_item *it, const char *name, double *out) {
    for (int i = 0; i < it->n_numbers; i++)
        if (!strcmp(it->number_names[i], name)) {
            *out = it->number_values[i];
            return 1;
        }
    return 0;
}

/* "stop", "difficulty", "budget" and the other numeric fields (evalset.h). */
static int parse_generation_fields(json_t *o, etok_eval_item *it, const char *what, int line, etok_err *err) {
    json_t *st = json_object_get(o, "stop");
    if (st && !json_is_null(st)) {
        size_t n = json_is_array(st) ? json_array_size(st) : 1;
        if ((!json_is_array(st) && !json_is_string(st)) || n > ETOK_STOP_MAX)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": \"stop\" must be a string or an array of up to %d strings",
                             what, line, it->id, ETOK_STOP_MAX);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_is_array(st) ? json_array_get(st, i) : st;
            if (!json_is_string(v))
                return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": stop[%zu] must be a string", what, line, it->id, i);
            size_t len = json_string_length(v);
            const char *why = etok_stop_refused(json_string_value(v), len);
            if (why) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": \"stop\": %s", what, line, it->id, why);
            if (!(it->stop[it->n_stop] = dup_str(json_string_value(v))))
                return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
            it->n_stop++;
            if (len > it->stop_max_len) it->stop_max_len = len;
        }
    }
    json_t *d = json_object_get(o, "difficulty");
    if (d) {
        const char *ds = json_is_string(d) ? json_string_value(d) : "";
        for (int k = 1; k <= 3; k++)
            if (!strcmp(ds, DIFFICULTY_NAMES[k])) it->difficulty = k;
        if (!it->difficulty)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": \"difficulty\" must be \"easy\", \"medium\" or \"hard\"",
                             what, line, it->id);
    }
    json_t *b = json_object_get(o, "budget");
    if (b && (!json_is_integer(b) || json_integer_value(b) < 1 || json_integer_value(b) > 8192))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": \"budget\" must be an integer 1..8192 (max_tokens)",
                         what, line, it->id);
    const char *key;
    json_t *v;
    size_t n_num = 0;
    json_object_foreach(o, key, v) n_num += json_is_number(v) && strcmp(key, "tolerance");
    if (n_num) {
        it->number_names = calloc(n_num, sizeof *it->number_names);
        it->number_values = calloc(n_num, sizeof *it->number_values);
        if (!it->number_names || !it->number_values) return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
        json_object_foreach(o, key, v) {
            if (!json_is_number(v) || !strcmp(key, "tolerance")) continue;
            if (!(it->number_names[it->n_numbers] = dup_str(key)))
                return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
            it->number_values[it->n_numbers++] = json_number_value(v);
        }
    }
    return 0;
}

static int parse_item(json_t *o, etok_eval_item *it, const char *what, int line, etok_err *err) {
    it->line = line;
    if (!json_is_object(o)) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: an item must be a JSON object", what, line);
    if (get_str(o, "id", &it->id, what, line, err) || get_str(o, "prompt", &it->prompt, what, line, err))
        return -1;
    json_t *ans = json_object_get(o, "answer");
    if (json_is_number(ans)) { /* allow "answer": 42 for number checks */
        char buf[64];
        snprintf(buf, sizeof buf, "%.17g", json_number_value(ans));
        it->answer = dup_str(buf);
        if (!it->answer) return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
    } else if (get_str(o, "answer", &it->answer, what, line, err))
        return -1;
    char *check = NULL;
    if (get_str(o, "check", &check, what, line, err)) return -1;
    int bad = etok_check_parse(check, &it->check);
    if (bad) {
        etok_errc(err, ETOK_EXIT_INPUT,
                  "%s:%d: item \"%s\": unknown check \"%s\" (exact, contains, regex, number, choice)", what, line,
                  it->id, check);
        free(check);
        return -1;
    }
    free(check);

    it->case_sensitive = it->check == ETOK_CHECK_REGEX;
    json_t *cs = json_object_get(o, "case_sensitive");
    if (cs) {
        if (!json_is_boolean(cs))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: \"case_sensitive\" must be true or false", what, line);
        it->case_sensitive = json_is_true(cs);
    }
    json_t *ic = json_object_get(o, "icase");
    if (ic) {
        if (!json_is_boolean(ic)) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: \"icase\" must be true or false", what, line);
        it->case_sensitive = !json_is_true(ic);
    }

    json_t *tol = json_object_get(o, "tolerance");
    if (tol) {
        if (!json_is_number(tol) || json_number_value(tol) < 0 || !isfinite(json_number_value(tol)))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: \"tolerance\" must be a number >= 0", what, line);
        it->tolerance = json_number_value(tol);
    }

    switch (it->check) {
    case ETOK_CHECK_NUMBER: {
        char *end = NULL;
        errno = 0;
        double v = strtod(it->answer, &end);
        while (end && isspace((unsigned char)*end)) end++;
        if (errno || end == it->answer || *end || !isfinite(v))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": number check needs a numeric answer, got \"%s\"",
                             what, line, it->id, it->answer);
        break;
    }
    case ETOK_CHECK_REGEX: {
        const char *why = regex_too_costly(it->answer);
        if (why)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": regular expression refused: %s", what, line, it->id, why);
        regex_t re;
        int rc = regcomp(&re, it->answer, REG_EXTENDED | REG_NOSUB | (it->case_sensitive ? 0 : REG_ICASE));
        if (rc) {
            char msg[128];
            regerror(rc, &re, msg, sizeof msg);
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": bad regular expression: %s", what, line, it->id,
                             msg);
        }
        regfree(&re);
        break;
    }
    case ETOK_CHECK_CHOICE: {
        json_t *ch = json_object_get(o, "choices");
        if (!json_is_array(ch) || json_array_size(ch) < 2)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": choice check needs \"choices\": [at least 2 strings]",
                             what, line, it->id);
        it->choices = calloc(json_array_size(ch), sizeof *it->choices);
        if (!it->choices) return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
        int found = 0;
        for (size_t i = 0; i < json_array_size(ch); i++) {
            json_t *c = json_array_get(ch, i);
            if (!json_is_string(c) || !json_string_value(c)[0])
                return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": choices must be non-empty strings", what, line,
                                 it->id);
            it->choices[i] = dup_str(json_string_value(c));
            if (!it->choices[i]) return etok_errc(err, ETOK_EXIT_FAIL, "%s:%d: out of memory", what, line);
            it->n_choices++;
            if (it->case_sensitive ? !strcmp(it->choices[i], it->answer) : !strcasecmp(it->choices[i], it->answer))
                found = 1;
        }
        if (!found)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: item \"%s\": answer \"%s\" is not one of the choices", what,
                             line, it->id, it->answer);
        break;
    }
    default:
        break;
    }
    return parse_generation_fields(o, it, what, line, err);
}

int etok_evalset_parse(etok_evalset *s, const char *text, const char *what, etok_err *err) {
    memset(s, 0, sizeof *s);
    snprintf(s->path, sizeof s->path, "%s", what);
    size_t cap = 0;
    int line = 0;
    const char *p = text;
    while (*p) {
        line++;
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        const char *q = p;
        while (q < p + len && isspace((unsigned char)*q)) q++;
        if (q < p + len) {
            json_error_t jerr;
            json_t *o = json_loadb(p, len, JSON_REJECT_DUPLICATES, &jerr);
            if (!o) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: malformed JSON: %s", what, line, jerr.text);
                etok_evalset_free(s);
                return -1;
            }
            if (s->n_items == cap) {
                size_t ncap = cap ? cap * 2 : 64;
                etok_eval_item *ni = realloc(s->items, ncap * sizeof *ni);
                if (!ni) {
                    json_decref(o);
                    etok_evalset_free(s);
                    return etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory", what);
                }
                s->items = ni;
                cap = ncap;
            }
            etok_eval_item *it = &s->items[s->n_items++];
            memset(it, 0, sizeof *it);
            int rc = parse_item(o, it, what, line, err);
            json_decref(o);
            if (rc) {
                etok_evalset_free(s);
                return -1;
            }
            for (size_t i = 0; i + 1 < s->n_items; i++)
                if (!strcmp(s->items[i].id, it->id)) {
                    etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: duplicate id \"%s\" (first on line %d)", what, line, it->id,
                              s->items[i].line);
                    etok_evalset_free(s);
                    return -1;
                }
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (s->n_items == 0) return etok_errc(err, ETOK_EXIT_INPUT, "%s: no eval items", what);
    return 0;
}

int etok_evalset_load(etok_evalset *s, const char *path, etok_err *err) {
    memset(s, 0, sizeof *s);
    size_t len = 0;
    char *text = etok_read_file_bounded(path, "eval set", ETOK_LIMIT_EVALSET, &len, err);
    if (!text) return -1;
    if (strlen(text) != len) {
        free(text);
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: eval set contains a NUL byte", path);
    }
    int rc = etok_evalset_parse(s, text, path, err);
    free(text);
    return rc;
}

/* ---- checks ------------------------------------------------------------------------- */

static int streq_case(const char *a, size_t alen, const char *b, int cs) {
    if (strlen(b) != alen) return 0;
    return cs ? !strncmp(a, b, alen) : !strncasecmp(a, b, alen);
}

/* Find needle in hay (optionally case-insensitive); returns the offset or -1. With whole_word,
 * the match must not touch an alphanumeric character on either side. */
static long find_str(const char *hay, const char *needle, int cs, int whole_word) {
    size_t n = strlen(needle), h = strlen(hay);
    if (!n || n > h) return -1;
    for (size_t i = 0; i + n <= h; i++) {
        if (cs ? strncmp(hay + i, needle, n) : strncasecmp(hay + i, needle, n)) continue;
        if (whole_word) {
            if (i > 0 && isalnum((unsigned char)hay[i - 1])) continue;
            if (isalnum((unsigned char)hay[i + n])) continue;
        }
        return (long)i;
    }
    return -1;
}

int etok_eval_extract_number(const char *text, double *out) {
    if (!text) return 0;
    const char *eq = strrchr(text, '=');
    const char *p = eq ? eq + 1 : text;
    for (; *p; p++) {
        if (!isdigit((unsigned char)*p)) continue;
        const char *start = p;
        if (p > text && (p[-1] == '-' || p[-1] == '+') && (p - 1 == text || !isalnum((unsigned char)p[-2]))) start = p - 1;
        /* Copy digits, dropping "1,000"-style group separators, then one decimal part. */
        char buf[128];
        size_t k = 0;
        if (*start == '-' || *start == '+') buf[k++] = *start;
        const char *q = p;
        while (k < sizeof buf - 2) {
            if (isdigit((unsigned char)*q)) buf[k++] = *q++;
            else if (*q == ',' && isdigit((unsigned char)q[1]) && isdigit((unsigned char)q[2]) &&
                     isdigit((unsigned char)q[3]) && !isdigit((unsigned char)q[4]))
                q++;
            else
                break;
        }
        if (*q == '.' && isdigit((unsigned char)q[1])) {
            buf[k++] = *q++;
            while (k < sizeof buf - 1 && isdigit((unsigned char)*q)) buf[k++] = *q++;
        }
        buf[k] = 0;
        *out = strtod(buf, NULL);
        return 1;
    }
    return 0;
}

int etok_eval_check(const etok_eval_item *it, const char *output) {
    if (!it || !output) return 0;
    int cs = it->case_sensitive;
    switch (it->check) {
    case ETOK_CHECK_EXACT: {
        const char *a = output, *b = output + strlen(output);
        while (a < b && (isspace((unsigned char)*a) || *a == '"' || *a == '\'')) a++;
        while (b > a && (isspace((unsigned char)b[-1]) || b[-1] == '"' || b[-1] == '\'')) b--;
        if (b > a && (b[-1] == '.' || b[-1] == '!')) b--;
        while (b > a && (isspace((unsigned char)b[-1]) || b[-1] == '"' || b[-1] == '\'')) b--;
        return streq_case(a, (size_t)(b - a), it->answer, cs);
    }
    case ETOK_CHECK_CONTAINS:
        return find_str(output, it->answer, cs, 0) >= 0;
    case ETOK_CHECK_REGEX: {
        regex_t re;
        if (regex_too_costly(it->answer) || regcomp(&re, it->answer, REG_EXTENDED | REG_NOSUB | (cs ? 0 : REG_ICASE))) return 0;
        int ok = regexec(&re, output, 0, NULL, 0) == 0;
        regfree(&re);
        return ok;
    }
    case ETOK_CHECK_NUMBER: {
        double got, want = strtod(it->answer, NULL);
        if (!etok_eval_extract_number(output, &got)) return 0;
        return fabs(got - want) <= it->tolerance + 1e-9 * fmax(1.0, fabs(want));
    }
    case ETOK_CHECK_CHOICE: {
        long best = -1;
        int best_i = -1;
        for (int i = 0; i < it->n_choices; i++) {
            long at = find_str(output, it->choices[i], cs, 1);
            if (at >= 0 && (best < 0 || at < best)) {
                best = at;
                best_i = i;
            }
        }
        if (best_i < 0) return 0;
        return cs ? !strcmp(it->choices[best_i], it->answer) : !strcasecmp(it->choices[best_i], it->answer);
    }
    }
    return 0;
}

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static uint64_t fnv_str(uint64_t h, const char *s) {
    if (s) h = fnv_bytes(h, s, strlen(s));
    return fnv_bytes(h, "", 1); /* a separator: ("ab","c") != ("a","bc") */
}

void etok_evalset_hash(const etok_evalset *s, char *buf, size_t n) {
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < s->n_items; i++) {
        const etok_eval_item *it = &s->items[i];
        char num[64];
        h = fnv_str(h, it->id);
        h = fnv_str(h, it->prompt);
        h = fnv_str(h, it->answer);
        snprintf(num, sizeof num, "%s|%.17g|%d|%d", etok_check_name(it->check), it->tolerance, it->case_sensitive,
                 it->n_choices);
        h = fnv_str(h, num);
        for (int c = 0; c < it->n_choices; c++) h = fnv_str(h, it->choices[c]);
        if (it->unscored || it->max_tokens || it->exact_len) { /* serving datasets; eval sets hash as before */
            snprintf(num, sizeof num, "u%d|%d|%d", it->unscored, it->max_tokens, it->exact_len);
            h = fnv_str(h, num);
        }
        if (it->n_stop) { /* only when present: the hash of a set without stop strings is unchanged */
            h = fnv_str(h, "stop");
            for (int k = 0; k < it->n_stop; k++) h = fnv_str(h, it->stop[k]);
        }
    }
    snprintf(buf, n, "fnv1a64:%016llx", (unsigned long long)h);
}
