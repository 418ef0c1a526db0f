/* report.h — the bench/run reports: Markdown table, run.json, self-contained HTML.
 * Render stage: these format a record's metrics (metrics.h) and compute nothing.
 * Every returned string is malloc'd (free it); NULL on out of memory. */
#ifndef ETOK_REPORT_H
#define ETOK_REPORT_H

#include "etok/metrics.h"
#include "etok/record.h"

/* The reporting-set table. compact = the headline rows for a terminal (stdout);
 * otherwise every figure (report.md). Each row: figure, value, unit, source, uncertainty. */
char *etok_report_md(const etok_record *r, const etok_metrics *m, int compact);

/* run.json: the record's JSON plus a "metrics" object holding every figure with its unit,
 * source, uncertainty, 95% CI and note (distributions nested by stat), and the run-level
 * strings (phase_split_method, binding_constraint, ...). */
char *etok_report_json(const etok_record *r, const etok_metrics *m);

/* report.html: one file, no network: the table plus inline SVG figures (power and token
 * rate over time with prefill shaded; energy breakdown; latency CDFs with SLO lines; this
 * run's ceilings with the binding one marked). */
char *etok_report_html(const etok_record *r, const etok_metrics *m);

/* One value as text with a sensible precision ("n/a" when not finite). */
void etok_report_fmt(double v, char *buf, size_t n);
/* The carbon paragraph (issue 12): the grid intensity, its basis and source, location- vs
 * market-based, embodied emissions not included. "" when the record has no grid intensity. */
void etok_report_carbon_text(const etok_record *r, char *buf, size_t n);
/* A metric's uncertainty as text: "95% CI [lo, hi]" when it has a CI, else "<pm> u" (pm is
 * the plus-minus sign of the format: "±" or "&plusmn;"), else "" (also when not valid). */
void etok_report_fmt_uncertainty(const etok_metric *x, const char *pm, char *buf, size_t n);

#endif
