/* catalog.c — the TPF catalogs on disk: data/hardware/NAME.json, data/models/NAME.json,
 * data/scenarios/NAME.json (only .json files; other files such as default-model.sha256 are
 * ignored). Owns: the data directory, listing names, quantities with units, reading hardware
 * and model entries (with their `source` for every number). Does not own: scenario files
 * (scenario.c) or the model (analyse/tpf.c). */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scenario/jsonq.h"

/* etok_data_dir() (the catalogs' root) is resolved in util/paths.c, the same for every command. */

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

int etok_catalog_names(const char *kind, char ***names, size_t *n, etok_err *err) {
    *names = NULL;
    *n = 0;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", etok_data_dir(), kind);
    DIR *d = opendir(dir);
    if (!d) return etok_errc(err, ETOK_EXIT_INPUT, "%s: cannot open catalog directory: %s (set ETOK_DATA_DIR)", dir, strerror(errno));
    struct dirent *de;
    size_t cap = 0;
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        if (l <= 5 || strcmp(de->d_name + l - 5, ".json") || de->d_name[0] == '.') continue;
        if (*n == cap) {
            cap = cap ? cap * 2 : 16;
            char **nn = realloc(*names, cap * sizeof *nn);
            if (!nn) break;
            *names = nn;
        }
        (*names)[*n] = strndup(de->d_name, l - 5);
        if ((*names)[*n]) (*n)++;
    }
    closedir(d);
    if (*n) qsort(*names, *n, sizeof **names, cmp_str);
    return 0;
}

void etok_catalog_names_free(char **names, size_t n) {
    for (size_t i = 0; i < n; i++) free(names[i]);
    free(names);
}

/* ---------- quantities ---------- */

static const struct {
    const char *unit;
    char dim;
    double scale;
} UNITS[] = {
    {"W", 'P', 1}, {"kW", 'P', 1e3}, {"MW", 'P', 1e6}, {"GW", 'P', 1e9},
    {"B", 'M', 1}, {"kB", 'M', 1e3}, {"KB", 'M', 1e3}, {"MB", 'M', 1e6}, {"GB", 'M', 1e9}, {"TB", 'M', 1e12},
    {"KiB", 'M', 1024.0}, {"MiB", 'M', 1048576.0}, {"GiB", 'M', 1073741824.0}, {"TiB", 'M', 1099511627776.0},
    {"B/s", 'B', 1}, {"kB/s", 'B', 1e3}, {"MB/s", 'B', 1e6}, {"GB/s", 'B', 1e9}, {"TB/s", 'B', 1e12},
    {"GiB/s", 'B', 1073741824.0}, {"TiB/s", 'B', 1099511627776.0},
    {"FLOP/s", 'F', 1}, {"GFLOP/s", 'F', 1e9}, {"TFLOP/s", 'F', 1e12}, {"PFLOP/s", 'F', 1e15},
    {"FLOPS", 'F', 1}, {"GFLOPS", 'F', 1e9}, {"TFLOPS", 'F', 1e12}, {"PFLOPS", 'F', 1e15},
    {"TOPS", 'F', 1e12}, {"POPS", 'F', 1e15},
    {"J", 'E', 1}, {"kJ", 'E', 1e3}, {"MJ", 'E', 1e6}, {"Wh", 'E', 3600}, {"kWh", 'E', 3.6e6}, {"MWh", 'E', 3.6e9},
    {"s", 'T', 1}, {"ms", 'T', 1e-3}, {"h", 'T', 3600},
    {"J/token", 'J', 1}, {"mJ/token", 'J', 1e-3},
    {"token/s", 'R', 1}, {"tok/s", 'R', 1},
    {"%", '1', 0.01},
};

static const char *dim_name(char d) {
    switch (d) {
    case 'P': return "a power (W)";
    case 'M': return "a size (bytes)";
    case 'B': return "a bandwidth (byte/s)";
    case 'F': return "a compute rate (FLOP/s)";
    case 'E': return "an energy (J)";
    case 'T': return "a time (s)";
    case 'J': return "an energy per token (J/token)";
    case 'R': return "a token rate (token/s)";
    default: return "a dimensionless number";
    }
}

int etok_quantity_parse(const char *text, char dim, const char *field, double *out, etok_err *err) {
    const char *end;
    double v;
    if (etok_parse_double_prefix(field, text, &v, &end, NULL))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: '%s' is not a number with a unit", field, text);
    while (*end == ' ') end++;
    if (!*end) { *out = v; return 0; }
    char unit[32];
    snprintf(unit, sizeof unit, "%s", end);
    size_t l = strlen(unit);
    while (l && unit[l - 1] == ' ') unit[--l] = '\0';
    for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++) {
        if (strcmp(UNITS[i].unit, unit)) continue;
        if (UNITS[i].dim != dim)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: '%s' is %s, but %s must be %s", field, text,
                             dim_name(UNITS[i].dim), field, dim_name(dim));
        *out = v * UNITS[i].scale;
        if (!isfinite(*out)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: '%s' is too large", field, text);
        return 0;
    }
    return etok_errc(err, ETOK_EXIT_INPUT, "%s: unknown unit '%s' in '%s' (expected %s)", field, unit, text, dim_name(dim));
}

int jq_number(json_t *v, char dim, const char *what, const char *field, double *out, etok_err *err) {
    if (json_is_number(v)) {
        *out = json_number_value(v);
        return 0;
    }
    if (json_is_string(v)) {
        etok_err e = {0};
        if (etok_quantity_parse(json_string_value(v), dim, field, out, &e) == 0) return 0;
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s", what, e.msg);
    }
    return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be a number (%s)", what, field, dim_name(dim));
}

int jq_int(json_t *v, long long lo, long long hi, const char *what, const char *field, int *out, etok_err *err) {
    double x = 0;
    if (json_is_string(v))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be a whole number without a unit (got \"%s\")", what, field,
                         json_string_value(v));
    if (jq_number(v, '1', what, field, &x, err)) return -1;
    if (x != floor(x) || x < (double)lo || x > (double)hi)
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be a whole number in %lld..%lld (got %g)", what, field, lo, hi, x);
    *out = (int)x;
    return 0;
}

int jq_known_keys(json_t *obj, const char *const *known, const char *what, const char *prefix, etok_err *err) {
    const char *key;
    json_t *val;
    json_object_foreach(obj, key, val) {
        int ok = 0;
        for (size_t i = 0; known[i] && !ok; i++) ok = !strcmp(key, known[i]);
        if (ok) continue;
        char list[640] = "";
        for (size_t i = 0; known[i]; i++) {
            strncat(list, known[i], sizeof list - strlen(list) - 1);
            if (known[i + 1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: unknown field %s%s%s (known: %s)", what, prefix ? prefix : "",
                         prefix && *prefix ? "." : "", key, list);
    }
    return 0;
}

static void fieldname(char *buf, size_t n, const char *prefix, const char *key) {
    if (prefix && *prefix) snprintf(buf, n, "%s.%s", prefix, key);
    else snprintf(buf, n, "%s", key);
}

static int get_num(json_t *o, const char *key, char dim, int required, const char *what, const char *prefix, double *out,
                   etok_err *err) {
    char f[128];
    fieldname(f, sizeof f, prefix, key);
    json_t *v = json_object_get(o, key);
    if (!v) return required ? etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s (%s)", what, f, dim_name(dim)) : 0;
    if (jq_number(v, dim, what, f, out, err)) return -1;
    if (*out < 0) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be >= 0 (got %g)", what, f, *out);
    return 0;
}

static int get_int(json_t *o, const char *key, int required, long long lo, long long hi, const char *what, const char *prefix,
                   int *out, etok_err *err) {
    char f[128];
    fieldname(f, sizeof f, prefix, key);
    json_t *v = json_object_get(o, key);
    if (!v) return required ? etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s (a whole number)", what, f) : 0;
    return jq_int(v, lo, hi, what, f, out, err);
}

static int get_str(json_t *o, const char *key, const char *what, const char *prefix, char *out, size_t n, etok_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    char f[128];
    fieldname(f, sizeof f, prefix, key);
    if (!json_is_string(v)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be a string", what, f);
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

/* ---------- hardware ---------- */

const char *const JQ_HW_KEYS[] = {"name", "display_name", "peak_flops", "mem_bw_bps", "mem_bytes",
                                  "max_power_w", "idle_power_w", "calibration", "source", NULL};

/* "calibration": {"source": "...", "achievable": [{"devices_per_replica": 1, "batch": [...],
 * "bandwidth_fraction": [...], "flops_fraction": [...], "power": {...} optional}, ...], "power":
 * {"activity_floor": x, "activity_per_mfu": y, "activity_per_mbu": z}} (docs/TPF.md "Calibration"). */
static int num_array(json_t *a, const char *what, const char *f, double lo, double hi, double *out, int *n, etok_err *err) {
    if (!json_is_array(a) || json_array_size(a) < 1 || json_array_size(a) > ETOK_CAL_MAX_POINTS)
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an array of 1..%d numbers", what, f, ETOK_CAL_MAX_POINTS);
    size_t i;
    json_t *v;
    json_array_foreach(a, i, v) {
        double x = json_number_value(v);
        if (!json_is_number(v) || !(x > lo && x <= hi))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s[%zu]: must be a number in (%g, %g]", what, f, i, lo, hi);
        out[i] = x;
    }
    *n = (int)json_array_size(a);
    return 0;
}

/* "power": {"activity_floor": x, "activity_per_mfu": y, "activity_per_mbu": z} at `f`. */
static int parse_power(json_t *pw, const char *what, const char *f, double *floor_, double *per_mfu, double *per_mbu,
                       etok_err *err) {
    static const char *const PK[] = {"activity_floor", "activity_per_mfu", "activity_per_mbu", NULL};
    if (!json_is_object(pw)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object", what, f);
    if (jq_known_keys(pw, PK, what, f, err) || get_num(pw, "activity_floor", '1', 1, what, f, floor_, err) ||
        get_num(pw, "activity_per_mfu", '1', 1, what, f, per_mfu, err) ||
        get_num(pw, "activity_per_mbu", '1', 1, what, f, per_mbu, err))
        return -1;
    if (!(*floor_ < 1)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s.activity_floor: must be below 1 (got %g)", what, f, *floor_);
    return 0;
}

static int parse_calibration(json_t *c, const char *what, etok_hw_calibration *cal, etok_err *err) {
    memset(cal, 0, sizeof *cal);
    if (!c || json_is_null(c)) return 0;
    static const char *const K[] = {"source", "achievable", "power", "used_points", "kernels", NULL};
    if (!json_is_object(c)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: calibration: must be an object", what);
    if (jq_known_keys(c, K, what, "calibration", err)) return -1;
    json_t *src = json_object_get(c, "source");
    if (!json_is_string(src) || !*json_string_value(src))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: calibration.source: missing (every number needs a source)", what);
    snprintf(cal->source, sizeof cal->source, "%s", json_string_value(src));
    json_t *ach = json_object_get(c, "achievable");
    if (!json_is_array(ach) || json_array_size(ach) < 1 || json_array_size(ach) > ETOK_CAL_MAX_ROWS)
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: calibration.achievable: must be an array of 1..%d rows", what, ETOK_CAL_MAX_ROWS);
    size_t i;
    json_t *row;
    json_array_foreach(ach, i, row) {
        char f[96];
        snprintf(f, sizeof f, "calibration.achievable[%zu]", i);
        static const char *const RK[] = {"devices_per_replica", "batch", "bandwidth_fraction", "flops_fraction", "power", NULL};
        if (!json_is_object(row)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object", what, f);
        if (jq_known_keys(row, RK, what, f, err)) return -1;
        etok_hw_cal_row *r = &cal->rows[i];
        char g[128];
        snprintf(g, sizeof g, "%s.devices_per_replica", f);
        json_t *d = json_object_get(row, "devices_per_replica");
        if (!d) return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s", what, g);
        if (jq_int(d, 1, 1 << 20, what, g, &r->devices_per_replica, err)) return -1;
        if (i > 0 && r->devices_per_replica <= cal->rows[i - 1].devices_per_replica)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: rows must be in ascending devices_per_replica", what, g);
        int nb = 0, nw = 0, nf = 0;
        snprintf(g, sizeof g, "%s.batch", f);
        if (num_array(json_object_get(row, "batch"), what, g, 0, 1e9, r->batch, &nb, err)) return -1;
        for (int k = 1; k < nb; k++)
            if (!(r->batch[k] > r->batch[k - 1])) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be ascending", what, g);
        snprintf(g, sizeof g, "%s.bandwidth_fraction", f);
        if (num_array(json_object_get(row, "bandwidth_fraction"), what, g, 0, 1, r->bandwidth_fraction, &nw, err)) return -1;
        snprintf(g, sizeof g, "%s.flops_fraction", f);
        if (num_array(json_object_get(row, "flops_fraction"), what, g, 0, 1, r->flops_fraction, &nf, err)) return -1;
        if (nw != nb || nf != nb)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: batch, bandwidth_fraction and flops_fraction must have the same length", what, f);
        r->n = nb;
        json_t *rp = json_object_get(row, "power");
        if (rp && !json_is_null(rp)) {
            snprintf(g, sizeof g, "%s.power", f);
            if (parse_power(rp, what, g, &r->activity_floor, &r->activity_per_mfu, &r->activity_per_mbu, err)) return -1;
            r->has_power = 1;
        }
    }
    cal->n_rows = json_array_size(ach);
    json_t *pw = json_object_get(c, "power");
    if (pw && !json_is_null(pw)) {
        if (parse_power(pw, what, "calibration.power", &cal->activity_floor, &cal->activity_per_mfu,
                        &cal->activity_per_mbu, err))
            return -1;
        cal->has_power = 1;
    }
    /* "kernels": [{"weight_dtype": "q4_1", "threads": 2, "flops_fraction": x, "fitted_from": [...]}]
     * (etok tpf --calibrate; the first is the rows' kernel) */
    json_t *kn = json_object_get(c, "kernels");
    if (kn && !json_is_null(kn)) {
        if (!json_is_array(kn) || json_array_size(kn) < 1 || json_array_size(kn) > ETOK_CAL_MAX_POINTS)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: calibration.kernels: must be an array of 1..%d objects", what, ETOK_CAL_MAX_POINTS);
        json_t *k;
        json_array_foreach(kn, i, k) {
            char f[96], g[128];
            snprintf(f, sizeof f, "calibration.kernels[%zu]", i);
            static const char *const KK[] = {"weight_dtype", "threads", "flops_fraction", "fitted_from", NULL};
            if (!json_is_object(k)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object", what, f);
            if (jq_known_keys(k, KK, what, f, err)) return -1;
            json_t *wd = json_object_get(k, "weight_dtype");
            if (!json_is_string(wd) || etok_dtype_parse(json_string_value(wd), &cal->kernels[i].weight_dtype))
                return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s.weight_dtype: must name a weight format (fp32, fp16, q8_0, q4_1, ...)", what, f);
            snprintf(g, sizeof g, "%s.threads", f);
            json_t *th = json_object_get(k, "threads");
            if (!th) return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s", what, g);
            if (jq_int(th, 1, 1 << 16, what, g, &cal->kernels[i].threads, err)) return -1;
            json_t *ff = json_object_get(k, "flops_fraction");
            double x = json_number_value(ff);
            if (!json_is_number(ff) || !(x > 0 && x <= 1))
                return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s.flops_fraction: must be a number in (0, 1]", what, f);
            cal->kernels[i].flops_fraction = x;
            for (size_t j = 0; j < i; j++)
                if (cal->kernels[j].weight_dtype == cal->kernels[i].weight_dtype && cal->kernels[j].threads == cal->kernels[i].threads)
                    return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: a second entry for %s at %d threads", what, f,
                                     etok_dtype_name(cal->kernels[i].weight_dtype), cal->kernels[i].threads);
        }
        cal->n_kernels = (int)json_array_size(kn);
    }
    cal->present = 1;
    return 0;
}

int jq_hardware(json_t *o, const char *what, const char *prefix, int require_all, etok_hw_spec *hw, etok_err *err) {
    if (get_str(o, "name", what, prefix, hw->name, sizeof hw->name, err) ||
        get_str(o, "display_name", what, prefix, hw->display_name, sizeof hw->display_name, err))
        return -1;
    json_t *pf = json_object_get(o, "peak_flops");
    char pfx[96];
    fieldname(pfx, sizeof pfx, prefix, "peak_flops");
    if (pf) {
        static const char *const PF_KEYS[] = {"fp32", "bf16", "fp16", "fp8", "int8", NULL};
        if (!json_is_object(pf))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object {\"bf16\": FLOP/s, \"fp8\": ..., ...}", what, pfx);
        if (jq_known_keys(pf, PF_KEYS, what, pfx, err) || get_num(pf, "fp32", 'F', 0, what, pfx, &hw->peak_flops_fp32, err) ||
            get_num(pf, "bf16", 'F', 0, what, pfx, &hw->peak_flops_bf16, err) ||
            get_num(pf, "fp8", 'F', 0, what, pfx, &hw->peak_flops_fp8, err) ||
            get_num(pf, "int8", 'F', 0, what, pfx, &hw->peak_flops_int8, err))
            return -1;
        if (!hw->peak_flops_bf16 && json_object_get(pf, "fp16") &&
            get_num(pf, "fp16", 'F', 0, what, pfx, &hw->peak_flops_bf16, err))
            return -1;
    }
    if (require_all && !(hw->peak_flops_bf16 > 0))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s.bf16 (dense peak, FLOP/s)", what, pfx);
    if (get_num(o, "mem_bw_bps", 'B', require_all, what, prefix, &hw->mem_bw_bps, err) ||
        get_num(o, "mem_bytes", 'M', require_all, what, prefix, &hw->mem_bytes, err) ||
        get_num(o, "max_power_w", 'P', require_all, what, prefix, &hw->max_power_w, err) ||
        get_num(o, "idle_power_w", 'P', require_all, what, prefix, &hw->idle_power_w, err))
        return -1;
    /* Upper limits from the one table (analyse/tpf_limits.c) that scenarios and sweeps use. */
    const struct { const char *key, *limit; double v; } L[] = {
        {"peak_flops.fp32", "hardware.peak_flops", hw->peak_flops_fp32}, {"peak_flops.bf16", "hardware.peak_flops", hw->peak_flops_bf16},
        {"peak_flops.fp8", "hardware.peak_flops", hw->peak_flops_fp8},   {"peak_flops.int8", "hardware.peak_flops", hw->peak_flops_int8},
        {"mem_bw_bps", "hardware.mem_bw_bps", hw->mem_bw_bps},           {"mem_bytes", "hardware.mem_bytes", hw->mem_bytes},
        {"max_power_w", "hardware.max_power_w", hw->max_power_w},        {"idle_power_w", "hardware.idle_power_w", hw->idle_power_w},
    };
    for (size_t i = 0; i < sizeof L / sizeof L[0]; i++) {
        char f[128], rt[96];
        const etok_field_limit *l = etok_tpf_field_limit(L[i].limit);
        if (!l || etok_range_check(L[i].limit, L[i].v, l->range, NULL) == 0) continue;
        fieldname(f, sizeof f, prefix, L[i].key);
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: %g is out of range (expected %s)", what, f, L[i].v,
                         etok_range_text(l->range, rt, sizeof rt));
    }
    json_t *cal = json_object_get(o, "calibration");
    if (cal && parse_calibration(cal, what, &hw->cal, err)) return -1;
    return 0;
}

/* A catalog entry must say where each number comes from. */
static int require_sources(json_t *o, const char *what, const char *const *keys, etok_err *err) {
    json_t *src = json_object_get(o, "source");
    if (!json_is_object(src))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field source (an object naming the source of each number)", what);
    for (size_t i = 0; keys[i]; i++) {
        json_t *s = json_object_get(src, keys[i]);
        if (!json_is_string(s) || !*json_string_value(s))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: source.%s: missing (every number needs a source)", what, keys[i]);
    }
    return 0;
}

static json_t *load_entry(const char *kind, const char *label, const char *name, char *path, size_t pn, etok_err *err) {
    /* A hardware profile written by `etok tpf --calibrate -o FILE.json` is named by its path. */
    size_t nl = strlen(name);
    const int is_file = !strcmp(kind, "hardware") && nl > 5 && !strcmp(name + nl - 5, ".json");
    for (const char *p = name; *p && !is_file; p++)
        if (*p == '/' || *p == '\\') {
            etok_errc(err, ETOK_EXIT_INPUT, "%s name '%s' must not contain '/'", label, name);
            return NULL;
        }
    if (is_file) snprintf(path, pn, "%s", name);
    else snprintf(path, pn, "%s/%s/%s.json", etok_data_dir(), kind, name);
    json_error_t je;
    struct stat st;
    if (is_file && stat(path, &st) != 0) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: cannot read the hardware profile", path);
        return NULL;
    }
    if (stat(path, &st) != 0) {
        char **names;
        size_t n;
        char list[1024] = "";
        if (etok_catalog_names(kind, &names, &n, NULL) == 0) {
            for (size_t i = 0; i < n; i++) {
                strncat(list, names[i], sizeof list - strlen(list) - 1);
                if (i + 1 < n) strncat(list, ", ", sizeof list - strlen(list) - 1);
            }
            etok_catalog_names_free(names, n);
        }
        etok_errc(err, ETOK_EXIT_INPUT, "unknown %s '%s' (known: %s)", label, name, *list ? list : "none: catalog empty");
        return NULL;
    }
    size_t len = 0;
    char *text = etok_read_file_bounded(path, "catalog entry", ETOK_LIMIT_CATALOG, &len, err);
    if (!text) return NULL;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: %s", path, je.line, je.text);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        etok_errc(err, ETOK_EXIT_INPUT, "%s: must be a JSON object", path);
        return NULL;
    }
    return root;
}

json_t *jq_catalog_entry(const char *kind, const char *label, const char *name, char *path, size_t pn, etok_err *err) {
    return load_entry(kind, label, name, path, pn, err);
}

int etok_catalog_hardware(const char *name, etok_hw_spec *hw, etok_err *err) {
    char path[4096];
    memset(hw, 0, sizeof *hw);
    json_t *root = load_entry("hardware", "hardware", name, path, sizeof path, err);
    if (!root) return -1;
    static const char *const SRC[] = {"peak_flops", "mem_bw_bps", "mem_bytes", "max_power_w", "idle_power_w", NULL};
    int rc = (jq_known_keys(root, JQ_HW_KEYS, path, NULL, err) || jq_hardware(root, path, NULL, 1, hw, err) ||
              require_sources(root, path, SRC, err))
                 ? -1
                 : 0;
    if (!rc && !*hw->name) snprintf(hw->name, sizeof hw->name, "%s", name);
    json_decref(root);
    return rc;
}

/* ---------- models ---------- */

const char *const JQ_MODEL_KEYS[] = {"name", "display_name", "layers", "d_model", "n_heads", "n_kv_heads", "head_dim",
                                     "d_ff", "vocab", "tied_embeddings", "attention_window", "max_context", "moe", "mla",
                                     "default_weight_dtype", "default_kv_dtype", "params_total", "source", NULL};

static int get_dtype(json_t *o, const char *key, const char *what, const char *prefix, etok_dtype *out, etok_err *err) {
    json_t *v = json_object_get(o, key);
    if (!v) return 0;
    char f[128];
    fieldname(f, sizeof f, prefix, key);
    if (!json_is_string(v) || etok_dtype_parse(json_string_value(v), out)) {
        char list[256] = "";
        for (int i = 0; i < ETOK_DT_COUNT; i++) {
            strncat(list, etok_dtype_name((etok_dtype)i), sizeof list - strlen(list) - 1);
            if (i + 1 < ETOK_DT_COUNT) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: unknown data type %s%s%s (known: %s)", what, f,
                         json_is_string(v) ? "'" : "", json_is_string(v) ? json_string_value(v) : "(not a string)",
                         json_is_string(v) ? "'" : "", list);
    }
    return 0;
}

int jq_model(json_t *o, const char *what, const char *prefix, int req, etok_model_arch *m, etok_err *err) {
    const int BIG = 1 << 30;
    if (get_str(o, "name", what, prefix, m->name, sizeof m->name, err) ||
        get_str(o, "display_name", what, prefix, m->display_name, sizeof m->display_name, err) ||
        get_int(o, "layers", req, 1, BIG, what, prefix, &m->n_layers, err) ||
        get_int(o, "d_model", req, 1, BIG, what, prefix, &m->d_model, err) ||
        get_int(o, "n_heads", req, 1, BIG, what, prefix, &m->n_heads, err) ||
        get_int(o, "n_kv_heads", 0, 1, BIG, what, prefix, &m->n_kv_heads, err) ||
        get_int(o, "head_dim", 0, 1, BIG, what, prefix, &m->head_dim, err) ||
        get_int(o, "d_ff", req, 1, BIG, what, prefix, &m->d_ff, err) ||
        get_int(o, "vocab", req, 1, BIG, what, prefix, &m->vocab, err) ||
        get_int(o, "attention_window", 0, 0, BIG, what, prefix, &m->attention_window, err) ||
        get_int(o, "max_context", 0, 0, BIG, what, prefix, &m->max_context, err) ||
        get_dtype(o, "default_weight_dtype", what, prefix, &m->default_weight_dtype, err) ||
        get_dtype(o, "default_kv_dtype", what, prefix, &m->default_kv_dtype, err) ||
        get_num(o, "params_total", '1', 0, what, prefix, &m->params_total_card, err))
        return -1;
    json_t *t = json_object_get(o, "tied_embeddings");
    if (t) {
        char f[128];
        fieldname(f, sizeof f, prefix, "tied_embeddings");
        if (!json_is_boolean(t)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be true or false", what, f);
        m->tied_embeddings = json_is_true(t);
    }
    if (m->n_kv_heads == 0) m->n_kv_heads = m->n_heads;
    if (m->head_dim == 0 && m->n_heads > 0) m->head_dim = m->d_model / m->n_heads;
    json_t *moe = json_object_get(o, "moe");
    if (moe && !json_is_null(moe)) {
        char p[96];
        fieldname(p, sizeof p, prefix, "moe");
        static const char *const K[] = {"experts", "top_k", "shared_experts", "d_ff_expert", "dense_layers", NULL};
        if (!json_is_object(moe)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object", what, p);
        if (jq_known_keys(moe, K, what, p, err) || get_int(moe, "experts", 1, 1, BIG, what, p, &m->n_experts, err) ||
            get_int(moe, "top_k", 1, 1, BIG, what, p, &m->top_k, err) ||
            get_int(moe, "shared_experts", 0, 0, BIG, what, p, &m->n_shared_experts, err) ||
            get_int(moe, "d_ff_expert", 1, 1, BIG, what, p, &m->d_ff_expert, err) ||
            get_int(moe, "dense_layers", 0, 0, BIG, what, p, &m->n_dense_layers, err))
            return -1;
        if (m->top_k > m->n_experts)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s.top_k %d exceeds %s.experts %d", what, p, m->top_k, p, m->n_experts);
        if (m->n_dense_layers > m->n_layers)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s.dense_layers %d exceeds layers %d", what, p, m->n_dense_layers, m->n_layers);
    }
    json_t *mla = json_object_get(o, "mla");
    if (mla && !json_is_null(mla)) {
        char p[96];
        fieldname(p, sizeof p, prefix, "mla");
        static const char *const K[] = {"q_lora_rank", "kv_lora_rank", "qk_nope_head_dim", "qk_rope_head_dim", "v_head_dim", NULL};
        if (!json_is_object(mla)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object", what, p);
        if (jq_known_keys(mla, K, what, p, err) || get_int(mla, "q_lora_rank", 0, 0, BIG, what, p, &m->q_lora_rank, err) ||
            get_int(mla, "kv_lora_rank", 1, 1, BIG, what, p, &m->kv_lora_rank, err) ||
            get_int(mla, "qk_nope_head_dim", 1, 1, BIG, what, p, &m->qk_nope_head_dim, err) ||
            get_int(mla, "qk_rope_head_dim", 1, 0, BIG, what, p, &m->qk_rope_head_dim, err) ||
            get_int(mla, "v_head_dim", 1, 1, BIG, what, p, &m->v_head_dim, err))
            return -1;
    }
    return 0;
}

int etok_catalog_model(const char *name, etok_model_arch *m, etok_err *err) {
    char path[4096];
    memset(m, 0, sizeof *m);
    m->default_weight_dtype = ETOK_DT_BF16;
    m->default_kv_dtype = ETOK_DT_BF16;
    json_t *root = load_entry("models", "model", name, path, sizeof path, err);
    if (!root) return -1;
    static const char *const SRC[] = {"architecture", NULL};
    int rc = (jq_known_keys(root, JQ_MODEL_KEYS, path, NULL, err) || jq_model(root, path, NULL, 1, m, err) ||
              require_sources(root, path, SRC, err))
                 ? -1
                 : 0;
    if (!rc && m->params_total_card > 0) {
        json_t *src = json_object_get(root, "source");
        if (!json_is_string(json_object_get(src, "params_total")))
            rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: source.params_total: missing (every number needs a source)", path);
    }
    if (!rc && !*m->name) snprintf(m->name, sizeof m->name, "%s", name);
    json_decref(root);
    return rc;
}
