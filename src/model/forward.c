/* model/forward.c — the BERT encoder forward pass over packed sequences
 * (see forward.h): embeddings, then per layer a fused QKV GEMM over all rows,
 * attention per (sequence, head), attention output + residual + LayerNorm,
 * FFN with exact GELU, output + residual + LayerNorm (post-LN, as BERT).
 *
 * Every dense layer is one oneDNN matmul over all rows whose per-row result
 * does not depend on the row count (see compute/gemm.h); attention and the
 * row-wise ops see one sequence at a time.  Together this makes a sequence's
 * output bitwise independent of the rest of its batch. */
#include "model/forward.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "compute/attention.h"
#include "compute/gemm.h"
#include "ops/ops.h"

/* ---- scratch layout ----------------------------------------------------- */

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

typedef struct layout {
    size_t buf;      /* [R][max(4H, I)]: qkv [R][3H] + ctx [R][H], or ffn [R][I] */
    size_t headprob; /* [heads][R]: last layer's row-0 probabilities per head */
    size_t attn;     /* per thread: ek_attention_scratch floats */
    size_t per_thread;
    size_t total;    /* floats */
} layout;

static layout make_layout(const ek_bert_config *cfg, int rows, int threads) {
    layout l;
    size_t R = (size_t)(rows > 0 ? rows : 1);
    size_t H = (size_t)cfg->hidden, I = (size_t)cfg->intermediate;
    size_t width = 4 * H > I ? 4 * H : I;
    int d = cfg->heads > 0 ? cfg->hidden / cfg->heads : 1;
    l.buf = 0;
    l.headprob = round_up(l.buf + R * width, ALIGN_FLOATS);
    l.attn = round_up(l.headprob + (size_t)cfg->heads * R, ALIGN_FLOATS);
    /* Sized by max_pos, not the batch's longest sequence: longer sequences
     * are rejected, so no batch can overrun it. */
    l.per_thread = round_up(ek_attention_scratch(cfg->max_pos, d), ALIGN_FLOATS);
    l.total = l.attn + l.per_thread * (size_t)threads;
    return l;
}

static int resolve_threads(int threads) {
    return threads > 0 ? threads : ek_compute_cores();
}

size_t ek_bert_forward_scratch_size(const ek_bert_config *cfg, int total_tokens,
                                    int max_seq_len, int threads) {
    (void)max_seq_len; /* attention scratch is sized by max_pos */
    layout l = make_layout(cfg, total_tokens, resolve_threads(threads));
    return l.total * sizeof(float);
}

/* ---- input checks ------------------------------------------------------- */

static int check_batch(const ek_bert_weights *w, const ek_fwd_batch *b,
                       ek_err *e) {
    const ek_bert_config *cfg = &w->cfg;
    if (cfg->hidden <= 0 || cfg->heads <= 0 || cfg->hidden % cfg->heads ||
        cfg->intermediate <= 0 || cfg->layers < 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG,
                          "forward: bad config (hidden %d, heads %d, "
                          "intermediate %d)",
                          cfg->hidden, cfg->heads, cfg->intermediate);
    if (b->n_seq < 0 || !b->seq_start || b->seq_start[0] != 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG,
                          "forward: bad batch (n_seq %d, seq_start[0] must be 0)",
                          b->n_seq);
    for (int s = 0; s < b->n_seq; s++) {
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        if (L < 0)
            return ek_err_set(e, EK_ERR_INVALID_ARG,
                              "forward: sequence %d has negative length %d", s,
                              L);
        if (L > cfg->max_pos)
            return ek_err_set(e, EK_ERR_TOO_LONG,
                              "forward: sequence %d has %d tokens, more than "
                              "max_position_embeddings %d",
                              s, L, cfg->max_pos);
        for (int t = 0; t < L; t++) {
            int32_t id = b->ids[start + t];
            if (id < 0 || id >= cfg->vocab)
                return ek_err_set(e, EK_ERR_INVALID_ARG,
                                  "forward: sequence %d position %d: token id "
                                  "%d out of range [0, %d)",
                                  s, t, (int)id, cfg->vocab);
            int32_t ty = b->type_ids ? b->type_ids[start + t] : 0;
            if (ty < 0 || ty >= cfg->type_vocab)
                return ek_err_set(e, EK_ERR_INVALID_ARG,
                                  "forward: sequence %d position %d: token type "
                                  "id %d out of range [0, %d)",
                                  s, t, (int)ty, cfg->type_vocab);
        }
    }
    /* All layers must agree on which linears have a bias: one plan serves
     * every layer. */
    for (int i = 1; i < cfg->layers; i++) {
        const ek_bert_layer *a = &w->layer[0], *c = &w->layer[i];
        if (!a->qkv.b != !c->qkv.b || !a->attn_out.b != !c->attn_out.b ||
            !a->ffn_in.b != !c->ffn_in.b || !a->ffn_out.b != !c->ffn_out.b)
            return ek_err_set(e, EK_ERR_UNSUPPORTED,
                              "forward: layer %d differs from layer 0 in which "
                              "dense layers have a bias",
                              i);
    }
    return EK_OK;
}

/* ---- stages ------------------------------------------------------------- */

/* x = LayerNorm(word[id] + type[tt] + pos[t]), summed in HF BERT's order. */
static void embed(const ek_bert_weights *w, const ek_fwd_batch *b, float *x,
                  int nt) {
    const int H = w->cfg.hidden;
    const ek_layernorm *ln = &w->ln_emb;
#pragma omp parallel for schedule(dynamic) num_threads(nt)
    for (int s = 0; s < b->n_seq; s++) {
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        for (int t = 0; t < L; t++) {
            int r = start + t;
            const float *we = w->word_emb + (size_t)b->ids[r] * H;
            const float *te =
                w->type_emb + (size_t)(b->type_ids ? b->type_ids[r] : 0) * H;
            const float *pe = w->pos_emb + (size_t)t * H;
            float *xr = x + (size_t)r * H;
            for (int c = 0; c < H; c++) xr[c] = (we[c] + te[c]) + pe[c];
            ek_op_add_layernorm(xr, NULL, 1, H, ln->gamma, ln->beta,
                                w->cfg.ln_eps);
        }
    }
}

static void layernorm_rows(float *x, int rows, const ek_layernorm *ln,
                           int H, float eps, int nt) {
    /* Blocks of rows per task; each row's result is independent of the
     * blocking. */
    enum { BLOCK = 16 };
    int blocks = (rows + BLOCK - 1) / BLOCK;
#pragma omp parallel for num_threads(nt)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * BLOCK, n = rows - r0 < BLOCK ? rows - r0 : BLOCK;
        ek_op_add_layernorm(x + (size_t)r0 * H, NULL, n, H, ln->gamma,
                            ln->beta, eps);
    }
}

typedef struct attn_job {
    const float *qkv;    /* [R][3H] */
    float *ctx;          /* [R][H] */
    float *headprob;     /* [heads][R] or NULL */
    float *scratch;      /* per thread, per_thread floats each */
    size_t per_thread;
    int H, heads, R;
} attn_job;

static void attention(const ek_fwd_batch *b, const attn_job *j, int nt) {
    const int d = j->H / j->heads;
    const int pairs = b->n_seq * j->heads;
    const float scale = 1.0f / sqrtf((float)d);
#pragma omp parallel for schedule(dynamic) num_threads(nt)
    for (int p = 0; p < pairs; p++) {
        int s = p / j->heads, h = p % j->heads;
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        if (L == 0) continue;
        float *ws = j->scratch + j->per_thread * (size_t)omp_get_thread_num();
        ek_attention_head(j->qkv + (size_t)start * 3 * j->H + (size_t)h * d,
                          3 * j->H, j->H, L, d, scale,
                          j->ctx + (size_t)start * j->H + (size_t)h * d, j->H,
                          j->headprob ? j->headprob + (size_t)h * j->R + start
                                      : NULL,
                          ws);
    }
}

/* ---- the pass ----------------------------------------------------------- */

typedef struct plans {
    ek_dense_plan qkv, attn_out, ffn_in, ffn_out;
} plans;

static void plans_free(plans *p) {
    ek_dense_plan_free(&p->qkv);
    ek_dense_plan_free(&p->attn_out);
    ek_dense_plan_free(&p->ffn_in);
    ek_dense_plan_free(&p->ffn_out);
}

static int plans_init(plans *p, const ek_compute *c, const ek_bert_layer *l0,
                      int R, int H, int I) {
    memset(p, 0, sizeof *p);
    unsigned bq = l0->qkv.b ? EK_DENSE_BIAS : 0;
    unsigned bo = l0->attn_out.b ? EK_DENSE_BIAS : 0;
    unsigned bi = l0->ffn_in.b ? EK_DENSE_BIAS : 0;
    unsigned bf = l0->ffn_out.b ? EK_DENSE_BIAS : 0;
    if (ek_dense_plan_init(&p->qkv, c, R, 3 * H, H, H, 3 * H, bq) ||
        ek_dense_plan_init(&p->attn_out, c, R, H, H, H, H,
                           bo | EK_DENSE_ACCUMULATE) ||
        ek_dense_plan_init(&p->ffn_in, c, R, I, H, H, I, bi | EK_DENSE_GELU) ||
        ek_dense_plan_init(&p->ffn_out, c, R, H, I, I, H,
                           bf | EK_DENSE_ACCUMULATE)) {
        plans_free(p);
        return -1;
    }
    return 0;
}

static int run_layers(const ek_bert_weights *w, const ek_fwd_batch *b,
                      float *x, float *attn_first, float *scratch, int nt,
                      ek_err *e) {
    const ek_bert_config *cfg = &w->cfg;
    const int H = cfg->hidden, I = cfg->intermediate, R = b->seq_start[b->n_seq];
    layout lay = make_layout(cfg, R, nt);
    float *buf = scratch + lay.buf;
    float *qkv = buf, *ctx = buf + (size_t)R * 3 * H, *ffn = buf;

    ek_compute comp;
    if (ek_compute_open(&comp))
        return ek_err_set(e, EK_ERR_INTERNAL, "forward: oneDNN engine failed");
    plans p;
    if (plans_init(&p, &comp, &w->layer[0], R, H, I)) {
        ek_compute_close(&comp);
        return ek_err_set(e, EK_ERR_INTERNAL,
                          "forward: oneDNN matmul setup failed (%d rows)", R);
    }
    attn_job job = {qkv, ctx, NULL, scratch + lay.attn, lay.per_thread,
                    H, cfg->heads, R};
    int rc = EK_OK;
    for (int li = 0; li < cfg->layers && rc == EK_OK; li++) {
        const ek_bert_layer *L = &w->layer[li];
        int last = li == cfg->layers - 1;
        job.headprob = last && attn_first ? scratch + lay.headprob : NULL;
        if (ek_dense_plan_run(&p.qkv, x, L->qkv.w, L->qkv.b, qkv)) {
            rc = EK_ERR_INTERNAL;
            break;
        }
        attention(b, &job, nt);
        /* x += ctx Wo^T + bo (matmul sum post-op), then LayerNorm. */
        if (ek_dense_plan_run(&p.attn_out, ctx, L->attn_out.w, L->attn_out.b, x)) {
            rc = EK_ERR_INTERNAL;
            break;
        }
        layernorm_rows(x, R, &L->ln_attn, H, cfg->ln_eps, nt);
        if (ek_dense_plan_run(&p.ffn_in, x, L->ffn_in.w, L->ffn_in.b, ffn) ||
            ek_dense_plan_run(&p.ffn_out, ffn, L->ffn_out.w, L->ffn_out.b, x)) {
            rc = EK_ERR_INTERNAL;
            break;
        }
        layernorm_rows(x, R, &L->ln_ffn, H, cfg->ln_eps, nt);
    }
    plans_free(&p);
    ek_compute_close(&comp);
    if (rc != EK_OK)
        return ek_err_set(e, rc, "forward: oneDNN matmul failed");

    if (attn_first) {
        const float *hp = scratch + lay.headprob;
        if (cfg->layers == 0) {
            /* No attention layer: uniform weights (never used by real models). */
            for (int s = 0; s < b->n_seq; s++) {
                int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
                for (int t = 0; t < L; t++) attn_first[start + t] = 1.0f / (float)L;
            }
        } else {
            for (int r = 0; r < R; r++) {
                float sum = 0.0f;
                for (int h = 0; h < cfg->heads; h++) sum += hp[(size_t)h * R + r];
                attn_first[r] = sum / (float)cfg->heads;
            }
        }
    }
    return EK_OK;
}

int ek_bert_forward(const ek_bert_weights *w, const ek_fwd_batch *batch,
                    float *hidden_out, float *attn_first, void *scratch,
                    int threads, ek_err *e) {
    int rc = check_batch(w, batch, e);
    if (rc != EK_OK) return rc;
    int R = batch->seq_start[batch->n_seq];
    if (R == 0) return EK_OK;
    int nt = resolve_threads(threads);
    /* oneDNN reads the calling thread's OpenMP setting, so this sets it
     * (the calling thread keeps nt for later OpenMP regions). */
    ek_compute_set_threads(nt);
    embed(w, batch, hidden_out, nt);
    return run_layers(w, batch, hidden_out, attn_first, (float *)scratch, nt, e);
}
