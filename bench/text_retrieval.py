"""Text retrieval benchmark: SciFact (BM25, dense, hybrid; parity and speed against bm25s and
rank_bm25 in the same run) and CMRC 2018 (Chinese). Writes bench/results/text_retrieval.json.

    .venv/bin/python bench/text_retrieval.py [--data ../shared/data] [--skip-rank-bm25]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import platform
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"


def _timed(fn: Any) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _in_child(func: Any, *args: Any) -> Any:
    """Run a phase in a fresh process so its peak RSS is its own."""
    ctx = mp.get_context("spawn")
    with ctx.Pool(1) as pool:
        return pool.apply(func, args)


def _scifact_corpus(data: Path) -> Any:
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus

    beir = load_beir(data / "scifact")
    corpus = Corpus(
        texts={d: v["text"] for d, v in beir.corpus.items()},
        titles={d: v.get("title", "") for d, v in beir.corpus.items()},
    )
    return beir, corpus


def phase_index(data: str, dense: bool) -> dict[str, Any]:
    from mmrag.index.store import EmbeddedStore
    from mmrag.indexing.indexer import Indexer
    from mmrag.models.text import load_text_encoder

    _, corpus = _scifact_corpus(Path(data))
    encoder = load_text_encoder("sentence-transformers") if dense else None
    with tempfile.TemporaryDirectory() as tmp, EmbeddedStore(Path(tmp) / "s") as store:
        t0 = time.perf_counter()
        report = Indexer(store, encoder, chunk_tokens=0, progress=False).index_records(
            corpus.records(), total=len(corpus.texts)
        )
        seconds = time.perf_counter() - t0
    return {
        "docs": report.chunks,
        "seconds": round(seconds, 2),
        "docs_per_s": round(report.chunks / seconds, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def scifact(data: Path, skip_rank_bm25: bool) -> dict[str, Any]:
    import bm25s

    from mmrag.eval.metrics import evaluate
    from mmrag.eval.runner import cached_store, run_queries, score_run
    from mmrag.index.bm25 import BM25Params
    from mmrag.index.sparse import warm_up_kernel
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    beir, corpus = _scifact_corpus(data)
    queries, qrels = beir.queries, beir.qrels
    out: dict[str, Any] = {"dataset": "scifact", "docs": len(corpus.texts), "queries": len(queries)}
    metrics = ["ndcg@10", "recall@100", "mrr@10", "map"]
    encoder = load_text_encoder("sentence-transformers")
    cache = ROOT / ".mmrag-cache" / "eval-stores"
    with cached_store(cache, "beir-scifact", corpus, encoder, show=False) as store:
        for name in ("bm25", "tfidf", "dense", "hybrid"):
            retriever = RETRIEVERS.create(name, store=store)
            run, seconds = run_queries(retriever, queries, 100, show=False)
            out[name] = score_run(qrels, run, metrics, seconds, len(queries))
        hybrid_w = RETRIEVERS.create("hybrid", store=store, fusion="weighted")
        run, seconds = run_queries(hybrid_w, queries, 100, show=False)
        out["hybrid_weighted"] = score_run(qrels, run, metrics, seconds, len(queries))

        # hybrid latency, one query per call, query encoding included
        hybrid = RETRIEVERS.create("hybrid", store=store)
        lat = []
        for q in queries.values():
            t0 = time.perf_counter()
            hybrid.retrieve(q, 10)
            lat.append((time.perf_counter() - t0) * 1000)
        out["hybrid_latency_ms"] = {
            "p50": round(statistics.median(lat), 2),
            "p95": round(float(np.percentile(lat, 95)), 2),
        }

        # BM25 parity and speed against bm25s on the same tokens, one query per call
        analyzer = store.analyzer
        records = corpus.records()
        doc_ids = [info.source_id for info, _ in records]
        doc_tokens = [analyzer.tokens(docs[0].text) for _, docs in records]
        query_tokens = {q: analyzer.tokens(t) for q, t in queries.items()}
        ref = bm25s.BM25(method="lucene", k1=1.2, b=0.75)
        ref.index(doc_tokens, show_progress=False)
        params = BM25Params()
        same = 0
        ours_by_q: dict[str, list[str]] = {}
        for q, toks in query_tokens.items():
            ((rows, _),) = store.sparse.search_many([toks], 10, params)
            ours_by_q[q] = [d.group for d in store.documents(rows.tolist())]
        ref_by_q: dict[str, list[str]] = {}
        ref_run: dict[str, dict[str, float]] = {}
        for q, toks in query_tokens.items():
            docs, scores = ref.retrieve([toks], k=10, show_progress=False, n_threads=1)
            ids = [doc_ids[i] for i in docs[0]]
            ref_by_q[q] = ids
            ref_run[q] = {d: float(s) for d, s in zip(ids, scores[0], strict=True)}
            same += ref_by_q[q] == ours_by_q[q]
        out["bm25_parity"] = {
            "reference": f"bm25s {bm25s.__version__} lucene k1=1.2 b=0.75, same tokens",
            "top10_equal_share": round(same / len(query_tokens), 4),
            "bm25s_ndcg@10": round(evaluate(qrels, ref_run, ["ndcg@10"])["ndcg@10"], 4),
        }

        speed: dict[str, Any] = {}
        token_lists = list(query_tokens.values())
        texts = list(queries.values())
        bm25 = RETRIEVERS.create("bm25", store=store)

        def timed_qps(fn: Any, reps: int = 3) -> float:
            fn()  # warm-up (numba compilation of bm25s, caches)
            t0 = time.perf_counter()
            for _ in range(reps):
                fn()
            return round(reps * len(token_lists) / (time.perf_counter() - t0), 1)

        def ours() -> None:
            for t in token_lists:
                store.sparse.search_many([t], 10, params)

        def bm25s_single() -> None:
            for t in token_lists:
                ref.retrieve([t], k=10, show_progress=False, n_threads=1)

        # before the kernel is compiled, single queries take the numpy path
        speed["mmrag_sparse_numpy"] = timed_qps(ours)
        speed["kernel_compile_s"] = round(_timed(warm_up_kernel), 2)
        speed["mmrag_sparse_numba"] = timed_qps(ours)
        speed["mmrag_bm25_retriever"] = timed_qps(lambda: [bm25.retrieve(t, 10) for t in texts])
        speed["bm25s"] = timed_qps(bm25s_single)
        if not skip_rank_bm25:
            from rank_bm25 import BM25Okapi

            okapi = BM25Okapi(doc_tokens)
            t0 = time.perf_counter()
            for t in token_lists:
                np.argpartition(-okapi.get_scores(t), 10)[:10]
            speed["rank_bm25"] = round(len(token_lists) / (time.perf_counter() - t0), 1)
        for label in ("mmrag_sparse_numba", "mmrag_sparse_numpy"):
            speed[f"{label}_vs_bm25s"] = round(speed[label] / speed["bm25s"], 2)
            if "rank_bm25" in speed:
                speed[f"{label}_vs_rank_bm25"] = round(speed[label] / speed["rank_bm25"], 1)
        speed["note"] = (
            "queries/s, one query per call, one thread, pre-tokenised queries, best of the "
            "same run; mmrag_bm25_retriever adds analysis and document fetch (numba kernel)"
        )
        out["bm25_queries_per_s"] = speed
    out["indexing_sparse"] = _in_child(phase_index, str(data), False)
    out["indexing_dense"] = _in_child(phase_index, str(data), True)
    return out


def cmrc(data: Path) -> dict[str, Any]:
    from mmrag.eval.datasets import load_squad_retrieval
    from mmrag.eval.runner import Corpus, cached_store, run_queries, score_run
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    files = sorted((data / "cmrc2018").glob("*.json"))
    squad = load_squad_retrieval(files[0])
    corpus = Corpus(texts=squad.paragraphs, titles={})
    out: dict[str, Any] = {
        "dataset": f"cmrc2018/{files[0].name}",
        "paragraphs": len(corpus.texts),
        "questions": len(squad.questions),
    }
    encoder = load_text_encoder("use-multilingual")
    cache = ROOT / ".mmrag-cache" / "eval-stores"
    metrics = ["mrr@10", "recall@5", "recall@1"]
    with cached_store(cache, "cmrc2018", corpus, encoder, show=False) as store:
        for name in ("bm25", "dense", "hybrid"):
            retriever = RETRIEVERS.create(name, store=store)
            run, seconds = run_queries(retriever, squad.questions, 10, show=False)
            out[name] = score_run(squad.qrels, run, metrics, seconds, len(squad.questions))
    out["dense_model"] = encoder.info()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--skip-rank-bm25", action="store_true")
    parser.add_argument("--only", choices=["scifact", "cmrc2018"], default=None)
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / "text_retrieval.json"
    # each part is saved as soon as it is done, so a failure later keeps earlier figures
    result = json.loads(path.read_text()) if path.exists() else {}
    result["machine"] = {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "cpus": mp.cpu_count(),
    }
    parts = {
        "scifact": lambda: scifact(args.data, args.skip_rank_bm25),
        "cmrc2018": lambda: cmrc(args.data),
    }
    for name, run in parts.items():
        if args.only in (None, name):
            started = time.strftime("%Y-%m-%dT%H:%M:%S")
            result[name] = {"started": started, **run()}
            path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print(json.dumps(result, indent=2, ensure_ascii=False))


if __name__ == "__main__":
    main()
