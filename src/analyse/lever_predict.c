/* lever_predict.c — a measured lever change mapped to `etok tpf` terms and predicted by the TPF
 * (definitions in include/etok/lever_predict.h). Pure. Owns: the mapping from bench settings
 * to TPF levers, the predicted-vs-measured row. Does not own: the prediction itself
 * (calibrate.c's etok_cal_predict), the measured deltas (compare.c), loading (cmd_compare.c). */
#include "etok/lever_predict.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static void cat(char *buf, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cat(char *buf, size_t n, const char *fmt, ...) {
    size_t l = strlen(buf);
    if (l + 1 >= n) return;
    if (l) {
        buf[l++] = ' ';
        buf[l] = 0;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf + l, n - l, fmt, ap);
    va_end(ap);
}

int etok_lever_map(const etok_cal_run *b, const etok_cal_run *c, char *lever, size_t ln, char *why, size_t wn) {
    lever[0] = why[0] = 0;
    if (strcmp(b->model_path, c->model_path) || strcmp(b->model_name, c->model_name)) {
        snprintf(why, wn, "no prediction: the arms ran different models");
        return -1;
    }
    if (b->threads != c->threads) {
        snprintf(why, wn, "no prediction: threads %d -> %d (the TPF has no thread count; the probe roofs are all-core)", b->threads,
                 c->threads);
        return -1;
    }
    if (fabs(b->cpu_max_freq_khz - c->cpu_max_freq_khz) > 0.5) {
        snprintf(why, wn, "no prediction: --cpu-max-freq differs (the TPF has no clock)");
        return -1;
    }
    if (strcmp(b->weights, c->weights) || b->weight_dtype != c->weight_dtype) {
        if (!c->weight_dtype_known || !b->weight_dtype_known) {
            snprintf(why, wn, "no prediction: weights %s -> %s (the TPF has no %s weight format)", b->weights, c->weights,
                     !c->weight_dtype_known ? c->weights : b->weights);
            return -1;
        }
        if (b->weight_dtype != c->weight_dtype)
            cat(lever, ln, "weights=%s", etok_dtype_name(c->weight_dtype)); /* model.weight_dtype */
    }
    if (b->kv_dtype != c->kv_dtype) {
        if (c->kv_dtype == ETOK_DT_Q8_0) cat(lever, ln, "kv-int8");
        else cat(lever, ln, "kv=%s", etok_dtype_name(c->kv_dtype));
    }
    if (b->attn_window != c->attn_window || b->attn_sinks != c->attn_sinks) {
        if (c->attn_window > 0) cat(lever, ln, "window=%d", c->attn_window + c->attn_sinks);
        else cat(lever, ln, "window=none");
    }
    if (b->batch != c->batch) cat(lever, ln, "batch=%d", c->batch);
    if (!lever[0]) {
        snprintf(why, wn, "no prediction: no setting the TPF models differs (same weights, KV, window, batch)");
        return -1;
    }
    return 0;
}

/* the candidate as the TPF sees it: the baseline's workload with the lever's settings */
static etok_cal_run mapped(const etok_cal_run *b, const etok_cal_run *c) {
    etok_cal_run x = *b;
    x.weight_dtype = c->weight_dtype;
    x.kv_dtype = c->kv_dtype;
    x.attn_window = c->attn_window;
    x.attn_sinks = c->attn_sinks;
    x.batch = c->batch;
    return x;
}

static const etok_compare_delta *find(const etok_compare_cand *c, const char *name) {
    for (size_t i = 0; c && i < c->n_deltas; i++)
        if (!strcmp(c->deltas[i].name, name) && !c->deltas[i].stat[0]) return &c->deltas[i];
    return NULL;
}

int etok_lever_predict(const etok_cal_run *b, const etok_cal_run *c, const etok_hw_spec *hw, const etok_model_arch *m,
                       const etok_compare_cand *cc, etok_lever_prediction *p, etok_err *err) {
    memset(p, 0, sizeof *p);
    p->present = 1;
    p->rate_ratio = p->joules_ratio = p->decode_ratio = NAN;
    p->meas_rate_rel = p->meas_rate_lo = p->meas_rate_hi = NAN;
    p->meas_joules_rel = p->meas_joules_lo = p->meas_joules_hi = NAN;
    p->rate_pred_over_meas = p->joules_pred_over_meas = NAN;
    const int calibrated = hw->cal.present;
    p->power_curve = calibrated && hw->cal.has_power;
    snprintf(p->hardware, sizeof p->hardware, "%s", calibrated ? hw->name : "probe roofs (uncalibrated)");
    const etok_compare_delta *dr = find(cc, "token_rate_tps"), *dj = find(cc, "joules_per_output_token");
    if (dr && dr->valid) {
        p->meas_rate_rel = dr->d.rel;
        p->meas_rate_lo = dr->d.rel_lo;
        p->meas_rate_hi = dr->d.rel_hi;
    }
    if (dj && dj->valid) {
        p->meas_joules_rel = dj->d.rel;
        p->meas_joules_lo = dj->d.rel_lo;
        p->meas_joules_hi = dj->d.rel_hi;
    }
    /* a thread count the TPF has no term for, but a calibration's kernel table has fitted */
    etok_cal_run cm = *c;
    int threads_lever = 0;
    if (b->threads != c->threads && calibrated && hw->cal.n_kernels > 0 && etok_cal_kernel_of(&hw->cal, c) >= 0) {
        cm.threads = b->threads;
        threads_lever = 1;
    }
    if (etok_lever_map(b, &cm, p->lever, sizeof p->lever, p->why, sizeof p->why)) {
        if (!threads_lever || strncmp(p->why, "no prediction: no setting", 25)) return 0;
        p->why[0] = 0; /* threads is the only difference */
    }
    if (threads_lever) cat(p->lever, sizeof p->lever, "threads=%d (calibrated kernel)", c->threads);
    etok_cal_run x = mapped(b, c);
    x.threads = c->threads;
    etok_cal_prediction pb, pc;
    if (etok_cal_predict(hw, m, b, &pb, err) || etok_cal_predict(hw, m, &x, &pc, err)) return -1;
    if (!pb.predictable || !pc.predictable) {
        snprintf(p->why, sizeof p->why, "no prediction: %s", !pb.predictable ? pb.why : pc.why);
        return 0;
    }
    p->rate_ratio = pc.output_tps / pb.output_tps;
    p->decode_ratio = pc.decode_tps / pb.decode_tps;
    p->joules_ratio = p->power_curve ? pc.joules_per_output_token / pb.joules_per_output_token : 1.0 / p->rate_ratio;
    if (!p->power_curve)
        snprintf(p->why, sizeof p->why, "power held at the baseline's measured mean (no calibrated power curve): J ratio = 1 / rate ratio");
    else
        snprintf(p->why, sizeof p->why, "power from the calibrated curve of %s", hw->name);
    if (b->attn_sinks || c->attn_sinks) cat(p->why, sizeof p->why, "; window counts the sinks (the TPF has none)");
    p->rate_pred_over_meas = isfinite(p->meas_rate_rel) ? p->rate_ratio / (1 + p->meas_rate_rel) : NAN;
    p->joules_pred_over_meas = isfinite(p->meas_joules_rel) ? p->joules_ratio / (1 + p->meas_joules_rel) : NAN;
    p->valid = isfinite(p->rate_ratio) && isfinite(p->joules_ratio);
    if (!p->valid) snprintf(p->why, sizeof p->why, "no prediction: the TPF gave no finite rate for this scenario");
    return 0;
}
