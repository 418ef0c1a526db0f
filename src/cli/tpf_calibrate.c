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

/* Leave-one-out over the runs: pred[i] from a fit without run i (by_setting 0) or without every
 * run of run i's setting (by_setting 1: the same lever text and batch, so its repeats too);
 * |errors| in ed, ej, NAN where the fit has nothing for the run (pred[i].predictable 0). */
static int same_setting(const etok_cal_run *a, const etok_cal_run *b) { return a->batch == b->batch && !strcmp(a->lever, b->lever); }

static int loo(etok_cal_run *runs, int n, int by_setting, const etok_hw_spec *roofs, const etok_model_arch *model,
               etok_cal_fit_result *fit, etok_cal_prediction *pred, double *ed, double *ej, int *extrap, int *in_d, int *in_j,
               int *n_pred, etok_err *err) {
    int *use = calloc((size_t)n, sizeof *use);
    if (!use) return etok_errc(err, ETOK_EXIT_FAIL, "out of memory");
    *in_d = *in_j = *n_pred = 0;
    for (int i = 0; i < n; i++) {
        for (int k = 0; k < n; k++) use[k] = by_setting ? !same_setting(&runs[k], &runs[i]) : k != i;
        /* 0: the batch is in the fit; 1: between fitted batches (interpolated); 2: outside (flat) */
        int lo = 0, hi = 0, any = 0;
        extrap[i] = 1;
        for (int k = 0; k < n; k++) {
            if (!use[k]) continue;
            any = 1;
            if (runs[k].batch == runs[i].batch) extrap[i] = 0;
            lo |= runs[k].batch < runs[i].batch;
            hi |= runs[k].batch > runs[i].batch;
        }
        if (extrap[i] && !(lo && hi)) extrap[i] = 2;
        ed[i] = ej[i] = NAN;
        if (!any) {
            memset(&pred[i], 0, sizeof pred[i]);
            pred[i].kernel = -1;
            pred[i].decode_tps = pred[i].output_tps = pred[i].power_w = pred[i].joules_per_output_token = NAN;
            snprintf(pred[i].why, sizeof pred[i].why, "no other run to fit from");
            continue;
        }
        if (etok_cal_fit(runs, (size_t)n, use, roofs, model, fit, NULL, err) ||
            etok_cal_predict(&fit->hw, model, &runs[i], &pred[i], err)) {
            free(use);
            return -1;
        }
        if (!pred[i].predictable) continue;
        (*n_pred)++;
        ed[i] = fabs(pred[i].decode_tps / runs[i].decode_tps - 1);
        ej[i] = fabs(pred[i].joules_per_output_token / runs[i].joules_per_output_token - 1);
        *in_d += ed[i] <= TARGET;
        *in_j += ej[i] <= TARGET;
    }
    free(use);
    return 0;
}

/* median and max of the finite entries (NAN when none) */
static void med_max(const double *v, int n, double *med, double *max) {
    double *t = calloc((size_t)n + 1, sizeof *t);
    *med = *max = NAN;
    if (!t) return;
    int m = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(v[i])) t[m++] = v[i];
    if (m) {
        *med = median(t, m);
        *max = t[m - 1];
    }
    free(t);
}

/* "run1 run2 ..." of the runs whose role has bit (and, kernel >= 0, that kernel; batch > 0, that batch) */
static void run_list(char *buf, size_t bn, const etok_cal_run *runs, const int *role, int n, int bit, const etok_hw_calibration *cal,
                     int kernel, double batch) {
    size_t l = 0;
    buf[0] = 0;
    for (int i = 0; i < n && l + 1 < bn; i++) {
        if (!(role[i] & bit)) continue;
        if (kernel >= 0 && etok_cal_kernel_of(cal, &runs[i]) != kernel) continue;
        if (batch > 0 && runs[i].batch != batch) continue;
        int w = snprintf(buf + l, bn - l, "%s%s", l ? " " : "", runs[i].label);
        if (w < 0) break;
        l += (size_t)w < bn - l ? (size_t)w : bn - l - 1;
    }
    if (!buf[0]) snprintf(buf, bn, "-");
}

static void print_loo(const char *title, const etok_cal_run *runs, int n, const etok_cal_prediction *pred, const int *extrap) {
    printf("%s", title);
    printf("  %-28s %5s %-22s %9s %9s %7s %9s %9s %7s\n", "run", "batch", "lever", "dec tok/s", "predicted", "error",
           "J/out-tok", "predicted", "error");
    for (int i = 0; i < n; i++) {
        if (!pred[i].predictable) {
            printf("  %-28.28s %5d %-22.22s %9.4g  not predictable: %s\n", runs[i].label, runs[i].batch,
                   *runs[i].lever ? runs[i].lever : "-", runs[i].decode_tps, pred[i].why);
            continue;
        }
        printf("  %-28.28s %5d %-22.22s %9.4g %9.4g %+6.0f%% %9.4g %9.4g %+6.0f%%%s%s\n", runs[i].label, runs[i].batch,
               *runs[i].lever ? runs[i].lever : "-", runs[i].decode_tps, pred[i].decode_tps,
               100 * (pred[i].decode_tps / runs[i].decode_tps - 1), runs[i].joules_per_output_token,
               pred[i].joules_per_output_token, 100 * (pred[i].joules_per_output_token / runs[i].joules_per_output_token - 1),
               pred[i].kernel >= 0 ? (pred[i].decode_bandwidth_bound ? "  bw" : "  compute") : "",
               extrap[i] == 2 ? "  (batch outside the fit: flat extrapolation)"
               : extrap[i]    ? "  (batch not in the fit: interpolated)"
                              : "");
    }
}

static void print_summary(int n, int n_pred, const double *ed, const double *ej, int in_d, int in_j, int est) {
    double d_med, d_max, j_med, j_max;
    med_max(ed, n, &d_med, &d_max);
    med_max(ej, n, &j_med, &j_max);
    printf("  predictable: %d of %d runs%s\n", n_pred, n, n_pred < n ? " (the others: nothing in the fit for their kernel)" : "");
    printf("  decode token rate: median %.0f%%, max %.0f%%, within %.0f%%: %d of %d\n", 100 * d_med, 100 * d_max, 100 * TARGET,
           in_d, n_pred);
    printf("  J/output-token:    median %.0f%%, max %.0f%%, within %.0f%%: %d of %d%s\n", 100 * j_med, 100 * j_max, 100 * TARGET,
           in_j, n_pred, est ? " (energy from the estimate meter: a model of CPU power, not a measurement)" : "");
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
    int *role = calloc((size_t)n, sizeof *role);
    etok_cal_fit_result *fit = calloc(1, sizeof *fit);
    /* three leave-one-out passes: 0 by run, 1 by setting, 2 by run with share-scaled roofs */
    etok_cal_prediction *pred[3] = {calloc((size_t)n, sizeof(etok_cal_prediction)), calloc((size_t)n, sizeof(etok_cal_prediction)),
                                    calloc((size_t)n, sizeof(etok_cal_prediction))};
    double *ed[3], *ej[3];
    int *extrap[3];
    int ok_alloc = runs && role && fit && pred[0] && pred[1] && pred[2];
    for (int p = 0; p < 3; p++) {
        ed[p] = calloc((size_t)n, sizeof(double));
        ej[p] = calloc((size_t)n, sizeof(double));
        extrap[p] = calloc((size_t)n, sizeof(int));
        ok_alloc = ok_alloc && ed[p] && ej[p] && extrap[p];
    }
    int rc = ETOK_EXIT_OK;
    if (!ok_alloc) { rc = ETOK_EXIT_FAIL; fprintf(stderr, "etok tpf: out of memory\n"); goto out; }
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

    /* leave-one-out by run and by setting on the probe's roofs, then (where every run recorded
     * its CPU share) by run with roofs scaled by the share of the machine each run got */
    int in_d[3] = {0}, in_j[3] = {0}, npred[3] = {0};
    if (loo(runs, n, 0, &roofs, &model, fit, pred[0], ed[0], ej[0], extrap[0], &in_d[0], &in_j[0], &npred[0], &err) ||
        loo(runs, n, 1, &roofs, &model, fit, pred[1], ed[1], ej[1], extrap[1], &in_d[1], &in_j[1], &npred[1], &err))
        goto fail;
    int have_share = 1;
    for (int i = 0; i < n; i++) have_share &= isfinite(runs[i].cpu_share) && runs[i].cpu_share > 0;
    if (have_share) {
        for (int i = 0; i < n; i++) runs[i].roof_scale = runs[i].cpu_share;
        int rr = loo(runs, n, 0, &roofs, &model, fit, pred[2], ed[2], ej[2], extrap[2], &in_d[2], &in_j[2], &npred[2], &err);
        for (int i = 0; i < n; i++) runs[i].roof_scale = 1;
        if (rr) goto fail;
    }
    /* the profile: a fit of all runs */
    if (etok_cal_fit(runs, (size_t)n, NULL, &roofs, &model, fit, role, &err)) goto fail;
    if (out_path && etok_cal_write_profile(fit, runs, NULL, role, (size_t)n, out_path, &err)) goto fail;
    double d_med[3], d_max[3], j_med[3], j_max[3];
    for (int p = 0; p < 3; p++) {
        med_max(ed[p], n, &d_med[p], &d_max[p]);
        med_max(ej[p], n, &j_med[p], &j_max[p]);
    }
    const int met = npred[0] == n && d_max[0] <= TARGET && j_max[0] <= TARGET;
    const etok_hw_calibration *cal = &fit->hw.cal;
    const etok_hw_cal_row *row = &cal->rows[0];
    const double K0 = cal->n_kernels ? cal->kernels[0].flops_fraction : NAN;
    if (json) {
        json_t *o = json_object(), *jr = json_array(), *jc = json_array(), *jk = json_array();
        if (!o || !jr || !jc || !jk) { json_decref(o); json_decref(jr); json_decref(jc); json_decref(jk); rc = ETOK_EXIT_FAIL; goto out; }
        json_object_set_new(o, "host", json_string(host0));
        json_object_set_new(o, "model", json_string(model.name));
        json_object_set_new(o, "peak_flops", jnn(roofs.peak_flops_bf16));
        json_object_set_new(o, "mem_bw_bps", jnn(roofs.mem_bw_bps));
        json_object_set_new(o, "engine_model", json_boolean(cal->n_kernels > 0));
        for (int k = 0; k < row->n; k++) {
            json_t *p = json_object();
            json_object_set_new(p, "batch", json_real(row->batch[k]));
            json_object_set_new(p, "bandwidth_fraction", json_real(row->bandwidth_fraction[k]));
            json_object_set_new(p, "flops_fraction", json_real(row->flops_fraction[k]));
            if (cal->n_kernels) json_object_set_new(p, "decode_efficiency", json_real(row->flops_fraction[k] / K0));
            json_array_append_new(jc, p);
        }
        json_object_set_new(o, "achievable", jc);
        for (int k = 0; k < cal->n_kernels; k++) {
            json_t *p = json_object();
            json_object_set_new(p, "weight_dtype", json_string(etok_dtype_name(cal->kernels[k].weight_dtype)));
            json_object_set_new(p, "threads", json_integer(cal->kernels[k].threads));
            json_object_set_new(p, "flops_fraction", json_real(cal->kernels[k].flops_fraction));
            json_array_append_new(jk, p);
        }
        json_object_set_new(o, "kernels", jk);
        json_object_set_new(o, "idle_power_w", jnn(fit->hw.idle_power_w));
        json_object_set_new(o, "max_power_w", jnn(fit->hw.max_power_w));
        json_object_set_new(o, "power_fit", json_string(fit->power_note));
        json_object_set_new(o, "power_measured", json_boolean(!fit->power_from_estimate));
        static const char *const pass[3] = {"", "by_setting_", "share_adjusted_"};
        for (int i = 0; i < n; i++) {
            json_t *p = json_object(), *fr = json_array();
            json_object_set_new(p, "run", json_string(runs[i].label));
            json_object_set_new(p, "batch", json_integer(runs[i].batch));
            json_object_set_new(p, "lever", json_string(runs[i].lever));
            json_object_set_new(p, "batch_in_fit", json_boolean(extrap[0][i] == 0));
            if (role[i] & ETOK_CAL_ROLE_KERNEL) json_array_append_new(fr, json_string("kernel"));
            if (role[i] & ETOK_CAL_ROLE_DECODE) json_array_append_new(fr, json_string("decode_efficiency"));
            if (role[i] & ETOK_CAL_ROLE_BANDWIDTH) json_array_append_new(fr, json_string("bandwidth_fraction"));
            if (role[i] & ETOK_CAL_ROLE_BW_BOUND) json_array_append_new(fr, json_string("bandwidth_bound"));
            json_object_set_new(p, "fitted", fr);
            json_object_set_new(p, "measured_decode_tps", jnn(runs[i].decode_tps));
            json_object_set_new(p, "measured_prefill_tps", jnn(runs[i].prefill_tps));
            json_object_set_new(p, "measured_joules_per_output_token", jnn(runs[i].joules_per_output_token));
            json_object_set_new(p, "measured_output_tps", jnn(runs[i].output_tps));
            json_object_set_new(p, "cpu_share", jnn(runs[i].cpu_share));
            for (int q = 0; q < 3; q++) {
                if (q == 2 && !have_share) continue;
                char k[96];
                snprintf(k, sizeof k, "%spredictable", pass[q]);
                json_object_set_new(p, k, json_boolean(pred[q][i].predictable));
                snprintf(k, sizeof k, "%spredicted_decode_tps", pass[q]);
                json_object_set_new(p, k, jnn(pred[q][i].decode_tps));
                snprintf(k, sizeof k, "%spredicted_joules_per_output_token", pass[q]);
                json_object_set_new(p, k, jnn(pred[q][i].joules_per_output_token));
                snprintf(k, sizeof k, "%spredicted_output_tps", pass[q]);
                json_object_set_new(p, k, jnn(pred[q][i].output_tps));
                if (!pred[q][i].predictable) {
                    snprintf(k, sizeof k, "%snot_predictable_why", pass[q]);
                    json_object_set_new(p, k, json_string(pred[q][i].why));
                }
            }
            json_array_append_new(jr, p);
        }
        json_object_set_new(o, "leave_one_out", jr);
        for (int q = 0; q < 3; q++) {
            char k[96];
            snprintf(k, sizeof k, "%spredictable_runs", pass[q]);
            json_object_set_new(o, k, json_integer(npred[q]));
            snprintf(k, sizeof k, "%sdecode_tps_error_median", pass[q]);
            json_object_set_new(o, k, jnn(d_med[q]));
            snprintf(k, sizeof k, "%sdecode_tps_error_max", pass[q]);
            json_object_set_new(o, k, jnn(d_max[q]));
            snprintf(k, sizeof k, "%sjoules_per_output_token_error_median", pass[q]);
            json_object_set_new(o, k, jnn(j_med[q]));
            snprintf(k, sizeof k, "%sjoules_per_output_token_error_max", pass[q]);
            json_object_set_new(o, k, jnn(j_max[q]));
        }
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
    char list[2048];
    if (cal->n_kernels) {
        printf("fit of all runs: the engine model (docs/TPF.md \"Calibrating from runs\"): decode s/token = max(bytes / (B f_B),\n"
               "FLOPs / (F f_F(batch) K / K0)), prefill s/token = FLOPs / (F K); F, B the probe's peaks\n");
        printf("  kernels (prefill: compute-bound; K = achieved fraction of F), fitted from:\n");
        for (int k = 0; k < cal->n_kernels; k++) {
            run_list(list, sizeof list, runs, role, n, ETOK_CAL_ROLE_KERNEL, cal, k, 0);
            printf("    %-5s %2d threads  K %.4f (%.3g GFLOP/s)%s: %s\n", etok_dtype_name(cal->kernels[k].weight_dtype),
                   cal->kernels[k].threads, cal->kernels[k].flops_fraction, cal->kernels[k].flops_fraction * roofs.peak_flops_bf16 / 1e9,
                   k == 0 ? " = K0" : "", list);
        }
        run_list(list, sizeof list, runs, role, n, ETOK_CAL_ROLE_BANDWIDTH, cal, -1, 0);
        printf("  bandwidth f_B %.4f (%.3g GB/s): the largest decode bandwidth of any run, %s%s\n", row->bandwidth_fraction[0],
               row->bandwidth_fraction[0] * fit->hw.mem_bw_bps / 1e9, list,
               fit->hw.mem_bw_bps > roofs.mem_bw_bps ? " (more than the probe's B: B raised to it)" : "");
        run_list(list, sizeof list, runs, role, n, ETOK_CAL_ROLE_BW_BOUND, cal, -1, 0);
        printf("    decodes it binds (bytes / bandwidth >= 90%% of the decode time): %s\n", list);
        printf("  decode efficiency by batch (compute-bound decodes; f_F = K0 x efficiency), fitted from:\n");
        for (int k = 0; k < row->n; k++) {
            run_list(list, sizeof list, runs, role, n, ETOK_CAL_ROLE_DECODE, cal, -1, row->batch[k]);
            printf("    batch %3.0f  efficiency %.3f  f_F %.4f: %s\n", row->batch[k], row->flops_fraction[k] / K0,
                   row->flops_fraction[k], list);
        }
    } else {
        printf("fit of all runs (no prefill steps: batch = --concurrency; fraction of the probe roof achieved):\n");
        printf("  %6s %19s %15s\n", "batch", "bandwidth_fraction", "flops_fraction");
        for (int k = 0; k < row->n; k++)
            printf("  %6.0f %19.4f %15.4f\n", row->batch[k], row->bandwidth_fraction[k], row->flops_fraction[k]);
    }
    printf("  power: %s\n", fit->power_note);
    printf("  power curve: activity_floor %.4g, per MFU %.4g, per MBU %.4g\n", cal->activity_floor, cal->activity_per_mfu,
           cal->activity_per_mbu);
    print_loo("\nleave-one-out: each run predicted from a fit of the other runs (error = predicted / measured - 1)\n", runs, n,
              pred[0], extrap[0]);
    printf("\nsummary (|error| over the held-out runs):\n");
    print_summary(n, npred[0], ed[0], ej[0], in_d[0], in_j[0], fit->power_from_estimate);
    printf("target (every run predictable and within %.0f%%): %s\n", 100 * TARGET, met ? "met" : "NOT met");
    print_loo("\nleave-one-setting-out: each run predicted from a fit without every run of its setting (lever and batch: its\n"
              "repeats too), so a setting the fit never saw; a kernel no other setting ran is not predictable\n",
              runs, n, pred[1], extrap[1]);
    print_summary(n, npred[1], ed[1], ej[1], in_d[1], in_j[1], 0);
    if (have_share) {
        printf("\nshare-adjusted leave-one-out: by run, with each run's roofs scaled by the share of the machine its own work\n"
               "got (cpu_load own busy cores / cores; it needs the held-out run's own measured share, so it is not a\n"
               "prediction ahead of the run: it says how much of the error above is other work on the machine)\n");
        printf("  %-28s %5s %-22s %6s %9s %7s %9s %7s\n", "run", "batch", "lever", "share", "dec tok/s", "error", "J/out-tok", "error");
        for (int i = 0; i < n; i++) {
            if (!pred[2][i].predictable) {
                printf("  %-28.28s %5d %-22.22s %5.0f%%  not predictable\n", runs[i].label, runs[i].batch,
                       *runs[i].lever ? runs[i].lever : "-", 100 * runs[i].cpu_share);
                continue;
            }
            printf("  %-28.28s %5d %-22.22s %5.0f%% %9.4g %+6.0f%% %9.4g %+6.0f%%\n", runs[i].label, runs[i].batch,
                   *runs[i].lever ? runs[i].lever : "-", 100 * runs[i].cpu_share, pred[2][i].decode_tps,
                   100 * (pred[2][i].decode_tps / runs[i].decode_tps - 1), pred[2][i].joules_per_output_token,
                   100 * (pred[2][i].joules_per_output_token / runs[i].joules_per_output_token - 1));
        }
        print_summary(n, npred[2], ed[2], ej[2], in_d[2], in_j[2], 0);
    } else
        printf("(no share-adjusted pass: not every record has its CPU share, cpu_load)\n");
    if (out_path) printf("calibrated profile written to %s (use as \"hardware\": \"%s\" in a scenario, or etok compare --calibration)\n", out_path, out_path);
    goto out;
fail:
    fprintf(stderr, "etok tpf: %s\n", err.msg);
    rc = err.exit_code ? err.exit_code : ETOK_EXIT_FAIL;
out:
    free(runs); free(role); free(fit);
    for (int p = 0; p < 3; p++) { free(pred[p]); free(ed[p]); free(ej[p]); free(extrap[p]); }
    return rc;
}
