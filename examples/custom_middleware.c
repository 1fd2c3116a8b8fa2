/* examples/custom_middleware.c — a middleware of your own, added to the
 * default pipeline before it is frozen: an "allow list" of callers in the
 * authentication class (it runs before everything else), and a counter in
 * the post-processing class, scoped to embedding commands only.
 *
 *   ek_example_custom_middleware MODEL_DIR */
#include <stdio.h>
#include <string.h>

#include "embedkit_pipeline.h"

static ek_status allow_list(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    const char *const *allowed = state;
    for (; *allowed; allowed++)
        if (!strcmp(*allowed, cx->caller)) return ek_next_run(next, cmd, cx);
    return ek_cmd_fail(cx, "auth", EK_ERR_INVALID_ARG, "caller \"%s\" is not allowed", cx->caller);
}

static ek_status count_texts(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    ek_status st = ek_next_run(next, cmd, cx);
    if (st == EK_OK) *(size_t *)state += cmd->u.embed.n;
    return st;
}

typedef struct extras { const char *const *allowed; size_t *counter; } extras;

static ek_status extend(void *arg, ek_pipeline *p) {
    extras *x = arg;
    ek_middleware auth = {"allow-list", EK_MW_AUTH, EK_SCOPE_ALL, 0, allow_list, (void *)x->allowed, NULL};
    ek_middleware count = {"count-texts", EK_MW_POSTPROCESS, EK_SCOPE_EMBED, 0, count_texts, x->counter, NULL};
    ek_status st = ek_pipeline_use(p, &auth);
    return st ? st : ek_pipeline_use(p, &count);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    static const char *const allowed[] = {"alice", "loader", NULL};
    size_t counter = 0;
    extras x = {allowed, &counter};
    ek_ctx *ctx = NULL;
    ek_engine *e = NULL;
    int rc = 1;
    if (ek_ctx_new(&ctx) || ek_engine_new_ext(ctx, NULL, extend, &x, &e)) goto out;
    char chain[256];
    ek_pipeline_describe(ek_engine_pipeline(e), EK_CMD_EMBED_BATCH, chain, sizeof chain);
    printf("embed_batch chain: %s\n", chain);

    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "m");
    cmd.u.load.ref = argv[1];
    ek_cmd_ctx_init(&cx, ctx);
    snprintf(cx.caller, sizeof cx.caller, "loader");
    if (ek_engine_execute(e, &cmd, &cx)) {
        fprintf(stderr, "load: %s\n", ek_ctx_last_error(ctx));
        goto out;
    }
    static float out[2 * 4096];
    const char *texts[] = {"first", "second"};
    const char *who[] = {"alice", "mallory"};
    ek_status got[2];
    for (int i = 0; i < 2; i++) {
        ek_cmd_embed_batch(&cmd, "m", texts, NULL, 2, out, sizeof out / sizeof *out);
        ek_cmd_ctx_init(&cx, ctx);
        snprintf(cx.caller, sizeof cx.caller, "%s", who[i]);
        got[i] = ek_engine_execute(e, &cmd, &cx);
        printf("%-8s -> %s%s%s\n", who[i], ek_pipe_status_name(got[i]), got[i] ? ": " : "", got[i] ? cx.message : "");
    }
    printf("texts embedded: %zu\n", counter);
    rc = got[0] == EK_OK && got[1] != EK_OK && counter == 2 ? 0 : 1;
out:
    ek_engine_free(e);
    ek_ctx_free(ctx);
    return rc;
}
