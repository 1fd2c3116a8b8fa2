/* gpu/gpu.h — the OpenCL backend's internals: the device handle (ek_gpu:
 * loaded API, context, queue, program, kernels, buffer pool, statistics),
 * the buffer pool, and the device operations the encoder graph, the head
 * and the similarity search are made of.  Public surface: embedkit_gpu.h.
 *
 * Error model: every function returns EK_OK or an ek_status with a message
 * in e.  Memory pressure (the three OpenCL errors of ek_cl_is_pressure, the
 * budget being exhausted, or an injected allocation failure) is reported as
 * EK_GPU_PRESSURE, which callers above turn into "shrink and retry, then
 * run on the CPU"; it never escapes the public API. */
#ifndef EK_GPU_GPU_H
#define EK_GPU_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "embedkit_gpu.h"
#include "gpu/cl_api.h"

/* Internal status: "does not fit now" (never returned to users). */
#define EK_GPU_PRESSURE 100

/* ---- buffer pool -------------------------------------------------------- */

/* A device buffer owned by the pool.  Scratch buffers are taken and given
 * back within one call; resident buffers (weights, matrices) carry a key
 * (the host pointer they mirror) and stay until evicted: least recently
 * used first, and only when not pinned by the running call. */
typedef struct ek_gbuf {
    cl_mem mem;
    size_t size;
    const void *key;     /* resident: what it mirrors; NULL: scratch */
    uint64_t last_use;
    int busy;            /* scratch taken, or resident pinned */
    int valid;           /* resident contents uploaded */
} ek_gbuf;

typedef struct ek_gpool {
    ek_gbuf **b;         /* entries are allocated one by one: stable pointers */
    int n, cap;
    size_t budget, used, peak;
    uint64_t tick;
} ek_gpool;

/* ---- kernels ------------------------------------------------------------ */

enum {
    EK_K_EMBED_LN, EK_K_LAYERNORM, EK_K_BIAS_ACT, EK_K_ATTENTION, EK_K_HEAD_MEAN,
    EK_K_GEMM, EK_K_POOL, EK_K_L2, EK_K_INV_NORM, EK_K_COS_SCALE, EK_K_COS_1N,
    EK_K_TOPK, EK_K_COUNT
};

struct ek_gpu {
    ek_cl_api cl;
    ek_gpu_device dev;
    cl_platform_id platform;
    cl_device_id device;
    cl_context context;
    cl_command_queue queue;
    cl_program program;
    cl_kernel k[EK_K_COUNT];
    size_t wg;           /* work-group size of the row reductions (power of 2) */
    size_t max_alloc;
    int use_blas;        /* matrix products through CLBlast */
    ek_gpu_alloc_hook hook;
    void *hook_user;
    ek_gpool pool;
    ek_gpu_stats st;
    char cache_dir[1024];
    int32_t *host_i;     /* per-batch index arrays, grown, reused */
    size_t host_i_cap;
};

/* Budget check + hook + clCreateBuffer; evicts unpinned resident buffers
 * (LRU) and frees idle scratch to make room.  EK_GPU_PRESSURE when even
 * that leaves no room or the driver (or hook) refuses. */
int ek_gpool_take(struct ek_gpu *g, size_t bytes, ek_gbuf **out, ek_err *e);
/* Resident buffer for key (bytes long): found (and pinned) or made; *fresh
 * is 1 when the caller must upload its contents. */
int ek_gpool_resident(struct ek_gpu *g, const void *key, size_t bytes, ek_gbuf **out,
                      int *fresh, ek_err *e);
/* Gives a scratch buffer back / unpins a resident one. */
void ek_gpool_give(struct ek_gpu *g, ek_gbuf *b);
/* Drops a resident buffer by key (the host data is going away). */
void ek_gpool_forget(struct ek_gpu *g, const void *key);
/* Frees everything not busy. */
void ek_gpool_trim(struct ek_gpu *g);
void ek_gpool_free(struct ek_gpu *g);

/* ---- program ------------------------------------------------------------ */

/* Builds (or loads from the disk cache) the embedded kernel sources for the
 * device, and creates the kernels. */
int ek_gpu_build(struct ek_gpu *g, ek_err *e);

/* ---- device operations (enqueue only; see gpu/ops.c) -------------------- */

/* Checks a cl_int: pressure errors become EK_GPU_PRESSURE (counted), others
 * EK_ERR_INTERNAL naming the step. */
int ek_gpu_check(struct ek_gpu *g, cl_int err, const char *what, ek_err *e);
int ek_gpu_upload(struct ek_gpu *g, cl_mem dst, size_t off, const void *src, size_t bytes, ek_err *e);
int ek_gpu_download(struct ek_gpu *g, cl_mem src, size_t off, void *dst, size_t bytes, ek_err *e);
int ek_gpu_finish(struct ek_gpu *g, ek_err *e);

/* C[M][N] = act(alpha A B^T + bias) (+ C); offsets in floats. */
int ek_gop_gemm_nt(struct ek_gpu *g, int M, int N, int K, float alpha, cl_mem A, size_t a_off,
                   int lda, cl_mem B, size_t b_off, int ldb, cl_mem bias, cl_mem C, size_t c_off,
                   int ldc, int act, int accumulate, ek_err *e);
int ek_gop_embed_ln(struct ek_gpu *g, cl_mem x, int rows, int H, cl_mem ids, cl_mem types,
                    cl_mem pos, cl_mem word, cl_mem type_emb, cl_mem pos_emb, cl_mem gamma,
                    cl_mem beta, float eps, ek_err *e);
int ek_gop_layernorm(struct ek_gpu *g, cl_mem x, cl_mem res, int rows, int H, cl_mem gamma,
                     cl_mem beta, float eps, ek_err *e);
int ek_gop_bias_act(struct ek_gpu *g, cl_mem x, cl_mem bias, int rows, int n, int act, ek_err *e);
/* hp: [heads][R] or NULL; mask: [R] ints or NULL. */
int ek_gop_attention(struct ek_gpu *g, cl_mem qkv, cl_mem ctx, cl_mem seq_of, cl_mem seq_start,
                     cl_mem mask, int R, int H, int heads, int max_len, cl_mem hp, ek_err *e);
int ek_gop_head_mean(struct ek_gpu *g, cl_mem hp, cl_mem w, int R, int heads, ek_err *e);
int ek_gop_pool(struct ek_gpu *g, int mode, cl_mem h, int H, cl_mem seq_start, int n_seq,
                int mask_from, cl_mem weights, cl_mem out, int out_stride, int out_off, ek_err *e);
int ek_gop_l2_normalize(struct ek_gpu *g, cl_mem x, int rows, int n, ek_err *e);
int ek_gop_inv_norm(struct ek_gpu *g, cl_mem x, int rows, int d, cl_mem inv, ek_err *e);
int ek_gop_cos_scale(struct ek_gpu *g, cl_mem scores, int rows, int cols, cl_mem qinv,
                     cl_mem xinv, ek_err *e);
int ek_gop_cos_1n(struct ek_gpu *g, cl_mem q, float qinv, cl_mem x, int d, int rows, cl_mem xinv,
                  cl_mem out, ek_err *e);
int ek_gop_topk_chunk(struct ek_gpu *g, cl_mem scores, int nq, int cols, int chunk, int k,
                      int nchunks, cl_mem cand_s, cl_mem cand_i, ek_err *e);

/* ---- the encoder on the device (gpu/encoder.c) --------------------------- */

struct ek_bert_weights;
struct ek_fwd_batch;

/* What to pool: n_modes modes (ek_pooling) concatenated per sequence,
 * tokens before mask_from excluded, then L2-normalised when normalize. */
typedef struct ek_gpu_pool_req {
    int modes[8];
    int n_modes;
    int mask_from;
    int normalize;
} ek_gpu_pool_req;

/* Runs the BERT encoder over a packed batch on the device.  Any of
 * hidden_out [R][H], attn_first [R] (as ek_bert_forward) and pooled
 * [n_seq][n_modes * H] (with req) may be NULL.  EK_GPU_PRESSURE: the batch
 * does not fit now (nothing was written). */
int ek_gpu_encode(struct ek_gpu *g, const struct ek_bert_weights *w, const struct ek_fwd_batch *b,
                  float *hidden_out, float *attn_first, const ek_gpu_pool_req *req, float *pooled,
                  ek_err *e);
/* Device bytes a batch of R tokens needs besides the weights. */
size_t ek_gpu_encode_bytes(const struct ek_bert_weights *w, int R, int n_seq, int pooled_dim);

/* Pools n tokenized inputs (input i is ids/types[start[i] .. start[i+1]),
 * processed in the order of order[] — longest first — in batches of at
 * most bs inputs and max_tokens tokens) into pooled [n][n_modes * H], in
 * input order.  A batch that meets memory pressure is halved and retried;
 * EK_GPU_PRESSURE when even one input does not fit (the caller then runs
 * the whole call on the CPU: never a partial result). */
int ek_gpu_pool_inputs(struct ek_gpu *g, const struct ek_bert_weights *w, const int32_t *ids,
                       const int32_t *types, const size_t *start, const int *order, size_t n, int bs,
                       int max_tokens, const ek_gpu_pool_req *req, float *pooled, ek_err *e);

/* ek_gpu_embed after its checks and tokenization (t: the inputs as
 * ek_tokenize_inputs made them, in the context's buffers); runtime/device.c
 * calls it directly when it has tokenized already.  Falls back to the CPU
 * when even one input does not fit the device. */
struct ek_tokenized;
int ek_gpu_embed_tokenized(ek_ctx *ctx, ek_gpu *g, const ek_model *m, const char *const *texts, const size_t *lens,
                           size_t n, const ek_embed_options *opts, const struct ek_tokenized *t, int prompt_tokens,
                           float *out, int32_t *token_counts);

/* Wall-clock milliseconds (CLOCK_MONOTONIC), for the transfer/kernel times. */
double ek_gpu_now_ms(void);

#endif
