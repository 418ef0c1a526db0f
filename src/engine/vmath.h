/* vmath.h — exp() as llama.cpp's CPU backend evaluates it in softmax and SiLU, so that the
 * engine's activations round as the reference's do (docs/ENGINE.md, "Numerics").
 *
 * llama.cpp (ggml-cpu, AVX2 build) computes exp in those two ops with a polynomial
 * approximation adapted from Arm's optimized-routines expf (within 2 ulp; 1.89 ulp worst
 * measured), not with libm's expf. The two differ by an ulp now and then, enough to flip an
 * 8-bit activation rounding downstream. etok_vexpf is the same algorithm, written here from its
 * math (see vmath.c), lane for lane; etok_softmax_exp and etok_silu_mul reproduce where the
 * reference uses it and how it sums. */
#ifndef ETOK_ENGINE_VMATH_H
#define ETOK_ENGINE_VMATH_H

#include <stddef.h>
#include <stdint.h>

#include "engine/quant.h"

/* exp(x) by range reduction to 2^n * e^b, |b| <= ln2/2, and a degree-5 polynomial in b. */
float etok_vexpf(float x);

/* y[i] = exp(x[i] - max) for i < n with etok_vexpf; returns their sum: each block of 8 (the
 * last one padded with zeros) summed in float in the reference's reduction order
 * ((y0+y4)+(y2+y6)) + ((y1+y5)+(y3+y7)), the blocks in double. (The reference's softmax row
 * spans its KV range, padded to a multiple of 32 cells with the unattended ones masked to exp
 * 0, so it never takes its scalar tail there.) */
double etok_softmax_exp(float *y, const float *x, int n, float max);

/* The largest of x[0..n) (-INFINITY for n == 0), NaNs skipped: the value of the scan
 * mx = x[i] > mx ? x[i] : mx from -INFINITY. The AVX2 version keeps 32 lanes (four independent
 * max chains instead of one 4-cycle chain per value) and reduces them at the end; where +0 and
 * -0 tie for the largest, either may come out (a softmax's exp(x - max) is the same for both). */
float etok_max(const float *x, int n);

/* gate[i] = silu(gate[i]) * up[i] for one row of n values: silu(x) = x / (1 + exp(-x)) with
 * etok_vexpf in the row's 8-wide blocks and expf in the last n % 8. */
void etok_silu_mul(float *gate, const float *up, int n);

#endif

/* Attention over an F16 cache for a step of ONE token, in the order of llama.cpp's
 * ggml_vec_dot_f16 (AVX2), which its CPU backend uses for K.q and for the weighted sum over V
 * when a batch has a single token (with two or more it takes llamafile's tinyBLAS, whose
 * order etok_attn_scores / etok_attn_accum follow). ggml_vec_dot_f16 over n values: four
 * 8-lane FMA accumulators, value i in accumulator (i % 32) / 8, lane i % 8, over the first
 * n - n % 32 values; reduced (a0 + a2) + (a1 + a3), then lanes (l0+l4, l1+l5, l2+l6, l3+l7) as
 * (s0 + s1) + (s2 + s3); the last n % 32 products (each rounded to float) added in double.
 * q and w must already be F16 values (the reference rounds them to F16). */
/* out[s] = dot(K row s, q) * scale for n rows of hd F16 values, stride bytes apart */
void etok_attn_scores_1tok(const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                           float *out);
/* out[i] = sum_s w[s] V[s][i] as one ggml_vec_dot_f16 over positions (position p in
 * accumulator slot p % 32, the reference's cell index; its KV range is padded to a multiple
 * of 32 with weight 0, so no position is a leftover); hd <= 512. The positions come as n_runs
 * runs of consecutive cache rows (run r: n[r] rows from v0[r], positions first_pos[r]..; w
 * holds the weights of all runs in order) summed into the same accumulators, so the result
 * does not depend on where a ring buffer wraps. */
void etok_attn_accum_1tok(const float *w, int n_runs, const uint8_t *const *v0, const int *first_pos, const int *n,
                          size_t stride, int hd, float *out);

/* The same for the g query heads of one KV head at once (GQA): each cached row is loaded and
 * converted once and used by every head, with every head's bits those of the per-head
 * functions above (the same accumulators in the same order). q: g heads of hd values one
 * after the other; scores: out[h * out_stride + s]; accum: head h's weights at
 * w + h * w_stride, its result at out + h * hd. g <= ETOK_VM_MAX_GROUP (8). v_pf: NULL, or
 * the V rows of the same positions (same stride), which the scores pass then prefetches: the
 * sum over V reads them slot by slot (32 rows apart), which the hardware prefetcher does not
 * follow; this way they come from memory in order while K.q computes. */
#define ETOK_VM_MAX_GROUP 8
void etok_attn_scores_1tok_multi(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                 float *out, size_t out_stride, const uint8_t *v_pf);
void etok_attn_accum_1tok_multi(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                const int *first_pos, const int *n, size_t stride, int hd, float *out);

/* The sum over a Q8_0 V cache (any number of tokens): out[h * hd + i] = the sum over the runs'
 * positions, in order, from 0, of w[h * w_stride + k] * x_i, x_i = d q_i the row's value as
 * Q8_0 dequantises it (exact in float), each term added with one fused multiply-add:
 * acc = fma(x_i, w, acc), the term arithmetic of llama.cpp's flash attention
 * (ggml_vec_mad_f32, AVX2). Not llama.cpp's bits: the peer needs flash attention for a
 * quantised V cache, and its online softmax (unnormalised weights, rescaled at each new
 * maximum, divided at the end) is another order (docs/ENGINE.md, "Attention").
 * hd <= 512, a multiple of 32; g heads. */
void etok_attn_accum_q8_0(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0, const int *n,
                          size_t stride, int hd, float *out);

/* A row of n (a multiple of 32) values into a Q8_0 cache row, as llama.cpp's CPU backend
 * writes its q8_0 KV cache (ggml_cpy through quantize_row_q8_0, its AVX2 build): per block
 * d = amax / 127 (stored as F16), q = round-to-nearest-even(v * (127 / amax)). The file
 * quantiser etok_quantize_row (llama.cpp's reference, as llama-quantize) multiplies by
 * 1 / d instead, which differs in the last bit for some amax and then moves some q by one. */
void etok_quantize_kv_q8_0(const float *x, void *row, int64_t n);

/* K.q over a Q8_0 K cache for the g query heads of one KV head (any number of tokens):
 * out[h * out_stride + s] = dot(K row s, q_h) * scale for n rows stride bytes apart, q_h the
 * head's query quantised to q8a blocks (hd / 32 of them, the heads one after the other, as
 * etok_quantize_q8a makes them). Each dot has the bits of quant_avx2.c's dot_q8_0, which are
 * llama.cpp's ggml_vec_dot_q8_0_q8_0 (AVX2) for its quantised K cache: per 32-value block the
 * int32 sums of bytes 4l..4l+3 in lane l, acc_l = fma(d_k * d_q, (float)isum_l, acc_l) block
 * by block from 0, reduced ((l0 + l4) + (l2 + l6)) + ((l1 + l5) + (l3 + l7)) (hsum_float_8),
 * then times scale. The AVX2 kernel reads each K block once for all g heads and reduces eight
 * positions at once (lane for lane the same additions), instead of one dispatched dot per
 * head and position. Without AVX2 (kernel level scalar) the dots are etok_vec_dot's (its
 * scalar order, llama.cpp's scalar build: one float sum over the blocks), as before.
 * hd a multiple of 32, <= 512; g <= ETOK_VM_MAX_GROUP. v_pf: NULL, or the V rows of the same
 * positions (same stride), which the AVX2 kernel prefetches into L2 while it computes, so that
 * the sum over V (etok_attn_accum_q8_0, one pass over the rows per 32-value block) does not
 * wait for memory. */
void etok_attn_scores_q8_0(const etok_block_q8a *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                           float scale, float *out, size_t out_stride, const uint8_t *v_pf);

/* The implementations behind the dispatch, for tests (same bits by construction): the
 * scalar reference and, on x86-64 CPUs with AVX2/FMA/F16C (etok_simd_active), AVX2; hd <= 512,
 * the AVX2 accumulation also hd % 8 == 0. */
double etok_softmax_exp_ref(float *y, const float *x, int n, float max);
float etok_max_ref(const float *x, int n);
void etok_silu_mul_ref(float *gate, const float *up, int n);
void etok_attn_scores_1tok_ref(const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                               float *out);
void etok_attn_accum_1tok_ref(const float *w, int n_runs, const uint8_t *const *v0, const int *first_pos,
                              const int *n, size_t stride, int hd, float *out);
void etok_attn_scores_1tok_multi_ref(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                     float scale, float *out, size_t out_stride, const uint8_t *v_pf);
void etok_attn_accum_1tok_multi_ref(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                    const int *first_pos, const int *n, size_t stride, int hd, float *out);
void etok_attn_accum_q8_0_ref(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                              const int *n, size_t stride, int hd, float *out);
/* the AVX2 kernel's bits, lane by lane in scalar code (the definition the kernel is tested
 * against; the dispatch does not use it: at level scalar it keeps etok_vec_dot's order) */
void etok_attn_scores_q8_0_ref(const etok_block_q8a *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                               float scale, float *out, size_t out_stride, const uint8_t *v_pf);
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
/* AVX2 grouped kernels: scores any hd <= 512; accum hd % 8 == 0 and n_runs <= 8 */
void etok_attn_scores_1tok_multi_avx2(const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                      float scale, float *out, size_t out_stride, const uint8_t *v_pf);
void etok_attn_accum_1tok_multi_avx2(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                                     const int *first_pos, const int *n, size_t stride, int hd, float *out);
void etok_attn_accum_q8_0_avx2(const float *w, size_t w_stride, int g, int n_runs, const uint8_t *const *v0,
                               const int *n, size_t stride, int hd, float *out); /* hd % 32 == 0 */
void etok_attn_scores_q8_0_avx2(const etok_block_q8a *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                float scale, float *out, size_t out_stride, const uint8_t *v_pf);
double etok_softmax_exp_avx2(float *y, const float *x, int n, float max);
float etok_max_avx2(const float *x, int n);
void etok_silu_mul_avx2(float *gate, const float *up, int n);
void etok_attn_scores_1tok_avx2(const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                                float *out);
void etok_attn_accum_1tok_avx2(const float *w, int n_runs, const uint8_t *const *v0, const int *first_pos,
                               const int *n, size_t stride, int hd, float *out);
#endif
