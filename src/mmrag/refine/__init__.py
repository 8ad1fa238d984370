"""Refiners: fit retrieved material to the generator's budget without losing the answer.

Each takes ranked hits and a token budget and returns hits whose `passage` is the kept text
and whose `kept` spans point into the source, so answers can still cite it.
"""

from __future__ import annotations

from mmrag.refine.base import Refiner, TextRefiner
from mmrag.registry import Registry

REFINERS: Registry[Refiner] = Registry(
    "refiner",
    {
        "extractive": "mmrag.refine.extractive:ExtractiveRefiner",
        "lingua": "mmrag.refine.lingua:LinguaRefiner",
        "lingua-fast": "mmrag.refine.lingua:FastLinguaRefiner",
        "abstractive": "mmrag.refine.abstractive:AbstractiveRefiner",
        "visual": "mmrag.refine.visual:VisualRefiner",
    },
)


def load_refiner(name: str, **params: object) -> Refiner:
    """A refiner by registry name (or "module:Class") with its constructor parameters."""
    return REFINERS.create(name, **params)


__all__ = ["REFINERS", "Refiner", "TextRefiner", "load_refiner"]
