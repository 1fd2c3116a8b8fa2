/* gpu/embed_gpu.c — ek_gpu_embed: ek_embed with the encoder and pooling on
 * an OpenCL device.  Tokenization is ek_embed's own (runtime/tokenized.h,
 * so prompts, truncation and max_length mean exactly the same);
 * inputs are ordered longest first and pooled on the device in batches
 * (gpu/encoder.c), then the head after Pooling (Dense, Normalize,
 * Matryoshka truncation) runs on the host with the ops/ functions the CPU
 * path uses.  When the device cannot take even one input, the whole call is
 * ek_embed on the CPU (counted in cpu_fallbacks): never a partial result. */
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "model/model.h"
#include "ops/ops.h"
#include "runtime/ctx.h"
#include "runtime/device.h"
#include "runtime/tokenized.h"

ek_status ek_gpu_embed(ek_ctx *ctx, ek_gpu *g, const ek_model *m, const char *const *texts, const size_t *lens,
                       size_t n, const ek_embed_options *opts, float *out, int32_t *token_counts) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!g || !m || (!texts && n) || (!out && n))
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "ek_gpu_embed: NULL argument");
    ek_embed_options dflt;
    if (!opts) {
        ek_embed_options_init(&dflt);
        opts = &dflt;
    }
    /* Option checks and the output size are ek_embed's: an empty call
     * validates them without doing work. */
    int rc = ek_embed(ctx, m, texts, lens, 0, opts, out, NULL);
    if (rc || n == 0) return (ek_status)rc;
    /* Tokenized exactly as ek_embed does, into the context's buffers. */
    ek_tokenized t;
    int prompt_tokens = 0;
    rc = ek_tokenize_inputs(ctx, m, texts, lens, n, opts, &t, &prompt_tokens, &ctx->err);
    if (rc) return (ek_status)rc;
    return (ek_status)ek_gpu_embed_tokenized(ctx, g, m, texts, lens, n, opts, &t, prompt_tokens, out, token_counts);
}

int ek_gpu_embed_tokenized(ek_ctx *ctx, ek_gpu *g, const ek_model *m, const char *const *texts, const size_t *lens,
                           size_t n, const ek_embed_options *opts, const ek_tokenized *tp, int prompt_tokens,
                           float *out, int32_t *token_counts) {
    const ek_tokenized t = *tp;
    int rc = EK_OK;
    ek_gpu_pool_req req;
    memset(&req, 0, sizeof req);
    if (opts->pooling >= 0) {
        req.modes[0] = opts->pooling;
        req.n_modes = 1;
    } else {
        for (int k = 0; k < m->n_pool; k++) req.modes[k] = m->pool_order[k];
        req.n_modes = m->n_pool;
    }
    req.mask_from = m->include_prompt ? 0 : prompt_tokens;
    int H = m->w.cfg.hidden, P = req.n_modes * H, dim = ek_embed_dim(m, opts);
    int maxd = P;
    for (int k = 0; k < m->n_dense; k++) maxd = m->dense[k].out > maxd ? m->dense[k].out : maxd;
    float *pooled = malloc(sizeof *pooled * n * (size_t)P), *ta = malloc(sizeof *ta * 2 * (size_t)maxd);
    if (!pooled || !ta) {
        rc = ek_err_set(&ctx->err, EK_ERR_NOMEM, "out of memory");
    } else {
        int bs = opts->batch_size > 0 ? opts->batch_size : 32;
        int budget = opts->max_batch_tokens > 0 ? opts->max_batch_tokens : 8192;
        ek_device_ran_on(ctx, g->dev.platform, g->dev.device);
        rc = ek_gpu_pool_inputs(g, &m->w, t.ids, t.types, t.start, t.order, n, bs, budget, &req, pooled, &ctx->err);
        if (rc == EK_GPU_PRESSURE) {
            g->st.cpu_fallbacks++;
            rc = ek_embed_on_cpu(ctx, m, texts, lens, n, opts, out, token_counts);
        } else if (rc == EK_OK) {
            for (size_t i = 0; i < n; i++) {
                memcpy(ta, pooled + i * (size_t)P, sizeof(float) * (size_t)P);
                ek_model_head(m, opts->normalize, ta, ta + maxd, P, out + i * (size_t)dim, dim);
                if (token_counts) token_counts[i] = (int32_t)(t.start[i + 1] - t.start[i]);
            }
        }
    }
    free(pooled);
    free(ta);
    return rc;
}

static void pool_cpu(const float *hidden, const int32_t *lens, size_t n, int dim, int mode, const float *w,
                     int normalize, float *out) {
    size_t at = 0;
    for (size_t s = 0; s < n; s++) {
        ek_op_pool(mode, hidden + at * (size_t)dim, lens[s], dim, 0, w ? w + at : NULL, out + s * (size_t)dim);
        if (normalize) ek_op_l2_normalize(out + s * (size_t)dim, dim);
        at += (size_t)lens[s];
    }
}

ek_status ek_gpu_pool(ek_ctx *ctx, ek_gpu *g, const float *hidden, const int32_t *lens, size_t n, int dim, int mode,
                      const float *weights, int normalize, float *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (!g || !lens || !out || dim < 1 || mode < 0 || mode >= EK_POOL_COUNT || n > INT32_MAX ||
        (mode == EK_POOL_ATTENTION && !weights))
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_gpu_pool: bad arguments");
    int32_t *st = malloc(sizeof *st * (n + 1));
    if (!st) return (ek_status)ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    st[0] = 0;
    for (size_t s = 0; s < n; s++) {
        if (lens[s] < 0 || (int64_t)st[s] + lens[s] > INT32_MAX) {
            free(st);
            return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_gpu_pool: sequence %zu: bad length", s);
        }
        st[s + 1] = st[s] + lens[s];
    }
    size_t R = (size_t)st[n];
    if (R && !hidden) {
        free(st);
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_gpu_pool: NULL hidden");
    }
    ek_gbuf *b[4] = {0};
    int rc = ek_gpool_take(g, R * (size_t)dim * 4, &b[0], e);
    if (!rc) rc = ek_gpool_take(g, (n + 1) * 4, &b[1], e);
    if (!rc) rc = ek_gpool_take(g, R * 4 + 4, &b[2], e);
    if (!rc) rc = ek_gpool_take(g, n * (size_t)dim * 4, &b[3], e);
    if (!rc) rc = ek_gpu_upload(g, b[0]->mem, 0, hidden, R * (size_t)dim * 4, e);
    if (!rc) rc = ek_gpu_upload(g, b[1]->mem, 0, st, (n + 1) * 4, e);
    if (!rc && weights) rc = ek_gpu_upload(g, b[2]->mem, 0, weights, R * 4, e);
    if (!rc) rc = ek_gop_pool(g, mode, b[0]->mem, dim, b[1]->mem, (int)n, 0, b[2]->mem, b[3]->mem, dim, 0, e);
    if (!rc && normalize) rc = ek_gop_l2_normalize(g, b[3]->mem, (int)n, dim, e);
    if (!rc) rc = ek_gpu_finish(g, e);
    if (!rc) rc = ek_gpu_download(g, b[3]->mem, 0, out, n * (size_t)dim * 4, e);
    if (rc) g->cl.clFinish(g->queue);
    for (int i = 0; i < 4; i++) ek_gpool_give(g, b[i]);
    if (rc == EK_GPU_PRESSURE) {
        g->st.cpu_fallbacks++;
        ek_err_clear(e);
        pool_cpu(hidden, lens, n, dim, mode, weights, normalize, out);
        rc = EK_OK;
    }
    free(st);
    return (ek_status)rc;
}
