/* compute/attention_avx512.h — internal to the attention kernel: the
 * workspace layout both code paths share and the AVX-512 path. */
#ifndef EK_COMPUTE_ATTENTION_AVX512_H
#define EK_COMPUTE_ATTENTION_AVX512_H

#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define EK_HAVE_AVX512_KERNELS 1
#else
#define EK_HAVE_AVX512_KERNELS 0
#endif

#define EK_ATT_QB 4  /* query rows per block */
#define EK_ATT_VL 16 /* floats per vector; tiles are padded to this */
#define EK_ATT_BF16_QB 8 /* query rows per block in the bf16 kernel */

static inline size_t ek_att_pad(size_t n) {
    return (n + EK_ATT_VL - 1) / EK_ATT_VL * EK_ATT_VL;
}

/* Workspace: kt [d][Lp] (keys transposed), vt [Lp][dp] (values), scores
 * [QB][Lp], query block [QB][d]; Lp = pad(L), dp = pad(d).  Fills kt and vt
 * (zero padding included) from the head's key / value columns. */
void ek_attention_tiles(const float *k, const float *v, int ld, int L, int d,
                        float *ws);

#if EK_HAVE_AVX512_KERNELS
/* In-place softmax of x[0..n) with AVX-512 (the CPU must have it), and its
 * first part: x[i] = e^(x[i] - max x), returning their sum. */
void ek_att_softmax16(float *x, int n);
float ek_att_exp_sum16(float *x, int n);
/* The bf16 variant (attention_bf16.c): Q, K, V and the probabilities
 * rounded to bf16, products summed in f32 by VDPBF16PS; softmax in f32.
 * Needs AVX512_BF16 and an even d; ek_attention_scratch sizes its workspace
 * too. */
void ek_attention_head_bf16(const float *q, int ld, int kv_off, int L, int d,
                            float scale, float *out, int ldo, float *p0,
                            float *ws);
/* The same on bf16 Q, K, V (ld, kv_off in bf16 elements). */
void ek_attention_head_bf16in(const uint16_t *q, int ld, int kv_off, int L, int d, float scale, float *out,
                              int ldo, float *p0, float *ws);
void ek_attention_head_avx512(const float *q, int ld, int kv_off, int L, int d,
                              float scale, float *out, int ldo, float *p0,
                              float *ws);
#endif

#endif
