/* cli/cmd_search.c — `ek search` (exact top-k over an .npy embedding matrix)
 * and `ek quantize` (int8 / binary .npy files as sentence-transformers'
 * quantize_embeddings makes them).  Public API only (embedkit.h,
 * embedkit_search.h).  The search itself (and with --model the embedding of
 * the query texts) runs as a SEARCH command through the pipeline
 * (cli/engine_cli.h): configuration, validation, limits and telemetry apply
 * as to `ek embed`; the index is built here and lent to the command.
 *
 * Index files by dtype:
 *   float32 / float16  float vectors; --type int8|binary quantizes them in
 *                      memory and keeps the floats for --rescore
 *   int8               int8 codes; ranges from --ranges or, by default,
 *                      the file written next to it by `ek quantize`
 *                      (Q.npy -> Q.ranges.npy); with --type binary: packed
 *                      bits in sentence-transformers' signed "binary" form
 *   uint8              packed sign bits ("ubinary", np.packbits) */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "embedkit_search.h"

/* Q.npy -> Q.ranges.npy (any other name gets ".ranges.npy" appended). */
static void ranges_path(const char *npy, char *out, size_t cap) {
    size_t n = strlen(npy);
    if (n > 4 && !strcmp(npy + n - 4, ".npy")) snprintf(out, cap, "%.*s.ranges.npy", (int)(n - 4), npy);
    else snprintf(out, cap, "%s.ranges.npy", npy);
}

/* Float rows of an .npy file (float32 in place, float16 converted into
 * *owned).  Returns 0 or prints an error. */
static int npy_floats(const char *cmd, ek_ctx *ctx, const char *path, ek_npy **npy, const float **rows,
                      size_t *n, size_t *dim, float **owned) {
    *owned = NULL;
    if (ek_npy_open(ctx, path, npy)) return cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
    ek_npy_info in;
    ek_npy_get_info(*npy, &in);
    *n = in.rows;
    *dim = in.cols;
    if (in.dtype == EK_NPY_F32) {
        *rows = in.data;
        return 0;
    }
    if (in.dtype != EK_NPY_F16) return cli_fail(cmd, "%s: need float32 or float16 vectors", path);
    float *f = malloc(in.rows * in.cols * sizeof *f + 1);
    if (!f) return cli_fail(cmd, "%s: out of memory", path);
    ek_matrix m;
    ek_npy_matrix(ctx, *npy, EK_VEC_F16, &m);
    ek_matrix_to_f32(ctx, &m, f);
    *owned = f;
    *rows = f;
    return 0;
}

/* Reads the ranges file: float32, shape (2, dim). */
static int read_ranges(const char *cmd, ek_ctx *ctx, const char *path, size_t dim, ek_npy **npy,
                       const float **ranges) {
    if (ek_npy_open(ctx, path, npy)) return cli_fail(cmd, "int8 ranges: %s", ek_ctx_last_error(ctx));
    ek_npy_info in;
    ek_npy_get_info(*npy, &in);
    if (in.dtype != EK_NPY_F32 || in.ndim != 2 || in.rows != 2 || in.cols != dim)
        return cli_fail(cmd, "%s: int8 ranges must be float32 of shape (2, %zu) (min row, max row)", path, dim);
    *ranges = in.data;
    return 0;
}

static char **read_ids(const char *cmd, const char *path, size_t n, int *rc) {
    FILE *f = fopen(path, "r");
    *rc = 0;
    if (!f) {
        *rc = cli_fail(cmd, "%s: cannot open ids file", path);
        return NULL;
    }
    char **ids = calloc(n ? n : 1, sizeof *ids);
    char *line = NULL;
    size_t cap = 0, i = 0;
    ssize_t r;
    while (ids && (r = getline(&line, &cap, f)) >= 0) {
        size_t len = (size_t)r;
        if (len && line[len - 1] == '\n') len--;
        if (len && line[len - 1] == '\r') len--;
        if (i >= n) {
            i++;
            break;
        }
        ids[i] = malloc(len + 1);
        if (!ids[i]) break;
        memcpy(ids[i], line, len);
        ids[i++][len] = '\0';
    }
    free(line);
    fclose(f);
    if (!ids || i != n) {
        *rc = cli_fail(cmd, "%s: %s", path, !ids ? "out of memory" : i > n ? "more ids than index rows" : "fewer ids than index rows");
        for (size_t j = 0; ids && j < n; j++) free(ids[j]);
        free(ids);
        return NULL;
    }
    return ids;
}

static void print_json_string(const char *s) {
    cJSON *j = cJSON_CreateString(s);
    char *p = j ? cJSON_PrintUnformatted(j) : NULL;
    fputs(p ? p : "null", stdout);
    free(p);
    cJSON_Delete(j);
}

static void search_help(void) {
    puts("usage: ek search --index FILE.npy (--query-npy Q.npy | --model DIR TEXT...) [-k K]\n"
         "                 [--metric cosine|dot|l2] [--type f32|int8|binary] [--rescore N]\n"
         "                 [--dimensions D] [--ids FILE] [--ranges R.npy] [--calibration C.npy]\n"
         "                 [--originals F.npy] [--threads N] [--json]\n"
         "  Exact top-k search.  Scores: cosine and dot higher is better; l2 is the squared\n"
         "  distance, lower is better; binary without --rescore ranks by Hamming distance.\n"
         "  --type       search the index as float, int8 codes or packed sign bits (a float\n"
         "               index is quantized in memory; default: from the file's dtype)\n"
         "  --rescore N  re-rank the N best int8/binary candidates on floats (the float\n"
         "               index, --originals, or else the decoded vectors)\n"
         "  --dimensions D  Matryoshka: search on the first D dimensions\n"
         "  --ids FILE   one id per line, one line per index row\n"
         "  --json       one JSON object per query: {\"query\", \"results\": [{\"index\", \"score\", \"id\"}]}");
}

int ek_cmd_search(int argc, char **argv) {
    const char *cmd = "search", *index_path = NULL, *qnpy = NULL, *model_dir = NULL, *ids_path = NULL;
    const char *ranges_arg = NULL, *calib = NULL, *orig_path = NULL;
    int k = 10, rescore = 0, dims = 0, threads = -1, json = 0, metric = EK_METRIC_COSINE, type = -1, first = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int rc = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            search_help();
            return 0;
        } else if (!strcmp(a, "--json")) json = 1;
        else if (!v && a[0] == '-') return cli_usage(cmd, "%s needs a value", a);
        else if (!strcmp(a, "--index")) index_path = argv[++i];
        else if (!strcmp(a, "--query-npy")) qnpy = argv[++i];
        else if (!strcmp(a, "--model")) model_dir = argv[++i];
        else if (!strcmp(a, "--ids")) ids_path = argv[++i];
        else if (!strcmp(a, "--ranges")) ranges_arg = argv[++i];
        else if (!strcmp(a, "--calibration")) calib = argv[++i];
        else if (!strcmp(a, "--originals")) orig_path = argv[++i];
        else if (!strcmp(a, "-k") || !strcmp(a, "--k")) rc = cli_int(cmd, "-k", argv[++i], 1, 1 << 30, &k);
        else if (!strcmp(a, "--rescore")) rc = cli_int(cmd, "--rescore", argv[++i], 0, 1 << 30, &rescore);
        else if (!strcmp(a, "--dimensions")) rc = cli_int(cmd, "--dimensions", argv[++i], 1, 1 << 30, &dims);
        else if (!strcmp(a, "--threads")) rc = cli_int(cmd, "--threads", argv[++i], 0, 1024, &threads);
        else if (!strcmp(a, "--metric")) {
            if ((metric = ek_metric_from_name(argv[++i])) < 0)
                return cli_usage(cmd, "--metric: \"%s\" is not cosine, dot or l2", argv[i]);
        } else if (!strcmp(a, "--type")) {
            type = ek_vec_type_from_name(argv[++i]);
            if (type != EK_VEC_F32 && type != EK_VEC_F16 && type != EK_VEC_INT8 && type != EK_VEC_BINARY)
                return cli_usage(cmd, "--type: \"%s\" is not f32, f16, int8 or binary", argv[i]);
        } else if (a[0] == '-' && a[1] == '-') return cli_usage(cmd, "unknown option %s", a);
        else {
            first = i;
            break;
        }
        if (rc) return rc;
    }
    if (!index_path) return cli_usage(cmd, "--index FILE.npy is required");
    if (!qnpy == !model_dir) return cli_usage(cmd, "give either --query-npy Q.npy or --model DIR TEXT...");
    if (model_dir && first >= argc) return cli_usage(cmd, "--model needs at least one query text");
    if (qnpy && first < argc) return cli_usage(cmd, "unexpected argument \"%s\"", argv[first]);

    /* The engine (and with --model the model) first: the configuration
     * decides threads, registry home and limits for everything below. */
    cli_engine ce;
    cli_engine_flags f = {model_dir, threads, NULL};
    int rc = model_dir ? cli_engine_open(&ce, cmd, &f) : cli_engine_open_bare(&ce, cmd, &f);
    if (rc) return rc;
    ek_ctx *ctx = ce.ctx;
    ek_npy *inpy = NULL, *rnpy = NULL, *qf = NULL, *onpy = NULL, *cnpy = NULL;
    ek_index *index = NULL;
    float *owned_q = NULL, *queries = NULL, *calib_ranges = NULL, *owned_c = NULL, *owned_o = NULL;
    uint8_t *flipped = NULL;
    ek_hit *hits = NULL;
    char **ids = NULL;
    size_t nq = 0, qdim = 0, n = 0;

    /* ---- the index ---- */
    ek_npy_info in;
    ek_matrix m;
    ek_index_options o;
    ek_index_options_init(&o);
    o.metric = (ek_metric)metric;
    o.dimensions = (size_t)dims;
    if (!rc && ek_npy_open(ctx, index_path, &inpy)) rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
    if (!rc) {
        ek_npy_get_info(inpy, &in);
        n = in.rows;
        int is_float = in.dtype == EK_NPY_F32 || in.dtype == EK_NPY_F16;
        if (type < 0) type = is_float ? EK_VEC_F32 : in.dtype == EK_NPY_I8 ? EK_VEC_INT8 : EK_VEC_BINARY;
        if (is_float) {
            ek_npy_matrix(ctx, inpy, in.dtype == EK_NPY_F32 ? EK_VEC_F32 : EK_VEC_F16, &m);
            /* --type f32 searches the file's own float type in place */
            o.type = type == EK_VEC_F32 ? m.type : (ek_vec_type)type;
        } else if (type == EK_VEC_INT8 && in.dtype == EK_NPY_I8) {
            ek_npy_matrix(ctx, inpy, EK_VEC_INT8, &m);
            o.type = EK_VEC_INT8;
        } else if (type == EK_VEC_BINARY && in.dtype == EK_NPY_U8) {
            ek_npy_matrix(ctx, inpy, EK_VEC_BINARY, &m);
            o.type = EK_VEC_BINARY;
        } else if (type == EK_VEC_BINARY && in.dtype == EK_NPY_I8) {
            /* sentence-transformers "binary": packbits - 128 as int8 */
            size_t bytes = in.rows * in.cols;
            flipped = malloc(bytes ? bytes : 1);
            if (!flipped) rc = cli_fail(cmd, "out of memory");
            for (size_t i = 0; !rc && i < bytes; i++) flipped[i] = (uint8_t)(((const uint8_t *)in.data)[i] ^ 0x80u);
            m = (ek_matrix){EK_VEC_BINARY, flipped, in.rows, in.cols * 8, in.cols};
            o.type = EK_VEC_BINARY;
        } else {
            rc = cli_fail(cmd, "%s: a %s file cannot be searched as --type %s", index_path,
                          in.dtype == EK_NPY_U8 ? "uint8 (packed binary)" : "int8", ek_vec_type_name((ek_vec_type)type));
        }
    }
    /* int8 ranges: --ranges, the file next to an int8 index, or calibration */
    char rpath[4096];
    const float *ranges = NULL;
    if (!rc && o.type == EK_VEC_INT8) {
        if (ranges_arg || in.dtype == EK_NPY_I8) {
            if (!ranges_arg) ranges_path(index_path, rpath, sizeof rpath);
            rc = read_ranges(cmd, ctx, ranges_arg ? ranges_arg : rpath, m.dim, &rnpy, &ranges);
        } else if (calib) {
            const float *crows;
            size_t cn, cd;
            rc = npy_floats(cmd, ctx, calib, &cnpy, &crows, &cn, &cd, &owned_c);
            if (!rc && cd != m.dim) rc = cli_fail(cmd, "%s: calibration has %zu dims, the index %zu", calib, cd, m.dim);
            if (!rc && !(calib_ranges = malloc(2 * cd * sizeof *calib_ranges))) rc = cli_fail(cmd, "out of memory");
            if (!rc && ek_quantize_ranges(ctx, crows, cn, cd, calib_ranges))
                rc = cli_fail(cmd, "%s: %s", calib, ek_ctx_last_error(ctx));
            ranges = calib_ranges;
        }
        o.ranges = ranges;
    }
    if (!rc && ek_index_new(ctx, &m, &o, &index)) rc = cli_fail(cmd, "%s: %s", index_path, ek_ctx_last_error(ctx));
    if (!rc && orig_path) {
        const float *orows;
        size_t on, od;
        rc = npy_floats(cmd, ctx, orig_path, &onpy, &orows, &on, &od, &owned_o);
        ek_matrix om = {EK_VEC_F32, orows, on, od, od};
        if (!rc && ek_index_set_originals(ctx, index, &om)) rc = cli_fail(cmd, "%s: %s", orig_path, ek_ctx_last_error(ctx));
    }
    if (!rc && ids_path) ids = read_ids(cmd, ids_path, n, &rc);

    /* ---- the queries: vectors from --query-npy, or texts embedded by the
     * command with --model (into a buffer sized here) ---- */
    ek_embed_options eo;
    ek_embed_options_init(&eo);
    if (!rc && qnpy) {
        const float *q;
        rc = npy_floats(cmd, ctx, qnpy, &qf, &q, &nq, &qdim, &owned_q);
        queries = (float *)q;
    } else if (!rc) {
        nq = (size_t)(argc - first);
        qdim = (size_t)ek_embed_dim(ce.model, &eo);
        owned_q = queries = malloc(nq * qdim * sizeof *queries);
        if (!queries) rc = cli_fail(cmd, "out of memory");
    }

    /* ---- search (one pipeline command) and print ---- */
    size_t per = 0, cap = (nq ? nq : 1) * ((size_t)k < n ? (size_t)k : n);
    if (!rc && !(hits = malloc((cap ? cap : 1) * sizeof *hits))) rc = cli_fail(cmd, "out of memory");
    if (!rc) {
        ek_cmd c;
        if (qnpy) {
            ek_cmd_search_vectors(&c, index, queries, nq, qdim, (size_t)k, hits, cap);
        } else {
            ek_cmd_search_texts(&c, CLI_MODEL_NAME, index, (const char *const *)(argv + first), NULL, nq,
                                (size_t)k, hits, cap);
            c.u.search.opts = &eo;
            c.u.search.query_out = queries;
            c.u.search.query_out_cap = nq * qdim;
        }
        c.u.search.rescore = (size_t)rescore;
        rc = cli_engine_run(&ce, cmd, &c);
        per = c.u.search.per_query;
    }
    for (size_t qi = 0; !rc && qi < nq; qi++) {
        if (json) printf("{\"query\":%zu,\"results\":[", qi);
        else printf("query %zu%s%s\n", qi, model_dir ? ": " : "", model_dir ? argv[first + (int)qi] : "");
        for (size_t j = 0; j < per; j++) {
            const ek_hit *h = &hits[qi * per + j];
            if (json) {
                printf("%s{\"index\":%lld,\"score\":%.9g", j ? "," : "", (long long)h->index, (double)h->score);
                if (ids) {
                    fputs(",\"id\":", stdout);
                    print_json_string(ids[h->index]);
                }
                putchar('}');
            } else {
                printf("  %3zu. %10lld  %12.6f%s%s\n", j + 1, (long long)h->index, (double)h->score, ids ? "  " : "",
                       ids ? ids[h->index] : "");
            }
        }
        if (json) puts("]}");
    }
    if (!rc && fflush(stdout)) rc = cli_fail(cmd, "writing the results failed");

    for (size_t i = 0; ids && i < n; i++) free(ids[i]);
    free(ids);
    free(hits);
    free(owned_q);
    free(owned_c);
    free(owned_o);
    free(calib_ranges);
    free(flipped);
    ek_index_free(index);
    ek_npy_close(inpy);
    ek_npy_close(rnpy);
    ek_npy_close(qf);
    ek_npy_close(onpy);
    ek_npy_close(cnpy);
    cli_engine_close(&ce);
    return rc;
}

int ek_cmd_quantize(int argc, char **argv) {
    const char *cmd = "quantize", *inp = NULL, *outp = NULL, *calib = NULL;
    int type = -1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek quantize --in E.npy --out Q.npy --type int8|binary [--calibration C.npy]\n"
                 "  int8:   sentence-transformers int8 codes (int8 .npy); the per-dimension ranges\n"
                 "          (float32, shape (2, dim): min row, max row) go to Q.ranges.npy.  They\n"
                 "          come from --calibration C.npy, else from E.npy itself.\n"
                 "  binary: packed sign bits x > 0, np.packbits order (uint8 .npy, \"ubinary\")");
            return 0;
        }
        if (i + 1 >= argc) return cli_usage(cmd, "%s needs a value", a);
        if (!strcmp(a, "--in")) inp = argv[++i];
        else if (!strcmp(a, "--out")) outp = argv[++i];
        else if (!strcmp(a, "--calibration")) calib = argv[++i];
        else if (!strcmp(a, "--type")) {
            type = ek_vec_type_from_name(argv[++i]);
            if (type != EK_VEC_INT8 && type != EK_VEC_BINARY)
                return cli_usage(cmd, "--type: \"%s\" is not int8 or binary", argv[i]);
        } else return cli_usage(cmd, "unknown option %s", a);
    }
    if (!inp || !outp || type < 0) return cli_usage(cmd, "--in, --out and --type are required");
    if (calib && type != EK_VEC_INT8) return cli_usage(cmd, "--calibration applies to --type int8 only");
    ek_ctx *ctx = NULL;
    ek_npy *e = NULL, *c = NULL;
    const float *x = NULL, *cx = NULL;
    float *own_x = NULL, *own_c = NULL, *ranges = NULL;
    void *codes = NULL;
    size_t n = 0, dim = 0, cn = 0, cd = 0;
    int rc = 0;
    if (ek_ctx_new(&ctx)) return cli_fail(cmd, "out of memory");
    rc = npy_floats(cmd, ctx, inp, &e, &x, &n, &dim, &own_x);
    if (!rc && type == EK_VEC_INT8) {
        if (calib) rc = npy_floats(cmd, ctx, calib, &c, &cx, &cn, &cd, &own_c);
        else cx = x, cn = n, cd = dim;
        if (!rc && cd != dim) rc = cli_fail(cmd, "%s: calibration has %zu dims, %s has %zu", calib, cd, inp, dim);
        if (!rc && cn < 2)
            rc = cli_fail(cmd, "cannot compute int8 ranges from %zu embedding(s); give --calibration C.npy", cn);
        if (!rc && (!(ranges = malloc(2 * dim * sizeof *ranges)) || !(codes = malloc(n * dim + 1))))
            rc = cli_fail(cmd, "out of memory");
        if (!rc && (ek_quantize_ranges(ctx, cx, cn, cd, ranges) || ek_quantize_int8(ctx, x, n, dim, ranges, codes)))
            rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        char rpath[4096];
        ranges_path(outp, rpath, sizeof rpath);
        if (!rc && (ek_npy_write(ctx, outp, EK_NPY_I8, 2, n, dim, codes) ||
                    ek_npy_write(ctx, rpath, EK_NPY_F32, 2, 2, dim, ranges)))
            rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
    } else if (!rc) {
        size_t nb = (dim + 7) / 8;
        if (!(codes = malloc(n * nb + 1))) rc = cli_fail(cmd, "out of memory");
        if (!rc && ek_quantize_binary(ctx, x, n, dim, codes)) rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        if (!rc && ek_npy_write(ctx, outp, EK_NPY_U8, 2, n, nb, codes)) rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
    }
    free(codes);
    free(ranges);
    free(own_x);
    free(own_c);
    ek_npy_close(e);
    ek_npy_close(c);
    ek_ctx_free(ctx);
    return rc;
}
