/* embedkit_pipeline.h — the command pipeline, its built-in middleware, the
 * configuration and the telemetry (public API, companion of embedkit.h).
 *
 * Every entry point (CLI, convenience calls, a future server) turns its work
 * into a typed command (ek_cmd) and executes it through one frozen pipeline:
 *
 *     caller ── ek_pipeline_execute ──▶ middleware 1 ─▶ … ─▶ middleware n ─▶ handler
 *
 * Middleware run outermost first by class (authentication, validation,
 * resilience, pre-processing, monitoring, post-processing, observability),
 * ties in insertion order; each only for the command types in its scope
 * mask.  A middleware calls ek_next_run at most once, unless it declares
 * EK_MW_REENTERS (retry); it must call it unless it declares
 * EK_MW_SHORT_CIRCUITS (cache hit) or it fails the command.
 *
 * The per-command context (ek_cmd_ctx) lives in caller memory.  Executing a
 * command takes no lock and allocates nothing in the pipeline itself; the
 * stateful built-ins (rate limiter, breaker, cache, bulkhead) guard their own
 * state.  Time comes from an injected monotonic clock (ek_clock), never from
 * a global.  See docs/PIPELINE.md and docs/CONFIG.md. */
#ifndef EMBEDKIT_PIPELINE_H
#define EMBEDKIT_PIPELINE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "embedkit.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- statuses beyond embedkit.h's (returned as ek_status values) ---------- */

/* Values of ek_status past EK_ERR_INTERNAL (macros so they compare with,
 * and return as, ek_status without casts). */
#define EK_ERR_CANCELLED ((ek_status)32)     /* the caller cancelled the command */
#define EK_ERR_DEADLINE ((ek_status)33)      /* the command's deadline passed */
#define EK_ERR_RATE_LIMITED ((ek_status)34)  /* token bucket empty; see cx->retry_after_ns */
#define EK_ERR_CIRCUIT_OPEN ((ek_status)35)  /* the model version's breaker is open */
#define EK_ERR_BULKHEAD_FULL ((ek_status)36) /* too many commands in flight */
#define EK_ERR_NO_HANDLER ((ek_status)37)    /* no handler registered for the command type */
#define EK_ERR_PIPELINE ((ek_status)38)      /* pipeline misuse (next called twice, not frozen) */
#define EK_ERR_UNAVAILABLE ((ek_status)39)   /* model not loaded / transient failure */

/* Name of any status (embedkit.h's and the ones above). */
const char *ek_pipe_status_name(int status);
/* 1 for statuses worth retrying (IO, UNAVAILABLE, BULKHEAD_FULL). */
int ek_status_retryable(int status);

/* ---- clock ----------------------------------------------------------------- */

/* A monotonic clock in nanoseconds, a way to sleep on it, and a wall clock
 * for log timestamps.  Tests pass a fake whose sleep advances its time. */
typedef struct ek_clock {
    int64_t (*now_ns)(void *arg);
    void (*sleep_ns)(void *arg, int64_t ns);
    int64_t (*wall_ns)(void *arg); /* unix time in ns */
    void *arg;
} ek_clock;

/* The real clocks (CLOCK_MONOTONIC, nanosleep, CLOCK_REALTIME). */
ek_clock ek_clock_system(void);

/* ---- commands -------------------------------------------------------------- */

typedef enum ek_cmd_type {
    EK_CMD_EMBED_TEXT = 0,
    EK_CMD_EMBED_BATCH = 1,
    EK_CMD_TOKENIZE = 2,
    EK_CMD_SIMILARITY = 3,
    EK_CMD_SEARCH = 4,
    EK_CMD_LOAD_MODEL = 5,
    EK_CMD_UNLOAD_MODEL = 6,
    EK_CMD_SWAP_MODEL = 7,
    EK_CMD_CLEAR_CACHE = 8,
    EK_CMD_PRELOAD_CACHE = 9,
    EK_CMD_HEALTH = 10,
    EK_CMD_COUNT = 11
} ek_cmd_type;

#define EK_SCOPE(t) (1u << (t))
#define EK_SCOPE_ALL ((1u << EK_CMD_COUNT) - 1u)
#define EK_SCOPE_EMBED (EK_SCOPE(EK_CMD_EMBED_TEXT) | EK_SCOPE(EK_CMD_EMBED_BATCH))
/* Commands that carry input text (a search by vectors carries none). */
#define EK_SCOPE_TEXT (EK_SCOPE_EMBED | EK_SCOPE(EK_CMD_TOKENIZE) | \
                       EK_SCOPE(EK_CMD_SIMILARITY) | EK_SCOPE(EK_CMD_PRELOAD_CACHE) | \
                       EK_SCOPE(EK_CMD_SEARCH))
/* Commands that run a model. */
#define EK_SCOPE_MODEL EK_SCOPE_TEXT

/* "embed_text", "embed_batch", ... ("unknown" out of range). */
const char *ek_cmd_type_name(int type);

/* Arguments and results of EMBED_TEXT (n == 1) and EMBED_BATCH. */
typedef struct ek_embed_args {
    const char *const *texts;
    const size_t *lens;            /* NULL: NUL-terminated texts */
    size_t n;
    const ek_embed_options *opts;  /* NULL: the handler's defaults */
    float *out;                    /* n * dim floats, input order */
    size_t out_cap;                /* capacity of out, in floats */
    int32_t *token_counts;         /* may be NULL */
    /* results */
    int dim;
    size_t cache_hits, cache_misses;
    ek_stage_timings stages;       /* summed over the handler's ek_embed calls
                                      (zero when the cache served every text) */
    /* storage for EMBED_TEXT (ek_cmd_embed_text points texts/lens here) */
    const char *one_text;
    size_t one_len;
} ek_embed_args;

typedef struct ek_tokenize_args {
    const char *text;
    size_t len;
    const ek_tokenize_options *opts;
    ek_encoding *enc;              /* result (caller-owned, zero-initialised) */
} ek_tokenize_args;

typedef struct ek_similarity_args {
    const char *a, *b;
    size_t a_len, b_len;
    const ek_embed_options *opts;
    double cosine;                 /* result */
} ek_similarity_args;

struct ek_index;                   /* embedkit_search.h */
struct ek_hit;

/* Arguments and results of SEARCH: exact top-k over a caller's index
 * (embedkit_search.h; its metric and vector type are the index's) for query
 * texts, embedded with the command's model as EMBED_BATCH embeds them, or
 * for query vectors embedded already (texts NULL; no model needed). */
typedef struct ek_search_args {
    const char *const *texts;      /* n query texts, or NULL with vectors */
    const size_t *lens;            /* NULL: NUL-terminated texts */
    size_t n;                      /* queries */
    const float *vectors;          /* n x dim query vectors (texts NULL) */
    size_t dim;                    /* floats per vector */
    const ek_embed_options *opts;  /* embedding the texts; NULL: the handler's defaults */
    float *query_out;              /* receives the embedded texts (n x model dim);
                                      NULL: the handler allocates */
    size_t query_out_cap;          /* capacity of query_out, in floats */
    const struct ek_index *index;  /* caller-owned, read-only during the command */
    size_t k;                      /* hits per query, >= 1 */
    size_t rescore;                /* quantized index: candidates rescored (ek_search_options) */
    struct ek_hit *hits;           /* n x min(k, rows) hits, query by query, best first */
    size_t hits_cap;               /* capacity of hits, in hits */
    /* results */
    size_t per_query;              /* hits written per query */
    int query_dim;                 /* dimension of the embedded texts (0 with vectors) */
    ek_stage_timings stages;       /* embedding the texts */
} ek_search_args;

typedef struct ek_model_args {
    const char *ref;               /* LOAD / SWAP: a directory or registry reference */
    const char *version;           /* label of the version (NULL: derived from ref) */
    const char *home;              /* registry home for references (NULL: default) */
} ek_model_args;

typedef struct ek_cache_args {
    const char *const *texts;      /* PRELOAD: texts to embed into the cache */
    const size_t *lens;
    size_t n;
    const ek_embed_options *opts;
    size_t count;                  /* result: entries removed / embedded */
} ek_cache_args;

struct ek_health;                  /* embedkit_registry.h */

/* HEALTH: the engine's liveness and a model's readiness; with ref set, also
 * a registry health check of that version (ek_registry_check_opts: reload,
 * canary embeddings, optionally re-hash and signature re-verification),
 * exported as metrics (docs/PIPELINE.md, "Model health"). */
typedef struct ek_health_args {
    const char *ref;               /* NAME, NAME@VERSION, NAME@ALIAS; NULL: no check */
    const char *home;              /* registry home (NULL: registry.home, else the default) */
    int rehash;                    /* ek_check_options */
    int verify_signature;
    int require_signature;
    struct ek_health *check;       /* the check's result (caller memory; required with ref) */
    /* results */
    char check_model[72];          /* the version checked: name ... */
    int64_t check_version;         /* ... and number */
    int live;
    int ready;                     /* with ref: the check's result is not unhealthy */
    char detail[256];
} ek_health_args;

typedef struct ek_cmd {
    ek_cmd_type type;
    const char *model;             /* model name; NULL: the default model */
    union {
        ek_embed_args embed;
        ek_tokenize_args tokenize;
        ek_similarity_args similarity;
        ek_search_args search;
        ek_model_args load;         /* LOAD_MODEL, UNLOAD_MODEL, SWAP_MODEL */
        ek_cache_args cache;        /* CLEAR_CACHE, PRELOAD_CACHE */
        ek_health_args health;
    } u;
} ek_cmd;

/* Initialisers (they zero the command first). */
void ek_cmd_embed_text(ek_cmd *cmd, const char *model, const char *text, size_t len,
                       float *out, size_t out_cap);
void ek_cmd_embed_batch(ek_cmd *cmd, const char *model, const char *const *texts,
                        const size_t *lens, size_t n, float *out, size_t out_cap);
void ek_cmd_init(ek_cmd *cmd, ek_cmd_type type, const char *model);
/* SEARCH for n query texts (embedded with model) / n query vectors of dim
 * floats; hits: hits_cap entries. */
void ek_cmd_search_texts(ek_cmd *cmd, const char *model, const struct ek_index *index,
                         const char *const *texts, const size_t *lens, size_t n, size_t k,
                         struct ek_hit *hits, size_t hits_cap);
void ek_cmd_search_vectors(ek_cmd *cmd, const struct ek_index *index, const float *vectors,
                           size_t n, size_t dim, size_t k, struct ek_hit *hits, size_t hits_cap);

/* The input texts a command carries (0 for commands without text), and the
 * i-th of them with its length in bytes. */
size_t ek_cmd_text_count(const ek_cmd *cmd);
const char *ek_cmd_text_at(const ek_cmd *cmd, size_t i, size_t *len);

/* ---- per-command context --------------------------------------------------- */

#define EK_CMD_VALUES 8

typedef enum ek_value_type {
    EK_VAL_NONE = 0,
    EK_VAL_I64 = 1,
    EK_VAL_F64 = 2,
    EK_VAL_STR = 3,
    EK_VAL_PTR = 4
} ek_value_type;

typedef struct ek_cmd_value {
    const char *key;               /* caller-owned, compared by content */
    ek_value_type type;
    union { int64_t i; double f; const char *s; void *p; } v;
} ek_cmd_value;

typedef struct ek_cmd_ctx {
    /* caller's inputs */
    ek_ctx *ek;                    /* library context the handlers use (per thread) */
    uint64_t request_id;           /* 0: the pipeline assigns the next one */
    char correlation_id[64];
    char caller[64];               /* identity, e.g. for per-caller rate limits */
    int64_t deadline_ns;           /* on the pipeline's clock; 0: none */
    int cancelled;                 /* set with ek_cmd_ctx_cancel (any thread) */
    ek_cmd_value values[EK_CMD_VALUES];
    int n_values;
    /* outcome: the first error and where it came from */
    int status;
    char origin[32];               /* "validation", "breaker", "handler", ... */
    char message[512];
    int64_t retry_after_ns;        /* rate limit / open breaker: when to retry */
    /* set by the pipeline */
    const struct ek_pipeline *pipeline;
    int64_t started_ns;
} ek_cmd_ctx;

/* Zeroes cx and sets its library context. */
void ek_cmd_ctx_init(ek_cmd_ctx *cx, ek_ctx *ek);
void ek_cmd_ctx_cancel(ek_cmd_ctx *cx);
int ek_cmd_ctx_cancelled(const ek_cmd_ctx *cx);
/* EK_ERR_CANCELLED / EK_ERR_DEADLINE (recorded with origin) or EK_OK: what
 * handlers call between chunks of work. */
ek_status ek_cmd_ctx_check(ek_cmd_ctx *cx, const char *origin);
/* Records the error unless one is recorded already; returns status. */
ek_status ek_cmd_fail(ek_cmd_ctx *cx, const char *origin, int status, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;
/* Forgets the recorded error (retry does this before another attempt). */
void ek_cmd_ctx_clear_error(ek_cmd_ctx *cx);
/* Typed values: set replaces a key of any type; get fails (EK_ERR_INVALID_ARG)
 * when the key is absent or holds another type. */
ek_status ek_cmd_ctx_set(ek_cmd_ctx *cx, const ek_cmd_value *v);
ek_status ek_cmd_ctx_get(const ek_cmd_ctx *cx, const char *key, ek_value_type type,
                         ek_cmd_value *out);

/* ---- pipeline ---------------------------------------------------------------- */

typedef struct ek_pipeline ek_pipeline;
typedef struct ek_next ek_next;

typedef enum ek_mw_class {
    EK_MW_AUTH = 0,
    EK_MW_VALIDATION = 1,
    EK_MW_RESILIENCE = 2,
    EK_MW_PREPROCESS = 3,
    EK_MW_MONITORING = 4,
    EK_MW_POSTPROCESS = 5,
    EK_MW_OBSERVABILITY = 6
} ek_mw_class;

#define EK_MW_REENTERS 1u        /* may call next more than once (retry) */
#define EK_MW_SHORT_CIRCUITS 2u  /* may succeed without calling next (cache) */

typedef ek_status (*ek_mw_fn)(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next);
typedef ek_status (*ek_handler_fn)(void *state, ek_cmd *cmd, ek_cmd_ctx *cx);

typedef struct ek_middleware {
    const char *name;              /* copied */
    ek_mw_class cls;
    uint32_t scope;                /* EK_SCOPE_* mask */
    unsigned flags;                /* EK_MW_REENTERS | EK_MW_SHORT_CIRCUITS */
    ek_mw_fn fn;
    void *state;
    void (*free_state)(void *state); /* non-NULL: the pipeline owns state */
} ek_middleware;

/* clock NULL: ek_clock_system(). */
ek_status ek_pipeline_new(const ek_clock *clock, ek_pipeline **out);
void ek_pipeline_free(ek_pipeline *p);
/* Registration, before ek_pipeline_freeze only (EK_ERR_PIPELINE after). */
ek_status ek_pipeline_use(ek_pipeline *p, const ek_middleware *mw);
ek_status ek_pipeline_handle(ek_pipeline *p, ek_cmd_type type, ek_handler_fn fn, void *state);
/* Freezes: the chains per command type are computed once, never changed. */
ek_status ek_pipeline_freeze(ek_pipeline *p);
/* Runs cmd through the chain of its type.  Thread-safe on a frozen pipeline
 * (each thread its own cmd and cx).  On failure the first error is in cx
 * (and in cx->ek's last error). */
ek_status ek_pipeline_execute(const ek_pipeline *p, ek_cmd *cmd, ek_cmd_ctx *cx);
/* Continues the chain (from inside a middleware). */
ek_status ek_next_run(ek_next *next, ek_cmd *cmd, ek_cmd_ctx *cx);
const ek_clock *ek_pipeline_clock(const ek_pipeline *p);
/* Names of the middleware that run for a command type, in order, joined by
 * ' ' into buf (for diagnostics and tests). */
void ek_pipeline_describe(const ek_pipeline *p, ek_cmd_type type, char *buf, size_t cap);

/* ---- telemetry: metrics ------------------------------------------------------ */

typedef struct ek_metrics ek_metrics;
typedef struct ek_metric_family ek_metric_family;
typedef struct ek_series ek_series;

typedef enum ek_metric_kind { EK_COUNTER = 0, EK_GAUGE = 1, EK_HISTOGRAM = 2 } ek_metric_kind;

#define EK_METRIC_MAX_LABELS 3
#define EK_METRIC_MAX_BUCKETS 24

ek_status ek_metrics_new(ek_metrics **out);
void ek_metrics_free(ek_metrics *m);
/* Registers a metric (name must start with "embedkit_"; counters end in
 * "_total").  label_names: n_labels names; max_series bounds the
 * cardinality (further label sets share one series labelled "other").
 * buckets: ascending upper bounds for histograms (+Inf is implicit). */
ek_status ek_metrics_add(ek_metrics *m, ek_metric_kind kind, const char *name,
                         const char *help, int n_labels, const char *const *label_names,
                         int max_series, const double *buckets, int n_buckets,
                         ek_metric_family **out);
ek_metric_family *ek_metrics_find(ek_metrics *m, const char *name);
/* The series for these label values (created on first use, thread-safe).
 * Hold on to it: updates through it take no lock. */
ek_series *ek_metric_series(ek_metric_family *metric, const char *const *label_values);
void ek_series_add(ek_series *s, double v);      /* counter / gauge */
void ek_series_set(ek_series *s, double v);      /* gauge */
void ek_series_observe(ek_series *s, double v);  /* histogram */
double ek_series_value(const ek_series *s);      /* counter / gauge; histogram: count */
/* Prometheus text exposition format 0.0.4 into a malloc'd string. */
ek_status ek_metrics_render(const ek_metrics *m, char **text, size_t *len);

/* ---- telemetry: structured logs ---------------------------------------------- */

typedef enum ek_log_level { EK_LOG_DEBUG = 0, EK_LOG_INFO = 1, EK_LOG_WARN = 2, EK_LOG_ERROR = 3 } ek_log_level;
typedef enum ek_log_format { EK_LOG_AUTO = 0, EK_LOG_TEXT = 1, EK_LOG_JSON = 2 } ek_log_format;

typedef struct ek_logger ek_logger;
/* AUTO: text when out is a terminal, JSON lines otherwise.  clock: wall time
 * for timestamps (NULL: system). */
ek_status ek_logger_new(FILE *out, ek_log_level level, ek_log_format format,
                        const ek_clock *clock, ek_logger **log);
void ek_logger_free(ek_logger *log);
/* One field of a record: a string (str non-NULL) or a number. */
typedef struct ek_log_field {
    const char *key;
    const char *str;
    double num;
} ek_log_field;
/* One record: level, time, msg, then the fields in order.  Thread-safe. */
void ek_log(ek_logger *log, ek_log_level level, const char *msg,
            const ek_log_field *fields, int n_fields);
int ek_logger_enabled(const ek_logger *log, ek_log_level level);
int ek_log_level_from_name(const char *name);   /* -1 if unknown */

/* ---- built-in middleware ------------------------------------------------------ */

/* Each built-in is an object its creator owns and frees after the pipeline;
 * ek_*_middleware() describes it for ek_pipeline_use (free_state NULL). */

/* Model identity, used by the breaker (key) and the cache (digest). */
typedef struct ek_model_identity {
    char key[160];                 /* "name@version" */
    char digest[72];               /* weights digest (hex), "" if unknown */
    int dtype;                     /* ek_compute_dtype */
} ek_model_identity;
typedef struct ek_model_resolver {
    /* Fills out for the model a command names (NULL: default); non-zero if
     * the model is unknown. */
    int (*identify)(void *arg, const char *model, ek_model_identity *out);
    void *arg;
} ek_model_resolver;

/* Validation. */
typedef struct ek_validate_config {
    size_t max_text_bytes;         /* default 1 MiB */
    size_t max_batch;              /* default 1024 */
    int allow_empty;               /* default 0 */
    int allow_nul;                 /* default 0 */
} ek_validate_config;
void ek_validate_config_init(ek_validate_config *c);
ek_middleware ek_validate_middleware(const ek_validate_config *c); /* c must outlive */

/* Token-bucket rate limiting. */
typedef struct ek_ratelimit_config {
    double rate;                   /* tokens per second; 0: unlimited */
    double burst;                  /* bucket size */
    int per_caller;                /* one bucket per cx->caller (bounded table) */
    int max_callers;               /* default 1024 */
} ek_ratelimit_config;
typedef struct ek_ratelimit ek_ratelimit;
ek_status ek_ratelimit_new(const ek_ratelimit_config *c, const ek_clock *clock,
                           ek_metrics *metrics, ek_ratelimit **out);
void ek_ratelimit_free(ek_ratelimit *r);
ek_middleware ek_ratelimit_middleware(ek_ratelimit *r);
/* Cost of a command: code points for text commands, items for a batch. */
double ek_ratelimit_cost(const ek_cmd *cmd);
/* Tokens left in the caller's bucket now (testing and metrics). */
double ek_ratelimit_tokens(ek_ratelimit *r, const char *caller);

/* Circuit breaker per (model, version). */
typedef enum ek_breaker_state { EK_BREAKER_CLOSED = 0, EK_BREAKER_OPEN = 1, EK_BREAKER_HALF_OPEN = 2 } ek_breaker_state;
typedef struct ek_breaker_config {
    double failure_rate_threshold;   /* percent, default 50 */
    double slow_call_rate_threshold; /* percent, default 100 */
    int64_t slow_call_duration_ns;   /* default 60 s */
    int64_t wait_open_ns;            /* default 60 s */
    int half_open_calls;             /* default 10 */
    int minimum_calls;               /* default 100 */
    int window_size;                 /* count-based sliding window, default 100 */
    int max_breakers;                /* distinct (model, version) keys, default 256 */
} ek_breaker_config;
void ek_breaker_config_init(ek_breaker_config *c);
typedef struct ek_breaker ek_breaker;
ek_status ek_breaker_new(const ek_breaker_config *c, const ek_clock *clock,
                         const ek_model_resolver *resolver, ek_metrics *metrics,
                         ek_breaker **out);
void ek_breaker_free(ek_breaker *b);
/* While model's breaker is open, serve its commands with fallback instead
 * (an alias's fallback version).  Before the pipeline is frozen. */
ek_status ek_breaker_set_fallback(ek_breaker *b, const char *model, const char *fallback);
ek_middleware ek_breaker_middleware(ek_breaker *b);
/* State of a key ("name@version"); CLOSED for unknown keys. */
ek_breaker_state ek_breaker_get_state(ek_breaker *b, const char *key);
const char *ek_breaker_state_name(ek_breaker_state s);

/* Bulkhead: at most max_concurrent commands inside; others wait up to
 * max_wait_ns (0: fail fast with EK_ERR_BULKHEAD_FULL). */
typedef struct ek_bulkhead ek_bulkhead;
ek_status ek_bulkhead_new(int max_concurrent, int64_t max_wait_ns, ek_bulkhead **out);
void ek_bulkhead_free(ek_bulkhead *b);
ek_middleware ek_bulkhead_middleware(ek_bulkhead *b);

/* Deadline: commands without a deadline get now + timeout_ns; an expired
 * deadline stops the command before the handler (handlers also check
 * between batch chunks). */
typedef struct ek_deadline { int64_t timeout_ns; const ek_clock *clock; } ek_deadline;
ek_middleware ek_deadline_middleware(ek_deadline *d);

/* Retry with exponential backoff and jitter, retryable statuses only. */
typedef struct ek_retry_config {
    int max_attempts;              /* default 3 (1 = no retry) */
    int64_t base_backoff_ns;       /* default 100 ms */
    int64_t max_backoff_ns;        /* default 2 s */
    double multiplier;             /* default 2 */
    double jitter;                 /* 0..1, default 0.5: delay * (1 - jitter * u) */
    const ek_clock *clock;
    uint64_t attempts_total;       /* statistics (updated atomically) */
} ek_retry_config;
void ek_retry_config_init(ek_retry_config *c, const ek_clock *clock);
ek_middleware ek_retry_middleware(ek_retry_config *c);

/* Embedding cache: LRU bounded by bytes. */
typedef struct ek_cache ek_cache;
typedef struct ek_cache_stats {
    uint64_t hits, misses, evictions;
    size_t entries, bytes, max_bytes;
} ek_cache_stats;
ek_status ek_cache_new(size_t max_bytes, const ek_model_resolver *resolver,
                       ek_metrics *metrics, ek_cache **out);
void ek_cache_free(ek_cache *c);
ek_middleware ek_cache_middleware(ek_cache *c);
size_t ek_cache_clear(ek_cache *c);
void ek_cache_get_stats(ek_cache *c, ek_cache_stats *out);

/* Metrics + one log record per command (logger and metrics may be NULL). */
typedef struct ek_telemetry_mw ek_telemetry_mw;
ek_status ek_telemetry_mw_new(ek_metrics *metrics, ek_logger *log, const ek_clock *clock,
                              ek_telemetry_mw **out);
void ek_telemetry_mw_free(ek_telemetry_mw *t);
ek_middleware ek_telemetry_middleware(ek_telemetry_mw *t);

/* ---- configuration ------------------------------------------------------------- */

typedef enum ek_config_source {
    EK_SRC_DEFAULT = 0, EK_SRC_FILE = 1, EK_SRC_ENV = 2, EK_SRC_FLAG = 3
} ek_config_source;

#define EK_CONFIG_MAX_KEYS 48

/* The effective configuration: every knob of the project, with where each
 * value came from.  A plain value: copy it freely. */
typedef struct ek_config {
    int threads;
    char dtype[8];
    char model[512];               /* default model reference */
    char registry_home[512];
    char registry_verify_on_load[12]; /* off | signed | required (docs/SIGNING.md) */
    char device[32];               /* cpu | gpu | auto | opencl:P:D (ek_ctx_set_device) */
    int gpu_auto_min_tokens;       /* ek_ctx_set_gpu_min_tokens; 0: the library default */
    int batch_size;
    int max_batch_tokens;
    int max_length;
    int64_t cache_max_bytes;
    int64_t validation_max_text_bytes;
    int validation_max_batch;
    int validation_allow_empty;
    int validation_allow_nul;
    double ratelimit_rate;
    double ratelimit_burst;
    int ratelimit_per_caller;
    int breaker_enabled;
    double breaker_failure_rate;
    double breaker_slow_call_rate;
    double breaker_slow_call_s;
    double breaker_wait_open_s;
    int breaker_half_open_calls;
    int breaker_minimum_calls;
    int breaker_window_size;
    int bulkhead_max_concurrent;
    double bulkhead_max_wait_s;
    int retry_max_attempts;
    double retry_base_backoff_s;
    double retry_max_backoff_s;
    double retry_jitter;
    double deadline_timeout_s;
    char log_level[8];
    char log_format[8];
    int metrics_enabled;
    /* provenance, per key in ek_config_key order */
    ek_config_source source[EK_CONFIG_MAX_KEYS];
    char origin[EK_CONFIG_MAX_KEYS][96];   /* "/etc/ek.yaml:7", "EK_THREADS", "--threads" */
} ek_config;

void ek_config_defaults(ek_config *cfg);
/* Number of keys, and key i's dotted name ("breaker.wait_open_s"), its
 * environment variable and its value as text. */
int ek_config_key_count(void);
const char *ek_config_key(int i);
const char *ek_config_key_env(int i);
const char *ek_config_key_help(int i);
void ek_config_value_text(const ek_config *cfg, int i, char *buf, size_t cap);

/* Each loader applies what it finds on top of cfg and returns the number of
 * errors (0: all applied).  Error lines ("FILE:LINE: key: problem", with a
 * suggestion for misspelt keys) are appended to errs, '\n' separated. */
int ek_config_load_file(ek_config *cfg, const char *path, char *errs, size_t cap);
int ek_config_load_env(ek_config *cfg, char *const *envp, char *errs, size_t cap);
/* One key from a flag: origin is the flag as typed ("--threads"). */
int ek_config_set(ek_config *cfg, const char *key, const char *value, ek_config_source src,
                  const char *origin, char *errs, size_t cap);

/* Checks across keys (e.g. retry.max_backoff_s >= retry.base_backoff_s);
 * returns the number of errors, appended to errs prefixed by where. */
int ek_config_check(const ek_config *cfg, const char *where, char *errs, size_t cap);
const char *ek_config_source_name(ek_config_source s); /* "default", "file", "env", "flag" */
/* The configuration file to read: flag_path if given, else $EK_CONFIG, else
 * $XDG_CONFIG_HOME/embedkit/config.yaml or ~/.config/embedkit/config.yaml
 * when it exists.  Returns 1 with the path in buf, 0 when there is none. */
int ek_config_find_file(char *const *envp, const char *flag_path, char *buf, size_t cap);

/* A reloadable holder of the effective configuration: defaults < file <
 * env < flags.  Flags are remembered so a reload re-applies them. */
typedef struct ek_config_store ek_config_store;
ek_status ek_config_store_new(ek_config_store **out);
void ek_config_store_free(ek_config_store *s);
/* Remembers a flag (key=value, origin) for every (re)load. */
ek_status ek_config_store_flag(ek_config_store *s, const char *key, const char *value,
                               const char *origin);
/* Builds a new configuration from path (may be NULL) + envp + flags; on any
 * error nothing changes (the previous configuration stays in force) and
 * the errors are in errs.  Returns EK_OK or EK_ERR_FORMAT. */
ek_status ek_config_store_load(ek_config_store *s, const char *path, char *const *envp,
                               char *errs, size_t cap);
/* Copies the configuration in force; its generation counts successful loads. */
uint64_t ek_config_store_get(ek_config_store *s, ek_config *out);

/* ---- the default pipeline (engine) --------------------------------------------- */

/* The pipeline every entry point uses, with real handlers over the public
 * API: a model table (name → loaded version), the built-in middleware
 * configured from cfg, a metrics registry and a logger.
 *   telemetry (outermost) → validation → rate limit → deadline → retry →
 *   breaker → bulkhead → cache → handler */
typedef struct ek_engine ek_engine;
typedef struct ek_engine_options {
    const ek_config *config;       /* NULL: defaults */
    const ek_clock *clock;         /* NULL: system */
    FILE *log;                     /* NULL: no logs */
    /* Fault injection for tests and drills: called by the model handlers
     * before they run the model; a non-EK_OK return fails the command with
     * that status (origin "fault"). */
    ek_status (*fault)(void *arg, const ek_cmd *cmd);
    void *fault_arg;
} ek_engine_options;
ek_status ek_engine_new(ek_ctx *ctx, const ek_engine_options *opts, ek_engine **out);
void ek_engine_free(ek_engine *e);
const ek_pipeline *ek_engine_pipeline(const ek_engine *e);
ek_metrics *ek_engine_metrics(ek_engine *e);
ek_cache *ek_engine_cache(ek_engine *e);
ek_breaker *ek_engine_breaker(ek_engine *e);
/* Before ek_engine_new freezes the pipeline, a caller may add middleware
 * through this hook (every command type has its engine handler, SEARCH
 * included, so registering another handler fails). */
typedef ek_status (*ek_engine_extend_fn)(void *arg, ek_pipeline *p);
ek_status ek_engine_new_ext(ek_ctx *ctx, const ek_engine_options *opts,
                            ek_engine_extend_fn extend, void *arg, ek_engine **out);
/* Convenience: execute through the engine's pipeline. */
ek_status ek_engine_execute(ek_engine *e, ek_cmd *cmd, ek_cmd_ctx *cx);
/* Output dimension of a loaded model (NULL: the default) with the engine's
 * embedding options; -1 when it is not loaded. */
int ek_engine_embed_dim(ek_engine *e, const char *model);

/* ---- convenience calls -------------------------------------------------------- */

/* Embedding in one call, through the engine's pipeline like every other
 * entry point: validation, rate limit, breaker, cache (when configured) and
 * telemetry apply, with the engine's configured embedding options (for
 * per-call options build an ek_cmd).  ctx is the calling thread's context:
 * on failure its last error says what and where ("validation: text[0]:
 * empty text").  model: a name in the engine's table (NULL: the default).
 * out: capacity out_cap floats (ek_engine_embed_dim per text); *dim (may be
 * NULL) receives the dimension.  Thread-safe (each thread its own ctx). */
ek_status ek_embed_text(ek_engine *e, ek_ctx *ctx, const char *model, const char *text,
                        size_t len, float *out, size_t out_cap, int *dim);
/* n texts (lens NULL: NUL-terminated) into out, n x dim floats in input order. */
ek_status ek_embed_texts(ek_engine *e, ek_ctx *ctx, const char *model,
                         const char *const *texts, const size_t *lens, size_t n,
                         float *out, size_t out_cap, int *dim);
/* The model a name currently maps to, held until ek_engine_release (for
 * callers that need ek_model_get_info etc.).  NULL if not loaded. */
const ek_model *ek_engine_acquire(ek_engine *e, const char *model, void **token);
void ek_engine_release(ek_engine *e, void *token);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKIT_PIPELINE_H */
