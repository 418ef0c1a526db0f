/* test_scenario.c — catalogs (data/) and scenario files for etok tpf: every catalog entry
 * loads and has a source for every number, the parameter counts match the model cards,
 * scenario validation names the field, unit/dimension errors, unknown names list the catalog,
 * and --from-run replaces modelled figures by measured ones. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "etok/record.h"
#include "etok/scenario.h"
#include "etok/tpf.h"
#include "scenario/from_run.h"

static int has_name(char **names, size_t n, const char *want) {
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], want)) return 1;
    return 0;
}

static void catalogs_list_and_load(void **state) {
    (void)state;
    char **names;
    size_t n;
    etok_err err = {0};
    assert_int_equal(etok_catalog_names("hardware", &names, &n, &err), 0);
    const char *hw[] = {"a100-sxm-80gb", "h100-sxm", "h100-pcie", "h200", "b200", "l40s", "mi300x", "gaudi3", "cpu-generic"};
    for (size_t i = 0; i < sizeof hw / sizeof hw[0]; i++) {
        if (!has_name(names, n, hw[i])) fail_msg("hardware catalog lacks %s", hw[i]);
        etok_hw_spec h;
        if (etok_catalog_hardware(hw[i], &h, &err)) fail_msg("%s", err.msg);
        assert_true(h.peak_flops_bf16 > 0 && h.mem_bw_bps > 0 && h.mem_bytes > 0 && h.max_power_w > h.idle_power_w);
        /* dense, not sparse: no device in the catalog exceeds 2.5 PFLOP/s bf16 dense */
        assert_true(h.peak_flops_bf16 < 2.5e15);
    }
    etok_catalog_names_free(names, n);

    assert_int_equal(etok_catalog_names("models", &names, &n, &err), 0);
    /* default-model.sha256 lives in data/models too: only .json files are catalog entries */
    for (size_t i = 0; i < n; i++) assert_null(strstr(names[i], "sha256"));
    struct {
        const char *name;
        double active_card; /* 0 = dense */
    } models[] = {{"smollm2-135m", 0}, {"llama-3.1-8b", 0}, {"llama-3.1-70b", 0}, {"llama-3.1-405b", 0},
                  {"mixtral-8x7b", 12.9e9}, {"deepseek-v3", 37e9}, {"qwen2.5-7b", 0}};
    for (size_t i = 0; i < sizeof models / sizeof models[0]; i++) {
        if (!has_name(names, n, models[i].name)) fail_msg("model catalog lacks %s", models[i].name);
        etok_model_arch m;
        if (etok_catalog_model(models[i].name, &m, &err)) fail_msg("%s", err.msg);
        etok_tpf_model_stats st;
        assert_int_equal(etok_tpf_model_stats_compute(&m, ETOK_DT_BF16, ETOK_DT_BF16, &st), 0);
        /* The counted parameters agree with the model card within 1.5% (biases, norms excluded). */
        if (fabs(st.params_total / m.params_total_card - 1) > 0.015)
            fail_msg("%s: counted %.6g params, card %.6g", models[i].name, st.params_total, m.params_total_card);
        if (models[i].active_card > 0 && fabs(st.params_active / models[i].active_card - 1) > 0.025)
            fail_msg("%s: counted %.6g active, card %.6g", models[i].name, st.params_active, models[i].active_card);
    }
    etok_catalog_names_free(names, n);

    assert_int_equal(etok_catalog_names("scenarios", &names, &n, &err), 0);
    assert_true(n >= 4);
    for (size_t i = 0; i < n; i++) {
        etok_scenario_file sf;
        if (etok_scenario_load(names[i], &sf, &err)) fail_msg("%s", err.msg);
        etok_tpf_result r;
        if (etok_tpf_evaluate(&sf.s, -1, &r, &err)) fail_msg("%s: %s", names[i], err.msg);
    }
    etok_catalog_names_free(names, n);
}

static void unknown_names_list_the_catalog(void **state) {
    (void)state;
    etok_err err = {0};
    etok_hw_spec h;
    assert_int_equal(etok_catalog_hardware("h100", &h, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "unknown hardware 'h100'"));
    assert_non_null(strstr(err.msg, "h100-sxm"));
    assert_non_null(strstr(err.msg, "mi300x"));
    etok_scenario_file sf;
    assert_int_equal(etok_scenario_from_json_text("{\"hardware\": \"h100-sxm\", \"model\": {\"name\": \"llama-8b\"}}", "s.json",
                                                  &sf, &err),
                     -1);
    assert_non_null(strstr(err.msg, "unknown model 'llama-8b'"));
    assert_non_null(strstr(err.msg, "llama-3.1-8b"));
    assert_non_null(strstr(err.msg, "deepseek-v3"));
    /* path traversal is not a name */
    etok_model_arch m;
    assert_int_equal(etok_catalog_model("../models/llama-3.1-8b", &m, &err), -1);
    assert_non_null(strstr(err.msg, "must not contain '/'"));
}

static void quantities_and_dimensions(void **state) {
    (void)state;
    etok_err err = {0};
    double v;
    assert_int_equal(etok_quantity_parse("2 MW", 'P', "f", &v, &err), 0);
    assert_true(v == 2e6);
    assert_int_equal(etok_quantity_parse("80 GB", 'M', "f", &v, &err), 0);
    assert_true(v == 80e9);
    assert_int_equal(etok_quantity_parse("3.35 TB/s", 'B', "f", &v, &err), 0);
    assert_true(v == 3.35e12);
    assert_int_equal(etok_quantity_parse("989.4 TFLOP/s", 'F', "f", &v, &err), 0);
    assert_true(fabs(v - 989.4e12) < 1);
    assert_int_equal(etok_quantity_parse("1.2e6", 'P', "f", &v, &err), 0);
    assert_true(v == 1.2e6);
    /* wrong dimension */
    assert_int_equal(etok_quantity_parse("2 TB/s", 'P', "facility.power_w", &v, &err), -1);
    assert_non_null(strstr(err.msg, "facility.power_w"));
    assert_non_null(strstr(err.msg, "bandwidth"));
    assert_non_null(strstr(err.msg, "power (W)"));
    assert_int_equal(etok_quantity_parse("5 kWh", 'P', "facility.power_w", &v, &err), -1);
    assert_non_null(strstr(err.msg, "energy"));
    assert_int_equal(etok_quantity_parse("5 furlongs", 'P', "x", &v, &err), -1);
    assert_non_null(strstr(err.msg, "unknown unit"));

    /* In a scenario file the error names the file and the field. */
    etok_scenario_file sf;
    const char *bad = "{\"hardware\": {\"name\": \"h100-sxm\", \"count\": 8}, \"model\": \"llama-3.1-8b\","
                      " \"facility\": {\"power_w\": \"2 TB/s\", \"pue\": 1.2}}";
    assert_int_equal(etok_scenario_from_json_text(bad, "s.json", &sf, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "s.json"));
    assert_non_null(strstr(err.msg, "facility.power_w"));
    assert_non_null(strstr(err.msg, "bandwidth"));
    const char *bad2 = "{\"hardware\": {\"name\": \"h100-sxm\", \"count\": 8}, \"model\": \"llama-3.1-8b\","
                       " \"utilization\": \"60 W\"}";
    assert_int_equal(etok_scenario_from_json_text(bad2, "s.json", &sf, &err), -1);
    assert_non_null(strstr(err.msg, "utilization"));
    assert_non_null(strstr(err.msg, "dimensionless"));
    const char *bad3 = "{\"hardware\": {\"name\": \"h100-sxm\", \"count\": 8}, \"model\": \"llama-3.1-8b\","
                       " \"workload\": {\"input_tokens\": \"1 GB\"}}";
    assert_int_equal(etok_scenario_from_json_text(bad3, "s.json", &sf, &err), -1);
    assert_non_null(strstr(err.msg, "workload.input_tokens"));
}

static void validation_names_the_field(void **state) {
    (void)state;
    etok_err err = {0};
    etok_scenario_file sf;
    struct {
        const char *json, *want;
    } cases[] = {
        {"{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"facility\": {\"power_kw\": 5}}", "facility.power_kw"},
        {"{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"facility\": {\"power_w\": 1e5, \"pue\": 0.8}}", "facility.pue"},
        {"{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"facility\": {\"power_w\": -3}}", "facility.power_w"},
        {"{\"hardware\": {\"name\": \"h100-sxm\", \"count\": 0}, \"model\": \"llama-3.1-8b\"}", "hardware.count"},
        {"{\"hardware\": {\"name\": \"h100-sxm\", \"count\": 2.5}, \"model\": \"llama-3.1-8b\"}", "hardware.count"},
        {"{\"hardware\": \"h100-sxm\", \"model\": {\"name\": \"llama-3.1-8b\", \"kv_dtype\": \"int3\"}}", "model.kv_dtype"},
        {"{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"workload\": {\"batch\": 0}}", "workload.batch"},
        {"{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"levers\": [\"turbo\"]}", "levers[0]"},
        {"{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"colour\": 1}", "unknown field colour"},
        {"{\"hardware\": \"h100-sxm\"}", "missing field model"},
        {"{\"hardware\": {\"count\": 2}, \"model\": \"llama-3.1-8b\"}", "hardware"},
        {"{\"hardware\": {\"name\": \"mine\", \"mem_bw_bps\": 1e12}, \"model\": \"llama-3.1-8b\"}", "hardware.peak_flops.bf16"},
        {"[1, 2]", "JSON object"},
        {"{\"hardware\": ", "not valid JSON"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        memset(&err, 0, sizeof err);
        if (etok_scenario_from_json_text(cases[i].json, "s.json", &sf, &err) != -1) fail_msg("case %zu accepted", i);
        if (!strstr(err.msg, cases[i].want)) fail_msg("case %zu: '%s' lacks '%s'", i, err.msg, cases[i].want);
        assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    }
    /* The model itself refuses what only it can check: a batch whose KV cache does not fit. */
    const char *big = "{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\","
                      " \"workload\": {\"input_tokens\": 4096, \"output_tokens\": 4096, \"batch\": 512}}";
    assert_int_equal(etok_scenario_from_json_text(big, "s.json", &sf, &err), 0);
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&sf.s, -1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "workload.batch 512"));
    assert_non_null(strstr(err.msg, "does not fit"));
}

static void inline_objects_and_defaults(void **state) {
    (void)state;
    etok_err err = {0};
    etok_scenario_file sf;
    const char *js =
        "{\"name\": \"inline\", \"hardware\": {\"name\": \"my-gpu\", \"count\": 4,"
        "   \"peak_flops\": {\"bf16\": \"100 TFLOP/s\"}, \"mem_bw_bps\": \"1 TB/s\", \"mem_bytes\": \"48 GB\","
        "   \"max_power_w\": \"300 W\", \"idle_power_w\": 30},"
        " \"model\": {\"name\": \"llama-3.1-70b\", \"weight_dtype\": \"int4\"},"
        " \"workload\": {\"input_tokens\": 512, \"output_tokens\": 128, \"batch\": \"max\"},"
        " \"facility\": {\"power_w\": \"10 kW\", \"pue\": 1.5}, \"utilization\": 0.5, \"phi\": 1.1,"
        " \"price_per_kwh\": 0.12, \"levers\": [\"kv-fp8\", \"batch=8\"]}";
    assert_int_equal(etok_scenario_from_json_text(js, "inline.json", &sf, &err), 0);
    assert_string_equal(sf.s.hw.name, "my-gpu");
    assert_true(sf.s.hw.peak_flops_bf16 == 100e12 && sf.s.hw.mem_bytes == 48e9);
    assert_int_equal(sf.s.weight_dtype, ETOK_DT_INT4);
    assert_int_equal(sf.s.batch, 0);
    assert_int_equal((int)sf.n_levers, 2);
    assert_true(sf.price_per_kwh == 0.12);
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&sf.s, sf.price_per_kwh, &r, &err), 0);
    /* 70.55B int4 weights = 36.4 GB: fits one 48 GB device (43.2 GB usable) -> 4 replicas */
    assert_int_equal(r.devices_per_replica, 1);
    assert_int_equal(r.replicas, 4);
    assert_int_equal(r.batch, r.batch_max);
    assert_true(r.energy_cost_per_mtok > 0);
    /* catalog entry with an inline override */
    const char *ov = "{\"hardware\": {\"name\": \"h100-sxm\", \"max_power_w\": 500}, \"model\": \"smollm2-135m\"}";
    assert_int_equal(etok_scenario_from_json_text(ov, "ov.json", &sf, &err), 0);
    assert_true(sf.s.hw.max_power_w == 500 && sf.s.hw.mem_bw_bps == 3.35e12);
    /* a catalog scenario by name */
    assert_int_equal(etok_scenario_load("h100x8-llama8b-kv-int8", &sf, &err), 0);
    assert_string_equal(sf.s.hw.name, "h100-sxm");
    assert_int_equal(sf.s.device_count, 8);
    assert_true(sf.s.has_facility && sf.s.facility_power_w == 2e6 && sf.s.cooling_w == 1.8e6);
}

static void data_dir_env(void **state) {
    (void)state;
    setenv("ETOK_DATA_DIR", "/nonexistent-etok-data", 1);
    assert_string_equal(etok_data_dir(), "/nonexistent-etok-data");
    etok_err err = {0};
    etok_hw_spec h;
    assert_int_equal(etok_catalog_hardware("h100-sxm", &h, &err), -1);
    unsetenv("ETOK_DATA_DIR");
    assert_int_equal(etok_catalog_hardware("h100-sxm", &h, &err), 0);
}

static void from_run_replaces_modelled_figures(void **state) {
    (void)state;
    /* A hand-built record: 100 W for 10 s while producing 1000 output tokens = 1 J/token. */
    etok_record rec;
    etok_record_init(&rec);
    rec.window_start_s = 0;
    rec.window_end_s = 10;
    rec.tokens_known = 1;
    rec.tokens_in = 100;
    rec.tokens_out = 1000;
    snprintf(rec.kind, sizeof rec.kind, "run");
    etok_trace *t = etok_record_add_trace(&rec);
    assert_non_null(t);
    snprintf(t->meter, sizeof t->meter, "hwmon");
    snprintf(t->domain, sizeof t->domain, "gpu0");
    t->source = ETOK_SOURCE_POWER;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "W");
    t->scale_to_si = 1;
    t->resolution_si = 0.1;
    t->summable = 1;
    for (int i = 0; i <= 20; i++) assert_non_null(etok_trace_add_sample(&rec.traces[0], i * 0.5, 100.0));
    char path[] = "/tmp/etok_tpf_runXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    etok_err err = {0};
    if (etok_record_save(&rec, path, &err)) fail_msg("%s", err.msg);
    etok_record_free(&rec);

    etok_scenario_file sf;
    assert_int_equal(etok_scenario_load("h100x8-llama8b-kv-int8", &sf, &err), 0);
    etok_tpf_result before, after;
    assert_int_equal(etok_tpf_evaluate(&sf.s, -1, &before, &err), 0);
    if (etok_tpf_apply_run(path, &sf.s, &err)) fail_msg("%s", err.msg);
    unlink(path);
    assert_true(fabs(sf.s.measured_joules_per_output_token - 1.0) < 1e-6);
    assert_true(fabs(sf.s.measured_device_power_w - 100.0) < 1e-6);
    assert_int_equal(etok_tpf_evaluate(&sf.s, -1, &after, &err), 0);
    assert_true(after.joules_measured && after.device_power_measured);
    assert_true(fabs(after.joules_per_output_token - 1.0) < 1e-6);
    /* delivered_power = theta * (P_grid / PUE) / e_tok = 1 * (2e6 / 1.2) / 1 J/token */
    assert_true(fabs(after.ceilings_tps[ETOK_CEIL_DELIVERED_POWER] - 2e6 / 1.2) < 1e-3);
    assert_true(after.joules_per_output_token != before.joules_per_output_token);
    /* a record that cannot be read is an input error */
    assert_int_equal(etok_tpf_apply_run("/nonexistent/run.json", &sf.s, &err), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(catalogs_list_and_load),        cmocka_unit_test(unknown_names_list_the_catalog),
        cmocka_unit_test(quantities_and_dimensions),     cmocka_unit_test(validation_names_the_field),
        cmocka_unit_test(inline_objects_and_defaults),   cmocka_unit_test(data_dir_env),
        cmocka_unit_test(from_run_replaces_modelled_figures),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
