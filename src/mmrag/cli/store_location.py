"""Which store a command works on: --store, else $MMRAG_STORE, else the user data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from mmrag.index.open import store_location

StoreOpt = Annotated[
    str | None,
    typer.Option(
        "--store",
        "-s",
        help="Store directory or milvus://host:port/collection "
        "(default: $MMRAG_STORE or ~/.local/share/mmrag/store).",
    ),
]


def store_path(store: str | Path | None) -> Path:
    """The embedded store's folder, for the commands that work on the embedded store only."""
    return Path(store_location(store))


WaitOpt = Annotated[
    float,
    typer.Option(
        "--wait",
        min=0,
        help="Seconds to wait while another process writes to the store (0: fail at once).",
    ),
]


def open_store_at(
    store: str | None, *, create: bool = False, read_only: bool = False, wait: float = 0.0
) -> Any:
    """The store --store names, embedded or on a server; a writer waits up to `wait`
    seconds for another process's writer to finish."""
    from mmrag.index.open import open_store

    return open_store(store_location(store), create=create, read_only=read_only, lock_timeout=wait)


__all__ = ["StoreOpt", "WaitOpt", "open_store_at", "store_location", "store_path"]
