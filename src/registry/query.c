/* registry/query.c — reading the registry (list, lookup, files, events,
 * resolving model references) and the small writes on versions that exist
 * (aliases, retiring, verifying, garbage-collecting blobs). */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "base/file.h"
#include "registry/reg.h"
#include "runtime/ctx.h"

/* Grows *v (elements of size sz) to hold n + 1. */
static int grow(void **v, size_t *cap, size_t n, size_t sz, ek_err *e) {
    if (n < *cap) return EK_OK;
    size_t c = *cap ? 2 * *cap : 16;
    void *p = realloc(*v, c * sz);
    if (!p) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    *v = p;
    *cap = c;
    return EK_OK;
}

static void col_text(sqlite3_stmt *st, int i, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

#define VERSION_SELECT                                                                         \
    "SELECT m.name, v.version, v.status, v.created_at, coalesce(v.ready_at, 0), v.total_bytes," \
    " (SELECT count(*) FROM files f WHERE f.version_id = v.id),"                               \
    " v.status = 'READY' AND v.version = (SELECT max(w.version) FROM versions w"                \
    "   WHERE w.model_id = v.model_id AND w.status = 'READY'),"                                 \
    " coalesce((SELECT group_concat(alias, ',') FROM (SELECT alias FROM aliases a"              \
    "   WHERE a.version_id = v.id ORDER BY alias)), ''),"                                       \
    " v.reason,"                                                                                \
    " coalesce((SELECT result FROM health h WHERE h.version_id = v.id ORDER BY h.id DESC LIMIT 1), ''),"  \
    " coalesce((SELECT reason FROM health h WHERE h.version_id = v.id ORDER BY h.id DESC LIMIT 1), ''),"  \
    " coalesce((SELECT at FROM health h WHERE h.version_id = v.id ORDER BY h.id DESC LIMIT 1), 0),"       \
    " v.source, m.highest_version "                                                              \
    "FROM versions v JOIN models m ON m.id = v.model_id "

static void read_version(sqlite3_stmt *st, ek_reg_version *o) {
    memset(o, 0, sizeof *o);
    col_text(st, 0, o->name, sizeof o->name);
    o->version = sqlite3_column_int64(st, 1);
    col_text(st, 2, o->status, sizeof o->status);
    o->created_at = sqlite3_column_int64(st, 3);
    o->ready_at = sqlite3_column_int64(st, 4);
    o->total_bytes = (uint64_t)sqlite3_column_int64(st, 5);
    o->n_files = sqlite3_column_int(st, 6);
    o->is_latest = sqlite3_column_int(st, 7);
    col_text(st, 8, o->aliases, sizeof o->aliases);
    col_text(st, 9, o->reason, sizeof o->reason);
    col_text(st, 10, o->health, sizeof o->health);
    col_text(st, 11, o->health_reason, sizeof o->health_reason);
    o->health_at = sqlite3_column_int64(st, 12);
    col_text(st, 13, o->source, sizeof o->source);
    o->highest_seen = sqlite3_column_int64(st, 14);
}

ek_status ek_registry_list(ek_ctx *ctx, ek_registry *r, const char *name, ek_reg_version **out,
                           size_t *n) {
    if (!ctx || !r || !out || !n) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = reg_prepare(r, VERSION_SELECT "WHERE ?1 IS NULL OR m.name = ?1 ORDER BY m.name, v.version",
                         &st, e);
    if (rc) return (ek_status)rc;
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)out, &cap, *n, sizeof **out, e))) break;
        read_version(st, &(*out)[(*n)++]);
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "listing versions");
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return (ek_status)rc;
}

/* Lists the aliases of a model into buf (for error messages). */
static void alias_names(struct ek_registry *r, const char *name, char *buf, size_t cap) {
    sqlite3_stmt *st;
    buf[0] = '\0';
    if (reg_prepare(r, "SELECT group_concat(alias, ', ') FROM aliases a JOIN models m ON m.id = a.model_id "
                       "WHERE m.name = ?", &st, NULL))
        return;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    if (sqlite3_step(st) == SQLITE_ROW) col_text(st, 0, buf, cap);
    sqlite3_finalize(st);
}

static int lookup(struct ek_registry *r, const char *ref, ek_reg_version *info, ek_err *e) {
    char name[EK_REGISTRY_NAME_MAX + 1], alias[EK_REGISTRY_NAME_MAX + 1];
    int64_t version;
    int rc = reg_parse_ref(ref, name, alias, &version, e);
    if (rc) return rc;
    int64_t mid = reg_model_id(r, name, e);
    if (mid < 0) return e->status;
    if (mid == 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "no model \"%s\" in the registry at %s", name, r->home);
    sqlite3_stmt *st;
    const char *sql =
        version ? VERSION_SELECT "WHERE m.id = ?1 AND v.version = ?2"
        : *alias ? VERSION_SELECT "WHERE v.id = (SELECT version_id FROM aliases WHERE model_id = ?1 AND alias = ?3)"
                 : VERSION_SELECT "WHERE m.id = ?1 AND v.status = 'READY' ORDER BY v.version DESC LIMIT 1";
    if ((rc = reg_prepare(r, sql, &st, e))) return rc;
    sqlite3_bind_int64(st, 1, mid);
    if (version) sqlite3_bind_int64(st, 2, version);
    if (*alias) sqlite3_bind_text(st, 3, alias, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) read_version(st, info);
    sqlite3_finalize(st);
    if (s == SQLITE_ROW) return EK_OK;
    if (s != SQLITE_DONE) return reg_sql_fail(r, e, s, "resolving a model reference");
    if (version) return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no version %lld", name, (long long)version);
    if (*alias) {
        char list[512];
        alias_names(r, name, list, sizeof list);
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no alias \"%s\" (aliases: %s)", name, alias,
                          *list ? list : "none");
    }
    return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no READY version", name);
}

ek_status ek_registry_lookup(ek_ctx *ctx, ek_registry *r, const char *ref, ek_reg_version *info) {
    if (!ctx || !r || !info) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    return (ek_status)lookup(r, ref, info, &ctx->err);
}

ek_status ek_registry_files(ek_ctx *ctx, ek_registry *r, const char *name, int64_t version,
                            ek_reg_file **out, size_t *n) {
    if (!ctx || !r || !name || !out || !n) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT f.path, f.size, f.sha256 FROM files f JOIN versions v ON v.id = f.version_id "
                            "JOIN models m ON m.id = v.model_id WHERE m.name = ? AND v.version = ? ORDER BY f.path",
                         &st, e);
    if (rc) return (ek_status)rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)out, &cap, *n, sizeof **out, e))) break;
        ek_reg_file *f = &(*out)[(*n)++];
        col_text(st, 0, f->path, sizeof f->path);
        f->size = (uint64_t)sqlite3_column_int64(st, 1);
        col_text(st, 2, f->sha256, sizeof f->sha256);
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "listing files");
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return (ek_status)rc;
}

ek_status ek_registry_events(ek_ctx *ctx, ek_registry *r, const char *name, ek_reg_event **out,
                             size_t *n) {
    if (!ctx || !r || !out || !n) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT id, at, who, model, version, action, detail FROM events "
                            "WHERE ?1 IS NULL OR model = ?1 ORDER BY id", &st, e);
    if (rc) return (ek_status)rc;
    if (name) sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)out, &cap, *n, sizeof **out, e))) break;
        ek_reg_event *v = &(*out)[(*n)++];
        v->id = sqlite3_column_int64(st, 0);
        v->at = sqlite3_column_int64(st, 1);
        col_text(st, 2, v->who, sizeof v->who);
        col_text(st, 3, v->model, sizeof v->model);
        v->version = sqlite3_column_int64(st, 4);
        col_text(st, 5, v->action, sizeof v->action);
        col_text(st, 6, v->detail, sizeof v->detail);
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "reading the event log");
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return (ek_status)rc;
}

/* Runs one parameterised write: text params (NULL = null) then ints. */
static int write1(struct ek_registry *r, const char *sql, const char *t1, const char *t2,
                  int64_t i3, int64_t i4, const char *what, ek_err *e) {
    sqlite3_stmt *st;
    int rc = reg_prepare(r, sql, &st, e);
    if (rc) return rc;
    if (t1) sqlite3_bind_text(st, 1, t1, -1, SQLITE_STATIC);
    if (t2) sqlite3_bind_text(st, 2, t2, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, i3);
    sqlite3_bind_int64(st, 4, i4);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    return s == SQLITE_DONE ? EK_OK : reg_sql_fail(r, e, s, what);
}

ek_status ek_registry_alias(ek_ctx *ctx, ek_registry *r, const char *name, const char *alias,
                            int64_t version) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    int rc = reg_name_check("model", name, e);
    if (!rc) rc = reg_name_check("alias", alias, e);
    if (rc) return (ek_status)rc;
    if ((rc = reg_begin(r, e))) return (ek_status)rc;
    char ref[EK_REGISTRY_NAME_MAX + 32];
    snprintf(ref, sizeof ref, "%s@%lld", name, (long long)version);
    ek_reg_version v, old;
    char oldref[EK_REGISTRY_NAME_MAX * 2 + 2];
    snprintf(oldref, sizeof oldref, "%s@%s", name, alias);
    int had = lookup(r, oldref, &old, NULL) == EK_OK;
    if ((rc = lookup(r, ref, &v, e))) goto fail;
    if (strcmp(v.status, "READY")) {
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s is %s; only a READY version can be aliased", ref, v.status);
        goto fail;
    }
    rc = write1(r, "INSERT INTO aliases(model_id, alias, version_id, updated_at) "
                   "SELECT m.id, ?2, v.id, ?4 FROM versions v JOIN models m ON m.id = v.model_id "
                   "WHERE m.name = ?1 AND v.version = ?3 "
                   "ON CONFLICT(model_id, alias) DO UPDATE SET version_id = excluded.version_id, "
                   "updated_at = excluded.updated_at",
                name, alias, version, reg_now(), "setting the alias", e);
    char detail[128];
    if (had) snprintf(detail, sizeof detail, "%s: %lld -> %lld", alias, (long long)old.version, (long long)version);
    else snprintf(detail, sizeof detail, "%s: -> %lld", alias, (long long)version);
    if (!rc) rc = reg_event(r, name, version, "alias", detail, e);
    if (rc) goto fail;
    return (ek_status)reg_commit(r, e);
fail:
    reg_rollback(r);
    return (ek_status)rc;
}

ek_status ek_registry_unalias(ek_ctx *ctx, ek_registry *r, const char *name, const char *alias) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    int rc = reg_name_check("model", name, e);
    if (!rc) rc = reg_name_check("alias", alias, e);
    if (!rc) rc = reg_begin(r, e);
    if (rc) return (ek_status)rc;
    rc = write1(r, "DELETE FROM aliases WHERE alias = ?2 AND model_id = (SELECT id FROM models WHERE name = ?1) ", name, alias, 0, 0, "removing the alias", e);
    if (!rc && sqlite3_changes(r->db) == 0)
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no alias \"%s\"", name, alias);
    if (!rc) rc = reg_event(r, name, 0, "unalias", alias, e);
    if (rc) {
        reg_rollback(r);
        return (ek_status)rc;
    }
    return (ek_status)reg_commit(r, e);
}

ek_status ek_registry_remove(ek_ctx *ctx, ek_registry *r, const char *ref, int force) {
    if (!ctx || !r || !ref) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (!strchr(ref, '@'))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "rm %s: name the version to remove (%s@N or %s@alias)",
                          ref, ref, ref);
    int rc = reg_begin(r, e);
    if (rc) return (ek_status)rc;
    ek_reg_version v;
    if ((rc = lookup(r, ref, &v, e))) goto fail;
    if (!strcmp(v.status, "RETIRED") || !strcmp(v.status, "PENDING")) {
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "%s@%lld is %s; nothing to remove", v.name,
                        (long long)v.version, v.status);
        goto fail;
    }
    if (*v.aliases && !force) {
        rc = ek_err_set(e, EK_ERR_INVALID_ARG,
                        "%s@%lld is the target of alias(es) %s: move them first, or force removal",
                        v.name, (long long)v.version, v.aliases);
        goto fail;
    }
    rc = write1(r, "DELETE FROM aliases WHERE version_id = (SELECT v.id FROM versions v JOIN models m "
                   "ON m.id = v.model_id WHERE m.name = ?1 AND v.version = ?3)",
                v.name, NULL, v.version, 0, "removing aliases", e);
    if (!rc) {
        char why[256];
        snprintf(why, sizeof why, "removed by %s", r->who);
        rc = write1(r, "UPDATE versions SET status = 'RETIRED', reason = ?2 WHERE version = ?3 AND "
                       "model_id = (SELECT id FROM models WHERE name = ?1)",
                    v.name, why, v.version, 0, "retiring the version", e);
    }
    char detail[300];
    snprintf(detail, sizeof detail, "was %s%s%s", v.status, *v.aliases ? "; aliases removed: " : "", v.aliases);
    if (!rc) rc = reg_event(r, v.name, v.version, "rm", detail, e);
    if (rc) goto fail;
    if ((rc = reg_commit(r, e))) return (ek_status)rc;
    /* The directory goes after the commit: a crash in between leaves a
     * RETIRED version's directory, which the next open removes. */
    char dir[4096];
    if (!reg_path(dir, sizeof dir, e, "%s/models/%s/%lld", r->home, v.name, (long long)v.version))
        reg_rm_tree(dir, e);
    ek_err_clear(e);
    return EK_OK;
fail:
    reg_rollback(r);
    return (ek_status)rc;
}

/* Sets a version's status with a reason and an event (own transaction). */
static int set_status(struct ek_registry *r, const char *name, int64_t version, const char *status,
                      const char *reason, const char *action, ek_err *e) {
    int rc = reg_begin(r, e);
    if (rc) return rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "UPDATE versions SET status = ?, reason = ? WHERE version = ? AND "
                             "model_id = (SELECT id FROM models WHERE name = ?)", &st, e))) {
        reg_rollback(r);
        return rc;
    }
    sqlite3_bind_text(st, 1, status, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, reason, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 3, version);
    sqlite3_bind_text(st, 4, name, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "changing the version status");
    if (!rc) rc = reg_event(r, name, version, action, reason, e);
    if (rc) {
        reg_rollback(r);
        return rc;
    }
    return reg_commit(r, e);
}

int reg_verify_version(struct ek_registry *r, const ek_reg_version *v, char *bad, size_t cap, ek_err *e) {
    if (strcmp(v->status, "READY") && strcmp(v->status, "CORRUPT"))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s@%lld is %s: there are no files to verify", v->name,
                          (long long)v->version, v->status);
    ek_ctx tmp = {0};
    ek_reg_file *f = NULL;
    size_t n = 0;
    int rc = ek_registry_files(&tmp, r, v->name, v->version, &f, &n);
    if (rc) {
        *e = tmp.err;
        return rc;
    }
    char problem[2400] = "";
    for (size_t i = 0; i < n && !*problem; i++) {
        char path[4096], hex[65];
        uint64_t size = 0;
        ek_err he;
        if (reg_path(path, sizeof path, e, "%s/models/%s/%lld/%s", r->home, v->name, (long long)v->version,
                     f[i].path)) {
            free(f);
            return e->status;
        }
        if (reg_hash_file(path, hex, &size, &he))
            snprintf(problem, sizeof problem, "file %.1000s is missing or unreadable (%.1000s)", f[i].path, he.msg);
        else if (size != f[i].size)
            snprintf(problem, sizeof problem, "file %.1000s has %llu bytes, the registry says %llu", f[i].path,
                     (unsigned long long)size, (unsigned long long)f[i].size);
        else if (strcmp(hex, f[i].sha256))
            snprintf(problem, sizeof problem, "file %.1000s has sha256 %s, the registry says %s", f[i].path, hex,
                     f[i].sha256);
        if (*problem && bad) snprintf(bad, cap, "%s", f[i].path);
    }
    free(f);
    if (*problem) {
        char reason[2500];
        snprintf(reason, sizeof reason, "verify: %s", problem);
        int src = set_status(r, v->name, v->version, "CORRUPT", reason, "corrupt", e);
        if (src) return src;
        return ek_err_set(e, EK_ERR_FORMAT, "%s@%lld is CORRUPT: %s", v->name, (long long)v->version, problem);
    }
    if (!strcmp(v->status, "CORRUPT"))
        return set_status(r, v->name, v->version, "READY", "", "verify-repaired", e);
    return EK_OK;
}

ek_status ek_registry_verify(ek_ctx *ctx, ek_registry *r, const char *ref, char *bad, size_t cap) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (bad && cap) bad[0] = '\0';
    ek_reg_version v;
    int rc = lookup(r, ref, &v, e);
    if (!rc) rc = reg_verify_version(r, &v, bad, cap, e);
    if (!rc) {
        ek_err tmp;
        if (!reg_begin(r, &tmp) && !reg_event(r, v.name, v.version, "verify", "all files match", &tmp))
            reg_commit(r, &tmp);
        else reg_rollback(r);
    }
    return (ek_status)rc;
}

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

ek_status ek_registry_gc(ek_ctx *ctx, ek_registry *r, size_t *removed, uint64_t *freed) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    size_t nrm = 0;
    uint64_t bytes = 0;
    /* The write lock is held throughout: an importer records its file rows
     * (under this lock) before it installs blobs, so no blob about to be
     * referenced can be seen unreferenced here. */
    int rc = reg_begin(r, e);
    if (rc) return (ek_status)rc;
    sqlite3_stmt *st;
    char **keep = NULL;
    size_t nk = 0, cap = 0;
    if ((rc = reg_prepare(r, "SELECT DISTINCT f.sha256 FROM files f JOIN versions v ON v.id = f.version_id "
                             "WHERE v.status IN ('PENDING','READY','CORRUPT')", &st, e)))
        goto out;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if ((rc = grow((void **)&keep, &cap, nk, sizeof *keep, e))) break;
        keep[nk] = strdup((const char *)sqlite3_column_text(st, 0));
        if (!keep[nk]) { rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory"); break; }
        nk++;
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "collecting referenced blobs");
    if (rc) goto out;
    if (nk) qsort(keep, nk, sizeof *keep, cmp_str);
    char dir[4096];
    if ((rc = reg_path(dir, sizeof dir, e, "%s/blobs", r->home))) goto out;
    DIR *d = opendir(dir);
    if (!d) { rc = ek_err_set(e, EK_ERR_IO, "%s: %s", dir, strerror(errno)); goto out; }
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "sha256-", 7) || strlen(de->d_name) != 71) continue;
        const char *hex = de->d_name + 7;
        if (nk && bsearch(&hex, keep, nk, sizeof *keep, cmp_str)) continue;
        char p[4400];
        struct stat sb;
        if (reg_path(p, sizeof p, NULL, "%s/%.71s", dir, de->d_name)) continue;
        if (lstat(p, &sb) == 0 && unlink(p) == 0) {
            nrm++;
            bytes += (uint64_t)sb.st_size;
        }
    }
    closedir(d);
    if ((rc = reg_fsync_dir(dir, e))) goto out;
    char detail[128];
    snprintf(detail, sizeof detail, "%zu unreferenced blobs removed, %llu bytes", nrm, (unsigned long long)bytes);
    rc = reg_event(r, NULL, 0, "gc", detail, e);
out:
    for (size_t i = 0; i < nk; i++) free(keep[i]);
    free(keep);
    if (rc) reg_rollback(r);
    else rc = reg_commit(r, e);
    if (removed) *removed = nrm;
    if (freed) *freed = bytes;
    return (ek_status)rc;
}

ek_status ek_registry_gc_packed(ek_ctx *ctx, ek_registry *r, int64_t max_age_s, size_t *removed,
                                uint64_t *freed) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (max_age_s < 0)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "gc: packed max age %lld s: must be >= 0", (long long)max_age_s);
    size_t nrm = 0;
    uint64_t bytes = 0;
    char dir[4096];
    int rc = reg_path(dir, sizeof dir, e, "%s/packed", r->home);
    if (rc) return (ek_status)rc;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) goto done; /* no cache yet */
        return ek_err_set(e, EK_ERR_IO, "%s: %s", dir, strerror(errno));
    }
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 8 || strcmp(de->d_name + len - 7, ".ekpack")) continue;
        /* Writers' temporary files (".tmp-..."): only when clearly abandoned. */
        int64_t age = de->d_name[0] == '.' ? 3600 : max_age_s;
        char p[4400];
        struct stat sb;
        if (reg_path(p, sizeof p, NULL, "%s/%s", dir, de->d_name) || lstat(p, &sb) || !S_ISREG(sb.st_mode)) continue;
        if ((int64_t)(now - sb.st_mtime) < age) continue;
        if (unlink(p) == 0) {
            nrm++;
            bytes += (uint64_t)sb.st_size;
        }
    }
    closedir(d);
    if (nrm && (rc = reg_fsync_dir(dir, e))) return (ek_status)rc;
done:
    if (nrm) {
        char detail[160];
        snprintf(detail, sizeof detail, "%zu packed-weight cache files unused for %lld s removed, %llu bytes", nrm,
                 (long long)max_age_s, (unsigned long long)bytes);
        /* The event is a record, not part of the work: a locked database
         * does not undo what was removed. */
        ek_err tmp;
        if (!reg_begin(r, &tmp)) {
            if (reg_event(r, NULL, 0, "gc-packed", detail, &tmp)) reg_rollback(r);
            else reg_commit(r, &tmp);
        }
    }
    if (removed) *removed = nrm;
    if (freed) *freed = bytes;
    return EK_OK;
}

/* A reference is a path when it could only be one: it has a '/', starts
 * with '.', or names an existing directory (so `--model mydir` keeps
 * working); otherwise it is a registry name. */
int reg_is_path_ref(const char *ref) {
    return strchr(ref, '/') || ref[0] == '.' || ek_dir_exists(ref);
}

int reg_require_ready(const ek_reg_version *v, ek_err *e) {
    if (!strcmp(v->status, "READY")) return EK_OK;
    return ek_err_set(e, EK_ERR_UNSUPPORTED, "%s@%lld is %s%s%s; it is not served", v->name, (long long)v->version,
                      v->status, *v->reason ? ": " : "", v->reason);
}

ek_status ek_registry_resolve(ek_ctx *ctx, const char *home, const char *ref, char *path, size_t cap) {
    return ek_registry_resolve_opts(ctx, home, ref, EK_SIG_OFF, path, cap);
}

ek_status ek_registry_resolve_opts(ek_ctx *ctx, const char *home, const char *ref, ek_sig_policy verify, char *path,
                                   size_t cap) {
    if (!ctx || !ref || !path || !cap) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (reg_is_path_ref(ref)) return (ek_status)reg_path(path, cap, e, "%s", ref);
    char h[3072];
    int rc;
    if (!home) {
        if ((rc = ek_registry_default_home(ctx, h, sizeof h))) return (ek_status)rc;
        home = h;
    }
    /* Only a registry that exists is opened: a typo in a directory name
     * should not create ~/.local/share/embedkit as a side effect. */
    char db[3200];
    if ((rc = reg_path(db, sizeof db, e, "%s/registry.db", home))) return (ek_status)rc;
    if (!ek_file_exists(db))
        return ek_err_set(e, EK_ERR_IO, "%s: no such directory, and no registry at %s to look it up in",
                          ref, home);
    ek_registry *r;
    if ((rc = ek_registry_open(ctx, home, NULL, &r))) return (ek_status)rc;
    ek_reg_version v;
    rc = lookup(r, ref, &v, e);
    if (!rc) rc = reg_require_ready(&v, e);
    if (!rc) rc = reg_verify_for_load(r, &v, verify, e);
    if (!rc) rc = reg_path(path, cap, e, "%s/models/%s/%lld", home, v.name, (long long)v.version);
    ek_registry_close(r);
    return (ek_status)rc;
}
