/* kernels/pool.cl - sentence-transformers' Pooling over packed sequences
 * and L2 normalisation.  Modes and masking as ops/pool.c (tokens before
 * mask_from excluded; cls takes the first included token; max uses -1e9
 * for masked positions), one work-item per (column, sequence).  Sums are
 * compensated (Kahan) in f32, standing in for the CPU's double: GPUs may
 * lack fp64. */

__kernel void ek_pool(const int mode, __global const float *h, const int H,
                      __global const int *seq_start, const int n_seq,
                      const int mask_from, __global const float *weights,
                      __global float *out, const int out_stride,
                      const int out_off) {
    const int c = get_global_id(0), s = get_global_id(1);
    if (c >= H || s >= n_seq) return;
    const int start = seq_start[s], L = seq_start[s + 1] - start;
    int from = mask_from < 0 ? 0 : mask_from;
    if (from > L) from = L;
    __global const float *hs = h + (size_t)start * H + c;
    __global float *o = out + (size_t)s * out_stride + out_off + c;
    if (mode == 0 || mode == 5) { /* cls, lasttoken */
        if (L == 0) { *o = 0.0f; return; }
        int t = mode == 0 ? (from < L ? from : L - 1) : L - 1;
        *o = hs[(size_t)t * H];
        return;
    }
    if (mode == 1) { /* max */
        float m = from > 0 || L == 0 ? -1e9f : -INFINITY;
        for (int t = from; t < L; t++) m = fmax(m, hs[(size_t)t * H]);
        *o = m;
        return;
    }
    float acc = 0.0f, comp = 0.0f, wsum = 0.0f, wcomp = 0.0f;
    for (int t = from; t < L; t++) {
        float w = mode == 4 ? (float)(t + 1) : mode == 6 ? weights[start + t] : 1.0f;
        float y = w * hs[(size_t)t * H] - comp;
        float u = acc + y;
        comp = (u - acc) - y;
        acc = u;
        float yw = w - wcomp;
        float uw = wsum + yw;
        wcomp = (uw - wsum) - yw;
        wsum = uw;
    }
    float denom;
    if (mode == 3) denom = sqrt(fmax(wsum, 1e-9f));
    else if (mode == 6) denom = wsum != 0.0f ? wsum : 1.0f;
    else denom = fmax(wsum, 1e-9f);
    *o = acc / denom;
}

/* Row r of x [rows][n] divided by max(||x_r||, 1e-12) (torch F.normalize). */
__kernel void ek_l2_normalize(__global float *x, const int n,
                              __local float *tmp) {
    const int r = get_group_id(0), l = get_local_id(0), k = get_local_size(0);
    __global float *xr = x + (size_t)r * n;
    float s = 0.0f;
    for (int c = l; c < n; c += k) s = fma(xr[c], xr[c], s);
    const float norm = sqrt(ek_wg_sum(s, tmp));
    const float inv = 1.0f / fmax(norm, 1e-12f);
    for (int c = l; c < n; c += k) xr[c] *= inv;
}
