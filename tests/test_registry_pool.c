/* tests/test_registry_pool.c — the model pool under threads: a load asked
 * for by many threads happens once, the memory budget unloads idle versions
 * least-recently-used first and never one in use, and moving an alias while
 * requests flow fails none of them and sends new ones to the new version. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "embedkit_registry.h"
#include "support.h"

static ek_ctx *g_ctx;
static const char *g_home;

/* One home with versions 1..4 of the tiny model (same files: stored once). */
static int setup(void **state) {
    (void)state;
    if (ek_ctx_new(&g_ctx)) return -1;
    g_home = strdup(ts_mkdtemp());
    ek_registry *r;
    if (ek_registry_open(g_ctx, g_home, NULL, &r)) return -1;
    for (int i = 0; i < 4; i++)
        if (ek_registry_import(g_ctx, r, ts_path(ts_models_dir(), i % 2 ? "tiny-cls" : "tiny-mean"), "pm", NULL,
                               NULL)) {
            fprintf(stderr, "%s\n", ek_ctx_last_error(g_ctx));
            return -1;
        }
    int rc = ek_registry_alias(g_ctx, r, "pm", "prod", 1);
    ek_registry_close(r);
    return rc;
}

static int teardown(void **state) {
    (void)state;
    ts_rm_rf(g_home);
    free((void *)g_home);
    ek_ctx_free(g_ctx);
    return 0;
}

static uint64_t model_bytes(void) {
    ek_registry *r;
    ek_reg_version v;
    assert_int_equal(ek_registry_open(g_ctx, g_home, NULL, &r), EK_OK);
    assert_int_equal(ek_registry_lookup(g_ctx, r, "pm@1", &v), EK_OK);
    ek_registry_close(r);
    return v.total_bytes;
}

/* ---- single flight ---- */

struct sf {
    ek_pool *pool;
    pthread_barrier_t *go;
    int ok;
    const ek_model *m;
};

static void *sf_thread(void *arg) {
    struct sf *s = arg;
    ek_ctx *c;
    ek_ctx_new(&c);
    pthread_barrier_wait(s->go);
    ek_pool_handle *h;
    if (ek_pool_acquire(c, s->pool, "pm@2", &h) == EK_OK) {
        s->ok = 1;
        s->m = ek_pool_model(h);
        usleep(20000);
        ek_pool_release(h);
    }
    ek_ctx_free(c);
    return NULL;
}

static void test_single_flight(void **state) {
    (void)state;
    ek_pool *p;
    assert_int_equal(ek_pool_new(g_ctx, g_home, 0, &p), EK_OK);
    enum { N = 8 };
    pthread_t t[N];
    struct sf s[N];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, N);
    for (int i = 0; i < N; i++) {
        s[i] = (struct sf){.pool = p, .go = &go};
        pthread_create(&t[i], NULL, sf_thread, &s[i]);
    }
    for (int i = 0; i < N; i++) pthread_join(t[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < N; i++) {
        assert_true(s[i].ok);
        assert_ptr_equal(s[i].m, s[0].m); /* one model, shared */
    }
    ek_pool_stats st;
    ek_pool_get_stats(p, &st);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.hits + st.waits, N - 1);
    assert_int_equal(st.loaded, 1);
    assert_int_equal(st.in_use, 0);
    ek_pool_free(p);
}

/* ---- memory budget, LRU, never under a caller ---- */

static void test_budget_lru(void **state) {
    (void)state;
    uint64_t mb = model_bytes();
    ek_pool *p;
    assert_int_equal(ek_pool_new(g_ctx, g_home, mb * 2 + mb / 2, &p), EK_OK); /* room for two */
    ek_pool_handle *h1, *h2, *h3, *h4;
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@1", &h1), EK_OK);
    ek_pool_release(h1);
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@2", &h2), EK_OK);
    ek_pool_release(h2);
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@1", &h1), EK_OK); /* 1 is now the most recent */
    ek_pool_release(h1);
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@3", &h3), EK_OK); /* evicts 2, the LRU */
    ek_pool_stats st;
    ek_pool_get_stats(p, &st);
    assert_int_equal(st.loaded, 2);
    assert_int_equal(st.evictions, 1);
    ek_pool_release(h3);
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@1", &h1), EK_OK); /* still there: a hit */
    ek_pool_get_stats(p, &st);
    assert_int_equal(st.loads, 3);

    /* Hold 1 while loading 2, 3, 4: 1 must survive, whatever the budget. */
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@2", &h2), EK_OK);
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@3", &h3), EK_OK); /* over budget: all in use */
    ek_pool_get_stats(p, &st);
    assert_int_equal(st.loaded, 3);
    assert_int_equal(st.in_use, 3);
    assert_true(st.bytes > st.budget);
    ek_pool_release(h2);
    ek_pool_release(h3); /* back under budget: idle ones go */
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pm@4", &h4), EK_OK);
    ek_pool_get_stats(p, &st);
    assert_true(st.bytes <= st.budget);
    /* h1's model was never unloaded under us. */
    ek_embed_options o;
    ek_embed_options_init(&o);
    float out[1024];
    const char *t = "still loaded";
    assert_int_equal(ek_embed(g_ctx, ek_pool_model(h1), &t, NULL, 1, &o, out, NULL), EK_OK);
    assert_int_equal(ek_pool_handle_version(h1), 1);
    assert_string_equal(ek_pool_handle_name(h1), "pm");
    ek_pool_release(h1);
    ek_pool_release(h4);
    /* Only READY versions are served. */
    ek_pool_handle *hx;
    assert_int_not_equal(ek_pool_acquire(g_ctx, p, "pm@9", &hx), EK_OK);
    assert_null(hx);
    ek_pool_free(p);
}

/* ---- alias switch while requests flow ---- */

struct flow {
    ek_pool *pool;
    atomic_int *stop, *switched;
    int requests, failures, wrong_after_switch, saw_new;
    char err[256];
};

static void *flow_thread(void *arg) {
    struct flow *f = arg;
    ek_ctx *c;
    ek_ctx_new(&c);
    ek_ctx_set_threads(c, 1);
    ek_embed_options o;
    ek_embed_options_init(&o);
    float out[1024];
    const char *t = "a request in flight";
    while (!atomic_load(f->stop)) {
        int after = atomic_load(f->switched);
        ek_pool_handle *h;
        if (ek_pool_acquire(c, f->pool, "pm@prod", &h) != EK_OK) {
            f->failures++;
            snprintf(f->err, sizeof f->err, "%s", ek_ctx_last_error(c));
            continue;
        }
        int64_t v = ek_pool_handle_version(h);
        if (ek_embed(c, ek_pool_model(h), &t, NULL, 1, &o, out, NULL) != EK_OK) f->failures++;
        if (after && v != 3) f->wrong_after_switch++;
        if (v == 3) f->saw_new = 1;
        ek_pool_release(h);
        f->requests++;
    }
    ek_ctx_free(c);
    return NULL;
}

static void test_alias_switch_under_load(void **state) {
    (void)state;
    ek_pool *p;
    assert_int_equal(ek_pool_new(g_ctx, g_home, 0, &p), EK_OK);
    atomic_int stop = 0, switched = 0;
    enum { N = 4 };
    pthread_t t[N];
    struct flow f[N];
    for (int i = 0; i < N; i++) {
        f[i] = (struct flow){.pool = p, .stop = &stop, .switched = &switched};
        pthread_create(&t[i], NULL, flow_thread, &f[i]);
    }
    usleep(300000);
    ek_registry *r;
    assert_int_equal(ek_registry_open(g_ctx, g_home, NULL, &r), EK_OK);
    assert_int_equal(ek_registry_alias(g_ctx, r, "pm", "prod", 3), EK_OK);
    atomic_store(&switched, 1);
    usleep(300000);
    atomic_store(&stop, 1);
    int total = 0;
    for (int i = 0; i < N; i++) {
        pthread_join(t[i], NULL);
        if (f[i].failures) fail_msg("thread %d: %d failures: %s", i, f[i].failures, f[i].err);
        assert_int_equal(f[i].wrong_after_switch, 0);
        assert_true(f[i].saw_new);
        total += f[i].requests;
    }
    assert_true(total > 20);
    ek_pool_stats st;
    ek_pool_get_stats(p, &st);
    assert_int_equal(st.loads, 2); /* versions 1 and 3, each once */
    /* Put the alias back for other tests. */
    assert_int_equal(ek_registry_alias(g_ctx, r, "pm", "prod", 1), EK_OK);
    ek_registry_close(r);
    ek_pool_free(p);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_single_flight),
        cmocka_unit_test(test_budget_lru),
        cmocka_unit_test(test_alias_switch_under_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
