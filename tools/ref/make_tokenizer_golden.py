#!/usr/bin/env python3
"""Writes the tokenizer parity golden files (tests/golden/tokenizer/) with the
Hugging Face `tokenizers` package, the reference embedkit's tokenizer must
match id for id and offset for offset.

    /work/refenv/bin/python tools/ref/make_tokenizer_golden.py [repo_root] [--no-unicode]

(--no-unicode keeps the existing unicode_blocks.json, which takes ~1 min.)

Outputs (small, committed; tests/test_tokenizer.c reads them):
  corpus.json        the inputs: text (or hex of the UTF-8 bytes when the text
                     holds a NUL), optional pair, max_length, truncation side,
                     add_special_tokens, lowercase_input.
  <variant>.json     one per tokenizer variant: "patch" = the variant's
                     tokenizer.json minus model.vocab (the vocabulary is that of
                     models/vocab/tokenizer.json; the test splices it back in),
                     and "expected" = per case ids, type_ids and flat offsets
                     [s0, e0, s1, e1, ...] in code points of the original text,
                     exactly as the Python binding reports them.
  unicode_blocks.json  exhaustive per-code-point check: for every block of 4096
                     code points, an FNV-1a hash of what HF's BertNormalizer
                     (four single-feature configurations) and BertPreTokenizer
                     make of each code point alone.

Every case is encoded with each variant; truncation uses
enable_truncation(max_length, direction=...) (strategy longest_first, HF's
default, as sentence-transformers uses).  lowercase_input cases encode
text.lower() (sentence-transformers' do_lower_case) and their offsets refer to
the lowered text.
"""
import json
import os
import random
import sys

from tokenizers import AddedToken, Tokenizer, normalizers, pre_tokenizers, processors

ROOT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(os.path.dirname(__file__), "..", "..")
OUT = os.path.join(ROOT, "tests", "golden", "tokenizer")
BASE = os.path.join(ROOT, "models", "vocab", "tokenizer.json")


def bert_norm(**kw):
    args = dict(clean_text=True, handle_chinese_chars=True, strip_accents=None, lowercase=True)
    args.update(kw)
    return normalizers.BertNormalizer(**args)


def variant_tokenizers():
    def base():
        return Tokenizer.from_file(BASE)

    v = {}
    v["uncased"] = base()
    t = base(); t.normalizer = bert_norm(lowercase=False, strip_accents=False); v["cased"] = t
    t = base(); t.normalizer = bert_norm(lowercase=True, strip_accents=False); v["lower_nostrip"] = t
    t = base(); t.normalizer = bert_norm(lowercase=False, strip_accents=True); v["strip_only"] = t
    t = base(); t.normalizer = bert_norm(handle_chinese_chars=False); v["no_chinese"] = t
    t = base(); t.normalizer = bert_norm(clean_text=False); v["no_clean"] = t
    t = base(); t.post_processor = processors.BertProcessing(("[SEP]", 3), ("[CLS]", 2)); v["bert_processing"] = t
    t = base(); t.model.max_input_chars_per_word = 8; v["max_chars_8"] = t
    # Added tokens beyond the vocabulary: a special one with lstrip/rstrip
    # (RoBERTa's <mask> style) and a normalized, non-special one that is
    # matched in the normalized text.
    t = base()
    t.add_special_tokens([AddedToken("<MASK2>", lstrip=True, rstrip=True, normalized=False)])
    t.add_tokens([AddedToken("Hello World", normalized=True), AddedToken("naïve", normalized=True),
                  AddedToken("wordy", single_word=True, normalized=False)])
    v["added_tokens"] = t
    return v


def corpus():
    c = []

    def add(text, pair=None, max_length=0, side="right", special=True, lower=False):
        c.append(dict(text=text, pair=pair, max_length=max_length, truncate=side,
                      add_special_tokens=special, lowercase_input=lower))

    prose = [
        "The quick brown fox jumps over the lazy dog.",
        "Hello, world! This is embedkit's tokenizer test; it must match HF exactly.",
        "Sentence-transformers maps sentences & paragraphs to a 384-dimensional dense vector space.",
        "Don't stop—it's 3.14159, or ~22/7 (approximately). E-mail: a.b@c.org; URL https://x.y/z?q=1&r=2#f",
        "Numbers: 1,234,567.89 and 0x1F and 2024-05-17T12:34:56Z and 1e-9.",
        "Punctuation runs!!!??? ...--- ((([[[{{{<<<>>>}}}]]]))) \"quoted\" 'single' `back`",
        "$100 + 50% = ^_^ | ~tilde~ \\backslash\\ @at #hash *star* =eq= _under_",
        "Café, naïve, résumé, façade, Zürich, Ångström, São Paulo, Dvořák, Łódź.",
        "ÀÁÂÃÄÅ àáâãäå ÈÉÊË èéêë Ñ ñ Ç ç Œ œ Æ æ Ø ø",
        "Combining: e\u0301 a\u0308 o\u0302\u0323 n\u0303 x\u0300\u0301\u0302\u0303 a\u0301\u0316 \u0301start",
        "中文分词测试：我爱北京天安门。",
        "日本語のテキスト、ひらがなとカタカナ。漢字も。",
        "한국어 텍스트입니다. 안녕하세요!",
        "混合mixed文本text和123数字",
        "Emoji: 😀 😂 👍 🥰 🫨 🫠 🪿 🩷 ❤️ ✨",
        "ZWJ: 👨\u200d👩\u200d👧\u200d👦 👩🏽\u200d💻 🏳️\u200d🌈 skin 👍🏿",
        "Control\x01chars\x07here\x1b[0m and\x7fdel \x85nel",
        "zero\u200bwidth\u200cnon\u200djoiner\u2060word\ufeffbom",
        "soft\u00adhyphen and bidi \u202aLRE\u202c \u200eLRM\u200f",
        "Windows\r\nline\r\nends\rand\nunix\n\ttab\tseparated\t\tvalues",
        "NBSP\u00a0here, thin\u2009space, em\u2003space, ideographic\u3000space, nnbsp\u202fx, line\u2028sep, para\u2029sep",
        "vertical\x0btab form\x0cfeed file\x1csep unit\x1fsep",
        "Turkish İstanbul İI ıi, German Straße STRASSE ß ẞ",
        "Greek ΣΊΣΥΦΟΣ σίσυφος ΟΔΥΣΣΕΥΣ ς final sigma ΌΣΟΣ.",
        "Fullwidth ＡＢＣ ａｂｃ １２３ ！？（）",
        "Math ∑∫∂√∞≈≠≤≥ ∀x∈ℝ: x²≥0 ⊕⊗ 𝔸𝕓𝒞 ½ ¾ ⅓",
        "Ligatures ﬁ ﬂ ﬀ, Roman Ⅻ ⅻ, circled ① ⓐ, superscript ⁵ ₂",
        "Arabic مرحبا بالعالم، Hebrew שלום עולם, Hindi नमस्ते दुनिया",
        "Thai สวัสดีชาวโลก Cyrillic Привет, мир! ЁЛКА ёлка",
        "Private use \ue000\uf8ff and replacement \ufffd char and noncharacter \ufdd0 and unassigned \u0378",
        "Tags \U000e0067\U000e0062 flag 🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f plane16 \U00100000",
        "CJK ext B 𠀀𠀁 ext G \U00030000 compat \uf900 ext E \U0002b820\U0002b81f\U0002b920 radicals ⺀ ㊀",
        "Reorder: x \u0316\U0001e130\u0323\u00df a\u0301\u0316\u0f73b \u0f71\u0f80\u0f72c \U0001d165\u0301\U0001d16d\u0316d",
        "Mn not strip: \u0f73 \u0344 \u1d165\U0001d165\U0001d16d\U0001d172 Dives \U00011938 x",
        "newer punctuation \u2e43\u2e4f\u2e52\u2e5d and \u061d\u166d\u0c77 sign",
        "Lowercase new \u1c89\ua7cb\ua7dc\U00010d50 and \u0130 ligature",
        "SUPERCALIFRAGILISTICEXPIALIDOCIOUS antidisestablishmentarianism pneumonoultramicroscopicsilicovolcanoconiosis",
        "a" * 100 + " " + "b" * 101 + " " + "é" * 101 + " end",
        "x" * 99 + "é" + " ok",
        "unaffable unbelievable tokenization embeddings transformers",
        "[CLS] special [SEP] tokens [MASK] inside [PAD] text [UNK] and [cls] lower [CLS][SEP]",
        "<MASK2> added <MASK2>tokens   <MASK2>   spaced, Hello World and hello world, naïve NAÏVE",
        "wordy wordyness awordy wordy. wordy_x 9wordy éwordy wordyé (wordy) 中wordy \u0316wordy \u0f74wordy \u2160wordy wordy",
        "",
        "   ",
        " \t\n\r ",
        "\u00a0\u3000\u2003",
        "a",
        ".",
        "!!!",
        "\x00",
        "NUL\x00in\x00the\x00middle",
        "\x00\x00leading and trailing\x00",
        "\ufffd\ufffd",
        "MiXeD CaSe WoRdS and ALLCAPS and lowercase",
        "Hyphen-ated words, under_scores, and.dotted.names; C++ / C# / F#",
        "email@example.com http://www.example.com/path/to/page.html?x=1",
        "It's a 'test' of \"quotes\" «guillemets» „German“ ‘curly’ “double” ‹single›",
        "Dashes – — ‐ ‑ ‒ ― and ellipsis … and bullets • ‣ ◦",
        "Currency € £ ¥ ₹ ₽ ₩ ¢ and degrees 25°C",
    ]
    for s in prose:
        add(s)
    # A longer English paragraph (tokens > 128).
    para = ("Natural language processing enables computers to understand human language. "
            "Embedding models map each sentence to a vector so that similar meanings are close. ") * 6
    add(para)
    # Deterministic fuzz over an alphabet covering every character class.
    alphabet = ("abcXYZ019 .,;!?-'\"()[]{}#@&*/\\ \t\n\r\x00\x01\x7f\u00a0\u00ad\u00e9\u00df\u0130\u0131\u03a3\u03c2"
                "\u0301\u0308\u0316\u200b\u200d\u2028\u3000\u4e2d\u6587\u3042\u30ab\ud55c\uac00\uff21\uff01"
                "\u2212\u00bd\u2160\ufb01\ufffd\ue000\u0378\u2e52\u061d\U0001f600\U0001f970\U0001fae8"
                "\U00020000\U0002b820\U00011938\U0001d165\u1c89\ua7cb")
    rng = random.Random(1234)
    for i in range(40):
        n = rng.randint(1, 40)
        add("".join(rng.choice(alphabet) for _ in range(n)))
    # Pairs.
    add("How old are you?", "I am 6 years old.")
    add("Café au lait", "中文 text with emoji 😀")
    add("", "only the second segment")
    add("only the first", "")
    add("[SEP] inside first", "and [CLS] in second")
    # Truncation, single and pairs, right and left.
    long_a = "one two three four five six seven eight nine ten eleven twelve"
    long_b = "alpha beta gamma delta epsilon"
    for ml in (1, 2, 3, 4, 5, 7, 10, 16):
        for side in ("right", "left"):
            add(long_a, None, ml, side)
            add(long_a, long_b, ml, side)
            add(long_b, long_a, ml, side)
    add("tokenization embeddings unaffable", None, 6, "right")
    add("tokenization embeddings unaffable", None, 6, "left")
    add(para, None, 128, "right")
    add(para, "short pair", 64, "left")
    add("a b", "c d", 6, "right")
    # Without special tokens.
    add("no special tokens here", None, 0, "right", False)
    add("pair without", "special tokens", 0, "right", False)
    add("truncated without special tokens at all", "x y z", 4, "left", False)
    # sentence-transformers' do_lower_case: str.lower() before tokenizing.
    for s in ("Hello WORLD", "İstanbul ΣΊΣΥΦΟΣ ΌΣΟΣ. Σ", "STRASSE ẞ Ǆ ǅ ᾈ", "[CLS] Mixed [SEP]", "ΑΣ, ΑΣ1 Σ΄Σ"):
        add(s, None, 0, "right", True, True)
    add("PAIR One", "PAIR Two", 0, "right", True, True)
    return c


def encode_case(tok, case):
    if case["max_length"]:
        tok.enable_truncation(case["max_length"], direction=case["truncate"])
    else:
        tok.no_truncation()
    text, pair = case["text"], case["pair"]
    if case["lowercase_input"]:
        text = text.lower()
        pair = pair.lower() if pair is not None else None
    e = tok.encode(text, pair, add_special_tokens=case["add_special_tokens"])
    offs = [x for o in e.offsets for x in o]
    return dict(ids=e.ids, type_ids=e.type_ids, offsets=offs)


def fnv(h, v):
    for k in range(4):
        h ^= (v >> (8 * k)) & 0xFF
        h = (h * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def unicode_blocks():
    """Per block of 4096 code points: hash of each code point's normalized
    form (4 configs) and pre-tokenizer class (0 word, 1 whitespace, 2 punct)."""
    cfgs = {
        "clean": bert_norm(clean_text=True, handle_chinese_chars=False, strip_accents=False, lowercase=False),
        "chinese": bert_norm(clean_text=False, handle_chinese_chars=True, strip_accents=False, lowercase=False),
        "strip": bert_norm(clean_text=False, handle_chinese_chars=False, strip_accents=True, lowercase=False),
        "lower": bert_norm(clean_text=False, handle_chinese_chars=False, strip_accents=False, lowercase=True),
    }
    pt = pre_tokenizers.BertPreTokenizer()
    out = {k: [] for k in list(cfgs) + ["pretok"]}
    for block in range(0x110000 // 4096):
        hs = {k: 0xCBF29CE484222325 for k in out}
        for cp in range(block * 4096, block * 4096 + 4096):
            if 0xD800 <= cp <= 0xDFFF:
                continue
            ch = chr(cp)
            for k, n in cfgs.items():
                for x in n.normalize_str(ch):
                    hs[k] = fnv(hs[k], ord(x))
                hs[k] = fnv(hs[k], 0xFFFFFFFF)
            parts = len(pt.pre_tokenize_str("a" + ch + "a"))
            hs["pretok"] = fnv(hs["pretok"], {1: 0, 2: 1, 3: 2}[parts])
        for k in out:
            out[k].append("%016x" % hs[k])
    return out


def main():
    os.makedirs(OUT, exist_ok=True)
    cases = corpus()
    jc = []
    for c in cases:
        d = dict(c)
        if "\x00" in c["text"] or (c["pair"] and "\x00" in c["pair"]):
            d["text_hex"] = c["text"].encode().hex()
            del d["text"]
        jc.append(d)
    with open(os.path.join(OUT, "corpus.json"), "w", encoding="utf-8") as f:
        json.dump(dict(cases=jc), f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    for name, tok in variant_tokenizers().items():
        spec = json.loads(tok.to_str())
        spec["truncation"] = None
        del spec["model"]["vocab"]
        exp = [encode_case(tok, c) for c in cases]
        with open(os.path.join(OUT, name + ".json"), "w", encoding="utf-8") as f:
            f.write('{"variant":%s,"patch":%s,"expected":[\n' % (json.dumps(name), json.dumps(spec, ensure_ascii=False)))
            f.write(",\n".join(json.dumps(e, separators=(",", ":")) for e in exp))
            f.write("\n]}\n")
    if "--no-unicode" not in sys.argv:
        with open(os.path.join(OUT, "unicode_blocks.json"), "w") as f:
            json.dump(unicode_blocks(), f, separators=(",", ":"))
            f.write("\n")
    print("wrote %d cases x %d variants to %s" % (len(cases), len(variant_tokenizers()), OUT))


if __name__ == "__main__":
    main()
