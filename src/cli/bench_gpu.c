/* cli/bench_gpu.c — placeholder until it lands. */
#include "cli/cli.h"

int ek_bench_gpu(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("bench", "bench_gpu: not built yet");
}
