"""The refiner interface: a question and ranked hits in, hits cut down to a token budget out.

Every refiner returns a `Ranked` whose hits carry the kept text in `Hit.passage` and the
kept character ranges in `Hit.kept` (offsets into the source, like `Document.span`), so
an answer built from the refined context can still cite its source. The base class does
the bookkeeping all refiners share: budget arithmetic, token counting, bad-input
warnings, and the `StageReport` (tokens in/out, achieved rate, what was dropped).
"""

from __future__ import annotations

import math
import time
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from mmrag.errors import ConfigError
from mmrag.ingest.chunking import TokenCounter  # budgets count generator tokens, as chunks do
from mmrag.refine.sentences import join_pieces
from mmrag.stage import Limits, Stage
from mmrag.types import Hit, Query, Ranked, Span, StageReport

DEFAULT_RATE = 2.0
# Below this many tokens a context is useless; a too-small budget still gets this much,
# and the report says so.
MIN_CONTEXT_TOKENS = 16


@dataclass(slots=True)
class Budget:
    """How many passage tokens a refiner may keep, and how that number was reached."""

    passage_tokens_in: int
    question_tokens: int
    instruction_tokens: int
    target: int  # passage tokens to keep
    warnings: list[str] = field(default_factory=list)


@dataclass(slots=True)
class Selection:
    """What a refiner decided, per input hit (same order as `Ranked.hits`).

    `spans[i]` are the kept character ranges of hit i's text (empty: hit dropped);
    `passages[i]`, when set, replaces the text rebuilt from the spans (abstractive
    summaries); `order` lists hit indices in output order (None: keep input order).
    """

    spans: list[list[tuple[int, int]]]
    passages: list[str | None] | None = None
    order: list[int] | None = None
    model_calls: int = 0
    warnings: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


def check_rate(rate: float | None, budget_tokens: int | None) -> None:
    if rate is not None:
        if not math.isfinite(rate) or rate < 1.0:
            hint = f"; did you mean {1 / rate:g}?" if 0 < rate < 1 else ""
            raise ConfigError(
                f"rate is a compression factor >= 1 (4 keeps a quarter of the tokens), "
                f"got {rate}{hint}"
            )
    if budget_tokens is not None and budget_tokens < 0:
        raise ConfigError(f"budget_tokens must be >= 0, got {budget_tokens}")


def plan_budget(
    passage_tokens: list[int],
    question_tokens: int,
    instruction_tokens: int,
    budget_tokens: int | None,
    rate: float | None,
) -> Budget:
    """Passage tokens to keep: `budget_tokens` covers instruction + question + passages
    (the question and instruction are never cut); `rate` divides the passage tokens;
    with both, the tighter one wins."""
    total = sum(passage_tokens)
    budget = Budget(total, question_tokens, instruction_tokens, total)
    if rate is None and budget_tokens is None:
        rate = DEFAULT_RATE
    if rate is not None:
        budget.target = math.ceil(total / rate)
    if budget_tokens is not None:
        left = budget_tokens - question_tokens - instruction_tokens
        if left < MIN_CONTEXT_TOKENS:
            budget.warnings.append(
                f"budget of {budget_tokens} tokens leaves {left} after the question "
                f"({question_tokens}) and instruction ({instruction_tokens}); "
                f"kept {MIN_CONTEXT_TOKENS} tokens of context anyway"
            )
            left = MIN_CONTEXT_TOKENS
        budget.target = min(budget.target, left)
    budget.target = min(total, max(budget.target, min(total, MIN_CONTEXT_TOKENS)))
    return budget


class Refiner(Stage):
    """Fits the hits of a `Ranked` into a token budget; every kept piece points to its source."""

    name: str = "refiner"
    kind: ClassVar[str] = "refine"

    def __init__(self, instruction: str = "") -> None:
        # The generator's instruction counts against `budget_tokens` like the question.
        self.instruction = instruction

    @abstractmethod
    def refine(
        self,
        ranked: Ranked,
        budget_tokens: int | None = None,
        rate: float | None = None,
        *,
        query: Query | None = None,
    ) -> Ranked:
        """Hits cut down to `budget_tokens` in all (instruction + question + passages) or
        to 1/`rate` of the passage tokens; neither given: rate 2. Refined for the
        ranking's own query unless `query` is given."""

    def apply(self, ranked: Ranked, limits: Limits) -> Ranked:
        return self.refine(ranked, limits.tokens)

    def summarise(
        self, before: Ranked, after: Ranked, reports: Sequence[StageReport], limits: Limits
    ) -> dict[str, Any]:
        extra: dict[str, Any] = {
            "budget": limits.tokens,
            "words_in": _words(before),
            "words_out": _words(after),
        }
        # the refiner counts with its own tokenizer: pass its figures on
        for report in reports:
            for key in ("tokens_in", "tokens_out", "achieved_rate"):
                if key in report.extra:
                    extra[key] = report.extra[key]
        return extra


def _words(ranked: Ranked) -> int:
    return sum(len(h.text.split()) for h in ranked.hits)


class TextRefiner(Refiner):
    """The template of refiners that keep pieces of text: the base counts tokens, plans
    the budget and builds the hits; a subclass decides what to keep (`select`)."""

    @abstractmethod
    def counter(self) -> TokenCounter:
        """The token counter budgets are measured with."""

    @abstractmethod
    def select(
        self, query: Query, texts: list[str], tokens: list[int], budget: Budget
    ) -> Selection:
        """Decide what to keep of each text so the kept passages fit `budget.target` tokens."""

    def refine(
        self,
        ranked: Ranked,
        budget_tokens: int | None = None,
        rate: float | None = None,
        *,
        query: Query | None = None,
    ) -> Ranked:
        query = query or ranked.query
        check_rate(rate, budget_tokens)
        start = time.perf_counter()
        report = StageReport(stage="refine", name=self.name, n_in=len(ranked.hits))
        hits = ranked.hits
        texts = [h.text for h in hits]
        if not any(t.strip() for t in texts):
            report.errors.append("no hits with text to refine" if hits else "no hits to refine")
            report.extra.update(
                tokens_in=0, tokens_out=0, achieved_rate=1.0, dropped=[h.doc.id for h in hits]
            )
            report.seconds = time.perf_counter() - start
            return ranked.with_hits([], report)
        counter = self.counter()
        passage_tokens = counter.count_many(texts)
        budget = plan_budget(
            passage_tokens,
            counter.count(query.text),
            counter.count(self.instruction),
            budget_tokens,
            rate,
        )
        selection = self.select(query, texts, passage_tokens, budget)
        out_hits, dropped = _build_hits(hits, texts, selection)
        tokens_out = sum(counter.count_many([h.text for h in out_hits]))
        report.errors.extend(budget.warnings + selection.warnings)
        report.n_out = len(out_hits)
        report.model_calls = selection.model_calls
        report.tokens = budget.passage_tokens_in
        report.extra.update(
            tokens_in=budget.passage_tokens_in,
            tokens_out=tokens_out,
            target_tokens=budget.target,
            question_tokens=budget.question_tokens,
            instruction_tokens=budget.instruction_tokens,
            achieved_rate=round(budget.passage_tokens_in / max(tokens_out, 1), 3),
            dropped=dropped,
            **selection.extra,
        )
        report.seconds = time.perf_counter() - start
        return ranked.with_hits(out_hits, report)


def _source_spans(hit: Hit, spans: list[tuple[int, int]]) -> list[Span]:
    """Offsets into the passage shifted into the source, when the hit's text is the document's."""
    doc_span = hit.doc.span
    base = doc_span.start if doc_span is not None and doc_span.start is not None else 0
    page = doc_span.page if doc_span is not None else None
    if hit.passage is not None and hit.kept:
        # An earlier refiner already cut this hit: its passage is no longer the source
        # text, so offsets are mapped through what that refiner kept.
        return _through_kept(hit.passage, hit.kept, spans)
    return [Span(start=base + a, end=base + b, page=page) for a, b in spans]


def _through_kept(passage: str, kept: list[Span], spans: list[tuple[int, int]]) -> list[Span]:
    """Map spans of a refined passage back into the source via the earlier kept spans."""
    # The refined passage is the earlier pieces joined by one space or nothing; find
    # each piece's offset in the passage to invert that join.
    pieces: list[tuple[int, Span]] = []
    pos = 0
    for span in kept:
        length = (span.end or 0) - (span.start or 0)
        while pos < len(passage) and passage[pos] == " ":
            pos += 1
        pieces.append((pos, span))
        pos += length
    out: list[Span] = []
    for a, b in spans:
        for offset, span in pieces:
            length = (span.end or 0) - (span.start or 0)
            lo, hi = max(a, offset), min(b, offset + length)
            if lo < hi and span.start is not None:
                out.append(
                    Span(
                        start=span.start + lo - offset, end=span.start + hi - offset, page=span.page
                    )
                )
    return out


def _build_hits(
    hits: list[Hit], texts: list[str], selection: Selection
) -> tuple[list[Hit], list[str]]:
    if len(selection.spans) != len(hits):
        raise ValueError("a refiner must return one span list per hit")
    order = selection.order if selection.order is not None else list(range(len(hits)))
    out: list[Hit] = []
    dropped = [hits[i].doc.id for i in range(len(hits)) if not selection.spans[i]]
    for i in order:
        spans = selection.spans[i]
        if not spans:
            continue
        passage, merged = join_pieces(texts[i], spans)
        if selection.passages is not None and selection.passages[i] is not None:
            passage = selection.passages[i] or ""
        hit = hits[i]
        out.append(
            Hit(
                doc=hit.doc,
                score=hit.score,
                scores=dict(hit.scores),
                passage=passage,
                kept=_source_spans(hit, merged),
            )
        )
    return out, dropped
