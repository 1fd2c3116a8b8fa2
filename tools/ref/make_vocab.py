#!/usr/bin/env python3
"""Builds the WordPiece vocabulary of embedkit's generated models with the
Hugging Face `tokenizers` package (its WordPiece trainer), so the
tokenizer.json every generated model ships is made by the reference
implementation itself, not by embedkit.

Corpus: the docstrings and comments of this Python's standard library (English
technical prose, present on every machine with Python), plus a fixed
multilingual sample.  The alphabet is seeded with Latin, Greek, Cyrillic, CJK,
kana, Hangul and a few emoji so such text tokenizes to pieces, not all [UNK].
The output is committed (models/vocab/); rerun only to change the vocabulary:

    /path/to/venv/bin/python tools/ref/make_vocab.py models/vocab
"""
import io
import json
import os
import sys
import sysconfig
import tokenize

from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

VOCAB_SIZE = 30522  # bert-base-uncased / all-MiniLM-L6-v2


def stdlib_text():
    root = sysconfig.get_paths()["stdlib"]
    files = []
    for d, subdirs, names in os.walk(root):
        subdirs[:] = sorted(s for s in subdirs if s not in ("site-packages", "test", "tests", "idlelib"))
        files += [os.path.join(d, n) for n in sorted(names) if n.endswith(".py")]
    for path in files:
        try:
            with open(path, "rb") as f:
                toks = list(tokenize.tokenize(io.BytesIO(f.read()).readline))
        except (SyntaxError, tokenize.TokenError, UnicodeDecodeError, OSError):
            continue
        for t in toks:
            if t.type == tokenize.COMMENT:
                yield t.string.lstrip("# ")
            elif t.type == tokenize.STRING and t.string.startswith(('"""', "'''")):
                yield t.string.strip("\"'")


MULTI = [
    "Le café est très bon à Paris, où l'été est chaud.",
    "Straße, Grüße und Übermaß: schöne Größe.",
    "El niño comió piña en España y Perú.",
    "Привет, как дела? Москва и Санкт-Петербург.",
    "Καλημέρα κόσμε, η Ελλάδα είναι όμορφη.",
    "我们喜欢学习中文和机器学习。北京是中国的首都。",
    "日本語のテキストとひらがな、カタカナ。東京へ行きます。",
    "한국어 문장도 포함됩니다. 서울은 큰 도시입니다.",
]


def alphabet():
    chars = set()
    for lo, hi in [(0x21, 0x7E), (0xA1, 0x17F), (0x391, 0x3C9), (0x410, 0x44F),
                   (0x3041, 0x3096), (0x30A1, 0x30FA), (0x4E00, 0x4FFF), (0xAC00, 0xAC80)]:
        chars.update(chr(c) for c in range(lo, hi + 1))
    chars.update("😀😂👍🎉❤✓€£¥©®°±×÷")
    return sorted(chars)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "models/vocab"
    os.makedirs(out, exist_ok=True)
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]", continuing_subword_prefix="##",
                                     max_input_chars_per_word=100))
    tok.normalizer = normalizers.BertNormalizer(clean_text=True, handle_chinese_chars=True,
                                                strip_accents=None, lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    trainer = trainers.WordPieceTrainer(vocab_size=VOCAB_SIZE, min_frequency=1,
                                        special_tokens=special, initial_alphabet=alphabet(),
                                        limit_alphabet=100000,
                                        continuing_subword_prefix="##")
    corpus = list(stdlib_text()) + MULTI * 50
    tok.train_from_iterator(corpus, trainer=trainer)
    vocab = tok.get_vocab()
    # Pad to exactly VOCAB_SIZE with unused tokens, as BERT vocabularies do.
    i = 0
    while len(vocab) < VOCAB_SIZE:
        t = "[unused%d]" % i
        i += 1
        if t not in vocab:
            vocab[t] = len(vocab)
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    assert [v for _, v in ordered] == list(range(len(ordered))), "ids not dense"
    with open(os.path.join(out, "vocab.txt"), "w", encoding="utf-8") as f:
        for t, _ in ordered:
            f.write(t + "\n")
    # Rebuild the tokenizer from the final vocab.txt so tokenizer.json and
    # vocab.txt agree exactly, with the post-processor BERT models ship.
    final = Tokenizer(models.WordPiece.from_file(os.path.join(out, "vocab.txt"), unk_token="[UNK]",
                                                 max_input_chars_per_word=100))
    final.normalizer = tok.normalizer
    final.pre_tokenizer = tok.pre_tokenizer
    cls, sep = final.token_to_id("[CLS]"), final.token_to_id("[SEP]")
    final.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    final.decoder = decoders.WordPiece(prefix="##")
    for t in special:
        final.add_special_tokens([t])
    final.save(os.path.join(out, "tokenizer.json"))
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": True, "model_max_length": 512, "tokenizer_class": "BertTokenizer",
                   "unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]", "strip_accents": None,
                   "tokenize_chinese_chars": True}, f, indent=2)
    with open(os.path.join(out, "special_tokens_map.json"), "w") as f:
        json.dump({"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                   "cls_token": "[CLS]", "mask_token": "[MASK]"}, f, indent=2)
    print("vocab:", len(ordered), "tokens ->", out)


if __name__ == "__main__":
    main()
