"""Lexical retrievers over the store's sparse index: BM25 variants and TF-IDF."""

from __future__ import annotations

from collections.abc import Sequence

from mmrag.index.base import Store
from mmrag.index.bm25 import BM25Params
from mmrag.retrieve.base import Retriever, as_query, to_ranked
from mmrag.types import Query, Ranked, StageReport, timed


class BM25Retriever(Retriever):
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

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        out = []
        for q in map(as_query, queries):
            report = StageReport(stage="retrieve", name=self.name)
            with timed(report):
                (scored,) = self.store.search_sparse([q.text], k, self.params, q.filters)
                out.append(to_ranked(q, scored, report))
        return out


class TfidfRetriever(BM25Retriever):
    name = "tfidf"

    def __init__(self, store: Store) -> None:
        super().__init__(store, method="tfidf")
