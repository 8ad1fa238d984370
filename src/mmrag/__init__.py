"""mmrag: multimodal retrieval-augmented generation.

Importing the package is cheap; models and indexes load when first used.
"""

from mmrag.types import Document, Hit, Modality, Query, Ranked, Span, StageReport

__version__ = "0.1.0"


def open_store(path: str | None = None, **options: object) -> "EmbeddedStore":  # noqa: F821
    """Open or create the embedded store at `path` (default: $MMRAG_STORE, else user data)."""
    from pathlib import Path

    from mmrag.cli import store_path
    from mmrag.index.store import EmbeddedStore

    return EmbeddedStore(store_path(Path(path) if path else None), **options)  # type: ignore[arg-type]


__all__ = ["Document", "Hit", "Modality", "Query", "Ranked", "Span", "StageReport", "open_store"]
