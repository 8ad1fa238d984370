"""The generator interface and its result: an answer whose numbered citations point to passages.

The context a generator reads is numbered from 1 in the order of `Ranked.hits`; a
citation `[n]` in the answer refers to `Answer.context[n - 1]`, so it leads back to the
document, its page or time span, and what a refiner kept of it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from mmrag.generate.prompts import MediaResolver
from mmrag.types import Document, Hit, Ranked, Span, StageReport


@dataclass(frozen=True, slots=True)
class Citation:
    """One cited passage. `inferred` is True when the model wrote no marker and the
    citation was attributed afterwards by word overlap (see `citations.attribute`)."""

    number: int
    hit: Hit
    inferred: bool = False

    @property
    def doc(self) -> Document:
        return self.hit.doc

    @property
    def span(self) -> Span | None:
        return self.hit.doc.span

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "id": self.doc.id,
            "source_id": self.doc.group,
            "source": self.doc.source,
            "modality": str(self.doc.modality),
            "span": self.span.to_dict() if self.span else None,
            "citation": self.doc.citation(),
            "inferred": self.inferred,
        }


@dataclass(frozen=True, slots=True)
class SentenceSupport:
    """One sentence of an answer and whether the passages it cites back it up.

    `citations` are the passage numbers the sentence cites (empty: uncited);
    `supported` is the verifier's verdict (None when no verifier ran); `score` is the
    verifier's best score over the cited passages; `inferred` marks citations that the
    model did not write but that were attributed afterwards.
    """

    text: str
    citations: tuple[int, ...] = ()
    supported: bool | None = None
    score: float | None = None
    inferred: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "citations": list(self.citations),
            "supported": self.supported,
            "score": self.score,
            "inferred": self.inferred,
        }


# finish_reason of an answer that says the indexed material does not hold the answer
NOT_FOUND = "not_found"


@dataclass(slots=True)
class Answer:
    """What a generator returns.

    `text` keeps the valid `[n]` markers (dropped ones are removed); `dropped` lists the
    numbers the model cited that name no passage of the context. `reports` carries
    every stage's report (retrieval included); a pipeline adds its own per-stage
    summary in `stages`.
    """

    question: str
    text: str
    context: list[Hit]
    citations: list[Citation] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    reports: list[StageReport] = field(default_factory=list)
    stages: list[StageReport] = field(default_factory=list)
    finish_reason: str = "stop"
    sentences: list[SentenceSupport] = field(default_factory=list)

    @property
    def not_found(self) -> bool:
        """True when the answer says the indexed material does not hold the answer."""
        return self.finish_reason == NOT_FOUND

    def grounding(self) -> dict[str, Any]:
        """Counts of supported, unsupported and inferred-citation sentences."""
        judged = [s for s in self.sentences if s.supported is not None]
        return {
            "sentences": len(self.sentences),
            "supported": sum(1 for s in judged if s.supported),
            "unsupported": sum(1 for s in judged if not s.supported),
            "uncited": sum(1 for s in self.sentences if not s.citations),
            "inferred": sum(1 for s in self.sentences if s.inferred),
            "verified": bool(judged),
        }

    def cited(self, number: int) -> Hit:
        """The passage behind citation `[number]` (1-based)."""
        if not 1 <= number <= len(self.context):
            raise KeyError(f"no passage [{number}] in a context of {len(self.context)}")
        return self.context[number - 1]

    def to_dict(self) -> dict[str, Any]:
        return {
            "question": self.question,
            "answer": self.text,
            "citations": [c.to_dict() for c in self.citations],
            "dropped_citations": list(self.dropped),
            "finish_reason": self.finish_reason,
            "not_found": self.not_found,
            "sentences": [s.to_dict() for s in self.sentences],
            "grounding": self.grounding(),
            "passages": [passage_dict(i, h) for i, h in enumerate(self.context, 1)],
            "stages": [report_dict(r) for r in self.stages],
            "reports": [report_dict(r) for r in self.reports],
        }


def passage_dict(number: int, hit: Hit) -> dict[str, Any]:
    """A numbered context passage as JSON (what the web page and the API show)."""
    doc = hit.doc
    return {
        "number": number,
        "id": doc.id,
        "source_id": doc.group,
        "source": doc.source,
        "modality": str(doc.modality),
        "text": hit.text,
        "score": hit.score,
        "span": doc.span.to_dict() if doc.span else None,
        "citation": doc.citation(),
        "has_media": bool(doc.media),
        "metadata": doc.metadata,
    }


def report_dict(report: StageReport) -> dict[str, Any]:
    return {
        "stage": report.stage,
        "name": report.name,
        "seconds": round(report.seconds, 4),
        "n_in": report.n_in,
        "n_out": report.n_out,
        "model_calls": report.model_calls,
        "tokens": report.tokens,
        "errors": list(report.errors),
        "extra": dict(report.extra),
    }


# A stream yields text pieces as they are generated, then the finished Answer last.
StreamItem = str | Answer


class Generator(ABC):
    """Answers the question of a `Ranked` result from its hits, citing them by number."""

    name: str = "generator"
    # Finds the file behind an image passage; a pipeline sets it from its store.
    media: MediaResolver | None = None

    def readable(self, hit: Hit) -> bool:
        """Whether this generator can read the passage (a pipeline leaves out the rest)."""
        return True

    @abstractmethod
    def stream(self, ranked: Ranked, max_tokens: int | None = None) -> Iterator[StreamItem]:
        """Text pieces, then the `Answer`. Closing the iterator early stops generation.

        `max_tokens` overrides the generator's own limit for this call.
        """

    def generate(self, ranked: Ranked, max_tokens: int | None = None) -> Answer:
        answer: Answer | None = None
        for item in self.stream(ranked, max_tokens):
            if isinstance(item, Answer):
                answer = item
        if answer is None:  # an implementation bug, not a user error
            raise RuntimeError(f"generator {self.name!r} ended its stream without an Answer")
        return answer
