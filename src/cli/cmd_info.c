/* cli/cmd_info.c — `ek info` (describe a model) and `ek similarity` (cosine
 * matrix of a few texts). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"

/* Loads a model (a directory or a registry reference) through the command
 * pipeline, as every subcommand does. */
static int load(const char *cmd, const char *ref, int threads, cli_engine *ce) {
    cli_engine_flags f = {ref, threads, NULL};
    return cli_engine_open(ce, cmd, &f);
}

static void pooling_list(unsigned mask, char *buf, size_t cap) {
    buf[0] = '\0';
    for (int p = 0; p < EK_POOL_COUNT; p++)
        if (mask >> p & 1)
            snprintf(buf + strlen(buf), cap - strlen(buf), "%s%s", buf[0] ? "+" : "", ek_pooling_name((ek_pooling)p));
}

int ek_cmd_info(int argc, char **argv) {
    const char *cmd = "info", *dir = NULL;
    int json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: ek info --model DIR [--json]");
            return 0;
        } else return cli_usage(cmd, "unknown argument %s", argv[i]);
    }
    if (!dir) return cli_usage(cmd, "--model DIR is required");
    cli_engine ce;
    int rc = load(cmd, dir, 1, &ce);
    if (rc) return rc;
    const ek_model *m = ce.model;
    ek_model_info in;
    ek_model_get_info(m, &in);
    char pool[128];
    pooling_list(in.pooling_mask, pool, sizeof pool);
    if (json) {
        printf("{\"model\":\"%s\",\"architecture\":\"%s\",\"hidden_size\":%d,\"layers\":%d,\"heads\":%d,"
               "\"intermediate_size\":%d,\"vocab_size\":%d,\"max_position_embeddings\":%d,"
               "\"max_seq_length\":%d,\"embedding_dim\":%d,\"pooling\":\"%s\",\"include_prompt\":%s,"
               "\"dense\":%s,\"normalize\":%s,\"do_lower_case\":%s,\"parameters\":%llu,"
               "\"weights_dtype\":\"%s\",\"compute_dtype\":\"%s\",\"isa\":\"%s\",\"dnnl_isa\":\"%s\","
               "\"random_weights\":%s,\"note\":\"%s\"}\n",
               dir, in.model_type, in.hidden_size, in.num_layers, in.num_heads, in.intermediate_size,
               in.vocab_size, in.max_position_embeddings, in.max_seq_length, in.embedding_dim, pool,
               in.include_prompt ? "true" : "false", in.has_dense ? "true" : "false",
               in.normalize ? "true" : "false", in.do_lower_case ? "true" : "false",
               (unsigned long long)in.parameters, in.weights_dtype, in.compute_dtype, in.isa, in.dnnl_isa,
               in.generated_random ? "true" : "false", in.note);
    } else {
        if (in.generated_random)
            printf("WARNING: this model has RANDOM weights (%s);\n"
                   "         its embeddings carry no meaning. Use a trained model for real work.\n", in.note);
        printf("model:            %s\n", dir);
        printf("architecture:     %s (%d layers, hidden %d, %d heads, FFN %d)\n", in.model_type, in.num_layers,
               in.hidden_size, in.num_heads, in.intermediate_size);
        printf("vocabulary:       %d tokens\n", in.vocab_size);
        printf("max length:       %d tokens (positions: %d)\n", in.max_seq_length, in.max_position_embeddings);
        printf("pooling:          %s%s\n", pool, in.include_prompt ? "" : " (prompt tokens excluded)");
        printf("dense:            %s\n", in.has_dense ? "yes" : "no");
        printf("normalize:        %s\n", in.normalize ? "yes (L2)" : "no");
        printf("embedding dim:    %d\n", in.embedding_dim);
        printf("parameters:       %llu (%.1f M)\n", (unsigned long long)in.parameters, (double)in.parameters / 1e6);
        printf("dtypes:           weights %s, compute %s\n", in.weights_dtype, in.compute_dtype);
        printf("instruction set:  %s (oneDNN %s; EK_ISA=avx2|avx512|amx lowers it)\n", in.isa, in.dnnl_isa);
        const char *dp = ek_model_default_prompt_name(m);
        if (dp) printf("default prompt:   %s\n", dp);
    }
    cli_engine_close(&ce);
    return 0;
}

int ek_cmd_similarity(int argc, char **argv) {
    const char *cmd = "similarity", *dir = NULL;
    int threads = 0, json = 0, first = argc;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            int rc = cli_int(cmd, "--threads", argv[++i], 0, 1024, &threads);
            if (rc) return rc;
        } else if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            puts("usage: ek similarity --model DIR [--threads N] [--json] TEXT_A TEXT_B [TEXT...]\n"
                 "  Prints the cosine similarity matrix of the texts' embeddings.");
            return 0;
        } else if (argv[i][0] == '-' && argv[i][1] == '-') return cli_usage(cmd, "unknown option %s", argv[i]);
        else {
            first = i;
            break;
        }
    }
    if (!dir) return cli_usage(cmd, "--model DIR is required");
    int n = argc - first;
    if (n < 2) return cli_usage(cmd, "needs at least two texts");
    cli_engine ce;
    int rc = load(cmd, dir, threads ? threads : -1, &ce);
    if (rc) return rc;
    const ek_model *m = ce.model;
    ek_embed_options o;
    ek_embed_options_init(&o);
    int dim = ek_embed_dim(m, &o);
    float *e = malloc(sizeof *e * (size_t)dim * (size_t)n);
    if (!e) rc = cli_fail(cmd, "out of memory");
    else {
        ek_cmd c;
        ek_cmd_embed_batch(&c, CLI_MODEL_NAME, (const char *const *)(argv + first), NULL, (size_t)n, e,
                           (size_t)dim * (size_t)n);
        c.u.embed.opts = &o;
        rc = cli_engine_run(&ce, cmd, &c);
    }
    if (!rc) {
        /* Cosine of the embeddings as they are (normalised or not). */
        for (int i = 0; i < n; i++) {
            double nn = 0;
            for (int d = 0; d < dim; d++) nn += (double)e[(size_t)i * dim + d] * e[(size_t)i * dim + d];
            nn = sqrt(nn);
            for (int d = 0; d < dim; d++) e[(size_t)i * dim + d] = nn > 0 ? (float)(e[(size_t)i * dim + d] / nn) : 0.0f;
        }
        if (json) printf("[");
        for (int i = 0; i < n; i++) {
            if (json) printf(i ? ",[" : "[");
            for (int j = 0; j < n; j++) {
                double s = 0;
                for (int d = 0; d < dim; d++) s += (double)e[(size_t)i * dim + d] * e[(size_t)j * dim + d];
                printf(json ? (j ? ",%.6f" : "%.6f") : (j ? " %8.5f" : "%8.5f"), s);
            }
            printf(json ? "]" : "   [%d] %.60s\n", i, argv[first + i]);
        }
        if (json) printf("]\n");
    }
    free(e);
    cli_engine_close(&ce);
    return rc;
}
