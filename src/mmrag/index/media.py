"""Documents' media files, found only inside the folder a store keeps them in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmrag.types import Document


def media_resolver(root: str | Path) -> Callable[[Document], Path | None]:
    """Find a document's media file, only ever inside the store folder `root`.

    A relative `media` reference is taken from `root`; a document without one falls
    back to its source file (uploaded files live in the store). Anything that resolves
    outside `root` (absolute paths, `..`, symlinks leading out) is refused.
    """
    base = Path(root).resolve()

    def resolve(doc: Document) -> Path | None:
        ref = doc.media or doc.source
        if not ref or "\x00" in ref:
            return None
        path = (base / ref).resolve()  # an absolute ref replaces base, then must lie inside it
        if not path.is_relative_to(base) or path == base or not path.is_file():
            return None
        return path

    return resolve
