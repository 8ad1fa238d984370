"""mmrag: multimodal retrieval-augmented generation.

Importing the package is cheap; models and indexes load when first used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mmrag.types import Document, Hit, Modality, Query, Ranked, Span, StageReport

if TYPE_CHECKING:
    from mmrag.index.base import Store

__version__ = "0.1.0"


def open_store(
    location: str | None = None, *, create: bool = True, read_only: bool = False
) -> Store:
    """Open (or create) a store: a folder for the embedded store, or a
    milvus://host:port/collection URI; default: $MMRAG_STORE, else the user data folder."""
    from mmrag.index.open import open_store as open_at
    from mmrag.index.open import store_location

    return open_at(store_location(location), create=create, read_only=read_only)


__all__ = ["Document", "Hit", "Modality", "Query", "Ranked", "Span", "StageReport", "open_store"]
