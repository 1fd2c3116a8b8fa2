/* pipeline/mw_retry.c — retry with exponential backoff and jitter, for
 * retryable statuses only (ek_status_retryable: I/O, unavailable, bulkhead
 * full).  Caller errors, open breakers, rate limits, cancellations and
 * deadlines are never retried.
 *
 * The jitter comes from a hash of (request id, attempt) rather than a shared
 * random generator: no lock, no global state, and a test can predict it.
 * Waiting uses the injected clock, and never sleeps past the deadline. */
#include <string.h>

#include "embedkit_pipeline.h"

void ek_retry_config_init(ek_retry_config *c, const ek_clock *clock) {
    memset(c, 0, sizeof *c);
    c->max_attempts = 3;
    c->base_backoff_ns = 100 * 1000000LL;
    c->max_backoff_ns = 2000 * 1000000LL;
    c->multiplier = 2;
    c->jitter = 0.5;
    c->clock = clock;
}

static double unit_hash(uint64_t x) {
    x ^= x >> 33; x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33; x *= 0xc4ceb9fe1a85ec53ull;
    x ^= x >> 33;
    return (double)(x >> 11) / 9007199254740992.0; /* [0, 1) */
}

static ek_status retry(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_retry_config *r = state;
    const ek_clock *c = r->clock ? r->clock : ek_pipeline_clock(cx->pipeline);
    double delay = (double)r->base_backoff_ns;
    for (int attempt = 1;; attempt++) {
        __atomic_add_fetch(&r->attempts_total, 1, __ATOMIC_RELAXED);
        ek_status st = ek_next_run(next, cmd, cx);
        if (st == EK_OK || !ek_status_retryable(st) || attempt >= r->max_attempts) return st;
        if (ek_cmd_ctx_cancelled(cx)) return st;
        double d = delay > (double)r->max_backoff_ns ? (double)r->max_backoff_ns : delay;
        d *= 1.0 - r->jitter * unit_hash(cx->request_id * 0x9e3779b97f4a7c15ull + (uint64_t)attempt);
        int64_t wait = (int64_t)d;
        if (cx->deadline_ns && c->now_ns(c->arg) + wait >= cx->deadline_ns) return st;
        c->sleep_ns(c->arg, wait);
        delay *= r->multiplier;
        /* This attempt's error is superseded by the next attempt's outcome. */
        ek_cmd_ctx_clear_error(cx);
    }
}

ek_middleware ek_retry_middleware(ek_retry_config *c) {
    ek_middleware m = {"retry", EK_MW_RESILIENCE, EK_SCOPE_MODEL, EK_MW_REENTERS, retry, c, NULL};
    return m;
}
