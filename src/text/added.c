/* text/added.c — added tokens (tokenizer.json "added_tokens").
 *
 * HF splits added tokens out of the text before anything else: tokens with
 * normalized=false (all special tokens such as [CLS] / [SEP] in BERT files)
 * are matched in the raw text, the others in the normalized text of the
 * pieces in between; the pieces left are pre-tokenized and WordPiece'd.  So
 * "[CLS]" typed inside an input becomes the [CLS] id, not "[", "cl", "##s"...
 * Matching is leftmost-longest and non-overlapping (HF uses Aho-Corasick in
 * that mode); single_word, lstrip and rstrip follow HF's AddedVocabulary. */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>

static int cmp_first(const void *a, const void *b) {
    const ek_added_token *x = a, *y = b;
    uint32_t fx = x->cps[0], fy = y->cps[0];
    return fx < fy ? -1 : fx > fy;
}

static int build_set(ek_tokenizer *t, ek_added_set *set, int normalized) {
    size_t n = 0;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].n) n++;
    memset(set, 0, sizeof *set);
    if (!n) return EK_OK;
    set->tok = calloc(n, sizeof *set->tok);
    if (!set->tok) return EK_ERR_NOMEM;
    for (size_t i = 0; i < t->n_added; i++)
        if (t->added[i].normalized == normalized && t->added[i].n) set->tok[set->n++] = t->added[i];
    qsort(set->tok, set->n, sizeof *set->tok, cmp_first);
    for (size_t i = 0; i < set->n; i++) {
        uint32_t f = set->tok[i].cps[0] & 255;
        set->first_bits[f >> 3] |= (uint8_t)(1u << (f & 7));
    }
    return EK_OK;
}

int ek_added_sets_build(ek_tokenizer *t, ek_err *e) {
    /* Normalized tokens are matched against normalized text, so their content
     * is normalized first (as HF does when it builds its matcher). */
    for (size_t i = 0; i < t->n_added; i++) {
        ek_added_token *a = &t->added[i];
        if (!a->normalized || !t->has_normalizer) continue;
        uint32_t *nc;
        size_t nn;
        if (ek_normalize_simple(t, a->cps, a->n, &nc, &nn))
            return ek_err_set(e, EK_ERR_NOMEM, "out of memory normalizing added tokens");
        free(a->cps);
        a->cps = nc;
        a->n = nn;
    }
    if (build_set(t, &t->raw_set, 0) || build_set(t, &t->norm_set, 1))
        return ek_err_set(e, EK_ERR_NOMEM, "out of memory building added tokens");
    return EK_OK;
}

void ek_added_sets_free(ek_tokenizer *t) {
    free(t->raw_set.tok);
    free(t->norm_set.tok);
    memset(&t->raw_set, 0, sizeof t->raw_set);
    memset(&t->norm_set, 0, sizeof t->norm_set);
}

/* Word characters around single_word tokens: HF's Rust is_alphanumeric or
 * '_', as probed into the generated table (a word boundary is a non-word
 * character or the end of the text). */
static int is_word_char(uint32_t cp) {
    return ek_in_ranges(ek_hf_word, ek_hf_word_n, cp);
}

/* Longest token of set matching at cps[i]; NULL if none. */
static const ek_added_token *match_at(const ek_added_set *set, const uint32_t *cps, size_t n,
                                      size_t i) {
    uint32_t f = cps[i];
    if (!(set->first_bits[(f & 255) >> 3] & (1u << (f & 7)))) return NULL;
    size_t lo = 0, hi = set->n;
    while (lo < hi) { /* first token whose first code point is >= f */
        size_t mid = (lo + hi) / 2;
        if (set->tok[mid].cps[0] < f) lo = mid + 1;
        else hi = mid;
    }
    const ek_added_token *best = NULL;
    for (size_t k = lo; k < set->n && set->tok[k].cps[0] == f; k++) {
        const ek_added_token *a = &set->tok[k];
        if (a->n > n - i || (best && a->n <= best->n)) continue;
        if (memcmp(a->cps, cps + i, a->n * sizeof *cps) == 0) best = a;
    }
    return best;
}

int ek_added_next(const ek_tokenizer *t, const ek_added_set *set, const uint32_t *cps,
                  size_t n, size_t from, size_t floor, size_t *ms, size_t *me, int32_t *id) {
    if (!set->n) return 0;
    size_t i = from;
    while (i < n) {
        const ek_added_token *a = match_at(set, cps, n, i);
        if (!a) {
            i++;
            continue;
        }
        size_t s = i, e = i + a->n;
        if (a->single_word) {
            int left_ok = s == 0 || !is_word_char(cps[s - 1]);
            int right_ok = e == n || !is_word_char(cps[e]);
            if (!left_ok || !right_ok) { /* Aho-Corasick resumes after it */
                i = e;
                continue;
            }
        }
        if (a->lstrip) {
            while (s > floor && (ek_tok_class(t, cps[s - 1]) & EK_CC_SPLIT_SPACE)) s--;
        }
        if (a->rstrip) {
            while (e < n && (ek_tok_class(t, cps[e]) & EK_CC_SPLIT_SPACE)) e++;
        }
        *ms = s;
        *me = e;
        *id = a->id;
        return 1;
    }
    return 0;
}
