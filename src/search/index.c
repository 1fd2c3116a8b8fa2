/* search/index.c — building an ek_index: choosing the kernels, checking
 * every row (NaN / Inf name the row), converting or quantizing into the
 * searched layout, and the per-row norms the metric needs.  Searching is in
 * scan.c. */
#include "search/index.h"

#include <math.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "compute/gemm.h"
#include "runtime/ctx.h"
#include "search/quant.h"

int ek_metric_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "cosine") || !strcmp(name, "cos")) return EK_METRIC_COSINE;
    if (!strcmp(name, "dot") || !strcmp(name, "ip")) return EK_METRIC_DOT;
    if (!strcmp(name, "l2") || !strcmp(name, "euclidean")) return EK_METRIC_L2;
    return -1;
}

const char *ek_metric_name(ek_metric m) {
    static const char *n[] = {"cosine", "dot", "l2"};
    return (unsigned)m <= EK_METRIC_L2 ? n[m] : "unknown";
}

int ek_vec_type_from_name(const char *name) {
    static const char *n[] = {"f32", "f16", "bf16", "int8", "binary"};
    for (int i = 0; name && i < 5; i++)
        if (!strcmp(name, n[i])) return i;
    if (name && !strcmp(name, "float32")) return EK_VEC_F32;
    if (name && !strcmp(name, "float16")) return EK_VEC_F16;
    if (name && !strcmp(name, "ubinary")) return EK_VEC_BINARY;
    return -1;
}

const char *ek_vec_type_name(ek_vec_type t) {
    static const char *n[] = {"f32", "f16", "bf16", "int8", "binary"};
    return (unsigned)t <= EK_VEC_BINARY ? n[t] : "unknown";
}

void ek_index_options_init(ek_index_options *o) {
    memset(o, 0, sizeof *o);
    o->type = (ek_vec_type)-1; /* the input's own type */
    o->metric = EK_METRIC_COSINE;
}

int ek_all_finite(const float *x, size_t n) {
    /* x - x is 0 for finite x and NaN for NaN and Inf: one test per value,
     * and the loop vectorises. */
    float acc = 0.0f;
    for (size_t i = 0; i < n; i++) acc += x[i] - x[i];
    return acc == 0.0f;
}

static int is_float_type(ek_vec_type t) {
    return t == EK_VEC_F32 || t == EK_VEC_F16 || t == EK_VEC_BF16;
}

static size_t elem_size(ek_vec_type t) { return t == EK_VEC_F32 ? 4 : is_float_type(t) ? 2 : 1; }

void ek_row_to_f32(const ek_kern *k, ek_vec_type t, const void *data, size_t stride,
                   size_t row, size_t d, float *out) {
    if (t == EK_VEC_F32) memcpy(out, (const float *)data + row * stride, d * sizeof *out);
    else if (t == EK_VEC_F16) k->f16_to_f32((const uint16_t *)data + row * stride, d, out);
    else k->bf16_to_f32((const uint16_t *)data + row * stride, d, out);
}

ek_status ek_matrix_to_f32(ek_ctx *ctx, const ek_matrix *m, float *out) {
    if (!ctx || !m || (!out && m->rows)) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!is_float_type(m->type))
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "ek_matrix_to_f32: %s is not a float type",
                                     ek_vec_type_name(m->type));
    int level = ek_isa_choose();
    const ek_kern *k = ek_kern_for_level(level < 0 ? EK_ISA_SCALAR : level);
    for (size_t i = 0; i < m->rows; i++)
        ek_row_to_f32(k, m->type, m->data, m->stride ? m->stride : m->dim, i, m->dim, out + i * m->dim);
    return EK_OK;
}

void ek_index_free(ek_index *x) {
    if (!x) return;
    free(x->fown);
    free(x->blk);
    free(x->start);
    free(x->bblk);
    free(x->rowaux);
    free(x);
}

size_t ek_index_rows(const ek_index *x) { return x ? x->n : 0; }
size_t ek_index_dim(const ek_index *x) { return x ? x->d : 0; }
const char *ek_index_isa(const ek_index *x) { return x ? x->kern->name : "none"; }

/* Checks the float rows and fills rowaux from their squared norms over the
 * first d dims.  Returns the first row holding NaN or Inf, -1 if none, -2
 * when out of memory.  (A norm that overflows to inf is accepted.) */
static long check_float_rows(const ek_index *x, const ek_matrix *m, float *rowaux, int threads) {
    long bad = -1;
    size_t n = m->rows, d = x->d, dfull = m->dim, stride = m->stride ? m->stride : m->dim;
#pragma omp parallel num_threads(threads)
    {
        float *buf = malloc((dfull + 1) * sizeof *buf); /* one row, per thread */
#pragma omp for schedule(static)
        for (size_t i = 0; i < n; i++) {
            if (!buf) continue;
            ek_row_to_f32(x->kern, m->type, m->data, stride, i, dfull, buf);
            float s;
            x->kern->dot_f32(buf, buf, 0, 1, d, &s);
            if (!ek_all_finite(buf, dfull)) {
#pragma omp critical(ek_index_bad)
                if (bad < 0 || (long)i < bad) bad = (long)i;
            }
            if (rowaux) rowaux[i] = ek_qaux(x->metric, s);
        }
        if (!buf) {
#pragma omp critical(ek_index_bad)
            bad = -2;
        }
        free(buf);
    }
    return bad;
}

/* int8 codes from float rows (calibrated with ranges over the full input
 * dimension), blocked, in chunks so the full code matrix never exists. */
static int build_int8_from_float(ek_index *x, const ek_matrix *m, const float *ranges, ek_err *e) {
    size_t dfull = m->dim, stride = m->stride ? m->stride : m->dim, chunk = 4096;
    float *rows = malloc(chunk * dfull * sizeof *rows);
    int8_t *codes = malloc(chunk * dfull);
    int rc = 0;
    if (!rows || !codes) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory quantizing %zu rows", m->rows);
    for (size_t i0 = 0; !rc && i0 < m->rows; i0 += chunk) {
        size_t c = m->rows - i0 < chunk ? m->rows - i0 : chunk;
        for (size_t i = 0; i < c; i++) ek_row_to_f32(x->kern, m->type, m->data, stride, i0 + i, dfull, rows + i * dfull);
        ek_q_int8(rows, c, dfull, dfull, ranges, codes);
        ek_q_block_int8(codes, c, dfull, x->d, x->blk + i0 / EK_I8_BLOCK * x->G * 64);
    }
    free(rows);
    free(codes);
    return rc;
}

static int build_binary_from_float(ek_index *x, const ek_matrix *m, ek_err *e) {
    size_t dfull = m->dim, stride = m->stride ? m->stride : m->dim, chunk = 4096, nb = (x->d + 7) / 8;
    float *rows = malloc(chunk * dfull * sizeof *rows);
    uint8_t *packed = malloc(chunk * nb);
    int rc = 0;
    if (!rows || !packed) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory packing %zu rows", m->rows);
    for (size_t i0 = 0; !rc && i0 < m->rows; i0 += chunk) {
        size_t c = m->rows - i0 < chunk ? m->rows - i0 : chunk;
        for (size_t i = 0; i < c; i++) ek_row_to_f32(x->kern, m->type, m->data, stride, i0 + i, dfull, rows + i * dfull);
        ek_q_binary(rows, c, x->d, dfull, packed);
        ek_q_block_binary(packed, c, nb, x->d, x->bblk + i0 / EK_BIN_BLOCK * x->W * EK_BIN_BLOCK);
    }
    free(rows);
    free(packed);
    return rc;
}

/* Norms of the decoded int8 rows (for cosine / L2), from the blocked codes. */
static void int8_rowaux(ek_index *x, int threads) {
#pragma omp parallel for schedule(static) num_threads(threads)
    for (size_t i = 0; i < x->n; i++) {
        size_t b = i / EK_I8_BLOCK, r = i % EK_I8_BLOCK;
        double s = 0;
        for (size_t j = 0; j < x->d; j++) {
            int8_t c = x->blk[((b * x->G + j / 4) * EK_I8_BLOCK + r) * 4 + j % 4];
            double v = (double)x->start[j] + (double)x->step[j] * (c + 128);
            s += v * v;
        }
        x->rowaux[i] = ek_qaux(x->metric, (float)s);
    }
}

static int validate(const ek_matrix *m, const ek_index_options *o, ek_vec_type type, ek_err *e) {
    if ((unsigned)m->type > EK_VEC_BINARY || (unsigned)type > EK_VEC_BINARY)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "index: unknown vector type");
    if ((unsigned)o->metric > EK_METRIC_L2) return ek_err_set(e, EK_ERR_INVALID_ARG, "index: unknown metric");
    if (!m->data && m->rows) return ek_err_set(e, EK_ERR_INVALID_ARG, "index: no data");
    if (m->rows == 0 || m->dim == 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "index: empty matrix (%zu rows x %zu dims)", m->rows, m->dim);
    if (m->rows > (size_t)INT64_MAX / 2) return ek_err_set(e, EK_ERR_INVALID_ARG, "index: too many rows");
    size_t minstride = m->type == EK_VEC_BINARY ? (m->dim + 7) / 8 : m->dim;
    if (m->stride && m->stride < minstride)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "index: row stride %zu is less than the row length %zu", m->stride,
                          minstride);
    if (o->dimensions > m->dim)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "index: dimensions %zu exceed the vectors' %zu", o->dimensions, m->dim);
    if (type != m->type && !is_float_type(m->type))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "index: %s vectors cannot be searched as %s (quantize from floats)",
                          ek_vec_type_name(m->type), ek_vec_type_name(type));
    if (m->type == EK_VEC_INT8 && !o->ranges)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "index: int8 vectors need their quantization ranges");
    return 0;
}

ek_status ek_index_new(ek_ctx *ctx, const ek_matrix *m, const ek_index_options *opts, ek_index **out) {
    if (!ctx || !m || !out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    ek_err_clear(&ctx->err);
    ek_err *e = &ctx->err;
    ek_index_options o;
    if (opts) o = *opts;
    else ek_index_options_init(&o);
    ek_vec_type type = (int)o.type < 0 ? m->type : o.type;
    if (validate(m, &o, type, e)) return (ek_status)e->status;
    int level = ek_isa_choose();
    if (level < 0) return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "EK_ISA=%s: expected scalar, avx2 or avx512", getenv("EK_ISA"));
    int threads = ek_ctx_threads(ctx);

    ek_index *x = calloc(1, sizeof *x);
    if (!x) return (ek_status)ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    x->kern = ek_kern_for_level(level);
    x->metric = o.metric;
    x->type = type;
    x->n = m->rows;
    x->dim_in = m->dim;
    x->d = o.dimensions ? o.dimensions : m->dim;
    size_t stride = m->stride ? m->stride : (m->type == EK_VEC_BINARY ? (m->dim + 7) / 8 : m->dim);
    int rc = 0;
    int need_aux = type != EK_VEC_BINARY && o.metric != EK_METRIC_DOT;
    if (need_aux && !(x->rowaux = malloc(x->n * sizeof *x->rowaux)))
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");

    if (!rc && is_float_type(m->type)) {
        ek_matrix fm = *m;
        fm.stride = stride;
        /* Norms of the searched rows come from this pass when the index
         * searches the input in place; otherwise they are recomputed below
         * from what is actually searched. */
        int in_place = type == m->type;
        long bad = check_float_rows(x, &fm, in_place ? x->rowaux : NULL, threads);
        if (bad == -2) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        else if (bad >= 0)
            rc = ek_err_set(e, EK_ERR_INVALID_ARG, "index row %ld: NaN or Inf value", bad);
        x->orig = fm;
        x->has_orig = 1;
        x->rd = x->d;
        if (!rc && in_place) {
            x->fdata = m->data;
            x->fstride = stride;
        } else if (!rc && is_float_type(type)) {
            /* convert F32 <-> F16 / BF16, first d dims, packed */
            x->fown = malloc(x->n * x->d * elem_size(type));
            float *row = malloc(m->dim * sizeof *row);
            if (!x->fown || !row) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory converting to %s", ek_vec_type_name(type));
            for (size_t i = 0; !rc && i < x->n; i++) {
                ek_row_to_f32(x->kern, m->type, m->data, stride, i, x->d, row);
                for (size_t j = 0; j < x->d; j++) {
                    if (type == EK_VEC_F32) ((float *)x->fown)[i * x->d + j] = row[j];
                    else if (type == EK_VEC_F16) ((uint16_t *)x->fown)[i * x->d + j] = ek_f32_to_f16(row[j]);
                    else ((uint16_t *)x->fown)[i * x->d + j] = ek_f32_to_bf16(row[j]);
                }
            }
            free(row);
            x->fdata = x->fown;
            x->fstride = x->d;
            if (!rc && need_aux) {
                ek_matrix cm = {type, x->fown, x->n, x->d, x->d};
                long b2 = check_float_rows(x, &cm, x->rowaux, threads);
                if (b2 >= 0) rc = ek_err_set(e, EK_ERR_INVALID_ARG, "index row %ld: overflows %s", b2, ek_vec_type_name(type));
                else if (b2 == -2) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
            }
        }
    }

    if (!rc && type == EK_VEC_INT8) {
        x->G = (x->d + 3) / 4;
        size_t nblk = (x->n + EK_I8_BLOCK - 1) / EK_I8_BLOCK;
        x->blk = aligned_alloc(64, nblk * x->G * 64);
        x->start = malloc(2 * m->dim * sizeof *x->start);
        float *ranges = malloc(2 * m->dim * sizeof *ranges);
        if (!x->blk || !x->start || !ranges) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        if (!rc) {
            if (o.ranges) memcpy(ranges, o.ranges, 2 * m->dim * sizeof *ranges);
            else {
                /* calibrate on the input, as quantize_embeddings without
                 * calibration_embeddings does */
                float *row = malloc(m->dim * sizeof *row);
                if (!row) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
                for (size_t i = 0; !rc && i < x->n; i++) {
                    ek_row_to_f32(x->kern, m->type, m->data, stride, i, m->dim, row);
                    for (size_t j = 0; j < m->dim; j++) {
                        if (!i || row[j] < ranges[j]) ranges[j] = row[j];
                        if (!i || row[j] > ranges[m->dim + j]) ranges[m->dim + j] = row[j];
                    }
                }
                free(row);
            }
        }
        if (!rc && !ek_all_finite(ranges, 2 * m->dim)) rc = ek_err_set(e, EK_ERR_INVALID_ARG, "int8 ranges: NaN or Inf");
        if (!rc) {
            x->step = x->start + m->dim;
            memcpy(x->start, ranges, m->dim * sizeof *ranges);
            ek_q_steps(ranges, m->dim, x->step);
            if (m->type == EK_VEC_INT8)
                ek_q_block_int8(m->data, x->n, stride, x->d, x->blk);
            else
                rc = build_int8_from_float(x, m, ranges, e);
        }
        free(ranges);
        if (!rc && need_aux) int8_rowaux(x, threads);
    }

    if (!rc && type == EK_VEC_BINARY) {
        x->W = (x->d + 63) / 64;
        size_t nblk = (x->n + EK_BIN_BLOCK - 1) / EK_BIN_BLOCK;
        x->bblk = aligned_alloc(64, nblk * x->W * EK_BIN_BLOCK * sizeof *x->bblk);
        if (!x->bblk) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        else if (m->type == EK_VEC_BINARY) ek_q_block_binary(m->data, x->n, stride, x->d, x->bblk);
        else rc = build_binary_from_float(x, m, e);
    }

    if (rc) {
        ek_index_free(x);
        return (ek_status)rc;
    }
    *out = x;
    return EK_OK;
}

ek_status ek_index_set_originals(ek_ctx *ctx, ek_index *x, const ek_matrix *m) {
    if (!ctx || !x || !m) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!is_float_type(m->type))
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "originals must be f32, f16 or bf16");
    /* A binary index read from packed bytes counts whole bytes of bits; its
     * originals may be up to 7 dims shorter (the padding). */
    size_t need = x->type == EK_VEC_BINARY && x->d % 8 == 0 && x->d >= 8 ? x->d - 7 : x->d;
    if (m->rows != x->n || m->dim < need)
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG,
                                     "originals have %zu rows x %zu dims; the index has %zu rows x %zu dims",
                                     m->rows, m->dim, x->n, x->d);
    ek_matrix fm = *m;
    if (!fm.stride) fm.stride = fm.dim;
    /* Rows are checked for NaN / Inf here, once, not at each rescoring. */
    ek_index tmp = *x;
    tmp.d = m->dim;
    tmp.metric = EK_METRIC_DOT;
    long bad = check_float_rows(&tmp, &fm, NULL, ek_ctx_threads(ctx));
    if (bad == -2) return (ek_status)ek_err_set(&ctx->err, EK_ERR_NOMEM, "out of memory");
    if (bad >= 0) return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "originals row %ld: NaN or Inf value", bad);
    x->orig = fm;
    x->has_orig = 1;
    x->rd = m->dim < x->d ? m->dim : x->d;
    return EK_OK;
}
