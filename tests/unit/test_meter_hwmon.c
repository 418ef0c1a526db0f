/* test_meter_hwmon.c — the hwmon meter on fixture trees: a device with an energy counter (its
 * power channel kept for the cross-check, not summed), a power-only device (amdgpu), the
 * node-boundary acpi_power_meter, and the live integration of both kinds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <math.h>

#include "test_meter_fixture.h"
#include "etok/meter.h"
#include "meter/driver.h"

static const etok_trace *find_trace(const etok_record *r, const char *domain) {
    for (size_t i = 0; i < r->n_traces; i++)
        if (!strcmp(r->traces[i].domain, domain)) return &r->traces[i];
    return NULL;
}

static void power_only_device_integrates_trapezoids(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_int_equal(fx_write(root, "class/hwmon/hwmon3/name", "amdgpu\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon3/power1_average", "150000000\n", 0444), 0); /* 150 W */
    assert_int_equal(fx_write(root, "class/hwmon/hwmon3/temp1_input", "45000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_err err = {{0}, 0};
    etok_meter_set *ms = fx_open_meter("hwmon", 20, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    double t_start = etok_mono_s();
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.5);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    double elapsed_s = etok_mono_s() - t_start; /* >= 0.5 s; more when this thread was held up */
    assert_int_equal(rec.n_traces, 1);
    const etok_trace *t = find_trace(&rec, "amdgpu/power1");
    assert_non_null(t);
    assert_int_equal(t->source, ETOK_SOURCE_POWER);
    assert_int_equal(t->boundary, ETOK_BOUNDARY_DEVICE);
    assert_int_equal(t->summable, 1);
    assert_string_equal(t->raw_unit, "uW");
    assert_string_equal(t->power_field, "average");
    /* about 20 Hz: the sampler neither busy-loops nor stalls (start + stop + >= 1 tick; at most
     * 20 Hz over the time that really passed, with slack: a loaded machine skips ticks, never adds) */
    if (t->n_samples < 3 || t->n_samples > 20 * elapsed_s * 1.25 + 3)
        fail_msg("%zu samples in %.3f s at 20 Hz", t->n_samples, elapsed_s);
    etok_energy_snapshot snap;
    assert_int_equal(etok_meters_snapshot(ms, &snap), 0);
    double span = t->samples[t->n_samples - 1].t_s - t->samples[0].t_s;
    assert_true(fabs(snap.energy_j - 150.0 * span) < 1e-6);
    assert_int_equal(snap.source, ETOK_SOURCE_POWER);
    assert_true(fabs(snap.power_w - 150.0) < 1e-6);
    etok_meters_close(ms);
    etok_record_free(&rec);
    fx_rmrf(root);
}

static void energy_counter_device_and_node_meter(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/name", "acpi_power_meter\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/power1_average", "300000000\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/power1_average_interval", "500\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon1/name", "xpu\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon1/energy1_input", "7000000\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon1/power1_input", "50000000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_meter_status st[8];
    etok_meters_list(st, 8, NULL);
    assert_string_equal(st[2].name, "hwmon");
    assert_int_equal(st[2].available, 1);
    assert_int_equal(st[2].source, ETOK_SOURCE_COUNTER);
    assert_non_null(strstr(st[2].domains, "xpu/energy1"));

    etok_err err = {{0}, 0};
    etok_meter_set *ms = fx_open_meter("hwmon", 50, &err);
    assert_non_null(ms);
    etok_record rec;
    etok_record_init(&rec);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.05);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon1/energy1_input", "7400000\n", 0444), 0);
    fx_sleep(0.05);
    assert_int_equal(etok_meters_stop(ms, &err), 0);

    assert_int_equal(rec.n_traces, 3);
    const etok_trace *node = find_trace(&rec, "acpi_power_meter/power1");
    const etok_trace *ctr = find_trace(&rec, "xpu/energy1");
    const etok_trace *pw = find_trace(&rec, "xpu/power1");
    assert_non_null(node);
    assert_non_null(ctr);
    assert_non_null(pw);
    assert_int_equal(node->boundary, ETOK_BOUNDARY_NODE);
    assert_true(fabs(node->update_period_s - 0.5) < 1e-12);
    assert_int_equal(ctr->source, ETOK_SOURCE_COUNTER);
    assert_int_equal(ctr->summable, 1);
    assert_int_equal(pw->summable, 0); /* same device as the counter: cross-check only */
    assert_string_equal(pw->power_field, "input");
    assert_true(ctr->samples[ctr->n_samples - 1].raw == 7400000.0);
    /* the node meter exists, so the live total is the node's: 300 W x time, not device sums */
    etok_energy_snapshot snap;
    etok_meters_snapshot(ms, &snap);
    assert_int_equal(snap.boundary, ETOK_BOUNDARY_NODE);
    double span = node->samples[node->n_samples - 1].t_s - node->samples[0].t_s;
    assert_true(fabs(snap.energy_j - 300.0 * span) < 1e-6);
    etok_meters_close(ms);
    etok_record_free(&rec);

    /* without the node meter: the device total is the counter alone (0.4 J), power not added */
    assert_int_equal(remove(strcat(strcpy((char[1024]){0}, root), "/class/hwmon/hwmon0/power1_average")), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon1/energy1_input", "7000000\n", 0444), 0);
    etok_record_init(&rec);
    ms = fx_open_meter("hwmon", 50, &err);
    assert_non_null(ms);
    assert_int_equal(etok_meters_start(ms, &rec, &err), 0);
    fx_sleep(0.05);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon1/energy1_input", "7400000\n", 0444), 0);
    fx_sleep(0.05);
    assert_int_equal(etok_meters_stop(ms, &err), 0);
    etok_meters_snapshot(ms, &snap);
    assert_int_equal(snap.boundary, ETOK_BOUNDARY_DEVICE);
    assert_true(fabs(snap.energy_j - 0.4) < 1e-9);
    etok_meters_close(ms);
    etok_record_free(&rec);
    fx_rmrf(root);
}

static void no_hwmon_is_missing(void **state) {
    (void)state;
    char *root = fx_tmpdir();
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/name", "k10temp\n", 0444), 0);
    assert_int_equal(fx_write(root, "class/hwmon/hwmon0/temp1_input", "40000\n", 0444), 0);
    setenv("ETOK_SYSFS_ROOT", root, 1);
    etok_meter_status st[8];
    etok_meters_list(st, 8, NULL);
    assert_int_equal(st[2].available, 0);
    assert_int_equal(strncmp(st[2].why, "missing", 7), 0);
    etok_err err = {{0}, 0};
    assert_null(fx_open_meter("hwmon", 10, &err));
    assert_non_null(strstr(err.msg, "hwmon"));
    fx_rmrf(root);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(power_only_device_integrates_trapezoids),
        cmocka_unit_test(energy_counter_device_and_node_meter),
        cmocka_unit_test(no_hwmon_is_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
