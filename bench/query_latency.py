"""Query latency, one query per call, on SciFact: BM25, dense and hybrid with the default
English encoder (BGE-small INT8 on ONNX Runtime), query encoding included; and the query
encoders alone, sentence-transformers MiniLM on one torch thread against torch's default.

Each condition runs with the machine as it is ("quiet") and again with one core kept busy
by a spinning child process ("busy"), as on a laptop doing something else. Rankings of
the three retrievers are the same in both conditions (checked). Writes
bench/results/query_latency.json.

    .venv/bin/python bench/query_latency.py [--data ../shared/data] [--queries 300]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
CACHE = ROOT / ".mmrag-cache" / "eval-stores"


def _spin() -> None:
    while True:
        pass


@contextmanager
def busy_core(on: bool) -> Iterator[None]:
    """A child process burning one core for the duration, when `on`."""
    if not on:
        yield
        return
    child = mp.get_context("spawn").Process(target=_spin, daemon=True)
    child.start()
    time.sleep(0.5)
    try:
        yield
    finally:
        child.terminate()
        child.join()


def latency(fn: Callable[[str], Any], queries: list[str]) -> dict[str, float]:
    fn(queries[0])  # warm: first calls compile kernels and allocate
    ms = []
    for q in queries:
        t0 = time.perf_counter()
        fn(q)
        ms.append((time.perf_counter() - t0) * 1000)
    return {
        "p50": round(statistics.median(ms), 3),
        "p95": round(float(np.percentile(ms, 95)), 3),
        "mean": round(statistics.fmean(ms), 3),
    }


def run(data: Path, n_queries: int) -> dict[str, Any]:
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus, cached_store
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    queries = [beir.queries[q] for q in sorted(beir.queries)][:n_queries]
    encoder = load_text_encoder("onnx", model="bge-small-en-v1.5")
    out: dict[str, Any] = {"docs": len(corpus.texts), "queries": len(queries), "conditions": {}}
    minilm = {
        n: load_text_encoder("sentence-transformers", query_threads=n) for n in (1, os.cpu_count())
    }
    with cached_store(CACHE, "beir-scifact", corpus, encoder, show=True) as store:
        retrievers = {n: RETRIEVERS.create(n, store=store) for n in ("bm25", "dense", "hybrid")}
        rankings: dict[str, dict[str, list[list[str]]]] = {}
        for condition in ("quiet", "busy"):
            with busy_core(condition == "busy"):
                row: dict[str, Any] = {"load_average_at_start": os.getloadavg()}
                for name, r in retrievers.items():
                    row[name] = latency(lambda q, r=r: r.retrieve(q, 10), queries)
                    rankings.setdefault(name, {})[condition] = [
                        [h.doc.id for h in r.retrieve(q, 10).hits] for q in queries[:50]
                    ]
                row["encode_bge_onnx"] = latency(lambda q: encoder.encode_queries([q]), queries)
                for n, enc in minilm.items():
                    row[f"encode_minilm_torch_{n}_threads"] = latency(
                        lambda q, enc=enc: enc.encode_queries([q]), queries
                    )
                row["load_average_at_end"] = os.getloadavg()
            out["conditions"][condition] = row
        out["rankings_same_quiet_and_busy"] = all(
            v["quiet"] == v["busy"] for v in rankings.values()
        )
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    ap.add_argument("--queries", type=int, default=300)
    args = ap.parse_args()
    started = time.strftime("%Y-%m-%dT%H:%M:%S")
    result = {
        "benchmark": "query_latency",
        "started": started,
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "targets_ms": {"hybrid_p50": 15, "hybrid_p95": 40, "bm25_p50": 2, "dense_p50": 8},
        **run(Path(args.data), args.queries),
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "query_latency.json").write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result["conditions"], sys.stdout, indent=1)


if __name__ == "__main__":
    main()
