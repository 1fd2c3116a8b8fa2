/* ops/ops.c — the element-wise and per-row tensor operations of the encoder
 * (LayerNorm, bias + GELU, softmax) and of the sentence-transformers head
 * (Dense, L2 normalise).  Pooling lives in pool.c.
 *
 * Reductions use 16 partial sums indexed by position (not by address), so the
 * compiler can vectorize them without -ffast-math and the result of a row
 * never depends on where the row sits in memory — part of what keeps a
 * sequence's embedding independent of the rest of its batch. */
#include "ops/ops.h"

#include <math.h>

#include "compute/vmath.h"

#define LANES 16

#define INLINE static inline __attribute__((always_inline))

/* Sum of x[0..n) in a fixed order: 16 interleaved partial sums, then the
 * partials left to right, then the tail. */
INLINE float row_sum(const float *x, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[i + l];
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += acc[l];
    for (; i < n; i++) s += x[i];
    return s;
}

/* Sum of (x[i] - mean)^2, same order as row_sum. */
INLINE float row_sqdev(const float *x, int n, float mean) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            float d = x[i + l] - mean;
            acc[l] += d * d;
        }
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += acc[l];
    for (; i < n; i++) {
        float d = x[i] - mean;
        s += d * d;
    }
    return s;
}

static float row_dot(const float *a, const float *b, int n) {
    float acc[LANES] = {0};
    int i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += a[i + l] * b[i + l];
    float s = 0.0f;
    for (int l = 0; l < LANES; l++) s += acc[l];
    for (; i < n; i++) s += a[i] * b[i];
    return s;
}

INLINE void add_layernorm_body(float *x, const float *res, int rows, int n, const float *gamma, const float *beta,
                               float eps) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * n;
        if (res) {
            const float *rr = res + (size_t)r * n;
            for (int i = 0; i < n; i++) xr[i] += rr[i];
        }
        /* Two passes (mean, then squared deviations) as torch does: the
         * one-pass E[x^2] - E[x]^2 form loses digits when |mean| >> std. */
        float mean = row_sum(xr, n) / (float)n;
        float var = row_sqdev(xr, n, mean) / (float)n;
        float rstd = 1.0f / sqrtf(var + eps);
        for (int i = 0; i < n; i++)
            xr[i] = (xr[i] - mean) * rstd * gamma[i] + beta[i];
    }
}

/* The same body compiled for AVX-512 where the CPU has it: the partial sums
 * are per position and the build contracts nothing (-ffp-contract=off), so
 * both give the same bits; this one uses 16-float vectors. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("avx512f"))) static void add_layernorm_avx512(float *x, const float *res, int rows, int n,
                                                                    const float *gamma, const float *beta,
                                                                    float eps) {
    add_layernorm_body(x, res, rows, n, gamma, beta, eps);
}
#endif

void ek_op_add_layernorm(float *x, const float *res, int rows, int n,
                         const float *gamma, const float *beta, float eps) {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (__builtin_cpu_supports("avx512f")) {
        add_layernorm_avx512(x, res, rows, n, gamma, beta, eps);
        return;
    }
#endif
    add_layernorm_body(x, res, rows, n, gamma, beta, eps);
}

float ek_op_gelu(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
}

void ek_op_bias_act(float *x, const float *bias, int rows, int n, int gelu) {
    for (int r = 0; r < rows; r++) {
        float *xr = x + (size_t)r * n;
        if (bias)
            for (int i = 0; i < n; i++) xr[i] += bias[i];
        /* The forward pass fuses GELU into oneDNN's matmul; this scalar erff
         * path serves the head and the tests, where exactness beats speed. */
        if (gelu)
            for (int i = 0; i < n; i++) xr[i] = ek_op_gelu(xr[i]);
    }
}

void ek_op_softmax(float *x, int n) {
    if (n <= 0) return;
    float m = x[0];
    for (int i = 1; i < n; i++) m = x[i] > m ? x[i] : m;
    for (int i = 0; i < n; i++) x[i] = ek_vexpf(x[i] - m);
    float inv = 1.0f / row_sum(x, n);
    for (int i = 0; i < n; i++) x[i] *= inv;
}

static float activate(float v, int act) {
    switch (act) {
    case 1: return tanhf(v);
    case 2: return v > 0.0f ? v : 0.0f;
    case 3: return ek_op_gelu(v);
    case 4: return 1.0f / (1.0f + expf(-v));
    default: return v;
    }
}

void ek_op_dense(const float *w, const float *b, int out, int in, int act,
                 const float *x, float *y) {
    for (int o = 0; o < out; o++) {
        float v = row_dot(w + (size_t)o * in, x, in) + (b ? b[o] : 0.0f);
        y[o] = activate(v, act);
    }
}

void ek_op_l2_normalize(float *v, int n) {
    /* The norm in double: one vector per sentence, and it keeps huge or tiny
     * components from overflowing or flushing in the squares. */
    double ss = 0.0;
    for (int i = 0; i < n; i++) ss += (double)v[i] * v[i];
    double norm = sqrt(ss);
    double denom = norm > 1e-12 ? norm : 1e-12;
    for (int i = 0; i < n; i++) v[i] = (float)(v[i] / denom);
}
