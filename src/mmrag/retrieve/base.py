"""The retriever interface: queries in, one `Ranked` list per query out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

import numpy as np

from mmrag.index.store import EmbeddedStore
from mmrag.types import Hit, Query, Ranked, StageReport


class Retriever(ABC):
    """Finds candidates for a query. Implementations batch `retrieve_many`."""

    name: str = "retriever"

    def retrieve(self, query: Query | str, k: int = 10) -> Ranked:
        return self.retrieve_many([query], k)[0]

    @abstractmethod
    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]: ...


def as_query(query: Query | str) -> Query:
    return Query(text=query) if isinstance(query, str) else query


def to_ranked(
    store: EmbeddedStore,
    query: Query,
    rows: np.ndarray,
    scores: np.ndarray,
    report: StageReport,
) -> Ranked:
    """Turn index rows and scores into hits; rows deleted meanwhile are dropped."""
    keep = rows >= 0
    rows, scores = rows[keep].tolist(), scores[keep].tolist()
    docs = store.documents_by_row(rows)
    hits = [
        Hit(doc=docs[r], score=float(s), scores={report.name: float(s)})
        for r, s in zip(rows, scores, strict=True)
        if r in docs
    ]
    report.n_out = len(hits)
    return Ranked(query=query, hits=hits, reports=[report])
