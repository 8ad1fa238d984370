"""The types that flow through every stage: ingest, index, retrieve, rerank, refine, generate.

A retriever, a reranker and a refiner all return the same `Ranked` result, so the
stages compose by plain function application.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any


class Modality(StrEnum):
    TEXT = "text"
    IMAGE = "image"
    AUDIO = "audio"
    VIDEO = "video"
    PAGE = "page"  # a document page handled as an image (ColPali / DSE style)


@dataclass(frozen=True, slots=True)
class Span:
    """Where a piece of a document came from, so an answer can cite it.

    `start`/`end` are character offsets into the source's extracted text (for a PDF,
    into that page's text); `page` is 1-based; `t_start`/`t_end` are seconds for
    time-based media.
    """

    start: int | None = None
    end: int | None = None
    page: int | None = None
    t_start: float | None = None
    t_end: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__slots__ if getattr(self, k) is not None}

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> Span | None:
        if not data:
            return None
        return cls(**{k: data[k] for k in cls.__slots__ if k in data})

    def describe(self) -> str:
        parts = []
        if self.page is not None:
            parts.append(f"p. {self.page}")
        if self.t_start is not None:
            parts.append(f"{self.t_start:.1f}-{(self.t_end or self.t_start):.1f} s")
        if self.start is not None and self.end is not None:
            parts.append(f"chars {self.start}-{self.end}")
        return ", ".join(parts)


@dataclass(frozen=True, slots=True)
class Document:
    """One indexable unit: a text chunk, an image, a transcript segment, a page.

    `id` is unique in a store. Chunks of one source share `source_id` (the id of the
    file or record they came from), which is what evaluation and deletion work on.
    """

    id: str
    text: str = ""
    modality: Modality = Modality.TEXT
    source_id: str | None = None
    source: str | None = None  # path or URI of the original file
    media: str | None = None  # reference to a media blob, for non-text modalities
    span: Span | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def group(self) -> str:
        """The id that relevance judgements and deletions refer to."""
        return self.source_id or self.id

    def citation(self) -> str:
        where = self.span.describe() if self.span else ""
        name = self.source or self.group
        return f"{name} ({where})" if where else name


@dataclass(frozen=True, slots=True)
class Query:
    """A question: text, and/or an image path for query-by-image, plus metadata filters.

    Filters are a small Mongo-like dict, e.g. ``{"lang": "en", "page": {"$gte": 3}}``;
    every backend translates them to its own language.
    """

    text: str = ""
    id: str | None = None
    image: str | None = None
    filters: dict[str, Any] | None = None

    def __post_init__(self) -> None:
        if not self.text.strip() and not self.image:
            raise ValueError("a query needs text or an image")


@dataclass(slots=True)
class Hit:
    """A document with a score; `passage` is what later stages should read.

    A refiner shortens `passage` and records which parts of the source it kept in
    `kept`, so citations still point to the source.
    """

    doc: Document
    score: float
    scores: dict[str, float] = field(default_factory=dict)  # per stage, for explanation
    passage: str | None = None
    kept: list[Span] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.doc.text if self.passage is None else self.passage


@dataclass(slots=True)
class StageReport:
    """What one stage cost and what went wrong, carried along with the result."""

    stage: str
    name: str
    seconds: float = 0.0
    n_in: int = 0
    n_out: int = 0
    model_calls: int = 0
    tokens: int = 0
    errors: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class Ranked:
    """The one result type shared by retrievers, rerankers and refiners."""

    query: Query
    hits: list[Hit]
    reports: list[StageReport] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.hits)

    def top(self, k: int) -> Ranked:
        return Ranked(self.query, self.hits[:k], list(self.reports))

    def ids(self) -> list[str]:
        return [h.doc.id for h in self.hits]

    def with_hits(self, hits: list[Hit], report: StageReport | None = None) -> Ranked:
        reports = list(self.reports) + ([report] if report else [])
        return Ranked(self.query, hits, reports)

    def by_group(self) -> list[Hit]:
        """Best hit per source document (max-passage), for document-level evaluation."""
        seen: set[str] = set()
        out: list[Hit] = []
        for h in self.hits:
            if h.doc.group not in seen:
                seen.add(h.doc.group)
                out.append(h)
        return out


@contextmanager
def timed(report: StageReport) -> Iterator[StageReport]:
    start = time.perf_counter()
    try:
        yield report
    finally:
        report.seconds += time.perf_counter() - start


__all__ = [
    "Document",
    "Hit",
    "Modality",
    "Query",
    "Ranked",
    "Span",
    "StageReport",
    "replace",
    "timed",
]
