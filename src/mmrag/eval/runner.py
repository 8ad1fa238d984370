"""Run a retriever over an evaluation set and score it: the library API behind `mmrag eval`."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmrag.eval.metrics import Qrels, Run, evaluate
from mmrag.index.batch import SourceInfo
from mmrag.index.store import EmbeddedStore
from mmrag.indexing.indexer import Indexer
from mmrag.models.text import TextEncoder
from mmrag.progress import progress
from mmrag.retrieve.base import Retriever
from mmrag.types import Document, Query, Span


@dataclass(frozen=True, slots=True)
class Corpus:
    """An evaluation corpus: doc id -> text, with an optional title per doc."""

    texts: dict[str, str]
    titles: dict[str, str]

    def records(self) -> list[tuple[SourceInfo, list[Document]]]:
        out = []
        for doc_id, text in self.texts.items():
            title = self.titles.get(doc_id, "")
            full = f"{title}\n{text}" if title else text
            digest = hashlib.sha256(full.encode()).hexdigest()
            doc = Document(
                id=doc_id,
                text=full,
                source_id=doc_id,
                span=Span(0, len(full)),
                metadata={"title": title} if title else {},
            )
            out.append((SourceInfo(source_id=doc_id, content_hash=digest, title=title), [doc]))
        return out


def cached_store(
    cache: Path, name: str, corpus: Corpus, encoder: TextEncoder | None, show: bool = True
) -> EmbeddedStore:
    """A store for an evaluation corpus, built once and reused (keyed by corpus and encoder)."""
    key = hashlib.sha256(
        json.dumps([name, len(corpus.texts), encoder.info() if encoder else None]).encode()
    ).hexdigest()[:12]
    path = cache / f"{name}-{key}"
    # A finished store is opened read-only, so several evaluations (benchmarks running
    # side by side) can share it; only the first one builds it, holding the write lock.
    done = path / "eval-complete"
    if not done.exists():
        with EmbeddedStore(path) as store:
            indexer = Indexer(store, encoder, chunk_tokens=0, progress=show)
            indexer.index_records(corpus.records(), total=len(corpus.texts))
        done.write_text(key + "\n")
    return EmbeddedStore(path, read_only=True)


def run_queries(
    retriever: Retriever,
    queries: dict[str, str],
    k: int,
    batch_size: int = 32,
    show: bool = True,
) -> tuple[Run, float]:
    """Document-level run (best chunk per source) and the wall time spent retrieving.

    Blank queries (real datasets have a few) retrieve nothing and count as misses.
    """
    run: Run = {}
    ids = [q for q in queries if queries[q].strip()]
    seconds = 0.0
    with progress(show) as bar:
        task = bar.add_task("querying", total=len(ids))
        for start in range(0, len(ids), batch_size):
            part = ids[start : start + batch_size]
            qs = [Query(text=queries[q], id=q) for q in part]
            t0 = time.perf_counter()
            results = retriever.retrieve_many(qs, k)
            seconds += time.perf_counter() - t0
            for qid, ranked in zip(part, results, strict=True):
                run[qid] = {h.doc.group: h.score for h in ranked.by_group()}
            bar.advance(task, len(part))
    return run, seconds


def score_run(
    qrels: Qrels, run: Run, metrics: Sequence[str], seconds: float, n_queries: int
) -> dict[str, Any]:
    scores = evaluate(qrels, run, list(metrics))
    out: dict[str, Any] = {m: round(float(v), 4) for m, v in scores.items()}
    out["queries"] = n_queries
    out["queries_per_s"] = round(n_queries / seconds, 2) if seconds > 0 else None
    return out
