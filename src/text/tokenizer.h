/* text/tokenizer.h — Hugging Face-compatible BERT tokenization.
 *
 * Owns: reading tokenizer.json (WordPiece model, BertNormalizer,
 * BertPreTokenizer, TemplateProcessing / BertProcessing) or vocab.txt +
 * tokenizer_config.json; normalization with alignment to the original text;
 * pre-tokenization; WordPiece; the special-token template; truncation.
 * Output ids and character offsets are identical to the `tokenizers` package.
 * Unicode properties come from utf8proc. */
#ifndef EK_TEXT_TOKENIZER_H
#define EK_TEXT_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>
#include "base/err.h"
#include "embedkit.h"

typedef struct ek_tokenizer ek_tokenizer;

/* Loads dir/tokenizer.json, or when absent dir/vocab.txt (+ optional
 * dir/tokenizer_config.json for do_lower_case, strip_accents,
 * tokenize_chinese_chars, special tokens). Errors name the file and field. */
int ek_tokenizer_load_dir(const char *dir, ek_tokenizer **out, ek_err *e);
int ek_tokenizer_load_json(const char *path, ek_tokenizer **out, ek_err *e);
void ek_tokenizer_free(ek_tokenizer *t);

typedef struct ek_tok_opts {
    size_t max_length;      /* 0 = no limit; includes special tokens */
    ek_truncate truncate;   /* side to drop, or NONE = EK_ERR_TOO_LONG */
    int add_special_tokens; /* 1: apply the [CLS] $A [SEP] template */
    int lowercase_input;    /* sentence_bert_config do_lower_case: lower the
                               text before normalization */
} ek_tok_opts;

/* Encodes a (and b when b != NULL) into enc (reused; see ek_encoding).
 * Invalid UTF-8 -> EK_ERR_UTF8 naming the byte offset ("invalid UTF-8 at
 * byte 17"); the caller prefixes the input index. */
int ek_tokenizer_encode(const ek_tokenizer *t, const char *a, size_t alen,
                        const char *b, size_t blen, const ek_tok_opts *o,
                        ek_encoding *enc, ek_err *e);

/* Reusable per-caller buffers of ek_tokenizer_encode_w (one thread at a
 * time, like the ek_ctx that keeps one): with one, a call allocates nothing
 * once its buffers have grown to the input's size. */
typedef struct ek_tok_work ek_tok_work;
ek_tok_work *ek_tok_work_new(void); /* NULL when out of memory */
void ek_tok_work_free(ek_tok_work *w);

/* ek_tokenizer_encode with the caller's buffers (work NULL: its own). */
int ek_tokenizer_encode_w(const ek_tokenizer *t, const char *a, size_t alen,
                          const char *b, size_t blen, const ek_tok_opts *o,
                          ek_encoding *enc, ek_tok_work *work, ek_err *e);

size_t ek_tokenizer_vocab_size(const ek_tokenizer *t);
int32_t ek_tokenizer_token_id(const ek_tokenizer *t, const char *tok); /* -1 */
const char *ek_tokenizer_id_token(const ek_tokenizer *t, int32_t id);  /* NULL */
/* Number of special tokens the template adds: 2 for a single text, 3 pair. */
int ek_tokenizer_num_special(const ek_tokenizer *t, int pair);
/* Truncation max_length from tokenizer.json's "truncation" (0 if none). */
size_t ek_tokenizer_json_max_length(const ek_tokenizer *t);
/* model_max_length from tokenizer_config.json (0 if absent). */
size_t ek_tokenizer_config_max_length(const ek_tokenizer *t);

#endif
