/* pipeline/engine.c — the default pipeline: the built-in middleware
 * configured from an ek_config, and real handlers over the public API
 * (ek_model_load, ek_embed, ek_tokenize) around a table of loaded models.
 *
 * Models are reference counted: a command holds the version it started
 * with, so a swap or an unload never frees a model under a running command;
 * the old version is freed when its last command finishes.  The table lock
 * is held only to take or drop a reference, never while a model runs. */
#include <math.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_registry.h"
#include "pipeline/engine_int.h"

#define MAX_MODELS EK_ENGINE_MAX_MODELS
typedef ek_model_ref model_ref;

/* ---- model table ------------------------------------------------------------ */

void ek_eng_unref(ek_engine *e, model_ref *r) {
    pthread_mutex_lock(&e->mu);
    int last = --r->refs == 0;
    pthread_mutex_unlock(&e->mu);
    if (last) {
        ek_model_free(r->m);
        free(r);
    }
}

/* Slot index of name (NULL: the engine's default model, else the first
 * loaded); -1 when absent.  Lock held. */
static int find_slot(ek_engine *e, const char *name) {
    if (!name && e->cfg.model[0]) {
        for (int i = 0; i < MAX_MODELS; i++)
            if (e->models[i] && !strcmp(e->models[i]->name, "default")) return i;
    }
    for (int i = 0; i < MAX_MODELS; i++)
        if (e->models[i] && (!name || !strcmp(e->models[i]->name, name))) return i;
    return -1;
}

model_ref *ek_eng_acquire(ek_engine *e, const char *name) {
    pthread_mutex_lock(&e->mu);
    int i = find_slot(e, name);
    model_ref *r = i >= 0 ? e->models[i] : NULL;
    if (r) r->refs++;
    pthread_mutex_unlock(&e->mu);
    return r;
}

const ek_model *ek_engine_acquire(ek_engine *e, const char *model, void **token) {
    model_ref *r = ek_eng_acquire(e, model);
    *token = r;
    return r ? r->m : NULL;
}

void ek_engine_release(ek_engine *e, void *token) {
    if (token) ek_eng_unref(e, token);
}

int ek_eng_identify(void *arg, const char *model, ek_model_identity *out) {
    ek_engine *e = arg;
    pthread_mutex_lock(&e->mu);
    int i = find_slot(e, model);
    if (i >= 0) {
        model_ref *r = e->models[i];
        snprintf(out->key, sizeof out->key, "%s@%s", r->name, r->version);
        snprintf(out->digest, sizeof out->digest, "%s", r->digest);
        out->dtype = r->dtype;
    }
    pthread_mutex_unlock(&e->mu);
    return i < 0;
}

/* BLAKE2b of the weights file, so a cache key changes with the weights even
 * when a directory is reloaded under the same name and version. */
static void weights_digest(const char *dir, char *hex, size_t cap) {
    static const char *files[] = {"model.safetensors", "model.safetensors.index.json"};
    unsigned char d[32];
    crypto_generichash_state h;
    crypto_generichash_init(&h, NULL, 0, sizeof d);
    int any = 0;
    for (size_t f = 0; f < 2 && !any; f++) {
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, files[f]);
        FILE *fp = fopen(path, "rb");
        if (!fp) continue;
        unsigned char buf[1 << 16];
        size_t n;
        while ((n = fread(buf, 1, sizeof buf, fp)) > 0) crypto_generichash_update(&h, buf, n);
        fclose(fp);
        any = 1;
    }
    if (!any) crypto_generichash_update(&h, (const unsigned char *)dir, strlen(dir));
    crypto_generichash_final(&h, d, sizeof d);
    if (cap < 2 * sizeof d + 1) return;
    sodium_bin2hex(hex, cap, d, sizeof d);
}

ek_status ek_eng_fault(ek_engine *e, const ek_cmd *cmd, ek_cmd_ctx *cx) {
    if (!e->opts.fault) return EK_OK;
    ek_status st = e->opts.fault(e->opts.fault_arg, cmd);
    if (st != EK_OK) return ek_cmd_fail(cx, "fault", st, "injected failure (%s)", ek_pipe_status_name(st));
    return EK_OK;
}

ek_status ek_eng_need_ctx(ek_cmd_ctx *cx) {
    if (!cx->ek)
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "the command context has no ek_ctx (set cx->ek)");
    return EK_OK;
}

ek_status ek_eng_not_loaded(ek_cmd_ctx *cx, const char *name) {
    return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "model %s is not loaded",
                       name ? name : "(default)");
}

ek_status ek_eng_lib_fail(ek_cmd_ctx *cx, ek_status st) {
    return ek_cmd_fail(cx, "handler", st, "%s", ek_ctx_last_error(cx->ek));
}

void ek_eng_embed_defaults(const ek_engine *e, const ek_embed_options *in, ek_embed_options *o) {
    if (in) {
        *o = *in;
        return;
    }
    ek_embed_options_init(o);
    o->max_length = e->cfg.max_length;
    o->batch_size = e->cfg.batch_size;
    o->max_batch_tokens = e->cfg.max_batch_tokens;
}

static void add_stages(ek_stage_timings *sum, const ek_stage_timings *t) {
    sum->tokenize_ns += t->tokenize_ns;
    sum->forward_ns += t->forward_ns;
    sum->pool_ns += t->pool_ns;
    sum->normalize_ns += t->normalize_ns;
    sum->total_ns += t->total_ns;
    sum->inputs += t->inputs;
    sum->tokens += t->tokens;
    sum->batches += t->batches;
}

static void observe_stages(const ek_stage_series *s, const ek_stage_timings *t) {
    if (!s->forward) return;
    ek_series_observe(s->tokenize, (double)t->tokenize_ns / 1e9);
    ek_series_observe(s->forward, (double)t->forward_ns / 1e9);
    ek_series_observe(s->pool, (double)t->pool_ns / 1e9);
    ek_series_observe(s->normalize, (double)t->normalize_ns / 1e9);
}

ek_status ek_eng_embed_chunks(ek_engine *e, const model_ref *r, ek_cmd_ctx *cx, const char *const *texts,
                             const size_t *lens, size_t n, const ek_embed_options *opts, float *out, int dim,
                             int32_t *token_counts, ek_stage_timings *stages) {
    if (e->cfg.threads && e->cfg.threads != ek_ctx_threads(cx->ek)) ek_ctx_set_threads(cx->ek, e->cfg.threads);
    /* The configuration decides where this engine's commands run (the same
     * device again keeps the context's open one). */
    ek_status st = ek_ctx_set_device(cx->ek, e->cfg.device[0] ? e->cfg.device : "cpu");
    if (st == EK_OK) st = ek_ctx_set_gpu_min_tokens(cx->ek, e->cfg.gpu_auto_min_tokens);
    if (st != EK_OK) return ek_eng_lib_fail(cx, st);
    ek_embed_options o = *opts;
    ek_stage_timings sum, t;
    memset(&sum, 0, sizeof sum);
    /* Chunks of batch_size inputs, with the deadline and the cancellation
     * flag checked between them. */
    size_t chunk = (size_t)(e->cfg.batch_size > 0 ? e->cfg.batch_size : 32);
    for (size_t off = 0; off < n && st == EK_OK; off += chunk) {
        if (off && (st = ek_cmd_ctx_check(cx, "embed")) != EK_OK) break;
        size_t cnt = n - off < chunk ? n - off : chunk;
        o.index_base = opts->index_base + off;
        st = ek_embed(cx->ek, r->m, texts + off, lens ? lens + off : NULL, cnt, &o, out + off * (size_t)dim,
                      token_counts ? token_counts + off : NULL);
        if (ek_ctx_last_timings(cx->ek, &t) == EK_OK) add_stages(&sum, &t);
        if (st != EK_OK) ek_eng_lib_fail(cx, st);
    }
    if (stages) *stages = sum;
    if (st == EK_OK) observe_stages(&e->stages, &sum);
    return st;
}

/* ---- handlers ------------------------------------------------------------------ */

static ek_status h_embed(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_embed_args *a = &cmd->u.embed;
    ek_status st = ek_eng_need_ctx(cx);
    if (st) return st;
    model_ref *r = ek_eng_acquire(e, cmd->model);
    if (!r) return ek_eng_not_loaded(cx, cmd->model);
    if ((st = ek_eng_fault(e, cmd, cx)) != EK_OK) goto out;
    ek_embed_options o;
    ek_eng_embed_defaults(e, a->opts, &o);
    int dim = ek_embed_dim(r->m, &o);
    if (dim <= 0) {
        st = ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "options give no output dimension");
        goto out;
    }
    if (a->n * (size_t)dim > a->out_cap) {
        st = ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "out: capacity %zu floats, %zu x %d needed",
                         a->out_cap, a->n, dim);
        goto out;
    }
    st = ek_eng_embed_chunks(e, r, cx, a->texts, a->lens, a->n, &o, a->out, dim, a->token_counts, &a->stages);
    if (st == EK_OK) a->dim = dim;
out:
    ek_eng_unref(e, r);
    return st;
}

static ek_status h_tokenize(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_status st = ek_eng_need_ctx(cx);
    if (st) return st;
    if (!cmd->u.tokenize.enc) return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "enc: NULL");
    model_ref *r = ek_eng_acquire(e, cmd->model);
    if (!r) return ek_eng_not_loaded(cx, cmd->model);
    st = ek_tokenize(cx->ek, r->m, cmd->u.tokenize.text, cmd->u.tokenize.len, NULL, 0,
                     cmd->u.tokenize.opts, cmd->u.tokenize.enc);
    if (st) ek_eng_lib_fail(cx, st);
    ek_eng_unref(e, r);
    return st;
}

static ek_status h_similarity(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_similarity_args *s = &cmd->u.similarity;
    ek_status st = ek_eng_need_ctx(cx);
    if (st) return st;
    model_ref *r = ek_eng_acquire(e, cmd->model);
    if (!r) return ek_eng_not_loaded(cx, cmd->model);
    if ((st = ek_eng_fault(e, cmd, cx)) != EK_OK) goto out;
    ek_embed_options o;
    ek_eng_embed_defaults(e, s->opts, &o);
    int dim = ek_embed_dim(r->m, &o);
    float *v = malloc(2 * (size_t)dim * sizeof *v);
    if (!v) {
        st = ek_cmd_fail(cx, "handler", EK_ERR_NOMEM, "out of memory");
        goto out;
    }
    const char *texts[] = {s->a, s->b};
    size_t lens[] = {s->a_len, s->b_len};
    st = ek_eng_embed_chunks(e, r, cx, texts, lens, 2, &o, v, dim, NULL, NULL);
    if (st == EK_OK) {
        double dot = 0, na = 0, nb = 0;
        for (int i = 0; i < dim; i++) {
            dot += (double)v[i] * v[dim + i];
            na += (double)v[i] * v[i];
            nb += (double)v[dim + i] * v[dim + i];
        }
        s->cosine = na > 0 && nb > 0 ? dot / sqrt(na * nb) : 0;
    }
    free(v);
out:
    ek_eng_unref(e, r);
    return st;
}

/* LOAD (name must be new) and SWAP (name must exist): load first, outside
 * the lock, then publish; a failed load changes nothing. */
static ek_status h_load(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_model_args *a = &cmd->u.load;
    int swap = cmd->type == EK_CMD_SWAP_MODEL;
    ek_status st = ek_eng_need_ctx(cx);
    if (st) return st;
    if (!cmd->model || !a->ref)
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "%s needs a model name and a ref",
                           ek_cmd_type_name(cmd->type));
    char dir[4096];
    const char *home = a->home ? a->home : e->cfg.registry_home[0] ? e->cfg.registry_home : NULL;
    ek_sig_policy verify = EK_SIG_OFF;
    if (ek_sig_policy_parse(e->cfg.registry_verify_on_load, &verify)) verify = EK_SIG_OFF;
    /* Resolved without verification: the load below verifies the version
     * it pins (once; the files are re-hashed for it). */
    if ((st = ek_registry_resolve(cx->ek, home, a->ref, dir, sizeof dir)) != EK_OK)
        return ek_eng_lib_fail(cx, st);
    ek_load_options lo;
    ek_load_options_init(&lo);
    int dt = ek_compute_dtype_from_name(e->cfg.dtype);
    lo.dtype = dt < 0 ? EK_DTYPE_F32 : (ek_compute_dtype)dt;
    /* A registry version (HOME/models/<name>/<version>) loads as the pool
     * loads it (ek_registry_load_model_verified, pinned to the version just
     * resolved): through the registry's packed-weight cache HOME/packed
     * under the key its recorded file digests give, so every process and
     * pool serving that version shares one mapped copy (docs/REGISTRY.md,
     * "Memory").  A plain directory is packed privately, as before. */
    char reg_home[1024], pinned[600];
    if (home) snprintf(reg_home, sizeof reg_home, "%s", home);
    else if (ek_registry_default_home(cx->ek, reg_home, sizeof reg_home) != EK_OK) reg_home[0] = '\0';
    size_t hl = strlen(reg_home);
    while (hl > 1 && reg_home[hl - 1] == '/') reg_home[--hl] = '\0';
    pinned[0] = '\0';
    if (hl && !strncmp(dir, reg_home, hl) && !strncmp(dir + hl, "/models/", 8)) {
        const char *nm = dir + hl + 8, *slash = strchr(nm, '/');
        if (slash && !strchr(slash + 1, '/'))
            snprintf(pinned, sizeof pinned, "%.*s@%s", (int)(slash - nm), nm, slash + 1);
    }
    /* A reference that named a registry version outside that layout
     * (never expected) is verified by resolving it again. */
    if (!pinned[0] && strcmp(dir, a->ref) &&
        (st = ek_registry_resolve_opts(cx->ek, home, a->ref, verify, dir, sizeof dir)) != EK_OK)
        return ek_eng_lib_fail(cx, st);
    model_ref *r = calloc(1, sizeof *r);
    if (!r) return ek_cmd_fail(cx, "handler", EK_ERR_NOMEM, "out of memory");
    if (pinned[0]) {
        ek_registry *reg = NULL;
        if ((st = ek_registry_open(cx->ek, reg_home, NULL, &reg)) == EK_OK)
            st = ek_registry_load_model_verified(cx->ek, reg, pinned, verify, &lo, &r->m);
        ek_registry_close(reg);
    } else {
        st = ek_model_load_opts(cx->ek, dir, &lo, &r->m);
    }
    if (st != EK_OK) {
        free(r);
        return ek_eng_lib_fail(cx, st);
    }
    r->refs = 1;
    r->dtype = (int)lo.dtype;
    snprintf(r->name, sizeof r->name, "%s", cmd->model);
    if (a->version) snprintf(r->version, sizeof r->version, "%s", a->version);
    else {
        /* Registry versions live in models/<name>/<version>: the last path
         * component is the version; for a plain directory it is its name. */
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') dir[--n] = '\0';
        const char *slash = strrchr(dir, '/');
        const char *v = slash ? slash + 1 : dir;
        size_t vl = strlen(v) < sizeof r->version - 1 ? strlen(v) : sizeof r->version - 1;
        memcpy(r->version, v, vl);
        r->version[vl] = '\0';
    }
    weights_digest(dir, r->digest, sizeof r->digest);

    model_ref *old = NULL;
    pthread_mutex_lock(&e->mu);
    int i = -1;
    for (int k = 0; k < MAX_MODELS && i < 0; k++)
        if (e->models[k] && !strcmp(e->models[k]->name, cmd->model)) i = k;
    if (swap ? i < 0 : i >= 0) {
        pthread_mutex_unlock(&e->mu);
        ek_model_free(r->m);
        free(r);
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, swap ? "model %s is not loaded (load it first)"
                                                                   : "model %s is already loaded (swap it)",
                           cmd->model);
    }
    if (i < 0)
        for (int k = 0; k < MAX_MODELS && i < 0; k++)
            if (!e->models[k]) i = k;
    if (i < 0) {
        pthread_mutex_unlock(&e->mu);
        ek_model_free(r->m);
        free(r);
        return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "too many models loaded (%d)", MAX_MODELS);
    }
    old = e->models[i];
    e->models[i] = r;
    pthread_mutex_unlock(&e->mu);
    if (old) ek_eng_unref(e, old); /* freed once running commands are done with it */
    return EK_OK;
}

static ek_status h_unload(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    pthread_mutex_lock(&e->mu);
    int i = cmd->model ? find_slot(e, cmd->model) : -1;
    model_ref *old = i >= 0 ? e->models[i] : NULL;
    if (old) e->models[i] = NULL;
    pthread_mutex_unlock(&e->mu);
    if (!old) return ek_eng_not_loaded(cx, cmd->model);
    ek_eng_unref(e, old);
    return EK_OK;
}

static ek_status h_clear(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)cx;
    ek_engine *e = state;
    cmd->u.cache.count = e->cache ? ek_cache_clear(e->cache) : 0;
    return EK_OK;
}

/* Preloading embeds the texts through the pipeline itself, so they pass the
 * same checks and land in the cache exactly as a real command would. */
static ek_status h_preload(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    ek_engine *e = state;
    ek_cache_args *a = &cmd->u.cache;
    model_ref *r = ek_eng_acquire(e, cmd->model);
    if (!r) return ek_eng_not_loaded(cx, cmd->model);
    ek_embed_options o;
    ek_eng_embed_defaults(e, a->opts, &o);
    size_t dim = (size_t)ek_embed_dim(r->m, &o);
    ek_eng_unref(e, r);
    float *out = malloc(a->n * dim * sizeof *out);
    if (!out) return ek_cmd_fail(cx, "handler", EK_ERR_NOMEM, "out of memory");
    ek_cmd sub;
    ek_cmd_embed_batch(&sub, cmd->model, a->texts, a->lens, a->n, out, a->n * dim);
    sub.u.embed.opts = a->opts;
    ek_cmd_ctx scx = *cx;
    scx.request_id = 0;
    ek_cmd_ctx_clear_error(&scx);
    ek_status st = ek_pipeline_execute(e->p, &sub, &scx);
    free(out);
    if (st != EK_OK) return ek_cmd_fail(cx, scx.origin, st, "%s", scx.message);
    a->count = sub.u.embed.cache_misses;
    return EK_OK;
}

/* ---- construction ------------------------------------------------------------------ */

void ek_engine_free(ek_engine *e) {
    if (!e) return;
    ek_pipeline_free(e->p);
    for (int i = 0; i < MAX_MODELS; i++)
        if (e->models[i]) ek_eng_unref(e, e->models[i]);
    ek_cache_free(e->cache);
    ek_eng_health_metrics_free(e->health);
    ek_bulkhead_free(e->bh);
    ek_breaker_free(e->br);
    ek_ratelimit_free(e->rl);
    ek_telemetry_mw_free(e->tm);
    ek_logger_free(e->log);
    ek_metrics_free(e->metrics);
    pthread_mutex_destroy(&e->mu);
    free(e);
}

/* embedkit_stage_duration_seconds{stage}: one observation per stage for
 * every command that ran ek_embed (cache hits run none).  The four label
 * values are fixed, so the series are resolved once here. */
static ek_status stage_metrics(ek_engine *e) {
    static const double buckets[] = {0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025,
                                     0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
    static const char *const label[] = {"stage"};
    ek_metric_family *f = NULL;
    ek_status st = ek_metrics_add(e->metrics, EK_HISTOGRAM, "embedkit_stage_duration_seconds",
                                  "Time of the embedding stages (tokenize, forward, pool, normalize) per command.",
                                  1, label, 4, buckets, (int)(sizeof buckets / sizeof *buckets), &f);
    if (st) return st;
    const char *const v[][1] = {{"tokenize"}, {"forward"}, {"pool"}, {"normalize"}};
    e->stages.tokenize = ek_metric_series(f, v[0]);
    e->stages.forward = ek_metric_series(f, v[1]);
    e->stages.pool = ek_metric_series(f, v[2]);
    e->stages.normalize = ek_metric_series(f, v[3]);
    return e->stages.tokenize && e->stages.forward && e->stages.pool && e->stages.normalize ? EK_OK : EK_ERR_NOMEM;
}

#define TRY(x) do { if ((st = (x)) != EK_OK) goto fail; } while (0)

ek_status ek_engine_new_ext(ek_ctx *ctx, const ek_engine_options *opts, ek_engine_extend_fn extend,
                            void *arg, ek_engine **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    ek_engine *e = calloc(1, sizeof *e);
    if (!e) return EK_ERR_NOMEM;
    pthread_mutex_init(&e->mu, NULL);
    if (opts) e->opts = *opts;
    if (opts && opts->config) e->cfg = *opts->config;
    else ek_config_defaults(&e->cfg);
    e->opts.config = &e->cfg;
    e->clock = opts && opts->clock ? *opts->clock : ek_clock_system();
    const ek_config *c = &e->cfg;
    ek_model_resolver res = {ek_eng_identify, e};
    ek_status st = EK_OK;
    ek_middleware m;

    TRY(ek_pipeline_new(&e->clock, &e->p));
    if (c->metrics_enabled) {
        TRY(ek_metrics_new(&e->metrics));
        TRY(stage_metrics(e));
    }
    TRY(ek_eng_health_metrics_new(e->metrics, &e->health));
    if (opts && opts->log) {
        int lvl = ek_log_level_from_name(c->log_level);
        ek_log_format fmt = !strcmp(c->log_format, "json") ? EK_LOG_JSON
                            : !strcmp(c->log_format, "text") ? EK_LOG_TEXT : EK_LOG_AUTO;
        TRY(ek_logger_new(opts->log, lvl < 0 ? EK_LOG_INFO : (ek_log_level)lvl, fmt, &e->clock, &e->log));
    }
    if (e->metrics || e->log) {
        TRY(ek_telemetry_mw_new(e->metrics, e->log, &e->clock, &e->tm));
        m = ek_telemetry_middleware(e->tm);
        TRY(ek_pipeline_use(e->p, &m));
    }
    ek_validate_config_init(&e->vc);
    e->vc.max_text_bytes = (size_t)c->validation_max_text_bytes;
    e->vc.max_batch = (size_t)c->validation_max_batch;
    e->vc.allow_empty = c->validation_allow_empty;
    e->vc.allow_nul = c->validation_allow_nul;
    m = ek_validate_middleware(&e->vc);
    TRY(ek_pipeline_use(e->p, &m));
    if (c->ratelimit_rate > 0) {
        ek_ratelimit_config rc = {c->ratelimit_rate, c->ratelimit_burst > 0 ? c->ratelimit_burst : c->ratelimit_rate,
                                  c->ratelimit_per_caller, 0};
        TRY(ek_ratelimit_new(&rc, &e->clock, e->metrics, &e->rl));
        m = ek_ratelimit_middleware(e->rl);
        TRY(ek_pipeline_use(e->p, &m));
    }
    e->dl.timeout_ns = (int64_t)(c->deadline_timeout_s * 1e9);
    e->dl.clock = &e->clock;
    m = ek_deadline_middleware(&e->dl);
    TRY(ek_pipeline_use(e->p, &m));
    if (c->retry_max_attempts > 1) {
        ek_retry_config_init(&e->rt, &e->clock);
        e->rt.max_attempts = c->retry_max_attempts;
        e->rt.base_backoff_ns = (int64_t)(c->retry_base_backoff_s * 1e9);
        e->rt.max_backoff_ns = (int64_t)(c->retry_max_backoff_s * 1e9);
        e->rt.jitter = c->retry_jitter;
        m = ek_retry_middleware(&e->rt);
        TRY(ek_pipeline_use(e->p, &m));
    }
    if (c->breaker_enabled) {
        ek_breaker_config bc;
        ek_breaker_config_init(&bc);
        bc.failure_rate_threshold = c->breaker_failure_rate;
        bc.slow_call_rate_threshold = c->breaker_slow_call_rate;
        bc.slow_call_duration_ns = (int64_t)(c->breaker_slow_call_s * 1e9);
        bc.wait_open_ns = (int64_t)(c->breaker_wait_open_s * 1e9);
        bc.half_open_calls = c->breaker_half_open_calls;
        bc.minimum_calls = c->breaker_minimum_calls;
        bc.window_size = c->breaker_window_size;
        TRY(ek_breaker_new(&bc, &e->clock, &res, e->metrics, &e->br));
        m = ek_breaker_middleware(e->br);
        TRY(ek_pipeline_use(e->p, &m));
    }
    if (c->bulkhead_max_concurrent > 0) {
        TRY(ek_bulkhead_new(c->bulkhead_max_concurrent, (int64_t)(c->bulkhead_max_wait_s * 1e9), &e->bh));
        m = ek_bulkhead_middleware(e->bh);
        TRY(ek_pipeline_use(e->p, &m));
    }
    if (c->cache_max_bytes > 0) {
        TRY(ek_cache_new((size_t)c->cache_max_bytes, &res, e->metrics, &e->cache));
        m = ek_cache_middleware(e->cache);
        TRY(ek_pipeline_use(e->p, &m));
    }
    TRY(ek_pipeline_handle(e->p, EK_CMD_EMBED_TEXT, h_embed, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_EMBED_BATCH, h_embed, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_TOKENIZE, h_tokenize, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_SIMILARITY, h_similarity, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_LOAD_MODEL, h_load, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_SWAP_MODEL, h_load, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_UNLOAD_MODEL, h_unload, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_CLEAR_CACHE, h_clear, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_PRELOAD_CACHE, h_preload, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_SEARCH, ek_eng_h_search, e));
    TRY(ek_pipeline_handle(e->p, EK_CMD_HEALTH, ek_eng_h_health, e));
    if (extend) TRY(extend(arg, e->p));
    TRY(ek_pipeline_freeze(e->p));

    /* The configured default model is loaded under the name "default". */
    if (c->model[0]) {
        if (!ctx) { st = EK_ERR_INVALID_ARG; goto fail; }
        ek_cmd cmd;
        ek_cmd_ctx cx;
        ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "default");
        cmd.u.load.ref = c->model;
        ek_cmd_ctx_init(&cx, ctx);
        TRY(ek_pipeline_execute(e->p, &cmd, &cx));
    }
    *out = e;
    return EK_OK;
fail:
    ek_engine_free(e);
    return st;
}

ek_status ek_engine_new(ek_ctx *ctx, const ek_engine_options *opts, ek_engine **out) {
    return ek_engine_new_ext(ctx, opts, NULL, NULL, out);
}

const ek_pipeline *ek_engine_pipeline(const ek_engine *e) { return e->p; }
ek_metrics *ek_engine_metrics(ek_engine *e) { return e->metrics; }
ek_cache *ek_engine_cache(ek_engine *e) { return e->cache; }
ek_breaker *ek_engine_breaker(ek_engine *e) { return e->br; }

ek_status ek_engine_execute(ek_engine *e, ek_cmd *cmd, ek_cmd_ctx *cx) {
    return ek_pipeline_execute(e->p, cmd, cx);
}

int ek_engine_embed_dim(ek_engine *e, const char *model) {
    model_ref *r = e ? ek_eng_acquire(e, model) : NULL;
    if (!r) return -1;
    ek_embed_options o;
    ek_eng_embed_defaults(e, NULL, &o);
    int dim = ek_embed_dim(r->m, &o);
    ek_eng_unref(e, r);
    return dim;
}

/* ---- convenience calls ------------------------------------------------------------ */

static ek_status run_embed(ek_engine *e, ek_ctx *ctx, ek_cmd *cmd, int *dim) {
    if (!e || !ctx) return EK_ERR_INVALID_ARG;
    ek_cmd_ctx cx;
    ek_cmd_ctx_init(&cx, ctx);
    ek_status st = ek_pipeline_execute(e->p, cmd, &cx);
    if (dim) *dim = st == EK_OK ? cmd->u.embed.dim : 0;
    return st;
}

ek_status ek_embed_text(ek_engine *e, ek_ctx *ctx, const char *model, const char *text, size_t len, float *out,
                        size_t out_cap, int *dim) {
    ek_cmd cmd;
    ek_cmd_embed_text(&cmd, model, text, len, out, out_cap);
    return run_embed(e, ctx, &cmd, dim);
}

ek_status ek_embed_texts(ek_engine *e, ek_ctx *ctx, const char *model, const char *const *texts, const size_t *lens,
                         size_t n, float *out, size_t out_cap, int *dim) {
    ek_cmd cmd;
    ek_cmd_embed_batch(&cmd, model, texts, lens, n, out, out_cap);
    return run_embed(e, ctx, &cmd, dim);
}
