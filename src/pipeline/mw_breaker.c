/* pipeline/mw_breaker.c — the circuit breaker middleware, one breaker per
 * (model, version), with resilience4j's semantics and defaults:
 *
 *   CLOSED     calls pass; outcomes go into a count-based sliding window.
 *              Once the window holds min(minimum_calls, window_size)
 *              outcomes, a failure rate or slow-call rate at or above its
 *              threshold opens the breaker.
 *   OPEN       calls fail fast (EK_ERR_CIRCUIT_OPEN, retry-after set) or go
 *              to the model's configured fallback; after wait_open the next
 *              call moves the breaker to HALF_OPEN.
 *   HALF_OPEN  at most half_open_calls trial calls are let through; when
 *              all have finished, their rates decide: OPEN again or CLOSED
 *              (window reset).
 *
 * Cancellations (and deadline expiries, the caller's choice) are never
 * counted; caller errors (invalid argument, UTF-8, too long) count as
 * successes because the model did its job.  An outcome that arrives after
 * the breaker changed state (its call was permitted in an older state) is
 * dropped, so trial calls are never over-counted. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"

typedef struct brk {
    char key[160];
    int used;
    ek_breaker_state state;
    uint64_t gen;                 /* bumped on every transition */
    uint8_t *ring;                /* window outcomes: bit 0 failed, bit 1 slow */
    int pos, count, failures, slows;
    int64_t opened_at;
    int trials_issued, trials_done, trial_failures, trial_slows;
    int64_t last_used;
    ek_series *gauge;
} brk;

typedef struct fallback {
    char model[160];
    char to[160];
} fallback;

struct ek_breaker {
    ek_breaker_config cfg;
    ek_clock clock;
    ek_model_resolver resolver;
    pthread_mutex_t mu;
    brk *table;
    uint8_t *rings;
    fallback fb[16];
    int n_fb;
    ek_metric_family *state_metric;
    ek_series *rejected;
};

void ek_breaker_config_init(ek_breaker_config *c) {
    memset(c, 0, sizeof *c);
    c->failure_rate_threshold = 50;
    c->slow_call_rate_threshold = 100;
    c->slow_call_duration_ns = 60LL * 1000000000;
    c->wait_open_ns = 60LL * 1000000000;
    c->half_open_calls = 10;
    c->minimum_calls = 100;
    c->window_size = 100;
    c->max_breakers = 256;
}

const char *ek_breaker_state_name(ek_breaker_state s) {
    static const char *n[] = {"closed", "open", "half_open"};
    return (unsigned)s <= EK_BREAKER_HALF_OPEN ? n[s] : "unknown";
}

ek_status ek_breaker_new(const ek_breaker_config *c, const ek_clock *clock,
                         const ek_model_resolver *resolver, ek_metrics *metrics,
                         ek_breaker **out) {
    if (!c || !out || c->window_size < 1 || c->minimum_calls < 1 || c->half_open_calls < 1 ||
        c->failure_rate_threshold <= 0 || c->failure_rate_threshold > 100 ||
        c->slow_call_rate_threshold <= 0 || c->slow_call_rate_threshold > 100 ||
        c->wait_open_ns < 0 || c->slow_call_duration_ns <= 0)
        return EK_ERR_INVALID_ARG;
    ek_breaker *b = calloc(1, sizeof *b);
    if (!b) return EK_ERR_NOMEM;
    b->cfg = *c;
    if (b->cfg.max_breakers <= 0) b->cfg.max_breakers = 256;
    b->clock = clock ? *clock : ek_clock_system();
    if (resolver) b->resolver = *resolver;
    pthread_mutex_init(&b->mu, NULL);
    b->table = calloc((size_t)b->cfg.max_breakers, sizeof *b->table);
    b->rings = calloc((size_t)b->cfg.max_breakers, (size_t)b->cfg.window_size);
    if (!b->table || !b->rings) {
        ek_breaker_free(b);
        return EK_ERR_NOMEM;
    }
    for (int i = 0; i < b->cfg.max_breakers; i++) b->table[i].ring = b->rings + (size_t)i * (size_t)b->cfg.window_size;
    if (metrics) {
        static const char *const lbl[] = {"model"};
        b->state_metric = ek_metrics_find(metrics, "embedkit_breaker_state");
        if (!b->state_metric)
            ek_metrics_add(metrics, EK_GAUGE, "embedkit_breaker_state",
                           "Circuit breaker state per model version (0 closed, 1 open, 2 half-open).",
                           1, lbl, b->cfg.max_breakers, NULL, 0, &b->state_metric);
        ek_metric_family *r = ek_metrics_find(metrics, "embedkit_breaker_rejected_total");
        if (!r)
            ek_metrics_add(metrics, EK_COUNTER, "embedkit_breaker_rejected_total",
                           "Commands failed fast by an open circuit breaker.", 0, NULL, 1, NULL, 0, &r);
        b->rejected = ek_metric_series(r, NULL);
    }
    *out = b;
    return EK_OK;
}

void ek_breaker_free(ek_breaker *b) {
    if (!b) return;
    pthread_mutex_destroy(&b->mu);
    free(b->table);
    free(b->rings);
    free(b);
}

ek_status ek_breaker_set_fallback(ek_breaker *b, const char *model, const char *to) {
    if (!b || !model || !to || b->n_fb >= (int)(sizeof b->fb / sizeof b->fb[0])) return EK_ERR_INVALID_ARG;
    snprintf(b->fb[b->n_fb].model, sizeof b->fb[0].model, "%s", model);
    snprintf(b->fb[b->n_fb].to, sizeof b->fb[0].to, "%s", to);
    b->n_fb++;
    return EK_OK;
}

static void set_state(brk *k, ek_breaker_state s, int64_t now) {
    k->state = s;
    k->gen++;
    k->trials_issued = k->trials_done = k->trial_failures = k->trial_slows = 0;
    if (s == EK_BREAKER_OPEN) k->opened_at = now;
    if (s == EK_BREAKER_CLOSED) {
        k->pos = k->count = k->failures = k->slows = 0;
    }
    if (k->gauge) ek_series_set(k->gauge, (double)s);
}

/* Finds or creates the breaker for key (lock held).  NULL when the table is
 * full of breakers that are not CLOSED (then calls pass unguarded). */
static brk *find(ek_breaker *b, const char *key, int create, int64_t now) {
    brk *victim = NULL;
    for (int i = 0; i < b->cfg.max_breakers; i++) {
        brk *k = &b->table[i];
        if (k->used && !strcmp(k->key, key)) return k;
        if (!k->used) { if (!victim || victim->used) victim = k; }
        else if (k->state == EK_BREAKER_CLOSED && (!victim || (victim->used && k->last_used < victim->last_used)))
            victim = k;
    }
    if (!create || !victim) return NULL;
    uint8_t *ring = victim->ring;
    ek_series *gauge = victim->used ? NULL : victim->gauge;
    memset(victim, 0, sizeof *victim);
    victim->ring = ring;
    victim->used = 1;
    victim->last_used = now;
    snprintf(victim->key, sizeof victim->key, "%s", key);
    victim->gauge = gauge;
    if (b->state_metric) {
        const char *v[] = {victim->key};
        victim->gauge = ek_metric_series(b->state_metric, v);
        ek_series_set(victim->gauge, 0);
    }
    return victim;
}

ek_breaker_state ek_breaker_get_state(ek_breaker *b, const char *key) {
    pthread_mutex_lock(&b->mu);
    brk *k = find(b, key, 0, 0);
    ek_breaker_state s = k ? k->state : EK_BREAKER_CLOSED;
    /* An OPEN breaker whose wait has passed reports HALF_OPEN as the next
     * call would see it; the transition itself happens on that call. */
    if (k && s == EK_BREAKER_OPEN && b->clock.now_ns(b->clock.arg) - k->opened_at >= b->cfg.wait_open_ns)
        s = EK_BREAKER_HALF_OPEN;
    pthread_mutex_unlock(&b->mu);
    return s;
}

/* -1: not counted, 0: success, 1: failure. */
static int classify(int st) {
    switch (st) {
    case EK_OK:
    case EK_ERR_INVALID_ARG:
    case EK_ERR_UTF8:
    case EK_ERR_TOO_LONG: return 0;
    case EK_ERR_IO:
    case EK_ERR_FORMAT:
    case EK_ERR_UNSUPPORTED:
    case EK_ERR_NOMEM:
    case EK_ERR_INTERNAL:
    case EK_ERR_UNAVAILABLE: return 1;
    default: return -1; /* cancelled, deadline, rate limited, bulkhead, ... */
    }
}

static int over(double part, double whole, double threshold_pct) {
    return whole > 0 && part * 100.0 / whole >= threshold_pct;
}

static void record(ek_breaker *b, brk *k, int failed, int slow, int64_t now) {
    if (k->state == EK_BREAKER_CLOSED) {
        int W = b->cfg.window_size;
        if (k->count == W) {
            uint8_t old = k->ring[k->pos];
            k->failures -= old & 1;
            k->slows -= (old >> 1) & 1;
        } else {
            k->count++;
        }
        k->ring[k->pos] = (uint8_t)(failed | (slow << 1));
        k->failures += failed;
        k->slows += slow;
        k->pos = (k->pos + 1) % W;
        int need = b->cfg.minimum_calls < W ? b->cfg.minimum_calls : W;
        if (k->count >= need &&
            (over(k->failures, k->count, b->cfg.failure_rate_threshold) ||
             over(k->slows, k->count, b->cfg.slow_call_rate_threshold)))
            set_state(k, EK_BREAKER_OPEN, now);
    } else if (k->state == EK_BREAKER_HALF_OPEN) {
        k->trials_done++;
        k->trial_failures += failed;
        k->trial_slows += slow;
        if (k->trials_done >= b->cfg.half_open_calls) {
            int bad = over(k->trial_failures, k->trials_done, b->cfg.failure_rate_threshold) ||
                      over(k->trial_slows, k->trials_done, b->cfg.slow_call_rate_threshold);
            set_state(k, bad ? EK_BREAKER_OPEN : EK_BREAKER_CLOSED, now);
        }
    }
}

static ek_status breaker(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_breaker *b = state;
    ek_model_identity id;
    memset(&id, 0, sizeof id);
    if (!b->resolver.identify || b->resolver.identify(b->resolver.arg, cmd->model, &id))
        snprintf(id.key, sizeof id.key, "%s", cmd->model ? cmd->model : "default");

    pthread_mutex_lock(&b->mu);
    int64_t now = b->clock.now_ns(b->clock.arg);
    brk *k = find(b, id.key, 1, now);
    if (!k) {
        pthread_mutex_unlock(&b->mu);
        return ek_next_run(next, cmd, cx);
    }
    k->last_used = now;
    if (k->state == EK_BREAKER_OPEN && now - k->opened_at >= b->cfg.wait_open_ns)
        set_state(k, EK_BREAKER_HALF_OPEN, now);
    int permitted = 1;
    int64_t retry_at = 0;
    if (k->state == EK_BREAKER_OPEN) {
        permitted = 0;
        retry_at = k->opened_at + b->cfg.wait_open_ns;
    } else if (k->state == EK_BREAKER_HALF_OPEN) {
        if (k->trials_issued < b->cfg.half_open_calls) k->trials_issued++;
        else { permitted = 0; retry_at = now; }
    }
    uint64_t gen = k->gen;
    ek_breaker_state seen = k->state;
    pthread_mutex_unlock(&b->mu);

    if (!permitted) {
        for (int i = 0; i < b->n_fb; i++)
            if (cmd->model && !strcmp(b->fb[i].model, cmd->model)) {
                /* Served by the alias's fallback version instead. */
                ek_cmd alt = *cmd;
                alt.model = b->fb[i].to;
                if (alt.type == EK_CMD_EMBED_TEXT) {
                    alt.u.embed.texts = &alt.u.embed.one_text;
                    alt.u.embed.lens = &alt.u.embed.one_len;
                }
                ek_status st = ek_next_run(next, &alt, cx);
                cmd->u = alt.u;
                if (cmd->type == EK_CMD_EMBED_TEXT) {
                    cmd->u.embed.texts = &cmd->u.embed.one_text;
                    cmd->u.embed.lens = &cmd->u.embed.one_len;
                }
                return st;
            }
        if (b->rejected) ek_series_add(b->rejected, 1);
        cx->retry_after_ns = retry_at > now ? retry_at - now : 0;
        return ek_cmd_fail(cx, "breaker", EK_ERR_CIRCUIT_OPEN,
                           "model %s: circuit breaker %s, retry in %.3f s", id.key,
                           ek_breaker_state_name(seen), (double)cx->retry_after_ns / 1e9);
    }

    int64_t t0 = b->clock.now_ns(b->clock.arg);
    ek_status st = ek_next_run(next, cmd, cx);
    int64_t t1 = b->clock.now_ns(b->clock.arg);
    int kind = classify(st);
    pthread_mutex_lock(&b->mu);
    if (k->used && !strcmp(k->key, id.key) && k->gen == gen) {
        if (kind < 0) {
            if (k->state == EK_BREAKER_HALF_OPEN && k->trials_issued > 0) k->trials_issued--;
        } else {
            record(b, k, kind, (t1 - t0) >= b->cfg.slow_call_duration_ns, t1);
        }
    }
    pthread_mutex_unlock(&b->mu);
    return st;
}

ek_middleware ek_breaker_middleware(ek_breaker *b) {
    ek_middleware m = {"breaker", EK_MW_RESILIENCE, EK_SCOPE_MODEL, 0, breaker, b, NULL};
    return m;
}
