/* test_tpf.c — the Token Production Function model (METRICS.md §1) against hand-computed
 * values. The architectures are written out here from the models' config.json files (not
 * read from data/), so the arithmetic below is checkable by hand. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "etok/scenario.h"
#include "etok/tpf.h"
#include "etok/tpf_render.h"

#define assert_close(a, b, rel)                                                                                 \
    do {                                                                                                        \
        double _a = (a), _b = (b);                                                                              \
        if (!(fabs(_a - _b) <= (rel) * fabs(_b))) fail_msg("%s = %.10g, expected %.10g (rel %g)", #a, _a, _b, (double)(rel)); \
    } while (0)

/* ---------- architectures (config.json values) ---------- */

static etok_model_arch smollm2_135m(void) {
    etok_model_arch m = {0};
    snprintf(m.name, sizeof m.name, "smollm2-135m");
    m.n_layers = 30; m.d_model = 576; m.n_heads = 9; m.n_kv_heads = 3; m.head_dim = 64; m.d_ff = 1536;
    m.vocab = 49152; m.tied_embeddings = 1; m.max_context = 8192;
    return m;
}

static etok_model_arch llama31_8b(void) {
    etok_model_arch m = {0};
    snprintf(m.name, sizeof m.name, "llama-3.1-8b");
    m.n_layers = 32; m.d_model = 4096; m.n_heads = 32; m.n_kv_heads = 8; m.head_dim = 128; m.d_ff = 14336;
    m.vocab = 128256; m.max_context = 131072;
    return m;
}

static etok_model_arch mixtral_8x7b(void) {
    etok_model_arch m = llama31_8b();
    snprintf(m.name, sizeof m.name, "mixtral-8x7b");
    m.vocab = 32000; m.max_context = 32768;
    m.n_experts = 8; m.top_k = 2; m.d_ff_expert = 14336;
    return m;
}

static etok_model_arch deepseek_v3(void) {
    etok_model_arch m = {0};
    snprintf(m.name, sizeof m.name, "deepseek-v3");
    m.n_layers = 61; m.d_model = 7168; m.n_heads = 128; m.n_kv_heads = 128; m.head_dim = 128; m.d_ff = 18432;
    m.vocab = 129280;
    m.n_experts = 256; m.top_k = 8; m.n_shared_experts = 1; m.d_ff_expert = 2048; m.n_dense_layers = 3;
    m.q_lora_rank = 1536; m.kv_lora_rank = 512; m.qk_nope_head_dim = 128; m.qk_rope_head_dim = 64; m.v_head_dim = 128;
    return m;
}

static etok_hw_spec h100_sxm(void) {
    etok_hw_spec h = {0};
    snprintf(h.name, sizeof h.name, "h100-sxm");
    h.peak_flops_bf16 = 989.4e12; h.peak_flops_fp8 = 1978.9e12; h.peak_flops_int8 = 1978.9e12; h.peak_flops_fp32 = 67e12;
    h.mem_bw_bps = 3.35e12; h.mem_bytes = 80e9; h.max_power_w = 700; h.idle_power_w = 70;
    return h;
}

/* One H100 SXM, Llama 3.1 8B bf16, pure decode of 128 tokens at batch 1. */
static etok_tpf_scenario decode_b1(void) {
    etok_tpf_scenario s;
    etok_tpf_scenario_init(&s);
    s.hw = h100_sxm();
    s.model = llama31_8b();
    s.input_tokens = 0;
    s.output_tokens = 128;
    s.batch = 1;
    return s;
}

/* ---------- FLOPs and bytes per token ---------- */

static void smollm2_counts(void **state) {
    (void)state;
    etok_model_arch m = smollm2_135m();
    etok_tpf_model_stats st;
    assert_int_equal(etok_tpf_model_stats_compute(&m, ETOK_DT_BF16, ETOK_DT_BF16, &st), 0);
    /* attention per layer: q 576*576 = 331,776; k, v 576*(3*64) = 110,592 each; o 331,776 -> 884,736
     * FFN per layer: 3*576*1536 = 2,654,208; layer = 3,538,944; x 30 layers = 106,168,320
     * embedding 49,152*576 = 28,311,552, tied: counted once, and it is the LM head
     * total = 134,479,872 (model card: 135M) */
    assert_true(st.params_total == 134479872.0);
    /* matmul params = 106,168,320 + 28,311,552 (LM head) = 134,479,872 -> 268,959,744 FLOP/token */
    assert_true(st.params_active_matmul == 134479872.0);
    /* KV: 2 * L * n_kv * d_h * 2 bytes = 2*30*3*64*2 = 23,040 byte/token of context */
    assert_true(st.kv_bytes_per_token == 23040.0);
    /* attention: 4 * L * n_h * d_h = 4*30*9*64 = 69,120 FLOP per context position */
    assert_true(st.attn_flops_per_ctx == 69120.0);

    etok_tpf_scenario s;
    etok_tpf_scenario_init(&s);
    s.hw = h100_sxm();
    s.model = m;
    s.input_tokens = 128;
    s.output_tokens = 128;
    s.batch = 1;
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    /* prefill: positions 1..128, mean 64.5: 268,959,744 + 69,120*64.5 = 273,417,984 */
    assert_true(r.flops_per_token_prefill == 273417984.0);
    /* decode: positions 129..256, mean 192.5: 268,959,744 + 69,120*192.5 = 282,265,344 */
    assert_true(r.flops_per_token_decode == 282265344.0);
    /* decode bytes at batch 1: weights 134,479,872*2 = 268,959,744 + KV read 23,040*192.5 + write 23,040
     * = 268,959,744 + 4,435,200 + 23,040 = 273,417,984 */
    assert_true(r.bytes_per_token_decode == 273417984.0);
}

static void llama8b_counts(void **state) {
    (void)state;
    etok_model_arch m = llama31_8b();
    etok_tpf_model_stats st;
    assert_int_equal(etok_tpf_model_stats_compute(&m, ETOK_DT_BF16, ETOK_DT_BF16, &st), 0);
    /* attention per layer: 4096*4096 (q) + 2*4096*1024 (k, v) + 4096*4096 (o) = 41,943,040
     * FFN per layer: 3*4096*14336 = 176,160,768; layer = 218,103,808; x 32 = 6,979,321,856
     * embedding = LM head = 128,256*4096 = 525,336,576 each (untied)
     * total = 6,979,321,856 + 2*525,336,576 = 8,029,995,008 (model card: 8.03B = this + 266,240
     * RMSNorm weights, 65 x 4096, which the model does not count) */
    assert_true(st.params_total == 8029995008.0);
    /* matmul params exclude the embedding lookup: 6,979,321,856 + 525,336,576 = 7,504,658,432 */
    assert_true(st.params_active_matmul == 7504658432.0);
    /* KV: 2*32*8*128*2 = 131,072 byte/token; attention 4*32*32*128 = 524,288 FLOP/position */
    assert_true(st.kv_bytes_per_token == 131072.0);
    assert_true(st.attn_flops_per_ctx == 524288.0);
    /* bf16 weights: 8,029,995,008 * 2 = 16,059,990,016 bytes */
    assert_true(st.weight_bytes == 16059990016.0);

    etok_tpf_scenario s = decode_b1();
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    /* decode positions 1..128, mean 64.5: c = 2*7,504,658,432 + 524,288*64.5 = 15,043,133,440 */
    assert_true(r.flops_per_token_decode == 15043133440.0);
}

static void mixtral_counts(void **state) {
    (void)state;
    etok_model_arch m = mixtral_8x7b();
    etok_tpf_model_stats st;
    assert_int_equal(etok_tpf_model_stats_compute(&m, ETOK_DT_BF16, ETOK_DT_BF16, &st), 0);
    /* per layer: attention 41,943,040 + 8 experts * 3*4096*14336 (176,160,768) + router 4096*8
     * = 41,943,040 + 1,409,286,144 + 32,768 = 1,451,261,952; x 32 = 46,440,382,464
     * + embedding and LM head 2 * 32,000*4096 = 262,144,000 -> 46,702,526,464 (paper: 47B) */
    assert_true(st.params_total == 46702526464.0);
    /* active: 32 * (41,943,040 + 2*176,160,768 + 32,768) = 12,617,515,008, + 2*131,072,000
     * = 12,879,659,008 (paper: 13B active); matmul = 12,748,587,008 -> 25,497,174,016 FLOP/token */
    assert_true(st.params_active == 12879659008.0);
    assert_true(2 * st.params_active_matmul == 25497174016.0);
    assert_true(st.kv_bytes_per_token == 131072.0);

    /* Decode weight bytes: at batch 1 only the 2 routed experts are read; at batch B the expected
     * distinct experts per layer are 8 (1 - (6/8)^B). */
    etok_tpf_scenario s = decode_b1();
    s.model = m;
    s.devices_per_replica = 0;
    s.device_count = 2; /* 93.4 GB of weights need two 80 GB devices */
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.devices_per_replica, 2);
    double kv = 131072.0 * (64.5 + 1); /* read mean context + write one */
    assert_close(r.bytes_per_token_decode - kv, 12879659008.0 * 2, 1e-12);
    s.batch = 4;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    double uniq = 8 * (1 - pow(0.75, 4)); /* 5.53125 experts */
    double w = (46702526464.0 - 32 * 8 * 176160768.0 + 32 * uniq * 176160768.0) * 2;
    assert_close(r.bytes_per_token_decode - kv, w / 4, 1e-12);
}

static void deepseek_v3_mla_counts(void **state) {
    (void)state;
    etok_model_arch m = deepseek_v3();
    etok_tpf_model_stats st;
    assert_int_equal(etok_tpf_model_stats_compute(&m, ETOK_DT_FP8, ETOK_DT_BF16, &st), 0);
    /* MLA attention per layer:
     *   q down 7168*1536 = 11,010,048; q up 1536*128*(128+64) = 37,748,736
     *   kv down 7168*(512+64) = 4,128,768; kv up 512*128*(128+128) = 16,777,216
     *   o 128*128*7168 = 117,440,512; sum 187,105,280; x 61 layers = 11,413,422,080
     * dense FFN (3 layers): 3 * 3*7168*18432 = 3 * 396,361,728 = 1,189,085,184
     * MoE layers (58): expert 3*7168*2048 = 44,040,192; router 7168*256 = 1,835,008
     *   shared + router: 58 * (44,040,192 + 1,835,008) = 2,660,761,600
     *   routed: 58 * 256 * 44,040,192 = 653,908,770,816
     * embedding + LM head: 2 * 129,280*7168 = 1,853,358,080
     * total = 671,025,397,760 (report: 671B) */
    assert_true(st.params_total == 671025397760.0);
    /* active = 11,413,422,080 + 1,189,085,184 + 2,660,761,600 + 58*8*44,040,192 (20,434,649,088)
     *        + 1,853,358,080 = 37,551,276,032 (report: 37B activated) */
    assert_true(st.params_active == 37551276032.0);
    /* matmul FLOPs: 2 * (37,551,276,032 - 926,679,040) = 73,249,193,984 */
    assert_true(2 * st.params_active_matmul == 73249193984.0);
    /* MLA KV: L * (d_latent + d_rope) * 2 bytes = 61*(512+64)*2 = 70,272 byte/token
     * (full multi-head KV would be 2*61*128*128*2 = 3,997,696: 57x more) */
    assert_true(st.kv_bytes_per_token == 70272.0);
    /* attention: 2 * L * n_h * (d_qk + d_v) = 2*61*128*(192+128) = 4,997,120 FLOP per position */
    assert_true(st.attn_flops_per_ctx == 4997120.0);
    /* fp8 weights: 1 byte each */
    assert_true(st.weight_bytes == 671025397760.0);
}

static void mean_context(void **state) {
    (void)state;
    assert_true(etok_tpf_mean_ctx(1, 128, 0) == 64.5);
    /* window 100 over 1..200: (1+...+100 + 100*100) / 200 = (5050 + 10000) / 200 = 75.25 */
    assert_true(etok_tpf_mean_ctx(1, 200, 100) == 75.25);
    /* entirely past the window */
    assert_true(etok_tpf_mean_ctx(300, 400, 100) == 100.0);
}

/* ---------- ceilings and the binding constraint ---------- */

/* The ceiling functions shared by the scenario model and the run metrics. */
static void ceiling_functions_and_unknown_inputs(void **state) {
    (void)state;
    assert_close(etok_tpf_ceiling_compute_tps(1e12, 2.5e8), 4000.0, 1e-15);
    assert_close(etok_tpf_ceiling_memory_bandwidth_tps(2e11, 1e8), 2000.0, 1e-15);
    assert_close(etok_tpf_ceiling_power_tps(300.0, 0.5), 600.0, 1e-15);
    assert_true(isinf(etok_tpf_ceiling_power_tps(INFINITY, 0.5)));
    /* unknown: zero, negative or NAN inputs */
    assert_true(isnan(etok_tpf_ceiling_compute_tps(0, 2.5e8)));
    assert_true(isnan(etok_tpf_ceiling_compute_tps(1e12, 0)));
    assert_true(isnan(etok_tpf_ceiling_memory_bandwidth_tps(NAN, 1e8)));
    assert_true(isnan(etok_tpf_ceiling_power_tps(300.0, -1)));
    double c[ETOK_CEIL_COUNT];
    for (int i = 0; i < ETOK_CEIL_COUNT; i++) c[i] = NAN;
    assert_int_equal(etok_tpf_smallest_ceiling(c), -1);
    c[ETOK_CEIL_DEVICE_POWER_CAP] = 50;
    c[ETOK_CEIL_MEMORY_BANDWIDTH] = 40;
    c[ETOK_CEIL_COOLING] = INFINITY;
    assert_int_equal(etok_tpf_smallest_ceiling(c), ETOK_CEIL_MEMORY_BANDWIDTH);
    c[ETOK_CEIL_COMPUTE] = 40; /* tie: the lower index */
    assert_int_equal(etok_tpf_smallest_ceiling(c), ETOK_CEIL_COMPUTE);
}


static void llama8b_decode_b1_is_memory_bound_near_209(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_MEMORY_BANDWIDTH);
    /* b_tok = 16,059,990,016 (weights / batch 1) + 131,072 * (64.5 + 1) = 16,068,575,232 byte
     * memory_bandwidth = 3.35e12 / 16,068,575,232 = 208.48 token/s (~ 3.35 TB/s / 16 GB = 209) */
    assert_close(r.bytes_per_token_decode, 16068575232.0, 1e-12);
    assert_close(r.ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH], 3.35e12 / 16068575232.0, 1e-12);
    assert_close(r.token_rate_tps, 209.0, 0.01);
    /* compute = 989.4e12 / 15,043,133,440 = 65,771 token/s: 315x headroom */
    assert_close(r.ceilings_tps[ETOK_CEIL_COMPUTE], 989.4e12 / 15043133440.0, 1e-12);
    assert_true(r.headroom[ETOK_CEIL_COMPUTE] > 300);
    assert_true(r.headroom[ETOK_CEIL_MEMORY_BANDWIDTH] == 1.0);
    /* flat out: 700 W / 208.47 token/s = 3.358 J/token; joules_per_flop = that / c_tok */
    assert_close(r.joules_per_output_token, 700.0 / r.token_rate_tps, 1e-12);
    assert_close(r.joules_per_flop, r.joules_per_output_token / 15043133440.0, 1e-12);
    /* no facility: the power ceilings do not limit */
    assert_true(isinf(r.ceilings_tps[ETOK_CEIL_DELIVERED_POWER]));
    /* crossover P_grid* = PUE * N * P_dev / theta = 700 W */
    assert_close(r.crossover_facility_power_w, 700.0, 1e-12);
}

static void raising_batch_moves_toward_compute(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    etok_err err = {0};
    etok_tpf_result r;
    double last_ai = 0, last_ratio = INFINITY;
    int batches[] = {1, 4, 16, 64, 256, 1024};
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        s.batch = batches[i];
        assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
        /* intensity rises and the compute ceiling comes closer to the bandwidth ceiling */
        assert_true(r.arithmetic_intensity_decode > last_ai);
        double ratio = r.ceilings_tps[ETOK_CEIL_COMPUTE] / r.ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH];
        assert_true(ratio < last_ratio);
        last_ai = r.arithmetic_intensity_decode;
        last_ratio = ratio;
    }
    /* at batch 1024: b = 16,059,990,016/1024 + 131,072*65.5 = 24,269,924 byte, c = 15,043,133,440:
     * intensity 620 FLOP/byte > ridge 989.4/3.35 = 295 -> compute-bound */
    assert_int_equal(r.binding, ETOK_CEIL_COMPUTE);
    assert_close(r.arithmetic_intensity_decode, 15043133440.0 / (16059990016.0 / 1024 + 131072 * 65.5), 1e-12);
    assert_close(r.token_rate_tps, 989.4e12 / 15043133440.0, 1e-12);
}

static void batch_max_is_memory_capacity(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.batch = 0; /* the largest batch that fits */
    s.model.n_layers = 32;
    s.hw.peak_flops_bf16 = 1e18; /* make compute irrelevant */
    etok_err err = {0};
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    /* free memory 0.9*80e9 - 16,059,990,016 = 55,940,009,984; KV per sequence 128*131,072 =
     * 16,777,216 -> 3334 sequences */
    assert_int_equal(r.batch_max, 3334);
    assert_int_equal(r.batch, 3334);
    assert_int_equal(r.binding, ETOK_CEIL_MEMORY_CAPACITY);
}

static void facility_power_below_crossover_binds(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.device_count = 8;
    s.has_facility = 1;
    s.pue = 1.25;
    s.theta = 0.8;
    s.facility_power_w = 1e6;
    etok_err err = {0};
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_MEMORY_BANDWIDTH);
    /* P_grid* = PUE * N * P_max / theta = 1.25 * 8 * 700 / 0.8 = 8750 W */
    assert_close(r.crossover_facility_power_w, 8750.0, 1e-12);
    s.facility_power_w = 0.5 * 8750.0;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_DELIVERED_POWER);
    /* theta * (P_grid / PUE) / e_tok with e_tok = 8*700 W / (8 * 208.47 token/s) */
    double e = 8 * 700.0 / (8 * 3.35e12 / 16068575232.0);
    assert_close(r.ceilings_tps[ETOK_CEIL_DELIVERED_POWER], 0.8 * (4375.0 / 1.25) / e, 1e-9);
    assert_close(r.token_rate_tps, r.ceilings_tps[ETOK_CEIL_DELIVERED_POWER], 1e-12);
    /* half the power -> half the devices powered */
    assert_close(r.devices_powered, 4.0, 1e-9);
}

static void cooling_below_it_power_binds(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.device_count = 8;
    s.has_facility = 1;
    s.pue = 1.2;
    s.theta = 1;
    s.facility_power_w = 1.2e5; /* P_grid / PUE = 100 kW, well above 5.6 kW of devices */
    s.cooling_w = 5000;         /* less than the 5.6 kW the devices draw flat out */
    etok_err err = {0};
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_COOLING);
    assert_close(r.it_power_w, 5000.0, 1e-12);
    assert_close(r.token_rate_tps, r.ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH] * 5000.0 / 5600.0, 1e-9);
}

static void device_power_cap_binds(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.power_limit_w = 385; /* halfway between idle 70 W and 700 W */
    etok_err err = {0};
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_DEVICE_POWER_CAP);
    /* activity at the cap: (385 - 70) / (700 - 70) = 0.5 of the roofline rate */
    assert_close(r.token_rate_tps, 0.5 * 3.35e12 / 16068575232.0, 1e-9);
    assert_close(r.device_power_w, 385.0, 1e-9);
}

static void utilization_and_phi(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.utilization = 0.5;
    s.phi_system = 2.0;
    etok_err err = {0};
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&s, 0.10, &r, &err), 0);
    double R = 3.35e12 / 16068575232.0;
    assert_close(r.token_rate_tps, R * 2.0 * 0.5, 1e-12);
    /* device power 70 + 630 * 0.5 = 385 W; e = 385 / (R * 1.0) */
    assert_close(r.device_power_w, 385.0, 1e-12);
    assert_close(r.joules_per_output_token, 385.0 / (R * 1.0), 1e-12);
    /* METRICS.md §3: e_busy + P_idle (1 - U) / (U rate_busy) = 700/(2R) + 70*0.5/(0.5*2R) */
    assert_close(r.utilization_adjusted_joules_per_token, 700.0 / (2 * R) + 70 * 0.5 / (0.5 * 2 * R), 1e-12);
    /* cost = J/token * 1e6 / 3.6e6 * price * PUE */
    assert_close(r.energy_cost_per_mtok, r.joules_per_output_token * 1e6 / 3.6e6 * 0.10, 1e-12);
}

/* ---------- errors ---------- */

static void errors_name_the_field(void **state) {
    (void)state;
    etok_err err = {0};
    etok_tpf_result r;
    etok_tpf_scenario s = decode_b1();
    /* 405B-class weights on one device */
    s.model.n_layers = 126; s.model.d_model = 16384; s.model.n_heads = 128; s.model.d_ff = 53248;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "does not fit"));
    s = decode_b1();
    s.batch = 5000; /* > 3334 */
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "workload.batch 5000"));
    assert_non_null(strstr(err.msg, "largest batch 3334"));
    s = decode_b1();
    s.device_count = 6;
    s.devices_per_replica = 4;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "not a multiple"));
    s = decode_b1();
    s.has_facility = 1;
    s.facility_power_w = 1e5;
    s.pue = 0.9;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "facility.pue"));
    s = decode_b1();
    s.utilization = 1.5;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "utilization"));
    s = decode_b1();
    s.input_tokens = 131072;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), -1);
    assert_non_null(strstr(err.msg, "exceeds the context"));
}

/* ---------- levers ---------- */

static void levers_transform(void **state) {
    (void)state;
    etok_err err = {0};
    etok_tpf_result a, b;
    etok_tpf_scenario s = decode_b1();
    assert_int_equal(etok_tpf_evaluate(&s, -1, &a, &err), 0);

    etok_tpf_scenario t = s;
    assert_int_equal(etok_lever_apply(&t, "kv-int8", &err), 0);
    assert_int_equal(etok_tpf_evaluate(&t, -1, &b, &err), 0);
    assert_true(b.stats.kv_bytes_per_token == a.stats.kv_bytes_per_token / 2);

    t = s;
    assert_int_equal(etok_lever_apply(&t, "fp8", &err), 0);
    assert_int_equal(etok_tpf_evaluate(&t, -1, &b, &err), 0);
    assert_true(b.stats.weight_bytes == a.stats.weight_bytes / 2);
    assert_true(b.peak_flops == 1978.9e12);
    /* memory-bound: the rate nearly doubles (KV bytes unchanged) */
    assert_true(b.token_rate_tps > 1.95 * a.token_rate_tps);

    t = s;
    assert_int_equal(etok_lever_apply(&t, "int4", &err), 0);
    assert_int_equal(etok_tpf_evaluate(&t, -1, &b, &err), 0);
    assert_close(b.stats.weight_bytes, 8029995008.0 * 4.125 / 8, 1e-12);
    assert_true(b.compute_dtype == ETOK_DT_BF16);

    t = s;
    assert_int_equal(etok_lever_apply(&t, "mla", &err), 0);
    assert_int_equal(etok_tpf_evaluate(&t, -1, &b, &err), 0);
    /* latent 4*128 + rope 64 per layer: 32 * 576 * 2 = 36,864 byte/token (vs 131,072) */
    assert_true(b.stats.kv_bytes_per_token == 36864.0);

    t = s;
    t.input_tokens = 4096;
    etok_tpf_result c;
    assert_int_equal(etok_tpf_evaluate(&t, -1, &c, &err), 0);
    assert_int_equal(etok_lever_apply(&t, "window=1024", &err), 0);
    assert_int_equal(etok_tpf_evaluate(&t, -1, &b, &err), 0);
    assert_true(b.flops_per_token_decode < c.flops_per_token_decode);
    /* decode positions 4097..4224 all see 1024 positions */
    assert_close(b.flops_per_token_decode, 2 * 7504658432.0 + 524288.0 * 1024, 1e-12);
    assert_close(b.kv_bytes_per_sequence, 1024 * 131072.0, 1e-12);

    t = s;
    assert_int_equal(etok_lever_apply(&t, "batch=64", &err), 0);
    assert_int_equal(t.batch, 64);
    assert_int_equal(etok_lever_apply(&t, "adaptive-reasoning=0.5", &err), 0);
    assert_int_equal(t.output_tokens, 64);
    assert_true(t.phi_system == 2.0);
    assert_int_equal(etok_lever_apply(&t, "phi=1.5", &err), 0);
    assert_true(t.phi_system == 3.0);

    t = s;
    t.model = mixtral_8x7b();
    assert_int_equal(etok_lever_apply(&t, "moe-topk=1", &err), 0);
    etok_tpf_model_stats st;
    etok_tpf_model_stats_compute(&t.model, ETOK_DT_BF16, ETOK_DT_BF16, &st);
    assert_true(st.params_active == 12879659008.0 - 32 * 176160768.0);

    /* errors */
    t = s;
    assert_int_equal(etok_lever_apply(&t, "moe-topk=2", &err), -1);
    assert_non_null(strstr(err.msg, "not a mixture of experts"));
    assert_int_equal(etok_lever_apply(&t, "turbo", &err), -1);
    assert_non_null(strstr(err.msg, "unknown lever 'turbo'"));
    assert_non_null(strstr(err.msg, "kv-int8"));
    assert_int_equal(etok_lever_apply(&t, "window", &err), -1);
    assert_int_equal(etok_lever_apply(&t, "batch=2.5", &err), -1);
    assert_int_equal(etok_lever_apply(&t, "fp8=3", &err), -1);
    for (size_t i = 0; i < etok_lever_count(); i++) {
        assert_true(strlen(etok_lever_at(i)->rationale) > 10);
        assert_true(strlen(etok_lever_at(i)->source) > 5);
    }
}

/* ---------- sweeps ---------- */

static void sweep_crossover_matches_formula(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.device_count = 8;
    s.has_facility = 1;
    s.pue = 1.3;
    s.theta = 0.7;
    s.facility_power_w = 1e6;
    etok_sweep_spec spec;
    etok_err err = {0};
    assert_int_equal(etok_sweep_parse("facility.power_w=1e3:1e6:31:log", &spec, &err), 0);
    assert_true(spec.log && spec.steps == 31);
    etok_sweep sw;
    assert_int_equal(etok_sweep_run(&s, &spec, -1, &sw, &err), 0);
    /* P_grid* = PUE * N * P_max / theta = 1.3 * 8 * 700 / 0.7 = 10,400 W */
    assert_int_equal(sw.n_crossovers, 1);
    assert_close(sw.crossovers[0].x, 10400.0, 1e-6);
    assert_int_equal(sw.crossovers[0].from, ETOK_CEIL_DELIVERED_POWER);
    assert_int_equal(sw.crossovers[0].to, ETOK_CEIL_MEMORY_BANDWIDTH);
    /* The CSV: every grid row below 10,400 W is delivered_power-bound, every row above is
     * memory-bound, and the crossover row sits at 10,400 W. */
    char *csv = etok_tpf_render_sweep_csv(&sw);
    assert_non_null(csv);
    char *save = NULL;
    int rows = 0, crossover_rows = 0;
    for (char *line = strtok_r(csv, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (rows++ == 0) {
            assert_non_null(strstr(line, "facility.power_w,kind,feasible,binding_constraint"));
            continue;
        }
        double x = strtod(line, NULL);
        if (strstr(line, ",crossover,")) {
            crossover_rows++;
            assert_close(x, 10400.0, 1e-6);
            continue;
        }
        if (x < 10400.0 * (1 - 1e-9)) assert_non_null(strstr(line, ",delivered_power,"));
        else assert_non_null(strstr(line, ",memory_bandwidth,"));
    }
    assert_int_equal(rows, 1 + 31 + 1);
    assert_int_equal(crossover_rows, 1);
    free(csv);
    char *svg = etok_tpf_render_sweep_svg(&sw, &(etok_tpf_context){.scenario_name = "test"});
    assert_non_null(svg);
    assert_non_null(strstr(svg, "crossover 10.4 kW"));
    assert_non_null(strstr(svg, "Facility power P_grid (W)"));
    free(svg);
    etok_sweep_free(&sw);
}

static void sweep_batch_crossover_and_errors(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    etok_sweep_spec spec;
    etok_err err = {0};
    etok_sweep sw;
    assert_int_equal(etok_sweep_parse("workload.batch=1:4096:20:log", &spec, &err), 0);
    assert_int_equal(etok_sweep_run(&s, &spec, -1, &sw, &err), 0);
    /* batch beyond 3334 is infeasible and says why */
    assert_false(sw.points[sw.n - 1].ok);
    assert_non_null(strstr(sw.points[sw.n - 1].error, "workload.batch"));
    assert_int_equal(sw.n_crossovers, 1);
    /* memory -> compute where c/F = b(B)/B_mem: the crossover batch B* is the first whole batch
     * whose decode intensity reaches the ridge point 989.4e12 / 3.35e12 */
    int bstar = (int)sw.crossovers[0].x;
    etok_tpf_result r;
    s.batch = bstar;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_COMPUTE);
    s.batch = bstar - 1;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_MEMORY_BANDWIDTH);
    etok_sweep_free(&sw);
    assert_int_equal(etok_sweep_parse("facility.power_kw=1:2:3", &spec, &err), -1);
    assert_non_null(strstr(err.msg, "facility.power_w"));
    assert_int_equal(etok_sweep_parse("workload.batch=1:2", &spec, &err), -1);
    assert_int_equal(etok_sweep_parse("workload.batch=0:10:5:log", &spec, &err), -1);
}

/* issue 9 §10: one table of limits for every entry point. `--sweep hardware.count=1:1e9:5`
 * used to bypass the scenario loader's 1e7 limit. */
static void limits_are_the_same_everywhere(void **state) {
    (void)state;
    etok_sweep_spec spec;
    etok_err err = {0};
    assert_int_equal(etok_sweep_parse("hardware.count=1:1e9:5", &spec, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_USAGE);
    assert_non_null(strstr(err.msg, "STOP 1000000000 is outside the limits of hardware.count"));
    assert_non_null(strstr(err.msg, "1..10000000"));
    assert_int_equal(etok_sweep_parse("hardware.count=1:1e7:5", &spec, &err), 0);
    assert_int_equal(etok_sweep_parse("facility.pue=0.5:2:5", &spec, &err), -1);
    assert_non_null(strstr(err.msg, "START 0.5"));
    assert_int_equal(etok_sweep_parse("utilization=0.1:1.5:5", &spec, &err), -1);
    assert_int_equal(etok_sweep_parse("facility.theta=0x1:1:5", &spec, &err), -1);
    assert_int_equal(etok_sweep_parse("facility.power_w=nan:1e6:5", &spec, &err), -1);
    /* every sweepable field has limits, and set_field refuses what the table refuses */
    for (const char *const *f = etok_sweep_fields(); *f; f++) {
        const etok_field_limit *l = etok_tpf_field_limit(*f);
        if (!l) fail_msg("%s has no limits", *f);
        etok_tpf_scenario s;
        etok_tpf_scenario_init(&s);
        double above = l->range.hi * 2 + 2;
        if (etok_tpf_set_field(&s, *f, above, &err) == 0) fail_msg("%s accepted %g", *f, above);
        if (etok_tpf_set_field(&s, *f, l->range.lo - 1, &err) == 0) fail_msg("%s accepted %g", *f, l->range.lo - 1);
    }
    /* the scenario loader uses the same table */
    etok_scenario_file sf;
    const char *sc = "{\"hardware\": {\"name\": \"h100-sxm\", \"count\": 20000000}, \"model\": \"llama-3.1-8b\"}";
    assert_int_equal(etok_scenario_from_json_text(sc, "s.json", &sf, &err), -1);
    assert_int_equal(err.exit_code, ETOK_EXIT_INPUT);
    assert_non_null(strstr(err.msg, "s.json: hardware.count: 20000000 is out of range"));
    const char *sc2 = "{\"hardware\": \"h100-sxm\", \"model\": \"llama-3.1-8b\", \"facility\": {\"power_w\": 1e6, \"pue\": 12}}";
    assert_int_equal(etok_scenario_from_json_text(sc2, "s.json", &sf, &err), -1);
    assert_non_null(strstr(err.msg, "facility.pue: 12 is out of range"));
    const char *sc3 = "{\"hardware\": {\"name\": \"x\", \"peak_flops\": {\"bf16\": \"1e30 TFLOP/s\"}, \"mem_bw_bps\": 1e12,"
                      " \"mem_bytes\": 8e10, \"max_power_w\": 700, \"idle_power_w\": 80}, \"model\": \"llama-3.1-8b\"}";
    assert_int_equal(etok_scenario_from_json_text(sc3, "s.json", &sf, &err), -1);
    assert_non_null(strstr(err.msg, "hardware.peak_flops.bf16"));
    /* levers: batch within workload.batch's limit; Phi kept within phi's */
    etok_tpf_scenario s;
    etok_tpf_scenario_init(&s);
    assert_int_equal(etok_lever_apply(&s, "batch=200000000", &err), -1);
    assert_int_equal(etok_lever_apply(&s, "batch=64", &err), 0);
    assert_int_equal(etok_lever_apply(&s, "phi=1e7", &err), -1);
    assert_non_null(strstr(err.msg, "Phi"));
    assert_int_equal(etok_lever_apply(&s, "phi= 2", &err), -1);
}

static void sweep_integer_field_skips_infeasible_values(void **state) {
    (void)state;
    /* Replicas of 2 devices at 700 W each under 5 kW of delivered power (PUE 1, theta 1): the
     * devices stay memory-bound while N * 700 W <= 5000 W, i.e. up to 7 devices; only even
     * counts are feasible, so the first delivered_power-bound count is 8. */
    etok_tpf_scenario s = decode_b1();
    s.devices_per_replica = 2;
    s.has_facility = 1;
    s.facility_power_w = 5000;
    etok_sweep_spec spec;
    etok_err err = {0};
    etok_sweep sw;
    assert_int_equal(etok_sweep_parse("hardware.count=2:20:4", &spec, &err), 0);
    assert_int_equal(etok_sweep_run(&s, &spec, -1, &sw, &err), 0);
    assert_true(sw.points[1].x == 8); /* 2 + 6: evaluated at whole values */
    assert_int_equal(sw.n_crossovers, 1);
    assert_true(sw.crossovers[0].x == 8);
    assert_int_equal(sw.crossovers[0].to, ETOK_CEIL_DELIVERED_POWER);
    etok_sweep_free(&sw);
}

static void render_json_has_metric_names(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    etok_err err = {0};
    etok_tpf_result r;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    etok_tpf_context ctx = {.scenario_name = "t", .price_per_kwh = -1};
    char *j = etok_tpf_render_json(&s, &r, &ctx);
    assert_non_null(j);
    const char *names[] = {"\"flops_per_token\"", "\"bytes_per_token\"", "\"arithmetic_intensity\"", "\"ceilings\"",
                           "\"memory_bandwidth\"", "\"device_power_cap\"", "\"binding_constraint\"", "\"headroom\"",
                           "\"token_rate_tps\"", "\"joules_per_output_token\"", "\"joules_per_flop\"",
                           "\"crossover_facility_power_w\"", "\"energy_cost_per_mtok\"", "\"source\": \"estimate\""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strstr(j, names[i])) fail_msg("missing %s", names[i]);
    free(j);
}


/* ---------- issue 13: one consistent story ---------- */

/* Every ceiling is an upper bound at the scenario's batch, the binding constraint is the smallest,
 * and the modelled rate is the in-series rate bounded by it (x Phi x U): over a grid of scenarios,
 * including power limits. */
static void binding_is_argmin_and_rate_is_it(void **state) {
    (void)state;
    int batches[] = {1, 8, 32, 256, 600};
    double limits[] = {0, 200, 450, 690};
    double grids[] = {0, 3e3, 3e4};
    for (size_t i = 0; i < 5; i++)
        for (size_t j = 0; j < 4; j++)
            for (size_t k = 0; k < 3; k++) {
                etok_tpf_scenario s = decode_b1();
                s.input_tokens = 512;
                s.device_count = 8;
                s.batch = batches[i];
                s.power_limit_w = limits[j];
                if (grids[k] > 0) { s.has_facility = 1; s.facility_power_w = grids[k]; s.pue = 1.3; s.theta = 0.9; }
                s.utilization = 0.7;
                etok_tpf_result r;
                etok_err err = {0};
                if (etok_tpf_evaluate(&s, -1, &r, &err)) fail_msg("batch %d limit %g grid %g: %s", batches[i], limits[j], grids[k], err.msg);
                int b = etok_tpf_smallest_ceiling(r.ceilings_tps);
                assert_int_equal(r.binding, b);
                for (int c = 0; c < ETOK_CEIL_COUNT; c++) assert_true(r.ceilings_tps[c] >= r.ceilings_tps[b]);
                assert_close(r.token_rate_tps, fmin(r.in_series_tps, r.ceilings_tps[b]) * 0.7, 1e-12);
                /* the modelled rate (before U) is at most every ceiling */
                for (int c = 0; c < ETOK_CEIL_COUNT; c++) assert_true(r.token_rate_tps / 0.7 <= r.ceilings_tps[c] * (1 + 1e-12));
                /* the in-series rate is not a ceiling: at most the compute and bandwidth ceilings */
                assert_true(r.in_series_tps <= r.ceilings_tps[ETOK_CEIL_COMPUTE] * (1 + 1e-12));
                assert_true(r.in_series_tps <= r.ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH] * (1 + 1e-12));
                assert_int_equal(r.modelled_rate_limited, r.ceilings_tps[b] < r.in_series_tps * (1 - 1e-12));
                /* activity is not normalised away: a memory-bound device below its bandwidth
                 * ceiling is not at activity 1 */
                assert_true(r.activity <= 1 && r.activity > 0);
            }
}

/* The in-series rate (prefill and decode each at its roofline) is the modelled rate; it does not
 * pose as device_power_cap, which is unlimited without a power limit. */
static void no_power_limit_no_device_cap(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.input_tokens = 1024;
    s.output_tokens = 256;
    s.batch = 32;
    s.device_count = 8;
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_true(isinf(r.ceilings_tps[ETOK_CEIL_DEVICE_POWER_CAP]));
    assert_true(isnan(r.headroom[ETOK_CEIL_DEVICE_POWER_CAP]));
    assert_int_equal(r.binding, ETOK_CEIL_MEMORY_BANDWIDTH);
    /* in series: 1 / ((n/m) max(c_pre/F, b_pre/B) + max(c_dec/F, b_dec/B)), all 8 devices */
    double F = 8 * 989.4e12, B = 8 * 3.35e12, q = 1024.0 / 256;
    double t = q * fmax(r.flops_per_token_prefill / F, r.bytes_per_token_prefill / B) +
               fmax(r.flops_per_token_decode / F, r.bytes_per_token_decode / B);
    assert_close(r.in_series_tps, 1 / t, 1e-12);
    assert_true(r.in_series_tps < 0.8 * r.ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH]);
    assert_close(r.token_rate_tps, r.in_series_tps, 1e-12); /* U = Phi = 1, no ceiling below it */
    assert_false(r.modelled_rate_limited);
    /* the modelled draw follows activity = max(MFU, MBU) at the in-series rate, not normalised to 1 */
    assert_close(r.mbu, r.in_series_tps * r.bytes_per_output_token / B, 1e-12);
    assert_close(r.mfu, r.in_series_tps * r.flops_per_output_token / F, 1e-12);
    assert_close(r.device_power_full_w, 70 + 630 * fmax(r.mfu, r.mbu), 1e-12);
    assert_true(r.mbu < 0.8 && r.mfu < 0.5);
}

/* A power limit binds only below the modelled draw; headroom = limit / modelled draw. */
static void power_limit_headroom(void **state) {
    (void)state;
    etok_tpf_scenario s = decode_b1();
    s.batch = 64;
    etok_hw_calibration *cal = &s.hw.cal; /* a draw below TDP: activity 0.5 flat out */
    cal->present = 1;
    cal->n_rows = 1;
    cal->rows[0] = (etok_hw_cal_row){.devices_per_replica = 1, .n = 1, .batch = {64}, .bandwidth_fraction = {0.5},
                                     .flops_fraction = {0.5}};
    cal->has_power = 1;
    cal->activity_floor = 0.5;
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_true(r.calibrated);
    assert_close(r.device_power_hw_w, 70 + 630 * 0.5, 1e-12); /* 385 W */
    double H = r.hardware_tps;
    assert_close(H, 0.5 * 3.35e12 / r.bytes_per_output_token, 1e-12);
    s.power_limit_w = 500; /* above the draw: does not bind */
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_MEMORY_BANDWIDTH);
    assert_close(r.headroom[ETOK_CEIL_DEVICE_POWER_CAP], 500 / 385.0, 1e-12);
    assert_close(r.ceilings_tps[ETOK_CEIL_DEVICE_POWER_CAP], H * (500 - 70) / (385 - 70.0), 1e-12);
    s.power_limit_w = 227.5; /* halfway between idle and the draw: half the rate */
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_int_equal(r.binding, ETOK_CEIL_DEVICE_POWER_CAP);
    assert_close(r.headroom[ETOK_CEIL_DEVICE_POWER_CAP], 227.5 / 385.0, 1e-12);
    assert_close(r.token_rate_tps, 0.5 * H, 1e-12);
    assert_close(r.device_power_w, 227.5, 1e-12); /* capped devices draw the limit */
    s.uncalibrated = 1; /* the plain roofline: activity max(MFU, MBU) = 1, 700 W */
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_false(r.calibrated);
    assert_close(r.device_power_hw_w, 700, 1e-12);
}

/* The modelled rate on a case computed by hand (the numbers below are worked out in the comments).
 * Toy model: 1 layer, d 1024, 8 heads of 128 (no GQA), d_ff 4096, vocab 1000 tied:
 *   params = 4 d^2 + 3 d d_ff + V d = 4194304 + 12582912 + 1024000 = 17801216; bf16: 35602432 B;
 *   c_tok(t) = 2 * 17801216 + 4 * 1 * 8 * 128 t = 35602432 + 4096 t; KV 2*1*8*128*2 = 4096 B/token.
 * Device: 1e12 FLOP/s, 1e11 B/s. Request: 64 in, 4 out, batch 2, U 0.5.
 *   prefill: mean ctx 32.5 -> c_pre = 35735552; b_pre = 35602432 / 128 + 4096 = 282240
 *            c_pre/F = 3.5735552e-5 s > b_pre/B = 2.8224e-6 s: compute-bound
 *   decode:  mean ctx 66.5 -> c_dec = 35874816; b_dec = 35602432 / 2 + 4096 * 67.5 = 18077696
 *            c_dec/F = 3.5874816e-5 s < b_dec/B = 1.8077696e-4 s: memory_bandwidth-bound
 *   in series: 16 * 3.5735552e-5 + 1.8077696e-4 = 7.52545792e-4 s per output token -> 1328.82 token/s
 *   per batch: prefill 2 * 64 * 3.5735552e-5 = 4.574150656e-3 s, decode 2 * 4 * 1.8077696e-4 =
 *              1.44621568e-3 s; 2 * 4 tokens / 6.020366336e-3 s = the same rate
 *   ceilings: compute 1e12 / (35874816 + 16 * 35735552) = 1e12 / 607643648 = 1645.7 (binding);
 *             memory_bandwidth 1e11 / (18077696 + 16 * 282240) = 1e11 / 22593536 = 4426.0
 *   modelled rate = min(1328.82, 1645.7) x Phi 1 x U 0.5 = 664.41 token/s: below the binding ceiling. */
static void modelled_rate_in_series_by_hand(void **state) {
    (void)state;
    etok_tpf_scenario s;
    etok_tpf_scenario_init(&s);
    snprintf(s.hw.name, sizeof s.hw.name, "toy");
    s.hw.peak_flops_bf16 = 1e12; s.hw.mem_bw_bps = 1e11; s.hw.mem_bytes = 80e9; s.hw.max_power_w = 700; s.hw.idle_power_w = 70;
    snprintf(s.model.name, sizeof s.model.name, "toy");
    s.model.n_layers = 1; s.model.d_model = 1024; s.model.n_heads = 8; s.model.n_kv_heads = 8; s.model.head_dim = 128;
    s.model.d_ff = 4096; s.model.vocab = 1000; s.model.tied_embeddings = 1;
    s.input_tokens = 64;
    s.output_tokens = 4;
    s.batch = 2;
    s.utilization = 0.5;
    etok_tpf_result r;
    etok_err err = {0};
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    assert_close(r.flops_per_token_prefill, 35735552.0, 1e-12);
    assert_close(r.bytes_per_token_prefill, 282240.0, 1e-12);
    assert_close(r.flops_per_token_decode, 35874816.0, 1e-12);
    assert_close(r.bytes_per_token_decode, 18077696.0, 1e-12);
    assert_int_equal(r.prefill_bound, ETOK_CEIL_COMPUTE);
    assert_int_equal(r.decode_bound, ETOK_CEIL_MEMORY_BANDWIDTH);
    assert_close(r.prefill_s_per_batch, 4.574150656e-3, 1e-9);
    assert_close(r.decode_s_per_batch, 1.44621568e-3, 1e-9);
    assert_close(r.in_series_tps, 1 / 7.52545792e-4, 1e-9);
    assert_close(r.in_series_tps, 8 / (4.574150656e-3 + 1.44621568e-3), 1e-9);
    assert_close(r.ceilings_tps[ETOK_CEIL_COMPUTE], 1e12 / 607643648.0, 1e-9);
    assert_close(r.ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH], 1e11 / 22593536.0, 1e-9);
    assert_int_equal(r.binding, ETOK_CEIL_COMPUTE);
    assert_close(r.token_rate_tps, 0.5 / 7.52545792e-4, 1e-9); /* 664.41 */
    assert_false(r.modelled_rate_limited);
    for (int c = 0; c < ETOK_CEIL_COUNT; c++) assert_true(r.token_rate_tps <= r.ceilings_tps[c]);
    /* the draw at the modelled rate: MFU = 1328.82 * 607643648 / 1e12 = 0.8075 > MBU = 0.3002 */
    double mfu = 607643648.0 / 1e12 / 7.52545792e-4;
    assert_close(r.mfu, mfu, 1e-9);
    assert_close(r.device_power_full_w, 70 + 630 * mfu, 1e-9);
    /* a power limit below that draw binds: the ceiling is where the draw reaches it, and the rate is it */
    s.power_limit_w = 300;
    assert_int_equal(etok_tpf_evaluate(&s, -1, &r, &err), 0);
    double cap = (1 / 7.52545792e-4) * (300 - 70) / (630 * mfu);
    assert_close(r.ceilings_tps[ETOK_CEIL_DEVICE_POWER_CAP], cap, 1e-9);
    assert_int_equal(r.binding, ETOK_CEIL_DEVICE_POWER_CAP);
    assert_true(r.modelled_rate_limited);
    assert_close(r.token_rate_tps, 0.5 * cap, 1e-9);
    for (int c = 0; c < ETOK_CEIL_COUNT; c++) assert_true(r.token_rate_tps / 0.5 <= r.ceilings_tps[c] * (1 + 1e-12));
}

static void calibration_interpolation(void **state) {
    (void)state;
    etok_hw_calibration cal = {0};
    double fb, ff;
    etok_hw_cal_fractions(&cal, 4, 100, &fb, &ff); /* none: the roofline */
    assert_true(fb == 1 && ff == 1);
    cal.present = 1;
    cal.n_rows = 2;
    cal.rows[0] = (etok_hw_cal_row){.devices_per_replica = 1, .n = 3, .batch = {16, 64, 256},
                                    .bandwidth_fraction = {0.6, 0.5, 0.4}, .flops_fraction = {0.3, 0.4, 0.5}};
    cal.rows[1] = (etok_hw_cal_row){.devices_per_replica = 8, .n = 2, .batch = {16, 256},
                                    .bandwidth_fraction = {0.4, 0.2}, .flops_fraction = {0.2, 0.1}};
    etok_hw_cal_fractions(&cal, 1, 32, &fb, &ff); /* halfway in log2 between 16 and 64 */
    assert_close(fb, 0.55, 1e-12);
    assert_close(ff, 0.35, 1e-12);
    etok_hw_cal_fractions(&cal, 1, 4, &fb, &ff); /* clamped below */
    assert_close(fb, 0.6, 1e-12);
    etok_hw_cal_fractions(&cal, 1, 4096, &fb, &ff); /* clamped above */
    assert_close(fb, 0.4, 1e-12);
    etok_hw_cal_fractions(&cal, 2, 16, &fb, &ff); /* a third of the way from degree 1 to 8 in log2 */
    assert_close(fb, 0.6 + (0.4 - 0.6) / 3, 1e-12);
    etok_hw_cal_fractions(&cal, 16, 64, &fb, &ff); /* clamped to the widest row: 16..256 at 64 */
    assert_close(fb, 0.3, 1e-12);
}

/* The sweep figure's regions come from the same rule as the text: for every sweep point, the
 * labelled region containing it is the argmin of its ceilings. */
static void sweep_regions_are_argmin(void **state) {
    (void)state;
    const char *specs[] = {"facility.power_w=1e3:1e6:41:log", "hardware.power_limit_w=100:700:25",
                           "workload.batch=1:4096:30:log", "facility.cooling_w=1e3:1e5:17:log"};
    for (size_t k = 0; k < 4; k++) {
        etok_tpf_scenario s = decode_b1();
        s.device_count = 8;
        s.input_tokens = 1024;
        s.output_tokens = 256;
        s.batch = 32;
        s.has_facility = 1;
        s.facility_power_w = 2e4;
        s.pue = 1.2;
        s.power_limit_w = 600;
        etok_sweep_spec spec;
        etok_err err = {0};
        etok_sweep sw;
        assert_int_equal(etok_sweep_parse(specs[k], &spec, &err), 0);
        assert_int_equal(etok_sweep_run(&s, &spec, -1, &sw, &err), 0);
        etok_sweep_region *reg = NULL;
        size_t n = etok_sweep_regions(&sw, &reg);
        assert_true(n != (size_t)-1 && n >= 1);
        size_t labelled = 0;
        for (size_t i = 0; i < sw.n; i++) {
            if (!sw.points[i].ok) continue;
            int want = etok_tpf_smallest_ceiling(sw.points[i].r.ceilings_tps);
            int found = 0;
            for (size_t g = 0; g < n; g++)
                if (sw.points[i].x >= reg[g].x0 && sw.points[i].x <= reg[g].x1) {
                    /* a point on a shared crossover edge may touch two regions: one must match */
                    if ((int)reg[g].binding == want) found = 1;
                }
            if (!found) fail_msg("%s: point %g is argmin %s but no region containing it says so", specs[k], sw.points[i].x,
                                 etok_ceiling_name((etok_ceiling)want));
            labelled++;
        }
        assert_true(labelled > 0);
        /* and the figure labels no region other than these (narrow ones go unlabelled) */
        char *svg = etok_tpf_render_sweep_svg(&sw, &(etok_tpf_context){.scenario_name = "t"});
        assert_non_null(svg);
        int any_label = 0;
        for (int c = 0; c < ETOK_CEIL_COUNT; c++) {
            char lab[64];
            snprintf(lab, sizeof lab, ">%s-bound<", etok_ceiling_name((etok_ceiling)c));
            if (!strstr(svg, lab)) continue;
            any_label = 1;
            int in_regions = 0;
            for (size_t g = 0; g < n; g++) in_regions |= (int)reg[g].binding == c;
            if (!in_regions) fail_msg("%s: the figure labels %s, which is no point's argmin", specs[k], lab);
        }
        assert_true(any_label);
        free(svg);
        free(reg);
        etok_sweep_free(&sw);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(smollm2_counts),
        cmocka_unit_test(llama8b_counts),
        cmocka_unit_test(mixtral_counts),
        cmocka_unit_test(deepseek_v3_mla_counts),
        cmocka_unit_test(mean_context),
        cmocka_unit_test(ceiling_functions_and_unknown_inputs),
        cmocka_unit_test(llama8b_decode_b1_is_memory_bound_near_209),
        cmocka_unit_test(raising_batch_moves_toward_compute),
        cmocka_unit_test(batch_max_is_memory_capacity),
        cmocka_unit_test(facility_power_below_crossover_binds),
        cmocka_unit_test(cooling_below_it_power_binds),
        cmocka_unit_test(device_power_cap_binds),
        cmocka_unit_test(utilization_and_phi),
        cmocka_unit_test(errors_name_the_field),
        cmocka_unit_test(levers_transform),
        cmocka_unit_test(sweep_crossover_matches_formula),
        cmocka_unit_test(sweep_batch_crossover_and_errors),
        cmocka_unit_test(sweep_integer_field_skips_infeasible_values),
        cmocka_unit_test(limits_are_the_same_everywhere),
        cmocka_unit_test(render_json_has_metric_names),
        cmocka_unit_test(binding_is_argmin_and_rate_is_it),
        cmocka_unit_test(no_power_limit_no_device_cap),
        cmocka_unit_test(power_limit_headroom),
        cmocka_unit_test(modelled_rate_in_series_by_hand),
        cmocka_unit_test(calibration_interpolation),
        cmocka_unit_test(sweep_regions_are_argmin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
