/* registry/keys.c — trusted minisign public keys, kept in the registry
 * database (table trusted_keys): each trusted for one model name or for
 * every model (scope ''), and the signature check against them.
 *
 * A key id names one public key: adding a different key under an id that
 * is already trusted is refused, so "the key with this id" is never
 * ambiguous when a signature is checked. */
#include <ctype.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/reg.h"
#include "registry/sign.h"
#include "runtime/ctx.h"

static void col(sqlite3_stmt *st, int i, char *dst, size_t cap) {
    const unsigned char *t = sqlite3_column_text(st, i);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

ek_status ek_keys_add(ek_ctx *ctx, ek_registry *r, const char *text, const char *model, ek_trusted_key *out) {
    if (!ctx || !r || !text) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    const char *scope = model ? model : "";
    int rc;
    if (*scope && (rc = reg_name_check("model", scope, e))) return (ek_status)rc;
    reg_pubkey k;
    char comment[256];
    if ((rc = reg_pubkey_parse(text, &k, comment, sizeof comment, e))) return (ek_status)rc;
    char id[17];
    reg_key_id_hex(k.id, id);
    if ((rc = reg_begin(r, e))) return (ek_status)rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "SELECT public_key, scope FROM trusted_keys WHERE key_id = ?", &st, e))) goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        char pk[64], sc[EK_REGISTRY_NAME_MAX + 1];
        col(st, 0, pk, sizeof pk);
        col(st, 1, sc, sizeof sc);
        if (strcmp(pk, k.b64)) {
            rc = ek_err_set(e, EK_ERR_INVALID_ARG,
                            "key %s: a different public key with this id is already trusted; remove it first "
                            "(ek keys rm %s)", id, id);
            break;
        }
        if (!strcmp(sc, scope)) {
            rc = ek_err_set(e, EK_ERR_INVALID_ARG, "key %s is already trusted for %s%s", id,
                            *scope ? "model " : "every model", scope);
            break;
        }
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "reading trusted keys");
    if (rc) goto fail;
    if ((rc = reg_prepare(r, "INSERT INTO trusted_keys(key_id, scope, public_key, comment, added_at) "
                             "VALUES(?,?,?,?,?)", &st, e)))
        goto fail;
    int64_t now = reg_now();
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, scope, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 3, k.b64, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 4, comment, -1, SQLITE_STATIC);
    sqlite3_bind_int64(st, 5, now);
    s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        rc = reg_sql_fail(r, e, s, "adding a trusted key");
        goto fail;
    }
    char detail[200];
    snprintf(detail, sizeof detail, "key %s trusted for %s", id, *scope ? scope : "every model");
    if ((rc = reg_event(r, scope, 0, "key-add", detail, e))) goto fail;
    if ((rc = reg_commit(r, e))) return (ek_status)rc;
    if (out) {
        memset(out, 0, sizeof *out);
        memcpy(out->key_id, id, sizeof id);
        snprintf(out->scope, sizeof out->scope, "%s", scope);
        snprintf(out->public_key, sizeof out->public_key, "%s", k.b64);
        snprintf(out->comment, sizeof out->comment, "%s", comment);
        out->added_at = now;
    }
    return EK_OK;
fail:
    reg_rollback(r);
    return (ek_status)rc;
}

ek_status ek_keys_list(ek_ctx *ctx, ek_registry *r, ek_trusted_key **out, size_t *n) {
    if (!ctx || !r || !out || !n) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    *out = NULL;
    *n = 0;
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT key_id, scope, public_key, comment, added_at FROM trusted_keys "
                            "ORDER BY scope, key_id", &st, e);
    if (rc) return (ek_status)rc;
    size_t cap = 0;
    int s;
    while ((s = sqlite3_step(st)) == SQLITE_ROW) {
        if (*n == cap) {
            size_t c = cap ? 2 * cap : 8;
            ek_trusted_key *v = realloc(*out, c * sizeof *v);
            if (!v) {
                rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
                break;
            }
            *out = v;
            cap = c;
        }
        ek_trusted_key *k = &(*out)[(*n)++];
        memset(k, 0, sizeof *k);
        col(st, 0, k->key_id, sizeof k->key_id);
        col(st, 1, k->scope, sizeof k->scope);
        col(st, 2, k->public_key, sizeof k->public_key);
        col(st, 3, k->comment, sizeof k->comment);
        k->added_at = sqlite3_column_int64(st, 4);
    }
    sqlite3_finalize(st);
    if (!rc && s != SQLITE_DONE) rc = reg_sql_fail(r, e, s, "listing trusted keys");
    if (rc) {
        free(*out);
        *out = NULL;
        *n = 0;
    }
    return (ek_status)rc;
}

ek_status ek_keys_remove(ek_ctx *ctx, ek_registry *r, const char *key_id, const char *model, size_t *removed) {
    if (!ctx || !r || !key_id) return EK_ERR_INVALID_ARG;
    ek_err *e = &ctx->err;
    ek_err_clear(e);
    if (removed) *removed = 0;
    char id[17];
    size_t n = strlen(key_id);
    if (n != 16 || strspn(key_id, "0123456789abcdefABCDEF") != 16)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "key id \"%.40s\": expected 16 hex digits (as `ek keys list` shows)",
                          key_id);
    for (int i = 0; i < 16; i++) id[i] = (char)toupper((unsigned char)key_id[i]);
    id[16] = '\0';
    int rc = reg_begin(r, e);
    if (rc) return (ek_status)rc;
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "DELETE FROM trusted_keys WHERE key_id = ?1 AND (?2 IS NULL OR scope = ?2)", &st, e)))
        goto fail;
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    if (model) sqlite3_bind_text(st, 2, model, -1, SQLITE_STATIC);
    int s = sqlite3_step(st);
    sqlite3_finalize(st);
    if (s != SQLITE_DONE) {
        rc = reg_sql_fail(r, e, s, "removing a trusted key");
        goto fail;
    }
    int changed = sqlite3_changes(r->db);
    if (!changed) {
        rc = ek_err_set(e, EK_ERR_INVALID_ARG, "key %s is not trusted%s%s", id, model ? " for model " : "",
                        model ? model : "");
        goto fail;
    }
    char detail[200];
    snprintf(detail, sizeof detail, "key %s no longer trusted%s%s", id, model ? " for " : "", model ? model : "");
    if ((rc = reg_event(r, model ? model : "", 0, "key-rm", detail, e))) goto fail;
    if ((rc = reg_commit(r, e))) return (ek_status)rc;
    if (removed) *removed = (size_t)changed;
    return EK_OK;
fail:
    reg_rollback(r);
    return (ek_status)rc;
}

/* The trusted key ids, for a message that says what would have been
 * accepted. */
static void trusted_ids(struct ek_registry *r, char *buf, size_t cap) {
    sqlite3_stmt *st;
    buf[0] = '\0';
    if (reg_prepare(r, "SELECT group_concat(key_id || CASE scope WHEN '' THEN '' ELSE ' (' || scope || ')' END, "
                       "', ') FROM trusted_keys", &st, NULL))
        return;
    if (sqlite3_step(st) == SQLITE_ROW) col(st, 0, buf, cap);
    sqlite3_finalize(st);
}

int reg_keys_verify(struct ek_registry *r, const char *sig_text, size_t sig_len, const void *msg, size_t len,
                    int allow_legacy, char *key_id, char *trusted, ek_verify_code *code, ek_err *e) {
    reg_sig s;
    int rc = reg_sig_parse(sig_text, sig_len, &s, code, e);
    if (rc) return rc;
    char sid[17];
    reg_key_id_hex(s.id, sid);
    memcpy(key_id, sid, sizeof sid);
    /* The algorithm comes before the key: a legacy signature is refused as
     * such even when its key is unknown. */
    if (s.alg[0] == 'E' && s.alg[1] == 'd' && !allow_legacy) {
        reg_pubkey none = {0};
        memcpy(none.id, s.id, 8);
        return reg_sig_verify(&s, &none, msg, len, 0, code, e);
    }
    sqlite3_stmt *st;
    if ((rc = reg_prepare(r, "SELECT public_key FROM trusted_keys WHERE key_id = ? LIMIT 1", &st, e))) {
        *code = EK_VERIFY_UNTRUSTED_KEY;
        return rc;
    }
    sqlite3_bind_text(st, 1, sid, -1, SQLITE_STATIC);
    char b64[64] = "";
    int step = sqlite3_step(st);
    if (step == SQLITE_ROW) col(st, 0, b64, sizeof b64);
    sqlite3_finalize(st);
    if (step != SQLITE_ROW && step != SQLITE_DONE) {
        *code = EK_VERIFY_UNTRUSTED_KEY;
        return reg_sql_fail(r, e, step, "reading trusted keys");
    }
    if (step == SQLITE_DONE) {
        char ids[512];
        trusted_ids(r, ids, sizeof ids);
        *code = EK_VERIFY_UNTRUSTED_KEY;
        return ek_err_set(e, EK_ERR_FORMAT, "%s: signed by key %s, which is not trusted (trusted keys: %s; add one "
                          "with `ek keys add`)", REG_MINISIG, sid, *ids ? ids : "none");
    }
    reg_pubkey k;
    if ((rc = reg_pubkey_parse(b64, &k, NULL, 0, e))) {
        *code = EK_VERIFY_MALFORMED_KEY;
        return rc;
    }
    if ((rc = reg_sig_verify(&s, &k, msg, len, allow_legacy, code, e))) return rc;
    snprintf(trusted, 1024, "%s", s.trusted);
    return EK_OK;
}

int reg_keys_scope_ok(struct ek_registry *r, const char *key_id, const char *name, ek_verify_code *code,
                      ek_err *e) {
    sqlite3_stmt *st;
    int rc = reg_prepare(r, "SELECT group_concat(scope, ', '), sum(scope = '' OR scope = ?2) FROM trusted_keys "
                            "WHERE key_id = ?1", &st, e);
    if (rc) return rc;
    sqlite3_bind_text(st, 1, key_id, -1, SQLITE_STATIC);
    sqlite3_bind_text(st, 2, name, -1, SQLITE_STATIC);
    char scopes[512] = "";
    int ok = 0;
    int s = sqlite3_step(st);
    if (s == SQLITE_ROW) {
        col(st, 0, scopes, sizeof scopes);
        ok = sqlite3_column_int(st, 1) > 0;
    }
    sqlite3_finalize(st);
    if (s != SQLITE_ROW) return reg_sql_fail(r, e, s, "reading trusted keys");
    if (ok) return EK_OK;
    *code = EK_VERIFY_UNTRUSTED_KEY;
    return ek_err_set(e, EK_ERR_FORMAT, "%s: key %s is trusted only for model %s, not for \"%s\"", REG_MINISIG,
                      key_id, scopes, name);
}
