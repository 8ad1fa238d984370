"""Fuse ranked lists: reciprocal rank fusion and normalised weighted sums.

The arithmetic works on keys and scores alone, so the hybrid retriever can fuse store
row ids and load documents only for the hits it returns; `rrf` and `weighted` apply it
to lists of hits, keyed by document id.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field

import numpy as np

from mmrag.errors import ConfigError
from mmrag.types import Hit


@dataclass(slots=True)
class Fused:
    """One fused candidate: its key, fused score, and the score each member gave it."""

    key: Hashable
    score: float
    members: dict[int, float] = field(default_factory=dict)  # list index -> member score


def rrf_contributions(
    scores: Sequence[Sequence[float]], weights: Sequence[float], k0: float = 60.0
) -> list[list[float]]:
    """w_i / (k0 + rank_i(d)), ranks from 1 (Cormack et al., 2009)."""
    return [
        [w / (k0 + r) for r in range(1, len(s) + 1)] for s, w in zip(scores, weights, strict=True)
    ]


def weighted_contributions(
    scores: Sequence[Sequence[float]], weights: Sequence[float], normalise: str = "minmax"
) -> list[list[float]]:
    """w_i * norm_i(score_i(d)); a list that misses d adds nothing."""
    return [
        (w * _normalise(np.asarray(s, dtype=np.float64), normalise)).tolist()
        for s, w in zip(scores, weights, strict=True)
    ]


def fuse_keys(
    keys: Sequence[Sequence[Hashable]],
    scores: Sequence[Sequence[float]],
    contributions: Sequence[Sequence[float]],
    tie_key: Callable[[Hashable], str],
) -> list[Fused]:
    """Sum each key's contributions, best first; equal sums ordered by `tie_key` (the
    document id), so the order does not depend on which store produced the keys."""
    fused: dict[Hashable, Fused] = {}
    for i, (ks, ss, cs) in enumerate(zip(keys, scores, contributions, strict=True)):
        for key, s, c in zip(ks, ss, cs, strict=True):
            f = fused.get(key)
            if f is None:
                fused[key] = Fused(key, c, {i: s})
            else:
                f.score += c
                f.members[i] = s
    return sorted(fused.values(), key=lambda f: (-f.score, tie_key(f.key)))


def contributions(
    method: str,
    scores: Sequence[Sequence[float]],
    weights: Sequence[float],
    rrf_k: float = 60.0,
    normalise: str = "minmax",
) -> list[list[float]]:
    if method == "rrf":
        return rrf_contributions(scores, weights, rrf_k)
    if method == "weighted":
        return weighted_contributions(scores, weights, normalise)
    raise ConfigError(f"unknown fusion {method!r}; use rrf or weighted")


def rrf(lists: Sequence[list[Hit]], weights: Sequence[float], k0: float = 60.0) -> list[Hit]:
    """Reciprocal rank fusion of hit lists."""
    return fuse_hits(lists, rrf_contributions(_scores(lists), weights, k0))


def weighted(
    lists: Sequence[list[Hit]], weights: Sequence[float], normalise: str = "minmax"
) -> list[Hit]:
    """Normalised weighted sum of hit lists."""
    return fuse_hits(lists, weighted_contributions(_scores(lists), weights, normalise))


def _scores(lists: Sequence[list[Hit]]) -> list[list[float]]:
    return [[h.score for h in hits] for hits in lists]


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


def fuse_hits(lists: Sequence[list[Hit]], contrib: Sequence[Sequence[float]]) -> list[Hit]:
    """Hit lists fused by per-hit contributions (see `contributions`), keyed by document id."""
    per_list = [{h.doc.id: h for h in hits} for hits in lists]
    keys = [[h.doc.id for h in hits] for hits in lists]
    out = []
    for f in fuse_keys(keys, _scores(lists), contrib, tie_key=str):
        scores: dict[str, float] = {}
        for i in sorted(f.members):  # in member order, as each adds its explanation
            scores.update(per_list[i][f.key].scores)
        first = per_list[min(f.members)][f.key]
        out.append(Hit(doc=first.doc, score=f.score, scores=scores))
    return out


FUSIONS = {"rrf": rrf, "weighted": weighted}
