/* tests/test_pipeline_commands.c — the commands the engine gained for
 * issue 5, with real models from $EK_MODELS and the system clock:
 *   - per-stage timings: ek_ctx_last_timings after ek_embed (forward > 0,
 *     stages within the call), the embed command's summed stages within its
 *     latency, embedkit_stage_duration_seconds observed once per command
 *     that ran the model (not for a full cache hit);
 *   - SEARCH: texts embedded by the command give the same hits as embedding
 *     and searching by hand; vectors need no model; validation, capacity and
 *     argument errors name the field;
 *   - HEALTH with a registry reference: healthy / degraded versions,
 *     embedkit_model_health{model,version,state} set for the checked state
 *     only, timestamp and duration gauges, errors for unknown references;
 *   - the convenience calls ek_embed_text / ek_embed_texts: equal to
 *     ek_embed, through the middleware (validation errors in the context's
 *     last error, a cache hit on the second call, telemetry counts);
 *   - the device keys (device, gpu.auto_min_tokens): validated when read,
 *     applied by the engine to the context of every command that embeds. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedkit_pipeline.h"
#include "embedkit_registry.h"
#include "embedkit_search.h"
#include "support.h"

#define H 32

static const char *T[] = {"The quick brown fox.", "héllo wörld", "embedkit turns text into vectors",
                          "a fourth sentence", "and a fifth", "the sixth one"};
#define NT 6

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t stage_sum(const ek_stage_timings *t) {
    return t->tokenize_ns + t->forward_ns + t->pool_ns + t->normalize_ns;
}

typedef struct rig {
    ek_ctx *ctx;
    ek_engine *e;
} rig;

/* An engine with strict validation and model "m" = tiny-mean. */
static rig *rig_new(void) {
    rig *r = calloc(1, sizeof *r);
    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.threads = 1;
    cfg.validation_allow_empty = 0;
    cfg.validation_allow_nul = 0;
    ek_engine_options o = {&cfg, NULL, NULL, NULL, NULL};
    assert_int_equal(ek_ctx_new(&r->ctx), EK_OK);
    assert_int_equal(ek_engine_new(r->ctx, &o, &r->e), EK_OK);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "m");
    cmd.u.load.ref = ts_path(ts_models_dir(), "tiny-mean");
    cmd.u.load.version = "1";
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    return r;
}

static void rig_free(rig *r) {
    ek_engine_free(r->e);
    ek_ctx_free(r->ctx);
    free(r);
}

static char *render(rig *r) {
    char *text = NULL;
    assert_int_equal(ek_metrics_render(ek_engine_metrics(r->e), &text, NULL), EK_OK);
    return text;
}

/* The value of the sample line starting with prefix ("name{labels}"), or -1. */
static double sample(const char *text, const char *prefix) {
    size_t n = strlen(prefix);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, prefix, n) && p[n] == ' ') return strtod(p + n + 1, NULL);
    return -1;
}

/* Executes cmd, which must fail with status, origin and message (NULL: not
 * checked). */
static void expect_fail(rig *r, ek_cmd *cmd, int status, const char *origin, const char *message) {
    ek_cmd_ctx cx;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, cmd, &cx), status);
    if (origin) assert_string_equal(cx.origin, origin);
    if (message) assert_string_equal(cx.message, message);
}

static void direct(const char *const *texts, size_t n, float *out) {
    ek_ctx *ctx;
    ek_model *m;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_model_load(ctx, ts_path(ts_models_dir(), "tiny-mean"), &m), EK_OK);
    assert_int_equal(ek_embed(ctx, m, texts, NULL, n, NULL, out, NULL), EK_OK);
    ek_model_free(m);
    ek_ctx_free(ctx);
}

/* ---- per-stage timings ----------------------------------------------------- */

static void test_library_timings(void **state) {
    (void)state;
    ek_ctx *ctx;
    ek_model *m;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_model_load(ctx, ts_path(ts_models_dir(), "tiny-mean"), &m), EK_OK);
    ek_stage_timings t;
    assert_int_equal(ek_ctx_last_timings(ctx, &t), EK_OK);
    assert_int_equal(t.total_ns, 0); /* nothing embedded yet */
    assert_int_equal(ek_ctx_last_timings(NULL, &t), EK_ERR_INVALID_ARG);
    float out[NT * H];
    ek_embed_options o;
    ek_embed_options_init(&o);
    o.batch_size = 4; /* two forward passes */
    uint64_t t0 = now_ns();
    assert_int_equal(ek_embed(ctx, m, T, NULL, NT, &o, out, NULL), EK_OK);
    uint64_t wall = now_ns() - t0;
    assert_int_equal(ek_ctx_last_timings(ctx, &t), EK_OK);
    assert_true(t.forward_ns > 0);
    assert_true(t.tokenize_ns > 0);
    assert_true(t.pool_ns + t.normalize_ns > 0);
    assert_true(stage_sum(&t) <= t.total_ns);
    assert_true(t.total_ns <= wall);
    assert_int_equal(t.inputs, NT);
    assert_int_equal(t.batches, 2);
    assert_true(t.tokens >= 2 * NT); /* [CLS] and [SEP] at least */
    /* A failing call reports what ran: tokenization, no forward pass. */
    ek_embed_options strict;
    ek_embed_options_init(&strict);
    strict.truncate = EK_TRUNCATE_NONE;
    strict.max_length = 4;
    assert_int_equal(ek_embed(ctx, m, T, NULL, 1, &strict, out, NULL), EK_ERR_TOO_LONG);
    assert_int_equal(ek_ctx_last_timings(ctx, &t), EK_OK);
    assert_int_equal(t.forward_ns, 0);
    assert_int_equal(t.batches, 0);
    assert_true(t.tokenize_ns > 0);
    /* ek_embed_ids: no tokenization stage. */
    ek_encoding enc;
    memset(&enc, 0, sizeof enc);
    assert_int_equal(ek_tokenize(ctx, m, T[0], strlen(T[0]), NULL, 0, NULL, &enc), EK_OK);
    int32_t lens[] = {(int32_t)enc.n};
    assert_int_equal(ek_embed_ids(ctx, m, enc.ids, lens, 1, NULL, out), EK_OK);
    assert_int_equal(ek_ctx_last_timings(ctx, &t), EK_OK);
    assert_int_equal(t.tokenize_ns, 0);
    assert_true(t.forward_ns > 0);
    assert_int_equal(t.tokens, enc.n);
    ek_encoding_free(&enc);
    ek_model_free(m);
    ek_ctx_free(ctx);
}

static void test_engine_stage_metrics(void **state) {
    (void)state;
    rig *r = rig_new();
    float out[NT * H];
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_batch(&cmd, "m", T, NULL, NT, out, sizeof out / sizeof *out);
    ek_cmd_ctx_init(&cx, r->ctx);
    uint64_t t0 = now_ns();
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    uint64_t wall = now_ns() - t0;
    const ek_stage_timings *s = &cmd.u.embed.stages;
    assert_true(s->forward_ns > 0);
    assert_true(stage_sum(s) <= s->total_ns);
    assert_true(s->total_ns <= wall);
    assert_int_equal(s->inputs, NT);

    char *text = render(r);
    static const char *stages[] = {"tokenize", "forward", "pool", "normalize"};
    double stage_total = 0;
    for (int i = 0; i < 4; i++) {
        char key[128];
        snprintf(key, sizeof key, "embedkit_stage_duration_seconds_count{stage=\"%s\"}", stages[i]);
        assert_true(sample(text, key) == 1);
        snprintf(key, sizeof key, "embedkit_stage_duration_seconds_sum{stage=\"%s\"}", stages[i]);
        double v = sample(text, key);
        assert_true(v >= 0);
        stage_total += v;
    }
    assert_true(sample(text, "embedkit_stage_duration_seconds_sum{stage=\"forward\"}") > 0);
    /* Within the command's own latency, as telemetry measured it. */
    double latency = sample(text, "embedkit_command_duration_seconds_sum{command=\"embed_batch\"}");
    assert_true(latency > 0);
    assert_true(stage_total <= latency);
    free(text);

    /* The same texts again: all from the cache, the model does not run and
     * no stage is observed. */
    ek_cmd_embed_batch(&cmd, "m", T, NULL, NT, out, sizeof out / sizeof *out);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.embed.cache_hits, NT);
    assert_int_equal(cmd.u.embed.stages.forward_ns, 0);
    text = render(r);
    assert_true(sample(text, "embedkit_stage_duration_seconds_count{stage=\"forward\"}") == 1);
    free(text);
    rig_free(r);
}

/* ---- search ------------------------------------------------------------------ */

static void test_search(void **state) {
    (void)state;
    rig *r = rig_new();
    float emb[NT * H];
    direct(T, NT, emb);
    ek_matrix mx = {EK_VEC_F32, emb, NT, H, H};
    ek_index *idx;
    assert_int_equal(ek_index_new(r->ctx, &mx, NULL, &idx), EK_OK);

    /* Texts: embedded by the command, then searched. */
    const char *q[] = {T[2], T[4]};
    ek_hit hits[2 * 3], want[2 * 3];
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_search_texts(&cmd, "m", idx, q, NULL, 2, 3, hits, 6);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.search.per_query, 3);
    assert_int_equal(cmd.u.search.query_dim, H);
    assert_true(cmd.u.search.stages.forward_ns > 0);
    assert_int_equal(hits[0].index, 2);
    assert_int_equal(hits[3].index, 4);
    assert_true(hits[0].score > 0.9999f);
    /* ... exactly what embedding and searching by hand give */
    float qv[2 * H];
    ek_search_options so = {3, 0};
    size_t per = 0;
    memcpy(qv, emb + 2 * H, H * sizeof(float));
    memcpy(qv + H, emb + 4 * H, H * sizeof(float));
    assert_int_equal(ek_index_search(r->ctx, idx, qv, 2, H, &so, want, &per), EK_OK);
    assert_int_equal(per, 3);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(hits[i].index, want[i].index);
        assert_float_equal(hits[i].score, want[i].score, 1e-6);
    }

    /* Vectors: no model needed. */
    memset(hits, 0, sizeof hits);
    ek_cmd_search_vectors(&cmd, idx, qv, 2, H, 3, hits, 6);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.search.query_dim, 0);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(hits[i].index, want[i].index);
        assert_true(hits[i].score == want[i].score);
    }

    /* Query text into the caller's buffer, too small: an error naming it. */
    float small[H];
    ek_cmd_search_texts(&cmd, "m", idx, q, NULL, 2, 3, hits, 6);
    cmd.u.search.query_out = small;
    cmd.u.search.query_out_cap = H;
    expect_fail(r, &cmd, EK_ERR_INVALID_ARG, NULL, "query_out: capacity 32 floats, 2 x 32 needed");

    /* Validation sees the query texts. */
    const char *bad[] = {"fine", "nul\0byte"};
    size_t lens[] = {4, 8};
    ek_cmd_search_texts(&cmd, "m", idx, bad, lens, 2, 3, hits, 6);
    expect_fail(r, &cmd, EK_ERR_INVALID_ARG, "validation", "query[1]: NUL byte at offset 3");

    /* Hits capacity and missing arguments. */
    ek_cmd_search_texts(&cmd, "m", idx, q, NULL, 2, 3, hits, 5);
    expect_fail(r, &cmd, EK_ERR_INVALID_ARG, NULL, "hits: capacity 5, 2 x 3 needed");
    ek_cmd_search_texts(&cmd, "m", NULL, q, NULL, 2, 3, hits, 6);
    expect_fail(r, &cmd, EK_ERR_INVALID_ARG, NULL, "search: index is NULL");
    ek_cmd_search_texts(&cmd, "nope", idx, q, NULL, 2, 3, hits, 6);
    expect_fail(r, &cmd, EK_ERR_INVALID_ARG, NULL, "model nope is not loaded");
    /* A vector of the wrong size: the search layer's own error. */
    ek_cmd_search_vectors(&cmd, idx, qv, 1, 7, 3, hits, 6);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_not_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_string_equal(cx.origin, "handler");

    char *text = render(r);
    assert_true(sample(text, "embedkit_commands_total{command=\"search\",outcome=\"ok\"}") == 2);
    assert_true(sample(text, "embedkit_texts_total{command=\"search\"}") == 2);
    free(text);
    ek_index_free(idx);
    rig_free(r);
}

/* ---- health checks through the pipeline ---------------------------------------- */

static void test_health_check(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_ctx *ctx;
    ek_registry *reg;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_registry_open(ctx, home, NULL, &reg), EK_OK);
    assert_int_equal(ek_registry_import(ctx, reg, ts_path(ts_models_dir(), "tiny-mean"), "hm", NULL, NULL), EK_OK);
    ek_import_options io = {.no_canaries = 1};
    assert_int_equal(ek_registry_import(ctx, reg, ts_path(ts_models_dir(), "tiny-mean"), "hm", &io, NULL), EK_OK);
    ek_registry_close(reg);
    ek_ctx_free(ctx);

    rig *r = rig_new();
    ek_health h;
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    cmd.u.health.ref = "hm@1";
    cmd.u.health.home = home;
    cmd.u.health.rehash = 1;
    cmd.u.health.check = &h;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    if (strcmp(h.result, "healthy")) fail_msg("%s: %s", h.result, h.reason);
    assert_string_equal(cmd.u.health.check_model, "hm");
    assert_int_equal(cmd.u.health.check_version, 1);
    assert_int_equal(cmd.u.health.live, 1);
    assert_int_equal(cmd.u.health.ready, 1);
    assert_string_equal(cmd.u.health.detail, "hm@1: healthy");

    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    cmd.u.health.ref = "hm"; /* latest: version 2, no canaries */
    cmd.u.health.home = home;
    cmd.u.health.check = &h;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_string_equal(h.result, "degraded");
    assert_int_equal(cmd.u.health.check_version, 2);
    assert_int_equal(cmd.u.health.ready, 1);

    char *text = render(r);
    assert_true(sample(text, "embedkit_model_health{model=\"hm\",version=\"1\",state=\"healthy\"}") == 1);
    assert_true(sample(text, "embedkit_model_health{model=\"hm\",version=\"1\",state=\"degraded\"}") == 0);
    assert_true(sample(text, "embedkit_model_health{model=\"hm\",version=\"1\",state=\"unhealthy\"}") == 0);
    assert_true(sample(text, "embedkit_model_health{model=\"hm\",version=\"2\",state=\"degraded\"}") == 1);
    assert_true(sample(text, "embedkit_model_health{model=\"hm\",version=\"2\",state=\"healthy\"}") == 0);
    double ts = sample(text, "embedkit_model_health_check_timestamp_seconds{model=\"hm\",version=\"1\"}");
    assert_true(ts > 1.6e9 && ts <= (double)time(NULL) + 1);
    assert_true(sample(text, "embedkit_model_health_check_duration_seconds{model=\"hm\",version=\"1\"}") > 0);
    assert_true(sample(text, "embedkit_commands_total{command=\"health\",outcome=\"ok\"}") == 2);
    free(text);

    /* Errors: an unknown reference, a check without a result. */
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    cmd.u.health.ref = "nosuch";
    cmd.u.health.home = home;
    cmd.u.health.check = &h;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_not_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_string_equal(cx.origin, "handler");
    assert_non_null(strstr(cx.message, "nosuch"));
    cmd.u.health.check = NULL;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(cx.message, "needs an ek_health"));

    /* Without ref: readiness of a loaded model, as before. */
    ek_cmd_init(&cmd, EK_CMD_HEALTH, "m");
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.health.ready, 1);
    assert_string_equal(cmd.u.health.detail, "model m@1 loaded, breaker closed");
    rig_free(r);
    ts_rm_rf(home);
}

/* ---- convenience calls ------------------------------------------------------------ */

static void test_convenience(void **state) {
    (void)state;
    rig *r = rig_new();
    float want[NT * H], got[NT * H];
    direct(T, NT, want);
    assert_int_equal(ek_engine_embed_dim(r->e, "m"), H);
    assert_int_equal(ek_engine_embed_dim(r->e, NULL), H);
    assert_int_equal(ek_engine_embed_dim(r->e, "nope"), -1);

    int dim = 0;
    assert_int_equal(ek_embed_text(r->e, r->ctx, "m", T[1], strlen(T[1]), got, H, &dim), EK_OK);
    assert_int_equal(dim, H);
    assert_memory_equal(got, want + H, H * sizeof(float));
    /* again: served by the cache */
    memset(got, 0, sizeof got);
    assert_int_equal(ek_embed_text(r->e, r->ctx, NULL, T[1], strlen(T[1]), got, H, NULL), EK_OK);
    assert_memory_equal(got, want + H, H * sizeof(float));
    ek_cache_stats cs;
    ek_cache_get_stats(ek_engine_cache(r->e), &cs);
    assert_int_equal(cs.hits, 1);
    assert_int_equal(cs.misses, 1);

    /* batch: input order, one hit (T[1]) and five misses */
    assert_int_equal(ek_embed_texts(r->e, r->ctx, "m", T, NULL, NT, got, NT * H, &dim), EK_OK);
    assert_int_equal(dim, H);
    for (int i = 0; i < NT * H; i++) assert_float_equal(got[i], want[i], 1e-6);
    ek_cache_get_stats(ek_engine_cache(r->e), &cs);
    assert_int_equal(cs.hits, 2);

    /* validation, in the context's last error */
    assert_int_equal(ek_embed_text(r->e, r->ctx, "m", "ab\0c", 4, got, H, &dim), EK_ERR_INVALID_ARG);
    assert_string_equal(ek_ctx_last_error(r->ctx), "validation: text[0]: NUL byte at offset 2");
    assert_int_equal(dim, 0);
    assert_int_equal(ek_embed_text(r->e, r->ctx, "m", "", 0, got, H, NULL), EK_ERR_INVALID_ARG);
    assert_string_equal(ek_ctx_last_error(r->ctx), "validation: text[0]: empty text");
    const char *two[] = {"ok", "\xff"};
    assert_int_equal(ek_embed_texts(r->e, r->ctx, "m", two, NULL, 2, got, 2 * H, NULL), EK_ERR_UTF8);
    assert_string_equal(ek_ctx_last_error(r->ctx), "validation: texts[1]: invalid UTF-8 at byte offset 0");
    assert_int_equal(ek_embed_texts(r->e, r->ctx, "m", T, NULL, 0, got, 0, NULL), EK_ERR_INVALID_ARG);
    assert_string_equal(ek_ctx_last_error(r->ctx), "validation: texts: empty batch");
    /* capacity (checked by the cache, which writes out) and the model */
    assert_int_equal(ek_embed_texts(r->e, r->ctx, "m", T, NULL, 2, got, H, NULL), EK_ERR_INVALID_ARG);
    assert_string_equal(ek_ctx_last_error(r->ctx), "cache: out: capacity 32 floats, 2 x 32 needed");
    assert_int_equal(ek_embed_text(r->e, r->ctx, "nope", "x", 1, got, H, NULL), EK_ERR_INVALID_ARG);
    assert_string_equal(ek_ctx_last_error(r->ctx), "handler: model nope is not loaded");
    assert_int_equal(ek_embed_text(NULL, r->ctx, "m", "x", 1, got, H, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_embed_text(r->e, NULL, "m", "x", 1, got, H, NULL), EK_ERR_INVALID_ARG);

    /* telemetry saw every call */
    char *text = render(r);
    assert_true(sample(text, "embedkit_commands_total{command=\"embed_text\",outcome=\"ok\"}") == 2);
    assert_true(sample(text, "embedkit_commands_total{command=\"embed_text\",outcome=\"invalid_arg\"}") == 3);
    assert_true(sample(text, "embedkit_commands_total{command=\"embed_batch\",outcome=\"ok\"}") == 1);
    assert_true(sample(text, "embedkit_commands_total{command=\"embed_batch\",outcome=\"utf8\"}") == 1);
    free(text);
    rig_free(r);
}

/* ---- device selection ------------------------------------------------------------ */

static void test_device_config(void **state) {
    (void)state;
    ek_config cfg;
    ek_config_defaults(&cfg);
    assert_string_equal(cfg.device, "cpu");
    assert_int_equal(cfg.gpu_auto_min_tokens, 0);
    char errs[512] = "";
    static const char *good[] = {"cpu", "gpu", "auto", "opencl:0:0", "opencl:12:3"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++)
        assert_int_equal(ek_config_set(&cfg, "device", good[i], EK_SRC_FLAG, "--device", errs, sizeof errs), 0);
    assert_string_equal(cfg.device, "opencl:12:3");
    static const char *bad[] = {"tpu", "opencl", "opencl:0", "opencl:a:0", "opencl:0:0:0", "opencl:-1:0", "GPU", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        errs[0] = '\0';
        assert_int_equal(ek_config_set(&cfg, "device", bad[i], EK_SRC_FLAG, "--device", errs, sizeof errs), 1);
        assert_non_null(strstr(errs, "is not cpu, gpu, auto or opencl:PLATFORM:DEVICE"));
    }
    errs[0] = '\0';
    assert_int_equal(ek_config_set(&cfg, "gpu.auto_min_tokens", "-1", EK_SRC_ENV, "EK_GPU_AUTO_MIN_TOKENS", errs,
                                   sizeof errs), 1);
    assert_non_null(strstr(errs, "gpu.auto_min_tokens: -1 is out of range"));
    assert_int_equal(ek_config_set(&cfg, "gpu.auto_min_tokens", "2048", EK_SRC_ENV, "EK_GPU_AUTO_MIN_TOKENS", errs,
                                   sizeof errs), 0);
    assert_int_equal(cfg.gpu_auto_min_tokens, 2048);
}

/* The engine applies its configured device to the caller's context: a
 * device that does not exist fails the command (naming it), cpu runs. */
static void test_device_applied(void **state) {
    (void)state;
    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.threads = 1;
    snprintf(cfg.device, sizeof cfg.device, "opencl:97:0");
    ek_engine_options o = {&cfg, NULL, NULL, NULL, NULL};
    ek_ctx *ctx;
    ek_engine *e;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_engine_new(ctx, &o, &e), EK_OK);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "m");
    cmd.u.load.ref = ts_path(ts_models_dir(), "tiny-mean");
    ek_cmd_ctx_init(&cx, ctx);
    assert_int_equal(ek_engine_execute(e, &cmd, &cx), EK_OK);
    float out[H];
    assert_int_not_equal(ek_embed_text(e, ctx, "m", "x", 1, out, H, NULL), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "opencl:97:0"));
    ek_engine_free(e);
    /* the default (cpu) on the same context: runs there */
    ek_config_defaults(&cfg);
    assert_int_equal(ek_engine_new(ctx, &o, &e), EK_OK);
    ek_cmd_ctx_init(&cx, ctx);
    assert_int_equal(ek_engine_execute(e, &cmd, &cx), EK_OK);
    assert_int_equal(ek_embed_text(e, ctx, "m", "x", 1, out, H, NULL), EK_OK);
    assert_string_equal(ek_ctx_last_device(ctx), "cpu");
    ek_engine_free(e);
    ek_ctx_free(ctx);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_library_timings),
        cmocka_unit_test(test_engine_stage_metrics),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_health_check),
        cmocka_unit_test(test_convenience),
        cmocka_unit_test(test_device_config),
        cmocka_unit_test(test_device_applied),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
