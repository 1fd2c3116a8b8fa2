/* compute/gemm.h — matrix products and CPU facts for the layers above.
 *
 * One entry point, C = A * B^T (+ C when accumulate), row-major, backed by
 * oneDNN's sgemm, which picks AVX-512 / AMX kernels at run time.  The rest of
 * the code never calls a BLAS directly, so a backend swap stays here. */
#ifndef EK_COMPUTE_GEMM_H
#define EK_COMPUTE_GEMM_H

/* C[M][N] (ldc) = alpha * A[M][K] (lda) * B[N][K]^T (ldb) + beta * C.
 * Plain dnnl_sgemm: fine for one-off products; for results that must not
 * depend on M use ek_dense_plan below. */
void ek_gemm_nt(int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
/* C[M][N] = alpha * A[M][K] * B[K][N] + beta * C (B not transposed). */
void ek_gemm_nn(int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* Threads for subsequent compute on the calling thread (OpenMP ICV).
 * 0 = all cores. */
void ek_compute_set_threads(int threads);
int ek_compute_cores(void);

/* ---- prepared dense layers (the forward pass's GEMMs) -------------------
 *
 * dnnl_sgemm takes a different kernel for M < 16 whose summation order
 * differs from the M >= 16 one (measured: ~5e-6 differences), so a row's
 * result would depend on how many rows share the call.  oneDNN's matmul
 * primitive (brgemm) gives bitwise-identical rows for every M and row offset
 * and is 2-5x faster at small M, and it fuses bias, GELU and the residual
 * add.  The forward pass therefore uses these plans: one per layer shape,
 * created once per forward call (oneDNN's own primitive cache makes
 * re-creating a known shape cheap) and run for every layer. */

struct dnnl_engine;
struct dnnl_stream;
struct dnnl_primitive;
struct dnnl_memory;

/* A CPU engine and stream; open one per forward call (cheap). */
typedef struct ek_compute {
    struct dnnl_engine *engine;
    struct dnnl_stream *stream;
} ek_compute;

/* Returns 0 or -1 (then the struct is left zeroed). */
int ek_compute_open(ek_compute *c);
void ek_compute_close(ek_compute *c);

enum {
    EK_DENSE_BIAS = 1,       /* + bias[N] */
    EK_DENSE_GELU = 2,       /* exact (erf) GELU after the bias */
    EK_DENSE_ACCUMULATE = 4  /* C += result (the residual add) */
};

/* C[M][N] (ldc) = act(A[M][K] (lda) * W[N][K]^T + bias) (+ C). */
typedef struct ek_dense_plan {
    struct dnnl_primitive *prim;
    struct dnnl_memory *src, *wei, *bias, *dst;
    struct dnnl_stream *stream;
} ek_dense_plan;

/* Returns 0 or -1 (unsupported shape, out of memory). */
int ek_dense_plan_init(ek_dense_plan *p, const ek_compute *c, int M, int N,
                       int K, int lda, int ldc, unsigned flags);
/* Runs the plan on these pointers (bias ignored without EK_DENSE_BIAS).
 * Threads: the calling thread's OpenMP setting.  Returns 0 or -1. */
int ek_dense_plan_run(ek_dense_plan *p, const float *A, const float *W,
                      const float *bias, float *C);
void ek_dense_plan_free(ek_dense_plan *p);

#endif
