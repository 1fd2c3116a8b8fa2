/* cli/cmd_models.c — `ek models`: the model registry from the command line
 * (add, list, show, alias, rm, verify, check, gc, log; signed models:
 * manifest, pull, update, add --verify — docs/SIGNING.md).  Every subcommand
 * takes --home DIR (else $EK_HOME, else ~/.local/share/embedkit); the work
 * is done by the public registry API (include/embedkit_registry.h).
 *
 * `check` runs as a HEALTH command through the pipeline (cli/engine_cli.h),
 * so its results are telemetry like any command's (--metrics FILE writes
 * them for a textfile collector).  The other subcommands administer the
 * registry itself (imports, aliases, retirement, keys) rather than serve
 * requests, so they call the registry directly. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/engine_cli.h"
#include "embedkit_registry.h"

#define CMD "models"

static void usage(FILE *f) {
    fprintf(f,
            "usage: ek models <subcommand> [--home DIR] ...\n"
            "  add DIR --name NAME [--version N] [--no-canaries]\n"
            "                          import a model directory (every file hashed;\n"
            "                          recorded as unsigned)\n"
            "  add DIR --verify [--name NAME] [PULL OPTIONS]\n"
            "                          install DIR as its signed manifest says (see pull)\n"
            "  manifest DIR --name NAME --version N\n"
            "                          write the canonical DIR/manifest.json (sign it with\n"
            "                          `minisign -S -m DIR/manifest.json`)\n"
            "  pull SOURCE [--name NAME] [--endpoint URL [--revision R]] [PULL OPTIONS]\n"
            "                          download, verify and install a signed model: SOURCE\n"
            "                          is an http(s) URL of a directory, a Hub repo id\n"
            "                          (with --endpoint) or a local directory\n"
            "  update NAME [PULL OPTIONS]  install the newer signed version from NAME's source\n"
            "PULL OPTIONS: --alias A (move A to the version), --allow-unsigned, --allow-legacy,\n"
            "  --allow-downgrade, --no-canaries, --json (progress as JSON lines),\n"
            "  --connect-timeout MS, --stall-timeout S, --timeout S, --retries N, --backoff MS\n"
            "  list [NAME] [--json]    versions with status, aliases, health\n"
            "  show REF [--json]       one version and its files\n"
            "  alias NAME ALIAS VERSION   point ALIAS at NAME@VERSION\n"
            "  alias NAME ALIAS --delete  remove ALIAS\n"
            "  rm REF [--force]        retire a version (--force also drops its aliases)\n"
            "  verify REF              re-hash its files; a mismatch marks it CORRUPT\n"
            "  verify REF --signature [--require-signature]\n"
            "                          re-verify its signed manifest against the keys\n"
            "                          trusted now and re-hash its files against it\n"
            "  check REF [--rehash] [--verify-signature] [--require-signature] [--json]\n"
            "            [--every SECONDS --count N] [--metrics FILE]\n"
            "                          health check: reload, embed the canaries, compare;\n"
            "                          --metrics writes Prometheus metrics after each check\n"
            "  verify-on-load [off|signed|required]\n"
            "                          show or set when resolving/loading and every check\n"
            "                          re-verify signatures (registry-wide setting)\n"
            "  gc [--packed-max-age D] delete blobs no version references, and packed-weight\n"
            "                          cache files unused for D days (default 30)\n"
            "  log [NAME] [--json]     the event log\n"
            "REF: NAME, NAME@VERSION, NAME@ALIAS (NAME@latest).  Names: letters, digits,\n"
            "'.', '_', '-', starting with a letter or digit, at most 64 characters.\n"
            "Home: --home DIR, else $EK_HOME, else ~/.local/share/embedkit.\n");
}

static void json_str(const char *s) {
    putchar('"');
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') printf("\\%c", *p);
        else if (*p == '\n') fputs("\\n", stdout);
        else if (*p < 0x20) printf("\\u%04x", *p);
        else putchar(*p);
    }
    putchar('"');
}

static const char *when(int64_t t, char *buf, size_t cap) {
    if (!t) return "-";
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
    return buf;
}

static const char *human(uint64_t b, char *buf, size_t cap) {
    if (b < 10000) snprintf(buf, cap, "%llu B", (unsigned long long)b);
    else if (b < 10000000) snprintf(buf, cap, "%.1f kB", (double)b / 1e3);
    else if (b < 10000000000ULL) snprintf(buf, cap, "%.1f MB", (double)b / 1e6);
    else snprintf(buf, cap, "%.1f GB", (double)b / 1e9);
    return buf;
}

/* One version as a JSON object; left open (no closing brace) when open. */
static void version_json(const ek_reg_version *v, int open) {
    printf("{\"name\":");
    json_str(v->name);
    printf(",\"version\":%lld,\"status\":\"%s\",\"created_at\":%lld,\"ready_at\":%lld,\"total_bytes\":%llu,"
           "\"files\":%d,\"latest\":%s,\"aliases\":[",
           (long long)v->version, v->status, (long long)v->created_at, (long long)v->ready_at,
           (unsigned long long)v->total_bytes, v->n_files, v->is_latest ? "true" : "false");
    char a[sizeof v->aliases];
    snprintf(a, sizeof a, "%s", v->aliases);
    int first = 1;
    for (char *save = NULL, *t = strtok_r(a, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (!first) putchar(',');
        json_str(t);
        first = 0;
    }
    printf("],\"reason\":");
    json_str(v->reason);
    printf(",\"health\":");
    json_str(v->health);
    printf(",\"health_reason\":");
    json_str(v->health_reason);
    printf(",\"health_at\":%lld,\"source\":", (long long)v->health_at);
    json_str(v->source);
    printf(",\"highest_version_seen\":%lld%s", (long long)v->highest_seen, open ? "" : "}");
}

/* The signing fields of a version, appended to an open JSON object. */
static void provenance_json(ek_ctx *ctx, ek_registry *reg, const ek_reg_version *v) {
    ek_reg_provenance pv;
    if (ek_registry_provenance(ctx, reg, v->name, v->version, &pv)) memset(&pv, 0, sizeof pv);
    printf(",\"signed\":%s,\"key_id\":", pv.is_signed ? "true" : "false");
    json_str(pv.key_id);
    printf(",\"trusted_comment\":");
    json_str(pv.trusted_comment);
    printf(",\"manifest_sha256\":");
    json_str(pv.manifest_sha256);
    printf(",\"origin\":");
    json_str(pv.origin);
    printf(",\"repo\":");
    json_str(pv.repo);
    printf(",\"revision\":");
    json_str(pv.revision);
}

static int open_reg(const char *home, ek_ctx **ctx, ek_registry **reg) {
    *reg = NULL;
    if (ek_ctx_new(ctx)) return cli_fail(CMD, "out of memory");
    char h[3072];
    if (!home) {
        if (ek_registry_default_home(*ctx, h, sizeof h)) {
            int rc = cli_fail(CMD, "%s", ek_ctx_last_error(*ctx));
            ek_ctx_free(*ctx);
            return rc;
        }
        home = h;
    }
    if (ek_registry_open(*ctx, home, NULL, reg)) {
        int rc = cli_fail(CMD, "%s", ek_ctx_last_error(*ctx));
        ek_ctx_free(*ctx);
        return rc;
    }
    return 0;
}

static int cmd_pull_like(ek_ctx *ctx, ek_registry *reg, int argc, char **argv, const char *what);

static int cmd_add(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    for (int i = 0; i < argc; i++)
        if (!strcmp(argv[i], "--verify")) return cmd_pull_like(ctx, reg, argc, argv, "add");
    const char *dir = NULL, *name = NULL;
    ek_import_options o = {0};
    int rc;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--version") && i + 1 < argc) {
            int v;
            if ((rc = cli_int(CMD, "--version", argv[++i], 1, 2000000000, &v))) return rc;
            o.version = v;
        } else if (!strcmp(argv[i], "--no-canaries")) o.no_canaries = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return cli_usage(CMD, "add: unknown option %s", argv[i]);
        else if (!dir) dir = argv[i];
        else return cli_usage(CMD, "add: one directory at a time");
    }
    if (!dir || !name) return cli_usage(CMD, "add DIR --name NAME is required");
    int64_t v;
    if (ek_registry_import(ctx, reg, dir, name, &o, &v)) return cli_fail(CMD, "add: %s", ek_ctx_last_error(ctx));
    ek_reg_version info;
    char ref[128];
    snprintf(ref, sizeof ref, "%s@%lld", name, (long long)v);
    if (ek_registry_lookup(ctx, reg, ref, &info)) return cli_fail(CMD, "add: %s", ek_ctx_last_error(ctx));
    char hb[32];
    printf("%s@%lld %s: %d files, %s\n", name, (long long)v, info.status, info.n_files,
           human(info.total_bytes, hb, sizeof hb));
    return 0;
}

static int cmd_list(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    const char *name = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') return cli_usage(CMD, "list: unknown option %s", argv[i]);
        else name = argv[i];
    }
    ek_reg_version *v;
    size_t n;
    if (ek_registry_list(ctx, reg, name, &v, &n)) return cli_fail(CMD, "list: %s", ek_ctx_last_error(ctx));
    if (json) {
        printf("[");
        for (size_t i = 0; i < n; i++) {
            if (i) putchar(',');
            version_json(&v[i], 1);
            provenance_json(ctx, reg, &v[i]);
            putchar('}');
        }
        printf("]\n");
    } else {
        printf("%-24s %8s  %-8s %10s %6s  %-24s %-10s %s\n", "NAME", "VERSION", "STATUS", "SIZE", "FILES", "ALIASES",
               "HEALTH", "SIGNED");
        for (size_t i = 0; i < n; i++) {
            char hb[32], al[300];
            snprintf(al, sizeof al, "%s%s%s", v[i].is_latest ? "latest" : "",
                     v[i].is_latest && *v[i].aliases ? "," : "", v[i].aliases);
            ek_reg_provenance pv;
            int signed_ = !ek_registry_provenance(ctx, reg, v[i].name, v[i].version, &pv) && pv.is_signed;
            printf("%-24s %8lld  %-8s %10s %6d  %-24s %-10s %s\n", v[i].name, (long long)v[i].version, v[i].status,
                   human(v[i].total_bytes, hb, sizeof hb), v[i].n_files, *al ? al : "-",
                   *v[i].health ? v[i].health : "-", signed_ ? pv.key_id : "unsigned");
        }
    }
    free(v);
    return 0;
}

static int cmd_show(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    const char *ref = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') return cli_usage(CMD, "show: unknown option %s", argv[i]);
        else ref = argv[i];
    }
    if (!ref) return cli_usage(CMD, "show REF is required");
    ek_reg_version v;
    ek_reg_file *f;
    size_t n;
    if (ek_registry_lookup(ctx, reg, ref, &v) || ek_registry_files(ctx, reg, v.name, v.version, &f, &n))
        return cli_fail(CMD, "show: %s", ek_ctx_last_error(ctx));
    char path[4096];
    snprintf(path, sizeof path, "%s/models/%s/%lld", ek_registry_home(reg), v.name, (long long)v.version);
    if (json) {
        version_json(&v, 1);
        provenance_json(ctx, reg, &v);
        printf(",\"path\":");
        json_str(path);
        printf(",\"file_list\":[");
        for (size_t i = 0; i < n; i++) {
            printf("%s{\"path\":", i ? "," : "");
            json_str(f[i].path);
            printf(",\"size\":%llu,\"sha256\":\"%s\"}", (unsigned long long)f[i].size, f[i].sha256);
        }
        printf("]}\n");
    } else {
        char t1[32], t2[32], t3[32], hb[32];
        printf("model:     %s@%lld\n", v.name, (long long)v.version);
        printf("status:    %s%s%s\n", v.status, *v.reason ? " — " : "", v.reason);
        printf("aliases:   %s%s%s\n", v.is_latest ? "latest" : "", v.is_latest && *v.aliases ? "," : "",
               *v.aliases || v.is_latest ? v.aliases : "-");
        printf("imported:  %s, READY %s, from %s\n", when(v.created_at, t1, sizeof t1),
               when(v.ready_at, t2, sizeof t2), v.source);
        printf("size:      %s in %d files\n", human(v.total_bytes, hb, sizeof hb), v.n_files);
        printf("health:    %s%s%s%s%s\n", *v.health ? v.health : "never checked", *v.health_reason ? " — " : "",
               v.health_reason, v.health_at ? " at " : "", v.health_at ? when(v.health_at, t3, sizeof t3) : "");
        printf("path:      %s\n", path);
        printf("highest version seen: %lld\n", (long long)v.highest_seen);
        ek_reg_provenance pv;
        if (!ek_registry_provenance(ctx, reg, v.name, v.version, &pv)) {
            if (pv.is_signed)
                printf("signed:    yes, by key %s\ntrusted comment: %s\n", pv.key_id, pv.trusted_comment);
            else
                printf("signed:    NO (unsigned: %s)\n", pv.recorded ? "installed with --allow-unsigned"
                                                              : "imported with `ek models add`");
            if (pv.recorded)
                printf("origin:    %s%s%s%s%s\n", pv.origin, *pv.repo ? " repo " : "", pv.repo,
                       *pv.revision ? "@" : "", pv.revision);
        }
        printf("files:\n");
        for (size_t i = 0; i < n; i++)
            printf("  %s  %12llu  %s\n", f[i].sha256, (unsigned long long)f[i].size, f[i].path);
    }
    free(f);
    return 0;
}

static int cmd_alias(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[2], "--delete")) {
        if (ek_registry_unalias(ctx, reg, argv[0], argv[1]))
            return cli_fail(CMD, "alias: %s", ek_ctx_last_error(ctx));
        printf("%s@%s removed\n", argv[0], argv[1]);
        return 0;
    }
    if (argc != 3) return cli_usage(CMD, "alias NAME ALIAS VERSION");
    int v, rc;
    if ((rc = cli_int(CMD, "VERSION", argv[2], 1, 2000000000, &v))) return rc;
    if (ek_registry_alias(ctx, reg, argv[0], argv[1], v)) return cli_fail(CMD, "alias: %s", ek_ctx_last_error(ctx));
    printf("%s@%s -> %d\n", argv[0], argv[1], v);
    return 0;
}

static int cmd_rm(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    const char *ref = NULL;
    int force = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--force")) force = 1;
        else if (argv[i][0] == '-') return cli_usage(CMD, "rm: unknown option %s", argv[i]);
        else ref = argv[i];
    }
    if (!ref) return cli_usage(CMD, "rm REF is required");
    if (ek_registry_remove(ctx, reg, ref, force)) return cli_fail(CMD, "rm: %s", ek_ctx_last_error(ctx));
    printf("%s retired (run `ek models gc` to free unreferenced blobs)\n", ref);
    return 0;
}

static int cmd_verify(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    const char *ref = NULL;
    int signature = 0, require = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--signature")) signature = 1;
        else if (!strcmp(argv[i], "--require-signature")) signature = require = 1;
        else if (argv[i][0] == '-') return cli_usage(CMD, "verify: unknown option %s", argv[i]);
        else if (ref) return cli_usage(CMD, "verify REF [--signature [--require-signature]]");
        else ref = argv[i];
    }
    if (!ref) return cli_usage(CMD, "verify REF [--signature [--require-signature]]");
    if (signature) {
        ek_sig_report sr;
        if (ek_registry_verify_signature(ctx, reg, ref, require, &sr))
            return cli_fail(CMD, "verify: %s", ek_ctx_last_error(ctx));
        if (!strcmp(sr.state, "unsigned")) printf("%s: unsigned (installed without a signature)\n", ref);
        else printf("%s: signature verified (key %s, \"%s\"); %d files match the signed manifest\n", ref, sr.key_id,
                    sr.trusted_comment, sr.files_checked);
        return 0;
    }
    char bad[1024];
    if (ek_registry_verify(ctx, reg, ref, bad, sizeof bad))
        return cli_fail(CMD, "verify: %s", ek_ctx_last_error(ctx));
    printf("%s: all files match\n", ref);
    return 0;
}

/* The engine's metrics (embedkit_model_health... and the command
 * telemetry) into path, replaced atomically for a textfile collector. */
static int write_metrics(cli_engine *ce, const char *path) {
    char *text = NULL, tmp[4200];
    size_t len = 0;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    if (ek_metrics_render(ek_engine_metrics(ce->eng), &text, &len)) return cli_fail(CMD, "check: rendering metrics failed");
    FILE *f = fopen(tmp, "wb");
    int bad = !f || fwrite(text, 1, len, f) != len;
    if (f && fclose(f)) bad = 1;
    free(text);
    if (bad || rename(tmp, path)) {
        remove(tmp);
        return cli_fail(CMD, "check: --metrics %s: cannot write the file", path);
    }
    return 0;
}

static void print_check(const ek_health_args *a, const ek_health *h, int json) {
    if (json) {
        printf("{\"model\":");
        json_str(a->check_model);
        printf(",\"version\":%lld,\"result\":\"%s\",\"reason\":", (long long)a->check_version, h->result);
        json_str(h->reason);
        printf(",\"min_cosine\":");
        if (h->min_cosine > -2 && h->min_cosine <= 1.5) printf("%.7f", h->min_cosine);
        else printf("null");
        printf(",\"load_ms\":%.3f,\"embed_ms\":%.3f,\"golden_embed_ms\":%.3f", h->load_ms, h->embed_ms,
               h->golden_embed_ms);
        if (*h->signature) {
            printf(",\"signature\":\"%s\",\"signature_code\":\"%s\",\"signature_file\":", h->signature,
                   ek_verify_code_name((ek_verify_code)h->signature_code));
            json_str(h->signature_file);
            printf(",\"key_id\":");
            json_str(h->key_id);
        } else printf(",\"signature\":null");
        printf("}\n");
    } else {
        printf("%s@%lld: %s%s%s (load %.1f ms, canaries %.1f ms", a->check_model, (long long)a->check_version,
               h->result, *h->reason ? ": " : "", h->reason, h->load_ms, h->embed_ms);
        if (h->min_cosine > -2 && h->min_cosine <= 1.5) printf(", min cosine %.7f", h->min_cosine);
        if (!strcmp(h->signature, "verified")) printf(", signature verified, key %s", h->key_id);
        else if (!strcmp(h->signature, "unsigned")) printf(", unsigned");
        else if (*h->signature) printf(", signature %s [%s, %s]", h->signature,
                                       ek_verify_code_name((ek_verify_code)h->signature_code), h->signature_file);
        printf(")\n");
    }
}

/* `check` through the pipeline: one HEALTH command per check. */
static int cmd_check(const char *home, int argc, char **argv) {
    const char *ref = NULL, *metrics = NULL;
    int json = 0, rehash = 0, every = 0, count = 1, rc, verify_sig = 0, require_sig = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (!strcmp(argv[i], "--rehash")) rehash = 1;
        else if (!strcmp(argv[i], "--verify-signature")) verify_sig = 1;
        else if (!strcmp(argv[i], "--require-signature")) verify_sig = require_sig = 1;
        else if (!strcmp(argv[i], "--every") && i + 1 < argc) {
            if ((rc = cli_int(CMD, "--every", argv[++i], 1, 86400 * 7, &every))) return rc;
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            if ((rc = cli_int(CMD, "--count", argv[++i], 0, 1000000000, &count))) return rc;
        } else if (!strcmp(argv[i], "--metrics") && i + 1 < argc) metrics = argv[++i];
        else if (argv[i][0] == '-') return cli_usage(CMD, "check: unknown option %s", argv[i]);
        else ref = argv[i];
    }
    if (!ref) return cli_usage(CMD, "check REF is required");
    if (every && count == 1) count = 0; /* a monitor runs until stopped */
    cli_engine ce;
    cli_engine_flags f = {NULL, -1, NULL};
    if ((rc = cli_engine_open_bare(&ce, CMD, &f))) return rc;
    int worst = 0;
    for (int k = 0; !count || k < count; k++) {
        if (k) sleep((unsigned)every);
        ek_health h;
        ek_cmd c;
        ek_cmd_ctx cx;
        ek_cmd_init(&c, EK_CMD_HEALTH, NULL);
        c.u.health.ref = ref;
        c.u.health.home = home;
        c.u.health.rehash = rehash;
        c.u.health.verify_signature = verify_sig;
        c.u.health.require_signature = require_sig;
        c.u.health.check = &h;
        ek_cmd_ctx_init(&cx, ce.ctx);
        if (ek_engine_execute(ce.eng, &c, &cx)) {
            worst = cli_fail(CMD, "check: %s", cx.message);
            break;
        }
        print_check(&c.u.health, &h, json);
        fflush(stdout);
        if (metrics && write_metrics(&ce, metrics)) {
            worst = 1;
            break;
        }
        int level = !strcmp(h.result, "healthy") ? 0 : !strcmp(h.result, "degraded") ? 3 : 4;
        if (level > worst) worst = level;
    }
    cli_engine_close(&ce);
    return worst; /* 0 healthy, 3 degraded, 4 unhealthy */
}

static int cmd_verify_on_load(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    if (argc > 1) return cli_usage(CMD, "verify-on-load [off|signed|required]");
    ek_sig_policy p;
    if (argc == 1) {
        if (ek_sig_policy_parse(argv[0], &p))
            return cli_usage(CMD, "verify-on-load: \"%s\" is not off, signed or required", argv[0]);
        if (ek_registry_set_verify_on_load(ctx, reg, p))
            return cli_fail(CMD, "verify-on-load: %s", ek_ctx_last_error(ctx));
    }
    if (ek_registry_get_verify_on_load(ctx, reg, &p)) return cli_fail(CMD, "verify-on-load: %s", ek_ctx_last_error(ctx));
    printf("verify_on_load: %s\n", ek_sig_policy_name(p));
    return 0;
}

static int cmd_gc(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    int64_t max_age = EK_PACKED_MAX_AGE_DEFAULT_S;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--packed-max-age") && i + 1 < argc) {
            char *end;
            double days = strtod(argv[++i], &end);
            if (end == argv[i] || *end || !(days >= 0) || days > 36500)
                return cli_usage(CMD, "gc: --packed-max-age %s: want a number of days (0..36500)", argv[i]);
            max_age = (int64_t)(days * 86400.0);
        } else {
            return cli_usage(CMD, "gc: unknown argument %s (gc [--packed-max-age DAYS])", argv[i]);
        }
    }
    size_t n, np;
    uint64_t b, bp;
    if (ek_registry_gc(ctx, reg, &n, &b)) return cli_fail(CMD, "gc: %s", ek_ctx_last_error(ctx));
    if (ek_registry_gc_packed(ctx, reg, max_age, &np, &bp)) return cli_fail(CMD, "gc: %s", ek_ctx_last_error(ctx));
    char hb[32];
    printf("removed %zu unreferenced blobs (%s)\n", n, human(b, hb, sizeof hb));
    printf("removed %zu packed-weight cache files unused for %g days (%s)\n", np, (double)max_age / 86400.0,
           human(bp, hb, sizeof hb));
    return 0;
}

static int cmd_log(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    const char *name = NULL;
    int json = 0;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) json = 1;
        else if (argv[i][0] == '-') return cli_usage(CMD, "log: unknown option %s", argv[i]);
        else name = argv[i];
    }
    ek_reg_event *ev;
    size_t n;
    if (ek_registry_events(ctx, reg, name, &ev, &n)) return cli_fail(CMD, "log: %s", ek_ctx_last_error(ctx));
    for (size_t i = 0; i < n; i++) {
        char t[32];
        if (json) {
            printf("{\"id\":%lld,\"at\":%lld,\"who\":", (long long)ev[i].id, (long long)ev[i].at);
            json_str(ev[i].who);
            printf(",\"model\":");
            json_str(ev[i].model);
            printf(",\"version\":%lld,\"action\":", (long long)ev[i].version);
            json_str(ev[i].action);
            printf(",\"detail\":");
            json_str(ev[i].detail);
            printf("}\n");
        } else {
            char what[128];
            if (ev[i].version) snprintf(what, sizeof what, "%s@%lld", ev[i].model, (long long)ev[i].version);
            else snprintf(what, sizeof what, "%s", *ev[i].model ? ev[i].model : "-");
            printf("%s  %-14s %-24s %-28s %s\n", when(ev[i].at, t, sizeof t), ev[i].action, what, ev[i].who,
                   ev[i].detail);
        }
    }
    free(ev);
    return 0;
}

/* ---- signed models ---- */

static int cmd_manifest(int argc, char **argv) {
    const char *dir = NULL, *name = NULL;
    int version = 0, rc;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--version") && i + 1 < argc) {
            if ((rc = cli_int(CMD, "--version", argv[++i], 1, 2000000000, &version))) return rc;
        } else if (argv[i][0] == '-' && argv[i][1]) return cli_usage(CMD, "manifest: unknown option %s", argv[i]);
        else if (!dir) dir = argv[i];
        else return cli_usage(CMD, "manifest: one directory at a time");
    }
    if (!dir || !name || !version) return cli_usage(CMD, "manifest DIR --name NAME --version N is required");
    ek_ctx *ctx;
    if (ek_ctx_new(&ctx)) return cli_fail(CMD, "out of memory");
    char sha[65];
    if (ek_manifest_write(ctx, dir, name, version, sha)) {
        rc = cli_fail(CMD, "manifest: %s", ek_ctx_last_error(ctx));
    } else {
        printf("%s/manifest.json: %s@%d, sha256 %s\n", dir, name, version, sha);
        rc = 0;
    }
    ek_ctx_free(ctx);
    return rc;
}

typedef struct progress_ui {
    int json, tty;
    double last;
} progress_ui;

static double mono_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* --json: one object per event on stdout; a terminal: one bar on stderr;
 * otherwise silent (scripts and logs get the final line only). */
static void on_progress(void *arg, const ek_pull_progress *p) {
    progress_ui *ui = arg;
    if (ui->json) {
        printf("{\"event\":");
        json_str(p->event);
        printf(",\"path\":");
        json_str(p->path);
        printf(",\"done\":%llu,\"total\":%llu,\"all_done\":%llu,\"all_total\":%llu,\"index\":%d,\"files\":%d,"
               "\"detail\":", (unsigned long long)p->done, (unsigned long long)p->total,
               (unsigned long long)p->all_done, (unsigned long long)p->all_total, p->index, p->n_files);
        json_str(p->detail);
        printf("}\n");
        fflush(stdout);
        return;
    }
    if (!ui->tty) return;
    double t = mono_s();
    int final = !strcmp(p->event, "done") || !strcmp(p->event, "install");
    if (!strcmp(p->event, "retry")) {
        fprintf(stderr, "\r\033[Kretrying %s: %s\n", p->path, p->detail);
        return;
    }
    if (!final && t - ui->last < 0.1 && strcmp(p->event, "verified")) return;
    ui->last = t;
    if (final) {
        fprintf(stderr, "\r\033[K");
        return;
    }
    double frac = p->all_total ? (double)p->all_done / (double)p->all_total : 0;
    int w = 30, k = (int)(frac * w + 0.5);
    char bar[40];
    for (int i = 0; i < w; i++) bar[i] = i < k ? '#' : '.';
    bar[w] = '\0';
    char a[32], b[32];
    fprintf(stderr, "\r\033[K[%s] %3.0f%% %s / %s  %d/%d %.40s", bar, frac * 100, human(p->all_done, a, sizeof a),
            human(p->all_total, b, sizeof b), p->index + 1, p->n_files, p->path);
    fflush(stderr);
}

static void result_json(const ek_pull_result *r, int ok, const char *error) {
    printf("{\"event\":\"result\",\"ok\":%s,\"code\":\"%s\",\"name\":", ok ? "true" : "false",
           ek_verify_code_name(r->code));
    json_str(r->name);
    printf(",\"version\":%lld,\"signed\":%s,\"key_id\":", (long long)r->version, r->is_signed ? "true" : "false");
    json_str(r->key_id);
    printf(",\"trusted_comment\":");
    json_str(r->trusted_comment);
    printf(",\"already_installed\":%s,\"bytes_downloaded\":%llu,\"retries\":%d,\"file\":",
           r->already_installed ? "true" : "false", (unsigned long long)r->bytes_downloaded, r->retries);
    json_str(r->file);
    printf(",\"error\":");
    json_str(error ? error : "");
    printf("}\n");
}

/* pull, update and add --verify share their options. */
static int cmd_pull_like(ek_ctx *ctx, ek_registry *reg, int argc, char **argv, const char *what) {
    const char *target = NULL;
    ek_pull_options o = {0};
    progress_ui ui = {0};
    int rc, v;
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        int more = i + 1 < argc;
        if (!strcmp(a, "--verify") && !strcmp(what, "add")) continue;
        else if (!strcmp(a, "--name") && more && strcmp(what, "update")) o.expect_name = argv[++i];
        else if (!strcmp(a, "--endpoint") && more && !strcmp(what, "pull")) o.endpoint = argv[++i];
        else if (!strcmp(a, "--revision") && more && !strcmp(what, "pull")) o.revision = argv[++i];
        else if (!strcmp(a, "--alias") && more) o.alias = argv[++i];
        else if (!strcmp(a, "--allow-unsigned")) o.allow_unsigned = 1;
        else if (!strcmp(a, "--allow-legacy")) o.allow_legacy = 1;
        else if (!strcmp(a, "--allow-downgrade")) o.allow_downgrade = 1;
        else if (!strcmp(a, "--no-canaries")) o.no_canaries = 1;
        else if (!strcmp(a, "--json")) ui.json = 1;
        else if (!strcmp(a, "--connect-timeout") && more) {
            if ((rc = cli_int(CMD, a, argv[++i], 1, 3600000, &o.connect_timeout_ms))) return rc;
        } else if (!strcmp(a, "--stall-timeout") && more) {
            if ((rc = cli_int(CMD, a, argv[++i], 1, 86400, &o.stall_timeout_s))) return rc;
        } else if (!strcmp(a, "--timeout") && more) {
            if ((rc = cli_int(CMD, a, argv[++i], 1, 86400 * 7, &o.timeout_s))) return rc;
        } else if (!strcmp(a, "--retries") && more) {
            if ((rc = cli_int(CMD, a, argv[++i], 0, 100, &v))) return rc;
            o.max_retries = v ? v : -1;
        } else if (!strcmp(a, "--backoff") && more) {
            if ((rc = cli_int(CMD, a, argv[++i], 1, 600000, &o.backoff_ms))) return rc;
        } else if (a[0] == '-' && a[1]) return cli_usage(CMD, "%s: unknown option %s", what, a);
        else if (!target) target = a;
        else return cli_usage(CMD, "%s: one %s at a time", what, strcmp(what, "update") ? "source" : "model");
    }
    if (!target) return cli_usage(CMD, "%s needs a %s", what, strcmp(what, "update") ? "SOURCE" : "NAME");
    ui.tty = isatty(2);
    o.progress = on_progress;
    o.progress_arg = &ui;
    ek_pull_result res;
    ek_status st = strcmp(what, "update") ? ek_registry_pull(ctx, reg, target, &o, &res)
                                          : ek_registry_update(ctx, reg, target, &o, &res);
    if (ui.json) result_json(&res, st == EK_OK, st ? ek_ctx_last_error(ctx) : NULL);
    if (st) {
        if (res.code != EK_VERIFY_OK)
            return cli_fail(CMD, "%s: %s [%s]", what, ek_ctx_last_error(ctx), ek_verify_code_name(res.code));
        return cli_fail(CMD, "%s: %s", what, ek_ctx_last_error(ctx));
    }
    if (!ui.json) {
        char hb[32];
        if (res.already_installed)
            printf("%s@%lld is already installed%s%s\n", res.name, (long long)res.version,
                   strcmp(what, "update") ? "" : " (up to date)", o.alias ? "; alias moved" : "");
        else
            printf("%s@%lld READY: %s, %s downloaded%s%s\n", res.name, (long long)res.version,
                   res.is_signed ? "signed" : "UNSIGNED", human(res.bytes_downloaded, hb, sizeof hb),
                   o.alias ? ", alias " : "", o.alias ? o.alias : "");
        if (res.is_signed) printf("key %s, trusted comment: %s\n", res.key_id, res.trusted_comment);
    }
    return 0;
}

static int cmd_pull(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    return cmd_pull_like(ctx, reg, argc, argv, "pull");
}

static int cmd_update(ek_ctx *ctx, ek_registry *reg, int argc, char **argv) {
    return cmd_pull_like(ctx, reg, argc, argv, "update");
}

int ek_cmd_models(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    const char *sub = argv[1], *home = NULL;
    if (!strcmp(sub, "manifest")) return cmd_manifest(argc - 2, argv + 2); /* no registry involved */
    /* --home may come anywhere after the subcommand; take it out. */
    char **args = malloc(sizeof *args * (size_t)argc);
    if (!args) return cli_fail(CMD, "out of memory");
    int n = 0;
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--home")) {
            if (i + 1 >= argc) {
                free(args);
                return cli_usage(CMD, "--home needs a directory");
            }
            home = argv[++i];
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            free(args);
            usage(stdout);
            return 0;
        } else args[n++] = argv[i];
    }
    static const struct {
        const char *name;
        int (*fn)(ek_ctx *, ek_registry *, int, char **);
    } subs[] = {{"add", cmd_add},       {"list", cmd_list},   {"show", cmd_show},
                {"alias", cmd_alias},   {"rm", cmd_rm},       {"verify", cmd_verify},
                {"gc", cmd_gc},         {"log", cmd_log},
                {"pull", cmd_pull},     {"update", cmd_update}, {"verify-on-load", cmd_verify_on_load}};
    int rc = -1;
    if (!strcmp(sub, "check")) rc = cmd_check(home, n, args); /* a pipeline command: no registry here */
    for (size_t i = 0; rc == -1 && i < sizeof subs / sizeof subs[0]; i++) {
        if (strcmp(sub, subs[i].name)) continue;
        ek_ctx *ctx;
        ek_registry *reg;
        rc = open_reg(home, &ctx, &reg);
        if (!rc) {
            rc = subs[i].fn(ctx, reg, n, args);
            ek_registry_close(reg);
            ek_ctx_free(ctx);
        }
        break;
    }
    free(args);
    if (rc == -1) return cli_usage(CMD, "unknown subcommand \"%s\"", sub);
    return rc;
}
