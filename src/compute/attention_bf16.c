/* compute/attention_bf16.c — one attention head with bf16 products, for the
 * bf16 and int8 compute dtypes (see ek_attention_head_lowp in attention.h).
 *
 * VDPBF16PS multiplies pairs of bf16 values and adds both products to an
 * f32 lane, so operands are stored as pairs along the summed dimension:
 * keys as kt[c / 2][j] = (k[j][c], k[j][c + 1]) for the scores, values as
 * vt[j / 2][c] = (v[j][c], v[j + 1][c]) for P.V, and query rows and
 * probability rows as broadcast pairs.  Blocking follows the f32 kernel
 * (QB query rows against 32 keys or 32 value columns); softmax is the f32
 * one.  Each output depends only on its own sequence, in a fixed order. */
#include "compute/attention_avx512.h"

#if EK_HAVE_AVX512_KERNELS

#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#define QB EK_ATT_QB
#define TGT __attribute__((target("avx512f,avx512bw,avx512bf16")))

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); }

/* out[i] = (x[2i], x[2i + 1]) in bf16 for 2i < n (zero past n, all zero
 * when x is NULL), for i < pad(n) / 2: a bf16 vector of consecutive
 * elements, read as 32-bit lanes, is exactly the pairs VDPBF16PS takes. */
TGT static void to_pairs(const float *x, int n, uint32_t *out) {
    int np = (int)ek_att_pad((size_t)n) / 2;
    for (int i = 0; i < np; i += 16) {
        int c = 2 * i, left = n - c;
        __mmask16 lo = left >= 16 ? 0xffff : left > 0 ? tail_mask(left) : 0;
        __mmask16 hi = left >= 32 ? 0xffff : left > 16 ? tail_mask(left - 16) : 0;
        if (!x) lo = hi = 0;
        __m512 a = _mm512_maskz_loadu_ps(lo, x ? x + c : x), b = _mm512_maskz_loadu_ps(hi, x ? x + c + 16 : x);
        __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a);
        if (np - i >= 16)
            _mm512_storeu_si512(out + i, v);
        else
            _mm512_mask_storeu_epi32(out + i, tail_mask(np - i), v);
    }
}

/* sc[b][j0 + 16 v + l] = scale * q_b . k_(j0 + 16 v + l), NV blocks of 16. */
#define SCORE_TILE(NV)                                                              \
    do {                                                                            \
        __m512 acc[QB][NV];                                                         \
        for (int b = 0; b < QB; b++)                                                \
            for (int v = 0; v < NV; v++) acc[b][v] = _mm512_setzero_ps();           \
        for (int c2 = 0; c2 < d2; c2++) {                                           \
            const uint32_t *kc = kt + (size_t)c2 * Lp + j0;                         \
            __m512i kv[NV];                                                         \
            for (int v = 0; v < NV; v++) kv[v] = _mm512_load_si512(kc + 16 * v);   \
            for (int b = 0; b < QB; b++) {                                          \
                __m512i qv = _mm512_set1_epi32((int)qp[b * dh + c2]);               \
                for (int v = 0; v < NV; v++)                                        \
                    acc[b][v] = _mm512_dpbf16_ps(acc[b][v], (__m512bh)qv,           \
                                                 (__m512bh)kv[v]);                  \
            }                                                                       \
        }                                                                           \
        for (int b = 0; b < QB; b++)                                                \
            for (int v = 0; v < NV; v++)                                            \
                _mm512_store_ps(sc + b * Lp + j0 + 16 * v,                          \
                                _mm512_mul_ps(acc[b][v], vscale));                  \
    } while (0)

/* out rows (first nb) = P . V for NV * 16 value columns from c0. */
#define VALUE_TILE(NV)                                                              \
    do {                                                                            \
        __m512 acc[QB][NV];                                                         \
        for (int b = 0; b < QB; b++)                                                \
            for (int v = 0; v < NV; v++) acc[b][v] = _mm512_setzero_ps();           \
        for (int j2 = 0; j2 < L2; j2++) {                                           \
            const uint32_t *vj = vt + (size_t)j2 * dp + c0;                         \
            __m512i vv[NV];                                                         \
            for (int v = 0; v < NV; v++) vv[v] = _mm512_load_si512(vj + 16 * v);   \
            for (int b = 0; b < QB; b++) {                                          \
                __m512i pv = _mm512_set1_epi32((int)pb[b * Lh + j2]);               \
                for (int v = 0; v < NV; v++)                                        \
                    acc[b][v] = _mm512_dpbf16_ps(acc[b][v], (__m512bh)pv,           \
                                                 (__m512bh)vv[v]);                  \
            }                                                                       \
        }                                                                           \
        for (int v = 0; v < NV; v++) {                                              \
            int col = c0 + 16 * v, n = d - col < 16 ? d - col : 16;                 \
            for (int b = 0; b < nb; b++)                                            \
                _mm512_mask_storeu_ps(o + (size_t)b * ldo + col, tail_mask(n),      \
                                      acc[b][v]);                                   \
        }                                                                           \
    } while (0)

TGT void ek_attention_head_bf16(const float *q, int ld, int kv_off, int L, int d,
                                float scale, float *out, int ldo, float *p0,
                                float *ws) {
    /* Workspace (32-bit words), within the f32 kernels' layout size:
     * kt [d/2][Lp], vt [Lp/2][dp], scores [QB][Lp] f32, pb [QB][Lp/2],
     * qp [QB][dp/2]. */
    const size_t Lp = ek_att_pad((size_t)L), dp = ek_att_pad((size_t)d);
    const int d2 = d / 2, dh = (int)dp / 2, Lh = (int)Lp / 2, L2 = (L + 1) / 2;
    uint32_t *kt = (uint32_t *)ws, *vt = kt + (size_t)d2 * Lp;
    float *sc = (float *)(vt + (size_t)Lh * dp);
    uint32_t *pb = (uint32_t *)(sc + QB * Lp), *qp = pb + (size_t)QB * Lh;
    const float *keys = q + kv_off, *vals = q + 2 * (size_t)kv_off;
    const __m512 vscale = _mm512_set1_ps(scale);

    /* Keys: each row's pairs converted as a vector (into the still unused
     * score rows), then scattered to kt's columns. */
    uint32_t *tmp = (uint32_t *)sc;
    for (size_t j = 0; j < Lp; j++) {
        to_pairs((int)j < L ? keys + j * ld : NULL, d, tmp);
        for (int c2 = 0; c2 < d2; c2++) kt[(size_t)c2 * Lp + j] = tmp[c2];
    }
    /* Values: rows j and j + 1 converted together, then interleaved. */
    const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                           22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int j2 = 0; j2 < Lh; j2++) {
        int j = 2 * j2;
        const float *r0 = j < L ? vals + (size_t)j * ld : NULL, *r1 = j + 1 < L ? vals + (size_t)(j + 1) * ld : NULL;
        uint32_t *row = vt + (size_t)j2 * dp;
        for (int c = 0; c < (int)dp; c += 16) {
            __mmask16 m = d - c >= 16 ? 0xffff : tail_mask(d - c);
            __m512 a = _mm512_maskz_loadu_ps(r0 ? m : 0, r0 ? r0 + c : r0);
            __m512 b = _mm512_maskz_loadu_ps(r1 ? m : 0, r1 ? r1 + c : r1);
            /* 16-bit lanes: a0..a15 then b0..b15; interleave to (a0, b0)... */
            __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm512_store_si512(row + c, _mm512_permutexvar_epi16(inter, ab));
        }
    }

    for (int i0 = 0; i0 < L; i0 += QB) {
        int nb = L - i0 < QB ? L - i0 : QB;
        for (int b = 0; b < QB; b++)
            to_pairs(b < nb ? q + (size_t)(i0 + b) * ld : NULL, d, qp + b * dh);
        size_t j0 = 0;
        for (; j0 + 32 <= Lp; j0 += 32) SCORE_TILE(2);
        if (j0 < Lp) SCORE_TILE(1);
        for (int b = 0; b < nb; b++) ek_att_softmax16(sc + b * Lp, L);
        if (p0 && i0 == 0) memcpy(p0, sc, sizeof(float) * (size_t)L);
        /* Probabilities as pairs along the keys; zero past L and for the
         * rows past the sequence (their outputs are dropped). */
        for (int b = 0; b < QB; b++) to_pairs(b < nb ? sc + b * Lp : NULL, L, pb + b * Lh);
        float *o = out + (size_t)i0 * ldo;
        int c0 = 0;
        for (; c0 + 32 <= (int)dp; c0 += 32) VALUE_TILE(2);
        if (c0 < (int)dp) VALUE_TILE(1);
    }
}

#endif
