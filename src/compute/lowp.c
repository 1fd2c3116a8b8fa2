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
 * polynomial: 16 intervals of width 1 over [-8, 8] (x clamped there:
 * Phi(-8) ~ 6e-16, 1 - Phi(8) ~ 6e-16), degree 5 in the interval's local
 * coordinate u in [-1/2, 1/2] (Chebyshev interpolation, coefficients
 * rounded to f32, made by tools/ref/make_gelu_coef.py; |error| < 1.5e-6 on
 * Phi and on GELU -- far below the int8 quantization step of GELU's output,
 * which this feeds).  No division and no exp: the AVX-512 kernel reads a
 * coefficient for 16 lanes with one single-table permute (VPERMPS; 32
 * intervals of 1/2 needed two-table permutes, each with a register copy,
 * for an accuracy int8 cannot use).  u is exact: x's floor is, and so is
 * floor + 1/2.  Coefficients [degree][interval]. */
static const float phi_coef[6][16] = {
    {3.625277636e-14f, 4.214213700e-11f, 1.927395843e-08f, 3.409088549e-06f, 2.327153488e-04f, 6.209409796e-03f, 6.680691242e-02f, 3.085389733e-01f, 6.914610267e-01f, 9.331930876e-01f, 9.937905669e-01f, 9.997673035e-01f, 9.999966025e-01f, 1.000000000e+00f, 1.000000000e+00f, 1.000000000e+00f},
    {2.473371172e-13f, 2.684671929e-10f, 1.078707186e-07f, 1.598856761e-05f, 8.726920350e-04f, 1.752817631e-02f, 1.295178682e-01f, 3.520651758e-01f, 3.520651758e-01f, 1.295178682e-01f, 1.752817631e-02f, 8.726920350e-04f, 1.598856761e-05f, 1.078707186e-07f, 2.684676648e-10f, 2.489225189e-13f},
    {6.031766341e-13f, 7.258805224e-10f, 2.757791719e-07f, 3.514299533e-05f, 1.520977821e-03f, 2.192874998e-02f, 9.715916216e-02f, 8.791267872e-02f, -8.791267872e-02f, -9.715916216e-02f, -2.192874998e-02f, -1.520977821e-03f, -3.514299533e-05f, -2.757791719e-07f, -7.258791901e-10f, -6.039613254e-13f},
    {1.962550131e-12f, 1.727046395e-09f, 5.125975804e-07f, 5.093392974e-05f, 1.635603141e-03f, 1.534627099e-02f, 2.696354501e-02f, -4.399685189e-02f, -4.399685189e-02f, 2.696354501e-02f, 1.534627099e-02f, 1.635603141e-03f, 5.093392974e-05f, 5.125975804e-07f, 1.727038734e-09f, 1.939240435e-12f},
    {7.167595510e-12f, 4.289195665e-09f, 8.846935771e-07f, 6.035714250e-05f, 1.243837760e-03f, 5.738813896e-03f, -6.299825385e-03f, -1.905465685e-02f, 1.905465685e-02f, 6.299825385e-03f, -5.738813896e-03f, -1.243837760e-03f, -6.035714250e-05f, -8.846936339e-07f, -4.289196998e-09f, -7.147470983e-12f},
    {8.587795405e-12f, 4.534737474e-09f, 7.914001117e-07f, 4.252233339e-05f, 5.860050442e-04f, 5.698156892e-04f, -5.662275478e-03f, 4.463111982e-03f, 4.463111982e-03f, -5.662275478e-03f, 5.698156892e-04f, 5.860050442e-04f, 4.252233339e-05f, 7.914001685e-07f, 4.534780995e-09f, 8.671664949e-12f},
};

/* x clamped to [-8, 8] (NaN goes to -8; x itself then makes it NaN),
 * k = interval in [0, 15], u = x - (floor(x) + 1/2). */
INLINE float phi_pw(float x, int fma) {
    float xc = x > -8.0f ? x : -8.0f;
    xc = xc < 8.0f ? xc : 8.0f;
    int i = (int)xc;                /* truncation, then down to the floor */
    i -= xc < (float)i;
    i = i < 7 ? i : 7;              /* x = 8: the last interval at u = 1/2 */
    float u = xc - ((float)i + 0.5f);
    int k = i + 8;
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

/* Full vectors load and store unmasked, only a row's tail masked: on Zen 4
 * a masked store (and a masked narrowing store, VPMOVDB to memory) was the
 * hottest instruction of the int8 epilogue even with every lane set.  Same
 * values either way. */
TGT512 static inline __m512 ld16(const float *p, int left) {
    return left >= 16 ? _mm512_loadu_ps(p) : _mm512_maskz_loadu_ps(tail16(left), p);
}
TGT512 static inline __m512i ld16i(const int32_t *p, int left) {
    return left >= 16 ? _mm512_loadu_si512(p) : _mm512_maskz_loadu_epi32(tail16(left), p);
}
TGT512 static inline void st16(float *p, __m512 v, int left) {
    if (left >= 16)
        _mm512_storeu_ps(p, v);
    else
        _mm512_mask_storeu_ps(p, tail16(left), v);
}

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
        __m512i v = _mm512_add_epi32(_mm512_cvtps_epi32(_mm512_mul_ps(ld16(x + c, n - c), vinv)), off);
        __m128i b = _mm512_cvtepi32_epi8(v);
        if (n - c >= 16)
            _mm_storeu_si128((__m128i *)(q + c), b);
        else
            _mm_mask_storeu_epi8(q + c, tail16(n - c), b);
    }
}

TGT512 static float absmax16(const float *x, int n) {
    __m512 m = _mm512_setzero_ps();
    for (int c = 0; c < n; c += 16) m = _mm512_max_ps(m, abs16(ld16(x + c, n - c)));
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

/* x * Phi(x) for 16 lanes: phi_pw with each coefficient row as a
 * single-table permute. */
TGT512 static inline __m512 gelu16(__m512 x, const __m512 *tab) {
    __m512 xc = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-8.0f)), _mm512_set1_ps(8.0f));
    __m512 fl = _mm512_min_ps(_mm512_roundscale_ps(xc, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC),
                              _mm512_set1_ps(7.0f));
    __m512 u = _mm512_sub_ps(xc, _mm512_add_ps(fl, _mm512_set1_ps(0.5f)));
    __m512i k = _mm512_add_epi32(_mm512_cvttps_epi32(fl), _mm512_set1_epi32(8));
    __m512 p = _mm512_permutexvar_ps(k, tab[5]);
    p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(k, tab[4]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(k, tab[3]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(k, tab[2]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(k, tab[1]));
    p = _mm512_fmadd_ps(p, u, _mm512_permutexvar_ps(k, tab[0]));
    return _mm512_mul_ps(x, p);
}

/* v = (acc - 128 colsum) * (rs * wscale) + bias for 16 columns from n. */
TGT512 static inline __m512 dequant16(const ek_epi_args *a, const int32_t *acc, __m512 vrs, int n, int left) {
    __m512i s = _mm512_sub_epi32(ld16i(acc + n, left), _mm512_slli_epi32(ld16i(a->colsum + n, left), 7));
    __m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(vrs, ld16(a->wscale + n, left)));
    return _mm512_add_ps(v, a->bias ? ld16(a->bias + n, left) : _mm512_setzero_ps());
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
            __m256i h = (__m256i)_mm512_cvtneps_pbh(dequant16(a, acc, vrs, n, N - n));
            if (N - n >= 16)
                _mm256_storeu_si256((__m256i *)(o + n), h);
            else
                _mm256_mask_storeu_epi16(o + n, tail16(N - n), h);
        }
    }
}

TGT512 static void epilogue_avx512(const ek_epi_args *a, int r0, int rows, int mode) {
    const int N = a->N;
    if (mode == EK_EPI_STORE_BF16) {
        store_bf16_avx512(a, r0, rows);
        return;
    }
    __m512 tab[6];
    if (mode == EK_EPI_GELU_QUANT)
        for (int d = 0; d < 6; d++) tab[d] = _mm512_loadu_ps(phi_coef[d]);
    for (int r = r0; r < r0 + rows; r++) {
        const int32_t *acc = a->acc + (size_t)r * N;
        const __m512 vrs = _mm512_set1_ps(a->rs[r]);
        if (mode == EK_EPI_GELU_QUANT) {
            /* GELU into the row scratch, tracking max |.|, then quantize. */
            float *o = a->tmp;
            __m512 m = _mm512_setzero_ps();
            for (int n = 0; n < N; n += 16) {
                __m512 g = gelu16(dequant16(a, acc, vrs, n, N - n), tab);
                st16(o + n, g, N - n);
                m = _mm512_mask_max_ps(m, tail16(N - n), m, abs16(g));
            }
            quant_row16(o, N, _mm512_reduce_max_ps(m), a->q + (size_t)r * N, a->rs_out + r);
        } else {
            float *o = a->out + (size_t)r * N;
            for (int n = 0; n < N; n += 16) {
                __m512 v = dequant16(a, acc, vrs, n, N - n);
                if (mode == EK_EPI_ADD) v = _mm512_add_ps(ld16(o + n, N - n), v);
                st16(o + n, v, N - n);
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
