/* test_metrics_stages.c — the reporting set's named stages (etok/metrics.h) one by one on a
 * small hand-built record, against hand-computed values; and the chain: etok_metrics_compute
 * reports exactly the stages' figures.
 *
 * The record: a node power meter at 20 W until 4.75 s and 60 W after (samples every 0.5 s),
 * idle window [0, 4], measured window [5, 15] (10 s, 600 J, dynamic 400 J). Requests:
 *   w  warm-up, sent at 1 s (outside the window: excluded), 100 in / 3 out
 *   a  sent 5.0, tokens at 6.0 6.2 6.4 6.6: TTFT 1.0, TPOT 0.2, E2E 1.6, 10 in, passes
 *   b  sent 7.0, tokens at 9.5 10.5:        TTFT 2.5, TPOT 1.0, E2E 3.5, 6 in, passes
 *   c  sent 11.0, failed ("boom"), 5 in, 0 out, checked and failed
 * q* 0.5, s* TTFT <= 2 s and TPOT <= 0.5 s: a meets q* and s*; b misses s* (TTFT); c neither.
 * With steps (with_steps): a's prefill [5, 6] 10+1 tokens, decode [6, 6.6] 3 tokens; b's
 * prefill [7, 9.5] 6+1, decode [9.5, 10.5] 1; FLOPs 1e6 per token, 1e7 bytes per step. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "etok/metrics.h"

#define NEAR(a, b, tol) assert_true(fabs((a) - (b)) <= (tol))

static etok_request *add_req(etok_record *r, const char *id, double send, int tin, const double *times, int n,
                             int pass) {
    etok_request *q = etok_record_add_request(r);
    snprintf(q->id, sizeof q->id, "%s", id);
    q->t_send_s = send;
    q->tokens_in = tin;
    q->tokens_out = n;
    q->ok = 1;
    q->quality_checked = 1;
    q->quality_pass = pass;
    q->energy_j = -1;
    if (n > 0) {
        q->token_times_s = malloc((size_t)n * sizeof(double));
        memcpy(q->token_times_s, times, (size_t)n * sizeof(double));
        q->n_token_times = (size_t)n;
        q->t_first_token_s = times[0];
        q->t_done_s = times[n - 1];
    } else {
        q->t_first_token_s = q->t_done_s = -1;
    }
    return q;
}

static void add_step(etok_record *r, double t0, double t1, int p, int d) {
    etok_step *s = etok_record_add_step(r);
    s->t_start_s = t0;
    s->t_end_s = t1;
    s->prefill_tokens = p;
    s->decode_tokens = d;
    s->flops = 1e6 * (p + d);
    s->bytes = 1e7;
}

static void make_record(etok_record *r, int with_steps) {
    etok_record_init(r);
    snprintf(r->kind, sizeof r->kind, "bench");
    r->idle_start_s = 0;
    r->idle_end_s = 4;
    r->window_start_s = 5;
    r->window_end_s = 15;
    r->pue = 1;
    r->price_per_kwh = 0.2;
    r->quality_target = 0.5;
    r->ttft_slo_s = 2.0;
    r->tpot_slo_s = 0.5;
    r->hw.peak_flops = 1e9;
    r->hw.mem_bw_bps = 1e8;
    r->hw.power_limit_w = 120;
    snprintf(r->hw.source, sizeof r->hw.source, "probe");
    etok_trace *t = etok_record_add_trace(r);
    snprintf(t->meter, sizeof t->meter, "test");
    snprintf(t->domain, sizeof t->domain, "node");
    t->source = ETOK_SOURCE_POWER;
    t->boundary = ETOK_BOUNDARY_NODE;
    snprintf(t->raw_unit, sizeof t->raw_unit, "W");
    t->scale_to_si = 1;
    t->resolution_si = 0.001;
    t->update_period_s = 0.5;
    t->summable = 1;
    for (double s = 0; s <= 16 + 1e-9; s += 0.5) etok_trace_add_sample(t, s, s < 4.75 ? 20 : 60);
    static const double tw[] = {1.5, 1.7, 2.0}, ta[] = {6.0, 6.2, 6.4, 6.6}, tb[] = {9.5, 10.5};
    add_req(r, "w", 1.0, 100, tw, 3, 1);
    add_req(r, "a", 5.0, 10, ta, 4, 1);
    add_req(r, "b", 7.0, 6, tb, 2, 1);
    etok_request *c = add_req(r, "c", 11.0, 5, NULL, 0, 0);
    c->ok = 0;
    snprintf(c->error, sizeof c->error, "boom");
    if (with_steps) {
        add_step(r, 5.0, 6.0, 10, 1);
        add_step(r, 6.0, 6.6, 0, 3);
        add_step(r, 7.0, 9.5, 6, 1);
        add_step(r, 9.5, 10.5, 0, 1);
    }
}

typedef struct {
    etok_record r;
    etok_energy_summary es;
    etok_request_view rv[8];
    size_t n;
    etok_request_set rs;
} fixture;

static void setup_fx(fixture *f, int with_steps) {
    make_record(&f->r, with_steps);
    assert_int_equal(etok_energy_summarize(&f->r, &f->es), 0);
    assert_true(f->r.n_requests <= 8);
    f->n = etok_metrics_request_view(&f->r, f->rv);
    etok_metrics_request_set(&f->r, f->rv, f->n, &f->rs);
}

static void teardown_fx(fixture *f) {
    etok_energy_summary_free(&f->es);
    etok_record_free(&f->r);
}

static void test_request_view_and_set(void **st) {
    (void)st;
    fixture f;
    setup_fx(&f, 0);
    assert_int_equal(f.n, 3); /* the warm-up request is not in the window */
    assert_string_equal(f.rv[0].q->id, "a");
    NEAR(f.rv[0].ttft_s, 1.0, 1e-12);
    NEAR(f.rv[0].tpot_s, 0.2, 1e-12);
    NEAR(f.rv[0].e2e_s, 1.6, 1e-12);
    assert_true(f.rv[0].meets_q && f.rv[0].meets_s);
    assert_int_equal(f.rv[0].good_tokens, 4);
    NEAR(f.rv[1].ttft_s, 2.5, 1e-12);
    NEAR(f.rv[1].tpot_s, 1.0, 1e-12);
    assert_true(f.rv[1].meets_q);
    assert_false(f.rv[1].meets_s);
    assert_int_equal(f.rv[1].good_tokens, 0);
    assert_false(f.rv[2].ok);
    assert_true(isnan(f.rv[2].ttft_s) && isnan(f.rv[2].tpot_s) && isnan(f.rv[2].e2e_s));
    assert_false(f.rv[2].meets_q || f.rv[2].meets_s);

    const etok_request_set *s = &f.rs;
    assert_int_equal(s->n_requests, 3);
    assert_int_equal(s->n_ok, 2);
    assert_int_equal(s->n_checked, 3);
    assert_int_equal(s->n_pass, 2);
    assert_int_equal(s->n_meets_s, 1);
    assert_int_equal(s->n_good, 1);
    assert_int_equal(s->good_tokens, 4);
    assert_true(s->tokens_known);
    assert_int_equal(s->tokens_in, 21); /* summed over the window's requests: 10 + 6 + 5 */
    assert_int_equal(s->tokens_out, 6);
    assert_string_equal(s->first_error, "boom");
    assert_int_equal(s->n_steps, 0);
    /* no steps: busy = union of [5, 6.6], [7, 10.5], [11, 15 (failed: window end)] */
    NEAR(s->busy_s, 1.6 + 3.5 + 4.0, 1e-12);
    assert_true(s->serial);
    assert_true(s->fig.requests_failed.valid);
    NEAR(s->fig.requests_failed.value, 1, 0);
    assert_non_null(strstr(s->fig.requests_failed.note, "first error: boom"));
    assert_string_equal(s->fig.tokens_out.name, "tokens_out");
    NEAR(s->fig.tokens_out.value, 6, 0);
    teardown_fx(&f);

    /* with steps: busy time is the steps' duration, FLOPs and bytes summed */
    setup_fx(&f, 1);
    assert_int_equal(f.rs.n_steps, 4);
    NEAR(f.rs.busy_s, 1.0 + 0.6 + 2.5 + 1.0, 1e-12);
    NEAR(f.rs.sum_flops, 22e6, 1e-3);
    NEAR(f.rs.sum_bytes, 4e7, 1e-3);
    teardown_fx(&f);
}

static void test_energy_totals(void **st) {
    (void)st;
    fixture f;
    setup_fx(&f, 0);
    etok_energy_totals t;
    etok_metrics_energy_totals(&f.es, &t);
    assert_true(t.has_energy);
    assert_string_equal(t.source, "power");
    assert_string_equal(t.boundary, "node");
    assert_string_equal(t.warning, "");
    NEAR(t.fig.duration_s.value, 10, 1e-12);
    NEAR(t.fig.energy_j.value, 600, 1e-6);
    NEAR(t.fig.mean_power_w.value, 60, 1e-6);
    NEAR(t.fig.idle_power_w.value, 20, 1e-6);
    NEAR(t.fig.dynamic_energy_j.value, 400, 1e-6);
    assert_string_equal(t.fig.energy_j.source, "power");
    assert_true(isfinite(t.fig.energy_j.uncertainty));
    teardown_fx(&f);

    /* no meter: every energy figure invalid and says why */
    etok_record r;
    etok_record_init(&r);
    r.window_start_s = 0;
    r.window_end_s = 1;
    etok_energy_summary es;
    assert_int_equal(etok_energy_summarize(&r, &es), 0);
    etok_metrics_energy_totals(&es, &t);
    assert_false(t.has_energy);
    assert_string_equal(t.source, "none");
    assert_false(t.fig.energy_j.valid);
    assert_string_equal(t.fig.energy_j.note, "no meter reading covers the window");
    assert_false(t.fig.dynamic_energy_j.valid);
    NEAR(t.fig.duration_s.value, 1, 1e-12);
    etok_energy_summary_free(&es);
    etok_record_free(&r);
}

static void test_token_energies(void **st) {
    (void)st;
    fixture f;
    etok_err err = {0};
    etok_token_energies te;
    setup_fx(&f, 0);
    assert_int_equal(etok_metrics_token_energies(&f.r, &f.es, &f.rs, &te, &err), 0);
    NEAR(te.fig.per_output_token.value, 600.0 / 6, 1e-6);
    NEAR(te.fig.per_token.value, 600.0 / 27, 1e-6);
    NEAR(te.fig.per_request.value, 200, 1e-6);
    NEAR(te.fig.per_correct_answer.value, 300, 1e-6);
    /* propagated uncertainty: the window energy's over the count */
    NEAR(te.fig.per_output_token.uncertainty, f.es.energy_uncertainty_j / 6, 1e-9);
    assert_string_equal(te.phase_split_method, "none");
    assert_false(te.fig.per_input_token.valid);
    assert_non_null(strstr(te.fig.per_input_token.note, "no engine steps"));
    assert_true(isnan(te.prefill_j) && isnan(te.decode_j));
    teardown_fx(&f);

    /* serial requests with steps: the window energy split by step time, prefill 3.5 s of 5.1 s */
    setup_fx(&f, 1);
    assert_int_equal(etok_metrics_token_energies(&f.r, &f.es, &f.rs, &te, &err), 0);
    assert_string_equal(te.phase_split_method, "serial_phases");
    NEAR(te.prefill_j, 600 * 3.5 / 5.1, 1e-6);
    NEAR(te.decode_j, 600 * 1.6 / 5.1, 1e-6);
    NEAR(te.fig.per_input_token.value, 600 * 3.5 / 5.1 / 16, 1e-6);  /* 10 + 6 prompt tokens */
    NEAR(te.fig.per_decode_token.value, 600 * 1.6 / 5.1 / 4, 1e-6); /* decode-only steps: 3 + 1 */
    teardown_fx(&f);

    /* the dynamic J/output-token against an outside idle power: (600 - 20 x 10) / 6 */
    NEAR(etok_metrics_dynamic_joules_per_output_token(100, 60, 20), 400.0 / 6, 1e-9);
    assert_true(isnan(etok_metrics_dynamic_joules_per_output_token(100, 0, 20)));
    assert_true(isnan(etok_metrics_dynamic_joules_per_output_token(100, 60, NAN)));
    assert_true(isnan(etok_metrics_dynamic_joules_per_output_token(NAN, 60, 20)));
}

static void test_latency(void **st) {
    (void)st;
    fixture f;
    etok_err err = {0};
    setup_fx(&f, 0);
    etok_latency l;
    assert_int_equal(etok_metrics_latency(f.rv, f.n, &l, &err), 0);
    assert_int_equal(l.n_requests, 3);
    assert_int_equal(l.n_ttft, 2);
    assert_int_equal(l.n_tpot, 2);
    assert_int_equal(l.n_itl, 4); /* a: 3 gaps of 0.2 s, b: 1 of 1.0 s */
    assert_int_equal(l.n_e2e, 2);
    etok_metric fig[ETOK_LATENCY_FIGURES];
    etok_metrics_latency_figures(&l, 0, 1, fig);
    assert_string_equal(fig[0].name, "ttft_s");
    assert_string_equal(fig[0].stat, "p50");
    NEAR(fig[0].value, 1.75, 1e-12);            /* ttft p50 of {1.0, 2.5} */
    NEAR(fig[1].value, 1.0 + 0.9 * 1.5, 1e-12); /* p90, linear between order statistics */
    NEAR(fig[3].value, 1.75, 1e-12);            /* mean */
    assert_string_equal(fig[3].stat, "mean");
    NEAR(fig[4].value, 0.6, 1e-12);             /* tpot p50 of {0.2, 1.0} */
    assert_string_equal(fig[8].name, "itl_s");
    NEAR(fig[11].value, 1.6 / 4, 1e-12);        /* itl mean */
    NEAR(fig[15].value, (1.6 + 3.5) / 2, 1e-12); /* e2e mean */
    assert_string_equal(fig[0].note, "over 2 ok of 3 requests");
    assert_true(isnan(fig[0].ci_lo) && isnan(fig[0].ci_hi)); /* no CIs asked */
    etok_metrics_latency_figures(&l, 200, 7, fig);
    assert_true(isfinite(fig[0].ci_lo) && isfinite(fig[0].ci_hi));
    assert_true(fig[0].ci_lo >= 1.0 - 1e-12 && fig[0].ci_hi <= 2.5 + 1e-12);
    etok_metrics_latency_free(&l);

    /* an empty view: every figure invalid with the reason */
    assert_int_equal(etok_metrics_latency(f.rv, 0, &l, &err), 0);
    etok_metrics_latency_figures(&l, 100, 1, fig);
    assert_false(fig[0].valid);
    assert_string_equal(fig[0].note, "no request produced a first token");
    assert_string_equal(fig[8].note, "no per-token timestamps");
    etok_metrics_latency_free(&l);
    teardown_fx(&f);
}

static void test_slo_goodput(void **st) {
    (void)st;
    fixture f;
    etok_err err = {0};
    setup_fx(&f, 0);
    etok_slo_goodput g;
    assert_int_equal(etok_metrics_slo_goodput(&f.r, &f.es, f.rv, f.n, &f.rs, 0, 1, &g, &err), 0);
    NEAR(g.accuracy, 2.0 / 3, 1e-12);
    NEAR(g.fig.accuracy.uncertainty, sqrt(2.0 / 3 * (1.0 / 3) / 3), 1e-12);
    assert_true(isnan(g.fig.accuracy.ci_lo)); /* no CIs asked */
    assert_true(g.quality_gate_met);
    NEAR(g.fig.quality_conditioned_joules_per_token.value, 600.0 / 4, 1e-6); /* a's 4 tokens */
    NEAR(g.fig.slo_attainment.value, 1.0 / 3, 1e-12);
    NEAR(g.fig.goodput_rps.value, 0.1, 1e-12);
    NEAR(g.fig.goodput_tps.value, 0.4, 1e-12);
    NEAR(g.fig.ttft_slo_s.value, 2.0, 0);
    NEAR(g.fig.tpot_slo_s.value, 0.5, 0);
    assert_int_equal(etok_metrics_slo_goodput(&f.r, &f.es, f.rv, f.n, &f.rs, 200, 1, &g, &err), 0);
    assert_true(isfinite(g.fig.accuracy.ci_lo) && g.fig.accuracy.ci_lo <= 2.0 / 3 && g.fig.accuracy.ci_hi >= 2.0 / 3);

    /* q* above the accuracy: the gate fails and the quality-conditioned figure says why */
    f.r.quality_target = 0.9;
    assert_int_equal(etok_metrics_slo_goodput(&f.r, &f.es, f.rv, f.n, &f.rs, 0, 1, &g, &err), 0);
    assert_false(g.quality_gate_met);
    assert_false(g.fig.quality_conditioned_joules_per_token.valid);
    assert_non_null(strstr(g.fig.quality_conditioned_joules_per_token.note, "gated: accuracy 0.667 below q* 0.900"));
    teardown_fx(&f);
}

static void test_utilization_and_cost(void **st) {
    (void)st;
    fixture f;
    etok_err err = {0};
    setup_fx(&f, 1);
    etok_token_energies te;
    assert_int_equal(etok_metrics_token_energies(&f.r, &f.es, &f.rs, &te, &err), 0);
    etok_utilization u;
    etok_metrics_utilization(&f.r, &f.es, &f.rs, &te, &u);
    NEAR(u.fig.busy_s.value, 5.1, 1e-12);
    NEAR(u.rate_busy_tps, 6 / 5.1, 1e-12);
    NEAR(u.rate_window_tps, 0.6, 1e-12);
    NEAR(u.fig.deployment_utilization.value, 0.51, 1e-12);
    NEAR(u.fig.utilization_adjusted_joules_per_token.value, 100 + 20 * (1 - 0.51) / (0.51 * 6 / 5.1), 1e-6);
    NEAR(u.fig.mfu.value, 22e6 / 10 / 1e9, 1e-15);
    NEAR(u.fig.mbu.value, 4e7 / 10 / 1e8, 1e-12);
    NEAR(u.fig.power_limit_ratio.value, 0.5, 1e-9);
    assert_string_equal(u.binding_constraint, "device_power_cap");
    NEAR(u.fig.ceiling_compute_tps.value, 1e9 * 6 / 22e6, 1e-6);
    NEAR(u.fig.ceiling_memory_bandwidth_tps.value, 1e8 * 6 / 4e7, 1e-9);
    NEAR(u.fig.ceiling_device_power_cap_tps.value, 120.0 / 100, 1e-9);
    assert_string_equal(u.tpf_binding_ceiling, "device_power_cap");
    NEAR(u.fig.utilization.value, 0.6 / 1.2, 1e-9);

    etok_cost_carbon c;
    etok_metrics_cost_carbon(&f.r, &f.es, &te, &c);
    NEAR(c.fig.energy_cost_per_mtok.value, 100 * 1e6 / 3.6e6 * 0.2, 1e-6);
    assert_false(c.fig.co2e_g_per_mtok.valid);
    assert_string_equal(c.fig.co2e_g_per_mtok.note, "no --grid-intensity or --region given");
    teardown_fx(&f);
}

/* etok_metrics_compute reports exactly the stages' figures (same values, notes, CIs). */
static void same(const etok_metrics *m, const etok_metric *x) {
    const etok_metric *y = etok_metrics_get(m, x->name, x->stat);
    if (!y) fail_msg("%s %s: not reported", x->name, x->stat);
    if (memcmp(x, y, sizeof *x) && !(x->valid == y->valid && !strcmp(x->note, y->note) &&
                                     (x->value == y->value || (isnan(x->value) && isnan(y->value)))))
        fail_msg("%s %s: stage %g (%s) vs reported %g (%s)", x->name, x->stat, x->value, x->note, y->value, y->note);
}

static void test_chain_reports_the_stages(void **st) {
    (void)st;
    fixture f;
    etok_err err = {0};
    setup_fx(&f, 1);
    etok_metrics_opts o = {.seed = 5, .bootstrap_iters = 300};
    etok_metrics m;
    assert_int_equal(etok_metrics_compute(&f.r, &o, &m, &err), 0);
    etok_energy_totals et;
    etok_token_energies te;
    etok_latency l;
    etok_metric lf[ETOK_LATENCY_FIGURES];
    etok_slo_goodput g;
    etok_utilization u;
    etok_metrics_energy_totals(&f.es, &et);
    assert_int_equal(etok_metrics_token_energies(&f.r, &f.es, &f.rs, &te, &err), 0);
    assert_int_equal(etok_metrics_latency(f.rv, f.n, &l, &err), 0);
    etok_metrics_latency_figures(&l, 300, 5, lf);
    assert_int_equal(etok_metrics_slo_goodput(&f.r, &f.es, f.rv, f.n, &f.rs, 300, 5, &g, &err), 0);
    etok_metrics_utilization(&f.r, &f.es, &f.rs, &te, &u);
    same(&m, &et.fig.energy_j);
    same(&m, &et.fig.dynamic_energy_j);
    same(&m, &f.rs.fig.tokens_out);
    same(&m, &f.rs.fig.requests_failed);
    same(&m, &te.fig.per_output_token);
    same(&m, &te.fig.per_input_token);
    same(&m, &te.fig.per_decode_token);
    for (int i = 0; i < ETOK_LATENCY_FIGURES; i++) {
        same(&m, &lf[i]);
        const etok_metric *y = etok_metrics_get(&m, lf[i].name, lf[i].stat);
        assert_true(y->ci_lo == lf[i].ci_lo && y->ci_hi == lf[i].ci_hi); /* same seed, same resamples */
    }
    same(&m, &g.fig.accuracy);
    same(&m, &g.fig.quality_conditioned_joules_per_token);
    same(&m, &g.fig.goodput_tps);
    same(&m, &u.fig.utilization_adjusted_joules_per_token);
    same(&m, &u.fig.utilization);
    assert_string_equal(m.phase_split_method, te.phase_split_method);
    assert_string_equal(m.tpf_binding_ceiling, u.tpf_binding_ceiling);
    NEAR(m.breakdown_prefill_j + m.breakdown_decode_j + m.breakdown_idle_j, 600, 1e-6);
    etok_metrics_free(&m);

    /* bootstrap_iters < 0: the same values, no CIs */
    o.bootstrap_iters = -1;
    assert_int_equal(etok_metrics_compute(&f.r, &o, &m, &err), 0);
    const etok_metric *p90 = etok_metrics_get(&m, "tpot_s", "p90");
    assert_non_null(p90);
    NEAR(p90->value, lf[5].value, 0);
    assert_true(isnan(p90->ci_lo));
    assert_true(isnan(etok_metrics_get(&m, "accuracy", "")->ci_lo));
    etok_metrics_free(&m);
    etok_metrics_latency_free(&l);
    teardown_fx(&f);
}

/* TPOT's intervals: a server whose usage counts the end token that no chunk carries (8 tokens,
 * 7 chunks 0.1 s apart) has TPOT 0.1 s, not 0.6 s / 7; a server that packs tokens into fewer
 * chunks (usage 12, 4 chunks) keeps tokens_out - 1; one chunk plus the end token has no TPOT. */
static void test_tpot_end_token_not_in_chunks(void **st) {
    (void)st;
    etok_record r;
    etok_record_init(&r);
    r.window_start_s = 0;
    r.window_end_s = 100;
    double t7[7] = {1.0, 1.1, 1.2, 1.3, 1.4, 1.5, 1.6};
    etok_request *q = add_req(&r, "eos", 0.5, 5, t7, 7, 1);
    q->tokens_out = 8; /* usage: 7 content tokens and the end token */
    double t4[4] = {2.0, 2.3, 2.6, 2.9};
    q = add_req(&r, "packed", 1.5, 5, t4, 4, 1);
    q->tokens_out = 12; /* 3 tokens per chunk */
    double t1[1] = {3.0};
    q = add_req(&r, "one", 2.5, 5, t1, 1, 1);
    q->tokens_out = 2;
    etok_request_view rv[3];
    assert_int_equal(etok_metrics_request_view(&r, rv), 3);
    NEAR(rv[0].tpot_s, 0.1, 1e-12);
    NEAR(rv[1].tpot_s, 0.9 / 11, 1e-12);
    assert_true(isnan(rv[2].tpot_s));
    etok_record_free(&r);
}

/* fuzz_report (UBSan): a record whose window spans 1e300 s with a 0.1 s series bin made the bin
 * count and a token's bin index doubles beyond size_t (undefined conversions). The series now
 * caps the bins at 100000 and widens them to cover the window; the token lands in its bin. The
 * input it found had a null (NaN) token time: skipped by the series and the inter-token gaps. */
static void test_series_of_a_huge_window(void **st) {
    (void)st;
    etok_record r;
    etok_record_init(&r);
    r.window_start_s = 0;
    r.window_end_s = 1e300;
    double t[2] = {5e299, 5e299};
    add_req(&r, "far", 1, 5, t, 2, 1);
    etok_metrics m;
    etok_metrics_opts o = {.bootstrap_iters = 20, .series_bin_s = 0.1};
    etok_err err = {0};
    if (etok_metrics_compute(&r, &o, &m, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(m.n_series, 100000);
    NEAR(m.series_bin_s, 1e295, 1e285);
    double tokens = 0;
    for (size_t b = 0; b < m.n_series; b++) tokens += m.series[b].token_rate_tps * m.series_bin_s;
    NEAR(tokens, 2, 1e-6);
    assert_true(m.series[50000].token_rate_tps > 0);
    etok_metrics_free(&m);
    etok_record_free(&r);

    /* the input fuzz_report found: a token time null in the JSON (NaN, unknown) in an ordinary
     * window: not binned, no inter-token gap from it */
    etok_record_init(&r);
    r.window_start_s = 0;
    r.window_end_s = 10;
    double t3[3] = {1.0, NAN, 1.5};
    add_req(&r, "unknown-time", 0.5, 5, t3, 3, 1);
    if (etok_metrics_compute(&r, &o, &m, &err) != 0) fail_msg("%s", err.msg);
    tokens = 0;
    for (size_t b = 0; b < m.n_series; b++) tokens += m.series[b].token_rate_tps * m.series_bin_s;
    NEAR(tokens, 2, 1e-9);
    etok_latency l;
    etok_request_view rv[1];
    assert_int_equal(etok_metrics_request_view(&r, rv), 1);
    assert_int_equal(etok_metrics_latency(rv, 1, &l, &err), 0);
    assert_int_equal(l.n_itl, 0); /* both gaps touch the unknown time */
    etok_metrics_latency_free(&l);
    etok_metrics_free(&m);
    etok_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_view_and_set), cmocka_unit_test(test_energy_totals),
        cmocka_unit_test(test_token_energies),       cmocka_unit_test(test_latency),
        cmocka_unit_test(test_slo_goodput),          cmocka_unit_test(test_utilization_and_cost),
        cmocka_unit_test(test_chain_reports_the_stages), cmocka_unit_test(test_tpot_end_token_not_in_chunks),
        cmocka_unit_test(test_series_of_a_huge_window),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
