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
#include <math.h>
#include <stdint.h>
#include <string.h>

#define QB EK_ATT_BF16_QB
#define TGT __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))

static inline __mmask16 tail_mask(int n) { return (__mmask16)((1u << n) - 1u); }

/* out[i] = (x[2i], x[2i + 1]) in bf16 for 2i < n (zero past n, all zero
 * when x is NULL), for i < pad(n) / 2: a bf16 vector of consecutive
 * elements, read as 32-bit lanes, is exactly the pairs VDPBF16PS takes. */
TGT static inline __attribute__((always_inline)) void to_pairs(const float *x, int n, uint32_t *out) {
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

/* (x[c + 2i], x[c + 2i + 1]) as bf16 pairs for i < 16, zero from n on. */
TGT static inline __m512i pairs16(const float *x, int c, int n) {
    int left = n - c;
    __mmask16 lo = left >= 16 ? 0xffff : left > 0 ? tail_mask(left) : 0;
    __mmask16 hi = left >= 32 ? 0xffff : left > 16 ? tail_mask(left - 16) : 0;
    __m512 a = _mm512_maskz_loadu_ps(lo, x + c), b = _mm512_maskz_loadu_ps(hi, x + c + 16);
    return (__m512i)_mm512_cvtne2ps_pbh(b, a);
}

/* The same pairs from bf16 values (the bits pairs16 makes of their f32
 * originals): 32 of them, zero from n on. */
TGT static inline __m512i pairs16_bf(const uint16_t *x, int c, int n) {
    int left = n - c;
    __mmask32 m = left >= 32 ? 0xffffffffu : left > 0 ? (__mmask32)((1u << left) - 1u) : 0;
    return _mm512_maskz_loadu_epi16(m, x + c);
}

/* r[i][l] -> r[l][i] for a 16 x 16 block of 32-bit words: 32-bit and
 * 64-bit unpacks within 128-bit lanes, then two rounds of lane shuffles. */
TGT static inline void transpose16(__m512i r[16]) {
    __m512i t[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) {
        r[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        r[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        r[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 2; i++)
        for (int m = 0; m < 4; m++) {
            t[8 * i + m] = _mm512_shuffle_i32x4(r[8 * i + m], r[8 * i + 4 + m], 0x88);
            t[8 * i + 4 + m] = _mm512_shuffle_i32x4(r[8 * i + m], r[8 * i + 4 + m], 0xdd);
        }
    for (int m = 0; m < 8; m++) {
        r[m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0x88);
        r[8 + m] = _mm512_shuffle_i32x4(t[m], t[8 + m], 0xdd);
    }
}

/* ek_att_softmax16 of x[0..n) fused with to_pairs of the result into pb
 * (same operations, so the same bits): the f32 probabilities are written
 * back to x only when keep is set. */
TGT static void softmax_pairs(float *x, int n, int keep, uint32_t *pb) {
    __m512 inv = _mm512_set1_ps(1.0f / ek_att_exp_sum16(x, n));
    int np = (int)ek_att_pad((size_t)n) / 2;
    for (int p = 0; p < np; p += 16) {
        int c = 2 * p, left = n - c;
        __mmask16 lo = left >= 16 ? 0xffff : left > 0 ? tail_mask(left) : 0;
        __mmask16 hi = left >= 32 ? 0xffff : left > 16 ? tail_mask(left - 16) : 0;
        __m512 a = _mm512_mul_ps(_mm512_maskz_loadu_ps(lo, x + c), inv);
        __m512 b = _mm512_mul_ps(_mm512_maskz_loadu_ps(hi, x + c + 16), inv);
        if (keep) {
            _mm512_mask_storeu_ps(x + c, lo, a);
            _mm512_mask_storeu_ps(x + c + 16, hi, b);
        }
        __m512i v = (__m512i)_mm512_cvtne2ps_pbh(b, a);
        if (np - p >= 16)
            _mm512_storeu_si512(pb + p, v);
        else
            _mm512_mask_storeu_epi32(pb + p, tail_mask(np - p), v);
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

/* The kernel on f32 (qf) or bf16 (qh) Q, K, V: the same bf16 operands
 * either way, so the same bits. */
TGT static inline __attribute__((always_inline)) void head_body(const float *qf, const uint16_t *qh, int ld,
                                                                int kv_off, int L, int d, float scale, float *out,
                                                                int ldo, float *p0, float *ws) {
    /* Workspace (32-bit words; ek_attention_scratch covers it): kt
     * [d/2][Lp], vt [Lp/2][dp], scores [QB][Lp] f32, pb [QB][Lp/2], qa
     * [Lp][dp/2] (every query row's pairs, zero past L). */
    const size_t Lp = ek_att_pad((size_t)L), dp = ek_att_pad((size_t)d);
    const int d2 = d / 2, dh = (int)dp / 2, Lh = (int)Lp / 2, L2 = (L + 1) / 2;
    uint32_t *kt = (uint32_t *)ws, *vt = kt + (size_t)d2 * Lp;
    float *sc = (float *)(vt + (size_t)Lh * dp);
    uint32_t *pb = (uint32_t *)(sc + QB * Lp), *qa = pb + (size_t)QB * Lh;
    const float *keys = qh ? NULL : qf + kv_off, *vals = qh ? NULL : qf + 2 * (size_t)kv_off;
    const uint16_t *keysh = qh ? qh + kv_off : NULL, *valsh = qh ? qh + 2 * (size_t)kv_off : NULL;
    const __m512 vscale = _mm512_set1_ps(scale);

    /* Keys: blocks of 16 rows' pairs (16 pairs per row at a time),
     * transposed in registers into kt's columns; zero past L. */
    for (size_t j0 = 0; j0 < Lp; j0 += 16)
        for (int cb = 0; cb < d2; cb += 16) {
            __m512i r[16];
            for (int jj = 0; jj < 16; jj++)
                r[jj] = (int)j0 + jj >= L ? _mm512_setzero_si512()
                        : qh              ? pairs16_bf(keysh + (j0 + (size_t)jj) * ld, 2 * cb, d)
                                          : pairs16(keys + (j0 + (size_t)jj) * ld, 2 * cb, d);
            transpose16(r);
            int nc = d2 - cb < 16 ? d2 - cb : 16;
            for (int c = 0; c < nc; c++) _mm512_store_si512(kt + (size_t)(cb + c) * Lp + j0, r[c]);
        }
    /* Values: rows j and j + 1 converted together, then interleaved. */
    const __m512i inter = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7,
                                           22, 6, 21, 5, 20, 4, 19, 3, 18, 2, 17, 1, 16, 0);
    for (int j2 = 0; j2 < Lh; j2++) {
        int j = 2 * j2;
        uint32_t *row = vt + (size_t)j2 * dp;
        if (qh) {
            const uint16_t *h0 = j < L ? valsh + (size_t)j * ld : NULL;
            const uint16_t *h1 = j + 1 < L ? valsh + (size_t)(j + 1) * ld : NULL;
            for (int c = 0; c < (int)dp; c += 16) {
                __mmask16 m = d - c >= 16 ? 0xffff : tail_mask(d - c);
                __m256i a = _mm256_maskz_loadu_epi16(h0 ? m : 0, h0 ? h0 + c : h0);
                __m256i b = _mm256_maskz_loadu_epi16(h1 ? m : 0, h1 ? h1 + c : h1);
                __m512i ab = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
                _mm512_store_si512(row + c, _mm512_permutexvar_epi16(inter, ab));
            }
            continue;
        }
        const float *r0 = j < L ? vals + (size_t)j * ld : NULL, *r1 = j + 1 < L ? vals + (size_t)(j + 1) * ld : NULL;
        for (int c = 0; c < (int)dp; c += 16) {
            __mmask16 m = d - c >= 16 ? 0xffff : tail_mask(d - c);
            __m512 a = _mm512_maskz_loadu_ps(r0 ? m : 0, r0 ? r0 + c : r0);
            __m512 b = _mm512_maskz_loadu_ps(r1 ? m : 0, r1 ? r1 + c : r1);
            /* 16-bit lanes: a0..a15 then b0..b15; interleave to (a0, b0)... */
            __m512i ab = (__m512i)_mm512_cvtne2ps_pbh(b, a);
            _mm512_store_si512(row + c, _mm512_permutexvar_epi16(inter, ab));
        }
    }

    /* Queries: all rows' pairs up front (independent loads in flight,
     * rather than each block's rows when its scores need them). */
    for (size_t i = 0; i < Lp; i++)
        for (int c = 0; c < dh; c += 16) {
            __m512i v = (int)i >= L ? _mm512_setzero_si512()
                        : qh        ? pairs16_bf(qh + i * ld, 2 * c, d)
                                    : pairs16(qf + i * ld, 2 * c, d);
            if (dh - c >= 16)
                _mm512_storeu_si512(qa + i * dh + c, v);
            else
                _mm512_mask_storeu_epi32(qa + i * dh + c, tail_mask(dh - c), v);
        }

    for (int i0 = 0; i0 < L; i0 += QB) {
        int nb = L - i0 < QB ? L - i0 : QB;
        const uint32_t *qp = qa + (size_t)i0 * dh;
        size_t j0 = 0;
        for (; j0 + 32 <= Lp; j0 += 32) SCORE_TILE(2);
        if (j0 < Lp) SCORE_TILE(1);
        /* Probabilities as pairs along the keys; zero past L and for the
         * rows past the sequence (their outputs are dropped). */
        for (int b = 0; b < nb; b++) softmax_pairs(sc + b * Lp, L, p0 && i0 == 0 && b == 0, pb + b * Lh);
        for (int b = nb; b < QB; b++) to_pairs(NULL, L, pb + b * Lh);
        if (p0 && i0 == 0) memcpy(p0, sc, sizeof(float) * (size_t)L);
        float *o = out + (size_t)i0 * ldo;
        int c0 = 0;
        for (; c0 + 32 <= (int)dp; c0 += 32) VALUE_TILE(2);
        if (c0 < (int)dp) VALUE_TILE(1);
    }
}

TGT void ek_attention_head_bf16(const float *q, int ld, int kv_off, int L, int d,
                                float scale, float *out, int ldo, float *p0,
                                float *ws) {
    head_body(q, NULL, ld, kv_off, L, d, scale, out, ldo, p0, ws);
}

TGT void ek_attention_head_bf16in(const uint16_t *q, int ld, int kv_off, int L, int d, float scale, float *out,
                                  int ldo, float *p0, float *ws) {
    head_body(NULL, q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
}

#endif
