/* cli/bench_pipeline.c — `ek bench pipeline`: what the pipeline costs per
 * command.  Two chains around a no-op handler:
 *   - 8 pass-through middleware (the pipeline's own overhead:
 *     overhead_ns_per_command, target < 1000 ns);
 *   - the built-in middleware as the engine configures them, with limits
 *     that never trigger (builtin_ns_per_command: what a real command pays
 *     for validation, breaker bookkeeping, telemetry and so on).
 * Times are medians of 7 runs after a warm-up. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "embedkit_pipeline.h"

static ek_status pass(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    (void)state;
    return ek_next_run(next, cmd, cx);
}

static ek_status noop_handler(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)state;
    (void)cx;
    cmd->u.embed.dim = 1;
    return EK_OK;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median ns per command over 7 runs of iters commands (through p, or the
 * handler directly when p is NULL). */
static double measure(const ek_pipeline *p, long iters) {
    double runs[7];
    static const char text[] = "a short sentence to embed";
    float out[4];
    for (int r = -1; r < 7; r++) {
        double t0 = now_s();
        for (long i = 0; i < iters; i++) {
            ek_cmd cmd;
            ek_cmd_ctx cx;
            ek_cmd_embed_text(&cmd, NULL, text, sizeof text - 1, out, 4);
            ek_cmd_ctx_init(&cx, NULL);
            ek_status st = p ? ek_pipeline_execute(p, &cmd, &cx) : noop_handler(NULL, &cmd, &cx);
            if (st != EK_OK) {
                fprintf(stderr, "ek bench pipeline: error: %s: %s\n", cx.origin, cx.message);
                return -1;
            }
            __asm__ volatile("" ::: "memory");
        }
        if (r >= 0) runs[r] = (now_s() - t0) * 1e9 / (double)iters;
    }
    qsort(runs, 7, sizeof runs[0], cmp_double);
    return runs[3];
}

int ek_bench_pipeline(int argc, char **argv) {
    int json = 0, iters = 200000;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--iterations")) {
            if (cli_int("bench pipeline", "--iterations", i + 1 < argc ? argv[++i] : NULL, 1, 100000000, &iters))
                return 2;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: ek bench pipeline [--iterations N] [--json]\n"
                   "  per-command cost of 8 pass-through middleware around a no-op handler\n"
                   "  (overhead_ns_per_command) and of the built-in middleware chain\n");
            return 0;
        } else return cli_usage("bench pipeline", "unknown option \"%s\"", argv[i]);
    }
    int rc = 1;
    ek_clock clock = ek_clock_system();
    ek_pipeline *plain = NULL, *builtin = NULL;
    ek_metrics *metrics = NULL;
    ek_ratelimit *rl = NULL;
    ek_breaker *br = NULL;
    ek_bulkhead *bh = NULL;
    ek_cache *cache = NULL;
    ek_telemetry_mw *tm = NULL;
    if (ek_pipeline_new(&clock, &plain) || ek_pipeline_new(&clock, &builtin) || ek_metrics_new(&metrics))
        goto out;
    static const ek_mw_class classes[8] = {EK_MW_AUTH, EK_MW_VALIDATION, EK_MW_RESILIENCE, EK_MW_RESILIENCE,
                                           EK_MW_PREPROCESS, EK_MW_MONITORING, EK_MW_POSTPROCESS,
                                           EK_MW_OBSERVABILITY};
    for (int i = 0; i < 8; i++) {
        ek_middleware m = {"pass", classes[i], EK_SCOPE_ALL, 0, pass, NULL, NULL};
        if (ek_pipeline_use(plain, &m)) goto out;
    }
    if (ek_pipeline_handle(plain, EK_CMD_EMBED_TEXT, noop_handler, NULL) || ek_pipeline_freeze(plain)) goto out;

    /* The built-ins, configured so nothing is ever refused. */
    ek_validate_config vc;
    ek_validate_config_init(&vc);
    ek_ratelimit_config rc_ = {1e12, 1e12, 0, 0};
    ek_breaker_config bc;
    ek_breaker_config_init(&bc);
    ek_deadline dl = {0, &clock};
    ek_retry_config rt;
    ek_retry_config_init(&rt, &clock);
    if (ek_ratelimit_new(&rc_, &clock, metrics, &rl) || ek_breaker_new(&bc, &clock, NULL, metrics, &br) ||
        ek_bulkhead_new(1 << 20, 0, &bh) || ek_cache_new(0, NULL, metrics, &cache) ||
        ek_telemetry_mw_new(metrics, NULL, &clock, &tm))
        goto out;
    ek_middleware mws[8] = {ek_telemetry_middleware(tm), ek_validate_middleware(&vc),
                            ek_ratelimit_middleware(rl), ek_deadline_middleware(&dl),
                            ek_retry_middleware(&rt), ek_breaker_middleware(br),
                            ek_bulkhead_middleware(bh), ek_cache_middleware(cache)};
    for (int i = 0; i < 8; i++)
        if (ek_pipeline_use(builtin, &mws[i])) goto out;
    if (ek_pipeline_handle(builtin, EK_CMD_EMBED_TEXT, noop_handler, NULL) || ek_pipeline_freeze(builtin)) goto out;

    double direct = measure(NULL, iters);
    double through = measure(plain, iters);
    double full = measure(builtin, iters / 4 > 0 ? iters / 4 : 1);
    if (direct < 0 || through < 0 || full < 0) goto out;
    double overhead = through - direct;
    if (overhead < 0) overhead = 0;
    if (json)
        printf("{\"benchmark\":\"pipeline\",\"middleware\":8,\"iterations\":%d,"
               "\"overhead_ns_per_command\":%.1f,\"ns_per_command\":%.1f,"
               "\"direct_ns_per_command\":%.1f,\"builtin_ns_per_command\":%.1f,"
               "\"target_ns\":1000,\"within_target\":%s}\n",
               iters, overhead, through, direct, full, overhead < 1000 ? "true" : "false");
    else
        printf("pipeline, 8 pass-through middleware: %.1f ns/command overhead (%.1f total, %.1f direct)\n"
               "pipeline, 8 built-in middleware:     %.1f ns/command\n",
               overhead, through, direct, full);
    rc = 0;
out:
    if (rc) fprintf(stderr, "ek bench pipeline: error: setting up the pipelines failed\n");
    ek_pipeline_free(plain);
    ek_pipeline_free(builtin);
    ek_telemetry_mw_free(tm);
    ek_cache_free(cache);
    ek_bulkhead_free(bh);
    ek_breaker_free(br);
    ek_ratelimit_free(rl);
    ek_metrics_free(metrics);
    return rc;
}
