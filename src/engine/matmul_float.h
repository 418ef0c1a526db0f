/* matmul_float.h — matrices of float weights (F32, F16, BF16) in llama.cpp's arithmetic on an
 * AVX2 CPU (c392e5094), written from its math (src/engine/matmul_float.c says which code of
 * the peer each order stands for).
 *
 * The activations are first rounded as the peer rounds them (its vec_dot_type): to F16 for
 * F16 weights, to BF16 for BF16 weights, unchanged for F32; converted once per matmul, kept
 * as floats (an F16/BF16 value converts to float exactly, so this changes no product).
 * Each output element is then summed in one of two orders:
 *  - gemm (the peer's llamafile tinyBLAS, used when a step has 2 or more tokens, the matrix's
 *    row count is a multiple of 4 and its width a multiple of 8): one 8-lane accumulator,
 *    acc[l] = fma(w[i+l], x[i+l], acc[l]) for i = 0, 8, 16, ..., then the 8 lanes summed as
 *    ((l0+l4)+(l2+l6)) + ((l1+l5)+(l3+l7)). The register tile only changes speed, not bits.
 *  - vec (the peer's ggml_vec_dot_f16/_f32/_bf16, used otherwise, e.g. decode): four 8-lane
 *    accumulators over 32-value steps, acc[j][l] += w[i+8j+l] * x[i+8j+l] (exact product for
 *    F16/BF16, fused for F32), then a = (acc0+acc2) + (acc1+acc3) lane-wise and the 8 lanes
 *    summed as ((a0+a4)+(a1+a5)) + ((a2+a6)+(a3+a7)) for F16 and F32 (two hadds) or as the
 *    gemm order for BF16; the n % 32 values left over are added one by one after it (F16,
 *    BF16: in double, as the peer; F32: in float, unfused).
 * Owns: the rounding, the rule which order applies, the scalar reference and the AVX2 kernels
 * (bit-equal to each other: tests/unit/test_matmul_float.c). Does not own: the row split over
 * threads (model.c; any split gives the same bits) or the attention's F16 KV products. */
#ifndef ETOK_ENGINE_MATMUL_FLOAT_H
#define ETOK_ENGINE_MATMUL_FLOAT_H

#include <stddef.h>
#include <stdint.h>

/* 1 for F32, F16, BF16. */
int etok_type_is_float(uint32_t type);

/* out[i] = x[i] rounded as the peer rounds activations for a matrix of this type (F16: to
 * nearest-even F16; BF16: to nearest-even BF16, a NaN kept quiet; F32: copied). out may be x. */
void etok_float_round_act(uint32_t type, const float *x, float *out, int64_t n);

/* 1 when the peer sums this matmul in the gemm order (see above): nx >= 2, n_out % 4 == 0,
 * n_in % 8 == 0. */
int etok_float_gemm_applies(int64_t n_out, int64_t n_in, int nx);

/* Rows [r0, r1) of a float matrix (rows of n values, row_bytes apart) times nx rounded
 * activation vectors xr (n floats each, one after another): out[j * out_stride + r] =
 * row_r . x_j, in the gemm order when `gemm` (then n % 8 == 0) else the vec order.
 * etok_matmul_rows_float picks the AVX2 kernel where the CPU has it; _ref is the scalar one. */
void etok_matmul_rows_float(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                            const float *xr, int64_t n, int nx, int gemm, float *out, size_t out_stride);
void etok_matmul_rows_float_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                const float *xr, int64_t n, int nx, int gemm, float *out, size_t out_stride);

#endif
