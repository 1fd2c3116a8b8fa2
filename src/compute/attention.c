/* compute/attention.c — one head of scaled dot-product attention over one
 * sequence (see attention.h).
 *
 * Heads are small (L x d with d = 32..64), so a oneDNN call per head costs
 * more in setup than in arithmetic.  Instead K is transposed and V copied
 * into padded tiles, and blocks of QB query rows are computed against 16
 * keys (or 16 value columns) at a time with the accumulators in registers:
 * loops the compiler vectorizes at any ISA, without reductions, so every
 * score and output element is summed over the head dimension / keys in a
 * fixed order whatever the sequence's place in the batch. */
#include "compute/attention.h"

#include <string.h>

#include "compute/attention_avx512.h"
#include "compute/cpu.h"
#include "ops/ops.h"

#define QB EK_ATT_QB /* query rows per block */
#define VL EK_ATT_VL /* keys or value columns per inner step */

static size_t pad(size_t n) { return ek_att_pad(n); }

size_t ek_attention_scratch(int max_len, int d) {
    size_t Lp = pad((size_t)(max_len > 0 ? max_len : 1)), dp = pad((size_t)d);
    /* kt [d][Lp] + vt [Lp][dp] + scores [QB][Lp] + query block [QB][d] */
    size_t f32 = (size_t)d * Lp + Lp * dp + QB * Lp + pad((size_t)QB * d);
    /* The bf16 kernel (32-bit words): kt [d/2][Lp] + vt [Lp/2][dp] +
     * scores [BQ][Lp] + probability pairs [BQ][Lp/2] + queries [Lp][dp/2]. */
    const size_t BQ = EK_ATT_BF16_QB;
    size_t bf16 = (size_t)(d + 1) / 2 * Lp + Lp / 2 * dp + BQ * Lp + BQ * (Lp / 2) + Lp * (dp / 2);
    return f32 > bf16 ? f32 : bf16;
}

/* sc[b][j0 + l] = scale * (qb[b] . kt[:, j0 + l]) for one block of 16 keys. */
static void score_block(const float *qb, const float *kt, int d, size_t Lp,
                        int j0, float scale, float *sc) {
    float acc[QB][VL];
    memset(acc, 0, sizeof acc);
    for (int c = 0; c < d; c++) {
        const float *kc = kt + (size_t)c * Lp + j0;
        for (int b = 0; b < QB; b++) {
            float qv = qb[b * d + c];
            for (int l = 0; l < VL; l++) acc[b][l] += qv * kc[l];
        }
    }
    for (int b = 0; b < QB; b++)
        for (int l = 0; l < VL; l++) sc[b * Lp + j0 + l] = acc[b][l] * scale;
}

/* acc[b][l] = sum_j p[b][j] vt[j][c0 + l], stored for the first nb rows and
 * the columns below d. */
static void value_block(const float *sc, size_t Lp, const float *vt, size_t dp,
                        int L, int c0, int d, int nb, float *out, int ldo) {
    float acc[QB][VL];
    memset(acc, 0, sizeof acc);
    for (int j = 0; j < L; j++) {
        const float *vj = vt + (size_t)j * dp + c0;
        for (int b = 0; b < QB; b++) {
            float pb = sc[b * Lp + j];
            for (int l = 0; l < VL; l++) acc[b][l] += pb * vj[l];
        }
    }
    int nc = d - c0 < VL ? d - c0 : VL;
    for (int b = 0; b < nb; b++)
        memcpy(out + (size_t)b * ldo + c0, acc[b], sizeof(float) * (size_t)nc);
}

void ek_attention_tiles(const float *k, const float *v, int ld, int L, int d,
                        float *ws) {
    const size_t Lp = pad((size_t)L), dp = pad((size_t)d);
    float *kt = ws, *vt = kt + (size_t)d * Lp;
    /* Transposed keys, zero in the padding columns so padded scores are 0
     * (they are never read: softmax and P.V stop at L). */
    for (int c = 0; c < d; c++) {
        float *row = kt + (size_t)c * Lp;
        for (int j = 0; j < L; j++) row[j] = k[(size_t)j * ld + c];
        for (size_t j = (size_t)L; j < Lp; j++) row[j] = 0.0f;
    }
    for (int j = 0; j < L; j++) {
        memcpy(vt + (size_t)j * dp, v + (size_t)j * ld, sizeof(float) * (size_t)d);
        for (size_t c = (size_t)d; c < dp; c++) vt[(size_t)j * dp + c] = 0.0f;
    }
}

void ek_attention_head_generic(const float *q, int ld, int kv_off, int L,
                               int d, float scale, float *out, int ldo,
                               float *p0, float *ws) {
    const size_t Lp = pad((size_t)L), dp = pad((size_t)d);
    float *kt = ws, *vt = kt + (size_t)d * Lp, *sc = vt + Lp * dp;
    float *qb = sc + QB * Lp;
    const float *k = q + kv_off, *v = q + 2 * (size_t)kv_off;

    ek_attention_tiles(k, v, ld, L, d, ws);

    for (int i0 = 0; i0 < L; i0 += QB) {
        int nb = L - i0 < QB ? L - i0 : QB;
        /* Rows past the sequence end compute on zeros and are dropped. */
        for (int b = 0; b < QB; b++) {
            if (b < nb)
                memcpy(qb + b * d, q + (size_t)(i0 + b) * ld, sizeof(float) * (size_t)d);
            else
                memset(qb + b * d, 0, sizeof(float) * (size_t)d);
        }
        for (size_t j0 = 0; j0 < Lp; j0 += VL)
            score_block(qb, kt, d, Lp, (int)j0, scale, sc);
        for (int b = 0; b < nb; b++) ek_op_softmax(sc + b * Lp, L);
        if (p0 && i0 == 0) memcpy(p0, sc, sizeof(float) * (size_t)L);
        for (size_t c0 = 0; c0 < dp; c0 += VL)
            value_block(sc, Lp, vt, dp, L, (int)c0, d, nb,
                        out + (size_t)i0 * ldo, ldo);
    }
}

void ek_attention_head(const float *q, int ld, int kv_off, int L, int d,
                       float scale, float *out, int ldo, float *p0, float *ws) {
#if EK_HAVE_AVX512_KERNELS
    /* One ISA per machine, so a sequence always takes the same path. */
    if (__builtin_cpu_supports("avx512f")) {
        ek_attention_head_avx512(q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
        return;
    }
#endif
    ek_attention_head_generic(q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
}

void ek_attention_head_at(int isa, const float *q, int ld, int kv_off, int L,
                          int d, float scale, float *out, int ldo, float *p0,
                          float *ws) {
#if EK_HAVE_AVX512_KERNELS
    if (isa >= EK_ISA_AVX512) {
        ek_attention_head_avx512(q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
        return;
    }
#else
    (void)isa;
#endif
    ek_attention_head_generic(q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
}

void ek_attention_head_lowp(int isa, const float *q, int ld, int kv_off, int L,
                            int d, float scale, float *out, int ldo, float *p0,
                            float *ws) {
#if EK_HAVE_AVX512_KERNELS
    if (isa >= EK_ISA_AVX512_BF16 && d % 2 == 0) {
        ek_attention_head_bf16(q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
        return;
    }
#endif
    ek_attention_head_at(isa, q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
}

int ek_attention_bf16in_ok(int isa, int d) {
#if EK_HAVE_AVX512_KERNELS
    return isa >= EK_ISA_AVX512_BF16 && d % 2 == 0;
#else
    (void)isa, (void)d;
    return 0;
#endif
}

void ek_attention_head_lowp_bf16in(const uint16_t *q, int ld, int kv_off, int L, int d, float scale, float *out,
                                   int ldo, float *p0, float *ws) {
#if EK_HAVE_AVX512_KERNELS
    ek_attention_head_bf16in(q, ld, kv_off, L, d, scale, out, ldo, p0, ws);
#else
    (void)q, (void)ld, (void)kv_off, (void)L, (void)d, (void)scale, (void)out, (void)ldo, (void)p0, (void)ws;
#endif
}
