/* cli/bench_embed.c — `ek bench all embed`: how the encoder's cost grows
 * with batch size and sequence length, in one compute dtype, and what a
 * model costs in memory.
 *   - grid: one ek_embed_ids call over B sequences of S tokens for each B
 *     and S (deterministic non-zero ids), a latency histogram per point,
 *     sequences/s and tokens/s;
 *   - text: one short sentence end to end (tokenize + forward + pool +
 *     normalise through ek_embed), the latency a single request sees;
 *   - memory: RSS, anonymous RSS (what the loader converted or packed into
 *     private memory) and file RSS (the mapped safetensors) before and after
 *     the load, the packed weight bytes the model reports, peak RSS. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_stats.h"
#include "cli/bench_suite.h"
#include "cli/cli.h"

typedef struct ids_arg {
    ek_ctx *ctx;
    const ek_model *m;
    const int32_t *ids, *lens;
    size_t n;
    const ek_embed_options *o;
    float *out;
} ids_arg;

static int run_ids(void *p) {
    ids_arg *a = p;
    return ek_embed_ids(a->ctx, a->m, a->ids, a->lens, a->n, a->o, a->out) != EK_OK;
}

typedef struct text_arg {
    ek_ctx *ctx;
    const ek_model *m;
    const char *text;
    const ek_embed_options *o;
    float *out;
} text_arg;

static int run_text(void *p) {
    text_arg *a = p;
    return ek_embed(a->ctx, a->m, &a->text, NULL, 1, a->o, a->out, NULL) != EK_OK;
}

static cJSON *mem_json(void) {
    cJSON *o = cJSON_CreateObject();
    bench_num(o, "rss_bytes", (double)bench_proc_status("VmRSS"));
    bench_num(o, "rss_anon_bytes", (double)bench_proc_status("RssAnon"));
    bench_num(o, "rss_file_bytes", (double)bench_proc_status("RssFile"));
    return o;
}

int ek_bench_embed(int argc, char **argv) {
    const char *cmd = "bench embed", *dir = NULL, *dtype = "f32";
    int json = 0, quick = 0, threads = 0, buckets = 1, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--no-buckets")) buckets = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench all embed --model DIR [--dtype f32|bf16|int8] [--threads T] [--quick]\n"
                 "                          [--no-buckets] [--json]\n"
                 "  forward pass over a batch x sequence-length grid, one sentence end to end,\n"
                 "  and the model's memory");
            return 0;
        } else if (!v) return cli_usage(cmd, "%s needs a value (or is unknown)", a);
        else if (!strcmp(a, "--model")) dir = v, i++;
        else if (!strcmp(a, "--dtype")) dtype = v, i++;
        else if (!strcmp(a, "--threads")) { if ((rc = cli_int(cmd, a, v, 0, 1024, &threads))) return rc; i++; }
        else return cli_usage(cmd, "unknown option %s", a);
    }
    if (!dir) return cli_usage(cmd, "--model DIR is required");
    int dt = ek_compute_dtype_from_name(dtype);
    if (dt < 0) return cli_usage(cmd, "--dtype %s: expected f32, bf16 or int8", dtype);
    ek_load_options lo;
    ek_load_options_init(&lo);
    lo.dtype = (ek_compute_dtype)dt;
    ek_ctx *ctx = NULL;
    ek_model *m = NULL;
    if (ek_ctx_new(&ctx)) return cli_fail(cmd, "out of memory");
    cJSON *out = cJSON_CreateObject();
    bench_str(out, "bench", "embed");
    bench_str(out, "model", dir);
    bench_str(out, "dtype", dtype);
    cJSON *mem = cJSON_AddObjectToObject(out, "memory");
    cJSON_AddItemToObject(mem, "before_load", mem_json());
    uint64_t t0 = bench_now_ns();
    if (ek_ctx_set_threads(ctx, threads) || ek_model_load_opts(ctx, dir, &lo, &m)) {
        rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        cJSON_Delete(out);
        ek_ctx_free(ctx);
        return rc;
    }
    bench_num(out, "load_ms", (double)(bench_now_ns() - t0) / 1e6);
    cJSON_AddItemToObject(mem, "after_load", mem_json());
    ek_model_info in;
    ek_model_get_info(m, &in);
    bench_str(out, "isa", in.isa);
    bench_str(out, "dnnl_isa", in.dnnl_isa);
    bench_num(out, "threads", ek_ctx_threads(ctx));
    bench_num(out, "parameters", (double)in.parameters);
    bench_num(mem, "packed_bytes", (double)in.packed_bytes);

    static const int batches_full[] = {1, 8, 32, 128}, seqs_full[] = {16, 64, 128, 256};
    static const int batches_quick[] = {1, 8}, seqs_quick[] = {16, 64};
    const int *batches = quick ? batches_quick : batches_full, *seqs = quick ? seqs_quick : seqs_full;
    int nb = quick ? 2 : 4, ns = quick ? 2 : 4, maxb = batches[nb - 1], maxs = seqs[ns - 1];
    if (maxs > in.max_position_embeddings) maxs = in.max_position_embeddings;
    ek_embed_options o;
    ek_embed_options_init(&o);
    int dim = ek_embed_dim(m, &o);
    int32_t *ids = malloc(sizeof *ids * (size_t)maxb * (size_t)maxs), *lens = malloc(sizeof *lens * (size_t)maxb);
    float *vec = malloc(sizeof *vec * (size_t)maxb * (size_t)dim);
    rc = 0;
    if (!ids || !lens || !vec) rc = cli_fail(cmd, "out of memory");
    /* ids 0..4 are the special tokens of BERT vocabularies: spread over the rest. */
    for (size_t k = 0; !rc && k < (size_t)maxb * (size_t)maxs; k++)
        ids[k] = (int32_t)(5 + (k * 7919u) % (size_t)(in.vocab_size - 5));
    cJSON *grid = cJSON_AddArrayToObject(out, "grid");
    for (int bi = 0; !rc && bi < nb; bi++)
        for (int si = 0; !rc && si < ns; si++) {
            int B = batches[bi], S = seqs[si];
            if (S > maxs) continue;
            for (int b = 0; b < B; b++) lens[b] = S;
            o.batch_size = B;
            o.max_batch_tokens = B * S;
            ids_arg a = {ctx, m, ids, lens, (size_t)B, &o, vec};
            /* Big points get fewer calls: about 0.3 s each (0.03 quick). */
            bench_plan plan = {1, 3, quick ? 20 : 200, quick ? 0.03 : 0.3};
            bench_result r;
            if (bench_measure(run_ids, &a, &plan, &r)) {
                rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
                break;
            }
            cJSON *p = bench_result_json(&r, buckets);
            bench_num(p, "batch", B);
            bench_num(p, "seq", S);
            double mean_s = bench_hist_mean(&r.hist) * 1e-9;
            bench_num(p, "seqs_per_s", mean_s > 0 ? B / mean_s : 0);
            bench_num(p, "tokens_per_s", mean_s > 0 ? (double)B * S / mean_s : 0);
            cJSON_AddItemToArray(grid, p);
            if (!json)
                printf("embed %s batch %3d x %3d: p50 %9.3f ms  p99 %9.3f ms  %9.1f seq/s %10.0f tokens/s (cv %.2f)\n",
                       dtype, B, S, (double)bench_hist_percentile(&r.hist, 50) / 1e6,
                       (double)bench_hist_percentile(&r.hist, 99) / 1e6, mean_s > 0 ? B / mean_s : 0,
                       mean_s > 0 ? (double)B * S / mean_s : 0, bench_hist_cv(&r.hist));
        }
    if (!rc) {
        ek_embed_options_init(&o);
        text_arg a = {ctx, m, "A man is eating a piece of bread in the park.", &o, vec};
        bench_plan plan = {3, 20, quick ? 200 : 5000, quick ? 0.05 : 1.0};
        bench_result r;
        if (bench_measure(run_text, &a, &plan, &r)) rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        else {
            cJSON *t = bench_result_json(&r, buckets);
            bench_str(t, "text", a.text);
            cJSON_AddItemToObject(out, "one_sentence", t);
            if (!json)
                printf("embed %s one sentence end to end: p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms\n",
                       dtype, (double)bench_hist_percentile(&r.hist, 50) / 1e6,
                       (double)bench_hist_percentile(&r.hist, 99) / 1e6,
                       (double)bench_hist_percentile(&r.hist, 99.9) / 1e6, (double)r.hist.max / 1e6);
        }
    }
    cJSON_AddItemToObject(mem, "after_runs", mem_json());
    bench_num(mem, "peak_rss_bytes", (double)bench_peak_rss());
    if (!rc && json) rc = bench_emit(out);
    else cJSON_Delete(out);
    free(ids);
    free(lens);
    free(vec);
    ek_model_free(m);
    ek_ctx_free(ctx);
    return rc;
}
