/* compute/attention_avx512.c — the attention kernel of attention.c in AVX-512
 * intrinsics, compiled for AVX-512 whatever the build's baseline and chosen
 * at run time.  The portable C version cannot reach the FMA units here: at
 * the baseline ISA (SSE2, no FMA) a MiniLM batch spent more time in
 * attention than in all its GEMMs.  Same tiling and the same fixed summation
 * order per element as the C path (per machine only one of them runs). */
#include "compute/attention_avx512.h"

#if EK_HAVE_AVX512_KERNELS

#include <immintrin.h>
#include <math.h>
#include <string.h>

#define QB EK_ATT_QB
#define TGT __attribute__((target("avx512f")))

/* e^x per lane, the same reduction and polynomial as ek_vexpf, with the 2^k
 * scaling done by vscalefps. */
TGT static inline __m512 exp16(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-87.0f));
    x = _mm512_min_ps(x, _mm512_set1_ps(88.0f));
    __m512 k = _mm512_roundscale_ps(
        _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
        _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(0.693145751953125f), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(1.428606765330187e-06f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040.0f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, k);
}

static inline __mmask16 tail_mask(int n) {
    return (__mmask16)((1u << n) - 1u);
}

/* x[i] = e^(x[i] - max x) in place; returns their sum (16 running sums by
 * position, then the tail). */
TGT float ek_att_exp_sum16(float *x, int n) {
    __m512 m = _mm512_set1_ps(-INFINITY);
    int i = 0;
    for (; i + 16 <= n; i += 16) m = _mm512_max_ps(m, _mm512_loadu_ps(x + i));
    __mmask16 tm = tail_mask(n - i);
    if (tm) m = _mm512_mask_max_ps(m, tm, m, _mm512_maskz_loadu_ps(tm, x + i));
    __m512 vm = _mm512_set1_ps(_mm512_reduce_max_ps(m));
    __m512 sum = _mm512_setzero_ps();
    for (i = 0; i + 16 <= n; i += 16) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(x + i), vm));
        _mm512_storeu_ps(x + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (tm) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tm, x + i), vm));
        _mm512_mask_storeu_ps(x + i, tm, e);
        sum = _mm512_mask_add_ps(sum, tm, sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/* In-place softmax of x[0..n). */
TGT void ek_att_softmax16(float *x, int n) {
    int i;
    __mmask16 tm = tail_mask(n % 16);
    __m512 inv = _mm512_set1_ps(1.0f / ek_att_exp_sum16(x, n));
    for (i = 0; i + 16 <= n; i += 16)
        _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), inv));
    if (tm)
        _mm512_mask_storeu_ps(x + i, tm,
                              _mm512_mul_ps(_mm512_maskz_loadu_ps(tm, x + i), inv));
}

/* Scores of the QB query rows qb against NV * 16 keys from column j0. */
#define SCORE_TILE(NV)                                                          \
    do {                                                                        \
        __m512 acc[QB][NV];                                                     \
        for (int b = 0; b < QB; b++)                                            \
            for (int v = 0; v < NV; v++) acc[b][v] = _mm512_setzero_ps();       \
        for (int c = 0; c < d; c++) {                                           \
            const float *kc = kt + (size_t)c * Lp + j0;                         \
            __m512 kv[NV];                                                      \
            for (int v = 0; v < NV; v++) kv[v] = _mm512_load_ps(kc + 16 * v);   \
            for (int b = 0; b < QB; b++) {                                      \
                __m512 qv = _mm512_set1_ps(qb[b * d + c]);                      \
                for (int v = 0; v < NV; v++)                                    \
                    acc[b][v] = _mm512_fmadd_ps(qv, kv[v], acc[b][v]);          \
            }                                                                   \
        }                                                                       \
        for (int b = 0; b < QB; b++)                                            \
            for (int v = 0; v < NV; v++)                                        \
                _mm512_store_ps(sc + b * Lp + j0 + 16 * v,                      \
                                _mm512_mul_ps(acc[b][v], vscale));              \
    } while (0)

/* out rows (first nb) = P (sc) . V for NV * 16 value columns from c0. */
#define VALUE_TILE(NV)                                                          \
    do {                                                                        \
        __m512 acc[QB][NV];                                                     \
        for (int b = 0; b < QB; b++)                                            \
            for (int v = 0; v < NV; v++) acc[b][v] = _mm512_setzero_ps();       \
        for (int j = 0; j < L; j++) {                                           \
            const float *vj = vt + (size_t)j * dp + c0;                         \
            __m512 vv[NV];                                                      \
            for (int v = 0; v < NV; v++) vv[v] = _mm512_load_ps(vj + 16 * v);   \
            for (int b = 0; b < QB; b++) {                                      \
                __m512 pb = _mm512_set1_ps(sc[b * Lp + j]);                     \
                for (int v = 0; v < NV; v++)                                    \
                    acc[b][v] = _mm512_fmadd_ps(pb, vv[v], acc[b][v]);          \
            }                                                                   \
        }                                                                       \
        for (int v = 0; v < NV; v++) {                                          \
            int col = c0 + 16 * v, n = d - col < 16 ? d - col : 16;             \
            for (int b = 0; b < nb; b++)                                        \
                _mm512_mask_storeu_ps(o + (size_t)b * ldo + col, tail_mask(n),  \
                                      acc[b][v]);                               \
        }                                                                       \
    } while (0)

TGT void ek_attention_head_avx512(const float *q, int ld, int kv_off, int L,
                                  int d, float scale, float *out, int ldo,
                                  float *p0, float *ws) {
    const size_t Lp = ek_att_pad((size_t)L), dp = ek_att_pad((size_t)d);
    float *kt = ws, *vt = kt + (size_t)d * Lp, *sc = vt + Lp * dp;
    float *qb = sc + QB * Lp;
    const __m512 vscale = _mm512_set1_ps(scale);
    ek_attention_tiles(q + kv_off, q + 2 * (size_t)kv_off, ld, L, d, ws);

    for (int i0 = 0; i0 < L; i0 += QB) {
        int nb = L - i0 < QB ? L - i0 : QB;
        for (int b = 0; b < QB; b++) {
            if (b < nb)
                memcpy(qb + b * d, q + (size_t)(i0 + b) * ld, sizeof(float) * (size_t)d);
            else
                memset(qb + b * d, 0, sizeof(float) * (size_t)d);
        }
        size_t j0 = 0;
        for (; j0 + 32 <= Lp; j0 += 32) SCORE_TILE(2);
        if (j0 < Lp) SCORE_TILE(1);
        for (int b = 0; b < nb; b++) ek_att_softmax16(sc + b * Lp, L);
        if (p0 && i0 == 0) memcpy(p0, sc, sizeof(float) * (size_t)L);
        float *o = out + (size_t)i0 * ldo;
        int c0 = 0;
        for (; c0 + 32 <= (int)dp; c0 += 32) VALUE_TILE(2);
        if (c0 < (int)dp) VALUE_TILE(1);
    }
}

#endif
