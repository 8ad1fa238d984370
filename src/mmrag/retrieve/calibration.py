"""Score calibrations per encoder, so lists from different modalities can be fused.

A cosine of 0.4 means a good match for one encoder and noise for another; RRF hides
that by using ranks only, so a photo that matches a caption ties with the best of a
list of unrelated text. A Platt calibration per encoder (fitted by
`bench/fit_calibrations.py` on labelled pairs, stored in `data/calibrations.json`) turns
each member's raw cosine into a probability of relevance that fusion can compare.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

import numpy as np

from mmrag.errors import ConfigError

CALIBRATIONS = "calibrations.json"


@dataclass(frozen=True, slots=True)
class Platt:
    """P(relevant | score) = sigmoid(a * score + b), fitted per retriever (Platt, 1999)."""

    a: float
    b: float

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.a * scores + self.b)))


def fit_platt(scores: Sequence[float], labels: Sequence[int], iters: int = 100) -> Platt:
    """Logistic regression of labels on scores by Newton's method, with Platt's smoothed
    targets so a separable sample does not send the slope to infinity."""
    s = np.asarray(scores, np.float64)
    y = np.asarray(labels, np.float64)
    if len(s) != len(y) or not len(s):
        raise ConfigError("fit_platt needs one label per score")
    pos, neg = y.sum(), len(y) - y.sum()
    if pos == 0 or neg == 0:
        raise ConfigError("fit_platt needs relevant and non-relevant examples")
    t = np.where(y > 0, (pos + 1) / (pos + 2), 1 / (neg + 2))
    a, b = 0.0, math.log((pos + 1) / (neg + 1))
    for _ in range(iters):
        p = 1 / (1 + np.exp(-(a * s + b)))
        g = np.array([((p - t) * s).sum(), (p - t).sum()])
        w = p * (1 - p) + 1e-12
        h = np.array([[(w * s * s).sum(), (w * s).sum()], [(w * s).sum(), w.sum()]])
        step = np.linalg.solve(h + 1e-9 * np.eye(2), g)
        a, b = a - step[0], b - step[1]
        if np.abs(step).max() < 1e-9:
            break
    return Platt(float(a), float(b))


def encoder_key(field_info: dict[str, Any]) -> str:
    """`kind:model[:head]` of a field's encoder: what a calibration is fitted for."""
    enc = field_info.get("encoder", {})
    key = f"{enc.get('kind')}:{enc.get('model')}"
    head = (enc.get("params") or {}).get("head")
    return f"{key}:{head}" if head else key


@lru_cache(maxsize=1)
def _table() -> dict[str, dict[str, Any]]:
    path = resources.files("mmrag") / "data" / CALIBRATIONS
    if not path.is_file():
        return {}
    return json.loads(path.read_text(encoding="utf-8"))


def calibration_for(field_info: dict[str, Any]) -> Platt | None:
    """The shipped calibration of this field's encoder, or None if none was fitted."""
    entry = _table().get(encoder_key(field_info))
    return Platt(float(entry["a"]), float(entry["b"])) if entry else None
