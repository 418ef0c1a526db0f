/* tpf.c — the Token Production Function (METRICS.md §1) as a pure function:
 * scenario -> ceilings, binding constraint, token rate, modelled power and energy.
 *
 * Owns: parameter counting from the architecture, FLOPs/bytes per token, the ceilings,
 * the binding-constraint rule, the device-power model. Does not own: reading catalogs or
 * scenario files (src/scenario/), levers (levers.c), sweeps (sweep.c), printing (render/).
 * No I/O, no clock, no global state. docs/TPF.md explains every decision made here where
 * METRICS.md is silent. */
#include "etok/tpf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

/* ---------- data types ---------- */

static const struct {
    const char *name;
    double bytes;        /* storage bytes per element */
    etok_dtype compute;  /* precision whose peak applies */
} DT[ETOK_DT_COUNT] = {
    [ETOK_DT_FP32] = {"fp32", 4.0, ETOK_DT_FP32},
    [ETOK_DT_BF16] = {"bf16", 2.0, ETOK_DT_BF16},
    [ETOK_DT_FP16] = {"fp16", 2.0, ETOK_DT_BF16},
    [ETOK_DT_FP8] = {"fp8", 1.0, ETOK_DT_FP8},
    [ETOK_DT_INT8] = {"int8", 1.0, ETOK_DT_INT8},
    [ETOK_DT_INT4] = {"int4", 4.125 / 8.0, ETOK_DT_BF16}, /* 4 bit + fp16 scale / 128 weights */
    [ETOK_DT_Q8_0] = {"q8_0", 34.0 / 32.0, ETOK_DT_BF16},  /* ggml block_q8_0: fp16 d + 32 x int8 */
    [ETOK_DT_Q4_0] = {"q4_0", 18.0 / 32.0, ETOK_DT_BF16},  /* fp16 d + 16 bytes of nibbles */
    [ETOK_DT_Q4_1] = {"q4_1", 20.0 / 32.0, ETOK_DT_BF16},  /* fp16 d, fp16 m + 16 bytes (METRICS.md §1) */
};

const char *etok_dtype_name(etok_dtype d) { return (unsigned)d < ETOK_DT_COUNT ? DT[d].name : "?"; }
double etok_dtype_bytes(etok_dtype d) { return (unsigned)d < ETOK_DT_COUNT ? DT[d].bytes : 0; }
etok_dtype etok_dtype_compute(etok_dtype d) { return (unsigned)d < ETOK_DT_COUNT ? DT[d].compute : ETOK_DT_BF16; }

int etok_dtype_parse(const char *s, etok_dtype *out) {
    if (!s) return -1;
    for (int i = 0; i < ETOK_DT_COUNT; i++)
        if (!strcmp(s, DT[i].name)) { *out = (etok_dtype)i; return 0; }
    if (!strcmp(s, "f32") || !strcmp(s, "float32")) { *out = ETOK_DT_FP32; return 0; }
    if (!strcmp(s, "f16") || !strcmp(s, "float16")) { *out = ETOK_DT_FP16; return 0; }
    if (!strcmp(s, "bfloat16")) { *out = ETOK_DT_BF16; return 0; }
    if (!strcmp(s, "fp8_e4m3") || !strcmp(s, "e4m3")) { *out = ETOK_DT_FP8; return 0; }
    return -1;
}

static const char *const CEIL_NAMES[ETOK_CEIL_COUNT] = {
    "compute", "memory_bandwidth", "memory_capacity", "delivered_power", "cooling", "device_power_cap"};

const char *etok_ceiling_name(etok_ceiling c) { return (unsigned)c < ETOK_CEIL_COUNT ? CEIL_NAMES[c] : "?"; }

/* ---------- ceiling functions ---------- */
static int known_pos(double v) { return !isnan(v) && v > 0; }

double etok_tpf_ceiling_compute_tps(double peak_flops, double flops_per_output_token) {
    return known_pos(peak_flops) && known_pos(flops_per_output_token) ? peak_flops / flops_per_output_token : NAN;
}

double etok_tpf_ceiling_memory_bandwidth_tps(double mem_bw_bps, double bytes_per_output_token) {
    return known_pos(mem_bw_bps) && known_pos(bytes_per_output_token) ? mem_bw_bps / bytes_per_output_token : NAN;
}

double etok_tpf_ceiling_power_tps(double power_w, double joules_per_output_token) {
    return known_pos(power_w) && known_pos(joules_per_output_token) ? power_w / joules_per_output_token : NAN;
}

int etok_tpf_smallest_ceiling(const double c[ETOK_CEIL_COUNT]) {
    /* Exact ties: memory_capacity before memory_bandwidth (at the largest batch, capacity is what
     * stops the batch, hence the rate, from growing); power ceilings after the hardware ones. */
    static const etok_ceiling ORDER[ETOK_CEIL_COUNT] = {ETOK_CEIL_COMPUTE, ETOK_CEIL_MEMORY_CAPACITY,
                                                        ETOK_CEIL_MEMORY_BANDWIDTH, ETOK_CEIL_DELIVERED_POWER,
                                                        ETOK_CEIL_COOLING, ETOK_CEIL_DEVICE_POWER_CAP};
    int best = -1;
    for (int k = 0; k < ETOK_CEIL_COUNT; k++) {
        int i = ORDER[k];
        if (!isnan(c[i]) && (best < 0 || c[i] < c[best])) best = i;
    }
    return best;
}

static double lerp_log2(double x, double x0, double x1, double y0, double y1) {
    if (!(x1 > x0)) return y0;
    double t = (log2(x) - log2(x0)) / (log2(x1) - log2(x0));
    return y0 + t * (y1 - y0);
}

static void row_at(const etok_hw_cal_row *row, double batch, double *fb, double *ff) {
    int n = row->n;
    if (n <= 0) { *fb = *ff = 1; return; }
    if (batch <= row->batch[0]) { *fb = row->bandwidth_fraction[0]; *ff = row->flops_fraction[0]; return; }
    if (batch >= row->batch[n - 1]) { *fb = row->bandwidth_fraction[n - 1]; *ff = row->flops_fraction[n - 1]; return; }
    int i = 0;
    while (i + 2 < n && batch > row->batch[i + 1]) i++;
    *fb = lerp_log2(batch, row->batch[i], row->batch[i + 1], row->bandwidth_fraction[i], row->bandwidth_fraction[i + 1]);
    *ff = lerp_log2(batch, row->batch[i], row->batch[i + 1], row->flops_fraction[i], row->flops_fraction[i + 1]);
}

void etok_hw_cal_fractions(const etok_hw_calibration *cal, int dpr, double batch, double *fb, double *ff) {
    *fb = *ff = 1;
    if (!cal || !cal->present || cal->n_rows == 0 || !(batch >= 1)) return;
    size_t n = cal->n_rows;
    const etok_hw_cal_row *lo = &cal->rows[0], *hi = &cal->rows[n - 1];
    if (dpr <= lo->devices_per_replica) { row_at(lo, batch, fb, ff); return; }
    if (dpr >= hi->devices_per_replica) { row_at(hi, batch, fb, ff); return; }
    size_t i = 0;
    while (i + 2 < n && dpr > cal->rows[i + 1].devices_per_replica) i++;
    lo = &cal->rows[i];
    hi = &cal->rows[i + 1];
    double b0, f0, b1, f1;
    row_at(lo, batch, &b0, &f0);
    row_at(hi, batch, &b1, &f1);
    *fb = lerp_log2(dpr, lo->devices_per_replica, hi->devices_per_replica, b0, b1);
    *ff = lerp_log2(dpr, lo->devices_per_replica, hi->devices_per_replica, f0, f1);
}

void etok_tpf_scenario_init(etok_tpf_scenario *s) {
    memset(s, 0, sizeof *s);
    s->device_count = 1;
    s->mem_usable_fraction = 0.9;
    s->weight_dtype = ETOK_DT_BF16;
    s->kv_dtype = ETOK_DT_BF16;
    s->input_tokens = 1024;
    s->output_tokens = 256;
    s->batch = 1;
    s->pue = 1.0;
    s->theta = 1.0;
    s->utilization = 1.0;
    s->phi_system = 1.0;
}

/* ---------- per-token model quantities (METRICS.md §1 "FLOPs and bytes per token") ---------- */

double etok_tpf_mean_ctx(long long a, long long b, long long w) {
    if (b < a) return 0;
    double cnt = (double)(b - a + 1);
    double sum;
    if (w <= 0 || b <= w) sum = ((double)a + (double)b) * cnt / 2.0;
    else if (a > w) sum = (double)w * cnt;
    else sum = ((double)a + (double)w) * (double)(w - a + 1) / 2.0 + (double)w * (double)(b - w);
    return sum / cnt;
}

int etok_tpf_model_stats_compute(const etok_model_arch *m, etok_dtype wdt, etok_dtype kvdt,
                                 etok_tpf_model_stats *o) {
    memset(o, 0, sizeof *o);
    if (m->n_layers <= 0 || m->d_model <= 0 || m->n_heads <= 0 || m->vocab <= 0) return -1;
    const double d = m->d_model, L = m->n_layers, nh = m->n_heads;
    const int mla = m->kv_lora_rank > 0;
    const double dh = m->head_dim > 0 ? m->head_dim : d / nh;
    const double nkv = m->n_kv_heads > 0 ? m->n_kv_heads : nh;

    /* Attention projections per layer. Biases and norm weights are ignored (< 0.1%). */
    double attn;
    if (mla) {
        /* DeepSeek-V2/V3 MLA: q down/up (or a direct q projection), kv down to the latent plus the
         * decoupled rope key, kv up from the latent to per-head keys (nope part) and values, o. */
        const double qk = (double)m->qk_nope_head_dim + m->qk_rope_head_dim;
        double q = m->q_lora_rank > 0 ? d * m->q_lora_rank + (double)m->q_lora_rank * nh * qk : d * nh * qk;
        double kv_a = d * ((double)m->kv_lora_rank + m->qk_rope_head_dim);
        double kv_b = (double)m->kv_lora_rank * nh * ((double)m->qk_nope_head_dim + m->v_head_dim);
        double out = nh * m->v_head_dim * d;
        attn = q + kv_a + kv_b + out;
    } else {
        attn = d * nh * dh + 2.0 * d * nkv * dh + nh * dh * d; /* q, k, v, o */
    }
    /* FFN: gated (SwiGLU), 3 matrices of d x d_ff (METRICS.md §1). */
    const double ffn_dense = 3.0 * d * m->d_ff;
    const int moe = m->n_experts > 0;
    const int n_moe = moe ? m->n_layers - m->n_dense_layers : 0;
    const double expert = moe ? 3.0 * d * m->d_ff_expert : 0;
    const double router = moe ? d * m->n_experts : 0;
    const double emb = (double)m->vocab * d;

    const double common = L * attn + (L - n_moe) * ffn_dense + n_moe * (m->n_shared_experts * expert + router);
    o->params_embedding = emb;
    o->params_expert = expert;
    o->n_moe_layers = n_moe;
    o->params_total = common + n_moe * (double)m->n_experts * expert + emb + (m->tied_embeddings ? 0 : emb);
    o->params_active = common + n_moe * (double)m->top_k * expert + emb + (m->tied_embeddings ? 0 : emb);
    /* The embedding lookup is not a matmul; the LM head (2*d*V FLOPs) is. With tied embeddings
     * the one matrix is the head. */
    o->params_active_matmul = o->params_active - (m->tied_embeddings ? 0 : emb);
    o->weight_bytes = o->params_total * etok_dtype_bytes(wdt);
    /* KV bytes per token of context: 2 L n_kv d_h b, MLA: L (d_latent + d_rope) b. */
    if (mla)
        o->kv_bytes_per_token = L * ((double)m->kv_lora_rank + m->qk_rope_head_dim) * etok_dtype_bytes(kvdt);
    else
        o->kv_bytes_per_token = 2.0 * L * nkv * dh * etok_dtype_bytes(kvdt);
    /* Attention FLOPs per context position: 4 L n_h d_h (QK^T and AV, 2 FLOPs per MAC). With MLA
     * the query/key width (nope + rope) and the value width differ: 2 L n_h (d_qk + d_v). */
    if (mla)
        o->attn_flops_per_ctx = 2.0 * L * nh * ((double)m->qk_nope_head_dim + m->qk_rope_head_dim + m->v_head_dim);
    else
        o->attn_flops_per_ctx = 4.0 * L * nh * dh;
    return 0;
}

/* Weight bytes read by one forward step that processes `tokens` tokens: everything except the
 * routed experts, plus the routed experts those tokens touch. With uniform routing, a layer's
 * expected distinct experts for T tokens is E (1 - (1 - k/E)^T) (= k at T = 1). */
static double weight_read_bytes(const etok_model_arch *m, const etok_tpf_model_stats *st, double bpw, double tokens) {
    double routed_all = st->n_moe_layers * (double)m->n_experts * st->params_expert;
    double other = st->params_total - routed_all;
    double touched = 0;
    if (st->n_moe_layers > 0) {
        double k = m->top_k, E = m->n_experts;
        double uniq = E * (1.0 - pow(1.0 - k / E, tokens));
        if (uniq < k) uniq = k;
        touched = st->n_moe_layers * uniq * st->params_expert;
    }
    return (other + touched) * bpw;
}

typedef struct {
    double c_pre, c_dec, b_pre, b_dec, c_out, b_out;
} phase_cost;

static void phase_costs(const etok_tpf_scenario *s, const etok_tpf_model_stats *st, int batch, phase_cost *p) {
    const double n = s->input_tokens, m = s->output_tokens;
    const long long w = s->model.attention_window;
    const double bpw = etok_dtype_bytes(s->weight_dtype);
    double mean_pre = etok_tpf_mean_ctx(1, s->input_tokens, w);
    double mean_dec = etok_tpf_mean_ctx((long long)s->input_tokens + 1, (long long)s->input_tokens + s->output_tokens, w);
    /* c_tok = 2 N_active_matmul + 4 L n_h d_h t_eff (METRICS.md §1); prefill averages over the
     * prompt positions, decode over the generated positions. */
    p->c_pre = 2.0 * st->params_active_matmul + st->attn_flops_per_ctx * mean_pre;
    p->c_dec = 2.0 * st->params_active_matmul + st->attn_flops_per_ctx * mean_dec;
    /* b_tok = weights / batch + KV read + KV write (METRICS.md §1). Decode: one step serves
     * `batch` tokens and reads each token's context; prefill: one step serves the batch's whole
     * prompts, writes their KV, and (tiled attention) re-reads no KV from memory. */
    double tok_pre = (double)batch * n;
    p->b_dec = weight_read_bytes(&s->model, st, bpw, batch) / batch + st->kv_bytes_per_token * (mean_dec + 1.0);
    p->b_pre = n > 0 ? weight_read_bytes(&s->model, st, bpw, tok_pre) / tok_pre + st->kv_bytes_per_token : 0;
    /* Per output token: the prefill of a request is charged to its output tokens. */
    p->c_out = p->c_dec + (n > 0 ? n / m * p->c_pre : 0);
    p->b_out = p->b_dec + (n > 0 ? n / m * p->b_pre : 0);
}

static void note(etok_tpf_result *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(etok_tpf_result *r, const char *fmt, ...) {
    if (r->n_notes >= ETOK_TPF_MAX_NOTES) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->notes[r->n_notes++], sizeof r->notes[0], fmt, ap);
    va_end(ap);
}

static double peak_for(const etok_hw_spec *h, etok_dtype c) {
    switch (c) {
    case ETOK_DT_FP32: return h->peak_flops_fp32;
    case ETOK_DT_FP8: return h->peak_flops_fp8;
    case ETOK_DT_INT8: return h->peak_flops_int8;
    default: return h->peak_flops_bf16;
    }
}

static int check_pos(double v, const char *field, etok_err *err) {
    if (!(v > 0) || !isfinite(v)) return etok_errc(err, ETOK_EXIT_INPUT, "%s: must be a positive finite number (got %g)", field, v);
    return 0;
}

/* Largest batch whose weights + KV fit in one replica's memory (METRICS.md §1 memory_capacity). */
static double batch_max_for(const etok_tpf_scenario *s, const etok_tpf_model_stats *st, int dpr, double kv_seq) {
    double free_b = dpr * s->hw.mem_bytes * s->mem_usable_fraction - st->weight_bytes;
    if (free_b <= 0) return 0;
    return floor(free_b / kv_seq);
}

void etok_tpf_apply_grid(etok_tpf_result *r, double g_per_kwh) {
    r->co2e_g_per_mtok = g_per_kwh > 0 && isfinite(r->joules_per_output_token_pue)
                             ? r->joules_per_output_token_pue * 1e6 / 3.6e6 * g_per_kwh
                             : -1;
}

int etok_tpf_evaluate(const etok_tpf_scenario *s, double price_per_kwh, etok_tpf_result *r, etok_err *err) {
    memset(r, 0, sizeof *r);
    const etok_hw_spec *h = &s->hw;
    /* Validation: every number the model divides by. */
    if (s->device_count < 1) return etok_errc(err, ETOK_EXIT_INPUT, "hardware.count: must be >= 1 (got %d)", s->device_count);
    if (check_pos(h->mem_bw_bps, "hardware.mem_bw_bps", err) || check_pos(h->mem_bytes, "hardware.mem_bytes", err) ||
        check_pos(h->max_power_w, "hardware.max_power_w", err) || check_pos(h->peak_flops_bf16, "hardware.peak_flops.bf16", err))
        return -1;
    if (!(h->idle_power_w >= 0) || h->idle_power_w >= h->max_power_w)
        return etok_errc(err, ETOK_EXIT_INPUT, "hardware.idle_power_w: must be >= 0 and below max_power_w %g W (got %g)",
                         h->max_power_w, h->idle_power_w);
    if (s->input_tokens < 0) return etok_errc(err, ETOK_EXIT_INPUT, "workload.input_tokens: must be >= 0 (got %d)", s->input_tokens);
    if (s->output_tokens < 1) return etok_errc(err, ETOK_EXIT_INPUT, "workload.output_tokens: must be >= 1 (got %d)", s->output_tokens);
    if (s->batch < 0) return etok_errc(err, ETOK_EXIT_INPUT, "workload.batch: must be >= 1 (got %d)", s->batch);
    if (!(s->utilization > 0 && s->utilization <= 1))
        return etok_errc(err, ETOK_EXIT_INPUT, "utilization: must be in (0, 1] (got %g)", s->utilization);
    if (check_pos(s->phi_system, "phi", err)) return -1;
    if (!(s->mem_usable_fraction > 0 && s->mem_usable_fraction <= 1))
        return etok_errc(err, ETOK_EXIT_INPUT, "hardware.mem_usable_fraction: must be in (0, 1] (got %g)", s->mem_usable_fraction);
    if (s->power_limit_w < 0 || (s->power_limit_w > 0 && s->power_limit_w <= h->idle_power_w))
        return etok_errc(err, ETOK_EXIT_INPUT, "hardware.power_limit_w: must be above the idle power %g W (got %g)", h->idle_power_w, s->power_limit_w);
    if (s->has_facility) {
        if (check_pos(s->facility_power_w, "facility.power_w", err)) return -1;
        if (!(s->pue >= 1) || !isfinite(s->pue)) return etok_errc(err, ETOK_EXIT_INPUT, "facility.pue: must be >= 1 (got %g)", s->pue);
        if (s->cooling_w < 0) return etok_errc(err, ETOK_EXIT_INPUT, "facility.cooling_w: must be >= 0 (got %g)", s->cooling_w);
        if (!(s->theta > 0 && s->theta <= 1)) return etok_errc(err, ETOK_EXIT_INPUT, "facility.theta: must be in (0, 1] (got %g)", s->theta);
    }
    if (s->model.max_context > 0 && (long long)s->input_tokens + s->output_tokens > s->model.max_context)
        return etok_errc(err, ETOK_EXIT_INPUT, "workload: input_tokens + output_tokens = %lld exceeds the context of %s (%d)",
                         (long long)s->input_tokens + s->output_tokens, s->model.name, s->model.max_context);
    if (s->model.attention_window < 0)
        return etok_errc(err, ETOK_EXIT_INPUT, "model.attention_window: must be >= 0 (got %d)", s->model.attention_window);
    if (etok_tpf_model_stats_compute(&s->model, s->weight_dtype, s->kv_dtype, &r->stats))
        return etok_errc(err, ETOK_EXIT_INPUT, "model %s: layers, d_model, n_heads and vocab must be > 0", s->model.name);
    const etok_tpf_model_stats *st = &r->stats;

    /* Compute precision and its peak. */
    r->compute_dtype = s->compute_dtype_set ? s->compute_dtype : etok_dtype_compute(s->weight_dtype);
    r->peak_flops = peak_for(h, r->compute_dtype);
    if (!(r->peak_flops > 0)) {
        note(r, "%s has no %s peak in the catalog: used the bf16 peak", h->name, etok_dtype_name(r->compute_dtype));
        r->compute_dtype = ETOK_DT_BF16;
        r->peak_flops = h->peak_flops_bf16;
    }
    r->mem_bw_bps = h->mem_bw_bps;

    /* Devices per replica: given, or the fewest devices (dividing the count) that hold the weights. */
    const int N = s->device_count;
    int dpr = s->devices_per_replica;
    if (dpr < 0 || dpr > N)
        return etok_errc(err, ETOK_EXIT_INPUT, "hardware.devices_per_replica: must be in 1..%d (got %d)", N, dpr);
    if (dpr == 0) {
        for (int d = 1; d <= N && !dpr; d++)
            if (N % d == 0 && d * h->mem_bytes * s->mem_usable_fraction >= st->weight_bytes) dpr = d;
        if (!dpr)
            return etok_errc(err, ETOK_EXIT_INPUT,
                             "model %s (%s weights, %.1f GB) does not fit in %d x %s (%.0f GB usable each); "
                             "needs at least %d devices",
                             s->model.name, etok_dtype_name(s->weight_dtype), st->weight_bytes / 1e9, N, h->name,
                             h->mem_bytes * s->mem_usable_fraction / 1e9,
                             (int)ceil(st->weight_bytes / (h->mem_bytes * s->mem_usable_fraction)));
    } else if (N % dpr != 0) {
        return etok_errc(err, ETOK_EXIT_INPUT, "hardware.count %d is not a multiple of devices_per_replica %d", N, dpr);
    } else if (dpr * h->mem_bytes * s->mem_usable_fraction < st->weight_bytes) {
        return etok_errc(err, ETOK_EXIT_INPUT,
                         "model %s (%s weights, %.1f GB) does not fit in devices_per_replica = %d x %s (%.0f GB usable)",
                         s->model.name, etok_dtype_name(s->weight_dtype), st->weight_bytes / 1e9, dpr, h->name,
                         dpr * h->mem_bytes * s->mem_usable_fraction / 1e9);
    }
    r->devices_per_replica = dpr;
    r->replicas = N / dpr;

    /* KV per sequence and the largest batch (memory_capacity). */
    long long ctx = (long long)s->input_tokens + s->output_tokens;
    if (s->model.attention_window > 0 && ctx > s->model.attention_window) ctx = s->model.attention_window;
    r->kv_bytes_per_sequence = st->kv_bytes_per_token * (double)ctx;
    double bmax = batch_max_for(s, st, dpr, r->kv_bytes_per_sequence);
    if (bmax < 1)
        return etok_errc(err, ETOK_EXIT_INPUT,
                         "workload: not even one sequence of %lld tokens (KV %.2f GB) fits beside the weights of %s on %d x %s",
                         ctx, r->kv_bytes_per_sequence / 1e9, s->model.name, dpr, h->name);
    if (bmax > 1e9) bmax = 1e9;
    r->batch_max = (int)bmax;
    r->batch = s->batch > 0 ? s->batch : r->batch_max;
    if (r->batch > r->batch_max) {
        int need = 0;
        for (int d = dpr + 1; d <= N && !need; d++)
            if (N % d == 0 && batch_max_for(s, st, d, r->kv_bytes_per_sequence) >= r->batch) need = d;
        char hint[96] = "";
        if (need) snprintf(hint, sizeof hint, "; devices_per_replica = %d would hold it", need);
        return etok_errc(err, ETOK_EXIT_INPUT,
                         "workload.batch %d: its KV cache (%d x %.3f GB = %.1f GB) does not fit beside %.1f GB of weights "
                         "in %d x %.0f GB usable; largest batch %d%s",
                         r->batch, r->batch, r->kv_bytes_per_sequence / 1e9, r->batch * r->kv_bytes_per_sequence / 1e9,
                         st->weight_bytes / 1e9, dpr, h->mem_bytes * s->mem_usable_fraction / 1e9, r->batch_max, hint);
    }

    /* Per-token costs at the scenario batch and at the largest batch. */
    phase_cost pc, pmax;
    phase_costs(s, st, r->batch, &pc);
    phase_costs(s, st, r->batch_max, &pmax);
    r->flops_per_token_prefill = pc.c_pre;
    r->flops_per_token_decode = pc.c_dec;
    r->bytes_per_token_prefill = pc.b_pre;
    r->bytes_per_token_decode = pc.b_dec;
    r->flops_per_output_token = pc.c_out;
    r->bytes_per_output_token = pc.b_out;
    r->arithmetic_intensity_prefill = pc.b_pre > 0 ? pc.c_pre / pc.b_pre : 0;
    r->arithmetic_intensity_decode = pc.c_dec / pc.b_dec;
    r->arithmetic_intensity = pc.c_out / pc.b_out;

    /* Achievable peaks: the catalog peaks times the calibrated fractions at this batch and degree
     * (docs/TPF.md "Calibration"); the memory_capacity ceiling uses the fraction at the largest batch. */
    const etok_hw_calibration *cal = s->uncalibrated ? NULL : &h->cal;
    double fb = 1, ff = 1, fb_max = 1, ff_max = 1;
    etok_hw_cal_fractions(cal, dpr, r->batch, &fb, &ff);
    etok_hw_cal_fractions(cal, dpr, r->batch_max, &fb_max, &ff_max);
    r->calibrated = cal && cal->present;
    r->bandwidth_fraction = fb;
    r->flops_fraction = ff;

    /* Ceilings over all devices (METRICS.md §1), each from one resource at the scenario's batch:
     * N F_peak f_F / c_tok and N B_mem f_B / b_tok. */
    const double Fpk = N * r->peak_flops, Bpk = N * r->mem_bw_bps;
    const double F = Fpk * ff, B = Bpk * fb;
    double *C = r->ceilings_tps;
    C[ETOK_CEIL_COMPUTE] = etok_tpf_ceiling_compute_tps(F, pc.c_out);
    C[ETOK_CEIL_MEMORY_BANDWIDTH] = etok_tpf_ceiling_memory_bandwidth_tps(B, pc.b_out);
    /* memory_capacity: the bandwidth ceiling at the largest batch the memory holds. */
    C[ETOK_CEIL_MEMORY_CAPACITY] = etok_tpf_ceiling_memory_bandwidth_tps(Bpk * fb_max, pmax.b_out);
    r->hardware_tps = fmin(C[ETOK_CEIL_COMPUTE], fmin(C[ETOK_CEIL_MEMORY_BANDWIDTH], C[ETOK_CEIL_MEMORY_CAPACITY]));

    /* The modelled rate (docs/TPF.md "The modelled rate"): one replica serves a batch of B requests
     * with prefill and decode in series, each phase at its own roofline on the replica's share of
     * the achievable FLOP/s and bandwidth. Time per batch = B n max(c_pre/F_r, b_pre/B_r) (prefill)
     * + B m max(c_dec/F_r, b_dec/B_r) (decode); rate = replicas B m / time. It is NOT a ceiling: it is
     * <= the compute and memory_bandwidth ceilings by construction (max(a,b) + max(c,d) >= a + c),
     * and the modelled token rate is min(this, every ceiling) x Phi x U. */
    const double ratio = (double)s->input_tokens / s->output_tokens;
    const double t_pre_c = pc.c_pre / F, t_pre_b = pc.b_pre / B, t_dec_c = pc.c_dec / F, t_dec_b = pc.b_dec / B;
    r->prefill_s_per_output_token = ratio * fmax(t_pre_c, t_pre_b);
    r->decode_s_per_output_token = fmax(t_dec_c, t_dec_b);
    r->prefill_bound = t_pre_c >= t_pre_b ? ETOK_CEIL_COMPUTE : ETOK_CEIL_MEMORY_BANDWIDTH;
    r->decode_bound = t_dec_c >= t_dec_b ? ETOK_CEIL_COMPUTE : ETOK_CEIL_MEMORY_BANDWIDTH;
    /* Per replica batch: F_r = F / replicas, so B n max(...) / (1/replicas) = replicas B n max(...). */
    const double per_batch = (double)r->replicas * r->batch * s->output_tokens;
    r->prefill_s_per_batch = per_batch * r->prefill_s_per_output_token;
    r->decode_s_per_batch = per_batch * r->decode_s_per_output_token;
    r->in_series_tps = 1.0 / (r->prefill_s_per_output_token + r->decode_s_per_output_token);
    /* A ceiling below the in-series rate (memory_capacity with a lower achievable fraction at the
     * largest batch) still bounds it. */
    const double series_hw = fmin(r->in_series_tps, r->hardware_tps);

    /* Device power (docs/TPF.md "Device power"): P = P_idle + (P_max - P_idle) * activity, with
     * MFU and MBU of the PEAK FLOP/s and bandwidth at the rate the devices serve without a power
     * limit (series_hw). Uncalibrated activity = max(MFU, MBU); calibrated: min(1, floor + a_F MFU +
     * a_B MBU). Never normalised to 1. */
    const double P_max = h->max_power_w, P_idle = h->idle_power_w;
    int calp = cal && cal->present && cal->has_power;
    double a0 = calp ? cal->activity_floor : 0, aF = calp ? cal->activity_per_mfu : 0, aB = calp ? cal->activity_per_mbu : 0;
    /* A row of this exact tensor-parallel degree with its own power curve takes precedence. */
    for (size_t i = 0; cal && cal->present && i < cal->n_rows; i++)
        if (cal->rows[i].devices_per_replica == r->devices_per_replica && cal->rows[i].has_power) {
            calp = 1;
            a0 = cal->rows[i].activity_floor;
            aF = cal->rows[i].activity_per_mfu;
            aB = cal->rows[i].activity_per_mbu;
        }
    const double mfu_h = series_hw * pc.c_out / Fpk, mbu_h = series_hw * pc.b_out / Bpk;
    double act_h = calp ? a0 + aF * mfu_h + aB * mbu_h : fmax(mfu_h, mbu_h);
    if (act_h > 1) act_h = 1;
    r->device_power_hw_w = P_idle + (P_max - P_idle) * act_h;
    /* device_power_cap: only where a limit is set. A device held below its unlimited rate at a
     * fixed batch (clocks and voltage lowered under a limit, or fewer steps per second) is modelled
     * to draw P_idle + (P_hw - P_idle) * rate / series_hw; the ceiling is the rate at which that
     * reaches the limit. */
    C[ETOK_CEIL_DEVICE_POWER_CAP] = INFINITY;
    if (s->power_limit_w > 0 && r->device_power_hw_w > P_idle)
        C[ETOK_CEIL_DEVICE_POWER_CAP] = series_hw * (s->power_limit_w - P_idle) / (r->device_power_hw_w - P_idle);
    r->device_tps = fmin(series_hw, C[ETOK_CEIL_DEVICE_POWER_CAP]);
    r->k_eff_flops = r->device_tps * pc.c_out;
    r->mfu = r->device_tps * pc.c_out / Fpk;
    r->mbu = r->device_tps * pc.b_out / Bpk;
    const double dev_frac = r->device_tps / series_hw; /* < 1 under a power limit */
    const double act_dev = act_h * dev_frac;
    r->device_power_full_w = P_idle + (P_max - P_idle) * act_dev;
    /* e_tok at the devices' operating point: what the power ceilings divide by. */
    const double e_dev = N * r->device_power_full_w / r->device_tps;
    r->joules_per_output_token_flat = e_dev;
    double e_ceil = e_dev;
    if (s->measured_joules_per_output_token > 0) {
        e_ceil = s->measured_joules_per_output_token;
        if (s->power_limit_w > 0) C[ETOK_CEIL_DEVICE_POWER_CAP] = etok_tpf_ceiling_power_tps(N * s->power_limit_w, e_ceil);
    }
    /* Facility ceilings: theta * P / e_tok (METRICS.md §1); P_IT = min(P_grid / PUE, P_cooling). */
    const double theta = s->has_facility ? s->theta : 1.0;
    const double pue = s->has_facility ? s->pue : 1.0;
    if (s->has_facility) {
        C[ETOK_CEIL_DELIVERED_POWER] = etok_tpf_ceiling_power_tps(theta * (s->facility_power_w / pue), e_ceil);
        C[ETOK_CEIL_COOLING] = s->cooling_w > 0 ? etok_tpf_ceiling_power_tps(theta * s->cooling_w, e_ceil) : INFINITY;
        r->it_power_w = s->cooling_w > 0 ? fmin(s->facility_power_w / pue, s->cooling_w) : s->facility_power_w / pue;
    } else {
        C[ETOK_CEIL_DELIVERED_POWER] = INFINITY;
        C[ETOK_CEIL_COOLING] = INFINITY;
        r->it_power_w = INFINITY;
    }

    /* Binding constraint: the smallest ceiling, by the one rule everything uses. */
    int bind = etok_tpf_smallest_ceiling(C);
    if (bind < 0) return etok_errc(err, ETOK_EXIT_INPUT, "model %s: no ceiling is known (check the hardware peaks)", s->model.name);
    r->binding = (etok_ceiling)bind;
    const double R = C[bind];
    for (int i = 0; i < ETOK_CEIL_COUNT; i++) r->headroom[i] = isfinite(C[i]) ? C[i] / R : NAN;
    r->headroom[ETOK_CEIL_DEVICE_POWER_CAP] = s->power_limit_w > 0 ? s->power_limit_w / r->device_power_hw_w : NAN;
    /* Operating point: the in-series rate, bounded by every ceiling, x Phi x U. */
    const double U = s->utilization, Phi = s->phi_system;
    const double Rm = fmin(r->device_tps, R); /* device_tps = min(in series, hardware, device_power_cap) */
    r->modelled_rate_limited = Rm < r->in_series_tps * (1 - 1e-12);
    r->token_rate_full_utilization_tps = Rm * Phi;
    r->token_rate_tps = Rm * Phi * U;
    /* Power at the operating point. When the facility binds, the model powers only as many
     * devices as the power allows (gating the rest beats running all slowly while any idle
     * power is drawn); otherwise all devices run at R / N. */
    r->devices_powered = N;
    if (bind == ETOK_CEIL_DELIVERED_POWER || bind == ETOK_CEIL_COOLING) r->devices_powered = N * fmin(1.0, Rm / r->device_tps);
    double busy_frac = (Rm / r->devices_powered) / (series_hw / N); /* of the unlimited device rate */
    if (busy_frac > 1) busy_frac = 1;
    r->activity_busy = act_h * busy_frac;
    const double busy_power = P_idle + (P_max - P_idle) * r->activity_busy;
    r->activity = r->activity_busy * U;
    r->device_power_w = P_idle + (P_max - P_idle) * r->activity;
    if (s->measured_device_power_w > 0) {
        r->device_power_w = s->measured_device_power_w;
        r->device_power_measured = 1;
    }
    double busy_power_total = r->devices_powered * busy_power;
    if (s->measured_joules_per_output_token > 0) {
        r->joules_per_output_token = s->measured_joules_per_output_token;
        r->joules_measured = 1;
    } else {
        r->joules_per_output_token = r->devices_powered * r->device_power_w / r->token_rate_tps;
    }
    r->joules_per_token = r->joules_per_output_token * s->output_tokens / ((double)s->input_tokens + s->output_tokens);
    r->joules_per_output_token_pue = r->joules_per_output_token / theta * pue;
    r->joules_per_token_pue = r->joules_per_token / theta * pue;
    /* METRICS.md §3: e_busy + P_idle (1 - U) / (U * rate_busy), per powered device set. */
    double e_busy = busy_power_total / (Rm * Phi);
    r->utilization_adjusted_joules_per_token =
        r->joules_measured ? r->joules_per_output_token
                           : e_busy + r->devices_powered * P_idle * (1 - U) / (U * Rm * Phi);
    r->joules_per_flop = e_ceil / pc.c_out;
    /* Crossover: P_grid* = PUE * C_dev * e_tok / theta with C_dev = min(hardware ceilings,
     * device_power_cap): below it delivered_power is the smallest ceiling (the binding constraint;
     * the modelled rate is limited by it once it also falls below the in-series rate). */
    r->crossover_facility_power_w = pue * fmin(r->hardware_tps, C[ETOK_CEIL_DEVICE_POWER_CAP]) * e_ceil / theta;
    r->energy_cost_per_mtok = price_per_kwh >= 0 ? r->joules_per_output_token_pue * 1e6 / 3.6e6 * price_per_kwh : -1;
    r->co2e_g_per_mtok = -1; /* etok_tpf_apply_grid */
    return 0;
}

/* ---------- comparison ---------- */

size_t etok_tpf_compare(const etok_tpf_result *a, const etok_tpf_result *b, etok_tpf_change *out, size_t max) {
    struct {
        const char *f, *u;
        double x, y;
    } rows[] = {
        {"weight_bytes", "byte", a->stats.weight_bytes, b->stats.weight_bytes},
        {"kv_bytes_per_token", "byte/token", a->stats.kv_bytes_per_token, b->stats.kv_bytes_per_token},
        {"batch", "sequences", a->batch, b->batch},
        {"batch_max", "sequences", a->batch_max, b->batch_max},
        {"flops_per_token.prefill", "FLOP/token", a->flops_per_token_prefill, b->flops_per_token_prefill},
        {"flops_per_token.decode", "FLOP/token", a->flops_per_token_decode, b->flops_per_token_decode},
        {"bytes_per_token.prefill", "byte/token", a->bytes_per_token_prefill, b->bytes_per_token_prefill},
        {"bytes_per_token.decode", "byte/token", a->bytes_per_token_decode, b->bytes_per_token_decode},
        {"arithmetic_intensity.decode", "FLOP/byte", a->arithmetic_intensity_decode, b->arithmetic_intensity_decode},
        {"peak_flops", "FLOP/s", a->peak_flops, b->peak_flops},
        {"ceilings.compute", "token/s", a->ceilings_tps[ETOK_CEIL_COMPUTE], b->ceilings_tps[ETOK_CEIL_COMPUTE]},
        {"ceilings.memory_bandwidth", "token/s", a->ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH], b->ceilings_tps[ETOK_CEIL_MEMORY_BANDWIDTH]},
        {"ceilings.memory_capacity", "token/s", a->ceilings_tps[ETOK_CEIL_MEMORY_CAPACITY], b->ceilings_tps[ETOK_CEIL_MEMORY_CAPACITY]},
        {"ceilings.delivered_power", "token/s", a->ceilings_tps[ETOK_CEIL_DELIVERED_POWER], b->ceilings_tps[ETOK_CEIL_DELIVERED_POWER]},
        {"ceilings.cooling", "token/s", a->ceilings_tps[ETOK_CEIL_COOLING], b->ceilings_tps[ETOK_CEIL_COOLING]},
        {"ceilings.device_power_cap", "token/s", a->ceilings_tps[ETOK_CEIL_DEVICE_POWER_CAP], b->ceilings_tps[ETOK_CEIL_DEVICE_POWER_CAP]},
        {"in_series_tps", "token/s", a->in_series_tps, b->in_series_tps},
        {"device_power_full_w", "W", a->device_power_full_w, b->device_power_full_w},
        {"token_rate_tps", "token/s", a->token_rate_tps, b->token_rate_tps},
        {"joules_per_output_token", "J/token", a->joules_per_output_token, b->joules_per_output_token},
        {"joules_per_flop", "J/FLOP", a->joules_per_flop, b->joules_per_flop},
        {"crossover_facility_power_w", "W", a->crossover_facility_power_w, b->crossover_facility_power_w},
    };
    size_t n = 0;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0] && n < max; i++, n++) {
        etok_tpf_change *c = &out[n];
        c->field = rows[i].f;
        c->unit = rows[i].u;
        c->before = rows[i].x;
        c->after = rows[i].y;
        c->ratio = (rows[i].x != 0 && isfinite(rows[i].x) && isfinite(rows[i].y)) ? rows[i].y / rows[i].x : NAN;
        if (isinf(rows[i].x) || isinf(rows[i].y)) c->moved = rows[i].x != rows[i].y;
        else c->moved = fabs(rows[i].y - rows[i].x) > 1e-9 * fmax(fabs(rows[i].x), fabs(rows[i].y));
    }
    return n;
}
