/* tests/test_pipeline_cache.c — the embedding cache middleware around a fake
 * embedding handler (vectors derived from the text, calls recorded): miss
 * then hit with identical vectors, a batch mixing hits and misses embeds
 * only the misses and keeps input order, the key covers model version,
 * weights digest and options, the LRU stays within its byte budget, and
 * clearing empties it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_pipeline.h"
#include "support.h"

#define DIM 4

typedef struct fake_model {
    int calls;
    size_t embedded;           /* texts that reached the handler */
    char seen[64][32];
    int version;
    char digest[16];
} fake_model;

static void vector_of(const char *t, size_t len, int version, float *v) {
    unsigned h = 2166136261u;
    for (size_t i = 0; i < len; i++) h = (h ^ (unsigned char)t[i]) * 16777619u;
    for (int d = 0; d < DIM; d++) v[d] = (float)((h >> (d * 8)) & 0xff) + 1000.0f * (float)version;
}

static ek_status fake_embed(void *state, ek_cmd *cmd, ek_cmd_ctx *cx) {
    fake_model *m = state;
    ek_embed_args *e = &cmd->u.embed;
    m->calls++;
    if (e->n * DIM > e->out_cap) return ek_cmd_fail(cx, "handler", EK_ERR_INVALID_ARG, "out too small");
    for (size_t i = 0; i < e->n; i++) {
        size_t len;
        const char *t = ek_cmd_text_at(cmd, i, &len);
        if (m->embedded < 64) snprintf(m->seen[m->embedded], 32, "%.*s", (int)len, t);
        m->embedded++;
        vector_of(t, len, m->version, e->out + i * DIM);
        if (e->token_counts) e->token_counts[i] = (int32_t)len + 2;
    }
    e->dim = DIM;
    return EK_OK;
}

static int identify(void *arg, const char *model, ek_model_identity *out) {
    fake_model *m = arg;
    if (model && strcmp(model, "fake")) return 1;
    snprintf(out->key, sizeof out->key, "fake@%d", m->version);
    snprintf(out->digest, sizeof out->digest, "%s", m->digest);
    return 0;
}

typedef struct rig { fake_model m; ek_cache *c; ek_pipeline *p; ek_metrics *metrics; } rig;

static rig *rig_new(size_t max_bytes) {
    rig *r = calloc(1, sizeof *r);
    r->m.version = 1;
    snprintf(r->m.digest, sizeof r->m.digest, "abc");
    ek_model_resolver res = {identify, &r->m};
    assert_int_equal(ek_metrics_new(&r->metrics), EK_OK);
    assert_int_equal(ek_cache_new(max_bytes, &res, r->metrics, &r->c), EK_OK);
    assert_int_equal(ek_pipeline_new(NULL, &r->p), EK_OK);
    ek_middleware m = ek_cache_middleware(r->c);
    assert_int_equal(ek_pipeline_use(r->p, &m), EK_OK);
    assert_int_equal(ek_pipeline_handle(r->p, EK_CMD_EMBED_TEXT, fake_embed, &r->m), EK_OK);
    assert_int_equal(ek_pipeline_handle(r->p, EK_CMD_EMBED_BATCH, fake_embed, &r->m), EK_OK);
    assert_int_equal(ek_pipeline_freeze(r->p), EK_OK);
    return r;
}

static void rig_free(rig *r) {
    ek_pipeline_free(r->p);
    ek_cache_free(r->c);
    ek_metrics_free(r->metrics);
    free(r);
}

static ek_status batch(rig *r, const char *const *texts, size_t n, const ek_embed_options *o,
                       float *out, int32_t *tokens, ek_cmd *cmd_out) {
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_batch(&cmd, NULL, texts, NULL, n, out, n * DIM);
    cmd.u.embed.opts = o;
    cmd.u.embed.token_counts = tokens;
    ek_cmd_ctx_init(&cx, NULL);
    ek_status st = ek_pipeline_execute(r->p, &cmd, &cx);
    if (cmd_out) *cmd_out = cmd;
    return st;
}

static void test_miss_then_hit(void **state) {
    (void)state;
    rig *r = rig_new(1 << 20);
    float a[DIM], b[DIM];
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_text(&cmd, NULL, "hello", 5, a, DIM);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(r->p, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.embed.cache_misses, 1);
    assert_int_equal(r->m.calls, 1);
    ek_cmd_embed_text(&cmd, NULL, "hello", 5, b, DIM);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(r->p, &cmd, &cx), EK_OK);
    assert_int_equal(cmd.u.embed.cache_hits, 1);
    assert_int_equal(cmd.u.embed.dim, DIM);
    assert_int_equal(r->m.calls, 1); /* short-circuited */
    assert_memory_equal(a, b, sizeof a);
    ek_cache_stats st;
    ek_cache_get_stats(r->c, &st);
    assert_int_equal(st.hits, 1);
    assert_int_equal(st.misses, 1);
    assert_int_equal(st.entries, 1);
    rig_free(r);
}

static void test_mixed_batch_keeps_order(void **state) {
    (void)state;
    rig *r = rig_new(1 << 20);
    const char *warm[] = {"b", "d"};
    float out[6 * DIM];
    int32_t tokens[6];
    assert_int_equal(batch(r, warm, 2, NULL, out, tokens, NULL), EK_OK);
    r->m.embedded = 0;
    const char *texts[] = {"a", "b", "c", "d", "e", "b"};
    ek_cmd cmd;
    assert_int_equal(batch(r, texts, 6, NULL, out, tokens, &cmd), EK_OK);
    /* Only the misses reached the model, in order, as one batch. */
    assert_int_equal(r->m.embedded, 3);
    assert_string_equal(r->m.seen[0], "a");
    assert_string_equal(r->m.seen[1], "c");
    assert_string_equal(r->m.seen[2], "e");
    assert_int_equal(cmd.u.embed.cache_hits, 3);
    assert_int_equal(cmd.u.embed.cache_misses, 3);
    for (int i = 0; i < 6; i++) {
        float want[DIM];
        vector_of(texts[i], 1, 1, want);
        assert_memory_equal(out + i * DIM, want, sizeof want);
        assert_int_equal(tokens[i], 3);
    }
    rig_free(r);
}

static void test_key_covers_identity_and_options(void **state) {
    (void)state;
    rig *r = rig_new(1 << 20);
    const char *t[] = {"same text"};
    float out[DIM];
    assert_int_equal(batch(r, t, 1, NULL, out, NULL, NULL), EK_OK);
    assert_int_equal(batch(r, t, 1, NULL, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, 1);
    /* Other options: another key. */
    ek_embed_options o;
    ek_embed_options_init(&o);
    o.normalize = 0;
    assert_int_equal(batch(r, t, 1, &o, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, 2);
    o.normalize = -1;
    o.prompt = "query: ";
    assert_int_equal(batch(r, t, 1, &o, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, 3);
    /* Default options spelled out: the same key as NULL. */
    ek_embed_options_init(&o);
    assert_int_equal(batch(r, t, 1, &o, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, 3);
    /* Another version, another weights digest: misses, new vectors. */
    r->m.version = 2;
    assert_int_equal(batch(r, t, 1, NULL, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, 4);
    float want[DIM];
    vector_of("same text", 9, 2, want);
    assert_memory_equal(out, want, sizeof want);
    snprintf(r->m.digest, sizeof r->m.digest, "def");
    assert_int_equal(batch(r, t, 1, NULL, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, 5);
    rig_free(r);
}

static void test_lru_byte_bound(void **state) {
    (void)state;
    /* Room for about 3 entries of 4 floats. */
    rig *r = rig_new(3 * 80);
    const char *t[] = {"1", "2", "3", "4", "5", "6"};
    float out[DIM];
    for (int i = 0; i < 6; i++) assert_int_equal(batch(r, &t[i], 1, NULL, out, NULL, NULL), EK_OK);
    ek_cache_stats st;
    ek_cache_get_stats(r->c, &st);
    assert_true(st.bytes <= st.max_bytes);
    assert_true(st.entries >= 2 && st.entries <= 3);
    assert_true(st.evictions >= 3);
    /* Most recent stays; the oldest went. */
    int calls = r->m.calls;
    assert_int_equal(batch(r, &t[5], 1, NULL, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, calls);
    assert_int_equal(batch(r, &t[0], 1, NULL, out, NULL, NULL), EK_OK);
    assert_int_equal(r->m.calls, calls + 1);
    /* Clear. */
    assert_true(ek_cache_clear(r->c) > 0);
    ek_cache_get_stats(r->c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.bytes, 0);
    char *text = NULL;
    assert_int_equal(ek_metrics_render(r->metrics, &text, NULL), EK_OK);
    assert_non_null(strstr(text, "embedkit_cache_requests_total{result=\"hit\"} 1\n"));
    assert_non_null(strstr(text, "embedkit_cache_entries 0\n"));
    free(text);
    rig_free(r);
}

static void test_small_output_and_unknown_model(void **state) {
    (void)state;
    rig *r = rig_new(1 << 20);
    const char *t[] = {"x", "y"};
    float out[2 * DIM];
    assert_int_equal(batch(r, t, 2, NULL, out, NULL, NULL), EK_OK);
    /* All hits but the output is too small: an error, not an overflow. */
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_batch(&cmd, NULL, t, NULL, 2, out, DIM);
    ek_cmd_ctx_init(&cx, NULL);
    assert_int_equal(ek_pipeline_execute(r->p, &cmd, &cx), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(cx.message, "capacity 4 floats"));
    /* Unknown model: passes through to the handler. */
    ek_cmd_embed_batch(&cmd, "nope", t, NULL, 2, out, 2 * DIM);
    ek_cmd_ctx_init(&cx, NULL);
    int calls = r->m.calls;
    assert_int_equal(ek_pipeline_execute(r->p, &cmd, &cx), EK_OK);
    assert_int_equal(r->m.calls, calls + 1);
    rig_free(r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_miss_then_hit),
        cmocka_unit_test(test_mixed_batch_keeps_order),
        cmocka_unit_test(test_key_covers_identity_and_options),
        cmocka_unit_test(test_lru_byte_bound),
        cmocka_unit_test(test_small_output_and_unknown_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
