/* runtime/ctx.h — the per-thread context behind ek_ctx: the thread count,
 * the last error, and a workspace reused across calls so the hot path does
 * not allocate once it has warmed up. */
#ifndef EK_RUNTIME_CTX_H
#define EK_RUNTIME_CTX_H

#include <stddef.h>
#include "base/err.h"
#include "embedkit.h"

struct ek_tok_work;
struct ek_gpu;

/* A buffer kept across calls: grown (contents kept), never shrunk. */
typedef struct ek_ctx_buf {
    void *p;
    size_t cap; /* bytes */
} ek_ctx_buf;

struct ek_ctx {
    int threads;
    ek_err err;
    /* Where ek_embed runs (runtime/device.c): */
    int dev_kind;            /* EK_DEV_* (runtime/device.h); 0: the CPU */
    int dev_p, dev_d;        /* EK_DEV_OPENCL: platform and device */
    int gpu_min_tokens;      /* auto's threshold; 0: EK_GPU_MIN_TOKENS_DEFAULT */
    struct ek_gpu *gpu;      /* opened at first use, owned, closed with ctx */
    int gpu_probe;           /* auto: 0 not yet asked, 1 a GPU device, -1 none */
    int on_cpu_only;         /* inside a device call's CPU fallback */
    char last_device[32];    /* "cpu", "opencl:P:D"; "" before any call */
    void *ws;          /* 64-byte aligned workspace */
    size_t ws_cap;
    /* The per-call state of ek_embed / ek_embed_ids / ek_tokenize, kept so
     * that a warmed-up call allocates nothing: */
    struct ek_tok_work *tok; /* tokenizer buffers, made on first use */
    ek_encoding enc;         /* one input's tokens */
    ek_ctx_buf tk_ids, tk_types; /* all inputs' tokens, back to back */
    ek_ctx_buf tk_index;     /* input starts, length order, sort scratch */
    ek_ctx_buf text;         /* prompt + input */
    ek_stage_timings timings; /* of the last ek_embed / ek_embed_ids (runtime/embed.c) */
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
