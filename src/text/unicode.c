/* text/unicode.c — character properties as Hugging Face `tokenizers` sees
 * them, and strict UTF-8 decoding.
 *
 * Classes (control, whitespace, punctuation, CJK, Mn) come from the generated
 * hf_compat_table.c, probed from the reference: HF takes them from frozen
 * old-Unicode tables, so current categories from utf8proc would disagree on
 * hundreds of code points (see tools/ref/make_hf_compat_table.py).  utf8proc
 * supplies lowercase mappings, NFD decompositions and combining classes, with
 * the generated overrides where HF's Rust libraries disagree with it
 * (e.g. U+0130 lowercases to "i\u0307" in Rust, to "i" in utf8proc). */
#include "text/unicode.h"

#include <utf8proc.h>

int ek_in_ranges(const ek_cp_range *r, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < r[mid].lo) hi = mid;
        else if (cp > r[mid].hi) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static const ek_cp_override *find_over(const ek_cp_override *o, size_t n, uint32_t cp) {
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < o[mid].cp) hi = mid;
        else if (cp > o[mid].cp) lo = mid + 1;
        else return &o[mid];
    }
    return NULL;
}

int ek_cp_lower(uint32_t cp, uint32_t out[3]) {
    if (cp < 128) {
        out[0] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        return 1;
    }
    const ek_cp_override *o = find_over(ek_hf_lower_over, ek_hf_lower_over_n, cp);
    if (o) {
        for (int i = 0; i < o->n; i++) out[i] = o->to[i];
        return o->n;
    }
    out[0] = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
    return 1;
}

int ek_cp_nfd(uint32_t cp, uint32_t out[4]) {
    if (cp < 0xC0) {
        out[0] = cp;
        return 1;
    }
    const ek_cp_override *o = find_over(ek_hf_nfd_over, ek_hf_nfd_over_n, cp);
    if (o) {
        for (int i = 0; i < o->n; i++) out[i] = o->to[i];
        return o->n;
    }
    utf8proc_int32_t buf[8];
    int last = 0;
    utf8proc_ssize_t n = utf8proc_decompose_char((utf8proc_int32_t)cp, buf, 8,
                                                 UTF8PROC_DECOMPOSE, &last);
    /* Canonical decompositions are at most 4 code points long. */
    if (n < 1 || n > 4) {
        out[0] = cp;
        return 1;
    }
    for (utf8proc_ssize_t i = 0; i < n; i++) out[i] = (uint32_t)buf[i];
    return (int)n;
}

int ek_cp_ccc(uint32_t cp) {
    if (cp < 0x300) return 0;
    int cc = utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
    /* Marks newer than HF's NFD tables are starters (class 0) there, so HF
     * does not reorder them. */
    if (cc && ek_in_ranges(ek_hf_ccc_zero, ek_hf_ccc_zero_n, cp)) return 0;
    return cc;
}

unsigned ek_cp_class(uint32_t cp) {
    unsigned c = 0;
    if (ek_in_ranges(ek_hf_removed, ek_hf_removed_n, cp)) c |= EK_CC_REMOVED;
    if (ek_in_ranges(ek_hf_clean_space, ek_hf_clean_space_n, cp)) c |= EK_CC_CLEAN_SPACE;
    if (ek_in_ranges(ek_hf_split_space, ek_hf_split_space_n, cp)) c |= EK_CC_SPLIT_SPACE;
    if (ek_in_ranges(ek_hf_punct, ek_hf_punct_n, cp)) c |= EK_CC_PUNCT;
    if (ek_in_ranges(ek_hf_cjk, ek_hf_cjk_n, cp)) c |= EK_CC_CJK;
    if (ek_in_ranges(ek_hf_mn, ek_hf_mn_n, cp)) c |= EK_CC_MN;
    uint32_t tmp[4];
    if (ek_cp_lower(cp, tmp) != 1 || tmp[0] != cp) c |= EK_CC_LOWER;
    if (ek_cp_nfd(cp, tmp) != 1 || tmp[0] != cp) c |= EK_CC_DECOMP;
    return c;
}

/* ---- Python str.lower() ---------------------------------------------------
 * sentence-transformers' do_lower_case runs Python's str.lower() before the
 * tokenizer: full lowercase mapping (U+0130 -> i + U+0307) plus the
 * Final_Sigma rule (capital sigma after a cased letter and not before one
 * becomes U+03C2).  Cased / Case_Ignorable are approximated from utf8proc's
 * categories and case mappings (the derived properties are not exposed). */

static int is_cased(uint32_t cp) {
    const utf8proc_property_t *p = utf8proc_get_property((utf8proc_int32_t)cp);
    if (p->category == UTF8PROC_CATEGORY_LU || p->category == UTF8PROC_CATEGORY_LL ||
        p->category == UTF8PROC_CATEGORY_LT)
        return 1;
    return utf8proc_tolower((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp ||
           utf8proc_toupper((utf8proc_int32_t)cp) != (utf8proc_int32_t)cp;
}

static int is_case_ignorable(uint32_t cp) {
    switch (cp) { /* Word_Break MidLetter, MidNumLet, Single_Quote */
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
    case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
    case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
        return 1;
    default: break;
    }
    if (cp < 0x80) return cp == '^' || cp == '`';
    int cat = utf8proc_category((utf8proc_int32_t)cp);
    return cat == UTF8PROC_CATEGORY_MN || cat == UTF8PROC_CATEGORY_ME ||
           cat == UTF8PROC_CATEGORY_CF || cat == UTF8PROC_CATEGORY_LM ||
           cat == UTF8PROC_CATEGORY_SK;
}

static int final_sigma(const uint32_t *in, size_t n, size_t i) {
    size_t j = i;
    while (j > 0 && is_case_ignorable(in[j - 1])) j--;
    if (j == 0 || !is_cased(in[j - 1])) return 0;
    j = i + 1;
    while (j < n && is_case_ignorable(in[j])) j++;
    return j == n || !is_cased(in[j]);
}

size_t ek_py_lower(const uint32_t *in, size_t n, uint32_t *out) {
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t cp = in[i];
        if (cp < 128) {
            out[o++] = (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
        } else if (cp == 0x3A3) {
            out[o++] = final_sigma(in, n, i) ? 0x3C2 : 0x3C3;
        } else {
            o += (size_t)ek_cp_lower(cp, out + o);
        }
    }
    return o;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

long ek_utf8_decode(const char *str, size_t len, uint32_t *out, size_t *bad) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0, n = 0;
    while (i < len) {
        unsigned c = s[i];
        if (c < 0x80) {
            out[n++] = c;
            i++;
            continue;
        }
        int k;
        uint32_t cp, min;
        if (c >= 0xC2 && c <= 0xDF) { k = 1; cp = c & 0x1F; min = 0x80; }
        else if (c >= 0xE0 && c <= 0xEF) { k = 2; cp = c & 0x0F; min = 0x800; }
        else if (c >= 0xF0 && c <= 0xF4) { k = 3; cp = c & 0x07; min = 0x10000; }
        else { *bad = i; return -1; }
        if (len - i <= (size_t)k) { /* truncated sequence at the end */
            *bad = i;
            return -1;
        }
        for (int j = 1; j <= k; j++) {
            if ((s[i + j] & 0xC0) != 0x80) { *bad = i; return -1; }
            cp = (cp << 6) | (s[i + j] & 0x3F);
        }
        if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
            *bad = i;
            return -1;
        }
        out[n++] = cp;
        i += (size_t)k + 1;
    }
    return (long)n;
}

int ek_utf8_put(uint32_t cp, char *b) {
    if (cp < 0x80) { b[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        b[0] = (char)(0xC0 | (cp >> 6));
        b[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        b[0] = (char)(0xE0 | (cp >> 12));
        b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    b[0] = (char)(0xF0 | (cp >> 18));
    b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    b[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    b[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
