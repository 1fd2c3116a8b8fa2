/* search/scan.c — exact top-k search over an ek_index (index.h).
 *
 * The rows are cut into tiles; each thread scans a contiguous range of
 * tiles in ascending order, scores a tile for a batch of queries at once
 * (kernels.h, or oneDNN sgemm for many float queries), turns scores into
 * keys (higher is better) and offers them to one bounded heap per query
 * (topk.h).  The threads' heaps are then merged, the candidates of a
 * quantized index optionally rescored on floats, and the results sorted.
 * Everything a search needs comes from the context's workspace, sized once
 * per call before the scan and kept for the next call. */
#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "compute/gemm.h"
#include "runtime/ctx.h"
#include "search/index.h"
#include "search/quant.h"
#include "search/topk.h"

/* Rows per tile (a multiple of both block sizes): 1024 f32 rows of 384 dims
 * are 1.5 MB streamed once; 1024 int8 rows (384 KB) stay in L2 while a batch
 * of queries passes over them. */
#define TILE 1024
/* Queries scored together; more are processed in batches of this size. */
#define QBATCH 64
/* From this many queries, float tiles go through sgemm instead of one
 * row-dot pass per query. */
#define GEMM_MIN_QUERIES 8

typedef struct prep {
    size_t nq;
    float *qf;      /* nq x d: the queries, first d dims */
    float *qaux;    /* nq: 1/|q| (cosine) or |q|^2 (L2) */
    int8_t *r8;     /* int8: nq x 4G rounded query * step / alpha */
    float *alpha;   /* int8: dot ~= c0 + alpha * integer dot */
    float *c0;
    uint64_t *qw;   /* binary: nq x W words */
} prep;

typedef struct tbuf {
    float *key;     /* QBATCH x kk heap keys */
    int64_t *idx;   /* QBATCH x kk heap indices */
    ek_topk *heap;  /* QBATCH */
    float *s;       /* QBATCH x TILE scores */
    int32_t *i32;   /* QBATCH x TILE integer scores */
    float *conv;    /* TILE x d: 16-bit rows converted for sgemm */
    float *mkey, *fkey, *row; /* merge: kk candidates, k results, one row */
    int64_t *midx, *fidx;
} tbuf;

static void prep_queries(const ek_index *x, const float *q, size_t nq, size_t qdim, prep *p, uint8_t *packed) {
    size_t d = x->d, dq = qdim < d ? qdim : d;
    p->nq = nq;
    for (size_t i = 0; i < nq; i++) {
        float *qf = p->qf + i * d;
        memcpy(qf, q + i * qdim, dq * sizeof *qf);
        for (size_t j = dq; j < d; j++) qf[j] = 0.0f;
        float n2;
        x->kern->dot_f32(qf, qf, 0, 1, d, &n2);
        p->qaux[i] = ek_qaux(x->metric, n2);
        if (x->type == EK_VEC_INT8) {
            /* dot(q, start + step * (c + 128)) = c0 + sum (q * step) c;
             * q * step is rounded to int8 with one scale per query. */
            double c0 = 0;
            float amax = 0.0f;
            for (size_t j = 0; j < d; j++) {
                c0 += (double)qf[j] * ((double)x->start[j] + 128.0 * (double)x->step[j]);
                float v = fabsf(qf[j] * x->step[j]);
                if (v > amax) amax = v;
            }
            float alpha = amax / 127.0f, inv = amax > 0.0f ? 127.0f / amax : 0.0f;
            int8_t *r = p->r8 + i * x->G * 4;
            memset(r, 0, x->G * 4);
            for (size_t j = 0; j < d; j++) {
                long v = lrintf(qf[j] * x->step[j] * inv);
                r[j] = (int8_t)(v > 127 ? 127 : v < -127 ? -127 : v);
            }
            p->alpha[i] = alpha;
            p->c0[i] = (float)c0;
        } else if (x->type == EK_VEC_BINARY) {
            ek_q_binary(qf, 1, d, d, packed);
            ek_q_words(packed, d, p->qw + i * x->W);
        }
    }
}

/* Scores rows [row0, row0 + rows) for the batch into t->s as keys. */
static void score_tile(const ek_index *x, const prep *p, size_t row0, size_t rows, tbuf *t) {
    const ek_kern *k = x->kern;
    size_t d = x->d, nq = p->nq;
    float *S = t->s;
    if (x->type == EK_VEC_INT8 || x->type == EK_VEC_BINARY) {
        int bin = x->type == EK_VEC_BINARY;
        size_t B = bin ? EK_BIN_BLOCK : EK_I8_BLOCK, nblk = (rows + B - 1) / B;
        if (bin) k->hamming_blk(p->qw, nq, x->bblk + row0 / B * x->W * B, nblk, x->W, t->i32, TILE);
        else k->dot_i8_blk(p->r8, nq, x->blk + row0 / B * x->G * 64, nblk, x->G, t->i32, TILE);
        for (size_t qi = 0; qi < nq; qi++) {
            if (bin) k->i32_to_key(t->i32 + qi * TILE, rows, -1.0f, 0.0f, S + qi * TILE); /* key = -distance */
            else k->i32_to_key(t->i32 + qi * TILE, rows, p->alpha[qi], p->c0[qi], S + qi * TILE);
        }
    } else {
        size_t es = x->type == EK_VEC_F32 ? 4 : 2;
        const char *base = (const char *)x->fdata + row0 * x->fstride * es;
        if (nq >= GEMM_MIN_QUERIES) {
            const float *X = (const float *)(const void *)base;
            size_t ld = x->fstride;
            if (x->type != EK_VEC_F32) {
                for (size_t i = 0; i < rows; i++)
                    ek_row_to_f32(k, x->type, base, x->fstride, i, d, t->conv + i * d);
                X = t->conv;
                ld = d;
            }
            ek_gemm_nt((int)nq, (int)rows, (int)d, 1.0f, p->qf, (int)d, X, (int)ld, 0.0f, S, TILE);
        } else {
            for (size_t qi = 0; qi < nq; qi++) {
                const float *q = p->qf + qi * d;
                if (x->type == EK_VEC_F32) k->dot_f32(q, (const float *)(const void *)base, x->fstride, rows, d, S + qi * TILE);
                else if (x->type == EK_VEC_F16) k->dot_f16(q, (const uint16_t *)(const void *)base, x->fstride, rows, d, S + qi * TILE);
                else k->dot_bf16(q, (const uint16_t *)(const void *)base, x->fstride, rows, d, S + qi * TILE);
            }
        }
    }
    if (x->type == EK_VEC_BINARY || x->metric == EK_METRIC_DOT) return;
    const float *aux = x->rowaux + row0;
    for (size_t qi = 0; qi < nq; qi++) {
        float *s = S + qi * TILE, qa = p->qaux[qi];
        if (x->metric == EK_METRIC_COSINE)
            for (size_t i = 0; i < rows; i++) s[i] = s[i] * qa * aux[i];
        else
            for (size_t i = 0; i < rows; i++) {
                float d2 = qa + aux[i] - 2.0f * s[i];
                s[i] = d2 > 0.0f ? -d2 : 0.0f;
            }
    }
}

/* The exact key of row i for query qf: on the float originals when the index
 * has them, else on the decoded row (int8 dequantized, binary bits 0 / 1). */
static float rescore_key(const ek_index *x, const float *qf, float qaux, int64_t i, float *row) {
    size_t d = x->d;
    const float *r = row;
    if (x->has_orig) {
        d = x->rd;
        if (x->orig.type == EK_VEC_F32) r = (const float *)x->orig.data + (size_t)i * x->orig.stride;
        else ek_row_to_f32(x->kern, x->orig.type, x->orig.data, x->orig.stride, (size_t)i, d, row);
    } else if (x->type == EK_VEC_INT8) {
        size_t b = (size_t)i / EK_I8_BLOCK, rr = (size_t)i % EK_I8_BLOCK;
        for (size_t j = 0; j < d; j++) {
            int8_t c = x->blk[((b * x->G + j / 4) * EK_I8_BLOCK + rr) * 4 + j % 4];
            row[j] = x->start[j] + x->step[j] * (float)(c + 128);
        }
    } else {
        size_t b = (size_t)i / EK_BIN_BLOCK, rr = (size_t)i % EK_BIN_BLOCK;
        for (size_t j = 0; j < d; j++) {
            uint64_t w = x->bblk[(b * x->W + j / 64) * EK_BIN_BLOCK + rr];
            row[j] = (float)((w >> (63 - j % 64)) & 1u);
        }
    }
    float dot, n2 = 0.0f;
    x->kern->dot_f32(qf, r, 0, 1, d, &dot);
    if (x->metric != EK_METRIC_DOT) x->kern->dot_f32(r, r, 0, 1, d, &n2);
    return ek_key_of(x->metric, dot, qaux, ek_qaux(x->metric, n2));
}

static void prefetch_row(const ek_index *x, int64_t i) {
    if (!x->has_orig) return;
    size_t es = x->orig.type == EK_VEC_F32 ? 4 : 2;
    const char *r = (const char *)x->orig.data + (size_t)i * x->orig.stride * es;
    for (size_t b = 0; b < x->rd * es; b += 64) __builtin_prefetch(r + b);
}

ek_status ek_index_search(ek_ctx *ctx, const ek_index *x, const float *queries, size_t nq, size_t qdim,
                          const ek_search_options *opts, ek_hit *out, size_t *per_query) {
    if (!ctx || !x || !opts || (!queries && nq) || (!out && nq)) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    ek_err *e = &ctx->err;
    if (opts->k < 1) return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "search: k must be at least 1");
    int binary = x->type == EK_VEC_BINARY;
    size_t r8 = (x->dim_in + 7) / 8 * 8;
    int dim_ok = qdim == x->dim_in || qdim == x->d ||
                 (binary && ((qdim + 7) / 8 * 8 == r8 || (qdim + 7) / 8 * 8 == (x->d + 7) / 8 * 8) && qdim <= x->dim_in);
    if (!dim_ok)
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "search: query dimension %zu does not match the index (%zu%s)",
                                     qdim, x->dim_in, x->d != x->dim_in ? ", or its searched dimension" : "");
    for (size_t i = 0; i < nq; i++)
        if (!ek_all_finite(queries + i * qdim, qdim))
            return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "search: query row %zu: NaN or Inf value", i);
    size_t k = opts->k < x->n ? opts->k : x->n;
    int rescoring = (x->type == EK_VEC_INT8 || binary) && opts->rescore > 0;
    size_t kk = rescoring ? (opts->rescore > k ? opts->rescore : k) : k;
    if (kk > x->n) kk = x->n;
    if (per_query) *per_query = k;
    if (nq == 0) return EK_OK;

    int T = ek_ctx_threads(ctx);
    size_t ntiles = (x->n + TILE - 1) / TILE;
    if ((size_t)T > ntiles) T = (int)ntiles;
    size_t d = x->d, Q = nq < QBATCH ? nq : QBATCH;
    int gemm = x->type != EK_VEC_INT8 && !binary && Q >= GEMM_MIN_QUERIES;
    size_t conv_n = gemm && x->type != EK_VEC_F32 ? (size_t)TILE * d : 0;

    /* One allocation, carved twice: first to size it, then for real. */
    prep p;
    uint8_t *packed;
    tbuf *tb;
    char *mem = NULL;
    for (int pass = 0; pass < 2; pass++) {
        char *cur = mem;
        size_t off = 0;
#define CARVE(ptr, count)                                                    \
    do {                                                                     \
        (ptr) = cur ? (void *)(cur + off) : NULL;                            \
        off += ((count) * sizeof *(ptr) + 63) / 64 * 64;                     \
    } while (0)
        CARVE(p.qf, Q * d);
        CARVE(p.qaux, Q);
        CARVE(p.alpha, Q);
        CARVE(p.c0, Q);
        CARVE(p.r8, Q * x->G * 4);
        CARVE(p.qw, Q * x->W);
        CARVE(packed, d / 8 + 8);
        CARVE(tb, (size_t)T);
        for (int t = 0; pass && t < T; t++) {
            CARVE(tb[t].key, Q * kk);
            CARVE(tb[t].idx, Q * kk);
            CARVE(tb[t].heap, Q);
            CARVE(tb[t].s, Q * TILE);
            CARVE(tb[t].i32, Q * TILE);
            CARVE(tb[t].conv, conv_n);
            CARVE(tb[t].mkey, kk);
            CARVE(tb[t].midx, kk);
            CARVE(tb[t].fkey, k);
            CARVE(tb[t].fidx, k);
            CARVE(tb[t].row, d);
        }
#undef CARVE
        if (pass) break;
        size_t per_thread = 11 * 64 + (Q + 1) * kk * (sizeof(float) + sizeof(int64_t)) + Q * sizeof(ek_topk) +
                            Q * TILE * (sizeof(float) + sizeof(int32_t)) + conv_n * sizeof(float) +
                            k * (sizeof(float) + sizeof(int64_t)) + d * sizeof(float);
        /* the context's workspace: reused by the next search, so repeated
         * searches do not map and zero fresh pages */
        mem = ek_ctx_workspace(ctx, off + per_thread * (size_t)T);
        if (!mem) return (ek_status)ek_err_set(e, EK_ERR_NOMEM, "search: out of memory (%d threads, %zu candidates)", T, kk);
    }

    for (size_t q0 = 0; q0 < nq; q0 += Q) {
        size_t bq = nq - q0 < Q ? nq - q0 : Q;
        prep_queries(x, queries + q0 * qdim, bq, qdim, &p, packed);
        int used = T;
#pragma omp parallel num_threads(T)
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            if (t == 0) used = nt;
            /* one thread per sgemm call: the parallelism is over tiles */
            omp_set_num_threads(1);
            tbuf *b = &tb[t];
            for (size_t qi = 0; qi < bq; qi++) ek_topk_init(&b->heap[qi], b->key + qi * kk, b->idx + qi * kk, kk);
            size_t t0 = ntiles * (size_t)t / (size_t)nt, t1 = ntiles * (size_t)(t + 1) / (size_t)nt;
            for (size_t tile = t0; tile < t1; tile++) {
                size_t row0 = tile * TILE, rows = x->n - row0 < TILE ? x->n - row0 : TILE;
                score_tile(x, &p, row0, rows, b);
                for (size_t qi = 0; qi < bq; qi++) ek_topk_scan(&b->heap[qi], b->s + qi * TILE, rows, (int64_t)row0, x->kern->first_above);
            }
        }
        /* merge the threads' heaps, rescore, sort: queries in parallel */
#pragma omp parallel for schedule(dynamic, 1) num_threads(T)
        for (size_t qi = 0; qi < bq; qi++) {
            tbuf *w = &tb[omp_get_thread_num()];
            ek_topk m;
            ek_topk_init(&m, w->mkey, w->midx, kk);
            for (int t = 0; t < used; t++)
                for (size_t j = 0; j < tb[t].heap[qi].n; j++) ek_topk_push(&m, tb[t].heap[qi].key[j], tb[t].heap[qi].idx[j]);
            ek_hit *o = out + (q0 + qi) * k;
            if (rescoring) {
                /* re-rank the candidates on floats, keep the best k */
                ek_topk f;
                ek_topk_init(&f, w->fkey, w->fidx, k);
                for (size_t j = 0; j < m.n; j++) {
                    /* the candidates are scattered: ask for a later row's
                     * lines now so the misses overlap */
                    if (j + 4 < m.n) prefetch_row(x, m.idx[j + 4]);
                    ek_topk_push(&f, rescore_key(x, p.qf + qi * d, p.qaux[qi], m.idx[j], w->row), m.idx[j]);
                }
                ek_topk_sort(&f);
                for (size_t j = 0; j < k; j++)
                    o[j] = (ek_hit){f.idx[j], x->metric == EK_METRIC_L2 ? 0.0f - f.key[j] : f.key[j]};
            } else {
                ek_topk_sort(&m);
                int negate = binary || x->metric == EK_METRIC_L2;
                for (size_t j = 0; j < k; j++) o[j] = (ek_hit){m.idx[j], negate ? 0.0f - m.key[j] : m.key[j]};
            }
        }
    }
    return EK_OK;
}
