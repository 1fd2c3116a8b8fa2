/* search/kern_avx2.c — the AVX2 + FMA + F16C kernels (Haswell, Zen 1 and
 * later).  Every function carries the target attribute, so the rest of the
 * library is built for baseline x86-64 and this code only runs after
 * ek_isa_cpu_level() said the CPU has these instructions. */
#include "search/kernels.h"

/* x86-64 only: elsewhere (aarch64) the scalar kernels are the only level. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#define T __attribute__((target("avx2,fma,f16c,popcnt")))

/* Lane mask for the last d % 8 floats (maskload reads nothing past them). */
T static inline __m256i tail_mask(size_t rem) {
    const __m256i idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32((int)rem), idx);
}

T static inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* Row loaders: 8 values of a row as floats, full or masked. */
T static inline __m256 ld_f32(const float *p) { return _mm256_loadu_ps(p); }
T static inline __m256 ldm_f32(const float *p, __m256i m) { return _mm256_maskload_ps(p, m); }
T static inline __m256 ld_f16(const uint16_t *p) {
    return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p));
}
T static inline __m256 ld_bf16(const uint16_t *p) {
    __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}
/* 16-bit tails are short (< 8 values): copy them to a zeroed buffer. */
T static inline __m256 ldm_f16(const uint16_t *p, size_t rem) {
    uint16_t b[8] = {0};
    memcpy(b, p, rem * sizeof *p);
    return ld_f16(b);
}
T static inline __m256 ldm_bf16(const uint16_t *p, size_t rem) {
    uint16_t b[8] = {0};
    memcpy(b, p, rem * sizeof *p);
    return ld_bf16(b);
}

/* One row at a time, front to back: the rows stream through memory in
 * order, which the hardware prefetchers follow best (interleaving four rows
 * measured half the bandwidth on Zen 4).  Four accumulators hide the FMA
 * latency; the last d % 8 values are loaded masked. */
#define DOT_ROWS(TYPE, LD, LDM)                                               \
    size_t rem = d & 7, d8 = d - rem, d32 = d & ~(size_t)31;                  \
    __m256i m = tail_mask(rem);                                               \
    (void)m;                                                                  \
    for (size_t i = 0; i < n; i++) {                                          \
        const TYPE *r = x + i * stride;                                       \
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;           \
        size_t j = 0;                                                         \
        for (; j < d32; j += 32) {                                            \
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), LD(r + j), a0);      \
            a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 8), LD(r + j + 8), a1); \
            a2 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 16), LD(r + j + 16), a2); \
            a3 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j + 24), LD(r + j + 24), a3); \
        }                                                                     \
        for (; j < d8; j += 8)                                                \
            a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + j), LD(r + j), a0);      \
        if (rem)                                                              \
            a1 = _mm256_fmadd_ps(_mm256_maskload_ps(q + d8, m), LDM(r + d8), a1); \
        out[i] = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3))); \
    }

#define LDM_F32(p) ldm_f32(p, m)
#define LDM_F16(p) ldm_f16(p, rem)
#define LDM_BF16(p) ldm_bf16(p, rem)

T static void dot_f32(const float *q, const float *x, size_t stride, size_t n,
                      size_t d, float *out) {
    DOT_ROWS(float, ld_f32, LDM_F32)
}

T static void dot_f16(const float *q, const uint16_t *x, size_t stride,
                      size_t n, size_t d, float *out) {
    DOT_ROWS(uint16_t, ld_f16, LDM_F16)
}

T static void dot_bf16(const float *q, const uint16_t *x, size_t stride,
                       size_t n, size_t d, float *out) {
    DOT_ROWS(uint16_t, ld_bf16, LDM_BF16)
}

T static void l2_f32(const float *q, const float *x, size_t stride, size_t n,
                     size_t d, float *out) {
    size_t rem = d & 7, dm = d - rem;
    __m256i m = tail_mask(rem);
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * stride;
        __m256 a = _mm256_setzero_ps();
        for (size_t j = 0; j < dm; j += 8) {
            __m256 t = _mm256_sub_ps(_mm256_loadu_ps(q + j), _mm256_loadu_ps(r + j));
            a = _mm256_fmadd_ps(t, t, a);
        }
        if (rem) {
            __m256 t = _mm256_sub_ps(_mm256_maskload_ps(q + dm, m), _mm256_maskload_ps(r + dm, m));
            a = _mm256_fmadd_ps(t, t, a);
        }
        out[i] = hsum(a);
    }
}

T static void f16_to_f32(const uint16_t *x, size_t n, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, ld_f16(x + i));
    for (; i < n; i++) out[i] = ek_f16_to_f32(x[i]);
}

T static void bf16_to_f32(const uint16_t *x, size_t n, float *out) {
    size_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, ld_bf16(x + i));
    for (; i < n; i++) out[i] = ek_bf16_to_f32(x[i]);
}

/* int8 without VNNI: VPMADDUBSW multiplies unsigned by signed bytes.  The
 * codes are made unsigned by taking their absolute value and moving their
 * sign onto the query byte (VPSIGNB); |code| <= 128 and |query| <= 127 keep
 * each pair sum within int16 (2 * 128 * 127 = 32512), so nothing saturates
 * and the result is exact. */
T static inline __m256i dot4(__m256i acc, __m256i codes, __m256i qb) {
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i p = _mm256_maddubs_epi16(_mm256_abs_epi8(codes), _mm256_sign_epi8(qb, codes));
    return _mm256_add_epi32(acc, _mm256_madd_epi16(p, ones));
}

T static void dot_i8_blk(const int8_t *r8, size_t nq, const int8_t *blk,
                         size_t nblk, size_t G, int32_t *out, size_t ldo) {
    for (size_t b = 0; b < nblk; b++) {
        const int8_t *base = blk + b * G * 64;
        size_t qi = 0;
        /* Two queries per pass: each 64-byte line is loaded once for both. */
        for (; qi + 2 <= nq; qi += 2) {
            const int32_t *q0 = (const int32_t *)(const void *)(r8 + qi * G * 4);
            const int32_t *q1 = (const int32_t *)(const void *)(r8 + (qi + 1) * G * 4);
            __m256i a0 = _mm256_setzero_si256(), a1 = a0, b0 = a0, b1 = a0;
            for (size_t g = 0; g < G; g++) {
                __m256i lo = _mm256_loadu_si256((const __m256i *)(const void *)(base + g * 64));
                __m256i hi = _mm256_loadu_si256((const __m256i *)(const void *)(base + g * 64 + 32));
                int32_t v0, v1;
                memcpy(&v0, q0 + g, 4);
                memcpy(&v1, q1 + g, 4);
                __m256i s0 = _mm256_set1_epi32(v0), s1 = _mm256_set1_epi32(v1);
                a0 = dot4(a0, lo, s0);
                a1 = dot4(a1, hi, s0);
                b0 = dot4(b0, lo, s1);
                b1 = dot4(b1, hi, s1);
            }
            int32_t *o0 = out + qi * ldo + b * EK_I8_BLOCK, *o1 = o0 + ldo;
            _mm256_storeu_si256((__m256i *)(void *)o0, a0);
            _mm256_storeu_si256((__m256i *)(void *)(o0 + 8), a1);
            _mm256_storeu_si256((__m256i *)(void *)o1, b0);
            _mm256_storeu_si256((__m256i *)(void *)(o1 + 8), b1);
        }
        for (; qi < nq; qi++) {
            const int8_t *qv = r8 + qi * G * 4;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;
            for (size_t g = 0; g < G; g++) {
                int32_t v;
                memcpy(&v, qv + g * 4, 4);
                __m256i s = _mm256_set1_epi32(v);
                a0 = dot4(a0, _mm256_loadu_si256((const __m256i *)(const void *)(base + g * 64)), s);
                a1 = dot4(a1, _mm256_loadu_si256((const __m256i *)(const void *)(base + g * 64 + 32)), s);
            }
            int32_t *o = out + qi * ldo + b * EK_I8_BLOCK;
            _mm256_storeu_si256((__m256i *)(void *)o, a0);
            _mm256_storeu_si256((__m256i *)(void *)(o + 8), a1);
        }
    }
}

/* Popcount of four 64-bit lanes without VPOPCNTQ: a 16-entry nibble table
 * looked up with VPSHUFB, byte counts summed per lane with VPSADBW. */
T static inline __m256i popcnt64(__m256i v) {
    const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4,
                                         0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
    const __m256i low = _mm256_set1_epi8(0x0f);
    __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
    __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
    return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

T static void hamming_blk(const uint64_t *q, size_t nq, const uint64_t *blk,
                          size_t nblk, size_t W, int32_t *out, size_t ldo) {
    for (size_t qi = 0; qi < nq; qi++) {
        const uint64_t *qv = q + qi * W;
        for (size_t b = 0; b < nblk; b++) {
            const uint64_t *p = blk + b * W * EK_BIN_BLOCK;
            __m256i a0 = _mm256_setzero_si256(), a1 = a0;
            for (size_t w = 0; w < W; w++) {
                __m256i s = _mm256_set1_epi64x((long long)qv[w]);
                __m256i x0 = _mm256_loadu_si256((const __m256i *)(const void *)(p + w * 8));
                __m256i x1 = _mm256_loadu_si256((const __m256i *)(const void *)(p + w * 8 + 4));
                a0 = _mm256_add_epi64(a0, popcnt64(_mm256_xor_si256(x0, s)));
                a1 = _mm256_add_epi64(a1, popcnt64(_mm256_xor_si256(x1, s)));
            }
            /* Lane counts fit in 32 bits: keep the low halves, in order. */
            const __m256i pick = _mm256_setr_epi32(0, 2, 4, 6, 0, 2, 4, 6);
            __m128i c0 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(a0, pick));
            __m128i c1 = _mm256_castsi256_si128(_mm256_permutevar8x32_epi32(a1, pick));
            int32_t *o = out + qi * ldo + b * EK_BIN_BLOCK;
            _mm_storeu_si128((__m128i *)(void *)o, c0);
            _mm_storeu_si128((__m128i *)(void *)(o + 4), c1);
        }
    }
}

T static void i32_to_key(const int32_t *v, size_t n, float a, float c, float *out) {
    __m256 va = _mm256_set1_ps(a), vc = _mm256_set1_ps(c);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 f = _mm256_cvtepi32_ps(_mm256_loadu_si256((const __m256i *)(const void *)(v + i)));
        _mm256_storeu_ps(out + i, _mm256_add_ps(vc, _mm256_mul_ps(va, f)));
    }
    for (; i < n; i++) out[i] = c + a * (float)v[i];
}

T static size_t first_above(const float *key, size_t n, float floor) {
    __m256 f = _mm256_set1_ps(floor);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m256 m = _mm256_or_ps(_mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(key + i), f, _CMP_GT_OQ),
                                             _mm256_cmp_ps(_mm256_loadu_ps(key + i + 8), f, _CMP_GT_OQ)),
                                _mm256_or_ps(_mm256_cmp_ps(_mm256_loadu_ps(key + i + 16), f, _CMP_GT_OQ),
                                             _mm256_cmp_ps(_mm256_loadu_ps(key + i + 24), f, _CMP_GT_OQ)));
        if (_mm256_movemask_ps(m)) break;
    }
    while (i < n && !(key[i] > floor)) i++;
    return i;
}

T static float stream_read(const float *x, size_t n) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        a0 = _mm256_add_ps(a0, _mm256_loadu_ps(x + i));
        a1 = _mm256_add_ps(a1, _mm256_loadu_ps(x + i + 8));
        a2 = _mm256_add_ps(a2, _mm256_loadu_ps(x + i + 16));
        a3 = _mm256_add_ps(a3, _mm256_loadu_ps(x + i + 24));
    }
    float s = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i];
    return s;
}

const ek_kern ek_kern_avx2 = {
    "avx2", EK_ISA_AVX2, dot_f32, dot_f16, dot_bf16, l2_f32, f16_to_f32,
    bf16_to_f32, dot_i8_blk, hamming_blk, i32_to_key, first_above, stream_read,
};

#endif /* __x86_64__ */
