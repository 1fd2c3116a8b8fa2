/* registry/names.c — what a model or alias name may be, and parsing model
 * references (name, name@N, name@alias).
 *
 * Names become path components (models/<name>/...), so they are checked
 * before any file is touched: a small allowed set [A-Za-z0-9._-], starting
 * with a letter or digit (so never "", ".", "..", "-flag" or a hidden file),
 * and no ".." anywhere.  That rules out '/', NUL, control characters and
 * absolute paths by construction. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "registry/reg.h"
#include "runtime/ctx.h"

static int alnum(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

int reg_name_check(const char *what, const char *name, ek_err *e) {
    if (!name || !*name) return ek_err_set(e, EK_ERR_INVALID_ARG, "%s name: empty", what);
    size_t n = strlen(name);
    if (n > EK_REGISTRY_NAME_MAX)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s name \"%.64s...\": longer than %d characters",
                          what, name, EK_REGISTRY_NAME_MAX);
    if (!alnum(name[0]))
        return ek_err_set(e, EK_ERR_INVALID_ARG,
                          "%s name \"%s\": must start with a letter or digit", what, name);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!alnum((char)c) && c != '.' && c != '_' && c != '-')
            return ek_err_set(e, EK_ERR_INVALID_ARG,
                              c < 0x20 || c == 0x7f
                                  ? "%s name: control character 0x%02x at byte %zu; allowed: "
                                    "letters, digits, '.', '_', '-'"
                                  : "%s name: character 0x%02x at byte %zu is not allowed; "
                                    "allowed: letters, digits, '.', '_', '-'",
                              what, c, i);
    }
    if (strstr(name, ".."))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "%s name \"%s\": contains \"..\"", what, name);
    if (!strcmp(what, "alias")) {
        if (!strcmp(name, "latest"))
            return ek_err_set(e, EK_ERR_INVALID_ARG,
                              "alias \"latest\" is reserved: it always means the highest READY version");
        if (strspn(name, "0123456789") == n)
            return ek_err_set(e, EK_ERR_INVALID_ARG,
                              "alias \"%s\": all digits would read as a version number", name);
    }
    return EK_OK;
}

int ek_registry_name_ok(ek_ctx *ctx, const char *what, const char *name) {
    ek_err tmp;
    ek_err *e = ctx ? &ctx->err : &tmp;
    ek_err_clear(e);
    return reg_name_check(what ? what : "model", name, e) == EK_OK;
}

int reg_parse_ref(const char *ref, char *name, char *alias, int64_t *version, ek_err *e) {
    *version = 0;
    alias[0] = name[0] = '\0';
    if (!ref || !*ref) return ek_err_set(e, EK_ERR_INVALID_ARG, "model reference: empty");
    const char *at = strchr(ref, '@');
    size_t nlen = at ? (size_t)(at - ref) : strlen(ref);
    if (nlen > EK_REGISTRY_NAME_MAX)
        return ek_err_set(e, EK_ERR_INVALID_ARG, "model reference \"%.80s\": name too long", ref);
    memcpy(name, ref, nlen);
    name[nlen] = '\0';
    int rc = reg_name_check("model", name, e);
    if (rc) return rc;
    if (!at) return EK_OK;
    const char *sel = at + 1;
    if (!*sel) return ek_err_set(e, EK_ERR_INVALID_ARG, "model reference \"%s\": nothing after '@'", ref);
    if (strspn(sel, "0123456789") == strlen(sel)) {
        char *end;
        long long v = strtoll(sel, &end, 10);
        if (v <= 0 || v > (1LL << 53) || *end)
            return ek_err_set(e, EK_ERR_INVALID_ARG, "model reference \"%s\": version out of range", ref);
        *version = v;
        return EK_OK;
    }
    if (!strcmp(sel, "latest")) return EK_OK;
    rc = reg_name_check("alias", sel, e);
    if (rc) return rc;
    snprintf(alias, EK_REGISTRY_NAME_MAX + 1, "%s", sel);
    return EK_OK;
}
