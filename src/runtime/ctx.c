/* runtime/ctx.c — ek_ctx, status and pooling names, model load/info: the
 * public-API glue over the layers below. */
#include "runtime/ctx.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "compute/gemm.h"
#include "model/model.h"
#include "model/prepack.h"
#include "runtime/device.h"
#include "text/tokenizer.h"

const char *ek_version(void) { return EK_VERSION_STRING; }

const char *ek_status_name(ek_status s) {
    static const char *names[] = {"EK_OK", "EK_ERR_INVALID_ARG", "EK_ERR_IO", "EK_ERR_FORMAT",
                                  "EK_ERR_UNSUPPORTED", "EK_ERR_NOMEM", "EK_ERR_UTF8",
                                  "EK_ERR_TOO_LONG", "EK_ERR_INTERNAL"};
    return (unsigned)s < sizeof names / sizeof names[0] ? names[s] : "EK_ERR_UNKNOWN";
}

ek_status ek_ctx_new(ek_ctx **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    *out = calloc(1, sizeof **out);
    return *out ? EK_OK : EK_ERR_NOMEM;
}

void ek_ctx_free(ek_ctx *ctx) {
    if (!ctx) return;
    ek_device_release(ctx);
    free(ctx->ws);
    ek_tok_work_free(ctx->tok);
    ek_encoding_free(&ctx->enc);
    free(ctx->tk_ids.p);
    free(ctx->tk_types.p);
    free(ctx->tk_index.p);
    free(ctx->text.p);
    free(ctx);
}

const char *ek_ctx_last_error(const ek_ctx *ctx) { return ctx ? ctx->err.msg : "no context"; }

ek_status ek_ctx_set_threads(ek_ctx *ctx, int threads) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    if (threads < 0 || threads > 1024)
        return ek_ctx_fail(ctx, &(ek_err){EK_ERR_INVALID_ARG, "threads: must be 0 (all cores) or 1..1024"});
    ctx->threads = threads;
    return EK_OK;
}

int ek_ctx_threads(const ek_ctx *ctx) {
    return ctx && ctx->threads ? ctx->threads : ek_compute_cores();
}

void *ek_ctx_workspace(struct ek_ctx *ctx, size_t n) {
    if (n <= ctx->ws_cap) return ctx->ws;
    size_t cap = (n + (1u << 20) - 1) & ~(size_t)((1u << 20) - 1); /* whole MiB */
    void *p = aligned_alloc(64, cap);
    if (!p) return NULL;
    free(ctx->ws);
    ctx->ws = p;
    ctx->ws_cap = cap;
    return p;
}

void *ek_ctx_buf_reserve(ek_ctx_buf *b, size_t n) {
    if (n <= b->cap && b->p) return b->p;
    size_t cap = b->cap * 2 > n ? b->cap * 2 : n;
    if (cap < 256) cap = 256;
    void *p = realloc(b->p, cap);
    if (!p) return NULL;
    b->p = p;
    b->cap = cap;
    return p;
}

struct ek_tok_work *ek_ctx_tok_work(struct ek_ctx *ctx) {
    if (!ctx->tok) ctx->tok = ek_tok_work_new();
    return ctx->tok;
}

ek_status ek_ctx_fail(struct ek_ctx *ctx, const ek_err *e) {
    if (ctx && e != &ctx->err) ctx->err = *e;
    return (ek_status)e->status;
}

int ek_pooling_from_name(const char *name) {
    static const struct { const char *n; int p; } names[] = {
        {"cls", EK_POOL_CLS}, {"cls_token", EK_POOL_CLS}, {"max", EK_POOL_MAX},
        {"max_tokens", EK_POOL_MAX}, {"mean", EK_POOL_MEAN}, {"mean_tokens", EK_POOL_MEAN},
        {"mean_sqrt_len_tokens", EK_POOL_MEAN_SQRT_LEN}, {"mean_sqrt_len", EK_POOL_MEAN_SQRT_LEN},
        {"weightedmean", EK_POOL_WEIGHTED_MEAN}, {"weightedmean_tokens", EK_POOL_WEIGHTED_MEAN},
        {"lasttoken", EK_POOL_LAST_TOKEN}, {"attention", EK_POOL_ATTENTION},
    };
    if (!name) return -1;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(name, names[i].n)) return names[i].p;
    return -1;
}

const char *ek_pooling_name(ek_pooling p) {
    static const char *names[] = {"cls", "max", "mean", "mean_sqrt_len_tokens",
                                  "weightedmean", "lasttoken", "attention"};
    return (unsigned)p < EK_POOL_COUNT ? names[p] : "unknown";
}

ek_status ek_model_load(ek_ctx *ctx, const char *dir, ek_model **out) {
    return ek_model_load_opts(ctx, dir, NULL, out);
}

void ek_load_options_init(ek_load_options *o) {
    memset(o, 0, sizeof *o);
    o->dtype = EK_DTYPE_F32;
}

int ek_compute_dtype_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "f32") || !strcmp(name, "fp32")) return EK_DTYPE_F32;
    if (!strcmp(name, "bf16")) return EK_DTYPE_BF16;
    if (!strcmp(name, "int8")) return EK_DTYPE_INT8;
    return -1;
}

ek_status ek_model_load_opts(ek_ctx *ctx, const char *dir, const ek_load_options *opts, ek_model **out) {
    if (!ctx || !out) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    int dtype = opts ? (int)opts->dtype : EK_DTYPE_F32;
    if (dtype < EK_DTYPE_F32 || dtype > EK_DTYPE_INT8)
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG, "dtype: %d is not f32, bf16 or int8", dtype);
    ek_load_options o;
    if (opts) o = *opts;
    else ek_load_options_init(&o);
    return (ek_status)ek_model_load_dir_opts(dir, &o, out, &ctx->err);
}

void ek_model_free(ek_model *model) { ek_model_destroy(model); }

ek_status ek_model_get_info(const ek_model *m, ek_model_info *o) {
    if (!m || !o) return EK_ERR_INVALID_ARG;
    memset(o, 0, sizeof *o);
    const ek_bert_config *c = &m->w.cfg;
    snprintf(o->model_type, sizeof o->model_type, "%s", c->model_type);
    o->hidden_size = c->hidden;
    o->num_layers = c->layers;
    o->num_heads = c->heads;
    o->intermediate_size = c->intermediate;
    o->vocab_size = c->vocab;
    o->max_position_embeddings = c->max_pos;
    o->max_seq_length = m->max_seq_length;
    o->embedding_dim = ek_embed_dim(m, NULL); /* the model's own options */
    o->pooling_mask = m->pooling_mask;
    o->include_prompt = m->include_prompt;
    o->has_dense = m->n_dense > 0;
    o->normalize = m->normalize;
    o->do_lower_case = m->do_lower_case;
    uint64_t H = (uint64_t)c->hidden, I = (uint64_t)c->intermediate;
    uint64_t p = ((uint64_t)c->vocab + (uint64_t)c->max_pos + (uint64_t)c->type_vocab) * H + 2 * H;
    p += (uint64_t)c->layers * (4 * H * H + 4 * H + 2 * H * I + I + H + 4 * H);
    for (int i = 0; i < m->n_dense; i++)
        p += (uint64_t)m->dense[i].in * (uint64_t)m->dense[i].out + (m->dense[i].b ? (uint64_t)m->dense[i].out : 0);
    o->parameters = p;
    snprintf(o->weights_dtype, sizeof o->weights_dtype, "%s", ek_dtype_name(m->weights_dtype));
    const ek_bert_runtime *rt = m->w.rt;
    snprintf(o->compute_dtype, sizeof o->compute_dtype, "%s",
             !rt || rt->dtype == EK_FWD_F32 ? "F32" : rt->dtype == EK_FWD_BF16 ? "BF16" : "INT8");
    snprintf(o->isa, sizeof o->isa, "%s", ek_isa_name(rt ? rt->isa : ek_cpu_detect()));
    snprintf(o->dnnl_isa, sizeof o->dnnl_isa, "%s", ek_cpu_dnnl_isa());
    o->packed_bytes = rt ? (uint64_t)rt->packed_bytes : 0;
    o->generated_random = m->generated_random;
    snprintf(o->note, sizeof o->note, "%s", m->note);
    return EK_OK;
}

const char *ek_model_prompt(const ek_model *m, const char *name) {
    if (!m || !name) return NULL;
    for (int i = 0; i < m->n_prompts; i++)
        if (!strcmp(m->prompt_name[i], name)) return m->prompt_text[i];
    return NULL;
}

const char *ek_model_default_prompt_name(const ek_model *m) { return m ? m->default_prompt_name : NULL; }

const char *ek_model_token(const ek_model *m, int32_t id) {
    return m ? ek_tokenizer_id_token(m->tok, id) : NULL;
}
