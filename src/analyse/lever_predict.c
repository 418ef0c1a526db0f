/* lever_predict.c — a measured lever change mapped to `etok tpf` terms and predicted by the TPF
 * (definitions in include/etok/lever_predict.h). Pure. Owns: the mapping from bench settings
 * to TPF levers, the predicted-vs-measured row, the GPU power limit's prediction from the
 * baseline's measured nvml draw. Does not own: the prediction itself
 * (calibrate.c's etok_cal_predict), the measured deltas (compare.c), loading (cmd_compare.c). */
#include "etok/lever_predict.h"

#include <jansson.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "etok/energy.h"

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

/* p blank (nothing predicted yet) with the measured side from c's deltas: token rate and
 * J/output-token, relative change and CI, NaN where not measured */
static void prediction_start(etok_lever_prediction *p, const etok_compare_cand *cc) {
    memset(p, 0, sizeof *p);
    p->present = 1;
    p->rate_ratio = p->joules_ratio = p->decode_ratio = NAN;
    p->meas_rate_rel = p->meas_rate_lo = p->meas_rate_hi = NAN;
    p->meas_joules_rel = p->meas_joules_lo = p->meas_joules_hi = NAN;
    p->rate_pred_over_meas = p->joules_pred_over_meas = NAN;
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
}

int etok_lever_predict(const etok_cal_run *b, const etok_cal_run *c, const etok_hw_spec *hw, const etok_model_arch *m,
                       const etok_compare_cand *cc, etok_lever_prediction *p, etok_err *err) {
    prediction_start(p, cc);
    const int calibrated = hw->cal.present;
    p->power_curve = calibrated && hw->cal.has_power;
    snprintf(p->hardware, sizeof p->hardware, "%s", calibrated ? hw->name : "probe roofs (uncalibrated)");
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

/* ---- the GPU power limit (bench --gpu-power-limit; lever_predict.h "GPU power limit") ---- */

/* Keys of a bench config that do not describe what was served or how: the lever itself, the
 * values it replaced, and the amount and procedure of the measurement. Every other key must be
 * equal for the power limit to be the only difference. */
static int setting_key(const char *k) {
    static const char *const SKIP[] = {"gpu_power_limit_w", "gpu_power_limit_prev_w", "cpu_max_freq_prev_khz", "seed",
                                       "requests", "duration_s", "warmup_requests", "idle_s", "meters", NULL};
    for (int i = 0; SKIP[i]; i++)
        if (!strcmp(k, SKIP[i])) return 0;
    return 1;
}

/* config.gpu_power_limit_w of r: 0 = not set (the GPUs' own limit), -1 = no readable config. */
static double cap_of(const etok_record *r, json_t **cfg_out) {
    json_error_t je;
    json_t *cfg = r->config_json ? json_loads(r->config_json, 0, &je) : NULL;
    if (!json_is_object(cfg)) {
        json_decref(cfg);
        if (cfg_out) *cfg_out = NULL;
        return -1;
    }
    json_t *v = json_object_get(cfg, "gpu_power_limit_w");
    double w = json_is_number(v) ? json_number_value(v) : 0;
    if (cfg_out) *cfg_out = cfg;
    else json_decref(cfg);
    return isfinite(w) && w > 0 ? w : 0;
}

/* The first setting that differs between the two configs, or NULL. */
static const char *differing_setting(json_t *a, json_t *b) {
    const char *k;
    json_t *v;
    json_object_foreach(a, k, v) {
        if (setting_key(k) && !json_equal(v, json_object_get(b, k))) return k;
    }
    json_object_foreach(b, k, v) {
        if (setting_key(k) && !json_object_get(a, k)) return k;
    }
    return NULL;
}

int etok_gpu_mean_power(const etok_record *const *recs, size_t n, double *per_gpu_w, int max_gpus, int *n_gpus, char *why,
                        size_t why_n) {
    *n_gpus = 0;
    why[0] = 0;
    char names[ETOK_GPU_POWER_MAX][96];
    double e[ETOK_GPU_POWER_MAX], s[ETOK_GPU_POWER_MAX];
    int ng = 0;
    if (max_gpus > ETOK_GPU_POWER_MAX) max_gpus = ETOK_GPU_POWER_MAX;
    for (size_t k = 0; k < n; k++) {
        const etok_record *r = recs[k];
        etok_energy_result w;
        memset(&w, 0, sizeof w);
        if (etok_energy_window(r, r->window_start_s, r->window_end_s, &w)) {
            etok_energy_result_free(&w);
            snprintf(why, why_n, "run %zu has no valid window", k + 1);
            return -1;
        }
        int found = 0;
        for (size_t i = 0; i < r->n_traces; i++) {
            const etok_trace *t = &r->traces[i];
            /* one summable nvml trace per GPU (src/meter/nvml.c: the energy counter, or the
             * power samples where the GPU has no counter) */
            if (strcmp(t->meter, "nvml") || !t->summable) continue;
            const etok_trace_energy *te = &w.traces[i];
            if (!te->valid || !(te->covered_s > 0)) {
                snprintf(why, why_n, "run %zu: nvml %s has no valid reading in the window", k + 1, t->domain);
                etok_energy_result_free(&w);
                return -1;
            }
            int g = 0;
            while (g < ng && strcmp(names[g], t->domain)) g++;
            if (g == ng) {
                if (k > 0 || ng >= max_gpus) {
                    if (k > 0) snprintf(why, why_n, "the runs measured different GPUs (nvml %s)", t->domain);
                    else snprintf(why, why_n, "more than %d GPUs", max_gpus);
                    etok_energy_result_free(&w);
                    return -1;
                }
                snprintf(names[ng], sizeof names[ng], "%s", t->domain);
                e[ng] = s[ng] = 0;
                ng++;
            }
            e[g] += te->energy_j;
            s[g] += te->covered_s;
            found++;
        }
        etok_energy_result_free(&w);
        if (!found) {
            snprintf(why, why_n, "run %zu has no NVIDIA GPU power measurement (bench --meter nvml)", k + 1);
            return -1;
        }
        if (found != ng) {
            snprintf(why, why_n, "the runs measured different GPUs (%d, then %d)", ng, found);
            return -1;
        }
    }
    if (!ng) {
        snprintf(why, why_n, "no runs");
        return -1;
    }
    for (int g = 0; g < ng; g++) per_gpu_w[g] = e[g] / s[g];
    *n_gpus = ng;
    return 0;
}

int etok_gpu_power_lever_predict(const etok_record *const *base, size_t nb, const etok_record *const *cand, size_t nc,
                                 const etok_compare_cand *cc, etok_lever_prediction *p) {
    if (!nb || !nc) return 0;
    json_t *cb = NULL, *cn = NULL;
    const double Cb = cap_of(base[0], &cb), Cc = cap_of(cand[0], &cn);
    if (Cb < 0 || Cc < 0 || fabs(Cb - Cc) < 0.5) {
        json_decref(cb);
        json_decref(cn);
        return 0; /* the power limit is not a difference (or unknown): another branch's business */
    }
    prediction_start(p, cc);
    if (Cc > 0) snprintf(p->lever, sizeof p->lever, "hardware.power_limit_w=%.0f", Cc);
    else snprintf(p->lever, sizeof p->lever, "hardware.power_limit_w=none");
    const char *k = differing_setting(cb, cn);
    double w[ETOK_GPU_POWER_MAX];
    int ng = 0;
    char why[160];
    /* every run of an arm at the same limit */
    for (size_t i = 1; i < nb + nc; i++) {
        const etok_record *r = i < nb ? base[i] : cand[i - nb];
        const double ci = cap_of(r, NULL), c0 = i < nb ? Cb : Cc;
        if (i == nb) continue;
        if (fabs(ci - c0) >= 0.5) {
            snprintf(p->why, sizeof p->why, "no prediction: the %s's runs ran at different --gpu-power-limit (%g W, %g W)",
                     i < nb ? "baseline" : "candidate", c0, ci);
            goto done;
        }
    }
    if (k) {
        snprintf(p->why, sizeof p->why, "no prediction: more than the power limit differs (config.%.60s)", k);
        goto done;
    }
    if (strcmp(base[0]->host, cand[0]->host)) {
        snprintf(p->why, sizeof p->why, "no prediction: more than the power limit differs (the host)");
        goto done;
    }
    if (Cc <= 0) {
        snprintf(p->why, sizeof p->why,
                 "no prediction: the candidate lifts the baseline's %.0f W limit (the TPF knows the draw under a cap, not without it)",
                 Cb);
        goto done;
    }
    if (Cb > 0 && Cc > Cb) {
        snprintf(p->why, sizeof p->why,
                 "no prediction: the candidate raises the baseline's limit %.0f -> %.0f W (the draw the baseline's own cap allowed "
                 "says nothing of the draw above it)",
                 Cb, Cc);
        goto done;
    }
    if (etok_gpu_mean_power(base, nb, w, ETOK_GPU_POWER_MAX, &ng, why, sizeof why)) {
        snprintf(p->why, sizeof p->why, "no prediction: the baseline's GPU draw is unknown: %s", why);
        goto done;
    }
    /* Qdot = P / e_tok with e_tok held: each GPU draws min(P0_i, C); the rate scales with the
     * devices' total power, J/output-token stays. */
    double sum0 = 0, sumc = 0, pmax = 0;
    for (int g = 0; g < ng; g++) {
        sum0 += w[g];
        sumc += fmin(w[g], Cc);
        pmax = fmax(pmax, w[g]);
    }
    p->rate_ratio = p->decode_ratio = sumc / sum0;
    p->joules_ratio = 1;
    p->valid = isfinite(p->rate_ratio) && p->rate_ratio > 0;
    if (ng == 1)
        snprintf(p->hardware, sizeof p->hardware, "measured baseline draw P0 = %.1f W (nvml, 1 GPU, %zu run%s)", sum0, nb,
                 nb > 1 ? "s" : "");
    else
        snprintf(p->hardware, sizeof p->hardware, "measured baseline draw P0 = %.1f W, %d GPUs, highest %.1f W (nvml, %zu run%s)",
                 sum0, ng, pmax, nb, nb > 1 ? "s" : "");
    snprintf(p->why, sizeof p->why,
             "cap %.0f W %s; the TPF's power branch Qdot = P / e_tok with e_tok held (no DVFS or efficiency curve for a GPU): "
             "rate x min(P0, cap) / P0 a GPU, J/output-token unchanged",
             Cc, pmax <= Cc ? ">= P0: does not bind" : "< P0: power-bound");
    if (!p->valid) {
        p->rate_ratio = p->decode_ratio = p->joules_ratio = NAN;
        snprintf(p->why, sizeof p->why, "no prediction: the baseline's measured GPU draw is not positive");
    }
    p->rate_pred_over_meas = isfinite(p->meas_rate_rel) ? p->rate_ratio / (1 + p->meas_rate_rel) : NAN;
    p->joules_pred_over_meas = isfinite(p->meas_joules_rel) ? p->joules_ratio / (1 + p->meas_joules_rel) : NAN;
done:
    json_decref(cb);
    json_decref(cn);
    return 1;
}
