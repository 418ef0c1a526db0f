/* sampler.c — the meter set of one run (include/etok/meter.h): which meters to open, the
 * background sampler thread that reads them, counter wrap/reset/stall handling, the live
 * integration behind etok_meters_snapshot, and `etok meters`' listing.
 *
 * Owns: meter selection (no silent fallback to the estimate), the summable rules across
 * meters (perf and RAPL-mirroring hwmon drivers are not summed when rapl is open, amdgpu's
 * hwmon power not when amdsmi is), timing
 * (condition-variable timed waits on CLOCK_MONOTONIC, never busy waits), appending raw
 * readings to rec->traces and faults to rec->faults. Readings are raw; the record's analysis
 * (analyse/) computes the reported energies. The live figures here are for progress displays.
 * Does not own: hardware access (the drivers), the record's other fields. */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "etok/cpuload.h"
#include "meter/driver.h"

#define MAX_INSTANCES 8
#define RING 64
#define CROSS_CHECK_AFTER_S 2.0
#define CROSS_CHECK_TOLERANCE 0.5

typedef struct {
    etok_meter_inst *mi;
    int d;
    size_t trace;        /* index into rec->traces (the array may move; never keep pointers) */
    int is_counter, live;
    int lost, err_reported, stall_reported, have_last, ever_changed;
    double last_raw, last_t, last_change_t;
    double energy_j;     /* since start: counter deltas or power trapezoids */
    double unc_j;        /* power: trapezoid error bound accumulated */
    double last_power_w;
} dom_state;

struct etok_meter_set {
    etok_meter_config cfg;       /* names not kept */
    char extlog_path[512];
    etok_meter_inst *inst[MAX_INSTANCES];
    int n_inst;
    dom_state *doms;
    etok_err *errs;              /* per domain: the last read error */
    int n_doms;
    int estimate_fallback;       /* estimate opened because no meter exists at all */
    etok_boundary primary;
    double period_s;

    etok_record *rec;
    double t0_mono;
    int started, stopped, cross_checked;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int mu_ok, stop_req, thread_running;
    /* etok_meters_mark: tickets asked for and served; the sampler thread serves the newest
     * ticket pending when a read starts, so that read began after the mark was asked for */
    unsigned long mark_asked, mark_served;
    pthread_cond_t mark_cv;
    int mark_cv_ok;

    double ring_t[RING], ring_e[RING];
    int ring_n, ring_pos;

    /* background load (cpuload.h): read with the meters; only sample_all touches cpu and
     * rec->cpuload (one thread at a time), the pending scope is handed over under mu */
    etok_cpuload_reader *cpu;
    etok_cpu_scope cpu_scope, cpu_scope_pending;
    long cpu_pid, cpu_pid_pending;
    int cpu_scope_changed, cpu_failed;
    double cpu_last_t;
};

/* ---------------------------------------------------------------- counter arithmetic */

double etok_counter_delta(double prev_raw, double cur_raw, double wrap_range_raw, double dt_s,
                          double max_rate_raw_per_s, etok_step_kind *kind) {
    if (cur_raw >= prev_raw) {
        *kind = ETOK_STEP_OK;
        return cur_raw - prev_raw;
    }
    if (wrap_range_raw > 0) {
        double d = cur_raw + wrap_range_raw - prev_raw;
        /* a wrap is plausible when the corrected step fits the largest plausible power
         * (with 1 s of slack for a late read); otherwise the counter was reset */
        if (d >= 0 && d <= max_rate_raw_per_s * (dt_s + 1.0)) {
            *kind = ETOK_STEP_WRAP;
            return d;
        }
    }
    *kind = ETOK_STEP_RESET;
    return 0;
}

/* ---------------------------------------------------------------- listing */

int etok_meters_list(etok_meter_status *out, int cap, const etok_meter_config *cfg) {
    const etok_meter_driver *const *drv;
    int n = etok_meter_drivers(&drv);
    int k = 0;
    for (int i = 0; i < n && k < cap; i++, k++) {
        etok_meter_status *st = &out[k];
        memset(st, 0, sizeof *st);
        etok_meter_why(st->name, sizeof st->name, "%s", drv[i]->name);
        st->source = drv[i]->source;
        st->boundary = drv[i]->boundary;
        drv[i]->detect(cfg, st);
        if (!st->available && !st->why[0]) etok_meter_why(st->why, sizeof st->why, "missing");
    }
    return k;
}

/* ---------------------------------------------------------------- open / close */

static void known_names(char *buf, size_t cap) {
    const etok_meter_driver *const *drv;
    int n = etok_meter_drivers(&drv);
    buf[0] = '\0';
    for (int i = 0; i < n; i++) {
        size_t l = strlen(buf);
        etok_meter_why(buf + l, cap - l, "%s%s", i ? ", " : "", drv[i]->name);
    }
}

static int open_one(etok_meter_set *ms, const etok_meter_driver *drv, etok_err *err) {
    for (int i = 0; i < ms->n_inst; i++)
        if (ms->inst[i]->drv == drv) return 0; /* named twice */
    if (ms->n_inst >= MAX_INSTANCES) return etok_errc(err, ETOK_EXIT_USAGE, "too many meters");
    etok_meter_inst *mi = calloc(1, sizeof *mi);
    if (!mi) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
    mi->drv = drv;
    etok_meter_config cfg = ms->cfg;
    cfg.extlog_path = ms->extlog_path[0] ? ms->extlog_path : NULL;
    if (drv->open(mi, &cfg, err) != 0) {
        if (err && !err->exit_code) err->exit_code = ETOK_EXIT_FAIL;
        drv->close(mi);
        free(mi);
        return -1;
    }
    ms->inst[ms->n_inst++] = mi;
    return 0;
}

static int has_inst(const etok_meter_set *ms, const char *name) {
    for (int i = 0; i < ms->n_inst; i++)
        if (!strcmp(ms->inst[i]->drv->name, name)) return 1;
    return 0;
}

etok_meter_set *etok_meters_open(const etok_meter_config *cfg_in, etok_err *err) {
    etok_meter_config zero;
    memset(&zero, 0, sizeof zero);
    const etok_meter_config *cfg = cfg_in ? cfg_in : &zero;
    char known[128];
    known_names(known, sizeof known);
    for (int i = 0; i < cfg->n_names; i++)
        if (!cfg->names || !cfg->names[i] || !etok_meter_driver_find(cfg->names[i])) {
            etok_errc(err, ETOK_EXIT_USAGE, "unknown meter '%s' (known: %s)",
                      cfg->names && cfg->names[i] ? cfg->names[i] : "(null)", known);
            return NULL;
        }
    etok_meter_set *ms = calloc(1, sizeof *ms);
    if (!ms) { etok_errc(err, ETOK_EXIT_FAIL, "out of memory"); return NULL; }
    ms->cfg = *cfg;
    ms->cfg.names = NULL;
    ms->cfg.n_names = 0;
    if (ms->cfg.rate_hz <= 0) ms->cfg.rate_hz = 10.0;
    if (cfg->extlog_path) etok_meter_why(ms->extlog_path, sizeof ms->extlog_path, "%s", cfg->extlog_path);
    ms->cfg.extlog_path = NULL;

    if (cfg->n_names > 0) {
        for (int i = 0; i < cfg->n_names; i++)
            if (open_one(ms, etok_meter_driver_find(cfg->names[i]), err) != 0) goto fail;
    } else {
        const etok_meter_driver *const *drv;
        int n = etok_meter_drivers(&drv);
        for (int i = 0; i < n; i++) {
            if (!drv[i]->auto_open) continue;
            if (drv[i] == &etok_meter_perf && has_inst(ms, "rapl")) continue; /* same counters */
            etok_meter_status st;
            memset(&st, 0, sizeof st);
            drv[i]->detect(cfg, &st);
            /* a meter that exists but cannot be read is an error, not a reason to fall back */
            if (st.available || !strncmp(st.why, "permission", 10)) {
                if (open_one(ms, drv[i], err) != 0) goto fail;
            }
        }
        if (ms->extlog_path[0] && open_one(ms, &etok_meter_extlog, err) != 0) goto fail;
        if (ms->n_inst == 0) {
            if (open_one(ms, &etok_meter_estimate, err) != 0) goto fail;
            ms->estimate_fallback = 1;
        }
    }

    int total = 0;
    for (int i = 0; i < ms->n_inst; i++) total += ms->inst[i]->n_domains;
    ms->doms = calloc(total ? (size_t)total : 1, sizeof *ms->doms);
    ms->errs = calloc(total ? (size_t)total : 1, sizeof *ms->errs);
    if (!ms->doms || !ms->errs) { etok_errc(err, ETOK_EXIT_FAIL, "out of memory"); goto fail; }
    int rapl_open = has_inst(ms, "rapl");
    int amdsmi_open = has_inst(ms, "amdsmi");
    double counter_period = 1.0;
    int any_node = 0;
    for (int i = 0; i < ms->n_inst; i++) {
        etok_meter_inst *mi = ms->inst[i];
        for (int d = 0; d < mi->n_domains; d++) {
            etok_trace *t = &mi->dom[d].info;
            if (rapl_open && !strcmp(t->meter, "perf")) t->summable = 0;
            if (rapl_open && !strcmp(t->meter, "hwmon") &&
                (!strncmp(t->domain, "amd_energy", 10) || !strncmp(t->domain, "zenergy", 7) || !strncmp(t->domain, "zenpower", 8)))
                t->summable = 0;
            /* amdgpu's hwmon power is the same GPUs amdsmi counts: recorded, not summed */
            if (amdsmi_open && !strcmp(t->meter, "hwmon") && !strncmp(t->domain, "amdgpu", 6)) t->summable = 0;
            dom_state *s = &ms->doms[ms->n_doms++];
            s->mi = mi;
            s->d = d;
            s->is_counter = t->source == ETOK_SOURCE_COUNTER;
            s->live = mi->drv->collect == NULL;
            if (s->is_counter && t->wrap_range_raw > 0) {
                double wrap_s = t->wrap_range_raw * t->scale_to_si / ETOK_METER_MAX_PLAUSIBLE_W;
                if (wrap_s / 4 < counter_period) counter_period = wrap_s / 4;
            }
            if (t->summable && t->boundary == ETOK_BOUNDARY_NODE) any_node = 1;
        }
    }
    ms->primary = any_node ? ETOK_BOUNDARY_NODE : ETOK_BOUNDARY_DEVICE;
    ms->period_s = 1.0 / ms->cfg.rate_hz;
    if (counter_period < ms->period_s) ms->period_s = counter_period;
    if (ms->period_s < 0.001) ms->period_s = 0.001;
    return ms;
fail:
    etok_meters_close(ms);
    return NULL;
}

/* ---------------------------------------------------------------- sampling */

static const etok_trace *dom_info(const dom_state *s) { return &s->mi->dom[s->d].info; }

/* Apply one reading (lock held). */
static void apply(etok_meter_set *ms, dom_state *s, double t, int rc, double raw, const etok_err *e) {
    const etok_trace *info = dom_info(s);
    etok_record *rec = ms->rec;
    if (s->lost) return;
    if (rc == ETOK_READ_LOST) {
        s->lost = 1;
        etok_record_add_fault(rec, t, info->meter, info->domain, "device_lost",
                              "device lost (%s); no readings after t=%.3f s, its energy after that is missing",
                              e->msg, s->have_last ? s->last_t : 0.0);
        return;
    }
    if (rc != ETOK_READ_OK) {
        if (!s->err_reported) {
            s->err_reported = 1;
            etok_record_add_fault(rec, t, info->meter, info->domain, "read_error", "%s", e->msg);
        }
        return;
    }
    if (!ms->cfg.live_only) etok_trace_add_sample(&rec->traces[s->trace], t, raw);
    if (!s->have_last) {
        s->have_last = 1;
        s->last_raw = raw;
        s->last_t = s->last_change_t = t;
        if (!s->is_counter) s->last_power_w = raw * info->scale_to_si;
        return;
    }
    double dt = t - s->last_t;
    if (s->is_counter) {
        etok_step_kind kind;
        double d = etok_counter_delta(s->last_raw, raw, info->wrap_range_raw, dt,
                                      ETOK_METER_MAX_PLAUSIBLE_W / info->scale_to_si, &kind);
        if (kind == ETOK_STEP_RESET)
            etok_record_add_fault(rec, t, info->meter, info->domain, "reset",
                                  "counter stepped back from %.0f to %.0f %s in %.3f s, not a plausible wrap (range %.0f %s); "
                                  "the energy of this step is not counted",
                                  s->last_raw, raw, info->raw_unit, dt, info->wrap_range_raw, info->raw_unit);
        s->energy_j += d * info->scale_to_si;
        if (raw != s->last_raw) {
            s->last_change_t = t;
            s->stall_reported = 0;
            s->ever_changed = 1;
        } else if (info->summable || s->ever_changed) {
            /* (a nested zone that never moved, e.g. an unsupported uncore reading 0, is not
             * counted anyway and is not reported) */
            double limit = info->update_period_s * 10 > 1.0 ? info->update_period_s * 10 : 1.0;
            if (!s->stall_reported && t - s->last_change_t > limit) {
                s->stall_reported = 1;
                etok_record_add_fault(rec, t, info->meter, info->domain, "stall",
                                      "counter stuck at %.0f %s for %.3f s (update period %.3g s)", raw, info->raw_unit,
                                      t - s->last_change_t, info->update_period_s);
            }
        }
    } else {
        double p = raw * info->scale_to_si;
        s->energy_j += 0.5 * (p + s->last_power_w) * dt;
        s->unc_j += 0.5 * fabs(p - s->last_power_w) * dt + info->resolution_si * dt;
        s->last_power_w = p;
    }
    s->last_raw = raw;
    s->last_t = t;
}

static double primary_energy_locked(const etok_meter_set *ms, double *unc, etok_source *src) {
    double e = 0, u = 0;
    etok_source worst = ETOK_SOURCE_COUNTER;
    for (int i = 0; i < ms->n_doms; i++) {
        const dom_state *s = &ms->doms[i];
        const etok_trace *info = dom_info(s);
        if (!s->live || !info->summable || info->boundary != ms->primary) continue;
        e += s->energy_j;
        u += s->is_counter ? 2 * info->resolution_si : s->unc_j;
        if (info->error_band > 0) u += info->error_band * s->energy_j;
        if (info->source > worst) worst = info->source;
    }
    if (unc) *unc = u;
    if (src) *src = worst;
    return e;
}

static void cross_check_locked(etok_meter_set *ms, double t) {
    ms->cross_checked = 1;
    for (int i = 0; i < ms->n_doms; i++) {
        dom_state *c = &ms->doms[i];
        int pair = c->mi->dom[c->d].pair;
        if (!c->is_counter || pair < 0 || c->lost) continue;
        dom_state *p = NULL;
        for (int j = 0; j < ms->n_doms; j++)
            if (ms->doms[j].mi == c->mi && ms->doms[j].d == pair) p = &ms->doms[j];
        if (!p || p->lost || !p->have_last) continue;
        double ec = c->energy_j, ep = p->energy_j;
        double big = ec > ep ? ec : ep;
        if (big > 0 && fabs(ec - ep) > CROSS_CHECK_TOLERANCE * big) {
            const etok_trace *info = dom_info(c);
            etok_record_add_fault(ms->rec, t, info->meter, info->domain, "counter_mismatch",
                                  "counter gave %.3f J but power x time (%s) gave %.3f J over the first %.2f s; "
                                  "one of them is wrong (reset counter, stale power, wrong units)",
                                  ec, dom_info(p)->domain, ep, t);
        }
    }
}

/* Read every live domain now (no lock held while the drivers read), then apply. */
/* One CPU-load reading into rec->cpuload, at most every ETOK_CPULOAD_MIN_PERIOD_S unless
 * forced (start, marks, stop). A failure to read /proc is recorded once as a fault. */
static void sample_cpu(etok_meter_set *ms, int force) {
    if (!ms->cpu || ms->cpu_failed) return;
    pthread_mutex_lock(&ms->mu);
    if (ms->cpu_scope_changed) {
        etok_cpuload_set_scope(ms->cpu, ms->cpu_scope_pending, ms->cpu_pid_pending);
        ms->cpu_scope_changed = 0;
        force = 1;
    }
    pthread_mutex_unlock(&ms->mu);
    double t = etok_mono_s() - ms->t0_mono;
    if (!force && ms->rec->cpuload.n_samples && t - ms->cpu_last_t < ETOK_CPULOAD_MIN_PERIOD_S) return;
    etok_cpu_sample c;
    etok_err e = {0};
    int n_cpus = 0;
    if (etok_cpuload_read(ms->cpu, t, &c, &n_cpus, &e) != 0) {
        ms->cpu_failed = 1;
        pthread_mutex_lock(&ms->mu);
        etok_record_add_fault(ms->rec, t, "cpuload", "stat", "cpuload", "%s; background load not measured", e.msg);
        pthread_mutex_unlock(&ms->mu);
        return;
    }
    etok_cpuload *cl = &ms->rec->cpuload;
    if (cl->n_samples && (n_cpus != cl->n_cpus || c.busy_s < cl->samples[cl->n_samples - 1].busy_s ||
                          c.total_s < cl->samples[cl->n_samples - 1].total_s))
        return; /* a CPU went offline or the counters stepped back: skip this reading */
    long pid = 0;
    etok_cpu_scope sc = etok_cpuload_scope(ms->cpu, &pid);
    etok_cpu_sample *slot = etok_record_add_cpu_sample(ms->rec);
    if (!slot) return;
    *slot = c;
    cl->present = 1;
    cl->n_cpus = n_cpus;
    cl->pid = pid;
    cl->background_changed = -1;
    snprintf(cl->scope, sizeof cl->scope, "%s", etok_cpu_scope_name(sc));
    ms->cpu_last_t = t;
}

static void sample_all(etok_meter_set *ms) {
    int n = ms->n_doms;
    double raws[ETOK_METER_MAX_DOMAINS * MAX_INSTANCES];
    int rcs[ETOK_METER_MAX_DOMAINS * MAX_INSTANCES];
    double ts[ETOK_METER_MAX_DOMAINS * MAX_INSTANCES];
    for (int i = 0; i < n; i++) {
        dom_state *s = &ms->doms[i];
        rcs[i] = ETOK_READ_ERROR;
        raws[i] = ts[i] = 0;
        if (!s->live || s->lost) continue;
        ms->errs[i].msg[0] = '\0';
        rcs[i] = s->mi->drv->read(s->mi, s->d, &raws[i], &ms->errs[i]);
        ts[i] = etok_mono_s() - ms->t0_mono;
    }
    pthread_mutex_lock(&ms->mu);
    for (int i = 0; i < n; i++) {
        dom_state *s = &ms->doms[i];
        if (!s->live || s->lost) continue;
        apply(ms, s, ts[i], rcs[i], raws[i], &ms->errs[i]);
    }
    double t = etok_mono_s() - ms->t0_mono;
    /* the ring holds (time of the newest reading, cumulative energy) for the live power */
    double t_read = -1;
    for (int i = 0; i < n; i++)
        if (rcs[i] == ETOK_READ_OK && ts[i] > t_read) t_read = ts[i];
    ms->ring_t[ms->ring_pos] = t_read >= 0 ? t_read : t;
    ms->ring_e[ms->ring_pos] = primary_energy_locked(ms, NULL, NULL);
    ms->ring_pos = (ms->ring_pos + 1) % RING;
    if (ms->ring_n < RING) ms->ring_n++;
    if (!ms->cross_checked && t >= CROSS_CHECK_AFTER_S) cross_check_locked(ms, t);
    pthread_mutex_unlock(&ms->mu);
}

static struct timespec mono_ts(double s) {
    struct timespec ts;
    ts.tv_sec = (time_t)s;
    ts.tv_nsec = (long)((s - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L) { ts.tv_sec++; ts.tv_nsec -= 1000000000L; }
    return ts;
}

static void *sampler_main(void *arg) {
    etok_meter_set *ms = arg;
    double next = etok_mono_s();
    pthread_mutex_lock(&ms->mu);
    while (!ms->stop_req) {
        next += ms->period_s;
        double now = etok_mono_s();
        if (next < now) next = now + ms->period_s; /* fell behind (suspend, overload): skip */
        struct timespec dl = mono_ts(next);
        while (!ms->stop_req && ms->mark_served == ms->mark_asked) {
            int rc = pthread_cond_timedwait(&ms->cv, &ms->mu, &dl);
            if (rc == ETIMEDOUT || etok_mono_s() >= next) break;
        }
        if (ms->stop_req) break;
        unsigned long serving = ms->mark_asked; /* marks asked before this read begins */
        pthread_mutex_unlock(&ms->mu);
        sample_all(ms);
        sample_cpu(ms, serving != ms->mark_served);
        pthread_mutex_lock(&ms->mu);
        if (serving != ms->mark_served) {
            ms->mark_served = serving;
            pthread_cond_broadcast(&ms->mark_cv);
        }
    }
    /* a mark still waiting returns now; etok_meters_stop takes the final readings */
    ms->mark_served = ms->mark_asked;
    pthread_cond_broadcast(&ms->mark_cv);
    pthread_mutex_unlock(&ms->mu);
    return NULL;
}

/* Window edge: wake the sampler thread, have it read every live meter now, wait until those
 * readings are appended. Thread-safe; the caller waits for one read of the meters, never a
 * sampling period. */
int etok_meters_mark(etok_meter_set *ms, etok_err *err) {
    if (!ms || !ms->started) return etok_errc(err, ETOK_EXIT_FAIL, "meters: mark before the meters started");
    pthread_mutex_lock(&ms->mu);
    if (ms->stopped || !ms->thread_running || ms->stop_req) {
        pthread_mutex_unlock(&ms->mu);
        return 0; /* stopped: the final readings are the last edge */
    }
    unsigned long ticket = ++ms->mark_asked;
    pthread_cond_broadcast(&ms->cv);
    while (ms->mark_served - ticket > (unsigned long)-1 / 2) /* served < ticket, wrap-safe */
        pthread_cond_wait(&ms->mark_cv, &ms->mu);
    pthread_mutex_unlock(&ms->mu);
    return 0;
}

int etok_meters_start(etok_meter_set *ms, etok_record *rec, etok_err *err) {
    if (!ms || !rec) return etok_errc(err, ETOK_EXIT_FAIL, "meters: no meter set or record");
    if (ms->started) return etok_errc(err, ETOK_EXIT_FAIL, "meters: already started");
    ms->rec = rec;
    for (int i = 0; i < ms->n_doms; i++) {
        dom_state *s = &ms->doms[i];
        etok_trace *t = etok_record_add_trace(rec);
        if (!t) return etok_errc(err, ETOK_EXIT_FAIL, "meters: out of memory");
        *t = *dom_info(s);
        t->n_samples = 0;
        t->samples = NULL;
        s->trace = rec->n_traces - 1;
    }
    for (int i = 0; i < ms->n_inst; i++)
        if (ms->inst[i]->drv == &etok_meter_nvml && rec->hw.power_limit_w <= 0)
            rec->hw.power_limit_w = etok_nvml_power_limit_w(ms->inst[i]);
    if (pthread_mutex_init(&ms->mu, NULL) != 0) return etok_errc(err, ETOK_EXIT_FAIL, "meters: mutex init failed");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int rc = pthread_cond_init(&ms->cv, &ca);
    pthread_condattr_destroy(&ca);
    if (rc != 0) {
        pthread_mutex_destroy(&ms->mu);
        return etok_errc(err, ETOK_EXIT_FAIL, "meters: condition variable init failed");
    }
    if (pthread_cond_init(&ms->mark_cv, NULL) != 0) {
        pthread_cond_destroy(&ms->cv);
        pthread_mutex_destroy(&ms->mu);
        return etok_errc(err, ETOK_EXIT_FAIL, "meters: condition variable init failed");
    }
    ms->mu_ok = 1;
    ms->t0_mono = etok_mono_s();
    rec->t0_wall_s = etok_wall_s();
    ms->started = 1;
    if (!ms->cfg.live_only) { /* daemons keep no series; a failure here only loses the background figures */
        ms->cpu = etok_cpuload_open(ms->cpu_scope, ms->cpu_pid, NULL);
        ms->cpu_scope_changed = 0;
    }
    sample_all(ms); /* readings at t = 0 */
    sample_cpu(ms, 1);
    if (pthread_create(&ms->thread, NULL, sampler_main, ms) != 0)
        return etok_errc(err, ETOK_EXIT_FAIL, "meters: cannot start the sampler thread: %s", strerror(errno));
    ms->thread_running = 1;
    return 0;
}

int etok_meters_stop(etok_meter_set *ms, etok_err *err) {
    if (!ms || !ms->started || ms->stopped) return 0;
    if (ms->thread_running) {
        pthread_mutex_lock(&ms->mu);
        ms->stop_req = 1;
        pthread_cond_broadcast(&ms->cv);
        pthread_mutex_unlock(&ms->mu);
        pthread_join(ms->thread, NULL);
        pthread_mutex_lock(&ms->mu);
        ms->thread_running = 0;
        pthread_mutex_unlock(&ms->mu);
    }
    sample_all(ms); /* final readings */
    sample_cpu(ms, 1);
    ms->stopped = 1;
    double t_end = etok_mono_s() - ms->t0_mono;
    int rc = 0;
    for (int i = 0; i < ms->n_doms; i++) {
        dom_state *s = &ms->doms[i];
        const etok_trace *info = dom_info(s);
        if (!s->live) {
            if (s->mi->drv->collect(s->mi, ms->rec, s->trace, t_end, err) != 0) rc = -1;
            continue;
        }
        if (s->is_counter && info->update_period_s > 0 && t_end < 2 * info->update_period_s)
            etok_record_add_fault(ms->rec, t_end, info->meter, info->domain, "short_window",
                                  "the run lasted %.3f s, under two updates of this counter (every %.3g s)", t_end,
                                  info->update_period_s);
    }
    pthread_mutex_lock(&ms->mu);
    if (!ms->cross_checked && t_end >= 0.5) cross_check_locked(ms, t_end);
    pthread_mutex_unlock(&ms->mu);
    return rc;
}

void etok_meters_close(etok_meter_set *ms) {
    if (!ms) return;
    if (ms->started && !ms->stopped) etok_meters_stop(ms, NULL);
    for (int i = 0; i < ms->n_inst; i++) {
        ms->inst[i]->drv->close(ms->inst[i]);
        free(ms->inst[i]);
    }
    if (ms->mu_ok) {
        pthread_cond_destroy(&ms->cv);
        pthread_cond_destroy(&ms->mark_cv);
        pthread_mutex_destroy(&ms->mu);
    }
    etok_cpuload_close(ms->cpu);
    free(ms->doms);
    free(ms->errs);
    free(ms);
}

int etok_meters_set_cpu_scope(etok_meter_set *ms, int scope, long pid) {
    if (!ms || scope < ETOK_CPU_SCOPE_PROCESS || scope > ETOK_CPU_SCOPE_NONE) return -1;
    if (!ms->started) {
        ms->cpu_scope = (etok_cpu_scope)scope;
        ms->cpu_pid = pid;
        return 0;
    }
    pthread_mutex_lock(&ms->mu);
    ms->cpu_scope_pending = (etok_cpu_scope)scope;
    ms->cpu_pid_pending = pid;
    ms->cpu_scope_changed = 1;
    pthread_mutex_unlock(&ms->mu);
    return 0;
}

int etok_meters_snapshot(etok_meter_set *ms, etok_energy_snapshot *out) {
    memset(out, 0, sizeof *out);
    if (!ms || !ms->started) return -1;
    pthread_mutex_lock(&ms->mu);
    out->t_s = etok_mono_s() - ms->t0_mono;
    out->energy_j = primary_energy_locked(ms, &out->energy_uncertainty_j, &out->source);
    out->boundary = ms->primary;
    if (ms->ring_n >= 2) {
        int newest = (ms->ring_pos - 1 + RING) % RING;
        int oldest = (ms->ring_pos - ms->ring_n + RING) % RING;
        int pick = oldest;
        for (int k = 1; k < ms->ring_n; k++) { /* newest entry at least 1 s older than the newest */
            int idx = (newest - k + RING) % RING;
            if (ms->ring_t[newest] - ms->ring_t[idx] >= 1.0) { pick = idx; break; }
        }
        double dt = ms->ring_t[newest] - ms->ring_t[pick];
        if (dt > 0) out->power_w = (ms->ring_e[newest] - ms->ring_e[pick]) / dt;
    }
    pthread_mutex_unlock(&ms->mu);
    return 0;
}

double etok_meters_now(const etok_meter_set *ms) { return etok_mono_s() - (ms ? ms->t0_mono : 0); }
double etok_meters_t0_mono_s(const etok_meter_set *ms) { return ms ? ms->t0_mono : 0; }

/* Per-domain live view (meter.h): the same locked state as etok_meters_snapshot, one entry per
 * live domain. Uncertainty per domain as in primary_energy_locked. */
int etok_meters_snapshot_domains(etok_meter_set *ms, etok_domain_energy *out, int cap) {
    if (!ms || !ms->started) return -1;
    pthread_mutex_lock(&ms->mu);
    int n = 0;
    for (int i = 0; i < ms->n_doms && n < cap; i++) {
        const dom_state *s = &ms->doms[i];
        if (!s->live) continue;
        const etok_trace *info = dom_info(s);
        etok_domain_energy *d = &out[n++];
        memset(d, 0, sizeof *d);
        snprintf(d->meter, sizeof d->meter, "%s", info->meter);
        snprintf(d->domain, sizeof d->domain, "%s", info->domain);
        d->source = info->source;
        d->boundary = info->boundary;
        d->summable = info->summable;
        d->primary = info->boundary == ms->primary;
        d->energy_j = s->energy_j;
        d->uncertainty_j = s->is_counter ? 2 * info->resolution_si : s->unc_j;
        if (info->error_band > 0) d->uncertainty_j += info->error_band * s->energy_j;
    }
    pthread_mutex_unlock(&ms->mu);
    return n;
}
