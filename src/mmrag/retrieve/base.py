"""The retriever interface: queries in, one `Ranked` list per query out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from mmrag.index.base import Scored
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


def to_ranked(query: Query, scored: Scored, report: StageReport) -> Ranked:
    hits = [Hit(doc=d, score=s, scores={report.name: s}) for d, s in scored]
    report.n_out = len(hits)
    return Ranked(query=query, hits=hits, reports=[report])
