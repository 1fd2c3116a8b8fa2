/* embedkit_search.h — similarity and exact top-k search over embeddings.
 *
 * A companion of embedkit.h, with the same conventions: every fallible call
 * returns an ek_status and leaves a one-line message in
 * ek_ctx_last_error(ctx) naming what was wrong (the file, the row, the
 * dimension); handles are opaque and each *_new / *_open has one *_free /
 * *_close; nothing is global.
 *
 * Metrics and score direction (see docs/SEARCH.md):
 *   EK_METRIC_COSINE  cosine similarity, higher is better; a zero vector has
 *                     similarity 0 with everything (never NaN)
 *   EK_METRIC_DOT     dot product, higher is better
 *   EK_METRIC_L2      squared Euclidean distance, LOWER is better
 * Search results are sorted best first (cosine/dot: descending score; L2:
 * ascending distance); equal scores are ordered by the lower row index.
 *
 * Storage types an index searches:
 *   EK_VEC_F32, EK_VEC_F16, EK_VEC_BF16  floats, searched exactly
 *   EK_VEC_INT8    sentence-transformers "int8" codes with per-dimension
 *                  ranges; scores are the metric between the float query and
 *                  the decoded vectors (query rounded to 8 bits for speed)
 *   EK_VEC_BINARY  packed sign bits (np.packbits order, sentence-transformers
 *                  "ubinary"); candidates ranked by Hamming distance (the
 *                  score, lower is better) unless rescored
 * Rescoring (ek_search_options.rescore = R > 0) takes the R best candidates
 * of a quantized index and re-ranks them with the metric on the float
 * originals when the index has them (built from floats, or given with
 * ek_index_set_originals), else on the decoded vectors (int8 dequantized,
 * binary bits as 0/1, as sentence-transformers rescores).
 *
 * Kernels: scalar, AVX2 or AVX-512, chosen from the CPU when an index is
 * created (or per ek_similarity call); the environment variable
 * EK_ISA=scalar|avx2|avx512 lowers the level.  Many-query float products use
 * oneDNN's sgemm. */
#ifndef EMBEDKIT_SEARCH_H
#define EMBEDKIT_SEARCH_H

#include <stddef.h>
#include <stdint.h>

#include "embedkit.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ek_metric {
    EK_METRIC_COSINE = 0,
    EK_METRIC_DOT = 1,
    EK_METRIC_L2 = 2
} ek_metric;

typedef enum ek_vec_type {
    EK_VEC_F32 = 0,
    EK_VEC_F16 = 1,
    EK_VEC_BF16 = 2,
    EK_VEC_INT8 = 3,   /* sentence-transformers int8 codes (-128..127) */
    EK_VEC_BINARY = 4  /* packed sign bits, ceil(dim / 8) bytes per row */
} ek_vec_type;

/* "cosine", "dot", "l2"; -1 if unknown. */
int ek_metric_from_name(const char *name);
const char *ek_metric_name(ek_metric m);
/* "f32", "f16", "bf16", "int8", "binary"; -1 if unknown. */
int ek_vec_type_from_name(const char *name);
const char *ek_vec_type_name(ek_vec_type t);

/* A row-major matrix in caller memory.  dim counts vector dimensions (bits
 * for EK_VEC_BINARY); stride is the distance between rows in elements (bytes
 * for INT8 and BINARY); 0 means packed. */
typedef struct ek_matrix {
    ek_vec_type type;
    const void *data;
    size_t rows;
    size_t dim;
    size_t stride;
} ek_matrix;

/* Copies a float matrix (F32, F16 or BF16) into out as packed float32
 * (rows x dim). */
ek_status ek_matrix_to_f32(ek_ctx *ctx, const ek_matrix *m, float *out);

/* ---- similarity --------------------------------------------------------- */

/* out[i * nb + j] = metric(a[i], b[j]) for na x da floats a and nb x db
 * floats b (row-major, packed).  A pair is na = nb = 1; one against many is
 * na = 1.  Large products go through a GEMM.  da != db, NaN or Inf in any
 * row (the message names the matrix and the row) are errors.  Threads: the
 * context's. */
ek_status ek_similarity(ek_ctx *ctx, ek_metric metric, const float *a,
                        size_t na, size_t da, const float *b, size_t nb,
                        size_t db, float *out);

/* ---- quantization (sentence-transformers compatible) -------------------- */

/* ranges[0][j] = min, ranges[1][j] = max of column j over the n x dim floats
 * (the calibration of quantize_embeddings). */
ek_status ek_quantize_ranges(ek_ctx *ctx, const float *x, size_t n, size_t dim,
                             float *ranges);
/* int8 codes (n x dim) with ranges [2][dim]. */
ek_status ek_quantize_int8(ek_ctx *ctx, const float *x, size_t n, size_t dim,
                           const float *ranges, int8_t *out);
/* Packed sign bits x > 0 (n x ceil(dim/8) bytes, np.packbits order). */
ek_status ek_quantize_binary(ek_ctx *ctx, const float *x, size_t n, size_t dim,
                             uint8_t *out);

/* ---- index and search --------------------------------------------------- */

typedef struct ek_index ek_index;

typedef struct ek_index_options {
    ek_vec_type type;     /* what is searched; float input is converted or
                             quantized to it.  Default: the input's type */
    ek_metric metric;     /* default cosine */
    size_t dimensions;    /* Matryoshka: search the first D dims; 0 = all */
    const float *ranges;  /* int8: [2][dim] ranges.  Required for int8
                             input; for float input NULL calibrates on the
                             input itself */
} ek_index_options;

void ek_index_options_init(ek_index_options *opts);

/* Builds an index over the vectors.  F32/F16/BF16 input searched as its own
 * type is used in place (not copied: it must outlive the index); other
 * combinations are converted into memory the index owns.  Float input is
 * kept (by pointer) as the originals for rescoring.  Every row is checked:
 * NaN or Inf is an error naming the row. */
ek_status ek_index_new(ek_ctx *ctx, const ek_matrix *vectors,
                       const ek_index_options *opts, ek_index **out);
/* Float originals (F32/F16/BF16, same rows, dim >= the index's) used to
 * rescore a quantized index; kept by pointer. */
ek_status ek_index_set_originals(ek_ctx *ctx, ek_index *index,
                                 const ek_matrix *originals);
void ek_index_free(ek_index *index);

size_t ek_index_rows(const ek_index *index);
/* Dimensions searched (after Matryoshka truncation). */
size_t ek_index_dim(const ek_index *index);
/* Kernel level in use: "scalar", "avx2" or "avx512". */
const char *ek_index_isa(const ek_index *index);

typedef struct ek_search_options {
    size_t k;        /* results per query, >= 1; more than the rows gives all */
    size_t rescore;  /* quantized index: rescore this many candidates (>= k
                        is used as max(rescore, k)); 0 = no rescoring */
} ek_search_options;

typedef struct ek_hit {
    int64_t index;  /* row of the index */
    float score;    /* see "Metrics and score direction" above */
} ek_hit;

/* Searches nq queries (nq x qdim floats; qdim is the index's full input
 * dimension or its searched dimension).  out receives nq x min(k, rows)
 * hits, query by query, best first; *per_query (may be NULL) that count. */
ek_status ek_index_search(ek_ctx *ctx, const ek_index *index,
                          const float *queries, size_t nq, size_t qdim,
                          const ek_search_options *opts, ek_hit *out,
                          size_t *per_query);

/* ---- NumPy .npy files --------------------------------------------------- */

typedef enum ek_npy_dtype {
    EK_NPY_F32 = 0,  /* '<f4' */
    EK_NPY_F16 = 1,  /* '<f2' */
    EK_NPY_I8 = 2,   /* '|i1' */
    EK_NPY_U8 = 3    /* '|u1' */
} ek_npy_dtype;

typedef struct ek_npy ek_npy;

typedef struct ek_npy_info {
    ek_npy_dtype dtype;
    int ndim;          /* 1 or 2 (a 1-D array is one row) */
    size_t rows, cols;
    const void *data;  /* rows * cols elements, C order, read-only */
} ek_npy_info;

/* Opens a C-order .npy file (format 1.0, 2.0 or 3.0) of float32, float16,
 * int8 or uint8 and 1 or 2 dimensions, memory-mapped read-only.  Anything
 * else (truncated, bad magic, Fortran order, other dtype, shape that does
 * not match the size) is an EK_ERR_FORMAT / EK_ERR_UNSUPPORTED error naming
 * the file and what is wrong. */
ek_status ek_npy_open(ek_ctx *ctx, const char *path, ek_npy **out);
void ek_npy_get_info(const ek_npy *npy, ek_npy_info *info);
void ek_npy_close(ek_npy *npy);
/* Writes rows x cols elements (format 1.0 header, or 2.0 when the header
 * needs it).  ndim 1 writes shape (cols,) (rows must be 1). */
ek_status ek_npy_write(ek_ctx *ctx, const char *path, ek_npy_dtype dtype,
                       int ndim, size_t rows, size_t cols, const void *data);
/* The ek_matrix view of an open file for the given vector type: F32 for
 * float32, F16 for float16, INT8 for int8, BINARY for uint8 (dim = 8 x
 * cols).  (sentence-transformers' signed "binary" int8 files are the uint8
 * bytes minus 128: flip the top bit of each byte first.) */
ek_status ek_npy_matrix(ek_ctx *ctx, const ek_npy *npy, ek_vec_type type,
                        ek_matrix *out);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKIT_SEARCH_H */
