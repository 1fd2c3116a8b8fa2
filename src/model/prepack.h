/* model/prepack.h — the compute side of a loaded BERT: its dense weights
 * packed once for the chosen compute dtype, and the oneDNN primitives made
 * for them, cached per row class (the forward pass runs row chunks of 256
 * rows and one tail of a multiple of 8 rows, so there are at most 31).
 *
 * Ownership and threads: a runtime belongs to one model (ek_bert_weights.rt)
 * and is shared by every thread that embeds with that model.  The packed
 * weights and primitives are read-only once made.  What a running forward
 * pass needs for itself (memory objects carrying its buffer pointers, a
 * stream) is an "exec slot": a caller takes one from the runtime's pool
 * under a mutex and gives it back, so concurrent ek_embed calls on one
 * model never share a slot, and after warm-up (one slot per concurrent
 * caller, one class entry per row class seen) nothing is allocated per call.
 * Primitives for a new row class are made on first use, under the mutex. */
#ifndef EK_MODEL_PREPACK_H
#define EK_MODEL_PREPACK_H

#include <pthread.h>
#include <stddef.h>

#include "base/err.h"
#include "compute/cpu.h"
#include "compute/lowp.h"
#include "compute/matmul.h"
#include "model/bert.h"
#include "model/packcache.h"

/* Compute dtypes (the same values as the public EK_DTYPE_*). */
enum { EK_FWD_F32 = 0, EK_FWD_BF16 = 1, EK_FWD_INT8 = 2 };

enum { EK_LIN_QKV, EK_LIN_ATTN_OUT, EK_LIN_FFN_IN, EK_LIN_FFN_OUT, EK_LIN_COUNT };

typedef struct ek_rt_class {
    int M;                          /* padded row count */
    ek_mm_prim prim[EK_LIN_COUNT];
} ek_rt_class;

typedef struct ek_rt_slot {
    struct ek_rt_slot *next;        /* free list */
    const ek_rt_class *cls;         /* the class io[] was made for */
    ek_mm_io io[EK_LIN_COUNT];
    struct dnnl_stream *stream;
} ek_rt_slot;

typedef struct ek_bert_runtime {
    int dtype;                      /* EK_FWD_* */
    ek_isa isa;                     /* level our own kernels use */
    int isa_capped;                 /* EK_ISA lowered the level */
    int dnnl_cap_failed;            /* EK_ISA came after oneDNN's first use */
    ek_lowp_kernels k;
    struct dnnl_engine *engine;
    int layers;
    ek_mm_weights (*lin)[EK_LIN_COUNT]; /* [layers] */
    unsigned flags[EK_LIN_COUNT];   /* matmul flags (bias presence from layer 0) */
    ek_mm_type dst[EK_LIN_COUNT];
    size_t packed_bytes;
    /* Where the packed bytes live (ek_bert_runtime_create_cached): a mapped
     * cache file, or memory of lin[] itself; qkv_own holds the fused QKV
     * this runtime made when it is not in the mapping. */
    ek_pc_map map;
    float *qkv_own;
    ek_pc_info cache;               /* what the cache did; state EK_PC_OFF
                                       without one */

    pthread_mutex_t mu;             /* guards everything below */
    ek_rt_class **classes;
    int n_classes, cap_classes;
    ek_rt_slot *free_slots;
    ek_rt_slot **slots;             /* every slot made, for freeing */
    int n_slots, cap_slots;
} ek_bert_runtime;

/* Packs w's dense layers for dtype (EK_FWD_*).  Reads EK_ISA (see
 * compute/cpu.h).  Errors: EK_ERR_UNSUPPORTED when this CPU / oneDNN cannot
 * run the dtype (bf16 and int8 need AVX-512), EK_ERR_NOMEM. */
int ek_bert_runtime_create(const ek_bert_weights *w, int dtype, ek_bert_runtime **out, ek_err *e);
void ek_bert_runtime_free(ek_bert_runtime *rt);

/* One layer's Q, K and V projections as the model file has them (f32). */
typedef struct ek_qkv_src {
    const float *q, *k, *v;         /* [H][H] each */
    const float *qb, *kb, *vb;      /* [H] each */
} ek_qkv_src;

typedef struct ek_pack_cache_opts {
    const char *dir;                /* cache directory (created, one level) */
    /* Identifies the weight files' content (e.g. the registry's SHA-256s
     * of them); NULL: the tensors are hashed (BLAKE2b, ~0.8 GB/s).  A
     * wrong digest would map another model's weights: only pass one that
     * is bound to the exact bytes loaded. */
    const char *weights_digest;
} ek_pack_cache_opts;

/* ek_bert_runtime_create with the packed weights (and the fused QKV the
 * forward and GPU paths read) in a cache file under o->dir, mapped read-only
 * and shared by every model and process with the same weights (see
 * model/packcache.h).  Sets w->layer[l].qkv from qkv[l]: the fused [3H][H]
 * weights and [3H] bias, inside the mapping or in memory the runtime owns.
 * A missing, foreign, truncated or damaged file is repacked and rewritten;
 * a directory that cannot be used leaves the weights in private memory as
 * ek_bert_runtime_create does.  Neither is an error: rt->cache records what
 * happened and why.  Errors are those of ek_bert_runtime_create. */
int ek_bert_runtime_create_cached(ek_bert_weights *w, int dtype, const ek_qkv_src *qkv,
                                  const ek_pack_cache_opts *o, ek_bert_runtime **out, ek_err *e);

/* Fills dst ([3H][H] weights then [3H] bias) from one layer's Q, K, V. */
void ek_qkv_fuse(const ek_qkv_src *s, int H, float *dst);
const char *ek_fwd_dtype_name(int dtype);

/* A slot ready for M padded rows (M = ek_mm_row_class of the real rows):
 * the class's primitives (made now if new) and memory objects for them. */
int ek_bert_runtime_acquire(ek_bert_runtime *rt, int M, ek_rt_slot **out, ek_err *e);
void ek_bert_runtime_release(ek_bert_runtime *rt, ek_rt_slot *s);

#endif
