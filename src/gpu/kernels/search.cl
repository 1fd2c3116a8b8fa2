/* kernels/search.cl - cosine similarity against a resident matrix and
 * top-k.  Cosine as ek_similarity: dot * (1/||q||) * (1/||x||), where a
 * zero vector's inverse norm is 0 so it scores 0 with everything.
 * Many queries go through ek_gemm_nt then ek_cos_scale; one query uses
 * ek_cos_1n, which reads each row once (memory bound). */

/* inv[r] = 1 / ||x_r||, 0 for a zero row; one work-group per row. */
__kernel void ek_inv_norm(__global const float *x, const int d,
                          __global float *inv, __local float *tmp) {
    const int r = get_group_id(0), l = get_local_id(0), n = get_local_size(0);
    __global const float *xr = x + (size_t)r * d;
    float s = 0.0f;
    for (int c = l; c < d; c += n) s = fma(xr[c], xr[c], s);
    s = ek_wg_sum(s, tmp);
    if (l == 0) inv[r] = s > 0.0f ? 1.0f / sqrt(s) : 0.0f;
}

/* scores[i][j] *= qinv[i] * xinv[j]; global (cols, rows). */
__kernel void ek_cos_scale(__global float *scores, const int cols,
                           const int rows, __global const float *qinv,
                           __global const float *xinv) {
    const int j = get_global_id(0), i = get_global_id(1);
    if (j >= cols || i >= rows) return;
    scores[(size_t)i * cols + j] *= qinv[i] * xinv[j];
}

/* One query against rows: 8 work-items per row read it in 8 interleaved
 * lanes (neighbouring items read neighbouring floats), then add the lanes
 * in order.  Local size 64 = 8 rows per work-group. */
__kernel __attribute__((reqd_work_group_size(64, 1, 1)))
void ek_cos_1n(__global const float *q, const float qinv,
               __global const float *x, const int d, const int rows,
               __global const float *xinv, __global float *out) {
    __local float part[64];
    const int l = get_local_id(0), lane = l & 7;
    const int r = get_group_id(0) * 8 + (l >> 3);
    float s = 0.0f;
    if (r < rows) {
        __global const float *xr = x + (size_t)r * d;
        for (int c = lane; c < d; c += 8) s = fma(q[c], xr[c], s);
    }
    part[l] = s;
    barrier(CLK_LOCAL_MEM_FENCE);
    if (lane == 0 && r < rows) {
        float t = 0.0f;
        for (int i = 0; i < 8; i++) t += part[l + i];
        out[r] = t * qinv * xinv[r];
    }
}

/* Top-k candidates per chunk: work-item (chunk c, query i) scans scores
 * [i][c*chunk, (c+1)*chunk) and keeps the k best in cand (score desc, index
 * asc on ties) by insertion.  The host merges the chunks' candidates. */
__kernel void ek_topk_chunk(__global const float *scores, const int cols,
                            const int chunk, const int k, const int nchunks,
                            __global float *cand_s, __global int *cand_i) {
    const int c = get_global_id(0), i = get_global_id(1);
    if (c >= nchunks) return;
    __global const float *row = scores + (size_t)i * cols;
    __global float *cs = cand_s + ((size_t)i * nchunks + c) * k;
    __global int *ci = cand_i + ((size_t)i * nchunks + c) * k;
    int n = 0;
    const int j0 = c * chunk, j1 = min(cols, j0 + chunk);
    for (int j = j0; j < j1; j++) {
        float v = row[j];
        if (n == k && !(v > cs[k - 1])) continue; /* ties keep the lower index */
        int p = n < k ? n++ : k - 1;
        while (p > 0 && v > cs[p - 1]) {
            cs[p] = cs[p - 1];
            ci[p] = ci[p - 1];
            p--;
        }
        cs[p] = v;
        ci[p] = j;
    }
    for (int p = n; p < k; p++) {
        cs[p] = -INFINITY;
        ci[p] = -1;
    }
}
