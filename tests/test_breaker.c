/* tests/test_breaker.c — the circuit breaker's state machine under a fake
 * clock: resilience4j defaults, minimum calls, the failure-rate and
 * slow-call thresholds over a count-based sliding window, fail-fast with
 * retry-after while OPEN, HALF_OPEN after the wait with a bounded number of
 * trials whose outcome closes or reopens it, cancellations not counted,
 * caller errors counted as successes, one breaker per (model, version),
 * fallback to another version, and the state as a metric. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "support.h"

#define SEC 1000000000LL

typedef struct fake_clock { int64_t now; } fake_clock;
static int64_t fc_now(void *a) { return ((fake_clock *)a)->now; }
static void fc_sleep(void *a, int64_t ns) { ((fake_clock *)a)->now += ns; }

/* The handler does what the test scripts: return `status`, take `cost_ns`. */
typedef struct script {
    fake_clock *clock;
    int status;
    int64_t cost_ns;
    int calls;
    char last_model[64];
    const ek_pipeline *nest;   /* re-enter the pipeline once from the handler */
    int nested_status;
} script;

static ek_status scripted(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    script *s = state;
    s->calls++;
    s->clock->now += s->cost_ns;
    snprintf(s->last_model, sizeof s->last_model, "%s", cmd->model ? cmd->model : "");
    if (s->nest) {
        const ek_pipeline *p = s->nest;
        s->nest = NULL;
        ek_cmd inner;
        ek_cmd_ctx icx;
        float out[1];
        ek_cmd_embed_text(&inner, cmd->model, "t", 1, out, 1);
        ek_cmd_ctx_init(&icx, NULL);
        s->nested_status = ek_pipeline_execute(p, &inner, &icx);
    }
    if (s->status == EK_ERR_CANCELLED) ek_cmd_ctx_cancel(cx);
    if (s->status) return ek_cmd_fail(cx, "handler", s->status, "scripted failure");
    return EK_OK;
}

/* Versions: "m" is at version 1 unless the test moves it. */
typedef struct versions { int m_version; } versions;
static int identify(void *arg, const char *model, ek_model_identity *out) {
    versions *v = arg;
    if (!model) model = "m";
    if (!strcmp(model, "m")) snprintf(out->key, sizeof out->key, "m@%d", v->m_version);
    else snprintf(out->key, sizeof out->key, "%s@1", model);
    return 0;
}

typedef struct rig {
    fake_clock fc;
    ek_clock clock;
    script s;
    versions v;
    ek_metrics *metrics;
    ek_breaker *b;
    ek_pipeline *p;
} rig;

static rig *rig_new(const ek_breaker_config *cfg, const char *fallback_from, const char *fallback_to) {
    rig *r = calloc(1, sizeof *r);
    r->fc.now = 100 * SEC;
    r->clock = (ek_clock){fc_now, fc_sleep, NULL, &r->fc};
    r->s.clock = &r->fc;
    r->v.m_version = 1;
    ek_model_resolver res = {identify, &r->v};
    assert_int_equal(ek_metrics_new(&r->metrics), EK_OK);
    assert_int_equal(ek_breaker_new(cfg, &r->clock, &res, r->metrics, &r->b), EK_OK);
    if (fallback_from) assert_int_equal(ek_breaker_set_fallback(r->b, fallback_from, fallback_to), EK_OK);
    assert_int_equal(ek_pipeline_new(&r->clock, &r->p), EK_OK);
    ek_middleware m = ek_breaker_middleware(r->b);
    assert_int_equal(ek_pipeline_use(r->p, &m), EK_OK);
    assert_int_equal(ek_pipeline_handle(r->p, EK_CMD_EMBED_TEXT, scripted, &r->s), EK_OK);
    assert_int_equal(ek_pipeline_freeze(r->p), EK_OK);
    return r;
}

static void rig_free(rig *r) {
    ek_pipeline_free(r->p);
    ek_breaker_free(r->b);
    ek_metrics_free(r->metrics);
    free(r);
}

static ek_status call(rig *r, const char *model, int status, ek_cmd_ctx *cx_out) {
    ek_cmd cmd;
    ek_cmd_ctx cx;
    float out[1];
    r->s.status = status;
    ek_cmd_embed_text(&cmd, model, "t", 1, out, 1);
    ek_cmd_ctx_init(&cx, NULL);
    ek_status st = ek_pipeline_execute(r->p, &cmd, &cx);
    if (cx_out) *cx_out = cx;
    return st;
}

static void small_config(ek_breaker_config *c) {
    ek_breaker_config_init(c);
    c->minimum_calls = 4;
    c->window_size = 4;
    c->half_open_calls = 2;
    c->wait_open_ns = 10 * SEC;
    c->slow_call_duration_ns = 2 * SEC;
}

static void test_defaults_are_resilience4j(void **state) {
    (void)state;
    ek_breaker_config c;
    ek_breaker_config_init(&c);
    assert_true(c.failure_rate_threshold == 50);
    assert_true(c.slow_call_rate_threshold == 100);
    assert_true(c.slow_call_duration_ns == 60 * SEC);
    assert_true(c.wait_open_ns == 60 * SEC);
    assert_int_equal(c.half_open_calls, 10);
    assert_int_equal(c.minimum_calls, 100);
    assert_int_equal(c.window_size, 100);
    /* With the defaults, 99 failures are not enough (minimum calls 100)... */
    rig *r = rig_new(&c, NULL, NULL);
    for (int i = 0; i < 99; i++) assert_int_equal(call(r, "m", EK_ERR_IO, NULL), EK_ERR_IO);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    /* ...the 100th opens it. */
    assert_int_equal(call(r, "m", EK_ERR_IO, NULL), EK_ERR_IO);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    rig_free(r);
}

static void test_open_fail_fast_half_open_close(void **state) {
    (void)state;
    ek_breaker_config c;
    small_config(&c);
    rig *r = rig_new(&c, NULL, NULL);
    /* 2 successes + 1 failure: below the minimum number of calls. */
    call(r, "m", 0, NULL);
    call(r, "m", 0, NULL);
    call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    /* 4th call fails: 2 of 4 = 50 % >= threshold → OPEN. */
    call(r, "m", EK_ERR_INTERNAL, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);

    /* Fails fast, naming the model and the retry time; the model is not called. */
    int before = r->s.calls;
    ek_cmd_ctx cx;
    r->fc.now += 4 * SEC;
    assert_int_equal(call(r, "m", 0, &cx), EK_ERR_CIRCUIT_OPEN);
    assert_int_equal(r->s.calls, before);
    assert_string_equal(cx.origin, "breaker");
    assert_non_null(strstr(cx.message, "model m@1"));
    assert_non_null(strstr(cx.message, "retry in 6.000 s"));
    assert_true(cx.retry_after_ns == 6 * SEC);

    /* After the wait: HALF_OPEN, 2 trials allowed; a third concurrent one
     * would be refused (simulate by checking the state between calls). */
    r->fc.now += 6 * SEC;
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_HALF_OPEN);
    assert_int_equal(call(r, "m", 0, NULL), EK_OK);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_HALF_OPEN);
    assert_int_equal(call(r, "m", 0, NULL), EK_OK);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);

    /* Closed again with a fresh window: 3 failures in 4 calls reopen it. */
    call(r, "m", 0, NULL);
    call(r, "m", EK_ERR_IO, NULL);
    call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    rig_free(r);
}

static void test_failed_trials_reopen(void **state) {
    (void)state;
    ek_breaker_config c;
    small_config(&c);
    rig *r = rig_new(&c, NULL, NULL);
    for (int i = 0; i < 4; i++) call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    r->fc.now += 10 * SEC;
    call(r, "m", EK_ERR_IO, NULL); /* trial 1 fails */
    call(r, "m", 0, NULL);         /* trial 2 ok: 50 % failed → reopen */
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    ek_cmd_ctx cx;
    assert_int_equal(call(r, "m", 0, &cx), EK_ERR_CIRCUIT_OPEN);
    assert_true(cx.retry_after_ns == 10 * SEC); /* a new full wait */
    rig_free(r);
}

/* A handler that, during a half-open trial, re-enters the pipeline: the
 * nested call is a concurrent trial beyond the bound and is refused. */
static void test_half_open_bounds_trials(void **state) {
    (void)state;
    ek_breaker_config c;
    small_config(&c);
    c.half_open_calls = 1;
    rig *r = rig_new(&c, NULL, NULL);
    for (int i = 0; i < 4; i++) call(r, "m", EK_ERR_IO, NULL);
    r->fc.now += 10 * SEC;
    /* Take the only trial permit by hand: a trial that is cancelled returns
     * its permit (not counted), so the next call may still be a trial. */
    assert_int_equal(call(r, "m", EK_ERR_CANCELLED, NULL), EK_ERR_CANCELLED);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_HALF_OPEN);
    /* While the one trial runs, a concurrent call is refused. */
    r->s.nest = r->p;
    assert_int_equal(call(r, "m", 0, NULL), EK_OK);
    assert_int_equal(r->s.nested_status, EK_ERR_CIRCUIT_OPEN);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    rig_free(r);
}

static void test_slow_calls_and_uncounted(void **state) {
    (void)state;
    ek_breaker_config c;
    small_config(&c);
    c.slow_call_rate_threshold = 75;
    rig *r = rig_new(&c, NULL, NULL);
    /* Cancellations and caller errors never open the breaker. */
    for (int i = 0; i < 10; i++) call(r, "m", EK_ERR_CANCELLED, NULL);
    for (int i = 0; i < 10; i++) call(r, "m", EK_ERR_INVALID_ARG, NULL);
    for (int i = 0; i < 10; i++) call(r, "m", EK_ERR_UTF8, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    /* Slow successes: 3 of 4 slow (>= 2 s) reach the 75 % slow-call rate. */
    r->s.cost_ns = 3 * SEC;
    call(r, "m", 0, NULL);
    call(r, "m", 0, NULL);
    r->s.cost_ns = 0;
    call(r, "m", 0, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    r->s.cost_ns = 2 * SEC;
    call(r, "m", 0, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    rig_free(r);
}

static void test_sliding_window_forgets(void **state) {
    (void)state;
    ek_breaker_config c;
    small_config(&c);
    rig *r = rig_new(&c, NULL, NULL);
    /* F S S S: 25 %; then S: the failure slides out; then F F: 2/4 = 50 %. */
    call(r, "m", EK_ERR_IO, NULL);
    for (int i = 0; i < 4; i++) call(r, "m", 0, NULL);
    call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_CLOSED);
    call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    rig_free(r);
}

static void test_per_version_and_fallback(void **state) {
    (void)state;
    ek_breaker_config c;
    small_config(&c);
    rig *r = rig_new(&c, "m", "m-stable");
    for (int i = 0; i < 4; i++) call(r, "m", EK_ERR_IO, NULL);
    assert_int_equal(ek_breaker_get_state(r->b, "m@1"), EK_BREAKER_OPEN);
    /* Served by the fallback while open. */
    assert_int_equal(call(r, "m", 0, NULL), EK_OK);
    assert_string_equal(r->s.last_model, "m-stable");
    /* Another version of m has its own (closed) breaker. */
    r->v.m_version = 2;
    assert_int_equal(ek_breaker_get_state(r->b, "m@2"), EK_BREAKER_CLOSED);
    assert_int_equal(call(r, "m", 0, NULL), EK_OK);
    assert_string_equal(r->s.last_model, "m");
    /* Other models are unaffected. */
    assert_int_equal(call(r, "other", 0, NULL), EK_OK);

    char *text = NULL;
    assert_int_equal(ek_metrics_render(r->metrics, &text, NULL), EK_OK);
    assert_non_null(strstr(text, "embedkit_breaker_state{model=\"m@1\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_breaker_state{model=\"m@2\"} 0\n"));
    free(text);
    rig_free(r);
}

static void test_bad_config(void **state) {
    (void)state;
    ek_breaker_config c;
    ek_breaker *b = NULL;
    ek_breaker_config_init(&c);
    c.failure_rate_threshold = 0;
    assert_int_equal(ek_breaker_new(&c, NULL, NULL, NULL, &b), EK_ERR_INVALID_ARG);
    ek_breaker_config_init(&c);
    c.window_size = 0;
    assert_int_equal(ek_breaker_new(&c, NULL, NULL, NULL, &b), EK_ERR_INVALID_ARG);
    assert_null(b);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_are_resilience4j),
        cmocka_unit_test(test_open_fail_fast_half_open_close),
        cmocka_unit_test(test_failed_trials_reopen),
        cmocka_unit_test(test_half_open_bounds_trials),
        cmocka_unit_test(test_slow_calls_and_uncounted),
        cmocka_unit_test(test_sliding_window_forgets),
        cmocka_unit_test(test_per_version_and_fallback),
        cmocka_unit_test(test_bad_config),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
