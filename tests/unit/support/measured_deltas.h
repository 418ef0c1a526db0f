/* measured_deltas.h — the two deltas a lever prediction is held against (etok compare's
 * token_rate_tps and joules_per_output_token: relative change and CI), built by hand for the
 * prediction tests (test_calibrate, test_lever_power). */
#ifndef ETOK_TEST_MEASURED_DELTAS_H
#define ETOK_TEST_MEASURED_DELTAS_H

#include <stdio.h>
#include <string.h>

#include "etok/compare.h"

/* rate_rel +- rate_half and j_rel +- j_half as each delta's relative change and CI */
static inline etok_compare_cand measured_deltas(double rate_rel, double rate_half, double j_rel, double j_half) {
    etok_compare_cand c;
    memset(&c, 0, sizeof c);
    c.n_deltas = 2;
    snprintf(c.deltas[0].name, sizeof c.deltas[0].name, "token_rate_tps");
    c.deltas[0].valid = 1;
    c.deltas[0].d.rel = rate_rel;
    c.deltas[0].d.rel_lo = rate_rel - rate_half;
    c.deltas[0].d.rel_hi = rate_rel + rate_half;
    snprintf(c.deltas[1].name, sizeof c.deltas[1].name, "joules_per_output_token");
    c.deltas[1].valid = 1;
    c.deltas[1].d.rel = j_rel;
    c.deltas[1].d.rel_lo = j_rel - j_half;
    c.deltas[1].d.rel_hi = j_rel + j_half;
    return c;
}

#endif
