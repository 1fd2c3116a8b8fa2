/* compute/matmul.h — dense layers on pre-packed weights (oneDNN matmul).
 *
 * Weights are packed once, at model load, into the blocked layout oneDNN's
 * brgemm kernels read (format `any`, then one reorder), in f32, bf16 or s8
 * (per-output-channel symmetric scales).  A primitive is made per (row
 * count, layer shape, types) and reused; running one copies nothing and
 * allocates nothing.
 *
 * Row invariance: brgemm computes each row of C from that row of A alone,
 * with a summation order fixed by K and N, and the packed layout depends on
 * N, K and the type only (checked at pack time for several row counts;
 * tests/test_dtype.c checks whole embeddings bitwise across batchings).
 * Callers therefore run large M in fixed-size row chunks and pad the last
 * chunk to a multiple of 8 (ek_mm_row_class) instead of making a primitive
 * for every M: a bounded set of primitives per layer shape, and the padding
 * rows do not change the real rows' results. */
#ifndef EK_COMPUTE_MATMUL_H
#define EK_COMPUTE_MATMUL_H

#include <stddef.h>
#include <stdint.h>

struct dnnl_engine;
struct dnnl_stream;
struct dnnl_primitive;
struct dnnl_memory;

typedef enum ek_mm_type {
    EK_MM_F32 = 0,
    EK_MM_BF16 = 1,
    EK_MM_S8 = 2,  /* int8 weights */
    EK_MM_U8 = 3,  /* int8 sources: signed values stored + 128 (see below) */
    EK_MM_S32 = 4
} ek_mm_type;

/* Int8: weights are s8 with a per-output-channel scale; sources are
 * symmetric s8 values q in [-127, 127] stored as q + 128 in u8 (VNNI's dot
 * product takes u8 x s8, and this way oneDNN needs no compensation pass).
 * The s32 result is then sum_k (q + 128) w = sum_k q w + 128 colsum[n];
 * the caller subtracts 128 * colsum[n] in its epilogue.  Integer sums are
 * exact, so int8 rows are batch-invariant whatever the kernel. */

/* The row count a primitive is made for: 16 up to 16 rows, else M rounded
 * up to a multiple of 8.  Multiples of 8 rather than of the brgemm row block
 * (16): units of whole sequences (model/forward.c) have any row count, and
 * padding to 16 cost ~3% of a mixed-length batch's rows; oneDNN's M-tail
 * kernels keep each row's summation order (tests/test_dtype.c, bitwise). */
int ek_mm_row_class(int M);

/* One linear layer y = x W^T + b, W [N][K] f32 row-major (torch layout),
 * packed for `type` (F32, BF16 or S8). */
typedef struct ek_mm_weights {
    struct dnnl_memory *w;     /* packed weights: owning their buffer, or on
                                  borrowed bytes (ek_mm_weights_wrap) */
    struct dnnl_memory *bias;  /* [N] f32 (the caller's array), or NULL */
    float *scale;              /* S8: per output channel, W ~ scale[n] * q */
    int32_t *colsum;           /* S8: sum_k q[n][k] */
    const float *bias_ptr;
    int N, K;
    ek_mm_type type;
    size_t bytes;              /* packed size */
    int borrowed;              /* w's bytes, scale and colsum belong to the
                                  caller (often a read-only mapping: nothing
                                  here writes them) */
} ek_mm_weights;

/* Returns 0 or -1 (type unsupported on this CPU / oneDNN build, no
 * memory).  bias may be NULL. */
int ek_mm_weights_pack(ek_mm_weights *pw, struct dnnl_engine *eng,
                       ek_mm_type type, const float *W, const float *bias,
                       int N, int K);
void ek_mm_weights_free(ek_mm_weights *pw);
/* The packed bytes (pw->bytes of them), e.g. to store them in a file. */
const void *ek_mm_weights_data(const ek_mm_weights *pw);

/* The packed layout ek_mm_weights_pack uses for an N x K weight of `type`,
 * found without packing (the same row-class checks): what a packed-weight
 * cache keys on and re-uses packed bytes with (model/packcache.h). */
typedef struct ek_mm_layout {
    void *md;                  /* dnnl_memory_desc_t, owned */
    size_t bytes;
    ek_mm_type type;
    int N, K;
} ek_mm_layout;

int ek_mm_layout_init(ek_mm_layout *l, struct dnnl_engine *eng, ek_mm_type type, int N, int K);
void ek_mm_layout_free(ek_mm_layout *l);
/* A canonical one-line text of the layout (type, dims, padded dims,
 * strides, inner blocks, extra flags; no struct padding bytes), equal for
 * equal layouts.  Returns 0, or -1 when cap is too small. */
int ek_mm_layout_describe(const ek_mm_layout *l, char *buf, size_t cap);
/* Weights on packed bytes made earlier by ek_mm_weights_pack for layout l
 * (same type, N, K): nothing is copied and pw->borrowed is set.  packed,
 * scale and colsum (S8 only) must outlive pw; they are only ever read:
 * oneDNN 2.6 creates memory on a user pointer without zero-padding it and
 * matmul reads weights through a const pointer (CTX_IN_MEM), so a
 * PROT_READ mapping is safe.  Returns 0 or -1. */
int ek_mm_weights_wrap(ek_mm_weights *pw, struct dnnl_engine *eng, const ek_mm_layout *l,
                       const void *packed, const float *scale, const int32_t *colsum,
                       const float *bias);

enum {
    EK_MM_BIAS = 1,       /* + bias[N] (F32 / BF16 sources only) */
    EK_MM_GELU = 2,       /* exact (erf) GELU after the bias */
    EK_MM_ACCUMULATE = 4  /* C += result (the residual add) */
};

/* A matmul primitive for M rows (plain row-major A [M][K], C [M][N]);
 * the source type follows the weights (F32, BF16, or U8 for S8 weights);
 * destination dst (F32 or BF16; S32 for int8), with the fused flags
 * (none for int8: its epilogue is the caller's, see above). */
typedef struct ek_mm_prim {
    struct dnnl_primitive *prim;
    size_t scratch_bytes;      /* the primitive's scratchpad, per caller */
    int M, N, K;
    ek_mm_type src, dst;
    unsigned flags;
} ek_mm_prim;

int ek_mm_prim_init(ek_mm_prim *p, struct dnnl_engine *eng, int M,
                    const ek_mm_weights *pw, ek_mm_type dst, unsigned flags);
void ek_mm_prim_free(ek_mm_prim *p);

/* The source / destination memory objects one caller runs a primitive
 * with (oneDNN memory objects carry a data pointer, so concurrent callers
 * need their own), and its scratchpad: primitives are made in oneDNN's
 * "user scratchpad" mode, because the library-managed one is shared by
 * every execution of a primitive in builds without
 * DNNL_ENABLE_CONCURRENT_EXEC (Debian's), and two threads running one
 * primitive then overwrite each other's buffers (seen as wrong int8 results
 * in tests/test_dtype.c).  Made once per (caller, primitive) and reused. */
typedef struct ek_mm_io {
    struct dnnl_memory *src, *dst, *scratch;
} ek_mm_io;

int ek_mm_io_init(ek_mm_io *io, struct dnnl_engine *eng, const ek_mm_prim *p);
void ek_mm_io_free(ek_mm_io *io);

/* C = A * W^T (+ bias, GELU, + C per the primitive's flags).  Threads: the
 * calling thread's OpenMP setting.  Returns 0 or -1. */
int ek_mm_run(const ek_mm_prim *p, ek_mm_io *io, struct dnnl_stream *s,
              const void *A, const ek_mm_weights *pw, void *C);

/* oneDNN's matmul throughput on this machine: GFLOP/s of an M x N x K
 * product in `type` (F32, BF16 or S8 weights) on packed weights, the
 * median of `reps` runs after a warm-up, on the calling thread's OpenMP
 * thread count.  Negative when the type cannot run here.  For benchmarks:
 * the peak the forward pass is measured against. */
double ek_mm_peak_gflops(ek_mm_type type, int M, int N, int K, int reps);

/* Element size of a type in bytes. */
size_t ek_mm_type_size(ek_mm_type t);

#endif
