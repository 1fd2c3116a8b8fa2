/* tests/test_download.c — `ek models pull` / `update` against a real HTTP
 * server on loopback (tests/http_server.c) that injects faults, with models
 * signed by the real `minisign` CLI.  Every refused pull must leave the
 * registry and the blob store exactly as they were, with the previous
 * version still served. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "embedkit_registry.h"
#include "http_server.h"
#include "reg_snapshot.h"
#include "support.h"

static char g_root[256];   /* what the server serves */
static char g_keys[256];
static hs_server *g_srv;

static void sh(const char *cmd) {
    char *err = NULL;
    int rc = ts_run(cmd, NULL, &err);
    if (rc) fail_msg("%s: rc %d: %s", cmd, rc, err ? err : "");
    free(err);
}

/* Publishes tiny-mean as name@version at ROOT/<sub>, signed by key (NULL:
 * unsigned), legacy signature when legacy. */
static void publish(const char *sub, const char *name, int64_t version, const char *key, int legacy) {
    char dir[512], cmd[4096];
    snprintf(dir, sizeof dir, "%s/%s", g_root, sub);
    ts_rm_rf(dir);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && cp -r '%s' '%s'", dir,
             ts_path(ts_models_dir(), "tiny-mean"), dir);
    sh(cmd);
    ek_ctx *ctx;
    assert_int_equal(ek_ctx_new(&ctx), EK_OK);
    assert_int_equal(ek_manifest_write(ctx, dir, name, version, NULL), EK_OK);
    ek_ctx_free(ctx);
    if (key) {
        snprintf(cmd, sizeof cmd, "minisign -S %s -s '%s/%s.sec' -m '%s/manifest.json' -t '%s %lld' < /dev/null",
                 legacy ? "-l" : "", g_keys, key, dir, name, (long long)version);
        sh(cmd);
    }
}

static const char *url(const char *sub) {
    static char buf[4][512];
    static int i;
    char *p = buf[i++ & 3];
    snprintf(p, 512, "%s/%s", hs_url(g_srv), sub);
    return p;
}

typedef struct env {
    char home[256];
    ek_ctx *ctx;
    ek_registry *reg;
} env;

static void env_open(env *v) {
    snprintf(v->home, sizeof v->home, "%s", ts_mkdtemp());
    assert_int_equal(ek_ctx_new(&v->ctx), EK_OK);
    assert_int_equal(ek_registry_open(v->ctx, v->home, NULL, &v->reg), EK_OK);
    char *t = ts_read_file(ts_path(g_keys, "alice.pub"), NULL);
    assert_non_null(t);
    assert_int_equal(ek_keys_add(v->ctx, v->reg, t, NULL, NULL), EK_OK);
    free(t);
}

static void env_close(env *v) {
    ek_registry_close(v->reg);
    ek_ctx_free(v->ctx);
    ts_rm_rf(v->home);
}

/* Short limits so that failing cases end in about a second. */
static ek_pull_options fast(void) {
    ek_pull_options o = {0};
    o.no_canaries = 1;
    o.connect_timeout_ms = 2000;
    o.stall_timeout_s = 1;
    o.backoff_ms = 10;
    o.max_retries = 2;
    return o;
}

static void pulled(env *v, const char *src, const ek_pull_options *o, ek_pull_result *res) {
    if (ek_registry_pull(v->ctx, v->reg, src, o, res))
        fail_msg("pull %s: %s [%s]", src, ek_ctx_last_error(v->ctx), ek_verify_code_name(res->code));
}

/* Refused with code; nothing changed; served_ref still resolves. */
static void refused(env *v, const char *src, const ek_pull_options *o, ek_verify_code code, const char *needle,
                    const char *served_ref) {
    char *before = ts_registry_snapshot(v->home);
    ek_pull_result res;
    ek_status st = ek_registry_pull(v->ctx, v->reg, src, o, &res);
    if (st == EK_OK) fail_msg("%s: installed %s@%lld (already %d), expected %s", src, res.name, (long long)res.version, res.already_installed, ek_verify_code_name(code));
    if (res.code != code)
        fail_msg("%s: %s (%s), expected %s", src, ek_verify_code_name(res.code), ek_ctx_last_error(v->ctx),
                 ek_verify_code_name(code));
    if (needle && !strstr(ek_ctx_last_error(v->ctx), needle))
        fail_msg("message \"%s\" lacks \"%s\"", ek_ctx_last_error(v->ctx), needle);
    char *after = ts_registry_snapshot(v->home);
    assert_non_null(before);
    assert_string_equal(before, after);
    free(before);
    free(after);
    char dir[4096];
    if (served_ref && ek_registry_resolve(v->ctx, v->home, served_ref, dir, sizeof dir))
        fail_msg("%s no longer served: %s", served_ref, ek_ctx_last_error(v->ctx));
}

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

static void test_pull_update_rollback(void **state) {
    (void)state;
    env v;
    env_open(&v);
    publish("m", "tiny", 1, "alice", 0);
    ek_pull_options o = fast();
    ek_pull_result res;
    pulled(&v, url("m"), &o, &res);
    assert_int_equal(res.version, 1);
    assert_true(res.is_signed);
    assert_string_equal(res.trusted_comment, "tiny 1");
    assert_true(res.bytes_downloaded > 4000000);
    ek_reg_provenance pv;
    assert_int_equal(ek_registry_provenance(v.ctx, v.reg, "tiny", 1, &pv), EK_OK);
    assert_string_equal(pv.origin, url("m"));

    /* The publisher releases 2: update finds it and moves the alias. */
    publish("m", "tiny", 2, "alice", 0);
    o.alias = "production";
    if (ek_registry_update(v.ctx, v.reg, "tiny", &o, &res)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    assert_int_equal(res.version, 2);
    assert_false(res.already_installed);
    ek_reg_version info;
    assert_int_equal(ek_registry_lookup(v.ctx, v.reg, "tiny@production", &info), EK_OK);
    assert_int_equal(info.version, 2);
    assert_int_equal(ek_registry_update(v.ctx, v.reg, "tiny", &o, &res), EK_OK);
    assert_true(res.already_installed);

    /* A mirror replays the older signed release: refused. */
    publish("m", "tiny", 1, "alice", 0);
    char *before = ts_registry_snapshot(v.home);
    assert_int_not_equal(ek_registry_update(v.ctx, v.reg, "tiny", &o, &res), EK_OK);
    assert_int_equal(res.code, EK_VERIFY_ROLLBACK);
    char *after = ts_registry_snapshot(v.home);
    assert_string_equal(before, after);
    free(before);
    free(after);
    /* ... unless the operator allows it (1 is installed: nothing to fetch),
     * and the alias can still be moved back by hand. */
    o.allow_downgrade = 1;
    o.alias = NULL;
    assert_int_equal(ek_registry_update(v.ctx, v.reg, "tiny", &o, &res), EK_OK);
    assert_true(res.already_installed);
    assert_int_equal(ek_registry_alias(v.ctx, v.reg, "tiny", "production", 1), EK_OK);

    /* Redirects: a few are followed, a chain of 9 is not. */
    publish("m", "tiny", 3, "alice", 0);
    o = fast();
    pulled(&v, url("hop/2/m"), &o, &res);
    assert_int_equal(res.version, 3);
    publish("m", "tiny", 4, "alice", 0);
    refused(&v, url("hop/9/m"), &o, EK_VERIFY_DOWNLOAD, "redirect", "tiny@3");
    env_close(&v);
}

static void test_hub_layout_and_cli(void **state) {
    (void)state;
    env v;
    env_open(&v);
    publish("hub/org/tiny/resolve/main", "tiny", 7, "alice", 0);
    ek_pull_options o = fast();
    char ep[512];
    snprintf(ep, sizeof ep, "%s/hub", hs_url(g_srv));
    o.endpoint = ep;
    ek_pull_result res;
    pulled(&v, "org/tiny", &o, &res);
    assert_int_equal(res.version, 7);
    ek_reg_provenance pv;
    assert_int_equal(ek_registry_provenance(v.ctx, v.reg, "tiny", 7, &pv), EK_OK);
    assert_string_equal(pv.repo, "org/tiny");
    assert_string_equal(pv.revision, "main");
    /* Update through the Hub layout too. */
    publish("hub/org/tiny/resolve/main", "tiny", 8, "alice", 0);
    o.endpoint = NULL;
    if (ek_registry_update(v.ctx, v.reg, "tiny", &o, &res)) fail_msg("%s", ek_ctx_last_error(v.ctx));
    assert_int_equal(res.version, 8);
    ek_registry_close(v.reg);
    v.reg = NULL;

    /* The CLI: a JSON progress stream, then a refusal with its code. */
    char home2[256], cmd[8192], *out = NULL, *err = NULL;
    snprintf(home2, sizeof home2, "%s", ts_mkdtemp());
    publish("c", "clitiny", 1, "alice", 0);
    snprintf(cmd, sizeof cmd, "'%s' keys add '%s/alice.pub' --home '%s' >/dev/null && '%s' models pull '%s' --json "
             "--no-canaries --home '%s'", ts_ek_bin(), g_keys, home2, ts_ek_bin(), url("c"), home2);
    if (ts_run(cmd, &out, &err)) fail_msg("%s: %s", cmd, err);
    assert_non_null(strstr(out, "{\"event\":\"manifest\""));
    assert_non_null(strstr(out, "{\"event\":\"verified\",\"path\":\"model.safetensors\""));
    assert_non_null(strstr(out, "\"event\":\"result\",\"ok\":true"));
    free(out);
    free(err);
    /* Quiet when not on a terminal: one line. */
    publish("c", "clitiny", 2, "alice", 0);
    snprintf(cmd, sizeof cmd, "'%s' models update clitiny --no-canaries --home '%s' 2>&1", ts_ek_bin(), home2);
    assert_int_equal(ts_run(cmd, &out, NULL), 0);
    assert_non_null(strstr(out, "clitiny@2 READY: signed"));
    free(out);
    publish("c", "clitiny", 1, "alice", 0);
    snprintf(cmd, sizeof cmd, "'%s' models update clitiny --home '%s'", ts_ek_bin(), home2);
    assert_int_equal(ts_run(cmd, &out, &err), 1);
    assert_non_null(strstr(err, "EK_VERIFY_ROLLBACK"));
    free(out);
    free(err);
    ts_rm_rf(home2);
    v.reg = NULL;
    ek_ctx_free(v.ctx);
    ts_rm_rf(v.home);
}

static void test_faults(void **state) {
    (void)state;
    env v;
    env_open(&v);
    publish("base", "tiny", 1, "alice", 0);
    ek_pull_options o = fast();
    ek_pull_result res;
    pulled(&v, url("base"), &o, &res);

    publish("f", "tiny", 2, "alice", 0);
    const char *model = "/f/model.safetensors";
    hs_fault_set(g_srv, model, HS_TRUNCATE, 1000000, -1);
    refused(&v, url("f"), &o, EK_VERIFY_SIZE_MISMATCH, "truncated", "tiny@1");
    hs_fault_set(g_srv, model, HS_CORRUPT, 123456, -1);
    refused(&v, url("f"), &o, EK_VERIFY_DIGEST_MISMATCH, "SHA-256", "tiny@1");
    hs_fault_set(g_srv, model, HS_OVERFLOW, 4096, -1);
    refused(&v, url("f"), &o, EK_VERIFY_TOO_LARGE, "more than the", "tiny@1");
    hs_fault_set(g_srv, model, HS_STATUS, 503, -1);
    refused(&v, url("f"), &o, EK_VERIFY_DOWNLOAD, "HTTP 503", "tiny@1");
    hs_fault_set(g_srv, model, HS_NONE, 0, 0);
    /* (Another manifest: f's staged parts would serve vocab.txt already.) */
    publish("mf", "tiny", 5, "alice", 0);
    hs_fault_set(g_srv, "/mf/vocab.txt", HS_STATUS, 404, -1);
    refused(&v, url("mf"), &o, EK_VERIFY_MISSING_FILE, "vocab.txt", "tiny@1");
    /* A crawling server: the stall timeout ends it, quickly. */
    hs_fault_set(g_srv, model, HS_SLOW, 50, -1);
    ek_pull_options once = o;
    once.max_retries = -1;
    double t0 = now_s();
    refused(&v, url("f"), &once, EK_VERIFY_DOWNLOAD, NULL, "tiny@1");
    assert_true(now_s() - t0 < 10);
    hs_faults_clear(g_srv);

    /* Signature faults. */
    publish("tc", "tiny", 2, "alice", 0);
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "sed -i 's/^trusted comment: tiny 2/trusted comment: tiny 9/' '%s/tc/manifest.json.minisig'",
             g_root);
    sh(cmd);
    refused(&v, url("tc"), &o, EK_VERIFY_BAD_TRUSTED_COMMENT, "trusted comment", "tiny@1");
    publish("wk", "tiny", 2, "bob", 0);
    refused(&v, url("wk"), &o, EK_VERIFY_UNTRUSTED_KEY, "not trusted", "tiny@1");
    publish("lg", "tiny", 2, "alice", 1);
    refused(&v, url("lg"), &o, EK_VERIFY_LEGACY, "legacy", "tiny@1");
    publish("us", "tiny", 2, NULL, 0);
    refused(&v, url("us"), &o, EK_VERIFY_UNSIGNED, "unsigned", "tiny@1");
    publish("nm", "nottiny", 2, "alice", 0);
    ek_pull_options named = o;
    named.expect_name = "tiny";
    refused(&v, url("nm"), &named, EK_VERIFY_NAME_MISMATCH, "not \"tiny\"", "tiny@1");

    /* Connection cut mid-file without retries: refused, the part kept;
     * the next pull resumes it with a Range request (cut once more, and
     * resumed again within the run). */
    hs_fault_set(g_srv, model, HS_DROP, 1500000, -1);
    refused(&v, url("f"), &once, EK_VERIFY_DOWNLOAD, NULL, "tiny@1");
    int ranges = hs_range_hits(g_srv, model);
    hs_fault_set(g_srv, model, HS_DROP, 1000000, 1);
    pulled(&v, url("f"), &o, &res);
    assert_int_equal(res.version, 2);
    assert_true(res.retries >= 1);
    assert_true(hs_range_hits(g_srv, model) >= ranges + 2);
    /* Resumed, not fetched again: well under the ~5.06 MB of all files. */
    assert_true(res.bytes_downloaded < 5060000 - 1000000);

    /* A server that answers 200 to a Range request: the file restarts. */
    publish("g", "tiny", 3, "alice", 0);
    const char *gmodel = "/g/model.safetensors";
    hs_fault_set(g_srv, gmodel, HS_DROP, 1500000, -1);
    refused(&v, url("g"), &once, EK_VERIFY_DOWNLOAD, NULL, "tiny@2");
    hs_fault_set(g_srv, gmodel, HS_NO_RANGE, 0, -1);
    pulled(&v, url("g"), &o, &res);
    assert_int_equal(res.version, 3);
    assert_true(res.bytes_downloaded >= 4049576);
    hs_faults_clear(g_srv);

    /* 500s, then success; an extra file on the server is never fetched. */
    publish("h", "tiny", 4, "alice", 0);
    snprintf(cmd, sizeof cmd, "echo junk > '%s/h/extra.bin'", g_root);
    sh(cmd);
    hs_fault_set(g_srv, "/h/config.json", HS_STATUS, 500, 2);
    pulled(&v, url("h"), &o, &res);
    assert_int_equal(res.version, 4);
    assert_int_equal(res.retries, 2);
    assert_int_equal(hs_hits(g_srv, "/h/extra.bin"), 0);
    char p[4096];
    snprintf(p, sizeof p, "%s/models/tiny/4/extra.bin", v.home);
    assert_int_not_equal(access(p, F_OK), 0);
    /* Nothing left in staging. */
    snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s/staging')\"", v.home);
    sh(cmd);
    env_close(&v);
}

/* A child pulls and dies (the import hook) or runs out of file size; the
 * registry afterwards serves the old version, and a new pull succeeds. */
static int die_at_blobs(void *arg, ek_import_step step) {
    (void)arg;
    if (step == EK_IMPORT_BLOBS) _exit(9);
    return 0;
}

/* Disk full during a pull, on a real small filesystem: the registry home
 * is a 12 MB tmpfs.  Version 1 (5.1 MB of files) fits, with its staging
 * copies (a pull's peak is about twice the model); version 2's staging
 * beside version 1's blobs does not, so the pull meets ENOSPC.  Mounting needs
 * CAP_SYS_ADMIN; without it a child process limited by RLIMIT_FSIZE stands
 * in (EFBIG instead of ENOSPC, same code path). */
static void test_disk_full(void **state) {
    (void)state;
    env v;
    snprintf(v.home, sizeof v.home, "%s", ts_mkdtemp());
    int tmpfs = mount("tmpfs", v.home, "tmpfs", 0, "size=12m") == 0;
    assert_int_equal(ek_ctx_new(&v.ctx), EK_OK);
    assert_int_equal(ek_registry_open(v.ctx, v.home, NULL, &v.reg), EK_OK);
    char *t = ts_read_file(ts_path(g_keys, "alice.pub"), NULL);
    assert_non_null(t);
    assert_int_equal(ek_keys_add(v.ctx, v.reg, t, NULL, NULL), EK_OK);
    free(t);
    publish("f1", "tiny", 1, "alice", 0);
    publish("f2", "tiny", 2, "alice", 0);
    ek_pull_options o = fast();
    ek_pull_result res;
    pulled(&v, url("f1"), &o, &res);
    if (tmpfs) {
        /* A local write failure is not a verification refusal: the status
         * says EK_ERR_IO (the code stays EK_VERIFY_OK) and the message names
         * the file and "disk full". */
        char *before = ts_registry_snapshot(v.home);
        assert_int_equal(ek_registry_pull(v.ctx, v.reg, url("f2"), &o, &res), EK_ERR_IO);
        assert_int_equal(res.code, EK_VERIFY_OK);
        assert_non_null(strstr(ek_ctx_last_error(v.ctx), "disk full"));
        char *after = ts_registry_snapshot(v.home);
        assert_string_equal(before, after);
        free(before);
        free(after);
        /* The attempt is in the event log, with the reason. */
        ek_reg_event *ev;
        size_t nev;
        assert_int_equal(ek_registry_events(v.ctx, v.reg, "tiny", &ev, &nev), EK_OK);
        assert_true(nev > 0);
        assert_string_equal(ev[nev - 1].action, "pull-failed");
        assert_int_equal(ev[nev - 1].version, 2);
        assert_non_null(strstr(ev[nev - 1].detail, "disk full"));
        free(ev);
        /* Staging was cleaned up: the space is back, and the registry
         * still writes (an alias move is a write transaction). */
        char cmd[1024];
        snprintf(cmd, sizeof cmd, "test -z \"$(ls '%s/staging')\"", v.home);
        sh(cmd);
        assert_int_equal(ek_registry_alias(v.ctx, v.reg, "tiny", "production", 1), EK_OK);
    } else {
        char *before = ts_registry_snapshot(v.home);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            signal(SIGXFSZ, SIG_IGN);
            struct rlimit rl = {1 << 20, 1 << 20};
            setrlimit(RLIMIT_FSIZE, &rl);
            ek_ctx *c;
            ek_registry *r;
            if (ek_ctx_new(&c) || ek_registry_open(c, v.home, NULL, &r)) _exit(5);
            ek_pull_result r2;
            int st = ek_registry_pull(c, r, url("f2"), &o, &r2);
            _exit(st == EK_OK ? 0 : r2.code == EK_VERIFY_DOWNLOAD ? 3 : 4);
        }
        int ws;
        waitpid(pid, &ws, 0);
        assert_true(WIFEXITED(ws));
        assert_int_equal(WEXITSTATUS(ws), 3);
        char *after = ts_registry_snapshot(v.home);
        assert_string_equal(before, after);
        free(before);
        free(after);
    }
    /* The installed version still loads and embeds. */
    char dir[4096];
    assert_int_equal(ek_registry_resolve(v.ctx, v.home, "tiny", dir, sizeof dir), EK_OK);
    ek_model *m;
    assert_int_equal(ek_model_load(v.ctx, dir, &m), EK_OK);
    const char *text = "still served";
    float out[1024];
    assert_true(ek_embed_dim(m, NULL) <= 1024);
    assert_int_equal(ek_embed(v.ctx, m, &text, NULL, 1, NULL, out, NULL), EK_OK);
    ek_model_free(m);
    ek_registry_close(v.reg);
    ek_ctx_free(v.ctx);
    if (tmpfs) assert_int_equal(umount(v.home), 0);
    ts_rm_rf(v.home);
    if (!tmpfs) skip(); /* the ENOSPC case itself did not run */
}

static void test_crash(void **state) {
    (void)state;
    env v;
    env_open(&v);
    publish("k1", "tiny", 1, "alice", 0);
    ek_pull_options o = fast();
    ek_pull_result res;
    pulled(&v, url("k1"), &o, &res);
    publish("k2", "tiny", 2, "alice", 0);
    int ws;
    pid_t pid;

    /* Killed in the middle of the install. */
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ek_ctx *c;
        ek_registry *r;
        if (ek_ctx_new(&c) || ek_registry_open(c, v.home, NULL, &r)) _exit(5);
        ek_pull_options ko = o;
        ko.hook = die_at_blobs;
        ek_registry_pull(c, r, url("k2"), &ko, NULL);
        _exit(6);
    }
    waitpid(pid, &ws, 0);
    assert_true(WIFEXITED(ws));
    assert_int_equal(WEXITSTATUS(ws), 9);
    /* Restarted: recovery marks the interrupted version FAILED; 1 serves. */
    ek_registry_close(v.reg);
    assert_int_equal(ek_registry_open(v.ctx, v.home, NULL, &v.reg), EK_OK);
    ek_reg_version info;
    assert_int_equal(ek_registry_lookup(v.ctx, v.reg, "tiny@2", &info), EK_OK);
    assert_string_equal(info.status, "FAILED");
    assert_int_equal(ek_registry_lookup(v.ctx, v.reg, "tiny", &info), EK_OK);
    assert_int_equal(info.version, 1);
    char dir[4096];
    assert_int_equal(ek_registry_resolve(v.ctx, v.home, "tiny", dir, sizeof dir), EK_OK);
    ek_model *m;
    assert_int_equal(ek_model_load(v.ctx, dir, &m), EK_OK);
    ek_model_free(m);
    /* And the pull completes now. */
    pulled(&v, url("k2"), &o, &res);
    assert_int_equal(res.version, 2);
    assert_int_equal(ek_registry_lookup(v.ctx, v.reg, "tiny", &info), EK_OK);
    assert_int_equal(info.version, 2);
    env_close(&v);
}

static int setup(void **state) {
    (void)state;
    snprintf(g_root, sizeof g_root, "%s", ts_mkdtemp());
    snprintf(g_keys, sizeof g_keys, "%s", ts_mkdtemp());
    char cmd[1024];
    for (int i = 0; i < 2; i++) {
        const char *k = i ? "bob" : "alice";
        snprintf(cmd, sizeof cmd, "minisign -G -W -p '%s/%s.pub' -s '%s/%s.sec' < /dev/null", g_keys, k, g_keys, k);
        if (ts_run(cmd, NULL, NULL)) return -1;
    }
    g_srv = hs_start(g_root);
    return g_srv ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    hs_stop(g_srv);
    ts_rm_rf(g_root);
    ts_rm_rf(g_keys);
    return 0;
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pull_update_rollback),
        cmocka_unit_test(test_hub_layout_and_cli),
        cmocka_unit_test(test_faults),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_crash),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
