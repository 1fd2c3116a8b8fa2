/* runtime/device.h — where ek_embed runs (ek_ctx_set_device): the internal
 * side of the dispatch in runtime/device.c, for runtime/embed.c's hook,
 * the OpenCL path's CPU fallback (gpu/embed_gpu.c) and ek_ctx_free. */
#ifndef EK_RUNTIME_DEVICE_H
#define EK_RUNTIME_DEVICE_H

#include <stddef.h>
#include <stdint.h>

#include "embedkit.h"

/* Device kinds of ek_ctx.dev_kind; 0 (a fresh context) is the CPU. */
enum { EK_DEV_CPU = 0, EK_DEV_GPU, EK_DEV_AUTO, EK_DEV_OPENCL };

/* The hook at the top of ek_embed (arguments and options already checked,
 * n > 0): returns 1 when the call was run on a device here (*rc: its
 * status), 0 when ek_embed is to go on with the CPU path. */
int ek_device_route(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                    const ek_embed_options *opts, float *out, int32_t *token_counts, int *rc);

/* ek_embed forced onto the CPU whatever the context's device: the OpenCL
 * path's fallback when even one input does not fit the device. */
ek_status ek_embed_on_cpu(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                          const ek_embed_options *opts, float *out, int32_t *token_counts);

/* Records where the last ek_embed ran: "cpu" or "opencl:P:D". */
void ek_device_ran_on(ek_ctx *ctx, int platform, int device);

/* Closes the context's device (ek_ctx_free, a new ek_ctx_set_device). */
void ek_device_release(ek_ctx *ctx);

#endif
