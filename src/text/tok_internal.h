/* text/tok_internal.h — the tokenizer's internal layout, shared by the files
 * of src/text (load, vocabulary, normalization, WordPiece, encoding).  An
 * ek_tokenizer is immutable after loading, so encoders on many threads can
 * share it; all per-call state lives in ek_tok_scratch. */
#ifndef EK_TEXT_TOK_INTERNAL_H
#define EK_TEXT_TOK_INTERNAL_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "text/tokenizer.h"
#include "text/unicode.h"

/* ---- vocabulary: token string <-> id, open-addressing hash table ---------- */
typedef struct ek_vocab {
    char *pool;            /* all token strings, back to back */
    size_t pool_len, pool_cap;
    uint32_t *off, *len;   /* per id: token bytes in pool; off UINT32_MAX = none */
    int32_t n_ids;         /* ids are 0 .. n_ids-1 (gaps allowed) */
    int32_t *slot_id;      /* hash slots: id or -1 */
    uint32_t *slot_hash;
    size_t n_slots;        /* power of two */
    size_t count;
    int max_chars;         /* longest token, in code points */
} ek_vocab;

uint32_t ek_vocab_hash_init(void);
uint32_t ek_vocab_hash_bytes(uint32_t h, const char *s, size_t n);
/* Adds or replaces token -> id (replace: a later vocab.txt line wins, as in
 * transformers).  *dup_id receives a previous token's id for this token
 * string (or -1). Returns an EK status. */
int ek_vocab_put(ek_vocab *v, const char *tok, size_t n, int32_t id, int32_t *dup_id);
/* Id of the token whose bytes are pre[0..pn) + s[0..n) with precomputed
 * hash h, or -1. */
/* Records the string of id (for id -> token) without making it findable:
 * added tokens are not part of the WordPiece vocabulary. */
int ek_vocab_name(ek_vocab *v, const char *tok, size_t n, int32_t id);
int32_t ek_vocab_find(const ek_vocab *v, uint32_t h, const char *pre, size_t pn,
                      const char *s, size_t n);
int32_t ek_vocab_get(const ek_vocab *v, const char *s, size_t n);
int ek_vocab_reserve_ids(ek_vocab *v, int32_t n_ids);
void ek_vocab_free(ek_vocab *v);

/* ---- added tokens (added_tokens in tokenizer.json) ------------------------ */
typedef struct ek_added_token {
    uint32_t *cps;     /* content as code points (normalized when .normalized) */
    size_t n;
    int32_t id;
    int lstrip, rstrip, single_word, normalized, special;
} ek_added_token;

/* A set of added tokens matched leftmost-longest like HF's Aho-Corasick. */
typedef struct ek_added_set {
    ek_added_token *tok;   /* sorted by first code point */
    size_t n;
    uint8_t first_bits[32]; /* bit (first cp & 255): quick rejection */
} ek_added_set;

/* ---- post-processor as a template ----------------------------------------- */
enum { EK_PIECE_SPECIAL = 0, EK_PIECE_A = 1, EK_PIECE_B = 2 };
typedef struct ek_piece {
    int kind;
    int32_t type_id;
    int32_t *ids;      /* SPECIAL: its ids (usually one) */
    size_t n_ids;
} ek_piece;

typedef struct ek_template {
    ek_piece *p;
    size_t n;
    int present;
} ek_template;

struct ek_tokenizer {
    ek_vocab vocab;
    int32_t unk_id;
    char prefix[64];          /* continuing_subword_prefix */
    size_t prefix_len;
    size_t max_input_chars;   /* max_input_chars_per_word */

    int has_normalizer, clean_text, chinese, strip_accents, lowercase;
    int has_pretok;

    ek_added_token *added;    /* all added tokens (owned) */
    size_t n_added;
    ek_added_set raw_set, norm_set; /* views into copies sorted for matching */
    char **added_strs;        /* added token contents, by index (owned) */

    int post_kind;            /* 0 none, 1 TemplateProcessing, 2 BertProcessing */
    ek_template single, pair;

    size_t json_max_length, config_max_length;
    uint8_t bmp_class[65536]; /* ek_cp_class of the BMP, cached at load */
};

/* Character classes (EK_CC_*) of cp, from the BMP cache when possible. */
static inline unsigned ek_tok_class(const ek_tokenizer *t, uint32_t cp) {
    return cp < 65536 ? t->bmp_class[cp] : ek_cp_class(cp);
}

/* ---- per-call scratch ------------------------------------------------------ */
typedef struct ek_u32buf { uint32_t *p; size_t n, cap; } ek_u32buf;
typedef struct ek_toklist { int32_t *ids; int32_t *offs; size_t n, cap; } ek_toklist;

typedef struct ek_tok_scratch {
    ek_u32buf text;       /* decoded (and maybe lowered) input */
    ek_u32buf tmp;        /* decode buffer before lowering */
    ek_u32buf n1, o1;     /* normalization stage buffers: code points, origins */
    ek_u32buf n2, o2, c2; /* (c2: HF "change" flags during NFD reordering) */
    ek_u32buf ncp, norig; /* normalized text and each char's original index */
    char *word;           /* UTF-8 of the current word */
    uint32_t *wbyte;      /* byte offset of each char of the word */
    size_t word_cap;
    uint32_t hashes[256];
} ek_tok_scratch;

int ek_u32buf_reserve(ek_u32buf *b, size_t n);
int ek_toklist_push(ek_toklist *l, int32_t id, int32_t s, int32_t e);
void ek_tok_scratch_free(ek_tok_scratch *s);

/* normalize.c: normalizes text[lo..hi) (origins = indices into text) into
 * s->ncp / s->norig.  Returns EK_OK or EK_ERR_NOMEM. */
int ek_normalize_range(const ek_tokenizer *t, const uint32_t *text, size_t lo,
                       size_t hi, ek_tok_scratch *s);
/* Normalizes a short string (added token contents) without origins. */
int ek_normalize_simple(const ek_tokenizer *t, const uint32_t *in, size_t n,
                        uint32_t **out, size_t *out_n);

/* wordpiece.c: pre-tokenizes s->ncp[lo..hi) and appends WordPiece tokens
 * (offsets through s->norig) to l. */
int ek_wordpiece_range(const ek_tokenizer *t, ek_tok_scratch *s, size_t lo,
                       size_t hi, ek_toklist *l);

/* added.c */
int ek_added_sets_build(ek_tokenizer *t, ek_err *e);
void ek_added_sets_free(ek_tokenizer *t);
/* Finds the next match in cps[from..n) (leftmost-longest; lstrip/rstrip
 * applied, not before floor).  Returns 1 and the token / extended span. */
int ek_added_next(const ek_tokenizer *t, const ek_added_set *set, const uint32_t *cps,
                  size_t n, size_t from, size_t floor, size_t *ms, size_t *me,
                  int32_t *id);

/* Shared by json_load.c (both loaders) */
int ek_tokenizer_finish(ek_tokenizer *t, const char *file, ek_err *e);

#endif
