"""Flat numpy storage for the sparse index: growable buffers and ranges of positions."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np


def ranges(starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """Concatenation of arange(s, e) for each pair, without a Python loop."""
    lengths = ends - starts
    total = int(lengths.sum())
    if total == 0:
        return np.empty(0, dtype=np.int64)
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    return np.arange(total, dtype=np.int64) + offsets


class Buffer:
    """A growable 1-D array with amortised O(1) appends; `view` is the filled part."""

    __slots__ = ("data", "size")

    def __init__(self, dtype: Any, values: np.ndarray | None = None) -> None:
        values = np.empty(0, dtype=dtype) if values is None else np.asarray(values, dtype=dtype)
        self.data = np.empty(max(16, len(values)), dtype=dtype)
        self.data[: len(values)] = values
        self.size = len(values)

    @classmethod
    def adopt(cls, dtype: Any, values: np.ndarray) -> Buffer:
        """A buffer over `values` itself when its dtype fits: loading need not copy."""
        buf = cls.__new__(cls)
        buf.data = np.ascontiguousarray(values, dtype=dtype)
        buf.size = len(buf.data)
        return buf

    @property
    def view(self) -> np.ndarray:
        return self.data[: self.size]

    def extend(self, values: np.ndarray | Sequence[Any]) -> None:
        values = np.asarray(values, dtype=self.data.dtype)
        need = self.size + len(values)
        if need > len(self.data):
            grown = np.empty(max(need, 2 * len(self.data)), dtype=self.data.dtype)
            grown[: self.size] = self.view
            self.data = grown
        self.data[self.size : need] = values
        self.size = need

    def truncate(self, size: int) -> None:
        self.size = size
