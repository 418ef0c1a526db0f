/* quant.h — tensor element types: the GGUF/ggml block formats as packed structs, row
 * dequantisation, activation quantisation and dot-product kernels.
 *
 * Owns: the block layouts (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K; F32, F16, BF16), a scalar reference of
 * every kernel, an AVX2/FMA version, AVX-512 VNNI versions of the hot 32-value kernels
 * (quant_avx512.c, bit-identical to AVX2), and the kernel level picked at run time by CPU
 * feature detection (or forced: etok_isa_force, ETOK_ISA).
 * Weight x activation dot products follow the usual integer scheme: for the 32-value formats
 * activations are quantised per 32 values to 8 bits (Q8_0-like blocks with the block sum kept,
 * for Q4_1's and Q5_1's offset), and weights stay in their stored format. The forward pass
 * sends K-quant matrices to quant_k.c (Q8_K activations, llama.cpp's kernels) and Q4_0
 * matrices of 8k rows to quant_q4_0.c (llama.cpp's 8-row order); the K kernels here remain for
 * tests and etok_vec_dot. F32/F16/BF16 weights use float activations.
 * Does not own: which tensor has which type (gguf.c / model.c) or the matmul loop (model.c). */
#ifndef ETOK_ENGINE_QUANT_H
#define ETOK_ENGINE_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* ggml type ids as stored in GGUF tensor infos. */
enum {
    ETOK_T_F32 = 0,
    ETOK_T_F16 = 1,
    ETOK_T_Q4_0 = 2,
    ETOK_T_Q4_1 = 3,
    ETOK_T_Q5_0 = 6,
    ETOK_T_Q5_1 = 7,
    ETOK_T_Q8_0 = 8,
    ETOK_T_Q2_K = 10,
    ETOK_T_Q3_K = 11,
    ETOK_T_Q4_K = 12,
    ETOK_T_Q5_K = 13,
    ETOK_T_Q6_K = 14,
    ETOK_T_IQ4_NL = 20,
    ETOK_T_BF16 = 30,
    ETOK_T_COUNT = 40 /* upper bound of known ggml ids (for table sizes) */
};

#define ETOK_QK 32   /* values per block of the 32-blocks */
#define ETOK_QK_K 256 /* values per super-block of the K-quants */

typedef uint16_t etok_f16; /* IEEE half, stored bits */

typedef struct __attribute__((packed)) {
    etok_f16 d;               /* scale */
    int8_t qs[ETOK_QK];       /* x = d * q */
} etok_block_q8_0;
_Static_assert(sizeof(etok_block_q8_0) == 34, "Q8_0 block is 34 bytes");

typedef struct __attribute__((packed)) {
    etok_f16 d;               /* scale */
    uint8_t qs[ETOK_QK / 2];  /* low nibble: values 0..15, high nibble: values 16..31; x = d*(q-8) */
} etok_block_q4_0;
_Static_assert(sizeof(etok_block_q4_0) == 18, "Q4_0 block is 18 bytes");

typedef struct __attribute__((packed)) {
    etok_f16 d;               /* scale */
    etok_f16 m;               /* minimum; x = d*q + m */
    uint8_t qs[ETOK_QK / 2];
} etok_block_q4_1;
_Static_assert(sizeof(etok_block_q4_1) == 20, "Q4_1 block is 20 bytes");

/* The 5-bit blocks (ggml's block_q5_0 / block_q5_1): the low 4 bits of value j as in Q4_0
 * (qs[j] low nibble for j < 16, qs[j-16] high nibble for j >= 16), the 5th bit of value j is
 * bit j of qh read as a little-endian uint32. */
typedef struct __attribute__((packed)) {
    etok_f16 d;               /* scale; x = d * (q - 16), q = 0..31 */
    uint8_t qh[4];            /* 5th bits */
    uint8_t qs[ETOK_QK / 2];  /* low 4 bits */
} etok_block_q5_0;
_Static_assert(sizeof(etok_block_q5_0) == 22, "Q5_0 block is 22 bytes");

typedef struct __attribute__((packed)) {
    etok_f16 d;               /* scale */
    etok_f16 m;               /* minimum; x = d*q + m, q = 0..31 */
    uint8_t qh[4];
    uint8_t qs[ETOK_QK / 2];
} etok_block_q5_1;
_Static_assert(sizeof(etok_block_q5_1) == 24, "Q5_1 block is 24 bytes");

/* IQ4_NL (ggml's block_iq4_nl): as Q4_0's nibble order (value j < 16: low nibble of qs[j],
 * j >= 16: high nibble of qs[j-16]), but a nibble indexes the fixed non-linear table
 * etok_iq4nl_values (-127..113); x = d * table[nibble]. */
typedef struct __attribute__((packed)) {
    etok_f16 d;
    uint8_t qs[ETOK_QK / 2];
} etok_block_iq4_nl;
_Static_assert(sizeof(etok_block_iq4_nl) == 18, "IQ4_NL block is 18 bytes");
extern const int8_t etok_iq4nl_values[16];

/* Q2_K (block_q2_K): 16 sub-blocks of 16 values; value i (0..255) has 2 bits
 * q = (qs[32*(i/128) + i%32] >> (2*((i/32)%4))) & 3, sub-block s = i/16 has the 4-bit scale
 * scales[s] & 15 and the 4-bit min scales[s] >> 4; x = d*scale*q - dmin*min. */
typedef struct __attribute__((packed)) {
    uint8_t scales[ETOK_QK_K / 16]; /* low nibble: scale, high nibble: min */
    uint8_t qs[ETOK_QK_K / 4];      /* 2-bit values */
    etok_f16 d;                     /* super-block scale for the scales */
    etok_f16 dmin;                  /* super-block scale for the mins */
} etok_block_q2_k;
_Static_assert(sizeof(etok_block_q2_k) == 84, "Q2_K block is 84 bytes");

/* Q3_K (block_q3_K): 16 sub-blocks of 16 values, signed 3-bit values -4..3: the low 2 bits
 * as Q2_K's qs, the third bit of value i is bit 4*(i/128) + (i/32)%4 of hmask[i%32]; a set bit
 * means "no offset", a clear one subtracts 4. Sub-block s has a 6-bit scale (minus 32): low 4
 * bits in scales[s] (s < 8, low nibble) or scales[s-8] (high nibble), high 2 bits at bit
 * 2*(s/4) of scales[8 + s%4]. x = d*(scale-32)*q. */
typedef struct __attribute__((packed)) {
    uint8_t hmask[ETOK_QK_K / 8];
    uint8_t qs[ETOK_QK_K / 4];
    uint8_t scales[12];
    etok_f16 d;
} etok_block_q3_k;
_Static_assert(sizeof(etok_block_q3_k) == 110, "Q3_K block is 110 bytes");

typedef struct __attribute__((packed)) {
    etok_f16 d;               /* super-block scale for the 6-bit scales */
    etok_f16 dmin;            /* super-block scale for the 6-bit mins */
    uint8_t scales[12];       /* 8 (scale, min) pairs of 6 bits each */
    uint8_t qs[ETOK_QK_K / 2];/* 4-bit values, 4 groups of 64: low nibbles first 32, high next 32 */
} etok_block_q4_k;
_Static_assert(sizeof(etok_block_q4_k) == 144, "Q4_K block is 144 bytes");

/* Q5_K (block_q5_K): Q4_K's scales and nibbles plus a 5th bit: bit i/32 of qh[i%32]. */
typedef struct __attribute__((packed)) {
    etok_f16 d;
    etok_f16 dmin;
    uint8_t scales[12];       /* as Q4_K */
    uint8_t qh[ETOK_QK_K / 8];/* 5th bits */
    uint8_t qs[ETOK_QK_K / 2];/* low 4 bits, as Q4_K */
} etok_block_q5_k;
_Static_assert(sizeof(etok_block_q5_k) == 176, "Q5_K block is 176 bytes");

typedef struct __attribute__((packed)) {
    uint8_t ql[ETOK_QK_K / 2];    /* low 4 bits */
    uint8_t qh[ETOK_QK_K / 4];    /* high 2 bits */
    int8_t scales[ETOK_QK_K / 16];/* 16 8-bit scales */
    etok_f16 d;                   /* super-block scale */
} etok_block_q6_k;
_Static_assert(sizeof(etok_block_q6_k) == 210, "Q6_K block is 210 bytes");

/* The 8-bit activation block our integer kernels consume: like Q8_0 but with a float scale
 * and the sum of the quants (times d) kept, for Q4_1's "+ m" term. Not a file format. */
typedef struct {
    float d;                  /* scale */
    float s;                  /* d * sum(qs) */
    int8_t qs[ETOK_QK];
} etok_block_q8a;

/* Size facts of a type: values per block and bytes per block; 0 for unknown ids. */
int etok_type_block_elems(uint32_t type);
int etok_type_block_bytes(uint32_t type);
const char *etok_type_name(uint32_t type);
/* Bytes of one row of n values (n a multiple of the block size). */
size_t etok_type_row_bytes(uint32_t type, int64_t n);

/* Half/bfloat conversions. */
float etok_f16_to_f32(etok_f16 h);
etok_f16 etok_f32_to_f16(float f);
float etok_bf16_to_f32(uint16_t b);
uint16_t etok_f32_to_bf16(float f);

/* Dequantise n values of a row (n a multiple of the type's block size). */
void etok_dequantize_row(uint32_t type, const void *row, float *out, int64_t n);
/* Quantise n floats into a row of a weight type (reference quality, for tests and the
 * synthetic model writer). Supported: all types above. */
void etok_quantize_row(uint32_t type, const float *x, void *row, int64_t n);

/* Activation quantisation to etok_block_q8a (n multiple of 32). */
void etok_quantize_q8a(const float *x, etok_block_q8a *out, int64_t n);
void etok_quantize_q8a_ref(const float *x, etok_block_q8a *out, int64_t n);

/* Does this weight type use the 8-bit activation path (else float activations)? */
int etok_type_uses_q8a(uint32_t type);

/* Dot product of one weight row (n values, type) with the activations: `xq` (q8a blocks)
 * for quantised types, `xf` (floats) for F32/F16/BF16. The kernel picked at run time. */
float etok_vec_dot(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n);
/* Always the scalar reference (tests). */
float etok_vec_dot_ref(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf, int64_t n);

/* Dot products of one weight row with several activation vectors at once (the row is read
 * once for all of them): out[j] = row . x_j for j < nx. xq/xf point at nx consecutive
 * vectors of n values (q8a: n/32 blocks each). */
void etok_vec_dot_multi(uint32_t type, const void *row, const etok_block_q8a *xq, const float *xf,
                        int64_t n, int nx, float *out, size_t out_stride);

/* Rows [r0, r1) of a weight matrix (rows of n values, row_bytes apart) times nx activation
 * vectors: out[j * out_stride + r] = row_r . x_j. The row loop lives inside the kernel (one
 * dispatch per call, not per row). */
void etok_matmul_rows(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                      const etok_block_q8a *xq, const float *xf, int64_t n, int nx, float *out, size_t out_stride);

/* Q4_0 in llama.cpp's 8-row interleaved ("Q4_0_8x8") order (src/engine/quant_q4_0.c): used
 * for a Q4_0 matrix when etok_q4_0_8x8_applies (row count a multiple of 8, as llama.cpp's
 * repacking rule on AVX2 CPUs). Each output is a scalar chain over the blocks in order,
 * acc = fmaf((float)isum_b, d_w * d_a, acc) from 0; AVX2 and scalar give the same bits.
 * Arguments as etok_matmul_rows. */
int etok_q4_0_8x8_applies(uint32_t type, int64_t n_out, int64_t n_in);
void etok_matmul_rows_q4_0_8x8(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                               int64_t n, int nx, float *out, size_t out_stride);
void etok_matmul_rows_q4_0_8x8_ref(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                                   const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
/* Q8_0 rows [r0, r1) against nx q8a vectors (arguments as etok_matmul_rows), in register tiles
 * of rows x tokens (quant_q8_0.c); the bits of etok_vec_dot's Q8_0 kernel for every output.
 * _ref: the scalar definition of those bits (8 integer lanes, a float chain per lane). */
void etok_matmul_q8_0(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                      int nx, float *out, size_t out_stride);
void etok_matmul_q8_0_ref(const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                          int64_t n, int nx, float *out, size_t out_stride);
/* The same products over etok's repacked Q4_0x8 layout (quant_q4_0.c's top comment): a
 * matrix of n_rows (a multiple of 8) rows of n_in values, 8 rows per group of
 * etok_q4_0x8_group_bytes(n_in) bytes (= 8 rows of the file's layout, so the copy has the
 * matrix's size). pack: the file's rows -> dst; get_block / dequantize_row: block i / all of
 * row r back (the file's bytes, the same floats). matmul: as etok_matmul_rows_q4_0_8x8 (rows
 * [r0, r1) of any alignment; n = n_in), bit-identical to it. */
size_t etok_q4_0x8_group_bytes(int64_t n_in);
void etok_q4_0x8_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst);
void etok_q4_0x8_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_q4_0 *out);
void etok_q4_0x8_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out);
void etok_matmul_q4_0x8(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                        float *out, size_t out_stride);
void etok_matmul_q4_0x8_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                            float *out, size_t out_stride);

/* Q4_1 and Q5_1 repacked at load into etok's 8-row interleaved layouts Q4_1x8 / Q5_1x8
 * (src/engine/quant_q4_1.c's top comment): a matrix of n_rows (a multiple of 8) rows, 8 rows
 * per group of etok_q41x8_group_bytes(type, n_in) bytes (= 8 rows of the file's layout).
 * pack: the file's rows -> dst; get_block (out: an etok_block_q4_1 / _q5_1) / dequantize_row:
 * block i / all of row r back (the file's bytes, the same floats). matmul: as
 * etok_matmul_rows (rows [r0, r1) of any alignment, n = n_in), each output bit-identical to
 * the file-layout AVX2 kernel's (llama.cpp's vec_dot order), whatever the token count. */
int etok_q41x8_applies(uint32_t type, int64_t n_out, int64_t n_in);
size_t etok_q41x8_group_bytes(uint32_t type, int64_t n_in);
void etok_q41x8_pack(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst);
void etok_q41x8_get_block(uint32_t type, const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, void *out);
void etok_q41x8_dequantize_row(uint32_t type, const uint8_t *packed, int64_t n_in, int64_t r, float *out);
void etok_matmul_q41x8(uint32_t type, const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                       int nx, float *out, size_t out_stride);
void etok_matmul_q41x8_ref(uint32_t type, const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq,
                           int64_t n, int nx, float *out, size_t out_stride);

/* Q5_0 or IQ4_NL (type) times nx >= 2 activation vectors in llama.cpp's batch order for them
 * (src/engine/quant_q5_0.c): 8 int32 lanes per block (value j in lane j / 4), acc[l] =
 * fmaf(d_w * d_a, isum[l], acc[l]) over the blocks in order, reduced in hsum_float_8 order: the
 * bits of etok_vec_dot's AVX2 kernel. etok_matmul_rows takes it at kernel level avx2 when
 * etok_q5_0_tiled_applies. Arguments as etok_matmul_rows; _ref is the scalar version. */
int etok_q5_0_tiled_applies(uint32_t type, int nx);
void etok_matmul_q5_0(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                      const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
void etok_matmul_q5_0_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                          const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);

/* Q8_0 repacked at load into etok's 4-row interleaved layout Q8_0x4 (src/engine/quant_q8_0.c's
 * top comment): a matrix of n_rows (a multiple of 4) rows, 4 rows per group of
 * etok_q8x4_group_bytes(n_in) bytes (= 4 rows of the file's layout). pack / get_block /
 * dequantize_row / matmul / matmul_ref as the Q4_1x8 functions above; every output has the bits
 * of etok_matmul_q8_0_ref (the file-layout kernels', llama.cpp's vec_dot order), for any token
 * count and any row range. */
int etok_q8x4_applies(uint32_t type, int64_t n_out, int64_t n_in);
size_t etok_q8x4_group_bytes(int64_t n_in);
void etok_q8x4_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst);
void etok_q8x4_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_q8_0 *out);
void etok_q8x4_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out);
void etok_matmul_q8x4(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                      float *out, size_t out_stride);
void etok_matmul_q8x4_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                          float *out, size_t out_stride);

/* Q5_0 repacked at load into etok's 8-row interleaved layout Q5_0x8 (src/engine/quant_q5_0x8.c's
 * top comment): a matrix of n_rows (a multiple of 8) rows, 8 rows per group of
 * etok_q50x8_group_bytes(n_in) bytes (= 8 rows of the file's layout). pack / get_block /
 * dequantize_row / matmul / matmul_ref as the Q4_1x8 functions above; every output has the bits
 * of the file-layout AVX2 kernels (etok_vec_dot's, llama.cpp's vec_dot order), for any token
 * count and any row range. */
int etok_q50x8_applies(uint32_t type, int64_t n_out, int64_t n_in);
size_t etok_q50x8_group_bytes(int64_t n_in);
void etok_q50x8_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst);
void etok_q50x8_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_q5_0 *out);
void etok_q50x8_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out);
void etok_matmul_q50x8(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                       float *out, size_t out_stride);
void etok_matmul_q50x8_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                           float *out, size_t out_stride);

/* IQ4_NL repacked at load into etok's 8-row interleaved layout IQ4_NLx8
 * (src/engine/quant_iq4_nlx8.c's top comment): a matrix of n_rows (a multiple of 8) rows, 8
 * rows per group of etok_iq4nlx8_group_bytes(n_in) bytes (= 8 rows of the file's layout).
 * pack / get_block / dequantize_row / matmul / matmul_ref as the Q4_1x8 functions above; every
 * output has the bits of the file-layout kernels (etok_matmul_rows: for one token llama.cpp's
 * vec_dot order, for several its batch order), for any row range. */
int etok_iq4nlx8_applies(uint32_t type, int64_t n_out, int64_t n_in);
size_t etok_iq4nlx8_group_bytes(int64_t n_in);
void etok_iq4nlx8_pack(const uint8_t *w, size_t row_bytes, int64_t n_rows, int64_t n_in, uint8_t *dst);
void etok_iq4nlx8_get_block(const uint8_t *packed, int64_t n_in, int64_t r, int64_t i, etok_block_iq4_nl *out);
void etok_iq4nlx8_dequantize_row(const uint8_t *packed, int64_t n_in, int64_t r, float *out);
void etok_matmul_iq4nlx8(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n, int nx,
                         float *out, size_t out_stride);
void etok_matmul_iq4nlx8_ref(const uint8_t *packed, int64_t r0, int64_t r1, const etok_block_q8a *xq, int64_t n,
                             int nx, float *out, size_t out_stride);

/* Attention helpers over a KV cache of F32 or F16 rows, `stride` bytes apart:
 * scores: out[s] = (q . k_s) * scale for s < n;
 * accum: out = sum_s w[s] * v_s, accumulated in 8 lanes by absolute position (first_pos + s)
 * % 8 and reduced pairwise at the end (the order of an 8-wide FMA dot over positions);
 * round_f16: x[i] = nearest F16 value of x[i]. */
void etok_attn_scores(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                      float *out);
void etok_attn_accum(uint32_t type, const float *w, const uint8_t *v0, size_t stride, int first_pos, int n, int hd,
                     float *out);
void etok_round_f16(float *x, int n);
/* Grouped-query attention: g query heads that share one KV head. Each cached row is loaded,
 * and converted from F16, once for all g heads; the results are bit-identical to g calls of
 * the single-head functions above (same operations per head, in the same order).
 * scores_multi: q holds g vectors of hd floats one after another; out[h * out_stride + s] =
 * (q_h . k_s) * scale. Types F32 and F16 (Q8_0: etok_vec_dot_multi over q8a blocks).
 * accum_multi: out (g vectors of hd floats) = for each h, etok_attn_accum of the weights
 * w[h * w_stride + s] over n_seg runs of rows (run j: n[j] rows from v0[j], absolute positions
 * from first_pos[j]; its weights follow the previous runs'), all added into the same 8
 * position lanes before the one reduction: a span split where the KV ring wraps, or into sinks
 * and window, sums exactly as the same positions in one run would. */
void etok_attn_scores_multi(uint32_t type, const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                            float scale, float *out, size_t out_stride);
void etok_attn_accum_multi(uint32_t type, const float *w, size_t w_stride, int g, int n_seg, const uint8_t *const *v0,
                           const int *first_pos, const int *n, size_t stride, int hd, float *out);
/* Always the scalar versions (tests): the single-head ones, and the grouped ones written as
 * the scalar path runs them (F16 rows converted once per position). */
void etok_attn_scores_ref(uint32_t type, const float *q, const uint8_t *k0, size_t stride, int n, int hd, float scale,
                          float *out);
void etok_attn_accum_ref(uint32_t type, const float *w, const uint8_t *v0, size_t stride, int first_pos, int n, int hd,
                         float *out);
void etok_attn_scores_multi_ref(uint32_t type, const float *q, int g, const uint8_t *k0, size_t stride, int n, int hd,
                                float scale, float *out, size_t out_stride);
void etok_attn_accum_multi_ref(uint32_t type, const float *w, size_t w_stride, int g, int n_seg,
                               const uint8_t *const *v0, const int *first_pos, const int *n, size_t stride, int hd,
                               float *out);
/* n floats to F16 bits (round to nearest even), e.g. a K/V row into an F16 cache. */
void etok_f32_to_f16_row(const float *x, void *out, int n);

/* y[i] += a * row[i] for an F32 or F16 row (the attention's weighted sum over V). */
void etok_vec_axpy(uint32_t type, float a, const void *row, float *y, int64_t n);
void etok_vec_axpy_ref(uint32_t type, float a, const void *row, float *y, int64_t n);

/* ---- kernel level (instruction set) dispatch ----
 * Levels, each including the one below: scalar (the reference kernels), avx2 (AVX2 + FMA +
 * F16C, with the OS saving YMM state), avx512 (AVX-512 F + BW + VL + VNNI on top, with the OS
 * saving the opmask and ZMM state: XCR0 bits 1, 2, 5, 6, 7). The detected level is a cached
 * hardware fact; the active one is etok_isa_default (the detected level capped at avx512: amx
 * is opt-in, its prefill sums not being avx2's bits) unless forced (etok_isa_force, or
 * the environment variable ETOK_ISA=scalar|avx2|avx512|amx read on first use / by
 * etok_isa_from_env). Every level gives the same bits for avx2 and avx512 (the AVX-512 kernels
 * keep the AVX2 kernels' float operations in order; docs/ENGINE.md "Kernel levels"); scalar
 * differs only in float summation order. */
enum { ETOK_ISA_SCALAR = 0, ETOK_ISA_AVX2 = 1, ETOK_ISA_AVX512 = 2, ETOK_ISA_AMX = 3 };
/* Level amx (above avx512): AMX-TILE + AMX-INT8 in CPUID (leaf 7 EDX bits 24, 25), the tile
 * states in XCR0 (bits 17, 18) and the OS permission (arch_prctl(ARCH_REQ_XCOMP_PERM, 18) == 0;
 * refused under the Bochs test harness, which has no XFD: accepted there only when
 * ETOK_ISA_AMX_XCR0 is "1"). Opt-in: detected, but active only when forced (ETOK_ISA=amx,
 * etok_isa_force), because its prefill sums are not the avx2/avx512 bits (quant_amx.c): at
 * level amx a product of >= ETOK_AMX_MIN_TOKENS tokens in a format etok_amx_applies to takes
 * the AMX kernel, in the file's layout and in every repacked copy (the same bits for both).
 * etok_isa_amx_usable is the pure decision (perm_rc: arch_prctl's result; emu_env: the value
 * of ETOK_ISA_AMX_XCR0 or NULL). */
int etok_isa_amx_usable(uint32_t leaf7_edx, uint64_t xcr0, long perm_rc, const char *emu_env);
/* The AMX prefill kernel applies to the 32-value block formats (Q8_0, Q4_0, Q4_1, Q5_0, Q5_1,
 * IQ4_NL) with at least this many tokens (quant_amx.c; Q6_K: etok_amx_k_applies, quant_k.h). */
#define ETOK_AMX_MIN_TOKENS 16
int etok_amx_applies(uint32_t type, int nx);
/* The weight layouts it reads (and etok_decode_copy_avx512, quant_simd.h): the file's rows or one
 * of the repacked copies above. */
typedef enum {
    ETOK_AMX_FILE,
    ETOK_AMX_Q8X4,
    ETOK_AMX_Q4_0X8,
    ETOK_AMX_Q41X8,
    ETOK_AMX_Q50X8,
    ETOK_AMX_IQ4NLX8
} etok_amx_layout;
/* Its scalar reference over the file's rows (the amx level's summation order), arguments as
 * etok_matmul_rows. */
void etok_matmul_rows_amx_ref(uint32_t type, const uint8_t *w, size_t row_bytes, int64_t r0, int64_t r1,
                              const etok_block_q8a *xq, int64_t n, int nx, float *out, size_t out_stride);
#define ETOK_ISA_ENV "ETOK_ISA"
/* "scalar", "avx2", "avx512", "amx"; "?" for other values. */
const char *etok_isa_name(int level);
/* The level a name denotes (exact, lower case), or -1. */
int etok_isa_parse(const char *name);
/* The level the CPU and OS support, from CPUID leaf 1 ECX, leaf 7 EBX/ECX and XCR0 (0 when the
 * OS does not enable XSAVE). Pure: the decision of etok_isa_detected, exposed for tests. */
int etok_isa_level_from_cpuid(uint32_t leaf1_ecx, uint32_t leaf7_ebx, uint32_t leaf7_ecx, uint64_t xcr0);
/* The level this machine supports (scalar on non-x86-64 builds). */
int etok_isa_detected(void);
/* The level the dispatch uses now. On its first call, reads ETOK_ISA; an invalid value there
 * (unknown, or above the detected level) is reported on stderr and the process exits with
 * code 3: no silent fallback (programs that want to report it themselves call
 * etok_isa_from_env first, as the etok CLI does). */
int etok_isa_active(void);
/* The level taken when ETOK_ISA is unset, for a CPU whose detected level is `detected`. */
int etok_isa_default(int detected);
/* 1 when quant_avx512.c / quant_k.c were compiled with tests/isa/avx512_emu.h (the
 * isa_kernels_emu test build only): the shipped library must say 0 (test_isa). */
int etok_avx512_emulated(void);
int etok_quant_k_avx512_emulated(void);
/* Force the active level: 0, or -1 with a message in err (naming the detected level) when
 * level is unknown or above the detected one (nothing changed then). For tests and tools; set
 * it before kernels run, not while other threads use them. */
int etok_isa_force(int level, char *err, size_t errlen);
/* Apply ETOK_ISA if set: 0 (unset, or applied), or -1 with a message in err naming the variable,
 * its value, the accepted values and the detected level. */
int etok_isa_from_env(char *err, size_t errlen);

/* 1 when the AVX2/FMA kernels (or the AVX-512 ones above them) are in use. */
int etok_simd_active(void);

#endif
