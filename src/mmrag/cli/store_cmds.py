"""`mmrag info` and `mmrag remove`: look into the store and take sources out of it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from mmrag.cli.console import console
from mmrag.cli.store_location import StoreOpt, WaitOpt, open_store_at


def info(
    store: StoreOpt = None,
    sources: Annotated[bool, typer.Option(help="List every stored source.")] = False,
) -> None:
    """What the store holds."""
    from mmrag.models.text import TEXT_ENCODERS
    from mmrag.retrieve import RETRIEVERS

    with open_store_at(store, read_only=True) as st:
        data = st.info()
        config = st.index_config()
        listing = st.sources() if sources else []
    table = Table(show_header=False)
    for key, value in data.items():
        table.add_row(
            key, json.dumps(value, ensure_ascii=False) if isinstance(value, dict) else str(value)
        )
    if config is not None:  # what `mmrag index` without options reuses
        table.add_row("indexed with", json.dumps(config, ensure_ascii=False))
    table.add_row("retrievers", ", ".join(RETRIEVERS.names()))
    table.add_row("text encoders", ", ".join(TEXT_ENCODERS.names()))
    console.print(table)
    for s in listing:
        console.print(f"{s['chunks']:>5}  {s['source_id']}")


def remove(
    sources: Annotated[
        list[str],
        typer.Argument(help="Source ids (file paths as `mmrag info --sources` lists them)."),
    ],
    store: StoreOpt = None,
    wait: WaitOpt = 0.0,
) -> None:
    """Delete sources and their chunks from the store."""
    ids = [str(Path(s).expanduser().resolve()) if Path(s).exists() else s for s in sources]
    with open_store_at(store, wait=wait) as st:
        n = st.delete_sources(ids)
    console.print(f"removed {n} chunks")
