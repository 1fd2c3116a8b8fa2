/* text/unicode.h — the character properties the tokenizer needs, exactly as
 * Hugging Face `tokenizers` sees them (see unicode.c and hf_compat_table.c),
 * plus strict UTF-8 decoding. */
#ifndef EK_TEXT_UNICODE_H
#define EK_TEXT_UNICODE_H

#include <stddef.h>
#include <stdint.h>

typedef struct ek_cp_range { uint32_t lo, hi; } ek_cp_range;
typedef struct ek_cp_override { uint32_t cp; int n; uint32_t to[4]; } ek_cp_override;

/* Generated tables (hf_compat_table.c). */
extern const ek_cp_range ek_hf_removed[], ek_hf_clean_space[], ek_hf_split_space[],
    ek_hf_punct[], ek_hf_cjk[], ek_hf_mn[], ek_hf_ccc_zero[], ek_hf_word[];
extern const size_t ek_hf_removed_n, ek_hf_clean_space_n, ek_hf_split_space_n,
    ek_hf_punct_n, ek_hf_cjk_n, ek_hf_mn_n, ek_hf_ccc_zero_n, ek_hf_word_n;
extern const ek_cp_override ek_hf_lower_over[], ek_hf_nfd_over[];
extern const size_t ek_hf_lower_over_n, ek_hf_nfd_over_n;

/* 1 if cp lies in one of the n sorted ranges r. */
int ek_in_ranges(const ek_cp_range *r, size_t n, uint32_t cp);

/* Class bits of one code point. */
enum {
    EK_CC_REMOVED = 1,     /* clean_text drops it */
    EK_CC_CLEAN_SPACE = 2, /* clean_text maps it to ' ' */
    EK_CC_SPLIT_SPACE = 4, /* pre-tokenizer whitespace */
    EK_CC_PUNCT = 8,       /* pre-tokenizer punctuation */
    EK_CC_CJK = 16,        /* handle_chinese_chars */
    EK_CC_MN = 32,         /* strip_accents drops it */
    EK_CC_LOWER = 64,      /* lowercase changes it */
    EK_CC_DECOMP = 128     /* NFD changes it */
};

/* Classes of cp computed from the tables and utf8proc (slowish: the tokenizer
 * caches the BMP at load time). */
unsigned ek_cp_class(uint32_t cp);
/* HF lowercase (Rust char::to_lowercase): writes 1..3 code points. */
int ek_cp_lower(uint32_t cp, uint32_t out[3]);
/* HF NFD of one code point (no reordering): writes 1..4 code points. */
int ek_cp_nfd(uint32_t cp, uint32_t out[4]);
/* Canonical combining class (for NFD reordering). */
int ek_cp_ccc(uint32_t cp);
/* Python str.lower() of a whole string (full lowercase with Final_Sigma):
 * in[0..n) -> out (capacity 3 * n). Returns the output length. */
size_t ek_py_lower(const uint32_t *in, size_t n, uint32_t *out);

/* Strict UTF-8 decoding (no overlongs, no surrogates, <= U+10FFFF) of s[0..len)
 * into out (capacity len).  Returns the code point count, or -1 with *bad set
 * to the byte offset of the first invalid sequence. */
long ek_utf8_decode(const char *s, size_t len, uint32_t *out, size_t *bad);
/* Encodes cp into buf (4 bytes); returns the byte count. */
int ek_utf8_put(uint32_t cp, char *buf);

#endif
