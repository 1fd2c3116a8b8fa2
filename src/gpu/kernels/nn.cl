/* kernels/nn.cl - the encoder's row-wise operations on packed sequences
 * (token r of the batch is row r, sequences back to back): embeddings +
 * LayerNorm, (residual +) LayerNorm, bias + activation, attention with the
 * sequence boundaries (and an optional key mask) as the mask, and the
 * head-mean of the first token's attention (EK_POOL_ATTENTION's weights).
 * One work-group per row for the reductions; local size a power of two. */

/* x[r] = LayerNorm(word[ids[r]] + type[types[r]] + pos[pos[r]]). */
__kernel void ek_embed_ln(__global float *x, const int H,
                          __global const int *ids, __global const int *types,
                          __global const int *pos, __global const float *word,
                          __global const float *type_emb,
                          __global const float *pos_emb,
                          __global const float *gamma,
                          __global const float *beta, const float eps,
                          __local float *tmp) {
    const int r = get_group_id(0), l = get_local_id(0), n = get_local_size(0);
    __global float *xr = x + (size_t)r * H;
    __global const float *we = word + (size_t)ids[r] * H;
    __global const float *te = type_emb + (size_t)types[r] * H;
    __global const float *pe = pos_emb + (size_t)pos[r] * H;
    float s = 0.0f;
    for (int c = l; c < H; c += n) {
        float v = (we[c] + te[c]) + pe[c];
        xr[c] = v;
        s += v;
    }
    const float mean = ek_wg_sum(s, tmp) / (float)H;
    float q = 0.0f;
    for (int c = l; c < H; c += n) {
        float d = xr[c] - mean;
        q += d * d;
    }
    const float rstd = 1.0f / sqrt(ek_wg_sum(q, tmp) / (float)H + eps);
    for (int c = l; c < H; c += n) xr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
}

/* x[r] = LayerNorm(x[r] (+ res[r] when has_res)), two passes as torch. */
__kernel void ek_layernorm(__global float *x, __global const float *res,
                           const int has_res, const int H,
                           __global const float *gamma,
                           __global const float *beta, const float eps,
                           __local float *tmp) {
    const int r = get_group_id(0), l = get_local_id(0), n = get_local_size(0);
    __global float *xr = x + (size_t)r * H;
    float s = 0.0f;
    for (int c = l; c < H; c += n) {
        float v = xr[c];
        if (has_res) {
            v += res[(size_t)r * H + c];
            xr[c] = v;
        }
        s += v;
    }
    const float mean = ek_wg_sum(s, tmp) / (float)H;
    float q = 0.0f;
    for (int c = l; c < H; c += n) {
        float d = xr[c] - mean;
        q += d * d;
    }
    const float rstd = 1.0f / sqrt(ek_wg_sum(q, tmp) / (float)H + eps);
    for (int c = l; c < H; c += n) xr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c];
}

/* x[r][c] = act(x[r][c] + bias[c]); global size rows * n (1-D). */
__kernel void ek_bias_act(__global float *x, __global const float *bias,
                          const int has_bias, const int n, const int total,
                          const int act) {
    const int i = get_global_id(0);
    if (i >= total) return;
    float v = x[i] + (has_bias ? bias[i % n] : 0.0f);
    x[i] = ek_act(v, act);
}

/* Attention of one query row r and one head h (work-group (r, h)).
 * qkv [R][3H]: query, key, value blocks of H columns; head h uses columns
 * h*d .. h*d+d-1 of each.  The keys are the rows of r's own sequence
 * (seq_of[r] indexes seq_start); with has_mask, keys whose mask is 0 are
 * excluded too (a row with every key masked gets zeros).  scores: local,
 * max_len floats.  ctx [R][H] receives softmax(q k^T * scale) v.  When
 * has_hp and r is its sequence's first row, hp[h * R + key row] receives
 * the probabilities (the weights of attention pooling). */
__kernel void ek_attention(__global const float *qkv, __global float *ctx,
                           __global const int *seq_of,
                           __global const int *seq_start,
                           __global const int *mask, const int has_mask,
                           const int R, const int H, const int d,
                           const float scale, __global float *hp,
                           const int has_hp, __local float *scores,
                           __local float *tmp) {
    const int r = get_group_id(0), h = get_group_id(1);
    const int l = get_local_id(0), n = get_local_size(0);
    const int s = seq_of[r], start = seq_start[s], L = seq_start[s + 1] - start;
    const size_t ld = 3 * (size_t)H;
    __global const float *q = qkv + (size_t)r * ld + (size_t)h * d;
    float m = -INFINITY;
    for (int t = l; t < L; t += n) {
        float v = -INFINITY;
        if (!has_mask || mask[start + t]) {
            __global const float *k = qkv + (size_t)(start + t) * ld + H + (size_t)h * d;
            float acc = 0.0f;
            for (int c = 0; c < d; c++) acc = fma(q[c], k[c], acc);
            v = acc * scale;
        }
        scores[t] = v;
        m = fmax(m, v);
    }
    m = ek_wg_max(m, tmp);
    float sum = 0.0f;
    for (int t = l; t < L; t += n) {
        float p = m == -INFINITY ? 0.0f : exp(scores[t] - m);
        scores[t] = p;
        sum += p;
    }
    sum = ek_wg_sum(sum, tmp);
    const float inv = sum > 0.0f ? 1.0f / sum : 0.0f;
    for (int t = l; t < L; t += n) {
        float p = scores[t] * inv;
        scores[t] = p;
        if (has_hp && r == start) hp[(size_t)h * R + start + t] = p;
    }
    barrier(CLK_LOCAL_MEM_FENCE);
    __global float *out = ctx + (size_t)r * H + (size_t)h * d;
    __global const float *v0 = qkv + (size_t)start * ld + 2 * (size_t)H + (size_t)h * d;
    if (d >= n) {
        for (int c = l; c < d; c += n) {
            float acc = 0.0f;
            for (int t = 0; t < L; t++) acc = fma(scores[t], v0[(size_t)t * ld + c], acc);
            out[c] = acc;
        }
        return;
    }
    /* d < n: parts = n / d items share a column, each summing every
     * parts-th key, then the parts are added in order. */
    const int parts = n / d, c = l % d, part = l / d;
    float acc = 0.0f;
    if (part < parts)
        for (int t = part; t < L; t += parts) acc = fma(scores[t], v0[(size_t)t * ld + c], acc);
    tmp[l] = acc;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (l < d) {
        float o = 0.0f;
        for (int p = 0; p < parts; p++) o += tmp[p * d + l];
        out[l] = o;
    }
}

/* w[r] = mean over heads of hp[h * R + r]. */
__kernel void ek_head_mean(__global const float *hp, __global float *w,
                           const int R, const int heads) {
    const int r = get_global_id(0);
    if (r >= R) return;
    float s = 0.0f;
    for (int h = 0; h < heads; h++) s += hp[(size_t)h * R + r];
    w[r] = s / (float)heads;
}
