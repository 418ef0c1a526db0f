/* tpf_limits.c — the one table of limits for every numeric scenario field. The scenario
 * loader (scenario/scenario.c), the catalogs (scenario/catalog.c), `--sweep` (sweep.c, both
 * the spec and every point) and levers (levers.c) all check a value against this table, so a
 * value refused in a scenario file cannot enter through a sweep or a lever either.
 * Pure data plus a lookup; docs/TPF.md lists the same ranges. */
#include <stdio.h>
#include <string.h>

#include "etok/parse.h"
#include "etok/tpf.h"

#define R(lo, hi) {(lo), (hi), 0, 0, 0}
#define RPOS(hi) {0, (hi), 1, 0, 0}
#define RINT(lo, hi) {(lo), (hi), 0, 0, 1}

static const etok_field_limit LIMITS[] = {
    {"facility.power_w", RPOS(ETOK_POWER_MAX_W), "W"},
    {"facility.pue", R(ETOK_PUE_MIN, ETOK_PUE_MAX), "1"},
    {"facility.cooling_w", RPOS(ETOK_POWER_MAX_W), "W"},
    {"facility.theta", RPOS(1), "1"},
    {"hardware.count", RINT(1, 1e7), "devices"},
    {"hardware.devices_per_replica", RINT(1, 1e7), "devices"},
    {"hardware.power_limit_w", RPOS(1e6), "W"},
    {"hardware.power_cap_w", RPOS(1e6), "W"}, /* power_limit_w's earlier name */
    {"hardware.mem_usable_fraction", RPOS(1), "1"},
    {"hardware.peak_flops", R(0, 1e21), "FLOP/s"},
    {"hardware.mem_bw_bps", R(0, 1e16), "byte/s"},
    {"hardware.mem_bytes", R(0, 1e16), "byte"},
    {"hardware.max_power_w", R(0, 1e6), "W"},
    {"hardware.idle_power_w", R(0, 1e6), "W"},
    {"workload.input_tokens", RINT(0, 1e8), "token"},
    {"workload.output_tokens", RINT(1, 1e8), "token"},
    {"workload.batch", RINT(1, 1e8), "sequences"},
    {"model.attention_window", RINT(0, 1073741824.0), "token"},
    {"utilization", RPOS(1), "1"},
    {"phi", RPOS(1e6), "1"},
    {"price_per_kwh", R(0, ETOK_PRICE_PER_KWH_MAX), "currency/kWh"},
};

const etok_field_limit *etok_tpf_field_limits(size_t *n) {
    *n = sizeof LIMITS / sizeof LIMITS[0];
    return LIMITS;
}

const etok_field_limit *etok_tpf_field_limit(const char *field) {
    for (size_t i = 0; i < sizeof LIMITS / sizeof LIMITS[0]; i++)
        if (!strcmp(LIMITS[i].field, field)) return &LIMITS[i];
    return NULL;
}

int etok_tpf_check_field(const char *field, double v, etok_err *err) {
    const etok_field_limit *l = etok_tpf_field_limit(field);
    if (!l) return etok_errc(err, ETOK_EXIT_USAGE, "%s: no limits known for this field", field);
    return etok_range_check(field, v, l->range, err);
}
