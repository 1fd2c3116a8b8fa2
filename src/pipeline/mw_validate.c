/* pipeline/mw_validate.c — the validation middleware: limits on every text a
 * command carries (length, batch size, NUL bytes, UTF-8).  Errors name the
 * field and the index so a caller can find the bad input in a large batch. */
#include <string.h>

#include "embedkit_pipeline.h"

void ek_validate_config_init(ek_validate_config *c) {
    memset(c, 0, sizeof *c);
    c->max_text_bytes = (size_t)1 << 20;
    c->max_batch = 1024;
}

/* Byte offset of the first invalid UTF-8 sequence, or len when valid.
 * Rejects overlong forms, surrogates and code points above U+10FFFF (the
 * same rules as the tokenizer, checked here so the error is early). */
static size_t utf8_invalid_at(const unsigned char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) { i++; continue; }
        size_t n;
        unsigned lo = 0x80, hi = 0xBF;
        if (c >= 0xC2 && c <= 0xDF) n = 1;
        else if (c == 0xE0) { n = 2; lo = 0xA0; }
        else if (c == 0xED) { n = 2; hi = 0x9F; }
        else if (c >= 0xE1 && c <= 0xEF) n = 2;
        else if (c == 0xF0) { n = 3; lo = 0x90; }
        else if (c >= 0xF1 && c <= 0xF3) n = 3;
        else if (c == 0xF4) { n = 3; hi = 0x8F; }
        else return i;
        if (i + n >= len) return i; /* truncated sequence */
        if (s[i + 1] < lo || s[i + 1] > hi) return i;
        for (size_t k = 2; k <= n; k++)
            if ((s[i + k] & 0xC0) != 0x80) return i;
        i += n + 1;
    }
    return len;
}

static const char *field_of(const ek_cmd *cmd) {
    switch (cmd->type) {
    case EK_CMD_EMBED_TEXT: return "text";
    case EK_CMD_TOKENIZE: return "text";
    case EK_CMD_SIMILARITY: return "pair";
    case EK_CMD_SEARCH: return "query";
    default: return "texts";
    }
}

static ek_status validate(void *state, ek_cmd *cmd, ek_cmd_ctx *cx, ek_next *next) {
    const ek_validate_config *c = state;
    const char *field = field_of(cmd);
    size_t n = ek_cmd_text_count(cmd);
    int batch = cmd->type == EK_CMD_EMBED_BATCH || cmd->type == EK_CMD_PRELOAD_CACHE ||
                (cmd->type == EK_CMD_SEARCH && cmd->u.search.texts);
    if (batch && n == 0)
        return ek_cmd_fail(cx, "validation", EK_ERR_INVALID_ARG, "%s: empty batch", field);
    if (batch && c->max_batch && n > c->max_batch)
        return ek_cmd_fail(cx, "validation", EK_ERR_INVALID_ARG,
                           "%s: %zu items exceed the batch limit of %zu", field, n, c->max_batch);
    /* Callers that stream a long input in chunks number inputs from
     * index_base, so the index in a message is the caller's own. */
    size_t base = batch && cmd->type == EK_CMD_EMBED_BATCH && cmd->u.embed.opts ? cmd->u.embed.opts->index_base : 0;
    for (size_t j = 0; j < n; j++) {
        size_t len, i = j + base;
        const char *t = ek_cmd_text_at(cmd, j, &len);
        if (!t)
            return ek_cmd_fail(cx, "validation", EK_ERR_INVALID_ARG, "%s[%zu]: NULL text", field, i);
        if (!len && !c->allow_empty)
            return ek_cmd_fail(cx, "validation", EK_ERR_INVALID_ARG, "%s[%zu]: empty text", field, i);
        if (c->max_text_bytes && len > c->max_text_bytes)
            return ek_cmd_fail(cx, "validation", EK_ERR_TOO_LONG,
                               "%s[%zu]: %zu bytes exceed the limit of %zu", field, i, len,
                               c->max_text_bytes);
        if (!c->allow_nul) {
            const char *z = memchr(t, '\0', len);
            if (z)
                return ek_cmd_fail(cx, "validation", EK_ERR_INVALID_ARG,
                                   "%s[%zu]: NUL byte at offset %zu", field, i, (size_t)(z - t));
        }
        size_t bad = utf8_invalid_at((const unsigned char *)t, len);
        if (bad != len)
            return ek_cmd_fail(cx, "validation", EK_ERR_UTF8,
                               "%s[%zu]: invalid UTF-8 at byte offset %zu", field, i, bad);
    }
    return ek_next_run(next, cmd, cx);
}

ek_middleware ek_validate_middleware(const ek_validate_config *c) {
    ek_middleware m = {"validation", EK_MW_VALIDATION, EK_SCOPE_TEXT, 0, validate,
                       (void *)c, NULL};
    return m;
}
