/* tpf.h — the Token Production Function (METRICS.md §1) as a pure model: a scenario
 * (hardware, model architecture, workload, facility, utilization, Phi, levers) goes in, a
 * result with every ceiling, the binding constraint, the token rate and the modelled energy
 * comes out. No I/O, no clock: catalogs and scenario files are read by src/scenario/, the
 * output is formatted by src/render/tpf_render.c.
 *
 * Units are in the names: _flops (FLOP/s or FLOP), _bps (byte/s), _bytes, _w, _j, _tps. */
#ifndef ETOK_TPF_H
#define ETOK_TPF_H

#include <stddef.h>

#include "etok/util.h"
#include "etok/parse.h"

/* ---------- data types (number formats of weights, KV cache and compute) ---------- */
typedef enum {
    ETOK_DT_FP32 = 0,
    ETOK_DT_BF16,
    ETOK_DT_FP16,
    ETOK_DT_FP8,
    ETOK_DT_INT8,
    ETOK_DT_INT4,  /* 4-bit weights + one fp16 scale per 128 (AWQ/GPTQ g128): 4.125 bit */
    ETOK_DT_Q8_0,  /* GGUF: 34 bytes per 32 weights */
    ETOK_DT_Q4_0,  /* GGUF: 18 bytes per 32 weights */
    ETOK_DT_Q4_1,  /* GGUF: 20 bytes per 32 weights */
    ETOK_DT_COUNT
} etok_dtype;

const char *etok_dtype_name(etok_dtype d);
int etok_dtype_parse(const char *s, etok_dtype *out); /* 0 ok, -1 unknown */
double etok_dtype_bytes(etok_dtype d);                /* storage bytes per element */
/* The precision whose peak FLOP/s applies when weights are stored as d (weight-only
 * formats int4/q4/q8 compute in bf16; int8 and fp8 use their own tensor-core peaks). */
etok_dtype etok_dtype_compute(etok_dtype d);

/* ---------- catalog entries ---------- */

/* What a roofline leaves out, per hardware (data/hardware/NAME.json "calibration", docs/TPF.md
 * "Calibration"): the achievable fraction of peak memory bandwidth and FLOP/s by batch size, per
 * tensor-parallel degree, and the power curve between idle and max. Fitted to published
 * measurements (data/measurements/); absent = the plain roofline. */
#define ETOK_CAL_MAX_ROWS 8
#define ETOK_CAL_MAX_POINTS 16
typedef struct {
    int devices_per_replica;                  /* tensor-parallel degree the row was measured at */
    int n;                                    /* points, batch ascending */
    double batch[ETOK_CAL_MAX_POINTS];
    double bandwidth_fraction[ETOK_CAL_MAX_POINTS]; /* achievable / peak memory bandwidth, (0, 1] */
    double flops_fraction[ETOK_CAL_MAX_POINTS];     /* achievable / peak FLOP/s, (0, 1] */
    /* Optional power curve of this tensor-parallel degree (same form as the hardware's); a
     * scenario at exactly this devices_per_replica uses it instead of the hardware-wide one. */
    int has_power;
    double activity_floor, activity_per_mfu, activity_per_mbu;
} etok_hw_cal_row;

typedef struct {
    int present;
    size_t n_rows;                            /* rows sorted by devices_per_replica */
    etok_hw_cal_row rows[ETOK_CAL_MAX_ROWS];
    /* Power curve: activity = min(1, floor + per_mfu * MFU + per_mbu * MBU); has_power = 0 keeps
     * the uncalibrated activity = max(MFU, MBU). */
    int has_power;
    double activity_floor, activity_per_mfu, activity_per_mbu;
    /* Kernel table (optional; written by `etok tpf --calibrate`, read by etok_cal_predict in
     * calibrate.c, not by etok_tpf_evaluate): the achieved fraction of peak FLOP/s of prefill per
     * weight format and engine thread count. kernels[0] is the kernel the rows' flops_fraction
     * was fitted for: decode compute of kernel k at batch b runs at rows' flops_fraction(b) x
     * kernels[k] / kernels[0] (docs/TPF.md "Calibrating from runs"). n_kernels 0: none. */
    int n_kernels;
    struct {
        etok_dtype weight_dtype;
        int threads;
        double flops_fraction;
    } kernels[ETOK_CAL_MAX_POINTS];
    char source[512];
} etok_hw_calibration;

typedef struct {
    char name[64];
    char display_name[96];
    /* Dense (no sparsity) peak FLOP/s per compute precision; 0 = not supported/unknown. */
    double peak_flops_fp32, peak_flops_bf16, peak_flops_fp8, peak_flops_int8;
    double mem_bw_bps;       /* memory bandwidth, byte/s */
    double mem_bytes;        /* memory capacity, bytes */
    double max_power_w;      /* TDP / board power limit */
    double idle_power_w;     /* idle draw */
    etok_hw_calibration cal; /* optional */
} etok_hw_spec;

typedef struct {
    char name[64];
    char display_name[96];
    int n_layers, d_model, n_heads, n_kv_heads, head_dim, d_ff, vocab;
    int tied_embeddings;
    /* MoE (n_experts == 0: dense). FFN of MoE layers: n_experts routed experts of width
     * d_ff_expert, top_k of them per token, plus n_shared_experts always-on experts of the
     * same width; the first n_dense_layers layers use a dense FFN of width d_ff. */
    int n_experts, top_k, n_shared_experts, d_ff_expert, n_dense_layers;
    /* MLA (kv_lora_rank == 0: standard multi-head / grouped-query attention). */
    int q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim;
    int attention_window;    /* sliding-window length in tokens; 0 = full attention */
    int max_context;         /* 0 = unknown */
    etok_dtype default_weight_dtype, default_kv_dtype;
    double params_total_card; /* total parameters stated on the model card (checked in tests) */
} etok_model_arch;

/* ---------- the scenario ---------- */
typedef struct {
    etok_hw_spec hw;
    int device_count;         /* N_dev */
    int devices_per_replica;  /* tensor-parallel degree; 0 = fewest devices holding the weights */
    double power_limit_w;     /* per-device power limit set on the devices (nvidia-smi -pl); 0 = none */
    int uncalibrated;         /* 1: ignore hw.cal (the plain roofline) */
    double mem_usable_fraction; /* share of device memory usable for weights + KV (default 0.9) */

    etok_model_arch model;
    etok_dtype weight_dtype, kv_dtype;
    int compute_dtype_set;    /* 1: compute_dtype overrides etok_dtype_compute(weight_dtype) */
    etok_dtype compute_dtype;

    int input_tokens, output_tokens; /* per request */
    int batch;                /* concurrent sequences per replica; 0 = the largest that fits */

    int has_facility;         /* 0: no facility limits (power ceilings reported as +inf) */
    double facility_power_w;  /* P_grid */
    double pue;               /* >= 1 */
    double cooling_w;         /* P_cooling; 0 = not given (no cooling ceiling) */
    double theta;             /* 0 < theta <= 1 */

    double utilization;       /* U, 0 < U <= 1 */
    double phi_system;        /* Phi, > 0 */

    /* Measured replacements (etok tpf --from-run): when > 0 they replace the modelled value. */
    double measured_joules_per_output_token; /* device boundary */
    double measured_device_power_w;
    int utilization_measured;
} etok_tpf_scenario;

/* Scenario defaults: 1 device, pue 1, theta 1, U 1, Phi 1, usable 0.9, no facility. */
void etok_tpf_scenario_init(etok_tpf_scenario *s);

/* ---------- per-token model quantities (METRICS.md §1 "FLOPs and bytes per token") ---------- */
typedef struct {
    double params_total;          /* all weights (embedding once when tied) */
    double params_active;         /* per token at batch 1: dense + top-k + shared experts + embedding */
    double params_active_matmul;  /* params_active minus the embedding lookup (LM head kept) */
    double params_embedding;      /* V * d */
    double params_expert;         /* parameters of one routed expert (one layer) */
    int n_moe_layers;
    double weight_bytes;          /* params_total * bytes per weight: what must fit in memory */
    double kv_bytes_per_token;    /* KV cache bytes per token of context (all layers) */
    double attn_flops_per_ctx;    /* attention FLOPs per token per context position (all layers) */
} etok_tpf_model_stats;

int etok_tpf_model_stats_compute(const etok_model_arch *m, etok_dtype weight_dtype, etok_dtype kv_dtype,
                                 etok_tpf_model_stats *out);

/* Mean of t_eff = min(t, window) over t = a..b (window 0 = no window). */
double etok_tpf_mean_ctx(long long a, long long b, long long window);

/* ---------- the result ---------- */
typedef enum {
    ETOK_CEIL_COMPUTE = 0,
    ETOK_CEIL_MEMORY_BANDWIDTH,
    ETOK_CEIL_MEMORY_CAPACITY,
    ETOK_CEIL_DELIVERED_POWER,
    ETOK_CEIL_COOLING,
    ETOK_CEIL_DEVICE_POWER_CAP,
    ETOK_CEIL_COUNT
} etok_ceiling;

const char *etok_ceiling_name(etok_ceiling c); /* METRICS.md names: "compute", "memory_bandwidth", ... */

/* Achievable fractions (bandwidth, FLOP/s) of cal at a batch and tensor-parallel degree: linear in
 * log2(batch) between the row's points and in log2(degree) between rows, clamped at the ends.
 * Both 1 without calibration. */
void etok_hw_cal_fractions(const etok_hw_calibration *cal, int devices_per_replica, double batch, double *bw_frac,
                           double *flops_frac);

/* ---------- ceiling functions (METRICS.md §1) ----------
 * The one place each ceiling formula lives: etok_tpf_evaluate feeds them the modelled per-token
 * costs of a scenario, the run metrics (metrics.c) feed them the run's measured FLOPs, bytes and
 * joules per output token with the probe profile's peaks. Resources are for all devices counted.
 * NAN when an input is unknown (NAN, or <= 0); a resource of +inf gives +inf (no limit). */
double etok_tpf_ceiling_compute_tps(double peak_flops, double flops_per_output_token);        /* F / c_tok */
double etok_tpf_ceiling_memory_bandwidth_tps(double mem_bw_bps, double bytes_per_output_token); /* B / b_tok */
double etok_tpf_ceiling_power_tps(double power_w, double joules_per_output_token);              /* P / e_tok */
/* THE binding-constraint rule, used by the model, the sweeps, the figures and the run metrics:
 * the smallest known (not NAN) entry of ceilings_tps[ETOK_CEIL_COUNT]; exact ties go to the first
 * in the order compute, memory_capacity, memory_bandwidth, delivered_power, cooling,
 * device_power_cap; -1 when none is known. */
int etok_tpf_smallest_ceiling(const double ceilings_tps[ETOK_CEIL_COUNT]);

#define ETOK_TPF_MAX_NOTES 8

typedef struct {
    /* resolved configuration */
    int devices_per_replica, replicas, batch, batch_max;
    etok_dtype compute_dtype;
    double peak_flops;          /* F_peak per device at compute_dtype */
    double mem_bw_bps;          /* B_mem per device */
    etok_tpf_model_stats stats;

    /* per token */
    double flops_per_token_prefill, flops_per_token_decode;   /* c_tok per phase */
    double bytes_per_token_prefill, bytes_per_token_decode;   /* b_tok per phase */
    double flops_per_output_token, bytes_per_output_token;    /* request mix, prefill charged to output */
    double arithmetic_intensity_prefill, arithmetic_intensity_decode, arithmetic_intensity; /* FLOP/byte */
    double kv_bytes_per_sequence;

    /* calibration applied (etok_hw_calibration): achievable fractions at this batch and degree */
    int calibrated;
    double bandwidth_fraction, flops_fraction;

    /* ceilings: each an independent upper bound on output token/s for the whole deployment from
     * one resource, at the same operating point (the scenario's batch), before Phi and U */
    double ceilings_tps[ETOK_CEIL_COUNT];
    /* ceiling / binding ceiling (>= 1); device_power_cap: power_limit_w / modelled draw
     * (device_power_full_w); NAN where a ceiling is unlimited */
    double headroom[ETOK_CEIL_COUNT];
    etok_ceiling binding;       /* etok_tpf_smallest_ceiling(ceilings_tps) */
    double hardware_tps;        /* min(compute, memory_bandwidth, memory_capacity): the hardware ceilings */
    /* THE MODELLED RATE's derivation (not a ceiling): one replica serves a batch of B requests with
     * prefill and decode in series, each phase at its own roofline on the achievable FLOP/s and
     * bandwidth: time per batch = prefill_s_per_batch + decode_s_per_batch, in_series_tps =
     * replicas B m / that = 1 / ((n/m) max(c_pre/F, b_pre/B) + max(c_dec/F, b_dec/B)) <= compute and
     * memory_bandwidth ceilings. token_rate_tps = min(in_series_tps, every ceiling) x Phi x U. */
    double in_series_tps;
    double prefill_s_per_output_token, decode_s_per_output_token; /* its two terms, deployment-wide */
    double prefill_s_per_batch, decode_s_per_batch;               /* the same per replica batch of B requests */
    etok_ceiling prefill_bound, decode_bound;  /* the resource each phase's time comes from (compute or memory_bandwidth) */
    int modelled_rate_limited;  /* 1 when a ceiling (power, or memory_capacity) is below in_series_tps */
    double device_tps;          /* min(in_series_tps, hardware_tps, device_power_cap): the devices' own operating point */
    double k_eff_flops;         /* effective compute, all devices: device_tps * c_out */
    double mfu, mbu;            /* at the devices' operating point (device_tps), of PEAK FLOP/s and bandwidth */

    /* operating point */
    double token_rate_full_utilization_tps; /* min(in_series_tps, ceilings) * Phi (U = 1) */
    double token_rate_tps;      /* the modelled rate: min(in_series_tps, ceilings) * Phi * U (METRICS.md §1, docs/TPF.md) */
    double activity;            /* time-averaged activity of a powered device (docs/TPF.md "Device power") */
    double activity_busy;       /* activity while serving, at the operating point */
    double devices_powered;     /* devices drawing power (power gating when the facility binds) */
    double device_power_w;      /* modelled (or measured) mean power of one powered device */
    double device_power_full_w; /* modelled draw of a device at the devices' operating point (device_tps) */
    double device_power_hw_w;   /* modelled draw of a device at min(in_series_tps, hardware_tps) (no power limit) */
    int device_power_measured;
    double it_power_w;          /* P_IT = min(P_grid / PUE, P_cooling); +inf without a facility */
    double joules_per_output_token_flat; /* e_tok at the devices' operating point (used by the power ceilings) */
    double joules_per_output_token;      /* device boundary, at the operating point */
    double joules_per_token;             /* device boundary, per (input + output) token */
    double joules_per_output_token_pue;  /* facility boundary: device / theta * PUE */
    double joules_per_token_pue;
    int joules_measured;
    double utilization_adjusted_joules_per_token; /* METRICS.md §3: e_busy + P_idle (1-U) / (U rate) */
    double joules_per_flop;
    double crossover_facility_power_w;   /* P_grid* */
    double energy_cost_per_mtok;         /* < 0 when no price given */
    double co2e_g_per_mtok;              /* gCO2e per million output tokens, PUE-adjusted; < 0 when no
                                            grid intensity given (etok_tpf_apply_grid) */

    size_t n_notes;
    char notes[ETOK_TPF_MAX_NOTES][192];
} etok_tpf_result;

/* Evaluates the scenario. Errors (ETOK_EXIT_INPUT) name the field: a model that does not fit,
 * a batch whose KV cache does not fit, a device count not divisible by devices_per_replica,
 * an out-of-range number. price_per_kwh < 0: no cost figure. */
int etok_tpf_evaluate(const etok_tpf_scenario *s, double price_per_kwh, etok_tpf_result *out, etok_err *err);
/* co2e_g_per_mtok = joules_per_output_token_pue x 1e6 / 3.6e6 x g_per_kwh (docs/CARBON.md); g_per_kwh
 * <= 0 (none given) leaves it -1. Operational only: embodied emissions are not included. */
void etok_tpf_apply_grid(etok_tpf_result *r, double g_per_kwh);

/* ---------- before/after comparison (what moved) ---------- */
typedef struct {
    const char *field;      /* METRICS.md name, e.g. "ceilings.compute", "joules_per_output_token" */
    const char *unit;
    double before, after;
    double ratio;           /* after / before (NAN when before is 0 or either is infinite) */
    int moved;              /* differs by more than 1e-9 relative */
} etok_tpf_change;

/* Fills out[] with the headline quantities of a and b side by side; returns the count. */
size_t etok_tpf_compare(const etok_tpf_result *a, const etok_tpf_result *b, etok_tpf_change *out, size_t max);

/* ---------- levers (src/analyse/levers.c) ---------- */
typedef struct {
    const char *name;       /* "fp8", "kv-int8", "window", "batch", ... (argument after '=') */
    int takes_arg;          /* 1: NAME=VALUE */
    const char *rationale;  /* one line */
    const char *source;     /* paper / documentation */
} etok_lever_info;

size_t etok_lever_count(void);
const etok_lever_info *etok_lever_at(size_t i);
/* Applies one lever ("fp8", "window=4096", "batch=64", "phi=1.3") to s in place. Errors name
 * the lever and say why (unknown name lists the known ones; moe-topk on a dense model...). */
int etok_lever_apply(etok_tpf_scenario *s, const char *lever, etok_err *err);

/* ---------- sweeps and crossover search ---------- */
typedef struct {
    char field[64];
    double start, stop;
    int steps;
    int log;
} etok_sweep_spec;

/* "facility.power_w=1e5:1e7:50:log" -> spec. Checks the field name against the sweepable ones. */
int etok_sweep_parse(const char *text, etok_sweep_spec *out, etok_err *err);
/* The sweepable fields, NULL-terminated. */
const char *const *etok_sweep_fields(void);
/* Sets a numeric scenario field by sweep name (integers are rounded); a value outside the
 * field's limits (etok_tpf_field_limit) is refused, never clamped. */
int etok_tpf_set_field(etok_tpf_scenario *s, const char *field, double value, etok_err *err);

/* ---------- limits (tpf_limits.c) ---------- */
/* The range of every numeric scenario field ("hardware.count", "facility.pue", ...), shared by
 * the scenario loader, the catalogs, --sweep and levers (docs/TPF.md lists them). */
typedef struct {
    const char *field;
    etok_range range;
    const char *unit;
} etok_field_limit;
const etok_field_limit *etok_tpf_field_limits(size_t *n);
const etok_field_limit *etok_tpf_field_limit(const char *field); /* NULL: not a known field */
/* 0 when v is inside field's range; else -1, "FIELD: V is out of range (expected ...)",
 * exit code ETOK_EXIT_USAGE (file readers turn it into ETOK_EXIT_INPUT). */
int etok_tpf_check_field(const char *field, double v, etok_err *err);

typedef struct {
    double x;
    int ok;                 /* 0: the scenario is infeasible at x (error holds why) */
    char error[160];
    etok_tpf_result r;
} etok_sweep_point;

typedef struct {
    double x;               /* value of the swept field where the binding constraint switches */
    etok_ceiling from, to;  /* binding below and above x */
    etok_sweep_point at;    /* the model evaluated at x (ok = 0 when infeasible there) */
} etok_crossover;

typedef struct {
    etok_sweep_spec spec;
    size_t n;
    etok_sweep_point *points;
    size_t n_crossovers;
    etok_crossover *crossovers;
} etok_sweep;

/* Runs the sweep (n = steps points, both ends included) and finds each switch of the binding
 * constraint by bisection between neighbouring points (to 1e-9 relative; 1 for integer fields). */
int etok_sweep_run(const etok_tpf_scenario *base, const etok_sweep_spec *spec, double price_per_kwh,
                   etok_sweep *out, etok_err *err);
void etok_sweep_free(etok_sweep *sw);

/* The binding regions of a sweep, as the figure shades and labels them: contiguous runs of
 * feasible points with one binding constraint (each point's own etok_tpf_smallest_ceiling),
 * widened to the crossovers between runs. *out is malloc'd (free it); returns the count, or
 * (size_t)-1 on out-of-memory. */
typedef struct {
    double x0, x1;
    etok_ceiling binding;
    size_t first, last;     /* grid points in the region */
} etok_sweep_region;
size_t etok_sweep_regions(const etok_sweep *sw, etok_sweep_region **out);

#endif
