/* search/kern_scalar.c — the portable reference kernels (plain C, no
 * intrinsics), the float16 / bfloat16 conversions, and the choice of kernel
 * level from the CPU and EK_ISA.  Every SIMD level is tested against the
 * functions in this file. */
#include "search/kernels.h"

#if defined(__x86_64__)
#include <cpuid.h>
#endif
#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- float16 / bfloat16 ------------------------------------------------- */

static float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static uint32_t f32_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

float ek_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (exp == 0x1f) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf/nan */
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24, exact in float */
        float v = (float)man * 0x1p-24f;
        return sign ? -v : v;
    }
    return bits_f32(sign | ((exp + 112u) << 23) | (man << 13));
}

uint16_t ek_f32_to_f16(float f) {
    uint32_t u = f32_bits(f);
    uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
    uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) /* inf or nan (keep nan quiet) */
        return (uint16_t)(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u); /* rounds to inf */
    if (a < 0x38800000u) {
        /* result is subnormal or zero: round |f| / 2^-24 to nearest even */
        float v = bits_f32(a) * 0x1p24f;
        return (uint16_t)(sign | (uint16_t)lrintf(v));
    }
    /* normal: drop 13 mantissa bits with round to nearest even */
    uint32_t r = a + 0xfffu + ((a >> 13) & 1u);
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

float ek_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ek_f32_to_bf16(float f) {
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

/* ---- scalar kernels ----------------------------------------------------- */

/* Eight partial sums: the same association for every row, and close to the
 * SIMD order, so the float kernels differ only by rounding. */
#define SUM8(EXPR)                                                            \
    do {                                                                      \
        float s[8] = {0};                                                     \
        size_t j = 0;                                                         \
        for (; j + 8 <= d; j += 8)                                            \
            for (int l = 0; l < 8; l++) {                                     \
                size_t jj = j + (size_t)l;                                    \
                s[l] += (EXPR);                                               \
            }                                                                 \
        for (; j < d; j++) {                                                  \
            size_t jj = j;                                                    \
            s[0] += (EXPR);                                                   \
        }                                                                     \
        out[i] = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7])); \
    } while (0)

static void dot_f32(const float *q, const float *x, size_t stride, size_t n,
                    size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * stride;
        SUM8(q[jj] * r[jj]);
    }
}

static void dot_f16(const float *q, const uint16_t *x, size_t stride, size_t n,
                    size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        const uint16_t *r = x + i * stride;
        SUM8(q[jj] * ek_f16_to_f32(r[jj]));
    }
}

static void dot_bf16(const float *q, const uint16_t *x, size_t stride,
                     size_t n, size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        const uint16_t *r = x + i * stride;
        SUM8(q[jj] * ek_bf16_to_f32(r[jj]));
    }
}

static void l2_f32(const float *q, const float *x, size_t stride, size_t n,
                   size_t d, float *out) {
    for (size_t i = 0; i < n; i++) {
        const float *r = x + i * stride;
        SUM8((q[jj] - r[jj]) * (q[jj] - r[jj]));
    }
}

static void f16_to_f32(const uint16_t *x, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = ek_f16_to_f32(x[i]);
}

static void bf16_to_f32(const uint16_t *x, size_t n, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = ek_bf16_to_f32(x[i]);
}

static void dot_i8_blk(const int8_t *r8, size_t nq, const int8_t *blk,
                       size_t nblk, size_t G, int32_t *out, size_t ldo) {
    for (size_t qi = 0; qi < nq; qi++) {
        const int8_t *qv = r8 + qi * G * 4;
        for (size_t b = 0; b < nblk; b++) {
            int32_t acc[EK_I8_BLOCK] = {0};
            const int8_t *p = blk + b * G * 64;
            for (size_t g = 0; g < G; g++, p += 64)
                for (int r = 0; r < EK_I8_BLOCK; r++)
                    for (int j = 0; j < 4; j++)
                        acc[r] += (int32_t)p[r * 4 + j] * qv[g * 4 + (size_t)j];
            memcpy(out + qi * ldo + b * EK_I8_BLOCK, acc, sizeof acc);
        }
    }
}

static void hamming_blk(const uint64_t *q, size_t nq, const uint64_t *blk,
                        size_t nblk, size_t W, int32_t *out, size_t ldo) {
    for (size_t qi = 0; qi < nq; qi++) {
        const uint64_t *qv = q + qi * W;
        for (size_t b = 0; b < nblk; b++) {
            const uint64_t *p = blk + b * W * EK_BIN_BLOCK;
            for (int r = 0; r < EK_BIN_BLOCK; r++) {
                int32_t c = 0;
                for (size_t w = 0; w < W; w++)
                    c += __builtin_popcountll(qv[w] ^ p[w * EK_BIN_BLOCK + (size_t)r]);
                out[qi * ldo + b * EK_BIN_BLOCK + (size_t)r] = c;
            }
        }
    }
}

static void i32_to_key(const int32_t *v, size_t n, float a, float c, float *out) {
    for (size_t i = 0; i < n; i++) out[i] = c + a * (float)v[i];
}

static size_t first_above(const float *key, size_t n, float floor) {
    size_t i = 0;
    while (i < n && !(key[i] > floor)) i++;
    return i;
}

static float stream_read(const float *x, size_t n) {
    float s[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int l = 0; l < 8; l++) s[l] += x[i + (size_t)l];
    for (; i < n; i++) s[0] += x[i];
    return s[0] + s[1] + s[2] + s[3] + s[4] + s[5] + s[6] + s[7];
}

const ek_kern ek_kern_scalar = {
    "scalar", EK_ISA_SCALAR, dot_f32, dot_f16, dot_bf16, l2_f32, f16_to_f32,
    bf16_to_f32, dot_i8_blk, hamming_blk, i32_to_key, first_above, stream_read,
};

/* ---- level choice ------------------------------------------------------- */

int ek_isa_cpu_level(void) {
#if !defined(__x86_64__)
    return EK_ISA_SCALAR; /* the SIMD kernels are x86-64 only */
#else
    __builtin_cpu_init();
    unsigned a, b, c, d;
    /* F16C (CPUID.1:ECX bit 29) is not a __builtin_cpu_supports name in every
     * compiler; every AVX2 CPU has it, but check rather than assume. */
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c))
        return EK_ISA_SCALAR;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512vpopcntdq"))
        return EK_ISA_AVX512;
    return EK_ISA_AVX2;
#endif
}

int ek_isa_choose(void) {
    int cpu = ek_isa_cpu_level();
    const char *env = getenv("EK_ISA");
    if (!env || !*env) return cpu;
    int want;
    if (!strcmp(env, "scalar")) want = EK_ISA_SCALAR;
    else if (!strcmp(env, "avx2")) want = EK_ISA_AVX2;
    else if (!strcmp(env, "avx512")) want = EK_ISA_AVX512;
    else return -1;
    return want < cpu ? want : cpu;
}

const ek_kern *ek_kern_for_level(int level) {
    switch (level) {
#if defined(__x86_64__)
    case EK_ISA_AVX512: return &ek_kern_avx512;
    case EK_ISA_AVX2: return &ek_kern_avx2;
#endif
    default: return &ek_kern_scalar;
    }
}

const char *ek_isa_level_name(int level) { return ek_kern_for_level(level)->name; }
