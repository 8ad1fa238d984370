"""Open a store from what the user configured: a folder (the embedded store, the default)
or a ``milvus://host:port/collection`` URI (`MilvusStore`).

    milvus://127.0.0.1:19530/papers              server on 19530, collection "papers"
    milvus://db.internal/papers?blobs=/srv/blobs   default port 19530, media blobs folder

Only the ``milvus`` scheme names a server; anything else with a scheme is refused rather
than guessed, and everything without one is a path.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from mmrag.errors import ConfigError
from mmrag.index.base import Store

MILVUS_DEFAULT_PORT = 19530
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


@dataclass(frozen=True, slots=True)
class MilvusLocation:
    uri: str  # what pymilvus connects to: http://host:port
    collection: str
    blob_dir: Path | None = None


def parse_milvus_uri(text: str) -> MilvusLocation:
    """Split ``milvus://host[:port]/collection[?blobs=DIR]`` into its parts."""
    parts = urlsplit(text)
    if parts.scheme != "milvus":
        raise ConfigError(f"not a milvus:// URI: {text!r}")
    if not parts.hostname:
        raise ConfigError(f"{text!r} names no host (milvus://host:port/collection)")
    try:
        port = parts.port or MILVUS_DEFAULT_PORT
    except ValueError as exc:
        raise ConfigError(f"{text!r}: bad port ({exc})") from exc
    collection = parts.path.strip("/")
    if not collection or "/" in collection:
        raise ConfigError(f"{text!r} names no collection (milvus://host:port/collection)")
    query = parse_qs(parts.query)
    unknown = set(query) - {"blobs"}
    if unknown:
        raise ConfigError(f"{text!r}: unknown option(s) {', '.join(sorted(unknown))}")
    blobs = query.get("blobs", [None])[-1]
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return MilvusLocation(f"http://{host}:{port}", collection, Path(blobs) if blobs else None)


def store_location(store: str | Path | None = None) -> str:
    """The store to use: `store`, else $MMRAG_STORE, else the user data folder (a path or
    a milvus:// URI). The CLI, the server and `mmrag.open_store` all ask this."""
    if store is not None:
        return str(store)
    if os.environ.get("MMRAG_STORE"):
        return os.environ["MMRAG_STORE"]
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return str(base / "mmrag" / "store")


def open_store(
    uri_or_path: str | Path,
    *,
    create: bool = False,
    read_only: bool = False,
    lock_timeout: float | None = 0.0,
) -> Store:
    """The embedded store for a path, `MilvusStore` for a milvus:// URI.

    `lock_timeout`: seconds an embedded store's writer waits for another process's
    writer (0: refuse at once; None: no limit). A Milvus server takes concurrent writers.
    """
    text = str(uri_or_path)
    if isinstance(uri_or_path, str) and _SCHEME.match(text):
        if not text.startswith("milvus://"):
            raise ConfigError(
                f"unknown store URI {text!r}: use a folder path or milvus://host:port/collection"
            )
        from mmrag.index.milvus import MilvusStore

        loc = parse_milvus_uri(text)
        return MilvusStore(
            loc.uri, loc.collection, create=create, read_only=read_only, blob_dir=loc.blob_dir
        )
    from mmrag.index.store import EmbeddedStore

    return EmbeddedStore(Path(text), create=create, read_only=read_only, lock_timeout=lock_timeout)
