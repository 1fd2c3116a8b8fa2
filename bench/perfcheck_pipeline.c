/* bench/perfcheck_pipeline.c — the pipeline case of ek-perfcheck, in its
 * own file because embedkit_pipeline.h and embedkit_search.h cannot be
 * included together (both name a type ek_metric_family).  8 pass-through
 * middleware around a no-op handler: the pipeline's own cost. */
#include <stddef.h>

#include "embedkit_pipeline.h"

void *perfcheck_pipeline_new(void);
int perfcheck_pipeline_run(void *pipe, ek_ctx *ctx, int commands);
void perfcheck_pipeline_free(void *pipe);

static ek_status pass(void *st, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    (void)st;
    return ek_next_run(next, cmd, cx);
}

static ek_status noop(void *st, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)st;
    (void)cx;
    cmd->u.embed.dim = 1;
    return EK_OK;
}

void *perfcheck_pipeline_new(void) {
    ek_pipeline *p = NULL;
    if (ek_pipeline_new(NULL, &p)) return NULL;
    for (int i = 0; i < 8; i++) {
        ek_middleware mw = {"pass", EK_MW_PREPROCESS, EK_SCOPE_ALL, 0, pass, NULL, NULL};
        if (ek_pipeline_use(p, &mw)) goto fail;
    }
    if (ek_pipeline_handle(p, EK_CMD_EMBED_TEXT, noop, NULL) || ek_pipeline_freeze(p)) goto fail;
    return p;
fail:
    ek_pipeline_free(p);
    return NULL;
}

int perfcheck_pipeline_run(void *pipe, ek_ctx *ctx, int commands) {
    static const char text[] = "a short sentence";
    float out[4];
    for (int i = 0; i < commands; i++) {
        ek_cmd cmd;
        ek_cmd_ctx cx;
        ek_cmd_embed_text(&cmd, NULL, text, sizeof text - 1, out, 4);
        ek_cmd_ctx_init(&cx, ctx);
        if (ek_pipeline_execute(pipe, &cmd, &cx) != EK_OK) return 1;
    }
    return 0;
}

void perfcheck_pipeline_free(void *pipe) { ek_pipeline_free(pipe); }
