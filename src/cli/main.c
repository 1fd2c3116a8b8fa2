/* cli/main.c — `ek` entry point: dispatch to subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static void usage(FILE *f) {
    fprintf(f,
            "ek %s — text embeddings, exactly as sentence-transformers computes them\n"
            "\n"
            "usage: ek <command> [options]\n"
            "\n"
            "commands:\n"
            "  embed       embed texts (arguments or stdin) with a model directory\n"
            "  tokenize    show the token ids, strings and offsets the model sees\n"
            "  similarity  cosine similarity matrix of texts\n"
            "  info        describe a model directory\n"
            "  search      exact top-k search over an embedding matrix (.npy)\n"
            "  quantize    quantize an embedding matrix to int8 or binary\n"
            "  models      model registry: add, list, show, alias, rm, verify, check, gc, log\n"
            "  config      show or validate the configuration\n"
            "  keys        trusted minisign public keys: add, list, rm\n"
            "  bench       benchmarks: forward, search, versions (see ek bench --help)\n"
            "  version     print the version\n"
            "\n"
            "Run `ek <command> --help` for its options.\n",
            ek_version());
}

int cli_fail(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ek %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

int cli_usage(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "ek %s: error: ", cmd);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see ek %s --help)\n", cmd);
    va_end(ap);
    return 2;
}

int cli_int(const char *cmd, const char *opt, const char *v, long lo, long hi, int *out) {
    char *end = NULL;
    if (!v) return cli_usage(cmd, "%s needs a value", opt);
    long x = strtol(v, &end, 10);
    if (!*v || *end || x < lo || x > hi)
        return cli_usage(cmd, "%s: \"%s\" is not an integer in %ld..%ld", opt, v, lo, hi);
    *out = (int)x;
    return 0;
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "embed")) return ek_cmd_embed(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return ek_cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return ek_cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "similarity")) return ek_cmd_similarity(argc - 1, argv + 1);
    if (!strcmp(cmd, "search")) return ek_cmd_search(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return ek_cmd_quantize(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return ek_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "models")) return ek_cmd_models(argc - 1, argv + 1);
    if (!strcmp(cmd, "config")) return ek_cmd_config(argc - 1, argv + 1);
    if (!strcmp(cmd, "keys")) return ek_cmd_keys(argc - 1, argv + 1);
    if (!strcmp(cmd, "version") || !strcmp(cmd, "--version")) {
        printf("ek %s\n", ek_version());
        return 0;
    }
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        usage(stdout);
        return 0;
    }
    fprintf(stderr, "ek: error: unknown command \"%s\"\n", cmd);
    usage(stderr);
    return 2;
}
