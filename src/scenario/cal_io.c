/* cal_io.c — reading runs for calibration, finding a run's catalog model, writing a calibrated
 * hardware profile (see cal_io.h). The figures come from analyse/calibrate.c. */
#include "scenario/cal_io.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "etok/scenario.h"

int etok_cal_load_run(const char *path, etok_cal_run *out, char *host, size_t host_n, etok_err *err) {
    char file[4096];
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) snprintf(file, sizeof file, "%s/run.json", path);
    else snprintf(file, sizeof file, "%s", path);
    etok_record rec;
    etok_record_init(&rec);
    int rc = etok_record_load(&rec, file, err);
    if (!rc) rc = etok_cal_run_from_record(&rec, path, out, err);
    if (!rc && host) snprintf(host, host_n, "%s", rec.host);
    etok_record_free(&rec);
    return rc;
}

static void squash(const char *in, char *out, size_t n) {
    size_t k = 0;
    for (; in && *in && k + 1 < n; in++)
        if (isalnum((unsigned char)*in)) out[k++] = (char)tolower((unsigned char)*in);
    out[k] = 0;
}

int etok_cal_find_model(const etok_cal_run *run, const char *name, etok_model_arch *m, etok_err *err) {
    if (name) return etok_catalog_model(name, m, err);
    char **names;
    size_t n;
    if (etok_catalog_names("models", &names, &n, err)) return -1;
    char a[256], b[256], base[256];
    const char *slash = strrchr(run->model_path, '/');
    squash(run->model_name, a, sizeof a);
    squash(slash ? slash + 1 : run->model_path, b, sizeof b);
    size_t best = 0;
    const char *pick = NULL;
    for (size_t i = 0; i < n; i++) {
        squash(names[i], base, sizeof base);
        size_t l = strlen(base);
        if (l > best && (strstr(a, base) || strstr(b, base))) { best = l; pick = names[i]; }
    }
    int rc;
    if (pick) rc = etok_catalog_model(pick, m, err);
    else
        rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: no catalog model matches '%s' (%s); name one with --model (etok tpf --list models)",
                       run->label, run->model_name, run->model_path);
    etok_catalog_names_free(names, n);
    return rc;
}

int etok_cal_write_profile(const etok_cal_fit_result *fit, const etok_cal_run *runs, const int *use, const int *role,
                           size_t n, const char *path, etok_err *err) {
    const etok_hw_spec *h = &fit->hw;
    const etok_hw_cal_row *r = &h->cal.rows[0];
    json_t *o = json_object(), *pf = json_object(), *cal = json_object(), *ach = json_array(), *row = json_object(),
           *b = json_array(), *fb = json_array(), *ff = json_array(), *pw = json_object(), *up = json_array(),
           *src = json_object();
    int ok = o && pf && cal && ach && row && b && fb && ff && pw && up && src;
    if (ok) {
        json_object_set_new(o, "name", json_string(h->name));
        json_object_set_new(o, "display_name", json_string(h->display_name));
        json_object_set_new(pf, "fp32", json_real(h->peak_flops_fp32));
        json_object_set_new(pf, "bf16", json_real(h->peak_flops_bf16));
        json_object_set_new(pf, "fp8", json_real(h->peak_flops_fp8));
        json_object_set_new(pf, "int8", json_real(h->peak_flops_int8));
        json_object_set_new(o, "peak_flops", pf);
        json_object_set_new(o, "mem_bw_bps", json_real(h->mem_bw_bps));
        json_object_set_new(o, "mem_bytes", json_real(h->mem_bytes));
        json_object_set_new(o, "max_power_w", json_real(h->max_power_w));
        json_object_set_new(o, "idle_power_w", json_real(h->idle_power_w));
        for (int i = 0; i < r->n; i++) {
            json_array_append_new(b, json_real(r->batch[i]));
            json_array_append_new(fb, json_real(r->bandwidth_fraction[i]));
            json_array_append_new(ff, json_real(r->flops_fraction[i]));
        }
        json_object_set_new(row, "devices_per_replica", json_integer(1));
        json_object_set_new(row, "batch", b);
        json_object_set_new(row, "bandwidth_fraction", fb);
        json_object_set_new(row, "flops_fraction", ff);
        json_array_append_new(ach, row);
        json_object_set_new(cal, "source", json_string(h->cal.source));
        for (size_t i = 0; i < n; i++)
            if (!use || use[i]) json_array_append_new(up, json_string(runs[i].label));
        json_object_set_new(cal, "used_points", up);
        json_object_set_new(cal, "achievable", ach);
        if (h->cal.n_kernels > 0) {
            json_t *ka = json_array();
            for (int k = 0; ka && k < h->cal.n_kernels; k++) {
                json_t *ko = json_object(), *fr = json_array();
                if (!ko || !fr) { json_decref(ko); json_decref(fr); ok = 0; break; }
                json_object_set_new(ko, "weight_dtype", json_string(etok_dtype_name(h->cal.kernels[k].weight_dtype)));
                json_object_set_new(ko, "threads", json_integer(h->cal.kernels[k].threads));
                json_object_set_new(ko, "flops_fraction", json_real(h->cal.kernels[k].flops_fraction));
                for (size_t i = 0; role && i < n; i++)
                    if ((!use || use[i]) && (role[i] & ETOK_CAL_ROLE_KERNEL) && etok_cal_kernel_of(&h->cal, &runs[i]) == k)
                        json_array_append_new(fr, json_string(runs[i].label));
                json_object_set_new(ko, "fitted_from", fr);
                json_array_append_new(ka, ko);
            }
            if (!ka) ok = 0;
            json_object_set_new(cal, "kernels", ka);
        }
        json_object_set_new(pw, "activity_floor", json_real(h->cal.activity_floor));
        json_object_set_new(pw, "activity_per_mfu", json_real(h->cal.activity_per_mfu));
        json_object_set_new(pw, "activity_per_mbu", json_real(h->cal.activity_per_mbu));
        json_object_set_new(cal, "power", pw);
        json_object_set_new(o, "calibration", cal);
        const char *est = fit->power_from_estimate ? " (estimate meter: its own utilisation model, not a measurement)" : "";
        char t[512];
        json_object_set_new(src, "peak_flops", json_string("etok probe on this machine (the 8-bit integer dot rate, used for every precision)"));
        json_object_set_new(src, "mem_bw_bps", json_string("etok probe on this machine (STREAM-like triad)"));
        json_object_set_new(src, "mem_bytes", json_string("this machine's RAM (sysconf)"));
        snprintf(t, sizeof t, "the largest mean window power of the fitted runs%s", est);
        json_object_set_new(src, "max_power_w", json_string(t));
        snprintf(t, sizeof t, "the mean idle baseline of the fitted runs%s", est);
        json_object_set_new(src, "idle_power_w", json_string(t));
        json_object_set_new(o, "source", src);
        pf = cal = ach = row = b = fb = ff = pw = up = src = NULL;
    } else {
        json_decref(pf); json_decref(cal); json_decref(ach); json_decref(row); json_decref(b);
        json_decref(fb); json_decref(ff); json_decref(pw); json_decref(up); json_decref(src);
    }
    char *text = ok ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
    json_decref(o);
    if (!text) return etok_errc(err, ETOK_EXIT_FAIL, "calibrate: out of memory");
    size_t len = strlen(text);
    char *t2 = realloc(text, len + 2);
    if (!t2) { free(text); return etok_errc(err, ETOK_EXIT_FAIL, "calibrate: out of memory"); }
    t2[len] = '\n';
    t2[len + 1] = 0;
    int rc = etok_write_file_atomic(path, t2, len + 1, err);
    free(t2);
    return rc;
}
