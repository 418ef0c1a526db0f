/* run_summary.c — render: the energy summary of one run as text, Markdown, CSV and JSON.
 *
 * Owns formatting only: every figure comes from etok_energy_summary (analyse/energy.c).
 * Each energy/power figure carries its boundary, source and uncertainty; estimates are
 * labelled "ESTIMATE (model, not a measurement)"; unknown figures print as "unknown"
 * (text/Markdown), empty (CSV) or null (JSON), never as 0. */
#include "etok/bgload.h"
#include "etok/run_summary.h"

#include <math.h>
#include <string.h>

/* A number with a sensible number of digits for its size. */
static const char *num(char *buf, size_t cap, double v) {
    double a = fabs(v);
    if (!isfinite(v)) snprintf(buf, cap, "unknown");
    else if (a >= 1e6 || (a > 0 && a < 1e-3)) snprintf(buf, cap, "%.4g", v);
    else if (a >= 100) snprintf(buf, cap, "%.1f", v);
    else if (a >= 1) snprintf(buf, cap, "%.3f", v);
    else snprintf(buf, cap, "%.4f", v);
    return buf;
}

/* "12.345 ± 0.400 J" or "unknown" */
static const char *pm(char *buf, size_t cap, double v, double u, const char *unit) {
    char a[32], b[32];
    if (!isfinite(v)) snprintf(buf, cap, "unknown");
    else if (isfinite(u) && u > 0 && u < 1e6 && fabs(v) < 1e9) {
        /* two significant digits of uncertainty, the value to the same decimal place */
        int dec = 1 - (int)floor(log10(u));
        if (dec < 0) dec = 0;
        if (dec > 9) dec = 9;
        snprintf(buf, cap, "%.*f ± %.*f %s", dec, v, dec, u, unit);
    } else if (isfinite(u)) snprintf(buf, cap, "%s ± %s %s", num(a, sizeof a, v), num(b, sizeof b, u), unit);
    else snprintf(buf, cap, "%s %s", num(a, sizeof a, v), unit);
    return buf;
}

static const char *source_label(etok_source s) {
    return s == ETOK_SOURCE_ESTIMATE ? "ESTIMATE (model, not a measurement)" : etok_source_name(s);
}

static const char *trace_note(const etok_trace *t, const etok_trace_energy *e) {
    if (!e->valid) return e->problem;
    if (!t->summable) return "not summed (nested in or duplicate of another domain)";
    return e->problem;
}

/* Why a partial record is partial, in words (the record's stop_reason; older records: interrupted). */
static const char *partial_why(const etok_record *r) {
    if (!strcmp(r->stop_reason, "endpoint_unreachable")) return "endpoint unreachable";
    if (!strcmp(r->stop_reason, "error")) return "the driver failed";
    if (!strcmp(r->stop_reason, "all_requests_failed")) return "every request failed";
    return "interrupted";
}

void etok_run_summary_text(FILE *f, const etok_record *r, const etok_energy_summary *s, const char *record_path) {
    char b1[96], b2[96];
    fprintf(f, "etok %s: %s%s%s%s\n", r->kind[0] ? r->kind : "run", r->command, r->partial ? "   [PARTIAL: " : "",
            r->partial ? partial_why(r) : "", r->partial ? "]" : "");
    if (r->exit_status >= 0) fprintf(f, "  exit status     %d\n", r->exit_status);
    fprintf(f, "  duration        %s s\n", num(b1, sizeof b1, s->duration_s));
    if (!s->has_energy) {
        fprintf(f, "  energy          unknown: no meter reading covers the window\n");
    } else {
        fprintf(f, "  energy          %s   [%s boundary, %s]\n", pm(b1, sizeof b1, s->energy_j, s->energy_uncertainty_j, "J"),
                etok_boundary_name(s->boundary), source_label(s->source));
    }
    for (int b = 0; b < 3; b++) {
        const etok_boundary_energy *be = &s->window.boundaries[b];
        if (!be->present || !s->has_energy || (etok_boundary)b == s->boundary) continue;
        fprintf(f, "  also at %-7s %s   [%s boundary, %s; not added to the total above]\n",
                etok_boundary_name((etok_boundary)b), pm(b1, sizeof b1, be->energy_j, be->energy_uncertainty_j, "J"),
                etok_boundary_name((etok_boundary)b), source_label(be->source));
    }
    for (size_t i = 0; i < r->n_traces; i++) {
        const etok_trace *t = &r->traces[i];
        const etok_trace_energy *e = &s->window.traces[i];
        char name[140];
        snprintf(name, sizeof name, "%s/%s", t->meter, t->domain);
        const char *note = trace_note(t, e);
        fprintf(f, "    %-24s %-26s %s, %s%s%s\n", name,
                e->valid ? pm(b1, sizeof b1, e->energy_j, e->energy_uncertainty_j, "J") : "unknown",
                etok_boundary_name(t->boundary), source_label(t->source), note && *note ? "; " : "", note ? note : "");
    }
    if (s->has_energy)
        fprintf(f, "  mean power      %s   [%s, %s]\n",
                pm(b1, sizeof b1, s->mean_power_w, s->mean_power_uncertainty_w, "W"),
                etok_boundary_name(s->boundary), source_label(s->source));
    if (s->has_idle) {
        fprintf(f, "  idle power      %s   [%s baseline of %s s]\n",
                pm(b1, sizeof b1, s->idle_power_w, s->idle_power_uncertainty_w, "W"), etok_boundary_name(s->boundary),
                num(b2, sizeof b2, s->idle.duration_s));
        fprintf(f, "  dynamic energy  %s   (energy - idle power x duration)\n",
                pm(b1, sizeof b1, s->dynamic_energy_j, s->dynamic_energy_uncertainty_j, "J"));
    } else {
        fprintf(f, "  idle power      unknown (no idle baseline%s)\n", r->idle_end_s > r->idle_start_s ? " reading" : "; --idle 0");
    }
    if (s->tokens_known) {
        fprintf(f, "  tokens          %lld output, %lld input\n", s->tokens_out, s->tokens_in);
        fprintf(f, "  J/token         %s per output token (total energy)\n",
                pm(b1, sizeof b1, s->joules_per_output_token, s->joules_per_output_token_uncertainty, "J"));
    } else {
        fprintf(f, "  tokens          unknown (give --tokens N or --tokens-regex RE for J/token)\n");
    }
    if (s->has_energy)
        fprintf(f, "  PUE-adjusted    %s   (mean power x PUE %g, %s)\n", pm(b1, sizeof b1, s->pue_adjusted_power_w, s->pue_adjusted_power_uncertainty_w, "W"),
                s->pue, s->pue_source);
    if (s->short_window)
        fprintf(f, "  warning: the window is shorter than %d counter updates or power samples (or a counter did not move): "
                   "its energy is uncertain, not 0 J\n", ETOK_ENERGY_MIN_UPDATES);
    if (s->incomplete) fprintf(f, "  warning: readings cover only part of the window; energy is not extrapolated\n");
    for (size_t i = 0; i < r->n_faults; i++)
        fprintf(f, "  fault at %s s: %s %s %s: %s\n", num(b1, sizeof b1, r->faults[i].t_s), r->faults[i].meter,
                r->faults[i].domain, r->faults[i].kind, r->faults[i].message);
    if (record_path) fprintf(f, "  record          %s\n", record_path);
}

void etok_run_summary_markdown(FILE *f, const etok_record *r, const etok_energy_summary *s) {
    char b1[96];
    fprintf(f, "# etok %s report%s%s%s\n\n", r->kind[0] ? r->kind : "run", r->partial ? " (PARTIAL: " : "",
            r->partial ? partial_why(r) : "", r->partial ? ")" : "");
    fprintf(f, "Command: `%s`  \nHost: %s (%s, %d CPUs), kernel %s  \n", r->command, r->host, r->cpu_model, r->cpu_count,
            r->kernel);
    if (s->has_energy)
        fprintf(f, "Primary boundary: **%s**; source: **%s**\n\n", etok_boundary_name(s->boundary), source_label(s->source));
    else
        fprintf(f, "No meter reading covers the window: energy unknown.\n\n");
    fprintf(f, "| figure | value | uncertainty | unit |\n|---|---|---|---|\n");
#define ROW(name, v, u, unit)                                                                              \
    do {                                                                                                    \
        char x[48], y[48];                                                                                  \
        fprintf(f, "| %s | %s | %s | %s |\n", name, num(x, sizeof x, v), isfinite(u) ? num(y, sizeof y, u) : "", unit); \
    } while (0)
    ROW("duration_s", s->duration_s, NAN, "s");
    ROW("energy_j", s->energy_j, s->energy_uncertainty_j, "J");
    ROW("mean_power_w", s->mean_power_w, s->mean_power_uncertainty_w, "W");
    ROW("idle_power_w", s->idle_power_w, s->idle_power_uncertainty_w, "W");
    ROW("dynamic_energy_j", s->dynamic_energy_j, s->dynamic_energy_uncertainty_j, "J");
    ROW("joules_per_output_token", s->joules_per_output_token, s->joules_per_output_token_uncertainty, "J/token");
    ROW("joules_per_token", s->joules_per_token, NAN, "J/token");
    ROW("pue", s->pue, NAN, s->pue_source);
    ROW("pue_adjusted_power_w", s->pue_adjusted_power_w, s->pue_adjusted_power_uncertainty_w, "W");
#undef ROW
    for (int b = 0; b < 3; b++) {
        const etok_boundary_energy *be = &s->window.boundaries[b];
        if (!be->present || !s->has_energy || (etok_boundary)b == s->boundary) continue;
        char x[48], y[48];
        fprintf(f, "\nAlso measured at the %s boundary (not added to the total): %s ± %s J, %s.\n",
                etok_boundary_name((etok_boundary)b), num(x, sizeof x, be->energy_j), num(y, sizeof y, be->energy_uncertainty_j),
                source_label(be->source));
    }
    if (s->tokens_known) fprintf(f, "\nTokens: %lld output, %lld input.\n", s->tokens_out, s->tokens_in);
    else fprintf(f, "\nTokens: unknown.\n");
    fprintf(f, "\n| meter | domain | boundary | source | summed | energy (J) | uncertainty (J) | mean power (W) | note |\n"
               "|---|---|---|---|---|---|---|---|---|\n");
    for (size_t i = 0; i < r->n_traces; i++) {
        const etok_trace *t = &r->traces[i];
        const etok_trace_energy *e = &s->window.traces[i];
        char x[48], y[48], z[48];
        fprintf(f, "| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", t->meter, t->domain, etok_boundary_name(t->boundary),
                source_label(t->source), t->summable ? "yes" : "no", e->valid ? num(x, sizeof x, e->energy_j) : "unknown",
                e->valid ? num(y, sizeof y, e->energy_uncertainty_j) : "", e->valid ? num(z, sizeof z, e->mean_power_w) : "",
                trace_note(t, e));
    }
    if (s->short_window || s->incomplete || r->n_faults) fprintf(f, "\n## Warnings and faults\n\n");
    if (s->short_window)
        fprintf(f, "- The window is shorter than %d counter updates or power samples (or a counter did not move): energy uncertain, not 0 J.\n",
                ETOK_ENERGY_MIN_UPDATES);
    if (s->incomplete) fprintf(f, "- Readings cover only part of the window; energy is not extrapolated.\n");
    for (size_t i = 0; i < r->n_faults; i++)
        fprintf(f, "- %s s: %s %s **%s**: %s\n", num(b1, sizeof b1, r->faults[i].t_s), r->faults[i].meter, r->faults[i].domain,
                r->faults[i].kind, r->faults[i].message);
}

static void csv_str(FILE *f, const char *s) {
    fputc('"', f);
    for (; s && *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void csv_num(FILE *f, double v) {
    if (isfinite(v)) fprintf(f, ",%.17g", v);
    else fputc(',', f);
}

void etok_run_summary_csv(FILE *f, const etok_record *r, const etok_energy_summary *s) {
    fprintf(f, "scope,meter,domain,boundary,source,summable,duration_s,energy_j,energy_uncertainty_j,mean_power_w,"
               "idle_power_w,dynamic_energy_j,joules_per_output_token,pue_adjusted_power_w,short_window,incomplete,note\n");
    fprintf(f, "total,,,%s,%s,", s->has_energy ? etok_boundary_name(s->boundary) : "",
            s->has_energy ? etok_source_name(s->source) : "");
    csv_num(f, s->duration_s);
    csv_num(f, s->energy_j);
    csv_num(f, s->energy_uncertainty_j);
    csv_num(f, s->mean_power_w);
    csv_num(f, s->idle_power_w);
    csv_num(f, s->dynamic_energy_j);
    csv_num(f, s->joules_per_output_token);
    csv_num(f, s->pue_adjusted_power_w);
    fprintf(f, ",%d,%d,", s->short_window, s->incomplete);
    char why[64];
    snprintf(why, sizeof why, "partial: %s", partial_why(r));
    csv_str(f, r->partial ? why : "");
    fputc('\n', f);
    for (size_t i = 0; i < r->n_traces; i++) {
        const etok_trace *t = &r->traces[i];
        const etok_trace_energy *e = &s->window.traces[i];
        const etok_trace_energy *ie = s->has_idle ? &s->idle.traces[i] : NULL;
        fputs("trace,", f);
        csv_str(f, t->meter);
        fputc(',', f);
        csv_str(f, t->domain);
        fprintf(f, ",%s,%s,%d", etok_boundary_name(t->boundary), etok_source_name(t->source), t->summable);
        csv_num(f, s->duration_s);
        csv_num(f, e->valid ? e->energy_j : NAN);
        csv_num(f, e->valid ? e->energy_uncertainty_j : NAN);
        csv_num(f, e->valid ? e->mean_power_w : NAN);
        csv_num(f, ie && ie->valid ? ie->mean_power_w : NAN);
        fputs(",,,", f);
        fprintf(f, ",%d,%d,", e->short_window, e->incomplete);
        csv_str(f, trace_note(t, e));
        fputc('\n', f);
    }
}

static json_t *jnum(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *etok_run_summary_json(const etok_record *r, const etok_energy_summary *s) {
    json_t *o = json_object();
    if (!o) return NULL;
    json_object_set_new(o, "kind", json_string(r->kind));
    json_object_set_new(o, "command", json_string(r->command));
    json_object_set_new(o, "partial", json_boolean(r->partial));
    if (r->stop_reason[0]) json_object_set_new(o, "stop_reason", json_string(r->stop_reason));
    json_object_set_new(o, "exit_status", json_integer(r->exit_status));
    json_object_set_new(o, "boundary", s->has_energy ? json_string(etok_boundary_name(s->boundary)) : json_null());
    json_object_set_new(o, "source", s->has_energy ? json_string(etok_source_name(s->source)) : json_null());
    json_object_set_new(o, "duration_s", jnum(s->duration_s));
    json_object_set_new(o, "energy_j", jnum(s->energy_j));
    json_object_set_new(o, "energy_uncertainty_j", jnum(s->energy_uncertainty_j));
    json_object_set_new(o, "mean_power_w", jnum(s->mean_power_w));
    json_object_set_new(o, "mean_power_uncertainty_w", jnum(s->mean_power_uncertainty_w));
    json_object_set_new(o, "idle_power_w", jnum(s->idle_power_w));
    json_object_set_new(o, "idle_power_uncertainty_w", jnum(s->idle_power_uncertainty_w));
    json_object_set_new(o, "idle_duration_s", s->has_idle ? jnum(s->idle.duration_s) : json_null());
    json_object_set_new(o, "dynamic_energy_j", jnum(s->dynamic_energy_j));
    json_object_set_new(o, "dynamic_energy_uncertainty_j", jnum(s->dynamic_energy_uncertainty_j));
    json_object_set_new(o, "tokens_known", json_boolean(s->tokens_known));
    json_object_set_new(o, "tokens_in", s->tokens_known ? json_integer(s->tokens_in) : json_null());
    json_object_set_new(o, "tokens_out", s->tokens_known ? json_integer(s->tokens_out) : json_null());
    json_object_set_new(o, "joules_per_output_token", jnum(s->joules_per_output_token));
    json_object_set_new(o, "joules_per_output_token_uncertainty", jnum(s->joules_per_output_token_uncertainty));
    json_object_set_new(o, "joules_per_token", jnum(s->joules_per_token));
    json_object_set_new(o, "pue", jnum(s->pue));
    json_object_set_new(o, "pue_source", json_string(s->pue_source));
    json_object_set_new(o, "pue_adjusted_power_w", jnum(s->pue_adjusted_power_w));
    json_object_set_new(o, "pue_adjusted_power_uncertainty_w", jnum(s->pue_adjusted_power_uncertainty_w));
    json_object_set_new(o, "short_window", json_boolean(s->short_window));
    json_object_set_new(o, "incomplete", json_boolean(s->incomplete));
    json_object_set_new(o, "n_faults", json_integer(s->n_faults));

    json_t *bs = json_object();
    json_object_set_new(o, "boundaries", bs);
    for (int b = 0; b < 3; b++) {
        const etok_boundary_energy *be = &s->window.boundaries[b];
        if (!be->present) continue;
        json_t *jb = json_object();
        json_object_set_new(jb, "energy_j", jnum(be->energy_j));
        json_object_set_new(jb, "energy_uncertainty_j", jnum(be->energy_uncertainty_j));
        json_object_set_new(jb, "mean_power_w", jnum(be->mean_power_w));
        json_object_set_new(jb, "source", json_string(etok_source_name(be->source)));
        json_object_set_new(jb, "n_traces", json_integer(be->n_traces));
        json_object_set_new(jb, "short_window", json_boolean(be->short_window));
        json_object_set_new(bs, etok_boundary_name((etok_boundary)b), jb);
    }

    json_t *ts = json_array();
    json_object_set_new(o, "traces", ts);
    for (size_t i = 0; i < r->n_traces; i++) {
        const etok_trace *t = &r->traces[i];
        const etok_trace_energy *e = &s->window.traces[i];
        const etok_trace_energy *ie = s->has_idle ? &s->idle.traces[i] : NULL;
        json_t *jt = json_object();
        json_object_set_new(jt, "meter", json_string(t->meter));
        json_object_set_new(jt, "domain", json_string(t->domain));
        json_object_set_new(jt, "boundary", json_string(etok_boundary_name(t->boundary)));
        json_object_set_new(jt, "source", json_string(etok_source_name(t->source)));
        json_object_set_new(jt, "summable", json_boolean(t->summable));
        if (t->power_field[0]) json_object_set_new(jt, "power_field", json_string(t->power_field));
        json_object_set_new(jt, "energy_j", e->valid ? jnum(e->energy_j) : json_null());
        json_object_set_new(jt, "energy_uncertainty_j", e->valid ? jnum(e->energy_uncertainty_j) : json_null());
        json_object_set_new(jt, "mean_power_w", e->valid ? jnum(e->mean_power_w) : json_null());
        json_object_set_new(jt, "idle_power_w", ie && ie->valid ? jnum(ie->mean_power_w) : json_null());
        json_object_set_new(jt, "covered_s", jnum(e->covered_s));
        json_object_set_new(jt, "update_period_s", jnum(e->period_s));
        json_object_set_new(jt, "expected_updates", jnum(e->expected_updates));
        json_object_set_new(jt, "n_samples", json_integer(e->n_samples));
        json_object_set_new(jt, "n_changes", json_integer(e->n_changes));
        json_object_set_new(jt, "n_wraps", json_integer(e->n_wraps));
        json_object_set_new(jt, "n_resets", json_integer(e->n_resets));
        json_object_set_new(jt, "short_window", json_boolean(e->short_window));
        json_object_set_new(jt, "incomplete", json_boolean(e->incomplete));
        json_object_set_new(jt, "n_faults", json_integer(e->n_faults));
        json_object_set_new(jt, "note", json_string(trace_note(t, e)));
        json_array_append_new(ts, jt);
    }
    json_t *fs = json_array();
    json_object_set_new(o, "faults", fs);
    for (size_t i = 0; i < r->n_faults; i++) {
        json_t *jf = json_object();
        json_object_set_new(jf, "t_s", jnum(r->faults[i].t_s));
        json_object_set_new(jf, "meter", json_string(r->faults[i].meter));
        json_object_set_new(jf, "domain", json_string(r->faults[i].domain));
        json_object_set_new(jf, "kind", json_string(r->faults[i].kind));
        json_object_set_new(jf, "message", json_string(r->faults[i].message));
        json_array_append_new(fs, jf);
    }
    json_object_set_new(o, "background", etok_run_summary_background_json(r, s, 0));
    return o;
}

json_t *etok_run_summary_background_json(const etok_record *r, const etok_energy_summary *s, int process_boundary) {
    etok_bgload bg;
    etok_bgload_analyse(r, &bg);
    if (!bg.present) return json_null();
    json_t *o = json_object();
    if (!o) return json_null();
    static const char *const key[ETOK_PHASE_COUNT] = {"idle", "warmup", "window"};
    json_object_set_new(o, "scope", json_string(r->cpuload.scope));
    json_object_set_new(o, "source", json_string("/proc"));
    json_t *ph = json_object();
    json_object_set_new(o, "phases", ph);
    for (int k = 0; k < ETOK_PHASE_COUNT; k++) {
        const etok_cpuload_phase *p = &bg.phase[k];
        json_t *jp = json_object();
        json_object_set_new(jp, "valid", json_boolean(p->valid));
        json_object_set_new(jp, "machine_busy_cores", p->valid ? jnum(p->machine_busy_cores) : json_null());
        json_object_set_new(jp, "own_busy_cores", p->valid && p->own_busy_cores >= 0 ? jnum(p->own_busy_cores) : json_null());
        json_object_set_new(jp, "background_busy_cores",
                            p->valid && p->background_busy_cores >= 0 ? jnum(p->background_busy_cores) : json_null());
        json_object_set_new(jp, "background_noise_cores", p->valid ? jnum(p->background_noise_cores) : json_null());
        json_object_set_new(ph, key[k], jp);
    }
    json_object_set_new(o, "changed", bg.changed < 0 ? json_null() : json_boolean(bg.changed));
    json_object_set_new(o, "change_cores", jnum(bg.change_cores));
    json_object_set_new(o, "threshold_cores", jnum(ETOK_BG_THRESHOLD_CORES));
    json_object_set_new(o, "warning", bg.warning[0] ? json_string(bg.warning) : json_null());
    if (process_boundary) {
        etok_process_energy pe;
        json_t *jp = json_object();
        if (etok_process_energy_compute(r, s, &pe) != 0) {
            json_object_set_new(jp, "valid", json_false());
            json_object_set_new(jp, "note", json_string("not available: out of memory"));
        } else {
            json_object_set_new(jp, "valid", json_boolean(pe.valid));
            json_object_set_new(jp, "source", json_string("attribution-model"));
            json_object_set_new(jp, "energy_j", pe.valid ? jnum(pe.energy_j) : json_null());
            json_object_set_new(jp, "joules_per_output_token", pe.valid ? jnum(pe.joules_per_output_token) : json_null());
            json_object_set_new(jp, "share_of_device", pe.valid ? jnum(pe.share_of_device) : json_null());
            json_object_set_new(jp, "own_cpu_share", pe.valid ? jnum(pe.own_cpu_share) : json_null());
            json_object_set_new(jp, "idle_power_w", pe.valid ? jnum(pe.idle_power_w) : json_null());
            json_object_set_new(jp, "baseline_power_w", jnum(pe.baseline_power_w));
            json_object_set_new(jp, "baseline_busy_cores", jnum(pe.baseline_busy_cores));
            json_object_set_new(jp, "watts_per_busy_core", pe.fitted ? jnum(pe.watts_per_core) : json_null());
            json_object_set_new(jp, "note", json_string(pe.note));
        }
        json_object_set_new(o, "process", jp);
    }
    return o;
}

void etok_run_summary_background(FILE *f, const etok_record *r, const etok_energy_summary *s, int process_boundary) {
    etok_bgload bg;
    etok_bgload_analyse(r, &bg);
    static const char *const label[ETOK_PHASE_COUNT] = {"idle baseline", "warm-up", "window"};
    if (bg.present) {
        fprintf(f, "  background CPU  own work = %s%s (cores: machine busy - own = background, from /proc)\n",
                r->cpuload.scope, !strcmp(r->cpuload.scope, "none") ? ": background not separable" : "");
        for (int k = 0; k < ETOK_PHASE_COUNT; k++) {
            const etok_cpuload_phase *p = &bg.phase[k];
            if (!p->valid) continue;
            if (p->background_busy_cores < 0)
                fprintf(f, "    %-14s machine %.2f busy cores\n", label[k], p->machine_busy_cores);
            else
                fprintf(f, "    %-14s machine %.2f - own %.2f = background %.2f +- %.2f cores\n", label[k],
                        p->machine_busy_cores, p->own_busy_cores, p->background_busy_cores, p->background_noise_cores);
        }
        if (bg.warning[0]) fprintf(f, "  warning: %s\n", bg.warning);
    }
    if (!process_boundary) return;
    etok_process_energy pe;
    if (etok_process_energy_compute(r, s, &pe) != 0) {
        fprintf(f, "  process boundary: out of memory\n");
        return;
    }
    if (!pe.valid) {
        fprintf(f, "  process energy  %s\n", pe.note);
        return;
    }
    fprintf(f, "  process energy  %.6g J = %.0f%% of the device figure, own CPU share %.2f   [%s]\n", pe.energy_j,
            100 * pe.share_of_device, pe.own_cpu_share, pe.note);
    if (isfinite(pe.joules_per_output_token))
        fprintf(f, "  process J/token %.6g J per output token (attribution model; device figure above stands)\n",
                pe.joules_per_output_token);
}
