/* cli/cmd_config.c — placeholder until the pipeline layer lands. */
#include "cli/cli.h"

int ek_cmd_config(int argc, char **argv) {
    (void)argc;
    (void)argv;
    return cli_fail("cmd_config", "not built yet");
}
