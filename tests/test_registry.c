/* tests/test_registry.c — the model registry: import, references, aliases,
 * dedup through content-addressed blobs, verify/CORRUPT, rm + gc, health
 * checks, and the faults the registry must survive: a locked database, a
 * corrupt or truncated database file, a process killed at each step of an
 * import, two importers of one version, bad names refused before anything
 * is touched. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "embedkit_registry.h"
#include "support.h"

static const char *tiny(const char *which) { return ts_path(ts_models_dir(), which); }

static ek_ctx *g_ctx;

static int setup(void **state) {
    (void)state;
    return ek_ctx_new(&g_ctx) == EK_OK ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    ek_ctx_free(g_ctx);
    return 0;
}

static ek_registry *open_home(const char *home) {
    ek_registry *r = NULL;
    ek_status st = ek_registry_open(g_ctx, home, NULL, &r);
    if (st) fail_msg("open %s: %s", home, ek_ctx_last_error(g_ctx));
    return r;
}

static int64_t import_ok(ek_registry *r, const char *dir, const char *name, int64_t version) {
    ek_import_options o = {0};
    o.version = version;
    int64_t v = 0;
    ek_status st = ek_registry_import(g_ctx, r, dir, name, &o, &v);
    if (st) fail_msg("import %s as %s: %s", dir, name, ek_ctx_last_error(g_ctx));
    return v;
}

static int count_entries(const char *dir, const char *prefix) {
    DIR *d = opendir(dir);
    if (!d) return -1;
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)))
        if (strcmp(de->d_name, ".") && strcmp(de->d_name, "..") && !strncmp(de->d_name, prefix, strlen(prefix)))
            n++;
    closedir(d);
    return n;
}

static const char *status_of(ek_registry *r, const char *ref) {
    static ek_reg_version v;
    if (ek_registry_lookup(g_ctx, r, ref, &v)) return "ABSENT";
    return v.status;
}

static void embed_one(const char *dir, float *out, int *dim) {
    ek_model *m = NULL;
    if (ek_model_load(g_ctx, dir, &m)) fail_msg("load %s: %s", dir, ek_ctx_last_error(g_ctx));
    ek_embed_options o;
    ek_embed_options_init(&o);
    *dim = ek_embed_dim(m, &o);
    const char *t = "registry parity";
    assert_int_equal(ek_embed(g_ctx, m, &t, NULL, 1, &o, out, NULL), EK_OK);
    ek_model_free(m);
}

static void test_import_resolve_dedup(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    assert_int_equal(import_ok(r, tiny("tiny-mean"), "mini", 0), 1);
    assert_int_equal(import_ok(r, tiny("tiny-mean"), "mini", 0), 2);
    assert_int_equal(import_ok(r, tiny("tiny-cls"), "mini", 5), 5);
    assert_int_equal(import_ok(r, tiny("tiny-mean"), "mini", 0), 6); /* after the highest */

    char p[4096], want[4096];
    assert_int_equal(ek_registry_resolve(g_ctx, home, "mini", p, sizeof p), EK_OK);
    snprintf(want, sizeof want, "%s/models/mini/6", home);
    assert_string_equal(p, want);
    assert_int_equal(ek_registry_resolve(g_ctx, home, "mini@latest", p, sizeof p), EK_OK);
    assert_string_equal(p, want);
    assert_int_equal(ek_registry_resolve(g_ctx, home, "mini@5", p, sizeof p), EK_OK);
    snprintf(want, sizeof want, "%s/models/mini/5", home);
    assert_string_equal(p, want);
    assert_int_equal(ek_registry_alias(g_ctx, r, "mini", "production", 2), EK_OK);
    assert_int_equal(ek_registry_resolve(g_ctx, home, "mini@production", p, sizeof p), EK_OK);
    snprintf(want, sizeof want, "%s/models/mini/2", home);
    assert_string_equal(p, want);
    assert_int_equal(ek_registry_alias(g_ctx, r, "mini", "production", 5), EK_OK); /* moved */
    assert_int_equal(ek_registry_resolve(g_ctx, home, "mini@production", p, sizeof p), EK_OK);
    snprintf(want, sizeof want, "%s/models/mini/5", home);
    assert_string_equal(p, want);
    /* A path stays a path. */
    assert_int_equal(ek_registry_resolve(g_ctx, home, tiny("tiny-mean"), p, sizeof p), EK_OK);
    assert_string_equal(p, tiny("tiny-mean"));
    /* Unknowns are named. */
    assert_int_not_equal(ek_registry_resolve(g_ctx, home, "mini@canary", p, sizeof p), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "no alias \"canary\" (aliases: production)"));
    assert_int_not_equal(ek_registry_resolve(g_ctx, home, "mini@3", p, sizeof p), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "no version 3"));
    assert_int_not_equal(ek_registry_resolve(g_ctx, home, "nosuch", p, sizeof p), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "no model \"nosuch\""));

    /* Identical files are stored once: the same inode in every version. */
    struct stat a, b;
    assert_int_equal(stat(ts_path(home, "models/mini/1/model.safetensors"), &a), 0);
    assert_int_equal(stat(ts_path(home, "models/mini/6/model.safetensors"), &b), 0);
    assert_true(a.st_ino == b.st_ino);
    assert_true(a.st_nlink >= 4); /* blob + versions 1, 2, 6 */
    ek_reg_file *f;
    size_t nf;
    assert_int_equal(ek_registry_files(g_ctx, r, "mini", 1, &f, &nf), EK_OK);
    assert_true(nf >= 5);
    free(f);
    /* tiny-mean and tiny-cls differ in a few files only. */
    int blobs = count_entries(ts_path(home, "blobs"), "sha256-");
    assert_true(blobs > (int)nf && blobs < 2 * (int)nf);

    /* The registry copy embeds exactly as the source directory. */
    float e1[1024], e2[1024];
    int d1, d2;
    embed_one(tiny("tiny-mean"), e1, &d1);
    assert_int_equal(ek_registry_resolve(g_ctx, home, "mini@1", p, sizeof p), EK_OK);
    embed_one(p, e2, &d2);
    assert_int_equal(d1, d2);
    assert_memory_equal(e1, e2, sizeof(float) * (size_t)d1);

    /* A READY version is immutable: the same number again is refused. */
    ek_import_options o = {.version = 2};
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean"), "mini", &o, NULL), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "mini@2 already exists (READY)"));

    ek_reg_version *v;
    size_t n;
    assert_int_equal(ek_registry_list(g_ctx, r, NULL, &v, &n), EK_OK);
    assert_int_equal(n, 4);
    assert_int_equal(v[3].version, 6);
    assert_true(v[3].is_latest);
    assert_string_equal(v[2].aliases, "production");
    assert_int_equal(v[0].highest_seen, 6);
    free(v);
    ek_registry_close(r);

    /* And the database enforces it too. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(ts_path(home, "registry.db"), &db), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE files SET sha256 = substr(sha256, 2) || 'a'", NULL, NULL, NULL),
                         SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "DELETE FROM events", NULL, NULL, NULL), SQLITE_OK);
    assert_int_not_equal(sqlite3_exec(db, "UPDATE versions SET status = 'PENDING'", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    ts_rm_rf(home);
}

static void test_bad_names_touch_nothing(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    char longname[80];
    memset(longname, 'a', 65);
    longname[65] = '\0';
    const char *bad[] = {"", "a/b", "..", "../x", "/etc", "a\nb", ".hidden", "-rf", "a..b", "a b",
                         "caf\xc3\xa9", "x\x01", "a\\b", longname, "a@b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ek_status st = ek_registry_import(g_ctx, r, tiny("tiny-mean"), bad[i], NULL, NULL);
        if (st != EK_ERR_INVALID_ARG) fail_msg("name \"%s\" accepted (%d)", bad[i], st);
        assert_true(strlen(ek_ctx_last_error(g_ctx)) > 10);
    }
    assert_int_equal(count_entries(ts_path(home, "models"), ""), 0);
    assert_int_equal(count_entries(ts_path(home, "blobs"), ""), 0);
    assert_int_equal(count_entries(ts_path(home, "staging"), ""), 0);
    ek_reg_version *v;
    size_t n;
    assert_int_equal(ek_registry_list(g_ctx, r, NULL, &v, &n), EK_OK);
    assert_int_equal(n, 0);
    free(v);
    /* Aliases: "latest" is computed, digits would read as a version. */
    import_ok(r, tiny("tiny-mean"), "ok-name_1.0", 0);
    assert_int_equal(ek_registry_alias(g_ctx, r, "ok-name_1.0", "latest", 1), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_registry_alias(g_ctx, r, "ok-name_1.0", "123", 1), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_registry_alias(g_ctx, r, "ok-name_1.0", "x/y", 1), EK_ERR_INVALID_ARG);
    assert_int_equal(ek_registry_alias(g_ctx, r, "ok-name_1.0", "prod", 9), EK_ERR_INVALID_ARG);
    assert_true(ek_registry_name_ok(NULL, "model", "Model-2.v1_x"));
    assert_false(ek_registry_name_ok(g_ctx, "model", "../../etc"));
    ek_registry_close(r);
    ts_rm_rf(home);
}

/* ---- crash at each step of an import (a forked child really dies) ---- */

static int die_at(void *arg, ek_import_step step) {
    if ((int)step == *(int *)arg) _exit(0);
    return 0;
}

static void test_crash_each_step(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry_close(open_home(home));
    for (int step = EK_IMPORT_PENDING; step <= EK_IMPORT_CANARIES; step++) {
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            ek_ctx *c;
            ek_registry *r;
            if (ek_ctx_new(&c) || ek_registry_open(c, home, NULL, &r)) _exit(3);
            ek_import_options o = {.version = 3, .hook = die_at, .hook_arg = &step};
            ek_registry_import(c, r, tiny("tiny-mean"), "crashy", &o, NULL);
            _exit(4); /* not reached: the hook exits */
        }
        int ws;
        assert_int_equal(waitpid(pid, &ws, 0), pid);
        assert_true(WIFEXITED(ws));
        assert_int_equal(WEXITSTATUS(ws), 0);
        /* Reopening recovers: the dead import is FAILED, nothing is left. */
        ek_registry *r = open_home(home);
        assert_string_equal(status_of(r, "crashy@3"), "FAILED");
        struct stat sb;
        assert_int_not_equal(stat(ts_path(home, "models/crashy/3"), &sb), 0);
        assert_int_equal(count_entries(ts_path(home, "staging"), ""), 0);
        char p[4096];
        assert_int_not_equal(ek_registry_resolve(g_ctx, home, "crashy@3", p, sizeof p), EK_OK);
        assert_non_null(strstr(ek_ctx_last_error(g_ctx), "FAILED"));
        ek_reg_version v;
        assert_int_equal(ek_registry_lookup(g_ctx, r, "crashy@3", &v), EK_OK);
        assert_non_null(strstr(v.reason, "interrupted"));
        ek_registry_close(r);
    }
    /* The version number can then be imported for real, and gc leaves
     * exactly what it references. */
    ek_registry *r = open_home(home);
    assert_int_equal(import_ok(r, tiny("tiny-mean"), "crashy", 3), 3);
    char bad[256];
    assert_int_equal(ek_registry_verify(g_ctx, r, "crashy@3", bad, sizeof bad), EK_OK);
    size_t removed;
    assert_int_equal(ek_registry_gc(g_ctx, r, &removed, NULL), EK_OK);
    ek_reg_file *f;
    size_t nf;
    assert_int_equal(ek_registry_files(g_ctx, r, "crashy", 3, &f, &nf), EK_OK);
    free(f);
    assert_true(count_entries(ts_path(home, "blobs"), "sha256-") <= (int)nf);
    ek_registry_close(r);
    ts_rm_rf(home);
}

/* An in-process abort (the hook returns non-zero) leaves a PENDING version
 * that a later open, in the same process, recovers. */
static int stop_at_tree(void *arg, ek_import_step step) {
    (void)arg;
    return step == EK_IMPORT_TREE;
}

static void test_simulated_crash_in_process(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    ek_import_options o = {.hook = stop_at_tree};
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean"), "half", &o, NULL), EK_ERR_INTERNAL);
    assert_string_equal(status_of(r, "half@1"), "PENDING");
    struct stat sb;
    assert_int_equal(stat(ts_path(home, "models/half/1"), &sb), 0); /* the tree, not READY */
    char p[4096];
    assert_int_not_equal(ek_registry_resolve(g_ctx, home, "half@1", p, sizeof p), EK_OK);
    ek_registry_close(r);
    r = open_home(home);
    assert_string_equal(status_of(r, "half@1"), "FAILED");
    assert_int_not_equal(stat(ts_path(home, "models/half/1"), &sb), 0);
    ek_registry_close(r);
    ts_rm_rf(home);
}

/* ---- two importers of one version ---- */

static int signal_and_wait(void *arg, ek_import_step step) {
    int *fds = arg;
    if (step == EK_IMPORT_PENDING) {
        char c = 'p';
        if (write(fds[1], &c, 1) != 1) return 1;
        if (read(fds[2], &c, 1) != 1) return 1; /* until the parent has tried */
    }
    return 0;
}

static void test_two_importers(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry_close(open_home(home));
    int up[2], down[2];
    assert_int_equal(pipe(up), 0);
    assert_int_equal(pipe(down), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        ek_ctx *c;
        ek_registry *r;
        if (ek_ctx_new(&c) || ek_registry_open(c, home, NULL, &r)) _exit(3);
        int fds[3] = {up[0], up[1], down[0]};
        ek_import_options o = {.version = 4, .hook = signal_and_wait, .hook_arg = fds};
        ek_status st = ek_registry_import(c, r, tiny("tiny-mean"), "race", &o, NULL);
        ek_registry_close(r);
        ek_ctx_free(c);
        _exit(st == EK_OK ? 0 : 5);
    }
    char ch;
    assert_int_equal(read(up[0], &ch, 1), 1);
    ek_registry *r = open_home(home); /* must not "recover" the live import */
    assert_string_equal(status_of(r, "race@4"), "PENDING");
    ek_import_options o = {.version = 4};
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-cls"), "race", &o, NULL), EK_ERR_IO);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "race@4 is being imported by another process"));
    assert_int_equal(write(down[1], "g", 1), 1);
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    assert_true(WIFEXITED(ws) && WEXITSTATUS(ws) == 0);
    assert_string_equal(status_of(r, "race@4"), "READY");
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-cls"), "race", &o, NULL), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "already exists"));
    ek_registry_close(r);
    close(up[0]);
    close(up[1]);
    close(down[0]);
    close(down[1]);
    ts_rm_rf(home);
}

/* ---- a locked database ---- */

struct holder {
    const char *db;
    int hold_ms;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
};

static void *hold_lock(void *arg) {
    struct holder *h = arg;
    sqlite3 *db;
    sqlite3_open(h->db, &db);
    sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    pthread_mutex_lock(&h->mu);
    h->started = 1;
    pthread_cond_signal(&h->cv);
    pthread_mutex_unlock(&h->mu);
    usleep((useconds_t)h->hold_ms * 1000);
    sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    sqlite3_close(db);
    return NULL;
}

static double run_locked(const char *home, int hold_ms, int timeout_ms, ek_status *st) {
    struct holder h = {.db = ts_path(home, "registry.db"), .hold_ms = hold_ms};
    pthread_mutex_init(&h.mu, NULL);
    pthread_cond_init(&h.cv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, hold_lock, &h);
    pthread_mutex_lock(&h.mu);
    while (!h.started) pthread_cond_wait(&h.cv, &h.mu);
    pthread_mutex_unlock(&h.mu);
    ek_registry_options ro = {.busy_timeout_ms = timeout_ms};
    ek_registry *r = NULL;
    assert_int_equal(ek_registry_open(g_ctx, home, &ro, &r), EK_OK); /* readers are not blocked */
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    *st = ek_registry_alias(g_ctx, r, "locked", "prod", 1);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    ek_registry_close(r);
    pthread_join(t, NULL);
    pthread_mutex_destroy(&h.mu);
    pthread_cond_destroy(&h.cv);
    return (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-6;
}

static void test_locked_database(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    ek_import_options o = {.no_canaries = 1};
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean"), "locked", &o, NULL), EK_OK);
    ek_registry_close(r);
    ek_status st;
    /* Held longer than the timeout: a clear error after about the timeout. */
    double ms = run_locked(home, 1500, 200, &st);
    assert_int_equal(st, EK_ERR_IO);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "locked by another process (waited 200 ms)"));
    assert_true(ms >= 150 && ms < 1400);
    /* Released within the timeout: the write waits and succeeds. */
    ms = run_locked(home, 200, 5000, &st);
    if (st) fail_msg("%s", ek_ctx_last_error(g_ctx));
    assert_true(ms >= 100);
    ts_rm_rf(home);
}

/* ---- a corrupt, truncated, empty or foreign database file ---- */

static void expect_refused(const char *home, const char *needle) {
    const char *db = ts_path(home, "registry.db");
    size_t n0, n1;
    char *before = ts_read_file(db, &n0);
    assert_non_null(before);
    ek_registry *r = NULL;
    ek_status st = ek_registry_open(g_ctx, home, NULL, &r);
    if (st == EK_OK) fail_msg("%s: opened a bad database", home);
    assert_null(r);
    const char *msg = ek_ctx_last_error(g_ctx);
    if (!strstr(msg, needle) || !strstr(msg, "registry.db")) fail_msg("message: %s", msg);
    char *after = ts_read_file(db, &n1);
    assert_non_null(after);
    assert_int_equal(n0, n1); /* never recreated, never modified */
    assert_memory_equal(before, after, n0);
    free(before);
    free(after);
}

static void test_corrupt_database(void **state) {
    (void)state;
    /* Garbage. */
    const char *home = ts_mkdtemp();
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++) junk[i] = (char)(i * 7 + 3);
    assert_int_equal(ts_write_file(ts_path(home, "registry.db"), junk, sizeof junk), 0);
    expect_refused(home, "not a SQLite database");
    ts_rm_rf(home);
    /* Empty. */
    home = ts_mkdtemp();
    assert_int_equal(ts_write_file(ts_path(home, "registry.db"), "", 0), 0);
    expect_refused(home, "left the file untouched");
    ts_rm_rf(home);
    /* Truncated: a real registry cut in half. */
    home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    ek_import_options o = {.no_canaries = 1};
    for (int i = 0; i < 6; i++)
        assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean"), "trunc", &o, NULL), EK_OK);
    ek_registry_close(r);
    struct stat sb;
    assert_int_equal(stat(ts_path(home, "registry.db"), &sb), 0);
    assert_int_equal(truncate(ts_path(home, "registry.db"), sb.st_size / 2), 0);
    expect_refused(home, "damaged");
    ts_rm_rf(home);
    /* A page overwritten in the middle. */
    home = ts_mkdtemp();
    r = open_home(home);
    for (int i = 0; i < 6; i++)
        assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean"), "scrib", &o, NULL), EK_OK);
    ek_registry_close(r);
    int fd = open(ts_path(home, "registry.db"), O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, junk, 4096, 4096), 4096);
    close(fd);
    expect_refused(home, "damaged");
    ts_rm_rf(home);
    /* Another application's SQLite database. */
    home = ts_mkdtemp();
    sqlite3 *db;
    assert_int_equal(sqlite3_open(ts_path(home, "registry.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); INSERT INTO t VALUES(1)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_refused(home, "not an embedkit registry");
    ts_rm_rf(home);
    /* A schema from the future. */
    home = ts_mkdtemp();
    ek_registry_close(open_home(home));
    assert_int_equal(sqlite3_open(ts_path(home, "registry.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "PRAGMA user_version = 99", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    expect_refused(home, "newer embedkit");
    ts_rm_rf(home);
}

/* ---- verify: a changed byte makes the version CORRUPT, naming the file ---- */

static void flip_byte(const char *path, long off) {
    chmod(path, 0644);
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char c;
    assert_int_equal(pread(fd, &c, 1, off), 1);
    c ^= 0x20;
    assert_int_equal(pwrite(fd, &c, 1, off), 1);
    close(fd);
}

static void test_verify_corrupt(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    import_ok(r, tiny("tiny-mean"), "v", 0);
    char bad[1024];
    assert_int_equal(ek_registry_verify(g_ctx, r, "v@1", bad, sizeof bad), EK_OK);
    const char *victim = ts_path(home, "models/v/1/1_Pooling/config.json");
    flip_byte(victim, 3);
    assert_int_equal(ek_registry_verify(g_ctx, r, "v", bad, sizeof bad), EK_ERR_FORMAT);
    assert_string_equal(bad, "1_Pooling/config.json");
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "v@1 is CORRUPT: file 1_Pooling/config.json has sha256"));
    assert_string_equal(status_of(r, "v@1"), "CORRUPT");
    char p[4096];
    assert_int_not_equal(ek_registry_resolve(g_ctx, home, "v@1", p, sizeof p), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "CORRUPT"));
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "1_Pooling/config.json"));
    /* The health check says so too. */
    ek_health h;
    assert_int_equal(ek_registry_check(g_ctx, r, "v@1", 0, &h), EK_OK);
    assert_string_equal(h.result, "unhealthy");
    assert_non_null(strstr(h.reason, "1_Pooling/config.json"));
    /* Repaired bytes verify again and the version is served again. */
    flip_byte(victim, 3);
    assert_int_equal(ek_registry_verify(g_ctx, r, "v@1", bad, sizeof bad), EK_OK);
    assert_string_equal(status_of(r, "v@1"), "READY");
    /* A missing file is named too. */
    assert_int_equal(unlink(ts_path(home, "models/v/1/vocab.txt")), 0);
    assert_int_equal(ek_registry_verify(g_ctx, r, "v@1", bad, sizeof bad), EK_ERR_FORMAT);
    assert_string_equal(bad, "vocab.txt");
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "vocab.txt is missing"));
    ek_registry_close(r);
    ts_rm_rf(home);
}

/* ---- rm, gc, the event log ---- */

static void test_rm_gc_log(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    import_ok(r, tiny("tiny-mean"), "g", 0);
    import_ok(r, tiny("tiny-cls"), "g", 0);
    int all = count_entries(ts_path(home, "blobs"), "sha256-");
    assert_int_equal(ek_registry_alias(g_ctx, r, "g", "prod", 1), EK_OK);
    assert_int_equal(ek_registry_remove(g_ctx, r, "g", 0), EK_ERR_INVALID_ARG); /* which version? */
    assert_int_equal(ek_registry_remove(g_ctx, r, "g@1", 0), EK_ERR_INVALID_ARG);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "alias(es) prod"));
    assert_int_equal(ek_registry_remove(g_ctx, r, "g@prod", 1), EK_OK);
    assert_string_equal(status_of(r, "g@1"), "RETIRED");
    struct stat sb;
    assert_int_not_equal(stat(ts_path(home, "models/g/1"), &sb), 0);
    assert_int_equal(count_entries(ts_path(home, "blobs"), "sha256-"), all); /* until gc */
    size_t removed;
    uint64_t freed;
    assert_int_equal(ek_registry_gc(g_ctx, r, &removed, &freed), EK_OK);
    assert_true(removed >= 1 && freed > 1000000); /* at least tiny-mean's weights */
    assert_int_equal(count_entries(ts_path(home, "blobs"), "sha256-"), all - (int)removed);
    char bad[256];
    assert_int_equal(ek_registry_verify(g_ctx, r, "g@2", bad, sizeof bad), EK_OK);
    assert_int_equal(ek_registry_gc(g_ctx, r, &removed, &freed), EK_OK);
    assert_int_equal(removed, 0);
    /* latest follows READY versions only. */
    ek_reg_version v;
    assert_int_equal(ek_registry_lookup(g_ctx, r, "g", &v), EK_OK);
    assert_int_equal(v.version, 2);
    assert_int_equal(ek_registry_remove(g_ctx, r, "g@2", 0), EK_OK);
    assert_int_not_equal(ek_registry_lookup(g_ctx, r, "g", &v), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "no READY version"));
    /* The next import continues after the highest ever seen. */
    assert_int_equal(import_ok(r, tiny("tiny-mean"), "g", 0), 3);

    ek_reg_event *ev;
    size_t n;
    assert_int_equal(ek_registry_events(g_ctx, r, "g", &ev, &n), EK_OK);
    const char *want[] = {"import-start", "import", "import-start", "import", "alias", "rm", "rm",
                          "import-start", "import"};
    size_t k = 0;
    for (size_t i = 0; i < n && k < sizeof want / sizeof want[0]; i++)
        if (!strcmp(ev[i].action, want[k])) k++;
    assert_int_equal(k, sizeof want / sizeof want[0]);
    assert_true(strlen(ev[0].who) > 0 && ev[0].at > 0);
    free(ev);
    ek_registry_close(r);
    ts_rm_rf(home);
}

/* ---- health checks ---- */

static void test_health_check(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    ek_registry *r = open_home(home);
    import_ok(r, tiny("tiny-mean"), "h", 0);
    ek_health h;
    assert_int_equal(ek_registry_check(g_ctx, r, "h", 1, &h), EK_OK);
    if (strcmp(h.result, "healthy")) fail_msg("%s: %s", h.result, h.reason);
    assert_true(h.min_cosine >= 0.9999);
    assert_true(h.load_ms > 0 && h.embed_ms > 0);
    ek_reg_version v;
    assert_int_equal(ek_registry_lookup(g_ctx, r, "h@1", &v), EK_OK);
    assert_string_equal(v.health, "healthy");
    /* Different weights under the same goldens: unhealthy, with the cosine. */
    sqlite3 *db;
    assert_int_equal(sqlite3_open(ts_path(home, "registry.db"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE goldens SET embedding = (SELECT embedding FROM goldens WHERE idx = 1) "
                                      "WHERE idx = 0", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    assert_int_equal(ek_registry_check(g_ctx, r, "h", 0, &h), EK_OK);
    assert_string_equal(h.result, "unhealthy");
    assert_non_null(strstr(h.reason, "canary 0: cosine"));
    /* Imported without canaries: degraded, and it says why. */
    ek_import_options o = {.no_canaries = 1};
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean"), "h", &o, NULL), EK_OK);
    assert_int_equal(ek_registry_check(g_ctx, r, "h@2", 0, &h), EK_OK);
    assert_string_equal(h.result, "degraded");
    assert_non_null(strstr(h.reason, "no golden"));
    /* A directory that is not a model fails the import, FAILED with why. */
    const char *junk = ts_mkdtemp();
    assert_int_equal(ts_write_file(ts_path(junk, "config.json"), "{}", 2), 0);
    assert_int_not_equal(ek_registry_import(g_ctx, r, junk, "h", NULL, NULL), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "do not load as a model"));
    assert_string_equal(status_of(r, "h@3"), "FAILED");
    ek_registry_close(r);
    ts_rm_rf(junk);
    ts_rm_rf(home);
}

/* ---- disk full: a 3 MB tmpfs cannot hold the 4 MB weights ---- */

static void test_disk_full(void **state) {
    (void)state;
    const char *home = ts_mkdtemp();
    if (mount("tmpfs", home, "tmpfs", 0, "size=3m") != 0) {
        ts_rm_rf(home);
        skip(); /* needs root (CAP_SYS_ADMIN) */
    }
    ek_registry *r = open_home(home);
    ek_status st = ek_registry_import(g_ctx, r, tiny("tiny-mean"), "full", NULL, NULL);
    assert_int_equal(st, EK_ERR_IO);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "disk full"));
    /* Nothing half-registered: FAILED with the reason, no directory, no
     * staging, and the registry still works. */
    assert_string_equal(status_of(r, "full@1"), "FAILED");
    ek_reg_version v;
    assert_int_equal(ek_registry_lookup(g_ctx, r, "full@1", &v), EK_OK);
    assert_non_null(strstr(v.reason, "disk full"));
    struct stat sb;
    assert_int_not_equal(stat(ts_path(home, "models/full/1"), &sb), 0);
    assert_int_equal(count_entries(ts_path(home, "staging"), ""), 0);
    size_t removed;
    assert_int_equal(ek_registry_gc(g_ctx, r, &removed, NULL), EK_OK);
    assert_int_equal(count_entries(ts_path(home, "blobs"), "sha256-"), 0);
    ek_import_options o = {.no_canaries = 1};
    assert_int_equal(ek_registry_import(g_ctx, r, tiny("tiny-mean") /* still too big */, "full", &o, NULL),
                     EK_ERR_IO);
    ek_registry_close(r);
    r = open_home(home); /* reopens cleanly */
    ek_registry_close(r);
    assert_int_equal(umount(home), 0);
    ts_rm_rf(home);
}

static void test_default_home(void **state) {
    (void)state;
    char buf[4096];
    const char *old = getenv("EK_HOME");
    setenv("EK_HOME", "/x/y", 1);
    assert_int_equal(ek_registry_default_home(g_ctx, buf, sizeof buf), EK_OK);
    assert_string_equal(buf, "/x/y");
    unsetenv("EK_HOME");
    unsetenv("XDG_DATA_HOME");
    setenv("HOME", "/home/u", 1);
    assert_int_equal(ek_registry_default_home(g_ctx, buf, sizeof buf), EK_OK);
    assert_string_equal(buf, "/home/u/.local/share/embedkit");
    if (old) setenv("EK_HOME", old, 1);
    /* Resolving a name never creates a registry as a side effect. */
    const char *home = ts_mkdtemp();
    char p[4096];
    assert_int_not_equal(ek_registry_resolve(g_ctx, home, "foo", p, sizeof p), EK_OK);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "no registry"));
    assert_int_equal(count_entries(home, ""), 0);
    ts_rm_rf(home);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_import_resolve_dedup),
        cmocka_unit_test(test_bad_names_touch_nothing),
        cmocka_unit_test(test_crash_each_step),
        cmocka_unit_test(test_simulated_crash_in_process),
        cmocka_unit_test(test_two_importers),
        cmocka_unit_test(test_locked_database),
        cmocka_unit_test(test_corrupt_database),
        cmocka_unit_test(test_verify_corrupt),
        cmocka_unit_test(test_rm_gc_log),
        cmocka_unit_test(test_health_check),
        cmocka_unit_test(test_disk_full),
        cmocka_unit_test(test_default_home),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
