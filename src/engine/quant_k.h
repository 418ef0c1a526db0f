/* quant_k.h — the K-quant matmul path with llama.cpp's arithmetic: activations quantised to
 * Q8_K (256 values, one float scale, int16 sums of 16 values) and dot kernels whose integer
 * lanes and float operations are those of ggml's AVX2 ggml_vec_dot_q{2,3,4,5,6}_K_q8_K.
 *
 * Owns: etok_block_q8k, its quantiser (ggml's quantize_row_q8_K_ref, which the AVX2 build
 * uses), a scalar reference and an AVX2 version of each K dot (bit-equal to each other), an
 * AVX-512 VNNI version of the Q4_K, Q5_K and Q6_K dots (bit-equal to AVX2; kernel level
 * avx512, quant.h), the dispatch to the AMX Q6_K / Q3_K prefill kernel at level amx (quant_amx.c, not
 * the avx2 bits), and
 * the row loop for a matmul (one dot per row and token, as llama.cpp runs K-quant matrices:
 * llamafile's tinyBLAS takes no K-quant type, so batches fall back to vec_dot per row).
 * Does not own: the block layouts (quant.h) or the old 32-value-block K kernels (quant.c,
 * quant_avx2.c; kept, used by tests and by nothing else in the forward pass). */
#ifndef ETOK_ENGINE_QUANT_K_H
#define ETOK_ENGINE_QUANT_K_H

#include <stddef.h>
#include <stdint.h>

#include "engine/quant.h"

/* ggml's block_q8_K: x = d * qs; bsums[k] = sum of qs[16k .. 16k+15]. Not a file format. */
typedef struct {
    float d;
    int8_t qs[ETOK_QK_K];
    int16_t bsums[ETOK_QK_K / 16];
} etok_block_q8k;

/* 1 for Q2_K..Q6_K: matrices of these types take Q8_K activations. */
int etok_type_uses_q8k(uint32_t type);

/* n floats (a multiple of 256) to n/256 Q8_K blocks, as ggml's quantize_row_q8_K_ref: the
 * value of largest magnitude (first on a tie) `max`, iscale = -127/max, q = min(127,
 * round-half-even(iscale*x)), d = 1/iscale; an all-zero block gets d = 0, q = 0. */
void etok_quantize_q8k(const float *x, etok_block_q8k *out, int64_t n);

/* One weight row (n values of a K type) times Q8_K activations. etok_vec_dot_q8k picks the AVX2
 * kernel when available; _ref is always the scalar one; both give the same bits. */
float etok_vec_dot_q8k(uint32_t type, const void *row, const etok_block_q8k *y, int64_t n);
float etok_vec_dot_q8k_ref(uint32_t type, const void *row, const etok_block_q8k *y, int64_t n);

/* Rows [r0, r1) (row_bytes apart) times nx activation vectors of n/256 blocks each:
 * out[j * out_stride + r] = row_r . y_j. */
void etok_matmul_rows_q8k(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                          const etok_block_q8k *y, int64_t n, int nx, float *out, size_t out_stride);

/* Level amx: Q6_K and Q3_K products of >= ETOK_AMX_MIN_TOKENS tokens take the AMX-INT8 kernel
 * (quant_amx.c), whose sums are not the avx2 bits (one exact integer per super-block, not 8
 * lanes); etok_matmul_rows_amx_k_ref is its order in scalar code, arguments as
 * etok_matmul_rows_q8k. */
int etok_amx_k_applies(uint32_t type, int nx);
void etok_matmul_rows_amx_k_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                const etok_block_q8k *y, int64_t n, int nx, float *out, size_t out_stride);
/* The dispatch (x86 builds only): at level amx, for a product etok_amx_k_applies to, runs the
 * kernel and returns 1; else 0. */
int etok_amx_prefill_q8k(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                         const etok_block_q8k *xq, int64_t n, int nx, float *out, size_t out_stride);

#endif
