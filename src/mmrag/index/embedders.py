"""Field embedders: which documents get a vector in which field, and how.

A store can hold several vector fields (a text space, an image space, ...). Each
embedder owns one field, says which documents it accepts, and embeds them in batches.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar

import numpy as np

from mmrag.index.fields import TEXT
from mmrag.models.text import TextEncoder
from mmrag.types import Document


class FieldEmbedder(ABC):
    field: str
    dim: int
    # the space of the field's vectors (mmrag.index.fields): how retrievers read them
    space: ClassVar[str] = TEXT
    # Whether embed() may run in several threads at once, on disjoint documents, and
    # gains from it; the indexer then splits a batch across its encode workers.
    concurrent: bool = False

    @abstractmethod
    def info(self) -> dict[str, Any]:
        """Identifies the model; a store refuses to mix vectors from different models."""

    @abstractmethod
    def accepts(self, doc: Document) -> bool: ...

    @abstractmethod
    def embed(self, docs: Sequence[Document]) -> np.ndarray: ...

    def warm_up(self, doc: Document) -> None:
        """Called once, in one thread, before embed() runs concurrently."""
        self.embed([doc])


# Text encoder kinds (registry names) whose encode() may run in several threads at once.
# An ONNX Runtime session may be run concurrently and releases the GIL while it runs; with
# one intra-op thread per call, two calls use two cores (the tokenizer is set up once, at
# load). torch releases the GIL in its kernels too; sentence-transformers re-applies its
# truncation and padding to the shared Rust tokenizer only when they differ from the last
# call's, so after one call in a single thread (`warm_up`) concurrent calls are safe.
CONCURRENT_TEXT_ENCODERS = frozenset({"onnx", "sentence-transformers"})


class TextFieldEmbedder(FieldEmbedder):
    """Embeds every document that has text (chunks, captions, transcripts, OCR) in text space."""

    def __init__(self, encoder: TextEncoder, field: str = "text") -> None:
        self.encoder = encoder
        self.field = field
        self.dim = encoder.dim
        self.concurrent = encoder.kind in CONCURRENT_TEXT_ENCODERS

    def info(self) -> dict[str, Any]:
        return self.encoder.info()

    def accepts(self, doc: Document) -> bool:
        return bool(doc.text.strip())

    def embed(self, docs: Sequence[Document]) -> np.ndarray:
        return self.encoder.encode([d.text for d in docs])
