/* from_run.c — see from_run.h. Placeholder until the run record loader is merged. */
#include "scenario/from_run.h"

int etok_tpf_apply_run(const char *record_path, etok_tpf_scenario *s, etok_err *err) {
    (void)s;
    return etok_errc(err, ETOK_EXIT_FAIL, "--from-run %s: not available in this build", record_path);
}
