/* tests/test_dtype.c — the bf16 and int8 compute dtypes on generated
 * models: accuracy against f32 (cosine per input, min and mean printed),
 * batch invariance in every dtype (an input alone, in a batch, in other
 * batchings: bitwise equal), concurrent ek_embed calls on one model from
 * several threads, and the EK_ISA cap (in process for our own kernels, and
 * through the CLI for a fresh process where oneDNN is capped too). */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "embedkit.h"

#define N_IN 40

typedef struct inputs {
    int32_t *ids;
    int32_t lens[N_IN];
    size_t total;
} inputs;

/* Deterministic token ids in [5, vocab) and lengths 3..max_len, with a few
 * short and long extremes. */
static void make_inputs(inputs *in, int vocab, int max_len) {
    uint64_t s = 0x9E3779B97F4A7C15ull;
    in->total = 0;
    for (int i = 0; i < N_IN; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        int L = 3 + (int)((s >> 33) % (uint64_t)(max_len - 2));
        if (i == 0) L = max_len;
        if (i == 1) L = 3;
        if (i == 2) L = 16;
        in->lens[i] = L;
        in->total += (size_t)L;
    }
    in->ids = malloc(sizeof *in->ids * in->total);
    assert_non_null(in->ids);
    for (size_t t = 0; t < in->total; t++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        in->ids[t] = 5 + (int32_t)((s >> 33) % (uint64_t)(vocab - 5));
    }
}

static ek_model *load(ek_ctx *ctx, const char *name, ek_compute_dtype dt) {
    ek_load_options lo;
    ek_load_options_init(&lo);
    lo.dtype = dt;
    ek_model *m = NULL;
    if (ek_model_load_opts(ctx, ts_path(ts_models_dir(), name), &lo, &m) != EK_OK)
        fail_msg("load %s: %s", name, ek_ctx_last_error(ctx));
    return m;
}

/* Embeds all inputs with the given batching; out [N_IN][dim]. */
static void embed(ek_ctx *ctx, ek_model *m, const inputs *in, int batch_size, float *out) {
    ek_embed_options o;
    ek_embed_options_init(&o);
    o.batch_size = batch_size;
    if (ek_embed_ids(ctx, m, in->ids, in->lens, N_IN, &o, out) != EK_OK)
        fail_msg("embed: %s", ek_ctx_last_error(ctx));
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb + 1e-300);
}

static void accuracy(const char *name, int max_len) {
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_ctx_set_threads(ctx, 2);
    ek_model *m32 = load(ctx, name, EK_DTYPE_F32);
    ek_model_info info;
    ek_model_get_info(m32, &info);
    inputs in;
    make_inputs(&in, info.vocab_size, max_len < info.max_seq_length ? max_len : info.max_seq_length);
    int dim = ek_embed_dim(m32, NULL);
    float *ref = malloc(sizeof(float) * N_IN * (size_t)dim), *got = malloc(sizeof(float) * N_IN * (size_t)dim);
    assert_non_null(ref);
    assert_non_null(got);
    embed(ctx, m32, &in, 0, ref);
    static const struct { ek_compute_dtype dt; const char *name; double min_cos; } dts[] = {
        {EK_DTYPE_BF16, "bf16", 0.999}, {EK_DTYPE_INT8, "int8", 0.99}};
    for (size_t k = 0; k < 2; k++) {
        ek_model *m = load(ctx, name, dts[k].dt);
        ek_model_info mi;
        ek_model_get_info(m, &mi);
        assert_string_equal(mi.compute_dtype, dts[k].dt == EK_DTYPE_BF16 ? "BF16" : "INT8");
        embed(ctx, m, &in, 0, got);
        double mn = 2, sum = 0;
        int worst = -1;
        for (int i = 0; i < N_IN; i++) {
            double c = cosine(ref + (size_t)i * dim, got + (size_t)i * dim, dim);
            sum += c;
            if (c < mn) mn = c, worst = i;
        }
        printf("%s %s vs f32: cosine min %.6f (input %d, %d tokens) mean %.6f over %d inputs\n", name,
               dts[k].name, mn, worst, worst >= 0 ? in.lens[worst] : 0, sum / N_IN, N_IN);
        if (!(mn >= dts[k].min_cos))
            fail_msg("%s %s: min cosine %.6f < %.3f", name, dts[k].name, mn, dts[k].min_cos);
        ek_model_free(m);
    }
    free(ref);
    free(got);
    free(in.ids);
    ek_model_free(m32);
    ek_ctx_free(ctx);
}

static void test_accuracy_minilm(void **state) {
    (void)state;
    accuracy("default", 256);
}

static void test_accuracy_tiny(void **state) {
    (void)state;
    accuracy("tiny-mean", 64);
    accuracy("tiny-cls", 64);
    accuracy("tiny-dense", 64);
}

/* Every input's embedding is bitwise the same alone, in the whole set, and
 * in batches of 7 (so the row counts, and row classes, all differ). */
static void invariance(const char *name, ek_compute_dtype dt) {
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_ctx_set_threads(ctx, 2);
    ek_model *m = load(ctx, name, dt);
    ek_model_info info;
    ek_model_get_info(m, &info);
    inputs in;
    make_inputs(&in, info.vocab_size, info.max_seq_length < 200 ? info.max_seq_length : 200);
    int dim = ek_embed_dim(m, NULL);
    size_t n = (size_t)N_IN * dim;
    float *all = malloc(sizeof(float) * n), *b7 = malloc(sizeof(float) * n), *one = malloc(sizeof(float) * dim);
    assert_non_null(all);
    assert_non_null(b7);
    assert_non_null(one);
    embed(ctx, m, &in, 0, all);
    embed(ctx, m, &in, 7, b7);
    int bad = 0;
    size_t off = 0;
    ek_embed_options o;
    ek_embed_options_init(&o);
    for (int i = 0; i < N_IN; i++) {
        if (ek_embed_ids(ctx, m, in.ids + off, &in.lens[i], 1, &o, one) != EK_OK)
            fail_msg("%s", ek_ctx_last_error(ctx));
        off += (size_t)in.lens[i];
        if (memcmp(one, all + (size_t)i * dim, sizeof(float) * dim) ||
            memcmp(one, b7 + (size_t)i * dim, sizeof(float) * dim)) {
            if (!bad) printf("%s %s: input %d (%d tokens) differs between batchings\n", name, info.compute_dtype, i,
                             in.lens[i]);
            bad++;
        }
    }
    printf("%s %s: %d inputs alone / batched / in 7s: %s\n", name, info.compute_dtype, N_IN,
           bad ? "DIFFERENT" : "bitwise equal");
    assert_int_equal(bad, 0);
    free(all);
    free(b7);
    free(one);
    free(in.ids);
    ek_model_free(m);
    ek_ctx_free(ctx);
}

static void test_invariance(void **state) {
    (void)state;
    static const ek_compute_dtype dts[] = {EK_DTYPE_F32, EK_DTYPE_BF16, EK_DTYPE_INT8};
    for (int k = 0; k < 3; k++) {
        invariance("tiny-mean", dts[k]);
        invariance("default", dts[k]);
    }
}

/* ---- several threads on one model -------------------------------------- */

typedef struct worker {
    ek_model *m;
    const inputs *in;
    float *out;
    int batch, reps, rc;
} worker;

static void *work(void *arg) {
    worker *w = arg;
    ek_ctx *ctx;
    if (ek_ctx_new(&ctx)) return NULL;
    ek_ctx_set_threads(ctx, 1);
    ek_embed_options o;
    ek_embed_options_init(&o);
    o.batch_size = w->batch;
    for (int r = 0; r < w->reps && !w->rc; r++)
        w->rc = ek_embed_ids(ctx, w->m, w->in->ids, w->in->lens, N_IN, &o, w->out);
    ek_ctx_free(ctx);
    return NULL;
}

static void test_concurrent(void **state) {
    (void)state;
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_ctx_set_threads(ctx, 1);
    ek_model *m = load(ctx, "tiny-mean", EK_DTYPE_INT8);
    ek_model_info info;
    ek_model_get_info(m, &info);
    inputs in;
    make_inputs(&in, info.vocab_size, 64);
    int dim = ek_embed_dim(m, NULL);
    float *ref = malloc(sizeof(float) * N_IN * (size_t)dim);
    assert_non_null(ref);
    embed(ctx, m, &in, 0, ref);
    enum { T = 4 };
    pthread_t th[T];
    worker w[T];
    for (int t = 0; t < T; t++) {
        w[t] = (worker){m, &in, malloc(sizeof(float) * N_IN * (size_t)dim), 1 + 3 * t, 5, 0};
        assert_non_null(w[t].out);
        assert_int_equal(pthread_create(&th[t], NULL, work, &w[t]), 0);
    }
    for (int t = 0; t < T; t++) {
        pthread_join(th[t], NULL);
        assert_int_equal(w[t].rc, EK_OK);
        assert_memory_equal(w[t].out, ref, sizeof(float) * N_IN * (size_t)dim);
        free(w[t].out);
    }
    free(ref);
    free(in.ids);
    ek_model_free(m);
    ek_ctx_free(ctx);
}

/* ---- EK_ISA -------------------------------------------------------------- */

static void test_isa_cap(void **state) {
    (void)state;
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_ctx_set_threads(ctx, 2);
    ek_model *ref = load(ctx, "tiny-mean", EK_DTYPE_F32);
    ek_model_info info;
    ek_model_get_info(ref, &info);
    printf("native: isa %s, oneDNN %s\n", info.isa, info.dnnl_isa);

    /* In this process oneDNN is already running, so only our own kernels
     * (attention, conversions) follow the cap: the portable ones must
     * agree with the vector ones to rounding. */
    setenv("EK_ISA", "generic", 1);
    ek_model *gen = load(ctx, "tiny-mean", EK_DTYPE_F32);
    ek_model_info gi;
    ek_model_get_info(gen, &gi);
    assert_string_equal(gi.isa, "generic");
    inputs in;
    make_inputs(&in, info.vocab_size, 64);
    int dim = ek_embed_dim(ref, NULL);
    float *a = malloc(sizeof(float) * N_IN * (size_t)dim), *b = malloc(sizeof(float) * N_IN * (size_t)dim);
    assert_non_null(a);
    assert_non_null(b);
    embed(ctx, ref, &in, 0, a);
    embed(ctx, gen, &in, 0, b);
    for (int i = 0; i < N_IN; i++) assert_true(cosine(a + (size_t)i * dim, b + (size_t)i * dim, dim) > 0.99999);
    /* bf16 / int8 need AVX-512 BF16 / VNNI: a clear refusal below it. */
    setenv("EK_ISA", "avx2", 1);
    ek_load_options lo;
    ek_load_options_init(&lo);
    lo.dtype = EK_DTYPE_BF16;
    ek_model *m = NULL;
    assert_int_equal(ek_model_load_opts(ctx, ts_path(ts_models_dir(), "tiny-mean"), &lo, &m), EK_ERR_UNSUPPORTED);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "AVX-512"));
    setenv("EK_ISA", "pentium", 1);
    assert_int_equal(ek_model_load_opts(ctx, ts_path(ts_models_dir(), "tiny-mean"), NULL, &m), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "EK_ISA"));
    unsetenv("EK_ISA");
    free(a);
    free(b);
    free(in.ids);
    ek_model_free(gen);
    ek_model_free(ref);
    ek_ctx_free(ctx);

    /* A fresh process: oneDNN is capped as well, and says so. */
    char cmd[8192], *out = NULL;
    snprintf(cmd, sizeof cmd, "EK_ISA=avx2 %s bench forward --model %s --batch 2 --seq 16 --iters 1 --json",
             ts_ek_bin(), ts_path(ts_models_dir(), "tiny-mean"));
    int rc = ts_run(cmd, &out, NULL);
    printf("EK_ISA=avx2: %s", out ? out : "(no output)\n");
    assert_int_equal(rc, 0);
    assert_non_null(out);
    assert_non_null(strstr(out, "\"isa\":\"avx2\""));
    assert_non_null(strstr(out, "\"dnnl_isa\":\"avx2\""));
    free(out);
}

/* Off x86-64 (aarch64: tools/test_aarch64.sh) bf16 and int8 have no
 * kernels: loading them is refused with a message naming what they need.
 * f32 batch invariance there is checked by test_forward, to a tolerance. */
static void test_lowp_refused(void **state) {
    (void)state;
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    static const ek_compute_dtype dts[] = {EK_DTYPE_BF16, EK_DTYPE_INT8};
    for (int k = 0; k < 2; k++) {
        ek_load_options lo;
        ek_load_options_init(&lo);
        lo.dtype = dts[k];
        ek_model *m = NULL;
        assert_int_equal(ek_model_load_opts(ctx, ts_path(ts_models_dir(), "tiny-mean"), &lo, &m),
                         EK_ERR_UNSUPPORTED);
        assert_null(m);
        assert_non_null(strstr(ek_ctx_last_error(ctx), "AVX-512"));
        printf("%s\n", ek_ctx_last_error(ctx));
    }
    ek_ctx_free(ctx);
}

int main(void) {
#if defined(__x86_64__)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accuracy_minilm),
        cmocka_unit_test(test_accuracy_tiny),
        cmocka_unit_test(test_invariance),
        cmocka_unit_test(test_concurrent),
        cmocka_unit_test(test_isa_cap), /* the refusal, below AVX-512 BF16 */
    };
    (void)test_lowp_refused;
#else
    (void)test_accuracy_minilm, (void)test_accuracy_tiny, (void)test_invariance, (void)test_concurrent,
        (void)test_isa_cap;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lowp_refused),
    };
#endif
    return cmocka_run_group_tests(tests, NULL, NULL);
}
