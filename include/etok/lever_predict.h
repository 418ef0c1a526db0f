/* lever_predict.h — the TPF's prediction of a lever beside its measured effect (issue 16,
 * docs/LEVERS.md "Prediction beside measurement").
 *
 * Two bench runs (baseline, candidate) of the built-in engine differ in some settings. The
 * mapping turns each difference into what `etok tpf` knows: weights FORMAT -> the scenario's
 * model.weight_dtype (f32 -> fp32, f16 -> fp16, q8_0/q4_0/q4_1 the ggml block formats; q8_0 is
 * what `--lever int8` means on this engine's byte side), --kv-type q8_0 -> kv-int8 (q8_0, 1.0625
 * bytes a value), --attn-window N --attn-sinks S -> window=N+S, --concurrency N -> batch=N. A
 * difference the TPF has no term for (threads, CPU frequency, q5 formats, another model or eval
 * set, an open-loop rate) gives no prediction, with the reason — except a thread count that a
 * calibrated profile's kernel table (calibrate.h, `etok tpf --calibrate`) has a kernel for:
 * "threads=N (calibrated kernel)". With a kernel table, a format or thread count the table has
 * no kernel for gives no prediction ("no kernel fitted for ...").
 *
 * The prediction is etok_cal_predict (calibrate.h) on the baseline run's scenario (its prompt and
 * output lengths, its batch) before and after the mapped lever, on hardware hw: the record's
 * probe roofs (uncalibrated), or a calibrated profile. Predicted change of token rate = ratio of
 * the TPF output rates; of J/output-token = ratio of the TPF's J/output-token when hw has a
 * calibrated power curve, else power held at the baseline's measured mean power (J ratio = 1 /
 * rate ratio). The absolute candidate figure is the measured baseline times that ratio.
 *
 * GPU power limit (bench --gpu-power-limit W, config.gpu_power_limit_w; bench runs of the
 * built-in engine AND bench --endpoint runs): the TPF's power branch Qdot = theta P / e_tok
 * with e_tok held at the baseline's (the TPF has no DVFS or efficiency curve for a GPU). P0_i =
 * the baseline's measured mean power of GPU i in the window: its summable nvml trace (one per
 * GPU), pooled over the baseline's runs (energy / seconds). The lever sets every GPU's limit to
 * C, so GPU i draws min(P0_i, C) and the predicted rate ratio = sum_i min(P0_i, C) / sum_i
 * P0_i (one GPU: 1 when C >= P0, else C / P0); J/output-token ratio = 1 (the same e_tok). This
 * is the total-power form of the TPF; GPUs of one model in lockstep (tensor parallel) with
 * unequal draws would follow the most throttled one, which it does not model. No prediction
 * (why says so) when: more than the limit differs (any config setting but the lever, the
 * measurement's amount and procedure -- seed, requests, duration_s, warmup_requests, idle_s,
 * meters -- or the host), an arm's runs ran at different limits, the candidate lifts or raises
 * the baseline's own limit (its draw under that cap says nothing of the draw above it), or the
 * baseline has no nvml measurement. */
#ifndef ETOK_LEVER_PREDICT_H
#define ETOK_LEVER_PREDICT_H

#include <stddef.h>

#include "etok/calibrate.h"
#include "etok/compare.h"
#include "etok/record.h"

/* etok_lever_prediction is defined in compare.h (a candidate carries one). */

/* The TPF lever text for the differences from base to cand; 0 and lever filled when every
 * difference maps, -1 with why filled when one does not. */
int etok_lever_map(const etok_cal_run *base, const etok_cal_run *cand, char *lever, size_t lever_n, char *why, size_t why_n);

/* Fills p (mapping, prediction, and the measured side from c's deltas). Returns 0; p->valid
 * says whether a prediction was made. -1 only when the TPF itself fails (err set). */
int etok_lever_predict(const etok_cal_run *base, const etok_cal_run *cand, const etok_hw_spec *hw, const etok_model_arch *m,
                       const etok_compare_cand *c, etok_lever_prediction *p, etok_err *err);

/* The most GPUs etok_gpu_mean_power reads. */
#define ETOK_GPU_POWER_MAX 16

/* Mean power of each GPU (summable nvml trace, in record order) over the windows of the n
 * records, pooled (energy / covered seconds); every record must measure the same GPUs. 0 with
 * per_gpu_w[0..*n_gpus) filled, -1 with why filled. */
int etok_gpu_mean_power(const etok_record *const *recs, size_t n, double *per_gpu_w, int max_gpus, int *n_gpus, char *why,
                        size_t why_n);

/* The GPU power limit lever (top comment). Returns 0 when the baseline's first run and the
 * candidate's have the same config.gpu_power_limit_w (p untouched: another difference, or
 * none); 1 when it differs, with p filled (a prediction, or 'no prediction: why'), the
 * measured side from cc's deltas. */
int etok_gpu_power_lever_predict(const etok_record *const *base, size_t nb, const etok_record *const *cand, size_t nc,
                                 const etok_compare_cand *cc, etok_lever_prediction *p);

/* etok_lever_prediction_line (one line of it) is declared in compare.h. */

#endif
