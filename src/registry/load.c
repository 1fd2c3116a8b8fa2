/* registry/load.c — loading a model named by a reference, with the
 * packed-weight cache under HOME/packed (docs/REGISTRY.md, "Memory").
 *
 * For registry versions the cache key uses the SHA-256s the registry
 * recorded for the weight files instead of hashing the tensors at every
 * load: the files are immutable once READY (blobs are verified when
 * installed, `ek models verify` re-hashes them), so the digest is bound to
 * the bytes.  A directory reference hashes its tensors. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/reg.h"
#include "runtime/ctx.h"

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

int reg_weights_digest(ek_ctx *ctx, ek_registry *r, const char *name, int64_t version, char *hex) {
    ek_reg_file *f = NULL;
    size_t n = 0;
    int rc = (int)ek_registry_files(ctx, r, name, version, &f, &n);
    if (rc) return rc;
    crypto_generichash_state h;
    unsigned char d[32];
    int any = 0;
    /* Rows come ordered by path.  Paths and digests are NUL-separated so
     * no two lists hash alike. */
    int bad = sodium_init() < 0 || crypto_generichash_init(&h, NULL, 0, sizeof d);
    for (size_t i = 0; i < n && !bad; i++) {
        if (!ends_with(f[i].path, ".safetensors") && !ends_with(f[i].path, ".safetensors.index.json")) continue;
        any = 1;
        crypto_generichash_update(&h, (const unsigned char *)f[i].path, strlen(f[i].path) + 1);
        crypto_generichash_update(&h, (const unsigned char *)f[i].sha256, strlen(f[i].sha256) + 1);
    }
    free(f);
    if (bad || crypto_generichash_final(&h, d, sizeof d))
        return ek_err_set(&ctx->err, EK_ERR_INTERNAL, "%s@%lld: cannot hash the file list", name, (long long)version);
    if (!any) {
        hex[0] = '\0'; /* nothing to vouch for: the loader hashes what it reads */
        return EK_OK;
    }
    memcpy(hex, "sha256-files:", 13);
    for (size_t i = 0; i < sizeof d; i++) snprintf(hex + 13 + 2 * i, 3, "%02x", d[i]);
    return EK_OK;
}

int reg_model_load(ek_ctx *ctx, const char *home, const char *dir, const char *digest, const ek_load_options *opts,
                   ek_model **out) {
    ek_load_options o;
    if (opts) o = *opts;
    else ek_load_options_init(&o);
    char cache[3200];
    int rc = EK_OK;
    if (!o.packed_cache_dir) {
        if ((rc = reg_path(cache, sizeof cache, &ctx->err, "%s/packed", home))) return rc;
        o.packed_cache_dir = cache;
    }
    if (!o.weights_digest && digest && *digest) o.weights_digest = digest;
    return ek_model_load_opts(ctx, dir, &o, out);
}

int reg_load_version(ek_ctx *ctx, ek_registry *r, pthread_mutex_t *lock, const ek_reg_version *v,
                     ek_sig_policy at_least, const ek_load_options *opts, ek_model **out) {
    ek_err *e = &ctx->err;
    /* Verified when loaded (not on each use): the check re-hashes files. */
    if (lock) pthread_mutex_lock(lock);
    int rc = reg_verify_for_load(r, v, at_least, e);
    /* The weight files' digest keys the packed-weight cache (HOME/packed):
     * versions with the same weights map one file. */
    char digest[80] = "";
    if (!rc) rc = reg_weights_digest(ctx, r, v->name, v->version, digest);
    if (lock) pthread_mutex_unlock(lock);
    char dir[4096];
    if (!rc) rc = reg_path(dir, sizeof dir, e, "%s/models/%s/%lld", ek_registry_home(r), v->name, (long long)v->version);
    if (!rc) rc = reg_model_load(ctx, ek_registry_home(r), dir, digest, opts, out);
    return rc;
}

ek_status ek_registry_load_model_verified(ek_ctx *ctx, ek_registry *r, const char *ref, ek_sig_policy verify,
                                          const ek_load_options *opts, ek_model **out) {
    if (!ctx || !r || !ref || !out) return EK_ERR_INVALID_ARG;
    *out = NULL;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (reg_is_path_ref(ref)) return (ek_status)reg_model_load(ctx, ek_registry_home(r), ref, NULL, opts, out);
    ek_reg_version v;
    int rc = (int)ek_registry_lookup(ctx, r, ref, &v);
    if (!rc) rc = reg_require_ready(&v, e);
    if (!rc) rc = reg_load_version(ctx, r, NULL, &v, verify, opts, out);
    return (ek_status)rc;
}

ek_status ek_registry_load_model(ek_ctx *ctx, ek_registry *r, const char *ref, const ek_load_options *opts,
                                 ek_model **out) {
    return ek_registry_load_model_verified(ctx, r, ref, EK_SIG_OFF, opts, out);
}
