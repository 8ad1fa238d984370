"""Score a reranker on first-stage rankings: the library API behind `mmrag eval rerank` and
`mmrag eval beir --reranker`.

Rankings go in as `Ranked` lists (query id in `Query.id`); the reranked lists are scored
at the document level (best passage per source) with the eval metrics, alongside the
reranker's cost per query: wall time, model calls, tokens, and queries with failures.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from mmrag.eval.datasets import Dl19Data
from mmrag.eval.metrics import Qrels, Run, evaluate
from mmrag.progress import progress
from mmrag.rerank.base import Reranker
from mmrag.retrieve.base import Retriever
from mmrag.types import Document, Hit, Query, Ranked


def dl19_rankings(data: Dl19Data, depth: int = 100, limit: int | None = None) -> dict[str, Ranked]:
    """Each DL19 query with its BM25 top-`depth` (first `limit` queries in file order)."""
    out: dict[str, Ranked] = {}
    for qid in list(data.queries)[:limit]:
        hits = [
            Hit(Document(id=c.doc_id, text=c.text), score=c.score, scores={"bm25": c.score})
            for c in data.candidates[qid][:depth]
        ]
        out[qid] = Ranked(Query(text=data.queries[qid], id=qid), hits)
    return out


def retrieve_rankings(
    retriever: Retriever, queries: Mapping[str, str], k: int = 100, batch_size: int = 32
) -> dict[str, Ranked]:
    """First-stage rankings for every non-blank query (blank ones count as misses later)."""
    ids = [q for q in queries if queries[q].strip()]
    out: dict[str, Ranked] = {}
    for start in range(0, len(ids), batch_size):
        part = ids[start : start + batch_size]
        results = retriever.retrieve_many([Query(text=queries[q], id=q) for q in part], k)
        out.update(zip(part, results, strict=True))
    return out


def rerank_all(
    reranker: Reranker, rankings: Mapping[str, Ranked], show: bool = False
) -> tuple[dict[str, Ranked], dict[str, Any]]:
    """Rerank every query; returns the new rankings and the cost per query."""
    out: dict[str, Ranked] = {}
    seconds, calls, tokens, failed = 0.0, 0, 0, 0
    with progress(show) as bar:
        task = bar.add_task(f"reranking with {reranker.name}", total=len(rankings))
        for qid, ranked in rankings.items():
            t0 = time.perf_counter()
            result = reranker.rerank(ranked)
            seconds += time.perf_counter() - t0
            report = result.reports[-1]
            calls += report.model_calls
            tokens += report.tokens
            failed += bool(report.errors)
            out[qid] = result
            bar.advance(task)
    n = max(len(rankings), 1)
    cost = {
        "queries": len(rankings),
        "ms_per_query": round(1000 * seconds / n, 1),
        "model_calls_per_query": round(calls / n, 1),
        "tokens_per_query": round(tokens / n, 1),
        "queries_with_failures": failed,
    }
    return out, cost


def to_run(rankings: Mapping[str, Ranked]) -> Run:
    """Document-level run: the best passage per source document."""
    return {qid: {h.doc.group: h.score for h in r.by_group()} for qid, r in rankings.items()}


def score_reranker(
    reranker: Reranker,
    rankings: Mapping[str, Ranked],
    qrels: Qrels,
    metrics: Sequence[str] = ("ndcg@10",),
    show: bool = False,
) -> dict[str, Any]:
    """Metrics of the reranked lists and of the first stage, plus the reranker's cost."""
    reranked, cost = rerank_all(reranker, rankings, show)
    judged = {q: qrels[q] for q in rankings if q in qrels}
    scores = evaluate(judged, to_run(reranked), list(metrics))
    first = evaluate(judged, to_run(rankings), list(metrics))
    out: dict[str, Any] = {m: round(float(v), 4) for m, v in scores.items()}
    out["first_stage"] = {m: round(float(v), 4) for m, v in first.items()}
    out["reranker"] = reranker.name
    out.update(cost)
    return out


def eval_dl19(
    directory: str,
    reranker: Reranker,
    depth: int = 100,
    limit: int | None = None,
    show: bool = False,
) -> dict[str, Any]:
    """nDCG@10 (and cost) of `reranker` over DL19's BM25 top-`depth`."""
    from mmrag.eval.datasets import load_dl19

    data = load_dl19(directory)
    rankings = dl19_rankings(data, depth, limit)
    result = score_reranker(reranker, rankings, data.qrels, ("ndcg@10",), show)
    result.update({"dataset": "trec-dl19", "depth": depth})
    return result


def eval_beir(
    directory: str,
    reranker: Reranker,
    cache: str,
    retriever: str = "hybrid",
    depth: int = 100,
    limit: int | None = None,
    split: str = "test",
    show: bool = False,
    encoder: str = "sentence-transformers",
    model: str | None = None,
) -> dict[str, Any]:
    """nDCG@10 (and cost) of `reranker` over a first stage's top-`depth` on a BEIR dataset.

    The corpus is indexed once into a cached store under `cache` (with the text encoder
    `encoder`/`model`, by default the packaged MiniLM, for dense and hybrid first
    stages); `limit` takes the first queries in sorted id order.
    """
    from mmrag.eval.datasets import load_beir
    from mmrag.eval.runner import Corpus, cached_store
    from mmrag.models.text import load_text_encoder
    from mmrag.retrieve import RETRIEVERS

    data = load_beir(directory, split=split)
    corpus = Corpus(
        texts={d: v["text"] for d, v in data.corpus.items()},
        titles={d: v.get("title", "") for d, v in data.corpus.items()},
    )
    text_encoder = (
        load_text_encoder(encoder, **({"model": model} if model else {}))
        if retriever in ("dense", "hybrid")
        else None
    )
    queries = {q: data.queries[q] for q in sorted(data.queries)[:limit]}
    name = f"beir-{Path(directory).name}"
    with cached_store(Path(cache), name, corpus, text_encoder, show=show) as store:
        params: dict[str, Any] = {"store": store}
        if retriever == "dense":
            params["encoder"] = text_encoder
        first = RETRIEVERS.create(retriever, **params)
        rankings = retrieve_rankings(first, queries, depth)
    metrics = ("ndcg@10", "recall@100")
    result = score_reranker(reranker, rankings, data.qrels, metrics, show)
    result.update(
        {
            "dataset": name,
            "first_stage_retriever": retriever,
            "encoder": text_encoder.info() if text_encoder else None,
            "depth": depth,
        }
    )
    return result
