/* tpf_calibrate.c — `etok tpf --calibrate RUN... [-o PROFILE.json] [--model NAME] [--json]`:
 * fit this machine's TPF calibration from its own bench runs and report the leave-one-out
 * prediction error (docs/TPF.md "Calibrating from runs"). Wiring and printing only: the fit and
 * the prediction are analyse/calibrate.c's, reading and writing scenario/cal_io.c's. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "commands.h"
#include "etok/calibrate.h"
#include "etok/util.h"
#include "scenario/cal_io.h"

#define TARGET 0.25

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}
static double median(double *v, int n) {
    if (!n) return NAN;
    qsort(v, (size_t)n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}
static json_t *jnn(double v) { return isfinite(v) ? json_real(v) : json_null(); }

/* Leave-one-out over the runs: pred[i] from a fit of every other run; |errors| in ed, ej. */
static int loo(etok_cal_run *runs, int n, const etok_hw_spec *roofs, const etok_model_arch *model, etok_cal_fit_result *fit,
               etok_cal_prediction *pred, double *ed, double *ej, int *extrap, int *in_d, int *in_j, etok_err *err) {
    int *use = calloc((size_t)n, sizeof *use);
    if (!use) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
    *in_d = *in_j = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) use[k] = k != i;
        /* 0: the batch is in the fit; 1: between fitted batches (interpolated); 2: outside (flat) */
        int lo = 0, hi = 0;
        extrap[i] = 1;
        for (int k = 0; k < n; k++) {
            if (k == i) continue;
            if (runs[k].batch == runs[i].batch) extrap[i] = 0;
            lo |= runs[k].batch < runs[i].batch;
            hi |= runs[k].batch > runs[i].batch;
        }
        if (extrap[i] && !(lo && hi)) extrap[i] = 2;
        if (etok_cal_fit(runs, (size_t)n, use, roofs, model, fit, err) || etok_cal_predict(&fit->hw, model, &runs[i], &pred[i], err)) {
            free(use);
            return -1;
        }
        ed[i] = fabs(pred[i].decode_tps / runs[i].decode_tps - 1);
        ej[i] = fabs(pred[i].joules_per_output_token / runs[i].joules_per_output_token - 1);
        *in_d += ed[i] <= TARGET;
        *in_j += ej[i] <= TARGET;
    }
    free(use);
    return 0;
}

static void med_max(const double *v, int n, double *med, double *max) {
    double *t = calloc((size_t)n + 1, sizeof *t);
    if (!t) { *med = *max = NAN; return; }
    memcpy(t, v, (size_t)n * sizeof *t);
    *med = median(t, n);
    *max = t[n - 1];
    free(t);
}

int cmd_tpf_calibrate(int n, char **paths, const char *out_path, const char *model_name, int json) {
    if (n < 2) {
        fprintf(stderr, "etok tpf: --calibrate needs at least two bench runs (RUN.json or bench -o DIRs), for leave-one-out\n");
        return ETOK_EXIT_USAGE;
    }
    etok_err err = {0};
    if (out_path && etok_check_output_path(out_path, &err)) {
        fprintf(stderr, "etok tpf: %s\n", err.msg);
        return err.exit_code ? err.exit_code : ETOK_EXIT_OUTPUT;
    }
    etok_cal_run *runs = calloc((size_t)n, sizeof *runs);
    int *use = calloc((size_t)n, sizeof *use);
    etok_cal_fit_result *fit = calloc(1, sizeof *fit);
    etok_cal_prediction *pred = calloc((size_t)n, sizeof *pred);
    double *ed = calloc((size_t)n, sizeof *ed), *ej = calloc((size_t)n, sizeof *ej);
    double *sed = calloc((size_t)n, sizeof *sed), *sej = calloc((size_t)n, sizeof *sej);
    etok_cal_prediction *spred = calloc((size_t)n, sizeof *spred);
    int *extrap = calloc((size_t)n, sizeof *extrap);
    int rc = ETOK_EXIT_OK;
    if (!runs || !use || !fit || !pred || !ed || !ej || !extrap || !sed || !sej || !spred) { rc = ETOK_EXIT_FAIL; fprintf(stderr, "etok tpf: out of memory\n"); goto out; }
    char host0[128] = "", host[128];
    for (int i = 0; i < n; i++) {
        if (etok_cal_load_run(paths[i], &runs[i], host, sizeof host, &err)) goto fail;
        if (i == 0) snprintf(host0, sizeof host0, "%s", host);
        else if (strcmp(host, host0)) {
            etok_errc(&err, ETOK_EXIT_INPUT, "%s: host '%s' differs from '%s' of %s: a calibration is of one machine", paths[i],
                      host, host0, paths[0]);
            goto fail;
        }
        if (fabs(runs[i].mem_bw_bps / runs[0].mem_bw_bps - 1) > 1e-9 || fabs(runs[i].peak_flops / runs[0].peak_flops - 1) > 1e-9)
            fprintf(stderr, "etok tpf: warning: %s has other roofs than %s (a re-probed profile); %s's are used\n", paths[i],
                    paths[0], paths[0]);
    }
    etok_model_arch model;
    if (etok_cal_find_model(&runs[0], model_name, &model, &err)) goto fail;
    etok_hw_spec roofs;
    etok_cal_roofs(&runs[0], &roofs);
    {
        long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
        if (pages > 0 && psz > 0) roofs.mem_bytes = (double)pages * (double)psz;
    }
    snprintf(roofs.name, sizeof roofs.name, "calibrated-%.40s", host0);
    snprintf(roofs.display_name, sizeof roofs.display_name, "%.60s (etok probe + tpf --calibrate)", host0);

    /* leave-one-out: the probe's roofs, then (where every run recorded its CPU share) roofs
     * scaled by the share of the machine each run got */
    int in_d = 0, in_j = 0;
    if (loo(runs, n, &roofs, &model, fit, pred, ed, ej, extrap, &in_d, &in_j, &err)) goto fail;
    int have_share = 1;
    for (int i = 0; i < n; i++) have_share &= isfinite(runs[i].cpu_share) && runs[i].cpu_share > 0;
    int sin_d = 0, sin_j = 0;
    if (have_share) {
        for (int i = 0; i < n; i++) runs[i].roof_scale = runs[i].cpu_share;
        int rr = loo(runs, n, &roofs, &model, fit, spred, sed, sej, extrap, &sin_d, &sin_j, &err);
        for (int i = 0; i < n; i++) runs[i].roof_scale = 1;
        if (rr) goto fail;
    }
    /* the profile: a fit of all runs */
    for (int k = 0; k < n; k++) use[k] = 1;
    if (etok_cal_fit(runs, (size_t)n, use, &roofs, &model, fit, &err)) goto fail;
    if (out_path) {
        const char **labels = calloc((size_t)n, sizeof *labels);
        if (!labels) { rc = ETOK_EXIT_FAIL; fprintf(stderr, "etok tpf: out of memory\n"); goto out; }
        for (int i = 0; i < n; i++) labels[i] = runs[i].label;
        int w = etok_cal_write_profile(fit, labels, (size_t)n, out_path, &err);
        free(labels);
        if (w) goto fail;
    }
    double d_med, d_max, j_med, j_max, sd_med = NAN, sd_max = NAN, sj_med = NAN, sj_max = NAN;
    med_max(ed, n, &d_med, &d_max);
    med_max(ej, n, &j_med, &j_max);
    if (have_share) {
        med_max(sed, n, &sd_med, &sd_max);
        med_max(sej, n, &sj_med, &sj_max);
    }
    const int met = d_max <= TARGET && j_max <= TARGET;
    const etok_hw_cal_row *row = &fit->hw.cal.rows[0];
    if (json) {
        json_t *o = json_object(), *jr = json_array(), *jc = json_array();
        if (!o || !jr || !jc) { json_decref(o); json_decref(jr); json_decref(jc); rc = ETOK_EXIT_FAIL; goto out; }
        json_object_set_new(o, "host", json_string(host0));
        json_object_set_new(o, "model", json_string(model.name));
        json_object_set_new(o, "peak_flops", jnn(roofs.peak_flops_bf16));
        json_object_set_new(o, "mem_bw_bps", jnn(roofs.mem_bw_bps));
        for (int k = 0; k < row->n; k++) {
            json_t *p = json_object();
            json_object_set_new(p, "batch", json_real(row->batch[k]));
            json_object_set_new(p, "bandwidth_fraction", json_real(row->bandwidth_fraction[k]));
            json_object_set_new(p, "flops_fraction", json_real(row->flops_fraction[k]));
            json_array_append_new(jc, p);
        }
        json_object_set_new(o, "achievable", jc);
        json_object_set_new(o, "idle_power_w", jnn(fit->hw.idle_power_w));
        json_object_set_new(o, "max_power_w", jnn(fit->hw.max_power_w));
        json_object_set_new(o, "power_fit", json_string(fit->power_note));
        json_object_set_new(o, "power_measured", json_boolean(!fit->power_from_estimate));
        for (int i = 0; i < n; i++) {
            json_t *p = json_object();
            json_object_set_new(p, "run", json_string(runs[i].label));
            json_object_set_new(p, "batch", json_integer(runs[i].batch));
            json_object_set_new(p, "lever", json_string(runs[i].lever));
            json_object_set_new(p, "batch_in_fit", json_boolean(extrap[i] == 0));
            json_object_set_new(p, "measured_decode_tps", jnn(runs[i].decode_tps));
            json_object_set_new(p, "predicted_decode_tps", jnn(pred[i].decode_tps));
            json_object_set_new(p, "measured_joules_per_output_token", jnn(runs[i].joules_per_output_token));
            json_object_set_new(p, "predicted_joules_per_output_token", jnn(pred[i].joules_per_output_token));
            json_object_set_new(p, "measured_output_tps", jnn(runs[i].output_tps));
            json_object_set_new(p, "predicted_output_tps", jnn(pred[i].output_tps));
            json_object_set_new(p, "cpu_share", jnn(runs[i].cpu_share));
            if (have_share) {
                json_object_set_new(p, "share_adjusted_predicted_decode_tps", jnn(spred[i].decode_tps));
                json_object_set_new(p, "share_adjusted_predicted_joules_per_output_token", jnn(spred[i].joules_per_output_token));
            }
            json_array_append_new(jr, p);
        }
        json_object_set_new(o, "leave_one_out", jr);
        json_object_set_new(o, "decode_tps_error_median", jnn(d_med));
        json_object_set_new(o, "decode_tps_error_max", jnn(d_max));
        json_object_set_new(o, "joules_per_output_token_error_median", jnn(j_med));
        json_object_set_new(o, "joules_per_output_token_error_max", jnn(j_max));
        json_object_set_new(o, "share_adjusted_decode_tps_error_median", jnn(sd_med));
        json_object_set_new(o, "share_adjusted_decode_tps_error_max", jnn(sd_max));
        json_object_set_new(o, "share_adjusted_joules_per_output_token_error_median", jnn(sj_med));
        json_object_set_new(o, "share_adjusted_joules_per_output_token_error_max", jnn(sj_max));
        json_object_set_new(o, "target", json_real(TARGET));
        json_object_set_new(o, "target_met", json_boolean(met));
        char *t = json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6));
        json_decref(o);
        if (!t) { rc = ETOK_EXIT_FAIL; goto out; }
        printf("%s\n", t);
        free(t);
        goto out;
    }
    printf("etok tpf --calibrate: %d bench runs of host %s, model %s (catalog); roofs from etok probe: %.4g GFLOP/s, %.4g GB/s\n",
           n, host0, model.name, roofs.peak_flops_bf16 / 1e9, roofs.mem_bw_bps / 1e9);
    printf("fit of all runs (batch = --concurrency; fraction of the probe roof achieved):\n");
    printf("  %6s %19s %15s\n", "batch", "bandwidth_fraction", "flops_fraction");
    for (int k = 0; k < row->n; k++)
        printf("  %6.0f %19.4f %15.4f\n", row->batch[k], row->bandwidth_fraction[k], row->flops_fraction[k]);
    printf("  power: %s\n", fit->power_note);
    printf("  power curve: activity_floor %.4g, per MFU %.4g, per MBU %.4g\n", fit->hw.cal.activity_floor,
           fit->hw.cal.activity_per_mfu, fit->hw.cal.activity_per_mbu);
    printf("\nleave-one-out: each run predicted by the TPF with a fit of the other runs (error = predicted / measured - 1)\n");
    printf("  %-28s %5s %-22s %9s %9s %7s %9s %9s %7s\n", "run", "batch", "lever", "dec tok/s", "predicted", "error",
           "J/out-tok", "predicted", "error");
    for (int i = 0; i < n; i++)
        printf("  %-28.28s %5d %-22.22s %9.4g %9.4g %+6.0f%% %9.4g %9.4g %+6.0f%%%s\n", runs[i].label, runs[i].batch,
               *runs[i].lever ? runs[i].lever : "-", runs[i].decode_tps, pred[i].decode_tps,
               100 * (pred[i].decode_tps / runs[i].decode_tps - 1), runs[i].joules_per_output_token,
               pred[i].joules_per_output_token, 100 * (pred[i].joules_per_output_token / runs[i].joules_per_output_token - 1),
               extrap[i] == 2 ? "  (batch outside the fit: flat extrapolation)"
               : extrap[i]    ? "  (batch not in the fit: interpolated)"
                              : "");
    printf("\nsummary (|error| over %d held-out runs):\n", n);
    printf("  decode token rate: median %.0f%%, max %.0f%%, within %.0f%%: %d of %d\n", 100 * d_med, 100 * d_max, 100 * TARGET,
           in_d, n);
    printf("  J/output-token:    median %.0f%%, max %.0f%%, within %.0f%%: %d of %d%s\n", 100 * j_med, 100 * j_max, 100 * TARGET,
           in_j, n, fit->power_from_estimate ? " (energy from the estimate meter: a model of CPU power, not a measurement)" : "");
    printf("target (every held-out run within %.0f%%): %s\n", 100 * TARGET, met ? "met" : "NOT met");
    if (have_share) {
        printf("\nshare-adjusted leave-one-out: the same, with each run's roofs scaled by the share of the machine its own\n"
               "work got (cpu_load own busy cores / cores; it needs the held-out run's own measured share, so it is not a\n"
               "prediction ahead of the run: it says how much of the error above is other work on the machine)\n");
        printf("  %-28s %5s %-22s %6s %9s %7s %9s %7s\n", "run", "batch", "lever", "share", "dec tok/s", "error", "J/out-tok", "error");
        for (int i = 0; i < n; i++)
            printf("  %-28.28s %5d %-22.22s %5.0f%% %9.4g %+6.0f%% %9.4g %+6.0f%%\n", runs[i].label, runs[i].batch,
                   *runs[i].lever ? runs[i].lever : "-", 100 * runs[i].cpu_share, spred[i].decode_tps,
                   100 * (spred[i].decode_tps / runs[i].decode_tps - 1), spred[i].joules_per_output_token,
                   100 * (spred[i].joules_per_output_token / runs[i].joules_per_output_token - 1));
        printf("  decode token rate: median %.0f%%, max %.0f%%, within %.0f%%: %d of %d\n", 100 * sd_med, 100 * sd_max,
               100 * TARGET, sin_d, n);
        printf("  J/output-token:    median %.0f%%, max %.0f%%, within %.0f%%: %d of %d\n", 100 * sj_med, 100 * sj_max,
               100 * TARGET, sin_j, n);
    } else
        printf("(no share-adjusted pass: not every record has its CPU share, cpu_load)\n");
    if (out_path) printf("calibrated profile written to %s (use as \"hardware\": \"%s\" in a scenario, or etok compare --calibration)\n", out_path, out_path);
    goto out;
fail:
    fprintf(stderr, "etok tpf: %s\n", err.msg);
    rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
out:
    free(runs); free(use); free(fit); free(pred); free(ed); free(ej); free(extrap); free(sed); free(sej); free(spred);
    return rc;
}
