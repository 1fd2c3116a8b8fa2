/* tests/test_tokenizer.c — parity of src/text with Hugging Face `tokenizers`.
 *
 * The golden files (tests/golden/tokenizer/, made by
 * tools/ref/make_tokenizer_golden.py with the reference package) hold a corpus
 * and, per tokenizer variant, the tokenizer.json minus its vocabulary (spliced
 * back from models/vocab/tokenizer.json here) and HF's ids, type ids and
 * offsets for every case.  Also: an exhaustive per-code-point check of
 * normalization / pre-tokenizer classes, load errors, UTF-8 errors,
 * truncation, the vocab.txt fallback, NUL bytes and a 1 MB line. */
#include "support.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "text/tok_internal.h"
#include "text/tokenizer.h"

static const char *VARIANTS[] = {"uncased", "cased", "lower_nostrip", "strip_only",
                                 "no_chinese", "no_clean", "bert_processing", "max_chars_8",
                                 "added_tokens"};

static cJSON *read_json(const char *path) {
    size_t len;
    char *s = ts_read_file(path, &len);
    if (!s) fail_msg("cannot read %s", path);
    cJSON *j = cJSON_ParseWithLength(s, len);
    free(s);
    if (!j) fail_msg("%s is not JSON", path);
    return j;
}

static const char *golden(const char *name) {
    static char buf[4][4096];
    static int k;
    char *p = buf[k++ & 3];
    snprintf(p, 4096, "%s/tests/golden/tokenizer/%s", ts_source_dir(), name);
    return p;
}

static const char *base_json(void) {
    return ts_path(ts_source_dir(), "models/vocab/tokenizer.json");
}

/* ---- corpus ------------------------------------------------------------- */

typedef struct tcase {
    char *text, *pair;
    size_t len, pair_len;
    int has_pair;
    ek_tok_opts opts;
} tcase;

static char *unhex(const char *h, size_t *len) {
    size_t n = strlen(h) / 2;
    char *s = malloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(h + 2 * i, "%2x", &v);
        s[i] = (char)v;
    }
    s[n] = 0;
    *len = n;
    return s;
}

static tcase *load_corpus(size_t *n) {
    cJSON *j = read_json(golden("corpus.json"));
    cJSON *cases = cJSON_GetObjectItem(j, "cases");
    *n = (size_t)cJSON_GetArraySize(cases);
    tcase *c = calloc(*n, sizeof *c);
    size_t i = 0;
    for (cJSON *it = cases->child; it; it = it->next, i++) {
        cJSON *hx = cJSON_GetObjectItem(it, "text_hex");
        if (hx) {
            c[i].text = unhex(hx->valuestring, &c[i].len);
        } else {
            c[i].text = strdup(cJSON_GetObjectItem(it, "text")->valuestring);
            c[i].len = strlen(c[i].text);
        }
        cJSON *p = cJSON_GetObjectItem(it, "pair");
        if (cJSON_IsString(p)) {
            c[i].has_pair = 1;
            c[i].pair = strdup(p->valuestring);
            c[i].pair_len = strlen(c[i].pair);
        }
        c[i].opts.max_length = (size_t)cJSON_GetObjectItem(it, "max_length")->valuedouble;
        c[i].opts.truncate = strcmp(cJSON_GetObjectItem(it, "truncate")->valuestring, "left") == 0
                                 ? EK_TRUNCATE_LEFT : EK_TRUNCATE_RIGHT;
        c[i].opts.add_special_tokens = cJSON_IsTrue(cJSON_GetObjectItem(it, "add_special_tokens"));
        c[i].opts.lowercase_input = cJSON_IsTrue(cJSON_GetObjectItem(it, "lowercase_input"));
    }
    cJSON_Delete(j);
    return c;
}

static void free_corpus(tcase *c, size_t n) {
    for (size_t i = 0; i < n; i++) {
        free(c[i].text);
        free(c[i].pair);
    }
    free(c);
}

/* Writes base tokenizer.json with the variant's patch applied into a fresh
 * directory; returns the file path. */
static const char *make_variant(const cJSON *patch, const char *dir) {
    cJSON *base = read_json(base_json());
    for (const cJSON *it = patch->child; it; it = it->next) {
        if (strcmp(it->string, "model") == 0) {
            cJSON *m = cJSON_GetObjectItem(base, "model");
            for (const cJSON *f = it->child; f; f = f->next)
                cJSON_ReplaceItemInObject(m, f->string, cJSON_Duplicate(f, 1));
        } else {
            cJSON_DeleteItemFromObject(base, it->string);
            cJSON_AddItemToObject(base, it->string, cJSON_Duplicate(it, 1));
        }
    }
    char *s = cJSON_PrintUnformatted(base);
    const char *path = ts_path(dir, "tokenizer.json");
    assert_int_equal(ts_write_file(path, s, strlen(s)), 0);
    free(s);
    cJSON_Delete(base);
    return path;
}

static void print_case(const char *variant, size_t i, const tcase *c) {
    fprintf(stderr, "variant %s, case %zu: text \"", variant, i);
    for (size_t k = 0; k < c->len; k++) {
        unsigned char ch = (unsigned char)c->text[k];
        if (ch < 0x20) fprintf(stderr, "\\x%02x", ch);
        else fputc(ch, stderr);
    }
    fprintf(stderr, "\"%s%s%s\n", c->has_pair ? " pair \"" : "", c->has_pair ? c->pair : "",
            c->has_pair ? "\"" : "");
}

/* Compares one encoding with HF's; prints the first mismatch. */
static int same(const char *variant, size_t i, const tcase *c, const ek_encoding *enc,
                const cJSON *exp) {
    const cJSON *ids = cJSON_GetObjectItem(exp, "ids");
    const cJSON *ty = cJSON_GetObjectItem(exp, "type_ids");
    const cJSON *of = cJSON_GetObjectItem(exp, "offsets");
    size_t n = (size_t)cJSON_GetArraySize(ids);
    size_t k = 0;
    const cJSON *a = ids->child, *b = ty->child, *o = of->child;
    for (; k < n && k < enc->n; k++, a = a->next, b = b->next, o = o->next->next) {
        if (enc->ids[k] != a->valueint || enc->type_ids[k] != b->valueint ||
            enc->offsets[2 * k] != o->valueint || enc->offsets[2 * k + 1] != o->next->valueint) {
            print_case(variant, i, c);
            fprintf(stderr, "  token %zu: got id %d type %d (%d,%d), HF id %d type %d (%d,%d)\n", k,
                    enc->ids[k], enc->type_ids[k], enc->offsets[2 * k], enc->offsets[2 * k + 1],
                    a->valueint, b->valueint, o->valueint, o->next->valueint);
            return 0;
        }
    }
    if (n != enc->n) {
        print_case(variant, i, c);
        fprintf(stderr, "  got %zu tokens, HF %zu\n", enc->n, n);
        return 0;
    }
    return 1;
}

static void test_golden_variants(void **state) {
    (void)state;
    size_t nc;
    tcase *cases = load_corpus(&nc);
    size_t total = 0, bad = 0;
    for (size_t v = 0; v < sizeof VARIANTS / sizeof VARIANTS[0]; v++) {
        char name[128];
        snprintf(name, sizeof name, "%s.json", VARIANTS[v]);
        cJSON *g = read_json(golden(name));
        char *dir = strdup(ts_mkdtemp());
        const char *path = make_variant(cJSON_GetObjectItem(g, "patch"), dir);
        ek_tokenizer *t = NULL;
        ek_err e = {0};
        int rc = ek_tokenizer_load_json(path, &t, &e);
        if (rc) fail_msg("variant %s: %s", VARIANTS[v], e.msg);
        cJSON *exp = cJSON_GetObjectItem(g, "expected");
        assert_int_equal((size_t)cJSON_GetArraySize(exp), nc);
        ek_encoding enc = {0};
        size_t i = 0, vbad = 0;
        for (cJSON *x = exp->child; x; x = x->next, i++) {
            rc = ek_tokenizer_encode(t, cases[i].text, cases[i].len,
                                     cases[i].has_pair ? cases[i].pair : NULL, cases[i].pair_len,
                                     &cases[i].opts, &enc, &e);
            if (rc) {
                print_case(VARIANTS[v], i, &cases[i]);
                fprintf(stderr, "  error: %s\n", e.msg);
                vbad++;
                continue;
            }
            if (!same(VARIANTS[v], i, &cases[i], &enc, x)) vbad++;
        }
        total += i;
        bad += vbad;
        printf("variant %-16s %zu cases, %zu mismatches\n", VARIANTS[v], i, vbad);
        ek_encoding_free(&enc);
        ek_tokenizer_free(t);
        ts_rm_rf(dir);
        free(dir);
        cJSON_Delete(g);
    }
    printf("golden parity: %zu encodings, %zu mismatches\n", total, bad);
    free_corpus(cases, nc);
    assert_int_equal(bad, 0);
}

/* ---- every code point ---------------------------------------------------- */

static uint64_t fnv(uint64_t h, uint32_t v) {
    for (int k = 0; k < 4; k++) {
        h ^= (v >> (8 * k)) & 0xFF;
        h *= 0x100000001B3ULL;
    }
    return h;
}

static void test_unicode_blocks(void **state) {
    (void)state;
    cJSON *g = read_json(golden("unicode_blocks.json"));
    ek_tokenizer *t = NULL;
    ek_err e = {0};
    assert_int_equal(ek_tokenizer_load_json(base_json(), &t, &e), EK_OK);
    /* Four single-feature normalizers, as the generator's. */
    static const char *names[4] = {"clean", "chinese", "strip", "lower"};
    ek_tokenizer *cfg[4];
    for (int k = 0; k < 4; k++) {
        cfg[k] = malloc(sizeof *t);
        memcpy(cfg[k], t, sizeof *t); /* shallow: shares t's tables */
        cfg[k]->clean_text = k == 0;
        cfg[k]->chinese = k == 1;
        cfg[k]->strip_accents = k == 2;
        cfg[k]->lowercase = k == 3;
    }
    ek_tok_scratch s;
    memset(&s, 0, sizeof s);
    int bad = 0;
    for (uint32_t block = 0; block < 0x110000 / 4096; block++) {
        uint64_t h[5];
        for (int k = 0; k < 5; k++) h[k] = 0xCBF29CE484222325ULL;
        for (uint32_t cp = block * 4096; cp < block * 4096 + 4096; cp++) {
            if (cp >= 0xD800 && cp <= 0xDFFF) continue;
            for (int k = 0; k < 4; k++) {
                assert_int_equal(ek_normalize_range(cfg[k], &cp, 0, 1, &s), EK_OK);
                for (size_t i = 0; i < s.ncp.n; i++) h[k] = fnv(h[k], s.ncp.p[i]);
                h[k] = fnv(h[k], 0xFFFFFFFFu);
            }
            unsigned c = ek_tok_class(t, cp);
            h[4] = fnv(h[4], (c & EK_CC_SPLIT_SPACE) ? 1 : (c & EK_CC_PUNCT) ? 2 : 0);
        }
        for (int k = 0; k < 5; k++) {
            const char *key = k < 4 ? names[k] : "pretok";
            cJSON *arr = cJSON_GetObjectItem(g, key);
            char hex[17];
            snprintf(hex, sizeof hex, "%016llx", (unsigned long long)h[k]);
            const char *want = cJSON_GetArrayItem(arr, (int)block)->valuestring;
            if (strcmp(hex, want) != 0) {
                fprintf(stderr, "%s differs from HF in code points U+%04X..U+%04X\n", key,
                        block * 4096, block * 4096 + 4095);
                bad++;
            }
        }
    }
    ek_tok_scratch_free(&s);
    for (int k = 0; k < 4; k++) free(cfg[k]);
    ek_tokenizer_free(t);
    cJSON_Delete(g);
    assert_int_equal(bad, 0);
}

/* ---- helpers for the remaining tests ------------------------------------ */

static ek_tokenizer *load_base(void) {
    ek_tokenizer *t = NULL;
    ek_err e = {0};
    if (ek_tokenizer_load_json(base_json(), &t, &e)) fail_msg("%s", e.msg);
    return t;
}

static ek_tok_opts opts(size_t max_length, ek_truncate tr) {
    ek_tok_opts o = {max_length, tr, 1, 0};
    return o;
}

static void test_utf8_errors(void **state) {
    (void)state;
    ek_tokenizer *t = load_base();
    ek_encoding enc = {0};
    ek_err e = {0};
    ek_tok_opts o = opts(0, EK_TRUNCATE_RIGHT);
    struct { const char *s; size_t len; size_t at; } bad[] = {
        {"abc\xff", 4, 3},                 /* invalid lead byte */
        {"hello w\xc3", 8, 7},             /* truncated at the end */
        {"ab\xe2\x82z", 5, 2},             /* bad continuation */
        {"\xc0\x80", 2, 0},                /* overlong NUL */
        {"xx\xe0\x80\x80", 5, 2},          /* overlong 3-byte */
        {"okay \xed\xa0\x80", 8, 5},       /* surrogate */
        {"1234567890123456\xf4\x90\x80\x80", 20, 16}, /* > U+10FFFF */
        {"\x80", 1, 0},                    /* lone continuation */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ek_tokenizer_encode(t, bad[i].s, bad[i].len, NULL, 0, &o, &enc, &e);
        assert_int_equal(rc, EK_ERR_UTF8);
        char want[64];
        snprintf(want, sizeof want, "invalid UTF-8 at byte %zu", bad[i].at);
        if (!strstr(e.msg, want)) fail_msg("case %zu: \"%s\" lacks \"%s\"", i, e.msg, want);
    }
    int rc = ek_tokenizer_encode(t, "fine", 4, "bad\xff", 4, &o, &enc, &e);
    assert_int_equal(rc, EK_ERR_UTF8);
    assert_non_null(strstr(e.msg, "second segment"));
    assert_non_null(strstr(e.msg, "byte 3"));
    /* A valid 4-byte sequence and the largest code point are fine. */
    assert_int_equal(ek_tokenizer_encode(t, "\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf", 8, NULL, 0, &o, &enc, &e), EK_OK);
    ek_encoding_free(&enc);
    ek_tokenizer_free(t);
}

/* Loads a tokenizer.json made from the base one by edit(); returns the
 * status and leaves the message in e. */
static int load_edited(void (*edit)(cJSON *), const char *raw, ek_err *e) {
    char *dir = strdup(ts_mkdtemp());
    const char *path = ts_path(dir, "tokenizer.json");
    if (raw) {
        ts_write_file(path, raw, strlen(raw));
    } else {
        cJSON *j = read_json(base_json());
        edit(j);
        char *s = cJSON_PrintUnformatted(j);
        ts_write_file(path, s, strlen(s));
        free(s);
        cJSON_Delete(j);
    }
    ek_tokenizer *t = NULL;
    int rc = ek_tokenizer_load_json(path, &t, e);
    if (rc == EK_OK) assert_non_null(t);
    else assert_null(t);
    ek_tokenizer_free(t);
    ts_rm_rf(dir);
    free(dir);
    return rc;
}

static void no_vocab(cJSON *j) { cJSON_DeleteItemFromObject(cJSON_GetObjectItem(j, "model"), "vocab"); }
static void no_model(cJSON *j) { cJSON_DeleteItemFromObject(j, "model"); }
static void bpe(cJSON *j) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "model"), "type", cJSON_CreateString("BPE"));
}
static void nfkc(cJSON *j) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "normalizer"), "type", cJSON_CreateString("NFKC"));
}
static void metaspace(cJSON *j) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "pre_tokenizer"), "type", cJSON_CreateString("Metaspace"));
}
static void roberta(cJSON *j) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "post_processor"), "type",
                              cJSON_CreateString("RobertaProcessing"));
}
static void unk_missing(cJSON *j) {
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab"), "[UNK]");
}
static void dup_id(cJSON *j) {
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab");
    cJSON_ReplaceItemInObject(v, "hello", cJSON_CreateNumber(7));
}
static void bad_id(cJSON *j) {
    cJSON *v = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "model"), "vocab");
    cJSON_ReplaceItemInObject(v, "hello", cJSON_CreateString("x"));
}
static void bad_bool(cJSON *j) {
    cJSON_ReplaceItemInObject(cJSON_GetObjectItem(j, "normalizer"), "lowercase", cJSON_CreateNumber(1));
}
static void bad_template(cJSON *j) {
    cJSON *pp = cJSON_GetObjectItem(j, "post_processor");
    cJSON_DeleteItemFromObject(cJSON_GetObjectItem(pp, "special_tokens"), "[SEP]");
}
static void bad_added(cJSON *j) {
    cJSON *a = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "added_tokens"), 2);
    cJSON_DeleteItemFromObject(a, "content");
}
static void trunc_128(cJSON *j) {
    cJSON *tr = cJSON_CreateObject();
    cJSON_AddNumberToObject(tr, "max_length", 128);
    cJSON_ReplaceItemInObject(j, "truncation", tr);
}

static void expect_err(int rc, int want, const ek_err *e, const char *frag) {
    if (rc != want || !strstr(e->msg, frag))
        fail_msg("got status %d \"%s\", wanted %d containing \"%s\"", rc, e->msg, want, frag);
}

static void test_load_errors(void **state) {
    (void)state;
    ek_err e = {0};
    expect_err(load_edited(NULL, "{ not json", &e), EK_ERR_FORMAT, &e, "tokenizer.json: not valid JSON");
    expect_err(load_edited(NULL, "[1, 2]", &e), EK_ERR_FORMAT, &e, "not a JSON object");
    expect_err(load_edited(NULL, "", &e), EK_ERR_FORMAT, &e, "not valid JSON");
    expect_err(load_edited(no_model, NULL, &e), EK_ERR_FORMAT, &e, "tokenizer.json: model: missing");
    expect_err(load_edited(no_vocab, NULL, &e), EK_ERR_FORMAT, &e, "tokenizer.json: model.vocab: missing");
    expect_err(load_edited(bpe, NULL, &e), EK_ERR_UNSUPPORTED, &e, "model.type: unsupported model \"BPE\"");
    expect_err(load_edited(nfkc, NULL, &e), EK_ERR_UNSUPPORTED, &e, "normalizer.type: unsupported normalizer \"NFKC\"");
    expect_err(load_edited(metaspace, NULL, &e), EK_ERR_UNSUPPORTED, &e, "pre_tokenizer.type");
    expect_err(load_edited(roberta, NULL, &e), EK_ERR_UNSUPPORTED, &e, "post_processor.type");
    expect_err(load_edited(unk_missing, NULL, &e), EK_ERR_FORMAT, &e, "model.unk_token: \"[UNK]\" is not in model.vocab");
    expect_err(load_edited(dup_id, NULL, &e), EK_ERR_FORMAT, &e, "model.vocab: id 7 used by both");
    expect_err(load_edited(bad_id, NULL, &e), EK_ERR_FORMAT, &e, "model.vocab: \"hello\": id is not an integer");
    expect_err(load_edited(bad_bool, NULL, &e), EK_ERR_FORMAT, &e, "normalizer.lowercase: expected true or false");
    expect_err(load_edited(bad_template, NULL, &e), EK_ERR_FORMAT, &e, "post_processor.special_tokens: \"[SEP]\"");
    expect_err(load_edited(bad_added, NULL, &e), EK_ERR_FORMAT, &e, "added_tokens[2].content: missing");
    ek_tokenizer *t = NULL;
    expect_err(ek_tokenizer_load_json("/nonexistent/tokenizer.json", &t, &e), EK_ERR_IO, &e,
               "/nonexistent/tokenizer.json: cannot open");
    expect_err(ek_tokenizer_load_dir("/nonexistent", &t, &e), EK_ERR_IO, &e,
               "neither tokenizer.json nor vocab.txt");
    assert_null(t);

    /* The truncation field is read. */
    char *dir = strdup(ts_mkdtemp());
    cJSON *j = read_json(base_json());
    trunc_128(j);
    char *s = cJSON_PrintUnformatted(j);
    ts_write_file(ts_path(dir, "tokenizer.json"), s, strlen(s));
    free(s);
    cJSON_Delete(j);
    assert_int_equal(ek_tokenizer_load_dir(dir, &t, &e), EK_OK);
    assert_int_equal(ek_tokenizer_json_max_length(t), 128);
    assert_int_equal(ek_tokenizer_config_max_length(t), 0);
    ek_tokenizer_free(t);
    ts_rm_rf(dir);
    free(dir);

    /* vocab.txt problems. */
    dir = strdup(ts_mkdtemp());
    ts_write_file(ts_path(dir, "vocab.txt"), "a\nb\n", 4);
    expect_err(ek_tokenizer_load_dir(dir, &t, &e), EK_ERR_FORMAT, &e, "unk_token \"[UNK]\"");
    ts_write_file(ts_path(dir, "vocab.txt"), "", 0);
    expect_err(ek_tokenizer_load_dir(dir, &t, &e), EK_ERR_FORMAT, &e, "vocab.txt: empty");
    ts_write_file(ts_path(dir, "vocab.txt"), "[UNK]\n[CLS]\n[SEP]\n", 18);
    ts_write_file(ts_path(dir, "tokenizer_config.json"), "{\"do_lower_case\": 3}", 20);
    expect_err(ek_tokenizer_load_dir(dir, &t, &e), EK_ERR_FORMAT, &e,
               "tokenizer_config.json: do_lower_case: expected true or false");
    ts_rm_rf(dir);
    free(dir);
}

/* vocab.txt + tokenizer_config.json gives what tokenizer.json gives. */
static void test_vocab_txt_fallback(void **state) {
    (void)state;
    char *dir = strdup(ts_mkdtemp());
    const char *src = ts_path(ts_source_dir(), "models/vocab");
    size_t len;
    char *s = ts_read_file(ts_path(src, "vocab.txt"), &len);
    ts_write_file(ts_path(dir, "vocab.txt"), s, len);
    free(s);
    s = ts_read_file(ts_path(src, "tokenizer_config.json"), &len);
    ts_write_file(ts_path(dir, "tokenizer_config.json"), s, len);
    free(s);
    ek_tokenizer *a = load_base(), *b = NULL;
    ek_err e = {0};
    assert_int_equal(ek_tokenizer_load_dir(dir, &b, &e), EK_OK);
    assert_int_equal(ek_tokenizer_config_max_length(b), 512);
    assert_int_equal(ek_tokenizer_vocab_size(a), ek_tokenizer_vocab_size(b));
    size_t nc;
    tcase *cases = load_corpus(&nc);
    ek_encoding ea = {0}, eb = {0};
    for (size_t i = 0; i < nc; i++) {
        const tcase *c = &cases[i];
        assert_int_equal(ek_tokenizer_encode(a, c->text, c->len, c->has_pair ? c->pair : NULL,
                                             c->pair_len, &c->opts, &ea, &e), EK_OK);
        assert_int_equal(ek_tokenizer_encode(b, c->text, c->len, c->has_pair ? c->pair : NULL,
                                             c->pair_len, &c->opts, &eb, &e), EK_OK);
        assert_int_equal(ea.n, eb.n);
        assert_memory_equal(ea.ids, eb.ids, ea.n * sizeof *ea.ids);
        assert_memory_equal(ea.type_ids, eb.type_ids, ea.n * sizeof *ea.ids);
        assert_memory_equal(ea.offsets, eb.offsets, 2 * ea.n * sizeof *ea.ids);
    }
    free_corpus(cases, nc);
    ek_encoding_free(&ea);
    ek_encoding_free(&eb);
    ek_tokenizer_free(a);
    ek_tokenizer_free(b);
    ts_rm_rf(dir);
    free(dir);
}

static void test_truncation_none(void **state) {
    (void)state;
    ek_tokenizer *t = load_base();
    ek_encoding enc = {0};
    ek_err e = {0};
    const char *txt = "one two three four five six seven eight";
    ek_tok_opts o = opts(6, EK_TRUNCATE_NONE);
    int rc = ek_tokenizer_encode(t, txt, strlen(txt), NULL, 0, &o, &enc, &e);
    expect_err(rc, EK_ERR_TOO_LONG, &e, "input is 10 tokens (special tokens included), more than max_length 6");
    assert_int_equal(enc.n, 0);
    o.max_length = 10;
    assert_int_equal(ek_tokenizer_encode(t, txt, strlen(txt), NULL, 0, &o, &enc, &e), EK_OK);
    assert_int_equal(enc.n, 10);
    o.max_length = 0; /* no limit */
    assert_int_equal(ek_tokenizer_encode(t, txt, strlen(txt), NULL, 0, &o, &enc, &e), EK_OK);
    assert_int_equal(ek_tokenizer_num_special(t, 0), 2);
    assert_int_equal(ek_tokenizer_num_special(t, 1), 3);
    assert_int_equal(ek_tokenizer_token_id(t, "[CLS]"), 2);
    assert_string_equal(ek_tokenizer_id_token(t, 3), "[SEP]");
    assert_null(ek_tokenizer_id_token(t, -1));
    assert_null(ek_tokenizer_id_token(t, 1 << 30));
    assert_int_equal(ek_tokenizer_token_id(t, "no-such-token-xyz"), -1);
    ek_encoding_free(&enc);
    ek_tokenizer_free(t);
}

static void test_nul_bytes(void **state) {
    (void)state;
    ek_tokenizer *t = load_base();
    ek_encoding a = {0}, b = {0};
    ek_err e = {0};
    ek_tok_opts o = opts(0, EK_TRUNCATE_RIGHT);
    /* NUL is removed by clean_text: "ab\0cd" tokenizes like "abcd" with the
     * offsets shifted past the NUL. */
    assert_int_equal(ek_tokenizer_encode(t, "hel\0lo", 6, NULL, 0, &o, &a, &e), EK_OK);
    assert_int_equal(ek_tokenizer_encode(t, "hello", 5, NULL, 0, &o, &b, &e), EK_OK);
    assert_int_equal(a.n, b.n);
    assert_memory_equal(a.ids, b.ids, a.n * sizeof *a.ids);
    assert_int_equal(a.offsets[3], 6);
    assert_int_equal(ek_tokenizer_encode(t, "\0\0\0", 3, NULL, 0, &o, &a, &e), EK_OK);
    assert_int_equal(a.n, 2); /* [CLS] [SEP] */
    ek_encoding_free(&a);
    ek_encoding_free(&b);
    ek_tokenizer_free(t);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A 1 MB line of words, a 1 MB single word, 1 MB of CJK and of punctuation,
 * and the encoding buffers reused across calls. */
static void test_one_megabyte_line(void **state) {
    (void)state;
    ek_tokenizer *t = load_base();
    ek_encoding enc = {0};
    ek_err e = {0};
    ek_tok_opts o = opts(0, EK_TRUNCATE_RIGHT);
    size_t n = 1 << 20;
    char *s = malloc(n);
    const char *words = "the quick brown fox jumps over the lazy dog unaffable ";
    for (size_t i = 0; i < n; i++) s[i] = words[i % strlen(words)];
    double t0 = now();
    assert_int_equal(ek_tokenizer_encode(t, s, n, NULL, 0, &o, &enc, &e), EK_OK);
    double t1 = now();
    assert_true(enc.n > 190000);
    printf("1 MB of prose: %zu tokens in %.3f s\n", enc.n, t1 - t0);
    memset(s, 'a', n); /* one 1 MB word -> a single [UNK] */
    assert_int_equal(ek_tokenizer_encode(t, s, n, NULL, 0, &o, &enc, &e), EK_OK);
    assert_int_equal(enc.n, 3);
    assert_int_equal(enc.ids[1], 1);
    assert_int_equal(enc.offsets[3], (int32_t)n);
    memset(s, '!', n);
    assert_int_equal(ek_tokenizer_encode(t, s, n, NULL, 0, &o, &enc, &e), EK_OK);
    assert_int_equal(enc.n, n + 2);
    for (size_t i = 0; i + 3 <= n; i += 3) memcpy(s + i, "\xe4\xb8\xad", 3); /* 中 */
    size_t m = n - n % 3;
    assert_int_equal(ek_tokenizer_encode(t, s, m, NULL, 0, &o, &enc, &e), EK_OK);
    assert_int_equal(enc.n, m / 3 + 2);
    double t2 = now();
    /* Truncated: still linear, and the buffers are reused. */
    o.max_length = 128;
    size_t cap = enc.cap;
    int32_t *ids = enc.ids;
    assert_int_equal(ek_tokenizer_encode(t, s, m, NULL, 0, &o, &enc, &e), EK_OK);
    assert_int_equal(enc.n, 128);
    assert_int_equal(enc.cap, cap);
    assert_ptr_equal(enc.ids, ids);
    printf("1 MB CJK truncated to 128: %.3f s\n", now() - t2);
    free(s);
    ek_encoding_free(&enc);
    ek_tokenizer_free(t);
}

/* Many threads share one tokenizer (read-only after load). */
static void test_threads(void **state) {
    (void)state;
    ek_tokenizer *t = load_base();
    size_t nc;
    tcase *cases = load_corpus(&nc);
    int bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(dynamic)
    for (int r = 0; r < 64; r++) {
        ek_encoding enc = {0}, ref = {0};
        ek_err e = {0};
        for (size_t i = 0; i < nc; i++) {
            const tcase *c = &cases[(i + (size_t)r) % nc];
            if (ek_tokenizer_encode(t, c->text, c->len, c->has_pair ? c->pair : NULL, c->pair_len,
                                    &c->opts, &enc, &e) ||
                ek_tokenizer_encode(t, c->text, c->len, c->has_pair ? c->pair : NULL, c->pair_len,
                                    &c->opts, &ref, &e) ||
                enc.n != ref.n || memcmp(enc.ids, ref.ids, enc.n * sizeof *enc.ids))
                bad++;
        }
        ek_encoding_free(&enc);
        ek_encoding_free(&ref);
    }
    free_corpus(cases, nc);
    ek_tokenizer_free(t);
    assert_int_equal(bad, 0);
}

/* Not a test: throughput on English prose, printed (EK_TOK_BENCH=1). */
static void test_throughput(void **state) {
    (void)state;
    if (!getenv("EK_TOK_BENCH")) skip();
    ek_tokenizer *t = load_base();
    const char *para =
        "Natural language processing enables computers to understand human language. "
        "Embedding models map each sentence to a vector so that similar meanings are close. "
        "The quick brown fox jumps over the lazy dog, and then it runs away into the forest.";
    size_t plen = strlen(para);
    ek_encoding enc = {0};
    ek_err e = {0};
    ek_tok_opts o = opts(0, EK_TRUNCATE_RIGHT);
    size_t reps = 20000, tokens = 0;
    double t0 = now();
    for (size_t i = 0; i < reps; i++) {
        ek_tokenizer_encode(t, para, plen, NULL, 0, &o, &enc, &e);
        tokens += enc.n;
    }
    double dt = now() - t0;
    printf("throughput: %.1f MB/s (%zu x %zu-byte texts, %.0f tokens/s, one thread)\n",
           (double)(reps * plen) / dt / 1e6, reps, plen, (double)tokens / dt);
    ek_encoding_free(&enc);
    ek_tokenizer_free(t);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_golden_variants),
        cmocka_unit_test(test_unicode_blocks),
        cmocka_unit_test(test_utf8_errors),
        cmocka_unit_test(test_load_errors),
        cmocka_unit_test(test_vocab_txt_fallback),
        cmocka_unit_test(test_truncation_none),
        cmocka_unit_test(test_nul_bytes),
        cmocka_unit_test(test_one_megabyte_line),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_throughput),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
