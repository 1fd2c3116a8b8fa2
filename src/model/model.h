/* model/model.h — a loaded sentence-transformers model: the tokenizer, the
 * BERT weights, and the modules after it (Pooling, Dense, Normalize), read
 * from a model directory as users download it. */
#ifndef EK_MODEL_MODEL_H
#define EK_MODEL_MODEL_H

#include "base/err.h"
#include "embedkit.h"
#include "model/bert.h"
#include "model/safetensors.h"
#include "text/tokenizer.h"

#define EK_MAX_DENSE 4
#define EK_MAX_PROMPTS 32

typedef struct ek_dense_layer {
    const float *w;       /* [out][in] */
    const float *b;       /* [out] or NULL */
    int in, out;
    int act;              /* see ek_op_dense */
    char activation[64];  /* as in 2_Dense/config.json */
} ek_dense_layer;

struct ek_model {
    char dir[4096];
    ek_tokenizer *tok;
    ek_safetensors st;
    ek_safetensors dense_st[EK_MAX_DENSE];
    ek_bert_weights w;
    char name_prefix[8];   /* "" or "bert." */
    ek_dtype weights_dtype;

    unsigned pooling_mask; /* bits of ek_pooling */
    int pool_order[EK_POOL_COUNT]; /* enabled modes in concatenation order */
    int n_pool;
    int include_prompt;
    int pool_dim;          /* word_embedding_dimension * number of modes */
    ek_dense_layer dense[EK_MAX_DENSE];
    int n_dense;
    int normalize;         /* a Normalize module is present */
    /* Modules after Pooling, in modules.json order: index into dense[], or
     * -1 for Normalize. */
    int steps[EK_MAX_DENSE + 2];
    int n_steps;
    int has_modules_json;  /* 0: plain HF model, sentence-transformers'
                              defaults (mean pooling) apply */
    float **owned;         /* f32 copies (converted dtypes, fused QKV
                              when no packed-weight cache is used) */
    struct ek_qkv_src *qkv_src; /* per layer, while loading only */
    int n_owned, cap_owned;
    int n_layers_alloc;
    int max_seq_length;
    int do_lower_case;

    char *prompt_name[EK_MAX_PROMPTS];
    char *prompt_text[EK_MAX_PROMPTS];
    int n_prompts;
    char *default_prompt_name;

    int generated_random;
    char note[256];
};

int ek_model_load_dir(const char *dir, struct ek_model **out, ek_err *e);
/* The same, with the encoder's compute dtype (EK_DTYPE_*). */
int ek_model_load_dir_dtype(const char *dir, int dtype, struct ek_model **out, ek_err *e);
/* The same with every load option (dtype, packed-weight cache). */
int ek_model_load_dir_opts(const char *dir, const ek_load_options *o, struct ek_model **out, ek_err *e);
void ek_model_destroy(struct ek_model *m);

/* The modules after Pooling (model/head.c): a holds the pooled vector (d
 * floats), b is scratch of the same capacity; normalize is -1 (the model's
 * Normalize module), 0 (off) or 1 (on); writes dim floats to out. */
void ek_model_head(const struct ek_model *m, int normalize, float *a, float *b, int d, float *out, int dim);

#endif
