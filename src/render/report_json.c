/* report_json.c — run.json: the run record plus a "metrics" object with every METRICS.md §3
 * figure, its unit, source, uncertainty, 95% CI and note. Formats; computes nothing. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "etok/report.h"

static json_t *num_or_null(double v) { return isfinite(v) ? json_real(v) : json_null(); }

static json_t *metric_obj(const etok_metric *x) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "value", x->valid ? num_or_null(x->value) : json_null());
    json_object_set_new(o, "unit", json_string(x->unit));
    json_object_set_new(o, "source", json_string(x->source));
    json_object_set_new(o, "uncertainty", num_or_null(x->uncertainty));
    if (isfinite(x->ci_lo) && isfinite(x->ci_hi)) json_object_set_new(o, "ci95", json_pack("[f,f]", x->ci_lo, x->ci_hi));
    else json_object_set_new(o, "ci95", json_null());
    if (x->note[0]) json_object_set_new(o, "note", json_string(x->note));
    return o;
}

static json_t *num_array(const double *v, size_t n) {
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, num_or_null(v[i]));
    return a;
}

char *etok_report_json(const etok_record *r, const etok_metrics *m) {
    char *rec = etok_record_to_json_text(r);
    if (!rec) return NULL;
    json_t *root = json_loads(rec, 0, NULL);
    free(rec);
    if (!root) return NULL;
    json_t *mo = json_object();
    for (size_t i = 0; i < m->n; i++) {
        const etok_metric *x = &m->m[i];
        if (!x->stat[0]) {
            json_object_set_new(mo, x->name, metric_obj(x));
            continue;
        }
        json_t *d = json_object_get(mo, x->name);
        if (!d) {
            d = json_object();
            json_object_set_new(mo, x->name, d);
        }
        json_object_set_new(d, x->stat, metric_obj(x));
    }
    json_object_set_new(mo, "phase_split_method", json_string(m->phase_split_method));
    json_object_set_new(mo, "binding_constraint", json_string(m->binding_constraint));
    json_object_set_new(mo, "tpf_binding_ceiling", json_string(m->tpf_binding_ceiling));
    json_object_set_new(mo, "quality_gate_met", json_boolean(m->quality_gate_met));
    json_object_set_new(mo, "energy_source", json_string(m->energy_source));
    json_object_set_new(mo, "energy_boundary", json_string(m->energy_boundary));
    json_object_set_new(mo, "energy_warning", m->energy_warning[0] ? json_string(m->energy_warning) : json_null());
    json_object_set_new(mo, "background_warning",
                        m->background_warning[0] ? json_string(m->background_warning) : json_null());
    json_object_set_new(mo, "energy_breakdown_j",
                        json_pack("{s:o, s:o, s:o}", "idle", num_or_null(m->breakdown_idle_j), "prefill",
                                  num_or_null(m->breakdown_prefill_j), "decode", num_or_null(m->breakdown_decode_j)));
    /* the plotted series, so other tools can redraw the figures */
    json_t *series = json_array();
    for (size_t i = 0; i < m->n_series; i++)
        json_array_append_new(series, json_pack("{s:f, s:o, s:f}", "t_s", m->series[i].t_s, "power_w",
                                                num_or_null(m->series[i].power_w), "token_rate_tps",
                                                m->series[i].token_rate_tps));
    json_object_set_new(mo, "series", json_pack("{s:f, s:o}", "bin_s", m->series_bin_s, "points", series));
    json_object_set_new(mo, "ttft_sorted_s", num_array(m->ttft_sorted_s, m->n_ttft));
    json_object_set_new(mo, "tpot_sorted_s", num_array(m->tpot_sorted_s, m->n_tpot));
    json_object_set_new(root, "metrics", mo);
    char *out = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(17));
    json_decref(root);
    return out;
}
