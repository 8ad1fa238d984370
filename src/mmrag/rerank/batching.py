"""Length-sorted batches: candidates of similar length share a batch, so less padding."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def length_sorted_batches(texts: Sequence[str], batch_size: int) -> Iterator[list[int]]:
    """Indices of `texts` in batches of at most `batch_size`, longest texts first."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(order), batch_size):
        yield order[start : start + batch_size]
