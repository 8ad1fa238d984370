"""Shot boundaries from sampled frames, and the keyframes that stand for each shot.

A cut is where consecutive sampled frames differ in colour distribution (half the L1
distance of normalised 4x4x4 RGB histograms: 0 for the same picture, 1 for disjoint
colours) by more than `threshold`, or by more than half of it while their 16x16
grey thumbnails also differ by more than `LUMA_CUT` on average. Histograms ignore
motion inside a shot, which keeps a pan or a moving subject from counting as cuts;
the thumbnail test catches cuts between two pictures of similar colours. (Measured on
119 consecutive pairs of different Flickr8k photos: histogram change >= 0.19, grey
change >= 0.105; between frames of one still shot both are ~0.) Keyframes are sampled
uniformly within each shot (at least one, from its middle), so a long shot is
represented by several frames, which the shot embedding mean-pools (CLIP4Clip meanP).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

BINS = 4  # per channel: 64 colours in all, coarse enough to ignore noise and compression
LUMA = 16  # side of the grey thumbnail
LUMA_CUT = 0.09


@dataclass(frozen=True, slots=True)
class Shot:
    index: int
    start: float
    end: float
    keyframes: tuple[int, ...]  # positions in the sampled frame list


def frame_signature(image: Image.Image) -> np.ndarray:
    """A frame's joint RGB histogram (BINS**3 cells, sums to 1) followed by its
    LUMA x LUMA grey thumbnail in [0, 1]."""
    bilinear = require("PIL.Image", "images").Resampling.BILINEAR
    pixels = np.asarray(image.convert("RGB").resize((64, 64), bilinear))
    q = (pixels.astype(np.int32) * BINS) // 256
    codes = (q[..., 0] * BINS + q[..., 1]) * BINS + q[..., 2]
    hist = np.bincount(codes.ravel(), minlength=BINS**3).astype(np.float64)
    grey = np.asarray(image.convert("L").resize((LUMA, LUMA), bilinear))
    return np.concatenate([hist / hist.sum(), grey.ravel().astype(np.float64) / 255.0])


def cut_positions(signatures: np.ndarray, threshold: float = 0.3) -> list[int]:
    """Positions i where a new shot starts at sampled frame i (never 0)."""
    if len(signatures) < 2:
        return []
    steps = np.diff(signatures, axis=0)
    colour = 0.5 * np.abs(steps[:, : BINS**3]).sum(axis=1)
    grey = np.abs(steps[:, BINS**3 :]).mean(axis=1)
    cut = (colour > threshold) | ((colour > threshold / 2) & (grey > LUMA_CUT))
    return [int(i) + 1 for i in np.flatnonzero(cut)]


def detect_shots(
    times: Sequence[float],
    signatures: np.ndarray,
    duration: float,
    threshold: float = 0.3,
    min_length: float = 0.5,
    keyframe_every: float = 2.0,
) -> list[Shot]:
    """Shots over the sampled frames at `times` (seconds, increasing).

    Cuts closer than `min_length` to the previous one are dropped (a flash is not a
    shot). A shot runs from its first sampled frame's time (0 for the first shot) to
    the next shot's start (`duration` for the last).
    """
    if not len(times):
        return []
    starts = [0]
    for i in cut_positions(signatures, threshold):
        if times[i] - times[starts[-1]] >= min_length:
            starts.append(i)
    shots = []
    end_of_video = max(duration, float(times[-1]))
    for n, first in enumerate(starts):
        last = starts[n + 1] if n + 1 < len(starts) else len(times)
        t0 = 0.0 if n == 0 else float(times[first])
        t1 = float(times[starts[n + 1]]) if n + 1 < len(starts) else end_of_video
        shots.append(Shot(n, t0, t1, keyframes_in(times, first, last, keyframe_every)))
    return shots


def keyframes_in(times: Sequence[float], first: int, last: int, every: float) -> tuple[int, ...]:
    """Frames first..last-1, one per `every` seconds, centred in the shot."""
    span = float(times[last - 1]) - float(times[first])
    count = max(1, int(span // every) + (1 if span % every > every / 2 else 0))
    # targets at the centres of `count` equal parts of the shot
    targets = [float(times[first]) + span * (k + 0.5) / count for k in range(count)]
    window = np.asarray(times[first:last], dtype=np.float64)
    picked = {first + int(np.abs(window - t).argmin()) for t in targets}
    return tuple(sorted(picked))
