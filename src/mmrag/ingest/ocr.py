"""OCR with RapidOCR (packaged PP-OCRv4 detection and recognition models, Chinese + English).

Full OCR costs seconds per page on this CPU, so `OCR.has_text` first runs the text
detector alone on a small copy of the image (a few hundred ms): photos without text
are skipped, receipts, slides, screenshots and scans are read.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from mmrag.registry import require

if TYPE_CHECKING:
    from PIL import Image

# Detection for the has-text check runs with the longer side at most this many pixels.
CHECK_SIDE = 640
# Boxes found by that check for an image to count as carrying text: a stray sign or
# a logo on a shirt gives one or two, a receipt or a slide dozens.
MIN_BOXES = 4
# Recognised lines below this confidence are dropped (RapidOCR's own default is 0.5).
MIN_SCORE = 0.5


@dataclass(frozen=True, slots=True)
class OCRLine:
    text: str
    score: float
    box: list[list[float]]  # four corner points, clockwise from top-left, in pixels


@dataclass(frozen=True, slots=True)
class OCRResult:
    lines: list[OCRLine] = field(default_factory=list)

    @property
    def text(self) -> str:
        """Recognised lines in reading order, one per line."""
        return "\n".join(line.text for line in self.lines)


def _reading_order(lines: list[OCRLine]) -> list[OCRLine]:
    """Top to bottom, and left to right within a row (boxes whose centres are close in y)."""
    if not lines:
        return lines
    heights = [max(p[1] for p in ln.box) - min(p[1] for p in ln.box) for ln in lines]
    tolerance = max(1.0, float(np.median(heights)) / 2)

    def key(line: OCRLine) -> tuple[int, float]:
        cy = sum(p[1] for p in line.box) / 4
        return (int(cy // tolerance), min(p[0] for p in line.box))

    return sorted(lines, key=key)


class OCR:
    """Reads text from images; engines are created on first use and shared."""

    def __init__(self, min_boxes: int = MIN_BOXES, min_score: float = MIN_SCORE) -> None:
        self.min_boxes = min_boxes
        self.min_score = min_score
        # onnxruntime sessions may be shared across threads, RapidOCR's Python glue not.
        self._lock = threading.Lock()

    def has_text(self, image: Image.Image) -> bool:
        """Cheap check: does the text detector find enough boxes on a small copy?"""
        small = image.copy()
        small.thumbnail((CHECK_SIDE, CHECK_SIDE))
        with self._lock:
            boxes, _ = _detector()(np.asarray(small), use_det=True, use_cls=False, use_rec=False)
        return boxes is not None and len(boxes) >= self.min_boxes

    def read(self, image: Image.Image) -> OCRResult:
        with self._lock:
            found, _ = _reader()(np.asarray(image))
        lines = [
            OCRLine(str(text).strip(), float(score), [[float(x), float(y)] for x, y in box])
            for box, text, score in (found or [])
            if float(score) >= self.min_score and str(text).strip()
        ]
        return OCRResult(_reading_order(lines))


@lru_cache(maxsize=1)
def _reader() -> Any:
    rapidocr = require("rapidocr_onnxruntime", "ocr")
    return rapidocr.RapidOCR()


@lru_cache(maxsize=1)
def _detector() -> Any:
    rapidocr = require("rapidocr_onnxruntime", "ocr")
    # "max": shrink so the longer side fits; the reader's default ("min", 736) enlarges
    # small images, which is right for reading and wasteful for a yes/no check.
    return rapidocr.RapidOCR(det_limit_side_len=CHECK_SIDE, det_limit_type="max")


@lru_cache(maxsize=1)
def default_ocr() -> OCR:
    return OCR()
