/* tpf_render.h — formats TPF results (etok/tpf.h): a text table, JSON with METRICS.md field
 * names, before/after lever comparisons, and sweeps as CSV and SVG. Formats, never computes:
 * every number printed comes from the analyse stage. All functions return malloc'd text
 * (free it) or NULL on out-of-memory. */
#ifndef ETOK_TPF_RENDER_H
#define ETOK_TPF_RENDER_H

#include "etok/record.h"
#include "etok/tpf.h"

/* What the figures rest on, printed with them. */
typedef struct {
    const char *scenario_name;   /* file or catalog name */
    const char *levers[16];      /* levers applied to this scenario (NULL-terminated) */
    const char *from_run;        /* run record whose measurements replaced modelled ones, or NULL */
    double price_per_kwh;        /* < 0: none */
    const etok_grid *grid;       /* --grid-intensity / --region; NULL or !present: none */
} etok_tpf_context;

char *etok_tpf_render_text(const etok_tpf_scenario *s, const etok_tpf_result *r, const etok_tpf_context *ctx);
char *etok_tpf_render_json(const etok_tpf_scenario *s, const etok_tpf_result *r, const etok_tpf_context *ctx);

/* Before/after for --lever. */
char *etok_tpf_render_compare_text(const etok_tpf_scenario *sa, const etok_tpf_result *a, const etok_tpf_scenario *sb,
                                   const etok_tpf_result *b, const etok_tpf_context *ctx);
char *etok_tpf_render_compare_json(const etok_tpf_scenario *sa, const etok_tpf_result *a, const etok_tpf_scenario *sb,
                                   const etok_tpf_result *b, const etok_tpf_context *ctx);

/* Sweeps: CSV (one row per grid point plus one per crossover, sorted by x), a text summary,
 * JSON, and an SVG figure (token rate and every ceiling vs the swept field, binding regions
 * shaded, crossovers marked). */
char *etok_tpf_render_sweep_csv(const etok_sweep *sw);
char *etok_tpf_render_sweep_text(const etok_sweep *sw, const etok_tpf_context *ctx);
char *etok_tpf_render_sweep_json(const etok_sweep *sw, const etok_tpf_context *ctx);
char *etok_tpf_render_sweep_svg(const etok_sweep *sw, const etok_tpf_context *ctx);

/* Axis label with unit for a sweepable field ("Facility power P_grid (W)"). */
const char *etok_tpf_field_label(const char *field);

#endif
