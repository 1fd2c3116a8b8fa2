/* pipeline/mw_deadline.c — deadlines: gives commands without one a default
 * timeout and refuses to start work whose deadline already passed.  The
 * work itself checks the deadline between batch chunks (ek_cmd_ctx_check),
 * so a deadline that expires mid-batch stops it at the next chunk. */
#include "embedkit_pipeline.h"

static ek_status deadline(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    const ek_deadline *d = state;
    const ek_clock *c = d->clock ? d->clock : ek_pipeline_clock(cx->pipeline);
    if (!cx->deadline_ns && d->timeout_ns > 0) cx->deadline_ns = c->now_ns(c->arg) + d->timeout_ns;
    ek_status st = ek_cmd_ctx_check(cx, "deadline");
    if (st != EK_OK) return st;
    return ek_next_run(next, cmd, cx);
}

ek_middleware ek_deadline_middleware(ek_deadline *d) {
    ek_middleware m = {"deadline", EK_MW_RESILIENCE, EK_SCOPE_MODEL, 0, deadline, d, NULL};
    return m;
}
