/* ops/ops.h — tensor operations of the encoder and the sentence-transformers
 * head, on f32 row-major arrays.  Each is a plain function over caller memory:
 * no allocation, no hidden state.  Threading is by the caller (OpenMP). */
#ifndef EK_OPS_OPS_H
#define EK_OPS_OPS_H

#include <stddef.h>
#include <stdint.h>

/* x[r] = LayerNorm(x[r] + res[r]) for rows r (res may be NULL). */
void ek_op_add_layernorm(float *x, const float *res, int rows, int n,
                         const float *gamma, const float *beta, float eps);
/* x += bias (per column) for rows; then exact GELU when gelu != 0. */
void ek_op_bias_act(float *x, const float *bias, int rows, int n, int gelu);
/* Exact GELU: 0.5 x (1 + erf(x / sqrt 2)). */
float ek_op_gelu(float x);
/* In-place numerically stable softmax of one row of n values. */
void ek_op_softmax(float *x, int n);

/* Pooling of one sequence's token states h [L][H] into out [H].
 * mask_from: tokens before this index are excluded (include_prompt=false);
 * weights: [L] per-token weights for EK_POOL_ATTENTION (renormalised over the
 * included tokens), ignored otherwise.  Definitions follow
 * sentence-transformers' Pooling module exactly. */
void ek_op_pool(int mode, const float *h, int L, int H, int mask_from,
                const float *weights, float *out);

/* Dense head: y = act(W x + b), W [out][in]. act: 0 identity, 1 tanh,
 * 2 relu, 3 gelu, 4 sigmoid. */
void ek_op_dense(const float *w, const float *b, int out, int in, int act,
                 const float *x, float *y);

/* L2-normalises v in place: v / max(||v||, 1e-12) (torch F.normalize), so a
 * zero vector stays zero. */
void ek_op_l2_normalize(float *v, int n);

#endif
