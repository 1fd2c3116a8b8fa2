/* model/forward.h — the BERT encoder forward pass on packed sequences.
 *
 * Sequences are packed back to back (no padding): token t of sequence s is
 * row seq_start[s] + t.  Dense layers run once over all rows (one GEMM), and
 * attention runs per sequence with its own length, so an input's result never
 * depends on the rest of the batch and padding costs nothing. */
#ifndef EK_MODEL_FORWARD_H
#define EK_MODEL_FORWARD_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "model/bert.h"

typedef struct ek_fwd_batch {
    const int32_t *ids;        /* [total] token ids */
    const int32_t *type_ids;   /* [total] or NULL (all 0) */
    const int32_t *seq_start;  /* [n_seq + 1], seq_start[0] = 0 */
    int n_seq;
} ek_fwd_batch;

/* Bytes of scratch memory ek_bert_forward needs for this batch shape, in
 * the compute dtype cfg->compute_dtype (set with the weights' runtime at
 * load; bf16 / int8 need a little more than f32).  max_seq_len must be at
 * least the batch's longest sequence. */
size_t ek_bert_forward_scratch_size(const ek_bert_config *cfg, int total_tokens,
                                    int max_seq_len, int threads);

/* Runs the encoder in w->rt's compute dtype (model/prepack.h; with no
 * runtime, f32 weights are packed for this call).  Thread-safe: several
 * threads may run one model at once, each with its own scratch.
 * hidden_out: [total][H] last hidden states.
 * attn_first (may be NULL): [total]; for each sequence, the last layer's
 * attention probabilities of its first token over its tokens, averaged over
 * heads (the weights of EK_POOL_ATTENTION).  scratch: at least
 * ek_bert_forward_scratch_size bytes, 64-byte aligned.  Returns EK_OK or an
 * error (token id out of range, sequence longer than max_pos...). */
/* How ek_bert_forward would run this batch with this many threads: 0
 * layer by layer, every step split among the threads (one sequence, a few
 * uneven ones, one thread); else the row target of its sequence-parallel
 * units (each thread runs units of consecutive sequences through all the
 * layers alone).  Both give the same bits; exposed for tests and tools. */
int ek_bert_forward_plan(const ek_bert_config *cfg, const ek_fwd_batch *batch, int threads);

int ek_bert_forward(const ek_bert_weights *w, const ek_fwd_batch *batch,
                    float *hidden_out, float *attn_first, void *scratch,
                    int threads, ek_err *e);

#endif
