/* embedkit_registry.h — the model registry and the model pool (public API).
 *
 * The registry is a directory ("home", by default ~/.local/share/embedkit,
 * see ek_registry_default_home) holding:
 *   registry.db                SQLite: models, versions, files, aliases,
 *                              events, canary embeddings, health results
 *   blobs/sha256-<hex>         every imported file once, named by its digest
 *   models/<name>/<version>/   a version's files: links to blobs
 *
 * A version is PENDING while it is imported and READY once every file is in
 * place and verified; a READY version never changes (only its status may
 * move on to CORRUPT or RETIRED).  Versions are integers 1, 2, ...; aliases
 * (`production`, `canary`) are movable names for a version; `latest` is the
 * highest READY version, computed, never stored.
 *
 * Model references, accepted wherever a model is named:
 *   DIR            a path (contains '/', or names an existing directory)
 *   name           the latest READY version of name
 *   name@7         version 7
 *   name@alias     the version the alias points at (`name@latest` too)
 *
 * Names (model and alias): 1..64 characters from [A-Za-z0-9._-], starting
 * with a letter or digit; an alias is not all digits and not "latest".
 *
 * Every fallible call returns an ek_status and leaves its message in the
 * ek_ctx passed to it (ek_ctx_last_error).  No hidden global state: the home
 * directory is always passed in. */
#ifndef EMBEDKIT_REGISTRY_H
#define EMBEDKIT_REGISTRY_H

#include <stddef.h>
#include <stdint.h>

#include "embedkit.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EK_REGISTRY_SCHEMA 3      /* PRAGMA user_version this build writes */
#define EK_REGISTRY_NAME_MAX 64

/* ---- home and names ----------------------------------------------------- */

/* Writes $EK_HOME, else $XDG_DATA_HOME/embedkit, else $HOME/.local/share/
 * embedkit into buf.  The only function that reads the environment. */
ek_status ek_registry_default_home(ek_ctx *ctx, char *buf, size_t cap);

/* 1 if name is a valid model name (what = "model") or alias (what =
 * "alias"); otherwise 0 and, when ctx is given, the reason. */
int ek_registry_name_ok(ek_ctx *ctx, const char *what, const char *name);

/* ---- registry ------------------------------------------------------------ */

typedef struct ek_registry ek_registry;

typedef struct ek_registry_options {
    int busy_timeout_ms;   /* wait this long for another writer; 0 = 5000 */
    const char *who;       /* recorded in the event log; NULL = user name */
} ek_registry_options;

/* Opens (creating when absent) the registry under home.  Refuses a database
 * file that is not a valid registry (it is never recreated or modified),
 * migrates an older schema forward, and cleans leftovers of imports whose
 * process died (their versions become FAILED). */
ek_status ek_registry_open(ek_ctx *ctx, const char *home,
                           const ek_registry_options *opts, ek_registry **out);
void ek_registry_close(ek_registry *reg);
const char *ek_registry_home(const ek_registry *reg);

/* Steps of an import, for fault injection in tests (see import hook). */
typedef enum ek_import_step {
    EK_IMPORT_PENDING = 1,   /* the PENDING version row is committed */
    EK_IMPORT_STAGED = 2,    /* every file copied + hashed into staging */
    EK_IMPORT_FILES = 3,     /* file rows committed */
    EK_IMPORT_BLOBS = 4,     /* blobs installed */
    EK_IMPORT_TREE = 5,      /* version directory in place */
    EK_IMPORT_CANARIES = 6,  /* golden embeddings computed */
    EK_IMPORT_READY = 7      /* READY committed (hook sees the end) */
} ek_import_step;

typedef struct ek_import_options {
    int64_t version;        /* 0: one more than the highest ever seen */
    int no_canaries;        /* 1: do not load the model nor store goldens
                               (the files need not be a loadable model) */
    /* Called after each step; a non-zero return aborts the import there as a
     * crash would (nothing is cleaned up; the next open recovers). */
    int (*hook)(void *arg, ek_import_step step);
    void *hook_arg;
} ek_import_options;

/* Imports every file under dir as name@version: hashes each file into the
 * blob store, assembles models/<name>/<version>/, stores the canary
 * embeddings, then marks the version READY.  *version_out (may be NULL)
 * receives the version number. */
ek_status ek_registry_import(ek_ctx *ctx, ek_registry *reg, const char *dir,
                             const char *name, const ek_import_options *opts,
                             int64_t *version_out);

/* One version as listed. */
typedef struct ek_reg_version {
    char name[EK_REGISTRY_NAME_MAX + 1];
    int64_t version;
    char status[12];          /* PENDING READY FAILED CORRUPT RETIRED */
    int64_t created_at;       /* unix seconds */
    int64_t ready_at;         /* 0 when never READY */
    uint64_t total_bytes;
    int n_files;
    int is_latest;
    char aliases[256];        /* "canary,production" */
    char reason[512];         /* why FAILED / CORRUPT / RETIRED */
    char health[12];          /* last check: healthy degraded unhealthy, "" */
    char health_reason[256];
    int64_t health_at;
    char source[1024];        /* directory it was imported from */
    int64_t highest_seen;     /* highest version ever seen for the model */
} ek_reg_version;

typedef struct ek_reg_file {
    char path[1024];          /* relative to the version directory */
    uint64_t size;
    char sha256[65];
} ek_reg_file;

typedef struct ek_reg_event {
    int64_t id;
    int64_t at;               /* unix seconds */
    char who[128];
    char model[EK_REGISTRY_NAME_MAX + 1];
    int64_t version;          /* 0 when the event is not about one version */
    char action[32];
    char detail[512];
} ek_reg_event;

/* All versions (of one model when name != NULL), by name then version.
 * *out is malloc'd (free it with free()). */
ek_status ek_registry_list(ek_ctx *ctx, ek_registry *reg, const char *name,
                           ek_reg_version **out, size_t *n);

/* Resolves a registry reference (name, name@N, name@alias) to its version.
 * Any status is returned (check info->status). */
ek_status ek_registry_lookup(ek_ctx *ctx, ek_registry *reg, const char *ref,
                             ek_reg_version *info);
/* The files of name@version (*out malloc'd). */
ek_status ek_registry_files(ek_ctx *ctx, ek_registry *reg, const char *name,
                            int64_t version, ek_reg_file **out, size_t *n);
/* The event log, oldest first (of one model when name != NULL). */
ek_status ek_registry_events(ek_ctx *ctx, ek_registry *reg, const char *name,
                             ek_reg_event **out, size_t *n);

/* Points alias at name@version (a READY version); creates or moves it. */
ek_status ek_registry_alias(ek_ctx *ctx, ek_registry *reg, const char *name,
                            const char *alias, int64_t version);
/* Removes an alias. */
ek_status ek_registry_unalias(ek_ctx *ctx, ek_registry *reg, const char *name,
                              const char *alias);
/* Retires a version: status RETIRED, its directory removed (blobs stay until
 * gc).  Refused while an alias points at it unless force (which removes
 * those aliases). */
ek_status ek_registry_remove(ek_ctx *ctx, ek_registry *reg, const char *ref, int force);

/* Re-hashes the version's files against the registry.  A mismatch (or a
 * missing file) makes the version CORRUPT and fails with a message naming
 * the file; *bad_file (may be NULL, cap bytes) receives its path. */
ek_status ek_registry_verify(ek_ctx *ctx, ek_registry *reg, const char *ref,
                             char *bad_file, size_t cap);

/* Deletes blobs no live version references (and leftover staging files);
 * counts and bytes freed in the outputs (may be NULL). */
ek_status ek_registry_gc(ek_ctx *ctx, ek_registry *reg, size_t *blobs_removed,
                         uint64_t *bytes_freed);

/* Prunes the packed-weight cache HOME/packed (docs/REGISTRY.md, "Memory"):
 * removes cache files no load has used for max_age_s seconds (a load that
 * finds a file refreshes its mtime) and writers' temporary files older than
 * an hour.  Always safe: a process that maps a removed file keeps it until
 * it unmaps it, and the next load writes it again.  Counts and bytes in the
 * outputs (may be NULL). */
#define EK_PACKED_MAX_AGE_DEFAULT_S (30 * 24 * 3600)
ek_status ek_registry_gc_packed(ek_ctx *ctx, ek_registry *reg, int64_t max_age_s, size_t *files_removed,
                                uint64_t *bytes_freed);

/* Resolves any model reference (see the top of this file) to the directory
 * ek_model_load should read: path must hold cap bytes.  A registry reference
 * must name a READY version; home may be NULL for ek_registry_default_home. */
ek_status ek_registry_resolve(ek_ctx *ctx, const char *home, const char *ref,
                              char *path, size_t cap);

/* ---- health checks --------------------------------------------------------- */

typedef struct ek_health {
    char result[12];          /* healthy, degraded, unhealthy */
    char reason[512];
    double min_cosine;        /* over the canary texts (-2 when not run) */
    double load_ms;           /* reloading the version */
    double embed_ms;          /* embedding the canaries */
    double golden_embed_ms;   /* the same at import */
    /* Signature re-verification (when asked for, or by the registry's
     * verify_on_load setting; see ek_registry_verify_signature): */
    char signature[12];       /* "verified", "unsigned", "failed"; "" = not checked */
    int signature_code;       /* an ek_verify_code: why it failed */
    char signature_file[1024];/* the file a failure is about */
    char key_id[17];          /* the signer, when verified */
} ek_health;

/* Reloads the version, embeds the canary texts and compares them with the
 * goldens stored at import (cosine >= 0.9999), measures latency, and with
 * rehash also re-hashes its files (a mismatch makes it CORRUPT).  The result
 * is stored in the registry; the return is EK_OK whenever the check ran
 * (inspect out->result). */
ek_status ek_registry_check(ek_ctx *ctx, ek_registry *reg, const char *ref,
                            int rehash, ek_health *out);

typedef struct ek_check_options {
    int rehash;               /* also re-hash the files against the registry */
    int verify_signature;     /* also re-verify the signed manifest and its
                                 signature against the trusted keys now, and
                                 re-hash the files against that manifest */
    int require_signature;    /* an unsigned version is unhealthy (implies
                                 verify_signature) */
} ek_check_options;

/* ek_registry_check with options (NULL = none).  The registry's
 * verify_on_load setting (ek_registry_set_verify_on_load) strengthens them:
 * "signed" turns verify_signature on, "required" require_signature too.
 * A signature that no longer verifies makes the result unhealthy, with the
 * reason (its EK_VERIFY_ code name and the file) in out->reason and
 * out->signature_code / signature_file; an unsigned version is reported
 * (out->signature "unsigned") and, unless required, not a failure. */
ek_status ek_registry_check_opts(ek_ctx *ctx, ek_registry *reg, const char *ref,
                                 const ek_check_options *opts, ek_health *out);

/* ---- signed manifests, trusted keys, verified installs (docs/SIGNING.md) ---- */

/* Why a verified install or a download was refused: one code per failure,
 * so tools need not parse messages (ek_verify_code_name gives its name). */
typedef enum ek_verify_code {
    EK_VERIFY_OK = 0,
    EK_VERIFY_UNSIGNED,          /* no manifest.json.minisig, unsigned not allowed */
    EK_VERIFY_NO_MANIFEST,       /* no manifest.json at the source */
    EK_VERIFY_MALFORMED_MANIFEST,/* manifest.json unreadable, invalid or not canonical */
    EK_VERIFY_MALFORMED_SIGNATURE,/* the .minisig is not a minisign signature */
    EK_VERIFY_MALFORMED_KEY,     /* a public key is not a minisign public key */
    EK_VERIFY_LEGACY,            /* legacy (non-prehashed "Ed") signature, not allowed */
    EK_VERIFY_UNTRUSTED_KEY,     /* signed by a key that is not trusted (for that model) */
    EK_VERIFY_BAD_SIGNATURE,     /* the signature does not match manifest.json */
    EK_VERIFY_BAD_TRUSTED_COMMENT,/* the trusted comment was edited */
    EK_VERIFY_NAME_MISMATCH,     /* the signed manifest names another model */
    EK_VERIFY_ROLLBACK,          /* a version lower than the highest ever seen */
    EK_VERIFY_CONFLICT,          /* name@version installed with other content */
    EK_VERIFY_MISSING_FILE,      /* a file the manifest lists is absent */
    EK_VERIFY_EXTRA_FILE,        /* a file the manifest does not list is present */
    EK_VERIFY_SIZE_MISMATCH,     /* a file's size differs (truncated, too long) */
    EK_VERIFY_TOO_LARGE,         /* the server sent more bytes than the manifest lists */
    EK_VERIFY_DIGEST_MISMATCH,   /* a file's SHA-256 differs */
    EK_VERIFY_DOWNLOAD,          /* the network failed (after the retries) */
    EK_VERIFY_NO_SOURCE          /* update: the model was not pulled from a source */
} ek_verify_code;

/* "EK_VERIFY_DIGEST_MISMATCH" etc. */
const char *ek_verify_code_name(ek_verify_code code);

/* Writes the canonical manifest of every file under dir (except
 * manifest.json and manifest.json.minisig) to dir/manifest.json: same
 * directory, same bytes.  sha256_hex (65 bytes, may be NULL) receives the
 * manifest's own digest. */
ek_status ek_manifest_write(ek_ctx *ctx, const char *dir, const char *name, int64_t version,
                            char *sha256_hex);

/* A trusted minisign public key: for one model, or for all (scope ""). */
typedef struct ek_trusted_key {
    char key_id[17];          /* as minisign shows it: 16 upper-case hex digits */
    char scope[EK_REGISTRY_NAME_MAX + 1];  /* model name, "" = every model */
    char public_key[64];      /* the base64 line of the .pub file */
    char comment[256];        /* its untrusted comment */
    int64_t added_at;
} ek_trusted_key;

/* Trusts the key in pubkey_text (the contents of a minisign .pub file, or
 * its base64 line) for model (NULL or "" = every model).  out may be NULL. */
ek_status ek_keys_add(ek_ctx *ctx, ek_registry *reg, const char *pubkey_text, const char *model,
                      ek_trusted_key *out);
/* Every trusted key, by scope then id (*out malloc'd). */
ek_status ek_keys_list(ek_ctx *ctx, ek_registry *reg, ek_trusted_key **out, size_t *n);
/* Stops trusting key_id for model (NULL = in every scope it has). */
ek_status ek_keys_remove(ek_ctx *ctx, ek_registry *reg, const char *key_id, const char *model,
                         size_t *removed);

/* One step of a pull, for progress displays. */
typedef struct ek_pull_progress {
    const char *event;        /* "manifest", "file", "progress", "retry", "verified", "install", "done" */
    const char *path;         /* the file ("" for whole-pull events) */
    uint64_t done, total;     /* bytes of this file */
    uint64_t all_done, all_total;  /* bytes of every file */
    int index, n_files;       /* file index (0-based) and count */
    const char *detail;       /* why a retry happens, etc. */
} ek_pull_progress;

typedef struct ek_pull_options {
    const char *expect_name;  /* refuse a manifest for another model (NULL: any) */
    const char *endpoint;     /* Hub layout: source is a repo id served under
                                 ENDPOINT/<repo>/resolve/<revision>/<file> */
    const char *revision;     /* Hub revision; NULL = "main" */
    int allow_unsigned;       /* install without manifest.json.minisig (recorded) */
    int allow_legacy;         /* accept legacy (non-prehashed) signatures */
    int allow_downgrade;      /* accept a version below the highest ever seen */
    const char *alias;        /* move this alias to the installed version */
    int no_canaries;          /* see ek_import_options */
    int connect_timeout_ms;   /* 0 = 10000 */
    int stall_timeout_s;      /* a transfer below min_rate for this long fails; 0 = 30 */
    int min_rate;             /* bytes per second; 0 = 1000 */
    int timeout_s;            /* whole-request limit; 0 = none */
    int max_retries;          /* per file; 0 = 5, -1 = none */
    int backoff_ms;           /* first retry delay, doubled each retry; 0 = 500 */
    int max_redirects;        /* 0 = 5 */
    void (*progress)(void *arg, const ek_pull_progress *p);
    void *progress_arg;
    /* Forwarded to the import (ek_import_options.hook): tests crash there. */
    int (*hook)(void *arg, ek_import_step step);
    void *hook_arg;
} ek_pull_options;

typedef struct ek_pull_result {
    ek_verify_code code;      /* why it was refused; EK_VERIFY_OK when it was not */
    char file[1024];          /* the file a file-level refusal is about */
    char name[EK_REGISTRY_NAME_MAX + 1];
    int64_t version;          /* from the manifest (0 before it was read) */
    int is_signed;
    char key_id[17];
    char trusted_comment[1024];
    int already_installed;    /* that exact manifest was installed already */
    uint64_t bytes_downloaded;
    int retries;
} ek_pull_result;

/* Installs a model from source after verifying everything: source is an
 * http(s) URL of a directory serving manifest.json, manifest.json.minisig
 * and the files; a Hub repo id (with opts->endpoint); or a local directory
 * (which must hold exactly the files of its manifest).  The name and
 * version installed are the ones inside the signed manifest.  Files are
 * fetched into a private staging folder, each checked against the manifest
 * (size bounded, SHA-256 streamed), and only then imported; on any failure
 * the registry and the blob store are as they were.  res (may be NULL)
 * receives the outcome and, on refusal, its code. */
ek_status ek_registry_pull(ek_ctx *ctx, ek_registry *reg, const char *source,
                           const ek_pull_options *opts, ek_pull_result *res);

/* Asks the source the newest version of name was pulled from for its
 * current manifest and installs it when newer (res->already_installed when
 * not).  A version lower than the highest ever seen is refused
 * (EK_VERIFY_ROLLBACK) unless opts->allow_downgrade. */
ek_status ek_registry_update(ek_ctx *ctx, ek_registry *reg, const char *name,
                             const ek_pull_options *opts, ek_pull_result *res);

/* Where a version came from and who signed it. */
typedef struct ek_reg_provenance {
    int recorded;             /* 0: imported with `ek models add` (unsigned) */
    int is_signed;
    char key_id[17];
    char trusted_comment[1024];
    char manifest_sha256[65];
    char origin[2048];        /* URL, Hub endpoint or directory pulled from */
    char repo[256];           /* Hub repo id ("" otherwise) */
    char revision[128];
} ek_reg_provenance;

ek_status ek_registry_provenance(ek_ctx *ctx, ek_registry *reg, const char *name, int64_t version,
                                 ek_reg_provenance *out);

/* ---- re-verification after install (docs/SIGNING.md) ----------------------- */

/* When the signature of an installed version is checked again. */
typedef enum ek_sig_policy {
    EK_SIG_OFF = 0,           /* at install only (the default) */
    EK_SIG_SIGNED = 1,        /* a signed version must still verify; an unsigned
                                 one is served and reported as unsigned */
    EK_SIG_REQUIRED = 2       /* as SIGNED, and unsigned versions are refused */
} ek_sig_policy;

/* "off", "signed", "required". */
const char *ek_sig_policy_name(ek_sig_policy p);
/* Parses those names (and "on" = "signed"); 0 when known, -1 otherwise. */
int ek_sig_policy_parse(const char *text, ek_sig_policy *out);

/* The registry-wide setting verify_on_load (stored in the registry, schema
 * 3, table settings): applied by ek_registry_resolve, ek_pool_acquire (when
 * a version is loaded) and every health check.  Default EK_SIG_OFF. */
ek_status ek_registry_get_verify_on_load(ek_ctx *ctx, ek_registry *reg, ek_sig_policy *out);
ek_status ek_registry_set_verify_on_load(ek_ctx *ctx, ek_registry *reg, ek_sig_policy p);

typedef struct ek_sig_report {
    char state[12];           /* "verified", "unsigned", "failed" */
    ek_verify_code code;      /* why it failed (EK_VERIFY_OK otherwise; UNSIGNED
                                 when an unsigned version is refused) */
    char file[1024];          /* the file a failure is about */
    int is_signed;            /* installed as signed (provenance) */
    char key_id[17];
    char trusted_comment[1024];
    int files_checked;        /* files re-hashed against the manifest */
} ek_sig_report;

/* Re-verifies a READY or CORRUPT version as a pull would have: its stored
 * manifest.json.minisig over its stored manifest.json against the keys
 * trusted *now* (key present, scope allowing the model, same signer and
 * manifest as recorded at install), the manifest strict and naming this
 * name@version, and every file of the version directory re-hashed against
 * it (no file missing or extra).  An unsigned version (installed with
 * --allow-unsigned or `ek models add`) is reported as such: EK_OK, unless
 * require_signed (then EK_VERIFY_UNSIGNED).  Read-only: the version's
 * status is not changed.  On failure the message names the code and the
 * file, and out (may be NULL) has them. */
ek_status ek_registry_verify_signature(ek_ctx *ctx, ek_registry *reg, const char *ref,
                                       int require_signed, ek_sig_report *out);

/* ek_registry_resolve, with signature verification at least as strict as
 * verify (the registry's verify_on_load setting may make it stricter): a
 * registry reference whose version does not verify is refused with the
 * reason.  ek_registry_resolve is this with EK_SIG_OFF. */
ek_status ek_registry_resolve_opts(ek_ctx *ctx, const char *home, const char *ref,
                                   ek_sig_policy verify, char *path, size_t cap);

/* ---- model pool ------------------------------------------------------------- */

/* ---- loading by reference; the packed-weight cache ---------------------- */

/* Loads the model a reference names (DIR, name, name@N, name@alias; the
 * same checks as ek_registry_resolve, with the registry's verify_on_load
 * setting) with opts (NULL: the defaults).  Unless opts->packed_cache_dir
 * is set, the packed-weight cache HOME/packed is used; for a registry
 * version the cache key takes the SHA-256s the registry recorded for its
 * weight files instead of hashing the tensors.  Free with ek_model_free. */
ek_status ek_registry_load_model(ek_ctx *ctx, ek_registry *reg, const char *ref,
                                 const ek_load_options *opts, ek_model **out);

/* ek_registry_load_model with signature verification at least as strict
 * as verify (the registry's verify_on_load may make it stricter), checked
 * once: the pipeline's LOAD / SWAP pass registry.verify_on_load of their
 * configuration.  ek_registry_load_model is this with EK_SIG_OFF. */
ek_status ek_registry_load_model_verified(ek_ctx *ctx, ek_registry *reg, const char *ref,
                                          ek_sig_policy verify, const ek_load_options *opts,
                                          ek_model **out);

typedef enum ek_packed_cache_state {
    EK_PACKED_CACHE_OFF = 0,      /* no cache directory: packed in private memory */
    EK_PACKED_CACHE_HIT = 1,      /* a valid file was mapped: nothing was packed */
    EK_PACKED_CACHE_WRITTEN = 2,  /* packed, written, and the file mapped; reason
                                     says why there was no usable file */
    EK_PACKED_CACHE_FALLBACK = 3  /* the cache could not be used: packed in
                                     private memory; reason says why */
} ek_packed_cache_state;

typedef struct ek_packed_cache_info {
    ek_packed_cache_state state;
    char path[4096];              /* the cache file ("" when OFF) */
    char reason[512];
    uint64_t file_bytes;          /* its size (mapped, shared) */
    uint64_t private_bytes;       /* packed weights + fused QKV this model
                                     holds in private memory (0 when mapped) */
    int weights_hashed;           /* 1: the tensors were hashed for the key,
                                     0: a weights digest was given */
    double key_ms, open_ms, pack_ms, write_ms; /* where the load spent its time */
} ek_packed_cache_info;

/* What the packed-weight cache did when model was loaded. */
ek_status ek_model_packed_cache_info(const ek_model *model, ek_packed_cache_info *out);

/* Loaded models keyed by (name, version), shared by threads: a load asked
 * for by many threads at once happens once; idle versions are unloaded
 * least-recently-used first when the loaded total exceeds the budget; a
 * version held by a caller is never unloaded.  References are resolved at
 * each acquire, so moving an alias sends new requests to the new version
 * while running ones finish on the old. */
typedef struct ek_pool ek_pool;
typedef struct ek_pool_handle ek_pool_handle;

typedef struct ek_pool_stats {
    size_t loaded;            /* versions in memory */
    size_t in_use;            /* of which held by callers */
    uint64_t bytes;           /* their model bytes */
    uint64_t budget;
    uint64_t loads;           /* model loads performed */
    uint64_t hits;            /* acquires served from memory */
    uint64_t waits;           /* acquires that waited for another's load */
    uint64_t evictions;       /* idle versions unloaded for the budget */
} ek_pool_stats;

/* budget_bytes: 0 = unlimited.  The pool opens its own registry connection. */
ek_status ek_pool_new(ek_ctx *ctx, const char *home, uint64_t budget_bytes,
                      ek_pool **out);
/* All handles must have been released. */
void ek_pool_free(ek_pool *pool);
/* Resolves ref (a registry reference; READY versions only) and returns a
 * handle to the loaded model, loading it once if needed.  Thread-safe. */
ek_status ek_pool_acquire(ek_ctx *ctx, ek_pool *pool, const char *ref,
                          ek_pool_handle **out);
const ek_model *ek_pool_model(const ek_pool_handle *h);
const char *ek_pool_handle_name(const ek_pool_handle *h);
int64_t ek_pool_handle_version(const ek_pool_handle *h);
/* Verify signatures when a version is loaded at least this strictly (the
 * registry's verify_on_load setting, read at each load, may be stricter).
 * A version already loaded is not verified again. */
void ek_pool_set_verify(ek_pool *pool, ek_sig_policy verify);
/* Returns the handle; the version stays loaded until the budget needs room. */
void ek_pool_release(ek_pool_handle *h);
void ek_pool_get_stats(ek_pool *pool, ek_pool_stats *out);

#ifdef __cplusplus
}
#endif
#endif /* EMBEDKIT_REGISTRY_H */
