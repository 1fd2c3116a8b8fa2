/* registry/sign.h — internals of signed installs: the canonical manifest
 * (manifest.c), minisign signatures verified with libsodium (minisign.c),
 * trusted keys in the registry (keys.c), fetching files from a directory or
 * over HTTP with verification as they arrive (download.c), and the pull /
 * update orchestration (pull.c).  See docs/SIGNING.md. */
#ifndef EK_REGISTRY_SIGN_H
#define EK_REGISTRY_SIGN_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "embedkit_registry.h"

#define REG_MANIFEST "manifest.json"
#define REG_MINISIG "manifest.json.minisig"
#define REG_MANIFEST_FORMAT "embedkit-manifest-1"
#define REG_MANIFEST_MAX (16u << 20)  /* bytes: a bound on "endless data" */
#define REG_MINISIG_MAX 4096u

struct ek_registry;

/* ---- manifest (registry/manifest.c) ---- */

typedef struct reg_mfile {
    char *path;               /* relative, '/'-separated, validated */
    uint64_t size;
    char sha256[65];
} reg_mfile;

typedef struct reg_manifest {
    char name[EK_REGISTRY_NAME_MAX + 1];
    int64_t version;
    reg_mfile *files;         /* sorted by path (strcmp) */
    size_t n;
} reg_manifest;

void reg_manifest_free(reg_manifest *m);
/* The canonical bytes of m (malloc'd, NUL-terminated; length in *len). */
char *reg_manifest_serialize(const reg_manifest *m, size_t *len);
/* Parses and validates manifest bytes: known fields only, valid name,
 * version, paths (relative, no "." or ".." parts, no control characters,
 * no duplicates) and digests, and the bytes must be exactly the canonical
 * serialisation.  Errors name `what` (e.g. the URL). */
int reg_manifest_parse(const char *bytes, size_t len, const char *what, reg_manifest *m, ek_err *e);
/* A path as a manifest may hold it (what names the manifest in errors). */
int reg_manifest_path_ok(const char *path, const char *what, ek_err *e);
/* Every regular file under dir (symlinks followed), relative paths sorted,
 * without the top-level manifest.json and manifest.json.minisig. */
int reg_list_files(const char *dir, char ***paths, size_t *n, ek_err *e);
/* The one directory walker of the registry: sorted relative paths of the
 * regular files under dir (symlinks followed, at most 16 levels, 100000
 * files).  reg_list_files is REG_WALK_SKIP_MANIFEST; imports add
 * REG_WALK_NO_CONTROL. */
enum {
    REG_WALK_SKIP_MANIFEST = 1, /* leave out manifest.json(.minisig) at the top */
    REG_WALK_NO_CONTROL = 2     /* refuse names with control characters */
};
int reg_walk_files(const char *dir, unsigned flags, char ***paths, size_t *n, ek_err *e);
void reg_free_paths(char **paths, size_t n);
/* Index of path in m->files, or -1. */
long reg_manifest_find(const reg_manifest *m, const char *path);
/* SHA-256 of bytes as lowercase hex. */
void reg_sha256_hex(const void *data, size_t len, char hex[65]);

/* ---- minisign (registry/minisign.c) ---- */

typedef struct reg_pubkey {
    unsigned char id[8];
    unsigned char pk[32];
    char b64[64];             /* the base64 line, canonical */
} reg_pubkey;

typedef struct reg_sig {
    unsigned char alg[2];     /* "ED" (prehashed) or "Ed" (legacy) */
    unsigned char id[8];
    unsigned char sig[64];
    char trusted[1024];       /* trusted comment text, without its prefix */
    unsigned char global[64];
} reg_sig;

/* Key id as minisign prints it: little-endian u64, 16 upper-case hex. */
void reg_key_id_hex(const unsigned char id[8], char out[17]);
/* A minisign public key file ("untrusted comment: ..." then the base64
 * line) or the bare base64 line.  comment (may be NULL) gets the comment. */
int reg_pubkey_parse(const char *text, reg_pubkey *k, char *comment, size_t cap, ek_err *e);
/* The four-line signature file.  Sets *code on failure. */
int reg_sig_parse(const char *text, size_t len, reg_sig *s, ek_verify_code *code, ek_err *e);
/* Verifies s over msg with k, in minisign's order: algorithm, key id,
 * signature over the message (BLAKE2b-512 of it for "ED"), then the global
 * signature over signature || trusted comment.  Sets *code on failure. */
int reg_sig_verify(const reg_sig *s, const reg_pubkey *k, const void *msg, size_t len,
                   int allow_legacy, ek_verify_code *code, ek_err *e);

/* ---- trusted keys (registry/keys.c) ---- */

/* Verifies sig_text over msg against the trusted keys (any scope) whose id
 * the signature names.  key_id (17) and trusted (1024) receive the signer
 * and the trusted comment.  The signed bytes are only parsed after this. */
int reg_keys_verify(struct ek_registry *r, const char *sig_text, size_t sig_len, const void *msg,
                    size_t len, int allow_legacy, char *key_id, char *trusted, ek_verify_code *code,
                    ek_err *e);
/* Whether key_id is trusted for model name (globally or for that name). */
int reg_keys_scope_ok(struct ek_registry *r, const char *key_id, const char *name, ek_verify_code *code,
                      ek_err *e);

/* ---- fetching (registry/download.c) ---- */

typedef struct reg_fetch_opts {
    int connect_timeout_ms, stall_timeout_s, min_rate, timeout_s;
    int max_retries, backoff_ms, max_redirects;
    void (*progress)(void *arg, const ek_pull_progress *p);
    void *progress_arg;
} reg_fetch_opts;

typedef struct reg_source reg_source;

/* base: an http(s) URL of a directory, or a local directory. */
int reg_source_open(const char *base, const reg_fetch_opts *o, reg_source **out, ek_err *e);
void reg_source_close(reg_source *s);
int reg_source_is_local(const reg_source *s);
const char *reg_source_base(const reg_source *s);
/* A small file into memory (*buf malloc'd, NUL-terminated), at most max
 * bytes (more is an error).  Returns 1 when the file does not exist, 0 when
 * read, or an error status. */
int reg_source_get_small(reg_source *s, const char *rel, size_t max, char **buf, size_t *len,
                         ek_verify_code *code, ek_err *e);
/* Fetches rel into part (resuming from what part holds), never accepting
 * more than size bytes, and checks size and SHA-256.  A part that fails
 * verification is removed.  index/n_files/all_* feed the progress events. */
typedef struct reg_file_job {
    const char *rel;
    const char *part;
    uint64_t size;
    const char *sha256;
    int index, n_files;
    uint64_t all_done, all_total;
} reg_file_job;
int reg_source_get_file(reg_source *s, const reg_file_job *job, ek_verify_code *code, ek_err *e);
uint64_t reg_source_bytes(const reg_source *s);
int reg_source_retries(const reg_source *s);

/* ---- provenance (registry/pull.c), used by import.c ---- */

/* Exactly these files (sorted by path) must be imported, with these sizes
 * and digests; recorded with the version as its provenance. */
typedef struct reg_import_extra {
    const reg_mfile *files;
    size_t n_files;
    const char *source;       /* recorded as the version's source */
    int is_signed;
    const char *key_id, *trusted_comment, *manifest_sha256, *origin, *repo, *revision;
    /* A pull: an install that fails after its PENDING row (a full disk,
     * canaries that do not load) is undone entirely (no FAILED row, the
     * highest version seen restored, blobs only it referenced removed), so
     * a refused pull leaves the registry as it found it. */
    int undo_on_failure;
} reg_import_extra;

/* Inserts the provenance row of version row vid (inside the caller's
 * transaction). */
int reg_provenance_insert(struct ek_registry *r, int64_t vid, const reg_import_extra *x, ek_err *e);

#endif
