/* cli/cmd_keys.c — `ek keys`: the minisign public keys trusted to sign
 * models (add, list, rm), stored in the registry under --home.  Key ids are
 * shown as minisign shows them (16 upper-case hex digits). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "embedkit_registry.h"

#define CMD "keys"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ek keys <subcommand> [--home DIR] ...\n"
            "  add PUBKEY [--model NAME]   trust a minisign public key (a .pub file, or its\n"
            "                              base64 line) for NAME, or for every model\n"
            "  list [--json]               trusted keys with their scope\n"
            "  rm KEYID [--model NAME]     stop trusting a key (for NAME only, or everywhere)\n"
            "Home: --home DIR, else $EK_HOME, else ~/.local/share/embedkit.\n");
}

/* PUBKEY is a file when one exists by that name, else the key text. */
static char *read_key(const char *arg) {
    FILE *f = fopen(arg, "rb");
    if (!f) return strdup(arg);
    char *buf = malloc(4097);
    size_t n = buf ? fread(buf, 1, 4096, f) : 0;
    int more = buf && fgetc(f) != EOF;
    fclose(f);
    if (!buf) return NULL;
    if (more) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static int run(ek_ctx *ctx, ek_registry *reg, const char *sub, int argc, char **argv) {
    const char *model = NULL, *arg = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage(CMD, "%s: unknown option %s", sub, argv[i]);
        else if (!arg) arg = argv[i];
        else return cli_usage(CMD, "%s: one argument at a time", sub);
    }
    if (!strcmp(sub, "add")) {
        if (!arg) return cli_usage(CMD, "add PUBKEY is required");
        char *text = read_key(arg);
        if (!text) return cli_fail(CMD, "add: %s: not a minisign public key file (too large)", arg);
        ek_trusted_key k;
        ek_status st = ek_keys_add(ctx, reg, text, model, &k);
        free(text);
        if (st) return cli_fail(CMD, "add: %s", ek_ctx_last_error(ctx));
        printf("key %s trusted for %s%s\n", k.key_id, *k.scope ? "model " : "every model", k.scope);
        return 0;
    }
    if (!strcmp(sub, "list")) {
        if (arg) return cli_usage(CMD, "list takes no argument");
        ek_trusted_key *k;
        size_t n;
        if (ek_keys_list(ctx, reg, &k, &n)) return cli_fail(CMD, "list: %s", ek_ctx_last_error(ctx));
        if (json) putchar('[');
        else printf("%-16s  %-24s %-20s %s\n", "KEY ID", "SCOPE", "ADDED", "COMMENT");
        for (size_t i = 0; i < n; i++) {
            if (json) {
                printf("%s{\"key_id\":\"%s\",\"scope\":", i ? "," : "", k[i].key_id);
                json_str(k[i].scope);
                printf(",\"public_key\":\"%s\",\"comment\":", k[i].public_key);
                json_str(k[i].comment);
                printf(",\"added_at\":%lld}", (long long)k[i].added_at);
            } else {
                char t[32];
                time_t tt = (time_t)k[i].added_at;
                struct tm tm;
                gmtime_r(&tt, &tm);
                strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%SZ", &tm);
                printf("%-16s  %-24s %-20s %s\n", k[i].key_id, *k[i].scope ? k[i].scope : "(every model)", t,
                       k[i].comment);
            }
        }
        if (json) printf("]\n");
        free(k);
        return 0;
    }
    if (!strcmp(sub, "rm")) {
        if (!arg) return cli_usage(CMD, "rm KEYID is required");
        size_t n;
        if (ek_keys_remove(ctx, reg, arg, model, &n)) return cli_fail(CMD, "rm: %s", ek_ctx_last_error(ctx));
        printf("key %s removed (%zu scope%s)\n", arg, n, n == 1 ? "" : "s");
        return 0;
    }
    return -1;
}

int ek_cmd_keys(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *home = NULL;
    if (strcmp(sub, "add") && strcmp(sub, "list") && strcmp(sub, "rm"))
        return cli_usage(CMD, "unknown subcommand \"%s\"", sub);
    char **args = malloc(sizeof *args * (size_t)argc);
    if (!args) return cli_fail(CMD, "out of memory");
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--home") && i + 1 < argc) home = argv[++i];
        else args[n++] = argv[i];
    }
    ek_ctx *ctx;
    ek_registry *reg = NULL;
    int rc;
    if (ek_ctx_new(&ctx)) {
        free(args);
        return cli_fail(CMD, "out of memory");
    }
    char h[3072];
    if (!home && ek_registry_default_home(ctx, h, sizeof h)) rc = cli_fail(CMD, "%s", ek_ctx_last_error(ctx));
    else if (ek_registry_open(ctx, home ? home : h, NULL, &reg)) rc = cli_fail(CMD, "%s", ek_ctx_last_error(ctx));
    else rc = run(ctx, reg, sub, n, args);
    ek_registry_close(reg);
    ek_ctx_free(ctx);
    free(args);
    return rc;
}
