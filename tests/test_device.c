/* tests/test_device.c — ek_ctx_set_device and the dispatch of ek_embed:
 * spec validation, "cpu" being the default bit for bit, an OpenCL device
 * named by number (PoCL's CPU device here) agreeing with the CPU within the
 * GPU tolerance, "auto" staying on the CPU without a device of type GPU
 * (and without any OpenCL runtime), "gpu" failing clearly without one, and
 * the threshold's own checks. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "support.h"

#include "embedkit_gpu.h"

typedef struct env {
    ek_ctx *ref;            /* default context: the CPU reference */
    ek_model *m;
    ek_gpu_device dev[8];
    size_t n_dev;
    int has_gpu;            /* a device of type GPU exists */
    char cache[256];
} env;

static const char *texts[] = {"Hello world", "a", "The quick brown fox jumps over the lazy dog, again and again.",
                              "", "GPU or CPU: the same embedding", "x y z", "embedkit routes calls by size"};
enum { N = sizeof texts / sizeof texts[0] };

static int setup(void **state) {
    env *v = calloc(1, sizeof *v);
    assert_non_null(v);
    /* Kernels a device context builds are cached here, not in $HOME. */
    snprintf(v->cache, sizeof v->cache, "%s", ts_mkdtemp());
    setenv("EK_CACHE_DIR", v->cache, 1);
    assert_int_equal(ek_ctx_new(&v->ref), EK_OK);
    assert_int_equal(ek_model_load(v->ref, ts_path(ts_models_dir(), "default"), &v->m), EK_OK);
    assert_int_equal(ek_gpu_list(v->ref, v->dev, 8, &v->n_dev), EK_OK);
    if (v->n_dev > 8) v->n_dev = 8;
    for (size_t i = 0; i < v->n_dev; i++) v->has_gpu |= v->dev[i].is_gpu;
    *state = v;
    return 0;
}

static int teardown(void **state) {
    env *v = *state;
    ek_model_free(v->m);
    ek_ctx_free(v->ref);
    ts_rm_rf(v->cache);
    free(v);
    return 0;
}

/* Embeds texts with ctx; returns a malloc'ed [N][dim] matrix. */
static float *embed_all(ek_ctx *ctx, const ek_model *m, int *dim) {
    ek_embed_options o;
    ek_embed_options_init(&o);
    o.normalize = 1;
    *dim = ek_embed_dim(m, &o);
    float *out = malloc(sizeof *out * N * (size_t)*dim);
    assert_non_null(out);
    ek_status s = ek_embed(ctx, m, texts, NULL, N, &o, out, NULL);
    if (s != EK_OK) fail_msg("ek_embed: %s", ek_ctx_last_error(ctx));
    return out;
}

/* A new context whose ek_embed runs on spec. */
static ek_ctx *ctx_on(const char *spec) {
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_ctx_set_device(ctx, spec), EK_OK);
    return ctx;
}

static void test_spec_errors(void **state) {
    (void)state;
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    static const char *bad[] = {"", "GPU", "cuda", "opencl", "opencl:", "opencl:0", "opencl:0:", "opencl:0:0:0",
                                "opencl:-1:0", "opencl:a:b", "opencl: 0:0", "opencl:+0:0", "cpu ", "any"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(ek_ctx_set_device(ctx, bad[i]), EK_ERR_INVALID_ARG);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "\"%s\"", bad[i]);
        if (!strstr(ek_ctx_last_error(ctx), quoted)) fail_msg("error does not name %s: %s", quoted, ek_ctx_last_error(ctx));
    }
    assert_int_equal(ek_ctx_set_device(ctx, NULL), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_ctx_set_device(NULL, "cpu"), EK_ERR_INVALID_ARG);
    static const char *good[] = {"cpu", "gpu", "auto", "opencl:0:0", "opencl:12:3", "cpu"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) assert_int_equal(ek_ctx_set_device(ctx, good[i]), EK_OK);
    assert_int_equal(ek_ctx_set_gpu_min_tokens(ctx, -1), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "gpu_min_tokens"));
    assert_int_equal(ek_ctx_set_gpu_min_tokens(ctx, 0), EK_OK);
    assert_int_equal(ek_ctx_set_gpu_min_tokens(ctx, 1), EK_OK);
    assert_string_equal(ek_ctx_last_device(ctx), "");
    ek_ctx_free(ctx);
}

static void test_cpu_is_default(void **state) {
    env *v = *state;
    int dim;
    ek_ctx *ctx = ctx_on("cpu");
    float *ref = embed_all(v->ref, v->m, &dim), *out = embed_all(ctx, v->m, &dim);
    assert_memory_equal(out, ref, sizeof *out * N * (size_t)dim);
    assert_string_equal(ek_ctx_last_device(ctx), "cpu");
    assert_string_equal(ek_ctx_last_device(v->ref), "cpu");
    free(ref), free(out);
    ek_ctx_free(ctx);
}

static void compare(const float *a, const float *b, int dim, const char *what) {
    double worst = 0, worst_cos = 1;
    for (int i = 0; i < N; i++) {
        double dot = 0, na = 0, nb = 0;
        for (int k = 0; k < dim; k++) {
            double x = a[(size_t)i * dim + k], y = b[(size_t)i * dim + k];
            double d = x > y ? x - y : y - x;
            if (d > worst) worst = d;
            dot += x * y, na += x * x, nb += y * y;
        }
        double cs = dot / (sqrt(na * nb) + 1e-30);
        if (cs < worst_cos) worst_cos = cs;
    }
    print_message("%s: max |diff| %.3g, min cosine %.8f\n", what, worst, worst_cos);
    if (!(worst <= 1e-4) || !(worst_cos >= 0.99999)) fail_msg("%s: max |diff| %g, cosine %.8f", what, worst, worst_cos);
}

static void test_opencl_device(void **state) {
    env *v = *state;
    if (v->n_dev == 0) {
        print_message("no OpenCL device: skipped\n");
        skip();
    }
    char spec[32];
    snprintf(spec, sizeof spec, "opencl:%d:%d", v->dev[0].platform, v->dev[0].device);
    int dim;
    ek_ctx *ctx = ctx_on(spec);
    float *ref = embed_all(v->ref, v->m, &dim), *out = embed_all(ctx, v->m, &dim);
    assert_string_equal(ek_ctx_last_device(ctx), spec);
    compare(out, ref, dim, spec);
    /* The device stays open: a second call runs there again. */
    free(out);
    out = embed_all(ctx, v->m, &dim);
    assert_string_equal(ek_ctx_last_device(ctx), spec);
    compare(out, ref, dim, spec);
    /* Back to the CPU: bitwise the reference again. */
    free(out);
    assert_int_equal(ek_ctx_set_device(ctx, "cpu"), EK_OK);
    out = embed_all(ctx, v->m, &dim);
    assert_memory_equal(out, ref, sizeof *out * N * (size_t)dim);
    assert_string_equal(ek_ctx_last_device(ctx), "cpu");
    free(ref), free(out);
    ek_ctx_free(ctx); /* closes nothing now; ASan checks the earlier close */
}

static void test_auto(void **state) {
    env *v = *state;
    int dim;
    ek_ctx *ctx = ctx_on("auto");
    float *ref = embed_all(v->ref, v->m, &dim);
    /* A threshold too high for this call: the CPU, bit for bit. */
    assert_int_equal(ek_ctx_set_gpu_min_tokens(ctx, 1 << 30), EK_OK);
    float *out = embed_all(ctx, v->m, &dim);
    assert_string_equal(ek_ctx_last_device(ctx), "cpu");
    assert_memory_equal(out, ref, sizeof *out * N * (size_t)dim);
    free(out);
    /* Threshold 1: the device when it is a GPU, else still the CPU (PoCL's
     * CPU device never counts). */
    assert_int_equal(ek_ctx_set_gpu_min_tokens(ctx, 1), EK_OK);
    out = embed_all(ctx, v->m, &dim);
    if (v->has_gpu) {
        assert_memory_not_equal(ek_ctx_last_device(ctx), "cpu", 4);
        compare(out, ref, dim, "auto on a GPU");
    } else {
        print_message("no device of type GPU: auto runs on the CPU\n");
        assert_string_equal(ek_ctx_last_device(ctx), "cpu");
        assert_memory_equal(out, ref, sizeof *out * N * (size_t)dim);
    }
    free(ref), free(out);
    ek_ctx_free(ctx);
}

static void test_gpu_without_gpu(void **state) {
    env *v = *state;
    if (v->has_gpu) {
        print_message("a GPU device exists: nothing to check\n");
        skip();
    }
    ek_ctx *ctx = ctx_on("gpu");
    float out[4096];
    ek_status s = ek_embed(ctx, v->m, texts, NULL, 1, NULL, out, NULL);
    assert_int_equal(s, EK_ERR_UNSUPPORTED);
    print_message("gpu without a GPU: %s\n", ek_ctx_last_error(ctx));
    assert_non_null(strstr(ek_ctx_last_error(ctx), "device gpu: "));
    assert_non_null(strstr(ek_ctx_last_error(ctx), "no OpenCL"));
    /* A device that does not exist, named by number. */
    assert_int_equal(ek_ctx_set_device(ctx, "opencl:99:0"), EK_OK);
    assert_int_equal(ek_embed(ctx, v->m, texts, NULL, 1, NULL, out, NULL), EK_ERR_UNSUPPORTED);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "device opencl:99:0: "));
    /* An empty call needs no device. */
    assert_int_equal(ek_embed(ctx, v->m, texts, NULL, 0, NULL, out, NULL), EK_OK);
    ek_ctx_free(ctx);
}

/* No OpenCL runtime at all (EK_OPENCL_LIB pointing nowhere; it is read at
 * every load): auto is the CPU without a word, gpu is a clear error. */
static void test_no_runtime(void **state) {
    env *v = *state;
    setenv("EK_OPENCL_LIB", "/nonexistent/libOpenCL.so.1", 1);
    int dim;
    ek_ctx *ctx = ctx_on("auto");
    assert_int_equal(ek_ctx_set_gpu_min_tokens(ctx, 1), EK_OK);
    float *ref = embed_all(v->ref, v->m, &dim), *out = embed_all(ctx, v->m, &dim);
    assert_string_equal(ek_ctx_last_device(ctx), "cpu");
    assert_memory_equal(out, ref, sizeof *out * N * (size_t)dim);
    assert_int_equal(ek_ctx_set_device(ctx, "gpu"), EK_OK);
    assert_int_equal(ek_embed(ctx, v->m, texts, NULL, N, NULL, out, NULL), EK_ERR_UNSUPPORTED);
    assert_non_null(strstr(ek_ctx_last_error(ctx), "device gpu: no OpenCL runtime"));
    free(ref), free(out);
    ek_ctx_free(ctx);
    unsetenv("EK_OPENCL_LIB");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_spec_errors),   cmocka_unit_test(test_cpu_is_default),
        cmocka_unit_test(test_opencl_device), cmocka_unit_test(test_auto),
        cmocka_unit_test(test_gpu_without_gpu), cmocka_unit_test(test_no_runtime),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
