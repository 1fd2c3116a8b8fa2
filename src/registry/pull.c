/* registry/pull.c — verified installs: `ek models pull` (a URL, a Hub-style
 * repo, or a local directory) and `ek models update`, and the provenance
 * recorded with every version installed that way.
 *
 * Order, so that nothing unverified reaches the blob store or the registry:
 *   1. fetch manifest.json and manifest.json.minisig (both size-bounded)
 *   2. verify the signature against the trusted keys; only then parse the
 *      manifest (strict, canonical) and check the key may sign that model,
 *      the expected name, and anti-rollback (version >= highest ever seen)
 *   3. fetch every file into a private staging folder
 *      staging/pull-<manifest digest>/parts/<sha256>, each bounded by its
 *      size and hashed as it arrives (download.c); a network failure keeps
 *      the part so the next attempt resumes
 *   4. link the verified parts into staging/.../tree/ with the manifest and
 *      its signature, and import that tree (import.c) with the exact file
 *      list expected: the import copies and hashes again, so nothing can
 *      change in between, then fsyncs and renames into blobs and models
 * A crash before 4 leaves only staging files; during 4 the import's own
 * recovery applies (PENDING -> FAILED at the next open). */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/reg.h"
#include "registry/sign.h"
#include "runtime/ctx.h"

static const char *const code_names[] = {
    "EK_VERIFY_OK",           "EK_VERIFY_UNSIGNED",      "EK_VERIFY_NO_MANIFEST",
    "EK_VERIFY_MALFORMED_MANIFEST", "EK_VERIFY_MALFORMED_SIGNATURE", "EK_VERIFY_MALFORMED_KEY",
    "EK_VERIFY_LEGACY",       "EK_VERIFY_UNTRUSTED_KEY", "EK_VERIFY_BAD_SIGNATURE",
    "EK_VERIFY_BAD_TRUSTED_COMMENT", "EK_VERIFY_NAME_MISMATCH", "EK_VERIFY_ROLLBACK",
    "EK_VERIFY_CONFLICT",     "EK_VERIFY_MISSING_FILE",  "EK_VERIFY_EXTRA_FILE",
    "EK_VERIFY_SIZE_MISMATCH", "EK_VERIFY_TOO_LARGE",    "EK_VERIFY_DIGEST_MISMATCH",
    "EK_VERIFY_DOWNLOAD",     "EK_VERIFY_NO_SOURCE"};

const char *ek_verify_code_name(ek_verify_code c) {
    return (unsigned)c < sizeof code_names / sizeof code_names[0] ? code_names[c] : "EK_VERIFY_UNKNOWN";
}

/* ---- provenance ---- */

int reg_provenance_insert(struct ek_registry *r, int64_t vid, const reg_import_extra *x, ek_err *e) {
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "INSERT INTO provenance(version_id, signed, key_id, trusted_comment, manifest_sha256, "
                            "origin, repo, revision) VALUES(?,?,?,?,?,?,?,?)", &st, e);
    if (rc) return rc;
    const char *t[] = {x->key_id, x->trusted_comment, x->manifest_sha256, x->origin, x->repo, x->revision};
    sqlite3_bind_int64(st, 1, vid);
    sqlite3_bind_int(st, 2, x->is_signed ? 1 : 0);
    for (int i = 0; i < 6; i++) sqlite3_bind_text(st, 3 + i, t[i] ? t[i] : "", -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    return s == SQLITE_DONE ? EK_OK : reg_sql_fail(r, e, s, "recording the provenance");
}

static void col(sqlite3_stmt *st, int i, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

ek_status ek_registry_provenance(ek_ctx *ctx, ek_registry *r, const char *name, int64_t version,
                                 ek_reg_provenance *out) {
    if (!ctx || !r || !name || !out) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    memset(out, 0, sizeof *out);
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT p.signed, p.key_id, p.trusted_comment, p.manifest_sha256, p.origin, p.repo, "
                            "p.revision FROM provenance p JOIN versions v ON v.id = p.version_id JOIN models m "
                            "ON m.id = v.model_id WHERE m.name = ? AND v.version = ?", &st, e);
    if (rc) return (ek_status)rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        out->recorded = 1;
        out->is_signed = sqlite3_column_int(st, 0);
        col(st, 1, out->key_id, sizeof out->key_id);
        col(st, 2, out->trusted_comment, sizeof out->trusted_comment);
        col(st, 3, out->manifest_sha256, sizeof out->manifest_sha256);
        col(st, 4, out->origin, sizeof out->origin);
        col(st, 5, out->repo, sizeof out->repo);
        col(st, 6, out->revision, sizeof out->revision);
    }
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) return (ek_status)reg_sql_fail(r, e, s, "reading the provenance");
    return EK_OK;
}

/* ---- staging ---- */

/* Removes staging/pull-* folders no running pull holds (their lock in
 * locks/ is free): leftovers of dead or abandoned pulls. */
static void clean_stale(struct ek_registry *r, const char *mine) {
    char dir[4096];
    if (reg_path(dir, sizeof dir, NULL, "%s/staging", r->home)) return;
    DIR *d = opendir(dir);
    if (!d) return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (strncmp(de->d_name, "pull-", 5) || !strcmp(de->d_name, mine)) continue;
        char lock[4096], path[4096];
        if (reg_path(lock, sizeof lock, NULL, "%s/locks/%s.lock", r->home, de->d_name) ||
            reg_path(path, sizeof path, NULL, "%s/%s", dir, de->d_name))
            continue;
        int fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) continue;
        if (flock(fd, LOCK_EX | LOCK_NB) == 0) {
            reg_rm_tree(path, NULL);
            unlink(lock);
        }
        close(fd);
    }
    closedir(d);
}

typedef struct stage {
    char dir[4096];           /* staging/pull-<16 hex> */
    char lock[4096];
    int lock_fd;
} stage;

static int stage_open(struct ek_registry *r, const char *man_sha, stage *sg, ek_err *e) {
    char base[64];
    snprintf(base, sizeof base, "pull-%.16s", man_sha);
    sg->lock_fd = -1;
    if (reg_path(sg->dir, sizeof sg->dir, e, "%s/staging/%s", r->home, base) ||
        reg_path(sg->lock, sizeof sg->lock, e, "%s/locks/%s.lock", r->home, base))
        return e->status;
    int fd = open(sg->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot open lock: %s", sg->lock, strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        close(fd);
        return ek_err_set(e, EK_ERR_IO, "another process is pulling this same manifest right now (%s)", sg->lock);
    }
    sg->lock_fd = fd;
    clean_stale(r, base);
    /* Private: other users must not swap a verified part for another. */
    char parts[4200];
    int rc = reg_path(parts, sizeof parts, e, "%s/parts", sg->dir);
    if (!rc && mkdir(sg->dir, 0700) != 0 && errno != EEXIST)
        rc = ek_err_set(e, EK_ERR_IO, "%s: cannot create: %s", sg->dir, strerror(errno));
    if (!rc && chmod(sg->dir, 0700) != 0) rc = ek_err_set(e, EK_ERR_IO, "%s: %s", sg->dir, strerror(errno));
    if (!rc) rc = reg_mkdirs(parts, e);
    return rc;
}

static void stage_close(stage *sg, int keep) {
    if (!keep && *sg->dir) reg_rm_tree(sg->dir, NULL);
    if (sg->lock_fd >= 0) {
        unlink(sg->lock);
        close(sg->lock_fd);
        sg->lock_fd = -1;
    }
}

static int write_small(const char *path, const char *bytes, size_t len, ek_err *e) {
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) return ek_err_set(e, EK_ERR_IO, "%s: cannot create: %s", path, strerror(errno));
    int rc = EK_OK;
    for (size_t off = 0; off < len && !rc;) {
        ssize_t w = write(fd, bytes + off, len - off);
        if (w < 0 && errno == EINTR) continue;
        if (w < 0) rc = ek_err_set(e, EK_ERR_IO, "%s: write failed: %s%s", path, strerror(errno),
                                   errno == ENOSPC ? " (disk full)" : "");
        else off += (size_t)w;
    }
    if (close(fd) != 0 && !rc) rc = ek_err_set(e, EK_ERR_IO, "%s: close failed: %s", path, strerror(errno));
    return rc;
}

/* The tree the import reads: verified parts linked under their paths, plus
 * the manifest and its signature (kept with the version). */
static int build_tree(const stage *sg, const reg_manifest *m, const char *man, size_t man_len, const char *sig,
                      size_t sig_len, char *tree, size_t cap, ek_err *e) {
    int rc = reg_path(tree, cap, e, "%s/tree", sg->dir);
    if (!rc) rc = reg_rm_tree(tree, e);
    if (!rc) rc = reg_mkdirs(tree, e);
    for (size_t i = 0; i < m->n && !rc; i++) {
        char part[4200], dst[8192];
        if ((rc = reg_path(part, sizeof part, e, "%s/parts/%s", sg->dir, m->files[i].sha256)) ||
            (rc = reg_path(dst, sizeof dst, e, "%s/%s", tree, m->files[i].path)))
            break;
        char *slash = strrchr(dst, '/');
        *slash = '\0';
        rc = reg_mkdirs(dst, e);
        *slash = '/';
        if (!rc && link(part, dst) != 0)
            rc = ek_err_set(e, EK_ERR_IO, "%s: cannot link %s: %s", dst, part, strerror(errno));
    }
    char p[8192];
    if (!rc && !(rc = reg_path(p, sizeof p, e, "%s/%s", tree, REG_MANIFEST))) rc = write_small(p, man, man_len, e);
    if (!rc && sig && !(rc = reg_path(p, sizeof p, e, "%s/%s", tree, REG_MINISIG))) rc = write_small(p, sig, sig_len, e);
    return rc;
}

static int cmp_mfile(const void *a, const void *b) {
    return strcmp(((const reg_mfile *)a)->path, ((const reg_mfile *)b)->path);
}

/* ---- the pull ---- */

typedef struct pull {
    struct ek_registry *r;
    ek_pull_options o;
    ek_pull_result *res;
    reg_source *src;
    char *man, *sig;
    size_t man_len, sig_len;
    reg_manifest m;
    char man_sha[65];
    char origin[2048], repo[256], revision[128], display[2600];
} pull;

static int refuse(pull *p, ek_verify_code code, const char *file, ek_err *e) {
    p->res->code = code;
    if (file) snprintf(p->res->file, sizeof p->res->file, "%s", file);
    return e->status ? e->status : EK_ERR_FORMAT;
}

static int64_t highest_seen(struct ek_registry *r, const char *name, ek_err *e) {
    sqlite3_stmt *st;
    if (reg_prepare(r, "SELECT highest_version FROM models WHERE name = ?", &st, e)) return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    int64_t v = s == SQLITE_ROW ? sqlite3_column_int64(st, 0) : 0;
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        reg_sql_fail(r, e, s, "reading the highest version seen");
        return -1;
    }
    return v;
}

/* Status and manifest digest of name@version: 1 when it exists. */
static int installed(struct ek_registry *r, const char *name, int64_t version, char *status, char *sha, ek_err *e) {
    sqlite3_stmt *st;
    status[0] = sha[0] = '\0';
    if (reg_prepare(r, "SELECT v.status, coalesce(p.manifest_sha256, '') FROM versions v JOIN models m ON "
                       "m.id = v.model_id LEFT JOIN provenance p ON p.version_id = v.id WHERE m.name = ? AND "
                       "v.version = ?", &st, e))
        return -1;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 2, version);
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        col(st, 0, status, 16);
        col(st, 1, sha, 65);
    }
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) {
        reg_sql_fail(r, e, s, "looking up the version");
        return -1;
    }
    return s == SQLITE_ROW;
}

static void emit(pull *p, const char *event, const char *detail) {
    if (!p->o.progress) return;
    uint64_t total = 0;
    for (size_t i = 0; i < p->m.n; i++) total += p->m.files[i].size;
    ek_pull_progress pp = {event, "", 0, 0, 0, total, 0, (int)p->m.n, detail ? detail : ""};
    p->o.progress(p->o.progress_arg, &pp);
}

/* Steps 1-2. */
static int fetch_manifest(pull *p, ek_err *e) {
    ek_verify_code code = EK_VERIFY_OK;
    int rc = reg_source_get_small(p->src, REG_MANIFEST, REG_MANIFEST_MAX, &p->man, &p->man_len, &code, e);
    if (rc == 1) {
        ek_err_set(e, EK_ERR_IO, "%s: no %s there", p->display, REG_MANIFEST);
        return refuse(p, EK_VERIFY_NO_MANIFEST, REG_MANIFEST, e);
    }
    if (rc) return refuse(p, code == EK_VERIFY_TOO_LARGE ? EK_VERIFY_MALFORMED_MANIFEST : code, REG_MANIFEST, e);
    reg_sha256_hex(p->man, p->man_len, p->man_sha);
    rc = reg_source_get_small(p->src, REG_MINISIG, REG_MINISIG_MAX, &p->sig, &p->sig_len, &code, e);
    if (rc == 1) {
        p->sig = NULL;
        if (!p->o.allow_unsigned) {
            ek_err_set(e, EK_ERR_FORMAT, "%s: no %s: the model is unsigned; refused (trust its publisher's key with "
                       "`ek keys add`, or pass --allow-unsigned to install it recorded as unsigned)",
                       p->display, REG_MINISIG);
            return refuse(p, EK_VERIFY_UNSIGNED, REG_MINISIG, e);
        }
    } else if (rc) {
        return refuse(p, code == EK_VERIFY_TOO_LARGE ? EK_VERIFY_MALFORMED_SIGNATURE : code, REG_MINISIG, e);
    } else {
        /* A signature that is present must verify, --allow-unsigned or not. */
        rc = reg_keys_verify(p->r, p->sig, p->sig_len, p->man, p->man_len, p->o.allow_legacy, p->res->key_id,
                             p->res->trusted_comment, &code, e);
        if (rc) return refuse(p, code, REG_MINISIG, e);
        p->res->is_signed = 1;
    }
    char what[2700];
    snprintf(what, sizeof what, "%s/%s", p->display, REG_MANIFEST);
    if ((rc = reg_manifest_parse(p->man, p->man_len, what, &p->m, e)))
        return refuse(p, EK_VERIFY_MALFORMED_MANIFEST, REG_MANIFEST, e);
    snprintf(p->res->name, sizeof p->res->name, "%s", p->m.name);
    p->res->version = p->m.version;
    if (p->res->is_signed && (rc = reg_keys_scope_ok(p->r, p->res->key_id, p->m.name, &code, e)))
        return refuse(p, code, REG_MINISIG, e);
    if (p->o.expect_name && *p->o.expect_name && strcmp(p->o.expect_name, p->m.name)) {
        ek_err_set(e, EK_ERR_FORMAT, "%s: the signed manifest is for model \"%s\", not \"%s\"; refused", p->display,
                   p->m.name, p->o.expect_name);
        return refuse(p, EK_VERIFY_NAME_MISMATCH, REG_MANIFEST, e);
    }
    emit(p, "manifest", p->res->trusted_comment);
    return EK_OK;
}

/* A local source directory must hold exactly the manifest's files. */
static int check_local_extras(pull *p, ek_err *e) {
    char **paths;
    size_t n;
    int rc = reg_list_files(reg_source_base(p->src), &paths, &n, e);
    if (rc) return rc;
    for (size_t i = 0; i < n && !rc; i++)
        if (reg_manifest_find(&p->m, paths[i]) < 0) {
            ek_err_set(e, EK_ERR_FORMAT, "%s: extra file %s is not in the signed manifest; refused",
                       reg_source_base(p->src), paths[i]);
            rc = refuse(p, EK_VERIFY_EXTRA_FILE, paths[i], e);
        }
    reg_free_paths(paths, n);
    return rc;
}

/* Steps 3-4 (the caller checked what is installed). */
static int fetch_and_import(pull *p, ek_err *e, int *keep_stage) {
    stage sg = {.lock_fd = -1};
    int rc = stage_open(p->r, p->man_sha, &sg, e);
    if (rc) {
        stage_close(&sg, 1);
        return rc;
    }
    uint64_t total = 0, done = 0;
    for (size_t i = 0; i < p->m.n; i++) total += p->m.files[i].size;
    if (reg_source_is_local(p->src) && (rc = check_local_extras(p, e))) goto out;
    for (size_t i = 0; i < p->m.n; i++) {
        const reg_mfile *f = &p->m.files[i];
        int dup = 0;
        for (size_t k = 0; k < i && !dup; k++) dup = !strcmp(p->m.files[k].sha256, f->sha256);
        char part[4200];
        if ((rc = reg_path(part, sizeof part, e, "%s/parts/%s", sg.dir, f->sha256))) goto out;
        if (!dup) {
            reg_file_job job = {f->path, part, f->size, f->sha256, (int)i, (int)p->m.n, done, total};
            ek_verify_code code = EK_VERIFY_OK;
            if ((rc = reg_source_get_file(p->src, &job, &code, e))) {
                *keep_stage = code == EK_VERIFY_DOWNLOAD; /* resumable */
                rc = refuse(p, code, f->path, e);
                goto out;
            }
        }
        done += f->size;
    }
    /* The expected list: the manifest's files, the manifest, its signature. */
    reg_mfile *all = calloc(p->m.n + 2, sizeof *all);
    if (!all) {
        rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        goto out;
    }
    memcpy(all, p->m.files, p->m.n * sizeof *all);
    size_t na = p->m.n;
    all[na].path = (char *)REG_MANIFEST;
    all[na].size = p->man_len;
    memcpy(all[na++].sha256, p->man_sha, 65);
    if (p->sig) {
        all[na].path = (char *)REG_MINISIG;
        all[na].size = p->sig_len;
        reg_sha256_hex(p->sig, p->sig_len, all[na++].sha256);
    }
    qsort(all, na, sizeof *all, cmp_mfile);
    char tree[4200];
    rc = build_tree(&sg, &p->m, p->man, p->man_len, p->sig, p->sig_len, tree, sizeof tree, e);
    if (!rc) {
        emit(p, "install", NULL);
        reg_import_extra x = {all, na, p->display, p->res->is_signed, p->res->key_id, p->res->trusted_comment,
                              p->man_sha, p->origin, p->repo, p->revision, 1};
        ek_import_options io = {.version = p->m.version, .no_canaries = p->o.no_canaries, .hook = p->o.hook,
                                .hook_arg = p->o.hook_arg};
        int64_t v;
        rc = reg_import(p->r, tree, p->m.name, &io, &x, &v, e);
    }
    free(all);
out:
    stage_close(&sg, *keep_stage);
    return rc;
}

static void log_refusal(struct ek_registry *r, const pull *p, const ek_err *e) {
    ek_err tmp;
    if (reg_begin(r, &tmp)) return;
    char detail[1400];
    snprintf(detail, sizeof detail, "%s: %.200s: %.1100s", ek_verify_code_name(p->res->code), p->display, e->msg);
    const char *model = *p->m.name ? p->m.name : p->o.expect_name ? p->o.expect_name : "";
    if (reg_event(r, model, p->m.version, "pull-refused", detail, &tmp)) reg_rollback(r);
    else reg_commit(r, &tmp);
}

static int id_ok(const char *s, int slashes) {
    if (!*s || strstr(s, "..") || *s == '/' || s[strlen(s) - 1] == '/') return 0;
    for (const char *c = s; *c; c++)
        if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') || (*c >= '0' && *c <= '9') || *c == '.' ||
              *c == '_' || *c == '-' || (*c == '/' && slashes)))
            return 0;
    return 1;
}

static int do_pull(ek_ctx *ctx, struct ek_registry *r, const char *source, const ek_pull_options *opts,
                   ek_pull_result *res) {
    ek_err *e = &ctx->err;
    pull p = {.r = r, .res = res};
    if (opts) p.o = *opts;
    int rc;
    char base[4096];
    if (!source || !*source) return ek_err_set(e, EK_ERR_INVALID_ARG, "pull: no source");
    if (p.o.endpoint && *p.o.endpoint) {
        const char *rev = p.o.revision && *p.o.revision ? p.o.revision : "main";
        if (!id_ok(source, 1)) return ek_err_set(e, EK_ERR_INVALID_ARG, "repo id \"%.200s\": expected ORG/NAME", source);
        if (!id_ok(rev, 0)) return ek_err_set(e, EK_ERR_INVALID_ARG, "revision \"%.200s\": not a branch, tag or commit", rev);
        size_t el = strlen(p.o.endpoint);
        while (el && p.o.endpoint[el - 1] == '/') el--;
        if ((rc = reg_path(base, sizeof base, e, "%.*s/%s/resolve/%s", (int)el, p.o.endpoint, source, rev))) return rc;
        snprintf(p.origin, sizeof p.origin, "%.*s", (int)el, p.o.endpoint);
        snprintf(p.repo, sizeof p.repo, "%s", source);
        snprintf(p.revision, sizeof p.revision, "%s", rev);
        snprintf(p.display, sizeof p.display, "%s (%s@%s)", p.origin, p.repo, p.revision);
    } else {
        if ((rc = reg_path(base, sizeof base, e, "%s", source))) return rc;
    }
    reg_fetch_opts fo = {p.o.connect_timeout_ms, p.o.stall_timeout_s, p.o.min_rate, p.o.timeout_s,
                         p.o.max_retries,        p.o.backoff_ms,      p.o.max_redirects, p.o.progress,
                         p.o.progress_arg};
    if ((rc = reg_source_open(base, &fo, &p.src, e))) return rc;
    if (!*p.origin) {
        snprintf(p.origin, sizeof p.origin, "%s", reg_source_base(p.src));
        snprintf(p.display, sizeof p.display, "%s", p.origin);
    }
    int keep = 0;
    rc = fetch_manifest(&p, e);
    if (!rc) {
        int64_t high = highest_seen(r, p.m.name, e);
        char status[16], sha[65];
        int have = high < 0 ? -1 : installed(r, p.m.name, p.m.version, status, sha, e);
        if (have < 0) rc = e->status;
        else if (p.m.version < high && !p.o.allow_downgrade) {
            ek_err_set(e, EK_ERR_FORMAT,
                       "%s: signed version %lld of %s is lower than the highest version ever seen (%lld): a "
                       "rollback; refused (--allow-downgrade to install it anyway)", p.display,
                       (long long)p.m.version, p.m.name, (long long)high);
            rc = refuse(&p, EK_VERIFY_ROLLBACK, REG_MANIFEST, e);
        } else if (have && (!strcmp(status, "READY") || !strcmp(status, "CORRUPT")) && !strcmp(sha, p.man_sha)) {
            res->already_installed = 1;
        } else if (have && strcmp(status, "FAILED") && strcmp(status, "PENDING")) {
            ek_err_set(e, EK_ERR_FORMAT, "%s@%lld is already installed (%s) with other content than %s; versions "
                       "are immutable: refused", p.m.name, (long long)p.m.version, status, p.display);
            rc = refuse(&p, EK_VERIFY_CONFLICT, REG_MANIFEST, e);
        } else {
            rc = fetch_and_import(&p, e, &keep);
        }
    }
    res->bytes_downloaded = reg_source_bytes(p.src);
    res->retries = reg_source_retries(p.src);
    if (rc && res->code != EK_VERIFY_OK) {
        ek_err saved = *e;
        log_refusal(r, &p, &saved);
        *e = saved;
    }
    if (!rc && p.o.alias && *p.o.alias) {
        rc = ek_registry_alias(ctx, r, p.m.name, p.o.alias, p.m.version);
    }
    if (!rc) emit(&p, "done", res->already_installed ? "already installed" : "installed");
    reg_manifest_free(&p.m);
    free(p.man);
    free(p.sig);
    reg_source_close(p.src);
    return rc;
}

ek_status ek_registry_pull(ek_ctx *ctx, ek_registry *r, const char *source, const ek_pull_options *opts,
                           ek_pull_result *res) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    ek_pull_result tmp;
    if (!res) res = &tmp;
    memset(res, 0, sizeof *res);
    return (ek_status)do_pull(ctx, r, source, opts, res);
}

ek_status ek_registry_update(ek_ctx *ctx, ek_registry *r, const char *name, const ek_pull_options *opts,
                             ek_pull_result *res) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    ek_pull_result tmp;
    if (!res) res = &tmp;
    memset(res, 0, sizeof *res);
    int rc = reg_name_check("model", name, e);
    if (rc) return (ek_status)rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "SELECT p.origin, p.repo, p.revision FROM provenance p JOIN versions v ON "
                             "v.id = p.version_id JOIN models m ON m.id = v.model_id WHERE m.name = ? AND "
                             "p.origin <> '' AND v.status IN ('READY', 'CORRUPT') ORDER BY v.version DESC LIMIT 1",
                          &st, e)))
        return (ek_status)rc;
    sqlite3_bind_text(st, 1, name, -1, SQLITE_STATIC);
    char origin[2048] = "", repo[256] = "", rev[128] = "";
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        col(st, 0, origin, sizeof origin);
        col(st, 1, repo, sizeof repo);
        col(st, 2, rev, sizeof rev);
    }
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) return (ek_status)reg_sql_fail(r, e, s, "reading the provenance");
    if (s == SQLITE_DONE) {
        res->code = EK_VERIFY_NO_SOURCE;
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s: no installed version was pulled from a source (use `ek models "
                          "pull SOURCE` first)", name);
    }
    ek_pull_options o = {0};
    if (opts) o = *opts;
    o.expect_name = name;
    if (*repo) {
        o.endpoint = origin;
        o.revision = rev;
    } else {
        o.endpoint = NULL;
    }
    return (ek_status)do_pull(ctx, r, *repo ? repo : origin, &o, res);
}
