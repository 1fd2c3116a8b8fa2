/* gpu/encoder.c — the BERT encoder, pooling and normalisation on an OpenCL
 * device: the OpenCL backend of the graph (model/backend.h; the layers
 * themselves are model/graph.c's, shared with the CPU), then pooling on
 * the device.  Same packed batches as model/forward.c (sequences back to
 * back, no padding; attention bounded by each sequence), so a row's result
 * never depends on its batch neighbours here either.
 *
 * Weights become resident buffers keyed by their host pointers: uploaded
 * on first use, kept across calls, evicted least recently used when the
 * budget needs the room (see bufpool.c).  Per batch everything is enqueued
 * on the in-order queue and waited for once. */
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "model/bert.h"
#include "model/backend.h"
#include "model/forward.h"

enum { MAX_BUFS = 128 };

/* Buffers one call holds, given back together. */
typedef struct held {
    ek_gbuf *b[MAX_BUFS];
    int n;
} held;

static void give_all(ek_gpu *g, held *h) {
    for (int i = 0; i < h->n; i++) ek_gpool_give(g, h->b[i]);
    h->n = 0;
}

static int scratch(ek_gpu *g, held *h, size_t bytes, cl_mem *out, ek_err *e) {
    ek_gbuf *b;
    int rc = ek_gpool_take(g, bytes ? bytes : 4, &b, e);
    if (rc) return rc;
    h->b[h->n++] = b;
    *out = b->mem;
    return EK_OK;
}

/* A resident copy of n floats at p (NULL p: NULL buffer, for absent biases). */
static int weight(ek_gpu *g, held *h, const float *p, size_t n, cl_mem *out, ek_err *e) {
    *out = NULL;
    if (!p) return EK_OK;
    ek_gbuf *b;
    int fresh = 0;
    int rc = ek_gpool_resident(g, p, n * sizeof(float), &b, &fresh, e);
    if (rc) return rc;
    h->b[h->n++] = b;
    if (fresh) {
        rc = ek_gpu_upload(g, b->mem, 0, p, n * sizeof(float), e);
        if (rc) return rc;
        b->valid = 1;
    }
    *out = b->mem;
    return EK_OK;
}

typedef struct layer_bufs {
    cl_mem lin_w[4], lin_b[4]; /* by EK_OP_QKV.. */
    cl_mem ln_g[2], ln_b[2];   /* by EK_OP_LN_ATTN.. */
} layer_bufs;

/* Output and input width of a layer's linear `which` (EK_OP_QKV..). */
static void lin_shape(const ek_bert_config *c, int which, int *N, int *K) {
    const int H = c->hidden, I = c->intermediate;
    *N = which == EK_OP_QKV ? 3 * H : which == EK_OP_FFN_IN ? I : H;
    *K = which == EK_OP_FFN_OUT ? I : H;
}

static int layer_weights(ek_gpu *g, held *h, const ek_bert_config *c, const ek_bert_layer *L, layer_bufs *o,
                         ek_err *e) {
    const ek_linear *lin[4] = {&L->qkv, &L->attn_out, &L->ffn_in, &L->ffn_out};
    const ek_layernorm *ln[2] = {&L->ln_attn, &L->ln_ffn};
    int rc = EK_OK;
    for (int k = 0; k < 4 && !rc; k++) {
        int N, K;
        lin_shape(c, k, &N, &K);
        rc = weight(g, h, lin[k]->w, (size_t)N * (size_t)K, &o->lin_w[k], e);
        if (!rc) rc = weight(g, h, lin[k]->b, (size_t)N, &o->lin_b[k], e);
    }
    for (int k = 0; k < 2 && !rc; k++) {
        rc = weight(g, h, ln[k]->gamma, (size_t)c->hidden, &o->ln_g[k], e);
        if (!rc) rc = weight(g, h, ln[k]->beta, (size_t)c->hidden, &o->ln_b[k], e);
    }
    return rc;
}

size_t ek_gpu_encode_bytes(const ek_bert_weights *w, int R, int n_seq, int pooled_dim) {
    const ek_bert_config *c = &w->cfg;
    size_t H = (size_t)c->hidden, I = (size_t)c->intermediate, r = (size_t)R;
    size_t floats = r * (H + 3 * H + H + I) + (size_t)c->heads * r + r + (size_t)n_seq * (size_t)pooled_dim;
    size_t ints = 4 * r + (size_t)n_seq + 1;
    return (floats + ints) * 4;
}

/* Host index arrays: ids, types, positions, sequence of each row, starts. */
static int host_arrays(ek_gpu *g, const ek_fwd_batch *b, int R, ek_err *e) {
    size_t need = 4 * (size_t)R + (size_t)b->n_seq + 1;
    if (need > g->host_i_cap) {
        int32_t *p = realloc(g->host_i, need * sizeof *p);
        if (!p) return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
        g->host_i = p;
        g->host_i_cap = need;
    }
    int32_t *ids = g->host_i, *types = ids + R, *pos = types + R, *seq = pos + R, *st = seq + R;
    memcpy(ids, b->ids, sizeof *ids * (size_t)R);
    for (int s = 0; s < b->n_seq; s++)
        for (int r = b->seq_start[s]; r < b->seq_start[s + 1]; r++) {
            types[r] = b->type_ids ? b->type_ids[r] : 0;
            pos[r] = r - b->seq_start[s];
            seq[r] = s;
        }
    memcpy(st, b->seq_start, sizeof *st * (size_t)(b->n_seq + 1));
    return EK_OK;
}

/* ---- the OpenCL backend of the graph (model/backend.h) ------------------ */

/* One encode call's state.  Buffers taken for the call are in *h (given
 * back by ek_gpu_encode after pooling); the current layer's weights are in
 * lh, swapped layer by layer, so a budget that holds one layer's weights at
 * a time still works (earlier layers become evictable once used).  The
 * in-order queue keeps given-back buffers alive until the kernels already
 * enqueued on them ran: a later writer is queued after them. */
typedef struct gpu_be {
    ek_backend base;
    ek_gpu *g;
    held *h;
    const ek_gpu_pool_req *req; /* pooling after the graph, or NULL */
    const ek_fwd_batch *b;
    int R, max_len, want_attn;
    cl_mem ids, types, pos, seq, st, hp, wts, out;
    cl_mem slot[EK_SLOT_COUNT];
    held lh;
    int cur_layer;              /* whose weights lh holds; -1: none */
    layer_bufs L;
} gpu_be;

static int gpu_begin(ek_backend *bk, const ek_fwd_batch *b, int want_probs, ek_err *e) {
    gpu_be *p = (gpu_be *)bk;
    ek_gpu *g = p->g;
    held *h = p->h;
    const ek_bert_config *c = &bk->w->cfg;
    const int H = c->hidden, I = c->intermediate, R = b->seq_start[b->n_seq], n = b->n_seq;
    p->b = b;
    p->R = R;
    p->max_len = 0;
    for (int s = 0; s < n; s++)
        if (b->seq_start[s + 1] - b->seq_start[s] > p->max_len) p->max_len = b->seq_start[s + 1] - b->seq_start[s];
    p->want_attn = want_probs;
    p->hp = p->wts = p->out = NULL;
    p->lh.n = 0;
    p->cur_layer = -1;
    int rc = host_arrays(g, b, R, e);
    if (rc) return rc;

    /* Activations first: when they do not fit, fail before uploading weights. */
    size_t fR = (size_t)R * sizeof(float), iR = (size_t)R * sizeof(int32_t);
    int P = p->req ? p->req->n_modes * H : 0;
    cl_mem *sl = p->slot;
    if ((rc = scratch(g, h, iR, &p->ids, e)) || (rc = scratch(g, h, iR, &p->types, e)) ||
        (rc = scratch(g, h, iR, &p->pos, e)) || (rc = scratch(g, h, iR, &p->seq, e)) ||
        (rc = scratch(g, h, sizeof(int32_t) * (size_t)(n + 1), &p->st, e)) ||
        (rc = scratch(g, h, fR * H, &sl[EK_SLOT_X], e)) || (rc = scratch(g, h, fR * 3 * H, &sl[EK_SLOT_QKV], e)) ||
        (rc = scratch(g, h, fR * H, &sl[EK_SLOT_CTX], e)) || (rc = scratch(g, h, fR * I, &sl[EK_SLOT_FFN], e)))
        return rc;
    if (want_probs && ((rc = scratch(g, h, fR * c->heads, &p->hp, e)) || (rc = scratch(g, h, fR, &p->wts, e))))
        return rc;
    if (p->req && (rc = scratch(g, h, sizeof(float) * (size_t)n * P, &p->out, e))) return rc;
    const int32_t *hi = g->host_i;
    if ((rc = ek_gpu_upload(g, p->ids, 0, hi, iR, e)) || (rc = ek_gpu_upload(g, p->types, 0, hi + R, iR, e)) ||
        (rc = ek_gpu_upload(g, p->pos, 0, hi + 2 * (size_t)R, iR, e)) ||
        (rc = ek_gpu_upload(g, p->seq, 0, hi + 3 * (size_t)R, iR, e)) ||
        (rc = ek_gpu_upload(g, p->st, 0, hi + 4 * (size_t)R, sizeof(int32_t) * (size_t)(n + 1), e)))
        return rc;
    return EK_OK;
}

static int gpu_embed(ek_backend *bk, ek_err *e) {
    gpu_be *p = (gpu_be *)bk;
    const ek_bert_weights *w = bk->w;
    const ek_bert_config *c = &w->cfg;
    const int H = c->hidden;
    cl_mem word, type_emb, pos_emb, lng, lnb;
    int rc;
    if ((rc = weight(p->g, p->h, w->word_emb, (size_t)c->vocab * H, &word, e)) ||
        (rc = weight(p->g, p->h, w->type_emb, (size_t)c->type_vocab * H, &type_emb, e)) ||
        (rc = weight(p->g, p->h, w->pos_emb, (size_t)c->max_pos * H, &pos_emb, e)) ||
        (rc = weight(p->g, p->h, w->ln_emb.gamma, (size_t)H, &lng, e)) ||
        (rc = weight(p->g, p->h, w->ln_emb.beta, (size_t)H, &lnb, e)))
        return rc;
    return ek_gop_embed_ln(p->g, p->slot[EK_SLOT_X], p->R, H, p->ids, p->types, p->pos, word, type_emb, pos_emb, lng,
                           lnb, c->ln_eps, e);
}

/* One chunk of every row: the device is best fed whole products. */
static int gpu_chunk(ek_backend *bk, int i) {
    (void)bk;
    return i == 0;
}

/* The layer's weights resident and pinned: the previous layer's are given
 * back first, so only one layer is pinned at a time. */
static int use_layer(gpu_be *p, int li, ek_err *e) {
    if (p->cur_layer == li) return EK_OK;
    give_all(p->g, &p->lh);
    p->cur_layer = -1;
    int rc = layer_weights(p->g, &p->lh, &p->base.w->cfg, &p->base.w->layer[li], &p->L, e);
    if (!rc) p->cur_layer = li;
    return rc;
}

static int gpu_linear(ek_backend *bk, int li, int which, int src, int dst, ek_out epi, ek_err *e) {
    gpu_be *p = (gpu_be *)bk;
    int N, K, rc = use_layer(p, li, e);
    if (rc) return rc;
    lin_shape(&bk->w->cfg, which, &N, &K);
    /* gemm.cl's activation 3 is exact GELU (as ek_gop_bias_act). */
    return ek_gop_gemm_nt(p->g, p->R, N, K, 1.0f, p->slot[src], 0, K, p->L.lin_w[which], 0, K, p->L.lin_b[which],
                          p->slot[dst], 0, N, epi == EK_OUT_GELU ? 3 : 0, epi == EK_OUT_ADD_RESIDUAL, e);
}

static int gpu_attention(ek_backend *bk, int li, int want_probs, ek_err *e) {
    gpu_be *p = (gpu_be *)bk;
    const ek_bert_config *c = &bk->w->cfg;
    int rc = use_layer(p, li, e);
    if (rc) return rc;
    return ek_gop_attention(p->g, p->slot[EK_SLOT_QKV], p->slot[EK_SLOT_CTX], p->seq, p->st, NULL, p->R, c->hidden,
                            c->heads, p->max_len, want_probs ? p->hp : NULL, e);
}

static int gpu_layernorm(ek_backend *bk, int li, int which, int slot, ek_err *e) {
    gpu_be *p = (gpu_be *)bk;
    const ek_bert_config *c = &bk->w->cfg;
    int rc = use_layer(p, li, e);
    if (rc) return rc;
    return ek_gop_layernorm(p->g, p->slot[slot], NULL, p->R, c->hidden, p->L.ln_g[which], p->L.ln_b[which],
                            c->ln_eps, e);
}

/* The head-mean weights are made on the device (pooling reads them there);
 * outputs are downloaded with blocking reads, which the in-order queue
 * orders after every kernel enqueued so far. */
static int gpu_end(ek_backend *bk, int rc, float *hidden_out, float *attn_first, ek_err *e) {
    gpu_be *p = (gpu_be *)bk;
    const ek_bert_config *c = &bk->w->cfg;
    ek_gpu *g = p->g;
    size_t fR = (size_t)p->R * sizeof(float);
    give_all(g, &p->lh);
    if (!rc && p->want_attn) {
        if (c->layers == 0) {
            float *u = malloc(fR);
            if (!u) return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
            ek_graph_uniform_weights(p->b, u);
            rc = ek_gpu_upload(g, p->wts, 0, u, fR, e);
            free(u);
        } else {
            rc = ek_gop_head_mean(g, p->hp, p->wts, p->R, c->heads, e);
        }
    }
    if (!rc && hidden_out) rc = ek_gpu_download(g, p->slot[EK_SLOT_X], 0, hidden_out, fR * c->hidden, e);
    if (!rc && attn_first) rc = ek_gpu_download(g, p->wts, 0, attn_first, fR, e);
    return rc;
}

static const ek_backend_ops gpu_ops = {gpu_begin, gpu_embed, gpu_chunk, gpu_linear,
                                       gpu_attention, gpu_layernorm, gpu_end};

/* The graph, then pooling and normalisation on the device. */
static int run(ek_gpu *g, held *h, const ek_bert_weights *w, const ek_fwd_batch *b, float *hidden_out,
               float *attn_first, const ek_gpu_pool_req *req, float *pooled, ek_err *e) {
    int want_attn = attn_first != NULL;
    if (req)
        for (int k = 0; k < req->n_modes; k++) want_attn |= req->modes[k] == EK_POOL_ATTENTION;
    gpu_be be = {.base = {&gpu_ops, w}, .g = g, .h = h, .req = req};
    int rc = ek_graph_run(&be.base, b, want_attn, hidden_out, attn_first, e);
    if (rc || !req) return rc ? rc : ek_gpu_finish(g, e);
    const int H = w->cfg.hidden, n = b->n_seq, P = req->n_modes * H;
    for (int k = 0; k < req->n_modes && !rc; k++)
        rc = ek_gop_pool(g, req->modes[k], be.slot[EK_SLOT_X], H, be.st, n, req->mask_from, be.wts, be.out, P,
                         k * H, e);
    if (!rc && req->normalize) rc = ek_gop_l2_normalize(g, be.out, n, P, e);
    if (!rc) rc = ek_gpu_finish(g, e);
    if (!rc && pooled) rc = ek_gpu_download(g, be.out, 0, pooled, sizeof(float) * (size_t)n * P, e);
    return rc;
}

int ek_gpu_encode(ek_gpu *g, const ek_bert_weights *w, const ek_fwd_batch *b, float *hidden_out, float *attn_first,
                  const ek_gpu_pool_req *req, float *pooled, ek_err *e) {
    int rc = ek_graph_check(w, b, e);
    if (rc) return rc;
    if (req && (req->n_modes < 1 || req->n_modes > 8))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "gpu forward: %d pooling modes", req ? req->n_modes : 0);
    if (b->seq_start[b->n_seq] == 0) {
        if (req && pooled) memset(pooled, 0, sizeof(float) * (size_t)b->n_seq * req->n_modes * w->cfg.hidden);
        return EK_OK;
    }
    held h = {{0}, 0};
    rc = run(g, &h, w, b, hidden_out, attn_first, req, pooled, e);
    if (rc) g->cl.clFinish(g->queue); /* nothing may still use the buffers */
    give_all(g, &h);
    return rc;
}

/* One batch: inputs order[i0 .. i0 + k) packed, pooled, scattered back. */
static int pool_batch(ek_gpu *g, const ek_bert_weights *w, const int32_t *ids, const int32_t *types,
                      const size_t *start, const int *order, size_t i0, size_t k, const ek_gpu_pool_req *req,
                      int32_t *bids, int32_t *btypes, int32_t *bst, float *bout, float *pooled, ek_err *e) {
    size_t tokens = 0;
    bst[0] = 0;
    for (size_t j = 0; j < k; j++) {
        int idx = order[i0 + j];
        size_t len = start[idx + 1] - start[idx];
        memcpy(bids + tokens, ids + start[idx], sizeof *bids * len);
        if (types) memcpy(btypes + tokens, types + start[idx], sizeof *btypes * len);
        else memset(btypes + tokens, 0, sizeof *btypes * len);
        tokens += len;
        bst[j + 1] = (int32_t)tokens;
    }
    ek_fwd_batch b = {bids, btypes, bst, (int)k};
    int rc = ek_gpu_encode(g, w, &b, NULL, NULL, req, bout, e);
    if (rc) return rc;
    size_t P = (size_t)req->n_modes * (size_t)w->cfg.hidden;
    for (size_t j = 0; j < k; j++) memcpy(pooled + (size_t)order[i0 + j] * P, bout + j * P, sizeof(float) * P);
    return EK_OK;
}

int ek_gpu_pool_inputs(ek_gpu *g, const ek_bert_weights *w, const int32_t *ids, const int32_t *types,
                       const size_t *start, const int *order, size_t n, int bs, int max_tokens,
                       const ek_gpu_pool_req *req, float *pooled, ek_err *e) {
    if (!n) return EK_OK;
    size_t max_len = 0;
    for (size_t i = 0; i < n; i++)
        if (start[i + 1] - start[i] > max_len) max_len = start[i + 1] - start[i];
    size_t cap_tokens = (size_t)max_tokens > max_len ? (size_t)max_tokens : max_len;
    size_t P = (size_t)req->n_modes * (size_t)w->cfg.hidden, cap_seq = (size_t)bs;
    int32_t *bids = malloc(sizeof *bids * cap_tokens * 2 + sizeof *bids * (cap_seq + 1));
    float *bout = malloc(sizeof *bout * P * cap_seq);
    if (!bids || !bout) {
        free(bids);
        free(bout);
        return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
    }
    int32_t *btypes = bids + cap_tokens, *bst = btypes + cap_tokens;
    int rc = EK_OK;
    /* limit: inputs per batch now; halved on pressure and kept halved for
     * the rest of the call (the next batch would meet the same wall). */
    size_t limit = cap_seq;
    for (size_t i = 0; i < n && !rc;) {
        size_t tokens = 0, k = 0;
        while (i + k < n && k < limit) {
            size_t len = start[order[i + k] + 1] - start[order[i + k]];
            if (k && tokens + len > (size_t)max_tokens) break;
            tokens += len;
            k++;
        }
        rc = pool_batch(g, w, ids, types, start, order, i, k, req, bids, btypes, bst, bout, pooled, e);
        if (rc == EK_GPU_PRESSURE && k > 1) {
            limit = k / 2;
            g->st.batch_splits++;
            rc = EK_OK;
            continue;
        }
        i += k;
    }
    free(bids);
    free(bout);
    return rc;
}
