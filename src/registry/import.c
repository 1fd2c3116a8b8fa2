/* registry/import.c — importing a model directory as name@version, and
 * recovering imports whose process died.
 *
 * The order is what makes a crash at any point harmless:
 *   1. commit a PENDING version row while holding its import lock
 *   2. copy + hash every file into staging/<name>@<v>/ (fsync'd)
 *   3. commit the file rows (from now on gc keeps those blobs)
 *   4. re-hash each staged copy and rename it to blobs/sha256-<hex> (or drop
 *      it when that blob exists), fsync blobs/
 *   5. build the version tree of links in staging, fsync, rename it to
 *      models/<name>/<v>, fsync models/<name>
 *   6. load the model and embed the canary texts (the goldens)
 *   7. commit READY with the goldens, release the lock
 * Nothing is READY before 7, and 7 only happens once every byte it points
 * at is durable.  A PENDING row whose lock is free belongs to a dead
 * process: reg_recover (run at every open) marks it FAILED and removes its
 * staging and version directories; its blobs are verified content that gc
 * will collect when nothing else references them. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/reg.h"
#include "registry/sign.h"
#include "runtime/ctx.h"

typedef struct src_file {
    char *rel;          /* path relative to the source directory */
    char sha[65];
    uint64_t size;
} src_file;

typedef struct file_list {
    src_file *v;
    size_t n, cap;
} file_list;

static void list_free(file_list *l) {
    for (size_t i = 0; i < l->n; i++) free(l->v[i].rel);
    free(l->v);
    l->v = NULL;
    l->n = l->cap = 0;
}

/* The source's files (through the registry's one directory walker),
 * sorted by relative path. */
static int list_source(const char *src, file_list *l, ek_err *e) {
    char **paths = NULL;
    size_t n = 0;
    int rc = reg_walk_files(src, REG_WALK_NO_CONTROL, &paths, &n, e);
    if (rc) return rc;
    l->v = n ? calloc(n, sizeof *l->v) : NULL;
    if (n && !l->v) {
        reg_free_paths(paths, n);
        return ek_err_set(e, EK_ERR_NOMEM, "out of memory listing files");
    }
    for (size_t i = 0; i < n; i++) l->v[i].rel = paths[i]; /* ownership moves */
    l->n = l->cap = n;
    free(paths);
    return EK_OK;
}

/* Step 1: the PENDING row, under the import lock.  Decides the version
 * number, refuses an existing one, and clears a FAILED attempt at it. */
static int start(struct ek_registry *r, const char *name, const char *src, int64_t *version,
                 int *lock_fd, const reg_import_extra *x, int64_t *prev_high, int *model_new, ek_err *e) {
    int rc = reg_begin(r, e);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    int64_t mid = reg_model_id(r, name, e);
    if (mid < 0) goto fail;
    *model_new = mid == 0;
    *prev_high = 0;
    if (mid == 0) {
        if (reg_prepare(r, "INSERT INTO models(name, created_at) VALUES(?, ?)", &st, e)) goto fail;
        sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, reg_now());
        int s = sqlite3_step(st);
        sqlite3_finalize(st);
        st = NULL;
        if (s != SQLITE_DONE) { reg_sql_fail(r, e, s, "adding the model"); goto fail; }
        mid = sqlite3_last_insert_rowid(r->db);
    }
    if (*version == 0) {
        if (reg_prepare(r, "SELECT max(m.highest_version, coalesce(max(v.version), 0)) + 1 "
                           "FROM models m LEFT JOIN versions v ON v.model_id = m.id WHERE m.id = ?",
                        &st, e))
            goto fail;
        sqlite3_bind_int64(st, 1, mid);
        if (sqlite3_step(st) == SQLITE_ROW) *version = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        st = NULL;
        if (*version <= 0) { ek_err_set(e, EK_ERR_INTERNAL, "%s: cannot pick a version", name); goto fail; }
    }
    if (reg_prepare(r, "SELECT id, status FROM versions WHERE model_id = ? AND version = ?", &st, e))
        goto fail;
    sqlite3_bind_int64(st, 1, mid);
    sqlite3_bind_int64(st, 2, *version);
    int64_t old_id = 0;
    char old_status[16] = "";
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        old_id = sqlite3_column_int64(st, 0);
        snprintf(old_status, sizeof old_status, "%s", (const char *)sqlite3_column_text(st, 1));
    }
    sqlite3_finalize(st);
    st = NULL;
    if (s != SQLITE_ROW && s != SQLITE_DONE) { reg_sql_fail(r, e, s, "looking up the version"); goto fail; }
    if (old_id && strcmp(old_status, "PENDING") && strcmp(old_status, "FAILED")) {
        ek_err_set(e, EK_ERR_INVALID_ARG,
                   "%s@%lld already exists (%s); versions are immutable: import it as a new version",
                   name, (long long)*version, old_status);
        goto fail;
    }
    int got = reg_lock_try(r, name, *version, lock_fd, e);
    if (got < 0) goto fail;
    if (got == 0) {
        ek_err_set(e, EK_ERR_IO, "%s@%lld is being imported by another process right now",
                   name, (long long)*version);
        goto fail;
    }
    if (old_id) {
        /* A FAILED attempt, or a PENDING one whose importer died: replace it
         * (its leftovers go now, under our lock). */
        char p[4096];
        if (!reg_path(p, sizeof p, e, "%s/models/%s/%lld", r->home, name, (long long)*version))
            reg_rm_tree(p, e);
        if (reg_prepare(r, "DELETE FROM versions WHERE id = ?", &st, e)) goto fail;
        sqlite3_bind_int64(st, 1, old_id);
        s = sqlite3_step(st);
        sqlite3_finalize(st);
        st = NULL;
        if (s != SQLITE_DONE) { reg_sql_fail(r, e, s, "clearing the failed attempt"); goto fail; }
    }
    if (reg_prepare(r, "INSERT INTO versions(model_id, version, status, created_at, source, importer_pid) "
                       "VALUES(?, ?, 'PENDING', ?, ?, ?)", &st, e))
        goto fail;
    sqlite3_bind_int64(st, 1, mid);
    sqlite3_bind_int64(st, 2, *version);
    sqlite3_bind_int64(st, 3, reg_now());
    sqlite3_bind_text(st, 4, src, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, (int64_t)getpid());
    s = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (s != SQLITE_DONE) { reg_sql_fail(r, e, s, "adding the PENDING version"); goto fail; }
    if (x && reg_provenance_insert(r, sqlite3_last_insert_rowid(r->db), x, e)) goto fail;
    if (reg_prepare(r, "SELECT highest_version FROM models WHERE id = ?", &st, e)) goto fail;
    sqlite3_bind_int64(st, 1, mid);
    if (sqlite3_step(st) == SQLITE_ROW) *prev_high = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    st = NULL;
    if (reg_prepare(r, "UPDATE models SET highest_version = max(highest_version, ?) WHERE id = ?", &st, e))
        goto fail;
    sqlite3_bind_int64(st, 1, *version);
    sqlite3_bind_int64(st, 2, mid);
    s = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (s != SQLITE_DONE) { reg_sql_fail(r, e, s, "recording the highest version"); goto fail; }
    if (reg_event(r, name, *version, "import-start", src, e)) goto fail;
    if ((rc = reg_commit(r, e))) goto fail_unlocked;
    return EK_OK;
fail:
    rc = e->status ? e->status : EK_ERR_INTERNAL;
    reg_rollback(r);
fail_unlocked:
    if (*lock_fd >= 0) {
        reg_lock_release(r, name, *version, *lock_fd);
        *lock_fd = -1;
    }
    return rc;
}

/* Version row id of name@version; 0 if absent, -1 on error. */
static int64_t version_id(struct ek_registry *r, const char *name, int64_t version, ek_err *e) {
    sqlite3_stmt *st;
    if (reg_prepare(r, "SELECT v.id FROM versions v JOIN models m ON m.id = v.model_id "
                       "WHERE m.name = ? AND v.version = ?", &st, e))
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    int s = sqlite3_step(st);
    int64_t id = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        reg_sql_fail(r, e, s, "looking up the version");
        return -1;
    }
    return id;
}

int reg_version_status(struct ek_registry *r, const char *name, int64_t version, char *status, size_t cap,
                       ek_err *e) {
    sqlite3_stmt *st;
    status[0] = '\0';
    if (reg_prepare(r, "SELECT v.status FROM versions v JOIN models m ON m.id = v.model_id "
                       "WHERE m.name = ? AND v.version = ?", &st, e))
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) snprintf(status, cap, "%s", (const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        reg_sql_fail(r, e, s, "reading a version status");
        return -1;
    }
    return s == SQLITE_ROW;
}

/* Step 3. */
static int commit_files(struct ek_registry *r, int64_t vid, const file_list *l, ek_err *e) {
    int rc = reg_begin(r, e);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "INSERT INTO files(version_id, path, size, sha256) VALUES(?,?,?,?)", &st, e))) {
        reg_rollback(r);
        return rc;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < l->n && !rc; i++) {
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, vid);
        sqlite3_bind_text(st, 2, l->v[i].rel, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 3, (int64_t)l->v[i].size);
        sqlite3_bind_text(st, 4, l->v[i].sha, 64, SQLITE_STATIC);
        int s = sqlite3_step(st);
        if (s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "recording a file");
        total += l->v[i].size;
    }
    sqlite3_finalize(st);
    if (!rc) {
        char sql[128];
        snprintf(sql, sizeof sql, "UPDATE versions SET total_bytes = %llu WHERE id = %lld",
                 (unsigned long long)total, (long long)vid);
        rc = reg_exec(r, sql, "recording the size", e);
    }
    if (rc) {
        reg_rollback(r);
        return rc;
    }
    return reg_commit(r, e);
}

/* Step 4: a blob name only ever holds bytes whose digest was checked, so the
 * staged copy is read back and hashed again before it is renamed. */
static int install_blobs(struct ek_registry *r, const char *stage, const file_list *l, ek_err *e) {
    for (size_t i = 0; i < l->n; i++) {
        char tmp[4096], blob[4096], hex[65];
        uint64_t size;
        if (reg_path(tmp, sizeof tmp, e, "%s/%zu.tmp", stage, i) ||
            reg_path(blob, sizeof blob, e, "%s/blobs/sha256-%s", r->home, l->v[i].sha))
            return e->status;
        struct stat sb;
        if (lstat(blob, &sb) == 0) {
            unlink(tmp);
            continue;
        }
        int rc = reg_hash_file(tmp, hex, &size, e);
        if (rc) return rc;
        if (strcmp(hex, l->v[i].sha) || size != l->v[i].size)
            return ek_err_set(e, EK_ERR_IO,
                              "%s: staged copy of %s reads back with a different digest (%s, "
                              "expected %s): storage is failing", tmp, l->v[i].rel, hex, l->v[i].sha);
        if (rename(tmp, blob) != 0)
            return ek_err_set(e, EK_ERR_IO, "%s: cannot install: %s", blob, strerror(errno));
    }
    char blobs[4096];
    if (reg_path(blobs, sizeof blobs, e, "%s/blobs", r->home)) return e->status;
    return reg_fsync_dir(blobs, e);
}

/* Step 5: links, so identical files across versions share one inode (and
 * processes mapping them share page cache).  Symlinks when the file system
 * refuses hard links. */
static int build_tree(struct ek_registry *r, const char *stage, const char *name, int64_t version,
                      const file_list *l, ek_err *e) {
    char tree[4096], final[4096], parent[4096];
    if (reg_path(tree, sizeof tree, e, "%s/tree", stage) ||
        reg_path(parent, sizeof parent, e, "%s/models/%s", r->home, name) ||
        reg_path(final, sizeof final, e, "%s/%lld", parent, (long long)version))
        return e->status;
    int rc = reg_rm_tree(tree, e);
    if (!rc) rc = reg_mkdirs(tree, e);
    for (size_t i = 0; i < l->n && !rc; i++) {
        char blob[4096], dst[4096];
        if (reg_path(blob, sizeof blob, e, "%s/blobs/sha256-%s", r->home, l->v[i].sha) ||
            reg_path(dst, sizeof dst, e, "%s/%s", tree, l->v[i].rel))
            return e->status;
        char *slash = strrchr(dst, '/');
        *slash = '\0';
        if (slash > dst + strlen(tree) && (rc = reg_mkdirs(dst, e))) break;
        *slash = '/';
        if (link(blob, dst) != 0 && symlink(blob, dst) != 0)
            rc = ek_err_set(e, EK_ERR_IO, "%s: cannot link to %s: %s", dst, blob, strerror(errno));
        *slash = '\0';
        if (!rc) rc = reg_fsync_dir(dst, e);
    }
    if (!rc) rc = reg_mkdirs(parent, e);
    if (!rc) rc = reg_rm_tree(final, e); /* a leftover of a dead attempt, never READY */
    if (!rc && rename(tree, final) != 0)
        rc = ek_err_set(e, EK_ERR_IO, "%s: cannot move the version into place: %s", final, strerror(errno));
    if (!rc) rc = reg_fsync_dir(parent, e);
    return rc;
}

/* Step 7. */
static int commit_ready(struct ek_registry *r, const char *name, int64_t version, int64_t vid,
                        const float *vecs, int n, int dim, double embed_ms, const file_list *l,
                        const char *src, ek_err *e) {
    int rc = reg_begin(r, e);
    if (rc) return rc;
    sqlite3_stmt *st = NULL;
    if (vecs) {
        if ((rc = reg_prepare(r, "INSERT INTO goldens(version_id, idx, text, dim, embedding) "
                                 "VALUES(?,?,?,?,?)", &st, e)))
            goto out;
        for (int i = 0; i < n && !rc; i++) {
            sqlite3_reset(st);
            sqlite3_bind_int64(st, 1, vid);
            sqlite3_bind_int(st, 2, i);
            sqlite3_bind_text(st, 3, ek_reg_canaries[i], -1, SQLITE_STATIC);
            sqlite3_bind_int(st, 4, dim);
            sqlite3_bind_blob(st, 5, vecs + (size_t)i * (size_t)dim, (int)(sizeof(float) * (size_t)dim),
                              SQLITE_STATIC);
            int s = sqlite3_step(st);
            if (s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "storing a golden embedding");
        }
        sqlite3_finalize(st);
        st = NULL;
        if (rc) goto out;
    }
    if ((rc = reg_prepare(r, "UPDATE versions SET status = 'READY', ready_at = ?, golden_embed_ms = ? "
                             "WHERE id = ? AND status = 'PENDING'", &st, e)))
        goto out;
    sqlite3_bind_int64(st, 1, reg_now());
    if (vecs) sqlite3_bind_double(st, 2, embed_ms);
    else sqlite3_bind_null(st, 2);
    sqlite3_bind_int64(st, 3, vid);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) { rc = reg_sql_fail(r, e, s, "marking the version READY"); goto out; }
    if (sqlite3_changes(r->db) != 1) {
        rc = ek_err_set(e, EK_ERR_INTERNAL, "%s@%lld: no longer PENDING", name, (long long)version);
        goto out;
    }
    uint64_t total = 0;
    for (size_t i = 0; i < l->n; i++) total += l->v[i].size;
    char detail[1400];
    snprintf(detail, sizeof detail, "%zu files, %llu bytes from %.1200s%s", l->n,
             (unsigned long long)total, src, vecs ? "" : " (no canaries)");
    rc = reg_event(r, name, version, "import", detail, e);
out:
    if (rc) {
        reg_rollback(r);
        return rc;
    }
    return reg_commit(r, e);
}

/* Marks an import FAILED after an error (not after a simulated crash). */
static void mark_failed(struct ek_registry *r, const char *name, int64_t version, int64_t vid,
                        const char *why) {
    ek_err tmp;
    if (reg_begin(r, &tmp)) return;
    sqlite3_stmt *st;
    if (!reg_prepare(r, "UPDATE versions SET status = 'FAILED', reason = ? WHERE id = ? AND status = 'PENDING'",
                     &st, &tmp)) {
        sqlite3_bind_text(st, 1, why, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 2, vid);
        sqlite3_step(st);
        sqlite3_finalize(st);
    }
    reg_event(r, name, version, "import-failed", why, &tmp);
    reg_commit(r, &tmp);
}

/* Undoes a failed pull's attempt (reg_import_extra.undo_on_failure): its
 * version row goes (files, provenance and goldens with it), the highest
 * version seen goes back to what it was unless another import raised it
 * since, a model row this attempt created goes, and blobs that only this
 * attempt referenced are removed.  All under the write lock, like gc, so no
 * concurrent import can be about to reference a blob removed here.  Best
 * effort: if it cannot run, the FAILED row is the fallback (recovery and gc
 * clean up as after a crash). */
static void undo_attempt(struct ek_registry *r, const char *name, int64_t version, int64_t vid, int64_t prev_high,
                         int model_new, const file_list *l, const char *why) {
    ek_err tmp;
    if (reg_begin(r, &tmp)) {
        mark_failed(r, name, version, vid, why);
        return;
    }
    static const char *const sql[] = {
        "DELETE FROM versions WHERE id = ?1",
        "UPDATE models SET highest_version = ?2 WHERE name = ?3 AND highest_version = ?4",
        "DELETE FROM models WHERE ?5 AND name = ?3 AND NOT EXISTS (SELECT 1 FROM versions v WHERE v.model_id = models.id)",
    };
    int ok = 1;
    for (size_t i = 0; i < sizeof sql / sizeof *sql && ok; i++) {
        sqlite3_stmt *st;
        if (reg_prepare(r, sql[i], &st, &tmp)) { ok = 0; break; }
        for (int k = 1; k <= sqlite3_bind_parameter_count(st); k++) {
            const char *pn = sqlite3_bind_parameter_name(st, k);
            int which = pn ? atoi(pn + 1) : 0;
            if (which == 1) sqlite3_bind_int64(st, k, vid);
            else if (which == 2) sqlite3_bind_int64(st, k, prev_high);
            else if (which == 3) sqlite3_bind_text(st, k, name, -1, SQLITE_STATIC);
            else if (which == 4) sqlite3_bind_int64(st, k, version);
            else if (which == 5) sqlite3_bind_int(st, k, model_new);
        }
        ok = sqlite3_step(st) == SQLITE_DONE;
        sqlite3_finalize(st);
    }
    if (!ok || reg_event(r, name, version, "pull-failed", why, &tmp)) {
        reg_rollback(r);
        mark_failed(r, name, version, vid, why);
        return;
    }
    for (size_t i = 0; i < l->n; i++) {
        sqlite3_stmt *st;
        if (!l->v[i].sha[0]) continue; /* never copied */
        if (reg_prepare(r, "SELECT 1 FROM files WHERE sha256 = ? LIMIT 1", &st, &tmp)) break;
        sqlite3_bind_text(st, 1, l->v[i].sha, -1, SQLITE_STATIC);
        int used = sqlite3_step(st) == SQLITE_ROW;
        sqlite3_finalize(st);
        char p[4400];
        if (!used && !reg_path(p, sizeof p, NULL, "%s/blobs/sha256-%s", r->home, l->v[i].sha)) unlink(p);
    }
    reg_commit(r, &tmp);
}

/* A verified install (x != NULL) imports exactly the files it checked: the
 * directory must hold those paths and nothing else, and the bytes copied
 * into staging must hash to the same digests (the check is repeated on the
 * copy, so nothing changed in between can slip through). */
static int check_expected_set(const file_list *l, const char *src, const reg_import_extra *x, ek_err *e) {
    size_t i = 0, j = 0;
    while (i < l->n || j < x->n_files) {
        int c = i == l->n ? 1 : j == x->n_files ? -1 : strcmp(l->v[i].rel, x->files[j].path);
        if (c < 0)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: extra file %s is not in the signed manifest", src,
                              l->v[i].rel);
        if (c > 0)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: file %s of the signed manifest is missing", src,
                              x->files[j].path);
        i++;
        j++;
    }
    return EK_OK;
}

static int check_expected_digests(const file_list *l, const reg_import_extra *x, ek_err *e) {
    for (size_t i = 0; i < l->n; i++) {
        const reg_mfile *f = &x->files[i];
        if (l->v[i].size != f->size)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: %llu bytes, the signed manifest says %llu", f->path,
                              (unsigned long long)l->v[i].size, (unsigned long long)f->size);
        if (strcmp(l->v[i].sha, f->sha256))
            return ek_err_set(e, EK_ERR_FORMAT, "%s: SHA-256 %s, the signed manifest says %s", f->path,
                              l->v[i].sha, f->sha256);
    }
    return EK_OK;
}

ek_status ek_registry_import(ek_ctx *ctx, ek_registry *r, const char *dir, const char *name,
                             const ek_import_options *opts, int64_t *version_out) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    return (ek_status)reg_import(r, dir, name, opts, NULL, version_out, &ctx->err);
}

int reg_import(struct ek_registry *r, const char *dir, const char *name, const ek_import_options *opts,
               const reg_import_extra *x, int64_t *version_out, ek_err *e) {
    ek_import_options o = {0};
    if (opts) o = *opts;
    /* Names first: nothing is touched for a bad one. */
    int rc = reg_name_check("model", name, e);
    if (rc) return (ek_status)rc;
    if (o.version < 0 || o.version > (1LL << 53))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "version %lld: must be a positive integer",
                          (long long)o.version);
    if (!dir || !*dir) return ek_err_set(e, EK_ERR_INVALID_ARG, "import: no source directory");
    char src[4096];
    if (!realpath(dir, src)) return ek_err_set(e, EK_ERR_IO, "%s: %s", dir, strerror(errno));
    file_list l = {0};
    if ((rc = list_source(src, &l, e))) goto out_list;
    if (l.n == 0) {
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no files to import", src);
        goto out_list;
    }
    if (x && (rc = check_expected_set(&l, src, x, e))) goto out_list;

    int64_t version = o.version, vid = 0, prev_high = 0;
    int lock_fd = -1, model_new = 0;
    if ((rc = start(r, name, x && x->source ? x->source : src, &version, &lock_fd, x, &prev_high, &model_new, e)))
        goto out_list;
    if (version_out) *version_out = version;
    char stage[4096], final[4096];
    float *vecs = NULL;
    int crashed = 0;
#define STEP(s)                                                                              \
    if (o.hook && o.hook(o.hook_arg, s)) {                                                    \
        crashed = 1;                                                                          \
        rc = ek_err_set(e, EK_ERR_INTERNAL, "%s@%lld: import stopped after step %d (injected)", \
                        name, (long long)version, (int)(s));                                  \
        goto out;                                                                             \
    }
    STEP(EK_IMPORT_PENDING);
    if ((vid = version_id(r, name, version, e)) <= 0) {
        rc = vid < 0 ? e->status : ek_err_set(e, EK_ERR_INTERNAL, "%s@%lld vanished", name, (long long)version);
        goto out;
    }
    if ((rc = reg_path(stage, sizeof stage, e, "%s/staging/%s@%lld", r->home, name, (long long)version)) ||
        (rc = reg_path(final, sizeof final, e, "%s/models/%s/%lld", r->home, name, (long long)version)) ||
        (rc = reg_rm_tree(stage, e)) || (rc = reg_mkdirs(stage, e)))
        goto out;
    for (size_t i = 0; i < l.n; i++) {
        char from[4096], tmp[4096];
        if ((rc = reg_path(from, sizeof from, e, "%s/%s", src, l.v[i].rel)) ||
            (rc = reg_path(tmp, sizeof tmp, e, "%s/%zu.tmp", stage, i)) ||
            (rc = reg_copy_hash(from, tmp, l.v[i].sha, &l.v[i].size, e)))
            goto out;
    }
    if (x && (rc = check_expected_digests(&l, x, e))) goto out;
    STEP(EK_IMPORT_STAGED);
    if ((rc = commit_files(r, vid, &l, e))) goto out;
    STEP(EK_IMPORT_FILES);
    if ((rc = install_blobs(r, stage, &l, e))) goto out;
    STEP(EK_IMPORT_BLOBS);
    if ((rc = build_tree(r, stage, name, version, &l, e))) goto out;
    STEP(EK_IMPORT_TREE);
    int n = 0, dim = 0;
    double load_ms = 0, embed_ms = 0;
    if (!o.no_canaries && (rc = reg_embed_canaries(final, &vecs, &n, &dim, &load_ms, &embed_ms, e))) {
        ek_err_prefix(e, "%s@%lld: the imported files do not load as a model", name, (long long)version);
        goto out;
    }
    STEP(EK_IMPORT_CANARIES);
    if ((rc = commit_ready(r, name, version, vid, vecs, n, dim, embed_ms, &l, x && x->source ? x->source : src, e)))
        goto out;
    reg_rm_tree(stage, NULL);
    STEP(EK_IMPORT_READY);
#undef STEP
out:
    free(vecs);
    if (rc && !crashed && vid > 0) {
        /* A real error: record it and remove what this attempt made. */
        ek_err saved = *e;
        if (x && x->undo_on_failure) undo_attempt(r, name, version, vid, prev_high, model_new, &l, saved.msg);
        else mark_failed(r, name, version, vid, saved.msg);
        reg_rm_tree(final, NULL);
        reg_rm_tree(stage, NULL);
        *e = saved;
    }
    if (crashed) close(lock_fd); /* as the kernel does for a dead process */
    else reg_lock_release(r, name, version, lock_fd);
out_list:
    list_free(&l);
    return (ek_status)rc;
}

int reg_recover(struct ek_registry *r, ek_err *e) {
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT m.name, v.version, v.status FROM versions v JOIN models m "
                            "ON m.id = v.model_id WHERE v.status IN ('PENDING','FAILED','RETIRED')",
                         &st, e);
    if (rc) return rc;
    typedef struct { char name[EK_REGISTRY_NAME_MAX + 1]; int64_t version; int pending; } cand;
    cand *c = NULL;
    size_t n = 0, cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (n == cap) {
            cap = cap ? 2 * cap : 16;
            cand *nc = realloc(c, cap * sizeof *c);
            if (!nc) { rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory"); break; }
            c = nc;
        }
        snprintf(c[n].name, sizeof c[n].name, "%s", (const char *)sqlite3_column_text(st, 0));
        c[n].version = sqlite3_column_int64(st, 1);
        c[n].pending = !strcmp((const char *)sqlite3_column_text(st, 2), "PENDING");
        n++;
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "looking for interrupted imports");
    for (size_t i = 0; i < n && !rc; i++) {
        char dir[4096], stage[4096];
        if (reg_path(dir, sizeof dir, e, "%s/models/%s/%lld", r->home, c[i].name, (long long)c[i].version) ||
            reg_path(stage, sizeof stage, e, "%s/staging/%s@%lld", r->home, c[i].name, (long long)c[i].version))
            break;
        struct stat sb;
        if (!c[i].pending && lstat(dir, &sb) != 0 && lstat(stage, &sb) != 0) continue;
        int fd;
        int got = reg_lock_try(r, c[i].name, c[i].version, &fd, e);
        if (got < 0) { rc = e->status; break; }
        if (got == 0) continue; /* an import is running */
        if (!c[i].pending) {
            /* Re-read under the lock: the number may have been imported
             * again (READY now) since the list was read. */
            char now[16] = "";
            if (reg_version_status(r, c[i].name, c[i].version, now, sizeof now, e) < 0) {
                rc = e->status;
                reg_lock_release(r, c[i].name, c[i].version, fd);
                break;
            }
            if (strcmp(now, "FAILED") && strcmp(now, "RETIRED")) {
                reg_lock_release(r, c[i].name, c[i].version, fd);
                continue;
            }
        }
        if (c[i].pending) {
            /* Re-checked under the write lock: the importer commits READY
             * before it lets go of its lock. */
            if ((rc = reg_begin(r, e))) { reg_lock_release(r, c[i].name, c[i].version, fd); break; }
            char sql[256];
            snprintf(sql, sizeof sql,
                     "UPDATE versions SET status = 'FAILED', reason = 'import interrupted: the "
                     "importing process died' WHERE status = 'PENDING' AND version = %lld AND "
                     "model_id = (SELECT id FROM models WHERE name = ?)", (long long)c[i].version);
            sqlite3_stmt *u;
            if (!(rc = reg_prepare(r, sql, &u, e))) {
                sqlite3_bind_text(u, 1, c[i].name, -1, SQLITE_STATIC);
                s = sqlite3_step(u);
                int changed = sqlite3_changes(r->db);
                sqlite3_finalize(u);
                if (s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "marking an interrupted import FAILED");
                else if (changed)
                    rc = reg_event(r, c[i].name, c[i].version, "recover",
                                   "interrupted import marked FAILED, leftovers removed", e);
            }
            if (!rc) rc = reg_commit(r, e);
            else reg_rollback(r);
        }
        if (!rc) rc = reg_rm_tree(dir, e);
        if (!rc) rc = reg_rm_tree(stage, e);
        reg_lock_release(r, c[i].name, c[i].version, fd);
    }
    free(c);
    return rc;
}
