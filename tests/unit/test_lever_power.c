/* test_lever_power.c — the TPF's prediction of the GPU power limit lever (bench
 * --gpu-power-limit; include/etok/lever_predict.h "GPU power limit", docs/LEVERS.md):
 * hand-built bench records whose nvml GPU counter draws a known constant power in the window,
 * beside a non-summable nvml power trace and a RAPL package trace at other powers (so that a
 * P0 taken from the wrong domain, or from the record's total power, fails), and candidates at
 * other caps: a cap above the draw predicts no change, a cap below predicts rate x C / P0 with
 * J/output-token unchanged, P0 pools the baseline's runs, several GPUs sum min(P0_i, C), and
 * every 'no prediction' case names its reason. */
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

#include "etok/compare.h"
#include "etok/lever_predict.h"
#include "etok/record.h"
#include "measured_deltas.h"

#define W0 10.0 /* window start (s) */
#define W1 20.0 /* window end */

/* A counter trace (mJ, 0.1 s updates) of constant power w from 0 to 25 s. */
static void counter(etok_record *r, const char *meter, const char *domain, double w, int summable) {
    etok_trace *t = etok_record_add_trace(r);
    assert_non_null(t);
    snprintf(t->meter, sizeof t->meter, "%s", meter);
    snprintf(t->domain, sizeof t->domain, "%s", domain);
    t->source = ETOK_SOURCE_COUNTER;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "mJ");
    t->scale_to_si = 1e-3;
    t->resolution_si = 1e-3;
    t->update_period_s = 0.1;
    t->summable = summable;
    for (int i = 0; i <= 250; i++) assert_non_null(etok_trace_add_sample(t, 0.1 * i, 1e3 * w * 0.1 * i));
}

/* A power trace (mW samples) of constant power w: nvml's gpuN/power beside the counter. */
static void power(etok_record *r, const char *domain, double w) {
    etok_trace *t = etok_record_add_trace(r);
    assert_non_null(t);
    snprintf(t->meter, sizeof t->meter, "nvml");
    snprintf(t->domain, sizeof t->domain, "%s", domain);
    t->source = ETOK_SOURCE_POWER;
    t->boundary = ETOK_BOUNDARY_DEVICE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "mW");
    t->scale_to_si = 1e-3;
    t->resolution_si = 1e-3;
    t->update_period_s = 0.1;
    t->summable = 0;
    snprintf(t->power_field, sizeof t->power_field, "instant");
    for (int i = 0; i <= 250; i++) assert_non_null(etok_trace_add_sample(t, 0.1 * i, 1e3 * w));
}

/* A bench --endpoint record: cap (0 = no --gpu-power-limit), GPUs drawing gpu_w[0..n) (n = 0:
 * no nvml meter), a CPU package at 55 W, extra config keys (JSON members, "" for none). */
static void rec(etok_record *r, double cap, const double *gpu_w, int n, const char *extra) {
    etok_record_init(r);
    snprintf(r->kind, sizeof r->kind, "bench");
    snprintf(r->host, sizeof r->host, "gpuhost");
    r->window_start_s = W0;
    r->window_end_s = W1;
    char cfg[1024];
    int k = snprintf(cfg, sizeof cfg,
                     "{\"model\":\"m\",\"evals\":\"random\",\"concurrency\":1,\"max_tokens\":32,\"requests\":8,\"seed\":1,"
                     "\"endpoint\":\"http://127.0.0.1:8765\",\"api\":\"chat\",\"meters\":[\"nvml\",\"rapl\"]");
    if (cap > 0) k += snprintf(cfg + k, sizeof cfg - (size_t)k, ",\"gpu_power_limit_w\":%g,\"gpu_power_limit_prev_w\":[700]", cap);
    snprintf(cfg + k, sizeof cfg - (size_t)k, "%s%s}", extra[0] ? "," : "", extra);
    r->config_json = strdup(cfg);
    assert_non_null(r->config_json);
    counter(r, "rapl", "package-0", 55, 1);
    char d[32];
    for (int g = 0; g < n; g++) {
        snprintf(d, sizeof d, "gpu%d", g);
        counter(r, "nvml", d, gpu_w[g], 1);
        snprintf(d, sizeof d, "gpu%d/power", g);
        power(r, d, 3 * gpu_w[g] + 7); /* the instant reading, deliberately not the counter's */
    }
}

/* The measured deltas compare gives (relative change and CI). */
static etok_compare_cand measured(double rate_rel, double j_rel) { return measured_deltas(rate_rel, 0.02, j_rel, 0.04); }

#define REL(a, b, tol) assert_true(fabs((a) / (b)-1) < (tol))

/* one baseline record, one candidate record */
static int predict1(const etok_record *b, const etok_record *c, const etok_compare_cand *cc, etok_lever_prediction *p) {
    const etok_record *bb[1] = {b}, *cb[1] = {c};
    return etok_gpu_power_lever_predict(bb, 1, cb, 1, cc, p);
}

static void mean_power_from_the_gpu_counters(void **st) {
    (void)st;
    etok_record r;
    const double w[2] = {415, 120};
    rec(&r, 700, w, 2, "");
    const etok_record *rs[1] = {&r};
    double pw[4];
    int n = 0;
    char why[160];
    assert_int_equal(etok_gpu_mean_power(rs, 1, pw, 4, &n, why, sizeof why), 0);
    assert_int_equal(n, 2);
    REL(pw[0], 415, 1e-9); /* the counter, not the instant trace (3 w + 7) nor the package (55) */
    REL(pw[1], 120, 1e-9);
    /* more GPUs than asked for */
    assert_int_equal(etok_gpu_mean_power(rs, 1, pw, 1, &n, why, sizeof why), -1);
    assert_non_null(strstr(why, "more than 1 GPUs"));
    etok_record_free(&r);
}

static void cap_above_the_draw_does_not_bind(void **st) {
    (void)st;
    etok_record b, c;
    const double w = 415;
    rec(&b, 700, &w, 1, "");
    rec(&c, 450, &w, 1, "");
    etok_compare_cand cc = measured(-0.022, -0.035);
    etok_lever_prediction p;
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_true(p.present && p.valid);
    assert_string_equal(p.lever, "hardware.power_limit_w=450");
    assert_true(p.rate_ratio == 1.0);
    assert_true(p.joules_ratio == 1.0);
    assert_false(p.power_curve);
    REL(p.rate_pred_over_meas, 1 / 0.978, 1e-12);
    assert_non_null(strstr(p.why, "cap 450 W >= P0: does not bind"));
    assert_non_null(strstr(p.why, "e_tok held (no DVFS or efficiency curve for a GPU)"));
    assert_non_null(strstr(p.hardware, "P0 = 415.0 W (nvml, 1 GPU, 1 run)"));
    etok_record_free(&b);
    etok_record_free(&c);
}

static void cap_below_the_draw_scales_the_rate(void **st) {
    (void)st;
    etok_record b, c;
    const double w = 415, wc = 200;
    rec(&b, 700, &w, 1, "");
    rec(&c, 200, &wc, 1, "");
    etok_compare_cand cc = measured(-0.521, 0.005);
    etok_lever_prediction p;
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_true(p.valid);
    REL(p.rate_ratio, 200.0 / 415.0, 1e-9);
    REL(p.decode_ratio, 200.0 / 415.0, 1e-9);
    assert_true(p.joules_ratio == 1.0);
    REL(p.rate_pred_over_meas, (200.0 / 415.0) / 0.479, 1e-9);
    REL(p.joules_pred_over_meas, 1 / 1.005, 1e-12);
    REL(p.meas_rate_lo, -0.541, 1e-12);
    char line[1024];
    etok_lever_prediction_line(&p, line, sizeof line);
    assert_non_null(strstr(line, "etok tpf lever hardware.power_limit_w=200"));
    assert_non_null(strstr(line, "token rate -51.8% predicted vs -52.1% [-54.1%, -50.1%] measured (predicted/measured 1.01)"));
    assert_non_null(strstr(line, "J/output-token +0.0% predicted vs +0.5% [-3.5%, +4.5%] measured"));
    assert_non_null(strstr(line, "cap 200 W < P0: power-bound"));

    /* the baseline without --gpu-power-limit (the GPU's own limit): the same */
    etok_record_free(&b);
    rec(&b, 0, &w, 1, "");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    REL(p.rate_ratio, 200.0 / 415.0, 1e-9);

    /* the lever and the measurement's amount and procedure are not settings: seed, requests
     * and meters may differ */
    etok_record_free(&c);
    rec(&c, 200, &wc, 1, "\"seed\":7,\"requests\":16,\"idle_s\":5");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_true(p.valid);
    etok_record_free(&b);
    etok_record_free(&c);
}

/* P0 pools every run of the baseline arm (energy / seconds), not the first run's. */
static void baseline_runs_pool(void **st) {
    (void)st;
    etok_record b1, b2, c;
    const double w1 = 400, w2 = 430, wc = 200;
    rec(&b1, 700, &w1, 1, "");
    rec(&b2, 700, &w2, 1, "");
    rec(&c, 200, &wc, 1, "");
    const etok_record *bb[2] = {&b1, &b2}, *cb[1] = {&c};
    etok_compare_cand cc = measured(-0.5, 0);
    etok_lever_prediction p;
    assert_int_equal(etok_gpu_power_lever_predict(bb, 2, cb, 1, &cc, &p), 1);
    assert_true(p.valid);
    REL(p.rate_ratio, 200.0 / 415.0, 1e-9);
    assert_non_null(strstr(p.hardware, "P0 = 415.0 W (nvml, 1 GPU, 2 runs)"));

    /* the baseline's runs at different limits: no prediction */
    etok_record_free(&b2);
    rec(&b2, 650, &w2, 1, "");
    assert_int_equal(etok_gpu_power_lever_predict(bb, 2, cb, 1, &cc, &p), 1);
    assert_false(p.valid);
    assert_non_null(strstr(p.why, "no prediction: the baseline's runs ran at different --gpu-power-limit (700 W, 650 W)"));
    etok_record_free(&b1);
    etok_record_free(&b2);
    etok_record_free(&c);
}

/* Two GPUs: each draws min(P0_i, C); the rate follows the total (the TPF's total power). */
static void several_gpus(void **st) {
    (void)st;
    etok_record b, c;
    const double w[2] = {300, 100};
    rec(&b, 0, w, 2, "");
    rec(&c, 200, w, 2, "");
    etok_compare_cand cc = measured(-0.25, 0);
    etok_lever_prediction p;
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_true(p.valid);
    REL(p.rate_ratio, (200.0 + 100.0) / 400.0, 1e-9);
    assert_non_null(strstr(p.hardware, "P0 = 400.0 W, 2 GPUs, highest 300.0 W"));
    assert_non_null(strstr(p.why, "power-bound"));
    etok_record_free(&b);
    etok_record_free(&c);
}

static void no_prediction_reasons(void **st) {
    (void)st;
    etok_record b, c;
    const double w = 415, wc = 200;
    etok_compare_cand cc = measured(-0.5, 0);
    etok_lever_prediction p;

    /* the same limit: not this lever, p untouched */
    rec(&b, 700, &w, 1, "");
    rec(&c, 700, &w, 1, "");
    memset(&p, 0x5a, sizeof p);
    assert_int_equal(predict1(&b, &c, &cc, &p), 0);
    assert_int_equal(p.present, 0x5a5a5a5a);
    etok_record_free(&b);
    etok_record_free(&c);

    /* no nvml measurement in the baseline */
    rec(&b, 700, &w, 0, "");
    rec(&c, 200, &wc, 1, "");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_true(p.present);
    assert_false(p.valid);
    assert_true(isnan(p.rate_ratio) && isnan(p.joules_ratio));
    assert_non_null(strstr(p.why, "no prediction: the baseline's GPU draw is unknown: run 1 has no NVIDIA GPU power measurement"));
    REL(p.meas_rate_rel, -0.5, 1e-12); /* the measured side still filled */
    char line[1024];
    etok_lever_prediction_line(&p, line, sizeof line);
    assert_non_null(strstr(line, "TPF prediction: no prediction: the baseline's GPU draw is unknown"));
    etok_record_free(&b);
    etok_record_free(&c);

    /* the candidate raises the baseline's cap */
    rec(&b, 200, &wc, 1, "");
    rec(&c, 450, &w, 1, "");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_false(p.valid);
    assert_non_null(strstr(p.why, "no prediction: the candidate raises the baseline's limit 200 -> 450 W"));
    etok_record_free(&c);

    /* the candidate lifts it */
    rec(&c, 0, &w, 1, "");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_false(p.valid);
    assert_non_null(strstr(p.why, "no prediction: the candidate lifts the baseline's 200 W limit"));
    etok_record_free(&b);
    etok_record_free(&c);

    /* more than the limit differs: a setting, or the host */
    rec(&b, 700, &w, 1, "");
    rec(&c, 200, &wc, 1, "\"rate_rps\":2");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_false(p.valid);
    assert_non_null(strstr(p.why, "no prediction: more than the power limit differs (config.rate_rps)"));
    etok_record_free(&c);
    rec(&c, 200, &wc, 1, "");
    free(c.config_json);
    c.config_json = strdup("{\"model\":\"m\",\"evals\":\"random\",\"concurrency\":4,\"max_tokens\":32,\"requests\":8,\"seed\":1,"
                           "\"endpoint\":\"http://127.0.0.1:8765\",\"api\":\"chat\",\"gpu_power_limit_w\":200}");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_non_null(strstr(p.why, "more than the power limit differs (config.concurrency)"));
    etok_record_free(&c);
    rec(&c, 200, &wc, 1, "");
    snprintf(c.host, sizeof c.host, "otherhost");
    assert_int_equal(predict1(&b, &c, &cc, &p), 1);
    assert_non_null(strstr(p.why, "more than the power limit differs (the host)"));
    etok_record_free(&b);
    etok_record_free(&c);

    /* the candidate's runs at different limits */
    rec(&b, 700, &w, 1, "");
    etok_record c1, c2;
    rec(&c1, 200, &wc, 1, "");
    rec(&c2, 300, &wc, 1, "");
    const etok_record *bb[1] = {&b}, *cb[2] = {&c1, &c2};
    assert_int_equal(etok_gpu_power_lever_predict(bb, 1, cb, 2, &cc, &p), 1);
    assert_non_null(strstr(p.why, "no prediction: the candidate's runs ran at different --gpu-power-limit (200 W, 300 W)"));
    etok_record_free(&b);
    etok_record_free(&c1);
    etok_record_free(&c2);
}

/* The sweep report's prediction (scenario/sweep_predict.c) reads the points' run records from
 * disk and takes the same branch. */
static void sweep_point_prediction(void **st) {
    (void)st;
    char dir[] = "/tmp/etok_lever_power_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char pb[256], pc[256];
    snprintf(pb, sizeof pb, "%s/base.json", dir);
    snprintf(pc, sizeof pc, "%s/cand.json", dir);
    etok_record b, c;
    const double w = 415, wc = 200;
    rec(&b, 700, &w, 1, "");
    rec(&c, 200, &wc, 1, "");
    etok_err err = {0};
    assert_int_equal(etok_record_save(&b, pb, &err), 0);
    assert_int_equal(etok_record_save(&c, pc, &err), 0);
    const double mr[3] = {-0.52, -0.54, -0.50}, mj[3] = {0.005, -0.03, 0.04};
    etok_lever_prediction p;
    etok_sweep_lever_prediction(pb, pc, mr, mj, &p);
    assert_true(p.present && p.valid);
    REL(p.rate_ratio, 200.0 / 415.0, 1e-6);
    assert_true(p.joules_ratio == 1.0);
    REL(p.meas_rate_hi, -0.50, 1e-12);
    /* a missing candidate record: nothing (no line), as before */
    etok_sweep_lever_prediction(pb, "/nonexistent/run.json", mr, mj, &p);
    assert_false(p.present);
    remove(pb);
    remove(pc);
    rmdir(dir);
    etok_record_free(&b);
    etok_record_free(&c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mean_power_from_the_gpu_counters), cmocka_unit_test(cap_above_the_draw_does_not_bind),
        cmocka_unit_test(cap_below_the_draw_scales_the_rate), cmocka_unit_test(baseline_runs_pool),
        cmocka_unit_test(several_gpus),          cmocka_unit_test(no_prediction_reasons),
        cmocka_unit_test(sweep_point_prediction),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
