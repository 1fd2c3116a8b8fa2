/* tests/test_pipeline_mw.c — the built-in middleware other than the breaker
 * and the cache, each alone around a scripted handler under a fake clock:
 * validation (limits, NUL, UTF-8, errors naming field and index), token
 * bucket rate limiting (cost, burst, refill, retry-after, per caller),
 * deadline, retry (backoff growth, jitter bounds, retryable only, deadline
 * respected), bulkhead (fail fast, bounded wait), telemetry logs. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "embedkit_pipeline.h"
#include "support.h"

#define MS 1000000LL
#define SEC 1000000000LL

typedef struct fake_clock { int64_t now; int64_t slept[16]; int n_slept; } fake_clock;
static int64_t fc_now(void *a) { return ((fake_clock *)a)->now; }
static void fc_sleep(void *a, int64_t ns) {
    fake_clock *f = a;
    if (f->n_slept < 16) f->slept[f->n_slept++] = ns;
    f->now += ns;
}
static int64_t fc_wall(void *a) { return ((fake_clock *)a)->now + 1700000000LL * SEC; }

typedef struct script {
    int fail_times;     /* fail this many calls with `status`, then succeed */
    int status;
    int calls;
    int64_t cost_ns;
    fake_clock *fc;
    int64_t real_sleep_us;
} script;

static ek_status scripted(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    (void)cmd;
    script *s = state;
    s->calls++;
    if (s->fc) s->fc->now += s->cost_ns;
    if (s->real_sleep_us) usleep((useconds_t)s->real_sleep_us);
    if (s->fail_times > 0) {
        s->fail_times--;
        return ek_cmd_fail(cx, "handler", s->status, "scripted failure");
    }
    return EK_OK;
}

static ek_pipeline *one(ek_clock *clock, ek_middleware m, script *s) {
    ek_pipeline *p = NULL;
    assert_int_equal(ek_pipeline_new(clock, &p), EK_OK);
    assert_int_equal(ek_pipeline_use(p, &m), EK_OK);
    for (int t = 0; t < EK_CMD_COUNT; t++)
        assert_int_equal(ek_pipeline_handle(p, (ek_cmd_type)t, scripted, s), EK_OK);
    assert_int_equal(ek_pipeline_freeze(p), EK_OK);
    return p;
}

static ek_status run_batch(const ek_pipeline *p, const char *const *texts, const size_t *lens,
                           size_t n, ek_cmd_ctx *cx) {
    ek_cmd cmd;
    ek_cmd_embed_batch(&cmd, NULL, texts, lens, n, NULL, 0);
    ek_cmd_ctx_init(cx, NULL);
    return ek_pipeline_execute(p, &cmd, cx);
}

static ek_status run_text(const ek_pipeline *p, const char *caller, const char *text, ek_cmd_ctx *cx) {
    ek_cmd cmd;
    ek_cmd_embed_text(&cmd, NULL, text, strlen(text), NULL, 0);
    ek_cmd_ctx_init(cx, NULL);
    if (caller) snprintf(cx->caller, sizeof cx->caller, "%s", caller);
    return ek_pipeline_execute(p, &cmd, cx);
}

/* ---- validation ---- */

static void test_validation(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_clock clock = {fc_now, fc_sleep, fc_wall, &fc};
    script s = {0};
    ek_validate_config vc;
    ek_validate_config_init(&vc);
    assert_int_equal(vc.max_text_bytes, 1 << 20);
    assert_int_equal(vc.max_batch, 1024);
    vc.max_text_bytes = 10;
    vc.max_batch = 3;
    ek_pipeline *p = one(&clock, ek_validate_middleware(&vc), &s);
    ek_cmd_ctx cx;

    const char *good[] = {"hello", "héllo", "日本"};
    assert_int_equal(run_batch(p, good, NULL, 3, &cx), EK_OK);

    const char *four[] = {"a", "b", "c", "d"};
    assert_int_equal(run_batch(p, four, NULL, 4, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "texts: 4 items exceed the batch limit of 3");
    assert_string_equal(cx.origin, "validation");
    assert_int_equal(run_batch(p, four, NULL, 0, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "texts: empty batch");

    const char *empty[] = {"ok", ""};
    assert_int_equal(run_batch(p, empty, NULL, 2, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "texts[1]: empty text");

    const char *longt[] = {"ok", "fine", "this is eleven"};
    assert_int_equal(run_batch(p, longt, NULL, 3, &cx), EK_ERR_TOO_LONG);
    assert_string_equal(cx.message, "texts[2]: 14 bytes exceed the limit of 10");

    const char *nul[] = {"a\0b"};
    size_t nul_len[] = {3};
    assert_int_equal(run_batch(p, nul, nul_len, 1, &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "texts[0]: NUL byte at offset 1");

    /* Invalid UTF-8: stray continuation, overlong, surrogate, truncated, > U+10FFFF. */
    const char *bad[] = {"ab\x80", "\xC0\xAF", "\xED\xA0\x80", "x\xE6\x97", "\xF4\x90\x80\x80"};
    size_t off[] = {2, 0, 0, 1, 0};
    for (int i = 0; i < 5; i++) {
        const char *one_bad[] = {"fine", bad[i]};
        assert_int_equal(run_batch(p, one_bad, NULL, 2, &cx), EK_ERR_UTF8);
        char want[80];
        snprintf(want, sizeof want, "texts[1]: invalid UTF-8 at byte offset %zu", off[i]);
        assert_string_equal(cx.message, want);
    }
    /* Single text field name, and the handler never ran for rejects. */
    int calls = s.calls;
    assert_int_equal(run_text(p, NULL, "", &cx), EK_ERR_INVALID_ARG);
    assert_string_equal(cx.message, "text[0]: empty text");
    assert_int_equal(s.calls, calls);
    /* Commands without text pass untouched. */
    ek_cmd cmd;
    ek_cmd_init(&cmd, EK_CMD_HEALTH, NULL);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    ek_pipeline_free(p);
}

/* ---- rate limiting ---- */

static void test_ratelimit_global(void **state) {
    (void)state;
    fake_clock fc = {.now = 5 * SEC};
    ek_clock clock = {fc_now, fc_sleep, fc_wall, &fc};
    script s = {0};
    ek_ratelimit_config rc = {10, 20, 0, 0}; /* 10 characters/s, burst 20 */
    ek_ratelimit *rl = NULL;
    assert_int_equal(ek_ratelimit_new(&rc, &clock, NULL, &rl), EK_OK);
    ek_pipeline *p = one(&clock, ek_ratelimit_middleware(rl), &s);
    ek_cmd_ctx cx;

    /* Cost = characters (code points), not bytes: "héllo" costs 5. */
    ek_cmd cmd;
    ek_cmd_embed_text(&cmd, NULL, "héllo", strlen("héllo"), NULL, 0);
    assert_true(ek_ratelimit_cost(&cmd) == 5);
    const char *three[] = {"a", "bb", "ccc"};
    ek_cmd_embed_batch(&cmd, NULL, three, NULL, 3, NULL, 0);
    assert_true(ek_ratelimit_cost(&cmd) == 3); /* items for a batch */

    assert_int_equal(run_text(p, NULL, "0123456789", &cx), EK_OK);  /* 20 → 10 */
    assert_int_equal(run_text(p, NULL, "0123456789", &cx), EK_OK);  /* 10 → 0 */
    assert_int_equal(run_text(p, NULL, "01234", &cx), EK_ERR_RATE_LIMITED);
    assert_string_equal(cx.origin, "ratelimit");
    assert_true(cx.retry_after_ns == 500 * MS);  /* 5 tokens at 10/s */
    assert_non_null(strstr(cx.message, "retry after 0.500 s"));
    fc.now += 499 * MS;
    assert_int_equal(run_text(p, NULL, "01234", &cx), EK_ERR_RATE_LIMITED);
    fc.now += 1 * MS;
    assert_int_equal(run_text(p, NULL, "01234", &cx), EK_OK);       /* recovered */
    /* Refill never exceeds the burst. */
    fc.now += 100 * SEC;
    assert_true(ek_ratelimit_tokens(rl, NULL) == 20);
    /* A command costlier than the bucket can never pass: said so. */
    assert_int_equal(run_text(p, NULL, "012345678901234567890", &cx), EK_ERR_RATE_LIMITED);
    assert_non_null(strstr(cx.message, "more than the bucket holds"));
    ek_pipeline_free(p);
    ek_ratelimit_free(rl);
}

static void test_ratelimit_per_caller(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_clock clock = {fc_now, fc_sleep, fc_wall, &fc};
    script s = {0};
    ek_ratelimit_config rc = {1, 2, 1, 4}; /* 1 item/s, burst 2, 4 caller slots */
    ek_ratelimit *rl = NULL;
    ek_metrics *m = NULL;
    assert_int_equal(ek_metrics_new(&m), EK_OK);
    assert_int_equal(ek_ratelimit_new(&rc, &clock, m, &rl), EK_OK);
    ek_pipeline *p = one(&clock, ek_ratelimit_middleware(rl), &s);
    ek_cmd_ctx cx;
    assert_int_equal(run_text(p, "alice", "ab", &cx), EK_OK);
    assert_int_equal(run_text(p, "alice", "a", &cx), EK_ERR_RATE_LIMITED);
    assert_non_null(strstr(cx.message, "for caller alice"));
    assert_int_equal(run_text(p, "bob", "ab", &cx), EK_OK); /* own bucket */
    /* Many callers: the table stays bounded (least recently seen reused). */
    for (int i = 0; i < 50; i++) {
        char who[16];
        snprintf(who, sizeof who, "c%d", i);
        assert_int_equal(run_text(p, who, "a", &cx), EK_OK);
    }
    char *text = NULL;
    assert_int_equal(ek_metrics_render(m, &text, NULL), EK_OK);
    assert_non_null(strstr(text, "embedkit_ratelimit_decisions_total{outcome=\"rejected\"} 1\n"));
    free(text);
    ek_pipeline_free(p);
    ek_ratelimit_free(rl);
    ek_metrics_free(m);
}

/* ---- deadline ---- */

static void test_deadline(void **state) {
    (void)state;
    fake_clock fc = {.now = 1 * SEC};
    ek_clock clock = {fc_now, fc_sleep, fc_wall, &fc};
    script s = {0};
    ek_deadline d = {250 * MS, &clock};
    ek_pipeline *p = one(&clock, ek_deadline_middleware(&d), &s);
    ek_cmd_ctx cx;
    assert_int_equal(run_text(p, NULL, "a", &cx), EK_OK);
    assert_true(cx.deadline_ns == 1 * SEC + 250 * MS); /* default timeout applied */
    /* A caller deadline already past: refused before the handler. */
    ek_cmd cmd;
    ek_cmd_embed_text(&cmd, NULL, "a", 1, NULL, 0);
    ek_cmd_ctx_init(&cx, NULL);
    cx.deadline_ns = fc.now - 1;
    int calls = s.calls;
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_DEADLINE);
    assert_string_equal(cx.origin, "deadline");
    assert_int_equal(s.calls, calls);
    /* Cancelled before it starts. */
    ek_cmd_ctx_init(&cx, NULL);
    ek_cmd_ctx_cancel(&cx);
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_CANCELLED);
    ek_pipeline_free(p);
}

/* ---- retry ---- */

static void test_retry(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_clock clock = {fc_now, fc_sleep, fc_wall, &fc};
    script s = {0};
    ek_retry_config rc;
    ek_retry_config_init(&rc, &clock);
    rc.max_attempts = 4;
    rc.base_backoff_ns = 100 * MS;
    rc.max_backoff_ns = 250 * MS;
    rc.jitter = 0.5;
    ek_pipeline *p = one(&clock, ek_retry_middleware(&rc), &s);
    ek_cmd_ctx cx;

    /* Two transient failures, then success: 3 calls, 2 waits growing
     * exponentially within the jitter band, the error forgotten. */
    s.fail_times = 2;
    s.status = EK_ERR_IO;
    assert_int_equal(run_text(p, NULL, "a", &cx), EK_OK);
    assert_int_equal(s.calls, 3);
    assert_int_equal(fc.n_slept, 2);
    assert_true(fc.slept[0] > 50 * MS && fc.slept[0] <= 100 * MS);
    assert_true(fc.slept[1] > 100 * MS && fc.slept[1] <= 200 * MS);
    assert_int_equal(cx.status, EK_OK);

    /* Always failing: gives up after max_attempts, backoff capped. */
    s.calls = 0;
    fc.n_slept = 0;
    s.fail_times = 100;
    s.status = EK_ERR_UNAVAILABLE;
    assert_int_equal(run_text(p, NULL, "a", &cx), EK_ERR_UNAVAILABLE);
    assert_int_equal(s.calls, 4);
    assert_int_equal(fc.n_slept, 3);
    assert_true(fc.slept[2] > 125 * MS && fc.slept[2] <= 250 * MS);

    /* Not retryable: one call. */
    s.calls = 0;
    s.fail_times = 100;
    s.status = EK_ERR_INVALID_ARG;
    assert_int_equal(run_text(p, NULL, "a", &cx), EK_ERR_INVALID_ARG);
    assert_int_equal(s.calls, 1);
    s.status = EK_ERR_CIRCUIT_OPEN;
    s.calls = 0;
    assert_int_equal(run_text(p, NULL, "a", &cx), EK_ERR_CIRCUIT_OPEN);
    assert_int_equal(s.calls, 1);

    /* Never sleeps past the deadline. */
    s.calls = 0;
    s.fail_times = 100;
    s.status = EK_ERR_IO;
    ek_cmd cmd;
    ek_cmd_embed_text(&cmd, NULL, "a", 1, NULL, 0);
    ek_cmd_ctx_init(&cx, NULL);
    cx.deadline_ns = fc.now + 10 * MS;
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_IO);
    assert_int_equal(s.calls, 1);
    assert_true(ek_status_retryable(EK_ERR_IO) && ek_status_retryable(EK_ERR_BULKHEAD_FULL));
    assert_false(ek_status_retryable(EK_ERR_DEADLINE) || ek_status_retryable(EK_ERR_RATE_LIMITED));
    ek_pipeline_free(p);
}

/* ---- bulkhead ---- */

typedef struct racer { const ek_pipeline *p; ek_status st; } racer;

static void *race(void *arg) {
    racer *r = arg;
    ek_cmd_ctx cx;
    r->st = run_text(r->p, NULL, "a", &cx);
    return NULL;
}

static void test_bulkhead(void **state) {
    (void)state;
    ek_clock clock = ek_clock_system();
    script s = {0};
    s.real_sleep_us = 100000; /* 100 ms inside */
    ek_bulkhead *b = NULL;
    assert_int_equal(ek_bulkhead_new(1, 0, &b), EK_OK);
    ek_pipeline *p = one(&clock, ek_bulkhead_middleware(b), &s);
    racer r[2] = {{p, EK_OK}, {p, EK_OK}};
    pthread_t t0, t1;
    pthread_create(&t0, NULL, race, &r[0]);
    usleep(20000);
    pthread_create(&t1, NULL, race, &r[1]);
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    assert_int_equal(r[0].st, EK_OK);
    assert_int_equal(r[1].st, EK_ERR_BULKHEAD_FULL); /* fail fast */
    ek_pipeline_free(p);
    ek_bulkhead_free(b);

    /* With a bounded wait long enough, the second one gets in. */
    assert_int_equal(ek_bulkhead_new(1, 2 * SEC, &b), EK_OK);
    p = one(&clock, ek_bulkhead_middleware(b), &s);
    r[0] = (racer){p, EK_ERR_INTERNAL};
    r[1] = (racer){p, EK_ERR_INTERNAL};
    pthread_create(&t0, NULL, race, &r[0]);
    usleep(20000);
    pthread_create(&t1, NULL, race, &r[1]);
    pthread_join(t0, NULL);
    pthread_join(t1, NULL);
    assert_int_equal(r[0].st, EK_OK);
    assert_int_equal(r[1].st, EK_OK);
    ek_pipeline_free(p);
    ek_bulkhead_free(b);
}

/* ---- telemetry middleware: logs + metrics ---- */

static void test_telemetry_logs(void **state) {
    (void)state;
    fake_clock fc = {0};
    ek_clock clock = {fc_now, fc_sleep, fc_wall, &fc};
    script s = {0};
    s.fc = &fc;
    s.cost_ns = 3 * MS;
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    ek_logger *log = NULL;
    ek_metrics *m = NULL;
    ek_telemetry_mw *t = NULL;
    assert_int_equal(ek_logger_new(f, EK_LOG_INFO, EK_LOG_AUTO, &clock, &log), EK_OK); /* not a tty: JSON */
    assert_int_equal(ek_metrics_new(&m), EK_OK);
    assert_int_equal(ek_telemetry_mw_new(m, log, &clock, &t), EK_OK);
    ek_pipeline *p = one(&clock, ek_telemetry_middleware(t), &s);
    ek_cmd_ctx cx;
    ek_cmd cmd;
    ek_cmd_embed_text(&cmd, "mini", "a", 1, NULL, 0);
    ek_cmd_ctx_init(&cx, NULL);
    snprintf(cx.correlation_id, sizeof cx.correlation_id, "corr-1");
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_OK);
    s.fail_times = 1;
    s.status = EK_ERR_IO;
    ek_cmd_ctx_init(&cx, NULL);
    cx.request_id = 42;
    assert_int_equal(ek_pipeline_execute(p, &cmd, &cx), EK_ERR_IO);
    fflush(f);
    assert_non_null(strstr(buf, "{\"level\":\"info\",\"time\":\"2023-11-14T22:13:20.003Z\",\"msg\":\"command\","
                                "\"request_id\":1,\"correlation_id\":\"corr-1\",\"command\":\"embed_text\","
                                "\"model\":\"mini\",\"items\":1,\"duration_s\":0.003,\"outcome\":\"ok\"}\n"));
    assert_non_null(strstr(buf, "{\"level\":\"error\""));
    assert_non_null(strstr(buf, "\"request_id\":42"));
    assert_non_null(strstr(buf, "\"outcome\":\"io\",\"origin\":\"handler\",\"error\":\"scripted failure\"}"));
    char *text = NULL;
    assert_int_equal(ek_metrics_render(m, &text, NULL), EK_OK);
    assert_non_null(strstr(text, "embedkit_commands_total{command=\"embed_text\",outcome=\"ok\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_commands_total{command=\"embed_text\",outcome=\"io\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_command_duration_seconds_bucket{command=\"embed_text\",le=\"0.0025\"} 0\n"));
    assert_non_null(strstr(text, "embedkit_command_duration_seconds_bucket{command=\"embed_text\",le=\"0.005\"} 2\n"));
    assert_non_null(strstr(text, "embedkit_texts_total{command=\"embed_text\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_commands_in_flight 0\n"));
    free(text);
    ek_pipeline_free(p);
    ek_telemetry_mw_free(t);
    ek_metrics_free(m);
    ek_logger_free(log);
    fclose(f);
    free(buf);

    /* Text format for terminals. */
    buf = NULL;
    f = open_memstream(&buf, &len);
    assert_int_equal(ek_logger_new(f, EK_LOG_WARN, EK_LOG_TEXT, &clock, &log), EK_OK);
    ek_log_field fl[] = {{"model", "a b", 0}, {"n", NULL, 3}};
    ek_log(log, EK_LOG_INFO, "dropped", fl, 2); /* below the level */
    ek_log(log, EK_LOG_ERROR, "failed", fl, 2);
    fflush(f);
    assert_string_equal(buf, "2023-11-14T22:13:20.006Z ERROR failed model=\"a b\" n=3\n");
    ek_logger_free(log);
    fclose(f);
    free(buf);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validation),
        cmocka_unit_test(test_ratelimit_global),
        cmocka_unit_test(test_ratelimit_per_caller),
        cmocka_unit_test(test_deadline),
        cmocka_unit_test(test_retry),
        cmocka_unit_test(test_bulkhead),
        cmocka_unit_test(test_telemetry_logs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
