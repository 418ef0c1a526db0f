/* from_run.c — `etok tpf --from-run RUN.json`: the measured e_tok (joules_per_output_token),
 * utilization and mean power of a run record replace the modelled ones in a TPF scenario.
 * Owns: reading the record and picking the figures. Does not own: computing them — they come
 * from analyse/metrics.c (etok_metrics_compute), the one place METRICS.md §3 is computed.
 * The measured power is taken as one device's power (the run measured one token-producing
 * device or node); docs/TPF.md says so. */
#include "scenario/from_run.h"

#include <math.h>
#include <string.h>

#include "etok/metrics.h"
#include "etok/record.h"

int etok_tpf_apply_run(const char *path, etok_tpf_scenario *s, etok_err *err) {
    etok_record rec;
    etok_record_init(&rec);
    if (etok_record_load(&rec, path, err)) {
        etok_record_free(&rec);
        return -1;
    }
    etok_metrics m;
    memset(&m, 0, sizeof m);
    etok_metrics_opts o = {.seed = 1, .bootstrap_iters = 1};
    if (etok_metrics_compute(&rec, &o, &m, err)) {
        etok_record_free(&rec);
        return -1;
    }
    int rc = 0;
    const etok_metric *e = etok_metrics_get(&m, "joules_per_output_token", "");
    const etok_metric *u = etok_metrics_get(&m, "utilization", "");
    const etok_metric *p = etok_metrics_get(&m, "mean_power_w", "");
    if (!e || !e->valid || !(e->value > 0)) {
        rc = etok_errc(err, ETOK_EXIT_INPUT, "--from-run %s: the record has no joules_per_output_token (%s)", path,
                       e ? e->note : "no energy or token count");
    } else {
        s->measured_joules_per_output_token = e->value;
        if (p && p->valid && p->value > 0) s->measured_device_power_w = p->value;
        if (u && u->valid && u->value > 0) {
            s->utilization = u->value > 1 ? 1 : u->value;
            s->utilization_measured = 1;
        }
    }
    etok_metrics_free(&m);
    etok_record_free(&rec);
    return rc;
}
