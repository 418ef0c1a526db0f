/* fake_energy.h — the reading a constant-power fake energy source gives serve tests: t_s
 * seconds at power_w watts on one summable node-boundary "fake/wall" domain. */
#ifndef ETOK_TEST_FAKE_ENERGY_H
#define ETOK_TEST_FAKE_ENERGY_H

#include <stdio.h>
#include <string.h>

#include "etok/serve.h"

static inline void fake_energy_reading(etok_energy_reading *r, double t_s, double power_w) {
    memset(r, 0, sizeof *r);
    r->t_s = t_s;
    r->total_j = power_w * t_s;
    r->power_w = power_w;
    r->source = ETOK_SOURCE_POWER;
    r->boundary = ETOK_BOUNDARY_NODE;
    r->n_domains = 1;
    snprintf(r->domains[0].meter, sizeof r->domains[0].meter, "fake");
    snprintf(r->domains[0].domain, sizeof r->domains[0].domain, "wall");
    r->domains[0].source = ETOK_SOURCE_POWER;
    r->domains[0].boundary = ETOK_BOUNDARY_NODE;
    r->domains[0].summable = 1;
    r->domains[0].energy_j = r->total_j;
}

#endif
