/* model/bert.h — the BERT encoder's configuration and weights as the forward
 * pass sees them: plain f32 arrays in PyTorch layout, plus the packed copy
 * the matmuls read (model/prepack.h).  The loader (model.c)
 * owns the memory (mapped file or converted copies); these structs only
 * point into it. */
#ifndef EK_MODEL_BERT_H
#define EK_MODEL_BERT_H

#include <stddef.h>
#include <stdint.h>

typedef struct ek_bert_config {
    char model_type[32];   /* "bert" */
    char hidden_act[32];   /* "gelu" (exact erf GELU) */
    int hidden;            /* hidden_size */
    int layers;            /* num_hidden_layers */
    int heads;             /* num_attention_heads */
    int intermediate;      /* intermediate_size */
    int max_pos;           /* max_position_embeddings */
    int type_vocab;        /* type_vocab_size */
    int vocab;             /* vocab_size */
    float ln_eps;          /* layer_norm_eps */
    int pad_token_id;
    int compute_dtype;     /* EK_FWD_* (model/prepack.h) of `rt` below; sizes
                              the forward pass's scratch */
} ek_bert_config;

/* y = x W^T + b; w is [out][in] row-major (torch.nn.Linear layout). */
typedef struct ek_linear {
    const float *w;
    const float *b;        /* may be NULL */
    int out, in;
} ek_linear;

typedef struct ek_layernorm {
    const float *gamma, *beta;
    int n;
} ek_layernorm;

typedef struct ek_bert_layer {
    ek_linear qkv;         /* [3H][H]: rows of query, then key, then value */
    ek_linear attn_out;    /* [H][H] attention.output.dense */
    ek_layernorm ln_attn;  /* attention.output.LayerNorm */
    ek_linear ffn_in;      /* [I][H] intermediate.dense */
    ek_linear ffn_out;     /* [H][I] output.dense */
    ek_layernorm ln_ffn;   /* output.LayerNorm */
} ek_bert_layer;

typedef struct ek_bert_weights {
    ek_bert_config cfg;
    const float *word_emb; /* [vocab][H] */
    const float *pos_emb;  /* [max_pos][H] */
    const float *type_emb; /* [type_vocab][H] */
    ek_layernorm ln_emb;
    ek_bert_layer *layer;  /* cfg.layers entries */
    /* The dense layers packed for the compute dtype and the primitive cache
     * (model/prepack.h); made at load.  NULL (weights built by hand, as in
     * tests): each forward call packs f32 weights for itself. */
    struct ek_bert_runtime *rt;
} ek_bert_weights;

#endif
