/* pipeline/pipeline.c — the pipeline core: registration, freezing into one
 * chain per command type, and execution.
 *
 * Why chains are precomputed: once frozen, executing a command is an index
 * into chains[type] and one indirect call per middleware — no sorting, no
 * scope test, no lock and no allocation on the hot path.  The `next` record
 * of each step lives on the stack of the step that calls the middleware, so
 * the pipeline can enforce "next at most once" (unless the middleware
 * declares EK_MW_REENTERS) and "next at least once or fail" (unless it
 * declares EK_MW_SHORT_CIRCUITS) without any shared state. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "runtime/ctx.h"

#define EK_PIPE_MAX_MW 32

typedef struct mw_entry {
    char name[32];
    ek_middleware mw;
    unsigned order;                /* insertion order, for ties */
} mw_entry;

typedef struct chain {
    const mw_entry *mw[EK_PIPE_MAX_MW];
    unsigned n;
} chain;

struct ek_pipeline {
    ek_clock clock;
    int frozen;
    mw_entry mws[EK_PIPE_MAX_MW];
    unsigned n_mw;
    ek_handler_fn handler[EK_CMD_COUNT];
    void *handler_state[EK_CMD_COUNT];
    chain chains[EK_CMD_COUNT];
    uint64_t next_request_id;      /* atomic */
};

struct ek_next {
    const ek_pipeline *p;
    const mw_entry *self;
    unsigned pos;                  /* chain index of the step next runs */
    unsigned calls;
    int type;
};

/* ---- status names ----------------------------------------------------------- */

const char *ek_pipe_status_name(int s) {
    switch (s) {
    case EK_ERR_CANCELLED: return "EK_ERR_CANCELLED";
    case EK_ERR_DEADLINE: return "EK_ERR_DEADLINE";
    case EK_ERR_RATE_LIMITED: return "EK_ERR_RATE_LIMITED";
    case EK_ERR_CIRCUIT_OPEN: return "EK_ERR_CIRCUIT_OPEN";
    case EK_ERR_BULKHEAD_FULL: return "EK_ERR_BULKHEAD_FULL";
    case EK_ERR_NO_HANDLER: return "EK_ERR_NO_HANDLER";
    case EK_ERR_PIPELINE: return "EK_ERR_PIPELINE";
    case EK_ERR_UNAVAILABLE: return "EK_ERR_UNAVAILABLE";
    default: return ek_status_name((ek_status)s);
    }
}

int ek_status_retryable(int s) {
    return s == EK_ERR_IO || s == EK_ERR_UNAVAILABLE || s == EK_ERR_BULKHEAD_FULL;
}

const char *ek_cmd_type_name(int t) {
    static const char *names[EK_CMD_COUNT] = {
        "embed_text", "embed_batch", "tokenize", "similarity", "search", "load_model",
        "unload_model", "swap_model", "clear_cache", "preload_cache", "health"};
    return (unsigned)t < EK_CMD_COUNT ? names[t] : "unknown";
}

/* ---- commands ------------------------------------------------------------------ */

void ek_cmd_init(ek_cmd *cmd, ek_cmd_type type, const char *model) {
    memset(cmd, 0, sizeof *cmd);
    cmd->type = type;
    cmd->model = model;
}

void ek_cmd_embed_text(ek_cmd *cmd, const char *model, const char *text, size_t len,
                       float *out, size_t out_cap) {
    ek_cmd_init(cmd, EK_CMD_EMBED_TEXT, model);
    ek_embed_args *e = &cmd->u.embed;
    e->one_text = text;
    e->one_len = len;
    e->texts = &e->one_text;
    e->lens = &e->one_len;
    e->n = 1;
    e->out = out;
    e->out_cap = out_cap;
}

void ek_cmd_embed_batch(ek_cmd *cmd, const char *model, const char *const *texts,
                        const size_t *lens, size_t n, float *out, size_t out_cap) {
    ek_cmd_init(cmd, EK_CMD_EMBED_BATCH, model);
    ek_embed_args *e = &cmd->u.embed;
    e->texts = texts;
    e->lens = lens;
    e->n = n;
    e->out = out;
    e->out_cap = out_cap;
}

void ek_cmd_search_texts(ek_cmd *cmd, const char *model, const struct ek_index *index,
                         const char *const *texts, const size_t *lens, size_t n, size_t k,
                         struct ek_hit *hits, size_t hits_cap) {
    ek_cmd_init(cmd, EK_CMD_SEARCH, model);
    ek_search_args *s = &cmd->u.search;
    s->index = index;
    s->texts = texts;
    s->lens = lens;
    s->n = n;
    s->k = k;
    s->hits = hits;
    s->hits_cap = hits_cap;
}

void ek_cmd_search_vectors(ek_cmd *cmd, const struct ek_index *index, const float *vectors,
                           size_t n, size_t dim, size_t k, struct ek_hit *hits, size_t hits_cap) {
    ek_cmd_search_texts(cmd, NULL, index, NULL, NULL, n, k, hits, hits_cap);
    cmd->u.search.vectors = vectors;
    cmd->u.search.dim = dim;
}

size_t ek_cmd_text_count(const ek_cmd *cmd) {
    switch (cmd->type) {
    case EK_CMD_EMBED_TEXT:
    case EK_CMD_EMBED_BATCH: return cmd->u.embed.texts ? cmd->u.embed.n : 0;
    case EK_CMD_TOKENIZE: return cmd->u.tokenize.text ? 1 : 0;
    case EK_CMD_SIMILARITY: return 2;
    case EK_CMD_SEARCH: return cmd->u.search.texts ? cmd->u.search.n : 0;
    case EK_CMD_PRELOAD_CACHE: return cmd->u.cache.texts ? cmd->u.cache.n : 0;
    default: return 0;
    }
}

static const char *nth(const char *const *texts, const size_t *lens, size_t i, size_t *len) {
    const char *t = texts[i];
    *len = lens ? lens[i] : (t ? strlen(t) : 0);
    return t;
}

const char *ek_cmd_text_at(const ek_cmd *cmd, size_t i, size_t *len) {
    *len = 0;
    if (i >= ek_cmd_text_count(cmd)) return NULL;
    switch (cmd->type) {
    case EK_CMD_EMBED_TEXT:
    case EK_CMD_EMBED_BATCH: return nth(cmd->u.embed.texts, cmd->u.embed.lens, i, len);
    case EK_CMD_TOKENIZE: *len = cmd->u.tokenize.len; return cmd->u.tokenize.text;
    case EK_CMD_SIMILARITY: {
        const ek_similarity_args *s = &cmd->u.similarity;
        *len = i ? s->b_len : s->a_len;
        return i ? s->b : s->a;
    }
    case EK_CMD_SEARCH: return nth(cmd->u.search.texts, cmd->u.search.lens, i, len);
    case EK_CMD_PRELOAD_CACHE: return nth(cmd->u.cache.texts, cmd->u.cache.lens, i, len);
    default: return NULL;
    }
}

/* ---- context ---------------------------------------------------------------------- */

void ek_cmd_ctx_init(ek_cmd_ctx *cx, ek_ctx *ek) {
    memset(cx, 0, sizeof *cx);
    cx->ek = ek;
}

void ek_cmd_ctx_cancel(ek_cmd_ctx *cx) { __atomic_store_n(&cx->cancelled, 1, __ATOMIC_RELEASE); }

int ek_cmd_ctx_cancelled(const ek_cmd_ctx *cx) {
    return __atomic_load_n(&cx->cancelled, __ATOMIC_ACQUIRE);
}

ek_status ek_cmd_fail(ek_cmd_ctx *cx, const char *origin, int status, const char *fmt, ...) {
    if (cx->status == EK_OK && status != EK_OK) {
        cx->status = status;
        snprintf(cx->origin, sizeof cx->origin, "%s", origin ? origin : "");
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(cx->message, sizeof cx->message, fmt, ap);
        va_end(ap);
    }
    return (ek_status)status;
}

void ek_cmd_ctx_clear_error(ek_cmd_ctx *cx) {
    cx->status = EK_OK;
    cx->origin[0] = '\0';
    cx->message[0] = '\0';
    cx->retry_after_ns = 0;
}

ek_status ek_cmd_ctx_check(ek_cmd_ctx *cx, const char *origin) {
    if (ek_cmd_ctx_cancelled(cx))
        return ek_cmd_fail(cx, origin, EK_ERR_CANCELLED, "cancelled by the caller");
    if (cx->deadline_ns && cx->pipeline) {
        const ek_clock *c = &cx->pipeline->clock;
        int64_t now = c->now_ns(c->arg);
        if (now >= cx->deadline_ns)
            return ek_cmd_fail(cx, origin, EK_ERR_DEADLINE, "deadline exceeded by %.3f ms",
                               (double)(now - cx->deadline_ns) / 1e6);
    }
    return EK_OK;
}

ek_status ek_cmd_ctx_set(ek_cmd_ctx *cx, const ek_cmd_value *v) {
    if (!v || !v->key) return EK_ERR_INVALID_ARG;
    for (int i = 0; i < cx->n_values; i++)
        if (!strcmp(cx->values[i].key, v->key)) {
            cx->values[i] = *v;
            return EK_OK;
        }
    if (cx->n_values >= EK_CMD_VALUES)
        return ek_cmd_fail(cx, "context", EK_ERR_INVALID_ARG,
                           "values: no room for \"%s\" (at most %d)", v->key, EK_CMD_VALUES);
    cx->values[cx->n_values++] = *v;
    return EK_OK;
}

ek_status ek_cmd_ctx_get(const ek_cmd_ctx *cx, const char *key, ek_value_type type,
                         ek_cmd_value *out) {
    for (int i = 0; i < cx->n_values; i++)
        if (!strcmp(cx->values[i].key, key)) {
            if (cx->values[i].type != type) return EK_ERR_INVALID_ARG;
            if (out) *out = cx->values[i];
            return EK_OK;
        }
    return EK_ERR_INVALID_ARG;
}

/* ---- building -------------------------------------------------------------------------- */

ek_status ek_pipeline_new(const ek_clock *clock, ek_pipeline **out) {
    if (!out) return EK_ERR_INVALID_ARG;
    ek_pipeline *p = calloc(1, sizeof *p);
    if (!p) return EK_ERR_NOMEM;
    p->clock = clock ? *clock : ek_clock_system();
    *out = p;
    return EK_OK;
}

void ek_pipeline_free(ek_pipeline *p) {
    if (!p) return;
    for (unsigned i = 0; i < p->n_mw; i++)
        if (p->mws[i].mw.free_state) p->mws[i].mw.free_state(p->mws[i].mw.state);
    free(p);
}

ek_status ek_pipeline_use(ek_pipeline *p, const ek_middleware *mw) {
    if (!p || !mw) return EK_ERR_INVALID_ARG;
    ek_status st = EK_OK;
    if (p->frozen) st = (ek_status)EK_ERR_PIPELINE;
    else if (!mw->fn || (unsigned)mw->cls > EK_MW_OBSERVABILITY) st = EK_ERR_INVALID_ARG;
    else if (p->n_mw >= EK_PIPE_MAX_MW) st = EK_ERR_INVALID_ARG;
    if (st != EK_OK) {
        /* Ownership was handed over: a refused state is freed, never leaked. */
        if (mw->free_state) mw->free_state(mw->state);
        return st;
    }
    mw_entry *e = &p->mws[p->n_mw];
    e->mw = *mw;
    snprintf(e->name, sizeof e->name, "%s", mw->name ? mw->name : "anonymous");
    e->mw.name = e->name;
    e->order = p->n_mw++;
    return EK_OK;
}

ek_status ek_pipeline_handle(ek_pipeline *p, ek_cmd_type type, ek_handler_fn fn, void *state) {
    if (!p || (unsigned)type >= EK_CMD_COUNT || !fn) return EK_ERR_INVALID_ARG;
    if (p->frozen) return (ek_status)EK_ERR_PIPELINE;
    if (p->handler[type]) return EK_ERR_INVALID_ARG; /* one handler per type */
    p->handler[type] = fn;
    p->handler_state[type] = state;
    return EK_OK;
}

ek_status ek_pipeline_freeze(ek_pipeline *p) {
    if (!p) return EK_ERR_INVALID_ARG;
    if (p->frozen) return EK_OK;
    /* Stable order by (class, insertion): insertion sort over at most 32. */
    const mw_entry *sorted[EK_PIPE_MAX_MW];
    for (unsigned i = 0; i < p->n_mw; i++) {
        unsigned j = i;
        while (j > 0 && sorted[j - 1]->mw.cls > p->mws[i].mw.cls) {
            sorted[j] = sorted[j - 1];
            j--;
        }
        sorted[j] = &p->mws[i];
    }
    for (int t = 0; t < EK_CMD_COUNT; t++) {
        chain *c = &p->chains[t];
        c->n = 0;
        for (unsigned i = 0; i < p->n_mw; i++)
            if (sorted[i]->mw.scope & EK_SCOPE(t)) c->mw[c->n++] = sorted[i];
    }
    p->frozen = 1;
    return EK_OK;
}

const ek_clock *ek_pipeline_clock(const ek_pipeline *p) { return &p->clock; }

void ek_pipeline_describe(const ek_pipeline *p, ek_cmd_type type, char *buf, size_t cap) {
    if (!cap) return;
    buf[0] = '\0';
    if (!p || (unsigned)type >= EK_CMD_COUNT) return;
    size_t at = 0;
    const chain *c = &p->chains[type];
    for (unsigned i = 0; i < c->n && at < cap; i++) {
        int n = snprintf(buf + at, cap - at, "%s%s", i ? " " : "", c->mw[i]->name);
        if (n < 0) break;
        at += (size_t)n;
    }
}

/* ---- execution --------------------------------------------------------------------------- */

static ek_status run_step(const ek_pipeline *p, int type, unsigned pos, ek_cmd *cmd, ek_cmd_ctx *cx) {
    const chain *c = &p->chains[type];
    if (pos == c->n) {
        if (!p->handler[type])
            return ek_cmd_fail(cx, "pipeline", EK_ERR_NO_HANDLER, "no handler for command %s",
                               ek_cmd_type_name(type));
        return p->handler[type](p->handler_state[type], cmd, cx);
    }
    ek_next nx = {p, c->mw[pos], pos + 1, 0, type};
    const ek_middleware *m = &c->mw[pos]->mw;
    ek_status st = m->fn(m->state, cmd, cx, &nx);
    if (st == EK_OK && nx.calls == 0 && !(m->flags & EK_MW_SHORT_CIRCUITS))
        return ek_cmd_fail(cx, "pipeline", EK_ERR_PIPELINE,
                           "middleware %s returned without calling next (it does not "
                           "declare EK_MW_SHORT_CIRCUITS)", m->name);
    if (st != EK_OK && cx->status == EK_OK)
        ek_cmd_fail(cx, m->name, st, "%s failed with %s", m->name, ek_pipe_status_name(st));
    return st;
}

ek_status ek_next_run(ek_next *nx, ek_cmd *cmd, ek_cmd_ctx *cx) {
    if (nx->calls && !(nx->self->mw.flags & EK_MW_REENTERS))
        return ek_cmd_fail(cx, "pipeline", EK_ERR_PIPELINE,
                           "middleware %s called next twice (it does not declare "
                           "EK_MW_REENTERS)", nx->self->name);
    nx->calls++;
    return run_step(nx->p, nx->type, nx->pos, cmd, cx);
}

ek_status ek_pipeline_execute(const ek_pipeline *p, ek_cmd *cmd, ek_cmd_ctx *cx) {
    if (!p || !cmd || !cx) return EK_ERR_INVALID_ARG;
    if (!p->frozen)
        return ek_cmd_fail(cx, "pipeline", EK_ERR_PIPELINE, "pipeline not frozen (call ek_pipeline_freeze)");
    if ((unsigned)cmd->type >= EK_CMD_COUNT)
        return ek_cmd_fail(cx, "pipeline", EK_ERR_INVALID_ARG, "command type %d is not a command", (int)cmd->type);
    cx->pipeline = p;
    if (!cx->request_id)
        cx->request_id = __atomic_add_fetch((uint64_t *)&p->next_request_id, 1, __ATOMIC_RELAXED);
    ek_status st = run_step(p, (int)cmd->type, 0, cmd, cx);
    if (st != EK_OK && cx->ek) {
        /* The library convention: the message is also the ctx's last error. */
        ek_err e;
        e.status = st;
        snprintf(e.msg, sizeof e.msg, "%s: %s", cx->origin, cx->message);
        ek_ctx_fail(cx->ek, &e);
    }
    return st;
}
