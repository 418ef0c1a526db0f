/* grid.c — the grid carbon-intensity catalog data/grid/CODE.json and the --grid-intensity /
 * --region options (include/etok/grid.h, docs/CARBON.md). Entries are found the way every
 * catalog is (catalog.c); each must give its value, year, basis and source.
 * Owns: reading and validating entries, the CO2e conversion with its uncertainty. */
#include "etok/grid.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "etok/parse.h"
#include "scenario/jsonq.h"

static int str_field(json_t *root, const char *key, const char *path, int required, char *out, size_t n, etok_err *err) {
    json_t *v = json_object_get(root, key);
    if (!v) return required ? etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field %s", path, key) : 0;
    if (!json_is_string(v) || !*json_string_value(v))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: must be a non-empty string", path, key);
    if (strlen(json_string_value(v)) >= n)
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: %s: too long (at most %zu bytes)", path, key, n - 1);
    snprintf(out, n, "%s", json_string_value(v));
    return 0;
}

int etok_grid_lookup(const char *code, etok_grid *g, etok_err *err) {
    memset(g, 0, sizeof *g);
    char name[16];
    size_t l = strlen(code);
    if (!l || l >= sizeof name) return etok_errc(err, ETOK_EXIT_INPUT, "--region: '%s' is not a region code", code);
    for (size_t i = 0; i <= l; i++) name[i] = (char)tolower((unsigned char)code[i]);
    char path[4096];
    json_t *root = jq_catalog_entry("grid", "grid region", name, path, sizeof path, err);
    if (!root) return -1;
    static const char *const K[] = {"name", "display_name", "g_co2e_per_kwh", "uncertainty_g_co2e_per_kwh", "year",
                                    "basis", "scope", "source", NULL};
    int rc = -1;
    if (!json_is_object(root)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: must be a JSON object", path);
        goto out;
    }
    if (jq_known_keys(root, K, path, NULL, err)) goto out;
    json_t *v = json_object_get(root, "g_co2e_per_kwh");
    if (!v) { etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field g_co2e_per_kwh", path); goto out; }
    if (jq_number(v, '1', path, "g_co2e_per_kwh", &g->g_per_kwh, err)) goto out;
    if (!(g->g_per_kwh > 0 && g->g_per_kwh <= ETOK_GRID_MAX_G_PER_KWH)) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: g_co2e_per_kwh: must be in (0, %g] (got %g)", path, ETOK_GRID_MAX_G_PER_KWH,
                  g->g_per_kwh);
        goto out;
    }
    g->uncertainty_g_per_kwh = NAN;
    v = json_object_get(root, "uncertainty_g_co2e_per_kwh");
    if (v && !json_is_null(v)) {
        if (jq_number(v, '1', path, "uncertainty_g_co2e_per_kwh", &g->uncertainty_g_per_kwh, err)) goto out;
        if (!(g->uncertainty_g_per_kwh >= 0 && g->uncertainty_g_per_kwh <= g->g_per_kwh)) {
            etok_errc(err, ETOK_EXIT_INPUT, "%s: uncertainty_g_co2e_per_kwh: must be in [0, g_co2e_per_kwh]", path);
            goto out;
        }
    }
    v = json_object_get(root, "year");
    if (!v) { etok_errc(err, ETOK_EXIT_INPUT, "%s: missing field year (every value is dated)", path); goto out; }
    if (jq_int(v, 1990, 2100, path, "year", &g->year, err)) goto out;
    if (str_field(root, "basis", path, 1, g->basis, sizeof g->basis, err)) goto out;
    if (strcmp(g->basis, "location") && strcmp(g->basis, "market")) {
        etok_errc(err, ETOK_EXIT_INPUT, "%s: basis: expected \"location\" or \"market\" (got \"%s\")", path, g->basis);
        goto out;
    }
    if (str_field(root, "source", path, 1, g->source, sizeof g->source, err)) goto out;
    snprintf(g->region, sizeof g->region, "%s", name);
    g->present = 1;
    rc = 0;
out:
    json_decref(root);
    if (rc) memset(g, 0, sizeof *g);
    return rc;
}

int etok_grid_resolve(const char *intensity_text, const char *region, etok_grid *g, etok_err *err) {
    memset(g, 0, sizeof *g);
    if (intensity_text && region)
        return etok_errc(err, ETOK_EXIT_USAGE, "--grid-intensity and --region are exclusive: give one");
    if (region) return etok_grid_lookup(region, g, err);
    if (!intensity_text) return 0;
    double x;
    etok_err pe = {0};
    if (etok_parse_double("--grid-intensity", intensity_text, ETOK_RANGE_POS(ETOK_GRID_MAX_G_PER_KWH), &x, &pe))
        return etok_errc(err, ETOK_EXIT_USAGE, "%s (gCO2e/kWh)", pe.msg);
    g->present = 1;
    g->g_per_kwh = x;
    g->uncertainty_g_per_kwh = NAN;
    snprintf(g->basis, sizeof g->basis, "user-given");
    snprintf(g->source, sizeof g->source, "--grid-intensity %g gCO2e/kWh (user-given; basis and year not stated)", x);
    return 0;
}

double etok_grid_co2e_g(const etok_grid *g, double joules, double unc_j, double *unc) {
    double kwh = joules / 3.6e6, v = kwh * g->g_per_kwh;
    double re = joules != 0 && isfinite(unc_j) ? unc_j / fabs(joules) : (isfinite(unc_j) ? 0 : NAN);
    double ri = isfinite(g->uncertainty_g_per_kwh) ? g->uncertainty_g_per_kwh / g->g_per_kwh : 0;
    if (unc) *unc = isfinite(re) ? fabs(v) * sqrt(re * re + ri * ri) : NAN;
    return v;
}
