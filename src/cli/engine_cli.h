/* cli/engine_cli.h — how `ek` subcommands reach the library: through the
 * command pipeline (include/embedkit_pipeline.h), configured from defaults <
 * config file < EK_* environment < flags, with the model given as a directory
 * or a registry reference (name, name@version, name@alias).  No side doors:
 * validation, limits, breaker and telemetry apply to the CLI as to a server. */
#ifndef EK_CLI_ENGINE_CLI_H
#define EK_CLI_ENGINE_CLI_H

#include "embedkit.h"
#include "embedkit_pipeline.h"

#define CLI_MODEL_NAME "cli"

typedef struct cli_engine {
    ek_ctx *ctx;
    ek_config_store *store;
    ek_config cfg;
    ek_engine *eng;
    const ek_model *model; /* held until cli_engine_close */
    void *token;
} cli_engine;

/* Flags that map onto configuration keys; NULL / negative: not given. */
typedef struct cli_engine_flags {
    const char *model;     /* --model: directory or registry reference */
    int threads;           /* --threads (-1: not given) */
    const char *dtype;     /* --dtype */
} cli_engine_flags;

/* Builds the configuration and the engine, loads the model.  Errors are
 * printed as "ek CMD: error: ..." and 1 is returned. */
int cli_engine_open(cli_engine *ce, const char *cmd, const cli_engine_flags *f);
/* A flag of a subcommand's own that sets a configuration key (value NULL:
 * not given), e.g. {"device", "gpu", "--device"}. */
typedef struct cli_engine_set {
    const char *key, *value, *origin;
} cli_engine_set;
/* cli_engine_open with such flags too. */
int cli_engine_open_with(cli_engine *ce, const char *cmd, const cli_engine_flags *f, const cli_engine_set *extra,
                         int n_extra);
/* The same without a model (f->model ignored): for commands that need none
 * (a search by query vectors, a registry health check). */
int cli_engine_open_bare(cli_engine *ce, const char *cmd, const cli_engine_flags *f);
void cli_engine_close(cli_engine *ce);
/* Runs cmd; on error prints the pipeline's message and returns 1. */
int cli_engine_run(cli_engine *ce, const char *cmd_name, ek_cmd *cmd);

#endif
