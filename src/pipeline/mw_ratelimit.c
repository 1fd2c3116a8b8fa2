/* pipeline/mw_ratelimit.c — token-bucket rate limiting, one global bucket or
 * one per caller.  A command costs its characters (code points) when it
 * carries one text, its item count when it carries a batch.
 *
 * Per-caller buckets live in a fixed table (bounded memory and bounded
 * metric cardinality): a new caller that finds no free slot among its probe
 * sequence takes over the least recently seen one. */
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"

#define PROBES 16

typedef struct bucket {
    char caller[64];
    int used;
    double tokens;
    int64_t last_ns;
} bucket;

struct ek_ratelimit {
    ek_ratelimit_config cfg;
    ek_clock clock;
    pthread_mutex_t mu;
    bucket global;
    bucket *table;
    size_t n_table;
    ek_series *rejected;
    ek_series *allowed;
};

static size_t count_code_points(const char *t, size_t len) {
    size_t n = 0;
    for (size_t i = 0; i < len; i++) n += ((unsigned char)t[i] & 0xC0) != 0x80;
    return n;
}

double ek_ratelimit_cost(const ek_cmd *cmd) {
    switch (cmd->type) {
    case EK_CMD_EMBED_BATCH: return (double)cmd->u.embed.n;
    case EK_CMD_PRELOAD_CACHE: return (double)cmd->u.cache.n;
    case EK_CMD_SEARCH:
        /* Query texts cost what embedding them costs; vectors, one each. */
        if (!cmd->u.search.texts) return (double)cmd->u.search.n;
        /* fall through */
    case EK_CMD_EMBED_TEXT:
    case EK_CMD_TOKENIZE:
    case EK_CMD_SIMILARITY: {
        double c = 0;
        size_t n = ek_cmd_text_count(cmd);
        for (size_t i = 0; i < n; i++) {
            size_t len;
            const char *t = ek_cmd_text_at(cmd, i, &len);
            if (t) c += (double)count_code_points(t, len);
        }
        return c;
    }
    default: return 0;
    }
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void refill(const ek_ratelimit *r, bucket *b, int64_t now) {
    if (now > b->last_ns) {
        b->tokens += (double)(now - b->last_ns) * r->cfg.rate / 1e9;
        if (b->tokens > r->cfg.burst) b->tokens = r->cfg.burst;
        b->last_ns = now;
    }
}

/* The caller's bucket (created full); caller's lock held. */
static bucket *find_bucket(ek_ratelimit *r, const char *caller, int64_t now) {
    if (!r->cfg.per_caller) return &r->global;
    uint64_t h = hash_str(caller);
    bucket *victim = NULL;
    for (size_t k = 0; k < PROBES && k < r->n_table; k++) {
        bucket *b = &r->table[(h + k) % r->n_table];
        if (b->used && !strncmp(b->caller, caller, sizeof b->caller - 1)) return b;
        if (!b->used) { victim = b; break; }
        if (!victim || b->last_ns < victim->last_ns) victim = b;
    }
    memset(victim, 0, sizeof *victim);
    victim->used = 1;
    snprintf(victim->caller, sizeof victim->caller, "%s", caller);
    victim->tokens = r->cfg.burst;
    victim->last_ns = now;
    return victim;
}

ek_status ek_ratelimit_new(const ek_ratelimit_config *c, const ek_clock *clock,
                           ek_metrics *metrics, ek_ratelimit **out) {
    if (!c || !out || c->rate < 0 || c->burst < 0 || (c->rate > 0 && c->burst <= 0))
        return EK_ERR_INVALID_ARG;
    ek_ratelimit *r = calloc(1, sizeof *r);
    if (!r) return EK_ERR_NOMEM;
    r->cfg = *c;
    if (r->cfg.max_callers <= 0) r->cfg.max_callers = 1024;
    r->clock = clock ? *clock : ek_clock_system();
    pthread_mutex_init(&r->mu, NULL);
    int64_t now = r->clock.now_ns(r->clock.arg);
    r->global.tokens = r->cfg.burst;
    r->global.last_ns = now;
    r->global.used = 1;
    if (r->cfg.per_caller) {
        r->n_table = (size_t)r->cfg.max_callers;
        r->table = calloc(r->n_table, sizeof *r->table);
        if (!r->table) {
            ek_ratelimit_free(r);
            return EK_ERR_NOMEM;
        }
    }
    if (metrics) {
        static const char *const lbl[] = {"outcome"};
        ek_metric_family *m = ek_metrics_find(metrics, "embedkit_ratelimit_decisions_total");
        if (!m && ek_metrics_add(metrics, EK_COUNTER, "embedkit_ratelimit_decisions_total",
                                 "Rate limiter decisions.", 1, lbl, 4, NULL, 0, &m) != EK_OK)
            m = NULL;
        if (m) {
            r->allowed = ek_metric_series(m, (const char *const[]){"allowed"});
            r->rejected = ek_metric_series(m, (const char *const[]){"rejected"});
        }
    }
    *out = r;
    return EK_OK;
}

void ek_ratelimit_free(ek_ratelimit *r) {
    if (!r) return;
    pthread_mutex_destroy(&r->mu);
    free(r->table);
    free(r);
}

double ek_ratelimit_tokens(ek_ratelimit *r, const char *caller) {
    pthread_mutex_lock(&r->mu);
    int64_t now = r->clock.now_ns(r->clock.arg);
    bucket *b = find_bucket(r, caller ? caller : "", now);
    refill(r, b, now);
    double t = b->tokens;
    pthread_mutex_unlock(&r->mu);
    return t;
}

static ek_status ratelimit(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_ratelimit *r = state;
    double cost = ek_ratelimit_cost(cmd);
    if (r->cfg.rate <= 0 || cost <= 0) return ek_next_run(next, cmd, cx);
    if (cost > r->cfg.burst)
        return ek_cmd_fail(cx, "ratelimit", EK_ERR_RATE_LIMITED,
                           "command costs %.0f tokens, more than the bucket holds (burst %.0f)",
                           cost, r->cfg.burst);
    pthread_mutex_lock(&r->mu);
    int64_t now = r->clock.now_ns(r->clock.arg);
    bucket *b = find_bucket(r, cx->caller, now);
    refill(r, b, now);
    int ok = b->tokens >= cost;
    double missing = cost - b->tokens;
    if (ok) b->tokens -= cost;
    pthread_mutex_unlock(&r->mu);
    if (!ok) {
        if (r->rejected) ek_series_add(r->rejected, 1);
        cx->retry_after_ns = (int64_t)ceil(missing / r->cfg.rate * 1e9);
        return ek_cmd_fail(cx, "ratelimit", EK_ERR_RATE_LIMITED,
                           "rate limit exceeded%s%s: cost %.0f, retry after %.3f s",
                           r->cfg.per_caller ? " for caller " : "",
                           r->cfg.per_caller ? cx->caller : "", cost,
                           (double)cx->retry_after_ns / 1e9);
    }
    if (r->allowed) ek_series_add(r->allowed, 1);
    return ek_next_run(next, cmd, cx);
}

ek_middleware ek_ratelimit_middleware(ek_ratelimit *r) {
    ek_middleware m = {"ratelimit", EK_MW_RESILIENCE, EK_SCOPE_MODEL, 0, ratelimit, r, NULL};
    return m;
}
