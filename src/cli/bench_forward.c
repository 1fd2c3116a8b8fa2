/* cli/bench_forward.c — `ek bench forward`: the encoder's speed on a fixed
 * batch shape, after a warm-up, on deterministic non-zero token ids.  Prints
 * latency percentiles, sequences/s, tokens/s and useful GFLOP/s (the matrix
 * products and attention a BERT forward pass must do; pooling excluded). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Nearest-rank percentile of sorted v[n]. */
static double pct(const double *v, int n, double p) {
    int k = (int)ceil(p / 100.0 * n) - 1;
    if (k < 0) k = 0;
    if (k >= n) k = n - 1;
    return v[k];
}

int ek_bench_forward(int argc, char **argv) {
    const char *cmd = "bench forward", *dir = NULL, *dtype = "f32";
    int batch = 32, seq = 128, threads = 0, iters = 20, warmup = 3, json = 0, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench forward --model DIR [--batch B] [--seq S] [--dtype f32] [--threads T]\n"
                 "                        [--iters N] [--warmup W] [--json]");
            return 0;
        } else if (!v) return cli_usage(cmd, "%s needs a value", a);
        else if (!strcmp(a, "--model")) dir = v, i++;
        else if (!strcmp(a, "--dtype")) dtype = v, i++;
        else if (!strcmp(a, "--batch")) { if ((rc = cli_int(cmd, a, v, 1, 65536, &batch))) return rc; i++; }
        else if (!strcmp(a, "--seq")) { if ((rc = cli_int(cmd, a, v, 2, 1 << 16, &seq))) return rc; i++; }
        else if (!strcmp(a, "--threads")) { if ((rc = cli_int(cmd, a, v, 0, 1024, &threads))) return rc; i++; }
        else if (!strcmp(a, "--iters")) { if ((rc = cli_int(cmd, a, v, 1, 1000000, &iters))) return rc; i++; }
        else if (!strcmp(a, "--warmup")) { if ((rc = cli_int(cmd, a, v, 0, 1000000, &warmup))) return rc; i++; }
        else return cli_usage(cmd, "unknown option %s", a);
    }
    if (!dir) return cli_usage(cmd, "--model DIR is required");
    if (strcmp(dtype, "f32"))
        return cli_fail(cmd, "--dtype %s: only f32 is available in this build", dtype);
    ek_ctx *ctx;
    ek_model *m = NULL;
    if (ek_ctx_new(&ctx)) return cli_fail(cmd, "out of memory");
    if (ek_ctx_set_threads(ctx, threads) || ek_model_load(ctx, dir, &m)) {
        rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        ek_ctx_free(ctx);
        return rc;
    }
    ek_model_info in;
    ek_model_get_info(m, &in);
    if (seq > in.max_position_embeddings) {
        rc = cli_fail(cmd, "--seq %d exceeds the model's %d positions", seq, in.max_position_embeddings);
        goto out_model;
    }
    ek_embed_options o;
    ek_embed_options_init(&o);
    o.batch_size = batch;
    o.max_batch_tokens = batch * seq;
    size_t total = (size_t)batch * (size_t)seq;
    int32_t *ids = malloc(sizeof *ids * total), *lens = malloc(sizeof *lens * (size_t)batch);
    float *out = malloc(sizeof *out * (size_t)batch * (size_t)ek_embed_dim(m, &o));
    double *t = malloc(sizeof *t * (size_t)iters);
    if (!ids || !lens || !out || !t) {
        rc = cli_fail(cmd, "out of memory");
        goto out_buf;
    }
    /* Deterministic, non-zero, spread over the vocabulary (ids 0..4 are the
     * special tokens in BERT-style vocabularies). */
    for (size_t k = 0; k < total; k++) ids[k] = (int32_t)(5 + (k * 7919u) % (size_t)(in.vocab_size - 5));
    for (int b = 0; b < batch; b++) lens[b] = seq;
    rc = 0;
    for (int k = 0; k < warmup + iters; k++) {
        double t0 = now_s();
        if (ek_embed_ids(ctx, m, ids, lens, (size_t)batch, &o, out)) {
            rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
            goto out_buf;
        }
        if (k >= warmup) t[k - warmup] = now_s() - t0;
    }
    double sum = 0, sq = 0;
    for (int k = 0; k < iters; k++) sum += t[k], sq += t[k] * t[k];
    double mean = sum / iters, sd = sqrt(fmax(0, sq / iters - mean * mean));
    qsort(t, (size_t)iters, sizeof *t, cmp_double);
    double med = pct(t, iters, 50), p90 = pct(t, iters, 90), p99 = pct(t, iters, 99);
    double H = in.hidden_size, I = in.intermediate_size, L = in.num_layers, S = seq, B = batch;
    double flops = B * S * L * 2 * (4 * H * H + 2 * H * I) + B * L * 4 * S * S * H;
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int nthreads = ek_ctx_threads(ctx);
    if (json) {
        printf("{\"bench\":\"forward\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,\"dtype\":\"%s\",\"threads\":%d,"
               "\"iters\":%d,\"warmup\":%d,\"median_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,\"mean_ms\":%.4f,"
               "\"min_ms\":%.4f,\"max_ms\":%.4f,\"cv\":%.4f,\"seqs_per_s\":%.2f,\"tokens_per_s\":%.1f,"
               "\"gflop_per_batch\":%.4f,\"gflops\":%.2f,\"peak_rss_bytes\":%ld}\n",
               dir, batch, seq, dtype, nthreads, iters, warmup, med * 1e3, p90 * 1e3, p99 * 1e3, mean * 1e3,
               t[0] * 1e3, t[iters - 1] * 1e3, mean > 0 ? sd / mean : 0, B / med, B * S / med, flops * 1e-9,
               flops / med * 1e-9, ru.ru_maxrss * 1024L);
    } else {
        printf("forward %s: batch %d x %d tokens, %s, %d threads, %d iters\n", dir, batch, seq, dtype, nthreads, iters);
        printf("  median %.3f ms  p90 %.3f ms  p99 %.3f ms  (cv %.3f)\n", med * 1e3, p90 * 1e3, p99 * 1e3,
               mean > 0 ? sd / mean : 0);
        printf("  %.1f sequences/s  %.0f tokens/s  %.1f GFLOP/s  peak RSS %.1f MB\n", B / med, B * S / med,
               flops / med * 1e-9, ru.ru_maxrss / 1024.0);
    }
out_buf:
    free(ids);
    free(lens);
    free(out);
    free(t);
out_model:
    ek_model_free(m);
    ek_ctx_free(ctx);
    return rc;
}
