/* test_record_io.c — the run record's JSON: round trip at full precision, validation of
 * saved records against docs/record.schema.json, and malformed records refused with the
 * first bad field named.
 *
 * The schema check is a small JSON Schema (draft 2020-12) validator over the keywords the
 * schema uses (type, const, enum, required, properties, additionalProperties, items,
 * prefixItems, minItems, maxItems, minimum, maximum, exclusiveMinimum, $ref to #/$defs/);
 * an unsupported keyword fails the test, so the schema cannot silently outgrow the check. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <glob.h>
#include <unistd.h>

#include "etok/record.h"

/* ---- mini JSON Schema validator ------------------------------------------------------ */

static int type_ok(const char *ty, json_t *v) {
    if (!strcmp(ty, "object")) return json_is_object(v);
    if (!strcmp(ty, "array")) return json_is_array(v);
    if (!strcmp(ty, "string")) return json_is_string(v);
    if (!strcmp(ty, "integer")) return json_is_integer(v);
    if (!strcmp(ty, "number")) return json_is_number(v);
    if (!strcmp(ty, "boolean")) return json_is_boolean(v);
    if (!strcmp(ty, "null")) return json_is_null(v);
    return 0;
}

static int validate(json_t *root, json_t *sch, json_t *v, const char *path, char *why, size_t cap) {
    const char *key;
    json_t *kw;
    json_object_foreach(sch, key, kw) {
        if (!strcmp(key, "$schema") || !strcmp(key, "$id") || !strcmp(key, "title") || !strcmp(key, "description") ||
            !strcmp(key, "$defs"))
            continue;
        if (!strcmp(key, "$ref")) {
            const char *ref = json_string_value(kw);
            if (!ref || strncmp(ref, "#/$defs/", 8) != 0) { snprintf(why, cap, "unsupported $ref"); return -1; }
            json_t *target = json_object_get(json_object_get(root, "$defs"), ref + 8);
            if (!target) { snprintf(why, cap, "%s: dangling $ref %s", path, ref); return -1; }
            if (validate(root, target, v, path, why, cap) != 0) return -1;
        } else if (!strcmp(key, "type")) {
            int ok = 0;
            if (json_is_string(kw)) ok = type_ok(json_string_value(kw), v);
            else {
                size_t i;
                json_t *t;
                json_array_foreach(kw, i, t) ok |= type_ok(json_string_value(t), v);
            }
            if (!ok) { snprintf(why, cap, "%s: wrong type", path); return -1; }
        } else if (!strcmp(key, "const")) {
            if (!json_equal(kw, v)) { snprintf(why, cap, "%s: not the const", path); return -1; }
        } else if (!strcmp(key, "enum")) {
            int ok = 0;
            size_t i;
            json_t *e;
            json_array_foreach(kw, i, e) ok |= json_equal(e, v);
            if (!ok) { snprintf(why, cap, "%s: not in enum", path); return -1; }
        } else if (!strcmp(key, "required")) {
            if (!json_is_object(v)) continue;
            size_t i;
            json_t *e;
            json_array_foreach(kw, i, e) if (!json_object_get(v, json_string_value(e))) {
                snprintf(why, cap, "%s: missing required %s", path, json_string_value(e));
                return -1;
            }
        } else if (!strcmp(key, "properties")) {
            if (!json_is_object(v)) continue;
            const char *pk;
            json_t *ps;
            json_object_foreach(kw, pk, ps) {
                json_t *pv = json_object_get(v, pk);
                if (!pv) continue;
                char sub[256];
                snprintf(sub, sizeof sub, "%s.%s", path, pk);
                if (validate(root, ps, pv, sub, why, cap) != 0) return -1;
            }
        } else if (!strcmp(key, "additionalProperties")) {
            if (!json_is_object(v) || !json_is_false(kw)) {
                if (!json_is_boolean(kw)) { snprintf(why, cap, "unsupported additionalProperties"); return -1; }
                continue;
            }
            const char *vk;
            json_t *vv;
            json_object_foreach(v, vk, vv) if (!json_object_get(json_object_get(sch, "properties"), vk)) {
                snprintf(why, cap, "%s: unexpected property %s", path, vk);
                return -1;
            }
        } else if (!strcmp(key, "items") || !strcmp(key, "prefixItems")) {
            if (!json_is_array(v)) continue;
            size_t np = json_array_size(json_object_get(sch, "prefixItems"));
            size_t i;
            json_t *e;
            json_array_foreach(v, i, e) {
                char sub[256];
                snprintf(sub, sizeof sub, "%s[%zu]", path, i);
                json_t *s = NULL;
                if (!strcmp(key, "prefixItems") && i < np) s = json_array_get(kw, i);
                if (!strcmp(key, "items") && i >= np) s = kw;
                if (s && validate(root, s, e, sub, why, cap) != 0) return -1;
            }
        } else if (!strcmp(key, "minItems") || !strcmp(key, "maxItems")) {
            if (!json_is_array(v)) continue;
            size_t n = json_array_size(v), lim = (size_t)json_integer_value(kw);
            if (key[1] == 'i' ? n < lim : n > lim) { snprintf(why, cap, "%s: %s", path, key); return -1; }
        } else if (!strcmp(key, "minimum") || !strcmp(key, "maximum") || !strcmp(key, "exclusiveMinimum")) {
            if (!json_is_number(v)) continue;
            double x = json_number_value(v), lim = json_number_value(kw);
            int ok = !strcmp(key, "minimum") ? x >= lim : !strcmp(key, "maximum") ? x <= lim : x > lim;
            if (!ok) { snprintf(why, cap, "%s: %s", path, key); return -1; }
        } else {
            snprintf(why, cap, "schema keyword %s not supported by the test's validator", key);
            return -1;
        }
    }
    return 0;
}

static json_t *load_schema(void) {
    json_error_t je;
    json_t *s = json_load_file("docs/record.schema.json", 0, &je);
    if (!s) fail_msg("docs/record.schema.json: %s (line %d)", je.text, je.line);
    return s;
}

static int schema_check(json_t *schema, const char *text, char *why, size_t cap) {
    json_t *v = json_loads(text, 0, NULL);
    if (!v) { snprintf(why, cap, "not JSON"); return -1; }
    int rc = validate(schema, schema, v, "$", why, cap);
    json_decref(v);
    return rc;
}

/* ---- a record with every field set --------------------------------------------------- */

static void full_record(etok_record *r) {
    etok_record_init(r);
    snprintf(r->tool_version, sizeof r->tool_version, "0.1.0");
    snprintf(r->kind, sizeof r->kind, "run");
    snprintf(r->command, sizeof r->command, "sh -c 'echo \"tokens: 42\"'");
    snprintf(r->host, sizeof r->host, "box");
    snprintf(r->kernel, sizeof r->kernel, "6.1.0");
    snprintf(r->cpu_model, sizeof r->cpu_model, "Some CPU @ 2.1GHz");
    r->cpu_count = 8;
    r->t0_wall_s = 1764095400.123456789;
    r->idle_start_s = 0.001;
    r->idle_end_s = 5.0000001;
    r->window_start_s = 5.1;
    r->window_end_s = 0.1 + 0.2 + 10; /* not representable exactly: must survive anyway */
    r->partial = 1;
    snprintf(r->stop_reason, sizeof r->stop_reason, "interrupted");
    r->exit_status = 130;
    r->pue = 1.35;
    r->price_per_kwh = 0.31;
    r->quality_target = 0.8;
    r->ttft_slo_s = 0.5;
    r->tpot_slo_s = 0.05;
    r->deployment_utilization = 0.4;
    /* strings that look like the writer's internal sample placeholders must stay strings */
    r->config_json = strdup("{\"idle_s\":5,\"meters\":[\"estimate\"],\"samples\":\"\\u0001S0\"}");
    r->tokens_known = 1;
    r->tokens_in = 12;
    r->tokens_out = 5000000000LL;
    snprintf(r->hw.name, sizeof r->hw.name, "cpu");
    r->hw.peak_flops = 1.5e12;
    r->hw.mem_bw_bps = 2.5e10;
    r->hw.power_limit_w = 0;
    snprintf(r->hw.source, sizeof r->hw.source, "probe");

    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "rapl");
    snprintf(t->domain, sizeof t->domain, "package-0");
    t->source = ETOK_SOURCE_COUNTER;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "uJ");
    t->scale_to_si = 1e-6;
    t->wrap_range_raw = 262143328850.0;
    t->resolution_si = 6.103515625e-05;
    t->update_period_s = 0.001;
    t->summable = 1;
    for (int i = 0; i < 50; i++) etok_trace_add_sample(t, i * 0.1 + 1e-9, fmod(262143328850.0 - 1e6 + i * 123457.0, 262143328850.0)); /* wraps, as RAPL does */
    t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "nvml");
    snprintf(t->domain, sizeof t->domain, "gpu0");
    t->source = ETOK_SOURCE_POWER;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "mW");
    t->scale_to_si = 1e-3;
    t->resolution_si = 1e-3;
    t->update_period_s = 0.1;
    t->summable = 1;
    snprintf(t->power_field, sizeof t->power_field, "instant");
    etok_trace_add_sample(t, 0.0, 71234.0);
    etok_trace_add_sample(t, 0.1, 1.0 / 3.0);
    t = etok_record_add_trace(r); /* a trace with no samples is legal */
    snprintf(t->meter, sizeof t->meter, "estimate");
    snprintf(t->domain, sizeof t->domain, "\001S1");
    t->source = ETOK_SOURCE_ESTIMATE;
    t->boundary = ETOK_BOUNDARY_NODE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "W");
    t->scale_to_si = 1;
    t->error_band = 0.25;

    etok_record_add_fault(r, 3.25, "nvml", "gpu0", "device_lost", "GPU fell off the bus (NVML_ERROR_GPU_IS_LOST)");
    etok_step *s = etok_record_add_step(r);
    s->t_start_s = 5.2;
    s->t_end_s = 5.3;
    s->prefill_tokens = 12;
    s->decode_tokens = 1;
    s->flops = 3.3e9;
    s->bytes = 7.1e7;
    etok_request *q = etok_record_add_request(r);
    snprintf(q->id, sizeof q->id, "req-0");
    q->t_send_s = 5.1;
    q->t_first_token_s = 5.3;
    q->t_done_s = 6.0;
    q->tokens_in = 12;
    q->tokens_out = 3;
    q->token_times_s = malloc(3 * sizeof(double));
    q->token_times_s[0] = 5.3;
    q->token_times_s[1] = 5.65;
    q->token_times_s[2] = 6.0;
    q->n_token_times = 3;
    q->ok = 1;
    q->quality_checked = 1;
    q->quality_pass = 1;
    q->output = strdup("Paris.\n\"quoted\" \xc3\xa9");
    q->energy_j = 12.5;
    snprintf(q->token_count_source, sizeof q->token_count_source, "engine");
    q = etok_record_add_request(r); /* a failed one, output NULL, never sent times */
    snprintf(q->id, sizeof q->id, "req-1");
    snprintf(q->error, sizeof q->error, "connection refused");
}

static void assert_same_record(const etok_record *a, const etok_record *b) {
    assert_int_equal(a->schema_version, b->schema_version);
    assert_string_equal(a->command, b->command);
    assert_string_equal(a->cpu_model, b->cpu_model);
    assert_int_equal(a->cpu_count, b->cpu_count);
    assert_true(a->t0_wall_s == b->t0_wall_s);
    assert_true(a->idle_start_s == b->idle_start_s && a->idle_end_s == b->idle_end_s);
    assert_true(a->window_start_s == b->window_start_s && a->window_end_s == b->window_end_s);
    assert_int_equal(a->partial, b->partial);
    assert_string_equal(a->stop_reason, b->stop_reason);
    assert_int_equal(a->exit_status, b->exit_status);
    assert_true(a->pue == b->pue && a->price_per_kwh == b->price_per_kwh);
    assert_true(a->quality_target == b->quality_target && a->deployment_utilization == b->deployment_utilization);
    assert_true(a->ttft_slo_s == b->ttft_slo_s && a->tpot_slo_s == b->tpot_slo_s);
    assert_string_equal(a->pue_source, b->pue_source);
    assert_int_equal(a->tokens_known, b->tokens_known);
    assert_true(a->tokens_in == b->tokens_in && a->tokens_out == b->tokens_out);
    assert_string_equal(a->hw.name, b->hw.name);
    assert_true(a->hw.peak_flops == b->hw.peak_flops && a->hw.mem_bw_bps == b->hw.mem_bw_bps);
    assert_int_equal(a->n_traces, b->n_traces);
    for (size_t i = 0; i < a->n_traces; i++) {
        const etok_trace *x = &a->traces[i], *y = &b->traces[i];
        assert_string_equal(x->meter, y->meter);
        assert_string_equal(x->domain, y->domain);
        assert_int_equal(x->source, y->source);
        assert_int_equal(x->boundary, y->boundary);
        assert_string_equal(x->raw_unit, y->raw_unit);
        assert_true(x->scale_to_si == y->scale_to_si && x->wrap_range_raw == y->wrap_range_raw);
        assert_true(x->resolution_si == y->resolution_si && x->update_period_s == y->update_period_s);
        assert_true(x->error_band == y->error_band);
        assert_int_equal(x->summable, y->summable);
        assert_string_equal(x->power_field, y->power_field);
        assert_int_equal(x->n_samples, y->n_samples);
        for (size_t k = 0; k < x->n_samples; k++) {
            assert_true(x->samples[k].t_s == y->samples[k].t_s);
            assert_true(x->samples[k].raw == y->samples[k].raw);
        }
    }
    assert_int_equal(a->n_faults, b->n_faults);
    for (size_t i = 0; i < a->n_faults; i++) {
        assert_true(a->faults[i].t_s == b->faults[i].t_s);
        assert_string_equal(a->faults[i].kind, b->faults[i].kind);
        assert_string_equal(a->faults[i].message, b->faults[i].message);
    }
    assert_int_equal(a->n_steps, b->n_steps);
    for (size_t i = 0; i < a->n_steps; i++) assert_memory_equal(&a->steps[i], &b->steps[i], sizeof(etok_step));
    assert_int_equal(a->n_requests, b->n_requests);
    for (size_t i = 0; i < a->n_requests; i++) {
        const etok_request *x = &a->requests[i], *y = &b->requests[i];
        assert_string_equal(x->id, y->id);
        assert_true(x->t_send_s == y->t_send_s && x->t_first_token_s == y->t_first_token_s && x->t_done_s == y->t_done_s);
        assert_int_equal(x->tokens_in, y->tokens_in);
        assert_int_equal(x->tokens_out, y->tokens_out);
        assert_int_equal(x->n_token_times, y->n_token_times);
        for (size_t k = 0; k < x->n_token_times; k++) assert_true(x->token_times_s[k] == y->token_times_s[k]);
        assert_int_equal(x->ok, y->ok);
        assert_string_equal(x->error, y->error);
        assert_int_equal(x->quality_pass, y->quality_pass);
        if (x->output) assert_string_equal(x->output, y->output);
        else assert_null(y->output);
        assert_true(x->energy_j == y->energy_j);
        assert_string_equal(x->token_count_source, y->token_count_source);
    }
}

static void round_trip_keeps_every_field_exactly(void **state) {
    (void)state;
    etok_record a, b;
    full_record(&a);
    char *text = etok_record_to_json_text(&a);
    assert_non_null(text);
    /* samples are compact: one [t_s, raw] pair a line */
    char line[128];
    snprintf(line, sizeof line, "\n    [%.17g, %.17g]", a.traces[0].samples[7].t_s, a.traces[0].samples[7].raw);
    assert_non_null(strstr(text, line));
    etok_err err = {0};
    int rc = etok_record_from_json_text(&b, text, "mem", &err);
    if (rc != 0) fail_msg("%s", err.msg);
    assert_same_record(&a, &b);
    /* config survives as equivalent JSON */
    json_t *c1 = json_loads(a.config_json, 0, NULL), *c2 = json_loads(b.config_json, 0, NULL);
    assert_true(json_equal(c1, c2));
    json_decref(c1);
    json_decref(c2);
    /* and writing the loaded record gives the same text */
    char *text2 = etok_record_to_json_text(&b);
    assert_string_equal(text, text2);
    free(text);
    free(text2);
    etok_record_free(&a);
    etok_record_free(&b);
}

static void save_and_load_a_file(void **state) {
    (void)state;
    char path[] = "/tmp/etok-test-record-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    etok_record a, b;
    full_record(&a);
    etok_err err = {0};
    assert_int_equal(etok_record_save(&a, path, &err), 0);
    if (etok_record_load(&b, path, &err) != 0) fail_msg("%s", err.msg);
    assert_same_record(&a, &b);
    etok_record_free(&b);
    unlink(path);

    /* an unwritable path: error names it, exit code OUTPUT */
    memset(&err, 0, sizeof err);
    assert_int_equal(etok_record_save(&a, "/nonexistent-dir/x/run.json", &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_OUTPUT);
    assert_non_null(strstr(err.msg, "/nonexistent-dir/x/run.json"));
    /* a missing file */
    assert_int_equal(etok_record_load(&b, "/nonexistent-dir/run.json", &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    etok_record_free(&b);
    etok_record_free(&a);
}

static void non_finite_values(void **state) {
    (void)state;
    etok_record a, b;
    full_record(&a);
    a.hw.power_limit_w = NAN; /* unknown double: null, back as NAN */
    char *text = etok_record_to_json_text(&a);
    assert_non_null(text);
    assert_non_null(strstr(text, "\"power_limit_w\": null"));
    etok_err err = {0};
    assert_int_equal(etok_record_from_json_text(&b, text, "mem", &err), 0);
    assert_true(isnan(b.hw.power_limit_w));
    etok_record_free(&b);
    free(text);
    /* a NaN sample is a driver bug: refused, not written */
    a.traces[0].samples[3].raw = NAN;
    assert_null(etok_record_to_json_text(&a));
    assert_int_equal(etok_record_save(&a, "/tmp/etok-never-written.json", &err), -1);
    assert_non_null(strstr(err.msg, "traces[0].samples[3]"));
    assert_int_equal(access("/tmp/etok-never-written.json", F_OK), -1);
    etok_record_free(&a);
}

static void saved_records_match_the_schema(void **state) {
    (void)state;
    json_t *schema = load_schema();
    etok_record a;
    full_record(&a);
    char *text = etok_record_to_json_text(&a);
    char why[512] = "";
    if (schema_check(schema, text, why, sizeof why) != 0) fail_msg("full record: %s", why);
    free(text);
    etok_record_free(&a);
    /* the bare default record too */
    etok_record_init(&a);
    text = etok_record_to_json_text(&a);
    if (schema_check(schema, text, why, sizeof why) != 0) fail_msg("empty record: %s", why);
    free(text);
    etok_record_free(&a);

    /* the check is not vacuous: broken records fail it */
    const char *broken[] = {
        "{\"schema_version\": 1}",
        NULL,
    };
    assert_int_not_equal(schema_check(schema, broken[0], why, sizeof why), 0);
    full_record(&a);
    text = etok_record_to_json_text(&a);
    json_t *v = json_loads(text, 0, NULL);
    json_object_set_new(json_array_get(json_object_get(v, "traces"), 0), "source", json_string("guess"));
    char *t2 = json_dumps(v, 0);
    assert_int_not_equal(schema_check(schema, t2, why, sizeof why), 0);
    assert_non_null(strstr(why, "traces[0].source"));
    free(t2);
    json_decref(v);
    free(text);
    etok_record_free(&a);
    json_decref(schema);
}

/* Records committed as test fixtures (hand-built for other tests) must be valid records too:
 * they follow the schema and load. */
static void fixture_records_match_the_schema_and_load(void **state) {
    (void)state;
    json_t *schema = load_schema();
    glob_t g;
    int n = glob("tests/fixtures/records/*.json", 0, NULL, &g) == 0 ? (int)g.gl_pathc : 0;
    for (int i = 0; i < n; i++) {
        char *text = etok_read_file(g.gl_pathv[i], NULL);
        assert_non_null(text);
        char why[512] = "";
        if (schema_check(schema, text, why, sizeof why) != 0) fail_msg("%s: %s", g.gl_pathv[i], why);
        etok_record r;
        etok_err err = {0};
        if (etok_record_from_json_text(&r, text, g.gl_pathv[i], &err) != 0) fail_msg("%s", err.msg);
        etok_record_free(&r);
        free(text);
    }
    if (n) globfree(&g);
    /* a record with the reporting set added (etok bench's run.json) is still a record */
    etok_record a;
    full_record(&a);
    char *text = etok_record_to_json_text(&a);
    json_t *v = json_loads(text, 0, NULL);
    json_object_set_new(v, "metrics", json_pack("{s:f}", "joules_per_output_token", 0.5));
    char *t2 = json_dumps(v, JSON_INDENT(2));
    char why[512] = "";
    if (schema_check(schema, t2, why, sizeof why) != 0) fail_msg("record + metrics: %s", why);
    etok_record b;
    etok_err err = {0};
    assert_int_equal(etok_record_from_json_text(&b, t2, "run.json", &err), 0);
    assert_same_record(&a, &b);
    etok_record_free(&b);
    free(t2);
    json_decref(v);
    free(text);
    etok_record_free(&a);
    json_decref(schema);
}

/* Mutate a valid record's JSON, then expect load to fail naming the field. */
typedef struct {
    const char *pointer; /* a/b/0/c path into the JSON; last element replaced */
    const char *value;   /* JSON text, or NULL to delete */
    const char *expect;  /* substring of the error */
} mutation;

static json_t *walk(json_t *v, char *p, char **last) {
    char *save = NULL, *tok = strtok_r(p, "/", &save), *next;
    while (tok && (next = strtok_r(NULL, "/", &save))) {
        v = json_is_array(v) ? json_array_get(v, (size_t)atoi(tok)) : json_object_get(v, tok);
        tok = next;
    }
    *last = tok;
    return v;
}

static void malformed_records_name_the_first_bad_field(void **state) {
    (void)state;
    const mutation ms[] = {
        {"traces/0/samples/5", "[1.0]", "run.json: traces[0].samples[5]: expected [t_s, raw] numbers"},
        {"traces/0/samples/5", "[\"a\", 2]", "traces[0].samples[5]: expected [t_s, raw] numbers"},
        {"traces/0/samples/5", "[0.0, 2]", "traces[0].samples[5]: t_s 0 is before the previous sample"},
        {"schema_version", "2", "schema_version: 2 is newer than this etok understands (1)"},
        {"schema_version", "0", "schema_version: 0 is not a valid version"},
        {"schema_version", NULL, "schema_version: missing"},
        {"pue", "0.5", "pue: 0.5 out of range"},
        {"pue", "\"1.2\"", "pue: expected a number"},
        {"cpu_count", "2.5", "cpu_count: expected an integer"},
        {"partial", "1", "partial: expected true or false"},
        {"stop_reason", "7", "stop_reason: expected a string"},
        {"traces/1/source", "\"guess\"", "traces[1].source: expected one of"},
        {"traces/1/boundary", "\"planet\"", "traces[1].boundary: expected one of"},
        {"traces/0/scale_to_si", "0", "traces[0].scale_to_si: must be > 0"},
        {"traces/0/meter", "\"a-meter-name-that-is-far-too-long-for-the-field\"", "traces[0].meter: string too long"},
        {"traces/1/samples", NULL, "traces[1].samples: missing"},
        {"faults/0/kind", "7", "faults[0].kind: expected a string"},
        {"steps/0/decode_tokens", "-1", "steps[0].decode_tokens: -1 out of range"},
        {"requests/0/token_times_s/1", "\"x\"", "requests[0].token_times_s[1]: expected a number"},
        {"requests/1/output", "3", "requests[1].output: expected a string or null"},
        {"hw", "[]", "hw: expected an object"},
        {"window_end_s", "1.0", "window_end_s: before window_start_s"},
        {"pue_source", "\"guessed\"", "pue_source: expected \"assumed\" or \"measured\""},
        {"traces", "{}", "traces: expected an array"},
        /* physically impossible values (issue 9 §10): refused, never turned into negative J/token */
        {"traces/1/samples/1", "[0.1, -5000.0]", "traces[1].samples[1]: power -5000 mW is negative"},
        {"traces/1/samples/1", "[0.1, 2e16]", "traces[1].samples[1]: power 20000000000000000 mW (2e+13 W) is above the 1e+10 W limit"},
        {"traces/0/samples/3", "[0.3000000001, -1.0]", "traces[0].samples[3]: counter reading -1 uJ is negative"},
        {"traces/0/samples/3", "[0.3000000001, 262143328851.0]", "traces[0].samples[3]: counter reading 262143328851 uJ is beyond its wrap range"},
        {"traces/0/samples/3", "[1e12, 1.0]", "traces[0].samples[3]: t_s 1000000000000 is beyond"},
        {"traces/0/raw_unit", "\"kWh\"", "traces[0].raw_unit: \"kWh\" is not one of uJ, mJ, J"},
        {"traces/0/wrap_range_raw", "null", "traces[0].wrap_range_raw: must be a number (null is not allowed here)"},
        {"traces/0/wrap_range_raw", "-1.0", "traces[0].wrap_range_raw: -1 out of range"},
        {"traces/0/resolution_si", "null", "traces[0].resolution_si: must be a number"},
        {"traces/2/error_band", "null", "traces[2].error_band: must be a number"},
        {"pue", "null", "pue: must be a number (null is not allowed here)"},
        {"pue", "11.0", "pue: 11 out of range [1, 10]"},
        {"price_per_kwh", "-0.1", "price_per_kwh: -0.10000000000000001 out of range"},
        {"window_start_s", "null", "window_start_s: must be a number"},
        {"idle_end_s", "null", "idle_end_s: must be a number"},
        {"tokens_out", "-3", "tokens_out: -3 out of range"},
        {"steps/0/t_end_s", "5.0", "steps[0].t_end_s: before t_start_s"},
        {"steps/0/flops", "null", "steps[0].flops: must be a number"},
        {"requests/0/t_first_token_s", "5.0", "requests[0].t_first_token_s: 5 is before t_send_s 5.0999999999999996"},
        {"requests/0/t_done_s", "5.2", "requests[0].t_done_s: 5.2000000000000002 is before t_first_token_s"},
        {"requests/0/t_send_s", "null", "requests[0].t_send_s: must be a number"},
        {"requests/0/tokens_out", "-1", "requests[0].tokens_out: -1 out of range"},
        {"requests/0/token_times_s/2", "5.5", "requests[0].token_times_s[2]: 5.5 is before the previous token (5.6500000000000004)"},
    };
    etok_record a;
    full_record(&a);
    char *text = etok_record_to_json_text(&a);
    etok_record_free(&a);
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++) {
        json_t *v = json_loads(text, 0, NULL);
        char p[128], *last;
        snprintf(p, sizeof p, "%s", ms[i].pointer);
        json_t *parent = walk(v, p, &last);
        assert_non_null(parent);
        if (json_is_array(parent)) {
            if (ms[i].value) json_array_set_new(parent, (size_t)atoi(last), json_loads(ms[i].value, JSON_DECODE_ANY, NULL));
            else json_array_remove(parent, (size_t)atoi(last));
        } else {
            if (ms[i].value) json_object_set_new(parent, last, json_loads(ms[i].value, JSON_DECODE_ANY, NULL));
            else json_object_del(parent, last);
        }
        char *bad = json_dumps(v, 0);
        json_decref(v);
        etok_record b;
        etok_err err = {0};
        int rc = etok_record_from_json_text(&b, bad, "run.json", &err);
        free(bad);
        if (rc == 0) fail_msg("mutation %zu (%s) was accepted", i, ms[i].pointer);
        if (!strstr(err.msg, ms[i].expect)) fail_msg("mutation %zu: got '%s', want '%s'", i, err.msg, ms[i].expect);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
        assert_null(strchr(err.msg, '\n'));
        assert_int_equal(b.n_traces, 0); /* nothing half-loaded left behind */
        etok_record_free(&b);
    }
    free(text);

    /* not JSON at all: line and column */
    etok_record b;
    etok_err err = {0};
    assert_int_equal(etok_record_from_json_text(&b, "{\n \"schema_version\": 1,,\n}", "run.json", &err), -1);
    assert_non_null(strstr(err.msg, "run.json:2:"));
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_int_equal(etok_record_from_json_text(&b, "[1,2]", "run.json", &err), -1);
    assert_non_null(strstr(err.msg, "expected a JSON object"));
    assert_int_equal(etok_record_from_json_text(&b, "{\"a\":1,\"a\":2}", "run.json", &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(round_trip_keeps_every_field_exactly),
        cmocka_unit_test(save_and_load_a_file),
        cmocka_unit_test(non_finite_values),
        cmocka_unit_test(saved_records_match_the_schema),
        cmocka_unit_test(fixture_records_match_the_schema_and_load),
        cmocka_unit_test(malformed_records_name_the_first_bad_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
