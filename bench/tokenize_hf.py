#!/usr/bin/env python3
"""bench/tokenize_hf.py — Hugging Face `tokenizers` on the same texts as
`ek bench all tokenize --dump DIR`, for the anchor column of bench/run.

Usage: python bench/tokenize_hf.py DIR MODEL_DIR [--json]
Reads DIR/<mix>.txt (one text per line) and MODEL_DIR/tokenizer.json, then
times Tokenizer.encode one text at a time (what `ek bench all tokenize`
measures: one call per text, no batching, no padding), single-threaded
(RAYON_NUM_THREADS=1), after one warm-up pass: MB/s and tokens/s per mix.
Needs the `tokenizers` package (e.g. /work/refenv/bin/python).
"""
import argparse
import glob
import json
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
from tokenizers import Tokenizer  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("model")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()
    tok = Tokenizer.from_file(os.path.join(a.model, "tokenizer.json"))
    import tokenizers
    res = {"engine": "tokenizers", "version": tokenizers.__version__, "mixes": {}}
    for path in sorted(glob.glob(os.path.join(a.dir, "*.txt"))):
        mix = os.path.basename(path)[:-4]
        with open(path, encoding="utf-8") as f:
            texts = [line.rstrip("\n") for line in f]
        nbytes = sum(len(t.encode("utf-8")) for t in texts)
        for t in texts:  # warm-up
            tok.encode(t)
        best = None
        for _ in range(3):
            ntok = 0
            t0 = time.perf_counter()
            for t in texts:
                ntok += len(tok.encode(t).ids)
            dt = time.perf_counter() - t0
            best = dt if best is None or dt < best else best
        res["mixes"][mix] = {"mb_per_s": nbytes / best / 1e6, "tokens_per_s": ntok / best, "texts": len(texts)}
    if a.json:
        print(json.dumps(res))
    else:
        for mix, r in res["mixes"].items():
            print(f"{mix:8s} {r['mb_per_s']:8.2f} MB/s {r['tokens_per_s']:12.0f} tokens/s")


if __name__ == "__main__":
    main()
