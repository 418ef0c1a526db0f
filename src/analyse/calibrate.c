/* calibrate.c — fitting the TPF's hardware calibration to this machine's own bench runs, and
 * the one prediction (TPF on a run's scenario) that `etok tpf --calibrate` holds against its
 * runs (leave-one-out) and `etok compare` puts beside a measured lever change. Definitions in
 * include/etok/calibrate.h; docs/TPF.md "Calibrating from runs".
 * Owns: run summary from a record, the fit, the prediction. Does not own: loading records or
 * catalogs (cli/tpf_calibrate.c, cli/cmd_compare.c), the TPF itself (tpf.c). */
#include "etok/calibrate.h"

#include <ctype.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "etok/metrics.h"

/* The main matrix format of a "keep" run: the most frequent non-f32 entry of weight_types
 * ("q4_1 x 210, q8_0 x 1, f32 x 61"); f32 when only f32 appears. */
int etok_cal_main_weight_type(const char *types, char *out, size_t n) {
    int best = -1;
    if (!n) return -1;
    out[0] = 0;
    const char *p = types;
    while (p && *p) {
        char name[16];
        int cnt = 0;
        if (sscanf(p, " %15[^ ,] x %d", name, &cnt) == 2) {
            for (char *q = name; *q; q++) *q = (char)tolower((unsigned char)*q);
            int score = strcmp(name, "f32") ? cnt : 0;
            if (score > best) { best = score; snprintf(out, n, "%s", name); }
        }
        p = strchr(p, ',');
        if (p) p++;
    }
    return out[0] ? 0 : -1;
}

/* engine format name -> TPF dtype; -1 when the TPF has none */
static int engine_dtype(const char *f, etok_dtype *d) {
    if (!strcmp(f, "f32")) *d = ETOK_DT_FP32;
    else if (!strcmp(f, "f16")) *d = ETOK_DT_FP16;
    else if (!strcmp(f, "q8_0")) *d = ETOK_DT_Q8_0;
    else if (!strcmp(f, "q4_0")) *d = ETOK_DT_Q4_0;
    else if (!strcmp(f, "q4_1")) *d = ETOK_DT_Q4_1;
    else return -1;
    return 0;
}

static const char *jstr(json_t *o, const char *k) {
    json_t *v = json_object_get(o, k);
    return json_is_string(v) ? json_string_value(v) : NULL;
}
static double jnum(json_t *o, const char *k, double dflt) {
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : dflt;
}

int etok_cal_run_from_record(const etok_record *rec, const char *label, etok_cal_run *o, etok_err *err) {
    memset(o, 0, sizeof *o);
    snprintf(o->label, sizeof o->label, "%s", label ? label : "run");
    o->idle_power_w = NAN;
    o->cpu_share = NAN;
    o->roof_scale = 1;
    if (strcmp(rec->kind, "bench"))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: a '%s' record; calibration needs etok bench records of the built-in engine",
                         o->label, rec->kind);
    json_error_t je;
    json_t *cfg = rec->config_json ? json_loads(rec->config_json, 0, &je) : NULL;
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: no config in the record", o->label);
    }
    int rc = 0;
    if (jstr(cfg, "endpoint")) {
        rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: a bench --endpoint run; calibration needs the built-in engine's steps", o->label);
        goto done;
    }
    snprintf(o->model_name, sizeof o->model_name, "%s", jstr(cfg, "model_name") ? jstr(cfg, "model_name") : "");
    snprintf(o->model_path, sizeof o->model_path, "%s", jstr(cfg, "model") ? jstr(cfg, "model") : "");
    o->batch = (int)jnum(cfg, "concurrency", 0);
    if (o->batch < 1) {
        rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: config.concurrency missing (an open-loop --rate run has no batch size)", o->label);
        goto done;
    }
    o->threads = (int)jnum(cfg, "threads", 0);
    snprintf(o->weights, sizeof o->weights, "%s", jstr(cfg, "weights") ? jstr(cfg, "weights") : "keep");
    snprintf(o->kv_type, sizeof o->kv_type, "%s", jstr(cfg, "kv_type") ? jstr(cfg, "kv_type") : "f16");
    o->attn_window = (int)jnum(cfg, "attn_window", 0);
    o->attn_sinks = (int)jnum(cfg, "attn_sinks", 0);
    o->cpu_max_freq_khz = jnum(cfg, "cpu_max_freq_khz", 0);
    char wt[16];
    if (!strcmp(o->weights, "keep")) {
        if (etok_cal_main_weight_type(jstr(cfg, "weight_types"), wt, sizeof wt)) snprintf(wt, sizeof wt, "?");
    } else
        snprintf(wt, sizeof wt, "%s", o->weights);
    o->weight_dtype_known = engine_dtype(wt, &o->weight_dtype) == 0;
    if (!o->weight_dtype_known) o->weight_dtype = ETOK_DT_Q4_1;
    if (engine_dtype(o->kv_type, &o->kv_dtype)) o->kv_dtype = ETOK_DT_FP16;
    {
        char *p = o->lever;
        size_t left = sizeof o->lever;
        int w;
#define ADD(...)                                              \
    do {                                                      \
        w = snprintf(p, left, "%s", p == o->lever ? "" : " "); \
        if (w > 0 && (size_t)w < left) { p += w; left -= (size_t)w; } \
        w = snprintf(p, left, __VA_ARGS__);                   \
        if (w > 0 && (size_t)w < left) { p += w; left -= (size_t)w; } \
    } while (0)
        if (strcmp(o->weights, "keep")) ADD("weights=%s", o->weights);
        if (strcmp(o->kv_type, "f16")) ADD("kv=%s", o->kv_type);
        if (o->attn_window > 0) ADD("window=%d+%d", o->attn_window, o->attn_sinks);
        if (o->cpu_max_freq_khz > 0) ADD("cpu-max-freq=%.0fkHz", o->cpu_max_freq_khz);
        if (o->threads > 0 && rec->cpu_count > 0 && o->threads < rec->cpu_count) ADD("threads=%d", o->threads);
#undef ADD
    }

    /* steps: decode-only steps give the decode rate, steps with prompt tokens the prefill rate */
    double dec_tok = 0, dec_s = 0, pre_tok = 0, pre_s = 0;
    for (size_t i = 0; i < rec->n_steps; i++) {
        const etok_step *s = &rec->steps[i];
        double dt = s->t_end_s - s->t_start_s;
        if (!(dt > 0) || s->t_start_s < rec->window_start_s || s->t_end_s > rec->window_end_s) continue;
        if (s->prefill_tokens > 0) { pre_tok += s->prefill_tokens; pre_s += dt; }
        else if (s->decode_tokens > 0) { dec_tok += s->decode_tokens; dec_s += dt; }
    }
    if (!(dec_s > 0) || !(dec_tok > 0)) {
        rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: no decode steps in the window (calibration needs the engine's steps)", o->label);
        goto done;
    }
    o->decode_tps = dec_tok / dec_s;
    o->prefill_tps = pre_s > 0 ? pre_tok / pre_s : NAN;

    etok_metrics m;
    memset(&m, 0, sizeof m);
    etok_metrics_opts mo = {.seed = 1, .bootstrap_iters = 1};
    if (etok_metrics_compute(rec, &mo, &m, err)) { rc = -1; goto done; }
    const etok_metric *e = etok_metrics_get(&m, "joules_per_output_token", "");
    const etok_metric *p = etok_metrics_get(&m, "mean_power_w", "");
    const etok_metric *ip = etok_metrics_get(&m, "idle_power_w", "");
    const etok_metric *ti = etok_metrics_get(&m, "tokens_in", "");
    const etok_metric *to = etok_metrics_get(&m, "tokens_out", "");
    const etok_metric *nr = etok_metrics_get(&m, "requests", "");
    double win = rec->window_end_s - rec->window_start_s;
    if (!e || !e->valid || !p || !p->valid || !to || !to->valid || !ti || !ti->valid || !nr || !(nr->value > 0) || !(win > 0)) {
        rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: no window energy, power or token count (%s)", o->label,
                       e && !e->valid ? e->note : "missing figures");
    } else {
        o->joules_per_output_token = e->value;
        o->power_w = p->value;
        if (ip && ip->valid) o->idle_power_w = ip->value;
        o->input_tokens = ti->value / nr->value;
        o->output_tokens = to->value / nr->value;
        o->output_tps = to->value / win;
        snprintf(o->energy_source, sizeof o->energy_source, "%s", m.energy_source);
        o->power_measured = strcmp(m.energy_source, "estimate") != 0;
    }
    etok_metrics_free(&m);
    {
        const etok_cpuload_phase *w = &rec->cpuload.phase[ETOK_PHASE_WINDOW];
        if (rec->cpuload.present && w->valid && w->own_busy_cores > 0 && rec->cpuload.n_cpus > 0)
            o->cpu_share = fmin(1.0, w->own_busy_cores / rec->cpuload.n_cpus);
    }
    o->peak_flops = rec->hw.peak_flops;
    o->mem_bw_bps = rec->hw.mem_bw_bps;
    if (!rc && !(o->peak_flops > 0 && o->mem_bw_bps > 0))
        rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: the record has no hardware profile (peak FLOP/s, bandwidth: etok probe)", o->label);
done:
    json_decref(cfg);
    return rc;
}

void etok_cal_roofs(const etok_cal_run *run, etok_hw_spec *hw) {
    memset(hw, 0, sizeof *hw);
    /* The engine's block formats run 8-bit integer dots, f32/f16 weights float dots: the probe's
     * peak_flops (the int8 rate) stands for every precision; the f32 rate is within 10% of it here. */
    hw->peak_flops_fp32 = hw->peak_flops_bf16 = hw->peak_flops_fp8 = hw->peak_flops_int8 = run->peak_flops;
    hw->mem_bw_bps = run->mem_bw_bps;
    hw->mem_bytes = 1e12; /* capacity does not bind a 135M model; the caller may set the real size */
    /* Without a fit the power curve is not used (lever_predict.h holds power at the measured
     * mean); the TPF still wants idle < max. */
    hw->max_power_w = run->power_w > 0 ? run->power_w : 1;
    hw->idle_power_w = isfinite(run->idle_power_w) ? fmin(run->idle_power_w, 0.99 * hw->max_power_w) : 0;
}

int etok_cal_scenario(const etok_hw_spec *hw, const etok_model_arch *m, const etok_cal_run *run, etok_tpf_scenario *s,
                      etok_err *err) {
    etok_tpf_scenario_init(s);
    s->hw = *hw;
    s->model = *m;
    s->device_count = 1;
    s->devices_per_replica = 1;
    s->weight_dtype = run->weight_dtype;
    s->kv_dtype = run->kv_dtype;
    s->batch = run->batch;
    s->input_tokens = (int)floor(run->input_tokens + 0.5);
    s->output_tokens = (int)floor(run->output_tokens + 0.5);
    if (s->output_tokens < 1) s->output_tokens = 1;
    if (run->attn_window > 0) s->model.attention_window = run->attn_window + run->attn_sinks;
    if (run->roof_scale > 0 && run->roof_scale != 1) {
        etok_hw_spec *h = &s->hw;
        h->peak_flops_fp32 *= run->roof_scale;
        h->peak_flops_bf16 *= run->roof_scale;
        h->peak_flops_fp8 *= run->roof_scale;
        h->peak_flops_int8 *= run->roof_scale;
        h->mem_bw_bps *= run->roof_scale;
    }
    if (!(hw->peak_flops_bf16 > 0 && hw->mem_bw_bps > 0))
        return etok_errc(err, ETOK_EXIT_INPUT, "%s: no roofs (peak FLOP/s and bandwidth)", run->label);
    return 0;
}

int etok_cal_kernel_of(const etok_hw_calibration *cal, const etok_cal_run *run) {
    if (!run->weight_dtype_known) return -1;
    for (int k = 0; cal && k < cal->n_kernels; k++)
        if (cal->kernels[k].weight_dtype == run->weight_dtype && cal->kernels[k].threads == run->threads) return k;
    return -1;
}

int etok_cal_predict(const etok_hw_spec *hw, const etok_model_arch *m, const etok_cal_run *run, etok_cal_prediction *out,
                     etok_err *err) {
    memset(out, 0, sizeof *out);
    out->kernel = -1;
    out->predictable = 1;
    etok_tpf_scenario s;
    if (etok_cal_scenario(hw, m, run, &s, err)) return -1;
    static _Thread_local etok_tpf_result r;
    if (etok_tpf_evaluate(&s, -1, &r, err)) return -1;
    const etok_hw_calibration *c = &hw->cal;
    out->decode_tps = 1.0 / r.decode_s_per_output_token;
    out->output_tps = r.in_series_tps;
    out->bandwidth_fraction = r.bandwidth_fraction;
    out->flops_fraction = r.flops_fraction;
    out->decode_bandwidth_bound = r.decode_bound == ETOK_CEIL_MEMORY_BANDWIDTH;
    if (c->present && c->n_kernels > 0) {
        /* the engine model (calibrate.h): the run's kernel for compute, the rows for bandwidth and
         * the decode efficiency at its batch */
        const int k = etok_cal_kernel_of(c, run);
        out->kernel = k;
        if (k < 0) {
            out->predictable = 0;
            snprintf(out->why, sizeof out->why, "no kernel fitted for %s weights at threads=%d (no fitted run had them)",
                     etok_dtype_name(run->weight_dtype), run->threads);
            out->decode_tps = out->output_tps = out->power_w = out->joules_per_output_token = NAN;
            out->mfu = out->mbu = NAN;
            return 0;
        }
        double fb = 1, ff = 1;
        etok_hw_cal_fractions(c, 1, run->batch, &fb, &ff);
        const double K = c->kernels[k].flops_fraction, K0 = c->kernels[0].flops_fraction;
        const double F = r.peak_flops, B = r.mem_bw_bps;
        const double t_pre = fmax(r.flops_per_token_prefill / (F * K), r.bytes_per_token_prefill / (B * fb));
        const double t_dc = r.flops_per_token_decode / (F * ff * K / K0), t_db = r.bytes_per_token_decode / (B * fb);
        const double t_dec = fmax(t_dc, t_db);
        out->decode_bandwidth_bound = t_db >= t_dc;
        out->decode_tps = 1.0 / t_dec;
        out->output_tps = 1.0 / ((double)s.input_tokens / s.output_tokens * t_pre + t_dec);
        out->bandwidth_fraction = fb;
        out->flops_fraction = ff * K / K0;
    }
    out->mfu = out->output_tps * r.flops_per_output_token / r.peak_flops;
    out->mbu = out->output_tps * r.bytes_per_output_token / r.mem_bw_bps;
    double act = c->present && c->has_power ? c->activity_floor + c->activity_per_mfu * out->mfu + c->activity_per_mbu * out->mbu
                                            : fmax(out->mfu, out->mbu);
    if (act > 1) act = 1;
    if (act < 0) act = 0;
    out->power_w = hw->idle_power_w + (hw->max_power_w - hw->idle_power_w) * act;
    out->joules_per_output_token = out->power_w / out->output_tps;
    return 0;
}

/* Least squares y ~ X b over k columns (k <= 3) by the normal equations (Gauss-Jordan with
 * partial pivoting); -1 when singular. */
static int lsq(const double (*X)[3], const double *y, size_t n, int k, double *b) {
    double A[3][4] = {{0}};
    for (size_t i = 0; i < n; i++)
        for (int r = 0; r < k; r++) {
            for (int c = 0; c < k; c++) A[r][c] += X[i][r] * X[i][c];
            A[r][k] += X[i][r] * y[i];
        }
    double scale = 0;
    for (int r = 0; r < k; r++) scale = fmax(scale, fabs(A[r][r]));
    for (int c = 0; c < k; c++) {
        int piv = c;
        for (int r = c + 1; r < k; r++)
            if (fabs(A[r][c]) > fabs(A[piv][c])) piv = r;
        if (!(fabs(A[piv][c]) > 1e-12 * scale)) return -1;
        for (int j = 0; j <= k; j++) { double t = A[c][j]; A[c][j] = A[piv][j]; A[piv][j] = t; }
        for (int r = 0; r < k; r++) {
            if (r == c) continue;
            double f = A[r][c] / A[c][c];
            for (int j = 0; j <= k; j++) A[r][j] -= f * A[c][j];
        }
    }
    for (int r = 0; r < k; r++) b[r] = A[r][k] / A[r][r];
    return 0;
}

static int cmp_int(const void *a, const void *b) { return *(const int *)a - *(const int *)b; }

/* the engine model's fit (calibrate.h): kernels, bandwidth, decode efficiency per batch, into
 * out->hw.cal (rows[0], kernels); per-run c_pre, c_dec, b_dec, F, B from the plain TPF. 0, or -1
 * when no run has a prefill rate (no kernel can be fitted). */
typedef struct {
    double c_pre, c_dec, b_dec, F, B;
} run_cost;

static int fit_engine(const etok_cal_run *runs, size_t n, const int *use, const run_cost *rc, const int *batches, size_t nb,
                      etok_hw_calibration *cal, int *role, double *bw_scale) {
    /* kernels: geometric mean of prefill rate x c_pre / F per (format, threads) */
    int nk = 0, cnt[ETOK_CAL_MAX_POINTS] = {0};
    double lk[ETOK_CAL_MAX_POINTS] = {0};
    etok_dtype kd[ETOK_CAL_MAX_POINTS];
    int kt[ETOK_CAL_MAX_POINTS];
    for (size_t i = 0; i < n; i++) {
        if ((use && !use[i]) || !runs[i].weight_dtype_known || !(runs[i].prefill_tps > 0) || !(rc[i].c_pre > 0)) continue;
        int k;
        for (k = 0; k < nk && !(kd[k] == runs[i].weight_dtype && kt[k] == runs[i].threads); k++) {}
        if (k == nk) {
            if (nk >= ETOK_CAL_MAX_POINTS) continue; /* more kernels than the table holds: later ones unfitted */
            kd[nk] = runs[i].weight_dtype;
            kt[nk] = runs[i].threads;
            nk++;
        }
        lk[k] += log(runs[i].prefill_tps * rc[i].c_pre / rc[i].F);
        cnt[k]++;
        if (role) role[i] |= ETOK_CAL_ROLE_KERNEL;
    }
    if (!nk) return -1;
    int ref = 0;
    for (int k = 1; k < nk; k++)
        if (cnt[k] > cnt[ref]) ref = k;
    cal->n_kernels = nk;
    for (int k = 0, o = 1; k < nk; k++) {
        int slot = k == ref ? 0 : o++;
        cal->kernels[slot].weight_dtype = kd[k];
        cal->kernels[slot].threads = kt[k];
        cal->kernels[slot].flops_fraction = fmax(1e-9, fmin(1.0, exp(lk[k] / cnt[k])));
    }
    /* bandwidth: the largest any run moved in decode */
    double fb = 0;
    size_t arg = 0;
    for (size_t i = 0; i < n; i++) {
        if (use && !use[i]) continue;
        double f = runs[i].decode_tps * rc[i].b_dec / rc[i].B;
        if (f > fb) { fb = f; arg = i; }
    }
    /* A run that moved more than the probe's B (its triad counts write traffic a decode does not
     * have) shows the machine's bandwidth is at least that: B is raised to it (*bw_scale) and f_B
     * is 1, so that run's decode is predicted at its own rate, never below it */
    *bw_scale = fmax(1.0, fb);
    fb = fmax(1e-9, fmin(1.0, fb));
    if (role) role[arg] |= ETOK_CAL_ROLE_BANDWIDTH;
    /* decode efficiency per batch, from compute-bound decodes */
    const double K0 = cal->kernels[0].flops_fraction;
    etok_hw_cal_row *row = &cal->rows[0];
    row->devices_per_replica = 1;
    row->n = 0;
    for (size_t b = 0; b < nb; b++) {
        double sg = 0;
        int cg = 0;
        for (size_t i = 0; i < n; i++) {
            if ((use && !use[i]) || runs[i].batch != batches[b]) continue;
            int k = etok_cal_kernel_of(cal, &runs[i]);
            if (k < 0) continue;
            const double tau = 1.0 / runs[i].decode_tps, tb = rc[i].b_dec / (rc[i].B * fb);
            if (tb >= 0.9 * tau) {
                if (role) role[i] |= ETOK_CAL_ROLE_BW_BOUND;
                continue;
            }
            sg += log(rc[i].c_dec / (rc[i].F * cal->kernels[k].flops_fraction * tau));
            cg++;
            if (role) role[i] |= ETOK_CAL_ROLE_DECODE;
        }
        if (!cg) continue; /* every decode at this batch bandwidth-bound: the neighbours' efficiency applies */
        row->batch[row->n] = batches[b];
        row->bandwidth_fraction[row->n] = fb;
        row->flops_fraction[row->n] = fmax(1e-9, fmin(1.0, K0 * exp(sg / cg)));
        row->n++;
    }
    if (!row->n) { /* no compute-bound decode at all: decode at the prefill kernel's rate */
        row->n = 1;
        row->batch[0] = batches[0];
        row->bandwidth_fraction[0] = fb;
        row->flops_fraction[0] = K0;
    }
    cal->n_rows = 1;
    return 0;
}

int etok_cal_fit(const etok_cal_run *runs, size_t n, const int *use, const etok_hw_spec *roofs, const etok_model_arch *m,
                 etok_cal_fit_result *out, int *role, etok_err *err) {
    memset(out, 0, sizeof *out);
    out->hw = *roofs;
    memset(&out->hw.cal, 0, sizeof out->hw.cal);
    etok_hw_spec plain = *roofs;
    memset(&plain.cal, 0, sizeof plain.cal);

    int batches[ETOK_CAL_MAX_POINTS];
    size_t nb = 0;
    double idle_sum = 0, pmax = 0;
    int n_idle = 0, est = 0, used = 0;
    double (*X)[3] = calloc(n + 1, sizeof *X);
    double *y = calloc(n + 1, sizeof *y), *lfb = calloc(n + 1, sizeof *lfb), *lff = calloc(n + 1, sizeof *lff);
    run_cost *rcost = calloc(n + 1, sizeof *rcost);
    if (role)
        for (size_t i = 0; i < n; i++) role[i] = 0;
    if (!X || !y || !lfb || !lff || !rcost) {
        free(X); free(y); free(lfb); free(lff); free(rcost);
        return etok_errc(err, ETOK_EXIT_FAIL, "calibrate: out of memory");
    }
    int rc = 0;
    static _Thread_local etok_tpf_result r;
    for (size_t i = 0; i < n && !rc; i++) {
        lfb[i] = lff[i] = NAN;
        if (use && !use[i]) continue;
        const etok_cal_run *u = &runs[i];
        etok_tpf_scenario s;
        if (etok_cal_scenario(&plain, m, u, &s, err) || etok_tpf_evaluate(&s, -1, &r, err)) { rc = -1; break; }
        if (!(u->decode_tps > 0)) { rc = etok_errc(err, ETOK_EXIT_INPUT, "%s: no decode rate", u->label); break; }
        lfb[i] = log(u->decode_tps * r.bytes_per_token_decode / r.mem_bw_bps);
        rcost[i] = (run_cost){r.flops_per_token_prefill, r.flops_per_token_decode, r.bytes_per_token_decode, r.peak_flops, r.mem_bw_bps};
        if (u->prefill_tps > 0) lff[i] = log(u->prefill_tps * r.flops_per_token_prefill / r.peak_flops);
        /* power: y = P - P_idle against (1, MFU, MBU) at the measured output rate */
        X[used][0] = 1;
        X[used][1] = u->output_tps * r.flops_per_output_token / r.peak_flops;
        X[used][2] = u->output_tps * r.bytes_per_output_token / r.mem_bw_bps;
        y[used] = u->power_w; /* idle subtracted below, once the mean idle is known */
        used++;
        if (isfinite(u->idle_power_w)) { idle_sum += u->idle_power_w; n_idle++; }
        if (u->power_w > pmax) pmax = u->power_w;
        if (!u->power_measured) est = 1;
        size_t k;
        for (k = 0; k < nb && batches[k] != u->batch; k++) {}
        if (k == nb) {
            if (nb >= ETOK_CAL_MAX_POINTS) { rc = etok_errc(err, ETOK_EXIT_INPUT, "calibrate: more than %d batch sizes", ETOK_CAL_MAX_POINTS); break; }
            batches[nb++] = u->batch;
        }
    }
    if (!rc && used == 0) rc = etok_errc(err, ETOK_EXIT_INPUT, "calibrate: no run to fit");
    if (!rc) {
        qsort(batches, nb, sizeof batches[0], cmp_int);
        etok_hw_cal_row *row = &out->hw.cal.rows[0];
        row->devices_per_replica = 1;
        row->n = (int)nb;
        /* flops fraction: per batch, else the mean over every batch that has prefill */
        double all_ff = 0;
        int n_all_ff = 0;
        for (size_t i = 0; i < n; i++)
            if (isfinite(lff[i])) { all_ff += lff[i]; n_all_ff++; }
        double bw_scale = 1;
        const int engine = fit_engine(runs, n, use, rcost, batches, nb, &out->hw.cal, role, &bw_scale) == 0;
        if (engine) out->hw.mem_bw_bps *= bw_scale;
        for (size_t k = 0; k < nb && !engine; k++) {
            double sb = 0, sf = 0;
            int cb = 0, cf = 0;
            for (size_t i = 0; i < n; i++) {
                if (runs[i].batch != batches[k] || !isfinite(lfb[i])) continue;
                sb += lfb[i]; cb++;
                if (isfinite(lff[i])) { sf += lff[i]; cf++; }
            }
            row->batch[k] = batches[k];
            /* (0, 1]: the catalog format's range (a rate of 0 cannot come from a run) */
            row->bandwidth_fraction[k] = fmax(1e-9, fmin(1.0, cb ? exp(sb / cb) : 1.0));
            row->flops_fraction[k] = fmax(1e-9, fmin(1.0, cf ? exp(sf / cf) : n_all_ff ? exp(all_ff / n_all_ff) : 1.0));
        }
        out->hw.cal.n_rows = 1;
        out->hw.cal.present = 1;
        out->n_batches = nb;
        out->n_runs = used;

        /* power curve */
        double P_idle = n_idle ? idle_sum / n_idle : roofs->idle_power_w;
        for (int i = 0; i < used; i++) y[i] -= P_idle;
        double b[3] = {0, 0, 0};
        int k = 3;
        const char *how = "floor + MFU + MBU";
        double smf = 0, smb = 0;
        for (int i = 0; i < used; i++) { smf += X[i][1]; smb += X[i][2]; }
        const int mbu_larger = smb >= smf;
        if (used < 3 || lsq((const double(*)[3])X, y, (size_t)used, 3, b) || b[1] < 0 || b[2] < 0 || b[0] < 0) {
            /* fewer points or a sign the physics forbids: one activity term, the larger of MFU and MBU */
            for (int i = 0; i < used; i++) X[i][1] = fmax(X[i][1], X[i][2]);
            k = 2;
            how = "floor + max(MFU, MBU)";
            b[2] = 0;
            if (used < 2 || lsq((const double(*)[3])X, y, (size_t)used, 2, b) || b[1] < 0 || b[0] < 0) {
                /* flat: the mean busy power */
                double s = 0;
                for (int i = 0; i < used; i++) s += y[i];
                b[0] = fmax(0, s / used);
                b[1] = 0;
                k = 1;
                how = "flat (mean busy power)";
            }
        }
        double rss = 0;
        for (int i = 0; i < used; i++) {
            double f = b[0] + b[1] * X[i][1] + (k == 3 ? b[2] * X[i][2] : 0);
            rss += (y[i] - f) * (y[i] - f);
        }
        out->power_rms_w = sqrt(rss / used);
        /* the largest window power; never at or below idle (the TPF needs idle < max) */
        double span = pmax - P_idle;
        if (!(span > 1e-3 * fabs(P_idle))) span = fmax(1e-3 * fabs(P_idle), 1e-6);
        out->hw.idle_power_w = P_idle;
        out->hw.max_power_w = P_idle + span;
        etok_hw_calibration *c = &out->hw.cal;
        c->has_power = 1;
        c->activity_floor = fmin(0.999999, b[0] / span);
        c->activity_per_mfu = (k == 2 ? b[1] : k == 3 ? b[1] : 0) / span;
        c->activity_per_mbu = (k == 3 ? b[2] : k == 2 ? b[1] : 0) / span;
        if (k == 2) {
            /* one term max(MFU, MBU) cannot be written in the linear format: it goes on the
             * resource that was the larger in the runs (decode on this engine: bandwidth) */
            if (mbu_larger) c->activity_per_mfu = 0;
            else c->activity_per_mbu = 0;
        }
        out->power_from_estimate = est;
        snprintf(out->power_note, sizeof out->power_note,
                 "P = %.3g W idle + %.3g W x activity, activity %s fitted by least squares (rms %.2g W)%s", P_idle, span,
                 how, out->power_rms_w,
                 est ? "; the meter is the estimate meter: this is its own utilisation model, not a measurement" : "");
        if (engine)
            snprintf(c->source, sizeof c->source,
                     "etok tpf --calibrate: %d bench runs of this machine (batch = --concurrency); kernels: prefill rate x TPF "
                     "FLOPs per prompt token / probe peak per weight format and thread count; bandwidth fraction: the largest "
                     "decode rate x TPF bytes per decode token / probe bandwidth of any run; flops fraction by batch: the first "
                     "kernel's x the decode efficiency of the compute-bound decodes at that batch (docs/TPF.md \"Calibrating from "
                     "runs\"); power: %s",
                     used, est ? "the estimate meter's model (not measured)" : "measured window power");
        else
            snprintf(c->source, sizeof c->source,
                     "etok tpf --calibrate: %d bench runs of this machine (batch = --concurrency); bandwidth fraction = measured "
                     "decode rate x TPF bytes per decode token / probe bandwidth, flops fraction = measured prefill rate x TPF "
                     "FLOPs per prompt token / probe peak; power: %s",
                     used, est ? "the estimate meter's model (not measured)" : "measured window power");
    }
    free(X); free(y); free(lfb); free(lff); free(rcost);
    return rc;
}
