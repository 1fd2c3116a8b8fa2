/* runtime/ctx.h — the per-thread context behind ek_ctx: the thread count,
 * the last error, and a workspace reused across calls so the hot path does
 * not allocate once it has warmed up. */
#ifndef EK_RUNTIME_CTX_H
#define EK_RUNTIME_CTX_H

#include <stddef.h>
#include "base/err.h"
#include "embedkit.h"

struct ek_tok_work;

/* A buffer kept across calls: grown (contents kept), never shrunk. */
typedef struct ek_ctx_buf {
    void *p;
    size_t cap; /* bytes */
} ek_ctx_buf;

struct ek_ctx {
    int threads;
    ek_err err;
    void *ws;          /* 64-byte aligned workspace */
    size_t ws_cap;
    /* The per-call state of ek_embed / ek_embed_ids / ek_tokenize, kept so
     * that a warmed-up call allocates nothing: */
    struct ek_tok_work *tok; /* tokenizer buffers, made on first use */
    ek_encoding enc;         /* one input's tokens */
    ek_ctx_buf tk_ids, tk_types; /* all inputs' tokens, back to back */
    ek_ctx_buf tk_index;     /* input starts, length order, sort scratch */
    ek_ctx_buf text;         /* prompt + input */
};

/* Returns a workspace of at least n bytes (grown, never shrunk). */
void *ek_ctx_workspace(struct ek_ctx *ctx, size_t n);
/* Returns b's buffer grown to at least n bytes (contents kept), or NULL
 * (b unchanged) when out of memory. */
void *ek_ctx_buf_reserve(ek_ctx_buf *b, size_t n);
/* The context's tokenizer buffers (made on first use), or NULL when out of
 * memory: ek_tokenizer_encode_w then uses its own. */
struct ek_tok_work *ek_ctx_tok_work(struct ek_ctx *ctx);
/* Records e into ctx and returns its status. */
ek_status ek_ctx_fail(struct ek_ctx *ctx, const ek_err *e);

#endif
