/* compute/lowp.h — the element-wise work around bf16 and int8 matmuls:
 * converting activations to bf16, quantizing them to int8 per row, and the
 * int8 epilogue (dequantize, bias, GELU or residual add, requantize).
 *
 * oneDNN 2.6 cannot apply a per-row (per-token) scale inside an int8
 * matmul (a binary post-op of shape M x 1 sends it to its reference
 * kernel), and per-token scales are what keeps an input's result
 * independent of its batch; so the matmul returns s32 and this epilogue
 * does the rest in one pass over the output.
 *
 * Kernels are plain C compiled three times (portable, AVX2, AVX-512) and
 * picked by ek_lowp_select from the run-time ISA level; each handles a
 * block of rows, threading is the caller's.  Every row's result depends on
 * that row alone. */
#ifndef EK_COMPUTE_LOWP_H
#define EK_COMPUTE_LOWP_H

#include <stdint.h>

#include "compute/cpu.h"

/* Epilogue modes. */
enum {
    EK_EPI_STORE = 0,     /* out[r][n] = v */
    EK_EPI_ADD = 1,       /* out[r][n] += v (residual) */
    EK_EPI_GELU_QUANT = 2, /* q[r][n] = u8 quantization of GELU(v), rs_out[r] */
    EK_EPI_STORE_BF16 = 3  /* ((uint16_t *)out)[r * 2N + n] = bf16(v), round to
                              nearest even: the first half of each f32 row, so
                              it may run in place on acc (out == acc); only
                              with the AVX-512 kernels on a CPU with
                              AVX512_BF16 (its VCVTNEPS2BF16) */
};

typedef struct ek_epi_args {
    const int32_t *acc;   /* [rows][N] matmul result on u8 sources */
    const float *rs;      /* [rows] source row scales */
    const float *wscale;  /* [N] weight scales */
    const int32_t *colsum;/* [N] weight column sums (zero-point correction) */
    const float *bias;    /* [N] or NULL */
    int N;
    float *out;           /* STORE / ADD: [rows][N] f32 */
    uint8_t *q;           /* GELU_QUANT: [rows][N] */
    float *rs_out;        /* GELU_QUANT: [rows] */
    float *tmp;           /* GELU_QUANT, STORE_BF16: N floats of per-thread scratch */
} ek_epi_args;

typedef struct ek_lowp_kernels {
    /* y[r][c] = bf16(x[r][c]), round to nearest even; rows x n, x row
     * stride ldx, y row stride n. */
    void (*to_bf16)(const float *x, int rows, int n, int ldx, uint16_t *y);
    /* Symmetric per-row int8: rs[r] = max|x[r]| / 127 (1 for a zero row),
     * q[r][c] = round(x[r][c] / rs[r]) + 128. */
    void (*quant_u8)(const float *x, int rows, int n, int ldx, uint8_t *q, float *rs);
    /* v = (acc - 128 colsum[n]) * rs[r] * wscale[n] + bias[n], then mode. */
    void (*epilogue)(const ek_epi_args *a, int r0, int rows, int mode);
    ek_isa isa;           /* the level these kernels were built for */
} ek_lowp_kernels;

ek_lowp_kernels ek_lowp_select(ek_isa isa);

/* Exact GELU as the int8 epilogue computes it (for the tests). */
float ek_lowp_gelu(float x);

#endif
