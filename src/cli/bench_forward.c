/* cli/bench_forward.c — `ek bench forward` (placeholder until it lands). */
#include "cli/cli.h"

int ek_bench_forward(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("bench forward", "not built yet");
}
