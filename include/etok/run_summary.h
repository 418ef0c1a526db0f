/* run_summary.h — render the energy summary of one run (src/render/run_summary.c):
 * terminal text, Markdown, JSON and CSV. Renderers format figures computed by
 * analyse/energy.c; they never compute one. Every energy/power figure is printed with its
 * boundary, its source (an estimate is labelled as such) and its uncertainty. */
#ifndef ETOK_RUN_SUMMARY_H
#define ETOK_RUN_SUMMARY_H

#include <jansson.h>
#include <stdio.h>

#include "etok/energy.h"
#include "etok/record.h"

/* Short human summary (what `etok run` prints). record_path may be NULL. */
void etok_run_summary_text(FILE *f, const etok_record *r, const etok_energy_summary *s, const char *record_path);
/* Markdown report: summary table, per-trace table, warnings and faults. */
/* Background load per phase and its warning (analyse/bgload.c); with process_boundary, the
 * process-boundary attribution figure beside (never instead of) the device figure. */
void etok_run_summary_background(FILE *f, const etok_record *r, const etok_energy_summary *s, int process_boundary);
void etok_run_summary_markdown(FILE *f, const etok_record *r, const etok_energy_summary *s);
/* CSV: header, one `total` row, then one row per trace. */
void etok_run_summary_csv(FILE *f, const etok_record *r, const etok_energy_summary *s);
/* JSON object (METRICS.md field names; unknown figures are null), with the "background"
 * block (etok_run_summary_background_json without the process figure). NULL on OOM. */
json_t *etok_run_summary_json(const etok_record *r, const etok_energy_summary *s);
/* {"scope", "phases": {idle, warmup, window}, "changed", "change_cores", "warning"} (null when
 * the record has no cpu_load), and with process_boundary "process": the attribution figure
 * with its model note, fitted watts per busy core and corrected idle (docs/RECORD.md). */
json_t *etok_run_summary_background_json(const etok_record *r, const etok_energy_summary *s, int process_boundary);

#endif
