/* search/similarity.c — ek_similarity (pairs, one against many, many
 * against many) and the public quantization calls.  Small products use the
 * row-dot kernels; from GEMM_MIN rows on both sides the products go through
 * oneDNN's sgemm and the metric is applied from the norms. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "compute/gemm.h"
#include "runtime/ctx.h"
#include "search/index.h"
#include "search/quant.h"

#define GEMM_MIN 8

static int check_rows(const float *x, size_t n, size_t d, const char *which, ek_err *e) {
    for (size_t i = 0; i < n; i++)
        if (!ek_all_finite(x + i * d, d))
            return ek_err_set(e, EK_ERR_INVALID_ARG, "%s row %zu: NaN or Inf value", which, i);
    return 0;
}

ek_status ek_similarity(ek_ctx *ctx, ek_metric metric, const float *a, size_t na, size_t da, const float *b,
                        size_t nb, size_t db, float *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    ek_err *e = &ctx->err;
    if ((unsigned)metric > EK_METRIC_L2) return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "similarity: unknown metric");
    if (da != db)
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "similarity: dimension mismatch: a has %zu, b has %zu", da, db);
    if ((na && !a) || (nb && !b) || (na && nb && !out) || da == 0)
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "similarity: missing input or zero dimension");
    if (check_rows(a, na, da, "a", e) || check_rows(b, nb, db, "b", e)) return (ek_status)e->status;
    int level = ek_isa_choose();
    if (level < 0)
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "EK_ISA=%s: expected scalar, avx2 or avx512", getenv("EK_ISA"));
    const ek_kern *k = ek_kern_for_level(level);
    size_t d = da;
    float *aux = NULL;
    if (metric != EK_METRIC_DOT) {
        aux = malloc((na + nb) * sizeof *aux);
        if (!aux) return (ek_status)ek_err_set(e, EK_ERR_NOMEM, "similarity: out of memory");
        for (size_t i = 0; i < na; i++) k->dot_f32(a + i * d, a + i * d, 0, 1, d, &aux[i]);
        for (size_t j = 0; j < nb; j++) k->dot_f32(b + j * d, b + j * d, 0, 1, d, &aux[na + j]);
        for (size_t i = 0; i < na + nb; i++) aux[i] = ek_qaux(metric, aux[i]);
    }
    if (na >= GEMM_MIN && nb >= GEMM_MIN) {
        ek_compute_set_threads(ek_ctx_threads(ctx));
        ek_gemm_nt((int)na, (int)nb, (int)d, 1.0f, a, (int)d, b, (int)d, 0.0f, out, (int)nb);
        if (metric != EK_METRIC_DOT)
            for (size_t i = 0; i < na; i++)
                for (size_t j = 0; j < nb; j++) {
                    float key = ek_key_of(metric, out[i * nb + j], aux[i], aux[na + j]);
                    out[i * nb + j] = metric == EK_METRIC_L2 ? 0.0f - key : key;
                }
    } else {
        for (size_t i = 0; i < na; i++) {
            float *o = out + i * nb;
            if (metric == EK_METRIC_L2) {
                /* direct (q - x)^2: no cancellation for close vectors */
                k->l2_f32(a + i * d, b, d, nb, d, o);
                continue;
            }
            k->dot_f32(a + i * d, b, d, nb, d, o);
            if (metric == EK_METRIC_COSINE)
                for (size_t j = 0; j < nb; j++) o[j] = o[j] * aux[i] * aux[na + j];
        }
    }
    free(aux);
    return EK_OK;
}

static int qcheck(ek_ctx *ctx, const float *x, size_t n, size_t dim, const void *outp) {
    ek_err_clear(&ctx->err);
    if ((n && !x) || !outp || dim == 0)
        return ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "quantize: missing input or output, or zero dimension");
    return check_rows(x, n, dim, "quantize: input", &ctx->err);
}

ek_status ek_quantize_ranges(ek_ctx *ctx, const float *x, size_t n, size_t dim, float *ranges) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    if (qcheck(ctx, x, n, dim, ranges)) return (ek_status)ctx->err.status;
    if (n == 0) return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "quantize: no calibration rows");
    ek_q_ranges(x, n, dim, dim, ranges);
    return EK_OK;
}

ek_status ek_quantize_int8(ek_ctx *ctx, const float *x, size_t n, size_t dim, const float *ranges, int8_t *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    if (qcheck(ctx, x, n, dim, out)) return (ek_status)ctx->err.status;
    if (!ranges) return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "quantize: int8 needs ranges");
    if (!ek_all_finite(ranges, 2 * dim))
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "quantize: ranges hold NaN or Inf");
    ek_q_int8(x, n, dim, dim, ranges, out);
    return EK_OK;
}

ek_status ek_quantize_binary(ek_ctx *ctx, const float *x, size_t n, size_t dim, uint8_t *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    if (qcheck(ctx, x, n, dim, out)) return (ek_status)ctx->err.status;
    ek_q_binary(x, n, dim, dim, out);
    return EK_OK;
}
