"""The reranker interface: a ranked list in, the same candidates re-ordered out.

Every reranker returns a complete ranking. Duplicate documents (same id) are kept
once, at their best position; candidates a model could not score (a failing or garbage
LM, a missing image) follow the scored ones in their input order, and what failed is
listed in the stage's `StageReport`. Only the first `depth` candidates are rescored;
the rest keep their input order after them.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from mmrag.errors import ConfigError, ModelError
from mmrag.stage import Limits, Stage
from mmrag.text_script import dominant_script, normalise_scripts, reads
from mmrag.types import Hit, Query, Ranked, StageReport, timed


@dataclass(slots=True)
class Scores:
    """A reranker's scores with the parts they were made from (e.g. fusion members),
    which are recorded in each hit's `scores` for explanation."""

    total: np.ndarray
    parts: Mapping[str, np.ndarray] = field(default_factory=dict)


def scores_from_order(order: Sequence[int], n: int) -> np.ndarray:
    """Scores for an ordering of n candidates: n for the first, n-1 for the next, ..."""
    scores = np.full(n, np.nan)
    for position, index in enumerate(order):
        scores[index] = float(n - position)
    return scores


def unique_hits(hits: Sequence[Hit]) -> tuple[list[Hit], int]:
    """The hits with each document id once (its first, best-ranked occurrence)."""
    seen: set[str] = set()
    out: list[Hit] = []
    for hit in hits:
        if hit.doc.id not in seen:
            seen.add(hit.doc.id)
            out.append(hit)
    return out, len(hits) - len(out)


def apply_scores(
    hits: Sequence[Hit],
    scores: np.ndarray,
    name: str,
    parts: Mapping[str, np.ndarray] | None = None,
) -> list[Hit]:
    """New hits ordered by score; unscored (NaN) hits follow in input order.

    An unscored hit gets a score below every scored one, so sorting by `score` anywhere
    downstream keeps this order. `parts` (name -> one value per hit) are recorded in
    each hit's `scores` where finite.
    """
    scores = np.asarray(scores, dtype=np.float64)
    if len(scores) != len(hits):
        raise ValueError(f"{len(scores)} scores for {len(hits)} candidates")
    ok = ~np.isnan(scores)
    scored = sorted(np.flatnonzero(ok).tolist(), key=lambda i: (-scores[i], i))
    floor = float(scores[ok].min()) if ok.any() else 0.0
    out: list[Hit] = []
    for i in scored:
        out.append(_rescored(hits[i], float(scores[i]), name))
    for j, i in enumerate(np.flatnonzero(~ok).tolist()):
        out.append(_rescored(hits[i], floor - 1.0 - j, name, scored=False))
    if parts:
        order = scored + np.flatnonzero(~ok).tolist()
        for hit, i in zip(out, order, strict=True):
            for part, values in parts.items():
                if np.isfinite(values[i]):
                    hit.scores[part] = float(values[i])
    return out


def _rescored(hit: Hit, score: float, name: str, scored: bool = True) -> Hit:
    scores = dict(hit.scores)
    if scored:
        scores[name] = score
    return Hit(doc=hit.doc, score=score, scores=scores, passage=hit.passage, kept=list(hit.kept))


class Reranker(Stage):
    """Re-orders candidates for a query.

    Subclasses implement `score`: one new score per candidate, NaN where it could not
    be scored. Methods that produce an order rather than scores (listwise, pairwise)
    return scores that decrease along their order (`scores_from_order`). `depth` limits
    how many of the input candidates are rescored (None: all). `scripts` are the
    writing systems the model reads (mmrag.text_script; None: any): a query in another
    keeps its input order, reported as `skipped`, rather than be ranked by noise.
    """

    name: str = "reranker"
    kind: ClassVar[str] = "rerank"
    scripts: frozenset[str] | None = None

    def __init__(self, depth: int | None = None, *, scripts: Sequence[str] | None = None) -> None:
        if depth is not None and depth < 1:
            raise ConfigError(f"depth must be at least 1, got {depth}")
        self.depth = depth
        self.scripts = normalise_scripts(scripts)

    @abstractmethod
    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray | Scores:
        """Score the (unique, non-empty) candidates; record calls, tokens and failures."""

    def apply(self, ranked: Ranked, limits: Limits) -> Ranked:
        return self.rerank(ranked, limits.k)

    def summarise(
        self, before: Ranked, after: Ranked, reports: Sequence[StageReport], limits: Limits
    ) -> dict[str, Any]:
        return {"k": limits.k}

    def rerank(self, ranked: Ranked, k: int | None = None, *, query: Query | None = None) -> Ranked:
        """Rerank `ranked` for its query (or `query`), keeping the top `k` (None: all)."""
        if k is not None and k < 1:
            raise ConfigError(f"k must be at least 1, got {k}")
        query = query or ranked.query
        report = StageReport(stage="rerank", name=self.name, n_in=len(ranked.hits))
        with timed(report):
            hits, duplicates = unique_hits(ranked.hits)
            if duplicates:
                report.extra["duplicates_dropped"] = duplicates
            depth = len(hits) if self.depth is None else min(self.depth, len(hits))
            if not reads(self.scripts, query.text):
                report.extra["skipped"] = (
                    f"the model reads {', '.join(sorted(self.scripts or ()))} text; "
                    f"the query is {dominant_script(query.text)}"
                )
                depth = 0
            head, tail = hits[:depth], hits[depth:]
            new = self._safe_order(query, head, report) if head else []
            floor = new[-1].score if new else 0.0
            # Candidates below `depth` keep their input order under the reranked head.
            new += [_rescored(h, floor - 1.0 - j, self.name, False) for j, h in enumerate(tail)]
            if k is not None:
                new = new[:k]
        report.n_out = len(new)
        return ranked.with_hits(new, report)

    def _safe_order(self, query: Query, hits: list[Hit], report: StageReport) -> list[Hit]:
        parts: Mapping[str, np.ndarray] = {}
        try:
            result = self.score(query, hits, report)
            if isinstance(result, Scores):
                result, parts = result.total, result.parts
            scores = np.asarray(result, dtype=np.float64)
        except (ModelError, RuntimeError, ValueError, OSError, TimeoutError) as exc:
            # A model that fails as a whole leaves the input order, reported, not raised:
            # the pipeline still has its first-stage ranking.
            report.errors.append(f"{type(exc).__name__}: {exc}")
            scores = np.full(len(hits), np.nan)
        unscored = int(np.isnan(scores).sum())
        if unscored:
            report.extra["unscored"] = unscored
        return apply_scores(hits, scores, self.name, parts)
