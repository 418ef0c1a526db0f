/* scenario.c — scenario files for `etok tpf`: JSON whose `hardware` and `model` are catalog
 * names or inline objects, plus workload, facility, utilization, phi, levers. Owns: the
 * scenario grammar and its validation (unknown fields, units, ranges, unknown catalog
 * names). Does not own: the catalog format (catalog.c) or the model (analyse/tpf.c), which
 * checks what only the model can know (a model that does not fit, a batch whose KV cache
 * does not fit). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scenario/jsonq.h"

static int has_any(json_t *o, const char *const *keys) {
    for (size_t i = 0; keys[i]; i++)
        if (strcmp(keys[i], "name") && strcmp(keys[i], "display_name") && strcmp(keys[i], "source") && json_object_get(o, keys[i]))
            return 1;
    return 0;
}

static int in_catalog(const char *kind, const char *name) {
    char path[4096];
    struct stat st;
    if (strchr(name, '/')) return 0;
    snprintf(path, sizeof path, "%s/%s/%s.json", etok_data_dir(), kind, name);
    return stat(path, &st) == 0;
}

/* A numeric field checked against the one table of limits (analyse/tpf_limits.c), the same
 * one --sweep and levers use. dim: the unit dimension (see etok_quantity_parse); whole-number
 * fields take no unit. */
static int get_limited(json_t *v, char dim, const char *what, const char *field, double *out, etok_err *err) {
    const etok_field_limit *l = etok_tpf_field_limit(field);
    if (l && l->range.integer && json_is_string(v))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be a whole number without a unit (got \"%s\")", what, field,
                         json_string_value(v));
    double x;
    if (jq_number(v, dim, what, field, &x, err)) return -1;
    etok_err e = {0};
    if (etok_tpf_check_field(field, x, &e)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s", what, e.msg);
    *out = x;
    return 0;
}

static int get_limited_int(json_t *v, const char *what, const char *field, int *out, etok_err *err) {
    double x;
    if (get_limited(v, '1', what, field, &x, err)) return -1;
    *out = (int)x;
    return 0;
}

/* A catalog lookup made for a scenario field: its error names the scenario file and field too. */
static int from_catalog(int rc, const char *what, const char *field, etok_err *err) {
    if (rc == 0) return 0;
    char m[sizeof err->msg];
    if (snprintf(m, sizeof m, "%s: %s: %s", what, field, err->msg) < 0) m[0] = '\0';
    memcpy(err->msg, m, sizeof m);
    if (!err->exit_code) err->exit_code = ETOK_EXIT_INPUT;
    return -1;
}

static int parse_hardware(json_t *h, const char *what, etok_tpf_scenario *s, etok_err *err) {
    if (json_is_string(h)) return from_catalog(etok_catalog_hardware(json_string_value(h), &s->hw, err), what, "hardware", err);
    if (!json_is_object(h)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: hardware: must be a catalog name or an object", what);
    static const char *const DEPLOY[] = {"count", "devices_per_replica", "power_limit_w", "power_cap_w", "mem_usable_fraction", NULL};
    const char *keys[32];
    size_t k = 0;
    for (size_t i = 0; JQ_HW_KEYS[i]; i++) keys[k++] = JQ_HW_KEYS[i];
    for (size_t i = 0; DEPLOY[i]; i++) keys[k++] = DEPLOY[i];
    keys[k] = NULL;
    if (jq_known_keys(h, keys, what, "hardware", err)) return -1;
    json_t *name = json_object_get(h, "name");
    if (name && !json_is_string(name)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: hardware.name: must be a string", what);
    int inline_spec = has_any(h, JQ_HW_KEYS);
    if (name && (in_catalog("hardware", json_string_value(name)) || !inline_spec)) {
        /* A catalog entry, optionally with fields overridden inline. */
        if (from_catalog(etok_catalog_hardware(json_string_value(name), &s->hw, err), what, "hardware.name", err)) return -1;
        if (inline_spec && jq_hardware(h, what, "hardware", 0, &s->hw, err)) return -1;
    } else if (inline_spec) {
        memset(&s->hw, 0, sizeof s->hw);
        if (jq_hardware(h, what, "hardware", 1, &s->hw, err)) return -1;
        if (!*s->hw.name) snprintf(s->hw.name, sizeof s->hw.name, "inline");
    } else {
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: hardware: needs a catalog name or an inline specification", what);
    }
    json_t *v;
    if ((v = json_object_get(h, "count")) && get_limited_int(v, what, "hardware.count", &s->device_count, err)) return -1;
    if ((v = json_object_get(h, "devices_per_replica")) &&
        get_limited_int(v, what, "hardware.devices_per_replica", &s->devices_per_replica, err))
        return -1;
    if ((v = json_object_get(h, "mem_usable_fraction")) &&
        get_limited(v, '1', what, "hardware.mem_usable_fraction", &s->mem_usable_fraction, err))
        return -1;
    /* The per-device power limit set on the devices (power_cap_w: its earlier name). */
    if (json_object_get(h, "power_limit_w") && json_object_get(h, "power_cap_w"))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: hardware.power_cap_w is the old name of hardware.power_limit_w: give one", what);
    const char *lim = json_object_get(h, "power_limit_w") ? "hardware.power_limit_w" : "hardware.power_cap_w";
    if ((v = json_object_get(h, lim + strlen("hardware."))) && get_limited(v, 'P', what, lim, &s->power_limit_w, err))
        return -1;
    return 0;
}

static int parse_dtype_field(json_t *m, const char *key, const char *what, etok_dtype *out, int *set, etok_err *err) {
    json_t *v = json_object_get(m, key);
    if (!v) return 0;
    if (!json_is_string(v) || etok_dtype_parse(json_string_value(v), out)) {
        char list[256] = "";
        for (int i = 0; i < ETOK_DT_COUNT; i++) {
            strncat(list, etok_dtype_name((etok_dtype)i), sizeof list - strlen(list) - 1);
            if (i + 1 < ETOK_DT_COUNT) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: model.%s: unknown data type %s (known: %s)", what, key,
                         json_is_string(v) ? json_string_value(v) : "(not a string)", list);
    }
    if (set) *set = 1;
    return 0;
}

static int parse_model(json_t *m, const char *what, etok_tpf_scenario *s, etok_err *err) {
    if (json_is_string(m)) {
        if (from_catalog(etok_catalog_model(json_string_value(m), &s->model, err), what, "model", err)) return -1;
        s->weight_dtype = s->model.default_weight_dtype;
        s->kv_dtype = s->model.default_kv_dtype;
        return 0;
    }
    if (!json_is_object(m)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: model: must be a catalog name or an object", what);
    static const char *const USE[] = {"weight_dtype", "kv_dtype", "compute_dtype", NULL};
    const char *keys[40];
    size_t k = 0;
    for (size_t i = 0; JQ_MODEL_KEYS[i]; i++) keys[k++] = JQ_MODEL_KEYS[i];
    for (size_t i = 0; USE[i]; i++) keys[k++] = USE[i];
    keys[k] = NULL;
    if (jq_known_keys(m, keys, what, "model", err)) return -1;
    json_t *name = json_object_get(m, "name");
    if (name && !json_is_string(name)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: model.name: must be a string", what);
    int inline_spec = has_any(m, JQ_MODEL_KEYS);
    if (name && (in_catalog("models", json_string_value(name)) || !inline_spec)) {
        if (from_catalog(etok_catalog_model(json_string_value(name), &s->model, err), what, "model.name", err)) return -1;
        if (inline_spec && jq_model(m, what, "model", 0, &s->model, err)) return -1;
    } else if (inline_spec) {
        memset(&s->model, 0, sizeof s->model);
        s->model.default_weight_dtype = ETOK_DT_BF16;
        s->model.default_kv_dtype = ETOK_DT_BF16;
        if (jq_model(m, what, "model", 1, &s->model, err)) return -1;
        if (!*s->model.name) snprintf(s->model.name, sizeof s->model.name, "inline");
    } else {
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: model: needs a catalog name or an inline architecture", what);
    }
    s->weight_dtype = s->model.default_weight_dtype;
    s->kv_dtype = s->model.default_kv_dtype;
    if (parse_dtype_field(m, "weight_dtype", what, &s->weight_dtype, NULL, err) ||
        parse_dtype_field(m, "kv_dtype", what, &s->kv_dtype, NULL, err) ||
        parse_dtype_field(m, "compute_dtype", what, &s->compute_dtype, &s->compute_dtype_set, err))
        return -1;
    return 0;
}

static int parse_workload(json_t *w, const char *what, etok_tpf_scenario *s, etok_err *err) {
    if (!json_is_object(w)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: workload: must be an object", what);
    static const char *const K[] = {"input_tokens", "output_tokens", "batch", NULL};
    if (jq_known_keys(w, K, what, "workload", err)) return -1;
    json_t *v;
    if ((v = json_object_get(w, "input_tokens")) && get_limited_int(v, what, "workload.input_tokens", &s->input_tokens, err)) return -1;
    if ((v = json_object_get(w, "output_tokens")) && get_limited_int(v, what, "workload.output_tokens", &s->output_tokens, err))
        return -1;
    if ((v = json_object_get(w, "batch"))) {
        if (json_is_string(v) && !strcmp(json_string_value(v), "max")) s->batch = 0;
        else if (get_limited_int(v, what, "workload.batch", &s->batch, err)) return -1;
    }
    return 0;
}

static int parse_facility(json_t *f, const char *what, etok_tpf_scenario *s, etok_err *err) {
    if (json_is_null(f)) return 0;
    if (!json_is_object(f)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: facility: must be an object", what);
    static const char *const K[] = {"power_w", "pue", "cooling_w", "theta", NULL};
    if (jq_known_keys(f, K, what, "facility", err)) return -1;
    json_t *v = json_object_get(f, "power_w");
    if (!v) return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field facility.power_w (W)", what);
    s->has_facility = 1;
    if (get_limited(v, 'P', what, "facility.power_w", &s->facility_power_w, err)) return -1;
    if ((v = json_object_get(f, "pue")) && get_limited(v, '1', what, "facility.pue", &s->pue, err)) return -1;
    if ((v = json_object_get(f, "cooling_w")) && get_limited(v, 'P', what, "facility.cooling_w", &s->cooling_w, err)) return -1;
    if ((v = json_object_get(f, "theta")) && get_limited(v, '1', what, "facility.theta", &s->theta, err)) return -1;
    return 0;
}

int etok_scenario_from_json_text(const char *text, const char *what, etok_scenario_file *o, etok_err *err) {
    memset(o, 0, sizeof *o);
    etok_tpf_scenario_init(&o->s);
    o->price_per_kwh = -1;
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: not valid JSON: %s", what, je.line, je.text);
    int rc = -1;
    static const char *const K[] = {"name", "description", "hardware", "model", "workload", "facility", "utilization",
                                    "phi", "levers", "price_per_kwh", "source", NULL};
    json_t *v;
    if (!json_is_object(root)) { etok_errc(err, ETOK_EXIT_INPUT, "%s: must be a JSON object", what); goto out; }
    if (jq_known_keys(root, K, what, NULL, err)) goto out;
    if ((v = json_object_get(root, "name")) && json_is_string(v)) snprintf(o->name, sizeof o->name, "%s", json_string_value(v));
    if ((v = json_object_get(root, "description")) && json_is_string(v))
        snprintf(o->description, sizeof o->description, "%s", json_string_value(v));
    if (!(v = json_object_get(root, "hardware"))) { etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field hardware", what); goto out; }
    if (parse_hardware(v, what, &o->s, err)) goto out;
    if (!(v = json_object_get(root, "model"))) { etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field model", what); goto out; }
    if (parse_model(v, what, &o->s, err)) goto out;
    if ((v = json_object_get(root, "workload")) && parse_workload(v, what, &o->s, err)) goto out;
    if ((v = json_object_get(root, "facility")) && parse_facility(v, what, &o->s, err)) goto out;
    if ((v = json_object_get(root, "utilization")) && get_limited(v, '1', what, "utilization", &o->s.utilization, err)) goto out;
    if ((v = json_object_get(root, "phi")) && get_limited(v, '1', what, "phi", &o->s.phi_system, err)) goto out;
    if ((v = json_object_get(root, "price_per_kwh")) && get_limited(v, '1', what, "price_per_kwh", &o->price_per_kwh, err)) goto out;
    if ((v = json_object_get(root, "levers"))) {
        if (!json_is_array(v)) { etok_errc(err, ETOK_EXIT_INPUT, "%s: levers: must be an array of lever names", what); goto out; }
        size_t i;
        json_t *l;
        json_array_foreach(v, i, l) {
            if (!json_is_string(l) || strlen(json_string_value(l)) >= sizeof o->levers[0]) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: levers[%zu]: must be a lever name such as \"fp8\" or \"batch=64\"", what, i);
                goto out;
            }
            if (o->n_levers >= ETOK_SCENARIO_MAX_LEVERS) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: levers: at most %d", what, ETOK_SCENARIO_MAX_LEVERS);
                goto out;
            }
            /* Check the lever name now so the error names the file. */
            etok_tpf_scenario probe = o->s;
            etok_err le = {0};
            if (etok_lever_apply(&probe, json_string_value(l), &le)) {
                etok_errc(err, ETOK_EXIT_INPUT, "%s: levers[%zu]: %s", what, i, le.msg);
                goto out;
            }
            snprintf(o->levers[o->n_levers++], sizeof o->levers[0], "%s", json_string_value(l));
        }
    }
    rc = 0;
out:
    json_decref(root);
    return rc;
}

int etok_scenario_load(const char *path, etok_scenario_file *o, etok_err *err) {
    char cat[4096];
    const char *p = path;
    struct stat st;
    if (stat(path, &st) != 0 && !strchr(path, '/') && in_catalog("scenarios", path)) {
        snprintf(cat, sizeof cat, "%s/scenarios/%s.json", etok_data_dir(), path);
        p = cat;
    }
    char *text = etok_read_file_bounded(p, "scenario", ETOK_LIMIT_SCENARIO, NULL, err);
    if (!text) return -1;
    int rc = etok_scenario_from_json_text(text, p, o, err);
    free(text);
    return rc;
}
