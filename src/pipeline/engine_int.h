/* pipeline/engine_int.h — the engine's state and the helpers its handlers
 * share (engine.c: model table, embedding, construction; engine_search.c:
 * SEARCH; engine_health.c: HEALTH and the model-health metrics). */
#ifndef EK_PIPELINE_ENGINE_INT_H
#define EK_PIPELINE_ENGINE_INT_H

#include <pthread.h>

#include "embedkit_pipeline.h"

#define EK_ENGINE_MAX_MODELS 64

typedef struct ek_model_ref {
    ek_model *m;
    int refs;                      /* the table's own reference + commands */
    char name[96];
    char version[60];              /* name@version fits ek_model_identity.key */
    char digest[72];
    int dtype;
} ek_model_ref;

/* Series of embedkit_stage_duration_seconds{stage} (NULL without metrics). */
typedef struct ek_stage_series {
    ek_series *tokenize, *forward, *pool, *normalize;
} ek_stage_series;

typedef struct ek_health_metrics ek_health_metrics; /* engine_health.c */

struct ek_engine {
    ek_config cfg;
    ek_clock clock;
    ek_engine_options opts;
    pthread_mutex_t mu;
    ek_model_ref *models[EK_ENGINE_MAX_MODELS]; /* by slot; NULL = free */
    ek_metrics *metrics;
    ek_logger *log;
    ek_telemetry_mw *tm;
    ek_validate_config vc;
    ek_ratelimit *rl;
    ek_deadline dl;
    ek_retry_config rt;
    ek_breaker *br;
    ek_bulkhead *bh;
    ek_cache *cache;
    ek_pipeline *p;
    ek_stage_series stages;
    ek_health_metrics *health;
};

/* The model a name maps to (NULL: the default), with a reference taken;
 * NULL when not loaded.  ek_eng_unref drops the reference. */
ek_model_ref *ek_eng_acquire(ek_engine *e, const char *name);
void ek_eng_unref(ek_engine *e, ek_model_ref *r);
/* Identity of a loaded model (ek_model_resolver.identify); non-zero when absent. */
int ek_eng_identify(void *engine, const char *model, ek_model_identity *out);

/* Failures recorded in cx with origin "handler" (or "fault"). */
ek_status ek_eng_fault(ek_engine *e, const ek_cmd *cmd, ek_cmd_ctx *cx);
ek_status ek_eng_need_ctx(ek_cmd_ctx *cx);
ek_status ek_eng_not_loaded(ek_cmd_ctx *cx, const char *name);
ek_status ek_eng_lib_fail(ek_cmd_ctx *cx, ek_status st);

/* in, or the engine's configured options when in is NULL. */
void ek_eng_embed_defaults(const ek_engine *e, const ek_embed_options *in, ek_embed_options *o);
/* ek_embed in chunks of the configured batch size, the deadline and
 * cancellation checked between chunks; the stage timings of the chunks are
 * added to *stages and, on success, observed once in the stage histogram. */
ek_status ek_eng_embed_chunks(ek_engine *e, const ek_model_ref *r, ek_cmd_ctx *cx,
                             const char *const *texts, const size_t *lens, size_t n,
                             const ek_embed_options *opts, float *out, int dim,
                             int32_t *token_counts, ek_stage_timings *stages);

/* Handlers outside engine.c. */
ek_status ek_eng_h_search(void *engine, ek_cmd *cmd, ek_cmd_ctx *cx);
ek_status ek_eng_h_health(void *engine, ek_cmd *cmd, ek_cmd_ctx *cx);
/* The model-health metric families (metrics may be NULL: nothing to export). */
ek_status ek_eng_health_metrics_new(ek_metrics *metrics, ek_health_metrics **out);
void ek_eng_health_metrics_free(ek_health_metrics *h);

#endif
