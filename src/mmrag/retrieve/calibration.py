"""Score calibrations per encoder, so lists from different modalities can be fused.

A cosine of 0.4 means a good match for one encoder and noise for another; RRF hides
that by using ranks only, so a photo that matches a caption ties with the best of a
list of unrelated text. A Platt calibration per encoder (fitted by
`bench/fit_calibrations.py` on labelled pairs, stored in `data/calibrations.json`) turns
each member's raw cosine into a probability of relevance that fusion can compare.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Any

from mmrag.retrieve.crossmodal import Platt

CALIBRATIONS = "calibrations.json"


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
