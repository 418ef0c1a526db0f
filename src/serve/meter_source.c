/* meter_source.c — an etok_energy_source over etok's meter set (meter.h), for serve and exporter.
 *
 * Owns: opening and starting the meters on a private record, and mapping the set's live
 * snapshot onto etok_energy_reading: the primary-boundary total, and every live domain
 * (etok_meters_snapshot_domains) marked summable when it is part of that total. Does not own:
 * reading hardware (src/meter/) or what the readings are used for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/meter.h"
#include "etok/serve.h"

struct etok_meter_source {
    etok_meter_set *ms;
    etok_record rec;
    char meters[32];       /* "rapl", "rapl+nvml" */
    char describe[1024];
    int stopped;
};

static int meter_source_read(void *arg, etok_energy_reading *out) {
    etok_meter_source *m = arg;
    etok_energy_snapshot snap;
    if (etok_meters_snapshot(m->ms, &snap) != 0) return -1;
    memset(out, 0, sizeof *out);
    out->t_s = snap.t_s;
    out->total_j = snap.energy_j;
    out->uncertainty_j = snap.energy_uncertainty_j;
    out->power_w = snap.power_w;
    out->source = snap.source;
    out->boundary = snap.boundary;
    etok_domain_energy doms[ETOK_ENERGY_MAX_DOMAINS];
    int n = etok_meters_snapshot_domains(m->ms, doms, ETOK_ENERGY_MAX_DOMAINS);
    _Static_assert(sizeof doms[0].meter == sizeof out->domains[0].meter, "meter label sizes");
    _Static_assert(sizeof doms[0].domain == sizeof out->domains[0].domain, "domain label sizes");
    for (int i = 0; i < n && i < ETOK_ENERGY_MAX_DOMAINS; i++) {
        etok_energy_domain *d = &out->domains[out->n_domains++];
        memcpy(d->meter, doms[i].meter, sizeof d->meter);
        d->meter[sizeof d->meter - 1] = '\0';
        memcpy(d->domain, doms[i].domain, sizeof d->domain);
        d->domain[sizeof d->domain - 1] = '\0';
        d->source = doms[i].source;
        d->boundary = doms[i].boundary;
        d->summable = doms[i].summable && doms[i].primary; /* what the total is the sum of */
        d->energy_j = doms[i].energy_j;
    }
    if (n <= 0) { /* no per-domain view: the total alone */
        out->n_domains = 1;
        etok_energy_domain *d = &out->domains[0];
        snprintf(d->meter, sizeof d->meter, "%s", m->meters);
        snprintf(d->domain, sizeof d->domain, "total");
        d->source = snap.source;
        d->boundary = snap.boundary;
        d->summable = 1;
        d->energy_j = snap.energy_j;
    }
    return 0;
}

static int meter_source_mark(void *arg) {
    etok_meter_source *m = arg;
    etok_err e = {0};
    return etok_meters_mark(m->ms, &e);
}

etok_meter_source *etok_meter_source_open(const etok_meter_config *cfg, etok_energy_source *out, etok_err *err) {
    etok_meter_source *m = calloc(1, sizeof *m);
    if (!m) {
        etok_errf(err, "meters: out of memory");
        return NULL;
    }
    etok_record_init(&m->rec);
    snprintf(m->rec.kind, sizeof m->rec.kind, "serve");
    m->ms = etok_meters_open(cfg, err);
    if (!m->ms) {
        etok_record_free(&m->rec);
        free(m);
        return NULL;
    }
    m->rec.t0_wall_s = etok_wall_s();
    if (etok_meters_start(m->ms, &m->rec, err) != 0) {
        etok_meters_close(m->ms);
        etok_record_free(&m->rec);
        free(m);
        return NULL;
    }
    /* names of the summed domains: only the trace descriptions, never the samples the
     * sampler is appending */
    etok_energy_snapshot snap;
    etok_meters_snapshot(m->ms, &snap);
    size_t dl = 0;
    for (size_t i = 0; i < m->rec.n_traces; i++) {
        const etok_trace *t = &m->rec.traces[i];
        if (!t->summable || t->boundary != snap.boundary) continue;
        if (!strstr(m->meters, t->meter)) {
            size_t ml = strlen(m->meters);
            snprintf(m->meters + ml, sizeof m->meters - ml, "%s%s", ml ? "+" : "", t->meter);
        }
        int n = snprintf(m->describe + dl, sizeof m->describe - dl, "%s%s/%s (%s, %s)", dl ? ", " : "", t->meter,
                         t->domain, etok_source_name(t->source), etok_boundary_name(t->boundary));
        if (n > 0 && (size_t)n < sizeof m->describe - dl) dl += (size_t)n;
    }
    if (!m->meters[0]) snprintf(m->meters, sizeof m->meters, "none");
    out->read = meter_source_read;
    out->mark = meter_source_mark;
    out->arg = m;
    return m;
}

const char *etok_meter_source_describe(const etok_meter_source *m) { return m->describe[0] ? m->describe : "(none)"; }

void etok_meter_source_close(etok_meter_source *m) {
    if (!m) return;
    etok_err err = {0};
    if (!m->stopped) etok_meters_stop(m->ms, &err);
    etok_meters_close(m->ms);
    etok_record_free(&m->rec);
    free(m);
}

etok_record *etok_meter_source_record(etok_meter_source *m) { return &m->rec; }
double etok_meter_source_t0_mono(const etok_meter_source *m) { return etok_meters_t0_mono_s(m->ms); }

int etok_meter_source_stop(etok_meter_source *m, etok_err *err) {
    if (m->stopped) return 0;
    m->stopped = 1;
    return etok_meters_stop(m->ms, err);
}
