/* measurements.c — published energy/throughput measurements (data/measurements/NAME.json) that
 * `etok tpf --validate` holds the model against. Owns: the file format and its checks (a source
 * and an energy boundary for every set, the full conditions for every point: devices, replicas,
 * power limit, and a per-point energy boundary, gpu or system, with the rest of the system as
 * data), the scenario of a point and the model's figures at the point's boundary. Does not own:
 * the model (analyse/tpf.c) or the comparison output (cli/cmd_tpf.c). */
#include <math.h>
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
                                    "power_w", "calibrate", "devices_per_replica", "power_limit_w", "energy_boundary",
                                    "host_power_w", "host_power_uncertainty_w", "psu_efficiency", "host_power_source",
                                    NULL};
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
    /* Deployment: replicas of devices_per_replica, a per-device power limit. */
    m->devices_per_replica = m->devices;
    if ((v = json_object_get(p, "devices_per_replica"))) {
        if (jq_int(v, 1, m->devices, what, G("devices_per_replica"), &m->devices_per_replica, err)) return -1;
        if (m->devices % m->devices_per_replica)
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: %d does not divide devices (%d)", what, G("devices_per_replica"),
                             m->devices_per_replica, m->devices);
    }
    if ((v = json_object_get(p, "power_limit_w"))) {
        if (jq_number(v, 'P', what, G("power_limit_w"), &m->power_limit_w, err)) return -1;
        if (!(m->power_limit_w > 0 && m->power_limit_w <= 1e6))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be in (0, 1e6] W (got %g)", what, G("power_limit_w"),
                             m->power_limit_w);
    }
    /* Energy boundary: gpu (default) or system, which needs the rest of the system as data. */
    m->boundary = ETOK_BOUNDARY_GPU;
    m->psu_efficiency = 1;
    v = json_object_get(p, "energy_boundary");
    if (v) {
        const char *b = json_is_string(v) ? json_string_value(v) : NULL;
        if (b && !strcmp(b, "gpu")) m->boundary = ETOK_BOUNDARY_GPU;
        else if (b && !strcmp(b, "system")) m->boundary = ETOK_BOUNDARY_SYSTEM;
        else return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: expected \"gpu\" or \"system\"", what, G("energy_boundary"));
    }
    static const char *const sys_only[] = {"host_power_w", "host_power_uncertainty_w", "psu_efficiency", "host_power_source"};
    if (m->boundary == ETOK_BOUNDARY_GPU) {
        for (int k = 0; k < 4; k++)
            if (json_object_get(p, sys_only[k]))
                return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: only with \"energy_boundary\": \"system\"", what,
                                 G(sys_only[k]));
    } else {
        if (!(v = json_object_get(p, "host_power_w")))
            return etok_errc(err, ETOK_EXIT_INPUT,
                             "%s: missing field %s (the non-GPU power of the system at the wall, W; a system boundary needs it)",
                             what, G("host_power_w"));
        if (jq_number(v, 'P', what, G("host_power_w"), &m->host_power_w, err)) return -1;
        if (!(m->host_power_w >= 0 && m->host_power_w <= 1e6))
            return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be in [0, 1e6] W (got %g)", what, G("host_power_w"),
                             m->host_power_w);
        if (str_field(p, "host_power_source", what, G("host_power_source"), m->host_power_source,
                      sizeof m->host_power_source, err))
            return -1;
        if ((v = json_object_get(p, "host_power_uncertainty_w"))) {
            if (jq_number(v, 'P', what, G("host_power_uncertainty_w"), &m->host_power_uncertainty_w, err)) return -1;
            if (!(m->host_power_uncertainty_w >= 0 && m->host_power_uncertainty_w <= m->host_power_w))
                return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be in [0, host_power_w] (got %g)", what,
                                 G("host_power_uncertainty_w"), m->host_power_uncertainty_w);
        }
        if ((v = json_object_get(p, "psu_efficiency"))) {
            if (jq_number(v, '1', what, G("psu_efficiency"), &m->psu_efficiency, err)) return -1;
            if (!(m->psu_efficiency > 0 && m->psu_efficiency <= 1))
                return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be in (0, 1] (got %g)", what, G("psu_efficiency"),
                                 m->psu_efficiency);
        }
    }
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
    s->devices_per_replica = m->devices_per_replica > 0 ? m->devices_per_replica : m->devices;
    s->power_limit_w = m->power_limit_w;
    s->weight_dtype = m->weight_dtype;
    s->kv_dtype = m->kv_dtype;
    s->batch = m->batch;
    s->input_tokens = m->input_tokens;
    s->output_tokens = m->output_tokens;
    return 0;
}

void etok_measurement_at_boundary(const etok_measurement *m, const etok_tpf_result *r, double *joules_per_output_token,
                                  double *power_w, double *joules_lo, double *joules_hi) {
    double rate = r->token_rate_tps;
    double dev_w = r->joules_per_output_token * rate; /* the devices' modelled power (all of them) */
    double host = 0, du = 0, eff = 1;
    if (m->boundary == ETOK_BOUNDARY_SYSTEM) {
        host = m->host_power_w;
        du = m->host_power_uncertainty_w;
        eff = m->psu_efficiency > 0 ? m->psu_efficiency : 1;
    }
    double p = dev_w / eff + host;
    if (power_w) *power_w = p;
    if (joules_per_output_token) *joules_per_output_token = rate > 0 ? p / rate : NAN;
    if (joules_lo) *joules_lo = rate > 0 ? (p - du) / rate : NAN;
    if (joules_hi) *joules_hi = rate > 0 ? (p + du) / rate : NAN;
}
