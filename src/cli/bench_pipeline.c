/* cli/bench_pipeline.c — placeholder until the pipeline layer lands. */
#include "cli/cli.h"

int ek_bench_pipeline(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("bench_pipeline", "not built yet");
}
