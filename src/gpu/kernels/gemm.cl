/* kernels/gemm.cl - C[M][N] = act(alpha * A[M][K] B[N][K]^T + bias) (+ C
 * when accumulate): torch.nn.Linear's layout (weights [out][in]), so the
 * encoder's dense layers, the residual adds and the similarity products
 * are all this one kernel.
 *
 * Tiling: a 16 x 16 work-group computes a 64 x 64 block of C, 4 x 4 per
 * work-item, stepping K by 16 through local memory.  Every load is bounds
 * checked (zeros outside), so M, N, K need not be multiples of anything. */
#define EK_TS 64
#define EK_TK 16
#define EK_WPT 4

__kernel __attribute__((reqd_work_group_size(16, 16, 1)))
void ek_gemm_nt(const int M, const int N, const int K, const float alpha,
                __global const float *A, const int lda,
                __global const float *B, const int ldb,
                __global const float *bias, const int has_bias,
                __global float *C, const int ldc, const int act,
                const int accumulate) {
    const int tx = get_local_id(0), ty = get_local_id(1);
    const int n0 = get_group_id(0) * EK_TS, m0 = get_group_id(1) * EK_TS;
    __local float As[EK_TK][EK_TS + 1];
    __local float Bs[EK_TK][EK_TS + 1];
    float acc[EK_WPT][EK_WPT];
    for (int i = 0; i < EK_WPT; i++)
        for (int j = 0; j < EK_WPT; j++) acc[i][j] = 0.0f;
    const int lid = ty * 16 + tx;
    for (int k0 = 0; k0 < K; k0 += EK_TK) {
        for (int i = 0; i < 4; i++) {
            const int idx = lid + i * 256, row = idx / EK_TK, col = idx % EK_TK;
            const int gk = k0 + col, gm = m0 + row, gn = n0 + row;
            As[col][row] = (gm < M && gk < K) ? A[(size_t)gm * lda + gk] : 0.0f;
            Bs[col][row] = (gn < N && gk < K) ? B[(size_t)gn * ldb + gk] : 0.0f;
        }
        barrier(CLK_LOCAL_MEM_FENCE);
        for (int k = 0; k < EK_TK; k++) {
            float a[EK_WPT], b[EK_WPT];
            for (int i = 0; i < EK_WPT; i++) a[i] = As[k][ty + 16 * i];
            for (int j = 0; j < EK_WPT; j++) b[j] = Bs[k][tx + 16 * j];
            for (int i = 0; i < EK_WPT; i++)
                for (int j = 0; j < EK_WPT; j++) acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    for (int i = 0; i < EK_WPT; i++) {
        const int m = m0 + ty + 16 * i;
        if (m >= M) continue;
        for (int j = 0; j < EK_WPT; j++) {
            const int n = n0 + tx + 16 * j;
            if (n >= N) continue;
            float v = alpha * acc[i][j] + (has_bias ? bias[n] : 0.0f);
            v = ek_act(v, act);
            __global float *c = C + (size_t)m * ldc + n;
            *c = accumulate ? *c + v : v;
        }
    }
}
