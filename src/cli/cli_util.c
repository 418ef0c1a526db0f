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

#include <jansson.h>

#include "engine/hugemem.h"
#include "engine/quant.h"
#include "etok/bgload.h"
#include "etok/energy.h"
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
    (void)endpoint; /* --endpoint sends items' stop strings as the request's "stop" (bench.c) */
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

/* ---- idle-baseline history (issue 17; docs/RECORD.md "Idle history") ---- */

#define IDLE_HISTORY_KEEP 100  /* lines kept when the file is rewritten */
#define IDLE_HISTORY_MAX 200   /* lines before it is rewritten */
#define IDLE_HISTORY_MIN_N 3   /* earlier quiet baselines needed for a verdict */
#define IDLE_HISTORY_RATIO 1.25
#define IDLE_HISTORY_FLOOR_W 0.5

static int cmp_dbl(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

int etok_cli_idle_history_path(char *out, size_t cap) {
    const char *xdg = getenv("XDG_STATE_HOME"), *home = getenv("HOME");
    char host[128] = "host";
    if (gethostname(host, sizeof host - 1) != 0) snprintf(host, sizeof host, "host");
    host[sizeof host - 1] = '\0';
    for (char *c = host; *c; c++)
        if (*c == '/' || *c == ' ') *c = '_';
    int n;
    if (xdg && xdg[0] == '/') n = snprintf(out, cap, "%s/etok/idle-history-%s.tsv", xdg, host);
    else if (home && home[0]) n = snprintf(out, cap, "%s/.local/state/etok/idle-history-%s.tsv", home, host);
    else return -1;
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int etok_cli_idle_history(const char *cmd, etok_record *r, int enabled) {
    if (!enabled) return 0;
    etok_energy_summary s;
    if (etok_energy_summarize(r, &s) != 0 || !s.has_idle || !isfinite(s.idle_power_w)) {
        etok_energy_summary_free(&s);
        return 0;
    }
    double p0 = s.idle_power_w;
    /* which meters: boundary, then every summable meter:domain at it */
    char sig[512];
    /* (fixture roots and the estimate's model are part of it: a test tree never matches a host) */
    const char *sr = getenv("ETOK_SYSFS_ROOT"), *pr = getenv("ETOK_PROC_ROOT");
    size_t k = (size_t)snprintf(sig, sizeof sig, "%s", etok_boundary_name(s.boundary));
    if ((sr && *sr) || (pr && *pr)) k += (size_t)snprintf(sig + k, sizeof sig - k, "|root=%s,%s", sr ? sr : "", pr ? pr : "");
    for (size_t i = 0; i < r->n_traces && k < sizeof sig; i++)
        if (r->traces[i].summable && r->traces[i].boundary == s.boundary)
            k += (size_t)snprintf(sig + k, sizeof sig - k, "|%s:%s%s%s", r->traces[i].meter, r->traces[i].domain,
                                  r->traces[i].source == ETOK_SOURCE_ESTIMATE ? ":" : "",
                                  r->traces[i].source == ETOK_SOURCE_ESTIMATE ? r->traces[i].power_field : "");
    if (k >= sizeof sig) sig[sizeof sig - 1] = '\0';
    for (char *c = sig; *c; c++)
        if (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r') *c = '_';
    etok_energy_summary_free(&s);
    char path[1024];
    if (etok_cli_idle_history_path(path, sizeof path) != 0) return 0;
    etok_bgload bg;
    etok_bgload_analyse(r, &bg);
    const etok_cpuload_phase *pi = &bg.phase[ETOK_PHASE_IDLE];
    double held = !pi->valid ? -1 : pi->background_busy_cores >= 0 ? pi->background_busy_cores : pi->machine_busy_cores;
    int quiet = held >= 0 && held <= ETOK_BG_THRESHOLD_CORES;
    /* earlier quiet baselines with the same meters */
    char *text = etok_read_file(path, NULL);
    double v[IDLE_HISTORY_MAX + 1];
    int nv = 0, nlines = 0;
    for (char *l = text; l && *l;) {
        char *e = strchr(l, '\n');
        if (e) *e = '\0';
        double t, w;
        char s2[512];
        nlines++;
        if (sscanf(l, "%lf %lf %511s", &t, &w, s2) == 3 && !strcmp(s2, sig) && isfinite(w) && w >= 0) {
            if (nv == IDLE_HISTORY_MAX) memmove(v, v + 1, (IDLE_HISTORY_MAX - 1) * sizeof *v), nv--;
            v[nv++] = w;
        }
        if (e) *e = '\n';
        l = e ? e + 1 : NULL;
    }
    if (nv >= IDLE_HISTORY_MIN_N) {
        double sorted[IDLE_HISTORY_MAX];
        int m = nv > 20 ? 20 : nv; /* the last 20 */
        memcpy(sorted, v + nv - m, (size_t)m * sizeof *sorted);
        qsort(sorted, (size_t)m, sizeof *sorted, cmp_dbl);
        double med = m % 2 ? sorted[m / 2] : 0.5 * (sorted[m / 2 - 1] + sorted[m / 2]);
        if (p0 > IDLE_HISTORY_RATIO * med + IDLE_HISTORY_FLOOR_W) {
            double t = r->idle_start_s + 0.5 * (r->idle_end_s - r->idle_start_s);
            etok_record_add_fault(r, t, "idle_history", "", "warning",
                                  "idle baseline %.3g W is far above this host's earlier quiet baselines (median %.3g W of "
                                  "the last %d, %s): something else drew power during it",
                                  p0, med, m, path);
        }
    }
    if (quiet) { /* remember it (best effort: a history that cannot be written changes nothing) */
        char dir[1024];
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) *slash = '\0';
        etok_err e = {0};
        if (etok_mkdirs(dir, &e) == 0) {
            if (nlines >= IDLE_HISTORY_MAX && text) { /* keep the last IDLE_HISTORY_KEEP lines */
                char *p = text + strlen(text);
                int seen = 0;
                while (p > text && seen <= IDLE_HISTORY_KEEP)
                    if (*--p == '\n') seen++;
                FILE *f = fopen(path, "w");
                if (f) {
                    fputs(p == text ? p : p + 1, f);
                    fclose(f);
                }
            }
            FILE *f = fopen(path, "a");
            if (f) {
                fprintf(f, "%.0f %.6g %s\n", r->t0_wall_s, p0, sig);
                fclose(f);
            }
        }
    }
    free(text);
    (void)cmd;
    return 0;
}

void etok_cli_chat_note(const char *cmd, const char *model_path, const etok_model *m) {
    int from_file = 1;
    const char *name = etok_chat_template_name(m, &from_file);
    if (!m || from_file) return;
    fprintf(stderr,
            "etok %s: note: %s carries no tokenizer.chat_template, so the chat format is %s, chosen from its "
            "vocabulary; a GGUF without a template is usually a base model (not instruction-tuned), which "
            "continues text instead of answering a turn: give it a plain or few-shot prompt (docs/ENGINE.md, "
            "\"Chat on a file without a template\")\n",
            cmd, model_path ? model_path : "the model", name);
}

void etok_cli_engine_config(void *cfg, const etok_model_info *mi) {
    json_t *c = cfg;
    char thp[32];
    json_object_set_new(c, "kernel_level", json_string(etok_isa_name(etok_isa_active())));
    json_object_set_new(c, "kernel_level_detected", json_string(etok_isa_name(etok_isa_detected())));
    json_object_set_new(c, "weights_placed_bytes", json_real(mi ? mi->weight_placed_bytes : 0.0));
    json_object_set_new(c, "weights_huge_page_bytes", json_real(mi ? mi->weight_huge_bytes : 0.0));
    json_object_set_new(c, "huge_pages", json_string(etok_hugemem_wanted() ? "asked" : "off (ETOK_HUGEPAGES=0)"));
    json_object_set_new(c, "thp_mode", json_string(etok_thp_mode(thp, sizeof thp)));
}
