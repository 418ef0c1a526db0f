/* measurements.c — published energy/throughput measurements (data/measurements/NAME.json) that
 * `etok tpf --validate` holds the model against. Owns: the file format and its checks (a source
 * and an energy boundary for every set, the full conditions for every point) and the scenario of a
 * point. Does not own: the model (analyse/tpf.c) or the comparison output (cli/cmd_tpf.c). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "scenario/jsonq.h"

static int str_field(json_t *o, const char *key, const char *what, const char *f, char *out, size_t n, etok_err *err) {
    json_t *v = json_object_get(o, key);
    if (!json_is_string(v) || !*json_string_value(v))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: missing or not a string", what, f);
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

static int parse_point(json_t *p, const char *what, size_t i, etok_measurement *m, etok_err *err) {
    static const char *const K[] = {"id", "hardware", "devices", "model", "weight_dtype", "kv_dtype", "batch",
                                    "input_tokens", "output_tokens", "joules_per_output_token", "output_tokens_per_s",
                                    "power_w", "calibrate", NULL};
    char f[64], g[96];
    snprintf(f, sizeof f, "points[%zu]", i);
    if (!json_is_object(p)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be an object", what, f);
    if (jq_known_keys(p, K, what, f, err)) return -1;
#define G(k) (snprintf(g, sizeof g, "%s.%s", f, k), g)
    if (str_field(p, "id", what, G("id"), m->id, sizeof m->id, err) ||
        str_field(p, "hardware", what, G("hardware"), m->hardware, sizeof m->hardware, err) ||
        str_field(p, "model", what, G("model"), m->model, sizeof m->model, err))
        return -1;
    const char *ik[] = {"devices", "batch", "input_tokens", "output_tokens"};
    int *iv[] = {&m->devices, &m->batch, &m->input_tokens, &m->output_tokens};
    for (int k = 0; k < 4; k++) {
        json_t *v = json_object_get(p, ik[k]);
        if (!v) return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s", what, G(ik[k]));
        if (jq_int(v, k == 2 ? 0 : 1, 100000000, what, G(ik[k]), iv[k], err)) return -1;
    }
    const char *dk[] = {"weight_dtype", "kv_dtype"};
    etok_dtype *dv[] = {&m->weight_dtype, &m->kv_dtype};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(p, dk[k]);
        if (!json_is_string(v) || etok_dtype_parse(json_string_value(v), dv[k]))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: missing or not a data type (bf16, fp8, ...)", what, G(dk[k]));
    }
    const char *nk[] = {"joules_per_output_token", "output_tokens_per_s"};
    double *nv[] = {&m->joules_per_output_token, &m->output_tps};
    for (int k = 0; k < 2; k++) {
        json_t *v = json_object_get(p, nk[k]);
        if (!v) return etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s", what, G(nk[k]));
        if (jq_number(v, '1', what, G(nk[k]), nv[k], err)) return -1;
        if (!(*nv[k] > 0)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be > 0 (got %g)", what, G(nk[k]), *nv[k]);
    }
    json_t *v = json_object_get(p, "power_w");
    if (v && (jq_number(v, 'P', what, G("power_w"), &m->power_w, err) || m->power_w < 0)) {
        if (m->power_w < 0) etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be >= 0", what, G("power_w"));
        return -1;
    }
    v = json_object_get(p, "calibrate");
    if (!json_is_boolean(v))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: missing: true (used to calibrate) or false (held out)", what, G("calibrate"));
    m->calibrate = json_is_true(v);
#undef G
    return 0;
}

int etok_measurements_load(const char *path, etok_measurement_set *o, etok_err *err) {
    memset(o, 0, sizeof *o);
    char cat[4096];
    const char *p = path;
    struct stat st;
    if (stat(path, &st) != 0 && !strchr(path, '/')) {
        snprintf(cat, sizeof cat, "%s/measurements/%s.json", etok_data_dir(), path);
        p = cat;
    }
    char *text = etok_read_file_bounded(p, "measurement file", ETOK_LIMIT_CATALOG, NULL, err);
    if (!text) return -1;
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    free(text);
    if (!root) return etok_errc(err, ETOK_EXIT_INPUT, "%s:%d: not valid JSON: %s", p, je.line, je.text);
    int rc = -1;
    static const char *const K[] = {"name", "description", "source", "conditions", "calibration_split", "points", NULL};
    if (!json_is_object(root)) { etok_errc(err, ETOK_EXIT_INPUT, "%s: must be a JSON object", p); goto out; }
    if (jq_known_keys(root, K, p, NULL, err)) goto out;
    json_t *src = json_object_get(root, "source"), *cond = json_object_get(root, "conditions");
    if (str_field(root, "name", p, "name", o->name, sizeof o->name, err) ||
        str_field(root, "description", p, "description", o->description, sizeof o->description, err))
        goto out;
    if (!json_is_object(src) || str_field(src, "title", p, "source.title", o->source_title, sizeof o->source_title, err) ||
        str_field(src, "url", p, "source.url", o->source_url, sizeof o->source_url, err)) {
        if (!json_is_object(src)) etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field source (title, url)", p);
        goto out;
    }
    if (!json_is_object(cond) ||
        str_field(cond, "energy_boundary", p, "conditions.energy_boundary", o->energy_boundary, sizeof o->energy_boundary, err)) {
        if (!json_is_object(cond)) etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field conditions (energy_boundary, ...)", p);
        goto out;
    }
    json_t *pts = json_object_get(root, "points");
    if (!json_is_array(pts) || json_array_size(pts) == 0 || json_array_size(pts) > 100000) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: points: must be a non-empty array", p);
        goto out;
    }
    o->points = calloc(json_array_size(pts), sizeof *o->points);
    if (!o->points) { etok_errc(err, ETOK_EXIT_FAIL, "%s: out of memory", p); goto out; }
    size_t i;
    json_t *pt;
    json_array_foreach(pts, i, pt) {
        if (parse_point(pt, p, i, &o->points[i], err)) goto out;
        o->n++;
    }
    rc = 0;
out:
    json_decref(root);
    if (rc) etok_measurement_set_free(o);
    return rc;
}

void etok_measurement_set_free(etok_measurement_set *set) {
    if (!set) return;
    free(set->points);
    set->points = NULL;
    set->n = 0;
}

int etok_measurement_scenario(const etok_measurement *m, etok_tpf_scenario *s, etok_err *err) {
    etok_tpf_scenario_init(s);
    etok_err e = {0};
    if (etok_catalog_hardware(m->hardware, &s->hw, &e) || etok_catalog_model(m->model, &s->model, &e))
        return etok_errc(err, e.exit_code ? e.exit_code : ETOK_EXIT_INPUT, "measurement %s: %s", m->id, e.msg);
    s->device_count = m->devices;
    s->devices_per_replica = m->devices;
    s->weight_dtype = m->weight_dtype;
    s->kv_dtype = m->kv_dtype;
    s->batch = m->batch;
    s->input_tokens = m->input_tokens;
    s->output_tokens = m->output_tokens;
    return 0;
}
