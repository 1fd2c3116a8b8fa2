/* cli/bench_versions.c — `ek bench versions` (placeholder until it lands). */
#include "cli/cli.h"

int ek_bench_versions(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("bench versions", "not built yet");
}
