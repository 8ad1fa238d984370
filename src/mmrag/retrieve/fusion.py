"""Fuse ranked lists: reciprocal rank fusion and normalised weighted sums."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from mmrag.errors import ConfigError
from mmrag.types import Hit


def rrf(lists: Sequence[list[Hit]], weights: Sequence[float], k0: float = 60.0) -> list[Hit]:
    """score(d) = sum_i w_i / (k0 + rank_i(d)), ranks from 1 (Cormack et al., 2009)."""
    return _combine(
        lists,
        [[w / (k0 + r) for r in range(1, len(h) + 1)] for h, w in zip(lists, weights, strict=True)],
    )


def weighted(
    lists: Sequence[list[Hit]], weights: Sequence[float], normalise: str = "minmax"
) -> list[Hit]:
    """score(d) = sum_i w_i * norm_i(score_i(d)); a list that misses d adds nothing."""
    contributions = []
    for hits, w in zip(lists, weights, strict=True):
        s = np.array([h.score for h in hits], dtype=np.float64)
        contributions.append((w * _normalise(s, normalise)).tolist())
    return _combine(lists, contributions)


def _normalise(s: np.ndarray, how: str) -> np.ndarray:
    if len(s) == 0:
        return s
    if how == "minmax":
        span = s.max() - s.min()
        return (s - s.min()) / span if span > 0 else np.ones_like(s)
    if how == "zscore":
        std = s.std()
        return (s - s.mean()) / std if std > 0 else np.zeros_like(s)
    raise ConfigError(f"unknown normalisation {how!r}; use minmax or zscore")


def _combine(lists: Sequence[list[Hit]], contributions: Sequence[list[float]]) -> list[Hit]:
    fused: dict[str, Hit] = {}
    for hits, contrib in zip(lists, contributions, strict=True):
        for hit, c in zip(hits, contrib, strict=True):
            if hit.doc.id in fused:
                f = fused[hit.doc.id]
                f.score += c
                f.scores.update(hit.scores)
            else:
                fused[hit.doc.id] = Hit(doc=hit.doc, score=c, scores=dict(hit.scores))
    out = sorted(fused.values(), key=lambda h: (-h.score, h.doc.id))
    return out


FUSIONS = {"rrf": rrf, "weighted": weighted}
