/* registry/minisign.c — minisign public keys and signatures, parsed exactly
 * and verified with libsodium (Ed25519; BLAKE2b-512 for the prehashed "ED"
 * variant).  No cryptography is implemented here: only the file formats.
 *
 * Formats (https://jedisct1.github.io/minisign/):
 *   key:  "untrusted comment: ..." \n base64("Ed" || key id[8] || pk[32])
 *   sig:  "untrusted comment: ..." \n base64(alg[2] || key id[8] || sig[64]) \n
 *         "trusted comment: TEXT" \n base64(global sig[64])
 * where the global signature is Ed25519 over sig[64] || TEXT.  Every check
 * has its own error code, so a wrong key, an edited trusted comment and a
 * legacy signature are told apart. */
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/sign.h"

#define UNTRUSTED "untrusted comment: "
#define TRUSTED "trusted comment: "

void reg_key_id_hex(const unsigned char id[8], char out[17]) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | id[i];
    snprintf(out, 17, "%016llX", (unsigned long long)v);
}

/* Decodes one base64 line (standard alphabet, padded) that must hold
 * exactly want bytes. */
static int b64_exact(const char *s, size_t len, unsigned char *out, size_t want, const char *what,
                     ek_err *e) {
    unsigned char tmp[256];
    size_t got = 0;
    const char *end = NULL;
    if (len == 0) return ek_err_set(e, EK_ERR_FORMAT, "%s: empty base64 line", what);
    if (sodium_base642bin(tmp, sizeof tmp, s, len, NULL, &got, &end, sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != s + len)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: invalid base64", what);
    if (got != want)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: decodes to %zu bytes, expected exactly %zu", what, got, want);
    memcpy(out, tmp, want);
    return EK_OK;
}

/* Splits text into at most max lines, trimming "\r\n" ends as minisign
 * does; a final newline is optional.  Returns the number of lines, or -1
 * when there are more than max (or a NUL byte). */
typedef struct line {
    const char *p;
    size_t n;
} line;

static int split_lines(const char *text, size_t len, line *lines, int max) {
    if (memchr(text, '\0', len)) return -1;
    int k = 0;
    size_t i = 0;
    while (i < len) {
        const char *nl = memchr(text + i, '\n', len - i);
        size_t end = nl ? (size_t)(nl - text) : len;
        if (k == max) return -1;
        size_t n = end - i;
        while (n && text[i + n - 1] == '\r') n--;
        lines[k].p = text + i;
        lines[k].n = n;
        k++;
        i = end + 1;
    }
    return k;
}

static int starts(const line *l, const char *prefix) {
    size_t n = strlen(prefix);
    return l->n >= n && !memcmp(l->p, prefix, n);
}

int reg_pubkey_parse(const char *text, reg_pubkey *k, char *comment, size_t cap, ek_err *e) {
    memset(k, 0, sizeof *k);
    if (comment && cap) comment[0] = '\0';
    line l[2];
    int n = split_lines(text, strlen(text), l, 2);
    const line *b64;
    if (n == 1 && !starts(&l[0], UNTRUSTED)) b64 = &l[0];  /* the base64 line alone, as `minisign -P` takes */
    else if (n == 2 && starts(&l[0], UNTRUSTED)) {
        b64 = &l[1];
        if (comment && cap) {
            size_t c = l[0].n - strlen(UNTRUSTED);
            if (c >= cap) c = cap - 1;
            memcpy(comment, l[0].p + strlen(UNTRUSTED), c);
            comment[c] = '\0';
        }
    } else
        return ek_err_set(e, EK_ERR_FORMAT,
                          "public key: expected \"untrusted comment: ...\" and one base64 line (a minisign .pub "
                          "file) or the base64 line alone");
    unsigned char raw[42];
    int rc = b64_exact(b64->p, b64->n, raw, sizeof raw, "public key", e);
    if (rc) return rc;
    if (raw[0] != 'E' || raw[1] != 'd')
        return ek_err_set(e, EK_ERR_FORMAT, "public key: algorithm \"%c%c\", expected \"Ed\"",
                          raw[0] >= 0x20 && raw[0] < 0x7f ? raw[0] : '?',
                          raw[1] >= 0x20 && raw[1] < 0x7f ? raw[1] : '?');
    memcpy(k->id, raw + 2, 8);
    memcpy(k->pk, raw + 10, 32);
    sodium_bin2base64(k->b64, sizeof k->b64, raw, sizeof raw, sodium_base64_VARIANT_ORIGINAL);
    return EK_OK;
}

int reg_sig_parse(const char *text, size_t len, reg_sig *s, ek_verify_code *code, ek_err *e) {
    memset(s, 0, sizeof *s);
    *code = EK_VERIFY_MALFORMED_SIGNATURE;
    line l[4];
    int n = split_lines(text, len, l, 4);
    if (n != 4)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: expected 4 lines (untrusted comment, signature, trusted comment, "
                          "global signature)", REG_MINISIG);
    if (!starts(&l[0], UNTRUSTED))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: line 1 must start with \"%s\"", REG_MINISIG, UNTRUSTED);
    if (!starts(&l[2], TRUSTED))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: line 3 must start with \"%s\"", REG_MINISIG, TRUSTED);
    unsigned char raw[74];
    int rc = b64_exact(l[1].p, l[1].n, raw, sizeof raw, REG_MINISIG ": signature line", e);
    if (!rc) rc = b64_exact(l[3].p, l[3].n, s->global, sizeof s->global, REG_MINISIG ": global signature line", e);
    if (rc) return rc;
    memcpy(s->alg, raw, 2);
    memcpy(s->id, raw + 2, 8);
    memcpy(s->sig, raw + 10, 64);
    size_t tn = l[2].n - strlen(TRUSTED);
    if (tn >= sizeof s->trusted)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: trusted comment longer than %zu bytes", REG_MINISIG,
                          sizeof s->trusted - 1);
    memcpy(s->trusted, l[2].p + strlen(TRUSTED), tn);
    s->trusted[tn] = '\0';
    *code = EK_VERIFY_OK;
    return EK_OK;
}

int reg_sig_verify(const reg_sig *s, const reg_pubkey *k, const void *msg, size_t len, int allow_legacy,
                   ek_verify_code *code, ek_err *e) {
    char sid[17], kid[17];
    reg_key_id_hex(s->id, sid);
    reg_key_id_hex(k->id, kid);
    int prehashed = s->alg[0] == 'E' && s->alg[1] == 'D';
    int legacy = s->alg[0] == 'E' && s->alg[1] == 'd';
    if (!prehashed && !legacy) {
        *code = EK_VERIFY_MALFORMED_SIGNATURE;
        return ek_err_set(e, EK_ERR_FORMAT, "%s: unknown signature algorithm 0x%02x%02x", REG_MINISIG, s->alg[0],
                          s->alg[1]);
    }
    if (legacy && !allow_legacy) {
        *code = EK_VERIFY_LEGACY;
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: legacy (non-prehashed \"Ed\") signature refused; re-sign with a current minisign "
                          "(prehashed is the default) or allow legacy signatures", REG_MINISIG);
    }
    if (sodium_memcmp(s->id, k->id, 8) != 0) {
        *code = EK_VERIFY_UNTRUSTED_KEY;
        return ek_err_set(e, EK_ERR_FORMAT, "%s: signed by key %s, not by key %s", REG_MINISIG, sid, kid);
    }
    unsigned char h[crypto_generichash_BYTES_MAX];
    const unsigned char *m = msg;
    unsigned long long mlen = len;
    if (prehashed) {
        crypto_generichash(h, sizeof h, msg, len, NULL, 0); /* BLAKE2b-512 */
        m = h;
        mlen = sizeof h;
    }
    if (crypto_sign_verify_detached(s->sig, m, mlen, k->pk) != 0) {
        *code = EK_VERIFY_BAD_SIGNATURE;
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: the signature by key %s does not match %s (the manifest was changed after "
                          "signing, or the signature belongs to another file)", REG_MINISIG, sid, REG_MANIFEST);
    }
    size_t tn = strlen(s->trusted);
    unsigned char *g = malloc(64 + tn);
    if (!g) {
        *code = EK_VERIFY_MALFORMED_SIGNATURE;
        return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    }
    memcpy(g, s->sig, 64);
    memcpy(g + 64, s->trusted, tn);
    int ok = crypto_sign_verify_detached(s->global, g, 64 + tn, k->pk) == 0;
    free(g);
    if (!ok) {
        *code = EK_VERIFY_BAD_TRUSTED_COMMENT;
        return ek_err_set(e, EK_ERR_FORMAT,
                          "%s: the trusted comment \"%.200s\" was edited after signing (its global signature "
                          "by key %s does not verify)", REG_MINISIG, s->trusted, sid);
    }
    *code = EK_VERIFY_OK;
    return EK_OK;
}
