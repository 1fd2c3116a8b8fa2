/* embedkit_gpu.h — the OpenCL backend: devices, a device handle with its
 * memory budget and buffer pool, embeddings on the device, and cosine
 * similarity / top-k over matrices kept resident in device memory.
 *
 * A companion of embedkit.h and embedkit_search.h with the same conventions
 * (ek_status, one-line last error in the ek_ctx, opaque handles, one free
 * per new, nothing global).
 *
 * OpenCL is loaded at run time: on a machine without any OpenCL runtime
 * ek_gpu_list reports zero devices and ek_gpu_open returns
 * EK_ERR_UNSUPPORTED ("no OpenCL runtime ...") — a normal case, not a
 * failure of the program.  See docs/GPU.md.
 *
 * To run plain ek_embed on a device without holding an ek_gpu, set the
 * context's device instead (ek_ctx_set_device in embedkit.h: "gpu",
 * "opencl:P:D", or "auto" by call size). */
#ifndef EMBEDKIT_GPU_H
#define EMBEDKIT_GPU_H

#include <stddef.h>
#include <stdint.h>

#include "embedkit.h"
#include "embedkit_search.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ek_gpu_device {
    int platform, device;  /* the P and D of "opencl:P:D" */
    int is_gpu;            /* CL_DEVICE_TYPE_GPU (PoCL's CPU device: 0) */
    char name[128];
    char platform_name[128];
    char driver[64];
    uint64_t global_mem;   /* bytes */
    uint64_t max_alloc;    /* largest single buffer, bytes */
    int compute_units;
} ek_gpu_device;

/* Lists OpenCL devices into out (capacity cap); *n receives how many exist.
 * No OpenCL runtime: EK_OK with *n = 0. */
ek_status ek_gpu_list(ek_ctx *ctx, ek_gpu_device *out, size_t cap, size_t *n);

/* Allocation hook (tests, fault injection): called before each device
 * allocation of `bytes`; returning non-zero makes that allocation fail with
 * that OpenCL error code (e.g. -4, CL_MEM_OBJECT_ALLOCATION_FAILURE) as if
 * the driver had returned it. */
typedef int (*ek_gpu_alloc_hook)(void *user, size_t bytes);

typedef enum ek_gpu_gemm {
    EK_GPU_GEMM_AUTO = 0,   /* CLBlast when libclblast.so.1 loads, else
                               own kernels (EK_GPU_GEMM=clblast|own in the
                               environment overrides) */
    EK_GPU_GEMM_OWN = 1,
    EK_GPU_GEMM_CLBLAST = 2 /* falls back to own when CLBlast is absent */
} ek_gpu_gemm;

typedef struct ek_gpu_options {
    const char *device;     /* "gpu" (first GPU device, default), "any" (first
                               device of any type), "opencl:P:D" */
    double mem_fraction;    /* budget = fraction of global memory; 0: 0.75 */
    size_t mem_budget;      /* bytes; overrides mem_fraction when non-zero */
    const char *cache_dir;  /* compiled kernels; NULL: $EK_CACHE_DIR, else
                               $XDG_CACHE_HOME/embedkit, else
                               ~/.cache/embedkit; "" disables the cache */
    ek_gpu_gemm gemm;
    ek_gpu_alloc_hook alloc_hook; /* NULL: none */
    void *alloc_user;
} ek_gpu_options;

void ek_gpu_options_init(ek_gpu_options *opts);

typedef struct ek_gpu ek_gpu;

/* Opens a device: context, queue, kernels (built once per device and
 * cached on disk keyed by device, driver and source digest), buffer pool.
 * EK_ERR_UNSUPPORTED: no OpenCL runtime, or no device matches. */
ek_status ek_gpu_open(ek_ctx *ctx, const ek_gpu_options *opts, ek_gpu **out);
void ek_gpu_close(ek_gpu *gpu);
/* The device in use. */
void ek_gpu_get_device(const ek_gpu *gpu, ek_gpu_device *out);

typedef struct ek_gpu_stats {
    uint64_t budget;            /* bytes */
    uint64_t in_use;            /* bytes of device buffers allocated now */
    uint64_t peak;
    uint64_t allocations, reuses, evictions;
    uint64_t alloc_failures;    /* allocation / enqueue pressure errors seen */
    uint64_t batch_splits;      /* batches halved after pressure */
    uint64_t cpu_fallbacks;     /* calls that ran on the CPU instead */
    uint64_t kernel_cache_hits; /* programs loaded from the disk cache */
    double upload_ms, download_ms, kernel_ms; /* wall time, cumulative */
    int clblast;                /* 1 when matrix products use CLBlast */
} ek_gpu_stats;

void ek_gpu_get_stats(const ek_gpu *gpu, ek_gpu_stats *out);
void ek_gpu_reset_stats(ek_gpu *gpu);

/* ---- embeddings --------------------------------------------------------- */

/* ek_embed on the device: same inputs, options and outputs.  Under memory
 * pressure batches are halved and retried; if even one input does not fit
 * the whole call runs on the CPU (counted in cpu_fallbacks).  Never a
 * partial result. */
ek_status ek_gpu_embed(ek_ctx *ctx, ek_gpu *gpu, const ek_model *model,
                       const char *const *texts, const size_t *lens, size_t n,
                       const ek_embed_options *opts, float *out,
                       int32_t *token_counts);

/* Pools caller-supplied token states on the device: n_seq sequences of
 * lens[s] tokens, back to back in hidden ([sum lens][dim]), with mode
 * (ek_pooling; EK_POOL_ATTENTION takes per-token weights, else weights may
 * be NULL), then L2-normalises each row when normalize.  out: [n_seq][dim].
 * Pressure: computed on the CPU (counted). */
ek_status ek_gpu_pool(ek_ctx *ctx, ek_gpu *gpu, const float *hidden, const int32_t *lens, size_t n_seq,
                      int dim, int mode, const float *weights, int normalize, float *out);

/* ---- resident matrices, cosine, top-k ------------------------------------ */

typedef struct ek_gpu_matrix ek_gpu_matrix;

/* Copies rows x dim floats to the device (with their inverse norms) and
 * keeps them there.  Resident matrices count against the budget; when it is
 * short the least recently used ones are dropped from the device and
 * uploaded again on next use (the host copy is kept by pointer: x must
 * outlive the matrix). */
ek_status ek_gpu_matrix_new(ek_ctx *ctx, ek_gpu *gpu, const float *x,
                            size_t rows, size_t dim, ek_gpu_matrix **out);
void ek_gpu_matrix_free(ek_gpu_matrix *m);

/* out[i * rows + j] = cosine(q[i], m[j]) for nq queries of the matrix's
 * dimension (a zero vector scores 0, as ek_similarity).  nq = 1 is 1:N.
 * Queries are processed in chunks that fit the budget. */
ek_status ek_gpu_cosine(ek_ctx *ctx, ek_gpu *gpu, const float *q, size_t nq,
                        ek_gpu_matrix *m, float *out);

/* Top-k by cosine per query: nq x min(k, rows) hits, best first, equal
 * scores by lower row (as ek_index_search). */
ek_status ek_gpu_topk(ek_ctx *ctx, ek_gpu *gpu, const float *q, size_t nq,
                      ek_gpu_matrix *m, size_t k, ek_hit *out);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKIT_GPU_H */
