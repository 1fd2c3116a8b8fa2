/* tests/test_pipeline.c — the pipeline core: middleware order (class, then
 * insertion), scope masks, the next-at-most-once / at-least-once rules and
 * their declared exceptions, missing handlers, freezing, the per-command
 * context (request ids, typed values, first error with origin, deadline and
 * cancellation), ownership of middleware state, no allocation per command,
 * and concurrent execution of a frozen pipeline. */
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "support.h"

typedef struct fake_clock { int64_t now; } fake_clock;
static int64_t fc_now(void *a) { return ((fake_clock *)a)->now; }
static void fc_sleep(void *a, int64_t ns) { ((fake_clock *)a)->now += ns; }
static int64_t fc_wall(void *a) { return ((fake_clock *)a)->now + 1700000000LL * 1000000000; }

static ek_clock make_clock(fake_clock *f) {
    ek_clock c = {fc_now, fc_sleep, fc_wall, f};
    return c;
}

/* A trace of which middleware ran, in order. */
typedef struct trace { char s[256]; } trace;

typedef struct tag { const char *name; trace *t; int calls_next; } tag;

static ek_status tag_mw(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    tag *g = state;
    strcat(g->t->s, g->name);
    strcat(g->t->s, " ");
    ek_status st = EK_OK;
    for (int i = 0; i < g->calls_next; i++) st = ek_next_run(next, cmd, cx);
    return st;
}

static ek_status ok_handler(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)cmd;
    (void)cx;
    if (state) strcat(((trace *)state)->s, "H");
    return EK_OK;
}

static ek_pipeline *make(fake_clock *fc) {
    ek_clock c = make_clock(fc);
    ek_pipeline *p = NULL;
    assert_int_equal(ek_pipeline_new(&c, &p), EK_OK);
    return p;
}

static void test_order_and_scope(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_pipeline *p = make(&fc);
    trace t = {""};
    tag a = {"obs", &t, 1}, b = {"val1", &t, 1}, c = {"auth", &t, 1}, d = {"val2", &t, 1},
        e = {"embedonly", &t, 1};
    ek_middleware m[] = {
        {"obs", EK_MW_OBSERVABILITY, EK_SCOPE_ALL, 0, tag_mw, &a, NULL},
        {"val1", EK_MW_VALIDATION, EK_SCOPE_ALL, 0, tag_mw, &b, NULL},
        {"auth", EK_MW_AUTH, EK_SCOPE_ALL, 0, tag_mw, &c, NULL},
        {"val2", EK_MW_VALIDATION, EK_SCOPE_ALL, 0, tag_mw, &d, NULL},
        {"embedonly", EK_MW_PREPROCESS, EK_SCOPE_EMBED, 0, tag_mw, &e, NULL},
    };
    for (size_t i = 0; i < 5; i++) assert_int_equal(ek_pipeline_use(p, &m[i]), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_EMBED_BATCH, ok_handler, &t), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, ok_handler, &t), EK_OK);
    /* one handler per type */
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, ok_handler, &t), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);

    char desc[256];
    ek_pipeline_describe(p, EK_CMD_EMBED_BATCH, desc, sizeof desc);
    assert_string_equal(desc, "auth val1 val2 embedonly obs");
    ek_pipeline_describe(p, EK_CMD_HEALTH, desc, sizeof desc);
    assert_string_equal(desc, "auth val1 val2 obs");

    ek_cmd cmd;
    ek_cmd_ctx cx;
    const char *texts[] = {"x"};
    float out[4];
    ek_cmd_embed_batch(&cmd, NULL, texts, NULL, 1, out, 4);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    assert_string_equal(t.s, "auth val1 val2 embedonly obs H");
    t.s[0] = '\0';
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    assert_string_equal(t.s, "auth val1 val2 obs H");

    /* Frozen: no more registration. */
    assert_int_equal(ek_pipeline_use(p, &m[0]), EK_ERR_PIPELINE);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_TOKENIZE, ok_handler, NULL), EK_ERR_PIPELINE);
    ek_pipeline_free(p);
}

static void test_missing_handler_and_not_frozen(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_pipeline *p = make(&fc);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_SEARCH, NULL);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_PIPELINE);
    assert_non_null(strstr(cx.message, "not frozen"));
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_NO_HANDLER);
    assert_string_equal(cx.origin, "pipeline");
    assert_string_equal(cx.message, "no handler for command search");
    cmd.type = (ek_cmd_type)99;
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_INVALID_ARG);
    ek_pipeline_free(p);
}

static void test_next_rules(void **state) {
    (void)state;
    fake_clock fc = {0};
    trace t = {""};
    ek_cmd cmd;
    ek_cmd_ctx cx;

    /* next twice without EK_MW_REENTERS: refused at the second call */
    ek_pipeline *p = make(&fc);
    tag twice = {"twice", &t, 2};
    ek_middleware m = {"twice", EK_MW_RESILIENCE, EK_SCOPE_ALL, 0, tag_mw, &twice, NULL};
    assert_int_equal(ek_pipeline_use(p, &m), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, ok_handler, &t), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_PIPELINE);
    assert_non_null(strstr(cx.message, "twice called next twice"));
    assert_string_equal(t.s, "twice H");
    ek_pipeline_free(p);

    /* declared re-entry: fine */
    t.s[0] = '\0';
    p = make(&fc);
    m.flags = EK_MW_REENTERS;
    assert_int_equal(ek_pipeline_use(p, &m), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, ok_handler, &t), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    assert_string_equal(t.s, "twice HH");
    ek_pipeline_free(p);

    /* success without next: refused unless EK_MW_SHORT_CIRCUITS */
    t.s[0] = '\0';
    p = make(&fc);
    tag none = {"none", &t, 0};
    ek_middleware n = {"none", EK_MW_PREPROCESS, EK_SCOPE_ALL, 0, tag_mw, &none, NULL};
    assert_int_equal(ek_pipeline_use(p, &n), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, ok_handler, &t), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_PIPELINE);
    assert_non_null(strstr(cx.message, "none returned without calling next"));
    ek_pipeline_free(p);

    t.s[0] = '\0';
    p = make(&fc);
    n.flags = EK_MW_SHORT_CIRCUITS;
    assert_int_equal(ek_pipeline_use(p, &n), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, ok_handler, &t), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    assert_string_equal(t.s, "none "); /* the handler never ran */
    ek_pipeline_free(p);
}

static ek_status failing_handler(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)state;
    (void)cmd;
    ek_status st = ek_cmd_fail(cx, "handler", EK_ERR_IO, "disk on fire");
    ek_cmd_fail(cx, "later", EK_ERR_INTERNAL, "second error is not kept");
    return st;
}

static ek_status values_mw(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    (void)state;
    ek_cmd_value v = {"tenant", EK_VAL_STR, {.s = "acme"}};
    assert_int_equal(ek_cmd_ctx_set(cx, &v), EK_OK);
    ek_cmd_value w = {"attempt", EK_VAL_I64, {.i = 3}};
    assert_int_equal(ek_cmd_ctx_set(cx, &w), EK_OK);
    return ek_next_run(next, cmd, cx);
}

static ek_status values_handler(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)state;
    (void)cmd;
    ek_cmd_value v;
    assert_int_equal(ek_cmd_ctx_get(cx, "tenant", EK_VAL_STR, &v), EK_OK);
    assert_string_equal(v.v.s, "acme");
    assert_int_equal(ek_cmd_ctx_get(cx, "attempt", EK_VAL_I64, &v), EK_OK);
    assert_int_equal(v.v.i, 3);
    /* wrong type, absent key */
    assert_int_equal(ek_cmd_ctx_get(cx, "attempt", EK_VAL_STR, &v), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_cmd_ctx_get(cx, "missing", EK_VAL_I64, &v), EK_ERR_INVALID_ARG);
    return EK_OK;
}

static void test_context(void **state) {
    (void)state;
    fake_clock fc = {1000};
    ek_pipeline *p = make(&fc);
    ek_middleware m = {"values", EK_MW_PREPROCESS, EK_SCOPE_ALL, 0, values_mw, NULL, NULL};
    assert_int_equal(ek_pipeline_use(p, &m), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, values_handler, NULL), EK_OK);
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_CLEAR_CACHE, failing_handler, NULL), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);

    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    uint64_t first = cx.request_id;
    assert_true(first > 0);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    assert_int_equal(cx.request_id, first + 1);
    ek_cmd_ctx_init(&cx, NULL);
    cx.request_id = 777; /* a caller-chosen id is kept */
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    assert_int_equal(cx.request_id, 777);

    /* The first error wins, with its origin; it also lands in the ek_ctx. */
    ek_ctx *ek = NULL;
    assert_int_equal(ek_ctx_new(&ek), EK_OK);
    ek_cmd_init(&cmd, EK_CMD_CLEAR_CACHE, NULL);
    ek_cmd_ctx_init(&cx, ek);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_IO);
    assert_int_equal(cx.status, EK_ERR_IO);
    assert_string_equal(cx.origin, "handler");
    assert_string_equal(cx.message, "disk on fire");
    assert_string_equal(ek_ctx_last_error(ek), "handler: disk on fire");
    ek_ctx_free(ek);

    /* Values table is bounded. */
    ek_cmd_ctx_init(&cx, NULL);
    char keys[EK_CMD_VALUES + 1][16];
    for (int i = 0; i <= EK_CMD_VALUES; i++) {
        snprintf(keys[i], sizeof keys[i], "k%d", i);
        ek_cmd_value v = {keys[i], EK_VAL_F64, {.f = i}};
        assert_int_equal(ek_cmd_ctx_set(&cx, &v), i < EK_CMD_VALUES ? EK_OK : EK_ERR_INVALID_ARG);
    }

    /* Cancellation and deadline through ek_cmd_ctx_check. */
    ek_cmd_ctx_init(&cx, NULL);
    cx.pipeline = p;
    assert_int_equal(ek_cmd_ctx_check(&cx, "test"), EK_OK);
    cx.deadline_ns = 2000;
    assert_int_equal(ek_cmd_ctx_check(&cx, "test"), EK_OK);
    fc.now = 2000;
    assert_int_equal(ek_cmd_ctx_check(&cx, "chunk 3"), EK_ERR_DEADLINE);
    assert_string_equal(cx.origin, "chunk 3");
    ek_cmd_ctx_init(&cx, NULL);
    cx.pipeline = p;
    ek_cmd_ctx_cancel(&cx);
    assert_int_equal(ek_cmd_ctx_check(&cx, "x"), EK_ERR_CANCELLED);
    ek_pipeline_free(p);
}

static int freed;
static void free_counter(void *s) { (void)s; freed++; }

static ek_status pass(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    (void)state;
    return ek_next_run(next, cmd, cx);
}

static void test_state_ownership(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_pipeline *p = make(&fc);
    freed = 0;
    ek_middleware owned = {"owned", EK_MW_MONITORING, EK_SCOPE_ALL, 0, pass, &fc, free_counter};
    assert_int_equal(ek_pipeline_use(p, &owned), EK_OK);
    ek_middleware bad = {"bad", (ek_mw_class)42, EK_SCOPE_ALL, 0, pass, &fc, free_counter};
    assert_int_equal(ek_pipeline_use(p, &bad), EK_ERR_INVALID_ARG);
    assert_int_equal(freed, 1); /* refused state is freed at once, never leaked */
    ek_pipeline_free(p);
    assert_int_equal(freed, 2);
}

static void test_no_allocation_per_command(void **state) {
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    skip(); /* mallinfo2 does not see ASan's allocator */
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    skip();
#endif
#endif
    fake_clock fc = {0};
    ek_pipeline *p = make(&fc);
    for (int i = 0; i < 8; i++) {
        ek_middleware m = {"pass", (ek_mw_class)(i % 7), EK_SCOPE_ALL, 0, pass, NULL, NULL};
        assert_int_equal(ek_pipeline_use(p, &m), EK_OK);
    }
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_EMBED_TEXT, ok_handler, NULL), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    float out[1];
    ek_cmd_embed_text(&cmd, NULL, "x", 1, out, 1);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    struct mallinfo2 before = mallinfo2();
    for (int i = 0; i < 10000; i++) {
        ek_cmd_ctx_init(&cx, NULL);
        assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    }
    struct mallinfo2 after = mallinfo2();
    assert_int_equal(before.uordblks, after.uordblks);
    ek_pipeline_free(p);
}

typedef struct worker { const ek_pipeline *p; int ok; } worker;

static ek_status count_handler(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)cx;
    (void)cmd;
    __atomic_add_fetch((int *)state, 1, __ATOMIC_RELAXED);
    return EK_OK;
}

static void *work(void *arg) {
    worker *w = arg;
    for (int i = 0; i < 20000; i++) {
        ek_cmd cmd;
        ek_cmd_ctx cx;
        ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
        ek_cmd_ctx_init(&cx, NULL);
        if (ek_pipeline_execute(w->p, &cmd, &cx) == EK_OK) w->ok++;
    }
    return NULL;
}

static void test_concurrent_execution(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_pipeline *p = make(&fc);
    int handled = 0;
    for (int i = 0; i < 4; i++) {
        ek_middleware m = {"pass", EK_MW_VALIDATION, EK_SCOPE_ALL, 0, pass, NULL, NULL};
        assert_int_equal(ek_pipeline_use(p, &m), EK_OK);
    }
    assert_int_equal(ek_pipeline_handle(p, EK_CMD_HEALTH, count_handler, &handled), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    pthread_t th[4];
    worker w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (worker){p, 0};
        pthread_create(&th[i], NULL, work, &w[i]);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(w[i].ok, 20000);
    }
    assert_int_equal(handled, 80000);
    ek_pipeline_free(p);
}

static void test_text_accessors(void **state) {
    (void)state;
    ek_cmd cmd;
    size_t len;
    ek_cmd_embed_text(&cmd, "m", "hello", 5, NULL, 0);
    assert_int_equal(ek_cmd_text_count(&cmd), 1);
    assert_memory_equal(ek_cmd_text_at(&cmd, 0, &len), "hello", 5);
    assert_int_equal(len, 5);
    const char *texts[] = {"a", "bc"};
    ek_cmd_embed_batch(&cmd, NULL, texts, NULL, 2, NULL, 0);
    assert_string_equal(ek_cmd_text_at(&cmd, 1, &len), "bc");
    assert_int_equal(len, 2);
    assert_null(ek_cmd_text_at(&cmd, 2, &len));
    ek_cmd_init(&cmd, EK_CMD_SIMILARITY, NULL);
    cmd.u.similarity.a = "x";
    cmd.u.similarity.a_len = 1;
    cmd.u.similarity.b = "yz";
    cmd.u.similarity.b_len = 2;
    assert_int_equal(ek_cmd_text_count(&cmd), 2);
    ek_cmd_text_at(&cmd, 1, &len);
    assert_int_equal(len, 2);
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    assert_int_equal(ek_cmd_text_count(&cmd), 0);
    assert_string_equal(ek_cmd_type_name(EK_CMD_PRELOAD_CACHE), "preload_cache");
    assert_string_equal(ek_pipe_status_name(EK_ERR_CIRCUIT_OPEN), "EK_ERR_CIRCUIT_OPEN");
    assert_string_equal(ek_pipe_status_name(EK_ERR_UTF8), "EK_ERR_UTF8");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_order_and_scope),
        cmocka_unit_test(test_missing_handler_and_not_frozen),
        cmocka_unit_test(test_next_rules),
        cmocka_unit_test(test_context),
        cmocka_unit_test(test_state_ownership),
        cmocka_unit_test(test_no_allocation_per_command),
        cmocka_unit_test(test_concurrent_execution),
        cmocka_unit_test(test_text_accessors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
