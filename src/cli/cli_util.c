/* cli_util.c — option parsing and record filling shared by several subcommands (see
 * cli_util.h). Owns: the meter options' syntax and errors, the host description. Does not own:
 * which options a command takes (its cmd_<name>.c) or the meters themselves (src/meter/). */
#include "cli_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "etok/parse.h"
#include "etok/util.h"

int etok_cli_meters_add(const char *cmd, etok_cli_meters *m, const char *arg) {
    size_t used = 0;
    for (int i = 0; i < m->n_names; i++) used += strlen(m->names[i]) + 1;
    for (const char *p = arg; *p;) {
        size_t len = strcspn(p, ",");
        if (len) {
            if (m->n_names >= ETOK_CLI_MAX_METERS || used + len + 1 > sizeof m->buf) {
                fprintf(stderr, "etok %s: --meter '%s': too many meters (at most %d)\n", cmd, arg, ETOK_CLI_MAX_METERS);
                return -1;
            }
            char *dst = m->buf + used;
            memcpy(dst, p, len);
            dst[len] = '\0';
            m->names[m->n_names++] = dst;
            used += len + 1;
        }
        p += len;
        if (*p == ',') p++;
    }
    return 0;
}

const char *const *etok_cli_meters_names(const etok_cli_meters *m) { return m->n_names ? m->names : NULL; }

int etok_cli_cpu_tdp(const char *cmd, const char *arg, double *idle_w, double *max_w) {
    const char *end = arg;
    double lo = NAN, hi = NAN;
    if (etok_parse_double_prefix("--cpu-tdp", arg, &lo, &end, NULL) == 0 && *end == ':') {
        const char *q = end + 1;
        if (etok_parse_double_prefix("--cpu-tdp", q, &hi, &end, NULL)) { hi = NAN; end = q; }
    }
    if (*end || !isfinite(lo) || !isfinite(hi) || lo < 0 || hi <= lo || hi > 1e6) {
        fprintf(stderr, "etok %s: --cpu-tdp '%s': expected IDLE_W:MAX_W with 0 <= IDLE_W < MAX_W <= 1e6\n", cmd, arg);
        return -1;
    }
    *idle_w = lo;
    *max_w = hi;
    return 0;
}

void etok_cli_host_info(etok_record *r) {
    struct utsname u;
    if (uname(&u) == 0) {
        snprintf(r->host, sizeof r->host, "%s", u.nodename);
        snprintf(r->kernel, sizeof r->kernel, "%.40s %.80s", u.sysname, u.release);
    }
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    r->cpu_count = n > 0 ? (int)n : 0;
    char path[4096];
    snprintf(path, sizeof path, "%s/cpuinfo", etok_proc_root());
    char *txt = etok_read_file(path, NULL);
    if (!txt) return;
    char *line = strstr(txt, "model name");
    char *colon = line ? strchr(line, ':') : NULL;
    if (colon) {
        colon++;
        while (*colon == ' ' || *colon == '\t') colon++;
        snprintf(r->cpu_model, sizeof r->cpu_model, "%.*s", (int)strcspn(colon, "\n"), colon);
    }
    free(txt);
}

int etok_cli_lever_opt(const char *cmd, const char *name, const char *arg, etok_cli_levers *lv) {
    etok_err e = {0};
    if (!strcmp(name, "weights")) {
        if (etok_weights_format_check(arg, &e)) {
            fprintf(stderr, "etok %s: %s\n", cmd, e.msg);
            return -1;
        }
        lv->weights = arg;
        return 0;
    }
    if (!strcmp(name, "kv-type")) {
        if (!strcmp(arg, "f16"))
            lv->kv_bits = 16;
        else if (!strcmp(arg, "q8_0") || !strcmp(arg, "kv-int8"))
            lv->kv_bits = 8;
        else if (!strcmp(arg, "f32"))
            lv->kv_bits = 32;
        else {
            fprintf(stderr, "etok %s: --kv-type: unknown type '%.40s' (f16, q8_0 or f32)\n", cmd, arg);
            return -1;
        }
        return 0;
    }
    if (!strcmp(name, "attn-window") || !strcmp(name, "attn-sinks")) {
        char what[32];
        snprintf(what, sizeof what, "--%s", name);
        int v;
        if (etok_parse_int(what, arg, !strcmp(name, "attn-window") ? 1 : 0, 1 << 20, &v, &e)) {
            fprintf(stderr, "etok %s: %s\n", cmd, e.msg);
            return -1;
        }
        if (!strcmp(name, "attn-window"))
            lv->attn_window = v;
        else
            lv->attn_sinks = v;
        return 0;
    }
    return 1;
}

int etok_cli_levers_check(const char *cmd, const etok_cli_levers *lv) {
    if (lv->attn_sinks > 0 && lv->attn_window == 0) {
        fprintf(stderr, "etok %s: --attn-sinks needs --attn-window N\n", cmd);
        return -1;
    }
    return 0;
}

int etok_cli_levers_any(const etok_cli_levers *lv) {
    return lv->weights != NULL || lv->kv_bits != 0 || lv->attn_window != 0 || lv->attn_sinks != 0;
}

const char *etok_cli_kv_type_name(int kv_bits) { return kv_bits == 32 ? "f32" : kv_bits == 8 ? "q8_0" : "f16"; }

int etok_cli_hw_lever_opt(const char *cmd, const char *name, const char *arg, etok_hw_levers_opts *o) {
    etok_err e = {0};
    int bad = !strcmp(name, "cpu-max-freq") ? etok_parse_cpu_freq(arg, &o->cpu_max_khz, &e)
                                            : etok_parse_double("--gpu-power-limit", arg, ETOK_RANGE_POS(1e5),
                                                                &o->gpu_power_limit_w, &e);
    if (bad) fprintf(stderr, "etok %s: %s\n", cmd, e.msg);
    return bad ? -1 : 0;
}

int etok_cli_budget_opt(const char *cmd, const char *arg, etok_budget_policy *p) {
    etok_err e = {0};
    if (etok_budget_parse(arg, p, &e) == 0) return 0;
    fprintf(stderr, "etok %s: %s\n", cmd, e.msg);
    return -1;
}

int etok_cli_budget_check(const char *cmd, const etok_budget_policy *p, int endpoint, double *max_tokens) {
    if (!p) return 0;
    if (p->kind == ETOK_BUDGET_FIXED) {
        *max_tokens = p->fixed;
        return 0;
    }
    if (endpoint) {
        fprintf(stderr, "etok %s: --budget %s applies to the built-in engine, not to --endpoint (fixed:N does)\n", cmd,
                p->kind == ETOK_BUDGET_ADAPTIVE ? "adaptive" : "by-field");
        return -1;
    }
    return 0;
}

int etok_cli_budget_items(const char *cmd, const etok_budget_policy *p, const etok_evalset *ev, int fallback,
                          int endpoint, int **budgets, int *n_fallback) {
    *budgets = NULL;
    *n_fallback = 0;
    size_t n_stop = 0;
    for (size_t i = 0; i < ev->n_items; i++) n_stop += ev->items[i].n_stop > 0;
    if (endpoint && n_stop)
        fprintf(stderr, "etok %s: note: %zu eval items carry stop strings; --endpoint does not send them (built-in engine only)\n",
                cmd, n_stop);
    if (!p) return 0;
    etok_err e = {0};
    if (!(*budgets = malloc(ev->n_items * sizeof **budgets))) {
        fprintf(stderr, "etok %s: out of memory\n", cmd);
        return -1;
    }
    if (etok_budget_assign(p, ev, fallback, *budgets, n_fallback, &e)) {
        fprintf(stderr, "etok %s: %s\n", cmd, e.msg);
        free(*budgets);
        *budgets = NULL;
        return -1;
    }
    return 0;
}
