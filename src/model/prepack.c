/* model/prepack.c — packing a BERT's dense layers at load and the per-model
 * cache of row-class primitives and exec slots (see prepack.h). */
#include "model/prepack.h"

#include <oneapi/dnnl/dnnl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* The runtime without packed weights: CPU level, oneDNN engine, lin[]. */
static int rt_begin(const ek_bert_weights *w, int dtype, ek_bert_runtime **out, ek_err *e) {
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
    rt->layers = w->cfg.layers;
    rt->lin = calloc((size_t)(rt->layers > 0 ? rt->layers : 1), sizeof *rt->lin);
    if (!rt->lin) {
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = rt;
    return EK_OK;
fail:
    ek_bert_runtime_free(rt);
    return rc;
}

static ek_mm_type weight_type(int dtype) {
    return dtype == EK_FWD_BF16 ? EK_MM_BF16 : dtype == EK_FWD_INT8 ? EK_MM_S8 : EK_MM_F32;
}

/* Matmul flags and destination types per dense layer (bias presence taken
 * from layer 0; every layer must agree). */
static int rt_flags(ek_bert_runtime *rt, const ek_bert_weights *w, ek_err *e) {
    const ek_bert_config *c = &w->cfg;
    int dtype = rt->dtype;
    static const unsigned extra[EK_LIN_COUNT] = {0, EK_MM_ACCUMULATE, EK_MM_GELU, EK_MM_ACCUMULATE};
    for (int i = 0; i < EK_LIN_COUNT; i++) {
        const ek_linear *l0 = c->layers ? layer_lin(&w->layer[0], i) : NULL;
        rt->flags[i] = dtype == EK_FWD_INT8 ? 0 : extra[i] | (l0 && l0->b ? EK_MM_BIAS : 0);
        rt->dst[i] = dtype == EK_FWD_INT8 ? EK_MM_S32
                     : (dtype == EK_FWD_BF16 && i == EK_LIN_FFN_IN) ? EK_MM_BF16
                                                                     : EK_MM_F32;
    }
    for (int l = 0; l < c->layers; l++)
        for (int i = 0; i < EK_LIN_COUNT; i++)
            if (!layer_lin(&w->layer[l], i)->b != !layer_lin(&w->layer[0], i)->b)
                return ek_err_set(e, EK_ERR_UNSUPPORTED,
                                  "layer %d differs from layer 0 in which dense layers have a bias", l);
    return EK_OK;
}

/* Packs every dense layer into memory lin[] owns. */
static int rt_pack(ek_bert_runtime *rt, const ek_bert_weights *w, ek_err *e) {
    ek_mm_type wt = weight_type(rt->dtype);
    rt->packed_bytes = 0;
    for (int l = 0; l < rt->layers; l++)
        for (int i = 0; i < EK_LIN_COUNT; i++) {
            const ek_linear *lin = layer_lin(&w->layer[l], i);
            if (ek_mm_weights_pack(&rt->lin[l][i], rt->engine, wt, lin->w, lin->b, lin->out, lin->in))
                return ek_err_set(e, EK_ERR_UNSUPPORTED,
                                  "oneDNN cannot pack layer %d's %d x %d weights for %s on %s (oneDNN ISA %s)", l,
                                  lin->out, lin->in, ek_fwd_dtype_name(rt->dtype), ek_isa_name(rt->isa),
                                  ek_cpu_dnnl_isa());
            rt->packed_bytes += rt->lin[l][i].bytes;
        }
    return EK_OK;
}

int ek_bert_runtime_create(const ek_bert_weights *w, int dtype, ek_bert_runtime **out, ek_err *e) {
    ek_bert_runtime *rt;
    int rc = rt_begin(w, dtype, &rt, e);
    if (!rc) rc = rt_flags(rt, w, e);
    if (!rc) rc = rt_pack(rt, w, e);
    if (rc) {
        ek_bert_runtime_free(rt);
        return rc;
    }
    *out = rt;
    return EK_OK;
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
    /* After lin[]: borrowed weights point into these. */
    ek_pc_unmap(&rt->map);
    free(rt->qkv_own);
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

/* Slots (streams, memory objects, scratchpads) made before a free one of
 * another row class is re-set up instead: at most 31 row classes per
 * thread and a few threads. */
#define SLOTS_BEFORE_REUSE 64

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
        /* Prefer a free slot already set up for this class; else a new
         * slot while there are few, so that passes alternating between row
         * classes (sequence-parallel units, model/forward.c) stop
         * allocating once warm; past that, re-set a free slot up. */
        ek_rt_slot **pp = &rt->free_slots;
        while (*pp && (*pp)->cls != c) pp = &(*pp)->next;
        if (*pp || (rt->free_slots && rt->n_slots >= SLOTS_BEFORE_REUSE)) {
            if (!*pp) pp = &rt->free_slots;
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

/* ---- the packed-weight cache (model/packcache.h) ------------------------- */

#define ALIGN64(x) (((x) + 63) & ~(uint64_t)63)

void ek_qkv_fuse(const ek_qkv_src *s, int H, float *dst) {
    size_t hh = (size_t)H * H;
    memcpy(dst, s->q, hh * sizeof(float));
    memcpy(dst + hh, s->k, hh * sizeof(float));
    memcpy(dst + 2 * hh, s->v, hh * sizeof(float));
    float *bias = dst + 3 * hh;
    memcpy(bias, s->qb, (size_t)H * sizeof(float));
    memcpy(bias + H, s->kb, (size_t)H * sizeof(float));
    memcpy(bias + 2 * H, s->vb, (size_t)H * sizeof(float));
}

static double ms_since(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) * 1e-6;
}

/* Where each piece sits in the file: per layer and dense layer the packed
 * weights (and for int8 the scales and column sums), then the layer's
 * fused f32 QKV.  Computed from the shapes alone, identically by writer
 * and reader. */
typedef struct pc_plan {
    uint64_t (*off)[EK_LIN_COUNT][3]; /* [layers]: weights, scale, colsum */
    uint64_t *qkv;                    /* [layers] */
    uint64_t total;
} pc_plan;

static size_t qkv_floats(int H) { return (size_t)3 * H * H + (size_t)3 * H; }

static int plan_make(pc_plan *p, int layers, int H, int dtype, const ek_mm_layout *lay) {
    p->off = calloc((size_t)layers, sizeof *p->off);
    p->qkv = calloc((size_t)layers, sizeof *p->qkv);
    if (!p->off || !p->qkv) return -1;
    uint64_t at = EK_PC_HEADER;
    for (int l = 0; l < layers; l++) {
        for (int i = 0; i < EK_LIN_COUNT; i++) {
            p->off[l][i][0] = at;
            at = ALIGN64(at + lay[i].bytes);
            if (dtype == EK_FWD_INT8) {
                p->off[l][i][1] = at;
                at = ALIGN64(at + (uint64_t)lay[i].N * sizeof(float));
                p->off[l][i][2] = at;
                at = ALIGN64(at + (uint64_t)lay[i].N * sizeof(int32_t));
            }
        }
        p->qkv[l] = at;
        at = ALIGN64(at + qkv_floats(H) * sizeof(float));
    }
    p->total = at;
    return 0;
}

static void plan_free(pc_plan *p) {
    free(p->off);
    free(p->qkv);
}

static void hash_u64(crypto_generichash_state *h, uint64_t v) {
    crypto_generichash_update(h, (const unsigned char *)&v, sizeof v);
}

/* Strings with their length, so consecutive fields cannot run together. */
static void hash_str(crypto_generichash_state *h, const char *s) {
    hash_u64(h, strlen(s));
    crypto_generichash_update(h, (const unsigned char *)s, strlen(s));
}

static void hash_floats(crypto_generichash_state *h, const float *p, size_t n) {
    crypto_generichash_update(h, (const unsigned char *)p, n * sizeof *p);
}

/* The key: everything the file's bytes depend on.  Bump EK_PC_FORMAT when
 * what is stored or how it is packed (int8 scales...) changes. */
static int pc_key(const ek_bert_runtime *rt, const ek_bert_weights *w, const ek_qkv_src *qkv,
                  const ek_mm_layout *lay, const char *digest, unsigned char key[EK_PC_KEY_BYTES]) {
    /* Lets libsodium pick its fastest BLAKE2b (idempotent, thread-safe). */
    if (sodium_init() < 0) return -1;
    crypto_generichash_state h;
    if (crypto_generichash_init(&h, NULL, 0, EK_PC_KEY_BYTES)) return -1;
    hash_str(&h, "embedkit packed weights");
    hash_u64(&h, EK_PC_FORMAT);
    hash_str(&h, ek_version());
    const uint32_t endian = 0x01020304u;
    crypto_generichash_update(&h, (const unsigned char *)&endian, sizeof endian);
    hash_u64(&h, sizeof(void *));
    hash_u64(&h, (uint64_t)rt->dtype);
    hash_str(&h, ek_isa_name(rt->isa));
    hash_str(&h, ek_cpu_dnnl_isa());
    const dnnl_version_t *v = dnnl_version();
    hash_u64(&h, (uint64_t)v->major), hash_u64(&h, (uint64_t)v->minor), hash_u64(&h, (uint64_t)v->patch);
    hash_str(&h, v->hash ? v->hash : "");
    hash_u64(&h, (uint64_t)v->cpu_runtime);
    const ek_bert_config *c = &w->cfg;
    hash_u64(&h, (uint64_t)c->layers), hash_u64(&h, (uint64_t)c->hidden), hash_u64(&h, (uint64_t)c->intermediate);
    char desc[1024];
    for (int i = 0; i < EK_LIN_COUNT; i++) {
        if (ek_mm_layout_describe(&lay[i], desc, sizeof desc)) return -1;
        hash_u64(&h, (uint64_t)lay[i].N), hash_u64(&h, (uint64_t)lay[i].K);
        hash_u64(&h, (uint64_t)rt->flags[i]);
        hash_str(&h, desc);
    }
    if (digest) {
        hash_str(&h, "weights digest");
        hash_str(&h, digest);
    } else {
        /* Exactly the f32 values packed and stored (F16/BF16 files are
         * hashed after conversion: equal values pack equally). */
        hash_str(&h, "weights tensors");
        size_t H = (size_t)c->hidden, I = (size_t)c->intermediate;
        for (int l = 0; l < c->layers; l++) {
            const ek_qkv_src *s = &qkv[l];
            const ek_bert_layer *L = &w->layer[l];
            hash_floats(&h, s->q, H * H), hash_floats(&h, s->k, H * H), hash_floats(&h, s->v, H * H);
            hash_floats(&h, s->qb, H), hash_floats(&h, s->kb, H), hash_floats(&h, s->vb, H);
            hash_floats(&h, L->attn_out.w, H * H);
            hash_floats(&h, L->ffn_in.w, I * H);
            hash_floats(&h, L->ffn_out.w, H * I);
        }
    }
    return crypto_generichash_final(&h, key, EK_PC_KEY_BYTES) ? -1 : 0;
}

/* Points rt->lin (a fresh array) and w's fused QKV into the mapping. */
static int adopt_map(ek_bert_runtime *rt, ek_bert_weights *w, const ek_pc_map *m, const pc_plan *p,
                     const ek_mm_layout *lay) {
    int H = w->cfg.hidden;
    ek_mm_weights(*lin)[EK_LIN_COUNT] = calloc((size_t)rt->layers, sizeof *lin);
    if (!lin) return -1;
    size_t packed = 0;
    int bad = 0;
    for (int l = 0; l < rt->layers && !bad; l++) {
        const float *qkv = (const float *)(const void *)(m->base + p->qkv[l]);
        for (int i = 0; i < EK_LIN_COUNT && !bad; i++) {
            const uint64_t *o = p->off[l][i];
            const float *bias = i == EK_LIN_QKV ? qkv + (size_t)3 * H * H : layer_lin(&w->layer[l], i)->b;
            int int8 = rt->dtype == EK_FWD_INT8;
            bad = ek_mm_weights_wrap(&lin[l][i], rt->engine, &lay[i], m->base + o[0],
                                     int8 ? (const float *)(const void *)(m->base + o[1]) : NULL,
                                     int8 ? (const int32_t *)(const void *)(m->base + o[2]) : NULL,
                                     bias) != 0;
            packed += lin[l][i].bytes;
        }
    }
    if (bad) {
        for (int l = 0; l < rt->layers; l++)
            for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_weights_free(&lin[l][i]);
        free(lin);
        return -1;
    }
    for (int l = 0; l < rt->layers; l++) {
        for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_weights_free(&rt->lin[l][i]);
        ek_linear *q = &w->layer[l].qkv;
        q->w = (const float *)(const void *)(m->base + p->qkv[l]);
        q->b = q->w + (size_t)3 * H * H;
        q->out = 3 * H, q->in = H;
    }
    free(rt->lin);
    rt->lin = lin;
    rt->packed_bytes = packed;
    return 0;
}

/* The payload of a file for the weights rt packed in memory. */
static int write_file(ek_bert_runtime *rt, const ek_bert_weights *w, const pc_plan *p, const char *dir,
                      const char *path, const unsigned char *key, char *why, size_t cap) {
    int per = rt->dtype == EK_FWD_INT8 ? 3 : 1;
    int n = 0;
    ek_pc_piece *pc = calloc((size_t)rt->layers * (size_t)(EK_LIN_COUNT * per + 1), sizeof *pc);
    if (!pc) {
        snprintf(why, cap, "out of memory");
        return -1;
    }
    size_t qf = qkv_floats(w->cfg.hidden);
    for (int l = 0; l < rt->layers; l++) {
        for (int i = 0; i < EK_LIN_COUNT; i++) {
            const ek_mm_weights *mw = &rt->lin[l][i];
            pc[n++] = (ek_pc_piece){p->off[l][i][0], ek_mm_weights_data(mw), mw->bytes};
            if (per == 3) {
                pc[n++] = (ek_pc_piece){p->off[l][i][1], mw->scale, (size_t)mw->N * sizeof(float)};
                pc[n++] = (ek_pc_piece){p->off[l][i][2], mw->colsum, (size_t)mw->N * sizeof(int32_t)};
            }
        }
        pc[n++] = (ek_pc_piece){p->qkv[l], w->layer[l].qkv.w, qf * sizeof(float)};
    }
    const dnnl_version_t *v = dnnl_version();
    char text[512];
    snprintf(text, sizeof text,
             "embedkit %s packed weights: dtype %s, %d layers, hidden %d, intermediate %d, isa %s, "
             "oneDNN %d.%d.%d (%s)\n", ek_version(), ek_fwd_dtype_name(rt->dtype), w->cfg.layers,
             w->cfg.hidden, w->cfg.intermediate, ek_isa_name(rt->isa), v->major, v->minor, v->patch,
             ek_cpu_dnnl_isa());
    for (int i = 0; i < n; i++)
        if (!pc[i].data) {
            snprintf(why, cap, "packed weights of layer %d have no data pointer (internal)", i);
            free(pc);
            return -1;
        }
    int rc = ek_pc_write(dir, path, key, p->total, pc, n, text, why, cap);
    free(pc);
    return rc;
}

int ek_bert_runtime_create_cached(ek_bert_weights *w, int dtype, const ek_qkv_src *qkv,
                                  const ek_pack_cache_opts *o, ek_bert_runtime **out, ek_err *e) {
    *out = NULL;
    const ek_bert_config *c = &w->cfg;
    int H = c->hidden, I = c->intermediate;
    ek_bert_runtime *rt;
    int rc = rt_begin(w, dtype, &rt, e);
    if (rc) return rc;
    ek_pc_info *info = &rt->cache;
    info->weights_hashed = !o->weights_digest;
    ek_mm_layout lay[EK_LIN_COUNT];
    memset(lay, 0, sizeof lay);
    pc_plan plan = {0};
    struct timespec t0;
    unsigned char key[EK_PC_KEY_BYTES];
    char hex[2 * EK_PC_KEY_BYTES + 1];
    /* Bias presence (for the flags, hence the key) before any fusing: the
     * fused QKV always has a bias. */
    for (int l = 0; l < c->layers; l++) {
        w->layer[l].qkv = (ek_linear){NULL, qkv[l].qb, 3 * H, H};
    }
    rc = rt_flags(rt, w, e);
    const int NK[EK_LIN_COUNT][2] = {{3 * H, H}, {H, H}, {I, H}, {H, I}};
    for (int i = 0; i < EK_LIN_COUNT && !rc && c->layers > 0; i++)
        if (ek_mm_layout_init(&lay[i], rt->engine, weight_type(dtype), NK[i][0], NK[i][1]))
            rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "oneDNN cannot pack %d x %d weights for %s on %s (oneDNN ISA %s)",
                            NK[i][0], NK[i][1], ek_fwd_dtype_name(dtype), ek_isa_name(rt->isa), ek_cpu_dnnl_isa());
    int usable = !rc && c->layers > 0;
    if (usable && plan_make(&plan, c->layers, H, dtype, lay)) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    if (usable && !rc) {
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (pc_key(rt, w, qkv, lay, o->weights_digest, key) || !o->dir || !*o->dir) {
            usable = 0;
            snprintf(info->reason, sizeof info->reason, "%s",
                     !o->dir || !*o->dir ? "no cache directory" : "cannot compute the cache key");
        }
        info->key_ms = ms_since(&t0);
    }
    if (usable && !rc) {
        for (int i = 0; i < EK_PC_KEY_BYTES; i++) snprintf(hex + 2 * i, 3, "%02x", key[i]);
        int n = snprintf(info->path, sizeof info->path, "%s/%s.ekpack", o->dir, hex);
        if (n < 0 || (size_t)n >= sizeof info->path) {
            usable = 0;
            info->path[0] = '\0';
            snprintf(info->reason, sizeof info->reason, "cache directory path too long");
        }
    }
    if (usable && !rc) {
        info->file_bytes = plan.total;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        int hit = !ek_pc_open(info->path, key, plan.total, &rt->map, info->reason, sizeof info->reason);
        info->open_ms = ms_since(&t0);
        if (hit && !adopt_map(rt, w, &rt->map, &plan, lay)) {
            info->state = EK_PC_HIT;
            info->reason[0] = '\0';
            goto done;
        }
        if (hit) snprintf(info->reason, sizeof info->reason, "%.400s: oneDNN refused the mapped weights", info->path);
        ek_pc_unmap(&rt->map);
    }
    if (rc) goto done;
    /* No usable file: pack in memory as ek_bert_runtime_create does, then
     * (when the cache can be used) write the file and switch to it. */
    if (c->layers > 0) {
        rt->qkv_own = aligned_alloc(64, ALIGN64(qkv_floats(H) * sizeof(float) * (size_t)c->layers));
        if (!rt->qkv_own) {
            rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
            goto done;
        }
    }
    for (int l = 0; l < c->layers; l++) {
        float *f = rt->qkv_own + qkv_floats(H) * (size_t)l;
        ek_qkv_fuse(&qkv[l], H, f);
        w->layer[l].qkv = (ek_linear){f, f + (size_t)3 * H * H, 3 * H, H};
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    rc = rt_pack(rt, w, e);
    info->pack_ms = ms_since(&t0);
    if (rc || !usable) {
        if (!rc) info->state = EK_PC_FALLBACK;
        goto done;
    }
    char why[sizeof info->reason];
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int wrote = !write_file(rt, w, &plan, o->dir, info->path, key, why, sizeof why);
    info->write_ms = ms_since(&t0);
    if (!wrote) {
        info->state = EK_PC_FALLBACK;
        memcpy(info->reason, why, sizeof why);
        goto done;
    }
    /* What was there before (missing, damaged...) stays the reason. */
    if (ek_pc_open(info->path, key, plan.total, &rt->map, why, sizeof why) ||
        (adopt_map(rt, w, &rt->map, &plan, lay) &&
         snprintf(why, sizeof why, "%.400s: oneDNN refused the mapped weights", info->path) >= 0)) {
        ek_pc_unmap(&rt->map);
        info->state = EK_PC_FALLBACK;
        snprintf(info->reason, sizeof info->reason, "%.480s (just written)", why);
        goto done;
    }
    free(rt->qkv_own);
    rt->qkv_own = NULL;
    info->state = EK_PC_WRITTEN;
done:
    for (int i = 0; i < EK_LIN_COUNT; i++) ek_mm_layout_free(&lay[i]);
    plan_free(&plan);
    if (rc) {
        ek_bert_runtime_free(rt);
        return rc;
    }
    *out = rt;
    return EK_OK;
}
