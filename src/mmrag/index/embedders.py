"""Field embedders: which documents get a vector in which field, and how.

A store can hold several vector fields (a text space, an image space, ...). Each
embedder owns one field, says which documents it accepts, and embeds them in batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from mmrag.models.text import TextEncoder
from mmrag.types import Document


class FieldEmbedder(ABC):
    field: str
    dim: int

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Identifies the model; a store refuses to mix vectors from different models."""

    @abstractmethod
    def accepts(self, doc: Document) -> bool: ...

    @abstractmethod
    def embed(self, docs: Sequence[Document]) -> np.ndarray: ...


class TextFieldEmbedder(FieldEmbedder):
    """Embeds every document that has text (chunks, captions, transcripts, OCR) in text space."""

    def __init__(self, encoder: TextEncoder, field: str = "text") -> None:
        self.encoder = encoder
        self.field = field
        self.dim = encoder.dim

    def info(self) -> dict[str, Any]:
        return self.encoder.info()

    def accepts(self, doc: Document) -> bool:
        return bool(doc.text.strip())

    def embed(self, docs: Sequence[Document]) -> np.ndarray:
        return self.encoder.encode([d.text for d in docs])
