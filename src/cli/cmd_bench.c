/* cli/cmd_bench.c — `ek bench <what>`: dispatch to the benchmarks.  Each
 * benchmark prints one JSON object with --json; timings are medians and
 * percentiles after a warm-up, never asserted by unit tests. */
#include <stdio.h>
#include <string.h>

#include "cli/bench_suite.h"
#include "cli/cli.h"

int ek_cmd_bench(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        printf("usage: ek bench <all|forward|embed|tokenize|ops|model|search|versions|pipeline|gpu> [options] [--json]\n"
               "  forward   encoder forward pass: ms, sequences/s, tokens/s, GFLOP/s\n"
               "  embed     forward grid by batch and length per dtype, one sentence, memory\n"
               "  tokenize  tokenizer MB/s and tokens/s by language mix\n"
               "  ops       pooling, normalisation, quantization, similarity, top-k\n"
               "  model     load, registry import, alias switch, manifest hashing, signatures\n"
               "  search    similarity search over random vectors vs memory bandwidth\n"
               "  versions  round-robin embedding across many loaded versions of a model\n"
               "  pipeline  command pipeline overhead per command\n"
               "  gpu       OpenCL backend against the CPU\n"
               "  all       the whole suite (--quick for CI), one JSON document\n");
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "forward")) return ek_bench_forward(argc - 1, argv + 1);
    if (!strcmp(argv[1], "search")) return ek_bench_search(argc - 1, argv + 1);
    if (!strcmp(argv[1], "versions")) return ek_bench_versions(argc - 1, argv + 1);
    if (!strcmp(argv[1], "pipeline")) return ek_bench_pipeline(argc - 1, argv + 1);
    if (!strcmp(argv[1], "gpu")) return ek_bench_gpu(argc - 1, argv + 1);
    if (!strcmp(argv[1], "all")) return ek_bench_all(argc - 1, argv + 1);
    if (!strcmp(argv[1], "tokenize")) return ek_bench_tokenize(argc - 1, argv + 1);
    if (!strcmp(argv[1], "embed")) return ek_bench_embed(argc - 1, argv + 1);
    if (!strcmp(argv[1], "ops")) return ek_bench_ops(argc - 1, argv + 1);
    if (!strcmp(argv[1], "model")) return ek_bench_model(argc - 1, argv + 1);
    return cli_usage("bench", "unknown benchmark \"%s\"", argv[1]);
}
