/* tests/test_pipeline_integration.c — the default pipeline (ek_engine) with
 * real models from $EK_MODELS: single and batch embedding equal the library
 * call; cache miss then hit with identical vectors; a batch mixing cached and
 * new texts keeps order; empty and over-long input rejected with the right
 * status; a failing model opens the breaker, calls fail fast, a trial call
 * after the wait closes it; rate limit exceeded then recovered; swapping to
 * another version changes the results; a deadline expiring mid-batch stops
 * the work; health, tokenize, similarity, unload, preload and metrics. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "support.h"

#define H 32
#define SEC 1000000000LL

typedef struct fake_clock { int64_t now; } fake_clock;
static int64_t fc_now(void *a) { return ((fake_clock *)a)->now; }
static void fc_sleep(void *a, int64_t ns) { ((fake_clock *)a)->now += ns; }
static int64_t fc_wall(void *a) { return ((fake_clock *)a)->now; }

typedef struct faults {
    int status;          /* returned by the hook (EK_OK: no fault) */
    int calls;
    int64_t advance_ns;  /* moves the fake clock (deadline test) */
    fake_clock *fc;
} faults;

static ek_status fault_hook(void *arg, const ek_cmd *cmd) {
    (void)cmd;
    faults *f = arg;
    f->calls++;
    f->fc->now += f->advance_ns;
    return (ek_status)f->status;
}

typedef struct rig {
    fake_clock fc;
    ek_clock clock;
    faults f;
    ek_ctx *ctx;
    ek_engine *e;
} rig;

static rig *rig_new(void (*tweak)(ek_config *)) {
    rig *r = calloc(1, sizeof *r);
    r->fc.now = 1000 * SEC;
    r->clock = (ek_clock){fc_now, fc_sleep, fc_wall, &r->fc};
    r->f.fc = &r->fc;
    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.threads = 1;
    if (tweak) tweak(&cfg);
    ek_engine_options o = {&cfg, &r->clock, NULL, fault_hook, &r->f};
    assert_int_equal(ek_ctx_new(&r->ctx), EK_OK);
    assert_int_equal(ek_engine_new(r->ctx, &o, &r->e), EK_OK);
    return r;
}

static void rig_free(rig *r) {
    ek_engine_free(r->e);
    ek_ctx_free(r->ctx);
    free(r);
}

static ek_status load(rig *r, ek_cmd_type type, const char *name, const char *model_dir, const char *version) {
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, type, name);
    cmd.u.load.ref = ts_path(ts_models_dir(), model_dir);
    cmd.u.load.version = version;
    ek_cmd_ctx_init(&cx, r->ctx);
    ek_status st = ek_engine_execute(r->e, &cmd, &cx);
    if (st) fprintf(stderr, "load: %s: %s\n", cx.origin, cx.message);
    return st;
}

static ek_status embed(rig *r, const char *model, const char *const *texts, size_t n, float *out,
                       ek_cmd *cmd_out, ek_cmd_ctx *cx_out) {
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_batch(&cmd, model, texts, NULL, n, out, n * H);
    ek_cmd_ctx_init(&cx, r->ctx);
    ek_status st = ek_engine_execute(r->e, &cmd, &cx);
    if (cmd_out) *cmd_out = cmd;
    if (cx_out) *cx_out = cx;
    return st;
}

static void direct(const char *model_dir, const char *const *texts, size_t n, float *out) {
    ek_ctx *ctx;
    ek_model *m;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_model_load(ctx, ts_path(ts_models_dir(), model_dir), &m), EK_OK);
    assert_int_equal(ek_embed(ctx, m, texts, NULL, n, NULL, out, NULL), EK_OK);
    ek_model_free(m);
    ek_ctx_free(ctx);
}

static const char *T[] = {"The quick brown fox.", "héllo wörld", "embedkit turns text into vectors",
                          "a fourth sentence", "and a fifth", "the sixth one"};

static void test_single_batch_cache_order(void **state) {
    (void)state;
    rig *r = rig_new(NULL);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    float want[6 * H], got[6 * H];
    direct("tiny-mean", T, 6, want);

    /* single text */
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_text(&cmd, "m", T[0], strlen(T[0]), got, H);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.embed.dim, H);
    assert_memory_equal(got, want, H * sizeof(float));
    assert_int_equal(cmd.u.embed.cache_misses, 1);

    /* the same text again: a hit, identical vector */
    float again[H];
    ek_cmd_embed_text(&cmd, "m", T[0], strlen(T[0]), again, H);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.embed.cache_hits, 1);
    assert_memory_equal(again, want, H * sizeof(float));

    /* T[2] cached too; then a batch of all six: 2 hits, 4 misses, in order */
    assert_int_equal(embed(r, "m", &T[2], 1, got, NULL, NULL), EK_OK);
    memset(got, 0, sizeof got);
    assert_int_equal(embed(r, "m", T, 6, got, &cmd, NULL), EK_OK);
    assert_int_equal(cmd.u.embed.cache_hits, 2);
    assert_int_equal(cmd.u.embed.cache_misses, 4);
    for (int i = 0; i < 6; i++)
        for (int d = 0; d < H; d++) assert_float_equal(got[i * H + d], want[i * H + d], 1e-6);

    /* The default model (NULL) is the first loaded. */
    assert_int_equal(embed(r, NULL, T, 1, got, NULL, NULL), EK_OK);
    assert_memory_equal(got, want, H * sizeof(float));
    ek_cache_stats st;
    ek_cache_get_stats(ek_engine_cache(r->e), &st);
    assert_int_equal(st.hits, 4);
    rig_free(r);
}

static void limits(ek_config *c) {
    c->validation_max_text_bytes = 100;
    c->validation_allow_empty = 0; /* the default accepts them, as sentence-transformers */
}

static void test_rejects(void **state) {
    (void)state;
    rig *r = rig_new(limits);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    float out[3 * H];
    ek_cmd_ctx cx;
    const char *empty[] = {"fine", ""};
    assert_int_equal(embed(r, "m", empty, 2, out, NULL, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.origin, "validation");
    assert_string_equal(cx.message, "texts[1]: empty text");
    assert_string_equal(ek_ctx_last_error(r->ctx), "validation: texts[1]: empty text");
    char long_text[200];
    memset(long_text, 'a', sizeof long_text - 1);
    long_text[sizeof long_text - 1] = '\0';
    const char *longs[] = {"fine", "ok", long_text};
    assert_int_equal(embed(r, "m", longs, 3, out, NULL, &cx), EK_ERR_TOO_LONG);
    assert_string_equal(cx.message, "texts[2]: 199 bytes exceed the limit of 100");
    /* unknown model; a search without an index (validated first) */
    assert_int_equal(embed(r, "nope", T, 1, out, NULL, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "model nope is not loaded");
    ek_cmd cmd;
    const char *q[] = {"q", ""};
    ek_cmd_search_texts(&cmd, "m", NULL, q, NULL, 2, 1, NULL, 0);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "query[1]: empty text");
    rig_free(r);
}

static void fragile(ek_config *c) {
    c->breaker_minimum_calls = 2;
    c->breaker_window_size = 2;
    c->breaker_half_open_calls = 1;
    c->breaker_wait_open_s = 10;
    c->retry_max_attempts = 1;
}

static void test_breaker_opens_and_closes(void **state) {
    (void)state;
    rig *r = rig_new(fragile);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    float out[H];
    ek_cmd_ctx cx;
    r->f.status = EK_ERR_IO;
    assert_int_equal(embed(r, "m", &T[0], 1, out, NULL, &cx), EK_ERR_IO);
    assert_string_equal(cx.origin, "fault");
    assert_int_equal(embed(r, "m", &T[1], 1, out, NULL, &cx), EK_ERR_IO);
    assert_int_equal(ek_breaker_get_state(ek_engine_breaker(r->e), "m@1"), EK_BREAKER_OPEN);
    /* fails fast: the model is not touched */
    int calls = r->f.calls;
    assert_int_equal(embed(r, "m", &T[2], 1, out, NULL, &cx), EK_ERR_CIRCUIT_OPEN);
    assert_int_equal(r->f.calls, calls);
    assert_non_null(strstr(cx.message, "model m@1: circuit breaker open, retry in 10.000 s"));
    /* health: live, not ready */
    ek_cmd h;
    ek_cmd_init(&h, EK_CMD_HEALTH, "m");
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &h, &cx), EK_OK);
    assert_int_equal(h.u.health.live, 1);
    assert_int_equal(h.u.health.ready, 0);
    /* after the wait, the model recovered: one trial call closes it */
    r->fc.now += 10 * SEC;
    r->f.status = EK_OK;
    assert_int_equal(embed(r, "m", &T[2], 1, out, NULL, &cx), EK_OK);
    assert_int_equal(ek_breaker_get_state(ek_engine_breaker(r->e), "m@1"), EK_BREAKER_CLOSED);
    ek_cmd_init(&h, EK_CMD_HEALTH, "m");
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &h, &cx), EK_OK);
    assert_int_equal(h.u.health.ready, 1);
    rig_free(r);
}

static void limited(ek_config *c) {
    c->ratelimit_rate = 2;   /* 2 items per second */
    c->ratelimit_burst = 3;
    c->cache_max_bytes = 0;
}

static void test_rate_limit(void **state) {
    (void)state;
    rig *r = rig_new(limited);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    float out[3 * H];
    ek_cmd_ctx cx;
    assert_int_equal(embed(r, "m", T, 3, out, NULL, &cx), EK_OK);
    assert_int_equal(embed(r, "m", T, 2, out, NULL, &cx), EK_ERR_RATE_LIMITED);
    assert_true(cx.retry_after_ns == SEC);
    r->fc.now += SEC;
    assert_int_equal(embed(r, "m", T, 2, out, NULL, &cx), EK_OK);
    rig_free(r);
}

static void test_swap_version(void **state) {
    (void)state;
    rig *r = rig_new(NULL);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    float v1[H], v2[H], want[H];
    assert_int_equal(embed(r, "m", T, 1, v1, NULL, NULL), EK_OK);
    /* loading again under the same name is refused; swapping works */
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-cls", "2"), EK_ERR_INVALID_ARG);
    assert_int_equal(load(r, EK_CMD_SWAP_MODEL, "m", "tiny-cls", "2"), EK_OK);
    ek_cmd cmd;
    assert_int_equal(embed(r, "m", T, 1, v2, &cmd, NULL), EK_OK);
    assert_int_equal(cmd.u.embed.cache_misses, 1); /* not served from version 1's entry */
    direct("tiny-cls", T, 1, want);
    assert_memory_equal(v2, want, sizeof want);
    assert_memory_not_equal(v1, v2, sizeof v1);
    /* a failed swap keeps the current version */
    ek_cmd c;
    ek_cmd_ctx cx;
    ek_cmd_init(&c, EK_CMD_SWAP_MODEL, "m");
    c.u.load.ref = "/nonexistent/model/dir";
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &c, &cx) == EK_OK, 0);
    assert_int_equal(embed(r, "m", T, 1, v1, NULL, NULL), EK_OK);
    assert_memory_equal(v1, want, sizeof want);
    /* unload */
    ek_cmd_init(&c, EK_CMD_UNLOAD_MODEL, "m");
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &c, &cx), EK_OK);
    assert_int_equal(embed(r, "m", T, 1, v1, NULL, &cx), EK_ERR_INVALID_ARG);
    rig_free(r);
}

static void chunky(ek_config *c) {
    c->batch_size = 2;
    c->cache_max_bytes = 0;
    c->deadline_timeout_s = 5;
}

static void test_deadline_mid_batch(void **state) {
    (void)state;
    rig *r = rig_new(chunky);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    float out[6 * H];
    for (int i = 0; i < 6 * H; i++) out[i] = 12345.0f;
    /* The model "takes" 6 s before the first chunk: the 5 s deadline passes
     * during the work; the first chunk completes, the rest never runs. */
    r->f.advance_ns = 6 * SEC;
    ek_cmd_ctx cx;
    assert_int_equal(embed(r, "m", T, 6, out, NULL, &cx), EK_ERR_DEADLINE);
    assert_string_equal(cx.origin, "embed");
    assert_true(out[0] != 12345.0f && out[2 * H - 1] != 12345.0f);
    for (int i = 2 * H; i < 6 * H; i++) assert_true(out[i] == 12345.0f);
    rig_free(r);
}

static void test_other_commands_and_metrics(void **state) {
    (void)state;
    rig *r = rig_new(NULL);
    assert_int_equal(load(r, EK_CMD_LOAD_MODEL, "m", "tiny-mean", "1"), EK_OK);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_encoding enc;
    memset(&enc, 0, sizeof enc);
    ek_cmd_init(&cmd, EK_CMD_TOKENIZE, "m");
    cmd.u.tokenize.text = "hello world";
    cmd.u.tokenize.len = 11;
    cmd.u.tokenize.enc = &enc;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_true(enc.n >= 3);
    ek_encoding_free(&enc);

    ek_cmd_init(&cmd, EK_CMD_SIMILARITY, "m");
    cmd.u.similarity.a = "same";
    cmd.u.similarity.a_len = 4;
    cmd.u.similarity.b = "same";
    cmd.u.similarity.b_len = 4;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_float_equal(cmd.u.similarity.cosine, 1.0, 1e-6);

    ek_cmd_init(&cmd, EK_CMD_PRELOAD_CACHE, "m");
    cmd.u.cache.texts = T;
    cmd.u.cache.n = 4;
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.cache.count, 4);
    float out[4 * H];
    ek_cmd b;
    assert_int_equal(embed(r, "m", T, 4, out, &b, NULL), EK_OK);
    assert_int_equal(b.u.embed.cache_hits, 4);
    ek_cmd_init(&cmd, EK_CMD_CLEAR_CACHE, NULL);
    ek_cmd_ctx_init(&cx, r->ctx);
    assert_int_equal(ek_engine_execute(r->e, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.cache.count, 4);

    char *text = NULL;
    assert_int_equal(ek_metrics_render(ek_engine_metrics(r->e), &text, NULL), EK_OK);
    assert_non_null(strstr(text, "embedkit_commands_total{command=\"embed_batch\",outcome=\"ok\"} 2\n"));
    assert_non_null(strstr(text, "embedkit_commands_total{command=\"load_model\",outcome=\"ok\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_cache_requests_total{result=\"hit\"} 4\n"));
    assert_non_null(strstr(text, "embedkit_breaker_state{model=\"m@1\"} 0\n"));
    free(text);
    rig_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_batch_cache_order),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_breaker_opens_and_closes),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_swap_version),
        cmocka_unit_test(test_deadline_mid_batch),
        cmocka_unit_test(test_other_commands_and_metrics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
