/* cli/cmd_keys.c — placeholder until model signing lands. */
#include "cli/cli.h"

int ek_cmd_keys(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("keys", "not built yet");
}
