/* model/prepack.c — packing a BERT's dense layers at load and the per-model
 * cache of row-class primitives and exec slots (see prepack.h). */
#include "model/prepack.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

const char *ek_fwd_dtype_name(int dtype) {
    return dtype == EK_FWD_BF16 ? "bf16" : dtype == EK_FWD_INT8 ? "int8" : "f32";
}

static const ek_linear *layer_lin(const ek_bert_layer *L, int i) {
    switch (i) {
    case EK_LIN_QKV: return &L->qkv;
    case EK_LIN_ATTN_OUT: return &L->attn_out;
    case EK_LIN_FFN_IN: return &L->ffn_in;
    default: return &L->ffn_out;
    }
}

int ek_bert_runtime_create(const ek_bert_weights *w, int dtype, ek_bert_runtime **out, ek_err *e) {
    *out = NULL;
    if (dtype < EK_FWD_F32 || dtype > EK_FWD_INT8)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "compute dtype %d: must be f32, bf16 or int8", dtype);
    ek_bert_runtime *rt = calloc(1, sizeof *rt);
    if (!rt) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    if (pthread_mutex_init(&rt->mu, NULL)) {
        free(rt);
        return ek_err_set(e, EK_ERR_INTERNAL, "mutex init failed");
    }
    rt->dtype = dtype;
    int bad_env = 0;
    rt->isa = ek_cpu_level(&bad_env);
    rt->isa_capped = rt->isa < ek_cpu_detect();
    /* oneDNN's cap is process-wide and only honoured before its first
     * primitive: a later model with another EK_ISA keeps the first cap. */
    if (rt->isa_capped) rt->dnnl_cap_failed = ek_cpu_cap_dnnl(rt->isa) != 0;
    rt->k = ek_lowp_select(rt->isa);
    int rc = EK_OK;
    if (bad_env) {
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "EK_ISA=%s: expected avx2, avx512, amx or generic",
                        getenv("EK_ISA"));
        goto fail;
    }
    if (dtype != EK_FWD_F32 && rt->isa < EK_ISA_AVX512_BF16) {
        rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                        "compute dtype %s needs AVX-512 with BF16/VNNI; this CPU (or EK_ISA) offers %s",
                        ek_fwd_dtype_name(dtype), ek_isa_name(rt->isa));
        goto fail;
    }
    if (dnnl_engine_create(&rt->engine, dnnl_cpu, 0) != dnnl_success) {
        rt->engine = NULL;
        rc = ek_err_set(e, EK_ERR_INTERNAL, "oneDNN: no CPU engine");
        goto fail;
    }
    const ek_bert_config *c = &w->cfg;
    rt->layers = c->layers;
    rt->lin = calloc((size_t)(c->layers > 0 ? c->layers : 1), sizeof *rt->lin);
    if (!rt->lin) {
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        goto fail;
    }
    ek_mm_type wt = dtype == EK_FWD_BF16 ? EK_MM_BF16 : dtype == EK_FWD_INT8 ? EK_MM_S8 : EK_MM_F32;
    static const unsigned extra[EK_LIN_COUNT] = {0, EK_MM_ACCUMULATE, EK_MM_GELU, EK_MM_ACCUMULATE};
    for (int i = 0; i < EK_LIN_COUNT; i++) {
        const ek_linear *l0 = c->layers ? layer_lin(&w->layer[0], i) : NULL;
        rt->flags[i] = dtype == EK_FWD_INT8 ? 0 : extra[i] | (l0 && l0->b ? EK_MM_BIAS : 0);
        rt->dst[i] = dtype == EK_FWD_INT8 ? EK_MM_S32
                     : (dtype == EK_FWD_BF16 && i == EK_LIN_FFN_IN) ? EK_MM_BF16
                                                                     : EK_MM_F32;
    }
    for (int l = 0; l < c->layers; l++)
        for (int i = 0; i < EK_LIN_COUNT; i++) {
            const ek_linear *lin = layer_lin(&w->layer[l], i);
            if (!lin->b != !layer_lin(&w->layer[0], i)->b) {
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                                "layer %d differs from layer 0 in which dense layers have a bias", l);
                goto fail;
            }
            if (ek_mm_weights_pack(&rt->lin[l][i], rt->engine, wt, lin->w, lin->b, lin->out, lin->in)) {
                rc = ek_err_set(e, EK_ERR_UNSUPPORTED,
                                "oneDNN cannot pack layer %d's %d x %d weights for %s on %s (oneDNN ISA %s)", l,
                                lin->out, lin->in, ek_fwd_dtype_name(dtype), ek_isa_name(rt->isa),
                                ek_cpu_dnnl_isa());
                goto fail;
            }
            rt->packed_bytes += rt->lin[l][i].bytes;
        }
    *out = rt;
    return EK_OK;
fail:
    ek_bert_runtime_free(rt);
    return rc;
}

static void class_free(ek_rt_class *c) {
    for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_prim_free(&c->prim[i]);
    free(c);
}

static void slot_free(ek_rt_slot *s) {
    for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_io_free(&s->io[i]);
    if (s->stream) dnnl_stream_destroy(s->stream);
    free(s);
}

void ek_bert_runtime_free(ek_bert_runtime *rt) {
    if (!rt) return;
    for (int i = 0; i < rt->n_slots; i++) slot_free(rt->slots[i]);
    free(rt->slots);
    for (int i = 0; i < rt->n_classes; i++) class_free(rt->classes[i]);
    free(rt->classes);
    if (rt->lin)
        for (int l = 0; l < rt->layers; l++)
            for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_weights_free(&rt->lin[l][i]);
    free(rt->lin);
    if (rt->engine) dnnl_engine_destroy(rt->engine);
    pthread_mutex_destroy(&rt->mu);
    free(rt);
}

/* Caller holds rt->mu. */
static ek_rt_class *find_class(ek_bert_runtime *rt, int M, ek_err *e) {
    for (int i = 0; i < rt->n_classes; i++)
        if (rt->classes[i]->M == M) return rt->classes[i];
    if (rt->n_classes == rt->cap_classes) {
        int cap = rt->cap_classes ? rt->cap_classes * 2 : 16;
        ek_rt_class **nc = realloc(rt->classes, sizeof *nc * (size_t)cap);
        if (!nc) {
            ek_err_set(e, EK_ERR_NOMEM, "out of memory");
            return NULL;
        }
        rt->classes = nc, rt->cap_classes = cap;
    }
    ek_rt_class *c = calloc(1, sizeof *c);
    if (!c) {
        ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        return NULL;
    }
    c->M = M;
    if (rt->layers > 0)
        for (int i = 0; i < EK_LIN_COUNT; i++)
            if (ek_mm_prim_init(&c->prim[i], rt->engine, M, &rt->lin[0][i], rt->dst[i], rt->flags[i])) {
                class_free(c);
                ek_err_set(e, EK_ERR_INTERNAL, "oneDNN: no %s matmul for %d rows", ek_fwd_dtype_name(rt->dtype),
                           M);
                return NULL;
            }
    rt->classes[rt->n_classes++] = c;
    return c;
}

/* Caller holds rt->mu. */
static ek_rt_slot *new_slot(ek_bert_runtime *rt, ek_err *e) {
    if (rt->n_slots == rt->cap_slots) {
        int cap = rt->cap_slots ? rt->cap_slots * 2 : 8;
        ek_rt_slot **ns = realloc(rt->slots, sizeof *ns * (size_t)cap);
        if (!ns) {
            ek_err_set(e, EK_ERR_NOMEM, "out of memory");
            return NULL;
        }
        rt->slots = ns, rt->cap_slots = cap;
    }
    ek_rt_slot *s = calloc(1, sizeof *s);
    if (!s || dnnl_stream_create(&s->stream, rt->engine, dnnl_stream_default_flags) != dnnl_success) {
        free(s);
        ek_err_set(e, EK_ERR_INTERNAL, "oneDNN: no stream");
        return NULL;
    }
    rt->slots[rt->n_slots++] = s;
    return s;
}

int ek_bert_runtime_acquire(ek_bert_runtime *rt, int M, ek_rt_slot **out, ek_err *e) {
    *out = NULL;
    pthread_mutex_lock(&rt->mu);
    ek_rt_class *c = find_class(rt, M, e);
    ek_rt_slot *s = NULL;
    if (c) {
        /* Prefer a free slot already set up for this class. */
        ek_rt_slot **pp = &rt->free_slots;
        while (*pp && (*pp)->cls != c) pp = &(*pp)->next;
        if (!*pp) pp = &rt->free_slots;
        if (*pp) {
            s = *pp;
            *pp = s->next;
        } else {
            s = new_slot(rt, e);
        }
    }
    if (s && s->cls != c) {
        for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_io_free(&s->io[i]);
        s->cls = NULL;
        for (int i = 0; i < EK_LIN_COUNT && rt->layers > 0; i++)
            if (ek_mm_io_init(&s->io[i], rt->engine, &c->prim[i])) {
                ek_err_set(e, EK_ERR_NOMEM, "oneDNN: memory objects for %d rows", M);
                s->next = rt->free_slots;
                rt->free_slots = s;
                s = NULL;
                break;
            }
        if (s) s->cls = c;
    }
    pthread_mutex_unlock(&rt->mu);
    *out = s;
    return s ? EK_OK : (e && e->status ? e->status : EK_ERR_INTERNAL);
}

void ek_bert_runtime_release(ek_bert_runtime *rt, ek_rt_slot *s) {
    if (!s) return;
    pthread_mutex_lock(&rt->mu);
    s->next = rt->free_slots;
    rt->free_slots = s;
    pthread_mutex_unlock(&rt->mu);
}
