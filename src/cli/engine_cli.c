/* cli/engine_cli.c — see engine_cli.h. */
#include "cli/engine_cli.h"

#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

extern char **environ;

static int open_engine(cli_engine *ce, const char *cmd, const cli_engine_flags *f, const cli_engine_set *extra,
                       int n_extra) {
    memset(ce, 0, sizeof *ce);
    if (ek_ctx_new(&ce->ctx) || ek_config_store_new(&ce->store)) {
        cli_engine_close(ce);
        return cli_fail(cmd, "out of memory");
    }
    char num[32];
    if (f->threads >= 0) {
        snprintf(num, sizeof num, "%d", f->threads);
        ek_config_store_flag(ce->store, "threads", num, "--threads");
    }
    if (f->dtype) ek_config_store_flag(ce->store, "dtype", f->dtype, "--dtype");
    for (int i = 0; i < n_extra; i++)
        if (extra[i].value) ek_config_store_flag(ce->store, extra[i].key, extra[i].value, extra[i].origin);
    char path[4096], errs[2048] = "";
    int have_file = ek_config_find_file(environ, NULL, path, sizeof path);
    if (ek_config_store_load(ce->store, have_file ? path : NULL, environ, errs, sizeof errs)) {
        char *nl = strchr(errs, '\n'); /* first error on the one line */
        if (nl) *nl = '\0';
        cli_engine_close(ce);
        return cli_fail(cmd, "configuration: %s", errs);
    }
    ek_config_store_get(ce->store, &ce->cfg);
    /* One process, one pass over its input: a cache only costs memory here
     * unless the configuration asks for one explicitly. */
    for (int i = 0; i < ek_config_key_count(); i++)
        if (!strcmp(ek_config_key(i), "cache.max_bytes") && ce->cfg.source[i] == EK_SRC_DEFAULT)
            ce->cfg.cache_max_bytes = 0;
    /* The model is loaded by cli_engine_open, as "cli": the engine must not
     * load the configured one a second time as "default". */
    ek_config ecfg = ce->cfg;
    ecfg.model[0] = '\0';
    ek_engine_options eo = {&ecfg, NULL, NULL, NULL, NULL};
    if (ek_engine_new(ce->ctx, &eo, &ce->eng)) {
        int rc = cli_fail(cmd, "%s", ek_ctx_last_error(ce->ctx));
        cli_engine_close(ce);
        return rc;
    }
    if (ce->cfg.threads) ek_ctx_set_threads(ce->ctx, ce->cfg.threads);
    return 0;
}

int cli_engine_open_bare(cli_engine *ce, const char *cmd, const cli_engine_flags *f) {
    return open_engine(ce, cmd, f, NULL, 0);
}

int cli_engine_open(cli_engine *ce, const char *cmd, const cli_engine_flags *f) {
    return cli_engine_open_with(ce, cmd, f, NULL, 0);
}

int cli_engine_open_with(cli_engine *ce, const char *cmd, const cli_engine_flags *f, const cli_engine_set *extra,
                         int n_extra) {
    int rc = open_engine(ce, cmd, f, extra, n_extra);
    if (rc) return rc;
    const char *ref = f->model && *f->model ? f->model : ce->cfg.model;
    if (!ref || !*ref) {
        cli_engine_close(ce);
        return cli_usage(cmd, "--model DIR|NAME[@VERSION|@ALIAS] is required (or `model:` in the configuration)");
    }
    ek_cmd c;
    ek_cmd_init(&c, EK_CMD_LOAD_MODEL, CLI_MODEL_NAME);
    c.u.load.ref = ref;
    c.u.load.home = ce->cfg.registry_home[0] ? ce->cfg.registry_home : NULL;
    if (cli_engine_run(ce, cmd, &c)) {
        cli_engine_close(ce);
        return 1;
    }
    ce->model = ek_engine_acquire(ce->eng, CLI_MODEL_NAME, &ce->token);
    if (!ce->model) {
        cli_engine_close(ce);
        return cli_fail(cmd, "model %s: not loaded", ref);
    }
    return 0;
}

int cli_engine_run(cli_engine *ce, const char *cmd_name, ek_cmd *cmd) {
    ek_cmd_ctx cx;
    ek_cmd_ctx_init(&cx, ce->ctx);
    if (ek_engine_execute(ce->eng, cmd, &cx) == EK_OK) return 0;
    /* The context's message carries the origin ("validation: texts[3]: ..."). */
    return cli_fail(cmd_name, "%s", ek_ctx_last_error(ce->ctx)[0] ? ek_ctx_last_error(ce->ctx) : cx.message);
}

void cli_engine_close(cli_engine *ce) {
    if (ce->eng && ce->token) ek_engine_release(ce->eng, ce->token);
    ek_engine_free(ce->eng);
    ek_config_store_free(ce->store);
    ek_ctx_free(ce->ctx);
    memset(ce, 0, sizeof *ce);
}
