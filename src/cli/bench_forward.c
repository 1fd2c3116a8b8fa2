/* cli/bench_forward.c — `ek bench forward`: the encoder's speed on a fixed
 * batch shape (or a deterministic mix of lengths), in a compute dtype, after
 * a warm-up, on deterministic non-zero token ids.  Prints latency
 * percentiles, sequences/s, tokens/s, useful GFLOP/s (the matrix products
 * and attention a BERT forward pass must do; pooling excluded) and peak
 * RSS.  One timed run is one ek_embed_ids call over the whole set (with
 * --mix, the library's own length-sorted token-budget batching). */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli/cli.h"
#include "embedkit_registry.h"
#include "compute/matmul.h"

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
    int batch = 32, seq = 128, threads = 0, iters = 20, warmup = 3, json = 0, mix = 0, rc;
    int min_len = 8, max_len = 128, peak = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--peak")) peak = 1;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench forward --model DIR [--batch B] [--seq S] [--dtype f32|bf16|int8]\n"
                 "                        [--threads T] [--iters N] [--warmup W] [--json]\n"
                 "                        [--mix N [--min-len A] [--max-len B]]\n"
                 "  --mix N: N sequences of deterministic pseudo-random lengths A..B (default 8..128)\n"
"           instead of B x S, batched by the library's token budget\n"
                 "  --peak: also measure oneDNN's matmul peak in this dtype (4096 x 1536 x 384,\n"
                 "          the FFN shape) and report the forward pass's share of it");
            return 0;
        } else if (!v) return cli_usage(cmd, "%s needs a value", a);
        else if (!strcmp(a, "--model")) dir = v, i++;
        else if (!strcmp(a, "--dtype")) dtype = v, i++;
        else if (!strcmp(a, "--batch")) { if ((rc = cli_int(cmd, a, v, 1, 65536, &batch))) return rc; i++; }
        else if (!strcmp(a, "--seq")) { if ((rc = cli_int(cmd, a, v, 2, 1 << 16, &seq))) return rc; i++; }
        else if (!strcmp(a, "--threads")) { if ((rc = cli_int(cmd, a, v, 0, 1024, &threads))) return rc; i++; }
        else if (!strcmp(a, "--iters")) { if ((rc = cli_int(cmd, a, v, 1, 1000000, &iters))) return rc; i++; }
        else if (!strcmp(a, "--warmup")) { if ((rc = cli_int(cmd, a, v, 0, 1000000, &warmup))) return rc; i++; }
        else if (!strcmp(a, "--mix")) { if ((rc = cli_int(cmd, a, v, 1, 1 << 20, &mix))) return rc; i++; }
        else if (!strcmp(a, "--min-len")) { if ((rc = cli_int(cmd, a, v, 2, 1 << 16, &min_len))) return rc; i++; }
        else if (!strcmp(a, "--max-len")) { if ((rc = cli_int(cmd, a, v, 2, 1 << 16, &max_len))) return rc; i++; }
        else return cli_usage(cmd, "unknown option %s", a);
    }
    if (!dir) return cli_usage(cmd, "--model DIR is required");
    ek_load_options lo;
    ek_load_options_init(&lo);
    int dt = ek_compute_dtype_from_name(dtype);
    if (dt < 0) return cli_usage(cmd, "--dtype %s: expected f32, bf16 or int8", dtype);
    lo.dtype = (ek_compute_dtype)dt;
    if (mix && min_len > max_len) return cli_usage(cmd, "--min-len %d exceeds --max-len %d", min_len, max_len);
    if (mix) batch = mix, seq = max_len;
    ek_ctx *ctx;
    ek_model *m = NULL;
    if (ek_ctx_new(&ctx)) return cli_fail(cmd, "out of memory");
    double t_load = now_s();
    char resolved[4096]; /* --model: a directory or a registry reference */
    if (ek_ctx_set_threads(ctx, threads) || ek_registry_resolve(ctx, NULL, dir, resolved, sizeof resolved) ||
        ek_model_load_opts(ctx, resolved, &lo, &m)) {
        rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        ek_ctx_free(ctx);
        return rc;
    }
    t_load = now_s() - t_load;
    ek_model_info in;
    ek_model_get_info(m, &in);
    if (seq > in.max_position_embeddings) {
        rc = cli_fail(cmd, "--seq %d exceeds the model's %d positions", seq, in.max_position_embeddings);
        goto out_model;
    }
    ek_embed_options o;
    ek_embed_options_init(&o);
    /* Fixed shape: the whole B x S set is one forward pass.  Mix: the
     * library's defaults decide the batches. */
    if (!mix) {
        o.batch_size = batch;
        o.max_batch_tokens = batch * seq;
    }
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
    if (mix) {
        /* Deterministic lengths, uniform in [min_len, max_len]. */
        uint32_t st = 12345u;
        for (int b = 0; b < batch; b++) {
            st = st * 1664525u + 1013904223u;
            lens[b] = min_len + (int32_t)((st >> 8) % (uint32_t)(max_len - min_len + 1));
        }
    }
    double tokens = 0, attn_flop = 0;
    for (int b = 0; b < batch; b++) tokens += lens[b], attn_flop += (double)lens[b] * lens[b];
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
    double H = in.hidden_size, I = in.intermediate_size, L = in.num_layers, B = batch;
    double flops = tokens * L * 2 * (4 * H * H + 2 * H * I) + L * 4 * attn_flop * H;
    /* The peak in the same run, same threads (the model's FFN shape). */
    double peak_gf = 0;
    if (peak)
        peak_gf = ek_mm_peak_gflops(dt == EK_DTYPE_BF16 ? EK_MM_BF16 : dt == EK_DTYPE_INT8 ? EK_MM_S8 : EK_MM_F32, 4096,
                                    in.intermediate_size, in.hidden_size, 10);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    int nthreads = ek_ctx_threads(ctx);
    if (json) {
        printf("{\"bench\":\"forward\",\"model\":\"%s\",\"batch\":%d,\"seq\":%d,\"mix\":%s,\"tokens\":%.0f,"
               "\"dtype\":\"%s\",\"isa\":\"%s\",\"dnnl_isa\":\"%s\",\"threads\":%d,"
               "\"iters\":%d,\"warmup\":%d,\"median_ms\":%.4f,\"p50_ms\":%.4f,\"p90_ms\":%.4f,\"p99_ms\":%.4f,"
               "\"mean_ms\":%.4f,\"min_ms\":%.4f,\"max_ms\":%.4f,\"cv\":%.4f,\"seqs_per_s\":%.2f,"
               "\"tokens_per_s\":%.1f,\"gflop_per_batch\":%.4f,\"gflops\":%.2f,\"load_s\":%.3f,"
               "\"packed_bytes\":%llu,\"peak_gflops\":%.2f,\"peak_rss_bytes\":%ld}\n",
               dir, batch, seq, mix ? "true" : "false", tokens, dtype, in.isa, in.dnnl_isa, nthreads, iters, warmup,
               med * 1e3, med * 1e3, p90 * 1e3, p99 * 1e3, mean * 1e3, t[0] * 1e3, t[iters - 1] * 1e3,
               mean > 0 ? sd / mean : 0, B / med, tokens / med, flops * 1e-9, flops / med * 1e-9, t_load,
               (unsigned long long)in.packed_bytes, peak_gf, ru.ru_maxrss * 1024L);
    } else {
        if (mix)
            printf("forward %s: %d sequences of %d..%d tokens (%.0f tokens), %s (%s, oneDNN %s), %d threads, %d iters\n",
                   dir, batch, min_len, max_len, tokens, dtype, in.isa, in.dnnl_isa, nthreads, iters);
        else
            printf("forward %s: batch %d x %d tokens, %s (%s, oneDNN %s), %d threads, %d iters\n", dir, batch, seq,
                   dtype, in.isa, in.dnnl_isa, nthreads, iters);
        printf("  median %.3f ms  p90 %.3f ms  p99 %.3f ms  (cv %.3f)\n", med * 1e3, p90 * 1e3, p99 * 1e3,
               mean > 0 ? sd / mean : 0);
        printf("  %.1f sequences/s  %.0f tokens/s  %.1f GFLOP/s  peak RSS %.1f MB\n", B / med, tokens / med,
               flops / med * 1e-9, ru.ru_maxrss / 1024.0);
        if (peak)
            printf("  oneDNN %s matmul peak %.1f GFLOP/s: forward at %.0f%%\n", dtype, peak_gf,
                   peak_gf > 0 ? 100.0 * flops / med * 1e-9 / peak_gf : 0.0);
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
