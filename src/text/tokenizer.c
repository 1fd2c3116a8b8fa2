/* text/tokenizer.c — encoding: UTF-8 decoding, added-token splitting,
 * normalization + WordPiece of the pieces between, truncation as HF's
 * TruncationParams (longest_first for pairs), the special-token template,
 * and the ek_encoding output.  Also the small accessors of tokenizer.h.
 *
 * Nothing here writes to the tokenizer: per-call buffers live in an
 * ek_tok_work, the caller's (kept in its ek_ctx and reused, so a warmed-up
 * call allocates nothing) or one on the stack (a few mallocs per call, none
 * per character), and the caller's ek_encoding arrays are reused, grown
 * only when needed. */
#include "text/tok_internal.h"

#include <stdlib.h>
#include <string.h>

void ek_tok_scratch_free(ek_tok_scratch *s) {
    ek_u32buf *bufs[] = {&s->text, &s->tmp, &s->n1, &s->o1, &s->n2,
                         &s->o2, &s->c2, &s->ncp, &s->norig};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]->p);
    free(s->word);
    free(s->wbyte);
    memset(s, 0, sizeof *s);
}

struct ek_tok_work {
    ek_tok_scratch s;
    ek_toklist la, lb;
};

ek_tok_work *ek_tok_work_new(void) { return calloc(1, sizeof(ek_tok_work)); }

static void work_release(ek_tok_work *w) {
    ek_tok_scratch_free(&w->s);
    free(w->la.ids);
    free(w->la.offs);
    free(w->lb.ids);
    free(w->lb.offs);
    memset(w, 0, sizeof *w);
}

void ek_tok_work_free(ek_tok_work *w) {
    if (!w) return;
    work_release(w);
    free(w);
}

void ek_encoding_free(ek_encoding *enc) {
    if (!enc) return;
    free(enc->ids);
    free(enc->type_ids);
    free(enc->offsets);
    memset(enc, 0, sizeof *enc);
}

static int encoding_reserve(ek_encoding *enc, size_t n) {
    if (n <= enc->cap && enc->ids && enc->type_ids && enc->offsets) return EK_OK;
    size_t cap = enc->cap > n ? enc->cap : n;
    if (cap < 16) cap = 16;
    int32_t *ids = realloc(enc->ids, cap * sizeof *ids);
    if (!ids) return EK_ERR_NOMEM;
    enc->ids = ids;
    int32_t *ty = realloc(enc->type_ids, cap * sizeof *ty);
    if (!ty) return EK_ERR_NOMEM;
    enc->type_ids = ty;
    int32_t *of = realloc(enc->offsets, 2 * cap * sizeof *of);
    if (!of) return EK_ERR_NOMEM;
    enc->offsets = of;
    enc->cap = cap;
    return EK_OK;
}

/* Decodes (and for lowercase_input lowers) one segment into s->text. */
static int decode_segment(const char *txt, size_t len, int lower, ek_tok_scratch *s,
                          ek_err *e) {
    ek_u32buf *dst = lower ? &s->tmp : &s->text;
    if (ek_u32buf_reserve(dst, len + 1)) return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
    size_t bad = 0;
    long n = ek_utf8_decode(txt, len, dst->p, &bad);
    if (n < 0) return ek_err_set(e, EK_ERR_UTF8, "invalid UTF-8 at byte %zu", bad);
    dst->n = (size_t)n;
    if (lower) {
        if (ek_u32buf_reserve(&s->text, 3 * s->tmp.n + 1))
            return ek_err_set(e, EK_ERR_NOMEM, "out of memory");
        s->text.n = ek_py_lower(s->tmp.p, s->tmp.n, s->text.p);
    }
    return EK_OK;
}

/* Normalizes text[lo..hi), splits out normalized added tokens, WordPieces
 * the rest. */
static int encode_piece(const ek_tokenizer *t, ek_tok_scratch *s, size_t lo, size_t hi,
                        ek_toklist *l) {
    if (lo >= hi) return EK_OK;
    int rc = ek_normalize_range(t, s->text.p, lo, hi, s);
    if (rc) return rc;
    size_t n = s->ncp.n, pos = 0, ms, me;
    int32_t id;
    while (ek_added_next(t, &t->norm_set, s->ncp.p, n, pos, pos, &ms, &me, &id)) {
        if ((rc = ek_wordpiece_range(t, s, pos, ms, l))) return rc;
        if ((rc = ek_toklist_push(l, id, (int32_t)s->norig.p[ms], (int32_t)s->norig.p[me - 1] + 1)))
            return rc;
        pos = me;
    }
    return ek_wordpiece_range(t, s, pos, n, l);
}

static int encode_segment(const ek_tokenizer *t, const char *txt, size_t len, int lower,
                          ek_tok_scratch *s, ek_toklist *l, ek_err *e) {
    l->n = 0;
    int rc = decode_segment(txt, len, lower, s, e);
    if (rc) return rc;
    const uint32_t *cp = s->text.p;
    size_t n = s->text.n, pos = 0, ms, me;
    int32_t id;
    while (ek_added_next(t, &t->raw_set, cp, n, pos, pos, &ms, &me, &id)) {
        if ((rc = encode_piece(t, s, pos, ms, l))) break;
        if ((rc = ek_toklist_push(l, id, (int32_t)ms, (int32_t)me))) break;
        pos = me;
    }
    if (!rc) rc = encode_piece(t, s, pos, n, l);
    if (rc) return ek_err_set(e, rc, "out of memory tokenizing %zu bytes", len);
    return EK_OK;
}

/* Keeps n tokens of l: the first n (right truncation) or the last n. */
static void truncate_list(ek_toklist *l, size_t n, ek_truncate side) {
    if (l->n <= n) return;
    if (side == EK_TRUNCATE_LEFT) {
        size_t drop = l->n - n;
        memmove(l->ids, l->ids + drop, n * sizeof *l->ids);
        memmove(l->offs, l->offs + 2 * drop, 2 * n * sizeof *l->offs);
    }
    l->n = n;
}

/* HF's truncate_encodings, LongestFirst strategy, stride 0. */
static void truncate_hf(ek_toklist *a, ek_toklist *b, size_t max_len, ek_truncate side) {
    size_t total = a->n + (b ? b->n : 0);
    if (total <= max_len) return;
    if (!b) {
        truncate_list(a, max_len, side);
        return;
    }
    size_t n1 = a->n, n2 = b->n;
    int swap = n1 > n2;
    if (swap) { size_t x = n1; n1 = n2; n2 = x; }
    if (n1 > max_len) n2 = n1;
    else n2 = n1 > max_len - n1 ? n1 : max_len - n1;
    if (n1 + n2 > max_len) {
        n1 = max_len / 2;
        n2 = n1 + max_len % 2;
    }
    if (swap) { size_t x = n1; n1 = n2; n2 = x; }
    truncate_list(a, n1, side);
    truncate_list(b, n2, side);
}

static size_t template_specials(const ek_template *tp) {
    size_t n = 0;
    for (size_t i = 0; i < tp->n; i++)
        if (tp->p[i].kind == EK_PIECE_SPECIAL) n += tp->p[i].n_ids;
    return n;
}

int ek_tokenizer_num_special(const ek_tokenizer *t, int pair) {
    if (!t->post_kind) return 0;
    return (int)template_specials(pair ? &t->pair : &t->single);
}

static void put(ek_encoding *enc, int32_t id, int32_t ty, int32_t s, int32_t e) {
    size_t k = enc->n++;
    enc->ids[k] = id;
    enc->type_ids[k] = ty;
    enc->offsets[2 * k] = s;
    enc->offsets[2 * k + 1] = e;
}

static void put_list(ek_encoding *enc, const ek_toklist *l, int32_t ty) {
    for (size_t i = 0; i < l->n; i++)
        put(enc, l->ids[i], ty, l->offs[2 * i], l->offs[2 * i + 1]);
}

int ek_tokenizer_encode(const ek_tokenizer *t, const char *a, size_t alen, const char *b,
                        size_t blen, const ek_tok_opts *o, ek_encoding *enc, ek_err *e) {
    return ek_tokenizer_encode_w(t, a, alen, b, blen, o, enc, NULL, e);
}

int ek_tokenizer_encode_w(const ek_tokenizer *t, const char *a, size_t alen, const char *b,
                          size_t blen, const ek_tok_opts *o, ek_encoding *enc, ek_tok_work *work,
                          ek_err *e) {
    if (!t || !o || !enc || (!a && alen) || (b == NULL && blen))
        return ek_err_set(e, EK_ERR_INVALID_ARG, "tokenizer: NULL argument");
    if (!a) a = "";
    enc->n = 0;
    ek_tok_work local;
    ek_tok_work *w = work;
    if (!w) {
        memset(&local, 0, sizeof local);
        w = &local;
    }
    ek_toklist *pa = &w->la, *pb = &w->lb;
    pa->n = pb->n = 0;
    int rc = encode_segment(t, a, alen, o->lowercase_input, &w->s, pa, e);
    if (!rc && b) {
        rc = encode_segment(t, b, blen, o->lowercase_input, &w->s, pb, e);
        if (rc == EK_ERR_UTF8) ek_err_prefix(e, "second segment");
    }
    /* Only the token lists are needed from here on. */
    if (!work) ek_tok_scratch_free(&w->s);
    const ek_template *tp = b ? &t->pair : &t->single;
    if (!rc && o->add_special_tokens && t->post_kind && !tp->present)
        rc = ek_err_set(e, EK_ERR_UNSUPPORTED, "tokenizer: post_processor has no pair template");
    if (rc) goto out;

    size_t n_added = o->add_special_tokens ? template_specials(tp) : 0;
    if (!t->post_kind) n_added = 0;
    size_t total = pa->n + pb->n + n_added;
    if (o->max_length && o->truncate == EK_TRUNCATE_NONE) {
        if (total > o->max_length) {
            rc = ek_err_set(e, EK_ERR_TOO_LONG,
                            "input is %zu tokens (special tokens included), more than max_length %zu",
                            total, o->max_length);
            goto out;
        }
    } else if (o->max_length) {
        /* HF subtracts the template's special tokens from max_length; when
         * max_length is smaller than them it does not truncate at all. */
        if (o->max_length >= n_added)
            truncate_hf(pa, b ? pb : NULL, o->max_length - n_added, o->truncate);
    }
    if ((rc = encoding_reserve(enc, pa->n + pb->n + n_added + 1))) {
        rc = ek_err_set(e, rc, "out of memory");
        goto out;
    }
    if (o->add_special_tokens && t->post_kind) {
        for (size_t i = 0; i < tp->n; i++) {
            const ek_piece *p = &tp->p[i];
            if (p->kind == EK_PIECE_SPECIAL)
                for (size_t k = 0; k < p->n_ids; k++) put(enc, p->ids[k], p->type_id, 0, 0);
            else
                put_list(enc, p->kind == EK_PIECE_A ? pa : pb, p->type_id);
        }
    } else if (t->post_kind == 1 && tp->present) {
        /* TemplateProcessing without special tokens still sets the
         * sequences' type ids from the template. */
        for (size_t i = 0; i < tp->n; i++) {
            const ek_piece *p = &tp->p[i];
            if (p->kind != EK_PIECE_SPECIAL)
                put_list(enc, p->kind == EK_PIECE_A ? pa : pb, p->type_id);
        }
    } else {
        put_list(enc, pa, 0);
        if (b) put_list(enc, pb, 1);
    }
out:
    if (!work) work_release(w);
    if (rc) enc->n = 0;
    return rc;
}

size_t ek_tokenizer_vocab_size(const ek_tokenizer *t) { return (size_t)t->vocab.n_ids; }

int32_t ek_tokenizer_token_id(const ek_tokenizer *t, const char *tok) {
    if (!tok) return -1;
    size_t n = strlen(tok);
    int32_t id = ek_vocab_get(&t->vocab, tok, n);
    for (size_t i = 0; id < 0 && i < t->n_added; i++)
        if (t->added_strs[i] && strcmp(t->added_strs[i], tok) == 0) id = t->added[i].id;
    return id;
}

const char *ek_tokenizer_id_token(const ek_tokenizer *t, int32_t id) {
    if (id < 0 || id >= t->vocab.n_ids || t->vocab.off[id] == UINT32_MAX) return NULL;
    /* Tokens are stored NUL-terminated (see json_load.c). */
    return t->vocab.pool + t->vocab.off[id];
}

size_t ek_tokenizer_json_max_length(const ek_tokenizer *t) { return t->json_max_length; }
size_t ek_tokenizer_config_max_length(const ek_tokenizer *t) { return t->config_max_length; }
