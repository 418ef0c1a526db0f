/* sweep.c — sweeps of one numeric scenario field and the search for crossovers (where the
 * binding constraint of METRICS.md §1 switches). Pure: evaluates the model at each point.
 * Owns: the sweep spec grammar FIELD=START:STOP:STEPS[:log], the sweepable field table,
 * bisection between neighbouring points. Does not own: CSV/SVG output (render/tpf_render.c). */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/parse.h"
#include "etok/tpf.h"

static const char *const FIELDS[] = {
    "facility.power_w", "facility.pue", "facility.cooling_w", "facility.theta",
    "hardware.count", "hardware.devices_per_replica", "hardware.power_limit_w", "hardware.mem_usable_fraction",
    "workload.input_tokens", "workload.output_tokens", "workload.batch",
    "model.attention_window", "utilization", "phi", NULL};

const char *const *etok_sweep_fields(void) { return FIELDS; }

static int is_int_field(const char *f) {
    return !strcmp(f, "hardware.count") || !strcmp(f, "hardware.devices_per_replica") || !strncmp(f, "workload.", 9) ||
           !strcmp(f, "model.attention_window");
}

int etok_tpf_set_field(etok_tpf_scenario *s, const char *f, double v, etok_err *err) {
    if (!isfinite(v)) return etok_errc(err, ETOK_EXIT_USAGE, "%s: value must be finite", f);
    int iv = 0;
    if (is_int_field(f)) v = floor(v + 0.5);
    /* The same limits as a scenario file (tpf_limits.c): a sweep cannot reach what the loader refuses. */
    const etok_field_limit *lim = etok_tpf_field_limit(f);
    if (lim && etok_range_check(f, v, lim->range, err)) return -1;
    if (is_int_field(f)) iv = (int)v;
    if (!strcmp(f, "facility.power_w")) { s->facility_power_w = v; s->has_facility = 1; }
    else if (!strcmp(f, "facility.pue")) { s->pue = v; s->has_facility = 1; }
    else if (!strcmp(f, "facility.cooling_w")) { s->cooling_w = v; s->has_facility = 1; }
    else if (!strcmp(f, "facility.theta")) { s->theta = v; s->has_facility = 1; }
    else if (!strcmp(f, "hardware.count")) s->device_count = iv;
    else if (!strcmp(f, "hardware.devices_per_replica")) s->devices_per_replica = iv;
    else if (!strcmp(f, "hardware.power_limit_w") || !strcmp(f, "hardware.power_cap_w")) s->power_limit_w = v;
    else if (!strcmp(f, "hardware.mem_usable_fraction")) s->mem_usable_fraction = v;
    else if (!strcmp(f, "workload.input_tokens")) s->input_tokens = iv;
    else if (!strcmp(f, "workload.output_tokens")) s->output_tokens = iv;
    else if (!strcmp(f, "workload.batch")) s->batch = iv;
    else if (!strcmp(f, "model.attention_window")) s->model.attention_window = iv;
    else if (!strcmp(f, "utilization")) s->utilization = v;
    else if (!strcmp(f, "phi")) s->phi_system = v;
    else {
        char list[512] = "";
        for (size_t i = 0; FIELDS[i]; i++) {
            strncat(list, FIELDS[i], sizeof list - strlen(list) - 1);
            if (FIELDS[i + 1]) strncat(list, ", ", sizeof list - strlen(list) - 1);
        }
        return etok_errc(err, ETOK_EXIT_USAGE, "--sweep: '%s' is not a sweepable field (known: %s)", f, list);
    }
    return 0;
}

static int parse_d(const char *s, double *out) {
    return etok_parse_double("--sweep", s, ETOK_RANGE(-INFINITY, INFINITY), out, NULL);
}

int etok_sweep_parse(const char *text, etok_sweep_spec *o, etok_err *err) {
    memset(o, 0, sizeof *o);
    const char *eq = strchr(text, '=');
    if (!eq || eq == text || (size_t)(eq - text) >= sizeof o->field)
        return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': expected FIELD=START:STOP:STEPS[:log]", text);
    memcpy(o->field, text, (size_t)(eq - text));
    etok_tpf_scenario probe;
    etok_tpf_scenario_init(&probe);
    if (etok_tpf_set_field(&probe, o->field, 1, err)) return -1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", eq + 1);
    char *parts[5] = {0};
    int np = 0;
    for (char *p = buf, *tok; np < 5 && (tok = strsep(&p, ":")); ) parts[np++] = tok;
    if (np < 3 || np > 4)
        return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': expected FIELD=START:STOP:STEPS[:log]", text);
    double steps;
    if (parse_d(parts[0], &o->start) || parse_d(parts[1], &o->stop) || parse_d(parts[2], &steps))
        return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': START, STOP and STEPS must be numbers", text);
    if (steps != floor(steps) || steps < 2 || steps > 10000)
        return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': STEPS must be a whole number in 2..10000", text);
    o->steps = (int)steps;
    if (np == 4) {
        if (strcmp(parts[3], "log")) return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': the 4th part may only be 'log'", text);
        o->log = 1;
        if (!(o->start > 0 && o->stop > 0))
            return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': a log sweep needs START and STOP > 0", text);
    }
    if (o->start == o->stop) return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': START equals STOP", text);
    /* Both ends inside the field's limits (so is every point between them). */
    const etok_field_limit *lim = etok_tpf_field_limit(o->field);
    const char *which[2] = {"START", "STOP"};
    double ends[2] = {o->start, o->stop};
    for (int i = 0; lim && i < 2; i++) {
        double x = is_int_field(o->field) ? floor(ends[i] + 0.5) : ends[i];
        char rt[96];
        if (etok_range_check(o->field, x, lim->range, NULL))
            return etok_errc(err, ETOK_EXIT_USAGE, "--sweep '%s': %s %.17g is outside the limits of %s (expected %s)", text,
                             which[i], ends[i], o->field, etok_range_text(lim->range, rt, sizeof rt));
    }
    return 0;
}

static double point_x(const etok_sweep_spec *sp, int i) {
    double t = (double)i / (sp->steps - 1);
    if (sp->log) return exp(log(sp->start) + t * (log(sp->stop) - log(sp->start)));
    return sp->start + t * (sp->stop - sp->start);
}

static int eval_at(const etok_tpf_scenario *base, const char *field, double x, double price, etok_sweep_point *p) {
    etok_tpf_scenario s = *base;
    etok_err e = {0};
    p->x = x;
    p->ok = 0;
    if (etok_tpf_set_field(&s, field, x, &e) == 0 && etok_tpf_evaluate(&s, price, &p->r, &e) == 0) {
        p->ok = 1;
        p->error[0] = '\0';
        return 0;
    }
    snprintf(p->error, sizeof p->error, "%.159s", e.msg);
    return -1;
}

int etok_sweep_run(const etok_tpf_scenario *base, const etok_sweep_spec *spec, double price, etok_sweep *out, etok_err *err) {
    memset(out, 0, sizeof *out);
    out->spec = *spec;
    out->points = calloc((size_t)spec->steps, sizeof *out->points);
    if (!out->points) return etok_errc(err, ETOK_EXIT_FAIL, "--sweep: out of memory");
    out->n = (size_t)spec->steps;
    int any_ok = 0;
    int integer = is_int_field(spec->field);
    for (int i = 0; i < spec->steps; i++) {
        double x = point_x(spec, i);
        eval_at(base, spec->field, integer ? floor(x + 0.5) : x, price, &out->points[i]);
        any_ok |= out->points[i].ok;
    }
    if (!any_ok) {
        etok_errc(err, ETOK_EXIT_INPUT, "--sweep %s: no point is feasible (first: %s)", spec->field, out->points[0].error);
        etok_sweep_free(out);
        return -1;
    }
    /* Crossovers: bisection between neighbouring feasible points whose binding differs. */
    for (size_t i = 0; i + 1 < out->n; i++) {
        /* neighbouring feasible points (infeasible ones in between are skipped) */
        size_t j = i + 1;
        while (j < out->n && !out->points[j].ok) j++;
        if (j >= out->n) break;
        etok_sweep_point *a = &out->points[i], *b = &out->points[j];
        if (!a->ok || a->r.binding == b->r.binding) continue;
        double lo = a->x, hi = b->x;
        etok_ceiling from = a->r.binding, to = b->r.binding;
        etok_sweep_point mid;
        for (int it = 0; it < 200; it++) {
            if (integer ? fabs(hi - lo) <= 1.0 : fabs(hi - lo) <= 1e-9 * fmax(fabs(lo), fabs(hi))) break;
            double x = spec->log && lo > 0 && hi > 0 ? sqrt(lo * hi) : (lo + hi) / 2;
            if (integer) x = floor(x + 0.5);
            if (x == lo || x == hi) break;
            if (eval_at(base, spec->field, x, price, &mid) && integer) {
                /* Infeasible whole value (e.g. a device count that is not a multiple of the
                 * replica size): look for the nearest feasible value strictly inside (lo, hi). */
                int found = 0;
                for (double d = 1; !found && (x - d > lo || x + d < hi); d++) {
                    if (x - d > lo && eval_at(base, spec->field, x - d, price, &mid) == 0) { x -= d; found = 1; }
                    else if (x + d < hi && eval_at(base, spec->field, x + d, price, &mid) == 0) { x += d; found = 1; }
                }
                if (!found) break;
            }
            if (!mid.ok || mid.r.binding != from) {
                hi = x;
                if (mid.ok) to = mid.r.binding;
            } else {
                lo = x;
            }
        }
        etok_crossover *nc = realloc(out->crossovers, (out->n_crossovers + 1) * sizeof *nc);
        if (!nc) { etok_sweep_free(out); return etok_errc(err, ETOK_EXIT_FAIL, "--sweep: out of memory"); }
        out->crossovers = nc;
        nc[out->n_crossovers].x = integer ? hi : (lo + hi) / 2;
        nc[out->n_crossovers].from = from;
        nc[out->n_crossovers].to = to;
        eval_at(base, spec->field, nc[out->n_crossovers].x, price, &nc[out->n_crossovers].at);
        out->n_crossovers++;
    }
    return 0;
}

void etok_sweep_free(etok_sweep *sw) {
    if (!sw) return;
    free(sw->points);
    free(sw->crossovers);
    sw->points = NULL;
    sw->crossovers = NULL;
    sw->n = sw->n_crossovers = 0;
}

size_t etok_sweep_regions(const etok_sweep *sw, etok_sweep_region **out) {
    *out = NULL;
    size_t n = sw->n, cap = 0, k = 0;
    for (size_t i = 0; i < n;) {
        if (!sw->points[i].ok) { i++; continue; }
        etok_ceiling b = sw->points[i].r.binding;
        size_t j = i;
        while (j + 1 < n && sw->points[j + 1].ok && sw->points[j + 1].r.binding == b) j++;
        double x0 = sw->points[i].x, x1 = sw->points[j].x;
        for (size_t c = 0; c < sw->n_crossovers; c++) {
            double cx = sw->crossovers[c].x;
            if (i > 0 && cx <= x0 && cx >= sw->points[i - 1].x) x0 = cx;
            if (j + 1 < n && cx >= x1 && cx <= sw->points[j + 1].x) x1 = cx;
        }
        if (k == cap) {
            cap = cap ? 2 * cap : 8;
            etok_sweep_region *nr = realloc(*out, cap * sizeof *nr);
            if (!nr) { free(*out); *out = NULL; return (size_t)-1; }
            *out = nr;
        }
        (*out)[k++] = (etok_sweep_region){x0, x1, b, i, j};
        i = j + 1;
    }
    return k;
}
