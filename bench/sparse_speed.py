"""Queries/s of mmrag's SparseIndex against bm25s (numba backend) on SciFact, same tokens.

Run: .venv/bin/python bench/sparse_speed.py [--kernel numba|numpy] [--repeat 5]
Prints JSON (index times, queries/s of each, their ratio; single-threaded) and writes it
to bench/results/sparse_speed-<kernel>.json. The machine is shared, so take the best of
several repeats and compare numbers from the same run only.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from mmrag.index import sparse
from mmrag.index.analyzer import Analyzer
from mmrag.index.bm25 import BM25Params
from mmrag.index.sparse import SparseIndex

ROOT = Path(__file__).resolve().parents[1]


def load(directory: Path) -> tuple[list[str], list[str]]:
    corpus = [json.loads(line) for line in (directory / "corpus.jsonl").open()]
    queries = {q["_id"]: q["text"] for q in map(json.loads, (directory / "queries.jsonl").open())}
    test_ids = []
    for line in (directory / "qrels" / "test.tsv").open().read().splitlines()[1:]:
        qid = line.split("\t")[0]
        if qid not in test_ids:
            test_ids.append(qid)
    docs = [f"{d['title']} {d['text']}" for d in corpus]
    return docs, [queries[q] for q in test_ids]


def best_qps(fn, n: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data" / "scifact")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kernel", choices=["numba", "numpy"], default="numba")
    args = parser.parse_args()

    import bm25s

    sparse.kernel.KERNEL = args.kernel

    docs, queries = load(args.data)
    analyzer = Analyzer()
    doc_tokens = [analyzer.tokens(d) for d in docs]
    query_tokens = [analyzer.tokens(q) for q in queries]

    t = time.perf_counter()
    index = SparseIndex()
    index.add(list(range(len(doc_tokens))), doc_tokens)
    index.rows()  # flushes: builds the segment and the row index
    ours_index_s = time.perf_counter() - t
    t = time.perf_counter()
    index.search_many(query_tokens[:2], args.k)
    out_compile_s = time.perf_counter() - t

    t = time.perf_counter()
    ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75, backend="numba")
    ref.index(doc_tokens, show_progress=False)
    ref_index_s = time.perf_counter() - t
    ref.retrieve(query_tokens[:5], k=args.k, show_progress=False)  # numba compile

    params = BM25Params()
    out: dict[str, object] = {
        "docs": len(docs),
        "queries": len(queries),
        "k": args.k,
        "kernel": args.kernel,
    }
    out["ours_index_s"] = round(ours_index_s, 3)
    out["bm25s_index_s"] = round(ref_index_s, 3)
    out["ours_first_batch_s"] = round(out_compile_s, 3)  # includes compiling the kernel
    ours = best_qps(
        lambda: index.search_many(query_tokens, args.k, params), len(queries), args.repeat
    )
    ref_qps = best_qps(
        lambda: ref.retrieve(query_tokens, k=args.k, show_progress=False, n_threads=1),
        len(queries),
        args.repeat,
    )
    out["ours_qps"] = round(ours)
    out["bm25s_numba_qps"] = round(ref_qps)
    out["ratio"] = round(ours / ref_qps, 2)
    for method in ("tfidf", "bm25+"):
        p = BM25Params(method=method)
        index.search_many(query_tokens[:2], args.k, p)
        out[f"ours_{method}_qps"] = round(
            best_qps(
                lambda p=p: index.search_many(query_tokens, args.k, p), len(queries), args.repeat
            )
        )
    # incremental: 100 adds of ~52 docs, each followed by a search
    t = time.perf_counter()
    inc = SparseIndex()
    for chunk in np.array_split(np.arange(len(doc_tokens)), 100):
        inc.add(chunk.tolist(), [doc_tokens[i] for i in chunk])
        inc.search(query_tokens[0], args.k)
    out["interleaved_100_adds_searches_s"] = round(time.perf_counter() - t, 3)
    text = json.dumps(out, indent=2)
    print(text)
    results = ROOT / "bench" / "results"
    results.mkdir(parents=True, exist_ok=True)
    (results / f"sparse_speed-{args.kernel}.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
