/* model/graph.c — the BERT encoder, written once against the backend
 * interface (model/backend.h): the CPU (model/forward.c) and OpenCL
 * (gpu/encoder.c) passes both run this walk, so a change to the model's
 * structure is made here and nowhere else. */
#include "model/backend.h"

int ek_graph_check(const ek_bert_weights *w, const ek_fwd_batch *b, ek_err *e) {
    const ek_bert_config *cfg = &w->cfg;
    if (cfg->hidden <= 0 || cfg->heads <= 0 || cfg->hidden % cfg->heads || cfg->intermediate <= 0 || cfg->layers < 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "forward: bad config (hidden %d, heads %d, intermediate %d)",
                          cfg->hidden, cfg->heads, cfg->intermediate);
    if (b->n_seq < 0 || !b->seq_start || b->seq_start[0] != 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "forward: bad batch (n_seq %d, seq_start[0] must be 0)", b->n_seq);
    for (int s = 0; s < b->n_seq; s++) {
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        if (L < 0) return ek_err_set(e, EK_ERR_INVALID_ARG, "forward: sequence %d has negative length %d", s, L);
        if (L > cfg->max_pos)
            return ek_err_set(e, EK_ERR_TOO_LONG,
                              "forward: sequence %d has %d tokens, more than max_position_embeddings %d", s, L,
                              cfg->max_pos);
        for (int t = 0; t < L; t++) {
            int32_t id = b->ids[start + t];
            if (id < 0 || id >= cfg->vocab)
                return ek_err_set(e, EK_ERR_INVALID_ARG,
                                  "forward: sequence %d position %d: token id %d out of range [0, %d)", s, t, (int)id,
                                  cfg->vocab);
            int32_t ty = b->type_ids ? b->type_ids[start + t] : 0;
            if (ty < 0 || ty >= cfg->type_vocab)
                return ek_err_set(e, EK_ERR_INVALID_ARG,
                                  "forward: sequence %d position %d: token type id %d out of range [0, %d)", s, t,
                                  (int)ty, cfg->type_vocab);
        }
    }
    /* All layers must agree on which linears have a bias: the CPU makes one
     * matmul plan for every layer. */
    for (int i = 1; i < cfg->layers; i++) {
        const ek_bert_layer *a = &w->layer[0], *c = &w->layer[i];
        if (!a->qkv.b != !c->qkv.b || !a->attn_out.b != !c->attn_out.b || !a->ffn_in.b != !c->ffn_in.b ||
            !a->ffn_out.b != !c->ffn_out.b)
            return ek_err_set(e, EK_ERR_UNSUPPORTED,
                              "forward: layer %d differs from layer 0 in which dense layers have a bias", i);
    }
    return EK_OK;
}

void ek_graph_uniform_weights(const ek_fwd_batch *b, float *attn_first) {
    for (int s = 0; s < b->n_seq; s++) {
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        for (int t = 0; t < L; t++) attn_first[start + t] = 1.0f / (float)L;
    }
}

/* One post-LN encoder layer.  Everything but attention is row-local, so it
 * runs per row chunk: the QKV product in a first sweep (attention needs
 * every row's keys), attention over whole sequences, then per chunk the
 * attention output, LayerNorm, the feed-forward block and LayerNorm, while
 * the chunk's rows are still in cache. */
static int layer(ek_backend *be, int li, int want_probs, ek_err *e) {
    const ek_backend_ops *op = be->ops;
    int rc = EK_OK;
    for (int c = 0; !rc && op->chunk(be, c); c++)
        rc = op->linear(be, li, EK_OP_QKV, EK_SLOT_X, EK_SLOT_QKV, EK_OUT_STORE, e);
    if (!rc) rc = op->attention(be, li, want_probs, e);
    for (int c = 0; !rc && op->chunk(be, c); c++) {
        rc = op->linear(be, li, EK_OP_ATTN_OUT, EK_SLOT_CTX, EK_SLOT_X, EK_OUT_ADD_RESIDUAL, e);
        if (!rc) rc = op->layernorm(be, li, EK_OP_LN_ATTN, EK_SLOT_X, e);
        if (!rc) rc = op->linear(be, li, EK_OP_FFN_IN, EK_SLOT_X, EK_SLOT_FFN, EK_OUT_GELU, e);
        if (!rc) rc = op->linear(be, li, EK_OP_FFN_OUT, EK_SLOT_FFN, EK_SLOT_X, EK_OUT_ADD_RESIDUAL, e);
        if (!rc) rc = op->layernorm(be, li, EK_OP_LN_FFN, EK_SLOT_X, e);
    }
    return rc;
}

int ek_graph_run(ek_backend *be, const ek_fwd_batch *b, int want_probs, float *hidden_out, float *attn_first,
                 ek_err *e) {
    const int layers = be->w->cfg.layers;
    int rc = be->ops->begin(be, b, want_probs, e);
    if (rc) return rc;
    rc = be->ops->embed(be, e);
    for (int li = 0; li < layers && !rc; li++) rc = layer(be, li, want_probs && li == layers - 1, e);
    return be->ops->end(be, rc, hidden_out, attn_first, e);
}
