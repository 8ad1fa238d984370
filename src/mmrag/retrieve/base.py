"""The retriever interface: queries in, one `Ranked` list per query out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import ClassVar

from mmrag.index.base import Candidates, Scored, Store
from mmrag.types import Hit, Query, Ranked, StageReport, timed


class Retriever(ABC):
    """Finds candidates for a query. Implementations batch `retrieve_many`.

    `query_modalities` are the parts of a `Query` the retriever reads ("text",
    "image"); a fusion of retrievers asks each member only the queries it `takes`.
    """

    name: str = "retriever"
    query_modalities: ClassVar[frozenset[str]] = frozenset({"text"})

    def takes(self, query: Query) -> bool:
        """True when `query` has a part this retriever reads."""
        return ("text" in self.query_modalities and bool(query.text.strip())) or (
            "image" in self.query_modalities and bool(query.image)
        )

    def retrieve(self, query: Query | str, k: int = 10) -> Ranked:
        return self.retrieve_many([query], k)[0]

    @abstractmethod
    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]: ...


Found = tuple[Candidates, StageReport]  # one query's candidates and what finding them cost


class CandidateRetriever(Retriever):
    """A retriever over one store's own indexes that can answer with store keys first.

    Fusion needs only keys and scores, so a hybrid of these loads documents for its
    final hits alone instead of for every member's `depth` candidates.
    """

    store: Store

    @abstractmethod
    def candidates_many(self, queries: Sequence[Query], k: int) -> list[Found]: ...

    def retrieve_many(self, queries: Sequence[Query | str], k: int = 10) -> list[Ranked]:
        qs = [as_query(q) for q in queries]
        out = []
        for q, (found, report) in zip(qs, self.candidates_many(qs, k), strict=True):
            with timed(report):
                docs = found.docs or self.store.candidate_documents(found.keys)
                scored = [
                    (docs[key], s)
                    for key, s in zip(found.keys, found.scores, strict=True)
                    if key in docs
                ]
            out.append(to_ranked(q, scored, report))
        return out


def as_query(query: Query | str) -> Query:
    return Query(text=query) if isinstance(query, str) else query


def to_ranked(query: Query, scored: Scored, report: StageReport) -> Ranked:
    hits = [Hit(doc=d, score=s, scores={report.name: s}) for d, s in scored]
    report.n_out = len(hits)
    return Ranked(query=query, hits=hits, reports=[report])
