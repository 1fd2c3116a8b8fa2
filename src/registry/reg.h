/* registry/reg.h — internals shared by the registry files: the registry
 * handle, SQL helpers that turn SQLite errors into one-line messages, file
 * system helpers (durable installs, hashing, links) and import locks.
 *
 * Layout under home:
 *   registry.db                     the database (WAL: -wal and -shm beside)
 *   blobs/sha256-<hex>              content-addressed files (mode 0444)
 *   models/<name>/<version>/        links to blobs, one per file
 *   staging/<name>@<version>/       an import in progress (temp copies, the
 *                                   version tree before its rename)
 *   locks/<name>@<version>.lock     flock'd by the importing process: a
 *                                   PENDING version whose lock is free
 *                                   belongs to a dead process */
#ifndef EK_REGISTRY_REG_H
#define EK_REGISTRY_REG_H

#include <pthread.h>
#include <sqlite3.h>
#include <stdint.h>
#include <time.h>

#include "base/err.h"
#include "embedkit_registry.h"

struct ek_registry {
    char home[3072];
    char db_path[3200];
    sqlite3 *db;
    int busy_timeout_ms;
    char who[128];
};

/* ---- database (registry/db.c) ---- */

/* Message for a failed SQLite call: names the statement's purpose, and turns
 * BUSY into "locked by another process", CORRUPT/NOTADB into "damaged", FULL
 * into "disk full".  Returns the ek status. */
int reg_sql_fail(struct ek_registry *r, ek_err *e, int rc, const char *what);
/* Runs SQL without results. */
int reg_exec(struct ek_registry *r, const char *sql, const char *what, ek_err *e);
/* BEGIN IMMEDIATE (takes the write lock, waiting up to busy_timeout). */
int reg_begin(struct ek_registry *r, ek_err *e);
int reg_commit(struct ek_registry *r, ek_err *e);
void reg_rollback(struct ek_registry *r);
int reg_prepare(struct ek_registry *r, const char *sql, sqlite3_stmt **st, ek_err *e);
/* Appends to the event log (inside the caller's transaction). */
int reg_event(struct ek_registry *r, const char *model, int64_t version,
              const char *action, const char *detail, ek_err *e);
/* Model row id of name, or 0 when absent; -1 on error. */
int64_t reg_model_id(struct ek_registry *r, const char *name, ek_err *e);
int64_t reg_now(void);

/* ---- names and references (registry/names.c) ---- */

int reg_name_check(const char *what, const char *name, ek_err *e);
/* Splits "name[@sel]": name into name (cap EK_REGISTRY_NAME_MAX + 1);
 * *version > 0 for a number, else sel copied into alias ("" = latest). */
int reg_parse_ref(const char *ref, char *name, char *alias, int64_t *version, ek_err *e);
/* 1 when ref names a directory rather than a registry model (registry/query.c). */
int reg_is_path_ref(const char *ref);
/* EK_OK when v is READY; else EK_ERR_UNSUPPORTED naming its status and
 * reason: only READY versions are served (registry/query.c). */
int reg_require_ready(const ek_reg_version *v, ek_err *e);

/* ---- loading models (registry/load.c) ---- */

/* Digest of the weight files of v (every *.safetensors and
 * *.safetensors.index.json, by path and SHA-256 as the registry recorded
 * them): the packed-weight cache key's stand-in for hashing the tensors.
 * hex gets up to 80 bytes ("" when the version has no such file). */
int reg_weights_digest(ek_ctx *ctx, ek_registry *r, const char *name, int64_t version, char *hex);
/* Loads the model in dir with opts (NULL: defaults) and the packed-weight
 * cache HOME/packed unless opts names another; digest (may be NULL) is
 * passed as the weights digest unless opts has one.  Errors land in ctx. */
int reg_model_load(ek_ctx *ctx, const char *home, const char *dir, const char *digest,
                   const ek_load_options *opts, ek_model **out);
/* What every load of a looked-up READY version does (ek_registry_load_model,
 * ek_registry_load_model_verified, the pool): its signature checked once
 * under the stricter of at_least and the registry's verify_on_load, the
 * weight-file digest, then reg_model_load.  lock (may be NULL) is held
 * around the part that uses r's connection, not around the load. */
int reg_load_version(ek_ctx *ctx, ek_registry *r, pthread_mutex_t *lock, const ek_reg_version *v,
                     ek_sig_policy at_least, const ek_load_options *opts, ek_model **out);

/* ---- files (registry/fsutil.c) ---- */

int reg_mkdirs(const char *path, ek_err *e);
int reg_fsync_dir(const char *path, ek_err *e);
/* rm -rf of path (no error when absent). */
int reg_rm_tree(const char *path, ek_err *e);
/* Copies src to dst (created exclusively) hashing the bytes written; fsyncs
 * dst.  hex gets the digest (65 bytes), *size the length. */
int reg_copy_hash(const char *src, const char *dst, char *hex, uint64_t *size, ek_err *e);
/* SHA-256 of a file as lowercase hex; *size its length. */
int reg_hash_file(const char *path, char *hex, uint64_t *size, ek_err *e);
/* Takes the import lock of name@version without waiting: 1 taken (*fd
 * holds it), 0 held by someone else, <0 error. */
int reg_lock_try(struct ek_registry *r, const char *name, int64_t version, int *fd, ek_err *e);
void reg_lock_release(struct ek_registry *r, const char *name, int64_t version, int fd);
/* snprintf into dst reporting truncation as an error. */
int reg_path(char *dst, size_t cap, ek_err *e, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Re-hashes the files of v (READY or CORRUPT) against the registry; a
 * mismatch or missing file marks it CORRUPT and fails naming the file
 * (copied to bad).  A CORRUPT version whose files match again is READY. */
int reg_verify_version(struct ek_registry *r, const ek_reg_version *v, char *bad, size_t cap, ek_err *e);

/* ---- canaries (registry/health.c) ---- */

#define REG_N_CANARIES 4
extern const char *const ek_reg_canaries[REG_N_CANARIES];


/* Embeds the canary texts with the model in dir: *vecs (malloc'd, n * *dim)
 * and the time spent embedding. */
int reg_embed_canaries(const char *dir, float **vecs, int *n, int *dim,
                       double *load_ms, double *embed_ms, ek_err *e);
double reg_ms_since(const struct timespec *t0);

/* Status of name@version into status ("" when absent): 1 found, 0 absent,
 * -1 error (registry/import.c). */
int reg_version_status(struct ek_registry *r, const char *name, int64_t version, char *status, size_t cap,
                       ek_err *e);
/* ek_registry_import; with x != NULL (a verified install, registry/sign.h)
 * the files must be exactly x's and match its digests, and x's provenance
 * is recorded with the version (registry/import.c). */
struct reg_import_extra;
int reg_import(struct ek_registry *r, const char *dir, const char *name, const ek_import_options *o,
               const struct reg_import_extra *x, int64_t *version_out, ek_err *e);
/* ---- re-verification after install (registry/sigcheck.c) ---- */

/* The verify_on_load setting (EK_SIG_OFF when unset). */
int reg_get_policy(struct ek_registry *r, ek_sig_policy *p, ek_err *e);
/* What serving v needs of its signature: checked under the stricter of
 * at_least and verify_on_load (nothing to do when both are off). */
int reg_verify_for_load(struct ek_registry *r, const ek_reg_version *v, ek_sig_policy at_least, ek_err *e);
/* ek_registry_verify_signature on a looked-up version; o must not be NULL. */
int reg_verify_signature(struct ek_registry *r, const ek_reg_version *v, int require_signed, ek_sig_report *o,
                         ek_err *e);

/* Recovery of dead imports (registry/import.c), run at open. */
int reg_recover(struct ek_registry *r, ek_err *e);

#endif
