/* cli/cmd_config.c — `ek config show [--json]` (the effective configuration:
 * defaults < file < EK_* environment < flags, each value with its source)
 * and `ek config validate FILE` (every problem with its line). */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "embedkit_pipeline.h"

extern char **environ;

/* Flags that map straight onto keys (besides --set key=value). */
static const struct { const char *flag; const char *key; } FLAGS[] = {
    {"--threads", "threads"}, {"--dtype", "dtype"}, {"--model", "model"},
    {"--batch-size", "batch_size"}, {"--max-length", "max_length"},
    {"--cache-bytes", "cache.max_bytes"}, {"--log-level", "log.level"},
    {"--log-format", "log.format"}, {"--home", "registry.home"},
};

static int usage(void) {
    printf("usage: ek config show [--json] [--config FILE] [--set KEY=VALUE]... [flags]\n"
           "       ek config validate FILE\n"
           "  precedence: defaults < file < EK_* environment < flags\n"
           "  file: --config FILE, else $EK_CONFIG, else ~/.config/embedkit/config.yaml\n"
           "  flags: --threads --dtype --model --batch-size --max-length --cache-bytes\n"
           "         --log-level --log-format --home, or --set KEY=VALUE for any key\n"
           "  keys: ek config show lists every key; docs/CONFIG.md describes them\n");
    return 0;
}

static void emit_value(cJSON *obj, const ek_config *cfg, int k) {
    char v[1024];
    ek_config_value_text(cfg, k, v, sizeof v);
    const char *key = ek_config_key(k);
    (void)key;
    char *end = NULL;
    double num = strtod(v, &end);
    if (!strcmp(v, "true") || !strcmp(v, "false")) cJSON_AddBoolToObject(obj, "value", v[0] == 't');
    else if (*v && end && !*end) cJSON_AddNumberToObject(obj, "value", num);
    else cJSON_AddStringToObject(obj, "value", v);
}

static int show(int argc, char **argv) {
    int json = 0;
    const char *file_flag = NULL;
    ek_config_store *store = NULL;
    if (ek_config_store_new(&store)) return cli_fail("config", "out of memory");
    int rc = 0;
    for (int i = 1; i < argc && !rc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--json")) { json = 1; continue; }
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) { ek_config_store_free(store); return usage(); }
        if (i + 1 >= argc) { rc = cli_usage("config", "%s needs a value", a); break; }
        if (!strcmp(a, "--config")) { file_flag = argv[++i]; continue; }
        if (!strcmp(a, "--set")) {
            const char *kv = argv[++i];
            const char *eq = strchr(kv, '=');
            if (!eq) { rc = cli_usage("config", "--set expects KEY=VALUE, got \"%s\"", kv); break; }
            char key[128];
            snprintf(key, sizeof key, "%.*s", (int)(eq - kv), kv);
            ek_config_store_flag(store, key, eq + 1, "--set");
            continue;
        }
        int found = 0;
        for (size_t f = 0; f < sizeof FLAGS / sizeof FLAGS[0] && !found; f++)
            if (!strcmp(a, FLAGS[f].flag)) {
                ek_config_store_flag(store, FLAGS[f].key, argv[++i], FLAGS[f].flag);
                found = 1;
            }
        if (!found) rc = cli_usage("config", "unknown option \"%s\"", a);
    }
    char path[1024];
    int has_file = !rc && ek_config_find_file(environ, file_flag, path, sizeof path);
    char errs[8192];
    if (!rc && ek_config_store_load(store, has_file ? path : NULL, environ, errs, sizeof errs) != EK_OK) {
        fprintf(stderr, "%s\n", errs);
        rc = cli_fail("config", "invalid configuration");
    }
    if (rc) {
        ek_config_store_free(store);
        return rc;
    }
    ek_config cfg;
    ek_config_store_get(store, &cfg);
    if (json) {
        cJSON *root = cJSON_CreateObject();
        if (has_file) cJSON_AddStringToObject(root, "file", path);
        else cJSON_AddNullToObject(root, "file");
        cJSON *values = cJSON_AddObjectToObject(root, "values");
        for (int k = 0; k < ek_config_key_count(); k++) {
            cJSON *o = cJSON_AddObjectToObject(values, ek_config_key(k));
            emit_value(o, &cfg, k);
            cJSON_AddStringToObject(o, "source", ek_config_source_name(cfg.source[k]));
            cJSON_AddStringToObject(o, "origin", cfg.origin[k]);
            cJSON_AddStringToObject(o, "env", ek_config_key_env(k));
        }
        char *s = cJSON_PrintUnformatted(root);
        printf("%s\n", s);
        free(s);
        cJSON_Delete(root);
    } else {
        printf("# file: %s\n", has_file ? path : "(none)");
        for (int k = 0; k < ek_config_key_count(); k++) {
            char v[1024];
            ek_config_value_text(&cfg, k, v, sizeof v);
            printf("%-34s %-14s %s%s%s\n", ek_config_key(k), *v ? v : "\"\"",
                   ek_config_source_name(cfg.source[k]), cfg.origin[k][0] ? " " : "", cfg.origin[k]);
        }
    }
    ek_config_store_free(store);
    return 0;
}

static int validate(int argc, char **argv) {
    if (argc != 2) return cli_usage("config", "validate expects one FILE");
    ek_config cfg;
    ek_config_defaults(&cfg);
    char errs[8192] = "";
    int n = ek_config_load_file(&cfg, argv[1], errs, sizeof errs);
    if (!n) n = ek_config_check(&cfg, argv[1], errs, sizeof errs);
    if (n) {
        fprintf(stderr, "%s\n", errs);
        return cli_fail("config", "%s: %d error%s", argv[1], n, n == 1 ? "" : "s");
    }
    int set = 0;
    for (int k = 0; k < ek_config_key_count(); k++) set += cfg.source[k] == EK_SRC_FILE;
    printf("%s: ok (%d key%s set)\n", argv[1], set, set == 1 ? "" : "s");
    return 0;
}

int ek_cmd_config(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage();
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "show")) return show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "validate")) return validate(argc - 1, argv + 1);
    return cli_usage("config", "unknown subcommand \"%s\"", argv[1]);
}
