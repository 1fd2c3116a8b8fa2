/* search/index.h — the ek_index behind embedkit_search.h: what is stored for
 * each vector type, shared by index.c (building), scan.c (searching) and the
 * tests. */
#ifndef EK_SEARCH_INDEX_H
#define EK_SEARCH_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "embedkit_search.h"
#include "search/kernels.h"

struct ek_index {
    const ek_kern *kern;  /* chosen once, at creation (CPU + EK_ISA) */
    ek_metric metric;
    ek_vec_type type;     /* what is searched */
    size_t n;             /* rows */
    size_t dim_in;        /* input dimension (bits for binary input) */
    size_t d;             /* searched dimension (Matryoshka) */

    /* F32 / F16 / BF16: rows at a stride (elements), in place or owned */
    const void *fdata;
    size_t fstride;
    void *fown;

    /* INT8: blocked codes (kernels.h), G groups of 4 dims; decode ranges */
    int8_t *blk;
    size_t G;
    float *start, *step;  /* d each: x = start + step * (code + 128) */

    /* BINARY: blocked words, W per row */
    uint64_t *bblk;
    size_t W;

    /* Per row, for the metric: 1/|x| (cosine, 0 for a zero row) or |x|^2
     * (L2); NULL for dot and binary. */
    float *rowaux;

    /* Float originals for rescoring a quantized index (type F32/F16/BF16). */
    ek_matrix orig;
    int has_orig;
    size_t rd;            /* dims compared when rescoring: d, or fewer for a
                             binary index whose last byte is padding */
};

/* Key of a similarity: higher is better (distances negated). */
static inline float ek_key_of(ek_metric m, float dot, float qaux, float xaux) {
    if (m == EK_METRIC_DOT) return dot;
    if (m == EK_METRIC_COSINE) return dot * qaux * xaux; /* inverse norms, 0 for zero vectors */
    float d2 = qaux + xaux - 2.0f * dot;                 /* squared norms */
    return d2 > 0.0f ? -d2 : -0.0f;
}

/* Query-side aux for the metric from its squared norm. */
static inline float ek_qaux(ek_metric m, float norm2) {
    if (m == EK_METRIC_COSINE) return norm2 > 0.0f ? 1.0f / __builtin_sqrtf(norm2) : 0.0f;
    return norm2;
}

/* One row of a float matrix (F32/F16/BF16) as floats, first d values. */
void ek_row_to_f32(const ek_kern *k, ek_vec_type t, const void *data,
                   size_t stride, size_t row, size_t d, float *out);
/* 1 if all n values are finite. */
int ek_all_finite(const float *x, size_t n);

#endif
