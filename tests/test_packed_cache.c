/* tests/test_packed_cache.c — the packed-weight cache (model/packcache.h,
 * docs/REGISTRY.md "Memory"): written on the first load and mapped by the
 * next without packing; embeddings bitwise identical with and without it
 * in f32, bf16 and int8; versions with identical weight files map one file
 * (one inode); a damaged, truncated or foreign file is repaired; a
 * directory that cannot be used falls back to private memory; each dtype
 * has its own file; and ek_registry_load_model resolves references. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "embedkit_pipeline.h"
#include "embedkit_registry.h"
#include "model/packcache.h"
#include "support.h"

static ek_ctx *g_ctx;
static char *g_home;          /* registry with pc@1, pc@2 (tiny-mean) and other@1 (tiny-cls) */
static ek_registry *g_reg;

static const char *const texts[] = {
    "The packed weights are mapped read-only.",
    "Two versions, one file.",
    "short",
    "A somewhat longer sentence that makes a few more tokens for every dense layer to chew on.",
};
#define N_TEXTS 4

static int setup(void **state) {
    (void)state;
    if (ek_ctx_new(&g_ctx)) return -1;
    g_home = strdup(ts_mkdtemp());
    if (ek_registry_open(g_ctx, g_home, NULL, &g_reg)) return -1;
    const char *mean = ts_path(ts_models_dir(), "tiny-mean"), *cls = ts_path(ts_models_dir(), "tiny-cls");
    ek_import_options io = {0};
    io.no_canaries = 1;
    if (ek_registry_import(g_ctx, g_reg, mean, "pc", &io, NULL) ||
        ek_registry_import(g_ctx, g_reg, mean, "pc", &io, NULL) ||
        ek_registry_import(g_ctx, g_reg, cls, "other", &io, NULL)) {
        fprintf(stderr, "%s\n", ek_ctx_last_error(g_ctx));
        return -1;
    }
    return 0;
}

static int teardown(void **state) {
    (void)state;
    ek_registry_close(g_reg);
    ts_rm_rf(g_home);
    free(g_home);
    ek_ctx_free(g_ctx);
    return 0;
}

static float *embed(const ek_model *m) {
    ek_embed_options o;
    ek_embed_options_init(&o);
    int dim = ek_embed_dim(m, &o);
    float *out = malloc(sizeof *out * (size_t)dim * N_TEXTS);
    assert_non_null(out);
    assert_int_equal(ek_embed(g_ctx, m, texts, NULL, N_TEXTS, &o, out, NULL), EK_OK);
    return out;
}

static size_t embed_bytes(const ek_model *m) {
    ek_embed_options o;
    ek_embed_options_init(&o);
    return sizeof(float) * (size_t)ek_embed_dim(m, &o) * N_TEXTS;
}

/* Loads ref with dtype and cache dir (NULL: the registry's HOME/packed). */
static ek_model *load(const char *ref, ek_compute_dtype dtype, const char *cache, ek_packed_cache_info *info) {
    ek_load_options o;
    ek_load_options_init(&o);
    o.dtype = dtype;
    o.packed_cache_dir = cache;
    ek_model *m = NULL;
    if (ek_registry_load_model(g_ctx, g_reg, ref, &o, &m) != EK_OK) {
        fprintf(stderr, "load %s: %s\n", ref, ek_ctx_last_error(g_ctx));
        return NULL;
    }
    assert_int_equal(ek_model_packed_cache_info(m, info), EK_OK);
    return m;
}

/* The reference: the same model packed privately (no cache). */
static float *plain_embedding(const char *dir, ek_compute_dtype dtype, size_t *bytes) {
    ek_load_options o;
    ek_load_options_init(&o);
    o.dtype = dtype;
    ek_model *m;
    assert_int_equal(ek_model_load_opts(g_ctx, dir, &o, &m), EK_OK);
    ek_packed_cache_info info;
    assert_int_equal(ek_model_packed_cache_info(m, &info), EK_OK);
    assert_int_equal(info.state, EK_PACKED_CACHE_OFF);
    assert_true(info.private_bytes > 0);
    float *v = embed(m);
    *bytes = embed_bytes(m);
    ek_model_free(m);
    return v;
}

static int dtype_runs(ek_compute_dtype d) {
    ek_load_options o;
    ek_load_options_init(&o);
    o.dtype = d;
    ek_model *m;
    if (ek_model_load_opts(g_ctx, ts_path(ts_models_dir(), "tiny-mean"), &o, &m) != EK_OK) return 0;
    ek_model_free(m);
    return 1;
}

/* Written on the first load, mapped (nothing packed) on the second, same
 * bits as without the cache, for every dtype this CPU runs; each dtype has
 * its own file. */
static void test_written_then_hit_bitwise(void **state) {
    (void)state;
    char cache[4096];
    snprintf(cache, sizeof cache, "%s/c-dtypes", g_home);
    const char *dir = ts_path(ts_models_dir(), "tiny-mean");
    char paths[3][4096] = {"", "", ""};
    for (int d = EK_DTYPE_F32; d <= EK_DTYPE_INT8; d++) {
        if (!dtype_runs((ek_compute_dtype)d)) {
            fprintf(stderr, "dtype %d not supported here: skipped\n", d);
            continue;
        }
        size_t bytes;
        float *ref = plain_embedding(dir, (ek_compute_dtype)d, &bytes);
        for (int round = 0; round < 2; round++) {
            ek_packed_cache_info info;
            ek_model *m = load(dir, (ek_compute_dtype)d, cache, &info);
            assert_non_null(m);
            assert_int_equal(info.state, round == 0 ? EK_PACKED_CACHE_WRITTEN : EK_PACKED_CACHE_HIT);
            if (round == 0) assert_non_null(strstr(info.reason, "no such file"));
            else assert_true(info.pack_ms == 0.0); /* nothing packed */
            assert_int_equal(info.weights_hashed, 1); /* a directory: tensors hashed */
            assert_int_equal(info.private_bytes, 0);
            assert_true(info.file_bytes > 0);
            struct stat sb;
            assert_int_equal(stat(info.path, &sb), 0);
            assert_int_equal((uint64_t)sb.st_size, info.file_bytes);
            assert_int_equal(sb.st_mode & 0222, 0); /* read-only */
            snprintf(paths[d], sizeof paths[d], "%s", info.path);
            float *v = embed(m);
            assert_memory_equal(v, ref, bytes);
            free(v);
            ek_model_free(m);
        }
        free(ref);
    }
    for (int a = 0; a < 3; a++)
        for (int b = a + 1; b < 3; b++)
            if (paths[a][0] && paths[b][0]) assert_string_not_equal(paths[a], paths[b]);
}

/* Two registry versions with the same files: one cache file (one inode),
 * keyed by the registry's digests (no hashing); another model: its own. */
static void test_versions_share_one_file(void **state) {
    (void)state;
    ek_packed_cache_info a, b, c;
    ek_model *m1 = load("pc@1", EK_DTYPE_F32, NULL, &a);
    ek_model *m2 = load("pc@2", EK_DTYPE_F32, NULL, &b);
    ek_model *m3 = load("other", EK_DTYPE_F32, NULL, &c);
    assert_non_null(m1), assert_non_null(m2), assert_non_null(m3);
    assert_int_equal(a.weights_hashed, 0);
    assert_int_equal(b.state, EK_PACKED_CACHE_HIT);
    assert_string_equal(a.path, b.path);
    assert_string_not_equal(a.path, c.path);
    assert_non_null(strstr(a.path, "/packed/"));
    /* Both mappings are of the same inode (what /proc/self/maps shows). */
    struct stat sb;
    assert_int_equal(stat(a.path, &sb), 0);
    char *maps = ts_read_file("/proc/self/maps", NULL);
    assert_non_null(maps);
    char ino[64];
    snprintf(ino, sizeof ino, " %llu ", (unsigned long long)sb.st_ino);
    int n = 0;
    for (const char *p = maps; (p = strstr(p, ino)); p++)
        if (strstr(p, ".ekpack") && strchr(p, '\n') > strstr(p, ".ekpack")) n++;
    free(maps);
    assert_true(n >= 2);
    float *v1 = embed(m1), *v2 = embed(m2);
    assert_memory_equal(v1, v2, embed_bytes(m1));
    free(v1), free(v2);
    ek_model_free(m1), ek_model_free(m2), ek_model_free(m3);
}

static void flip_byte(const char *path, long at) {
    chmod(path, 0644);
    FILE *f = fopen(path, "r+b");
    assert_non_null(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    int c = fgetc(f);
    assert_int_equal(fseek(f, at, SEEK_SET), 0);
    fputc(c ^ 0x5a, f);
    fclose(f);
}

/* Damaged payload, damaged header, truncated, another model's file under
 * this name: each is ignored, repacked and rewritten, with the reason. */
static void test_bad_files_repaired(void **state) {
    (void)state;
    char cache[4096];
    snprintf(cache, sizeof cache, "%s/c-bad", g_home);
    const char *dir = ts_path(ts_models_dir(), "tiny-mean");
    size_t bytes;
    float *ref = plain_embedding(dir, EK_DTYPE_F32, &bytes);
    ek_packed_cache_info info, other;
    ek_model *m = load(dir, EK_DTYPE_F32, cache, &info);
    ek_model_free(m);
    /* tiny-cls has the same shapes, so its file has the same size. */
    m = load(ts_path(ts_models_dir(), "tiny-cls"), EK_DTYPE_F32, cache, &other);
    ek_model_free(m);
    assert_int_equal(other.file_bytes, info.file_bytes);
    static const char *const want[] = {"payload checksum", "header checksum", "expected", "another model"};
    for (int k = 0; k < 4; k++) {
        if (k == 0) flip_byte(info.path, (long)(info.file_bytes / 2));
        if (k == 1) flip_byte(info.path, 20);
        if (k == 2) {
            chmod(info.path, 0644);
            assert_int_equal(truncate(info.path, (off_t)(info.file_bytes / 3)), 0);
        }
        if (k == 3) {
            size_t len = 0;
            char *data = ts_read_file(other.path, &len);
            assert_non_null(data);
            assert_int_equal(len, info.file_bytes);
            chmod(info.path, 0644);
            assert_int_equal(ts_write_file(info.path, data, len), 0);
            free(data);
        }
        ek_packed_cache_info got;
        m = load(dir, EK_DTYPE_F32, cache, &got);
        assert_non_null(m);
        assert_int_equal(got.state, EK_PACKED_CACHE_WRITTEN);
        if (!strstr(got.reason, want[k])) fail_msg("case %d: reason \"%s\" lacks \"%s\"", k, got.reason, want[k]);
        float *v = embed(m);
        assert_memory_equal(v, ref, bytes);
        free(v);
        ek_model_free(m);
        m = load(dir, EK_DTYPE_F32, cache, &got);
        assert_int_equal(got.state, EK_PACKED_CACHE_HIT);
        ek_model_free(m);
    }
    free(ref);
}

/* A cache directory that cannot be made: private memory, with the reason. */
static void test_unusable_dir_falls_back(void **state) {
    (void)state;
    char file[4096], cache[4200];
    snprintf(file, sizeof file, "%s/not-a-dir", g_home);
    assert_int_equal(ts_write_file(file, "x", 1), 0);
    snprintf(cache, sizeof cache, "%s/cache", file);
    const char *dir = ts_path(ts_models_dir(), "tiny-mean");
    size_t bytes;
    float *ref = plain_embedding(dir, EK_DTYPE_F32, &bytes);
    ek_packed_cache_info info;
    ek_model *m = load(dir, EK_DTYPE_F32, cache, &info);
    assert_non_null(m);
    assert_int_equal(info.state, EK_PACKED_CACHE_FALLBACK);
    assert_non_null(strstr(info.reason, "not-a-dir"));
    assert_true(info.private_bytes > 0);
    float *v = embed(m);
    assert_memory_equal(v, ref, bytes);
    free(v), free(ref);
    ek_model_free(m);
}

/* The pool loads through the cache too: a second version with the same
 * files maps the first one's file. */
static void test_pool_uses_cache(void **state) {
    (void)state;
    ek_pool *p;
    assert_int_equal(ek_pool_new(g_ctx, g_home, 0, &p), EK_OK);
    ek_pool_handle *h1, *h2;
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pc@1", &h1), EK_OK);
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pc@2", &h2), EK_OK);
    ek_packed_cache_info a, b;
    assert_int_equal(ek_model_packed_cache_info(ek_pool_model(h1), &a), EK_OK);
    assert_int_equal(ek_model_packed_cache_info(ek_pool_model(h2), &b), EK_OK);
    assert_int_equal(b.state, EK_PACKED_CACHE_HIT);
    assert_string_equal(a.path, b.path);
    ek_pool_release(h1), ek_pool_release(h2);
    ek_pool_free(p);
}

/* Writers at once (threads here; processes behave the same: each renames
 * its own complete temporary file): every load succeeds from the cache,
 * one file remains and no temporary is left behind. */
struct cw {
    const char *cache;
    pthread_barrier_t *go;
    int state;
};

static void *cw_thread(void *arg) {
    struct cw *w = arg;
    ek_ctx *c;
    if (ek_ctx_new(&c)) return NULL;
    ek_load_options o;
    ek_load_options_init(&o);
    o.packed_cache_dir = w->cache;
    ek_model *m = NULL;
    pthread_barrier_wait(w->go);
    if (ek_registry_load_model(c, g_reg, ts_path(ts_models_dir(), "tiny-mean"), &o, &m) == EK_OK) {
        ek_packed_cache_info info;
        ek_model_packed_cache_info(m, &info);
        w->state = (int)info.state;
    }
    ek_model_free(m);
    ek_ctx_free(c);
    return NULL;
}

static void test_concurrent_writers(void **state) {
    (void)state;
    char cache[4096];
    snprintf(cache, sizeof cache, "%s/c-concurrent", g_home);
    enum { T = 4 };
    pthread_t th[T];
    struct cw w[T];
    pthread_barrier_t go;
    pthread_barrier_init(&go, NULL, T);
    for (int i = 0; i < T; i++) {
        w[i] = (struct cw){cache, &go, -1};
        assert_int_equal(pthread_create(&th[i], NULL, cw_thread, &w[i]), 0);
    }
    for (int i = 0; i < T; i++) pthread_join(th[i], NULL);
    pthread_barrier_destroy(&go);
    for (int i = 0; i < T; i++)
        assert_true(w[i].state == EK_PACKED_CACHE_WRITTEN || w[i].state == EK_PACKED_CACHE_HIT);
    DIR *d = opendir(cache);
    assert_non_null(d);
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) {
        if (de->d_name[0] == '.' && (!de->d_name[1] || !strcmp(de->d_name, ".."))) continue;
        assert_null(strstr(de->d_name, ".tmp-"));
        files++;
    }
    closedir(d);
    assert_int_equal(files, 1);
}

/* References: name, name@N, name@alias, a directory; errors name the ref. */
static void test_load_by_reference(void **state) {
    (void)state;
    assert_int_equal(ek_registry_alias(g_ctx, g_reg, "pc", "prod", 2), EK_OK);
    static const char *const refs[] = {"pc", "pc@1", "pc@prod", "pc@latest"};
    for (size_t i = 0; i < sizeof refs / sizeof refs[0]; i++) {
        ek_model *m = NULL;
        assert_int_equal(ek_registry_load_model(g_ctx, g_reg, refs[i], NULL, &m), EK_OK);
        ek_model_free(m);
    }
    ek_model *m = NULL;
    assert_int_not_equal(ek_registry_load_model(g_ctx, g_reg, "pc@9", NULL, &m), EK_OK);
    assert_null(m);
    assert_non_null(strstr(ek_ctx_last_error(g_ctx), "pc"));
    assert_int_not_equal(ek_registry_load_model(g_ctx, g_reg, "./no/such/dir", NULL, &m), EK_OK);
    assert_null(m);
}

/* The checksum streams: any split gives the same sum; one flipped bit
 * changes it. */
/* The pipeline's LOAD of a registry version maps the registry's cache:
 * `ek embed --model name` shares the packed weights like the pool does. */
static void test_engine_uses_cache(void **state) {
    (void)state;
    ek_config cfg;
    ek_config_defaults(&cfg);
    cfg.threads = 1;
    snprintf(cfg.registry_home, sizeof cfg.registry_home, "%s", g_home);
    ek_engine_options eo = {.config = &cfg};
    ek_engine *en;
    assert_int_equal(ek_engine_new(g_ctx, &eo, &en), EK_OK);
    ek_cmd cmd;
    ek_cmd_ctx cx;
    ek_cmd_init(&cmd, EK_CMD_LOAD_MODEL, "m");
    cmd.u.load.ref = "pc@2";
    ek_cmd_ctx_init(&cx, g_ctx);
    if (ek_engine_execute(en, &cmd, &cx)) fail_msg("load: %s", cx.message);
    void *token;
    const ek_model *m = ek_engine_acquire(en, "m", &token);
    assert_non_null(m);
    ek_packed_cache_info info;
    assert_int_equal(ek_model_packed_cache_info(m, &info), EK_OK);
    assert_true(info.state == EK_PACKED_CACHE_HIT || info.state == EK_PACKED_CACHE_WRITTEN);
    char want[600];
    snprintf(want, sizeof want, "%s/packed/", g_home);
    assert_memory_equal(info.path, want, strlen(want));
    /* The same file the library's and the pool's loads of that version map. */
    ek_packed_cache_info lib;
    ek_model *lm = load("pc@2", EK_DTYPE_F32, NULL, &lib);
    assert_string_equal(info.path, lib.path);
    ek_model_free(lm);
    ek_engine_release(en, token);
    ek_engine_free(en);
}

/* ek_registry_gc_packed: a load that finds its file refreshes the file's
 * mtime; gc removes files unused for longer than the age and abandoned
 * temporaries, keeps the rest, and a later load writes the file again. */
static void set_age(const char *path, long days) {
    struct timespec t[2];
    clock_gettime(CLOCK_REALTIME, &t[0]);
    t[0].tv_sec -= days * 86400;
    t[1] = t[0];
    assert_int_equal(utimensat(AT_FDCWD, path, t, 0), 0);
}

static void test_gc_packed(void **state) {
    (void)state;
    ek_pool *p;
    assert_int_equal(ek_pool_new(g_ctx, g_home, 0, &p), EK_OK);
    ek_pool_handle *h;
    assert_int_equal(ek_pool_acquire(g_ctx, p, "pc@1", &h), EK_OK);
    ek_packed_cache_info a;
    assert_int_equal(ek_model_packed_cache_info(ek_pool_model(h), &a), EK_OK);
    ek_pool_release(h);
    ek_pool_free(p);
    assert_true(a.state == EK_PACKED_CACHE_HIT || a.state == EK_PACKED_CACHE_WRITTEN);

    /* Used a moment ago: kept.  An old temporary is removed, a fresh one kept. */
    char old_tmp[600], new_tmp[600];
    snprintf(old_tmp, sizeof old_tmp, "%s/packed/.tmp-old-1.ekpack", g_home);
    snprintf(new_tmp, sizeof new_tmp, "%s/packed/.tmp-new-2.ekpack", g_home);
    assert_int_equal(ts_write_file(old_tmp, "x", 1), 0);
    assert_int_equal(ts_write_file(new_tmp, "y", 1), 0);
    set_age(old_tmp, 1);
    size_t n;
    uint64_t bytes;
    assert_int_equal(ek_registry_gc_packed(g_ctx, g_reg, EK_PACKED_MAX_AGE_DEFAULT_S, &n, &bytes), EK_OK);
    assert_int_equal(n, 1);
    assert_int_equal(bytes, 1);
    struct stat sb;
    assert_int_equal(stat(a.path, &sb), 0);
    assert_int_not_equal(stat(old_tmp, &sb), 0);
    assert_int_equal(stat(new_tmp, &sb), 0);
    unlink(new_tmp);

    /* A hit refreshes the mtime: aged 40 days, then loaded, it survives. */
    set_age(a.path, 40);
    ek_packed_cache_info b;
    ek_model *m = load("pc@1", EK_DTYPE_F32, NULL, &b);
    assert_int_equal(b.state, EK_PACKED_CACHE_HIT);
    ek_model_free(m);
    assert_int_equal(ek_registry_gc_packed(g_ctx, g_reg, EK_PACKED_MAX_AGE_DEFAULT_S, &n, NULL), EK_OK);
    assert_int_equal(n, 0);

    /* Unused for 40 days: removed (with its size), and the next load
     * writes it again, with the same embeddings. */
    float *before = embed(m = load("pc@1", EK_DTYPE_F32, NULL, &b));
    ek_model_free(m);
    set_age(a.path, 40);
    assert_int_equal(stat(a.path, &sb), 0);
    assert_int_equal(ek_registry_gc_packed(g_ctx, g_reg, EK_PACKED_MAX_AGE_DEFAULT_S, &n, &bytes), EK_OK);
    assert_true(n >= 1);
    assert_true(bytes >= (uint64_t)sb.st_size);
    assert_int_not_equal(stat(a.path, &sb), 0);
    m = load("pc@1", EK_DTYPE_F32, NULL, &b);
    assert_int_equal(b.state, EK_PACKED_CACHE_WRITTEN);
    float *after = embed(m);
    assert_memory_equal(before, after, embed_bytes(m));
    free(before);
    free(after);
    ek_model_free(m);
    assert_int_equal(ek_registry_gc_packed(g_ctx, g_reg, -1, NULL, NULL), EK_ERR_INVALID_ARG);
}

static void test_checksum_streams(void **state) {
    (void)state;
    unsigned char buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = (unsigned char)(i * 37 + 11);
    ek_pc_sum s;
    ek_pc_sum_init(&s);
    ek_pc_sum_add(&s, buf, sizeof buf);
    uint64_t whole = ek_pc_sum_final(&s);
    static const size_t cuts[] = {1, 63, 64, 65, 200, 999};
    for (size_t c = 0; c < sizeof cuts / sizeof cuts[0]; c++) {
        ek_pc_sum_init(&s);
        ek_pc_sum_add(&s, buf, cuts[c]);
        ek_pc_sum_add(&s, buf + cuts[c], sizeof buf - cuts[c]);
        assert_true(ek_pc_sum_final(&s) == whole);
    }
    buf[500] ^= 1;
    ek_pc_sum_init(&s);
    ek_pc_sum_add(&s, buf, sizeof buf);
    assert_true(ek_pc_sum_final(&s) != whole);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_checksum_streams),
        cmocka_unit_test(test_engine_uses_cache),
        cmocka_unit_test(test_gc_packed),
        cmocka_unit_test(test_written_then_hit_bitwise),
        cmocka_unit_test(test_versions_share_one_file),
        cmocka_unit_test(test_bad_files_repaired),
        cmocka_unit_test(test_unusable_dir_falls_back),
        cmocka_unit_test(test_pool_uses_cache),
        cmocka_unit_test(test_concurrent_writers),
        cmocka_unit_test(test_load_by_reference),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
