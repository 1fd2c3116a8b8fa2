/* compute/gemm.c — matrix products on oneDNN: the plain sgemm wrappers, the
 * prepared dense-layer plans (matmul primitive with fused bias / GELU /
 * residual add) and the thread-count helpers.  All oneDNN calls of embedkit
 * live here. */
#include "compute/gemm.h"

#include <omp.h>
#include <oneapi/dnnl/dnnl.h>
#include <string.h>

void ek_gemm_nt(int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    /* Row-major: op(B) = B^T is K x N, B itself is stored N x K (ldb). */
    dnnl_sgemm('N', 'T', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ek_gemm_nn(int M, int N, int K, float alpha, const float *A, int lda,
                const float *B, int ldb, float beta, float *C, int ldc) {
    if (M <= 0 || N <= 0) return;
    dnnl_sgemm('N', 'N', M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}

void ek_compute_set_threads(int threads) {
    omp_set_num_threads(threads > 0 ? threads : ek_compute_cores());
}

int ek_compute_cores(void) {
    int n = omp_get_num_procs();
    return n > 0 ? n : 1;
}

/* ---- engine ------------------------------------------------------------- */

int ek_compute_open(ek_compute *c) {
    memset(c, 0, sizeof *c);
    if (dnnl_engine_create(&c->engine, dnnl_cpu, 0) != dnnl_success) {
        c->engine = NULL;
        return -1;
    }
    if (dnnl_stream_create(&c->stream, c->engine, dnnl_stream_default_flags) !=
        dnnl_success) {
        dnnl_engine_destroy(c->engine);
        memset(c, 0, sizeof *c);
        return -1;
    }
    return 0;
}

void ek_compute_close(ek_compute *c) {
    if (c->stream) dnnl_stream_destroy(c->stream);
    if (c->engine) dnnl_engine_destroy(c->engine);
    memset(c, 0, sizeof *c);
}

/* ---- dense plans -------------------------------------------------------- */

/* A 2-D f32 descriptor of rows x cols with the given strides. */
static int md2(dnnl_memory_desc_t *md, int rows, int cols, int rs, int cs) {
    dnnl_dims_t dims = {rows, cols}, strides = {rs, cs};
    return dnnl_memory_desc_init_by_strides(md, 2, dims, dnnl_f32, strides) ==
                   dnnl_success
               ? 0
               : -1;
}

static int make_attr(dnnl_primitive_attr_t *attr, unsigned flags) {
    if (dnnl_primitive_attr_create(attr) != dnnl_success) return -1;
    if (!(flags & (EK_DENSE_GELU | EK_DENSE_ACCUMULATE))) return 0;
    dnnl_post_ops_t po;
    if (dnnl_post_ops_create(&po) != dnnl_success) return -1;
    int ok = 1;
    /* Post-ops run in order: the sum reads the old C, then the eltwise. */
    if (flags & EK_DENSE_ACCUMULATE)
        ok &= dnnl_post_ops_append_sum(po, 1.0f) == dnnl_success;
    if (flags & EK_DENSE_GELU)
        ok &= dnnl_post_ops_append_eltwise(po, 1.0f, dnnl_eltwise_gelu_erf,
                                           0.0f, 0.0f) == dnnl_success;
    ok &= dnnl_primitive_attr_set_post_ops(*attr, po) == dnnl_success;
    dnnl_post_ops_destroy(po);
    return ok ? 0 : -1;
}

int ek_dense_plan_init(ek_dense_plan *p, const ek_compute *c, int M, int N,
                       int K, int lda, int ldc, unsigned flags) {
    memset(p, 0, sizeof *p);
    if (M <= 0 || N <= 0 || K <= 0 || lda < K || ldc < N || !c->engine)
        return -1;
    dnnl_memory_desc_t a_md, w_md, b_md, c_md;
    /* Weights are PyTorch's [N][K]; as matmul's K x N operand that is the
     * transposed ("ba") layout: stride 1 along K, K along N. */
    if (md2(&a_md, M, K, lda, 1) || md2(&w_md, K, N, 1, K) ||
        md2(&b_md, 1, N, N, 1) || md2(&c_md, M, N, ldc, 1))
        return -1;
    int has_bias = (flags & EK_DENSE_BIAS) != 0;
    dnnl_matmul_desc_t desc;
    if (dnnl_matmul_desc_init(&desc, &a_md, &w_md, has_bias ? &b_md : NULL,
                              &c_md) != dnnl_success)
        return -1;
    dnnl_primitive_attr_t attr = NULL;
    dnnl_primitive_desc_t pd = NULL;
    int rc = -1;
    if (make_attr(&attr, flags)) goto out;
    if (dnnl_primitive_desc_create(&pd, &desc, attr, c->engine, NULL) !=
        dnnl_success) {
        pd = NULL;
        goto out;
    }
    if (dnnl_primitive_create(&p->prim, pd) != dnnl_success) {
        p->prim = NULL;
        goto out;
    }
    /* Memory objects without data; run() points them at the buffers. */
    if (dnnl_memory_create(&p->src, &a_md, c->engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&p->wei, &w_md, c->engine, DNNL_MEMORY_NONE) ||
        dnnl_memory_create(&p->dst, &c_md, c->engine, DNNL_MEMORY_NONE) ||
        (has_bias &&
         dnnl_memory_create(&p->bias, &b_md, c->engine, DNNL_MEMORY_NONE)))
        goto out;
    p->stream = c->stream;
    rc = 0;
out:
    if (attr) dnnl_primitive_attr_destroy(attr);
    if (pd) dnnl_primitive_desc_destroy(pd);
    if (rc) ek_dense_plan_free(p);
    return rc;
}

int ek_dense_plan_run(ek_dense_plan *p, const float *A, const float *W,
                      const float *bias, float *C) {
    /* oneDNN takes non-const handles; it only reads src, weights and bias. */
    if (dnnl_memory_set_data_handle(p->src, (void *)A) ||
        dnnl_memory_set_data_handle(p->wei, (void *)W) ||
        dnnl_memory_set_data_handle(p->dst, C))
        return -1;
    dnnl_exec_arg_t args[4] = {{DNNL_ARG_SRC, p->src},
                               {DNNL_ARG_WEIGHTS, p->wei},
                               {DNNL_ARG_DST, p->dst},
                               {DNNL_ARG_BIAS, p->bias}};
    int nargs = 3;
    if (p->bias) {
        if (!bias || dnnl_memory_set_data_handle(p->bias, (void *)bias))
            return -1;
        nargs = 4;
    }
    if (dnnl_primitive_execute(p->prim, p->stream, nargs, args) != dnnl_success)
        return -1;
    return dnnl_stream_wait(p->stream) == dnnl_success ? 0 : -1;
}

void ek_dense_plan_free(ek_dense_plan *p) {
    if (p->prim) dnnl_primitive_destroy(p->prim);
    if (p->src) dnnl_memory_destroy(p->src);
    if (p->wei) dnnl_memory_destroy(p->wei);
    if (p->bias) dnnl_memory_destroy(p->bias);
    if (p->dst) dnnl_memory_destroy(p->dst);
    memset(p, 0, sizeof *p);
}
