/* registry/health.c — canary texts, the golden embeddings stored at import,
 * and the health check that compares against them.
 *
 * Why canaries: a hash proves the bytes are the ones imported, not that
 * this build still computes the same embeddings from them (a changed kernel,
 * a tokenizer regression, a different CPU path).  Embedding a few fixed
 * texts and comparing with what the version produced at import catches
 * both; the latency of that embedding is a cheap early warning too. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "registry/reg.h"
#include "runtime/ctx.h"

#define CANARY_MIN_COSINE 0.9999
/* Degraded when the canaries take this many times longer than at import
 * (and at least DEGRADED_MIN_MS more: tiny models are all noise). */
#define DEGRADED_RATIO 5.0
#define DEGRADED_MIN_MS 20.0

const char *const ek_reg_canaries[REG_N_CANARIES] = {
    "The quick brown fox jumps over the lazy dog.",
    "embedkit canary: a health check compares this sentence's embedding with the one stored at import.",
    "Ünïcödé, punctuation (!?), numbers 3.14159 and CJK 你好 all go through the tokenizer.",
    "a",
};

double reg_ms_since(const struct timespec *t0) {
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) * 1e-6;
}

int reg_embed_canaries(const char *dir, float **vecs, int *n, int *dim, double *load_ms,
                       double *embed_ms, ek_err *e) {
    *vecs = NULL;
    ek_ctx *ctx;
    if (ek_ctx_new(&ctx)) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    ek_ctx_set_threads(ctx, 1);
    ek_model *m = NULL;
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    /* Not through the packed-weight cache (HOME/packed) on purpose: its
     * key for a registry version is the digests recorded at install, so a
     * damaged model.safetensors would still map the good packed copy of
     * its dense layers and the canaries would not see the damage.  They
     * must run on the files. */
    int rc = ek_model_load(ctx, dir, &m);
    *load_ms = reg_ms_since(&t0);
    float *out = NULL;
    if (!rc) {
        ek_embed_options o;
        ek_embed_options_init(&o);
        *dim = ek_embed_dim(m, &o);
        out = malloc(sizeof *out * (size_t)*dim * REG_N_CANARIES);
        if (!out) rc = ek_err_set(&ctx->err, EK_ERR_NOMEM, "out of memory");
        /* Twice: the first call warms the workspace; the second is timed. */
        for (int pass = 0; pass < 2 && !rc; pass++) {
            clock_gettime(CLOCK_MONOTONIC, &t0);
            rc = ek_embed(ctx, m, ek_reg_canaries, NULL, REG_N_CANARIES, &o, out, NULL);
            *embed_ms = reg_ms_since(&t0);
        }
    }
    if (rc) {
        ek_err_set(e, rc, "%s", ek_ctx_last_error(ctx));
        free(out);
    } else {
        *vecs = out;
        *n = REG_N_CANARIES;
    }
    ek_model_free(m);
    ek_ctx_free(ctx);
    return rc;
}

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) {
        ab += (double)a[i] * b[i];
        aa += (double)a[i] * a[i];
        bb += (double)b[i] * b[i];
    }
    if (aa == 0 && bb == 0) return 1.0;
    if (aa == 0 || bb == 0) return 0.0;
    return ab / sqrt(aa * bb);
}

/* The goldens of a version: *g (n * dim floats, malloc'd), or n = 0. */
static int load_goldens(struct ek_registry *r, const ek_reg_version *v, float **g, int *n, int *dim,
                        double *golden_ms, ek_err *e) {
    *g = NULL;
    *n = *dim = 0;
    *golden_ms = 0;
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT g.idx, g.dim, g.embedding, v.golden_embed_ms FROM goldens g "
                            "JOIN versions v ON v.id = g.version_id JOIN models m ON m.id = v.model_id "
                            "WHERE m.name = ? AND v.version = ? ORDER BY g.idx", &st, e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, v->version);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        int idx = sqlite3_column_int(st, 0), d = sqlite3_column_int(st, 1);
        int bytes = sqlite3_column_bytes(st, 2);
        if (idx != *n || idx >= REG_N_CANARIES || d <= 0 || bytes != (int)(sizeof(float) * (size_t)d) ||
            (*dim && d != *dim)) {
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s@%lld: golden embedding %d is malformed in the registry",
                            v->name, (long long)v->version, idx);
            break;
        }
        if (!*g) {
            *dim = d;
            *g = malloc(sizeof **g * (size_t)d * REG_N_CANARIES);
            if (!*g) { rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory"); break; }
        }
        memcpy(*g + (size_t)idx * (size_t)d, sqlite3_column_blob(st, 2), (size_t)bytes);
        *golden_ms = sqlite3_column_double(st, 3);
        (*n)++;
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "reading golden embeddings");
    if (rc) {
        free(*g);
        *g = NULL;
        *n = 0;
    }
    return rc;
}

static int store_health(struct ek_registry *r, const ek_reg_version *v, const ek_health *h, ek_err *e) {
    int rc = reg_begin(r, e);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "INSERT INTO health(version_id, at, result, reason, min_cosine, load_ms, embed_ms) "
                             "SELECT v.id, ?, ?, ?, ?, ?, ? FROM versions v JOIN models m ON m.id = v.model_id "
                             "WHERE m.name = ? AND v.version = ?", &st, e))) {
        reg_rollback(r);
        return rc;
    }
    sqlite3_bind_int64(st, 1, reg_now());
    sqlite3_bind_text(st, 2, h->result, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, h->reason, -1, SQLITE_STATIC);
    if (h->min_cosine > -2) sqlite3_bind_double(st, 4, h->min_cosine);
    sqlite3_bind_double(st, 5, h->load_ms);
    sqlite3_bind_double(st, 6, h->embed_ms);
    sqlite3_bind_text(st, 7, v->name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 8, v->version);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "storing the health result");
    char detail[600];
    snprintf(detail, sizeof detail, "%s%s%s", h->result, *h->reason ? ": " : "", h->reason);
    if (!rc) rc = reg_event(r, v->name, v->version, "check", detail, e);
    if (rc) {
        reg_rollback(r);
        return rc;
    }
    return reg_commit(r, e);
}

ek_status ek_registry_check(ek_ctx *ctx, ek_registry *r, const char *ref, int rehash, ek_health *h) {
    ek_check_options o = {.rehash = rehash};
    return ek_registry_check_opts(ctx, r, ref, &o, h);
}

ek_status ek_registry_check_opts(ek_ctx *ctx, ek_registry *r, const char *ref, const ek_check_options *opts,
                                 ek_health *h) {
    if (!ctx || !r || !h) return EK_ERR_INVALID_ARG;
    ek_check_options co = {0};
    if (opts) co = *opts;
    int rehash = co.rehash;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    memset(h, 0, sizeof *h);
    h->min_cosine = -2;
    ek_reg_version v;
    int rc = (int)ek_registry_lookup(ctx, r, ref, &v);
    if (rc) return (ek_status)rc;
    if (strcmp(v.status, "READY") && strcmp(v.status, "CORRUPT"))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s@%lld is %s: nothing to check", v.name,
                          (long long)v.version, v.status);
    float *gold = NULL, *now = NULL;
    int ng = 0, gdim = 0, n = 0, dim = 0;
    snprintf(h->result, sizeof h->result, "unhealthy");
    ek_err sub;
    ek_err_clear(&sub);
    ek_sig_policy pol;
    if ((rc = reg_get_policy(r, &pol, e))) return (ek_status)rc;
    if (pol >= EK_SIG_SIGNED) co.verify_signature = 1;
    if (pol >= EK_SIG_REQUIRED) co.require_signature = 1;
    if (co.verify_signature || co.require_signature) {
        ek_sig_report sr;
        int bad = reg_verify_signature(r, &v, co.require_signature, &sr, &sub);
        snprintf(h->signature, sizeof h->signature, "%s", sr.state);
        h->signature_code = (int)sr.code;
        snprintf(h->signature_file, sizeof h->signature_file, "%s", sr.file);
        snprintf(h->key_id, sizeof h->key_id, "%s", sr.key_id);
        if (bad) {
            if (!*h->signature) snprintf(h->signature, sizeof h->signature, "failed");
            snprintf(h->reason, sizeof h->reason, "%.500s", sub.msg);
            goto store;
        }
    }
    if ((rehash || !strcmp(v.status, "CORRUPT")) && reg_verify_version(r, &v, NULL, 0, &sub)) {
        snprintf(h->reason, sizeof h->reason, "%.500s", sub.msg);
        goto store;
    }
    if ((rc = load_goldens(r, &v, &gold, &ng, &gdim, &h->golden_embed_ms, e))) return (ek_status)rc;
    char dir[4096];
    if ((rc = reg_path(dir, sizeof dir, e, "%s/models/%s/%lld", r->home, v.name, (long long)v.version))) goto out;
    if (reg_embed_canaries(dir, &now, &n, &dim, &h->load_ms, &h->embed_ms, &sub)) {
        snprintf(h->reason, sizeof h->reason, "cannot load or embed: %.480s", sub.msg);
        goto store;
    }
    if (ng == 0) {
        snprintf(h->result, sizeof h->result, "degraded");
        snprintf(h->reason, sizeof h->reason, "no golden embeddings stored (imported without canaries)");
        goto store;
    }
    if (ng != n || gdim != dim) {
        snprintf(h->reason, sizeof h->reason, "embedding shape changed: %d x %d now, %d x %d at import", n, dim,
                 ng, gdim);
        goto store;
    }
    h->min_cosine = 2;
    int worst = 0;
    for (int i = 0; i < n; i++) {
        double c = cosine(gold + (size_t)i * (size_t)dim, now + (size_t)i * (size_t)dim, dim);
        if (!(c >= h->min_cosine)) {
            h->min_cosine = c;
            worst = i;
        }
    }
    if (!(h->min_cosine >= CANARY_MIN_COSINE)) {
        snprintf(h->reason, sizeof h->reason, "canary %d: cosine %.6f with its golden embedding, below %.4f",
                 worst, h->min_cosine, CANARY_MIN_COSINE);
        goto store;
    }
    if (h->golden_embed_ms > 0 && h->embed_ms > DEGRADED_RATIO * h->golden_embed_ms &&
        h->embed_ms > h->golden_embed_ms + DEGRADED_MIN_MS) {
        snprintf(h->result, sizeof h->result, "degraded");
        snprintf(h->reason, sizeof h->reason, "canaries took %.1f ms, %.1fx the %.1f ms at import", h->embed_ms,
                 h->embed_ms / h->golden_embed_ms, h->golden_embed_ms);
        goto store;
    }
    snprintf(h->result, sizeof h->result, "healthy");
store:
    rc = store_health(r, &v, h, e);
out:
    free(gold);
    free(now);
    return (ek_status)rc;
}
