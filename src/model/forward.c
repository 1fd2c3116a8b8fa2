/* model/forward.c — the BERT encoder forward pass over packed sequences
 * (see forward.h): embeddings, then per layer a fused QKV product, attention
 * per (sequence, head), attention output + residual + LayerNorm, FFN with
 * exact GELU, output + residual + LayerNorm (post-LN, as BERT), in the
 * model's compute dtype: f32, bf16 (sources converted per chunk, f32
 * accumulation) or int8 (sources quantized per row, s32 sums, the epilogue
 * of compute/lowp.h).  LayerNorm, softmax, attention and GELU stay f32.
 *
 * Dense layers run on pre-packed weights (model/prepack.h) in chunks of
 * rows, with primitives whose per-row result does not depend on the row
 * count (see compute/matmul.h); attention and the row-wise ops see one
 * sequence or row at a time.  Together this makes a sequence's output
 * bitwise independent of the rest of its batch, in every dtype. */
#include "model/forward.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#include "compute/attention.h"
#include "compute/gemm.h"
#include "model/prepack.h"
#include "ops/ops.h"

/* ---- scratch layout ----------------------------------------------------- */

#define ALIGN_FLOATS 16 /* 64 bytes */

static size_t round_up(size_t n, size_t a) { return (n + a - 1) / a * a; }

/* All but attention runs on chunks of this many rows, so that the
 * feed-forward block's [rows][I] intermediate (and int8's sums) stay in the
 * L2 caches instead of streaming [M][I] through memory: measured ~1 ns per
 * element of the intermediate when it does not fit.  The matmul kernels give a row the same
 * result whatever M (see compute/matmul.h), so chunking changes nothing. */
#define FFN_CHUNK 256

/* Offsets in floats.  Matmuls run on Mp = ek_mm_row_class(rows) rows: the
 * rows past the batch are zero on entry, computed and ignored. */
typedef struct layout {
    size_t Mp;
    size_t x;        /* [Mp][H] hidden state (copied to hidden_out at the end) */
    size_t buf;      /* [Mp][4H]: qkv [Mp][3H] (int8: its s32 sums first) +
                        ctx [Mp][H]; int8's attention-output sums reuse qkv */
    size_t ffn;      /* [chunk][max(3H, I)]: f32 / bf16 FFN intermediate,
                        int8's s32 sums */
    size_t low;      /* a chunk's bf16 / int8 matmul source: [chunk][H] (bf16
                        or u8), then int8's u8 ffn [chunk][I] */
    size_t rs;       /* int8: [2][FFN_CHUNK] row scales */
    size_t tmp;      /* int8: per thread, I floats (epilogue rows) */
    size_t headprob; /* [heads][Mp]: last layer's row-0 probabilities per head */
    size_t attn;     /* per thread: ek_attention_scratch floats */
    size_t per_thread, per_thread_tmp;
    size_t total;    /* floats */
} layout;

static layout make_layout(const ek_bert_config *cfg, int rows, int threads) {
    layout l;
    size_t Mp = (size_t)ek_mm_row_class(rows > 0 ? rows : 1);
    size_t H = (size_t)cfg->hidden, I = (size_t)cfg->intermediate;
    int d = cfg->heads > 0 ? cfg->hidden / cfg->heads : 1;
    int lowp = cfg->compute_dtype != EK_FWD_F32, int8 = cfg->compute_dtype == EK_FWD_INT8;
    l.Mp = Mp;
    l.x = 0;
    l.buf = round_up(l.x + Mp * H, ALIGN_FLOATS);
    size_t C = Mp < FFN_CHUNK ? Mp : FFN_CHUNK;
    size_t fw = 3 * H > I ? 3 * H : I;
    l.ffn = round_up(l.buf + Mp * 4 * H, ALIGN_FLOATS);
    l.low = round_up(l.ffn + C * fw, ALIGN_FLOATS);
    /* bf16 [C][max(H, I)]: C * max(H, I) / 2 floats; int8 u8 [C][H] + [C][I]. */
    size_t low = !lowp ? 0 : int8 ? round_up(FFN_CHUNK * H, 64) / 4 + round_up(C * I, 64) / 4 : round_up(C * fw, 2) / 2;
    l.rs = round_up(l.low + low, ALIGN_FLOATS);
    l.tmp = round_up(l.rs + (int8 ? 2 * FFN_CHUNK : 0), ALIGN_FLOATS);
    l.per_thread_tmp = int8 ? round_up(I, ALIGN_FLOATS) : 0;
    l.headprob = round_up(l.tmp + l.per_thread_tmp * (size_t)threads, ALIGN_FLOATS);
    l.attn = round_up(l.headprob + (size_t)cfg->heads * Mp, ALIGN_FLOATS);
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
static void embed_seq(const ek_bert_weights *w, const ek_fwd_batch *b, float *x, int s) {
    const int H = w->cfg.hidden;
    const ek_layernorm *ln = &w->ln_emb;
    {
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

/* Every parallel loop below runs as a plain loop on one thread: entering an
 * OpenMP region, even of one thread, makes libgomp allocate (and free) a
 * team, which would put an allocation on every call of the hot path.  Each
 * iteration is independent, so the result is the same either way. */
static void embed(const ek_bert_weights *w, const ek_fwd_batch *b, float *x,
                  int nt) {
    if (nt > 1) {
#pragma omp parallel for schedule(dynamic) num_threads(nt)
        for (int s = 0; s < b->n_seq; s++) embed_seq(w, b, x, s);
    } else {
        for (int s = 0; s < b->n_seq; s++) embed_seq(w, b, x, s);
    }
}

static void layernorm_rows(float *x, int rows, const ek_layernorm *ln,
                           int H, float eps, int nt) {
    /* Blocks of rows per task; each row's result is independent of the
     * blocking. */
    enum { BLOCK = 16 };
    int blocks = (rows + BLOCK - 1) / BLOCK;
    if (nt <= 1) {
        for (int r0 = 0; r0 < rows; r0 += BLOCK)
            ek_op_add_layernorm(x + (size_t)r0 * H, NULL, rows - r0 < BLOCK ? rows - r0 : BLOCK, H,
                                ln->gamma, ln->beta, eps);
        return;
    }
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
    int H, heads, R, isa;
    int lowp;            /* bf16 / int8 dtypes: bf16 products in attention */
} attn_job;

static void attention_pair(const ek_fwd_batch *b, const attn_job *j, int p, float scale, float *ws) {
    const int d = j->H / j->heads;
    {
        int s = p / j->heads, h = p % j->heads;
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        if (L == 0) return;
        (j->lowp ? ek_attention_head_lowp : ek_attention_head_at)(
            j->isa, j->qkv + (size_t)start * 3 * j->H + (size_t)h * d, 3 * j->H, j->H, L, d, scale,
            j->ctx + (size_t)start * j->H + (size_t)h * d, j->H,
            j->headprob ? j->headprob + (size_t)h * j->R + start : NULL, ws);
    }
}

static void attention(const ek_fwd_batch *b, const attn_job *j, int nt) {
    const int d = j->H / j->heads;
    const int pairs = b->n_seq * j->heads;
    const float scale = 1.0f / sqrtf((float)d);
    if (nt <= 1) {
        for (int p = 0; p < pairs; p++) attention_pair(b, j, p, scale, j->scratch);
        return;
    }
#pragma omp parallel for schedule(dynamic) num_threads(nt)
    for (int p = 0; p < pairs; p++)
        attention_pair(b, j, p, scale, j->scratch + j->per_thread * (size_t)omp_get_thread_num());
}

/* ---- low-precision sources and the int8 epilogue ---------------------- */

enum { ROW_BLOCK = 16 };

/* bf16 copy of src [Mp][n] into dst, rows in parallel blocks. */
static void to_bf16(const ek_bert_runtime *rt, const float *src, int Mp, int n,
                    uint16_t *dst, int nt) {
    int blocks = (Mp + ROW_BLOCK - 1) / ROW_BLOCK;
    if (nt <= 1) {
        for (int r0 = 0; r0 < Mp; r0 += ROW_BLOCK)
            rt->k.to_bf16(src + (size_t)r0 * n, Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK, n, n,
                          dst + (size_t)r0 * n);
        return;
    }
#pragma omp parallel for num_threads(nt)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * ROW_BLOCK, k = Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK;
        rt->k.to_bf16(src + (size_t)r0 * n, k, n, n, dst + (size_t)r0 * n);
    }
}

static void quant(const ek_bert_runtime *rt, const float *src, int Mp, int n,
                  uint8_t *dst, float *rs, int nt) {
    int blocks = (Mp + ROW_BLOCK - 1) / ROW_BLOCK;
    if (nt <= 1) {
        for (int r0 = 0; r0 < Mp; r0 += ROW_BLOCK)
            rt->k.quant_u8(src + (size_t)r0 * n, Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK, n, n,
                           dst + (size_t)r0 * n, rs + r0);
        return;
    }
#pragma omp parallel for num_threads(nt)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * ROW_BLOCK, k = Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK;
        rt->k.quant_u8(src + (size_t)r0 * n, k, n, n, dst + (size_t)r0 * n, rs + r0);
    }
}

static void epilogue(const ek_bert_runtime *rt, const ek_mm_weights *w,
                     const int32_t *acc, const float *rs, int Mp, int mode,
                     float *out, uint8_t *q, float *rs_out, float *tmp,
                     size_t tmp_stride, int nt) {
    int blocks = (Mp + ROW_BLOCK - 1) / ROW_BLOCK;
    if (nt <= 1) {
        for (int r0 = 0; r0 < Mp; r0 += ROW_BLOCK) {
            ek_epi_args a = {acc, rs, w->scale, w->colsum, w->bias_ptr, w->N, out, q, rs_out, tmp};
            rt->k.epilogue(&a, r0, Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK, mode);
        }
        return;
    }
#pragma omp parallel for num_threads(nt)
    for (int bk = 0; bk < blocks; bk++) {
        int r0 = bk * ROW_BLOCK, k = Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK;
        ek_epi_args a = {acc, rs, w->scale, w->colsum, w->bias_ptr, w->N, out, q,
                         rs_out, tmp + tmp_stride * (size_t)omp_get_thread_num()};
        rt->k.epilogue(&a, r0, k, mode);
    }
}

/* ---- the pass ----------------------------------------------------------- */

typedef struct pass {
    const ek_bert_runtime *rt;
    ek_rt_slot *chunk;       /* FFN_CHUNK rows (or Mp when smaller) */
    ek_rt_slot *tail;        /* the last FFN chunk's rows, or NULL */
    layout lay;
    float *scratch;
    int Mp, H, I, nt;
} pass;

static int run_slot(pass *p, ek_rt_slot *s, int lin, int layer, const void *A, void *C) {
    return ek_mm_run(&s->cls->prim[lin], &s->io[lin], s->stream, A, &p->rt->lin[layer][lin], C);
}

/* The FFN matmul for chunk rows starting at r0. */
static int mm_chunk(pass *p, int lin, int layer, int r0, const void *A, void *C) {
    ek_rt_slot *s = p->Mp - r0 >= p->chunk->cls->M ? p->chunk : p->tail;
    return run_slot(p, s, lin, layer, A, C);
}

static int chunk_rows(const pass *p, int r0) {
    int C = p->chunk->cls->M;
    return p->Mp - r0 < C ? p->Mp - r0 : C;
}

/* One encoder layer, x [Mp][H] in place.  Everything but attention is
 * row-local, so it runs per chunk of rows (see FFN_CHUNK): the QKV product
 * (with int8's epilogue) in a first pass, attention over whole sequences,
 * then per chunk the attention output, LayerNorm, the feed-forward block
 * and LayerNorm, all while the chunk's rows are in cache. */
static int layer_f32(pass *p, int li, float *x, const ek_fwd_batch *b,
                     attn_job *job, const ek_bert_layer *L, float eps) {
    const int Mp = p->Mp, H = p->H, R = b->seq_start[b->n_seq];
    float *buf = p->scratch + p->lay.buf;
    float *qkv = buf, *ctx = buf + (size_t)Mp * 3 * H, *ffn = p->scratch + p->lay.ffn;
    for (int r0 = 0; r0 < Mp; r0 += chunk_rows(p, r0))
        if (mm_chunk(p, EK_LIN_QKV, li, r0, x + (size_t)r0 * H, qkv + (size_t)r0 * 3 * H)) return -1;
    attention(b, job, p->nt);
    /* Rows past the batch: attention leaves them; keep them finite. */
    memset(ctx + (size_t)R * H, 0, sizeof(float) * (size_t)(Mp - R) * H);
    for (int r0 = 0; r0 < Mp; r0 += chunk_rows(p, r0)) {
        int n = chunk_rows(p, r0);
        float *xc = x + (size_t)r0 * H;
        if (mm_chunk(p, EK_LIN_ATTN_OUT, li, r0, ctx + (size_t)r0 * H, xc)) return -1;
        layernorm_rows(xc, n, &L->ln_attn, H, eps, p->nt);
        if (mm_chunk(p, EK_LIN_FFN_IN, li, r0, xc, ffn) || mm_chunk(p, EK_LIN_FFN_OUT, li, r0, ffn, xc)) return -1;
        layernorm_rows(xc, n, &L->ln_ffn, H, eps, p->nt);
    }
    return 0;
}

static int layer_bf16(pass *p, int li, float *x, const ek_fwd_batch *b,
                      attn_job *job, const ek_bert_layer *L, float eps) {
    const int Mp = p->Mp, H = p->H, R = b->seq_start[b->n_seq];
    float *buf = p->scratch + p->lay.buf;
    float *qkv = buf, *ctx = buf + (size_t)Mp * 3 * H;
    uint16_t *ffn = (uint16_t *)(p->scratch + p->lay.ffn), *low = (uint16_t *)(p->scratch + p->lay.low);
    for (int r0 = 0; r0 < Mp; r0 += chunk_rows(p, r0)) {
        to_bf16(p->rt, x + (size_t)r0 * H, chunk_rows(p, r0), H, low, p->nt);
        if (mm_chunk(p, EK_LIN_QKV, li, r0, low, qkv + (size_t)r0 * 3 * H)) return -1;
    }
    attention(b, job, p->nt);
    memset(ctx + (size_t)R * H, 0, sizeof(float) * (size_t)(Mp - R) * H);
    for (int r0 = 0; r0 < Mp; r0 += chunk_rows(p, r0)) {
        int n = chunk_rows(p, r0);
        float *xc = x + (size_t)r0 * H;
        to_bf16(p->rt, ctx + (size_t)r0 * H, n, H, low, p->nt);
        if (mm_chunk(p, EK_LIN_ATTN_OUT, li, r0, low, xc)) return -1;
        layernorm_rows(xc, n, &L->ln_attn, H, eps, p->nt);
        to_bf16(p->rt, xc, n, H, low, p->nt);
        if (mm_chunk(p, EK_LIN_FFN_IN, li, r0, low, ffn) || mm_chunk(p, EK_LIN_FFN_OUT, li, r0, ffn, xc))
            return -1;
        layernorm_rows(xc, n, &L->ln_ffn, H, eps, p->nt);
    }
    return 0;
}

static int layer_int8(pass *p, int li, float *x, const ek_fwd_batch *b,
                      attn_job *job, const ek_bert_layer *L, float eps) {
    const int Mp = p->Mp, H = p->H, R = b->seq_start[b->n_seq];
    const ek_bert_runtime *rt = p->rt;
    float *buf = p->scratch + p->lay.buf;
    float *qkv = buf, *ctx = buf + (size_t)Mp * 3 * H;
    int32_t *acc = (int32_t *)(p->scratch + p->lay.ffn); /* chunk sums */
    uint8_t *low = (uint8_t *)(p->scratch + p->lay.low), *lowf = low + round_up((size_t)FFN_CHUNK * H, 64);
    float *rs = p->scratch + p->lay.rs, *rs2 = rs + FFN_CHUNK;
    float *tmp = p->scratch + p->lay.tmp;
    size_t ts = p->lay.per_thread_tmp;
    const ek_mm_weights *w = rt->lin[li];
    for (int r0 = 0; r0 < Mp; r0 += chunk_rows(p, r0)) {
        int n = chunk_rows(p, r0);
        quant(rt, x + (size_t)r0 * H, n, H, low, rs, p->nt);
        if (mm_chunk(p, EK_LIN_QKV, li, r0, low, acc)) return -1;
        epilogue(rt, &w[EK_LIN_QKV], acc, rs, n, EK_EPI_STORE, qkv + (size_t)r0 * 3 * H, NULL, NULL, tmp, ts,
                 p->nt);
    }
    attention(b, job, p->nt);
    memset(ctx + (size_t)R * H, 0, sizeof(float) * (size_t)(Mp - R) * H);
    for (int r0 = 0; r0 < Mp; r0 += chunk_rows(p, r0)) {
        int n = chunk_rows(p, r0);
        float *xc = x + (size_t)r0 * H;
        quant(rt, ctx + (size_t)r0 * H, n, H, low, rs, p->nt);
        if (mm_chunk(p, EK_LIN_ATTN_OUT, li, r0, low, acc)) return -1;
        epilogue(rt, &w[EK_LIN_ATTN_OUT], acc, rs, n, EK_EPI_ADD, xc, NULL, NULL, tmp, ts, p->nt);
        layernorm_rows(xc, n, &L->ln_attn, H, eps, p->nt);
        quant(rt, xc, n, H, low, rs, p->nt);
        if (mm_chunk(p, EK_LIN_FFN_IN, li, r0, low, acc)) return -1;
        epilogue(rt, &w[EK_LIN_FFN_IN], acc, rs, n, EK_EPI_GELU_QUANT, NULL, lowf, rs2, tmp, ts, p->nt);
        if (mm_chunk(p, EK_LIN_FFN_OUT, li, r0, lowf, acc)) return -1;
        epilogue(rt, &w[EK_LIN_FFN_OUT], acc, rs2, n, EK_EPI_ADD, xc, NULL, NULL, tmp, ts, p->nt);
        layernorm_rows(xc, n, &L->ln_ffn, H, eps, p->nt);
    }
    return 0;
}

static int run_layers(const ek_bert_weights *w, ek_bert_runtime *rt,
                      const ek_fwd_batch *b, float *x, float *attn_first,
                      float *scratch, int nt, ek_err *e) {
    const ek_bert_config *cfg = &w->cfg;
    const int H = cfg->hidden, I = cfg->intermediate, R = b->seq_start[b->n_seq];
    ek_bert_config c2 = *cfg;
    c2.compute_dtype = rt->dtype; /* the layout follows the runtime in use */
    pass p = {rt, NULL, NULL, make_layout(&c2, R, nt), scratch, 0, H, I, nt};
    p.Mp = (int)p.lay.Mp;
    /* Mp and FFN_CHUNK are multiples of 16, so the tail chunk (Mp %
     * FFN_CHUNK rows) is a row class of its own: at most 16 classes. */
    int C = p.Mp < FFN_CHUNK ? p.Mp : FFN_CHUNK, tail = p.Mp % C;
    int rc = ek_bert_runtime_acquire(rt, C, &p.chunk, e);
    if (!rc && tail) rc = ek_bert_runtime_acquire(rt, tail, &p.tail, e);
    if (rc) {
        ek_bert_runtime_release(rt, p.chunk);
        return rc;
    }
    float *buf = scratch + p.lay.buf;
    attn_job job = {buf, buf + (size_t)p.Mp * 3 * H, NULL, scratch + p.lay.attn,
                    p.lay.per_thread, H, cfg->heads, p.Mp, (int)rt->isa, rt->dtype != EK_FWD_F32};
    int (*layer)(pass *, int, float *, const ek_fwd_batch *, attn_job *,
                 const ek_bert_layer *, float) =
        rt->dtype == EK_FWD_BF16 ? layer_bf16 : rt->dtype == EK_FWD_INT8 ? layer_int8 : layer_f32;
    for (int li = 0; li < cfg->layers && rc == EK_OK; li++) {
        int last = li == cfg->layers - 1;
        job.headprob = last && attn_first ? scratch + p.lay.headprob : NULL;
        if (layer(&p, li, x, b, &job, &w->layer[li], cfg->ln_eps))
            rc = ek_err_set(e, EK_ERR_INTERNAL, "forward: oneDNN matmul failed (layer %d, %d rows)", li, p.Mp);
    }
    ek_bert_runtime_release(rt, p.chunk);
    ek_bert_runtime_release(rt, p.tail);
    if (rc != EK_OK) return rc;

    if (attn_first) {
        const float *hp = scratch + p.lay.headprob;
        if (cfg->layers == 0) {
            /* No attention layer: uniform weights (never used by real models). */
            for (int s = 0; s < b->n_seq; s++) {
                int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
                for (int t = 0; t < L; t++) attn_first[start + t] = 1.0f / (float)L;
            }
        } else {
            for (int r = 0; r < R; r++) {
                float sum = 0.0f;
                for (int h = 0; h < cfg->heads; h++) sum += hp[(size_t)h * p.Mp + r];
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
    ek_bert_runtime *rt = w->rt, *own = NULL;
    if (!rt) {
        /* Hand-built weights (tests, tools): pack f32 for this call. */
        rc = ek_bert_runtime_create(w, EK_FWD_F32, &own, e);
        if (rc) return rc;
        rt = own;
    }
    ek_bert_config c2 = w->cfg;
    c2.compute_dtype = rt->dtype;
    layout lay = make_layout(&c2, R, nt);
    float *x = (float *)scratch + lay.x;
    const int H = w->cfg.hidden;
    embed(w, batch, x, nt);
    memset(x + (size_t)R * H, 0, sizeof(float) * (lay.Mp - (size_t)R) * H);
    rc = run_layers(w, rt, batch, x, attn_first, (float *)scratch, nt, e);
    if (rc == EK_OK) memcpy(hidden_out, x, sizeof(float) * (size_t)R * H);
    ek_bert_runtime_free(own);
    return rc;
}
