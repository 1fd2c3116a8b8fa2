/* kernels/common.cl - helpers every kernel file uses: work-group sums and
 * maxima over local memory.  Work-group sizes are powers of two (the host
 * picks them), which the tree reductions rely on. */

float ek_wg_sum(float v, __local float *tmp) {
    const int l = get_local_id(0), n = get_local_size(0);
    tmp[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s >>= 1) {
        if (l < s) tmp[l] += tmp[l + s];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = tmp[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

float ek_wg_max(float v, __local float *tmp) {
    const int l = get_local_id(0), n = get_local_size(0);
    tmp[l] = v;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int s = n / 2; s > 0; s >>= 1) {
        if (l < s) tmp[l] = fmax(tmp[l], tmp[l + s]);
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    float r = tmp[0];
    barrier(CLK_LOCAL_MEM_FENCE);
    return r;
}

/* Exact GELU, 0.5 x (1 + erf(x / sqrt 2)), as BERT's "gelu". */
float ek_gelu(float x) { return 0.5f * x * (1.0f + erf(x * 0.70710678118654752f)); }

float ek_act(float v, int act) {
    switch (act) {
    case 1: return tanh(v);
    case 2: return v > 0.0f ? v : 0.0f;
    case 3: return ek_gelu(v);
    case 4: return 1.0f / (1.0f + exp(-v));
    default: return v;
    }
}
