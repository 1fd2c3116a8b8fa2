/* cli/bench_model.c — `ek bench all model`: what getting a model into
 * service costs, in a throw-away registry under $TMPDIR:
 *   - load: ek_model_load + ek_model_free of the directory (histogram);
 *   - import: ek_registry_import (hashing into the blob store, canary
 *     embeddings), the first import and the repeats (whose blobs exist);
 *   - alias switch: moving `production` between two versions (one SQLite
 *     transaction), and a pool acquire + release of name@production while
 *     both versions are loaded (the per-request resolve cost);
 *   - manifest hashing: ek_manifest_write over the model's files (MB/s),
 *     and SHA-256 of a memory buffer (MB/s, the hashing alone);
 *   - signature verification: a minisign prehashed ("ED") signature made
 *     here with a fresh libsodium key, checked by the registry's verifier
 *     over a manifest-sized message (latency) and a 16 MB one (MB/s). */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/err.h"
#include "cli/bench_stats.h"
#include "cli/bench_suite.h"
#include "cli/cli.h"
#include "embedkit_registry.h"
#include "registry/sign.h"

#define MCMD "bench model"

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw) {
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void rm_tree(const char *dir) { nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS); }

typedef struct model_arg {
    ek_ctx *ctx;
    const char *dir;
    ek_registry *reg;
    ek_pool *pool;
    const char *name, *ref;
    int64_t v[2];
    int flip;
    const void *msg;
    size_t len;
    const reg_sig *sig;
    const reg_pubkey *pk;
    char hex[65];
} model_arg;

static int do_load(void *p) {
    model_arg *a = p;
    ek_model *m = NULL;
    if (ek_model_load(a->ctx, a->dir, &m)) return 1;
    ek_model_free(m);
    return 0;
}

static int do_alias(void *p) {
    model_arg *a = p;
    a->flip ^= 1;
    return ek_registry_alias(a->ctx, a->reg, a->name, "production", a->v[a->flip]) != EK_OK;
}

static int do_acquire(void *p) {
    model_arg *a = p;
    ek_pool_handle *h;
    if (ek_pool_acquire(a->ctx, a->pool, a->ref, &h)) return 1;
    ek_pool_release(h);
    return 0;
}

static int do_sha256(void *p) {
    model_arg *a = p;
    reg_sha256_hex(a->msg, a->len, a->hex);
    return 0;
}

static int do_verify(void *p) {
    model_arg *a = p;
    ek_verify_code code;
    ek_err e;
    ek_err_clear(&e);
    return reg_sig_verify(a->sig, a->pk, a->msg, a->len, 0, &code, &e) != EK_OK;
}

static int do_manifest(void *p) {
    model_arg *a = p;
    return ek_manifest_write(a->ctx, a->dir, "bench", 1, a->hex) != EK_OK;
}

/* A minisign prehashed signature of msg with sk, as `minisign -S` makes:
 * Ed25519 over BLAKE2b-512(msg), then the global signature over the
 * signature and the trusted comment. */
static void sign_ed(const unsigned char sk[64], const unsigned char id[8], const void *msg, size_t len,
                    reg_sig *s) {
    unsigned char h[crypto_generichash_BYTES_MAX], g[64 + sizeof s->trusted];
    memset(s, 0, sizeof *s);
    s->alg[0] = 'E';
    s->alg[1] = 'D';
    memcpy(s->id, id, 8);
    crypto_generichash(h, sizeof h, msg, len, NULL, 0);
    crypto_sign_detached(s->sig, NULL, h, sizeof h, sk);
    snprintf(s->trusted, sizeof s->trusted, "timestamp:0\tfile:manifest.json\tbench");
    size_t tn = strlen(s->trusted);
    memcpy(g, s->sig, 64);
    memcpy(g + 64, s->trusted, tn);
    crypto_sign_detached(s->global, NULL, g, 64 + tn, sk);
}

/* Total bytes of the regular files directly under dir (a model directory). */
static double dir_bytes(const char *dir, const char *link_into) {
    char **paths = NULL;
    size_t n = 0;
    ek_err e;
    double total = 0;
    if (reg_list_files(dir, &paths, &n, &e)) return -1;
    for (size_t i = 0; i < n; i++) {
        char full[4096], dst[4096];
        struct stat st;
        snprintf(full, sizeof full, "%s/%s", dir, paths[i]);
        if (!stat(full, &st)) total += (double)st.st_size;
        /* Top-level files only: model directories are flat except the
         * sentence-transformers module folders, which are skipped here. */
        if (link_into && !strchr(paths[i], '/')) {
            snprintf(dst, sizeof dst, "%s/%s", link_into, paths[i]);
            char *abs = realpath(full, NULL);
            if (abs && symlink(abs, dst)) total = -1;
            free(abs);
        }
    }
    reg_free_paths(paths, n);
    return total;
}

typedef struct mrun {
    ek_ctx *ctx;
    cJSON *out;
    int json, buckets;
} mrun;

static int measure(mrun *r, const char *name, bench_fn fn, model_arg *a, const bench_plan *plan, double bytes) {
    bench_result res;
    if (bench_measure(fn, a, plan, &res)) return cli_fail(MCMD, "%s: %s", name, ek_ctx_last_error(r->ctx));
    cJSON *o = bench_result_json(&res, r->buckets);
    double mean_s = bench_hist_mean(&res.hist) * 1e-9;
    if (bytes > 0) {
        bench_num(o, "bytes", bytes);
        bench_num(o, "mb_per_s", mean_s > 0 ? bytes / mean_s / 1e6 : 0);
    }
    cJSON_AddItemToObject(r->out, name, o);
    if (!r->json)
        printf("%-22s p50 %10.3f ms  p99 %10.3f ms  max %10.3f ms%s", name,
               (double)bench_hist_percentile(&res.hist, 50) / 1e6, (double)bench_hist_percentile(&res.hist, 99) / 1e6,
               (double)res.hist.max / 1e6, bytes > 0 ? "" : "\n");
    if (!r->json && bytes > 0) printf("  %9.1f MB/s\n", mean_s > 0 ? bytes / mean_s / 1e6 : 0);
    return 0;
}

int ek_bench_model(int argc, char **argv) {
    const char *dir = NULL;
    int json = 0, quick = 0, buckets = 1, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--no-buckets")) buckets = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench all model --model DIR [--quick] [--no-buckets] [--json]\n"
                 "  model load, registry import, alias switch, pool acquire, manifest hashing and\n"
                 "  signature verification, in a temporary registry");
            return 0;
        } else if (!v) return cli_usage(MCMD, "%s needs a value (or is unknown)", a);
        else if (!strcmp(a, "--model")) dir = v, i++;
        else return cli_usage(MCMD, "unknown option %s", a);
    }
    if (!dir) return cli_usage(MCMD, "--model DIR is required");
    if (sodium_init() < 0) return cli_fail(MCMD, "libsodium failed to initialise");
    const char *tmp = getenv("TMPDIR");
    char home[4096], mdir[4200];
    snprintf(home, sizeof home, "%s/ek-bench-model-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (!mkdtemp(home)) return cli_fail(MCMD, "cannot create a directory under %s", tmp && *tmp ? tmp : "/tmp");
    snprintf(mdir, sizeof mdir, "%s/manifest-dir", home);
    ek_ctx *ctx = NULL;
    ek_registry *reg = NULL;
    ek_pool *pool = NULL;
    unsigned char *big = NULL;
    mrun r = {NULL, cJSON_CreateObject(), json, buckets};
    bench_str(r.out, "bench", "model");
    bench_str(r.out, "model", dir);
    if (ek_ctx_new(&ctx)) {
        rc = cli_fail(MCMD, "out of memory");
        goto out;
    }
    r.ctx = ctx;
    model_arg a = {.ctx = ctx, .dir = dir, .name = "bench", .ref = "bench@production"};
    double model_bytes = dir_bytes(dir, NULL);
    bench_num(r.out, "model_bytes", model_bytes);

    bench_plan few = {1, 3, quick ? 3 : 20, quick ? 0 : 1.0};
    if ((rc = measure(&r, "load", do_load, &a, &few, model_bytes))) goto out;

    /* Import: the first one hashes and stores every blob; the repeats find
     * them present.  Each is one call, so they are listed, not histogrammed. */
    if (ek_registry_open(ctx, home, NULL, &reg)) {
        rc = cli_fail(MCMD, "%s", ek_ctx_last_error(ctx));
        goto out;
    }
    a.reg = reg;
    cJSON *imp = cJSON_AddArrayToObject(r.out, "import_ms");
    for (int i = 0; i < (quick ? 2 : 3); i++) {
        uint64_t t0 = bench_now_ns();
        if (ek_registry_import(ctx, reg, dir, "bench", NULL, &a.v[i ? 1 : 0])) {
            rc = cli_fail(MCMD, "import: %s", ek_ctx_last_error(ctx));
            goto out;
        }
        double ms = (double)(bench_now_ns() - t0) / 1e6;
        cJSON_AddItemToArray(imp, cJSON_CreateNumber(ms));
        if (!json) printf("%-22s %10.3f ms\n", i ? "import (blobs present)" : "import (first)", ms);
    }
    bench_plan many = {2, 10, quick ? 20 : 200, quick ? 0 : 0.5};
    if ((rc = measure(&r, "alias_switch", do_alias, &a, &many, 0))) goto out;
    if (ek_pool_new(ctx, home, 0, &pool)) {
        rc = cli_fail(MCMD, "%s", ek_ctx_last_error(ctx));
        goto out;
    }
    /* Load both versions, then time acquires that resolve the alias. */
    a.pool = pool;
    if (do_alias(&a) || do_acquire(&a) || do_alias(&a) || do_acquire(&a)) {
        rc = cli_fail(MCMD, "pool: %s", ek_ctx_last_error(ctx));
        goto out;
    }
    bench_plan acq = {3, 50, quick ? 200 : 20000, quick ? 0 : 0.5};
    if ((rc = measure(&r, "pool_acquire_alias", do_acquire, &a, &acq, 0))) goto out;

    /* Manifest hashing over links to the model's files (the manifest is
     * written next to them, never into the model directory). */
    if (mkdir(mdir, 0700) || dir_bytes(dir, mdir) < 0) {
        rc = cli_fail(MCMD, "cannot link the model's files into %s", mdir);
        goto out;
    }
    a.dir = mdir;
    if ((rc = measure(&r, "manifest_hash", do_manifest, &a, &few, model_bytes))) goto out;

    /* SHA-256 and signature verification in memory. */
    size_t big_len = 16u << 20;
    big = malloc(big_len);
    if (!big) {
        rc = cli_fail(MCMD, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < big_len; i++) big[i] = (unsigned char)(i * 131u >> 3);
    a.msg = big;
    a.len = big_len;
    if ((rc = measure(&r, "sha256_16mb", do_sha256, &a, &few, (double)big_len))) goto out;
    unsigned char pk[32], sk[64], id[8];
    crypto_sign_keypair(pk, sk);
    randombytes_buf(id, sizeof id);
    reg_pubkey key;
    memset(&key, 0, sizeof key);
    memcpy(key.id, id, 8);
    memcpy(key.pk, pk, 32);
    reg_sig sig_small, sig_big;
    size_t small_len = 2048; /* a manifest of a dozen files */
    sign_ed(sk, id, big, small_len, &sig_small);
    sign_ed(sk, id, big, big_len, &sig_big);
    a.pk = &key;
    a.sig = &sig_small;
    a.len = small_len;
    bench_plan sigs = {3, 50, quick ? 200 : 5000, quick ? 0 : 0.3};
    if ((rc = measure(&r, "verify_signature_2kb", do_verify, &a, &sigs, (double)small_len))) goto out;
    a.sig = &sig_big;
    a.len = big_len;
    if ((rc = measure(&r, "verify_signature_16mb", do_verify, &a, &few, (double)big_len))) goto out;
    bench_num(r.out, "peak_rss_bytes", (double)bench_peak_rss());
    rc = 0;
out:
    if (!rc && json) rc = bench_emit(r.out);
    else cJSON_Delete(r.out);
    free(big);
    ek_pool_free(pool);
    ek_registry_close(reg);
    ek_ctx_free(ctx);
    rm_tree(home);
    return rc;
}
