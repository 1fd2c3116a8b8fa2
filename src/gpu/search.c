/* gpu/search.c — matrices kept resident on the device, cosine similarity
 * (1:N with ek_cos_1n, N:M with the gemm kernel then ek_cos_scale) and
 * exact top-k (per-chunk candidates on the device, merged on the host).
 *
 * Queries run in chunks sized to the budget: a 1,000 x 100,000 score
 * matrix is 400 MB, more than some devices give one buffer.  A chunk that
 * still meets pressure is halved; a single query that cannot run is an
 * EK_GPU_PRESSURE the public calls turn into the CPU path. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "runtime/ctx.h"

struct ek_gpu_matrix {
    ek_gpu *g;
    const float *x;      /* host copy (caller's) */
    size_t rows, dim;
    float *inv;          /* host inverse norms: the resident key of the norms */
};

ek_status ek_gpu_matrix_new(ek_ctx *ctx, ek_gpu *g, const float *x, size_t rows, size_t dim, ek_gpu_matrix **out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!g || !x || !out || !rows || !dim || rows > INT32_MAX || dim > INT32_MAX)
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "gpu matrix: needs a device, rows and dim >= 1");
    ek_gpu_matrix *m = calloc(1, sizeof *m);
    float *inv = malloc(rows * sizeof *inv);
    if (!m || !inv) {
        free(m);
        free(inv);
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_NOMEM, "gpu matrix: out of memory");
    }
    /* Host norms: computed once here (the device recomputes nothing when
     * re-uploading after an eviction), in double as the CPU search. */
    for (size_t r = 0; r < rows; r++) {
        double s = 0;
        for (size_t c = 0; c < dim; c++) s += (double)x[r * dim + c] * x[r * dim + c];
        if (!isfinite(s))
            return free(m), free(inv),
                   (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "gpu matrix row %zu: NaN or Inf value", r);
        inv[r] = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
    }
    m->g = g;
    m->x = x;
    m->rows = rows;
    m->dim = dim;
    m->inv = inv;
    ek_err e;
    ek_gbuf *b;
    int fresh;
    /* Upload now (best effort: under pressure it happens on first use). */
    if (ek_gpool_resident(g, x, rows * dim * sizeof(float), &b, &fresh, &e) == EK_OK) {
        if (ek_gpu_upload(g, b->mem, 0, x, rows * dim * sizeof(float), &e) == EK_OK) b->valid = 1;
        ek_gpool_give(g, b);
    }
    *out = m;
    return EK_OK;
}

void ek_gpu_matrix_free(ek_gpu_matrix *m) {
    if (!m) return;
    ek_gpool_forget(m->g, m->x);
    ek_gpool_forget(m->g, m->inv);
    free(m->inv);
    free(m);
}

typedef struct held {
    ek_gbuf *b[8];
    int n;
} held;

static void give_all(ek_gpu *g, held *h) {
    for (int i = 0; i < h->n; i++) ek_gpool_give(g, h->b[i]);
    h->n = 0;
}

static int resident(ek_gpu *g, held *h, const float *p, size_t n, cl_mem *out, ek_err *e) {
    ek_gbuf *b;
    int fresh;
    int rc = ek_gpool_resident(g, p, n * sizeof(float), &b, &fresh, e);
    if (rc) return rc;
    h->b[h->n++] = b;
    if (fresh) {
        if ((rc = ek_gpu_upload(g, b->mem, 0, p, n * sizeof(float), e))) return rc;
        b->valid = 1;
    }
    *out = b->mem;
    return EK_OK;
}

static int scratch(ek_gpu *g, held *h, size_t bytes, cl_mem *out, ek_err *e) {
    ek_gbuf *b;
    int rc = ek_gpool_take(g, bytes, &b, e);
    if (rc) return rc;
    h->b[h->n++] = b;
    *out = b->mem;
    return EK_OK;
}

/* Scores of queries q[0..nq) against m into scores (device, [nq][rows]).
 * With host_out the scores are downloaded; with k > 0 the per-chunk top-k
 * candidates are made and downloaded into cs / ci instead. */
static int chunk_scores(ek_gpu *g, const float *q, size_t nq, ek_gpu_matrix *m, float *host_out, size_t k,
                        int nchunks, int chunk, float *cs, int32_t *ci, ek_err *e) {
    held h = {{0}, 0};
    const int rows = (int)m->rows, d = (int)m->dim;
    cl_mem x, xinv, qb, qinv, sc, cand_s = NULL, cand_i = NULL;
    int rc = resident(g, &h, m->x, m->rows * m->dim, &x, e);
    if (!rc) rc = resident(g, &h, m->inv, m->rows, &xinv, e);
    if (!rc) rc = scratch(g, &h, nq * m->dim * sizeof(float), &qb, e);
    if (!rc) rc = scratch(g, &h, nq * sizeof(float), &qinv, e);
    if (!rc) rc = scratch(g, &h, nq * m->rows * sizeof(float), &sc, e);
    if (!rc && k) rc = scratch(g, &h, nq * (size_t)nchunks * k * sizeof(float), &cand_s, e);
    if (!rc && k) rc = scratch(g, &h, nq * (size_t)nchunks * k * sizeof(int32_t), &cand_i, e);
    if (!rc) rc = ek_gpu_upload(g, qb, 0, q, nq * m->dim * sizeof(float), e);
    if (!rc) {
        if (nq == 1) {
            double s = 0;
            for (int c = 0; c < d; c++) s += (double)q[c] * q[c];
            float qi = s > 0 ? (float)(1.0 / sqrt(s)) : 0.0f;
            rc = ek_gop_cos_1n(g, qb, qi, x, d, rows, xinv, sc, e);
        } else {
            rc = ek_gop_inv_norm(g, qb, (int)nq, d, qinv, e);
            if (!rc) rc = ek_gop_gemm_nt(g, (int)nq, rows, d, 1.0f, qb, 0, d, x, 0, d, NULL, sc, 0, rows, 0, 0, e);
            if (!rc) rc = ek_gop_cos_scale(g, sc, (int)nq, rows, qinv, xinv, e);
        }
    }
    if (!rc && k) rc = ek_gop_topk_chunk(g, sc, (int)nq, rows, chunk, (int)k, nchunks, cand_s, cand_i, e);
    if (!rc) rc = ek_gpu_finish(g, e);
    if (!rc && host_out) rc = ek_gpu_download(g, sc, 0, host_out, nq * m->rows * sizeof(float), e);
    if (!rc && k) rc = ek_gpu_download(g, cand_s, 0, cs, nq * (size_t)nchunks * k * sizeof(float), e);
    if (!rc && k) rc = ek_gpu_download(g, cand_i, 0, ci, nq * (size_t)nchunks * k * sizeof(int32_t), e);
    if (rc) g->cl.clFinish(g->queue);
    give_all(g, &h);
    return rc;
}

/* Queries per chunk: the score block within a quarter of the budget. */
static size_t query_chunk(const ek_gpu *g, size_t nq, size_t rows) {
    size_t per = rows * sizeof(float) * 2 + 1;
    size_t c = g->pool.budget / 4 / per;
    if (g->max_alloc) {
        size_t c2 = g->max_alloc / (rows * sizeof(float));
        if (c2 < c) c = c2;
    }
    if (c < 1) c = 1;
    return c < nq ? c : nq;
}

static int check_q(ek_ctx *ctx, ek_gpu *g, const float *q, size_t nq, ek_gpu_matrix *m, const void *out) {
    ek_err_clear(&ctx->err);
    if (!g || !m || m->g != g || (nq && (!q || !out)))
        return ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "gpu similarity: missing device, matrix, queries or output");
    for (size_t i = 0; i < nq * m->dim; i++)
        if (!isfinite(q[i]))
            return ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "gpu similarity: query row %zu: NaN or Inf value",
                              i / m->dim);
    return EK_OK;
}

/* CPU fallback: the same formula (dot * inverse norms) in double. */
static void cpu_cosine(const float *q, size_t nq, const ek_gpu_matrix *m, float *out) {
    for (size_t i = 0; i < nq; i++) {
        const float *qi = q + i * m->dim;
        double s = 0;
        for (size_t c = 0; c < m->dim; c++) s += (double)qi[c] * qi[c];
        double iq = s > 0 ? 1.0 / sqrt(s) : 0.0;
        for (size_t j = 0; j < m->rows; j++) {
            const float *x = m->x + j * m->dim;
            double dot = 0;
            for (size_t c = 0; c < m->dim; c++) dot += (double)qi[c] * x[c];
            out[i * m->rows + j] = (float)(dot * iq * m->inv[j]);
        }
    }
}

ek_status ek_gpu_cosine(ek_ctx *ctx, ek_gpu *g, const float *q, size_t nq, ek_gpu_matrix *m, float *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    int rc = check_q(ctx, g, q, nq, m, out);
    if (rc) return (ek_status)rc;
    size_t step = query_chunk(g, nq, m->rows);
    for (size_t i = 0; i < nq;) {
        size_t c = step < nq - i ? step : nq - i;
        rc = chunk_scores(g, q + i * m->dim, c, m, out + i * m->rows, 0, 0, 0, NULL, NULL, &ctx->err);
        if (rc == EK_GPU_PRESSURE && c > 1) {
            step = c / 2;
            g->st.batch_splits++;
            continue;
        }
        if (rc == EK_GPU_PRESSURE) {
            g->st.cpu_fallbacks++;
            ek_err_clear(&ctx->err);
            cpu_cosine(q, nq, m, out);
            return EK_OK;
        }
        if (rc) return (ek_status)rc;
        i += c;
    }
    return EK_OK;
}

/* a before b: higher score, then lower index. */
static int better(float sa, int64_t ia, float sb, int64_t ib) { return sa > sb || (sa == sb && ia < ib); }

/* Keeps the k best of (s, i) in hits (sorted), n of them so far. */
static void push(ek_hit *hits, size_t *n, size_t k, float s, int64_t i) {
    if (i < 0) return;
    if (*n == k && !better(s, i, hits[k - 1].score, hits[k - 1].index)) return;
    size_t p = *n < k ? (*n)++ : k - 1;
    while (p > 0 && better(s, i, hits[p - 1].score, hits[p - 1].index)) {
        hits[p] = hits[p - 1];
        p--;
    }
    hits[p].score = s;
    hits[p].index = i;
}

ek_status ek_gpu_topk(ek_ctx *ctx, ek_gpu *g, const float *q, size_t nq, ek_gpu_matrix *m, size_t k, ek_hit *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    int rc = check_q(ctx, g, q, nq, m, out);
    if (rc) return (ek_status)rc;
    if (k < 1) return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "gpu top-k: k must be >= 1");
    if (k > m->rows) k = m->rows;
    /* Chunks of ~1024 scores per work-item: enough items to fill a device,
     * few enough candidates to merge on the host. */
    int chunk = 1024;
    int nchunks = (int)((m->rows + (size_t)chunk - 1) / (size_t)chunk);
    size_t ncand = (size_t)nchunks * k;
    size_t step = query_chunk(g, nq, m->rows);
    float *cs = malloc(step * ncand * sizeof *cs);
    int32_t *ci = malloc(step * ncand * sizeof *ci);
    float *cpu = NULL;
    if (!cs || !ci) {
        rc = ek_err_set(&ctx->err, EK_ERR_NOMEM, "gpu top-k: out of memory");
        goto done;
    }
    for (size_t i = 0; i < nq;) {
        size_t c = step < nq - i ? step : nq - i;
        rc = chunk_scores(g, q + i * m->dim, c, m, NULL, k, nchunks, chunk, cs, ci, &ctx->err);
        if (rc == EK_GPU_PRESSURE && c > 1) {
            step = c / 2;
            g->st.batch_splits++;
            continue;
        }
        if (rc == EK_GPU_PRESSURE) {
            /* One query at a time on the CPU, for the whole call. */
            g->st.cpu_fallbacks++;
            ek_err_clear(&ctx->err);
            cpu = malloc(m->rows * sizeof *cpu);
            if (!cpu) {
                rc = ek_err_set(&ctx->err, EK_ERR_NOMEM, "gpu top-k: out of memory");
                goto done;
            }
            for (size_t j = 0; j < nq; j++) {
                cpu_cosine(q + j * m->dim, 1, m, cpu);
                size_t n = 0;
                for (size_t r = 0; r < m->rows; r++) push(out + j * k, &n, k, cpu[r], (int64_t)r);
            }
            rc = EK_OK;
            goto done;
        }
        if (rc) goto done;
        for (size_t j = 0; j < c; j++) {
            size_t n = 0;
            for (size_t t = 0; t < ncand; t++) push(out + (i + j) * k, &n, k, cs[j * ncand + t], ci[j * ncand + t]);
        }
        i += c;
    }
done:
    free(cs);
    free(ci);
    free(cpu);
    return (ek_status)rc;
}
