"""A Milvus store's blob folder: media files on local disk, named by their content hash.

Milvus holds documents, not files, so media a store keeps live in a folder of its own
(`?blobs=DIR` in the store URI, or one per collection under the XDG data folder).
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path


def default_blob_dir(collection: str) -> Path:
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "mmrag" / "blobs" / collection


def store_blob(blob_dir: Path, path: str | Path) -> str:
    """Copy a media file into `blob_dir`; returns its reference, relative to it."""
    data = Path(path).read_bytes()
    name = hashlib.sha256(data).hexdigest()[:32] + Path(path).suffix.lower()
    target = blob_dir / name[:2] / name
    if not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_bytes(data)
        tmp.replace(target)
    return str(target.relative_to(blob_dir))
