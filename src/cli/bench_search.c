/* cli/bench_search.c — `ek bench search` (placeholder until it lands). */
#include "cli/cli.h"

int ek_bench_search(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("bench search", "not built yet");
}
