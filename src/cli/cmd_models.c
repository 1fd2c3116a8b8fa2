/* cli/cmd_models.c — `ek models` (placeholder until the registry lands). */
#include "cli/cli.h"

int ek_cmd_models(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("models", "not built yet");
}
