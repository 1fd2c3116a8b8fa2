/* examples/batch_cache.c — the embedding cache at work: a second batch that
 * repeats texts embeds only the new ones, keeps input order, and returns
 * vectors identical to the first computation.
 *
 *   ek_example_batch_cache MODEL_DIR */
#include <stdio.h>
#include <string.h>

#include "embedkit_pipeline.h"

#define MAXD 4096

static float first[2 * MAXD], second[3 * MAXD];

static int run(ek_engine *e, ek_ctx *ctx, const char *const *texts, size_t n, float *out, ek_cmd *cmd) {
    ek_cmd_ctx cx;
    ek_cmd_embed_batch(cmd, "m", texts, NULL, n, out, n * MAXD);
    ek_cmd_ctx_init(&cx, ctx);
    if (ek_engine_execute(e, cmd, &cx) != EK_OK) {
        fprintf(stderr, "embed: %s: %s\n", cx.origin, cx.message);
        return -1;
    }
    printf("batch of %zu: %zu cache hits, %zu misses (embedded)\n", n, cmd->u.embed.cache_hits,
           cmd->u.embed.cache_misses);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL_DIR\n", argv[0]);
        return 2;
    }
    ek_ctx *ctx = NULL;
    ek_engine *e = NULL;
    int rc = 1;
    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.cache_max_bytes = 1 << 20; /* a small cache is plenty here */
    ek_engine_options o = {&cfg, NULL, NULL, NULL, NULL};
    if (ek_ctx_new(&ctx) || ek_engine_new(ctx, &o, &e)) goto out;
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "m");
    cmd.u.load.ref = argv[1];
    ek_cmd_ctx_init(&cx, ctx);
    if (ek_engine_execute(e, &cmd, &cx)) {
        fprintf(stderr, "load: %s\n", ek_ctx_last_error(ctx));
        goto out;
    }
    const char *a[] = {"alpha", "beta"};
    const char *b[] = {"gamma", "beta", "alpha"}; /* one new, two cached, reordered */
    if (run(e, ctx, a, 2, first, &cmd)) goto out;
    int dim = cmd.u.embed.dim;
    if (run(e, ctx, b, 3, second, &cmd)) goto out;
    int same_beta = !memcmp(second + dim, first + dim, (size_t)dim * sizeof(float));
    int same_alpha = !memcmp(second + 2 * dim, first, (size_t)dim * sizeof(float));
    printf("cached vectors identical and in input order: %s\n", same_beta && same_alpha ? "yes" : "NO");
    ek_cache_stats st;
    ek_cache_get_stats(ek_engine_cache(e), &st);
    printf("cache: %zu entries, %zu bytes, %llu hits, %llu misses\n", st.entries, st.bytes,
           (unsigned long long)st.hits, (unsigned long long)st.misses);
    rc = same_beta && same_alpha && cmd.u.embed.cache_hits == 2 ? 0 : 1;
out:
    ek_engine_free(e);
    ek_ctx_free(ctx);
    return rc;
}
