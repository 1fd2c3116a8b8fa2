/* pipeline/mw_bulkhead.c — the bulkhead: at most N commands inside the rest
 * of the chain at once, so one flood cannot take every core and all memory.
 * Others fail fast, or wait up to max_wait on a condition variable (real
 * monotonic time: waiting is about threads, not about the injected clock). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include "embedkit_pipeline.h"

struct ek_bulkhead {
    int max;
    int64_t max_wait_ns;
    int inside;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

ek_status ek_bulkhead_new(int max_concurrent, int64_t max_wait_ns, ek_bulkhead **out) {
    if (!out || max_concurrent < 1 || max_wait_ns < 0) return EK_ERR_INVALID_ARG;
    ek_bulkhead *b = calloc(1, sizeof *b);
    if (!b) return EK_ERR_NOMEM;
    b->max = max_concurrent;
    b->max_wait_ns = max_wait_ns;
    pthread_mutex_init(&b->mu, NULL);
    pthread_condattr_t a;
    pthread_condattr_init(&a);
    pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
    pthread_cond_init(&b->cv, &a);
    pthread_condattr_destroy(&a);
    *out = b;
    return EK_OK;
}

void ek_bulkhead_free(ek_bulkhead *b) {
    if (!b) return;
    pthread_cond_destroy(&b->cv);
    pthread_mutex_destroy(&b->mu);
    free(b);
}

static ek_status bulkhead(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_bulkhead *b = state;
    pthread_mutex_lock(&b->mu);
    if (b->inside >= b->max && b->max_wait_ns > 0) {
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        int64_t ns = until.tv_nsec + b->max_wait_ns % 1000000000;
        until.tv_sec += (time_t)(b->max_wait_ns / 1000000000 + ns / 1000000000);
        until.tv_nsec = (long)(ns % 1000000000);
        while (b->inside >= b->max)
            if (pthread_cond_timedwait(&b->cv, &b->mu, &until) == ETIMEDOUT) break;
    }
    if (b->inside >= b->max) {
        int max = b->max;
        pthread_mutex_unlock(&b->mu);
        return ek_cmd_fail(cx, "bulkhead", EK_ERR_BULKHEAD_FULL,
                           "%d commands already in flight (bulkhead limit)", max);
    }
    b->inside++;
    pthread_mutex_unlock(&b->mu);
    ek_status st = ek_next_run(next, cmd, cx);
    pthread_mutex_lock(&b->mu);
    b->inside--;
    pthread_cond_signal(&b->cv);
    pthread_mutex_unlock(&b->mu);
    return st;
}

ek_middleware ek_bulkhead_middleware(ek_bulkhead *b) {
    ek_middleware m = {"bulkhead", EK_MW_RESILIENCE, EK_SCOPE_MODEL, 0, bulkhead, b, NULL};
    return m;
}
