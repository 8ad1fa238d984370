"""Documents' media files, found only inside the folder a store keeps them in."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mmrag.index.base import Store
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


def collect_orphan_files(store: Store, folder: Path) -> list[Path]:
    """Delete the files under `folder` that no stored source names, and empty folders.

    For a folder the store's writer alone fills (a server's uploads): a writer killed
    between saving a file and committing its rows, or between deleting a source's rows
    and its file, leaves a file nothing refers to. Call it holding the store for writing
    and before any upload starts, so no file is half way through. Returns what it removed.
    """
    if not folder.is_dir():
        return []
    known = {Path(s["path"]).resolve() for s in store.sources() if s.get("path")}
    removed: list[Path] = []
    # Deepest first, so a folder is looked at after its files went.
    for path in sorted(folder.rglob("*"), key=lambda p: len(p.parts), reverse=True):
        if path.is_symlink() or path.is_file():
            if path.resolve() not in known:
                path.unlink(missing_ok=True)
                removed.append(path)
        elif path.is_dir() and not any(path.iterdir()):
            path.rmdir()
    return removed
