/* registry/sigcheck.c — re-verifying an installed version after install:
 * its stored manifest.json.minisig over its stored manifest.json against
 * the keys trusted now, and its files against that manifest; and the
 * registry-wide verify_on_load setting that makes loads and health checks
 * do it (docs/SIGNING.md, "Verification after install").
 *
 * Why again: a key can be withdrawn after an install (compromised
 * publisher), and the version directory and the blob store are ordinary
 * files that can be edited.  The check is read-only: it changes no status,
 * so it can run on every load. */
#define _XOPEN_SOURCE 700
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "registry/reg.h"
#include "registry/sign.h"
#include "runtime/ctx.h"

#define SETTING_VERIFY "verify_on_load"

static const char *const policy_names[] = {"off", "signed", "required"};

const char *ek_sig_policy_name(ek_sig_policy p) {
    return (unsigned)p < 3 ? policy_names[p] : "unknown";
}

int ek_sig_policy_parse(const char *text, ek_sig_policy *out) {
    if (!text || !out) return -1;
    for (int i = 0; i < 3; i++)
        if (!strcmp(text, policy_names[i])) {
            *out = (ek_sig_policy)i;
            return 0;
        }
    if (!strcmp(text, "on")) {
        *out = EK_SIG_SIGNED;
        return 0;
    }
    return -1;
}

int reg_get_policy(struct ek_registry *r, ek_sig_policy *p, ek_err *e) {
    *p = EK_SIG_OFF;
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT value FROM settings WHERE key = '" SETTING_VERIFY "'", &st, e);
    if (rc) return rc;
    int s = sqlite3_step(st);
    char v[32] = "";
    if (s == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(v, sizeof v, "%s", t ? (const char *)t : "");
    }
    sqlite3_finalize(st);
    if (s != SQLITE_ROW && s != SQLITE_DONE) return reg_sql_fail(r, e, s, "reading the settings");
    /* An unknown value (written by a newer embedkit) is the strictest. */
    if (s == SQLITE_ROW && ek_sig_policy_parse(v, p)) *p = EK_SIG_REQUIRED;
    return EK_OK;
}

int reg_verify_for_load(struct ek_registry *r, const ek_reg_version *v, ek_sig_policy at_least, ek_err *e) {
    ek_sig_policy pol = EK_SIG_OFF;
    int rc = reg_get_policy(r, &pol, e);
    if (!rc && at_least > pol) pol = at_least;
    if (rc || pol == EK_SIG_OFF) return rc;
    ek_sig_report sr;
    return reg_verify_signature(r, v, pol == EK_SIG_REQUIRED, &sr, e);
}

ek_status ek_registry_get_verify_on_load(ek_ctx *ctx, ek_registry *r, ek_sig_policy *out) {
    if (!ctx || !r || !out) return EK_ERR_INVALID_ARG;
    ek_err_clear(&ctx->err);
    return (ek_status)reg_get_policy(r, out, &ctx->err);
}

ek_status ek_registry_set_verify_on_load(ek_ctx *ctx, ek_registry *r, ek_sig_policy p) {
    if (!ctx || !r) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if ((unsigned)p > EK_SIG_REQUIRED) return ek_err_set(e, EK_ERR_INVALID_ARG, "verify_on_load: unknown policy %d", (int)p);
    int rc = reg_begin(r, e);
    if (rc) return (ek_status)rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "INSERT OR REPLACE INTO settings(key, value) VALUES('" SETTING_VERIFY "', ?)", &st, e))) {
        reg_rollback(r);
        return (ek_status)rc;
    }
    sqlite3_bind_text(st, 1, ek_sig_policy_name(p), -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "storing the setting");
    char detail[64];
    snprintf(detail, sizeof detail, SETTING_VERIFY " = %s", ek_sig_policy_name(p));
    if (!rc) rc = reg_event(r, NULL, 0, "setting", detail, e);
    if (rc) {
        reg_rollback(r);
        return (ek_status)rc;
    }
    return (ek_status)reg_commit(r, e);
}

/* Reads a whole small file: 0 read, 1 absent, else an error status. */
static int read_small(const char *path, size_t max, char **buf, size_t *len, ek_err *e) {
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        if (errno == ENOENT) return 1;
        return ek_err_set(e, EK_ERR_IO, "%s: %s", path, strerror(errno));
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode) || (uint64_t)sb.st_size > max) {
        close(fd);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: not a regular file of at most %zu bytes", path, max);
    }
    char *b = malloc((size_t)sb.st_size + 1);
    if (!b) {
        close(fd);
        return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    }
    size_t n = 0;
    while (n < (size_t)sb.st_size) {
        ssize_t got = read(fd, b + n, (size_t)sb.st_size - n);
        if (got < 0 && errno == EINTR) continue;
        if (got <= 0) break;
        n += (size_t)got;
    }
    close(fd);
    b[n] = '\0';
    *buf = b;
    *len = n;
    return EK_OK;
}

typedef struct check {
    const ek_reg_version *v;
    ek_sig_report *o;
    ek_err *e;
} check;

/* Records a failure: code, file, and a message naming both. */
static int fail(check *c, ek_verify_code code, const char *file, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(check *c, ek_verify_code code, const char *file, const char *fmt, ...) {
    char why[1500];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    snprintf(c->o->state, sizeof c->o->state, "failed");
    c->o->code = code;
    snprintf(c->o->file, sizeof c->o->file, "%s", file);
    return ek_err_set(c->e, EK_ERR_FORMAT, "%s@%lld: signature verification failed [%s, %.200s]: %s", c->v->name,
                      (long long)c->v->version, ek_verify_code_name(code), file, why);
}

/* The files of dir against the manifest: the same set, sizes, digests. */
static int check_files(check *c, const char *dir, const reg_manifest *m) {
    char **paths;
    size_t n;
    int rc = reg_list_files(dir, &paths, &n, c->e);
    if (rc) return fail(c, EK_VERIFY_MISSING_FILE, "", "cannot list %s: %.1000s", dir, c->e->msg);
    size_t i = 0, j = 0;
    while (!rc && (i < n || j < m->n)) {
        int cmp = i == n ? 1 : j == m->n ? -1 : strcmp(paths[i], m->files[j].path);
        if (cmp < 0) rc = fail(c, EK_VERIFY_EXTRA_FILE, paths[i], "extra file %.1000s is not in the signed manifest",
                               paths[i]);
        else if (cmp > 0)
            rc = fail(c, EK_VERIFY_MISSING_FILE, m->files[j].path, "file %.1000s of the signed manifest is missing",
                      m->files[j].path);
        else {
            char path[8192], hex[65];
            uint64_t size = 0;
            ek_err he;
            ek_err_clear(&he);
            if (reg_path(path, sizeof path, c->e, "%s/%s", dir, paths[i])) rc = c->e->status;
            else if (reg_hash_file(path, hex, &size, &he))
                rc = fail(c, EK_VERIFY_MISSING_FILE, paths[i], "file %.1000s is unreadable: %.300s", paths[i],
                          he.msg);
            else if (size != m->files[j].size)
                rc = fail(c, EK_VERIFY_SIZE_MISMATCH, paths[i], "file %.1000s has %llu bytes, the signed manifest "
                          "says %llu", paths[i], (unsigned long long)size, (unsigned long long)m->files[j].size);
            else if (strcmp(hex, m->files[j].sha256))
                rc = fail(c, EK_VERIFY_DIGEST_MISMATCH, paths[i], "file %.1000s has SHA-256 %s, the signed manifest "
                          "says %s", paths[i], hex, m->files[j].sha256);
            else c->o->files_checked++;
        }
        if (cmp <= 0) i++;
        if (cmp >= 0) j++;
    }
    reg_free_paths(paths, n);
    return rc;
}

int reg_verify_signature(struct ek_registry *r, const ek_reg_version *v, int require_signed, ek_sig_report *o,
                         ek_err *e) {
    memset(o, 0, sizeof *o);
    if (strcmp(v->status, "READY") && strcmp(v->status, "CORRUPT"))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s@%lld is %s: there is nothing to verify", v->name,
                          (long long)v->version, v->status);
    check c = {v, o, e};
    ek_ctx tmp = {0};
    ek_reg_provenance pv;
    int rc = (int)ek_registry_provenance(&tmp, r, v->name, v->version, &pv);
    if (rc) {
        *e = tmp.err;
        return rc;
    }
    if (!pv.is_signed) {
        snprintf(o->state, sizeof o->state, "unsigned");
        if (!require_signed) return EK_OK;
        rc = fail(&c, EK_VERIFY_UNSIGNED, REG_MINISIG, "the version was installed unsigned (%s), and signatures "
                  "are required", pv.recorded ? "--allow-unsigned" : "`ek models add`");
        snprintf(o->state, sizeof o->state, "unsigned");
        return rc;
    }
    o->is_signed = 1;
    char dir[4096], mp[4200], sp[4200];
    if ((rc = reg_path(dir, sizeof dir, e, "%s/models/%s/%lld", r->home, v->name, (long long)v->version)) ||
        (rc = reg_path(mp, sizeof mp, e, "%s/%s", dir, REG_MANIFEST)) ||
        (rc = reg_path(sp, sizeof sp, e, "%s/%s", dir, REG_MINISIG)))
        return rc;
    char *man = NULL, *sig = NULL;
    size_t man_len = 0, sig_len = 0;
    reg_manifest m = {0};
    ek_err sub;
    ek_err_clear(&sub);
    int got = read_small(mp, REG_MANIFEST_MAX, &man, &man_len, &sub);
    if (got == 1) rc = fail(&c, EK_VERIFY_NO_MANIFEST, REG_MANIFEST, "the stored %s is missing", REG_MANIFEST);
    else if (got) rc = fail(&c, EK_VERIFY_MALFORMED_MANIFEST, REG_MANIFEST, "%.1000s", sub.msg);
    if (rc) goto out;
    got = read_small(sp, REG_MINISIG_MAX, &sig, &sig_len, &sub);
    if (got == 1) rc = fail(&c, EK_VERIFY_MISSING_FILE, REG_MINISIG, "the stored %s is missing", REG_MINISIG);
    else if (got) rc = fail(&c, EK_VERIFY_MALFORMED_SIGNATURE, REG_MINISIG, "%.1000s", sub.msg);
    if (rc) goto out;
    /* The signature against the keys trusted now.  Legacy signatures are
     * accepted here: the algorithm was judged at install, and a different
     * signature than the recorded one still needs the signer's secret key. */
    ek_verify_code code = EK_VERIFY_OK;
    char key_id[17] = "", trusted[1024] = "";
    if (reg_keys_verify(r, sig, sig_len, man, man_len, 1, key_id, trusted, &code, &sub)) {
        rc = fail(&c, code == EK_VERIFY_OK ? EK_VERIFY_BAD_SIGNATURE : code,
                  code == EK_VERIFY_BAD_SIGNATURE ? REG_MANIFEST : REG_MINISIG, "%.1000s", sub.msg);
        goto out;
    }
    snprintf(o->key_id, sizeof o->key_id, "%s", key_id);
    snprintf(o->trusted_comment, sizeof o->trusted_comment, "%s", trusted);
    if ((rc = reg_keys_scope_ok(r, key_id, v->name, &code, &sub))) {
        rc = fail(&c, code == EK_VERIFY_OK ? EK_VERIFY_UNTRUSTED_KEY : code, REG_MINISIG, "%.1000s", sub.msg);
        goto out;
    }
    /* The same signer and manifest as at install. */
    char sha[65];
    reg_sha256_hex(man, man_len, sha);
    if (*pv.key_id && strcmp(pv.key_id, key_id)) {
        rc = fail(&c, EK_VERIFY_BAD_SIGNATURE, REG_MINISIG, "signed by key %s, but installed as signed by %s", key_id,
                  pv.key_id);
        goto out;
    }
    if (*pv.manifest_sha256 && strcmp(pv.manifest_sha256, sha)) {
        rc = fail(&c, EK_VERIFY_CONFLICT, REG_MANIFEST, "the stored manifest (SHA-256 %s) is not the one installed "
                  "(%s)", sha, pv.manifest_sha256);
        goto out;
    }
    char what[256];
    snprintf(what, sizeof what, "%s@%lld/%s", v->name, (long long)v->version, REG_MANIFEST);
    if (reg_manifest_parse(man, man_len, what, &m, &sub)) {
        rc = fail(&c, EK_VERIFY_MALFORMED_MANIFEST, REG_MANIFEST, "%.1000s", sub.msg);
        goto out;
    }
    if (strcmp(m.name, v->name) || m.version != v->version) {
        rc = fail(&c, EK_VERIFY_NAME_MISMATCH, REG_MANIFEST, "the signed manifest is for %s@%lld", m.name,
                  (long long)m.version);
        goto out;
    }
    if ((rc = check_files(&c, dir, &m))) goto out;
    snprintf(o->state, sizeof o->state, "verified");
out:
    reg_manifest_free(&m);
    free(man);
    free(sig);
    return rc;
}

ek_status ek_registry_verify_signature(ek_ctx *ctx, ek_registry *r, const char *ref, int require_signed,
                                       ek_sig_report *out) {
    if (!ctx || !r || !ref) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    ek_sig_report tmp;
    if (!out) out = &tmp;
    memset(out, 0, sizeof *out);
    ek_reg_version v;
    int rc = (int)ek_registry_lookup(ctx, r, ref, &v);
    if (rc) return (ek_status)rc;
    return (ek_status)reg_verify_signature(r, &v, require_signed, out, e);
}
