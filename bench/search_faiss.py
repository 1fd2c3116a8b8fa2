#!/usr/bin/env python3
"""FAISS IndexFlatIP on the same data as `ek bench search`, for comparison.

Usage:
    ek bench search --n 1000000 --dim 384 --queries 1,64 --dump DIR [--json]
    python bench/search_faiss.py DIR [--queries 1,64] [-k 10] [--threads 2]
                                     [--repeat 5] [--json]

Reads DIR/corpus.npy and DIR/queries.npy (float32, written by --dump: the
exact vectors ek searched), builds a faiss.IndexFlatIP (exact inner product,
what `ek bench search` measures for f32), and times index.search for the
first Q queries, Q in --queries: one warm-up, then the median of --repeat
runs, with the thread count set through faiss.omp_set_num_threads.  Prints
one JSON object with --json, a table otherwise.  Needs numpy and faiss-cpu
(PyPI) in the interpreter that runs it.
"""
import argparse
import json
import os
import statistics
import time

import numpy as np

try:
    import faiss
except ImportError as e:  # pragma: no cover - environment problem
    raise SystemExit("search_faiss.py needs faiss-cpu: pip install faiss-cpu") from e


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dir", help="directory written by `ek bench search --dump DIR`")
    ap.add_argument("--queries", default="1,64")
    ap.add_argument("-k", type=int, default=10)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args()

    corpus = np.load(os.path.join(a.dir, "corpus.npy"), mmap_mode="r")
    queries = np.load(os.path.join(a.dir, "queries.npy"))
    n, d = corpus.shape
    faiss.omp_set_num_threads(a.threads)
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(d)
    index.add(np.ascontiguousarray(corpus, dtype=np.float32))
    build_s = time.perf_counter() - t0
    gb = n * d * 4 / 1e9

    results = []
    for nq in (int(x) for x in a.queries.split(",")):
        if nq > len(queries):
            raise SystemExit(f"{a.dir}/queries.npy holds {len(queries)} queries, fewer than {nq}")
        q = np.ascontiguousarray(queries[:nq])
        index.search(q, a.k)  # warm-up
        times = []
        for _ in range(a.repeat):
            t = time.perf_counter()
            index.search(q, a.k)
            times.append(time.perf_counter() - t)
        med = statistics.median(times)
        results.append({"queries": nq, "ms": med * 1e3, "gbps": gb / med})

    out = {
        "benchmark": "search_faiss",
        "faiss": faiss.__version__,
        "index": "IndexFlatIP",
        "threads": a.threads,
        "n": n,
        "dim": d,
        "k": a.k,
        "repeat": a.repeat,
        "build_s": round(build_s, 3),
        "results": results,
    }
    if a.json:
        print(json.dumps(out))
    else:
        print(f"FAISS {faiss.__version__} IndexFlatIP: {n} x {d}, k {a.k}, {a.threads} threads")
        print(f"{'queries':>8}  {'ms':>10}  {'GB/s':>8}")
        for r in results:
            print(f"{r['queries']:>8}  {r['ms']:>10.3f}  {r['gbps']:>8.2f}")


if __name__ == "__main__":
    main()
