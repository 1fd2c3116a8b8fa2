/* embedkit.h — public C API of embedkit.
 *
 * embedkit turns text into embeddings exactly as sentence-transformers does:
 * WordPiece tokenization (as Hugging Face `tokenizers`), a BERT encoder, the
 * sentence-transformers pooling / Dense / Normalize modules.
 *
 * Conventions (libcurl-like):
 *   - Opaque handles: ek_ctx (per-thread state: thread count, last error),
 *     ek_model (a loaded model; read-only after load, shareable by threads).
 *   - Every fallible call returns an ek_status; EK_OK is 0.  The message of the
 *     last error is ek_ctx_last_error(ctx): one line naming what was wrong and
 *     where (file and field, input index, byte offset).
 *   - No hidden global state: everything lives in a handle you own.
 *   - Every *_new / *_load has exactly one matching *_free.
 */
#ifndef EMBEDKIT_H
#define EMBEDKIT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define EK_VERSION_MAJOR 0
#define EK_VERSION_MINOR 1
#define EK_VERSION_PATCH 0
#define EK_VERSION_STRING "0.1.0"

typedef enum ek_status {
    EK_OK = 0,
    EK_ERR_INVALID_ARG = 1,  /* a caller-supplied argument is out of range */
    EK_ERR_IO = 2,           /* a file could not be opened, read or mapped */
    EK_ERR_FORMAT = 3,       /* a file is malformed or inconsistent */
    EK_ERR_UNSUPPORTED = 4,  /* valid, but not something embedkit can run */
    EK_ERR_NOMEM = 5,        /* allocation failed */
    EK_ERR_UTF8 = 6,         /* input text is not valid UTF-8 */
    EK_ERR_TOO_LONG = 7,     /* input exceeds the model length, truncation off */
    EK_ERR_INTERNAL = 8
} ek_status;

/* A short constant name for a status ("EK_ERR_FORMAT"). */
const char *ek_status_name(ek_status s);
const char *ek_version(void);

/* ---- context ------------------------------------------------------------ */

typedef struct ek_ctx ek_ctx;

ek_status ek_ctx_new(ek_ctx **out);
void ek_ctx_free(ek_ctx *ctx);
/* Message of the last failed call made with this context ("" if none). */
const char *ek_ctx_last_error(const ek_ctx *ctx);
/* Worker threads used by calls on this context; 0 = all cores (default). */
ek_status ek_ctx_set_threads(ek_ctx *ctx, int threads);
int ek_ctx_threads(const ek_ctx *ctx);

/* Where ek_embed runs for this context (ek_embed_ids and ek_embed_tokens
 * always run on the CPU):
 *   "cpu"         the CPU (the default)
 *   "gpu"         the first OpenCL device of type GPU; none is an error at
 *                 the ek_embed that needs it
 *   "opencl:P:D"  OpenCL platform P, device D (as clinfo -l numbers them),
 *                 any type — PoCL's CPU device included
 *   "auto"        a GPU device when one exists (CL_DEVICE_TYPE_GPU: never a
 *                 CPU device) and the call has at least
 *                 ek_ctx_set_gpu_min_tokens tokens, else the CPU; no OpenCL
 *                 runtime at all is the CPU, never an error
 * The spec is checked here (EK_ERR_INVALID_ARG naming it); the device is
 * opened at the first ek_embed that uses it, kept by the context and closed
 * by ek_ctx_free or the next ek_ctx_set_device naming another device.  On
 * a device, results match the CPU's to ~1e-6 (not bitwise; docs/GPU.md),
 * and a call that does not fit the device's memory runs on the CPU. */
ek_status ek_ctx_set_device(ek_ctx *ctx, const char *spec);

/* "auto"'s threshold: calls with fewer tokens (all inputs, special tokens
 * included) stay on the CPU, where a small call finishes before a device
 * round trip would.  0 restores the default (docs/GPU.md, "auto"). */
#define EK_GPU_MIN_TOKENS_DEFAULT 512
ek_status ek_ctx_set_gpu_min_tokens(ek_ctx *ctx, int tokens);

/* Where the last ek_embed (or ek_gpu_embed) call with this context ran:
 * "cpu" or "opencl:P:D" ("cpu" too when a device call fell back to the CPU
 * under memory pressure); "" before the first call. */
const char *ek_ctx_last_device(const ek_ctx *ctx);

/* ---- model -------------------------------------------------------------- */

typedef struct ek_model ek_model;

/* Pooling modes; a model's 1_Pooling/config.json may enable several, whose
 * outputs are concatenated in this order (as sentence-transformers does). */
typedef enum ek_pooling {
    EK_POOL_CLS = 0,
    EK_POOL_MAX = 1,
    EK_POOL_MEAN = 2,
    EK_POOL_MEAN_SQRT_LEN = 3,
    EK_POOL_WEIGHTED_MEAN = 4,
    EK_POOL_LAST_TOKEN = 5,
    EK_POOL_ATTENTION = 6, /* last layer's attention of token 0, head mean */
    EK_POOL_COUNT = 7
} ek_pooling;

/* Parse "cls", "mean", "max", "mean_sqrt_len_tokens" (or "mean_sqrt_len"),
 * "weightedmean", "lasttoken", "attention".  Returns -1 if unknown. */
int ek_pooling_from_name(const char *name);
const char *ek_pooling_name(ek_pooling p);

ek_status ek_model_load(ek_ctx *ctx, const char *dir, ek_model **out);
void ek_model_free(ek_model *model);

/* The precision the encoder's matrix products run in.  F32 is exact (the
 * default); BF16 converts the weights once at load (bf16 products with f32
 * accumulation); INT8 quantizes the weights per output channel at load and
 * the activations per token at run time (int32 accumulation).  LayerNorm,
 * softmax, GELU and attention stay f32.  BF16 / INT8 need AVX-512 with
 * BF16 / VNNI (EK_ERR_UNSUPPORTED otherwise).  EK_ISA=avx2|avx512|amx in
 * the environment caps the instruction set; it is read when a model is
 * loaded, and oneDNN only honours it if it comes before oneDNN's first use
 * in the process (the first model load). */
typedef enum ek_compute_dtype {
    EK_DTYPE_F32 = 0,
    EK_DTYPE_BF16 = 1,
    EK_DTYPE_INT8 = 2
} ek_compute_dtype;

typedef struct ek_load_options {
    ek_compute_dtype dtype;
    /* Packed-weight cache: a directory (made when missing, one level) where
     * the weights packed for dtype are kept in a file named by a digest of
     * everything they depend on, mapped read-only: every model and process
     * with the same weights then shares one copy in the page cache instead
     * of packing its own.  A damaged or foreign file is repacked and
     * rewritten; a directory that cannot be used falls back to private
     * memory (ek_model_packed_cache_info says why).  NULL (the default):
     * packed in private memory.  The registry and its pool use
     * HOME/packed.  See docs/REGISTRY.md, "Memory". */
    const char *packed_cache_dir;
    /* Optional, with packed_cache_dir: a string identifying the content of
     * the weight files (the registry passes their SHA-256s), used in the
     * cache key instead of hashing the tensors at each load (BLAKE2b, about
     * 60 ms per 50 MB).  It must change whenever those bytes do. */
    const char *weights_digest;
} ek_load_options;

void ek_load_options_init(ek_load_options *opts);
/* "f32", "bf16", "int8" -> dtype; returns -1 if unknown. */
int ek_compute_dtype_from_name(const char *name);
/* ek_model_load with options (opts NULL: the defaults). */
ek_status ek_model_load_opts(ek_ctx *ctx, const char *dir, const ek_load_options *opts,
                             ek_model **out);

typedef struct ek_model_info {
    char model_type[32];       /* "bert" */
    int hidden_size;
    int num_layers;
    int num_heads;
    int intermediate_size;
    int vocab_size;
    int max_position_embeddings;
    int max_seq_length;        /* tokens per input, special tokens included */
    int embedding_dim;         /* output dimension (after pooling and Dense) */
    unsigned pooling_mask;     /* bit (1u << ek_pooling) per enabled mode */
    int include_prompt;
    int has_dense;
    int normalize;             /* a Normalize module is present */
    int do_lower_case;
    uint64_t parameters;       /* transformer + Dense parameters */
    char weights_dtype[8];     /* dtype in model.safetensors: F32, F16, BF16 */
    char compute_dtype[8];     /* dtype the forward pass runs in: F32, BF16, INT8 */
    char isa[16];              /* instruction set of embedkit's kernels
                                  ("avx512_bf16", "avx2"...) */
    char dnnl_isa[24];         /* oneDNN's ("avx512_core_bf16"...) */
    uint64_t packed_bytes;     /* packed matmul weights */
    int generated_random;      /* 1 if generated by embedkit with random weights */
    char note[256];            /* e.g. "random weights, seed 42" */
} ek_model_info;

ek_status ek_model_get_info(const ek_model *model, ek_model_info *out);
/* Prompt text by name from config_sentence_transformers.json, or NULL. */
const char *ek_model_prompt(const ek_model *model, const char *name);
/* default_prompt_name, or NULL. */
const char *ek_model_default_prompt_name(const ek_model *model);

/* ---- tokenization ------------------------------------------------------- */

typedef enum ek_truncate {
    EK_TRUNCATE_RIGHT = 0, /* drop tokens at the end (default) */
    EK_TRUNCATE_LEFT = 1,  /* drop tokens at the start */
    EK_TRUNCATE_NONE = 2   /* an over-long input is an EK_ERR_TOO_LONG error */
} ek_truncate;

/* One tokenized input: ids exactly as the model sees them (special tokens
 * included, truncated, no padding).  offsets are [start, end) in Unicode code
 * points of the original text; special tokens have (0, 0). */
typedef struct ek_encoding {
    size_t n;
    int32_t *ids;
    int32_t *type_ids;
    int32_t *offsets;      /* 2 * n: start, end */
    size_t cap;            /* internal */
} ek_encoding;

typedef struct ek_tokenize_options {
    int max_length;         /* 0 = the model's max_seq_length */
    ek_truncate truncate;
} ek_tokenize_options;

/* Tokenizes text (len bytes of UTF-8; NUL bytes are ordinary characters) and,
 * when pair != NULL, a second segment (token_type_ids 1).  *enc is reset and
 * reused: initialise it to zeros once, free with ek_encoding_free. */
ek_status ek_tokenize(ek_ctx *ctx, const ek_model *model, const char *text,
                      size_t len, const char *pair, size_t pair_len,
                      const ek_tokenize_options *opts, ek_encoding *enc);
void ek_encoding_free(ek_encoding *enc);
/* Token string of an id, or NULL when out of range. */
const char *ek_model_token(const ek_model *model, int32_t id);

/* ---- embedding ---------------------------------------------------------- */

typedef struct ek_embed_options {
    int pooling;            /* -1: the model's own pooling; else ek_pooling */
    int normalize;          /* -1: the model's Normalize module; 0 off; 1 on */
    int max_length;         /* 0: model max_seq_length; else min of both */
    ek_truncate truncate;
    int dimensions;         /* 0: full; else Matryoshka truncation (then
                               renormalised when normalising) */
    int batch_size;         /* inputs per forward pass; 0 = 32 */
    int max_batch_tokens;   /* tokens per forward pass; 0 = 8192 */
    const char *prompt;     /* prepended to every text (NULL: none) */
    size_t index_base;      /* added to input indices in error messages, for
                               callers that stream inputs in chunks */
} ek_embed_options;

/* Fills opts with the defaults (model pooling and Normalize, right truncation,
 * full dimensions). */
void ek_embed_options_init(ek_embed_options *opts);

/* Output dimension for these options. */
int ek_embed_dim(const ek_model *model, const ek_embed_options *opts);

/* Embeds n texts (texts[i] has lens[i] bytes; lens may be NULL for
 * NUL-terminated texts) into out (n * ek_embed_dim floats, row-major, in input
 * order).  token_counts (may be NULL) receives each input's token count.  An
 * input's embedding never depends on the other inputs of the call. */
ek_status ek_embed(ek_ctx *ctx, const ek_model *model, const char *const *texts,
                   const size_t *lens, size_t n, const ek_embed_options *opts,
                   float *out, int32_t *token_counts);

/* Embeds pre-tokenized inputs: input i is lens[i] ids (special tokens
 * included, as ek_tokenize returns them), all inputs back to back in ids.
 * Token type ids are 0.  Same options and output as ek_embed (the prompt and
 * truncation options do not apply). */
ek_status ek_embed_ids(ek_ctx *ctx, const ek_model *model, const int32_t *ids,
                       const int32_t *lens, size_t n, const ek_embed_options *opts,
                       float *out);

/* Pools caller-supplied per-token hidden states with caller-supplied weights:
 * out[h] = sum_t w[t] * hidden[t][h] / sum_t w[t].  For custom weighting
 * schemes on top of ek_embed_tokens.  A zero weight sum gives a zero vector. */
ek_status ek_pool_weighted(ek_ctx *ctx, const float *hidden, int n_tokens,
                           int dim, const float *weights, float *out);

/* Token-level output: the last hidden states of one text ([n_tokens][hidden]),
 * written to out (capacity out_cap floats).  *n_tokens receives the count. */
ek_status ek_embed_tokens(ek_ctx *ctx, const ek_model *model, const char *text,
                          size_t len, const ek_embed_options *opts, float *out,
                          size_t out_cap, int *n_tokens);

/* ---- per-stage timings -------------------------------------------------- */

/* Where the last ek_embed / ek_embed_ids call made with a context spent its
 * time, in nanoseconds of CLOCK_MONOTONIC (measured without allocating):
 *   tokenize_ns   tokenization (prompt included) and ordering by length
 *   forward_ns    the encoder's forward passes
 *   pool_ns       the pooling modes
 *   normalize_ns  the modules after Pooling as the shared head runs them in
 *                 one step: Normalize and Matryoshka truncation (and a Dense
 *                 module, for the models that have one)
 *   total_ns      the whole call; the stages never add up to more
 * A failed call reports the stages that ran before the failure.  A call the
 * CPU path did not run (n == 0, invalid options, another backend) reports
 * zero stages.  Each call replaces the previous record. */
typedef struct ek_stage_timings {
    uint64_t tokenize_ns;
    uint64_t forward_ns;
    uint64_t pool_ns;
    uint64_t normalize_ns;
    uint64_t total_ns;
    uint64_t inputs;        /* texts (or id sequences) of the call */
    uint64_t tokens;        /* tokens through the forward pass */
    uint64_t batches;       /* forward passes */
} ek_stage_timings;

/* Copies the record of the last embedding call into *out. */
ek_status ek_ctx_last_timings(const ek_ctx *ctx, ek_stage_timings *out);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKIT_H */
