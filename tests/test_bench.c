/* tests/test_bench.c — the benchmark suite's own code: the fixed-bucket
 * latency histogram and its percentiles (src/cli/bench_stats.c), and the
 * shape of `ek bench all --quick --json` (valid JSON, the machine, every
 * benchmark with its status, histograms and memory figures), and the
 * device-memory peak of `ek bench gpu` where an OpenCL device exists.  No
 * timing is asserted: only structure and arithmetic. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "embedkit_gpu.h"
#include "support.h"

/* bench_stats.c belongs to the `ek` executable, not to the library the
 * tests link: it is compiled into this test directly. */
#include "../src/cli/bench_stats.c"

static void test_buckets_cover_every_value(void **state) {
    (void)state;
    /* Contiguous, non-overlapping ranges from 0 to the last bucket. */
    uint64_t lo, hi, prev_hi = 0;
    for (int b = 0; b < BENCH_BUCKETS; b++) {
        bench_hist_range(b, &lo, &hi);
        assert_true(lo <= hi);
        if (b) assert_int_equal(lo, prev_hi + 1);
        else assert_int_equal(lo, 0);
        prev_hi = hi;
        /* both ends map back to the bucket */
        assert_int_equal(bench_hist_bucket(lo), b);
        assert_int_equal(bench_hist_bucket(hi), b);
    }
    /* Exact below 128; at most 1/64 relative width above. */
    for (uint64_t v = 0; v < 128; v++) {
        bench_hist_range(bench_hist_bucket(v), &lo, &hi);
        assert_int_equal(lo, v);
        assert_int_equal(hi, v);
    }
    uint64_t s = 12345;
    for (int i = 0; i < 100000; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint64_t v = (s >> (s & 31)) & ((1ull << 47) - 1);
        int b = bench_hist_bucket(v);
        bench_hist_range(b, &lo, &hi);
        assert_true(lo <= v && v <= hi);
        if (v >= 128) assert_true((double)(hi - lo + 1) <= (double)lo / 64.0 + 1e-9);
    }
    /* Values beyond the range land in the last bucket. */
    assert_int_equal(bench_hist_bucket(UINT64_MAX), BENCH_BUCKETS - 1);
}

static void test_percentiles(void **state) {
    (void)state;
    bench_hist *h = malloc(sizeof *h);
    assert_non_null(h);
    bench_hist_init(h);
    assert_int_equal(bench_hist_percentile(h, 50), 0);
    assert_true(bench_hist_cv(h) == 0);
    for (uint64_t v = 1; v <= 1000; v++) bench_hist_record(h, v * 1000); /* 1 us .. 1 ms */
    assert_int_equal(h->count, 1000);
    assert_int_equal(h->min, 1000);
    assert_int_equal(h->max, 1000000);
    /* Nearest rank, reported as the top of its bucket: never below the true
     * value, at most 1/64 above. */
    const double ps[] = {50, 90, 99, 99.9};
    const uint64_t truth[] = {500000, 900000, 990000, 999000};
    for (int i = 0; i < 4; i++) {
        uint64_t got = bench_hist_percentile(h, ps[i]);
        assert_true(got >= truth[i]);
        assert_true((double)got <= (double)truth[i] * (1.0 + 1.0 / 64.0));
    }
    assert_int_equal(bench_hist_percentile(h, 100), 1000000);
    uint64_t p0 = bench_hist_percentile(h, 0); /* rank 1: the top of the minimum's bucket */
    assert_true(p0 >= 1000 && (double)p0 <= 1000 * (1.0 + 1.0 / 64.0));
    assert_true(fabs(bench_hist_mean(h) - 500500.0) < 1e-6);
    /* sample standard deviation of 1000..1000000 step 1000 = 288819.436... */
    assert_true(fabs(bench_hist_cv(h) - 288819.43625 / 500500.0) < 1e-6);

    /* Small exact values: percentiles are exact. */
    bench_hist_init(h);
    for (int i = 0; i < 90; i++) bench_hist_record(h, 10);
    for (int i = 0; i < 9; i++) bench_hist_record(h, 20);
    bench_hist_record(h, 100);
    assert_int_equal(bench_hist_percentile(h, 50), 10);
    assert_int_equal(bench_hist_percentile(h, 90), 10);
    assert_int_equal(bench_hist_percentile(h, 91), 20);
    assert_int_equal(bench_hist_percentile(h, 99), 20);
    assert_int_equal(bench_hist_percentile(h, 99.9), 100);
    bench_hist_init(h);
    for (int i = 0; i < 10; i++) bench_hist_record(h, 777);
    assert_true(bench_hist_cv(h) == 0);
    free(h);
}

static void test_hist_json(void **state) {
    (void)state;
    bench_hist *h = malloc(sizeof *h);
    assert_non_null(h);
    bench_hist_init(h);
    for (uint64_t v = 0; v < 5000; v += 7) bench_hist_record(h, v * v);
    cJSON *o = bench_hist_json(h, "ns", 1);
    assert_string_equal(cJSON_GetObjectItem(o, "unit")->valuestring, "ns");
    assert_true(cJSON_GetObjectItem(o, "count")->valuedouble == (double)h->count);
    const char *keys[] = {"min", "p50", "p90", "p99", "p99_9", "max", "mean", "cv"};
    for (int i = 0; i < 8; i++) assert_true(cJSON_IsNumber(cJSON_GetObjectItem(o, keys[i])));
    /* The buckets add up to the count, ascending and non-empty. */
    cJSON *b = cJSON_GetObjectItem(o, "buckets"), *row;
    double sum = 0, prev = -1;
    cJSON_ArrayForEach(row, b) {
        assert_int_equal(cJSON_GetArraySize(row), 3);
        double lo = cJSON_GetArrayItem(row, 0)->valuedouble, hi = cJSON_GetArrayItem(row, 1)->valuedouble;
        double n = cJSON_GetArrayItem(row, 2)->valuedouble;
        assert_true(lo > prev && hi >= lo && n > 0);
        prev = hi;
        sum += n;
    }
    assert_true(sum == (double)h->count);
    cJSON_Delete(o);
    o = bench_hist_json(h, "ns", 0);
    assert_null(cJSON_GetObjectItem(o, "buckets"));
    cJSON_Delete(o);
    free(h);
}

static int count_calls(void *arg) {
    ++*(int *)arg;
    return 0;
}

static void test_measure_excludes_warmup(void **state) {
    (void)state;
    int calls = 0;
    bench_plan plan = {5, 20, 20, 0};
    bench_result *r = malloc(sizeof *r);
    assert_non_null(r);
    assert_int_equal(bench_measure(count_calls, &calls, &plan, r), 0);
    assert_int_equal(calls, 25);
    assert_int_equal(r->iters, 20);
    assert_int_equal(r->hist.count, 20);
    free(r);
}

static cJSON *path(cJSON *o, const char *a, const char *b, const char *c) {
    cJSON *x = cJSON_GetObjectItem(o, a);
    if (x && b) x = cJSON_GetObjectItem(x, b);
    if (x && c) x = cJSON_GetObjectItem(x, c);
    return x;
}

static void test_bench_all_quick_json(void **state) {
    (void)state;
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' bench all --quick --json --model '%s'", ts_ek_bin(),
             ts_path(ts_models_dir(), "tiny-mean"));
    int rc = ts_run(cmd, &out, &err);
    if (rc) fprintf(stderr, "%s\n%s\n", out ? out : "", err ? err : "");
    assert_int_equal(rc, 0);
    cJSON *doc = cJSON_Parse(out);
    assert_non_null(doc);
    assert_string_equal(cJSON_GetObjectItem(doc, "suite")->valuestring, "embedkit-bench");
    assert_true(cJSON_IsTrue(cJSON_GetObjectItem(doc, "quick")));
    assert_int_equal(cJSON_GetArraySize(cJSON_GetObjectItem(doc, "failed")), 0);
    /* The machine. */
    const char *mkeys[] = {"cpu", "cpu_flags", "cores_online", "memory_bytes", "os", "kernel", "compiler",
                           "libraries", "isa_cpu", "isa_in_use", "gpu"};
    for (int i = 0; i < 11; i++) assert_non_null(path(doc, "machine", mkeys[i], NULL));
    assert_non_null(path(doc, "machine", "libraries", "onednn"));
    /* Every benchmark of the quick suite ran, with its own peak RSS. */
    const char *names[] = {"tokenize", "embed_f32", "ops", "model", "search", "pipeline"};
    for (int i = 0; i < 6; i++) {
        cJSON *b = path(doc, "benchmarks", names[i], NULL);
        assert_non_null(b);
        assert_string_equal(cJSON_GetObjectItem(b, "status")->valuestring, "ok");
        assert_true(cJSON_GetObjectItem(b, "peak_rss_bytes")->valuedouble > 0);
        assert_non_null(cJSON_GetObjectItem(b, "result"));
    }
    cJSON *gpu = path(doc, "benchmarks", "gpu", "status");
    assert_non_null(gpu); /* ok or skipped, depending on the machine */
    if (!strcmp(gpu->valuestring, "ok")) { /* a GPU: the section carries the device-memory peak */
        cJSON *g = path(doc, "benchmarks", "gpu", "result");
        assert_true(cJSON_GetObjectItem(g, "gpu_peak_bytes")->valuedouble > 0);
    }
    /* Histograms where the suite promises them. */
    cJSON *tok = path(path(doc, "benchmarks", "tokenize", "result"), "mixes", NULL, NULL);
    const char *mixes[] = {"en", "latin", "cjk", "mixed"};
    for (int i = 0; i < 4; i++) {
        cJSON *m = cJSON_GetObjectItem(tok, mixes[i]);
        assert_non_null(m);
        assert_non_null(path(m, "latency", "p99_9", NULL));
        assert_true(cJSON_GetArraySize(path(m, "latency", "buckets", NULL)) > 0);
        assert_non_null(cJSON_GetObjectItem(m, "mb_per_s"));
        assert_non_null(cJSON_GetObjectItem(m, "tokens_per_s"));
    }
    cJSON *embed = path(doc, "benchmarks", "embed_f32", "result");
    assert_true(cJSON_GetArraySize(cJSON_GetObjectItem(embed, "grid")) >= 4);
    assert_non_null(path(embed, "one_sentence", "latency", "p50"));
    assert_non_null(path(embed, "memory", "after_load", "rss_anon_bytes"));
    cJSON *ops = path(doc, "benchmarks", "ops", "result");
    assert_non_null(path(ops, "pooling", "mean", "latency"));
    assert_non_null(path(ops, "normalize", "l2_256_vectors", "heap_bytes_per_call"));
    assert_non_null(path(ops, "quantize", "int8", "latency"));
    assert_non_null(path(ops, "similarity", "cosine_1xN", "latency"));
    const char *types[] = {"f32", "f16", "bf16", "int8", "binary"};
    for (int i = 0; i < 5; i++) assert_non_null(path(path(ops, "topk", types[i], NULL), "k10_1q", "latency", NULL));
    cJSON *model = path(doc, "benchmarks", "model", "result");
    const char *mk[] = {"load", "alias_switch", "pool_acquire_alias", "manifest_hash", "verify_signature_2kb",
                        "verify_signature_16mb", "sha256_16mb"};
    for (int i = 0; i < 7; i++) assert_non_null(path(model, mk[i], "latency", NULL));
    assert_non_null(path(model, "manifest_hash", "mb_per_s", NULL));
    cJSON_Delete(doc);
    free(out);
    free(err);
}

/* `ek bench gpu` reports the device-memory high-water mark per measured row
 * and for the run.  Any OpenCL device will do (PoCL's CPU device too);
 * skipped where none can be opened. */
static void test_bench_gpu_peak_bytes(void **state) {
    (void)state;
    ek_ctx *ctx = NULL;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    ek_gpu_options go;
    ek_gpu_options_init(&go);
    go.device = "any";
    ek_gpu *g = NULL;
    ek_status st = ek_gpu_open(ctx, &go, &g);
    ek_gpu_close(g);
    ek_ctx_free(ctx);
    if (st != EK_OK) {
        print_message("no OpenCL device: bench gpu test skipped\n");
        skip();
    }
    char cmd[8192], *out = NULL, *err = NULL;
    snprintf(cmd, sizeof cmd,
             "'%s' bench gpu --model '%s' --device any --json --reps 2 --batches 1,4 --rows-1n 2000 "
             "--rows-nm 500 --queries 8",
             ts_ek_bin(), ts_path(ts_models_dir(), "tiny-mean"));
    int rc = ts_run(cmd, &out, &err);
    if (rc) fprintf(stderr, "%s\n%s\n", out ? out : "", err ? err : "");
    assert_int_equal(rc, 0);
    cJSON *doc = cJSON_Parse(out);
    assert_non_null(doc);
    cJSON *peak = cJSON_GetObjectItem(doc, "gpu_peak_bytes"), *budget = cJSON_GetObjectItem(doc, "gpu_budget_bytes");
    assert_non_null(peak);
    assert_non_null(budget);
    assert_true(peak->valuedouble > 0);
    assert_true(peak->valuedouble <= budget->valuedouble);
    int timed = 0;
    cJSON *r;
    cJSON_ArrayForEach(r, cJSON_GetObjectItem(doc, "results")) {
        if (!cJSON_GetObjectItem(r, "gpu_ms")) continue; /* crossover, matrix upload */
        cJSON *p = cJSON_GetObjectItem(r, "gpu_peak_bytes");
        assert_non_null(p);
        assert_true(p->valuedouble > 0);
        assert_true(p->valuedouble <= peak->valuedouble); /* the run's peak covers every row's */
        timed++;
    }
    assert_int_equal(timed, 5); /* forward x 2, pool, cosine 1:N, cosine N:M */
    cJSON_Delete(doc);
    free(out);
    free(err);
    /* `ek bench all` carries it in its gpu section. */
    out = err = NULL;
    snprintf(cmd, sizeof cmd, "'%s' bench all --quick --json --only gpu --gpu-device any --model '%s'", ts_ek_bin(),
             ts_path(ts_models_dir(), "tiny-mean"));
    rc = ts_run(cmd, &out, &err);
    if (rc) fprintf(stderr, "%s\n%s\n", out ? out : "", err ? err : "");
    assert_int_equal(rc, 0);
    doc = cJSON_Parse(out);
    assert_non_null(doc);
    assert_string_equal(path(doc, "benchmarks", "gpu", "status")->valuestring, "ok");
    assert_true(path(path(doc, "benchmarks", "gpu", "result"), "gpu_peak_bytes", NULL, NULL)->valuedouble > 0);
    cJSON_Delete(doc);
    free(out);
    free(err);
}

static void test_bench_all_rejects_bad_options(void **state) {
    (void)state;
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "'%s' bench all --no-such-option", ts_ek_bin());
    assert_int_not_equal(ts_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "'%s' bench all --model /nonexistent/model --quick", ts_ek_bin());
    assert_int_not_equal(ts_run(cmd, NULL, NULL), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_cover_every_value),
        cmocka_unit_test(test_percentiles),
        cmocka_unit_test(test_hist_json),
        cmocka_unit_test(test_measure_excludes_warmup),
        cmocka_unit_test(test_bench_all_quick_json),
        cmocka_unit_test(test_bench_gpu_peak_bytes),
        cmocka_unit_test(test_bench_all_rejects_bad_options),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
