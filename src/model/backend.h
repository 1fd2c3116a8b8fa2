/* model/backend.h — the compute-backend interface the BERT graph is written
 * against, so the encoder exists once (model/graph.c) and each backend
 * (the CPU in model/forward.c, OpenCL in gpu/encoder.c) says only how to
 * run an operation, not which operations make a BERT.
 *
 * Activations live in named slots whose representation the backend owns:
 * the CPU keeps X / QKV / CTX as padded f32 rows in its scratch and FFN as
 * one row chunk in the dtype's own form (f32, bf16, or int8 bytes with
 * their row scales); OpenCL keeps device buffers.  The graph never touches
 * the data, so a backend is free to convert or quantize inside its ops
 * (the CPU's bf16 conversion and int8 quantization and epilogues, the
 * fused GELU + quantization of FFN_IN feeding FFN_OUT, all live in the CPU
 * backend's linear op, keyed by its dtype).
 *
 * Row chunks: the row-wise ops (linear, layernorm) act on the current
 * chunk's rows.  The CPU returns chunks of a few hundred rows so a chunk's
 * feed-forward intermediate stays in cache between FFN_IN and FFN_OUT;
 * OpenCL returns a single chunk of all rows.  Attention and embedding
 * always cover the whole batch.
 *
 * Pooling is not part of the graph: the CPU pools on the host
 * (runtime/embed.c, ops/pool.c), the OpenCL backend on the device after the
 * graph ran (gpu/encoder.c), each next to its own head.
 *
 * Calls return EK_OK or a status with the message in e; a backend may also
 * return its own internal status (gpu/gpu.h's EK_GPU_PRESSURE), which the
 * graph passes through untouched. */
#ifndef EK_MODEL_BACKEND_H
#define EK_MODEL_BACKEND_H

#include "base/err.h"
#include "model/bert.h"
#include "model/forward.h"

/* Activation slots. */
enum {
    EK_SLOT_X,   /* [rows][H] hidden state */
    EK_SLOT_QKV, /* [rows][3H] fused query, key, value */
    EK_SLOT_CTX, /* [rows][H] attention output before its dense layer */
    EK_SLOT_FFN, /* [rows][I] feed-forward intermediate (chunk-local) */
    EK_SLOT_COUNT
};

/* The linears of a layer (the same values as model/prepack.h's EK_LIN_*). */
enum { EK_OP_QKV, EK_OP_ATTN_OUT, EK_OP_FFN_IN, EK_OP_FFN_OUT };

/* The LayerNorms of a layer. */
enum { EK_OP_LN_ATTN, EK_OP_LN_FFN };

/* What a linear does with x W^T + b. */
typedef enum ek_out {
    EK_OUT_STORE,        /* dst = v */
    EK_OUT_ADD_RESIDUAL, /* dst += v */
    EK_OUT_GELU          /* dst = GELU(v), exact (erf) */
} ek_out;

typedef struct ek_backend ek_backend;

typedef struct ek_backend_ops {
    /* Prepares a pass over batch b (checked by ek_graph_check): buffers,
     * per-pass state.  want_probs: the last layer's attention will be asked
     * for its first-token probabilities.  On failure nothing is held. */
    int (*begin)(ek_backend *be, const ek_fwd_batch *b, int want_probs, ek_err *e);
    /* X = LayerNorm(word + type + position embeddings), every row. */
    int (*embed)(ek_backend *be, ek_err *e);
    /* Selects row chunk i for the row-wise ops; 0 when there is no chunk i
     * (chunks are visited 0, 1, ... until then). */
    int (*chunk)(ek_backend *be, int i);
    /* dst = epi(src W^T + b) with layer's linear `which` (EK_OP_QKV..),
     * on the current chunk. */
    int (*linear)(ek_backend *be, int layer, int which, int src, int dst, ek_out epi, ek_err *e);
    /* CTX = softmax(Q K^T / sqrt(d)) V per sequence and head, every row;
     * with want_probs the first token's probabilities are kept for end. */
    int (*attention)(ek_backend *be, int layer, int want_probs, ek_err *e);
    /* slot = LayerNorm(slot) with layer's LayerNorm `which`, current chunk. */
    int (*layernorm)(ek_backend *be, int layer, int which, int slot, ek_err *e);
    /* Always called once after a successful begin, with the pass's status
     * so far; on EK_OK writes hidden_out [R][H] and attn_first [R] (the
     * head mean of the kept probabilities; uniform without layers), either
     * may be NULL.  Releases what begin took.  Returns the final status. */
    int (*end)(ek_backend *be, int rc, float *hidden_out, float *attn_first, ek_err *e);
} ek_backend_ops;

/* The base every backend embeds as its first member. */
struct ek_backend {
    const ek_backend_ops *ops;
    const ek_bert_weights *w;
};

/* Validates a batch against the weights (config sanity, lengths against
 * max_position_embeddings, token and type ids in range, one bias plan for
 * all layers).  Shared by every backend's entry point. */
int ek_graph_check(const ek_bert_weights *w, const ek_fwd_batch *b, ek_err *e);

/* Runs the encoder over b on be: embeddings, then per layer QKV, attention,
 * attention output + residual, LayerNorm, FFN with GELU, output + residual,
 * LayerNorm (post-LN, as BERT).  b must have passed ek_graph_check and hold
 * at least one token.  Outputs as ek_backend_ops.end. */
int ek_graph_run(ek_backend *be, const ek_fwd_batch *b, int want_probs, float *hidden_out,
                 float *attn_first, ek_err *e);

/* attn_first for an encoder without layers: 1/L over each sequence (no
 * attention to take weights from; never used by real models). */
void ek_graph_uniform_weights(const ek_fwd_batch *b, float *attn_first);

#endif
