/* cli/cmd_search.c — `ek search` and `ek quantize` (placeholder until the
 * search layer lands). */
#include "cli/cli.h"

int ek_cmd_search(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("search", "not built yet");
}

int ek_cmd_quantize(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("quantize", "not built yet");
}
