/* search/kernels.h — the inner loops of similarity and search, one table of
 * function pointers per instruction-set level (scalar, AVX2, AVX-512).
 *
 * Why hand-written: these loops are the product's own craft (dot products
 * against rows at a stride, the blocked int8 and binary layouts, popcount).
 * Many-query f32 products go to oneDNN's sgemm instead (compute/gemm.h).
 *
 * The table is chosen once, when an index (or a similarity call) is set up,
 * from the CPU's features and the EK_ISA environment variable; nothing here
 * keeps global mutable state.  The scalar table is the reference every other
 * level is tested against (tests/test_search.c): integer kernels must agree
 * exactly, float kernels to rounding. */
#ifndef EK_SEARCH_KERNELS_H
#define EK_SEARCH_KERNELS_H

#include <stddef.h>
#include <stdint.h>

enum { EK_ISA_SCALAR = 0, EK_ISA_AVX2 = 1, EK_ISA_AVX512 = 2 };

/* int8 blocked layout: rows in blocks of 16, dimensions in groups of 4.
 * Byte (b, g, r, j) = code of row 16b + r, dimension 4g + j, stored at
 * ((b * G + g) * 16 + r) * 4 + j.  One 64-byte line holds one group of four
 * dimensions for sixteen rows: exactly what VPDPBUSD consumes against a
 * broadcast 4-byte slice of the query, so no horizontal sums are needed. */
#define EK_I8_BLOCK 16
/* binary blocked layout: rows in blocks of 8, 64-bit words.
 * Word (b, w, r) = bits 64w..64w+63 of row 8b + r at (b * W + w) * 8 + r. */
#define EK_BIN_BLOCK 8

typedef struct ek_kern {
    const char *name; /* "scalar", "avx2", "avx512" */
    int level;
    /* out[i] = sum_{j<d} q[j] * x[i*stride + j], i < n (f32, f16, bf16 rows) */
    void (*dot_f32)(const float *q, const float *x, size_t stride, size_t n,
                    size_t d, float *out);
    void (*dot_f16)(const float *q, const uint16_t *x, size_t stride, size_t n,
                    size_t d, float *out);
    void (*dot_bf16)(const float *q, const uint16_t *x, size_t stride,
                     size_t n, size_t d, float *out);
    /* out[i] = sum_{j<d} (q[j] - x[i*stride + j])^2 */
    void (*l2_f32)(const float *q, const float *x, size_t stride, size_t n,
                   size_t d, float *out);
    /* Half / bfloat16 to float, n values. */
    void (*f16_to_f32)(const uint16_t *x, size_t n, float *out);
    void (*bf16_to_f32)(const uint16_t *x, size_t n, float *out);
    /* int8 blocked: out[q*ldo + 16b + r] = sum_j r8[q][j] * code(row, j) over
     * G groups, for nq queries (each G*4 int8, |value| <= 127) and nblk
     * blocks. */
    void (*dot_i8_blk)(const int8_t *r8, size_t nq, const int8_t *blk,
                       size_t nblk, size_t G, int32_t *out, size_t ldo);
    /* binary blocked: out[q*ldo + 8b + r] = popcount(query q XOR row) over W
     * words, for nq queries (each W words) and nblk blocks. */
    void (*hamming_blk)(const uint64_t *q, size_t nq, const uint64_t *blk,
                        size_t nblk, size_t W, int32_t *out, size_t ldo);
    /* out[i] = c + a * v[i]: integer scores (int8 dots, Hamming distances)
     * to float keys. */
    void (*i32_to_key)(const int32_t *v, size_t n, float a, float c, float *out);
    /* Index of the first key[i] > floor, or n: the filter in front of the
     * top-k heap, which almost every key fails once the heap is warm. */
    size_t (*first_above)(const float *key, size_t n, float floor);
    /* Reads n floats and returns a value depending on all of them (a
     * streaming-read probe, used by the tests). */
    float (*stream_read)(const float *x, size_t n);
} ek_kern;

extern const ek_kern ek_kern_scalar;
extern const ek_kern ek_kern_avx2;
extern const ek_kern ek_kern_avx512;

/* Highest level this CPU runs: AVX-512 needs F, BW, VL, DQ, VNNI and
 * VPOPCNTDQ (Ice Lake, Zen 4 and later); AVX2 needs AVX2, FMA and F16C. */
int ek_isa_cpu_level(void);
/* Level to use: the CPU's, lowered by EK_ISA=scalar|avx2|avx512 when set (a
 * level above the CPU's is capped at the CPU's).  Returns -1 for an unknown
 * EK_ISA value. */
int ek_isa_choose(void);
const ek_kern *ek_kern_for_level(int level);
const char *ek_isa_level_name(int level);

/* Scalar conversions shared by all levels (round to nearest even). */
float ek_f16_to_f32(uint16_t h);
uint16_t ek_f32_to_f16(float f);
float ek_bf16_to_f32(uint16_t h);
uint16_t ek_f32_to_bf16(float f);

#endif
