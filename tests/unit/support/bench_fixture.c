/* bench_fixture.c — see bench_fixture.h. */
#include "bench_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void fx_power(etok_record *r, double w_idle, double w_run, double t_end) {
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
    for (double s = 0; s <= t_end + 1e-9; s += 0.5) etok_trace_add_sample(t, s, s < 4.75 ? w_idle : w_run);
}

static void fx_req(etok_record *r, const char *id, double send, int tin, const double *times, int n, int pass,
                   const char *text) {
    etok_request *q = etok_record_add_request(r);
    snprintf(q->id, sizeof q->id, "%s", id);
    q->t_send_s = send;
    q->tokens_in = tin;
    q->tokens_out = n;
    q->token_times_s = malloc((size_t)n * sizeof(double));
    memcpy(q->token_times_s, times, (size_t)n * sizeof(double));
    q->n_token_times = (size_t)n;
    q->t_first_token_s = times[0];
    q->t_done_s = times[n - 1];
    q->ok = 1;
    q->quality_checked = 1;
    q->quality_pass = pass;
    q->energy_j = -1;
    q->output = strdup(text);
    snprintf(q->token_count_source, sizeof q->token_count_source, "engine");
}

static void fx_step(etok_record *r, double t0, double t1, int p, int d) {
    etok_step *s = etok_record_add_step(r);
    s->t_start_s = t0;
    s->t_end_s = t1;
    s->prefill_tokens = p;
    s->decode_tokens = d;
    s->flops = 1e6 * (p + d);
    s->bytes = 1e7;
}

void etok_fixture_bench_record(etok_record *r, double q_star) {
    etok_record_init(r);
    snprintf(r->kind, sizeof r->kind, "bench");
    snprintf(r->command, sizeof r->command, "etok bench (hand-built test record)");
    snprintf(r->host, sizeof r->host, "testhost");
    snprintf(r->cpu_model, sizeof r->cpu_model, "Test CPU <&>");
    r->cpu_count = 2;
    r->idle_start_s = 0;
    r->idle_end_s = 4;
    r->window_start_s = 5;
    r->window_end_s = 15;
    r->pue = 1.5;
    r->price_per_kwh = 0.2;
    r->quality_target = q_star;
    r->ttft_slo_s = 1.5;
    r->tpot_slo_s = 0.6;
    r->hw.peak_flops = 1e9;
    r->hw.mem_bw_bps = 1e8;
    r->hw.power_limit_w = 200;
    snprintf(r->hw.source, sizeof r->hw.source, "probe");
    snprintf(r->hw.name, sizeof r->hw.name, "test cpu");
    fx_power(r, 40, 100, 16);
    static const double t1[] = {6.0, 6.5, 7.0, 7.5, 8.0}, t2[] = {11.0, 11.5, 12.5};
    fx_req(r, "r1", 5.0, 10, t1, 5, 1, "Paris");
    fx_req(r, "r2", 9.0, 20, t2, 3, 0, "Lyon");
    fx_step(r, 5.0, 6.0, 10, 1);
    for (int i = 0; i < 4; i++) fx_step(r, 6.0 + 0.5 * i, 6.5 + 0.5 * i, 0, 1);
    fx_step(r, 9.0, 11.0, 20, 1);
    fx_step(r, 11.0, 11.5, 0, 1);
    fx_step(r, 11.5, 12.5, 0, 1);
}
