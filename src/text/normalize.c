/* text/normalize.c — BertNormalizer with alignment to the original text.
 *
 * Every normalized code point keeps the index of the original code point it
 * came from, so token offsets map back exactly as HF's NormalizedString
 * alignments do.  HF applies the steps in this order, each on the whole
 * string: clean_text, handle_chinese_chars, strip_accents (NFD, then drop Mn),
 * lowercase.  We run the same stages as passes over scratch buffers.
 *
 * Origins follow HF's transform() rule: a character produced as a "change 0"
 * consumes the next original character; an inserted one ("change +1", e.g. the
 * spaces around a CJK ideograph, the 2nd..nth code point of a decomposition or
 * of a multi-char lowercase) takes the origin of the last consumed character.
 * NFD's canonical reordering moves code points but not origins (HF sorts the
 * (char, change) pairs and then assigns alignments positionally), using HF's
 * combining classes (ek_cp_ccc). */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>

int ek_u32buf_reserve(ek_u32buf *b, size_t n) {
    if (n <= b->cap) return EK_OK;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < n) cap *= 2;
    uint32_t *p = realloc(b->p, cap * sizeof *p);
    if (!p) return EK_ERR_NOMEM;
    b->p = p;
    b->cap = cap;
    return EK_OK;
}

/* Ensures room for `more` further elements in the buffers of one stage. */
static int room(ek_u32buf *a, ek_u32buf *b, ek_u32buf *c, size_t more) {
    size_t need = a->n + more;
    if (need <= a->cap && need <= b->cap && (!c || need <= c->cap)) return EK_OK;
    need += need / 2;
    if (ek_u32buf_reserve(a, need) || ek_u32buf_reserve(b, need) ||
        (c && ek_u32buf_reserve(c, need)))
        return EK_ERR_NOMEM;
    return EK_OK;
}

/* Stage 1: clean_text and handle_chinese_chars. */
static int stage_clean(const ek_tokenizer *t, const uint32_t *in, size_t lo, size_t hi,
                       ek_u32buf *out, ek_u32buf *org) {
    out->n = org->n = 0;
    if (room(out, org, NULL, (hi - lo) + 16)) return EK_ERR_NOMEM;
    for (size_t i = lo; i < hi; i++) {
        uint32_t cp = in[i];
        unsigned cls = ek_tok_class(t, cp);
        if (t->clean_text) {
            if (cls & EK_CC_REMOVED) continue;
            if (cls & EK_CC_CLEAN_SPACE) cp = ' ';
        }
        if (room(out, org, NULL, 3)) return EK_ERR_NOMEM;
        if (t->chinese && (cls & EK_CC_CJK) && cp != ' ') {
            out->p[out->n] = ' ';
            out->p[out->n + 1] = cp;
            out->p[out->n + 2] = ' ';
            org->p[out->n] = org->p[out->n + 1] = org->p[out->n + 2] = (uint32_t)i;
            out->n += 3;
            org->n += 3;
        } else {
            out->p[out->n] = cp;
            org->p[org->n++] = (uint32_t)i;
            out->n++;
        }
    }
    return EK_OK;
}

/* Stage 2: NFD with canonical reordering (only when strip_accents). */
static int stage_nfd(const ek_tokenizer *t, const ek_u32buf *in, const ek_u32buf *inorg,
                     ek_tok_scratch *s) {
    ek_u32buf *out = &s->n2, *org = &s->o2, *chg = &s->c2;
    out->n = org->n = chg->n = 0;
    if (room(out, org, chg, in->n + 16)) return EK_ERR_NOMEM;
    for (size_t i = 0; i < in->n; i++) {
        uint32_t cp = in->p[i], d[4];
        int k = (ek_tok_class(t, cp) & EK_CC_DECOMP) ? ek_cp_nfd(cp, d) : (d[0] = cp, 1);
        if (room(out, org, chg, 4)) return EK_ERR_NOMEM;
        for (int m = 0; m < k; m++) {
            size_t pos = out->n++;
            out->p[pos] = d[m];
            chg->p[pos] = m > 0;
            int cc = d[m] < 0x300 ? 0 : ek_cp_ccc(d[m]);
            if (cc) {
                /* Stable insertion into the run of non-starters. */
                while (pos > 0) {
                    int pc = out->p[pos - 1] < 0x300 ? 0 : ek_cp_ccc(out->p[pos - 1]);
                    if (pc <= cc) break;
                    uint32_t tc = out->p[pos - 1], tg = chg->p[pos - 1];
                    out->p[pos - 1] = out->p[pos];
                    chg->p[pos - 1] = chg->p[pos];
                    out->p[pos] = tc;
                    chg->p[pos] = tg;
                    pos--;
                }
            }
        }
    }
    /* Positional origins from the change flags. */
    size_t consumed = 0;
    uint32_t last = 0;
    for (size_t j = 0; j < out->n; j++) {
        if (chg->p[j] == 0 && consumed < inorg->n) last = inorg->p[consumed++];
        org->p[j] = last;
    }
    org->n = out->n;
    return EK_OK;
}

/* Stage 3: drop Mn (strip_accents) and lowercase. */
static int stage_strip_lower(const ek_tokenizer *t, const uint32_t *in, const uint32_t *inorg,
                             size_t n, int strip, ek_tok_scratch *s) {
    ek_u32buf *out = &s->ncp, *org = &s->norig;
    out->n = org->n = 0;
    if (room(out, org, NULL, n + 16)) return EK_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        unsigned cls = ek_tok_class(t, cp);
        if (strip && (cls & EK_CC_MN)) continue;
        if (t->lowercase && (cls & EK_CC_LOWER)) {
            uint32_t lo[3];
            int k = ek_cp_lower(cp, lo);
            if (room(out, org, NULL, 3)) return EK_ERR_NOMEM;
            for (int m = 0; m < k; m++) {
                out->p[out->n++] = lo[m];
                org->p[org->n++] = inorg[i];
            }
        } else {
            if (room(out, org, NULL, 1)) return EK_ERR_NOMEM;
            out->p[out->n++] = cp;
            org->p[org->n++] = inorg[i];
        }
    }
    return EK_OK;
}

int ek_normalize_range(const ek_tokenizer *t, const uint32_t *text, size_t lo, size_t hi,
                       ek_tok_scratch *s) {
    if (!t->has_normalizer) {
        s->ncp.n = s->norig.n = 0;
        if (room(&s->ncp, &s->norig, NULL, hi - lo + 1)) return EK_ERR_NOMEM;
        for (size_t i = lo; i < hi; i++) {
            s->ncp.p[s->ncp.n++] = text[i];
            s->norig.p[s->norig.n++] = (uint32_t)i;
        }
        return EK_OK;
    }
    int rc = stage_clean(t, text, lo, hi, &s->n1, &s->o1);
    if (rc) return rc;
    if (t->strip_accents) {
        rc = stage_nfd(t, &s->n1, &s->o1, s);
        if (rc) return rc;
        return stage_strip_lower(t, s->n2.p, s->o2.p, s->n2.n, 1, s);
    }
    return stage_strip_lower(t, s->n1.p, s->o1.p, s->n1.n, 0, s);
}

int ek_normalize_simple(const ek_tokenizer *t, const uint32_t *in, size_t n, uint32_t **out,
                        size_t *out_n) {
    ek_tok_scratch s;
    memset(&s, 0, sizeof s);
    int rc = ek_normalize_range(t, in, 0, n, &s);
    if (rc == EK_OK) {
        *out = s.ncp.p;
        *out_n = s.ncp.n;
        s.ncp.p = NULL;
    }
    ek_tok_scratch_free(&s);
    return rc;
}
