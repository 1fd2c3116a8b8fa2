/* compute/attention.h — scaled dot-product attention of one head over one
 * unpadded sequence, the inner kernel of the forward pass. */
#ifndef EK_COMPUTE_ATTENTION_H
#define EK_COMPUTE_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* Floats of workspace ek_attention_head needs for sequences up to max_len
 * tokens and head size d. */
size_t ek_attention_scratch(int max_len, int d);

/* q: the head's query columns of row 0 of the fused QKV matrix (row stride
 * ld); its keys are at q + kv_off and values at q + 2 * kv_off.
 * out[i][c] (row stride ldo) = sum_j softmax_j(scale * q_i . k_j) v_j[c].
 * p0 (may be NULL): receives the L probabilities of query row 0.
 * ws: ek_attention_scratch(>= L, d) floats, 64-byte aligned.
 * Runs an AVX-512 kernel when the CPU has it (checked at run time; the
 * release build targets baseline x86-64), else portable C.
 * The result for a sequence depends only on that sequence's rows. */
void ek_attention_head(const float *q, int ld, int kv_off, int L, int d,
                       float scale, float *out, int ldo, float *p0, float *ws);

/* The same with the kernel picked from an ISA level (compute/cpu.h), so
 * EK_ISA can force the portable path: AVX-512 at EK_ISA_AVX512 and up. */
void ek_attention_head_at(int isa, const float *q, int ld, int kv_off, int L,
                          int d, float scale, float *out, int ldo, float *p0,
                          float *ws);

/* For the bf16 / int8 compute dtypes: with AVX512_BF16 (isa >=
 * EK_ISA_AVX512_BF16) and an even d, the head's Q, K, V and probabilities
 * are rounded to bf16 and multiplied with f32 sums (twice the f32 kernel's
 * arithmetic rate); otherwise this is ek_attention_head_at.  Softmax stays
 * f32 and p0 gets the f32 probabilities. */
void ek_attention_head_lowp(int isa, const float *q, int ld, int kv_off, int L,
                            int d, float scale, float *out, int ldo, float *p0,
                            float *ws);

/* Whether ek_attention_head_lowp_bf16in runs at this ISA level for a head
 * size d (AVX512_BF16 and an even d: where ek_attention_head_lowp rounds
 * Q, K and V to bf16 itself). */
int ek_attention_bf16in_ok(int isa, int d);

/* ek_attention_head_lowp on Q, K, V stored as bf16 (round to nearest
 * even of the f32 values, row stride ld and kv_off in bf16 elements): the
 * same bits as ek_attention_head_lowp on the f32 values, half the reads.
 * Only where ek_attention_bf16in_ok. */
void ek_attention_head_lowp_bf16in(const uint16_t *q, int ld, int kv_off, int L, int d, float scale, float *out,
                                   int ldo, float *p0, float *ws);

/* The portable C kernel (what machines without AVX-512 run); exposed so
 * the tests can check it on machines that have AVX-512. */
void ek_attention_head_generic(const float *q, int ld, int kv_off, int L,
                               int d, float scale, float *out, int ldo,
                               float *p0, float *ws);

#endif
