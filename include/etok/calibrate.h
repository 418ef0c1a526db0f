/* calibrate.h — the TPF held against this machine's own runs (issue 16, docs/TPF.md
 * "Calibrating from runs" and docs/LEVERS.md).
 *
 * `etok tpf --calibrate RUN...` reads bench records of one machine; each becomes an
 * etok_cal_run (what the run was: batch = --concurrency, weight and KV format, window, mean
 * prompt and output lengths; what it measured: decode and prefill token rates from the engine's
 * steps, output rate, mean power and idle power over the window, J/output-token). The fit
 * (etok_cal_fit) writes the hardware calibration format data/hardware uses
 * (etok_hw_calibration): a kernel table (achieved compute per weight format and thread count,
 * from prefill), the achievable bandwidth and, per batch, the decode compute efficiency (the
 * engine model, etok_cal_fit below), and the device power curve (idle, max, activity against
 * MFU and MBU). etok_cal_predict is THE prediction both `tpf --calibrate` (leave-one-out) and
 * `etok compare` (predicted lever change) use: the TPF's per-token FLOPs and bytes on the run's
 * scenario, times from the engine model (or, without a kernel table, the TPF's
 * decode_s_per_output_token and in_series_tps: this engine runs prompt and generated tokens in
 * the same steps, on cores that do not overlap compute and memory time), device power from the
 * calibrated curve at that rate, J/output-token = power / rate.
 *
 * Pure: records (already loaded) and catalog entries in, figures out; no I/O. */
#ifndef ETOK_CALIBRATE_H
#define ETOK_CALIBRATE_H

#include <stddef.h>

#include "etok/record.h"
#include "etok/tpf.h"
#include "etok/util.h"

typedef struct {
    char label[128];          /* where it came from (path) */
    char lever[96];           /* what differs from a plain run: "weights=f32 kv=q8_0 threads=1" or "" */
    char model_name[96];      /* config.model_name (GGUF general.name) */
    char model_path[256];     /* config.model */
    int batch;                /* config.concurrency */
    int threads;              /* config.threads (0 unknown) */
    etok_dtype weight_dtype;  /* config.weights, or the file's main matrix type for "keep" */
    int weight_dtype_known;   /* 0: a format the TPF has no dtype for (q5_*): lever_why says so */
    char weights[16];         /* config.weights as given ("keep", "f32", ...) */
    etok_dtype kv_dtype;      /* config.kv_type f16 -> fp16, q8_0 -> q8_0, f32 -> fp32 */
    char kv_type[16];
    int attn_window, attn_sinks; /* 0: full attention */
    double cpu_max_freq_khz;  /* 0: not set */
    double input_tokens, output_tokens; /* mean per request (in-window requests) */
    /* measured */
    double decode_tps;        /* tokens of decode-only steps / their seconds (all sequences) */
    double prefill_tps;       /* prompt tokens / seconds of the steps that carried prompt tokens */
    double output_tps;        /* output tokens / window seconds */
    double joules_per_output_token; /* the record's metric (window energy / output tokens) */
    double power_w;           /* mean power over the window */
    double idle_power_w;      /* idle baseline; NAN when none */
    int power_measured;       /* 0: the estimate meter (a model of power, not a measurement) */
    char energy_source[16];   /* "counter", "power", "external", "estimate" */
    double peak_flops, mem_bw_bps; /* the record's hardware profile (etok probe) */
    /* The share of the machine the run's own work got in the window: own busy cores / cores
     * (record cpu_load, issue 17); NAN when not recorded. On a machine shared with other work
     * the probe's all-core roofs overstate what the run could use. */
    double cpu_share;
    /* Multiplies the roofs (peak FLOP/s and bandwidth) in etok_cal_scenario: 1 = the probe's;
     * `tpf --calibrate` sets it to cpu_share for its share-adjusted fit. */
    double roof_scale;
} etok_cal_run;

/* The main matrix format of a "keep" run from config.weight_types ("F32 x 61, Q4_1 x 210,
 * Q8_0 x 1" -> "q4_1"): the most frequent entry other than f32 (norm vectors), lower case; f32
 * when only f32 appears. -1 when none can be read. */
int etok_cal_main_weight_type(const char *weight_types, char *out, size_t n);

/* Fills *out from a bench record of the built-in engine (needs engine steps and a window
 * energy). Errors (ETOK_EXIT_INPUT) name the record and what is missing. */
int etok_cal_run_from_record(const etok_record *rec, const char *label, etok_cal_run *out, etok_err *err);

/* The run's TPF scenario on hardware hw (roofs and, when present, calibration) and model m:
 * one device, batch = run batch, input/output = the run's means (rounded, output >= 1),
 * the run's weight/KV formats and window (N + sinks), U = 1, Phi = 1, no facility. */
int etok_cal_scenario(const etok_hw_spec *hw, const etok_model_arch *m, const etok_cal_run *run, etok_tpf_scenario *s,
                      etok_err *err);

typedef struct {
    double decode_tps, output_tps, power_w, joules_per_output_token;
    double bandwidth_fraction, flops_fraction; /* applied at the run's batch (decode) */
    double mfu, mbu;                            /* at output_tps, of the peaks */
    /* With a kernel table (hw->cal.n_kernels > 0): the kernel used (index), or -1 and
     * predictable = 0 with why when the table has no entry for the run's weight format and
     * thread count (nothing was fitted for it: no prediction, not a guess). */
    int kernel;
    int predictable;
    int decode_bandwidth_bound; /* 1: decode time from bytes / bandwidth, 0: from work / compute */
    char why[160];
} etok_cal_prediction;

/* THE prediction (see the top comment). hw must carry idle and max power.
 * With a kernel table in hw->cal (etok tpf --calibrate), the engine model of docs/TPF.md
 * "Calibrating from runs" replaces the TPF's in-series rate (the TPF's per-token FLOPs and bytes
 * are kept): with F, B the probe peaks, K the run's kernel fraction (format, threads), K0 the
 * rows' kernel's, f_F(b), f_B(b) the rows at the run's batch,
 *   prefill seconds per prompt token t_pre = max(c_pre / (F K), b_pre / (B f_B))
 *   decode seconds per token         t_dec = max(b_dec / (B f_B), c_dec / (F f_F(b) K / K0))
 *   output rate = 1 / ((n / m) t_pre + t_dec), decode rate = 1 / t_dec;
 * power from the curve at that rate, as without the table. */
int etok_cal_predict(const etok_hw_spec *hw, const etok_model_arch *m, const etok_cal_run *run, etok_cal_prediction *out,
                     etok_err *err);

/* Roofs of a run record: peak FLOP/s (every precision the TPF asks for) and bandwidth from the
 * record's probe profile; idle power from the runs' idle baselines, max power 0 (the fit sets
 * it). name/display_name are set by the caller. */
void etok_cal_roofs(const etok_cal_run *run, etok_hw_spec *hw);

/* What each run fitted (etok_cal_fit's role[], bits): */
#define ETOK_CAL_ROLE_KERNEL 1    /* its prefill rate entered its kernel's flops fraction */
#define ETOK_CAL_ROLE_DECODE 2    /* compute-bound decode: entered the decode efficiency at its batch */
#define ETOK_CAL_ROLE_BANDWIDTH 4 /* the largest decode bandwidth of the fit: set the bandwidth fraction */
#define ETOK_CAL_ROLE_BW_BOUND 8  /* bandwidth-bound decode (bytes / fitted bandwidth >= 90% of its time) */

/* The kernel-table entry of run (weight format and thread count) in cal; -1 when none. */
int etok_cal_kernel_of(const etok_hw_calibration *cal, const etok_cal_run *run);

typedef struct {
    etok_hw_spec hw;          /* roofs + the fitted calibration, idle and max power */
    int power_from_estimate;  /* the power fit is the estimate meter's own model, not a measurement */
    int n_runs;
    size_t n_batches;
    double power_rms_w;       /* residual of the power fit */
    char power_note[256];
} etok_cal_fit_result;

/* Fits hw.cal from the runs with use[i] != 0 (use NULL = all). When some run has a prefill
 * rate (the engine model, docs/TPF.md "Calibrating from runs"):
 *   kernel (format, threads): K = geometric mean over its runs of prefill rate x c_pre / F
 *     (prefill chunks are compute-bound); kernels[0] is the kernel with the most runs;
 *   bandwidth fraction f_B = the largest decode rate x b_dec / B of any run (a run cannot move
 *     bytes faster than the machine can: the achievable bandwidth is at least that), the same
 *     at every batch;
 *   decode efficiency at batch b: geometric mean over the runs at b whose decode is
 *     compute-bound (b_dec / (B f_B) < 90% of the measured decode time) of c_dec x decode rate
 *     / (F K_run); the rows' flops_fraction(b) = K0 x that;
 * else (no prefill steps) per batch the geometric mean of decode rate x b_dec / B and a flops
 * fraction of 1. Fractions are capped at 1. The power curve by least squares of the window mean
 * power against MFU and MBU at the measured output rate, P_idle = mean idle baseline, P_max = the
 * largest window power. roofs gives peaks and memory size. role (NULL or n entries) gets each
 * run's ETOK_CAL_ROLE_* bits. Needs >= 1 run. */
int etok_cal_fit(const etok_cal_run *runs, size_t n, const int *use, const etok_hw_spec *roofs, const etok_model_arch *m,
                 etok_cal_fit_result *out, int *role, etok_err *err);

#endif
