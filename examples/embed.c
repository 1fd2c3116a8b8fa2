/* examples/embed.c — embed texts through the default pipeline.
 *
 *   ek_example_embed MODEL_DIR [TEXT...]
 *
 * Builds the engine (validation, resilience, cache, telemetry) with the
 * default configuration, loads a model under the name "mini", embeds the
 * texts as one batch command and prints the first values of each vector. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s MODEL_DIR [TEXT...]\n", argv[0]);
        return 2;
    }
    const char *defaults[] = {"The quick brown fox.", "Embeddings turn text into vectors."};
    const char *const *texts = argc > 2 ? (const char *const *)argv + 2 : defaults;
    size_t n = argc > 2 ? (size_t)(argc - 2) : 2;

    ek_ctx *ctx = NULL;
    ek_engine *engine = NULL;
    int rc = 1;
    if (ek_ctx_new(&ctx) != EK_OK || ek_engine_new(ctx, NULL, &engine) != EK_OK) goto out;

    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "mini");
    cmd.u.load.ref = argv[1];
    ek_cmd_ctx_init(&cx, ctx);
    if (ek_engine_execute(engine, &cmd, &cx) != EK_OK) {
        fprintf(stderr, "load: %s\n", ek_ctx_last_error(ctx));
        goto out;
    }

    size_t cap = n * 4096;
    float *out = malloc(cap * sizeof *out);
    if (!out) goto out;
    ek_cmd_embed_batch(&cmd, "mini", texts, NULL, n, out, cap);
    ek_cmd_ctx_init(&cx, ctx);
    snprintf(cx.caller, sizeof cx.caller, "example");
    if (ek_engine_execute(engine, &cmd, &cx) != EK_OK) {
        fprintf(stderr, "embed: %s: %s\n", cx.origin, cx.message);
        free(out);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        printf("[%zu] dim %d:", i, cmd.u.embed.dim);
        for (int d = 0; d < 4 && d < cmd.u.embed.dim; d++) printf(" %+.5f", out[i * (size_t)cmd.u.embed.dim + (size_t)d]);
        printf(" ...  %s\n", texts[i]);
    }
    free(out);
    rc = 0;
out:
    ek_engine_free(engine);
    ek_ctx_free(ctx);
    return rc;
}
