/* cli/bench_gpu.c — `ek bench gpu`: the OpenCL backend against the CPU on
 * the same work: the forward pass (ek_gpu_embed vs ek_embed) by batch size,
 * pooling + normalisation of token states, and cosine similarity 1 x N and
 * Q x N against a resident matrix.  Host<->device transfer times are
 * reported apart from the total (from ek_gpu_stats).  The forward rows
 * also give the call size (tokens) from which the device wins: what the
 * "auto" device's threshold should be on this machine.  Device memory:
 * each row's gpu_peak_bytes is the high-water mark of the backend's device
 * buffers during that measurement (ek_gpu_stats.peak, which
 * ek_gpu_reset_stats restarts from the bytes held at the reset, so it
 * counts the resident weights and matrices and the pooled buffers kept
 * from earlier calls); the run's gpu_peak_bytes is the largest the backend
 * held at any point, warm-ups and uploads included.  Public API only. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "embedkit_gpu.h"

static double now_ms(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static uint64_t rng = 88172645463325252ull;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((double)(rng >> 11) / 9007199254740992.0) * 2.0f - 1.0f;
}

typedef struct opts {
    const char *model, *device;
    int json, reps, dim, queries;
    long rows_1n, rows_nm;
    int batches[8], n_batches;
} opts;

static int usage(void) {
    return cli_usage("bench gpu",
                     "usage: ek bench gpu --model DIR [--device gpu|any|opencl:P:D] [--json] [--reps N]\n"
                     "       [--batches 1,8,32,128] [--rows-1n 1000000] [--rows-nm 100000] [--queries 1000]\n"
                     "       [--dim 384]");
}

static int parse(int argc, char **argv, opts *o) {
    memset(o, 0, sizeof *o);
    o->device = "gpu";
    o->reps = 3;
    o->dim = 384;
    o->queries = 1000;
    o->rows_1n = 1000000;
    o->rows_nm = 100000;
    int def[] = {1, 8, 32, 128};
    memcpy(o->batches, def, sizeof def);
    o->n_batches = 4;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int iv;
        if (!strcmp(a, "--json")) o->json = 1;
        else if (!strcmp(a, "--model") && v) o->model = v, i++;
        else if (!strcmp(a, "--device") && v) o->device = v, i++;
        else if (!strcmp(a, "--reps") && v) {
            if (cli_int("bench gpu", a, v, 1, 1000, &o->reps)) return 2;
            i++;
        } else if (!strcmp(a, "--dim") && v) {
            if (cli_int("bench gpu", a, v, 1, 65536, &o->dim)) return 2;
            i++;
        } else if (!strcmp(a, "--queries") && v) {
            if (cli_int("bench gpu", a, v, 1, 1000000, &o->queries)) return 2;
            i++;
        } else if ((!strcmp(a, "--rows-1n") || !strcmp(a, "--rows-nm")) && v) {
            if (cli_int("bench gpu", a, v, 1, 100000000, &iv)) return 2;
            if (a[7] == '1') o->rows_1n = iv;
            else o->rows_nm = iv;
            i++;
        } else if (!strcmp(a, "--batches") && v) {
            o->n_batches = 0;
            for (const char *p = v; *p && o->n_batches < 8;) {
                char *end;
                long b = strtol(p, &end, 10);
                if (end == p || b < 1 || b > 100000) return cli_usage("bench gpu", "--batches: bad list \"%s\"", v);
                o->batches[o->n_batches++] = (int)b;
                p = *end == ',' ? end + 1 : end;
            }
            i++;
        } else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 1;
        } else {
            return cli_usage("bench gpu", "unknown option %s", a);
        }
    }
    if (!o->model) return usage();
    return 0;
}

/* Sentences of 8..40 words from a fixed vocabulary. */
static char **make_texts(int n) {
    static const char *words[] = {"the", "model", "turns", "text", "into", "vectors", "quickly", "on", "every",
                                  "device", "embedding", "search", "query", "document", "similar", "meaning",
                                  "GPU", "kernel", "memory", "batch"};
    char **t = calloc((size_t)n, sizeof *t);
    for (int i = 0; t && i < n; i++) {
        t[i] = calloc(512, 1);
        if (!t[i]) continue;
        int nw = 8 + (int)((frand() + 1.0f) * 16.0f);
        for (int w = 0; w < nw; w++) {
            strcat(t[i], words[(int)((frand() + 1.0f) * 9.99f)]);
            strcat(t[i], " ");
        }
    }
    return t;
}

typedef struct row {
    char what[48];
    long size;
    double cpu_ms, gpu_ms, up_ms, down_ms;
    uint64_t peak; /* device bytes, high-water mark during the GPU runs */
} row;

/* The run's device-memory high-water mark: folded in from ek_gpu_stats
 * before every reset (which restarts the peak) and at the end. */
static uint64_t run_peak;
static void fold_peak(const ek_gpu *g) {
    ek_gpu_stats s;
    ek_gpu_get_stats(g, &s);
    if (s.peak > run_peak) run_peak = s.peak;
}

static double mib(uint64_t bytes) { return (double)bytes / (1024.0 * 1024.0); }

static void emit(const opts *o, const row *r, int first) {
    if (o->json)
        printf("%s    {\"op\": \"%s\", \"size\": %ld, \"cpu_ms\": %.3f, \"gpu_ms\": %.3f, \"gpu_upload_ms\": %.3f, "
               "\"gpu_download_ms\": %.3f, \"speedup\": %.3f, \"gpu_peak_bytes\": %llu}",
               first ? "" : ",\n", r->what, r->size, r->cpu_ms, r->gpu_ms, r->up_ms, r->down_ms,
               r->gpu_ms > 0 ? r->cpu_ms / r->gpu_ms : 0.0, (unsigned long long)r->peak);
    else
        printf("%-22s %9ld  cpu %10.2f ms  gpu %10.2f ms (upload %8.2f, download %8.2f)  x%.2f  peak %8.1f MiB\n",
               r->what, r->size, r->cpu_ms, r->gpu_ms, r->up_ms, r->down_ms, r->gpu_ms > 0 ? r->cpu_ms / r->gpu_ms : 0.0,
               mib(r->peak));
    fflush(stdout);
}

/* Best of reps for the GPU call, with that run's transfer times; the
 * device-memory high-water mark over all reps. */
#define TIME_GPU(r, g, call)                                                    \
    do {                                                                        \
        (r).gpu_ms = 1e300;                                                     \
        (r).peak = 0;                                                           \
        for (int k_ = 0; k_ < o->reps; k_++) {                                  \
            fold_peak(g);                                                       \
            ek_gpu_reset_stats(g);                                              \
            double t_ = now_ms();                                               \
            if ((call) != EK_OK) goto fail;                                     \
            t_ = now_ms() - t_;                                                 \
            ek_gpu_stats s_;                                                    \
            ek_gpu_get_stats(g, &s_);                                           \
            if (s_.peak > (r).peak) (r).peak = s_.peak;                         \
            if (t_ < (r).gpu_ms)                                                \
                (r).gpu_ms = t_, (r).up_ms = s_.upload_ms, (r).down_ms = s_.download_ms; \
        }                                                                       \
    } while (0)
#define TIME_CPU(r, call)                                                       \
    do {                                                                        \
        (r).cpu_ms = 1e300;                                                     \
        for (int k_ = 0; k_ < o->reps; k_++) {                                  \
            double t_ = now_ms();                                               \
            if ((call) != EK_OK) goto fail;                                     \
            t_ = now_ms() - t_;                                                 \
            if (t_ < (r).cpu_ms) (r).cpu_ms = t_;                               \
        }                                                                       \
    } while (0)

int ek_bench_gpu(int argc, char **argv) {
    opts o_, *o = &o_;
    int prc = parse(argc, argv, o);
    if (prc) return prc == 1 ? 0 : prc;
    run_peak = 0;
    ek_ctx *ctx = NULL;
    ek_model *m = NULL;
    ek_gpu *g = NULL;
    char **texts = NULL;
    float *a = NULL, *b = NULL, *x = NULL, *q = NULL, *sc = NULL;
    int32_t *tc = NULL;
    int ntexts = 0, rc = 1, first = 1;
    if (ek_ctx_new(&ctx)) return cli_fail("bench gpu", "out of memory");
    ek_gpu_options go;
    ek_gpu_options_init(&go);
    go.device = o->device;
    if (ek_gpu_open(ctx, &go, &g) != EK_OK) {
        rc = cli_fail("bench gpu", "%s (try --device any to use a non-GPU OpenCL device such as PoCL)",
                      ek_ctx_last_error(ctx));
        ek_ctx_free(ctx);
        return rc;
    }
    if (ek_model_load(ctx, o->model, &m) != EK_OK) goto fail;
    ek_gpu_device dev;
    ek_gpu_get_device(g, &dev);
    ek_model_info mi;
    ek_model_get_info(m, &mi);
    if (o->json)
        printf("{\n  \"device\": \"%s\", \"platform\": \"%s\", \"driver\": \"%s\", \"is_gpu\": %s,\n"
               "  \"model\": \"%s\", \"hidden\": %d, \"layers\": %d, \"cpu_threads\": %d,\n  \"results\": [\n",
               dev.name, dev.platform_name, dev.driver, dev.is_gpu ? "true" : "false", o->model, mi.hidden_size,
               mi.num_layers, ek_ctx_threads(ctx));
    else
        printf("device %s (%s, driver %s)%s\nmodel %s: hidden %d, %d layers; CPU threads %d\n", dev.name,
               dev.platform_name, dev.driver, dev.is_gpu ? "" : " -- NOT a GPU: these are not GPU numbers", o->model,
               mi.hidden_size, mi.num_layers, ek_ctx_threads(ctx));

    /* forward pass by batch size */
    for (int i = 0; i < o->n_batches; i++) ntexts = o->batches[i] > ntexts ? o->batches[i] : ntexts;
    texts = make_texts(ntexts);
    int dim = ek_embed_dim(m, NULL);
    a = malloc(sizeof *a * (size_t)ntexts * dim);
    b = malloc(sizeof *b * (size_t)ntexts * dim);
    if (!texts || !a || !b) goto fail;
    /* The "auto" device's threshold (ek_ctx_set_gpu_min_tokens) is the
     * call size in tokens from which the device wins: the smallest batch
     * measured here that the device runs faster, with every larger batch
     * too.  Reported beside EK_GPU_MIN_TOKENS_DEFAULT to check the default
     * against a real device. */
    long fwd_tokens[8] = {0}, crossover = -1;
    double fwd_speedup[8] = {0};
    tc = malloc(sizeof *tc * (size_t)ntexts);
    if (!tc) goto fail;
    for (int i = 0; i < o->n_batches; i++) {
        int n = o->batches[i];
        row r = {"forward+pool", n, 0, 0, 0, 0, 0};
        const char *const *tx = (const char *const *)texts;
        if (ek_gpu_embed(ctx, g, m, tx, NULL, (size_t)n, NULL, b, tc)) goto fail; /* warm-up: weights resident */
        for (int k = 0; k < n; k++) fwd_tokens[i] += tc[k];
        TIME_CPU(r, ek_embed(ctx, m, tx, NULL, (size_t)n, NULL, a, NULL));
        TIME_GPU(r, g, ek_gpu_embed(ctx, g, m, tx, NULL, (size_t)n, NULL, b, NULL));
        fwd_speedup[i] = r.cpu_ms / r.gpu_ms;
        emit(o, &r, first), first = 0;
    }
    for (int i = 0; i < o->n_batches; i++) {
        int wins_above = 1;
        for (int k = 0; k < o->n_batches; k++)
            if (fwd_tokens[k] >= fwd_tokens[i] && !(fwd_speedup[k] > 1.0)) wins_above = 0;
        if (wins_above && (crossover < 0 || fwd_tokens[i] < crossover)) crossover = fwd_tokens[i];
    }
    if (o->json && crossover >= 0)
        printf(",\n    {\"op\": \"auto crossover\", \"tokens\": %ld, \"default_min_tokens\": %d}", crossover,
               EK_GPU_MIN_TOKENS_DEFAULT);
    else if (o->json)
        printf(",\n    {\"op\": \"auto crossover\", \"tokens\": null, \"default_min_tokens\": %d}",
               EK_GPU_MIN_TOKENS_DEFAULT);
    else if (crossover >= 0)
        printf("%-22s %9ld  tokens per call from which the device wins (auto's default threshold: %d)\n",
               "auto crossover", crossover, EK_GPU_MIN_TOKENS_DEFAULT);
    else
        printf("%-22s %9s  the device was faster at no measured size (auto's default threshold: %d)\n",
               "auto crossover", "none", EK_GPU_MIN_TOKENS_DEFAULT);

    /* pooling + normalisation of token states: 256 sequences of 128 tokens */
    {
        const int n_seq = 256, L = 128, H = mi.hidden_size;
        int32_t *lens = malloc(sizeof *lens * n_seq);
        float *hid = malloc(sizeof *hid * (size_t)n_seq * L * H), *w = malloc(sizeof *w * L);
        float *po = malloc(sizeof *po * (size_t)n_seq * H);
        if (!lens || !hid || !w || !po) {
            free(lens), free(hid), free(w), free(po);
            goto fail;
        }
        for (int s = 0; s < n_seq; s++) lens[s] = L;
        for (size_t i = 0; i < (size_t)n_seq * L * H; i++) hid[i] = frand();
        for (int t = 0; t < L; t++) w[t] = 1.0f;
        row r = {"pool mean+normalize", n_seq, 0, 0, 0, 0, 0};
        ek_status st = EK_OK;
        /* CPU: the library's weighted mean (weights 1) per sequence, then
         * the L2 norm, as ek_embed's head does. */
        r.cpu_ms = 1e300;
        for (int k = 0; k < o->reps; k++) {
            double t = now_ms();
            for (int s = 0; s < n_seq && !st; s++) {
                float *v = po + (size_t)s * H;
                st = ek_pool_weighted(ctx, hid + (size_t)s * L * H, L, H, w, v);
                double ss = 0;
                for (int c = 0; c < H; c++) ss += (double)v[c] * v[c];
                double inv = ss > 1e-24 ? 1.0 / __builtin_sqrt(ss) : 1e12;
                for (int c = 0; c < H; c++) v[c] = (float)(v[c] * inv);
            }
            t = now_ms() - t;
            if (t < r.cpu_ms) r.cpu_ms = t;
        }
        if (!st) TIME_GPU(r, g, ek_gpu_pool(ctx, g, hid, lens, (size_t)n_seq, H, EK_POOL_MEAN, NULL, 1, po));
        free(lens), free(hid), free(w), free(po);
        if (st) goto fail;
        emit(o, &r, 0);
    }

    /* cosine 1 x N and Q x N */
    {
        long N = o->rows_1n > o->rows_nm ? o->rows_1n : o->rows_nm;
        size_t d = (size_t)o->dim;
        x = malloc(sizeof *x * (size_t)N * d);
        q = malloc(sizeof *q * (size_t)o->queries * d);
        sc = malloc(sizeof *sc * ((size_t)o->queries * (size_t)o->rows_nm > (size_t)o->rows_1n
                                      ? (size_t)o->queries * (size_t)o->rows_nm
                                      : (size_t)o->rows_1n));
        if (!x || !q || !sc) goto fail;
        for (size_t i = 0; i < (size_t)N * d; i++) x[i] = frand();
        for (size_t i = 0; i < (size_t)o->queries * d; i++) q[i] = frand();
        for (int pass = 0; pass < 2; pass++) {
            size_t nq = pass ? (size_t)o->queries : 1, rows = (size_t)(pass ? o->rows_nm : o->rows_1n);
            row r;
            memset(&r, 0, sizeof r);
            snprintf(r.what, sizeof r.what, "cosine %zux%zu", nq, rows);
            r.size = (long)(nq * rows);
            ek_gpu_matrix *gm = NULL;
            double t = now_ms();
            if (ek_gpu_matrix_new(ctx, g, x, rows, d, &gm)) goto fail;
            double upload = now_ms() - t;
            TIME_CPU(r, ek_similarity(ctx, EK_METRIC_COSINE, q, nq, d, x, rows, d, sc));
            TIME_GPU(r, g, ek_gpu_cosine(ctx, g, q, nq, gm, sc));
            ek_gpu_matrix_free(gm);
            emit(o, &r, 0);
            if (o->json) printf(",\n    {\"op\": \"matrix upload\", \"size\": %zu, \"gpu_upload_ms\": %.3f}", rows, upload);
            else printf("%-22s %9zu  upload %.2f ms (once; resident afterwards)\n", "matrix upload", rows, upload);
        }
    }
    fold_peak(g);
    ek_gpu_stats gs;
    ek_gpu_get_stats(g, &gs);
    if (o->json)
        printf("\n  ],\n  \"gpu_peak_bytes\": %llu, \"gpu_budget_bytes\": %llu,\n  \"note\": \"%s\"\n}\n",
               (unsigned long long)run_peak, (unsigned long long)gs.budget,
               dev.is_gpu ? "best of reps; gpu_ms includes the transfers shown; gpu_peak_bytes: device buffers held "
                            "at the high-water mark (per row: during that measurement)"
                          : "NOT a GPU: OpenCL on a CPU device (e.g. PoCL) against the CPU path; best of reps; "
                            "gpu_peak_bytes: device buffers held at the high-water mark (per row: during that "
                            "measurement)");
    else
        printf("%-22s %9s  %.1f MiB of device buffers at most (budget %.1f MiB)\n", "device memory peak", "",
               mib(run_peak), mib(gs.budget));
    rc = 0;
    goto done;
fail:
    rc = cli_fail("bench gpu", "%s", ek_ctx_last_error(ctx));
done:
    for (int i = 0; texts && i < ntexts; i++) free(texts[i]);
    free(texts), free(a), free(b), free(x), free(q), free(sc), free(tc);
    ek_gpu_close(g);
    ek_model_free(m);
    ek_ctx_free(ctx);
    return rc;
}
