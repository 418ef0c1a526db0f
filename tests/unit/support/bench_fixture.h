/* bench_fixture.h — a hand-built bench record for report tests: two serial requests in a
 * 10 s window at 100 W (idle 40 W) with steps, answers, SLOs and a hardware profile. The
 * hand-computed figures are listed in tests/unit/test_metrics.c. */
#ifndef ETOK_TEST_BENCH_FIXTURE_H
#define ETOK_TEST_BENCH_FIXTURE_H

#include "etok/record.h"

void etok_fixture_bench_record(etok_record *r, double q_star);

#endif
