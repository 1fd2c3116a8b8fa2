/* text/json_load.c — building an ek_tokenizer from tokenizer.json, or from
 * vocab.txt + tokenizer_config.json the way transformers' BertTokenizerFast
 * converts a slow BERT tokenizer.  Every error names the file and the JSON
 * field ("tokenizer.json: model.vocab: missing"); nothing here aborts. */
#include "text/tok_internal.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define MAX_IDS (1 << 26)

static int read_file(const char *path, char **out, size_t *len, ek_err *e) {
    FILE *f = fopen(path, "rb");
    if (!f) return ek_err_set(e, EK_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0, r;
    char *buf = malloc(cap + 1);
    while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0) {
        n += r;
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) { free(buf); buf = NULL; break; }
            buf = nb;
            cap *= 2;
        }
    }
    int err = ferror(f);
    fclose(f);
    if (!buf) return ek_err_set(e, EK_ERR_NOMEM, "%s: out of memory reading", path);
    if (err) {
        free(buf);
        return ek_err_set(e, EK_ERR_IO, "%s: read error", path);
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return EK_OK;
}

static int parse_json(const char *path, cJSON **out, ek_err *e) {
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, e);
    if (rc) return rc;
    const char *end = NULL;
    cJSON *j = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!j) {
        size_t at = end && end >= buf ? (size_t)(end - buf) : 0;
        free(buf);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: not valid JSON (near byte %zu)", path, at);
    }
    free(buf);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: top level is not a JSON object", path);
    }
    *out = j;
    return EK_OK;
}

/* ---- typed field readers: absent/null -> default ----------------------- */

static int get_bool(const cJSON *o, const char *k, int def, int *out, const char *file,
                    const char *where, ek_err *e) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (!v || cJSON_IsNull(v)) { *out = def; return EK_OK; }
    if (!cJSON_IsBool(v))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: %s%s: expected true or false", file, where, k);
    *out = cJSON_IsTrue(v);
    return EK_OK;
}

static int get_int(const cJSON *v, long long lo, long long hi, long long *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || floor(d) != d) return 0;
    *out = (long long)d;
    return 1;
}

static const char *get_str(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

/* A special-token name in tokenizer_config.json: "[CLS]" or
 * {"content": "[CLS]", ...} (a serialized AddedToken). */
static const char *token_name(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) return get_str(v, "content");
    return NULL;
}

/* ---- shared setup ---------------------------------------------------------- */

static int decode_str(const char *s, uint32_t **cps, size_t *n) {
    size_t len = strlen(s), bad;
    *cps = malloc((len + 1) * sizeof **cps);
    if (!*cps) return EK_ERR_NOMEM;
    long k = ek_utf8_decode(s, len, *cps, &bad);
    if (k < 0) {
        free(*cps);
        *cps = NULL;
        return EK_ERR_UTF8;
    }
    *n = (size_t)k;
    return EK_OK;
}

static int add_added(ek_tokenizer *t, const char *content, int32_t id, int lstrip,
                     int rstrip, int single_word, int normalized, int special) {
    ek_added_token *na = realloc(t->added, (t->n_added + 1) * sizeof *na);
    if (!na) return EK_ERR_NOMEM;
    t->added = na;
    char **ns = realloc(t->added_strs, (t->n_added + 1) * sizeof *ns);
    if (!ns) return EK_ERR_NOMEM;
    t->added_strs = ns;
    ek_added_token *a = &t->added[t->n_added];
    memset(a, 0, sizeof *a);
    t->added_strs[t->n_added] = strdup(content);
    if (!t->added_strs[t->n_added]) return EK_ERR_NOMEM;
    t->n_added++;
    int rc = decode_str(content, &a->cps, &a->n);
    if (rc) return rc;
    a->id = id;
    a->lstrip = lstrip;
    a->rstrip = rstrip;
    a->single_word = single_word;
    a->normalized = normalized;
    a->special = special;
    if (id >= t->vocab.n_ids && (rc = ek_vocab_reserve_ids(&t->vocab, id + 1))) return rc;
    if (t->vocab.off[id] == UINT32_MAX)
        return ek_vocab_name(&t->vocab, content, strlen(content), id);
    return EK_OK;
}

static int set_template(ek_template *tp, const int *kinds, const int32_t *types,
                        const int32_t *ids, size_t n) {
    tp->p = calloc(n, sizeof *tp->p);
    if (!tp->p) return EK_ERR_NOMEM;
    tp->n = n;
    tp->present = 1;
    for (size_t i = 0; i < n; i++) {
        tp->p[i].kind = kinds[i];
        tp->p[i].type_id = types[i];
        if (kinds[i] == EK_PIECE_SPECIAL) {
            tp->p[i].ids = malloc(sizeof(int32_t));
            if (!tp->p[i].ids) return EK_ERR_NOMEM;
            tp->p[i].ids[0] = ids[i];
            tp->p[i].n_ids = 1;
        }
    }
    return EK_OK;
}

/* [CLS] $A [SEP] / [CLS] $A [SEP] $B:1 [SEP]:1 — BERT's template. */
static int bert_templates(ek_tokenizer *t, int32_t cls, int32_t sep) {
    const int k1[] = {EK_PIECE_SPECIAL, EK_PIECE_A, EK_PIECE_SPECIAL};
    const int32_t t1[] = {0, 0, 0}, i1[] = {cls, 0, sep};
    const int k2[] = {EK_PIECE_SPECIAL, EK_PIECE_A, EK_PIECE_SPECIAL, EK_PIECE_B, EK_PIECE_SPECIAL};
    const int32_t t2[] = {0, 0, 0, 1, 1}, i2[] = {cls, 0, sep, 0, sep};
    if (set_template(&t->single, k1, t1, i1, 3) || set_template(&t->pair, k2, t2, i2, 5))
        return EK_ERR_NOMEM;
    return EK_OK;
}

int ek_tokenizer_finish(ek_tokenizer *t, const char *file, ek_err *e) {
    for (uint32_t cp = 0; cp < 65536; cp++)
        t->bmp_class[cp] = (cp >= 0xD800 && cp <= 0xDFFF) ? 0 : (uint8_t)ek_cp_class(cp);
    int rc = ek_added_sets_build(t, e);
    if (rc) ek_err_prefix(e, "%s", file);
    return rc;
}

void ek_tokenizer_free(ek_tokenizer *t) {
    if (!t) return;
    ek_vocab_free(&t->vocab);
    ek_added_sets_free(t);
    for (size_t i = 0; i < t->n_added; i++) {
        free(t->added[i].cps);
        free(t->added_strs[i]);
    }
    free(t->added);
    free(t->added_strs);
    ek_template *tps[] = {&t->single, &t->pair};
    for (int k = 0; k < 2; k++) {
        for (size_t i = 0; i < tps[k]->n; i++) free(tps[k]->p[i].ids);
        free(tps[k]->p);
    }
    free(t);
}

/* ---- tokenizer.json ---------------------------------------------------------- */

static int load_model(ek_tokenizer *t, const cJSON *root, const char *f, ek_err *e) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "model");
    if (!m || cJSON_IsNull(m)) return ek_err_set(e, EK_ERR_FORMAT, "%s: model: missing", f);
    if (!cJSON_IsObject(m)) return ek_err_set(e, EK_ERR_FORMAT, "%s: model: not an object", f);
    const char *type = get_str(m, "type");
    if (!type) return ek_err_set(e, EK_ERR_FORMAT, "%s: model.type: missing", f);
    if (strcmp(type, "WordPiece") != 0)
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: model.type: unsupported model \"%s\" (embedkit supports WordPiece)", f, type);
    const cJSON *voc = cJSON_GetObjectItemCaseSensitive(m, "vocab");
    if (!voc || cJSON_IsNull(voc)) return ek_err_set(e, EK_ERR_FORMAT, "%s: model.vocab: missing", f);
    if (!cJSON_IsObject(voc))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: model.vocab: not an object of token: id", f);
    long long max_id = -1, count = 0, id;
    for (const cJSON *it = voc->child; it; it = it->next, count++) {
        if (!get_int(it, 0, MAX_IDS - 1, &id))
            return ek_err_set(e, EK_ERR_FORMAT, "%s: model.vocab: \"%.64s\": id is not an integer in [0, %d)",
                              f, it->string, MAX_IDS);
        if (id > max_id) max_id = id;
    }
    if (!count) return ek_err_set(e, EK_ERR_FORMAT, "%s: model.vocab: empty", f);
    if (ek_vocab_reserve_ids(&t->vocab, (int32_t)max_id + 1))
        return ek_err_set(e, EK_ERR_NOMEM, "%s: model.vocab: out of memory", f);
    for (const cJSON *it = voc->child; it; it = it->next) {
        id = (long long)it->valuedouble;
        if (t->vocab.off[id] != UINT32_MAX)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: model.vocab: id %lld used by both \"%.64s\" and \"%.64s\"",
                              f, id, t->vocab.pool + t->vocab.off[id], it->string);
        int32_t dup;
        if (ek_vocab_put(&t->vocab, it->string, strlen(it->string), (int32_t)id, &dup))
            return ek_err_set(e, EK_ERR_NOMEM, "%s: model.vocab: out of memory", f);
        if (dup >= 0)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: model.vocab: token \"%.64s\" appears twice", f, it->string);
    }
    const cJSON *u = cJSON_GetObjectItemCaseSensitive(m, "unk_token");
    const char *unk = "[UNK]";
    if (u && !cJSON_IsNull(u)) {
        if (!cJSON_IsString(u)) return ek_err_set(e, EK_ERR_FORMAT, "%s: model.unk_token: not a string", f);
        unk = u->valuestring;
    }
    t->unk_id = ek_vocab_get(&t->vocab, unk, strlen(unk));
    if (t->unk_id < 0)
        return ek_err_set(e, EK_ERR_FORMAT, "%s: model.unk_token: \"%.64s\" is not in model.vocab", f, unk);
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(m, "continuing_subword_prefix");
    const char *prefix = "##";
    if (p && !cJSON_IsNull(p)) {
        if (!cJSON_IsString(p) || strlen(p->valuestring) >= sizeof t->prefix)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: model.continuing_subword_prefix: not a short string", f);
        prefix = p->valuestring;
    }
    t->prefix_len = strlen(prefix);
    memcpy(t->prefix, prefix, t->prefix_len + 1);
    const cJSON *mc = cJSON_GetObjectItemCaseSensitive(m, "max_input_chars_per_word");
    long long maxc = 100;
    if (mc && !cJSON_IsNull(mc) && !get_int(mc, 0, 1LL << 40, &maxc))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: model.max_input_chars_per_word: not a non-negative integer", f);
    t->max_input_chars = (size_t)maxc;
    return EK_OK;
}

static int load_normalizer(ek_tokenizer *t, const cJSON *root, const char *f, ek_err *e) {
    const cJSON *n = cJSON_GetObjectItemCaseSensitive(root, "normalizer");
    if (!n || cJSON_IsNull(n)) return EK_OK;
    if (!cJSON_IsObject(n)) return ek_err_set(e, EK_ERR_FORMAT, "%s: normalizer: not an object", f);
    const char *type = get_str(n, "type");
    if (!type) return ek_err_set(e, EK_ERR_FORMAT, "%s: normalizer.type: missing", f);
    if (strcmp(type, "BertNormalizer") != 0)
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: normalizer.type: unsupported normalizer \"%s\" (embedkit supports BertNormalizer)",
                          f, type);
    int rc, strip = -1;
    if ((rc = get_bool(n, "clean_text", 1, &t->clean_text, f, "normalizer.", e)) ||
        (rc = get_bool(n, "handle_chinese_chars", 1, &t->chinese, f, "normalizer.", e)) ||
        (rc = get_bool(n, "lowercase", 1, &t->lowercase, f, "normalizer.", e)) ||
        (rc = get_bool(n, "strip_accents", -1, &strip, f, "normalizer.", e)))
        return rc;
    /* strip_accents null means "follow lowercase" (HF). */
    t->strip_accents = strip < 0 ? t->lowercase : strip;
    t->has_normalizer = 1;
    return EK_OK;
}

static int load_pretok(ek_tokenizer *t, const cJSON *root, const char *f, ek_err *e) {
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer");
    if (!p || cJSON_IsNull(p)) return EK_OK;
    const char *type = cJSON_IsObject(p) ? get_str(p, "type") : NULL;
    if (!type) return ek_err_set(e, EK_ERR_FORMAT, "%s: pre_tokenizer.type: missing", f);
    if (strcmp(type, "BertPreTokenizer") != 0)
        return ek_err_set(e, EK_ERR_UNSUPPORTED,
                          "%s: pre_tokenizer.type: unsupported pre-tokenizer \"%s\" (embedkit supports BertPreTokenizer)",
                          f, type);
    t->has_pretok = 1;
    return EK_OK;
}

static int parse_template(ek_template *tp, const cJSON *arr, const cJSON *specials,
                          const char *f, const char *which, ek_err *e) {
    if (!arr || cJSON_IsNull(arr)) return EK_OK;
    if (!cJSON_IsArray(arr))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.%s: not an array", f, which);
    size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
    tp->p = calloc(n ? n : 1, sizeof *tp->p);
    if (!tp->p) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    tp->present = 1;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        ek_piece *pc = &tp->p[tp->n++];
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(it, "SpecialToken");
        const cJSON *sq = cJSON_GetObjectItemCaseSensitive(it, "Sequence");
        const cJSON *body = sp ? sp : sq;
        long long ty = 0;
        const cJSON *tyv = body ? cJSON_GetObjectItemCaseSensitive(body, "type_id") : NULL;
        const char *id = body ? get_str(body, "id") : NULL;
        if (!body || !id || (tyv && !get_int(tyv, 0, 1 << 20, &ty)))
            return ek_err_set(e, EK_ERR_FORMAT,
                              "%s: post_processor.%s[%zu]: expected {\"SpecialToken\"|\"Sequence\": {\"id\", \"type_id\"}}",
                              f, which, i);
        pc->type_id = (int32_t)ty;
        if (sq) {
            if (strcmp(id, "A") && strcmp(id, "B"))
                return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.%s[%zu].Sequence.id: \"%.32s\" is not A or B",
                                  f, which, i, id);
            pc->kind = id[0] == 'A' ? EK_PIECE_A : EK_PIECE_B;
            continue;
        }
        pc->kind = EK_PIECE_SPECIAL;
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(specials, id);
        const cJSON *ids = st ? cJSON_GetObjectItemCaseSensitive(st, "ids") : NULL;
        if (!cJSON_IsArray(ids))
            return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.special_tokens: \"%.64s\" missing or without ids",
                              f, id);
        size_t k = (size_t)cJSON_GetArraySize(ids);
        pc->ids = malloc((k ? k : 1) * sizeof *pc->ids);
        if (!pc->ids) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        for (const cJSON *x = ids->child; x; x = x->next) {
            long long v;
            if (!get_int(x, 0, MAX_IDS - 1, &v))
                return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.special_tokens.%.64s.ids: not token ids", f, id);
            pc->ids[pc->n_ids++] = (int32_t)v;
        }
    }
    return EK_OK;
}

static int bert_pair(const cJSON *pp, const char *k, int32_t *id, const char *f, ek_err *e) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(pp, k);
    long long v;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != 2 || !cJSON_IsString(a->child) ||
        !get_int(a->child->next, 0, MAX_IDS - 1, &v))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.%s: expected [\"token\", id]", f, k);
    *id = (int32_t)v;
    return EK_OK;
}

static int load_post(ek_tokenizer *t, const cJSON *root, const char *f, ek_err *e) {
    const cJSON *pp = cJSON_GetObjectItemCaseSensitive(root, "post_processor");
    if (!pp || cJSON_IsNull(pp)) return EK_OK;
    const char *type = cJSON_IsObject(pp) ? get_str(pp, "type") : NULL;
    if (!type) return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.type: missing", f);
    if (strcmp(type, "TemplateProcessing") == 0) {
        const cJSON *sp = cJSON_GetObjectItemCaseSensitive(pp, "special_tokens");
        int rc;
        if ((rc = parse_template(&t->single, cJSON_GetObjectItemCaseSensitive(pp, "single"), sp, f, "single", e)) ||
            (rc = parse_template(&t->pair, cJSON_GetObjectItemCaseSensitive(pp, "pair"), sp, f, "pair", e)))
            return rc;
        if (!t->single.present)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: post_processor.single: missing", f);
        t->post_kind = 1;
        return EK_OK;
    }
    if (strcmp(type, "BertProcessing") == 0) {
        int32_t sep, cls;
        int rc;
        if ((rc = bert_pair(pp, "sep", &sep, f, e)) || (rc = bert_pair(pp, "cls", &cls, f, e))) return rc;
        if (bert_templates(t, cls, sep)) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        t->post_kind = 2;
        return EK_OK;
    }
    return ek_err_set(e, EK_ERR_UNSUPPORTED,
                      "%s: post_processor.type: unsupported post-processor \"%s\" (embedkit supports TemplateProcessing, BertProcessing)",
                      f, type);
}

static int load_added(ek_tokenizer *t, const cJSON *root, const char *f, ek_err *e) {
    const cJSON *arr = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    if (!arr || cJSON_IsNull(arr)) return EK_OK;
    if (!cJSON_IsArray(arr)) return ek_err_set(e, EK_ERR_FORMAT, "%s: added_tokens: not an array", f);
    size_t i = 0;
    for (const cJSON *it = arr->child; it; it = it->next, i++) {
        long long id;
        const char *content = get_str(it, "content");
        if (!get_int(cJSON_GetObjectItemCaseSensitive(it, "id"), 0, MAX_IDS - 1, &id))
            return ek_err_set(e, EK_ERR_FORMAT, "%s: added_tokens[%zu].id: not a token id", f, i);
        if (!content || !*content)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: added_tokens[%zu].content: missing or empty", f, i);
        int ls = 0, rs = 0, sw = 0, norm = 0, special = 0, rc;
        char where[64];
        snprintf(where, sizeof where, "added_tokens[%zu].", i);
        if ((rc = get_bool(it, "special", 0, &special, f, where, e)) ||
            (rc = get_bool(it, "lstrip", 0, &ls, f, where, e)) ||
            (rc = get_bool(it, "rstrip", 0, &rs, f, where, e)) ||
            (rc = get_bool(it, "single_word", 0, &sw, f, where, e)) ||
            (rc = get_bool(it, "normalized", !special, &norm, f, where, e)))
            return rc;
        rc = add_added(t, content, (int32_t)id, ls, rs, sw, norm, special);
        if (rc == EK_ERR_UTF8)
            return ek_err_set(e, EK_ERR_FORMAT, "%s: added_tokens[%zu].content: invalid UTF-8", f, i);
        if (rc) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    }
    return EK_OK;
}

static int load_truncation(ek_tokenizer *t, const cJSON *root, const char *f, ek_err *e) {
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(root, "truncation");
    if (!tr || cJSON_IsNull(tr)) return EK_OK;
    long long v;
    if (!cJSON_IsObject(tr) || !get_int(cJSON_GetObjectItemCaseSensitive(tr, "max_length"), 0, 1LL << 40, &v))
        return ek_err_set(e, EK_ERR_FORMAT, "%s: truncation.max_length: not a non-negative integer", f);
    t->json_max_length = (size_t)v;
    return EK_OK;
}

int ek_tokenizer_load_json(const char *path, ek_tokenizer **out, ek_err *e) {
    *out = NULL;
    cJSON *root = NULL;
    int rc = parse_json(path, &root, e);
    if (rc) return rc;
    ek_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(root);
        return ek_err_set(e, EK_ERR_NOMEM, "%s: out of memory", path);
    }
    if (!(rc = load_model(t, root, path, e)) && !(rc = load_normalizer(t, root, path, e)) &&
        !(rc = load_pretok(t, root, path, e)) && !(rc = load_post(t, root, path, e)) &&
        !(rc = load_added(t, root, path, e)) && !(rc = load_truncation(t, root, path, e)))
        rc = ek_tokenizer_finish(t, path, e);
    cJSON_Delete(root);
    if (rc) {
        ek_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return EK_OK;
}

/* ---- vocab.txt + tokenizer_config.json ------------------------------------- */

/* transformers' load_vocab: one token per line (Python text mode, so \r\n and
 * \r end lines too), id = line number; a repeated token keeps the later id. */
static int load_vocab_txt(ek_tokenizer *t, const char *path, ek_err *e) {
    char *buf;
    size_t len;
    int rc = read_file(path, &buf, &len, e);
    if (rc) return rc;
    size_t lines = 0;
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\n' || (buf[i] == '\r' && (i + 1 == len || buf[i + 1] != '\n'))) lines++;
    if (len && buf[len - 1] != '\n' && buf[len - 1] != '\r') lines++;
    if (!lines || lines >= MAX_IDS) {
        free(buf);
        return ek_err_set(e, EK_ERR_FORMAT, "%s: %s", path, lines ? "too many lines" : "empty vocabulary");
    }
    if (ek_vocab_reserve_ids(&t->vocab, (int32_t)lines)) {
        free(buf);
        return ek_err_set(e, EK_ERR_NOMEM, "%s: out of memory", path);
    }
    size_t s = 0;
    int32_t id = 0;
    while (s < len) {
        size_t j = s;
        while (j < len && buf[j] != '\n' && buf[j] != '\r') j++;
        int32_t dup;
        if ((rc = ek_vocab_put(&t->vocab, buf + s, j - s, id, &dup))) break;
        id++;
        if (j < len && buf[j] == '\r' && j + 1 < len && buf[j + 1] == '\n') j++;
        s = j + 1;
    }
    free(buf);
    if (rc) return ek_err_set(e, EK_ERR_NOMEM, "%s: out of memory", path);
    return EK_OK;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* model_max_length; transformers writes int(1e30) for "no limit". */
static void config_max_length(ek_tokenizer *t, const cJSON *cfg) {
    long long v;
    if (cfg && get_int(cJSON_GetObjectItemCaseSensitive(cfg, "model_max_length"), 1, 1LL << 40, &v))
        t->config_max_length = (size_t)v;
}

static int load_vocab_dir(const char *dir, ek_tokenizer **out, ek_err *e) {
    char vpath[4096], cpath[4096];
    snprintf(vpath, sizeof vpath, "%s/vocab.txt", dir);
    snprintf(cpath, sizeof cpath, "%s/tokenizer_config.json", dir);
    if (!file_exists(vpath))
        return ek_err_set(e, EK_ERR_IO, "%s: neither tokenizer.json nor vocab.txt found", dir);
    cJSON *cfg = NULL;
    int rc;
    if (file_exists(cpath) && (rc = parse_json(cpath, &cfg, e))) return rc;
    ek_tokenizer *t = calloc(1, sizeof *t);
    if (!t) {
        cJSON_Delete(cfg);
        return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    }
    int strip = -1;
    t->has_normalizer = t->has_pretok = 1;
    t->clean_text = 1;
    t->chinese = t->lowercase = 1;
    memcpy(t->prefix, "##", 3);
    t->prefix_len = 2;
    t->max_input_chars = 100;
    const char *names[5] = {"[UNK]", "[SEP]", "[PAD]", "[CLS]", "[MASK]"};
    const char *keys[5] = {"unk_token", "sep_token", "pad_token", "cls_token", "mask_token"};
    if (!(rc = load_vocab_txt(t, vpath, e)) && cfg &&
        !(rc = get_bool(cfg, "do_lower_case", 1, &t->lowercase, cpath, "", e)) &&
        !(rc = get_bool(cfg, "strip_accents", -1, &strip, cpath, "", e)) &&
        !(rc = get_bool(cfg, "tokenize_chinese_chars", 1, &t->chinese, cpath, "", e))) {
        for (int k = 0; k < 5; k++) {
            const char *v = token_name(cfg, keys[k]);
            if (v) names[k] = v;
        }
        config_max_length(t, cfg);
    }
    t->strip_accents = strip < 0 ? t->lowercase : strip;
    int32_t ids[5];
    for (int k = 0; !rc && k < 5; k++) {
        ids[k] = ek_vocab_get(&t->vocab, names[k], strlen(names[k]));
        /* [UNK], [SEP], [CLS] are required; a missing [PAD] / [MASK] only
         * cannot be split out of the text. */
        if (ids[k] < 0 && (k == 0 || k == 1 || k == 3))
            rc = ek_err_set(e, EK_ERR_FORMAT, "%s: %s \"%.64s\" (%s in tokenizer_config.json) is not in the vocabulary",
                            vpath, keys[k], names[k], keys[k]);
    }
    /* BertTokenizerFast registers its special tokens as added tokens
     * (special, not normalized), so they are split out of the raw text. */
    for (int k = 0; !rc && k < 5; k++)
        if (ids[k] >= 0 && add_added(t, names[k], ids[k], 0, 0, 0, 0, 1))
            rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    if (!rc) {
        t->unk_id = ids[0];
        t->post_kind = 1;
        if (bert_templates(t, ids[3], ids[1])) rc = ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    }
    if (!rc) rc = ek_tokenizer_finish(t, vpath, e);
    cJSON_Delete(cfg);
    if (rc) {
        ek_tokenizer_free(t);
        return rc;
    }
    *out = t;
    return EK_OK;
}

int ek_tokenizer_load_dir(const char *dir, ek_tokenizer **out, ek_err *e) {
    *out = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    if (!file_exists(path)) return load_vocab_dir(dir, out, e);
    int rc = ek_tokenizer_load_json(path, out, e);
    if (rc) return rc;
    /* model_max_length still comes from tokenizer_config.json when present. */
    snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
    if (file_exists(path)) {
        cJSON *cfg = NULL;
        if ((rc = parse_json(path, &cfg, e))) {
            ek_tokenizer_free(*out);
            *out = NULL;
            return rc;
        }
        config_max_length(*out, cfg);
        cJSON_Delete(cfg);
    }
    return EK_OK;
}
