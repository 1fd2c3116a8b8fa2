#!/usr/bin/env python3
"""Makes tests/golden/embeddings/*.json: what sentence-transformers itself
outputs for embedkit's generated test models.

    /work/refenv/bin/python tools/ref/make_golden_embeddings.py BUILD/ek-genmodel \
        [--out tests/golden/embeddings] [--models DIR]

It runs tools/make_test_models.sh (the one list of test models) into a
scratch directory, reads each model's generator arguments back from its
stamp, loads the model with SentenceTransformer(DIR, device="cpu") and
encodes a fixed corpus with encode(batch_size=16).  Every golden file holds
the generator arguments, a fingerprint of the weight files, the library
versions, the texts, the token counts and the expected embeddings, so
tests/test_parity.c needs nothing but the file and the generated model.

Besides the goldens it checks the generated models against the reference
stack (and fails loudly if something is off): the module pipeline
sentence-transformers builds from each directory, that it loaded exactly the
weights in the files, that tokenizer.json loads with `tokenizers` and agrees
with the transformers tokenizer, that generation is byte-for-byte
deterministic, that f16/bf16 files are the round-to-nearest-even of the f32
weights, and that the storage variants of tiny-mean embed identically.

Not needed by `make test`: the outputs are committed.
"""
import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

import numpy as np
import safetensors
import safetensors.torch
import sentence_transformers
import tokenizers
import torch
import transformers
from sentence_transformers import SentenceTransformer

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

LONG_EN = (
    "Embedding models map a sentence to a vector so that sentences with similar meaning lie close "
    "together. A production engine has to tokenize exactly like the reference, truncate long inputs "
    "instead of failing, pool the token states with the configured strategy, apply the dense "
    "projection and the normalisation, and return the same numbers whatever the batch looks like. "
) * 5
LONG_MIXED = (
    "Ceci est un texte assez long, avec des accents: é è ê ë à ç ù. "
    "这是一个很长的中文句子，用于测试截断。 "
    "Это длинный текст на русском языке. "
    "Numbers 1234567890, symbols #$%&*, and emoji 🚀✨. "
) * 12

# The corpus: short and long (over every max_seq_length, so truncation
# happens), accents, CJK, emoji, empty, whitespace only, punctuation,
# control characters, a word longer than WordPiece's 100-character limit.
TEXTS = [
    "",
    "   \t \n  ",
    "Hello world!",
    "A man is eating food.",
    "The quick brown fox jumps over the lazy dog.",
    "Café, naïve, résumé, Ångström and façade.",
    "Straße, Grüße und ÜBERMASS: schöne Größe.",
    "我们喜欢学习中文和机器学习。",
    "日本語のテキストとひらがな、カタカナ。",
    "한국어 문장도 포함됩니다.",
    "Привет, как дела? Καλημέρα κόσμε.",
    "Emoji test 😀🎉👍🏽 and ❤️ hearts",
    "!!! ??? ... ;;; ,,, --- ((( )))",
    "$100 + 20% = 'deal'? #tag @user <b>bold</b> [x] {y} ~z ^ `code` | \\ /",
    "e-mail: someone@example.com, URL: https://example.org/path?q=1&r=2",
    "Numbers 3.14159 2,718 1e-10 0x1F and the 42nd time",
    "UPPERCASE MiXeD cAsE words",
    "Supercalifragilisticexpialidocious " + "x" * 105 + " pneumonoultramicroscopic",
    "Tab\tseparated\tvalues\nand new\r\nlines",
    "bell\u0007 escape\u001b[0m zero\u200bwidth replacement\ufffd soft\u00adhyphen",
    "a",
    "Sentence embeddings are used for semantic search, clustering, deduplication and retrieval "
    "augmented generation, where a query is compared with many stored passages.",
    LONG_EN,
    LONG_MIXED,
]
MINILM_TEXTS = [0, 2, 5, 7, 11, 13, 22, 23]  # indices into TEXTS


def run(name, model, runs, texts=None):
    return {"name": name, "model": model, "runs": runs, "texts": texts}


DEFAULT_RUN = {"name": "default"}
# Which golden files to make: name, model directory, runs, texts.
GOLDENS = [
    run("default", "default", [DEFAULT_RUN], MINILM_TEXTS),
    run("tiny-cls", "tiny-cls", [DEFAULT_RUN]),
    run("tiny-mean", "tiny-mean", [DEFAULT_RUN]),
    run("tiny-max", "tiny-max", [DEFAULT_RUN]),
    run("tiny-mean-sqrt", "tiny-mean-sqrt", [DEFAULT_RUN]),
    run("tiny-weightedmean", "tiny-weightedmean", [DEFAULT_RUN]),
    run("tiny-lasttoken", "tiny-lasttoken", [DEFAULT_RUN]),
    run("tiny-dense", "tiny-dense", [DEFAULT_RUN]),
    run("tiny-nonorm", "tiny-nonorm", [DEFAULT_RUN]),
    run("tiny-mean-max", "tiny-mean-max", [DEFAULT_RUN]),
    run("tiny-f16", "tiny-f16", [DEFAULT_RUN]),
    run("tiny-bf16", "tiny-bf16", [DEFAULT_RUN]),
    run("tiny-sharded", "tiny-sharded", [DEFAULT_RUN]),
    run("tiny-bert-prefix", "tiny-bert-prefix", [DEFAULT_RUN]),
    run("tiny-no-tokjson", "tiny-no-tokjson", [DEFAULT_RUN]),
    run("tiny-prompt", "tiny-prompt",
        [{"name": "query", "prompt_name": "query"}, {"name": "passage", "prompt_name": "passage"},
         {"name": "no-prompt"}]),
    run("tiny-prompt-multi", "tiny-prompt-multi", [{"name": "query", "prompt_name": "query"}]),
    run("tiny-maxlen", "tiny-maxlen", [DEFAULT_RUN]),
    run("tiny-st6", "tiny-st6", [DEFAULT_RUN]),
    run("tiny-mean-matryoshka16", "tiny-mean", [{"name": "dimensions-16", "dimensions": 16}]),
    run("tiny-mean-attention", "tiny-mean", [{"name": "attention", "pooling": "attention"}]),
]


def fail(msg):
    sys.exit("make_golden_embeddings: " + msg)


def fingerprint(path):
    """Cheap weight-file fingerprint tests/test_parity.c recomputes: the sum of
    (2i+1) * w[i] modulo 2^64 over the file's little-endian uint32 words w
    (zero-padded), as 16 hex digits.  Tells a changed generator apart from a
    broken engine when parity fails."""
    data = open(path, "rb").read()
    data += b"\0" * (-len(data) % 4)
    w = np.frombuffer(data, dtype="<u4").astype(np.uint64)
    k = np.arange(len(w), dtype=np.uint64) * np.uint64(2) + np.uint64(1)
    with np.errstate(over="ignore"):
        return "%016x" % int(np.sum(w * k, dtype=np.uint64))


def weight_files(d):
    out = []
    for root, _, names in os.walk(d):
        for n in sorted(names):
            if n.endswith(".safetensors"):
                out.append(os.path.relpath(os.path.join(root, n), d))
    return sorted(out)


def load_st(d):
    # embedkit computes in f32 whatever the stored dtype; transformers 5 would
    # otherwise keep f16 / bf16 weights in their own type ("auto").
    return SentenceTransformer(d, device="cpu", model_kwargs={"dtype": torch.float32})


def stamp_args(d):
    with open(os.path.join(d, ".genmodel-stamp"), encoding="utf8") as f:
        first = f.readline().rstrip("\n")
    assert first.startswith("args: "), first
    return first[len("args: "):]


def pipeline_summary(m):
    """The module chain sentence-transformers built, in plain terms."""
    mods = []
    for mod in m:
        kind = type(mod).__name__
        e = {"type": kind}
        if kind == "Pooling":
            pm = mod.pooling_mode
            e["pooling_mode"] = [pm] if isinstance(pm, str) else list(pm)
            e["include_prompt"] = bool(mod.include_prompt)
            e["embedding_dimension"] = mod.embedding_dimension
        elif kind == "Dense":
            e["in_features"], e["out_features"] = mod.in_features, mod.out_features
            e["activation_function"] = type(mod.activation_function).__name__
        mods.append(e)
    return mods


def check_loaded_weights(m, d):
    """Every transformer parameter ST holds equals the file's (as f32)."""
    file_w = {}
    for f in weight_files(d):
        if "/" in f:  # Dense folders
            continue
        for k, v in safetensors.torch.load_file(os.path.join(d, f)).items():
            file_w[k[len("bert."):] if k.startswith("bert.") else k] = v.float()
    sd = m[0].auto_model.state_dict()
    for k, v in sd.items():
        if k not in file_w:
            fail(f"{d}: parameter {k} not in the weight files")
        if v.shape != file_w[k].shape or not torch.equal(v.float(), file_w[k]):
            fail(f"{d}: parameter {k} differs from the file")
    if len(sd) != len(file_w):
        fail(f"{d}: {len(file_w)} tensors in the files, {len(sd)} parameters loaded")
    # Dense layers too.
    for mod, f in zip([x for x in m if type(x).__name__ == "Dense"],
                      [f for f in weight_files(d) if f.endswith("_Dense/model.safetensors")]):
        w = safetensors.torch.load_file(os.path.join(d, f))
        if not (torch.equal(mod.linear.weight.float(), w["linear.weight"].float())
                and torch.equal(mod.linear.bias.float(), w["linear.bias"].float())):
            fail(f"{d}: {f} not what the Dense module holds")


def check_tokenizer(m, d, texts):
    path = os.path.join(d, "tokenizer.json")
    if not os.path.exists(path):
        return
    tk = tokenizers.Tokenizer.from_file(path)
    for t in texts:
        a = tk.encode(t).ids
        b = m.tokenizer(t, verbose=False)["input_ids"]
        if a != b:
            fail(f"{d}: tokenizers and transformers disagree on {t!r}")


def f32(x):
    return float(np.format_float_positional(np.float32(x), unique=True, trim="0"))


def attention_pooling(d, m, texts):
    """EK_POOL_ATTENTION's reference: the last layer's attention of token 0
    over the sequence, averaged over heads and renormalised, weights a sum of
    the last hidden states, then L2 normalisation.  Computed per text (no
    padding) with transformers' eager attention."""
    bert = transformers.BertModel.from_pretrained(d, attn_implementation="eager", dtype=torch.float32)
    bert.eval()
    out = []
    with torch.no_grad():
        for t in texts:
            f = m.preprocess([t])
            o = bert(input_ids=f["input_ids"], attention_mask=f["attention_mask"],
                     token_type_ids=f.get("token_type_ids"), output_attentions=True)
            w = o.attentions[-1][0, :, 0, :].mean(0)
            w = w / w.sum()
            v = (w[:, None] * o.last_hidden_state[0]).sum(0)
            out.append(torch.nn.functional.normalize(v, dim=0).numpy())
            # The hidden states are the ones sentence-transformers pools.
            st_tok = m.encode([t], output_value="token_embeddings", convert_to_numpy=False)[0]
            if not np.allclose(st_tok.numpy(), o.last_hidden_state[0].numpy(), atol=1e-5):
                fail(f"{d}: eager BertModel and sentence-transformers disagree on {t!r}")
    return np.stack(out)


def make_golden(spec, models, versions):
    d = os.path.join(models, spec["model"])
    texts = TEXTS if spec["texts"] is None else [TEXTS[i] for i in spec["texts"]]
    m = load_st(d)
    check_loaded_weights(m, d)
    check_tokenizer(m, d, texts)
    runs = []
    for r in spec["runs"]:
        prompt = m.prompts[r["prompt_name"]] if r.get("prompt_name") else None
        if r.get("pooling") == "attention":
            emb = attention_pooling(d, m, texts)
            how = "transformers BertModel(attn_implementation='eager'), per text: last-layer attention " \
                  "of token 0 averaged over heads, renormalised, weighted sum of last hidden states, L2"
        else:
            kw = {}
            if r.get("prompt_name"):
                kw["prompt_name"] = r["prompt_name"]
            if r.get("dimensions"):
                kw["truncate_dim"] = r["dimensions"]
                kw["normalize_embeddings"] = True
            emb = m.encode(texts, batch_size=16, convert_to_numpy=True, **kw)
            how = "SentenceTransformer(dir, device='cpu', model_kwargs={'dtype': torch.float32})" \
                  ".encode(texts, batch_size=16, convert_to_numpy=True%s)" % "".join(
                      f", {k}={v!r}" for k, v in kw.items())
        counts, prompt_tokens = [], None
        for t in texts:
            f = m.preprocess([t], prompt=prompt)
            counts.append(int(f["attention_mask"].sum()))
            if prompt is not None:
                prompt_tokens = int(f["prompt_length"])
        if not np.all(np.isfinite(emb)):
            fail(f"{spec['name']}: non-finite embedding")
        runs.append({
            "name": r["name"],
            "options": {
                "pooling": r.get("pooling"),  # null: the model's own pooling
                "normalize": 1 if r.get("dimensions") or r.get("pooling") == "attention" else -1,
                "prompt_name": r.get("prompt_name"),
                "prompt": prompt,
                "dimensions": r.get("dimensions", 0),
            },
            "prompt_tokens": prompt_tokens,
            "reference": how,
            "dim": int(emb.shape[1]),
            "token_counts": counts,
            "embeddings": [[f32(x) for x in row] for row in emb],
        })
    return {
        "format": "embedkit-golden-embeddings/1",
        "name": spec["name"],
        "model": spec["model"],
        "genmodel_args": stamp_args(d),
        "weights": {f: {"bytes": os.path.getsize(os.path.join(d, f)), "fingerprint": fingerprint(os.path.join(d, f))}
                    for f in weight_files(d)},
        "max_seq_length": int(m.max_seq_length),
        "pipeline": pipeline_summary(m),
        "versions": versions,
        "tolerance": {"cosine_min": 0.99999, "max_abs_diff": 1e-4},
        "texts": texts,
        "runs": runs,
    }


def dump(obj, path):
    """JSON with one embedding row per line: readable diffs, small files."""
    rows = {}

    def walk(o):
        if isinstance(o, dict):
            return {k: (["@@ROW%d@@" % stash(r) for r in v] if k == "embeddings" else walk(v)) for k, v in o.items()}
        if isinstance(o, list):
            return [walk(x) for x in o]
        return o

    def stash(r):
        rows[len(rows)] = json.dumps(r, separators=(", ", ": "))
        return len(rows) - 1

    text = json.dumps(walk(obj), ensure_ascii=False, indent=1)
    for i, r in rows.items():
        text = text.replace('"@@ROW%d@@"' % i, r, 1)
    with open(path, "w", encoding="utf8") as f:
        f.write(text + "\n")


def self_checks(genmodel, models):
    # Determinism: the same arguments give the same bytes.
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("tiny-mean", "tiny-st6"):
            args = stamp_args(os.path.join(models, name)).split()
            subprocess.run([genmodel, "--out", os.path.join(tmp, name), "--vocab-dir",
                            os.path.join(SRC, "models", "vocab")] + args, check=True)
            for f in weight_files(os.path.join(models, name)):
                if open(os.path.join(tmp, name, f), "rb").read() != open(os.path.join(models, name, f), "rb").read():
                    fail(f"{name}/{f}: generation is not deterministic")
    # f16 / bf16 files are the round-to-nearest-even of the f32 weights.
    ref = safetensors.torch.load_file(os.path.join(models, "tiny-mean", "model.safetensors"))
    h = safetensors.torch.load_file(os.path.join(models, "tiny-f16", "model.safetensors"))
    b = safetensors.torch.load_file(os.path.join(models, "tiny-bf16", "model.safetensors"))
    for k, v in ref.items():
        if h[k].dtype != torch.float16 or not torch.equal(v.to(torch.float16), h[k]):
            fail(f"tiny-f16: {k} is not the f16 rounding of tiny-mean's")
        if b[k].dtype != torch.bfloat16 or not torch.equal(v.to(torch.bfloat16), b[k]):
            fail(f"tiny-bf16: {k} is not the bf16 rounding of tiny-mean's")
    # Storage variants of tiny-mean embed the same.
    base = load_st(os.path.join(models, "tiny-mean")).encode(TEXTS, batch_size=16)
    for name in ("tiny-sharded", "tiny-bert-prefix", "tiny-no-tokjson"):
        e = load_st(os.path.join(models, name)).encode(TEXTS, batch_size=16)
        if not np.allclose(e, base, atol=1e-6):
            fail(f"{name}: embeddings differ from tiny-mean's")
    # What sentence-transformers does by default with an f16 checkpoint
    # (reported, not asserted): transformers 5 loads dtype "auto".
    m = SentenceTransformer(os.path.join(models, "tiny-f16"), device="cpu")
    return {"default_dtype_for_f16_checkpoint": str(next(m.parameters()).dtype)}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("genmodel", help="path to the built ek-genmodel")
    ap.add_argument("--out", default=os.path.join(SRC, "tests", "golden", "embeddings"))
    ap.add_argument("--models", help="where to generate the models (default: a temporary directory)")
    a = ap.parse_args()
    genmodel = os.path.abspath(a.genmodel)
    tmp = None
    models = a.models
    if models is None:
        tmp = tempfile.TemporaryDirectory()
        models = tmp.name
    subprocess.run(["sh", os.path.join(SRC, "tools", "make_test_models.sh"), genmodel, models, SRC], check=True)
    versions = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "tokenizers": tokenizers.__version__,
        "safetensors": safetensors.__version__,
        "numpy": np.__version__,
    }
    torch.manual_seed(0)
    notes = self_checks(genmodel, models)
    os.makedirs(a.out, exist_ok=True)
    for spec in GOLDENS:
        g = make_golden(spec, models, versions)
        path = os.path.join(a.out, spec["name"] + ".json")
        dump(g, path)
        print(f"{path}: {len(g['texts'])} texts, runs {[r['name'] for r in g['runs']]}, "
              f"dim {g['runs'][0]['dim']}, {os.path.getsize(path)} bytes, pipeline {g['pipeline']}")
    print("notes:", json.dumps(notes))


if __name__ == "__main__":
    main()
