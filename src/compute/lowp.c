/* compute/lowp.c — bf16 conversion, int8 quantization and the int8
 * epilogue (see lowp.h).  The bodies are branch-free loops that the
 * compiler vectorizes; each is instantiated for the portable target and,
 * on x86-64, for AVX2 and AVX-512 through target attributes, so the
 * release build stays baseline x86-64 and still uses wide vectors. */
#include "compute/lowp.h"

#include <math.h>
#include <string.h>

#define INLINE static inline __attribute__((always_inline))

/* round-to-nearest-even of |v| < 2^22 without a libm call (vectorizes). */
INLINE float round_ne(float v) {
    const float magic = 12582912.0f; /* 1.5 * 2^23 */
    return (v + magic) - magic;
}

/* a * b + c: one fused instruction in the AVX2 / AVX-512 instances (fma is
 * a constant there), two roundings in the portable one, where fmaf would be
 * a library call.  The ISA is fixed per model, so results stay
 * batch-invariant. */
#define MADD(a, b, c) (fma ? __builtin_fmaf((a), (b), (c)) : (a) * (b) + (c))

/* e^z for z in [-88, 0] (what erf needs): 2^n * e^r, |r| <= ln2/2,
 * degree-6 Taylor polynomial; relative error < 2e-7. */
INLINE float exp_neg(float z, int fma) {
    z = z < -87.0f ? -87.0f : z;
    float n = round_ne(z * 1.44269504f);
    float r = MADD(n, -1.42860677e-06f, MADD(n, -0.693145752f, z));
    float p = MADD(r, 1.0f / 720, 1.0f / 120);
    p = MADD(p, r, 1.0f / 24);
    p = MADD(p, r, 1.0f / 6);
    p = MADD(p, r, 0.5f);
    p = MADD(p, r, 1.0f);
    p = MADD(p, r, 1.0f);
    int32_t bits = ((int32_t)n + 127) << 23;
    float s;
    memcpy(&s, &bits, 4);
    return p * s;
}

/* erf by Abramowitz & Stegun 7.1.26 (absolute error < 1.5e-7). */
INLINE float erf_as(float x, int fma) {
    float a = fabsf(x);
    float t = 1.0f / MADD(0.3275911f, a, 1.0f);
    float poly = MADD(t, 1.061405429f, -1.453152027f);
    poly = MADD(poly, t, 1.421413741f);
    poly = MADD(poly, t, -0.284496736f);
    poly = MADD(poly, t, 0.254829592f);
    poly *= t;
    float y = MADD(-poly, exp_neg(-a * a, fma), 1.0f);
    return copysignf(y, x);
}

INLINE float gelu(float x, int fma) {
    float hx = 0.5f * x;
    return MADD(hx, erf_as(x * 0.70710678118654752f, fma), hx);
}

float ek_lowp_gelu(float x) { return gelu(x, 0); }

INLINE void to_bf16_body(const float *x, int rows, int n, int ldx, uint16_t *y) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        uint16_t *yr = y + (size_t)r * n;
        for (int c = 0; c < n; c++) {
            uint32_t b;
            memcpy(&b, &xr[c], 4);
            b += 0x7fffu + ((b >> 16) & 1u);
            yr[c] = (uint16_t)(b >> 16);
        }
    }
}

/* max |x[c]|: 16 running maxima by position (a plain max reduction does
 * not vectorize without -ffast-math), then the 16 and the tail. */
INLINE float row_absmax(const float *x, int n) {
    float acc[16] = {0};
    int c = 0;
    for (; c + 16 <= n; c += 16)
        for (int l = 0; l < 16; l++) {
            float a = fabsf(x[c + l]);
            acc[l] = a > acc[l] ? a : acc[l];
        }
    float m = 0.0f;
    for (int l = 0; l < 16; l++) m = acc[l] > m ? acc[l] : m;
    for (; c < n; c++) m = fabsf(x[c]) > m ? fabsf(x[c]) : m;
    return m;
}

INLINE void quant_row(const float *x, int n, uint8_t *q, float *rs) {
    float m = row_absmax(x, n);
    float inv = m > 0.0f ? 127.0f / m : 0.0f;
    *rs = m > 0.0f ? m / 127.0f : 1.0f;
    for (int c = 0; c < n; c++) q[c] = (uint8_t)((int32_t)round_ne(x[c] * inv) + 128);
}

INLINE void quant_u8_body(const float *x, int rows, int n, int ldx, uint8_t *q, float *rs) {
    for (int r = 0; r < rows; r++) quant_row(x + (size_t)r * ldx, n, q + (size_t)r * n, rs + r);
}

INLINE void epilogue_body(const ek_epi_args *a, int r0, int rows, int mode, int fma) {
    const int N = a->N;
    for (int r = r0; r < r0 + rows; r++) {
        const int32_t *acc = a->acc + (size_t)r * N;
        const float rs = a->rs[r];
        float *o = mode == EK_EPI_GELU_QUANT ? a->tmp : a->out + (size_t)r * N;
        if (mode == EK_EPI_ADD) {
            for (int n = 0; n < N; n++)
                o[n] += (float)(acc[n] - 128 * a->colsum[n]) * (rs * a->wscale[n]) + (a->bias ? a->bias[n] : 0.0f);
        } else {
            for (int n = 0; n < N; n++)
                o[n] = (float)(acc[n] - 128 * a->colsum[n]) * (rs * a->wscale[n]) + (a->bias ? a->bias[n] : 0.0f);
        }
        if (mode == EK_EPI_GELU_QUANT) {
            for (int n = 0; n < N; n++) o[n] = gelu(o[n], fma);
            quant_row(o, N, a->q + (size_t)r * N, a->rs_out + r);
        }
    }
}

#define INSTANCE(SUF, ATTR, FMA)                                                                         \
    ATTR static void to_bf16_##SUF(const float *x, int rows, int n, int ldx, uint16_t *y) {            \
        to_bf16_body(x, rows, n, ldx, y);                                                             \
    }                                                                                                 \
    ATTR static void quant_u8_##SUF(const float *x, int rows, int n, int ldx, uint8_t *q, float *rs) { \
        quant_u8_body(x, rows, n, ldx, q, rs);                                                        \
    }                                                                                                 \
    ATTR static void epilogue_##SUF(const ek_epi_args *a, int r0, int rows, int mode) {               \
        epilogue_body(a, r0, rows, mode, FMA);                                                        \
    }

INSTANCE(generic, , 0)
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_X86_INSTANCES 1
INSTANCE(avx2, __attribute__((target("avx2,fma"))), 1)
INSTANCE(avx512, __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma"))), 1)
#endif

ek_lowp_kernels ek_lowp_select(ek_isa isa) {
    ek_lowp_kernels k = {to_bf16_generic, quant_u8_generic, epilogue_generic, EK_ISA_GENERIC};
#ifdef HAVE_X86_INSTANCES
    if (isa >= EK_ISA_AVX512) {
        k = (ek_lowp_kernels){to_bf16_avx512, quant_u8_avx512, epilogue_avx512, EK_ISA_AVX512};
    } else if (isa >= EK_ISA_AVX2) {
        k = (ek_lowp_kernels){to_bf16_avx2, quant_u8_avx2, epilogue_avx2, EK_ISA_AVX2};
    }
#else
    (void)isa;
#endif
    return k;
}
