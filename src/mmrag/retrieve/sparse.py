"""Lexical retrievers over the store's sparse index: BM25 variants and TF-IDF."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.index.base import Store
from mmrag.index.bm25 import BM25Params
from mmrag.retrieve.base import CandidateRetriever, Found
from mmrag.types import Query, StageReport, timed


class BM25Retriever(CandidateRetriever):
    """BM25 with the Lucene variant by default; `method` picks another variant."""

    name = "bm25"

    def __init__(
        self,
        store: Store,
        method: str = "lucene",
        k1: float = 1.2,
        b: float = 0.75,
        delta: float = 0.5,
    ) -> None:
        self.store = store
        self.params = BM25Params(method=method, k1=k1, b=b, delta=delta)

    def candidates_many(self, queries: Sequence[Query], k: int) -> list[Found]:
        out = []
        for q in queries:
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                (found,) = self.store.sparse_candidates([q.text], k, self.params, q.filters)
            out.append((found, report))
        return out


class TfidfRetriever(BM25Retriever):
    name = "tfidf"

    def __init__(self, store: Store) -> None:
        super().__init__(store, method="tfidf")
