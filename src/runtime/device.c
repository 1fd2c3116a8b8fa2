/* runtime/device.c — ek_ctx_set_device and the dispatch it drives: which
 * backend an ek_embed call runs on.  The CPU is the default and needs
 * nothing from here; a device ("gpu", "opencl:P:D", or "auto" when it
 * picks one) is opened at its first use, kept in the context (one owner:
 * the ek_ctx, closed by ek_ctx_free or a new ek_ctx_set_device) and runs
 * ek_embed through the OpenCL path (gpu/embed_gpu.c), which itself falls
 * back to the CPU when an input does not fit the device's memory.
 *
 * "auto" asks OpenCL once per context whether a device of type GPU exists
 * (PoCL's CPU device does not count: the CPU path beats it), and then
 * sends a call there only when it is big enough to pay for the round trip
 * (ek_ctx_set_gpu_min_tokens).  Counting a call's tokens needs the
 * tokenizer, so a cheap bound comes first: a WordPiece token spans at least
 * one byte of its input, so an input has at most its bytes plus the
 * prompt's plus [CLS] and [SEP] tokens, capped by the length limit; only
 * calls whose bound reaches the threshold are tokenized to count, and a
 * call sent to the device reuses that tokenization. */
#include "runtime/device.h"

#include <stdio.h>
#include <string.h>

#include "embedkit_gpu.h"
#include "gpu/gpu.h"
#include "model/model.h"
#include "runtime/ctx.h"
#include "runtime/tokenized.h"

/* Parses a spec into kind, P, D; EK_ERR_INVALID_ARG naming it otherwise. */
static int parse_spec(const char *spec, int *kind, int *p, int *d, ek_err *e) {
    *p = *d = -1;
    if (!spec) return ek_err_set(e, EK_ERR_INVALID_ARG, "device: NULL (want cpu, gpu, auto or opencl:P:D)");
    static const struct { const char *name; int kind; } names[] = {
        {"cpu", EK_DEV_CPU}, {"gpu", EK_DEV_GPU}, {"auto", EK_DEV_AUTO}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (!strcmp(spec, names[i].name)) {
            *kind = names[i].kind;
            return EK_OK;
        }
    int used = 0;
    if (sscanf(spec, "opencl:%d:%d%n", p, d, &used) == 2 && spec[used] == '\0' && *p >= 0 && *d >= 0 &&
        strspn(spec + 7, "0123456789:") == strlen(spec + 7)) {
        *kind = EK_DEV_OPENCL;
        return EK_OK;
    }
    return ek_err_set(e, EK_ERR_INVALID_ARG,
                      "device: \"%.64s\" is not cpu, gpu, auto or opencl:PLATFORM:DEVICE (numbers, e.g. opencl:0:0)",
                      spec);
}

void ek_device_release(ek_ctx *ctx) {
    ek_gpu_close(ctx->gpu);
    ctx->gpu = NULL;
    ctx->gpu_probe = 0;
}

ek_status ek_ctx_set_device(ek_ctx *ctx, const char *spec) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    int kind = EK_DEV_CPU, p, d;
    int rc = parse_spec(spec, &kind, &p, &d, &ctx->err);
    if (rc) return (ek_status)rc;
    /* The same device again keeps the open one (and its resident weights). */
    if (kind != ctx->dev_kind || p != ctx->dev_p || d != ctx->dev_d) ek_device_release(ctx);
    ctx->dev_kind = kind;
    ctx->dev_p = p;
    ctx->dev_d = d;
    return EK_OK;
}

ek_status ek_ctx_set_gpu_min_tokens(ek_ctx *ctx, int tokens) {
    if (!ctx) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    if (tokens < 0)
        return (ek_status)ek_err_set(&ctx->err, EK_ERR_INVALID_ARG,
                                     "gpu_min_tokens: %d is negative (0: the default, %d)", tokens,
                                     EK_GPU_MIN_TOKENS_DEFAULT);
    ctx->gpu_min_tokens = tokens;
    return EK_OK;
}

const char *ek_ctx_last_device(const ek_ctx *ctx) { return ctx ? ctx->last_device : ""; }

void ek_device_ran_on(ek_ctx *ctx, int platform, int device) {
    if (platform < 0) snprintf(ctx->last_device, sizeof ctx->last_device, "cpu");
    else snprintf(ctx->last_device, sizeof ctx->last_device, "opencl:%d:%d", platform, device);
}

ek_status ek_embed_on_cpu(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                          const ek_embed_options *opts, float *out, int32_t *token_counts) {
    int saved = ctx->on_cpu_only;
    ctx->on_cpu_only = 1;
    ek_status s = ek_embed(ctx, m, texts, lens, n, opts, out, token_counts);
    ctx->on_cpu_only = saved;
    return s;
}

/* Opens the context's device for its spec, once.  The error names the
 * spec ("device gpu: no OpenCL GPU device ..."). */
static int open_device(ek_ctx *ctx, ek_err *e) {
    if (ctx->gpu) return EK_OK;
    char spec[32];
    if (ctx->dev_kind == EK_DEV_OPENCL) snprintf(spec, sizeof spec, "opencl:%d:%d", ctx->dev_p, ctx->dev_d);
    else snprintf(spec, sizeof spec, "gpu");
    ek_gpu_options o;
    ek_gpu_options_init(&o);
    o.device = spec;
    /* ek_gpu_open reports into ctx->err, which is e here. */
    int rc = ek_gpu_open(ctx, &o, &ctx->gpu);
    if (rc) {
        ctx->gpu = NULL;
        /* "device gpu: no OpenCL GPU device found", not "device gpu: device: ..." */
        if (!strncmp(e->msg, "device: ", 8)) memmove(e->msg, e->msg + 8, strlen(e->msg + 8) + 1);
        ek_err_prefix(e, "device %s", ctx->dev_kind == EK_DEV_AUTO ? "auto" : spec);
    }
    return rc;
}

/* auto: is there an OpenCL device of type GPU?  Asked once per context. */
static int auto_has_gpu(ek_ctx *ctx) {
    if (ctx->gpu_probe == 0) {
        ek_gpu_device dev[16];
        size_t nd = 0;
        ek_err saved = ctx->err; /* listing reports into ctx; auto is silent */
        ctx->gpu_probe = -1;
        if (ek_gpu_list(ctx, dev, 16, &nd) == EK_OK)
            for (size_t i = 0; i < nd && i < 16; i++)
                if (dev[i].is_gpu) ctx->gpu_probe = 1;
        ctx->err = saved;
    }
    return ctx->gpu_probe > 0;
}

/* Upper bound of a call's tokens without tokenizing (see the top). */
static size_t token_bound(const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                          const ek_embed_options *o) {
    size_t cap = (size_t)(o->max_length > 0 && o->max_length < m->max_seq_length ? o->max_length
                                                                                 : m->max_seq_length);
    size_t plen = o->prompt ? strlen(o->prompt) : 0, total = 0;
    for (size_t i = 0; i < n; i++) {
        size_t b = (lens ? lens[i] : strlen(texts[i])) + plen + 2;
        total += o->truncate != EK_TRUNCATE_NONE && b > cap ? cap : b;
    }
    return total;
}

int ek_device_route(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                    const ek_embed_options *opts, float *out, int32_t *token_counts, int *rc) {
    ek_err *e = &ctx->err;
    *rc = EK_OK;
    if (ctx->dev_kind == EK_DEV_CPU || ctx->on_cpu_only) {
        ek_device_ran_on(ctx, -1, -1);
        return 0;
    }
    if (ctx->dev_kind != EK_DEV_AUTO) {
        *rc = open_device(ctx, e);
        if (!*rc) *rc = ek_gpu_embed(ctx, ctx->gpu, m, texts, lens, n, opts, out, token_counts);
        return 1;
    }
    /* auto */
    for (size_t i = 0; i < n; i++)
        if (!texts[i]) goto cpu; /* the CPU path names the NULL input */
    size_t min = (size_t)(ctx->gpu_min_tokens > 0 ? ctx->gpu_min_tokens : EK_GPU_MIN_TOKENS_DEFAULT);
    if (!auto_has_gpu(ctx) || token_bound(m, texts, lens, n, opts) < min) goto cpu;
    ek_tokenized t;
    int prompt_tokens = 0;
    *rc = ek_tokenize_inputs(ctx, m, texts, lens, n, opts, &t, &prompt_tokens, e);
    if (*rc) return 1; /* the CPU would fail the same way */
    if (t.start[n] < min) goto cpu;
    if (open_device(ctx, e)) {
        /* A GPU that does not open (driver, kernel build) leaves auto on
         * the CPU for this context, without asking again each call. */
        ctx->gpu_probe = -1;
        ek_err_clear(e);
        goto cpu;
    }
    *rc = ek_gpu_embed_tokenized(ctx, ctx->gpu, m, texts, lens, n, opts, &t, prompt_tokens, out, token_counts);
    return 1;
cpu:
    ek_device_ran_on(ctx, -1, -1);
    return 0;
}
