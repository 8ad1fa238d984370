"""What one write to a store carries: sources replaced whole, their documents, tokens, vectors."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mmrag.types import Document


@dataclass(frozen=True, slots=True)
class SourceInfo:
    """What the store remembers about an ingested file or record, for idempotent re-indexing."""

    source_id: str
    content_hash: str
    path: str | None = None
    title: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class FieldVectors:
    """Vectors of one field for some of a batch's documents: `positions` index `Batch.docs`.

    Not every document has every field: a text chunk has no image-space vector of its own.
    """

    positions: np.ndarray  # int64, (n,)
    vectors: np.ndarray  # float32, (n, dim)

    @classmethod
    def full(cls, vectors: np.ndarray) -> FieldVectors:
        return cls(np.arange(len(vectors), dtype=np.int64), vectors)


@dataclass(slots=True)
class Batch:
    """Everything one transaction writes: sources replaced whole, their chunks, tokens, vectors."""

    sources: list[SourceInfo] = field(default_factory=list)
    docs: list[Document] = field(default_factory=list)
    # analysed tokens per document; a backend that analyses text itself ignores them,
    # and the embedded store computes them when they are left empty
    tokens: list[list[str]] = field(default_factory=list)
    vectors: dict[str, FieldVectors] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.docs)


@dataclass(slots=True)
class PreparedSource:
    """One source ready to embed and write: its chunks, their analysed tokens, its size.

    `tokens` is empty when the store analyses text itself. `nbytes` is the UTF-8 size of
    the chunks' text: what prefetching and commit batches are bounded by.
    """

    info: SourceInfo
    docs: list[Document]
    tokens: list[list[str]] = field(default_factory=list)
    nbytes: int = 0


def text_bytes(docs: list[Document]) -> int:
    return sum(len(d.text.encode("utf-8")) for d in docs)
