/* compute/vmath.h — small math kernels written so the compiler can vectorize the
 * loops that call them (glibc's expf is a scalar call the vectorizer cannot
 * touch without -ffast-math, which we do not use: it would also reorder the
 * sums we need to be deterministic).  Internal to embedkit. */
#ifndef EK_COMPUTE_VMATH_H
#define EK_COMPUTE_VMATH_H

#include <stdint.h>
#include <string.h>

/* e^x for x <= 88, relative error ~2 ulp; inputs below -87 give ~e^-87
 * (softmax only needs x <= 0, where that is far below any sum's ulp).
 * Cody-Waite reduction x = k ln2 + r, |r| <= ln2/2, then a degree-7 Taylor
 * polynomial (truncation < 5e-9 relative) and 2^k built in the exponent. */
static inline float ek_vexpf(float x) {
    x = x < -87.0f ? -87.0f : x;
    x = x > 88.0f ? 88.0f : x;
    /* Round x*log2(e) to nearest with the 1.5*2^23 trick (exact in f32). */
    const float shifter = 12582912.0f;
    float kf = (x * 1.44269504088896341f + shifter) - shifter;
    float r = x - kf * 0.693145751953125f;  /* ln2 high part, exact k*hi */
    r = r - kf * 1.428606765330187e-06f;     /* ln2 low part */
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t bits = ((int32_t)kf + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return p * scale;
}

#endif
