/* model/forward.c — the CPU backend of the BERT graph (model/backend.h,
 * model/graph.c) and its entry point ek_bert_forward: the encoder over
 * packed sequences in the model's compute dtype: f32, bf16 (sources
 * converted per chunk, f32 accumulation) or int8 (sources quantized per
 * row, s32 sums, the epilogue of compute/lowp.h).  LayerNorm, softmax,
 * attention and GELU stay f32.
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
#include "model/backend.h"
#include "model/prepack.h"
#include "ops/ops.h"

/* The graph names linears by the packed runtime's indices. */
_Static_assert((int)EK_OP_QKV == (int)EK_LIN_QKV && (int)EK_OP_ATTN_OUT == (int)EK_LIN_ATTN_OUT &&
                   (int)EK_OP_FFN_IN == (int)EK_LIN_FFN_IN && (int)EK_OP_FFN_OUT == (int)EK_LIN_FFN_OUT,
               "graph linear ids must match model/prepack.h");


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
    size_t qfull;    /* int8: u8 [Mp][H], the QKV / ATTN_OUT source for all
                        rows (quantized in one pass, or by LN_FFN) */
    size_t rsfull;   /* int8: [Mp] its row scales */
    size_t tmp;      /* int8: per thread, max(I, 3H) floats (epilogue rows) */
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
    l.qfull = round_up(l.rs + (int8 ? 2 * FFN_CHUNK : 0), ALIGN_FLOATS);
    l.rsfull = round_up(l.qfull + (int8 ? round_up(Mp * H, 64) / 4 : 0), ALIGN_FLOATS);
    l.tmp = round_up(l.rsfull + (int8 ? Mp : 0), ALIGN_FLOATS);
    l.per_thread_tmp = int8 ? round_up(I > 3 * H ? I : 3 * H, ALIGN_FLOATS) : 0;
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

/* ---- sequence-parallel passes: the plan ------------------------------ */

/* With several threads and enough sequences, each thread runs whole
 * units -- consecutive sequences of about UNIT_ROWS rows -- through every
 * layer on its own (nt = 1 inside; oneDNN runs serially inside an OpenMP
 * region), taking the next unit when done.  Everything but attention is
 * row-local and attention stays inside a sequence, so a unit needs nobody
 * else's rows: no barrier between the ~20 steps of a layer (libgomp's
 * barriers and the imbalance of splitting each small matmul in two were
 * ~8% of an int8 pass), and a unit's activations stay with one core
 * through all the layers.  Results are bitwise those of the layer-parallel
 * pass: the matmuls give a row the same result whatever M and the thread
 * count (oneDNN 2.6 runs a primitive serially inside a parallel region,
 * with the blocking it chose at creation; tests/test_forward.c and
 * tests/test_dtype.c compare the two passes bitwise). */
#define UNIT_ROWS 256

/* Units hold at most this many rows: UNIT_ROWS, or one longer sequence. */
static int unit_cap(int longest) { return longest > UNIT_ROWS ? longest : UNIT_ROWS; }

/* Bytes one thread's unit pass needs: its layout for cap rows, then the
 * unit's rebased seq_start (at most cap + 1 entries: a unit also ends at
 * cap sequences, so empty ones cannot overrun it). */
static size_t unit_bytes(const ek_bert_config *cfg, int cap) {
    layout l = make_layout(cfg, cap, 1);
    return round_up(l.total * sizeof(float) + sizeof(int32_t) * ((size_t)cap + 1), 64);
}

size_t ek_bert_forward_scratch_size(const ek_bert_config *cfg, int total_tokens,
                                    int max_seq_len, int threads) {
    int nt = resolve_threads(threads);
    layout l = make_layout(cfg, total_tokens, nt);
    size_t whole = l.total * sizeof(float);
    if (nt <= 1) return whole;
    int longest = max_seq_len < cfg->max_pos ? max_seq_len : cfg->max_pos;
    size_t units = unit_bytes(cfg, unit_cap(longest)) * (size_t)nt;
    return whole > units ? whole : units;
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
    const uint16_t *qkvh; /* or NULL: int8's bf16 Q, K, V in place of qkv: row r
                             at qkvh + 6H r, the first half of qkv's f32 row */
    float *ctx;          /* [R][H] */
    float *headprob;     /* [heads][R] or NULL */
    float *scratch;      /* per thread, per_thread floats each */
    size_t per_thread;
    int H, heads, R, isa;
    int lowp;            /* bf16 / int8 dtypes: bf16 products in attention */
    /* int8: quantize each sequence's context rows for ATTN_OUT (into cq,
     * row scales crs) right after its heads, while they are in cache, when
     * attention runs per sequence (enough sequences); NULL: not. */
    void (*quant)(const float *x, int rows, int n, int ldx, uint8_t *q, float *rs);
    uint8_t *cq;
    float *crs;
} attn_job;

static void attention_pair(const ek_fwd_batch *b, const attn_job *j, int p, float scale, float *ws) {
    const int d = j->H / j->heads;
    {
        int s = p / j->heads, h = p % j->heads;
        int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
        if (L == 0) return;
        if (j->qkvh) {
            ek_attention_head_lowp_bf16in(j->qkvh + (size_t)start * 6 * j->H + (size_t)h * d, 6 * j->H, j->H, L, d,
                                          scale, j->ctx + (size_t)start * j->H + (size_t)h * d, j->H,
                                          j->headprob ? j->headprob + (size_t)h * j->R + start : NULL, ws);
            return;
        }
        (j->lowp ? ek_attention_head_lowp : ek_attention_head_at)(
            j->isa, j->qkv + (size_t)start * 3 * j->H + (size_t)h * d, 3 * j->H, j->H, L, d, scale,
            j->ctx + (size_t)start * j->H + (size_t)h * d, j->H,
            j->headprob ? j->headprob + (size_t)h * j->R + start : NULL, ws);
    }
}

/* A sequence's heads, then (cq) its context rows' quantization. */
static void attention_seq(const ek_fwd_batch *b, const attn_job *j, int s, float scale, float *ws) {
    for (int h = 0; h < j->heads; h++) attention_pair(b, j, s * j->heads + h, scale, ws);
    int start = b->seq_start[s], L = b->seq_start[s + 1] - start;
    if (L > 0)
        j->quant(j->ctx + (size_t)start * j->H, L, j->H, j->H, j->cq + (size_t)start * j->H, j->crs + start);
}

/* Whether attention() quantizes the context (per sequence): with cq and
 * enough sequences to share among the threads. */
static int attention_quantizes(const ek_fwd_batch *b, const attn_job *j, int nt) {
    return j->cq && (nt <= 1 || b->n_seq >= 4 * nt);
}

static void attention(const ek_fwd_batch *b, const attn_job *j, int nt) {
    const int d = j->H / j->heads;
    const int pairs = b->n_seq * j->heads;
    const float scale = 1.0f / sqrtf((float)d);
    if (attention_quantizes(b, j, nt)) {
        if (nt <= 1) {
            for (int s = 0; s < b->n_seq; s++) attention_seq(b, j, s, scale, j->scratch);
            return;
        }
#pragma omp parallel for schedule(dynamic) num_threads(nt)
        for (int s = 0; s < b->n_seq; s++)
            attention_seq(b, j, s, scale, j->scratch + j->per_thread * (size_t)omp_get_thread_num());
        return;
    }
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

/* int8: the residual epilogue of ATTN_OUT / FFN_OUT, the LayerNorm that
 * follows it and (q non-NULL) the quantization of its output for the next
 * linear, per block of rows while the block is in cache: one parallel
 * region instead of three passes.  Each row goes through the same
 * functions as unfused, in the same order. */
static void epilogue_ln_block(const ek_bert_runtime *rt, const ek_mm_weights *w, const int32_t *acc,
                              const float *rs, int Mp, float *x, const ek_layernorm *ln, float eps, uint8_t *q,
                              float *rs_q, int bk) {
    const int H = w->N, r0 = bk * ROW_BLOCK, k = Mp - r0 < ROW_BLOCK ? Mp - r0 : ROW_BLOCK;
    ek_epi_args a = {acc, rs, w->scale, w->colsum, w->bias_ptr, w->N, x, NULL, NULL, NULL};
    rt->k.epilogue(&a, r0, k, EK_EPI_ADD);
    ek_op_add_layernorm(x + (size_t)r0 * H, NULL, k, H, ln->gamma, ln->beta, eps);
    if (q) rt->k.quant_u8(x + (size_t)r0 * H, k, H, H, q + (size_t)r0 * H, rs_q + r0);
}

static void epilogue_ln(const ek_bert_runtime *rt, const ek_mm_weights *w, const int32_t *acc,
                        const float *rs, int Mp, float *x, const ek_layernorm *ln, float eps, uint8_t *q,
                        float *rs_q, int nt) {
    int blocks = (Mp + ROW_BLOCK - 1) / ROW_BLOCK;
    if (nt <= 1) {
        for (int bk = 0; bk < blocks; bk++) epilogue_ln_block(rt, w, acc, rs, Mp, x, ln, eps, q, rs_q, bk);
        return;
    }
#pragma omp parallel for num_threads(nt)
    for (int bk = 0; bk < blocks; bk++) epilogue_ln_block(rt, w, acc, rs, Mp, x, ln, eps, q, rs_q, bk);
}

/* ---- the CPU backend ---------------------------------------------------- */

/* A pass's state, on the caller's stack (nothing allocated per call). */
typedef struct cpu_be {
    ek_backend base;
    ek_bert_runtime *rt;
    float *scratch;
    int nt;
    const ek_fwd_batch *b;
    layout lay;
    int Mp, H, R;
    ek_rt_slot *chunk;        /* FFN_CHUNK rows (or Mp when smaller) */
    ek_rt_slot *tail;         /* the last chunk's rows, or NULL */
    int r0, n;                /* the current chunk's rows */
    attn_job job;
    /* int8: a residual epilogue left for the LayerNorm that follows it
     * (epilogue_ln), and whether the chunk's FFN_IN source is quantized
     * already (by that LayerNorm). */
    const ek_mm_weights *pending;
    const int32_t *pending_acc;
    const float *pending_rs;
    float *pending_out;
    int pending_rows, ffn_in_ready;
    /* int8, qfull / rsfull: rows [0, qkv_ready) hold the quantized hidden
     * state (LN_FFN's fused quantization, QKV's source); ctx_ready: they
     * hold the quantized attention context (ATTN_OUT's source).  QKV's s32
     * sums go to the QKV slot itself, and its epilogue (in place) runs for
     * rows [0, qkv_rows) in one pass before attention (qkv_epi). */
    const ek_mm_weights *qkv_epi;
    int qkv_ready, ctx_ready, qkv_rows, qkv_bf16;
} cpu_be;

/* Runs a residual epilogue cpu_linear left pending, unfused. */
static void flush_pending(cpu_be *p) {
    if (!p->pending) return;
    epilogue(p->rt, p->pending, p->pending_acc, p->pending_rs, p->pending_rows, EK_EPI_ADD, p->pending_out, NULL,
             NULL, p->scratch + p->lay.tmp, p->lay.per_thread_tmp, p->nt);
    p->pending = NULL;
}

/* int8: QKV's epilogue, s32 sums to f32 (or bf16 in the first half of each
 * row, qkv_bf16) in place in the QKV slot (each element is read before it
 * is written), all rows in one pass. */
static void flush_qkv(cpu_be *p) {
    if (!p->qkv_epi) return;
    float *q = p->scratch + p->lay.buf;
    epilogue(p->rt, p->qkv_epi, (const int32_t *)q, p->scratch + p->lay.rsfull, p->qkv_rows,
             p->qkv_bf16 ? EK_EPI_STORE_BF16 : EK_EPI_STORE, q, NULL,
             NULL, p->scratch + p->lay.tmp, p->lay.per_thread_tmp, p->nt);
    p->qkv_epi = NULL;
}

/* The epilogue each linear's packed plan has fused (f32 / bf16 primitive
 * flags, made at load) or runs (int8): the graph must ask for exactly it. */
static const ek_out plan_out[EK_LIN_COUNT] = {EK_OUT_STORE, EK_OUT_ADD_RESIDUAL, EK_OUT_GELU, EK_OUT_ADD_RESIDUAL};

static int cpu_begin(ek_backend *bk, const ek_fwd_batch *b, int want_probs, ek_err *e) {
    cpu_be *p = (cpu_be *)bk;
    const ek_bert_config *cfg = &bk->w->cfg;
    (void)want_probs; /* the head probabilities have their scratch always */
    ek_bert_config c2 = *cfg;
    c2.compute_dtype = p->rt->dtype; /* the layout follows the runtime in use */
    p->b = b;
    p->R = b->seq_start[b->n_seq];
    p->lay = make_layout(&c2, p->R, p->nt);
    p->Mp = (int)p->lay.Mp;
    p->H = cfg->hidden;
    /* Mp and FFN_CHUNK are multiples of 8, so the tail chunk (Mp %
     * FFN_CHUNK rows) is a row class of its own: at most 31 classes. */
    int C = p->Mp < FFN_CHUNK ? p->Mp : FFN_CHUNK, tail = p->Mp % C;
    p->chunk = p->tail = NULL;
    int rc = ek_bert_runtime_acquire(p->rt, C, &p->chunk, e);
    if (!rc && tail) rc = ek_bert_runtime_acquire(p->rt, tail, &p->tail, e);
    if (rc) {
        ek_bert_runtime_release(p->rt, p->chunk);
        return rc;
    }
    float *buf = p->scratch + p->lay.buf;
    /* int8 with the bf16 attention kernel: QKV's epilogue writes bf16
     * (flush_qkv), the bits that kernel would round the f32 values to. */
    int d = cfg->heads > 0 ? cfg->hidden / cfg->heads : 1;
    p->qkv_bf16 = p->rt->dtype == EK_FWD_INT8 && ek_attention_bf16in_ok((int)p->rt->isa, d);
    attn_job job = {buf, p->qkv_bf16 ? (const uint16_t *)buf : NULL, buf + (size_t)p->Mp * 3 * p->H, NULL,
                    p->scratch + p->lay.attn,
                    p->lay.per_thread, p->H, cfg->heads, p->Mp, (int)p->rt->isa, p->rt->dtype != EK_FWD_F32,
                    p->rt->k.quant_u8,
                    p->rt->dtype == EK_FWD_INT8 ? (uint8_t *)(p->scratch + p->lay.qfull) : NULL,
                    p->scratch + p->lay.rsfull};
    p->job = job;
    p->r0 = 0;
    p->n = p->Mp;
    p->pending = NULL;
    p->ffn_in_ready = 0;
    p->qkv_epi = NULL;
    p->qkv_ready = p->ctx_ready = p->qkv_rows = 0;
    return EK_OK;
}

static int cpu_embed(ek_backend *bk, ek_err *e) {
    cpu_be *p = (cpu_be *)bk;
    (void)e;
    float *x = p->scratch + p->lay.x;
    embed(bk->w, p->b, x, p->nt);
    /* Rows past the batch are computed by the matmuls and ignored: keep
     * them finite. */
    memset(x + (size_t)p->R * p->H, 0, sizeof(float) * (size_t)(p->Mp - p->R) * p->H);
    return EK_OK;
}

static int cpu_chunk(ek_backend *bk, int i) {
    cpu_be *p = (cpu_be *)bk;
    flush_pending(p);
    p->ffn_in_ready = 0;
    int C = p->chunk->cls->M, r0 = i * C;
    if (r0 >= p->Mp) return 0;
    p->r0 = r0;
    p->n = p->Mp - r0 < C ? p->Mp - r0 : C;
    return 1;
}

/* The current chunk's rows of a slot.  FFN is chunk-local: the f32 / bf16
 * intermediate, or int8's u8 values (their row scales are rs + FFN_CHUNK). */
static void *slot_rows(const cpu_be *p, int slot) {
    float *buf = p->scratch + p->lay.buf;
    size_t r0 = (size_t)p->r0, H = (size_t)p->H;
    switch (slot) {
    case EK_SLOT_X: return p->scratch + p->lay.x + r0 * H;
    case EK_SLOT_QKV: return buf + r0 * 3 * H;
    case EK_SLOT_CTX: return buf + (size_t)p->Mp * 3 * H + r0 * H;
    default:
        return p->rt->dtype == EK_FWD_INT8 ? (void *)((uint8_t *)(p->scratch + p->lay.low) +
                                                      round_up((size_t)FFN_CHUNK * H, 64))
                                           : (void *)(p->scratch + p->lay.ffn);
    }
}

/* dst = epi(src W^T + b) on the current chunk, in the runtime's dtype: f32
 * reads the slots as they are; bf16 converts an f32 source to bf16 first
 * (FFN is bf16 already: FFN_IN's primitive writes bf16); int8 quantizes an
 * f32 source per row, multiplies into s32 sums and runs the epilogue, which
 * for FFN_IN fuses GELU with the quantization FFN_OUT reads. */
static int cpu_linear(ek_backend *bk, int li, int which, int src, int dst, ek_out epi, ek_err *e) {
    cpu_be *p = (cpu_be *)bk;
    const ek_bert_runtime *rt = p->rt;
    if (which < 0 || which >= EK_LIN_COUNT || epi != plan_out[which] ||
        (src == EK_SLOT_FFN) != (which == EK_LIN_FFN_OUT) || (dst == EK_SLOT_FFN) != (which == EK_LIN_FFN_IN))
        return ek_err_set(e, EK_ERR_INTERNAL, "forward: linear %d with slots %d -> %d is not the packed plan", which,
                          src, dst);
    flush_pending(p);
    const ek_mm_weights *mw = &rt->lin[li][which];
    ek_rt_slot *s = p->Mp - p->r0 >= p->chunk->cls->M ? p->chunk : p->tail;
    const int n = p->n, K = mw->K;
    void *A = slot_rows(p, src), *C = slot_rows(p, dst);
    void *low = p->scratch + p->lay.low;
    int rc = 0;
    if (rt->dtype == EK_FWD_F32) {
        rc = ek_mm_run(&s->cls->prim[which], &s->io[which], s->stream, A, mw, C);
    } else if (rt->dtype == EK_FWD_BF16) {
        if (src != EK_SLOT_FFN) {
            to_bf16(rt, A, n, K, low, p->nt);
            A = low;
        }
        rc = ek_mm_run(&s->cls->prim[which], &s->io[which], s->stream, A, mw, C);
    } else {
        int32_t *acc = (int32_t *)(p->scratch + p->lay.ffn); /* the chunk's sums */
        float *rs = p->scratch + p->lay.rs, *rs_ffn = rs + FFN_CHUNK;
        float *tmp = p->scratch + p->lay.tmp;
        size_t ts = p->lay.per_thread_tmp;
        uint8_t *qf = (uint8_t *)(p->scratch + p->lay.qfull);
        float *rsf = p->scratch + p->lay.rsfull;
        if (src == EK_SLOT_FFN) {
            rs = rs_ffn;
        } else if (which == EK_LIN_FFN_IN && p->ffn_in_ready) {
            A = low; /* quantized by the LayerNorm before (epilogue_ln) */
        } else if (which == EK_LIN_QKV || which == EK_LIN_ATTN_OUT) {
            /* All rows at once (one pass instead of one per chunk), unless
             * LN_FFN has quantized them already (QKV). */
            int *ready = which == EK_LIN_QKV ? &p->qkv_ready : &p->ctx_ready;
            if (*ready < p->Mp) {
                quant(rt, (const float *)A - (size_t)p->r0 * K, p->Mp, K, qf, rsf, p->nt);
                p->qkv_ready = p->ctx_ready = 0;
                *ready = p->Mp;
            }
            A = qf + (size_t)p->r0 * K;
            rs = rsf + p->r0;
            if (which == EK_LIN_QKV) acc = C; /* the epilogue runs in place, before attention */
        } else {
            quant(rt, A, n, K, low, rs, p->nt);
            A = low;
        }
        p->ffn_in_ready = 0;
        rc = ek_mm_run(&s->cls->prim[which], &s->io[which], s->stream, A, mw, acc);
        if (!rc && which == EK_LIN_QKV) {
            p->qkv_epi = mw;
            p->qkv_rows = p->r0 + n;
        } else if (!rc && epi == EK_OUT_GELU) {
            epilogue(rt, mw, acc, rs, n, EK_EPI_GELU_QUANT, NULL, C, rs_ffn, tmp, ts, p->nt);
        } else if (!rc && epi == EK_OUT_ADD_RESIDUAL && dst == EK_SLOT_X) {
            /* Left for the LayerNorm that follows (cpu_layernorm); any
             * other step runs it first (flush_pending). */
            p->pending = mw, p->pending_acc = acc, p->pending_rs = rs, p->pending_out = C, p->pending_rows = n;
        } else if (!rc) {
            epilogue(rt, mw, acc, rs, n, epi == EK_OUT_STORE ? EK_EPI_STORE : EK_EPI_ADD, C, NULL, NULL, tmp, ts,
                     p->nt);
        }
    }
    if (rc)
        return ek_err_set(e, EK_ERR_INTERNAL, "forward: oneDNN matmul failed (layer %d, %d rows)", li, p->Mp);
    return EK_OK;
}

static int cpu_attention(ek_backend *bk, int li, int want_probs, ek_err *e) {
    cpu_be *p = (cpu_be *)bk;
    (void)li, (void)e;
    flush_pending(p);
    flush_qkv(p);
    p->ffn_in_ready = 0;
    p->ctx_ready = 0; /* the context changes */
    p->job.headprob = want_probs ? p->scratch + p->lay.headprob : NULL;
    attention(p->b, &p->job, p->nt);
    /* Rows past the batch: attention leaves them; keep them finite. */
    memset(p->job.ctx + (size_t)p->R * p->H, 0, sizeof(float) * (size_t)(p->Mp - p->R) * p->H);
    if (attention_quantizes(p->b, &p->job, p->nt)) {
        /* qfull holds the context now (attention quantized the batch's
         * rows); the zero rows past it too. */
        if (p->Mp > p->R)
            p->job.quant(p->job.ctx + (size_t)p->R * p->H, p->Mp - p->R, p->H, p->H,
                         p->job.cq + (size_t)p->R * p->H, p->job.crs + p->R);
        p->ctx_ready = p->Mp;
        p->qkv_ready = 0;
    }
    return EK_OK;
}

static int cpu_layernorm(ek_backend *bk, int li, int which, int slot, ek_err *e) {
    cpu_be *p = (cpu_be *)bk;
    (void)e;
    const ek_bert_layer *L = &bk->w->layer[li];
    const ek_layernorm *ln = which == EK_OP_LN_ATTN ? &L->ln_attn : &L->ln_ffn;
    p->ffn_in_ready = 0;
    if (p->pending && slot == EK_SLOT_X && p->pending_out == slot_rows(p, slot)) {
        /* int8: the residual epilogue, this LayerNorm and the
         * quantization for the next linear in one pass: FFN_IN's after the
         * attention block, the next layer's QKV (qfull) after the FFN block. */
        int q = which == EK_OP_LN_ATTN;
        int qkv = !q && li + 1 < bk->w->cfg.layers && p->qkv_ready == p->r0;
        uint8_t *qd = q ? (uint8_t *)(p->scratch + p->lay.low)
                        : qkv ? (uint8_t *)(p->scratch + p->lay.qfull) + (size_t)p->r0 * p->H : NULL;
        float *rsd = q ? p->scratch + p->lay.rs : p->scratch + p->lay.rsfull + p->r0;
        epilogue_ln(p->rt, p->pending, p->pending_acc, p->pending_rs, p->pending_rows, p->pending_out, ln,
                    bk->w->cfg.ln_eps, qd, rsd, p->nt);
        /* ctx_ready stays: ATTN_OUT reads the chunks in order, and this
         * overwrites the rows of the chunk it has read already. */
        if (qkv) p->qkv_ready = p->r0 + p->pending_rows;
        else if (!q) p->qkv_ready = 0;
        p->pending = NULL;
        p->ffn_in_ready = q;
        return EK_OK;
    }
    if (which == EK_OP_LN_FFN) p->qkv_ready = 0;
    flush_pending(p);
    layernorm_rows(slot_rows(p, slot), p->n, ln, p->H, bk->w->cfg.ln_eps, p->nt);
    return EK_OK;
}

static int cpu_end(ek_backend *bk, int rc, float *hidden_out, float *attn_first, ek_err *e) {
    cpu_be *p = (cpu_be *)bk;
    if (rc == EK_OK) flush_pending(p), flush_qkv(p);
    const ek_bert_config *cfg = &bk->w->cfg;
    (void)e;
    ek_bert_runtime_release(p->rt, p->chunk);
    ek_bert_runtime_release(p->rt, p->tail);
    if (rc != EK_OK) return rc;
    if (hidden_out) memcpy(hidden_out, p->scratch + p->lay.x, sizeof(float) * (size_t)p->R * p->H);
    if (attn_first && cfg->layers == 0) {
        ek_graph_uniform_weights(p->b, attn_first);
    } else if (attn_first) {
        const float *hp = p->scratch + p->lay.headprob;
        for (int r = 0; r < p->R; r++) {
            float sum = 0.0f;
            for (int h = 0; h < cfg->heads; h++) sum += hp[(size_t)h * p->Mp + r];
            attn_first[r] = sum / (float)cfg->heads;
        }
    }
    return EK_OK;
}

static const ek_backend_ops cpu_ops = {cpu_begin, cpu_embed, cpu_chunk, cpu_linear,
                                       cpu_attention, cpu_layernorm, cpu_end};

/* The unit starting at sequence s0: its sequences while that brings the
 * rows nearer to target (at least one), within cap rows and cap sequences. */
static int unit_end(const ek_fwd_batch *b, int s0, int target, int cap) {
    int s = s0 + 1, rows = b->seq_start[s] - b->seq_start[s0];
    for (; s < b->n_seq && s - s0 < cap; s++) {
        int L = b->seq_start[s + 1] - b->seq_start[s];
        if (rows + L > cap || 2 * rows + L > 2 * target) break;
        rows += L;
    }
    return s;
}

/* A unit's cost in multiply-adds: the dense layers per row, and attention
 * per pair of a sequence's rows (weighted by how much slower than the
 * matmuls it runs per operation, ~4.5x measured in int8). */
static double unit_cost(const ek_bert_config *cfg, const ek_fwd_batch *b, int s0, int s1) {
    double H = cfg->hidden, I = cfg->intermediate, c = 0;
    for (int s = s0; s < s1; s++) {
        double L = b->seq_start[s + 1] - b->seq_start[s];
        c += L * (4 * H * H + 2 * H * I) + L * L * 9 * H;
    }
    return c;
}

/* Whether units keep nt threads busy: the units, handed out in order to
 * the first free thread (as the pass does), must finish within 1/0.9 of a
 * perfect share.  Fewer or uneven units (one long sequence, a handful of
 * short ones) run layer-parallel instead. */
enum { MAX_UNIT_THREADS = 64 };
static int units_pay(const ek_bert_config *cfg, const ek_fwd_batch *b, int nt, int target, int cap) {
    if (nt <= 1 || nt > MAX_UNIT_THREADS || b->n_seq < nt) return 0;
    double busy[MAX_UNIT_THREADS] = {0}, total = 0, end = 0;
    int units = 0;
    for (int s0 = 0; s0 < b->n_seq; units++) {
        int s1 = unit_end(b, s0, target, cap), t = 0;
        double c = unit_cost(cfg, b, s0, s1);
        for (int k = 1; k < nt; k++)
            if (busy[k] < busy[t]) t = k;
        busy[t] += c, total += c;
        if (busy[t] > end) end = busy[t];
        s0 = s1;
    }
    return units >= nt && total >= 0.9 * end * nt;
}

static int longest_seq(const ek_fwd_batch *b) {
    int longest = 0;
    for (int s = 0; s < b->n_seq; s++)
        if (b->seq_start[s + 1] - b->seq_start[s] > longest) longest = b->seq_start[s + 1] - b->seq_start[s];
    return longest;
}

int ek_bert_forward_plan(const ek_bert_config *cfg, const ek_fwd_batch *b, int threads) {
    int nt = resolve_threads(threads), cap = unit_cap(longest_seq(b)), R = b->n_seq > 0 ? b->seq_start[b->n_seq] : 0;
    if (nt <= 1 || R <= 0) return 0;
    /* A multiple of nt units of equal rows, at most UNIT_ROWS each; more
     * and smaller ones when that is what balances the threads (six
     * sequences of 128 on two threads: three units of 256 would not). */
    for (int k = nt * ((R + nt * UNIT_ROWS - 1) / (nt * UNIT_ROWS));; k += nt) {
        int target = (R + k - 1) / k;
        if (target < UNIT_ROWS / 8) return 0;
        if (units_pay(cfg, b, nt, target, cap)) return target;
    }
}

static int forward_units(const ek_bert_weights *w, ek_bert_runtime *rt, const ek_fwd_batch *b,
                         float *hidden_out, float *attn_first, void *scratch, int nt, int target, int cap,
                         ek_err *e) {
    const int H = w->cfg.hidden;
    const size_t per = unit_bytes(&w->cfg, cap);
    const size_t lay_bytes = make_layout(&w->cfg, cap, 1).total * sizeof(float);
    int next = 0, failed = 0;
#pragma omp parallel num_threads(nt)
    {
        char *mine = (char *)scratch + per * (size_t)omp_get_thread_num();
        int32_t *ss = (int32_t *)(mine + lay_bytes);
        ek_err le = {0};
        for (;;) {
            int s0, s1;
#pragma omp critical(ek_forward_units)
            {
                s0 = next;
                s1 = s0 < b->n_seq && !failed ? unit_end(b, s0, target, cap) : s0;
                next = s1;
            }
            if (s0 == s1) break;
            int off = b->seq_start[s0];
            for (int s = s0; s <= s1; s++) ss[s - s0] = b->seq_start[s] - off;
            ek_fwd_batch ub = {b->ids + off, b->type_ids ? b->type_ids + off : NULL, ss, s1 - s0};
            cpu_be be = {.base = {&cpu_ops, w}, .rt = rt, .scratch = (float *)mine, .nt = 1};
            int rc = ss[s1 - s0] == 0 ? EK_OK
                                      : ek_graph_run(&be.base, &ub, attn_first != NULL, hidden_out + (size_t)off * H,
                                                     attn_first ? attn_first + off : NULL, &le);
            if (rc) {
#pragma omp critical(ek_forward_units)
                {
                    if (!failed) {
                        failed = 1;
                        if (e) *e = le;
                    }
                }
                break;
            }
        }
    }
    return failed ? (e && e->status ? e->status : EK_ERR_INTERNAL) : EK_OK;
}

int ek_bert_forward(const ek_bert_weights *w, const ek_fwd_batch *batch,
                    float *hidden_out, float *attn_first, void *scratch,
                    int threads, ek_err *e) {
    int rc = ek_graph_check(w, batch, e);
    if (rc != EK_OK) return rc;
    if (batch->seq_start[batch->n_seq] == 0) return EK_OK;
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
    int cap = unit_cap(longest_seq(batch)), target = ek_bert_forward_plan(&w->cfg, batch, nt);
    if (target) {
        rc = forward_units(w, rt, batch, hidden_out, attn_first, scratch, nt, target, cap, e);
    } else {
        cpu_be be = {.base = {&cpu_ops, w}, .rt = rt, .scratch = scratch, .nt = nt};
        rc = ek_graph_run(&be.base, batch, attn_first != NULL, hidden_out, attn_first, e);
    }
    ek_bert_runtime_free(own);
    return rc;
}
