/* gpu/encoder.c — the BERT encoder, pooling and normalisation on an OpenCL
 * device, over the same packed batches as model/forward.c (sequences back
 * to back, no padding; attention bounded by each sequence), so a row's
 * result never depends on its batch neighbours here either.
 *
 * Weights become resident buffers keyed by their host pointers: uploaded
 * on first use, kept across calls, evicted least recently used when the
 * budget needs the room (see bufpool.c).  Per batch everything is enqueued
 * on the in-order queue and waited for once. */
#include <stdlib.h>
#include <string.h>

#include "gpu/gpu.h"
#include "model/bert.h"
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
    cl_mem qkv_w, qkv_b, ao_w, ao_b, ln1_g, ln1_b, fi_w, fi_b, fo_w, fo_b, ln2_g, ln2_b;
} layer_bufs;

static int layer_weights(ek_gpu *g, held *h, const ek_bert_layer *L, int H, int I, layer_bufs *o, ek_err *e) {
    size_t h3 = 3 * (size_t)H;
    int rc = weight(g, h, L->qkv.w, h3 * H, &o->qkv_w, e);
    if (!rc) rc = weight(g, h, L->qkv.b, h3, &o->qkv_b, e);
    if (!rc) rc = weight(g, h, L->attn_out.w, (size_t)H * H, &o->ao_w, e);
    if (!rc) rc = weight(g, h, L->attn_out.b, (size_t)H, &o->ao_b, e);
    if (!rc) rc = weight(g, h, L->ln_attn.gamma, (size_t)H, &o->ln1_g, e);
    if (!rc) rc = weight(g, h, L->ln_attn.beta, (size_t)H, &o->ln1_b, e);
    if (!rc) rc = weight(g, h, L->ffn_in.w, (size_t)I * H, &o->fi_w, e);
    if (!rc) rc = weight(g, h, L->ffn_in.b, (size_t)I, &o->fi_b, e);
    if (!rc) rc = weight(g, h, L->ffn_out.w, (size_t)H * I, &o->fo_w, e);
    if (!rc) rc = weight(g, h, L->ffn_out.b, (size_t)H, &o->fo_b, e);
    if (!rc) rc = weight(g, h, L->ln_ffn.gamma, (size_t)H, &o->ln2_g, e);
    if (!rc) rc = weight(g, h, L->ln_ffn.beta, (size_t)H, &o->ln2_b, e);
    return rc;
}

static int check_batch(const ek_bert_weights *w, const ek_fwd_batch *b, ek_err *e) {
    const ek_bert_config *c = &w->cfg;
    if (c->hidden <= 0 || c->heads <= 0 || c->hidden % c->heads || c->intermediate <= 0 || c->layers < 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "gpu forward: bad config (hidden %d, heads %d)", c->hidden, c->heads);
    if (b->n_seq < 0 || !b->seq_start || b->seq_start[0] != 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "gpu forward: bad batch (n_seq %d)", b->n_seq);
    for (int s = 0; s < b->n_seq; s++) {
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        if (L < 0) return ek_err_set(e, EK_ERR_INVALID_ARG, "gpu forward: sequence %d has negative length", s);
        if (L > c->max_pos)
            return ek_err_set(e, EK_ERR_TOO_LONG, "gpu forward: sequence %d has %d tokens, more than %d", s, L,
                              c->max_pos);
        for (int t = 0; t < L; t++) {
            int32_t id = b->ids[start + t], ty = b->type_ids ? b->type_ids[start + t] : 0;
            if (id < 0 || id >= c->vocab || ty < 0 || ty >= c->type_vocab)
                return ek_err_set(e, EK_ERR_INVALID_ARG,
                                  "gpu forward: sequence %d position %d: token id %d / type %d out of range", s, t,
                                  (int)id, (int)ty);
        }
    }
    return EK_OK;
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

static int run(ek_gpu *g, held *h, const ek_bert_weights *w, const ek_fwd_batch *b, float *hidden_out,
               float *attn_first, const ek_gpu_pool_req *req, float *pooled, ek_err *e) {
    const ek_bert_config *c = &w->cfg;
    const int H = c->hidden, I = c->intermediate, R = b->seq_start[b->n_seq], n = b->n_seq;
    int max_len = 0;
    for (int s = 0; s < n; s++)
        if (b->seq_start[s + 1] - b->seq_start[s] > max_len) max_len = b->seq_start[s + 1] - b->seq_start[s];
    int want_attn = attn_first != NULL;
    if (req)
        for (int k = 0; k < req->n_modes; k++) want_attn |= req->modes[k] == EK_POOL_ATTENTION;
    int rc = host_arrays(g, b, R, e);
    if (rc) return rc;

    /* Activations first: when they do not fit, fail before uploading weights. */
    cl_mem ids, types, pos, seq, st, x, qkv, ctx, ffn, hp = NULL, wts = NULL, out = NULL;
    size_t fR = (size_t)R * sizeof(float), iR = (size_t)R * sizeof(int32_t);
    int P = req ? req->n_modes * H : 0;
    if ((rc = scratch(g, h, iR, &ids, e)) || (rc = scratch(g, h, iR, &types, e)) || (rc = scratch(g, h, iR, &pos, e)) ||
        (rc = scratch(g, h, iR, &seq, e)) || (rc = scratch(g, h, sizeof(int32_t) * (size_t)(n + 1), &st, e)) ||
        (rc = scratch(g, h, fR * H, &x, e)) || (rc = scratch(g, h, fR * 3 * H, &qkv, e)) ||
        (rc = scratch(g, h, fR * H, &ctx, e)) || (rc = scratch(g, h, fR * I, &ffn, e)))
        return rc;
    if (want_attn && ((rc = scratch(g, h, fR * c->heads, &hp, e)) || (rc = scratch(g, h, fR, &wts, e)))) return rc;
    if (req && (rc = scratch(g, h, sizeof(float) * (size_t)n * P, &out, e))) return rc;

    cl_mem word, type_emb, pos_emb, lng, lnb;
    if ((rc = weight(g, h, w->word_emb, (size_t)c->vocab * H, &word, e)) ||
        (rc = weight(g, h, w->type_emb, (size_t)c->type_vocab * H, &type_emb, e)) ||
        (rc = weight(g, h, w->pos_emb, (size_t)c->max_pos * H, &pos_emb, e)) ||
        (rc = weight(g, h, w->ln_emb.gamma, (size_t)H, &lng, e)) ||
        (rc = weight(g, h, w->ln_emb.beta, (size_t)H, &lnb, e)))
        return rc;
    const int32_t *hi = g->host_i;
    if ((rc = ek_gpu_upload(g, ids, 0, hi, iR, e)) || (rc = ek_gpu_upload(g, types, 0, hi + R, iR, e)) ||
        (rc = ek_gpu_upload(g, pos, 0, hi + 2 * (size_t)R, iR, e)) ||
        (rc = ek_gpu_upload(g, seq, 0, hi + 3 * (size_t)R, iR, e)) ||
        (rc = ek_gpu_upload(g, st, 0, hi + 4 * (size_t)R, sizeof(int32_t) * (size_t)(n + 1), e)))
        return rc;

    rc = ek_gop_embed_ln(g, x, R, H, ids, types, pos, word, type_emb, pos_emb, lng, lnb, c->ln_eps, e);
    for (int li = 0; li < c->layers && !rc; li++) {
        layer_bufs L;
        /* Per layer, so a budget that holds one layer's weights at a time
         * still works (earlier layers become evictable once used). */
        held lh = {{0}, 0};
        rc = layer_weights(g, &lh, &w->layer[li], H, I, &L, e);
        int last = li == c->layers - 1;
        if (!rc) rc = ek_gop_gemm_nt(g, R, 3 * H, H, 1.0f, x, 0, H, L.qkv_w, 0, H, L.qkv_b, qkv, 0, 3 * H, 0, 0, e);
        if (!rc)
            rc = ek_gop_attention(g, qkv, ctx, seq, st, NULL, R, H, c->heads, max_len, last && want_attn ? hp : NULL,
                                  e);
        if (!rc) rc = ek_gop_gemm_nt(g, R, H, H, 1.0f, ctx, 0, H, L.ao_w, 0, H, L.ao_b, x, 0, H, 0, 1, e);
        if (!rc) rc = ek_gop_layernorm(g, x, NULL, R, H, L.ln1_g, L.ln1_b, c->ln_eps, e);
        if (!rc) rc = ek_gop_gemm_nt(g, R, I, H, 1.0f, x, 0, H, L.fi_w, 0, H, L.fi_b, ffn, 0, I, 3, 0, e);
        if (!rc) rc = ek_gop_gemm_nt(g, R, H, I, 1.0f, ffn, 0, I, L.fo_w, 0, I, L.fo_b, x, 0, H, 0, 1, e);
        if (!rc) rc = ek_gop_layernorm(g, x, NULL, R, H, L.ln2_g, L.ln2_b, c->ln_eps, e);
        /* The in-order queue keeps the layer's buffers alive until its
         * kernels ran even if they are released and reused: a later writer
         * is queued after them. */
        give_all(g, &lh);
    }
    if (!rc && want_attn) {
        if (c->layers == 0) {
            /* As the CPU: no attention layer gives uniform weights. */
            float *u = malloc(fR ? fR : 1);
            if (!u) return ek_err_set(e, EK_ERR_NOMEM, "gpu: out of memory");
            for (int s = 0; s < n; s++)
                for (int r = b->seq_start[s]; r < b->seq_start[s + 1]; r++)
                    u[r] = 1.0f / (float)(b->seq_start[s + 1] - b->seq_start[s]);
            rc = ek_gpu_upload(g, wts, 0, u, fR, e);
            free(u);
        } else {
            rc = ek_gop_head_mean(g, hp, wts, R, c->heads, e);
        }
    }
    if (!rc && req) {
        for (int k = 0; k < req->n_modes && !rc; k++)
            rc = ek_gop_pool(g, req->modes[k], x, H, st, n, req->mask_from, wts, out, P, k * H, e);
        if (!rc && req->normalize) rc = ek_gop_l2_normalize(g, out, n, P, e);
    }
    if (!rc) rc = ek_gpu_finish(g, e);
    if (!rc && hidden_out) rc = ek_gpu_download(g, x, 0, hidden_out, fR * H, e);
    if (!rc && attn_first) rc = ek_gpu_download(g, wts, 0, attn_first, fR, e);
    if (!rc && req && pooled) rc = ek_gpu_download(g, out, 0, pooled, sizeof(float) * (size_t)n * P, e);
    return rc;
}

int ek_gpu_encode(ek_gpu *g, const ek_bert_weights *w, const ek_fwd_batch *b, float *hidden_out, float *attn_first,
                  const ek_gpu_pool_req *req, float *pooled, ek_err *e) {
    int rc = check_batch(w, b, e);
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
