/* cli/input.c — reading the texts to embed or tokenize: command-line
 * arguments, or stdin in chunks (plain lines or JSONL), so that any number of
 * inputs streams through in constant memory. */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static int push(cli_input *in, const char *cmd, const char *s, size_t len) {
    if (in->n == in->cap) {
        size_t nc = in->cap ? in->cap * 2 : 64;
        char **nt = realloc(in->texts, sizeof *nt * nc);
        if (nt) in->texts = nt;
        size_t *nl = realloc(in->lens, sizeof *nl * nc);
        if (nl) in->lens = nl;
        if (!nt || !nl) return cli_fail(cmd, "out of memory");
        in->cap = nc;
    }
    char *c = malloc(len + 1);
    if (!c) return cli_fail(cmd, "out of memory reading input %zu", in->line_no);
    memcpy(c, s, len);
    c[len] = '\0';
    in->texts[in->n] = c;
    in->lens[in->n] = len;
    in->n++;
    return 0;
}

static void clear_chunk(cli_input *in) {
    for (size_t i = 0; i < in->n; i++) free(in->texts[i]);
    in->n = 0;
}

long cli_input_next(cli_input *in, const char *cmd, size_t max) {
    clear_chunk(in);
    if (in->argv_texts) {
        while (in->argv_pos < in->argv_n && in->n < max) {
            const char *s = in->argv_texts[in->argv_pos++];
            if (push(in, cmd, s, strlen(s))) return -1;
        }
        return (long)in->n;
    }
    while (in->n < max) {
        ssize_t r = getline(&in->line, &in->line_cap, in->f);
        if (r < 0) break;
        in->line_no++;
        size_t len = (size_t)r;
        if (len && in->line[len - 1] == '\n') len--;
        if (len && in->line[len - 1] == '\r') len--; /* CRLF files embed as LF ones */
        if (!in->jsonl) {
            if (push(in, cmd, in->line, len)) return -1;
            continue;
        }
        const char *end = NULL;
        cJSON *j = cJSON_ParseWithLengthOpts(in->line, len, &end, 0);
        const cJSON *t = j ? cJSON_GetObjectItemCaseSensitive(j, "text") : NULL;
        if (!j || !cJSON_IsString(t)) {
            cJSON_Delete(j);
            cli_fail(cmd, "stdin line %zu: %s", in->line_no,
                     !j ? "not valid JSON" : "needs a string field \"text\"");
            return -1;
        }
        /* cJSON strings stop at an escaped \u0000; such a text is cut there. */
        int rc = push(in, cmd, t->valuestring, strlen(t->valuestring));
        cJSON_Delete(j);
        if (rc) return -1;
    }
    if (ferror(in->f)) {
        cli_fail(cmd, "reading stdin failed after line %zu", in->line_no);
        return -1;
    }
    return (long)in->n;
}

void cli_input_free(cli_input *in) {
    clear_chunk(in);
    free(in->texts);
    free(in->lens);
    free(in->line);
}
