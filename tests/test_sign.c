/* tests/test_sign.c — signed manifests without a network: the canonical
 * manifest, minisign signatures made by the real `minisign` CLI verified by
 * embedkit (each failure with its own code), trusted keys per model or
 * global, and verified installs of a local directory (extra, missing,
 * resized and altered files; unsigned; wrong key), where every refusal
 * leaves the registry and the blob store as they were. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "embedkit_pipeline.h"
#include "embedkit_registry.h"
#include "registry/sign.h"
#include "reg_snapshot.h"
#include "support.h"

static char g_dir[256];   /* keys and published models */

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[8192], *err = NULL;
    snprintf(cmd, sizeof cmd, fmt, a, b);
    int rc = ts_run(cmd, NULL, &err);
    if (rc) fail_msg("%s: rc %d: %s", cmd, rc, err ? err : "");
    free(err);
}

/* A key pair made by minisign: DIR/<name>.pub, DIR/<name>.sec. */
static void make_key(const char *name) {
    char pub[512], sec[512];
    snprintf(pub, sizeof pub, "%s/%s.pub", g_dir, name);
    snprintf(sec, sizeof sec, "%s/%s.sec", g_dir, name);
    sh("minisign -G -W -p '%s' -s '%s' < /dev/null", pub, sec);
}

/* Signs FILE with key `key` and a trusted comment; legacy with -l. */
static void sign(const char *file, const char *key, const char *comment, int legacy) {
    char cmd[4096], *err = NULL;
    snprintf(cmd, sizeof cmd, "minisign -S %s -s '%s/%s.sec' -m '%s' -t '%s' < /dev/null", legacy ? "-l" : "", g_dir,
             key, file, comment);
    int rc = ts_run(cmd, NULL, &err);
    if (rc) fail_msg("%s: %s", cmd, err ? err : "");
    free(err);
}

/* Publishes tiny-mean as name@version under DIR/<sub>, signed by key. */
static const char *publish(const char *sub, const char *name, int64_t version, const char *key) {
    static char dir[512];
    snprintf(dir, sizeof dir, "%s/%s", g_dir, sub);
    ts_rm_rf(dir);
    assert_int_equal(ts_copy_dir(ts_path(ts_models_dir(), "tiny-mean"), dir), 0);
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_manifest_write(ctx, dir, name, version, NULL), EK_OK);
    ek_ctx_free(ctx);
    if (key) {
        char comment[128];
        snprintf(comment, sizeof comment, "%s %lld by %s", name, (long long)version, key);
        sign(ts_path(dir, "manifest.json"), key, comment, 0);
    }
    return dir;
}

static char *read_text(const char *path) {
    char *t = ts_read_file(path, NULL);
    assert_non_null(t);
    return t;
}

/* ---- manifest ---- */

static void test_manifest_canonical(void **state) {
    (void)state;
    const char *a = publish("canon-a", "tiny", 3, NULL);
    char *m1 = read_text(ts_path(a, "manifest.json"));
    /* Same directory again, and a copy elsewhere: the same bytes. */
    char b[512];
    snprintf(b, sizeof b, "%s/canon-b", g_dir);
    ts_rm_rf(b);
    assert_int_equal(ts_copy_dir(a, b), 0);
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_manifest_write(ctx, a, "tiny", 3, NULL), EK_OK);
    assert_int_equal(ek_manifest_write(ctx, b, "tiny", 3, NULL), EK_OK);
    char *m2 = read_text(ts_path(a, "manifest.json")), *m3 = read_text(ts_path(b, "manifest.json"));
    assert_string_equal(m1, m2);
    assert_string_equal(m1, m3);
    assert_non_null(strstr(m1, "\"format\": \"embedkit-manifest-1\""));
    assert_non_null(strstr(m1, "{\"path\": \"1_Pooling/config.json\""));

    /* Parses back; any other spelling is refused. */
    ek_err e = {0};
    reg_manifest m;
    assert_int_equal(reg_manifest_parse(m1, strlen(m1), "m", &m, &e), 0);
    assert_string_equal(m.name, "tiny");
    assert_int_equal(m.version, 3);
    assert_true(m.n >= 10);
    assert_true(reg_manifest_find(&m, "model.safetensors") >= 0);
    reg_manifest_free(&m);
    size_t n = strlen(m1);
    char *bad = malloc(n + 64);
    snprintf(bad, n + 64, "%s ", m1); /* trailing space */
    assert_int_not_equal(reg_manifest_parse(bad, strlen(bad), "m", &m, &e), 0);
    assert_non_null(strstr(e.msg, "canonical"));
    static const char *const evil[] = {
        "{\n  \"format\": \"embedkit-manifest-1\",\n  \"name\": \"x\",\n  \"version\": 1,\n  \"files\": [\n"
        "    {\"path\": \"../etc/passwd\", \"size\": 1, \"sha256\": \"%s\"}\n  ]\n}\n",
        "{\n  \"format\": \"embedkit-manifest-1\",\n  \"name\": \"x\",\n  \"version\": 1,\n  \"files\": [\n"
        "    {\"path\": \"/abs\", \"size\": 1, \"sha256\": \"%s\"}\n  ]\n}\n",
        "{\n  \"format\": \"embedkit-manifest-1\",\n  \"name\": \"x\",\n  \"version\": 1,\n  \"files\": [\n"
        "    {\"path\": \"a//b\", \"size\": 1, \"sha256\": \"%s\"}\n  ]\n}\n",
        "{\n  \"format\": \"embedkit-manifest-1\",\n  \"name\": \"../x\",\n  \"version\": 1,\n  \"files\": [\n"
        "    {\"path\": \"a\", \"size\": 1, \"sha256\": \"%s\"}\n  ]\n}\n",
        "{\n  \"format\": \"embedkit-manifest-1\",\n  \"name\": \"x\",\n  \"version\": 0,\n  \"files\": [\n"
        "    {\"path\": \"a\", \"size\": 1, \"sha256\": \"%s\"}\n  ]\n}\n",
    };
    const char *sha = "0000000000000000000000000000000000000000000000000000000000000000";
    for (size_t i = 0; i < sizeof evil / sizeof evil[0]; i++) {
        snprintf(bad, n + 64, evil[i], sha);
        assert_int_not_equal(reg_manifest_parse(bad, strlen(bad), "m", &m, &e), 0);
    }
    /* Listed twice. */
    const char *dup = "{\n  \"format\": \"embedkit-manifest-1\",\n  \"name\": \"x\",\n  \"version\": 1,\n  \"files\": [\n"
                      "    {\"path\": \"a\", \"size\": 1, \"sha256\": \"%s\"},\n"
                      "    {\"path\": \"a\", \"size\": 1, \"sha256\": \"%s\"}\n  ]\n}\n";
    snprintf(bad, n + 64, dup, sha, sha);
    assert_int_not_equal(reg_manifest_parse(bad, strlen(bad), "m", &m, &e), 0);
    assert_non_null(strstr(e.msg, "twice"));
    free(bad);
    free(m1);
    free(m2);
    free(m3);
    ek_ctx_free(ctx);
}

/* ---- minisign ---- */

static void test_minisign_compat(void **state) {
    (void)state;
    char file[512], sig[600], pub[512];
    snprintf(file, sizeof file, "%s/msg.txt", g_dir);
    snprintf(sig, sizeof sig, "%s.minisig", file);
    snprintf(pub, sizeof pub, "%s/alice.pub", g_dir);
    assert_int_equal(ts_write_file(file, "hello, signed world\n", 20), 0);
    sign(file, "alice", "release 1", 0);
    char *ptext = read_text(pub), *stext = read_text(sig);
    ek_err e = {0};
    reg_pubkey k;
    char comment[256];
    assert_int_equal(reg_pubkey_parse(ptext, &k, comment, sizeof comment, &e), 0);
    char id[17];
    reg_key_id_hex(k.id, id);
    /* minisign writes "minisign public key <ID>" as the key's comment,
     * formatted with %llX: without the leading zeros our 16-digit form has
     * (1 key in 16 starts with a zero nibble). */
    const char *trimmed = id;
    while (trimmed[0] == '0' && trimmed[1]) trimmed++;
    if (!strstr(comment, trimmed)) fail_msg("key comment \"%s\" does not contain the key id %s", comment, id);
    reg_sig s;
    ek_verify_code code;
    assert_int_equal(reg_sig_parse(stext, strlen(stext), &s, &code, &e), 0);
    assert_string_equal(s.trusted, "release 1");
    assert_int_equal(reg_sig_verify(&s, &k, "hello, signed world\n", 20, 0, &code, &e), 0);
    assert_int_equal(code, EK_VERIFY_OK);
    /* The message changed. */
    assert_int_not_equal(reg_sig_verify(&s, &k, "hello, signed world!", 20, 0, &code, &e), 0);
    assert_int_equal(code, EK_VERIFY_BAD_SIGNATURE);
    /* The trusted comment edited. */
    reg_sig s2 = s;
    snprintf(s2.trusted, sizeof s2.trusted, "release 2");
    assert_int_not_equal(reg_sig_verify(&s2, &k, "hello, signed world\n", 20, 0, &code, &e), 0);
    assert_int_equal(code, EK_VERIFY_BAD_TRUSTED_COMMENT);
    assert_non_null(strstr(e.msg, "trusted comment"));
    /* Another key. */
    char *btext = read_text(ts_path(g_dir, "bob.pub"));
    reg_pubkey kb;
    assert_int_equal(reg_pubkey_parse(btext, &kb, NULL, 0, &e), 0);
    assert_int_not_equal(reg_sig_verify(&s, &kb, "hello, signed world\n", 20, 0, &code, &e), 0);
    assert_int_equal(code, EK_VERIFY_UNTRUSTED_KEY);
    /* Legacy: refused unless allowed. */
    sign(file, "alice", "legacy one", 1);
    free(stext);
    stext = read_text(sig);
    assert_int_equal(reg_sig_parse(stext, strlen(stext), &s, &code, &e), 0);
    assert_int_equal(s.alg[1], 'd');
    assert_int_not_equal(reg_sig_verify(&s, &k, "hello, signed world\n", 20, 0, &code, &e), 0);
    assert_int_equal(code, EK_VERIFY_LEGACY);
    assert_int_equal(reg_sig_verify(&s, &k, "hello, signed world\n", 20, 1, &code, &e), 0);
    /* Malformed: lines missing, lengths wrong, bad prefixes. */
    static const char *const bad[] = {
        "untrusted comment: x\nRWQ=\ntrusted comment: t\nAAAA\n",
        "untrusted comment: x\n",
        "x\ny\nz\nw\n",
        "untrusted comment: x\nRUR8vvzO4COk04T3zCmLR6qsNlz351JTx+4FmGwW2cLb6JFQWYOsLBBaUo4dForsWIWPLtizF7+ur3FRZBbjP4pM8pLPQRSY2wY=\n"
        "untrusted comment: t\n5ver055cr0dK6cXgwLTy6UTWlKs28rX3xVdWZlSb+3jpCy+XMsBO/p4sNJRfJMEm6turIxulRA+ky7n6o5hAAQ==\n",
        "untrusted comment: x\nRUR8vvzO4COk04T3zCmLR6qsNlz351JTx+4FmGwW2cLb6JFQWYOsLBBaUo4dForsWIWPLtizF7+ur3FRZBbjP4pM8pLPQRSY2wY=\n"
        "trusted comment: t\n5ver055cr0dK6cXgwLTy6UTWlKs28rX3xVdWZlSb+3jpCy+XMsBO/p4sNJRfJMEm6turIxulRA+ky7n6o5hA\n",
        "untrusted comment: x\nRUR8vvzO4COk04T3zCmLR6qsNlz351JTx+4FmGwW2cLb6JFQWYOsLBBaUo4dForsWIWPLtizF7+ur3FRZBbjP4pM8pLPQRSY2wY=\n"
        "trusted comment: t\n5ver055cr0dK6cXgwLTy6UTWlKs28rX3xVdWZlSb+3jpCy+XMsBO/p4sNJRfJMEm6turIxulRA+ky7n6o5hAAQ==\nextra\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_not_equal(reg_sig_parse(bad[i], strlen(bad[i]), &s, &code, &e), 0);
        assert_int_equal(code, EK_VERIFY_MALFORMED_SIGNATURE);
    }
    assert_int_not_equal(reg_pubkey_parse("untrusted comment: x\nRWQ=\n", &k, NULL, 0, &e), 0);
    assert_int_not_equal(reg_pubkey_parse("not base64 at all!", &k, NULL, 0, &e), 0);
    free(ptext);
    free(stext);
    free(btext);
}

/* ---- registry snapshots ---- */

typedef struct reg_env {
    char home[256];
    ek_ctx *ctx;
    ek_registry *reg;
} reg_env;

static void env_open(reg_env *v) {
    snprintf(v->home, sizeof v->home, "%s", ts_mkdtemp());
    assert_int_equal(ek_ctx_new(&v->ctx), EK_OK);
    assert_int_equal(ek_registry_open(v->ctx, v->home, NULL, &v->reg), EK_OK);
}

static void env_close(reg_env *v) {
    ek_registry_close(v->reg);
    ek_ctx_free(v->ctx);
    ts_rm_rf(v->home);
}

static void trust(reg_env *v, const char *key, const char *model) {
    char *t = read_text(ts_path(g_dir, key));
    if (ek_keys_add(v->ctx, v->reg, t, model, NULL)) fail_msg("%s", ek_ctx_last_error(v->ctx));
    free(t);
}

/* A pull that must be refused with code, changing nothing. */
static void refused(reg_env *v, const char *src, const ek_pull_options *o, ek_verify_code code, const char *file,
                    const char *needle) {
    char *before = ts_registry_snapshot(v->home);
    ek_pull_result res;
    ek_status st = ek_registry_pull(v->ctx, v->reg, src, o, &res);
    if (st == EK_OK) fail_msg("%s: installed, expected %s", src, ek_verify_code_name(code));
    if (res.code != code)
        fail_msg("%s: %s (%s), expected %s", src, ek_verify_code_name(res.code), ek_ctx_last_error(v->ctx),
                 ek_verify_code_name(code));
    if (file) assert_string_equal(res.file, file);
    if (needle && !strstr(ek_ctx_last_error(v->ctx), needle))
        fail_msg("message \"%s\" lacks \"%s\"", ek_ctx_last_error(v->ctx), needle);
    char *after = ts_registry_snapshot(v->home);
    assert_non_null(before);
    assert_non_null(after);
    assert_string_equal(before, after);
    free(before);
    free(after);
}

static void test_keys(void **state) {
    (void)state;
    reg_env v;
    env_open(&v);
    trust(&v, "alice.pub", NULL);
    trust(&v, "bob.pub", "other");
    ek_trusted_key *k;
    size_t n;
    assert_int_equal(ek_keys_list(v.ctx, v.reg, &k, &n), EK_OK);
    assert_int_equal(n, 2);
    assert_string_equal(k[0].scope, "");
    assert_string_equal(k[1].scope, "other");
    assert_int_equal(strlen(k[0].key_id), 16);
    char alice[17];
    memcpy(alice, k[0].key_id, 17);
    free(k);
    /* Twice: refused. */
    char *t = read_text(ts_path(g_dir, "alice.pub"));
    assert_int_not_equal(ek_keys_add(v.ctx, v.reg, t, NULL, NULL), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(v.ctx), "already trusted"));
    assert_int_not_equal(ek_keys_add(v.ctx, v.reg, "garbage", NULL, NULL), EK_OK);
    free(t);
    size_t removed;
    assert_int_equal(ek_keys_remove(v.ctx, v.reg, alice, NULL, &removed), EK_OK);
    assert_int_equal(removed, 1);
    assert_int_not_equal(ek_keys_remove(v.ctx, v.reg, alice, NULL, &removed), EK_OK);
    assert_int_not_equal(ek_keys_remove(v.ctx, v.reg, "nothex", NULL, &removed), EK_OK);
    env_close(&v);
}

static void test_verified_local_install(void **state) {
    (void)state;
    reg_env v;
    env_open(&v);
    char good[512];
    snprintf(good, sizeof good, "%s", publish("good", "tiny", 2, "alice"));
    ek_pull_options o = {.no_canaries = 1};

    /* No trusted key yet: refused. */
    refused(&v, good, &o, EK_VERIFY_UNTRUSTED_KEY, "manifest.json.minisig", "not trusted");
    /* Bob is trusted for another model only. */
    trust(&v, "bob.pub", "other");
    const char *bobs = publish("bobs", "tiny", 2, "bob");
    refused(&v, bobs, &o, EK_VERIFY_UNTRUSTED_KEY, "manifest.json.minisig", "only for model other");
    trust(&v, "alice.pub", NULL);

    ek_pull_result res;
    if (ek_registry_pull(v.ctx, v.reg, good, &o, &res)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    assert_string_equal(res.name, "tiny");
    assert_int_equal(res.version, 2);
    assert_true(res.is_signed);
    assert_string_equal(res.trusted_comment, "tiny 2 by alice");
    ek_reg_provenance pv;
    assert_int_equal(ek_registry_provenance(v.ctx, v.reg, "tiny", 2, &pv), EK_OK);
    assert_true(pv.recorded && pv.is_signed);
    assert_string_equal(pv.trusted_comment, "tiny 2 by alice");
    ek_reg_version info;
    assert_int_equal(ek_registry_lookup(v.ctx, v.reg, "tiny@2", &info), EK_OK);
    assert_string_equal(info.status, "READY");
    /* The signed manifest is kept with the version. */
    char path[4096];
    snprintf(path, sizeof path, "%s/models/tiny/2/manifest.json.minisig", v.home);
    assert_int_equal(access(path, R_OK), 0);
    /* Again: nothing to do. */
    assert_int_equal(ek_registry_pull(v.ctx, v.reg, good, &o, &res), EK_OK);
    assert_true(res.already_installed);

    /* Each way a published directory can be wrong, at version 3. */
    char d[512];
    snprintf(d, sizeof d, "%s", publish("bad", "tiny", 3, "alice"));
    char f[1024];
    snprintf(f, sizeof f, "%s/extra.bin", d);
    assert_int_equal(ts_write_file(f, "x", 1), 0);
    refused(&v, d, &o, EK_VERIFY_EXTRA_FILE, "extra.bin", "extra file extra.bin");
    unlink(f);
    snprintf(f, sizeof f, "%s/vocab.txt", d);
    size_t len;
    char *vocab = ts_read_file(f, &len);
    unlink(f);
    refused(&v, d, &o, EK_VERIFY_MISSING_FILE, "vocab.txt", "vocab.txt");
    assert_int_equal(ts_write_file(f, vocab, len - 1), 0);
    refused(&v, d, &o, EK_VERIFY_SIZE_MISMATCH, "vocab.txt", "the manifest says");
    vocab[10] ^= 1;
    assert_int_equal(ts_write_file(f, vocab, len), 0);
    refused(&v, d, &o, EK_VERIFY_DIGEST_MISMATCH, "vocab.txt", "SHA-256");
    vocab[10] ^= 1;
    assert_int_equal(ts_write_file(f, vocab, len), 0);
    free(vocab);
    /* The manifest edited after signing. */
    snprintf(f, sizeof f, "%s/manifest.json", d);
    char *man = ts_read_file(f, &len);
    char *p = strstr(man, "\"version\": 3");
    p[11] = '4';
    assert_int_equal(ts_write_file(f, man, len), 0);
    refused(&v, d, &o, EK_VERIFY_BAD_SIGNATURE, "manifest.json.minisig", "does not match");
    p[11] = '3';
    assert_int_equal(ts_write_file(f, man, len), 0);
    free(man);
    /* The trusted comment edited. */
    snprintf(f, sizeof f, "%s/manifest.json.minisig", d);
    char *sig = ts_read_file(f, &len);
    char *tc = strstr(sig, "tiny 3 by alice");
    tc[5] = '9';
    assert_int_equal(ts_write_file(f, sig, len), 0);
    refused(&v, d, &o, EK_VERIFY_BAD_TRUSTED_COMMENT, "manifest.json.minisig", "trusted comment");
    free(sig);
    /* Legacy signature. */
    sign(ts_path(d, "manifest.json"), "alice", "tiny 3 legacy", 1);
    refused(&v, d, &o, EK_VERIFY_LEGACY, "manifest.json.minisig", "legacy");
    /* Unsigned. */
    unlink(f);
    refused(&v, d, &o, EK_VERIFY_UNSIGNED, "manifest.json.minisig", "unsigned");
    /* Another model's name expected. */
    sign(ts_path(d, "manifest.json"), "alice", "tiny 3", 0);
    ek_pull_options named = o;
    named.expect_name = "bert";
    refused(&v, d, &named, EK_VERIFY_NAME_MISMATCH, "manifest.json", "not \"bert\"");
    /* An older version than the highest seen. */
    const char *old = publish("old", "tiny", 1, "alice");
    refused(&v, old, &o, EK_VERIFY_ROLLBACK, "manifest.json", "rollback");
    /* Unsigned but allowed: installed, recorded unsigned. */
    unlink(f);
    ek_pull_options un = o;
    un.allow_unsigned = 1;
    if (ek_registry_pull(v.ctx, v.reg, d, &un, &res)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    assert_false(res.is_signed);
    assert_int_equal(ek_registry_provenance(v.ctx, v.reg, "tiny", 3, &pv), EK_OK);
    assert_true(pv.recorded);
    assert_false(pv.is_signed);
    /* The old version still resolves and loads. */
    char dir[4096];
    assert_int_equal(ek_registry_resolve(v.ctx, v.home, "tiny@2", dir, sizeof dir), EK_OK);
    ek_model *m;
    assert_int_equal(ek_model_load(v.ctx, dir, &m), EK_OK);
    ek_model_free(m);
    env_close(&v);
}

static void test_cli(void **state) {
    (void)state;
    char home[256], cmd[8192], *out = NULL, *err = NULL;
    snprintf(home, sizeof home, "%s", ts_mkdtemp());
    const char *d = publish("cli", "clitiny", 5, NULL);
    snprintf(cmd, sizeof cmd, "'%s' models manifest '%s' --name clitiny --version 5 && cat '%s/manifest.json'",
             ts_ek_bin(), d, d);
    assert_int_equal(ts_run(cmd, &out, NULL), 0);
    char *first = out;
    assert_int_equal(ts_run(cmd, &out, NULL), 0);
    assert_string_equal(strstr(first, "{"), strstr(out, "{"));
    free(first);
    free(out);
    sign(ts_path(d, "manifest.json"), "alice", "clitiny five", 0);
    /* Signatures made by minisign check with minisign too (sanity of the fixture). */
    snprintf(cmd, sizeof cmd, "minisign -V -p '%s/alice.pub' -m '%s/manifest.json' -q", g_dir, d);
    assert_int_equal(ts_run(cmd, NULL, NULL), 0);
    snprintf(cmd, sizeof cmd, "'%s' keys add '%s/alice.pub' --home '%s' && '%s' keys list --home '%s'", ts_ek_bin(),
             g_dir, home, ts_ek_bin(), home);
    assert_int_equal(ts_run(cmd, &out, &err), 0);
    assert_non_null(strstr(out, "(every model)"));
    free(out);
    free(err);
    /* A refusal names its code. */
    snprintf(cmd, sizeof cmd, "echo x > '%s/stray' && '%s' models add '%s' --verify --home '%s'", d, ts_ek_bin(), d,
             home);
    assert_int_equal(ts_run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "EK_VERIFY_EXTRA_FILE"));
    snprintf(cmd, sizeof cmd, "rm '%s/stray'", d);
    assert_int_equal(ts_run(cmd, NULL, NULL), 0);
    free(out);
    free(err);
    snprintf(cmd, sizeof cmd, "'%s' models add '%s' --verify --no-canaries --home '%s' && '%s' models show clitiny "
             "--home '%s' && '%s' models list --json --home '%s'", ts_ek_bin(), d, home, ts_ek_bin(), home,
             ts_ek_bin(), home);
    int rc = ts_run(cmd, &out, &err);
    if (rc) fail_msg("%s: %s", cmd, err);
    assert_non_null(strstr(out, "clitiny@5 READY: signed"));
    assert_non_null(strstr(out, "trusted comment: clitiny five"));
    assert_non_null(strstr(out, "\"signed\":true"));
    free(out);
    free(err);
    ts_rm_rf(home);
}


/* ---- re-verification after install: health check and load ---- */

/* ek_registry_verify_signature must fail with code and file; the check
 * (asked explicitly) is unhealthy with them; resolve and a pool load with
 * verification refuse it naming the code. */
static void reverify_fails(reg_env *v, const char *ref, ek_verify_code code, const char *file) {
    ek_sig_report sr;
    if (ek_registry_verify_signature(v->ctx, v->reg, ref, 0, &sr) == EK_OK)
        fail_msg("%s verifies, expected %s", ref, ek_verify_code_name(code));
    if (sr.code != code)
        fail_msg("%s: %s (%s), expected %s", ref, ek_verify_code_name(sr.code), ek_ctx_last_error(v->ctx),
                 ek_verify_code_name(code));
    assert_string_equal(sr.file, file);
    assert_string_equal(sr.state, "failed");
    assert_non_null(strstr(ek_ctx_last_error(v->ctx), ek_verify_code_name(code)));
    assert_non_null(strstr(ek_ctx_last_error(v->ctx), file));
    ek_check_options co = {.verify_signature = 1};
    ek_health h;
    assert_int_equal(ek_registry_check_opts(v->ctx, v->reg, ref, &co, &h), EK_OK);
    assert_string_equal(h.result, "unhealthy");
    assert_string_equal(h.signature, "failed");
    assert_int_equal(h.signature_code, (int)code);
    assert_string_equal(h.signature_file, file);
    assert_non_null(strstr(h.reason, ek_verify_code_name(code)));
    /* Load: off by default, refused when asked for. */
    char dir[4096];
    assert_int_equal(ek_registry_resolve(v->ctx, v->home, ref, dir, sizeof dir), EK_OK);
    assert_int_not_equal(ek_registry_resolve_opts(v->ctx, v->home, ref, EK_SIG_SIGNED, dir, sizeof dir), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(v->ctx), ek_verify_code_name(code)));
    assert_non_null(strstr(ek_ctx_last_error(v->ctx), file));
    ek_pool *pool;
    ek_pool_handle *hd = NULL;
    assert_int_equal(ek_pool_new(v->ctx, v->home, 0, &pool), EK_OK);
    ek_pool_set_verify(pool, EK_SIG_SIGNED);
    assert_int_not_equal(ek_pool_acquire(v->ctx, pool, ref, &hd), EK_OK);
    assert_null(hd);
    assert_non_null(strstr(ek_ctx_last_error(v->ctx), ek_verify_code_name(code)));
    ek_pool_free(pool);
    /* By the registry setting: the plain resolve refuses it too. */
    assert_int_equal(ek_registry_set_verify_on_load(v->ctx, v->reg, EK_SIG_SIGNED), EK_OK);
    assert_int_not_equal(ek_registry_resolve(v->ctx, v->home, ref, dir, sizeof dir), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(v->ctx), ek_verify_code_name(code)));
    assert_int_equal(ek_registry_check(v->ctx, v->reg, ref, 0, &h), EK_OK);
    assert_string_equal(h.result, "unhealthy");
    assert_int_equal(h.signature_code, (int)code);
    assert_int_equal(ek_registry_set_verify_on_load(v->ctx, v->reg, EK_SIG_OFF), EK_OK);
}

static void reverify_ok(reg_env *v, const char *ref) {
    ek_sig_report sr;
    if (ek_registry_verify_signature(v->ctx, v->reg, ref, 1, &sr)) fail_msg("%s", ek_ctx_last_error(v->ctx));
    assert_string_equal(sr.state, "verified");
    assert_true(sr.files_checked >= 10);
    char dir[4096];
    if (ek_registry_resolve_opts(v->ctx, v->home, ref, EK_SIG_REQUIRED, dir, sizeof dir))
        fail_msg("%s", ek_ctx_last_error(v->ctx));
}

/* Rewrites a stored file in place (it is a link to its blob: the blob
 * changes too); returns the original bytes. */
static char *tamper(const char *path, const char *find, const char *repl, size_t *len) {
    char *orig = ts_read_file(path, len);
    assert_non_null(orig);
    char *t = malloc(*len + 1);
    memcpy(t, orig, *len + 1);
    char *p = find ? strstr(t, find) : t + 10;
    assert_non_null(p);
    if (find) memcpy(p, repl, strlen(repl));
    else *p ^= 1;
    assert_int_equal(chmod(path, 0644), 0);
    assert_int_equal(ts_write_file(path, t, *len), 0);
    free(t);
    return orig;
}

static void untamper(const char *path, char *orig, size_t len) {
    assert_int_equal(ts_write_file(path, orig, len), 0);
    assert_int_equal(chmod(path, 0444), 0);
    free(orig);
}

static void test_reverify(void **state) {
    (void)state;
    reg_env v;
    env_open(&v);
    trust(&v, "alice.pub", NULL);
    const char *good = publish("rv", "tiny", 2, "alice");
    ek_pull_options o = {0};
    ek_pull_result res;
    if (ek_registry_pull(v.ctx, v.reg, good, &o, &res)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    ek_sig_policy pol;
    assert_int_equal(ek_registry_get_verify_on_load(v.ctx, v.reg, &pol), EK_OK);
    assert_int_equal(pol, EK_SIG_OFF);

    /* A signed install passes: the check, resolve, the pool. */
    reverify_ok(&v, "tiny@2");
    ek_check_options co = {.verify_signature = 1};
    ek_health h;
    assert_int_equal(ek_registry_check_opts(v.ctx, v.reg, "tiny@2", &co, &h), EK_OK);
    if (strcmp(h.result, "healthy")) fail_msg("%s: %s", h.result, h.reason);
    assert_string_equal(h.signature, "verified");
    assert_string_equal(h.key_id, res.key_id);
    /* Without the option or the setting, no signature check. */
    assert_int_equal(ek_registry_check(v.ctx, v.reg, "tiny@2", 0, &h), EK_OK);
    assert_string_equal(h.signature, "");
    ek_pool *pool;
    ek_pool_handle *hd;
    assert_int_equal(ek_registry_set_verify_on_load(v.ctx, v.reg, EK_SIG_REQUIRED), EK_OK);
    assert_int_equal(ek_pool_new(v.ctx, v.home, 0, &pool), EK_OK);
    if (ek_pool_acquire(v.ctx, pool, "tiny@2", &hd)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    ek_pool_release(hd);
    ek_pool_free(pool);

    /* Unsigned versions: reported as unsigned, failures only when required. */
    int64_t uv;
    ek_import_options io = {.no_canaries = 1};
    assert_int_equal(ek_registry_import(v.ctx, v.reg, ts_path(ts_models_dir(), "tiny-mean"), "plain", &io, &uv),
                     EK_OK);
    char dir[4096];
    assert_int_not_equal(ek_registry_resolve(v.ctx, v.home, "plain", dir, sizeof dir), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(v.ctx), "EK_VERIFY_UNSIGNED"));
    assert_int_equal(ek_registry_check(v.ctx, v.reg, "plain", 0, &h), EK_OK);
    assert_string_equal(h.result, "unhealthy");
    assert_string_equal(h.signature, "unsigned");
    assert_int_equal(h.signature_code, EK_VERIFY_UNSIGNED);
    assert_int_equal(ek_registry_set_verify_on_load(v.ctx, v.reg, EK_SIG_SIGNED), EK_OK);
    if (ek_registry_resolve(v.ctx, v.home, "plain", dir, sizeof dir)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    assert_int_equal(ek_registry_check(v.ctx, v.reg, "plain", 0, &h), EK_OK);
    assert_string_equal(h.signature, "unsigned");
    assert_string_not_equal(h.result, "unhealthy"); /* degraded: no canaries */
    ek_sig_report sr;
    assert_int_equal(ek_registry_verify_signature(v.ctx, v.reg, "plain", 0, &sr), EK_OK);
    assert_string_equal(sr.state, "unsigned");
    assert_int_not_equal(ek_registry_verify_signature(v.ctx, v.reg, "plain", 1, &sr), EK_OK);
    assert_int_equal(sr.code, EK_VERIFY_UNSIGNED);
    assert_int_equal(ek_registry_set_verify_on_load(v.ctx, v.reg, EK_SIG_OFF), EK_OK);

    /* The key withdrawn after the install. */
    size_t removed;
    assert_int_equal(ek_keys_remove(v.ctx, v.reg, res.key_id, NULL, &removed), EK_OK);
    reverify_fails(&v, "tiny@2", EK_VERIFY_UNTRUSTED_KEY, "manifest.json.minisig");
    /* Trusted for another model only. */
    trust(&v, "alice.pub", "other");
    reverify_fails(&v, "tiny@2", EK_VERIFY_UNTRUSTED_KEY, "manifest.json.minisig");
    assert_int_equal(ek_keys_remove(v.ctx, v.reg, res.key_id, NULL, &removed), EK_OK);
    trust(&v, "alice.pub", NULL);
    reverify_ok(&v, "tiny@2");

    /* The stored manifest edited. */
    char path[4096];
    size_t len;
    snprintf(path, sizeof path, "%s/models/tiny/2/manifest.json", v.home);
    char *orig = tamper(path, "\"version\": 2", "\"version\": 7", &len);
    reverify_fails(&v, "tiny@2", EK_VERIFY_BAD_SIGNATURE, "manifest.json");
    untamper(path, orig, len);
    reverify_ok(&v, "tiny@2");
    /* The signature's trusted comment edited. */
    snprintf(path, sizeof path, "%s/models/tiny/2/manifest.json.minisig", v.home);
    orig = tamper(path, "tiny 2 by alice", "tiny 9 by alice", &len);
    reverify_fails(&v, "tiny@2", EK_VERIFY_BAD_TRUSTED_COMMENT, "manifest.json.minisig");
    untamper(path, orig, len);
    /* A blob changed (same size). */
    snprintf(path, sizeof path, "%s/models/tiny/2/vocab.txt", v.home);
    orig = tamper(path, NULL, NULL, &len);
    reverify_fails(&v, "tiny@2", EK_VERIFY_DIGEST_MISMATCH, "vocab.txt");
    untamper(path, orig, len);
    reverify_ok(&v, "tiny@2");
    env_close(&v);
}

static void test_reverify_cli(void **state) {
    (void)state;
    char home[256], cmd[8192], *out = NULL, *err = NULL;
    snprintf(home, sizeof home, "%s", ts_mkdtemp());
    const char *d = publish("rvcli", "rvtiny", 1, "alice");
    snprintf(cmd, sizeof cmd, "'%s' keys add '%s/alice.pub' --home '%s' && '%s' models pull '%s' --home '%s' && "
             "'%s' models check rvtiny --verify-signature --json --home '%s' && "
             "'%s' models verify rvtiny --signature --home '%s' && '%s' models verify-on-load required --home '%s'",
             ts_ek_bin(), g_dir, home, ts_ek_bin(), d, home, ts_ek_bin(), home, ts_ek_bin(), home, ts_ek_bin(), home);
    int rc = ts_run(cmd, &out, &err);
    if (rc) fail_msg("%s: %s", cmd, err);
    assert_non_null(strstr(out, "\"signature\":\"verified\""));
    assert_non_null(strstr(out, "signature verified (key"));
    assert_non_null(strstr(out, "verify_on_load: required"));
    free(out);
    free(err);
    /* The key withdrawn: the check (by the setting) is unhealthy, exit 4. */
    snprintf(cmd, sizeof cmd, "'%s' keys rm \"$('%s' keys list --json --home '%s' | grep -o '[0-9A-F]\\{16\\}' | "
             "head -1)\" --home '%s' && '%s' models check rvtiny --home '%s'", ts_ek_bin(), ts_ek_bin(), home, home,
             ts_ek_bin(), home);
    rc = ts_run(cmd, &out, &err);
    if (rc != 4) fail_msg("%s: rc %d: %s %s", cmd, rc, out, err);
    assert_non_null(strstr(out, "EK_VERIFY_UNTRUSTED_KEY"));
    free(out);
    free(err);
    ts_rm_rf(home);
}

/* ---- registry.verify_on_load end to end, through the pipeline ---- */

static ek_status run_load(ek_engine *en, ek_ctx *ctx, ek_cmd_type type, const char *name, const char *ref,
                          char *msg, size_t cap) {
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, type, name);
    cmd.u.load.ref = ref;
    ek_cmd_ctx_init(&cx, ctx);
    ek_status st = ek_engine_execute(en, &cmd, &cx);
    snprintf(msg, cap, "%s", st ? cx.message : "");
    return st;
}

static void embed_one(ek_engine *en, ek_ctx *ctx, const char *model, float *out, size_t cap) {
    const char *text = "verified on load";
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_embed_text(&cmd, model, text, strlen(text), out, cap);
    ek_cmd_ctx_init(&cx, ctx);
    if (ek_engine_execute(en, &cmd, &cx)) fail_msg("embed: %s", cx.message);
}

static ek_engine *engine_with(ek_ctx *ctx, const char *home, const char *verify) {
    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.threads = 1;
    cfg.cache_max_bytes = 0; /* every embed runs the model it names */
    snprintf(cfg.registry_home, sizeof cfg.registry_home, "%s", home);
    snprintf(cfg.registry_verify_on_load, sizeof cfg.registry_verify_on_load, "%s", verify);
    ek_engine_options o = {.config = &cfg};
    ek_engine *en;
    if (ek_engine_new(ctx, &o, &en)) fail_msg("engine: %s", ek_ctx_last_error(ctx));
    return en;
}

/* The pipeline key registry.verify_on_load reaches LOAD and SWAP: with
 * "signed", a version whose signed manifest was edited after install is
 * refused by both, naming the check that failed, and the model already
 * loaded under that name keeps serving; with "off" the same version loads;
 * once repaired, the swap goes through. */
static void test_pipeline_verify_on_load(void **state) {
    (void)state;
    reg_env v;
    env_open(&v);
    trust(&v, "alice.pub", NULL);
    ek_pull_options o = {.no_canaries = 1};
    ek_pull_result res;
    if (ek_registry_pull(v.ctx, v.reg, publish("pl1", "tiny", 1, "alice"), &o, &res) ||
        ek_registry_pull(v.ctx, v.reg, publish("pl2", "tiny", 2, "alice"), &o, &res))
        fail_msg("%s", ek_ctx_last_error(v.ctx));
    ek_engine *en = engine_with(v.ctx, v.home, "signed");
    char msg[1024];
    if (run_load(en, v.ctx, EK_CMD_LOAD_MODEL, "m", "tiny@1", msg, sizeof msg)) fail_msg("load: %s", msg);
    float before[1024] = {0}, after[1024] = {0};
    embed_one(en, v.ctx, "m", before, 1024);

    char path[4096];
    snprintf(path, sizeof path, "%s/models/tiny/2/manifest.json", v.home);
    size_t len;
    char *orig = tamper(path, "\"version\": 2", "\"version\": 7", &len);
    assert_int_equal(run_load(en, v.ctx, EK_CMD_SWAP_MODEL, "m", "tiny@2", msg, sizeof msg), EK_ERR_FORMAT);
    assert_non_null(strstr(msg, "EK_VERIFY_BAD_SIGNATURE"));
    assert_non_null(strstr(msg, "manifest.json"));
    assert_int_not_equal(run_load(en, v.ctx, EK_CMD_LOAD_MODEL, "m2", "tiny@2", msg, sizeof msg), EK_OK);
    assert_non_null(strstr(msg, "EK_VERIFY_BAD_SIGNATURE"));
    embed_one(en, v.ctx, "m", after, 1024); /* still tiny@1 */
    assert_memory_equal(before, after, sizeof before);

    /* The same engine configuration with the check off loads it. */
    ek_engine *off = engine_with(v.ctx, v.home, "off");
    if (run_load(off, v.ctx, EK_CMD_LOAD_MODEL, "m", "tiny@2", msg, sizeof msg)) fail_msg("off: %s", msg);
    ek_engine_free(off);
    /* The library call the engine uses: the caller's policy on top of the
     * registry's own (off here). */
    ek_model *lm = NULL;
    if (ek_registry_load_model(v.ctx, v.reg, "tiny@2", NULL, &lm)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    ek_model_free(lm);
    lm = NULL;
    assert_int_equal(ek_registry_load_model_verified(v.ctx, v.reg, "tiny@2", EK_SIG_SIGNED, NULL, &lm), EK_ERR_FORMAT);
    assert_null(lm);
    assert_non_null(strstr(ek_ctx_last_error(v.ctx), "EK_VERIFY_BAD_SIGNATURE"));
    if (ek_registry_load_model_verified(v.ctx, v.reg, "tiny@1", EK_SIG_REQUIRED, NULL, &lm))
        fail_msg("%s", ek_ctx_last_error(v.ctx));
    ek_model_free(lm);

    untamper(path, orig, len);
    if (run_load(en, v.ctx, EK_CMD_SWAP_MODEL, "m", "tiny@2", msg, sizeof msg)) fail_msg("swap: %s", msg);
    ek_engine_free(en);
    env_close(&v);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_dir, sizeof g_dir, "%s", ts_mkdtemp());
    make_key("alice");
    make_key("bob");
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ts_rm_rf(g_dir);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_manifest_canonical),
        cmocka_unit_test(test_minisign_compat),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_verified_local_install),
        cmocka_unit_test(test_cli),
        cmocka_unit_test(test_reverify),
        cmocka_unit_test(test_reverify_cli),
        cmocka_unit_test(test_pipeline_verify_on_load),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
