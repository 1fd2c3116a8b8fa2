/* model/model.c — loading a sentence-transformers model directory.
 *
 * Reads config.json (the BERT shape), the tokenizer, model.safetensors (or
 * its shards), and the sentence-transformers modules (modules.json,
 * 1_Pooling, 2_Dense, Normalize, sentence_bert_config.json,
 * config_sentence_transformers.json).  Every field is checked: a missing,
 * malformed or inconsistent file is refused with an error naming the file and
 * the field.  F32 weights are used in place from the mapping; F16/BF16 are
 * converted to f32 once here.  The fused QKV matrix the forward pass wants
 * and the packed weights are made here too, or mapped from the packed-weight
 * cache (ek_load_options.packed_cache_dir, model/packcache.h). */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/file.h"
#include "model/json_util.h"
#include "model/prepack.h"
#include "embedkit_registry.h"

/* ---- tensors ------------------------------------------------------------ */

static float *owned_alloc(struct ek_model *m, size_t n, ek_err *e) {
    if (m->n_owned == m->cap_owned) {
        int cap = m->cap_owned ? m->cap_owned * 2 : 64;
        float **no = realloc(m->owned, sizeof *no * (size_t)cap);
        if (!no) {
            ek_err_set(e, EK_ERR_NOMEM, "out of memory");
            return NULL;
        }
        m->owned = no;
        m->cap_owned = cap;
    }
    float *p = aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
    if (!p) {
        ek_err_set(e, EK_ERR_NOMEM, "out of memory allocating %zu floats", n);
        return NULL;
    }
    m->owned[m->n_owned++] = p;
    return p;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, bits;
    if (exp == 0) {
        if (man == 0) {
            bits = sign;
        } else { /* subnormal: renormalise */
            int sh = 0;
            while (!(man & 0x400)) {
                man <<= 1;
                sh++;
            }
            man &= 0x3ff;
            bits = sign | (uint32_t)(127 - 15 - sh + 1) << 23 | man << 13;
        }
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | man << 13;
    } else {
        bits = sign | (exp + 127 - 15) << 23 | man << 13;
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

/* Converts (or copies) a tensor's n elements to f32 at dst. */
static void to_f32(const ek_st_tensor *t, float *dst, size_t n) {
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        if (t->dtype == EK_DT_F32) {
            memcpy(&dst[i], p + 4 * i, 4);
        } else {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            if (t->dtype == EK_DT_F16) {
                dst[i] = f16_to_f32(h);
            } else {
                uint32_t bits = (uint32_t)h << 16;
                memcpy(&dst[i], &bits, 4);
            }
        }
    }
}

/* Finds tensor prefix+name with shape [d0] or [d0][d1]; returns f32 data:
 * mapped in place for aligned F32, otherwise a converted copy. */
static int tensor(struct ek_model *m, const ek_safetensors *st, const char *file,
                  const char *name, int d0, int d1, const float **out, ek_err *e) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", st == &m->st ? m->name_prefix : "", name);
    const ek_st_tensor *t = ek_st_find(st, full);
    if (!t) return ek_err_set(e, EK_ERR_FORMAT, "%s: tensor %s: missing", file, full);
    int want_ndim = d1 ? 2 : 1;
    if (t->ndim != want_ndim || t->shape[0] != d0 || (d1 && t->shape[1] != d1)) {
        char got[64] = "";
        for (int i = 0; i < t->ndim; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? "," : "",
                     (long long)t->shape[i]);
        if (d1)
            return ek_err_set(e, EK_ERR_FORMAT,
                              "%s: tensor %s: shape [%s] does not match config.json (expected [%d,%d])",
                              file, full, got, d0, d1);
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: tensor %s: shape [%s] does not match config.json (expected [%d])", file,
                          full, got, d0);
    }
    if (t->dtype == EK_DT_OTHER)
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: tensor %s: dtype %s cannot be used (F32, F16 or BF16 expected)", file,
                          full, t->dtype_name);
    size_t n = (size_t)d0 * (size_t)(d1 ? d1 : 1);
    if (t->dtype == EK_DT_F32 && ((uintptr_t)t->data % sizeof(float)) == 0) {
        *out = (const float *)t->data;
        return EK_OK;
    }
    float *dst = owned_alloc(m, n, e);
    if (!dst) return e ? e->status : EK_ERR_NOMEM;
    to_f32(t, dst, n);
    for (size_t i = 0; i < n; i++)
        if (!isfinite(dst[i]))
            return ek_err_set(e, EK_ERR_FORMAT, "%s: tensor %s: element %zu is not finite", file,
                              full, i);
    *out = dst;
    return EK_OK;
}

/* ---- config.json -------------------------------------------------------- */

static int load_config(struct ek_model *m, ek_err *e) {
    char path[4096];
    int rc = ek_path_join(path, sizeof path, m->dir, "config.json", e);
    cJSON *j = NULL;
    if (!rc) rc = ek_json_load(path, 0, &j, e);
    if (rc) return rc;
    ek_bert_config *c = &m->w.cfg;
    memset(c, 0, sizeof *c);
    const char *f = "config.json";
    rc = ek_json_str_opt(j, f, "model_type", c->model_type, sizeof c->model_type, e);
    if (!rc && !c->model_type[0]) rc = ek_err_set(e, EK_ERR_FORMAT, "config.json: field model_type: missing");
    if (!rc && strcmp(c->model_type, "bert"))
        rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                        "config.json: field model_type: \"%s\" is not supported (embedkit runs \"bert\")",
                        c->model_type);
    if (!rc) rc = ek_json_int(j, f, "hidden_size", 65536, &c->hidden, e);
    if (!rc) rc = ek_json_int(j, f, "num_hidden_layers", 1024, &c->layers, e);
    if (!rc) rc = ek_json_int(j, f, "num_attention_heads", 1024, &c->heads, e);
    if (!rc) rc = ek_json_int(j, f, "intermediate_size", 1 << 20, &c->intermediate, e);
    if (!rc) rc = ek_json_int(j, f, "vocab_size", 1 << 24, &c->vocab, e);
    if (!rc) rc = ek_json_int(j, f, "max_position_embeddings", 1 << 20, &c->max_pos, e);
    /* Optional fields take transformers' BertConfig defaults, as the reference
     * does when they are absent. */
    c->type_vocab = 2;
    if (!rc) rc = ek_json_int_opt(j, f, "type_vocab_size", 1, 1024, &c->type_vocab, e);
    double eps = 1e-12;
    if (!rc) rc = ek_json_double_opt(j, f, "layer_norm_eps", &eps, e);
    if (!rc && !(eps > 0 && eps < 1)) rc = ek_err_set(e, EK_ERR_FORMAT, "config.json: field layer_norm_eps: must be in (0, 1)");
    c->ln_eps = (float)eps;
    snprintf(c->hidden_act, sizeof c->hidden_act, "gelu");
    if (!rc) rc = ek_json_str_opt(j, f, "hidden_act", c->hidden_act, sizeof c->hidden_act, e);
    if (!rc && strcmp(c->hidden_act, "gelu"))
        rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                        "config.json: field hidden_act: \"%s\" is not supported (exact \"gelu\" only)",
                        c->hidden_act);
    char pet[32] = "absolute";
    if (!rc) rc = ek_json_str_opt(j, f, "position_embedding_type", pet, sizeof pet, e);
    if (!rc && strcmp(pet, "absolute"))
        rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                        "config.json: field position_embedding_type: \"%s\" is not supported", pet);
    if (!rc) rc = ek_json_int_opt(j, f, "pad_token_id", 0, c->vocab - 1, &c->pad_token_id, e);
    if (!rc && c->hidden % c->heads)
        rc = ek_err_set(e, EK_ERR_FORMAT,
                        "config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                        c->hidden, c->heads);
    if (!rc) {
        const cJSON *g = cJSON_GetObjectItemCaseSensitive(j, "embedkit_generated");
        if (cJSON_IsObject(g)) {
            const cJSON *note = cJSON_GetObjectItemCaseSensitive(g, "note");
            const cJSON *seed = cJSON_GetObjectItemCaseSensitive(g, "seed");
            m->generated_random = 1;
            snprintf(m->note, sizeof m->note, "%s (seed %.0f)",
                     cJSON_IsString(note) ? note->valuestring : "random weights generated by ek-genmodel",
                     cJSON_IsNumber(seed) ? seed->valuedouble : -1.0);
        }
    }
    cJSON_Delete(j);
    return rc;
}

/* ---- weights ------------------------------------------------------------ */

static int load_weights(struct ek_model *m, ek_err *e) {
    int rc = ek_st_open_dir(m->dir, "model.safetensors", &m->st, e);
    if (rc) {
        char alt[4096];
        if (rc == EK_ERR_IO && !ek_path_join(alt, sizeof alt, m->dir, "pytorch_model.bin", NULL) &&
            ek_file_exists(alt))
            return ek_err_set(e, EK_ERR_UNSUPPORTED,
                              "%s/model.safetensors: missing; pytorch_model.bin (pickle) is not read "
                              "for safety: convert it to safetensors", m->dir);
        return rc;
    }
    const char *f = "model.safetensors";
    if (ek_st_find(&m->st, "embeddings.word_embeddings.weight"))
        m->name_prefix[0] = '\0';
    else if (ek_st_find(&m->st, "bert.embeddings.word_embeddings.weight"))
        snprintf(m->name_prefix, sizeof m->name_prefix, "bert.");
    else
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: tensor embeddings.word_embeddings.weight: missing (with or without bert. prefix)", f);
    const ek_st_tensor *we = ek_st_find(&m->st, m->name_prefix[0] ? "bert.embeddings.word_embeddings.weight"
                                                                   : "embeddings.word_embeddings.weight");
    m->weights_dtype = we->dtype;
    ek_bert_config *c = &m->w.cfg;
    int H = c->hidden, I = c->intermediate;
    rc = tensor(m, &m->st, f, "embeddings.word_embeddings.weight", c->vocab, H, &m->w.word_emb, e);
    if (!rc) rc = tensor(m, &m->st, f, "embeddings.position_embeddings.weight", c->max_pos, H, &m->w.pos_emb, e);
    if (!rc) rc = tensor(m, &m->st, f, "embeddings.token_type_embeddings.weight", c->type_vocab, H, &m->w.type_emb, e);
    if (!rc) rc = tensor(m, &m->st, f, "embeddings.LayerNorm.weight", H, 0, &m->w.ln_emb.gamma, e);
    if (!rc) rc = tensor(m, &m->st, f, "embeddings.LayerNorm.bias", H, 0, &m->w.ln_emb.beta, e);
    m->w.ln_emb.n = H;
    if (rc) return rc;
    m->w.layer = calloc((size_t)c->layers, sizeof *m->w.layer);
    m->qkv_src = calloc((size_t)(c->layers > 0 ? c->layers : 1), sizeof *m->qkv_src);
    if (!m->w.layer || !m->qkv_src) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    m->n_layers_alloc = c->layers;
    for (int l = 0; l < c->layers && !rc; l++) {
        ek_bert_layer *L = &m->w.layer[l];
        char n[128];
        const float *q, *k, *v, *qb, *kb, *vb;
#define T(name, d0, d1, dst) \
    (snprintf(n, sizeof n, "encoder.layer.%d.%s", l, name), tensor(m, &m->st, f, n, d0, d1, dst, e))
        rc = T("attention.self.query.weight", H, H, &q);
        if (!rc) rc = T("attention.self.key.weight", H, H, &k);
        if (!rc) rc = T("attention.self.value.weight", H, H, &v);
        if (!rc) rc = T("attention.self.query.bias", H, 0, &qb);
        if (!rc) rc = T("attention.self.key.bias", H, 0, &kb);
        if (!rc) rc = T("attention.self.value.bias", H, 0, &vb);
        if (!rc) rc = T("attention.output.dense.weight", H, H, &L->attn_out.w);
        if (!rc) rc = T("attention.output.dense.bias", H, 0, &L->attn_out.b);
        if (!rc) rc = T("attention.output.LayerNorm.weight", H, 0, &L->ln_attn.gamma);
        if (!rc) rc = T("attention.output.LayerNorm.bias", H, 0, &L->ln_attn.beta);
        if (!rc) rc = T("intermediate.dense.weight", I, H, &L->ffn_in.w);
        if (!rc) rc = T("intermediate.dense.bias", I, 0, &L->ffn_in.b);
        if (!rc) rc = T("output.dense.weight", H, I, &L->ffn_out.w);
        if (!rc) rc = T("output.dense.bias", H, 0, &L->ffn_out.b);
        if (!rc) rc = T("output.LayerNorm.weight", H, 0, &L->ln_ffn.gamma);
        if (!rc) rc = T("output.LayerNorm.bias", H, 0, &L->ln_ffn.beta);
#undef T
        if (rc) break;
        /* Fused into one [3H][H] matrix (one GEMM instead of three) by
         * build_encoder: in private memory, or found in the packed-weight
         * cache file without making the copy at all. */
        m->qkv_src[l] = (ek_qkv_src){q, k, v, qb, kb, vb};
        L->qkv = (ek_linear){NULL, NULL, 3 * H, H};
        L->attn_out.out = H, L->attn_out.in = H;
        L->ffn_in.out = I, L->ffn_in.in = H;
        L->ffn_out.out = H, L->ffn_out.in = I;
        L->ln_attn.n = H, L->ln_ffn.n = H;
    }
    return rc;
}

/* ---- sentence-transformers modules -------------------------------------- */

static int load_pooling(struct ek_model *m, const char *sub, ek_err *e) {
    char path[4096], file[600];
    snprintf(file, sizeof file, "%s/config.json", sub);
    int rc = ek_path_join(path, sizeof path, m->dir, file, e);
    cJSON *j = NULL;
    if (!rc) rc = ek_json_load(path, 0, &j, e);
    if (rc) return rc;
    /* sentence-transformers 6 writes embedding_dimension and a pooling_mode
     * list (concatenated in list order); earlier versions write
     * word_embedding_dimension and pooling_mode_* flags (concatenated in a
     * fixed order). */
    const char *dim_key = cJSON_GetObjectItemCaseSensitive(j, "embedding_dimension") ? "embedding_dimension"
                                                                                     : "word_embedding_dimension";
    int dim = 0;
    rc = ek_json_int(j, file, dim_key, 1 << 20, &dim, e);
    if (!rc && dim != m->w.cfg.hidden)
        rc = ek_err_set(e, EK_ERR_FORMAT, "%s: field %s: %d does not match config.json hidden_size %d", file,
                        dim_key, dim, m->w.cfg.hidden);
    static const struct { const char *key; ek_pooling mode; } flags[] = {
        {"pooling_mode_cls_token", EK_POOL_CLS},
        {"pooling_mode_max_tokens", EK_POOL_MAX},
        {"pooling_mode_mean_tokens", EK_POOL_MEAN},
        {"pooling_mode_mean_sqrt_len_tokens", EK_POOL_MEAN_SQRT_LEN},
        {"pooling_mode_weightedmean_tokens", EK_POOL_WEIGHTED_MEAN},
        {"pooling_mode_lasttoken", EK_POOL_LAST_TOKEN},
    };
    m->pooling_mask = 0;
    m->n_pool = 0;
    for (size_t i = 0; i < sizeof flags / sizeof flags[0] && !rc; i++) {
        int on = 0;
        rc = ek_json_bool_opt(j, file, flags[i].key, &on, e);
        if (on && !(m->pooling_mask >> flags[i].mode & 1)) {
            m->pooling_mask |= 1u << flags[i].mode;
            m->pool_order[m->n_pool++] = flags[i].mode;
        }
    }
    const cJSON *pm = cJSON_GetObjectItemCaseSensitive(j, "pooling_mode");
    if (!rc && pm && !cJSON_IsNull(pm)) {
        /* As sentence-transformers: pooling_mode, when present, wins over
         * the legacy flags. */
        m->pooling_mask = 0;
        m->n_pool = 0;
        const cJSON *one = cJSON_IsArray(pm) ? pm->child : pm;
        for (; one && !rc; one = cJSON_IsArray(pm) ? one->next : NULL) {
            int p = cJSON_IsString(one) ? ek_pooling_from_name(one->valuestring) : -1;
            if (p < 0 || p == EK_POOL_ATTENTION)
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: field pooling_mode: unknown mode %s%s%s", file,
                                cJSON_IsString(one) ? "\"" : "", cJSON_IsString(one) ? one->valuestring : "(not a string)",
                                cJSON_IsString(one) ? "\"" : "");
            else if (m->pooling_mask >> p & 1)
                rc = ek_err_set(e, EK_ERR_FORMAT, "%s: field pooling_mode: \"%s\" given twice", file, one->valuestring);
            else {
                m->pooling_mask |= 1u << p;
                m->pool_order[m->n_pool++] = p;
            }
        }
    }
    m->include_prompt = 1;
    if (!rc) rc = ek_json_bool_opt(j, file, "include_prompt", &m->include_prompt, e);
    if (!rc && !m->pooling_mask) {
        /* sentence-transformers' own default when no mode is enabled. */
        m->pooling_mask = 1u << EK_POOL_MEAN;
        m->pool_order[m->n_pool++] = EK_POOL_MEAN;
    }
    cJSON_Delete(j);
    int modes = 0;
    for (int p = 0; p < EK_POOL_COUNT; p++) modes += (m->pooling_mask >> p) & 1;
    m->pool_dim = modes * m->w.cfg.hidden;
    return rc;
}

static int parse_activation(const char *s, int *act) {
    static const struct { const char *suffix; int act; } acts[] = {
        {"Identity", 0}, {"Tanh", 1}, {"ReLU", 2}, {"GELU", 3}, {"Sigmoid", 4},
    };
    const char *dot = strrchr(s, '.');
    const char *base = dot ? dot + 1 : s;
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++)
        if (!strcmp(base, acts[i].suffix)) {
            *act = acts[i].act;
            return 1;
        }
    return 0;
}

static int load_dense(struct ek_model *m, const char *sub, int in_dim, ek_err *e) {
    if (m->n_dense == EK_MAX_DENSE)
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: more than %d Dense modules", EK_MAX_DENSE);
    ek_dense_layer *d = &m->dense[m->n_dense];
    char path[4096], file[600], subdir[4096];
    snprintf(file, sizeof file, "%s/config.json", sub);
    int rc = ek_path_join(path, sizeof path, m->dir, file, e);
    cJSON *j = NULL;
    if (!rc) rc = ek_json_load(path, 0, &j, e);
    if (rc) return rc;
    int bias = 1;
    rc = ek_json_int(j, file, "in_features", 1 << 20, &d->in, e);
    if (!rc) rc = ek_json_int(j, file, "out_features", 1 << 20, &d->out, e);
    if (!rc) rc = ek_json_bool_opt(j, file, "bias", &bias, e);
    snprintf(d->activation, sizeof d->activation, "torch.nn.modules.activation.Tanh");
    if (!rc) rc = ek_json_str_opt(j, file, "activation_function", d->activation, sizeof d->activation, e);
    cJSON_Delete(j);
    if (rc) return rc;
    if (!parse_activation(d->activation, &d->act))
        return ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: field activation_function: \"%s\" is not supported",
                          file, d->activation);
    if (d->in != in_dim)
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: field in_features: %d does not match the previous module's output %d", file,
                          d->in, in_dim);
    rc = ek_path_join(subdir, sizeof subdir, m->dir, sub, e);
    ek_safetensors *st = &m->dense_st[m->n_dense];
    if (!rc) rc = ek_st_open_dir(subdir, "model.safetensors", st, e);
    if (rc) return rc;
    m->n_dense++;
    char wf[700];
    snprintf(wf, sizeof wf, "%s/model.safetensors", sub);
    rc = tensor(m, st, wf, "linear.weight", d->out, d->in, &d->w, e);
    d->b = NULL;
    if (!rc && bias) rc = tensor(m, st, wf, "linear.bias", d->out, 0, &d->b, e);
    return rc;
}

static int load_st_config(struct ek_model *m, ek_err *e) {
    char path[4096];
    int rc = ek_path_join(path, sizeof path, m->dir, "sentence_bert_config.json", e);
    if (rc) return rc;
    m->max_seq_length = 0;
    if (ek_file_exists(path)) {
        cJSON *j = NULL;
        rc = ek_json_load(path, 0, &j, e);
        if (!rc) rc = ek_json_int_opt(j, "sentence_bert_config.json", "max_seq_length", 1, 1 << 20,
                                      &m->max_seq_length, e);
        if (!rc) rc = ek_json_bool_opt(j, "sentence_bert_config.json", "do_lower_case", &m->do_lower_case, e);
        cJSON_Delete(j);
        if (rc) return rc;
    }
    /* As sentence-transformers: without max_seq_length, the smaller of the
     * tokenizer's model_max_length and max_position_embeddings. */
    if (!m->max_seq_length) {
        size_t tl = ek_tokenizer_config_max_length(m->tok);
        m->max_seq_length = (tl && tl < (size_t)m->w.cfg.max_pos) ? (int)tl : m->w.cfg.max_pos;
    }
    if (m->max_seq_length > m->w.cfg.max_pos)
        return ek_err_set(e, EK_ERR_FORMAT,
                          "sentence_bert_config.json: field max_seq_length: %d exceeds config.json "
                          "max_position_embeddings %d", m->max_seq_length, m->w.cfg.max_pos);

    rc = ek_path_join(path, sizeof path, m->dir, "config_sentence_transformers.json", e);
    if (rc || !ek_file_exists(path)) return rc;
    cJSON *j = NULL;
    rc = ek_json_load(path, 0, &j, e);
    if (rc) return rc;
    const char *f = "config_sentence_transformers.json";
    const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prompts");
    if (pr && !cJSON_IsNull(pr)) {
        if (!cJSON_IsObject(pr)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: field prompts: must be an object", f);
        } else {
            for (const cJSON *it = pr->child; it && !rc; it = it->next) {
                if (!cJSON_IsString(it)) {
                    rc = ek_err_set(e, EK_ERR_FORMAT, "%s: field prompts.%s: must be a string", f, it->string);
                } else if (m->n_prompts == EK_MAX_PROMPTS) {
                    rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "%s: field prompts: more than %d prompts", f,
                                    EK_MAX_PROMPTS);
                } else {
                    m->prompt_name[m->n_prompts] = strdup(it->string);
                    m->prompt_text[m->n_prompts] = strdup(it->valuestring);
                    if (!m->prompt_name[m->n_prompts] || !m->prompt_text[m->n_prompts])
                        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
                    m->n_prompts++;
                }
            }
        }
    }
    const cJSON *dp = cJSON_GetObjectItemCaseSensitive(j, "default_prompt_name");
    if (!rc && dp && !cJSON_IsNull(dp)) {
        if (!cJSON_IsString(dp))
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: field default_prompt_name: must be a string or null", f);
        else {
            int found = 0;
            for (int i = 0; i < m->n_prompts; i++) found |= !strcmp(m->prompt_name[i], dp->valuestring);
            if (!found)
                rc = ek_err_set(e, EK_ERR_FORMAT, "%s: field default_prompt_name: \"%s\" is not in prompts", f,
                                dp->valuestring);
            else if (!(m->default_prompt_name = strdup(dp->valuestring)))
                rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        }
    }
    cJSON_Delete(j);
    return rc;
}

/* modules.json: [{"idx", "name", "path", "type"}...].  The module type is
 * matched by its class name so both sentence_transformers.models.X and newer
 * module paths are accepted. */
static int load_modules(struct ek_model *m, ek_err *e) {
    char path[4096];
    int rc = ek_path_join(path, sizeof path, m->dir, "modules.json", e);
    if (rc) return rc;
    if (!ek_file_exists(path)) {
        /* A plain Hugging Face model: sentence-transformers then builds
         * Transformer + mean pooling, and so do we (shown by ek info). */
        m->has_modules_json = 0;
        m->pooling_mask = 1u << EK_POOL_MEAN;
        m->pool_order[0] = EK_POOL_MEAN;
        m->n_pool = 1;
        m->include_prompt = 1;
        m->pool_dim = m->w.cfg.hidden;
        return EK_OK;
    }
    m->has_modules_json = 1;
    cJSON *j = NULL;
    rc = ek_json_load(path, 1, &j, e);
    if (rc) return rc;
    int idx = 0, have_tf = 0, have_pool = 0, dim = 0;
    for (const cJSON *it = j->child; it && !rc; it = it->next, idx++) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(it, "type");
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(it, "path");
        if (!cJSON_IsObject(it) || !cJSON_IsString(type) || !cJSON_IsString(p)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "modules.json: entry %d: needs string fields type and path", idx);
            break;
        }
        if (strstr(p->valuestring, "..") || p->valuestring[0] == '/') {
            rc = ek_err_set(e, EK_ERR_FORMAT, "modules.json: entry %d: path \"%s\" leaves the model directory",
                            idx, p->valuestring);
            break;
        }
        const char *dot = strrchr(type->valuestring, '.');
        const char *cls = dot ? dot + 1 : type->valuestring;
        if (!strcmp(cls, "Transformer")) {
            if (idx != 0 || p->valuestring[0])
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                                "modules.json: entry %d: Transformer must be the first module, at path \"\"", idx);
            have_tf = 1;
        } else if (!strcmp(cls, "Pooling")) {
            if (!have_tf || have_pool)
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: entry %d: Pooling must follow the Transformer, once", idx);
            else
                rc = load_pooling(m, p->valuestring, e);
            have_pool = 1;
            dim = m->pool_dim;
        } else if (!strcmp(cls, "Dense")) {
            if (!have_pool)
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: entry %d: Dense before Pooling", idx);
            else if (!(rc = load_dense(m, p->valuestring, dim, e))) {
                dim = m->dense[m->n_dense - 1].out;
                m->steps[m->n_steps++] = m->n_dense - 1;
            }
        } else if (!strcmp(cls, "Normalize")) {
            if (!have_pool)
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: entry %d: Normalize before Pooling", idx);
            else if (m->n_steps >= EK_MAX_DENSE + 2)
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: too many modules");
            else {
                m->normalize = 1;
                m->steps[m->n_steps++] = -1;
            }
        } else {
            rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: entry %d: module type \"%s\" is not supported",
                            idx, type->valuestring);
        }
    }
    if (!rc && !have_tf) rc = ek_err_set(e, EK_ERR_FORMAT, "modules.json: no Transformer module");
    if (!rc && !have_pool) rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "modules.json: no Pooling module");
    cJSON_Delete(j);
    return rc;
}

/* ---- public entry ------------------------------------------------------- */

/* The encoder's compute side: Q, K, V fused and every dense layer packed
 * for the dtype (model/prepack.h), through the packed-weight cache when
 * the options name a directory. */
static int build_encoder(struct ek_model *m, const ek_load_options *o, ek_err *e) {
    int dtype = (int)o->dtype;
    int rc;
    if (o->packed_cache_dir && *o->packed_cache_dir) {
        ek_pack_cache_opts po = {o->packed_cache_dir, o->weights_digest};
        rc = ek_bert_runtime_create_cached(&m->w, dtype, m->qkv_src, &po, &m->w.rt, e);
    } else {
        int H = m->w.cfg.hidden;
        rc = EK_OK;
        for (int l = 0; l < m->w.cfg.layers && !rc; l++) {
            float *qkv = owned_alloc(m, (size_t)3 * H * H + (size_t)3 * H, e);
            if (!qkv) {
                rc = e ? e->status : EK_ERR_NOMEM;
                break;
            }
            ek_qkv_fuse(&m->qkv_src[l], H, qkv);
            m->w.layer[l].qkv = (ek_linear){qkv, qkv + (size_t)3 * H * H, 3 * H, H};
        }
        if (!rc) rc = ek_bert_runtime_create(&m->w, dtype, &m->w.rt, e);
    }
    /* The sources point into the safetensors mapping or owned copies; only
     * the fused result is used from here on. */
    free(m->qkv_src);
    m->qkv_src = NULL;
    return rc;
}

int ek_model_load_dir(const char *dir, struct ek_model **out, ek_err *e) {
    return ek_model_load_dir_dtype(dir, EK_DTYPE_F32, out, e);
}

int ek_model_load_dir_dtype(const char *dir, int dtype, struct ek_model **out, ek_err *e) {
    ek_load_options o;
    memset(&o, 0, sizeof o);
    o.dtype = (ek_compute_dtype)dtype;
    return ek_model_load_dir_opts(dir, &o, out, e);
}

int ek_model_load_dir_opts(const char *dir, const ek_load_options *o, struct ek_model **out, ek_err *e) {
    *out = NULL;
    int dtype = (int)o->dtype;
    if (!dir || !*dir) return ek_err_set(e, EK_ERR_INVALID_ARG, "model directory: empty path");
    if (!ek_dir_exists(dir)) return ek_err_set(e, EK_ERR_IO, "%s: not a directory", dir);
    struct ek_model *m = calloc(1, sizeof *m);
    if (!m) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    if (strlen(dir) >= sizeof m->dir) {
        free(m);
        return ek_err_set(e, EK_ERR_INVALID_ARG, "model directory: path too long");
    }
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    int rc = load_config(m, e);
    if (!rc) rc = ek_tokenizer_load_dir(dir, &m->tok, e);
    if (!rc && ek_tokenizer_vocab_size(m->tok) > (size_t)m->w.cfg.vocab)
        rc = ek_err_set(e, EK_ERR_FORMAT,
                        "tokenizer vocabulary has %zu tokens but config.json vocab_size is %d",
                        ek_tokenizer_vocab_size(m->tok), m->w.cfg.vocab);
    if (!rc) rc = load_weights(m, e);
    if (!rc) rc = load_st_config(m, e);
    if (!rc) rc = load_modules(m, e);
    if (!rc) rc = build_encoder(m, o, e);
    if (!rc) m->w.cfg.compute_dtype = dtype;
    if (rc) {
        ek_err_prefix(e, "model %s", dir);
        ek_model_destroy(m);
        return rc;
    }
    *out = m;
    return EK_OK;
}

ek_status ek_model_packed_cache_info(const ek_model *m, ek_packed_cache_info *o) {
    if (!m || !o) return EK_ERR_INVALID_ARG;
    memset(o, 0, sizeof *o);
    const ek_bert_runtime *rt = m->w.rt;
    if (!rt) return EK_OK;
    const ek_pc_info *c = &rt->cache;
    o->state = (ek_packed_cache_state)c->state;
    snprintf(o->path, sizeof o->path, "%s", c->path);
    snprintf(o->reason, sizeof o->reason, "%s", c->reason);
    o->file_bytes = c->file_bytes;
    o->weights_hashed = c->weights_hashed;
    o->key_ms = c->key_ms, o->open_ms = c->open_ms, o->pack_ms = c->pack_ms, o->write_ms = c->write_ms;
    if (!rt->map.base) {
        const ek_bert_config *cfg = &m->w.cfg;
        o->private_bytes = (uint64_t)rt->packed_bytes +
                           (uint64_t)cfg->layers * ((uint64_t)3 * cfg->hidden * cfg->hidden + 3u * cfg->hidden) * 4u;
    }
    return EK_OK;
}

void ek_model_destroy(struct ek_model *m) {
    if (!m) return;
    ek_bert_runtime_free(m->w.rt);
    ek_tokenizer_free(m->tok);
    ek_st_close(&m->st);
    for (int i = 0; i < EK_MAX_DENSE; i++)
        if (m->dense_st[i].files) ek_st_close(&m->dense_st[i]);
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->w.layer);
    free(m->qkv_src);
    for (int i = 0; i < m->n_prompts; i++) {
        free(m->prompt_name[i]);
        free(m->prompt_text[i]);
    }
    free(m->default_prompt_name);
    free(m);
}
