/* tests/test_api.c — the public API's behaviour beyond parity: option
 * overrides (pooling, normalisation, Matryoshka dimensions, max length,
 * truncation side), pre-tokenized input, token-level output and
 * caller-weighted pooling agree with each other; bad arguments are refused
 * with a message; a model is shared by threads. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit.h"
/* Every public header must compile together in one translation unit. */
#include "embedkit_gpu.h"
#include "embedkit_pipeline.h"
#include "embedkit_registry.h"
#include "embedkit_search.h"
#include "support.h"

#define H 32

static ek_ctx *ctx;
static ek_model *model;

static int setup(void **state) {
    (void)state;
    if (ek_ctx_new(&ctx)) return -1;
    if (ek_model_load(ctx, ts_path(ts_models_dir(), "tiny-mean"), &model)) {
        fprintf(stderr, "%s\n", ek_ctx_last_error(ctx));
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ek_model_free(model);
    ek_ctx_free(ctx);
    return 0;
}

static double norm(const float *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

static const char *texts[] = {"The quick brown fox jumps over the lazy dog.", "", "héllo wörld",
                              "A much longer sentence, with punctuation; numbers 12345 and more words to pool."};
#define N (sizeof texts / sizeof texts[0])

static void test_tokens_then_pool_equals_embed(void **state) {
    (void)state;
    /* Token states + mean weights (all ones) + L2 = the model's own output. */
    float want[N][H], tokens[512 * H], pooled[H];
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, NULL, &want[0][0], NULL), EK_OK);
    for (size_t i = 0; i < N; i++) {
        int n = 0;
        assert_int_equal(ek_embed_tokens(ctx, model, texts[i], strlen(texts[i]), NULL, tokens, sizeof tokens / sizeof *tokens, &n), EK_OK);
        float w[512];
        for (int t = 0; t < n; t++) w[t] = 1.0f;
        assert_int_equal(ek_pool_weighted(ctx, tokens, n, H, w, pooled), EK_OK);
        double nn = norm(pooled, H);
        for (int d = 0; d < H; d++) assert_float_equal(pooled[d] / nn, want[i][d], 2e-6);
    }
    /* All-zero weights give a zero vector, never NaN. */
    float z[4] = {0, 0, 0, 0};
    assert_int_equal(ek_pool_weighted(ctx, tokens, 4, H, z, pooled), EK_OK);
    for (int d = 0; d < H; d++) assert_true(pooled[d] == 0.0f);
    /* Negative weights are refused with a message. */
    float neg[2] = {1, -1};
    assert_int_equal(ek_pool_weighted(ctx, tokens, 2, H, neg, pooled), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "weight 1"));
}

static void test_ids_equal_text(void **state) {
    (void)state;
    float want[N][H], got[N][H];
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, NULL, &want[0][0], NULL), EK_OK);
    int32_t ids[4096], lens[N];
    size_t at = 0;
    ek_encoding enc;
    memset(&enc, 0, sizeof enc);
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(ek_tokenize(ctx, model, texts[i], strlen(texts[i]), NULL, 0, NULL, &enc), EK_OK);
        memcpy(ids + at, enc.ids, sizeof(int32_t) * enc.n);
        lens[i] = (int32_t)enc.n;
        at += enc.n;
    }
    ek_encoding_free(&enc);
    assert_int_equal(ek_embed_ids(ctx, model, ids, lens, N, NULL, &got[0][0]), EK_OK);
    assert_memory_equal(want, got, sizeof want);
    /* Out-of-vocabulary ids are refused, naming the token. */
    ids[3] = 1 << 30;
    assert_int_equal(ek_embed_ids(ctx, model, ids, lens, N, NULL, &got[0][0]), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "token 3"));
}

static void test_options(void **state) {
    (void)state;
    ek_embed_options o;
    ek_embed_options_init(&o);
    float full[N][H], a[N][H];
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &full[0][0], NULL), EK_OK);
    for (size_t i = 0; i < N; i++) assert_float_equal(norm(full[i], H), 1.0, 1e-5);

    /* --no-normalize: same direction, not unit length. */
    o.normalize = 0;
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &a[0][0], NULL), EK_OK);
    for (size_t i = 0; i < N; i++) {
        double n = norm(a[i], H);
        assert_true(fabs(n - 1.0) > 1e-3);
        for (int d = 0; d < H; d++) assert_float_equal(a[i][d] / n, full[i][d], 1e-5);
    }

    /* Matryoshka: the first D dimensions, renormalised. */
    ek_embed_options_init(&o);
    o.dimensions = 8;
    assert_int_equal(ek_embed_dim(model, &o), 8);
    float m8[N][8];
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &m8[0][0], NULL), EK_OK);
    for (size_t i = 0; i < N; i++) {
        double n = norm(full[i], 8);
        for (int d = 0; d < 8; d++) assert_float_equal(m8[i][d], full[i][d] / n, 1e-5);
    }

    /* Pooling override: cls differs from the model's mean. */
    ek_embed_options_init(&o);
    o.pooling = EK_POOL_CLS;
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &a[0][0], NULL), EK_OK);
    assert_true(fabs(a[0][0] - full[0][0]) > 1e-6);

    /* Max length and truncation side change what the model sees. */
    ek_embed_options_init(&o);
    o.max_length = 6;
    int32_t counts[N];
    float r[N][H], l[N][H];
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &r[0][0], counts), EK_OK);
    assert_int_equal(counts[0], 6);
    assert_int_equal(counts[1], 2);
    o.truncate = EK_TRUNCATE_LEFT;
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &l[0][0], NULL), EK_OK);
    assert_true(fabs(r[0][0] - l[0][0]) > 1e-6);
    o.truncate = EK_TRUNCATE_NONE;
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &l[0][0], NULL), EK_ERR_TOO_LONG);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "input 0"));

    /* Bad options are refused with a message, not a crash. */
    ek_embed_options_init(&o);
    o.pooling = 99;
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, &o, &a[0][0], NULL), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "pooling"));
    assert_int_equal(ek_embed(ctx, model, NULL, NULL, 2, NULL, &a[0][0], NULL), EK_ERR_INVALID_ARG);
    const char *bad[] = {"ok", "bad \xc3"};
    assert_int_equal(ek_embed(ctx, model, bad, NULL, 2, NULL, &a[0][0], NULL), EK_ERR_UTF8);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "input 1"));
}

static void test_pair_type_ids(void **state) {
    (void)state;
    ek_encoding enc;
    memset(&enc, 0, sizeof enc);
    assert_int_equal(ek_tokenize(ctx, model, "first part", 10, "second", 6, NULL, &enc), EK_OK);
    /* [CLS] first part [SEP] second [SEP] */
    assert_true(enc.n >= 6);
    assert_int_equal(enc.type_ids[0], 0);
    assert_int_equal(enc.type_ids[enc.n - 1], 1);
    assert_string_equal(ek_model_token(model, enc.ids[enc.n - 1]), "[SEP]");
    ek_encoding_free(&enc);
}

typedef struct {
    const float *want;
    int ok;
} thread_arg;

static void *worker(void *p) {
    thread_arg *a = p;
    ek_ctx *c;
    if (ek_ctx_new(&c)) return NULL;
    ek_ctx_set_threads(c, 1);
    float got[N][H];
    a->ok = 1;
    for (int rep = 0; rep < 5; rep++) {
        if (ek_embed(c, model, texts, NULL, N, NULL, &got[0][0], NULL) ||
            memcmp(got, a->want, sizeof got))
            a->ok = 0;
    }
    ek_ctx_free(c);
    return NULL;
}

static void test_model_shared_by_threads(void **state) {
    (void)state;
    float want[N][H];
    assert_int_equal(ek_embed(ctx, model, texts, NULL, N, NULL, &want[0][0], NULL), EK_OK);
    pthread_t t[4];
    thread_arg a[4];
    for (int i = 0; i < 4; i++) {
        a[i].want = &want[0][0];
        a[i].ok = 0;
        assert_int_equal(pthread_create(&t[i], NULL, worker, &a[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_true(a[i].ok);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens_then_pool_equals_embed),
        cmocka_unit_test(test_ids_equal_text),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_pair_type_ids),
        cmocka_unit_test(test_model_shared_by_threads),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
