/* runtime/tokenized.h — the inputs of one embedding call, tokenized back to
 * back and ordered longest first: what every backend (runtime/embed.c on
 * the CPU, gpu/embed_gpu.c on OpenCL) runs its batches over. */
#ifndef EK_RUNTIME_TOKENIZED_H
#define EK_RUNTIME_TOKENIZED_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "embedkit.h"

/* The arrays belong to the ek_ctx (runtime/ctx.h) and stay valid until the
 * next call that uses the same context. */
typedef struct ek_tokenized {
    const int32_t *ids;
    const int32_t *types; /* NULL: all 0 */
    size_t *start;        /* [n + 1]: input i is ids[start[i]..start[i+1]) */
    int *order;           /* input indices sorted by length, longest first (stable) */
} ek_tokenized;

/* Tokenizes n texts with opts' prompt, max_length and truncation exactly as
 * ek_embed does; *prompt_tokens receives the prompt's length in tokens
 * without its trailing [SEP] (sentence-transformers' prompt_length).
 * Errors name the input (numbered from opts->index_base). */
int ek_tokenize_inputs(ek_ctx *ctx, const ek_model *m, const char *const *texts, const size_t *lens, size_t n,
                       const ek_embed_options *opts, ek_tokenized *tk, int *prompt_tokens, ek_err *e);

#endif
