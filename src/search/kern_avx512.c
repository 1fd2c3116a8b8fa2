/* search/kern_avx512.c — the AVX-512 kernels (F, BW, VL, DQ, VNNI,
 * VPOPCNTDQ: Ice Lake, Zen 4 and later).  Masked loads handle dimensions
 * that are not multiples of 16 without reading past the row; VPDPBUSD does
 * 64 int8 products per instruction and VPOPCNTQ counts eight 64-bit words. */
#include "search/kernels.h"

/* x86-64 only: elsewhere (aarch64) the scalar kernels are the only level. */
#if defined(__x86_64__)

#include <immintrin.h>
#include <string.h>

#define T __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx512vpopcntdq,avx2,fma,f16c,popcnt")))

T static inline __m512 ld_f32(const float *p) { return _mm512_loadu_ps(p); }
T static inline __m512 ldm_f32(const float *p, __mmask16 m) { return _mm512_maskz_loadu_ps(m, p); }
T static inline __m512 ld_f16(const uint16_t *p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(const void *)p));
}
T static inline __m512 ldm_f16(const uint16_t *p, __mmask16 m) {
    return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
}
T static inline __m512 ld_bf16(const uint16_t *p) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(const void *)p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}
T static inline __m512 ldm_bf16(const uint16_t *p, __mmask16 m) {
    __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

/* One row at a time, front to back: the rows stream through memory in
 * order, which the hardware prefetchers follow best (interleaving four rows
 * measured half the bandwidth on Zen 4).  Four accumulators hide the FMA
 * latency; a masked load takes the last d % 16 values. */
#define DOT_ROWS(TYPE, LD, LDM)                                               \
    size_t rem = d & 15, d16 = d - rem, d64 = d & ~(size_t)63;                \
    __mmask16 m = (__mmask16)((1u << rem) - 1u);                              \
    for (size_t i = 0; i < n; i++) {                                          \
        const TYPE *r = x + i * stride;                                       \
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;           \
        size_t j = 0;                                                         \
        for (; j < d64; j += 64) {                                            \
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), LD(r + j), a0);      \
            a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 16), LD(r + j + 16), a1); \
            a2 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 32), LD(r + j + 32), a2); \
            a3 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j + 48), LD(r + j + 48), a3); \
        }                                                                     \
        for (; j < d16; j += 16)                                              \
            a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + j), LD(r + j), a0);      \
        if (rem)                                                              \
            a1 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d16),           \
                                 LDM(r + d16, m), a1);                        \
        out[i] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1),    \
                                                    _mm512_add_ps(a2, a3)));  \
    }

T static void dot_f32(const float *q, const float *x, size_t stride, size_t n,
                      size_t d, float *out) {
    DOT_ROWS(float, ld_f32, ldm_f32)
}

T static void dot_f16(const float *q, const uint16_t *x, size_t stride,
                      size_t n, size_t d, float *out) {
    DOT_ROWS(uint16_t, ld_f16, ldm_f16)
}

T static void dot_bf16(const float *q, const uint16_t *x, size_t stride,
                       size_t n, size_t d, float *out) {
    DOT_ROWS(uint16_t, ld_bf16, ldm_bf16)
}

T static void l2_f32(const float *q, const float *x, size_t stride, size_t n,
                     size_t d, float *out) {
    size_t rem = d & 15, dm = d - rem;
    __mmask16 m = (__mmask16)((1u << rem) - 1u);
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * stride;
        __m512 a = _mm512_setzero_ps();
        for (size_t j = 0; j < dm; j += 16) {
            __m512 t = _mm512_sub_ps(_mm512_loadu_ps(q + j), _mm512_loadu_ps(r + j));
            a = _mm512_fmadd_ps(t, t, a);
        }
        if (rem) {
            __m512 t = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, q + dm), _mm512_maskz_loadu_ps(m, r + dm));
            a = _mm512_fmadd_ps(t, t, a);
        }
        out[i] = _mm512_reduce_add_ps(a);
    }
}

T static void f16_to_f32(const uint16_t *x, size_t n, float *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, ld_f16(x + i));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, m, ldm_f16(x + i, m));
    }
}

T static void bf16_to_f32(const uint16_t *x, size_t n, float *out) {
    size_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(out + i, ld_bf16(x + i));
    if (i < n) {
        __mmask16 m = (__mmask16)((1u << (n - i)) - 1u);
        _mm512_mask_storeu_ps(out + i, m, ldm_bf16(x + i, m));
    }
}

/* VPDPBUSD multiplies unsigned by signed bytes.  Codes are signed (-128..127
 * as sentence-transformers stores them); flipping their top bit gives
 * code + 128 as an unsigned byte, and the extra 128 * sum(query bytes) is
 * subtracted once per query at the end.  Exact in int32. */
T static inline int32_t load_i32(const int8_t *p) {
    int32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

T static inline int32_t qsum(const int8_t *q, size_t G) {
    int32_t s = 0;
    for (size_t j = 0; j < G * 4; j++) s += q[j];
    return s;
}

T static void dot_i8_blk(const int8_t *r8, size_t nq, const int8_t *blk,
                         size_t nblk, size_t G, int32_t *out, size_t ldo) {
    const __m512i flip = _mm512_set1_epi8((char)0x80);
    size_t qi = 0;
    /* Four queries per pass over a block: each 64-byte line is loaded once
     * for all four (the query slices come from L1 as broadcasts). */
    for (; qi + 4 <= nq; qi += 4) {
        const int8_t *q0 = r8 + qi * G * 4, *q1 = q0 + G * 4, *q2 = q1 + G * 4,
                     *q3 = q2 + G * 4;
        __m512i c0 = _mm512_set1_epi32(128 * qsum(q0, G)), c1 = _mm512_set1_epi32(128 * qsum(q1, G)),
                c2 = _mm512_set1_epi32(128 * qsum(q2, G)), c3 = _mm512_set1_epi32(128 * qsum(q3, G));
        for (size_t b = 0; b < nblk; b++) {
            const int8_t *base = blk + b * G * 64;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t g = 0; g < G; g++) {
                __m512i x = _mm512_xor_si512(_mm512_loadu_si512(base + g * 64), flip);
                a0 = _mm512_dpbusd_epi32(a0, x, _mm512_set1_epi32(load_i32(q0 + g * 4)));
                a1 = _mm512_dpbusd_epi32(a1, x, _mm512_set1_epi32(load_i32(q1 + g * 4)));
                a2 = _mm512_dpbusd_epi32(a2, x, _mm512_set1_epi32(load_i32(q2 + g * 4)));
                a3 = _mm512_dpbusd_epi32(a3, x, _mm512_set1_epi32(load_i32(q3 + g * 4)));
            }
            int32_t *o = out + qi * ldo + b * EK_I8_BLOCK;
            _mm512_storeu_si512(o, _mm512_sub_epi32(a0, c0));
            _mm512_storeu_si512(o + ldo, _mm512_sub_epi32(a1, c1));
            _mm512_storeu_si512(o + 2 * ldo, _mm512_sub_epi32(a2, c2));
            _mm512_storeu_si512(o + 3 * ldo, _mm512_sub_epi32(a3, c3));
        }
    }
    for (; qi < nq; qi++) {
        const int8_t *q0 = r8 + qi * G * 4;
        __m512i c0 = _mm512_set1_epi32(128 * qsum(q0, G));
        for (size_t b = 0; b < nblk; b++) {
            const int8_t *base = blk + b * G * 64;
            /* two accumulators halve the dependency chain on one query */
            __m512i a0 = _mm512_setzero_si512(), a1 = a0;
            size_t g = 0;
            for (; g + 2 <= G; g += 2) {
                __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(base + g * 64), flip);
                __m512i x1 = _mm512_xor_si512(_mm512_loadu_si512(base + g * 64 + 64), flip);
                a0 = _mm512_dpbusd_epi32(a0, x0, _mm512_set1_epi32(load_i32(q0 + g * 4)));
                a1 = _mm512_dpbusd_epi32(a1, x1, _mm512_set1_epi32(load_i32(q0 + g * 4 + 4)));
            }
            if (g < G) {
                __m512i x0 = _mm512_xor_si512(_mm512_loadu_si512(base + g * 64), flip);
                a0 = _mm512_dpbusd_epi32(a0, x0, _mm512_set1_epi32(load_i32(q0 + g * 4)));
            }
            _mm512_storeu_si512(out + qi * ldo + b * EK_I8_BLOCK,
                                _mm512_sub_epi32(_mm512_add_epi32(a0, a1), c0));
        }
    }
}

T static void hamming_blk(const uint64_t *q, size_t nq, const uint64_t *blk,
                          size_t nblk, size_t W, int32_t *out, size_t ldo) {
    size_t qi = 0;
    /* Four queries per pass: each 64-byte line (one word of 8 rows) is
     * loaded once and XORed with four broadcast query words. */
    for (; qi + 4 <= nq; qi += 4) {
        const uint64_t *q0 = q + qi * W, *q1 = q0 + W, *q2 = q1 + W, *q3 = q2 + W;
        for (size_t b = 0; b < nblk; b++) {
            const uint64_t *p = blk + b * W * EK_BIN_BLOCK;
            __m512i a0 = _mm512_setzero_si512(), a1 = a0, a2 = a0, a3 = a0;
            for (size_t w = 0; w < W; w++) {
                __m512i x = _mm512_loadu_si512(p + w * 8);
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_set1_epi64((long long)q0[w]))));
                a1 = _mm512_add_epi64(a1, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_set1_epi64((long long)q1[w]))));
                a2 = _mm512_add_epi64(a2, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_set1_epi64((long long)q2[w]))));
                a3 = _mm512_add_epi64(a3, _mm512_popcnt_epi64(_mm512_xor_si512(x, _mm512_set1_epi64((long long)q3[w]))));
            }
            int32_t *o = out + qi * ldo + b * EK_BIN_BLOCK;
            _mm256_storeu_si256((__m256i *)(void *)o, _mm512_cvtepi64_epi32(a0));
            _mm256_storeu_si256((__m256i *)(void *)(o + ldo), _mm512_cvtepi64_epi32(a1));
            _mm256_storeu_si256((__m256i *)(void *)(o + 2 * ldo), _mm512_cvtepi64_epi32(a2));
            _mm256_storeu_si256((__m256i *)(void *)(o + 3 * ldo), _mm512_cvtepi64_epi32(a3));
        }
    }
    for (; qi < nq; qi++) {
        const uint64_t *q0 = q + qi * W;
        for (size_t b = 0; b < nblk; b++) {
            const uint64_t *p = blk + b * W * EK_BIN_BLOCK;
            __m512i a0 = _mm512_setzero_si512();
            for (size_t w = 0; w < W; w++)
                a0 = _mm512_add_epi64(a0, _mm512_popcnt_epi64(_mm512_xor_si512(
                                              _mm512_loadu_si512(p + w * 8), _mm512_set1_epi64((long long)q0[w]))));
            _mm256_storeu_si256((__m256i *)(void *)(out + qi * ldo + b * EK_BIN_BLOCK),
                                _mm512_cvtepi64_epi32(a0));
        }
    }
}

T static void i32_to_key(const int32_t *v, size_t n, float a, float c, float *out) {
    __m512 va = _mm512_set1_ps(a), vc = _mm512_set1_ps(c);
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(out + i, _mm512_add_ps(vc, _mm512_mul_ps(va, _mm512_cvtepi32_ps(_mm512_loadu_si512(v + i)))));
    for (; i < n; i++) out[i] = c + a * (float)v[i];
}

T static size_t first_above(const float *key, size_t n, float floor) {
    __m512 f = _mm512_set1_ps(floor);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __mmask16 a = _mm512_cmp_ps_mask(_mm512_loadu_ps(key + i), f, _CMP_GT_OQ);
        __mmask16 b = _mm512_cmp_ps_mask(_mm512_loadu_ps(key + i + 16), f, _CMP_GT_OQ);
        if (a | b) return i + (a ? (size_t)__builtin_ctz(a) : 16 + (size_t)__builtin_ctz(b));
    }
    while (i < n && !(key[i] > floor)) i++;
    return i;
}

T static float stream_read(const float *x, size_t n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        a0 = _mm512_add_ps(a0, _mm512_loadu_ps(x + i));
        a1 = _mm512_add_ps(a1, _mm512_loadu_ps(x + i + 16));
        a2 = _mm512_add_ps(a2, _mm512_loadu_ps(x + i + 32));
        a3 = _mm512_add_ps(a3, _mm512_loadu_ps(x + i + 48));
    }
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
    for (; i < n; i++) s += x[i];
    return s;
}

const ek_kern ek_kern_avx512 = {
    "avx512", EK_ISA_AVX512, dot_f32, dot_f16, dot_bf16, l2_f32, f16_to_f32,
    bf16_to_f32, dot_i8_blk, hamming_blk, i32_to_key, first_above, stream_read,
};

#endif /* __x86_64__ */
