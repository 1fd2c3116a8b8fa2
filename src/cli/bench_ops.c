/* cli/bench_ops.c — `ek bench all ops`: the operations after the encoder, on
 * random data of embedding shapes (no model needed):
 *   - pooling, each mode over one sequence's hidden states (L x H);
 *   - L2 normalisation of a batch of vectors;
 *   - quantization: int8 calibration (ranges), int8 codes, binary codes;
 *   - similarity: cosine 1:N and N:M through ek_similarity;
 *   - top-k search (k = 10, 1 query and a batch) per storage type: f32, f16,
 *     bf16, int8, binary with f32 rescoring.
 * Every figure has its latency histogram; throughputs are derived from the
 * mean.  `ek bench search` measures the large-index case against memory
 * bandwidth and FAISS; this one is the per-call distribution at a size a
 * service holds in cache. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_stats.h"
#include "cli/bench_suite.h"
#include "cli/cli.h"
#include "embedkit_search.h"
#include "ops/ops.h"

/* Uniform in [-1, 1) from a 64-bit LCG: the same data on every run. */
static void fill(float *x, size_t n, uint64_t seed) {
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(seed >> 40) * 0x1p-23 - 1.0);
    }
}

typedef struct op_arg {
    ek_ctx *ctx;
    int mode, L, H, n, nq;
    const float *a, *b, *w;
    float *out, *scratch;
    int8_t *i8;
    uint8_t *bits;
    const ek_index *ix;
    ek_hit *hits;
    size_t k, rescore;
} op_arg;

static int op_pool(void *p) {
    op_arg *a = p;
    ek_op_pool(a->mode, a->a, a->L, a->H, 0, a->w, a->out);
    return 0;
}

static int op_normalize(void *p) {
    op_arg *a = p;
    memcpy(a->scratch, a->a, sizeof(float) * (size_t)a->n * (size_t)a->H);
    for (int i = 0; i < a->n; i++) ek_op_l2_normalize(a->scratch + (size_t)i * (size_t)a->H, a->H);
    return 0;
}

static int op_ranges(void *p) {
    op_arg *a = p;
    return ek_quantize_ranges(a->ctx, a->a, (size_t)a->n, (size_t)a->H, a->out) != EK_OK;
}

static int op_int8(void *p) {
    op_arg *a = p;
    return ek_quantize_int8(a->ctx, a->a, (size_t)a->n, (size_t)a->H, a->w, a->i8) != EK_OK;
}

static int op_binary(void *p) {
    op_arg *a = p;
    return ek_quantize_binary(a->ctx, a->a, (size_t)a->n, (size_t)a->H, a->bits) != EK_OK;
}

static int op_similarity(void *p) {
    op_arg *a = p;
    return ek_similarity(a->ctx, EK_METRIC_COSINE, a->b, (size_t)a->nq, (size_t)a->H, a->a, (size_t)a->n,
                         (size_t)a->H, a->out) != EK_OK;
}

static int op_search(void *p) {
    op_arg *a = p;
    ek_search_options so = {a->k, a->rescore};
    return ek_index_search(a->ctx, a->ix, a->b, (size_t)a->nq, (size_t)a->H, &so, a->hits, NULL) != EK_OK;
}

typedef struct runner {
    ek_ctx *ctx;
    cJSON *out;
    int json, quick, buckets;
} runner;

/* Measures fn and adds the result under name; items (vectors, rows...) per
 * call and bytes read per call give the derived rates.  Returns non-zero
 * when the operation failed (the context's message is printed). */
static int run(runner *r, cJSON *into, const char *group, const char *name, bench_fn fn, op_arg *a, double items,
               const char *item, double bytes) {
    bench_plan plan = {3, 10, r->quick ? 2000 : 100000, r->quick ? 0.02 : 0.25};
    bench_result res;
    if (bench_measure(fn, a, &plan, &res)) return cli_fail("bench ops", "%s: %s", name, ek_ctx_last_error(r->ctx));
    double mean_s = bench_hist_mean(&res.hist) * 1e-9;
    cJSON *o = bench_result_json(&res, r->buckets);
    char key[64];
    snprintf(key, sizeof key, "%s_per_s", item);
    bench_num(o, key, mean_s > 0 ? items / mean_s : 0);
    if (bytes > 0) bench_num(o, "gb_per_s", mean_s > 0 ? bytes / mean_s / 1e9 : 0);
    cJSON_AddItemToObject(into, name, o);
    if (!r->json)
        printf("%-8s %-20s p50 %10.2f us  p99 %10.2f us  %12.0f %s/s  %7.2f GB/s  (cv %.2f)\n", group, name,
               (double)bench_hist_percentile(&res.hist, 50) / 1e3, (double)bench_hist_percentile(&res.hist, 99) / 1e3,
               mean_s > 0 ? items / mean_s : 0, item, mean_s > 0 ? bytes / mean_s / 1e9 : 0,
               bench_hist_cv(&res.hist));
    return 0;
}

int ek_bench_ops(int argc, char **argv) {
    const char *cmd = "bench ops";
    int json = 0, quick = 0, buckets = 1, dim = 384, seq = 128, n = 100000, threads = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--no-buckets")) buckets = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench all ops [--dim 384] [--seq 128] [--n 100000] [--threads T] [--quick]\n"
                 "                        [--no-buckets] [--json]\n"
                 "  pooling modes, normalisation, quantization, similarity 1:N and N:M, top-k\n"
                 "  per storage type over N random vectors");
            return 0;
        } else if (!v) return cli_usage(cmd, "%s needs a value (or is unknown)", a);
        else if (!strcmp(a, "--dim")) { if ((rc = cli_int(cmd, a, v, 8, 65536, &dim))) return rc; i++; }
        else if (!strcmp(a, "--seq")) { if ((rc = cli_int(cmd, a, v, 1, 65536, &seq))) return rc; i++; }
        else if (!strcmp(a, "--n")) { if ((rc = cli_int(cmd, a, v, 64, 1 << 26, &n))) return rc; i++; }
        else if (!strcmp(a, "--threads")) { if ((rc = cli_int(cmd, a, v, 0, 1024, &threads))) return rc; i++; }
        else if (!strcmp(a, "--model")) i++; /* accepted (and unused) so `ek bench all` can pass it to everyone */
        else return cli_usage(cmd, "unknown option %s", a);
    }
    if (quick && n > 10000) n = 10000;
    const int nq = 64;
    size_t H = (size_t)dim, N = (size_t)n, big = N > (size_t)seq ? N : (size_t)seq;
    float *X = malloc(sizeof *X * big * H), *Q = malloc(sizeof *Q * (size_t)nq * H);
    float *out = malloc(sizeof *out * (size_t)nq * N > sizeof *out * 2 * H ? sizeof *out * (size_t)nq * N
                                                                             : sizeof *out * 2 * H);
    float *scratch = malloc(sizeof *scratch * 256 * H), *w = malloc(sizeof *w * (size_t)seq);
    float *ranges = malloc(sizeof *ranges * 2 * H);
    int8_t *i8 = malloc(N * H);
    uint8_t *bits = malloc(N * ((H + 7) / 8));
    ek_hit *hits = malloc(sizeof *hits * (size_t)nq * 100);
    ek_ctx *ctx = NULL;
    if (!X || !Q || !out || !scratch || !w || !ranges || !i8 || !bits || !hits || ek_ctx_new(&ctx)) {
        rc = cli_fail(cmd, "out of memory for %zu x %zu vectors", N, H);
        goto done;
    }
    ek_ctx_set_threads(ctx, threads);
    fill(X, big * H, 1);
    fill(Q, (size_t)nq * H, 2);
    for (int t = 0; t < seq; t++) w[t] = 1.0f / (float)(t + 1);
    runner r = {ctx, cJSON_CreateObject(), json, quick, buckets};
    bench_str(r.out, "bench", "ops");
    bench_num(r.out, "dim", dim);
    bench_num(r.out, "seq", seq);
    bench_num(r.out, "n", n);
    bench_num(r.out, "threads", ek_ctx_threads(ctx));
    rc = 0;

    /* Pooling: one sequence of seq tokens. */
    cJSON *pool = cJSON_AddObjectToObject(r.out, "pooling");
    for (int mode = 0; !rc && mode < EK_POOL_COUNT; mode++) {
        op_arg a = {.mode = mode, .L = seq, .H = dim, .a = X, .w = w, .out = out};
        /* CLS and last-token read one row; the others every row. */
        double rows = mode == EK_POOL_CLS || mode == EK_POOL_LAST_TOKEN ? 1 : seq;
        rc = run(&r, pool, "pool", ek_pooling_name((ek_pooling)mode), op_pool, &a, 1, "sequences",
                 rows * (double)H * sizeof(float));
    }
    /* Normalisation: 256 vectors per call (one alone is timer-sized). */
    cJSON *norm = cJSON_AddObjectToObject(r.out, "normalize");
    if (!rc) {
        op_arg a = {.n = 256, .H = dim, .a = X, .scratch = scratch};
        rc = run(&r, norm, "norm", "l2_256_vectors", op_normalize, &a, 256, "vectors", 256.0 * (double)H * sizeof(float));
    }
    /* Quantization over the N vectors. */
    cJSON *quant = cJSON_AddObjectToObject(r.out, "quantize");
    double fbytes = (double)N * (double)H * sizeof(float);
    op_arg qa = {.ctx = ctx, .n = n, .H = dim, .a = X, .out = ranges, .w = ranges, .i8 = i8, .bits = bits};
    if (!rc) rc = run(&r, quant, "quantize", "ranges", op_ranges, &qa, (double)N, "vectors", fbytes);
    if (!rc) rc = run(&r, quant, "quantize", "int8", op_int8, &qa, (double)N, "vectors", fbytes);
    if (!rc) rc = run(&r, quant, "quantize", "binary", op_binary, &qa, (double)N, "vectors", fbytes);
    /* Similarity: 1 x N and nq x N cosine. */
    cJSON *sim = cJSON_AddObjectToObject(r.out, "similarity");
    for (int k = 0; !rc && k < 2; k++) {
        op_arg a = {.ctx = ctx, .n = n, .nq = k ? nq : 1, .H = dim, .a = X, .b = Q, .out = out};
        rc = run(&r, sim, "sim", k ? "cosine_64xN" : "cosine_1xN", op_similarity, &a, (double)a.nq * (double)N, "pairs",
                 fbytes);
    }
    /* Top-k per storage type. */
    cJSON *search = cJSON_AddObjectToObject(r.out, "topk");
    static const ek_vec_type types[] = {EK_VEC_F32, EK_VEC_F16, EK_VEC_BF16, EK_VEC_INT8, EK_VEC_BINARY};
    static const double elem_bytes[] = {4, 2, 2, 1, 0.125};
    ek_matrix mx = {EK_VEC_F32, X, N, H, H};
    for (size_t t = 0; !rc && t < sizeof types / sizeof types[0]; t++) {
        ek_index_options io;
        ek_index_options_init(&io);
        io.type = types[t];
        ek_index *ix = NULL;
        uint64_t t0 = bench_now_ns();
        if (ek_index_new(ctx, &mx, &io, &ix)) {
            rc = cli_fail(cmd, "index %s: %s", ek_vec_type_name(types[t]), ek_ctx_last_error(ctx));
            break;
        }
        double build_ms = (double)(bench_now_ns() - t0) / 1e6;
        cJSON *ty = cJSON_AddObjectToObject(search, ek_vec_type_name(types[t]));
        bench_num(ty, "build_ms", build_ms);
        bench_str(ty, "isa", ek_index_isa(ix));
        size_t rescore = types[t] == EK_VEC_BINARY ? 100 : 0;
        bench_num(ty, "rescore", (double)rescore);
        double ibytes = (double)N * (double)H * elem_bytes[t];
        for (int k = 0; !rc && k < 2; k++) {
            op_arg a = {.ctx = ctx, .nq = k ? nq : 1, .H = dim, .b = Q, .ix = ix, .hits = hits, .k = 10,
                        .rescore = rescore};
            char name[32];
            snprintf(name, sizeof name, "k10_%dq", a.nq);
            rc = run(&r, ty, ek_vec_type_name(types[t]), name, op_search, &a, a.nq, "queries", ibytes);
        }
        ek_index_free(ix);
    }
    bench_num(r.out, "peak_rss_bytes", (double)bench_peak_rss());
    if (!rc && json) rc = bench_emit(r.out);
    else cJSON_Delete(r.out);
done:
    ek_ctx_free(ctx);
    free(X);
    free(Q);
    free(out);
    free(scratch);
    free(w);
    free(ranges);
    free(i8);
    free(bits);
    free(hits);
    return rc;
}
