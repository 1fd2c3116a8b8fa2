/* cli/bench_tokenize.c — `ek bench tokenize`: tokenizer speed by language
 * mix.  For each mix a deterministic corpus of sentence-sized texts is made
 * from word lists (English; accented Latin-script European languages; CJK,
 * where BERT splits every ideograph into its own token; a mixed set with
 * Cyrillic, Greek, Arabic, emoji, digits and punctuation), then every text
 * is tokenized one call at a time: MB/s of UTF-8 input, tokens/s, and the
 * per-call latency histogram.  --dump DIR writes each corpus as
 * DIR/<mix>.txt (one text per line) so bench/run can time Hugging Face
 * `tokenizers` on exactly the same input. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/bench_stats.h"
#include "cli/bench_suite.h"
#include "cli/cli.h"

static const char *const w_en[] = {
    "the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "embedding", "models", "turn",
    "sentences", "into", "vectors", "search", "engine", "returns", "nearest", "neighbours", "for",
    "every", "query", "latency", "matters", "in", "production", "systems", "while", "throughput",
    "decides", "cost", "of", "a", "batch", "tokenizer", "splits", "unbelievable", "words", "pieces",
    "we", "measured", "it", "twice", "and", "again", "yesterday", "with", "care", "documentation"};
static const char *const w_latin[] = {
    "élève", "café", "naïve", "über", "straße", "déjà", "mañana", "años", "niño", "größe", "Äpfel",
    "français", "garçon", "être", "señor", "coração", "ação", "Zürich", "Ångström", "smørrebrød",
    "façade", "crème", "brûlée", "Müller", "Øresund", "żółw", "łódź", "český", "příliš", "Ελλάδα",
    "résumé", "piñata", "fiancée", "Göteborg", "Kraków", "où", "est", "la", "gare", "und", "der"};
static const char *const w_cjk[] = {
    "我们", "今天", "学习", "机器", "翻译", "模型", "句子", "向量", "搜索", "引擎", "数据",
    "日本語", "東京", "ひらがな", "カタカナ", "한국어", "서울", "検索", "速度", "内存", "中文",
    "分词", "测试", "性能", "系统", "生产", "环境"};
static const char *const w_mixed[] = {
    "привет", "мир", "Москва", "καλημέρα", "κόσμε", "مرحبا", "العالم", "שלום", "नमस्ते", "🙂",
    "🚀", "👍🏽", "3.14159", "(x+y)", "e-mail", "C++", "don't", "U.S.A.", "#hashtag", "@user",
    "https://example.com/a?b=c", "2026-11-30", "50%", "$100", "naïve", "東京", "data", "model",
    "ﬁle", "Ⅻ", "½", "x²", "—", "…"};

typedef struct mix {
    const char *name;
    const char *const *words[2];
    size_t n_words[2];
} mix;

static const mix mixes[] = {
    {"en", {w_en, NULL}, {sizeof w_en / sizeof w_en[0], 0}},
    {"latin", {w_latin, w_en}, {sizeof w_latin / sizeof w_latin[0], sizeof w_en / sizeof w_en[0]}},
    {"cjk", {w_cjk, NULL}, {sizeof w_cjk / sizeof w_cjk[0], 0}},
    {"mixed", {w_mixed, w_en}, {sizeof w_mixed / sizeof w_mixed[0], sizeof w_en / sizeof w_en[0]}},
};

typedef struct corpus {
    char **texts;
    size_t *lens;
    size_t n, bytes;
} corpus;

static uint32_t lcg(uint32_t *s) {
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static void corpus_free(corpus *c) {
    for (size_t i = 0; c->texts && i < c->n; i++) free(c->texts[i]);
    free(c->texts);
    free(c->lens);
    memset(c, 0, sizeof *c);
}

/* n texts of 8..40 words; with two word lists, two words in three come from
 * the first.  CJK words are joined without spaces, as CJK text is written. */
static int corpus_make(const mix *m, size_t n, uint32_t seed, corpus *c) {
    memset(c, 0, sizeof *c);
    c->texts = calloc(n, sizeof *c->texts);
    c->lens = calloc(n, sizeof *c->lens);
    if (!c->texts || !c->lens) return -1;
    int cjk = !strcmp(m->name, "cjk");
    for (size_t i = 0; i < n; i++) {
        size_t words = 8 + lcg(&seed) % 33, cap = words * 64 + 2, len = 0;
        char *t = malloc(cap);
        if (!t) return -1;
        for (size_t w = 0; w < words; w++) {
            int list = m->words[1] && lcg(&seed) % 3 == 2;
            const char *word = m->words[list][lcg(&seed) % m->n_words[list]];
            if (w && !cjk) t[len++] = ' ';
            size_t wl = strlen(word);
            memcpy(t + len, word, wl);
            len += wl;
        }
        memcpy(t + len, cjk ? "。" : ".", cjk ? 3 : 1);
        len += cjk ? 3 : 1;
        t[len] = '\0';
        c->texts[i] = t;
        c->lens[i] = len;
        c->bytes += len;
        c->n++;
    }
    return 0;
}

typedef struct tok_arg {
    ek_ctx *ctx;
    const ek_model *m;
    const corpus *c;
    ek_encoding enc;
    size_t next, bytes, tokens;
} tok_arg;

static int tok_one(void *p) {
    tok_arg *a = p;
    size_t i = a->next++ % a->c->n;
    if (ek_tokenize(a->ctx, a->m, a->c->texts[i], a->c->lens[i], NULL, 0, NULL, &a->enc)) return 1;
    a->bytes += a->c->lens[i];
    a->tokens += a->enc.n;
    return 0;
}

static int dump_corpus(const char *dir, const char *name, const corpus *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s.txt", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    for (size_t i = 0; i < c->n; i++) fprintf(f, "%s\n", c->texts[i]);
    return fclose(f);
}

int ek_bench_tokenize(int argc, char **argv) {
    const char *cmd = "bench tokenize", *dir = NULL, *dump = NULL;
    int json = 0, quick = 0, texts = 2000, buckets = 1, rc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--json")) json = 1;
        else if (!strcmp(a, "--quick")) quick = 1;
        else if (!strcmp(a, "--no-buckets")) buckets = 0;
        else if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            puts("usage: ek bench tokenize --model DIR [--texts N] [--quick] [--dump DIR] [--no-buckets] [--json]\n"
                 "  tokenizes N deterministic texts per language mix (en, latin, cjk, mixed) one call\n"
                 "  at a time: MB/s, tokens/s, latency histogram.  --dump DIR writes DIR/<mix>.txt.");
            return 0;
        } else if (!v) return cli_usage(cmd, "%s needs a value (or is unknown)", a);
        else if (!strcmp(a, "--model")) dir = v, i++;
        else if (!strcmp(a, "--dump")) dump = v, i++;
        else if (!strcmp(a, "--texts")) { if ((rc = cli_int(cmd, a, v, 1, 10000000, &texts))) return rc; i++; }
        else return cli_usage(cmd, "unknown option %s", a);
    }
    if (!dir) return cli_usage(cmd, "--model DIR is required");
    if (quick && texts > 300) texts = 300;
    ek_ctx *ctx = NULL;
    ek_model *m = NULL;
    if (ek_ctx_new(&ctx)) return cli_fail(cmd, "out of memory");
    if (ek_model_load(ctx, dir, &m)) {
        rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        ek_ctx_free(ctx);
        return rc;
    }
    cJSON *out = cJSON_CreateObject();
    bench_str(out, "bench", "tokenize");
    bench_str(out, "model", dir);
    bench_num(out, "texts_per_mix", texts);
    cJSON *res = cJSON_AddObjectToObject(out, "mixes");
    rc = 0;
    for (size_t k = 0; !rc && k < sizeof mixes / sizeof mixes[0]; k++) {
        corpus c;
        if (corpus_make(&mixes[k], (size_t)texts, 0x70CE0000u + (uint32_t)k, &c)) {
            corpus_free(&c);
            rc = cli_fail(cmd, "out of memory");
            break;
        }
        if (dump && dump_corpus(dump, mixes[k].name, &c)) {
            rc = cli_fail(cmd, "cannot write %s/%s.txt", dump, mixes[k].name);
            corpus_free(&c);
            break;
        }
        tok_arg a = {.ctx = ctx, .m = m, .c = &c};
        /* Warm-up: one pass over the corpus (caches, the encoding's buffers),
         * then count only the timed calls. */
        for (size_t i = 0; i < c.n && !rc; i++) rc = tok_one(&a);
        a.next = a.bytes = a.tokens = 0;
        bench_plan plan = {0, (int)c.n, 1000000, quick ? 0.05 : 0.5};
        bench_result r;
        if (rc || bench_measure(tok_one, &a, &plan, &r)) {
            rc = cli_fail(cmd, "%s", ek_ctx_last_error(ctx));
        } else {
            cJSON *o = bench_result_json(&r, buckets);
            bench_num(o, "corpus_bytes", (double)c.bytes);
            bench_num(o, "bytes", (double)a.bytes);
            bench_num(o, "tokens", (double)a.tokens);
            bench_num(o, "mb_per_s", (double)a.bytes / r.seconds / 1e6);
            bench_num(o, "tokens_per_s", (double)a.tokens / r.seconds);
            bench_num(o, "bytes_per_token", a.tokens ? (double)a.bytes / (double)a.tokens : 0);
            cJSON_AddItemToObject(res, mixes[k].name, o);
            if (!json)
                printf("tokenize %-6s %8.2f MB/s %10.0f tokens/s  p50 %6.2f us  p99 %7.2f us  (cv %.2f)\n",
                       mixes[k].name, (double)a.bytes / r.seconds / 1e6, (double)a.tokens / r.seconds,
                       (double)bench_hist_percentile(&r.hist, 50) / 1e3,
                       (double)bench_hist_percentile(&r.hist, 99) / 1e3, bench_hist_cv(&r.hist));
        }
        ek_encoding_free(&a.enc);
        corpus_free(&c);
    }
    bench_num(out, "peak_rss_bytes", (double)bench_peak_rss());
    if (!rc && json) rc = bench_emit(out);
    else cJSON_Delete(out);
    ek_model_free(m);
    ek_ctx_free(ctx);
    return rc;
}
