/* cli/bench_all.c — placeholder until it lands. */
#include "cli/cli.h"

int ek_bench_all(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("bench", "bench_all: not built yet");
}
