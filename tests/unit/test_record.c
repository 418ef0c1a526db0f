/* test_record.c — the in-memory run record: defaults, appenders, growth, freeing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "etok/record.h"

static void defaults_are_documented_ones(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    assert_int_equal(r.schema_version, ETOK_RECORD_SCHEMA_VERSION);
    assert_true(r.pue == 1.0);
    assert_string_equal(r.pue_source, "assumed");
    assert_int_equal(r.exit_status, -1);
    assert_true(r.quality_target < 0);
    etok_record_free(&r);
}

static void appenders_grow_and_keep_values(void **state) {
    (void)state;
    etok_record r;
    etok_record_init(&r);
    etok_trace *t = etok_record_add_trace(&r);
    assert_non_null(t);
    for (int i = 0; i < 1000; i++) assert_non_null(etok_trace_add_sample(&r.traces[0], i * 0.1, i * 2.0));
    assert_int_equal(r.traces[0].n_samples, 1000);
    for (int i = 0; i < 1000; i++) assert_true(r.traces[0].samples[i].raw == i * 2.0);
    for (int i = 0; i < 37; i++) {
        etok_request *q = etok_record_add_request(&r);
        assert_non_null(q);
        assert_true(q->t_send_s < 0 && q->energy_j < 0);
        q->tokens_out = i;
    }
    for (int i = 0; i < 37; i++) assert_int_equal(r.requests[i].tokens_out, i);
    etok_fault *f = etok_record_add_fault(&r, 1.5, "rapl", "package-0", "reset", "stepped back by %d uJ", 42);
    assert_non_null(f);
    assert_string_equal(r.faults[0].message, "stepped back by 42 uJ");
    etok_record_free(&r);
    assert_int_equal(r.n_traces, 0);
}

static void names_round_trip(void **state) {
    (void)state;
    for (int i = 0; i < 4; i++) {
        etok_source s;
        assert_int_equal(etok_source_parse(etok_source_name((etok_source)i), &s), 0);
        assert_int_equal(s, i);
    }
    etok_boundary b;
    assert_int_equal(etok_boundary_parse("node", &b), 0);
    assert_int_equal(b, ETOK_BOUNDARY_NODE);
    assert_int_equal(etok_boundary_parse("galaxy", &b), -1);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_documented_ones),
        cmocka_unit_test(appenders_grow_and_keep_values),
        cmocka_unit_test(names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
