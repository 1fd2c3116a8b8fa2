/* runtime/embed.c — text in, embeddings out: tokenization, length-sorted
 * token-budget batching, the forward pass, pooling and the
 * sentence-transformers head (Dense, Normalize), Matryoshka truncation.
 *
 * Inputs are sorted by token count and packed without padding, so a batch
 * costs what its tokens cost; results are written back in input order.  Each
 * input's result depends on that input alone (attention runs per sequence),
 * so the batch composition cannot change an embedding. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "compute/gemm.h"
#include "model/forward.h"
#include "model/model.h"
#include "ops/ops.h"
#include "runtime/ctx.h"
#include "runtime/device.h"
#include "runtime/tokenized.h"

void ek_embed_options_init(ek_embed_options *o) {
    memset(o, 0, sizeof *o);
    o->pooling = -1;
    o->normalize = -1;
    o->truncate = EK_TRUNCATE_RIGHT;
}

static unsigned pool_mask(const ek_model *m, const ek_embed_options *o) {
    return o->pooling >= 0 ? 1u << o->pooling : m->pooling_mask;
}

/* Dimension after pooling and the Dense modules (before Matryoshka).  A
 * pooling override pools one mode; with Dense modules check_opts has made
 * sure that size is what the first Dense expects. */
static int full_dim(const ek_model *m, const ek_embed_options *o) {
    if (m->n_dense) return m->dense[m->n_dense - 1].out;
    return (o->pooling >= 0 ? 1 : m->n_pool) * m->w.cfg.hidden;
}

int ek_embed_dim(const ek_model *m, const ek_embed_options *o) {
    ek_embed_options d;
    if (!o) {
        ek_embed_options_init(&d);
        o = &d;
    }
    int full = full_dim(m, o);
    return o->dimensions > 0 && o->dimensions < full ? o->dimensions : full;
}

static int check_opts(const ek_model *m, const ek_embed_options *o, ek_err *e) {
    if (o->pooling < -1 || o->pooling >= EK_POOL_COUNT)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "pooling: %d is not a pooling mode", o->pooling);
    if (o->normalize < -1 || o->normalize > 1)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "normalize: must be -1, 0 or 1");
    if (o->truncate < EK_TRUNCATE_RIGHT || o->truncate > EK_TRUNCATE_NONE)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "truncate: unknown mode %d", (int)o->truncate);
    if (o->max_length < 0 || o->dimensions < 0 || o->batch_size < 0 || o->max_batch_tokens < 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "max_length, dimensions, batch_size, max_batch_tokens: must be >= 0");
    if (o->max_length == 1 || o->max_length == 2)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "max_length: %d leaves no room for text after [CLS] and [SEP]",
                          o->max_length);
    if (o->pooling >= 0 && m->n_dense && m->w.cfg.hidden != m->dense[0].in)
        return ek_err_set(e, EK_ERR_INVALID_ARG,
                          "pooling: overriding the pooling gives %d dimensions but the Dense module expects %d",
                          m->w.cfg.hidden, m->dense[0].in);
    return EK_OK;
}

static ek_tok_opts tok_opts(const ek_model *m, int max_length, ek_truncate tr) {
    ek_tok_opts t;
    memset(&t, 0, sizeof t);
    t.max_length = (size_t)(max_length > 0 && max_length < m->max_seq_length ? max_length : m->max_seq_length);
    t.truncate = tr;
    t.add_special_tokens = 1;
    t.lowercase_input = m->do_lower_case;
    return t;
}

ek_status ek_tokenize(ek_ctx *ctx, const ek_model *m, const char *text, size_t len, const char *pair,
                      size_t pair_len, const ek_tokenize_options *opts, ek_encoding *enc) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!m || !enc || (!text && len))
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "ek_tokenize: NULL argument");
    ek_tok_opts t = tok_opts(m, opts ? opts->max_length : 0, opts ? opts->truncate : EK_TRUNCATE_RIGHT);
    return (ek_status)ek_tokenizer_encode_w(m->tok, text ? text : "", len, pair, pair_len, &t, enc,
                                            ek_ctx_tok_work(ctx), &ctx->err);
}

typedef ek_tokenized tokenized;

/* start [n + 1], order [n] and the sort's scratch [n] in ctx->tk_index. */
static int index_arrays(ek_ctx *ctx, size_t n, tokenized *tk, int **tmp) {
    size_t so = sizeof *tk->start * (n + 1), oo = sizeof *tk->order * (n ? n : 1);
    char *p = ek_ctx_buf_reserve(&ctx->tk_index, so + 2 * oo);
    if (!p) return -1;
    tk->start = (size_t *)p;
    tk->order = (int *)(p + so);
    *tmp = (int *)(p + so + oo);
    return 0;
}

/* Stable sort of order[] by decreasing length (merge sort, no globals). */
static void sort_by_length(int *order, int *tmp, int n, const size_t *start) {
    if (n < 2) return;
    int h = n / 2;
    sort_by_length(order, tmp, h, start);
    sort_by_length(order + h, tmp, n - h, start);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) {
        size_t li = start[order[i] + 1] - start[order[i]], lj = start[order[j] + 1] - start[order[j]];
        tmp[k++] = (lj > li) ? order[j++] : order[i++];
    }
    while (i < h) tmp[k++] = order[i++];
    while (j < n) tmp[k++] = order[j++];
    memcpy(order, tmp, sizeof *order * (size_t)n);
}

int ek_tokenize_inputs(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                       const ek_embed_options *o, tokenized *tk, int *prompt_tokens, ek_err *e) {
    memset(tk, 0, sizeof *tk);
    ek_tok_opts t = tok_opts(m, o->max_length, o->truncate);
    ek_encoding *enc = &ctx->enc;
    ek_tok_work *work = ek_ctx_tok_work(ctx);
    size_t plen = o->prompt ? strlen(o->prompt) : 0;
    int32_t *ids = NULL, *types = NULL;
    size_t cap = 0; /* tokens ids and types hold */
    int *tmp = NULL;
    int rc = EK_OK;
    *prompt_tokens = 0;
    if (plen) {
        /* As sentence-transformers: the prompt's length is its token count
         * without the trailing [SEP]. */
        ek_tok_opts pt = t;
        pt.truncate = EK_TRUNCATE_RIGHT;
        rc = ek_tokenizer_encode_w(m->tok, o->prompt, plen, NULL, 0, &pt, enc, work, e);
        if (rc) {
            ek_err_prefix(e, "prompt");
            return rc;
        }
        *prompt_tokens = enc->n > 0 ? (int)enc->n - 1 : 0;
    }
    if (index_arrays(ctx, n, tk, &tmp)) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    tk->start[0] = 0;
    for (size_t i = 0; i < n; i++) {
        if (!texts[i]) {
            rc = ek_err_set(e, EK_ERR_INVALID_ARG, "input %zu: NULL text", i + o->index_base);
            goto done;
        }
        size_t len = lens ? lens[i] : strlen(texts[i]);
        const char *s = texts[i];
        if (plen) {
            char *buf = ek_ctx_buf_reserve(&ctx->text, plen + len + 1);
            if (!buf) {
                rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
                goto done;
            }
            memcpy(buf, o->prompt, plen);
            memcpy(buf + plen, texts[i], len);
            s = buf;
            len += plen;
        }
        rc = ek_tokenizer_encode_w(m->tok, s, len, NULL, 0, &t, enc, work, e);
        if (rc) {
            ek_err_prefix(e, "input %zu", i + o->index_base);
            goto done;
        }
        size_t at = tk->start[i];
        if (at + enc->n > cap) {
            /* Grown (contents kept) in ctx, never shrunk. */
            size_t need = sizeof(int32_t) * (at + enc->n);
            int32_t *ni = ek_ctx_buf_reserve(&ctx->tk_ids, need);
            int32_t *nt = ni ? ek_ctx_buf_reserve(&ctx->tk_types, need) : NULL;
            if (!ni || !nt) {
                rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
                goto done;
            }
            ids = ni, types = nt;
            cap = (ctx->tk_ids.cap < ctx->tk_types.cap ? ctx->tk_ids.cap : ctx->tk_types.cap) / sizeof(int32_t);
        }
        memcpy(ids + at, enc->ids, sizeof(int32_t) * enc->n);
        memcpy(types + at, enc->type_ids, sizeof(int32_t) * enc->n);
        tk->start[i + 1] = at + enc->n;
        tk->order[i] = (int)i;
    }
    tk->ids = ids;
    tk->types = types;
    sort_by_length(tk->order, tmp, (int)n, tk->start);
done:
    return rc;
}

/* CLOCK_MONOTONIC in ns, for the per-stage timings (a vDSO read, no
 * allocation). */
static uint64_t mono_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

ek_status ek_ctx_last_timings(const ek_ctx *ctx, ek_stage_timings *out) {
    if (!ctx || !out) return EK_ERR_INVALID_ARG;
    *out = ctx->timings;
    return EK_OK;
}

/* Pools one sequence and applies the head; writes dim floats to out.  *now
 * is the time the pooling starts; on return, the time the head finished
 * (the two stages are added to tm). */
static void head(const ek_model *m, const ek_embed_options *o, const float *h, const float *attn, int L,
                 int mask_from, float *a, float *b, float *out, int dim, ek_stage_timings *tm, uint64_t *now) {
    int H = m->w.cfg.hidden, d = 0;
    if (o->pooling >= 0) {
        ek_op_pool(o->pooling, h, L, H, mask_from, attn, a);
        d = H;
    } else {
        for (int k = 0; k < m->n_pool; k++, d += H) ek_op_pool(m->pool_order[k], h, L, H, mask_from, attn, a + d);
    }
    uint64_t pooled = mono_ns();
    ek_model_head(m, o->normalize, a, b, d, out, dim);
    uint64_t done = mono_ns();
    tm->pool_ns += pooled - *now;
    tm->normalize_ns += done - pooled;
    *now = done;
}

/* Runs the forward pass and head over tokenized inputs, in length-sorted
 * batches, writing results in input order. */
static int embed_tokenized(ek_ctx *ctx, const ek_model *m, tokenized *tkp, size_t n,
                           const ek_embed_options *opts, int prompt_tokens, float *out,
                           int32_t *token_counts) {
    ek_err *e = &ctx->err;
    tokenized tk = *tkp;
    int rc = EK_OK;
    int threads = ctx->threads ? ctx->threads : ek_compute_cores();
    ek_compute_set_threads(threads);
    int H = m->w.cfg.hidden;
    int bs = opts->batch_size > 0 ? opts->batch_size : 32;
    int budget = opts->max_batch_tokens > 0 ? opts->max_batch_tokens : 8192;
    int dim = ek_embed_dim(m, opts);
    int mask_from = m->include_prompt ? 0 : prompt_tokens;
    int want_attn = (pool_mask(m, opts) >> EK_POOL_ATTENTION) & 1;

    /* Largest batch (tokens, longest sequence) decides the workspace size,
     * allocated once for the whole call (and kept in ctx for the next). */
    size_t max_tokens = 0;
    int max_len = 0;
    for (size_t i = 0; i < n;) {
        size_t tokens = 0, j = i;
        while (j < n && (int)(j - i) < bs) {
            size_t len = tk.start[tk.order[j] + 1] - tk.start[tk.order[j]];
            if (j > i && tokens + len > (size_t)budget) break;
            tokens += len;
            if ((int)len > max_len) max_len = (int)len;
            j++;
        }
        if (tokens > max_tokens) max_tokens = tokens;
        i = j;
    }
    int maxdim = m->pool_dim > H ? m->pool_dim : H;
    for (int k = 0; k < m->n_dense; k++)
        if (m->dense[k].out > maxdim) maxdim = m->dense[k].out;
    size_t fw = ek_bert_forward_scratch_size(&m->w.cfg, (int)max_tokens, max_len, threads);
    fw = (fw + 63) & ~(size_t)63;
    size_t hid = ((max_tokens * (size_t)H * sizeof(float)) + 63) & ~(size_t)63;
    size_t att = ((max_tokens * sizeof(float)) + 63) & ~(size_t)63;
    size_t seq = ((((size_t)bs + 1) * 2 * sizeof(int32_t)) + 63) & ~(size_t)63;
    size_t ids = ((max_tokens * 2 * sizeof(int32_t)) + 63) & ~(size_t)63;
    size_t tmp = (((size_t)maxdim * 2 * sizeof(float)) + 63) & ~(size_t)63;
    char *ws = ek_ctx_workspace(ctx, fw + hid + att + seq + ids + tmp);
    if (!ws) return ek_err_set(e, EK_ERR_NOMEM, "out of memory for a %zu-token batch workspace", max_tokens);
    void *scratch = ws;
    float *hidden = (float *)(ws + fw);
    float *attn = (float *)(ws + fw + hid);
    int32_t *seq_start = (int32_t *)(ws + fw + hid + att);
    int32_t *bids = (int32_t *)(ws + fw + hid + att + seq);
    int32_t *btypes = bids + max_tokens;
    float *ta = (float *)(ws + fw + hid + att + seq + ids);
    float *tb = ta + maxdim;

    for (size_t i = 0; i < n && !rc;) {
        size_t tokens = 0, j = i;
        seq_start[0] = 0;
        while (j < n && (int)(j - i) < bs) {
            int idx = tk.order[j];
            size_t len = tk.start[idx + 1] - tk.start[idx];
            if (j > i && tokens + len > (size_t)budget) break;
            memcpy(bids + tokens, tk.ids + tk.start[idx], sizeof(int32_t) * len);
            if (tk.types)
                memcpy(btypes + tokens, tk.types + tk.start[idx], sizeof(int32_t) * len);
            else
                memset(btypes + tokens, 0, sizeof(int32_t) * len);
            tokens += len;
            seq_start[j - i + 1] = (int32_t)tokens;
            j++;
        }
        ek_fwd_batch b = {bids, btypes, seq_start, (int)(j - i)};
        uint64_t t0 = mono_ns();
        rc = ek_bert_forward(&m->w, &b, hidden, want_attn ? attn : NULL, scratch, threads, e);
        uint64_t now = mono_ns();
        ctx->timings.forward_ns += now - t0;
        ctx->timings.batches++;
        ctx->timings.tokens += tokens;
        if (rc) {
            /* Name the input, not the position in the sorted batch. */
            ek_err_prefix(e, "batch of inputs starting at sorted position %zu", i);
            break;
        }
        for (size_t s = 0; s < j - i; s++) {
            int idx = tk.order[i + s];
            int L = seq_start[s + 1] - seq_start[s];
            head(m, opts, hidden + (size_t)seq_start[s] * H, attn + seq_start[s], L, mask_from, ta, tb,
                 out + (size_t)idx * dim, dim, &ctx->timings, &now);
            if (token_counts) token_counts[idx] = L;
        }
        i = j;
    }
    return rc;
}

ek_status ek_embed(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                   const ek_embed_options *opts, float *out, int32_t *token_counts) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    uint64_t t_start = mono_ns();
    memset(&ctx->timings, 0, sizeof ctx->timings);
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (!m || (!texts && n) || (!out && n))
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_embed: NULL argument");
    ek_embed_options dflt;
    if (!opts) {
        ek_embed_options_init(&dflt);
        opts = &dflt;
    }
    int rc = check_opts(m, opts, e);
    if (rc || n == 0) return (ek_status)rc;
    if (n > (size_t)INT32_MAX) return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_embed: too many inputs");
    /* The context's device (ek_ctx_set_device) may take the call. */
    if (ek_device_route(ctx, m, texts, lens, n, opts, out, token_counts, &rc)) return (ek_status)rc;
    tokenized tk;
    int prompt_tokens = 0;
    rc = ek_tokenize_inputs(ctx, m, texts, lens, n, opts, &tk, &prompt_tokens, e);
    ctx->timings.inputs = n;
    ctx->timings.tokenize_ns = mono_ns() - t_start;
    if (!rc) rc = embed_tokenized(ctx, m, &tk, n, opts, prompt_tokens, out, token_counts);
    ctx->timings.total_ns = mono_ns() - t_start;
    return (ek_status)rc;
}

ek_status ek_embed_ids(ek_ctx *ctx, const ek_model *m, const int32_t *ids, const int32_t *lens, size_t n,
                       const ek_embed_options *opts, float *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    uint64_t t_start = mono_ns();
    memset(&ctx->timings, 0, sizeof ctx->timings);
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (!m || (n && (!ids || !lens || !out)))
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_embed_ids: NULL argument");
    ek_embed_options dflt;
    if (!opts) {
        ek_embed_options_init(&dflt);
        opts = &dflt;
    }
    int rc = check_opts(m, opts, e);
    if (rc || n == 0) return (ek_status)rc;
    if (n > (size_t)INT32_MAX) return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_embed_ids: too many inputs");
    tokenized tk;
    memset(&tk, 0, sizeof tk);
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        if (lens[i] < 1 || lens[i] > m->w.cfg.max_pos)
            return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "input %zu: length %d is not in 1..%d", i + opts->index_base,
                                         lens[i], m->w.cfg.max_pos);
        total += (size_t)lens[i];
    }
    for (size_t t = 0; t < total; t++)
        if (ids[t] < 0 || ids[t] >= m->w.cfg.vocab)
            return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "token %zu: id %d is outside the vocabulary (0..%d)", t,
                                         ids[t], m->w.cfg.vocab - 1);
    /* The caller's ids are read in place; token types are all 0 (NULL). */
    tk.ids = ids;
    tk.types = NULL;
    int *tmp = NULL;
    if (index_arrays(ctx, n, &tk, &tmp)) {
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    } else {
        tk.start[0] = 0;
        for (size_t i = 0; i < n; i++) {
            tk.start[i + 1] = tk.start[i] + (size_t)lens[i];
            tk.order[i] = (int)i;
        }
        sort_by_length(tk.order, tmp, (int)n, tk.start);
        ctx->timings.inputs = n;
        rc = embed_tokenized(ctx, m, &tk, n, opts, 0, out, NULL);
        ctx->timings.total_ns = mono_ns() - t_start;
    }
    return (ek_status)rc;
}

ek_status ek_pool_weighted(ek_ctx *ctx, const float *hidden, int n_tokens, int dim, const float *w, float *out) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (!hidden || !w || !out || n_tokens < 1 || dim < 1)
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG,
                                     "ek_pool_weighted: needs hidden, weights, out and n_tokens, dim >= 1");
    double sum = 0;
    for (int t = 0; t < n_tokens; t++) {
        if (!isfinite(w[t]) || w[t] < 0)
            return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG,
                                         "ek_pool_weighted: weight %d is negative or not finite", t);
        sum += w[t];
    }
    for (int d = 0; d < dim; d++) {
        double acc = 0;
        for (int t = 0; t < n_tokens; t++) acc += (double)w[t] * hidden[(size_t)t * dim + d];
        out[d] = sum > 0 ? (float)(acc / sum) : 0.0f;
    }
    return EK_OK;
}

ek_status ek_embed_tokens(ek_ctx *ctx, const ek_model *m, const char *text, size_t len,
                          const ek_embed_options *opts, float *out, size_t out_cap, int *n_tokens) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (!m || !text || !out || !n_tokens)
        return (ek_status)ek_err_set(e, EK_ERR_INVALID_ARG, "ek_embed_tokens: NULL argument");
    ek_embed_options dflt;
    if (!opts) {
        ek_embed_options_init(&dflt);
        opts = &dflt;
    }
    ek_encoding *enc = &ctx->enc; /* reused across calls */
    ek_tok_opts t = tok_opts(m, opts->max_length, opts->truncate);
    int rc = ek_tokenizer_encode_w(m->tok, text, len, NULL, 0, &t, enc, ek_ctx_tok_work(ctx), e);
    int H = m->w.cfg.hidden;
    if (!rc && enc->n * (size_t)H > out_cap)
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "ek_embed_tokens: out holds %zu floats, %zu needed", out_cap,
                        enc->n * (size_t)H);
    if (!rc) {
        int threads = ctx->threads ? ctx->threads : ek_compute_cores();
        ek_compute_set_threads(threads);
        size_t fw = (ek_bert_forward_scratch_size(&m->w.cfg, (int)enc->n, (int)enc->n, threads) + 63) & ~(size_t)63;
        void *ws = ek_ctx_workspace(ctx, fw);
        int32_t st[2] = {0, (int32_t)enc->n};
        ek_fwd_batch b = {enc->ids, enc->type_ids, st, 1};
        rc = ws ? ek_bert_forward(&m->w, &b, out, NULL, ws, threads, e)
                : ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        *n_tokens = (int)enc->n;
    }
    return (ek_status)rc;
}
