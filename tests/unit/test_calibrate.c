/* test_calibrate.c — the TPF held against measurement (issue 16): the mapping from bench
 * settings to `etok tpf` levers, the predicted-vs-measured row on a hand-computed case, and the
 * calibration fit recovering what it was given.
 *
 * Hand-computed case. Model: 1 layer, d = 64, 1 head of 64, 1 KV head, d_ff = 64, vocab 64,
 * tied embeddings: attention 4 x 64 x 64 = 16384 + FFN 3 x 64 x 64 = 12288 + embedding 4096 =
 * 32768 parameters; fp32 weights: W = 131072 bytes, all read once per step. fp32 KV: 2 x 64 x 4
 * = 512 bytes per token of context. Workload 0 prompt tokens, 1 output token: decode context
 * mean 1, so b_dec(B) = W / B + 512 x (1 + 1) = W / B + 1024. Compute peak 1e18 FLOP/s (never
 * binds), bandwidth 1e9 byte/s: decode rate(B) = 1e9 x f_B(B) / b_dec(B), no prefill term.
 * Uncalibrated, batch 1 -> 2: rate ratio = 132096 / 66560 = 1.984615..., J ratio (power held at
 * the baseline's) = 1 / that = 0.503876... Against a measured +90% rate and -45% J:
 * predicted/measured 1.984615 / 1.9 and 0.503876 / 0.55.
 * Calibrated (f_B = 0.5 at batch 1, 0.25 at 2; power 10 W idle, 20 W max, activity =
 * 0.5 + 0.4 MBU; MBU = f_B for a bandwidth-bound decode): rate ratio = 0.5 x 1.984615 =
 * 0.992308; P = 17 W and 16 W; J ratio = (16 / 17) / 0.992308. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "etok/calibrate.h"
#include "etok/lever_predict.h"
#include "etok/scenario.h"
#include "scenario/cal_io.h"
#include "measured_deltas.h"

static etok_model_arch tiny(void) {
    etok_model_arch m;
    memset(&m, 0, sizeof m);
    snprintf(m.name, sizeof m.name, "tiny");
    m.n_layers = 1;
    m.d_model = 64;
    m.n_heads = 1;
    m.n_kv_heads = 1;
    m.head_dim = 64;
    m.d_ff = 64;
    m.vocab = 64;
    m.tied_embeddings = 1;
    m.max_context = 1024;
    return m;
}

static etok_hw_spec roofs(void) {
    etok_hw_spec h;
    memset(&h, 0, sizeof h);
    snprintf(h.name, sizeof h.name, "test");
    h.peak_flops_fp32 = h.peak_flops_bf16 = h.peak_flops_fp8 = h.peak_flops_int8 = 1e18;
    h.mem_bw_bps = 1e9;
    h.mem_bytes = 1e12;
    h.idle_power_w = 10;
    h.max_power_w = 20;
    return h;
}

static etok_cal_run run(int batch) {
    etok_cal_run r;
    memset(&r, 0, sizeof r);
    snprintf(r.label, sizeof r.label, "b%d", batch);
    snprintf(r.model_path, sizeof r.model_path, "tiny.gguf");
    snprintf(r.weights, sizeof r.weights, "f32");
    snprintf(r.kv_type, sizeof r.kv_type, "f32");
    r.weight_dtype = ETOK_DT_FP32;
    r.weight_dtype_known = 1;
    r.kv_dtype = ETOK_DT_FP32;
    r.batch = batch;
    r.threads = 2;
    r.input_tokens = 0;
    r.output_tokens = 1;
    r.idle_power_w = 10;
    r.prefill_tps = NAN;
    return r;
}

#define REL(a, b, tol) assert_true(fabs((a) / (b)-1) < (tol))

static void map_levers(void **st) {
    (void)st;
    char lever[160], why[256];
    etok_cal_run b = run(4), c = run(4);
    snprintf(b.weights, sizeof b.weights, "keep");
    b.weight_dtype = ETOK_DT_Q4_1;
    b.kv_dtype = ETOK_DT_FP16;
    snprintf(b.kv_type, sizeof b.kv_type, "f16");
    c = b;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), -1);
    assert_non_null(strstr(why, "no setting the TPF models differs"));

    c = b;
    snprintf(c.weights, sizeof c.weights, "f32");
    c.weight_dtype = ETOK_DT_FP32;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), 0);
    assert_string_equal(lever, "weights=fp32");

    c = b;
    snprintf(c.weights, sizeof c.weights, "q4_1"); /* keep of a Q4_1 file: the same bytes */
    c.kv_dtype = ETOK_DT_Q8_0;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), 0);
    assert_string_equal(lever, "kv-int8");

    c = b;
    c.attn_window = 32;
    c.attn_sinks = 4;
    c.batch = 8;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), 0);
    assert_string_equal(lever, "window=36 batch=8");

    c = b;
    c.threads = 1;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), -1);
    assert_non_null(strstr(why, "no prediction: threads 2 -> 1"));

    c = b;
    snprintf(c.weights, sizeof c.weights, "q5_0");
    c.weight_dtype_known = 0;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), -1);
    assert_non_null(strstr(why, "no q5_0 weight format"));

    c = b;
    c.cpu_max_freq_khz = 1.2e6;
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), -1);
    assert_non_null(strstr(why, "no clock"));

    c = b;
    snprintf(c.model_path, sizeof c.model_path, "other.gguf");
    assert_int_equal(etok_lever_map(&b, &c, lever, sizeof lever, why, sizeof why), -1);
    assert_non_null(strstr(why, "different models"));
}

static etok_compare_cand measured(double rate_rel, double j_rel) { return measured_deltas(rate_rel, 0.1, j_rel, 0.05); }

static void predicted_vs_measured_uncalibrated(void **st) {
    (void)st;
    etok_model_arch m = tiny();
    etok_hw_spec h = roofs();
    etok_cal_run b = run(1), c = run(2);
    etok_compare_cand cc = measured(0.9, -0.45);
    etok_lever_prediction p;
    etok_err err = {0};
    assert_int_equal(etok_lever_predict(&b, &c, &h, &m, &cc, &p, &err), 0);
    assert_true(p.present && p.valid);
    assert_string_equal(p.lever, "batch=2");
    assert_false(p.power_curve);
    const double rr = 132096.0 / 66560.0;
    REL(p.rate_ratio, rr, 1e-9);
    REL(p.decode_ratio, rr, 1e-9);
    REL(p.joules_ratio, 1 / rr, 1e-9);
    REL(p.rate_pred_over_meas, rr / 1.9, 1e-9);
    REL(p.joules_pred_over_meas, (1 / rr) / 0.55, 1e-9);
    REL(p.meas_rate_lo, 0.8, 1e-12);
    REL(p.meas_joules_hi, -0.40, 1e-12);
    char line[1024];
    etok_lever_prediction_line(&p, line, sizeof line);
    assert_non_null(strstr(line, "token rate +98.5% predicted vs +90.0% [+80.0%, +100.0%] measured (predicted/measured 1.04)"));
    assert_non_null(strstr(line, "J/output-token -49.6% predicted vs -45.0% [-50.0%, -40.0%] measured (predicted/measured 0.92)"));

    /* threads differ: no prediction, the measured side still filled */
    c = run(1);
    c.threads = 1;
    assert_int_equal(etok_lever_predict(&b, &c, &h, &m, &cc, &p, &err), 0);
    assert_true(p.present);
    assert_false(p.valid);
    assert_true(isnan(p.rate_ratio));
    etok_lever_prediction_line(&p, line, sizeof line);
    assert_non_null(strstr(line, "TPF prediction: no prediction: threads 2 -> 1"));
}

static void predicted_with_power_curve(void **st) {
    (void)st;
    etok_model_arch m = tiny();
    etok_hw_spec h = roofs();
    etok_hw_calibration *cal = &h.cal;
    cal->present = 1;
    cal->n_rows = 1;
    cal->rows[0] = (etok_hw_cal_row){.devices_per_replica = 1, .n = 2, .batch = {1, 2}, .bandwidth_fraction = {0.5, 0.25},
                                     .flops_fraction = {1, 1}};
    cal->has_power = 1;
    cal->activity_floor = 0.5;
    cal->activity_per_mfu = 0;
    cal->activity_per_mbu = 0.4;
    etok_cal_run b = run(1), c = run(2);
    etok_cal_prediction pb;
    etok_err err = {0};
    assert_int_equal(etok_cal_predict(&h, &m, &b, &pb, &err), 0);
    REL(pb.decode_tps, 0.5e9 / 132096.0, 1e-9);
    REL(pb.mbu, 0.5, 1e-9);
    REL(pb.power_w, 17, 1e-9);
    REL(pb.joules_per_output_token, 17 / (0.5e9 / 132096.0), 1e-9);
    etok_compare_cand cc = measured(0.0, -0.05);
    etok_lever_prediction p;
    assert_int_equal(etok_lever_predict(&b, &c, &h, &m, &cc, &p, &err), 0);
    assert_true(p.valid && p.power_curve);
    const double rr = 0.5 * 132096.0 / 66560.0;
    REL(p.rate_ratio, rr, 1e-9);
    REL(p.joules_ratio, (16.0 / 17.0) / rr, 1e-9);
    REL(p.joules_pred_over_meas, (16.0 / 17.0) / rr / 0.95, 1e-9);
}

/* The fit recovers the fractions and power curve the synthetic runs were made with, and the
 * prediction then reproduces each run. */
static void fit_recovers(void **st) {
    (void)st;
    etok_model_arch m = tiny();
    etok_hw_spec h = roofs();
    const double fb[3] = {0.2, 0.3, 0.4};
    const int batch[3] = {1, 2, 4};
    etok_cal_run runs[6];
    etok_hw_spec truth = h;
    truth.cal.present = 1;
    truth.cal.n_rows = 1;
    truth.cal.rows[0] = (etok_hw_cal_row){.devices_per_replica = 1, .n = 3, .batch = {1, 2, 4}, .bandwidth_fraction = {0.2, 0.3, 0.4},
                                          .flops_fraction = {1, 1, 1}};
    truth.cal.has_power = 1;
    truth.cal.activity_floor = 0.3;
    truth.cal.activity_per_mbu = 1.0;
    for (int i = 0; i < 6; i++) {
        runs[i] = run(batch[i % 3]);
        etok_cal_prediction p;
        etok_err err = {0};
        assert_int_equal(etok_cal_predict(&truth, &m, &runs[i], &p, &err), 0);
        runs[i].decode_tps = p.decode_tps;
        runs[i].output_tps = p.output_tps;
        runs[i].power_w = p.power_w;
        runs[i].joules_per_output_token = p.joules_per_output_token;
        runs[i].power_measured = 1;
    }
    etok_cal_fit_result fit;
    etok_err err = {0};
    int use[6] = {1, 1, 1, 1, 1, 0}; /* leave the last one out */
    assert_int_equal(etok_cal_fit(runs, 6, use, &h, &m, &fit, NULL, &err), 0);
    assert_int_equal(fit.n_runs, 5);
    assert_int_equal((int)fit.n_batches, 3);
    for (int k = 0; k < 3; k++) {
        assert_true(fit.hw.cal.rows[0].batch[k] == batch[k]);
        REL(fit.hw.cal.rows[0].bandwidth_fraction[k], fb[k], 1e-9);
    }
    assert_false(fit.power_from_estimate);
    assert_true(fit.power_rms_w < 1e-6);
    REL(fit.hw.idle_power_w, 10, 1e-12);
    etok_cal_prediction p;
    assert_int_equal(etok_cal_predict(&fit.hw, &m, &runs[5], &p, &err), 0);
    REL(p.decode_tps, runs[5].decode_tps, 1e-9);
    REL(p.power_w, runs[5].power_w, 1e-6);
    REL(p.joules_per_output_token, runs[5].joules_per_output_token, 1e-6);

    /* the estimate meter is said to be its own model */
    for (int i = 0; i < 6; i++) runs[i].power_measured = 0;
    assert_int_equal(etok_cal_fit(runs, 6, NULL, &h, &m, &fit, NULL, &err), 0);
    assert_true(fit.power_from_estimate);
    assert_non_null(strstr(fit.power_note, "estimate meter"));
    assert_non_null(strstr(fit.hw.cal.source, "not measured"));

    /* no run to fit */
    int none[6] = {0};
    assert_int_equal(etok_cal_fit(runs, 6, none, &h, &m, &fit, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "no run to fit"));
}


/* The engine model (calibrate.h, docs/TPF.md "Calibrating from runs"): runs made by a known
 * kernel table, bandwidth and decode efficiency are fitted back to it; the prediction reproduces
 * each run; a kernel no run had is "not predictable"; the profile written and read back keeps
 * the kernels. Peaks F = B = 1e9. Truth: K(q4_1, 2 threads) = 0.2, K(fp32, 2) = 0.15, f_B = 0.02,
 * f_F = 0.01 at batch 1 and 0.05 at batch 4 (decode efficiency 0.05 and 0.25 of K0 = 0.2). With
 * the tiny model (c ~ 65.6 kFLOP a token; q4_1 weights 20480 bytes, fp32 131072; fp32 KV 512
 * bytes a token of context, ~5.6 kB read per decode token at 8 + 4 tokens): q4_1 decode at
 * batch 1 takes 6.6 ms of compute against 1.3 ms of bytes, at batch 4 1.3 against 0.5 (compute-
 * bound); fp32 at batch 4 1.9 ms of bytes against 1.75 of compute (bandwidth-bound). Prefill is
 * compute-bound for both (0.33 / 0.44 ms against 0.13 / 0.2 of bytes a prompt token). */
static void engine_model_fit(void **st) {
    (void)st;
    etok_model_arch m = tiny();
    etok_hw_spec h = roofs();
    h.peak_flops_fp32 = h.peak_flops_bf16 = h.peak_flops_fp8 = h.peak_flops_int8 = 1e9;
    etok_hw_spec truth = h;
    etok_hw_calibration *c = &truth.cal;
    c->present = 1;
    c->n_rows = 1;
    c->rows[0] = (etok_hw_cal_row){.devices_per_replica = 1, .n = 2, .batch = {1, 4}, .bandwidth_fraction = {0.02, 0.02},
                                   .flops_fraction = {0.01, 0.05}};
    c->n_kernels = 2;
    c->kernels[0].weight_dtype = ETOK_DT_Q4_1;
    c->kernels[0].threads = 2;
    c->kernels[0].flops_fraction = 0.2;
    c->kernels[1].weight_dtype = ETOK_DT_FP32;
    c->kernels[1].threads = 2;
    c->kernels[1].flops_fraction = 0.15;
    c->has_power = 1;
    c->activity_floor = 0.3;
    c->activity_per_mfu = 1.0;
    etok_cal_run runs[7];
    const int batch[7] = {1, 1, 4, 4, 4, 4, 4};
    for (int i = 0; i < 7; i++) {
        runs[i] = run(batch[i]);
        snprintf(runs[i].label, sizeof runs[i].label, "r%d", i);
        if (i < 4 || i == 6) {
            runs[i].weight_dtype = i == 6 ? ETOK_DT_Q8_0 : ETOK_DT_Q4_1;
            snprintf(runs[i].weights, sizeof runs[i].weights, "%s", i == 6 ? "q8_0" : "keep");
        }
        runs[i].input_tokens = 8;
        runs[i].output_tokens = 4;
        etok_cal_prediction p;
        etok_err err = {0};
        etok_hw_spec t = truth;
        if (i == 6) t.cal.kernels[1].weight_dtype = ETOK_DT_Q8_0; /* made like fp32, never fitted */
        assert_int_equal(etok_cal_predict(&t, &m, &runs[i], &p, &err), 0);
        assert_true(p.predictable);
        assert_int_equal(p.decode_bandwidth_bound, i == 4 || i == 5);
        runs[i].decode_tps = p.decode_tps;
        runs[i].output_tps = p.output_tps;
        /* the prefill rate the model ran at: 1 / t_pre, t_pre = (1/out - 1/dec) m / n */
        runs[i].prefill_tps = 1.0 / ((1.0 / p.output_tps - 1.0 / p.decode_tps) * 4 / 8);
        runs[i].power_w = p.power_w;
        runs[i].joules_per_output_token = p.joules_per_output_token;
        runs[i].power_measured = 1;
    }
    etok_cal_fit_result fit;
    etok_err err = {0};
    int use[7] = {1, 1, 1, 1, 1, 1, 0}, role[7];
    assert_int_equal(etok_cal_fit(runs, 7, use, &h, &m, &fit, role, &err), 0);
    const etok_hw_calibration *f = &fit.hw.cal;
    assert_int_equal(f->n_kernels, 2);
    assert_int_equal(f->kernels[0].weight_dtype, ETOK_DT_Q4_1); /* the kernel with the most runs first */
    REL(f->kernels[0].flops_fraction, 0.2, 1e-9);
    assert_int_equal(f->kernels[1].weight_dtype, ETOK_DT_FP32);
    REL(f->kernels[1].flops_fraction, 0.15, 1e-9);
    assert_int_equal(f->rows[0].n, 2);
    REL(f->rows[0].bandwidth_fraction[0], 0.02, 1e-9);
    REL(f->rows[0].bandwidth_fraction[1], 0.02, 1e-9);
    REL(f->rows[0].flops_fraction[0], 0.01, 1e-9);
    REL(f->rows[0].flops_fraction[1], 0.05, 1e-9);
    for (int i = 0; i < 4; i++) assert_int_equal(role[i], ETOK_CAL_ROLE_KERNEL | ETOK_CAL_ROLE_DECODE);
    assert_true(role[4] & ETOK_CAL_ROLE_BW_BOUND);
    assert_true(role[5] & ETOK_CAL_ROLE_BW_BOUND);
    assert_true((role[4] | role[5]) & ETOK_CAL_ROLE_BANDWIDTH);
    assert_false(role[4] & ETOK_CAL_ROLE_DECODE);
    assert_int_equal(role[6], 0); /* not used */
    for (int i = 0; i < 6; i++) {
        etok_cal_prediction p;
        assert_int_equal(etok_cal_predict(&fit.hw, &m, &runs[i], &p, &err), 0);
        assert_true(p.predictable);
        REL(p.decode_tps, runs[i].decode_tps, 1e-9);
        REL(p.output_tps, runs[i].output_tps, 1e-9);
        REL(p.joules_per_output_token, runs[i].joules_per_output_token, 1e-6);
    }
    /* q8_0 at 2 threads was never fitted: not predictable, and said why */
    etok_cal_prediction p;
    assert_int_equal(etok_cal_predict(&fit.hw, &m, &runs[6], &p, &err), 0);
    assert_false(p.predictable);
    assert_int_equal(p.kernel, -1);
    assert_non_null(strstr(p.why, "no kernel fitted for q8_0 weights at threads=2"));
    assert_true(isnan(p.decode_tps));
    /* compare's lever prediction on the fitted profile: a format lever uses both kernels; a
     * thread count is predicted only where the table has a kernel for it; a format the table
     * never fitted gives no prediction */
    etok_compare_cand cc;
    memset(&cc, 0, sizeof cc);
    etok_lever_prediction lp;
    snprintf(fit.hw.name, sizeof fit.hw.name, "calibrated-test");
    assert_int_equal(etok_lever_predict(&runs[2], &runs[4], &fit.hw, &m, &cc, &lp, &err), 0);
    assert_true(lp.valid);
    assert_string_equal(lp.lever, "weights=fp32");
    REL(lp.rate_ratio, runs[4].output_tps / runs[2].output_tps, 1e-9);
    etok_cal_run t1 = runs[2];
    t1.threads = 1;
    assert_int_equal(etok_lever_predict(&runs[2], &t1, &fit.hw, &m, &cc, &lp, &err), 0);
    assert_false(lp.valid);
    assert_non_null(strstr(lp.why, "no prediction: threads 2 -> 1"));
    etok_hw_spec h1 = fit.hw;
    h1.cal.kernels[h1.cal.n_kernels].weight_dtype = ETOK_DT_Q4_1;
    h1.cal.kernels[h1.cal.n_kernels].threads = 1;
    h1.cal.kernels[h1.cal.n_kernels].flops_fraction = 0.4; /* twice K0: decode and prefill compute twice as fast */
    h1.cal.n_kernels++;
    assert_int_equal(etok_lever_predict(&runs[2], &t1, &h1, &m, &cc, &lp, &err), 0);
    assert_true(lp.valid);
    assert_string_equal(lp.lever, "threads=1 (calibrated kernel)");
    REL(lp.decode_ratio, 2.0, 1e-9); /* compute-bound decode at batch 4 */
    assert_true(lp.rate_ratio > 1.5 && lp.rate_ratio < 2.0 + 1e-9);
    assert_int_equal(etok_lever_predict(&runs[2], &runs[6], &fit.hw, &m, &cc, &lp, &err), 0);
    assert_false(lp.valid);
    assert_non_null(strstr(lp.why, "no prediction: no kernel fitted for q8_0 weights at threads=2"));

    /* a run whose format the TPF has no dtype for (q5_*) never matches a kernel */
    etok_cal_run q5 = runs[0];
    q5.weight_dtype_known = 0;
    assert_int_equal(etok_cal_kernel_of(f, &q5), -1);

    /* the profile keeps the kernels: written, read back as a catalog entry */
    char path[] = "/tmp/etok_test_calXXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char pj[64];
    snprintf(pj, sizeof pj, "%s.json", path);
    snprintf(fit.hw.name, sizeof fit.hw.name, "calibrated-test");
    snprintf(fit.hw.display_name, sizeof fit.hw.display_name, "test");
    assert_int_equal(etok_cal_write_profile(&fit, runs, use, role, 7, pj, &err), 0);
    etok_hw_spec back;
    assert_int_equal(etok_catalog_hardware(pj, &back, &err), 0);
    assert_int_equal(back.cal.n_kernels, 2);
    assert_int_equal(back.cal.kernels[1].weight_dtype, ETOK_DT_FP32);
    assert_int_equal(back.cal.kernels[1].threads, 2);
    REL(back.cal.kernels[1].flops_fraction, 0.15, 1e-5);
    etok_cal_prediction pb;
    assert_int_equal(etok_cal_predict(&back, &m, &runs[4], &pb, &err), 0);
    REL(pb.decode_tps, runs[4].decode_tps, 1e-5);
    /* a kernel entry the format does not allow */
    FILE *fp = fopen(pj, "w");
    assert_non_null(fp);
    fputs("{\"name\": \"x\", \"display_name\": \"x\", \"peak_flops\": {\"bf16\": 1e9}, \"mem_bw_bps\": 1e9, \"mem_bytes\": 1e9,"
          " \"max_power_w\": 2, \"idle_power_w\": 1, \"source\": {\"peak_flops\": \"t\", \"mem_bw_bps\": \"t\", \"mem_bytes\": \"t\","
          " \"max_power_w\": \"t\", \"idle_power_w\": \"t\"}, \"calibration\": {\"source\": \"t\", \"achievable\": [{\"devices_per_replica\": 1,"
          " \"batch\": [1], \"bandwidth_fraction\": [0.5], \"flops_fraction\": [0.5]}], \"kernels\": [{\"weight_dtype\": \"q4_1\","
          " \"threads\": 2, \"flops_fraction\": 1.5}]}}\n",
          fp);
    fclose(fp);
    assert_int_equal(etok_catalog_hardware(pj, &back, &err), -1);
    assert_non_null(strstr(err.msg, "calibration.kernels[0].flops_fraction"));
    unlink(pj);
    unlink(path);
}

static void weight_type_and_share(void **st) {
    (void)st;
    char t[16];
    assert_int_equal(etok_cal_main_weight_type("F32 x 61, Q4_1 x 210, Q8_0 x 1", t, sizeof t), 0);
    assert_string_equal(t, "q4_1");
    assert_int_equal(etok_cal_main_weight_type("F32 x 272", t, sizeof t), 0);
    assert_string_equal(t, "f32");
    assert_int_equal(etok_cal_main_weight_type("", t, sizeof t), -1);
    assert_int_equal(etok_cal_main_weight_type(NULL, t, sizeof t), -1);
    /* roof_scale: a run that got half the machine is predicted at half the rate */
    etok_model_arch m = tiny();
    etok_hw_spec h = roofs();
    etok_cal_run r = run(1);
    etok_cal_prediction a, b;
    etok_err err = {0};
    assert_int_equal(etok_cal_predict(&h, &m, &r, &a, &err), 0);
    r.roof_scale = 0.5;
    assert_int_equal(etok_cal_predict(&h, &m, &r, &b, &err), 0);
    REL(b.decode_tps, 0.5 * a.decode_tps, 1e-12);
    REL(a.decode_tps, 1e9 / 132096.0, 1e-9);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(map_levers),
        cmocka_unit_test(engine_model_fit),
        cmocka_unit_test(predicted_vs_measured_uncalibrated),
        cmocka_unit_test(predicted_with_power_curve),
        cmocka_unit_test(fit_recovers),
        cmocka_unit_test(weight_type_and_share),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
