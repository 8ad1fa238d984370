"""A Query from the command line's text, --filter and --image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mmrag.errors import MMRagError


def build_query(text: str, filters: str | None, image: Path | None = None) -> Any:
    from mmrag.index.filters import parse_filter_arg
    from mmrag.types import Query

    if image is not None and not image.is_file():
        raise MMRagError(f"query image {image} does not exist")
    if not text.strip() and image is None:
        raise MMRagError("the query is empty")
    return Query(
        text=text,
        image=str(image.resolve()) if image else None,
        filters=parse_filter_arg(filters) if filters else None,
    )
