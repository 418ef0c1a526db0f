/* grid.h — grid carbon intensity for the CO2e figures (issue 12, docs/CARBON.md): the dated,
 * sourced catalog data/grid/CODE.json (location-based annual averages) and --grid-intensity.
 * Every error names the file/field or the option, with ETOK_EXIT_INPUT (catalog) or
 * ETOK_EXIT_USAGE (options). */
#ifndef ETOK_GRID_H
#define ETOK_GRID_H

#include "etok/record.h"
#include "etok/util.h"

#define ETOK_GRID_MAX_G_PER_KWH 2000.0 /* above any grid's average (coal plants are ~1000) */

/* One catalog entry, by code (case-insensitive, e.g. "de", "FR", "world"). */
int etok_grid_lookup(const char *code, etok_grid *out, etok_err *err);

/* The bench/tpf options: at most one of intensity_text (--grid-intensity, gCO2e/kWh) and
 * region (--region CODE) may be given; neither leaves out->present = 0. */
int etok_grid_resolve(const char *intensity_text, const char *region, etok_grid *out, etok_err *err);

/* gCO2e for `joules` of energy at grid g; *unc receives its 1-sigma from the energy's
 * uncertainty unc_j (NAN = unknown) and the intensity's (if stated), in quadrature. */
double etok_grid_co2e_g(const etok_grid *g, double joules, double unc_j, double *unc);

#endif
