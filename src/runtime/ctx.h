/* runtime/ctx.h — the per-thread context behind ek_ctx: the thread count,
 * the last error, and a workspace reused across calls so the hot path does
 * not allocate once it has warmed up. */
#ifndef EK_RUNTIME_CTX_H
#define EK_RUNTIME_CTX_H

#include <stddef.h>
#include "base/err.h"
#include "embedkit.h"

struct ek_ctx {
    int threads;
    ek_err err;
    void *ws;          /* 64-byte aligned workspace */
    size_t ws_cap;
};

/* Returns a workspace of at least n bytes (grown, never shrunk). */
void *ek_ctx_workspace(struct ek_ctx *ctx, size_t n);
/* Records e into ctx and returns its status. */
ek_status ek_ctx_fail(struct ek_ctx *ctx, const ek_err *e);

#endif
