/* text/wordpiece.c — BertPreTokenizer and the WordPiece model.
 *
 * Pre-tokenization splits the normalized text on whitespace (Rust's
 * char::is_whitespace, dropped) and isolates each punctuation character
 * (ASCII punctuation + HF's Unicode P* table).  WordPiece is HF's greedy
 * longest-match-first: a word longer than max_input_chars_per_word, or with
 * any piece not in the vocabulary, becomes a single [UNK] spanning the word.
 *
 * The longest-match search hashes the candidate piece incrementally (FNV-1a
 * over "##" + bytes), so each start position costs O(longest token) hash
 * steps and no key strings are built; candidates are capped at the longest
 * vocabulary token, which keeps a long word linear. */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>

int ek_toklist_push(ek_toklist *l, int32_t id, int32_t s, int32_t e) {
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        int32_t *ids = realloc(l->ids, cap * sizeof *ids);
        if (!ids) return EK_ERR_NOMEM;
        l->ids = ids;
        int32_t *offs = realloc(l->offs, 2 * cap * sizeof *offs);
        if (!offs) return EK_ERR_NOMEM;
        l->offs = offs;
        l->cap = cap;
    }
    l->ids[l->n] = id;
    l->offs[2 * l->n] = s;
    l->offs[2 * l->n + 1] = e;
    l->n++;
    return EK_OK;
}

static int word_reserve(ek_tok_scratch *s, size_t chars) {
    if (chars <= s->word_cap) return EK_OK;
    size_t cap = s->word_cap ? s->word_cap : 64;
    while (cap < chars) cap *= 2;
    char *w = realloc(s->word, 4 * cap + 1);
    if (!w) return EK_ERR_NOMEM;
    s->word = w;
    uint32_t *b = realloc(s->wbyte, (cap + 1) * sizeof *b);
    if (!b) return EK_ERR_NOMEM;
    s->wbyte = b;
    s->word_cap = cap;
    return EK_OK;
}

/* WordPiece of the normalized word s->ncp[ws..we). */
static int wordpiece_word(const ek_tokenizer *t, ek_tok_scratch *s, size_t ws, size_t we,
                          ek_toklist *l) {
    const uint32_t *org = s->norig.p;
    size_t nch = we - ws;
    int32_t word_start = (int32_t)org[ws], word_end = (int32_t)org[we - 1] + 1;
    if (nch > t->max_input_chars) return ek_toklist_push(l, t->unk_id, word_start, word_end);
    if (word_reserve(s, nch)) return EK_ERR_NOMEM;
    size_t nb = 0;
    for (size_t i = 0; i < nch; i++) {
        s->wbyte[i] = (uint32_t)nb;
        nb += (size_t)ek_utf8_put(s->ncp.p[ws + i], s->word + nb);
    }
    s->wbyte[nch] = (uint32_t)nb;

    const ek_vocab *v = &t->vocab;
    size_t maxc = (size_t)v->max_chars;
    if (maxc > sizeof s->hashes / sizeof s->hashes[0] - 1)
        maxc = sizeof s->hashes / sizeof s->hashes[0] - 1;
    uint32_t h0 = ek_vocab_hash_init();
    uint32_t hpre = ek_vocab_hash_bytes(h0, t->prefix, t->prefix_len);
    size_t first = l->n, start = 0;
    while (start < nch) {
        size_t end = nch - start > maxc ? start + maxc : nch;
        const char *pre = start ? t->prefix : "";
        size_t pn = start ? t->prefix_len : 0;
        uint32_t h = start ? hpre : h0;
        for (size_t e = start + 1; e <= end; e++) {
            h = ek_vocab_hash_bytes(h, s->word + s->wbyte[e - 1], s->wbyte[e] - s->wbyte[e - 1]);
            s->hashes[e - start] = h;
        }
        int32_t id = -1;
        size_t e = end;
        for (; e > start; e--) {
            id = ek_vocab_find(v, s->hashes[e - start], pre, pn, s->word + s->wbyte[start],
                               s->wbyte[e] - s->wbyte[start]);
            if (id >= 0) break;
        }
        if (id < 0) {
            l->n = first;
            return ek_toklist_push(l, t->unk_id, word_start, word_end);
        }
        if (ek_toklist_push(l, id, (int32_t)org[ws + start], (int32_t)org[ws + e - 1] + 1))
            return EK_ERR_NOMEM;
        start = e;
    }
    return EK_OK;
}

int ek_wordpiece_range(const ek_tokenizer *t, ek_tok_scratch *s, size_t lo, size_t hi,
                       ek_toklist *l) {
    if (!t->has_pretok) return lo < hi ? wordpiece_word(t, s, lo, hi, l) : EK_OK;
    const uint32_t *cp = s->ncp.p;
    size_t i = lo;
    while (i < hi) {
        unsigned c = ek_tok_class(t, cp[i]);
        if (c & EK_CC_SPLIT_SPACE) {
            i++;
            continue;
        }
        size_t j = i + 1;
        if (!(c & EK_CC_PUNCT))
            while (j < hi && !(ek_tok_class(t, cp[j]) & (EK_CC_SPLIT_SPACE | EK_CC_PUNCT))) j++;
        int rc = wordpiece_word(t, s, i, j, l);
        if (rc) return rc;
        i = j;
    }
    return EK_OK;
}
