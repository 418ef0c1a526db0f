/* from_run.h — `etok tpf --from-run`: replace the modelled e_tok, utilization and device power
 * of a TPF scenario by those a run record measured (etok run / etok bench). I/O (reads the
 * record) beside the pure model; the figures come from analyse/metrics.c. */
#ifndef ETOK_SCENARIO_FROM_RUN_H
#define ETOK_SCENARIO_FROM_RUN_H

#include "etok/tpf.h"
#include "etok/util.h"

int etok_tpf_apply_run(const char *record_path, etok_tpf_scenario *s, etok_err *err);

#endif
