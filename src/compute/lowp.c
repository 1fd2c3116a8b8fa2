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

/* GELU(x) = x * Phi(x), Phi the standard normal CDF, as a piecewise
 * polynomial: 32 intervals of width 1/2 over [-8, 8] (x clamped there:
 * Phi(-8) ~ 6e-16, 1 - Phi(8) ~ 6e-16), degree 5 in the interval's local
 * coordinate u in [-1/2, 1/2] (Chebyshev interpolation, coefficients
 * rounded to f32, made by tools/ref/make_gelu_coef.py; |error| < 6e-8 on
 * Phi, so < 5e-7 on GELU for |x| <= 8).
 * No division and no exp: the AVX-512 kernel reads a coefficient for 16
 * lanes with one two-table permute.  u is exact: 2x and its floor are
 * exact, and so is floor + 1/2.  Coefficients [degree][interval]. */
static const float phi_coef[6][32] = {
    {4.604364375e-15f, 2.086708763e-13f, 7.398564400e-12f, 2.053311132e-10f, 4.463467818e-09f, 7.606136876e-08f, 1.017160116e-06f, 1.068887377e-05f, 8.841829549e-05f, 5.770265125e-04f, 2.979762387e-03f, 1.222446468e-02f, 4.005914554e-02f, 1.056497768e-01f, 2.266273797e-01f, 4.012936950e-01f, 5.987063050e-01f, 7.733726501e-01f, 8.943502307e-01f, 9.599408507e-01f, 9.877755642e-01f, 9.970202446e-01f, 9.994229674e-01f, 9.999116063e-01f, 9.999893308e-01f, 9.999989867e-01f, 9.999999404e-01f, 1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f},
    {1.809627955e-14f, 7.693989760e-13f, 2.547732164e-11f, 6.570404221e-10f, 1.319664999e-08f, 2.064269751e-07f, 2.514772177e-06f, 2.385938387e-05f, 1.762979518e-04f, 1.014524023e-03f, 4.546780605e-03f, 1.586982422e-02f, 4.313866049e-02f, 9.132454544e-02f, 1.505687237e-01f, 1.933340579e-01f, 1.933340579e-01f, 1.505687237e-01f, 9.132454544e-02f, 4.313866049e-02f, 1.586982422e-02f, 4.546780605e-03f, 1.014524023e-03f, 1.762979518e-04f, 2.385938387e-05f, 2.514772177e-06f, 2.064269751e-07f, 1.319665088e-08f, 6.570417543e-10f, 2.547901473e-11f, 7.724948610e-13f, 2.115691452e-14f},
    {3.435321689e-14f, 1.373826617e-12f, 4.253537800e-11f, 1.019032525e-09f, 1.887641154e-08f, 2.700847404e-07f, 2.980740192e-06f, 2.532546569e-05f, 1.652064675e-04f, 8.241967298e-04f, 3.125980031e-03f, 8.927320130e-03f, 1.887387410e-02f, 2.853859961e-02f, 2.822997794e-02f, 1.208232995e-02f, -1.208232995e-02f, -2.822997794e-02f, -2.853859961e-02f, -1.887387410e-02f, -8.927320130e-03f, -3.125980031e-03f, -8.241967298e-04f, -1.652064675e-04f, -2.532546569e-05f, -2.980740192e-06f, -2.700847404e-07f, -1.887640977e-08f, -1.019028417e-09f, -4.252775909e-11f, -1.368386849e-12f, -3.079018635e-14f},
    {4.417664083e-14f, 1.643384972e-12f, 4.711149179e-11f, 1.039120789e-09f, 1.759807766e-08f, 2.282173455e-07f, 2.258007498e-06f, 1.695780338e-05f, 9.594553558e-05f, 4.042284563e-04f, 1.243310049e-03f, 2.686370164e-03f, 3.707177006e-03f, 2.140196739e-03f, -2.744835103e-03f, -7.551855873e-03f, -7.551855873e-03f, -2.744835103e-03f, 2.140196739e-03f, 3.707177006e-03f, 2.686370164e-03f, 1.243310049e-03f, 4.042284563e-04f, 9.594553558e-05f, 1.695780338e-05f, 2.258007498e-06f, 2.282173170e-07f, 1.759807233e-08f, 1.039104025e-09f, 4.708506154e-11f, 1.598161273e-12f, 4.119163151e-15f},
    {4.900119142e-14f, 1.654962192e-12f, 4.289528455e-11f, 8.508259097e-10f, 1.286685070e-08f, 1.476167029e-07f, 1.275831778e-06f, 8.221873941e-06f, 3.886779814e-05f, 1.309833169e-04f, 2.964055166e-04f, 3.777763632e-04f, 1.697393782e-05f, -8.512795903e-04f, -1.415945240e-03f, -7.282627630e-04f, 7.282627630e-04f, 1.415945240e-03f, 8.512795903e-04f, -1.697393782e-05f, -3.777763632e-04f, -2.964055166e-04f, -1.309833169e-04f, -3.886779814e-05f, -8.221873941e-06f, -1.275831778e-06f, -1.476166887e-07f, -1.286684892e-08f, -8.508336258e-10f, -4.292432035e-11f, -1.668495528e-12f, -4.991210082e-14f},
    {3.426208631e-14f, 1.080385130e-12f, 2.595672635e-11f, 4.730663083e-10f, 6.501817307e-09f, 6.683586662e-08f, 5.076579441e-07f, 2.794712145e-06f, 1.077413890e-05f, 2.700676669e-05f, 3.455863043e-05f, -1.519807211e-05f, -1.341728203e-04f, -1.847257518e-04f, -3.601285016e-06f, 2.619821753e-04f, 2.619821753e-04f, -3.601285016e-06f, -1.847257518e-04f, -1.341728203e-04f, -1.519807211e-05f, 3.455863043e-05f, 2.700676669e-05f, 1.077413981e-05f, 2.794712373e-06f, 5.076581147e-07f, 6.683598031e-08f, 6.501853278e-09f, 4.731255943e-10f, 2.604731361e-11f, 1.225350008e-12f, 1.592365833e-13f},
};

/* x clamped to [-8, 8] (NaN goes to -8; x itself then makes it NaN),
 * k = interval in [0, 31], u = 2 x - (floor(2 x) + 1/2). */
INLINE float phi_pw(float x, int fma) {
    float xc = x > -8.0f ? x : -8.0f;
    xc = xc < 8.0f ? xc : 8.0f;
    float t = 2.0f * xc;
    int i = (int)t;                 /* truncation, then down to the floor */
    i -= t < (float)i;
    i = i < 15 ? i : 15;            /* x = 8: the last interval at u = 1/2 */
    float u = t - ((float)i + 0.5f);
    int k = i + 16;
    float p = phi_coef[5][k];
    p = MADD(p, u, phi_coef[4][k]);
    p = MADD(p, u, phi_coef[3][k]);
    p = MADD(p, u, phi_coef[2][k]);
    p = MADD(p, u, phi_coef[1][k]);
    p = MADD(p, u, phi_coef[0][k]);
    return p;
}

INLINE float gelu(float x, int fma) { return x * phi_pw(x, fma); }

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
        float *o = mode == EK_EPI_GELU_QUANT || mode == EK_EPI_STORE_BF16 ? a->tmp : a->out + (size_t)r * N;
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
        } else if (mode == EK_EPI_STORE_BF16) {
            to_bf16_body(o, 1, N, N, (uint16_t *)a->out + (size_t)r * 2 * N);
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

/* AVX-512: the same arithmetic as the C bodies with FMA (so the same bits as
 * a vectorized epilogue_body(.., 1) would give), written with intrinsics:
 * the C max reductions stay scalar (no -ffast-math), and the GELU
 * coefficients come from two-table permutes instead of gathers.  Tails are
 * masked. */
#include <immintrin.h>

#define TGT512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))

TGT512 static inline __mmask16 tail16(int n) { return n >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << n) - 1u); }

TGT512 static inline __m512 abs16(__m512 v) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}

/* q[c] = round(x[c] * inv) + 128 (round to nearest even, as round_ne). */
TGT512 static inline void quant_row16(const float *x, int n, float m, uint8_t *q, float *rs) {
    float inv = m > 0.0f ? 127.0f / m : 0.0f;
    *rs = m > 0.0f ? m / 127.0f : 1.0f;
    const __m512 vinv = _mm512_set1_ps(inv);
    const __m512i off = _mm512_set1_epi32(128);
    for (int c = 0; c < n; c += 16) {
        __mmask16 k = tail16(n - c);
        __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + c), vinv)), off);
        _mm_mask_storeu_epi8(q + c, k, _mm512_cvtepi32_epi8(v));
    }
}

TGT512 static float absmax16(const float *x, int n) {
    __m512 m = _mm512_setzero_ps();
    for (int c = 0; c < n; c += 16) m = _mm512_max_ps(m, abs16(_mm512_maskz_loadu_ps(tail16(n - c), x + c)));
    return _mm512_reduce_max_ps(m);
}

TGT512 static void to_bf16_avx512(const float *x, int rows, int n, int ldx, uint16_t *y) {
    to_bf16_body(x, rows, n, ldx, y);
}

TGT512 static void quant_u8_avx512(const float *x, int rows, int n, int ldx, uint8_t *q, float *rs) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (size_t)r * ldx;
        quant_row16(xr, n, absmax16(xr, n), q + (size_t)r * n, rs + r);
    }
}

/* x * Phi(x) for 16 lanes: phi_pw with the coefficient rows as two-table
 * permutes (index bit 4 picks the upper 16 intervals). */
TGT512 static inline __m512 gelu16(__m512 x, const __m512 *tab) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-8.0f)), _mm512_set1_ps(8.0f));
    __m512 t = _mm512_mul_ps(xc, _mm512_set1_ps(2.0f));
    __m512 fl = _mm512_min_ps(_mm512_roundscale_ps(t, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC),
                              _mm512_set1_ps(15.0f));
    __m512 u = _mm512_sub_ps(t, _mm512_add_ps(fl, _mm512_set1_ps(0.5f)));
    __m512i k = _mm512_add_epi32(_mm512_cvttps_epi32(fl), _mm512_set1_epi32(16));
    __m512 p = _mm512_permutex2var_ps(tab[10], k, tab[11]);
    p = _mm512_fmadd_ps(p, u, _mm512_permutex2var_ps(tab[8], k, tab[9]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutex2var_ps(tab[6], k, tab[7]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutex2var_ps(tab[4], k, tab[5]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutex2var_ps(tab[2], k, tab[3]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutex2var_ps(tab[0], k, tab[1]));
    return _mm512_mul_ps(x, p);
}

/* v = (acc - 128 colsum) * (rs * wscale) + bias for 16 columns from n. */
TGT512 static inline __m512 dequant16(const ek_epi_args *a, const int32_t *acc, __m512 vrs, int n, __mmask16 k) {
    __m512i s = _mm512_sub_epi32(_mm512_maskz_loadu_epi32(k, acc + n),
                                 _mm512_slli_epi32(_mm512_maskz_loadu_epi32(k, a->colsum + n), 7));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(vrs, _mm512_maskz_loadu_ps(k, a->wscale + n)));
    return _mm512_add_ps(v, a->bias ? _mm512_maskz_loadu_ps(k, a->bias + n) : _mm512_setzero_ps());
}

/* STORE_BF16 (reached only where the CPU has AVX512_BF16): each 16
 * columns' bf16 overwrite bytes of acc that this row has read already. */
__attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma"))) static void
store_bf16_avx512(const ek_epi_args *a, int r0, int rows) {
    const int N = a->N;
    for (int r = r0; r < r0 + rows; r++) {
        const int32_t *acc = a->acc + (size_t)r * N;
        const __m512 vrs = _mm512_set1_ps(a->rs[r]);
        uint16_t *o = (uint16_t *)a->out + (size_t)r * 2 * N;
        for (int n = 0; n < N; n += 16) {
            __mmask16 k = tail16(N - n);
            __m256i h = (__m256i)_mm512_cvtneps_pbh(dequant16(a, acc, vrs, n, k));
            _mm256_mask_storeu_epi16(o + n, k, h);
        }
    }
}

TGT512 static void epilogue_avx512(const ek_epi_args *a, int r0, int rows, int mode) {
    const int N = a->N;
    if (mode == EK_EPI_STORE_BF16) {
        store_bf16_avx512(a, r0, rows);
        return;
    }
    __m512 tab[12];
    if (mode == EK_EPI_GELU_QUANT)
        for (int d = 0; d < 6; d++) {
            tab[2 * d] = _mm512_loadu_ps(phi_coef[d]);
            tab[2 * d + 1] = _mm512_loadu_ps(phi_coef[d] + 16);
        }
    for (int r = r0; r < r0 + rows; r++) {
        const int32_t *acc = a->acc + (size_t)r * N;
        const __m512 vrs = _mm512_set1_ps(a->rs[r]);
        if (mode == EK_EPI_GELU_QUANT) {
            /* GELU into the row scratch, tracking max |.|, then quantize. */
            float *o = a->tmp;
            __m512 m = _mm512_setzero_ps();
            for (int n = 0; n < N; n += 16) {
                __mmask16 k = tail16(N - n);
                __m512 g = gelu16(dequant16(a, acc, vrs, n, k), tab);
                _mm512_mask_storeu_ps(o + n, k, g);
                m = _mm512_mask_max_ps(m, k, m, abs16(g));
            }
            quant_row16(o, N, _mm512_reduce_max_ps(m), a->q + (size_t)r * N, a->rs_out + r);
        } else {
            float *o = a->out + (size_t)r * N;
            for (int n = 0; n < N; n += 16) {
                __mmask16 k = tail16(N - n);
                __m512 v = dequant16(a, acc, vrs, n, k);
                if (mode == EK_EPI_ADD) v = _mm512_add_ps(_mm512_maskz_loadu_ps(k, o + n), v);
                _mm512_mask_storeu_ps(o + n, k, v);
            }
        }
    }
}

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
