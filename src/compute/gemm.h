/* compute/gemm.h — matrix products and CPU facts for the layers above.
 *
 * One entry point, C = A * B^T (+ C when accumulate), row-major, backed by
 * oneDNN's sgemm, which picks AVX-512 / AMX kernels at run time.  The rest of
 * the code never calls a BLAS directly, so a backend swap stays here. */
#ifndef EK_COMPUTE_GEMM_H
#define EK_COMPUTE_GEMM_H

/* C[M][N] (ldc) = alpha * A[M][K] (lda) * B[N][K]^T (ldb) + beta * C. */
void ek_gemm_nt(int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);
/* C[M][N] = alpha * A[M][K] * B[K][N] + beta * C (B not transposed). */
void ek_gemm_nn(int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc);

/* Threads for subsequent compute on the calling thread (OpenMP ICV).
 * 0 = all cores. */
void ek_compute_set_threads(int threads);
int ek_compute_cores(void);

#endif
