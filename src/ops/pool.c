/* ops/pool.c — sentence-transformers' Pooling module for one unpadded
 * sequence.  Each mode mirrors the PyTorch code of
 * sentence_transformers.models.Pooling with an attention mask that is 1 for
 * tokens t >= mask_from (include_prompt=false zeroes the prompt tokens) and
 * that has no padding (sequences here are never padded). */
#include <math.h>
#include <string.h>

#include "embedkit.h"
#include "ops/ops.h"

/* Weighted sums for mean, mean_sqrt_len_tokens, weightedmean and attention:
 * w(t) is 1, t + 1 (1-based position in the whole sequence) or weights[t].
 * Accumulated in double (sequences can be thousands of tokens and this runs
 * once per sentence), over column chunks so the workspace fits on the stack
 * for any H and the op stays allocation-free. */
#define CHUNK 256

static void pool_chunked(int mode, const float *h, int L, int H, int from,
                         const float *weights, float *out) {
    double acc[CHUNK];
    for (int c0 = 0; c0 < H; c0 += CHUNK) {
        int n = H - c0 < CHUNK ? H - c0 : CHUNK;
        for (int c = 0; c < n; c++) acc[c] = 0.0;
        double wsum = 0.0;
        for (int t = from; t < L; t++) {
            double w = mode == EK_POOL_WEIGHTED_MEAN ? (double)(t + 1)
                       : mode == EK_POOL_ATTENTION   ? (double)weights[t]
                                                     : 1.0;
            const float *ht = h + (size_t)t * H + c0;
            for (int c = 0; c < n; c++) acc[c] += w * ht[c];
            wsum += w;
        }
        double denom;
        switch (mode) {
        case EK_POOL_MEAN_SQRT_LEN:
            denom = sqrt(wsum > 1e-9 ? wsum : 1e-9);
            break;
        case EK_POOL_ATTENTION:
            /* Renormalised weights: a zero total leaves a zero vector. */
            denom = wsum != 0.0 ? wsum : 1.0;
            break;
        default: /* mean, weightedmean: torch.clamp(sum_mask, min=1e-9) */
            denom = wsum > 1e-9 ? wsum : 1e-9;
            break;
        }
        for (int c = 0; c < n; c++) out[c0 + c] = (float)(acc[c] / denom);
    }
}

void ek_op_pool(int mode, const float *h, int L, int H, int mask_from,
                const float *weights, float *out) {
    int from = mask_from < 0 ? 0 : mask_from;
    if (from > L) from = L;
    switch (mode) {
    case EK_POOL_CLS:
        /* sentence-transformers takes the first unmasked token: token 0,
         * or with include_prompt=false the token right after the prompt
         * (measured against sentence-transformers 6.2). */
        if (L > 0) memcpy(out, h + (size_t)(from < L ? from : L - 1) * H, sizeof(float) * (size_t)H);
        else memset(out, 0, sizeof(float) * (size_t)H);
        return;
    case EK_POOL_LAST_TOKEN:
        if (L > 0) memcpy(out, h + (size_t)(L - 1) * H, sizeof(float) * (size_t)H);
        else memset(out, 0, sizeof(float) * (size_t)H);
        return;
    case EK_POOL_MAX:
        /* ST sets masked tokens to -1e9 and takes the max over all tokens. */
        for (int c = 0; c < H; c++) out[c] = from > 0 || L == 0 ? -1e9f : -INFINITY;
        for (int t = from; t < L; t++) {
            const float *ht = h + (size_t)t * H;
            for (int c = 0; c < H; c++) out[c] = ht[c] > out[c] ? ht[c] : out[c];
        }
        return;
    case EK_POOL_MEAN:
    case EK_POOL_MEAN_SQRT_LEN:
    case EK_POOL_WEIGHTED_MEAN:
    case EK_POOL_ATTENTION:
        pool_chunked(mode, h, L, H, from, weights, out);
        return;
    default:
        memset(out, 0, sizeof(float) * (size_t)H);
        return;
    }
}
